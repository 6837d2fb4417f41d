/* rollup.h — rollups (1 min / 1 h / 1 day by host, app, port and talker
 * pair) and the host index, kept exactly once at ingest speed.
 *
 * How (DESIGN.md, "The aggregator": counters updated in LMDB per record
 * cost 2-5x the raw insert):
 *  - Each record's contribution is aggregated in memory in its minute
 *    ("pending"), and written to the journal DB in the batch's own
 *    transaction.
 *  - A minute is flushed once it is closed (the newest record ended
 *    close_grace after it), or early when pending holds too many rows:
 *    its groups are sorted and written as chunks (chunk.h), appended in key
 *    order; a minute flushed again gets a new part with just the delta. The
 *    same transaction records the ingest sequence the minute was flushed at
 *    (rflush) and prunes the journal below the oldest pending contribution.
 *  - After a crash, store_open replays the journal: an entry whose minute
 *    was flushed at or after its sequence is already in LMDB, any other goes
 *    back to pending. Every contribution is thus counted once.
 *  - The hour and day tiers are built from the tier below once an hour (day)
 *    is closed, by a k-way merge of every part of its 60 minutes (24 hours),
 *    appended in transactions of bounded size that record their progress.
 *    Data arriving later for a built hour (day) is written there too, as a
 *    delta part, by the flush of its minute in the same transaction, so a
 *    built bucket always equals the sum of its minutes.
 *
 * All functions run on the writer thread, except rollup_pending_* readers,
 * which queries call under store.pend_lock. */
#ifndef VIGIL_ROLLUP_H
#define VIGIL_ROLLUP_H

#include <lmdb.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "addr.h"
#include "flowcodec.h"
#include "hash.h"

struct store;
struct rollup_pending;

/* Counters of one rollup row, in the order stored (u64 LE each). */
enum { RC_BYTES_OUT = 0, RC_BYTES_IN, RC_PKTS_OUT, RC_PKTS_IN, RC_FLOWS, RC_COUNT };
struct rctr {
    uint64_t v[RC_COUNT];
};

struct rollup_pending *rollup_pending_new(const struct hash_key *hk);
void rollup_pending_free(struct rollup_pending *p);
void rollup_pending_clear(struct rollup_pending *p);

/* Makes room so that adding the n contributions cannot fail. Returns 0 or
 * VIGIL_ENOMEM. */
int rollup_pending_reserve(struct rollup_pending *p, const struct contrib *c, size_t n);

/* Adds one contribution; room must have been reserved. */
void rollup_pending_add(struct rollup_pending *p, const struct contrib *c);

uint64_t rollup_pending_rows(const struct rollup_pending *p);
uint64_t rollup_pending_buckets(const struct rollup_pending *p);

/* The groups a contribution adds to, per dimension: key (dim_klen bytes)
 * and counters. Host has up to two (source, destination). Returns the count
 * for dim (0..2). */
unsigned rollup_groups(const struct contrib *c, unsigned dim, uint8_t keys[2][32],
                       struct rctr ctr[2]);

/* Query side (under pend_lock): calls fn for each pending row of dim whose
 * minute lies in [from_s, to_s). */
typedef void (*rollup_row_fn)(const uint8_t *key, const struct rctr *c, void *ctx);
void rollup_pending_rows_in(const struct rollup_pending *p, unsigned dim, uint32_t from_s,
                            uint32_t to_s, rollup_row_fn fn, void *ctx);

/* The same, telling fn each row's minute (series by time, query_series.c). */
typedef void (*rollup_minute_row_fn)(uint32_t minute, const uint8_t *key, const struct rctr *c,
                                     void *ctx);
void rollup_pending_rows_minute(const struct rollup_pending *p, unsigned dim, uint32_t from_s,
                                uint32_t to_s, rollup_minute_row_fn fn, void *ctx);

/* Query side (under pend_lock): appends to *keys (realloc'd, *n entries,
 * *cap capacity) the flows keys (FLOWS_KEY_LEN bytes each) pending in the
 * host index for host in minutes [from_s, to_s). Returns 0 or VIGIL_ENOMEM. */
int rollup_pending_host_refs(const struct rollup_pending *p, const struct vigil_addr *host,
                             uint32_t from_s, uint32_t to_s, uint8_t **keys, size_t *n,
                             size_t *cap);

enum rollup_flush_mode {
    FLUSH_DUE = 0, /* closed minutes whose flush is due, and any excess over the cap */
    FLUSH_ALL,     /* everything pending */
};

/* Flushes pending minutes (in transactions of bounded size) and prunes the
 * journal. Returns 0 or a store error code (see store_apply_batch). */
int rollup_flush(struct store *s, enum rollup_flush_mode mode);

/* Builds hour and day buckets that are due, until deadline_mono (monotonic
 * ns). Returns 0 or a store error code. */
int rollup_compact(struct store *s, int64_t deadline_mono);

/* Rebuilds pending from the journal in txn (store_open). */
int rollup_rebuild(struct store *s, MDB_txn *txn);

#endif
