/* baseline.h — what is normal, per host and for the fleet, and the set of
 * destinations each host has talked to.
 *
 * Metrics (per host and hour of event time): bytes sent and received, DNS
 * bytes and queries, distinct destinations, distinct destination ports,
 * connections started and connections that failed. The host is the local
 * end: the initiator of outbound, internal and unknown-direction flows,
 * the responder of inbound ones (external flows have none).
 *
 * Seasonal: each host keeps, per metric, an estimate for every hour of
 * the week (168 slots) and every hour of the day (24 slots, which learn
 * seven times faster); baseline_expect uses the hour-of-week slot once it
 * has 2 samples, else the hour-of-day slot once it has 3. An estimate is
 * an exponentially weighted mean in log2 space (a geometric mean: the
 * typical hour, not pulled up by one huge hour) with a mean absolute
 * deviation beside it. Robust to what it must catch: a sample is clipped
 * to the mean plus three deviations (at least one doubling) before it is
 * learned, and an hour in which the host was involved in an alert is not
 * learned at all (baseline_mark_alerted).
 *
 * A host's own baseline is used once its history (first to last hour seen)
 * spans the learning period; before, the fleet's baseline (the mean per
 * active host, same slots) once the fleet's history spans it; before that,
 * nothing (callers fall back to absolute defaults).
 *
 * An hour closes when the newest record seen ends past it by the lateness
 * allowance; hours in which a host sent nothing are not learned (a quiet
 * hour and an agent that was down look the same).
 *
 * Persistence: DDB_BASELINES, key [kind u8: 0 fleet, 1 host][address 16],
 * value: a versioned blob (baseline.c); the known pairs as known.h says.
 * Both are written by baseline_persist in the caller's transaction: hosts
 * whose hours closed since the last call, pairs first seen or refreshed
 * since.
 *
 * Memory: hosts and known pairs have fixed capacities; past them a host
 * gets no baseline and a pair is not remembered (counted in the stats).
 * The writer thread owns everything here. */
#ifndef VIGIL_BASELINE_H
#define VIGIL_BASELINE_H

#include <lmdb.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "addr.h"
#include "hash.h"

enum bl_metric {
    BL_OUT_BYTES = 0,
    BL_IN_BYTES,
    BL_DNS_BYTES,
    BL_DNS_QUERIES,
    BL_DSTS,
    BL_PORTS,
    BL_CONNS,
    BL_FAILED,
    BL_METRICS
};

#define BL_HOW 168 /* hours of the week */
#define BL_HOD 24
#define BL_VALUE_MAX (32 + (BL_HOW + BL_HOD) * (BL_METRICS * 4 + 1))

/* "out_bytes", ... */
const char *bl_metric_name(enum bl_metric m);

/* One host's contribution of one record. */
struct bl_sample {
    int64_t t_ns;               /* the record's start */
    uint64_t v[BL_METRICS];     /* additive metrics (BL_DSTS, BL_PORTS: leave 0) */
    uint64_t peer_hash;         /* for BL_DSTS */
    uint16_t port;              /* for BL_PORTS (with has_port) */
    bool has_port;
};

struct baseline;
struct detect_stats;

/* Loads the persisted state through txn (read); known pairs are forgotten
 * after known_keep_ns unseen (known.h). Returns NULL with err. */
struct baseline *baseline_create(MDB_txn *txn, MDB_dbi db_baselines, MDB_dbi db_known,
                                 const struct hash_key *hk, uint64_t max_hosts,
                                 uint64_t max_known, int64_t known_keep_ns,
                                 int64_t learning_ns, struct detect_stats *stats, char *err,
                                 size_t errlen);
void baseline_destroy(struct baseline *bl);

/* Accounts s for host (whose keyed hash is h). */
void baseline_add(struct baseline *bl, const struct vigil_addr *host, uint64_t h,
                  const struct bl_sample *s);

enum bl_dst {
    BL_DST_NEW = 0,  /* host had not talked to dst: now remembered */
    BL_DST_KNOWN,    /* it had */
    BL_DST_FOLLOWED, /* it had, and the pair carries the follow mark */
};

/* Whether host has talked to dst before; when not, remembers it (seen at
 * t_ns) and returns BL_DST_NEW. Hashes are the engine's keyed hashes. A
 * pair the set has no room for stays BL_DST_NEW (counted as known_full). */
enum bl_dst baseline_known_dst(struct baseline *bl, const struct vigil_addr *host, uint64_t hh,
                               const struct vigil_addr *dst, uint64_t hd, int64_t t_ns);
/* Sets or clears the follow mark of a known pair (exfiltration marks the
 * pairs it follows, so a lookup tells it whether to look for one). */
void baseline_follow_dst(struct baseline *bl, uint64_t hh, uint64_t hd, bool on);
/* Cache hints (a batch looks ahead): the pair's slot; the host's index
 * slot, or with entry its entry (once the slot is likely cached). */
void baseline_prefetch_dst(const struct baseline *bl, uint64_t hh, uint64_t hd);
void baseline_prefetch_host(const struct baseline *bl, uint64_t h, bool entry);

/* The host's hour containing t_ns is not learned. */
void baseline_mark_alerted(struct baseline *bl, const struct vigil_addr *host, uint64_t h,
                           int64_t t_ns);

enum bl_source { BL_NONE = 0, BL_FROM_FLEET, BL_FROM_HOST };

/* Typical value of metric m for host in the hour containing t_ns; *from
 * (OUT) says whose baseline it came from. Returns -1 with BL_NONE when
 * nothing is learned. */
double baseline_expect(const struct baseline *bl, const struct vigil_addr *host, uint64_t h,
                       enum bl_metric m, int64_t t_ns, enum bl_source *from);

/* Hosts seen in the last closed hour (for "rare across the fleet"). */
uint64_t baseline_active_hosts(const struct baseline *bl);

/* Closes hours that newest_ns - lateness_ns has passed (all of them when
 * flush_all). Call often; cheap when no hour boundary was crossed. */
void baseline_advance(struct baseline *bl, int64_t newest_ns, int64_t lateness_ns,
                      bool flush_all);

/* Writes what changed in txn, in key order: the destinations first seen
 * since the last call, and when models is set the baselines whose hours
 * closed (the caller paces those: a model changes once per hour of event
 * time, but a replay closes hours many times a second, and each host's
 * model is 6.5 KB). Returns 0 or an LMDB error (keep state, the caller
 * aborts). baseline_persisted, with the same models, after the commit. */
int baseline_persist(struct baseline *bl, MDB_txn *txn, bool models);
void baseline_persisted(struct baseline *bl, bool models);
bool baseline_pending(const struct baseline *bl, bool models);
/* Whether the new destinations waiting to be written fill half their
 * buffer (write them now: past it they would not be stored). */
bool baseline_pending_full(const struct baseline *bl);

/* ---- reading a stored baseline (queries, any thread) --------------------- */

struct bl_slot_view {
    double typical[BL_METRICS]; /* per hour; -1 when never learned */
    double spread[BL_METRICS];  /* mean absolute deviation, as a factor (2.0: x/2..x*2) */
    unsigned samples;
};

struct bl_view {
    uint32_t first_hour, last_hour; /* hours since the epoch */
    struct bl_slot_view hod[BL_HOD];
    struct bl_slot_view how[BL_HOW];
};

/* Decodes a DB_BASELINES value; returns 0 or VIGIL_EBADMSG. */
int baseline_decode(const void *val, size_t len, struct bl_view *out);
/* Builds the DB_BASELINES key for host (NULL: the fleet) into key[17]. */
void baseline_key(const struct vigil_addr *host, uint8_t key[17]);

#endif
