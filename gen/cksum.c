/* cksum.c — RFC 1071 one's-complement sum over big-endian 16-bit words. */
#include "cksum.h"

uint64_t cksum_add(uint64_t sum, const uint8_t *p, size_t n)
{
    /* Eight bytes per step, as four 16-bit words: the compiler vectorises
     * this, and a 64-bit accumulator cannot overflow for any frame size. */
    while (n >= 8) {
        sum += ((uint32_t)p[0] << 8 | p[1]) + ((uint32_t)p[2] << 8 | p[3]) +
               ((uint32_t)p[4] << 8 | p[5]) + ((uint32_t)p[6] << 8 | p[7]);
        p += 8;
        n -= 8;
    }
    while (n >= 2) {
        sum += (uint32_t)p[0] << 8 | p[1];
        p += 2;
        n -= 2;
    }
    if (n)
        sum += (uint32_t)p[0] << 8; /* odd tail, padded with a zero byte */
    return sum;
}

uint16_t cksum_finish(uint64_t sum)
{
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    return (uint16_t)~sum;
}
