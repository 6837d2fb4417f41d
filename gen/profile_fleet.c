/* profile_fleet.c — the `fleet` scenario: its hosts and their everyday traffic.
 *
 * The fleet: a public web server, a mail server, a file server, an admin
 * workstation and staff workstations (srv-web, srv-mail, srv-files, adm-01,
 * ws-01...). The servers sit behind one-to-one NAT, so outsiders reach them
 * on every port. Each host's capture holds what its own interface sees.
 *
 * Benign traffic follows an office day in UTC (busy 08:00-18:00 with a dip
 * at lunch, quiet nights, weekends at a tenth); the public web site's
 * visitors follow a softer curve that never drops below a third of its
 * peak. Per host:
 *   - workstations and the admin browse: a DNS lookup through the resolver
 *     (unless cached), then TLS, QUIC or plain HTTP to a few names of a site,
 *     sites drawn by popularity; some lookups fail (NXDOMAIN), some
 *     connections too (no answer, refused, reset);
 *   - mail: IMAPS polls and SMTP submissions to srv-mail; the mail server
 *     receives SMTP from other organisations (checking their SPF records)
 *     and relays outgoing mail;
 *   - SMB between workstations and srv-files; SSH sessions (and the odd
 *     copy) from adm-01 to the servers;
 *   - the office's document cloud: its sync client signs in in the morning,
 *     checks for changes every few minutes and uploads saved documents
 *     (up to a few MB) to the same server all day;
 *   - every host: NTP every 1024 s, an update check every hour, each to
 *     the same servers as every other host (so these periodic flows are
 *     common across the fleet, not a beacon);
 *   - servers: a nightly backup upload (tens of MB) to the backup service,
 *     which they also contact every morning to check their snapshots, so
 *     the destination is one they know;
 *   - public servers: visitors, and now and then an internet-wide scanner
 *     grabbing a banner on the one public port.
 * Every draw comes from --seed through one generator per host, so the
 * benign traffic is identical with and without --no-attacks. */
#include "fleet.h"

#include "dnsmsg.h"

#include "err.h"

#include <arpa/inet.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NTP_A "192.0.2.123"
#define NTP_B "192.0.2.124"
#define UPDATES_IP "192.0.2.80"
#define UPDATES_NAME "updates.example.org"
#define BACKUP_IP "192.0.2.40"
#define BACKUP_NAME "backup.example.net"
#define MAIL_NAME "mail.corp.example"
#define FILES_NAME "files.corp.example"
#define CLOUD_IP "198.18.9.30"
#define CLOUD_NAME "sync.cloud.example.net"

static const char *const role_text[] = {"web server", "mail server", "file server",
                                        "admin workstation", "workstation"};

/* Sites the staff visit, most popular first; each has a few host names. */
static const char *const site_domains[] = {
    "example.com",      "search.example",    "video.example",   "news.example",
    "example.net",      "social.example",    "docs.example.net", "shop.example",
    "maps.example.com", "cloud.example.net", "example.org",     "code.example.org",
    "wiki.example",     "weather.example.org", "bank.test",     "travel.example",
    "music.example",    "forum.example.net", "jobs.example",    "sport.example.com",
    "photos.example",   "learn.example.org", "crm.example.net", "games.test",
};
#define N_SITES (sizeof site_domains / sizeof site_domains[0])
static const char *const site_prefixes[] = {"www", "cdn", "static", "api", "img", "assets"};
#define N_PREFIXES (sizeof site_prefixes / sizeof site_prefixes[0])

/* --- spec helpers ------------------------------------------------------------- */

static void ip_bytes(const char *text, uint8_t out[4])
{
    if (inet_pton(AF_INET, text, out) != 1) {
        fprintf(stderr, "vigil-gen: fleet: bad address %s\n", text);
        abort();
    }
}

static bool in_fleet_net(const uint8_t ip[4])
{
    return ip[0] == 10 && ip[1] == 20;
}

int fleet_host_of(const struct fleet *f, const char *ip)
{
    for (unsigned i = 0; i < f->n; i++)
        if (strcmp(f->host[i].ip, ip) == 0)
            return (int)i;
    return -1;
}

uint16_t fleet_port(struct fleet *f, unsigned i)
{
    uint16_t p = f->host[i].next_port;
    f->host[i].next_port = p >= 60999 ? 32768 : (uint16_t)(p + 1);
    return p;
}

void fleet_name(struct sess_spec *sp, const char *name)
{
    size_t n = strlen(name);
    if (n >= sizeof sp->name)
        n = sizeof sp->name - 1;
    memcpy(sp->name, name, n);
    sp->name[n] = '\0';
}

