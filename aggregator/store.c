/* store.c — the LMDB environment, its schema, and applying batches.
 *
 * Durability: the environment is opened without MDB_NOSYNC/MDB_NOMETASYNC,
 * so mdb_txn_commit returns only once the data and then the meta page are
 * on disk; store_apply_batch returns 0 only after that.
 *
 * Concurrency: one writer thread (apply, flush, tick, retention) and any
 * number of query threads. The environment uses MDB_NOTLS so a read
 * transaction belongs to its txn object, not to a thread. Two locks:
 *  - map_lock (rwlock, writer-preferring): a query holds it shared while its
 *    read transaction lives; the writer takes it exclusively only around
 *    mdb_env_set_mapsize, which LMDB allows only with no transaction alive in
 *    the process. Queries are time-bounded, so the wait is too (and a
 *    proactive grow never waits: it tries again after the next commit).
 *  - pend_lock (mutex): the in-memory rollups. After each commit the writer
 *    updates them and publishes META_GEN under it; a query takes its snapshot
 *    and checks that the snapshot's META_GEN matches before copying them, so
 *    LMDB and memory are seen at the same instant.
 * Neither lock is held across an fsync. */
#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bytes.h"
#include "err.h"
#include "journal.h"
#include "log.h"
#include "query.h"
#include "rank.h"
#include "rollup.h"
#include "store_int.h"
#include "trail.h"

#define GIB (UINT64_C(1) << 30)
#define STORE_GROW_WAIT_NS (5 * NS_PER_SEC) /* longest a needed grow waits for queries */
#define READER_CHECK_EVERY_NS (60 * NS_PER_SEC)
#define MAX_END_AHEAD_NS (600 * NS_PER_SEC)  /* records from the future close nothing */
#define AGENT_STATE_MAX 512

static const char *const db_names[DB_COUNT] = {
    [DB_META] = "meta",           [DB_FLOWS] = "flows",     [DB_OPEN] = "open",
    [DB_JOURNAL0] = "journal0",   [DB_JOURNAL1] = "journal1", [DB_HOSTIDX] = "hostidx",
    [DB_RFLUSH] = "rflush",
    [DB_AGENT_IDS] = "agent_ids", [DB_AGENTS] = "agents",
    [DB_CAPTURES] = "captures",   [DB_RANK] = "rank",
    [DB_ROLLUP0 + 0] = "rm_host", [DB_ROLLUP0 + 1] = "rm_app", [DB_ROLLUP0 + 2] = "rm_port",
    [DB_ROLLUP0 + 3] = "rm_pair", [DB_ROLLUP0 + 4] = "rh_host", [DB_ROLLUP0 + 5] = "rh_app",
    [DB_ROLLUP0 + 6] = "rh_port", [DB_ROLLUP0 + 7] = "rh_pair", [DB_ROLLUP0 + 8] = "rd_host",
    [DB_ROLLUP0 + 9] = "rd_app",  [DB_ROLLUP0 + 10] = "rd_port", [DB_ROLLUP0 + 11] = "rd_pair",
};

void store_config_defaults(struct store_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->map_size = GIB;
    cfg->map_size_max = 4096 * GIB;
    cfg->map_grow_pct = 80;
    cfg->max_readers = 126;
    cfg->flow_retention_ns = 90 * 86400 * NS_PER_SEC;
    cfg->minute_retention_ns = 7 * 86400 * NS_PER_SEC;
    cfg->hour_retention_ns = 90 * 86400 * NS_PER_SEC;
    cfg->day_retention_ns = 366 * 86400 * NS_PER_SEC;
    cfg->capture_retention_ns = 90 * 86400 * NS_PER_SEC;
    cfg->alert_retention_ns = 366 * 86400 * NS_PER_SEC;
    cfg->close_grace_ns = 120 * NS_PER_SEC;
    cfg->flush_interval_ns = NS_PER_SEC;
    cfg->pending_max_rows = 1000000;
    cfg->compact_slice_rows = 50000;
    cfg->open_stale_ns = 600 * NS_PER_SEC;
    cfg->open_sweep_ns = 60 * NS_PER_SEC;
    cfg->trail_late_max = 131072;
}

/* ---- error mapping, meta, commit ----------------------------------------- */

int store__err(int rc)
{
    if (rc == 0)
        return 0;
    if (rc > 0)
        return -rc; /* errno from LMDB: ENOSPC, EIO, ENOMEM, EACCES... */
    if (rc < MDB_KEYEXIST || rc > MDB_LAST_ERRCODE)
        return rc; /* already a vigil code */
    switch (rc) {
    case MDB_MAP_FULL: return STORE__EMAPFULL;
    case MDB_NOTFOUND: return VIGIL_ENOENT;
    case MDB_READERS_FULL: return VIGIL_EAGAIN;
    case MDB_TXN_FULL:
    case MDB_CURSOR_FULL:
    case MDB_DBS_FULL: return VIGIL_EFULL;
    default:
        log_err("store: LMDB: %s", mdb_strerror(rc));
        return VIGIL_EIO;
    }
}

static int put_meta(struct store *s, MDB_txn *txn, const char *name, const void *v, size_t n)
{
    MDB_val k = {strlen(name), (void *)name}, val = {n, (void *)v};
    return mdb_put(txn, s->db[DB_META], &k, &val, 0);
}

int store__put_meta_u32(struct store *s, MDB_txn *txn, const char *name, uint32_t v)
{
    uint8_t b[4];
    put_be32(b, v);
    return put_meta(s, txn, name, b, sizeof b);
}

int store__put_meta_u64(struct store *s, MDB_txn *txn, const char *name, uint64_t v)
{
    uint8_t b[8];
    put_be64(b, v);
    return put_meta(s, txn, name, b, sizeof b);
}

static int get_meta(struct store *s, MDB_txn *txn, const char *name, MDB_val *v)
{
    MDB_val k = {strlen(name), (void *)name};
    return mdb_get(txn, s->db[DB_META], &k, v);
}

int store__get_meta_u32(struct store *s, MDB_txn *txn, const char *name, uint32_t *out)
{
    MDB_val v;
    int rc = get_meta(s, txn, name, &v);
    *out = 0;
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc)
        return rc;
    if (v.mv_size != 4)
        return MDB_CORRUPTED;
    *out = get_be32(v.mv_data);
    return 0;
}

int store__get_meta_u64(struct store *s, MDB_txn *txn, const char *name, uint64_t *out)
{
    MDB_val v;
    int rc = get_meta(s, txn, name, &v);
    *out = 0;
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc)
        return rc;
    if (v.mv_size != 8)
        return MDB_CORRUPTED;
    *out = get_be64(v.mv_data);
    return 0;
}

