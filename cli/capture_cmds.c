/* capture_cmds.c — `vigil capture start|list|stop`: forensic full-packet
 * capture ordered on chosen agents through the aggregator.
 *
 *   vigil capture start --agent web-01 --agent web-02 --filter 'host 203.0.113.9' \
 *         --duration 10m --max-bytes 2G --snaplen 0      -> a capture id per agent
 *   vigil capture list [--id ID] [--agent NAME] [--files] -> state, packets, bytes, files
 *   vigil capture stop ID
 *
 * The aggregator checks the analyst's capture right and the filter (with
 * libpcap) before anything starts; its arguments are listed in
 * aggregator/capture_query.c and answer_capture.c. Times are resolved
 * here: --expires 1h is sent as an absolute time, durations as
 * nanoseconds.
 *
 * Connection settings come from the same config file as the query
 * commands (cli_default_config). The option handling mirrors
 * query_cmds.c's, whose helpers are private to it. */
#include "cli.h"

#include "clock.h"
#include "config.h"
#include "err.h"
#include "transport.h"

#include <inttypes.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

struct capture_options {
    struct cfg_common common;
    struct conn_options conn; /* cli.h */
    struct cfg_list agents;
    const char *filter, *id, *agent, *reason;
    int64_t duration, expires;
    uint64_t max_bytes, max_packets, snaplen, limit;
    bool files;
};

#define COPT(field) offsetof(struct capture_options, field)
#define AGENT_LIST_MAX 1024 /* the aggregator's bound on one argument */

#define CFG_END CONN_CFG_END

static const struct cfg_option start_table[] = {
    CONN_OPTIONS(struct capture_options, conn, "5s"),
    {"agent", 'a', CFG_LIST, COPT(agents), NULL, 0, 0, "NAME",
     "capture on this agent (repeat for several, or NAME,NAME)", CFG_CLI_ONLY},
    {"filter", 'f', CFG_STRING, COPT(filter), NULL, 0, 0, "BPF",
     "capture only packets matching this libpcap filter (default: all)", CFG_CLI_ONLY},
    {"duration", 'd', CFG_DURATION, COPT(duration), "10m", 1, 7u * 86400u, "TIME",
     "stop after TIME", CFG_CLI_ONLY},
    {"max-bytes", 'b', CFG_BYTES, COPT(max_bytes), "0", 0, UINT64_MAX, "SIZE",
     "stop before the files pass SIZE in all (0: only the agent's quota)", CFG_CLI_ONLY},
    {"max-packets", 'p', CFG_UINT, COPT(max_packets), "0", 0, UINT64_MAX, "N",
     "stop after N packets (0: no cap)", CFG_CLI_ONLY},
    {"snaplen", 's', CFG_UINT, COPT(snaplen), "0", 0, 262144, "N",
     "bytes kept per packet (0: whole packets)", CFG_CLI_ONLY},
    {"expires", 'e', CFG_DURATION, COPT(expires), "1h", 1, 7u * 86400u, "TIME",
     "an agent offline until TIME from now does not start it", CFG_CLI_ONLY},
    {"reason", 'r', CFG_STRING, COPT(reason), NULL, 0, 0, "TEXT",
     "a note stored with the order (a ticket, an alert id)", CFG_CLI_ONLY},
    CFG_END,
};

static const struct cfg_option list_table[] = {
    CONN_OPTIONS(struct capture_options, conn, "5s"),
    {"id", 'i', CFG_STRING, COPT(id), NULL, 0, 0, "ID", "only this capture", CFG_CLI_ONLY},
    {"agent", 'a', CFG_STRING, COPT(agent), NULL, 0, 0, "NAME", "only this agent's captures",
     CFG_CLI_ONLY},
    {"files", 0, CFG_BOOL, COPT(files), NULL, 0, 0, NULL,
     "one line per file (name, size, SHA-256) instead of one per capture", CFG_CLI_ONLY},
    {"limit", 'n', CFG_UINT, COPT(limit), "100", 1, 50000, "N", "the N newest captures",
     CFG_CLI_ONLY},
    CFG_END,
};

