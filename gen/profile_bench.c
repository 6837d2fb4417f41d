/* profile_bench.c — the `bench` profile: a large, realistic mixed capture.
 *
 * By default 1,000,000 flows starting over 300 s, about 17 million packets.
 * Per flow, drawn independently from the seed:
 *   - kind: ~77 % TCP, ~14 % DNS, ~5 % QUIC (UDP/443), ~2 % ICMP echo,
 *     ~1 % NTP, ~1 % one-way syslog;
 *   - TCP: TLS on 443 (~70 %), HTTP on 80 (~24 %), opaque data on other
 *     ports; mostly SF, with S0 (~3.5 %), REJ (~2.5 %), RSTO/RSTR, a few S1;
 *     request/response rounds in ack-clocked bursts (many ~66 B ACKs, many
 *     1514 B data frames); sizes heavy-tailed: log-normal mice plus rare
 *     Pareto elephants of up to hundreds of MB, some of them uploads;
 *     occasional retransmitted segments;
 *   - ~10 % IPv6; clients on ~6 % of hosts sit on 802.1Q VLANs;
 *   - round-trip times from 0.3 ms to 150 ms; elephant pacing shrinks so a
 *     flow ends near the end of the capture window.
 * Addresses: clients in 10.16.0.0/12 and 2001:db8:1000::/48, servers in
 * 198.18.0.0/15 (RFC 2544) and 2001:db8:f000::/48, resolvers 10.0.0.53,
 * 10.0.1.53 and 2001:db8:1000::53. Each client host has its own ephemeral
 * port counter, so no 5-tuple is reused within a capture. */
#include "profile.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SEC 1e9
#define DEFAULT_FLOWS 1000000u
#define DEFAULT_DURATION 300.0
#define N_SERVERS 8192u

struct client {
    uint16_t next_port; /* next ephemeral port */
};

struct bench_state {
    struct rng rng;
    uint64_t flows, next;  /* flows to start; index of the next one */
    double duration_ns;
    int64_t start_ns, next_t;
    uint32_t n_clients;
    struct client *clients; /* owned */
};

static int64_t arrival(struct bench_state *st)
{
    /* Stratified: flow i starts in its own slice of the window, at a random
     * point inside it, so exactly `flows` flows start within the window and
     * the start times never go backwards. */
    double slice = st->duration_ns / (double)st->flows;
    return st->start_ns + (int64_t)(slice * ((double)st->next + rng_unit(&st->rng)));
}

static void *bench_create(const struct gen_opts *o)
{
    struct bench_state *st = calloc(1, sizeof *st);
    if (!st)
        return NULL;
    rng_seed(&st->rng, o->seed ^ UINT64_C(0xbe4c4be4c4));
    st->flows = o->flows ? o->flows : DEFAULT_FLOWS;
    st->duration_ns = (o->duration_s > 0 ? o->duration_s : DEFAULT_DURATION) * SEC;
    st->start_ns = o->start_ns;
    uint64_t nc = st->flows / 250;
    if (nc < 256)
        nc = 256;
    if (nc > 254u * 256 * 16)
        nc = 254u * 256 * 16;
    st->n_clients = (uint32_t)nc;
    st->clients = calloc(nc, sizeof *st->clients);
    if (!st->clients) {
        free(st);
        return NULL;
    }
    for (uint32_t i = 0; i < nc; i++)
        st->clients[i].next_port = (uint16_t)rng_range(&st->rng, 32768, 60999);
    st->next_t = arrival(st);
    return st;
}

static int64_t bench_next_start(void *p)
{
    struct bench_state *st = p;
    return st->next < st->flows ? st->next_t : INT64_MAX;
}

static uint16_t take_port(struct client *c)
{
    uint16_t p = c->next_port;
    c->next_port = p == 65535 ? 1024 : (uint16_t)(p + 1);
    return p;
}

static void client_addr(uint32_t i, bool v6, uint8_t out[16])
{
    memset(out, 0, 16);
    if (v6) {
        static const uint8_t pre[6] = {0x20, 0x01, 0x0d, 0xb8, 0x10, 0x00};
        memcpy(out, pre, 6);
        out[12] = (uint8_t)(i >> 24);
        out[13] = (uint8_t)(i >> 16);
        out[14] = (uint8_t)(i >> 8);
        out[15] = (uint8_t)i;
        out[11] = 0x01;
        return;
    }
    uint32_t rest = i / 254;
    out[0] = 10;
    out[1] = (uint8_t)(16 + rest / 256);
    out[2] = (uint8_t)(rest % 256);
    out[3] = (uint8_t)(1 + i % 254);
}

