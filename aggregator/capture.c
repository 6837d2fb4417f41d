/* capture.c — forensic capture orders, delivery and reports on the
 * aggregator (see capture.h).
 *
 * In memory: the active jobs (pending or running, each a full copy of its
 * stored job plus when it may be sent again) and the last connection each
 * agent was heard on. LMDB holds every job; what is in memory is rebuilt
 * from it at start. A change is stored before it is acted on (an order
 * before its first send, a final state before the job leaves memory), so
 * a restart resumes where it was: a pending job is sent again, and the
 * agent ignores a start it already knows.
 *
 * Non-goals: who may order (capture_rights.c, checked by capture_query.c),
 * the network (ingest.c sends what this file packs). */
#include "capture.h"

#include <inttypes.h>
#include <pcap/pcap.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "clock.h"
#include "err.h"
#include "log.h"

#define RID_MAX 255 /* ZeroMQ routing ids are 1..255 bytes */

struct active {
    struct capture_job job;
    int64_t next_send_ns; /* wall clock: not before */
};

struct route {
    char agent[KEY_NAME_MAX + 1];
    uint8_t rid[RID_MAX];
    size_t rid_len;
    int64_t heard_ns;
};

struct capture_jobs {
    struct store *st;
    capture_send_fn send;
    void *send_ctx;
    const struct capture_rights *rights;
    struct capture_policy *policy;
    struct active **act; /* [CAPTURE_MAX_ACTIVE] */
    size_t n_act;
    struct route *routes; /* from malloc(), grows to CAPTURE_MAX_ROUTES */
    size_t n_routes, cap_routes;
    uint64_t next_command_id;
    struct capture_jobs_stats stats;
    struct log_ratelimit rl_store, rl_report;
};

/* ---- helpers ------------------------------------------------------------------------------ */

int capture_filter_check(const char *filter, char *err, size_t errlen)
{
    pcap_t *p = pcap_open_dead(DLT_EN10MB, (int)CAPTURE_MAX_SNAPLEN);
    struct bpf_program prog;
    if (!p) {
        snprintf(err, errlen, "cannot check the filter: libpcap is out of memory");
        return VIGIL_ENOMEM;
    }
    int rc = 0;
    if (pcap_compile(p, &prog, filter, 1, PCAP_NETMASK_UNKNOWN) != 0) {
        snprintf(err, errlen, "invalid filter '%s': %s", filter, pcap_geterr(p));
        rc = VIGIL_EINVAL;
    } else {
        pcap_freecode(&prog);
    }
    pcap_close(p);
    return rc;
}

static bool printable(const char *s, size_t max)
{
    size_t n = strnlen(s, max + 1);
    if (n > max)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e)
            return false;
    return true;
}

static struct active *find_active(const struct capture_jobs *cj, const char *id, size_t *index)
{
    for (size_t i = 0; i < cj->n_act; i++) {
        if (strcmp(cj->act[i]->job.id, id) == 0) {
            if (index)
                *index = i;
            return cj->act[i];
        }
    }
    return NULL;
}

static void remove_active(struct capture_jobs *cj, size_t i)
{
    capture_job_clear(&cj->act[i]->job);
    free(cj->act[i]);
    cj->act[i] = cj->act[--cj->n_act];
}

static struct route *find_route(struct capture_jobs *cj, const char *agent)
{
    for (size_t i = 0; i < cj->n_routes; i++)
        if (strcmp(cj->routes[i].agent, agent) == 0)
            return &cj->routes[i];
    return NULL;
}

/* Stores the job; a failure is logged and counted (the caller keeps it in
 * memory and the next change stores it again). */
static int persist(struct capture_jobs *cj, struct capture_job *j, int64_t now)
{
    j->updated_ns = now;
    int rc = capture_job_put(cj->st, j);
    if (rc != 0) {
        cj->stats.store_failures++;
        log_ratelimited(&cj->rl_store, LOG_LVL_ERR, "capture %s: cannot store the job: %s", j->id,
                        vigil_strerror(rc));
    }
    return rc;
}

