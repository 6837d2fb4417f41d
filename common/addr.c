/* addr.c — address formatting, parsing and network membership. */
#include "addr.h"

#include "err.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void addr_from_v4(struct vigil_addr *a, const uint8_t v4[4])
{
    memset(a->b, 0, 10);
    a->b[10] = 0xff;
    a->b[11] = 0xff;
    memcpy(a->b + 12, v4, 4);
}

/* Dotted quad of b[0..3], then a NUL; returns the NUL's place. */
static char *put_v4(char *p, const uint8_t *b)
{
    for (int i = 0; i < 4; i++) {
        unsigned v = b[i];
        if (v >= 100)
            *p++ = (char)('0' + v / 100);
        if (v >= 10)
            *p++ = (char)('0' + v / 10 % 10);
        *p++ = (char)('0' + v % 10);
        *p++ = i < 3 ? '.' : '\0';
    }
    return p - 1;
}

/* The text glibc's inet_ntop gives (RFC 5952 compression of the longest
 * run of two or more zero groups, the first on a tie; ::a.b.c.d and
 * ::ffff:a.b.c.d for the IPv4 forms), written here because glibc formats
 * every group through sprintf: about 650 instructions an address, twice
 * per flow record. test_addr.c checks it against inet_ntop. */
static void put_v6(char *p, const uint8_t *b)
{
    static const char hex[] = "0123456789abcdef";
    unsigned w[8];
    int best = -1, best_len = 0, run = -1;
    for (int i = 0; i < 8; i++) {
        w[i] = (unsigned)b[2 * i] << 8 | b[2 * i + 1];
        if (w[i] == 0 && run < 0)
            run = i;
        if (run >= 0 && (w[i] != 0 || i == 7)) {
            int len = (w[i] == 0 ? i + 1 : i) - run;
            if (len > best_len) {
                best = run;
                best_len = len;
            }
            run = -1;
        }
    }
    if (best_len < 2)
        best = -1;
    for (int i = 0; i < 8; i++) {
        if (best >= 0 && i >= best && i < best + best_len) {
            if (i == best)
                *p++ = ':';
            continue;
        }
        if (i)
            *p++ = ':';
        if (i == 6 && best == 0 && (best_len == 6 || (best_len == 5 && w[5] == 0xffff))) {
            put_v4(p, b + 12);
            return;
        }
        bool lead = false;
        for (int shift = 12; shift >= 0; shift -= 4) {
            unsigned d = w[i] >> shift & 15;
            if (d || lead || shift == 0) {
                *p++ = hex[d];
                lead = true;
            }
        }
    }
    if (best >= 0 && best + best_len == 8)
        *p++ = ':';
    *p = '\0';
}

const char *addr_format(const struct vigil_addr *a, char buf[ADDR_STRLEN])
{
    if (addr_is_v4(a))
        put_v4(buf, a->b + 12);
    else
        put_v6(buf, a->b);
    return buf;
}

int addr_parse(const char *text, struct vigil_addr *out)
{
    uint8_t v4[4];
    if (inet_pton(AF_INET, text, v4) == 1) {
        addr_from_v4(out, v4);
        return 0;
    }
    if (inet_pton(AF_INET6, text, out->b) == 1)
        return 0;
    return VIGIL_EINVAL;
}

int cidr_parse(const char *text, struct cidr *out)
{
    char host[ADDR_STRLEN];
    const char *slash = strchr(text, '/');
    size_t hlen = slash ? (size_t)(slash - text) : strlen(text);
    if (hlen == 0 || hlen >= sizeof host)
        return VIGIL_EINVAL;
    memcpy(host, text, hlen);
    host[hlen] = '\0';
    if (addr_parse(host, &out->net) != 0)
        return VIGIL_EINVAL;
    bool v4 = addr_is_v4(&out->net) && !strchr(host, ':');
    unsigned max = v4 ? 32 : 128;
    unsigned long plen = max;
    if (slash) {
        char *end;
        if (slash[1] < '0' || slash[1] > '9')
            return VIGIL_EINVAL;
        plen = strtoul(slash + 1, &end, 10);
        if (*end != '\0' || plen > max)
            return VIGIL_EINVAL;
    }
    out->prefix = (uint8_t)(v4 ? plen + 96 : plen);
    for (unsigned i = 0; i < 16; i++) {
        unsigned bits = i * 8;
        if (bits >= out->prefix)
            out->net.b[i] = 0;
        else if (bits + 8 > out->prefix)
            out->net.b[i] &= (uint8_t)(0xff << (8 - (out->prefix - bits)));
    }
    return 0;
}

bool cidr_contains(const struct cidr *c, const struct vigil_addr *a)
{
    unsigned full = c->prefix / 8, rest = c->prefix % 8;
    if (memcmp(c->net.b, a->b, full) != 0)
        return false;
    if (rest == 0)
        return true;
    uint8_t mask = (uint8_t)(0xff << (8 - rest));
    return (a->b[full] & mask) == c->net.b[full];
}

int cidr_set_add(struct cidr_set *s, const char *text)
{
    if (s->count >= CIDR_SET_MAX)
        return VIGIL_EFULL;
    int rc = cidr_parse(text, &s->nets[s->count]);
    if (rc == 0)
        s->count++;
    return rc;
}

bool cidr_set_contains(const struct cidr_set *s, const struct vigil_addr *a)
{
    for (unsigned i = 0; i < s->count; i++)
        if (cidr_contains(&s->nets[i], a))
            return true;
    return false;
}
