/* bandwidth_cmds.c — `vigil bandwidth` (in/out over time with percentiles,
 * and with --forecast the capacity trend) and `vigil latency` (handshake
 * RTT and retransmissions over time): options to queries (the aggregator's
 * service.h lists them), answers to a table with sparklines for people,
 * or the answer as it came for --format json|csv. */
#include "analyst.h"

#include "addr.h"
#include "clock.h"
#include "err.h"
#include "transport.h"

#include <inttypes.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#define AOPT(field) offsetof(struct analyst_options, field)
#define CFG_END CONN_CFG_END

static const struct cfg_option bandwidth_table[] = {
    CONN_OPTIONS(struct analyst_options, conn, "10s"),
    {"since", 's', CFG_STRING, AOPT(since), "24h", 0, 0, "WHEN",
     "from: a duration back from now (30m, 24h, 30d), an RFC 3339 time, or 'all'", CFG_CLI_ONLY},
    {"until", 'u', CFG_STRING, AOPT(until), NULL, 0, 0, "WHEN", "to (exclusive); default now",
     CFG_CLI_ONLY},
    {"host", 'H', CFG_STRING, AOPT(host), NULL, 0, 0, "IP",
     "one host: out = what it sent, in = what it received (default: the whole fleet)",
     CFG_CLI_ONLY},
    {"app", 'a', CFG_STRING, AOPT(app), NULL, 0, 0, "LABEL", "one application label",
     CFG_CLI_ONLY},
    {"step", 'e', CFG_STRING, AOPT(step), "5m", 0, 0, "TIME",
     "one row per step (whole minutes; 1h, 1d...)", CFG_CLI_ONLY},
    {"forecast", 'F', CFG_BOOL, AOPT(forecast), NULL, 0, 0, NULL,
     "fit a linear trend to the daily 95th percentiles and say when --capacity is reached",
     CFG_CLI_ONLY},
    {"capacity", 'c', CFG_STRING, AOPT(capacity), NULL, 0, 0, "RATE",
     "the link's capacity in bits/s: 10G, 2.5G, 100M (decimal units)", CFG_CLI_ONLY},
    CFG_END,
};

static struct cfg_program bandwidth_program = {
    .name = "vigil bandwidth",
    .usage = "usage: vigil bandwidth [--host IP | --app LABEL] [--since WHEN] [--until WHEN]\n"
             "                       [--step TIME] [options]\n"
             "       vigil bandwidth --forecast --capacity RATE [--since 90d] [--host IP]\n"
             "\n"
             "Traffic in and out per step: bytes, average rate and the 50th/95th/99th\n"
             "percentile and peak of the per-interval rates (1-minute intervals while the\n"
             "aggregator keeps minutes, else hourly), and the same over the whole range — the\n"
             "95th percentile as links are billed. Fleet-wide, out is initiator-to-responder\n"
             "traffic (each flow counted once). --forecast fits a least-squares line to the\n"
             "daily 95th percentiles (the busier direction) and says when it reaches\n"
             "--capacity. Example: vigil bandwidth --host 10.1.2.3 --since 30d --step 1h"
             CONN_CONFIG_NOTE,
    .version = VIGIL_VERSION,
    .options = bandwidth_table,
    .common_offset = offsetof(struct analyst_options, common),
};

static const struct cfg_option latency_table[] = {
    CONN_OPTIONS(struct analyst_options, conn, "10s"),
    {"since", 's', CFG_STRING, AOPT(since), "24h", 0, 0, "WHEN",
     "from: a duration back from now, an RFC 3339 time, or 'all'", CFG_CLI_ONLY},
    {"until", 'u', CFG_STRING, AOPT(until), NULL, 0, 0, "WHEN", "to (exclusive); default now",
     CFG_CLI_ONLY},
    {"host", 'H', CFG_STRING, AOPT(host), NULL, 0, 0, "IP", "flows of this host only",
     CFG_CLI_ONLY},
    {"step", 'e', CFG_STRING, AOPT(step), "5m", 0, 0, "TIME", "one point per step",
     CFG_CLI_ONLY},
    {"group", 'g', CFG_STRING, AOPT(group), "none", 0, 0, "BY",
     "none, src (per client) or dst (per server): the slowest first", CFG_CLI_ONLY},
    {"limit", 'n', CFG_UINT, AOPT(limit), "10", 1, 100, "N", "with --group: the N slowest",
     CFG_CLI_ONLY},
    CFG_END,
};

