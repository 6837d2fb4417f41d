/* detect.c — the detection engine: records in, windows swept on event
 * time, alerts raised, state persisted (see detect.h for the contract).
 *
 * Per record (on the ingest thread, after the store committed the batch):
 * decode the fields the detectors use, tell a new connection from the
 * continuation of a long flow (partial records carry the packets since the
 * previous one, so volumes simply add up, and a connection is counted on
 * its first record only), find the local host, then hand the record to
 * the baselines and to each detector. No allocation happens here: every
 * table was allocated at creation.
 *
 * Windows are swept when the event time has moved DETECT_SWEEP_STEP_NS,
 * and all of them are evaluated (without retiring) when no record has come
 * for idle_flush_ns. Persistence runs from detect_tick about once a second
 * in one write transaction for known destinations and alerts (sooner when
 * the destinations waiting fill half their buffer), with the baselines
 * that changed at most every DETECT_MODELS_EVERY_NS. */
#include "detect.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "clock.h"
#include "detect_int.h"
#include "err.h"
#include "log.h"
#include "store_int.h"

void detect_config_defaults(struct detect_config *c)
{
    memset(c, 0, sizeof *c);
    c->enabled = true;
    c->learning_ns = 7 * 86400 * NS_PER_SEC;
    c->window_ns = 300 * NS_PER_SEC;
    c->lateness_ns = 90 * NS_PER_SEC;
    c->idle_flush_ns = 5 * NS_PER_SEC;
    c->known_keep_ns = 35 * 86400 * NS_PER_SEC;
    c->dedup_ns = 3600 * NS_PER_SEC;
    c->max_keys = 131072;
    c->scan_ports = 100;
    c->scan_success_pct = 25;
    c->hscan_targets = 50;
    c->fscan_targets = 20;
    c->fscan_agents = 3;
    c->dscan_sources = 5;
    c->dns_factor = 5;
    c->dns_min_bytes = 32 * 1024;
    c->dns_min_queries = 50;
    c->dns_long_name = 40;
    c->dns_min_entropy_x100 = 350;
    c->dns_unique_names = 100;
    c->beacon_min_connections = 6;
    c->beacon_max_jitter_pct = 10;
    c->beacon_max_size_pct = 20;
    c->beacon_rare_pct = 10;
    c->beacon_max_period_ns = 7200 * NS_PER_SEC;
    c->exfil_factor = 10;
    c->exfil_min_bytes = 256 * 1024;
    c->exfil_min_ratio = 4;
    c->exfil_window_ns = 3600 * NS_PER_SEC;
    c->default_out_bytes = 0;
    c->default_dns_bytes = 128 * 1024;
}

/* ---- distinct counting ------------------------------------------------------ */

static unsigned lc_bit(uint32_t fp)
{
    return (unsigned)((fp * 2654435761u) >> (32 - 10)); /* 10 bits: 1024 */
}

void dcount_add(struct detect *d, struct dcount *c, uint64_t h)
{
    uint32_t fp = (uint32_t)(h >> 32) | 1u;
    if (c->sk) {
        unsigned b = lc_bit(fp);
        d->pool.sk[c->sk - 1][b >> 6] |= UINT64_C(1) << (b & 63);
        return;
    }
    for (unsigned i = 0; i < c->n; i++)
        if (c->fp[i] == fp)
            return;
    if (c->n < DCOUNT_INLINE) {
        c->fp[c->n++] = fp;
        return;
    }
    if (c->capped) {
        c->extra++;
        return;
    }
    struct sketch_pool *p = &d->pool;
    uint32_t i;
    if (p->n_free)
        i = p->free_list[--p->n_free];
    else if (p->hwm < p->cap)
        i = p->hwm++;
    else {
        c->capped = true;
        c->extra = 1;
        d->stats.sketch_full++;
        return;
    }
    memset(p->sk[i], 0, sizeof p->sk[i]);
    c->sk = i + 1;
    for (unsigned j = 0; j < c->n; j++) {
        unsigned b = lc_bit(c->fp[j]);
        p->sk[i][b >> 6] |= UINT64_C(1) << (b & 63);
    }
    unsigned b = lc_bit(fp);
    p->sk[i][b >> 6] |= UINT64_C(1) << (b & 63);
}

