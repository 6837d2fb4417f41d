/* fuzz_envelope.c — libFuzzer target for envelope_unpack, the gate every
 * message from a peer passes through.
 *
 * The whole input is one received message. Besides crashes, leaks and
 * over-reads (the sanitizers' job), the target checks the contract:
 *  - the result is one of enum envelope_error, *out is set exactly on
 *    ENV_OK, and the reason is a terminated string;
 *  - what was accepted survives a round trip: packing it again succeeds,
 *    the packed bytes are accepted again, and packing those gives the very
 *    same bytes (the first pack normalises the input's encoding: field order,
 *    varint lengths, duplicates; after that it must be a fixed point).
 * "now" is fixed so that a stored input always takes the same path. */
#include "transport.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_NOW_NS INT64_C(1893456000000000000) /* 2030-01-01T00:00:00Z */

static void check(int cond)
{
    if (!cond)
        abort();
}

/* Unpacks data, checking the output contract; returns the envelope or NULL. */
static Vigil__Envelope *unpack_checked(const uint8_t *data, size_t size)
{
    Vigil__Envelope *env = (Vigil__Envelope *)(uintptr_t)1; /* must be overwritten */
    char why[256];
    memset(why, 'x', sizeof why);
    enum envelope_error e = envelope_unpack(data, size, FUZZ_NOW_NS, &env, why, sizeof why);
    check((unsigned)e < ENV_ERROR_COUNT);
    check(memchr(why, '\0', sizeof why) != NULL);
    check((e == ENV_OK) == (env != NULL));
    check(e == ENV_OK || why[0] != '\0'); /* a refusal always says why */
    return env;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    Vigil__Envelope *env = unpack_checked(data, size);
    if (env == NULL)
        return 0;

    uint8_t *p1 = NULL, *p2 = NULL;
    size_t n1 = 0, n2 = 0;
    check(envelope_pack(env, &p1, &n1) == 0);
    envelope_free(env);

    Vigil__Envelope *again = unpack_checked(p1, n1);
    check(again != NULL);
    check(envelope_pack(again, &p2, &n2) == 0);
    envelope_free(again);

    check(n1 == n2);
    check(memcmp(p1, p2, n1) == 0);
    free(p1);
    free(p2);
    return 0;
}
