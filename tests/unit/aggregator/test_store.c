/* test_store.c — the aggregator's storage engine: exactness of rollups and
 * flows against sums computed here independently, exactly-once (duplicates,
 * crashes by SIGKILL), merging of partial records, map growth, retention
 * (flows, rollups, finished capture jobs, alerts beside the detection thread),
 * concurrency with readers, disk full.
 *
 * Stores live under /dev/shm when it exists (fsync is then free; durability
 * against power loss is LMDB's, a SIGKILL only needs the page cache) and are
 * removed at the end of each test. */
#include <criterion/criterion.h>

#include <errno.h>
#include <ftw.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "alerts.h"
#include "capture_job.h"
#include "clock.h"
#include "detect.h"
#include "err.h"
#include "flowcodec.h"
#include "log.h"
#include "journal.h"
#include "query.h"
#include "rank.h"
#include "retention.h"
#include "store.h"
#include "store_int.h"
#include "trail.h"

#define T0 INT64_C(1704067200) /* 2024-01-01T00:00:00Z, seconds */
#define NS(s) ((int64_t)(s) * NS_PER_SEC)

/* ---- scratch directories ------------------------------------------------ */

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void rm_rf(const char *dir)
{
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* The test's store directory, removed after every test even when an
 * assertion ended it early (see the suite's fini). */
static char g_dir[64];
static bool g_mounted;

static void make_dir(char *out, size_t len)
{
    struct stat sb;
    const char *base = stat("/dev/shm", &sb) == 0 && access("/dev/shm", W_OK) == 0 ? "/dev/shm"
                                                                                    : "/tmp";
    snprintf(out, len, "%s/vigil-store-XXXXXX", base);
    cr_assert_not_null(mkdtemp(out));
    snprintf(g_dir, sizeof g_dir, "%s", out);
}

static void cleanup_dir(void)
{
    if (g_mounted)
        umount2(g_dir, MNT_DETACH);
    if (g_dir[0])
        rm_rf(g_dir);
    g_dir[0] = '\0';
    g_mounted = false;
}

TestSuite(store, .fini = cleanup_dir);

static struct store_config test_cfg(void)
{
    struct store_config c;
    store_config_defaults(&c);
    c.map_size = 64u << 20;
    c.close_grace_ns = NS(60);
    c.flush_interval_ns = 0;
    return c;
}

static struct store *open_store(const char *dir, const struct store_config *cfg)
{
    char err[256];
    struct store *s = store_open(dir, cfg, err, sizeof err);
    cr_assert_not_null(s, "store_open: %s", err);
    return s;
}

/* ---- test records ---------------------------------------------------------- */

struct trec {
    unsigned agent; /* index into agent_names */
    uint64_t flow_id;
    bool final;
    int end_reason;
    int64_t start, end; /* ns */
    uint8_t src[4], dst[4];
    bool v6;                  /* then the addresses are src6/dst6 */
    uint8_t src6[16], dst6[16];
    uint16_t sport, dport;
    uint8_t proto;
    const char *app;
    uint64_t pf, bf, pr, br;
    const char *sni; /* metadata, on some records only */
};

static const char *const agent_names[] = {"alpha", "bravo", "charlie"};
static const char *const apps[] = {"", "dns", "tls", "http", "ssh", "quic"};

/* A small deterministic PRNG (splitmix64). */
static uint64_t rng_state;
static uint64_t rnd(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void host_addr(uint8_t out[4], unsigned h)
{
    out[0] = 10;
    out[1] = 0;
    out[2] = (uint8_t)(h >> 8);
    out[3] = (uint8_t)(h + 1);
}

static void to_pb(const struct trec *t, Vigil__FlowRecord *pb)
{
    vigil__flow_record__init(pb);
    pb->flow_id = t->flow_id;
    pb->final = t->final;
    pb->end_reason = (Vigil__EndReason)t->end_reason;
    pb->start_ns = t->start;
    pb->end_ns = t->end;
    pb->src_ip.len = t->v6 ? 16 : 4;
    pb->src_ip.data = (uint8_t *)(t->v6 ? t->src6 : t->src);
    pb->dst_ip.len = t->v6 ? 16 : 4;
    pb->dst_ip.data = (uint8_t *)(t->v6 ? t->dst6 : t->dst);
    pb->has_ports = t->proto == 6 || t->proto == 17;
    pb->src_port = pb->has_ports ? t->sport : 0;
    pb->dst_port = pb->has_ports ? t->dport : 0;
    pb->proto = t->proto;
    pb->pkts_fwd = t->pf;
    pb->bytes_fwd = t->bf;
    pb->pkts_rev = t->pr;
    pb->bytes_rev = t->br;
    pb->app = (char *)(t->app ? t->app : "");
    pb->tls_sni = (char *)(t->sni ? t->sni : "");
}

/* Applies recs[0..n) as one batch of agent `agent`. */
static int apply(struct store *s, unsigned agent, uint64_t seq, const struct trec *recs, size_t n,
                 struct apply_result *res)
{
    Vigil__FlowBatch b;
    Vigil__FlowRecord *pb = calloc(n ? n : 1, sizeof *pb);
    Vigil__FlowRecord **pp = calloc(n ? n : 1, sizeof *pp);
    cr_assert(pb && pp);
    vigil__flow_batch__init(&b);
    b.agent = (char *)agent_names[agent];
    b.seq = seq;
    b.agent_epoch = 7;
    for (size_t i = 0; i < n; i++) {
        to_pb(&recs[i], &pb[i]);
        pp[i] = &pb[i];
    }
    b.n_records = n;
    b.records = pp;
    int rc = store_apply_batch(s, &b, agent_names[agent], res);
    free(pb);
    free(pp);
    return rc;
}

static struct trec mkrec(unsigned agent, uint64_t flow_id, int64_t end_ns, unsigned h1,
                         unsigned h2, uint8_t proto, uint16_t dport, const char *app)
{
    struct trec t;
    memset(&t, 0, sizeof t);
    t.agent = agent;
    t.flow_id = flow_id;
    t.final = true;
    t.end_reason = END_IDLE;
    t.end = end_ns;
    t.start = end_ns - NS(1 + rnd() % 30);
    host_addr(t.src, h1);
    host_addr(t.dst, h2);
    t.sport = (uint16_t)(40000 + rnd() % 20000);
    t.dport = dport;
    t.proto = proto;
    t.app = app;
    t.pf = 1 + rnd() % 50;
    t.bf = t.pf * (40 + rnd() % 1400);
    t.pr = rnd() % 50;
    t.br = t.pr * (40 + rnd() % 1400);
    return t;
}

/* ---- the oracle: groups computed the simple way -------------------------- */

struct ogroup {
    uint8_t key[32];
    uint64_t c[5]; /* bytes out, bytes in, pkts out, pkts in, flows */
};

struct oracle {
    struct ogroup *g;
    size_t n, cap;
    uint64_t total[5];
};

static unsigned klen_of(unsigned dim)
{
    return dim == TOP_PORT ? 3 : dim == TOP_PAIR ? 32 : 16;
}

static void oracle_add(struct oracle *o, unsigned dim, const uint8_t *key, uint64_t bo,
                       uint64_t bi, uint64_t po, uint64_t pi, uint64_t fl)
{
    size_t i;
    for (i = 0; i < o->n; i++)
        if (memcmp(o->g[i].key, key, klen_of(dim)) == 0)
            break;
    if (i == o->n) {
        if (o->n == o->cap) {
            o->cap = o->cap ? o->cap * 2 : 64;
            o->g = realloc(o->g, o->cap * sizeof *o->g);
            cr_assert_not_null(o->g);
        }
        memset(&o->g[i], 0, sizeof o->g[i]);
        memcpy(o->g[i].key, key, klen_of(dim));
        o->n++;
    }
    o->g[i].c[0] += bo;
    o->g[i].c[1] += bi;
    o->g[i].c[2] += po;
    o->g[i].c[3] += pi;
    o->g[i].c[4] += fl;
}

static void v4mapped(uint8_t out[16], const uint8_t v4[4])
{
    memset(out, 0, 16);
    out[10] = out[11] = 0xff;
    memcpy(out + 12, v4, 4);
}

/* Groups of recs (newflow[i]: record i started its flow) whose end lies in
 * [from_s, to_s). */
static void oracle_build(struct oracle *o, unsigned dim, const struct trec *recs,
                         const bool *newflow, size_t n, int64_t from_s, int64_t to_s)
{
    memset(o, 0, sizeof *o);
    for (size_t i = 0; i < n; i++) {
        const struct trec *r = &recs[i];
        int64_t e = r->end / NS_PER_SEC;
        if (e < from_s || e >= to_s)
            continue;
        uint64_t f = newflow[i];
        uint8_t a[16], b[16], key[32];
        if (r->v6) {
            memcpy(a, r->src6, 16);
            memcpy(b, r->dst6, 16);
        } else {
            v4mapped(a, r->src);
            v4mapped(b, r->dst);
        }
        o->total[0] += r->bf;
        o->total[1] += r->br;
        o->total[2] += r->pf;
        o->total[3] += r->pr;
        o->total[4] += f;
        switch (dim) {
        case TOP_HOST:
            oracle_add(o, dim, a, r->bf, r->br, r->pf, r->pr, f);
            if (memcmp(a, b, 16) != 0)
                oracle_add(o, dim, b, r->br, r->bf, r->pr, r->pf, f);
            break;
        case TOP_APP:
            memset(key, 0, 16);
            if (r->app)
                memcpy(key, r->app, strlen(r->app));
            oracle_add(o, dim, key, r->bf, r->br, r->pf, r->pr, f);
            break;
        case TOP_PORT:
            key[0] = r->proto;
            key[1] = (uint8_t)(r->dport >> 8);
            key[2] = (uint8_t)r->dport;
            if (r->proto != 6 && r->proto != 17)
                key[1] = key[2] = 0;
            oracle_add(o, dim, key, r->bf, r->br, r->pf, r->pr, f);
            break;
        case TOP_PAIR:
            if (memcmp(a, b, 16) <= 0) {
                memcpy(key, a, 16);
                memcpy(key + 16, b, 16);
                oracle_add(o, dim, key, r->bf, r->br, r->pf, r->pr, f);
            } else {
                memcpy(key, b, 16);
                memcpy(key + 16, a, 16);
                oracle_add(o, dim, key, r->br, r->bf, r->pr, r->pf, f);
            }
            break;
        }
    }
}

static uint64_t ometric(const uint64_t *c, enum top_order ord)
{
    return ord == TOP_BY_BYTES ? c[0] + c[1] : ord == TOP_BY_PACKETS ? c[2] + c[3] : c[4];
}

static void row_key(unsigned dim, const struct top_row *r, uint8_t key[32])
{
    memset(key, 0, 32);
    switch (dim) {
    case TOP_HOST: memcpy(key, r->key.host.b, 16); break;
    case TOP_APP: memcpy(key, r->key.app, strlen(r->key.app)); break;
    case TOP_PORT:
        key[0] = r->key.proto;
        key[1] = (uint8_t)(r->key.port >> 8);
        key[2] = (uint8_t)r->key.port;
        break;
    case TOP_PAIR:
        memcpy(key, r->key.host.b, 16);
        memcpy(key + 16, r->key.host_b.b, 16);
        break;
    }
}

static const struct ogroup *oracle_find(const struct oracle *o, unsigned dim, const uint8_t *key)
{
    for (size_t i = 0; i < o->n; i++)
        if (memcmp(o->g[i].key, key, klen_of(dim)) == 0)
            return &o->g[i];
    return NULL;
}

static bool last_ranked;   /* the last check_top was answered from a day's ranking */
static bool last_standing; /* ... from the standing trailing ranking */

/* Runs a top query and checks it against the oracle over the range the
 * store says it answered. Returns the result's tier bucket counts. */
static void check_top(struct store *s, const struct trec *recs, const bool *newflow, size_t n,
                      unsigned dim, enum top_order ord, int64_t since_ns, int64_t until_ns,
                      unsigned limit, unsigned buckets[3])
{
    struct top_query q = {.group = (enum top_group)dim, .order = ord, .since_ns = since_ns,
                          .until_ns = until_ns, .limit = limit};
    struct top_result r;
    struct oracle o;

    cr_assert_eq(store_query_top(s, &q, &r), 0);
    last_ranked = r.ranked;
    last_standing = r.standing;
    cr_assert_not(r.truncated);
    cr_assert_eq(r.since_ns % NS(60), 0);
    cr_assert_eq(r.until_ns % NS(60), 0);
    cr_assert_leq(r.since_ns, since_ns);
    cr_assert_geq(r.until_ns, until_ns);
    oracle_build(&o, dim, recs, newflow, n, r.since_ns / NS_PER_SEC, r.until_ns / NS_PER_SEC);

    if (!r.groups_approx) /* else: those of the standing ranking's own range */
        cr_assert_eq(r.groups, o.n, "dim %u: %llu groups, oracle %zu", dim,
                     (unsigned long long)r.groups, o.n);
    cr_assert_eq(r.total.bytes_out, o.total[0]);
    cr_assert_eq(r.total.bytes_in, o.total[1]);
    cr_assert_eq(r.total.pkts_out, o.total[2]);
    cr_assert_eq(r.total.pkts_in, o.total[3]);
    cr_assert_eq(r.total.flows, o.total[4]);
    cr_assert_eq(r.n, o.n < limit ? o.n : limit);

    uint64_t tm = ometric(o.total, ord);
    for (size_t i = 0; i < r.n; i++) {
        uint8_t key[32];
        row_key(dim, &r.rows[i], key);
        const struct ogroup *g = oracle_find(&o, dim, key);
        cr_assert_not_null(g, "dim %u row %zu not in the oracle", dim, i);
        cr_assert_eq(r.rows[i].c.bytes_out, g->c[0], "dim %u row %zu", dim, i);
        cr_assert_eq(r.rows[i].c.bytes_in, g->c[1]);
        cr_assert_eq(r.rows[i].c.pkts_out, g->c[2]);
        cr_assert_eq(r.rows[i].c.pkts_in, g->c[3]);
        cr_assert_eq(r.rows[i].c.flows, g->c[4]);
        double share = tm ? (double)ometric(g->c, ord) / (double)tm : 0.0;
        cr_assert_float_eq(r.rows[i].share, share, 1e-12);
        /* order: metric descending, then key ascending; and nothing left out
         * ranks above the last row */
        if (i > 0) {
            uint8_t pk[32];
            row_key(dim, &r.rows[i - 1], pk);
            const struct ogroup *pg = oracle_find(&o, dim, pk);
            uint64_t a = ometric(pg->c, ord), b = ometric(g->c, ord);
            cr_assert(a > b || (a == b && memcmp(pk, key, klen_of(dim)) < 0));
        }
    }
    if (r.n > 0 && r.n < o.n) {
        uint8_t lk[32];
        row_key(dim, &r.rows[r.n - 1], lk);
        uint64_t last = ometric(oracle_find(&o, dim, lk)->c, ord);
        size_t above = 0;
        for (size_t i = 0; i < o.n; i++)
            if (ometric(o.g[i].c, ord) > last)
                above++;
        cr_assert_leq(above, r.n);
    }
    if (buckets)
        memcpy(buckets, r.buckets, sizeof r.buckets);
    free(o.g);
    top_result_free(&r);
}

/* newflow[i] = record i is the first of its (agent, flow id) in apply order. */
static void mark_new(const struct trec *recs, size_t n, bool *newflow)
{
    for (size_t i = 0; i < n; i++) {
        newflow[i] = true;
        for (size_t j = 0; j < i; j++)
            if (recs[j].agent == recs[i].agent && recs[j].flow_id == recs[i].flow_id) {
                newflow[i] = false;
                break;
            }
    }
}

static void settle(struct store *s)
{
    cr_assert_eq(store_flush(s), 0);
    for (int i = 0; i < 100; i++)
        cr_assert_eq(store_tick(s, NS(1)), 0);
}

/* ~600 records over three days, from three agents; some flows in several
 * records (partials), some self-talk is avoided (host != host). */
static size_t make_dataset(struct trec *recs, size_t cap, int64_t base_s, uint64_t seed)
{
    size_t n = 0;
    rng_state = seed;
    for (int i = 0; i < 500 && n < cap; i++) {
        int64_t end = NS(base_s) + (int64_t)(rnd() % (3 * 86400)) * NS_PER_SEC + (int64_t)i;
        unsigned h1 = (unsigned)(rnd() % 25), h2 = (unsigned)(rnd() % 25);
        if (h2 == h1)
            h2 = (h1 + 1) % 25;
        static const uint16_t ports[] = {53, 443, 80, 22, 8080, 123};
        unsigned pi = (unsigned)(rnd() % 6);
        uint8_t proto = pi == 0 || pi == 5 ? 17 : (rnd() % 10 == 0 ? 1 : 6);
        recs[n] = mkrec((unsigned)(rnd() % 3), 1000 + (uint64_t)i, end, h1, h2, proto, ports[pi],
                        apps[rnd() % 6]);
        if (i % 10 == 3) { /* some IPv6: 2001:db8::<host> */
            struct trec *t = &recs[n];
            t->v6 = true;
            memset(t->src6, 0, 16);
            memset(t->dst6, 0, 16);
            t->src6[0] = t->dst6[0] = 0x20;
            t->src6[1] = t->dst6[1] = 0x01;
            t->src6[2] = t->dst6[2] = 0x0d;
            t->src6[3] = t->dst6[3] = 0xb8;
            t->src6[15] = (uint8_t)(h1 + 1);
            t->dst6[15] = (uint8_t)(h2 + 1);
            memset(t->src, 0, 4);
            memset(t->dst, 0, 4);
        }
        n++;
    }
    /* long flows: 3-4 records each, a minute apart, final last */
    for (int f = 0; f < 30 && n + 4 <= cap; f++) {
        int64_t end = NS(base_s) + (int64_t)(rnd() % (3 * 86400 - 400)) * NS_PER_SEC;
        unsigned h1 = (unsigned)(rnd() % 25), h2 = (h1 + 3) % 25, k = 3 + (unsigned)(f % 2);
        for (unsigned j = 0; j < k; j++) {
            struct trec t = mkrec((unsigned)(f % 3), 900000 + (uint64_t)f,
                                  end + NS(60) * j + 7 * (int64_t)j, h1, h2, 6, 443, "tls");
            t.final = j + 1 == k;
            t.end_reason = t.final ? END_FIN : END_ACTIVE;
            t.start = t.end - NS(50);
            recs[n++] = t;
        }
    }
    return n;
}

static int cmp_end(const void *a, const void *b)
{
    const struct trec *x = a, *y = b;
    return x->end < y->end ? -1 : x->end > y->end;
}

/* Applies recs in batches of `per` per agent, in the order given. */
static void apply_all(struct store *s, const struct trec *recs, size_t n, size_t per,
                      uint64_t seqs[3])
{
    struct trec *buf = malloc(per * sizeof *buf);
    size_t nb[3] = {0};
    struct trec *pending[3];
    for (int a = 0; a < 3; a++)
        pending[a] = malloc(per * sizeof *buf);
    for (size_t i = 0; i < n; i++) {
        unsigned a = recs[i].agent;
        pending[a][nb[a]++] = recs[i];
        if (nb[a] == per) {
            struct apply_result res;
            cr_assert_eq(apply(s, a, ++seqs[a], pending[a], nb[a], &res), 0);
            cr_assert_not(res.duplicate);
            nb[a] = 0;
        }
    }
    for (unsigned a = 0; a < 3; a++)
        if (nb[a]) {
            struct apply_result res;
            cr_assert_eq(apply(s, a, ++seqs[a], pending[a], nb[a], &res), 0);
        }
    for (int a = 0; a < 3; a++)
        free(pending[a]);
    free(buf);
}

/* The oracle must see records in the order the store applied them: per
 * agent, batch by batch. apply_all keeps each agent's order, and flows are
 * per agent, so newflow computed on the original order is the same. */

Test(store, top_is_exact_across_tiers_and_pending, .timeout = 60)
{
    char dir[64];
    make_dir(dir, sizeof dir);
    struct store_config cfg = test_cfg();
    struct store *s = open_store(dir, &cfg);
    static struct trec recs[1200];
    static bool newflow[1200];
    uint64_t seqs[3] = {0};

    size_t n = make_dataset(recs, 1000, T0, 42);
    qsort(recs, n, sizeof *recs, cmp_end);
    mark_new(recs, n, newflow);
    apply_all(s, recs, n, 37, seqs);
    settle(s);

    struct store_stats st;
    store_get_stats(s, &st);
    cr_assert_geq(st.sealed_day_s, T0 + 2 * 86400, "two whole days built (sealed %lld)",
                  (long long)st.sealed_day_s);

    /* Ranges: everything; across a day edge; one containing a whole day plus
     * hours and minutes on both sides; unaligned edges; a single minute; empty. */
    const int64_t ranges[][2] = {
        {NS(T0 - 86400), NS(T0 + 4 * 86400)},
        {NS(T0 + 86400 - 7200), NS(T0 + 86400 + 7200)},
        {NS(T0 + 23 * 3600 + 1800), NS(T0 + 2 * 86400 + 3600 + 900)},
        {NS(T0 + 3660) + 17 * NS_PER_SEC, NS(T0 + 7380) + 1},
        {NS(T0 + 5 * 3600 + 13 * 60), NS(T0 + 30 * 3600 + 47 * 60)},
        {NS(T0 + 86400 + 600), NS(T0 + 86400 + 660)},
        {NS(T0 - 7 * 86400), NS(T0 - 86400)},
    };
    bool used_day = false, used_hour = false;
    for (size_t r = 0; r < sizeof ranges / sizeof ranges[0]; r++)
        for (unsigned dim = 0; dim < TOP_GROUP_COUNT; dim++)
            for (int ord = TOP_BY_BYTES; ord <= TOP_BY_FLOWS; ord++) {
                unsigned b[3];
                check_top(s, recs, newflow, n, dim, (enum top_order)ord, ranges[r][0],
                          ranges[r][1], QUERY_MAX_LIMIT, b);
                check_top(s, recs, newflow, n, dim, (enum top_order)ord, ranges[r][0],
                          ranges[r][1], 5, NULL);
                used_day |= b[2] > 0;
                used_hour |= b[1] > 0;
            }
    cr_assert(used_day && used_hour, "the day and hour tiers answered");

    /* One whole built day: its ranking answers, exactly; a limit past
     * RANK_K merges the rows instead. */
    for (int day = 0; day < 2; day++)
        for (unsigned dim = 0; dim < TOP_GROUP_COUNT; dim++)
            for (int ord = TOP_BY_BYTES; ord <= TOP_BY_FLOWS; ord++) {
                check_top(s, recs, newflow, n, dim, (enum top_order)ord, NS(T0 + day * 86400),
                          NS(T0 + (day + 1) * 86400), 5, NULL);
                cr_assert_eq(last_ranked, dim != TOP_APP, "day %d dim %u: ranked %d", day, dim,
                             last_ranked);
                check_top(s, recs, newflow, n, dim, (enum top_order)ord, NS(T0 + day * 86400),
                          NS(T0 + (day + 1) * 86400), RANK_K + 1, NULL);
                cr_assert_not(last_ranked);
            }

    /* Late data into built hours and days, then more data left pending:
     * answers stay exact. */
    static struct trec late[200];
    size_t nl = 0;
    rng_state = 99;
    for (int i = 0; i < 60; i++)
        late[nl++] = mkrec(1, 500000 + (uint64_t)i, NS(T0 + 3600 + (int64_t)(rnd() % 86400)) + i,
                           (unsigned)(rnd() % 25), 30 + (unsigned)(rnd() % 3), 6, 443, "tls");
    for (size_t i = 0; i < nl; i++)
        recs[n + i] = late[i];
    cr_assert_eq(apply(s, 1, ++seqs[1], late, nl, NULL), 0);
    cr_assert_eq(store_flush(s), 0);
    n += nl;
    nl = 0;
    for (int i = 0; i < 40; i++)
        late[nl++] = mkrec(2, 600000 + (uint64_t)i, NS(T0 + 3 * 86400 + i * 2) + i,
                           (unsigned)(rnd() % 25), 40, 17, 53, "dns");
    for (size_t i = 0; i < nl; i++)
        recs[n + i] = late[i];
    cr_assert_eq(apply(s, 2, ++seqs[2], late, nl, NULL), 0);
    n += nl;
    store_get_stats(s, &st);
    cr_assert_gt(st.pending_rows, 0, "some rows still pending");
    mark_new(recs, n, newflow);
    for (size_t r = 0; r < sizeof ranges / sizeof ranges[0]; r++)
        for (unsigned dim = 0; dim < TOP_GROUP_COUNT; dim++)
            check_top(s, recs, newflow, n, dim, TOP_BY_BYTES, ranges[r][0], ranges[r][1],
                      QUERY_MAX_LIMIT, NULL);
    /* the late rows changed both built days: their rankings are gone, the
     * answers merge the rows and stay exact */
    cr_assert_eq(store_flush(s), 0);
    for (int day = 0; day < 2; day++)
        for (unsigned dim = 0; dim < TOP_GROUP_COUNT; dim++) {
            check_top(s, recs, newflow, n, dim, TOP_BY_BYTES, NS(T0 + day * 86400),
                      NS(T0 + (day + 1) * 86400), 5, NULL);
            cr_assert_not(last_ranked, "day %d dim %u: a stale ranking answered", day, dim);
        }

    /* And after a restart (pending rebuilt from the journal). */
    store_close(s);
    s = open_store(dir, &cfg);
    for (unsigned dim = 0; dim < TOP_GROUP_COUNT; dim++)
        check_top(s, recs, newflow, n, dim, TOP_BY_PACKETS, ranges[0][0], ranges[0][1],
                  QUERY_MAX_LIMIT, NULL);
    store_close(s);
    rm_rf(dir);
}

Test(store, duplicates_are_acked_not_applied, .timeout = 30)
{
    char dir[64];
    make_dir(dir, sizeof dir);
    struct store_config cfg = test_cfg();
    struct store *s = open_store(dir, &cfg);
    struct trec r[3];
    struct apply_result res;

    rng_state = 5;
    for (int i = 0; i < 3; i++)
        r[i] = mkrec(0, 10 + (uint64_t)i, NS(T0 + 100 + i), 1, 2, 6, 443, "tls");
    cr_assert_eq(apply(s, 0, 1, r, 2, &res), 0);
    cr_assert_not(res.duplicate);
    cr_assert_eq(res.stored, 2);
    cr_assert_eq(res.last_seq, 1);
    cr_assert_eq(apply(s, 0, 2, r + 2, 1, &res), 0);
    cr_assert_eq(apply(s, 0, 2, r + 2, 1, &res), 0);
    cr_assert(res.duplicate);
    cr_assert_eq(res.last_seq, 2);
    cr_assert_eq(apply(s, 0, 1, r, 2, &res), 0);
    cr_assert(res.duplicate);
    /* another agent has its own sequence */
    cr_assert_eq(apply(s, 1, 1, r, 1, &res), 0);
    cr_assert_not(res.duplicate);

    struct top_query q = {.group = TOP_APP, .since_ns = 0, .until_ns = NS(T0 + 86400), .limit = 10};
    struct top_result tr;
    cr_assert_eq(store_query_top(s, &q, &tr), 0);
    cr_assert_eq(tr.total.flows, 4);
    cr_assert_eq(tr.total.bytes_out, r[0].bf + r[1].bf + r[2].bf + r[0].bf);
    top_result_free(&tr);

    /* a gap is counted; a new installation (epoch) restarts the sequence */
    cr_assert_eq(apply(s, 0, 5, r, 1, &res), 0);
    struct agent_info *ai;
    size_t na;
    cr_assert_eq(store_query_agents(s, &ai, &na), 0);
    cr_assert_eq(na, 2);
    cr_assert_str_eq(ai[0].name, "alpha");
    cr_assert_eq(ai[0].last_seq, 5);
    cr_assert_eq(ai[0].seq_gaps, 2);
    cr_assert_eq(ai[0].batches, 3);
    cr_assert_eq(ai[0].records, 4);
    cr_assert_str_eq(ai[1].name, "bravo");
    free(ai);

    /* group commit: a duplicate inside the group, a new agent twice */
    {
        Vigil__FlowBatch gb[4];
        Vigil__FlowRecord gpb[4], *gpp[4];
        const Vigil__FlowBatch *bp[4];
        const char *names[4] = {"alpha", "alpha", "delta", "delta"};
        const uint64_t seqs[4] = {6, 6, 1, 2};
        struct apply_result gr[4];
        for (int i = 0; i < 4; i++) {
            to_pb(&r[i % 3], &gpb[i]);
            gpb[i].flow_id = 900 + (uint64_t)i;
            gpp[i] = &gpb[i];
            vigil__flow_batch__init(&gb[i]);
            gb[i].seq = seqs[i];
            gb[i].agent_epoch = 7;
            gb[i].n_records = 1;
            gb[i].records = &gpp[i];
            bp[i] = &gb[i];
        }
        cr_assert_eq(store_apply_batches(s, bp, names, 4, gr), 0);
        cr_assert(!gr[0].duplicate && gr[1].duplicate && !gr[2].duplicate && !gr[3].duplicate);
        cr_assert_eq(gr[0].stored, 1);
        cr_assert_eq(gr[1].stored, 0);
        cr_assert_eq(gr[3].last_seq, 2);
        cr_assert_eq(store_apply_batches(s, bp, names, 4, gr), 0);
        for (int i = 0; i < 4; i++)
            cr_assert(gr[i].duplicate, "all duplicates the second time");
        cr_assert_eq(store_query_agents(s, &ai, &na), 0);
        cr_assert_eq(na, 3);
        cr_assert_str_eq(ai[2].name, "delta");
        cr_assert_eq(ai[2].batches, 2);
        cr_assert_eq(ai[0].last_seq, 6);
        free(ai);
    }

    Vigil__FlowBatch b;
    Vigil__FlowRecord pb, *pp = &pb;
    to_pb(&r[0], &pb);
    vigil__flow_batch__init(&b);
    b.seq = 1;
    b.agent_epoch = 8;
    b.n_records = 1;
    b.records = &pp;
    cr_assert_eq(store_apply_batch(s, &b, "alpha", &res), 0);
    cr_assert_not(res.duplicate);
    cr_assert(res.epoch_reset);
    cr_assert_eq(res.last_seq, 1);
    store_close(s);
    rm_rf(dir);
}

struct flow_list {
    struct store_flow f[64];
    size_t n;
};

static int collect_flow(const struct store_flow *f, void *ctx)
{
    struct flow_list *l = ctx;
    if (l->n < 64)
        l->f[l->n++] = *f;
    return 0;
}

Test(store, partial_records_merge_into_one_flow, .timeout = 30)
{
    char dir[64];
    make_dir(dir, sizeof dir);
    struct store_config cfg = test_cfg();
    struct store *s = open_store(dir, &cfg);
    struct trec p[3];

    rng_state = 11;
    for (int i = 0; i < 3; i++) {
        p[i] = mkrec(0, 77, NS(T0 + 60 * (i + 1)), 4, 9, 6, 443, i == 0 ? "" : "tls");
        p[i].start = NS(T0 + 60 * i + 1);
        p[i].final = i == 2;
        p[i].end_reason = i == 2 ? END_RST : END_ACTIVE;
    }
    p[1].sni = "example.org";
    /* three batches, the flow's records one per batch; while it is open, it
     * shows as one flow of the records so far, by time and by host */
    struct flow_list l = {.n = 0};
    struct flow_query q = {.since_ns = 0, .until_ns = NS(T0 + 86400), .limit = 100};
    struct flow_query_stats qs;
    uint8_t h4[4];
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(apply(s, 0, (uint64_t)i + 1, &p[i], 1, NULL), 0);
        if (i == 2)
            break;
        for (int by_host = 0; by_host < 2; by_host++) {
            struct flow_query oq = q;
            if (by_host) {
                oq.has_host = true;
                host_addr(h4, 9);
                addr_from_v4(&oq.host, h4);
            }
            l.n = 0;
            cr_assert_eq(store_query_flows(s, &oq, collect_flow, &l, NULL), 0);
            cr_assert_eq(l.n, 1);
            cr_assert_eq(l.f[0].records, (uint32_t)i + 1);
            cr_assert_not(l.f[0].rec.final);
            cr_assert_eq(l.f[0].rec.end_ns, p[i].end);
        }
    }

    l.n = 0;
    cr_assert_eq(store_query_flows(s, &q, collect_flow, &l, &qs), 0);
    cr_assert_eq(l.n, 1, "one stored flow, got %zu", l.n);
    const struct flow_record *f = &l.f[0].rec;
    cr_assert_eq(l.f[0].records, 3);
    cr_assert_eq(f->flow_id, 77);
    cr_assert_str_eq(f->agent, "alpha");
    cr_assert_eq(f->pkts_fwd, p[0].pf + p[1].pf + p[2].pf);
    cr_assert_eq(f->bytes_fwd, p[0].bf + p[1].bf + p[2].bf);
    cr_assert_eq(f->pkts_rev, p[0].pr + p[1].pr + p[2].pr);
    cr_assert_eq(f->bytes_rev, p[0].br + p[1].br + p[2].br);
    cr_assert_eq(f->start_ns, p[0].start);
    cr_assert_eq(f->end_ns, p[2].end);
    cr_assert(f->final);
    cr_assert_eq(f->end_reason, END_RST);
    cr_assert_str_eq(f->app, "tls");
    cr_assert_str_eq(f->tls_sni, "example.org");

    /* the host index finds it once, for either host, flushed or not */
    for (int flushed = 0; flushed < 2; flushed++) {
        for (unsigned h = 4; h <= 9; h += 5) {
            struct flow_query hq = q;
            hq.has_host = true;
            host_addr(h4, h);
            addr_from_v4(&hq.host, h4);
            l.n = 0;
            cr_assert_eq(store_query_flows(s, &hq, collect_flow, &l, NULL), 0);
            cr_assert_eq(l.n, 1);
            cr_assert_eq(l.f[0].records, 3);
        }
        cr_assert_eq(store_flush(s), 0);
    }
    /* rollups count the flow once, its bytes in the minutes the records ended */
    struct top_query tq = {.group = TOP_HOST, .since_ns = NS(T0), .until_ns = NS(T0 + 120),
                           .limit = 10};
    struct top_result tr;
    cr_assert_eq(store_query_top(s, &tq, &tr), 0);
    cr_assert_eq(tr.total.flows, 1);
    cr_assert_eq(tr.total.bytes_out, p[0].bf);
    top_result_free(&tr);
    tq.since_ns = NS(T0 + 120);
    tq.until_ns = NS(T0 + 240);
    cr_assert_eq(store_query_top(s, &tq, &tr), 0);
    cr_assert_eq(tr.total.flows, 0);
    cr_assert_eq(tr.total.bytes_out, p[1].bf + p[2].bf);
    top_result_free(&tr);
    store_close(s);
    rm_rf(dir);
}

Test(store, a_flow_left_open_is_stored_once_stale, .timeout = 30)
{
    char dir[64];
    make_dir(dir, sizeof dir);
    struct store_config cfg = test_cfg();
    cfg.open_stale_ns = NS(600);
    cfg.open_sweep_ns = 0;
    struct store *s = open_store(dir, &cfg);
    struct trec open = mkrec(0, 5, NS(T0 + 100), 3, 4, 6, 22, "ssh"), later[20];

    open.final = false;
    open.end_reason = END_ACTIVE;
    cr_assert_eq(apply(s, 0, 1, &open, 1, NULL), 0);
    /* other traffic goes on; the agent never reports flow 5 again */
    for (int i = 0; i < 20; i++)
        later[i] = mkrec(0, 100 + (uint64_t)i, NS(T0 + 200 + 60 * i), 7, 8, 17, 53, "dns");
    cr_assert_eq(apply(s, 0, 2, later, 20, NULL), 0);
    cr_assert_eq(store_tick(s, NS(1)), 0);
    struct store_stats st;
    store_get_stats(s, &st);
    cr_assert_eq(st.open_expired, 1);

    /* still one flow, found by host (its index entry came with the move),
     * also after a restart that rebuilds the pending part from the journal */
    for (int round = 0; round < 2; round++) {
        struct flow_list l = {.n = 0};
        struct flow_query q = {.since_ns = 0, .until_ns = NS(T0 + 86400), .limit = 100,
                               .has_host = true};
        uint8_t h4[4];
        host_addr(h4, 3);
        addr_from_v4(&q.host, h4);
        cr_assert_eq(store_query_flows(s, &q, collect_flow, &l, NULL), 0);
        cr_assert_eq(l.n, 1);
        cr_assert_eq(l.f[0].rec.flow_id, 5);
        cr_assert_not(l.f[0].rec.final);
        struct top_query tq = {.group = TOP_HOST, .since_ns = 0, .until_ns = NS(T0 + 86400),
                               .limit = 100};
        struct top_result tr;
        cr_assert_eq(store_query_top(s, &tq, &tr), 0);
        cr_assert_eq(tr.total.flows, 21);
        top_result_free(&tr);
        store_close(s);
        s = open_store(dir, &cfg);
    }
    store_close(s);
    rm_rf(dir);
}

/* Expected merged flows for a flows query, computed here. */
struct xflow {
    unsigned agent;
    uint64_t flow_id;
    int64_t end;
    uint8_t src[4], dst[4];
    uint16_t sport, dport;
    uint8_t proto;
    const char *app;
    uint64_t bytes;
};

static size_t merged_flows(const struct trec *recs, size_t n, struct xflow *out)
{
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        size_t j;
        for (j = 0; j < m; j++)
            if (out[j].agent == recs[i].agent && out[j].flow_id == recs[i].flow_id)
                break;
        if (j == m) {
            out[m] = (struct xflow){.agent = recs[i].agent, .flow_id = recs[i].flow_id,
                                    .end = recs[i].end, .sport = recs[i].sport,
                                    .dport = recs[i].dport, .proto = recs[i].proto,
                                    .app = recs[i].app};
            memcpy(out[m].src, recs[i].src, 4);
            memcpy(out[m].dst, recs[i].dst, 4);
            m++;
        }
        if (recs[i].end > out[j].end)
            out[j].end = recs[i].end;
        if ((!out[j].app || !out[j].app[0]) && recs[i].app)
            out[j].app = recs[i].app;
        out[j].bytes += recs[i].bf + recs[i].br;
    }
    return m;
}

struct big_list {
    struct store_flow *f;
    size_t n, cap;
};

static int collect_big(const struct store_flow *f, void *ctx)
{
    struct big_list *l = ctx;
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 256;
        l->f = realloc(l->f, l->cap * sizeof *l->f);
        cr_assert_not_null(l->f);
    }
    l->f[l->n++] = *f;
    return 0;
}

