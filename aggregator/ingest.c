/* ingest.c — the ROUTER loop (see ingest.h for the contract).
 *
 * Ordering is what makes delivery exact: an Ack leaves only after
 * store_apply_batches returned 0, i.e. after LMDB's durable commit of the
 * batch and the agent's sequence together. The batches that arrived in one
 * wake-up share that commit (group commit: one disk sync for all of them,
 * which is most of a small batch's cost). A crash before the commit loses
 * an un-acked batch the agent still holds; a crash after it loses an ack,
 * and the agent's resend is recognised as a duplicate. Nothing here needs
 * to be undone after a SIGKILL.
 *
 * The loop sleeps in zmq_poll on three sockets: the ROUTER, the query
 * service's answers and the ROUTER's monitor (connection counts for the
 * status line). A burst of INGEST_BURST messages at most is handled per
 * wake-up, then answers and timers get their turn.
 *
 * Non-goals: see ingest.h. */
#include "ingest.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "capture.h"
#include "capture_query.h"
#include "capture_rights.h"
#include "clock.h"
#include "err.h"
#include "log.h"
#include "retention.h"
#include "service.h"
#include "trail.h"
#include "detect.h"
#include "detect_thread.h"
#include "store.h"

#define MIB (1024.0 * 1024.0)

static const char *const bad_names[BAD_COUNT] = {
    [BAD_FRAMES] = "frames",           [BAD_TOO_LARGE] = "too_large",
    [BAD_UNDECODABLE] = "undecodable", [BAD_VERSION] = "bad_version",
    [BAD_NO_BODY] = "no_body",         [BAD_INVALID] = "invalid",
    [BAD_NO_IDENTITY] = "no_identity", [BAD_ROLE] = "wrong_role",
    [BAD_AGENT_NAME] = "agent_name",   [BAD_UNEXPECTED] = "unexpected",
};

const char *ingest_bad_name(enum ingest_bad b)
{
    return (unsigned)b < BAD_COUNT ? bad_names[b] : "?";
}

/* ---- who sent it, for logs ---------------------------------------------- */

struct sender {
    struct transport_peer peer;
    const char *address; /* Peer-Address, or "?" */
};

_Static_assert(INGEST_BURST <= STORE_MAX_GROUP, "one wake-up's batches fit one group");

/* A batch waiting for the group's commit: its own copies of what the
 * received frames held, since those are closed before the commit. */
struct queued_batch {
    zmq_msg_t rid;
    Vigil__Envelope *env; /* owns the batch */
    struct sender s;      /* s.address points to address */
    char address[64];
    const char *name;     /* the authenticated name: s.peer.name or the batch's agent */
};

struct ingest {
    struct ingest_config cfg;
    void *ctx;              /* borrowed */
    void *router;           /* transport_server */
    void *mon;              /* PAIR receiving the ROUTER's monitor events */
    struct service *svc;
    struct detect_thread *dt; /* cfg.detect on its own thread; NULL: detection off */
    char endpoint[256];
    char mon_ep[64];
    struct ingest_stats st;
    uint64_t handshakes, disconnects, handshake_failures; /* from the monitor */

    /* pause (see ingest.h) */
    bool paused;
    bool pause_logged;      /* a real pause (logged), not a short wait for a map grow */
    int64_t pause_until;    /* monotonic ns: the next batch is tried from then on */
    int64_t pause_ns;       /* current pause length, doubling */
    int64_t paused_since;   /* monotonic ns */
    uint64_t deferred_at_pause;

    /* timers, monotonic ns */
    int64_t next_tick, next_status, next_retention;
    int64_t next_capture_tick;
    uint64_t status_records, status_batches;
    int64_t status_at;

    /* Batches admitted during this wake-up, applied together in one
     * transaction (group commit) by apply_group(). */
    struct queued_batch group[INGEST_BURST];
    size_t ngroup;

    struct capture_rights *rights; /* the capture right as re-read on SIGHUP; owned */

    struct log_ratelimit rl_bad[BAD_COUNT];
    struct log_ratelimit rl_refused, rl_rejected, rl_send, rl_pause, rl_store, rl_epoch;
};

static const char *role_word(enum transport_role r)
{
    switch (r) {
    case TRANSPORT_ROLE_AGENT: return "agent";
    case TRANSPORT_ROLE_ANALYST: return "analyst";
    case TRANSPORT_ROLE_INSECURE: return "insecure peer";
    default: return "unidentified peer";
    }
}

