/* zap.c — the aggregator's ZAP handler (ZeroMQ RFC 27): who may connect.
 *
 * libzmq hands every new connection of a socket with a ZAP domain to
 * whatever serves inproc://zeromq.zap.01 in the same context, and waits for
 * the verdict before the handshake completes. This handler answers from
 * two allow lists held in memory: one sorted array of decoded 32-byte
 * public keys, each with its client name and role, looked up by binary
 * search under a mutex (zap_reload swaps in a new array).
 *
 * Request (all frames after the REP envelope):
 *   "1.0" | request id | domain | address | routing id | mechanism | creds...
 * where CURVE credentials are one frame, the client's 32-byte public key.
 * Reply: "1.0" | request id | status | status text | user id | metadata.
 *
 * Verdicts:
 *   domain "vigil", CURVE, key listed        -> 200, "agent:N" / "analyst:N"
 *   domain "vigil-insecure", NULL mechanism  -> 200, "insecure:ADDRESS"
 *   anything else                            -> 400 (counted, logged)
 *   a request not in RFC 27's shape           -> 500
 *
 * Non-goals: PLAIN and GSSAPI, per-connection metadata beyond the User-Id,
 * revoking connections already admitted (ZAP only runs at the handshake). */
#include "transport.h"
#include "transport_int.h"

#include "err.h"
#include "log.h"

#include <dirent.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ZAP_ENDPOINT "inproc://zeromq.zap.01"
#define ZAP_VERSION "1.0"
#define ZAP_MAX_FRAMES 8 /* 6 fixed frames + CURVE's one credential; more is malformed */
#define ZAP_POLL_MS 100  /* how often the thread looks at the stop flag */
#define ZAP_USER_ID_MAX 96

struct allow_entry {
    uint8_t key[KEY_BIN_LEN];
    enum transport_role role;    /* AGENT or ANALYST */
    char name[KEY_NAME_MAX + 1]; /* the .pub file name without .pub */
};

struct allow_set {
    struct allow_entry *v; /* from malloc, sorted by key */
    size_t n, cap;
    size_t n_agents, n_analysts;
};

struct zap_handler {
    void *ctx;              /* borrowed */
    void *rep;              /* the REP socket; the thread's once started */
    pthread_t thread;
    atomic_bool stop;
    char *agents_dir;       /* from strdup, or NULL */
    char *analysts_dir;

    pthread_mutex_t mu;     /* guards set and stats */
    struct allow_set set;
    struct zap_stats stats;

    /* the thread's own */
    struct log_ratelimit rl_refused, rl_malformed;

    struct zap_handler *next_registered;
};

/* Handlers currently serving, so transport_server can refuse a context
 * without one. */
static pthread_mutex_t registry_mu = PTHREAD_MUTEX_INITIALIZER;
static struct zap_handler *registry;

bool zap__serving(void *zmq_ctx)
{
    bool found = false;
    pthread_mutex_lock(&registry_mu);
    for (struct zap_handler *h = registry; h != NULL; h = h->next_registered)
        if (h->ctx == zmq_ctx)
            found = true;
    pthread_mutex_unlock(&registry_mu);
    return found;
}

static const char *role_name(enum transport_role r)
{
    return r == TRANSPORT_ROLE_AGENT ? "agent" : r == TRANSPORT_ROLE_ANALYST ? "analyst" : "?";
}

/* ---- allow lists -------------------------------------------------------- */

static void set_free(struct allow_set *s)
{
    free(s->v);
    *s = (struct allow_set){0};
}

static int set_add(struct allow_set *s, const uint8_t key[KEY_BIN_LEN], enum transport_role role,
                   const char *name)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 16;
        struct allow_entry *v = realloc(s->v, cap * sizeof *v);
        if (v == NULL)
            return VIGIL_ENOMEM;
        s->v = v;
        s->cap = cap;
    }
    struct allow_entry *e = &s->v[s->n++];
    memcpy(e->key, key, KEY_BIN_LEN);
    e->role = role;
    size_t n = strnlen(name, KEY_NAME_MAX); /* load_dir checked it */
    memcpy(e->name, name, n);
    e->name[n] = '\0';
    return 0;
}