static void server_addr(uint32_t i, bool v6, uint8_t out[16])
{
    memset(out, 0, 16);
    if (v6) {
        static const uint8_t pre[6] = {0x20, 0x01, 0x0d, 0xb8, 0xf0, 0x00};
        memcpy(out, pre, 6);
        out[14] = (uint8_t)(i >> 8);
        out[15] = (uint8_t)i;
        return;
    }
    out[0] = 198;
    out[1] = (uint8_t)(18 + (i >> 16));
    out[2] = (uint8_t)(i >> 8);
    out[3] = (uint8_t)(1 + (i & 0xff) % 254);
}

/* Popular servers get most flows: the cube of a uniform skews to low indices. */
static uint32_t pick_server(struct rng *r)
{
    double u = rng_unit(r);
    return (uint32_t)(u * u * u * N_SERVERS);
}

static void fill_ends(struct bench_state *st, struct sess_spec *sp, uint32_t ci, bool v6,
                      uint8_t proto, uint16_t dport, bool resolver, uint32_t srv)
{
    struct pkt_ends *e = &sp->ends;
    memset(e, 0, sizeof *e);
    e->proto = proto;
    e->ipver = v6 ? 6 : 4;
    client_addr(ci, v6, e->ip[0]);
    if (resolver) {
        static const uint8_t r4[2][4] = {{10, 0, 0, 53}, {10, 0, 1, 53}};
        static const uint8_t r6[16] = {0x20, 0x01, 0x0d, 0xb8, 0x10, 0x00, 0, 0,
                                       0,    0,    0,    0,    0,    0,    0, 0x53};
        if (v6)
            memcpy(e->ip[1], r6, 16);
        else
            memcpy(e->ip[1], r4[ci & 1], 4);
    } else {
        server_addr(srv, v6, e->ip[1]);
    }
    if (proto == 6 || proto == 17) {
        e->port[0] = take_port(&st->clients[ci]);
        e->port[1] = dport;
    }
    e->vlan = ci % 16 == 3 ? (uint16_t)(10 + (ci / 16) % 4 * 10) : PKT_VLAN_NONE;
    e->mac[0][0] = 0x02;
    e->mac[0][2] = 0x0a;
    e->mac[0][3] = (uint8_t)(ci >> 16);
    e->mac[0][4] = (uint8_t)(ci >> 8);
    e->mac[0][5] = (uint8_t)ci;
    e->mac[1][0] = 0x02;
    e->mac[1][5] = 0x01; /* the gateway */
    e->ttl[0] = 64;
    e->ttl[1] = resolver ? 63 : (uint8_t)((srv % 3 == 0 ? 128 : 64) - 6 - srv % 14);
    e->flowlabel[0] = (uint32_t)rng_below(&st->rng, 1u << 20);
    e->flowlabel[1] = (uint32_t)rng_below(&st->rng, 1u << 20);
}

/* Heavy-tailed transfer size: log-normal mice, Pareto elephants. */
static uint64_t draw_size(struct rng *r, double p_elephant)
{
    double v;
    if (rng_chance(r, p_elephant)) {
        v = rng_pareto(r, 1.0e6, 1.2);
        if (v > 400e6)
            v = 400e6;
    } else {
        v = rng_lognormal(r, 7.6, 1.4);
        if (v > 1.0e6)
            v = 1.0e6;
    }
    return (uint64_t)v + 1;
}

/* Makes the flow fit the time left in the capture window (roughly): shrinks
 * the round trip and the pacing when the planned transfer would overrun. */
static void fit_window(struct bench_state *st, struct sess_spec *sp, uint64_t bytes)
{
    double left = (double)(st->start_ns - sp->t0) + st->duration_ns;
    if (left < 1e9)
        left = 1e9;
    double segs = (double)bytes / 1400.0 + 1;
    double bursts = segs / SESS_CWND_MAX + 4 + sp->rounds;
    double est = bursts * (double)sp->rtt_ns + segs * (double)sp->gap_ns;
    if (est > left) {
        double f = left / est;
        sp->rtt_ns = (int64_t)((double)sp->rtt_ns * f) + 20000;
        sp->gap_ns = (int64_t)((double)sp->gap_ns * f) + 1000;
    }
}

