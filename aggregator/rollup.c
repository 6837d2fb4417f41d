/* rollup.c — pending minutes in memory, their flush, the hour/day builds,
 * and the rebuild from the journal after a crash (see rollup.h).
 *
 * Pending layout: one struct pbucket per minute with data, kept sorted by
 * minute. Each bucket holds, per dimension, a table of rows (group key ->
 * 5 counters) and, for the host index, a list of (host, second in the
 * minute, sequence) references to the flow rows written in that minute. A
 * table is a dense entry array plus an open-addressing index of entry
 * numbers. Keys are hashed with SipHash under the store's random key:
 * addresses come from the network and must not be able to aim at one
 * chain. A flush sorts a bucket's entries (sortkey.h) and writes them as
 * chunks (chunk.h). */
#include "rollup.h"

#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "chunk.h"
#include "err.h"
#include "journal.h"
#include "log.h"
#include "rank.h"
#include "sortkey.h"
#include "store_int.h"

#define RT_MIN_CAP 64u
#define RT_MAX_ENTRIES (1u << 30)
/* A flush transaction writes at most about this many rows, then commits
 * and goes on in another: bounded transactions keep commit latency and the
 * dirty-page list small. One minute always goes in one transaction. */
#define FLUSH_TXN_MAX_ROWS 2000000u
/* Contributions (sequences) in one journal DB before appends move to the other. */
#define JOURNAL_ROTATE 65536u
/* Minute buckets pending before the oldest are flushed regardless. */
#define PENDING_MAX_BUCKETS 4096u

struct rtab {
    uint8_t *ents;  /* cap entries of stride bytes: RC_COUNT u64 counters, then the key */
    uint32_t *idx;  /* mask + 1 slots: entry number + 1, 0 = empty */
    uint32_t n, cap, mask;
    uint16_t klen, stride;
};

struct pref {
    uint8_t host[16]; /* either end of the flow */
    uint32_t off;     /* second within the minute of the flow row's key */
    uint64_t seq;     /* ingest sequence of the flow row's key */
};

struct pbucket {
    uint32_t minute;  /* start, seconds since the epoch */
    uint64_t min_seq; /* lowest journal sequence added; UINT64_MAX when empty */
    uint32_t want, want_refs; /* reservation scratch */
    bool flushing;    /* selected by the flush in progress */
    struct rtab t[DIM_COUNT];
    struct pref *refs;
    uint32_t nrefs, caprefs;
};

struct rollup_pending {
    struct hash_key hk;
    struct pbucket **b; /* sorted by minute */
    uint32_t n, cap;
    uint64_t rows;      /* entries over all tables */
};

/* ---- tables ---------------------------------------------------------- */

static inline uint64_t *ent_ctr(const struct rtab *t, uint32_t e)
{
    return (uint64_t *)(void *)(t->ents + (size_t)e * t->stride);
}

static inline uint8_t *ent_key(const struct rtab *t, uint32_t e)
{
    return t->ents + (size_t)e * t->stride + RC_COUNT * 8;
}

static void rtab_init(struct rtab *t, unsigned klen)
{
    memset(t, 0, sizeof *t);
    t->klen = (uint16_t)klen;
    t->stride = (uint16_t)(RC_COUNT * 8 + ((klen + 7) & ~7u));
}

static void rtab_free(struct rtab *t)
{
    free(t->ents);
    free(t->idx);
    t->ents = NULL;
    t->idx = NULL;
    t->n = t->cap = t->mask = 0;
}

static inline uint32_t rtab_slot(const struct hash_key *hk, const struct rtab *t,
                                 const uint8_t *key)
{
    return (uint32_t)hash_siphash13(hk, key, t->klen) & t->mask;
}

static int rtab_reserve(const struct hash_key *hk, struct rtab *t, uint32_t more)
{
    if (more > RT_MAX_ENTRIES - t->n)
        return VIGIL_ENOMEM;
    uint32_t need = t->n + more;
    if (need > t->cap) {
        uint32_t cap = t->cap ? t->cap : RT_MIN_CAP;
        while (cap < need)
            cap *= 2;
        uint8_t *e = realloc(t->ents, (size_t)cap * t->stride);
        if (!e)
            return VIGIL_ENOMEM;
        t->ents = e;
        t->cap = cap;
    }
    if (!t->idx || (uint64_t)need * 2 > (uint64_t)t->mask + 1) {
        uint32_t size = 2 * RT_MIN_CAP;
        while (size < need * 2)
            size *= 2;
        uint32_t *idx = calloc(size, sizeof *idx);
        if (!idx)
            return VIGIL_ENOMEM;
        free(t->idx);
        t->idx = idx;
        t->mask = size - 1;
        for (uint32_t e = 0; e < t->n; e++) {
            uint32_t i = rtab_slot(hk, t, ent_key(t, e));
            while (t->idx[i])
                i = (i + 1) & t->mask;
            t->idx[i] = e + 1;
        }
    }
    return 0;
}

/* Finds or inserts key (room reserved); *added tells which. */
static uint32_t rtab_get(const struct hash_key *hk, struct rtab *t, const uint8_t *key, bool *added)
{
    uint32_t i = rtab_slot(hk, t, key);
    for (;; i = (i + 1) & t->mask) {
        uint32_t v = t->idx[i];
        if (!v)
            break;
        if (memcmp(ent_key(t, v - 1), key, t->klen) == 0) {
            *added = false;
            return v - 1;
        }
    }
    uint32_t e = t->n++;
    memset(ent_ctr(t, e), 0, RC_COUNT * 8);
    memcpy(ent_key(t, e), key, t->klen);
    t->idx[i] = e + 1;
    *added = true;
    return e;
}

