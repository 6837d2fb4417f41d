/* retention.h — deletes what has aged out, in small slices.
 *
 * Raw flows and their host index are kept cfg.flow_retention_ns (90 days by
 * default), minute rollups minute_retention_ns (7 days), hour rollups
 * hour_retention_ns (90 days), day rollups day_retention_ns (366 days: the
 * issue's "summaries 1 year"). Minute rows of an hour not yet in the hour
 * tier, and hour rows of a day not yet in the day tier, are kept whatever
 * their age, so no total is ever lost, only coarsened. Queries over
 * expired minutes are answered from the hour (or day) tier and say so in
 * top_result.since_ns/until_ns. */
#ifndef VIGIL_RETENTION_H
#define VIGIL_RETENTION_H

#include <stdbool.h>
#include <stdint.h>

#include "store.h"

#define RETENTION_SLICE_ROWS 20000u /* deletions per write transaction */

struct retention_stats {
    uint64_t flows;          /* flow rows deleted */
    uint64_t hostidx;        /* host index rows deleted */
    uint64_t rollups[3];     /* rollup rows deleted per tier: minute, hour, day */
    uint64_t txns;           /* write transactions used */
    bool done;               /* nothing older than the cutoffs is left */
};

/* Deletes data older than the configured retentions, measured back from
 * now_ns (wall clock, ns), in transactions of at most RETENTION_SLICE_ROWS
 * deletions, until done or budget_ns has passed; call again later to go
 * on. Writer thread only. *st (OUT, may be NULL) is zeroed first.
 * Returns 0 or an error code as store_apply_batch. */
int store_retention_run(struct store *s, int64_t now_ns, int64_t budget_ns,
                        struct retention_stats *st);

#endif
