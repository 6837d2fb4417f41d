/* bytes.h — byte-order and varint helpers for the store's keys and values.
 *
 * Keys are big-endian so LMDB's memcmp order is numeric (time) order.
 * Counters inside values are little-endian 64-bit words. Varints are
 * unsigned LEB128 (7 bits per byte, low group first, at most 10 bytes);
 * cur_varint reads one through a bounds-checked cursor. */
#ifndef VIGIL_AGG_BYTES_H
#define VIGIL_AGG_BYTES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "cursor.h"

static inline void put_be16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static inline void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static inline void put_be64(uint8_t *p, uint64_t v)
{
    put_be32(p, (uint32_t)(v >> 32));
    put_be32(p + 4, (uint32_t)v);
}

static inline uint16_t get_be16(const uint8_t *p)
{
    return (uint16_t)((uint16_t)p[0] << 8 | p[1]);
}

static inline uint32_t get_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline uint64_t get_be64(const uint8_t *p)
{
    return (uint64_t)get_be32(p) << 32 | get_be32(p + 4);
}

static inline void put_le64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static inline uint64_t get_le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

#define VARINT_MAX 10

/* Writes v at p; returns the bytes written (1..VARINT_MAX). */
static inline size_t put_varint(uint8_t *p, uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        p[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    p[n++] = (uint8_t)v;
    return n;
}

/* Reads a varint; false (cursor unmoved) when short or longer than 10 bytes. */
static inline bool cur_varint(struct cursor *c, uint64_t *out)
{
    uint64_t v = 0;
    const uint8_t *p = c->p;
    for (unsigned shift = 0; shift < 64; shift += 7) {
        if (p == c->end)
            return false;
        uint8_t b = *p++;
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            c->p = p;
            *out = v;
            return true;
        }
    }
    return false;
}

static inline bool cur_varint32(struct cursor *c, uint32_t *out)
{
    uint64_t v;
    struct cursor save = *c;
    if (!cur_varint(c, &v) || v > UINT32_MAX) {
        *c = save;
        return false;
    }
    *out = (uint32_t)v;
    return true;
}

#endif
