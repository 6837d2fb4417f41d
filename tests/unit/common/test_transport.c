/* test_transport.c — key files, the ZAP handler over real ZeroMQ sockets on
 * loopback, and envelope packing/validation.
 *
 * Sockets bind tcp://127.0.0.1:* (an ephemeral port, read back through
 * ZMQ_LAST_ENDPOINT) so tests never collide; every test works in its own
 * mkdtemp folder, removed in .fini. Waits are bounded polls (at most a few
 * seconds when something is broken, milliseconds when it works).
 *
 * Also the seed corpus of fuzz_envelope: with VIGIL_ENVELOPE_CORPUS=DIR the
 * test envelope.write_seed_corpus writes every sample envelope there
 * (tests/fuzz/corpus/envelope/ was made that way):
 *   VIGIL_ENVELOPE_CORPUS=tests/fuzz/corpus/envelope \
 *     build/tests/unit/test_transport --filter 'envelope/write_seed_corpus' */
#include "transport.h"

#include "err.h"
#include "log.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define NOW_NS INT64_C(1767225600000000000) /* 2026-01-01T00:00:00Z */
#define WAIT_MS 3000                        /* upper bound for what should happen */
#define QUIET_MS 300                        /* how long "nothing arrives" is watched */

/* ---- temporary folders -------------------------------------------------- */

static char tmp_root[256];

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void tmp_setup(void)
{
    snprintf(tmp_root, sizeof tmp_root, "/tmp/vigil-transport-XXXXXX");
    cr_assert_not_null(mkdtemp(tmp_root), "mkdtemp: %s", strerror(errno));
}

static void tmp_teardown(void)
{
    if (tmp_root[0])
        nftw(tmp_root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    tmp_root[0] = '\0';
}

static void path_in(char *out, size_t cap, const char *rel)
{
    cr_assert_lt(snprintf(out, cap, "%s/%s", tmp_root, rel), (int)cap);
}

static void write_file(const char *path, const char *text, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
    cr_assert_geq(fd, 0, "%s: %s", path, strerror(errno));
    cr_assert_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    cr_assert_eq(fchmod(fd, mode), 0);
    close(fd);
}

static void read_file(const char *path, char *buf, size_t cap)
{
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f, "%s: %s", path, strerror(errno));
    size_t n = fread(buf, 1, cap - 1, f);
    buf[n] = '\0';
    fclose(f);
}

static void copy_file(const char *from, const char *to)
{
    char buf[512];
    read_file(from, buf, sizeof buf);
    write_file(to, buf, 0644);
}

static mode_t mode_of(const char *path)
{
    struct stat st;
    cr_assert_eq(stat(path, &st), 0, "%s: %s", path, strerror(errno));
    return st.st_mode & 07777;
}

/* ---- key files ------------------------------------------------------------ */

TestSuite(keys, .init = tmp_setup, .fini = tmp_teardown);

Test(keys, generate_then_load)
{
    char dir[300], key[320], pub[320], err[256];
    struct keypair kp;
    char pub_only[KEY_Z85_LEN + 1];

    path_in(dir, sizeof dir, "etc/vigil/aggregator");
    cr_assert_eq(key_generate(dir, "aggregator", false, err, sizeof err), 0, "%s", err);
    snprintf(key, sizeof key, "%s/aggregator.key", dir);
    snprintf(pub, sizeof pub, "%s/aggregator.pub", dir);
    cr_assert_eq(mode_of(dir), 0700);
    cr_assert_eq(mode_of(key), 0600);
    cr_assert_eq(mode_of(pub), 0644);

    cr_assert_eq(key_load_pair(key, &kp, err, sizeof err), 0, "%s", err);
    cr_assert_eq(key_load_public(pub, pub_only, err, sizeof err), 0, "%s", err);
    cr_assert_str_eq(kp.public_z85, pub_only);
    cr_assert(key_z85_valid(kp.public_z85) && key_z85_valid(kp.secret_z85));
    cr_assert_str_neq(kp.public_z85, kp.secret_z85);

    char fp[17], fp2[17];
    uint8_t bin[KEY_BIN_LEN];
    key_fingerprint(kp.public_z85, fp);
    cr_assert_eq(strlen(fp), 16);
    cr_assert_eq(strspn(fp, "0123456789abcdef"), 16);
    cr_assert_not_null(zmq_z85_decode(bin, kp.public_z85));
    key_fingerprint_bin(bin, fp2);
    cr_assert_str_eq(fp, fp2);

    /* a trailing slash: the key folder itself is still private */
    char slash[300], parent[300];
    path_in(slash, sizeof slash, "other/keys/");
    path_in(parent, sizeof parent, "other");
    cr_assert_eq(key_generate(slash, "x", false, err, sizeof err), 0, "%s", err);
    slash[strlen(slash) - 1] = '\0';
    cr_assert_eq(mode_of(slash), 0700);
    cr_assert_eq(mode_of(parent) & 0700, 0700);
}

Test(keys, refuses_to_overwrite_unless_forced)
{
    char dir[300], key[320], before[512], after[512], err[256];
    path_in(dir, sizeof dir, "keys");
    snprintf(key, sizeof key, "%s/alice.key", dir);

    cr_assert_eq(key_generate(dir, "alice", false, err, sizeof err), 0, "%s", err);
    read_file(key, before, sizeof before);
    cr_assert_eq(key_generate(dir, "alice", false, err, sizeof err), -EEXIST);
    cr_assert_not_null(strstr(err, "exists"), "%s", err);
    read_file(key, after, sizeof after);
    cr_assert_str_eq(before, after, "a refused key_generate changed the key");

    /* the .pub alone being there is enough to refuse */
    char pub[320];
    snprintf(pub, sizeof pub, "%s/alice.pub", dir);
    cr_assert_eq(unlink(key), 0);
    cr_assert_eq(key_generate(dir, "alice", false, err, sizeof err), -EEXIST);
    cr_assert_eq(access(key, F_OK), -1, "refused, yet a .key was written");

    cr_assert_eq(key_generate(dir, "alice", true, err, sizeof err), 0, "%s", err);
    read_file(key, after, sizeof after);
    cr_assert_str_neq(before, after);
    cr_assert_eq(mode_of(key), 0600);
    cr_assert_eq(mode_of(pub), 0644);

    /* no temporary files left behind */
    DIR *d = opendir(dir);
    cr_assert_not_null(d);
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        cr_assert(strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0 ||
                      strcmp(de->d_name, "alice.key") == 0 || strcmp(de->d_name, "alice.pub") == 0,
                  "stray file %s/%s", dir, de->d_name);
    closedir(d);
}

Test(keys, secret_key_readable_by_others_is_refused)
{
    char dir[300], key[320], err[256];
    struct keypair kp;
    path_in(dir, sizeof dir, "keys");
    snprintf(key, sizeof key, "%s/agent1.key", dir);
    cr_assert_eq(key_generate(dir, "agent1", false, err, sizeof err), 0, "%s", err);

    static const mode_t loose[] = {0644, 0640, 0604, 0660, 0601, 0610};
    for (size_t i = 0; i < sizeof loose / sizeof loose[0]; i++) {
        cr_assert_eq(chmod(key, loose[i]), 0);
        cr_assert_eq(key_load_pair(key, &kp, err, sizeof err), -EACCES, "mode %04o accepted",
                     (unsigned)loose[i]);
        cr_assert_not_null(strstr(err, "too open"), "%s", err);
    }
    static const mode_t ok[] = {0600, 0400};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        cr_assert_eq(chmod(key, ok[i]), 0);
        cr_assert_eq(key_load_pair(key, &kp, err, sizeof err), 0, "mode %04o: %s",
                     (unsigned)ok[i], err);
    }
}