double dcount_value(const struct detect *d, const struct dcount *c)
{
    if (!c->sk)
        return (double)c->n + (double)c->extra;
    unsigned ones = 0;
    for (unsigned i = 0; i < LC_WORDS; i++)
        ones += (unsigned)__builtin_popcountll(d->pool.sk[c->sk - 1][i]);
    double m = LC_WORDS * 64.0;
    double zeros = m - ones;
    if (zeros < 1)
        zeros = 0.5; /* saturated: about m ln(2m) */
    return -m * log(zeros / m);
}

void dcount_release(struct detect *d, struct dcount *c)
{
    if (c->sk)
        d->pool.free_list[d->pool.n_free++] = c->sk - 1;
    memset(c, 0, sizeof *c);
}

void agentset_add(struct agentset *s, uint16_t id)
{
    for (unsigned i = 0; i < s->n; i++)
        if (s->id[i] == id)
            return;
    if (s->n < AGENTSET_MAX)
        s->id[s->n++] = id;
}

/* ---- helpers for detectors ----------------------------------------------------- */

uint64_t detect_dedup(enum alert_type t, const void *key, size_t len)
{
    const struct hash_key fixed = {0x766967696c2d6964ULL, (uint64_t)t + 1};
    return hash_siphash13(&fixed, key, len);
}

void detect_alert_agents(const struct detect *d, struct alert *a, const struct agentset *s)
{
    a->n_agents = 0;
    for (unsigned i = 0; i < s->n && a->n_agents < ALERT_MAX_AGENTS; i++)
        if (s->id[i] < d->n_agents)
            memcpy(a->agents[a->n_agents++], d->agent_names[s->id[i]], ALERT_AGENT_MAX);
}

void detect_raise(struct detect *d, uint64_t dedup, struct alert *a)
{
    if (alerts_raise(d->al, dedup, a) && d->cfg.on_new_alert)
        d->cfg.on_new_alert(d->cfg.on_new_alert_ctx, a);
    for (unsigned i = 0; i < a->n_sources; i++) {
        uint64_t h = hash_siphash13(&d->hk, a->sources[i].b, 16);
        baseline_mark_alerted(d->bl, &a->sources[i], h, a->last_ns);
    }
}

void detect_count_full(struct detect *d)
{
    d->stats.table_full++;
}

/* ---- agents ---------------------------------------------------------------------- */

static uint16_t agent_id(struct detect *d, const char *name)
{
    if (d->n_agents && strncmp(d->agent_names[d->last_agent], name, ALERT_AGENT_MAX) == 0)
        return (uint16_t)d->last_agent;
    for (uint32_t i = 0; i < d->n_agents; i++)
        if (strncmp(d->agent_names[i], name, ALERT_AGENT_MAX) == 0)
            return (uint16_t)(d->last_agent = i);
    if (d->n_agents == DETECT_MAX_AGENTS)
        return (uint16_t)(DETECT_MAX_AGENTS - 1); /* the last id stands for the rest */
    snprintf(d->agent_names[d->n_agents], ALERT_AGENT_MAX, "%s", name);
    d->last_agent = d->n_agents;
    return (uint16_t)d->n_agents++;
}

/* ---- records ---------------------------------------------------------------------- */

static uint8_t state_of(const char *s)
{
    static const char *const names[STATE_COUNT] = {
        "", "S0", "S1", "SF", "REJ", "S2", "S3", "RSTO", "RSTR", "RSTOS0", "RSTRH", "SH", "SHR",
        "OTH"};
    if (!s || !*s)
        return STATE_NONE;
    for (unsigned i = 1; i < STATE_COUNT; i++)
        if (strcmp(s, names[i]) == 0)
            return (uint8_t)i;
    return STATE_NONE;
}