static struct cfg_program latency_program = {
    .name = "vigil latency",
    .usage = "usage: vigil latency [--host IP] [--group none|src|dst] [--since WHEN]\n"
             "                     [--until WHEN] [--step TIME] [options]\n"
             "\n"
             "TCP handshake round-trip times (p50/p95/p99/max, µs) and retransmitted segments\n"
             "per step, from the flows stored for the range; with --group, per client or\n"
             "server, the slowest (by 95th percentile) first. Example, the 3 AM question:\n"
             "vigil latency --since 24h --step 5m --group dst" CONN_CONFIG_NOTE,
    .version = VIGIL_VERSION,
    .options = latency_table,
    .common_offset = offsetof(struct analyst_options, common),
};

/* --step as whole seconds (a multiple of 60) into buf; -1 to go on. */
static int step_arg(const char *prog, const char *text, char buf[24], uint64_t *secs)
{
    int64_t ns;
    if (cfg_parse_duration(text, &ns) != 0 || ns <= 0 || ns % (60 * NS_PER_SEC) != 0) {
        fprintf(stderr, "%s: --step: '%s' is not whole minutes (5m, 1h, 1d)\n", prog, text);
        return CLI_EXIT_USAGE;
    }
    *secs = (uint64_t)(ns / NS_PER_SEC);
    snprintf(buf, 24, "%" PRIu64, *secs);
    return -1;
}

/* The rows of r whose scope is `scope`, as a response sharing r's rows
 * (free rows only). */
static Vigil__QueryResponse scoped(const Vigil__QueryResponse *r, const char *scope)
{
    Vigil__QueryResponse v = *r;
    int c = answer_column(r, "scope");
    v.rows = malloc((r->n_rows ? r->n_rows : 1) * sizeof *v.rows);
    v.n_rows = 0;
    for (size_t i = 0; v.rows && i < r->n_rows; i++)
        if (strcmp(answer_cell(r, i, c), scope) == 0)
            v.rows[v.n_rows++] = r->rows[i];
    return v;
}

/* One labelled sparkline of column `col` over the rows of v. */
static void print_spark(const char *label, int width, const Vigil__QueryResponse *v,
                        const char *col, bool utf8)
{
    int c = answer_column(v, col);
    double *x = malloc((v->n_rows ? v->n_rows : 1) * sizeof *x);
    char line[SPARK_MAX_BYTES], peak[48];
    double top = 0;
    if (!x || c < 0) {
        free(x);
        return;
    }
    for (size_t i = 0; i < v->n_rows; i++) {
        x[i] = answer_number(v, i, c);
        if (x[i] > top)
            top = x[i];
    }
    sparkline(line, sizeof line, x, v->n_rows, SPARK_WIDTH, utf8);
    if (strstr(col, "bps"))
        output_format_rate(top, peak, sizeof peak);
    else if (strstr(col, "rate"))
        snprintf(peak, sizeof peak, "%.3f%%", top * 100);
    else
        snprintf(peak, sizeof peak, "%.0f", top);
    printf("%-*s %s  (peak %s)\n", width, label, line, peak);
    free(x);
}

/* Shows a rate cell for people. */
static void rate_text(const Vigil__QueryResponse *r, size_t i, const char *col, char *out,
                      size_t len)
{
    output_format_rate(answer_number(r, i, answer_column(r, col)), out, len);
}

/* Prints the answer (or why not); returns the exit code. */
static int show(const char *prog, enum out_format fmt, Vigil__Envelope *env,
                int (*table)(const Vigil__QueryResponse *r))
{
    const Vigil__QueryResponse *r = env->response;
    int rc = CLI_EXIT_OK;
    if (!r->ok) {
        fprintf(stderr, "%s: the aggregator refused the query: %s\n", prog, r->error);
        return CLI_EXIT_FAIL;
    }
    if (fmt != OUT_TABLE) {
        if (output_write(stdout, fmt, r, NULL, vigil_wallclock_ns()) != 0)
            rc = CLI_EXIT_FAIL;
    } else if (r->n_rows == 0) {
        fprintf(stderr, "%s: no traffic in this range (see --since)\n", prog);
    } else {
        rc = table(r);
    }
    if (r->truncated)
        fprintf(stderr, "%s: note: the answer is incomplete (a time or size bound was hit): "
                        "narrow the range or take a larger step\n", prog);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "%s: cannot write the output\n", prog);
        rc = CLI_EXIT_FAIL;
    }
    return rc;
}

/* ---- bandwidth -------------------------------------------------------------------- */