static inline uint64_t sat_add(uint64_t a, uint64_t b)
{
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

static inline void ctr_add(uint64_t *dst, const struct rctr *c)
{
    for (int i = 0; i < RC_COUNT; i++)
        dst[i] = sat_add(dst[i], c->v[i]);
}

/* ---- buckets ------------------------------------------------------------ */

static void bucket_free(struct pbucket *b)
{
    if (!b)
        return;
    for (int d = 0; d < DIM_COUNT; d++)
        rtab_free(&b->t[d]);
    free(b->refs);
    free(b);
}

/* Index of the first bucket with minute >= m. */
static uint32_t bucket_lower(const struct rollup_pending *p, uint32_t m)
{
    uint32_t lo = 0, hi = p->n;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (p->b[mid]->minute < m)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static struct pbucket *bucket_find(const struct rollup_pending *p, uint32_t m)
{
    uint32_t i = bucket_lower(p, m);
    return i < p->n && p->b[i]->minute == m ? p->b[i] : NULL;
}

static struct pbucket *bucket_get(struct rollup_pending *p, uint32_t m)
{
    uint32_t i = bucket_lower(p, m);
    if (i < p->n && p->b[i]->minute == m)
        return p->b[i];
    if (p->n == p->cap) {
        uint32_t cap = p->cap ? p->cap * 2 : 16;
        struct pbucket **nb = realloc(p->b, cap * sizeof *nb);
        if (!nb)
            return NULL;
        p->b = nb;
        p->cap = cap;
    }
    struct pbucket *b = calloc(1, sizeof *b);
    if (!b)
        return NULL;
    b->minute = m;
    b->min_seq = UINT64_MAX;
    for (int d = 0; d < DIM_COUNT; d++)
        rtab_init(&b->t[d], dim_klen[d]);
    memmove(p->b + i + 1, p->b + i, (p->n - i) * sizeof *p->b);
    p->b[i] = b;
    p->n++;
    return b;
}

static inline uint32_t contrib_minute(const struct contrib *c)
{
    return floor_to(ns_to_sec(c->end_ns), 60);
}

struct rollup_pending *rollup_pending_new(const struct hash_key *hk)
{
    struct rollup_pending *p = calloc(1, sizeof *p);
    if (p)
        p->hk = *hk;
    return p;
}

void rollup_pending_clear(struct rollup_pending *p)
{
    for (uint32_t i = 0; i < p->n; i++)
        bucket_free(p->b[i]);
    p->n = 0;
    p->rows = 0;
}

void rollup_pending_free(struct rollup_pending *p)
{
    if (!p)
        return;
    rollup_pending_clear(p);
    free(p->b);
    free(p);
}

uint64_t rollup_pending_rows(const struct rollup_pending *p)
{
    return p->rows;
}

uint64_t rollup_pending_buckets(const struct rollup_pending *p)
{
    return p->n;
}

static inline uint32_t row_minute(const struct contrib *c)
{
    return floor_to(c->row_sec, 60);
}

int rollup_pending_reserve(struct rollup_pending *p, const struct contrib *c, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        struct pbucket *b;
        if (!c[i].refs_only) {
            if (!(b = bucket_get(p, contrib_minute(&c[i]))))
                return VIGIL_ENOMEM;
            b->want++;
        }
        if (c[i].placed) {
            if (!(b = bucket_get(p, row_minute(&c[i]))))
                return VIGIL_ENOMEM;
            b->want_refs += 2;
        }
    }
    for (size_t i = 0; i < n; i++) {
        for (int which = 0; which < 2; which++) {
            if (which == 0 ? c[i].refs_only : !c[i].placed)
                continue;
            struct pbucket *b =
                bucket_find(p, which == 0 ? contrib_minute(&c[i]) : row_minute(&c[i]));
            uint32_t w = b->want, wr = b->want_refs;
            b->want = b->want_refs = 0;
            if (w && (rtab_reserve(&p->hk, &b->t[DIM_HOST], 2 * w) ||
                      rtab_reserve(&p->hk, &b->t[DIM_APP], w) ||
                      rtab_reserve(&p->hk, &b->t[DIM_PORT], w) ||
                      rtab_reserve(&p->hk, &b->t[DIM_PAIR], w)))
                return VIGIL_ENOMEM;
            if (!wr)
                continue;
            if (wr > UINT32_MAX - b->nrefs)
                return VIGIL_ENOMEM;
            uint32_t need = b->nrefs + wr;
            if (need > b->caprefs) {
                uint32_t cap = b->caprefs ? b->caprefs : 128;
                while (cap < need)
                    cap *= 2;
                struct pref *r = realloc(b->refs, (size_t)cap * sizeof *r);
                if (!r)
                    return VIGIL_ENOMEM;
                b->refs = r;
                b->caprefs = cap;
            }
        }
    }
    return 0;
}

unsigned rollup_groups(const struct contrib *c, unsigned dim, uint8_t keys[2][32],
                       struct rctr ctr[2])
{
    const struct rctr fwd = {{c->bytes_fwd, c->bytes_rev, c->pkts_fwd, c->pkts_rev, c->new_flow}};
    const struct rctr rev = {{c->bytes_rev, c->bytes_fwd, c->pkts_rev, c->pkts_fwd, c->new_flow}};

    switch (dim) {
    case DIM_HOST:
        memcpy(keys[0], c->src.b, 16);
        ctr[0] = fwd;
        if (memcmp(c->src.b, c->dst.b, 16) == 0)
            return 1; /* a host talking to itself counts once, as the initiator */
        memcpy(keys[1], c->dst.b, 16);
        ctr[1] = rev;
        return 2;
    case DIM_APP:
        memset(keys[0], 0, 16);
        memcpy(keys[0], c->app, strnlen(c->app, 15));
        ctr[0] = fwd;
        return 1;
    case DIM_PORT:
        keys[0][0] = c->proto;
        put_be16(keys[0] + 1, c->dst_port);
        ctr[0] = fwd;
        return 1;
    case DIM_PAIR:
        if (memcmp(c->src.b, c->dst.b, 16) <= 0) {
            memcpy(keys[0], c->src.b, 16);
            memcpy(keys[0] + 16, c->dst.b, 16);
            ctr[0] = fwd;
        } else {
            memcpy(keys[0], c->dst.b, 16);
            memcpy(keys[0] + 16, c->src.b, 16);
            ctr[0] = rev;
        }
        return 1;
    default: return 0;
    }
}

void rollup_pending_add(struct rollup_pending *p, const struct contrib *c)
{
    uint8_t keys[2][32];
    struct rctr ctr[2];
    struct pbucket *b;

    if (!c->refs_only) {
        uint32_t m = contrib_minute(c);
        if (!(b = bucket_find(p, m))) { /* cannot happen after rollup_pending_reserve */
            log_err("rollup: no pending bucket reserved for minute %u", (unsigned)m);
            return;
        }
        for (unsigned d = 0; d < DIM_COUNT; d++) {
            unsigned k = rollup_groups(c, d, keys, ctr);
            for (unsigned i = 0; i < k; i++) {
                bool added;
                uint32_t e = rtab_get(&p->hk, &b->t[d], keys[i], &added);
                ctr_add(ent_ctr(&b->t[d], e), &ctr[i]);
                p->rows += added;
            }
        }
        if (c->seq < b->min_seq)
            b->min_seq = c->seq;
    }
    if (c->placed) {
        uint32_t m = row_minute(c);
        if (!(b = bucket_find(p, m))) {
            log_err("rollup: no pending bucket reserved for minute %u", (unsigned)m);
            return;
        }
        struct pref r = {.off = c->row_sec - m, .seq = c->seq};
        memcpy(r.host, c->src.b, 16);
        b->refs[b->nrefs++] = r;
        if (memcmp(c->src.b, c->dst.b, 16) != 0) {
            memcpy(r.host, c->dst.b, 16);
            b->refs[b->nrefs++] = r;
        }
        if (c->seq < b->min_seq)
            b->min_seq = c->seq;
    }
}

void rollup_pending_rows_in(const struct rollup_pending *p, unsigned dim, uint32_t from_s,
                            uint32_t to_s, rollup_row_fn fn, void *ctx)
{
    for (uint32_t i = bucket_lower(p, from_s); i < p->n && p->b[i]->minute < to_s; i++) {
        const struct rtab *t = &p->b[i]->t[dim];
        for (uint32_t e = 0; e < t->n; e++) {
            struct rctr c;
            memcpy(c.v, ent_ctr(t, e), sizeof c.v);
            fn(ent_key(t, e), &c, ctx);
        }
    }
}

void rollup_pending_rows_minute(const struct rollup_pending *p, unsigned dim, uint32_t from_s,
                                uint32_t to_s, rollup_minute_row_fn fn, void *ctx)
{
    for (uint32_t i = bucket_lower(p, from_s); i < p->n && p->b[i]->minute < to_s; i++) {
        const struct rtab *t = &p->b[i]->t[dim];
        for (uint32_t e = 0; e < t->n; e++) {
            struct rctr c;
            memcpy(c.v, ent_ctr(t, e), sizeof c.v);
            fn(p->b[i]->minute, ent_key(t, e), &c, ctx);
        }
    }
}

static int keys_push(uint8_t **keys, size_t *n, size_t *cap, uint32_t sec, uint64_t seq)
{
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 256;
        uint8_t *k = realloc(*keys, nc * FLOWS_KEY_LEN);
        if (!k)
            return VIGIL_ENOMEM;
        *keys = k;
        *cap = nc;
    }
    flows_key(*keys + *n * FLOWS_KEY_LEN, sec, seq);
    (*n)++;
    return 0;
}

