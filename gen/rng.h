/* rng.h — the generator's deterministic pseudo-random numbers.
 *
 * xoshiro256** (Blackman & Vigna) seeded through splitmix64, written here so
 * the output depends on nothing but --seed: not on libc's rand(), not on the
 * platform. Every draw the generator makes goes through one of these
 * functions, so a seed always gives byte-identical captures.
 * Non-goal: cryptographic quality. */
#ifndef VIGIL_GEN_RNG_H
#define VIGIL_GEN_RNG_H

#include <stddef.h>
#include <stdint.h>

struct rng {
    uint64_t s[4];
};

/* One splitmix64 step: advances *state and returns a well-mixed value.
 * Also used on its own to derive per-object seeds from a counter. */
uint64_t rng_splitmix64(uint64_t *state);

/* Seeds the four state words from `seed` through splitmix64 (never all zero). */
void rng_seed(struct rng *r, uint64_t seed);

uint64_t rng_u64(struct rng *r);

/* Uniform in [0, n) without modulo bias; n == 0 returns 0. */
uint64_t rng_below(struct rng *r, uint64_t n);

/* Uniform in [lo, hi] (inclusive); lo <= hi. */
int64_t rng_range(struct rng *r, int64_t lo, int64_t hi);

/* Uniform double in [0, 1) with 53 random bits. */
double rng_unit(struct rng *r);

/* True with probability p. */
int rng_chance(struct rng *r, double p);

/* Exponential with the given mean. */
double rng_exp(struct rng *r, double mean);

/* Pareto (type I) with scale xmin and shape alpha: heavy tail for alpha < 2. */
double rng_pareto(struct rng *r, double xmin, double alpha);

/* Log-normal: exp(N(mu, sigma)), Box-Muller from two uniforms. */
double rng_lognormal(struct rng *r, double mu, double sigma);

/* Log-uniform in [lo, hi]: every decade equally likely. */
double rng_loguniform(struct rng *r, double lo, double hi);

/* Fills buf with n random bytes. */
void rng_fill(struct rng *r, void *buf, size_t n);

#endif
