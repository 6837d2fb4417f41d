/* detect_dns.c — DNS tunnelling (dns_tunnel).
 *
 * Per local host, in a window of at most window_ns of its records' event
 * time (a query that does not fit closes the window and starts the next): DNS
 * bytes and queries (a flow's forward packets: a resolver library that
 * keeps one source port sends many queries in one flow, whose record
 * carries only the first name), and the shape of the names seen, weighted
 * by the queries of their flow. An alert needs the volume AND two of three
 * shape signals:
 *
 *   volume   DNS bytes at least dns_factor (5) x the host's DNS bytes
 *            baseline for the window (its own once learned, else the
 *            fleet's, else default_dns_bytes per hour), at least
 *            dns_min_bytes, and at least dns_min_queries queries;
 *   long     half the queries carry names whose part left of the registered
 *            domain is at least dns_long_name (40) characters with at least
 *            dns_min_entropy (3.5) bits of Shannon entropy per character
 *            (encoded data, whatever the alphabet: hex, base32, base64);
 *   unique   one registered domain got at least dns_unique_names (100)
 *            distinct names (each query a new subdomain: data, not lookups);
 *   qtype    half the queries ask for TXT, NULL, CNAME, MX, SRV or ANY
 *            (records that carry data back), not A/AAAA/HTTPS.
 *
 * Nothing keys on a tool's name or on hex-only labels. The registered
 * domain is the last two labels (three when the second-level label is at
 * most three characters under a two-letter top-level domain: co.uk). */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "clock.h"
#include "detect_int.h"
#include "err.h"

#define DNS_DOMAINS 4
#define DNS_DOMAIN_TEXT 64
#define DNS_SAMPLE 120

struct dns_domain {
    uint64_t hash;
    uint64_t queries;
    struct dcount names;
    char text[DNS_DOMAIN_TEXT];
};

struct dns_entry {
    struct dtab_head h;
    struct vigil_addr host;
    int64_t start_ns, last_ns;
    uint64_t bytes, queries, named, long_names, odd_qtypes;
    uint64_t host_hash;
    struct dns_domain dom[DNS_DOMAINS];
    struct agentset agents;
    struct vigil_addr server;
    char sample[DNS_SAMPLE];
};

int dns_init(struct detect *d)
{
    uint32_t n = (uint32_t)(d->cfg.max_keys / 4);
    return dtab_init(&d->dns, n < 64 ? 64 : n, sizeof(struct dns_entry),
                     offsetof(struct dns_entry, host), 16);
}

void dns_free(struct detect *d)
{
    dtab_free(&d->dns);
}

void dns_name_shape(const char *name, size_t len, size_t *sub_len, double *entropy,
                    size_t *regdom_off)
{
    size_t dots[3] = {0, 0, 0}; /* positions of the last three dots, +1 */
    unsigned nd = 0;
    while (len && name[len - 1] == '.')
        len--; /* a trailing root dot */
    for (size_t i = len; i-- > 0;)
        if (name[i] == '.' && nd < 3)
            dots[nd++] = i + 1;
    size_t off = 0;
    if (nd >= 2) {
        off = dots[1];
        size_t tld = len - dots[0], sld = dots[0] - 1 - dots[1];
        if (tld == 2 && sld <= 3)
            off = nd >= 3 ? dots[2] : 0;
    }
    *regdom_off = off;
    unsigned counts[256] = {0};
    size_t n = 0;
    for (size_t i = 0; i + 1 < off; i++) { /* left of the dot before the domain */
        unsigned char c = (unsigned char)name[i];
        if (c == '.')
            continue;
        counts[c]++;
        n++;
    }
    double h = 0;
    for (unsigned c = 0; c < 256 && n; c++)
        if (counts[c]) {
            double p = (double)counts[c] / (double)n;
            h -= p * log2(p);
        }
    *sub_len = n;
    *entropy = h;
}

static bool odd_qtype(uint16_t t)
{
    /* CNAME 5, NULL 10, MX 15, TXT 16, SRV 33, ANY 255 */
    return t == 5 || t == 10 || t == 15 || t == 16 || t == 33 || t == 255;
}

static uint64_t dns_hash(uint64_t hh)
{
    return mix64(hh ^ 0xd45);
}

