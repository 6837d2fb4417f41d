/* groupmerge.h — the rollup rows of one dimension over time ranges of one
 * snapshot, summed per group and given in key order: the k-way merge under
 * top queries (query.c) and the standing trailing ranking (trail.c).
 *
 * Inputs: a chunk stream per part of every bucket of each range (a range is
 * cut into pieces, each read from the coarsest tier that holds it exactly,
 * see piece_tier) and the sorted pending rows (minutes not yet flushed,
 * copied under pend_lock). Every input is a plus or a minus one: a group's
 * minus rows are summed apart, so a caller can take a range away again
 * (trail.c answers a range near its standing one as the standing figures,
 * plus what the query's range adds, minus what it leaves out).
 *
 * Totals of all traffic come from the app rows of the same pieces (each
 * record has exactly one app row), per sign. */
#ifndef VIGIL_GROUPMERGE_H
#define VIGIL_GROUPMERGE_H

#include <lmdb.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chunk.h"
#include "query_int.h"
#include "rollup.h"
#include "sortkey.h"
#include "store_int.h"

/* Pending rows of one dimension, copied out under pend_lock: keys (klen
 * each) and counters; after pend_rows_sum, sorted by key, one per group. */
struct pend_rows {
    unsigned klen;
    uint8_t *keys;
    struct rctr *ctr;
    size_t n, cap;
    bool nomem;
    struct rctr total; /* the pending app rows in the same minutes (not for dim app,
                          whose groups make the totals as they are merged) */
};

/* Appends the pending rows of dim in minutes [from, to) (and their app
 * rows' totals). Call under pend_lock; check nomem afterwards. */
void pend_rows_copy(struct store *s, unsigned dim, uint32_t from, uint32_t to,
                    struct pend_rows *p);
/* Appends the rows of dim the n contributions add to (and, unless dim is
 * app, their totals). */
void pend_rows_add_contribs(struct pend_rows *p, unsigned dim, const struct contrib *c,
                            size_t n);
/* Sorts by key and sums rows of the same group. Returns 0 or VIGIL_ENOMEM. */
int pend_rows_sum(struct pend_rows *p);
void pend_rows_free(struct pend_rows *p);

enum { GM_PLUS = 0, GM_MINUS = 1 };
#define GM_MAX_PEND 4 /* pending-row inputs a merge takes */

struct gmerge {
    struct store *s;
    MDB_txn *txn;
    const struct tier_marks *mk;
    struct budget *bud;
    unsigned dim, klen, nw;
    MDB_cursor *curs[TIER_COUNT];
    struct chunk_stream *st;  /* one per (bucket, part) */
    uint8_t *tier;            /* the tier (cursor) each steps with */
    uint8_t *sign;            /* GM_PLUS or GM_MINUS */
    size_t nst, cap;
    struct pend_rows *pend[GM_MAX_PEND]; /* summed; inputs nst.. of the merge */
    uint8_t psign[GM_MAX_PEND];
    size_t pi[GM_MAX_PEND], npend;
    struct ltree lt;
    bool started;
    unsigned buckets[TIER_COUNT]; /* buckets read per tier */
    struct rctr total[2];      /* all traffic of the plus and the minus ranges */
};

int gmerge_init(struct gmerge *m, struct store *s, MDB_txn *txn, unsigned dim,
                const struct tier_marks *mk, struct budget *bud);
/* Adds the stored rows of [from, to) with sign: pieces as piece_tier gives
 * them for a range ending at end (>= to), so minutes expired below
 * mk->low are the caller's to avoid. */
int gmerge_add_range(struct gmerge *m, uint32_t from, uint32_t to, uint32_t end, unsigned sign);
/* Adds summed pending rows (pend_rows_sum) with sign, at most
 * GM_MAX_PEND times; p must outlive m. Their totals go to total[sign]. */
void gmerge_add_pending(struct gmerge *m, struct pend_rows *p, unsigned sign);
/* The next group in key order: 1 (key, and its plus and minus sums), 0 at
 * the end or once the budget is hit (bud->hit), or a negative code. */
int gmerge_next(struct gmerge *m, uint8_t *key, struct rctr *plus, struct rctr *minus);
/* After the merge (or instead of it): adds to *out the stored rows of one
 * group in [from, to), pieces as gmerge_add_range gives them, by seeking
 * the key in every part. For a few groups: a seek per bucket part each. */
int gmerge_lookup(struct gmerge *m, uint32_t from, uint32_t to, uint32_t end,
                  const uint8_t *key, struct rctr *out);
/* The summed pending row of key in p, if any, added to *out. */
void pend_rows_lookup(const struct pend_rows *p, const uint8_t *key, struct rctr *out);
void gmerge_free(struct gmerge *m);

static inline void rctr_add(struct rctr *t, const struct rctr *c)
{
    for (int j = 0; j < RC_COUNT; j++)
        t->v[j] += c->v[j];
}

#endif
