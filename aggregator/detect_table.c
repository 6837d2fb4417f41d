/* detect_table.c — fixed-capacity open-addressing table (detect_table.h). */
#include "detect_table.h"

#include <stdlib.h>
#include <string.h>

#include "err.h"

int dtab_init(struct dtab *t, uint32_t cap, size_t esize, size_t koff, size_t klen)
{
    uint32_t slots = 16;
    memset(t, 0, sizeof *t);
    if (cap < 8)
        cap = 8;
    while (slots < cap * 2u && slots < (1u << 31))
        slots <<= 1;
    t->index = calloc(slots, sizeof *t->index);
    t->ent = calloc(cap, esize);
    t->free_list = malloc(sizeof *t->free_list * cap);
    if (!t->index || !t->ent || !t->free_list) {
        dtab_free(t);
        return VIGIL_ENOMEM;
    }
    t->esize = esize;
    t->koff = koff;
    t->klen = klen;
    t->cap = cap;
    t->mask = slots - 1;
    return 0;
}

void dtab_free(struct dtab *t)
{
    free(t->index);
    free(t->ent);
    free(t->free_list);
    memset(t, 0, sizeof *t);
}

static uint64_t slot_of(uint64_t h, uint32_t i)
{
    return (uint64_t)(uint32_t)h << 32 | (i + 1);
}

/* The entry slot v names when it holds key (whose hash is h), else NULL. */
static struct dtab_head *match(const struct dtab *t, uint64_t v, uint64_t h, const void *key)
{
    if ((uint32_t)(v >> 32) != (uint32_t)h)
        return NULL; /* another key: its entry stays untouched */
    struct dtab_head *e = dtab_at(t, (uint32_t)v - 1);
    return e->hash == h && memcmp((const uint8_t *)e + t->koff, key, t->klen) == 0 ? e : NULL;
}

void *dtab_find(const struct dtab *t, uint64_t h, const void *key)
{
    for (uint32_t s = (uint32_t)h & t->mask;; s = (s + 1) & t->mask) {
        uint64_t v = t->index[s];
        if (!v)
            return NULL;
        struct dtab_head *e = match(t, v, h, key);
        if (e)
            return e;
    }
}

void *dtab_get(struct dtab *t, uint64_t h, const void *key, bool *created)
{
    uint32_t s = (uint32_t)h & t->mask;
    *created = false;
    for (;; s = (s + 1) & t->mask) {
        uint64_t v = t->index[s];
        if (!v)
            break;
        struct dtab_head *e = match(t, v, h, key);
        if (e)
            return e;
    }
    uint32_t i;
    if (t->n_free)
        i = t->free_list[--t->n_free];
    else if (t->hwm < t->cap)
        i = t->hwm++;
    else
        return NULL;
    struct dtab_head *e = dtab_at(t, i);
    memset(e, 0, t->esize);
    e->hash = h;
    e->live = 1;
    memcpy((uint8_t *)e + t->koff, key, t->klen);
    t->index[s] = slot_of(h, i);
    t->n++;
    *created = true;
    return e;
}

void dtab_remove(struct dtab *t, void *entry)
{
    struct dtab_head *e = entry;
    uint32_t i = (uint32_t)(((uint8_t *)entry - t->ent) / t->esize);
    uint32_t s = (uint32_t)e->hash & t->mask;
    while ((uint32_t)t->index[s] != i + 1) {
        if (!t->index[s])
            return; /* not in the table: cannot happen */
        s = (s + 1) & t->mask;
    }
    /* backward shift: pull later members of the probe run into the hole */
    uint32_t hole = s;
    for (uint32_t j = (s + 1) & t->mask; t->index[j]; j = (j + 1) & t->mask) {
        uint32_t home = (uint32_t)(t->index[j] >> 32) & t->mask;
        /* x may move into the hole if its home is not inside (hole, j] */
        bool stays = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
        if (!stays) {
            t->index[hole] = t->index[j];
            hole = j;
        }
    }
    t->index[hole] = 0;
    e->live = 0;
    t->free_list[t->n_free++] = i;
    t->n--;
}

void dtab_clear(struct dtab *t)
{
    memset(t->index, 0, sizeof *t->index * ((size_t)t->mask + 1));
    for (uint32_t i = 0; i < t->hwm; i++)
        ((struct dtab_head *)dtab_at(t, i))->live = 0;
    t->n = t->n_free = t->hwm = 0;
}
