/* fleet_attacks.c — the attacks of the `fleet` scenario, each at a fixed time
 * and labelled.
 *
 * All attacks happen on the last day of the span (with --days 2 the first
 * day is clean traffic a detector can learn from), hours apart so none
 * overlaps another, at these times from that day's start:
 *   09:00-17:00  beacon            a workstation calls one rare server every
 *                                  120 s (±1.5 %) with steady request sizes;
 *   10:05        port_scan         an outsider SYN-scans 1000 ports of srv-web;
 *   11:20        horizontal_scan   a workstation probes port 445 on 254 addresses
 *                                  of a segment nobody monitors;
 *   12:40        fleet_scan        a device nobody monitors (a camera) probes six
 *                                  ports on every fleet host in three minutes:
 *                                  each agent sees a handful of probes, only the
 *                                  fleet as a whole sees the sweep;
 *   13:30        dns_tunnel        a workstation moves data through the resolver
 *                                  for 15 minutes: base32 labels, NULL answers
 *                                  (some TXT, CNAME), a new name every query;
 *   14:45        distributed_scan  20 outsiders split 1000 ports of srv-mail
 *                                  between them, 50 each;
 *   16:10        exfiltration      a workstation uploads --exfil-mb MB (250 by
 *                                  default) to a server it never used.
 * Scans get what real hosts answer: RST from closed ports (REJ), SYN-ACK from
 * open ones (the scanner resets), silence where a firewall drops (S0). */
#include "fleet.h"

#include "dnsmsg.h"

#include "err.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#define BEACON_C2 "203.0.113.45"
#define PORT_SCANNER "203.0.113.66"
#define EXFIL_DEST "203.0.113.200"
#define FLEET_SCANNER "10.20.3.77"
#define TUNNEL_DOMAIN "stat-img.example"

static unsigned workstation(const struct fleet *f, unsigned k)
{
    return f->first_ws + k % (f->n - f->first_ws);
}

/* Ports a host answers on, by role; on workstations a firewall drops the rest. */
static bool port_open(const struct fleet *f, unsigned i, uint16_t port)
{
    static const uint16_t web[] = {22, 80, 443}, mail[] = {22, 25, 587, 993},
                          files[] = {22, 139, 445}, admin[] = {22}, ws[] = {445};
    const uint16_t *v;
    size_t n;
    switch (f->host[i].role) {
    case ROLE_WEB:
        v = web, n = sizeof web / sizeof web[0];
        break;
    case ROLE_MAIL:
        v = mail, n = sizeof mail / sizeof mail[0];
        break;
    case ROLE_FILES:
        v = files, n = sizeof files / sizeof files[0];
        break;
    case ROLE_ADMIN:
        v = admin, n = sizeof admin / sizeof admin[0];
        break;
    default:
        v = ws, n = sizeof ws / sizeof ws[0];
        break;
    }
    for (size_t k = 0; k < n; k++)
        if (v[k] == port)
            return true;
    return false;
}

static uint8_t probe_answer(const struct fleet *f, struct rng *r, unsigned i, uint16_t port)
{
    if (port_open(f, i, port))
        return TEND_HALFOPEN;
    if (f->host[i].role == ROLE_WORKSTATION)
        return TEND_S0;
    return rng_chance(r, 0.06) ? TEND_S0 : TEND_REJ;
}

static void shuffle(struct rng *r, uint16_t *v, size_t n)
{
    for (size_t k = n; k > 1; k--) {
        size_t j = (size_t)rng_below(r, k);
        uint16_t x = v[k - 1];
        v[k - 1] = v[j];
        v[j] = x;
    }
}

static void add_tagged(struct fleet *f, struct rng *r, struct sess_spec *sp, uint16_t tag)
{
    sp->tag = tag;
    fleet_add(f, r, sp);
}