static uint8_t direction_of(const char *s)
{
    if (!s || !*s)
        return DIR_UNKNOWN;
    if (strcmp(s, "outbound") == 0)
        return DIR_OUTBOUND;
    if (strcmp(s, "inbound") == 0)
        return DIR_INBOUND;
    if (strcmp(s, "internal") == 0)
        return DIR_INTERNAL;
    if (strcmp(s, "external") == 0)
        return DIR_EXTERNAL;
    return DIR_UNKNOWN;
}

static bool addr_from_bytes(struct vigil_addr *a, const ProtobufCBinaryData *b)
{
    if (b->len == 4) {
        addr_from_v4(a, b->data);
        return true;
    }
    if (b->len == 16) {
        memcpy(a->b, b->data, 16);
        return true;
    }
    return false;
}

/* Whether a connection got anywhere: for TCP a completed handshake and
 * payload back from the responder (more than bare headers, 64 bytes per
 * packet with options); for anything else an answer. */
static bool failed_of(const struct drec *r)
{
    if (r->proto == 6) {
        bool established = r->state == STATE_S1 || r->state == STATE_SF ||
                           r->state == STATE_S2 || r->state == STATE_S3 ||
                           r->state == STATE_RSTO || r->state == STATE_RSTR;
        bool payload_back = r->bytes_rev > r->pkts_rev * 64;
        return !(established && payload_back);
    }
    return r->pkts_rev == 0;
}

/* Whether a new connection is an attempt a scan is made of. TCP: any
 * attempt we saw begin (not OTH, traffic picked up midstream). UDP: only
 * datagrams without payload — a datagram with payload and no answer is an
 * unanswered message (a P2P ping to a peer gone away), while scanners send
 * empty probes to most ports; like Zeek's scan policy, UDP is otherwise left
 * out, since it cannot tell a refusal from silence. ICMP: echo requests
 * (address sweeps). */
static bool probe_of(const struct drec *r, bool echo)
{
    if (!r->new_conn)
        return false;
    switch (r->proto) {
    case 6: return r->state != STATE_OTH && r->state != STATE_NONE;
    case 17: {
        uint64_t hdr = addr_is_v4(&r->src) ? 28 : 48;
        return r->pkts_fwd && r->bytes_fwd <= r->pkts_fwd * hdr;
    }
    case 1:
    case 58: return echo;
    default: return false;
    }
}

/* Tells the first record of a flow from its continuations: a flow whose
 * record was partial (final false) is remembered by (agent, flow id) until
 * its final record. When the table is full a continuation may count as a
 * new connection (counted as table_full). */
struct open_entry {
    struct dtab_head h;
    uint64_t flow_id;
    uint16_t agent;
    uint8_t pad_[6];
};

struct open_key {
    uint64_t flow_id;
    uint16_t agent;
    uint8_t pad_[6];
};

static bool is_new_connection(struct detect *d, uint16_t agent, uint64_t flow_id, bool final,
                              uint64_t h)
{
    struct open_key key = {flow_id, agent, {0}};
    struct open_entry *e = dtab_find(&d->open, h, &key);
    if (e) {
        if (final)
            dtab_remove(&d->open, e);
        d->stats.continuations++;
        return false;
    }
    if (!final) {
        bool created;
        if (!dtab_get(&d->open, h, &key, &created))
            detect_count_full(d);
    }
    return true;
}

/* Decodes and validates p into r, all but what depends on the open-flow
 * table (settle). */
