/* query_series.h — the store read over time: rollup counters per sample
 * interval (bandwidth, the stacked series of the report, the forecast) and
 * a bounded walk over stored flows (latency).
 *
 * Like query.h, each call runs in one snapshot plus a copy of the pending
 * (not yet flushed) rollup minutes taken at the same instant, is bounded in
 * rows read and time, and says truncated when a bound cut it short. */
#ifndef VIGIL_QUERY_SERIES_H
#define VIGIL_QUERY_SERIES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "addr.h"
#include "flowcodec.h"
#include "query.h"
#include "store.h"

#define SERIES_MAX_KEYS 16                 /* groups kept apart in one series query */
#define SERIES_MAX_SAMPLES (400u * 1440u)  /* a year and more of minutes: 9 MB of counters */
#define SERIES_KEY_MAX 32                  /* = GROUP_KEY_MAX (store_int.h) */

/* Which tier gives the samples. */
enum series_res {
    SERIES_FINEST = 0, /* the finest tier still kept for the whole range that divides the
                          step: minutes, else hours, else days (percentiles) */
    SERIES_COARSEST,   /* the coarsest tier that divides the step (sums per step) */
};

struct series_query {
    enum top_group group;     /* TOP_HOST, TOP_APP or TOP_PORT: the rollup read */
    int64_t since_ns, until_ns;
    uint32_t step;            /* seconds, a multiple of 60; the range is cut into whole
                                 steps: since rounded down, until rounded up to it */
    enum series_res res;
    unsigned nkeys;           /* groups summed apart (0..SERIES_MAX_KEYS); rollup keys,
                                 see series_key_host/series_key_app */
    uint8_t keys[SERIES_MAX_KEYS][SERIES_KEY_MAX];
    bool total;               /* also sum every group of the rollup (each record once for
                                 app and port; hosts would count a flow at both ends) */
    uint64_t max_rows;        /* 0: QUERY_DEFAULT_MAX_ROWS */
    int64_t max_ns;           /* 0: QUERY_DEFAULT_MAX_NS */
};

struct series_result {
    uint32_t from_s, to_s;     /* the range answered: whole steps */
    uint32_t interval;         /* seconds per sample (60, 3600 or 86400) */
    size_t n;                  /* samples: (to_s - from_s) / interval */
    struct top_counters *total;             /* n samples (q->total), else NULL */
    struct top_counters *key[SERIES_MAX_KEYS]; /* n samples per key */
    uint64_t rows_read;
    bool truncated;            /* a bound was hit: later samples are incomplete */
};

/* Rollup keys of one group. */
void series_key_host(uint8_t key[SERIES_KEY_MAX], const struct vigil_addr *host);
/* Returns 0, or VIGIL_EINVAL for a label longer than an app key. */
int series_key_app(uint8_t key[SERIES_KEY_MAX], const char *app);

/* Reads the counters per sample. Returns 0 and fills *out (free with
 * series_result_free), or VIGIL_EINVAL (bad step, too many samples: the
 * message says which), VIGIL_ENOMEM or a store error; then *out holds
 * nothing to free. */
int store_query_series(struct store *s, const struct series_query *q, struct series_result *out);
void series_result_free(struct series_result *r);

/* ---- flows over a range -------------------------------------------------- */

struct flow_scan {
    int64_t since_ns, until_ns; /* flows whose end lies in [since, until) */
    bool has_host;
    struct vigil_addr host;     /* either end; served by the host index */
    uint64_t max_rows;          /* 0: QUERY_DEFAULT_MAX_ROWS */
    int64_t max_ns;             /* 0: QUERY_DEFAULT_MAX_NS */
};

/* Called for each matching stored flow inside the snapshot: it must be
 * quick and must not call the store. f is valid only during the call.
 * Return 0 to go on, non-zero to stop (the scan then says truncated). */
typedef int (*flow_scan_fn)(const struct sflow *f, void *ctx);

/* Walks the flows that ended in the range (flows still in progress are
 * seen when they end). Returns 0 or a negative code; st (OUT, may be NULL)
 * tells rows read and whether a bound cut the walk short. */
int store_scan_flows(struct store *s, const struct flow_scan *q, flow_scan_fn fn, void *ctx,
                     struct flow_query_stats *st);

#endif
