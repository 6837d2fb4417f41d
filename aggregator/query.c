/* query.c — top, flows and agents over one snapshot (see query.h).
 *
 * top: the range [since, until) is widened to whole minutes, then cut into
 * pieces answered by the coarsest tier that holds them exactly: a whole
 * day from the day tier if that day is built, a whole hour from the hour
 * tier if built, any other minute from the minute tier. The rows of every
 * piece plus the pending (not yet flushed) minutes in range are summed per
 * group in a hash table; totals come from the app rows of the same pieces
 * (each record has exactly one app row). The best `limit` groups are picked
 * with a bounded heap.
 *
 * flows: without a host, the flows DB is walked in key order (second, then
 * ingest sequence) between the seconds of since and until; with a host, the
 * host index gives, per minute, the flow keys that host took part in. Either
 * way rows are taken one time unit (second or minute) at a time: the unit's
 * matches go through a heap bounded by what is still wanted and leave it in
 * exact (end, sequence) order, so the output is ordered to the nanosecond
 * while memory stays bounded by the limit. Rows are copied out of the
 * snapshot; callbacks run after it is released. */
#include "query.h"

#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "chunk.h"
#include "err.h"
#include "groupmerge.h"
#include "log.h"
#include "query_int.h"
#include "rank.h"
#include "rollup.h"
#include "store_int.h"
#include "topk.h"
#include "trail.h"

/* ---- top ------------------------------------------------------------------ */

static uint64_t metric(const struct rctr *c, enum top_order o)
{
    return rank_metric(c->v, (unsigned)o);
}

static void key_to_top(unsigned dim, const uint8_t *k, struct top_key *out)
{
    memset(out, 0, sizeof *out);
    switch (dim) {
    case DIM_HOST: memcpy(out->host.b, k, 16); break;
    case DIM_APP:
        memcpy(out->app, k, 15);
        out->app[15] = '\0';
        break;
    case DIM_PORT:
        out->proto = k[0];
        out->port = get_be16(k + 1);
        break;
    case DIM_PAIR:
        memcpy(out->host.b, k, 16);
        memcpy(out->host_b.b, k + 16, 16);
        break;
    default: break;
    }
}

/* Widens [*lo, *hi) to the buckets rows of dim (and app, for totals) span in
 * any tier: *lo = first bucket start, *hi = last bucket end. With no rows,
 * *lo = UINT32_MAX and *hi = 0. */
static int data_extent(struct store *s, MDB_txn *txn, unsigned dim, uint32_t *lo, uint32_t *hi)
{
    *lo = UINT32_MAX;
    *hi = 0;
    for (unsigned t = 0; t < TIER_COUNT; t++)
        for (unsigned d = 0; d < DIM_COUNT; d++) {
            if (d != dim && d != DIM_APP)
                continue;
            MDB_cursor *cur;
            MDB_val k, v;
            int rc = mdb_cursor_open(txn, s->db[rollup_db(t, d)], &cur);
            if (rc)
                return store__err(rc);
            rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
            if (rc == 0 && k.mv_size >= 4 && get_be32(k.mv_data) < *lo)
                *lo = get_be32(k.mv_data);
            if (rc == 0)
                rc = mdb_cursor_get(cur, &k, &v, MDB_LAST);
            if (rc == 0 && k.mv_size >= 4) {
                uint64_t e = (uint64_t)get_be32(k.mv_data) + tier_secs[t];
                if (e > *hi)
                    *hi = e > UINT32_MAX ? UINT32_MAX : (uint32_t)e;
            }
            mdb_cursor_close(cur);
            if (rc && rc != MDB_NOTFOUND)
                return store__err(rc);
        }
    return 0;
}

/* Rows of a day's ranking (rank.h), best first, into best[]. */
struct ranked_rows {
    struct topk_ent *best;
    size_t n;
    enum top_order order;
    unsigned klen;
};