/* Adds every DIR/NAME.pub to s under role. */
static int load_dir(struct allow_set *s, const char *dir, enum transport_role role, char *err,
                    size_t errlen)
{
    DIR *d = opendir(dir);
    if (d == NULL) {
        int e = errno;
        transport__errf(err, errlen, "%s allow list %s: %s", role_name(role), dir, strerror(e));
        return -e;
    }
    size_t count = 0;
    int rc = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        const char *fname = de->d_name;
        size_t len = strlen(fname);
        if (fname[0] == '.' || len <= 4 || strcmp(fname + len - 4, ".pub") != 0)
            continue;
        char name[KEY_NAME_MAX + 2];
        size_t nlen = len - 4;
        if (nlen > KEY_NAME_MAX) {
            transport__errf(err, errlen, "%s/%s: client name longer than %d characters", dir,
                            fname, KEY_NAME_MAX);
            rc = VIGIL_EINVAL;
            break;
        }
        memcpy(name, fname, nlen);
        name[nlen] = '\0';
        if (!key_name_valid(name)) {
            transport__errf(err, errlen,
                            "%s/%s: invalid client name (A-Z a-z 0-9 . _ -, not starting with . "
                            "or -)",
                            dir, fname);
            rc = VIGIL_EINVAL;
            break;
        }
        if (++count > ZAP_MAX_KEYS) {
            transport__errf(err, errlen, "%s: more than %u keys", dir, ZAP_MAX_KEYS);
            rc = VIGIL_ERANGE;
            break;
        }
        char path[TRANSPORT_PATH_MAX];
        if (snprintf(path, sizeof path, "%s/%s", dir, fname) >= (int)sizeof path) {
            transport__errf(err, errlen, "%s/%s: path too long", dir, fname);
            rc = -ENAMETOOLONG;
            break;
        }
        char z85[KEY_Z85_LEN + 1];
        uint8_t bin[KEY_BIN_LEN];
        rc = key_load_public(path, z85, err, errlen);
        if (rc != 0)
            break;
        if (key__z85_to_bin(z85, bin) != 0) { /* key_load_public validated it */
            transport__errf(err, errlen, "%s: undecodable key", path);
            rc = VIGIL_EBADMSG;
            break;
        }
        rc = set_add(s, bin, role, name);
        if (rc != 0) {
            transport__errf(err, errlen, "%s: out of memory", dir);
            break;
        }
        if (role == TRANSPORT_ROLE_AGENT)
            s->n_agents++;
        else
            s->n_analysts++;
    }
    closedir(d);
    return rc;
}

static int entry_cmp(const void *a, const void *b)
{
    return memcmp(((const struct allow_entry *)a)->key, ((const struct allow_entry *)b)->key,
                  KEY_BIN_LEN);
}

/* Builds a complete new set from the directories; *out only on success. */
static int load_lists(const char *agents_dir, const char *analysts_dir, struct allow_set *out,
                      char *err, size_t errlen)
{
    struct allow_set s = {0};
    int rc = 0;

    if (agents_dir && (rc = load_dir(&s, agents_dir, TRANSPORT_ROLE_AGENT, err, errlen)) != 0)
        goto fail;
    if (analysts_dir &&
        (rc = load_dir(&s, analysts_dir, TRANSPORT_ROLE_ANALYST, err, errlen)) != 0)
        goto fail;
    if (s.n > 1)
        qsort(s.v, s.n, sizeof *s.v, entry_cmp);
    for (size_t i = 1; i < s.n; i++) {
        if (memcmp(s.v[i - 1].key, s.v[i].key, KEY_BIN_LEN) != 0)
            continue;
        char fp[17];
        key_fingerprint_bin(s.v[i].key, fp);
        transport__errf(err, errlen,
                        "key %s is allowed twice, as %s \"%s\" and as %s \"%s\": one key, one "
                        "client and one role",
                        fp, role_name(s.v[i - 1].role), s.v[i - 1].name, role_name(s.v[i].role),
                        s.v[i].name);
        rc = VIGIL_EINVAL;
        goto fail;
    }
    *out = s;
    return 0;
fail:
    set_free(&s);
    return rc;
}

