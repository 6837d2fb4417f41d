/* cksum.h — the Internet checksum (RFC 1071) for IPv4, TCP, UDP, ICMP, ICMPv6.
 *
 * Sums are kept as host integers of big-endian 16-bit words, so the result
 * is the value to store big-endian in the header. A sum can be built from
 * several pieces (pseudo-header, then the segment); every piece but the last
 * must have an even length. */
#ifndef VIGIL_GEN_CKSUM_H
#define VIGIL_GEN_CKSUM_H

#include <stddef.h>
#include <stdint.h>

/* Adds the bytes at p to the running sum and returns the new sum. */
uint64_t cksum_add(uint64_t sum, const uint8_t *p, size_t n);

/* Folds a running sum to 16 bits and complements it: the checksum field. */
uint16_t cksum_finish(uint64_t sum);

#endif