static void ranked_row(const uint8_t *key, const uint64_t c[RC_COUNT], void *ctx)
{
    struct ranked_rows *rr = ctx;
    struct topk_ent *b = &rr->best[rr->n++];
    memcpy(b->key, key, rr->klen);
    memcpy(b->c.v, c, sizeof b->c.v);
    b->m = metric(&b->c, rr->order);
}

int top_fill(struct top_result *out, unsigned dim, enum top_order order,
             const struct topk_ent *best, size_t nbest, const struct rctr *total)
{
    out->rows = calloc(nbest ? nbest : 1, sizeof *out->rows);
    if (!out->rows)
        return VIGIL_ENOMEM;
    uint64_t total_metric = metric(total, order);
    for (size_t i = 0; i < nbest; i++) {
        struct top_row *r = &out->rows[i];
        key_to_top(dim, best[i].key, &r->key);
        r->c = (struct top_counters){best[i].c.v[RC_BYTES_OUT], best[i].c.v[RC_BYTES_IN],
                                     best[i].c.v[RC_PKTS_OUT], best[i].c.v[RC_PKTS_IN],
                                     best[i].c.v[RC_FLOWS]};
        r->share = total_metric ? (double)best[i].m / (double)total_metric : 0.0;
    }
    out->n = nbest;
    out->total = (struct top_counters){total->v[RC_BYTES_OUT], total->v[RC_BYTES_IN],
                                       total->v[RC_PKTS_OUT], total->v[RC_PKTS_IN],
                                       total->v[RC_FLOWS]};
    return 0;
}

