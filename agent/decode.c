/* decode.c — link, network and transport decoding of one captured frame.
 *
 * The walk keeps two lengths: the cursor bounds what was captured (what may
 * be read) and `wire` bounds what was sent from the current position (what
 * length fields may claim). A length field that claims more than was sent is
 * malformed; one that claims more than was captured is ordinary snap-length
 * truncation and only limits what is inspected.
 *
 * Non-goals: checksum verification (flow monitors count what was sent),
 * IP reassembly (fragtab.c attributes later fragments to their flow). */
#include "decode.h"

#include "cursor.h"
#include "flowrec.h"

#include <pcap/dlt.h>
#include <string.h>

/* EtherTypes (IEEE registry) used below. */
#define ETH_IPV4 0x0800
#define ETH_IPV6 0x86dd
#define ETH_VLAN 0x8100
#define ETH_QINQ 0x88a8
#define ETH_QINQ_OLD1 0x9100
#define ETH_QINQ_OLD2 0x9200
#define ETH_MPLS_UC 0x8847
#define ETH_MPLS_MC 0x8848
#define ETH_PPPOE_SESS 0x8864
#define ETH_CISCO_MD 0x8909
#define ETH_TEB 0x6558 /* transparent Ethernet bridging (GRE, Geneve) */
#define ETH_ERSPAN2 0x88be
#define ETH_ERSPAN3 0x22eb
#define ETH_PPP 0x880b

/* PPP protocol numbers (RFC 1661, RFC 5072, RFC 3032). */
#define PPP_IPV4 0x0021
#define PPP_IPV6 0x0057
#define PPP_MPLS 0x0281

/* Well-known UDP ports of tunnels. */
#define PORT_VXLAN 4789
#define PORT_VXLAN_GPE 4790
#define PORT_GENEVE 6081
#define PORT_MPLS_UDP 6635

#define LINKTYPE_RAW 101 /* the on-disk value, if a libpcap build passes it through */

struct dstate {
    struct cursor c;       /* captured bytes from the current layer on */
    uint64_t wire;         /* bytes sent from the current layer on */
    unsigned depth;        /* encapsulations entered */
    unsigned vlan_tags;
    struct pkt *out;
    struct decode_ctx *ctx;
};

static enum decode_result decode_ethertype(struct dstate *st, uint16_t type);
static enum decode_result decode_snap(struct dstate *st);
static enum decode_result decode_ip(struct dstate *st, int want_version);
static enum decode_result decode_ethernet(struct dstate *st);

static enum decode_result fail(struct dstate *st, enum decode_error e)
{
    st->ctx->stats.err[e]++;
    return DECODE_MALFORMED;
}

/* Moves past n bytes that were checked present. */
static void advance(struct dstate *st, size_t n)
{
    st->c.p += n;
    st->wire = st->wire >= n ? st->wire - n : 0;
}

/* Accounts n bytes that were read through the cursor as used on the wire. */
static void wire_used(struct dstate *st, size_t n)
{
    st->wire = st->wire >= n ? st->wire - n : 0;
}

/* Skips n link-layer bytes, or fails as a short link header. */
static bool skip_link(struct dstate *st, size_t n)
{
    if (!cur_has(&st->c, n))
        return false;
    advance(st, n);
    return true;
}

/* Runs an inner decoder for a tunnel payload. The outer packet is already
 * fully described in st->out; if the inner one is not a decodable IP packet
 * the outer description and the counters are restored, so the packet still
 * counts, on the outer flow. */
static enum decode_result enter_tunnel(struct dstate *st, enum tunnel_kind kind,
                                       enum decode_result (*inner)(struct dstate *))
{
    struct pkt saved = *st->out;
    struct decode_stats saved_stats = st->ctx->stats;
    struct dstate inner_st = *st;

    if (++inner_st.depth > DECODE_MAX_DEPTH) {
        st->ctx->stats.err[DEC_ERR_TOO_DEEP]++;
        return DECODE_OK;
    }
    if (st->out->tunnel == TUNNEL_NONE)
        st->out->tunnel = (uint8_t)kind;
    enum decode_result r = inner(&inner_st);
    if (r == DECODE_OK)
        return DECODE_OK;
    *st->out = saved;
    st->ctx->stats = saved_stats;
    st->ctx->stats.tunnel_fallback++;
    return DECODE_OK;
}

/* ---- transport ------------------------------------------------------- */

/* Sets the payload view: `len` bytes were sent, what the capture holds of
 * them may be read. */
static void set_payload(struct dstate *st, uint64_t len)
{
    struct pkt *o = st->out;
    size_t have = cur_left(&st->c);
    o->payload_len = len > UINT32_MAX ? UINT32_MAX : (uint32_t)len;
    o->payload_caplen = (uint32_t)(have < len ? have : len);
    o->payload = st->c.p;
}

static enum decode_result decode_vxlan(struct dstate *st);
static enum decode_result decode_vxlan_gpe(struct dstate *st);
static enum decode_result decode_geneve(struct dstate *st);
static enum decode_result decode_mpls(struct dstate *st);

