/* capture_query.c — the query kinds that order or stop forensic captures,
 * answered on the ingest thread (they write: the store has one writer).
 *
 *   capture_start  agent=NAME[,NAME...] (required)  filter=BPF ("": all)
 *                  duration=NS (10 min)  max_bytes=N  max_packets=N (0: none)
 *                  snaplen=0..262144 (0: full packets)  expires=NS (wall clock;
 *                  now + 1 h)  reason=TEXT (a note stored with the order)
 *                  -> one row per agent: agent, capture_id, state, expires
 *   capture_stop   id=CAPTURE_ID (required)
 *                  -> capture_id, agent, state
 *
 * Only an analyst whose key holds the capture right (capture_rights.h) may
 * use them; every refusal is logged with the analyst's name and what was
 * asked. capture_list (answer_capture.c) is read-only and runs on the query
 * workers like the other kinds. */
#include "capture_query.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "answer.h"
#include "clock.h"
#include "err.h"
#include "log.h"
#include "service.h"

#define MAX_ANSWER_ROWS CAPTURE_ORDER_MAX_AGENTS

bool capture_query_handles(const char *kind)
{
    return strcmp(kind, "capture_start") == 0 || strcmp(kind, "capture_stop") == 0;
}

static const char *const start_columns[] = {"agent", "capture_id", "state", "expires", NULL};
static const char *const stop_columns[] = {"capture_id", "agent", "state", NULL};

/* A text argument within max bytes, or dflt when absent. */
static int arg_text(struct answer *a, const char *key, size_t max, const char *dflt,
                    const char **out)
{
    const char *v = arg_find(a, key);
    if (!v) {
        *out = dflt;
        return 0;
    }
    if (strlen(v) > max) {
        snprintf(a->err, sizeof a->err, "%s: %s is longer than %zu bytes", a->q->kind, key, max);
        return VIGIL_EINVAL;
    }
    *out = v;
    return 0;
}

static int do_start(struct answer *a, struct capture_jobs *cj, const char *by)
{
    static const char *const known[] = {"agent",     "filter",      "duration",
                                        "max_bytes", "max_packets", "snaplen",
                                        "expires",   "reason",      NULL};
    const char *agents_arg, *filter, *reason;
    uint64_t duration = (uint64_t)CAPTURE_DEFAULT_DURATION_NS, max_bytes = 0, max_packets = 0;
    uint64_t snaplen = 0, expires = 0;
    char list[1025];
    const char *names[CAPTURE_ORDER_MAX_AGENTS];
    size_t n = 0;
    int rc;

    a->columns = start_columns;
    if ((rc = args_known(a, known)) != 0 ||
        (rc = arg_text(a, "agent", sizeof list - 1, NULL, &agents_arg)) != 0 ||
        (rc = arg_text(a, "filter", CAPTURE_FILTER_MAX, "", &filter)) != 0 ||
        (rc = arg_text(a, "reason", CAPTURE_REASON_MAX, "", &reason)) != 0 ||
        (rc = arg_u64(a, "duration", 1, (uint64_t)CAPTURE_MAX_DURATION_NS, &duration)) != 0 ||
        (rc = arg_u64(a, "max_bytes", 0, UINT64_MAX, &max_bytes)) != 0 ||
        (rc = arg_u64(a, "max_packets", 0, UINT64_MAX, &max_packets)) != 0 ||
        (rc = arg_u64(a, "snaplen", 0, CAPTURE_MAX_SNAPLEN, &snaplen)) != 0 ||
        (rc = arg_u64(a, "expires", 1, INT64_MAX, &expires)) != 0)
        return rc;
    if (!agents_arg || !*agents_arg) {
        snprintf(a->err, sizeof a->err, "capture_start: name the agents (agent=NAME[,NAME...])");
        return VIGIL_EINVAL;
    }
    snprintf(list, sizeof list, "%s", agents_arg);
    for (char *save = NULL, *tok = strtok_r(list, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save)) {
        if (n == CAPTURE_ORDER_MAX_AGENTS) {
            snprintf(a->err, sizeof a->err, "capture_start: at most %u agents per order",
                     CAPTURE_ORDER_MAX_AGENTS);
            return VIGIL_EINVAL;
        }
        names[n++] = tok;
    }
    char reason_text[CAPTURE_REASON_MAX + 1];
    snprintf(reason_text, sizeof reason_text, "%s", reason);
    struct capture_order o = {
        .agents = names,
        .n_agents = n,
        .filter = filter,
        .duration_ns = (int64_t)duration,
        .max_bytes = max_bytes,
        .max_packets = max_packets,
        .snaplen = (uint32_t)snaplen,
        .expires_ns = (int64_t)expires,
        .ordered_by = by,
        .reason = reason_text,
    };
    char ids[CAPTURE_ORDER_MAX_AGENTS][CAPTURE_ID_MAX + 1];
    char err[ANSWER_ERR_MAX - 32];
    if ((rc = capture_jobs_order(cj, &o, a->now_ns, ids, err, sizeof err)) != 0) {
        snprintf(a->err, sizeof a->err, "capture_start: %s", err);
        return rc;
    }
    int64_t exp = o.expires_ns ? o.expires_ns : a->now_ns + CAPTURE_DEFAULT_EXPIRY_NS;
    for (size_t i = 0; i < n && rc == 0; i++) {
        struct cellbuf cb;
        cells_reset(&cb);
        cell_text(&cb, names[i]);
        cell_text(&cb, ids[i]);
        cell_text(&cb, capture_state_name(CAP_PENDING));
        cell_time(&cb, exp);
        rc = answer_row(a, &cb);
    }
    return rc;
}

