/* pktbuild.h — builds one Ethernet frame: optional 802.1Q tag, IPv4 or IPv6,
 * then TCP, UDP, ICMP echo or ICMPv6 echo, with correct lengths and checksums.
 *
 * The caller writes the L4 payload straight into the frame at
 * pkt_payload_offset() (no copy), then pkt_finish() writes every header in
 * front of it. Direction 0 is the initiator's (the capture host's) side:
 * its frames leave unpadded, as a host sees its own packets; frames of
 * direction 1 arrive from the wire and are padded to the 60-byte Ethernet
 * minimum, so readers must take lengths from the IP header, not the frame.
 * Non-goals: IP options, IPv6 extension headers, fragments, tunnels. */
#ifndef VIGIL_GEN_PKTBUILD_H
#define VIGIL_GEN_PKTBUILD_H

#include <stddef.h>
#include <stdint.h>

#define PKT_FRAME_MAX 2048 /* Ethernet + 802.1Q + IPv6 + TCP with options + 1500 */
#define PKT_VLAN_NONE 0xffffu

/* What stays the same for every packet of a flow. Index 0 is the initiator. */
struct pkt_ends {
    uint8_t mac[2][6];
    uint16_t vlan;         /* 0..4094, or PKT_VLAN_NONE for an untagged frame */
    uint8_t ipver;         /* 4 or 6 */
    uint8_t proto;         /* 6 TCP, 17 UDP, 1 ICMP, 58 ICMPv6 */
    uint8_t ip[2][16];     /* network order; IPv4 uses the first 4 bytes */
    uint16_t port[2];      /* host order; unused for ICMP */
    uint8_t ttl[2];        /* TTL / hop limit as seen at the capture point */
    uint32_t flowlabel[2]; /* IPv6 flow label (20 bits) per direction */
};

/* What changes per packet. */
struct pkt_hdr {
    uint8_t dir;           /* 0: initiator to responder, 1: the reverse */
    uint16_t ip_id;        /* IPv4 identification */
    /* TCP */
    uint8_t tcp_flags;     /* FIN 0x01 SYN 0x02 RST 0x04 PSH 0x08 ACK 0x10 ... */
    uint32_t seq, ack;
    uint16_t win;
    const uint8_t *opts;   /* borrowed; optlen bytes, a multiple of 4, <= 40 */
    uint8_t optlen;
    /* ICMP / ICMPv6 echo */
    uint8_t icmp_type, icmp_code;
    uint16_t icmp_id, icmp_seq;
};

/* Length of the L4 header these ends and this header produce. */
size_t pkt_l4_hdr_len(const struct pkt_ends *e, const struct pkt_hdr *h);

/* Offset in the frame where the L4 payload starts. */
size_t pkt_payload_offset(const struct pkt_ends *e, const struct pkt_hdr *h);

/* Writes the headers in front of the `paylen` payload bytes already at
 * frame + pkt_payload_offset() and fills every checksum. `frame` must hold
 * PKT_FRAME_MAX bytes. Returns the frame length; *ip_len (OUT) receives the
 * IP-layer length (IPv4 total length, or 40 + IPv6 payload length). */
size_t pkt_finish(uint8_t *frame, const struct pkt_ends *e, const struct pkt_hdr *h,
                  size_t paylen, uint32_t *ip_len);

#endif