static void spawn_tcp(struct bench_state *st, struct sess_spec *sp, uint32_t ci, bool v6)
{
    struct rng *r = &st->rng;
    double u = rng_unit(r);
    uint16_t port;
    if (u < 0.70) {
        sp->app = TAPP_TLS, port = 443;
    } else if (u < 0.94) {
        sp->app = TAPP_HTTP, port = 80;
    } else {
        static const uint16_t other[] = {7777, 8888, 12345, 33000, 4000, 9443};
        sp->app = TAPP_RAW, port = other[rng_below(r, sizeof other / sizeof other[0])];
    }
    fill_ends(st, sp, ci, v6, 6, port, false, pick_server(r));

    u = rng_unit(r);
    sp->end = u < 0.035   ? TEND_S0
              : u < 0.06  ? TEND_REJ
              : u < 0.075 ? TEND_RSTO
              : u < 0.09  ? TEND_RSTR
              : u < 0.095 ? TEND_OPEN
              : u < 0.73  ? TEND_FIN_CLIENT
                          : TEND_FIN_SERVER;
    sp->tls_kind = (uint8_t)(rng_chance(r, 0.75) ? TLS_CLIENT_BROWSER
                             : rng_chance(r, 0.7) ? TLS_CLIENT_TOOL
                                                  : TLS_CLIENT_LEGACY);
    names_host(r, sp->name, sizeof sp->name);

    bool elephant_upload = rng_chance(r, 0.0002);
    uint64_t big = draw_size(r, 0.0008);
    if (sp->app == TAPP_TLS) {
        sp->rounds = (uint16_t)(2 + (unsigned)rng_exp(r, 0.5));
        sp->resp0 = 1500 + rng_below(r, 3500); /* the server's handshake flight */
        sp->draw_later = true;
        if (elephant_upload) {
            sp->rounds = 2;
            sp->draw_later = false;
            double up = rng_pareto(r, 2e6, 1.3);
            sp->reqn = (uint32_t)(up > 2e8 ? 2e8 : up);
            sp->respn = 200;
            big = sp->reqn;
        } else if (big > 1000000) {
            /* a big download: one large response in round 1 */
            sp->rounds = 2;
            sp->draw_later = false;
            sp->reqn = 200 + (uint32_t)rng_below(r, 600);
            sp->respn = big;
        }
    } else {
        sp->rounds = (uint16_t)(1 + (unsigned)rng_exp(r, 0.5));
        sp->draw_later = true;
        sp->resp0 = big;
        if (elephant_upload) {
            double up = rng_pareto(r, 2e6, 1.3);
            sp->req0 = (uint32_t)(up > 2e8 ? 2e8 : up);
            sp->resp0 = 150;
            sp->rounds = 1;
            big = sp->req0;
        }
        if (sp->app == TAPP_RAW && !elephant_upload)
            sp->req0 = 40 + (uint32_t)rng_below(r, 400);
    }
    if (rng_chance(r, 0.25))
        sp->rtt_ns = (int64_t)rng_loguniform(r, 0.3e6, 5e6); /* same site */
    else
        sp->rtt_ns = (int64_t)rng_loguniform(r, 8e6, 150e6);
    double mbps = rng_loguniform(r, 20, 2000);
    sp->gap_ns = (int64_t)(1448.0 * 8 / (mbps * 1e6) * 1e9);
    fit_window(st, sp, big);

    /* Retransmissions: now and then one data segment is sent twice. */
    double segs = (double)big / 1400.0;
    if (segs > 8 && rng_chance(r, 0.06))
        sp->retrans_seg[1] = (int32_t)rng_below(r, (uint64_t)(segs > 1e6 ? 1e6 : segs) / 2 + 1);
    if (rng_chance(r, 0.01))
        sp->retrans_seg[0] = 0; /* the request itself */
}

