/* topk.c — a bounded heap of the best groups (see topk.h). */
#include "topk.h"

#include <string.h>

bool topk_before(const struct topk_ent *a, const struct topk_ent *b, unsigned klen)
{
    if (a->m != b->m)
        return a->m > b->m;
    return memcmp(a->key, b->key, klen) < 0;
}

static void swap(struct topk_ent *a, struct topk_ent *b)
{
    struct topk_ent t = *a;
    *a = *b;
    *b = t;
}

static void sift_down(struct topk_ent *h, size_t n, size_t i, unsigned klen)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, w = i;
        if (l < n && topk_before(&h[w], &h[l], klen))
            w = l;
        if (r < n && topk_before(&h[w], &h[r], klen))
            w = r;
        if (w == i)
            return;
        swap(&h[i], &h[w]);
        i = w;
    }
}

void topk_offer(struct topk_ent *h, size_t *n, size_t k, const uint8_t *key,
                const struct rctr *c, uint64_t m, unsigned klen)
{
    if (*n == k) {
        /* most groups of a long stream rank after the worst kept: one compare */
        if (m < h[0].m || (m == h[0].m && memcmp(key, h[0].key, klen) >= 0))
            return;
        h[0].m = m;
        h[0].c = *c;
        memcpy(h[0].key, key, klen);
        sift_down(h, *n, 0, klen);
        return;
    }
    size_t i = (*n)++;
    h[i].m = m;
    h[i].c = *c;
    memcpy(h[i].key, key, klen);
    while (i > 0 && topk_before(&h[(i - 1) / 2], &h[i], klen)) {
        swap(&h[(i - 1) / 2], &h[i]);
        i = (i - 1) / 2;
    }
}

void topk_sort(struct topk_ent *h, size_t n, unsigned klen)
{
    /* the root is the worst: move it to the end, again and again */
    for (size_t end = n; end > 1; end--) {
        swap(&h[0], &h[end - 1]);
        sift_down(h, end - 1, 0, klen);
    }
}
