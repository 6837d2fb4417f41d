/* groupmerge.c — rollup rows summed per group in key order (see groupmerge.h). */
#include "groupmerge.h"

#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "err.h"

/* ---- pending rows ------------------------------------------------------------ */

static void pending_row_fn(const uint8_t *key, const struct rctr *c, void *ctx)
{
    struct pend_rows *m = ctx;
    if (m->nomem)
        return;
    if (m->n == m->cap) {
        size_t nc = m->cap ? m->cap * 2 : 1024;
        uint8_t *k = realloc(m->keys, nc * m->klen);
        struct rctr *r = k ? realloc(m->ctr, nc * sizeof *r) : NULL;
        if (k)
            m->keys = k;
        if (!k || !r) {
            m->nomem = true;
            return;
        }
        m->ctr = r;
        m->cap = nc;
    }
    memcpy(m->keys + m->n * m->klen, key, m->klen);
    m->ctr[m->n++] = *c;
}

static void pending_total_fn(const uint8_t *key, const struct rctr *c, void *ctx)
{
    (void)key;
    rctr_add(&((struct pend_rows *)ctx)->total, c);
}

void pend_rows_copy(struct store *s, unsigned dim, uint32_t from, uint32_t to,
                    struct pend_rows *p)
{
    p->klen = dim_klen[dim];
    rollup_pending_rows_in(s->pend, dim, from, to, pending_row_fn, p);
    if (dim != DIM_APP) /* app groups add up to the totals as they are merged */
        rollup_pending_rows_in(s->pend, DIM_APP, from, to, pending_total_fn, p);
}

void pend_rows_add_contribs(struct pend_rows *p, unsigned dim, const struct contrib *c,
                            size_t n)
{
    p->klen = dim_klen[dim];
    for (size_t i = 0; i < n; i++) {
        uint8_t keys[2][32];
        struct rctr ctr[2];
        unsigned k = rollup_groups(&c[i], dim, keys, ctr);
        for (unsigned j = 0; j < k; j++)
            pending_row_fn(keys[j], &ctr[j], p);
        if (dim != DIM_APP && rollup_groups(&c[i], DIM_APP, keys, ctr) == 1)
            rctr_add(&p->total, &ctr[0]);
    }
}

int pend_rows_sum(struct pend_rows *p)
{
    if (p->nomem)
        return VIGIL_ENOMEM;
    if (p->n < 2)
        return 0;
    unsigned klen = p->klen, nw = (klen + 7) / 8;
    struct sortkey *sk = malloc(p->n * sizeof *sk);
    uint8_t *keys = malloc(p->n * klen);
    struct rctr *ctr = malloc(p->n * sizeof *ctr);
    if (!sk || !keys || !ctr) {
        free(sk);
        free(keys);
        free(ctr);
        return VIGIL_ENOMEM;
    }
    for (size_t i = 0; i < p->n; i++) {
        sortkey_words(sk[i].w, p->keys + i * klen, klen);
        sk[i].idx = (uint32_t)i;
    }
    sortkey_sort(sk, p->n, nw);
    size_t n = 0;
    for (size_t i = 0; i < p->n; i++) {
        const uint8_t *k = p->keys + (size_t)sk[i].idx * klen;
        if (n && memcmp(keys + (n - 1) * klen, k, klen) == 0) {
            rctr_add(&ctr[n - 1], &p->ctr[sk[i].idx]);
            continue;
        }
        memcpy(keys + n * klen, k, klen);
        ctr[n++] = p->ctr[sk[i].idx];
    }
    free(sk);
    free(p->keys);
    free(p->ctr);
    p->keys = keys;
    p->ctr = ctr;
    p->n = p->cap = n;
    return 0;
}

void pend_rows_free(struct pend_rows *p)
{
    free(p->keys);
    free(p->ctr);
    p->keys = NULL;
    p->ctr = NULL;
    p->n = p->cap = 0;
}

/* ---- stored rows ---------------------------------------------------------------- */

/* Sums the app rows (each record has exactly one) of tier with bucket in
 * [from, to) into *total. */
static int scan_totals(struct gmerge *m, unsigned tier, uint32_t from, uint32_t to,
                       struct rctr *total)
{
    MDB_cursor *cur;
    uint8_t kb[4];
    MDB_val k = {4, kb}, v;
    int rc = mdb_cursor_open(m->txn, m->s->db[rollup_db(tier, DIM_APP)], &cur);

    if (rc)
        return store__err(rc);
    put_be32(kb, from);
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        struct chunk_reader r;
        const uint8_t *pl;
        size_t plen;
        int got;
        if (k.mv_size < 4 || get_be32(k.mv_data) >= to)
            break;
        if (chunk_reader_init(&r, v.mv_data, v.mv_size, dim_klen[DIM_APP]) != 0)
            continue;
        while ((got = chunk_reader_next(&r, &pl, &plen)) == 1) {
            struct rctr c;
            if (!budget_take(m->bud))
                break;
            if (chunk_get_counters(pl, plen, c.v))
                rctr_add(total, &c);
        }
        if (m->bud->hit)
            break;
    }
    mdb_cursor_close(cur);
    return rc == 0 || rc == MDB_NOTFOUND ? 0 : store__err(rc);
}