static const struct table_column bandwidth_view[] = {
    {"start", "STEP", COL_TIME},
    {"bytes_in", "IN", COL_BYTES},
    {"in_bps", "IN AVG", COL_RATE},
    {"in_p50_bps", "IN P50", COL_RATE},
    {"in_p95_bps", "IN P95", COL_RATE},
    {"in_p99_bps", "IN P99", COL_RATE},
    {"in_max_bps", "IN MAX", COL_RATE},
    {"bytes_out", "OUT", COL_BYTES},
    {"out_bps", "OUT AVG", COL_RATE},
    {"out_p50_bps", "OUT P50", COL_RATE},
    {"out_p95_bps", "OUT P95", COL_RATE},
    {"out_p99_bps", "OUT P99", COL_RATE},
    {"out_max_bps", "OUT MAX", COL_RATE},
    {NULL, NULL, COL_PLAIN},
};

static int bandwidth_table_out(const Vigil__QueryResponse *r)
{
    Vigil__QueryResponse steps = scoped(r, "step"), range = scoped(r, "range");
    bool utf8 = sparkline_utf8();
    int rc = CLI_EXIT_OK;
    if (!steps.rows || !range.rows) {
        rc = CLI_EXIT_FAIL;
        goto out;
    }
    if (output_write(stdout, OUT_TABLE, &steps, bandwidth_view, vigil_wallclock_ns()) != 0)
        rc = CLI_EXIT_FAIL;
    if (range.n_rows) {
        char p[4][2][32];
        static const char *const cols[4][2] = {{"in_bps", "out_bps"},
                                               {"in_p95_bps", "out_p95_bps"},
                                               {"in_p99_bps", "out_p99_bps"},
                                               {"in_max_bps", "out_max_bps"}};
        for (int k = 0; k < 4; k++)
            for (int d = 0; d < 2; d++)
                rate_text(&range, 0, cols[k][d], p[k][d], sizeof p[k][d]);
        printf("\nrange %s .. %s: %s samples of %s s\n",
               answer_cell(&range, 0, answer_column(&range, "start")),
               answer_cell(&range, 0, answer_column(&range, "end")),
               answer_cell(&range, 0, answer_column(&range, "samples")),
               answer_cell(&range, 0, answer_column(&range, "interval")));
        printf("  in : avg %s  p95 %s  p99 %s  max %s\n", p[0][0], p[1][0], p[2][0], p[3][0]);
        printf("  out: avg %s  p95 %s  p99 %s  max %s\n\n", p[0][1], p[1][1], p[2][1], p[3][1]);
    }
    print_spark("in  (p95)", 14, &steps, "in_p95_bps", utf8);
    print_spark("out (p95)", 14, &steps, "out_p95_bps", utf8);
out:
    free(steps.rows);
    free(range.rows);
    return rc;
}

static const struct table_column forecast_view[] = {
    {"day", "DAY", COL_TIME},
    {"p95_in_bps", "P95 IN", COL_RATE},
    {"p95_out_bps", "P95 OUT", COL_RATE},
    {"p95_bps", "P95 (BUSIER)", COL_RATE},
    {"fitted_bps", "TREND", COL_RATE},
    {NULL, NULL, COL_PLAIN},
};

static int forecast_table_out(const Vigil__QueryResponse *r)
{
    Vigil__QueryResponse days = scoped(r, "day"), fit = scoped(r, "fit");
    int rc = CLI_EXIT_OK;
    if (!days.rows || !fit.rows) {
        rc = CLI_EXIT_FAIL;
        goto out;
    }
    if (output_write(stdout, OUT_TABLE, &days, forecast_view, vigil_wallclock_ns()) != 0)
        rc = CLI_EXIT_FAIL;
    if (fit.n_rows) {
        char per_day[32], per_month[32], now[32], cap[32];
        rate_text(&fit, 0, "slope_bps_per_day", per_day, sizeof per_day);
        rate_text(&fit, 0, "slope_bps_per_month", per_month, sizeof per_month);
        rate_text(&fit, 0, "fitted_bps", now, sizeof now);
        rate_text(&fit, 0, "capacity_bps", cap, sizeof cap);
        const char *crossing = answer_cell(&fit, 0, answer_column(&fit, "crossing"));
        printf("\nleast-squares trend of %s daily 95th percentiles (r2 %s):\n",
               answer_cell(&fit, 0, answer_column(&fit, "days")),
               answer_cell(&fit, 0, answer_column(&fit, "r2")));
        printf("  slope     %s%s per day, %s%s per 30 days\n",
               answer_number(&fit, 0, answer_column(&fit, "slope_bps_per_day")) < 0 ? "-" : "+",
               per_day, answer_number(&fit, 0, answer_column(&fit, "slope_bps_per_month")) < 0
                            ? "-" : "+", per_month);
        printf("  now       %s (fitted)\n", now);
        printf("  capacity  %s: %s%s%.10s\n", cap,
               answer_cell(&fit, 0, answer_column(&fit, "verdict")), *crossing ? ", on " : "",
               crossing);
        putchar('\n');
        print_spark("daily p95", 14, &days, "p95_bps", sparkline_utf8());
    }
out:
    free(days.rows);
    free(fit.rows);
    return rc;
}

