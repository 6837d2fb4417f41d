/* test_meta_dns.c — meta_dns_parse and the port labels, on real captures
 * and hostile messages.
 *
 * Fixtures are the DNS payloads of /work/shared/pcaps/protocols/dns-udp.pcap,
 * dns-tcp.pcap and dns-mdns.pcap, embedded so the tests run anywhere. */
#include <criterion/criterion.h>

#include "meta.h"

#include <string.h>

/* dns-udp.pcap frame 1, 192.168.1.11 -> 209.87.249.18:53:
 *   id 0x5934, flags 0x0120 (query, RD, AD), QD 1 AN 0 NS 0 AR 1
 *   question www.tcpdump.org A IN (name at 0x0c: 3"www" 7"tcpdump" 3"org" 0)
 *   additional: OPT (EDNS0, udp 4096) with a COOKIE option */
static const uint8_t dns_udp_query[56] = {
    0x59, 0x34, 0x01, 0x20, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, /* 0000 */
    0x03, 0x77, 0x77, 0x77, 0x07, 0x74, 0x63, 0x70, 0x64, 0x75, 0x6d, 0x70, /* 000c */
    0x03, 0x6f, 0x72, 0x67, 0x00, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x29, /* 0018 */
    0x10, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0c, 0x00, 0x0a, 0x00, 0x08, /* 0024 */
    0x42, 0xf5, 0xd0, 0x09, 0x96, 0xf9, 0x0b, 0x13,                         /* 0030 */
};

/* dns-udp.pcap frame 2: the response. id 0x5934, flags 0x8500 (response,
 * AA, RD, NOERROR), QD 1 AN 2 NS 2 AR 5; question as above, then answers
 * using compression pointers (0xc00c) to the question name. */
static const uint8_t dns_udp_response[224] = {
    0x59, 0x34, 0x85, 0x00, 0x00, 0x01, 0x00, 0x02, 0x00, 0x02, 0x00, 0x05, /* 0000 */
    0x03, 0x77, 0x77, 0x77, 0x07, 0x74, 0x63, 0x70, 0x64, 0x75, 0x6d, 0x70, /* 000c */
    0x03, 0x6f, 0x72, 0x67, 0x00, 0x00, 0x01, 0x00, 0x01, 0xc0, 0x0c, 0x00, /* 0018 */
    0x01, 0x00, 0x01, 0x00, 0x00, 0x00, 0x3c, 0x00, 0x04, 0xc0, 0x8b, 0x2e, /* 0024 */
    0x42, 0xc0, 0x0c, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x00, 0x3c, 0x00, /* 0030 */
    0x04, 0xc6, 0xc7, 0x58, 0x68, 0xc0, 0x10, 0x00, 0x02, 0x00, 0x01, 0x00, /* 003c */
    0x01, 0x51, 0x80, 0x00, 0x12, 0x03, 0x73, 0x6e, 0x73, 0x08, 0x63, 0x6f, /* 0048 */
    0x6f, 0x70, 0x65, 0x72, 0x69, 0x78, 0x03, 0x6e, 0x65, 0x74, 0x00, 0xc0, /* 0054 */
    0x10, 0x00, 0x02, 0x00, 0x01, 0x00, 0x01, 0x51, 0x80, 0x00, 0x12, 0x03, /* 0060 */
    0x6e, 0x69, 0x63, 0x09, 0x73, 0x61, 0x6e, 0x64, 0x65, 0x6c, 0x6d, 0x61, /* 006c */
    0x6e, 0x02, 0x63, 0x61, 0x00, 0xc0, 0x6b, 0x00, 0x01, 0x00, 0x01, 0x00, /* 0078 */
    0x00, 0x01, 0x2c, 0x00, 0x04, 0xd1, 0x57, 0xf9, 0x12, 0xc0, 0x6b, 0x00, /* 0084 */
    0x1c, 0x00, 0x01, 0x00, 0x00, 0x01, 0x2c, 0x00, 0x10, 0x26, 0x07, 0xf0, /* 0090 */
    0xb0, 0x00, 0x0f, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xba, 0xbe, 0xf0, /* 009c */
    0x0d, 0xc0, 0x4d, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x1c, 0x20, 0x00, /* 00a8 */
    0x04, 0x61, 0x6b, 0x85, 0x0f, 0xc0, 0x4d, 0x00, 0x1c, 0x00, 0x01, 0x00, /* 00b4 */
    0x00, 0x1c, 0x20, 0x00, 0x10, 0x26, 0x00, 0x3c, 0x03, 0x00, 0x00, 0x00, /* 00c0 */
    0x00, 0xf0, 0x3c, 0x91, 0xff, 0xfe, 0x96, 0xe8, 0xef, 0x00, 0x00, 0x29, /* 00cc */
    0x10, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,                         /* 00d8 */
};

