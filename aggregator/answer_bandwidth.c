/* answer_bandwidth.c — bandwidth planning from the rollups: bandwidth (a
 * series in and out with percentiles per step and over the range), series
 * (bytes per step stacked by application, for the report), share (the
 * smallest set of groups that carries a given share of the traffic) and
 * forecast (a linear trend of daily 95th percentiles against a capacity).
 * The arguments of each are listed in service.h.
 *
 * What is counted (the rollups, query.h):
 *  - one host: out = bytes the host sent, in = bytes it received;
 *  - the fleet (no host): the application rollup, where each record counts
 *    once — the host rollup counts a flow at both of its ends, so summing
 *    hosts would count traffic between two fleet hosts twice. Fleet-wide
 *    out = initiator to responder, in = responder to initiator (for a
 *    fleet of clients: upload and download);
 *  - a record's bytes count in the minute its record ended (an agent
 *    reports a long flow every active timeout, 60 s by default).
 *
 * Rates and percentiles: a sample is one interval of the finest tier still
 * kept for the whole range that divides the step (1 min, else 1 h, else
 * 1 day); its rate is bytes * 8 / interval seconds (bits/s). Percentiles
 * are nearest-rank over the samples (stats.h): per step over the samples
 * inside it, and over the range over every sample, as a link is billed on
 * the 95th percentile of its 5-minute rates. An interval without traffic is
 * a sample of 0 bit/s; an interval not yet over (it ends after the
 * aggregator's now) is no sample at all, so a step in progress is not
 * understated and one entirely in the future is not shown; nor is one
 * before the store's first data (the range starts at the step holding it). */
#include "answer.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "err.h"
#include "query.h"
#include "query_series.h"
#include "service.h"
#include "stats.h"

#define DAY_S 86400u
#define FORECAST_HORIZON_YEARS 10
#define SERIES_DEFAULT_GROUPS 6u
#define BANDWIDTH_DEFAULT_STEP 300u

static const char *const group_words[] = {"host", "app", "port", "pair", NULL};
static const char *const metric_words[] = {"bytes", "packets", "flows", NULL};

/* step=SECONDS: a multiple of 60 within the range a day's or a year's
 * steps allow. */
static int arg_step(struct answer *a, uint32_t def, uint32_t *out)
{
    uint64_t v = def;
    int rc = arg_u64(a, "step", 60, 366ull * DAY_S, &v);
    if (rc)
        return rc;
    if (v % 60 != 0 || (v > 3600 && v % 3600 != 0 && v < DAY_S) ||
        (v > DAY_S && v % DAY_S != 0)) {
        snprintf(a->err, sizeof a->err,
                 "%s: step=%" PRIu64 " must be whole minutes (whole hours past an hour, whole "
                 "days past a day)", a->q->kind, v);
        return VIGIL_EINVAL;
    }
    *out = (uint32_t)v;
    return 0;
}

/* The end of the last complete interval at now (samples after it are not
 * over yet). */
static uint64_t complete_until(int64_t now_ns, uint32_t interval)
{
    uint64_t now_s = now_ns > 0 ? (uint64_t)(now_ns / NS_PER_SEC) : 0;
    return now_s - now_s % interval;
}

static int series_failed(struct answer *a, int rc)
{
    if (rc == VIGIL_EINVAL)
        snprintf(a->err, sizeof a->err,
                 "%s: the range holds more than %u samples: narrow it or take a larger step",
                 a->q->kind, SERIES_MAX_SAMPLES);
    else
        snprintf(a->err, sizeof a->err, "%s: the store failed: %s", a->q->kind,
                 vigil_strerror(rc));
    return rc;
}

/* ---- bandwidth ------------------------------------------------------------------- */

static const char *const bandwidth_columns[] = {
    "scope",       "start",       "end",         "interval",    "samples",
    "bytes_in",    "bytes_out",   "in_bps",      "out_bps",     "in_p50_bps",
    "in_p95_bps",  "in_p99_bps",  "in_max_bps",  "out_p50_bps", "out_p95_bps",
    "out_p99_bps", "out_max_bps", NULL,
};