static bool decode(struct detect *d, const Vigil__FlowRecord *p, uint16_t agent, struct drec *r)
{
    memset(r, 0, sizeof *r);
    if (!addr_from_bytes(&r->src, &p->src_ip) || !addr_from_bytes(&r->dst, &p->dst_ip) ||
        p->start_ns < 0 || p->end_ns < p->start_ns || p->proto > 255)
        return false;
    r->start_ns = p->start_ns;
    r->end_ns = p->end_ns;
    r->bytes_fwd = p->bytes_fwd;
    r->bytes_rev = p->bytes_rev;
    r->pkts_fwd = p->pkts_fwd;
    r->pkts_rev = p->pkts_rev;
    r->proto = (uint8_t)p->proto;
    r->has_ports = p->has_ports && p->src_port <= 65535 && p->dst_port <= 65535;
    if (r->has_ports) {
        r->sport = (uint16_t)p->src_port;
        r->dport = (uint16_t)p->dst_port;
    }
    r->state = state_of(p->state);
    r->direction = direction_of(p->direction);
    r->agent = agent;
    r->hsrc = hash_siphash13(&d->hk, r->src.b, 16);
    r->hdst = hash_siphash13(&d->hk, r->dst.b, 16);
    r->flow_id = p->flow_id;
    r->final = p->final;
    struct open_key key = {p->flow_id, agent, {0}};
    r->open_hash = hash_siphash13(&d->hk, &key, sizeof key);
    r->echo = p->has_icmp && (p->icmp_type == 8 || p->icmp_type == 128);
    r->is_dns = (p->app && strcmp(p->app, "dns") == 0) ||
                (r->has_ports && r->dport == 53 && (r->proto == 17 || r->proto == 6));
    if (p->has_dns && p->dns_qname && *p->dns_qname) {
        r->qname = p->dns_qname;
        r->qname_len = strnlen(p->dns_qname, FLOWREC_NAME_MAX - 1);
        r->qtype = p->dns_qtype <= 65535 ? (uint16_t)p->dns_qtype : 0;
    }
    return true;
}

/* Whether r starts a connection, and what follows from that. */
static void settle(struct detect *d, struct drec *r)
{
    r->new_conn = is_new_connection(d, r->agent, r->flow_id, r->final, r->open_hash);
    r->failed = failed_of(r);
    r->probe = probe_of(r, r->echo);
}

/* Cache hints for what one_record will look up (index slots, or with
 * entry the entries). */
static void record_prefetch(const struct detect *d, const struct drec *r, bool entry)
{
    scan_prefetch(d, r, entry);
    beacon_prefetch(d, r, entry);
    if (r->direction == DIR_EXTERNAL)
        return;
    bool inbound = r->direction == DIR_INBOUND;
    uint64_t hh = inbound ? r->hdst : r->hsrc, hp = inbound ? r->hsrc : r->hdst;
    baseline_prefetch_host(d->bl, hh, entry);
    if (r->is_dns && !inbound)
        dns_prefetch(d, hh, entry);
    if (!entry)
        baseline_prefetch_dst(d->bl, hh, hp);
    exfil_prefetch(d, hh, hp, entry);
}

static void one_record(struct detect *d, const struct drec *r)
{
    const struct vigil_addr *host, *peer;
    uint64_t hh, hp, sent, got;
    bool host_init = true;

    if (r->end_ns > d->newest_ns)
        d->newest_ns = r->end_ns;
    if (r->end_ns > d->agent_wm[r->agent])
        d->agent_wm[r->agent] = r->end_ns;
    if (d->next_sweep_ns == 0)
        d->next_sweep_ns = r->end_ns + DETECT_SWEEP_STEP_NS;

    /* scans and beacons look at initiators wherever they are */
    scan_add(d, r);
    beacon_add(d, r);

    switch (r->direction) {
    case DIR_EXTERNAL: return; /* no local end: nothing to learn about our hosts */
    case DIR_INBOUND:
        host = &r->dst, hh = r->hdst, peer = &r->src, hp = r->hsrc;
        sent = r->bytes_rev, got = r->bytes_fwd;
        host_init = false;
        break;
    default:
        host = &r->src, hh = r->hsrc, peer = &r->dst, hp = r->hdst;
        sent = r->bytes_fwd, got = r->bytes_rev;
        break;
    }

    struct bl_sample s;
    memset(&s, 0, sizeof s);
    s.t_ns = r->start_ns;
    s.v[BL_OUT_BYTES] = sent;
    s.v[BL_IN_BYTES] = got;
    if (r->is_dns && host_init) {
        s.v[BL_DNS_BYTES] = r->bytes_fwd + r->bytes_rev;
        s.v[BL_DNS_QUERIES] = r->pkts_fwd;
    }
    if (host_init && r->new_conn) {
        s.v[BL_CONNS] = 1;
        s.v[BL_FAILED] = r->failed;
        s.peer_hash = hp;
        s.port = r->dport;
        s.has_port = r->has_ports;
    }
    baseline_add(d->bl, host, hh, &s);

    if (r->is_dns && host_init)
        dns_add(d, r, host, hh);
    /* exfiltration: what a host sends on connections it started (a
     * server's replies to visitors are its service), to a destination not
     * inside the local networks (direction internal) */
    if (!host_init || r->direction == DIR_INTERNAL)
        return;
    enum bl_dst known = baseline_known_dst(d->bl, host, hh, peer, hp, r->start_ns);
    if (known != BL_DST_KNOWN) /* new, or followed since it was: exfiltration's business */
        exfil_add(d, r, host, hh, peer, hp, sent, got, known == BL_DST_NEW);
}