struct sess_spec fleet_spec(const struct fleet *f, uint8_t kind, uint8_t proto, const char *a,
                            uint16_t pa, const char *b, uint16_t pb, int64_t t0, int64_t rtt_ns)
{
    struct sess_spec sp;
    memset(&sp, 0, sizeof sp);
    struct pkt_ends *e = &sp.ends;
    e->proto = proto;
    e->ipver = 4;
    e->vlan = PKT_VLAN_NONE;
    ip_bytes(a, e->ip[0]);
    ip_bytes(b, e->ip[1]);
    e->port[0] = pa;
    e->port[1] = pb;
    for (int s = 0; s < 2; s++) {
        const uint8_t *ip = e->ip[s];
        e->mac[s][0] = 0x02;
        if (in_fleet_net(ip)) {
            /* A neighbour on the LAN: its own MAC, a full TTL. */
            memcpy(e->mac[s] + 2, ip, 4);
            e->ttl[s] = 64;
        } else {
            /* Beyond the gateway: the gateway's MAC, a TTL worn down by the hops. */
            e->mac[s][5] = 0x01;
            e->ttl[s] = (uint8_t)((ip[3] % 3 == 0 ? 128 : 64) - 5 - (ip[2] + ip[3]) % 14);
        }
    }
    sp.t0 = t0;
    sp.kind = kind;
    sp.rtt_ns = rtt_ns;
    sp.gap_ns = 12000;
    sp.rounds = 1;
    sp.retrans_seg[0] = sp.retrans_seg[1] = -1;
    int ha = fleet_host_of(f, a), hb = fleet_host_of(f, b);
    sp.captures = (ha < 0 ? 0 : UINT64_C(1) << ha) | (hb < 0 ? 0 : UINT64_C(1) << hb);
    return sp;
}

struct sess_spec fleet_tcp(const struct fleet *f, const char *a, uint16_t pa, const char *b,
                           uint16_t pb, int64_t t0, int64_t rtt_ns, uint8_t app, uint8_t end)
{
    struct sess_spec sp = fleet_spec(f, SK_TCP, 6, a, pa, b, pb, t0, rtt_ns);
    sp.app = app;
    sp.end = end;
    sp.tls_kind = TLS_CLIENT_BROWSER;
    /* Pacing: 1 Gbit/s on the LAN, 100 Mbit/s beyond the gateway. */
    sp.gap_ns = in_fleet_net(sp.ends.ip[0]) && in_fleet_net(sp.ends.ip[1]) ? 12000 : 116000;
    return sp;
}

struct sess_spec fleet_dns(struct fleet *f, unsigned i, int64_t t0, const char *name,
                           uint16_t qtype, uint8_t rcode)
{
    struct sess_spec sp = fleet_spec(f, SK_DNS, 17, f->host[i].ip, fleet_port(f, i),
                                     FLEET_RESOLVER, 53, t0, 0);
    /* Most answers come from the resolver's cache in well under a
     * millisecond, the rest after a recursion of tens of milliseconds;
     * which one follows from the time, so no generator is needed here. */
    uint64_t h = (uint64_t)t0 * UINT64_C(0x9e3779b97f4a7c15);
    sp.rtt_ns = h % 100 < 80 ? 250000 + (int64_t)(h >> 40) % 500000
                             : 12 * MS_NS + (int64_t)(h >> 40) % (40 * MS_NS);
    sp.dns_qtype = qtype;
    sp.dns_rcode = rcode;
    fleet_name(&sp, name);
    return sp;
}

void fleet_add(struct fleet *f, struct rng *r, const struct sess_spec *sp)
{
    int e = scn_add(f->sc, sp, rng_u64(r));
    if (e && !f->err)
        f->err = e;
}

/* --- rhythm ---------------------------------------------------------------------- */

static int hour_of(int64_t t)
{
    return (int)(t / HOUR_NS % 24);
}

static bool weekend(int64_t t)
{
    return (t / DAY_NS + 3) % 7 >= 5; /* 1970-01-01 was a Thursday */
}

/* Share of the peak activity of an office, hour by hour (UTC). */
static double office(int64_t t)
{
    static const double by_hour[24] = {0.02, 0.01, 0.01, 0.01, 0.01, 0.02, 0.05, 0.3,
                                       0.8,  1.0,  1.0,  1.0,  0.6,  0.9,  1.0,  1.0,
                                       0.9,  0.7,  0.35, 0.15, 0.1,  0.08, 0.05, 0.03};
    double v = by_hour[hour_of(t)];
    return weekend(t) ? v * 0.1 : v;
}

