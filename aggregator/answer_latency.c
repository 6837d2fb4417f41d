/* answer_latency.c — latency over time: TCP handshake round-trip times and
 * retransmissions per step, for the fleet, one host, or per source or
 * destination (the "why did latency spike at 3 AM" question). Arguments in
 * service.h.
 *
 * Computed from the stored flows of the range, not from the rollups: the
 * rollups keep no RTT, and exact percentiles need the values themselves.
 * A flow counts in the step its last packet falls in; flows still in
 * progress count when they end. The walk is bounded (LATENCY_MAX_FLOWS
 * flows, and the store's time bound): past it the answer says truncated.
 * Measured (README): 200,000 stored flows of one hour answer in 0.3-0.5 s
 * (about 2 µs a flow: decode, sort, percentiles), so a busy day at millions
 * of flows hits the bound; rollup counters of RTT would be the next step.
 *
 * Figures per step (and over the range): TCP flows that ended; of those,
 * the ones with a handshake RTT, and its nearest-rank p50/p95/p99, max and
 * mean in µs; retransmitted segments (both directions) over TCP packets.
 * With group=src|dst the groups are ranked by their p95 RTT over the range
 * (the slowest first), then by flows; the rest are left out. */
#include "answer.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "err.h"
#include "query_series.h"
#include "service.h"
#include "stats.h"

#define LATENCY_MAX_FLOWS 1000000u /* 32 MB of samples */
#define LATENCY_DEFAULT_STEP 300u
#define LATENCY_DEFAULT_GROUPS 10u
#define LATENCY_MAX_GROUPS 100u

enum lat_group { LAT_NONE = 0, LAT_SRC, LAT_DST };

/* One TCP flow, as much as latency needs. */
struct lat {
    uint8_t key[16]; /* the group's address; zero without groups */
    uint32_t step;   /* index of the step */
    uint32_t rtt_us;
    uint32_t retrans;
    uint8_t has_rtt;
    uint64_t pkts;
};

struct lat_ctx {
    struct lat *v;
    size_t n, cap;
    enum lat_group group;
    int64_t from_ns, step_ns;
    bool nomem, full;
};

static int lat_fn(const struct sflow *f, void *ctx)
{
    struct lat_ctx *lc = ctx;
    const struct flow_record *r = &f->rec;
    if (r->proto != 6)
        return 0;
    if (lc->n == lc->cap) {
        if (lc->cap >= LATENCY_MAX_FLOWS) {
            lc->full = true;
            return 1;
        }
        size_t nc = lc->cap ? lc->cap * 2 : 4096;
        if (nc > LATENCY_MAX_FLOWS)
            nc = LATENCY_MAX_FLOWS;
        struct lat *x = realloc(lc->v, nc * sizeof *x);
        if (!x) {
            lc->nomem = true;
            return 1;
        }
        lc->v = x;
        lc->cap = nc;
    }
    struct lat *l = &lc->v[lc->n++];
    memset(l->key, 0, sizeof l->key);
    if (lc->group == LAT_SRC)
        memcpy(l->key, r->src.b, 16);
    else if (lc->group == LAT_DST)
        memcpy(l->key, r->dst.b, 16);
    l->step = (uint32_t)((r->end_ns - lc->from_ns) / lc->step_ns);
    l->has_rtt = r->has_rtt;
    l->rtt_us = r->has_rtt ? r->rtt_us : 0;
    l->retrans = r->retrans_fwd + r->retrans_rev;
    l->pkts = r->pkts_fwd + r->pkts_rev;
    return 0;
}

static int lat_cmp(const void *a, const void *b)
{
    const struct lat *x = a, *y = b;
    int c = memcmp(x->key, y->key, 16);
    if (c)
        return c;
    if (x->step != y->step)
        return x->step < y->step ? -1 : 1;
    return x->rtt_us < y->rtt_us ? -1 : x->rtt_us > y->rtt_us;
}

/* Figures of a run of flows. */
struct lat_fig {
    uint64_t flows, rtt_flows, retrans, pkts, rtt_sum;
    uint64_t p50, p95, p99, max;
};