/* "agent \"web-01\" at 10.1.2.3" into buf. */
static const char *sender_text(const struct sender *s, char *buf, size_t len)
{
    if (s->peer.role == TRANSPORT_ROLE_NONE || s->peer.role == TRANSPORT_ROLE_INSECURE)
        snprintf(buf, len, "%s at %s", role_word(s->peer.role), s->address);
    else
        snprintf(buf, len, "%s \"%s\" at %s", role_word(s->peer.role), s->peer.name,
                 s->address);
    return buf;
}

static void count_bad(struct ingest *in, enum ingest_bad why, const struct sender *s,
                      const char *detail)
{
    char who[160];
    in->st.bad[why]++;
    log_ratelimited(&in->rl_bad[why], LOG_LVL_WARN, "dropped a message from %s (%s): %s",
                    s ? sender_text(s, who, sizeof who) : "an unknown peer", bad_names[why],
                    detail);
}


/* ---- sending -------------------------------------------------------------- */

/* Sends [rid][data] without waiting. With ZMQ_ROUTER_MANDATORY a peer that
 * is gone (EHOSTUNREACH) or full (EAGAIN) makes it fail: counted, never
 * fatal; the agent resends unacked batches, the analyst times out. */
static void send_to(struct ingest *in, const void *rid, size_t rid_len, const void *data,
                    size_t len)
{
    if (zmq_send(in->router, rid, rid_len, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0 ||
        zmq_send(in->router, data, len, ZMQ_DONTWAIT) < 0) {
        in->st.send_failures++;
        log_ratelimited(&in->rl_send, LOG_LVL_INFO, "could not send to a peer: %s (counted)",
                        zmq_strerror(zmq_errno()));
    }
}

static void send_ack(struct ingest *in, zmq_msg_t *rid, uint64_t seq, bool duplicate)
{
    Vigil__Ack ack = VIGIL__ACK__INIT;
    Vigil__Envelope env = VIGIL__ENVELOPE__INIT;
    uint8_t *buf = NULL;
    size_t len = 0;

    ack.seq = seq;
    ack.duplicate = duplicate;
    env.body_case = VIGIL__ENVELOPE__BODY_ACK;
    env.ack = &ack;
    if (envelope_pack(&env, &buf, &len) != 0) {
        in->st.send_failures++;
        log_ratelimited(&in->rl_send, LOG_LVL_ERR, "cannot pack an ack: out of memory");
        return;
    }
    send_to(in, zmq_msg_data(rid), zmq_msg_size(rid), buf, len);
    in->st.acks++;
    free(buf);
}

static void send_error(struct ingest *in, zmq_msg_t *rid, uint64_t request_id, const char *msg)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    if (service_error(request_id, msg, &buf, &len) != 0)
        return;
    send_to(in, zmq_msg_data(rid), zmq_msg_size(rid), buf, len);
    free(buf);
}

/* ---- batches -------------------------------------------------------------- */

static void pause_ingest(struct ingest *in, int rc, const char *agent, uint64_t seq)
{
    int64_t now = vigil_monotonic_ns();
    in->st.deferred++;
    if (!in->paused || !in->pause_logged) {
        in->paused = true;
        in->pause_logged = true;
        in->paused_since = now;
        in->pause_ns = INGEST_PAUSE_FIRST_NS;
        in->deferred_at_pause = in->st.deferred - 1;
        in->st.pauses++;
        log_err("ingest paused: the store cannot take batch %" PRIu64 " of agent \"%s\": %s. "
                "Nothing is acknowledged meanwhile (agents keep their batches in their "
                "spools); retrying in %" PRId64 " s",
                seq, agent, vigil_strerror(rc), in->pause_ns / NS_PER_SEC);
    } else {
        in->pause_ns = in->pause_ns * 2 > INGEST_PAUSE_MAX_NS ? INGEST_PAUSE_MAX_NS
                                                              : in->pause_ns * 2;
        log_ratelimited(&in->rl_pause, LOG_LVL_WARN,
                        "ingest still paused: %s; next try in %" PRId64 " s",
                        vigil_strerror(rc), in->pause_ns / NS_PER_SEC);
    }
    in->pause_until = now + in->pause_ns;
}

static void resume_ingest(struct ingest *in)
{
    if (!in->paused)
        return;
    in->paused = false;
    if (!in->pause_logged)
        return;
    in->pause_logged = false;
    log_info("ingest resumed after %.1f s (%" PRIu64 " batches were deferred; agents resend "
             "them)",
             (double)(vigil_monotonic_ns() - in->paused_since) / (double)NS_PER_SEC,
             in->st.deferred - in->deferred_at_pause);
}

