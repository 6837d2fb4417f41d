/* chunk.c — chunked, sorted entry runs in LMDB values (see chunk.h). */
#include "chunk.h"

#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "err.h"
#include "store_int.h"

/* ---- writing ---------------------------------------------------------------- */

int chunk_writer_begin(struct chunk_writer *w, MDB_txn *txn, MDB_dbi dbi, uint32_t bucket,
                       uint8_t part, unsigned klen)
{
    memset(w, 0, sizeof *w);
    w->txn = txn;
    w->dbi = dbi;
    w->bucket = bucket;
    w->part = part;
    w->klen = klen;
    w->append = -1;
    w->cap = CHUNK_TARGET + 128;
    if (!(w->buf = malloc(w->cap)))
        return VIGIL_ENOMEM;
    int rc = mdb_cursor_open(txn, dbi, &w->cur);
    if (rc) {
        free(w->buf);
        w->buf = NULL;
    }
    return rc;
}

static size_t chunk_key(uint8_t *k, uint32_t bucket, uint8_t part, const uint8_t *group,
                        unsigned klen)
{
    put_be32(k, bucket);
    k[4] = part;
    memcpy(k + 5, group, klen);
    return 5 + klen;
}

static int emit(struct chunk_writer *w)
{
    uint8_t kb[CHUNK_KEY_MAX];
    MDB_val k = {chunk_key(kb, w->bucket, w->part, w->first, w->klen), kb};
    MDB_val v = {w->len, w->buf};
    int rc;

    if (w->append < 0) { /* append only past the last key of the DB */
        MDB_val lk, lv;
        rc = mdb_cursor_get(w->cur, &lk, &lv, MDB_LAST);
        if (rc == MDB_NOTFOUND) {
            w->append = 1;
        } else if (rc == 0) {
            size_t n = lk.mv_size < k.mv_size ? lk.mv_size : k.mv_size;
            int c = memcmp(lk.mv_data, kb, n);
            w->append = c < 0 || (c == 0 && lk.mv_size < k.mv_size);
        } else {
            return rc;
        }
    }
    rc = mdb_cursor_put(w->cur, &k, &v, w->append ? MDB_APPEND : 0);
    if (rc == MDB_KEYEXIST && w->append) {
        w->append = 0;
        rc = mdb_cursor_put(w->cur, &k, &v, 0);
    }
    w->open = false;
    w->len = 0;
    w->chunks++;
    return rc;
}

int chunk_writer_add(struct chunk_writer *w, const uint8_t *key, const uint8_t *payload,
                     size_t plen)
{
    size_t need = 1 + w->klen + VARINT_MAX + plen;
    unsigned shared = 0;
    int rc;

    if (w->open && w->len + need > CHUNK_TARGET && (rc = emit(w)) != 0)
        return rc;
    if (!w->open) {
        w->buf[0] = CHUNK_VERSION;
        w->len = 1;
        memcpy(w->first, key, w->klen);
        w->open = true;
    } else {
        while (shared < w->klen && w->prev[shared] == key[shared])
            shared++;
    }
    if (w->len + need > w->cap) { /* one entry larger than a chunk (a busy host) */
        size_t cap = w->len + need;
        uint8_t *b = realloc(w->buf, cap);
        if (!b)
            return VIGIL_ENOMEM;
        w->buf = b;
        w->cap = cap;
    }
    uint8_t *p = w->buf + w->len;
    *p++ = (uint8_t)shared;
    memcpy(p, key + shared, w->klen - shared);
    p += w->klen - shared;
    p += put_varint(p, plen);
    memcpy(p, payload, plen);
    p += plen;
    w->len = (size_t)(p - w->buf);
    memcpy(w->prev, key, w->klen);
    return 0;
}

int chunk_writer_end(struct chunk_writer *w, bool ok)
{
    int rc = 0;
    if (ok && w->open)
        rc = emit(w);
    if (w->cur)
        mdb_cursor_close(w->cur);
    free(w->buf);
    w->cur = NULL;
    w->buf = NULL;
    return rc;
}

/* ---- reading ---------------------------------------------------------------- */

int chunk_reader_init(struct chunk_reader *r, const void *data, size_t len, unsigned klen)
{
    const uint8_t *p = data;
    if (len < 1 || p[0] != CHUNK_VERSION || klen > sizeof r->key)
        return VIGIL_EBADMSG;
    r->p = p + 1;
    r->end = p + len;
    r->klen = klen;
    return 0;
}