static int get_compact(struct store *s, MDB_txn *txn, struct compact_state *cs)
{
    MDB_val v;
    int rc = get_meta(s, txn, META_COMPACT, &v);
    memset(cs, 0, sizeof *cs);
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc)
        return rc;
    const uint8_t *p = v.mv_data;
    if (v.mv_size < 7)
        return MDB_CORRUPTED;
    cs->tier = p[0];
    cs->dim = p[1];
    cs->has_last = p[2] != 0;
    cs->bucket = get_be32(p + 3);
    if (cs->tier == 0)
        return 0;
    if ((cs->tier != TIER_HOUR && cs->tier != TIER_DAY) || cs->dim >= DIM_COUNT)
        return MDB_CORRUPTED;
    if (cs->has_last) {
        if (v.mv_size != 7 + dim_klen[cs->dim])
            return MDB_CORRUPTED;
        memcpy(cs->last, p + 7, dim_klen[cs->dim]);
    }
    return 0;
}

int store__read_marks(struct store *s, MDB_txn *txn, struct tier_marks *m)
{
    int rc;
    memset(m, 0, sizeof *m);
    if ((rc = store__get_meta_u32(s, txn, META_SEALED_H, &m->sealed_h)) ||
        (rc = store__get_meta_u32(s, txn, META_SEALED_D, &m->sealed_d)) ||
        (rc = store__get_meta_u32(s, txn, META_LOW_M, &m->low[TIER_MINUTE])) ||
        (rc = store__get_meta_u32(s, txn, META_LOW_H, &m->low[TIER_HOUR])) ||
        (rc = store__get_meta_u32(s, txn, META_LOW_D, &m->low[TIER_DAY])) ||
        (rc = get_compact(s, txn, &m->cs)))
        return store__err(rc);
    return 0;
}

int store__begin_write(struct store *s, MDB_txn **txn)
{
    if (s->broken)
        return VIGIL_EIO;
    int rc = mdb_txn_begin(s->env, NULL, 0, txn);
    if (rc == MDB_PANIC) {
        log_err("store: LMDB reported a fatal error: close and reopen the store");
        s->broken = true;
    }
    return store__err(rc);
}

static void publish_stats(struct store *s)
{
    MDB_envinfo info;
    MDB_stat st;
    s->stats.pending_rows = rollup_pending_rows(s->pend);
    s->stats.pending_buckets = rollup_pending_buckets(s->pend);
    s->stats.ingest_seq = s->seq;
    if (mdb_env_info(s->env, &info) == 0 && mdb_env_stat(s->env, &st) == 0) {
        s->stats.map_size = info.me_mapsize;
        s->stats.map_used = (uint64_t)(info.me_last_pgno + 1) * st.ms_psize;
    }
}

int store__commit(struct store *s, MDB_txn *txn, uint64_t gen,
                  void (*after)(struct store *s, void *ctx), void *ctx)
{
    int rc = mdb_txn_commit(txn); /* frees txn, also on failure */
    if (rc) {
        if (rc == EIO || rc == ENOSPC)
            log_err("store: commit failed: %s", strerror(rc));
        return store__err(rc);
    }
    pthread_mutex_lock(&s->pend_lock);
    if (after)
        after(s, ctx);
    s->gen = gen;
    s->pend_gen = gen;
    publish_stats(s);
    pthread_mutex_unlock(&s->pend_lock);
    store__maybe_grow(s);
    return 0;
}

/* ---- map size ---------------------------------------------------------------- */

int store__grow(struct store *s, bool must)
{
    MDB_envinfo info;
    long page = sysconf(_SC_PAGESIZE);
    uint64_t cur, next;
    int rc;

    if (mdb_env_info(s->env, &info) != 0)
        return VIGIL_EIO;
    cur = info.me_mapsize;
    if (cur >= s->cfg.map_size_max) {
        if (must)
            log_err("store: the map is full at its maximum (%llu bytes)",
                    (unsigned long long)cur);
        return VIGIL_EFULL;
    }
    next = cur < 8 * GIB ? cur * 2 : cur + 8 * GIB;
    if (next < cur + 32 * (1u << 20))
        next = cur + 32 * (1u << 20);
    if (next > s->cfg.map_size_max)
        next = s->cfg.map_size_max;
    if (page > 0)
        next -= next % (uint64_t)page;
    if (next <= cur)
        return VIGIL_EFULL;

    if (must) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += STORE_GROW_WAIT_NS / NS_PER_SEC;
        rc = pthread_rwlock_timedwrlock(&s->map_lock, &ts);
    } else {
        rc = pthread_rwlock_trywrlock(&s->map_lock);
    }
    if (rc) {
        if (must)
            log_warn("store: queries held the map for %lld s: the batch will be retried",
                     (long long)(STORE_GROW_WAIT_NS / NS_PER_SEC));
        else
            atomic_store(&s->grow_wanted, true); /* the writer's next maybe_grow */
        return VIGIL_EAGAIN;
    }
    rc = mdb_env_set_mapsize(s->env, (size_t)next);
    pthread_rwlock_unlock(&s->map_lock);
    if (rc) {
        log_err("store: cannot grow the map to %llu bytes: %s", (unsigned long long)next,
                mdb_strerror(rc));
        return store__err(rc);
    }
    log_info("store: map grown from %llu to %llu MiB", (unsigned long long)(cur >> 20),
             (unsigned long long)(next >> 20));
    pthread_mutex_lock(&s->pend_lock);
    s->stats.map_grows++;
    s->stats.map_size = next;
    pthread_mutex_unlock(&s->pend_lock);
    return 0;
}

void store__maybe_grow(struct store *s)
{
    MDB_envinfo info;
    MDB_stat st;
    if (atomic_exchange(&s->grow_wanted, false)) { /* asked for earlier, by either thread */
        (void)store__grow(s, false);
        return;
    }
    if (mdb_env_info(s->env, &info) || mdb_env_stat(s->env, &st))
        return;
    uint64_t used = (uint64_t)(info.me_last_pgno + 1) * st.ms_psize;
    if (used * 100 > (uint64_t)info.me_mapsize * s->cfg.map_grow_pct)
        (void)store__grow(s, false);
}

/* ---- agent state ------------------------------------------------------------- */

size_t store__agent_encode(const struct agent_info *a, uint8_t *buf, size_t len)
{
    const uint64_t f[] = {
        a->last_seq,     a->epoch,           a->batches,       a->records,
        a->flows,        a->seq_gaps,        (uint64_t)a->last_seen_ns,
        a->packets,      a->bytes,           a->decode_errors, a->capture_drops,
        a->interface_drops, a->agent_flows,  a->evictions,     a->emergency,
        a->agent_records, a->spool_bytes,    a->spool_batches, a->spool_dropped_batches,
        a->spool_dropped_records, (uint64_t)a->started_ns,
    };
    size_t nlen = strnlen(a->name, sizeof a->name - 1);
    if (len < 1 + sizeof f / sizeof f[0] * VARINT_MAX + VARINT_MAX + nlen)
        return 0;
    uint8_t *p = buf;
    *p++ = 1; /* version */
    p += put_varint(p, nlen);
    memcpy(p, a->name, nlen);
    p += nlen;
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
        p += put_varint(p, f[i]);
    return (size_t)(p - buf);
}

