/* retention.h — deletes what has aged out, in small slices.
 *
 * Raw flows and their host index are kept cfg.flow_retention_ns (90 days by
 * default), minute rollups minute_retention_ns (7 days), hour rollups
 * hour_retention_ns (90 days), day rollups day_retention_ns (366 days: the
 * issue's "summaries 1 year"). Minute rows of an hour not yet in the hour
 * tier, and hour rows of a day not yet in the day tier, are kept whatever
 * their age, so no total is ever lost, only coarsened. Queries over
 * expired minutes are answered from the hour (or day) tier and say so in
 * top_result.since_ns/until_ns.
 *
 * Forensic capture jobs in a final state (done, failed, stopped, expired)
 * are kept capture_retention_ns (90 days) from when they ended (finished,
 * or updated if that is 0; wall clock, as capture.c writes them); a job
 * pending or running is kept whatever its age. Alerts are kept
 * alert_retention_ns (366 days) from their last_seen, in event time like
 * the detectors: measured back from the newest record the store has seen
 * (or now_ns if earlier), so a replayed capture's alerts are not deleted
 * as they are raised, and a store without records deletes none. The alert
 * with the highest id always stays (alerts_create numbers new alerts after
 * it at a restart; a reused id would merge two alerts for a log reader).
 * A value that does not decode is left alone and counted: retention never
 * deletes what it cannot read. */
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
    uint64_t captures;       /* finished capture jobs deleted */
    uint64_t captures_bad;   /* capture job values that did not decode (left alone) */
    uint64_t alerts;         /* alerts deleted */
    uint64_t alerts_bad;     /* alert values that did not decode (left alone) */
    uint64_t txns;           /* write transactions used (both environments) */
    bool done;               /* nothing older than the cutoffs is left */
};

/* Deletes data older than the configured retentions, measured back from
 * now_ns (wall clock, ns), in transactions of at most RETENTION_SLICE_ROWS
 * deletions (capture jobs and alerts, whose keys are not in time order:
 * rows visited), until done or budget_ns has passed; call again later to go
 * on from there (every call does at least one transaction). Alerts are
 * deleted in write transactions of the detection engine's environment,
 * begun with no transaction of the store's own open: they may wait for the
 * detection thread's (which waits for nothing of ours). Writer thread only.
 * *st (OUT, may be NULL) is zeroed first. Returns 0 or an error code as
 * store_apply_batch; after an error the next call starts over (the walks
 * keep their place). */
int store_retention_run(struct store *s, int64_t now_ns, int64_t budget_ns,
                        struct retention_stats *st);

#endif
