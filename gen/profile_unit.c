/* profile_unit.c — the `unit` profile: a small scripted capture for tests.
 *
 * A few hundred packets over about 90 s that cover every session kind at
 * least once — TCP with HTTP and TLS (IPv4, IPv6, 802.1Q), each TCP ending
 * (SF from either side, S0, REJ, RSTO, RSTR, S1), a data segment resent in
 * each direction, DNS over IPv4/IPv6 with NOERROR, NXDOMAIN, SERVFAIL and an
 * unanswered query, QUIC, ICMP and ICMPv6 echo, NTP, one-way syslog — plus
 * two flows built for the agent's timeouts:
 *   - a TLS flow lasting about 76 s with a packet exchange every 5 s, which
 *     a 60 s active timeout reports as partial records of one flow;
 *   - an NTP flow silent for 20 s in the middle, which a 15 s idle timeout
 *     splits in two: the truth lists two flows with the same 5-tuple.
 * The script is fixed; --seed only changes random contents (ISNs, ids,
 * payload bytes, DNS answers). --flows and --duration do not apply. */
#include "profile.h"

#include <stdlib.h>
#include <string.h>

#define SEC INT64_C(1000000000)
#define MS INT64_C(1000000)
#define US INT64_C(1000)

struct unit_state {
    struct sess_spec *specs; /* owned, sorted by t0 */
    size_t n, next;
    uint64_t seed;
};

static struct sess_spec base(int64_t t0, uint8_t kind)
{
    struct sess_spec sp = {0};
    sp.t0 = t0;
    sp.kind = kind;
    sp.rtt_ns = 20 * MS;
    sp.gap_ns = 120 * US;
    sp.rounds = 1;
    sp.retrans_seg[0] = sp.retrans_seg[1] = -1;
    return sp;
}

static void set_name(struct sess_spec *sp, const char *name)
{
    strncpy(sp->name, name, sizeof sp->name - 1);
}

static struct sess_spec tcp(int64_t t0, uint8_t app, uint8_t end, const char *a, uint16_t pa,
                            const char *b, uint16_t pb, uint16_t vlan, const char *name)
{
    struct sess_spec sp = base(t0, SK_TCP);
    profile_ends(&sp.ends, 6, a, pa, b, pb, vlan);
    sp.app = app;
    sp.end = end;
    sp.req0 = 0;
    sp.resp0 = app == TAPP_TLS ? 3800 : 6000;
    sp.reqn = 180;
    sp.respn = 2400;
    if (name)
        set_name(&sp, name);
    return sp;
}

static struct sess_spec dns(int64_t t0, const char *a, uint16_t pa, const char *b, uint16_t vlan,
                            const char *qname, uint16_t qtype, uint8_t rcode)
{
    struct sess_spec sp = base(t0, SK_DNS);
    profile_ends(&sp.ends, 17, a, pa, b, 53, vlan);
    sp.rtt_ns = 2 * MS + 300 * US;
    sp.dns_qtype = qtype;
    sp.dns_rcode = rcode;
    set_name(&sp, qname);
    return sp;
}

static struct sess_spec exchanges(int64_t t0, uint8_t kind, uint8_t proto, const char *a,
                                  uint16_t pa, const char *b, uint16_t pb, uint16_t n,
                                  int64_t every)
{
    struct sess_spec sp = base(t0, kind);
    profile_ends(&sp.ends, proto, a, pa, b, pb, PKT_VLAN_NONE);
    sp.rounds = n;
    sp.think_ns = every;
    return sp;
}

static int by_start(const void *x, const void *y)
{
    const struct sess_spec *a = x, *b = y;
    return a->t0 < b->t0 ? -1 : a->t0 > b->t0;
}