/* Starts a label; returns its tag, or 0 (f->err set) when out of memory. */
static uint16_t label(struct fleet *f, const char *type)
{
    uint16_t tag = scn_add_attack(f->sc, type);
    if (!tag && !f->err)
        f->err = VIGIL_ENOMEM;
    return tag;
}

static void name_all(struct fleet *f, struct scn_list *l, const char *s)
{
    if (scn_list_add(l, s) != 0 && !f->err)
        f->err = VIGIL_ENOMEM;
}

static void agents_of(struct fleet *f, struct scn_attack *a, unsigned i)
{
    name_all(f, &a->agents, f->sc->hosts[i].name);
}

/* --- the attacks ---------------------------------------------------------------- */

static void beacon(struct fleet *f, struct rng *r, int64_t day)
{
    unsigned i = workstation(f, 1);
    uint16_t tag = label(f, "beacon");
    if (!tag)
        return;
    const int64_t period = 120 * SEC_NS;
    unsigned n = 0;
    for (int64_t t = day + 9 * HOUR_NS; t < day + 17 * HOUR_NS; n++) {
        int64_t at = t;
        if (n % 5 == 0) { /* the name's TTL is five minutes */
            struct sess_spec q = fleet_dns(f, i, at, "api.telemetry-hub.example", DNS_TYPE_A,
                                           DNS_RCODE_NOERROR);
            add_tagged(f, r, &q, tag);
            at += q.rtt_ns + 200000;
        }
        struct sess_spec sp = fleet_tcp(f, f->host[i].ip, fleet_port(f, i), BEACON_C2, 443, at,
                                        45 * MS_NS, TAPP_TLS, TEND_FIN_CLIENT);
        sp.tls_kind = TLS_CLIENT_LEGACY;
        sp.rounds = 2;
        sp.resp0 = 2900;
        sp.reqn = 396 + (uint32_t)rng_below(r, 16);
        sp.respn = 148 + rng_below(r, 8);
        fleet_name(&sp, "api.telemetry-hub.example");
        add_tagged(f, r, &sp, tag);
        t += period + (int64_t)rng_range(r, -1800, 1800) * MS_NS;
    }
    struct scn_attack *a = scn_attack_of(f->sc, tag);
    name_all(f, &a->sources, f->host[i].ip);
    name_all(f, &a->targets, BEACON_C2);
    agents_of(f, a, i);
    snprintf(a->details, sizeof a->details,
             "\"port\": 443, \"period_s\": 120, \"connections\": %u", n);
    snprintf(a->description, sizeof a->description,
             "%s opens a TLS connection to %s:443 every 120 s (+-1.5 %%) for 8 hours, "
             "~400 bytes up and ~150 down each time; no other host talks to it",
             f->sc->hosts[i].name, BEACON_C2);
}

static void port_scan(struct fleet *f, struct rng *r, int64_t t)
{
    unsigned i = f->web;
    uint16_t tag = label(f, "port_scan");
    if (!tag)
        return;
    /* 1000 distinct ports out of the first 1024, in random order, from one
     * source port as a raw-socket SYN scanner sends them. */
    uint16_t ports[1024];
    for (unsigned k = 0; k < 1024; k++)
        ports[k] = (uint16_t)(k + 1);
    shuffle(r, ports, 1024);
    uint16_t sport = (uint16_t)rng_range(r, 40000, 60000);
    for (unsigned k = 0; k < 1000; k++) {
        struct sess_spec sp = fleet_tcp(f, PORT_SCANNER, sport, f->host[i].ip, ports[k], t,
                                        40 * MS_NS, TAPP_RAW, probe_answer(f, r, i, ports[k]));
        add_tagged(f, r, &sp, tag);
        t += (int64_t)rng_range(r, 5, 40) * MS_NS;
    }
    struct scn_attack *a = scn_attack_of(f->sc, tag);
    name_all(f, &a->sources, PORT_SCANNER);
    name_all(f, &a->targets, f->host[i].ip);
    agents_of(f, a, i);
    snprintf(a->details, sizeof a->details, "\"ports\": 1000");
    snprintf(a->description, sizeof a->description,
             "%s SYN-scans 1000 TCP ports of %s in about 20 s; closed ports answer RST, "
             "open ones SYN-ACK",
             PORT_SCANNER, f->sc->hosts[i].name);
}