/* Percentiles of the samples' rates, in and out. */
struct rate_stats {
    size_t samples;
    uint64_t bytes_in, bytes_out;
    uint64_t in[4], out[4]; /* p50, p95, p99, max of the samples' bytes */
};

static void rate_stats(const struct top_counters *c, size_t n, uint64_t *scratch_in,
                       uint64_t *scratch_out, struct rate_stats *rs)
{
    static const unsigned pct[4] = {50, 95, 99, 100};
    memset(rs, 0, sizeof *rs);
    rs->samples = n;
    for (size_t i = 0; i < n; i++) {
        scratch_in[i] = c[i].bytes_in;
        scratch_out[i] = c[i].bytes_out;
        rs->bytes_in += c[i].bytes_in;
        rs->bytes_out += c[i].bytes_out;
    }
    stats_sort_u64(scratch_in, n);
    stats_sort_u64(scratch_out, n);
    for (int j = 0; j < 4; j++) {
        rs->in[j] = stats_percentile(scratch_in, n, pct[j]);
        rs->out[j] = stats_percentile(scratch_out, n, pct[j]);
    }
}

static double bps(uint64_t bytes, uint64_t seconds)
{
    return seconds ? (double)bytes * 8.0 / (double)seconds : 0.0;
}

static int bandwidth_row(struct answer *a, struct cellbuf *cb, const char *scope, uint64_t t0,
                         uint64_t t1, uint32_t iv, const struct rate_stats *rs)
{
    cells_reset(cb);
    cell_text(cb, scope);
    cell_time(cb, (int64_t)t0 * NS_PER_SEC);
    cell_time(cb, (int64_t)t1 * NS_PER_SEC);
    cell_u64(cb, iv);
    cell_u64(cb, rs->samples);
    cell_u64(cb, rs->bytes_in);
    cell_u64(cb, rs->bytes_out);
    cell_fmt(cb, "%.3f", bps(rs->bytes_in, (uint64_t)rs->samples * iv));
    cell_fmt(cb, "%.3f", bps(rs->bytes_out, (uint64_t)rs->samples * iv));
    for (int j = 0; j < 4; j++)
        cell_fmt(cb, "%.3f", bps(rs->in[j], iv));
    for (int j = 0; j < 4; j++)
        cell_fmt(cb, "%.3f", bps(rs->out[j], iv));
    return answer_row(a, cb);
}

/* The series query of bandwidth and forecast: one host, one app, or the
 * fleet. */
static int bandwidth_query(struct answer *a, struct series_query *sq)
{
    struct vigil_addr host;
    bool has_host;
    const char *app = arg_find(a, "app");
    int rc;

    if ((rc = arg_addr(a, "host", &host, &has_host)) != 0)
        return rc;
    if (has_host && app) {
        snprintf(a->err, sizeof a->err, "%s: give host or app, not both", a->q->kind);
        return VIGIL_EINVAL;
    }
    if (has_host) {
        sq->group = TOP_HOST;
        sq->nkeys = 1;
        series_key_host(sq->keys[0], &host);
    } else if (app) {
        sq->group = TOP_APP;
        sq->nkeys = 1;
        if (series_key_app(sq->keys[0], app) != 0) {
            snprintf(a->err, sizeof a->err, "%s: app=\"%s\" is longer than a label", a->q->kind,
                     app);
            return VIGIL_EINVAL;
        }
    } else {
        sq->group = TOP_APP;
        sq->total = true;
    }
    return 0;
}

