/* alert_cmds.c — `vigil alerts` and `vigil baseline`: the detection
 * engine's alerts and what it learned as normal (service.h on the
 * aggregator lists the kinds `alerts` and `baseline`).
 *
 * `vigil alerts --format json` prints each alert exactly as DESIGN.md
 * names it (the aggregator sends the whole alert as one JSON column; it is
 * printed as it is, one per line). The table shows time, type, severity,
 * sources, targets and summary. Without --since every stored alert
 * qualifies: alerts carry the flows' own times, which for a replayed
 * capture may be years old. */
#include "cli.h"

#include "addr.h"
#include "clock.h"
#include "config.h"
#include "err.h"
#include "transport.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct alert_options {
    struct cfg_common common;
    struct conn_options conn; /* cli.h */
    const char *host, *since, *until, *type;
    uint64_t limit;
};

#define AOPT(field) offsetof(struct alert_options, field)

#define AEND CONN_CFG_END

static const struct cfg_option alerts_table[] = {
    CONN_OPTIONS(struct alert_options, conn, "5s"),
    {"since", 's', CFG_STRING, AOPT(since), NULL, 0, 0, "WHEN",
     "alerts active since: a duration back from now (30m, 24h), an RFC 3339 time or 'all' "
     "(default: all)", CFG_CLI_ONLY},
    {"until", 'u', CFG_STRING, AOPT(until), NULL, 0, 0, "WHEN",
     "alerts that began before WHEN, same forms", CFG_CLI_ONLY},
    {"type", 'T', CFG_STRING, AOPT(type), NULL, 0, 0, "TYPE",
     "exfiltration, port_scan, horizontal_scan, fleet_scan, distributed_scan, dns_tunnel or "
     "beacon", CFG_CLI_ONLY},
    {"host", 'H', CFG_STRING, AOPT(host), NULL, 0, 0, "IP",
     "alerts with this address among their sources or targets", CFG_CLI_ONLY},
    {"limit", 'n', CFG_UINT, AOPT(limit), "100", 1, 50000, "N", "at most N alerts, newest first",
     CFG_CLI_ONLY},
    AEND,
};

static const struct cfg_option baseline_table[] = {
    CONN_OPTIONS(struct alert_options, conn, "5s"),
    {"host", 'H', CFG_STRING, AOPT(host), NULL, 0, 0, "IP",
     "the host whose baseline to show (default: the fleet's, per active host)", CFG_CLI_ONLY},
    AEND,
};

static struct cfg_program alerts_program = {
    .name = "vigil alerts",
    .usage = "usage: vigil alerts [--since WHEN] [--until WHEN] [--type TYPE] [--host IP]\n"
             "                    [--limit N] [--format table|json|csv] [options]\n"
             "\n"
             "Alerts raised by the aggregator's detectors, newest first. Each alert is updated\n"
             "while its activity lasts (last_seen, evidence), never repeated. The evidence\n"
             "(--format json) holds the counts, the baseline it was measured against, and a\n"
             "'vigil flows' command that lists the flows behind it." CONN_CONFIG_NOTE,
    .version = VIGIL_VERSION,
    .options = alerts_table,
    .common_offset = offsetof(struct alert_options, common),
};

static struct cfg_program baseline_program = {
    .name = "vigil baseline",
    .usage = "usage: vigil baseline [--host IP] [options]\n"
             "\n"
             "What the aggregator learned as normal for a host (or for the fleet's typical\n"
             "host): per hour of the day (UTC), the typical hourly bytes out and in, DNS bytes\n"
             "and queries, distinct destinations and ports, connections and failed ones, with\n"
             "the number of hours learned and the destinations the host is known to use."
             CONN_CONFIG_NOTE,
    .version = VIGIL_VERSION,
    .options = baseline_table,
    .common_offset = offsetof(struct alert_options, common),
};

static int load(struct cfg_program *prog, struct alert_options *o, int argc, char **argv,
                struct cfg_arena **arena, enum out_format *fmt)
{
    return conn_load(prog, o, &o->conn, argc, argv, arena, fmt);
}