int rollup_pending_host_refs(const struct rollup_pending *p, const struct vigil_addr *host,
                             uint32_t from_s, uint32_t to_s, uint8_t **keys, size_t *n,
                             size_t *cap)
{
    for (uint32_t i = bucket_lower(p, from_s); i < p->n && p->b[i]->minute < to_s; i++) {
        const struct pbucket *b = p->b[i];
        for (uint32_t r = 0; r < b->nrefs; r++)
            if (memcmp(b->refs[r].host, host->b, 16) == 0 &&
                keys_push(keys, n, cap, b->minute + b->refs[r].off, b->refs[r].seq))
                return VIGIL_ENOMEM;
    }
    return 0;
}

/* ---- host index payloads ---------------------------------------------------- */

static inline uint64_t zigzag(int64_t v)
{
    return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
}

/* One reference to a flow row from a host's entry. */
struct href {
    uint8_t host[16];
    uint32_t off;
    uint64_t seq;
};

static int href_cmp(const void *a, const void *b)
{
    const struct href *x = a, *y = b;
    int c = memcmp(x->host, y->host, 16);
    if (c)
        return c;
    if (x->off != y->off)
        return x->off < y->off ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Encodes the references of one host (in ingest order: sequences grow, so
 * their deltas are small; seconds wander a little, hence zigzag). */
static size_t refs_encode(const struct href *r, size_t n, uint8_t *out)
{
    uint8_t *p = out;
    uint32_t poff = 0;
    uint64_t pseq = 0;
    for (size_t i = 0; i < n; i++) {
        p += put_varint(p, zigzag((int64_t)r[i].off - (int64_t)poff));
        p += put_varint(p, zigzag((int64_t)(r[i].seq - pseq)));
        poff = r[i].off;
        pseq = r[i].seq;
    }
    return (size_t)(p - out);
}

/* ---- flush ---------------------------------------------------------------- */

static inline int64_t v4_word(const uint8_t *a);

/* Is (tier, bucket, dim, group) already part of a built bucket, so a late
 * minute delta must go there too? */
static bool tier_has(const struct store *s, unsigned tier, uint32_t bucket, unsigned dim,
                     const uint8_t *group)
{
    uint32_t sealed = tier == TIER_HOUR ? s->sealed_h : s->sealed_d;
    if (bucket < sealed)
        return true;
    const struct compact_state *cs = &s->cs;
    if (cs->tier != tier || cs->bucket != bucket)
        return false;
    if (dim < cs->dim)
        return true;
    return dim == cs->dim && cs->has_last && memcmp(group, cs->last, dim_klen[dim]) <= 0;
}

/* Deletes every chunk of (bucket, part). */
static int delete_part(MDB_cursor *cur, uint32_t bucket, uint8_t part)
{
    uint8_t kb[5];
    MDB_val k = {5, kb}, v;
    int rc;
    put_be32(kb, bucket);
    kb[4] = part;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_GET_CURRENT)) {
        if (k.mv_size < 5 || memcmp(k.mv_data, kb, 5) != 0)
            break;
        if ((rc = mdb_cursor_del(cur, 0)) != 0)
            return rc;
    }
    return rc == MDB_NOTFOUND || rc == EINVAL ? 0 : rc;
}

/* A sorted run of rollup rows to write: entries of a pending table. */
struct rows {
    const struct rtab *t;
    const uint32_t *order;
    uint32_t n;
};

/* The last part is full-circle: merge the delta into it in memory. */
static int merge_last_part(MDB_txn *txn, MDB_dbi dbi, uint32_t bucket, unsigned klen,
                           const struct rows *d, uint64_t *chunks)
{
    struct chunk_stream st;
    struct chunk_writer w;
    MDB_cursor *cur;
    uint8_t *old = NULL; /* klen + 40 bytes per entry */
    size_t n = 0, cap = 0, stride = klen + 40;
    int rc = mdb_cursor_open(txn, dbi, &cur);

    if (rc)
        return rc;
    rc = chunk_stream_seek(&st, cur, bucket, PART_LAST, klen, NULL);
    while (rc == 0 && st.valid) {
        uint64_t c[5];
        if (!chunk_get_counters(st.pl, st.plen, c)) {
            rc = VIGIL_EBADMSG;
            break;
        }
        if (n == cap) {
            size_t nc = cap ? cap * 2 : 1024;
            uint8_t *o = realloc(old, nc * stride);
            if (!o) {
                rc = VIGIL_ENOMEM;
                break;
            }
            old = o;
            cap = nc;
        }
        memcpy(old + n * stride, st.r.key, klen);
        memcpy(old + n * stride + klen, c, 40);
        n++;
        rc = chunk_stream_next(&st, cur);
    }
    if (rc == 0)
        rc = delete_part(cur, bucket, PART_LAST);
    mdb_cursor_close(cur);
    if (rc == 0)
        rc = chunk_writer_begin(&w, txn, dbi, bucket, PART_LAST, klen);
    if (rc) {
        free(old);
        return rc;
    }
    size_t i = 0, j = 0;
    while (rc == 0 && (i < n || j < d->n)) {
        const uint8_t *ok = i < n ? old + i * stride : NULL;
        const uint8_t *dk = j < d->n ? ent_key(d->t, d->order[j]) : NULL;
        int c = !ok ? 1 : !dk ? -1 : memcmp(ok, dk, klen);
        const uint8_t *key = c <= 0 ? ok : dk;
        uint64_t sum[RC_COUNT] = {0};
        struct rctr x;
        if (c <= 0) {
            memcpy(x.v, ok + klen, sizeof x.v);
            ctr_add(sum, &x);
            i++;
        }
        if (c >= 0) {
            memcpy(x.v, ent_ctr(d->t, d->order[j]), sizeof x.v);
            ctr_add(sum, &x);
            j++;
        }
        uint8_t pl[5 * VARINT_MAX];
        rc = chunk_writer_add(&w, key, pl, chunk_put_counters(pl, sum));
    }
    int erc = chunk_writer_end(&w, rc == 0);
    *chunks += w.chunks;
    free(old);
    return rc ? rc : erc;
}

