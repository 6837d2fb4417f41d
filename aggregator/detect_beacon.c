/* detect_beacon.c — beaconing (beacon): a host that contacts one
 * destination at a steady period, with steady sizes, where few of the
 * fleet's hosts go.
 *
 * Per (source, destination, protocol, port): the last BEACON_CONTACTS
 * contacts (connections started within DETECT_CONTACT_MERGE_NS of each
 * other are one contact: a client opening two sockets at once), with the
 * bytes each sent. Judged, once there are beacon_min_connections (6)
 * contacts, on medians and median absolute deviations (MAD), which a few
 * odd contacts (the first connection, one retry) do not move:
 *
 *   period   median interval between contacts, 1 s .. beacon_max_period;
 *   jitter   MAD of the intervals <= beacon_max_jitter_pct (10 %) of it —
 *            a person retrying a password, or browsing, is far less regular;
 *   in step  and at least beacon_min_connections - 1 intervals within that
 *            bound of the period (five contacts in step, four periods): the
 *            MAD alone asks only half the intervals to agree, which three
 *            of five intervals of chance traffic do often enough to matter
 *            over thousands of pairs;
 *   sizes    MAD of the bytes sent <= beacon_max_size_pct (20 %) of their median;
 *   rare     the destination was reached by at most beacon_rare_pct (10 %)
 *            of the fleet's hosts active in the hour of the last contact and
 *            the hour before (at least one is always allowed): the NTP
 *            server or update service every host polls is not a beacon,
 *            wherever it is. A pair is judged only once every agent still
 *            delivering has passed its last contact (the low watermark), so
 *            the popularity is the fleet's, not that of whichever agent
 *            delivered first (and, while records stream, only once the
 *            engine has heard from the fleet long enough to know its
 *            agents: detect_int.h, fleet_view).
 *
 *   alone    the source keeps such a rhythm with at most
 *            beacon_max_per_source (3) rare destinations (counted from three
 *            contacts on; the NTP server and the like do not count): an implant calls one or a few controllers, while a
 *            host holding a steady heartbeat with many peers runs an overlay
 *            (a P2P client pinging its peers every minute, cluster
 *            membership) whose period belongs to the protocol.
 *
 * A pair is forgotten after beacon_max_period without a contact. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "detect_int.h"
#include "err.h"

#define BEACON_CONTACTS 16
#define BEACON_MAX_PER_SOURCE 3

struct bkey {
    struct vigil_addr src, dst;
    uint16_t port;
    uint8_t proto, pad_[5];
};

struct bpair {
    struct dtab_head h;
    struct bkey k;
    int64_t first_ns, last_ns;
    int64_t t[BEACON_CONTACTS];     /* contact start times, ring */
    uint64_t bytes[BEACON_CONTACTS];
    uint32_t n, head;               /* contacts held; next slot */
    uint32_t total;                 /* contacts ever */
    uint32_t judged;                /* total at the last evaluation */
    bool periodic;                  /* steady so far (counted in the source's bsrc entry) */
    bool to_judge;                  /* periodic and changed: judged in this sweep */
    uint64_t hdst;
    struct agentset agents;
};

struct bsrc {
    struct dtab_head h;
    struct vigil_addr src;
    uint32_t periodic; /* pairs of this source that are periodic */
};

struct bpop {
    struct dtab_head h;
    struct vigil_addr dst;
    int64_t last_ns;
    uint64_t hdst;
    struct dcount sources;
};

int beacon_init(struct detect *d)
{
    uint32_t n = (uint32_t)d->cfg.max_keys;
    if (dtab_init(&d->bpairs, n < 64 ? 64 : n, sizeof(struct bpair), offsetof(struct bpair, k),
                  sizeof(struct bkey)) ||
        dtab_init(&d->bpop, n < 64 ? 64 : n, sizeof(struct bpop), offsetof(struct bpop, dst), 16) ||
        dtab_init(&d->bsrcs, n < 64 ? 64 : n, sizeof(struct bsrc), offsetof(struct bsrc, src), 16))
        return VIGIL_ENOMEM;
    d->fleet_known_mask = 1023;
    while (d->fleet_known_mask + 1 < 2 * (n < 64 ? 64 : n))
        d->fleet_known_mask = d->fleet_known_mask * 2 + 1;
    d->fleet_known = calloc((size_t)d->fleet_known_mask + 1, sizeof *d->fleet_known);
    return d->fleet_known ? 0 : VIGIL_ENOMEM;
}