void dns_prefetch(const struct detect *d, uint64_t hh, bool entry)
{
    dtab_hint(&d->dns, dns_hash(hh), entry);
}

static void eval_dns(struct detect *d, struct dns_entry *e);

static void dns_release(struct detect *d, struct dns_entry *e)
{
    for (unsigned k = 0; k < DNS_DOMAINS; k++)
        dcount_release(d, &e->dom[k].names);
}

void dns_add(struct detect *d, const struct drec *r, const struct vigil_addr *host, uint64_t hh)
{
    bool created;
    struct dns_entry *e = dtab_get(&d->dns, dns_hash(hh), host, &created);
    if (!e) {
        detect_count_full(d);
        return;
    }
    /* a window holds queries at most window_ns apart (the key's own event
     * time): one that does not fit closes it, judged, and starts the next */
    if (!created && !detect_in_window(e->start_ns, e->last_ns, r->start_ns, d->cfg.window_ns)) {
        eval_dns(d, e);
        dns_release(d, e);
        detect_entry_reset(&d->dns, e);
        d->stats.windows_closed++;
        created = true;
    }
    if (created) {
        e->start_ns = r->start_ns;
        e->host_hash = hh;
        e->server = r->dst;
    }
    if (r->start_ns < e->start_ns)
        e->start_ns = r->start_ns;
    if (r->end_ns > e->last_ns)
        e->last_ns = r->end_ns;
    uint64_t q = r->pkts_fwd ? r->pkts_fwd : 1;
    e->bytes += r->bytes_fwd + r->bytes_rev;
    e->queries += q;
    agentset_add(&e->agents, r->agent);
    if (!r->qname)
        return;
    size_t sub, off;
    double ent;
    dns_name_shape(r->qname, r->qname_len, &sub, &ent, &off);
    e->named += q;
    bool is_long = sub >= d->cfg.dns_long_name &&
                   ent * 100.0 >= (double)d->cfg.dns_min_entropy_x100;
    if (is_long) {
        e->long_names += q;
        if (!e->sample[0])
            snprintf(e->sample, sizeof e->sample, "%.*s", (int)r->qname_len, r->qname);
    }
    if (odd_qtype(r->qtype))
        e->odd_qtypes += q;
    const char *dom = r->qname + off;
    size_t dlen = r->qname_len - off;
    uint64_t dh = hash_siphash13(&d->hk, dom, dlen) | 1;
    struct dns_domain *slot = NULL;
    for (unsigned i = 0; i < DNS_DOMAINS && !slot; i++)
        if (e->dom[i].hash == dh || e->dom[i].hash == 0)
            slot = &e->dom[i];
    if (!slot)
        return; /* more than DNS_DOMAINS domains: the first ones are what a tunnel floods */
    if (!slot->hash) {
        slot->hash = dh;
        snprintf(slot->text, sizeof slot->text, "%.*s", (int)dlen, dom);
    }
    slot->queries += q;
    dcount_add(d, &slot->names, hash_siphash13(&d->hk, r->qname, r->qname_len));
}