static const struct cfg_option stop_table[] = {
    CONN_OPTIONS(struct capture_options, conn, "5s"),
    {"id", 'i', CFG_STRING, COPT(id), NULL, 0, 0, "ID",
     "the capture to stop (or give it first: vigil capture stop ID)", CFG_CLI_ONLY},
    CFG_END,
};

static struct cfg_program start_program = {
    .name = "vigil capture start",
    .usage = "usage: vigil capture start --agent NAME [--agent NAME...] [--filter BPF]\n"
             "                           [--duration TIME] [--max-bytes SIZE] [--max-packets N]\n"
             "                           [--snaplen N] [--expires TIME] [options]\n"
             "\n"
             "Orders full-packet capture on the named agents; prints a capture id per agent.\n"
             "Each agent writes rotating pcap files in its capture directory and stops at the\n"
             "duration, a cap or its disk quota, whichever comes first. Needs an analyst key\n"
             "holding the capture right (the aggregator's --capture-allow). Example:\n"
             "  vigil capture start --agent web-01 --filter 'host 203.0.113.9' --duration 10m "
             "--max-bytes 2G" CONN_CONFIG_NOTE,
    .version = VIGIL_VERSION,
    .options = start_table,
    .common_offset = offsetof(struct capture_options, common),
};

static struct cfg_program list_program = {
    .name = "vigil capture list",
    .usage = "usage: vigil capture list [--id ID] [--agent NAME] [--files] [options]\n"
             "\n"
             "Capture orders, newest first: state, packets, bytes and files per agent, who\n"
             "ordered them and why; with --files, each file's name, size and SHA-256.\n"
             "In a table the files follow the captures." CONN_CONFIG_NOTE,
    .version = VIGIL_VERSION,
    .options = list_table,
    .common_offset = offsetof(struct capture_options, common),
};

static struct cfg_program stop_program = {
    .name = "vigil capture stop",
    .usage = "usage: vigil capture stop ID [options]\n"
             "\n"
             "Stops a capture; its files so far are kept and reported." CONN_CONFIG_NOTE,
    .version = VIGIL_VERSION,
    .options = stop_table,
    .common_offset = offsetof(struct capture_options, common),
};

/* ---- shared steps ------------------------------------------------------------------ */

static int load(struct cfg_program *prog, struct capture_options *o, int argc, char **argv,
                struct cfg_arena **arena, enum out_format *fmt)
{
    return conn_load(prog, o, &o->conn, argc, argv, arena, fmt);
}


static int show(const char *prog, enum out_format fmt, const Vigil__QueryResponse *r,
                const struct table_column *view)
{
    if (output_write(stdout, fmt, r, view, vigil_wallclock_ns()) != 0) {
        fprintf(stderr, "%s: cannot write the output\n", prog);
        return CLI_EXIT_FAIL;
    }
    if (r->truncated)
        fprintf(stderr, "%s: note: more captures than shown (see --limit)\n", prog);
    return CLI_EXIT_OK;
}

/* ---- start ------------------------------------------------------------------------------- */

static const struct table_column start_view[] = {
    {"agent", "AGENT", COL_PLAIN},
    {"capture_id", "CAPTURE ID", COL_PLAIN},
    {"state", "STATE", COL_PLAIN},
    {"expires", "UNLESS STARTED BY", COL_TIME},
    {NULL, NULL, COL_PLAIN},
};