/* dns-tcp.pcap frame 4 (TCP to port 53): 2-byte length prefix 0x0038 (56),
 * then id 0x4319, flags 0x0120, QD 1 AR 1, question www.tcpdump.org A IN,
 * OPT record with a COOKIE option. */
static const uint8_t dns_tcp_query[58] = {
    0x00, 0x38, 0x43, 0x19, 0x01, 0x20, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, /* 0000 */
    0x00, 0x01, 0x03, 0x77, 0x77, 0x77, 0x07, 0x74, 0x63, 0x70, 0x64, 0x75, /* 000c */
    0x6d, 0x70, 0x03, 0x6f, 0x72, 0x67, 0x00, 0x00, 0x01, 0x00, 0x01, 0x00, /* 0018 */
    0x00, 0x29, 0x10, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0c, 0x00, 0x0a, /* 0024 */
    0x00, 0x08, 0x8f, 0x06, 0xbe, 0x7d, 0x69, 0x14, 0x42, 0xf0,             /* 0030 */
};

/* dns-mdns.pcap frame 2, 10.0.2.7 -> 224.0.0.251:5353: mDNS query, id 0,
 * flags 0, QD 2: _ipp._tcp.local PTR IN, then _ipps._tcp.local PTR IN whose
 * "_tcp.local" is a compression pointer (0xc011) into the first name. */
static const uint8_t dns_mdns_query[45] = {
    0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* 0000 */
    0x04, 0x5f, 0x69, 0x70, 0x70, 0x04, 0x5f, 0x74, 0x63, 0x70, 0x05, 0x6c, /* 000c */
    0x6f, 0x63, 0x61, 0x6c, 0x00, 0x00, 0x0c, 0x00, 0x01, 0x05, 0x5f, 0x69, /* 0018 */
    0x70, 0x70, 0x73, 0xc0, 0x11, 0x00, 0x0c, 0x00, 0x01,                   /* 0024 */
};

Test(meta_dns, udp_query)
{
    struct dns_info d;

    cr_assert_eq(meta_dns_parse(dns_udp_query, sizeof(dns_udp_query), false, &d), META_OK);
    cr_assert_str_eq(d.qname, "www.tcpdump.org");
    cr_assert_eq(d.qtype, 1);
    cr_assert_eq(d.id, 0x5934);
    cr_assert_not(d.is_response);
    cr_assert_eq(d.rcode, 0);
}

Test(meta_dns, udp_response)
{
    struct dns_info d;

    cr_assert_eq(meta_dns_parse(dns_udp_response, sizeof(dns_udp_response), false, &d), META_OK);
    cr_assert_str_eq(d.qname, "www.tcpdump.org");
    cr_assert_eq(d.qtype, 1);
    cr_assert_eq(d.id, 0x5934);
    cr_assert(d.is_response);
    cr_assert_eq(d.rcode, 0);
}

