/* test_capture.c — forensic capture jobs on the aggregator: the stored
 * form (and hostile values), orders and their refusals, delivery to a
 * fake ROUTER, the agents' reports, expiry, stop, restart, the capture
 * right, and the alert policy.
 *
 * The "ROUTER" is a function that decodes each message the jobs send with
 * envelope_unpack (as an agent would) and keeps it. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alerts.h"
#include "capture.h"
#include "capture_job.h"
#include "capture_policy.h"
#include "capture_query.h"
#include "capture_rights.h"
#include "clock.h"
#include "err.h"
#include "service.h"
#include "store.h"

#define T0 INT64_C(1767225600000000000) /* 2026-01-01T00:00:00Z */
#define SEC INT64_C(1000000000)

static char dir[64];
static struct store *st;

struct sent {
    char rid[16];
    Vigil__Envelope *env;
};
static struct sent sent[64];
static size_t n_sent;
static bool refuse_sends;

static int fake_send(void *ctx, const void *rid, size_t rid_len, const uint8_t *data, size_t len)
{
    (void)ctx;
    char why[200];
    if (refuse_sends)
        return VIGIL_EAGAIN;
    cr_assert_lt(n_sent, 64);
    cr_assert_lt(rid_len, sizeof sent[0].rid);
    memcpy(sent[n_sent].rid, rid, rid_len);
    sent[n_sent].rid[rid_len] = '\0';
    cr_assert_eq(
        envelope_unpack(data, len, vigil_wallclock_ns(), &sent[n_sent].env, why, sizeof why),
        ENV_OK, "the jobs sent an invalid message: %s", why);
    n_sent++;
    return 0;
}

static void forget_sent(void)
{
    for (size_t i = 0; i < n_sent; i++)
        envelope_free(sent[i].env);
    n_sent = 0;
}

/* Makes agent known to the store: one empty batch. */
static void known_agent(const char *agent)
{
    Vigil__FlowBatch b = VIGIL__FLOW_BATCH__INIT;
    b.agent = (char *)agent;
    b.seq = 1;
    b.sent_ns = T0;
    cr_assert_eq(store_apply_batch(st, &b, agent, NULL), 0);
}