/* The general answer: every row of the range, merged. */
static int merge_top(struct store *s, const struct top_query *q, struct top_result *out)
{
    struct pend_rows pend = {0};
    struct gmerge gm = {0};
    struct tier_marks mk;
    struct budget bud;
    struct rctr total = {{0}};
    struct topk_ent *best = NULL; /* the best `limit` groups, worst at the root */
    size_t nbest = 0;
    MDB_txn *txn = NULL;
    uint32_t from = 0, to = 0;
    int rc;

    unsigned dim = (unsigned)q->group, klen = dim_klen[dim];
    budget_init(&bud, q->max_rows, q->max_ns);

    if ((rc = store__snapshot_begin(s, &txn)) != 0)
        return rc;
    /* pend_lock is held: read the marks and copy the pending minutes now. */
    rc = store__read_marks(s, txn, &mk);
    if (rc == 0) {
        top_range(q, &mk, &from, &to);
        pend_rows_copy(s, dim, from, to, &pend);
    }
    store__snapshot_unlock(s);
    if (rc == 0)
        rc = pend_rows_sum(&pend);

    /* Walk only where LMDB rows can be: from the first bucket any tier holds
     * to the end of the last, kept aligned to days so pieces stay aligned. */
    uint32_t lo = UINT32_MAX, hi = 0;
    if (rc == 0)
        rc = data_extent(s, txn, dim, &lo, &hi);
    uint32_t t0 = from, t1 = to;
    if (lo != UINT32_MAX && floor_to(lo, 86400) > t0)
        t0 = floor_to(lo, 86400);
    if (hi != 0 && (uint64_t)ceil_to(hi, 86400) < t1)
        t1 = ceil_to(hi, 86400);
    if (lo == UINT32_MAX)
        t1 = t0; /* no rows at all */
    if (rc == 0 && !(best = malloc(q->limit * sizeof *best)))
        rc = VIGIL_ENOMEM;
    if (rc == 0)
        rc = gmerge_init(&gm, s, txn, dim, &mk, &bud);
    /* Exactly one built day and nothing pending: its ranking, if stored,
     * holds the answer (rank.h); the totals still come from its app rows. */
    if (rc == 0 && dim != DIM_APP && pend.n == 0 && q->limit <= RANK_K && t0 % 86400 == 0 &&
        t1 == t0 + 86400 && piece_tier(t0, to, &mk) == TIER_DAY) {
        struct ranked_rows rr = {best, 0, q->order, klen};
        int rrc = rank_read(txn, s->db[DB_RANK], t0, dim, (unsigned)q->order, q->limit,
                            &out->groups, ranked_row, &rr);
        if (rrc == 0) {
            nbest = rr.n;
            out->ranked = true;
            bud.rows += rr.n;
            /* the day's app rows, for the totals: a range of app rows only */
            struct gmerge ga;
            if ((rc = gmerge_init(&ga, s, txn, DIM_APP, &mk, &bud)) == 0) {
                uint8_t key[GROUP_KEY_MAX];
                struct rctr plus, minus;
                rc = gmerge_add_range(&ga, t0, t1, to, GM_PLUS);
                while (rc == 0 && (rc = gmerge_next(&ga, key, &plus, &minus)) == 1)
                    rc = 0;
                total = ga.total[GM_PLUS];
                memcpy(out->buckets, ga.buckets, sizeof out->buckets);
                gmerge_free(&ga);
            }
            t1 = t0; /* nothing to merge */
        } else if (rrc != MDB_NOTFOUND) {
            log_warn("store: the ranking of day %u cannot be read (%s): merging its rows",
                     (unsigned)t0, vigil_strerror(store__err(rrc)));
        }
    }
    if (rc == 0 && !out->ranked) {
        rc = gmerge_add_range(&gm, t0, t1, to, GM_PLUS);
        gmerge_add_pending(&gm, &pend, GM_PLUS);
    }
    /* The merge: groups come out in key order, summed over every input. */
    uint8_t key[GROUP_KEY_MAX];
    struct rctr sum, minus;
    while (rc == 0 && !out->ranked && (rc = gmerge_next(&gm, key, &sum, &minus)) == 1) {
        rc = 0;
        out->groups++;
        topk_offer(best, &nbest, q->limit, key, &sum, metric(&sum, q->order), klen);
    }
    if (!out->ranked) {
        total = gm.total[GM_PLUS];
        memcpy(out->buckets, gm.buckets, sizeof out->buckets);
    }
    gmerge_free(&gm);
    store__snapshot_end(s, txn);
    pend_rows_free(&pend);
    if (rc == 0) {
        if (!out->ranked) /* a ranking's rows come best first already */
            topk_sort(best, nbest, klen);
        rc = top_fill(out, dim, q->order, best, nbest, &total);
    }
    free(best);
    if (rc) {
        top_result_free(out);
        return rc;
    }
    out->since_ns = (int64_t)from * NS_PER_SEC;
    out->until_ns = (int64_t)to * NS_PER_SEC;
    out->rows_read = bud.rows;
    out->truncated = bud.hit;
    return 0;
}

int store_query_top(struct store *s, const struct top_query *q, struct top_result *out)
{
    if (!out)
        return VIGIL_EINVAL;
    memset(out, 0, sizeof *out);
    if (!s || !q || (unsigned)q->group >= TOP_GROUP_COUNT || (unsigned)q->order > TOP_BY_FLOWS ||
        q->limit == 0 || q->limit > QUERY_MAX_LIMIT || q->until_ns <= q->since_ns)
        return VIGIL_EINVAL;
    int rc = trail_top(s, q, out); /* a range near the standing one (trail.h) */
    if (rc <= 0)
        return rc;
    return merge_top(s, q, out);
}

void top_result_free(struct top_result *r)
{
    if (!r)
        return;
    free(r->rows);
    memset(r, 0, sizeof *r);
}

/* ---- flows ------------------------------------------------------------------ */

/* A candidate row: a stored flow (flows key) or a flow still open (open key). */
struct cand {
    int64_t end;
    bool open;
    uint8_t key[FLOWS_KEY_LEN]; /* FLOWS_KEY_LEN == OPEN_KEY_LEN */
};