static int cmp_x_end(const void *a, const void *b)
{
    const struct xflow *x = a, *y = b;
    return x->end < y->end ? -1 : x->end > y->end;
}

Test(store, flows_query_filters_and_orders_exactly, .timeout = 60)
{
    char dir[64];
    make_dir(dir, sizeof dir);
    struct store_config cfg = test_cfg();
    struct store *s = open_store(dir, &cfg);
    static struct trec recs[1200];
    static struct xflow xf[1200], want[1200];
    uint64_t seqs[3] = {0};

    size_t n = make_dataset(recs, 1000, T0, 7);
    qsort(recs, n, sizeof *recs, cmp_end);
    apply_all(s, recs, n, 50, seqs);
    /* half flushed, half still pending */
    cr_assert_eq(store_flush(s), 0);
    size_t n2 = make_dataset(recs + n, 1200 - n, T0 + 3 * 86400, 8);
    for (size_t i = n; i < n + n2; i++)
        recs[i].flow_id += 5000000; /* distinct from the first set */
    qsort(recs + n, n2, sizeof *recs, cmp_end);
    apply_all(s, recs + n, n2, 50, seqs);
    n += n2;
    size_t m = merged_flows(recs, n, xf);
    qsort(xf, m, sizeof *xf, cmp_x_end);

    struct {
        int host; /* -1 none */
        int port, proto;
        const char *app;
        int64_t since, until;
        unsigned limit;
        bool oldest;
    } cases[] = {
        {-1, -1, -1, NULL, 0, NS(T0 + 10 * 86400), 100000, false},
        {-1, -1, -1, NULL, NS(T0 + 86400), NS(T0 + 2 * 86400 + 1), 25, true},
        {3, -1, -1, NULL, 0, NS(T0 + 10 * 86400), 100000, false},
        {3, -1, -1, NULL, NS(T0 + 3 * 86400 - 4000), NS(T0 + 3 * 86400 + 4000), 100000, true},
        {7, 443, -1, NULL, 0, NS(T0 + 10 * 86400), 10, false},
        {-1, -1, 17, "dns", NS(T0 + 3600), NS(T0 + 5 * 86400), 1000, true},
        {12, 53, 17, NULL, NS(T0 + 5 * 86400) - 1, NS(T0 + 6 * 86400), 1000, false},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        struct flow_query q = {.since_ns = cases[c].since, .until_ns = cases[c].until,
                               .limit = cases[c].limit, .oldest_first = cases[c].oldest};
        uint8_t h4[4] = {0};
        if (cases[c].host >= 0) {
            q.has_host = true;
            host_addr(h4, (unsigned)cases[c].host);
            addr_from_v4(&q.host, h4);
        }
        if (cases[c].port >= 0) {
            q.has_port = true;
            q.port = (uint16_t)cases[c].port;
        }
        if (cases[c].proto >= 0) {
            q.has_proto = true;
            q.proto = (uint8_t)cases[c].proto;
        }
        if (cases[c].app)
            snprintf(q.app, sizeof q.app, "%s", cases[c].app);

        size_t nw = 0;
        for (size_t i = 0; i < m; i++) {
            const struct xflow *x = &xf[cases[c].oldest ? i : m - 1 - i];
            bool ports = x->proto == 6 || x->proto == 17;
            if (x->end < q.since_ns || x->end >= q.until_ns)
                continue;
            if (q.has_host && memcmp(x->src, h4, 4) && memcmp(x->dst, h4, 4))
                continue;
            if (q.has_port && (!ports || (x->sport != q.port && x->dport != q.port)))
                continue;
            if (q.has_proto && x->proto != q.proto)
                continue;
            if (q.app[0] && strcmp(x->app ? x->app : "", q.app) != 0)
                continue;
            if (nw < q.limit)
                want[nw++] = *x;
        }
        struct big_list l = {0};
        struct flow_query_stats st;
        cr_assert_eq(store_query_flows(s, &q, collect_big, &l, &st), 0);
        cr_assert_not(st.truncated);
        cr_assert_eq(l.n, nw, "case %zu: %zu flows, want %zu", c, l.n, nw);
        for (size_t i = 0; i < nw; i++) {
            cr_assert_eq(l.f[i].rec.flow_id, want[i].flow_id, "case %zu row %zu", c, i);
            cr_assert_eq(l.f[i].rec.end_ns, want[i].end);
            cr_assert_eq(l.f[i].rec.bytes_fwd + l.f[i].rec.bytes_rev, want[i].bytes);
            cr_assert_str_eq(l.f[i].rec.agent, agent_names[want[i].agent]);
        }
        free(l.f);
    }

    /* bounded: a tiny row budget truncates, and says so */
    struct flow_query q = {.since_ns = 0, .until_ns = NS(T0 + 10 * 86400), .limit = 1000,
                           .max_rows = 10};
    struct big_list l = {0};
    struct flow_query_stats st;
    cr_assert_eq(store_query_flows(s, &q, collect_big, &l, &st), 0);
    cr_assert(st.truncated);
    cr_assert_leq(st.rows_read, 11);
    free(l.f);
    struct top_query tq = {.group = TOP_PAIR, .since_ns = 0, .until_ns = NS(T0 + 10 * 86400),
                           .limit = 10, .max_rows = 5};
    struct top_result tr;
    cr_assert_eq(store_query_top(s, &tq, &tr), 0);
    cr_assert(tr.truncated);
    top_result_free(&tr);

    struct flow_query bad = {.since_ns = 5, .until_ns = 5, .limit = 1};
    cr_assert_eq(store_query_flows(s, &bad, collect_big, &l, NULL), VIGIL_EINVAL);
    store_close(s);
    rm_rf(dir);
}

