/* rowbuf.h — the flows rows of one write transaction, held back and then
 * written in key order.
 *
 * Why: a flows key is (second the flow ended, ingest sequence), and the
 * records of a batch end up to an idle timeout apart, so putting each row
 * as its record comes lands all over the newest pages of the tree: a full
 * descent from the root per put, and inserts in the middle of pages.
 * Written sorted through one cursor, consecutive rows fall on the same
 * leaf (LMDB then searches only that page), and the rows past the end of
 * the tree go in as appends. The stored rows are the same either way.
 *
 * Writer-owned scratch: it grows to the largest transaction seen and is
 * reused, so nothing is allocated per record. Non-goals: the row layout
 * (flowcodec.h) and the append rules (store.c). */
#ifndef VIGIL_AGG_ROWBUF_H
#define VIGIL_AGG_ROWBUF_H

#include <stddef.h>
#include <stdint.h>

#include "flowcodec.h"

struct rowref {
    uint64_t seq;     /* the key's sequence */
    uint32_t off;     /* value offset in data */
    uint32_t vlen;    /* value length */
};

struct rowbuf {
    uint8_t *data;       /* encoded values, back to back (malloc'd) */
    size_t len, cap;     /* bytes */
    uint64_t *sec;       /* per row: the key's second, the sort key (malloc'd) */
    struct rowref *ref;  /* per row (malloc'd) */
    uint32_t *ord;       /* 2 x rows_cap: the sorted order, then sort scratch (malloc'd) */
    size_t n, rows_cap;
};

/* Forgets the rows (keeps the memory). */
void rowbuf_clear(struct rowbuf *rb);

/* Encodes f as the row (sec, seq). Returns 0 or VIGIL_ENOMEM. */
int rowbuf_add(struct rowbuf *rb, const struct sflow *f, uint32_t sec, uint64_t seq);

/* Orders the rows by key: by second, and within a second by sequence (rows
 * are added in sequence order and the sort is stable). */
void rowbuf_sort(struct rowbuf *rb);

/* Row i of the sorted order: key parts and value (borrowed). */
void rowbuf_get(const struct rowbuf *rb, size_t i, uint32_t *sec, uint64_t *seq,
                const uint8_t **val, size_t *len);

void rowbuf_free(struct rowbuf *rb);

#endif
