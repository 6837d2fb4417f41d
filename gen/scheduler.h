/* scheduler.h — the scheduler: open sessions in a binary min-heap keyed by the
 * time of their next packet (ties broken by spawn order, so the output never
 * depends on heap internals), plus the slab the sessions live in.
 *
 * Memory is bounded by the number of sessions open at once, not by the size
 * of the capture: a finished session's slot goes back on a free list. */
#ifndef VIGIL_GEN_SCHEDULER_H
#define VIGIL_GEN_SCHEDULER_H

#include "session.h"

#include <stddef.h>

struct sched {
    struct session **heap;  /* owned array of borrowed pointers into the slabs */
    size_t n, cap;
    struct session *free;   /* free list threaded through next_free */
    void **slabs;           /* owned: every slab allocated */
    size_t n_slabs, cap_slabs;
    size_t peak;            /* most sessions open at once */
};

void sched_init(struct sched *h);
void sched_destroy(struct sched *h);

/* Returns a free session slot, or NULL when out of memory. */
struct session *sched_alloc(struct sched *h);

/* Returns a finished session's slot to the free list. */
void sched_release(struct sched *h, struct session *s);

/* Inserts s by s->key; returns 0 or VIGIL_ENOMEM. */
int sched_push(struct sched *h, struct session *s);

static inline struct session *sched_top(const struct sched *h)
{
    return h->n ? h->heap[0] : NULL;
}

/* Restores the order after the top session's key grew. */
void sched_fix_top(struct sched *h);

/* Removes the top session (it is not released). */
void sched_pop(struct sched *h);

#endif
