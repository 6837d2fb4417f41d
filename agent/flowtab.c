/* flowtab.c — fixed-capacity bidirectional flow table with a timer wheel.
 *
 * Layout: one slab of entries (index 0 is a sentinel, so 0 means "none"),
 * a power-of-two bucket array of chain heads, and a wheel of one-second
 * slots holding every live flow. The per-packet path touches one bucket
 * and one entry and never moves a flow between slots: a flow sits in the
 * slot of the deadline it had when it was filed, and when the wheel reaches
 * that slot the real deadline is recomputed; a flow that saw packets since
 * is refiled further on. Expiry is thus amortised O(1) with no per-packet
 * list surgery, and runs entirely on packet time.
 *
 * Metadata strings (DNS name, SNI, HTTP host, JA4) do not fit a compact
 * entry; they live in a separate pool of slots handed out on first need. */
#include "flowtab.h"

#include "clock.h"
#include "fragtab.h"
#include "hash.h"
#include "vigil_limits.h"
#include "log.h"
#include "meta.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


enum {
    F_INIT_SIDE1 = 1 << 0,  /* the initiator is key side 1 */
    F_SYN_SEEN = 1 << 1,    /* a pure SYN fixed the orientation */
    F_HAS_PORTS = 1 << 2,
    F_HAS_ICMP = 1 << 3,
    F_CLOSED = 1 << 4,      /* FIN both ways or RST: linger then end */
    F_RST = 1 << 5,
    F_SEQ0 = 1 << 6,        /* next_seq[0] valid */
    F_SEQ1 = 1 << 7,        /* next_seq[1] valid */
    F_RTT = 1 << 8,         /* rtt_us valid */
    F_SYNACK = 1 << 9,      /* SYN-ACK from the responder seen */
    F_INSPECT_DONE = 1 << 10,
    F_RST_FIRST_INIT = 1 << 11, /* the first RST came from the initiator */
    F_DNS_RCODE = 1 << 12,
    F_DNS = 1 << 13,
};

struct flow {
    struct flow_key key;
    uint32_t hnext;      /* bucket chain */
    uint32_t wnext, wprev; /* wheel slot list; prev of a slot head is 0 */
    uint32_t meta;       /* index into the meta pool, 0 = none */
    uint32_t bucket;     /* the bucket whose chain holds the flow */
    uint16_t flags;
    uint8_t tcp_flags[2];  /* per key side */
    uint8_t icmp_type, icmp_code;
    uint8_t inspected;   /* payload packets looked at */
    uint8_t tunnel;      /* enum tunnel_kind of the first packet */
    uint16_t reasm;      /* index+1 into the reassembly pool */
    uint16_t wslot;      /* the wheel slot the flow is filed in */
    uint8_t app;         /* label index + 1 into flowtab.labels, 0 = unknown */
    int64_t first_ns;    /* first packet of the current record, 0 = none yet */
    int64_t last_ns;
    uint64_t pkts[2], bytes[2];
    uint32_t next_seq[2];
    uint32_t retrans[2];
    uint32_t rtt_us;     /* with F_RTT: the RTT; before: the SYN's time in µs, mod 2^32 */
    uint32_t id;         /* low bits of the flow id; the table supplies the prefix */
};
_Static_assert(sizeof(struct flow) <= 160, "a flow entry stays within two and a half cache lines");

/* A flow carries at most one name: a DNS question, a TLS/QUIC server name
 * or an HTTP host, as name_kind says. */
enum name_kind { NAME_NONE = 0, NAME_DNS, NAME_SNI, NAME_HOST };

struct flow_meta {
    char name[FLOWREC_NAME_MAX];
    char ja4[FLOWREC_JA4_MAX];
    uint16_t dns_qtype, dns_id;
    uint8_t dns_rcode;
    uint8_t name_kind;
    uint32_t next_free;
};

#define LABELS_MAX 128 /* distinct application labels; meta_app's vocabulary is smaller */

/* A ClientHello being gathered: over TCP segments (in-order bytes), or
 * over QUIC Initial datagrams (meta_quic_initial_add keeps that state). */
struct tls_reasm {
    uint32_t len;       /* bytes gathered */
    uint32_t need;      /* bytes the ClientHello needs */
    uint32_t next_seq;  /* sequence number of the next in-order byte */
    uint8_t data[REASM_BUF_BYTES];
};

enum reasm_kind { REASM_TLS = 1, REASM_QUIC };

struct reasm_buf {
    uint16_t next_free;
    uint8_t kind;       /* enum reasm_kind while in use */
    uint8_t datagrams;  /* QUIC: datagrams fed so far */
    union {
        struct tls_reasm tls;
        struct quic_hello_reasm quic;
    } u;
};

struct flowtab {
    struct flowtab_config cfg;
    flow_emit_fn emit;
    void *emit_ctx;
    struct hash_key hkey;
    struct fragtab *frags;

    struct flow *flows;   /* capacity + 1 entries, [0] unused */
    uint32_t capacity;
    uint32_t free_head;
    uint32_t *buckets;
    uint32_t bucket_mask;

    uint32_t wheel[FLOWTAB_WHEEL_SLOTS];
    int64_t wheel_sec;    /* every slot up to this second has been processed */
    int64_t now_ns;       /* the table's clock */
    int64_t next_frag_sweep_ns;
    bool clock_started;
    bool emergency;

    struct flow_meta *metas;
    uint32_t meta_count, meta_free;
    struct reasm_buf *reasm;
    uint16_t reasm_free;

    uint64_t id_base;
    uint32_t id_next;
    const char *labels[LABELS_MAX]; /* static strings from meta_app, interned */
    unsigned nlabels;
    struct flowtab_stats stats;
};

