/* rowbuf.c — flows rows held back and written in key order (see rowbuf.h). */
#include "rowbuf.h"

#include <stdbool.h>
#include <stdlib.h>

#include "err.h"
#include "sortkey.h"

void rowbuf_clear(struct rowbuf *rb)
{
    rb->n = 0;
    rb->len = 0;
}

/* realloc that keeps p (and clears *ok) when it fails. */
static void *resize(void *p, size_t n, size_t size, bool *ok)
{
    void *q = realloc(p, n * size);
    if (!q)
        *ok = false;
    return q ? q : p;
}

static int grow_rows(struct rowbuf *rb)
{
    size_t cap = rb->rows_cap ? rb->rows_cap * 2 : 1024;
    bool ok = true;
    rb->sec = resize(rb->sec, cap, sizeof *rb->sec, &ok);
    rb->ref = resize(rb->ref, cap, sizeof *rb->ref, &ok);
    rb->ord = resize(rb->ord, 2 * cap, sizeof *rb->ord, &ok);
    if (!ok)
        return VIGIL_ENOMEM; /* rows_cap still fits every array */
    rb->rows_cap = cap;
    return 0;
}

int rowbuf_add(struct rowbuf *rb, const struct sflow *f, uint32_t sec, uint64_t seq)
{
    if (rb->n == rb->rows_cap && grow_rows(rb) != 0)
        return VIGIL_ENOMEM;
    if (rb->cap - rb->len < FLOWCODEC_MAX) {
        size_t cap = rb->cap ? rb->cap * 2 : 256 * 1024;
        if (cap > UINT32_MAX) /* offsets are 32-bit; a group is far below this */
            return VIGIL_ENOMEM;
        uint8_t *d = realloc(rb->data, cap);
        if (!d)
            return VIGIL_ENOMEM;
        rb->data = d;
        rb->cap = cap;
    }
    size_t len = flowcodec_encode(f, rb->data + rb->len);
    rb->sec[rb->n] = sec;
    rb->ref[rb->n] = (struct rowref){seq, (uint32_t)rb->len, (uint32_t)len};
    rb->len += len;
    rb->n++;
    return 0;
}

void rowbuf_sort(struct rowbuf *rb)
{
    for (size_t i = 0; i < rb->n; i++)
        rb->ord[i] = (uint32_t)i;
    if (rb->n > 1)
        sortkey_radix(rb->sec, rb->ord, rb->ord + rb->rows_cap, rb->n, 32);
}

void rowbuf_get(const struct rowbuf *rb, size_t i, uint32_t *sec, uint64_t *seq,
                const uint8_t **val, size_t *len)
{
    uint32_t r = rb->ord[i];
    *sec = (uint32_t)rb->sec[r];
    *seq = rb->ref[r].seq;
    *val = rb->data + rb->ref[r].off;
    *len = rb->ref[r].vlen;
}

void rowbuf_free(struct rowbuf *rb)
{
    free(rb->data);
    free(rb->sec);
    free(rb->ref);
    free(rb->ord);
    *rb = (struct rowbuf){0};
}