int answer_bandwidth(struct answer *a)
{
    static const char *const known[] = {"host", "app", "since", "until", "step", NULL};
    struct series_query sq = {0};
    struct series_result res;
    uint32_t step = BANDWIDTH_DEFAULT_STEP;
    int rc;

    a->columns = bandwidth_columns;
    if ((rc = args_known(a, known)) != 0 || (rc = arg_range(a, &sq.since_ns, &sq.until_ns)) != 0 ||
        (rc = arg_step(a, BANDWIDTH_DEFAULT_STEP, &step)) != 0 ||
        (rc = bandwidth_query(a, &sq)) != 0)
        return rc;
    sq.step = step;
    sq.res = SERIES_FINEST;
    if ((rc = store_query_series(a->st, &sq, &res)) != 0)
        return series_failed(a, rc);

    const struct top_counters *c = sq.total ? res.total : res.key[0];
    uint32_t iv = res.interval, per = step / iv;
    uint64_t last = complete_until(a->now_ns, iv);
    size_t n = res.n;
    while (n > 0 && res.from_s + (uint64_t)n * iv > last)
        n--; /* intervals not over yet */
    if (n / per + 1 > SERVICE_MAX_ROWS) {
        snprintf(a->err, sizeof a->err, "bandwidth: %zu steps are more than an answer holds "
                 "(%u): take a larger step", n / per, SERVICE_MAX_ROWS);
        series_result_free(&res);
        return VIGIL_EINVAL;
    }
    uint64_t *si = malloc((n ? n : 1) * sizeof *si), *so = malloc((n ? n : 1) * sizeof *so);
    struct cellbuf *cb = malloc(sizeof *cb);
    struct rate_stats rs;
    if (!si || !so || !cb) {
        rc = VIGIL_ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < n && rc == 0; i += per) {
        size_t k = n - i < per ? n - i : per;
        uint64_t t0 = res.from_s + (uint64_t)i * iv;
        rate_stats(c + i, k, si, so, &rs);
        rc = bandwidth_row(a, cb, "step", t0, t0 + step, iv, &rs);
    }
    if (rc == 0 && n > 0) {
        rate_stats(c, n, si, so, &rs);
        rc = bandwidth_row(a, cb, "range", res.from_s, res.from_s + (uint64_t)n * iv, iv, &rs);
    }
    a->truncated = a->truncated || res.truncated;
out:
    free(si);
    free(so);
    free(cb);
    series_result_free(&res);
    return rc;
}

/* ---- series: bytes per step, stacked by application ------------------------------ */

static const char *const series_columns[] = {"start", "app", "other", "bytes_out", "bytes_in",
                                             NULL};

int answer_series(struct answer *a)
{
    static const char *const known[] = {"since", "until", "step", "limit", NULL};
    struct series_query sq = {0};
    struct series_result res;
    struct top_query tq = {0};
    struct top_result top;
    uint64_t limit = SERIES_DEFAULT_GROUPS;
    uint32_t step = 3600;
    int rc;

    a->columns = series_columns;
    if ((rc = args_known(a, known)) != 0 || (rc = arg_range(a, &sq.since_ns, &sq.until_ns)) != 0 ||
        (rc = arg_step(a, 3600, &step)) != 0 ||
        (rc = arg_u64(a, "limit", 1, SERIES_MAX_KEYS, &limit)) != 0)
        return rc;
    /* the applications to draw apart: the largest over the whole range */
    tq.group = TOP_APP;
    tq.order = TOP_BY_BYTES;
    tq.since_ns = sq.since_ns;
    tq.until_ns = sq.until_ns;
    tq.limit = (unsigned)limit;
    if ((rc = store_query_top(a->st, &tq, &top)) != 0) {
        snprintf(a->err, sizeof a->err, "series: the store failed: %s", vigil_strerror(rc));
        return rc;
    }
    sq.group = TOP_APP;
    sq.step = step;
    sq.res = SERIES_COARSEST;
    sq.total = true;
    for (size_t i = 0; i < top.n; i++)
        series_key_app(sq.keys[sq.nkeys++], top.rows[i].key.app);
    if ((rc = store_query_series(a->st, &sq, &res)) != 0) {
        top_result_free(&top);
        return series_failed(a, rc);
    }
    uint32_t iv = res.interval, per = step / iv;
    uint64_t now_s = a->now_ns > 0 ? (uint64_t)(a->now_ns / NS_PER_SEC) : 0;
    struct cellbuf *cb = malloc(sizeof *cb);
    if (!cb)
        rc = VIGIL_ENOMEM;
    for (size_t i = 0; rc == 0 && i < res.n; i += per) {
        uint64_t t0 = res.from_s + (uint64_t)i * iv;
        if (t0 >= now_s)
            break; /* the future: no samples */
        struct top_counters rest = {0};
        for (size_t j = i; j < i + per && j < res.n; j++) {
            rest.bytes_out += res.total[j].bytes_out;
            rest.bytes_in += res.total[j].bytes_in;
        }
        for (unsigned g = 0; rc == 0 && g <= sq.nkeys; g++) {
            struct top_counters sum = {0};
            if (g < sq.nkeys) {
                for (size_t j = i; j < i + per && j < res.n; j++) {
                    sum.bytes_out += res.key[g][j].bytes_out;
                    sum.bytes_in += res.key[g][j].bytes_in;
                }
                rest.bytes_out -= sum.bytes_out;
                rest.bytes_in -= sum.bytes_in;
            } else {
                sum = rest;
            }
            cells_reset(cb);
            cell_time(cb, (int64_t)t0 * NS_PER_SEC);
            CELL_FIELD(cb, g < sq.nkeys, top.rows[g < sq.nkeys ? g : 0].key.app);
            cell_text(cb, g < sq.nkeys ? "false" : "true");
            cell_u64(cb, sum.bytes_out);
            cell_u64(cb, sum.bytes_in);
            rc = answer_row(a, cb);
        }
    }
    a->truncated = a->truncated || res.truncated || top.truncated;
    free(cb);
    series_result_free(&res);
    top_result_free(&top);
    return rc;
}