int store__agent_decode(const void *data, size_t len, struct agent_info *a)
{
    struct cursor c = cur_make(data, len);
    uint8_t ver;
    uint64_t nlen, f[21];

    memset(a, 0, sizeof *a);
    if (!cur_u8(&c, &ver) || ver != 1 || !cur_varint(&c, &nlen) || nlen >= sizeof a->name ||
        !cur_bytes(&c, a->name, (size_t)nlen))
        return VIGIL_EBADMSG;
    a->name[nlen] = '\0';
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
        if (!cur_varint(&c, &f[i]))
            return VIGIL_EBADMSG;
    a->last_seq = f[0];
    a->epoch = f[1];
    a->batches = f[2];
    a->records = f[3];
    a->flows = f[4];
    a->seq_gaps = f[5];
    a->last_seen_ns = (int64_t)f[6];
    a->packets = f[7];
    a->bytes = f[8];
    a->decode_errors = f[9];
    a->capture_drops = f[10];
    a->interface_drops = f[11];
    a->agent_flows = f[12];
    a->evictions = f[13];
    a->emergency = f[14];
    a->agent_records = f[15];
    a->spool_bytes = f[16];
    a->spool_batches = f[17];
    a->spool_dropped_batches = f[18];
    a->spool_dropped_records = f[19];
    a->started_ns = (int64_t)f[20];
    return 0;
}

void store__agent_name(struct store *s, MDB_txn *txn, uint32_t id,
                       char out[STORE_AGENT_NAME_MAX])
{
    uint8_t k[4];
    MDB_val kv = {4, k}, v;
    struct agent_info a;
    put_be32(k, id);
    out[0] = '\0';
    if (mdb_get(txn, s->db[DB_AGENTS], &kv, &v) == 0 &&
        store__agent_decode(v.mv_data, v.mv_size, &a) == 0)
        memcpy(out, a.name, sizeof a.name);
}

/* name -> id cache (writer-owned; agents are few and never deleted). */
static uint32_t agent_hash(const struct store *s, const char *name)
{
    return (uint32_t)hash_siphash13(&s->hk, name, strlen(name));
}

static bool agent_lookup(const struct store *s, const char *name, uint32_t *id)
{
    if (!s->agents_cap)
        return false;
    uint32_t mask = s->agents_cap * 2 - 1;
    for (uint32_t i = agent_hash(s, name) & mask;; i = (i + 1) & mask) {
        uint32_t v = s->agent_index[i];
        if (!v)
            return false;
        if (strcmp(s->agents[v - 1].name, name) == 0) {
            *id = s->agents[v - 1].id;
            return true;
        }
    }
}

static int agent_remember(struct store *s, const char *name, uint32_t id)
{
    if (s->n_agents == s->agents_cap) {
        uint32_t cap = s->agents_cap ? s->agents_cap * 2 : 64;
        struct agent_slot *a = realloc(s->agents, cap * sizeof *a);
        if (!a)
            return VIGIL_ENOMEM;
        s->agents = a;
        uint32_t *idx = calloc((size_t)cap * 2, sizeof *idx);
        if (!idx)
            return VIGIL_ENOMEM;
        free(s->agent_index);
        s->agent_index = idx;
        s->agents_cap = cap;
        for (uint32_t e = 0; e < s->n_agents; e++) {
            uint32_t i = agent_hash(s, s->agents[e].name) & (cap * 2 - 1);
            while (idx[i])
                i = (i + 1) & (cap * 2 - 1);
            idx[i] = e + 1;
        }
    }
    uint32_t e = s->n_agents++, mask = s->agents_cap * 2 - 1;
    snprintf(s->agents[e].name, sizeof s->agents[e].name, "%s", name);
    s->agents[e].id = id;
    uint32_t i = agent_hash(s, name) & mask;
    while (s->agent_index[i])
        i = (i + 1) & mask;
    s->agent_index[i] = e + 1;
    return 0;
}

/* ---- apply ------------------------------------------------------------------- */

struct apply_ctx {
    const struct contrib *c;
    size_t n;
    int64_t max_end_ns; /* the newest record end once it has committed */
};

/* Under pend_lock, after the commit: the contributions join the pending
 * rollups, and the standing ranking notes those to minutes it has summed
 * already (trail.h). */
static void apply_after(struct store *s, void *arg)
{
    const struct apply_ctx *ac = arg;
    for (size_t i = 0; i < ac->n; i++) {
        rollup_pending_add(s->pend, &ac->c[i]);
        trail_note(s, &ac->c[i]);
    }
    s->pend_max_end_ns = ac->max_end_ns;
}

/* Finishes a write transaction that journaled n rollup contributions (held
 * in s->contribs): records the ingest sequence and the new generation,
 * reserves room in the in-memory rollups first so that adding them after
 * the commit cannot fail (a committed record must reach them), commits, and
 * adds them. On an error before the commit the transaction is aborted.
 * Returns 0 or a store error code. */
static int commit_contributions(struct store *s, MDB_txn *txn, uint64_t seq, size_t n,
                                int64_t max_end_ns)
{
    int rc;
    if ((rc = store__put_meta_u64(s, txn, META_SEQ, seq)) != 0 ||
        (rc = store__put_meta_u64(s, txn, META_GEN, s->gen + 1)) != 0)
        goto fail;
    pthread_mutex_lock(&s->pend_lock);
    rc = rollup_pending_reserve(s->pend, s->contribs, n);
    pthread_mutex_unlock(&s->pend_lock);
    if (rc)
        goto fail;
    struct apply_ctx ac = {s->contribs, n, max_end_ns};
    if ((rc = store__commit(s, txn, s->gen + 1, apply_after, &ac)) != 0)
        return rc;
    s->seq = seq;
    return 0;
fail:
    mdb_txn_abort(txn);
    return store__err(rc);
}

static void copy_counters(struct agent_info *a, const Vigil__AgentCounters *c)
{
    if (!c)
        return;
    a->packets = c->packets;
    a->bytes = c->bytes;
    a->decode_errors = c->decode_errors;
    a->capture_drops = c->capture_drops;
    a->interface_drops = c->interface_drops;
    a->agent_flows = c->flows;
    a->evictions = c->evictions;
    a->emergency = c->emergency;
    a->agent_records = c->records;
    a->spool_bytes = c->spool_bytes;
    a->spool_batches = c->spool_batches;
    a->spool_dropped_batches = c->spool_dropped_batches;
    a->spool_dropped_records = c->spool_dropped_records;
    a->started_ns = c->started_ns;
}

/* Puts one row of the flows DB at (sec, seq). Sequences only grow, so a row
 * in the newest second goes past the end of the tree: append (LMDB checks,
 * and refuses if we were wrong). */
static int put_row(struct store *s, MDB_cursor *flows, uint32_t sec, uint64_t seq,
                   const uint8_t *val, size_t len)
{
    uint8_t key[FLOWS_KEY_LEN];
    MDB_val k = {sizeof key, key}, v = {len, (void *)val};
    int rc;

    flows_key(key, sec, seq);
    if (sec >= s->flows_last_sec) {
        rc = mdb_cursor_put(flows, &k, &v, MDB_APPEND);
        if (rc == MDB_KEYEXIST)
            rc = mdb_cursor_put(flows, &k, &v, 0);
        s->flows_last_sec = sec;
    } else {
        rc = mdb_cursor_put(flows, &k, &v, 0);
    }
    return rc;
}

