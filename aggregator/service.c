/* service.c — answers QueryRequests from the
 * store on worker threads (see service.h).
 *
 * A worker owns a PULL socket for requests and a PUSH socket for answers,
 * both inproc to the ingest thread's bound ends. Requests travel as three
 * frames [routing id][peer name][packed Envelope]; answers as two
 * [routing id][packed Envelope]. Only bytes cross threads: nothing is left
 * to free when sockets close with messages still queued.
 *
 * An answer is columns plus rows of text cells, built by one query kind
 * (answer.h; the kinds are listed in kinds[] below).
 *
 * Non-goals: role checks (ingest.c), parsing "1h" or RFC 3339 (the CLI). */
#include "service.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "clock.h"
#include "err.h"
#include "flowrec.h"
#include "log.h"
#include "answer.h"
#include "query.h"
#include "trail.h"

#define DAY_NS (86400 * NS_PER_SEC)
#define WORKER_POLL_MS 100     /* how soon a worker notices service_stop */
/* How often the trailing ranking's thread looks whether a build is due
 * (trail.h): soon after the first query asks for one; the look is a lock
 * and a few compares, and a build spends at most a tenth of the time. */
#define SERVICE_TRAIL_POLL_NS NS_PER_SEC
#define WORKER_SEND_TIMEOUT_MS 1000 /* an answer the ingest thread cannot take is dropped */

/* Packs the answer; rows are dropped from the end (truncated) until it
 * fits one transport message. */
static int pack_answer(Vigil__QueryResponse *resp, uint8_t **out, size_t *len)
{
    Vigil__Envelope env = VIGIL__ENVELOPE__INIT;
    env.body_case = VIGIL__ENVELOPE__BODY_RESPONSE;
    env.response = resp;
    for (;;) {
        int rc = envelope_pack(&env, out, len);
        if (rc != VIGIL_ERANGE || resp->n_rows == 0)
            return rc;
        resp->n_rows /= 2;
        resp->truncated = 1;
    }
}

int service_error(uint64_t request_id, const char *message, uint8_t **out, size_t *len)
{
    Vigil__QueryResponse resp = VIGIL__QUERY_RESPONSE__INIT;
    char text[1024];
    /* the message may quote what the analyst sent: keep it printable */
    size_t n = 0;
    for (; message[n] && n < sizeof text - 1; n++) {
        unsigned char c = (unsigned char)message[n];
        text[n] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
    }
    text[n] = '\0';
    resp.request_id = request_id;
    resp.ok = 0;
    resp.error = text;
    return pack_answer(&resp, out, len);
}


/* ---- one answer ------------------------------------------------------------- */

/* Every query kind this aggregator answers. */
static const struct query_kind kinds[] = {
    {"agents", answer_agents},
    {"flows", answer_flows},
    {"top", answer_top},
    {"alerts", answer_alerts},
    {"baseline", answer_baseline},
    {"capture_list", answer_capture_list},
    {"bandwidth", answer_bandwidth},
    {"series", answer_series},
    {"share", answer_share},
    {"forecast", answer_forecast},
    {"latency", answer_latency},
};

/* service_answer, also telling whether the answer is ok and truncated
 * (for the worker's counters and log line). */
