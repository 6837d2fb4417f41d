/* rank.c — each built day's best groups per metric (see rank.h). */
#include "rank.h"

#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "chunk.h"
#include "cursor.h"
#include "err.h"
#include "topk.h"

#define RANK_VERSION 1

struct rank_build {
    bool active;        /* collecting (bucket, dim), every group so far seen */
    uint32_t bucket;
    unsigned dim, klen;
    uint64_t groups;
    size_t n[RANK_METRICS];
    struct topk_ent heap[RANK_METRICS][RANK_K]; /* worst at the root (topk.h) */
};

struct rank_build *rank_build_new(void)
{
    return calloc(1, sizeof(struct rank_build));
}

void rank_build_free(struct rank_build *rb)
{
    free(rb);
}

void rank_begin(struct rank_build *rb, uint32_t bucket, unsigned dim)
{
    rb->active = true;
    rb->bucket = bucket;
    rb->dim = dim;
    rb->klen = dim_klen[dim];
    rb->groups = 0;
    memset(rb->n, 0, sizeof rb->n);
}

bool rank_continues(const struct rank_build *rb, uint32_t bucket, unsigned dim)
{
    return rb->active && rb->bucket == bucket && rb->dim == dim;
}

void rank_invalidate(struct rank_build *rb)
{
    rb->active = false;
}

void rank_offer(struct rank_build *rb, const uint8_t *key, const uint64_t c[RC_COUNT])
{
    if (!rb->active)
        return;
    struct rctr r;
    memcpy(r.v, c, sizeof r.v);
    rb->groups++;
    for (unsigned m = 0; m < RANK_METRICS; m++)
        topk_offer(rb->heap[m], &rb->n[m], RANK_K, key, &r, rank_metric(c, m), rb->klen);
}

const struct topk_ent *rank_rows(struct rank_build *rb, unsigned m, size_t *n,
                                 uint64_t *groups)
{
    if (!rb->active || m >= RANK_METRICS)
        return NULL;
    topk_sort(rb->heap[m], rb->n[m], rb->klen);
    *n = rb->n[m];
    *groups = rb->groups;
    return rb->heap[m];
}

static void rank_key(uint8_t key[RANK_KEY_LEN], uint32_t bucket, unsigned dim)
{
    put_be32(key, bucket);
    key[4] = (uint8_t)dim;
}

int rank_put(struct rank_build *rb, MDB_txn *txn, MDB_dbi db)
{
    if (!rb->active)
        return 0;
    size_t cap = 1 + VARINT_MAX + RANK_METRICS * (VARINT_MAX + (size_t)RANK_K *
                                                 (GROUP_KEY_MAX + RC_COUNT * VARINT_MAX));
    uint8_t *buf = malloc(cap), key[RANK_KEY_LEN];
    if (!buf)
        return VIGIL_ENOMEM;
    size_t n = 0;
    buf[n++] = RANK_VERSION;
    n += put_varint(buf + n, rb->groups);
    for (unsigned m = 0; m < RANK_METRICS; m++) {
        topk_sort(rb->heap[m], rb->n[m], rb->klen);
        n += put_varint(buf + n, rb->n[m]);
        for (size_t i = 0; i < rb->n[m]; i++) {
            memcpy(buf + n, rb->heap[m][i].key, rb->klen);
            n += rb->klen;
            n += chunk_put_counters(buf + n, rb->heap[m][i].c.v);
        }
    }
    rank_key(key, rb->bucket, rb->dim);
    MDB_val k = {RANK_KEY_LEN, key}, v = {n, buf};
    int rc = mdb_put(txn, db, &k, &v, 0);
    free(buf);
    rb->active = false;
    return rc;
}

int rank_delete(MDB_txn *txn, MDB_dbi db, uint32_t bucket, unsigned dim)
{
    uint8_t key[RANK_KEY_LEN];
    rank_key(key, bucket, dim);
    MDB_val k = {RANK_KEY_LEN, key};
    int rc = mdb_del(txn, db, &k, NULL);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

/* Walks a stored value: for metric `want` (or none: RANK_METRICS) calls
 * row for up to limit rows. Returns 0 or VIGIL_EBADMSG. */
static int walk(const uint8_t *v, size_t len, unsigned dim, unsigned want, unsigned limit,
                uint64_t *groups, size_t *have,
                void (*row)(const uint8_t *key, const uint64_t c[RC_COUNT], void *ctx), void *ctx)
{
    struct cursor c = cur_make(v, len);
    uint8_t version;
    uint64_t g;
    unsigned klen = dim_klen[dim];
    if (!cur_u8(&c, &version) || version != RANK_VERSION || !cur_varint(&c, &g))
        return VIGIL_EBADMSG;
    if (groups)
        *groups = g;
    for (unsigned m = 0; m < RANK_METRICS; m++) {
        uint64_t n;
        if (!cur_varint(&c, &n) || n > RANK_K || n > g)
            return VIGIL_EBADMSG;
        if (m == want && have)
            *have = (size_t)n;
        for (uint64_t i = 0; i < n; i++) {
            const uint8_t *key = c.p;
            uint64_t ctr[RC_COUNT];
            if (!cur_skip(&c, klen))
                return VIGIL_EBADMSG;
            for (int j = 0; j < RC_COUNT; j++)
                if (!cur_varint(&c, &ctr[j]))
                    return VIGIL_EBADMSG;
            if (m == want && i < limit && row)
                row(key, ctr, ctx);
        }
    }
    return cur_left(&c) == 0 ? 0 : VIGIL_EBADMSG;
}

int rank_read(MDB_txn *txn, MDB_dbi db, uint32_t bucket, unsigned dim, unsigned m,
              unsigned limit, uint64_t *groups,
              void (*row)(const uint8_t *key, const uint64_t c[RC_COUNT], void *ctx), void *ctx)
{
    uint8_t key[RANK_KEY_LEN];
    uint64_t g;
    size_t have = 0;
    rank_key(key, bucket, dim);
    MDB_val k = {RANK_KEY_LEN, key}, v;
    int rc = mdb_get(txn, db, &k, &v);
    if (rc)
        return rc;
    /* checked whole before any row is given */
    if (walk(v.mv_data, v.mv_size, dim, m, 0, &g, &have, NULL, NULL) != 0)
        return VIGIL_EBADMSG;
    if (have < limit && have < g)
        return MDB_NOTFOUND; /* more groups than the ranking keeps */
    *groups = g;
    return walk(v.mv_data, v.mv_size, dim, m, limit, NULL, NULL, row, ctx);
}

int rank_check(const uint8_t *v, size_t len, unsigned dim)
{
    if (dim >= DIM_COUNT)
        return VIGIL_EBADMSG;
    return walk(v, len, dim, RANK_METRICS, 0, NULL, NULL, NULL, NULL);
}
