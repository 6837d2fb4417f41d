/* dnsmsg.h — DNS messages in wire format (RFC 1035 §4), for DNS over UDP.
 *
 * A query carries one question and an EDNS(0) OPT record (RFC 6891); a
 * response echoes the question, then answers for the type asked (A, AAAA,
 * TXT, PTR, HTTPS, optionally behind a CNAME), or for NXDOMAIN an SOA in the
 * authority section. Non-goals: DNSSEC, truncation, DNS over TCP. */
#ifndef VIGIL_GEN_DNSMSG_H
#define VIGIL_GEN_DNSMSG_H

#include "rng.h"

#include <stddef.h>
#include <stdint.h>

#define DNS_TYPE_A 1
#define DNS_TYPE_CNAME 5
#define DNS_TYPE_NULL 10
#define DNS_TYPE_PTR 12
#define DNS_TYPE_MX 15
#define DNS_TYPE_TXT 16
#define DNS_TYPE_AAAA 28
#define DNS_TYPE_HTTPS 65

#define DNS_RCODE_NOERROR 0
#define DNS_RCODE_SERVFAIL 2
#define DNS_RCODE_NXDOMAIN 3

/* Writes a recursive query for qname/qtype; returns its length or 0 if it
 * does not fit in cap. */
size_t dns_build_query(uint8_t *out, size_t cap, uint16_t id, const char *qname, uint16_t qtype);

/* Writes the response to that query with the given rcode; answer contents
 * (addresses, TTLs, CNAME use) are drawn from r. Returns the length or 0. */
size_t dns_build_response(uint8_t *out, size_t cap, uint16_t id, const char *qname,
                          uint16_t qtype, uint8_t rcode, struct rng *r);

/* Writes a NOERROR response whose one answer carries about data_len bytes
 * of opaque data, as a DNS tunnel's server sends its downstream: NULL
 * (raw bytes), TXT (base64 text in 255-byte strings) or CNAME (base32
 * labels under the query's last two labels). Other types get raw bytes in
 * a NULL answer. Returns the length or 0 if it does not fit in cap. */
size_t dns_build_data_response(uint8_t *out, size_t cap, uint16_t id, const char *qname,
                               uint16_t qtype, size_t data_len, struct rng *r);

#endif
