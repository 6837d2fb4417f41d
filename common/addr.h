/* addr.h — IP addresses and sets of networks (CIDR).
 *
 * Addresses are held as 16 bytes in network order; IPv4 uses the
 * IPv4-mapped form ::ffff:a.b.c.d so one comparison serves both families. */
#ifndef VIGIL_ADDR_H
#define VIGIL_ADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define ADDR_STRLEN 46 /* INET6_ADDRSTRLEN */

struct vigil_addr {
    uint8_t b[16];
};

/* Whether 16 address bytes are IPv4-mapped (::ffff:a.b.c.d), the form IPv4
 * is kept in. Compared as two words: this runs for every packet's key. */
static inline bool addr_bytes_are_v4(const uint8_t b[16])
{
    static const uint8_t prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    uint64_t hi, want_hi;
    uint32_t mid, want_mid;
    memcpy(&hi, b, 8);
    memcpy(&want_hi, prefix, 8);
    memcpy(&mid, b + 8, 4);
    memcpy(&want_mid, prefix + 8, 4);
    return hi == want_hi && mid == want_mid;
}

static inline bool addr_is_v4(const struct vigil_addr *a)
{
    return addr_bytes_are_v4(a->b);
}

/* Sets *a to the IPv4-mapped form of the 4 bytes at v4 (network order). */
void addr_from_v4(struct vigil_addr *a, const uint8_t v4[4]);

/* Formats as dotted quad (IPv4-mapped) or RFC 5952 text; returns buf. */
const char *addr_format(const struct vigil_addr *a, char buf[ADDR_STRLEN]);

/* Parses "1.2.3.4" or "2001:db8::1"; returns 0 or VIGIL_EINVAL. */
int addr_parse(const char *text, struct vigil_addr *out);

struct cidr {
    struct vigil_addr net; /* masked network address */
    uint8_t prefix;        /* 0..128, counted on the 16-byte form */
};

/* Parses "10.0.0.0/8", "2001:db8::/32" or a bare address; returns 0 or VIGIL_EINVAL. */
int cidr_parse(const char *text, struct cidr *out);

bool cidr_contains(const struct cidr *c, const struct vigil_addr *a);

#define CIDR_SET_MAX 64

/* A small set of networks (the configured local networks). Linear search:
 * a handful of entries fits in a cache line or two. */
struct cidr_set {
    struct cidr nets[CIDR_SET_MAX];
    unsigned count;
};

/* Adds a network; returns 0, VIGIL_EINVAL or VIGIL_EFULL. */
int cidr_set_add(struct cidr_set *s, const char *text);

bool cidr_set_contains(const struct cidr_set *s, const struct vigil_addr *a);

#endif
