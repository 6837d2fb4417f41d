/* ingest_bench.c — the aggregator store's benchmark: ingest with rollups
 * against bare LMDB puts of the same records, then queries on the result.
 *
 * One run, one core, durable sync (LMDB defaults) throughout:
 *   1. floor: the first --floor records, encoded exactly as the store
 *      encodes a flow, put under the same keys into one plain LMDB DB in
 *      --batch-record transactions;
 *   2. ingest: --records records through store_apply_batches (merging of
 *      partial records, journal, host index and rollups, agent state),
 *      batches of --batch records round-robin over --agents agents, --group
 *      batches per transaction (default 1: one commit per batch), with
 *      store_tick (flushes, hour/day builds) after each commit; generating
 *      the records is not timed;
 *   3. settle: flush and build every closed hour/day;
 *   4. queries, warm (one untimed run first, then the median of --reps):
 *      top-20 hosts/apps/ports/pairs by bytes over the last 24 h of data,
 *      flows --host (busy and ordinary hosts), flows by time.
 *
 * Synthetic traffic (deterministic splitmix64, --seed): --hosts addresses
 * (10 % internal clients, the rest servers with a heavy-headed popularity),
 * an application mix with matching ports, 3 % long flows reported as
 * partial records a minute apart, record ends advancing over --hours hours
 * of data with up to 15 s of idle-timeout jitter.
 *
 * Usage: ingest_bench [--records N] [--floor N] [--batch N] [--agents N]
 *                     [--hosts N] [--hours H] [--group N] [--reps N] [--seed S]
 *                     [--dir DIR] [--keep] [--reuse STORE]
 * (--reps 0: no queries; --floor 0: no floor; --reuse: queries only, on a
 * store kept by --keep, with the same --records, --hours and --seed.)
 * --detect: the ingest step runs twice on the same records, without and
 * with the detection engine (detect.h: baselines, detectors, alerts), into
 * two fresh stores, and prints both rates and their ratio (the queries then
 * run on the store with detection). The engine runs as in the daemon: on
 * its own thread (detect_thread.h), each committed batch handed over with
 * detect_thread_submit (a copy; waits when the queue is full) and
 * detect_thread_poll after each commit; the final drain of the queue is
 * timed with the ingest. Rates are per wall second and per CPU second of
 * the ingest (this) thread; the detection thread's CPU is printed apart.
 * Quick run (seconds): ingest_bench --records 2000000
 * Full run: ingest_bench --records 50000000 --floor 10000000
 * The store goes to a fresh directory under /var/tmp (or --dir) and is
 * removed at the end unless --keep. */
#include <errno.h>
#include <ftw.h>
#include <lmdb.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "addr.h"
#include "bytes.h"
#include "clock.h"
#include "detect.h"
#include "detect_thread.h"
#include "err.h"
#include "flowcodec.h"
#include "log.h"
#include "query.h"
#include "trail.h"
#include "store.h"

struct opts {
    uint64_t records, floor;
    unsigned batch, agents, hosts, hours, reps, group;
    uint64_t seed;
    const char *dir;
    const char *reuse; /* an existing store: queries only */
    int keep;
    int detect; /* --detect: ingest without, then with the detection engine */
};

/* ---- generator -------------------------------------------------------------- */

struct longf {
    uint64_t flow_id;
    unsigned client, server, app;
    uint16_t sport;
    int64_t next_end;
    unsigned left;
};

/* Long flows of one agent, oldest due first: every partial is 60 s after the
 * previous one, so a FIFO stays in due order. */
struct lqueue {
    struct longf *q;
    unsigned head, n, cap;
};

struct gen {
    uint64_t rng;
    unsigned hosts, clients;
    int64_t t0_ns, span_ns;
    uint64_t n, total;
    uint64_t next_flow;
    struct lqueue *lq; /* per agent */
    unsigned agents;
};