/* Appends a complete flow to the flows DB at (second of its end, seq). */
static int put_flow(struct store *s, MDB_cursor *flows, const struct sflow *f, uint64_t seq,
                    uint32_t *row_sec)
{
    uint8_t buf[FLOWCODEC_MAX];
    *row_sec = ns_to_sec(f->rec.end_ns);
    return put_row(s, flows, *row_sec, seq, buf, flowcodec_encode(f, buf));
}

/* Writes the rows held back by apply_record, in key order (rowbuf.h). */
static int put_rows(struct store *s, MDB_cursor *flows)
{
    rowbuf_sort(&s->rows);
    for (size_t i = 0; i < s->rows.n; i++) {
        uint32_t sec;
        uint64_t seq;
        const uint8_t *val;
        size_t len;
        rowbuf_get(&s->rows, i, &sec, &seq, &val, &len);
        int rc = put_row(s, flows, sec, seq, val, len);
        if (rc)
            return rc;
    }
    return 0;
}

/* Stores one record and its journal entry. A record of a flow still open
 * merges into its row in the open DB (small, its pages hot); the final
 * record moves the whole flow to the flows DB (held back in s->rows until
 * the end of the transaction: put_rows). */
static int apply_record(struct store *s, MDB_txn *txn, struct journal_writer *journal,
                        uint32_t agent_id, const struct flow_record *r, struct contrib *c,
                        struct apply_result *res)
{
    uint8_t okey[OPEN_KEY_LEN], buf[FLOWCODEC_MAX];
    MDB_val ok = {sizeof okey, okey}, v;
    struct sflow f;
    bool found = false;
    int rc;

    put_be32(okey, agent_id);
    put_be64(okey + 4, r->flow_id);
    rc = openfilter_maybe(&s->openf, agent_id, r->flow_id) ? mdb_get(txn, s->db[DB_OPEN], &ok, &v)
                                                           : MDB_NOTFOUND;
    if (rc == 0) {
        if (flowcodec_decode(v.mv_data, v.mv_size, &f) == 0 && f.agent_id == agent_id)
            found = true;
        else
            log_warn("store: damaged open flow (agent %u) replaced", (unsigned)agent_id);
    } else if (rc != MDB_NOTFOUND) {
        return rc;
    }

    c->end_ns = r->end_ns;
    c->src = r->src;
    c->dst = r->dst;
    c->proto = r->proto;
    c->dst_port = r->has_ports ? r->dst_port : 0;
    memcpy(c->app, r->app, sizeof c->app);
    c->pkts_fwd = r->pkts_fwd;
    c->bytes_fwd = r->bytes_fwd;
    c->pkts_rev = r->pkts_rev;
    c->bytes_rev = r->bytes_rev;
    c->new_flow = !found;
    if (found) {
        flowcodec_merge(&f, r);
        res->merged++;
    } else {
        f.rec = *r;
        f.rec.agent[0] = '\0';
        f.agent_id = agent_id;
        f.records = 1;
        res->new_flows++;
    }

    if (r->final) {
        c->placed = true;
        c->row_sec = ns_to_sec(f.rec.end_ns);
        if ((rc = rowbuf_add(&s->rows, &f, c->row_sec, c->seq)) != 0)
            return rc;
        if (found && (rc = mdb_del(txn, s->db[DB_OPEN], &ok, NULL)) != 0)
            return rc;
    } else {
        v = (MDB_val){flowcodec_encode(&f, buf), buf};
        openfilter_add(&s->openf, agent_id, r->flow_id);
        if ((rc = mdb_put(txn, s->db[DB_OPEN], &ok, &v, 0)) != 0)
            return rc;
    }

    return journal_writer_add(journal, c);
}

/* Applies one batch inside txn (the duplicate check, its records, the
 * agent's state). *seq and *max_end advance; contributions go to
 * s->contribs from *n on. A new agent's id is returned in *new_id
 * (UINT32_MAX: none) for the caller to cache after the commit. */
static int apply_one(struct store *s, MDB_txn *txn, struct journal_writer *journal,
                     const Vigil__FlowBatch *b, const char *name, struct apply_result *res,
                     uint64_t *seq, int64_t *max_end, size_t *n, uint32_t *new_id)
{
    uint8_t idk[4], abuf[AGENT_STATE_MAX];
    struct agent_info st;
    int64_t clamp = vigil_wallclock_ns() + MAX_END_AHEAD_NS;
    size_t first = *n;
    uint32_t id;
    MDB_val k, v;
    int rc;

    *new_id = UINT32_MAX;
    if (!agent_lookup(s, name, &id)) {
        /* maybe created by an earlier batch of this group */
        MDB_val nk = {strlen(name), (void *)name}, nv;
        rc = mdb_get(txn, s->db[DB_AGENT_IDS], &nk, &nv);
        if (rc == 0 && nv.mv_size == 4) {
            id = get_be32(nv.mv_data);
        } else if (rc == 0 || rc == MDB_NOTFOUND) {
            uint32_t next;
            if ((rc = store__get_meta_u32(s, txn, META_NEXT_AGENT, &next)) != 0)
                return rc;
            if (next < s->next_agent)
                next = s->next_agent;
            if (next >= STORE_MAX_AGENTS) {
                log_err("store: more than %u agents: refusing %s", STORE_MAX_AGENTS, name);
                return VIGIL_EFULL;
            }
            id = next;
            *new_id = id;
            put_be32(idk, id);
            k = (MDB_val){strlen(name), (void *)name};
            v = (MDB_val){4, idk};
            if ((rc = mdb_put(txn, s->db[DB_AGENT_IDS], &k, &v, 0)) != 0 ||
                (rc = store__put_meta_u32(s, txn, META_NEXT_AGENT, id + 1)) != 0)
                return rc;
        } else {
            return rc;
        }
    }
    put_be32(idk, id);
    k = (MDB_val){4, idk};
    rc = mdb_get(txn, s->db[DB_AGENTS], &k, &v);
    if (rc == 0 && store__agent_decode(v.mv_data, v.mv_size, &st) != 0)
        rc = MDB_CORRUPTED;
    if (rc == MDB_NOTFOUND) {
        memset(&st, 0, sizeof st);
        snprintf(st.name, sizeof st.name, "%s", name);
        rc = 0;
    }
    if (rc)
        return rc;
    if (b->agent_epoch && st.epoch && b->agent_epoch != st.epoch) {
        log_warn("store: agent %s reinstalled (epoch %llx -> %llx): its sequence restarts", name,
                 (unsigned long long)st.epoch, (unsigned long long)b->agent_epoch);
        st.last_seq = 0;
        res->epoch_reset = true;
    }
    if (b->seq <= st.last_seq) {
        res->duplicate = true;
        res->epoch_reset = false;
        res->last_seq = st.last_seq;
        return 0; /* nothing written for it */
    }
    if (st.last_seq && b->seq > st.last_seq + 1)
        st.seq_gaps += b->seq - st.last_seq - 1;
    if (b->agent_epoch)
        st.epoch = b->agent_epoch;

    for (size_t i = 0; i < b->n_records; i++) {
        struct flow_record r;
        if (flowcodec_from_pb(b->records[i], &r) != 0) {
            res->rejected++;
            continue;
        }
        struct contrib *c = &s->contribs[*n];
        memset(c, 0, sizeof *c);
        c->seq = ++*seq;
        if ((rc = apply_record(s, txn, journal, id, &r, c, res)) != 0)
            return rc;
        (*n)++;
        if (r.end_ns > *max_end && r.end_ns <= clamp)
            *max_end = r.end_ns;
    }
    res->stored = (uint32_t)(*n - first);
    res->last_seq = b->seq;

    st.last_seq = b->seq;
    st.last_seen_ns = vigil_wallclock_ns();
    st.batches++;
    st.records += res->stored;
    st.flows += res->new_flows;
    copy_counters(&st, b->counters);
    v = (MDB_val){store__agent_encode(&st, abuf, sizeof abuf), abuf};
    if (v.mv_size == 0)
        return VIGIL_EINVAL;
    return mdb_put(txn, s->db[DB_AGENTS], &k, &v, 0);
}