/* The public site's visitors come from every time zone: low at 03:00, high at 15:00. */
static double public_curve(int64_t t)
{
    double h = (double)(t % DAY_NS) / (double)HOUR_NS;
    double v = 0.33 + 0.67 * (0.5 - 0.5 * cos(2 * M_PI * (h - 3) / 24));
    return weekend(t) ? v * 0.7 : v;
}

static double always(int64_t t)
{
    (void)t;
    return 1.0;
}

/* A Poisson process of `peak_per_hour` events scaled by rate(t) (thinning). */
struct arrivals {
    struct rng *r;
    int64_t t, end;
    double mean_gap_ns;
    double (*rate)(int64_t);
};

static struct arrivals arrivals(struct rng *r, const struct fleet *f, double peak_per_hour,
                                double (*rate)(int64_t))
{
    struct arrivals a = {.r = r, .t = f->sc->start_ns, .end = f->sc->end_ns,
                         .mean_gap_ns = 3600e9 / peak_per_hour, .rate = rate};
    return a;
}

static bool next_arrival(struct arrivals *a, int64_t *t)
{
    for (;;) {
        a->t += (int64_t)rng_exp(a->r, a->mean_gap_ns) + 1;
        if (a->t >= a->end)
            return false;
        if (rng_unit(a->r) < a->rate(a->t)) {
            *t = a->t;
            return true;
        }
    }
}

/* Rank of a draw from a popularity list of n: a few names take most draws. */
static size_t popular(struct rng *r, size_t n)
{
    size_t k = (size_t)rng_pareto(r, 1.0, 0.9) - 1;
    return k < n ? k : (size_t)rng_below(r, n);
}

static uint64_t size_between(struct rng *r, double mu, double sigma, double lo, double hi)
{
    double v = rng_lognormal(r, mu, sigma);
    return (uint64_t)(v < lo ? lo : v > hi ? hi : v);
}

/* Mostly clean closes; now and then no answer, a refusal or a reset. */
static uint8_t tcp_ending(struct rng *r)
{
    double u = rng_unit(r);
    return u < 0.008   ? TEND_S0
           : u < 0.016 ? TEND_REJ
           : u < 0.026 ? TEND_RSTR
           : u < 0.032 ? TEND_RSTO
           : u < 0.65  ? TEND_FIN_CLIENT
                       : TEND_FIN_SERVER;
}

/* --- browsing --------------------------------------------------------------------- */

static void lookup(struct fleet *f, struct rng *r, unsigned i, int64_t *t, const char *name)
{
    struct sess_spec sp = fleet_dns(f, i, *t, name, DNS_TYPE_A, DNS_RCODE_NOERROR);
    fleet_add(f, r, &sp);
    if (rng_chance(r, 0.5)) {
        sp = fleet_dns(f, i, *t + 200000, name, DNS_TYPE_AAAA, DNS_RCODE_NOERROR);
        fleet_add(f, r, &sp);
    }
    *t += sp.rtt_ns + 300000;
}