/* Writes a sorted delta as a new part of (tier, dim, bucket). */
static int write_rows(struct store *s, MDB_txn *txn, unsigned tier, unsigned dim, uint32_t bucket,
                      const struct rows *d, uint64_t *chunks)
{
    MDB_dbi dbi = s->db[rollup_db(tier, dim)];
    struct chunk_writer w;
    MDB_cursor *cur;
    uint8_t part;
    int rc;

    if (d->n == 0)
        return 0;
    if ((rc = mdb_cursor_open(txn, dbi, &cur)) != 0)
        return rc;
    rc = chunk_next_part(cur, bucket, &part);
    mdb_cursor_close(cur);
    if (rc)
        return rc;
    if (part == PART_LAST)
        return merge_last_part(txn, dbi, bucket, d->t->klen, d, chunks);
    if ((rc = chunk_writer_begin(&w, txn, dbi, bucket, part, d->t->klen)) != 0)
        return rc;
    for (uint32_t i = 0; i < d->n && rc == 0; i++) {
        uint8_t pl[5 * VARINT_MAX];
        rc = chunk_writer_add(&w, ent_key(d->t, d->order[i]), pl,
                              chunk_put_counters(pl, ent_ctr(d->t, d->order[i])));
    }
    int erc = chunk_writer_end(&w, rc == 0);
    *chunks += w.chunks;
    return rc ? rc : erc;
}

/* One dimension of a pending minute: the minute's delta, and the same
 * amounts for whatever hour and day buckets are already built. */
static int flush_dim(struct store *s, MDB_txn *txn, const struct pbucket *b, unsigned dim,
                     uint32_t *order, uint64_t *chunks)
{
    const struct rtab *t = &b->t[dim];
    uint32_t hour = floor_to(b->minute, 3600), day = floor_to(b->minute, 86400);
    struct rows d = {t, order, t->n};
    uint32_t *sub = NULL;
    int rc;

    if (t->n == 0)
        return 0;
    if ((rc = write_rows(s, txn, TIER_MINUTE, dim, b->minute, &d, chunks)) != 0)
        return rc;
    for (unsigned tier = TIER_HOUR; tier <= TIER_DAY && rc == 0; tier++) {
        uint32_t bucket = tier == TIER_HOUR ? hour : day;
        uint32_t n = 0;
        if (!sub && !(sub = malloc((size_t)t->n * sizeof *sub)))
            return VIGIL_ENOMEM;
        for (uint32_t i = 0; i < t->n; i++)
            if (tier_has(s, tier, bucket, dim, ent_key(t, order[i])))
                sub[n++] = order[i];
        struct rows late = {t, sub, n};
        rc = write_rows(s, txn, tier, dim, bucket, &late, chunks);
        if (rc == 0 && n && tier == TIER_DAY) { /* the day's ranking no longer holds */
            rc = rank_delete(txn, s->db[DB_RANK], bucket, dim);
            if (rank_continues(s->rank, bucket, dim))
                rank_invalidate(s->rank);
        }
    }
    free(sub);
    return rc;
}

/* Rewrites the last part of a minute's host index with the delta folded in. */
static int hostidx_merge_last(struct store *s, MDB_txn *txn, const struct pbucket *b)
{
    MDB_dbi dbi = s->db[DB_HOSTIDX];
    size_t n = b->nrefs, cap = b->nrefs + 1;
    struct href *r = malloc(cap * sizeof *r);
    uint8_t *keys = NULL, *enc = NULL;
    size_t nk = 0, ck = 0;
    struct chunk_stream st;
    struct chunk_writer w;
    MDB_cursor *cur;
    int rc;

    if (!r)
        return VIGIL_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        memcpy(r[i].host, b->refs[i].host, 16);
        r[i].off = b->refs[i].off;
        r[i].seq = b->refs[i].seq;
    }
    if ((rc = mdb_cursor_open(txn, dbi, &cur)) != 0) {
        free(r);
        return rc;
    }
    rc = chunk_stream_seek(&st, cur, b->minute, PART_LAST, 16, NULL);
    while (rc == 0 && st.valid) {
        nk = 0;
        if ((rc = hostidx_refs_decode(b->minute, st.pl, st.plen, &keys, &nk, &ck)) != 0)
            break;
        if (n + nk > cap) {
            size_t c = (n + nk) * 2;
            struct href *nr = realloc(r, c * sizeof *nr);
            if (!nr) {
                rc = VIGIL_ENOMEM;
                break;
            }
            r = nr;
            cap = c;
        }
        for (size_t i = 0; i < nk; i++, n++) {
            memcpy(r[n].host, st.r.key, 16);
            r[n].off = get_be32(keys + i * FLOWS_KEY_LEN) - b->minute;
            r[n].seq = get_be64(keys + i * FLOWS_KEY_LEN + 4);
        }
        rc = chunk_stream_next(&st, cur);
    }
    free(keys);
    if (rc == 0)
        rc = delete_part(cur, b->minute, PART_LAST);
    mdb_cursor_close(cur);
    if (rc == 0) {
        qsort(r, n, sizeof *r, href_cmp);
        rc = chunk_writer_begin(&w, txn, dbi, b->minute, PART_LAST, 16);
    }
    if (rc) {
        free(r);
        return rc;
    }
    for (size_t i = 0; i < n && rc == 0;) {
        size_t j = i;
        while (j < n && memcmp(r[j].host, r[i].host, 16) == 0)
            j++;
        uint8_t *e = realloc(enc, (j - i) * 2 * VARINT_MAX);
        if (!e) {
            rc = VIGIL_ENOMEM;
            break;
        }
        enc = e;
        rc = chunk_writer_add(&w, r[i].host, enc, refs_encode(r + i, j - i, enc));
        i = j;
    }
    int erc = chunk_writer_end(&w, rc == 0);
    free(r);
    free(enc);
    return rc ? rc : erc;
}

/* A pending minute's host index: one entry per host, in key order,
 * listing its flow rows in ingest order. */