/* TCP header, RFC 9293 §3.1. Snap-length truncation after the ports is
 * tolerated (the flow is still counted); a data offset that cannot be right
 * is not. */
static enum decode_result decode_tcp(struct dstate *st, uint64_t l4len)
{
    struct pkt *o = st->out;
    struct cursor h = st->c;
    uint8_t off_byte, flags;

    bool first_frag = o->frag == FRAG_FIRST; /* may hold only part of the header */
    if (l4len < 20 && !first_frag)
        return fail(st, DEC_ERR_BAD_L4);
    if (!cur_be16(&h, &o->sport) || !cur_be16(&h, &o->dport))
        return fail(st, DEC_ERR_SHORT_L4);
    o->has_ports = true;
    if (!cur_be32(&h, &o->tcp_seq) || !cur_be32(&h, &o->tcp_ack) || !cur_u8(&h, &off_byte) ||
        !cur_u8(&h, &flags)) {
        o->payload_len = 0; /* header cut by the snap length: count, inspect nothing */
        return DECODE_OK;
    }
    unsigned hlen = (unsigned)(off_byte >> 4) * 4;
    if (hlen < 20 || (hlen > l4len && !first_frag))
        return fail(st, DEC_ERR_BAD_L4);
    o->tcp_flags = flags;
    if (hlen > l4len) {
        o->payload_len = 0;
        return DECODE_OK;
    }
    if (!cur_skip(&st->c, hlen)) {
        st->c.p = st->c.end;
        o->payload_len = (uint32_t)(l4len - hlen);
        o->payload_caplen = 0;
        return DECODE_OK;
    }
    set_payload(st, l4len - hlen);
    return DECODE_OK;
}

/* UDP header, RFC 768. The UDP length bounds the payload inspected (so a
 * datagram's padding is never parsed); 0 is allowed for IPv6 jumbograms. */
static enum decode_result decode_udp(struct dstate *st, uint64_t l4len)
{
    struct pkt *o = st->out;
    uint16_t ulen;

    if (l4len < 8 && o->frag != FRAG_FIRST)
        return fail(st, DEC_ERR_BAD_L4);
    if (!cur_be16(&st->c, &o->sport) || !cur_be16(&st->c, &o->dport))
        return fail(st, DEC_ERR_SHORT_L4);
    o->has_ports = true;
    if (l4len < 8 || !cur_be16(&st->c, &ulen) || !cur_skip(&st->c, 2)) {
        o->payload_len = 0;
        return DECODE_OK;
    }
    uint64_t plen = l4len - 8;
    if (ulen >= 8 && ulen - 8u < plen)
        plen = ulen - 8u;
    else if (ulen != 0 && ulen < 8)
        plen = 0;
    st->wire = plen;
    cur_limit(&st->c, (size_t)plen);
    set_payload(st, plen);
    if (o->frag != FRAG_NONE || plen == 0)
        return DECODE_OK;

    uint16_t sp = o->sport, dp = o->dport;
    if (dp == PORT_VXLAN || sp == PORT_VXLAN)
        return enter_tunnel(st, TUNNEL_VXLAN, decode_vxlan);
    if (dp == PORT_VXLAN_GPE || sp == PORT_VXLAN_GPE)
        return enter_tunnel(st, TUNNEL_VXLAN, decode_vxlan_gpe);
    if (dp == PORT_GENEVE || sp == PORT_GENEVE)
        return enter_tunnel(st, TUNNEL_GENEVE, decode_geneve);
    if (dp == PORT_MPLS_UDP || sp == PORT_MPLS_UDP)
        return enter_tunnel(st, TUNNEL_MPLS_UDP, decode_mpls);
    return DECODE_OK;
}

/* SCTP common header, RFC 9260 §3.1: ports, then the verification tag and checksum. */
static enum decode_result decode_sctp(struct dstate *st, uint64_t l4len)
{
    struct pkt *o = st->out;
    if (l4len < 12)
        return fail(st, DEC_ERR_BAD_L4);
    if (!cur_be16(&st->c, &o->sport) || !cur_be16(&st->c, &o->dport))
        return fail(st, DEC_ERR_SHORT_L4);
    o->has_ports = true;
    if (cur_skip(&st->c, 8))
        set_payload(st, l4len - 12);
    return DECODE_OK;
}

/* ICMP (RFC 792) and ICMPv6 (RFC 4443): type and code; the identifier of
 * query/reply pairs so a request and its reply share a flow. Errors quote an
 * offending packet, which is not decoded as traffic of its own. */
static enum decode_result decode_icmp(struct dstate *st, uint64_t l4len, bool v6)
{
    struct pkt *o = st->out;
    if (l4len < 2)
        return fail(st, DEC_ERR_BAD_L4);
    if (!cur_u8(&st->c, &o->icmp_type) || !cur_u8(&st->c, &o->icmp_code))
        return fail(st, DEC_ERR_SHORT_L4);
    o->has_icmp = true;
    uint8_t t = o->icmp_type;
    bool query = v6 ? (t == 128 || t == 129)
                    : (t == 0 || t == 8 || t == 13 || t == 14 || t == 15 || t == 16 ||
                       t == 17 || t == 18);
    if (query && cur_skip(&st->c, 2))
        (void)cur_be16(&st->c, &o->icmp_id);
    return DECODE_OK;
}

