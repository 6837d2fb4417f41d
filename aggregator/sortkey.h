/* sortkey.h — sorting group keys fast: a key of up to 32 bytes becomes up
 * to four big-endian 64-bit words, so comparing two keys is a few integer
 * compares instead of a memcmp call, and an introsort (quicksort, heapsort
 * past a depth bound, so crafted keys cannot make it quadratic) orders them.
 * The order is the same as memcmp's on the key bytes. */
#ifndef VIGIL_AGG_SORTKEY_H
#define VIGIL_AGG_SORTKEY_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct sortkey {
    uint64_t w[4];
    uint32_t idx; /* what the key belongs to */
};

/* Words of a key of klen (<= 32) bytes, zero-padded. */
static inline void sortkey_words(uint64_t w[4], const uint8_t *k, unsigned klen)
{
    uint8_t b[32] = {0};
    memcpy(b, k, klen);
    for (int i = 0; i < 4; i++) {
        uint64_t v;
        memcpy(&v, b + 8 * i, 8);
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        v = __builtin_bswap64(v); /* big-endian: numeric order = byte order */
        w[i] = v;
    }
}

static inline int sortkey_cmp(const uint64_t *a, const uint64_t *b, unsigned nw)
{
    for (unsigned i = 0; i < nw; i++)
        if (a[i] != b[i])
            return a[i] < b[i] ? -1 : 1;
    return 0;
}

/* Sorts a[0..n) by w (the first nw words, 1..4), ascending. */
void sortkey_sort(struct sortkey *a, size_t n, unsigned nw);

/* Stable LSD radix sort of idx[0..n) by key[idx] over its low `bits` bits
 * (multiple of 8, <= 64): linear time for the common case of keys that fit
 * in a word (IPv4 hosts and pairs, ports). tmp holds n entries. Equal keys
 * keep their order. */
void sortkey_radix(const uint64_t *key, uint32_t *idx, uint32_t *tmp, size_t n, unsigned bits);

#endif

/* A loser tree over k sorted inputs (a k-way merge in log2(k) compares per
 * element). Input i's current key is w[i] (nw words); done[i] once it is
 * exhausted. After changing an input's key (or marking it done), replay it. */
struct ltree {
    uint32_t *node;   /* node[0]: the winner; node[1..k): losers */
    uint32_t *win;    /* build scratch: 2k */
    uint64_t (*w)[4];
    uint8_t *done;
    unsigned k, nw;
};

/* nw is 1, 2 or 4. Returns 0 or -1 (no memory; then ltree_free is done). */
int ltree_init(struct ltree *t, unsigned k, unsigned nw);
void ltree_build(struct ltree *t);
void ltree_replay(struct ltree *t, uint32_t i);
void ltree_free(struct ltree *t);

/* The input holding the smallest key; UINT32_MAX when all are done. */
static inline uint32_t ltree_top(const struct ltree *t)
{
    uint32_t x = t->k ? t->node[0] : UINT32_MAX;
    return x == UINT32_MAX || t->done[x] ? UINT32_MAX : x;
}

#endif