static int grow_streams(struct gmerge *m, size_t more)
{
    if (m->nst + more <= m->cap)
        return 0;
    size_t c = (m->nst + more) * 2 + 64;
    struct chunk_stream *n1 = realloc(m->st, c * sizeof *n1);
    if (!n1)
        return VIGIL_ENOMEM;
    m->st = n1;
    uint8_t *n2 = realloc(m->tier, c);
    if (!n2)
        return VIGIL_ENOMEM;
    m->tier = n2;
    uint8_t *n3 = realloc(m->sign, c);
    if (!n3)
        return VIGIL_ENOMEM;
    m->sign = n3;
    m->cap = c;
    return 0;
}

/* Calls fn for every part of every bucket of tier in [from, to). */
static int walk_parts(struct gmerge *m, unsigned tier, uint32_t from, uint32_t to,
                      int (*fn)(struct gmerge *m, unsigned tier, uint32_t bucket, uint8_t part,
                                void *ctx),
                      void *ctx)
{
    MDB_cursor *cur = m->curs[tier];
    uint8_t kb[4];
    MDB_val k = {4, kb}, v;
    int rc;

    put_be32(kb, from);
    rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    while (rc == 0 && k.mv_size >= 5 && get_be32(k.mv_data) < to) {
        uint32_t bucket = get_be32(k.mv_data);
        uint8_t parts[256];
        unsigned np;
        if ((rc = chunk_list_parts(cur, bucket, parts, &np)) != 0)
            break;
        for (unsigned p = 0; p < np && rc == 0; p++)
            rc = fn(m, tier, bucket, parts[p], ctx);
        if (rc)
            break;
        /* next bucket */
        put_be32(kb, bucket + 1);
        k = (MDB_val){4, kb};
        rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    }
    if (rc == MDB_NOTFOUND)
        rc = 0;
    return rc > 0 || (rc < 0 && rc >= MDB_KEYEXIST && rc <= MDB_LAST_ERRCODE) ? store__err(rc)
                                                                              : rc;
}

/* A stream over one part, added to the merge with sign *ctx. */
static int add_stream(struct gmerge *m, unsigned tier, uint32_t bucket, uint8_t part, void *ctx)
{
    int rc = grow_streams(m, 1);
    if (rc)
        return rc;
    struct chunk_stream *x = &m->st[m->nst];
    rc = chunk_stream_seek(x, m->curs[tier], bucket, part, m->klen, NULL);
    if (rc == 0 && x->valid) {
        m->tier[m->nst] = (uint8_t)tier;
        m->sign[m->nst++] = *(const uint8_t *)ctx;
    }
    return rc;
}

int gmerge_init(struct gmerge *m, struct store *s, MDB_txn *txn, unsigned dim,
                const struct tier_marks *mk, struct budget *bud)
{
    memset(m, 0, sizeof *m);
    m->s = s;
    m->txn = txn;
    m->mk = mk;
    m->bud = bud;
    m->dim = dim;
    m->klen = dim_klen[dim];
    m->nw = (m->klen + 7) / 8;
    for (unsigned t = 0; t < TIER_COUNT; t++) {
        int rc = mdb_cursor_open(txn, s->db[rollup_db(t, dim)], &m->curs[t]);
        if (rc) {
            gmerge_free(m);
            return store__err(rc);
        }
    }
    return 0;
}

/* The piece of [t, to) read from one tier (of a range ending at end):
 * *tier, and where the piece stops — the run of buckets that tier answers. */
static uint32_t piece_end(const struct gmerge *m, uint32_t t, uint32_t to, uint32_t end,
                          unsigned *tier)
{
    *tier = piece_tier(t, end, m->mk);
    do
        t += tier_secs[*tier];
    while (t < to && piece_tier(t, end, m->mk) == *tier);
    return t;
}

int gmerge_add_range(struct gmerge *m, uint32_t from, uint32_t to, uint32_t end, unsigned sign)
{
    int rc = 0;
    for (uint32_t t = from; rc == 0 && t < to && !m->bud->hit;) {
        unsigned tier;
        uint32_t e = piece_end(m, t, to, end, &tier);
        m->buckets[tier] += (e - t) / tier_secs[tier];
        uint8_t sg = (uint8_t)sign;
        rc = walk_parts(m, tier, t, e, add_stream, &sg);
        if (rc == 0 && m->dim != DIM_APP)
            rc = scan_totals(m, tier, t, e, &m->total[sign]);
        t = e;
    }
    return rc;
}

void gmerge_add_pending(struct gmerge *m, struct pend_rows *p, unsigned sign)
{
    rctr_add(&m->total[sign], &p->total);
    if (p->n && m->npend < GM_MAX_PEND) {
        m->psign[m->npend] = (uint8_t)sign;
        m->pend[m->npend++] = p;
    }
}