static void lat_figures(const struct lat *v, size_t n, uint64_t *scratch, struct lat_fig *fg)
{
    memset(fg, 0, sizeof *fg);
    for (size_t i = 0; i < n; i++) {
        fg->flows++;
        fg->retrans += v[i].retrans;
        fg->pkts += v[i].pkts;
        if (v[i].has_rtt) {
            scratch[fg->rtt_flows++] = v[i].rtt_us;
            fg->rtt_sum += v[i].rtt_us;
        }
    }
    stats_sort_u64(scratch, fg->rtt_flows);
    fg->p50 = stats_percentile(scratch, fg->rtt_flows, 50);
    fg->p95 = stats_percentile(scratch, fg->rtt_flows, 95);
    fg->p99 = stats_percentile(scratch, fg->rtt_flows, 99);
    fg->max = stats_percentile(scratch, fg->rtt_flows, 100);
}

static const char *const latency_columns[] = {
    "scope",      "start",      "end",        "group",      "flows",
    "rtt_flows",  "rtt_p50_us", "rtt_p95_us", "rtt_p99_us", "rtt_max_us",
    "rtt_mean_us", "retrans",   "tcp_packets", "retrans_rate", NULL,
};

static int lat_row(struct answer *a, struct cellbuf *cb, const char *scope, int64_t t0,
                   int64_t t1, const uint8_t *key, bool grouped, const struct lat_fig *fg)
{
    bool r = fg->rtt_flows > 0;
    cells_reset(cb);
    cell_text(cb, scope);
    cell_time(cb, t0);
    cell_time(cb, t1);
    if (grouped) {
        struct vigil_addr ad;
        memcpy(ad.b, key, 16);
        cell_addr(cb, &ad);
    } else {
        cell_text(cb, "");
    }
    cell_u64(cb, fg->flows);
    cell_u64(cb, fg->rtt_flows);
    cell_opt_u64(cb, r, fg->p50);
    cell_opt_u64(cb, r, fg->p95);
    cell_opt_u64(cb, r, fg->p99);
    cell_opt_u64(cb, r, fg->max);
    if (r)
        cell_fmt(cb, "%.3f", (double)fg->rtt_sum / (double)fg->rtt_flows);
    else
        cell_text(cb, "");
    cell_u64(cb, fg->retrans);
    cell_u64(cb, fg->pkts);
    if (fg->pkts)
        cell_fmt(cb, "%.6f", (double)fg->retrans / (double)fg->pkts);
    else
        cell_text(cb, "");
    return answer_row(a, cb);
}

/* A group's run in the sorted flows and its range figures, for ranking. */
struct lat_run {
    size_t first, n;
    struct lat_fig fig;
};

static int run_cmp(const void *a, const void *b)
{
    const struct lat_run *x = a, *y = b;
    if (x->fig.p95 != y->fig.p95)
        return x->fig.p95 > y->fig.p95 ? -1 : 1;
    if (x->fig.flows != y->fig.flows)
        return x->fig.flows > y->fig.flows ? -1 : 1;
    return x->first < y->first ? -1 : x->first > y->first; /* key order */
}

