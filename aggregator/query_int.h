/* query_int.h — what the store's query files (query.c, query_series.c)
 * share: the bounds every query walks under, and which rollup tier answers
 * a bucket. Internal to them.
 *
 * Bounds: at most max_rows rows read and max_ns of monotonic time, so a
 * query can never pin a read transaction (and old pages) for long. The
 * clock is read once every QUERY_BUDGET_CHECK_EVERY rows. */
#ifndef VIGIL_QUERY_INT_H
#define VIGIL_QUERY_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "clock.h"
#include "query.h"
#include "rollup.h"
#include "store_int.h"

#define QUERY_BUDGET_CHECK_EVERY 1024u

struct budget {
    uint64_t rows, max_rows;
    int64_t deadline;
    bool hit;
};

/* max_rows 0: QUERY_DEFAULT_MAX_ROWS; max_ns <= 0: QUERY_DEFAULT_MAX_NS. */
static inline void budget_init(struct budget *b, uint64_t max_rows, int64_t max_ns)
{
    b->rows = 0;
    b->max_rows = max_rows ? max_rows : QUERY_DEFAULT_MAX_ROWS;
    b->deadline = vigil_monotonic_ns() + (max_ns > 0 ? max_ns : QUERY_DEFAULT_MAX_NS);
    b->hit = false;
}

/* Counts one row; false once a bound is hit (and from then on). */
static inline bool budget_take(struct budget *b)
{
    if (b->hit)
        return false;
    if (++b->rows > b->max_rows ||
        (b->rows % QUERY_BUDGET_CHECK_EVERY == 0 && vigil_monotonic_ns() > b->deadline)) {
        b->hit = true;
        return false;
    }
    return true;
}

/* The tier that answers the bucket starting at t (seconds) of a range
 * ending at end: the coarsest that is aligned there, fits before end, and
 * is built (sealed). */
static inline unsigned piece_tier(uint32_t t, uint32_t end, const struct tier_marks *mk)
{
    if (t % 86400 == 0 && (uint64_t)t + 86400 <= end && (uint64_t)t + 86400 <= mk->sealed_d)
        return TIER_DAY;
    if (t % 3600 == 0 && (uint64_t)t + 3600 <= end && (uint64_t)t + 3600 <= mk->sealed_h)
        return TIER_HOUR;
    return TIER_MINUTE;
}

static inline uint32_t ceil_to(uint32_t t, uint32_t step)
{
    uint32_t r = t % step;
    return r ? t + (step - r) : t;
}

static inline uint32_t clamp_sec(int64_t ns)
{
    if (ns <= 0)
        return 0;
    int64_t s = ns / NS_PER_SEC;
    return s > (int64_t)UINT32_MAX - 86400 ? UINT32_MAX - 86400 : (uint32_t)s;
}

/* The range [*from, *to) (seconds) a top query answers: [since, until)
 * widened to whole minutes, then to whole hours (days) where the minutes
 * (hours) before were expired. */
static inline void top_range(const struct top_query *q, const struct tier_marks *mk,
                             uint32_t *from, uint32_t *to)
{
    uint32_t f = floor_to(clamp_sec(q->since_ns), 60);
    uint32_t t = q->until_ns % NS_PER_SEC ? clamp_sec(q->until_ns) + 1 : clamp_sec(q->until_ns);
    t = ceil_to(t, 60);
    if (t <= f)
        t = f + 60;
    if (f < mk->low[TIER_MINUTE])
        f = floor_to(f, 3600);
    if (f < mk->low[TIER_HOUR])
        f = floor_to(f, 86400);
    if (t - 60 < mk->low[TIER_MINUTE])
        t = ceil_to(t, 3600);
    if (t - 3600 < mk->low[TIER_HOUR] && t % 86400)
        t = ceil_to(t, 86400);
    *from = f;
    *to = t;
}

struct topk_ent;
/* Fills out's rows (best first), totals and shares from the nbest groups
 * of best (already best first); returns 0 or VIGIL_ENOMEM. query.c. */
int top_fill(struct top_result *out, unsigned dim, enum top_order order,
             const struct topk_ent *best, size_t nbest, const struct rctr *total);

#endif