/* Looks key up; copies the entry out under the lock. */
static bool lookup(struct zap_handler *zh, const uint8_t key[KEY_BIN_LEN], struct allow_entry *out)
{
    struct allow_entry probe;
    memcpy(probe.key, key, KEY_BIN_LEN);
    pthread_mutex_lock(&zh->mu);
    const struct allow_entry *e =
        zh->set.n ? bsearch(&probe, zh->set.v, zh->set.n, sizeof *zh->set.v, entry_cmp) : NULL;
    if (e)
        *out = *e;
    pthread_mutex_unlock(&zh->mu);
    return e != NULL;
}

/* ---- the protocol -------------------------------------------------------- */

static bool frame_is(zmq_msg_t *m, const char *s)
{
    size_t n = strlen(s);
    return zmq_msg_size(m) == n && memcmp(zmq_msg_data(m), s, n) == 0;
}

/* Copies a frame into a printable C string for logs (others become '?'). */
static void frame_text(zmq_msg_t *m, char *out, size_t cap)
{
    const unsigned char *p = zmq_msg_data(m);
    size_t n = zmq_msg_size(m);
    if (n > cap - 1)
        n = cap - 1;
    for (size_t i = 0; i < n; i++)
        out[i] = p[i] >= 0x20 && p[i] < 0x7f ? (char)p[i] : '?';
    out[n] = '\0';
}

static void send_reply(struct zap_handler *zh, zmq_msg_t *request_id, const char *status,
                       const char *text, const char *user_id)
{
    int more = ZMQ_SNDMORE;
    int rc = zmq_send(zh->rep, ZAP_VERSION, strlen(ZAP_VERSION), more);
    if (rc >= 0)
        rc = zmq_send(zh->rep, request_id ? zmq_msg_data(request_id) : "",
                      request_id ? zmq_msg_size(request_id) : 0, more);
    if (rc >= 0)
        rc = zmq_send(zh->rep, status, strlen(status), more);
    if (rc >= 0)
        rc = zmq_send(zh->rep, text, strlen(text), more);
    if (rc >= 0)
        rc = zmq_send(zh->rep, user_id, strlen(user_id), more);
    if (rc >= 0)
        rc = zmq_send(zh->rep, "", 0, 0); /* no metadata */
    if (rc < 0)
        log_err("zap: cannot send a reply: %s", zmq_strerror(zmq_errno()));
}

/* Called before the reply goes out, so that by the time a peer's first
 * message can arrive, its admission is already counted. */
static void count(struct zap_handler *zh, bool accepted)
{
    pthread_mutex_lock(&zh->mu);
    if (accepted)
        zh->stats.accepted++;
    else
        zh->stats.refused++;
    pthread_mutex_unlock(&zh->mu);
}

/* f[0] version, f[1] request id, f[2] domain, f[3] address, f[4] routing
 * id, f[5] mechanism, f[6...] credentials; too_long: frames were dropped. */