static void eval_dns(struct detect *d, struct dns_entry *e)
{
    if (e->queries < d->cfg.dns_min_queries)
        return;
    enum bl_source from;
    double per_hour = baseline_expect(d->bl, &e->host, e->host_hash, BL_DNS_BYTES, e->start_ns,
                                      &from);
    if (from == BL_NONE)
        per_hour = (double)d->cfg.default_dns_bytes;
    double expected = per_hour * (double)d->cfg.window_ns / (3600.0 * NS_PER_SEC);
    double need = expected * (double)d->cfg.dns_factor;
    if (need < (double)d->cfg.dns_min_bytes)
        need = (double)d->cfg.dns_min_bytes;
    if ((double)e->bytes < need)
        return;
    const struct dns_domain *top = NULL;
    double top_unique = 0;
    for (unsigned i = 0; i < DNS_DOMAINS; i++) {
        if (!e->dom[i].hash)
            continue;
        double u = dcount_value(d, &e->dom[i].names);
        if (!top || e->dom[i].queries > top->queries)
            top = &e->dom[i], top_unique = u;
    }
    bool sig_long = e->named && e->long_names * 2 >= e->named;
    bool sig_unique = top && top_unique >= (double)d->cfg.dns_unique_names;
    bool sig_qtype = e->named && e->odd_qtypes * 2 >= e->named;
    if ((unsigned)sig_long + sig_unique + sig_qtype < 2)
        return;

    struct alert a;
    char host[ADDR_STRLEN], t0[40], t1[40];
    memset(&a, 0, sizeof a);
    a.type = ALERT_DNS_TUNNEL;
    a.first_ns = e->start_ns;
    a.last_ns = e->last_ns;
    double ratio = expected > 0 ? (double)e->bytes / expected : 0;
    a.severity = (unsigned)sig_long + sig_unique + sig_qtype == 3 || ratio >= 50 ? SEV_HIGH
                                                                                  : SEV_MEDIUM;
    a.sources[a.n_sources++] = e->host;
    a.targets[a.n_targets++] = e->server;
    detect_alert_agents(d, &a, &e->agents);
    addr_format(&e->host, host);
    vigil_format_rfc3339(e->start_ns, t0, sizeof t0);
    vigil_format_rfc3339(e->last_ns + NS_PER_SEC, t1, sizeof t1);
    const char *dom = top ? top->text : "";
    snprintf(a.summary, sizeof a.summary,
             "%s sent %" PRIu64 " DNS queries (%" PRIu64
             " bytes, %.0fx its usual volume) shaped like a tunnel%s%.64s.",
             host, e->queries, e->bytes, ratio, *dom ? " under " : "", dom);
    /* the sample and domain come from the network: escape them */
    char sample[DNS_SAMPLE * 6 + 1], domain[DNS_DOMAIN_TEXT * 6 + 1];
    size_t j = 0;
    for (const char *p = e->sample; *p && j + 7 < sizeof sample; p++) {
        unsigned char c = (unsigned char)*p;
        if (c < 0x20 || c > 0x7e || c == '"' || c == '\\')
            j += (size_t)snprintf(sample + j, sizeof sample - j, "\\u%04x", c);
        else
            sample[j++] = (char)c;
    }
    sample[j] = '\0';
    j = 0;
    for (const char *p = dom; *p && j + 7 < sizeof domain; p++) {
        unsigned char c = (unsigned char)*p;
        if (c < 0x20 || c > 0x7e || c == '"' || c == '\\')
            j += (size_t)snprintf(domain + j, sizeof domain - j, "\\u%04x", c);
        else
            domain[j++] = (char)c;
    }
    domain[j] = '\0';
    snprintf(a.evidence, sizeof a.evidence,
             "{\"queries\":%" PRIu64 ",\"bytes\":%" PRIu64 ",\"baseline_bytes\":%.0f,"
             "\"baseline_from\":\"%s\",\"factor\":%" PRIu64 ",\"long_high_entropy_queries\":%" PRIu64
             ",\"unusual_qtype_queries\":%" PRIu64 ",\"named_queries\":%" PRIu64
             ",\"top_domain\":\"%s\",\"top_domain_unique_names\":%.0f,\"signals\":{\"long\":%s,"
             "\"unique\":%s,\"qtype\":%s},\"sample_name\":\"%s\","
             "\"flows\":\"vigil flows --host %s --port 53 --since %s --until %s --limit 1000\"}",
             e->queries, e->bytes, expected,
             from == BL_FROM_HOST ? "host" : from == BL_FROM_FLEET ? "fleet" : "default",
             d->cfg.dns_factor, e->long_names, e->odd_qtypes, e->named, domain, top_unique,
             sig_long ? "true" : "false", sig_unique ? "true" : "false",
             sig_qtype ? "true" : "false", sample, host, t0, t1);
    detect_raise(d, detect_dedup(ALERT_DNS_TUNNEL, &e->host, sizeof e->host), &a);
}

void dns_sweep(struct detect *d, bool all)
{
    for (uint32_t i = 0; i < d->dns.hwm; i++) {
        struct dns_entry *e = dtab_at(&d->dns, i);
        if (!e->h.live)
            continue;
        bool over = detect_window_over(d, e->start_ns, d->cfg.window_ns);
        if (!all && !over)
            continue;
        eval_dns(d, e);
        if (over) {
            dns_release(d, e);
            dtab_remove(&d->dns, e);
            d->stats.windows_closed++;
        }
    }
}