/* ---- crashes ------------------------------------------------------------------ */

#define CRASH_BATCHES 1500
#define CRASH_PER 40

/* Batch k (1-based) of the crash workload: short flows (a few of them ten
 * minutes late) plus records of long flows that run across batches (45 s
 * apart, final every 5th). */
static size_t crash_batch(uint64_t k, struct trec *out)
{
    size_t n = 0;
    rng_state = 1000 + k;
    int64_t t = NS(T0) + (int64_t)k * NS(45);
    for (int i = 0; i < CRASH_PER - 8; i++) {
        unsigned h1 = (unsigned)(rnd() % 40), h2 = 40 + (unsigned)(rnd() % 40);
        /* a few arrive late, into minutes flushed already */
        int64_t end = i < 4 ? t - NS(600) + i : t + i * NS(1) + (int64_t)i;
        out[n++] = mkrec(0, k * 1000 + (uint64_t)i, end, h1, h2, i % 4 ? 6 : 17,
                         i % 4 ? 443 : 53, apps[i % 6]);
    }
    for (int j = 0; j < 8; j++) {
        uint64_t gen = (k - 1) / 5; /* a long flow lives for 5 batches */
        struct trec r = mkrec(0, 1000000000ull + gen * 100 + (uint64_t)j, t + NS(40) + j, 90 + j,
                              100 + j, 6, 22, "ssh");
        r.final = k % 5 == 0;
        r.end_reason = r.final ? END_FIN : END_ACTIVE;
        out[n++] = r;
    }
    return n;
}

