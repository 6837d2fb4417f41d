/* main.c — vigil-agent: options, then capture -> decode -> flow table -> output. */
#include "capture.h"
#include "clock.h"
#include "decode.h"
#include "err.h"
#include "flowtab.h"
#include "limits.h"
#include "log.h"
#include "output.h"
#include "pipeline.h"
#include "privdrop.h"

#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXIT_USAGE 2

struct agent_options {
    struct capture_config cap;
    const char *json_path;
    const char *user;
    const char *agent_name;
    struct cidr_set local_nets;
    struct flowtab_config table;
};

struct agent {
    struct decode_ctx dec;
    struct flowtab *table;
    struct pipeline *pipe; /* to the flow thread, which owns the table while it runs */
    int dlt;
    uint64_t packets, bytes;
    int64_t first_ts, last_ts;
};

static volatile sig_atomic_t stop_requested;
static struct capture *running_capture;

static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
    capture_break(running_capture);
}

static void usage(FILE *fp)
{
    fprintf(fp,
            "usage: vigil-agent (-r FILE | -i IFACE) [options]\n"
            "\n"
            "Summarises packets into bidirectional flow records.\n"
            "\n"
            "input:\n"
            "  -r, --read FILE          read a pcap or pcapng file ('-' for standard input)\n"
            "  -i, --interface IFACE    capture live until SIGINT/SIGTERM\n"
            "  -f, --filter BPF         capture only packets matching the filter\n"
            "  -s, --snaplen N          live: bytes kept per packet (default 1600:\n"
            "                           headers plus the first application bytes)\n"
            "  -B, --buffer-size MIB    live: capture ring size (default 64)\n"
            "      --no-promisc         live: do not put the interface in promiscuous mode\n"
            "  -u, --user NAME          drop root for NAME once the capture is open\n"
            "\n"
            "flows:\n"
            "      --max-flows N        flow table capacity (default %u)\n"
            "      --idle-timeout S     end a flow after S idle seconds (default %d)\n"
            "      --active-timeout S   report a long flow every S seconds (default %d)\n"
            "      --tcp-close-timeout S  end a TCP flow S seconds after FIN/RST (default %d)\n"
            "  -l, --local-net CIDR     a local network, for the direction field (repeatable)\n"
            "  -n, --agent-name NAME    name written into each record\n"
            "\n"
            "output:\n"
            "  -j, --json FILE          write JSON lines, one per flow record ('-' = stdout)\n"
            "  -q, --quiet              only errors on stderr (the summary is still printed)\n"
            "  -v, --verbose            more detail on stderr\n"
            "  -h, --help               show this help\n"
            "      --version            show the version\n"
            "\n"
            "On exit a one-line summary goes to stderr.\n",
            FLOWTAB_DEFAULT_MAX_FLOWS, FLOWTAB_DEFAULT_IDLE_S, FLOWTAB_DEFAULT_ACTIVE_S,
            FLOWTAB_DEFAULT_CLOSE_S);
}

static int parse_uint(const char *opt, const char *text, unsigned long min, unsigned long max,
                      unsigned long *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(text, &end, 10);
    if (errno || end == text || *end != '\0' || text[0] == '-' || v < min || v > max) {
        fprintf(stderr, "vigil-agent: %s: '%s' is not a number from %lu to %lu\n", opt, text,
                min, max);
        return VIGIL_EINVAL;
    }
    *out = v;
    return 0;
}

enum {
    OPT_MAX_FLOWS = 256,
    OPT_IDLE,
    OPT_ACTIVE,
    OPT_CLOSE,
    OPT_NO_PROMISC,
    OPT_VERSION,
};