static void horizontal_scan(struct fleet *f, struct rng *r, int64_t t)
{
    unsigned i = workstation(f, 0);
    uint16_t tag = label(f, "horizontal_scan");
    if (!tag)
        return;
    struct scn_attack *a = scn_attack_of(f->sc, tag);
    uint16_t order[254];
    for (unsigned k = 0; k < 254; k++)
        order[k] = (uint16_t)(k + 1);
    shuffle(r, order, 254);
    for (unsigned k = 0; k < 254; k++) {
        char ip[SCN_ADDR_MAX];
        snprintf(ip, sizeof ip, "10.20.4.%u", order[k]);
        /* About a third of the addresses hold a machine; some of those share files. */
        double u = rng_unit(r);
        uint8_t end = u < 0.12 ? TEND_HALFOPEN : u < 0.35 ? TEND_REJ : TEND_S0;
        struct sess_spec sp = fleet_tcp(f, f->host[i].ip, fleet_port(f, i), ip, 445, t,
                                        600000, TAPP_RAW, end);
        add_tagged(f, r, &sp, tag);
        name_all(f, &a->targets, ip);
        t += (int64_t)rng_range(r, 60, 260) * MS_NS;
    }
    name_all(f, &a->sources, f->host[i].ip);
    agents_of(f, a, i);
    snprintf(a->details, sizeof a->details, "\"port\": 445");
    snprintf(a->description, sizeof a->description,
             "%s probes TCP 445 on all 254 addresses of 10.20.4.0/24 in about 40 s, "
             "a worm looking for file shares",
             f->sc->hosts[i].name);
}

static void fleet_scan(struct fleet *f, struct rng *r, int64_t t0)
{
    static const uint16_t probe[] = {22, 80, 443, 445, 3389, 8080};
    enum { N_PROBES = sizeof probe / sizeof probe[0] };
    uint16_t tag = label(f, "fleet_scan");
    if (!tag)
        return;
    struct scn_attack *a = scn_attack_of(f->sc, tag);
    uint16_t order[FLEET_MAX_HOSTS];
    for (unsigned k = 0; k < f->n; k++)
        order[k] = (uint16_t)k;
    shuffle(r, order, f->n);
    /* Unhurried: the whole fleet in about three minutes, each host's
     * probes a second or so apart. */
    int64_t step = 150 * SEC_NS / f->n;
    for (unsigned k = 0; k < f->n; k++) {
        unsigned i = order[k];
        int64_t t = t0 + (int64_t)k * step + (int64_t)rng_below(r, 3000) * MS_NS;
        uint16_t ports[N_PROBES];
        memcpy(ports, probe, sizeof ports);
        shuffle(r, ports, N_PROBES);
        for (unsigned p = 0; p < N_PROBES; p++) {
            struct sess_spec sp =
                fleet_tcp(f, FLEET_SCANNER, (uint16_t)rng_range(r, 32768, 60999), f->host[i].ip,
                          ports[p], t, 500000, TAPP_RAW, probe_answer(f, r, i, ports[p]));
            add_tagged(f, r, &sp, tag);
            t += (int64_t)rng_range(r, 300, 1500) * MS_NS;
        }
        name_all(f, &a->targets, f->host[i].ip);
        agents_of(f, a, i);
    }
    name_all(f, &a->sources, FLEET_SCANNER);
    snprintf(a->details, sizeof a->details, "\"ports_per_host\": %u", (unsigned)N_PROBES);
    snprintf(a->description, sizeof a->description,
             "%s, a device nobody monitors, probes 6 ports (22, 80, 443, 445, 3389, 8080) on "
             "each of the %u fleet hosts in about 3 minutes: each agent sees only its own 6 "
             "probes",
             FLEET_SCANNER, f->n);
}