struct totals {
    uint64_t bf, br, pf, pr, flows;
};

static void expected_totals(uint64_t upto, struct totals *t)
{
    struct trec b[CRASH_PER];
    memset(t, 0, sizeof *t);
    for (uint64_t k = 1; k <= upto; k++) {
        size_t n = crash_batch(k, b);
        for (size_t i = 0; i < n; i++) {
            t->bf += b[i].bf;
            t->br += b[i].br;
            t->pf += b[i].pf;
            t->pr += b[i].pr;
            /* short flows: one record; long flows: new in the first of its 5 batches */
            t->flows += b[i].flow_id < 1000000000ull || (k - 1) % 5 == 0;
        }
    }
}

static uint64_t agent_last_seq(struct store *s)
{
    struct agent_info *ai;
    size_t n;
    cr_assert_eq(store_query_agents(s, &ai, &n), 0);
    uint64_t seq = n ? ai[0].last_seq : 0;
    free(ai);
    return seq;
}

static void check_consistent(struct store *s, uint64_t applied)
{
    struct totals want, raw = {0};
    expected_totals(applied, &want);

    /* raw flows */
    struct big_list l = {0};
    struct flow_query q = {.since_ns = 0, .until_ns = NS(T0 + 86400), .limit = QUERY_MAX_LIMIT};
    struct flow_query_stats st;
    cr_assert_eq(store_query_flows(s, &q, collect_big, &l, &st), 0);
    cr_assert_not(st.truncated);
    for (size_t i = 0; i < l.n; i++) {
        raw.bf += l.f[i].rec.bytes_fwd;
        raw.br += l.f[i].rec.bytes_rev;
        raw.pf += l.f[i].rec.pkts_fwd;
        raw.pr += l.f[i].rec.pkts_rev;
    }
    raw.flows = l.n;
    free(l.f);
    cr_assert_eq(raw.bf, want.bf, "after %llu batches: raw bytes %llu, want %llu",
                 (unsigned long long)applied, (unsigned long long)raw.bf,
                 (unsigned long long)want.bf);
    cr_assert_eq(raw.br, want.br);
    cr_assert_eq(raw.pf, want.pf);
    cr_assert_eq(raw.pr, want.pr);
    cr_assert_eq(raw.flows, want.flows);

    /* rollups: every grouping sums to the same */
    for (unsigned dim = 0; dim < TOP_GROUP_COUNT; dim++) {
        struct top_query tq = {.group = (enum top_group)dim, .since_ns = 0,
                               .until_ns = NS(T0 + 86400), .limit = QUERY_MAX_LIMIT};
        struct top_result tr;
        cr_assert_eq(store_query_top(s, &tq, &tr), 0);
        cr_assert_not(tr.truncated);
        uint64_t out = 0, in = 0, pkts = 0, flows = 0;
        for (size_t i = 0; i < tr.n; i++) {
            out += tr.rows[i].c.bytes_out;
            in += tr.rows[i].c.bytes_in;
            pkts += tr.rows[i].c.pkts_out + tr.rows[i].c.pkts_in;
            flows += tr.rows[i].c.flows;
        }
        cr_assert_eq(tr.total.bytes_out, want.bf, "dim %u after %llu batches", dim,
                     (unsigned long long)applied);
        cr_assert_eq(tr.total.bytes_in, want.br);
        cr_assert_eq(tr.total.flows, want.flows);
        if (dim == TOP_HOST) { /* each byte sent by one host, received by one */
            cr_assert_eq(out, want.bf + want.br);
            cr_assert_eq(in, want.bf + want.br);
            cr_assert_eq(flows, 2 * want.flows);
        } else {
            cr_assert_eq(out + in, want.bf + want.br);
            cr_assert_eq(pkts, want.pf + want.pr);
            cr_assert_eq(flows, want.flows);
        }
        top_result_free(&tr);
    }
}

/* Ingests the crash workload from batch `from` on (after resending the two
 * before it). With stop_after, leaves by _exit right after that batch is
 * committed: no close, no flush, exactly like a kill at that point. */
static void crash_child(const char *dir, uint64_t from, uint64_t stop_after)
    __attribute__((noreturn));
static void crash_child(const char *dir, uint64_t from, uint64_t stop_after)
{
    struct store_config cfg = test_cfg();
    cfg.pending_max_rows = 300; /* flush often, so kills land in flushes too */
    /* late rows wait a little before their flush, so kills land there; when
     * leaving at chosen points, only the row cap flushes (deterministic) */
    cfg.flush_interval_ns = stop_after ? NS(3600) : 5 * NS_PER_MS;
    cfg.compact_slice_rows = 50;
    char err[256];
    struct store *s = store_open(dir, &cfg, err, sizeof err);
    if (!s)
        _exit(3);
    /* resend the last two (duplicates), then go on */
    /* in groups of 1 to 3 batches per transaction */
    static struct trec b[3][CRASH_PER];
    static Vigil__FlowRecord pb[3][CRASH_PER];
    Vigil__FlowRecord *pp[3][CRASH_PER];
    Vigil__FlowBatch fb[3];
    const Vigil__FlowBatch *bp[3];
    const char *names[3] = {"alpha", "alpha", "alpha"};
    struct apply_result res[3];
    for (uint64_t k = from > 2 ? from - 2 : 1; k <= CRASH_BATCHES;) {
        size_t g = 1 + k % 3;
        if (k + g - 1 > CRASH_BATCHES)
            g = CRASH_BATCHES - k + 1;
        for (size_t j = 0; j < g; j++) {
            size_t n = crash_batch(k + j, b[j]);
            vigil__flow_batch__init(&fb[j]);
            for (size_t i = 0; i < n; i++) {
                to_pb(&b[j][i], &pb[j][i]);
                pp[j][i] = &pb[j][i];
            }
            fb[j].seq = k + j;
            fb[j].n_records = n;
            fb[j].records = pp[j];
            bp[j] = &fb[j];
        }
        if (stop_after && k + g - 1 > stop_after)
            g = stop_after - k + 1;
        if (store_apply_batches(s, bp, names, g, res) != 0)
            _exit(4);
        if (stop_after && k + g - 1 == stop_after)
            _exit(0); /* committed; pending rollups die with the process */
        if (store_tick(s, NS_PER_MS) != 0)
            _exit(5);
        k += g;
    }
    store_close(s);
    _exit(0);
}

Test(store, sigkill_during_ingest_loses_and_doubles_nothing, .timeout = 120)
{
    char dir[64];
    make_dir(dir, sizeof dir);
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    srand((unsigned)ts.tv_nsec);
    uint64_t applied = 0;
    int kills = 0;

    for (int round = 0; round < 16 && applied < CRASH_BATCHES; round++) {
        pid_t pid = fork();
        cr_assert_geq(pid, 0);
        if (pid == 0)
            crash_child(dir, applied + 1, 0);
        struct timespec d = {0, (long)(2000 + rand() % 40000) * 1000L};
        nanosleep(&d, NULL);
        int status;
        if (kill(pid, SIGKILL) == 0)
            kills++;
        cr_assert_eq(waitpid(pid, &status, 0), pid);
        cr_assert(WIFSIGNALED(status) || (WIFEXITED(status) && WEXITSTATUS(status) == 0),
                  "child failed: status %d", status);

        struct store_config cfg = test_cfg();
        struct store *s = open_store(dir, &cfg);
        uint64_t seq = agent_last_seq(s);
        cr_assert_geq(seq, applied, "committed batches never go back");
        applied = seq;
        cr_log_info("round %d: %llu batches committed", round, (unsigned long long)applied);
        check_consistent(s, applied);
        store_close(s);
    }
    /* finish the run without kills, then build all tiers and check again */
    pid_t pid = fork();
    if (pid == 0)
        crash_child(dir, applied + 1, 0);
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    struct store_config cfg = test_cfg();
    struct store *s = open_store(dir, &cfg);
    cr_assert_eq(agent_last_seq(s), CRASH_BATCHES);
    settle(s);
    check_consistent(s, CRASH_BATCHES);
    struct store_stats st;
    store_get_stats(s, &st);
    cr_assert_gt(st.sealed_hour_s, 0, "hours were built");
    store_close(s);
    rm_rf(dir);
    cr_log_info("crash test: %d kills", kills);
    cr_assert_geq(kills, 3);
}

/* The same, with the process leaving at chosen points right after a commit
 * (late records then sit in minutes flushed before): deterministic. */
Test(store, exit_after_commit_rebuilds_pending_exactly, .timeout = 60)
{
    char dir[64];
    make_dir(dir, sizeof dir);
    const uint64_t stops[] = {7, 8, 13, 26, 27, 40, 61, 62, 100, 133};
    uint64_t applied = 0;

    for (size_t i = 0; i < sizeof stops / sizeof stops[0]; i++) {
        pid_t pid = fork();
        cr_assert_geq(pid, 0);
        if (pid == 0)
            crash_child(dir, applied + 1, stops[i]);
        int status;
        cr_assert_eq(waitpid(pid, &status, 0), pid);
        cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %d", status);
        struct store_config cfg = test_cfg();
        struct store *s = open_store(dir, &cfg);
        applied = agent_last_seq(s);
        cr_assert_eq(applied, stops[i]);
        check_consistent(s, applied);
        /* the same again after flushing what was rebuilt */
        cr_assert_eq(store_flush(s), 0);
        check_consistent(s, applied);
        store_close(s);
    }
    rm_rf(dir);
}

/* ---- map growth, disk full, readers --------------------------------------- */

static void ingest_many(struct store *s, unsigned agent, uint64_t *seq, size_t batches,
                        size_t per, int64_t t0, struct totals *tot)
{
    struct trec *b = malloc(per * sizeof *b);
    for (size_t k = 0; k < batches; k++) {
        rng_state = 77 + *seq * 31;
        for (size_t i = 0; i < per; i++) {
            b[i] = mkrec(agent, *seq * 100000 + i, t0 + (int64_t)(k * per + i) * NS_PER_MS * 50,
                         (unsigned)(rnd() % 500), 500 + (unsigned)(rnd() % 500), 6, 443, "tls");
            if (tot) {
                tot->bf += b[i].bf;
                tot->br += b[i].br;
                tot->flows++;
            }
        }
        struct apply_result res;
        int rc = apply(s, agent, ++*seq, b, per, &res);
        cr_assert_eq(rc, 0, "apply: %s", vigil_strerror(rc));
    }
    free(b);
}

