/* hash.c — SipHash-1-3, written from the SipHash paper's description. */
#include "hash.h"

#include "err.h"

#include <string.h>
#include <sys/random.h>

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))

#define SIPROUND                                                                                 \
    do {                                                                                         \
        v0 += v1;                                                                                \
        v1 = ROTL(v1, 13);                                                                       \
        v1 ^= v0;                                                                                \
        v0 = ROTL(v0, 32);                                                                       \
        v2 += v3;                                                                                \
        v3 = ROTL(v3, 16);                                                                       \
        v3 ^= v2;                                                                                \
        v0 += v3;                                                                                \
        v3 = ROTL(v3, 21);                                                                       \
        v3 ^= v0;                                                                                \
        v2 += v1;                                                                                \
        v1 = ROTL(v1, 17);                                                                       \
        v1 ^= v2;                                                                                \
        v2 = ROTL(v2, 32);                                                                       \
    } while (0)

int hash_key_random(struct hash_key *key)
{
    uint8_t buf[16];
    size_t got = 0;
    while (got < sizeof buf) {
        ssize_t n = getrandom(buf + got, sizeof buf - got, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        got += (size_t)n;
    }
    memcpy(&key->k0, buf, 8);
    memcpy(&key->k1, buf + 8, 8);
    return 0;
}

static inline uint64_t load_le64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap64(v);
#endif
    return v;
}

uint64_t hash_siphash13(const struct hash_key *key, const void *data, size_t len)
{
    const uint8_t *in = data;
    uint64_t v0 = UINT64_C(0x736f6d6570736575) ^ key->k0;
    uint64_t v1 = UINT64_C(0x646f72616e646f6d) ^ key->k1;
    uint64_t v2 = UINT64_C(0x6c7967656e657261) ^ key->k0;
    uint64_t v3 = UINT64_C(0x7465646279746573) ^ key->k1;
    size_t whole = len & ~(size_t)7;

    for (size_t i = 0; i < whole; i += 8) {
        uint64_t m = load_le64(in + i);
        v3 ^= m;
        SIPROUND;
        v0 ^= m;
    }
    uint64_t b = (uint64_t)len << 56;
    for (size_t i = 0; i < (len & 7); i++)
        b |= (uint64_t)in[whole + i] << (8 * i);
    v3 ^= b;
    SIPROUND;
    v0 ^= b;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}