static void browse_visit(struct fleet *f, struct rng *r, unsigned i, int64_t t)
{
    const char *me = f->host[i].ip;
    if (rng_chance(r, 0.02)) { /* a mistyped or stale name */
        char name[NAME_MAX_LEN];
        snprintf(name, sizeof name, "%s%u.%s", site_prefixes[rng_below(r, N_PREFIXES)],
                 (unsigned)rng_below(r, 90) + 10, site_domains[rng_below(r, N_SITES)]);
        struct sess_spec sp = fleet_dns(f, i, t, name, DNS_TYPE_A, DNS_RCODE_NXDOMAIN);
        fleet_add(f, r, &sp);
        return;
    }
    size_t site = popular(r, N_SITES);
    unsigned conns = 1 + (unsigned)rng_exp(r, 0.8);
    if (conns > 5)
        conns = 5;
    /* Each site sits at its own distance. */
    int64_t rtt = (int64_t)(8 + (site * 37) % 55) * MS_NS;
    for (unsigned c = 0; c < conns; c++) {
        size_t p = c == 0 ? 0 : 1 + (size_t)rng_below(r, N_PREFIXES - 1);
        char name[NAME_MAX_LEN], ip[SCN_ADDR_MAX];
        snprintf(name, sizeof name, "%s.%s", site_prefixes[p], site_domains[site]);
        snprintf(ip, sizeof ip, "198.18.%zu.%zu", site, 10 + p);
        if (!rng_chance(r, 0.45))
            lookup(f, r, i, &t, name);
        double u = rng_unit(r);
        struct sess_spec sp;
        if (u < 0.28) {
            sp = fleet_spec(f, SK_QUIC, 17, me, fleet_port(f, i), ip, 443, t, rtt);
            sp.rounds = (uint16_t)(1 + (unsigned)rng_exp(r, 1.0));
            sp.resp0 = size_between(r, 9.0, 1.3, 300, 3e6);
            sp.draw_later = true;
            sp.quic_close = rng_chance(r, 0.7);
            sp.gap_ns = 80000;
        } else if (u < 0.9) {
            sp = fleet_tcp(f, me, fleet_port(f, i), ip, 443, t, rtt, TAPP_TLS, tcp_ending(r));
            sp.rounds = (uint16_t)(2 + (unsigned)rng_exp(r, 0.7));
            sp.resp0 = 1500 + rng_below(r, 3500); /* the server's handshake flight */
            sp.draw_later = true;
            if (rng_chance(r, 0.02)) { /* a download */
                sp.rounds = 2;
                sp.draw_later = false;
                sp.reqn = 300 + (uint32_t)rng_below(r, 500);
                sp.respn = size_between(r, 12.5, 1.0, 1e5, 8e6);
            } else if (rng_chance(r, 0.02)) { /* a form sent */
                sp.rounds = 2;
                sp.draw_later = false;
                sp.reqn = (uint32_t)size_between(r, 8.5, 1.0, 400, 6e4);
                sp.respn = 400 + rng_below(r, 800);
            }
        } else {
            sp = fleet_tcp(f, me, fleet_port(f, i), ip, 80, t, rtt, TAPP_HTTP, tcp_ending(r));
            sp.rounds = (uint16_t)(1 + (unsigned)rng_exp(r, 0.5));
            sp.resp0 = size_between(r, 8.5, 1.2, 200, 2e6);
            sp.draw_later = true;
        }
        fleet_name(&sp, name);
        fleet_add(f, r, &sp);
        t += (int64_t)rng_range(r, 30, 600) * MS_NS;
    }
}

/* --- office services ---------------------------------------------------------------- */

/* The office's document cloud: the sync client signs in when the user does
 * (07:30 or so), then checks for changes every few minutes and uploads the
 * documents saved. Returns the day's sign-in time. */
static int64_t cloud_signin(struct fleet *f, struct rng *r, unsigned i, int64_t day)
{
    return day + 7 * HOUR_NS + 20 * MIN_NS + (int64_t)rng_below(r, 40 * 60) * SEC_NS +
           (int64_t)(f->host[i].role == ROLE_ADMIN) * 10 * MIN_NS;
}

static void cloud_session(struct fleet *f, struct rng *r, unsigned i, int64_t t, bool upload)
{
    if (rng_chance(r, 0.2))
        lookup(f, r, i, &t, CLOUD_NAME);
    struct sess_spec sp = fleet_tcp(f, f->host[i].ip, fleet_port(f, i), CLOUD_IP, 443, t,
                                    24 * MS_NS, TAPP_TLS, TEND_FIN_CLIENT);
    sp.tls_kind = TLS_CLIENT_TOOL;
    sp.rounds = 2;
    sp.resp0 = 3600;
    if (upload) {
        sp.reqn = (uint32_t)size_between(r, 12.0, 1.2, 2e3, 8e6);
        sp.respn = 700;
    } else {
        sp.reqn = 500 + (uint32_t)rng_below(r, 400);
        sp.respn = 300 + rng_below(r, 3000);
    }
    fleet_name(&sp, CLOUD_NAME);
    fleet_add(f, r, &sp);
}

static void cloud_sync(struct fleet *f, struct rng *r, unsigned i)
{
    int64_t day = f->sc->start_ns - f->sc->start_ns % DAY_NS;
    for (; day < f->sc->end_ns; day += DAY_NS) {
        if (weekend(day))
            continue;
        int64_t t = cloud_signin(f, r, i, day), stop = day + 18 * HOUR_NS;
        if (t >= f->sc->start_ns && t < f->sc->end_ns)
            cloud_session(f, r, i, t, false);
        while ((t += (int64_t)rng_exp(r, 12 * 60e9) + SEC_NS) < stop) {
            if (t >= f->sc->start_ns && t < f->sc->end_ns)
                cloud_session(f, r, i, t, rng_chance(r, 0.12 * office(t)));
        }
    }
}