static enum decode_result decode_transport(struct dstate *st, uint8_t proto, uint64_t l4len)
{
    st->out->proto = proto;
    if (st->out->frag == FRAG_LATER)
        return DECODE_OK; /* no transport header in a later fragment */
    switch (proto) {
    case IPPROTO_NUM_TCP: return decode_tcp(st, l4len);
    case IPPROTO_NUM_UDP: return decode_udp(st, l4len);
    case IPPROTO_NUM_SCTP: return decode_sctp(st, l4len);
    case IPPROTO_NUM_ICMP: return decode_icmp(st, l4len, false);
    case IPPROTO_NUM_ICMPV6: return decode_icmp(st, l4len, true);
    default:
        set_payload(st, l4len);
        return DECODE_OK;
    }
}

/* ---- tunnels --------------------------------------------------------- */

static enum decode_result decode_ip_any(struct dstate *st)
{
    return decode_ip(st, 0);
}

/* GRE, RFC 2784 with the key and sequence fields of RFC 2890; version 1 is
 * PPTP's enhanced GRE (RFC 2637 §4.1). ERSPAN types II and III carry
 * Ethernet after their own header. */
static enum decode_result decode_gre(struct dstate *st)
{
    uint16_t flags, proto;
    if (!cur_be16(&st->c, &flags) || !cur_be16(&st->c, &proto))
        return fail(st, DEC_ERR_SHORT_LINK);
    unsigned version = flags & 7;
    size_t opt = 0;
    if (version == 0) {
        if (flags & 0x4000) /* source routing (RFC 1701): not followed */
            return fail(st, DEC_ERR_SHORT_LINK);
        opt += (flags & 0x8000) ? 4 : 0;
        opt += (flags & 0x2000) ? 4 : 0;
        opt += (flags & 0x1000) ? 4 : 0;
    } else if (version == 1) {
        opt = 4 + ((flags & 0x1000) ? 4 : 0) + ((flags & 0x0080) ? 4 : 0);
    } else {
        return fail(st, DEC_ERR_SHORT_LINK);
    }
    wire_used(st, 4);
    if (!skip_link(st, opt))
        return fail(st, DEC_ERR_SHORT_LINK);

    switch (proto) {
    case ETH_ERSPAN2:
        /* ERSPAN type II has an 8-byte header; type I (no sequence bit) has none. */
        if ((flags & 0x1000) && !skip_link(st, 8))
            return fail(st, DEC_ERR_SHORT_LINK);
        return decode_ethernet(st);
    case ETH_ERSPAN3: {
        uint8_t b;
        if (!cur_peek_u8(&st->c, 11, &b) || !skip_link(st, 12))
            return fail(st, DEC_ERR_SHORT_LINK);
        if ((b & 1) && !skip_link(st, 8)) /* optional platform-specific subheader */
            return fail(st, DEC_ERR_SHORT_LINK);
        return decode_ethernet(st);
    }
    case ETH_TEB:
        return decode_ethernet(st);
    case ETH_PPP: {
        uint8_t b0, b1;
        if (cur_peek_u8(&st->c, 0, &b0) && cur_peek_u8(&st->c, 1, &b1) && b0 == 0xff && b1 == 0x03)
            advance(st, 2);
        uint8_t p0;
        uint16_t pp;
        if (!cur_peek_u8(&st->c, 0, &p0))
            return fail(st, DEC_ERR_SHORT_LINK);
        if (p0 & 1) { /* protocol-field compression (RFC 1661 §6.5) */
            advance(st, 1);
            pp = p0;
        } else if (!cur_be16(&st->c, &pp)) {
            return fail(st, DEC_ERR_SHORT_LINK);
        } else {
            wire_used(st, 2);
        }
        if (pp == PPP_IPV4 || pp == PPP_IPV6)
            return decode_ip_any(st);
        return DECODE_NOT_IP;
    }
    case ETH_CISCO_MD: {
        /* Cisco MetaData inside GRE: the inner EtherType comes first, then
         * version, length (in 4-byte units beyond the first word), options. */
        uint16_t inner;
        uint8_t len;
        if (!cur_be16(&st->c, &inner) || !cur_skip(&st->c, 1) || !cur_u8(&st->c, &len))
            return fail(st, DEC_ERR_SHORT_LINK);
        wire_used(st, 4);
        if (!skip_link(st, (size_t)len * 4))
            return fail(st, DEC_ERR_SHORT_LINK);
        return decode_ethertype(st, inner);
    }
    default:
        return decode_ethertype(st, proto);
    }
}

/* VXLAN, RFC 7348 §5: 8-byte header, then an Ethernet frame. */
static enum decode_result decode_vxlan(struct dstate *st)
{
    if (!skip_link(st, 8))
        return fail(st, DEC_ERR_SHORT_LINK);
    return decode_ethernet(st);
}

/* VXLAN-GPE (draft-ietf-nvo3-vxlan-gpe §3): like VXLAN, with a next-protocol
 * byte when the P flag is set; without it the payload is Ethernet. */