/* Checks who may send this batch; true when it may be applied. */
static bool batch_admitted(struct ingest *in, const struct sender *s, const Vigil__FlowBatch *b)
{
    if (!transport_peer_may(&s->peer, TRANSPORT_ROLE_AGENT)) {
        count_bad(in, BAD_ROLE, s, "a flow batch from a key that is not an agent's");
        return false;
    }
    if (s->peer.role == TRANSPORT_ROLE_AGENT && strcmp(b->agent, s->peer.name) != 0) {
        char detail[200];
        snprintf(detail, sizeof detail,
                 "the batch says agent \"%.64s\": an agent may only send its own batches "
                 "(not acknowledged)", b->agent);
        count_bad(in, BAD_AGENT_NAME, s, detail);
        return false;
    }
    if (in->paused && vigil_monotonic_ns() < in->pause_until) {
        in->st.deferred++;
        return false;
    }
    return true;
}

/* What follows a store call for one batch: counters, logs, the ack (only
 * after the commit), or a pause. */
static void batch_done(struct ingest *in, struct queued_batch *q, int rc,
                       const struct apply_result *res)
{
    const Vigil__FlowBatch *b = q->env->batch;
    char who[160];
    if (rc == 0) {
        resume_ingest(in);
        if (res->duplicate) {
            in->st.duplicates++;
        } else {
            in->st.batches++;
            in->st.records += res->stored;
            detect_thread_submit(in->dt, b, q->name); /* committed and new: judge it */
        }
        if (res->rejected) {
            in->st.rejected_records += res->rejected;
            log_ratelimited(&in->rl_rejected, LOG_LVL_WARN,
                            "the store skipped %" PRIu32 " records of batch %" PRIu64
                            " from %s (failed its checks; counted)",
                            res->rejected, b->seq, sender_text(&q->s, who, sizeof who));
        }
        if (res->epoch_reset)
            log_ratelimited(&in->rl_epoch, LOG_LVL_INFO,
                            "agent \"%s\" is a new installation (epoch %" PRIu64
                            "): its sequence starts again at %" PRIu64,
                            q->name, b->agent_epoch, b->seq);
        send_ack(in, &q->rid, b->seq, res->duplicate);
    } else if (rc == VIGIL_EINVAL) {
        /* Refused for good: acknowledged, or the agent resends it forever. */
        in->st.refused_batches++;
        log_ratelimited(&in->rl_refused, LOG_LVL_ERR,
                        "the store refused batch %" PRIu64 " (%zu records) of agent \"%s\" "
                        "from %s: %s; acknowledged so the agent moves on, its records are "
                        "NOT stored (counted as refused)",
                        b->seq, b->n_records, q->name, q->s.address, vigil_strerror(rc));
        send_ack(in, &q->rid, b->seq, false);
    } else if (rc == VIGIL_EAGAIN) {
        /* The map must grow and queries held it: try again very soon. */
        in->st.deferred++;
        if (!in->paused) {
            in->paused = true;
            in->paused_since = vigil_monotonic_ns();
        }
        in->pause_until = vigil_monotonic_ns() + INGEST_PAUSE_GROW_NS;
        log_ratelimited(&in->rl_store, LOG_LVL_INFO,
                        "the store map must grow and queries hold it: batch %" PRIu64
                        " of \"%s\" deferred",
                        b->seq, q->name);
    } else {
        pause_ingest(in, rc, q->name, b->seq);
    }
}

/* Applies the queued batches in one transaction and one durable commit,
 * then acks each. Should the group fail as a whole with VIGIL_EINVAL (one
 * batch the store refuses), each is applied on its own so only that one
 * is refused. */
static void apply_group(struct ingest *in)
{
    size_t n = in->ngroup;
    if (n == 0)
        return;
    const Vigil__FlowBatch *batches[INGEST_BURST];
    const char *names[INGEST_BURST];
    struct apply_result res[INGEST_BURST];
    memset(res, 0, sizeof res);
    for (size_t i = 0; i < n; i++) {
        batches[i] = in->group[i].env->batch;
        names[i] = in->group[i].name;
    }
    int rc = store_apply_batches(in->cfg.store, batches, names, n, res);
    for (size_t i = 0; i < n; i++) {
        struct queued_batch *q = &in->group[i];
        if (rc == VIGIL_EINVAL && n > 1) {
            struct apply_result one = {0};
            batch_done(in, q, store_apply_batch(in->cfg.store, batches[i], names[i], &one),
                       &one);
        } else if (rc == 0 || i == 0) {
            batch_done(in, q, rc, &res[i]);
        } else {
            in->st.deferred++; /* the same failure: counted once per batch, logged once */
        }
        envelope_free(q->env);
        zmq_msg_close(&q->rid);
    }
    in->ngroup = 0;
}