struct collect {
    bool newest;            /* newest first: keep the largest (end, open, key) */
    struct cand *heap;      /* this unit's best, root = the one to drop first */
    size_t nh;
    size_t remaining;       /* rows still wanted */
    /* results: encoded rows back to back */
    uint8_t *arena;
    size_t used, size;
    size_t *offs;           /* start of each row; offs[n] = used */
    size_t n;
};

static int cand_cmp_asc(const void *a, const void *b)
{
    const struct cand *x = a, *y = b;
    if (x->end != y->end)
        return x->end < y->end ? -1 : 1;
    if (x->open != y->open)
        return x->open ? 1 : -1;
    return memcmp(x->key, y->key, FLOWS_KEY_LEN);
}

static int cand_cmp_desc(const void *a, const void *b)
{
    return cand_cmp_asc(b, a);
}

/* Is a to come out before b? */
static bool cand_first(const struct collect *co, const struct cand *a, const struct cand *b)
{
    int c = cand_cmp_asc(a, b);
    return co->newest ? c > 0 : c < 0;
}

static void cand_down(struct collect *co, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, w = i;
        if (l < co->nh && cand_first(co, &co->heap[w], &co->heap[l]))
            w = l;
        if (r < co->nh && cand_first(co, &co->heap[w], &co->heap[r]))
            w = r;
        if (w == i)
            return;
        struct cand t = co->heap[i];
        co->heap[i] = co->heap[w];
        co->heap[w] = t;
        i = w;
    }
}

static void cand_push(struct collect *co, const struct cand *c)
{
    if (co->remaining == 0)
        return;
    if (co->nh < co->remaining) {
        size_t i = co->nh++;
        co->heap[i] = *c;
        while (i > 0) {
            size_t p = (i - 1) / 2;
            if (!cand_first(co, &co->heap[p], &co->heap[i]))
                break;
            struct cand t = co->heap[i];
            co->heap[i] = co->heap[p];
            co->heap[p] = t;
            i = p;
        }
    } else if (cand_first(co, c, &co->heap[0])) {
        co->heap[0] = *c;
        cand_down(co, 0);
    }
}

/* Moves the unit's candidates, in output order, into the results (copied
 * out of the snapshot). */
static int unit_end(struct store *s, MDB_txn *txn, struct collect *co)
{
    if (co->nh > 1)
        qsort(co->heap, co->nh, sizeof *co->heap, co->newest ? cand_cmp_desc : cand_cmp_asc);
    for (size_t i = 0; i < co->nh; i++) {
        MDB_val k = {FLOWS_KEY_LEN, co->heap[i].key}, v;
        int rc = mdb_get(txn, s->db[co->heap[i].open ? DB_OPEN : DB_FLOWS], &k, &v);
        if (rc == MDB_NOTFOUND)
            continue;
        if (rc)
            return store__err(rc);
        if (co->used + v.mv_size > co->size) {
            size_t ns = co->size ? co->size : 65536;
            while (ns < co->used + v.mv_size)
                ns *= 2;
            uint8_t *a = realloc(co->arena, ns);
            if (!a)
                return VIGIL_ENOMEM;
            co->arena = a;
            co->size = ns;
        }
        memcpy(co->arena + co->used, v.mv_data, v.mv_size);
        co->offs[co->n++] = co->used;
        co->used += v.mv_size;
        co->offs[co->n] = co->used;
        co->remaining--;
    }
    co->nh = 0;
    return 0;
}

static bool flow_matches(const struct flow_query *q, const struct sflow *f)
{
    const struct flow_record *r = &f->rec;
    if (r->end_ns < q->since_ns || r->end_ns >= q->until_ns)
        return false;
    if (q->has_proto && r->proto != q->proto)
        return false;
    if (q->has_port && (!r->has_ports || (r->src_port != q->port && r->dst_port != q->port)))
        return false;
    if (q->app[0] && strncmp(r->app, q->app, sizeof r->app) != 0)
        return false;
    if (q->has_host && memcmp(r->src.b, q->host.b, 16) != 0 && memcmp(r->dst.b, q->host.b, 16) != 0)
        return false;
    return true;
}