/* Moves a job to a final state, stores it and, once stored, forgets it. */
static void finish(struct capture_jobs *cj, size_t i, unsigned state, const char *detail,
                   int64_t now)
{
    struct capture_job *j = &cj->act[i]->job;
    j->state = (uint8_t)state;
    j->finished_ns = now;
    if (detail)
        snprintf(j->detail, sizeof j->detail, "%s", detail);
    if (state == CAP_EXPIRED)
        cj->stats.expired++;
    else if (state == CAP_STOPPED)
        cj->stats.stopped++;
    cj->stats.finished++;
    log_info("capture %s on agent \"%s\" %s: %s; %" PRIu64 " packets, %" PRIu64 " bytes, %zu "
             "files",
             j->id, j->agent, capture_state_name(state), j->detail[0] ? j->detail : "-", j->packets,
             j->bytes, j->n_files);
    if (persist(cj, j, now) == 0)
        remove_active(cj, i);
}

/* ---- sending ------------------------------------------------------------------------------ */

static int send_command(struct capture_jobs *cj, struct active *a, const struct route *r,
                        int64_t now)
{
    Vigil__Command cmd = VIGIL__COMMAND__INIT;
    Vigil__CaptureStart start = VIGIL__CAPTURE_START__INIT;
    Vigil__CaptureStop stop = VIGIL__CAPTURE_STOP__INIT;
    Vigil__Envelope env = VIGIL__ENVELOPE__INIT;
    struct capture_job *j = &a->job;
    uint8_t *buf;
    size_t len;

    cmd.command_id = ++cj->next_command_id;
    if (j->stop_requested) {
        stop.capture_id = j->id;
        cmd.kind_case = VIGIL__COMMAND__KIND_CAPTURE_STOP;
        cmd.capture_stop = &stop;
    } else {
        start.capture_id = j->id;
        start.filter = j->filter;
        start.duration_ns = j->duration_ns;
        start.max_bytes = j->max_bytes;
        start.max_packets = j->max_packets;
        start.snaplen = j->snaplen;
        start.expires_ns = j->expires_ns;
        start.ordered_by = j->ordered_by;
        cmd.kind_case = VIGIL__COMMAND__KIND_CAPTURE_START;
        cmd.capture_start = &start;
    }
    env.body_case = VIGIL__ENVELOPE__BODY_COMMAND;
    env.command = &cmd;
    a->next_send_ns = now + CAPTURE_RESEND_NS;
    int rc = envelope_pack(&env, &buf, &len);
    if (rc != 0)
        return rc;
    rc = cj->send ? cj->send(cj->send_ctx, r->rid, r->rid_len, buf, len) : VIGIL_EAGAIN;
    free(buf);
    if (rc != 0) {
        cj->stats.send_failures++;
        return rc;
    }
    cj->stats.sent++;
    j->sends++;
    log_debug("capture %s: %s sent to agent \"%s\"", j->id, j->stop_requested ? "stop" : "start",
              j->agent);
    return 0;
}

/* Sends what a job needs now, if anything: its start until acknowledged,
 * its stop until it ended. */
static void deliver(struct capture_jobs *cj, struct active *a, const struct route *r, int64_t now)
{
    struct capture_job *j = &a->job;
    if (capture_state_final(j->state) || now < a->next_send_ns)
        return;
    if (j->state == CAP_PENDING || j->stop_requested)
        send_command(cj, a, r, now);
}

/* ---- life cycle -------------------------------------------------------------------------- */

struct capture_jobs *capture_jobs_open(struct store *store, char *err, size_t errlen)
{
    struct capture_jobs *cj = calloc(1, sizeof *cj);
    struct capture_job *jobs = NULL;
    size_t n = 0;
    uint64_t bad = 0;
    if (!cj || !(cj->act = calloc(CAPTURE_MAX_ACTIVE, sizeof *cj->act))) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    cj->st = store;
    int rc = capture_job_read_all(store, &jobs, &n, &bad);
    if (rc != 0) {
        snprintf(err, errlen, "reading the capture jobs: %s", vigil_strerror(rc));
        goto fail;
    }
    if (bad)
        log_warn("capture: %" PRIu64 " stored jobs could not be read (skipped)", bad);
    for (size_t i = 0; i < n; i++) {
        if (capture_state_final(jobs[i].state) || cj->n_act == CAPTURE_MAX_ACTIVE) {
            capture_job_clear(&jobs[i]);
            continue;
        }
        struct active *a = calloc(1, sizeof *a);
        if (!a) {
            capture_job_clear(&jobs[i]);
            continue;
        }
        a->job = jobs[i]; /* takes its files */
        cj->act[cj->n_act++] = a;
    }
    free(jobs);
    cj->stats.active = cj->n_act;
    if (cj->n_act)
        log_info("capture: %zu orders pending or running resume", cj->n_act);
    uint64_t seed = 0;
    if (getrandom(&seed, sizeof seed, GRND_NONBLOCK) != (ssize_t)sizeof seed)
        seed = (uint64_t)vigil_monotonic_ns();
    cj->next_command_id = seed >> 16; /* ids only need to differ between commands */
    return cj;
fail:
    capture_jobs_close(cj);
    return NULL;
}

