/* scheduler.c — binary min-heap of sessions and their slab allocator. */
#include "scheduler.h"

#include "err.h"

#include <stdlib.h>

#define SLAB_SESSIONS 1024

void sched_init(struct sched *h)
{
    *h = (struct sched){0};
}

void sched_destroy(struct sched *h)
{
    if (!h)
        return;
    for (size_t i = 0; i < h->n_slabs; i++)
        free(h->slabs[i]);
    free(h->slabs);
    free(h->heap);
    *h = (struct sched){0};
}

struct session *sched_alloc(struct sched *h)
{
    if (!h->free) {
        if (h->n_slabs == h->cap_slabs) {
            size_t nc = h->cap_slabs ? 2 * h->cap_slabs : 16;
            void **ns = realloc(h->slabs, nc * sizeof *ns);
            if (!ns)
                return NULL;
            h->slabs = ns;
            h->cap_slabs = nc;
        }
        struct session *slab = calloc(SLAB_SESSIONS, sizeof *slab);
        if (!slab)
            return NULL;
        h->slabs[h->n_slabs++] = slab;
        for (size_t i = SLAB_SESSIONS; i-- > 0;) {
            slab[i].next_free = h->free;
            h->free = &slab[i];
        }
    }
    struct session *s = h->free;
    h->free = s->next_free;
    s->next_free = NULL;
    return s;
}

void sched_release(struct sched *h, struct session *s)
{
    s->next_free = h->free;
    h->free = s;
}

static inline int before(const struct session *a, const struct session *b)
{
    return a->key < b->key || (a->key == b->key && a->id < b->id);
}

static void sift_up(struct sched *h, size_t i)
{
    struct session *s = h->heap[i];
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!before(s, h->heap[p]))
            break;
        h->heap[i] = h->heap[p];
        h->heap[i]->heap_pos = (uint32_t)i;
        i = p;
    }
    h->heap[i] = s;
    s->heap_pos = (uint32_t)i;
}

static void sift_down(struct sched *h, size_t i)
{
    struct session *s = h->heap[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->n)
            break;
        if (c + 1 < h->n && before(h->heap[c + 1], h->heap[c]))
            c++;
        if (!before(h->heap[c], s))
            break;
        h->heap[i] = h->heap[c];
        h->heap[i]->heap_pos = (uint32_t)i;
        i = c;
    }
    h->heap[i] = s;
    s->heap_pos = (uint32_t)i;
}

int sched_push(struct sched *h, struct session *s)
{
    if (h->n == h->cap) {
        size_t nc = h->cap ? 2 * h->cap : 4096;
        struct session **nh = realloc(h->heap, nc * sizeof *nh);
        if (!nh)
            return VIGIL_ENOMEM;
        h->heap = nh;
        h->cap = nc;
    }
    h->heap[h->n++] = s;
    sift_up(h, h->n - 1);
    if (h->n > h->peak)
        h->peak = h->n;
    return 0;
}

void sched_fix_top(struct sched *h)
{
    sift_down(h, 0);
}

void sched_pop(struct sched *h)
{
    if (!h->n)
        return;
    h->heap[0] = h->heap[--h->n];
    if (h->n)
        sift_down(h, 0);
}
