/* zmq_poke.c — a raw ZeroMQ client for the fleet test: connects to
 * vigil-aggregator as an allowed agent key and sends what a broken or
 * hostile agent might (garbage, a truncated batch, several frames, an
 * unknown schema version, a batch under another agent's name, an
 * impossible record, a query with an agent key, an oversized message),
 * interleaved with good empty batches whose acks prove the aggregator is
 * still serving this very connection.
 *
 * usage: zmq_poke --connect EP --server-key FILE.pub --key FILE.key --agent NAME
 *                 [--first-seq N]
 * Prints one line per step; exit 0 when every expected answer came, 1 if
 * not, 2 for a wrong command line. The aggregator should end up counting:
 * frames 1, undecodable 2, bad_version 1, agent_name 1, invalid 1,
 * wrong_role 1, and one connection dropped (the oversized message). */
#include "clock.h"
#include "transport.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zmq.h>

#define WAIT_MS 5000

struct poke {
    void *ctx, *sock;
    const char *endpoint, *agent;
    char server_pub[KEY_Z85_LEN + 1];
    struct keypair me;
    int failures;
};

static bool open_socket(struct poke *p)
{
    char err[256];
    if (p->sock)
        zmq_close(p->sock);
    p->sock = transport_client(p->ctx, p->endpoint, p->server_pub, &p->me, false, err,
                               sizeof err);
    if (!p->sock)
        fprintf(stderr, "zmq_poke: %s\n", err);
    return p->sock != NULL;
}

/* Sends len bytes; waits (ZMQ_IMMEDIATE) for the connection up to WAIT_MS. */
static bool send_raw(struct poke *p, const void *data, size_t len, int flags)
{
    int64_t deadline = vigil_monotonic_ns() + WAIT_MS * NS_PER_MS;
    while (vigil_monotonic_ns() < deadline) {
        if (zmq_send(p->sock, data, len, flags | ZMQ_DONTWAIT) >= 0)
            return true;
        if (zmq_errno() != EAGAIN)
            break;
        zmq_pollitem_t it = {.socket = p->sock, .events = ZMQ_POLLOUT};
        zmq_poll(&it, 1, 50);
    }
    fprintf(stderr, "zmq_poke: send failed: %s\n", zmq_strerror(zmq_errno()));
    return false;
}

static void fill_record(Vigil__FlowRecord *r, uint8_t *src, uint8_t *dst, bool broken)
{
    int64_t now = vigil_wallclock_ns();
    vigil__flow_record__init(r);
    r->flow_id = 1;
    r->final = 1;
    r->start_ns = now - NS_PER_SEC;
    r->end_ns = now;
    r->src_ip.data = src;
    r->src_ip.len = broken ? 5 : 4; /* 5 bytes: no such address */
    r->dst_ip.data = dst;
    r->dst_ip.len = 4;
    r->has_ports = 1;
    r->src_port = 40000;
    r->dst_port = 443;
    r->proto = 6;
    r->pkts_fwd = 1;
    r->bytes_fwd = 60;
}

/* A batch envelope; nrec records (broken ones when asked). */
static bool pack_batch(const char *agent, uint64_t seq, unsigned nrec, bool broken,
                       uint8_t **buf, size_t *len)
{
    Vigil__FlowBatch b = VIGIL__FLOW_BATCH__INIT;
    Vigil__AgentCounters c = VIGIL__AGENT_COUNTERS__INIT;
    Vigil__Envelope env = VIGIL__ENVELOPE__INIT;
    Vigil__FlowRecord recs[4], *ptrs[4];
    uint8_t src[5] = {192, 0, 2, 1, 0}, dst[4] = {192, 0, 2, 2};

    if (nrec > 4)
        nrec = 4;
    for (unsigned i = 0; i < nrec; i++) {
        fill_record(&recs[i], src, dst, broken);
        ptrs[i] = &recs[i];
    }
    c.started_ns = vigil_wallclock_ns();
    b.agent = (char *)agent;
    b.seq = seq;
    b.n_records = nrec;
    b.records = ptrs;
    b.counters = &c;
    b.sent_ns = vigil_wallclock_ns();
    b.agent_epoch = 0x706f6b65; /* "poke" */
    env.body_case = VIGIL__ENVELOPE__BODY_BATCH;
    env.batch = &b;
    return envelope_pack(&env, buf, len) == 0;
}

/* Waits for one message; returns its envelope (caller frees) or NULL. */
static Vigil__Envelope *receive(struct poke *p, int ms)
{
    zmq_pollitem_t it = {.socket = p->sock, .events = ZMQ_POLLIN};
    if (zmq_poll(&it, 1, ms) <= 0)
        return NULL;
    zmq_msg_t m;
    zmq_msg_init(&m);
    if (zmq_msg_recv(&m, p->sock, 0) < 0) {
        zmq_msg_close(&m);
        return NULL;
    }
    Vigil__Envelope *env = NULL;
    char why[160];
    if (envelope_unpack(zmq_msg_data(&m), zmq_msg_size(&m), vigil_wallclock_ns(), &env, why,
                        sizeof why) != ENV_OK)
        fprintf(stderr, "zmq_poke: a malformed answer: %s\n", why);
    zmq_msg_close(&m);
    return env;
}

/* Sends a good empty batch and expects its ack. */
static void good_batch(struct poke *p, uint64_t seq, bool expect_duplicate)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    if (!pack_batch(p->agent, seq, 0, false, &buf, &len) || !send_raw(p, buf, len, 0)) {
        free(buf);
        p->failures++;
        return;
    }
    free(buf);
    Vigil__Envelope *env = receive(p, WAIT_MS);
    bool ok = env && env->body_case == VIGIL__ENVELOPE__BODY_ACK && env->ack->seq == seq &&
              (bool)env->ack->duplicate == expect_duplicate;
    printf("%s good batch %llu: %s\n", ok ? "ok  " : "FAIL", (unsigned long long)seq,
           !env ? "no ack" : env->body_case != VIGIL__ENVELOPE__BODY_ACK ? "not an ack"
           : ok ? (expect_duplicate ? "acked as a duplicate" : "acked") : "wrong ack");
    if (!ok)
        p->failures++;
    envelope_free(env);
}

