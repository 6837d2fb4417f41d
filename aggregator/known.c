/* known.c — the set of (host, destination) pairs seen, with forgetting
 * (see known.h for the contract). */
#include "known.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "clock.h"
#include "detect.h"

#define DAY_NS (86400 * NS_PER_SEC)
/* A slot is one word, so a lookup touches one cache line: bit 0 marks it
 * used, bit 1 is the follow mark, bits 2-17 the day last written, the rest
 * (46 bits, also the probe start) the pair's fingerprint. */
#define KNOWN_USED UINT64_C(1)
#define KNOWN_FOLLOWED UINT64_C(2)
#define DAY_SHIFT 2
#define DAY_BITS (UINT64_C(0xffff) << DAY_SHIFT)
#define FP_BITS (~UINT64_C(0) << 18)
/* Pairs waiting for the next write: at most a quarter of the capacity;
 * the engine writes once a second or when half of that waits. Each write
 * dirties the B-tree leaves its keys fall on, so fewer, larger writes cost
 * less per pair. */
#define PENDING_MIN 4096u
/* Stored pairs a sweep looks at per write: bounds the write's length. */
#define SWEEP_SLICE 20000u

struct pending {
    struct vigil_addr host, dst; /* together: the key */
    uint32_t t_s;
};

struct known {
    uint64_t *slot; /* mask + 1 slots (see KNOWN_USED); 0: empty */
    uint32_t mask, n, cap;
    uint16_t refresh_days, keep_days;
    uint16_t checked_day; /* the event day known_advance last looked at */
    uint16_t oldest_day;  /* no live pair is older (a lower bound) */
    struct pending *pending;
    uint32_t n_pending, pending_cap;
    /* the database's sweep: pairs last seen before cutoff are deleted */
    bool sweeping, sweep_started;
    uint16_t sweep_cutoff;
    uint8_t sweep_next[32]; /* the key the next slice starts at */
    struct detect_stats *stats;
};

static uint16_t day_of(int64_t t_ns)
{
    int64_t d = t_ns / DAY_NS;
    return (uint16_t)(d < 0 ? 0 : d > UINT16_MAX ? UINT16_MAX : d);
}

static uint64_t fingerprint(uint64_t hh, uint64_t hd)
{
    uint64_t x = hh ^ (hd * 0x9e3779b97f4a7c15ULL);
    x ^= x >> 31;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 29;
    return x & FP_BITS;
}

static uint16_t day_in(uint64_t slot)
{
    return (uint16_t)((slot & DAY_BITS) >> DAY_SHIFT);
}

static uint64_t with_day(uint64_t slot, uint16_t d)
{
    return (slot & ~DAY_BITS) | (uint64_t)d << DAY_SHIFT;
}

/* The slot holding fingerprint f, or the empty slot where it would go. */
static uint32_t slot_of(const uint64_t *slot, uint32_t mask, uint64_t f)
{
    for (uint32_t i = (uint32_t)(f >> 32) & mask;; i = (i + 1) & mask)
        if (slot[i] == 0 || (slot[i] & FP_BITS) == f)
            return i;
}

struct known *known_create(uint64_t cap, int64_t keep_ns, struct detect_stats *stats)
{
    struct known *k = calloc(1, sizeof *k);
    if (!k)
        return NULL;
    if (cap < 1024)
        cap = 1024;
    if (cap > (1u << 30))
        cap = 1u << 30;
    k->cap = (uint32_t)cap;
    k->stats = stats;
    int64_t keep_days = keep_ns / DAY_NS;
    k->keep_days = (uint16_t)(keep_days < 1 ? 1 : keep_days > 30000 ? 30000 : keep_days);
    k->refresh_days = k->keep_days / 8 > 1 ? k->keep_days / 8 : 1;
    k->oldest_day = UINT16_MAX;
    k->pending_cap = k->cap / 4 > PENDING_MIN ? k->cap / 4 : PENDING_MIN;
    k->mask = 1023;
    while (k->mask + 1 < 2 * k->cap) /* at most half full: short probe runs */
        k->mask = k->mask * 2 + 1;
    k->slot = calloc((size_t)k->mask + 1, sizeof *k->slot);
    k->pending = calloc(k->pending_cap, sizeof *k->pending);
    if (!k->slot || !k->pending) {
        known_destroy(k);
        return NULL;
    }
    return k;
}

void known_destroy(struct known *k)
{
    if (!k)
        return;
    free(k->slot);
    free(k->pending);
    free(k);
}