/* Admits a batch into the group (taking rid and env), applying the group
 * first when it is full. Returns true when env was taken. */
static bool handle_batch(struct ingest *in, zmq_msg_t *rid, const struct sender *s,
                         Vigil__Envelope *env)
{
    if (!batch_admitted(in, s, env->batch))
        return false;
    if (in->ngroup == INGEST_BURST)
        apply_group(in);
    struct queued_batch *q = &in->group[in->ngroup++];
    zmq_msg_init(&q->rid);
    zmq_msg_move(&q->rid, rid);
    q->env = env;
    q->s = *s;
    snprintf(q->address, sizeof q->address, "%s", s->address);
    q->s.address = q->address;
    /* With CURVE the key decides the name; insecure peers name themselves. */
    q->name = s->peer.role == TRANSPORT_ROLE_AGENT ? q->s.peer.name : env->batch->agent;
    return true;
}

/* ---- queries -------------------------------------------------------------- */

/* ---- forensic capture ----------------------------------------------------- */

/* capture.h's way to the ROUTER: a peer that is gone fails (it stays pending). */
static int capture_send(void *ctx, const void *rid, size_t rid_len, const uint8_t *data,
                        size_t len)
{
    struct ingest *in = ctx;
    if (zmq_send(in->router, rid, rid_len, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0 ||
        zmq_send(in->router, data, len, ZMQ_DONTWAIT) < 0)
        return VIGIL_EAGAIN;
    return 0;
}

/* An agent spoke on connection rid (claimed: the name in its message, the
 * one that counts for an insecure peer): capture orders can reach it. */
static void agent_heard(struct ingest *in, zmq_msg_t *rid, const struct sender *s,
                        const char *claimed)
{
    if (!in->cfg.captures || !transport_peer_may(&s->peer, TRANSPORT_ROLE_AGENT))
        return;
    const char *name = s->peer.role == TRANSPORT_ROLE_AGENT ? s->peer.name : claimed;
    if (strcmp(name, claimed) != 0)
        return; /* an agent speaking for another: counted where it is refused */
    capture_jobs_heard(in->cfg.captures, name, zmq_msg_data(rid), zmq_msg_size(rid),
                       vigil_wallclock_ns());
}

static void handle_status(struct ingest *in, zmq_msg_t *rid, const struct sender *s,
                          const Vigil__AgentStatus *st)
{
    if (!transport_peer_may(&s->peer, TRANSPORT_ROLE_AGENT)) {
        count_bad(in, BAD_ROLE, s, "an agent status from a key that is not an agent's");
        return;
    }
    in->st.statuses++;
    if (s->peer.role == TRANSPORT_ROLE_AGENT && strcmp(st->agent, s->peer.name) != 0) {
        count_bad(in, BAD_AGENT_NAME, s, "a status in another agent's name");
        return;
    }
    if (in->cfg.captures)
        capture_jobs_status(in->cfg.captures, st->agent, st, vigil_wallclock_ns());
    agent_heard(in, rid, s, st->agent);
}

/* capture_start and capture_stop write: answered here, on the store's writer. */
static void handle_capture_order(struct ingest *in, zmq_msg_t *rid, const struct sender *s,
                                 const Vigil__QueryRequest *q)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    in->st.queries++;
    if (capture_query_answer(in->cfg.captures, q, &s->peer, vigil_wallclock_ns(), &buf, &len) ==
        0)
        send_to(in, zmq_msg_data(rid), zmq_msg_size(rid), buf, len);
    free(buf);
}

