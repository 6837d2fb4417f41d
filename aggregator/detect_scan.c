/* detect_scan.c — scans: vertical (port_scan), horizontal
 * (horizontal_scan), fleet-wide (fleet_scan) and distributed
 * (distributed_scan).
 *
 * What counts: connection attempts (detect.c probe_of: TCP attempts seen
 * from their start, payload-less UDP probes, ICMP echo requests), once per
 * connection. An attempt "failed" when it got no answer, a refusal, or a
 * handshake without payload back (detect.c failed_of).
 *
 *   port_scan         (source, target): distinct ports in a window, each
 *                     failed port counting 1 and a port whose connection
 *                     succeeded scan_success_pct %; alert at scan_ports (100).
 *                     nmap -O (~10 ports) and password guessing (one port)
 *                     stay far below.
 *   horizontal_scan   (source, protocol, port): distinct targets, weighted
 *                     the same way; alert at hscan_targets (50). A P2P client
 *                     reaching 500 peers is not one: its peers listen on
 *                     hundreds of ports, its handshakes complete, and its
 *                     unanswered UDP carries payload.
 *   fleet_scan        (source): distinct targets whose attempts failed, seen
 *                     through at least fscan_agents agents; alert at half
 *                     the monitored hosts (agents), at least 2 x fscan_agents
 *                     and at most fscan_targets (20), when no port_scan or
 *                     horizontal_scan already names the source — the sweep
 *                     that stays under every per-host threshold, which only
 *                     the aggregator sees whole. Successful connections do
 *                     not count (a monitoring server polls every host).
 *   distributed_scan  (target): failed distinct ports from at least
 *                     dscan_sources sources, scan_ports in all, and no
 *                     single source close to scan_ports on average;
 *                     (protocol, port): failed distinct targets from at least
 *                     dscan_sources sources, hscan_targets in all, same rule.
 *
 * Windows are in event time and bounded by their own key's records: an
 * entry holds attempts at most window_ns (5 min) apart; an attempt that
 * does not fit closes it (judged) and starts the next. An entry no record
 * comes for is retired once the fleet's low watermark passes its end
 * (detect_window_over). Only failed attempts name targets, and the
 * distributed views name the sources of failed attempts. Scans are judged
 * on counts, not on baselines: a host's usual connection count says little
 * about how many closed ports it may probe. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "clock.h"
#include "detect_int.h"
#include "err.h"

#define SAMPLE_ADDRS 4

struct pair_key {
    struct vigil_addr src, dst;
};
struct pair_entry {
    struct dtab_head h;
    struct pair_key k;
    int64_t start_ns, last_ns;
    uint32_t conns, failed;
    struct dcount ports, failed_ports;
    struct agentset agents;
};

struct hs_key {
    struct vigil_addr src;
    uint16_t port;
    uint8_t proto, pad_;
};
struct hs_entry {
    struct dtab_head h;
    struct hs_key k;
    int64_t start_ns, last_ns;
    uint32_t conns, failed;
    struct dcount targets, failed_targets;
    struct agentset agents;
    struct vigil_addr sample[SAMPLE_ADDRS];
    uint8_t n_sample;
};

struct src_entry {
    struct dtab_head h;
    struct vigil_addr src;
    int64_t start_ns, last_ns;
    uint32_t conns, failed;
    struct dcount failed_targets, ports;
    struct agentset agents;
    struct vigil_addr sample[SAMPLE_ADDRS];
    uint8_t n_sample;
    bool per_host_alerted; /* a port_scan or horizontal_scan names this source */
};

struct dst_entry {
    struct dtab_head h;
    struct vigil_addr dst;
    int64_t start_ns, last_ns;
    uint32_t failed;
    struct dcount failed_ports, sources;
    struct agentset agents;
    struct vigil_addr sample[SAMPLE_ADDRS];
    uint8_t n_sample;
};

struct port_key {
    uint16_t port;
    uint8_t proto, pad_[5];
};
struct port_entry {
    struct dtab_head h;
    struct port_key k;
    int64_t start_ns, last_ns;
    uint32_t failed;
    struct dcount failed_targets, sources;
    struct agentset agents;
    struct vigil_addr sample[SAMPLE_ADDRS];   /* sources */
    struct vigil_addr tsample[SAMPLE_ADDRS];  /* targets */
    uint8_t n_sample, n_tsample;
};