static void setup(void)
{
    char err[256];
    snprintf(dir, sizeof dir, "/tmp/vigil-capture-test-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    st = store_open(dir, NULL, err, sizeof err);
    cr_assert_not_null(st, "%s", err);
    known_agent("web-01");
    known_agent("web-02");
    n_sent = 0;
    refuse_sends = false;
}

static void teardown(void)
{
    char cmd[128];
    forget_sent();
    store_close(st);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}

static struct capture_jobs *open_jobs(void)
{
    char err[256];
    struct capture_jobs *cj = capture_jobs_open(st, err, sizeof err);
    cr_assert_not_null(cj, "%s", err);
    capture_jobs_set_sender(cj, fake_send, NULL);
    return cj;
}

static int order1(struct capture_jobs *cj, const char *agent, const char *filter, int64_t now,
                  int64_t expires, char id[CAPTURE_ID_MAX + 1], char *err, size_t errlen)
{
    const char *agents[] = {agent};
    char ids[1][CAPTURE_ID_MAX + 1];
    struct capture_order o = {
        .agents = agents,
        .n_agents = 1,
        .filter = filter,
        .duration_ns = 60 * SEC,
        .max_bytes = 1u << 20,
        .expires_ns = expires,
        .ordered_by = "analyst:alice",
        .reason = "ticket 7",
    };
    int rc = capture_jobs_order(cj, &o, now, ids, err, errlen);
    if (rc == 0)
        snprintf(id, CAPTURE_ID_MAX + 1, "%s", ids[0]);
    return rc;
}

/* The stored job id (capture_job_read_all: the query workers' view). */
static struct capture_job stored(const char *id)
{
    struct capture_job *jobs, out;
    size_t n;
    uint64_t bad;
    bool found = false;
    cr_assert_eq(capture_job_read_all(st, &jobs, &n, &bad), 0);
    cr_assert_eq(bad, 0);
    for (size_t i = 0; i < n; i++) {
        if (strcmp(jobs[i].id, id) == 0) {
            cr_assert_eq(capture_job_copy(&out, &jobs[i]), 0);
            found = true;
        }
        capture_job_clear(&jobs[i]);
    }
    free(jobs);
    cr_assert(found, "job %s is not stored", id);
    return out;
}

static void report(struct capture_jobs *cj, const char *agent, const char *id, const char *state,
                   uint64_t packets, size_t nfiles, int64_t now)
{
    Vigil__AgentStatus s = VIGIL__AGENT_STATUS__INIT;
    Vigil__CaptureProgress p = VIGIL__CAPTURE_PROGRESS__INIT, *pp = &p;
    s.agent = (char *)agent;
    if (!id) { /* a status that lists nothing */
        capture_jobs_status(cj, agent, &s, now);
        return;
    }
    Vigil__CaptureFile f[2], *fp[2];
    char names[2][32];
    for (size_t i = 0; i < nfiles; i++) {
        vigil__capture_file__init(&f[i]);
        snprintf(names[i], sizeof names[i], "%s-%03zu.pcap", id, i + 1);
        f[i].name = names[i];
        f[i].size = 1000 + i;
        f[i].sha256 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        fp[i] = &f[i];
    }
    p.capture_id = (char *)id;
    p.state = (char *)state;
    p.packets = packets;
    p.bytes = packets * 100;
    p.files = fp;
    p.n_files = nfiles;
    p.error = strcmp(state, "running") ? "duration reached" : "";
    s.captures = &pp;
    s.n_captures = 1;
    capture_jobs_status(cj, agent, &s, now);
}

TestSuite(capture, .init = setup, .fini = teardown, .timeout = 60);

Test(capture, job_round_trip_and_hostile_values)
{
    struct capture_job j = {0}, back;
    snprintf(j.id, sizeof j.id, "c0123456789ab");
    snprintf(j.agent, sizeof j.agent, "web-01");
    snprintf(j.filter, sizeof j.filter, "host 203.0.113.9 and tcp");
    snprintf(j.ordered_by, sizeof j.ordered_by, "analyst:alice");
    snprintf(j.detail, sizeof j.detail, "byte cap reached");
    j.state = CAP_DONE;
    j.stop_requested = true;
    j.created_ns = T0;
    j.expires_ns = T0 + 3600 * SEC;
    j.max_bytes = 2ull << 30;
    j.packets = 12345;
    j.snaplen = 96;
    struct capture_file_info files[2] = {{"c0123456789ab-001.pcap", 100, "ab"},
                                         {"c0123456789ab-002.pcap", 7, ""}};
    j.files = files;
    j.n_files = 2;
    uint8_t *buf;
    size_t len;
    cr_assert_eq(capture_job_encode(&j, &buf, &len), 0);
    cr_assert_eq(capture_job_decode(buf, len, &back), 0);
    cr_assert_str_eq(back.filter, j.filter);
    cr_assert_str_eq(back.detail, j.detail);
    cr_assert_eq(back.state, CAP_DONE);
    cr_assert(back.stop_requested);
    cr_assert_eq(back.max_bytes, j.max_bytes);
    cr_assert_eq(back.snaplen, 96);
    cr_assert_eq(back.n_files, 2);
    cr_assert_str_eq(back.files[1].name, "c0123456789ab-002.pcap");
    cr_assert_eq(back.files[0].size, 100);
    capture_job_clear(&back);
    /* every truncation, and every single-byte change, decodes or is refused: never more */
    for (size_t cut = 0; cut < len; cut++)
        cr_assert_eq(capture_job_decode(buf, cut, &back), VIGIL_EBADMSG, "cut at %zu", cut);
    for (size_t i = 0; i < len; i++) {
        uint8_t saved = buf[i];
        buf[i] ^= 0xff;
        if (capture_job_decode(buf, len, &back) == 0) {
            cr_assert_leq(back.n_files, CAPTURE_MAX_FILES);
            capture_job_clear(&back);
        }
        buf[i] = saved;
    }
    free(buf);
}

Test(capture, refusals_record_nothing)
{
    struct capture_jobs *cj = open_jobs();
    char id[CAPTURE_ID_MAX + 1], err[512];
    cr_assert_eq(order1(cj, "web-01", "host and and", T0, 0, id, err, sizeof err), VIGIL_EINVAL);
    cr_assert(strstr(err, "syntax error"), "libpcap's words expected: %s", err);
    cr_assert_eq(order1(cj, "nobody", "", T0, 0, id, err, sizeof err), VIGIL_EINVAL);
    cr_assert(strstr(err, "never connected"), "%s", err);
    cr_assert_eq(order1(cj, "web-01", "", T0, T0 - 1, id, err, sizeof err), VIGIL_EINVAL);
    cr_assert_eq(order1(cj, "bad/name", "", T0, 0, id, err, sizeof err), VIGIL_EINVAL);
    const char *twice[] = {"web-01", "web-01"};
    char ids[2][CAPTURE_ID_MAX + 1];
    struct capture_order o = {.agents = twice, .n_agents = 2, .duration_ns = SEC};
    cr_assert_eq(capture_jobs_order(cj, &o, T0, ids, err, sizeof err), VIGIL_EINVAL);
    struct capture_job *jobs;
    size_t n;
    uint64_t bad;
    cr_assert_eq(capture_job_read_all(st, &jobs, &n, &bad), 0);
    cr_assert_eq(n, 0);
    free(jobs);
    cr_assert_eq(n_sent, 0);
    capture_jobs_close(cj);
}

Test(capture, order_delivery_reports_and_files)
{
    struct capture_jobs *cj = open_jobs();
    char id[CAPTURE_ID_MAX + 1], id2[CAPTURE_ID_MAX + 1], err[512];
    cr_assert_eq(order1(cj, "web-01", "host 203.0.113.9", T0, 0, id, err, sizeof err), 0, "%s",
                 err);
    cr_assert_eq(n_sent, 0, "nothing can be sent before the agent is heard from");
    struct capture_job j = stored(id);
    cr_assert_eq(j.state, CAP_PENDING);
    cr_assert_str_eq(j.ordered_by, "analyst:alice");
    cr_assert_str_eq(j.reason, "ticket 7");
    cr_assert_eq(j.expires_ns, T0 + CAPTURE_DEFAULT_EXPIRY_NS);
    capture_job_clear(&j);

    capture_jobs_heard(cj, "web-01", "rid-1", 5, T0 + SEC);
    cr_assert_eq(n_sent, 1);
    cr_assert_str_eq(sent[0].rid, "rid-1");
    const Vigil__Command *c = sent[0].env->command;
    cr_assert_eq(c->kind_case, VIGIL__COMMAND__KIND_CAPTURE_START);
    cr_assert_str_eq(c->capture_start->capture_id, id);
    cr_assert_str_eq(c->capture_start->filter, "host 203.0.113.9");
    cr_assert_eq(c->capture_start->max_bytes, 1u << 20);
    cr_assert_eq(c->capture_start->duration_ns, 60 * SEC);
    cr_assert_str_eq(c->capture_start->ordered_by, "analyst:alice");
    /* not again before the resend time; again after it; never to web-02 */
    capture_jobs_heard(cj, "web-01", "rid-1", 5, T0 + 2 * SEC);
    capture_jobs_heard(cj, "web-02", "rid-2", 5, T0 + 2 * SEC);
    cr_assert_eq(n_sent, 1);
    capture_jobs_tick(cj, T0 + SEC + CAPTURE_RESEND_NS);
    cr_assert_eq(n_sent, 2);
    cr_assert_str_eq(sent[1].rid, "rid-1");

    /* An order to an agent heard from goes at once. */
    cr_assert_eq(order1(cj, "web-02", "", T0 + 3 * SEC, 0, id2, err, sizeof err), 0);
    cr_assert_eq(n_sent, 3);
    cr_assert_str_eq(sent[2].rid, "rid-2");

    /* web-02 cannot report on web-01's capture */
    report(cj, "web-02", id, "done", 99, 0, T0 + 4 * SEC);
    j = stored(id);
    cr_assert_eq(j.state, CAP_PENDING);
    capture_job_clear(&j);

    report(cj, "web-01", id, "running", 10, 1, T0 + 5 * SEC);
    j = stored(id);
    cr_assert_eq(j.state, CAP_RUNNING);
    cr_assert_eq(j.packets, 10);
    cr_assert_eq(j.acked_ns, T0 + 5 * SEC);
    capture_job_clear(&j);
    forget_sent();
    capture_jobs_tick(cj, T0 + 60 * SEC);
    cr_assert_eq(n_sent, 1, "only web-02's unacknowledged start is resent");
    cr_assert_str_eq(sent[0].env->command->capture_start->capture_id, id2);

    report(cj, "web-01", id, "done", 25, 2, T0 + 70 * SEC);
    j = stored(id);
    cr_assert_eq(j.state, CAP_DONE);
    cr_assert_eq(j.packets, 25);
    cr_assert_eq(j.bytes, 2500);
    cr_assert_eq(j.n_files, 2);
    cr_assert_eq(j.files[1].size, 1001);
    cr_assert_str_eq(j.detail, "duration reached");
    cr_assert_eq(j.finished_ns, T0 + 70 * SEC);
    capture_job_clear(&j);
    cr_assert_not(capture_jobs_active_for(cj, "web-01", "host 203.0.113.9"));

    /* A restart resumes web-02's pending job. */
    capture_jobs_close(cj);
    forget_sent();
    cj = open_jobs();
    capture_jobs_heard(cj, "web-02", "rid-3", 5, T0 + 80 * SEC);
    cr_assert_eq(n_sent, 1);
    cr_assert_str_eq(sent[0].env->command->capture_start->capture_id, id2);
    capture_jobs_close(cj);
}

Test(capture, expiry_stop_and_restarted_agent)
{
    struct capture_jobs *cj = open_jobs();
    char a[CAPTURE_ID_MAX + 1], b[CAPTURE_ID_MAX + 1], c[CAPTURE_ID_MAX + 1], err[512];
    cr_assert_eq(order1(cj, "web-01", "", T0, T0 + 10 * SEC, a, err, sizeof err), 0);
    cr_assert_eq(order1(cj, "web-01", "udp", T0, 0, b, err, sizeof err), 0);
    cr_assert_eq(order1(cj, "web-02", "tcp", T0, 0, c, err, sizeof err), 0);
    capture_jobs_tick(cj, T0 + 11 * SEC);
    struct capture_job j = stored(a);
    cr_assert_eq(j.state, CAP_EXPIRED);
    capture_job_clear(&j);

    /* never sent: stopped at once, nothing goes to the agent */
    struct capture_job out;
    cr_assert_eq(capture_jobs_stop(cj, b, "analyst:alice", T0 + 12 * SEC, &out, err, sizeof err),
                 0);
    j = stored(b);
    cr_assert_eq(j.state, CAP_STOPPED);
    capture_job_clear(&j);
    cr_assert_eq(capture_jobs_stop(cj, b, "analyst:alice", T0, &out, err, sizeof err),
                 VIGIL_EINVAL);
    cr_assert(strstr(err, "already ended"), "%s", err);
    cr_assert_eq(capture_jobs_stop(cj, "c-none", "x", T0, &out, err, sizeof err), VIGIL_ENOENT);

    /* running on web-02: the stop goes out until it ends */
    capture_jobs_heard(cj, "web-02", "r2", 2, T0 + 13 * SEC);
    report(cj, "web-02", c, "running", 1, 0, T0 + 13 * SEC);
    forget_sent();
    cr_assert_eq(capture_jobs_stop(cj, c, "analyst:alice", T0 + 14 * SEC, &out, err, sizeof err),
                 0);
    cr_assert_eq(n_sent, 1);
    cr_assert_eq(sent[0].env->command->kind_case, VIGIL__COMMAND__KIND_CAPTURE_STOP);
    cr_assert_str_eq(sent[0].env->command->capture_stop->capture_id, c);
    /* the agent restarted: its status no longer lists the capture */
    report(cj, "web-02", NULL, NULL, 0, 0, T0 + 20 * SEC);
    j = stored(c);
    cr_assert_eq(j.state, CAP_FAILED);
    cr_assert(strstr(j.detail, "no longer reports"), "%s", j.detail);
    capture_job_clear(&j);
    capture_jobs_close(cj);
}

/* Writes DIR/NAME.pub holding z85. */
static void put_pub(const char *d, const char *name, const char *z85)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s.pub", d, name);
    FILE *fp = fopen(path, "w");
    cr_assert_not_null(fp);
    fprintf(fp, "%s\n", z85);
    fclose(fp);
}

