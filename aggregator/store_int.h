/* store_int.h — the store's internals shared by store.c, rollup.c, query.c
 * and retention.c (and white-box tests). Not part of the API.
 *
 * Schema (version STORE_SCHEMA), one LMDB environment, named DBs; keys are
 * big-endian so a cursor walks them in time order:
 *
 *   meta       ASCII name -> value (see META_*)
 *   flows      [end second u32][ingest seq u64]           -> stored flow (flowcodec.h)
 *   open       [agent id u32][flow id u64]                -> stored flow (flowcodec.h):
 *              flows whose final record has not come yet, merged so far; the
 *              final record moves a flow to `flows` (so `flows` is append-only
 *              and merging never rewrites an old page), and a flow without news
 *              for cfg.open_stale_ns is moved there as it is (store.c)
 *   journal0, journal1  [ingest seq u64]                -> a run of contributions
 *              (journal.h) from that sequence on, one per record (flowcodec.h);
 *              appended to one at a time, the other emptied whole (mdb_drop)
 *              once the rollups no longer need any of it (rollup.c)
 *   hostidx    chunks (chunk.h) per minute: [minute start s u32][part u8][first host 16]
 *              -> entries host -> references to its flow rows in that minute
 *   rflush     [minute start s u32]                       -> u64 LE: the ingest seq the
 *              minute was last flushed at (rollup.c)
 *   agent_ids  agent name (no NUL)                        -> agent id u32 BE
 *   agents     [agent id u32]                             -> agent state (store.c)
 *   captures   capture id (no NUL)                        -> forensic capture job (capture_job.h)
 *   baselines, known_dsts, alerts: the detection engine's state (baseline.h, alerts.h)
 *   r{m,h,d}_{host,app,port,pair}  (12 DBs: tier x group), chunks (chunk.h):
 *              [bucket start s u32][part u8][first group key] -> entries group ->
 *              5 varint counters; group key: host 16 bytes, app 16 (NUL-padded),
 *              port 3 (proto, be16 port), pair 32 (a then b, a < b)
 *
 * The flows key is the second the flow ended plus the journal sequence of
 * the record that completed it: rows are appended near the end of the tree
 * (a few hot pages per transaction, not one per record), and scans run in
 * time order to the second. Sizes measured by bench/ingest_bench.c: about
 * 195 bytes on disk per record, everything included. */
#ifndef VIGIL_STORE_INT_H
#define VIGIL_STORE_INT_H

#include <lmdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "addr.h"
#include "bytes.h"
#include "clock.h"
#include "flowcodec.h"
#include "hash.h"
#include "openfilter.h"
#include "rowbuf.h"
#include "store.h"

#define STORE_SCHEMA 1u
#define STORE_PATH_MAX 4096

/* Seconds per rollup tier bucket. */
#define TIER_MINUTE 0
#define TIER_HOUR 1
#define TIER_DAY 2
#define TIER_COUNT 3
static const uint32_t tier_secs[TIER_COUNT] = {60, 3600, 86400};

/* Rollup groupings (same order as enum top_group). */
#define DIM_HOST 0
#define DIM_APP 1
#define DIM_PORT 2
#define DIM_PAIR 3
#define DIM_COUNT 4
#define GROUP_KEY_MAX 32
static const unsigned dim_klen[DIM_COUNT] = {16, 16, 3, 32};

#define FLOWS_KEY_LEN 12
#define OPEN_KEY_LEN 12
_Static_assert(OPEN_KEY_LEN == FLOWS_KEY_LEN, "query.c keeps either key in one field");

enum store_db {
    DB_META = 0,
    DB_FLOWS,
    DB_OPEN,
    DB_JOURNAL0, /* and DB_JOURNAL1 */
    DB_JOURNAL1,
    DB_HOSTIDX,
    DB_RFLUSH,
    DB_AGENT_IDS,
    DB_AGENTS,
    DB_CAPTURES, /* forensic capture jobs: capture id -> job (capture_job.h) */
    DB_RANK,     /* each built day's best groups: [day u32][dim u8] -> ranking (rank.h) */
    DB_ROLLUP0, /* TIER_COUNT x DIM_COUNT rollup DBs follow */
    DB_COUNT = DB_ROLLUP0 + TIER_COUNT * DIM_COUNT
};

/* The detection engine's databases live in an environment of their own,
 * DIR/detect (denv below): the engine writes new known destinations by the
 * hundred thousand on a busy fleet, and in the store's environment each of
 * those writes held LMDB's single writer lock against ingest. Its map has
 * a fixed size (the engine's tables are bounded), so no transaction on it
 * ever has to wait for a grow: the detection thread and queries use it
 * without map_lock. */