static void imap_poll(struct fleet *f, struct rng *r, unsigned i, int64_t t)
{
    const char *me = f->host[i].ip, *mail = f->host[f->mail].ip;
    if (rng_chance(r, 0.2))
        lookup(f, r, i, &t, MAIL_NAME);
    struct sess_spec sp = fleet_tcp(f, me, fleet_port(f, i), mail, 993, t, 400000, TAPP_TLS,
                                    TEND_FIN_CLIENT);
    sp.tls_kind = TLS_CLIENT_TOOL;
    sp.rounds = (uint16_t)rng_range(r, 3, 6);
    sp.resp0 = 2500 + rng_below(r, 1500);
    sp.reqn = 60 + (uint32_t)rng_below(r, 120);
    sp.respn = rng_chance(r, 0.06) ? size_between(r, 10.5, 1.2, 2e3, 3e6)
                                   : 200 + rng_below(r, 2000);
    fleet_name(&sp, MAIL_NAME);
    fleet_add(f, r, &sp);
}

static void smtp_submit(struct fleet *f, struct rng *r, unsigned i, int64_t t)
{
    struct sess_spec sp = fleet_tcp(f, f->host[i].ip, fleet_port(f, i), f->host[f->mail].ip,
                                    587, t, 400000, TAPP_RAW, TEND_FIN_CLIENT);
    sp.rounds = 2;
    sp.req0 = 30; /* EHLO */
    sp.resp0 = 220;
    sp.reqn = (uint32_t)size_between(r, 9.5, 1.5, 800, 8e6);
    sp.respn = 40;
    fleet_add(f, r, &sp);
}

static void smb_session(struct fleet *f, struct rng *r, unsigned i, int64_t t)
{
    if (rng_chance(r, 0.1))
        lookup(f, r, i, &t, FILES_NAME);
    struct sess_spec sp = fleet_tcp(f, f->host[i].ip, fleet_port(f, i), f->host[f->files].ip,
                                    445, t, 300000, TAPP_RAW, TEND_FIN_CLIENT);
    sp.rounds = (uint16_t)rng_range(r, 3, 20);
    sp.req0 = 200;
    sp.resp0 = 300;
    sp.draw_later = true;
    if (rng_chance(r, 0.2)) { /* saves a document */
        sp.rounds = 2;
        sp.draw_later = false;
        sp.reqn = (uint32_t)size_between(r, 11.5, 1.2, 5e3, 1e7);
        sp.respn = 120;
    }
    fleet_add(f, r, &sp);
}

static void ssh_session(struct fleet *f, struct rng *r, unsigned i, int64_t t)
{
    unsigned servers[3] = {f->web, f->mail, f->files};
    unsigned s = servers[rng_below(r, 3)];
    struct sess_spec sp = fleet_tcp(f, f->host[i].ip, fleet_port(f, i), f->host[s].ip, 22, t,
                                    350000, TAPP_RAW, TEND_FIN_CLIENT);
    sp.req0 = 41; /* version strings, then the key exchange folded into round 0 */
    sp.resp0 = 1100;
    if (rng_chance(r, 0.1)) { /* copies a file up */
        sp.rounds = 2;
        sp.reqn = (uint32_t)size_between(r, 13.5, 0.8, 1e5, 5e6);
        sp.respn = 80;
    } else { /* an interactive shell: keystrokes out, screenfuls back */
        sp.rounds = (uint16_t)rng_range(r, 20, 150);
        sp.reqn = 36 + 16 * (uint32_t)rng_below(r, 3);
        sp.respn = 60 + rng_below(r, 900);
        sp.think_ns = 0; /* drawn per keystroke */
    }
    fleet_add(f, r, &sp);
}

/* --- what every host does ---------------------------------------------------------- */

static void ntp_polls(struct fleet *f, struct rng *r, unsigned i)
{
    const char *server = i % 2 ? NTP_B : NTP_A;
    /* A daemon past its start-up polls every 1024 s; the phase is the host's own. */
    for (int64_t t = f->sc->start_ns + (int64_t)rng_below(r, 1024) * SEC_NS; t < f->sc->end_ns;
         t += 1024 * SEC_NS + (int64_t)rng_below(r, 2000) * MS_NS) {
        struct sess_spec sp = fleet_spec(f, SK_NTP, 17, f->host[i].ip, 123, server, 123, t,
                                         (int64_t)rng_range(r, 4, 18) * MS_NS);
        fleet_add(f, r, &sp);
    }
}