static void handle_query(struct ingest *in, zmq_msg_t *rid, zmq_msg_t *body,
                         const struct sender *s, const Vigil__QueryRequest *q)
{
    char msg[300];
    if (!transport_peer_may(&s->peer, TRANSPORT_ROLE_ANALYST)) {
        count_bad(in, BAD_ROLE, s, "a query from a key that is not an analyst's (refused)");
        in->st.query_refused++;
        snprintf(msg, sizeof msg,
                 "refused: the key \"%s\" is %s key; queries need an analyst key (vigil keygen, "
                 "then its .pub in the aggregator's analysts allow list)",
                 s->peer.name,
                 s->peer.role == TRANSPORT_ROLE_AGENT ? "an agent" : "not an analyst");
        send_error(in, rid, q->request_id, msg);
        return;
    }
    if (in->cfg.captures && capture_query_handles(q->kind)) {
        handle_capture_order(in, rid, s, q);
        return;
    }
    uint64_t id = q->request_id;
    if (service_submit(in->svc, rid, &s->peer, body) != 0) {
        in->st.query_refused++;
        /* rid was not taken */
        send_error(in, rid, id, "busy: every query worker is busy, try again");
        return;
    }
    in->st.queries++;
}

/* ---- one message ----------------------------------------------------------- */

static enum ingest_bad bad_of(enum envelope_error e)
{
    switch (e) {
    case ENV_TOO_LARGE: return BAD_TOO_LARGE;
    case ENV_UNDECODABLE: return BAD_UNDECODABLE;
    case ENV_BAD_VERSION: return BAD_VERSION;
    case ENV_NO_BODY: return BAD_NO_BODY;
    default: return BAD_INVALID;
    }
}

/* Handles one message if one is waiting; false when there was none. */
static bool handle_one(struct ingest *in)
{
    zmq_msg_t rid, body;
    zmq_msg_init(&rid);
    if (zmq_msg_recv(&rid, in->router, ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&rid);
        return false;
    }
    if (!zmq_msg_more(&rid)) { /* a ROUTER always prefixes the routing id */
        zmq_msg_close(&rid);
        count_bad(in, BAD_FRAMES, NULL, "a single frame");
        return true;
    }
    zmq_msg_init(&body);
    if (zmq_msg_recv(&body, in->router, ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&body);
        zmq_msg_close(&rid);
        return true;
    }
    in->st.messages++;

    struct sender s;
    transport_peer_of(&body, &s.peer);
    s.address = zmq_msg_gets(&body, "Peer-Address");
    if (!s.address)
        s.address = "?";

    if (zmq_msg_more(&body)) { /* a client sends one frame per message */
        unsigned extra = 0;
        zmq_msg_t m;
        bool more = true;
        while (more) {
            zmq_msg_init(&m);
            if (zmq_msg_recv(&m, in->router, ZMQ_DONTWAIT) < 0) {
                zmq_msg_close(&m);
                break;
            }
            more = zmq_msg_more(&m);
            zmq_msg_close(&m);
            extra++;
        }
        char detail[64];
        snprintf(detail, sizeof detail, "%u frames where one is expected", extra + 1);
        count_bad(in, BAD_FRAMES, &s, detail);
        goto done;
    }
    if (s.peer.role == TRANSPORT_ROLE_NONE) {
        count_bad(in, BAD_NO_IDENTITY, &s, "no identity from the authenticator");
        goto done;
    }

    Vigil__Envelope *env = NULL;
    char why[160];
    enum envelope_error e = envelope_unpack(zmq_msg_data(&body), zmq_msg_size(&body),
                                            vigil_wallclock_ns(), &env, why, sizeof why);
    if (e != ENV_OK) {
        char detail[220];
        snprintf(detail, sizeof detail, "%zu bytes, %s", zmq_msg_size(&body), why);
        count_bad(in, bad_of(e), &s, detail);
        goto done;
    }
    switch (env->body_case) {
    case VIGIL__ENVELOPE__BODY_BATCH:
        agent_heard(in, &rid, &s, env->batch->agent); /* before rid moves to the group */
        if (handle_batch(in, &rid, &s, env))
            env = NULL; /* queued: apply_group frees it */
        break;
    case VIGIL__ENVELOPE__BODY_QUERY: handle_query(in, &rid, &body, &s, env->query); break;
    case VIGIL__ENVELOPE__BODY_STATUS: handle_status(in, &rid, &s, env->status); break;
    default: count_bad(in, BAD_UNEXPECTED, &s, "a message clients never send"); break;
    }
    envelope_free(env);
done:
    zmq_msg_close(&body);
    zmq_msg_close(&rid);
    return true;
}

/* ---- answers, monitor, timers ------------------------------------------------ */

static void forward_answers(struct ingest *in)
{
    zmq_msg_t rid, body;
    while (service_take_reply(in->svc, &rid, &body) == 0) {
        send_to(in, zmq_msg_data(&rid), zmq_msg_size(&rid), zmq_msg_data(&body),
                zmq_msg_size(&body));
        zmq_msg_close(&body);
        zmq_msg_close(&rid);
    }
}