Test(capture, only_analysts_with_the_right_may_order)
{
    char analysts[128], rights_dir[128], err[512];
    struct keypair k1, k2;
    snprintf(analysts, sizeof analysts, "%s/analysts", dir);
    snprintf(rights_dir, sizeof rights_dir, "%s/capture", dir);
    cr_assert_eq(mkdir(analysts, 0755), 0);
    cr_assert_eq(mkdir(rights_dir, 0755), 0);
    cr_assert_eq(zmq_curve_keypair(k1.public_z85, k1.secret_z85), 0);
    cr_assert_eq(zmq_curve_keypair(k2.public_z85, k2.secret_z85), 0);
    put_pub(analysts, "alice", k1.public_z85);
    put_pub(analysts, "bob", k2.public_z85);
    put_pub(rights_dir, "alice", k1.public_z85);
    struct capture_rights *r = capture_rights_load(rights_dir, analysts, err, sizeof err);
    cr_assert_not_null(r, "%s", err);
    cr_assert_eq(capture_rights_count(r), 1);

    struct capture_jobs *cj = open_jobs();
    capture_jobs_set_rights(cj, r);
    Vigil__QueryRequest q = VIGIL__QUERY_REQUEST__INIT;
    Vigil__QueryRequest__ArgsEntry e1 = VIGIL__QUERY_REQUEST__ARGS_ENTRY__INIT, *args[1] = {&e1};
    e1.key = "agent";
    e1.value = "web-01";
    q.kind = "capture_start";
    q.request_id = 5;
    q.args = args;
    q.n_args = 1;
    const struct {
        struct transport_peer peer;
        bool ok;
    } who[] = {
        {{TRANSPORT_ROLE_ANALYST, "alice"}, true},
        {{TRANSPORT_ROLE_ANALYST, "bob"}, false},
        {{TRANSPORT_ROLE_AGENT, "alice"}, false},
        {{TRANSPORT_ROLE_INSECURE, "127.0.0.1"}, false},
    };
    for (size_t i = 0; i < sizeof who / sizeof who[0]; i++) {
        uint8_t *buf;
        size_t len;
        Vigil__Envelope *env;
        char why[128];
        cr_assert_eq(capture_query_answer(cj, &q, &who[i].peer, T0, &buf, &len), 0);
        cr_assert_eq(envelope_unpack(buf, len, vigil_wallclock_ns(), &env, why, sizeof why),
                     ENV_OK);
        free(buf);
        cr_assert_eq(env->response->ok, who[i].ok, "%s: %s", who[i].peer.name,
                     env->response->error);
        if (who[i].ok) {
            cr_assert_eq(env->response->n_rows, 1);
            cr_assert_str_eq(env->response->rows[0]->cells[0], "web-01");
        } else {
            cr_assert(strstr(env->response->error, "may not order captures"), "%s",
                      env->response->error);
        }
        envelope_free(env);
    }
    struct capture_job *jobs;
    size_t n;
    uint64_t bad;
    cr_assert_eq(capture_job_read_all(st, &jobs, &n, &bad), 0);
    cr_assert_eq(n, 1, "one order from alice, none from the others");
    cr_assert_str_eq(jobs[0].ordered_by, "analyst:alice");
    capture_job_clear(&jobs[0]);
    free(jobs);

    /* A right file whose key is not the analyst's is a configuration error. */
    put_pub(rights_dir, "bob", k1.public_z85);
    cr_assert_null(capture_rights_load(rights_dir, analysts, err, sizeof err));
    cr_assert(strstr(err, "bob.pub"), "%s", err);
    capture_jobs_close(cj);
    capture_rights_free(r);
}

