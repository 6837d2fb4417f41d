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

const char *addr_format(const struct vigil_addr *a, char buf[ADDR_STRLEN])
{
    if (addr_is_v4(a)) { /* by hand: this runs twice per flow record */
        char *p = buf;
        for (int i = 12; i < 16; i++) {
            unsigned v = a->b[i];
            if (v >= 100)
                *p++ = (char)('0' + v / 100);
            if (v >= 10)
                *p++ = (char)('0' + v / 10 % 10);
            *p++ = (char)('0' + v % 10);
            *p++ = i < 15 ? '.' : '\0';
        }
    } else
        inet_ntop(AF_INET6, a->b, buf, ADDR_STRLEN);
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