/* Adds f (last written on day d); returns its slot, or -1 when full. */
static int64_t insert(struct known *k, uint64_t f, uint16_t d)
{
    uint32_t i = slot_of(k->slot, k->mask, f);
    if (k->slot[i])
        return i;
    if (k->n >= k->cap) {
        k->stats->known_full++;
        return -1;
    }
    k->slot[i] = with_day(f | KNOWN_USED, d);
    k->n++;
    k->stats->known_dsts++;
    if (d < k->oldest_day)
        k->oldest_day = d;
    return i;
}

int known_load(struct known *k, MDB_txn *txn, MDB_dbi db, const struct hash_key *hk)
{
    MDB_cursor *cur;
    MDB_val key, v;
    int rc = mdb_cursor_open(txn, db, &cur);
    if (rc)
        return rc;
    for (rc = mdb_cursor_get(cur, &key, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &key, &v, MDB_NEXT)) {
        if (key.mv_size != 32 || (v.mv_size != 4 && v.mv_size != 8))
            continue; /* damaged: not trusted */
        const uint8_t *kp = key.mv_data, *vp = v.mv_data;
        uint32_t last_s = get_be32(vp + (v.mv_size == 8 ? 4 : 0));
        insert(k, fingerprint(hash_siphash13(hk, kp, 16), hash_siphash13(hk, kp + 16, 16)),
               day_of((int64_t)last_s * NS_PER_SEC));
    }
    mdb_cursor_close(cur);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

static void queue(struct known *k, const struct vigil_addr *host, const struct vigil_addr *dst,
                  int64_t t_ns)
{
    if (k->n_pending >= k->pending_cap) {
        k->stats->known_full++; /* remembered until a restart, not stored */
        return;
    }
    struct pending *p = &k->pending[k->n_pending++];
    p->host = *host;
    p->dst = *dst;
    p->t_s = (uint32_t)(t_ns / NS_PER_SEC);
}

enum bl_dst known_check(struct known *k, const struct vigil_addr *host, uint64_t hh,
                        const struct vigil_addr *dst, uint64_t hd, int64_t t_ns)
{
    uint64_t f = fingerprint(hh, hd);
    uint16_t today = day_of(t_ns);
    uint32_t i = slot_of(k->slot, k->mask, f);
    uint64_t v = k->slot[i];
    if (v) {
        if (today >= day_in(v) + k->refresh_days) { /* seen again: moves its forgetting on */
            k->slot[i] = with_day(v, today);
            queue(k, host, dst, t_ns);
        }
        return v & KNOWN_FOLLOWED ? BL_DST_FOLLOWED : BL_DST_KNOWN;
    }
    if (insert(k, f, today) >= 0)
        queue(k, host, dst, t_ns);
    return BL_DST_NEW;
}

void known_follow(struct known *k, uint64_t hh, uint64_t hd, bool on)
{
    uint32_t i = slot_of(k->slot, k->mask, fingerprint(hh, hd));
    if (k->slot[i])
        k->slot[i] = on ? k->slot[i] | KNOWN_FOLLOWED : k->slot[i] & ~KNOWN_FOLLOWED;
}

void known_prefetch(const struct known *k, uint64_t hh, uint64_t hd)
{
    __builtin_prefetch(&k->slot[(uint32_t)(fingerprint(hh, hd) >> 32) & k->mask]);
}

/* Rebuilds the set without the pairs last written before cutoff (linear
 * probing has no deletion: survivors are inserted into a fresh array). On
 * no memory for it, keeps everything until the next day. */
static void forget_before(struct known *k, uint16_t cutoff)
{
    size_t slots = (size_t)k->mask + 1;
    uint64_t *fresh = calloc(slots, sizeof *fresh);
    if (!fresh)
        return;
    uint32_t n = 0;
    uint16_t oldest = UINT16_MAX;
    for (size_t i = 0; i < slots; i++) {
        uint64_t v = k->slot[i];
        if (!v || day_in(v) < cutoff)
            continue;
        fresh[slot_of(fresh, k->mask, v & FP_BITS)] = v;
        n++;
        if (day_in(v) < oldest)
            oldest = day_in(v);
    }
    free(k->slot);
    k->slot = fresh;
    k->stats->known_dsts -= k->n - n;
    k->n = n;
    k->oldest_day = oldest;
}

void known_advance(struct known *k, int64_t newest_ns)
{
    uint16_t today = day_of(newest_ns);
    if (today == k->checked_day)
        return;
    k->checked_day = today;
    if (today < k->keep_days)
        return;
    uint16_t cutoff = (uint16_t)(today - k->keep_days);
    if (k->oldest_day < cutoff)
        forget_before(k, cutoff);
    if (!k->sweeping || cutoff > k->sweep_cutoff) { /* the stored pairs follow */
        k->sweeping = true;
        k->sweep_started = false;
        k->sweep_cutoff = cutoff;
    }
}

/* Host then destination, as big-endian words: the key's order, without a
 * memcmp call per comparison (a sort makes millions). */
static int cmp_pending(const void *a, const void *b)
{
    const uint8_t *x = a, *y = b;
    for (unsigned i = 0; i < 32; i += 8) {
        uint64_t u = get_be64(x + i), w = get_be64(y + i);
        if (u != w)
            return u < w ? -1 : 1;
    }
    return 0;
}

/* One slice of the sweep: deletes stored pairs last seen before the
 * cutoff, from sweep_next on. The sweep moves on even if the write then
 * fails: pairs a failed slice left are deleted by the next day's sweep
 * (and dropped from memory at load and advance all the same). */
static int sweep_slice(struct known *k, MDB_txn *txn, MDB_dbi db)
{
    MDB_cursor *cur;
    MDB_val key = {.mv_size = 32, .mv_data = k->sweep_next}, v;
    int rc = mdb_cursor_open(txn, db, &cur);
    if (rc)
        return rc;
    rc = k->sweep_started ? mdb_cursor_get(cur, &key, &v, MDB_SET_RANGE)
                          : mdb_cursor_get(cur, &key, &v, MDB_FIRST);
    for (unsigned seen = 0; rc == 0 && seen < SWEEP_SLICE; seen++) {
        if (key.mv_size == 32 && (v.mv_size == 4 || v.mv_size == 8)) {
            const uint8_t *vp = v.mv_data;
            uint32_t last_s = get_be32(vp + (v.mv_size == 8 ? 4 : 0));
            if (day_of((int64_t)last_s * NS_PER_SEC) < k->sweep_cutoff &&
                (rc = mdb_cursor_del(cur, 0)) != 0)
                break;
        }
        rc = mdb_cursor_get(cur, &key, &v, MDB_NEXT);
    }
    if (rc == 0 && key.mv_size == 32) {
        memcpy(k->sweep_next, key.mv_data, 32); /* the next slice starts here */
        k->sweep_started = true;
    } else if (rc == MDB_NOTFOUND) {
        rc = 0;
        k->sweeping = false;
        k->sweep_started = false;
    }
    mdb_cursor_close(cur);
    return rc;
}

int known_persist(struct known *k, MDB_txn *txn, MDB_dbi db)
{
    uint8_t key[32], val[8];
    qsort(k->pending, k->n_pending, sizeof *k->pending, cmp_pending);
    _Static_assert(offsetof(struct pending, dst) == 16, "host and dst adjacent");
    for (uint32_t i = 0; i < k->n_pending; i++) {
        const struct pending *p = &k->pending[i];
        memcpy(key, p->host.b, 16);
        memcpy(key + 16, p->dst.b, 16);
        put_be32(val, p->t_s);
        put_be32(val + 4, p->t_s);
        MDB_val kv = {.mv_size = 32, .mv_data = key}, vv = {.mv_size = 8, .mv_data = val};
        int rc = mdb_put(txn, db, &kv, &vv, MDB_NOOVERWRITE);
        if (rc == MDB_KEYEXIST) { /* seen before: keep its first sighting, move the last */
            const uint8_t *old = vv.mv_data;
            uint32_t first = (vv.mv_size == 4 || vv.mv_size == 8) ? get_be32(old) : p->t_s;
            uint32_t last = vv.mv_size == 8 ? get_be32(old + 4) : first;
            if (last >= p->t_s)
                continue;
            put_be32(val, first);
            put_be32(val + 4, p->t_s);
            vv = (MDB_val){.mv_size = 8, .mv_data = val};
            rc = mdb_put(txn, db, &kv, &vv, 0);
        }
        if (rc)
            return rc;
    }
    return k->sweeping ? sweep_slice(k, txn, db) : 0;
}

void known_persisted(struct known *k)
{
    k->n_pending = 0;
}

bool known_pending(const struct known *k)
{
    return k->n_pending || k->sweeping;
}

bool known_pending_full(const struct known *k)
{
    return k->n_pending >= k->pending_cap / 2;
}