Test(capture, an_alert_orders_a_capture_through_the_policy)
{
    const char *rules[] = {"port_scan:medium", "dns_tunnel"};
    struct capture_policy_config pc = {.rules = rules, .n_rules = 2, .max_bytes = 5u << 20};
    char err[256];
    struct capture_policy *p = capture_policy_create(&pc, err, sizeof err);
    cr_assert_not_null(p, "%s", err);
    const char *bad_rules[] = {"port_scan:severe"};
    struct capture_policy_config bad = {.rules = bad_rules, .n_rules = 1};
    cr_assert_null(capture_policy_create(&bad, err, sizeof err));

    struct capture_jobs *cj = open_jobs();
    capture_jobs_set_policy(cj, p);
    cr_assert_eq(capture_jobs_policy(cj), p);
    struct vigil_addr hosts[3];
    addr_parse("198.51.100.7", &hosts[0]);
    addr_parse("10.0.0.5", &hosts[1]);
    addr_parse("198.51.100.7", &hosts[2]); /* listed twice: once in the filter */
    const char *agents[] = {"web-01", "web-02", "never-seen"};
    struct capture_alert al = {
        .id = 42,
        .type = "port_scan",
        .severity = "low",
        .hosts = hosts,
        .n_hosts = 3,
        .agents = agents,
        .n_agents = 3,
    };
    char ids[CAPTURE_ORDER_MAX_AGENTS][CAPTURE_ID_MAX + 1];
    cr_assert_eq(capture_policy_on_alert(p, cj, &al, T0, ids), 0, "low is below medium");
    al.severity = "high";
    cr_assert_eq(capture_policy_on_alert(p, cj, &al, T0, ids), 2);
    struct capture_job j = stored(ids[0]);
    cr_assert_str_eq(j.filter, "host 198.51.100.7 or host 10.0.0.5");
    cr_assert_str_eq(j.ordered_by, "policy:port_scan");
    cr_assert_str_eq(j.reason, "alert 42 port_scan high");
    cr_assert_str_eq(j.agent, "web-01");
    cr_assert_eq(j.max_bytes, 5u << 20);
    cr_assert_eq(j.duration_ns, CAPTURE_POLICY_DEFAULT_DURATION_NS);
    capture_job_clear(&j);
    j = stored(ids[1]);
    cr_assert_str_eq(j.agent, "web-02");
    capture_job_clear(&j);
    /* the same alert again (updated): nothing new while those run */
    cr_assert_eq(capture_policy_on_alert(p, cj, &al, T0 + SEC, ids), 0);
    al.type = "beacon";
    cr_assert_eq(capture_policy_on_alert(p, cj, &al, T0, ids), 0, "no rule for beacon");
    /* and the order reaches the agent like any other */
    capture_jobs_heard(cj, "web-01", "r1", 2, T0 + 2 * SEC);
    cr_assert_eq(n_sent, 1);
    cr_assert_str_eq(sent[0].env->command->capture_start->filter,
                     "host 198.51.100.7 or host 10.0.0.5");
    capture_jobs_close(cj);
    capture_policy_free(p);
}

