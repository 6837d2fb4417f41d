/* pktbuild.c — frame assembly: Ethernet (IEEE 802.3), 802.1Q, IPv4 (RFC 791),
 * IPv6 (RFC 8200), TCP (RFC 9293), UDP (RFC 768), ICMP (RFC 792), ICMPv6
 * (RFC 4443). Checksums per RFC 1071 with the pseudo-headers of RFC 9293
 * §3.1 and RFC 8200 §8.1. All multi-byte fields are written big-endian byte
 * by byte, never through a cast struct. */
#include "pktbuild.h"

#include "cksum.h"

#include <string.h>

#define ETH_MIN_FRAME 60 /* without the FCS */

static void put16(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static size_t l2_len(const struct pkt_ends *e)
{
    return e->vlan == PKT_VLAN_NONE ? 14 : 18;
}

static size_t l3_len(const struct pkt_ends *e)
{
    return e->ipver == 6 ? 40 : 20;
}

size_t pkt_l4_hdr_len(const struct pkt_ends *e, const struct pkt_hdr *h)
{
    switch (e->proto) {
    case 6:
        return 20 + (size_t)h->optlen;
    default: /* UDP, ICMP echo and ICMPv6 echo headers are all 8 bytes */
        return 8;
    }
}

size_t pkt_payload_offset(const struct pkt_ends *e, const struct pkt_hdr *h)
{
    return l2_len(e) + l3_len(e) + pkt_l4_hdr_len(e, h);
}

/* The pseudo-header sum for TCP, UDP and ICMPv6 (not ICMPv4). */
static uint64_t pseudo_sum(const struct pkt_ends *e, const uint8_t *src, const uint8_t *dst,
                           size_t l4len)
{
    uint8_t tail[8];
    uint64_t sum;
    if (e->ipver == 6) {
        sum = cksum_add(0, src, 16);
        sum = cksum_add(sum, dst, 16);
        put32(tail, (uint32_t)l4len);
        tail[4] = tail[5] = tail[6] = 0;
        tail[7] = e->proto;
        return cksum_add(sum, tail, 8);
    }
    sum = cksum_add(0, src, 4);
    sum = cksum_add(sum, dst, 4);
    tail[0] = 0;
    tail[1] = e->proto;
    put16(tail + 2, (uint32_t)l4len);
    return cksum_add(sum, tail, 4);
}

size_t pkt_finish(uint8_t *frame, const struct pkt_ends *e, const struct pkt_hdr *h,
                  size_t paylen, uint32_t *ip_len)
{
    const int d = h->dir ? 1 : 0;
    const uint8_t *src = e->ip[d], *dst = e->ip[!d];
    size_t l4hdr = pkt_l4_hdr_len(e, h);
    size_t l4len = l4hdr + paylen;
    uint8_t *p = frame;

    /* Ethernet II, with the 802.1Q tag between the addresses and the type. */
    memcpy(p, e->mac[!d], 6);
    memcpy(p + 6, e->mac[d], 6);
    p += 12;
    if (e->vlan != PKT_VLAN_NONE) {
        put16(p, 0x8100);
        put16(p + 2, e->vlan & 0x0fff); /* PCP 0, DEI 0 */
        p += 4;
    }
    put16(p, e->ipver == 6 ? 0x86dd : 0x0800);
    p += 2;

    uint8_t *ip = p;
    if (e->ipver == 6) {
        put32(ip, 0x60000000u | (e->flowlabel[d] & 0xfffff));
        put16(ip + 4, (uint32_t)l4len);
        ip[6] = e->proto;
        ip[7] = e->ttl[d];
        memcpy(ip + 8, src, 16);
        memcpy(ip + 24, dst, 16);
        *ip_len = (uint32_t)(40 + l4len);
        p += 40;
    } else {
        ip[0] = 0x45;
        ip[1] = 0;
        put16(ip + 2, (uint32_t)(20 + l4len));
        put16(ip + 4, h->ip_id);
        put16(ip + 6, 0x4000); /* DF, offset 0 */
        ip[8] = e->ttl[d];
        ip[9] = e->proto;
        ip[10] = ip[11] = 0;
        memcpy(ip + 12, src, 4);
        memcpy(ip + 16, dst, 4);
        put16(ip + 10, cksum_finish(cksum_add(0, ip, 20)));
        *ip_len = (uint32_t)(20 + l4len);
        p += 20;
    }

    uint8_t *l4 = p;
    uint64_t sum;
    uint16_t ck;
    switch (e->proto) {
    case 6:
        put16(l4, e->port[d]);
        put16(l4 + 2, e->port[!d]);
        put32(l4 + 4, h->seq);
        put32(l4 + 8, h->ack);
        l4[12] = (uint8_t)((l4hdr / 4) << 4);
        l4[13] = h->tcp_flags;
        put16(l4 + 14, h->win);
        put16(l4 + 16, 0);
        put16(l4 + 18, 0);
        if (h->optlen)
            memcpy(l4 + 20, h->opts, h->optlen);
        sum = pseudo_sum(e, src, dst, l4len);
        put16(l4 + 16, cksum_finish(cksum_add(sum, l4, l4len)));
        break;
    case 17:
        put16(l4, e->port[d]);
        put16(l4 + 2, e->port[!d]);
        put16(l4 + 4, (uint32_t)l4len);
        put16(l4 + 6, 0);
        sum = pseudo_sum(e, src, dst, l4len);
        ck = cksum_finish(cksum_add(sum, l4, l4len));
        put16(l4 + 6, ck ? ck : 0xffff); /* 0 means "no checksum" in UDP */
        break;
    default: /* ICMP (1) or ICMPv6 (58) echo */
        l4[0] = h->icmp_type;
        l4[1] = h->icmp_code;
        put16(l4 + 2, 0);
        put16(l4 + 4, h->icmp_id);
        put16(l4 + 6, h->icmp_seq);
        sum = e->proto == 58 ? pseudo_sum(e, src, dst, l4len) : 0;
        put16(l4 + 2, cksum_finish(cksum_add(sum, l4, l4len)));
        break;
    }

    size_t len = (size_t)(l4 - frame) + l4len;
    if (d == 1 && len < ETH_MIN_FRAME) {
        memset(frame + len, 0, ETH_MIN_FRAME - len);
        len = ETH_MIN_FRAME;
    }
    return len;
}