Test(meta_dns, tcp_query_with_length_prefix)
{
    struct dns_info d;

    cr_assert_eq(meta_dns_parse(dns_tcp_query, sizeof(dns_tcp_query), true, &d), META_OK);
    cr_assert_str_eq(d.qname, "www.tcpdump.org");
    cr_assert_eq(d.id, 0x4319);
    /* Read without the prefix, the header is nonsense: opcode 8. */
    cr_assert_eq(meta_dns_parse(dns_tcp_query, sizeof(dns_tcp_query), false, &d), META_NOT);
    cr_assert_str_eq(d.qname, "");
}

Test(meta_dns, mdns_first_of_two_questions)
{
    struct dns_info d;

    cr_assert_eq(meta_dns_parse(dns_mdns_query, sizeof(dns_mdns_query), false, &d), META_OK);
    cr_assert_str_eq(d.qname, "_ipp._tcp.local");
    cr_assert_eq(d.qtype, 12);
}

/* Every prefix: META_NOT until the first question is whole (header 12 +
 * name 17 + type and class 4 = 33 bytes), META_OK from there on. */
Test(meta_dns, every_prefix_udp)
{
    struct dns_info d;

    for (size_t n = 0; n <= sizeof(dns_udp_query); n++) {
        enum meta_result r = meta_dns_parse(dns_udp_query, n, false, &d);
        cr_assert_eq(r, n < 33 ? META_NOT : META_OK, "prefix %zu", n);
    }
}

Test(meta_dns, every_prefix_tcp)
{
    struct dns_info d;

    for (size_t n = 0; n <= sizeof(dns_tcp_query); n++) {
        enum meta_result r = meta_dns_parse(dns_tcp_query, n, true, &d);
        cr_assert_eq(r, n < 35 ? META_NOT : META_OK, "prefix %zu", n);
    }
}

/* The TCP length prefix bounds the message even when more bytes follow. */
Test(meta_dns, tcp_prefix_limits_message)
{
    uint8_t m[sizeof(dns_tcp_query)];
    struct dns_info d;

    memcpy(m, dns_tcp_query, sizeof(m));
    m[0] = 0;
    m[1] = 20; /* header + 8 bytes: the question is cut */
    cr_assert_eq(meta_dns_parse(m, sizeof(m), true, &d), META_NOT);
    m[1] = 33; /* exactly header + question */
    cr_assert_eq(meta_dns_parse(m, sizeof(m), true, &d), META_OK);
    m[1] = 5; /* shorter than a header */
    cr_assert_eq(meta_dns_parse(m, sizeof(m), true, &d), META_NOT);
}

/* Builds header (id 0x1234, flags, QD 1) + name bytes + type A class IN. */
static size_t build(uint8_t *m, uint16_t flags, uint16_t qd, const uint8_t *name, size_t n)
{
    const uint8_t hdr[12] = {0x12, 0x34, (uint8_t)(flags >> 8), (uint8_t)flags,
                             (uint8_t)(qd >> 8), (uint8_t)qd, 0, 0, 0, 0, 0, 0};
    memcpy(m, hdr, 12);
    memcpy(m + 12, name, n);
    memcpy(m + 12 + n, "\x00\x01\x00\x01", 4);
    return 12 + n + 4;
}

Test(meta_dns, garbage_headers)
{
    static const uint8_t name[] = {1, 'a', 0};
    uint8_t m[64];
    struct dns_info d;
    size_t n;

    n = build(m, 0x0100, 0, name, sizeof(name));
    cr_assert_eq(meta_dns_parse(m, n, false, &d), META_NOT, "qdcount 0");
    n = build(m, 0x1800, 1, name, sizeof(name)); /* opcode 3: unassigned */
    cr_assert_eq(meta_dns_parse(m, n, false, &d), META_NOT);
    n = build(m, 0x3800, 1, name, sizeof(name)); /* opcode 7 */
    cr_assert_eq(meta_dns_parse(m, n, false, &d), META_NOT);
    n = build(m, 0x2800, 1, name, sizeof(name)); /* opcode 5: UPDATE */
    cr_assert_eq(meta_dns_parse(m, n, false, &d), META_OK);
    n = build(m, 0x8183, 1, name, sizeof(name)); /* response, NXDOMAIN */
    cr_assert_eq(meta_dns_parse(m, n, false, &d), META_OK);
    cr_assert(d.is_response);
    cr_assert_eq(d.rcode, 3);
    cr_assert_eq(meta_dns_parse(NULL, 0, false, &d), META_NOT);
}