void flowtab_config_defaults(struct flowtab_config *cfg)
{
    *cfg = (struct flowtab_config){
        .max_flows = FLOWTAB_DEFAULT_MAX_FLOWS,
        .idle_ns = FLOWTAB_DEFAULT_IDLE_S * NS_PER_SEC,
        .active_ns = FLOWTAB_DEFAULT_ACTIVE_S * NS_PER_SEC,
        .close_ns = FLOWTAB_DEFAULT_CLOSE_S * NS_PER_SEC,
    };
}

static void frag_give_up(void *ctx, const struct pkt *p, const struct frag_pending *pd);

struct flowtab *flowtab_create(const struct flowtab_config *cfg, flow_emit_fn emit, void *ctx)
{
    if (cfg->max_flows < FLOWTAB_MIN_FLOWS || cfg->max_flows > FLOWTAB_MAX_FLOWS ||
        cfg->idle_ns <= 0 || cfg->active_ns <= 0 || cfg->close_ns <= 0) {
        log_err("flow table: invalid configuration (max_flows %u, timeouts must be > 0)",
                cfg->max_flows);
        return NULL;
    }
    struct flowtab *ft = calloc(1, sizeof *ft);
    if (!ft)
        return NULL;
    ft->cfg = *cfg;
    ft->emit = emit;
    ft->emit_ctx = ctx;
    ft->capacity = cfg->max_flows;
    uint32_t nb = 1;
    while (nb < ft->capacity * 2u)
        nb <<= 1;
    ft->bucket_mask = nb - 1;
    ft->meta_count = ft->capacity / FLOWTAB_META_RATIO;
    ft->flows = calloc((size_t)ft->capacity + 1, sizeof *ft->flows);
    ft->buckets = calloc(nb, sizeof *ft->buckets);
    ft->metas = calloc((size_t)ft->meta_count + 1, sizeof *ft->metas);
    ft->reasm = calloc(REASM_POOL + 1, sizeof *ft->reasm);
    ft->frags = fragtab_create(frag_give_up, ft);
    if (!ft->flows || !ft->buckets || !ft->metas || !ft->reasm || !ft->frags)
        goto fail;

    if (cfg->hash_k0 || cfg->hash_k1) {
        ft->hkey.k0 = cfg->hash_k0;
        ft->hkey.k1 = cfg->hash_k1;
    } else if (hash_key_random(&ft->hkey) != 0) {
        goto fail;
    }
    /* Flow ids: a random 20-bit prefix per start above a 32-bit counter,
     * unique across restarts with high probability and exact in a double. */
    ft->id_base = (ft->hkey.k0 & 0xfffff) << 32;
    ft->id_next = 1;

    for (uint32_t i = 1; i <= ft->capacity; i++)
        ft->flows[i].hnext = i < ft->capacity ? i + 1 : 0;
    ft->free_head = 1;
    for (uint32_t i = 1; i <= ft->meta_count; i++)
        ft->metas[i].next_free = i < ft->meta_count ? i + 1 : 0;
    ft->meta_free = ft->meta_count ? 1 : 0;
    for (uint16_t i = 1; i <= REASM_POOL; i++)
        ft->reasm[i].next_free = i < REASM_POOL ? (uint16_t)(i + 1) : 0;
    ft->reasm_free = 1;
    return ft;
fail:
    flowtab_destroy(ft);
    return NULL;
}

void flowtab_destroy(struct flowtab *ft)
{
    if (!ft)
        return;
    fragtab_destroy(ft->frags);
    free(ft->flows);
    free(ft->buckets);
    free(ft->metas);
    free(ft->reasm);
    free(ft);
}

size_t flowtab_bytes_per_flow(const struct flowtab *ft)
{
    size_t total = sizeof(struct flow) * ((size_t)ft->capacity + 1) +
                   sizeof(uint32_t) * ((size_t)ft->bucket_mask + 1) +
                   sizeof(struct flow_meta) * ((size_t)ft->meta_count + 1) +
                   sizeof(struct reasm_buf) * (REASM_POOL + 1);
    return total / ft->capacity;
}

/* ---- keys ------------------------------------------------------------ */

static bool icmp_is_query(uint8_t family, uint8_t type)
{
    if (family == 6)
        return type == 128 || type == 129;
    return type == 0 || type == 8 || type == 13 || type == 14 || type == 15 || type == 16 ||
           type == 17 || type == 18;
}

/* The request type of an ICMP query/reply pair, so both map to one key. */
static uint8_t icmp_query_class(uint8_t family, uint8_t type)
{
    if (family == 6)
        return 128;
    switch (type) {
    case 0: return 8;
    case 14: return 13;
    case 16: return 15;
    case 18: return 17;
    default: return type;
    }
}

/* Word-sized views of key and address bytes: these run for every packet
 * (and every step of a bucket chain), where a libc memcmp call per use
 * cost more than the comparison itself. */
static uint64_t load64(const uint8_t *b)
{
    uint64_t v;
    memcpy(&v, b, sizeof v);
    return v;
}

/* memcmp(a, b, 16) < 0, i.e. a sorts before b as a big-endian number. */
static int addr_order(const uint8_t *a, const uint8_t *b)
{
    uint64_t ah = __builtin_bswap64(load64(a)), bh = __builtin_bswap64(load64(b));
    if (ah != bh)
        return ah < bh ? -1 : 1;
    uint64_t al = __builtin_bswap64(load64(a + 8)), bl = __builtin_bswap64(load64(b + 8));
    return al < bl ? -1 : al > bl;
}

static bool key_equal(const struct flow_key *a, const struct flow_key *b)
{
    const uint8_t *x = (const uint8_t *)a, *y = (const uint8_t *)b;
    uint64_t diff = 0;
    for (size_t i = 0; i + 8 <= sizeof *a; i += 8)
        diff |= load64(x + i) ^ load64(y + i);
    uint32_t xt, yt;
    memcpy(&xt, x + sizeof *a - 4, 4);
    memcpy(&yt, y + sizeof *a - 4, 4);
    return (diff | (xt ^ yt)) == 0;
}