int chunk_reader_next(struct chunk_reader *r, const uint8_t **payload, size_t *plen)
{
    struct cursor c = {r->p, r->end};
    uint8_t shared;
    uint64_t n;

    if (c.p == c.end)
        return 0;
    if (!cur_u8(&c, &shared) || shared > r->klen ||
        !cur_bytes(&c, r->key + shared, r->klen - shared) || !cur_varint(&c, &n) ||
        !cur_has(&c, (size_t)n))
        return VIGIL_EBADMSG;
    *payload = c.p;
    *plen = (size_t)n;
    r->p = c.p + n;
    return 1;
}

/* ---- parts and streams -------------------------------------------------------- */

static bool has_prefix(const MDB_val *k, uint32_t bucket, int part)
{
    if (k->mv_size < 5 || get_be32(k->mv_data) != bucket)
        return false;
    return part < 0 || ((const uint8_t *)k->mv_data)[4] == part;
}

int chunk_list_parts(MDB_cursor *cur, uint32_t bucket, uint8_t parts[256], unsigned *n)
{
    uint8_t kb[5];
    MDB_val k = {5, kb}, v;
    int rc;

    *n = 0;
    put_be32(kb, bucket);
    kb[4] = 0;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0 && has_prefix(&k, bucket, -1);) {
        uint8_t p = ((const uint8_t *)k.mv_data)[4];
        parts[(*n)++] = p;
        if (p == PART_LAST)
            break;
        kb[4] = (uint8_t)(p + 1);
        k = (MDB_val){5, kb};
        rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    }
    return rc == MDB_NOTFOUND ? 0 : rc;
}

int chunk_next_part(MDB_cursor *cur, uint32_t bucket, uint8_t *part)
{
    uint8_t parts[256];
    unsigned n;
    int rc = chunk_list_parts(cur, bucket, parts, &n);
    if (rc)
        return rc;
    *part = n == 0 ? 0 : parts[n - 1] >= PART_LAST - 1 ? PART_LAST : (uint8_t)(parts[n - 1] + 1);
    return 0;
}

/* Makes (k, v) the stream's current chunk and reads its first entry. */
static int stream_load(struct chunk_stream *s, const MDB_val *k, const MDB_val *v)
{
    int rc;
    if (k->mv_size > sizeof s->ckey)
        return VIGIL_EBADMSG;
    memcpy(s->ckey, k->mv_data, k->mv_size);
    if ((rc = chunk_reader_init(&s->r, v->mv_data, v->mv_size, s->klen)) != 0)
        return rc;
    rc = chunk_reader_next(&s->r, &s->pl, &s->plen);
    if (rc < 0)
        return rc;
    s->valid = rc == 1;
    return 0;
}

int chunk_stream_next(struct chunk_stream *s, MDB_cursor *cur)
{
    int rc = chunk_reader_next(&s->r, &s->pl, &s->plen);
    if (rc < 0)
        return rc;
    if (rc == 1)
        return 0;
    /* the chunk is done: on to the next one of this part */
    for (;;) {
        MDB_val k = {5 + s->klen, s->ckey}, v;
        rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
        if (rc == 0 && k.mv_size == 5 + s->klen && memcmp(k.mv_data, s->ckey, k.mv_size) == 0)
            rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
        if (rc == MDB_NOTFOUND || (rc == 0 && !has_prefix(&k, s->bucket, s->part))) {
            s->valid = false;
            return 0;
        }
        if (rc)
            return rc;
        if ((rc = stream_load(s, &k, &v)) != 0 || s->valid)
            return rc;
    }
}

int chunk_stream_seek(struct chunk_stream *s, MDB_cursor *cur, uint32_t bucket, uint8_t part,
                      unsigned klen, const uint8_t *after)
{
    uint8_t kb[CHUNK_KEY_MAX];
    MDB_val k, v;
    int rc;

    memset(s, 0, sizeof *s);
    s->bucket = bucket;
    s->part = part;
    s->klen = klen;
    put_be32(kb, bucket);
    kb[4] = part;
    if (!after) {
        k = (MDB_val){5, kb};
        rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
        if (rc == MDB_NOTFOUND || (rc == 0 && !has_prefix(&k, bucket, part)))
            return 0;
        if (rc)
            return rc;
        if ((rc = stream_load(s, &k, &v)) != 0)
            return rc;
        return s->valid ? 0 : chunk_stream_next(s, cur);
    }
    memcpy(kb + 5, after, klen);
    k = (MDB_val){5 + klen, kb};
    rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    bool exact = rc == 0 && k.mv_size == 5 + klen && memcmp(k.mv_data, kb, 5 + klen) == 0;
    if (!exact) {
        /* the chunk holding `after` starts before it: the previous one */
        if (rc == 0)
            rc = mdb_cursor_get(cur, &k, &v, MDB_PREV);
        else if (rc == MDB_NOTFOUND)
            rc = mdb_cursor_get(cur, &k, &v, MDB_LAST);
        if (rc == MDB_NOTFOUND || (rc == 0 && !has_prefix(&k, bucket, part))) {
            k = (MDB_val){5 + klen, kb}; /* every chunk of the part starts after it */
            rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
            if (rc == MDB_NOTFOUND || (rc == 0 && !has_prefix(&k, bucket, part)))
                return 0;
        }
    }
    if (rc)
        return rc;
    if ((rc = stream_load(s, &k, &v)) != 0)
        return rc;
    if (!s->valid && (rc = chunk_stream_next(s, cur)) != 0)
        return rc;
    while (s->valid && memcmp(s->r.key, after, klen) <= 0)
        if ((rc = chunk_stream_next(s, cur)) != 0)
            return rc;
    return 0;
}

