/* test_decode.c — the decoder on hand-built frames: layers, encapsulations,
 * and every kind of damage (short captures, lying length fields). */
#include "decode.h"
#include "flowrec.h"

#include <criterion/criterion.h>
#include <pcap/dlt.h>
#include <string.h>

/* A tiny frame builder: each put_* appends one header in network order. */
struct frame {
    uint8_t b[2048];
    size_t len;
};

static void put(struct frame *f, const void *p, size_t n)
{
    memcpy(f->b + f->len, p, n);
    f->len += n;
}

static void put8(struct frame *f, uint8_t v) { put(f, &v, 1); }

static void put16(struct frame *f, uint16_t v)
{
    uint8_t b[2] = {(uint8_t)(v >> 8), (uint8_t)v};
    put(f, b, 2);
}

static void put32(struct frame *f, uint32_t v)
{
    put16(f, (uint16_t)(v >> 16));
    put16(f, (uint16_t)v);
}

/* Ethernet II: dst 02:00:00:00:00:02, src 02:00:00:00:00:01, type */
static void put_eth(struct frame *f, uint16_t type)
{
    const uint8_t macs[12] = {2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1};
    put(f, macs, 12);
    put16(f, type);
}

/* IPv4 without options: total = 20 + payload, id, flags/offset, TTL 64 */
static void put_ipv4(struct frame *f, uint8_t proto, const char *src, const char *dst,
                     uint16_t payload, uint16_t id, uint16_t fragoff)
{
    struct vigil_addr s, d;
    addr_parse(src, &s);
    addr_parse(dst, &d);
    put8(f, 0x45);
    put8(f, 0);
    put16(f, (uint16_t)(20 + payload));
    put16(f, id);
    put16(f, fragoff);
    put8(f, 64);
    put8(f, proto);
    put16(f, 0);
    put(f, s.b + 12, 4);
    put(f, d.b + 12, 4);
}

/* IPv6 fixed header: payload length, next header, hop limit 64 */
static void put_ipv6(struct frame *f, uint8_t next, const char *src, const char *dst,
                     uint16_t payload)
{
    struct vigil_addr s, d;
    addr_parse(src, &s);
    addr_parse(dst, &d);
    put32(f, 0x60000000u);
    put16(f, payload);
    put8(f, next);
    put8(f, 64);
    put(f, s.b, 16);
    put(f, d.b, 16);
}

/* TCP, 20-byte header, window 65535 */
static void put_tcp(struct frame *f, uint16_t sp, uint16_t dp, uint32_t seq, uint8_t flags)
{
    put16(f, sp);
    put16(f, dp);
    put32(f, seq);
    put32(f, 0);
    put8(f, 0x50);
    put8(f, flags);
    put16(f, 65535);
    put32(f, 0);
}

/* UDP: length = 8 + payload */
static void put_udp(struct frame *f, uint16_t sp, uint16_t dp, uint16_t payload)
{
    put16(f, sp);
    put16(f, dp);
    put16(f, (uint16_t)(8 + payload));
    put16(f, 0);
}

static struct decode_ctx ctx;

static enum decode_result run(const struct frame *f, struct pkt *p)
{
    return decode_packet(&ctx, DLT_EN10MB, f->b, (uint32_t)f->len, (uint32_t)f->len, 1, p);
}

static void reset(void)
{
    memset(&ctx, 0, sizeof ctx);
}

TestSuite(decode, .init = reset);

Test(decode, ethernet_ipv4_tcp_syn)
{
    struct frame f = {0};
    struct pkt p;
    put_eth(&f, 0x0800);
    put_ipv4(&f, 6, "10.0.0.1", "10.0.0.2", 20, 1, 0x4000);
    put_tcp(&f, 40000, 80, 1000, 0x02);
    cr_assert_eq(run(&f, &p), DECODE_OK);
    cr_assert_eq(p.family, 4);
    cr_assert_eq(p.proto, 6);
    cr_assert_eq(p.ip_len, 40);
    cr_assert(p.has_ports);
    cr_assert_eq(p.sport, 40000);
    cr_assert_eq(p.dport, 80);
    cr_assert_eq(p.tcp_flags, 0x02);
    cr_assert_eq(p.tcp_seq, 1000);
    cr_assert_eq(p.payload_len, 0);
    cr_assert_eq(p.vlan, VLAN_NONE);
    char buf[ADDR_STRLEN];
    cr_assert_str_eq(addr_format(&p.src, buf), "10.0.0.1");
}

