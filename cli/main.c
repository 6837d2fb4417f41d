/* main.c — `vigil`, the analyst's command-line tool: picks the command and
 * hands it the rest of the command line (each command parses its own
 * options from its own table, see cli.h). */
#include "cli.h"

#include "log.h"

#include <stdio.h>
#include <string.h>

struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
};

static const struct command commands[] = {
    {"agents", cmd_agents, "each agent: last seen, batches, records, flows, drops, spool"},
    {"flows", cmd_flows, "stored flows, filtered by host, port, protocol, app, time"},
    {"top", cmd_top, "top hosts, applications, ports or talker pairs by bytes/packets/flows"},
    {"bandwidth", cmd_bandwidth, "bandwidth in/out over time, percentiles, capacity forecast"},
    {"latency", cmd_latency, "TCP handshake RTT and retransmissions over time"},
    {"report", cmd_report, "one self-contained HTML page with charts"},
    {"alerts", cmd_alerts, "alerts raised by the detectors (scans, exfiltration, DNS tunnels...)"},
    {"baseline", cmd_baseline, "what is normal for a host, or the fleet, hour by hour"},
    {"capture", cmd_capture, "forensic full-packet capture on chosen agents: start, list, stop"},
    {"keygen", cmd_keygen, "generate a CurveZMQ key pair (aggregator, agent or analyst)"},
};

static void usage(FILE *fp)
{
    fprintf(fp, "usage: vigil COMMAND [options]    (vigil COMMAND --help for its options)\n"
                "\n"
                "Asks a vigil-aggregator about the fleet's traffic, and makes keys.\n"
                "\n"
                "commands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(fp, "  %-9s %s\n", commands[i].name, commands[i].summary);
    fprintf(fp, "\n"
                "examples:\n"
                "  vigil agents\n"
                "  vigil flows --host 10.1.2.3 --since 1h --port 443\n"
                "  vigil top --by bytes --group app --since 24h --format json\n"
                "  vigil keygen --out ~/.config/vigil --name alice\n"
                "\n"
                "Exit status: 0 success, 1 failure (refused, no answer), 2 wrong usage.\n");
}

int main(int argc, char **argv)
{
    log_set_ident("vigil");
    if (argc < 2) {
        usage(stderr);
        return CLI_EXIT_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return CLI_EXIT_OK;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("vigil %s\n", VIGIL_VERSION);
        return CLI_EXIT_OK;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(argv[1], commands[i].name) == 0)
            return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "vigil: unknown command '%s' (see vigil --help)\n", argv[1]);
    return CLI_EXIT_USAGE;
}
