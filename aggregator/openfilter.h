/* openfilter.h — which (agent, flow id) keys may be in the open DB, so the
 * store looks a record's flow up there only when it can be found.
 *
 * Why: every record needs to know whether earlier partial records of its
 * flow wait in the open DB, yet almost every record is the first and only
 * one of its flow; an LMDB get that finds nothing cost about a tenth of
 * the ingest CPU. A bit filter (two bits per key, keyed SipHash) answers
 * "certainly not there" for most of them in memory.
 *
 * Invariant: every key of the committed open DB has its bits set. Bits are
 * set before each put into the open DB (a put in a transaction that aborts
 * leaves bits for nothing: a false positive, harmless); deletes clear
 * nothing. Once too many bits are set, the writer rebuilds the filter from
 * the open DB inside its next write transaction, which sees exactly the
 * committed keys. Not built (at start, after a failed allocation, or when
 * the open DB is too large for MAX bits), it answers "maybe" to everything.
 *
 * Writer-owned; non-goals: the open DB's contents (store.c). */
#ifndef VIGIL_AGG_OPENFILTER_H
#define VIGIL_AGG_OPENFILTER_H

#include <lmdb.h>
#include <stdbool.h>
#include <stdint.h>

#include "hash.h"

struct openfilter {
    struct hash_key hk;
    uint64_t *bits;    /* nbits bits (malloc'd); NULL: not built */
    uint64_t mask;     /* nbits - 1 */
    uint64_t set;      /* bits set */
    uint32_t skip;     /* after a failed build: transactions until the next try */
};

void openfilter_init(struct openfilter *f, const struct hash_key *hk);
void openfilter_free(struct openfilter *f);

/* Does the filter need (re)building before it is used in txn? */
bool openfilter_wants_build(struct openfilter *f);

/* Rebuilds from every key of the open DB dbi as txn sees it. On an LMDB
 * error or no memory the filter is left unbuilt (answers "maybe") and the
 * error is returned; the caller may go on without it. */
int openfilter_build(struct openfilter *f, MDB_txn *txn, MDB_dbi dbi);

/* Call before putting (agent, flow) into the open DB. */
void openfilter_add(struct openfilter *f, uint32_t agent, uint64_t flow);

/* false: (agent, flow) is certainly not in the open DB. */
bool openfilter_maybe(const struct openfilter *f, uint32_t agent, uint64_t flow);

#endif
