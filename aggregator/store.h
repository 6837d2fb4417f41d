/* store.h — the aggregator's storage engine: an LMDB environment holding
 * flows, the host index, rollups and per-agent state, fed one batch at a time.
 *
 * Threads: one writer thread calls every function declared here except
 * store_get_stats (any thread). Queries (query.h) run on other threads at
 * the same time and never block the writer for more than a short copy of
 * the in-memory rollups (see "Concurrency" in store.c). One more thread
 * writes: the detection thread (detect_thread.h), in its own transactions,
 * only to the detection engine's databases (baselines, known_dsts,
 * alerts), which live in an LMDB environment of their own (DIR/detect,
 * store_int.h): the two writers never wait for each other.
 *
 * Exactly once: store_apply_batch applies a batch and records the agent's
 * last applied sequence in the same write transaction, committed with
 * LMDB's durable sync; the caller acks only after it returned 0. A batch at
 * or below that sequence is reported as a duplicate and changes nothing.
 * Rollups and the host index are aggregated in memory and flushed in key
 * order; a journal written in each batch transaction lets store_open
 * rebuild exactly the part that had not been flushed (rollup.c).
 *
 * Non-goals: networking, message validation (the transport does it; the
 * store re-checks only what it relies on), detectors. */
#ifndef VIGIL_STORE_H
#define VIGIL_STORE_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vigil.pb-c.h"

/* Disk full: abort, keep the batch un-acked (agents keep spooling), pause
 * ingest and try again later. Errno-compatible, as common/err.h asks. */
#define STORE_ENOSPC (-ENOSPC)

/* Limits (bounded everything). */
#define STORE_MAX_BATCH_RECORDS 65536u /* the transport's per-batch bound */
#define STORE_AGENT_NAME_MAX 64        /* including the NUL (flow_record.agent) */
#define STORE_MAX_AGENTS 65536u        /* distinct agent names ever seen */
#define STORE_APP_MAX 16               /* application label incl. NUL (FLOWREC_APP_MAX) */
#define STORE_MAX_GROUP 256u           /* batches per store_apply_batches transaction */

struct store_config {
    uint64_t map_size;           /* initial LMDB map, bytes (default 1 GiB) */
    uint64_t map_size_max;       /* never grow past this (default 4 TiB) */
    unsigned map_grow_pct;       /* grow when the used pages pass this share (default 80) */
    unsigned max_readers;        /* LMDB reader slots (default 126) */
    int64_t flow_retention_ns;   /* raw flows and the host index (default 90 days) */
    int64_t minute_retention_ns; /* 1-minute rollups (default 7 days) */
    int64_t hour_retention_ns;   /* 1-hour rollups (default 90 days) */
    int64_t day_retention_ns;    /* 1-day rollups (default 366 days: "summaries 1 year") */
    int64_t capture_retention_ns; /* finished forensic capture jobs, from their end
                                     (wall clock; default 90 days, like flows) */
    int64_t alert_retention_ns;  /* alerts, from their last_seen (event time; default
                                    366 days) */
    int64_t close_grace_ns;      /* a minute (hour) is closed once the newest record
                                    ends this long after it (default 120 s) */
    int64_t flush_interval_ns;   /* closed minutes are flushed at most this often
                                    (default 1 s of monotonic time; 0: at once) */
    uint64_t pending_max_rows;   /* in-memory rollup rows before a forced flush
                                    (default 1,000,000, about 100 MB) */
    unsigned compact_slice_rows; /* rows written per compaction transaction (default 50,000) */
    int64_t open_stale_ns;       /* a flow whose final record has not come, with no record
                                    for this long (data time: behind the newest record),
                                    is stored as it is (default 600 s: ten active timeouts) */
    int64_t open_sweep_ns;       /* how often store_tick looks for them (default 60 s) */
    uint32_t trail_late_max;     /* late records the standing trailing ranking carries
                                    before it goes stale (trail.h; default 131,072: ~14 MB) */
};

/* Fills *cfg with the defaults above. */
void store_config_defaults(struct store_config *cfg);

struct store;