Test(meta_dns, root_name)
{
    static const uint8_t name[] = {0};
    uint8_t m[64];
    struct dns_info d;
    size_t n = build(m, 0x0100, 1, name, sizeof(name));

    cr_assert_eq(meta_dns_parse(m, n, false, &d), META_OK);
    cr_assert_str_eq(d.qname, ".");
}

/* Bytes outside printable ASCII become '?', letters are lower-cased, a dot
 * inside a label stays a dot (it is printable). */
Test(meta_dns, label_bytes_sanitised)
{
    static const uint8_t name[] = {5, 'A', 0x00, 0x7f, '.', 0xff, 3, 'C', 'o', 'M', 0};
    uint8_t m[64];
    struct dns_info d;
    size_t n = build(m, 0x0100, 1, name, sizeof(name));

    cr_assert_eq(meta_dns_parse(m, n, false, &d), META_OK);
    cr_assert_str_eq(d.qname, "a??.?.com");
}

/* A first question has nothing before it to point to, so every pointer in
 * it is bogus: to itself (a loop), into the header, forward. */
Test(meta_dns, compression_pointers_refused)
{
    static const uint8_t self[] = {0xc0, 0x0c};
    static const uint8_t header[] = {0xc0, 0x02};
    static const uint8_t loop_after_label[] = {1, 'a', 0xc0, 0x0c};
    static const uint8_t forward[] = {1, 'a', 0xc0, 0x20, 0};
    static const uint8_t high[] = {1, 'a', 0xff, 0xff};
    uint8_t m[64];
    struct dns_info d;
    size_t n;

    n = build(m, 0x0100, 1, self, sizeof(self));
    cr_assert_eq(meta_dns_parse(m, n, false, &d), META_NOT);
    n = build(m, 0x0100, 1, header, sizeof(header));
    cr_assert_eq(meta_dns_parse(m, n, false, &d), META_NOT);
    n = build(m, 0x0100, 1, loop_after_label, sizeof(loop_after_label));
    cr_assert_eq(meta_dns_parse(m, n, false, &d), META_NOT);
    n = build(m, 0x0100, 1, forward, sizeof(forward));
    cr_assert_eq(meta_dns_parse(m, n, false, &d), META_NOT);
    n = build(m, 0x0100, 1, high, sizeof(high));
    cr_assert_eq(meta_dns_parse(m, n, false, &d), META_NOT);
}

/* A long chain of backward pointers, each to the one before: a real
 * message could not have it in its first question, but the walk must
 * still stop; and many pointers to the same place must not spin. */
Test(meta_dns, pointer_mesh_terminates)
{
    uint8_t m[2048];
    struct dns_info d;

    memset(m, 0, sizeof(m));
    memcpy(m, "\x12\x34\x01\x00\x00\x01", 6);
    for (size_t i = 12; i + 1 < sizeof(m); i += 2) {
        m[i] = (uint8_t)(0xc0 | ((i - 2) >> 8));
        m[i + 1] = (uint8_t)(i - 2);
    }
    cr_assert_eq(meta_dns_parse(m, sizeof(m), false, &d), META_NOT);
    for (size_t i = 12; i + 1 < sizeof(m); i += 2) {
        m[i] = 0xc0;
        m[i + 1] = 0x0c;
    }
    cr_assert_eq(meta_dns_parse(m, sizeof(m), false, &d), META_NOT);
}

/* RFC 1035 §2.3.4: 255 octets on the wire at most. 127 one-char labels are
 * 1 + 127 * 2 = 255 octets (OK); one more char is too many. */