static int capture_start(int argc, char **argv)
{
    struct capture_options o = {0};
    struct cfg_arena *arena = NULL;
    enum out_format fmt;
    const char *prog = start_program.name;
    struct query_arg args[10];
    size_t n = 0;
    char agents[AGENT_LIST_MAX + 1] = "", duration[24], max_bytes[24], max_packets[24],
                                     snaplen[16], expires[24];
    Vigil__Envelope *env = NULL;

    int rc = load(&start_program, &o, argc, argv, &arena, &fmt);
    if (rc >= 0)
        goto done;
    rc = CLI_EXIT_USAGE;
    if (o.agents.count == 0) {
        fprintf(stderr, "%s: name at least one agent (--agent NAME)\n", prog);
        goto done;
    }
    size_t used = 0;
    for (unsigned i = 0; i < o.agents.count; i++) {
        int w = snprintf(agents + used, sizeof agents - used, "%s%s", i ? "," : "",
                         o.agents.items[i]);
        if (w < 0 || (size_t)w >= sizeof agents - used) {
            fprintf(stderr, "%s: too many agents for one order\n", prog);
            goto done;
        }
        used += (size_t)w;
    }
    if (!o.filter)
        o.filter = "";
    if (strlen(o.filter) > 4096) {
        fprintf(stderr, "%s: --filter: longer than 4096 bytes\n", prog);
        goto done;
    }
    snprintf(duration, sizeof duration, "%" PRId64, o.duration);
    snprintf(max_bytes, sizeof max_bytes, "%" PRIu64, o.max_bytes);
    snprintf(max_packets, sizeof max_packets, "%" PRIu64, o.max_packets);
    snprintf(snaplen, sizeof snaplen, "%" PRIu64, o.snaplen);
    snprintf(expires, sizeof expires, "%" PRId64, vigil_wallclock_ns() + o.expires);
    args[n++] = (struct query_arg){"agent", agents};
    args[n++] = (struct query_arg){"filter", o.filter};
    args[n++] = (struct query_arg){"duration", duration};
    args[n++] = (struct query_arg){"max_bytes", max_bytes};
    args[n++] = (struct query_arg){"max_packets", max_packets};
    args[n++] = (struct query_arg){"snaplen", snaplen};
    args[n++] = (struct query_arg){"expires", expires};
    if (o.reason)
        args[n++] = (struct query_arg){"reason", o.reason};
    if ((rc = conn_ask(prog, &o.conn, "capture_start", args, n, &env)) == CLI_EXIT_OK)
        rc = show(prog, fmt, env->response, start_view);
done:
    envelope_free(env);
    cfg_arena_free(arena);
    return rc;
}

/* ---- list ---------------------------------------------------------------------------------- */

static const struct table_column list_view[] = {
    {"capture_id", "CAPTURE ID", COL_PLAIN},
    {"agent", "AGENT", COL_PLAIN},
    {"state", "STATE", COL_PLAIN},
    {"packets", "PACKETS", COL_NUMBER},
    {"bytes", "BYTES", COL_BYTES},
    {"files", "FILES", COL_NUMBER},
    {"filter", "FILTER", COL_PLAIN},
    {"ordered_by", "ORDERED BY", COL_PLAIN},
    {"created", "ORDERED", COL_AGO},
    {"detail", "DETAIL", COL_PLAIN},
    {NULL, NULL, COL_PLAIN},
};

static const struct table_column files_view[] = {
    {"capture_id", "CAPTURE ID", COL_PLAIN},
    {"agent", "AGENT", COL_PLAIN},
    {"file", "FILE", COL_PLAIN},
    {"size", "SIZE", COL_NUMBER},
    {"sha256", "SHA-256", COL_PLAIN},
    {NULL, NULL, COL_PLAIN},
};