static void check_app_totals(struct store *s, const struct totals *t)
{
    struct top_query tq = {.group = TOP_APP, .since_ns = 0, .until_ns = NS(T0 + 30 * 86400),
                           .limit = 10};
    struct top_result tr;
    cr_assert_eq(store_query_top(s, &tq, &tr), 0);
    cr_assert_eq(tr.total.bytes_out, t->bf);
    cr_assert_eq(tr.total.bytes_in, t->br);
    cr_assert_eq(tr.total.flows, t->flows);
    top_result_free(&tr);
}

Test(store, map_grows_from_one_mib, .timeout = 60)
{
    char dir[64];
    make_dir(dir, sizeof dir);
    struct store_config cfg = test_cfg();
    cfg.map_size = 1u << 20;
    struct store *s = open_store(dir, &cfg);
    struct totals t = {0};
    uint64_t seq = 0;

    ingest_many(s, 0, &seq, 60, 500, NS(T0), &t);
    cr_assert_eq(store_flush(s), 0);
    struct store_stats st;
    store_get_stats(s, &st);
    cr_assert_gt(st.map_grows, 0);
    cr_assert_gt(st.map_size, 1u << 20);
    check_app_totals(s, &t);
    store_close(s);

    /* reopening keeps the grown map and the data */
    s = open_store(dir, &cfg);
    check_app_totals(s, &t);
    store_close(s);
    rm_rf(dir);
}

Test(store, disk_full_pauses_then_resumes, .timeout = 60)
{
    char dir[64];
    make_dir(dir, sizeof dir);
    if (mount("tmpfs", dir, "tmpfs", 0, "size=3m,mode=0700") != 0)
        cr_skip_test("needs to mount a small tmpfs (root): %s", strerror(errno));
    g_mounted = true;
    char filler[128], sub[96];
    snprintf(filler, sizeof filler, "%s/filler", dir);
    snprintf(sub, sizeof sub, "%s/db", dir);
    FILE *f = fopen(filler, "w");
    cr_assert_not_null(f);
    static char zero[1 << 16];
    for (int i = 0; i < 16; i++) /* 1 MiB to give back later */
        fwrite(zero, 1, sizeof zero, f);
    fclose(f);

    struct store_config cfg = test_cfg();
    cfg.map_size = 32u << 20; /* more than the disk */
    struct store *s = open_store(sub, &cfg);
    struct totals t = {0};
    uint64_t seq = 0;
    int rc = 0;
    struct trec b[200];
    for (int k = 0; k < 400 && rc == 0; k++) {
        rng_state = (uint64_t)k;
        for (int i = 0; i < 200; i++)
            b[i] = mkrec(0, (uint64_t)k * 1000 + (uint64_t)i, NS(T0 + k) + i, 1 + (unsigned)i,
                         300, 6, 443, "tls");
        rc = apply(s, 0, seq + 1, b, 200, NULL);
        if (rc == 0) {
            seq++;
            for (int i = 0; i < 200; i++) {
                t.bf += b[i].bf;
                t.br += b[i].br;
                t.flows++;
            }
        }
    }
    cr_assert(rc == STORE_ENOSPC || rc == VIGIL_EIO, "disk full reported (%s)",
              vigil_strerror(rc));
    /* not applied: the sequence did not move */
    cr_assert_eq(agent_last_seq(s), seq);
    unlink(filler);
    rc = apply(s, 0, seq + 1, b, 200, NULL);
    cr_log_info("disk full: retry after freeing space: %s", vigil_strerror(rc));
    if (rc == VIGIL_EIO) { /* LMDB gave up on the environment: reopen, as documented */
        store_close(s);
        s = open_store(sub, &cfg);
        rc = apply(s, 0, seq + 1, b, 200, NULL);
    }
    cr_assert_eq(rc, 0, "resumes once space is back: %s", vigil_strerror(rc));
    for (int i = 0; i < 200; i++) {
        t.bf += b[i].bf;
        t.br += b[i].br;
        t.flows++;
    }
    check_app_totals(s, &t);
    store_close(s);
}

struct holder {
    struct store *s;
    int hold_ms;
    volatile int released;
    volatile int holding;
};

static void *hold_snapshot(void *arg)
{
    struct holder *h = arg;
    MDB_txn *txn;
    if (store__snapshot_begin(h->s, &txn) != 0)
        return NULL;
    store__snapshot_unlock(h->s);
    h->holding = 1;
    struct timespec d = {h->hold_ms / 1000, (long)(h->hold_ms % 1000) * 1000000L};
    nanosleep(&d, NULL);
    h->released = 1;
    store__snapshot_end(h->s, txn);
    return NULL;
}

Test(store, a_reader_never_blocks_ingest, .timeout = 60)
{
    char dir[64];
    make_dir(dir, sizeof dir);
    struct store_config cfg = test_cfg();
    struct store *s = open_store(dir, &cfg);
    struct totals t = {0};
    uint64_t seq = 0;

    ingest_many(s, 0, &seq, 5, 200, NS(T0), &t);
    struct holder h = {.s = s, .hold_ms = 3000};
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, hold_snapshot, &h), 0);
    while (!h.holding)
        sched_yield();
    /* plenty of commits (and page reuse pressure) while the snapshot is held */
    ingest_many(s, 0, &seq, 100, 200, NS(T0 + 3600), &t);
    cr_assert_eq(store_flush(s), 0);
    cr_assert_not(h.released, "ingest finished while the reader still held its snapshot");
    pthread_join(th, NULL);
    check_app_totals(s, &t);

    /* The map must grow while a query holds it: ingest waits for it (bounded),
     * then goes on. */
    store_close(s);
    rm_rf(dir);
    make_dir(dir, sizeof dir);
    cfg.map_size = 1u << 20;
    s = open_store(dir, &cfg);
    memset(&t, 0, sizeof t);
    seq = 0;
    h = (struct holder){.s = s, .hold_ms = 300};
    cr_assert_eq(pthread_create(&th, NULL, hold_snapshot, &h), 0);
    while (!h.holding)
        sched_yield();
    ingest_many(s, 0, &seq, 40, 500, NS(T0), &t);
    pthread_join(th, NULL);
    check_app_totals(s, &t);
    store_close(s);
    rm_rf(dir);
}

struct racer {
    struct store *s;
    volatile int stop;
    unsigned queries;
    uint64_t last_flows;
    int failed;
    char why[160];
};

/* Queries while the writer ingests and flushes: each answer is one snapshot
 * of LMDB plus the pending rows of the same instant, so within it every host
 * byte is sent once and received once, and totals never go back. */
static void *query_loop(void *arg)
{
    struct racer *r = arg;
    while (!r->stop && !r->failed) {
        struct top_query q = {.group = TOP_HOST, .since_ns = 0, .until_ns = NS(T0 + 30 * 86400),
                              .limit = QUERY_MAX_LIMIT};
        struct top_result tr;
        if (store_query_top(r->s, &q, &tr) != 0) {
            r->failed = 1;
            snprintf(r->why, sizeof r->why, "query failed");
            break;
        }
        uint64_t out = 0, in = 0;
        for (size_t i = 0; i < tr.n; i++) {
            out += tr.rows[i].c.bytes_out;
            in += tr.rows[i].c.bytes_in;
        }
        uint64_t all = tr.total.bytes_out + tr.total.bytes_in;
        if (!tr.truncated && (out != all || in != all || tr.total.flows < r->last_flows)) {
            r->failed = 1;
            snprintf(r->why, sizeof r->why,
                     "snapshot mixed: out %llu in %llu total %llu flows %llu<%llu",
                     (unsigned long long)out, (unsigned long long)in, (unsigned long long)all,
                     (unsigned long long)tr.total.flows, (unsigned long long)r->last_flows);
        }
        r->last_flows = tr.total.flows;
        top_result_free(&tr);
        r->queries++;
    }
    return NULL;
}

Test(store, queries_during_ingest_see_consistent_snapshots, .timeout = 60)
{
    char dir[64];
    make_dir(dir, sizeof dir);
    struct store_config cfg = test_cfg();
    cfg.pending_max_rows = 2000; /* flush all the time */
    struct store *s = open_store(dir, &cfg);
    struct racer r = {.s = s};
    struct totals t = {0};
    uint64_t seq = 0;
    pthread_t th;

    cr_assert_eq(pthread_create(&th, NULL, query_loop, &r), 0);
    for (int k = 0; k < 60 && !r.failed; k++) {
        ingest_many(s, 0, &seq, 1, 300, NS(T0) + (int64_t)k * NS(200), &t);
        cr_assert_eq(store_tick(s, NS_PER_MS), 0);
    }
    cr_assert_eq(store_flush(s), 0);
    r.stop = 1;
    pthread_join(th, NULL);
    cr_assert_not(r.failed, "%s", r.why);
    cr_log_info("%u queries ran during ingest", r.queries);
    check_app_totals(s, &t);
    store_close(s);
    rm_rf(dir);
}

/* ---- retention ---------------------------------------------------------------- */

Test(store, retention_deletes_old_keeps_new, .timeout = 60)
{
    char dir[64];
    make_dir(dir, sizeof dir);
    struct store_config cfg = test_cfg();
    struct store *s = open_store(dir, &cfg);
    const int64_t now = NS(T0 + 200 * 86400);
    const int64_t ages[] = {120 * 86400, 30 * 86400, 86400};
    struct totals t[3] = {{0}};
    uint64_t seq = 0;

    for (int a = 0; a < 3; a++)
        ingest_many(s, 0, &seq, 4, 100, now - NS(ages[a]), &t[a]);
    /* newest data far enough past the others that their hours/days close */
    settle(s);

    struct retention_stats rs;
    int rounds = 0;
    do {
        cr_assert_eq(store_retention_run(s, now, NS(1), &rs), 0);
        rounds++;
    } while (!rs.done && rounds < 100);
    cr_assert(rs.done);

    /* flows older than 90 days are gone, the rest is there */
    struct big_list l = {0};
    struct flow_query q = {.since_ns = 0, .until_ns = now, .limit = QUERY_MAX_LIMIT};
    cr_assert_eq(store_query_flows(s, &q, collect_big, &l, NULL), 0);
    cr_assert_eq(l.n, t[1].flows + t[2].flows);
    for (size_t i = 0; i < l.n; i++)
        cr_assert_geq(l.f[i].rec.end_ns, now - NS(90 * 86400));
    free(l.f);

    /* summaries: the 120-day-old day is still in the day tier (1 year), the
     * 30-day-old data is answered from hours (minutes expired), yesterday's
     * from minutes */
    struct top_query tq = {.group = TOP_APP, .since_ns = now - NS(121 * 86400),
                           .until_ns = now - NS(119 * 86400), .limit = 10};
    struct top_result tr;
    cr_assert_eq(store_query_top(s, &tq, &tr), 0);
    cr_assert_eq(tr.total.bytes_out, t[0].bf);
    cr_assert_eq(tr.total.flows, t[0].flows);
    top_result_free(&tr);

    tq.since_ns = now - NS(30 * 86400) + NS(125);
    tq.until_ns = now - NS(30 * 86400) + NS(3600);
    cr_assert_eq(store_query_top(s, &tq, &tr), 0);
    cr_assert_eq(tr.since_ns % NS(3600), 0, "widened to the hour");
    cr_assert_eq(tr.total.bytes_out, t[1].bf);
    cr_assert_eq(tr.buckets[0], 0, "no minute rows used");
    top_result_free(&tr);

    tq.since_ns = now - NS(86400);
    tq.until_ns = now;
    cr_assert_eq(store_query_top(s, &tq, &tr), 0);
    cr_assert_eq(tr.total.bytes_out, t[2].bf);
    top_result_free(&tr);

    store_close(s);
    rm_rf(dir);
}

/* ---- retention of capture jobs and alerts ------------------------------------------- */

#define DAY NS(86400)

/* A store in a fresh directory (dir: 64 bytes, OUT) with every retention at
 * its default. */
static struct store *retention_store(char *dir)
{
    make_dir(dir, 64);
    struct store_config cfg = test_cfg();
    return open_store(dir, &cfg);
}

static void fill_job(struct capture_job *j, const char *id, unsigned state, int64_t updated,
                     int64_t finished)
{
    memset(j, 0, sizeof *j);
    snprintf(j->id, sizeof j->id, "%s", id);
    snprintf(j->agent, sizeof j->agent, "alpha");
    snprintf(j->filter, sizeof j->filter, "host 10.0.0.1");
    snprintf(j->ordered_by, sizeof j->ordered_by, "analyst:alice");
    j->state = (uint8_t)state;
    j->created_ns = updated - NS(60);
    j->updated_ns = updated;
    j->finished_ns = finished;
}

/* Stores value under key in DB_CAPTURES as it is (damaged values). */
static void put_raw_capture(struct store *s, const char *key, const void *val, size_t len)
{
    MDB_txn *txn;
    MDB_val k = {strlen(key), (void *)key}, v = {len, (void *)val};
    cr_assert_eq(store__begin_write(s, &txn), 0);
    cr_assert_eq(mdb_put(txn, s->db[DB_CAPTURES], &k, &v, 0), 0);
    cr_assert_eq(store__commit(s, txn, s->gen, NULL, NULL), 0);
}

static bool capture_stored(struct store *s, const char *key)
{
    MDB_txn *txn;
    MDB_val k = {strlen(key), (void *)key}, v;
    cr_assert_eq(mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn), 0);
    int rc = mdb_get(txn, s->db[DB_CAPTURES], &k, &v);
    mdb_txn_abort(txn);
    cr_assert(rc == 0 || rc == MDB_NOTFOUND);
    return rc == 0;
}

/* Runs retention to the end (budget: one transaction per call when 0);
 * returns the sums over the calls and how many calls it took. */
static unsigned retention_all(struct store *s, int64_t now, int64_t budget,
                              struct retention_stats *sum)
{
    struct retention_stats rs;
    unsigned calls = 0;
    memset(sum, 0, sizeof *sum);
    do {
        int rc = store_retention_run(s, now, budget, &rs);
        cr_assert_eq(rc, 0, "retention: %s", vigil_strerror(rc));
        calls++;
        sum->flows += rs.flows;
        sum->captures += rs.captures;
        sum->captures_bad += rs.captures_bad;
        sum->alerts += rs.alerts;
        sum->alerts_bad += rs.alerts_bad;
        sum->txns += rs.txns;
        cr_assert_geq(rs.txns, 1, "every call does some work");
    } while (!rs.done && calls < 100);
    cr_assert(rs.done);
    sum->done = true;
    return calls;
}

