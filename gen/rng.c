/* rng.c — splitmix64 seeding and xoshiro256** generation. */
#include "rng.h"

#include <math.h>

uint64_t rng_splitmix64(uint64_t *state)
{
    uint64_t z = (*state += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

void rng_seed(struct rng *r, uint64_t seed)
{
    uint64_t st = seed;
    for (int i = 0; i < 4; i++)
        r->s[i] = rng_splitmix64(&st);
    if (!(r->s[0] | r->s[1] | r->s[2] | r->s[3]))
        r->s[0] = 1; /* the all-zero state is a fixed point */
}

static inline uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

uint64_t rng_u64(struct rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

uint64_t rng_below(struct rng *r, uint64_t n)
{
    if (n == 0)
        return 0;
    /* Reject the lowest (2^64 mod n) values so every residue is equally
     * likely; the loop almost never runs twice. Portable C11, no 128-bit type. */
    uint64_t threshold = (0 - n) % n;
    for (;;) {
        uint64_t x = rng_u64(r);
        if (x >= threshold)
            return x % n;
    }
}

int64_t rng_range(struct rng *r, int64_t lo, int64_t hi)
{
    return lo + (int64_t)rng_below(r, (uint64_t)(hi - lo) + 1);
}

double rng_unit(struct rng *r)
{
    return (double)(rng_u64(r) >> 11) * 0x1.0p-53;
}

int rng_chance(struct rng *r, double p)
{
    return rng_unit(r) < p;
}

double rng_exp(struct rng *r, double mean)
{
    return -mean * log1p(-rng_unit(r));
}

double rng_pareto(struct rng *r, double xmin, double alpha)
{
    return xmin / pow(1.0 - rng_unit(r), 1.0 / alpha);
}

double rng_lognormal(struct rng *r, double mu, double sigma)
{
    double u1 = 1.0 - rng_unit(r); /* (0, 1]: log stays finite */
    double u2 = rng_unit(r);
    double z = sqrt(-2.0 * log(u1)) * cos(2.0 * 3.14159265358979323846 * u2);
    return exp(mu + sigma * z);
}

double rng_loguniform(struct rng *r, double lo, double hi)
{
    return lo * exp(rng_unit(r) * log(hi / lo));
}

void rng_fill(struct rng *r, void *buf, size_t n)
{
    /* Bytes are taken least significant first, so the stream is the same on
     * any byte order. */
    uint8_t *p = buf;
    while (n) {
        uint64_t v = rng_u64(r);
        for (int i = 0; i < 8 && n; i++, n--) {
            *p++ = (uint8_t)v;
            v >>= 8;
        }
    }
}
