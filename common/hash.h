/* hash.h — keyed hashing for tables that hold attacker-chosen keys.
 *
 * SipHash-1-3 (Aumasson & Bernstein; 1 compression and 3 finalisation
 * rounds, the variant hash tables use) keyed with 128 random bits drawn at
 * every start, so crafted flow tuples cannot be aimed at one bucket. */
#ifndef VIGIL_HASH_H
#define VIGIL_HASH_H

#include <stddef.h>
#include <stdint.h>

struct hash_key {
    uint64_t k0, k1;
};

/* Fills *key from getrandom(); returns 0 or a negative VIGIL_E* code. */
int hash_key_random(struct hash_key *key);

uint64_t hash_siphash13(const struct hash_key *key, const void *data, size_t len);

/* The same hash of the 16 bytes holding w0 then w1 in little-endian order,
 * without the byte handling: for per-packet keys that fit two words. */
uint64_t hash_siphash13_2w(const struct hash_key *key, uint64_t w0, uint64_t w1);

#endif