/* Offers one stored flow row to the unit's heap. */
static void offer(const struct flow_query *q, struct collect *co, const uint8_t *key,
                  const MDB_val *v)
{
    struct sflow f;
    if (flowcodec_decode(v->mv_data, v->mv_size, &f) != 0 || !flow_matches(q, &f))
        return;
    struct cand c = {.end = f.rec.end_ns};
    memcpy(c.key, key, FLOWS_KEY_LEN);
    cand_push(co, &c);
}

/* Open flows (no final record yet) matching q, in output order. The open DB
 * holds only flows in progress, so it is read whole. */
static int collect_open(struct store *s, MDB_txn *txn, const struct flow_query *q,
                        const struct collect *co, struct budget *bud, struct cand **out,
                        size_t *n)
{
    MDB_cursor *cur;
    MDB_val k, v;
    size_t cap = 0;
    int rc = mdb_cursor_open(txn, s->db[DB_OPEN], &cur);

    *out = NULL;
    *n = 0;
    if (rc)
        return store__err(rc);
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        struct sflow f;
        if (!budget_take(bud))
            break;
        if (k.mv_size != OPEN_KEY_LEN || flowcodec_decode(v.mv_data, v.mv_size, &f) != 0 ||
            !flow_matches(q, &f))
            continue;
        if (*n == cap) {
            size_t c = cap ? cap * 2 : 64;
            struct cand *x = realloc(*out, c * sizeof *x);
            if (!x) {
                rc = VIGIL_ENOMEM;
                break;
            }
            *out = x;
            cap = c;
        }
        struct cand *c = &(*out)[(*n)++];
        c->end = f.rec.end_ns;
        c->open = true;
        memcpy(c->key, k.mv_data, OPEN_KEY_LEN);
    }
    mdb_cursor_close(cur);
    if (rc && rc != MDB_NOTFOUND)
        return store__err(rc);
    if (*n > 1)
        qsort(*out, *n, sizeof **out, co->newest ? cand_cmp_desc : cand_cmp_asc);
    return 0;
}

/* Walks the flows DB between the seconds of since and until, a second at a
 * time (rows of one second are in ingest order, so each second goes through
 * the heap), with the open flows of each second. */
static int flows_scan(struct store *s, MDB_txn *txn, const struct flow_query *q,
                      struct collect *co, struct budget *bud, const struct cand *op, size_t nop)
{
    MDB_cursor *cur;
    uint8_t kb[FLOWS_KEY_LEN];
    MDB_val k, v;
    uint32_t lo = clamp_sec(q->since_ns), hi = clamp_sec(q->until_ns - 1), row_sec = 0;
    MDB_cursor_op step = co->newest ? MDB_PREV : MDB_NEXT;
    size_t oi = 0;
    bool have_row;
    int rc = mdb_cursor_open(txn, s->db[DB_FLOWS], &cur);

