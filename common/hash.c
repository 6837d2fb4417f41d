/* hash.c — SipHash-1-3, written from the SipHash paper's description. */
#include "hash.h"

#include "err.h"

#include <string.h>
#include <sys/random.h>

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))

/* The four state words, and the steps every SipHash-1-3 input goes through. */
struct sip {
    uint64_t v0, v1, v2, v3;
};

static inline void sip_round(struct sip *s)
{
    s->v0 += s->v1;
    s->v1 = ROTL(s->v1, 13);
    s->v1 ^= s->v0;
    s->v0 = ROTL(s->v0, 32);
    s->v2 += s->v3;
    s->v3 = ROTL(s->v3, 16);
    s->v3 ^= s->v2;
    s->v0 += s->v3;
    s->v3 = ROTL(s->v3, 21);
    s->v3 ^= s->v0;
    s->v2 += s->v1;
    s->v1 = ROTL(s->v1, 17);
    s->v1 ^= s->v2;
    s->v2 = ROTL(s->v2, 32);
}

static inline struct sip sip_init(const struct hash_key *key)
{
    return (struct sip){
        .v0 = UINT64_C(0x736f6d6570736575) ^ key->k0,
        .v1 = UINT64_C(0x646f72616e646f6d) ^ key->k1,
        .v2 = UINT64_C(0x6c7967656e657261) ^ key->k0,
        .v3 = UINT64_C(0x7465646279746573) ^ key->k1,
    };
}

/* One message word: one compression round (the "1" of SipHash-1-3). */
static inline void sip_word(struct sip *s, uint64_t m)
{
    s->v3 ^= m;
    sip_round(s);
    s->v0 ^= m;
}

/* Three finalization rounds (the "3"). */
static inline uint64_t sip_final(struct sip *s)
{
    s->v2 ^= 0xff;
    sip_round(s);
    sip_round(s);
    sip_round(s);
    return s->v0 ^ s->v1 ^ s->v2 ^ s->v3;
}

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
    struct sip s = sip_init(key);
    size_t whole = len & ~(size_t)7;

    for (size_t i = 0; i < whole; i += 8)
        sip_word(&s, load_le64(in + i));
    uint64_t b = (uint64_t)len << 56;
    for (size_t i = 0; i < (len & 7); i++)
        b |= (uint64_t)in[whole + i] << (8 * i);
    sip_word(&s, b);
    return sip_final(&s);
}

uint64_t hash_siphash13_2w(const struct hash_key *key, uint64_t w0, uint64_t w1)
{
    struct sip s = sip_init(key);
    sip_word(&s, w0);
    sip_word(&s, w1);
    sip_word(&s, (uint64_t)16 << 56); /* the length block of a 16-byte message */
    return sip_final(&s);
}
