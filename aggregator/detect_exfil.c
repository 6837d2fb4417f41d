/* detect_exfil.c — exfiltration: a host sends far more than it usually
 * does to a destination it had never talked to.
 *
 * Outbound means what a host sends on connections it started, to a
 * destination outside the local networks (direction outbound, or unknown
 * when no --local-net is given): a server's replies to its visitors are its
 * service, and a save to the internal file server stays inside (detect.c
 * calls in only for those). When a host first starts a connection to a
 * peer (baseline_known_dst), the pair is followed for exfil_window_ns (1 h
 * of the pair's own event time; later records find the peer known): bytes
 * the host sent and bytes that came back, judged when the window is over
 * for every agent still delivering (or the fleet is quiet). A destination
 * more than 2 hosts of the fleet, and more than beacon_rare_pct of its
 * active hosts, started connections to is known to the fleet and not
 * judged (the office cloud on a fresh deployment's first morning). An alert
 * when what it sent reaches
 *   max(exfil_min_bytes, exfil_factor x the host's outbound bytes per hour)
 * (its own baseline once learned, else the fleet's per host, else
 * default_out_bytes, which is 0 by default: the floor alone) and at least
 * exfil_min_ratio times what came back — a transfer out, not an exchange
 * (video calls and synchronisation pull as much as they push). A
 * destination the host has used before is never judged here (the nightly
 * backup). Severity grows with the volume: medium from 10 MiB, high from
 * 100 MiB. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "clock.h"
#include "detect_int.h"
#include "err.h"

#define MIB (1024.0 * 1024.0)

struct ex_key {
    struct vigil_addr host, peer;
};

struct ex_entry {
    struct dtab_head h;
    struct ex_key k;
    int64_t first_ns, last_ns;
    uint64_t sent, back, records;
    uint64_t host_hash, peer_hash;
    struct agentset agents;
};

int exfil_init(struct detect *d)
{
    uint32_t n = (uint32_t)d->cfg.max_keys;
    return dtab_init(&d->exfil, n < 64 ? 64 : n, sizeof(struct ex_entry),
                     offsetof(struct ex_entry, k), sizeof(struct ex_key));
}

void exfil_free(struct detect *d)
{
    dtab_free(&d->exfil);
}

static uint64_t ex_hash(uint64_t hh, uint64_t hp)
{
    return hash_combine(hh ^ 0xe4f1, hp);
}

void exfil_prefetch(const struct detect *d, uint64_t hh, uint64_t hp, bool entry)
{
    dtab_hint(&d->exfil, ex_hash(hh, hp), entry);
}

void exfil_add(struct detect *d, const struct drec *r, const struct vigil_addr *host, uint64_t hh,
               const struct vigil_addr *peer, uint64_t hp, uint64_t bytes, uint64_t back,
               bool is_new)
{
    struct ex_key k;
    k.host = *host;
    k.peer = *peer;
    uint64_t h = ex_hash(hh, hp);
    struct ex_entry *e;
    if (is_new) {
        bool created;
        e = dtab_get(&d->exfil, h, &k, &created);
        if (!e) {
            detect_count_full(d);
            return;
        }
        if (created) {
            e->first_ns = r->start_ns;
            e->host_hash = hh;
            e->peer_hash = hp;
            baseline_follow_dst(d->bl, hh, hp, true); /* its next records come here */
        }
    } else if (!(e = dtab_find(&d->exfil, h, &k))) {
        return; /* not followed (any more) */
    }
    /* past the window (the pair's own event time): the destination is
     * known now, whenever the sweep retires the entry (a replay delivers
     * the morning's check and the night's backup in one batch) */
    if (r->start_ns > e->first_ns + d->cfg.exfil_window_ns)
        return;
    if (r->start_ns < e->first_ns)
        e->first_ns = r->start_ns;
    if (r->end_ns > e->last_ns)
        e->last_ns = r->end_ns;
    e->sent += bytes;
    e->back += back;
    e->records++;
    agentset_add(&e->agents, r->agent);
}