    if (rc)
        return store__err(rc);
    if (co->newest) {
        flows_key(kb, hi, UINT64_MAX);
        k = (MDB_val){sizeof kb, kb};
        rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
        if (rc == 0)
            rc = mdb_cursor_get(cur, &k, &v, MDB_PREV);
        else if (rc == MDB_NOTFOUND)
            rc = mdb_cursor_get(cur, &k, &v, MDB_LAST);
    } else {
        flows_key(kb, lo, 0);
        k = (MDB_val){sizeof kb, kb};
        rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    }
#define ROW_OK()                                                                             \
    (rc == 0 && k.mv_size == FLOWS_KEY_LEN && (row_sec = get_be32(k.mv_data)) >= lo &&      \
     row_sec <= hi)
    have_row = ROW_OK();
    while (co->remaining && !bud->hit && (have_row || oi < nop)) {
        uint32_t osec = oi < nop ? ns_to_sec(op[oi].end) : 0, unit;
        if (have_row && oi < nop)
            unit = co->newest ? (row_sec > osec ? row_sec : osec)
                              : (row_sec < osec ? row_sec : osec);
        else
            unit = have_row ? row_sec : osec;
        while (have_row && row_sec == unit) {
            if (!budget_take(bud))
                break;
            offer(q, co, k.mv_data, &v);
            rc = mdb_cursor_get(cur, &k, &v, step);
            have_row = ROW_OK();
        }
        while (oi < nop && ns_to_sec(op[oi].end) == unit)
            cand_push(co, &op[oi++]);
        if ((rc = unit_end(s, txn, co)) != 0)
            break;
        rc = 0;
    }
#undef ROW_OK
    mdb_cursor_close(cur);
    if (rc && rc != MDB_NOTFOUND)
        return store__err(rc);
    return 0;
}

static int key_cmp(const void *a, const void *b)
{
    return memcmp(a, b, FLOWS_KEY_LEN);
}

/* Uses the host index, a minute at a time. pend/npend: pending references
 * (flows keys), sorted; op/nop: matching open flows, in output order. */
static int flows_by_host(struct store *s, MDB_txn *txn, const struct flow_query *q,
                         struct collect *co, struct budget *bud, const uint8_t *pend,
                         size_t npend, const struct cand *op, size_t nop)
{
    uint32_t first = floor_to(clamp_sec(q->since_ns), 60);
    uint32_t last = floor_to(clamp_sec(q->until_ns - 1), 60);
    uint32_t dlo = UINT32_MAX, dhi = 0; /* minutes where rows can be */
    uint8_t *keys = NULL;
    size_t nk = 0, ck = 0, oi = 0;
    MDB_cursor *cur;
    MDB_val k0, v0;
    int rc = mdb_cursor_open(txn, s->db[DB_FLOWS], &cur);

    if (rc)
        return store__err(rc);
    rc = mdb_cursor_get(cur, &k0, &v0, MDB_FIRST);
    if (rc == 0 && k0.mv_size == FLOWS_KEY_LEN)
        dlo = floor_to(get_be32(k0.mv_data), 60);
    if (rc == 0)
        rc = mdb_cursor_get(cur, &k0, &v0, MDB_LAST);
    if (rc == 0 && k0.mv_size == FLOWS_KEY_LEN)
        dhi = floor_to(get_be32(k0.mv_data), 60);
    mdb_cursor_close(cur);
    if (rc && rc != MDB_NOTFOUND)
        return store__err(rc);
    for (size_t i = 0; i < nop; i++) {
        uint32_t m = floor_to(ns_to_sec(op[i].end), 60);
        if (m < dlo)
            dlo = m;
        if (m > dhi)
            dhi = m;
    }
    if (dlo > first)
        first = dlo;
    if (dhi < last)
        last = dhi;
    if (dlo == UINT32_MAX || first > last)
        return 0;
    rc = 0;

    for (uint32_t i = 0; i <= (last - first) / 60 && rc == 0 && co->remaining && !bud->hit; i++) {
        uint32_t m = co->newest ? last - i * 60 : first + i * 60;
        nk = 0;
        rc = hostidx_lookup(txn, s->db[DB_HOSTIDX], m, &q->host, &keys, &nk, &ck);
        if (rc == VIGIL_EBADMSG) {
            log_warn("store: damaged host index chunk (minute %u) skipped", (unsigned)m);
            rc = 0;
        }
        if (rc) {
            rc = store__err(rc);
            break;
        }
        /* pending references of this minute (sorted: a contiguous run) */
        uint8_t lo[FLOWS_KEY_LEN];
        flows_key(lo, m, 0);
        size_t a = 0, b = npend;
        while (a < b) {
            size_t mid = a + (b - a) / 2;
            if (memcmp(pend + mid * FLOWS_KEY_LEN, lo, FLOWS_KEY_LEN) < 0)
                a = mid + 1;
            else
                b = mid;
        }
        for (size_t j = a; j < npend && get_be32(pend + j * FLOWS_KEY_LEN) < m + 60; j++) {
            MDB_val fk = {FLOWS_KEY_LEN, (void *)(pend + j * FLOWS_KEY_LEN)}, fv;
            if (!budget_take(bud))
                break;
            int g = mdb_get(txn, s->db[DB_FLOWS], &fk, &fv);
            if (g == 0)
                offer(q, co, fk.mv_data, &fv);
            else if (g != MDB_NOTFOUND) {
                rc = store__err(g);
                break;
            }
        }
        for (size_t j = 0; j < nk && rc == 0; j++) {
            MDB_val fk = {FLOWS_KEY_LEN, keys + j * FLOWS_KEY_LEN}, fv;
            if (!budget_take(bud))
                break;
            int g = mdb_get(txn, s->db[DB_FLOWS], &fk, &fv);
            if (g == 0)
                offer(q, co, keys + j * FLOWS_KEY_LEN, &fv);
            else if (g != MDB_NOTFOUND) /* not found: aged out meanwhile */
                rc = store__err(g);
        }
        /* open flows last seen in this minute (skipping any of minutes passed) */
        while (oi < nop && (co->newest ? floor_to(ns_to_sec(op[oi].end), 60) > m
                                       : floor_to(ns_to_sec(op[oi].end), 60) < m))
            oi++;
        while (oi < nop && floor_to(ns_to_sec(op[oi].end), 60) == m)
            cand_push(co, &op[oi++]);
        if (rc == 0)
            rc = unit_end(s, txn, co);
    }
    free(keys);
    return rc;
}