static void update_checks(struct fleet *f, struct rng *r, unsigned i)
{
    /* Hourly with a random delay, as package timers spread their load. */
    int64_t hour = f->sc->start_ns - f->sc->start_ns % HOUR_NS;
    for (; hour < f->sc->end_ns; hour += HOUR_NS) {
        int64_t t = hour + (int64_t)rng_below(r, 600) * SEC_NS;
        if (t < f->sc->start_ns || t >= f->sc->end_ns)
            continue;
        lookup(f, r, i, &t, UPDATES_NAME);
        struct sess_spec sp = fleet_tcp(f, f->host[i].ip, fleet_port(f, i), UPDATES_IP, 443, t,
                                        22 * MS_NS, TAPP_TLS, TEND_FIN_CLIENT);
        sp.tls_kind = TLS_CLIENT_TOOL;
        sp.rounds = 2;
        sp.resp0 = 3200;
        sp.reqn = 310;
        /* Usually "nothing new"; once or twice a day a package or two. */
        sp.respn = rng_chance(r, 0.06) ? size_between(r, 14.0, 0.8, 2e5, 6e6)
                                       : 2000 + rng_below(r, 400);
        fleet_name(&sp, UPDATES_NAME);
        fleet_add(f, r, &sp);
    }
}

static void backups(struct fleet *f, struct rng *r, unsigned i, unsigned order)
{
    int64_t day = f->sc->start_ns - f->sc->start_ns % DAY_NS;
    for (; day < f->sc->end_ns; day += DAY_NS) {
        /* 06:00: the client lists and checks its snapshots (small). */
        int64_t t = day + 6 * HOUR_NS + (int64_t)order * 10 * MIN_NS +
                    (int64_t)rng_below(r, 120) * SEC_NS;
        for (int pass = 0; pass < 2; pass++) {
            if (t >= f->sc->start_ns && t < f->sc->end_ns) {
                int64_t tt = t;
                lookup(f, r, i, &tt, BACKUP_NAME);
                struct sess_spec sp = fleet_tcp(f, f->host[i].ip, fleet_port(f, i), BACKUP_IP,
                                                443, tt, 18 * MS_NS, TAPP_TLS, TEND_FIN_CLIENT);
                sp.tls_kind = TLS_CLIENT_TOOL;
                sp.resp0 = 3100;
                if (pass == 0) {
                    sp.rounds = 4;
                    sp.reqn = 400;
                    sp.respn = 20000 + rng_below(r, 60000);
                } else { /* 22:00 onwards: the night's incremental upload */
                    sp.rounds = 2;
                    sp.reqn = (uint32_t)size_between(r, 16.8, 0.4, 5e6, 8e7);
                    sp.respn = 600;
                }
                fleet_name(&sp, BACKUP_NAME);
                fleet_add(f, r, &sp);
            }
            t = day + 22 * HOUR_NS + (int64_t)order * 25 * MIN_NS +
                (int64_t)rng_below(r, 180) * SEC_NS;
        }
    }
}

/* --- the public servers --------------------------------------------------------------- */

static void web_visitor(struct fleet *f, struct rng *r, int64_t t)
{
    unsigned i = f->web;
    /* Some regulars (a partner's office behind one address, say) and a
     * crowd of one-off visitors. */
    size_t k = rng_chance(r, 0.3) ? popular(r, 40) : (size_t)rng_below(r, 3000);
    char ip[SCN_ADDR_MAX];
    snprintf(ip, sizeof ip, "198.19.%zu.%zu", k / 254, 1 + k % 254);
    int64_t rtt = (int64_t)(10 + (k * 53) % 140) * MS_NS;
    unsigned conns = rng_chance(r, 0.08) ? 1 : 1 + (unsigned)rng_below(r, 3);
    for (unsigned c = 0; c < conns; c++) {
        uint16_t port = (uint16_t)rng_range(r, 49152, 65535);
        struct sess_spec sp;
        if (conns == 1 && c == 0 && rng_chance(r, 0.08)) { /* http:// redirected to https:// */
            sp = fleet_tcp(f, ip, port, f->host[i].ip, 80, t, rtt, TAPP_HTTP, TEND_FIN_SERVER);
            sp.resp0 = 180;
        } else {
            sp = fleet_tcp(f, ip, port, f->host[i].ip, 443, t, rtt, TAPP_TLS, tcp_ending(r));
            sp.rounds = (uint16_t)(2 + (unsigned)rng_exp(r, 1.5));
            sp.resp0 = 3800;
            sp.draw_later = true;
        }
        sp.tls_kind = (uint8_t)(rng_chance(r, 0.8) ? TLS_CLIENT_BROWSER : TLS_CLIENT_TOOL);
        fleet_name(&sp, "www.corp.example");
        fleet_add(f, r, &sp);
        t += (int64_t)rng_range(r, 40, 900) * MS_NS;
    }
}