int scan_init(struct detect *d)
{
    uint32_t n = (uint32_t)d->cfg.max_keys;
    if (n < 64)
        n = 64;
    if (dtab_init(&d->pairs, n, sizeof(struct pair_entry), offsetof(struct pair_entry, k),
                  sizeof(struct pair_key)) ||
        dtab_init(&d->hscan, n, sizeof(struct hs_entry), offsetof(struct hs_entry, k),
                  sizeof(struct hs_key)) ||
        dtab_init(&d->srcs, n, sizeof(struct src_entry), offsetof(struct src_entry, src), 16) ||
        dtab_init(&d->dsts, n, sizeof(struct dst_entry), offsetof(struct dst_entry, dst), 16) ||
        dtab_init(&d->ports, 4 * 65536, sizeof(struct port_entry), offsetof(struct port_entry, k),
                  sizeof(struct port_key)))
        return VIGIL_ENOMEM;
    return 0;
}

void scan_free(struct detect *d)
{
    dtab_free(&d->pairs);
    dtab_free(&d->hscan);
    dtab_free(&d->srcs);
    dtab_free(&d->dsts);
    dtab_free(&d->ports);
}

static uint64_t port_hash(const struct detect *d, uint8_t proto, uint16_t port)
{
    return mix64(((uint64_t)proto << 16 | port) ^ d->hk.k1);
}

/* The tables' hashes, shared by scan_add and scan_prefetch. */
static uint64_t pair_hash(const struct drec *r)
{
    return hash_combine(r->hsrc, r->hdst);
}
static uint64_t src_hash(uint64_t hsrc)
{
    return mix64(hsrc ^ 0x5ca9);
}
static uint64_t dst_hash(uint64_t hdst)
{
    return mix64(hdst ^ 0xd157);
}

void scan_prefetch(const struct detect *d, const struct drec *r, bool entry)
{
    if (!r->probe)
        return;
    uint64_t hp = port_hash(d, r->proto, r->dport);
    if (r->has_ports)
        dtab_hint(&d->pairs, pair_hash(r), entry);
    dtab_hint(&d->hscan, hash_combine(r->hsrc, hp), entry);
    if (!r->failed)
        return;
    dtab_hint(&d->srcs, src_hash(r->hsrc), entry);
    if (r->has_ports)
        dtab_hint(&d->dsts, dst_hash(r->hdst), entry);
    dtab_hint(&d->ports, hp, entry);
}

static void sample_add(struct vigil_addr *v, uint8_t *n, const struct vigil_addr *a)
{
    for (unsigned i = 0; i < *n; i++)
        if (memcmp(v[i].b, a->b, 16) == 0)
            return;
    if (*n < SAMPLE_ADDRS)
        v[(*n)++] = *a;
}

static void eval_pair(struct detect *d, struct pair_entry *p);
static void eval_hscan(struct detect *d, struct hs_entry *h);
static void eval_src(struct detect *d, struct src_entry *s);
static void eval_dst(struct detect *d, struct dst_entry *t);
static void eval_port(struct detect *d, struct port_entry *q);

/* A record outside its entry's window (by the key's own event time): the
 * window is judged as it stands and a new one starts with the record. So
 * no window spans more than window_ns however records arrive (a replay
 * delivers hours in one batch), and a late record starts a window of its
 * own instead of widening one. */
#define ROLL(tab, e, created, eval, release)                                               \
    do {                                                                                   \
        if (!(created) &&                                                                  \
            !detect_in_window((e)->start_ns, (e)->last_ns, r->start_ns, d->cfg.window_ns)) { \
            eval(d, e);                                                                    \
            release;                                                                       \
            detect_entry_reset(&(tab), e);                                                 \
            d->stats.windows_closed++;                                                     \
            (created) = true;                                                              \
        }                                                                                  \
    } while (0)

static void touch(int64_t *start, int64_t *last, const struct drec *r, bool created)
{
    if (created || r->start_ns < *start)
        *start = r->start_ns;
    if (r->start_ns > *last)
        *last = r->start_ns;
}