/* Agent names by id, loaded once per query. */
struct names {
    char (*name)[STORE_AGENT_NAME_MAX];
    uint32_t n;
};

static int load_names(struct store *s, MDB_txn *txn, struct names *nm)
{
    MDB_cursor *cur;
    MDB_val k, v;
    int rc = mdb_cursor_open(txn, s->db[DB_AGENTS], &cur);
    if (rc)
        return store__err(rc);
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        struct agent_info a;
        if (k.mv_size != 4 || store__agent_decode(v.mv_data, v.mv_size, &a) != 0)
            continue;
        uint32_t id = get_be32(k.mv_data);
        if (id >= STORE_MAX_AGENTS)
            continue;
        if (id >= nm->n) {
            uint32_t n = id + 1;
            char(*x)[STORE_AGENT_NAME_MAX] = realloc(nm->name, (size_t)n * sizeof *x);
            if (!x) {
                rc = VIGIL_ENOMEM;
                break;
            }
            memset(x + nm->n, 0, (size_t)(n - nm->n) * sizeof *x);
            nm->name = x;
            nm->n = n;
        }
        memcpy(nm->name[id], a.name, sizeof a.name);
    }
    mdb_cursor_close(cur);
    return rc == MDB_NOTFOUND ? 0 : store__err(rc);
}

int store_query_flows(struct store *s, const struct flow_query *q, flow_cb cb, void *ctx,
                      struct flow_query_stats *st)
{
    struct collect co = {0};
    struct budget bud;
    struct names nm = {0};
    MDB_txn *txn = NULL;
    uint8_t *pend = NULL;
    struct cand *opens = NULL;
    size_t npend = 0, cpend = 0, nopen = 0;
    int rc;

    if (st)
        memset(st, 0, sizeof *st);
    if (!s || !q || !cb || q->limit == 0 || q->limit > QUERY_MAX_LIMIT ||
        q->until_ns <= q->since_ns || q->until_ns <= 0)
        return VIGIL_EINVAL;
    co.newest = !q->oldest_first;
    co.remaining = q->limit;
    co.heap = malloc(q->limit * sizeof *co.heap);
    co.offs = malloc((q->limit + 1) * sizeof *co.offs);
    if (!co.heap || !co.offs) {
        rc = VIGIL_ENOMEM;
        goto out;
    }
    co.offs[0] = 0;
    budget_init(&bud, q->max_rows, q->max_ns);

