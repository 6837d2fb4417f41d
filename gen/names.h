/* names.h — deterministic, plausible host names for DNS, TLS SNI and HTTP Host.
 *
 * All names sit under domains reserved for documentation and testing
 * (RFC 2606/6761: example.com/net/org, .example, .test), so a generated
 * capture never names a real organisation. A few domains are far more
 * popular than the rest, as in real traffic. */
#ifndef VIGIL_GEN_NAMES_H
#define VIGIL_GEN_NAMES_H

#include "rng.h"

#include <stddef.h>

#define NAME_MAX_LEN 254 /* a DNS name of up to 253 characters, and its NUL */

/* Writes a host name ("cdn3.static.example.net") into out (cap >= NAME_MAX_LEN). */
void names_host(struct rng *r, char *out, size_t cap);

/* Writes the registered domain part of a name ("example.net") for an SOA. */
const char *names_registered(const char *host);

#endif
