/* test_detect_thread.c — the detection engine on its own thread
 * (detect_thread.h) against the same engine run synchronously: the same
 * batches, many of them, through a queue that fills up (the producer must
 * wait), stopped with batches still queued; the alerts stored must be the
 * same ones. Also: the thread's own clock (idle flush with no producer
 * call), and the new-alert hook called on the producer's thread.
 *
 * Alerts are read back from the store (what `vigil alerts` reads). Stores
 * live under /dev/shm when it exists. */
#include <criterion/criterion.h>

#include <ftw.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "alerts.h"
#include "clock.h"
#include "detect.h"
#include "detect_thread.h"
#include "err.h"
#include "store.h"
#include "store_int.h"

#define T0_NS (INT64_C(1704067200) * NS_PER_SEC) /* 2024-01-01T00:00:00Z */
#define NBATCH 400u
#define PER_BATCH 250u
#define NAGENTS 4u
#define SCANNERS 12u    /* vertical scans hidden in the stream */
#define SWEEPERS 4u     /* horizontal scans */

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
    snprintf(g_dir, sizeof g_dir, "%s/vigil-dthread-XXXXXX", base);
    cr_assert_not_null(mkdtemp(g_dir));
}

static void teardown(void)
{
    nftw(g_dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

TestSuite(detect_thread, .init = setup, .fini = teardown, .timeout = 120);

/* ---- a deterministic stream of batches --------------------------------------- */

struct stream {
    Vigil__FlowBatch b[NBATCH];
    Vigil__FlowRecord *recs;   /* NBATCH * PER_BATCH */
    Vigil__FlowRecord **ptrs;
    uint8_t (*addrs)[8];
    char agent[NAGENTS][16];
};

static uint64_t rnd(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static void set_v4(uint8_t *to, unsigned a, unsigned b, unsigned c, unsigned d)
{
    to[0] = (uint8_t)a, to[1] = (uint8_t)b, to[2] = (uint8_t)c, to[3] = (uint8_t)d;
}

/* Record i of the stream: ordinary clients talking to a few hundred
 * servers (records a few ms of event time apart, so windows close along
 * the way), with vertical scans (one source, 150 ports, spread over two
 * batches) and horizontal scans (one source, port 445, 80 targets) mixed
 * in, some partial records of long flows, and a record now and then that
 * the engine must count as bad. */
static void make_record(struct stream *x, size_t i, uint64_t *seed)
{
    Vigil__FlowRecord *p = &x->recs[i];
    uint8_t *a = x->addrs[i];
    size_t batch = i / PER_BATCH;
    vigil__flow_record__init(p);
    p->flow_id = i + 1;
    p->final = true;
    p->start_ns = T0_NS + (int64_t)i * 30 * NS_PER_MS; /* 100K records: 50 min of data */
    p->end_ns = p->start_ns + (int64_t)(rnd(seed) % 2000) * NS_PER_MS;
    p->has_ports = true;
    p->proto = 6;
    p->src_port = 30000 + (uint32_t)(rnd(seed) % 30000);
    unsigned scan = (unsigned)(batch / (NBATCH / SCANNERS)); /* which scanner is active */
    unsigned k = (unsigned)(i % PER_BATCH);
    if (k < 75 && scan < SCANNERS) { /* 75 probes a batch, two batches a scanner: 150 ports */
        unsigned port = 1 + (unsigned)(batch % 2) * 75 + k;
        set_v4(a, 10, 9, scan, 9);
        set_v4(a + 4, 10, 0, scan, 5);
        p->dst_port = port;
        p->pkts_fwd = 1, p->bytes_fwd = 44;
        p->state = (char *)"S0";
        p->direction = (char *)"internal";
    } else if (k >= 75 && k < 115 && batch % 50 < 2 && batch / 50 < SWEEPERS) {
        unsigned t = (unsigned)(batch % 2) * 40 + (k - 75); /* 80 targets over two batches */
        set_v4(a, 10, 7, (unsigned)(batch / 50), 7);
        set_v4(a + 4, 10, 1, t / 200, 1 + t % 200);
        p->dst_port = 445;
        p->pkts_fwd = 2, p->bytes_fwd = 88;
        p->state = (char *)"S0";
        p->direction = (char *)"internal";
    } else {
        unsigned client = (unsigned)(rnd(seed) % 200), server = (unsigned)(rnd(seed) % 300);
        set_v4(a, 10, 0, 100 + client / 100, 1 + client % 100);
        set_v4(a + 4, 93, 184, server / 250, 1 + server % 250);
        p->dst_port = server % 3 ? 443 : 80;
        p->pkts_fwd = 6 + rnd(seed) % 20;
        p->bytes_fwd = p->pkts_fwd * 300;
        p->pkts_rev = 8 + rnd(seed) % 40;
        p->bytes_rev = p->pkts_rev * 1200;
        p->state = (char *)"SF";
        p->direction = (char *)"outbound";
        p->app = (char *)(server % 3 ? "tls" : "http");
        if (rnd(seed) % 20 == 0) { /* a long flow: a partial record, its final one later */
            p->flow_id = 1000000 + client;
            p->final = rnd(seed) % 2;
        }
    }
    p->src_ip = (ProtobufCBinaryData){4, a};
    p->dst_ip = (ProtobufCBinaryData){4, a + 4};
    if (i % 997 == 0)
        p->dst_ip.len = 3; /* malformed: counted as bad by both */
}

static void stream_init(struct stream *x)
{
    uint64_t seed = 42;
    size_t n = (size_t)NBATCH * PER_BATCH;
    x->recs = calloc(n, sizeof *x->recs);
    x->ptrs = calloc(n, sizeof *x->ptrs);
    x->addrs = calloc(n, sizeof *x->addrs);
    cr_assert(x->recs && x->ptrs && x->addrs);
    for (unsigned g = 0; g < NAGENTS; g++)
        snprintf(x->agent[g], sizeof x->agent[g], "agent-%u", g);
    for (size_t i = 0; i < n; i++) {
        make_record(x, i, &seed);
        x->ptrs[i] = &x->recs[i];
    }
    for (unsigned j = 0; j < NBATCH; j++) {
        vigil__flow_batch__init(&x->b[j]);
        x->b[j].agent = x->agent[j % NAGENTS];
        x->b[j].seq = j / NAGENTS + 1;
        x->b[j].n_records = PER_BATCH;
        x->b[j].records = x->ptrs + (size_t)j * PER_BATCH;
    }
}

static void stream_free(struct stream *x)
{
    free(x->recs);
    free(x->ptrs);
    free(x->addrs);
}

/* ---- engines and what they stored ----------------------------------------------- */

struct rig {
    char dir[128];
    struct store *st;
    struct detect *d;
};

static void rig_open(struct rig *g, const char *name, const struct detect_config *dc)
{
    char err[512] = "";
    struct store_config sc;
    store_config_defaults(&sc);
    sc.map_size = 64u << 20;
    snprintf(g->dir, sizeof g->dir, "%s/%s", g_dir, name);
    g->st = store_open(g->dir, &sc, err, sizeof err);
    cr_assert_not_null(g->st, "%s", err);
    g->d = detect_create(g->st, dc, err, sizeof err);
    cr_assert_not_null(g->d, "%s", err);
}

static void rig_close(struct rig *g)
{
    detect_destroy(g->d);
    store_close(g->st);
}

struct found {
    uint64_t dedup[512]; /* the identity of each stored alert: type and activity */
    uint8_t type[512];
    unsigned n, per_type[ALERT_TYPE_COUNT];
};

static void stored(struct rig *g, struct found *f)
{
    MDB_txn *txn;
    MDB_cursor *cur;
    MDB_val k, v;
    memset(f, 0, sizeof *f);
    cr_assert_eq(store__detect_begin(g->st, false, &txn), 0);
    cr_assert_eq(mdb_cursor_open(txn, g->st->ddb[DDB_ALERTS], &cur), 0);
    for (int rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        struct alert_row row;
        cr_assert_eq(alerts_decode(k.mv_data, k.mv_size, v.mv_data, v.mv_size, &row), 0);
        cr_assert_lt(f->n, 512u);
        cr_assert_lt(row.type, ALERT_TYPE_COUNT);
        f->dedup[f->n] = row.dedup;
        f->type[f->n++] = row.type;
        f->per_type[row.type]++;
    }
    mdb_cursor_close(cur);
    mdb_txn_abort(txn);
}

static bool has(const struct found *f, uint8_t type, uint64_t dedup)
{
    for (unsigned i = 0; i < f->n; i++)
        if (f->type[i] == type && f->dedup[i] == dedup)
            return true;
    return false;
}

/* The new-alert hook: which thread called it, how often. */
struct hook_log {
    pthread_t expect;
    unsigned calls, elsewhere;
};

static void hook(void *ctx, const struct alert *a)
{
    struct hook_log *h = ctx;
    (void)a;
    h->calls++; /* no lock: it must run on the producer's thread only */
    if (!pthread_equal(pthread_self(), h->expect))
        h->elsewhere++;
}

/* ---- tests -------------------------------------------------------------------------- */

Test(detect_thread, same_alerts_as_synchronous_with_back_pressure_and_drain)
{
    static struct stream x;
    struct rig sync_rig, thr_rig;
    struct detect_config dc;
    struct found fs, ft;
    struct detect_stats ss, ts;
    struct hook_log hl = {.expect = pthread_self()};
    char err[256] = "";

    stream_init(&x);
    detect_config_defaults(&dc);

    /* the reference: the engine on this thread, ticked after every batch
     * (as the detection thread does) */
    rig_open(&sync_rig, "sync", &dc);
    for (unsigned j = 0; j < NBATCH; j++) {
        detect_batch(sync_rig.d, &x.b[j], x.b[j].agent);
        detect_tick(sync_rig.d, vigil_monotonic_ns());
    }
    cr_assert_eq(detect_flush(sync_rig.d), 0);
    detect_get_stats(sync_rig.d, &ss);
    stored(&sync_rig, &fs);

    /* the same batches through the thread, as fast as the copies go */
    dc.on_new_alert = hook;
    dc.on_new_alert_ctx = &hl;
    rig_open(&thr_rig, "thread", &dc);
    struct detect_thread *t = detect_thread_start(thr_rig.d, thr_rig.st, err, sizeof err);
    cr_assert_not_null(t, "%s", err);
    for (unsigned j = 0; j < NBATCH; j++) {
        detect_thread_submit(t, &x.b[j], x.b[j].agent);
        if (j % 50 == 0)
            detect_thread_poll(t);
    }
    struct detect_thread_stats st;
    detect_thread_get_stats(t, &st);
    cr_assert_gt(st.queued, 0u, "stop must find batches still queued");
    detect_thread_stop(t); /* drains and joins */
    detect_thread_get_stats(t, &st);
    char line[600];
    detect_thread_status_text(t, line, sizeof line);
    cr_assert(strstr(line, "queue=0/"), "%s", line);
    cr_assert(strstr(line, "waits="), "%s", line);
    detect_thread_free(t);
    unsigned calls_by_thread = hl.calls;
    cr_assert_eq(detect_flush(thr_rig.d), 0); /* the caller's again after stop */
    detect_get_stats(thr_rig.d, &ts);
    stored(&thr_rig, &ft);

    cr_assert_eq(st.submitted, NBATCH);
    cr_assert_eq(st.judged, NBATCH, "every batch judged before stop returned");
    cr_assert_eq(st.records, (uint64_t)NBATCH * PER_BATCH);
    cr_assert_gt(st.waits, 0u, "the queue (%u slots) must have filled: %u batches",
                 DETECT_QUEUE_SLOTS, NBATCH);
    cr_assert_gt(st.wait_ns, 0);
    cr_assert_eq(st.lost, 0u);
    cr_assert_eq(ts.records, ss.records);
    cr_assert_eq(ts.records_bad, ss.records_bad);
    cr_assert_gt(ts.records_bad, 0u);
    cr_assert_eq(ts.continuations, ss.continuations);

    cr_log_info("%u alerts (%u port scans, %u horizontal); producer waited %llu times; "
                "%u hook calls from the thread",
                fs.n, fs.per_type[ALERT_PORT_SCAN], fs.per_type[ALERT_HORIZONTAL_SCAN],
                (unsigned long long)st.waits, hl.calls);
    /* what the stream holds was found, by both */
    cr_assert_geq(fs.per_type[ALERT_PORT_SCAN], SCANNERS, "sync found %u port scans",
                  fs.per_type[ALERT_PORT_SCAN]);
    cr_assert_geq(fs.per_type[ALERT_HORIZONTAL_SCAN], SWEEPERS, "sync found %u sweeps",
                  fs.per_type[ALERT_HORIZONTAL_SCAN]);
    cr_assert_eq(ft.n, fs.n, "thread %u alerts, synchronous %u", ft.n, fs.n);
    for (unsigned i = 0; i < fs.n; i++)
        cr_assert(has(&ft, fs.type[i], fs.dedup[i]), "alert %u (type %u) of the synchronous "
                  "engine is missing from the threaded one", i, fs.type[i]);
    cr_assert_eq(ts.alerts_new, ss.alerts_new);

    /* the hook saw every new alert raised while the thread ran, on this thread */
    cr_assert_eq(hl.elsewhere, 0u, "the hook ran on another thread");
    cr_assert_gt(calls_by_thread, 0u);
    cr_assert_eq(st.hooks, calls_by_thread);
    cr_assert_eq(st.hooks_dropped, 0u);
    cr_assert_eq(hl.calls, ts.alerts_new, "one hook call per new alert");

    rig_close(&sync_rig);
    rig_close(&thr_rig);
    stream_free(&x);
}

Test(detect_thread, the_thread_keeps_time_by_itself)
{
    struct rig g;
    struct detect_config dc;
    char err[256] = "";
    static Vigil__FlowRecord recs[150];
    static Vigil__FlowRecord *ptrs[150];
    static uint8_t addrs[150][8];
    Vigil__FlowBatch b = VIGIL__FLOW_BATCH__INIT;

    detect_config_defaults(&dc);
    dc.idle_flush_ns = 200 * NS_PER_MS;
    rig_open(&g, "idle", &dc);
    /* a scan of 150 ports well inside one window: only an idle flush can
     * judge it, since no later record closes the window */
    for (unsigned i = 0; i < 150; i++) {
        vigil__flow_record__init(&recs[i]);
        set_v4(addrs[i], 10, 9, 9, 9);
        set_v4(addrs[i] + 4, 10, 0, 0, 5);
        recs[i].src_ip = (ProtobufCBinaryData){4, addrs[i]};
        recs[i].dst_ip = (ProtobufCBinaryData){4, addrs[i] + 4};
        recs[i].flow_id = i + 1;
        recs[i].final = true;
        recs[i].start_ns = recs[i].end_ns = T0_NS + i * 10 * NS_PER_MS;
        recs[i].has_ports = true;
        recs[i].src_port = 40000;
        recs[i].dst_port = 1 + i;
        recs[i].proto = 6;
        recs[i].pkts_fwd = 1;
        recs[i].bytes_fwd = 44;
        recs[i].state = (char *)"S0";
        recs[i].direction = (char *)"internal";
        ptrs[i] = &recs[i];
    }
    b.agent = (char *)"a1";
    b.seq = 1;
    b.n_records = 150;
    b.records = ptrs;

    struct detect_thread *t = detect_thread_start(g.d, g.st, err, sizeof err);
    cr_assert_not_null(t, "%s", err);
    detect_thread_submit(t, &b, "a1");
    /* no call into the thread from here on: it must wake up by itself */
    struct detect_stats s = {0};
    struct found f = {0};
    for (int i = 0; i < 100 && f.per_type[ALERT_PORT_SCAN] == 0; i++) {
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
        stored(&g, &f); /* a reader beside the thread, like a query */
    }
    detect_get_stats(g.d, &s);
    cr_assert_eq(f.per_type[ALERT_PORT_SCAN], 1u, "the thread wrote no alert within 5 s");
    cr_assert_geq(s.idle_flushes, 1u);
    cr_assert_eq(s.alerts_new, 1u);
    detect_thread_free(t);
    rig_close(&g);
}

/* Ingest from another thread while the test holds a write transaction on
 * the detection engine's environment: the batch must commit anyway. */
struct ingest_job {
    struct store *st;
    const Vigil__FlowBatch *b;
    _Atomic int done; /* 0 running, 1 + the return code's sign after */
    int rc;
};

static void *ingest_one(void *arg)
{
    struct ingest_job *j = arg;
    j->rc = store_apply_batch(j->st, j->b, j->b->agent, NULL);
    atomic_store(&j->done, 1);
    return NULL;
}

Test(detect_thread, the_engines_writes_never_hold_up_ingest)
{
    static struct stream x;
    struct rig g;
    struct detect_config dc;
    MDB_txn *dtxn;
    pthread_t th;

    stream_init(&x);
    detect_config_defaults(&dc);
    rig_open(&g, "two_writers", &dc);
    /* the detection thread's side: a write transaction left open */
    cr_assert_eq(store__detect_begin(g.st, true, &dtxn), 0);
    struct ingest_job j = {.st = g.st, .b = &x.b[0]};
    cr_assert_eq(pthread_create(&th, NULL, ingest_one, &j), 0);
    for (int i = 0; i < 200 && !atomic_load(&j.done); i++) {
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    bool finished = atomic_load(&j.done);
    mdb_txn_abort(dtxn); /* lets a blocked ingest go, so the join below returns */
    pthread_join(th, NULL);
    cr_assert(finished, "ingest waited for the detection engine's write transaction");
    cr_assert_eq(j.rc, 0, "%s", vigil_strerror(j.rc));
    rig_close(&g);
    stream_free(&x);
}

Test(detect_thread, a_full_detection_map_is_counted_and_retried)
{
    static struct stream x;
    struct rig g;
    struct detect_config dc;
    struct store_config sc;
    struct detect_stats ds;
    char err[512] = "";

    stream_init(&x);
    /* A ceiling far too small for 60,000 known destinations: the engine's
     * writes fail, are counted and retried; the thread carries on. */
    store_config_defaults(&sc);
    sc.map_size = sc.map_size_max = 1u << 20;
    snprintf(g.dir, sizeof g.dir, "%s/small", g_dir);
    g.st = store_open(g.dir, &sc, err, sizeof err);
    cr_assert_not_null(g.st, "%s", err);
    detect_config_defaults(&dc);
    g.d = detect_create(g.st, &dc, err, sizeof err);
    cr_assert_not_null(g.d, "%s", err);

    struct detect_thread *t = detect_thread_start(g.d, g.st, err, sizeof err);
    cr_assert_not_null(t, "%s", err);
    for (unsigned j = 0; j < NBATCH; j++) {
        detect_thread_submit(t, &x.b[j], x.b[j].agent);
        detect_thread_poll(t);
    }
    detect_thread_free(t);
    cr_assert_neq(detect_flush(g.d), 0, "60,000 destinations fitted in a 1 MiB map");
    detect_get_stats(g.d, &ds);
    cr_log_info("%llu failed writes, %llu known destinations, %llu alerts",
                (unsigned long long)ds.persist_failed, (unsigned long long)ds.known_dsts,
                (unsigned long long)ds.alerts_new);
    cr_assert_gt(ds.persist_failed, 0u);
    cr_assert_geq(ds.alerts_new, SCANNERS, "detection stopped at the full map");
    rig_close(&g);
    stream_free(&x);
}