static int capture_list(int argc, char **argv)
{
    struct capture_options o = {0};
    struct cfg_arena *arena = NULL;
    enum out_format fmt;
    const char *prog = list_program.name;
    struct query_arg args[4];
    size_t n = 0;
    char limit[24];
    Vigil__Envelope *env = NULL;

    int rc = load(&list_program, &o, argc, argv, &arena, &fmt);
    if (rc >= 0)
        goto done;
    if (o.id)
        args[n++] = (struct query_arg){"id", o.id};
    if (o.agent)
        args[n++] = (struct query_arg){"agent", o.agent};
    snprintf(limit, sizeof limit, "%" PRIu64, o.limit);
    args[n++] = (struct query_arg){"limit", limit};
    bool files_only = o.files;
    if (!files_only) {
        if ((rc = conn_ask(prog, &o.conn, "capture_list", args, n, &env)) != CLI_EXIT_OK)
            goto done;
        rc = show(prog, fmt, env->response, list_view);
        bool none = env->response->n_rows == 0;
        envelope_free(env);
        env = NULL;
        if (fmt != OUT_TABLE || rc != CLI_EXIT_OK)
            goto done;
        if (none) {
            fprintf(stderr, "%s: no capture has been ordered%s\n", prog,
                    o.id || o.agent ? " matching this" : "");
            goto done;
        }
        printf("\n");
    }
    args[n++] = (struct query_arg){"files", "1"};
    if ((rc = conn_ask(prog, &o.conn, "capture_list", args, n, &env)) == CLI_EXIT_OK) {
        rc = show(prog, fmt, env->response, files_view);
        if (fmt == OUT_TABLE && env->response->n_rows == 0)
            fprintf(stderr, "%s: no file reported yet\n", prog);
    }
done:
    envelope_free(env);
    cfg_arena_free(arena);
    return rc;
}

/* ---- stop ---------------------------------------------------------------------------------- */

static const struct table_column stop_view[] = {
    {"capture_id", "CAPTURE ID", COL_PLAIN},
    {"agent", "AGENT", COL_PLAIN},
    {"state", "STATE", COL_PLAIN},
    {NULL, NULL, COL_PLAIN},
};

static int capture_stop(int argc, char **argv)
{
    struct capture_options o = {0};
    struct cfg_arena *arena = NULL;
    enum out_format fmt;
    const char *prog = stop_program.name;
    const char *id = NULL;
    Vigil__Envelope *env = NULL;
    char *rest[64];
    int nrest = 0;

    /* "stop ID [options]": the id is the first word when it is not an option */
    if (argc > 64) {
        fprintf(stderr, "%s: too many arguments\n", prog);
        return CLI_EXIT_USAGE;
    }
    for (int i = 0; i < argc; i++) {
        if (i == 1 && argv[i][0] != '-')
            id = argv[i];
        else
            rest[nrest++] = argv[i];
    }
    int rc = load(&stop_program, &o, nrest, rest, &arena, &fmt);
    if (rc >= 0)
        goto done;
    rc = CLI_EXIT_USAGE;
    if (id && o.id && strcmp(id, o.id) != 0) {
        fprintf(stderr, "%s: two different ids given\n", prog);
        goto done;
    }
    if (!id)
        id = o.id;
    if (!id || !*id) {
        fprintf(stderr, "%s: which capture? (vigil capture stop ID; see vigil capture list)\n",
                prog);
        goto done;
    }
    struct query_arg args[1] = {{"id", id}};
    if ((rc = conn_ask(prog, &o.conn, "capture_stop", args, 1, &env)) == CLI_EXIT_OK)
        rc = show(prog, fmt, env->response, stop_view);
done:
    envelope_free(env);
    cfg_arena_free(arena);
    return rc;
}

/* ---- dispatch ------------------------------------------------------------------------------- */

static void usage(FILE *fp)
{
    fprintf(fp, "usage: vigil capture start|list|stop [options]   (vigil capture start --help...)\n"
                "\n"
                "Forensic full-packet capture ordered on chosen agents:\n"
                "  start   order a capture (a BPF filter, a duration, caps) on named agents\n"
                "  list    the orders: state, packets, bytes, files with their SHA-256\n"
                "  stop    stop a capture by its id\n");
}

int cmd_capture(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return CLI_EXIT_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return CLI_EXIT_OK;
    }
    if (strcmp(argv[1], "start") == 0)
        return capture_start(argc - 1, argv + 1);
    if (strcmp(argv[1], "list") == 0)
        return capture_list(argc - 1, argv + 1);
    if (strcmp(argv[1], "stop") == 0)
        return capture_stop(argc - 1, argv + 1);
    fprintf(stderr, "vigil capture: unknown subcommand '%s' (start, list or stop)\n", argv[1]);
    return CLI_EXIT_USAGE;
}
