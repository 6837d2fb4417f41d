/* report.c — `vigil report --html FILE`: one self-contained HTML page (no
 * script, font or fetch; charts as inline SVG from svg.c) assembled from
 * several queries: bandwidth in and out stacked by application (series),
 * the share per application with the 80 % line (top, share), top talkers
 * and pairs (top), RTT and retransmissions (latency), alerts on a timeline
 * (alerts, when the aggregator keeps them) and the agents' health (agents).
 *
 * Every cell that came from the aggregator is escaped (svg_escape): host
 * names, application labels and alert summaries come from the network.
 * A query the aggregator refuses leaves its section with the reason, so one
 * missing kind never costs the whole page. */
#include "analyst.h"

#include "clock.h"
#include "err.h"
#include "transport.h"

#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#define AOPT(field) offsetof(struct analyst_options, field)
#define REPORT_APPS 6       /* applications drawn apart; the rest is "other" */
#define REPORT_SHARE_BARS 12
#define REPORT_MAX_POINTS 200

static const struct cfg_option report_table[] = {
    CONN_LINK_OPTIONS(struct analyst_options, conn, "20s"),
    {"format", 'o', CFG_STRING, AOPT(conn.format), "table", 0, 0, "FORMAT", "(unused by report)",
     CFG_NO_DUMP},
    {"since", 's', CFG_STRING, AOPT(since), "7d", 0, 0, "WHEN",
     "from: a duration back from now (24h, 7d), an RFC 3339 time, or 'all'", CFG_CLI_ONLY},
    {"until", 'u', CFG_STRING, AOPT(until), NULL, 0, 0, "WHEN", "to (exclusive); default now",
     CFG_CLI_ONLY},
    {"step", 'e', CFG_STRING, AOPT(step), NULL, 0, 0, "TIME",
     "one chart point per step (default: at most 200 points over the range)", CFG_CLI_ONLY},
    {"html", 'w', CFG_STRING, AOPT(html), NULL, 0, 0, "FILE", "the page to write (required)",
     CFG_CLI_ONLY},
    CONN_CFG_END,
};

static struct cfg_program report_program = {
    .name = "vigil report",
    .usage = "usage: vigil report --html FILE [--since 7d] [--until WHEN] [--step TIME] "
             "[options]\n"
             "\n"
             "Writes one self-contained HTML page (inline SVG charts, no scripts, nothing\n"
             "fetched): bandwidth in and out stacked by application, the share per application\n"
             "with the 80 % line, top talkers and pairs, handshake RTT and retransmissions,\n"
             "alerts on a timeline, agents and their health.",
    .version = VIGIL_VERSION,
    .options = report_table,
    .common_offset = offsetof(struct analyst_options, common),
};

struct report {
    const char *prog;
    const struct analyst_options *o;
    FILE *fp;
    int64_t since, until, now;
    uint64_t step;          /* seconds */
    char since_a[24], until_a[24], step_a[24];
};

/* ---- helpers ------------------------------------------------------------------ */

/* Sends a query; NULL (with *why set to a static or the refusal text) when
 * there is no usable answer. */
static Vigil__Envelope *ask(struct report *rp, const char *kind, const struct query_arg *args,
                            size_t n, const char **why)
{
    Vigil__Envelope *env = NULL;
    if (conn_query(rp->prog, &rp->o->conn, kind, args, n, &env) != 0) {
        *why = "the aggregator did not answer";
        return NULL;
    }
    if (!env->response->ok) {
        *why = env->response->error;
        return env; /* the caller shows why, then frees */
    }
    *why = NULL;
    return env;
}

static void text(struct report *rp, const char *s)
{
    svg_escape(rp->fp, s);
}

static void note(struct report *rp, const char *what, const char *why)
{
    fputs("<p class=\"note\">", rp->fp);
    text(rp, what);
    fputs(": ", rp->fp);
    text(rp, why);
    fputs("</p>\n", rp->fp);
}