int cmd_alerts(int argc, char **argv)
{
    struct alert_options o = {0};
    struct cfg_arena *arena = NULL;
    enum out_format fmt;
    Vigil__Envelope *env = NULL;
    char since[24], until[24], limit[24];
    struct query_arg args[5];
    size_t n = 0;
    int64_t now = vigil_wallclock_ns(), t;
    struct vigil_addr a;

    int rc = load(&alerts_program, &o, argc, argv, &arena, &fmt);
    if (rc >= 0)
        goto out;
    rc = CLI_EXIT_USAGE;
    if (o.since) {
        if (cli_parse_when(o.since, now, &t) != 0) {
            fprintf(stderr, "vigil alerts: --since: '%s' is not a time\n", o.since);
            goto out;
        }
        snprintf(since, sizeof since, "%lld", (long long)t);
        args[n++] = (struct query_arg){"since", since};
    }
    if (o.until) {
        if (cli_parse_when(o.until, now, &t) != 0) {
            fprintf(stderr, "vigil alerts: --until: '%s' is not a time\n", o.until);
            goto out;
        }
        snprintf(until, sizeof until, "%lld", (long long)t);
        args[n++] = (struct query_arg){"until", until};
    }
    if (o.type)
        args[n++] = (struct query_arg){"type", o.type};
    if (o.host) {
        if (addr_parse(o.host, &a) != 0) {
            fprintf(stderr, "vigil alerts: --host: '%s' is not an IP address\n", o.host);
            goto out;
        }
        args[n++] = (struct query_arg){"host", o.host};
    }
    snprintf(limit, sizeof limit, "%llu", (unsigned long long)o.limit);
    args[n++] = (struct query_arg){"limit", limit};

    if ((rc = conn_ask("vigil alerts", &o.conn, "alerts", args, n, &env)) != CLI_EXIT_OK)
        goto out;
    const Vigil__QueryResponse *r = env->response;
    if (fmt == OUT_JSON) {
        /* the alert column, as it is: one DESIGN.md alert object per line */
        size_t col = r->n_columns;
        for (size_t i = 0; i < r->n_columns; i++)
            if (strcmp(r->columns[i], "alert") == 0)
                col = i;
        for (size_t i = 0; i < r->n_rows && col < r->n_columns; i++)
            if (col < r->rows[i]->n_cells && printf("%s\n", r->rows[i]->cells[col]) < 0) {
                rc = CLI_EXIT_FAIL;
                break;
            }
    } else {
        static const struct table_column view[] = {
            {"last_seen", "LAST SEEN", COL_TIME}, {"id", "ID", COL_NUMBER},
            {"type", "TYPE", COL_PLAIN},          {"severity", "SEVERITY", COL_PLAIN},
            {"sources", "SOURCES", COL_PLAIN},    {"targets", "TARGETS", COL_PLAIN},
            {"summary", "SUMMARY", COL_PLAIN},    {NULL, NULL, COL_PLAIN},
        };
        if (output_write(stdout, fmt, r, view, now) != 0)
            rc = CLI_EXIT_FAIL;
        else if (fmt == OUT_TABLE && r->n_rows == 0)
            fprintf(stderr, "vigil alerts: no alerts\n");
    }
    if (fflush(stdout) != 0)
        rc = CLI_EXIT_FAIL;
out:
    envelope_free(env);
    cfg_arena_free(arena);
    return rc;
}

int cmd_baseline(int argc, char **argv)
{
    struct alert_options o = {0};
    struct cfg_arena *arena = NULL;
    enum out_format fmt;
    Vigil__Envelope *env = NULL;
    struct query_arg args[1];
    size_t n = 0;
    struct vigil_addr a;

    int rc = load(&baseline_program, &o, argc, argv, &arena, &fmt);
    if (rc >= 0)
        goto out;
    if (o.host) {
        if (addr_parse(o.host, &a) != 0) {
            fprintf(stderr, "vigil baseline: --host: '%s' is not an IP address\n", o.host);
            rc = CLI_EXIT_USAGE;
            goto out;
        }
        args[n++] = (struct query_arg){"host", o.host};
    }
    if ((rc = conn_ask("vigil baseline", &o.conn, "baseline", args, n, &env)) != CLI_EXIT_OK)
        goto out;
    static const struct table_column view[] = {
        {"hour", "HOUR", COL_NUMBER},
        {"samples", "HOURS", COL_NUMBER},
        {"out_bytes", "OUT/H", COL_BYTES},
        {"in_bytes", "IN/H", COL_BYTES},
        {"dns_bytes", "DNS/H", COL_BYTES},
        {"dns_queries", "QUERIES", COL_NUMBER},
        {"distinct_dsts", "DSTS", COL_NUMBER},
        {"distinct_ports", "PORTS", COL_NUMBER},
        {"connections", "CONNS", COL_NUMBER},
        {"failed_connections", "FAILED", COL_NUMBER},
        {NULL, NULL, COL_PLAIN},
    };
    const Vigil__QueryResponse *r = env->response;
    if (fmt == OUT_TABLE && r->n_rows > 0 && r->rows[0]->n_cells > 14)
        printf("%s: %s hours learned (%s .. %s), %s known destinations\n",
               r->rows[0]->cells[0], r->rows[0]->cells[11], r->rows[0]->cells[12],
               r->rows[0]->cells[13], *r->rows[0]->cells[14] ? r->rows[0]->cells[14] : "-");
    if (output_write(stdout, fmt, r, view, vigil_wallclock_ns()) != 0)
        rc = CLI_EXIT_FAIL;
out:
    envelope_free(env);
    cfg_arena_free(arena);
    return rc;
}
