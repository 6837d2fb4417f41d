/* detect_table.h — the fixed-capacity hash table every detector and the
 * baselines keep their keys in.
 *
 * Entries are fixed-size records in one array allocated at creation (never
 * grown: memory is bounded under any flood); each starts with struct
 * dtab_head, then the key (klen bytes compared with memcmp), then the
 * owner's fields. An index of 64-bit slots (twice the capacity, linear
 * probing, backward-shift deletion) maps a hash to an entry; each slot
 * carries the low half of its entry's hash, so probing past other keys and
 * deleting never touch their entries (each touch is a cache miss). Hashes come
 * from the caller and must be keyed (SipHash of the engine's random key)
 * since keys are chosen by whoever sends traffic.
 *
 * Inserting into a full table fails (NULL): the caller counts it. Not
 * thread-safe: the writer thread owns every table. */
#ifndef VIGIL_DETECT_TABLE_H
#define VIGIL_DETECT_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct dtab_head {
    uint64_t hash;
    uint32_t live;   /* 1 while in the table */
    uint32_t pad_;
};

struct dtab {
    uint64_t *index;     /* mask + 1 slots: 0 empty, else the hash's low 32 bits << 32
                            | (entry number + 1) */
    uint8_t *ent;        /* cap entries of esize bytes, from calloc */
    uint32_t *free_list; /* entry numbers not in use */
    size_t esize, koff, klen;
    uint32_t cap, mask, n, n_free, hwm; /* hwm: entries ever handed out (iteration bound) */
};

/* esize: the whole entry (starting with struct dtab_head); the key is the
 * klen bytes at koff. Returns 0 or VIGIL_ENOMEM. */
int dtab_init(struct dtab *t, uint32_t cap, size_t esize, size_t koff, size_t klen);
void dtab_free(struct dtab *t);

static inline void *dtab_at(const struct dtab *t, uint32_t i)
{
    return t->ent + (size_t)i * t->esize;
}

/* Cache hints for a lookup of h coming soon (a batch looks ahead): the
 * index slot first, then, once that is likely cached, the entry it names. */
static inline void dtab_prefetch(const struct dtab *t, uint64_t h)
{
    __builtin_prefetch(&t->index[(uint32_t)h & t->mask]);
}
static inline void dtab_prefetch_entry(const struct dtab *t, uint64_t h)
{
    uint64_t v = t->index[(uint32_t)h & t->mask];
    if (v)
        __builtin_prefetch(t->ent + (size_t)((uint32_t)v - 1) * t->esize);
}

static inline void dtab_hint(const struct dtab *t, uint64_t h, bool entry)
{
    if (entry)
        dtab_prefetch_entry(t, h);
    else
        dtab_prefetch(t, h);
}

void *dtab_find(const struct dtab *t, uint64_t h, const void *key);
/* Finds or creates (zeroed, key copied) the entry; *created (OUT) says
 * which. NULL when the table is full. */
void *dtab_get(struct dtab *t, uint64_t h, const void *key, bool *created);
void dtab_remove(struct dtab *t, void *entry);
/* Empties the table (keeps the memory). */
void dtab_clear(struct dtab *t);

#endif