static int64_t cell_time_ns(const Vigil__QueryResponse *r, size_t i, int c)
{
    int64_t ns = 0;
    cli_parse_rfc3339(answer_cell(r, i, c), &ns);
    return ns;
}

/* An HTML table of the named columns (header, column, style). */
struct hcol {
    const char *header, *column;
    enum col_style style;
};

static void html_table(struct report *rp, const Vigil__QueryResponse *r, const struct hcol *cols,
                       size_t ncols, const char *bar_column)
{
    int bc = bar_column ? answer_column(r, bar_column) : -1;
    double top = 0;
    for (size_t i = 0; bc >= 0 && i < r->n_rows; i++)
        if (answer_number(r, i, bc) > top)
            top = answer_number(r, i, bc);
    fputs("<table><tr>", rp->fp);
    for (size_t k = 0; k < ncols; k++) {
        fputs("<th>", rp->fp);
        text(rp, cols[k].header);
        fputs("</th>", rp->fp);
    }
    fputs("</tr>\n", rp->fp);
    for (size_t i = 0; i < r->n_rows; i++) {
        fputs("<tr>", rp->fp);
        for (size_t k = 0; k < ncols; k++) {
            int c = answer_column(r, cols[k].column);
            const char *v = answer_cell(r, i, c);
            char shown[128];
            switch (cols[k].style) {
            case COL_SHARE: snprintf(shown, sizeof shown, "%.1f%%", strtod(v, NULL) * 100); break;
            case COL_RATE: output_format_rate(strtod(v, NULL), shown, sizeof shown); break;
            case COL_BYTES: {
                double d = strtod(v, NULL);
                static const char *const u[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
                unsigned j = 0;
                while (d >= 1024 && j + 1 < sizeof u / sizeof u[0]) {
                    d /= 1024;
                    j++;
                }
                snprintf(shown, sizeof shown, j ? "%.1f %s" : "%.0f %s", d, u[j]);
                break;
            }
            case COL_TIME: /* "2026-01-01T00:00:05.123456Z" -> "2026-01-01 00:00:05" */
                snprintf(shown, sizeof shown, "%.19s", *v ? v : "-");
                if (strlen(shown) > 10 && shown[10] == 'T')
                    shown[10] = ' ';
                break;
            default: snprintf(shown, sizeof shown, "%s", *v ? v : "-"); break;
            }
            fputs(cols[k].style == COL_PLAIN || cols[k].style == COL_TIME ? "<td>"
                                                                          : "<td class=\"n\">",
                  rp->fp);
            text(rp, shown);
            if (bc >= 0 && c == bc && top > 0)
                fprintf(rp->fp, "<span class=\"bar\" style=\"width:%.0fpx\"></span>",
                        80.0 * answer_number(r, i, bc) / top);
            fputs("</td>", rp->fp);
        }
        fputs("</tr>\n", rp->fp);
    }
    fputs("</table>\n", rp->fp);
}

/* ---- sections ------------------------------------------------------------------ */

/* Bandwidth in and out, stacked by application, and the range's percentiles. */
static void section_bandwidth(struct report *rp)
{
    struct query_arg args[] = {{"since", rp->since_a}, {"until", rp->until_a},
                               {"step", rp->step_a}};
    char lim[8];
    snprintf(lim, sizeof lim, "%d", REPORT_APPS);
    struct query_arg sargs[] = {{"since", rp->since_a}, {"until", rp->until_a},
                                {"step", rp->step_a}, {"limit", lim}};
    const char *why;

    fputs("<h2>Bandwidth</h2>\n", rp->fp);
    Vigil__Envelope *bw = ask(rp, "bandwidth", args, 3, &why);
    if (bw && !why) {
        const Vigil__QueryResponse *r = bw->response;
        int sc = answer_column(r, "scope");
        for (size_t i = 0; i < r->n_rows; i++) {
            if (strcmp(answer_cell(r, i, sc), "range") != 0)
                continue;
            char v[4][32];
            static const char *const cols[4] = {"in_p95_bps", "out_p95_bps", "in_max_bps",
                                                "out_max_bps"};
            for (int k = 0; k < 4; k++)
                output_format_rate(answer_number(r, i, answer_column(r, cols[k])), v[k],
                                   sizeof v[k]);
            fprintf(rp->fp, "<p class=\"figures\" data-in-p95=\"%s\" data-out-p95=\"%s\">"
                            "95th percentile (of %s-second rates): in <b>%s</b>, out <b>%s</b>; "
                            "peak: in %s, out %s</p>\n",
                    answer_cell(r, i, answer_column(r, "in_p95_bps")),
                    answer_cell(r, i, answer_column(r, "out_p95_bps")),
                    answer_cell(r, i, answer_column(r, "interval")), v[0], v[1], v[2], v[3]);
        }
    } else {
        note(rp, "bandwidth", why);
    }
    envelope_free(bw);

    Vigil__Envelope *se = ask(rp, "series", sargs, 4, &why);
    if (!se || why) {
        note(rp, "series", why);
        envelope_free(se);
        return;
    }
    const Vigil__QueryResponse *r = se->response;
    int tc = answer_column(r, "start"), ac = answer_column(r, "app"),
        oc = answer_column(r, "other"), outc = answer_column(r, "bytes_out"),
        inc = answer_column(r, "bytes_in");
    /* steps from the range, groups in the order the answer gives them */
    int64_t first = rp->since - rp->since % ((int64_t)rp->step * NS_PER_SEC);
    size_t npts = 0;
    for (size_t i = 0; i < r->n_rows; i++) {
        size_t k = (size_t)((cell_time_ns(r, i, tc) - first) / ((int64_t)rp->step * NS_PER_SEC));
        if (k + 1 > npts && k < REPORT_MAX_POINTS * 4)
            npts = k + 1;
    }
    const char *names[REPORT_APPS + 1];
    size_t ng = 0;
    for (size_t i = 0; i < r->n_rows && ng < REPORT_APPS + 1; i++) {
        const char *nm = strcmp(answer_cell(r, i, oc), "true") == 0 ? "other"
                                                                    : answer_cell(r, i, ac);
        bool seen = false;
        for (size_t g = 0; g < ng && !seen; g++)
            seen = strcmp(names[g], nm) == 0;
        if (!seen)
            names[ng++] = nm;
    }
    int64_t *t = calloc(npts ? npts : 1, sizeof *t);
    double *vin = calloc((npts ? npts : 1) * (ng ? ng : 1), sizeof *vin);
    double *vout = calloc((npts ? npts : 1) * (ng ? ng : 1), sizeof *vout);
    if (!t || !vin || !vout)
        goto out;
    for (size_t k = 0; k < npts; k++)
        t[k] = first + (int64_t)k * (int64_t)rp->step * NS_PER_SEC;
    for (size_t i = 0; i < r->n_rows; i++) {
        size_t k = (size_t)((cell_time_ns(r, i, tc) - first) / ((int64_t)rp->step * NS_PER_SEC));
        const char *nm = strcmp(answer_cell(r, i, oc), "true") == 0 ? "other"
                                                                    : answer_cell(r, i, ac);
        for (size_t g = 0; g < ng && k < npts; g++)
            if (strcmp(names[g], nm) == 0) {
                vout[g * npts + k] = answer_number(r, i, outc) * 8.0 / (double)rp->step;
                vin[g * npts + k] = answer_number(r, i, inc) * 8.0 / (double)rp->step;
            }
    }
    /* "other" is drawn only when it carries something */
    size_t drawn = ng;
    if (ng && strcmp(names[ng - 1], "other") == 0) {
        double sum = 0;
        for (size_t k = 0; k < npts; k++)
            sum += vin[(ng - 1) * npts + k] + vout[(ng - 1) * npts + k];
        if (sum == 0)
            drawn = ng - 1;
    }
    struct svg_series sin[REPORT_APPS + 1], sout[REPORT_APPS + 1];
    for (size_t g = 0; g < drawn; g++) {
        const char *label = *names[g] ? names[g] : "(unlabelled)";
        sin[g] = (struct svg_series){label, vin + g * npts};
        sout[g] = (struct svg_series){label, vout + g * npts};
    }
    struct svg_axis ax = {t, npts, "bit/s"};
    fputs("<p class=\"caption\">Average rate per step, stacked by application. Out: initiator "
          "to responder; in: responder to initiator (each flow once).</p>\n", rp->fp);
    svg_stacked(rp->fp, "bandwidth_out", "Out (bits/s) by application", &ax, sout, drawn);
    svg_stacked(rp->fp, "bandwidth_in", "In (bits/s) by application", &ax, sin, drawn);
out:
    free(t);
    free(vin);
    free(vout);
    envelope_free(se);
}

/* The share per application, with the 80 % line, and the fewest that make it. */
static void section_share(struct report *rp)
{
    char lim[8];
    snprintf(lim, sizeof lim, "%d", REPORT_SHARE_BARS);
    struct query_arg targs[] = {{"since", rp->since_a}, {"until", rp->until_a},
                                {"group", "app"},       {"limit", lim}};
    struct query_arg sargs[] = {{"since", rp->since_a}, {"until", rp->until_a},
                                {"group", "app"},       {"share", "80"}};
    const char *why;

    fputs("<h2>Which applications use the bandwidth</h2>\n", rp->fp);
    Vigil__Envelope *sh = ask(rp, "share", sargs, 4, &why);
    if (sh && !why) {
        const Vigil__QueryResponse *r = sh->response;
        int ac = answer_column(r, "app");
        fprintf(rp->fp, "<p class=\"figures\" data-share-apps=\"%zu\">%zu application%s make "
                        "80%% of the bytes: ",
                r->n_rows, r->n_rows, r->n_rows == 1 ? "" : "s");
        for (size_t i = 0; i < r->n_rows; i++) {
            fputs(i ? ", <b>" : "<b>", rp->fp);
            text(rp, *answer_cell(r, i, ac) ? answer_cell(r, i, ac) : "(unlabelled)");
            fputs("</b>", rp->fp);
        }
        fputs("</p>\n", rp->fp);
    } else {
        note(rp, "share", why);
    }
    envelope_free(sh);

    Vigil__Envelope *tp = ask(rp, "top", targs, 4, &why);
    if (!tp || why) {
        note(rp, "top applications", why);
        envelope_free(tp);
        return;
    }
    const Vigil__QueryResponse *r = tp->response;
    size_t n = r->n_rows;
    const char *labels[REPORT_SHARE_BARS];
    double share[REPORT_SHARE_BARS], cum[REPORT_SHARE_BARS], run = 0;
    int ac = answer_column(r, "app"), sc = answer_column(r, "share");
    if (n > REPORT_SHARE_BARS)
        n = REPORT_SHARE_BARS;
    for (size_t i = 0; i < n; i++) {
        labels[i] = answer_cell(r, i, ac);
        share[i] = answer_number(r, i, sc);
        run += share[i];
        cum[i] = run > 1 ? 1 : run;
    }
    svg_share(rp->fp, "share", "Share of bytes per application (line: cumulative)", labels,
              share, cum, n, 0.8);
    envelope_free(tp);
}

static void section_top(struct report *rp, const char *group, const char *title)
{
    struct query_arg args[] = {{"since", rp->since_a}, {"until", rp->until_a},
                               {"group", group},       {"limit", "10"}};
    static const struct hcol host_cols[] = {
        {"host", "host", COL_PLAIN},        {"bytes", "bytes", COL_BYTES},
        {"out", "bytes_out", COL_BYTES},    {"in", "bytes_in", COL_BYTES},
        {"flows", "flows", COL_NUMBER},     {"share", "share", COL_SHARE},
    };
    static const struct hcol pair_cols[] = {
        {"host a", "host_a", COL_PLAIN},    {"host b", "host_b", COL_PLAIN},
        {"bytes", "bytes", COL_BYTES},      {"a to b", "bytes_out", COL_BYTES},
        {"b to a", "bytes_in", COL_BYTES},  {"flows", "flows", COL_NUMBER},
        {"share", "share", COL_SHARE},
    };
    const char *why;
    fputs("<h2>", rp->fp);
    text(rp, title);
    fputs("</h2>\n", rp->fp);
    Vigil__Envelope *env = ask(rp, "top", args, 4, &why);
    if (env && !why) {
        if (strcmp(group, "pair") == 0)
            html_table(rp, env->response, pair_cols, sizeof pair_cols / sizeof pair_cols[0],
                       "bytes");
        else
            html_table(rp, env->response, host_cols, sizeof host_cols / sizeof host_cols[0],
                       "bytes");
    } else {
        note(rp, title, why);
    }
    envelope_free(env);
}

static void section_latency(struct report *rp)
{
    struct query_arg args[] = {{"since", rp->since_a}, {"until", rp->until_a},
                               {"step", rp->step_a}};
    const char *why;
    fputs("<h2>Latency</h2>\n", rp->fp);
    Vigil__Envelope *env = ask(rp, "latency", args, 3, &why);
    if (!env || why) {
        note(rp, "latency", why);
        envelope_free(env);
        return;
    }
    const Vigil__QueryResponse *r = env->response;
    int sc = answer_column(r, "scope"), tc = answer_column(r, "start");
    int c50 = answer_column(r, "rtt_p50_us"), c95 = answer_column(r, "rtt_p95_us"),
        crr = answer_column(r, "retrans_rate");
    size_t n = 0;
    int64_t *t = calloc(r->n_rows ? r->n_rows : 1, sizeof *t);
    double *p50 = calloc(r->n_rows ? r->n_rows : 1, sizeof *p50);
    double *p95 = calloc(r->n_rows ? r->n_rows : 1, sizeof *p95);
    double *rr = calloc(r->n_rows ? r->n_rows : 1, sizeof *rr);
    if (t && p50 && p95 && rr) {
        for (size_t i = 0; i < r->n_rows; i++) {
            /* a step without handshakes has no RTT: no point, rather than a false 0 */
            if (strcmp(answer_cell(r, i, sc), "step") != 0 || !*answer_cell(r, i, c95))
                continue;
            t[n] = cell_time_ns(r, i, tc);
            p50[n] = answer_number(r, i, c50);
            p95[n] = answer_number(r, i, c95);
            rr[n] = answer_number(r, i, crr) * 100.0;
            n++;
        }
        struct svg_axis ax = {t, n, "µs"};
        struct svg_series rtt[] = {{"p50", p50}, {"p95", p95}};
        svg_lines(rp->fp, "rtt", "TCP handshake RTT (µs), steps with handshakes", &ax, rtt, 2, 0);
        struct svg_axis ax2 = {t, n, "%"};
        struct svg_series re[] = {{"retransmitted segments", rr}}; /* same steps as RTT */
        svg_lines(rp->fp, "retrans", "Retransmitted TCP segments (% of packets)", &ax2, re, 1, 0);
    }
    free(t);
    free(p50);
    free(p95);
    free(rr);
    envelope_free(env);
}

static void section_alerts(struct report *rp)
{
    struct query_arg args[] = {{"since", rp->since_a}, {"until", rp->until_a}};
    const char *why;
    fputs("<h2>Alerts</h2>\n", rp->fp);
    Vigil__Envelope *env = ask(rp, "alerts", args, 2, &why);
    if (!env || why) {
        /* an aggregator without alerts answers "unknown query kind": an empty timeline */
        bool unknown = why && strstr(why, "unknown query kind");
        svg_timeline(rp->fp, "alerts", "Alerts", rp->since, rp->until, NULL, 0,
                     unknown ? "no alerts (this aggregator keeps none)" : "no alerts");
        if (!unknown && why)
            note(rp, "alerts", why);
        envelope_free(env);
        return;
    }
    const Vigil__QueryResponse *r = env->response;
    struct svg_event *ev = calloc(r->n_rows ? r->n_rows : 1, sizeof *ev);
    char(*label)[160] = calloc(r->n_rows ? r->n_rows : 1, sizeof *label);
    int fc = answer_column(r, "first_seen"), lc = answer_column(r, "last_seen"),
        tc = answer_column(r, "type"), vc = answer_column(r, "severity"),
        mc = answer_column(r, "summary");
    if (ev && label) {
        for (size_t i = 0; i < r->n_rows; i++) {
            snprintf(label[i], sizeof label[i], "%s: %s", answer_cell(r, i, tc),
                     answer_cell(r, i, mc));
            ev[i] = (struct svg_event){label[i], answer_cell(r, i, vc), cell_time_ns(r, i, fc),
                                       cell_time_ns(r, i, lc)};
        }
        svg_timeline(rp->fp, "alerts", "Alerts", rp->since, rp->until, ev, r->n_rows,
                     "no alerts");
    }
    free(ev);
    free(label);
    envelope_free(env);
}

static void section_agents(struct report *rp)
{
    static const struct hcol cols[] = {
        {"agent", "agent", COL_PLAIN},
        {"last seen", "last_seen", COL_TIME},
        {"records", "records", COL_NUMBER},
        {"flows", "flows", COL_NUMBER},
        {"capture drops", "capture_drops", COL_NUMBER},
        {"interface drops", "interface_drops", COL_NUMBER},
        {"evictions", "evictions", COL_NUMBER},
        {"spooled batches", "spool_batches", COL_NUMBER},
        {"spool", "spool_bytes", COL_BYTES},
        {"spool lost", "spool_dropped_batches", COL_NUMBER},
    };
    const char *why;
    fputs("<h2>Agents</h2>\n", rp->fp);
    Vigil__Envelope *env = ask(rp, "agents", NULL, 0, &why);
    if (env && !why)
        html_table(rp, env->response, cols, sizeof cols / sizeof cols[0], NULL);
    else
        note(rp, "agents", why);
    envelope_free(env);
}

static const char style_sheet[] =
    "body{font:14px/1.4 sans-serif;margin:24px;color:#222;max-width:960px}"
    "h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 6px;"
    "border-bottom:1px solid #ddd}"
    "table{border-collapse:collapse;margin:6px 0}td,th{padding:3px 10px;text-align:left;"
    "border-bottom:1px solid #eee}td.n{text-align:right;white-space:nowrap}"
    ".bar{display:inline-block;height:9px;background:#4e79a7;margin-left:6px}"
    ".note,.caption{color:#666}svg.chart{display:block;margin:8px 0}"
    ".ctitle{font:bold 13px sans-serif}.ylab{font:11px sans-serif;text-anchor:end;fill:#555}"
    ".xlab{font:11px sans-serif;fill:#555}.legend{font:11px sans-serif}"
    ".grid{stroke:#e3e3e3}.note{font:12px sans-serif;fill:#888;text-anchor:middle}";

/* Picks a step giving at most REPORT_MAX_POINTS points. */
static uint64_t auto_step(int64_t since, int64_t until)
{
    static const uint64_t steps[] = {60, 300, 900, 1800, 3600, 10800, 21600, 43200, 86400,
                                     7 * 86400};
    uint64_t span = (uint64_t)(until - since) / NS_PER_SEC;
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++)
        if (span / steps[i] <= REPORT_MAX_POINTS)
            return steps[i];
    return 7 * 86400;
}

