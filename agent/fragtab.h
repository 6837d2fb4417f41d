/* fragtab.h — attributing IP fragments to flows.
 *
 * Only a first fragment carries the transport header. The table remembers
 * its ports per (addresses, protocol, IP id) so later fragments join the
 * same flow; later fragments that arrive before their first are held as
 * pending counts and handed over when it comes (or given up at timeout).
 * Bounded: a flood of fragments replaces the oldest entries. */
#ifndef VIGIL_FRAGTAB_H
#define VIGIL_FRAGTAB_H

#include "packet.h"

#include <stdbool.h>
#include <stdint.h>

struct fragtab;

struct frag_pending {
    uint64_t pkts, bytes;
    int64_t first_ns, last_ns;
};

/* Receives pending fragments that will never meet their first fragment
 * (p: addresses and protocol, no ports). */
typedef void (*frag_give_up_fn)(void *ctx, const struct pkt *p, const struct frag_pending *pd);

/* Returns NULL on allocation failure. */
struct fragtab *fragtab_create(frag_give_up_fn give_up, void *ctx);
void fragtab_destroy(struct fragtab *ft);

/* A first fragment: remembers its ports. Returns true and fills *pending if
 * later fragments had arrived before it. */
bool fragtab_first(struct fragtab *ft, const struct pkt *p, struct frag_pending *pending);

/* A later fragment: sets p's ports from its first fragment and returns true,
 * or records it as pending and returns false. */
bool fragtab_later(struct fragtab *ft, struct pkt *p);

/* Frees entries older than the timeout, giving up their pending fragments;
 * with now_ns = INT64_MAX, frees all (at shutdown). */
void fragtab_expire(struct fragtab *ft, int64_t now_ns);

#endif