int cmd_bandwidth(int argc, char **argv)
{
    struct analyst_options o = {0};
    struct cfg_arena *arena = NULL;
    enum out_format fmt;
    struct query_arg args[8];
    size_t n = 0;
    char since[24], until[24], step[24], cap[24];
    const char *prog = bandwidth_program.name;
    int64_t s, u;
    uint64_t secs, bps;
    struct vigil_addr a;
    Vigil__Envelope *env = NULL;

    int rc = analyst_load(&bandwidth_program, &o, argc, argv, &arena, &fmt);
    if (rc >= 0)
        goto done;
    if ((rc = analyst_range(prog, &o, vigil_wallclock_ns(), &s, &u)) >= 0)
        goto done;
    rc = CLI_EXIT_USAGE;
    snprintf(since, sizeof since, "%" PRId64, s);
    snprintf(until, sizeof until, "%" PRId64, u);
    args[n++] = (struct query_arg){"since", since};
    args[n++] = (struct query_arg){"until", until};
    if (o.host && addr_parse(o.host, &a) != 0) {
        fprintf(stderr, "%s: --host: '%s' is not an IPv4 or IPv6 address\n", prog, o.host);
        goto done;
    }
    if (o.host && o.app) {
        fprintf(stderr, "%s: give --host or --app, not both\n", prog);
        goto done;
    }
    if (o.host)
        args[n++] = (struct query_arg){"host", o.host};
    if (o.app)
        args[n++] = (struct query_arg){"app", o.app};
    if (o.forecast) {
        if (!o.capacity || parse_bit_rate(o.capacity, &bps) != 0) {
            fprintf(stderr, "%s: --forecast needs --capacity RATE (10G, 2.5G, 100M: bits/s)%s%s\n",
                    prog, o.capacity ? "; not " : "", o.capacity ? o.capacity : "");
            goto done;
        }
        snprintf(cap, sizeof cap, "%" PRIu64, bps);
        args[n++] = (struct query_arg){"capacity", cap};
        if ((rc = conn_query(prog, &o.conn, "forecast", args, n, &env)) == 0)
            rc = show(prog, fmt, env, forecast_table_out);
        goto done;
    }
    if (o.capacity) {
        fprintf(stderr, "%s: --capacity goes with --forecast\n", prog);
        goto done;
    }
    if ((rc = step_arg(prog, o.step, step, &secs)) >= 0)
        goto done;
    args[n++] = (struct query_arg){"step", step};
    if ((rc = conn_query(prog, &o.conn, "bandwidth", args, n, &env)) == 0)
        rc = show(prog, fmt, env, bandwidth_table_out);
done:
    envelope_free(env);
    cfg_arena_free(arena);
    return rc;
}

/* ---- latency ------------------------------------------------------------------------ */

#define LATENCY_FIGURES                                                                        \
    {"flows", "TCP FLOWS", COL_NUMBER},                                                        \
    {"rtt_flows", "WITH RTT", COL_NUMBER},                                                     \
    {"rtt_p50_us", "RTT P50 µs", COL_NUMBER},                                                  \
    {"rtt_p95_us", "P95 µs", COL_NUMBER},                                                      \
    {"rtt_p99_us", "P99 µs", COL_NUMBER},                                                      \
    {"rtt_max_us", "MAX µs", COL_NUMBER},                                                      \
    {"retrans", "RETRANS", COL_NUMBER},                                                        \
    {"retrans_rate", "RETRANS %", COL_SHARE},                                                  \
    {NULL, NULL, COL_PLAIN}

static const struct table_column latency_steps_view[] = {{"start", "STEP", COL_TIME},
                                                         LATENCY_FIGURES};