/* Returns 0 to run, 1 to exit successfully (help, version), or EXIT_USAGE. */
static int parse_options(int argc, char **argv, struct agent_options *o)
{
    static const struct option longopts[] = {
        {"read", required_argument, NULL, 'r'},
        {"interface", required_argument, NULL, 'i'},
        {"filter", required_argument, NULL, 'f'},
        {"snaplen", required_argument, NULL, 's'},
        {"buffer-size", required_argument, NULL, 'B'},
        {"no-promisc", no_argument, NULL, OPT_NO_PROMISC},
        {"user", required_argument, NULL, 'u'},
        {"max-flows", required_argument, NULL, OPT_MAX_FLOWS},
        {"idle-timeout", required_argument, NULL, OPT_IDLE},
        {"active-timeout", required_argument, NULL, OPT_ACTIVE},
        {"tcp-close-timeout", required_argument, NULL, OPT_CLOSE},
        {"local-net", required_argument, NULL, 'l'},
        {"agent-name", required_argument, NULL, 'n'},
        {"json", required_argument, NULL, 'j'},
        {"quiet", no_argument, NULL, 'q'},
        {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, OPT_VERSION},
        {NULL, 0, NULL, 0},
    };
    unsigned long v;
    int c;

    memset(o, 0, sizeof *o);
    o->cap.snaplen = 1600;
    o->cap.buffer_mib = 64;
    o->cap.promisc = true;
    o->cap.timeout_ms = 100;
    flowtab_config_defaults(&o->table);

    opterr = 0;
    while ((c = getopt_long(argc, argv, ":r:i:f:s:B:u:l:n:j:qvh", longopts, NULL)) != -1) {
        switch (c) {
        case 'r': o->cap.file = optarg; break;
        case 'i': o->cap.iface = optarg; break;
        case 'f': o->cap.filter = optarg; break;
        case 's':
            if (parse_uint("--snaplen", optarg, 64, 262144, &v))
                return EXIT_USAGE;
            o->cap.snaplen = (int)v;
            break;
        case 'B':
            if (parse_uint("--buffer-size", optarg, 1, 4096, &v))
                return EXIT_USAGE;
            o->cap.buffer_mib = (int)v;
            break;
        case OPT_NO_PROMISC: o->cap.promisc = false; break;
        case 'u': o->user = optarg; break;
        case OPT_MAX_FLOWS:
            if (parse_uint("--max-flows", optarg, FLOWTAB_MIN_FLOWS, FLOWTAB_MAX_FLOWS, &v))
                return EXIT_USAGE;
            o->table.max_flows = (uint32_t)v;
            break;
        case OPT_IDLE:
        case OPT_ACTIVE:
        case OPT_CLOSE: {
            const char *name = c == OPT_IDLE     ? "--idle-timeout"
                               : c == OPT_ACTIVE ? "--active-timeout"
                                                 : "--tcp-close-timeout";
            if (parse_uint(name, optarg, 1, 86400, &v))
                return EXIT_USAGE;
            int64_t ns = (int64_t)v * NS_PER_SEC;
            if (c == OPT_IDLE)
                o->table.idle_ns = ns;
            else if (c == OPT_ACTIVE)
                o->table.active_ns = ns;
            else
                o->table.close_ns = ns;
            break;
        }
        case 'l': {
            int rc = cidr_set_add(&o->local_nets, optarg);
            if (rc != 0) {
                fprintf(stderr, "vigil-agent: --local-net: %s\n",
                        rc == VIGIL_EFULL ? "too many networks"
                                          : "expected a network like 10.0.0.0/8 or fd00::/8");
                return EXIT_USAGE;
            }
            break;
        }
        case 'n': o->agent_name = optarg; break;
        case 'j': o->json_path = optarg; break;
        case 'q': vigil_log_level = LOG_LVL_ERR; break;
        case 'v': vigil_log_level = LOG_LVL_DEBUG; break;
        case 'h': usage(stdout); return 1;
        case OPT_VERSION: printf("vigil-agent %s\n", VIGIL_VERSION); return 1;
        case ':':
            fprintf(stderr, "vigil-agent: option %s needs a value\n", argv[optind - 1]);
            return EXIT_USAGE;
        default:
            fprintf(stderr, "vigil-agent: unknown option '%s' (see --help)\n", argv[optind - 1]);
            return EXIT_USAGE;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "vigil-agent: unexpected argument '%s' (see --help)\n", argv[optind]);
        return EXIT_USAGE;
    }
    if (!o->cap.file == !o->cap.iface) {
        fprintf(stderr, "vigil-agent: give exactly one of -r FILE or -i IFACE (see --help)\n");
        return EXIT_USAGE;
    }
    o->table.local_nets = &o->local_nets;
    o->table.agent_name = o->agent_name;
    return 0;
}

static void on_packet(void *ctx, int64_t ts_ns, const uint8_t *data, uint32_t caplen,
                      uint32_t wirelen)
{
    struct agent *a = ctx;
    struct pkt p;
    a->packets++;
    a->bytes += wirelen;
    if (a->first_ts == 0)
        a->first_ts = ts_ns;
    a->last_ts = ts_ns;
    if (decode_packet(&a->dec, a->dlt, data, caplen, wirelen, ts_ns, &p) == DECODE_OK)
        pipeline_push(a->pipe, &p);
}

static void on_idle(void *ctx, int64_t now_ns)
{
    struct agent *a = ctx;
    pipeline_tick(a->pipe, now_ns);
}

static void discard_record(void *ctx, const struct flow_record *rec)
{
    (void)ctx;
    (void)rec;
}