/* Builds the canonical key; *side is 0 if the packet's source is key side 0. */
static void make_key(const struct pkt *p, struct flow_key *k, int *side)
{
    memset(k, 0, sizeof *k);
    k->proto = p->proto;
    k->vlan = p->vlan;
    uint16_t sp = p->has_ports ? p->sport : 0, dp = p->has_ports ? p->dport : 0;
    if (p->has_icmp) {
        k->icmp = icmp_is_query(p->family, p->icmp_type)
                      ? (uint32_t)icmp_query_class(p->family, p->icmp_type) << 16 | p->icmp_id
                      : 0x1000000u | (uint32_t)p->icmp_type << 8 | p->icmp_code;
    }
    int c = addr_order(p->src.b, p->dst.b);
    if (c < 0 || (c == 0 && sp <= dp)) {
        memcpy(k->addr[0], p->src.b, 16);
        memcpy(k->addr[1], p->dst.b, 16);
        k->port[0] = sp;
        k->port[1] = dp;
        *side = 0;
    } else {
        memcpy(k->addr[0], p->dst.b, 16);
        memcpy(k->addr[1], p->src.b, 16);
        k->port[0] = dp;
        k->port[1] = sp;
        *side = 1;
    }
}

/* The keyed hash of a key. An IPv4 pair packs into two words: both
 * addresses; then the ports or the ICMP identity (a flow has one or the
 * other, and the protocol says which), VLAN and protocol. Every varying
 * byte, and a third of the work of hashing the whole key. */
static uint64_t key_hash(const struct flowtab *ft, const struct flow_key *k)
{
    if (addr_bytes_are_v4(k->addr[0]) && addr_bytes_are_v4(k->addr[1])) {
        uint32_t a0, a1, ports;
        memcpy(&a0, k->addr[0] + 12, 4);
        memcpy(&a1, k->addr[1] + 12, 4);
        memcpy(&ports, k->port, 4);
        uint64_t w0 = (uint64_t)a0 | (uint64_t)a1 << 32;
        uint64_t w1 = (uint64_t)(ports ^ k->icmp) | (uint64_t)k->vlan << 32 |
                      (uint64_t)k->proto << 48 | (uint64_t)4 << 56;
        return hash_siphash13_2w(&ft->hkey, w0, w1);
    }
    return hash_siphash13(&ft->hkey, k, sizeof *k);
}

/* ---- wheel ----------------------------------------------------------- */

static int64_t timeout_of(const struct flowtab *ft, const struct flow *f)
{
    int64_t t = (f->flags & F_CLOSED) ? ft->cfg.close_ns : ft->cfg.idle_ns;
    if (ft->emergency) {
        t /= FLOWTAB_EMERG_DIVISOR;
        if (t < NS_PER_SEC)
            t = NS_PER_SEC;
    }
    return t;
}

static int64_t deadline_of(const struct flowtab *ft, const struct flow *f)
{
    int64_t idle = f->last_ns + timeout_of(ft, f);
    if (f->first_ns == 0)
        return idle; /* nothing in the current record yet */
    int64_t active = f->first_ns + ft->cfg.active_ns;
    return idle < active ? idle : active;
}

/* Seconds, rounded up: a deadline at x.1 s is processed when second x+1 is. */
static int64_t ceil_sec(int64_t ns)
{
    int64_t s = ns / NS_PER_SEC;
    return (ns % NS_PER_SEC > 0) ? s + 1 : s;
}

static void wheel_insert(struct flowtab *ft, uint32_t idx)
{
    struct flow *f = &ft->flows[idx];
    int64_t sec = ceil_sec(deadline_of(ft, f));
    if (sec <= ft->wheel_sec)
        sec = ft->wheel_sec + 1;
    if (sec > ft->wheel_sec + (int64_t)FLOWTAB_WHEEL_SLOTS - 1)
        sec = ft->wheel_sec + (int64_t)FLOWTAB_WHEEL_SLOTS - 1; /* parked: re-checked then */
    uint32_t slot = (uint32_t)sec & (FLOWTAB_WHEEL_SLOTS - 1);
    f->wslot = (uint16_t)slot;
    f->wprev = 0;
    f->wnext = ft->wheel[slot];
    if (f->wnext)
        ft->flows[f->wnext].wprev = idx;
    ft->wheel[slot] = idx;
}

static void wheel_remove(struct flowtab *ft, uint32_t idx)
{
    struct flow *f = &ft->flows[idx];
    if (f->wprev)
        ft->flows[f->wprev].wnext = f->wnext;
    else
        ft->wheel[f->wslot] = f->wnext;
    if (f->wnext)
        ft->flows[f->wnext].wprev = f->wprev;
    f->wnext = f->wprev = 0;
}

/* ---- records --------------------------------------------------------- */

static void copy_str(char *dst, size_t cap, const char *src)
{
    size_t n = strnlen(src, cap - 1);
    memcpy(dst, src, n);
    dst[n] = '\0';
}

/* Zeek's conn_state from what each side sent (see flowrec.h for the meanings). */
static enum conn_state tcp_state(const struct flow *f, int init)
{
    int resp = !init;
    uint8_t fo = f->tcp_flags[init], fr = f->tcp_flags[resp];
    bool syn_o = f->flags & F_SYN_SEEN, synack_r = f->flags & F_SYNACK;
    bool rst_o = fo & 0x04, rst_r = fr & 0x04;
    bool fin_o = fo & 0x01, fin_r = fr & 0x01;