/* The whole group in one transaction; STORE__EMAPFULL lets the caller grow
 * the map and call again from scratch. */
static int apply_txn(struct store *s, const Vigil__FlowBatch *const *b,
                     const char *const *names, size_t nb, struct apply_result *res)
{
    MDB_txn *txn = NULL;
    MDB_cursor *flows = NULL, *journal = NULL;
    struct journal_writer jw;
    uint64_t seq = s->seq;
    int64_t max_end = s->max_end_ns;
    uint32_t new_ids[STORE_MAX_GROUP];
    size_t n = 0;
    bool wrote = false;
    int rc;

    if ((rc = store__begin_write(s, &txn)) != 0)
        return rc;
    if ((rc = mdb_cursor_open(txn, s->db[DB_FLOWS], &flows)) != 0 ||
        (rc = mdb_cursor_open(txn, s->db[DB_JOURNAL0 + s->jcur], &journal)) != 0)
        goto fail;
    journal_writer_begin(&jw, journal);
    rowbuf_clear(&s->rows);
    /* Unbuilt, the filter sends every record to mdb_get: slower, still exact. */
    if (openfilter_wants_build(&s->openf))
        (void)openfilter_build(&s->openf, txn, s->db[DB_OPEN]);
    for (size_t i = 0; i < nb; i++) {
        memset(&res[i], 0, sizeof res[i]);
        rc = apply_one(s, txn, &jw, b[i], names[i], &res[i], &seq, &max_end, &n,
                       &new_ids[i]);
        if (rc)
            goto fail;
        wrote |= !res[i].duplicate;
    }
    if ((rc = journal_writer_end(&jw)) != 0 || (rc = put_rows(s, flows)) != 0)
        goto fail;
    mdb_cursor_close(flows);
    mdb_cursor_close(journal);
    flows = journal = NULL;
    if (!wrote) { /* only duplicates: nothing to commit */
        mdb_txn_abort(txn);
        return 0;
    }
    if ((rc = commit_contributions(s, txn, seq, n, max_end)) != 0)
        return rc;
    s->max_end_ns = max_end;
    for (size_t i = 0; i < nb; i++)
        if (new_ids[i] != UINT32_MAX) {
            if (new_ids[i] + 1 > s->next_agent)
                s->next_agent = new_ids[i] + 1;
            if (agent_remember(s, names[i], new_ids[i]) != 0)
                log_err("store: out of memory caching agent %s", names[i]);
        }
    return 0;
fail:
    if (flows)
        mdb_cursor_close(flows);
    if (journal)
        mdb_cursor_close(journal);
    mdb_txn_abort(txn);
    return store__err(rc);
}

int store_apply_batches(struct store *s, const Vigil__FlowBatch *const *b,
                        const char *const *agent_names, size_t n, struct apply_result *res)
{
    size_t records = 0;
    int rc;

    if (!s || !b || !agent_names || !res || n == 0 || n > STORE_MAX_GROUP)
        return VIGIL_EINVAL;
    for (size_t i = 0; i < n; i++) {
        memset(&res[i], 0, sizeof res[i]);
        size_t nlen = agent_names[i] ? strnlen(agent_names[i], STORE_AGENT_NAME_MAX) : 0;
        if (!b[i] || nlen == 0 || nlen >= STORE_AGENT_NAME_MAX || b[i]->seq == 0 ||
            b[i]->n_records > STORE_MAX_BATCH_RECORDS || (b[i]->n_records && !b[i]->records))
            return VIGIL_EINVAL;
        records += b[i]->n_records;
    }
    if (records > s->contribs_cap) {
        struct contrib *c = realloc(s->contribs, records * sizeof *c);
        if (!c)
            return VIGIL_ENOMEM;
        s->contribs = c;
        s->contribs_cap = records;
    }

    uint64_t grows = s->stats.map_grows;
    rc = apply_txn(s, b, agent_names, n, res);
    if (rc == STORE__EMAPFULL) {
        rc = store__grow(s, true);
        if (rc == 0) {
            pthread_mutex_lock(&s->pend_lock);
            s->stats.retries++;
            pthread_mutex_unlock(&s->pend_lock);
            rc = apply_txn(s, b, agent_names, n, res);
        }
        if (rc == STORE__EMAPFULL)
            rc = VIGIL_EFULL;
    }
    res[0].map_grown = (uint32_t)(s->stats.map_grows - grows);
    if (rc)
        return rc;

    bool wrote = false;
    pthread_mutex_lock(&s->pend_lock);
    for (size_t i = 0; i < n; i++) {
        if (res[i].duplicate) {
            s->stats.duplicates++;
        } else {
            wrote = true;
            s->stats.batches++;
            s->stats.records += res[i].stored;
            s->stats.rejected += res[i].rejected;
        }
    }
    pthread_mutex_unlock(&s->pend_lock);

    /* The batches are durable: whatever happens to the flush, the caller acks. */
    if (wrote) {
        int frc = rollup_flush(s, FLUSH_DUE);
        if (frc)
            log_warn("store: rollup flush deferred: %s", vigil_strerror(frc));
    }
    return 0;
}

int store_apply_batch(struct store *s, const Vigil__FlowBatch *b, const char *agent_name,
                      struct apply_result *res)
{
    struct apply_result local;
    if (!res)
        res = &local;
    memset(res, 0, sizeof *res);
    if (!b)
        return VIGIL_EINVAL;
    return store_apply_batches(s, &b, &agent_name, 1, res);
}

#define OPEN_EXPIRE_MAX 10000u /* flows moved per transaction */

/* Moves open flows without a record for open_stale_ns (behind the newest
 * record) to the flows DB as they are, in one transaction: each gets a
 * journal entry that only indexes it by host (its counters were counted
 * when its records came). */