/* ---- share: the smallest set of groups that carries pct % ------------------------ */

#define SHARE_VALUES "bytes", "packets", "flows", "share", "cumulative", "rank", "groups", NULL
static const char *const share_columns[TOP_GROUP_COUNT][2 + 7 + 1] = {
    [TOP_HOST] = {"host", SHARE_VALUES},
    [TOP_APP] = {"app", SHARE_VALUES},
    [TOP_PORT] = {"proto", "port", SHARE_VALUES},
    [TOP_PAIR] = {"host_a", "host_b", SHARE_VALUES},
};

static uint64_t top_metric(const struct top_counters *c, enum top_order o)
{
    switch (o) {
    case TOP_BY_PACKETS: return c->pkts_out + c->pkts_in;
    case TOP_BY_FLOWS: return c->flows;
    default: return c->bytes_out + c->bytes_in;
    }
}

/* For hosts a flow counts at both ends, so host shares are of the traffic
 * seen by hosts (the sum over hosts: every byte twice, once at each end)
 * and add up to 100 %; app, port and pair shares are of all traffic. */
int answer_share(struct answer *a)
{
    static const char *const known[] = {"group", "by", "since", "until", "share", NULL};
    struct top_query tq = {0};
    struct top_result res;
    unsigned g = TOP_APP, by = TOP_BY_BYTES;
    uint64_t pct = 80;
    int rc;

    a->columns = share_columns[TOP_APP];
    if ((rc = args_known(a, known)) != 0 || (rc = arg_word(a, "group", group_words, &g)) != 0 ||
        (rc = arg_word(a, "by", metric_words, &by)) != 0 ||
        (rc = arg_range(a, &tq.since_ns, &tq.until_ns)) != 0 ||
        (rc = arg_u64(a, "share", 1, 100, &pct)) != 0)
        return rc;
    a->columns = share_columns[g];
    tq.group = (enum top_group)g;
    tq.order = (enum top_order)by;
    tq.limit = QUERY_MAX_LIMIT;
    if ((rc = store_query_top(a->st, &tq, &res)) != 0) {
        snprintf(a->err, sizeof a->err, "share: the store failed: %s", vigil_strerror(rc));
        return rc;
    }
    uint64_t *m = malloc((res.n ? res.n : 1) * sizeof *m);
    struct cellbuf *cb = malloc(sizeof *cb);
    if (!m || !cb) {
        rc = VIGIL_ENOMEM;
        goto out;
    }
    uint64_t total = top_metric(&res.total, tq.order), listed = 0;
    for (size_t i = 0; i < res.n; i++)
        listed += m[i] = top_metric(&res.rows[i].c, tq.order);
    bool partial = res.groups > res.n; /* more groups than one answer ranks */
    if (tq.group == TOP_HOST)
        total = partial ? 2 * total : listed;
    size_t k = stats_share_cut(m, res.n, total, (unsigned)pct);
    uint64_t cum = 0;
    for (size_t i = 0; i < k && rc == 0; i++) {
        const struct top_row *r = &res.rows[i];
        cum += m[i];
        cells_reset(cb);
        top_key_cells(cb, tq.group, r);
        cell_u64(cb, r->c.bytes_out + r->c.bytes_in);
        cell_u64(cb, r->c.pkts_out + r->c.pkts_in);
        cell_u64(cb, r->c.flows);
        cell_fmt(cb, "%.6f", total ? (double)m[i] / (double)total : 0.0);
        cell_fmt(cb, "%.6f", total ? (double)cum / (double)total : 0.0);
        cell_u64(cb, i + 1);
        cell_u64(cb, res.groups);
        rc = answer_row(a, cb);
    }
    a->truncated = a->truncated || res.truncated || (partial && tq.group == TOP_HOST);
out:
    free(m);
    free(cb);
    top_result_free(&res);
    return rc;
}

