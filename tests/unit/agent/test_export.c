/* test_export.c — batches and the exporter against a fake aggregator.
 *
 * The fake aggregator is a ROUTER on loopback in a thread of the test
 * process. It behaves like the real one where delivery is concerned: it
 * applies a batch whose sequence is above the last one applied, treats
 * anything at or below as a duplicate, and acks the last applied sequence
 * (cumulative). It can drop acks, ignore batches, go away and come back on
 * the same port. Most tests use the insecure (NULL) mechanism; one uses
 * CURVE with the real ZAP handler and generated keys.
 *
 * What is checked, always: the applied sequences are exactly 1..N (nothing
 * skipped, hence nothing sent out of order: a later batch applied first
 * would turn the earlier one into a "duplicate" and leave a hole), and the
 * applied records are exactly the ones emitted, each once. */
#include "batch.h"
#include "clock.h"
#include "err.h"
#include "export.h"
#include "log.h"
#include "spool.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

/* from test_spool.c */
void tspool_rmtree(const char *dir);
void tspool_mkdtemp(char buf[256], const char *tag);

#define T_START_NS INT64_C(1767225600000000000) /* 2026-01-01T00:00:00Z */
#define WAIT_MS 10000                           /* upper bound for what should happen */

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ---- records ---------------------------------------------------------------- */

static void make_record(struct flow_record *r, uint64_t id, bool v6)
{
    memset(r, 0, sizeof *r);
    r->flow_id = id;
    r->final = true;
    r->end_reason = END_FIN;
    r->start_ns = T_START_NS + (int64_t)id * 1000;
    r->end_ns = r->start_ns + 5000000;
    if (v6) {
        addr_parse("2001:db8::1", &r->src);
        addr_parse("2001:db8::2", &r->dst);
    } else {
        uint8_t a[4] = {10, 0, (uint8_t)(id >> 8), (uint8_t)id}, b[4] = {192, 0, 2, 7};
        addr_from_v4(&r->src, a);
        addr_from_v4(&r->dst, b);
    }
    r->src_port = (uint16_t)(1024 + id % 60000);
    r->dst_port = 443;
    r->has_ports = true;
    r->proto = 6;
    r->vlan = VLAN_NONE;
    r->pkts_fwd = 3;
    r->bytes_fwd = 180;
    r->pkts_rev = 2;
    r->bytes_rev = 4000;
    r->tcp_flags_fwd = 0x1b;
    r->tcp_flags_rev = 0x1b;
    r->state = STATE_SF;
    r->direction = DIR_OUTBOUND;
    snprintf(r->app, sizeof r->app, "tls");
    snprintf(r->tls_sni, sizeof r->tls_sni, "host%llu.example.com", (unsigned long long)id);
}

/* ---- batch conversion ----------------------------------------------------------- */

Test(batch, record_to_pb_v4_v6_and_optional_fields)
{
    struct flow_record r;
    Vigil__FlowRecord pb;

    make_record(&r, 7, false);
    r.vlan = 42;
    r.has_rtt = true;
    r.rtt_us = 1234;
    r.tunnel = TUNNEL_VXLAN;
    batch_record_to_pb(&r, &pb);
    cr_assert_eq(pb.src_ip.len, 4);
    cr_assert_eq(memcmp(pb.src_ip.data, "\x0a\x00\x00\x07", 4), 0);
    cr_assert_eq(pb.dst_ip.len, 4);
    cr_assert(pb.has_vlan);
    cr_assert_eq(pb.vlan, 42);
    cr_assert(pb.has_rtt);
    cr_assert_eq(pb.rtt_us, 1234);
    cr_assert_str_eq(pb.tunnel, "vxlan");
    cr_assert_str_eq(pb.state, "SF");
    cr_assert_str_eq(pb.direction, "outbound");
    cr_assert_str_eq(pb.app, "tls");
    cr_assert_str_eq(pb.tls_sni, "host7.example.com");
    cr_assert_eq(pb.end_reason, VIGIL__END_REASON__END_FIN);
    cr_assert(!pb.has_dns);
    cr_assert(!pb.has_icmp);

    make_record(&r, 8, true);
    r.proto = 58;
    r.has_ports = false;
    r.src_port = r.dst_port = 0;
    r.has_icmp = true;
    r.icmp_type = 128;
    r.has_dns = true;
    r.dns_qtype = 28;
    r.has_dns_rcode = true;
    r.dns_rcode = 3;
    snprintf(r.dns_qname, sizeof r.dns_qname, "example.org");
    r.state = STATE_NONE;
    r.direction = DIR_UNKNOWN;
    batch_record_to_pb(&r, &pb);
    cr_assert_eq(pb.src_ip.len, 16);
    cr_assert_eq(pb.src_ip.data[0], 0x20);
    cr_assert_eq(pb.dst_ip.data[15], 2);
    cr_assert(!pb.has_vlan);
    cr_assert(!pb.has_ports);
    cr_assert(pb.has_icmp);
    cr_assert_eq(pb.icmp_type, 128);
    cr_assert(pb.has_dns && pb.has_dns_rcode);
    cr_assert_eq(pb.dns_qtype, 28);
    cr_assert_eq(pb.dns_rcode, 3);
    cr_assert_str_eq(pb.dns_qname, "example.org");
    cr_assert_str_eq(pb.state, "");
    cr_assert_str_eq(pb.direction, "");
    cr_assert_str_eq(pb.tunnel, "");
}

