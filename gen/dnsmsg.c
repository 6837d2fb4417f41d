/* dnsmsg.c — DNS wire format writer (RFC 1035 §4.1, EDNS(0) RFC 6891, SVCB/HTTPS
 * RFC 9460).
 *
 *   header:   ID | QR Opcode AA TC RD RA Z RCODE | QDCOUNT | ANCOUNT | NSCOUNT | ARCOUNT
 *   question: QNAME (labels) | QTYPE | QCLASS
 *   RR:       NAME | TYPE | CLASS | TTL | RDLENGTH | RDATA
 *
 * The question name always sits at offset 12, so answers for it use the
 * compression pointer 0xc00c. */
#include "dnsmsg.h"

#include "names.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

struct wbuf {
    uint8_t *p;
    size_t len, cap;
    bool overflow;
};

static void w_bytes(struct wbuf *w, const void *b, size_t n)
{
    if (w->overflow || n > w->cap - w->len) {
        w->overflow = true;
        return;
    }
    memcpy(w->p + w->len, b, n);
    w->len += n;
}

static void w_u8(struct wbuf *w, uint32_t v)
{
    uint8_t b = (uint8_t)v;
    w_bytes(w, &b, 1);
}

static void w_u16(struct wbuf *w, uint32_t v)
{
    uint8_t b[2] = {(uint8_t)(v >> 8), (uint8_t)v};
    w_bytes(w, b, 2);
}