Test(capture, the_detection_hook_orders_on_a_new_alert)
{
    const char *rules[] = {"port_scan:high"};
    struct capture_policy_config pc = {.rules = rules, .n_rules = 1};
    char err[256];
    struct capture_policy *p = capture_policy_create(&pc, err, sizeof err);
    cr_assert_not_null(p, "%s", err);
    struct capture_jobs *cj = open_jobs();
    capture_jobs_set_policy(cj, p);
    struct alert a;
    memset(&a, 0, sizeof a);
    a.id = 9;
    a.type = ALERT_PORT_SCAN;
    a.severity = SEV_MEDIUM;
    addr_parse("192.0.2.66", &a.sources[0]);
    addr_parse("2001:db8::5", &a.targets[0]);
    a.n_sources = a.n_targets = 1;
    snprintf(a.agents[0], sizeof a.agents[0], "web-02");
    a.n_agents = 1;
    capture_policy_alert_hook(cj, &a); /* medium: below the rule */
    struct capture_job *jobs;
    size_t n;
    uint64_t bad;
    cr_assert_eq(capture_job_read_all(st, &jobs, &n, &bad), 0);
    cr_assert_eq(n, 0);
    free(jobs);
    a.severity = SEV_HIGH;
    capture_policy_alert_hook(cj, &a);
    cr_assert_eq(capture_job_read_all(st, &jobs, &n, &bad), 0);
    cr_assert_eq(n, 1);
    cr_assert_str_eq(jobs[0].agent, "web-02");
    cr_assert_str_eq(jobs[0].filter, "host 192.0.2.66 or host 2001:db8::5");
    cr_assert_str_eq(jobs[0].reason, "alert 9 port_scan high");
    capture_job_clear(&jobs[0]);
    free(jobs);
    capture_jobs_close(cj);
    capture_policy_free(p);
}