static int expire_open(struct store *s, unsigned *moved)
{
    int64_t cutoff = s->max_end_ns - s->cfg.open_stale_ns;
    MDB_cursor *open = NULL, *flows = NULL, *journal = NULL;
    struct journal_writer jw;
    uint64_t seq = s->seq;
    MDB_txn *txn;
    MDB_val k, v;
    size_t n = 0;
    int rc;

    *moved = 0;
    if (cutoff <= 0)
        return 0;
    if (s->contribs_cap < OPEN_EXPIRE_MAX) {
        struct contrib *c = realloc(s->contribs, OPEN_EXPIRE_MAX * sizeof *c);
        if (!c)
            return VIGIL_ENOMEM;
        s->contribs = c;
        s->contribs_cap = OPEN_EXPIRE_MAX;
    }
    if ((rc = store__begin_write(s, &txn)) != 0)
        return rc;
    if ((rc = mdb_cursor_open(txn, s->db[DB_OPEN], &open)) != 0 ||
        (rc = mdb_cursor_open(txn, s->db[DB_FLOWS], &flows)) != 0 ||
        (rc = mdb_cursor_open(txn, s->db[DB_JOURNAL0 + s->jcur], &journal)) != 0)
        goto fail;
    journal_writer_begin(&jw, journal);
    for (rc = mdb_cursor_get(open, &k, &v, MDB_FIRST); rc == 0 && n < OPEN_EXPIRE_MAX;) {
        struct sflow f;
        if (flowcodec_decode(v.mv_data, v.mv_size, &f) != 0 || f.rec.end_ns >= cutoff) {
            rc = mdb_cursor_get(open, &k, &v, MDB_NEXT);
            continue;
        }
        struct contrib *c = &s->contribs[n];
        memset(c, 0, sizeof *c);
        c->seq = ++seq;
        c->end_ns = f.rec.end_ns;
        c->src = f.rec.src;
        c->dst = f.rec.dst;
        c->placed = true;
        c->refs_only = true;
        if ((rc = put_flow(s, flows, &f, c->seq, &c->row_sec)) != 0)
            break;
        if ((rc = journal_writer_add(&jw, c)) != 0 || (rc = mdb_cursor_del(open, 0)) != 0)
            break;
        n++;
        rc = mdb_cursor_get(open, &k, &v, MDB_NEXT); /* after a delete: the one that followed */
    }
    if (rc == 0 || rc == MDB_NOTFOUND)
        rc = journal_writer_end(&jw);
    if (rc)
        goto fail;
    mdb_cursor_close(open);
    mdb_cursor_close(flows);
    mdb_cursor_close(journal);
    open = flows = journal = NULL;
    if (n == 0) {
        mdb_txn_abort(txn);
        return 0;
    }
    if ((rc = commit_contributions(s, txn, seq, n, s->max_end_ns)) != 0)
        return rc;
    *moved = (unsigned)n;
    pthread_mutex_lock(&s->pend_lock);
    s->stats.open_expired += n;
    pthread_mutex_unlock(&s->pend_lock);
    log_info("store: %zu flows without a final record for %lld s stored as they are", n,
             (long long)(s->cfg.open_stale_ns / NS_PER_SEC));
    return 0;
fail:
    if (open)
        mdb_cursor_close(open);
    if (flows)
        mdb_cursor_close(flows);
    if (journal)
        mdb_cursor_close(journal);
    mdb_txn_abort(txn);
    return store__err(rc);
}

int store_flush(struct store *s)
{
    if (!s)
        return VIGIL_EINVAL;
    return rollup_flush(s, FLUSH_ALL);
}

int store_tick(struct store *s, int64_t budget_ns)
{
    int64_t now = vigil_monotonic_ns();
    int rc;

    if (!s)
        return VIGIL_EINVAL;
    if (now - s->reader_check_mono >= READER_CHECK_EVERY_NS) {
        int dead = 0;
        if (mdb_reader_check(s->env, &dead) == 0 && dead > 0) {
            log_warn("store: cleared %d stale reader slots", dead);
            pthread_mutex_lock(&s->pend_lock);
            s->stats.reader_slots_cleared += (uint64_t)dead;
            pthread_mutex_unlock(&s->pend_lock);
        }
        s->reader_check_mono = now;
    }
    if (now - s->open_check_mono >= s->cfg.open_sweep_ns) {
        unsigned moved;
        do {
            rc = expire_open(s, &moved);
            if (rc == STORE__EMAPFULL) { /* grow, then once more */
                if ((rc = store__grow(s, true)) == 0)
                    rc = expire_open(s, &moved);
                if (rc == STORE__EMAPFULL)
                    rc = VIGIL_EFULL;
            }
            if (rc)
                return rc;
        } while (moved == OPEN_EXPIRE_MAX && vigil_monotonic_ns() < now + budget_ns);
        s->open_check_mono = now;
    }
    if ((rc = rollup_flush(s, FLUSH_DUE)) != 0)
        return rc;
    return rollup_compact(s, now + budget_ns);
}

void store_get_stats(struct store *s, struct store_stats *out)
{
    pthread_mutex_lock(&s->pend_lock);
    *out = s->stats;
    pthread_mutex_unlock(&s->pend_lock);
}

/* ---- snapshots for queries --------------------------------------------------- */

int store__snapshot_begin(struct store *s, MDB_txn **txn)
{
    pthread_rwlock_rdlock(&s->map_lock);
    for (unsigned tries = 0;; tries++) {
        uint64_t gen;
        int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, txn);
        if (rc == 0)
            rc = store__get_meta_u64(s, *txn, META_GEN, &gen);
        if (rc) {
            if (*txn)
                mdb_txn_abort(*txn);
            *txn = NULL;
            pthread_rwlock_unlock(&s->map_lock);
            return store__err(rc);
        }
        pthread_mutex_lock(&s->pend_lock);
        if (gen == s->pend_gen)
            return 0; /* pend_lock held */
        pthread_mutex_unlock(&s->pend_lock);
        mdb_txn_abort(*txn);
        *txn = NULL;
        if (tries > 10000) { /* the writer is stuck between commit and publish: never */
            pthread_rwlock_unlock(&s->map_lock);
            return VIGIL_EAGAIN;
        }
        sched_yield();
    }
}

void store__snapshot_unlock(struct store *s)
{
    pthread_mutex_unlock(&s->pend_lock);
}

void store__snapshot_end(struct store *s, MDB_txn *txn)
{
    if (txn)
        mdb_txn_abort(txn);
    pthread_rwlock_unlock(&s->map_lock);
}

/* ---- open and close ---------------------------------------------------------- */

/* Opens the DBs, checks the schema, loads the writer's state and rebuilds
 * pending rollups, in one write transaction. */
