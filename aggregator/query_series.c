/* query_series.c — rollup counters per sample interval, and a bounded walk
 * over stored flows (see query_series.h).
 *
 * Series: the range is cut into samples of one interval; each sample is
 * read from the coarsest tier that holds it exactly, as top does (a built
 * day from the day tier, a built hour from the hour tier, anything else
 * minute by minute), plus the pending minutes copied under pend_lock. With
 * one host and no total, each bucket part is entered by a seek to that host
 * (a busy minute holds a row per host); otherwise every row of the bucket is
 * read and matched against the few keys wanted.
 *
 * Flows: without a host, the flows DB is walked in key order between the
 * seconds of since and until; with a host, the host index gives the flow
 * keys minute by minute (plus the pending references). */
#include "query_series.h"

#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "chunk.h"
#include "err.h"
#include "log.h"
#include "query_int.h"
#include "rollup.h"
#include "store_int.h"

_Static_assert(SERIES_KEY_MAX == GROUP_KEY_MAX, "series keys are rollup keys");
_Static_assert(DIM_HOST == TOP_HOST && DIM_APP == TOP_APP && DIM_PORT == TOP_PORT,
               "enum top_group follows the rollup dimensions");

void series_key_host(uint8_t key[SERIES_KEY_MAX], const struct vigil_addr *host)
{
    memset(key, 0, SERIES_KEY_MAX);
    memcpy(key, host->b, 16);
}

int series_key_app(uint8_t key[SERIES_KEY_MAX], const char *app)
{
    size_t n = strlen(app);
    if (n >= STORE_APP_MAX)
        return VIGIL_EINVAL;
    memset(key, 0, SERIES_KEY_MAX);
    memcpy(key, app, n);
    return 0;
}

void series_result_free(struct series_result *r)
{
    if (!r)
        return;
    free(r->total);
    for (unsigned i = 0; i < SERIES_MAX_KEYS; i++)
        free(r->key[i]);
    memset(r, 0, sizeof *r);
}

/* ---- series ---------------------------------------------------------------- */

struct sink {
    const struct series_query *q;
    unsigned klen;
    struct series_result *out;
};

static void counters_add(struct top_counters *t, const uint64_t c[RC_COUNT])
{
    t->bytes_out += c[RC_BYTES_OUT];
    t->bytes_in += c[RC_BYTES_IN];
    t->pkts_out += c[RC_PKTS_OUT];
    t->pkts_in += c[RC_PKTS_IN];
    t->flows += c[RC_FLOWS];
}

/* Adds one rollup row of the sample idx to the total and to its key. */
static void sink_row(struct sink *k, size_t idx, const uint8_t *key, const uint64_t c[RC_COUNT])
{
    if (k->out->total)
        counters_add(&k->out->total[idx], c);
    for (unsigned i = 0; i < k->q->nkeys; i++)
        if (memcmp(k->q->keys[i], key, k->klen) == 0) {
            counters_add(&k->out->key[i][idx], c);
            break;
        }
}

/* The key just below key (klen bytes, big-endian); false for all zeros. */
static bool key_before(const uint8_t *key, unsigned klen, uint8_t *out)
{
    memcpy(out, key, klen);
    for (unsigned i = klen; i-- > 0;) {
        if (out[i]--)
            return true;
    }
    return false;
}

/* Every row of (tier, bucket) into sample idx. */
static int read_bucket(struct sink *k, MDB_cursor *cur, uint32_t bucket, size_t idx,
                       struct budget *bud)
{
    uint8_t parts[256], before[SERIES_KEY_MAX];
    unsigned np;
    bool one = k->q->nkeys == 1 && !k->q->total;
    bool has_before = one && key_before(k->q->keys[0], k->klen, before);
    int rc = chunk_list_parts(cur, bucket, parts, &np);

    for (unsigned p = 0; rc == 0 && p < np; p++) {
        struct chunk_stream st;
        rc = chunk_stream_seek(&st, cur, bucket, parts[p], k->klen, has_before ? before : NULL);
        while (rc == 0 && st.valid) {
            uint64_t c[RC_COUNT];
            if (!budget_take(bud))
                return 0;
            if (one && memcmp(st.r.key, k->q->keys[0], k->klen) != 0)
                break; /* past the one key wanted */
            if (chunk_get_counters(st.pl, st.plen, c))
                sink_row(k, idx, st.r.key, c);
            rc = chunk_stream_next(&st, cur);
        }
    }
    return rc;
}

