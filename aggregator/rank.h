/* rank.h — each built day's best groups, so "top N over a day" reads N rows
 * instead of every group of the day (24 million talker pairs on a 50 M-flow
 * day).
 *
 * When compaction builds a day bucket it streams every group of a dimension
 * once, in key order, with its day totals (rollup.c, compact_dim): each
 * group is offered to three bounded heaps, by bytes, packets and flows, and
 * when the dimension is done the best RANK_K of each are stored in DB_RANK
 * in the same transaction as the bucket's last rows. A ranking is exact for
 * the bucket as built; anything that changes the bucket afterwards (a late
 * minute folded into a built day) deletes it, and a build that cannot have
 * seen every group (resumed after a restart, or a slice that failed) stores
 * none. Queries use a ranking only when their range is exactly that one day
 * with nothing pending, and fall back to merging the rows otherwise.
 *
 * Stored: key [day start, seconds u32 BE][dimension u8]; value [version u8
 * = 1][groups in the day, varint], then per metric (bytes, packets, flows)
 * [n varint] and n rows best first (metric descending, key ascending):
 * [group key, the dimension's length][counters, chunk_put_counters]. */
#ifndef VIGIL_RANK_H
#define VIGIL_RANK_H

#include <lmdb.h>
#include <stdbool.h>
#include <stdint.h>

#include "rollup.h"
#include "store_int.h"
#include "topk.h"

#define RANK_K 1000u    /* rows kept per metric: queries with a larger limit merge */
#define RANK_METRICS 3  /* bytes, packets, flows: enum top_order's order */
#define RANK_KEY_LEN 5

/* The metric a ranking (and a top query) orders by: 0 bytes, 1 packets, 2 flows. */
static inline uint64_t rank_metric(const uint64_t c[RC_COUNT], unsigned m)
{
    switch (m) {
    case 1: return c[RC_PKTS_OUT] + c[RC_PKTS_IN];
    case 2: return c[RC_FLOWS];
    default: return c[RC_BYTES_OUT] + c[RC_BYTES_IN];
    }
}

struct rank_build;

struct rank_build *rank_build_new(void);
void rank_build_free(struct rank_build *rb);

/* Starts collecting (bucket, dim) from its first group. */
void rank_begin(struct rank_build *rb, uint32_t bucket, unsigned dim);
/* Whether the collection in progress is (bucket, dim) and complete so far. */
bool rank_continues(const struct rank_build *rb, uint32_t bucket, unsigned dim);
/* What was collected can no longer be trusted (a failed slice, a late delta). */
void rank_invalidate(struct rank_build *rb);
void rank_offer(struct rank_build *rb, const uint8_t *key, const uint64_t c[RC_COUNT]);
/* The collection's rows for metric m, best first (sorted in place, so
 * offer nothing more): *n of them, valid until the next rank_begin; and
 * the number of groups offered. NULL when the collection is not active. */
const struct topk_ent *rank_rows(struct rank_build *rb, unsigned m, size_t *n,
                                 uint64_t *groups);
/* Stores the ranking of the collection in progress, if complete, in txn. */
int rank_put(struct rank_build *rb, MDB_txn *txn, MDB_dbi db);
/* Deletes the stored ranking of (bucket, dim), if any. */
int rank_delete(MDB_txn *txn, MDB_dbi db, uint32_t bucket, unsigned dim);

/* The stored ranking of (bucket, dim) for metric m: *groups and up to
 * limit rows, best first, through row(key, counters, ctx). Returns 0,
 * MDB_NOTFOUND (none stored, or fewer rows than limit where the day has
 * more groups), or VIGIL_EBADMSG for a damaged value. */
int rank_read(MDB_txn *txn, MDB_dbi db, uint32_t bucket, unsigned dim, unsigned m,
              unsigned limit, uint64_t *groups,
              void (*row)(const uint8_t *key, const uint64_t c[RC_COUNT], void *ctx), void *ctx);

/* Decodes a stored value (fuzzing, tests): 0 or VIGIL_EBADMSG. */
int rank_check(const uint8_t *v, size_t len, unsigned dim);

#endif
