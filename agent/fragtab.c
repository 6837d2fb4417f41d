/* fragtab.c — first-fragment ports for later fragments (see fragtab.h).
 *
 * Open addressing over a fixed array with a short probe; when every probed
 * slot is taken the oldest is replaced (its pending counts, if any, are
 * given up first, so nothing counted is lost). */
#include "fragtab.h"

#include "clock.h"
#include "hash.h"
#include "vigil_limits.h"

#include <stdlib.h>
#include <string.h>

#define PROBE 8

struct frag_key {
    uint8_t src[16], dst[16];
    uint32_t id;
    uint16_t vlan;
    uint8_t proto;
    uint8_t pad;
};

struct frag_entry {
    struct frag_key key;
    int64_t seen_ns;   /* last touched; 0 = free */
    bool has_first;
    uint16_t sport, dport;
    struct frag_pending pending;
};

struct fragtab {
    struct hash_key hkey;
    frag_give_up_fn give_up; /* pending counts of entries that are dropped */
    void *ctx;
    struct frag_entry slots[FRAGTAB_SLOTS];
};

static void give_up_entry(struct fragtab *ft, const struct frag_entry *e);

struct fragtab *fragtab_create(frag_give_up_fn give_up, void *ctx)
{
    struct fragtab *ft = calloc(1, sizeof *ft);
    if (!ft)
        return NULL;
    ft->give_up = give_up;
    ft->ctx = ctx;
    if (hash_key_random(&ft->hkey) != 0) {
        free(ft);
        return NULL;
    }
    return ft;
}

void fragtab_destroy(struct fragtab *ft)
{
    free(ft);
}

static void make_key(const struct pkt *p, struct frag_key *k)
{
    memset(k, 0, sizeof *k);
    memcpy(k->src, p->src.b, 16);
    memcpy(k->dst, p->dst.b, 16);
    k->id = p->frag_id;
    k->vlan = p->vlan;
    k->proto = p->proto;
}

/* Finds the entry for k, or a slot to put it in (free or oldest). */
static struct frag_entry *lookup(struct fragtab *ft, const struct frag_key *k, bool *found)
{
    uint64_t h = hash_siphash13(&ft->hkey, k, sizeof *k);
    struct frag_entry *victim = NULL;
    for (unsigned i = 0; i < PROBE; i++) {
        struct frag_entry *e = &ft->slots[(h + i) & (FRAGTAB_SLOTS - 1)];
        if (e->seen_ns != 0 && memcmp(&e->key, k, sizeof *k) == 0) {
            *found = true;
            return e;
        }
        if (!victim || e->seen_ns < victim->seen_ns)
            victim = e;
    }
    *found = false;
    if (victim->seen_ns != 0 && victim->pending.pkts)
        give_up_entry(ft, victim);
    memset(victim, 0, sizeof *victim);
    victim->key = *k;
    return victim;
}

static int64_t touch_time(const struct pkt *p)
{
    return p->ts_ns != 0 ? p->ts_ns : 1; /* 0 marks a free slot */
}

bool fragtab_first(struct fragtab *ft, const struct pkt *p, struct frag_pending *pending)
{
    struct frag_key k;
    bool found;
    make_key(p, &k);
    struct frag_entry *e = lookup(ft, &k, &found);
    e->seen_ns = touch_time(p);
    e->has_first = true;
    e->sport = p->sport;
    e->dport = p->dport;
    if (found && e->pending.pkts) {
        *pending = e->pending;
        memset(&e->pending, 0, sizeof e->pending);
        return true;
    }
    return false;
}

bool fragtab_later(struct fragtab *ft, struct pkt *p)
{
    struct frag_key k;
    bool found;
    make_key(p, &k);
    struct frag_entry *e = lookup(ft, &k, &found);
    e->seen_ns = touch_time(p);
    if (found && e->has_first) {
        p->sport = e->sport;
        p->dport = e->dport;
        p->has_ports = p->proto == IPPROTO_NUM_TCP || p->proto == IPPROTO_NUM_UDP ||
                       p->proto == IPPROTO_NUM_SCTP;
        return true;
    }
    if (e->pending.pkts == 0)
        e->pending.first_ns = p->ts_ns;
    e->pending.pkts++;
    e->pending.bytes += p->ip_len;
    e->pending.last_ns = p->ts_ns;
    return false;
}

static void give_up_entry(struct fragtab *ft, const struct frag_entry *e)
{
    struct pkt p = {.vlan = e->key.vlan};
    memcpy(p.src.b, e->key.src, 16);
    memcpy(p.dst.b, e->key.dst, 16);
    p.proto = e->key.proto;
    p.family = addr_is_v4(&p.src) ? 4 : 6;
    p.ts_ns = e->pending.last_ns;
    ft->give_up(ft->ctx, &p, &e->pending);
}

void fragtab_expire(struct fragtab *ft, int64_t now_ns)
{
    int64_t limit = now_ns - (int64_t)FRAGTAB_TIMEOUT_S * NS_PER_SEC;
    for (unsigned i = 0; i < FRAGTAB_SLOTS; i++) {
        struct frag_entry *e = &ft->slots[i];
        if (e->seen_ns == 0 || e->seen_ns > limit)
            continue;
        if (e->pending.pkts)
            give_up_entry(ft, e);
        memset(e, 0, sizeof *e);
    }
}