static void decide(struct zap_handler *zh, zmq_msg_t *f, size_t nf, bool too_long)
{
    char addr[64], mech[16], domain[32], fp[17] = "-";
    char user_id[ZAP_USER_ID_MAX];

    if (nf < 6 || too_long || !frame_is(&f[0], ZAP_VERSION)) {
        log_ratelimited(&zh->rl_malformed, LOG_LVL_ERR,
                        "zap: malformed request (%zu frames), answered 500", nf);
        count(zh, false);
        send_reply(zh, nf >= 2 ? &f[1] : NULL, "500", "malformed ZAP request", "");
        return;
    }
    frame_text(&f[3], addr, sizeof addr);
    frame_text(&f[5], mech, sizeof mech);
    frame_text(&f[2], domain, sizeof domain);
    bool has_key = nf == 7 && zmq_msg_size(&f[6]) == KEY_BIN_LEN;
    if (has_key)
        key_fingerprint_bin(zmq_msg_data(&f[6]), fp);

    if (frame_is(&f[2], TRANSPORT_ZAP_DOMAIN) && frame_is(&f[5], "CURVE") && has_key) {
        const uint8_t *key = zmq_msg_data(&f[6]);
        struct allow_entry e;
        if (lookup(zh, key, &e)) {
            snprintf(user_id, sizeof user_id, "%s:%s", role_name(e.role), e.name);
            count(zh, true);
            send_reply(zh, &f[1], "200", "OK", user_id);
            log_info("zap: admitted %s \"%s\" from %s (key %s)", role_name(e.role), e.name, addr,
                     fp);
            return;
        }
        count(zh, false);
        send_reply(zh, &f[1], "400", "key not allowed", "");
        log_ratelimited(&zh->rl_refused, LOG_LVL_WARN,
                        "zap: refused a client from %s: key %s is in no allow list", addr, fp);
        return;
    }
    if (frame_is(&f[2], TRANSPORT_ZAP_DOMAIN_INSECURE) && frame_is(&f[5], "NULL") && nf == 6) {
        snprintf(user_id, sizeof user_id, "insecure:%s", addr);
        count(zh, true);
        send_reply(zh, &f[1], "200", "OK (insecure)", user_id);
        log_debug("zap: admitted an unauthenticated peer from %s (insecure mode)", addr);
        return;
    }
    count(zh, false);
    send_reply(zh, &f[1], "400", "mechanism not allowed", "");
    log_ratelimited(&zh->rl_refused, LOG_LVL_WARN,
                    "zap: refused a client from %s: mechanism %s in domain \"%s\" (key %s)", addr,
                    mech, domain, fp);
}

/* Reads one whole request (all its frames) and answers it. */
static void serve_one(struct zap_handler *zh)
{
    zmq_msg_t f[ZAP_MAX_FRAMES];
    size_t nf = 0, extra = 0;
    int more = 1;

    while (more) {
        zmq_msg_t scratch;
        zmq_msg_t *m = nf < ZAP_MAX_FRAMES ? &f[nf] : &scratch;
        zmq_msg_init(m);
        if (zmq_msg_recv(m, zh->rep, nf == 0 && extra == 0 ? ZMQ_DONTWAIT : 0) < 0) {
            zmq_msg_close(m);
            break;
        }
        more = zmq_msg_more(m);
        if (m == &scratch) {
            zmq_msg_close(m);
            extra++;
        } else {
            nf++;
        }
    }
    if (nf > 0)
        decide(zh, f, nf, extra > 0);
    for (size_t i = 0; i < nf; i++)
        zmq_msg_close(&f[i]);
}

static void *zap_thread(void *arg)
{
    struct zap_handler *zh = arg;
    while (!atomic_load(&zh->stop)) {
        zmq_pollitem_t it = {.socket = zh->rep, .events = ZMQ_POLLIN};
        int n = zmq_poll(&it, 1, ZAP_POLL_MS);
        if (n < 0) {
            if (zmq_errno() == EINTR)
                continue;
            if (zmq_errno() != ETERM)
                log_err("zap: poll: %s; no new connection will be admitted",
                        zmq_strerror(zmq_errno()));
            break;
        }
        if (n > 0 && (it.revents & ZMQ_POLLIN))
            serve_one(zh);
    }
    zmq_close(zh->rep);
    zh->rep = NULL;
    return NULL;
}

/* ---- lifecycle ------------------------------------------------------------ */

static void handler_free(struct zap_handler *zh)
{
    if (zh->rep)
        zmq_close(zh->rep);
    set_free(&zh->set);
    free(zh->agents_dir);
    free(zh->analysts_dir);
    pthread_mutex_destroy(&zh->mu);
    free(zh);
}