/* The current key of input x into its loser-tree words, or done. */
static void load_input(struct gmerge *m, uint32_t x)
{
    if (x < m->nst) {
        if (m->st[x].valid)
            sortkey_words(m->lt.w[x], m->st[x].r.key, m->klen);
        else
            m->lt.done[x] = 1;
        return;
    }
    size_t i = x - m->nst;
    if (m->pi[i] < m->pend[i]->n)
        sortkey_words(m->lt.w[x], m->pend[i]->keys + m->pi[i] * m->klen, m->klen);
    else
        m->lt.done[x] = 1;
}

static int start(struct gmerge *m)
{
    size_t k = m->nst + m->npend;
    m->started = true;
    if (k == 0)
        return 0;
    if (ltree_init(&m->lt, (unsigned)k, m->nw) != 0)
        return VIGIL_ENOMEM;
    for (uint32_t x = 0; x < k; x++)
        load_input(m, x);
    ltree_build(&m->lt);
    return 0;
}

int gmerge_next(struct gmerge *m, uint8_t *key, struct rctr *plus, struct rctr *minus)
{
    int rc;
    if (!m->started && (rc = start(m)) != 0)
        return rc;
    uint32_t x;
    if (m->lt.k == 0 || m->bud->hit || (x = ltree_top(&m->lt)) == UINT32_MAX)
        return 0;
    uint64_t gw[4];
    struct rctr sum[2] = {{{0}}, {{0}}};
    memcpy(gw, m->lt.w[x], sizeof gw);
    if (x < m->nst)
        memcpy(key, m->st[x].r.key, m->klen);
    else
        memcpy(key, m->pend[x - m->nst]->keys + m->pi[x - m->nst] * m->klen, m->klen);
    do {
        if (!budget_take(m->bud))
            return 0;
        if (x < m->nst) {
            struct chunk_stream *st = &m->st[x];
            struct rctr c;
            if (chunk_get_counters(st->pl, st->plen, c.v))
                rctr_add(&sum[m->sign[x]], &c);
            if ((rc = chunk_stream_next(st, m->curs[m->tier[x]])) != 0)
                return store__err(rc);
        } else {
            size_t i = x - m->nst;
            rctr_add(&sum[m->psign[i]], &m->pend[i]->ctr[m->pi[i]++]);
        }
        load_input(m, x);
        ltree_replay(&m->lt, x);
        x = ltree_top(&m->lt);
    } while (x != UINT32_MAX && sortkey_cmp(m->lt.w[x], gw, m->nw) == 0);
    if (m->dim == DIM_APP)
        for (unsigned sg = 0; sg < 2; sg++)
            rctr_add(&m->total[sg], &sum[sg]);
    *plus = sum[GM_PLUS];
    *minus = sum[GM_MINUS];
    return 1;
}

struct lookup {
    const uint8_t *key, *after; /* after: the key just before (NULL: none) */
    struct rctr *out;
};

/* Adds the part's row of the looked-up key, if it has one. */
static int lookup_part(struct gmerge *m, unsigned tier, uint32_t bucket, uint8_t part, void *ctx)
{
    struct lookup *lk = ctx;
    struct chunk_stream x;
    int rc = chunk_stream_seek(&x, m->curs[tier], bucket, part, m->klen, lk->after);
    if (rc == 0 && x.valid && memcmp(x.r.key, lk->key, m->klen) == 0) {
        struct rctr c;
        if (!budget_take(m->bud))
            return 0;
        if (chunk_get_counters(x.pl, x.plen, c.v))
            rctr_add(lk->out, &c);
    }
    return rc;
}

int gmerge_lookup(struct gmerge *m, uint32_t from, uint32_t to, uint32_t end,
                  const uint8_t *key, struct rctr *out)
{
    uint8_t before[GROUP_KEY_MAX];
    bool has_before = false;
    /* the greatest key below it: seeks land on the first entry after that */
    memcpy(before, key, m->klen);
    for (unsigned i = m->klen; i-- > 0;) {
        if (before[i]-- != 0) {
            has_before = true;
            break;
        }
    }
    struct lookup lk = {key, has_before ? before : NULL, out};
    int rc = 0;
    for (uint32_t t = from; rc == 0 && t < to && !m->bud->hit;) {
        unsigned tier;
        uint32_t e = piece_end(m, t, to, end, &tier);
        rc = walk_parts(m, tier, t, e, lookup_part, &lk);
        t = e;
    }
    return rc;
}

void pend_rows_lookup(const struct pend_rows *p, const uint8_t *key, struct rctr *out)
{
    size_t lo = 0, hi = p->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = memcmp(p->keys + mid * p->klen, key, p->klen);
        if (c == 0) {
            rctr_add(out, &p->ctr[mid]);
            return;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
}

void gmerge_free(struct gmerge *m)
{
    ltree_free(&m->lt);
    for (unsigned t = 0; t < TIER_COUNT; t++)
        if (m->curs[t])
            mdb_cursor_close(m->curs[t]);
    free(m->st);
    free(m->tier);
    free(m->sign);
    memset(m, 0, sizeof *m);
}