Test(keys, malformed_files_are_refused)
{
    char dir[300], path[320], err[256], z[KEY_Z85_LEN + 1];
    struct keypair a, b;
    path_in(dir, sizeof dir, "keys");
    cr_assert_eq(key_generate(dir, "a", false, err, sizeof err), 0, "%s", err);
    cr_assert_eq(key_generate(dir, "b", false, err, sizeof err), 0, "%s", err);
    snprintf(path, sizeof path, "%s/a.key", dir);
    cr_assert_eq(key_load_pair(path, &a, err, sizeof err), 0);
    snprintf(path, sizeof path, "%s/b.key", dir);
    cr_assert_eq(key_load_pair(path, &b, err, sizeof err), 0);

    char text[512];
    struct {
        const char *what;
        bool pair;
        int want;
    } cases[] = {
        {"empty", false, VIGIL_EBADMSG},
        {"short key", false, VIGIL_EBADMSG},
        {"bad character", false, VIGIL_EBADMSG},
        {"group overflow", false, VIGIL_EBADMSG},
        {"secret in a .pub", false, VIGIL_EBADMSG},
        {"two public keys", false, VIGIL_EBADMSG},
        {"unknown keyword", false, VIGIL_EBADMSG},
        {"halves of two pairs", true, VIGIL_EBADMSG},
        {"secret only", true, VIGIL_EBADMSG},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        switch (i) {
        case 0: snprintf(text, sizeof text, "# nothing here\n\n"); break;
        case 1: snprintf(text, sizeof text, "%.39s\n", a.public_z85); break;
        case 2:
            snprintf(text, sizeof text, "%s\n", a.public_z85);
            text[7] = '"'; /* not in the Z85 alphabet */
            break;
        case 3:
            /* "#####" is 85^5 - 1 > 2^32 - 1: no 4 bytes encode to it */
            snprintf(text, sizeof text, "#####%035d\n", 0);
            cr_assert_eq(strlen(text), KEY_Z85_LEN + 1);
            break;
        case 4:
            snprintf(text, sizeof text, "public %s\nsecret %s\n", a.public_z85, a.secret_z85);
            break;
        case 5: snprintf(text, sizeof text, "%s\n%s\n", a.public_z85, b.public_z85); break;
        case 6: snprintf(text, sizeof text, "private %s\n", a.public_z85); break;
        case 7:
            snprintf(text, sizeof text, "public %s\nsecret %s\n", a.public_z85, b.secret_z85);
            break;
        case 8: snprintf(text, sizeof text, "secret %s\n", a.secret_z85); break;
        }
        snprintf(path, sizeof path, "%s/case%zu.%s", dir, i, cases[i].pair ? "key" : "pub");
        write_file(path, text, 0600);
        int rc = cases[i].pair ? key_load_pair(path, &a, err, sizeof err)
                               : key_load_public(path, z, err, sizeof err);
        cr_assert_eq(rc, cases[i].want, "%s: got %d (%s)", cases[i].what, rc, err);
    }

    /* comments, blank lines, CRLF and surrounding spaces are fine */
    snprintf(text, sizeof text, "# the aggregator\r\n\r\n   %s  \r\n", b.public_z85);
    snprintf(path, sizeof path, "%s/ok.pub", dir);
    write_file(path, text, 0644);
    cr_assert_eq(key_load_public(path, z, err, sizeof err), 0, "%s", err);
    cr_assert_str_eq(z, b.public_z85);

    snprintf(path, sizeof path, "%s/missing.key", dir);
    cr_assert_eq(key_load_pair(path, &a, err, sizeof err), -ENOENT);
    cr_assert_eq(key_load_pair(dir, &a, err, sizeof err), VIGIL_EBADMSG, "a folder is no key");
}