    if (syn_o && synack_r) {
        if (rst_o || rst_r) {
            if (rst_o && rst_r)
                return (f->flags & F_RST_FIRST_INIT) ? STATE_RSTO : STATE_RSTR;
            return rst_o ? STATE_RSTO : STATE_RSTR;
        }
        if (fin_o && fin_r)
            return STATE_SF;
        if (fin_o)
            return STATE_S2;
        if (fin_r)
            return STATE_S3;
        return STATE_S1;
    }
    if (syn_o) {
        if (rst_r)
            return STATE_REJ;
        if (rst_o)
            return STATE_RSTOS0;
        if (fin_o)
            return STATE_SH;
        if (f->pkts[resp] == 0)
            return STATE_S0;
        return STATE_OTH;
    }
    if (synack_r) {
        if (rst_r)
            return STATE_RSTRH;
        if (fin_r)
            return STATE_SHR;
    }
    return STATE_OTH;
}

static enum flow_direction direction_of(const struct flowtab *ft, const struct vigil_addr *src,
                                        const struct vigil_addr *dst)
{
    const struct cidr_set *nets = ft->cfg.local_nets;
    if (!nets || nets->count == 0)
        return DIR_UNKNOWN;
    bool ls = cidr_set_contains(nets, src), ld = cidr_set_contains(nets, dst);
    if (ls && ld)
        return DIR_INTERNAL;
    if (ls)
        return DIR_OUTBOUND;
    if (ld)
        return DIR_INBOUND;
    return DIR_EXTERNAL;
}

static void emit_record(struct flowtab *ft, struct flow *f, enum end_reason reason, bool final)
{
    struct flow_record r;
    int init = (f->flags & F_INIT_SIDE1) ? 1 : 0, resp = !init;

    memset(&r, 0, sizeof r);
    r.flow_id = ft->id_base | f->id;
    if (ft->cfg.agent_name)
        copy_str(r.agent, sizeof r.agent, ft->cfg.agent_name);
    r.final = final;
    r.end_reason = (uint8_t)reason;
    r.start_ns = f->first_ns;
    r.end_ns = f->last_ns;
    memcpy(r.src.b, f->key.addr[init], 16);
    memcpy(r.dst.b, f->key.addr[resp], 16);
    r.has_ports = f->flags & F_HAS_PORTS;
    r.src_port = f->key.port[init];
    r.dst_port = f->key.port[resp];
    r.proto = f->key.proto;
    r.vlan = f->key.vlan;
    r.has_icmp = f->flags & F_HAS_ICMP;
    r.icmp_type = f->icmp_type;
    r.icmp_code = f->icmp_code;
    r.pkts_fwd = f->pkts[init];
    r.bytes_fwd = f->bytes[init];
    r.pkts_rev = f->pkts[resp];
    r.bytes_rev = f->bytes[resp];
    if (f->key.proto == IPPROTO_NUM_TCP) {
        r.tcp_flags_fwd = f->tcp_flags[init];
        r.tcp_flags_rev = f->tcp_flags[resp];
        r.state = (uint8_t)tcp_state(f, init);
        r.has_rtt = f->flags & F_RTT;
        r.rtt_us = f->rtt_us;
        r.retrans_fwd = f->retrans[init];
        r.retrans_rev = f->retrans[resp];
    }
    r.direction = (uint8_t)direction_of(ft, &r.src, &r.dst);
    r.tunnel = f->tunnel;
    if (f->app)
        copy_str(r.app, sizeof r.app, ft->labels[f->app - 1]);
    if (f->meta) {
        const struct flow_meta *m = &ft->metas[f->meta];
        switch (m->name_kind) {
        case NAME_DNS:
            r.has_dns = true;
            memcpy(r.dns_qname, m->name, sizeof r.dns_qname);
            r.dns_qtype = m->dns_qtype;
            r.has_dns_rcode = f->flags & F_DNS_RCODE;
            r.dns_rcode = m->dns_rcode;
            break;
        case NAME_SNI: memcpy(r.tls_sni, m->name, sizeof r.tls_sni); break;
        case NAME_HOST: memcpy(r.http_host, m->name, sizeof r.http_host); break;
        default: break;
        }
        memcpy(r.ja4, m->ja4, sizeof r.ja4);
    }
    ft->stats.records_emitted++;
    ft->emit(ft->emit_ctx, &r);
}

static void release_reasm(struct flowtab *ft, struct flow *f)
{
    if (!f->reasm)
        return;
    ft->reasm[f->reasm].next_free = ft->reasm_free;
    ft->reasm_free = f->reasm;
    f->reasm = 0;
}

/* Ends a flow already taken off the wheel: emits its final record and
 * returns the entry to the free list. */
static void flow_end_unfiled(struct flowtab *ft, uint32_t idx, enum end_reason reason)
{
    struct flow *f = &ft->flows[idx];
    emit_record(ft, f, reason, true);

    uint32_t *pp = &ft->buckets[f->bucket];
    while (*pp && *pp != idx)
        pp = &ft->flows[*pp].hnext;
    if (*pp == idx)
        *pp = f->hnext;

    if (f->meta) {
        ft->metas[f->meta].next_free = ft->meta_free;
        ft->meta_free = f->meta;
    }
    release_reasm(ft, f);
    memset(f, 0, sizeof *f);
    f->hnext = ft->free_head;
    ft->free_head = idx;
    ft->stats.active_flows--;
    if (ft->emergency &&
        ft->stats.active_flows * 100 < (uint64_t)ft->capacity * FLOWTAB_EMERG_RECOVER_PCT) {
        ft->emergency = false;
        ft->stats.emergency_active = 0;
        log_info("flow table: emergency mode over (%llu flows)",
                 (unsigned long long)ft->stats.active_flows);
    }
}

static void flow_end(struct flowtab *ft, uint32_t idx, enum end_reason reason)
{
    wheel_remove(ft, idx);
    flow_end_unfiled(ft, idx, reason);
}