static int load_state(struct store *s, char *err, size_t errlen)
{
    MDB_txn *txn;
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    uint32_t schema;
    int rc = mdb_txn_begin(s->env, NULL, 0, &txn);

    if (rc) {
        snprintf(err, errlen, "LMDB: %s", mdb_strerror(rc));
        return store__err(rc);
    }
    for (int i = 0; i < DB_COUNT; i++)
        if ((rc = mdb_dbi_open(txn, db_names[i], MDB_CREATE, &s->db[i])) != 0) {
            snprintf(err, errlen, "LMDB: opening %s: %s", db_names[i], mdb_strerror(rc));
            goto fail;
        }
    if ((rc = store__get_meta_u32(s, txn, META_SCHEMA, &schema)) != 0)
        goto fail_lmdb;
    if (schema == 0) {
        if ((rc = store__put_meta_u32(s, txn, META_SCHEMA, STORE_SCHEMA)) != 0)
            goto fail_lmdb;
    } else if (schema != STORE_SCHEMA) {
        snprintf(err, errlen, "store schema %u, this build reads %u", (unsigned)schema,
                 STORE_SCHEMA);
        rc = VIGIL_ENOTSUP;
        goto fail;
    }
    if ((rc = store__get_meta_u64(s, txn, META_SEQ, &s->seq)) != 0 ||
        (rc = store__get_meta_u64(s, txn, META_GEN, &s->gen)) != 0 ||
        (rc = store__get_meta_u32(s, txn, META_NEXT_AGENT, &s->next_agent)) != 0 ||
        (rc = store__get_meta_u32(s, txn, META_SEALED_H, &s->sealed_h)) != 0 ||
        (rc = store__get_meta_u32(s, txn, META_SEALED_D, &s->sealed_d)) != 0 ||
        (rc = store__get_meta_u32(s, txn, META_JCUR, &s->jcur)) != 0 ||
        (rc = get_compact(s, txn, &s->cs)) != 0)
        goto fail_lmdb;
    if (s->jcur > 1) {
        rc = MDB_CORRUPTED;
        goto fail_lmdb;
    }

    /* The newest record end: the last flows key is the latest second. */
    s->max_end_ns = 0;
    if ((rc = mdb_cursor_open(txn, s->db[DB_FLOWS], &cur)) != 0)
        goto fail_lmdb;
    rc = mdb_cursor_get(cur, &k, &v, MDB_LAST);
    s->flows_last_sec = 0;
    if (rc == 0 && k.mv_size == FLOWS_KEY_LEN) {
        s->flows_last_sec = get_be32(k.mv_data);
        s->max_end_ns = (int64_t)s->flows_last_sec * NS_PER_SEC;
    }
    s->pend_max_end_ns = s->max_end_ns;
    mdb_cursor_close(cur);
    cur = NULL;
    if (rc && rc != MDB_NOTFOUND)
        goto fail_lmdb;

    /* Agents: name -> id. */
    s->n_agents = 0;
    if ((rc = mdb_cursor_open(txn, s->db[DB_AGENT_IDS], &cur)) != 0)
        goto fail_lmdb;
    rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    while (rc == 0) {
        char name[STORE_AGENT_NAME_MAX];
        if (k.mv_size > 0 && k.mv_size < sizeof name && v.mv_size == 4) {
            memcpy(name, k.mv_data, k.mv_size);
            name[k.mv_size] = '\0';
            if ((rc = agent_remember(s, name, get_be32(v.mv_data))) != 0)
                break;
        }
        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(cur);
    cur = NULL;
    if (rc && rc != MDB_NOTFOUND)
        goto fail_lmdb;

    if ((rc = rollup_rebuild(s, txn)) != 0) {
        snprintf(err, errlen, "rebuilding rollups from the journal: %s", vigil_strerror(rc));
        goto fail;
    }
    if ((rc = mdb_txn_commit(txn)) != 0) {
        txn = NULL;
        goto fail_lmdb;
    }
    s->pend_gen = s->gen;
    s->compact_checked_gen = UINT64_MAX;
    s->stats.sealed_hour_s = s->sealed_h;
    s->stats.sealed_day_s = s->sealed_d;
    publish_stats(s);
    return 0;
fail_lmdb:
    snprintf(err, errlen, "LMDB: %s",
             rc < 0 && rc >= -4096 ? vigil_strerror(rc) : mdb_strerror(rc));
fail:
    if (cur)
        mdb_cursor_close(cur);
    if (txn)
        mdb_txn_abort(txn);
    return store__err(rc);
}

static int ensure_dir(const char *dir, char *err, size_t errlen)
{
    struct stat sb;
    if (mkdir(dir, 0700) == 0)
        return 0;
    if (errno != EEXIST) {
        snprintf(err, errlen, "creating %s: %s", dir, strerror(errno));
        return -errno;
    }
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
        snprintf(err, errlen, "%s is not a directory", dir);
        return VIGIL_EINVAL;
    }
    return 0;
}

/* ---- the detection engine's environment ---------------------------------------- */

#define DETECT_ENV_DIR "detect"
/* Known destinations (at most eight per table key, 1 M at the defaults),
 * one model per host with a baseline and the alerts fit in a small part of
 * this; the file only grows as pages are used. */
#define DETECT_MAP_SIZE (UINT64_C(16) << 30)

static const char *const ddb_names[DDB_COUNT] = {
    [DDB_BASELINES] = "baselines", [DDB_KNOWN_DSTS] = "known_dsts", [DDB_ALERTS] = "alerts"};

static int detect_env_open(struct store *s, char *err, size_t errlen)
{
    char path[STORE_PATH_MAX + sizeof DETECT_ENV_DIR + 1];
    MDB_txn *txn;
    int dead = 0, rc;

    snprintf(path, sizeof path, "%s/%s", s->path, DETECT_ENV_DIR);
    if ((rc = ensure_dir(path, err, errlen)) != 0)
        return rc;
    uint64_t map = s->cfg.map_size_max < DETECT_MAP_SIZE ? s->cfg.map_size_max : DETECT_MAP_SIZE;
    if ((rc = mdb_env_create(&s->denv)) != 0 ||
        (rc = mdb_env_set_maxdbs(s->denv, DDB_COUNT)) != 0 ||
        (rc = mdb_env_set_maxreaders(s->denv, s->cfg.max_readers)) != 0 ||
        (rc = mdb_env_set_mapsize(s->denv, (size_t)map)) != 0 ||
        (rc = mdb_env_open(s->denv, path, MDB_NOTLS, 0600)) != 0) {
        snprintf(err, errlen, "LMDB: opening %s: %s", path, mdb_strerror(rc));
        goto fail;
    }
    if (mdb_reader_check(s->denv, &dead) == 0 && dead > 0)
        log_warn("store: cleared %d stale reader slots of %s", dead, path);
    if ((rc = mdb_txn_begin(s->denv, NULL, 0, &txn)) != 0) {
        snprintf(err, errlen, "LMDB: %s: %s", path, mdb_strerror(rc));
        goto fail;
    }
    for (int i = 0; i < DDB_COUNT; i++)
        if ((rc = mdb_dbi_open(txn, ddb_names[i], MDB_CREATE, &s->ddb[i])) != 0) {
            snprintf(err, errlen, "LMDB: opening %s in %s: %s", ddb_names[i], path,
                     mdb_strerror(rc));
            mdb_txn_abort(txn);
            goto fail;
        }
    if ((rc = mdb_txn_commit(txn)) != 0) {
        snprintf(err, errlen, "LMDB: %s: %s", path, mdb_strerror(rc));
        goto fail;
    }
    return 0;
fail:
    if (s->denv)
        mdb_env_close(s->denv);
    s->denv = NULL;
    return store__err(rc);
}