void detect_batch(struct detect *d, const Vigil__FlowBatch *b, const char *agent)
{
    if (!d || !d->cfg.enabled || !b)
        return;
    uint16_t aid = agent_id(d, agent ? agent : "");
    struct drec rs[DETECT_CHUNK];
    d->stats.batches++;
    for (size_t base = 0; base < b->n_records; base += DETECT_CHUNK) {
        size_t m = b->n_records - base < DETECT_CHUNK ? b->n_records - base : DETECT_CHUNK;
        unsigned n = 0;
        /* Three passes over the chunk, in record order each, so every
         * record sees the state the records before it left: decode (and
         * hint the open-flow slots), settle new connections (and hint the
         * detectors' slots), then the detectors (hinting entries ahead). */
        for (size_t i = base; i < base + m; i++) {
            d->stats.records++;
            if (!b->records[i] || !decode(d, b->records[i], aid, &rs[n])) {
                d->stats.records_bad++;
                continue;
            }
            dtab_prefetch(&d->open, rs[n++].open_hash);
        }
        for (unsigned j = 0; j < n; j++) {
            settle(d, &rs[j]);
            record_prefetch(d, &rs[j], false);
        }
        for (unsigned j = 0; j < n; j++) {
            if (j + DETECT_AHEAD < n)
                record_prefetch(d, &rs[j + DETECT_AHEAD], true);
            one_record(d, &rs[j]);
        }
    }
    if (b->n_records) {
        d->last_record_mono = d->agent_mono[aid] = vigil_monotonic_ns();
        d->idle_flushed = false;
    }
}

/* ---- sweeps and persistence ------------------------------------------------------------ */

static void sweep_all(struct detect *d, bool all)
{
    scan_sweep(d, all);
    dns_sweep(d, all);
    beacon_sweep(d, all);
    exfil_sweep(d, all);
}

static void publish(struct detect *d);

/* models: also the baselines that changed (paced by the caller). */
static int persist(struct detect *d, bool models)
{
    if (!baseline_pending(d->bl, models) && !alerts_pending(d->al))
        return 0;
    MDB_txn *txn = NULL;
    int rc = store__detect_begin(d->st, true, &txn);
    if (rc)
        goto fail;
    if ((rc = baseline_persist(d->bl, txn, models)) != 0 || (rc = alerts_persist(d->al, txn)) != 0) {
        mdb_txn_abort(txn);
        rc = store__err(rc);
        goto fail;
    }
    if ((rc = mdb_txn_commit(txn)) != 0) {
        rc = store__err(rc);
        goto fail;
    }
    baseline_persisted(d->bl, models);
    alerts_persisted(d->al);
    d->stats.persists++;
    return 0;
fail:
    d->stats.persist_failed++;
    log_ratelimited(&d->rl_persist, LOG_LVL_WARN,
                    "detection: cannot write baselines and alerts: %s (retried)",
                    vigil_strerror(rc));
    return rc;
}

/* The fleet's low watermark: the oldest newest-record-end among the agents
 * that delivered within DETECT_AGENT_QUIET_NS (all of them quiet: the
 * newest record), and how many agents those are. */