static void mail_inbound(struct fleet *f, struct rng *r, int64_t t)
{
    unsigned i = f->mail;
    size_t k = popular(r, 120);
    char ip[SCN_ADDR_MAX], spf[NAME_MAX_LEN];
    snprintf(ip, sizeof ip, "198.51.100.%zu", 1 + k);
    snprintf(spf, sizeof spf, "mx%zu.%s", k % 3, site_domains[k % N_SITES]);
    struct sess_spec sp = fleet_tcp(f, ip, (uint16_t)rng_range(r, 32768, 60999), f->host[i].ip,
                                    25, t, (int64_t)(15 + k % 80) * MS_NS, TAPP_RAW,
                                    TEND_FIN_CLIENT);
    sp.rounds = 2;
    sp.req0 = 40;   /* EHLO */
    sp.resp0 = 260; /* banner and extensions */
    sp.reqn = (uint32_t)size_between(r, 9.0, 1.3, 600, 1.2e7);
    sp.respn = 50;
    fleet_add(f, r, &sp);
    if (rng_chance(r, 0.5)) { /* checks the sender's SPF record */
        struct sess_spec q = fleet_dns(f, i, t + 2 * MS_NS, spf, DNS_TYPE_TXT, 0);
        fleet_add(f, r, &q);
    }
}

static void mail_outbound(struct fleet *f, struct rng *r, int64_t t)
{
    unsigned i = f->mail;
    size_t k = popular(r, 120);
    char ip[SCN_ADDR_MAX], mx[NAME_MAX_LEN];
    snprintf(ip, sizeof ip, "198.51.100.%zu", 1 + k);
    snprintf(mx, sizeof mx, "mx%zu.%s", k % 3, site_domains[k % N_SITES]);
    lookup(f, r, i, &t, mx);
    struct sess_spec sp = fleet_tcp(f, f->host[i].ip, fleet_port(f, i), ip, 25, t,
                                    (int64_t)(15 + k % 80) * MS_NS, TAPP_RAW, tcp_ending(r));
    sp.rounds = 2;
    sp.req0 = 40;
    sp.resp0 = 240;
    sp.reqn = (uint32_t)size_between(r, 9.0, 1.3, 600, 8e6);
    sp.respn = 50;
    fleet_add(f, r, &sp);
}

/* An internet-wide survey grabs the banner of a public port (and nothing else). */
static void banner_grab(struct fleet *f, struct rng *r, unsigned i, uint16_t port, int64_t t)
{
    char ip[SCN_ADDR_MAX];
    snprintf(ip, sizeof ip, "198.18.%u.%u", 128 + (unsigned)rng_below(r, 128),
             1 + (unsigned)rng_below(r, 254));
    uint16_t sport = (uint16_t)rng_range(r, 1024, 65535);
    uint8_t end = rng_chance(r, 0.5) ? TEND_HALFOPEN : TEND_FIN_CLIENT;
    struct sess_spec sp = fleet_tcp(f, ip, sport, f->host[i].ip, port, t,
                                    (int64_t)rng_range(r, 20, 200) * MS_NS,
                                    port == 443 ? TAPP_TLS : TAPP_RAW, end);
    sp.tls_kind = TLS_CLIENT_TOOL;
    sp.req0 = port == 25 ? 10 : 60;
    sp.resp0 = port == 443 ? 3000 : 300;
    fleet_add(f, r, &sp);
}

/* --- per host --------------------------------------------------------------------------- */