Test(batch, builder_packs_a_valid_envelope)
{
    struct batch_builder *b = batch_builder_create(3);
    cr_assert_not_null(b);
    cr_assert_null(batch_builder_create(0));
    cr_assert_null(batch_builder_create(BATCH_MAX_RECORDS + 1));
    struct flow_record r;
    for (uint64_t i = 1; i <= 3; i++) {
        make_record(&r, i, i == 2);
        cr_assert(batch_builder_add(b, &r, 100 + (int64_t)i));
    }
    cr_assert(batch_builder_full(b));
    cr_assert_not(batch_builder_add(b, &r, 200));
    cr_assert_eq(batch_builder_oldest_ns(b), 101);

    struct batch_counters c = {.packets = 10, .bytes = 1000, .capture_drops = 2, .records = 3,
                               .spool_dropped_batches = 4, .started_ns = T_START_NS};
    struct batch_meta m = {.agent = "agent-1", .seq = 9, .epoch = 0xabcdef,
                           .sent_ns = T_START_NS + 1, .counters = &c};
    uint8_t *buf = NULL;
    size_t len = 0;
    uint32_t nrec = 0;
    struct batch_meta bad = m;
    bad.seq = 0;
    cr_assert_eq(batch_builder_pack(b, &bad, &buf, &len, &nrec), VIGIL_EINVAL);
    cr_assert_eq(batch_builder_count(b), 3, "a failed pack keeps the records");
    cr_assert_eq(batch_builder_pack(b, &m, &buf, &len, &nrec), 0);
    cr_assert_eq(nrec, 3);
    cr_assert_eq(batch_builder_count(b), 0);
    cr_assert_eq(batch_builder_oldest_ns(b), 0);

    Vigil__Envelope *env = NULL;
    char why[128] = "";
    cr_assert_eq(envelope_unpack(buf, len, T_START_NS, &env, why, sizeof why), ENV_OK, "%s", why);
    cr_assert_eq(env->body_case, VIGIL__ENVELOPE__BODY_BATCH);
    Vigil__FlowBatch *fb = env->batch;
    cr_assert_str_eq(fb->agent, "agent-1");
    cr_assert_eq(fb->seq, 9);
    cr_assert_eq(fb->agent_epoch, 0xabcdef);
    cr_assert_eq(fb->sent_ns, T_START_NS + 1);
    cr_assert_eq(fb->n_records, 3);
    cr_assert_eq(fb->records[0]->flow_id, 1);
    cr_assert_eq(fb->records[1]->src_ip.len, 16);
    cr_assert_eq(fb->records[2]->bytes_rev, 4000);
    cr_assert_not_null(fb->counters);
    cr_assert_eq(fb->counters->packets, 10);
    cr_assert_eq(fb->counters->capture_drops, 2);
    cr_assert_eq(fb->counters->spool_dropped_batches, 4);
    cr_assert_eq(fb->counters->started_ns, T_START_NS);
    envelope_free(env);
    free(buf);

    /* an empty batch carries the counters alone */
    cr_assert_eq(batch_builder_pack(b, &m, &buf, &len, &nrec), 0);
    cr_assert_eq(nrec, 0);
    cr_assert_eq(envelope_unpack(buf, len, T_START_NS, &env, why, sizeof why), ENV_OK, "%s", why);
    cr_assert_eq(env->batch->n_records, 0);
    envelope_free(env);
    free(buf);
    batch_builder_destroy(b);
}