static void w_u32(struct wbuf *w, uint32_t v)
{
    uint8_t b[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    w_bytes(w, b, 4);
}

/* Writes a dotted name as length-prefixed labels ending with the root. */
static void w_name(struct wbuf *w, const char *name)
{
    const char *s = name;
    while (*s) {
        const char *dot = strchr(s, '.');
        size_t n = dot ? (size_t)(dot - s) : strlen(s);
        if (n > 63)
            n = 63;
        w_u8(w, (uint32_t)n);
        w_bytes(w, s, n);
        s += n;
        if (*s == '.')
            s++;
    }
    w_u8(w, 0);
}

static void w_header(struct wbuf *w, uint16_t id, uint16_t flags, unsigned qd, unsigned an,
                     unsigned ns, unsigned ar)
{
    w_u16(w, id);
    w_u16(w, flags);
    w_u16(w, qd);
    w_u16(w, an);
    w_u16(w, ns);
    w_u16(w, ar);
}

/* EDNS(0) OPT pseudo-RR: root owner, UDP payload size 1232, no options. */
static void w_opt(struct wbuf *w)
{
    w_u8(w, 0);
    w_u16(w, 41);
    w_u16(w, 1232);
    w_u32(w, 0);
    w_u16(w, 0);
}

size_t dns_build_query(uint8_t *out, size_t cap, uint16_t id, const char *qname, uint16_t qtype)
{
    struct wbuf w = {.p = out, .cap = cap};
    w_header(&w, id, 0x0100 /* RD */, 1, 0, 0, 1);
    w_name(&w, qname);
    w_u16(&w, qtype);
    w_u16(&w, 1); /* IN */
    w_opt(&w);
    return w.overflow ? 0 : w.len;
}

/* Starts an RR whose owner is the compression pointer `owner`; returns the
 * offset of RDLENGTH so the caller can patch it. */
static size_t w_rr_start(struct wbuf *w, uint16_t owner, uint16_t type, uint32_t ttl)
{
    w_u16(w, owner);
    w_u16(w, type);
    w_u16(w, 1);
    w_u32(w, ttl);
    size_t at = w->len;
    w_u16(w, 0);
    return at;
}

static void w_rr_end(struct wbuf *w, size_t at)
{
    if (w->overflow)
        return;
    size_t rdlen = w->len - at - 2;
    w->p[at] = (uint8_t)(rdlen >> 8);
    w->p[at + 1] = (uint8_t)rdlen;
}

size_t dns_build_response(uint8_t *out, size_t cap, uint16_t id, const char *qname,
                          uint16_t qtype, uint8_t rcode, struct rng *r)
{
    struct wbuf w = {.p = out, .cap = cap};
    bool ok = rcode == DNS_RCODE_NOERROR;
    bool cname = ok && (qtype == DNS_TYPE_A || qtype == DNS_TYPE_AAAA) && rng_chance(r, 0.25);
    unsigned n_addr = (qtype == DNS_TYPE_A || qtype == DNS_TYPE_AAAA) ? 1 + (unsigned)rng_below(r, 3)
                                                                       : 1;
    unsigned an = ok ? n_addr + (cname ? 1 : 0) : 0;
    unsigned ns = rcode == DNS_RCODE_NXDOMAIN ? 1 : 0;

    w_header(&w, id, (uint16_t)(0x8180 | (rcode & 0x0f)), 1, an, ns, 1);
    w_name(&w, qname);
    w_u16(&w, qtype);
    w_u16(&w, 1);

    uint32_t ttl = (uint32_t)rng_range(r, 30, 3600);
    uint16_t owner = 0xc00c;
    size_t at;
    if (cname) {
        char target[NAME_MAX_LEN];
        snprintf(target, sizeof target, "edge%u.cdn.example.net", (unsigned)rng_below(r, 64));
        at = w_rr_start(&w, owner, 5, ttl);
        size_t name_off = w.len;
        w_name(&w, target);
        w_rr_end(&w, at);
        owner = (uint16_t)(0xc000 | name_off);
    }
    if (ok) {
        for (unsigned i = 0; i < n_addr; i++) {
            at = w_rr_start(&w, owner, qtype, ttl);
            switch (qtype) {
            case DNS_TYPE_A: {
                uint8_t a[4] = {198, 51, 100, (uint8_t)rng_range(r, 1, 254)};
                w_bytes(&w, a, 4);
                break;
            }
            case DNS_TYPE_AAAA: {
                uint8_t a[16] = {0x20, 0x01, 0x0d, 0xb8, 0xff, 0xfe};
                rng_fill(r, a + 8, 8);
                w_bytes(&w, a, 16);
                break;
            }
            case DNS_TYPE_TXT: {
                static const char txt[] = "v=spf1 ip4:192.0.2.0/24 -all";
                w_u8(&w, sizeof txt - 1);
                w_bytes(&w, txt, sizeof txt - 1);
                break;
            }
            case DNS_TYPE_PTR: {
                char host[NAME_MAX_LEN];
                names_host(r, host, sizeof host);
                w_name(&w, host);
                break;
            }
            default: { /* HTTPS: priority 1, target ".", alpn=h2,h3 */
                static const uint8_t svcb[] = {0, 1, 0, 0, 1, 0, 6, 2, 'h', '2', 2, 'h', '3'};
                w_bytes(&w, svcb, sizeof svcb);
                break;
            }
            }
            w_rr_end(&w, at);
        }
    }
    if (ns) {
        /* SOA of the registered domain: owner written in full, no pointer. */
        w_name(&w, names_registered(qname));
        w_u16(&w, 6);
        w_u16(&w, 1);
        w_u32(&w, 900);
        at = w.len;
        w_u16(&w, 0);
        w_name(&w, "ns1.example.net");
        w_name(&w, "hostmaster.example.net");
        w_u32(&w, 2026010101);
        w_u32(&w, 7200);
        w_u32(&w, 900);
        w_u32(&w, 1209600);
        w_u32(&w, 300);
        w_rr_end(&w, at);
    }
    w_opt(&w);
    return w.overflow ? 0 : w.len;
}

/* The parent of a tunnel's names: the last two labels of qname. */
static const char *last_two_labels(const char *qname)
{
    const char *end = qname + strlen(qname), *p = end;
    int dots = 0;
    while (p > qname) {
        if (p[-1] == '.' && ++dots == 2)
            break;
        p--;
    }
    return p;
}

size_t dns_build_data_response(uint8_t *out, size_t cap, uint16_t id, const char *qname,
                               uint16_t qtype, size_t data_len, struct rng *r)
{
    static const char b64[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    static const char b32[] = "abcdefghijklmnopqrstuvwxyz012345";
    struct wbuf w = {.p = out, .cap = cap};
    w_header(&w, id, 0x8180, 1, 1, 0, 1);
    w_name(&w, qname);
    w_u16(&w, qtype);
    w_u16(&w, 1);
    uint16_t type = qtype == DNS_TYPE_TXT || qtype == DNS_TYPE_CNAME ? qtype : DNS_TYPE_NULL;
    size_t at = w_rr_start(&w, 0xc00c, type, 0);
    if (type == DNS_TYPE_TXT) {
        /* Base64 text: 4 characters per 3 bytes, strings of at most 255. */
        size_t chars = (data_len + 2) / 3 * 4;
        while (chars > 0 && !w.overflow) {
            size_t n = chars > 255 ? 255 : chars;
            w_u8(&w, (uint32_t)n);
            for (size_t i = 0; i < n; i++)
                w_u8(&w, (uint8_t)b64[rng_below(r, 64)]);
            chars -= n;
        }
    } else if (type == DNS_TYPE_CNAME) {
        /* Base32 labels of up to 63 characters; a name stays within 253. */
        char name[254];
        const char *parent = last_two_labels(qname);
        size_t plen = strlen(parent), room = sizeof name - 3 - plen, len = 0;
        size_t chars = (data_len * 8 + 4) / 5;
        if (chars > room - room / 64)
            chars = room - room / 64;
        while (chars > 0) {
            size_t n = chars > 63 ? 63 : chars;
            for (size_t i = 0; i < n; i++)
                name[len++] = b32[rng_below(r, 32)];
            name[len++] = '.';
            chars -= n;
        }
        memcpy(name + len, parent, plen + 1);
        w_name(&w, name);
    } else {
        uint8_t chunk[64];
        for (size_t left = data_len; left > 0 && !w.overflow;) {
            size_t n = left > sizeof chunk ? sizeof chunk : left;
            rng_fill(r, chunk, n);
            w_bytes(&w, chunk, n);
            left -= n;
        }
    }
    w_rr_end(&w, at);
    w_opt(&w);
    return w.overflow ? 0 : w.len;
}