static enum decode_result decode_vxlan_gpe(struct dstate *st)
{
    uint8_t flags, next;
    if (!cur_peek_u8(&st->c, 0, &flags) || !cur_peek_u8(&st->c, 3, &next) || !skip_link(st, 8))
        return fail(st, DEC_ERR_SHORT_LINK);
    if (!(flags & 0x04) || next == 3)
        return decode_ethernet(st);
    if (next == 1 || next == 2)
        return decode_ip_any(st);
    if (next == 5)
        return decode_mpls(st);
    return DECODE_NOT_IP;
}

/* Geneve, RFC 8926 §3.4: 8-byte header plus options, protocol as an EtherType. */
static enum decode_result decode_geneve(struct dstate *st)
{
    uint8_t b0;
    uint16_t proto;
    struct cursor c = st->c;
    if (!cur_u8(&c, &b0) || !cur_skip(&c, 1) || !cur_be16(&c, &proto))
        return fail(st, DEC_ERR_SHORT_LINK);
    if ((b0 >> 6) != 0)
        return fail(st, DEC_ERR_SHORT_LINK);
    size_t hlen = 8 + (size_t)(b0 & 0x3f) * 4;
    if (!skip_link(st, hlen))
        return fail(st, DEC_ERR_SHORT_LINK);
    if (proto == ETH_TEB)
        return decode_ethernet(st);
    return decode_ethertype(st, proto);
}

/* MPLS label stack, RFC 3032 §2.1: 4-byte entries until bottom-of-stack.
 * What follows has no type field: the first nibble tells IPv4 or IPv6, and
 * a zero nibble is a pseudowire control word (RFC 4385) before Ethernet. */
static enum decode_result decode_mpls(struct dstate *st)
{
    for (unsigned i = 0;; i++) {
        uint32_t entry;
        if (i >= 16 || !cur_be32(&st->c, &entry))
            return fail(st, DEC_ERR_SHORT_LINK);
        wire_used(st, 4);
        if (entry & 0x100)
            break;
    }
    uint8_t b;
    if (!cur_peek_u8(&st->c, 0, &b))
        return fail(st, DEC_ERR_SHORT_LINK);
    switch (b >> 4) {
    case 4:
    case 6: return decode_ip_any(st);
    case 0:
        if (!skip_link(st, 4))
            return fail(st, DEC_ERR_SHORT_LINK);
        return decode_ethernet(st);
    default: return DECODE_NOT_IP;
    }
}

/* ---- network --------------------------------------------------------- */

static enum decode_result decode_ip_payload(struct dstate *st, uint8_t proto, uint64_t l4len)
{
    struct pkt *o = st->out;
    if (o->frag == FRAG_NONE) {
        switch (proto) {
        case 4:
        case 41:
            o->proto = proto;
            set_payload(st, l4len);
            return enter_tunnel(st, TUNNEL_IPIP, decode_ip_any);
        case 47:
            o->proto = proto;
            set_payload(st, l4len);
            return enter_tunnel(st, TUNNEL_GRE, decode_gre);
        case 137: /* MPLS in IP, RFC 4023 */
            o->proto = proto;
            set_payload(st, l4len);
            return enter_tunnel(st, TUNNEL_IPIP, decode_mpls);
        default: break;
        }
    }
    return decode_transport(st, proto, l4len);
}

/* Starts a new IP layer: resets what an outer layer said about transport. */
static void reset_transport(struct pkt *o)
{
    o->has_ports = false;
    o->sport = o->dport = 0;
    o->tcp_flags = 0;
    o->has_icmp = false;
    o->icmp_type = o->icmp_code = 0;
    o->icmp_id = 0;
    o->frag = FRAG_NONE;
    o->frag_id = 0;
    o->payload = NULL;
    o->payload_len = o->payload_caplen = 0;
}

/* IPv4, RFC 791 §3.1. A total length of 0 is what Linux writes for
 * TSO/BIG TCP super-packets (RFC 791 allows no such value); the frame's
 * length then stands in for it. */
static enum decode_result decode_ipv4(struct dstate *st)
{
    struct pkt *o = st->out;
    struct cursor h = st->c;
    uint8_t vihl, proto;
    uint16_t totlen, id, fragoff;
    uint8_t src[4], dst[4];

    if (!cur_u8(&h, &vihl) || !cur_skip(&h, 1) || !cur_be16(&h, &totlen) || !cur_be16(&h, &id) ||
        !cur_be16(&h, &fragoff) || !cur_skip(&h, 1) || !cur_u8(&h, &proto) || !cur_skip(&h, 2) ||
        !cur_bytes(&h, src, 4) || !cur_bytes(&h, dst, 4))
        return fail(st, DEC_ERR_SHORT_IP);
    if ((vihl >> 4) != 4)
        return fail(st, DEC_ERR_BAD_IP_VERSION);
    unsigned hlen = (unsigned)(vihl & 15) * 4;
    if (hlen < 20)
        return fail(st, DEC_ERR_BAD_IP_HLEN);
    uint64_t len = totlen ? totlen : st->wire;
    if (len < hlen)
        return fail(st, DEC_ERR_BAD_IP_HLEN);
    if (len > st->wire)
        return fail(st, DEC_ERR_BAD_IP_LEN);
    if (!cur_has(&st->c, hlen))
        return fail(st, DEC_ERR_SHORT_IP);