/* One upstream query's name: iodine-like, a user/sequence prefix and base32
 * data in labels of up to 63, under the tunnel's zone. Pings carry little. */
static void tunnel_name(struct rng *r, char *out, size_t cap, unsigned seq, bool ping)
{
    static const char b32[] = "abcdefghijklmnopqrstuvwxyz012345";
    size_t chars = ping ? 6 + (size_t)rng_below(r, 6) : 100 + (size_t)rng_below(r, 90);
    size_t len = 0;
    out[len++] = ping ? 'p' : "0123456789abcdef"[seq % 16];
    out[len++] = b32[(seq >> 4) % 32];
    for (size_t k = 0, in_label = 2; k < chars && len + 40 < cap; k++) {
        if (in_label == 63) {
            out[len++] = '.';
            in_label = 0;
        }
        out[len++] = b32[rng_below(r, 32)];
        in_label++;
    }
    snprintf(out + len, cap - len, ".t1.%s", TUNNEL_DOMAIN);
}

static void dns_tunnel(struct fleet *f, struct rng *r, int64_t t)
{
    unsigned i = workstation(f, 2);
    uint16_t tag = label(f, "dns_tunnel");
    if (!tag)
        return;
    int64_t end = t + 15 * MIN_NS;
    unsigned n = 0;
    for (; t < end; n++) {
        char name[NAME_MAX_LEN];
        bool ping = rng_chance(r, 0.25);
        tunnel_name(r, name, sizeof name, n, ping);
        double u = rng_unit(r);
        uint16_t qtype = u < 0.75 ? DNS_TYPE_NULL : u < 0.9 ? DNS_TYPE_TXT : DNS_TYPE_CNAME;
        struct sess_spec sp = fleet_dns(f, i, t, name, qtype, DNS_RCODE_NOERROR);
        /* The answer is the tunnel's downstream: up to ~900 bytes a query. */
        sp.rtt_ns = (int64_t)rng_range(r, 25, 70) * MS_NS;
        uint64_t most = qtype == DNS_TYPE_CNAME ? 140 : qtype == DNS_TYPE_TXT ? 600 : 900;
        sp.dns_data = (uint16_t)(ping ? 20 + rng_below(r, 100) : most / 3 + rng_below(r, most / 3 * 2));
        add_tagged(f, r, &sp, tag);
        t += (int64_t)rng_exp(r, 330e6) + MS_NS;
    }
    struct scn_attack *a = scn_attack_of(f->sc, tag);
    name_all(f, &a->sources, f->host[i].ip);
    name_all(f, &a->targets, FLEET_RESOLVER);
    agents_of(f, a, i);
    snprintf(a->details, sizeof a->details, "\"domain\": \"%s\", \"queries\": %u", TUNNEL_DOMAIN,
             n);
    snprintf(a->description, sizeof a->description,
             "%s tunnels data through the resolver for 15 minutes: %u queries under %s, each a "
             "new name of base32 labels (100-190 characters of data), mostly NULL, some TXT and "
             "CNAME",
             f->sc->hosts[i].name, n, TUNNEL_DOMAIN);
}