Test(meta_dns, name_length_bound)
{
    uint8_t name[300], m[400];
    struct dns_info d;
    size_t n = 0;

    for (int i = 0; i < 127; i++) {
        name[n++] = 1;
        name[n++] = 'x';
    }
    name[n++] = 0;
    cr_assert_eq(meta_dns_parse(m, build(m, 0x0100, 1, name, n), false, &d), META_OK);
    cr_assert_eq(strlen(d.qname), 253);
    name[n - 3] = 2; /* the last label grows from "x" to "xy": 256 octets */
    name[n - 1] = 'y';
    name[n++] = 0;
    cr_assert_eq(meta_dns_parse(m, build(m, 0x0100, 1, name, n), false, &d), META_NOT);
}

Test(meta_dns, label_length_types)
{
    static const uint8_t ext40[] = {0x41, 'a', 0};
    static const uint8_t ext80[] = {0x81, 'a', 0};
    uint8_t name[80], m[128];
    struct dns_info d;

    cr_assert_eq(meta_dns_parse(m, build(m, 0x0100, 1, ext40, sizeof(ext40)), false, &d), META_NOT);
    cr_assert_eq(meta_dns_parse(m, build(m, 0x0100, 1, ext80, sizeof(ext80)), false, &d), META_NOT);
    name[0] = 63;
    memset(name + 1, 'q', 63);
    name[64] = 0;
    cr_assert_eq(meta_dns_parse(m, build(m, 0x0100, 1, name, 65), false, &d), META_OK);
    cr_assert_eq(strlen(d.qname), 63);
}

/* Deterministic mutations of the real messages: never a crash (the
 * sanitizer build checks reads), and any name produced is printable. */
Test(meta_dns, mutations)
{
    const uint8_t *src[] = {dns_udp_query, dns_udp_response, dns_tcp_query, dns_mdns_query};
    const size_t len[] = {sizeof(dns_udp_query), sizeof(dns_udp_response), sizeof(dns_tcp_query),
                          sizeof(dns_mdns_query)};
    uint32_t rng = 12345;
    uint8_t m[512];
    struct dns_info d;

    for (int round = 0; round < 20000; round++) {
        size_t k = (size_t)round % 4, n = len[k];
        memcpy(m, src[k], n);
        for (int flips = 0; flips < 1 + round % 4; flips++) {
            rng = rng * 1103515245u + 12345u;
            m[(rng >> 8) % n] ^= (uint8_t)(1u << ((rng >> 4) % 8));
        }
        if (meta_dns_parse(m, n, k == 2, &d) == META_OK) {
            for (const char *p = d.qname; *p; p++)
                cr_assert(*p >= 0x20 && *p <= 0x7e);
        }
    }
}

/* The name reader on later names of the real messages, where compression
 * pointers are legitimate. */
Test(meta_dns, names_with_pointers)
{
    char name[FLOWREC_NAME_MAX];
    size_t end = 0;

    /* mDNS second question at 33: 5"_ipps" then pointer 0xc011 ("_tcp.local"). */
    cr_assert(meta__dns_name(dns_mdns_query, sizeof(dns_mdns_query), 33, name, &end));
    cr_assert_str_eq(name, "_ipps._tcp.local");
    cr_assert_eq(end, 33 + 6 + 2);
    /* Response: the first answer's owner is the pointer 0xc00c (the question). */
    cr_assert(meta__dns_name(dns_udp_response, sizeof(dns_udp_response), 33, name, &end));
    cr_assert_str_eq(name, "www.tcpdump.org");
    cr_assert_eq(end, 35);
    /* Additional record at 0x7d: pointer 0xc06b to an NS target written out
     * in full ("nic.sandelman.ca"), itself after the answers. */
    cr_assert(meta__dns_name(dns_udp_response, sizeof(dns_udp_response), 0x7d, name, &end));
    cr_assert_str_eq(name, "nic.sandelman.ca");
    cr_assert_eq(end, 0x7f);
    /* The same bytes read from the NS target's own offset: no pointer. */
    cr_assert(meta__dns_name(dns_udp_response, sizeof(dns_udp_response), 0x6b, name, &end));
    cr_assert_str_eq(name, "nic.sandelman.ca");
    /* The question name, written in full. */
    cr_assert(meta__dns_name(dns_udp_response, sizeof(dns_udp_response), 12, name, &end));
    cr_assert_eq(end, 12 + 17);
    /* The answer at 33 read as if its name started at its own pointer's
     * target: 0xc00c from offset 12 would point at itself. */
    uint8_t m[64];
    memcpy(m, dns_udp_response, 12);
    m[12] = 0xc0, m[13] = 0x0c;
    cr_assert_not(meta__dns_name(m, 14, 12, name, &end));
    /* Offsets in the header or past the end. */
    cr_assert_not(meta__dns_name(dns_udp_response, sizeof(dns_udp_response), 0, name, &end));
    cr_assert_not(meta__dns_name(dns_udp_response, sizeof(dns_udp_response), 9999, name, &end));
}