Test(decode, every_truncation_is_safe)
{
    struct frame f = {0};
    struct pkt p;
    put_eth(&f, 0x8100); /* VLAN 42, then IPv6/UDP with a 4-byte payload */
    put16(&f, 42);
    put16(&f, 0x86dd);
    put_ipv6(&f, 17, "2001:db8::1", "2001:db8::2", 12);
    put_udp(&f, 5353, 53, 4);
    put32(&f, 0xdeadbeef);
    for (size_t cut = 0; cut < f.len; cut++) {
        enum decode_result r =
            decode_packet(&ctx, DLT_EN10MB, f.b, (uint32_t)cut, (uint32_t)cut, 1, &p);
        cr_assert_neq(r, DECODE_OK, "a frame cut to %zu bytes decoded", cut);
    }
    cr_assert_eq(run(&f, &p), DECODE_OK);
    cr_assert_eq(p.vlan, 42);
    cr_assert_eq(p.ip_len, 52);
    cr_assert_eq(p.payload_caplen, 4);
}

Test(decode, snap_length_truncation_still_counts)
{
    struct frame f = {0};
    struct pkt p;
    put_eth(&f, 0x0800);
    put_ipv4(&f, 6, "10.0.0.1", "10.0.0.2", 20 + 1400, 1, 0);
    put_tcp(&f, 40000, 80, 1000, 0x18);
    /* 1400 payload bytes were sent, none captured */
    uint32_t wire = (uint32_t)f.len + 1400;
    cr_assert_eq(decode_packet(&ctx, DLT_EN10MB, f.b, (uint32_t)f.len, wire, 1, &p), DECODE_OK);
    cr_assert_eq(p.ip_len, 1440);
    cr_assert_eq(p.payload_len, 1400);
    cr_assert_eq(p.payload_caplen, 0);
}

Test(decode, lying_lengths_are_malformed)
{
    struct frame f = {0};
    struct pkt p;
    put_eth(&f, 0x0800);
    put_ipv4(&f, 17, "10.0.0.1", "10.0.0.2", 500, 1, 0); /* claims 520, frame holds 28 */
    put_udp(&f, 1, 2, 0);
    cr_assert_eq(run(&f, &p), DECODE_MALFORMED);
    cr_assert_eq(ctx.stats.err[DEC_ERR_BAD_IP_LEN], 1);

    f.len = 14;
    put8(&f, 0x44); /* IHL 4: below the minimum */
    cr_assert_eq(decode_packet(&ctx, DLT_EN10MB, f.b, 40, 40, 1, &p), DECODE_MALFORMED);
    cr_assert_eq(ctx.stats.err[DEC_ERR_BAD_IP_HLEN], 1);
}

Test(decode, later_fragment_has_no_ports)
{
    struct frame f = {0};
    struct pkt p;
    put_eth(&f, 0x0800);
    put_ipv4(&f, 17, "10.0.0.1", "10.0.0.2", 16, 77, 185); /* offset 185*8 */
    put32(&f, 0x01020304);
    put32(&f, 0x05060708);
    put32(&f, 0);
    put32(&f, 0);
    cr_assert_eq(run(&f, &p), DECODE_OK);
    cr_assert_eq(p.frag, FRAG_LATER);
    cr_assert_eq(p.frag_id, 77);
    cr_assert_not(p.has_ports);
    cr_assert_eq(p.ip_len, 36);
}

Test(decode, vxlan_inner_flow_is_the_flow)
{
    struct frame f = {0};
    struct pkt p;
    put_eth(&f, 0x0800);
    put_ipv4(&f, 17, "192.0.2.1", "192.0.2.2", 8 + 8 + 14 + 20 + 8, 1, 0);
    put_udp(&f, 50000, 4789, 8 + 14 + 20 + 8);
    put32(&f, 0x08000000); /* VXLAN: I flag, VNI 123 */
    put32(&f, 123 << 8);
    put_eth(&f, 0x0800);
    put_ipv4(&f, 17, "10.0.0.1", "10.0.0.2", 8, 2, 0);
    put_udp(&f, 1111, 2222, 0);
    cr_assert_eq(run(&f, &p), DECODE_OK);
    char buf[ADDR_STRLEN];
    cr_assert_str_eq(addr_format(&p.src, buf), "10.0.0.1");
    cr_assert_eq(p.sport, 1111);
    cr_assert_eq(p.ip_len, 28);
    cr_assert_eq(p.tunnel, TUNNEL_VXLAN);
}