static int do_stop(struct answer *a, struct capture_jobs *cj, const char *by)
{
    static const char *const known[] = {"id", NULL};
    const char *id;
    int rc;
    a->columns = stop_columns;
    if ((rc = args_known(a, known)) != 0 ||
        (rc = arg_text(a, "id", CAPTURE_ID_MAX, NULL, &id)) != 0)
        return rc;
    if (!id || !*id) {
        snprintf(a->err, sizeof a->err, "capture_stop: give the capture id (id=...)");
        return VIGIL_EINVAL;
    }
    struct capture_job j;
    char err[ANSWER_ERR_MAX - 32];
    if ((rc = capture_jobs_stop(cj, id, by, a->now_ns, &j, err, sizeof err)) != 0) {
        snprintf(a->err, sizeof a->err, "capture_stop: %s", err);
        return rc;
    }
    struct cellbuf cb;
    cells_reset(&cb);
    cell_text(&cb, j.id);
    cell_text(&cb, j.agent);
    cell_text(&cb, j.state == CAP_RUNNING || j.state == CAP_PENDING ? "stopping"
                                                                    : capture_state_name(j.state));
    return answer_row(a, &cb);
}

static int pack(struct answer *a, uint8_t **out, size_t *len)
{
    Vigil__QueryResponse resp = VIGIL__QUERY_RESPONSE__INIT;
    Vigil__Envelope env = VIGIL__ENVELOPE__INIT;
    size_t ncol = 0;
    while (a->columns && a->columns[ncol])
        ncol++;
    resp.request_id = a->q->request_id;
    resp.ok = 1;
    resp.columns = (char **)a->columns;
    resp.n_columns = ncol;
    resp.rows = a->rows.v;
    resp.n_rows = a->rows.n;
    env.body_case = VIGIL__ENVELOPE__BODY_RESPONSE;
    env.response = &resp;
    return envelope_pack(&env, out, len);
}

int capture_query_answer(struct capture_jobs *cj, const Vigil__QueryRequest *q,
                         const struct transport_peer *peer, int64_t now_ns, uint8_t **out,
                         size_t *len)
{
    char by[CAPTURE_BY_MAX + 1];
    const char *agents = "?", *filter = "";
    for (size_t i = 0; i < q->n_args; i++) {
        if (strcmp(q->args[i]->key, "agent") == 0)
            agents = q->args[i]->value;
        else if (strcmp(q->args[i]->key, "filter") == 0)
            filter = q->args[i]->value;
        else if (strcmp(q->args[i]->key, "id") == 0)
            agents = q->args[i]->value;
    }
    if (!capture_rights_allow(capture_jobs_rights(cj), peer)) {
        char msg[400];
        log_warn("capture order REFUSED: %s \"%s\" lacks the capture right (%s %.100s%s%.200s%s)",
                 peer->role == TRANSPORT_ROLE_ANALYST ? "analyst" : "peer", peer->name, q->kind,
                 agents, *filter ? " filter '" : "", filter, *filter ? "'" : "");
        snprintf(msg, sizeof msg,
                 "refused: \"%s\" may not order captures (only analysts whose keys are in the "
                 "aggregator's --capture-allow directory may%s)",
                 peer->name,
                 peer->role == TRANSPORT_ROLE_ANALYST ? "" : "; an insecure peer never may");
        return service_error(q->request_id, msg, out, len);
    }
    snprintf(by, sizeof by, "analyst:%s", peer->name);
    struct answer *a = calloc(1, sizeof *a);
    if (!a)
        return service_error(q->request_id, "the aggregator is out of memory", out, len);
    a->st = capture_jobs_store(cj);
    a->q = q;
    a->peer = peer->name;
    a->now_ns = now_ns;
    a->rows.limit = MAX_ANSWER_ROWS;
    int rc = strcmp(q->kind, "capture_start") == 0 ? do_start(a, cj, by) : do_stop(a, cj, by);
    if (rc != 0) {
        if (!a->err[0])
            snprintf(a->err, sizeof a->err, "%s: %s", q->kind, vigil_strerror(rc));
        rc = service_error(q->request_id, a->err, out, len);
    } else {
        rc = pack(a, out, len);
    }
    rows_free(&a->rows);
    free(a);
    return rc;
}