Test(batch, largest_batch_fits_one_message)
{
    /* every string at its longest: the bound in batch.h must hold */
    struct batch_builder *b = batch_builder_create(BATCH_MAX_RECORDS);
    struct flow_record r;
    make_record(&r, 1, true);
    memset(r.dns_qname, 'a', FLOWREC_NAME_MAX - 1);
    memset(r.tls_sni, 'b', FLOWREC_NAME_MAX - 1);
    memset(r.http_host, 'c', FLOWREC_NAME_MAX - 1);
    memset(r.ja4, 'd', FLOWREC_JA4_MAX - 1);
    memset(r.app, 'e', FLOWREC_APP_MAX - 1);
    r.has_dns = r.has_dns_rcode = r.has_rtt = r.has_icmp = true;
    r.vlan = 4095;
    r.tunnel = TUNNEL_MPLS_UDP;
    r.state = STATE_RSTOS0;
    r.pkts_fwd = r.pkts_rev = r.bytes_fwd = r.bytes_rev = UINT64_MAX;
    r.flow_id = UINT64_MAX;
    Vigil__FlowRecord pb;
    batch_record_to_pb(&r, &pb);
    cr_assert_leq(vigil__flow_record__get_packed_size(&pb), BATCH_RECORD_MAX_PACKED);
    for (uint32_t i = 0; i < BATCH_MAX_RECORDS; i++)
        cr_assert(batch_builder_add(b, &r, 1));
    struct batch_counters c = {0};
    struct batch_meta m = {.agent = "a", .seq = 1, .epoch = 1, .sent_ns = 1, .counters = &c};
    uint8_t *buf;
    size_t len;
    cr_assert_eq(batch_builder_pack(b, &m, &buf, &len, NULL), 0);
    cr_assert_lt(len, TRANSPORT_MAX_MSG);
    free(buf);
    batch_builder_destroy(b);
}

/* ---- the fake aggregator ---------------------------------------------------------- */

#define FAKE_MAX 100000

struct fake {
    pthread_t thread;
    bool running;
    void *ctx;
    char endpoint[64]; /* tcp://127.0.0.1:PORT once bound */
    bool curve;
    struct keypair server_keys;
    char agents_dir[300];
    atomic_bool stop;
    atomic_int drop_acks;      /* acks still to drop */
    atomic_int ignore_batches; /* batches still to ignore (no apply, no ack) */
    atomic_bool ready;

    pthread_mutex_t mu;
    uint64_t last_applied, epoch, dups, gaps, empty, msgs;
    uint64_t applied[FAKE_MAX];
    size_t napplied;
    uint8_t *flow_seen; /* [FAKE_MAX]: how many times each flow id was applied */
    uint64_t flows;
    uint64_t counters_dropped_batches, counters_records;
    char agent[80];
    char user_id[80];
};

static void fake_ack(struct fake *f, void *sock, zmq_msg_t *id, uint64_t seq, bool dup)
{
    if (atomic_load(&f->drop_acks) > 0) {
        atomic_fetch_sub(&f->drop_acks, 1);
        return;
    }
    Vigil__Ack ack = VIGIL__ACK__INIT;
    ack.seq = seq;
    ack.duplicate = dup;
    Vigil__Envelope env = VIGIL__ENVELOPE__INIT;
    env.body_case = VIGIL__ENVELOPE__BODY_ACK;
    env.ack = &ack;
    uint8_t *buf;
    size_t len;
    if (envelope_pack(&env, &buf, &len) != 0)
        return;
    zmq_send(sock, zmq_msg_data(id), zmq_msg_size(id), ZMQ_SNDMORE | ZMQ_DONTWAIT);
    zmq_send(sock, buf, len, ZMQ_DONTWAIT);
    free(buf);
}

static void fake_handle(struct fake *f, void *sock, zmq_msg_t *id, zmq_msg_t *body)
{
    Vigil__Envelope *env = NULL;
    char why[128];
    if (envelope_unpack(zmq_msg_data(body), zmq_msg_size(body), vigil_wallclock_ns(), &env, why,
                        sizeof why) != ENV_OK) {
        fprintf(stderr, "fake aggregator: bad message: %s\n", why);
        return;
    }
    const char *uid = zmq_msg_gets(body, "User-Id");
    pthread_mutex_lock(&f->mu);
    f->msgs++;
    if (uid)
        snprintf(f->user_id, sizeof f->user_id, "%s", uid);
    if (env->body_case != VIGIL__ENVELOPE__BODY_BATCH) {
        pthread_mutex_unlock(&f->mu);
        envelope_free(env);
        return;
    }
    Vigil__FlowBatch *fb = env->batch;
    if (atomic_load(&f->ignore_batches) > 0) {
        atomic_fetch_sub(&f->ignore_batches, 1);
        pthread_mutex_unlock(&f->mu);
        envelope_free(env);
        return;
    }
    bool dup = fb->seq <= f->last_applied;
    if (dup) {
        f->dups++;
    } else {
        if (fb->seq != f->last_applied + 1)
            f->gaps++;
        f->last_applied = fb->seq;
        if (f->napplied < FAKE_MAX)
            f->applied[f->napplied++] = fb->seq;
        f->epoch = fb->agent_epoch;
        snprintf(f->agent, sizeof f->agent, "%s", fb->agent);
        if (fb->n_records == 0)
            f->empty++;
        for (size_t i = 0; i < fb->n_records; i++) {
            uint64_t fid = fb->records[i]->flow_id;
            if (fid < FAKE_MAX && f->flow_seen[fid] < 255)
                f->flow_seen[fid]++;
            f->flows++;
        }
        if (fb->counters) {
            f->counters_dropped_batches = fb->counters->spool_dropped_batches;
            f->counters_records = fb->counters->records;
        }
    }
    uint64_t ack = f->last_applied;
    pthread_mutex_unlock(&f->mu);
    envelope_free(env);
    fake_ack(f, sock, id, ack, dup);
}