struct zap_handler *zap_start(void *zmq_ctx, const char *agents_dir, const char *analysts_dir,
                              char *err, size_t errlen)
{
    struct zap_handler *zh = calloc(1, sizeof *zh);
    if (zh == NULL) {
        transport__errf(err, errlen, "zap: out of memory");
        return NULL;
    }
    pthread_mutex_init(&zh->mu, NULL);
    atomic_init(&zh->stop, false);
    zh->ctx = zmq_ctx;
    if ((agents_dir && (zh->agents_dir = strdup(agents_dir)) == NULL) ||
        (analysts_dir && (zh->analysts_dir = strdup(analysts_dir)) == NULL)) {
        transport__errf(err, errlen, "zap: out of memory");
        goto fail;
    }
    if (load_lists(zh->agents_dir, zh->analysts_dir, &zh->set, err, errlen) != 0)
        goto fail;

    zh->rep = zmq_socket(zmq_ctx, ZMQ_REP);
    if (zh->rep == NULL) {
        transport__errf(err, errlen, "zap: socket: %s", zmq_strerror(zmq_errno()));
        goto fail;
    }
    int linger = 0;
    zmq_setsockopt(zh->rep, ZMQ_LINGER, &linger, sizeof linger);
    if (zmq_bind(zh->rep, ZAP_ENDPOINT) != 0) {
        int e = zmq_errno();
        transport__errf(err, errlen, "zap: bind %s: %s%s", ZAP_ENDPOINT, zmq_strerror(e),
                        e == EADDRINUSE ? " (another ZAP handler serves this context)" : "");
        goto fail;
    }
    /* The socket moves to the thread: pthread_create is the full memory
     * barrier libzmq asks for when a socket changes threads. */
    int prc = pthread_create(&zh->thread, NULL, zap_thread, zh);
    if (prc != 0) {
        transport__errf(err, errlen, "zap: thread: %s", strerror(prc));
        goto fail;
    }
    pthread_mutex_lock(&registry_mu);
    zh->next_registered = registry;
    registry = zh;
    pthread_mutex_unlock(&registry_mu);
    log_info("zap: allowing %zu agent keys%s%s, %zu analyst keys%s%s", zh->set.n_agents,
             zh->agents_dir ? " from " : "", zh->agents_dir ? zh->agents_dir : "",
             zh->set.n_analysts, zh->analysts_dir ? " from " : "",
             zh->analysts_dir ? zh->analysts_dir : "");
    return zh;
fail:
    handler_free(zh);
    return NULL;
}

int zap_reload(struct zap_handler *zh, char *err, size_t errlen)
{
    struct allow_set fresh, old;
    int rc = load_lists(zh->agents_dir, zh->analysts_dir, &fresh, err, errlen);
    if (rc != 0) {
        log_err("zap: reload failed, the previous allow lists stay: %s", err ? err : "");
        return rc;
    }
    pthread_mutex_lock(&zh->mu);
    old = zh->set;
    zh->set = fresh;
    pthread_mutex_unlock(&zh->mu);
    log_info("zap: reloaded: %zu agent keys, %zu analyst keys", fresh.n_agents,
             fresh.n_analysts);
    set_free(&old);
    return 0;
}

void zap_get_stats(struct zap_handler *zh, struct zap_stats *out)
{
    pthread_mutex_lock(&zh->mu);
    *out = zh->stats;
    pthread_mutex_unlock(&zh->mu);
}

void zap_stop(struct zap_handler *zh)
{
    if (zh == NULL)
        return;
    pthread_mutex_lock(&registry_mu);
    for (struct zap_handler **pp = &registry; *pp != NULL; pp = &(*pp)->next_registered) {
        if (*pp == zh) {
            *pp = zh->next_registered;
            break;
        }
    }
    pthread_mutex_unlock(&registry_mu);
    atomic_store(&zh->stop, true);
    pthread_join(zh->thread, NULL);
    handler_free(zh);
}