Test(keys, names_and_z85)
{
    cr_assert(key_name_valid("web-01.example_2"));
    cr_assert(key_name_valid("a"));
    const char *bad[] = {"", ".hidden", "-dash", "a/b", "../x", "sp ace", "tab\t", "é"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_assert(!key_name_valid(bad[i]), "\"%s\" accepted", bad[i]);
    char long_name[KEY_NAME_MAX + 2];
    memset(long_name, 'a', sizeof long_name - 1);
    long_name[KEY_NAME_MAX] = '\0';
    cr_assert(key_name_valid(long_name));
    long_name[KEY_NAME_MAX] = 'a';
    long_name[KEY_NAME_MAX + 1] = '\0';
    cr_assert(!key_name_valid(long_name));

    char err[256];
    cr_assert_eq(key_generate(tmp_root, "../escape", false, err, sizeof err), VIGIL_EINVAL);
    cr_assert(!key_z85_valid(NULL));
    cr_assert(!key_z85_valid(""));
    cr_assert(!key_z85_valid("0000000000000000000000000000000000000000x"));
    cr_assert(key_z85_valid("0000000000000000000000000000000000000000"));
    cr_assert(!key_z85_valid("000000000000000000000000000000000000000")); /* 39 chars */
    cr_assert(!key_z85_valid("00000#####00000000000000000000000000000")); /* > 2^32 - 1 */

    char fp[17];
    char not_a_key[KEY_Z85_LEN + 1] = "not a key";
    key_fingerprint(not_a_key, fp);
    cr_assert_str_eq(fp, "????????????????");
}

/* ---- ZAP and sockets ------------------------------------------------------ */

struct fleet {
    void *ctx;
    struct zap_handler *zh;
    void *server;
    char endpoint[128];
    char keys[300], agents[300], analysts[300];
    struct keypair aggregator, alice, bob, eve; /* agent, analyst, unknown */
};

static void load_pair(const char *dir, const char *name, struct keypair *kp)
{
    char path[400], err[256];
    snprintf(path, sizeof path, "%s/%s.key", dir, name);
    cr_assert_eq(key_load_pair(path, kp, err, sizeof err), 0, "%s", err);
}

static void allow(struct fleet *f, const char *name, const char *list_dir)
{
    char from[400], to[400];
    snprintf(from, sizeof from, "%s/%s.pub", f->keys, name);
    snprintf(to, sizeof to, "%s/%s.pub", list_dir, name);
    copy_file(from, to);
}

/* Keys for everyone, alice allowed as agent and bob as analyst. */
static void fleet_keys(struct fleet *f)
{
    char err[256];
    memset(f, 0, sizeof *f);
    path_in(f->keys, sizeof f->keys, "keys");
    path_in(f->agents, sizeof f->agents, "agents.d");
    path_in(f->analysts, sizeof f->analysts, "analysts.d");
    const char *names[] = {"aggregator", "alice", "bob", "eve"};
    struct keypair *kps[] = {&f->aggregator, &f->alice, &f->bob, &f->eve};
    for (size_t i = 0; i < 4; i++) {
        cr_assert_eq(key_generate(f->keys, names[i], false, err, sizeof err), 0, "%s", err);
        load_pair(f->keys, names[i], kps[i]);
    }
    cr_assert_eq(mkdir(f->agents, 0755), 0);
    cr_assert_eq(mkdir(f->analysts, 0755), 0);
    allow(f, "alice", f->agents);
    allow(f, "bob", f->analysts);
    /* noise an allow list may hold: ignored */
    char path[400];
    snprintf(path, sizeof path, "%s/README", f->agents);
    write_file(path, "keys of the fleet's agents\n", 0644);
    snprintf(path, sizeof path, "%s/.old.pub", f->agents);
    write_file(path, "garbage\n", 0644);
}

static void fleet_start(struct fleet *f, bool insecure)
{
    char err[256];
    f->ctx = zmq_ctx_new();
    cr_assert_not_null(f->ctx);
    f->zh = zap_start(f->ctx, insecure ? NULL : f->agents, insecure ? NULL : f->analysts, err,
                      sizeof err);
    cr_assert_not_null(f->zh, "zap_start: %s", err);
    f->server = transport_server(f->ctx, "tcp://127.0.0.1:*", &f->aggregator, insecure, err,
                                 sizeof err);
    cr_assert_not_null(f->server, "transport_server: %s", err);
    size_t len = sizeof f->endpoint;
    cr_assert_eq(zmq_getsockopt(f->server, ZMQ_LAST_ENDPOINT, f->endpoint, &len), 0);
}

static void fleet_stop(struct fleet *f)
{
    zmq_close(f->server);
    zap_stop(f->zh);
    cr_assert_eq(zmq_ctx_term(f->ctx), 0);
}

static void *client_of(struct fleet *f, const struct keypair *kp, bool insecure)
{
    char err[256];
    void *c = transport_client(f->ctx, f->endpoint, f->aggregator.public_z85, kp, insecure, err,
                               sizeof err);
    cr_assert_not_null(c, "transport_client: %s", err);
    return c;
}

/* Waits until the client's connection is complete, then sends text.
 * Returns false if it never became writable (ZMQ_IMMEDIATE: refused). */
static bool client_send(void *c, const char *text, int wait_ms)
{
    zmq_pollitem_t it = {.socket = c, .events = ZMQ_POLLOUT};
    if (zmq_poll(&it, 1, wait_ms) != 1)
        return false;
    return zmq_send(c, text, strlen(text), ZMQ_DONTWAIT) == (int)strlen(text);
}

struct received {
    uint8_t id[256];
    size_t id_len;
    char body[256];
    char user_id[128];    /* from the body frame */
    char id_user_id[128]; /* from the routing-id frame ("" if none) */
    char peer_address[64];
    struct transport_peer peer;
};

/* Receives [routing id][body] from the server within wait_ms. */
static bool server_recv(struct fleet *f, int wait_ms, struct received *r)
{
    zmq_pollitem_t it = {.socket = f->server, .events = ZMQ_POLLIN};
    if (zmq_poll(&it, 1, wait_ms) != 1)
        return false;
    memset(r, 0, sizeof *r);
    zmq_msg_t id, body;
    zmq_msg_init(&id);
    zmq_msg_init(&body);
    cr_assert_gt(zmq_msg_recv(&id, f->server, 0), 0);
    cr_assert(zmq_msg_more(&id));
    cr_assert_geq(zmq_msg_recv(&body, f->server, 0), 0);
    cr_assert(!zmq_msg_more(&body));
    r->id_len = zmq_msg_size(&id);
    cr_assert_leq(r->id_len, sizeof r->id);
    memcpy(r->id, zmq_msg_data(&id), r->id_len);
    size_t n = zmq_msg_size(&body) < sizeof r->body - 1 ? zmq_msg_size(&body) : sizeof r->body - 1;
    memcpy(r->body, zmq_msg_data(&body), n);
    const char *uid = zmq_msg_gets(&body, "User-Id");
    snprintf(r->user_id, sizeof r->user_id, "%s", uid ? uid : "");
    uid = zmq_msg_gets(&id, "User-Id");
    snprintf(r->id_user_id, sizeof r->id_user_id, "%s", uid ? uid : "");
    const char *addr = zmq_msg_gets(&body, "Peer-Address");
    snprintf(r->peer_address, sizeof r->peer_address, "%s", addr ? addr : "");
    (void)transport_peer_of(&body, &r->peer);
    zmq_msg_close(&id);
    zmq_msg_close(&body);
    return true;
}

/* True when, for QUIET_MS, none of the clients could send and the server
 * received nothing (all watched at once). */
static bool all_quiet(struct fleet *f, void *c1, void *c2)
{
    zmq_pollitem_t it[3] = {{.socket = f->server, .events = ZMQ_POLLIN},
                            {.socket = c1, .events = ZMQ_POLLOUT},
                            {.socket = c2, .events = ZMQ_POLLOUT}};
    return zmq_poll(it, c2 ? 3 : 2, QUIET_MS) == 0;
}

static bool wait_refused(struct fleet *f, uint64_t at_least)
{
    for (int waited = 0; waited < WAIT_MS; waited += 10) {
        struct zap_stats st;
        zap_get_stats(f->zh, &st);
        if (st.refused >= at_least)
            return true;
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return false;
}

TestSuite(zap, .init = tmp_setup, .fini = tmp_teardown, .timeout = 30);

Test(zap, allowed_agent_gets_through_tagged_as_agent)
{
    struct fleet f;
    struct received r;
    fleet_keys(&f);
    fleet_start(&f, false);

    void *c = client_of(&f, &f.alice, false);
    cr_assert(client_send(c, "batch 1", WAIT_MS), "the agent's connection never completed");
    cr_assert(server_recv(&f, WAIT_MS, &r), "nothing arrived");
    cr_assert_str_eq(r.body, "batch 1");
    cr_assert_str_eq(r.user_id, "agent:alice");
    /* libzmq 4.3 gives the routing-id frame, which the ROUTER makes up
     * itself, no metadata: the body frame is where the User-Id is */
    cr_assert_str_eq(r.id_user_id, "", "the routing-id frame has a User-Id: update transport.h");
    cr_assert_str_eq(r.peer_address, "127.0.0.1");
    cr_assert_eq(r.peer.role, TRANSPORT_ROLE_AGENT);
    cr_assert_str_eq(r.peer.name, "alice");
    cr_assert(transport_peer_may(&r.peer, TRANSPORT_ROLE_AGENT));
    cr_assert(!transport_peer_may(&r.peer, TRANSPORT_ROLE_ANALYST), "an agent key acts as analyst");

    /* the way back: an ack routed by the id */
    cr_assert_eq(zmq_send(f.server, r.id, r.id_len, ZMQ_SNDMORE), (int)r.id_len);
    cr_assert_eq(zmq_send(f.server, "ack 1", 5, 0), 5);
    zmq_pollitem_t it = {.socket = c, .events = ZMQ_POLLIN};
    cr_assert_eq(zmq_poll(&it, 1, WAIT_MS), 1, "no ack came back");
    char buf[16] = {0};
    cr_assert_eq(zmq_recv(c, buf, sizeof buf - 1, 0), 5);
    cr_assert_str_eq(buf, "ack 1");

    /* ZMQ_ROUTER_MANDATORY: a reply to a peer that is not there fails loudly */
    cr_assert_eq(zmq_send(f.server, "nobody", 6, ZMQ_SNDMORE | ZMQ_DONTWAIT), -1);
    cr_assert_eq(zmq_errno(), EHOSTUNREACH);

    struct zap_stats st;
    zap_get_stats(f.zh, &st);
    cr_assert_eq(st.accepted, 1);
    cr_assert_eq(st.refused, 0);

    int64_t maxmsg = 0;
    size_t len = sizeof maxmsg;
    cr_assert_eq(zmq_getsockopt(f.server, ZMQ_MAXMSGSIZE, &maxmsg, &len), 0);
    cr_assert_eq(maxmsg, (int64_t)TRANSPORT_MAX_MSG);
    zmq_close(c);
    fleet_stop(&f);
}

Test(zap, allowed_analyst_gets_through_tagged_as_analyst)
{
    struct fleet f;
    struct received r;
    fleet_keys(&f);
    fleet_start(&f, false);

    void *c = client_of(&f, &f.bob, false);
    cr_assert(client_send(c, "top", WAIT_MS));
    cr_assert(server_recv(&f, WAIT_MS, &r));
    cr_assert_str_eq(r.user_id, "analyst:bob");
    cr_assert_eq(r.peer.role, TRANSPORT_ROLE_ANALYST);
    cr_assert(transport_peer_may(&r.peer, TRANSPORT_ROLE_ANALYST));
    cr_assert(!transport_peer_may(&r.peer, TRANSPORT_ROLE_AGENT));
    zmq_close(c);
    fleet_stop(&f);
}

Test(zap, unknown_key_is_refused_until_allowed_by_reload)
{
    struct fleet f;
    struct received r;
    char err[256];
    fleet_keys(&f);
    fleet_start(&f, false);

    void *c = client_of(&f, &f.eve, false);
    cr_assert(wait_refused(&f, 1), "the refusal was not counted");
    cr_assert_eq(zmq_send(c, "let me in", 9, ZMQ_DONTWAIT), -1,
                 "a refused client could queue a message (ZMQ_IMMEDIATE)");
    cr_assert_eq(zmq_errno(), EAGAIN);
    cr_assert(all_quiet(&f, c, NULL), "a refused client connected or its message arrived");
    zmq_close(c);
    struct zap_stats st;
    zap_get_stats(f.zh, &st);
    cr_assert_eq(st.accepted, 0);

    allow(&f, "eve", f.agents);
    cr_assert_eq(zap_reload(f.zh, err, sizeof err), 0, "%s", err);
    c = client_of(&f, &f.eve, false);
    cr_assert(client_send(c, "hello again", WAIT_MS), "still refused after the reload");
    cr_assert(server_recv(&f, WAIT_MS, &r));
    cr_assert_str_eq(r.body, "hello again");
    cr_assert_str_eq(r.user_id, "agent:eve");
    zmq_close(c);
    fleet_stop(&f);
}

Test(zap, failed_reload_keeps_the_old_lists)
{
    struct fleet f;
    struct received r;
    char err[256], path[400];
    fleet_keys(&f);
    fleet_start(&f, false);

    snprintf(path, sizeof path, "%s/broken.pub", f.agents);
    write_file(path, "this is not a key\n", 0644);
    cr_assert_neq(zap_reload(f.zh, err, sizeof err), 0);
    cr_assert_not_null(strstr(err, "broken.pub"), "%s", err);

    void *c = client_of(&f, &f.alice, false);
    cr_assert(client_send(c, "still here", WAIT_MS));
    cr_assert(server_recv(&f, WAIT_MS, &r));
    cr_assert_str_eq(r.user_id, "agent:alice");
    zmq_close(c);
    fleet_stop(&f);
}

Test(zap, removed_key_is_refused_after_reload)
{
    struct fleet f;
    char err[256], path[400];
    fleet_keys(&f);
    fleet_start(&f, false);
    snprintf(path, sizeof path, "%s/alice.pub", f.agents);
    cr_assert_eq(unlink(path), 0);
    cr_assert_eq(zap_reload(f.zh, err, sizeof err), 0, "%s", err);
    void *c = client_of(&f, &f.alice, false);
    cr_assert(wait_refused(&f, 1));
    cr_assert(all_quiet(&f, c, NULL));
    zmq_close(c);
    fleet_stop(&f);
}

Test(zap, lists_that_cannot_be_trusted_are_refused_at_load)
{
    struct fleet f;
    char err[256], path[400];
    fleet_keys(&f);
    void *ctx = zmq_ctx_new();

    /* one key in both lists: which role? */
    allow(&f, "alice", f.analysts);
    cr_assert_null(zap_start(ctx, f.agents, f.analysts, err, sizeof err));
    cr_assert_not_null(strstr(err, "twice"), "%s", err);
    snprintf(path, sizeof path, "%s/alice.pub", f.analysts);
    unlink(path);

    /* one key under two names */
    snprintf(path, sizeof path, "%s/alice2.pub", f.agents);
    char from[400];
    snprintf(from, sizeof from, "%s/alice.pub", f.keys);
    copy_file(from, path);
    cr_assert_null(zap_start(ctx, f.agents, f.analysts, err, sizeof err));
    unlink(path);

    /* a file name that is no client name */
    snprintf(path, sizeof path, "%s/bad name.pub", f.agents);
    copy_file(from, path);
    cr_assert_null(zap_start(ctx, f.agents, f.analysts, err, sizeof err));
    unlink(path);

    /* a missing list */
    cr_assert_null(zap_start(ctx, "/nonexistent/vigil", NULL, err, sizeof err));

    /* and then it starts; a second handler on the context is refused */
    struct zap_handler *zh = zap_start(ctx, f.agents, f.analysts, err, sizeof err);
    cr_assert_not_null(zh, "%s", err);
    cr_assert_null(zap_start(ctx, f.agents, NULL, err, sizeof err));
    zap_stop(zh);
    zap_stop(NULL);
    cr_assert_eq(zmq_ctx_term(ctx), 0);
}

Test(zap, server_refuses_to_start_without_a_handler)
{
    struct fleet f;
    char err[256];
    fleet_keys(&f);
    void *ctx = zmq_ctx_new();
    void *s = transport_server(ctx, "tcp://127.0.0.1:*", &f.aggregator, false, err, sizeof err);
    cr_assert_null(s);
    cr_assert_not_null(strstr(err, "zap_start"), "%s", err);
    cr_assert_eq(zmq_ctx_term(ctx), 0);
}

Test(zap, wrong_mechanism_or_server_key_gets_nothing_through)
{
    struct fleet f;
    struct received r;
    fleet_keys(&f);
    fleet_start(&f, false);

    /* a plain (NULL mechanism) client against the CURVE server */
    void *plain = client_of(&f, NULL, true);
    /* an allowed key that trusts the wrong server key */
    char err[256];
    void *fooled = transport_client(f.ctx, f.endpoint, f.eve.public_z85, &f.alice, false, err,
                                    sizeof err);
    cr_assert_not_null(fooled, "%s", err);
    cr_assert(all_quiet(&f, plain, fooled), "a client without the right keys got through");
    cr_assert(!server_recv(&f, 0, &r));
    zmq_close(plain);
    zmq_close(fooled);
    fleet_stop(&f);
}

Test(zap, insecure_mode_admits_everyone_as_either_role)
{
    struct fleet f;
    struct received r;
    fleet_keys(&f);
    fleet_start(&f, true);

    void *c = client_of(&f, NULL, true);
    cr_assert(client_send(c, "plain", WAIT_MS));
    cr_assert(server_recv(&f, WAIT_MS, &r));
    cr_assert_str_eq(r.body, "plain");
    cr_assert_str_eq(r.user_id, "insecure:127.0.0.1");
    cr_assert_eq(r.peer.role, TRANSPORT_ROLE_INSECURE);
    cr_assert_str_eq(r.peer.name, "127.0.0.1");
    cr_assert(transport_peer_may(&r.peer, TRANSPORT_ROLE_AGENT));
    cr_assert(transport_peer_may(&r.peer, TRANSPORT_ROLE_ANALYST));
    zmq_close(c);

    /* a CURVE client cannot talk to the plain server */
    c = client_of(&f, &f.alice, false);
    cr_assert(all_quiet(&f, c, NULL));
    zmq_close(c);
    fleet_stop(&f);
}

Test(zap, user_id_parsing)
{
    struct transport_peer p;
    cr_assert_eq(transport_peer_parse("agent:web-01", &p), 0);
    cr_assert_eq(p.role, TRANSPORT_ROLE_AGENT);
    cr_assert_str_eq(p.name, "web-01");
    cr_assert_eq(transport_peer_parse("analyst:bob", &p), 0);
    cr_assert_eq(p.role, TRANSPORT_ROLE_ANALYST);
    cr_assert_eq(transport_peer_parse("insecure:::1", &p), 0);
    cr_assert_eq(p.role, TRANSPORT_ROLE_INSECURE);
    cr_assert_str_eq(p.name, "::1");
    const char *bad[] = {"", "agent:", "agent", "root:x", "agent:../etc", "analyst:a b",
                         "insecure:", "Agent:x"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_assert_eq(transport_peer_parse(bad[i], &p), VIGIL_EINVAL, "\"%s\" accepted", bad[i]);
        cr_assert_eq(p.role, TRANSPORT_ROLE_NONE);
    }
    cr_assert_eq(transport_peer_parse(NULL, &p), VIGIL_EINVAL);
    cr_assert(!transport_peer_may(&p, TRANSPORT_ROLE_AGENT));
    cr_assert(!transport_peer_may(NULL, TRANSPORT_ROLE_AGENT));
}

/* ---- envelopes ------------------------------------------------------------ */

enum body {
    B_BATCH,
    B_ACK,
    B_START,
    B_STOP,
    B_STATUS,
    B_QUERY,
    B_RESPONSE,
    B_COUNT
};
static const char *const body_names[B_COUNT] = {"batch",  "ack",   "capture_start", "capture_stop",
                                                "status", "query", "response"};

/* Every message kind, in storage that outlives the Envelope pointing at it. */
struct sample {
    Vigil__Envelope env;
    Vigil__FlowBatch batch;
    Vigil__AgentCounters counters;
    Vigil__FlowRecord rec[2];
    Vigil__FlowRecord *recp[2];
    Vigil__Ack ack;
    Vigil__Command cmd;
    Vigil__CaptureStart start;
    Vigil__CaptureStop stop;
    Vigil__AgentStatus status;
    Vigil__CaptureProgress prog;
    Vigil__CaptureProgress *progp[1];
    Vigil__CaptureFile file;
    Vigil__CaptureFile *filep[1];
    Vigil__QueryRequest query;
    Vigil__QueryRequest__ArgsEntry arg[TRANSPORT_MAX_QUERY_ARGS + 1];
    Vigil__QueryRequest__ArgsEntry *argp[TRANSPORT_MAX_QUERY_ARGS + 1];
    char argkey[TRANSPORT_MAX_QUERY_ARGS + 1][8];
    Vigil__QueryResponse resp;
    char *cols[TRANSPORT_MAX_COLUMNS + 1];
    Vigil__Row row[2];
    Vigil__Row *rowp[2];
    char *cells[2][TRANSPORT_MAX_COLUMNS + 1];
    uint8_t v4a[4], v4b[4], v6a[16], v6b[16];
    char text[2048]; /* for over-long strings */
};

static char *S(const char *s)
{
    return (char *)s; /* protobuf-c's string fields are char *, never written through */
}

/* A valid envelope of the given kind (variant picks small differences). */
static void sample_init(struct sample *s, enum body b, int variant)
{
    memset(s, 0, sizeof *s);
    vigil__envelope__init(&s->env);
    s->env.schema_version = VIGIL__SCHEMA_VERSION__SCHEMA_V1;
    memcpy(s->v4a, (uint8_t[]){10, 1, 2, 3}, 4);    /* 10.1.2.3 */
    memcpy(s->v4b, (uint8_t[]){93, 184, 216, 34}, 4); /* 93.184.216.34 */
    memcpy(s->v6a, (uint8_t[]){0x20, 0x01, 0x0d, 0xb8, [15] = 1}, 16); /* 2001:db8::1 */
    memcpy(s->v6b, (uint8_t[]){0x20, 0x01, 0x0d, 0xb8, [15] = 2}, 16); /* 2001:db8::2 */

    switch (b) {
    case B_BATCH: {
        Vigil__FlowRecord *r = &s->rec[0];
        vigil__flow_record__init(r); /* TCP 10.1.2.3:51000 -> 93.184.216.34:443, TLS */
        r->flow_id = 7;
        r->final = 1;
        r->end_reason = VIGIL__END_REASON__END_FIN;
        r->start_ns = NOW_NS - 10 * INT64_C(1000000000);
        r->end_ns = NOW_NS - 1 * INT64_C(1000000000);
        r->src_ip = (ProtobufCBinaryData){4, s->v4a};
        r->dst_ip = (ProtobufCBinaryData){4, s->v4b};
        r->has_ports = 1;
        r->src_port = 51000;
        r->dst_port = 443;
        r->proto = 6;
        r->has_vlan = 1;
        r->vlan = 42;
        r->pkts_fwd = 12;
        r->bytes_fwd = 1800;
        r->pkts_rev = 10;
        r->bytes_rev = 9000;
        r->tcp_flags_fwd = 0x1b;
        r->tcp_flags_rev = 0x1b;
        r->state = S("SF");
        r->has_rtt = 1;
        r->rtt_us = 2300;
        r->direction = S("outbound");
        r->app = S("tls");
        r->tls_sni = S("example.com");
        r->ja4 = S("t13d1516h2_8daaf6152771_e5627efa2ab1");
        r = &s->rec[1];
        vigil__flow_record__init(r); /* UDP [2001:db8::1]:5353 -> [2001:db8::2]:53, DNS */
        r->flow_id = 8;
        r->end_reason = variant ? VIGIL__END_REASON__END_ACTIVE : VIGIL__END_REASON__END_IDLE;
        r->final = !variant;
        r->start_ns = NOW_NS - 20 * INT64_C(1000000000);
        r->end_ns = r->start_ns;
        r->src_ip = (ProtobufCBinaryData){16, s->v6a};
        r->dst_ip = (ProtobufCBinaryData){16, s->v6b};
        r->has_ports = 1;
        r->src_port = 5353;
        r->dst_port = 53;
        r->proto = 17;
        r->pkts_fwd = 1;
        r->bytes_fwd = 80;
        r->pkts_rev = 1;
        r->bytes_rev = 120;
        r->app = S("dns");
        r->has_dns = 1;
        r->dns_qname = S("www.example.org");
        r->dns_qtype = 28;
        r->has_dns_rcode = 1;
        r->dns_rcode = 3;
        r->tunnel = S(variant ? "vxlan" : "");
        s->recp[0] = &s->rec[0];
        s->recp[1] = &s->rec[1];
        vigil__agent_counters__init(&s->counters);
        s->counters.packets = 24;
        s->counters.started_ns = NOW_NS - 3600 * INT64_C(1000000000);
        vigil__flow_batch__init(&s->batch);
        s->batch.agent = S("web-01");
        s->batch.seq = variant ? 1000000 : 1;
        s->batch.n_records = variant == 2 ? 0 : 2;
        s->batch.records = s->recp;
        s->batch.counters = variant == 2 ? NULL : &s->counters;
        s->batch.sent_ns = NOW_NS;
        s->batch.agent_epoch = 0x5eed;
        s->env.body_case = VIGIL__ENVELOPE__BODY_BATCH;
        s->env.batch = &s->batch;
        break;
    }
    case B_ACK:
        vigil__ack__init(&s->ack);
        s->ack.seq = variant ? 99 : 1;
        s->ack.duplicate = variant != 0;
        s->env.body_case = VIGIL__ENVELOPE__BODY_ACK;
        s->env.ack = &s->ack;
        break;
    case B_START:
        vigil__capture_start__init(&s->start);
        s->start.capture_id = S("cap-20260101-1");
        s->start.filter = S(variant ? "" : "host 10.1.2.3 and tcp port 443");
        s->start.duration_ns = 60 * INT64_C(1000000000);
        s->start.max_bytes = 100u << 20;
        s->start.snaplen = variant ? 0 : 256;
        s->start.expires_ns = NOW_NS + 60 * INT64_C(1000000000);
        s->start.ordered_by = S("analyst:bob");
        vigil__command__init(&s->cmd);
        s->cmd.command_id = 1;
        s->cmd.kind_case = VIGIL__COMMAND__KIND_CAPTURE_START;
        s->cmd.capture_start = &s->start;
        s->env.body_case = VIGIL__ENVELOPE__BODY_COMMAND;
        s->env.command = &s->cmd;
        break;
    case B_STOP:
        vigil__capture_stop__init(&s->stop);
        s->stop.capture_id = S("cap-20260101-1");
        vigil__command__init(&s->cmd);
        s->cmd.command_id = 2;
        s->cmd.kind_case = VIGIL__COMMAND__KIND_CAPTURE_STOP;
        s->cmd.capture_stop = &s->stop;
        s->env.body_case = VIGIL__ENVELOPE__BODY_COMMAND;
        s->env.command = &s->cmd;
        break;
    case B_STATUS:
        vigil__capture_file__init(&s->file);
        s->file.name = S("cap-20260101-1.000.pcap");
        s->file.size = 4096;
        s->file.sha256 = S("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
        s->filep[0] = &s->file;
        vigil__capture_progress__init(&s->prog);
        s->prog.capture_id = S("cap-20260101-1");
        s->prog.state = S(variant ? "failed" : "done");
        s->prog.packets = 12;
        s->prog.bytes = 4096;
        s->prog.n_files = variant ? 0 : 1;
        s->prog.files = s->filep;
        s->prog.error = S(variant ? "disk quota reached (100 MiB) — stopped" : "");
        s->progp[0] = &s->prog;
        vigil__agent_counters__init(&s->counters);
        s->counters.started_ns = NOW_NS - 1;
        vigil__agent_status__init(&s->status);
        s->status.agent = S("web-01");
        s->status.counters = &s->counters;
        s->status.n_captures = 1;
        s->status.captures = s->progp;
        s->env.body_case = VIGIL__ENVELOPE__BODY_STATUS;
        s->env.status = &s->status;
        break;
    case B_QUERY:
        vigil__query_request__init(&s->query);
        s->query.request_id = 42;
        s->query.kind = S("top");
        for (size_t i = 0; i < TRANSPORT_MAX_QUERY_ARGS + 1; i++) {
            vigil__query_request__args_entry__init(&s->arg[i]);
            snprintf(s->argkey[i], sizeof s->argkey[i], "k%zu", i);
            s->arg[i].key = s->argkey[i];
            s->arg[i].value = S("v");
            s->argp[i] = &s->arg[i];
        }
        s->arg[0].key = S("by");
        s->arg[0].value = S("bytes");
        s->arg[1].key = S("group");
        s->arg[1].value = S("app");
        s->arg[2].key = S("since");
        s->arg[2].value = S(variant ? "24h" : "1h");
        s->query.n_args = 3;
        s->query.args = s->argp;
        s->env.body_case = VIGIL__ENVELOPE__BODY_QUERY;
        s->env.query = &s->query;
        break;
    case B_RESPONSE:
        vigil__query_response__init(&s->resp);
        s->resp.request_id = 42;
        s->resp.ok = 1;
        for (size_t i = 0; i < TRANSPORT_MAX_COLUMNS + 1; i++)
            s->cols[i] = S("c");
        s->cols[0] = S("app");
        s->cols[1] = S("bytes");
        s->cols[2] = S("share");
        s->resp.n_columns = 3;
        s->resp.columns = s->cols;
        for (size_t i = 0; i < 2; i++) {
            for (size_t j = 0; j < TRANSPORT_MAX_COLUMNS + 1; j++)
                s->cells[i][j] = S("");
            vigil__row__init(&s->row[i]);
            s->row[i].n_cells = 3;
            s->row[i].cells = s->cells[i];
            s->rowp[i] = &s->row[i];
        }
        s->cells[0][0] = S("tls");
        s->cells[0][1] = S("81234567");
        s->cells[0][2] = S("80.1 %");
        s->cells[1][0] = S(variant ? "ünïcødé ✓" : "dns");
        s->cells[1][1] = S("1234");
        s->cells[1][2] = S("0.1 %");
        s->resp.n_rows = 2;
        s->resp.rows = s->rowp;
        s->resp.truncated = variant != 0;
        s->env.body_case = VIGIL__ENVELOPE__BODY_RESPONSE;
        s->env.response = &s->resp;
        break;
    case B_COUNT: break;
    }
}

/* Packs without touching schema_version (envelope_pack sets it). */
static uint8_t *pack_raw(const Vigil__Envelope *env, size_t *len)
{
    *len = vigil__envelope__get_packed_size(env);
    uint8_t *buf = malloc(*len ? *len : 1);
    cr_assert_not_null(buf);
    cr_assert_eq(vigil__envelope__pack(env, buf), *len);
    return buf;
}

static enum envelope_error unpack_sample(struct sample *s, char *why, size_t whylen)
{
    size_t len;
    uint8_t *buf = pack_raw(&s->env, &len);
    Vigil__Envelope *out = NULL;
    enum envelope_error e = envelope_unpack(buf, len, NOW_NS, &out, why, whylen);
    cr_assert_eq(e == ENV_OK, out != NULL);
    envelope_free(out);
    free(buf);
    return e;
}

TestSuite(envelope);

Test(envelope, every_body_round_trips)
{
    static struct sample s;
    for (int b = 0; b < B_COUNT; b++) {
        for (int variant = 0; variant < 3; variant++) {
            sample_init(&s, (enum body)b, variant);
            s.env.schema_version = VIGIL__SCHEMA_VERSION__SCHEMA_UNSPECIFIED; /* pack sets it */
            uint8_t *p1, *p2;
            size_t n1, n2;
            char why[256];
            cr_assert_eq(envelope_pack(&s.env, &p1, &n1), 0);
            Vigil__Envelope *env = NULL;
            enum envelope_error e = envelope_unpack(p1, n1, NOW_NS, &env, why, sizeof why);
            cr_assert_eq(e, ENV_OK, "%s/%d: %s (%s)", body_names[b], variant,
                         envelope_error_name(e), why);
            cr_assert_eq(env->schema_version, VIGIL__SCHEMA_VERSION__SCHEMA_V1);
            cr_assert_eq((int)env->body_case, (int)s.env.body_case);
            cr_assert_eq(envelope_pack(env, &p2, &n2), 0);
            cr_assert_eq(n1, n2, "%s: repacked to another size", body_names[b]);
            cr_assert_eq(memcmp(p1, p2, n1), 0, "%s: repacked differently", body_names[b]);
            switch (b) {
            case B_BATCH:
                cr_assert_str_eq(env->batch->agent, "web-01");
                cr_assert_eq(env->batch->n_records, variant == 2 ? 0u : 2u);
                if (variant != 2) {
                    cr_assert_eq(env->batch->records[1]->src_ip.len, 16);
                    cr_assert_eq(memcmp(env->batch->records[0]->dst_ip.data, s.v4b, 4), 0);
                    cr_assert_str_eq(env->batch->records[1]->dns_qname, "www.example.org");
                    cr_assert_eq(env->batch->records[0]->bytes_rev, 9000);
                }
                break;
            case B_START: cr_assert_eq(env->command->capture_start->max_bytes, 100u << 20); break;
            case B_QUERY: cr_assert_str_eq(env->query->args[2]->key, "since"); break;
            case B_RESPONSE: cr_assert_str_eq(env->response->rows[0]->cells[2], "80.1 %"); break;
            default: break;
            }
            envelope_free(env);
            free(p1);
            free(p2);
        }
    }
    envelope_free(NULL);
}

/* What each table row breaks; `code` is handled in mutate(). */
struct bad_case {
    enum body body;
    int code;
    enum envelope_error want;
    const char *why_has; /* a substring of the reason */
};

enum mutation {
    M_VERSION_0,
    M_VERSION_2,
    M_NO_BODY,
    M_SRC_IP_LEN,
    M_DST_IP_LEN,
    M_MIXED_FAMILY,
    M_SRC_PORT,
    M_DST_PORT,
    M_PROTO,
    M_VLAN,
    M_ICMP_TYPE,
    M_ICMP_CODE,
    M_END_REASON,
    M_END_REASON_NEG,
    M_START_NEG,
    M_END_BEFORE_START,
    M_END_FUTURE,
    M_FLAGS_FWD,
    M_FLAGS_REV,
    M_QTYPE,
    M_RCODE,
    M_BYTES_FWD,
    M_BYTES_REV,
    M_PKTS_OVERFLOW,
    M_QNAME_LONG,
    M_SNI_CONTROL,
    M_HOST_HIGH_BIT,
    M_JA4_LONG,
    M_STATE_LONG,
    M_APP_CONTROL,
    M_DIRECTION_DEL,
    M_TUNNEL_LONG,
    M_AGENT_EMPTY,
    M_AGENT_LONG,
    M_AGENT_SPACE,
    M_SEQ_0,
    M_SENT_NEG,
    M_SENT_FUTURE,
    M_STARTED_FUTURE,
    M_CMD_NO_KIND,
    M_CAPTURE_ID_EMPTY,
    M_CAPTURE_ID_SPACE,
    M_FILTER_CONTROL,
    M_SNAPLEN,
    M_DURATION_NEG,
    M_STOP_ID_EMPTY,
    M_STATUS_AGENT,
    M_FILE_SLASH,
    M_FILE_DOTDOT,
    M_FILE_SHA,
    M_PROGRESS_ERROR_UTF8,
    M_KIND_LONG,
    M_KIND_EMPTY,
    M_ARGS_MANY,
    M_ARG_VALUE_LONG,
    M_ARG_VALUE_UTF8,
    M_ARG_DUP,
    M_ARG_KEY_EMPTY,
    M_COLUMNS_MANY,
    M_CELLS_MANY,
    M_CELL_OVERLONG,
    M_CELL_SURROGATE,
    M_CELL_C1,
    M_CELL_BEYOND,
    M_RESP_ERROR_TRUNC,
};

static void mutate(struct sample *s, int code)
{
    Vigil__FlowRecord *r = &s->rec[0];
    switch ((enum mutation)code) {
    case M_VERSION_0: s->env.schema_version = 0; break;
    case M_VERSION_2: s->env.schema_version = 2; break;
    case M_NO_BODY: s->env.body_case = VIGIL__ENVELOPE__BODY__NOT_SET; break;
    case M_SRC_IP_LEN: r->src_ip.len = 5; break;
    case M_DST_IP_LEN: r->dst_ip.len = 0; break;
    case M_MIXED_FAMILY: r->dst_ip = (ProtobufCBinaryData){16, s->v6b}; break;
    case M_SRC_PORT: r->src_port = 65536; break;
    case M_DST_PORT: r->dst_port = 0xffffffff; break;
    case M_PROTO: r->proto = 256; break;
    case M_VLAN: r->vlan = 4096; break;
    case M_ICMP_TYPE: r->icmp_type = 256; break;
    case M_ICMP_CODE: r->icmp_code = 1000; break;
    case M_END_REASON: r->end_reason = (Vigil__EndReason)6; break;
    case M_END_REASON_NEG: r->end_reason = (Vigil__EndReason)-1; break;
    case M_START_NEG: r->start_ns = -1; break;
    case M_END_BEFORE_START: r->end_ns = r->start_ns - 1; break;
    case M_END_FUTURE: r->end_ns = NOW_NS + 86400 * INT64_C(1000000000) + 1; break;
    case M_FLAGS_FWD: r->tcp_flags_fwd = 256; break;
    case M_FLAGS_REV: r->tcp_flags_rev = 0x1ff; break;
    case M_QTYPE: s->rec[1].dns_qtype = 65536; break;
    case M_RCODE: s->rec[1].dns_rcode = 16; break;
    case M_BYTES_FWD: r->bytes_fwd = r->pkts_fwd * 20 - 1; break;
    case M_BYTES_REV: s->rec[1].bytes_rev = 19; break;
    case M_PKTS_OVERFLOW:
        r->pkts_fwd = UINT64_MAX / 10;
        r->bytes_fwd = UINT64_MAX;
        break;
    case M_QNAME_LONG:
        memset(s->text, 'a', 256);
        s->text[256] = '\0';
        s->rec[1].dns_qname = s->text;
        break;
    case M_SNI_CONTROL: r->tls_sni = S("exa\nmple.com"); break;
    case M_HOST_HIGH_BIT: r->http_host = S("b\xc3\xbc" "cher.de"); break;
    case M_JA4_LONG:
        memset(s->text, 'x', 65);
        s->text[65] = '\0';
        r->ja4 = s->text;
        break;
    case M_STATE_LONG:
        memset(s->text, 'S', 65);
        s->text[65] = '\0';
        r->state = s->text;
        break;
    case M_APP_CONTROL: r->app = S("tls\x01"); break;
    case M_DIRECTION_DEL: r->direction = S("out\x7f"); break;
    case M_TUNNEL_LONG:
        memset(s->text, 'g', 100);
        s->text[100] = '\0';
        r->tunnel = s->text;
        break;
    case M_AGENT_EMPTY: s->batch.agent = S(""); break;
    case M_AGENT_LONG:
        memset(s->text, 'a', 65);
        s->text[65] = '\0';
        s->batch.agent = s->text;
        break;
    case M_AGENT_SPACE: s->batch.agent = S("web 01"); break;
    case M_SEQ_0: s->batch.seq = 0; break;
    case M_SENT_NEG: s->batch.sent_ns = -5; break;
    case M_SENT_FUTURE: s->batch.sent_ns = INT64_MAX; break;
    case M_STARTED_FUTURE: s->counters.started_ns = NOW_NS + 2 * 86400 * INT64_C(1000000000); break;
    case M_CMD_NO_KIND: s->cmd.kind_case = VIGIL__COMMAND__KIND__NOT_SET; break;
    case M_CAPTURE_ID_EMPTY: s->start.capture_id = S(""); break;
    case M_CAPTURE_ID_SPACE: s->start.capture_id = S("cap 1"); break;
    case M_FILTER_CONTROL: s->start.filter = S("host 10.0.0.1\tor port 53"); break;
    case M_SNAPLEN: s->start.snaplen = 262145; break;
    case M_DURATION_NEG: s->start.duration_ns = -1; break;
    case M_STOP_ID_EMPTY: s->stop.capture_id = S(""); break;
    case M_STATUS_AGENT: s->status.agent = S("bad\x80name"); break;
    case M_FILE_SLASH: s->file.name = S("../../etc/passwd"); break;
    case M_FILE_DOTDOT: s->file.name = S(".."); break;
    case M_FILE_SHA: s->file.sha256 = S("E3B0C442"); break;
    case M_PROGRESS_ERROR_UTF8: s->prog.error = S("bad \xff byte"); break;
    case M_KIND_LONG: s->query.kind = S("abcdefghijklmnopqrstuvwxyz0123456"); break; /* 33 */
    case M_KIND_EMPTY: s->query.kind = S(""); break;
    case M_ARGS_MANY: s->query.n_args = TRANSPORT_MAX_QUERY_ARGS + 1; break;
    case M_ARG_VALUE_LONG:
        memset(s->text, 'v', 1025);
        s->text[1025] = '\0';
        s->arg[1].value = s->text;
        break;
    case M_ARG_VALUE_UTF8: s->arg[1].value = S("\xc3"); break; /* truncated sequence */
    case M_ARG_DUP: s->arg[2].key = S("by"); break;
    case M_ARG_KEY_EMPTY: s->arg[2].key = S(""); break;
    case M_COLUMNS_MANY: s->resp.n_columns = TRANSPORT_MAX_COLUMNS + 1; break;
    case M_CELLS_MANY: s->row[1].n_cells = TRANSPORT_MAX_COLUMNS + 1; break;
    case M_CELL_OVERLONG: s->cells[0][0] = S("\xc0\xaf"); break;      /* '/' in 2 bytes */
    case M_CELL_SURROGATE: s->cells[0][1] = S("\xed\xa0\x80"); break; /* U+D800 */
    case M_CELL_C1: s->cells[1][2] = S("\xc2\x9b[2J"); break;         /* U+009B CSI */
    case M_CELL_BEYOND: s->cells[1][0] = S("\xf4\x90\x80\x80"); break; /* U+110000 */
    case M_RESP_ERROR_TRUNC: s->resp.error = S("oops \xe2\x82"); break;
    }
}

Test(envelope, validation_rejects_each_bad_field)
{
    static const struct bad_case cases[] = {
        {B_ACK, M_VERSION_0, ENV_BAD_VERSION, "schema_version"},
        {B_BATCH, M_VERSION_2, ENV_BAD_VERSION, "schema_version"},
        {B_BATCH, M_NO_BODY, ENV_NO_BODY, "body"},
        {B_BATCH, M_SRC_IP_LEN, ENV_INVALID, "records[0].src_ip"},
        {B_BATCH, M_DST_IP_LEN, ENV_INVALID, "records[0].dst_ip"},
        {B_BATCH, M_MIXED_FAMILY, ENV_INVALID, "records[0].dst_ip"},
        {B_BATCH, M_SRC_PORT, ENV_INVALID, "src_port"},
        {B_BATCH, M_DST_PORT, ENV_INVALID, "dst_port"},
        {B_BATCH, M_PROTO, ENV_INVALID, "proto"},
        {B_BATCH, M_VLAN, ENV_INVALID, "vlan"},
        {B_BATCH, M_ICMP_TYPE, ENV_INVALID, "icmp_type"},
        {B_BATCH, M_ICMP_CODE, ENV_INVALID, "icmp_code"},
        {B_BATCH, M_END_REASON, ENV_INVALID, "end_reason"},
        {B_BATCH, M_END_REASON_NEG, ENV_INVALID, "end_reason"},
        {B_BATCH, M_START_NEG, ENV_INVALID, "start_ns"},
        {B_BATCH, M_END_BEFORE_START, ENV_INVALID, "end_ns"},
        {B_BATCH, M_END_FUTURE, ENV_INVALID, "end_ns"},
        {B_BATCH, M_FLAGS_FWD, ENV_INVALID, "tcp_flags_fwd"},
        {B_BATCH, M_FLAGS_REV, ENV_INVALID, "tcp_flags_rev"},
        {B_BATCH, M_QTYPE, ENV_INVALID, "records[1].dns_qtype"},
        {B_BATCH, M_RCODE, ENV_INVALID, "records[1].dns_rcode"},
        {B_BATCH, M_BYTES_FWD, ENV_INVALID, "bytes_fwd"},
        {B_BATCH, M_BYTES_REV, ENV_INVALID, "records[1].bytes_rev"},
        {B_BATCH, M_PKTS_OVERFLOW, ENV_INVALID, "bytes_fwd"},
        {B_BATCH, M_QNAME_LONG, ENV_INVALID, "dns_qname"},
        {B_BATCH, M_SNI_CONTROL, ENV_INVALID, "tls_sni"},
        {B_BATCH, M_HOST_HIGH_BIT, ENV_INVALID, "http_host"},
        {B_BATCH, M_JA4_LONG, ENV_INVALID, "ja4"},
        {B_BATCH, M_STATE_LONG, ENV_INVALID, "state"},
        {B_BATCH, M_APP_CONTROL, ENV_INVALID, "app"},
        {B_BATCH, M_DIRECTION_DEL, ENV_INVALID, "direction"},
        {B_BATCH, M_TUNNEL_LONG, ENV_INVALID, "tunnel"},
        {B_BATCH, M_AGENT_EMPTY, ENV_INVALID, "batch.agent"},
        {B_BATCH, M_AGENT_LONG, ENV_INVALID, "batch.agent"},
        {B_BATCH, M_AGENT_SPACE, ENV_INVALID, "batch.agent"},
        {B_BATCH, M_SEQ_0, ENV_INVALID, "batch.seq"},
        {B_BATCH, M_SENT_NEG, ENV_INVALID, "sent_ns"},
        {B_BATCH, M_SENT_FUTURE, ENV_INVALID, "sent_ns"},
        {B_BATCH, M_STARTED_FUTURE, ENV_INVALID, "counters.started_ns"},
        {B_START, M_CMD_NO_KIND, ENV_INVALID, "command.kind"},
        {B_START, M_CAPTURE_ID_EMPTY, ENV_INVALID, "capture_id"},
        {B_START, M_CAPTURE_ID_SPACE, ENV_INVALID, "capture_id"},
        {B_START, M_FILTER_CONTROL, ENV_INVALID, "filter"},
        {B_START, M_SNAPLEN, ENV_INVALID, "snaplen"},
        {B_START, M_DURATION_NEG, ENV_INVALID, "duration_ns"},
        {B_STOP, M_STOP_ID_EMPTY, ENV_INVALID, "capture_stop.capture_id"},
        {B_STATUS, M_STATUS_AGENT, ENV_INVALID, "status.agent"},
        {B_STATUS, M_STARTED_FUTURE, ENV_INVALID, "status.counters.started_ns"},
        {B_STATUS, M_FILE_SLASH, ENV_INVALID, "files[0].name"},
        {B_STATUS, M_FILE_DOTDOT, ENV_INVALID, "files[0].name"},
        {B_STATUS, M_FILE_SHA, ENV_INVALID, "sha256"},
        {B_STATUS, M_PROGRESS_ERROR_UTF8, ENV_INVALID, "captures[0].error"},
        {B_QUERY, M_KIND_LONG, ENV_INVALID, "query.kind"},
        {B_QUERY, M_KIND_EMPTY, ENV_INVALID, "query.kind"},
        {B_QUERY, M_ARGS_MANY, ENV_INVALID, "query.args"},
        {B_QUERY, M_ARG_VALUE_LONG, ENV_INVALID, "args[1].value"},
        {B_QUERY, M_ARG_VALUE_UTF8, ENV_INVALID, "args[1].value"},
        {B_QUERY, M_ARG_DUP, ENV_INVALID, "args[2].key"},
        {B_QUERY, M_ARG_KEY_EMPTY, ENV_INVALID, "args[2].key"},
        {B_RESPONSE, M_COLUMNS_MANY, ENV_INVALID, "response.columns"},
        {B_RESPONSE, M_CELLS_MANY, ENV_INVALID, "rows[1].cells"},
        {B_RESPONSE, M_CELL_OVERLONG, ENV_INVALID, "rows[0].cells[0]"},
        {B_RESPONSE, M_CELL_SURROGATE, ENV_INVALID, "rows[0].cells[1]"},
        {B_RESPONSE, M_CELL_C1, ENV_INVALID, "rows[1].cells[2]"},
        {B_RESPONSE, M_CELL_BEYOND, ENV_INVALID, "rows[1].cells[0]"},
        {B_RESPONSE, M_RESP_ERROR_TRUNC, ENV_INVALID, "response.error"},
    };
    static struct sample s;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const struct bad_case *c = &cases[i];
        char why[256];
        sample_init(&s, c->body, 0);
        cr_assert_eq(unpack_sample(&s, why, sizeof why), ENV_OK,
                     "case %zu: the base is refused: %s", i, why);
        mutate(&s, c->code);
        enum envelope_error e = unpack_sample(&s, why, sizeof why);
        cr_assert_eq(e, c->want, "case %zu (%s): got %s (%s), want %s", i, c->why_has,
                     envelope_error_name(e), why, envelope_error_name(c->want));
        cr_assert_not_null(strstr(why, c->why_has), "case %zu: reason \"%s\" lacks \"%s\"", i, why,
                           c->why_has);
    }
}

Test(envelope, boundaries_that_are_legal)
{
    static struct sample s;
    char why[256];

    sample_init(&s, B_BATCH, 0);
    Vigil__FlowRecord *r = &s.rec[0];
    r->src_port = r->dst_port = 65535;
    r->proto = 255;
    r->vlan = 4095;
    r->icmp_type = r->icmp_code = 255;
    r->tcp_flags_fwd = r->tcp_flags_rev = 255;
    r->end_reason = VIGIL__END_REASON__END_SHUTDOWN;
    r->start_ns = 0; /* an old capture replayed */
    r->end_ns = NOW_NS + 86400 * INT64_C(1000000000);
    r->bytes_fwd = r->pkts_fwd * 20;
    r->pkts_rev = r->bytes_rev = 0;
    s.rec[1].dns_qtype = 65535;
    s.rec[1].dns_rcode = 15;
    memset(s.text, 'a', 255);
    s.text[255] = '\0';
    s.rec[1].dns_qname = s.text;
    s.batch.agent = S("0123456789012345678901234567890123456789012345678901234567890123");
    cr_assert_eq(unpack_sample(&s, why, sizeof why), ENV_OK, "%s", why);

    sample_init(&s, B_QUERY, 0);
    s.query.kind = S("abcdefghijklmnopqrstuvwxyz012345"); /* 32 */
    s.query.n_args = TRANSPORT_MAX_QUERY_ARGS;
    memset(s.text, 'v', 1024);
    s.text[1024] = '\0';
    s.arg[5].value = s.text;
    cr_assert_eq(unpack_sample(&s, why, sizeof why), ENV_OK, "%s", why);

    sample_init(&s, B_RESPONSE, 1);
    s.resp.n_columns = TRANSPORT_MAX_COLUMNS;
    s.row[0].n_cells = TRANSPORT_MAX_COLUMNS;
    s.cells[0][3] = S("\xf0\x9f\x93\x88 \xe2\x82\xac \xef\xbf\xbd"); /* 📈 € U+FFFD */
    cr_assert_eq(unpack_sample(&s, why, sizeof why), ENV_OK, "%s", why);
}

Test(envelope, oversize_input_is_refused_unread)
{
    size_t len = TRANSPORT_MAX_MSG + 1;
    uint8_t *buf = calloc(1, len);
    cr_assert_not_null(buf);
    Vigil__Envelope *env = (Vigil__Envelope *)buf; /* must come back NULL */
    char why[128];
    cr_assert_eq(envelope_unpack(buf, len, NOW_NS, &env, why, sizeof why), ENV_TOO_LARGE);
    cr_assert_null(env);
    cr_assert_not_null(strstr(why, "bytes"), "%s", why);
    free(buf);

    /* and the sender side refuses to build one */
    static struct sample s;
    sample_init(&s, B_RESPONSE, 0);
    static char big[1 << 20];
    memset(big, 'x', sizeof big - 1);
    Vigil__Row rows[17];
    Vigil__Row *rowp[17];
    char *cells[17] = {0};
    for (size_t i = 0; i < 17; i++) {
        vigil__row__init(&rows[i]);
        cells[i] = big;
        rows[i].n_cells = 1;
        rows[i].cells = &cells[i];
        rowp[i] = &rows[i];
    }
    s.resp.n_rows = 17;
    s.resp.rows = rowp;
    uint8_t *out = (uint8_t *)1;
    size_t olen = 1;
    cr_assert_eq(envelope_pack(&s.env, &out, &olen), VIGIL_ERANGE);
    cr_assert_null(out);
    cr_assert_eq(olen, 0);
}

/* Appends a varint to buf at *n. */
static void put_varint(uint8_t *buf, size_t *n, uint64_t v)
{
    while (v >= 0x80) {
        buf[(*n)++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    buf[(*n)++] = (uint8_t)v;
}

/* Envelope{schema_version: 1, batch: <inner>} around a FlowBatch body. */
static uint8_t *wrap_batch(const uint8_t *inner, size_t inner_len, size_t *len)
{
    uint8_t *buf = malloc(inner_len + 16);
    cr_assert_not_null(buf);
    size_t n = 0;
    buf[n++] = 0x08; /* field 1 (schema_version), varint */
    buf[n++] = 0x01;
    buf[n++] = 0x12; /* field 2 (batch), length-delimited */
    put_varint(buf, &n, inner_len);
    memcpy(buf + n, inner, inner_len);
    *len = n + inner_len;
    return buf;
}

Test(envelope, element_counts_and_decoded_size_are_bounded_before_decoding)
{
    char why[256];
    Vigil__Envelope *env;
    size_t len;

    /* 65537 empty records: 2 bytes each on the wire ("1a 00": field 3, length 0) */
    size_t n_rec = TRANSPORT_MAX_RECORDS + 1;
    uint8_t *inner = malloc(2 * n_rec);
    cr_assert_not_null(inner);
    for (size_t i = 0; i < n_rec; i++) {
        inner[2 * i] = 0x1a;
        inner[2 * i + 1] = 0x00;
    }
    uint8_t *buf = wrap_batch(inner, 2 * n_rec, &len);
    cr_assert_eq(envelope_unpack(buf, len, NOW_NS, &env, why, sizeof why), ENV_INVALID);
    cr_assert_not_null(strstr(why, "FlowBatch.records: more than 65536"), "%s", why);
    free(buf);
    free(inner);

    /* 12 MiB of 3-byte unknown fields inside one record ("a0 06 00": field
     * 100 = 0): four million tiny allocations protobuf-c would make */
    size_t n_unknown = 4u << 20, rec_len = 3 * n_unknown;
    inner = malloc(rec_len + 16);
    cr_assert_not_null(inner);
    size_t n = 0;
    inner[n++] = 0x1a; /* records */
    put_varint(inner, &n, rec_len);
    for (size_t i = 0; i < n_unknown; i++) {
        inner[n++] = 0xa0;
        inner[n++] = 0x06;
        inner[n++] = 0x00;
    }
    buf = wrap_batch(inner, n, &len);
    cr_assert_eq(envelope_unpack(buf, len, NOW_NS, &env, why, sizeof why), ENV_INVALID);
    cr_assert_not_null(strstr(why, "allocate"), "%s", why);
    free(buf);
    free(inner);
}

Test(envelope, a_full_legitimate_batch_is_accepted)
{
    static struct sample s;
    static Vigil__FlowRecord *many[TRANSPORT_MAX_RECORDS];
    sample_init(&s, B_BATCH, 0);
    for (size_t i = 0; i < TRANSPORT_MAX_RECORDS; i++)
        many[i] = &s.rec[i & 1];
    s.batch.n_records = TRANSPORT_MAX_RECORDS;
    s.batch.records = many;
    uint8_t *p;
    size_t n;
    char why[256];
    cr_assert_eq(envelope_pack(&s.env, &p, &n), 0);
    Vigil__Envelope *env;
    cr_assert_eq(envelope_unpack(p, n, NOW_NS, &env, why, sizeof why), ENV_OK, "%zu bytes: %s", n,
                 why);
    cr_assert_eq(env->batch->n_records, TRANSPORT_MAX_RECORDS);
    envelope_free(env);
    free(p);
}

Test(envelope, garbage_and_truncation_are_undecodable)
{
    char why[256];
    Vigil__Envelope *env;
    static const struct {
        const char *bytes;
        size_t len;
    } garbage[] = {
        {"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff", 11}, /* a key varint that never ends */
        {"\x08\x01\x12\x05\x0a\x02", 6},                      /* batch length past the end */
        {"\x08\x01\x13\x00", 4},                              /* wire type 3 (group) */
        {"\x08\x01\x17\x00", 4},                              /* wire type 7 */
        {"\x00\x01", 2},                                      /* field number 0 */
        {"\x08", 1},                                          /* key without its value */
        {"\x08\x01\x12\x02\x1a\x05", 6},                      /* record length past the batch */
        {"\x08\x01\x12\x02\x0a\x80", 6},                      /* agent length varint cut */
        {"GET / HTTP/1.1\r\nHost: x\r\n\r\n", 27},
    };
    for (size_t i = 0; i < sizeof garbage / sizeof garbage[0]; i++) {
        enum envelope_error e = envelope_unpack((const uint8_t *)garbage[i].bytes, garbage[i].len,
                                                NOW_NS, &env, why, sizeof why);
        cr_assert_eq(e, ENV_UNDECODABLE, "garbage %zu: %s (%s)", i, envelope_error_name(e), why);
        cr_assert_null(env);
    }

    /* every proper prefix of a valid batch: truncated or bodiless, never accepted */
    static struct sample s;
    sample_init(&s, B_BATCH, 0);
    uint8_t *p;
    size_t n;
    cr_assert_eq(envelope_pack(&s.env, &p, &n), 0);
    for (size_t cut = 0; cut < n; cut++) {
        enum envelope_error e = envelope_unpack(p, cut, NOW_NS, &env, why, sizeof why);
        cr_assert(e == ENV_UNDECODABLE || e == ENV_NO_BODY || e == ENV_BAD_VERSION,
                  "prefix of %zu bytes: %s", cut, envelope_error_name(e));
        cr_assert_null(env);
    }
    free(p);

    /* pseudo-random bytes (fixed seed): refused, never a crash */
    uint64_t x = 0x9e3779b97f4a7c15u;
    uint8_t rnd[512];
    for (int round = 0; round < 2000; round++) {
        size_t len = (size_t)(x % sizeof rnd);
        for (size_t i = 0; i < len; i++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            rnd[i] = (uint8_t)x;
        }
        cr_assert_neq(envelope_unpack(rnd, len, NOW_NS, &env, why, sizeof why), ENV_OK);
    }
    cr_assert_eq(envelope_unpack(NULL, 0, NOW_NS, &env, why, sizeof why), ENV_BAD_VERSION);
}

Test(envelope, unknown_fields_are_ignored)
{
    /* a newer peer's Envelope: field 15 (varint 7) and field 16 (bytes) added */
    static struct sample s;
    sample_init(&s, B_ACK, 0);
    size_t len;
    uint8_t *p = pack_raw(&s.env, &len);
    uint8_t *q = malloc(len + 8);
    memcpy(q, p, len);
    memcpy(q + len, "\x78\x07\x82\x01\x02hi", 7);
    Vigil__Envelope *env;
    char why[128];
    cr_assert_eq(envelope_unpack(q, len + 7, NOW_NS, &env, why, sizeof why), ENV_OK, "%s", why);
    cr_assert_eq(env->ack->seq, 1);
    envelope_free(env);
    free(p);
    free(q);
}

Test(envelope, error_names)
{
    cr_assert_str_eq(envelope_error_name(ENV_OK), "ok");
    cr_assert_str_eq(envelope_error_name(ENV_UNDECODABLE), "undecodable");
    cr_assert_str_eq(envelope_error_name(ENV_INVALID), "invalid");
    cr_assert_str_eq(envelope_error_name((enum envelope_error)99), "unknown");
}

/* Writes the samples as fuzz seeds when VIGIL_ENVELOPE_CORPUS names a folder. */
Test(envelope, write_seed_corpus)
{
    const char *dir = getenv("VIGIL_ENVELOPE_CORPUS");
    if (dir == NULL || *dir == '\0')
        cr_skip_test("set VIGIL_ENVELOPE_CORPUS=DIR to write the fuzz seeds");
    static struct sample s;
    for (int b = 0; b < B_COUNT; b++) {
        uint8_t *prev[3] = {NULL};
        size_t prev_n[3] = {0};
        for (int variant = 0; variant < 3; variant++) {
            sample_init(&s, (enum body)b, variant);
            uint8_t *p;
            size_t n;
            cr_assert_eq(envelope_pack(&s.env, &p, &n), 0);
            bool seen = false;
            for (int k = 0; k < variant; k++)
                seen |= prev_n[k] == n && memcmp(prev[k], p, n) == 0;
            prev[variant] = p;
            prev_n[variant] = n;
            if (seen)
                continue; /* this body ignores the variant */
            char path[512];
            snprintf(path, sizeof path, "%s/seed-%s-%d", dir, body_names[b], variant);
            FILE *f = fopen(path, "wb");
            cr_assert_not_null(f, "%s: %s", path, strerror(errno));
            cr_assert_eq(fwrite(p, 1, n, f), n);
            fclose(f);
        }
        for (int k = 0; k < 3; k++)
            free(prev[k]);
    }
}