void capture_jobs_close(struct capture_jobs *cj)
{
    if (!cj)
        return;
    if (cj->act) {
        for (size_t i = 0; i < cj->n_act; i++) {
            capture_job_clear(&cj->act[i]->job);
            free(cj->act[i]);
        }
        free(cj->act);
    }
    free(cj->routes);
    free(cj);
}

void capture_jobs_set_sender(struct capture_jobs *cj, capture_send_fn send, void *ctx)
{
    cj->send = send;
    cj->send_ctx = ctx;
}

void capture_jobs_set_rights(struct capture_jobs *cj, const struct capture_rights *rights)
{
    cj->rights = rights;
}

const struct capture_rights *capture_jobs_rights(const struct capture_jobs *cj)
{
    return cj->rights;
}

void capture_jobs_set_policy(struct capture_jobs *cj, struct capture_policy *policy)
{
    cj->policy = policy;
}

struct capture_policy *capture_jobs_policy(const struct capture_jobs *cj)
{
    return cj ? cj->policy : NULL;
}

struct store *capture_jobs_store(const struct capture_jobs *cj)
{
    return cj->st;
}

void capture_jobs_get_stats(const struct capture_jobs *cj, struct capture_jobs_stats *out)
{
    *out = cj->stats;
    out->active = cj->n_act;
}

/* ---- orders ------------------------------------------------------------------------------- */

/* A fresh capture id: "c" and 12 hex digits, unused so far. */
static int new_id(struct capture_jobs *cj, char id[CAPTURE_ID_MAX + 1])
{
    for (int tries = 0; tries < 16; tries++) {
        uint64_t r = 0;
        if (getrandom(&r, sizeof r, 0) != (ssize_t)sizeof r)
            return VIGIL_EIO;
        snprintf(id, CAPTURE_ID_MAX + 1, "c%012" PRIx64, r & UINT64_C(0xffffffffffff));
        struct capture_job tmp;
        if (find_active(cj, id, NULL))
            continue;
        int rc = capture_job_get(cj->st, id, &tmp);
        if (rc == VIGIL_ENOENT)
            return 0;
        if (rc == 0)
            capture_job_clear(&tmp);
    }
    return VIGIL_EIO;
}