void beacon_free(struct detect *d)
{
    dtab_free(&d->bpairs);
    dtab_free(&d->bpop);
    dtab_free(&d->bsrcs);
    free(d->fleet_known);
    d->fleet_known = NULL;
}

/* The fleet-known slot of hdst: the one holding it, or the empty one
 * where it would go. */
static uint64_t *fleet_known_slot(const struct detect *d, uint64_t hdst)
{
    uint64_t fp = hdst | 1;
    for (uint32_t i = (uint32_t)(fp >> 32) & d->fleet_known_mask;;
         i = (i + 1) & d->fleet_known_mask)
        if (d->fleet_known[i] == 0 || d->fleet_known[i] == fp)
            return &d->fleet_known[i];
}

static void fleet_known_add(struct detect *d, uint64_t hdst)
{
    uint64_t *slot = fleet_known_slot(d, hdst);
    if (*slot)
        return;
    if (d->fleet_known_n >= (d->fleet_known_mask + 1) / 2) { /* at most half full */
        detect_count_full(d);
        return;
    }
    *slot = hdst | 1;
    d->fleet_known_n++;
}

static bool beacon_wants(const struct drec *r)
{
    return r->new_conn && (r->has_ports || r->proto == 1 || r->proto == 58);
}
static uint64_t bpop_hash(uint64_t hdst)
{
    return mix64(hdst ^ 0xbe4c);
}
static uint64_t bpair_hash(const struct drec *r)
{
    return hash_combine(hash_combine(r->hsrc, r->hdst), (uint64_t)r->proto << 16 | r->dport);
}

void beacon_prefetch(const struct detect *d, const struct drec *r, bool entry)
{
    if (!beacon_wants(r))
        return;
    dtab_hint(&d->bpop, bpop_hash(r->hdst), entry);
    dtab_hint(&d->bpairs, bpair_hash(r), entry);
}

/* Counts r's initiator as active in its hour when it is one of ours. */
static void active_add(struct detect *d, const struct drec *r)
{
    if (r->direction == DIR_INBOUND || r->direction == DIR_EXTERNAL || r->start_ns < 0)
        return;
    uint32_t hour = (uint32_t)(r->start_ns / (3600 * NS_PER_SEC));
    struct active_hour *a = &d->active[hour % ACTIVE_HOURS];
    if (a->hour != hour) {
        if (a->hour > hour)
            return; /* older than the hours kept */
        memset(a, 0, sizeof *a);
        a->hour = hour;
    }
    unsigned b = (unsigned)(mix64(r->hsrc ^ 0xac71) >> 52); /* 12 bits: 4096 */
    a->sk[b >> 6] |= UINT64_C(1) << (b & 63);
}

double beacon_active_hosts(const struct detect *d, int64_t t_ns)
{
    if (t_ns < 0)
        return 0;
    uint32_t hour = (uint32_t)(t_ns / (3600 * NS_PER_SEC));
    uint64_t sk[ACTIVE_WORDS];
    memset(sk, 0, sizeof sk);
    for (uint32_t h = hour ? hour - 1 : 0; h <= hour; h++) {
        const struct active_hour *a = &d->active[h % ACTIVE_HOURS];
        if (a->hour == h)
            for (unsigned i = 0; i < ACTIVE_WORDS; i++)
                sk[i] |= a->sk[i];
    }
    unsigned ones = 0;
    for (unsigned i = 0; i < ACTIVE_WORDS; i++)
        ones += (unsigned)__builtin_popcountll(sk[i]);
    double m = ACTIVE_WORDS * 64.0, zeros = m - ones;
    return -m * log((zeros < 1 ? 0.5 : zeros) / m);
}