static void spawn_dns(struct bench_state *st, struct sess_spec *sp, uint32_t ci, bool v6)
{
    struct rng *r = &st->rng;
    fill_ends(st, sp, ci, v6, 17, 53, rng_chance(r, 0.9), pick_server(r));
    double u = rng_unit(r);
    sp->dns_qtype = u < 0.62 ? 1 : u < 0.88 ? 28 : u < 0.94 ? 65 : u < 0.98 ? 16 : 12;
    if (sp->dns_qtype == 12)
        snprintf(sp->name, sizeof sp->name, "%u.%u.51.198.in-addr.arpa",
                 (unsigned)rng_range(r, 1, 254), (unsigned)rng_range(r, 0, 255));
    else
        names_host(r, sp->name, sizeof sp->name);
    u = rng_unit(r);
    sp->dns_rcode = u < 0.06 ? 3 : u < 0.07 ? 2 : 0;
    sp->dns_no_reply = rng_chance(r, 0.015);
    sp->rtt_ns = rng_chance(r, 0.7) ? (int64_t)rng_loguniform(r, 0.2e6, 3e6)
                                    : (int64_t)rng_loguniform(r, 10e6, 120e6);
}

static void spawn_quic(struct bench_state *st, struct sess_spec *sp, uint32_t ci, bool v6)
{
    struct rng *r = &st->rng;
    fill_ends(st, sp, ci, v6, 17, 443, false, pick_server(r));
    names_host(r, sp->name, sizeof sp->name);
    sp->rounds = (uint16_t)(1 + (unsigned)rng_exp(r, 1.0));
    sp->resp0 = draw_size(r, 0.004);
    sp->draw_later = true;
    sp->quic_close = rng_chance(r, 0.7);
    sp->rtt_ns = (int64_t)rng_loguniform(r, 5e6, 120e6);
    double mbps = rng_loguniform(r, 20, 1000);
    sp->gap_ns = (int64_t)(1252.0 * 8 / (mbps * 1e6) * 1e9);
    fit_window(st, sp, sp->resp0);
}

static void bench_spawn(void *p, struct sess_spec *sp, uint64_t *seed)
{
    struct bench_state *st = p;
    struct rng *r = &st->rng;
    memset(sp, 0, sizeof *sp);
    sp->t0 = st->next_t;
    sp->retrans_seg[0] = sp->retrans_seg[1] = -1;
    sp->rounds = 1;
    sp->rtt_ns = 20000000;
    sp->gap_ns = 12000;
    *seed = rng_u64(r);

    uint32_t ci = (uint32_t)rng_below(r, st->n_clients);
    bool v6 = rng_chance(r, 0.10);
    double u = rng_unit(r);
    if (u < 0.77) {
        sp->kind = SK_TCP;
        spawn_tcp(st, sp, ci, v6);
    } else if (u < 0.91) {
        sp->kind = SK_DNS;
        spawn_dns(st, sp, ci, v6);
    } else if (u < 0.96) {
        sp->kind = SK_QUIC;
        spawn_quic(st, sp, ci, v6);
    } else if (u < 0.98) {
        sp->kind = SK_ICMP;
        fill_ends(st, sp, ci, v6, v6 ? 58 : 1, 0, false, pick_server(r));
        sp->rounds = (uint16_t)rng_range(r, 1, 6);
        sp->think_ns = 1000000000;
        sp->rtt_ns = (int64_t)rng_loguniform(r, 0.3e6, 80e6);
    } else if (u < 0.99) {
        sp->kind = SK_NTP;
        fill_ends(st, sp, ci, false, 17, 123, false, pick_server(r) % 64);
        sp->rounds = (uint16_t)rng_range(r, 1, 4);
        sp->think_ns = (int64_t)rng_range(r, 1000, 2000) * 1000000;
        sp->rtt_ns = (int64_t)rng_loguniform(r, 1e6, 60e6);
    } else {
        sp->kind = SK_SYSLOG;
        fill_ends(st, sp, ci, false, 17, 514, false, N_SERVERS - 1 - ci % 4);
        sp->rounds = (uint16_t)rng_range(r, 1, 10);
        sp->think_ns = (int64_t)rng_range(r, 200, 3000) * 1000000;
    }
    st->next++;
    if (st->next < st->flows)
        st->next_t = arrival(st);
}

static void bench_destroy(void *p)
{
    struct bench_state *st = p;
    if (!st)
        return;
    free(st->clients);
    free(st);
}

const struct profile_ops profile_bench = {
    .name = "bench",
    .help = "mixed and heavy-tailed: ~1M flows, ~17M packets in 300 s",
    .create = bench_create,
    .next_start = bench_next_start,
    .spawn = bench_spawn,
    .destroy = bench_destroy,
};