static void read_monitor(struct ingest *in)
{
    for (;;) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, in->mon, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&m);
            return;
        }
        uint16_t event = 0;
        if (zmq_msg_size(&m) >= 6)
            memcpy(&event, zmq_msg_data(&m), sizeof event);
        bool more = zmq_msg_more(&m);
        zmq_msg_close(&m);
        while (more) { /* the endpoint frame */
            zmq_msg_init(&m);
            if (zmq_msg_recv(&m, in->mon, ZMQ_DONTWAIT) < 0) {
                zmq_msg_close(&m);
                break;
            }
            more = zmq_msg_more(&m);
            zmq_msg_close(&m);
        }
        switch (event) {
        case ZMQ_EVENT_HANDSHAKE_SUCCEEDED: in->handshakes++; break;
        case ZMQ_EVENT_DISCONNECTED: in->disconnects++; break;
        case ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL:
        case ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL:
        case ZMQ_EVENT_HANDSHAKE_FAILED_AUTH: in->handshake_failures++; break;
        default: break;
        }
    }
}

static void log_status(struct ingest *in, const char *what)
{
    struct store_stats ss;
    struct service_stats qs = {0};
    char bad[400] = "";
    size_t n = 0;
    uint64_t bad_total = 0;
    int64_t now = vigil_monotonic_ns();

    store_get_stats(in->cfg.store, &ss);
    if (in->svc)
        service_get_stats(in->svc, &qs);
    for (unsigned i = 0; i < BAD_COUNT; i++) {
        bad_total += in->st.bad[i];
        if (in->st.bad[i] && n < sizeof bad)
            n += (size_t)snprintf(bad + n, sizeof bad - n, "%s%s=%" PRIu64, n ? " " : "",
                                  bad_names[i], in->st.bad[i]);
    }
    bool loud_pause = in->paused && in->pause_logged;
    double secs = (double)(now - in->status_at) / (double)NS_PER_SEC;
    double rate = secs > 0 ? (double)(in->st.records - in->status_records) / secs : 0.0;
    log_info("%s: batches=%" PRIu64 " (+%" PRIu64 ") records=%" PRIu64 " (%.0f/s) "
             "duplicates=%" PRIu64 " rejected_records=%" PRIu64 " refused_batches=%" PRIu64
             " deferred=%" PRIu64 "%s bad=%" PRIu64 "%s%s%s queries=%" PRIu64 " (failed=%" PRIu64
             " busy=%" PRIu64 ") acks=%" PRIu64 " send_failures=%" PRIu64
             " connections=%" PRIu64 " disconnects=%" PRIu64 " handshake_failures=%" PRIu64
             " map=%.0f/%.0f MiB",
             what, in->st.batches, in->st.batches - in->status_batches, in->st.records, rate,
             in->st.duplicates, in->st.rejected_records, in->st.refused_batches,
             in->st.deferred, loud_pause ? " (PAUSED)" : "", bad_total, n ? " (" : "", bad,
             n ? ")" : "", qs.queries, qs.failed, qs.busy, in->st.acks,
             in->st.send_failures, in->handshakes, in->disconnects, in->handshake_failures,
             (double)ss.map_used / MIB, (double)ss.map_size / MIB);
    if (in->dt) {
        char dt[600];
        detect_thread_status_text(in->dt, dt, sizeof dt);
        log_info("%s: detection: %s", what, dt);
    }
    struct trail_info ti;
    store_trail_info(in->cfg.store, &ti);
    if (ti.builds || ti.dropped)
        log_info("%s: trailing ranking: %s[%" PRId64 ", %" PRId64 ") s, built in %.0f ms, "
                 "%zu late records; builds=%" PRIu64 " dropped=%" PRIu64 " answers=%" PRIu64
                 " merged=%" PRIu64,
                 what, !ti.present ? "none " : ti.stale ? "stale " : "", ti.since_ns / NS_PER_SEC,
                 ti.until_ns / NS_PER_SEC, (double)ti.took_ns / 1e6, ti.late, ti.builds,
                 ti.dropped, ti.answers, ti.merged);
    in->status_at = now;
    in->status_records = in->st.records;
    in->status_batches = in->st.batches;
}