void scan_add(struct detect *d, const struct drec *r)
{
    bool created;
    if (!r->probe)
        return;
    uint64_t hp = port_hash(d, r->proto, r->dport);

    if (r->has_ports) {
        struct pair_key pk;
        pk.src = r->src;
        pk.dst = r->dst;
        struct pair_entry *p = dtab_get(&d->pairs, pair_hash(r), &pk, &created);
        if (!p) {
            detect_count_full(d);
        } else {
            ROLL(d->pairs, p, created, eval_pair,
                 (dcount_release(d, &p->ports), dcount_release(d, &p->failed_ports)));
            touch(&p->start_ns, &p->last_ns, r, created);
            p->conns++;
            dcount_add(d, &p->ports, hp);
            if (r->failed) {
                p->failed++;
                dcount_add(d, &p->failed_ports, hp);
            }
            agentset_add(&p->agents, r->agent);
        }
    }

    struct hs_key hk;
    memset(&hk, 0, sizeof hk);
    hk.src = r->src;
    hk.port = r->dport;
    hk.proto = r->proto;
    struct hs_entry *h = dtab_get(&d->hscan, hash_combine(r->hsrc, hp), &hk, &created);
    if (!h) {
        detect_count_full(d);
    } else {
        ROLL(d->hscan, h, created, eval_hscan,
             (dcount_release(d, &h->targets), dcount_release(d, &h->failed_targets)));
        touch(&h->start_ns, &h->last_ns, r, created);
        h->conns++;
        dcount_add(d, &h->targets, r->hdst);
        if (r->failed) {
            h->failed++;
            dcount_add(d, &h->failed_targets, r->hdst);
            /* named targets are probed ones: a server it really uses is not */
            sample_add(h->sample, &h->n_sample, &r->dst);
        }
        agentset_add(&h->agents, r->agent);
    }

    if (!r->failed)
        return; /* the fleet-wide and distributed views count failures only */

    struct src_entry *s = dtab_get(&d->srcs, src_hash(r->hsrc), &r->src, &created);
    if (!s) {
        detect_count_full(d);
    } else {
        ROLL(d->srcs, s, created, eval_src,
             (dcount_release(d, &s->failed_targets), dcount_release(d, &s->ports)));
        touch(&s->start_ns, &s->last_ns, r, created);
        s->failed++;
        dcount_add(d, &s->failed_targets, r->hdst);
        dcount_add(d, &s->ports, hp);
        agentset_add(&s->agents, r->agent);
        sample_add(s->sample, &s->n_sample, &r->dst);
    }

    if (r->has_ports) {
        struct dst_entry *t = dtab_get(&d->dsts, dst_hash(r->hdst), &r->dst, &created);
        if (!t) {
            detect_count_full(d);
        } else {
            ROLL(d->dsts, t, created, eval_dst,
                 (dcount_release(d, &t->failed_ports), dcount_release(d, &t->sources)));
            touch(&t->start_ns, &t->last_ns, r, created);
            t->failed++;
            dcount_add(d, &t->failed_ports, hp);
            dcount_add(d, &t->sources, r->hsrc);
            agentset_add(&t->agents, r->agent);
            sample_add(t->sample, &t->n_sample, &r->src);
        }
    }

    struct port_key pk2;
    memset(&pk2, 0, sizeof pk2);
    pk2.port = r->dport;
    pk2.proto = r->proto;
    struct port_entry *q = dtab_get(&d->ports, hp, &pk2, &created);
    if (!q) {
        detect_count_full(d);
    } else {
        ROLL(d->ports, q, created, eval_port,
             (dcount_release(d, &q->failed_targets), dcount_release(d, &q->sources)));
        touch(&q->start_ns, &q->last_ns, r, created);
        q->failed++;
        dcount_add(d, &q->failed_targets, r->hdst);
        dcount_add(d, &q->sources, r->hsrc);
        agentset_add(&q->agents, r->agent);
        sample_add(q->sample, &q->n_sample, &r->src);
        sample_add(q->tsample, &q->n_tsample, &r->dst);
    }
}

/* ---- evaluation ----------------------------------------------------------------- */

static const char *proto_word(uint8_t proto)
{
    switch (proto) {
    case 6: return "TCP";
    case 17: return "UDP";
    case 1: return "ICMP";
    case 58: return "ICMPv6";
    case 132: return "SCTP";
    default: return "IP";
    }
}

static enum alert_severity severity_of(double score, double threshold)
{
    return score >= threshold * 10 ? SEV_HIGH : score >= threshold * 3 ? SEV_MEDIUM : SEV_LOW;
}