int capture_jobs_order(struct capture_jobs *cj, const struct capture_order *o, int64_t now_ns,
                       char (*ids)[CAPTURE_ID_MAX + 1], char *err, size_t errlen)
{
    struct active *made[CAPTURE_ORDER_MAX_AGENTS] = {0};
    const struct capture_job *jobs[CAPTURE_ORDER_MAX_AGENTS];
    size_t n = o->n_agents;
    int rc = VIGIL_EINVAL;

    if (n == 0 || n > CAPTURE_ORDER_MAX_AGENTS) {
        snprintf(err, errlen, "name 1 to %u agents", CAPTURE_ORDER_MAX_AGENTS);
        goto refused;
    }
    for (size_t i = 0; i < n; i++) {
        if (!key_name_valid(o->agents[i])) {
            snprintf(err, errlen, "\"%.64s\" is not an agent name", o->agents[i]);
            goto refused;
        }
        for (size_t k = 0; k < i; k++) {
            if (strcmp(o->agents[i], o->agents[k]) == 0) {
                snprintf(err, errlen, "agent \"%s\" is named twice", o->agents[i]);
                goto refused;
            }
        }
        /* known: it delivered a batch, or its key spoke on a connection */
        if (!find_route(cj, o->agents[i]) && !capture_agent_known(cj->st, o->agents[i])) {
            snprintf(err, errlen, "agent \"%s\" has never connected to this aggregator",
                     o->agents[i]);
            goto refused;
        }
    }
    const char *filter = o->filter ? o->filter : "";
    if (!printable(filter, CAPTURE_FILTER_MAX)) {
        snprintf(err, errlen, "the filter must be printable ASCII of at most %u bytes",
                 CAPTURE_FILTER_MAX);
        goto refused;
    }
    if ((rc = capture_filter_check(filter, err, errlen)) != 0)
        goto refused;
    rc = VIGIL_EINVAL;
    if (o->duration_ns <= 0 || o->duration_ns > CAPTURE_MAX_DURATION_NS) {
        snprintf(err, errlen, "the duration must be more than 0 and at most 7 days");
        goto refused;
    }
    if (o->snaplen > CAPTURE_MAX_SNAPLEN) {
        snprintf(err, errlen, "the snap length must be at most %u (0: full packets)",
                 CAPTURE_MAX_SNAPLEN);
        goto refused;
    }
    int64_t expires = o->expires_ns ? o->expires_ns : now_ns + CAPTURE_DEFAULT_EXPIRY_NS;
    if (expires <= now_ns) {
        snprintf(err, errlen, "the order would expire before it is given");
        goto refused;
    }
    const char *by = o->ordered_by ? o->ordered_by : "";
    if (!printable(by, CAPTURE_BY_MAX)) {
        snprintf(err, errlen, "ordered_by must be printable ASCII of at most %u bytes",
                 CAPTURE_BY_MAX);
        goto refused;
    }
    if (cj->n_act + n > CAPTURE_MAX_ACTIVE) {
        snprintf(err, errlen, "%zu captures are pending or running: no room for more", cj->n_act);
        rc = VIGIL_EFULL;
        goto refused;
    }

    for (size_t i = 0; i < n; i++) {
        struct active *a = made[i] = calloc(1, sizeof *a);
        if (!a) {
            rc = VIGIL_ENOMEM;
            snprintf(err, errlen, "out of memory");
            goto undo;
        }
        struct capture_job *j = &a->job;
        if ((rc = new_id(cj, j->id)) != 0) {
            snprintf(err, errlen, "cannot make a capture id");
            goto undo;
        }
        for (size_t k = 0; k < i; k++) /* vanishingly rare: two ids alike in one order */
            if (strcmp(made[k]->job.id, j->id) == 0 && (rc = new_id(cj, j->id)) != 0)
                goto undo;
        snprintf(j->agent, sizeof j->agent, "%s", o->agents[i]);
        snprintf(j->filter, sizeof j->filter, "%s", filter);
        snprintf(j->ordered_by, sizeof j->ordered_by, "%s", by);
        snprintf(j->reason, sizeof j->reason, "%s", o->reason ? o->reason : "");
        j->state = CAP_PENDING;
        j->created_ns = j->updated_ns = now_ns;
        j->expires_ns = expires;
        j->duration_ns = o->duration_ns;
        j->max_bytes = o->max_bytes;
        j->max_packets = o->max_packets;
        j->snaplen = o->snaplen;
        jobs[i] = j;
    }
    if ((rc = capture_job_put_many(cj->st, jobs, n)) != 0) {
        cj->stats.store_failures++;
        snprintf(err, errlen, "the aggregator cannot store the order: %s", vigil_strerror(rc));
        goto undo;
    }
    /* Recorded: from here on the order stands. */
    char list[1024];
    size_t used = 0;
    list[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        snprintf(ids[i], CAPTURE_ID_MAX + 1, "%s", made[i]->job.id);
        cj->act[cj->n_act++] = made[i];
        if (used < sizeof list)
            used += (size_t)snprintf(list + used, sizeof list - used, "%s%s=%s", i ? " " : "",
                                     made[i]->job.agent, made[i]->job.id);
    }
    cj->stats.ordered += n;
    log_info("capture ordered by %s%s%s: filter '%s', %" PRId64 " s, max %" PRIu64
             " bytes, max %" PRIu64 " packets, snap length %u, expires in %" PRId64 " s: %s",
             by, o->reason && *o->reason ? " for " : "", o->reason ? o->reason : "", filter,
             o->duration_ns / NS_PER_SEC, o->max_bytes, o->max_packets, o->snaplen,
             (expires - now_ns) / NS_PER_SEC, list);
    for (size_t i = 0; i < n; i++) {
        struct route *r = find_route(cj, made[i]->job.agent);
        if (r)
            deliver(cj, made[i], r, now_ns);
    }
    return 0;
undo:
    for (size_t i = 0; i < n; i++)
        free(made[i]);
refused:
    cj->stats.refused++;
    log_info("capture order by %s refused: %s", o->ordered_by ? o->ordered_by : "?", err);
    return rc;
}

