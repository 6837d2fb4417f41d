/* transport.c — the aggregator's ROUTER and the clients' DEALER, with the
 * socket options vigil relies on, and the User-Id the ZAP handler attaches.
 *
 * Each option is set before bind/connect (libzmq copies options into a
 * connection when it is made) and every setsockopt is checked: a socket
 * missing one of them (say, ZMQ_MAXMSGSIZE or CURVE) must not come up.
 * Key material is decoded to 32 bytes on the stack and wiped after use.
 *
 * Non-goals: send/receive helpers (each daemon frames its own loop around
 * envelope_pack/unpack), reconnection policy beyond libzmq's. */
#include "transport.h"
#include "transport_int.h"

#include "err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void transport__errf(char *err, size_t errlen, const char *fmt, ...)
{
    if (err == NULL || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

struct sockopt_int {
    int option;
    int value;
    const char *name;
};

static int set_int_opts(void *s, const struct sockopt_int *opts, size_t n, char *err,
                        size_t errlen)
{
    for (size_t i = 0; i < n; i++) {
        if (zmq_setsockopt(s, opts[i].option, &opts[i].value, sizeof opts[i].value) != 0) {
            transport__errf(err, errlen, "setsockopt %s: %s", opts[i].name,
                            zmq_strerror(zmq_errno()));
            return VIGIL_EINVAL;
        }
    }
    return 0;
}

/* Options both ends share. */
static int set_common(void *s, char *err, size_t errlen)
{
    const struct sockopt_int opts[] = {
        {ZMQ_SNDHWM, TRANSPORT_HWM, "ZMQ_SNDHWM"},
        {ZMQ_RCVHWM, TRANSPORT_HWM, "ZMQ_RCVHWM"},
        {ZMQ_HEARTBEAT_IVL, TRANSPORT_HEARTBEAT_IVL_MS, "ZMQ_HEARTBEAT_IVL"},
        {ZMQ_HEARTBEAT_TIMEOUT, TRANSPORT_HEARTBEAT_TIMEOUT_MS, "ZMQ_HEARTBEAT_TIMEOUT"},
        {ZMQ_HEARTBEAT_TTL, TRANSPORT_HEARTBEAT_TIMEOUT_MS, "ZMQ_HEARTBEAT_TTL"},
        {ZMQ_HANDSHAKE_IVL, TRANSPORT_HANDSHAKE_MS, "ZMQ_HANDSHAKE_IVL"},
        {ZMQ_TCP_KEEPALIVE, 1, "ZMQ_TCP_KEEPALIVE"},
        {ZMQ_TCP_KEEPALIVE_IDLE, TRANSPORT_KEEPALIVE_IDLE_S, "ZMQ_TCP_KEEPALIVE_IDLE"},
        {ZMQ_TCP_KEEPALIVE_INTVL, TRANSPORT_KEEPALIVE_INTVL_S, "ZMQ_TCP_KEEPALIVE_INTVL"},
        {ZMQ_TCP_KEEPALIVE_CNT, TRANSPORT_KEEPALIVE_CNT, "ZMQ_TCP_KEEPALIVE_CNT"},
    };
    int rc = set_int_opts(s, opts, sizeof opts / sizeof opts[0], err, errlen);
    if (rc != 0)
        return rc;
    int64_t maxmsg = TRANSPORT_MAX_MSG;
    if (zmq_setsockopt(s, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg) != 0) {
        transport__errf(err, errlen, "setsockopt ZMQ_MAXMSGSIZE: %s", zmq_strerror(zmq_errno()));
        return VIGIL_EINVAL;
    }
    return 0;
}

/* Sets a CURVE key option from Z85 (validated, passed as 32 bytes). */
static int set_key(void *s, int option, const char *z85, const char *what, char *err,
                   size_t errlen)
{
    uint8_t bin[KEY_BIN_LEN];
    int rc = 0;
    if (key__z85_to_bin(z85, bin) != 0) {
        transport__errf(err, errlen, "%s is not a %d-character Z85 key", what, KEY_Z85_LEN);
        rc = VIGIL_EINVAL;
    } else if (zmq_setsockopt(s, option, bin, sizeof bin) != 0) {
        transport__errf(err, errlen, "setsockopt %s: %s", what, zmq_strerror(zmq_errno()));
        rc = VIGIL_EINVAL;
    }
    explicit_bzero(bin, sizeof bin);
    return rc;
}

void *transport_server(void *zmq_ctx, const char *endpoint, const struct keypair *server,
                       bool insecure, char *err, size_t errlen)
{
    void *s = NULL;

    if (zmq_ctx == NULL || endpoint == NULL || (!insecure && server == NULL)) {
        transport__errf(err, errlen, "transport_server: missing context, endpoint or keys");
        return NULL;
    }
    if (!zap__serving(zmq_ctx)) {
        transport__errf(err, errlen,
                        "no ZAP handler serves this context: call zap_start first (CURVE "
                        "without one admits any key)");
        return NULL;
    }
    s = zmq_socket(zmq_ctx, ZMQ_ROUTER);
    if (s == NULL) {
        transport__errf(err, errlen, "socket: %s", zmq_strerror(zmq_errno()));
        return NULL;
    }
    const struct sockopt_int opts[] = {
        {ZMQ_LINGER, TRANSPORT_LINGER_MS, "ZMQ_LINGER"},
        {ZMQ_ROUTER_MANDATORY, 1, "ZMQ_ROUTER_MANDATORY"},
    };
    if (set_int_opts(s, opts, sizeof opts / sizeof opts[0], err, errlen) != 0 ||
        set_common(s, err, errlen) != 0)
        goto fail;
    const char *domain = insecure ? TRANSPORT_ZAP_DOMAIN_INSECURE : TRANSPORT_ZAP_DOMAIN;
    if (zmq_setsockopt(s, ZMQ_ZAP_DOMAIN, domain, strlen(domain)) != 0) {
        transport__errf(err, errlen, "setsockopt ZMQ_ZAP_DOMAIN: %s", zmq_strerror(zmq_errno()));
        goto fail;
    }
    if (!insecure) {
        int one = 1;
        if (zmq_setsockopt(s, ZMQ_CURVE_SERVER, &one, sizeof one) != 0) {
            transport__errf(err, errlen, "setsockopt ZMQ_CURVE_SERVER: %s (libzmq without "
                            "CURVE?)", zmq_strerror(zmq_errno()));
            goto fail;
        }
        if (set_key(s, ZMQ_CURVE_SECRETKEY, server->secret_z85, "the server's secret key", err,
                    errlen) != 0)
            goto fail;
    }
    if (zmq_bind(s, endpoint) != 0) {
        transport__errf(err, errlen, "bind %s: %s", endpoint, zmq_strerror(zmq_errno()));
        goto fail;
    }
    return s;
fail:
    zmq_close(s);
    return NULL;
}

void *transport_client(void *zmq_ctx, const char *endpoint, const char *server_public_z85,
                       const struct keypair *client, bool insecure, char *err, size_t errlen)
{
    void *s = NULL;

    if (zmq_ctx == NULL || endpoint == NULL ||
        (!insecure && (server_public_z85 == NULL || client == NULL))) {
        transport__errf(err, errlen, "transport_client: missing context, endpoint or keys");
        return NULL;
    }
    s = zmq_socket(zmq_ctx, ZMQ_DEALER);
    if (s == NULL) {
        transport__errf(err, errlen, "socket: %s", zmq_strerror(zmq_errno()));
        return NULL;
    }
    const struct sockopt_int opts[] = {
        {ZMQ_LINGER, 0, "ZMQ_LINGER"}, /* unacked batches live in the agent's spool */
        {ZMQ_IMMEDIATE, 1, "ZMQ_IMMEDIATE"},
        {ZMQ_RECONNECT_IVL, TRANSPORT_RECONNECT_IVL_MS, "ZMQ_RECONNECT_IVL"},
        {ZMQ_RECONNECT_IVL_MAX, TRANSPORT_RECONNECT_MAX_MS, "ZMQ_RECONNECT_IVL_MAX"},
    };
    if (set_int_opts(s, opts, sizeof opts / sizeof opts[0], err, errlen) != 0 ||
        set_common(s, err, errlen) != 0)
        goto fail;
    if (!insecure) {
        if (set_key(s, ZMQ_CURVE_SERVERKEY, server_public_z85, "the server's public key", err,
                    errlen) != 0 ||
            set_key(s, ZMQ_CURVE_PUBLICKEY, client->public_z85, "the client's public key", err,
                    errlen) != 0 ||
            set_key(s, ZMQ_CURVE_SECRETKEY, client->secret_z85, "the client's secret key", err,
                    errlen) != 0)
            goto fail;
    }
    if (zmq_connect(s, endpoint) != 0) {
        transport__errf(err, errlen, "connect %s: %s", endpoint, zmq_strerror(zmq_errno()));
        goto fail;
    }
    return s;
fail:
    zmq_close(s);
    return NULL;
}

/* ---- User-Id ------------------------------------------------------------ */

/* An insecure peer's name is its IP address as libzmq prints it. */
static bool address_valid(const char *a)
{
    size_t n = 0;
    for (; a[n]; n++)
        if (n >= KEY_NAME_MAX || a[n] <= 0x20 || a[n] >= 0x7f)
            return false;
    return n > 0;
}

int transport_peer_parse(const char *user_id, struct transport_peer *out)
{
    static const struct {
        const char *prefix;
        enum transport_role role;
    } kinds[] = {
        {"agent:", TRANSPORT_ROLE_AGENT},
        {"analyst:", TRANSPORT_ROLE_ANALYST},
        {"insecure:", TRANSPORT_ROLE_INSECURE},
    };

    out->role = TRANSPORT_ROLE_NONE;
    out->name[0] = '\0';
    if (user_id == NULL)
        return VIGIL_EINVAL;
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        size_t plen = strlen(kinds[i].prefix);
        if (strncmp(user_id, kinds[i].prefix, plen) != 0)
            continue;
        const char *name = user_id + plen;
        bool ok = kinds[i].role == TRANSPORT_ROLE_INSECURE ? address_valid(name)
                                                           : key_name_valid(name);
        if (!ok)
            return VIGIL_EINVAL;
        snprintf(out->name, sizeof out->name, "%s", name);
        out->role = kinds[i].role;
        return 0;
    }
    return VIGIL_EINVAL;
}

int transport_peer_of(zmq_msg_t *msg, struct transport_peer *out)
{
    const char *uid = zmq_msg_gets(msg, "User-Id");
    if (uid == NULL) {
        out->role = TRANSPORT_ROLE_NONE;
        out->name[0] = '\0';
        return VIGIL_ENOENT;
    }
    return transport_peer_parse(uid, out);
}

bool transport_peer_may(const struct transport_peer *peer, enum transport_role role)
{
    if (peer == NULL || (role != TRANSPORT_ROLE_AGENT && role != TRANSPORT_ROLE_ANALYST))
        return false;
    return peer->role == role || peer->role == TRANSPORT_ROLE_INSECURE;
}