    if ((rc = store__snapshot_begin(s, &txn)) != 0)
        goto out;
    if (q->has_host) {
        uint32_t from = floor_to(clamp_sec(q->since_ns), 60);
        uint32_t to = floor_to(clamp_sec(q->until_ns - 1), 60) + 60;
        rc = rollup_pending_host_refs(s->pend, &q->host, from, to, &pend, &npend, &cpend);
    }
    store__snapshot_unlock(s);
    if (rc == 0 && npend)
        qsort(pend, npend, FLOWS_KEY_LEN, key_cmp);
    if (rc == 0)
        rc = load_names(s, txn, &nm);
    if (rc == 0)
        rc = collect_open(s, txn, q, &co, &bud, &opens, &nopen);
    if (rc == 0)
        rc = q->has_host ? flows_by_host(s, txn, q, &co, &bud, pend, npend, opens, nopen)
                         : flows_scan(s, txn, q, &co, &bud, opens, nopen);
    store__snapshot_end(s, txn);
    if (rc)
        goto out;

    if (st) {
        st->returned = co.n;
        st->rows_read = bud.rows;
        st->truncated = bud.hit;
    }
    /* The snapshot is gone: decode the copies and hand them out. */
    for (size_t i = 0; i < co.n; i++) {
        struct store_flow out;
        struct sflow f;
        if (flowcodec_decode(co.arena + co.offs[i], co.offs[i + 1] - co.offs[i], &f) != 0)
            continue;
        out.rec = f.rec;
        out.records = f.records;
        if (f.agent_id < nm.n)
            memcpy(out.rec.agent, nm.name[f.agent_id], sizeof out.rec.agent);
        if (cb(&out, ctx) != 0)
            break;
    }
out:
    free(co.heap);
    free(co.offs);
    free(co.arena);
    free(pend);
    free(opens);
    free(nm.name);
    return rc;
}

/* ---- agents ------------------------------------------------------------------ */

int store_query_agents(struct store *s, struct agent_info **out, size_t *n)
{
    MDB_txn *txn;
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    struct agent_info *list = NULL;
    size_t cnt = 0, cap = 0;
    int rc;

    if (!out || !n)
        return VIGIL_EINVAL;
    *out = NULL;
    *n = 0;
    if (!s)
        return VIGIL_EINVAL;
    if ((rc = store__snapshot_begin(s, &txn)) != 0)
        return rc;
    store__snapshot_unlock(s);
    rc = mdb_cursor_open(txn, s->db[DB_AGENT_IDS], &cur);
    for (rc = rc ? rc : mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (v.mv_size != 4)
            continue;
        uint32_t id = get_be32(v.mv_data);
        uint8_t ib[4];
        MDB_val ik = {4, ib}, iv;
        put_be32(ib, id);
        if (mdb_get(txn, s->db[DB_AGENTS], &ik, &iv) != 0)
            continue;
        if (cnt == cap) {
            size_t c = cap ? cap * 2 : 16;
            struct agent_info *l = realloc(list, c * sizeof *l);
            if (!l) {
                rc = VIGIL_ENOMEM;
                break;
            }
            list = l;
            cap = c;
        }
        if (store__agent_decode(iv.mv_data, iv.mv_size, &list[cnt]) != 0)
            continue;
        list[cnt].id = id;
        cnt++;
    }
    if (cur)
        mdb_cursor_close(cur);
    store__snapshot_end(s, txn);
    if (rc != MDB_NOTFOUND) {
        free(list);
        return store__err(rc);
    }
    *out = list;
    *n = cnt;
    return 0;
}