static int flush_hostidx(struct store *s, MDB_txn *txn, const struct pbucket *b)
{
    struct sortkey *sk = NULL;
    struct href *hr = NULL;
    uint8_t *enc = NULL;
    struct chunk_writer w;
    MDB_cursor *cur;
    uint8_t part;
    int rc;

    if (b->nrefs == 0)
        return 0;
    if ((rc = mdb_cursor_open(txn, s->db[DB_HOSTIDX], &cur)) != 0)
        return rc;
    rc = chunk_next_part(cur, b->minute, &part);
    mdb_cursor_close(cur);
    if (rc)
        return rc;
    if (part == PART_LAST)
        return hostidx_merge_last(s, txn, b);

    sk = malloc((size_t)b->nrefs * sizeof *sk);
    hr = malloc((size_t)b->nrefs * sizeof *hr);
    enc = malloc((size_t)b->nrefs * 2 * VARINT_MAX);
    if (!sk || !hr || !enc) {
        rc = VIGIL_ENOMEM;
        goto out;
    }
    /* by host, then ingest order: a stable radix sort on IPv4 hosts,
     * else an introsort with the position as the last word */
    uint64_t *hw = malloc((size_t)b->nrefs * sizeof *hw);
    uint32_t *ord = malloc((size_t)b->nrefs * 2 * sizeof *ord);
    bool v4 = hw && ord;
    for (uint32_t i = 0; i < b->nrefs && v4; i++) {
        int64_t a = v4_word(b->refs[i].host);
        v4 = a >= 0;
        hw[i] = (uint64_t)a;
        ord[i] = i;
    }
    if (v4) {
        sortkey_radix(hw, ord, ord + b->nrefs, b->nrefs, 32);
        for (uint32_t i = 0; i < b->nrefs; i++) {
            sk[i].w[0] = 0;
            sk[i].w[1] = hw[ord[i]];
            sk[i].idx = ord[i];
        }
    } else {
        for (uint32_t i = 0; i < b->nrefs; i++) {
            sortkey_words(sk[i].w, b->refs[i].host, 16);
            sk[i].w[2] = i;
            sk[i].idx = i;
        }
        sortkey_sort(sk, b->nrefs, 3);
    }
    free(hw);
    free(ord);
    if ((rc = chunk_writer_begin(&w, txn, s->db[DB_HOSTIDX], b->minute, part, 16)) != 0)
        goto out;
    for (uint32_t i = 0; i < b->nrefs && rc == 0;) {
        uint32_t j = i;
        while (j < b->nrefs && sk[j].w[0] == sk[i].w[0] && sk[j].w[1] == sk[i].w[1]) {
            hr[j - i].off = b->refs[sk[j].idx].off;
            hr[j - i].seq = b->refs[sk[j].idx].seq;
            j++;
        }
        rc = chunk_writer_add(&w, b->refs[sk[i].idx].host, enc, refs_encode(hr, j - i, enc));
        i = j;
    }
    int erc = chunk_writer_end(&w, rc == 0);
    if (rc == 0)
        rc = erc;
out:
    free(sk);
    free(hr);
    free(enc);
    return rc;
}

/* Sorts a pending table's entries by key into order[]. */
/* IPv4-mapped address (::ffff:a.b.c.d) as its 32-bit value, or -1. */
static inline int64_t v4_word(const uint8_t *a)
{
    static const uint8_t prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (memcmp(a, prefix, 12) != 0)
        return -1;
    return (int64_t)get_be32(a + 12);
}

/* A group key as one word with the same order among keys of that form
 * (IPv4 hosts and pairs, ports), or false. */
static bool key_word(const uint8_t *k, unsigned klen, uint64_t *w, unsigned *bits)
{
    switch (klen) {
    case 3:
        *w = (uint64_t)k[0] << 16 | (uint64_t)k[1] << 8 | k[2];
        *bits = 24;
        return true;
    case 16: {
        int64_t a = v4_word(k);
        if (a < 0)
            return false;
        *w = (uint64_t)a;
        *bits = 32;
        return true;
    }
    case 32: {
        int64_t a = v4_word(k), b = v4_word(k + 16);
        if (a < 0 || b < 0)
            return false;
        *w = (uint64_t)a << 32 | (uint64_t)b;
        *bits = 64;
        return true;
    }
    default: return false;
    }
}

/* Sorts a pending table's entries by key into order[]: a radix sort when
 * every key fits a word (IPv4 traffic), else an introsort on word keys. */
static int sort_table(const struct rtab *t, uint32_t *order)
{
    uint64_t *w = malloc((size_t)t->n * sizeof *w);
    uint32_t *tmp = malloc((size_t)t->n * sizeof *tmp);
    unsigned bits = 0;
    bool words = true;

    if (!w || !tmp) {
        free(w);
        free(tmp);
        return VIGIL_ENOMEM;
    }
    for (uint32_t i = 0; i < t->n && words; i++)
        words = key_word(ent_key(t, i), t->klen, &w[i], &bits);
    if (words) {
        for (uint32_t i = 0; i < t->n; i++)
            order[i] = i;
        sortkey_radix(w, order, tmp, t->n, bits);
        free(w);
        free(tmp);
        return 0;
    }
    free(w);
    free(tmp);
    struct sortkey *sk = malloc((size_t)t->n * sizeof *sk);
    if (!sk)
        return VIGIL_ENOMEM;
    for (uint32_t i = 0; i < t->n; i++) {
        sortkey_words(sk[i].w, ent_key(t, i), t->klen);
        sk[i].idx = i;
    }
    sortkey_sort(sk, t->n, (t->klen + 7) / 8);
    for (uint32_t i = 0; i < t->n; i++)
        order[i] = sk[i].idx;
    free(sk);
    return 0;
}

static int flush_bucket(struct store *s, MDB_txn *txn, struct pbucket *b, uint64_t *written)
{
    uint32_t *order[DIM_COUNT] = {NULL};
    int rc = 0;

    for (unsigned d = 0; d < DIM_COUNT && rc == 0; d++) {
        const struct rtab *t = &b->t[d];
        if (t->n == 0)
            continue;
        if (!(order[d] = malloc((size_t)t->n * sizeof *order[d]))) {
            rc = VIGIL_ENOMEM;
            break;
        }
        if ((rc = sort_table(t, order[d])) != 0)
            break;
        uint64_t chunks = 0;
        rc = flush_dim(s, txn, b, d, order[d], &chunks);
        *written += t->n;
    }
    if (rc == 0)
        rc = flush_hostidx(s, txn, b);
    for (unsigned d = 0; d < DIM_COUNT; d++)
        free(order[d]);
    if (rc == 0) {
        uint8_t k[4], v[8];
        put_be32(k, b->minute);
        put_le64(v, s->seq);
        MDB_val kv = {4, k}, vv = {8, v};
        rc = mdb_put(txn, s->db[DB_RFLUSH], &kv, &vv, 0);
    }
    return rc;
}