    reset_transport(o);
    o->family = 4;
    o->ip_len = (uint32_t)len;
    addr_from_v4(&o->src, src);
    addr_from_v4(&o->dst, dst);
    o->proto = proto;
    unsigned offset = (unsigned)(fragoff & 0x1fff) * 8;
    if (offset > 0) {
        o->frag = FRAG_LATER;
        o->frag_id = id;
    } else if (fragoff & 0x2000) {
        o->frag = FRAG_FIRST;
        o->frag_id = id;
    }
    advance(st, hlen);
    st->wire = len - hlen;
    cur_limit(&st->c, (size_t)(len - hlen));
    return decode_ip_payload(st, proto, len - hlen);
}

/* Hop-by-Hop options (RFC 8200 §4.3): finds a Jumbo Payload option
 * (RFC 2675 §2) and returns its length, or 0. */
static uint32_t ipv6_jumbo_length(struct cursor opts)
{
    while (cur_left(&opts) > 0) {
        uint8_t type, len;
        if (!cur_u8(&opts, &type))
            return 0;
        if (type == 0) /* Pad1 */
            continue;
        if (!cur_u8(&opts, &len))
            return 0;
        if (type == 0xc2 && len == 4) {
            uint32_t jumbo;
            return cur_be32(&opts, &jumbo) ? jumbo : 0;
        }
        if (!cur_skip(&opts, len))
            return 0;
    }
    return 0;
}

/* IPv6, RFC 8200 §3, walking the extension headers of §4 to the upper
 * layer. A Fragment header with a non-zero offset ends the walk: the rest
 * of the chain is in the first fragment. */
static enum decode_result decode_ipv6(struct dstate *st)
{
    struct pkt *o = st->out;
    uint32_t vtcfl = 0;
    uint16_t plen = 0;
    uint8_t next = 0;

    if (!cur_has(&st->c, 40))
        return fail(st, DEC_ERR_SHORT_IP);
    struct cursor h = st->c;
    (void)cur_be32(&h, &vtcfl);
    (void)cur_be16(&h, &plen);
    (void)cur_u8(&h, &next);
    if ((vtcfl >> 28) != 6)
        return fail(st, DEC_ERR_BAD_IP_VERSION);
    reset_transport(o);
    o->family = 6;
    memcpy(o->src.b, st->c.p + 8, 16);
    memcpy(o->dst.b, st->c.p + 24, 16);
    if (st->wire < 40)
        return fail(st, DEC_ERR_BAD_IP_LEN);
    advance(st, 40);

    uint64_t payload = plen;
    bool jumbo_wanted = plen == 0;
    if (jumbo_wanted)
        payload = st->wire; /* until a Jumbo option says otherwise */
    if (payload > st->wire)
        return fail(st, DEC_ERR_BAD_IP_LEN);
    st->wire = payload;
    cur_limit(&st->c, (size_t)payload);

    uint64_t used = 0;
    for (unsigned n = 0;; n++) {
        size_t hlen;
        uint8_t nh, hl;
        switch (next) {
        case 0:  /* Hop-by-Hop */
        case 43: /* Routing */
        case 60: /* Destination Options */
        case 51: /* Authentication Header, RFC 4302 §2.2: length in 4-byte units */
            if (n >= DECODE_MAX_IPV6_EXT || !cur_peek_u8(&st->c, 0, &nh) ||
                !cur_peek_u8(&st->c, 1, &hl))
                return fail(st, DEC_ERR_BAD_IPV6_EXT);
            hlen = next == 51 ? ((size_t)hl + 2) * 4 : ((size_t)hl + 1) * 8;
            if (!cur_has(&st->c, hlen) || used + hlen > payload)
                return fail(st, DEC_ERR_BAD_IPV6_EXT);
            if (next == 0 && n == 0 && jumbo_wanted) {
                uint32_t j = ipv6_jumbo_length(cur_make(st->c.p + 2, hlen - 2));
                if (j != 0) {
                    if (j > payload)
                        return fail(st, DEC_ERR_BAD_IP_LEN);
                    payload = j;
                }
            }
            advance(st, hlen);
            used += hlen;
            next = nh;
            continue;
        case 44: { /* Fragment, RFC 8200 §4.5 */
            uint16_t offlg;
            uint32_t id;
            struct cursor f = st->c;
            if (n >= DECODE_MAX_IPV6_EXT || !cur_u8(&f, &nh) || !cur_skip(&f, 1) ||
                !cur_be16(&f, &offlg) || !cur_be32(&f, &id) || used + 8 > payload)
                return fail(st, DEC_ERR_BAD_IPV6_EXT);
            advance(st, 8);
            used += 8;
            next = nh;
            if ((offlg >> 3) != 0) {
                o->frag = FRAG_LATER;
                o->frag_id = id;
            } else if (offlg & 1) {
                o->frag = FRAG_FIRST;
                o->frag_id = id;
            }
            if (o->frag == FRAG_LATER)
                break;
            continue;
        }
        default: break;
        }
        break;
    }
    o->ip_len = (uint32_t)(payload + 40 > UINT32_MAX ? UINT32_MAX : payload + 40);
    o->proto = next;
    st->wire = payload - used;
    cur_limit(&st->c, (size_t)(payload - used));
    return decode_ip_payload(st, next, payload - used);
}