static void *fake_thread(void *arg)
{
    struct fake *f = arg;
    char err[256] = "";
    void *sock;
    struct zap_handler *zap = NULL;
    if (f->curve) {
        zap = zap_start(f->ctx, f->agents_dir, NULL, err, sizeof err);
        cr_assert_not_null(zap, "zap_start: %s", err);
        sock = NULL;
        for (int i = 0; i < 200 && !sock; i++) {
            sock = transport_server(f->ctx, f->endpoint, &f->server_keys, false, err, sizeof err);
            if (!sock)
                sleep_ms(10);
        }
        cr_assert_not_null(sock, "transport_server: %s", err);
    } else {
        sock = zmq_socket(f->ctx, ZMQ_ROUTER);
        int one = 1, zero = 0;
        zmq_setsockopt(sock, ZMQ_ROUTER_MANDATORY, &one, sizeof one);
        zmq_setsockopt(sock, ZMQ_LINGER, &zero, sizeof zero);
        /* the previous socket on this port is closed asynchronously */
        int rc = -1;
        for (int i = 0; i < 200 && (rc = zmq_bind(sock, f->endpoint)) != 0; i++)
            sleep_ms(10);
        cr_assert_eq(rc, 0, "bind %s: %s", f->endpoint, zmq_strerror(zmq_errno()));
    }
    size_t len = sizeof f->endpoint;
    zmq_getsockopt(sock, ZMQ_LAST_ENDPOINT, f->endpoint, &len);
    atomic_store(&f->ready, true);
    while (!atomic_load(&f->stop)) {
        zmq_pollitem_t it = {sock, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&it, 1, 20) <= 0)
            continue;
        for (;;) {
            zmq_msg_t id, body;
            zmq_msg_init(&id);
            if (zmq_msg_recv(&id, sock, ZMQ_DONTWAIT) < 0) {
                zmq_msg_close(&id);
                break;
            }
            zmq_msg_init(&body);
            if (zmq_msg_more(&id) && zmq_msg_recv(&body, sock, 0) >= 0)
                fake_handle(f, sock, &id, &body);
            zmq_msg_close(&body);
            zmq_msg_close(&id);
        }
    }
    zmq_close(sock);
    if (zap)
        zap_stop(zap);
    return NULL;
}

static void fake_init(struct fake *f)
{
    memset(f, 0, sizeof *f);
    pthread_mutex_init(&f->mu, NULL);
    f->flow_seen = calloc(FAKE_MAX, 1);
    f->ctx = zmq_ctx_new();
    snprintf(f->endpoint, sizeof f->endpoint, "tcp://127.0.0.1:*");
}

/* Binds (the same port again after fake_down) and serves. */
static void fake_up(struct fake *f)
{
    atomic_store(&f->stop, false);
    atomic_store(&f->ready, false);
    cr_assert_eq(pthread_create(&f->thread, NULL, fake_thread, f), 0);
    f->running = true;
    for (int i = 0; i < 500 && !atomic_load(&f->ready); i++)
        sleep_ms(10);
    cr_assert(atomic_load(&f->ready));
}

static void fake_down(struct fake *f)
{
    if (!f->running)
        return;
    atomic_store(&f->stop, true);
    pthread_join(f->thread, NULL);
    f->running = false;
}

static void fake_free(struct fake *f)
{
    fake_down(f);
    zmq_ctx_term(f->ctx);
    free(f->flow_seen);
    pthread_mutex_destroy(&f->mu);
}

