/* client.c — one query to the aggregator: connect (CURVE with the analyst's
 * key unless insecure), send the QueryRequest, wait for the QueryResponse
 * with the same request id, all within one deadline.
 *
 * The DEALER comes from transport_client (ZMQ_IMMEDIATE: nothing is queued
 * before the handshake succeeded), so the send waits for a connection. A
 * socket monitor tells a refused key (the aggregator's authenticator said
 * no: fail at once with the reason) from an aggregator that is simply not
 * there (wait until the deadline, then say so).
 *
 * Non-goals: retries beyond libzmq's reconnects, several requests per
 * connection (each command sends one). */
#include "cli.h"

#include "clock.h"
#include "err.h"
#include "transport.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include <zmq.h>

#define POLL_SLICE_MS 100

static uint64_t new_request_id(void)
{
    uint64_t id = 0;
    if (getrandom(&id, sizeof id, GRND_NONBLOCK) != (ssize_t)sizeof id)
        id = (uint64_t)vigil_wallclock_ns() ^ ((uint64_t)getpid() << 32);
    return id ? id : 1;
}

static int pack_request(const char *kind, const struct query_arg *args, size_t nargs,
                        uint64_t id, uint8_t **buf, size_t *len)
{
    Vigil__QueryRequest req = VIGIL__QUERY_REQUEST__INIT;
    Vigil__Envelope env = VIGIL__ENVELOPE__INIT;
    Vigil__QueryRequest__ArgsEntry *entries = NULL, **ptrs = NULL;
    int rc;

    if (nargs) {
        entries = calloc(nargs, sizeof *entries);
        ptrs = calloc(nargs, sizeof *ptrs);
        if (!entries || !ptrs) {
            rc = VIGIL_ENOMEM;
            goto done;
        }
    }
    for (size_t i = 0; i < nargs; i++) {
        vigil__query_request__args_entry__init(&entries[i]);
        entries[i].key = (char *)args[i].key;
        entries[i].value = (char *)args[i].value;
        ptrs[i] = &entries[i];
    }
    req.request_id = id;
    req.kind = (char *)kind;
    req.n_args = nargs;
    req.args = ptrs;
    env.body_case = VIGIL__ENVELOPE__BODY_QUERY;
    env.query = &req;
    rc = envelope_pack(&env, buf, len);
done:
    free(ptrs);
    free(entries);
    return rc;
}

/* Reads the monitor; returns the last handshake failure event seen (0: none). */
static int monitor_events(void *mon, bool *refused)
{
    int failure = 0;
    for (;;) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, mon, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&m);
            return failure;
        }
        uint16_t event = 0; /* the frame: event (16 bits), value (32 bits) */
        if (zmq_msg_size(&m) >= 6)
            memcpy(&event, zmq_msg_data(&m), sizeof event);
        bool more = zmq_msg_more(&m);
        zmq_msg_close(&m);
        while (more) {
            zmq_msg_init(&m);
            if (zmq_msg_recv(&m, mon, ZMQ_DONTWAIT) < 0) {
                zmq_msg_close(&m);
                break;
            }
            more = zmq_msg_more(&m);
            zmq_msg_close(&m);
        }
        if (event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH)
            *refused = true;
        if (event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH ||
            event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL ||
            event == ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL)
            failure = event;
    }
}