/* Pending rows copied out under pend_lock. */
struct pend_copy {
    const struct sink *k;
    uint32_t *minute;
    uint8_t *keys;
    uint64_t (*c)[RC_COUNT];
    size_t n, cap;
    bool nomem;
};

static void pend_fn(uint32_t minute, const uint8_t *key, const struct rctr *c, void *ctx)
{
    struct pend_copy *pc = ctx;
    const struct series_query *q = pc->k->q;
    unsigned klen = pc->k->klen;
    if (pc->nomem)
        return;
    if (!q->total) {
        bool wanted = false;
        for (unsigned i = 0; i < q->nkeys && !wanted; i++)
            wanted = memcmp(q->keys[i], key, klen) == 0;
        if (!wanted)
            return;
    }
    if (pc->n == pc->cap) {
        size_t nc = pc->cap ? pc->cap * 2 : 256;
        uint32_t *m = realloc(pc->minute, nc * sizeof *m);
        if (m)
            pc->minute = m;
        uint8_t *kk = m ? realloc(pc->keys, nc * klen) : NULL;
        if (kk)
            pc->keys = kk;
        uint64_t(*cc)[RC_COUNT] = kk ? realloc(pc->c, nc * sizeof *cc) : NULL;
        if (!cc) {
            pc->nomem = true;
            return;
        }
        pc->c = cc;
        pc->cap = nc;
    }
    pc->minute[pc->n] = minute;
    memcpy(pc->keys + pc->n * klen, key, klen);
    memcpy(pc->c[pc->n], c->v, sizeof pc->c[0]);
    pc->n++;
}

/* The sample interval for q given the tiers still kept (mk.low). */
static uint32_t pick_interval(const struct series_query *q, uint32_t from,
                              const struct tier_marks *mk)
{
    if (q->res == SERIES_COARSEST) {
        for (unsigned t = TIER_COUNT; t-- > 0;)
            if (q->step % tier_secs[t] == 0)
                return tier_secs[t];
        return tier_secs[TIER_MINUTE];
    }
    for (unsigned t = 0; t < TIER_COUNT; t++)
        if (q->step % tier_secs[t] == 0 && from >= mk->low[t])
            return tier_secs[t];
    /* older than every tier kept: the coarsest that divides the step (its
     * samples are zero where nothing is left) */
    return q->step % 86400 == 0 ? 86400 : q->step % 3600 == 0 ? 3600 : 60;
}

static uint32_t sec_floor(int64_t ns)
{
    if (ns <= 0)
        return 0;
    int64_t s = ns / NS_PER_SEC;
    return s > (int64_t)UINT32_MAX - 2 * 86400 ? UINT32_MAX - 2 * 86400 : (uint32_t)s;
}

