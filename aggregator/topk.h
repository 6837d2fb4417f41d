/* topk.h — the best k groups of a stream by one metric, in the order top
 * answers and day rankings share: metric descending, then key ascending
 * (a total order, so the best k of a set are always the same rows). */
#ifndef VIGIL_TOPK_H
#define VIGIL_TOPK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rollup.h"
#include "store_int.h"

struct topk_ent {
    uint64_t m; /* the metric ordered by */
    struct rctr c;
    uint8_t key[GROUP_KEY_MAX];
};

/* Does a rank before b? */
bool topk_before(const struct topk_ent *a, const struct topk_ent *b, unsigned klen);
/* Offers a group to the heap h of *n entries (at most k; the worst at the
 * root). */
void topk_offer(struct topk_ent *h, size_t *n, size_t k, const uint8_t *key,
                const struct rctr *c, uint64_t m, unsigned klen);
/* Sorts the heap's entries best first. */
void topk_sort(struct topk_ent *h, size_t n, unsigned klen);

#endif