static uint64_t rnd(struct gen *g)
{
    uint64_t z = (g->rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static double unif(struct gen *g)
{
    return (double)(rnd(g) >> 11) * (1.0 / 9007199254740992.0);
}

struct appdef {
    const char *name;
    uint8_t proto;
    uint16_t port;
    unsigned weight; /* per mille */
};

static const struct appdef app_mix[] = {
    {"tls", 6, 443, 430},  {"quic", 17, 443, 140}, {"dns", 17, 53, 160}, {"http", 6, 80, 70},
    {"http", 6, 8080, 10}, {"ssh", 6, 22, 20},     {"ntp", 17, 123, 20}, {"smtp", 6, 25, 10},
    {"ldap", 6, 389, 10},  {"smb", 6, 445, 20},    {"", 6, 0, 80},       {"", 17, 0, 30},
};
#define NAPPS (sizeof app_mix / sizeof app_mix[0])

static unsigned pick_app(struct gen *g)
{
    unsigned x = (unsigned)(rnd(g) % 1000), acc = 0;
    for (unsigned i = 0; i < NAPPS; i++) {
        acc += app_mix[i].weight;
        if (x < acc)
            return i;
    }
    return 0;
}

static void host_ip(const struct gen *g, unsigned h, uint8_t ip[4])
{
    if (h < g->clients) { /* 10.x.y.z */
        ip[0] = 10;
        ip[1] = (uint8_t)(h >> 16);
        ip[2] = (uint8_t)(h >> 8);
        ip[3] = (uint8_t)h;
    } else { /* spread over public-looking space */
        uint32_t v = (uint32_t)(h * 2654435761u);
        ip[0] = (uint8_t)(11 + (v >> 24) % 180);
        ip[1] = (uint8_t)(v >> 16);
        ip[2] = (uint8_t)(v >> 8);
        ip[3] = (uint8_t)(v | 1);
    }
}

static unsigned pick_server(struct gen *g)
{
    /* heavy head: a few servers get most flows */
    unsigned span = g->hosts - g->clients;
    unsigned i = (unsigned)(pow(unif(g), 3.0) * span);
    return g->clients + (i < span ? i : span - 1);
}

/* Current data time for record number n. */
static int64_t data_time(const struct gen *g)
{
    return g->t0_ns + (int64_t)((double)g->span_ns * (double)g->n / (double)g->total);
}

struct recbuf {
    Vigil__FlowRecord pb;
    uint8_t src[4], dst[4];
};

static void fill(struct gen *g, struct recbuf *r, unsigned agent, uint64_t flow_id,
                 unsigned client, unsigned server, unsigned app, uint16_t sport, int64_t end,
                 int64_t dur, bool final, Vigil__EndReason why)
{
    const struct appdef *a = &app_mix[app];
    Vigil__FlowRecord *p = &r->pb;
    vigil__flow_record__init(p);
    host_ip(g, client, r->src);
    host_ip(g, server, r->dst);
    p->flow_id = flow_id;
    p->final = final;
    p->end_reason = why;
    p->end_ns = end;
    p->start_ns = end - dur;
    p->src_ip = (ProtobufCBinaryData){4, r->src};
    p->dst_ip = (ProtobufCBinaryData){4, r->dst};
    p->has_ports = 1;
    p->src_port = sport;
    p->dst_port = a->port ? a->port : (uint32_t)(1024 + (server * 7919u) % 64000);
    p->proto = a->proto;
    uint64_t pk = 1 + (uint64_t)(-log(1.0 - unif(g)) * 12.0);
    p->pkts_fwd = pk;
    p->bytes_fwd = pk * (52 + rnd(g) % 600);
    p->pkts_rev = pk - pk / 4;
    p->bytes_rev = p->pkts_rev * (52 + rnd(g) % 1400);
    if (a->proto == 6) {
        p->tcp_flags_fwd = 0x1b;
        p->tcp_flags_rev = 0x1b;
        p->state = (char *)"SF";
        p->has_rtt = 1;
        p->rtt_us = (uint32_t)(200 + rnd(g) % 50000);
    }
    p->direction = (char *)"outbound";
    p->app = (char *)a->name;
    (void)agent;
}

static void lq_push(struct lqueue *q, const struct longf *f)
{
    if (q->n < q->cap)
        q->q[(q->head + q->n++) % q->cap] = *f;
}

/* Fills one batch of n records for `agent`. */
static void gen_batch(struct gen *g, unsigned agent, unsigned agents, struct recbuf *rb,
                      Vigil__FlowRecord **pp, unsigned n)
{
    unsigned per_agent = g->clients / agents ? g->clients / agents : 1;
    struct lqueue *lq = &g->lq[agent];
    for (unsigned i = 0; i < n; i++, g->n++) {
        int64_t now = data_time(g);
        struct recbuf *r = &rb[i];
        pp[i] = &r->pb;
        /* the next partial of a long flow, when one is due */
        if (lq->n && lq->q[lq->head].next_end <= now) {
            struct longf l = lq->q[lq->head];
            lq->head = (lq->head + 1) % lq->cap;
            lq->n--;
            bool last = --l.left == 0;
            fill(g, r, agent, l.flow_id, l.client, l.server, l.app, l.sport, l.next_end,
                 59 * NS_PER_SEC, last,
                 last ? VIGIL__END_REASON__END_FIN : VIGIL__END_REASON__END_ACTIVE);
            l.next_end += 60 * NS_PER_SEC;
            if (!last)
                lq_push(lq, &l);
            continue;
        }
        unsigned client = agent * per_agent + (unsigned)(rnd(g) % per_agent);
        unsigned server = pick_server(g), app = pick_app(g);
        uint16_t sport = (uint16_t)(32768 + rnd(g) % 28000);
        uint64_t id = ((uint64_t)agent << 40) | ++g->next_flow;
        int64_t end = now - (int64_t)(rnd(g) % (15 * NS_PER_SEC));
        if (rnd(g) % 100 < 3 && lq->n < lq->cap) { /* a long flow: its first partial now */
            struct longf l = {id, client, server, app, sport, end + 60 * NS_PER_SEC,
                              2 + (unsigned)(rnd(g) % 12)};
            lq_push(lq, &l);
            fill(g, r, agent, id, client, server, app, sport, end, 59 * NS_PER_SEC, false,
                 VIGIL__END_REASON__END_ACTIVE);
            continue;
        }
        fill(g, r, agent, id, client, server, app, sport, end,
             (int64_t)(rnd(g) % (5 * NS_PER_SEC)), true, VIGIL__END_REASON__END_IDLE);
    }
}

static void gen_init(struct gen *g, const struct opts *o, uint64_t total)
{
    memset(g, 0, sizeof *g);
    g->rng = o->seed;
    g->hosts = o->hosts;
    g->clients = o->hosts / 10 ? o->hosts / 10 : 1;
    g->span_ns = (int64_t)o->hours * 3600 * NS_PER_SEC;
    g->t0_ns = INT64_C(1735689600) * NS_PER_SEC; /* 2025-01-01 */
    g->total = total;
    g->agents = o->agents;
    g->lq = calloc(o->agents, sizeof *g->lq);
    for (unsigned a = 0; g->lq && a < o->agents; a++) {
        g->lq[a].cap = 1u << 16;
        if (!(g->lq[a].q = malloc(g->lq[a].cap * sizeof *g->lq[a].q))) {
            fprintf(stderr, "out of memory\n");
            exit(1);
        }
    }
    if (!g->lq) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
}

static void gen_free(struct gen *g)
{
    for (unsigned a = 0; a < g->agents; a++)
        free(g->lq[a].q);
    free(g->lq);
}

/* ---- helpers --------------------------------------------------------------------- */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* This thread's seconds waiting for a CPU while runnable (preempted by
 * other work on a shared machine), from the scheduler's statistics; 0 if
 * the kernel keeps none. */
static double runq_s(void)
{
    unsigned long long on = 0, wait = 0;
    FILE *f = fopen("/proc/thread-self/schedstat", "r");
    if (f) {
        if (fscanf(f, "%llu %llu", &on, &wait) != 2)
            wait = 0;
        fclose(f);
    }
    return (double)wait / 1e9;
}

static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static uint64_t file_size(const char *dir, const char *name)
{
    char p[4200];
    struct stat sb;
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return stat(p, &sb) == 0 ? (uint64_t)sb.st_blocks * 512 : 0;
}

static void die_lmdb(const char *what, int rc)
{
    fprintf(stderr, "%s: %s\n", what, mdb_strerror(rc));
    exit(1);
}

/* ---- 1. the floor --------------------------------------------------------------- */

static void run_floor(const struct opts *o, const char *dir)
{
    struct gen g;
    struct recbuf *rb = malloc(o->batch * sizeof *rb);
    Vigil__FlowRecord **pp = malloc(o->batch * sizeof *pp);
    MDB_env *env;
    MDB_dbi dbi;
    MDB_txn *txn;
    uint64_t seq = 0, done = 0;
    double t = 0, c = 0;
    int rc;

    mkdir(dir, 0700);
    if ((rc = mdb_env_create(&env)) || (rc = mdb_env_set_mapsize(env, (size_t)1 << 40)) ||
        (rc = mdb_env_open(env, dir, MDB_NOTLS, 0600)))
        die_lmdb("floor env", rc);
    if ((rc = mdb_txn_begin(env, NULL, 0, &txn)) || (rc = mdb_dbi_open(txn, NULL, 0, &dbi)) ||
        (rc = mdb_txn_commit(txn)))
        die_lmdb("floor dbi", rc);
    gen_init(&g, o, o->records);
    while (done < o->floor) {
        unsigned n = (unsigned)(o->floor - done < o->batch ? o->floor - done : o->batch);
        gen_batch(&g, (unsigned)((done / o->batch) % o->agents), o->agents, rb, pp, n);
        /* encode first (the store encodes inside its timing; so do we) */
        double t1 = now_s(), c1 = cpu_s();
        if ((rc = mdb_txn_begin(env, NULL, 0, &txn)))
            die_lmdb("floor txn", rc);
        for (unsigned i = 0; i < n; i++) {
            struct sflow f;
            uint8_t key[12], val[FLOWCODEC_MAX];
            if (flowcodec_from_pb(pp[i], &f.rec) != 0)
                continue;
            f.agent_id = 1;
            f.records = 1;
            put_be32(key, (uint32_t)(f.rec.end_ns / NS_PER_SEC));
            put_be64(key + 4, ++seq);
            MDB_val k = {12, key}, v = {flowcodec_encode(&f, val), val};
            if ((rc = mdb_put(txn, dbi, &k, &v, 0)))
                die_lmdb("floor put", rc);
        }
        if ((rc = mdb_txn_commit(txn)))
            die_lmdb("floor commit", rc);
        t += now_s() - t1;
        c += cpu_s() - c1;
        done += n;
    }
    uint64_t size = file_size(dir, "data.mdb");
    printf("floor   %10llu records  %7.2f s  %9.0f records/s  (cpu %7.0f records/s)  "
           "%.1f bytes/record on disk\n",
           (unsigned long long)done, t, (double)done / t, (double)done / c,
           (double)size / (double)done);
    mdb_env_close(env);
    gen_free(&g);
    free(rb);
    free(pp);
}

/* ---- 2-4. the store ------------------------------------------------------------------ */

static int count_cb(const struct store_flow *f, void *ctx)
{
    (void)f;
    (*(size_t *)ctx)++;
    return 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, unsigned n)
{
    qsort(v, n, sizeof *v, cmp_double);
    return n ? v[n / 2] : 0;
}

/* Do two answers list the same rows with the same figures? */
static bool same_rows(const struct top_result *a, const struct top_result *b)
{
    if (a->n != b->n || memcmp(&a->total, &b->total, sizeof a->total) != 0)
        return false;
    for (size_t i = 0; i < a->n; i++)
        if (memcmp(&a->rows[i].key, &b->rows[i].key, sizeof a->rows[i].key) != 0 ||
            memcmp(&a->rows[i].c, &b->rows[i].c, sizeof a->rows[i].c) != 0)
            return false;
    return true;
}

/* Times a top-20 by bytes; keep (if not NULL) receives the answer, then
 * complete however long it takes, and an answer in expect (if it holds
 * one) must equal it. */
static void time_top_vs(struct store *s, const struct opts *o, enum top_group grp,
                        const char *name, int64_t since, int64_t until, const char *span,
                        struct top_result *keep, const struct top_result *expect);

static void time_top(struct store *s, const struct opts *o, enum top_group grp, const char *name,
                     int64_t since, int64_t until, const char *span)
{
    time_top_vs(s, o, grp, name, since, until, span, NULL, NULL);
}

static void time_top_vs(struct store *s, const struct opts *o, enum top_group grp,
                        const char *name, int64_t since, int64_t until, const char *span,
                        struct top_result *keep, const struct top_result *expect)
{
    struct top_query q = {.group = grp, .order = TOP_BY_BYTES, .since_ns = since,
                          .until_ns = until, .limit = 20};
    if (keep) /* a reference answer: not cut short by the default 2 s bound */
        q.max_ns = 300 * NS_PER_SEC;
    struct top_result r;
    double ms[64];
    unsigned reps = o->reps < 64 ? o->reps : 64;
    if (store_query_top(s, &q, &r) != 0) { /* warm-up */
        printf("top %s failed\n", name);
        return;
    }
    top_result_free(&r);
    for (unsigned i = 0; i < reps; i++) {
        double t = now_s();
        int rc = store_query_top(s, &q, &r);
        ms[i] = (now_s() - t) * 1e3;
        if (rc) {
            printf("top %s failed: %s\n", name, vigil_strerror(rc));
            return;
        }
        if (i + 1 < reps)
            top_result_free(&r);
    }
    char top1[ADDR_STRLEN * 2 + 8] = "";
    if (r.n) {
        char a[ADDR_STRLEN], b[ADDR_STRLEN];
        switch (grp) {
        case TOP_HOST: addr_format(&r.rows[0].key.host, top1); break;
        case TOP_APP:
            snprintf(top1, sizeof top1, "%s", r.rows[0].key.app[0] ? r.rows[0].key.app : "(none)");
            break;
        case TOP_PORT:
            snprintf(top1, sizeof top1, "%u/%u", r.rows[0].key.port, r.rows[0].key.proto);
            break;
        default:
            snprintf(top1, sizeof top1, "%s-%s", addr_format(&r.rows[0].key.host, a),
                     addr_format(&r.rows[0].key.host_b, b));
        }
    }
    printf("query   top-20 %-5s %-9s %8.2f ms median  (%s%llu groups, %llu rows read, "
           "buckets d/h/m %u/%u/%u%s%s%s; #1 %s %.1f%%)\n",
           name, span, median(ms, reps), r.groups_approx ? "~" : "",
           (unsigned long long)r.groups, (unsigned long long)r.rows_read,
           r.buckets[2], r.buckets[1], r.buckets[0], r.ranked ? ", from the day's ranking" : "",
           r.standing ? ", from the standing ranking" : "",
           r.truncated ? ", TRUNCATED" : "", top1,
           r.n ? r.rows[0].share * 100 : 0.0);
    if (expect && expect->rows && !expect->truncated)
        printf("        the same rows and totals as the merge: %s\n",
               same_rows(&r, expect) ? "yes" : "NO");
    if (keep)
        *keep = r;
    else
        top_result_free(&r);
}

static void time_flows(struct store *s, const struct opts *o, const char *name,
                       const struct flow_query *q)
{
    double ms[64];
    unsigned reps = o->reps < 64 ? o->reps : 64;
    size_t n = 0;
    struct flow_query_stats st;
    store_query_flows(s, q, count_cb, &n, &st); /* warm-up */
    for (unsigned i = 0; i < reps; i++) {
        n = 0;
        double t = now_s();
        int rc = store_query_flows(s, q, count_cb, &n, &st);
        ms[i] = (now_s() - t) * 1e3;
        if (rc) {
            printf("flows %s failed: %s\n", name, vigil_strerror(rc));
            return;
        }
    }
    printf("query   flows %-24s %8.2f ms median  (%zu flows, %llu rows read%s)\n", name,
           median(ms, reps), n, (unsigned long long)st.rows_read,
           st.truncated ? ", TRUNCATED" : "");
}

/* What one ingest run measured, in seconds of the timed part. */
struct run_figs {
    double wall, cpu;  /* the ingest (this) thread */
    double runq;       /* of wall: waiting for a CPU (other work on the machine) */
    double blocked;    /* of wall: asleep (the LMDB writer lock, a full queue) */
    double det_cpu;    /* the detection thread's CPU */
};

/* Returns the ingest rate (records per wall second; *f, if not NULL, the
 * figures behind it); with_detect hands every applied batch to the
 * detection thread, timed with the rest. */
static double run_store(const struct opts *o, const char *dir, bool with_detect,
                        struct run_figs *f)
{
    struct store_config cfg;
    struct gen g;
    unsigned G = o->group;
    struct recbuf *rb = malloc((size_t)G * o->batch * sizeof *rb);
    Vigil__FlowRecord **pp = malloc((size_t)G * o->batch * sizeof *pp);
    Vigil__FlowBatch *fb = malloc(G * sizeof *fb);
    const Vigil__FlowBatch **bp = malloc(G * sizeof *bp);
    const char **names = malloc(G * sizeof *names);
    char (*name)[32] = malloc(G * sizeof *name);
    struct apply_result *res = malloc(G * sizeof *res);
    uint64_t *seqs = calloc(o->agents, sizeof *seqs);
    char err[256];
    uint64_t done = 0, merged = 0, nbatch = 0;
    double t_apply = 0, c_apply = 0, t_tick = 0, c_tick = 0, t_gen = 0;
    double c_dbatch = 0, c_dtick = 0; /* handing over, polling: shares of c_apply */
    double t_drain = 0;                /* the queue's last batches, after the loop */
    double q_timed = 0;                /* runq_s() during the timed parts */
    double det_cpu = 0;                /* the detection thread's */

    if (!rb || !pp || !fb || !bp || !names || !name || !res || !seqs) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    store_config_defaults(&cfg);
    cfg.map_size = (uint64_t)1 << 30;
    struct store *s = store_open(dir, &cfg, err, sizeof err);
    if (!s) {
        fprintf(stderr, "store_open: %s\n", err);
        exit(1);
    }
    struct detect *det = NULL;
    struct detect_thread *dth = NULL;
    if (with_detect) {
        struct detect_config dc;
        detect_config_defaults(&dc);
        if (!(det = detect_create(s, &dc, err, sizeof err)) ||
            !(dth = detect_thread_start(det, s, err, sizeof err))) {
            fprintf(stderr, "detection: %s\n", err);
            exit(1);
        }
    }
    gen_init(&g, o, o->records);
    double report = now_s();
    while (!o->reuse && done < o->records) {
        unsigned ng = 0;
        uint64_t in_group = 0;
        double tg = now_s();
        /* a group: what an ingest thread would find queued, one batch per agent in turn */
        while (ng < G && done + in_group < o->records) {
            uint64_t left = o->records - done - in_group;
            unsigned n = (unsigned)(left < o->batch ? left : o->batch);
            unsigned agent = (unsigned)(nbatch++ % o->agents);
            gen_batch(&g, agent, o->agents, rb + (size_t)ng * o->batch,
                      pp + (size_t)ng * o->batch, n);
            vigil__flow_batch__init(&fb[ng]);
            snprintf(name[ng], sizeof name[ng], "agent-%02u", agent);
            fb[ng].agent = name[ng];
            fb[ng].seq = ++seqs[agent];
            fb[ng].agent_epoch = 1;
            fb[ng].n_records = n;
            fb[ng].records = pp + (size_t)ng * o->batch;
            bp[ng] = &fb[ng];
            names[ng] = name[ng];
            ng++;
            in_group += n;
        }
        t_gen += now_s() - tg;

        double q1 = runq_s();
        double t1 = now_s(), c1 = cpu_s();
        int rc = store_apply_batches(s, bp, names, ng, res);
        double t2 = now_s(), c2 = cpu_s();
        if (rc == 0 && det) {
            double cb = cpu_s();
            for (unsigned i = 0; i < ng; i++)
                if (!res[i].duplicate)
                    detect_thread_submit(dth, bp[i], names[i]);
            double ct = cpu_s();
            detect_thread_poll(dth);
            t2 = now_s(), c2 = cpu_s(); /* handing over counts as applying */
            c_dbatch += ct - cb;
            c_dtick += c2 - ct;
        }
        if (rc == 0)
            rc = store_tick(s, 5 * NS_PER_MS);
        t_apply += t2 - t1;
        c_apply += c2 - c1;
        t_tick += now_s() - t2;
        c_tick += cpu_s() - c2;
        q_timed += runq_s() - q1;
        if (rc) {
            fprintf(stderr, "apply: %s\n", vigil_strerror(rc));
            exit(1);
        }
        for (unsigned i = 0; i < ng; i++)
            merged += res[i].merged;
        done += in_group;
        if (now_s() - report > 10) {
            report = now_s();
            fprintf(stderr, "  ... %llu records, %.0f records/s\n", (unsigned long long)done,
                    (double)done / (t_apply + t_tick));
        }
    }
    if (dth) { /* the daemon's shutdown: judge what is queued, as part of the ingest */
        double qd = runq_s(), td = now_s(), cd = cpu_s();
        detect_thread_stop(dth);
        t_drain = now_s() - td;
        q_timed += runq_s() - qd;
        t_apply += t_drain;
        c_apply += cpu_s() - cd;
    }
    double t = t_apply + t_tick, c = c_apply + c_tick;
    if (det) {
        struct detect_stats ds;
        struct detect_thread_stats ts;
        detect_thread_get_stats(dth, &ts);
        detect_flush(det);
        detect_get_stats(det, &ds);
        printf("detect  %llu alerts, %llu hosts with a baseline, %llu known destinations "
               "(%llu not stored), %llu records a full table could not track (%llu writes)\n",
               (unsigned long long)ds.alerts_new, (unsigned long long)ds.hosts,
               (unsigned long long)ds.known_dsts, (unsigned long long)ds.known_full,
               (unsigned long long)ds.table_full, (unsigned long long)ds.persists);
        printf("detect  thread: cpu %.2f s (%.2f us/record); ingest thread: cpu %.2f s "
               "handing over (%.3f us/record), %.2f s polling; queue full %llu times, waited "
               "%.2f s; last batches drained in %.2f s\n",
               (double)ts.cpu_ns / 1e9, (double)ts.cpu_ns / 1e3 / (double)(done ? done : 1),
               c_dbatch, c_dbatch * 1e6 / (double)(done ? done : 1), c_dtick,
               (unsigned long long)ts.waits, (double)ts.wait_ns / 1e9, t_drain);
        printf("detect  ingest thread: apply+hand over %.2f s wall, %.2f s cpu; upkeep %.2f s "
               "wall, %.2f s cpu; detection thread: %.2f s in detect_tick (longest %.0f ms)\n",
               t_apply, c_apply, t_tick, c_tick, (double)ts.tick_ns / 1e9,
               (double)ts.tick_max_ns / 1e6);
        det_cpu = (double)ts.cpu_ns / 1e9;
        detect_thread_free(dth);
        detect_destroy(det);
    }
    if (!o->reuse)
        printf("%s  %10llu records  %7.2f s  %9.0f records/s  (cpu %7.0f records/s; %u batch%s "
           "per commit; maintenance %.1f%%; %llu merged partials; generator %.1f s untimed)\n",
           with_detect ? "ingest+detect" : "ingest", (unsigned long long)done, t,
           (double)done / t, (double)done / c, G, G > 1 ? "es" : "",
           100.0 * t_tick / t, (unsigned long long)merged, t_gen);

    double ts = now_s();
    int rc = store_flush(s);
    for (int i = 0; rc == 0 && i < 100000; i++) {
        struct store_stats st0, st1;
        store_get_stats(s, &st0);
        rc = store_tick(s, NS_PER_SEC);
        store_get_stats(s, &st1);
        if (st1.compaction_rows == st0.compaction_rows)
            break;
    }
    struct store_stats st;
    store_get_stats(s, &st);
    printf("settle  %7.2f s  (flushes %llu, rollup rows %llu, compaction rows %llu, "
           "map grows %llu)\n",
           now_s() - ts, (unsigned long long)st.flushes,
           (unsigned long long)st.rollup_rows_written, (unsigned long long)st.compaction_rows,
           (unsigned long long)st.map_grows);
    uint64_t size = file_size(dir, "data.mdb");
    printf("store   %.2f GB on disk, %.1f bytes/record (map %.1f GB used of %.1f GB)\n",
           (double)size / 1e9, (double)size / (double)(done ? done : o->records),
           (double)st.map_used / 1e9,
           (double)st.map_size / 1e9);
    if (with_detect)
        printf("detect  %.2f GB on disk (baselines, known destinations, alerts)\n",
               (double)file_size(dir, "detect/data.mdb") / 1e9);

    double rate = t > 0 ? (double)done / t : 0;
    if (f) {
        *f = (struct run_figs){t, c, q_timed, t - c - q_timed, det_cpu};
        if (f->blocked < 0)
            f->blocked = 0;
        printf("%s  ingest thread %.2f s = cpu %.2f + waiting for a cpu %.2f + blocked %.2f\n",
               with_detect ? "ingest+detect" : "ingest", t, c, q_timed, f->blocked);
    }
    if (o->reps == 0 || (o->detect && !with_detect)) { /* ingest only */
        store_close(s);
        gen_free(&g);
        free(rb);
        free(pp);
        free(fb);
        free(bp);
        free(names);
        free(name);
        free(res);
        free(seqs);
        return rate;
    }
    /* queries over the last 24 h of data */
    int64_t until = g.t0_ns + g.span_ns + 60 * NS_PER_SEC, since = until - 24 * 3600 * NS_PER_SEC;
    /* merged row by row, before the standing ranking exists */
    struct top_result by_merge[TOP_GROUP_COUNT];
    memset(by_merge, 0, sizeof by_merge);
    time_top_vs(s, o, TOP_HOST, "host", since, until, "24h merge", &by_merge[TOP_HOST], NULL);
    time_top_vs(s, o, TOP_APP, "app", since, until, "24h merge", &by_merge[TOP_APP], NULL);
    time_top_vs(s, o, TOP_PORT, "port", since, until, "24h merge", &by_merge[TOP_PORT], NULL);
    time_top_vs(s, o, TOP_PAIR, "pair", since, until, "24h merge", &by_merge[TOP_PAIR], NULL);
    /* the standing trailing ranking (trail.h), as its thread builds it */
    double tb = now_s(), cb = cpu_s();
    int trc = store_trail_refresh(s, 0);
    struct trail_info ti;
    store_trail_info(s, &ti);
    printf("trail   standing ranking built in %.2f s (cpu %.2f s)%s%s; range ends %lld s "
           "before the queries' until\n", now_s() - tb, cpu_s() - cb,
           trc ? ": " : "", trc ? vigil_strerror(trc) : "",
           (long long)((until - ti.until_ns) / NS_PER_SEC));
    time_top_vs(s, o, TOP_HOST, "host", since, until, "24h", NULL, &by_merge[TOP_HOST]);
    time_top_vs(s, o, TOP_APP, "app", since, until, "24h", NULL, &by_merge[TOP_APP]);
    time_top_vs(s, o, TOP_PORT, "port", since, until, "24h", NULL, &by_merge[TOP_PORT]);
    time_top_vs(s, o, TOP_PAIR, "pair", since, until, "24h", NULL, &by_merge[TOP_PAIR]);
    for (int i = 0; i < TOP_GROUP_COUNT; i++)
        top_result_free(&by_merge[i]);
    /* the same a while after the build: the query's edges move on, the
     * minutes between are merged, signed */
    static const int shift_min[] = {10, 30};
    for (size_t i = 0; i < sizeof shift_min / sizeof shift_min[0]; i++) {
        char span[16];
        int64_t d = shift_min[i] * 60 * NS_PER_SEC;
        snprintf(span, sizeof span, "24h -%dm", shift_min[i]);
        time_top(s, o, TOP_HOST, "host", since - d, until - d, span);
        time_top(s, o, TOP_PAIR, "pair", since - d, until - d, span);
    }
    /* the first whole calendar day of data, answered by the day tier */
    int64_t day = g.t0_ns - g.t0_ns % (86400 * NS_PER_SEC);
    if (day + 86400 * NS_PER_SEC <= g.t0_ns + g.span_ns - 3 * 3600 * NS_PER_SEC) {
        time_top(s, o, TOP_HOST, "host", day, day + 86400 * NS_PER_SEC, "day");
        time_top(s, o, TOP_PORT, "port", day, day + 86400 * NS_PER_SEC, "day");
        time_top(s, o, TOP_PAIR, "pair", day, day + 86400 * NS_PER_SEC, "day");
    }

    struct flow_query fq = {.has_host = true, .since_ns = since, .until_ns = until, .limit = 100};
    uint8_t ip[4];
    host_ip(&g, g.clients, ip); /* the busiest server */
    addr_from_v4(&fq.host, ip);
    time_flows(s, o, "--host busiest 24h", &fq);
    host_ip(&g, 17, ip); /* an ordinary client */
    addr_from_v4(&fq.host, ip);
    time_flows(s, o, "--host client 24h", &fq);
    fq.limit = 10000;
    time_flows(s, o, "--host client all 24h", &fq);
    fq.has_port = true;
    fq.port = 53;
    fq.limit = 100;
    time_flows(s, o, "--host client --port 53", &fq);
    struct flow_query tq = {.since_ns = until - 3600 * NS_PER_SEC, .until_ns = until, .limit = 100};
    time_flows(s, o, "newest 100 (1h)", &tq);
    tq.app[0] = 's', tq.app[1] = 's', tq.app[2] = 'h';
    time_flows(s, o, "--app ssh newest 100", &tq);

    store_close(s);
    gen_free(&g);
    free(rb);
    free(pp);
    free(fb);
    free(bp);
    free(names);
    free(name);
    free(res);
    free(seqs);
    return rate;
}

static void usage(void)
{
    fprintf(stderr, "usage: ingest_bench [--records N] [--floor N] [--batch N] [--agents N] "
                    "[--hosts N] [--hours H] [--group N] [--reps N] [--seed S] [--dir DIR] "
                    "[--keep] [--reuse STORE] [--detect]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    struct opts o = {.records = 2000000, .floor = UINT64_MAX, .batch = 1000, .agents = 8,
                     .hosts = 100000, .hours = 36, .reps = 7, .seed = 1, .dir = NULL,
                     .group = 1};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--keep")) {
            o.keep = 1;
            continue;
        }
        if (!strcmp(a, "--detect")) {
            o.detect = 1;
            continue;
        }
        if (i + 1 >= argc)
            usage();
        const char *v = argv[++i];
        if (!strcmp(a, "--records"))
            o.records = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--floor"))
            o.floor = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--batch"))
            o.batch = (unsigned)strtoul(v, NULL, 10);
        else if (!strcmp(a, "--agents"))
            o.agents = (unsigned)strtoul(v, NULL, 10);
        else if (!strcmp(a, "--hosts"))
            o.hosts = (unsigned)strtoul(v, NULL, 10);
        else if (!strcmp(a, "--hours"))
            o.hours = (unsigned)strtoul(v, NULL, 10);
        else if (!strcmp(a, "--group"))
            o.group = (unsigned)strtoul(v, NULL, 10);
        else if (!strcmp(a, "--reps"))
            o.reps = (unsigned)strtoul(v, NULL, 10);
        else if (!strcmp(a, "--seed"))
            o.seed = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--dir"))
            o.dir = v;
        else if (!strcmp(a, "--reuse"))
            o.reuse = v;
        else
            usage();
    }
    if (!o.records || !o.batch || o.batch > STORE_MAX_BATCH_RECORDS || !o.agents || o.hosts < 100 ||
        !o.hours || !o.group || o.group > STORE_MAX_GROUP)
        usage();
    if (o.floor > o.records)
        o.floor = o.records;
    vigil_log_level = LOG_LVL_WARN;

    if (o.reuse) { /* queries on a store kept by --keep, same --records/--hours/--seed */
        vigil_log_level = LOG_LVL_WARN;
        printf("ingest_bench: queries on %s\n", o.reuse);
        run_store(&o, o.reuse, false, NULL);
        return 0;
    }
    char base[4096], fdir[4200], sdir[4200];
    snprintf(base, sizeof base, "%s/vigil-bench-XXXXXX", o.dir ? o.dir : "/var/tmp");
    if (!mkdtemp(base)) {
        fprintf(stderr, "mkdtemp %s: %s\n", base, strerror(errno));
        return 1;
    }
    snprintf(fdir, sizeof fdir, "%s/floor", base);
    snprintf(sdir, sizeof sdir, "%s/store", base);
    printf("ingest_bench: %llu records (floor %llu), batches of %u, %u agents, %u hosts, %u h of "
           "data; store in %s\n",
           (unsigned long long)o.records, (unsigned long long)o.floor, o.batch, o.agents, o.hosts,
           o.hours, base);
    fflush(stdout);
    if (o.floor) {
        run_floor(&o, fdir);
        nftw(fdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
        fflush(stdout);
    }
    if (o.detect) {
        char ddir[4300];
        snprintf(ddir, sizeof ddir, "%s/store-detect", base);
        struct run_figs a, b;
        double off = run_store(&o, sdir, false, &a);
        nftw(sdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
        fflush(stdout);
        double on = run_store(&o, ddir, true, &b);
        double n = (double)o.records;
        /* Two free cores: each stage runs on its own, so the ingest thread
         * takes its CPU plus the time it was blocked (the detection thread's
         * write transactions, a full queue), unless the detection thread's
         * CPU is longer. Pessimistic: on a loaded machine the transactions
         * it waited for were preempted too. */
        double free_off = a.cpu + a.blocked;
        double free_on = b.cpu + b.blocked > b.det_cpu ? b.cpu + b.blocked : b.det_cpu;
        printf("detection: wall %.0f records/s without, %.0f with: %.2f of the rate kept\n", off,
               on, off > 0 ? on / off : 0);
        printf("detection: cpu (ingest thread) %.0f records/s without, %.0f with: %.2f; "
               "detection thread cpu %.2f us/record\n",
               n / a.cpu, n / b.cpu, b.cpu > 0 ? a.cpu / b.cpu : 0, b.det_cpu * 1e6 / n);
        printf("detection: on two free cores (ingest cpu + blocked, or the detection thread's "
               "cpu if longer) %.0f records/s without, %.0f with: %.2f of the rate kept\n",
               n / free_off, n / free_on, free_on > 0 ? free_off / free_on : 0);
    } else {
        run_store(&o, sdir, false, NULL);
    }
    if (!o.keep)
        nftw(base, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return 0;
}