int capture_jobs_stop(struct capture_jobs *cj, const char *id, const char *by, int64_t now_ns,
                      struct capture_job *job_out, char *err, size_t errlen)
{
    size_t i;
    struct active *a = find_active(cj, id, &i);
    if (!a) {
        struct capture_job j;
        int rc = capture_job_get(cj->st, id, &j);
        if (rc == VIGIL_ENOENT || rc == VIGIL_EBADMSG) {
            snprintf(err, errlen, "no capture \"%.64s\"", id);
            return VIGIL_ENOENT;
        }
        if (rc != 0) {
            snprintf(err, errlen, "the store failed: %s", vigil_strerror(rc));
            return rc;
        }
        snprintf(err, errlen, "capture %s on agent \"%s\" has already ended (%s)", j.id, j.agent,
                 capture_state_name(j.state));
        capture_job_clear(&j);
        return VIGIL_EINVAL;
    }
    struct capture_job *j = &a->job;
    log_info("capture %s on agent \"%s\": stop ordered by %s", j->id, j->agent, by);
    if (j->state == CAP_PENDING && j->sends == 0) { /* never left: nothing to tell the agent */
        j->stop_requested = true;
        if (job_out) {
            *job_out = *j;
            job_out->state = CAP_STOPPED;
            job_out->files = NULL;
            job_out->n_files = 0;
        }
        finish(cj, i, CAP_STOPPED, "stopped before it was delivered", now_ns);
        return 0;
    }
    j->stop_requested = true;
    a->next_send_ns = 0;
    persist(cj, j, now_ns);
    if (job_out) {
        *job_out = *j;
        job_out->files = NULL;
        job_out->n_files = 0;
    }
    struct route *r = find_route(cj, j->agent);
    if (r)
        deliver(cj, a, r, now_ns);
    return 0;
}

bool capture_jobs_active_for(const struct capture_jobs *cj, const char *agent, const char *filter)
{
    for (size_t i = 0; i < cj->n_act; i++)
        if (strcmp(cj->act[i]->job.agent, agent) == 0 &&
            strcmp(cj->act[i]->job.filter, filter) == 0)
            return true;
    return false;
}

/* ---- the agents' side ----------------------------------------------------------------- */

void capture_jobs_heard(struct capture_jobs *cj, const char *agent, const void *rid, size_t rid_len,
                        int64_t now_ns)
{
    if (rid_len == 0 || rid_len > RID_MAX)
        return;
    struct route *r = find_route(cj, agent);
    if (!r) {
        if (cj->n_routes == cj->cap_routes) {
            if (cj->cap_routes >= CAPTURE_MAX_ROUTES) { /* forget the one heard from longest ago */
                size_t old = 0;
                for (size_t i = 1; i < cj->n_routes; i++)
                    if (cj->routes[i].heard_ns < cj->routes[old].heard_ns)
                        old = i;
                cj->routes[old] = cj->routes[--cj->n_routes];
            } else {
                size_t c = cj->cap_routes ? cj->cap_routes * 2 : 64;
                struct route *p = realloc(cj->routes, c * sizeof *p);
                if (!p)
                    return;
                cj->routes = p;
                cj->cap_routes = c;
            }
        }
        r = &cj->routes[cj->n_routes++];
        snprintf(r->agent, sizeof r->agent, "%s", agent);
    }
    /* A new connection (the agent reconnected): what was sent on the old
     * one may be lost, so what is due goes again now. */
    bool moved = r->rid_len != rid_len || memcmp(r->rid, rid, rid_len) != 0;
    memcpy(r->rid, rid, rid_len);
    r->rid_len = rid_len;
    r->heard_ns = now_ns;
    for (size_t i = 0; i < cj->n_act; i++) {
        struct active *a = cj->act[i];
        if (strcmp(a->job.agent, agent) != 0)
            continue;
        if (moved)
            a->next_send_ns = 0;
        deliver(cj, a, r, now_ns);
    }
}