static int answer(struct store *st, const Vigil__QueryRequest *req, const char *peer,
                  int64_t now_ns, uint8_t **out, size_t *len, bool *ok, bool *truncated_out)
{
    Vigil__QueryResponse resp = VIGIL__QUERY_RESPONSE__INIT;
    struct answer *a = calloc(1, sizeof *a);
    const struct query_kind *kind = NULL;
    int rc;

    *ok = *truncated_out = false;
    if (!a)
        return service_error(req->request_id, "the aggregator is out of memory", out, len);
    a->st = st;
    a->q = req;
    a->peer = peer;
    a->now_ns = now_ns;
    a->rows.limit = SERVICE_MAX_ROWS;
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0] && !kind; i++)
        if (strcmp(req->kind, kinds[i].name) == 0)
            kind = &kinds[i];
    if (kind) {
        rc = kind->run(a);
    } else {
        size_t n = (size_t)snprintf(a->err, sizeof a->err,
                                    "unknown query kind \"%s\" (this aggregator answers",
                                    req->kind);
        for (size_t i = 0; i < sizeof kinds / sizeof kinds[0] && n < sizeof a->err; i++)
            n += (size_t)snprintf(a->err + n, sizeof a->err - n, "%s %s", i ? "," : "",
                                  kinds[i].name);
        if (n < sizeof a->err)
            snprintf(a->err + n, sizeof a->err - n, ")");
        rc = VIGIL_EINVAL;
    }
    if (rc != 0) {
        if (!a->err[0])
            snprintf(a->err, sizeof a->err, "%s: %s", req->kind, vigil_strerror(rc));
        rc = service_error(req->request_id, a->err, out, len);
        rows_free(&a->rows);
        free(a);
        return rc;
    }
    *ok = true;
    size_t ncol = 0;
    while (a->columns && a->columns[ncol])
        ncol++;
    resp.request_id = req->request_id;
    resp.ok = 1;
    resp.columns = (char **)a->columns;
    resp.n_columns = ncol;
    resp.n_rows = a->rows.n;
    resp.rows = a->rows.v;
    resp.truncated = a->truncated;
    rc = pack_answer(&resp, out, len);
    *truncated_out = resp.truncated;
    rows_free(&a->rows);
    free(a);
    return rc;
}

int service_answer(struct store *st, const Vigil__QueryRequest *req, int64_t now_ns,
                   uint8_t **out, size_t *len)
{
    bool ok, truncated;
    return answer(st, req, "", now_ns, out, len, &ok, &truncated);
}

/* ---- workers ---------------------------------------------------------------- */

struct service {
    void *ctx;
    struct store *st;
    void *jobs;    /* PUSH, bound; the ingest thread's */
    void *replies; /* PULL, bound; the ingest thread's */
    char jobs_ep[64], replies_ep[64];
    pthread_t threads[SERVICE_MAX_THREADS];
    unsigned nthreads;
    struct trail_thread *trail; /* keeps the standing trailing ranking for `top` */
    atomic_bool stopping;
    _Atomic uint64_t queries, failed, truncated, busy;
};