static void distributed_scan(struct fleet *f, struct rng *r, int64_t t0)
{
    enum { SOURCES = 20, EACH = 50 };
    unsigned i = f->mail;
    uint16_t tag = label(f, "distributed_scan");
    if (!tag)
        return;
    struct scn_attack *a = scn_attack_of(f->sc, tag);
    uint16_t ports[SOURCES * EACH];
    for (unsigned k = 0; k < SOURCES * EACH; k++)
        ports[k] = (uint16_t)(k + 1);
    shuffle(r, ports, SOURCES * EACH);
    for (unsigned s = 0; s < SOURCES; s++) {
        char src[SCN_ADDR_MAX];
        if (s % 2)
            snprintf(src, sizeof src, "198.51.100.%u", 128 + s / 2 * 12 + 3);
        else
            snprintf(src, sizeof src, "203.0.113.%u", 130 + s / 2 * 6);
        /* Each bot takes its own 50 ports, somewhere in a 10-minute window. */
        int64_t t = t0 + (int64_t)rng_below(r, 540) * SEC_NS;
        uint16_t sport = (uint16_t)rng_range(r, 40000, 60000);
        int64_t rtt = (int64_t)rng_range(r, 30, 180) * MS_NS;
        for (unsigned k = 0; k < EACH; k++) {
            uint16_t port = ports[s * EACH + k];
            struct sess_spec sp = fleet_tcp(f, src, sport, f->host[i].ip, port, t, rtt, TAPP_RAW,
                                            probe_answer(f, r, i, port));
            add_tagged(f, r, &sp, tag);
            t += (int64_t)rng_range(r, 200, 1500) * MS_NS;
        }
        name_all(f, &a->sources, src);
    }
    name_all(f, &a->targets, f->host[i].ip);
    agents_of(f, a, i);
    snprintf(a->details, sizeof a->details, "\"ports\": %u, \"ports_per_source\": %u",
             SOURCES * EACH, EACH);
    snprintf(a->description, sizeof a->description,
             "%u outside addresses split TCP ports 1-%u of %s between them, %u ports each, "
             "within 10 minutes: no source alone reaches a port-scan threshold",
             SOURCES, SOURCES * EACH, f->sc->hosts[i].name, EACH);
}

static void exfiltration(struct fleet *f, struct rng *r, int64_t t)
{
    unsigned i = workstation(f, 3);
    uint16_t tag = label(f, "exfiltration");
    if (!tag)
        return;
    struct sess_spec q = fleet_dns(f, i, t, "upload.fileshare.test", DNS_TYPE_A,
                                   DNS_RCODE_NOERROR);
    add_tagged(f, r, &q, tag);
    t += q.rtt_ns + 300000;
    struct sess_spec sp = fleet_tcp(f, f->host[i].ip, fleet_port(f, i), EXFIL_DEST, 443, t,
                                    35 * MS_NS, TAPP_TLS, TEND_FIN_CLIENT);
    sp.tls_kind = TLS_CLIENT_TOOL;
    sp.rounds = 2;
    sp.resp0 = 3300;
    sp.reqn = (uint32_t)f->o.exfil_bytes;
    sp.respn = 350;
    fleet_name(&sp, "upload.fileshare.test");
    add_tagged(f, r, &sp, tag);
    struct scn_attack *a = scn_attack_of(f->sc, tag);
    name_all(f, &a->sources, f->host[i].ip);
    name_all(f, &a->targets, EXFIL_DEST);
    agents_of(f, a, i);
    snprintf(a->details, sizeof a->details, "\"bytes\": %" PRIu64 ", \"port\": 443",
             f->o.exfil_bytes);
    snprintf(a->description, sizeof a->description,
             "%s uploads %" PRIu64 " MB over TLS to %s, a destination no host of the fleet "
             "ever used",
             f->sc->hosts[i].name, f->o.exfil_bytes / 1000000, EXFIL_DEST);
}

void fleet_add_attacks(struct fleet *f, struct rng *r)
{
    int64_t day = f->sc->start_ns + (int64_t)(f->o.days - 1) * DAY_NS;
    beacon(f, r, day);
    port_scan(f, r, day + 10 * HOUR_NS + 5 * MIN_NS);
    horizontal_scan(f, r, day + 11 * HOUR_NS + 20 * MIN_NS);
    fleet_scan(f, r, day + 12 * HOUR_NS + 40 * MIN_NS);
    dns_tunnel(f, r, day + 13 * HOUR_NS + 30 * MIN_NS);
    distributed_scan(f, r, day + 14 * HOUR_NS + 45 * MIN_NS);
    exfiltration(f, r, day + 16 * HOUR_NS + 10 * MIN_NS);
}