/* Why a flow whose deadline passed ends (or, for the active timeout, goes on). */
static enum end_reason expiry_reason(const struct flowtab *ft, const struct flow *f, int64_t now)
{
    if (f->last_ns + timeout_of(ft, f) <= now) {
        if (f->flags & F_CLOSED)
            return (f->flags & F_RST) ? END_RST : END_FIN;
        return END_IDLE;
    }
    return END_ACTIVE;
}

/* Emits a partial record and starts the next one with the same flow id. */
static void flow_partial(struct flowtab *ft, struct flow *f, int64_t now)
{
    emit_record(ft, f, END_ACTIVE, false);
    f->pkts[0] = f->pkts[1] = 0;
    f->bytes[0] = f->bytes[1] = 0;
    f->retrans[0] = f->retrans[1] = 0;
    f->first_ns = 0; /* set by the next packet; no active deadline until then */
    (void)now;
}

static void process_slot(struct flowtab *ft, uint32_t slot, int64_t now)
{
    uint32_t idx = ft->wheel[slot];
    ft->wheel[slot] = 0;
    while (idx) {
        struct flow *f = &ft->flows[idx];
        uint32_t next = f->wnext;
        f->wnext = f->wprev = 0;
        if (deadline_of(ft, f) <= now) {
            enum end_reason why = expiry_reason(ft, f, now);
            if (why == END_ACTIVE && f->pkts[0] + f->pkts[1] > 0) {
                flow_partial(ft, f, now);
                wheel_insert(ft, idx);
            } else if (why == END_ACTIVE) {
                wheel_insert(ft, idx); /* cannot happen: an empty record has no active deadline */
            } else {
                flow_end_unfiled(ft, idx, why);
            }
        } else {
            wheel_insert(ft, idx);
        }
        idx = next;
    }
}

static void advance_clock(struct flowtab *ft, int64_t now)
{
    if (!ft->clock_started) {
        ft->clock_started = true;
        ft->now_ns = now;
        ft->wheel_sec = now / NS_PER_SEC;
        ft->next_frag_sweep_ns = now + NS_PER_SEC;
        return;
    }
    if (now <= ft->now_ns)
        return;
    ft->now_ns = now;
    int64_t target = now / NS_PER_SEC;
    if (target - ft->wheel_sec > (int64_t)FLOWTAB_WHEEL_SLOTS) {
        /* A jump beyond the horizon (merged captures, a paused feed): one
         * lap over every slot checks every flow against the new time. */
        ft->wheel_sec = target - (int64_t)FLOWTAB_WHEEL_SLOTS;
    }
    while (ft->wheel_sec < target) {
        ft->wheel_sec++;
        process_slot(ft, (uint32_t)ft->wheel_sec & (FLOWTAB_WHEEL_SLOTS - 1), now);
    }
    if (now >= ft->next_frag_sweep_ns) {
        fragtab_expire(ft->frags, now);
        ft->next_frag_sweep_ns = now + NS_PER_SEC;
    }
}

void flowtab_advance(struct flowtab *ft, int64_t now_ns)
{
    advance_clock(ft, now_ns);
}

/* ---- allocation ------------------------------------------------------ */

/* Frees one entry when the table is full: the flow filed soonest on the
 * wheel, the closest thing to least recently useful without a per-packet LRU. */
static bool evict_one(struct flowtab *ft)
{
    for (uint32_t i = 1; i <= FLOWTAB_WHEEL_SLOTS; i++) {
        uint32_t slot = (uint32_t)(ft->wheel_sec + i) & (FLOWTAB_WHEEL_SLOTS - 1);
        if (ft->wheel[slot]) {
            flow_end(ft, ft->wheel[slot], END_EVICTED);
            ft->stats.evictions++;
            return true;
        }
    }
    return false;
}

static uint32_t flow_alloc(struct flowtab *ft)
{
    if (!ft->free_head) {
        if (!ft->emergency) {
            ft->emergency = true;
            ft->stats.emergency_entered++;
            ft->stats.emergency_active = 1;
            log_warn("flow table full (%u flows): emergency mode, timeouts divided by %d",
                     ft->capacity, FLOWTAB_EMERG_DIVISOR);
        }
        if (!evict_one(ft))
            return 0;
    }
    uint32_t idx = ft->free_head;
    ft->free_head = ft->flows[idx].hnext;
    ft->stats.active_flows++;
    ft->stats.flows_created++;
    return idx;
}

static struct flow_meta *meta_get(struct flowtab *ft, struct flow *f)
{
    if (f->meta)
        return &ft->metas[f->meta];
    if (!ft->meta_free) {
        ft->stats.meta_exhausted++;
        return NULL;
    }
    f->meta = ft->meta_free;
    struct flow_meta *m = &ft->metas[f->meta];
    ft->meta_free = m->next_free;
    memset(m, 0, sizeof *m);
    return m;
}

/* ---- application metadata -------------------------------------------- */

/* Interns a static label string so a flow keeps one byte for it. */
static void set_label(struct flowtab *ft, struct flow *f, const char *label)
{
    for (unsigned i = 0; i < ft->nlabels; i++) {
        if (ft->labels[i] == label || strcmp(ft->labels[i], label) == 0) {
            f->app = (uint8_t)(i + 1);
            return;
        }
    }
    if (ft->nlabels < LABELS_MAX) {
        ft->labels[ft->nlabels++] = label;
        f->app = (uint8_t)ft->nlabels;
    }
}