static void eval_exfil(struct detect *d, struct ex_entry *e)
{
    if (e->sent < d->cfg.exfil_min_bytes || e->sent < e->back * d->cfg.exfil_min_ratio)
        return;
    /* new to the host but known to the fleet: the office's shared service
     * that hosts start using on their first morning */
    double users, allowed;
    if (beacon_dst_common(d, &e->k.peer, e->peer_hash, e->last_ns, 2, &users, &allowed))
        return;
    enum bl_source from;
    double per_hour = baseline_expect(d->bl, &e->k.host, e->host_hash, BL_OUT_BYTES,
                                      e->first_ns, &from);
    if (from == BL_NONE)
        per_hour = (double)d->cfg.default_out_bytes;
    double need = per_hour * (double)d->cfg.exfil_factor;
    if (need < (double)d->cfg.exfil_min_bytes)
        need = (double)d->cfg.exfil_min_bytes;
    if ((double)e->sent < need)
        return;

    struct alert a;
    char host[ADDR_STRLEN], peer[ADDR_STRLEN], t0[40], t1[40];
    memset(&a, 0, sizeof a);
    a.type = ALERT_EXFILTRATION;
    a.first_ns = e->first_ns;
    a.last_ns = e->last_ns;
    a.severity = (double)e->sent >= 100 * MIB  ? SEV_HIGH
                 : (double)e->sent >= 10 * MIB ? SEV_MEDIUM
                                               : SEV_LOW;
    a.sources[a.n_sources++] = e->k.host;
    a.targets[a.n_targets++] = e->k.peer;
    detect_alert_agents(d, &a, &e->agents);
    addr_format(&e->k.host, host);
    addr_format(&e->k.peer, peer);
    vigil_format_rfc3339(e->first_ns, t0, sizeof t0);
    vigil_format_rfc3339(e->last_ns + NS_PER_SEC, t1, sizeof t1);
    const char *whose = from == BL_FROM_HOST ? "host" : from == BL_FROM_FLEET ? "fleet" : "default";
    if (per_hour > 0)
        snprintf(a.summary, sizeof a.summary,
                 "%s sent %.1f MiB to %s, a destination it had never used, %.0fx its usual "
                 "hourly outbound volume.",
                 host, (double)e->sent / MIB, peer, (double)e->sent / per_hour);
    else
        snprintf(a.summary, sizeof a.summary,
                 "%s sent %.1f MiB to %s, a destination it had never used, with %.1f KiB back.",
                 host, (double)e->sent / MIB, peer, (double)e->back / 1024.0);
    snprintf(a.evidence, sizeof a.evidence,
             "{\"bytes_out\":%" PRIu64 ",\"bytes_back\":%" PRIu64 ",\"records\":%" PRIu64
             ",\"new_destination\":true,\"destination_fleet_users\":%.0f,"
             "\"baseline_out_bytes_per_hour\":%.0f,"
             "\"baseline_from\":\"%s\",\"factor\":%" PRIu64 ",\"threshold_bytes\":%.0f,"
             "\"flows\":\"vigil flows --host %s --since %s --until %s --limit 1000\"}",
             e->sent, e->back, e->records, users, per_hour > 0 ? per_hour : 0, whose,
             d->cfg.exfil_factor, need, host, t0, t1);
    detect_raise(d, detect_dedup(ALERT_EXFILTRATION, &e->k, sizeof e->k), &a);
}

void exfil_sweep(struct detect *d, bool all)
{
    for (uint32_t i = 0; i < d->exfil.hwm; i++) {
        struct ex_entry *e = dtab_at(&d->exfil, i);
        if (!e->h.live)
            continue;
        /* judged when the window is over for every agent still delivering
         * (or the fleet is quiet): whether the destination is known to the
         * fleet needs the whole fleet's view of that hour */
        bool over = !all && detect_window_over(d, e->first_ns, d->cfg.exfil_window_ns);
        if (!all && (!over || !d->fleet_view))
            continue;
        eval_exfil(d, e);
        if (over) {
            baseline_follow_dst(d->bl, e->host_hash, e->peer_hash, false);
            dtab_remove(&d->exfil, e);
            d->stats.windows_closed++;
        }
    }
}