/* capture_list as the query workers answer it: exact cells. */
static Vigil__QueryResponse *list_query(const char *files)
{
    Vigil__QueryRequest q = VIGIL__QUERY_REQUEST__INIT;
    Vigil__QueryRequest__ArgsEntry e = VIGIL__QUERY_REQUEST__ARGS_ENTRY__INIT, *args[1] = {&e};
    e.key = "files";
    e.value = (char *)files;
    q.kind = "capture_list";
    q.args = args;
    q.n_args = 1;
    uint8_t *buf;
    size_t len;
    Vigil__Envelope *env;
    char why[128];
    cr_assert_eq(service_answer(st, &q, T0, &buf, &len), 0);
    cr_assert_eq(envelope_unpack(buf, len, vigil_wallclock_ns(), &env, why, sizeof why), ENV_OK,
                 "%s", why);
    free(buf);
    cr_assert(env->response->ok, "%s", env->response->error);
    Vigil__QueryResponse *r = env->response;
    env->response = NULL; /* keep the response, free the rest */
    env->body_case = VIGIL__ENVELOPE__BODY__NOT_SET;
    envelope_free(env);
    return r;
}

static const char *cell(const Vigil__QueryResponse *r, size_t row, const char *column)
{
    for (size_t c = 0; c < r->n_columns; c++)
        if (strcmp(r->columns[c], column) == 0)
            return r->rows[row]->cells[c];
    cr_assert_fail("no column %s", column);
    return NULL;
}

