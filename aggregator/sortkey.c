/* sortkey.c — introsort over word keys (see sortkey.h). */
#include "sortkey.h"

#define INSERTION_MAX 16

static inline int lt(const struct sortkey *a, const struct sortkey *b, unsigned nw)
{
    return sortkey_cmp(a->w, b->w, nw) < 0;
}

static inline void swap(struct sortkey *a, struct sortkey *b)
{
    struct sortkey t = *a;
    *a = *b;
    *b = t;
}

static void insertion(struct sortkey *a, size_t n, unsigned nw)
{
    for (size_t i = 1; i < n; i++) {
        struct sortkey x = a[i];
        size_t j = i;
        while (j > 0 && lt(&x, &a[j - 1], nw)) {
            a[j] = a[j - 1];
            j--;
        }
        a[j] = x;
    }
}

static void sift(struct sortkey *a, size_t n, size_t i, unsigned nw)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < n && lt(&a[m], &a[l], nw))
            m = l;
        if (r < n && lt(&a[m], &a[r], nw))
            m = r;
        if (m == i)
            return;
        swap(&a[i], &a[m]);
        i = m;
    }
}

static void heapsort(struct sortkey *a, size_t n, unsigned nw)
{
    for (size_t i = n / 2; i-- > 0;)
        sift(a, n, i, nw);
    for (size_t i = n; i-- > 1;) {
        swap(&a[0], &a[i]);
        sift(a, i, 0, nw);
    }
}

static void intro(struct sortkey *a, size_t n, unsigned nw, unsigned depth)
{
    while (n > INSERTION_MAX) {
        if (depth-- == 0) {
            heapsort(a, n, nw);
            return;
        }
        /* median of three to a[0], then Hoare partition */
        size_t mid = n / 2;
        if (lt(&a[mid], &a[0], nw))
            swap(&a[mid], &a[0]);
        if (lt(&a[n - 1], &a[0], nw))
            swap(&a[n - 1], &a[0]);
        if (lt(&a[n - 1], &a[mid], nw))
            swap(&a[n - 1], &a[mid]);
        swap(&a[0], &a[mid]);
        struct sortkey p = a[0];
        size_t i = 0, j = n;
        for (;;) {
            do
                i++;
            while (i < n && lt(&a[i], &p, nw));
            do
                j--;
            while (lt(&p, &a[j], nw));
            if (i >= j)
                break;
            swap(&a[i], &a[j]);
        }
        swap(&a[0], &a[j]);
        /* recurse into the smaller side, loop on the larger */
        if (j < n - j - 1) {
            intro(a, j, nw, depth);
            a += j + 1;
            n -= j + 1;
        } else {
            intro(a + j + 1, n - j - 1, nw, depth);
            n = j;
        }
    }
    insertion(a, n, nw);
}

void sortkey_sort(struct sortkey *a, size_t n, unsigned nw)
{
    unsigned depth = 0;
    for (size_t m = n; m > 1; m >>= 1)
        depth += 2;
    intro(a, n, nw, depth);
}

void sortkey_radix(const uint64_t *key, uint32_t *idx, uint32_t *tmp, size_t n, unsigned bits)
{
    uint32_t *src = idx, *dst = tmp;
    for (unsigned shift = 0; shift < bits; shift += 8) {
        size_t count[257] = {0};
        for (size_t i = 0; i < n; i++)
            count[((key[src[i]] >> shift) & 0xff) + 1]++;
        if (count[((key[src[0]] >> shift) & 0xff) + 1] == n)
            continue; /* every key has the same digit here */
        for (unsigned d = 0; d < 256; d++)
            count[d + 1] += count[d];
        for (size_t i = 0; i < n; i++)
            dst[count[(key[src[i]] >> shift) & 0xff]++] = src[i];
        uint32_t *t = src;
        src = dst;
        dst = t;
    }
    if (src != idx)
        memcpy(idx, src, n * sizeof *idx);
}

/* ---- loser tree ------------------------------------------------------------ */

#include <stdlib.h>

static inline int beats(const struct ltree *t, uint32_t a, uint32_t b)
{
    if (t->done[a])
        return 0;
    if (t->done[b])
        return 1;
    return sortkey_cmp(t->w[a], t->w[b], t->nw) < 0;
}

int ltree_init(struct ltree *t, unsigned k, unsigned nw)
{
    t->k = k;
    t->nw = nw;
    t->node = malloc((k ? k : 1) * sizeof *t->node);
    t->win = malloc(2 * (k ? k : 1) * sizeof *t->win);
    t->w = malloc((k ? k : 1) * sizeof *t->w);
    t->done = calloc(k ? k : 1, 1);
    if (!t->node || !t->win || !t->w || !t->done) {
        ltree_free(t);
        return -1;
    }
    return 0;
}

void ltree_build(struct ltree *t)
{
    unsigned k = t->k;
    if (k == 0)
        return;
    if (k == 1) {
        t->node[0] = 0;
        return;
    }
    /* winners of each subtree, bottom-up; leaves sit at k..2k-1 */
    uint32_t *win = t->win;
    for (unsigned i = 0; i < k; i++)
        win[k + i] = i;
    for (unsigned p = k - 1; p >= 1; p--) {
        uint32_t a = win[2 * p], b = win[2 * p + 1];
        if (beats(t, b, a)) {
            win[p] = b;
            t->node[p] = a;
        } else {
            win[p] = a;
            t->node[p] = b;
        }
    }
    t->node[0] = win[1];
}

/* Branch-free "a beats b" for n words: a is not done, and b is done or a's
 * key is smaller (an exhausted input keeps its last key). The
 * compare is the merge's inner loop; its outcome is data-dependent, so
 * mispredicted branches would dominate. */
static inline unsigned beats_n(const struct ltree *t, uint32_t a, uint32_t b, unsigned n)
{
    const uint64_t *x = t->w[a], *y = t->w[b];
    unsigned lt = 0, eq = 1;
    for (unsigned j = 0; j < n; j++) {
        lt |= eq & (x[j] < y[j]);
        eq &= x[j] == y[j];
    }
    unsigned da = t->done[a] & 1u, db = t->done[b] & 1u;
    return (da ^ 1u) & (lt | db);
}

/* One replay with the word count fixed at compile time (N = 1, 2, 4), so
 * the compare unrolls. */
#define REPLAY(N)                                                                  \
    static void replay_##N(struct ltree *t, uint32_t i)                             \
    {                                                                               \
        uint32_t cand = i;                                                          \
        for (unsigned p = (t->k + i) / 2; p >= 1; p /= 2) {                         \
            uint32_t l = t->node[p];                                                \
            uint32_t m = 0u - beats_n(t, l, cand, N); /* ones: the loser wins */   \
            t->node[p] = (cand & m) | (l & ~m);                                     \
            cand = (l & m) | (cand & ~m);                                           \
        }                                                                           \
        t->node[0] = cand;                                                          \
    }
REPLAY(1)
REPLAY(2)
REPLAY(4)

void ltree_replay(struct ltree *t, uint32_t i)
{
    switch (t->nw) {
    case 1: replay_1(t, i); return;
    case 2: replay_2(t, i); return;
    default: replay_4(t, i); return;
    }
}

void ltree_free(struct ltree *t)
{
    free(t->node);
    free(t->win);
    free(t->w);
    free(t->done);
    t->win = NULL;
    t->node = NULL;
    t->w = NULL;
    t->done = NULL;
}
