/* query_budget.h — the bounds every store query walks under: at most
 * max_rows rows read and max_ns of monotonic time, so a query can never
 * pin a read transaction (and old pages) for long. The clock is read once
 * every QUERY_BUDGET_CHECK_EVERY rows. Internal to query.c and
 * query_series.c. */
#ifndef VIGIL_QUERY_BUDGET_H
#define VIGIL_QUERY_BUDGET_H

#include <stdbool.h>
#include <stdint.h>

#include "clock.h"
#include "query.h"

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

#endif