/* ---- payloads ------------------------------------------------------------------ */

size_t chunk_put_counters(uint8_t *out, const uint64_t c[5])
{
    size_t n = 0;
    for (int i = 0; i < 5; i++)
        n += put_varint(out + n, c[i]);
    return n;
}

bool chunk_get_counters(const uint8_t *pl, size_t plen, uint64_t c[5])
{
    struct cursor cur = cur_make(pl, plen);
    for (int i = 0; i < 5; i++)
        if (!cur_varint(&cur, &c[i]))
            return false;
    return cur_left(&cur) == 0;
}

static inline int64_t unzigzag(uint64_t v)
{
    return (int64_t)(v >> 1) ^ -(int64_t)(v & 1);
}

int hostidx_refs_decode(uint32_t minute, const uint8_t *pl, size_t plen, uint8_t **keys,
                        size_t *n, size_t *cap)
{
    struct cursor c = cur_make(pl, plen);
    uint64_t off = 0, seq = 0;
    while (cur_left(&c)) {
        uint64_t doff, dseq;
        if (!cur_varint(&c, &doff) || !cur_varint(&c, &dseq))
            return VIGIL_EBADMSG;
        off += (uint64_t)unzigzag(doff);
        seq += (uint64_t)unzigzag(dseq);
        if (off >= 60)
            return VIGIL_EBADMSG;
        if (*n == *cap) {
            size_t nc = *cap ? *cap * 2 : 256;
            uint8_t *k = realloc(*keys, nc * FLOWS_KEY_LEN);
            if (!k)
                return VIGIL_ENOMEM;
            *keys = k;
            *cap = nc;
        }
        flows_key(*keys + *n * FLOWS_KEY_LEN, minute + (uint32_t)off, seq);
        (*n)++;
    }
    return 0;
}

int hostidx_lookup(MDB_txn *txn, MDB_dbi dbi, uint32_t minute, const struct vigil_addr *host,
                   uint8_t **keys, size_t *n, size_t *cap)
{
    MDB_cursor *cur;
    uint8_t parts[256];
    unsigned np = 0;
    int rc = mdb_cursor_open(txn, dbi, &cur);

    if (rc)
        return rc;
    rc = chunk_list_parts(cur, minute, parts, &np);
    for (unsigned i = 0; i < np && rc == 0; i++) {
        uint8_t kb[CHUNK_KEY_MAX];
        MDB_val k = {chunk_key(kb, minute, parts[i], host->b, 16), kb}, v;
        rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
        bool exact = rc == 0 && k.mv_size == 21 && memcmp(k.mv_data, kb, 21) == 0;
        if (!exact) {
            if (rc == 0)
                rc = mdb_cursor_get(cur, &k, &v, MDB_PREV);
            else if (rc == MDB_NOTFOUND)
                rc = mdb_cursor_get(cur, &k, &v, MDB_LAST);
            if (rc == MDB_NOTFOUND || (rc == 0 && !has_prefix(&k, minute, parts[i]))) {
                rc = 0;
                continue; /* the part's first host is after this one */
            }
        }
        if (rc)
            break;
        struct chunk_reader r;
        const uint8_t *pl;
        size_t plen;
        int got;
        if ((rc = chunk_reader_init(&r, v.mv_data, v.mv_size, 16)) != 0)
            break;
        while ((got = chunk_reader_next(&r, &pl, &plen)) == 1) {
            int c = memcmp(r.key, host->b, 16);
            if (c == 0)
                rc = hostidx_refs_decode(minute, pl, plen, keys, n, cap);
            if (c >= 0)
                break;
        }
        if (got < 0)
            rc = got;
    }
    mdb_cursor_close(cur);
    return rc == MDB_NOTFOUND ? 0 : rc;
}