static void low_watermark(struct detect *d, int64_t now_mono_ns)
{
    int64_t low = INT64_MAX;
    uint32_t active = 0;
    for (uint32_t i = 0; i < d->n_agents; i++) {
        if (!d->agent_mono[i] || now_mono_ns - d->agent_mono[i] > DETECT_AGENT_QUIET_NS)
            continue;
        active++;
        if (d->agent_wm[i] < low)
            low = d->agent_wm[i];
    }
    d->active_agents = active;
    d->low_wm = active ? low : d->newest_ns;
    if (!active)
        d->heard_since_mono = 0;
    else if (!d->heard_since_mono)
        d->heard_since_mono = now_mono_ns;
    d->fleet_view = active && now_mono_ns - d->heard_since_mono >= DETECT_AGENT_QUIET_NS;
}

void detect_tick(struct detect *d, int64_t now_mono_ns)
{
    if (!d || !d->cfg.enabled)
        return;
    /* Amortised: a sweep visits every entry, so it waits for as many
     * records as a quarter of the entries (a replay moves event time
     * thousands of times faster than the clock). */
    uint64_t visit = (uint64_t)d->pairs.hwm + d->hscan.hwm + d->srcs.hwm + d->dsts.hwm +
                     d->ports.hwm + d->dns.hwm + d->bpairs.hwm + d->bpop.hwm + d->exfil.hwm;
    low_watermark(d, now_mono_ns);
    if (d->low_wm && d->low_wm >= d->next_sweep_ns &&
        d->stats.records - d->swept_at_records >= visit / 4) {
        d->swept_at_records = d->stats.records;
        sweep_all(d, false);
        baseline_advance(d->bl, d->newest_ns, d->cfg.lateness_ns, false);
        d->next_sweep_ns = d->low_wm + DETECT_SWEEP_STEP_NS;
    }
    if (!d->idle_flushed && d->last_record_mono &&
        now_mono_ns - d->last_record_mono >= d->cfg.idle_flush_ns) {
        /* Quiet: judge what is open now (a replay has ended, or the
         * fleet sleeps); the windows stay open for more records. */
        sweep_all(d, true);
        baseline_advance(d->bl, d->newest_ns, d->cfg.lateness_ns, true);
        d->idle_flushed = true;
        d->stats.idle_flushes++;
        d->next_persist_mono = d->next_models_mono = 0;
    }
    /* New destinations and alerts about once a second, or as soon as the
     * destinations fill half their buffer; models every
     * DETECT_MODELS_EVERY_NS. */
    if (now_mono_ns >= d->next_persist_mono || baseline_pending_full(d->bl)) {
        bool models = now_mono_ns >= d->next_models_mono;
        if (persist(d, models) == 0 && models)
            d->next_models_mono = now_mono_ns + DETECT_MODELS_EVERY_NS;
        d->next_persist_mono = now_mono_ns + DETECT_PERSIST_EVERY_NS;
    }
    publish(d);
}

int detect_flush(struct detect *d)
{
    if (!d || !d->cfg.enabled)
        return 0;
    sweep_all(d, true);
    baseline_advance(d->bl, d->newest_ns, d->cfg.lateness_ns, true);
    int rc = persist(d, true);
    publish(d);
    return rc;
}

/* ---- life cycle, stats ------------------------------------------------------------------- */

static void publish(struct detect *d)
{
    d->stats.newest_ns = d->newest_ns;
    pthread_mutex_lock(&d->stats_lock);
    d->pub = d->stats;
    pthread_mutex_unlock(&d->stats_lock);
}

void detect_get_stats(struct detect *d, struct detect_stats *out)
{
    pthread_mutex_lock(&d->stats_lock);
    *out = d->pub;
    pthread_mutex_unlock(&d->stats_lock);
}