int store_query_series(struct store *s, const struct series_query *q, struct series_result *out)
{
    struct tier_marks mk;
    struct budget bud;
    struct pend_copy pc = {0};
    MDB_cursor *curs[TIER_COUNT] = {NULL};
    MDB_txn *txn = NULL;
    int rc;

    if (!out)
        return VIGIL_EINVAL;
    memset(out, 0, sizeof *out);
    if (!s || !q || (q->group != TOP_HOST && q->group != TOP_APP && q->group != TOP_PORT) ||
        q->step == 0 || q->step % 60 != 0 || q->nkeys > SERIES_MAX_KEYS ||
        (q->nkeys == 0 && !q->total) || q->until_ns <= q->since_ns)
        return VIGIL_EINVAL;
    unsigned dim = (unsigned)q->group;
    struct sink k = {q, dim_klen[dim], out};
    pc.k = &k;
    uint32_t from = sec_floor(q->since_ns), to = sec_floor(q->until_ns - 1) + 1;
    from -= from % q->step;
    if (to % q->step)
        to += q->step - to % q->step;
    budget_init(&bud, q->max_rows, q->max_ns);

    if ((rc = store__snapshot_begin(s, &txn)) != 0)
        return rc;
    rc = store__read_marks(s, txn, &mk);
    if (rc == 0)
        rollup_pending_rows_minute(s->pend, dim, from, to, pend_fn, &pc);
    store__snapshot_unlock(s);
    if (rc == 0 && pc.nomem)
        rc = VIGIL_ENOMEM;
    for (unsigned t = 0; rc == 0 && t < TIER_COUNT; t++)
        rc = store__err(mdb_cursor_open(txn, s->db[rollup_db(t, dim)], &curs[t]));

    /* Where rows can be: from the first row of any tier (or pending minute)
     * to the end of the last. Before the first, the store knew nothing: the
     * range starts at the step holding it (those samples are unknown, not
     * zero); samples after the last are read as zero without a walk. */
    uint32_t lo = UINT32_MAX, hi = 0;
    for (unsigned t = 0; rc == 0 && t < TIER_COUNT; t++) {
        MDB_val kk, vv;
        int g = mdb_cursor_get(curs[t], &kk, &vv, MDB_FIRST);
        if (g == 0 && kk.mv_size >= 4 && get_be32(kk.mv_data) < lo)
            lo = get_be32(kk.mv_data);
        if (g == 0)
            g = mdb_cursor_get(curs[t], &kk, &vv, MDB_LAST);
        if (g == 0 && kk.mv_size >= 4 && get_be32(kk.mv_data) + tier_secs[t] > hi)
            hi = get_be32(kk.mv_data) + tier_secs[t];
        if (g && g != MDB_NOTFOUND)
            rc = store__err(g);
    }
    for (size_t j = 0; j < pc.n; j++) {
        if (pc.minute[j] < lo)
            lo = pc.minute[j];
        if (pc.minute[j] + 60 > hi)
            hi = pc.minute[j] + 60;
    }
    if (lo == UINT32_MAX)
        from = to; /* nothing at all */
    else if (lo > from)
        from = lo - lo % q->step < to ? lo - lo % q->step : to;

    uint32_t iv = rc == 0 ? pick_interval(q, from, &mk) : 60;
    out->from_s = from;
    out->to_s = to;
    out->interval = iv;
    out->n = (to - from) / iv;
    if (rc == 0 && out->n > SERIES_MAX_SAMPLES)
        rc = VIGIL_EINVAL;
    if (rc == 0 && q->total && !(out->total = calloc(out->n ? out->n : 1, sizeof *out->total)))
        rc = VIGIL_ENOMEM;
    for (unsigned i = 0; rc == 0 && i < q->nkeys; i++)
        if (!(out->key[i] = calloc(out->n ? out->n : 1, sizeof *out->key[i])))
            rc = VIGIL_ENOMEM;
    for (size_t i = 0; rc == 0 && i < out->n && !bud.hit; i++) {
        uint32_t t0 = from + (uint32_t)i * iv, t1 = t0 + iv;
        if (t1 <= lo || t0 >= hi)
            continue;
        for (uint32_t t = t0; rc == 0 && t < t1 && !bud.hit;) {
            unsigned tier = piece_tier(t, t1, &mk);
            rc = store__err(read_bucket(&k, curs[tier], t, i, &bud));
            t += tier_secs[tier];
        }
    }
    for (unsigned t = 0; t < TIER_COUNT; t++)
        if (curs[t])
            mdb_cursor_close(curs[t]);
    store__snapshot_end(s, txn);

    for (size_t j = 0; rc == 0 && j < pc.n; j++)
        sink_row(&k, (pc.minute[j] - from) / iv, pc.keys + j * k.klen, pc.c[j]);
    free(pc.minute);
    free(pc.keys);
    free(pc.c);
    if (rc) {
        series_result_free(out);
        return rc;
    }
    out->rows_read = bud.rows;
    out->truncated = bud.hit;
    return 0;
}

/* ---- flows over a range ---------------------------------------------------------- */

static bool scan_matches(const struct flow_scan *q, const struct sflow *f)
{
    const struct flow_record *r = &f->rec;
    if (r->end_ns < q->since_ns || r->end_ns >= q->until_ns)
        return false;
    return !q->has_host || memcmp(r->src.b, q->host.b, 16) == 0 ||
           memcmp(r->dst.b, q->host.b, 16) == 0;
}

/* Decodes one flows row and hands it on; false to stop. */
static bool scan_row(const struct flow_scan *q, const MDB_val *v, flow_scan_fn fn, void *ctx,
                     bool *stopped)
{
    struct sflow f;
    if (flowcodec_decode(v->mv_data, v->mv_size, &f) != 0 || !scan_matches(q, &f))
        return true;
    if (fn(&f, ctx) != 0) {
        *stopped = true;
        return false;
    }
    return true;
}