int client_query(const struct client_options *o, const char *kind, const struct query_arg *args,
                 size_t nargs, Vigil__Envelope **out, char *err, size_t errlen)
{
    struct keypair me;
    char server_pub[KEY_Z85_LEN + 1] = "";
    char why[256] = "";
    char fp[KEY_FINGERPRINT_LEN + 1] = "none";
    void *ctx = NULL, *sock = NULL, *mon = NULL;
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc = VIGIL_EIO;
    bool sent = false, refused = false;
    int failure = 0;

    *out = NULL;
    memset(&me, 0, sizeof me);
    if (!o->insecure) {
        if (key_load_pair(o->key, &me, why, sizeof why) != 0) {
            snprintf(err, errlen, "cannot use --key %s: %s", o->key, why);
            return VIGIL_EINVAL;
        }
        if (key_load_public(o->server_key, server_pub, why, sizeof why) != 0) {
            snprintf(err, errlen, "cannot use --server-key %s: %s", o->server_key, why);
            explicit_bzero(&me, sizeof me);
            return VIGIL_EINVAL;
        }
        key_fingerprint(me.public_z85, fp);
    }
    uint64_t id = new_request_id();
    if ((rc = pack_request(kind, args, nargs, id, &buf, &len)) != 0) {
        snprintf(err, errlen, "cannot build the request: %s", vigil_strerror(rc));
        goto done;
    }
    if (!(ctx = zmq_ctx_new())) {
        snprintf(err, errlen, "cannot create a ZeroMQ context: %s", zmq_strerror(zmq_errno()));
        rc = VIGIL_EIO;
        goto done;
    }
    sock = transport_client(ctx, o->connect, server_pub, &me, o->insecure, why, sizeof why);
    explicit_bzero(&me, sizeof me);
    if (!sock) {
        snprintf(err, errlen, "cannot connect to %s: %s", o->connect, why);
        rc = VIGIL_EINVAL;
        goto done;
    }
    int zero = 0;
    if (zmq_socket_monitor(sock, "inproc://vigil-cli-monitor",
                           ZMQ_EVENT_HANDSHAKE_FAILED_AUTH | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                               ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL) != 0 ||
        !(mon = zmq_socket(ctx, ZMQ_PAIR)) ||
        zmq_setsockopt(mon, ZMQ_LINGER, &zero, sizeof zero) != 0 ||
        zmq_connect(mon, "inproc://vigil-cli-monitor") != 0) {
        snprintf(err, errlen, "socket monitor: %s", zmq_strerror(zmq_errno()));
        rc = VIGIL_EIO;
        goto done;
    }

    int64_t deadline = vigil_monotonic_ns() + o->timeout_ns;
    rc = VIGIL_EAGAIN;
    for (;;) {
        int64_t left = deadline - vigil_monotonic_ns();
        if (left <= 0)
            break;
        if (!sent) {
            if (zmq_send(sock, buf, len, ZMQ_DONTWAIT) == (int)len) {
                sent = true;
            } else if (zmq_errno() != EAGAIN) {
                snprintf(err, errlen, "cannot send to %s: %s", o->connect,
                         zmq_strerror(zmq_errno()));
                rc = VIGIL_EIO;
                goto done;
            }
        }
        zmq_pollitem_t items[2] = {
            {.socket = sock, .events = (short)(sent ? ZMQ_POLLIN : ZMQ_POLLOUT)},
            {.socket = mon, .events = ZMQ_POLLIN},
        };
        long ms = (long)(left / NS_PER_MS) + 1;
        if (zmq_poll(items, 2, ms < POLL_SLICE_MS ? ms : POLL_SLICE_MS) < 0) {
            if (zmq_errno() == EINTR)
                continue;
            snprintf(err, errlen, "poll: %s", zmq_strerror(zmq_errno()));
            rc = VIGIL_EIO;
            goto done;
        }
        if (items[1].revents & ZMQ_POLLIN) {
            int f = monitor_events(mon, &refused);
            if (f)
                failure = f;
            if (refused && !sent) {
                snprintf(err, errlen,
                         "the aggregator at %s refused this key (%s, fingerprint %s): its .pub "
                         "must be in the aggregator's analysts allow list (--analysts-allow)",
                         o->connect, o->key ? o->key : "?", fp);
                rc = VIGIL_EINVAL;
                goto done;
            }
        }
        if (sent && (items[0].revents & ZMQ_POLLIN)) {
            zmq_msg_t m;
            zmq_msg_init(&m);
            if (zmq_msg_recv(&m, sock, ZMQ_DONTWAIT) < 0) {
                zmq_msg_close(&m);
                continue;
            }
            Vigil__Envelope *env = NULL;
            enum envelope_error e = zmq_msg_more(&m)
                                        ? ENV_INVALID
                                        : envelope_unpack(zmq_msg_data(&m), zmq_msg_size(&m),
                                                          vigil_wallclock_ns(), &env, why,
                                                          sizeof why);
            zmq_msg_close(&m);
            if (e != ENV_OK) {
                snprintf(err, errlen, "the aggregator's answer is malformed (%s): %s",
                         envelope_error_name(e), why);
                rc = VIGIL_EBADMSG;
                goto done;
            }
            if (env->body_case == VIGIL__ENVELOPE__BODY_RESPONSE &&
                env->response->request_id == id) {
                *out = env;
                rc = 0;
                goto done;
            }
            envelope_free(env); /* not ours (an earlier request's): keep waiting */
        }
    }
    if (refused)
        snprintf(err, errlen,
                 "the aggregator at %s refused this key (%s, fingerprint %s): its .pub must be "
                 "in the aggregator's analysts allow list (--analysts-allow)",
                 o->connect, o->key ? o->key : "?", fp);
    else if (failure)
        snprintf(err, errlen,
                 "no answer from the aggregator at %s within %.1f s: the secure handshake "
                 "failed (is --server-key the aggregator's public key? --insecure on one side "
                 "only?)",
                 o->connect, (double)o->timeout_ns / (double)NS_PER_SEC);
    else
        snprintf(err, errlen,
                 "no answer from the aggregator at %s within %.1f s (is it running and "
                 "listening there?)",
                 o->connect, (double)o->timeout_ns / (double)NS_PER_SEC);
done:
    explicit_bzero(&me, sizeof me);
    free(buf);
    if (sock) {
        zmq_socket_monitor(sock, NULL, 0);
        zmq_close(sock);
    }
    if (mon)
        zmq_close(mon);
    if (ctx)
        zmq_ctx_term(ctx);
    return rc;
}
