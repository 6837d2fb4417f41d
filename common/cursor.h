/* cursor.h — bounds-checked reading of untrusted bytes.
 *
 * Every byte that comes from the network, a capture file or a peer is read
 * through a cursor. Each accessor checks the request against what is left
 * (comparing n > end - p, which cannot overflow), copies with memcpy so
 * alignment never matters, and returns false without moving on a short read.
 * Never cast packet bytes to a struct. */
#ifndef VIGIL_CURSOR_H
#define VIGIL_CURSOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct cursor {
    const uint8_t *p;   /* next byte to read */
    const uint8_t *end; /* one past the last readable byte */
};

static inline struct cursor cur_make(const void *data, size_t len)
{
    const uint8_t *p = (const uint8_t *)data;
    return (struct cursor){.p = p, .end = p + len};
}

static inline size_t cur_left(const struct cursor *c)
{
    return (size_t)(c->end - c->p);
}

static inline bool cur_has(const struct cursor *c, size_t n)
{
    return n <= (size_t)(c->end - c->p);
}

static inline bool cur_skip(struct cursor *c, size_t n)
{
    if (!cur_has(c, n))
        return false;
    c->p += n;
    return true;
}

static inline bool cur_bytes(struct cursor *c, void *out, size_t n)
{
    if (!cur_has(c, n))
        return false;
    memcpy(out, c->p, n);
    c->p += n;
    return true;
}

static inline bool cur_u8(struct cursor *c, uint8_t *v)
{
    if (!cur_has(c, 1))
        return false;
    *v = *c->p++;
    return true;
}

static inline bool cur_be16(struct cursor *c, uint16_t *v)
{
    if (!cur_has(c, 2))
        return false;
    *v = (uint16_t)((uint16_t)c->p[0] << 8 | c->p[1]);
    c->p += 2;
    return true;
}

static inline bool cur_be24(struct cursor *c, uint32_t *v)
{
    if (!cur_has(c, 3))
        return false;
    *v = (uint32_t)c->p[0] << 16 | (uint32_t)c->p[1] << 8 | c->p[2];
    c->p += 3;
    return true;
}

static inline bool cur_be32(struct cursor *c, uint32_t *v)
{
    if (!cur_has(c, 4))
        return false;
    *v = (uint32_t)c->p[0] << 24 | (uint32_t)c->p[1] << 16 | (uint32_t)c->p[2] << 8 | c->p[3];
    c->p += 4;
    return true;
}

static inline bool cur_le16(struct cursor *c, uint16_t *v)
{
    if (!cur_has(c, 2))
        return false;
    *v = (uint16_t)((uint16_t)c->p[1] << 8 | c->p[0]);
    c->p += 2;
    return true;
}

static inline bool cur_le32(struct cursor *c, uint32_t *v)
{
    if (!cur_has(c, 4))
        return false;
    *v = (uint32_t)c->p[3] << 24 | (uint32_t)c->p[2] << 16 | (uint32_t)c->p[1] << 8 | c->p[0];
    c->p += 4;
    return true;
}

/* Peeks at the byte `off` positions ahead without moving. */
static inline bool cur_peek_u8(const struct cursor *c, size_t off, uint8_t *v)
{
    if (!cur_has(c, off + 1) || off == SIZE_MAX)
        return false;
    *v = c->p[off];
    return true;
}

/* Splits off the next n bytes as a sub-cursor *out and moves past them. */
static inline bool cur_sub(struct cursor *c, size_t n, struct cursor *out)
{
    if (!cur_has(c, n))
        return false;
    out->p = c->p;
    out->end = c->p + n;
    c->p += n;
    return true;
}

/* Shortens the cursor so at most n bytes remain (e.g. to an IP total length). */
static inline void cur_limit(struct cursor *c, size_t n)
{
    if (n < cur_left(c))
        c->end = c->p + n;
}

#endif