/* Copies a report's files into the job; true when they differ. */
static bool take_files(struct capture_job *j, const Vigil__CaptureProgress *p)
{
    size_t n = p->n_files > CAPTURE_MAX_FILES ? CAPTURE_MAX_FILES : p->n_files;
    bool same = n == j->n_files;
    for (size_t i = 0; same && i < n; i++)
        same = j->files[i].size == p->files[i]->size &&
               strcmp(j->files[i].name, p->files[i]->name) == 0 &&
               strcmp(j->files[i].sha256, p->files[i]->sha256 ? p->files[i]->sha256 : "") == 0;
    if (same)
        return false;
    struct capture_file_info *f = n ? calloc(n, sizeof *f) : NULL;
    if (n && !f)
        return false;
    for (size_t i = 0; i < n; i++) {
        snprintf(f[i].name, sizeof f[i].name, "%s", p->files[i]->name);
        f[i].size = p->files[i]->size;
        snprintf(f[i].sha256, sizeof f[i].sha256, "%s",
                 p->files[i]->sha256 ? p->files[i]->sha256 : "");
    }
    free(j->files);
    j->files = f;
    j->n_files = n;
    return true;
}

void capture_jobs_status(struct capture_jobs *cj, const char *agent, const Vigil__AgentStatus *st,
                         int64_t now_ns)
{
    bool listed[CAPTURE_MAX_ACTIVE];
    memset(listed, 0, cj->n_act * sizeof listed[0]);
    for (size_t k = 0; k < st->n_captures; k++) {
        const Vigil__CaptureProgress *p = st->captures[k];
        size_t i;
        struct active *a = find_active(cj, p->capture_id, &i);
        if (!a)
            continue; /* an ended job reported again, or one this aggregator never ordered */
        struct capture_job *j = &a->job;
        if (strcmp(j->agent, agent) != 0) {
            cj->stats.foreign_reports++;
            log_ratelimited(&cj->rl_report, LOG_LVL_WARN,
                            "agent \"%s\" reported on capture %s of agent \"%s\": ignored", agent,
                            j->id, j->agent);
            continue;
        }
        int state = capture_state_parse(p->state);
        if (state < 0) {
            cj->stats.bad_reports++;
            log_ratelimited(&cj->rl_report, LOG_LVL_WARN,
                            "agent \"%s\": capture %s in an unknown state \"%.32s\": ignored",
                            agent, j->id, p->state);
            continue;
        }
        cj->stats.reports++;
        listed[i] = true;
        bool changed = take_files(j, p);
        if (!j->acked_ns) {
            j->acked_ns = now_ns;
            cj->stats.acked++;
            changed = true;
        }
        const char *detail = p->error ? p->error : "";
        if (j->state != state || j->packets != p->packets || j->bytes != p->bytes ||
            strncmp(j->detail, detail, sizeof j->detail - 1) != 0)
            changed = true;
        j->packets = p->packets;
        j->bytes = p->bytes;
        snprintf(j->detail, sizeof j->detail, "%s", detail);
        if (capture_state_final((unsigned)state)) {
            size_t before = cj->n_act;
            finish(cj, i, (unsigned)state, NULL, now_ns);
            if (cj->n_act < before) /* forgotten: the last entry moved into slot i */
                listed[i] = listed[cj->n_act];
            continue;
        }
        j->state = (uint8_t)state;
        if (changed)
            persist(cj, j, now_ns);
    }
    /* A running job the agent no longer lists: the agent restarted during it. */
    for (size_t i = cj->n_act; i-- > 0;) {
        struct capture_job *j = &cj->act[i]->job;
        if (listed[i] || j->state != CAP_RUNNING || strcmp(j->agent, agent) != 0)
            continue;
        finish(cj, i, CAP_FAILED,
               "the agent no longer reports this capture (it restarted "
               "during it?)",
               now_ns);
    }
}

void capture_jobs_tick(struct capture_jobs *cj, int64_t now_ns)
{
    for (size_t i = cj->n_act; i-- > 0;) {
        struct capture_job *j = &cj->act[i]->job;
        if (capture_state_final(j->state)) { /* its final state could not be stored yet */
            if (persist(cj, j, now_ns) == 0)
                remove_active(cj, i);
            continue;
        }
        if (j->state == CAP_PENDING && j->expires_ns > 0 && now_ns > j->expires_ns) {
            finish(cj, i, j->stop_requested ? CAP_STOPPED : CAP_EXPIRED,
                   j->stop_requested ? "stopped; the agent never acknowledged the order"
                                     : "the agent was not reached before the order expired",
                   now_ns);
            continue;
        }
        struct route *r = find_route(cj, j->agent);
        if (r)
            deliver(cj, cj->act[i], r, now_ns);
    }
}