static void times(int64_t a, int64_t b, char *ta, char *tb)
{
    vigil_format_rfc3339(a, ta, 40);
    vigil_format_rfc3339(b + NS_PER_SEC, tb, 40);
}

static void alert_base(struct alert *a, enum alert_type t, int64_t first, int64_t last)
{
    memset(a, 0, sizeof *a);
    a->type = t;
    a->first_ns = first;
    a->last_ns = last;
}

static void mark_src(struct detect *d, const struct vigil_addr *src);

static void eval_pair(struct detect *d, struct pair_entry *p)
{
    double all = dcount_value(d, &p->ports), failed = dcount_value(d, &p->failed_ports);
    if (failed > all)
        failed = all;
    double score = failed + (all - failed) * (double)d->cfg.scan_success_pct / 100.0;
    if (score < (double)d->cfg.scan_ports)
        return;
    struct alert a;
    char s[ADDR_STRLEN], t[ADDR_STRLEN], t0[40], t1[40];
    alert_base(&a, ALERT_PORT_SCAN, p->start_ns, p->last_ns);
    a.severity = severity_of(score, (double)d->cfg.scan_ports);
    a.sources[a.n_sources++] = p->k.src;
    a.targets[a.n_targets++] = p->k.dst;
    detect_alert_agents(d, &a, &p->agents);
    addr_format(&p->k.src, s);
    addr_format(&p->k.dst, t);
    times(p->start_ns, p->last_ns, t0, t1);
    snprintf(a.summary, sizeof a.summary,
             "%s probed %.0f distinct ports of %s (%" PRIu32 " of %" PRIu32
             " connection attempts failed).",
             s, all, t, p->failed, p->conns);
    snprintf(a.evidence, sizeof a.evidence,
             "{\"distinct_ports\":%.0f,\"failed_ports\":%.0f,\"connections\":%" PRIu32
             ",\"failed_connections\":%" PRIu32 ",\"score\":%.1f,\"threshold\":%" PRIu64
             ",\"success_weight_pct\":%" PRIu64 ",\"baseline\":\"absolute threshold\","
             "\"flows\":\"vigil flows --host %s --since %s --until %s --limit 1000\"}",
             all, failed, p->conns, p->failed, score, d->cfg.scan_ports,
             d->cfg.scan_success_pct, s, t0, t1);
    detect_raise(d, detect_dedup(ALERT_PORT_SCAN, &p->k, sizeof p->k), &a);
    mark_src(d, &p->k.src);
}

static void eval_hscan(struct detect *d, struct hs_entry *h)
{
    double all = dcount_value(d, &h->targets), failed = dcount_value(d, &h->failed_targets);
    if (failed > all)
        failed = all;
    double score = failed + (all - failed) * (double)d->cfg.scan_success_pct / 100.0;
    if (score < (double)d->cfg.hscan_targets)
        return;
    struct alert a;
    char s[ADDR_STRLEN], t0[40], t1[40];
    alert_base(&a, ALERT_HORIZONTAL_SCAN, h->start_ns, h->last_ns);
    a.severity = severity_of(score, (double)d->cfg.hscan_targets);
    a.sources[a.n_sources++] = h->k.src;
    for (unsigned i = 0; i < h->n_sample; i++)
        a.targets[a.n_targets++] = h->sample[i];
    detect_alert_agents(d, &a, &h->agents);
    addr_format(&h->k.src, s);
    times(h->start_ns, h->last_ns, t0, t1);
    snprintf(a.summary, sizeof a.summary,
             "%s probed %s port %u on %.0f distinct hosts (%" PRIu32 " of %" PRIu32
             " attempts failed).",
             s, proto_word(h->k.proto), h->k.port, all, h->failed, h->conns);
    snprintf(a.evidence, sizeof a.evidence,
             "{\"proto\":%u,\"port\":%u,\"distinct_targets\":%.0f,\"failed_targets\":%.0f,"
             "\"connections\":%" PRIu32 ",\"failed_connections\":%" PRIu32
             ",\"score\":%.1f,\"threshold\":%" PRIu64 ",\"baseline\":\"absolute threshold\","
             "\"flows\":\"vigil flows --host %s --port %u --since %s --until %s --limit 1000\"}",
             h->k.proto, h->k.port, all, failed, h->conns, h->failed, score,
             d->cfg.hscan_targets, s, h->k.port, t0, t1);
    detect_raise(d, detect_dedup(ALERT_HORIZONTAL_SCAN, &h->k, sizeof h->k), &a);
    mark_src(d, &h->k.src);
}