enum detect_db {
    DDB_BASELINES,  /* [kind u8][host 16] -> baseline (baseline.h) */
    DDB_KNOWN_DSTS, /* [host 16][destination 16] -> first seen (baseline.h) */
    DDB_ALERTS,     /* [alert id u64] -> alert (alerts.h) */
    DDB_COUNT
};

static inline unsigned rollup_db(unsigned tier, unsigned dim)
{
    return DB_ROLLUP0 + tier * DIM_COUNT + dim;
}

/* meta keys */
#define META_SCHEMA "schema"     /* u32 BE */
#define META_SEQ "seq"           /* u64 BE: last journal sequence committed */
#define META_GEN "gen"           /* u64 BE: bumped by every txn that moves rollup data */
#define META_NEXT_AGENT "next_agent" /* u32 BE */
#define META_SEALED_H "sealed_h" /* u32 BE: hours before it are in the hour tier */
#define META_SEALED_D "sealed_d" /* u32 BE: days before it are in the day tier */
#define META_COMPACT "compact"   /* compaction in progress (rollup.c) */
#define META_LOW_M "low_m"       /* u32 BE: minute rows before it may be expired */
#define META_LOW_H "low_h"
#define META_LOW_D "low_d"
#define META_JCUR "jcur"         /* u32 BE: the journal DB appended to (0 or 1) */

/* A compaction in progress: building tier `tier` bucket `bucket` from the
 * tier below; rows of it are final for dimensions before dim, and for dim
 * up to and including group last. */
struct compact_state {
    uint8_t tier;       /* 0: none, TIER_HOUR or TIER_DAY */
    uint8_t dim;        /* dimensions before it are done */
    bool has_last;      /* groups up to last (inclusive) of dim are done */
    uint32_t bucket;
    uint8_t last[GROUP_KEY_MAX];
};

/* Tier availability as one snapshot sees it (read from meta). */
struct tier_marks {
    uint32_t sealed_h, sealed_d;
    uint32_t low[TIER_COUNT];
    struct compact_state cs;
};

struct agent_slot {
    char name[STORE_AGENT_NAME_MAX];
    uint32_t id;
};

struct rollup_pending;
struct rank_build;
struct trail_rank;

/* LMDB's largest key as built by default (mdb_env_get_maxkeysize): no key
 * of ours comes near it. */
#define STORE__KEY_MAX 511

/* Where a retention walk over a whole DB goes on (retention.c): the first
 * key not yet visited; len 0: from the first key. */
struct store__walk_pos {
    size_t len;
    uint8_t key[STORE__KEY_MAX];
};
#define STORE__WALKS 2 /* capture jobs, alerts */

struct store {
    MDB_env *env;
    MDB_dbi db[DB_COUNT];
    struct rank_build *rank; /* the ranking of the day being built (writer-owned, rank.h) */
    MDB_env *denv; /* the detection engine's (enum detect_db) */
    MDB_dbi ddb[DDB_COUNT];
    struct store_config cfg;
    char path[STORE_PATH_MAX];
    struct hash_key hk;

    /* Queries hold map_lock shared for the life of their read transaction;
     * the writer takes it exclusively only to change the map size (LMDB
     * requires no live transaction in the process then). Writer-preferring. */
    pthread_rwlock_t map_lock;
    /* Guards pend, pend_gen and stats: the writer moves data between the
     * in-memory rollups and LMDB under it, queries copy under it. */
    pthread_mutex_t pend_lock;
    struct rollup_pending *pend;
    uint64_t pend_gen;       /* META_GEN value that pend corresponds to */
    struct store_stats stats;
    /* The standing trailing ranking (trail.h), under pend_lock: the one
     * published and the one being built (each keeps the contributions
     * committed after its snapshot to a minute it summed); the newest
     * record end as of pend_gen; build counters. */
    struct trail_rank *trail, *trail_building;
    int64_t pend_max_end_ns;
    uint64_t trail_builds, trail_dropped;
    _Atomic uint64_t trail_answers, trail_merged; /* any thread */
    int64_t trail_wanted_mono; /* the last top query over a trailing day (monotonic) */
    int64_t trail_took_ns;
    pthread_mutex_t trail_build_lock; /* one build at a time */
    /* A grow that could not have map_lock (queries held it); the writer
     * grows at its next store__maybe_grow. */
    atomic_bool grow_wanted;