/* Whether n sources make a destination common around t_ns. */
static bool common_at(const struct detect *d, int64_t t_ns, double n, double at_least,
                      double *allowed)
{
    double active = beacon_active_hosts(d, t_ns);
    double fleet = (double)baseline_active_hosts(d->bl);
    if (fleet > active)
        active = fleet;
    double ok = active * (double)d->cfg.beacon_rare_pct / 100.0;
    if (ok < at_least)
        ok = at_least;
    if (allowed)
        *allowed = ok;
    return n > ok;
}

bool beacon_dst_common(const struct detect *d, const struct vigil_addr *dst, uint64_t hdst,
                       int64_t t_ns, double at_least, double *sources, double *allowed)
{
    const struct bpop *p = dtab_find(&d->bpop, bpop_hash(hdst), dst);
    double n = p ? dcount_value(d, &p->sources) : 1;
    if (*fleet_known_slot(d, hdst)) { /* common once: known to the fleet */
        if (sources)
            *sources = n;
        if (allowed)
            *allowed = 0;
        return true;
    }
    if (sources)
        *sources = n;
    return common_at(d, t_ns, n, at_least, allowed);
}

void beacon_add(struct detect *d, const struct drec *r)
{
    bool created;
    if (!beacon_wants(r))
        return;
    active_add(d, r);
    struct bpop *p = dtab_get(&d->bpop, bpop_hash(r->hdst), &r->dst, &created);
    if (!p) {
        detect_count_full(d);
    } else {
        p->hdst = r->hdst;
        dcount_add(d, &p->sources, r->hsrc);
        if (r->start_ns > p->last_ns)
            p->last_ns = r->start_ns;
    }

    struct bkey k;
    memset(&k, 0, sizeof k);
    k.src = r->src;
    k.dst = r->dst;
    k.port = r->dport;
    k.proto = r->proto;
    struct bpair *b = dtab_get(&d->bpairs, bpair_hash(r), &k, &created);
    if (!b) {
        detect_count_full(d);
        return;
    }
    if (created) {
        b->first_ns = r->start_ns;
        b->hdst = r->hdst;
    }
    agentset_add(&b->agents, r->agent);
    /* the contact this connection belongs to: one started close to it */
    for (uint32_t i = 0; i < b->n; i++) {
        int64_t dt = r->start_ns - b->t[i];
        if (dt < DETECT_CONTACT_MERGE_NS && dt > -DETECT_CONTACT_MERGE_NS) {
            b->bytes[i] += r->bytes_fwd;
            return;
        }
    }
    b->t[b->head] = r->start_ns;
    b->bytes[b->head] = r->bytes_fwd;
    b->head = (b->head + 1) % BEACON_CONTACTS;
    if (b->n < BEACON_CONTACTS)
        b->n++;
    b->total++;
    if (r->start_ns > b->last_ns)
        b->last_ns = r->start_ns;
    if (r->start_ns < b->first_ns)
        b->first_ns = r->start_ns;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median of v[0..n) (sorts v). */
static double median(double *v, unsigned n)
{
    qsort(v, n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Median absolute deviation of v[0..n) around m (v is overwritten). */
static double mad(double *v, unsigned n, double m)
{
    for (unsigned i = 0; i < n; i++)
        v[i] = v[i] > m ? v[i] - m : m - v[i];
    return median(v, n);
}

struct rhythm {
    double period, jitter, size, size_mad;
    unsigned in_step; /* intervals within the jitter bound of the period */
};

/* Whether b's contacts keep a steady period and size (from 3 contacts). */
static bool steady(const struct detect *d, const struct bpair *b, struct rhythm *out)
{
    if (b->n < 3)
        return false;
    int64_t t[BEACON_CONTACTS];
    double iv[BEACON_CONTACTS], sz[BEACON_CONTACTS], tmp[BEACON_CONTACTS];
    unsigned n = b->n;
    for (unsigned i = 0; i < n; i++)
        t[i] = b->t[i];
    qsort(t, n, sizeof *t, cmp_i64);
    for (unsigned i = 0; i < n; i++) { /* each contact's size, in time order */
        sz[i] = 0;
        for (unsigned j = 0; j < n; j++)
            if (b->t[j] == t[i])
                sz[i] = (double)b->bytes[j];
    }
    for (unsigned i = 1; i < n; i++)
        iv[i - 1] = (double)(t[i] - t[i - 1]) / (double)NS_PER_SEC;
    memcpy(tmp, iv, sizeof(double) * (n - 1));
    out->period = median(tmp, n - 1);
    if (out->period < 1.0 || out->period * NS_PER_SEC > (double)d->cfg.beacon_max_period_ns)
        return false;
    memcpy(tmp, iv, sizeof(double) * (n - 1));
    double bound = out->period * (double)d->cfg.beacon_max_jitter_pct / 100.0;
    out->jitter = mad(tmp, n - 1, out->period);
    if (out->jitter > bound)
        return false;
    out->in_step = 0;
    for (unsigned i = 0; i + 1 < n; i++)
        out->in_step += iv[i] >= out->period - bound && iv[i] <= out->period + bound;
    memcpy(tmp, sz, sizeof(double) * n);
    out->size = median(tmp, n);
    memcpy(tmp, sz, sizeof(double) * n);
    out->size_mad = mad(tmp, n, out->size);
    return out->size_mad <= out->size * (double)d->cfg.beacon_max_size_pct / 100.0;
}

static struct bsrc *bsrc_of(struct detect *d, const struct vigil_addr *src, bool create)
{
    uint64_t h = mix64(hash_siphash13(&d->hk, src->b, 16) ^ 0xb5c);
    bool created;
    return create ? dtab_get(&d->bsrcs, h, src, &created) : dtab_find(&d->bsrcs, h, src);
}

static void set_periodic(struct detect *d, struct bpair *b, bool on)
{
    if (b->periodic == on)
        return;
    struct bsrc *s = bsrc_of(d, &b->k.src, on);
    if (on && !s) {
        detect_count_full(d);
        return; /* not counted: the pair stays non-periodic */
    }
    b->periodic = on;
    if (!s)
        return;
    if (on) {
        s->periodic++;
    } else if (--s->periodic == 0) {
        dtab_remove(&d->bsrcs, s);
    }
}

static void eval_pair(struct detect *d, struct bpair *b)
{
    struct rhythm r;
    /* chance regularity: the median and MAD need only half the intervals
     * in step; a beacon also needs beacon_min_connections - 1 contacts in
     * step (five by default, spanning four periods) */
    if (b->n < d->cfg.beacon_min_connections || !steady(d, b, &r) ||
        r.in_step + 2 < d->cfg.beacon_min_connections)
        return;
    const struct bsrc *src = bsrc_of(d, &b->k.src, false);
    if (src && src->periodic > BEACON_MAX_PER_SOURCE)
        return;
    double period = r.period, jitter = r.jitter, size = r.size, size_mad = r.size_mad;
    double sources, allowed;
    if (beacon_dst_common(d, &b->k.dst, b->hdst, b->last_ns, 1, &sources, &allowed))
        return;

    struct alert a;
    char s[ADDR_STRLEN], ds[ADDR_STRLEN], t0[40], t1[40];
    memset(&a, 0, sizeof a);
    a.type = ALERT_BEACON;
    a.first_ns = b->first_ns;
    a.last_ns = b->last_ns;
    a.severity = b->total >= 4 * d->cfg.beacon_min_connections ? SEV_HIGH : SEV_MEDIUM;
    a.sources[a.n_sources++] = b->k.src;
    a.targets[a.n_targets++] = b->k.dst;
    detect_alert_agents(d, &a, &b->agents);
    addr_format(&b->k.src, s);
    addr_format(&b->k.dst, ds);
    vigil_format_rfc3339(b->first_ns, t0, sizeof t0);
    vigil_format_rfc3339(b->last_ns + NS_PER_SEC, t1, sizeof t1);
    snprintf(a.summary, sizeof a.summary,
             "%s contacts %s port %u every %.1f s (jitter %.1f s, %" PRIu32
             " contacts of about %.0f bytes), a destination few hosts use.",
             s, ds, b->k.port, period, jitter, b->total, size);
    snprintf(a.evidence, sizeof a.evidence,
             "{\"proto\":%u,\"port\":%u,\"contacts\":%" PRIu32 ",\"period_s\":%.3f,"
             "\"jitter_s\":%.3f,\"median_bytes\":%.0f,\"bytes_mad\":%.0f,"
             "\"contacts_in_step\":%u,\"destination_sources\":%.0f,\"rare_at_most\":%.1f"
             ",\"max_jitter_pct\":%" PRIu64 ",\"baseline\":\"fleet popularity of the destination\","
             "\"flows\":\"vigil flows --host %s --port %u --since %s --until %s --limit 1000\"}",
             b->k.proto, b->k.port, b->total, period, jitter, size, size_mad, r.in_step + 1,
             sources, allowed, d->cfg.beacon_max_jitter_pct, s, b->k.port, t0, t1);
    detect_raise(d, detect_dedup(ALERT_BEACON, &b->k, sizeof b->k), &a);
}

void beacon_sweep(struct detect *d, bool all)
{
    int64_t idle = d->cfg.beacon_max_period_ns;
    /* popularity serves exfiltration's "known to the fleet" too */
    int64_t keep = idle > d->cfg.exfil_window_ns ? idle : d->cfg.exfil_window_ns;
    /* first the rhythm of every pair that changed, so each source's count
     * of periodic pairs is complete before any of them is judged */
    for (uint32_t i = 0; i < d->bpairs.hwm; i++) {
        struct bpair *b = dtab_at(&d->bpairs, i);
        if (!b->h.live || (b->total == b->judged && !all))
            continue;
        struct rhythm r;
        /* a rhythm with a destination the fleet shares (NTP, updates, the
         * resolver) is no sign of an overlay: only rare ones count */
        set_periodic(d, b, steady(d, b, &r) &&
                               !beacon_dst_common(d, &b->k.dst, b->hdst, b->last_ns, 1, NULL,
                                                  NULL));
        b->judged = b->total;
        b->to_judge = b->periodic;
    }
    for (uint32_t i = 0; i < d->bpairs.hwm; i++) {
        struct bpair *b = dtab_at(&d->bpairs, i);
        if (!b->h.live)
            continue;
        /* judged once every agent still delivering is past its last
         * contact: the destination's popularity is then the fleet's, not
         * that of whichever agent delivered first */
        if (b->to_judge && (all || (d->fleet_view && b->last_ns <= d->low_wm))) {
            eval_pair(d, b);
            b->to_judge = false;
        }
        if (!all && d->fleet_view && d->low_wm > b->last_ns + idle + d->cfg.lateness_ns) {
            /* never forgotten unjudged: every delivering agent is far past
             * its last contact, which is as complete as the view gets —
             * once the engine knows its fleet: before, an agent whose first
             * batch is still on its way cannot hold the watermark back, and
             * the NTP server every host polls would look rare */
            if (b->to_judge) {
                eval_pair(d, b);
                b->to_judge = false;
            }
            set_periodic(d, b, false);
            dtab_remove(&d->bpairs, b);
            d->stats.windows_closed++;
        }
    }
    for (uint32_t i = 0; i < d->bpop.hwm; i++) {
        struct bpop *p = dtab_at(&d->bpop, i);
        if (!p->h.live)
            continue;
        /* a destination common in its own period stays known to the fleet
         * after its entry goes (verdicts may be given hours later) */
        double n = dcount_value(d, &p->sources);
        if (n > 2 && common_at(d, p->last_ns, n, 2, NULL))
            fleet_known_add(d, p->hdst);
        if (!all && d->low_wm > p->last_ns + keep + d->cfg.lateness_ns) {
            dcount_release(d, &p->sources);
            dtab_remove(&d->bpop, p);
        }
    }
}