/* Dispatches on the version nibble, or insists on one (want_version 4 or 6). */
static enum decode_result decode_ip(struct dstate *st, int want_version)
{
    uint8_t b;
    if (!cur_peek_u8(&st->c, 0, &b))
        return fail(st, DEC_ERR_SHORT_IP);
    int v = b >> 4;
    if ((want_version && v != want_version) || (v != 4 && v != 6))
        return fail(st, DEC_ERR_BAD_IP_VERSION);
    return v == 4 ? decode_ipv4(st) : decode_ipv6(st);
}

/* ---- link ------------------------------------------------------------ */

/* PPPoE session stage, RFC 2516 §4: 6-byte header, then a PPP protocol. */
static enum decode_result decode_pppoe(struct dstate *st)
{
    uint16_t proto;
    if (!skip_link(st, 6) || !cur_be16(&st->c, &proto))
        return fail(st, DEC_ERR_SHORT_LINK);
    wire_used(st, 2);
    if (proto == PPP_IPV4)
        return decode_ip(st, 4);
    if (proto == PPP_IPV6)
        return decode_ip(st, 6);
    if (proto == PPP_MPLS)
        return decode_mpls(st);
    st->ctx->stats.not_ip++;
    return DECODE_NOT_IP;
}

static enum decode_result decode_ethertype(struct dstate *st, uint16_t type)
{
    for (;;) {
        switch (type) {
        case ETH_IPV4: return decode_ip(st, 4);
        case ETH_IPV6: return decode_ip(st, 6);
        case ETH_VLAN:
        case ETH_QINQ:
        case ETH_QINQ_OLD1:
        case ETH_QINQ_OLD2: { /* IEEE 802.1Q tag: TCI, then the next EtherType */
            uint16_t tci;
            if (++st->vlan_tags > DECODE_MAX_VLAN_TAGS)
                return fail(st, DEC_ERR_TOO_DEEP);
            if (!cur_be16(&st->c, &tci) || !cur_be16(&st->c, &type))
                return fail(st, DEC_ERR_SHORT_LINK);
            wire_used(st, 4);
            if (st->out->vlan == VLAN_NONE)
                st->out->vlan = tci & 0x0fff;
            continue;
        }
        case ETH_MPLS_UC:
        case ETH_MPLS_MC: return decode_mpls(st);
        case ETH_PPPOE_SESS: return decode_pppoe(st);
        case ETH_CISCO_MD: { /* Cisco MetaData: version, length (4-byte units), options, EtherType */
            uint8_t ver, len;
            if (!cur_peek_u8(&st->c, 0, &ver) || !cur_peek_u8(&st->c, 1, &len))
                return fail(st, DEC_ERR_SHORT_LINK);
            size_t total = 4 + (size_t)len * 4;
            if (!cur_has(&st->c, total))
                return fail(st, DEC_ERR_SHORT_LINK);
            type = (uint16_t)(st->c.p[total - 2] << 8 | st->c.p[total - 1]);
            advance(st, total);
            continue;
        }
        default:
            st->ctx->stats.not_ip++;
            return DECODE_NOT_IP;
        }
    }
}

/* IEEE 802.3 with an 802.2 LLC header; SNAP (AA-AA-03) carries an EtherType. */
static enum decode_result decode_llc(struct dstate *st)
{
    uint8_t dsap, ssap, ctl;
    if (!cur_u8(&st->c, &dsap) || !cur_u8(&st->c, &ssap) || !cur_u8(&st->c, &ctl))
        return fail(st, DEC_ERR_SHORT_LINK);
    wire_used(st, 3);
    if (dsap == 0xaa && ssap == 0xaa && ctl == 0x03)
        return decode_snap(st);
    st->ctx->stats.not_ip++;
    return DECODE_NOT_IP;
}

/* SNAP (RFC 1042): an OUI, then an EtherType. */
static enum decode_result decode_snap(struct dstate *st)
{
    uint16_t type;
    if (!cur_skip(&st->c, 3) || !cur_be16(&st->c, &type))
        return fail(st, DEC_ERR_SHORT_LINK);
    wire_used(st, 5);
    return decode_ethertype(st, type);
}

/* Ethernet II / IEEE 802.3: a type field below 0x0600 is a length. */
static enum decode_result decode_ethernet(struct dstate *st)
{
    uint16_t type;
    if (!cur_skip(&st->c, 12) || !cur_be16(&st->c, &type))
        return fail(st, DEC_ERR_SHORT_LINK);
    wire_used(st, 14);
    if (type < 0x0600)
        return decode_llc(st);
    return decode_ethertype(st, type);
}

/* BSD loopback: a 4-byte address family in the capturing host's byte order
 * (DLT_NULL) or in network order (DLT_LOOP). IPv6's value differs by OS. */