Test(store, retention_deletes_finished_capture_jobs_only, .timeout = 60)
{
    char dir[64];
    struct store *s = retention_store(dir); /* capture jobs: 90 days */
    const int64_t now = NS(T0) + 200 * DAY;
    static const struct {
        const char *id;
        unsigned state;
        int64_t updated_age, finished_age; /* days before now; finished -1: 0 */
        bool kept;
    } jobs[] = {
        {"c01-done-old", CAP_DONE, 100, 100, false},
        {"c02-pending-ancient", CAP_PENDING, 1000, -1, true},
        {"c03-failed-old-unfinished", CAP_FAILED, 91, -1, false}, /* updated stands in */
        {"c04-stopped-recent", CAP_STOPPED, 89, 89, true},
        {"c05-running-ancient", CAP_RUNNING, 1000, -1, true},
        {"c06-expired-old", CAP_EXPIRED, 150, 150, false},
        {"c07-done-ended-lately", CAP_DONE, 150, 10, true}, /* finished wins over updated */
        {"c08-running-stop-asked", CAP_RUNNING, 500, -1, true},
    };
    const size_t n = sizeof jobs / sizeof jobs[0];
    size_t deleted = 0;
    for (size_t i = 0; i < n; i++) {
        struct capture_job j;
        fill_job(&j, jobs[i].id, jobs[i].state, now - jobs[i].updated_age * DAY,
                 jobs[i].finished_age < 0 ? 0 : now - jobs[i].finished_age * DAY);
        j.stop_requested = i == 7;
        cr_assert_eq(capture_job_put(s, &j), 0);
        deleted += !jobs[i].kept;
    }
    /* damaged: not a job at all, and a done job stored under another id's key */
    put_raw_capture(s, "c00-garbage", "\x01\x02junk", 6);
    struct capture_job other;
    uint8_t *buf;
    size_t len;
    fill_job(&other, "c99-other", CAP_DONE, now - 400 * DAY, now - 400 * DAY);
    cr_assert_eq(capture_job_encode(&other, &buf, &len), 0);
    put_raw_capture(s, "c09-mismatch", buf, len);
    free(buf);

    struct retention_stats sum;
    retention_all(s, now, NS(1), &sum);
    cr_assert_eq(sum.captures, deleted);
    cr_assert_eq(sum.captures_bad, 2, "unreadable values are counted");
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(capture_stored(s, jobs[i].id), jobs[i].kept, "%s", jobs[i].id);
    cr_assert(capture_stored(s, "c00-garbage"), "never deletes what it cannot read");
    cr_assert(capture_stored(s, "c09-mismatch"));

    /* a second run has nothing more to delete */
    retention_all(s, now, NS(1), &sum);
    cr_assert_eq(sum.captures, 0);
    cr_assert_eq(sum.captures_bad, 2);

    /* centuries later every finished job is gone; pending and running stay */
    retention_all(s, now + 36500 * DAY, NS(1), &sum);
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(capture_stored(s, jobs[i].id),
                     jobs[i].state == CAP_PENDING || jobs[i].state == CAP_RUNNING, "%s",
                     jobs[i].id);
    store_close(s);
    rm_rf(dir);
}

static void persist_alerts(struct store *s, struct alerts *al)
{
    MDB_txn *txn;
    cr_assert_eq(store__detect_begin(s, true, &txn), 0);
    cr_assert_eq(alerts_persist(al, txn), 0);
    cr_assert_eq(mdb_txn_commit(txn), 0);
    alerts_persisted(al);
}

/* Raises n alerts through the alerts API as the engine does, each with its
 * own dedup key, first seen first[i] and last seen last[i], and stores them.
 * Ids follow in that order. */
static void raise_alerts(struct store *s, const int64_t *first, const int64_t *last, size_t n)
{
    struct detect_stats ds = {0};
    char err[256];
    MDB_txn *txn;
    enum log_level lvl = vigil_log_level;
    vigil_log_level = LOG_LVL_WARN; /* a line per new alert otherwise */
    cr_assert_eq(store__detect_begin(s, false, &txn), 0);
    struct alerts *al =
        alerts_create(txn, s->ddb[DDB_ALERTS], NULL, NS(3600), &ds, err, sizeof err);
    mdb_txn_abort(txn);
    cr_assert_not_null(al, "%s", err);
    for (size_t i = 0; i < n; i++) {
        struct alert a;
        memset(&a, 0, sizeof a);
        a.type = ALERT_PORT_SCAN;
        a.severity = SEV_MEDIUM;
        cr_assert_eq(addr_parse("10.0.0.1", &a.sources[0]), 0);
        cr_assert_eq(addr_parse("10.0.0.2", &a.targets[0]), 0);
        a.n_sources = a.n_targets = 1;
        a.first_ns = first[i];
        a.last_ns = last[i];
        snprintf(a.summary, sizeof a.summary, "test alert %zu", i);
        cr_assert(alerts_raise(al, 0x5eed0000u + i, &a), "a new alert");
        if (i % 1000 == 999 || i + 1 == n) /* the queue holds a few thousand */
            persist_alerts(s, al);
    }
    alerts_destroy(al);
    vigil_log_level = lvl;
}

/* The stored alert ids in key order into ids (cap entries); returns how many. */
static size_t alert_ids(struct store *s, uint64_t *ids, size_t cap)
{
    MDB_txn *txn;
    MDB_cursor *cur;
    MDB_val k, v;
    size_t n = 0;
    cr_assert_eq(store__detect_begin(s, false, &txn), 0);
    cr_assert_eq(mdb_cursor_open(txn, s->ddb[DDB_ALERTS], &cur), 0);
    for (int rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        cr_assert_eq(k.mv_size, 8);
        if (n < cap)
            ids[n] = get_be64(k.mv_data);
        n++;
    }
    mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    return n;
}

/* Moves the store's event clock (its newest record) to about t. */
static void records_until(struct store *s, uint64_t *seq, int64_t t)
{
    ingest_many(s, 0, seq, 1, 10, t - NS(10), NULL);
    cr_assert_geq(s->max_end_ns, t - NS(10));
}

Test(store, retention_deletes_alerts_by_last_seen_in_event_time, .timeout = 60)
{
    char dir[64];
    struct store *s = retention_store(dir); /* alerts: 366 days */
    const int64_t now = NS(T0) + 600 * DAY;
    /* ids 1..6 in this order: ids are raise order, not time order */
    const int64_t first[] = {now - 480 * DAY, now - 300 * DAY, now - 368 * DAY,
                             now - 400 * DAY, now - 367 * DAY, now - 500 * DAY};
    const int64_t last[] = {now - 480 * DAY, now - 300 * DAY, now - 367 * DAY,
                            now - 10 * DAY, now - 365 * DAY, now - 500 * DAY};
    raise_alerts(s, first, last, 6);
    /* a damaged row with the highest key: left alone, and it does not shield id 6 */
    MDB_txn *txn;
    uint8_t key[8];
    put_be64(key, 100);
    MDB_val k = {8, key}, v = {5, "\x01junk"};
    cr_assert_eq(store__detect_begin(s, true, &txn), 0);
    cr_assert_eq(mdb_put(txn, s->ddb[DDB_ALERTS], &k, &v, 0), 0);
    cr_assert_eq(mdb_txn_commit(txn), 0);

    /* no record yet: event time has not started, nothing is old */
    struct retention_stats sum;
    retention_all(s, now, NS(1), &sum);
    cr_assert_eq(sum.alerts, 0);
    cr_assert_eq(sum.alerts_bad, 1);

    /* a replay: records from long ago keep its alerts, whatever the clock */
    uint64_t seq = 0;
    records_until(s, &seq, now - 450 * DAY);
    retention_all(s, now, NS(1), &sum);
    cr_assert_eq(sum.alerts, 0);
    cr_assert_eq(alert_ids(s, NULL, 0), 7);

    /* live: the newest record is now; the clock is the bound too */
    records_until(s, &seq, now);
    retention_all(s, now - 100 * DAY, NS(1), &sum);
    cr_assert_eq(sum.alerts, 1, "measured back from now_ns when it is earlier");
    retention_all(s, now, NS(1), &sum);
    cr_assert_eq(sum.alerts, 1);
    cr_assert_eq(sum.alerts_bad, 1);
    uint64_t ids[8];
    cr_assert_eq(alert_ids(s, ids, 8), 5);
    const uint64_t want[] = {2, 4, 5, 6, 100}; /* 6: the newest id stays, whatever its age */
    for (size_t i = 0; i < 5; i++)
        cr_assert_eq(ids[i], want[i], "slot %zu: %llu", i, (unsigned long long)ids[i]);

    /* a second run deletes nothing more */
    retention_all(s, now, NS(1), &sum);
    cr_assert_eq(sum.alerts, 0);
    cr_assert_eq(alert_ids(s, NULL, 0), 5);

    /* a restart numbers new alerts after the newest id still stored */
    int64_t t[] = {now};
    raise_alerts(s, t, t, 1);
    cr_assert_eq(alert_ids(s, ids, 8), 6);
    cr_assert_eq(ids[4], 7, "id 7, not one already used");
    store_close(s);
    rm_rf(dir);
}

Test(store, retention_walks_many_jobs_and_alerts_across_calls, .timeout = 120)
{
    char dir[64];
    struct store *s = retention_store(dir);
    const int64_t now = NS(T0) + 600 * DAY;
    const size_t n = RETENTION_SLICE_ROWS + RETENTION_SLICE_ROWS / 4;

    /* six in seven are running: more than a slice stays, so a walk that
     * started over each call would never pass them */
    struct capture_job *jobs = calloc(n, sizeof *jobs);
    const struct capture_job **pj = calloc(n, sizeof *pj);
    cr_assert(jobs && pj);
    size_t running = 0;
    for (size_t i = 0; i < n; i++) {
        char id[32];
        snprintf(id, sizeof id, "c%012zx", i * 7919 % n); /* key order is not put order */
        bool run = i % 7 != 0;
        fill_job(&jobs[i], id, run ? CAP_RUNNING : CAP_DONE, now - 200 * DAY,
                 run ? 0 : now - 200 * DAY);
        pj[i] = &jobs[i];
        running += run;
    }
    cr_assert_eq(capture_job_put_many(s, pj, n), 0);
    free(pj);

    /* as many alerts: the first slice and more are recent, the rest over a
     * year old (the same reason) */
    int64_t *first = calloc(n, sizeof *first), *last = calloc(n, sizeof *last);
    cr_assert(first && last);
    size_t recent = 0;
    for (size_t i = 0; i < n; i++) {
        bool r = i <= RETENTION_SLICE_ROWS;
        first[i] = last[i] = now - (r ? 30 : 400) * DAY - (int64_t)i * NS(1);
        recent += r;
    }
    last[n - 1] = now - 400 * DAY; /* the newest id: old, yet kept */
    raise_alerts(s, first, last, n);
    free(first);
    free(last);
    uint64_t seq = 0;
    records_until(s, &seq, now);

    /* budget 0: one transaction per call, each walk resumes where it stopped */
    struct retention_stats sum;
    unsigned calls = retention_all(s, now, 0, &sum);
    cr_assert_geq(calls, 4, "two slices of jobs, two of alerts: %u calls", calls);
    cr_assert_eq(sum.captures, n - running);
    cr_assert_eq(sum.alerts, n - recent - 1);
    cr_assert_eq(sum.captures_bad + sum.alerts_bad, 0);
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(capture_stored(s, jobs[i].id), jobs[i].state == CAP_RUNNING, "%s",
                     jobs[i].id);
    cr_assert_eq(alert_ids(s, NULL, 0), recent + 1);

    /* done means done: a new pass, sliced again, finds nothing */
    calls = retention_all(s, now, 0, &sum);
    cr_assert_eq(sum.captures + sum.alerts, 0);
    cr_assert_eq(alert_ids(s, NULL, 0), recent + 1);
    free(jobs);
    store_close(s);
    rm_rf(dir);
}

/* The detection thread's side: raises and stores recent alerts, one
 * write transaction of the detection environment each, as detect.c's
 * persist does. No Criterion asserts off the test's thread: failures are
 * counted. */
struct alert_writer {
    struct store *s;
    int64_t last_ns;
    unsigned rounds, failed;
    atomic_bool done;
};

static void *alert_writer_run(void *arg)
{
    struct alert_writer *w = arg;
    struct detect_stats ds = {0};
    char err[256];
    MDB_txn *txn;
    struct alerts *al = NULL;
    if (store__detect_begin(w->s, false, &txn) == 0) {
        al = alerts_create(txn, w->s->ddb[DDB_ALERTS], NULL, NS(3600), &ds, err, sizeof err);
        mdb_txn_abort(txn);
    }
    if (!al) {
        w->failed = w->rounds;
        atomic_store(&w->done, true);
        return NULL;
    }
    for (unsigned i = 0; i < w->rounds; i++) {
        struct alert a;
        memset(&a, 0, sizeof a);
        a.type = ALERT_BEACON;
        a.first_ns = a.last_ns = w->last_ns + (int64_t)i;
        snprintf(a.summary, sizeof a.summary, "concurrent %u", i);
        alerts_raise(al, 0xc0c0000u + i, &a);
        if (store__detect_begin(w->s, true, &txn) != 0) {
            w->failed++;
            continue;
        }
        if (alerts_persist(al, txn) != 0 || mdb_txn_commit(txn) != 0) {
            w->failed++;
            continue;
        }
        alerts_persisted(al);
    }
    alerts_destroy(al);
    atomic_store(&w->done, true);
    return NULL;
}