    /* Writer-owned. */
    uint64_t seq;            /* last journal sequence committed */
    uint64_t gen;            /* last META_GEN committed */
    uint32_t next_agent;
    int64_t max_end_ns;      /* newest record end seen (clamped to the clock + 10 min) */
    uint32_t sealed_h, sealed_d;
    struct compact_state cs;
    int64_t closed_since_mono; /* when a closed minute was first seen pending (0: none) */
    int64_t reader_check_mono;
    int64_t open_check_mono; /* last sweep of stale open flows */
    uint64_t journal_first;  /* first journal sequence still stored (seq + 1: empty) */
    uint32_t jcur;           /* journal DB appended to: DB_JOURNAL0 + jcur */
    uint64_t jold_last;      /* last sequence in the other journal DB (0: empty) */
    uint64_t compact_checked_gen; /* gen at which no compaction was due */
    uint32_t flows_last_sec; /* newest second of any flows key written (maybe aborted) */
    /* Retention's place when a call ran out of time (retention.c): the job
     * to go on with, and how far the walks over capture jobs and alerts got. */
    unsigned ret_job;
    struct store__walk_pos ret_walk[STORE__WALKS];
    /* MDB_PANIC: every write fails until reopened. Atomic: the detection
     * thread's transactions begin through store__detect_begin, which
     * checks it too. */
    atomic_bool broken;

    /* name -> id, open addressing over agents[] (writer-owned). */
    struct agent_slot *agents;
    uint32_t n_agents, agents_cap;
    uint32_t *agent_index;   /* agents_cap * 2 slots, 0 = empty, else index + 1 */

    /* Per-batch scratch (writer-owned). */
    struct contrib *contribs;
    size_t contribs_cap;
    struct rowbuf rows; /* the transaction's flows rows, written sorted at its end */
    struct openfilter openf; /* keys that may be in DB_OPEN (writer-owned) */
};

/* ---- helpers shared by the modules (store.c) ---- */

/* Internal only, never returned to callers: the map is full; the caller
 * aborted its transaction and may grow the map and retry once. */
#define STORE__EMAPFULL (-4200)

struct agent_info;
/* Agent state value (agents DB) <-> struct agent_info (query.h). */
size_t store__agent_encode(const struct agent_info *a, uint8_t *buf, size_t len);
int store__agent_decode(const void *data, size_t len, struct agent_info *a);

/* Maps an LMDB or errno return to a VIGIL_E* code. */
int store__err(int rc);

/* Begins a write transaction; handles MDB_PANIC by marking the store broken. */
int store__begin_write(struct store *s, MDB_txn **txn);

/* Begins a transaction on the detection engine's environment: a write
 * (the detection thread's) or a read (queries; no map_lock needed). */
int store__detect_begin(struct store *s, bool write, MDB_txn **txn);

/* Commits txn, then — under pend_lock — runs after(s, ctx) (which must not
 * fail) and publishes gen as the generation pending state matches. On a
 * failed commit after() is not run. Returns 0 or a VIGIL code. */
int store__commit(struct store *s, MDB_txn *txn, uint64_t gen,
                  void (*after)(struct store *s, void *ctx), void *ctx);

/* Grows the map after MDB_MAP_FULL or when usage passes the threshold.
 * must: wait (bounded) for queries to drain; otherwise give up if any hold
 * the map, and leave grow_wanted set for the writer. Returns 0,
 * VIGIL_EAGAIN, VIGIL_EFULL or an error. */
int store__grow(struct store *s, bool must);

/* Checks usage after a commit and grows proactively, or because
 * grow_wanted was set (never blocks). */
void store__maybe_grow(struct store *s);

int store__put_meta_u32(struct store *s, MDB_txn *txn, const char *name, uint32_t v);
int store__put_meta_u64(struct store *s, MDB_txn *txn, const char *name, uint64_t v);
/* Missing keys read as 0. */
int store__get_meta_u32(struct store *s, MDB_txn *txn, const char *name, uint32_t *v);
int store__get_meta_u64(struct store *s, MDB_txn *txn, const char *name, uint64_t *v);

/* Reads the tier marks of txn's snapshot. */
int store__read_marks(struct store *s, MDB_txn *txn, struct tier_marks *m);

/* Opens a read snapshot for a query: takes map_lock shared, begins a read
 * transaction whose META_GEN matches pend_gen and returns with pend_lock
 * HELD, so the caller copies what it needs from s->pend and then calls
 * store__snapshot_unlock. End with store__snapshot_end. */
int store__snapshot_begin(struct store *s, MDB_txn **txn);
void store__snapshot_unlock(struct store *s);
void store__snapshot_end(struct store *s, MDB_txn *txn);

/* Agent id -> name within txn (for query output); "" if unknown. */
void store__agent_name(struct store *s, MDB_txn *txn, uint32_t id, char out[STORE_AGENT_NAME_MAX]);

/* Key builders. */
static inline void flows_key(uint8_t k[FLOWS_KEY_LEN], uint32_t sec, uint64_t seq)
{
    put_be32(k, sec);
    put_be64(k + 4, seq);
}

static inline uint32_t ns_to_sec(int64_t ns)
{
    return (uint32_t)(ns / NS_PER_SEC);
}

static inline uint32_t floor_to(uint32_t t, uint32_t step)
{
    return t - t % step;
}

#endif