static uint64_t fake_flows(struct fake *f)
{
    pthread_mutex_lock(&f->mu);
    uint64_t n = f->flows;
    pthread_mutex_unlock(&f->mu);
    return n;
}

/* Every seq 1..N applied once in order, every flow id 1..nflows once. */
static void fake_check_exact(struct fake *f, uint64_t nflows)
{
    pthread_mutex_lock(&f->mu);
    cr_assert_eq(f->gaps, 0, "sequence gaps: something was skipped or reordered");
    for (size_t i = 0; i < f->napplied; i++)
        cr_assert_eq(f->applied[i], i + 1, "applied[%zu] = %llu", i,
                     (unsigned long long)f->applied[i]);
    cr_assert_eq(f->flows, nflows, "applied %llu records, emitted %llu",
                 (unsigned long long)f->flows, (unsigned long long)nflows);
    for (uint64_t id = 1; id <= nflows; id++)
        cr_assert_eq(f->flow_seen[id], 1, "flow %llu applied %u times", (unsigned long long)id,
                     f->flow_seen[id]);
    pthread_mutex_unlock(&f->mu);
}

/* ---- the exporter ------------------------------------------------------------------- */

static char dir[256];
static struct fake fk;

static void setup(void)
{
    tspool_mkdtemp(dir, "export");
    fake_init(&fk);
}

static void teardown(void)
{
    fake_free(&fk);
    tspool_rmtree(dir);
}

TestSuite(export, .init = setup, .fini = teardown, .timeout = 60);

static struct export_config test_config(void)
{
    struct export_config cfg;
    export_config_defaults(&cfg);
    cfg.endpoint = fk.endpoint;
    cfg.insecure = true;
    cfg.agent_name = "test-agent";
    cfg.spool_dir = dir;
    cfg.batch_records = 10;
    cfg.batch_ms = 50;
    cfg.heartbeat_ms = EXPORT_HEARTBEAT_OFF;
    cfg.window_batches = 8;
    cfg.resend_ms = 300;
    return cfg;
}

static struct exporter *start_exporter(const struct export_config *cfg)
{
    char err[256] = "";
    struct exporter *ex = export_create(cfg, err, sizeof err);
    cr_assert_not_null(ex, "export_create: %s", err);
    cr_assert_eq(export_start(ex), 0);
    return ex;
}

static void emit_range(struct exporter *ex, uint64_t from, uint64_t to)
{
    struct flow_record r;
    for (uint64_t id = from; id <= to; id++) {
        make_record(&r, id, id % 5 == 0);
        export_emit(ex, &r);
    }
}

static bool wait_flows(struct fake *f, uint64_t n)
{
    for (int i = 0; i < WAIT_MS / 10; i++) {
        if (fake_flows(f) >= n)
            return true;
        sleep_ms(10);
    }
    return false;
}

static bool wait_spooled(struct exporter *ex, uint64_t records)
{
    for (int i = 0; i < WAIT_MS / 10; i++) {
        struct spool_stats ss;
        export_get_spool_stats(ex, &ss);
        if (ss.records >= records)
            return true;
        sleep_ms(10);
    }
    return false;
}

Test(export, delivers_everything_in_order)
{
    fake_up(&fk);
    struct export_config cfg = test_config();
    struct exporter *ex = start_exporter(&cfg);
    emit_range(ex, 1, 2000);
    cr_assert(wait_flows(&fk, 2000), "delivered %llu of 2000",
              (unsigned long long)fake_flows(&fk));
    cr_assert_eq(export_stop(ex, 3000), 0);
    struct export_stats st;
    export_get_stats(ex, &st);
    cr_assert_eq(st.records_in, 2000);
    cr_assert_eq(st.records_lost, 0);
    cr_assert_eq(st.acked_through, 200);
    struct spool_stats ss;
    export_get_spool_stats(ex, &ss);
    cr_assert_eq(ss.batches, 0, "acked batches leave the spool");
    export_destroy(ex);
    fake_check_exact(&fk, 2000);
    cr_assert_str_eq(fk.agent, "test-agent");
    cr_assert_neq(fk.epoch, 0);
    cr_assert_eq(fk.counters_records, 2000);
}

Test(export, partial_batch_is_flushed_by_time)
{
    fake_up(&fk);
    struct export_config cfg = test_config();
    cfg.batch_records = 1000;
    cfg.batch_ms = 100;
    struct exporter *ex = start_exporter(&cfg);
    emit_range(ex, 1, 3); /* far below a full batch, and then silence */
    cr_assert(wait_flows(&fk, 3), "a quiet link still flushes");
    export_destroy(ex);
    fake_check_exact(&fk, 3);
}

