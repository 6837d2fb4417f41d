/* profile.h — what a capture contains: a source of session specs in start order.
 *
 * `unit` is a fixed script that exercises every session kind and the
 * agent's timeouts in a few hundred packets; `bench` draws a large, mixed,
 * heavy-tailed population of flows. A profile hands out specs lazily, one
 * at a time, in non-decreasing start time, so the bench never holds its
 * million flows in memory. */
#ifndef VIGIL_GEN_PROFILE_H
#define VIGIL_GEN_PROFILE_H

#include "session.h"

#include <stdint.h>

struct gen_opts {
    uint64_t seed;
    uint64_t flows;     /* bench: flows to start (0: the profile's default) */
    double duration_s;  /* bench: seconds over which they start (0: default) */
    int64_t start_ns;   /* time of the capture's start, ns since the epoch */
    unsigned snaplen;
};

struct profile_ops {
    const char *name;
    const char *help;
    /* Returns the profile state, or NULL when out of memory. */
    void *(*create)(const struct gen_opts *o);
    /* Start time of the next session, or INT64_MAX when there is none. */
    int64_t (*next_start)(void *st);
    /* Fills *sp for that session and *seed for its own generator. */
    void (*spawn)(void *st, struct sess_spec *sp, uint64_t *seed);
    void (*destroy)(void *st);
};

extern const struct profile_ops profile_unit;
extern const struct profile_ops profile_bench;

/* Finds a profile by name; NULL if unknown. */
const struct profile_ops *profile_find(const char *name);

/* Helpers shared by the profiles: fill the addressing part of a spec.
 * a and b are dotted-quad / IPv6 text (must parse); MACs are derived from
 * the addresses (locally administered) unless the responder is remote, in
 * which case it is the gateway's. vlan is PKT_VLAN_NONE for untagged. */
void profile_ends(struct pkt_ends *e, uint8_t proto, const char *a, uint16_t pa, const char *b,
                  uint16_t pb, uint16_t vlan);

#endif