static void run_timers(struct ingest *in)
{
    int64_t now = vigil_monotonic_ns();
    int rc;
    if (!in->paused)
        detect_thread_poll(in->dt); /* alert hooks; a map grow detection asked for */
    /* While paused the store is left alone: it just failed to write. */
    if (!in->paused && now >= in->next_tick) {
        if ((rc = store_tick(in->cfg.store, INGEST_TICK_BUDGET_NS)) != 0)
            log_ratelimited(&in->rl_store, LOG_LVL_WARN, "store upkeep failed: %s (retried)",
                            vigil_strerror(rc));
        in->next_tick = vigil_monotonic_ns() + INGEST_TICK_EVERY_NS;
    }
    if (in->cfg.captures && now >= in->next_capture_tick) {
        capture_jobs_tick(in->cfg.captures, vigil_wallclock_ns());
        in->next_capture_tick = now + NS_PER_SEC;
    }
    /* Retention runs even while paused: deleting old rows frees pages, the
     * way out of a map at its ceiling. */
    if (in->cfg.retention_interval_ns > 0 && now >= in->next_retention) {
        struct retention_stats rs = {0};
        rc = store_retention_run(in->cfg.store, vigil_wallclock_ns(), INGEST_RETENTION_BUDGET_NS,
                                 &rs);
        uint64_t rows = rs.flows + rs.hostidx + rs.rollups[0] + rs.rollups[1] + rs.rollups[2] +
                        rs.captures + rs.alerts;
        in->st.retention_rows += rows;
        if (rc != 0)
            log_ratelimited(&in->rl_store, LOG_LVL_WARN, "retention failed: %s (retried)",
                            vigil_strerror(rc));
        else if (rows || rs.captures_bad || rs.alerts_bad)
            log_info("retention: deleted %" PRIu64 " flows, %" PRIu64 " host index rows, %" PRIu64
                     "/%" PRIu64 "/%" PRIu64 " minute/hour/day rollup rows, %" PRIu64
                     " capture jobs, %" PRIu64 " alerts; unreadable, kept: %" PRIu64
                     " capture jobs, %" PRIu64 " alerts%s",
                     rs.flows, rs.hostidx, rs.rollups[0], rs.rollups[1], rs.rollups[2],
                     rs.captures, rs.alerts, rs.captures_bad, rs.alerts_bad,
                     rs.done ? "" : " (more to do)");
        in->next_retention = vigil_monotonic_ns() + (rc == 0 && rs.done
                                                         ? in->cfg.retention_interval_ns
                                                         : INGEST_RETENTION_AGAIN_NS);
    }
    if (in->cfg.status_interval_ns > 0 && now >= in->next_status) {
        log_status(in, "status");
        in->next_status = now + in->cfg.status_interval_ns;
    }
}

/* ---- life cycle ---------------------------------------------------------------- */

struct ingest *ingest_create(void *zmq_ctx, const struct ingest_config *cfg, char *err,
                             size_t errlen)
{
    struct ingest *in = calloc(1, sizeof *in);
    if (!in) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    in->cfg = *cfg;
    in->ctx = zmq_ctx;
    if (!cfg->store || !cfg->listen || (!cfg->insecure && !cfg->server_keys)) {
        snprintf(err, errlen, "ingest: missing store, endpoint or server keys");
        goto fail;
    }
    in->router = transport_server(zmq_ctx, cfg->listen, cfg->server_keys, cfg->insecure, err,
                                  errlen);
    if (!in->router)
        goto fail;
    size_t len = sizeof in->endpoint;
    if (zmq_getsockopt(in->router, ZMQ_LAST_ENDPOINT, in->endpoint, &len) != 0)
        snprintf(in->endpoint, sizeof in->endpoint, "%s", cfg->listen);

    snprintf(in->mon_ep, sizeof in->mon_ep, "inproc://vigil-ingest-monitor-%p", (void *)in);
    int zero = 0;
    if (zmq_socket_monitor(in->router, in->mon_ep,
                           ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_DISCONNECTED |
                               ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL |
                               ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                               ZMQ_EVENT_HANDSHAKE_FAILED_AUTH) != 0 ||
        !(in->mon = zmq_socket(zmq_ctx, ZMQ_PAIR)) ||
        zmq_setsockopt(in->mon, ZMQ_LINGER, &zero, sizeof zero) != 0 ||
        zmq_connect(in->mon, in->mon_ep) != 0) {
        snprintf(err, errlen, "ingest: socket monitor: %s", zmq_strerror(zmq_errno()));
        goto fail;
    }
    if (!(in->svc = service_start(zmq_ctx, cfg->store, cfg->query_threads, err, errlen)))
        goto fail;
    if (cfg->detect && !(in->dt = detect_thread_start(cfg->detect, cfg->store, err, errlen)))
        goto fail;
    if (cfg->captures)
        capture_jobs_set_sender(cfg->captures, capture_send, in);

    int64_t now = vigil_monotonic_ns();
    in->next_tick = now;
    in->next_status = now + cfg->status_interval_ns;
    in->next_retention = now + INGEST_RETENTION_FIRST_NS;
    in->status_at = now;
    if (cfg->insecure) {
        log_warn("**************************************************************************");
        log_warn("* INSECURE MODE (--insecure): listening on %s WITHOUT CURVE", in->endpoint);
        log_warn("* no encryption, no authentication: ANY peer may send flow batches under");
        log_warn("* any agent name AND query everything. Use only on a trusted test network.");
        log_warn("**************************************************************************");
    } else {
        char fp[KEY_FINGERPRINT_LEN + 1];
        key_fingerprint(cfg->server_keys->public_z85, fp);
        log_info("listening on %s with CURVE on (server key %s): only keys in the allow lists "
                 "are admitted",
                 in->endpoint, fp);
    }
    return in;
fail:
    detect_thread_free(in->dt);
    service_stop(in->svc);
    if (in->mon)
        zmq_close(in->mon);
    if (in->router)
        zmq_close(in->router);
    free(in);
    return NULL;
}