Test(decode, broken_tunnel_counts_on_outer_flow)
{
    struct frame f = {0};
    struct pkt p;
    put_eth(&f, 0x0800);
    put_ipv4(&f, 17, "192.0.2.1", "192.0.2.2", 8 + 8 + 14 + 4, 1, 0);
    put_udp(&f, 50000, 4789, 8 + 14 + 4);
    put32(&f, 0x08000000);
    put32(&f, 0);
    put_eth(&f, 0x0800);
    put32(&f, 0x45000000); /* an inner IPv4 header cut after 4 bytes */
    cr_assert_eq(run(&f, &p), DECODE_OK);
    char buf[ADDR_STRLEN];
    cr_assert_str_eq(addr_format(&p.src, buf), "192.0.2.1");
    cr_assert_eq(p.dport, 4789);
    cr_assert_eq(p.tunnel, TUNNEL_NONE);
    cr_assert_eq(ctx.stats.tunnel_fallback, 1);
    cr_assert_eq(decode_errors_total(&ctx.stats), 0);
}

Test(decode, gre_with_key_and_qinq)
{
    struct frame f = {0};
    struct pkt p;
    put_eth(&f, 0x88a8); /* S-tag 100, C-tag 200 */
    put16(&f, 100);
    put16(&f, 0x8100);
    put16(&f, 200);
    put16(&f, 0x0800);
    put_ipv4(&f, 47, "198.51.100.1", "198.51.100.2", 8 + 20 + 8, 1, 0);
    put16(&f, 0x2000); /* GRE: key present, version 0 */
    put16(&f, 0x0800);
    put32(&f, 0xabcd);
    put_ipv4(&f, 1, "10.1.1.1", "10.1.1.2", 8, 3, 0);
    put8(&f, 8); /* ICMP echo request, id 0x1234 */
    put8(&f, 0);
    put16(&f, 0);
    put16(&f, 0x1234);
    put16(&f, 1);
    cr_assert_eq(run(&f, &p), DECODE_OK);
    cr_assert_eq(p.vlan, 100);
    cr_assert_eq(p.tunnel, TUNNEL_GRE);
    cr_assert_eq(p.proto, 1);
    cr_assert(p.has_icmp);
    cr_assert_eq(p.icmp_type, 8);
    cr_assert_eq(p.icmp_id, 0x1234);
}

Test(decode, ipv6_extension_chain_to_tcp)
{
    struct frame f = {0};
    struct pkt p;
    put_eth(&f, 0x86dd);
    put_ipv6(&f, 0, "2001:db8::1", "2001:db8::2", 8 + 8 + 20);
    put8(&f, 60); /* Hop-by-Hop: next Destination Options, 8 bytes, PadN */
    put8(&f, 0);
    put8(&f, 1);
    put8(&f, 4);
    put32(&f, 0);
    put8(&f, 6); /* Destination Options: next TCP */
    put8(&f, 0);
    put8(&f, 1);
    put8(&f, 4);
    put32(&f, 0);
    put_tcp(&f, 443, 50000, 1, 0x12);
    cr_assert_eq(run(&f, &p), DECODE_OK);
    cr_assert_eq(p.proto, 6);
    cr_assert_eq(p.sport, 443);
    cr_assert_eq(p.ip_len, 76);
}

Test(decode, non_ip_and_unknown_links)
{
    struct frame f = {0};
    struct pkt p;
    put_eth(&f, 0x0806); /* ARP */
    put32(&f, 0);
    cr_assert_eq(run(&f, &p), DECODE_NOT_IP);
    cr_assert_eq(decode_packet(&ctx, 147 /* DLT_USER0 */, f.b, (uint32_t)f.len,
                               (uint32_t)f.len, 1, &p),
                 DECODE_MALFORMED);
    cr_assert_eq(ctx.stats.err[DEC_ERR_UNSUPPORTED_LINK], 1);
}

Test(decode, raw_ipv4_link_rejects_ipv6)
{
    struct frame f = {0};
    struct pkt p;
    put_ipv6(&f, 59, "::1", "::1", 0);
    cr_assert_eq(decode_packet(&ctx, DLT_IPV4, f.b, (uint32_t)f.len, (uint32_t)f.len, 1, &p),
                 DECODE_MALFORMED);
    cr_assert_eq(decode_packet(&ctx, DLT_RAW, f.b, (uint32_t)f.len, (uint32_t)f.len, 1, &p),
                 DECODE_OK);
}