int cmd_report(int argc, char **argv)
{
    struct analyst_options o = {0};
    struct cfg_arena *arena = NULL;
    enum out_format fmt;
    struct report rp = {.prog = report_program.name, .o = &o};
    char tmp[4200];

    int rc = analyst_load(&report_program, &o, argc, argv, &arena, &fmt);
    if (rc >= 0)
        goto done;
    rp.now = vigil_wallclock_ns();
    if ((rc = analyst_range(rp.prog, &o, rp.now, &rp.since, &rp.until)) >= 0)
        goto done;
    rc = CLI_EXIT_USAGE;
    if (!o.html) {
        fprintf(stderr, "%s: --html FILE is required (the page to write)\n", rp.prog);
        goto done;
    }
    if (o.step) {
        int64_t ns;
        if (cfg_parse_duration(o.step, &ns) != 0 || ns <= 0 || ns % (60 * NS_PER_SEC) != 0) {
            fprintf(stderr, "%s: --step: '%s' is not whole minutes (5m, 1h, 1d)\n", rp.prog,
                    o.step);
            goto done;
        }
        rp.step = (uint64_t)(ns / NS_PER_SEC);
    } else {
        rp.step = auto_step(rp.since, rp.until);
    }
    if ((uint64_t)(rp.until - rp.since) / NS_PER_SEC / rp.step > 4 * REPORT_MAX_POINTS) {
        fprintf(stderr, "%s: a step of %" PRIu64 " s gives more than %d points: take a larger "
                "--step or a shorter range\n", rp.prog, rp.step, 4 * REPORT_MAX_POINTS);
        goto done;
    }
    snprintf(rp.since_a, sizeof rp.since_a, "%" PRId64, rp.since);
    snprintf(rp.until_a, sizeof rp.until_a, "%" PRId64, rp.until);
    snprintf(rp.step_a, sizeof rp.step_a, "%" PRIu64, rp.step);
    /* written beside the target and renamed: a reader never sees half a page */
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp", o.html) >= sizeof tmp) {
        fprintf(stderr, "%s: --html: the path is too long\n", rp.prog);
        goto done;
    }
    rp.fp = fopen(tmp, "w");
    if (!rp.fp) {
        fprintf(stderr, "%s: cannot write %s: %s\n", rp.prog, tmp, vigil_strerror(-errno));
        rc = CLI_EXIT_FAIL;
        goto done;
    }
    char from[40], to[40];
    vigil_format_rfc3339(rp.since, from, sizeof from);
    vigil_format_rfc3339(rp.until, to, sizeof to);
    fprintf(rp.fp, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                   "<title>vigil report</title><style>%s</style></head>\n"
                   "<body data-since=\"%" PRId64 "\" data-until=\"%" PRId64 "\" data-step=\"%"
                   PRIu64 "\">\n<h1>vigil report</h1>\n<p class=\"caption\">%s to %s, one "
                   "point per %" PRIu64 " s</p>\n",
            style_sheet, rp.since, rp.until, rp.step, from, to, rp.step);
    section_bandwidth(&rp);
    section_share(&rp);
    section_top(&rp, "host", "Top talkers");
    section_top(&rp, "pair", "Top pairs");
    section_latency(&rp);
    section_alerts(&rp);
    section_agents(&rp);
    fputs("</body></html>\n", rp.fp);
    bool bad = fflush(rp.fp) != 0 || ferror(rp.fp);
    bad = fclose(rp.fp) != 0 || bad;
    if (bad || rename(tmp, o.html) != 0) {
        fprintf(stderr, "%s: cannot write %s\n", rp.prog, o.html);
        remove(tmp);
        rc = CLI_EXIT_FAIL;
        goto done;
    }
    printf("%s: wrote %s\n", rp.prog, o.html);
    rc = CLI_EXIT_OK;
done:
    cfg_arena_free(arena);
    return rc;
}