Test(export, heartbeat_sends_counters_on_a_silent_link)
{
    fake_up(&fk);
    struct export_config cfg = test_config();
    cfg.heartbeat_ms = 100;
    struct exporter *ex = start_exporter(&cfg);
    struct batch_counters c = {.packets = 77, .capture_drops = 3};
    export_update_counters(ex, &c);
    bool got = false;
    for (int i = 0; i < WAIT_MS / 10 && !got; i++) {
        pthread_mutex_lock(&fk.mu);
        got = fk.empty >= 2;
        pthread_mutex_unlock(&fk.mu);
        sleep_ms(10);
    }
    cr_assert(got, "empty batches arrive");
    export_destroy(ex);
    fake_check_exact(&fk, 0);
}

Test(export, aggregator_down_then_up_drains_the_spool_in_order)
{
    fake_up(&fk); /* learn a free port ... */
    fake_down(&fk); /* ... and leave it empty */
    struct export_config cfg = test_config();
    struct exporter *ex = start_exporter(&cfg);
    emit_range(ex, 1, 1000);
    cr_assert(wait_spooled(ex, 1000), "batches wait in the spool");
    struct export_stats st;
    export_get_stats(ex, &st);
    cr_assert_eq(st.acked_through, 0);
    cr_assert_not(st.connected);

    fake_up(&fk);
    emit_range(ex, 1001, 1500); /* new records while draining */
    cr_assert(wait_flows(&fk, 1500), "delivered %llu of 1500",
              (unsigned long long)fake_flows(&fk));
    cr_assert_eq(export_stop(ex, 3000), 0);
    export_destroy(ex);
    fake_check_exact(&fk, 1500);
}

Test(export, aggregator_restarts_mid_stream)
{
    fake_up(&fk);
    struct export_config cfg = test_config();
    struct exporter *ex = start_exporter(&cfg);
    for (uint64_t round = 0; round < 4; round++) {
        emit_range(ex, round * 500 + 1, round * 500 + 250);
        fake_down(&fk);
        emit_range(ex, round * 500 + 251, round * 500 + 500);
        sleep_ms(50);
        fake_up(&fk);
    }
    cr_assert(wait_flows(&fk, 2000), "delivered %llu of 2000",
              (unsigned long long)fake_flows(&fk));
    cr_assert_eq(export_stop(ex, 3000), 0);
    export_destroy(ex);
    fake_check_exact(&fk, 2000);
}

Test(export, lost_acks_are_resent_and_deduplicated)
{
    fake_up(&fk);
    atomic_store(&fk.drop_acks, 15);
    struct export_config cfg = test_config();
    struct exporter *ex = start_exporter(&cfg);
    emit_range(ex, 1, 300);
    cr_assert(wait_flows(&fk, 300), "delivered %llu of 300", (unsigned long long)fake_flows(&fk));
    cr_assert_eq(export_stop(ex, 5000), 0);
    struct export_stats st;
    export_get_stats(ex, &st);
    cr_assert_gt(st.resends, 0);
    export_destroy(ex);
    fake_check_exact(&fk, 300);
    cr_assert_gt(fk.dups, 0, "the receiver saw resends and did not apply them twice");
}

/* The aggregator stops acking and applying (a long LMDB stall, say) and
 * comes back: everything arrives, in order. */
Test(export, aggregator_ignoring_batches_until_restart)
{
    fake_up(&fk);
    struct export_config cfg = test_config();
    struct exporter *ex = start_exporter(&cfg);
    emit_range(ex, 1, 100);
    cr_assert(wait_flows(&fk, 100));
    atomic_store(&fk.ignore_batches, 1000000);
    emit_range(ex, 101, 300);
    sleep_ms(500); /* resends pile into a receiver that drops them */
    fake_down(&fk);
    atomic_store(&fk.ignore_batches, 0);
    fake_up(&fk);
    cr_assert(wait_flows(&fk, 300), "delivered %llu of 300", (unsigned long long)fake_flows(&fk));
    cr_assert_eq(export_stop(ex, 3000), 0);
    export_destroy(ex);
    fake_check_exact(&fk, 300);
}