Test(capture, list_shows_jobs_and_files)
{
    struct capture_jobs *cj = open_jobs();
    char id[CAPTURE_ID_MAX + 1], err[512];
    cr_assert_eq(order1(cj, "web-01", "tcp port 443", T0, 0, id, err, sizeof err), 0);
    capture_jobs_heard(cj, "web-01", "r", 1, T0);
    report(cj, "web-01", id, "done", 4, 2, T0 + SEC);
    Vigil__QueryResponse *r = list_query("0");
    cr_assert_eq(r->n_rows, 1);
    cr_assert_str_eq(cell(r, 0, "capture_id"), id);
    cr_assert_str_eq(cell(r, 0, "state"), "done");
    cr_assert_str_eq(cell(r, 0, "filter"), "tcp port 443");
    cr_assert_str_eq(cell(r, 0, "reason"), "ticket 7");
    cr_assert_str_eq(cell(r, 0, "detail"), "duration reached");
    cr_assert_str_eq(cell(r, 0, "packets"), "4");
    cr_assert_str_eq(cell(r, 0, "bytes"), "400");
    cr_assert_str_eq(cell(r, 0, "files"), "2");
    vigil__query_response__free_unpacked(r, NULL);
    r = list_query("1");
    cr_assert_eq(r->n_rows, 2);
    char name[CAPTURE_ID_MAX + 16];
    snprintf(name, sizeof name, "%s-002.pcap", id);
    cr_assert_str_eq(cell(r, 1, "file"), name);
    cr_assert_str_eq(cell(r, 1, "size"), "1001");
    cr_assert_eq(strlen(cell(r, 1, "sha256")), 64);
    vigil__query_response__free_unpacked(r, NULL);
    capture_jobs_close(cj);
}