static int key_cmp(const void *a, const void *b)
{
    return memcmp(a, b, FLOWS_KEY_LEN);
}

int store_scan_flows(struct store *s, const struct flow_scan *q, flow_scan_fn fn, void *ctx,
                     struct flow_query_stats *st)
{
    struct budget bud;
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    uint8_t *pend = NULL, *keys = NULL;
    size_t npend = 0, cpend = 0, nk = 0, ck = 0;
    bool stopped = false;
    int rc;

    if (st)
        memset(st, 0, sizeof *st);
    if (!s || !q || !fn || q->until_ns <= q->since_ns || q->until_ns <= 0)
        return VIGIL_EINVAL;
    budget_init(&bud, q->max_rows, q->max_ns);
    uint32_t lo = sec_floor(q->since_ns), hi = sec_floor(q->until_ns - 1);

    if ((rc = store__snapshot_begin(s, &txn)) != 0)
        return rc;
    if (q->has_host)
        rc = rollup_pending_host_refs(s->pend, &q->host, floor_to(lo, 60),
                                      floor_to(hi, 60) + 60, &pend, &npend, &cpend);
    store__snapshot_unlock(s);
    if (rc == 0)
        rc = store__err(mdb_cursor_open(txn, s->db[DB_FLOWS], &cur));

    if (rc == 0 && !q->has_host) {
        uint8_t kb[FLOWS_KEY_LEN];
        MDB_val k = {sizeof kb, kb}, v;
        flows_key(kb, lo, 0);
        for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0;
             rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
            if (k.mv_size != FLOWS_KEY_LEN || get_be32(k.mv_data) > hi)
                break;
            if (!budget_take(&bud) || !scan_row(q, &v, fn, ctx, &stopped))
                break;
        }
        rc = rc == MDB_NOTFOUND ? 0 : store__err(rc);
    } else if (rc == 0) {
        /* minute by minute through the host index, then the pending references */
        for (uint32_t m = floor_to(lo, 60); rc == 0 && m <= hi && !bud.hit && !stopped;
             m += 60) {
            nk = 0;
            rc = hostidx_lookup(txn, s->db[DB_HOSTIDX], m, &q->host, &keys, &nk, &ck);
            if (rc == VIGIL_EBADMSG) {
                log_warn("store: damaged host index chunk (minute %u) skipped", (unsigned)m);
                rc = 0;
            }
            rc = store__err(rc);
            for (size_t j = 0; rc == 0 && j < nk; j++) {
                MDB_val fk = {FLOWS_KEY_LEN, keys + j * FLOWS_KEY_LEN}, fv;
                if (!budget_take(&bud))
                    break;
                int g = mdb_get(txn, s->db[DB_FLOWS], &fk, &fv);
                if (g == 0 && !scan_row(q, &fv, fn, ctx, &stopped))
                    break;
                if (g && g != MDB_NOTFOUND) /* not found: aged out meanwhile */
                    rc = store__err(g);
            }
        }
        if (npend > 1)
            qsort(pend, npend, FLOWS_KEY_LEN, key_cmp);
        for (size_t j = 0; rc == 0 && j < npend && !bud.hit && !stopped; j++) {
            MDB_val fk = {FLOWS_KEY_LEN, pend + j * FLOWS_KEY_LEN}, fv;
            if (j && memcmp(pend + j * FLOWS_KEY_LEN, pend + (j - 1) * FLOWS_KEY_LEN,
                            FLOWS_KEY_LEN) == 0)
                continue;
            if (!budget_take(&bud))
                break;
            int g = mdb_get(txn, s->db[DB_FLOWS], &fk, &fv);
            if (g == 0 && !scan_row(q, &fv, fn, ctx, &stopped))
                break;
            if (g && g != MDB_NOTFOUND)
                rc = store__err(g);
        }
    }
    if (cur)
        mdb_cursor_close(cur);
    store__snapshot_end(s, txn);
    free(pend);
    free(keys);
    if (rc)
        return rc;
    if (st) {
        st->rows_read = bud.rows;
        st->truncated = bud.hit || stopped;
    }
    return 0;
}