int answer_latency(struct answer *a)
{
    static const char *const known[] = {"host", "since", "until", "step", "group", "limit", NULL};
    static const char *const groups[] = {"none", "src", "dst", NULL};
    struct flow_scan fs = {0};
    struct lat_ctx lc = {0};
    struct flow_query_stats st;
    struct lat_run *runs = NULL;
    uint64_t *scratch = NULL, step = LATENCY_DEFAULT_STEP, limit = LATENCY_DEFAULT_GROUPS;
    struct cellbuf *cb = NULL;
    unsigned g = LAT_NONE;
    size_t nruns = 0;
    int rc;

    a->columns = latency_columns;
    if ((rc = args_known(a, known)) != 0 || (rc = arg_range(a, &fs.since_ns, &fs.until_ns)) != 0 ||
        (rc = arg_u64(a, "step", 60, 366ull * 86400, &step)) != 0 ||
        (rc = arg_word(a, "group", groups, &g)) != 0 ||
        (rc = arg_u64(a, "limit", 1, LATENCY_MAX_GROUPS, &limit)) != 0 ||
        (rc = arg_addr(a, "host", &fs.host, &fs.has_host)) != 0)
        return rc;
    if (step % 60) {
        snprintf(a->err, sizeof a->err, "latency: step=%" PRIu64 " must be whole minutes", step);
        return VIGIL_EINVAL;
    }
    /* whole steps, none wholly in the future */
    int64_t step_ns = (int64_t)step * NS_PER_SEC;
    fs.since_ns -= fs.since_ns % step_ns;
    if (fs.until_ns > a->now_ns)
        fs.until_ns = a->now_ns;
    if (fs.until_ns % step_ns)
        fs.until_ns += step_ns - fs.until_ns % step_ns;
    if (fs.until_ns <= fs.since_ns) {
        snprintf(a->err, sizeof a->err, "latency: the range lies in the future");
        return VIGIL_EINVAL;
    }
    uint64_t nsteps = (uint64_t)((fs.until_ns - fs.since_ns) / step_ns);
    uint64_t groups_wanted = g == LAT_NONE ? 1 : limit;
    if (nsteps * groups_wanted + groups_wanted > SERVICE_MAX_ROWS) {
        snprintf(a->err, sizeof a->err, "latency: %" PRIu64 " steps are more than an answer "
                 "holds: take a larger step or a shorter range", nsteps);
        return VIGIL_EINVAL;
    }
    lc.group = (enum lat_group)g;
    lc.from_ns = fs.since_ns;
    lc.step_ns = step_ns;
    rc = store_scan_flows(a->st, &fs, lat_fn, &lc, &st);
    if (rc == 0 && lc.nomem)
        rc = VIGIL_ENOMEM;
    if (rc) {
        snprintf(a->err, sizeof a->err, "latency: the store failed: %s", vigil_strerror(rc));
        goto out;
    }
    if (lc.n > 1)
        qsort(lc.v, lc.n, sizeof *lc.v, lat_cmp);
    scratch = malloc((lc.n ? lc.n : 1) * sizeof *scratch);
    runs = malloc((lc.n ? lc.n : 1) * sizeof *runs);
    cb = malloc(sizeof *cb);
    if (!scratch || !runs || !cb) {
        rc = VIGIL_ENOMEM;
        goto out;
    }
    /* runs of one group (one run without groups, even when empty) */
    for (size_t i = 0; i < lc.n;) {
        size_t j = i;
        while (j < lc.n && memcmp(lc.v[j].key, lc.v[i].key, 16) == 0)
            j++;
        runs[nruns] = (struct lat_run){.first = i, .n = j - i};
        lat_figures(lc.v + i, j - i, scratch, &runs[nruns].fig);
        nruns++;
        i = j;
    }
    if (nruns == 0 && g == LAT_NONE)
        runs[nruns++] = (struct lat_run){0};
    if (g != LAT_NONE && nruns > 1)
        qsort(runs, nruns, sizeof *runs, run_cmp);
    if (nruns > groups_wanted)
        nruns = (size_t)groups_wanted;
    for (size_t r = 0; r < nruns && rc == 0; r++) {
        const struct lat *v = lc.v + runs[r].first;
        const uint8_t *key = runs[r].n ? v[0].key : (const uint8_t[16]){0};
        size_t i = 0;
        for (uint32_t s = 0; s < nsteps && rc == 0; s++) {
            size_t j = i;
            while (j < runs[r].n && v[j].step == s)
                j++;
            struct lat_fig fg;
            lat_figures(v + i, j - i, scratch, &fg);
            int64_t t0 = fs.since_ns + (int64_t)s * step_ns;
            rc = lat_row(a, cb, "step", t0, t0 + step_ns, key, g != LAT_NONE, &fg);
            i = j;
        }
        if (rc == 0)
            rc = lat_row(a, cb, "range", fs.since_ns, fs.until_ns, key, g != LAT_NONE,
                         &runs[r].fig);
    }
    a->truncated = a->truncated || st.truncated || lc.full;
out:
    free(lc.v);
    free(scratch);
    free(runs);
    free(cb);
    return rc;
}