static void inspect_dns(struct flowtab *ft, struct flow *f, const struct pkt *p, bool tcp)
{
    struct dns_info dns;
    if (meta_dns_parse(p->payload, p->payload_caplen, tcp, &dns) != META_OK)
        return;
    set_label(ft, f, (p->sport == 5353 || p->dport == 5353) ? "mdns" : "dns");
    struct flow_meta *m = meta_get(ft, f);
    if (!m)
        return;
    if (!(f->flags & F_DNS)) {
        f->flags |= F_DNS;
        m->name_kind = NAME_DNS;
        copy_str(m->name, sizeof m->name, dns.qname);
        m->dns_qtype = dns.qtype;
        m->dns_id = dns.id;
    }
    if (dns.is_response && !(f->flags & F_DNS_RCODE) && dns.id == m->dns_id) {
        f->flags |= F_DNS_RCODE;
        m->dns_rcode = dns.rcode;
    }
}

static void set_tls(struct flowtab *ft, struct flow *f, const struct tls_hello_info *hi,
                    const char *label)
{
    set_label(ft, f, label);
    f->flags |= F_INSPECT_DONE;
    struct flow_meta *m = meta_get(ft, f);
    if (m) {
        if (hi->sni[0]) {
            m->name_kind = NAME_SNI;
            copy_str(m->name, sizeof m->name, hi->sni);
        }
        copy_str(m->ja4, sizeof m->ja4, hi->ja4);
    }
}

static struct reasm_buf *reasm_take(struct flowtab *ft, struct flow *f, enum reasm_kind kind)
{
    if (!ft->reasm_free) {
        ft->stats.reasm_exhausted++;
        return NULL;
    }
    f->reasm = ft->reasm_free;
    struct reasm_buf *slot = &ft->reasm[f->reasm];
    ft->reasm_free = slot->next_free;
    slot->kind = (uint8_t)kind;
    slot->datagrams = 0;
    return slot;
}

/* Continues a ClientHello split over TCP segments: in-order bytes only. */
static void reasm_continue(struct flowtab *ft, struct flow *f, const struct pkt *p)
{
    struct tls_reasm *rb = &ft->reasm[f->reasm].u.tls;
    if (p->tcp_seq != rb->next_seq || p->payload_caplen != p->payload_len) {
        if ((int32_t)(p->tcp_seq - rb->next_seq) < 0)
            return; /* a retransmission of bytes already held */
        release_reasm(ft, f); /* a gap or a truncated segment: give up */
        return;
    }
    uint32_t room = REASM_BUF_BYTES - rb->len;
    uint32_t n = p->payload_caplen < room ? p->payload_caplen : room;
    memcpy(rb->data + rb->len, p->payload, n);
    rb->len += n;
    rb->next_seq += p->payload_len;
    if (rb->len < rb->need && rb->len < REASM_BUF_BYTES)
        return;
    struct tls_hello_info hi;
    size_t need = 0;
    if (meta_tls_client_hello(rb->data, rb->len, 't', &hi, &need) == META_OK)
        set_tls(ft, f, &hi, "tls");
    release_reasm(ft, f);
}

static void inspect_tls(struct flowtab *ft, struct flow *f, const struct pkt *p)
{
    struct tls_hello_info hi;
    size_t need = 0;
    enum meta_result r = meta_tls_client_hello(p->payload, p->payload_caplen, 't', &hi, &need);
    if (r == META_OK) {
        set_tls(ft, f, &hi, "tls");
        return;
    }
    if (r != META_MORE || need > REASM_BUF_BYTES || p->payload_caplen != p->payload_len)
        return;
    set_label(ft, f, "tls");
    struct reasm_buf *slot = reasm_take(ft, f, REASM_TLS);
    if (!slot)
        return;
    struct tls_reasm *rb = &slot->u.tls;
    memcpy(rb->data, p->payload, p->payload_caplen);
    rb->len = p->payload_caplen;
    rb->need = (uint32_t)need;
    rb->next_seq = p->tcp_seq + p->payload_len;
}

/* A client's QUIC datagram: its Initials may carry the ClientHello whole
 * or, with large (post-quantum) key shares, spread over several datagrams,
 * which are gathered until the hello is whole. */
static void inspect_quic(struct flowtab *ft, struct flow *f, const struct pkt *p)
{
    struct tls_hello_info hi;
    struct reasm_buf *slot = f->reasm ? &ft->reasm[f->reasm] : NULL;
    if (!slot) {
        set_label(ft, f, "quic");
        slot = reasm_take(ft, f, REASM_QUIC);
        if (!slot) { /* pool empty: a hello within one datagram still works */
            if (meta_quic_initial(p->payload, p->payload_caplen, &hi) == META_OK)
                set_tls(ft, f, &hi, "quic");
            return;
        }
        meta_quic_reasm_init(&slot->u.quic);
    }
    slot->datagrams++;
    enum meta_result r = meta_quic_initial_add(&slot->u.quic, p->payload, p->payload_caplen, &hi);
    if (r == META_OK) {
        set_tls(ft, f, &hi, "quic");
        release_reasm(ft, f);
    } else if ((r == META_NOT && (slot->u.quic.phase == QUIC_REASM_FAILED ||
                                  slot->u.quic.version == 0)) ||
               slot->datagrams >= FLOWTAB_INSPECT_PKTS) {
        release_reasm(ft, f); /* not a readable client Initial, or the first flight is over */
        f->flags |= F_INSPECT_DONE;
    }
}