/* A chain of pointers, each to the one before it, ending at "a": exactly
 * META_DNS_MAX_JUMPS jumps are followed, one more is refused. */
Test(meta_dns, jump_bound)
{
    uint8_t m[12 + 3 + 2 * (META_DNS_MAX_JUMPS + 1)];
    char name[FLOWREC_NAME_MAX];
    size_t end, at = 15;

    memset(m, 0, 12);
    m[12] = 1, m[13] = 'a', m[14] = 0;
    for (size_t i = 0, prev = 12; i < META_DNS_MAX_JUMPS + 1; i++, prev = at, at += 2) {
        m[at] = (uint8_t)(0xc0 | prev >> 8);
        m[at + 1] = (uint8_t)prev;
    }
    /* The pointer at 15 + 2k needs k + 1 jumps to reach "a". */
    at = 15 + 2 * (META_DNS_MAX_JUMPS - 1);
    cr_assert(meta__dns_name(m, sizeof(m), at, name, &end));
    cr_assert_str_eq(name, "a");
    cr_assert_eq(end, at + 2);
    cr_assert_not(meta__dns_name(m, sizeof(m), at + 2, name, &end));
}

Test(meta_app, dns_ports)
{
    cr_assert_str_eq(meta_app_by_port(17, 40000, 53), "dns");
    cr_assert_str_eq(meta_app_by_port(6, 40000, 53), "dns");
    cr_assert_str_eq(meta_app_by_port(17, 5353, 5353), "mdns");
    cr_assert_str_eq(meta_app_by_port(17, 5355, 61000), "llmnr");
    /* Responder first and a high port that is a service too: the lower wins. */
    cr_assert_str_eq(meta_app_by_port(17, 53, 51820), "dns");
    cr_assert_str_eq(meta_app_by_port(17, 51820, 40000), "wireguard");
    cr_assert_str_eq(meta_app_by_port(17, 40000, 123), "ntp");
    cr_assert_str_eq(meta_app_by_port(17, 68, 67), "dhcp");
    cr_assert_str_eq(meta_app_by_port(6, 50000, 443), "https");
    cr_assert_str_eq(meta_app_by_port(17, 50000, 443), "quic");
    cr_assert_str_eq(meta_app_by_port(6, 50000, 853), "dot");
    cr_assert_str_eq(meta_app_by_port(17, 40000, 4789), "vxlan");
    cr_assert_str_eq(meta_app_by_port(6, 40000, 5432), "postgresql");
    cr_assert_null(meta_app_by_port(6, 5353, 40000)); /* mDNS is UDP only */
    cr_assert_null(meta_app_by_port(17, 40000, 40001));
    cr_assert_null(meta_app_by_port(1, 0, 53));
    cr_assert_null(meta_app_by_port(6, 0, 0));
    cr_assert_null(meta_app_by_port(6, 65535, 65535));
}