Test(store, retention_and_the_detection_thread_share_the_alerts, .timeout = 60)
{
    char dir[64];
    struct store *s = retention_store(dir);
    const int64_t now = NS(T0) + 600 * DAY;
    enum { OLD = 3000, NEW = 300 };
    int64_t *t = calloc(OLD, sizeof *t);
    cr_assert_not_null(t);
    for (size_t i = 0; i < OLD; i++)
        t[i] = now - 400 * DAY + (int64_t)i;
    raise_alerts(s, t, t, OLD);
    free(t);
    uint64_t seq = 0;
    records_until(s, &seq, now);

    enum log_level lvl = vigil_log_level;
    vigil_log_level = LOG_LVL_WARN;
    struct alert_writer w = {.s = s, .last_ns = now - DAY, .rounds = NEW};
    pthread_t tid;
    cr_assert_eq(pthread_create(&tid, NULL, alert_writer_run, &w), 0);
    /* small slices, over and over, while the writer commits beside them */
    struct retention_stats sum;
    uint64_t deleted = 0;
    unsigned passes = 0;
    while (!atomic_load(&w.done)) {
        retention_all(s, now, 0, &sum);
        deleted += sum.alerts;
        passes++;
    }
    pthread_join(tid, NULL);
    cr_log_info("%u retention passes while the writer ran", passes);
    vigil_log_level = lvl;
    retention_all(s, now, 0, &sum);
    deleted += sum.alerts;
    cr_assert_eq(w.failed, 0, "the writer's transactions all went through");
    cr_assert_eq(deleted, OLD, "every old alert, once");
    uint64_t ids[NEW + 1];
    cr_assert_eq(alert_ids(s, ids, NEW + 1), NEW, "every new alert stays");
    cr_assert_eq(ids[0], OLD + 1);
    store_close(s);
    rm_rf(dir);
}

Test(store, refuses_another_schema_version)
{
    char dir[64], err[256];
    make_dir(dir, sizeof dir);
    struct store_config cfg = test_cfg();
    struct store *s = open_store(dir, &cfg);
    MDB_txn *txn;
    cr_assert_eq(store__begin_write(s, &txn), 0);
    cr_assert_eq(store__put_meta_u32(s, txn, META_SCHEMA, STORE_SCHEMA + 1), 0);
    cr_assert_eq(store__commit(s, txn, s->gen, NULL, NULL), 0);
    store_close(s);
    cr_assert_null(store_open(dir, &cfg, err, sizeof err));
    cr_assert(strstr(err, "schema") != NULL, "says why: %s", err);
    rm_rf(dir);
}

/* ---- encoding ------------------------------------------------------------------ */

Test(store, flow_encoding_round_trips_and_refuses_damage)
{
    struct sflow f, g;
    uint8_t buf[FLOWCODEC_MAX];
    memset(&f, 0, sizeof f);
    f.agent_id = 3;
    f.records = 2;
    f.rec.flow_id = 0x123456789aull;
    f.rec.final = true;
    f.rec.end_reason = END_RST;
    f.rec.start_ns = NS(T0) + 5;
    f.rec.end_ns = NS(T0 + 70) + 9;
    cr_assert_eq(addr_parse("2001:db8::1", &f.rec.src), 0);
    cr_assert_eq(addr_parse("2001:db8::2", &f.rec.dst), 0);
    f.rec.has_ports = true;
    f.rec.src_port = 51000;
    f.rec.dst_port = 443;
    f.rec.proto = 6;
    f.rec.vlan = 42;
    f.rec.tunnel = TUNNEL_VXLAN;
    f.rec.pkts_fwd = 10;
    f.rec.bytes_fwd = 12345678901ull;
    f.rec.pkts_rev = 9;
    f.rec.bytes_rev = 999;
    f.rec.tcp_flags_fwd = 0x1b;
    f.rec.tcp_flags_rev = 0x12;
    f.rec.state = STATE_RSTO;
    f.rec.has_rtt = true;
    f.rec.rtt_us = 1234;
    f.rec.retrans_fwd = 3;
    f.rec.direction = DIR_OUTBOUND;
    snprintf(f.rec.app, sizeof f.rec.app, "tls");
    f.rec.has_dns = true;
    snprintf(f.rec.dns_qname, sizeof f.rec.dns_qname, "example.org");
    f.rec.dns_qtype = 28;
    f.rec.has_dns_rcode = true;
    f.rec.dns_rcode = 3;
    snprintf(f.rec.tls_sni, sizeof f.rec.tls_sni, "sni.example");
    snprintf(f.rec.ja4, sizeof f.rec.ja4, "t13d1516h2_8daaf6152771_e5627efa2ab1");
    snprintf(f.rec.http_host, sizeof f.rec.http_host, "h.example");

    size_t n = flowcodec_encode(&f, buf);
    cr_assert_leq(n, FLOWCODEC_MAX);
    cr_assert_eq(flowcodec_decode(buf, n, &g), 0);
    cr_assert_eq(g.agent_id, 3);
    cr_assert_eq(g.records, 2);
    const struct flow_record *a = &f.rec, *b = &g.rec;
    cr_assert(a->flow_id == b->flow_id && a->final == b->final && a->end_reason == b->end_reason);
    cr_assert(a->start_ns == b->start_ns && a->end_ns == b->end_ns);
    cr_assert(!memcmp(a->src.b, b->src.b, 16) && !memcmp(a->dst.b, b->dst.b, 16));
    cr_assert(a->has_ports == b->has_ports && a->src_port == b->src_port &&
              a->dst_port == b->dst_port && a->proto == b->proto && a->vlan == b->vlan &&
              a->tunnel == b->tunnel && a->has_icmp == b->has_icmp);
    cr_assert(a->pkts_fwd == b->pkts_fwd && a->bytes_fwd == b->bytes_fwd &&
              a->pkts_rev == b->pkts_rev && a->bytes_rev == b->bytes_rev);
    cr_assert(a->tcp_flags_fwd == b->tcp_flags_fwd && a->tcp_flags_rev == b->tcp_flags_rev &&
              a->state == b->state && a->has_rtt == b->has_rtt && a->rtt_us == b->rtt_us &&
              a->retrans_fwd == b->retrans_fwd && a->retrans_rev == b->retrans_rev &&
              a->direction == b->direction);
    cr_assert(a->has_dns == b->has_dns && a->dns_qtype == b->dns_qtype &&
              a->has_dns_rcode == b->has_dns_rcode && a->dns_rcode == b->dns_rcode);
    cr_assert_str_eq(b->app, a->app);
    cr_assert_str_eq(b->dns_qname, a->dns_qname);
    cr_assert_str_eq(b->tls_sni, a->tls_sni);
    cr_assert_str_eq(b->ja4, a->ja4);
    cr_assert_str_eq(b->http_host, a->http_host);
    for (size_t cut = 0; cut < n; cut++)
        cr_assert_neq(flowcodec_decode(buf, cut, &g), 0, "a row cut at %zu is refused", cut);
    buf[0] = 99;
    cr_assert_eq(flowcodec_decode(buf, n, &g), VIGIL_EBADMSG, "unknown version refused");

    struct contrib c = {.end_ns = NS(T0) + 1, .src = f.rec.src, .dst = f.rec.dst, .dst_port = 443,
                        .proto = 6, .new_flow = true, .placed = true, .pkts_fwd = 1,
                        .bytes_fwd = 2, .pkts_rev = 3, .bytes_rev = 4},
                   d;
    snprintf(c.app, sizeof c.app, "quic");
    c.row_sec = (uint32_t)T0 + 2;
    uint8_t jb[JOURNAL_MAX];
    n = contrib_encode(&c, jb);
    cr_assert_eq(contrib_decode(jb, n, &d), 0);
    cr_assert(d.end_ns == c.end_ns && d.dst_port == c.dst_port && d.proto == c.proto &&
              d.new_flow && d.placed && !d.refs_only && d.row_sec == c.row_sec &&
              d.pkts_fwd == 1 && d.bytes_fwd == 2 && d.pkts_rev == 3 &&
              d.bytes_rev == 4);
    cr_assert(!memcmp(d.src.b, c.src.b, 16) && !memcmp(d.dst.b, c.dst.b, 16));
    cr_assert_str_eq(d.app, "quic");
    for (size_t cut = 0; cut < n; cut++)
        cr_assert_neq(contrib_decode(jb, cut, &d), 0);
}

/* More groups than a ranking keeps: the best RANK_K per metric, in the
 * order a merge gives (metric descending, key ascending), ties included. */
struct rk_group {
    uint8_t key[16];
    uint64_t c[RC_COUNT];
};

static unsigned rk_metric_sel;
static int rk_cmp(const void *a, const void *b)
{
    const struct rk_group *x = a, *y = b;
    uint64_t mx = rank_metric(x->c, rk_metric_sel), my = rank_metric(y->c, rk_metric_sel);
    if (mx != my)
        return mx > my ? -1 : 1;
    return memcmp(x->key, y->key, 16);
}

struct rk_seen {
    struct rk_group *g;
    size_t n;
};

static void rk_row(const uint8_t *key, const uint64_t c[RC_COUNT], void *ctx)
{
    struct rk_seen *sn = ctx;
    memcpy(sn->g[sn->n].key, key, 16);
    memcpy(sn->g[sn->n].c, c, sizeof sn->g[sn->n].c);
    sn->n++;
}

Test(store, a_days_ranking_keeps_the_best_of_many_groups, .timeout = 30)
{
    char dir[64];
    make_dir(dir, sizeof dir);
    struct store_config cfg = test_cfg();
    struct store *s = open_store(dir, &cfg);
    enum { N = 5000 };
    static struct rk_group g[N], want[N], got[RANK_K + 1];
    rng_state = 7;
    struct rank_build *rb = rank_build_new();
    cr_assert_not_null(rb);
    rank_begin(rb, 86400 * 20000, DIM_HOST);
    for (unsigned i = 0; i < N; i++) { /* in key order, as compaction gives them */
        memset(g[i].key, 0, 16);
        g[i].key[14] = (uint8_t)(i >> 8);
        g[i].key[15] = (uint8_t)i;
        g[i].c[RC_BYTES_OUT] = rnd() % 50; /* few values: many ties */
        g[i].c[RC_BYTES_IN] = rnd() % 50;
        g[i].c[RC_PKTS_OUT] = rnd() % 1000000;
        g[i].c[RC_PKTS_IN] = 0;
        g[i].c[RC_FLOWS] = i % 7;
        rank_offer(rb, g[i].key, g[i].c);
    }
    MDB_txn *txn;
    cr_assert_eq(store__begin_write(s, &txn), 0);
    cr_assert_eq(rank_put(rb, txn, s->db[DB_RANK]), 0);
    cr_assert_eq(mdb_txn_commit(txn), 0);
    rank_build_free(rb);

    cr_assert_eq(mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn), 0);
    for (unsigned m = 0; m < RANK_METRICS; m++) {
        memcpy(want, g, sizeof g);
        rk_metric_sel = m;
        qsort(want, N, sizeof *want, rk_cmp);
        struct rk_seen sn = {got, 0};
        uint64_t groups = 0;
        cr_assert_eq(rank_read(txn, s->db[DB_RANK], 86400 * 20000, DIM_HOST, m, RANK_K, &groups,
                               rk_row, &sn),
                     0);
        cr_assert_eq(groups, N);
        cr_assert_eq(sn.n, RANK_K);
        for (unsigned i = 0; i < RANK_K; i++)
            cr_assert(memcmp(got[i].key, want[i].key, 16) == 0 &&
                          memcmp(got[i].c, want[i].c, sizeof got[i].c) == 0,
                      "metric %u row %u differs", m, i);
        /* a limit past what is kept is not answered from the ranking */
        sn.n = 0;
        cr_assert_eq(rank_read(txn, s->db[DB_RANK], 86400 * 20000, DIM_HOST, m, RANK_K + 1,
                               &groups, rk_row, &sn),
                     MDB_NOTFOUND);
    }
    mdb_txn_abort(txn);
    store_close(s);
    rm_rf(dir);
}

/* A bare LMDB environment in a fresh directory, one plain DB. */
static MDB_env *bare_env(MDB_dbi *dbi)
{
    char dir[64];
    MDB_env *env;
    MDB_txn *txn;
    make_dir(dir, sizeof dir);
    cr_assert_eq(mdb_env_create(&env), 0);
    cr_assert_eq(mdb_env_set_mapsize(env, (size_t)64 << 20), 0);
    cr_assert_eq(mdb_env_open(env, dir, MDB_NOTLS, 0600), 0);
    cr_assert_eq(mdb_txn_begin(env, NULL, 0, &txn), 0);
    cr_assert_eq(mdb_dbi_open(txn, NULL, 0, dbi), 0);
    cr_assert_eq(mdb_txn_commit(txn), 0);
    return env;
}

/* Contributions go to the journal in runs of consecutive sequences (a gap
 * starts a new run) and read back one by one with their sequences; a
 * value of one contribution (stores written before runs) still reads, and
 * a cut run is refused. */
