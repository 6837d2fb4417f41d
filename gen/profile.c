/* profile.c — profile lookup and addressing helpers. */
#include "profile.h"

#include "addr.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct profile_ops *const all[] = {&profile_unit, &profile_bench};

const struct profile_ops *profile_find(const char *name)
{
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (strcmp(all[i]->name, name) == 0)
            return all[i];
    return NULL;
}

void profile_ends(struct pkt_ends *e, uint8_t proto, const char *a, uint16_t pa, const char *b,
                  uint16_t pb, uint16_t vlan)
{
    struct vigil_addr x, y;
    if (addr_parse(a, &x) != 0 || addr_parse(b, &y) != 0) {
        fprintf(stderr, "vigil-gen: bad address in a profile: %s / %s\n", a, b);
        abort();
    }
    memset(e, 0, sizeof *e);
    e->proto = proto;
    e->vlan = vlan;
    e->port[0] = pa;
    e->port[1] = pb;
    if (addr_is_v4(&x)) {
        e->ipver = 4;
        memcpy(e->ip[0], x.b + 12, 4);
        memcpy(e->ip[1], y.b + 12, 4);
    } else {
        e->ipver = 6;
        memcpy(e->ip[0], x.b, 16);
        memcpy(e->ip[1], y.b, 16);
    }
    /* Initiator: 02:00 + the low four address bytes; responder: the gateway. */
    static const uint8_t gw[6] = {0x02, 0x00, 0x00, 0x00, 0x00, 0x01};
    e->mac[0][0] = 0x02;
    e->mac[0][1] = 0x00;
    memcpy(e->mac[0] + 2, x.b + 12, 4);
    memcpy(e->mac[1], gw, 6);
    e->ttl[0] = 64;
    e->ttl[1] = 54;
    e->flowlabel[0] = (uint32_t)(x.b[15] * 2654435761u) & 0xfffff;
    e->flowlabel[1] = (uint32_t)(y.b[15] * 2246822519u + pa) & 0xfffff;
}