/* A per-host scan alert names src: the fleet view keeps quiet about it. */
static void mark_src(struct detect *d, const struct vigil_addr *src)
{
    uint64_t h = src_hash(hash_siphash13(&d->hk, src->b, 16));
    struct src_entry *s = dtab_find(&d->srcs, h, src);
    if (s)
        s->per_host_alerted = true;
}

/* Failed targets a fleet scan needs: half the fleet's monitored hosts (the
 * agents known since start), at least twice fscan_agents and at most
 * fscan_targets. A fixed count would never fire on a fleet smaller than
 * it, while a sweep of half the fleet through several agents is one. */
static double fscan_threshold(const struct detect *d)
{
    double t = (double)d->n_agents / 2.0, floor = 2.0 * (double)d->cfg.fscan_agents;
    if (t < floor)
        t = floor;
    if (t > (double)d->cfg.fscan_targets)
        t = (double)d->cfg.fscan_targets;
    return t;
}

static void eval_src(struct detect *d, struct src_entry *s)
{
    double targets = dcount_value(d, &s->failed_targets), need = fscan_threshold(d);
    if (targets < need || s->agents.n < d->cfg.fscan_agents)
        return;
    if (s->per_host_alerted)
        return;
    struct alert a;
    char src[ADDR_STRLEN], t0[40], t1[40];
    alert_base(&a, ALERT_FLEET_SCAN, s->start_ns, s->last_ns);
    a.severity = severity_of(targets, need);
    if (a.severity == SEV_LOW)
        a.severity = SEV_MEDIUM; /* seen across the fleet: worth a look */
    a.sources[a.n_sources++] = s->src;
    for (unsigned i = 0; i < s->n_sample; i++)
        a.targets[a.n_targets++] = s->sample[i];
    detect_alert_agents(d, &a, &s->agents);
    addr_format(&s->src, src);
    times(s->start_ns, s->last_ns, t0, t1);
    snprintf(a.summary, sizeof a.summary,
             "%s made failed attempts on %.0f hosts of the fleet, seen by %u agents, each "
             "below the per-host thresholds.",
             src, targets, s->agents.n);
    snprintf(a.evidence, sizeof a.evidence,
             "{\"distinct_targets\":%.0f,\"distinct_ports\":%.0f,\"failed_connections\":%" PRIu32
             ",\"agents\":%u,\"threshold_targets\":%.0f,\"monitored_hosts\":%" PRIu32
             ",\"threshold_agents\":%" PRIu64 ",\"baseline\":\"half the monitored hosts\","
             "\"flows\":\"vigil flows --host %s --since %s --until %s --limit 1000\"}",
             targets, dcount_value(d, &s->ports), s->failed, s->agents.n, need, d->n_agents,
             d->cfg.fscan_agents, src, t0, t1);
    detect_raise(d, detect_dedup(ALERT_FLEET_SCAN, &s->src, sizeof s->src), &a);
}

static void eval_dst(struct detect *d, struct dst_entry *t)
{
    double ports = dcount_value(d, &t->failed_ports), sources = dcount_value(d, &t->sources);
    if (sources < (double)d->cfg.dscan_sources || ports < (double)d->cfg.scan_ports ||
        ports / sources >= (double)d->cfg.scan_ports)
        return;
    struct alert a;
    char dst[ADDR_STRLEN], t0[40], t1[40];
    alert_base(&a, ALERT_DISTRIBUTED_SCAN, t->start_ns, t->last_ns);
    a.severity = severity_of(ports, (double)d->cfg.scan_ports);
    for (unsigned i = 0; i < t->n_sample; i++)
        a.sources[a.n_sources++] = t->sample[i];
    a.targets[a.n_targets++] = t->dst;
    detect_alert_agents(d, &a, &t->agents);
    addr_format(&t->dst, dst);
    times(t->start_ns, t->last_ns, t0, t1);
    snprintf(a.summary, sizeof a.summary,
             "%.0f sources together probed %.0f distinct ports of %s.", sources, ports, dst);
    snprintf(a.evidence, sizeof a.evidence,
             "{\"distinct_sources\":%.0f,\"failed_ports\":%.0f,\"failed_connections\":%" PRIu32
             ",\"threshold_ports\":%" PRIu64 ",\"threshold_sources\":%" PRIu64
             ",\"baseline\":\"absolute threshold\","
             "\"flows\":\"vigil flows --host %s --since %s --until %s --limit 1000\"}",
             sources, ports, t->failed, d->cfg.scan_ports, d->cfg.dscan_sources, dst, t0, t1);
    detect_raise(d, detect_dedup(ALERT_DISTRIBUTED_SCAN, &t->dst, sizeof t->dst), &a);
}