Test(store, journal_runs_read_back_in_sequence, .timeout = 30)
{
    MDB_dbi dbi;
    MDB_env *env = bare_env(&dbi);
    MDB_txn *txn;
    MDB_cursor *cur;
    struct journal_writer jw;
    enum { N = 700 };
    uint64_t seqs[N + 1];

    cr_assert_eq(mdb_txn_begin(env, NULL, 0, &txn), 0);
    cr_assert_eq(mdb_cursor_open(txn, dbi, &cur), 0);
    /* a version 1 entry first, as an old store has it */
    struct contrib c = {.seq = 5, .end_ns = NS(T0), .proto = 17, .dst_port = 53,
                        .pkts_fwd = 1, .bytes_fwd = 70};
    addr_from_v4(&c.src, (const uint8_t[]){10, 0, 0, 1});
    addr_from_v4(&c.dst, (const uint8_t[]){10, 0, 0, 2});
    uint8_t kb[8], vb[JOURNAL_MAX];
    put_be64(kb, 5);
    MDB_val k = {8, kb}, v = {contrib_encode(&c, vb), vb};
    cr_assert_eq(mdb_cursor_put(cur, &k, &v, MDB_APPEND), 0);
    seqs[0] = 5;
    journal_writer_begin(&jw, cur);
    uint64_t seq = 10;
    for (unsigned i = 0; i < N; i++) {
        seq += i == 300 ? 7 : 1; /* one gap */
        c.seq = seqs[i + 1] = seq;
        c.end_ns = NS(T0) + i;
        c.bytes_fwd = i;
        c.new_flow = i % 2;
        cr_assert_eq(journal_writer_add(&jw, &c), 0);
    }
    cr_assert_eq(journal_writer_end(&jw), 0);
    mdb_cursor_close(cur);
    cr_assert_eq(mdb_txn_commit(txn), 0);

    cr_assert_eq(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
    cr_assert_eq(mdb_cursor_open(txn, dbi, &cur), 0);
    unsigned got = 0, values = 0;
    uint64_t last = 0;
    for (int rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        struct journal_reader jr;
        struct contrib d;
        int r;
        values++;
        cr_assert_leq(v.mv_size, JOURNAL_RUN_BYTES);
        cr_assert_eq(journal_reader_init(&jr, &k, &v), 0);
        while ((r = journal_reader_next(&jr, &d)) == 1) {
            cr_assert_lt(got, N + 1);
            cr_assert_eq(d.seq, seqs[got], "contribution %u: seq %llu", got,
                         (unsigned long long)d.seq);
            if (got > 0)
                cr_assert(d.bytes_fwd == got - 1 && d.new_flow == (got - 1) % 2 &&
                          d.end_ns == NS(T0) + got - 1);
            got++;
        }
        cr_assert_eq(r, 0);
        cr_assert_eq(journal_last_seq(&k, &v, &last), 0);
        cr_assert_eq(last, seqs[got - 1]);
        if (values == 3) { /* a run cut short: refused, never read past */
            struct journal_reader cut;
            MDB_val half = {v.mv_size / 2, v.mv_data};
            cr_assert_eq(journal_reader_init(&cut, &k, &half), 0);
            while ((r = journal_reader_next(&cut, &d)) == 1)
                ;
            cr_assert_eq(r, VIGIL_EBADMSG);
        }
    }
    cr_assert_eq(got, N + 1);
    cr_assert_gt(values, 3, "runs are cut at a page (%u values)", values);
    cr_assert_lt(values, N / 50, "runs hold many contributions (%u values)", values);
    mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    mdb_env_close(env);
}

/* The open filter never hides a key of the open DB, built from it or added
 * after, and turns most absent keys away. */
Test(store, open_filter_never_hides_an_open_flow, .timeout = 30)
{
    MDB_dbi dbi;
    MDB_env *env = bare_env(&dbi);
    MDB_txn *txn;
    struct hash_key hk = {1, 2};
    struct openfilter f;
    enum { N = 5000 };

    openfilter_init(&f, &hk);
    cr_assert(openfilter_maybe(&f, 1, 1), "unbuilt: every key may be there");
    cr_assert(openfilter_wants_build(&f));
    cr_assert_eq(mdb_txn_begin(env, NULL, 0, &txn), 0);
    for (uint64_t i = 0; i < N; i++) {
        uint8_t kb[OPEN_KEY_LEN];
        put_be32(kb, (uint32_t)(i % 7));
        put_be64(kb + 4, i * 1000003);
        MDB_val k = {sizeof kb, kb}, v = {1, kb};
        cr_assert_eq(mdb_put(txn, dbi, &k, &v, 0), 0);
    }
    cr_assert_eq(openfilter_build(&f, txn, dbi), 0);
    cr_assert_not(openfilter_wants_build(&f));
    for (uint64_t i = N; i < 2 * N; i++)
        openfilter_add(&f, (uint32_t)(i % 7), i * 1000003);
    unsigned maybe = 0;
    for (uint64_t i = 0; i < 2 * N; i++)
        cr_assert(openfilter_maybe(&f, (uint32_t)(i % 7), i * 1000003), "key %llu hidden",
                  (unsigned long long)i);
    for (uint64_t i = 0; i < 10 * N; i++)
        maybe += openfilter_maybe(&f, 9, i);
    cr_assert_lt(maybe, N / 2, "%u of %u absent keys answered maybe", maybe, 10 * N);
    /* keys by the hundred thousand fill it: it asks to be rebuilt */
    for (uint64_t i = 0; i < 40 * N; i++)
        openfilter_add(&f, 3, i);
    cr_assert(openfilter_wants_build(&f));
    openfilter_free(&f);
    mdb_txn_abort(txn);
    mdb_env_close(env);
}

/* ---- the standing trailing ranking (trail.h) ------------------------------ */

/* Records over 30 hours among 1,200 hosts, a few of them busy (so hosts
 * and pairs outnumber RANK_K and the ranking lists only the best). */
static size_t make_trailing(struct trec *recs, size_t n, int64_t base_s, uint64_t seed)
{
    static const uint16_t ports[] = {53, 443, 80, 22, 8080, 123, 3389, 25};
    rng_state = seed;
    for (size_t i = 0; i < n; i++) {
        int64_t end = NS(base_s) + (int64_t)(rnd() % (30 * 3600)) * NS_PER_SEC + (int64_t)i;
        unsigned r1 = (unsigned)(rnd() % 1200), h1 = r1 * r1 / 1200; /* skewed to the low */
        unsigned h2 = (unsigned)(rnd() % 1200);
        if (h2 == h1)
            h2 = (h1 + 1) % 1200;
        unsigned pi = (unsigned)(rnd() % 8);
        recs[i] = mkrec((unsigned)(rnd() % 3), 100000 + i, end, h1, h2, pi == 0 ? 17 : 6,
                        ports[pi], apps[rnd() % 6]);
    }
    return n;
}

/* Checks every dimension and order over [since, until) against the oracle;
 * returns how many of the answers came from the standing ranking. */
static unsigned check_all(struct store *s, const struct trec *recs, const bool *newflow, size_t n,
                          int64_t since, int64_t until)
{
    unsigned standing = 0;
    for (unsigned dim = 0; dim < TOP_GROUP_COUNT; dim++)
        for (int ord = TOP_BY_BYTES; ord <= TOP_BY_FLOWS; ord++)
            for (unsigned limit = 5; limit <= 40; limit *= 8) {
                check_top(s, recs, newflow, n, dim, (enum top_order)ord, since, until, limit,
                          NULL);
                standing += last_standing;
            }
    return standing;
}

Test(store, trailing_top_is_exact_from_the_standing_ranking, .timeout = 120)
{
    char dir[64];
    make_dir(dir, sizeof dir);
    struct store_config cfg = test_cfg();
    cfg.trail_late_max = 8;
    cfg.flush_interval_ns = NS(3600); /* late rows stay pending: lookups must see them */
    struct store *s = open_store(dir, &cfg);
    enum { N = 4000, EXTRA = 200 };
    static struct trec recs[N + EXTRA];
    static bool newflow[N + EXTRA];
    uint64_t seqs[3] = {0};

    size_t n = make_trailing(recs, N, T0, 5);
    qsort(recs, n, sizeof *recs, cmp_end);
    mark_new(recs, n, newflow);
    apply_all(s, recs, n, 50, seqs);
    settle(s);

    /* Nothing built yet, and no build is due before a top query over a
     * trailing day asks: that one merges. */
    struct trail_info ti;
    store_trail_info(s, &ti);
    cr_assert_not(ti.present);
    cr_assert_not(store_trail_due(s));
    int64_t newest = recs[n - 1].end;
    check_top(s, recs, newflow, n, TOP_HOST, TOP_BY_BYTES, newest - NS(7200), newest, 5, NULL);
    cr_assert_not(store_trail_due(s), "two hours do not ask for it");
    cr_assert_eq(check_all(s, recs, newflow, n, newest - NS(86400), newest + NS(86400)), 0);
    cr_assert(store_trail_due(s));

    cr_assert_eq(store_trail_refresh(s, 0), 0);
    store_trail_info(s, &ti);
    cr_assert(ti.present && !ti.stale);
    int64_t b = ti.until_ns;
    cr_assert_eq(b, NS((newest / NS_PER_SEC - 60) / 60 * 60), "B = the newest closed minute");
    cr_assert_eq(ti.since_ns, b - NS(86400));
    cr_assert_not(store_trail_due(s));

    /* Ranges near [A, B), on either side, and the analyst's default (until
     * a day ahead): exact, and mostly from the standing ranking. */
    const int64_t shift[][2] = {{0, 0},        {NS(180), NS(0)},   {-NS(420), NS(0)},
                                {NS(660), -NS(300)}, {-NS(90), NS(86400)}, {NS(17), NS(86400)},
                                {-NS(1500), -NS(1700)}};
    unsigned standing = 0, checks = 0;
    for (size_t i = 0; i < sizeof shift / sizeof shift[0]; i++) {
        standing += check_all(s, recs, newflow, n, b - NS(86400) + shift[i][0], b + shift[i][1]);
        checks += TOP_GROUP_COUNT * 3 * 2;
    }
    cr_assert_geq(standing, checks / 2, "%u of %u answers from the standing ranking", standing,
                  checks);
    /* hosts by bytes have a clear head: the standing ranking answers them */
    check_top(s, recs, newflow, n, TOP_HOST, TOP_BY_BYTES, b - NS(86400), b, 5, NULL);
    cr_assert(last_standing);
    /* far from it: merged, exact */
    cr_assert_eq(check_all(s, recs, newflow, n, b - NS(86400) - NS(7200), b - NS(7200)), 0);
    /* a limit past RANK_K merges */
    check_top(s, recs, newflow, n, TOP_PAIR, TOP_BY_BYTES, b - NS(86400), b, RANK_K + 1, NULL);
    cr_assert_not(last_standing);

    /* New data after B, still pending, from a host never seen before that
     * sends more than anyone: it must top the answer however it is made. */
    size_t ne = 0;
    struct trec fresh[40];
    for (int i = 0; i < 40; i++) {
        fresh[ne] = mkrec(0, 700000 + (uint64_t)i, newest + NS(1) + NS(i), 1500, (unsigned)i, 6,
                          443, "tls");
        fresh[ne].bf = 50000000;
        recs[n + ne] = fresh[ne];
        ne++;
    }
    cr_assert_eq(apply(s, 0, ++seqs[0], fresh, ne, NULL), 0);
    n += ne;
    mark_new(recs, n, newflow);
    struct store_stats st;
    store_get_stats(s, &st);
    cr_assert_gt(st.pending_rows, 0);
    check_top(s, recs, newflow, n, TOP_HOST, TOP_BY_BYTES, b - NS(86400), b + NS(86400), 5, NULL);
    cr_assert(last_standing, "an unlisted heavy talker is looked up, not merged");
    check_top(s, recs, newflow, n, TOP_HOST, TOP_BY_BYTES, b - NS(86400) + NS(240),
              b + NS(86400), 5, NULL);
    cr_assert(last_standing);
    check_all(s, recs, newflow, n, b - NS(86400) + NS(60), b + NS(86400));
    store_trail_info(s, &ti);
    cr_assert_not(ti.stale, "data after B leaves the ranking standing");

    /* Late records for minutes the ranking summed (one in minutes a later
     * range leaves out, from a host it does not list): carried beside it,
     * the answers stay exact and standing. */
    struct trec late[3] = {
        mkrec(1, 800000, b - NS(3 * 3600) + NS(7), 3, 4, 6, 443, "tls"),
        mkrec(1, 800001, ti.since_ns + NS(300) + NS(3), 1100, 1101, 6, 443, "tls"),
        mkrec(1, 800002, b - NS(30), 7, 8, 17, 53, "dns"),
    };
    late[0].bf = 123456789;
    late[1].bf = 98765432;
    for (int i = 0; i < 3; i++) {
        recs[n++] = late[i];
        newflow[n - 1] = true;
    }
    cr_assert_eq(apply(s, 1, ++seqs[1], late, 3, NULL), 0);
    store_trail_info(s, &ti);
    cr_assert(!ti.stale && ti.late == 3, "stale %d, late %zu", ti.stale, ti.late);
    store_get_stats(s, &st);
    cr_assert_gt(st.pending_rows, 0);
    cr_assert_gt(check_all(s, recs, newflow, n, b - NS(86400), b), 0);
    cr_assert_gt(check_all(s, recs, newflow, n, b - NS(86400) + NS(600), b + NS(86400)), 0);
    check_top(s, recs, newflow, n, TOP_HOST, TOP_BY_BYTES, b - NS(86400), b, 5, NULL);
    cr_assert(last_standing);

    /* More than it may carry: stale, merged, exact; the next build takes
     * them in. */
    struct trec more[10];
    for (int i = 0; i < 10; i++) {
        more[i] = mkrec(2, 810000 + (uint64_t)i, b - NS(7200) + NS(i), 9, 10 + (unsigned)i, 6,
                        22, "ssh");
        recs[n++] = more[i];
        newflow[n - 1] = true;
    }
    cr_assert_eq(apply(s, 2, ++seqs[2], more, 10, NULL), 0);
    store_trail_info(s, &ti);
    cr_assert(ti.stale);
    cr_assert(store_trail_due(s));
    cr_assert_eq(check_all(s, recs, newflow, n, b - NS(86400), b), 0);
    cr_assert_eq(store_trail_refresh(s, 0), 0);
    store_trail_info(s, &ti);
    cr_assert(ti.present && !ti.stale && ti.late == 0);
    cr_assert_gt(check_all(s, recs, newflow, n, ti.until_ns - NS(86400), ti.until_ns), 0);
    check_top(s, recs, newflow, n, TOP_PAIR, TOP_BY_BYTES, ti.until_ns - NS(86400) + NS(120),
              ti.until_ns + NS(86400), 5, NULL);

    /* The refresh thread builds one by itself once data moves on. */
    struct trail_thread *tt = trail_thread_start(s, NS_PER_SEC / 50);
    cr_assert_not_null(tt);
    struct trec later = mkrec(2, 900000, newest + NS(600), 5, 6, 17, 53, "dns");
    recs[n++] = later;
    newflow[n - 1] = true;
    cr_assert_eq(apply(s, 2, ++seqs[2], &later, 1, NULL), 0);
    uint64_t builds = ti.builds;
    for (int i = 0; i < 500 && ti.builds == builds; i++) {
        usleep(10000);
        store_trail_info(s, &ti);
    }
    trail_thread_stop(tt);
    cr_assert_gt(ti.builds, builds, "the thread built a newer ranking");
    cr_assert_eq(ti.until_ns, NS((newest / NS_PER_SEC + 600 - 60) / 60 * 60));
    check_all(s, recs, newflow, n, ti.until_ns - NS(86400), ti.until_ns + NS(3600));
    store_close(s);
    rm_rf(dir);
}
