/* fleet.h — the `fleet` scenario: a small organisation's hosts, their
 * everyday traffic, and attacks injected at known times.
 *
 * The address plan (documentation and benchmarking ranges only, RFC 5737 /
 * RFC 2544, names under reserved domains, RFC 2606/6761):
 *   10.20.0.0/16    the fleet's network; gateway 10.20.0.1, resolver
 *                   10.20.0.53 (not monitored), servers 10.20.1.x,
 *                   admin and workstations 10.20.2.x
 *   198.18.0.0/16   popular web sites the staff browse
 *   198.19.0.0/16   the public web server's visitors
 *   198.51.100.0/25 other organisations' mail servers
 *   192.0.2.0/24    services every host uses: NTP, updates, backup
 *   203.0.113.0/24 and 198.51.100.128/25   attackers
 *
 * profile_fleet.c lays out the hosts and writes the benign traffic;
 * fleet_attacks.c adds the attacks; both build specs with the helpers
 * below. */
#ifndef VIGIL_GEN_FLEET_H
#define VIGIL_GEN_FLEET_H

#include "scenario.h"

#include <stdbool.h>
#include <stdint.h>

#define FLEET_MIN_HOSTS 5
#define FLEET_MAX_HOSTS SCN_MAX_HOSTS
#define FLEET_NET "10.20.0.0/16"
#define FLEET_RESOLVER "10.20.0.53"

#define SEC_NS INT64_C(1000000000)
#define MS_NS INT64_C(1000000)
#define MIN_NS (60 * SEC_NS)
#define HOUR_NS (3600 * SEC_NS)
#define DAY_NS (86400 * SEC_NS)

struct fleet_opts {
    uint64_t seed;
    int64_t start_ns;
    unsigned hosts;       /* FLEET_MIN_HOSTS..FLEET_MAX_HOSTS */
    unsigned days;        /* 1..14 */
    bool attacks;         /* false: benign traffic only */
    uint64_t exfil_bytes; /* size of the exfiltration upload */
};

enum fleet_role { ROLE_WEB = 0, ROLE_MAIL, ROLE_FILES, ROLE_ADMIN, ROLE_WORKSTATION };

struct fleet_host {
    enum fleet_role role;
    char ip[SCN_ADDR_MAX];
    uint16_t next_port; /* ephemeral port counter: no 5-tuple reused while open */
};

struct fleet {
    struct scenario *sc;
    struct fleet_opts o;
    struct fleet_host host[FLEET_MAX_HOSTS];
    unsigned n;
    unsigned web, mail, files, admin; /* host indexes of the servers and the admin */
    unsigned first_ws;                /* workstations are first_ws..n-1 */
    int err;                          /* first error while adding specs */
};

/* Builds the whole scenario into sc (scn_init'ed). Returns 0 or a negative
 * VIGIL_E code. */
int fleet_build(struct scenario *sc, const struct fleet_opts *o);

/* Adds the attacks to an already laid-out fleet (fleet_attacks.c). */
void fleet_add_attacks(struct fleet *f, struct rng *r);

/* --- spec helpers (profile_fleet.c) --------------------------------------------- */

/* Index of the fleet host with this address, or -1. */
int fleet_host_of(const struct fleet *f, const char *ip);

/* Next ephemeral port of fleet host i. */
uint16_t fleet_port(struct fleet *f, unsigned i);

/* A spec of the given kind between a (initiator) and b, with addresses,
 * MACs, TTLs and the capture mask of whichever ends are fleet hosts. rtt_ns
 * is the round trip seen from the capture point. */
struct sess_spec fleet_spec(const struct fleet *f, uint8_t kind, uint8_t proto, const char *a,
                            uint16_t pa, const char *b, uint16_t pb, int64_t t0, int64_t rtt_ns);

/* A TCP conversation with the given application and ending; sizes are
 * left to the caller. */
struct sess_spec fleet_tcp(const struct fleet *f, const char *a, uint16_t pa, const char *b,
                           uint16_t pb, int64_t t0, int64_t rtt_ns, uint8_t app, uint8_t end);

/* A DNS lookup of name/qtype by fleet host i through the resolver. */
struct sess_spec fleet_dns(struct fleet *f, unsigned i, int64_t t0, const char *name,
                           uint16_t qtype, uint8_t rcode);

/* Adds a spec with a seed drawn from r; records the first error in f->err. */
void fleet_add(struct fleet *f, struct rng *r, const struct sess_spec *sp);

/* Copies a name into sp->name. */
void fleet_name(struct sess_spec *sp, const char *name);

#endif