static void eval_port(struct detect *d, struct port_entry *q)
{
    double targets = dcount_value(d, &q->failed_targets), sources = dcount_value(d, &q->sources);
    if (sources < (double)d->cfg.dscan_sources || targets < (double)d->cfg.hscan_targets ||
        targets / sources >= (double)d->cfg.hscan_targets)
        return;
    struct alert a;
    char t0[40], t1[40];
    alert_base(&a, ALERT_DISTRIBUTED_SCAN, q->start_ns, q->last_ns);
    a.severity = severity_of(targets, (double)d->cfg.hscan_targets);
    for (unsigned i = 0; i < q->n_sample; i++)
        a.sources[a.n_sources++] = q->sample[i];
    for (unsigned i = 0; i < q->n_tsample; i++)
        a.targets[a.n_targets++] = q->tsample[i];
    detect_alert_agents(d, &a, &q->agents);
    times(q->start_ns, q->last_ns, t0, t1);
    snprintf(a.summary, sizeof a.summary,
             "%.0f sources together probed %s port %u on %.0f distinct hosts.", sources,
             proto_word(q->k.proto), q->k.port, targets);
    snprintf(a.evidence, sizeof a.evidence,
             "{\"proto\":%u,\"port\":%u,\"distinct_sources\":%.0f,\"failed_targets\":%.0f,"
             "\"failed_connections\":%" PRIu32 ",\"threshold_targets\":%" PRIu64
             ",\"threshold_sources\":%" PRIu64 ",\"baseline\":\"absolute threshold\","
             "\"flows\":\"vigil flows --port %u --since %s --until %s --limit 1000\"}",
             q->k.proto, q->k.port, sources, targets, q->failed, d->cfg.hscan_targets,
             d->cfg.dscan_sources, q->k.port, t0, t1);
    detect_raise(d, detect_dedup(ALERT_DISTRIBUTED_SCAN, &q->k, sizeof q->k), &a);
}

/* Evaluates each live entry; retires those whose window is over (all:
 * evaluate every entry, retire none). Removal shifts later entries of a
 * probe run only in the index, never in the entry array, so the walk over
 * the entry array stays valid. */
#define SWEEP(tab, type, eval, release)                                                    \
    for (uint32_t i = 0; i < (tab).hwm; i++) {                                            \
        type *e = dtab_at(&(tab), i);                                                      \
        if (!e->h.live)                                                                    \
            continue;                                                                      \
        bool over = detect_window_over(d, e->start_ns, d->cfg.window_ns);                  \
        if (!all && !over)                                                                 \
            continue;                                                                      \
        eval(d, e);                                                                        \
        if (over) {                                                                        \
            release;                                                                       \
            dtab_remove(&(tab), e);                                                        \
            d->stats.windows_closed++;                                                     \
        }                                                                                  \
    }

void scan_sweep(struct detect *d, bool all)
{
    /* pairs and horizontal first: fleet_scan checks whether they fired */
    SWEEP(d->pairs, struct pair_entry, eval_pair,
          (dcount_release(d, &e->ports), dcount_release(d, &e->failed_ports)))
    SWEEP(d->hscan, struct hs_entry, eval_hscan,
          (dcount_release(d, &e->targets), dcount_release(d, &e->failed_targets)))
    SWEEP(d->srcs, struct src_entry, eval_src,
          (dcount_release(d, &e->failed_targets), dcount_release(d, &e->ports)))
    SWEEP(d->dsts, struct dst_entry, eval_dst,
          (dcount_release(d, &e->failed_ports), dcount_release(d, &e->sources)))
    SWEEP(d->ports, struct port_entry, eval_port,
          (dcount_release(d, &e->failed_targets), dcount_release(d, &e->sources)))
}