/* Looks at an early payload packet for a label and metadata. */
static void inspect(struct flowtab *ft, struct flow *f, const struct pkt *p, int from_init)
{
    if (f->reasm) {
        if (!from_init)
            return;
        if (ft->reasm[f->reasm].kind == REASM_QUIC)
            inspect_quic(ft, f, p);
        else
            reasm_continue(ft, f, p);
        return;
    }
    if (++f->inspected > FLOWTAB_INSPECT_PKTS) {
        f->flags |= F_INSPECT_DONE;
        return;
    }
    const uint8_t *d = p->payload;
    size_t n = p->payload_caplen;
    uint16_t sp = p->sport, dp = p->dport;

    if (p->proto == IPPROTO_NUM_UDP) {
        if (sp == 53 || dp == 53 || sp == 5353 || dp == 5353 || sp == 5355 || dp == 5355) {
            inspect_dns(ft, f, p, false);
            if (f->flags & F_DNS_RCODE)
                f->flags |= F_INSPECT_DONE;
            return;
        }
        if (from_init && meta_is_quic_long_header(d, n)) {
            inspect_quic(ft, f, p);
            return;
        }
    } else if (p->proto == IPPROTO_NUM_TCP) {
        if (sp == 53 || dp == 53) {
            inspect_dns(ft, f, p, true);
            return;
        }
        if (from_init && n >= 6 && d[0] == 0x16) {
            inspect_tls(ft, f, p);
            return;
        }
        if (from_init) {
            char host[FLOWREC_NAME_MAX];
            if (meta_http_request(d, n, host) == META_OK) {
                set_label(ft, f, "http");
                f->flags |= F_INSPECT_DONE;
                struct flow_meta *m = meta_get(ft, f);
                if (m && host[0]) {
                    m->name_kind = NAME_HOST;
                    copy_str(m->name, sizeof m->name, host);
                }
                return;
            }
        }
    }
    const char *label = meta_app_by_payload(p->proto, d, n);
    if (label) {
        set_label(ft, f, label);
        if (strcmp(label, "http") != 0 && strcmp(label, "tls") != 0)
            f->flags |= F_INSPECT_DONE;
    }
}

/* ---- per packet ------------------------------------------------------ */

static uint32_t flow_lookup(struct flowtab *ft, const struct flow_key *k, uint64_t hash,
                            uint32_t *bucket)
{
    *bucket = (uint32_t)(hash & ft->bucket_mask);
    for (uint32_t idx = ft->buckets[*bucket]; idx; idx = ft->flows[idx].hnext)
        if (key_equal(&ft->flows[idx].key, k))
            return idx;
    return 0;
}

static uint32_t flow_new(struct flowtab *ft, const struct flow_key *k, uint32_t bucket,
                         const struct pkt *p, int side)
{
    uint32_t idx = flow_alloc(ft);
    if (!idx)
        return 0;
    struct flow *f = &ft->flows[idx];
    memset(f, 0, sizeof *f);
    f->key = *k;
    f->bucket = bucket;
    f->hnext = ft->buckets[bucket];
    ft->buckets[bucket] = idx;
    f->id = ft->id_next++;
    f->first_ns = f->last_ns = p->ts_ns;
    f->tunnel = p->tunnel;

    /* Orientation: the sender of the first packet, unless it answers a
     * handshake (SYN-ACK) or speaks from a well-known UDP port to an
     * ephemeral one, which marks the responder. */
    bool responder_first = false;
    if (p->proto == IPPROTO_NUM_TCP)
        responder_first = (p->tcp_flags & (TCP_SYN | TCP_ACK)) == (TCP_SYN | TCP_ACK);
    else if (p->proto == IPPROTO_NUM_UDP && p->has_ports)
        responder_first = p->sport < 1024 && p->dport >= 1024;
    else if (p->has_icmp && icmp_is_query(p->family, p->icmp_type))
        responder_first = icmp_query_class(p->family, p->icmp_type) != p->icmp_type;
    int init = responder_first ? !side : side;
    if (init)
        f->flags |= F_INIT_SIDE1;
    if (p->has_ports)
        f->flags |= F_HAS_PORTS;
    if (p->has_icmp) {
        f->flags |= F_HAS_ICMP;
        f->icmp_type = responder_first ? icmp_query_class(p->family, p->icmp_type) : p->icmp_type;
        f->icmp_code = p->icmp_code;
    }
    wheel_insert(ft, idx);
    return idx;
}

/* TCP: orientation by SYN, handshake RTT, retransmissions, closing. */
static void track_tcp(struct flowtab *ft, struct flow *f, const struct pkt *p, int side)
{
    uint8_t fl = p->tcp_flags;
    bool was_closed = f->flags & F_CLOSED;
    int init = (f->flags & F_INIT_SIDE1) ? 1 : 0;

    if ((fl & (TCP_SYN | TCP_ACK)) == TCP_SYN && !(f->flags & F_SYN_SEEN)) {
        if (side != init && f->pkts[init] == 0 && !(f->flags & F_SYNACK)) {
            f->flags ^= F_INIT_SIDE1; /* the responder-looking first packet was wrong */
            init = side;
        }
        if (side == init) {
            f->flags |= F_SYN_SEEN;
            f->rtt_us = (uint32_t)(p->ts_ns / 1000); /* kept mod 2^32 until the RTT is known */
        }
    } else if ((fl & (TCP_SYN | TCP_ACK)) == (TCP_SYN | TCP_ACK) && side != init) {
        f->flags |= F_SYNACK;
    } else if ((fl & (TCP_SYN | TCP_ACK | TCP_RST)) == TCP_ACK && side == init &&
               (f->flags & (F_SYN_SEEN | F_SYNACK | F_RTT)) == (F_SYN_SEEN | F_SYNACK)) {
        uint32_t rtt = (uint32_t)(p->ts_ns / 1000) - f->rtt_us; /* modular: handshakes are short */
        if (rtt < UINT32_MAX / 2) {
            f->rtt_us = rtt;
            f->flags |= F_RTT;
        }
    }
    if ((fl & TCP_RST) && !(f->flags & F_RST)) {
        f->flags |= F_RST | F_CLOSED;
        if (side == init)
            f->flags |= F_RST_FIRST_INIT;
    }
    f->tcp_flags[side] |= fl;
    if ((f->tcp_flags[0] & TCP_FIN) && (f->tcp_flags[1] & TCP_FIN))
        f->flags |= F_CLOSED;
    if (!was_closed && (f->flags & F_CLOSED)) {
        /* The deadline just moved closer: refile so the wheel finds it in time. */
        uint32_t idx = (uint32_t)(f - ft->flows);
        wheel_remove(ft, idx);
        wheel_insert(ft, idx);
    }

    /* Retransmission: a segment carrying data that ends at or before the
     * highest sequence already seen from that side (RFC 9293 §3.4 modular
     * comparison). */
    uint32_t len = p->payload_len + ((fl & TCP_SYN) ? 1 : 0) + ((fl & TCP_FIN) ? 1 : 0);
    if (len == 0)
        return;
    uint32_t end = p->tcp_seq + len;
    uint16_t valid = side ? F_SEQ1 : F_SEQ0;
    if (!(f->flags & valid)) {
        f->flags |= valid;
        f->next_seq[side] = end;
    } else if ((int32_t)(end - f->next_seq[side]) <= 0) {
        if (p->payload_len > 0)
            f->retrans[side]++;
    } else {
        f->next_seq[side] = end;
    }
}