/* ---- forecast ---------------------------------------------------------------------- */

static const char *const forecast_columns[] = {
    "scope",          "day",       "p95_in_bps",  "p95_out_bps", "p95_bps",
    "fitted_bps",     "slope_bps_per_day",        "slope_bps_per_month",
    "r2",             "days",      "capacity_bps", "crossing",   "verdict",
    NULL,
};

/* The fit: each complete day with traffic since the first one, its value
 * the higher of the day's 95th percentiles in and out (a duplex link fills
 * in its busier direction), standing at noon UTC of that day (x in days
 * since the epoch). The line is ordinary least squares. */
int answer_forecast(struct answer *a)
{
    static const char *const known[] = {"host", "app", "since", "until", "capacity", NULL};
    struct series_query sq = {0};
    struct series_result res;
    uint64_t capacity = 0;
    int rc;

    a->columns = forecast_columns;
    if ((rc = args_known(a, known)) != 0 || (rc = arg_range(a, &sq.since_ns, &sq.until_ns)) != 0 ||
        (rc = arg_u64(a, "capacity", 1, UINT64_MAX / 2, &capacity)) != 0 ||
        (rc = bandwidth_query(a, &sq)) != 0)
        return rc;
    if (!arg_find(a, "capacity")) {
        snprintf(a->err, sizeof a->err, "forecast: capacity=BITS_PER_SECOND is required");
        return VIGIL_EINVAL;
    }
    /* whole days inside the range only */
    sq.since_ns += (DAY_S * NS_PER_SEC - sq.since_ns % (DAY_S * NS_PER_SEC)) % (DAY_S * NS_PER_SEC);
    sq.until_ns -= sq.until_ns % (DAY_S * NS_PER_SEC);
    if (sq.until_ns <= sq.since_ns) {
        snprintf(a->err, sizeof a->err, "forecast: the range holds no whole day (UTC)");
        return VIGIL_EINVAL;
    }
    sq.step = DAY_S;
    sq.res = SERIES_FINEST;
    if ((rc = store_query_series(a->st, &sq, &res)) != 0)
        return series_failed(a, rc);

    const struct top_counters *c = sq.total ? res.total : res.key[0];
    uint32_t iv = res.interval, per = DAY_S / iv;
    uint64_t last = complete_until(a->now_ns, DAY_S);
    size_t days = res.n / per;
    while (days > 0 && res.from_s + (uint64_t)days * DAY_S > last)
        days--; /* the day in progress is no point */
    uint64_t *si = malloc(per * sizeof *si), *so = malloc(per * sizeof *so);
    double *x = malloc((days ? days : 1) * sizeof *x), *y = malloc((days ? days : 1) * sizeof *y);
    uint64_t(*p95)[2] = malloc((days ? days : 1) * sizeof *p95);
    struct cellbuf *cb = malloc(sizeof *cb);
    size_t npts = 0, first = days;
    if (!si || !so || !x || !y || !p95 || !cb) {
        rc = VIGIL_ENOMEM;
        goto out;
    }
    for (size_t d = 0; d < days; d++) {
        struct rate_stats rs;
        rate_stats(c + d * per, per, si, so, &rs);
        if (first == days && rs.bytes_in + rs.bytes_out == 0)
            continue; /* before the first day with traffic */
        if (first == days)
            first = d;
        p95[npts][0] = rs.in[1];
        p95[npts][1] = rs.out[1];
        x[npts] = (double)(res.from_s / DAY_S + d) + 0.5;
        y[npts] = bps(rs.in[1] > rs.out[1] ? rs.in[1] : rs.out[1], iv);
        npts++;
    }
    struct linfit fit;
    if (stats_linfit(x, y, npts, &fit) != 0) {
        snprintf(a->err, sizeof a->err, "forecast: a trend needs at least 2 complete days with "
                 "traffic in the range; there %s %zu", npts == 1 ? "is" : "are", npts);
        rc = VIGIL_EINVAL;
        goto out;
    }
    for (size_t i = 0; i < npts && rc == 0; i++) {
        cells_reset(cb);
        cell_text(cb, "day");
        cell_time(cb, (int64_t)((x[i] - 0.5) * DAY_S) * NS_PER_SEC);
        cell_fmt(cb, "%.3f", bps(p95[i][0], iv));
        cell_fmt(cb, "%.3f", bps(p95[i][1], iv));
        cell_fmt(cb, "%.3f", y[i]);
        cell_fmt(cb, "%.3f", fit.intercept + fit.slope * x[i]);
        rc = answer_row(a, cb);
    }
    if (rc)
        goto out;

    /* now: the end of the range, or the aggregator's clock if earlier */
    int64_t end_ns = sq.until_ns < a->now_ns ? sq.until_ns : a->now_ns;
    double x_now = (double)end_ns / (double)NS_PER_SEC / DAY_S;
    double now_fit = fit.intercept + fit.slope * x_now, cap = (double)capacity;
    char verdict[160] = "";
    int64_t crossing_ns = 0;
    if (now_fit >= cap) {
        if (fit.slope > 0) /* when the line passed it */
            crossing_ns = (int64_t)((cap - fit.intercept) / fit.slope * DAY_S * NS_PER_SEC);
        snprintf(verdict, sizeof verdict, "the trend is above the capacity already");
    } else if (fit.slope <= 0) {
        snprintf(verdict, sizeof verdict, "traffic is not growing");
    } else {
        double xc = (cap - fit.intercept) / fit.slope;
        if (xc - x_now > FORECAST_HORIZON_YEARS * 365.25)
            snprintf(verdict, sizeof verdict, "not within %d years", FORECAST_HORIZON_YEARS);
        else {
            double left = xc - x_now;
            long whole = (long)left;
            crossing_ns = (int64_t)(xc * DAY_S * NS_PER_SEC);
            snprintf(verdict, sizeof verdict, "the trend crosses the capacity in %ld days",
                     whole + (whole < left)); /* rounded up */
        }
    }
    cells_reset(cb);
    cell_text(cb, "fit");
    cell_time(cb, end_ns);
    cell_text(cb, "");
    cell_text(cb, "");
    cell_text(cb, "");
    cell_fmt(cb, "%.3f", now_fit);
    cell_fmt(cb, "%.3f", fit.slope);
    cell_fmt(cb, "%.3f", fit.slope * 30.0);
    cell_fmt(cb, "%.6f", fit.r2);
    cell_u64(cb, npts);
    cell_u64(cb, capacity);
    cell_time(cb, crossing_ns);
    cell_text(cb, verdict);
    rc = answer_row(a, cb);
    a->truncated = a->truncated || res.truncated;
out:
    free(si);
    free(so);
    free(x);
    free(y);
    free(p95);
    free(cb);
    series_result_free(&res);
    return rc;
}