Test(export, agent_restart_keeps_undelivered_batches)
{
    fake_up(&fk);
    fake_down(&fk);
    struct export_config cfg = test_config();
    struct exporter *ex = start_exporter(&cfg);
    emit_range(ex, 1, 505); /* 50 full batches and a partial one */
    cr_assert_eq(export_stop(ex, 200), VIGIL_EAGAIN, "nothing acked: it stays in the spool");
    struct spool_stats ss;
    export_get_spool_stats(ex, &ss);
    cr_assert_eq(ss.records, 505, "the last partial batch was stored at stop");
    export_destroy(ex);

    /* next start: the old batches go first, then new ones */
    fake_up(&fk);
    ex = start_exporter(&cfg);
    emit_range(ex, 506, 800);
    cr_assert(wait_flows(&fk, 800), "delivered %llu of 800", (unsigned long long)fake_flows(&fk));
    cr_assert_eq(export_stop(ex, 3000), 0);
    export_destroy(ex);
    fake_check_exact(&fk, 800);
}

/* The agent is killed (SIGKILL) with batches spooled and unacknowledged;
 * the next start delivers them, once. */
Test(export, agent_killed_then_restarted_delivers_the_spool)
{
    fake_up(&fk);
    fake_down(&fk);
    struct export_config cfg = test_config();
    int p[2];
    cr_assert_eq(pipe(p), 0);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        close(p[0]);
        char err[256];
        struct exporter *ex = export_create(&cfg, err, sizeof err);
        if (!ex || export_start(ex) != 0)
            _exit(3);
        emit_range(ex, 1, 1000); /* 100 full batches */
        if (!wait_spooled(ex, 1000))
            _exit(4);
        char ok = 1;
        if (write(p[1], &ok, 1) != 1)
            _exit(5);
        for (;;)
            pause();
    }
    close(p[1]);
    char ok = 0;
    cr_assert_eq(read(p[0], &ok, 1), 1, "the child spooled its batches");
    close(p[0]);
    kill(pid, SIGKILL);
    int status;
    waitpid(pid, &status, 0);
    cr_assert(WIFSIGNALED(status));

    fake_up(&fk);
    struct exporter *ex = start_exporter(&cfg);
    cr_assert(wait_flows(&fk, 1000), "delivered %llu of 1000",
              (unsigned long long)fake_flows(&fk));
    emit_range(ex, 1001, 1100);
    cr_assert(wait_flows(&fk, 1100));
    cr_assert_eq(export_stop(ex, 3000), 0);
    export_destroy(ex);
    fake_check_exact(&fk, 1100);
}

Test(export, full_disk_keeps_batches_in_memory_then_stores_them)
{
    fake_up(&fk);
    fake_down(&fk);
    struct export_config cfg = test_config();
    struct exporter *ex = start_exporter(&cfg);
    spool__inject_write_error(export__spool(ex), ENOSPC);
    emit_range(ex, 1, 50); /* 5 batches: within the memory window of 8 */
    struct export_stats st;
    for (int i = 0; i < WAIT_MS / 10; i++) {
        export_get_stats(ex, &st);
        if (st.unspooled == 5)
            break;
        sleep_ms(10);
    }
    cr_assert_eq(st.unspooled, 5, "kept in memory: %llu", (unsigned long long)st.unspooled);
    struct spool_stats ss;
    export_get_spool_stats(ex, &ss);
    cr_assert_eq(ss.batches, 0);
    cr_assert_gt(ss.write_errors, 0);

    spool__inject_write_error(export__spool(ex), 0); /* space again */
    cr_assert(wait_spooled(ex, 50), "stored once the disk takes them");
    for (int i = 0; i < WAIT_MS / 10; i++) {
        export_get_stats(ex, &st);
        if (st.unspooled == 0)
            break;
        sleep_ms(10);
    }
    cr_assert_eq(st.unspooled, 0);

    fake_up(&fk);
    cr_assert(wait_flows(&fk, 50));
    cr_assert_eq(export_stop(ex, 3000), 0);
    export_destroy(ex);
    fake_check_exact(&fk, 50);
}

Test(export, full_disk_with_aggregator_up_still_delivers_once_numbers_are_safe)
{
    fake_up(&fk);
    struct export_config cfg = test_config();
    struct exporter *ex = start_exporter(&cfg);
    emit_range(ex, 1, 100);
    cr_assert(wait_flows(&fk, 100));
    /* the disk fills: batches stay in memory and are not sent while their
     * numbers cannot be made durable; delivered once the disk is back */
    spool__inject_write_error(export__spool(ex), ENOSPC);
    emit_range(ex, 101, 150);
    sleep_ms(300);
    cr_assert_eq(fake_flows(&fk), 100, "a number not on disk is never sent");
    spool__inject_write_error(export__spool(ex), 0);
    cr_assert(wait_flows(&fk, 150));
    cr_assert_eq(export_stop(ex, 3000), 0);
    export_destroy(ex);
    fake_check_exact(&fk, 150);
}