/* Accounts n packets of `bytes` to the flow of p (p: key fields). */
static struct flow *account(struct flowtab *ft, const struct pkt *p, uint64_t n, uint64_t bytes,
                            int *side_out)
{
    struct flow_key k;
    int side;
    uint32_t bucket;
    uint64_t hash;
    if (p->has_key) {
        k = p->key;
        side = p->key_side;
        hash = p->hash;
    } else {
        make_key(p, &k, &side);
        hash = key_hash(ft, &k);
    }
    uint32_t idx = flow_lookup(ft, &k, hash, &bucket);

    if (idx && p->proto == IPPROTO_NUM_TCP) {
        /* A new handshake on a closed flow's ports starts a new flow. */
        struct flow *old = &ft->flows[idx];
        if ((old->flags & F_CLOSED) && (p->tcp_flags & (TCP_SYN | TCP_ACK)) == TCP_SYN) {
            flow_end(ft, idx, (old->flags & F_RST) ? END_RST : END_FIN);
            idx = 0;
        }
    }
    if (!idx) {
        idx = flow_new(ft, &k, bucket, p, side);
        if (!idx)
            return NULL;
    }
    struct flow *f = &ft->flows[idx];
    if (f->first_ns == 0)
        f->first_ns = p->ts_ns;
    if (p->ts_ns > f->last_ns)
        f->last_ns = p->ts_ns;
    f->pkts[side] += n;
    f->bytes[side] += bytes;
    *side_out = side;
    return f;
}

static void frag_give_up(void *ctx, const struct pkt *p, const struct frag_pending *pd)
{
    struct flowtab *ft = ctx;
    int side;
    ft->stats.frag_unmatched += pd->pkts;
    struct flow *f = account(ft, p, pd->pkts, pd->bytes, &side);
    if (f && pd->first_ns < f->first_ns)
        f->first_ns = pd->first_ns;
}

void flowtab_packet(struct flowtab *ft, const struct pkt *pin)
{
    const struct pkt *p = pin;
    struct pkt copy;

    if (ft->clock_started && pin->ts_ns < ft->now_ns)
        ft->stats.time_backwards++;
    advance_clock(ft, pin->ts_ns);

    struct frag_pending pending = {0};
    bool has_pending = false;
    if (pin->frag == FRAG_LATER) {
        copy = *pin;
        if (!fragtab_later(ft->frags, &copy))
            return; /* held until its first fragment arrives */
        p = &copy;
    } else if (pin->frag == FRAG_FIRST) {
        has_pending = fragtab_first(ft->frags, pin, &pending);
    }

    int side;
    struct flow *f = account(ft, p, 1, p->ip_len, &side);
    if (!f)
        return;
    if (has_pending) {
        f->pkts[side] += pending.pkts;
        f->bytes[side] += pending.bytes;
        if (pending.first_ns < f->first_ns)
            f->first_ns = pending.first_ns;
    }
    if (p->frag == FRAG_LATER)
        return;
    if (p->proto == IPPROTO_NUM_TCP)
        track_tcp(ft, f, p, side);
    if (p->payload_caplen > 0 && !(f->flags & F_INSPECT_DONE)) {
        int init = (f->flags & F_INIT_SIDE1) ? 1 : 0;
        inspect(ft, f, p, side == init);
    }
    if (!f->app && f->pkts[0] + f->pkts[1] == 1 && p->has_ports) {
        const char *label = meta_app_by_port(p->proto, p->sport, p->dport);
        if (label)
            set_label(ft, f, label);
    }
}

void flowtab_prepare(const struct flowtab *ft, struct pkt *p)
{
    if (p->frag == FRAG_LATER)
        return; /* its key needs the fragment table: built on the flow thread */
    int side;
    make_key(p, &p->key, &side);
    p->key_side = (int8_t)side;
    p->hash = key_hash(ft, &p->key);
    p->has_key = true;
}

void flowtab_prefetch(const struct flowtab *ft, const struct pkt *p, int stage)
{
    if (!p->has_key)
        return;
    if (stage == 0) {
        __builtin_prefetch(&ft->buckets[p->hash & ft->bucket_mask]);
    } else {
        uint32_t idx = ft->buckets[p->hash & ft->bucket_mask];
        if (idx) {
            __builtin_prefetch(&ft->flows[idx]);
            __builtin_prefetch((const char *)&ft->flows[idx] + 64);
        }
    }
}

void flowtab_flush(struct flowtab *ft, enum end_reason reason)
{
    fragtab_expire(ft->frags, INT64_MAX);
    for (uint32_t slot = 0; slot < FLOWTAB_WHEEL_SLOTS; slot++)
        while (ft->wheel[slot])
            flow_end(ft, ft->wheel[slot], reason);
}

void flowtab_get_stats(const struct flowtab *ft, struct flowtab_stats *out)
{
    *out = ft->stats;
}