/* First and last sequence in a journal DB; *empty when it has none. */
static int journal_span(MDB_txn *txn, MDB_dbi dbi, uint64_t *first, uint64_t *last, bool *empty)
{
    MDB_cursor *cur;
    MDB_val k, v;
    int rc = mdb_cursor_open(txn, dbi, &cur);
    if (rc)
        return rc;
    *empty = true;
    rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    if (rc == 0 && k.mv_size == 8) {
        *first = get_be64(k.mv_data);
        rc = mdb_cursor_get(cur, &k, &v, MDB_LAST);
        if (rc == 0 && k.mv_size == 8) {
            /* a damaged last run: at least its first sequence */
            if (journal_last_seq(&k, &v, last) != 0)
                *last = get_be64(k.mv_data);
            *empty = false;
        }
    }
    mdb_cursor_close(cur);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

/* Journal upkeep, in a flush transaction. Entries are never deleted one by
 * one: the journal DB not being appended to is emptied whole (mdb_drop)
 * once its last entry is below `below` (nothing pending needs it), and the
 * current one is rotated out when it holds JOURNAL_ROTATE entries and the
 * other is empty. Then rflush marks no journal entry can need any more are
 * deleted. *first gets the first journal sequence left, *jcur the journal
 * DB to append to from now on, *old_last the last sequence in the other
 * (0: empty). */
static int prune_journal(struct store *s, MDB_txn *txn, uint64_t below, uint64_t *first,
                         uint32_t *jcur, uint64_t *old_last)
{
    MDB_dbi cur_db = s->db[DB_JOURNAL0 + s->jcur], old_db = s->db[DB_JOURNAL0 + !s->jcur];
    uint64_t of = 0, ol = 0, cf = 0, cl = 0;
    bool oe, ce;
    MDB_cursor *cur;
    MDB_val k, v;
    int rc;

    *jcur = s->jcur;
    if ((rc = journal_span(txn, old_db, &of, &ol, &oe)) != 0 ||
        (rc = journal_span(txn, cur_db, &cf, &cl, &ce)) != 0)
        return rc;
    if (!oe && ol < below) {
        if ((rc = mdb_drop(txn, old_db, 0)) != 0)
            return rc;
        oe = true;
    }
    if (oe && !ce) {
        if (cl - cf + 1 >= JOURNAL_ROTATE) {
            *jcur = !s->jcur;
            if ((rc = store__put_meta_u32(s, txn, META_JCUR, *jcur)) != 0)
                return rc;
        }
    }
    *old_last = *jcur != s->jcur ? (ce ? 0 : cl) : (oe ? 0 : ol);
    *first = s->seq + 1;
    if (!oe && of < *first)
        *first = of;
    if (!ce && cf < *first)
        *first = cf;

    /* A minute flushed at F needs its mark only while journal entries at or
     * below F may remain; once the journal starts after F, a missing mark
     * (read as 0) means the same thing. */
    if ((rc = mdb_cursor_open(txn, s->db[DB_RFLUSH], &cur)) != 0)
        return rc;
    rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    while (rc == 0) {
        if (v.mv_size == 8 && get_le64(v.mv_data) < *first)
            rc = mdb_cursor_del(cur, 0);
        if (rc == 0)
            rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(cur);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

struct flush_done {
    uint64_t written, journal_first, jold_last;
    uint32_t jcur;
};

/* After the flush committed (under pend_lock): drop the flushed buckets. */
static void flush_after(struct store *s, void *arg)
{
    const struct flush_done *fd = arg;
    struct rollup_pending *p = s->pend;
    uint32_t w = 0;

    for (uint32_t i = 0; i < p->n; i++) {
        struct pbucket *b = p->b[i];
        if (b->flushing) {
            for (int d = 0; d < DIM_COUNT; d++)
                p->rows -= b->t[d].n;
            bucket_free(b);
        } else {
            p->b[w++] = b;
        }
    }
    p->n = w;
    s->journal_first = fd->journal_first;
    s->jcur = fd->jcur;
    s->jold_last = fd->jold_last;
    s->stats.flushes++;
    s->stats.rollup_rows_written += fd->written;
}

static void unmark(struct rollup_pending *p)
{
    for (uint32_t i = 0; i < p->n; i++)
        p->b[i]->flushing = false;
}

static uint64_t prune_target(const struct store *s);

/* One flush transaction over the buckets marked flushing. */
static int flush_txn(struct store *s)
{
    struct rollup_pending *p = s->pend;
    struct flush_done fd = {0};
    uint64_t below = prune_target(s);
    MDB_txn *txn;
    int rc;

    if ((rc = store__begin_write(s, &txn)) != 0)
        return rc;
    for (uint32_t i = 0; i < p->n && rc == 0; i++)
        if (p->b[i]->flushing && p->b[i]->min_seq != UINT64_MAX)
            rc = flush_bucket(s, txn, p->b[i], &fd.written);
    if (rc == 0)
        rc = prune_journal(s, txn, below, &fd.journal_first, &fd.jcur, &fd.jold_last);
    if (rc == 0)
        rc = store__put_meta_u64(s, txn, META_GEN, s->gen + 1);
    if (rc) {
        mdb_txn_abort(txn);
        return store__err(rc);
    }
    return store__commit(s, txn, s->gen + 1, flush_after, &fd);
}

/* Is a closed minute waiting, for flush_interval already? */
static bool flush_due(struct store *s)
{
    const struct rollup_pending *p = s->pend;
    uint32_t grace = (uint32_t)(s->cfg.close_grace_ns / NS_PER_SEC);
    uint32_t newest = ns_to_sec(s->max_end_ns);
    int64_t now = vigil_monotonic_ns();

    if (p->n == 0 || (uint64_t)p->b[0]->minute + 60 + grace > newest) {
        s->closed_since_mono = 0;
        return false;
    }
    if (!s->closed_since_mono)
        s->closed_since_mono = now;
    return now - s->closed_since_mono >= s->cfg.flush_interval_ns;
}

/* The journal may be pruned below this: the oldest contribution still
 * pending outside the flush in progress. */
static uint64_t prune_target(const struct store *s)
{
    const struct rollup_pending *p = s->pend;
    uint64_t below = s->seq + 1;
    for (uint32_t i = 0; i < p->n; i++)
        if (!p->b[i]->flushing && p->b[i]->min_seq < below)
            below = p->b[i]->min_seq;
    return below;
}

/* Marks what to flush in the next transaction; returns how many buckets.
 * *more: further buckets are due but did not fit. */
static uint32_t select_buckets(struct store *s, enum rollup_flush_mode mode, bool due, bool *more)
{
    struct rollup_pending *p = s->pend;
    uint32_t grace = (uint32_t)(s->cfg.close_grace_ns / NS_PER_SEC);
    uint32_t newest = ns_to_sec(s->max_end_ns);
    uint64_t cap = s->cfg.pending_max_rows, rows = 0, left = p->rows;
    bool over = p->rows > cap;
    uint32_t marked = 0;

    *more = false;
    for (uint32_t i = 0; i < p->n; i++) {
        struct pbucket *b = p->b[i];
        uint64_t n = 0;
        for (int d = 0; d < DIM_COUNT; d++)
            n += b->t[d].n;
        bool closed = (uint64_t)b->minute + 60 + grace <= newest;
        bool pick = mode == FLUSH_ALL || b->min_seq == UINT64_MAX || (due && closed) ||
                    (over && left > cap / 2) || p->n - i > PENDING_MAX_BUCKETS;
        if (!pick)
            continue;
        if (marked && rows + n > FLUSH_TXN_MAX_ROWS) {
            *more = true;
            break;
        }
        b->flushing = true;
        marked++;
        rows += n;
        left -= n;
    }
    return marked;
}

/* flush_txn, growing the map once if it filled up. */
static int flush_txn_grow(struct store *s)
{
    int rc = flush_txn(s);
    if (rc == STORE__EMAPFULL) {
        rc = store__grow(s, true);
        if (rc == 0)
            rc = flush_txn(s);
        if (rc == STORE__EMAPFULL)
            rc = VIGIL_EFULL;
    }
    return rc;
}

int rollup_flush(struct store *s, enum rollup_flush_mode mode)
{
    bool due = mode == FLUSH_ALL || flush_due(s);

    for (unsigned round = 0; round < 64; round++) {
        bool more;
        uint32_t n = select_buckets(s, mode, due, &more);
        bool droppable = s->jold_last && s->jold_last < prune_target(s);
        if (n == 0 && !droppable)
            break;
        int rc = flush_txn_grow(s);
        if (rc) {
            unmark(s->pend);
            return rc;
        }
        if (!more)
            break;
    }
    if (due)
        s->closed_since_mono = 0;
    return 0;
}

/* ---- hour and day builds -------------------------------------------------- */

static int first_bucket_from(MDB_txn *txn, MDB_dbi dbi, uint32_t from, uint32_t *out,
                             bool *found)
{
    MDB_cursor *cur;
    uint8_t kb[4];
    MDB_val k = {4, kb}, v;
    int rc = mdb_cursor_open(txn, dbi, &cur);
    if (rc)
        return rc;
    put_be32(kb, from);
    rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    if (rc == 0 && k.mv_size >= 4) {
        uint32_t b = get_be32(k.mv_data);
        if (!*found || b < *out)
            *out = b;
        *found = true;
    }
    mdb_cursor_close(cur);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

/* Does pending hold a minute in [from, from + span)? */
static bool pending_within(const struct rollup_pending *p, uint32_t from, uint32_t span)
{
    for (uint32_t i = bucket_lower(p, from); i < p->n; i++) {
        if ((uint64_t)p->b[i]->minute >= (uint64_t)from + span)
            return false;
        if (p->b[i]->min_seq != UINT64_MAX)
            return true;
    }
    return false;
}

/* Chooses the next bucket to build, if one is due. */
static int pick_job(struct store *s, MDB_txn *txn, struct compact_state *cs)
{
    uint32_t grace = (uint32_t)(s->cfg.close_grace_ns / NS_PER_SEC);
    uint32_t first = 0;
    bool found = false;
    int rc;

    memset(cs, 0, sizeof *cs);
    for (unsigned d = 0; d < DIM_COUNT; d++)
        if ((rc = first_bucket_from(txn, s->db[rollup_db(TIER_HOUR, d)], s->sealed_d, &first,
                                    &found)) != 0)
            return rc;
    /* A bucket whose minutes are still pending waits for their flush: built
     * now, it would take them as late deltas (correct, but more parts). */
    if (found && (uint64_t)floor_to(first, 86400) + 86400 <= s->sealed_h &&
        !pending_within(s->pend, floor_to(first, 86400), 86400)) {
        cs->tier = TIER_DAY;
        cs->bucket = floor_to(first, 86400);
        return 0;
    }
    found = false;
    for (unsigned d = 0; d < DIM_COUNT; d++)
        if ((rc = first_bucket_from(txn, s->db[rollup_db(TIER_MINUTE, d)], s->sealed_h, &first,
                                    &found)) != 0)
            return rc;
    if (found && (uint64_t)floor_to(first, 3600) + 3600 + grace <= ns_to_sec(s->max_end_ns) &&
        !pending_within(s->pend, floor_to(first, 3600), 3600)) {
        cs->tier = TIER_HOUR;
        cs->bucket = floor_to(first, 3600);
    }
    return 0;
}

struct compact_done {
    struct compact_state cs;
    uint32_t sealed_h, sealed_d;
    uint64_t rows;
};

static void compact_after(struct store *s, void *arg)
{
    const struct compact_done *cd = arg;
    s->cs = cd->cs;
    s->sealed_h = cd->sealed_h;
    s->sealed_d = cd->sealed_d;
    s->stats.compaction_rows += cd->rows;
    s->stats.sealed_hour_s = cd->sealed_h;
    s->stats.sealed_day_s = cd->sealed_d;
}

static int put_compact(struct store *s, MDB_txn *txn, const struct compact_state *cs)
{
    uint8_t buf[8 + GROUP_KEY_MAX];
    size_t n = 0;
    buf[n++] = cs->tier;
    buf[n++] = cs->dim;
    buf[n++] = cs->has_last;
    put_be32(buf + n, cs->bucket);
    n += 4;
    if (cs->tier && cs->dim < DIM_COUNT && cs->has_last) {
        memcpy(buf + n, cs->last, dim_klen[cs->dim]);
        n += dim_klen[cs->dim];
    }
    MDB_val k = {strlen(META_COMPACT), (void *)META_COMPACT}, v = {n, buf};
    return mdb_put(txn, s->db[DB_META], &k, &v, 0);
}

/* One dimension's merge of every part of the tier below, from cs->last on,
 * writing at most *budget groups as part 0 of the bucket. Sets *exhausted
 * when the dimension is complete. */
static int compact_dim(struct store *s, MDB_txn *txn, struct compact_state *cs, uint64_t *budget,
                       bool *exhausted, uint64_t *rows)
{
    unsigned tier = cs->tier, dim = cs->dim, klen = dim_klen[dim];
    uint32_t step = tier_secs[tier - 1], nsub = tier_secs[tier] / step;
    MDB_dbi src = s->db[rollup_db(tier - 1, dim)], dst = s->db[rollup_db(tier, dim)];
    struct chunk_stream *st = NULL;
    struct ltree lt = {0};
    struct chunk_writer w = {0};
    unsigned ns = 0, cap = 0, nw = (klen + 7) / 8;
    bool wopen = false;
    uint32_t x = UINT32_MAX;
    MDB_cursor *cur;
    int rc = mdb_cursor_open(txn, src, &cur);

    *exhausted = false;
    if (rc)
        return rc;
    /* a day's ranking sees every group of the dimension, or is not stored */
    bool ranked = tier == TIER_DAY && dim != DIM_APP;
    if (ranked && !cs->has_last)
        rank_begin(s->rank, cs->bucket, dim);
    else if (ranked && !rank_continues(s->rank, cs->bucket, dim))
        rank_invalidate(s->rank); /* resumed after a restart: the groups before are unseen */
    for (uint32_t i = 0; i < nsub && rc == 0; i++) {
        uint8_t parts[256];
        unsigned np;
        if ((rc = chunk_list_parts(cur, cs->bucket + i * step, parts, &np)) != 0)
            break;
        if (ns + np > cap) {
            unsigned c = (ns + np) * 2 + 16;
            struct chunk_stream *n1 = realloc(st, c * sizeof *n1);
            if (!n1) {
                rc = VIGIL_ENOMEM;
                break;
            }
            st = n1;
            cap = c;
        }
        for (unsigned p = 0; p < np && rc == 0; p++) {
            rc = chunk_stream_seek(&st[ns], cur, cs->bucket + i * step, parts[p], klen,
                                   cs->has_last ? cs->last : NULL);
            if (rc == 0 && st[ns].valid)
                ns++;
        }
    }
    if (rc == 0 && ns && ltree_init(&lt, ns, nw) != 0)
        rc = VIGIL_ENOMEM;
    if (rc == 0 && ns) {
        for (unsigned i = 0; i < ns; i++)
            sortkey_words(lt.w[i], st[i].r.key, klen);
        ltree_build(&lt);
        x = ltree_top(&lt);
        rc = chunk_writer_begin(&w, txn, dst, cs->bucket, 0, klen);
        wopen = rc == 0;
    }
    while (rc == 0 && x != UINT32_MAX && *budget > 0) {
        uint64_t sum[RC_COUNT] = {0}, gw[4];
        uint8_t group[GROUP_KEY_MAX];
        memcpy(group, st[x].r.key, klen);
        memcpy(gw, lt.w[x], sizeof gw);
        do {
            struct rctr c;
            if (!chunk_get_counters(st[x].pl, st[x].plen, c.v)) {
                rc = VIGIL_EBADMSG;
                break;
            }
            ctr_add(sum, &c);
            if ((rc = chunk_stream_next(&st[x], cur)) != 0)
                break;
            if (st[x].valid)
                sortkey_words(lt.w[x], st[x].r.key, klen);
            else
                lt.done[x] = 1;
            ltree_replay(&lt, x);
            x = ltree_top(&lt);
        } while (x != UINT32_MAX && sortkey_cmp(lt.w[x], gw, nw) == 0);
        if (rc)
            break;
        uint8_t pl[5 * VARINT_MAX];
        rc = chunk_writer_add(&w, group, pl, chunk_put_counters(pl, sum));
        if (ranked)
            rank_offer(s->rank, group, sum);
        memcpy(cs->last, group, klen);
        cs->has_last = true;
        (*budget)--;
        (*rows)++;
    }
    if (wopen) {
        int erc = chunk_writer_end(&w, rc == 0);
        if (rc == 0)
            rc = erc;
    }
    if (rc == 0 && x == UINT32_MAX) {
        *exhausted = true;
        if (ranked && rank_continues(s->rank, cs->bucket, dim))
            rc = rank_put(s->rank, txn, s->db[DB_RANK]);
    }
    mdb_cursor_close(cur);
    ltree_free(&lt);
    free(st);
    return rc;
}

/* One compaction transaction. *idle: nothing was due. */
static int compact_slice(struct store *s, bool *idle)
{
    struct compact_done cd = {.cs = s->cs, .sealed_h = s->sealed_h, .sealed_d = s->sealed_d};
    uint64_t budget = s->cfg.compact_slice_rows ? s->cfg.compact_slice_rows : 50000;
    MDB_txn *txn;
    int rc;

    *idle = false;
    if ((rc = store__begin_write(s, &txn)) != 0)
        return rc;
    if (!cd.cs.tier) {
        if ((rc = pick_job(s, txn, &cd.cs)) != 0)
            goto fail;
        if (!cd.cs.tier) {
            mdb_txn_abort(txn);
            *idle = true;
            return 0;
        }
    }
    while (rc == 0 && budget > 0 && cd.cs.tier) {
        bool exhausted;
        rc = compact_dim(s, txn, &cd.cs, &budget, &exhausted, &cd.rows);
        if (rc || !exhausted)
            break;
        cd.cs.dim++;
        cd.cs.has_last = false;
        if (cd.cs.dim == DIM_COUNT) {
            uint32_t end = cd.cs.bucket + tier_secs[cd.cs.tier];
            if (cd.cs.tier == TIER_HOUR) {
                cd.sealed_h = end;
                rc = store__put_meta_u32(s, txn, META_SEALED_H, end);
            } else {
                cd.sealed_d = end;
                rc = store__put_meta_u32(s, txn, META_SEALED_D, end);
            }
            memset(&cd.cs, 0, sizeof cd.cs);
        }
    }
    if (rc == 0)
        rc = put_compact(s, txn, &cd.cs);
    if (rc)
        goto fail;
    if ((rc = store__commit(s, txn, s->gen, compact_after, &cd)) != 0)
        rank_invalidate(s->rank); /* it saw groups the store does not have */
    return rc;
fail:
    mdb_txn_abort(txn);
    rank_invalidate(s->rank);
    return store__err(rc);
}

int rollup_compact(struct store *s, int64_t deadline_mono)
{
    do {
        if (!s->cs.tier && s->compact_checked_gen == s->gen)
            return 0; /* nothing was due, and nothing changed since */
        bool idle;
        int rc = compact_slice(s, &idle);
        if (rc == STORE__EMAPFULL) {
            rc = store__grow(s, true);
            if (rc == 0)
                rc = compact_slice(s, &idle);
            if (rc == STORE__EMAPFULL)
                rc = VIGIL_EFULL;
        }
        if (rc)
            return rc;
        if (idle) {
            s->compact_checked_gen = s->gen;
            return 0;
        }
    } while (vigil_monotonic_ns() < deadline_mono);
    return 0;
}

/* ---- rebuild ---------------------------------------------------------------- */

struct mark {
    uint32_t minute;
    uint64_t seq;
};

/* The sequence minute m was last flushed at (marks sorted by minute; 0: never). */
static uint64_t flushed_at(const struct mark *marks, size_t nm, uint32_t m)
{
    size_t lo = 0, hi = nm;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (marks[mid].minute < m)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < nm && marks[lo].minute == m ? marks[lo].seq : 0;
}

int rollup_rebuild(struct store *s, MDB_txn *txn)
{
    struct mark *marks = NULL;
    size_t nm = 0, cm = 0;
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    uint64_t added = 0, bad = 0;
    int rc;

    rollup_pending_clear(s->pend);
    if ((rc = mdb_cursor_open(txn, s->db[DB_RFLUSH], &cur)) != 0)
        return store__err(rc);
    rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    while (rc == 0) {
        if (k.mv_size == 4 && v.mv_size == 8) {
            if (nm == cm) {
                size_t c = cm ? cm * 2 : 256;
                struct mark *nmk = realloc(marks, c * sizeof *nmk);
                if (!nmk) {
                    rc = VIGIL_ENOMEM;
                    break;
                }
                marks = nmk;
                cm = c;
            }
            marks[nm++] = (struct mark){get_be32(k.mv_data), get_le64(v.mv_data)};
        }
        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(cur);
    cur = NULL;
    if (rc != MDB_NOTFOUND)
        goto out;

    s->journal_first = s->seq + 1;
    s->jold_last = 0;
    for (unsigned j = 0; j < 2 && (rc == 0 || rc == MDB_NOTFOUND); j++) {
        if ((rc = mdb_cursor_open(txn, s->db[DB_JOURNAL0 + j], &cur)) != 0)
            goto out;
        rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
        if (rc == 0 && k.mv_size == 8 && get_be64(k.mv_data) < s->journal_first)
            s->journal_first = get_be64(k.mv_data);
        while (rc == 0) {
            struct journal_reader jr;
            struct contrib c;
            int got = journal_reader_init(&jr, &k, &v);
            while (got == 0 && (got = journal_reader_next(&jr, &c)) == 1) {
                got = 0;
                if (j != s->jcur && c.seq > s->jold_last)
                    s->jold_last = c.seq;
                if (c.seq > flushed_at(marks, nm, contrib_minute(&c))) {
                    if ((rc = rollup_pending_reserve(s->pend, &c, 1)) != 0)
                        break;
                    rollup_pending_add(s->pend, &c);
                    added++;
                }
            }
            if (rc)
                break;
            if (got < 0)
                bad++;
            rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
        }
        mdb_cursor_close(cur);
        cur = NULL;
    }
    if (rc == MDB_NOTFOUND)
        rc = 0;
    if (bad)
        log_err("store: %llu damaged journal entries skipped: rollups may miss them",
                (unsigned long long)bad);
    if (added)
        log_info("store: %llu journal entries back in the open rollups",
                 (unsigned long long)added);
out:
    if (cur)
        mdb_cursor_close(cur);
    free(marks);
    return store__err(rc);
}