static void *unit_create(const struct gen_opts *o)
{
    enum { MAX = 40 };
    struct unit_state *st = calloc(1, sizeof *st);
    struct sess_spec *v = calloc(MAX, sizeof *v);
    if (!st || !v) {
        free(st);
        free(v);
        return NULL;
    }
    const int64_t T = o->start_ns;
    const char *c4 = "192.168.10.20", *c6 = "2001:db8:10::20";
    size_t n = 0;

    /* DNS lookups: A (NOERROR), AAAA over IPv6, NXDOMAIN on VLAN 200,
     * HTTPS answered SERVFAIL, PTR, and a TXT query that gets no answer. */
    v[n++] = dns(T + 0, c4, 40001, "192.168.10.1", PKT_VLAN_NONE, "www.example.com",
                 1, 0);
    v[n++] = dns(T + 500 * MS, c6, 40003, "2001:db8:10::1", PKT_VLAN_NONE, "v6.example.org",
                 28, 0);
    v[n++] = dns(T + 2200 * MS, "10.200.0.60", 40007, "10.200.0.1", 200,
                 "nosuchhost.corp.test", 1, 3);
    v[n++] = dns(T + 10500 * MS, c4, 40021, "192.168.10.1", PKT_VLAN_NONE, "www.shop.example",
                 65, 2);
    v[n++] = dns(T + 11 * SEC, c4, 40022, "192.168.10.1", PKT_VLAN_NONE,
                 "10.113.0.203.in-addr.arpa", 12, 0);
    v[n] = dns(T + 10 * SEC, c4, 40020, "192.168.10.1", PKT_VLAN_NONE, "_spf.example.net", 16,
               0);
    v[n++].dns_no_reply = true;

    /* HTTP GET with a 60 kB answer, client closes. */
    v[n] = tcp(T + 50 * MS, TAPP_HTTP, TEND_FIN_CLIENT, c4, 40002, "203.0.113.10", 80,
               PKT_VLAN_NONE, "www.example.com");
    v[n++].resp0 = 60000;
    /* TLS over IPv6, two rounds, the server closes. */
    v[n] = tcp(T + 600 * MS, TAPP_TLS, TEND_FIN_SERVER, c6, 40004, "2001:db8:200::443", 443,
               PKT_VLAN_NONE, "v6.example.org");
    v[n].rounds = 2;
    v[n++].tls_kind = TLS_CLIENT_BROWSER;
    /* TLS, three rounds; the client's second data segment is sent twice. */
    v[n] = tcp(T + 1 * SEC, TAPP_TLS, TEND_FIN_CLIENT, c4, 40005, "203.0.113.20", 443,
               PKT_VLAN_NONE, "api.example.net");
    v[n].rounds = 3;
    v[n].tls_kind = TLS_CLIENT_TOOL;
    v[n++].retrans_seg[0] = 1;
    /* HTTP; the server's sixth data segment is sent twice; server closes. */
    v[n] = tcp(T + 1500 * MS, TAPP_HTTP, TEND_FIN_SERVER, c4, 40006, "203.0.113.10", 80,
               PKT_VLAN_NONE, "static.example.com");
    v[n].resp0 = 20000;
    v[n++].retrans_seg[1] = 5;
    /* HTTP on VLAN 100 (IPv4) and on VLAN 300 (IPv6). */
    v[n++] = tcp(T + 2 * SEC, TAPP_HTTP, TEND_FIN_CLIENT, "10.100.0.50", 40008, "10.100.0.5",
                 80, 100, "intranet.corp.test");
    v[n++] = tcp(T + 12 * SEC, TAPP_HTTP, TEND_FIN_CLIENT, "2001:db8:300::50", 40023,
                 "2001:db8:300::5", 8080, 300, "wiki.corp.test");
    /* Half-open (S0) and rejected (REJ) attempts. */
    v[n++] = tcp(T + 3 * SEC, TAPP_RAW, TEND_S0, c4, 40009, "203.0.113.99", 8080,
                 PKT_VLAN_NONE, NULL);
    v[n++] = tcp(T + 3100 * MS, TAPP_RAW, TEND_REJ, c4, 40010, "203.0.113.10", 23,
                 PKT_VLAN_NONE, NULL);
    /* Established, then reset by the initiator (RSTO) / the responder (RSTR). */
    v[n++] = tcp(T + 3500 * MS, TAPP_HTTP, TEND_RSTO, c4, 40011, "203.0.113.10", 80,
                 PKT_VLAN_NONE, "cdn.example.net");
    v[n] = tcp(T + 4 * SEC, TAPP_TLS, TEND_RSTR, c4, 40012, "203.0.113.21", 443, PKT_VLAN_NONE,
               "legacy.bank.test");
    v[n++].tls_kind = TLS_CLIENT_LEGACY;
    /* Established and never closed (S1). */
    v[n++] = tcp(T + 9 * SEC, TAPP_HTTP, TEND_OPEN, c4, 40019, "203.0.113.10", 80,
                 PKT_VLAN_NONE, "poll.example.com");
    /* A long TLS flow: an exchange every 5 s for 75 s. */
    v[n] = tcp(T + 8 * SEC, TAPP_TLS, TEND_FIN_CLIENT, c4, 40018, "203.0.113.22", 443,
               PKT_VLAN_NONE, "push.example.com");
    v[n].rounds = 16;
    v[n].think_ns = 5 * SEC;
    v[n].reqn = 90;
    v[n].respn = 300;
    v[n].tls_kind = TLS_CLIENT_BROWSER;
    v[n++].note = "long flow (~76 s, an exchange every 5 s): a 60 s active timeout reports "
                  "it as partial records of this one flow";

    /* QUIC to UDP/443, two rounds, closed by the client. */
    v[n] = base(T + 4500 * MS, SK_QUIC);
    profile_ends(&v[n].ends, 17, c4, 40013, "203.0.113.30", 443, PKT_VLAN_NONE);
    set_name(&v[n], "www.video.example");
    v[n].rounds = 2;
    v[n].resp0 = 30000;
    v[n].respn = 8000;
    v[n++].quic_close = true;

    /* ICMP echo (4 exchanges) and ICMPv6 echo (3), a second apart. */
    v[n++] = exchanges(T + 5 * SEC, SK_ICMP, 1, c4, 0, "203.0.113.1", 0, 4, 1 * SEC);
    v[n++] = exchanges(T + 5500 * MS, SK_ICMP, 58, c6, 0, "2001:db8:200::1", 0, 3, 1 * SEC);

    /* NTP: 3 exchanges 2 s apart, 20 s of silence, 3 more. */
    v[n] = exchanges(T + 6 * SEC, SK_NTP, 17, c4, 40123, "203.0.113.123", 123, 6, 2 * SEC);
    v[n].split_after = 3;
    v[n].split_gap_ns = 20 * SEC;
    v[n++].note = "NTP conversation with 20 s of silence after its 3rd exchange: a 15 s idle "
                  "timeout splits it into two flows with the same 5-tuple; both parts are "
                  "listed";

    /* One-way syslog: 5 messages 1.5 s apart. */
    v[n++] = exchanges(T + 7 * SEC, SK_SYSLOG, 17, c4, 40514, "192.168.10.5", 514, 5,
                       1500 * MS);

    qsort(v, n, sizeof *v, by_start);
    st->specs = v;
    st->n = n;
    st->seed = o->seed;
    return st;
}

static int64_t unit_next_start(void *p)
{
    struct unit_state *st = p;
    return st->next < st->n ? st->specs[st->next].t0 : INT64_MAX;
}

static void unit_spawn(void *p, struct sess_spec *sp, uint64_t *seed)
{
    struct unit_state *st = p;
    *sp = st->specs[st->next];
    uint64_t mix = st->seed + st->next;
    *seed = rng_splitmix64(&mix);
    st->next++;
}

static void unit_destroy(void *p)
{
    struct unit_state *st = p;
    if (!st)
        return;
    free(st->specs);
    free(st);
}

const struct profile_ops profile_unit = {
    .name = "unit",
    .help = "scripted: every session kind, both timeouts, ~360 packets",
    .create = unit_create,
    .next_start = unit_next_start,
    .spawn = unit_spawn,
    .destroy = unit_destroy,
};