static enum decode_result decode_null(struct dstate *st, bool network_order)
{
    uint32_t af;
    bool ok = network_order ? cur_be32(&st->c, &af) : cur_le32(&st->c, &af);
    if (!ok)
        return fail(st, DEC_ERR_SHORT_LINK);
    wire_used(st, 4);
    if (!network_order && af > 0xffff)
        af = __builtin_bswap32(af);
    if (af == 2)
        return decode_ip(st, 4);
    if (af == 10 || af == 24 || af == 28 || af == 30)
        return decode_ip(st, 6);
    st->ctx->stats.not_ip++;
    return DECODE_NOT_IP;
}

/* PPP in HDLC-like framing (RFC 1662): optional address/control, then the
 * protocol, possibly compressed to one byte. */
static enum decode_result decode_ppp(struct dstate *st)
{
    uint8_t b0, b1;
    uint16_t proto;
    if (cur_peek_u8(&st->c, 0, &b0) && cur_peek_u8(&st->c, 1, &b1) && b0 == 0xff && b1 == 0x03)
        advance(st, 2);
    if (!cur_peek_u8(&st->c, 0, &b0))
        return fail(st, DEC_ERR_SHORT_LINK);
    if (b0 & 1) {
        proto = b0;
        advance(st, 1);
    } else {
        if (!cur_be16(&st->c, &proto))
            return fail(st, DEC_ERR_SHORT_LINK);
        wire_used(st, 2);
    }
    if (proto == PPP_IPV4)
        return decode_ip(st, 4);
    if (proto == PPP_IPV6)
        return decode_ip(st, 6);
    if (proto == PPP_MPLS)
        return decode_mpls(st);
    st->ctx->stats.not_ip++;
    return DECODE_NOT_IP;
}

/* Frame Relay (ITU Q.922 address): RFC 2427 multiprotocol encapsulation
 * (control 0x03, NLPID), or the Cisco form with an EtherType. */
static enum decode_result decode_frelay(struct dstate *st)
{
    uint8_t b;
    uint16_t type;
    if (!skip_link(st, 2) || !cur_peek_u8(&st->c, 0, &b))
        return fail(st, DEC_ERR_SHORT_LINK);
    if (b != 0x03) {
        if (!cur_be16(&st->c, &type))
            return fail(st, DEC_ERR_SHORT_LINK);
        wire_used(st, 2);
        return decode_ethertype(st, type);
    }
    advance(st, 1);
    if (cur_peek_u8(&st->c, 0, &b) && b == 0x00)
        advance(st, 1); /* optional pad */
    if (!cur_u8(&st->c, &b))
        return fail(st, DEC_ERR_SHORT_LINK);
    wire_used(st, 1);
    if (b == 0xcc)
        return decode_ip(st, 4);
    if (b == 0x8e)
        return decode_ip(st, 6);
    if (b == 0x80)
        return decode_snap(st);
    st->ctx->stats.not_ip++;
    return DECODE_NOT_IP;
}

/* Linux NFLOG (LINKTYPE_NFLOG): a 4-byte header, then TLVs whose length and
 * type are in the capturing host's byte order (little-endian here), each
 * padded to 4 bytes. The packet is the NFULA_PAYLOAD TLV (type 9). */
static enum decode_result decode_nflog(struct dstate *st)
{
    uint8_t family;
    if (!cur_u8(&st->c, &family) || !cur_skip(&st->c, 3))
        return fail(st, DEC_ERR_SHORT_LINK);
    while (cur_left(&st->c) >= 4) {
        uint16_t tlen = 0, ttype = 0;
        (void)cur_le16(&st->c, &tlen);
        (void)cur_le16(&st->c, &ttype);
        if (tlen < 4)
            return fail(st, DEC_ERR_SHORT_LINK);
        size_t vlen = (size_t)tlen - 4;
        if ((ttype & 0x7fff) == 9) {
            cur_limit(&st->c, vlen); /* the value may also be cut by the snap length */
            st->wire = vlen;
            if (family == 2)
                return decode_ip(st, 4);
            if (family == 10)
                return decode_ip(st, 6);
            return decode_ip(st, 0);
        }
        size_t padded = (vlen + 3) & ~(size_t)3;
        if (!cur_skip(&st->c, padded))
            break;
    }
    st->ctx->stats.not_ip++;
    return DECODE_NOT_IP;
}

/* Linux cooked capture v1 (16 bytes) and v2 (20 bytes): the protocol is an
 * EtherType (for v1 at offset 14, for v2 at offset 0). */
static enum decode_result decode_sll(struct dstate *st, bool v2)
{
    struct cursor h = st->c;
    uint16_t proto;
    if (v2) {
        if (!cur_be16(&h, &proto) || !skip_link(st, 20))
            return fail(st, DEC_ERR_SHORT_LINK);
    } else {
        if (!cur_skip(&h, 14) || !cur_be16(&h, &proto) || !skip_link(st, 16))
            return fail(st, DEC_ERR_SHORT_LINK);
    }
    if (proto == 0x0004) /* raw 802.2 LLC frame */
        return decode_llc(st);
    return decode_ethertype(st, proto);
}