void detect_status_text(struct detect *d, char *buf, size_t len)
{
    struct detect_stats s;
    detect_get_stats(d, &s);
    uint64_t alerts = s.alerts_new;
    snprintf(buf, len,
             "alerts=%" PRIu64 " (+%" PRIu64 ") updated=%" PRIu64 " hosts=%" PRIu64
             " known_dsts=%" PRIu64 " hours=%" PRIu64 " bad=%" PRIu64 " full=%" PRIu64
             "/%" PRIu64 "/%" PRIu64 "/%" PRIu64 " (tables/sketches/hosts/known) persist_failed=%" PRIu64,
             alerts, alerts - d->status_alerts, s.alerts_updated, s.hosts, s.known_dsts,
             s.hours_closed, s.records_bad, s.table_full, s.sketch_full, s.hosts_full,
             s.known_full, s.persist_failed);
    d->status_alerts = alerts;
}

struct detect *detect_create(struct store *store, const struct detect_config *cfg, char *err,
                             size_t errlen)
{
    struct detect *d = calloc(1, sizeof *d);
    MDB_txn *txn = NULL;
    if (!d) {
        snprintf(err, errlen, "detection: out of memory");
        return NULL;
    }
    d->cfg = *cfg;
    d->st = store;
    pthread_mutex_init(&d->stats_lock, NULL);
    if (hash_key_random(&d->hk) != 0) {
        snprintf(err, errlen, "detection: no random bytes for the hash key");
        goto fail;
    }
    uint32_t keys = (uint32_t)(cfg->max_keys < 64 ? 64 : cfg->max_keys > (1u << 26)
                                                             ? (1u << 26)
                                                             : cfg->max_keys);
    d->pool.cap = keys / 2;
    d->pool.sk = calloc(d->pool.cap, sizeof *d->pool.sk);
    d->pool.free_list = malloc(sizeof *d->pool.free_list * d->pool.cap);
    d->agent_names = calloc(DETECT_MAX_AGENTS, sizeof *d->agent_names);
    if (!d->pool.sk || !d->pool.free_list || !d->agent_names ||
        dtab_init(&d->open, keys, sizeof(struct open_entry), sizeof(struct dtab_head), 16) != 0 ||
        scan_init(d) != 0 || dns_init(d) != 0 || beacon_init(d) != 0 || exfil_init(d) != 0) {
        snprintf(err, errlen, "detection: out of memory for %" PRIu32 " keys per table", keys);
        goto fail;
    }
    if (store__detect_begin(store, false, &txn) != 0) {
        snprintf(err, errlen, "detection: cannot read the store");
        goto fail;
    }
    d->bl = baseline_create(txn, store->ddb[DDB_BASELINES], store->ddb[DDB_KNOWN_DSTS], &d->hk,
                            keys / 8, (uint64_t)keys * 8, cfg->known_keep_ns, cfg->learning_ns,
                            &d->stats, err, errlen);
    if (d->bl)
        d->al = alerts_create(txn, store->ddb[DDB_ALERTS], cfg->alert_log, cfg->dedup_ns,
                              &d->stats, err, errlen);
    mdb_txn_abort(txn);
    if (!d->bl || !d->al)
        goto fail;
    log_info("detection on: %" PRIu64 " hosts with a baseline, %" PRIu64
             " known destinations loaded; learning %" PRId64 " h, windows %" PRId64
             " s, idle flush %" PRId64 " s%s%s",
             d->stats.hosts, d->stats.known_dsts, cfg->learning_ns / (3600 * NS_PER_SEC),
             cfg->window_ns / NS_PER_SEC, cfg->idle_flush_ns / NS_PER_SEC,
             cfg->alert_log ? ", alert log " : "", cfg->alert_log ? cfg->alert_log : "");
    publish(d);
    return d;
fail:
    detect_destroy(d);
    return NULL;
}

void detect_destroy(struct detect *d)
{
    if (!d)
        return;
    if (d->bl && d->al)
        persist(d, true);
    scan_free(d);
    dns_free(d);
    beacon_free(d);
    exfil_free(d);
    dtab_free(&d->open);
    baseline_destroy(d->bl);
    alerts_destroy(d->al);
    free(d->pool.sk);
    free(d->pool.free_list);
    free(d->agent_names);
    pthread_mutex_destroy(&d->stats_lock);
    free(d);
}
