/* test_detect.c — the detection engine driven with synthetic flow records:
 * each detector's true positive and the false-positive controls beside it
 * (nmap -O, password guessing, a P2P client, normal DNS, a server every
 * host polls, a backup to a known destination), persistence across a
 * reopen, de-duplication, and bounded memory under a hostile flood.
 *
 * Alerts are read back from the store (what `vigil alerts` reads), never
 * from the engine's memory. Stores live under /dev/shm when it exists. */
#include <criterion/criterion.h>

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alerts.h"
#include "clock.h"
#include "detect.h"
#include "detect_int.h"
#include "err.h"
#include "known.h"
#include "store.h"
#include "store_int.h"

/* Fixtures are positional struct rec literals, read as a table; the
 * trailing fields they leave out are zero on purpose. */
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

#define T0 INT64_C(1704067200) /* 2024-01-01T00:00:00Z (a Monday), seconds */
#define NS(s) ((int64_t)((s) * 1e9))

static char g_dir[64];

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

static void setup(void)
{
    struct stat sb;
    const char *base = stat("/dev/shm", &sb) == 0 && access("/dev/shm", W_OK) == 0 ? "/dev/shm"
                                                                                    : "/tmp";
    snprintf(g_dir, sizeof g_dir, "%s/vigil-detect-XXXXXX", base);
    cr_assert_not_null(mkdtemp(g_dir));
}