int store__detect_begin(struct store *s, bool write, MDB_txn **txn)
{
    if (s->broken)
        return VIGIL_EIO;
    return store__err(mdb_txn_begin(s->denv, NULL, write ? 0 : MDB_RDONLY, txn));
}

static int env_open(struct store *s, char *err, size_t errlen)
{
    char data[STORE_PATH_MAX + 16];
    struct stat sb;
    MDB_envinfo info;
    int dead = 0, rc;

    if ((rc = mdb_env_create(&s->env)) != 0) {
        snprintf(err, errlen, "LMDB: %s", mdb_strerror(rc));
        return store__err(rc);
    }
    snprintf(data, sizeof data, "%s/data.mdb", s->path);
    bool fresh = stat(data, &sb) != 0;
    if ((rc = mdb_env_set_maxdbs(s->env, DB_COUNT + 4)) != 0 ||
        (rc = mdb_env_set_maxreaders(s->env, s->cfg.max_readers)) != 0 ||
        (fresh && (rc = mdb_env_set_mapsize(s->env, (size_t)s->cfg.map_size)) != 0) ||
        (rc = mdb_env_open(s->env, s->path, MDB_NOTLS, 0600)) != 0) {
        snprintf(err, errlen, "LMDB: opening %s: %s", s->path, mdb_strerror(rc));
        goto fail;
    }
    /* An existing map keeps its (grown) size; only ever raise it. */
    if (mdb_env_info(s->env, &info) == 0 && info.me_mapsize < s->cfg.map_size &&
        (rc = mdb_env_set_mapsize(s->env, (size_t)s->cfg.map_size)) != 0) {
        snprintf(err, errlen, "LMDB: map size: %s", mdb_strerror(rc));
        goto fail;
    }
    if (mdb_reader_check(s->env, &dead) == 0 && dead > 0) {
        log_warn("store: cleared %d stale reader slots", dead);
        s->stats.reader_slots_cleared += (uint64_t)dead;
    }
    s->reader_check_mono = vigil_monotonic_ns();
    if ((rc = load_state(s, err, errlen)) != 0)
        goto fail_quiet;
    return 0;
fail:
    rc = store__err(rc);
fail_quiet:
    mdb_env_close(s->env);
    s->env = NULL;
    return rc;
}

static void cfg_fill(struct store_config *out, const struct store_config *in)
{
    struct store_config d;
    store_config_defaults(&d);
    if (!in) {
        *out = d;
        return;
    }
    *out = *in;
#define DEF(f)         \
    if (out->f <= 0)   \
        out->f = d.f;
    DEF(map_size)
    DEF(map_size_max)
    DEF(max_readers)
    DEF(flow_retention_ns)
    DEF(minute_retention_ns)
    DEF(hour_retention_ns)
    DEF(day_retention_ns)
    DEF(capture_retention_ns)
    DEF(alert_retention_ns)
    DEF(pending_max_rows)
    DEF(compact_slice_rows)
    DEF(open_stale_ns)
    DEF(trail_late_max)
#undef DEF
    if (out->map_grow_pct == 0 || out->map_grow_pct > 95)
        out->map_grow_pct = d.map_grow_pct;
    if (out->close_grace_ns < 0)
        out->close_grace_ns = d.close_grace_ns;
    if (out->flush_interval_ns < 0)
        out->flush_interval_ns = 0;
    if (out->open_sweep_ns < 0)
        out->open_sweep_ns = 0;
    if (out->map_size_max < out->map_size)
        out->map_size_max = out->map_size;
}

struct store *store_open(const char *dir, const struct store_config *cfg, char *err,
                         size_t errlen)
{
    struct store *s = NULL;
    pthread_rwlockattr_t ra;
    bool locks = false;
    char dummy[8];

    if (!err || !errlen) {
        err = dummy;
        errlen = sizeof dummy;
    }
    err[0] = '\0';
    if (!dir || !*dir || strlen(dir) >= STORE_PATH_MAX) {
        snprintf(err, errlen, "bad store directory");
        return NULL;
    }
    if (ensure_dir(dir, err, errlen) != 0)
        return NULL;
    if (!(s = calloc(1, sizeof *s))) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    cfg_fill(&s->cfg, cfg);
    snprintf(s->path, sizeof s->path, "%s", dir);
    if (hash_key_random(&s->hk) != 0) {
        snprintf(err, errlen, "no random key");
        goto fail;
    }
    openfilter_init(&s->openf, &s->hk);
    if (!(s->pend = rollup_pending_new(&s->hk)) || !(s->rank = rank_build_new())) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    pthread_rwlockattr_init(&ra);
    pthread_rwlockattr_setkind_np(&ra, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    if (pthread_rwlock_init(&s->map_lock, &ra) != 0) {
        pthread_rwlockattr_destroy(&ra);
        snprintf(err, errlen, "rwlock");
        goto fail;
    }
    pthread_rwlockattr_destroy(&ra);
    if (pthread_mutex_init(&s->pend_lock, NULL) != 0) {
        pthread_rwlock_destroy(&s->map_lock);
        snprintf(err, errlen, "mutex");
        goto fail;
    }
    if (pthread_mutex_init(&s->trail_build_lock, NULL) != 0) {
        pthread_mutex_destroy(&s->pend_lock);
        pthread_rwlock_destroy(&s->map_lock);
        snprintf(err, errlen, "mutex");
        goto fail;
    }
    locks = true;
    if (env_open(s, err, errlen) != 0)
        goto fail;
    if (detect_env_open(s, err, errlen) != 0) {
        mdb_env_close(s->env);
        goto fail;
    }
    store__maybe_grow(s);
    return s;
fail:
    if (locks) {
        pthread_rwlock_destroy(&s->map_lock);
        pthread_mutex_destroy(&s->pend_lock);
        pthread_mutex_destroy(&s->trail_build_lock);
    }
    rollup_pending_free(s->pend);
    rank_build_free(s->rank);
    free(s->agents);
    free(s->agent_index);
    free(s);
    return NULL;
}

void store_close(struct store *s)
{
    if (!s)
        return;
    if (s->env) {
        int rc = s->broken ? 0 : rollup_flush(s, FLUSH_ALL);
        if (rc)
            log_warn("store: closing with unflushed rollups (%s): the journal keeps them",
                     vigil_strerror(rc));
        mdb_env_close(s->env);
    }
    if (s->denv)
        mdb_env_close(s->denv);
    trail_free_all(s);
    pthread_rwlock_destroy(&s->map_lock);
    pthread_mutex_destroy(&s->pend_lock);
    pthread_mutex_destroy(&s->trail_build_lock);
    rollup_pending_free(s->pend);
    rank_build_free(s->rank);
    free(s->agents);
    free(s->agent_index);
    free(s->contribs);
    rowbuf_free(&s->rows);
    openfilter_free(&s->openf);
    free(s);
}