/* Receives one frame into msg (initialised here); false on error. */
static bool recv_frame(void *sock, zmq_msg_t *msg, bool *more)
{
    zmq_msg_init(msg);
    if (zmq_msg_recv(msg, sock, ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(msg);
        return false;
    }
    *more = zmq_msg_more(msg);
    return true;
}

static void drain(void *sock, bool more)
{
    while (more) {
        zmq_msg_t m;
        if (!recv_frame(sock, &m, &more))
            return;
        zmq_msg_close(&m);
    }
}

/* Answers one request [rid][peer][body] waiting on pull. */
static void worker_one(struct service *sv, void *pull, void *push)
{
    zmq_msg_t rid, peer, body;
    bool more = false;
    if (!recv_frame(pull, &rid, &more))
        return;
    if (!more) {
        zmq_msg_close(&rid);
        return;
    }
    if (!recv_frame(pull, &peer, &more) || !more) {
        if (more)
            zmq_msg_close(&peer);
        zmq_msg_close(&rid);
        return;
    }
    if (!recv_frame(pull, &body, &more)) {
        zmq_msg_close(&peer);
        zmq_msg_close(&rid);
        return;
    }
    drain(pull, more);

    int64_t t0 = vigil_monotonic_ns();
    Vigil__Envelope *env = NULL;
    char why[160];
    uint8_t *out = NULL;
    size_t len = 0;
    bool ok = false, trunc = false;
    int rc;
    enum envelope_error e = envelope_unpack(zmq_msg_data(&body), zmq_msg_size(&body),
                                            vigil_wallclock_ns(), &env, why, sizeof why);
    if (e != ENV_OK || env->body_case != VIGIL__ENVELOPE__BODY_QUERY) {
        /* ingest.c checked it already: this is a bug, not an analyst's doing */
        envelope_free(env);
        env = NULL;
        rc = service_error(0, "the aggregator could not read this request", &out, &len);
    } else {
        char who[KEY_NAME_MAX + 1];
        size_t wn = zmq_msg_size(&peer) < sizeof who ? zmq_msg_size(&peer) : sizeof who - 1;
        memcpy(who, zmq_msg_data(&peer), wn);
        who[wn] = '\0';
        rc = answer(sv->st, env->query, who, vigil_wallclock_ns(), &out, &len, &ok, &trunc);
    }
    if (rc == 0) {
        atomic_fetch_add(&sv->queries, 1);
        if (!ok)
            atomic_fetch_add(&sv->failed, 1);
        if (trunc)
            atomic_fetch_add(&sv->truncated, 1);
        log_debug("query %s from %.*s: %s%s, %zu bytes in %.1f ms",
                  env ? env->query->kind : "?", (int)zmq_msg_size(&peer),
                  (const char *)zmq_msg_data(&peer), ok ? "answered" : "refused",
                  trunc ? " (truncated)" : "", len,
                  (double)(vigil_monotonic_ns() - t0) / (double)NS_PER_MS);
        if (zmq_msg_send(&rid, push, ZMQ_SNDMORE) < 0 || zmq_send(push, out, len, 0) < 0)
            log_warn("query service: an answer was dropped: %s", zmq_strerror(zmq_errno()));
    } else {
        log_err("query service: cannot build an answer: %s", vigil_strerror(rc));
    }
    free(out);
    envelope_free(env);
    zmq_msg_close(&body);
    zmq_msg_close(&peer);
    zmq_msg_close(&rid);
}

static void *worker_main(void *arg)
{
    struct service *sv = arg;
    void *pull = zmq_socket(sv->ctx, ZMQ_PULL);
    void *push = zmq_socket(sv->ctx, ZMQ_PUSH);
    int zero = 0, hwm = SERVICE_QUEUE_PER_THREAD, tmo = WORKER_SEND_TIMEOUT_MS;

    if (!pull || !push || zmq_setsockopt(pull, ZMQ_LINGER, &zero, sizeof zero) != 0 ||
        zmq_setsockopt(push, ZMQ_LINGER, &zero, sizeof zero) != 0 ||
        zmq_setsockopt(pull, ZMQ_RCVHWM, &hwm, sizeof hwm) != 0 ||
        zmq_setsockopt(push, ZMQ_SNDTIMEO, &tmo, sizeof tmo) != 0 ||
        zmq_connect(pull, sv->jobs_ep) != 0 || zmq_connect(push, sv->replies_ep) != 0) {
        log_err("query service: a worker cannot start: %s", zmq_strerror(zmq_errno()));
        goto done;
    }
    while (!atomic_load(&sv->stopping)) {
        zmq_pollitem_t it = {.socket = pull, .events = ZMQ_POLLIN};
        int n = zmq_poll(&it, 1, WORKER_POLL_MS);
        if (n < 0) {
            if (zmq_errno() == EINTR)
                continue;
            if (zmq_errno() != ETERM)
                log_err("query service: poll: %s", zmq_strerror(zmq_errno()));
            break;
        }
        if (n > 0 && (it.revents & ZMQ_POLLIN))
            worker_one(sv, pull, push);
    }
done:
    if (pull)
        zmq_close(pull);
    if (push)
        zmq_close(push);
    return NULL;
}

struct service *service_start(void *zmq_ctx, struct store *st, unsigned threads, char *err,
                              size_t errlen)
{
    struct service *sv = NULL;
    int zero = 0, hwm = SERVICE_QUEUE_PER_THREAD;

    if (!zmq_ctx || !st || threads == 0 || threads > SERVICE_MAX_THREADS) {
        snprintf(err, errlen, "query service: 1 to %u threads", SERVICE_MAX_THREADS);
        return NULL;
    }
    if (!(sv = calloc(1, sizeof *sv))) {
        snprintf(err, errlen, "query service: out of memory");
        return NULL;
    }
    sv->ctx = zmq_ctx;
    sv->st = st;
    snprintf(sv->jobs_ep, sizeof sv->jobs_ep, "inproc://vigil-queries-%p", (void *)sv);
    snprintf(sv->replies_ep, sizeof sv->replies_ep, "inproc://vigil-answers-%p", (void *)sv);
    sv->jobs = zmq_socket(zmq_ctx, ZMQ_PUSH);
    sv->replies = zmq_socket(zmq_ctx, ZMQ_PULL);
    if (!sv->jobs || !sv->replies ||
        zmq_setsockopt(sv->jobs, ZMQ_LINGER, &zero, sizeof zero) != 0 ||
        zmq_setsockopt(sv->replies, ZMQ_LINGER, &zero, sizeof zero) != 0 ||
        zmq_setsockopt(sv->jobs, ZMQ_SNDHWM, &hwm, sizeof hwm) != 0 ||
        zmq_bind(sv->jobs, sv->jobs_ep) != 0 || zmq_bind(sv->replies, sv->replies_ep) != 0) {
        snprintf(err, errlen, "query service: inproc sockets: %s", zmq_strerror(zmq_errno()));
        goto fail;
    }
    for (; sv->nthreads < threads; sv->nthreads++) {
        int rc = pthread_create(&sv->threads[sv->nthreads], NULL, worker_main, sv);
        if (rc != 0) {
            snprintf(err, errlen, "query service: cannot start a thread: %s", strerror(rc));
            goto fail;
        }
    }
    if (!(sv->trail = trail_thread_start(st, SERVICE_TRAIL_POLL_NS))) {
        snprintf(err, errlen, "query service: cannot start the trailing ranking's thread");
        goto fail;
    }
    return sv;
fail:
    service_stop(sv);
    return NULL;
}

int service_submit(struct service *sv, zmq_msg_t *rid, const struct transport_peer *peer,
                   zmq_msg_t *body)
{
    /* The first frame decides: ZeroMQ delivers a multipart message whole
     * or not at all, so once it is queued the others are too. */
    if (zmq_msg_send(rid, sv->jobs, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0) {
        atomic_fetch_add(&sv->busy, 1);
        return VIGIL_EAGAIN;
    }
    zmq_send(sv->jobs, peer->name, strlen(peer->name), ZMQ_SNDMORE);
    zmq_msg_send(body, sv->jobs, 0);
    return 0;
}

void *service_reply_socket(struct service *sv)
{
    return sv->replies;
}

int service_take_reply(struct service *sv, zmq_msg_t *rid, zmq_msg_t *body)
{
    bool more = false;
    for (;;) {
        if (!recv_frame(sv->replies, rid, &more))
            return VIGIL_EAGAIN;
        if (!more) { /* cannot happen: workers send two frames */
            zmq_msg_close(rid);
            continue;
        }
        if (!recv_frame(sv->replies, body, &more)) {
            zmq_msg_close(rid);
            return VIGIL_EAGAIN;
        }
        if (more) {
            drain(sv->replies, more);
            zmq_msg_close(body);
            zmq_msg_close(rid);
            continue;
        }
        return 0;
    }
}

void service_get_stats(struct service *sv, struct service_stats *out)
{
    out->queries = atomic_load(&sv->queries);
    out->failed = atomic_load(&sv->failed);
    out->truncated = atomic_load(&sv->truncated);
    out->busy = atomic_load(&sv->busy);
}

void service_stop(struct service *sv)
{
    if (!sv)
        return;
    atomic_store(&sv->stopping, true);
    trail_thread_stop(sv->trail);
    for (unsigned i = 0; i < sv->nthreads; i++)
        pthread_join(sv->threads[i], NULL);
    if (sv->jobs)
        zmq_close(sv->jobs);
    if (sv->replies)
        zmq_close(sv->replies);
    free(sv);
}
