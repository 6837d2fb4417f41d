/* known.h — the (host, destination) pairs the fleet has seen, for "a
 * destination this host has never talked to" (exfiltration).
 *
 * In memory: a flat open-addressing set of one word per pair (linear
 * probing): a fingerprint of the two keyed hashes and the day (event time)
 * the pair was last written, so a lookup costs one cache line. Fixed
 * capacity: past it a pair is not remembered (counted as known_full).
 *
 * Forgetting: a pair not seen for keep_ns of event time is dropped, from
 * memory when the event day moves on (the set is rebuilt without it) and
 * from the database by a sweep that runs a slice per write, so a long-lived
 * fleet keeps room for what it does now instead of filling up once. The
 * day stored is refreshed at most every keep_ns / 8 (at least a day), so a
 * pair is forgotten between keep_ns and keep_ns + keep_ns / 8 after its
 * last sighting, at the cost of one write per active pair per refresh.
 *
 * Persistence: DDB_KNOWN_DSTS, key [host 16][destination 16], value
 * [first seen, seconds u32 BE][last seen, seconds u32 BE] (a 4-byte value,
 * first seen only, reads as last seen then). Written by known_persist in
 * the caller's transaction, in key order. The detection thread owns it. */
#ifndef VIGIL_KNOWN_H
#define VIGIL_KNOWN_H

#include <lmdb.h>
#include <stdbool.h>
#include <stdint.h>

#include "addr.h"
#include "baseline.h"
#include "hash.h"

struct known;
struct detect_stats;

/* Room for cap pairs; keep_ns: forget after this long unseen. NULL when
 * out of memory. */
struct known *known_create(uint64_t cap, int64_t keep_ns, struct detect_stats *stats);
void known_destroy(struct known *k);

/* Loads the stored pairs through txn (read), hashing with hk (the
 * engine's key). Returns 0 or an LMDB error. */
int known_load(struct known *k, MDB_txn *txn, MDB_dbi db, const struct hash_key *hk);

/* Whether host (keyed hash hh) has talked to dst (hd) before; when not,
 * remembers it, seen at t_ns. */
enum bl_dst known_check(struct known *k, const struct vigil_addr *host, uint64_t hh,
                        const struct vigil_addr *dst, uint64_t hd, int64_t t_ns);
/* Sets or clears the follow mark of a known pair. */
void known_follow(struct known *k, uint64_t hh, uint64_t hd, bool on);
void known_prefetch(const struct known *k, uint64_t hh, uint64_t hd);

/* The newest event time: once a day, forgets the pairs not seen since
 * keep_ns before it (and starts the database's sweep). */
void known_advance(struct known *k, int64_t newest_ns);

/* Writes the pairs first seen or refreshed since the last call, in key
 * order, and the next slice of a running sweep. Returns 0 or an LMDB error
 * (keep state, the caller aborts); known_persisted after the commit. */
int known_persist(struct known *k, MDB_txn *txn, MDB_dbi db);
void known_persisted(struct known *k);
/* Something to write; the buffer of pairs waiting is half full. */
bool known_pending(const struct known *k);
bool known_pending_full(const struct known *k);

#endif
