/* decode.h — from a captured frame to a struct pkt, bounds-checked.
 *
 * One decode_* function per layer, each citing its specification. Every
 * read goes through common/cursor.h against the captured length; lengths
 * that decide what was sent (IP total length) are also checked against the
 * frame's length on the wire. A malformed packet is counted under its
 * reason and dropped: never a crash, never a read past the capture.
 *
 * Encapsulations (VLAN, MPLS, PPPoE, GRE, VXLAN, Geneve, IP-in-IP) are
 * unwrapped up to DECODE_MAX_DEPTH layers; the innermost IP packet is the
 * flow, with the outermost tunnel noted. If an inner packet is malformed,
 * the packet is attributed to the outer flow instead of being lost. */
#ifndef VIGIL_DECODE_H
#define VIGIL_DECODE_H

#include "packet.h"

#include <stdint.h>

#define DECODE_MAX_DEPTH 8    /* nested encapsulations (tunnels, MPLS stacks count once) */
#define DECODE_MAX_VLAN_TAGS 8
#define DECODE_MAX_IPV6_EXT 128 /* extension headers walked; the packet length bounds it too */

enum decode_result {
    DECODE_OK = 0,    /* *out describes an IP packet */
    DECODE_NOT_IP,    /* a valid frame without IP (ARP, STP...): not a flow, not an error */
    DECODE_MALFORMED, /* counted under a reason */
};

enum decode_error {
    DEC_ERR_UNSUPPORTED_LINK = 0,
    DEC_ERR_SHORT_LINK,   /* link header cut short */
    DEC_ERR_BAD_IP_VERSION,
    DEC_ERR_SHORT_IP,     /* IP header cut short */
    DEC_ERR_BAD_IP_HLEN,  /* IPv4 IHL < 5 or beyond total length */
    DEC_ERR_BAD_IP_LEN,   /* total/payload length beyond the frame on the wire */
    DEC_ERR_BAD_IPV6_EXT, /* extension header chain malformed or too long */
    DEC_ERR_SHORT_L4,     /* transport header cut short in the capture */
    DEC_ERR_BAD_L4,       /* transport header lengths inconsistent */
    DEC_ERR_TOO_DEEP,     /* encapsulation deeper than DECODE_MAX_DEPTH */
    DEC_ERR_COUNT
};

struct decode_stats {
    uint64_t err[DEC_ERR_COUNT];
    uint64_t not_ip;          /* frames without IP */
    uint64_t tunnel_fallback; /* inner packet malformed, counted on the outer flow */
};

struct decode_ctx {
    struct decode_stats stats;
};

/* Decodes one frame of link type `dlt` (a DLT_* value as pcap_datalink()
 * returns). caplen bytes are readable at frame; wirelen is the original
 * length. On DECODE_OK, *out is filled (out->payload borrows frame). */
enum decode_result decode_packet(struct decode_ctx *ctx, int dlt, const uint8_t *frame,
                                 uint32_t caplen, uint32_t wirelen, int64_t ts_ns,
                                 struct pkt *out);

/* Is this link type decodable? */
bool decode_link_supported(int dlt);

const char *decode_error_name(enum decode_error e);

uint64_t decode_errors_total(const struct decode_stats *s);

#endif