static void teardown(void)
{
    nftw(g_dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

TestSuite(detect, .init = setup, .fini = teardown);

/* ---- building records ------------------------------------------------------ */

struct rec {
    const char *src, *dst;
    unsigned sport, dport, proto;
    double start, dur; /* seconds after T0 */
    uint64_t pf, bf, pr, br;
    const char *state, *qname, *direction;
    unsigned qtype;
    bool partial;
    uint64_t flow_id;
};

struct batch {
    Vigil__FlowBatch b;
    Vigil__FlowRecord *recs;
    Vigil__FlowRecord **ptrs;
    uint8_t (*addrs)[8];
    size_t n, cap;
};

static void batch_init(struct batch *x, size_t cap)
{
    memset(x, 0, sizeof *x);
    vigil__flow_batch__init(&x->b);
    x->recs = calloc(cap, sizeof *x->recs);
    x->ptrs = calloc(cap, sizeof *x->ptrs);
    x->addrs = calloc(cap, sizeof *x->addrs);
    x->cap = cap;
    cr_assert(x->recs && x->ptrs && x->addrs);
}

static void batch_free(struct batch *x)
{
    free(x->recs);
    free(x->ptrs);
    free(x->addrs);
}

static uint64_t g_flow_id = 1;

static void v4(const char *text, uint8_t out[4])
{
    struct vigil_addr a;
    cr_assert_eq(addr_parse(text, &a), 0, "%s", text);
    memcpy(out, a.b + 12, 4);
}

static void add(struct batch *x, const struct rec *r)
{
    cr_assert(x->n < x->cap);
    Vigil__FlowRecord *p = &x->recs[x->n];
    vigil__flow_record__init(p);
    v4(r->src, x->addrs[x->n]);
    v4(r->dst, x->addrs[x->n] + 4);
    p->src_ip = (ProtobufCBinaryData){4, x->addrs[x->n]};
    p->dst_ip = (ProtobufCBinaryData){4, x->addrs[x->n] + 4};
    p->flow_id = r->flow_id ? r->flow_id : g_flow_id++;
    p->final = !r->partial;
    p->start_ns = NS(T0) + NS(r->start);
    p->end_ns = p->start_ns + NS(r->dur);
    p->has_ports = r->proto == 6 || r->proto == 17;
    p->src_port = r->sport;
    p->dst_port = r->dport;
    p->proto = r->proto;
    p->pkts_fwd = r->pf;
    p->bytes_fwd = r->bf;
    p->pkts_rev = r->pr;
    p->bytes_rev = r->br;
    p->state = (char *)(r->state ? r->state : "");
    p->direction = (char *)(r->direction ? r->direction : "");
    if (r->qname) {
        p->has_dns = true;
        p->dns_qname = (char *)r->qname;
        p->dns_qtype = r->qtype;
        p->app = (char *)"dns";
    }
    x->ptrs[x->n] = p;
    x->n++;
    x->b.records = x->ptrs;
    x->b.n_records = x->n;
}

/* ---- the engine and its store ------------------------------------------------ */

struct rig {
    struct store *st;
    struct detect *d;
};

static void rig_open(struct rig *g, const struct detect_config *cfg)
{
    char err[512] = "";
    struct store_config sc;
    store_config_defaults(&sc);
    sc.map_size = 64u << 20;
    g->st = store_open(g_dir, &sc, err, sizeof err);
    cr_assert_not_null(g->st, "%s", err);
    struct detect_config c;
    if (cfg)
        c = *cfg;
    else
        detect_config_defaults(&c);
    g->d = detect_create(g->st, &c, err, sizeof err);
    cr_assert_not_null(g->d, "%s", err);
}

static void rig_close(struct rig *g)
{
    detect_destroy(g->d);
    store_close(g->st);
}

static void feed(struct rig *g, struct batch *x, const char *agent)
{
    detect_batch(g->d, &x->b, agent);
    detect_tick(g->d, vigil_monotonic_ns());
}

/* Alerts of type t stored (t < 0: all); the first one's JSON into json. */
static unsigned stored_alerts(struct rig *g, int t, char *json, size_t len)
{
    MDB_txn *txn;
    MDB_cursor *cur;
    MDB_val k, v;
    unsigned n = 0;
    cr_assert_eq(detect_flush(g->d), 0);
    cr_assert_eq(store__detect_begin(g->st, false, &txn), 0);
    cr_assert_eq(mdb_cursor_open(txn, g->st->ddb[DDB_ALERTS], &cur), 0);
    for (int rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        struct alert_row row;
        cr_assert_eq(alerts_decode(k.mv_data, k.mv_size, v.mv_data, v.mv_size, &row), 0);
        if (t >= 0 && row.type != t)
            continue;
        if (n++ == 0 && json)
            snprintf(json, len, "%.*s", (int)row.json_len, row.json);
    }
    mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    return n;
}

/* ---- vertical port scans ------------------------------------------------------ */

Test(detect, port_scan_found_and_nmap_os_is_not)
{
    struct rig g;
    struct batch x;
    char json[4096];
    rig_open(&g, NULL);
    batch_init(&x, 2000);
    /* a SYN scan of 300 ports: SYNs unanswered or refused */
    for (unsigned p = 1; p <= 300; p++)
        add(&x, &(struct rec){"10.9.9.9", "10.0.0.5", 40000, p, 6, p * 0.01, 0, 1, 44, p % 3 ? 0 : 1,
                              p % 3 ? 0 : 40, p % 3 ? "S0" : "REJ"});
    /* nmap -O against another target: ten ports, odd probes */
    for (unsigned p = 0; p < 10; p++)
        add(&x, &(struct rec){"10.9.9.8", "10.0.0.6", 40001, 20 + p * 7, 6, p * 0.1, 0, 2, 88, 1,
                              40, "REJ"});
    feed(&g, &x, "a1");
    cr_assert_eq(stored_alerts(&g, ALERT_PORT_SCAN, json, sizeof json), 1);
    cr_assert(strstr(json, "\"sources\":[\"10.9.9.9\"]"), "%s", json);
    cr_assert(strstr(json, "\"targets\":[\"10.0.0.5\"]"), "%s", json);
    cr_assert(strstr(json, "\"type\":\"port_scan\""), "%s", json);
    cr_assert(strstr(json, "\"evidence\":{"), "%s", json);
    cr_assert_eq(stored_alerts(&g, -1, NULL, 0), 1, "nmap -O must not be a port scan");
    batch_free(&x);
    rig_close(&g);
}

Test(detect, password_guessing_is_neither_scan_nor_beacon)
{
    struct rig g;
    struct batch x;
    rig_open(&g, NULL);
    batch_init(&x, 64);
    /* 11 SSH sessions with payload, irregular gaps 4.5..11 s */
    static const double gap[] = {0, 9.0, 5.6, 4.8, 4.5, 7.2, 11.3, 4.8, 4.8, 8.8, 5.6};
    double t = 0;
    for (unsigned i = 0; i < 11; i++) {
        t += gap[i];
        add(&x, &(struct rec){"192.168.56.1", "192.168.56.103", 55470 + i, 22, 6, t, 4, 22, 3737,
                              15, 3124, "SF"});
    }
    feed(&g, &x, "a1");
    cr_assert_eq(stored_alerts(&g, -1, NULL, 0), 0);
    batch_free(&x);
    rig_close(&g);
}

/* ---- horizontal and fleet-wide scans ------------------------------------------------ */

Test(detect, horizontal_scan_found_and_p2p_is_not)
{
    struct rig g;
    struct batch x;
    char json[4096], dst[32];
    rig_open(&g, NULL);
    batch_init(&x, 4000);
    for (unsigned i = 0; i < 80; i++) {
        snprintf(dst, sizeof dst, "10.1.%u.%u", i / 200, 1 + i % 200);
        add(&x, &(struct rec){"10.7.7.7", dst, 50000 + i, 445, 6, i * 0.05, 0, 2, 88, 0, 0, "S0"});
    }
    /* a P2P client: 500 peers on as many ports, handshakes with payload, and
     * UDP pings with payload to 300 peers on one port, most unanswered */
    for (unsigned i = 0; i < 500; i++) {
        snprintf(dst, sizeof dst, "8%u.%u.%u.%u", i % 9, i % 251, (i * 7) % 253, 1 + i % 250);
        add(&x, &(struct rec){"10.0.2.15", dst, 30000 + i, 1024 + i * 13, 6, i * 0.5, 2, 8, 2400,
                              7, 5200, "SF"});
    }
    for (unsigned i = 0; i < 300; i++) {
        snprintf(dst, sizeof dst, "9%u.%u.%u.%u", i % 9, (i * 3) % 251, i % 253, 1 + i % 250);
        add(&x, &(struct rec){"10.0.2.15", dst, 6346, 6346, 17, i * 0.7, 0, 1, 52, i % 5 == 0,
                              i % 5 == 0 ? 60 : 0});
    }
    feed(&g, &x, "a1");
    cr_assert_eq(stored_alerts(&g, ALERT_HORIZONTAL_SCAN, json, sizeof json), 1);
    cr_assert(strstr(json, "\"sources\":[\"10.7.7.7\"]"), "%s", json);
    cr_assert(strstr(json, "\"port\":445"), "%s", json);
    cr_assert_eq(stored_alerts(&g, -1, NULL, 0), 1, "the P2P client raised something");
    batch_free(&x);
    rig_close(&g);
}

Test(detect, fleet_scan_seen_only_across_agents)
{
    struct rig g;
    struct batch x[4];
    char json[4096], dst[32], agent[8];
    rig_open(&g, NULL);
    /* one source, 8 hosts on each of 4 agents, 2 ports each: under every
     * per-host threshold, 32 hosts of the fleet in all */
    for (unsigned a = 0; a < 4; a++) {
        batch_init(&x[a], 64);
        for (unsigned h = 0; h < 8; h++)
            for (unsigned p = 0; p < 2; p++) {
                snprintf(dst, sizeof dst, "10.%u.0.%u", a, 10 + h);
                add(&x[a], &(struct rec){"203.0.113.9", dst, 41000, p ? 3389 : 22, 6,
                                         a * 20 + h * 2 + p, 0, 1, 44, 0, 0, "S0"});
            }
        snprintf(agent, sizeof agent, "ag%u", a);
        feed(&g, &x[a], agent);
    }
    cr_assert_eq(stored_alerts(&g, -1, json, sizeof json), 1);
    cr_assert(strstr(json, "\"type\":\"fleet_scan\""), "%s", json);
    cr_assert(strstr(json, "\"agents\":[\"ag0\",\"ag1\",\"ag2\",\"ag3\"]"), "%s", json);
    for (unsigned a = 0; a < 4; a++)
        batch_free(&x[a]);
    rig_close(&g);

    /* the same through one agent: nothing (no per-host threshold crossed) */
    teardown();
    setup();
    rig_open(&g, NULL);
    batch_init(&x[0], 128);
    for (unsigned h = 0; h < 32; h++) {
        snprintf(dst, sizeof dst, "10.0.1.%u", 10 + h);
        add(&x[0], &(struct rec){"203.0.113.9", dst, 41000, 22, 6, h, 0, 1, 44, 0, 0, "S0"});
    }
    feed(&g, &x[0], "ag0");
    cr_assert_eq(stored_alerts(&g, -1, NULL, 0), 0);
    batch_free(&x[0]);
    rig_close(&g);
}

Test(detect, distributed_scan_many_sources_one_target)
{
    struct rig g;
    struct batch x;
    char json[4096], src[32];
    rig_open(&g, NULL);
    batch_init(&x, 512);
    /* 10 sources, 30 ports each: 300 ports of one target, no source near 100 */
    for (unsigned s = 0; s < 10; s++)
        for (unsigned p = 0; p < 30; p++) {
            snprintf(src, sizeof src, "198.51.100.%u", 10 + s);
            add(&x, &(struct rec){src, "10.0.0.80", 40000, 1000 + s * 30 + p, 6, s + p * 0.1, 0, 1,
                                  44, 1, 40, "REJ"});
        }
    feed(&g, &x, "a1");
    cr_assert_eq(stored_alerts(&g, ALERT_DISTRIBUTED_SCAN, json, sizeof json), 1);
    cr_assert(strstr(json, "\"targets\":[\"10.0.0.80\"]"), "%s", json);
    cr_assert_eq(stored_alerts(&g, ALERT_PORT_SCAN, NULL, 0), 0);
    batch_free(&x);
    rig_close(&g);
}

/* ---- DNS tunnels ------------------------------------------------------------------- */

Test(detect, dns_name_shape_measures_encoded_data)
{
    size_t sub, off;
    double h;
    dns_name_shape("www.example.com", 15, &sub, &h, &off);
    cr_assert_eq(sub, 3);
    cr_assert_eq(off, 4);
    dns_name_shape("a.b.example.co.uk", 17, &sub, &h, &off);
    cr_assert_eq(off, 4, "co.uk: three labels make the registered domain");
    const char *enc = "mzxw6ytboi2dsnzqgq3tmnrtgq4dkmbwgy2tmnzrgu3tkmzvgiydg.t.example.net";
    dns_name_shape(enc, strlen(enc), &sub, &h, &off);
    cr_assert_eq(sub, 54);
    cr_assert(h > 3.5 && h < 5.0, "entropy %f", h);
}

Test(detect, dns_tunnel_found_and_normal_dns_is_not)
{
    struct rig g;
    struct batch x;
    char json[4096], name[128];
    rig_open(&g, NULL);
    batch_init(&x, 1024);
    /* base32-like labels under one domain, TXT, one name per flow */
    for (unsigned i = 0; i < 200; i++) {
        char *n = malloc(128);
        cr_assert_not_null(n);
        snprintf(n, 128, "%08x%08xq7zk%08x%08xa9mz%08x.%08x.tun.example.org", i * 2654435761u,
                 i * 40503u + 7, i * 97u + 3, i ^ 0x5bd1e995u, i * 31u, i * 1103515245u);
        add(&x, &(struct rec){"10.0.0.33", "10.0.0.2", 30000 + i, 53, 17, i * 0.5, 0.01, 1, 160,
                              1, 260, NULL, n, NULL, 16});
    }
    /* another host: 400 ordinary lookups in 5 minutes */
    for (unsigned i = 0; i < 400; i++) {
        snprintf(name, sizeof name, "www.site%u.example.com", i % 40);
        char *n = strdup(name);
        add(&x, &(struct rec){"10.0.0.34", "10.0.0.2", 20000 + i, 53, 17, i * 0.7, 0.01, 1, 70,
                              1, 130, NULL, n, NULL, 1});
    }
    feed(&g, &x, "a1");
    cr_assert_eq(stored_alerts(&g, -1, json, sizeof json), 1);
    cr_assert(strstr(json, "\"type\":\"dns_tunnel\""), "%s", json);
    cr_assert(strstr(json, "\"sources\":[\"10.0.0.33\"]"), "%s", json);
    cr_assert(strstr(json, "\"top_domain\":\"example.org\""), "%s", json);
    for (size_t i = 0; i < x.n; i++)
        free(x.recs[i].dns_qname);
    batch_free(&x);
    rig_close(&g);
}

/* ---- beacons -------------------------------------------------------------------------- */

Test(detect, beacon_found_and_a_server_everyone_polls_is_not)
{
    struct rig g;
    struct batch x;
    char json[4096], src[32];
    rig_open(&g, NULL);
    batch_init(&x, 1024);
    /* one host calls a controller every 30 s, about 2 KB each time */
    for (unsigned i = 0; i < 12; i++)
        add(&x, &(struct rec){"10.0.0.50", "203.0.113.66", 50000 + i, 443, 6,
                              i * 30.0 + (i % 2) * 0.2, 0.5, 6, 2000 + (i % 3) * 10, 5, 900, "SF"});
    /* twenty hosts poll an update server every 60 s: steady, but everyone's */
    for (unsigned h = 0; h < 20; h++)
        for (unsigned i = 0; i < 10; i++) {
            snprintf(src, sizeof src, "10.0.1.%u", 10 + h);
            add(&x, &(struct rec){src, "198.51.100.123", 40000 + i, 443, 6, h + i * 60.0, 0.3, 5,
                                  700, 5, 1200, "SF"});
        }
    feed(&g, &x, "a1");
    cr_assert_eq(stored_alerts(&g, -1, json, sizeof json), 1);
    cr_assert(strstr(json, "\"type\":\"beacon\""), "%s", json);
    cr_assert(strstr(json, "\"targets\":[\"203.0.113.66\"]"), "%s", json);
    batch_free(&x);
    rig_close(&g);
}

/* The first agent to deliver is hours ahead of the others (a replay, a
 * fleet reconnecting): the server its host polls looks rare until the rest
 * of the fleet's batches arrive, so nothing may be judged on the watermark
 * of the agents heard so far before the engine knows its fleet. */
Test(detect, a_server_everyone_polls_is_not_a_beacon_while_agents_still_arrive)
{
    struct rig g;
    struct batch x;
    char src[32], agent[16];
    rig_open(&g, NULL);
    batch_init(&x, 64);
    for (unsigned i = 0; i < 10; i++) /* every 60 s, then quiet */
        add(&x, &(struct rec){"10.0.2.10", "198.51.100.123", 40000 + i, 123, 17, i * 60.0, 0.1, 1,
                              76, 1, 76, "SF"});
    /* its agent goes on to hours past that: far beyond the longest period */
    add(&x, &(struct rec){"10.0.2.10", "10.0.0.1", 41000, 53, 17, 6 * 3600.0, 0.1, 1, 70, 1, 90,
                          "SF"});
    feed(&g, &x, "a0");
    batch_free(&x);
    struct detect_stats st;
    detect_get_stats(g.d, &st); /* not stored_alerts: its flush judges everything */
    cr_assert_eq(st.alerts_new, 0, "judged rare from the one agent heard so far");
    /* the rest of the fleet, polling the same server over the same hour */
    for (unsigned h = 1; h < 20; h++) {
        batch_init(&x, 16);
        snprintf(src, sizeof src, "10.0.2.%u", 10 + h);
        snprintf(agent, sizeof agent, "a%u", h);
        for (unsigned i = 0; i < 10; i++)
            add(&x, &(struct rec){src, "198.51.100.123", 40000 + i, 123, 17, h + i * 60.0, 0.1, 1,
                                  76, 1, 76, "SF"});
        feed(&g, &x, agent);
        batch_free(&x);
    }
    detect_tick(g.d, vigil_monotonic_ns() + NS(10)); /* quiet: everything is judged */
    detect_get_stats(g.d, &st);
    cr_assert_gt(st.idle_flushes, 0);
    cr_assert_eq(stored_alerts(&g, ALERT_BEACON, NULL, 0), 0, "the whole fleet polls it");
    rig_close(&g);
}

/* ---- exfiltration, persistence, de-duplication ---------------------------------------------- */

Test(detect, exfiltration_to_new_destination_but_not_a_known_backup_after_reopen)
{
    struct rig g;
    struct batch x;
    char json[4096];
    rig_open(&g, NULL);
    batch_init(&x, 64);
    /* day 1: the host talks a little to its backup server */
    add(&x, &(struct rec){"10.0.0.7", "10.0.9.9", 40000, 873, 6, 0, 2, 10, 4000, 10, 9000, "SF"});
    /* and uploads 300 MB to a destination it never used (5 partial records) */
    uint64_t id = 777;
    for (unsigned i = 0; i < 5; i++)
        add(&x, &(struct rec){"10.0.0.7", "198.51.100.200", 41000, 443, 6, 10 + i * 60.0, 60,
                              40000, 60000000, 20000, 800000, "S1", NULL, NULL, 0, i < 4, id});
    feed(&g, &x, "a1");
    cr_assert_eq(stored_alerts(&g, ALERT_EXFILTRATION, json, sizeof json), 1);
    cr_assert(strstr(json, "\"severity\":\"high\""), "%s", json);
    cr_assert(strstr(json, "\"bytes_out\":300000000"), "partial records counted once: %s", json);
    batch_free(&x);
    rig_close(&g);

    /* restart: the backup server is known from the store, the alert ids go on */
    rig_open(&g, NULL);
    batch_init(&x, 64);
    for (unsigned i = 0; i < 3; i++)
        add(&x, &(struct rec){"10.0.0.7", "10.0.9.9", 42000, 873, 6, 86400 + i * 60.0, 60, 80000,
                              100000000, 30000, 1200000, "SF"});
    feed(&g, &x, "a1");
    cr_assert_eq(stored_alerts(&g, ALERT_EXFILTRATION, NULL, 0), 1, "the backup was judged new");
    batch_free(&x);
    struct detect_stats s;
    detect_get_stats(g.d, &s);
    cr_assert_geq(s.known_dsts, 2);
    rig_close(&g);
}

Test(detect, an_alert_is_updated_not_repeated)
{
    struct rig g;
    struct batch x;
    char json[4096];
    rig_open(&g, NULL);
    for (unsigned round = 0; round < 3; round++) {
        batch_init(&x, 512);
        for (unsigned p = 1; p <= 150; p++)
            add(&x, &(struct rec){"10.9.9.9", "10.0.0.5", 40000, round * 150 + p, 6,
                                  round * 400.0 + p * 0.01, 0, 1, 44, 0, 0, "S0"});
        feed(&g, &x, "a1");
        detect_flush(g.d);
        batch_free(&x);
    }
    cr_assert_eq(stored_alerts(&g, ALERT_PORT_SCAN, json, sizeof json), 1);
    cr_assert(strstr(json, "\"id\":1,"), "%s", json);
    struct detect_stats s;
    detect_get_stats(g.d, &s);
    cr_assert_eq(s.alerts_new, 1);
    cr_assert_geq(s.alerts_updated, 1);
    rig_close(&g);
}

/* ---- hostile input ------------------------------------------------------------------------ */

Test(detect, a_flood_stays_within_its_tables)
{
    struct rig g;
    struct batch x;
    struct detect_config c;
    char src[32], dst[32];
    detect_config_defaults(&c);
    c.max_keys = 1024;
    rig_open(&g, &c);
    batch_init(&x, 4096);
    uint32_t r = 12345;
    for (unsigned round = 0; round < 20; round++) {
        x.n = 0;
        for (unsigned i = 0; i < 4096; i++) {
            r = r * 1103515245u + 12345u;
            snprintf(src, sizeof src, "%u.%u.%u.%u", 1 + (r >> 24) % 223, (r >> 16) & 255,
                     (r >> 8) & 255, r & 255);
            r = r * 1103515245u + 12345u;
            snprintf(dst, sizeof dst, "10.%u.%u.%u", (r >> 16) & 255, (r >> 8) & 255, r & 255);
            add(&x, &(struct rec){src, dst, r & 0xffff, (r >> 7) & 0xffff, 6,
                                  round + i * 0.0001, 0, 1, 44, 0, 0, "S0"});
        }
        feed(&g, &x, "a1");
    }
    struct detect_stats s;
    detect_flush(g.d);
    detect_get_stats(g.d, &s);
    cr_assert_eq(s.records, 20u * 4096u);
    cr_assert_gt(s.table_full, 0, "a flood past capacity must be counted");
    cr_assert_leq(g.d->pairs.n, g.d->pairs.cap);
    cr_assert_leq(g.d->srcs.n, g.d->srcs.cap);
    cr_assert_leq(g.d->pool.hwm, g.d->pool.cap);
    batch_free(&x);
    rig_close(&g);
}

Test(detect, bad_records_are_counted_and_skipped)
{
    struct rig g;
    struct batch x;
    rig_open(&g, NULL);
    batch_init(&x, 4);
    add(&x, &(struct rec){"10.0.0.1", "10.0.0.2", 1, 2, 6, 0, 1, 1, 40, 0, 0, "S0"});
    x.recs[0].src_ip.len = 5; /* neither IPv4 nor IPv6 */
    add(&x, &(struct rec){"10.0.0.1", "10.0.0.2", 1, 2, 6, 0, 1, 1, 40, 0, 0, "S0"});
    x.recs[1].end_ns = x.recs[1].start_ns - 1; /* ends before it starts */
    feed(&g, &x, "a1");
    struct detect_stats s;
    detect_get_stats(g.d, &s);
    cr_assert_eq(s.records_bad, 2);
    batch_free(&x);
    rig_close(&g);
}

/* ---- the fleet's view: event time per key and per agent, popularity -------------------------- */

Test(detect, windows_are_bounded_by_their_own_event_time)
{
    struct rig g;
    struct batch x;
    rig_open(&g, NULL);
    batch_init(&x, 256);
    /* one batch holding hours (a replay): 60 ports probed, then 60 more
     * three hours later: two windows of 60, never one of 120 */
    for (unsigned p = 0; p < 120; p++)
        add(&x, &(struct rec){"10.9.9.9", "10.0.0.5", 40000, 1 + p, 6,
                              (p < 60 ? 0 : 3 * 3600.0) + p * 0.5, 0, 1, 44, 0, 0, "S0"});
    feed(&g, &x, "a1");
    cr_assert_eq(stored_alerts(&g, -1, NULL, 0), 0, "a window spanned three hours");
    batch_free(&x);
    rig_close(&g);
}

Test(detect, a_late_agent_keeps_the_window_open)
{
    struct rig g;
    struct batch early[4], scan[4];
    char json[4096], dst[32], agent[8];
    rig_open(&g, NULL);
    /* every agent has delivered the morning: all four are known */
    for (unsigned a = 0; a < 4; a++) {
        batch_init(&early[a], 4);
        snprintf(dst, sizeof dst, "10.%u.0.1", a);
        add(&early[a], &(struct rec){dst, "192.0.2.1", 50000, 443, 6, 3600, 1, 5, 600, 5, 900,
                                     "SF"});
        snprintf(agent, sizeof agent, "ag%u", a);
        feed(&g, &early[a], agent);
    }
    /* at noon one source probes 8 hosts behind each agent; ag0 and ag1
     * deliver it with the rest of their day (hours ahead), ag2 and ag3 only
     * afterwards: the window must not close on ag0's newer records */
    for (unsigned a = 0; a < 4; a++) {
        batch_init(&scan[a], 64);
        for (unsigned h = 0; h < 8; h++) {
            snprintf(dst, sizeof dst, "10.%u.0.%u", a, 10 + h);
            add(&scan[a], &(struct rec){"203.0.113.9", dst, 41000, 3389, 6, 43200 + a * 20 + h, 0,
                                        1, 44, 0, 0, "S0"});
        }
        if (a < 2) {
            snprintf(dst, sizeof dst, "10.%u.0.1", a);
            for (unsigned k = 0; k < 20; k++)
                add(&scan[a], &(struct rec){dst, "192.0.2.1", 50001 + k, 443, 6,
                                            43200 + 600.0 * (k + 1), 1, 5, 600, 5, 900, "SF"});
        }
    }
    for (unsigned a = 0; a < 4; a++) {
        snprintf(agent, sizeof agent, "ag%u", a);
        feed(&g, &scan[a], agent);
    }
    cr_assert_eq(stored_alerts(&g, -1, json, sizeof json), 1);
    cr_assert(strstr(json, "\"type\":\"fleet_scan\""), "%s", json);
    cr_assert(strstr(json, "\"agents\":[\"ag0\",\"ag1\",\"ag2\",\"ag3\"]"), "%s", json);
    for (unsigned a = 0; a < 4; a++) {
        batch_free(&early[a]);
        batch_free(&scan[a]);
    }
    rig_close(&g);
}

Test(detect, ntp_that_every_host_polls_is_judged_on_the_whole_fleet)
{
    struct rig g;
    struct batch hello[20], polls[20];
    char json[4096], src[32], agent[8];
    rig_open(&g, NULL);
    g.d->heard_since_mono = 1; /* the engine has heard from the fleet for long */
    /* every agent has delivered its first minutes */
    for (unsigned h = 0; h < 20; h++) {
        batch_init(&hello[h], 4);
        snprintf(src, sizeof src, "10.0.1.%u", 10 + h);
        add(&hello[h], &(struct rec){src, "192.0.2.1", 50000, 443, 6, 1, 1, 5, 600, 5, 900, "SF"});
        snprintf(agent, sizeof agent, "h%u", h);
        feed(&g, &hello[h], agent);
    }
    /* then each delivers ten NTP polls 1024 s apart, one agent after the
     * other; the first alone looks like a beacon to a rare server. Host 0
     * also calls a server nobody else uses, at the same pace. */
    for (unsigned h = 0; h < 20; h++) {
        batch_init(&polls[h], 32);
        snprintf(src, sizeof src, "10.0.1.%u", 10 + h);
        for (unsigned i = 0; i < 10; i++) {
            add(&polls[h], &(struct rec){src, "192.0.2.123", 123, 123, 17, 60 + h + i * 1024.0,
                                         0.01, 1, 76, 1, 76});
            if (h == 0)
                add(&polls[h], &(struct rec){src, "203.0.113.45", 40000 + i, 443, 6,
                                             90 + i * 1024.0, 0.5, 5, 1100, 5, 700, "SF"});
        }
        snprintf(agent, sizeof agent, "h%u", h);
        feed(&g, &polls[h], agent);
    }
    cr_assert_eq(stored_alerts(&g, -1, json, sizeof json), 1);
    cr_assert(strstr(json, "\"type\":\"beacon\""), "%s", json);
    cr_assert(strstr(json, "\"targets\":[\"203.0.113.45\"]"), "%s", json);
    for (unsigned h = 0; h < 20; h++) {
        batch_free(&hello[h]);
        batch_free(&polls[h]);
    }
    rig_close(&g);
}

Test(detect, exfiltration_counts_what_a_host_starts_outward)
{
    struct rig g;
    struct batch x;
    char json[4096];
    rig_open(&g, NULL);
    batch_init(&x, 16);
    /* a web server's replies to a new visitor: its service, not its upload */
    add(&x, &(struct rec){"198.51.100.7", "10.0.0.80", 51000, 443, 6, 0, 60, 20000, 900000,
                          40000, 50000000, "SF", NULL, "inbound"});
    /* a save of 50 MB to the internal file server */
    add(&x, &(struct rec){"10.0.0.7", "10.0.0.9", 52000, 445, 6, 10, 60, 40000, 50000000, 20000,
                          900000, "SF", NULL, "internal"});
    feed(&g, &x, "a1");
    cr_assert_eq(stored_alerts(&g, -1, NULL, 0), 0);
    /* the same host uploading 50 MB to a new outside destination */
    x.n = 0;
    add(&x, &(struct rec){"10.0.0.7", "198.51.100.200", 53000, 443, 6, 100, 60, 40000, 50000000,
                          20000, 900000, "SF", NULL, "outbound"});
    feed(&g, &x, "a1");
    cr_assert_eq(stored_alerts(&g, ALERT_EXFILTRATION, json, sizeof json), 1);
    cr_assert(strstr(json, "\"sources\":[\"10.0.0.7\"]"), "%s", json);
    cr_assert(strstr(json, "\"targets\":[\"198.51.100.200\"]"), "%s", json);
    batch_free(&x);
    rig_close(&g);
}

Test(detect, a_destination_the_fleet_uses_is_known_to_the_fleet)
{
    struct rig g;
    struct batch x;
    char json[4096], src[32];
    rig_open(&g, NULL);
    batch_init(&x, 64);
    /* the first morning: ten hosts sign in to the office cloud and upload
     * a few MB each (new to each of them, not to the fleet) */
    for (unsigned h = 0; h < 10; h++) {
        snprintf(src, sizeof src, "10.0.2.%u", 10 + h);
        add(&x, &(struct rec){src, "198.18.9.30", 40000, 443, 6, h * 60.0, 1, 6, 900, 6, 4000,
                              "SF", NULL, "outbound"});
        add(&x, &(struct rec){src, "198.18.9.30", 40001, 443, 6, h * 60.0 + 600, 5, 3000,
                              3000000, 300, 20000, "SF", NULL, "outbound"});
    }
    /* one of them uploads as much to a server nobody else uses */
    add(&x, &(struct rec){"10.0.2.10", "203.0.113.200", 41000, 443, 6, 700, 5, 3000, 3000000, 300,
                          20000, "SF", NULL, "outbound"});
    feed(&g, &x, "a1");
    cr_assert_eq(stored_alerts(&g, -1, json, sizeof json), 1);
    cr_assert(strstr(json, "\"targets\":[\"203.0.113.200\"]"), "%s", json);
    batch_free(&x);
    rig_close(&g);
}

Test(detect, a_backup_to_a_server_used_16_hours_earlier_in_the_same_batch)
{
    struct rig g;
    struct batch x;
    char json[4096];
    rig_open(&g, NULL);
    batch_init(&x, 16);
    /* a replay's batch: the 06:00 snapshot check, then the 22:00 upload */
    add(&x, &(struct rec){"10.0.1.10", "192.0.2.40", 40000, 443, 6, 6 * 3600.0, 2, 10, 4000, 10,
                          60000, "SF", NULL, "outbound"});
    add(&x, &(struct rec){"10.0.1.10", "192.0.2.40", 40001, 443, 6, 22 * 3600.0, 300, 40000,
                          80000000, 20000, 600, "SF", NULL, "outbound"});
    /* and an upload as large to a destination it never used */
    add(&x, &(struct rec){"10.0.1.10", "203.0.113.200", 40002, 443, 6, 23 * 3600.0, 300, 40000,
                          80000000, 20000, 600, "SF", NULL, "outbound"});
    feed(&g, &x, "a1");
    cr_assert_eq(stored_alerts(&g, -1, json, sizeof json), 1);
    cr_assert(strstr(json, "\"targets\":[\"203.0.113.200\"]"), "%s", json);
    batch_free(&x);
    rig_close(&g);
}

/* ---- known destinations: forgetting ------------------------------------------ */

TestSuite(known, .init = setup, .fini = teardown);

static void known_write(struct store *st, struct known *k)
{
    MDB_txn *txn;
    cr_assert_eq(store__detect_begin(st, true, &txn), 0);
    cr_assert_eq(known_persist(k, txn, st->ddb[DDB_KNOWN_DSTS]), 0);
    cr_assert_eq(mdb_txn_commit(txn), 0);
    known_persisted(k);
}

/* The stored value of (host, dst): returns its size (0: absent). */
static size_t known_stored(struct store *st, const struct vigil_addr *host,
                           const struct vigil_addr *dst, uint32_t *first, uint32_t *last)
{
    MDB_txn *txn;
    uint8_t key[32];
    memcpy(key, host->b, 16);
    memcpy(key + 16, dst->b, 16);
    MDB_val k = {.mv_size = 32, .mv_data = key}, v;
    cr_assert_eq(store__detect_begin(st, false, &txn), 0);
    size_t n = 0;
    if (mdb_get(txn, st->ddb[DDB_KNOWN_DSTS], &k, &v) == 0) {
        n = v.mv_size;
        const uint8_t *p = v.mv_data;
        *first = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
        *last = n == 8 ? (uint32_t)p[4] << 24 | (uint32_t)p[5] << 16 | (uint32_t)p[6] << 8 | p[7]
                       : *first;
    }
    mdb_txn_abort(txn);
    return n;
}

Test(known, a_pair_unseen_for_the_keep_time_is_forgotten_in_memory_and_store)
{
    char err[512] = "";
    struct detect_stats stats = {0};
    struct hash_key hk = {11, 22};
    struct vigil_addr h, a, b;
    cr_assert_eq(addr_parse("10.0.0.7", &h), 0);
    cr_assert_eq(addr_parse("198.51.100.1", &a), 0);
    cr_assert_eq(addr_parse("198.51.100.2", &b), 0);
    uint64_t hh = hash_siphash13(&hk, h.b, 16), ha = hash_siphash13(&hk, a.b, 16),
             hb = hash_siphash13(&hk, b.b, 16);
    const int64_t day = 86400 * NS_PER_SEC, t0 = 20000 * day + 3600 * NS_PER_SEC;
    const uint32_t t0_s = (uint32_t)(t0 / NS_PER_SEC);

    struct store *st = store_open(g_dir, NULL, err, sizeof err);
    cr_assert_not_null(st, "%s", err);
    struct known *k = known_create(4096, 10 * day, &stats);
    cr_assert_not_null(k);
    cr_assert_eq(known_check(k, &h, hh, &a, ha, t0), BL_DST_NEW);
    cr_assert_eq(known_check(k, &h, hh, &a, ha, t0 + 60 * NS_PER_SEC), BL_DST_KNOWN);
    cr_assert_eq(known_check(k, &h, hh, &b, hb, t0), BL_DST_NEW);
    known_write(st, k);
    uint32_t first, last;
    cr_assert_eq(known_stored(st, &h, &a, &first, &last), 8);
    cr_assert_eq(first, t0_s);
    cr_assert_eq(last, t0_s);

    /* b is used again five days later: its last sighting moves, its first stays */
    known_advance(k, t0 + 5 * day);
    cr_assert_eq(known_check(k, &h, hh, &b, hb, t0 + 5 * day), BL_DST_KNOWN);
    known_write(st, k);
    cr_assert_eq(known_stored(st, &h, &b, &first, &last), 8);
    cr_assert_eq(first, t0_s);
    cr_assert_eq(last, t0_s + 5 * 86400);

    /* twelve days on, a (unseen for 12 > 10 days) is forgotten, b (7) is not */
    known_advance(k, t0 + 12 * day);
    cr_assert_eq(stats.known_dsts, 1);
    cr_assert(known_pending(k), "the store's sweep is due");
    known_write(st, k);
    cr_assert_eq(known_stored(st, &h, &a, &first, &last), 0, "still stored");
    cr_assert_eq(known_stored(st, &h, &b, &first, &last), 8);
    cr_assert_eq(known_check(k, &h, hh, &b, hb, t0 + 12 * day), BL_DST_KNOWN);
    cr_assert_eq(known_check(k, &h, hh, &a, ha, t0 + 12 * day), BL_DST_NEW, "a not forgotten");
    known_write(st, k);
    known_destroy(k);

    /* a restart loads both again (a as first seen on day 12) */
    struct detect_stats stats2 = {0};
    k = known_create(4096, 10 * day, &stats2);
    MDB_txn *txn;
    cr_assert_eq(store__detect_begin(st, false, &txn), 0);
    cr_assert_eq(known_load(k, txn, st->ddb[DDB_KNOWN_DSTS], &hk), 0);
    mdb_txn_abort(txn);
    cr_assert_eq(stats2.known_dsts, 2);
    cr_assert_eq(known_check(k, &h, hh, &a, ha, t0 + 12 * day), BL_DST_KNOWN);
    cr_assert_eq(known_stored(st, &h, &a, &first, &last), 8);
    cr_assert_eq(first, t0_s + 12 * 86400);
    known_destroy(k);
    store_close(st);
}

Test(known, a_full_set_makes_room_once_old_pairs_are_forgotten)
{
    struct detect_stats stats = {0};
    struct hash_key hk = {5, 6};
    const int64_t day = 86400 * NS_PER_SEC, t0 = 20000 * day;
    struct known *k = known_create(1024, 2 * day, &stats);
    cr_assert_not_null(k);
    struct vigil_addr h, d;
    cr_assert_eq(addr_parse("10.0.0.1", &h), 0);
    uint64_t hh = hash_siphash13(&hk, h.b, 16);
    for (unsigned i = 0; i < 1100; i++) {
        cr_assert_eq(addr_parse("203.0.113.1", &d), 0);
        d.b[14] = (uint8_t)(i >> 8), d.b[15] = (uint8_t)i;
        known_check(k, &h, hh, &d, hash_siphash13(&hk, d.b, 16), t0);
        known_persisted(k);
    }
    cr_assert_eq(stats.known_dsts, 1024);
    cr_assert_eq(stats.known_full, 1100 - 1024);
    known_advance(k, t0 + 3 * day);
    cr_assert_eq(stats.known_dsts, 0);
    d.b[15] = 7;
    cr_assert_eq(known_check(k, &h, hh, &d, hash_siphash13(&hk, d.b, 16), t0 + 3 * day),
                 BL_DST_NEW);
    cr_assert_eq(stats.known_dsts, 1, "no room made");
    known_destroy(k);
}