/* IP over InfiniBand as libpcap captures it: a 40-byte pseudo-header of
 * hardware addresses, then RFC 4391 §6's EtherType and reserved field. */
static enum decode_result decode_ipoib(struct dstate *st)
{
    uint16_t type;
    if (!cur_skip(&st->c, 40) || !cur_be16(&st->c, &type) || !cur_skip(&st->c, 2))
        return fail(st, DEC_ERR_SHORT_LINK);
    wire_used(st, 44);
    return decode_ethertype(st, type);
}

static enum decode_result decode_link(struct dstate *st, int dlt, bool allow_pktap);

/* Apple PKTAP: a little-endian header length, then the wrapped frame's DLT at offset 8. */
static enum decode_result decode_pktap(struct dstate *st)
{
    struct cursor h = st->c;
    uint32_t hlen, dlt;
    if (!cur_le32(&h, &hlen) || !cur_skip(&h, 4) || !cur_le32(&h, &dlt) || hlen < 12 ||
        !skip_link(st, hlen))
        return fail(st, DEC_ERR_SHORT_LINK);
    return decode_link(st, (int)dlt, false);
}

static enum decode_result decode_link(struct dstate *st, int dlt, bool allow_pktap)
{
    switch (dlt) {
    case DLT_EN10MB: return decode_ethernet(st);
    case DLT_RAW:
    case LINKTYPE_RAW: return decode_ip(st, 0);
    case DLT_IPV4: return decode_ip(st, 4);
    case DLT_IPV6: return decode_ip(st, 6);
    case DLT_LINUX_SLL: return decode_sll(st, false);
    case DLT_LINUX_SLL2: return decode_sll(st, true);
    case DLT_NULL: return decode_null(st, false);
    case DLT_LOOP: return decode_null(st, true);
    case DLT_PPP:
    case DLT_PPP_SERIAL: return decode_ppp(st);
    case DLT_C_HDLC: {
        uint16_t type;
        if (!cur_skip(&st->c, 2) || !cur_be16(&st->c, &type))
            return fail(st, DEC_ERR_SHORT_LINK);
        wire_used(st, 4);
        return decode_ethertype(st, type);
    }
    case DLT_FRELAY: return decode_frelay(st);
    case DLT_NFLOG: return decode_nflog(st);
    case DLT_IPOIB: return decode_ipoib(st);
    case DLT_PKTAP:
        if (allow_pktap)
            return decode_pktap(st);
        break;
    default: break;
    }
    return fail(st, DEC_ERR_UNSUPPORTED_LINK);
}

bool decode_link_supported(int dlt)
{
    switch (dlt) {
    case DLT_EN10MB: case DLT_RAW: case LINKTYPE_RAW: case DLT_IPV4: case DLT_IPV6:
    case DLT_LINUX_SLL: case DLT_LINUX_SLL2: case DLT_NULL: case DLT_LOOP: case DLT_PPP:
    case DLT_PPP_SERIAL: case DLT_C_HDLC: case DLT_FRELAY: case DLT_NFLOG: case DLT_IPOIB:
    case DLT_PKTAP:
        return true;
    default:
        return false;
    }
}

enum decode_result decode_packet(struct decode_ctx *ctx, int dlt, const uint8_t *frame,
                                 uint32_t caplen, uint32_t wirelen, int64_t ts_ns,
                                 struct pkt *out)
{
    struct dstate st = {
        .c = cur_make(frame, caplen),
        .wire = wirelen > caplen ? wirelen : caplen,
        .out = out,
        .ctx = ctx,
    };
    *out = (struct pkt){.ts_ns = ts_ns, .vlan = VLAN_NONE};
    enum decode_result r = decode_link(&st, dlt, true);
    if (r == DECODE_OK && out->family == 0) { /* no IP layer was reached */
        ctx->stats.not_ip++;
        return DECODE_NOT_IP;
    }
    return r;
}

const char *decode_error_name(enum decode_error e)
{
    static const char *const names[DEC_ERR_COUNT] = {
        [DEC_ERR_UNSUPPORTED_LINK] = "unsupported_link",
        [DEC_ERR_SHORT_LINK] = "short_link",
        [DEC_ERR_BAD_IP_VERSION] = "bad_ip_version",
        [DEC_ERR_SHORT_IP] = "short_ip",
        [DEC_ERR_BAD_IP_HLEN] = "bad_ip_header_length",
        [DEC_ERR_BAD_IP_LEN] = "bad_ip_length",
        [DEC_ERR_BAD_IPV6_EXT] = "bad_ipv6_extension",
        [DEC_ERR_SHORT_L4] = "short_transport",
        [DEC_ERR_BAD_L4] = "bad_transport",
        [DEC_ERR_TOO_DEEP] = "too_deep",
    };
    return (unsigned)e < DEC_ERR_COUNT ? names[e] : "unknown";
}

uint64_t decode_errors_total(const struct decode_stats *s)
{
    uint64_t t = 0;
    for (unsigned i = 0; i < DEC_ERR_COUNT; i++)
        t += s->err[i];
    return t;
}