static void send_step(struct poke *p, const char *what, const void *data, size_t len)
{
    bool ok = send_raw(p, data, len, 0);
    printf("%s sent %s (%zu bytes)\n", ok ? "ok  " : "FAIL", what, len);
    if (!ok)
        p->failures++;
}

static int usage(void)
{
    fprintf(stderr, "usage: zmq_poke --connect EP --server-key FILE.pub --key FILE.key "
                    "--agent NAME [--first-seq N]\n");
    return 2;
}

int main(int argc, char **argv)
{
    struct poke p = {0};
    const char *server_key = NULL, *key = NULL;
    char err[256];
    uint64_t seq = 1;

    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--connect") == 0)
            p.endpoint = argv[i + 1];
        else if (strcmp(argv[i], "--server-key") == 0)
            server_key = argv[i + 1];
        else if (strcmp(argv[i], "--key") == 0)
            key = argv[i + 1];
        else if (strcmp(argv[i], "--agent") == 0)
            p.agent = argv[i + 1];
        else if (strcmp(argv[i], "--first-seq") == 0)
            seq = strtoull(argv[i + 1], NULL, 10);
        else
            return usage();
    }
    if (argc % 2 == 0 || !p.endpoint || !server_key || !key || !p.agent || seq == 0)
        return usage();
    if (key_load_public(server_key, p.server_pub, err, sizeof err) != 0 ||
        key_load_pair(key, &p.me, err, sizeof err) != 0) {
        fprintf(stderr, "zmq_poke: %s\n", err);
        return 1;
    }
    p.ctx = zmq_ctx_new();
    if (!p.ctx || !open_socket(&p))
        return 1;

    good_batch(&p, seq++, false);

    uint8_t garbage[1000];
    for (size_t i = 0; i < sizeof garbage; i++)
        garbage[i] = (uint8_t)(0xff - i % 7);
    send_step(&p, "garbage", garbage, sizeof garbage);

    uint8_t *buf = NULL;
    size_t len = 0;
    if (pack_batch(p.agent, seq, 4, false, &buf, &len)) {
        send_step(&p, "a truncated batch", buf, len / 2);
        free(buf);
    }

    bool ok = send_raw(&p, "one", 3, ZMQ_SNDMORE) && send_raw(&p, "two", 3, ZMQ_SNDMORE) &&
              send_raw(&p, "three", 5, 0);
    printf("%s sent a message of three frames\n", ok ? "ok  " : "FAIL");
    p.failures += !ok;

    { /* schema version 99: packed by hand (envelope_pack sets the version) */
        Vigil__Ack ack = VIGIL__ACK__INIT;
        Vigil__Envelope env = VIGIL__ENVELOPE__INIT;
        uint8_t raw[64];
        env.schema_version = 99;
        env.body_case = VIGIL__ENVELOPE__BODY_ACK;
        env.ack = &ack;
        size_t n = vigil__envelope__pack(&env, raw);
        send_step(&p, "an unknown schema version", raw, n);
    }

    if (pack_batch("someone-else", seq, 1, false, &buf, &len)) {
        send_step(&p, "a batch under another agent's name", buf, len);
        free(buf);
    }
    if (pack_batch(p.agent, seq, 1, true, &buf, &len)) {
        send_step(&p, "a batch with a 5-byte address", buf, len);
        free(buf);
    }

    { /* a query with an agent key: answered with a refusal */
        Vigil__QueryRequest q = VIGIL__QUERY_REQUEST__INIT;
        Vigil__Envelope env = VIGIL__ENVELOPE__INIT;
        q.request_id = 7;
        q.kind = "agents";
        env.body_case = VIGIL__ENVELOPE__BODY_QUERY;
        env.query = &q;
        if (envelope_pack(&env, &buf, &len) == 0 && send_raw(&p, buf, len, 0)) {
            Vigil__Envelope *ans = receive(&p, WAIT_MS);
            bool refused = ans && ans->body_case == VIGIL__ENVELOPE__BODY_RESPONSE &&
                           !ans->response->ok && ans->response->request_id == 7;
            printf("%s a query with an agent key: %s\n", refused ? "ok  " : "FAIL",
                   refused ? ans->response->error : "not refused");
            p.failures += !refused;
            envelope_free(ans);
        } else {
            p.failures++;
        }
        free(buf);
    }

    good_batch(&p, seq, false);
    good_batch(&p, seq++, true);

    /* Over ZMQ_MAXMSGSIZE: the aggregator's libzmq drops the connection. */
    size_t big = TRANSPORT_MAX_MSG + 1;
    uint8_t *huge = calloc(1, big);
    if (huge) {
        send_step(&p, "an oversized message", huge, big);
        free(huge);
        Vigil__Envelope *ans = receive(&p, 500);
        printf("%s no answer to the oversized message\n", ans ? "FAIL" : "ok  ");
        p.failures += ans != NULL;
        envelope_free(ans);
    }

    /* A new connection is served as before. */
    if (open_socket(&p))
        good_batch(&p, seq++, false);
    else
        p.failures++;

    printf("%s\n", p.failures ? "zmq_poke: FAILED" : "zmq_poke: all answers as expected");
    explicit_bzero(&p.me, sizeof p.me);
    zmq_close(p.sock);
    zmq_ctx_term(p.ctx);
    return p.failures ? 1 : 0;
}
