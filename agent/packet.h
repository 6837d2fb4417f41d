/* packet.h — one decoded packet, as the decoder hands it to the flow table.
 *
 * Everything here is copied out of the frame (addresses, ports, lengths),
 * except `payload`, which borrows the capture buffer and is valid only
 * while the packet is being processed. Lengths come from the IP and
 * transport headers (what was sent), `payload_caplen` from what was
 * captured (what may be read). */
#ifndef VIGIL_PACKET_H
#define VIGIL_PACKET_H

#include "addr.h"

#include <stdbool.h>
#include <stdint.h>

/* TCP flag bits as on the wire (RFC 9293, RFC 3168). */
#define TCP_FIN 0x01
#define TCP_SYN 0x02
#define TCP_RST 0x04
#define TCP_PSH 0x08
#define TCP_ACK 0x10
#define TCP_URG 0x20
#define TCP_ECE 0x40
#define TCP_CWR 0x80

#define IPPROTO_NUM_ICMP 1
#define IPPROTO_NUM_TCP 6
#define IPPROTO_NUM_UDP 17
#define IPPROTO_NUM_ICMPV6 58
#define IPPROTO_NUM_SCTP 132

enum frag_kind {
    FRAG_NONE = 0, /* not a fragment */
    FRAG_FIRST,    /* offset 0, more fragments follow: carries the ports */
    FRAG_LATER,    /* offset > 0: no transport header */
};

/* The canonical bidirectional flow key: the lower (address, port) endpoint
 * first, so both directions of a conversation have the same key. Built by
 * flowtab_prepare(). */
struct flow_key {
    uint8_t addr[2][16];
    uint16_t port[2];
    uint32_t icmp;      /* ICMP: query class and identifier, or error type/code */
    uint16_t vlan;
    uint8_t proto;
    uint8_t pad;
};
_Static_assert(sizeof(struct flow_key) == 44, "flow key is packed");

struct pkt {
    int64_t ts_ns;           /* capture time, ns since the epoch */
    uint32_t ip_len;         /* IP-layer bytes of the (innermost) packet, header included */
    uint8_t family;          /* 4 or 6 */
    uint8_t proto;           /* innermost transport protocol (IANA) */
    uint16_t vlan;           /* outermost VLAN ID, VLAN_NONE if untagged */
    uint8_t tunnel;          /* enum tunnel_kind, outermost */
    uint8_t frag;            /* enum frag_kind */
    uint32_t frag_id;        /* IPv4 identification or IPv6 fragment id */
    struct vigil_addr src, dst;
    bool has_ports;          /* TCP, UDP, SCTP with the header present */
    uint16_t sport, dport;   /* host order */
    uint8_t tcp_flags;
    uint32_t tcp_seq, tcp_ack;
    bool has_icmp;
    uint8_t icmp_type, icmp_code;
    uint16_t icmp_id;        /* echo identifier (0 when not an echo) */
    uint32_t payload_len;    /* transport payload length as sent */
    uint32_t payload_caplen; /* bytes of it present in the capture */
    const uint8_t *payload;  /* borrowed: the captured payload */
    /* Set by flowtab_prepare() (on the capture thread), so the flow thread
     * finds the flow without rebuilding the key: */
    bool has_key;
    int8_t key_side;         /* 0 if src is key.addr[0] */
    uint64_t hash;           /* keyed hash of key */
    struct flow_key key;
};

#endif