static const struct table_column latency_groups_view[] = {{"group", "HOST", COL_PLAIN},
                                                          LATENCY_FIGURES};

static int latency_table_out(const Vigil__QueryResponse *r)
{
    int gc = answer_column(r, "group");
    bool grouped = r->n_rows && *answer_cell(r, 0, gc);
    bool utf8 = sparkline_utf8();
    int rc = CLI_EXIT_OK;

    if (!grouped) {
        Vigil__QueryResponse steps = scoped(r, "step");
        if (!steps.rows)
            return CLI_EXIT_FAIL;
        if (output_write(stdout, OUT_TABLE, &steps, latency_steps_view, vigil_wallclock_ns()))
            rc = CLI_EXIT_FAIL;
        putchar('\n');
        print_spark("rtt p95 µs", 15, &steps, "rtt_p95_us", utf8);
        print_spark("retrans", 14, &steps, "retrans_rate", utf8);
        free(steps.rows);
        return rc;
    }
    /* per group: the range figures in a table, then each group's p95 over time */
    Vigil__QueryResponse range = scoped(r, "range");
    if (!range.rows)
        return CLI_EXIT_FAIL;
    if (output_write(stdout, OUT_TABLE, &range, latency_groups_view, vigil_wallclock_ns()))
        rc = CLI_EXIT_FAIL;
    putchar('\n');
    int width = 14;
    for (size_t g = 0; g < range.n_rows; g++)
        if ((int)strlen(answer_cell(&range, g, gc)) > width)
            width = (int)strlen(answer_cell(&range, g, gc));
    for (size_t g = 0; g < range.n_rows; g++) {
        const char *name = answer_cell(&range, g, gc);
        Vigil__QueryResponse one = *r;
        one.rows = malloc((r->n_rows ? r->n_rows : 1) * sizeof *one.rows);
        one.n_rows = 0;
        int sc = answer_column(r, "scope");
        for (size_t i = 0; one.rows && i < r->n_rows; i++)
            if (strcmp(answer_cell(r, i, gc), name) == 0 &&
                strcmp(answer_cell(r, i, sc), "step") == 0)
                one.rows[one.n_rows++] = r->rows[i];
        print_spark(name, width, &one, "rtt_p95_us", utf8);
        free(one.rows);
    }
    free(range.rows);
    return rc;
}

int cmd_latency(int argc, char **argv)
{
    static const char *const groups[] = {"none", "src", "dst", NULL};
    struct analyst_options o = {0};
    struct cfg_arena *arena = NULL;
    enum out_format fmt;
    struct query_arg args[8];
    size_t n = 0;
    char since[24], until[24], step[24], limit[24];
    const char *prog = latency_program.name;
    int64_t s, u;
    uint64_t secs;
    struct vigil_addr a;
    Vigil__Envelope *env = NULL;
    bool ok = false;

    int rc = analyst_load(&latency_program, &o, argc, argv, &arena, &fmt);
    if (rc >= 0)
        goto done;
    if ((rc = analyst_range(prog, &o, vigil_wallclock_ns(), &s, &u)) >= 0)
        goto done;
    if ((rc = step_arg(prog, o.step, step, &secs)) >= 0)
        goto done;
    rc = CLI_EXIT_USAGE;
    for (const char *const *g = groups; *g; g++)
        ok = ok || strcmp(*g, o.group) == 0;
    if (!ok) {
        fprintf(stderr, "%s: --group: '%s' is not none, src or dst\n", prog, o.group);
        goto done;
    }
    if (o.host && addr_parse(o.host, &a) != 0) {
        fprintf(stderr, "%s: --host: '%s' is not an IPv4 or IPv6 address\n", prog, o.host);
        goto done;
    }
    snprintf(since, sizeof since, "%" PRId64, s);
    snprintf(until, sizeof until, "%" PRId64, u);
    snprintf(limit, sizeof limit, "%" PRIu64, o.limit);
    args[n++] = (struct query_arg){"since", since};
    args[n++] = (struct query_arg){"until", until};
    args[n++] = (struct query_arg){"step", step};
    args[n++] = (struct query_arg){"group", o.group};
    args[n++] = (struct query_arg){"limit", limit};
    if (o.host)
        args[n++] = (struct query_arg){"host", o.host};
    if ((rc = conn_query(prog, &o.conn, "latency", args, n, &env)) == 0)
        rc = show(prog, fmt, env, latency_table_out);
done:
    envelope_free(env);
    cfg_arena_free(arena);
    return rc;
}