/* Opens (creating DIR with mode 0700 if needed) the environment in DIR with
 * the given config (borrowed; NULL: defaults). Checks the schema version,
 * clears stale reader slots and rebuilds the in-memory rollups from the
 * journal. Returns NULL with a message in err on failure. */
struct store *store_open(const char *dir, const struct store_config *cfg, char *err,
                         size_t errlen);

/* Flushes pending rollups (best effort) and closes. Accepts NULL. No query
 * may be running. */
void store_close(struct store *s);

struct apply_result {
    bool duplicate;      /* seq <= the agent's last applied: nothing was applied */
    bool epoch_reset;    /* a new agent installation (agent_epoch changed): seq restarted */
    uint64_t last_seq;   /* the agent's last applied sequence after this call */
    uint32_t stored;     /* records stored */
    uint32_t new_flows;  /* of which started a flow */
    uint32_t merged;     /* of which merged into a flow stored earlier */
    uint32_t rejected;   /* records that failed the store's checks (skipped, counted) */
    uint32_t map_grown;  /* times the map was grown during this call */
};

/* Applies one batch from agent_name (the authenticated name, borrowed; the
 * batch's own agent field is not trusted) in one write transaction: flows
 * (partial records of one flow merged), the journal for rollups, the
 * agent's state and last sequence. *res (OUT) may be NULL.
 * Returns 0 once committed (or for a duplicate): the caller may ack.
 * Errors — the batch was not applied, do not ack, the store stays usable:
 *   STORE_ENOSPC / VIGIL_EIO   the disk is full or failing: pause ingest, retry later
 *                              (LMDB reports a write cut short by a full disk as EIO;
 *                              should LMDB itself give up on the environment, every
 *                              call returns VIGIL_EIO until the store is reopened);
 *   VIGIL_EAGAIN               the map must grow but queries held it too long: retry;
 *   VIGIL_EFULL                map_size_max reached, or STORE_MAX_AGENTS;
 *   VIGIL_EINVAL               bad arguments (NULL batch, empty name, too many records);
 *   VIGIL_ENOMEM, other negative codes. */
int store_apply_batch(struct store *s, const Vigil__FlowBatch *b, const char *agent_name,
                      struct apply_result *res);

/* Group commit: applies n (1..STORE_MAX_GROUP) batches, in order, in ONE
 * write transaction and one durable commit, so the disk's sync cost is paid
 * once for all of them (the ingest thread passes what has queued up while
 * the previous commit ran). res[i] (OUT) is batch i's result, as for
 * store_apply_batch (map_grown is reported in res[0]); a batch may be a
 * duplicate of an earlier one in the group. Returns 0 once all are
 * committed; on error none is applied (ack none), with the codes of
 * store_apply_batch. */
int store_apply_batches(struct store *s, const Vigil__FlowBatch *const *b,
                        const char *const *agent_names, size_t n, struct apply_result *res);

/* Writes every pending rollup row and host-index entry to LMDB (for tests,
 * shutdown, and before a backup). Same error codes as store_apply_batch. */
int store_flush(struct store *s);

/* Maintenance for the writer thread, bounded by budget_ns: clears stale
 * reader slots (every 60 s), stores flows left open too long (their agent
 * stopped before their final record), flushes closed minutes, and builds
 * the hour and day tiers from the minute tier in small transactions. Call
 * it between batches and when idle. Returns 0 or an error code as
 * store_apply_batch. */
int store_tick(struct store *s, int64_t budget_ns);

struct store_stats {
    uint64_t batches, duplicates, records, rejected; /* since open */
    uint64_t open_expired;         /* open flows stored without their final record */
    uint64_t flushes, rollup_rows_written, compaction_rows;
    uint64_t map_grows, reader_slots_cleared, retries;
    uint64_t map_size, map_used;   /* bytes */
    uint64_t pending_rows, pending_buckets;
    uint64_t ingest_seq;           /* last journal sequence committed */
    int64_t sealed_hour_s;         /* hours before this are in the hour tier */
    int64_t sealed_day_s;          /* days before this are in the day tier */
};

/* A consistent copy of the counters; safe from any thread. */
void store_get_stats(struct store *s, struct store_stats *out);

#endif