Test(export, spool_bound_drops_the_oldest_and_reports_it)
{
    fake_up(&fk);
    fake_down(&fk);
    struct export_config cfg = test_config();
    cfg.spool_max_bytes = SPOOL_MIN_MAX_BYTES; /* a few dozen batches of ~1.6 KB */
    cfg.window_batches = 2;
    struct exporter *ex = start_exporter(&cfg);
    emit_range(ex, 1, 1000);
    struct spool_stats ss;
    for (int i = 0; i < WAIT_MS / 10; i++) {
        export_get_spool_stats(ex, &ss);
        if (ss.records + ss.dropped_records >= 1000)
            break;
        sleep_ms(10);
    }
    cr_assert_eq(ss.newest_seq, 100);
    cr_assert_gt(ss.dropped_batches, 0);
    cr_assert_leq(ss.bytes, SPOOL_MIN_MAX_BYTES);
    uint64_t kept = ss.records, dropped_records = ss.dropped_records;
    cr_assert_eq(kept + dropped_records, 1000,
                 "every record is stored or counted as dropped: %llu + %llu (%llu batches)",
                 (unsigned long long)kept, (unsigned long long)dropped_records,
                 (unsigned long long)ss.batches);

    fake_up(&fk);
    cr_assert(wait_flows(&fk, kept), "delivered %llu of %llu", (unsigned long long)fake_flows(&fk),
              (unsigned long long)kept);
    /* one more batch reports the drops */
    emit_range(ex, 1001, 1010);
    cr_assert(wait_flows(&fk, kept + 10));
    cr_assert_eq(export_stop(ex, 3000), 0);
    export_destroy(ex);
    pthread_mutex_lock(&fk.mu);
    cr_assert_eq(fk.counters_dropped_batches, ss.dropped_batches);
    /* the newest survived, the oldest went: applied seqs are increasing, and
     * the flows seen are the last `kept` of the first 1000 plus the new 10 */
    for (uint64_t id = 1; id <= 1000; id++)
        cr_assert_eq(fk.flow_seen[id], id > 1000 - kept ? 1 : 0, "flow %llu",
                     (unsigned long long)id);
    for (size_t i = 1; i < fk.napplied; i++)
        cr_assert_gt(fk.applied[i], fk.applied[i - 1]);
    pthread_mutex_unlock(&fk.mu);
}

Test(export, curve_with_allowed_key)
{
    char keys[300], err[256] = "";
    snprintf(keys, sizeof keys, "%s/keys", dir);
    snprintf(fk.agents_dir, sizeof fk.agents_dir, "%s/agents", dir);
    cr_assert_eq(key_generate(keys, "aggregator", false, err, sizeof err), 0, "%s", err);
    cr_assert_eq(key_generate(fk.agents_dir, "test-agent", false, err, sizeof err), 0, "%s", err);
    char path[600];
    snprintf(path, sizeof path, "%s/aggregator.key", keys);
    cr_assert_eq(key_load_pair(path, &fk.server_keys, err, sizeof err), 0, "%s", err);
    struct keypair agent;
    snprintf(path, sizeof path, "%s/test-agent.key", fk.agents_dir);
    cr_assert_eq(key_load_pair(path, &agent, err, sizeof err), 0, "%s", err);
    /* only the .pub may stay in the allow list */
    cr_assert_eq(unlink(path), 0);
    fk.curve = true;
    fake_up(&fk);

    struct export_config cfg = test_config();
    cfg.insecure = false;
    cfg.server_public_z85 = fk.server_keys.public_z85;
    cfg.client = &agent;
    struct exporter *ex = start_exporter(&cfg);
    emit_range(ex, 1, 100);
    cr_assert(wait_flows(&fk, 100), "delivered %llu of 100", (unsigned long long)fake_flows(&fk));
    struct export_stats st;
    export_get_stats(ex, &st);
    cr_assert(st.connected);
    cr_assert_eq(export_stop(ex, 3000), 0);
    export_destroy(ex);
    fake_check_exact(&fk, 100);
    cr_assert_str_eq(fk.user_id, "agent:test-agent");
}

Test(export, bad_config_is_refused)
{
    struct export_config cfg = test_config();
    char err[256] = "";
    cfg.agent_name = "has space";
    cr_assert_null(export_create(&cfg, err, sizeof err));
    cr_assert(strstr(err, "agent name") != NULL, "%s", err);
    cfg = test_config();
    cfg.insecure = false;
    cr_assert_null(export_create(&cfg, err, sizeof err));
    cfg = test_config();
    cfg.batch_records = BATCH_MAX_RECORDS + 1;
    cr_assert_null(export_create(&cfg, err, sizeof err));
}