static void host_traffic(struct fleet *f, unsigned i)
{
    struct rng r;
    rng_seed(&r, f->o.seed * UINT64_C(0x9e3779b97f4a7c15) + 0x51ed + i);
    const struct fleet_host *h = &f->host[i];
    struct arrivals a;
    int64_t t;

    ntp_polls(f, &r, i);
    update_checks(f, &r, i);

    if (h->role == ROLE_WORKSTATION || h->role == ROLE_ADMIN) {
        double share = h->role == ROLE_ADMIN ? 0.6 : 1.0;
        a = arrivals(&r, f, 75 * share, office);
        while (next_arrival(&a, &t))
            browse_visit(f, &r, i, t);
        a = arrivals(&r, f, 7.5, office);
        while (next_arrival(&a, &t))
            imap_poll(f, &r, i, t);
        a = arrivals(&r, f, 0.8, office);
        while (next_arrival(&a, &t))
            smtp_submit(f, &r, i, t);
        a = arrivals(&r, f, 4, office);
        while (next_arrival(&a, &t))
            smb_session(f, &r, i, t);
        cloud_sync(f, &r, i);
    }
    if (h->role == ROLE_ADMIN) {
        a = arrivals(&r, f, 3, office);
        while (next_arrival(&a, &t))
            ssh_session(f, &r, i, t);
    }
    if (h->role == ROLE_WEB || h->role == ROLE_MAIL || h->role == ROLE_FILES)
        backups(f, &r, i, h->role == ROLE_WEB ? 0 : h->role == ROLE_MAIL ? 1 : 2);
    if (h->role == ROLE_WEB) {
        a = arrivals(&r, f, 110, public_curve);
        while (next_arrival(&a, &t))
            web_visitor(f, &r, t);
        a = arrivals(&r, f, 2, always);
        while (next_arrival(&a, &t))
            banner_grab(f, &r, i, rng_chance(&r, 0.5) ? 443 : 80, t);
    }
    if (h->role == ROLE_MAIL) {
        a = arrivals(&r, f, 40, public_curve);
        while (next_arrival(&a, &t))
            mail_inbound(f, &r, t);
        a = arrivals(&r, f, 12, office);
        while (next_arrival(&a, &t))
            mail_outbound(f, &r, t);
        a = arrivals(&r, f, 1, always);
        while (next_arrival(&a, &t))
            banner_grab(f, &r, i, 25, t);
    }
}

/* --- the fleet ------------------------------------------------------------------------- */

static void layout(struct fleet *f)
{
    struct scenario *sc = f->sc;
    static const struct {
        const char *name, *ip;
        enum fleet_role role;
    } fixed[] = {
        {"srv-web", "10.20.1.10", ROLE_WEB},
        {"srv-mail", "10.20.1.25", ROLE_MAIL},
        {"srv-files", "10.20.1.30", ROLE_FILES},
        {"adm-01", "10.20.2.5", ROLE_ADMIN},
    };
    for (unsigned i = 0; i < f->o.hosts; i++) {
        char name[SCN_NAME_MAX], ip[SCN_ADDR_MAX];
        enum fleet_role role;
        if (i < sizeof fixed / sizeof fixed[0]) {
            snprintf(name, sizeof name, "%s", fixed[i].name);
            snprintf(ip, sizeof ip, "%s", fixed[i].ip);
            role = fixed[i].role;
        } else {
            unsigned w = i - (unsigned)(sizeof fixed / sizeof fixed[0]) + 1;
            snprintf(name, sizeof name, "ws-%02u", w);
            snprintf(ip, sizeof ip, "10.20.2.%u", 10 + w);
            role = ROLE_WORKSTATION;
        }
        scn_add_host(sc, name, ip, role_text[role]);
        f->host[i].role = role;
        snprintf(f->host[i].ip, sizeof f->host[i].ip, "%s", ip);
    }
    f->n = f->o.hosts;
    f->web = 0, f->mail = 1, f->files = 2, f->admin = 3;
    f->first_ws = 4;
}

int fleet_build(struct scenario *sc, const struct fleet_opts *o)
{
    if (o->hosts < FLEET_MIN_HOSTS || o->hosts > FLEET_MAX_HOSTS || o->days < 1)
        return VIGIL_EINVAL;
    struct fleet *f = calloc(1, sizeof *f);
    if (!f)
        return VIGIL_ENOMEM;
    f->sc = sc;
    f->o = *o;
    sc->seed = o->seed;
    sc->start_ns = o->start_ns;
    sc->end_ns = o->start_ns + (int64_t)o->days * DAY_NS;
    snprintf(sc->network, sizeof sc->network, "%s", FLEET_NET);
    snprintf(sc->resolver, sizeof sc->resolver, "%s", FLEET_RESOLVER);
    layout(f);
    struct rng r;
    rng_seed(&r, o->seed ^ UINT64_C(0xf1ee7));
    for (unsigned i = 0; i < f->n; i++)
        f->host[i].next_port = (uint16_t)rng_range(&r, 32768, 60999);
    for (unsigned i = 0; i < f->n; i++)
        host_traffic(f, i);
    if (o->attacks) {
        struct rng ar;
        rng_seed(&ar, o->seed ^ UINT64_C(0xa77ac4));
        fleet_add_attacks(f, &ar);
    }
    int rc = f->err;
    free(f);
    return rc;
}