const char *ingest_endpoint(const struct ingest *in)
{
    return in->endpoint;
}

/* SIGHUP: the capture right is re-read with the allow lists; a directory
 * that does not check out leaves the old right in force. */
static void reload_capture_rights(struct ingest *in)
{
    char err[512];
    if (!in->cfg.captures || in->cfg.insecure || !in->cfg.capture_allow)
        return;
    struct capture_rights *r =
        capture_rights_load(in->cfg.capture_allow, in->cfg.analysts_allow, err, sizeof err);
    if (!r) {
        log_err("SIGHUP: the capture right was not reloaded (the old one stays): %s", err);
        return;
    }
    capture_jobs_set_rights(in->cfg.captures, r);
    capture_rights_free(in->rights);
    in->rights = r;
    log_info("SIGHUP: %zu analysts may order captures", capture_rights_count(r));
}

int ingest_run(struct ingest *in, const volatile sig_atomic_t *stop,
               volatile sig_atomic_t *reload)
{
    while (!*stop) {
        if (*reload) {
            char err[512] = "";
            *reload = 0;
            if (in->cfg.zap && zap_reload(in->cfg.zap, err, sizeof err) != 0)
                log_err("SIGHUP: the allow lists were not reloaded (the old ones stay): %s",
                        err);
            else
                log_info("SIGHUP: allow lists reloaded");
            reload_capture_rights(in);
        }
        zmq_pollitem_t items[3] = {
            {.socket = in->router, .events = ZMQ_POLLIN},
            {.socket = service_reply_socket(in->svc), .events = ZMQ_POLLIN},
            {.socket = in->mon, .events = ZMQ_POLLIN},
        };
        int n = zmq_poll(items, 3, INGEST_POLL_MS);
        if (n < 0) {
            if (zmq_errno() == EINTR)
                continue;
            log_err("ingest: poll failed: %s", zmq_strerror(zmq_errno()));
            return VIGIL_EIO;
        }
        if (items[1].revents & ZMQ_POLLIN)
            forward_answers(in);
        if (items[2].revents & ZMQ_POLLIN)
            read_monitor(in);
        if (items[0].revents & ZMQ_POLLIN) {
            for (int i = 0; i < INGEST_BURST && !*stop; i++)
                if (!handle_one(in))
                    break;
            apply_group(in);
        }
        run_timers(in);
    }
    return 0;
}

void ingest_get_stats(const struct ingest *in, struct ingest_stats *out)
{
    *out = in->st;
}

void ingest_destroy(struct ingest *in)
{
    if (!in)
        return;
    if (in->cfg.captures && in->rights)
        capture_jobs_set_rights(in->cfg.captures, NULL); /* freed below */
    capture_rights_free(in->rights);
    /* Judge every batch still queued (the engine's last tick persists)
     * before the caller destroys the engine and closes the store. */
    detect_thread_stop(in->dt);
    log_status(in, "final status");
    detect_thread_free(in->dt);
    service_stop(in->svc);
    in->svc = NULL;
    zmq_socket_monitor(in->router, NULL, 0);
    zmq_close(in->mon);
    zmq_close(in->router);
    free(in);
}