static void print_summary(const struct agent *a, const struct capture_stats *cs,
                          const struct flowtab_stats *ts, uint64_t records, uint64_t lost,
                          double elapsed)
{
    fprintf(stderr,
            "vigil-agent: summary: packets=%" PRIu64 " bytes=%" PRIu64 " flows=%" PRIu64
            " records=%" PRIu64 " records_lost=%" PRIu64 " decode_errors=%" PRIu64
            " not_ip=%" PRIu64 " evictions=%" PRIu64 " emergency=%" PRIu64 " drops=%" PRIu64
            " ifdrops=%" PRIu64 " elapsed=%.3fs pps=%.0f\n",
            a->packets, a->bytes, ts->flows_created, records, lost,
            decode_errors_total(&a->dec.stats), a->dec.stats.not_ip, ts->evictions,
            ts->emergency_entered, cs->dropped, cs->ifdropped, elapsed,
            elapsed > 0 ? (double)a->packets / elapsed : 0.0);
    if (vigil_log_level >= LOG_LVL_DEBUG) {
        for (unsigned i = 0; i < DEC_ERR_COUNT; i++)
            if (a->dec.stats.err[i])
                log_debug("decode errors %s: %" PRIu64, decode_error_name((enum decode_error)i),
                          a->dec.stats.err[i]);
    }
}

int main(int argc, char **argv)
{
    struct agent_options opt;
    struct agent agent = {0};
    char errbuf[CAPTURE_ERRBUF_SIZE] = "";
    int status = EXIT_SUCCESS;

    log_set_ident("vigil-agent");
    int prc = parse_options(argc, argv, &opt);
    if (prc == 1)
        return EXIT_SUCCESS;
    if (prc != 0)
        return EXIT_USAGE;

    struct capture *cap = capture_open(&opt.cap, errbuf);
    if (!cap) {
        log_err("%s", errbuf);
        return EXIT_FAILURE;
    }
    agent.dlt = capture_datalink(cap);
    if (!decode_link_supported(agent.dlt))
        log_warn("link type %d (%s) is not supported: its packets are counted as decode errors",
                 agent.dlt, pcap_datalink_val_to_name(agent.dlt) ? pcap_datalink_val_to_name(agent.dlt) : "unknown");

    if (opt.user && privdrop_to_user(opt.user) != 0) {
        capture_close(cap);
        return EXIT_FAILURE;
    }

    struct json_output *out = NULL;
    if (opt.json_path) {
        out = json_output_open(opt.json_path);
        if (!out) {
            log_err("cannot write %s: %s", opt.json_path, strerror(errno));
            capture_close(cap);
            return EXIT_FAILURE;
        }
    }
    agent.table = flowtab_create(&opt.table, out ? json_output_emit : discard_record, out);
    if (!agent.table) {
        log_err("cannot create the flow table (%u flows): out of memory?", opt.table.max_flows);
        json_output_close(out, NULL, NULL);
        capture_close(cap);
        return EXIT_FAILURE;
    }

    /* Threads start only now: after the privileges were dropped. */
    agent.pipe = pipeline_start(agent.table, 16u << 20);
    if (!agent.pipe) {
        log_err("cannot start the flow thread");
        flowtab_destroy(agent.table);
        json_output_close(out, NULL, NULL);
        capture_close(cap);
        return EXIT_FAILURE;
    }

    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    running_capture = cap;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    int64_t t0 = vigil_monotonic_ns();
    if (capture_run(cap, &stop_requested, on_packet, on_idle, &agent, errbuf) != 0) {
        log_err("reading %s stopped: %s", opt.cap.file ? opt.cap.file : opt.cap.iface, errbuf);
        status = EXIT_FAILURE;
    }
    double capture_cpu = pipeline_caller_cpu_seconds();
    double flow_cpu = pipeline_finish(agent.pipe);
    double elapsed = (double)(vigil_monotonic_ns() - t0) / 1e9;
    running_capture = NULL;

    struct capture_stats cs;
    capture_get_stats(cap, &cs);
    flowtab_flush(agent.table, END_SHUTDOWN);
    struct flowtab_stats ts;
    flowtab_get_stats(agent.table, &ts);
    uint64_t written = ts.records_emitted, lost = 0;
    if (out && json_output_close(out, &written, &lost) != 0)
        status = EXIT_FAILURE;
    print_summary(&agent, &cs, &ts, written, lost, elapsed);
    log_debug("threads: capture+decode %.3f s CPU, flows+output %.3f s CPU; %zu bytes per flow-table entry",
             capture_cpu, flow_cpu, flowtab_bytes_per_flow(agent.table));
    flowtab_destroy(agent.table);
    capture_close(cap);
    return status;
}
