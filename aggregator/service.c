/* service.c — answers QueryRequests ("agents", "flows", "top") from the
 * store on worker threads (see service.h).
 *
 * A worker owns a PULL socket for requests and a PUSH socket for answers,
 * both inproc to the ingest thread's bound ends. Requests travel as three
 * frames [routing id][peer name][packed Envelope]; answers as two
 * [routing id][packed Envelope]. Only bytes cross threads: nothing is left
 * to free when sockets close with messages still queued.
 *
 * An answer is columns plus rows of text cells. Each row is one malloc
 * holding the Row, its cell pointers and the text, so building 50,000
 * rows costs 50,000 allocations, not one per cell.
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
#include "query.h"

#define DAY_NS (86400 * NS_PER_SEC)
#define WORKER_POLL_MS 100     /* how soon a worker notices service_stop */
#define WORKER_SEND_TIMEOUT_MS 1000 /* an answer the ingest thread cannot take is dropped */
#define CELL_TEXT_MAX 4096     /* one row's text: three 255-byte names and change */

/* ---- arguments ----------------------------------------------------------- */

static const char *arg_find(const Vigil__QueryRequest *q, const char *key)
{
    for (size_t i = 0; i < q->n_args; i++)
        if (strcmp(q->args[i]->key, key) == 0)
            return q->args[i]->value;
    return NULL;
}

/* Refuses an argument the kind does not know (a typo must not be ignored). */
static int args_known(const Vigil__QueryRequest *q, const char *const *known, char *err,
                      size_t errlen)
{
    for (size_t i = 0; i < q->n_args; i++) {
        bool ok = false;
        for (const char *const *k = known; *k && !ok; k++)
            ok = strcmp(q->args[i]->key, *k) == 0;
        if (!ok) {
            snprintf(err, errlen, "%s: unknown argument \"%s\"", q->kind, q->args[i]->key);
            return VIGIL_EINVAL;
        }
    }
    return 0;
}

/* Decimal digits only, within [min, max]. */
static int parse_u64(const char *text, uint64_t min, uint64_t max, uint64_t *out)
{
    uint64_t v = 0;
    if (!text || !*text)
        return VIGIL_EINVAL;
    for (const char *p = text; *p; p++) {
        if (*p < '0' || *p > '9')
            return VIGIL_EINVAL;
        unsigned d = (unsigned)(*p - '0');
        if (v > (UINT64_MAX - d) / 10)
            return VIGIL_ERANGE;
        v = v * 10 + d;
    }
    if (v < min || v > max)
        return VIGIL_ERANGE;
    *out = v;
    return 0;
}

/* An optional numeric argument: *out keeps its default when absent. */
static int arg_u64(const Vigil__QueryRequest *q, const char *key, uint64_t min, uint64_t max,
                   uint64_t *out, char *err, size_t errlen)
{
    const char *v = arg_find(q, key);
    if (!v)
        return 0;
    if (parse_u64(v, min, max, out) != 0) {
        snprintf(err, errlen, "%s: %s=\"%s\" is not a number from %" PRIu64 " to %" PRIu64,
                 q->kind, key, v, min, max);
        return VIGIL_EINVAL;
    }
    return 0;
}

/* One of a fixed set of words; *out keeps its default when absent. */
static int arg_word(const Vigil__QueryRequest *q, const char *key, const char *const *words,
                    unsigned *out, char *err, size_t errlen)
{
    const char *v = arg_find(q, key);
    if (!v)
        return 0;
    for (unsigned i = 0; words[i]; i++) {
        if (strcmp(v, words[i]) == 0) {
            *out = i;
            return 0;
        }
    }
    int n = snprintf(err, errlen, "%s: %s=\"%s\" is not one of", q->kind, key, v);
    for (unsigned i = 0; words[i] && n > 0 && (size_t)n < errlen; i++)
        n += snprintf(err + n, errlen - (size_t)n, "%s %s", i ? "," : "", words[i]);
    return VIGIL_EINVAL;
}

/* since/until (ns since the epoch), defaults in service.h. */
static int arg_range(const Vigil__QueryRequest *q, int64_t now_ns, int64_t *since,
                     int64_t *until, char *err, size_t errlen)
{
    uint64_t s = (uint64_t)(now_ns > DAY_NS ? now_ns - DAY_NS : 0);
    uint64_t u = (uint64_t)now_ns + (uint64_t)DAY_NS;
    int rc;
    if ((rc = arg_u64(q, "since", 0, INT64_MAX, &s, err, errlen)) != 0 ||
        (rc = arg_u64(q, "until", 1, INT64_MAX, &u, err, errlen)) != 0)
        return rc;
    if (u <= s) {
        snprintf(err, errlen, "%s: the range is empty: until must be after since", q->kind);
        return VIGIL_EINVAL;
    }
    *since = (int64_t)s;
    *until = (int64_t)u;
    return 0;
}

/* ---- rows ------------------------------------------------------------------- */

/* The cells of the row being built; they point into text. */
struct cellbuf {
    char text[CELL_TEXT_MAX];
    size_t used;
    const char *cells[TRANSPORT_MAX_COLUMNS];
    size_t n;
};

static void cells_reset(struct cellbuf *cb)
{
    cb->used = 0;
    cb->n = 0;
}

/* Appends a cell of at most n bytes of s; bytes outside printable ASCII
 * become '?' (the store holds what agents sent, which the transport
 * checked, but a cell must never carry a control character to a terminal). */
static void cell_textn(struct cellbuf *cb, const char *s, size_t n)
{
    if (cb->n >= TRANSPORT_MAX_COLUMNS)
        return;
    size_t room = sizeof cb->text - cb->used;
    if (room == 0)
        return;
    if (n > room - 1)
        n = room - 1;
    char *dst = cb->text + cb->used;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        dst[i] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
    }
    dst[n] = '\0';
    cb->cells[cb->n++] = dst;
    cb->used += n + 1;
}

static void cell_text(struct cellbuf *cb, const char *s)
{
    cell_textn(cb, s, strnlen(s, CELL_TEXT_MAX));
}

__attribute__((format(printf, 2, 3))) static void cell_fmt(struct cellbuf *cb, const char *fmt,
                                                           ...)
{
    char tmp[128];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    cell_textn(cb, tmp, n < 0 ? 0 : (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

static void cell_u64(struct cellbuf *cb, uint64_t v)
{
    cell_fmt(cb, "%" PRIu64, v);
}

static void cell_time(struct cellbuf *cb, int64_t ns)
{
    char ts[32];
    size_t n = ns > 0 ? vigil_format_rfc3339(ns, ts, sizeof ts) : 0;
    cell_textn(cb, ts, n);
}

static void cell_addr(struct cellbuf *cb, const struct vigil_addr *a)
{
    char text[ADDR_STRLEN];
    cell_text(cb, addr_format(a, text));
}

/* A number, or an absent (empty) cell. */
static void cell_opt_u64(struct cellbuf *cb, bool present, uint64_t v)
{
    if (present)
        cell_u64(cb, v);
    else
        cell_textn(cb, "", 0);
}

/* A fixed-size string field of a record, or absent. */
#define CELL_FIELD(cb, present, field)                                                      \
    cell_textn((cb), (field), (present) ? strnlen((field), sizeof(field)) : 0)

struct rows {
    Vigil__Row **v; /* from malloc(); each row one malloc (rows_add) */
    size_t n, cap;
    size_t limit;   /* rows wanted; more are not kept */
};

static void rows_free(struct rows *r)
{
    for (size_t i = 0; i < r->n; i++)
        free(r->v[i]);
    free(r->v);
    r->v = NULL;
    r->n = r->cap = 0;
}

/* Copies the cells into one allocation: Row, cell pointers, text. */
static int rows_add(struct rows *r, const struct cellbuf *cb)
{
    if (r->n >= r->limit)
        return 0;
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 64;
        Vigil__Row **v = realloc(r->v, cap * sizeof *v);
        if (!v)
            return VIGIL_ENOMEM;
        r->v = v;
        r->cap = cap;
    }
    size_t text = 0;
    for (size_t i = 0; i < cb->n; i++)
        text += strlen(cb->cells[i]) + 1;
    Vigil__Row *row = malloc(sizeof *row + cb->n * sizeof(char *) + text);
    if (!row)
        return VIGIL_ENOMEM;
    vigil__row__init(row);
    row->n_cells = cb->n;
    row->cells = (char **)(row + 1);
    char *p = (char *)(row->cells + cb->n);
    for (size_t i = 0; i < cb->n; i++) {
        size_t l = strlen(cb->cells[i]) + 1;
        memcpy(p, cb->cells[i], l);
        row->cells[i] = p;
        p += l;
    }
    r->v[r->n++] = row;
    return 0;
}

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

/* ---- agents ----------------------------------------------------------------- */

static const char *const agent_columns[] = {
    "agent",         "last_seen",      "last_seq",      "batches",
    "records",       "flows",          "seq_gaps",      "packets",
    "bytes",         "decode_errors",  "capture_drops", "interface_drops",
    "evictions",     "emergency",      "agent_flows",   "agent_records",
    "spool_batches", "spool_bytes",    "spool_dropped_batches",
    "spool_dropped_records",           "started",
};

static int answer_agents(struct store *st, const Vigil__QueryRequest *q, struct rows *rows,
                         bool *truncated, char *err, size_t errlen)
{
    static const char *const known[] = {NULL};
    struct agent_info *a = NULL;
    size_t n = 0;
    struct cellbuf cb;
    int rc;

    (void)truncated;
    if ((rc = args_known(q, known, err, errlen)) != 0)
        return rc;
    if ((rc = store_query_agents(st, &a, &n)) != 0) {
        snprintf(err, errlen, "agents: the store failed: %s", vigil_strerror(rc));
        return rc;
    }
    for (size_t i = 0; i < n && rc == 0; i++) {
        const struct agent_info *x = &a[i];
        cells_reset(&cb);
        CELL_FIELD(&cb, true, x->name);
        cell_time(&cb, x->last_seen_ns);
        cell_u64(&cb, x->last_seq);
        cell_u64(&cb, x->batches);
        cell_u64(&cb, x->records);
        cell_u64(&cb, x->flows);
        cell_u64(&cb, x->seq_gaps);
        cell_u64(&cb, x->packets);
        cell_u64(&cb, x->bytes);
        cell_u64(&cb, x->decode_errors);
        cell_u64(&cb, x->capture_drops);
        cell_u64(&cb, x->interface_drops);
        cell_u64(&cb, x->evictions);
        cell_u64(&cb, x->emergency);
        cell_u64(&cb, x->agent_flows);
        cell_u64(&cb, x->agent_records);
        cell_u64(&cb, x->spool_batches);
        cell_u64(&cb, x->spool_bytes);
        cell_u64(&cb, x->spool_dropped_batches);
        cell_u64(&cb, x->spool_dropped_records);
        cell_time(&cb, x->started_ns);
        rc = rows_add(rows, &cb);
    }
    free(a);
    return rc;
}

/* ---- flows ------------------------------------------------------------------ */

/* DESIGN.md's flow-record names, in its order, plus what the store adds. */
static const char *const flow_columns[] = {
    "flow_id",   "agent",       "final",         "end_reason",    "start",    "end",
    "duration",  "src_ip",      "src_port",      "dst_ip",        "dst_port", "proto",
    "vlan",      "tunnel",      "icmp_type",     "icmp_code",     "pkts_fwd", "bytes_fwd",
    "pkts_rev",  "bytes_rev",   "tcp_flags_fwd", "tcp_flags_rev", "state",    "rtt_us",
    "retrans_fwd", "retrans_rev", "direction",   "app",           "dns_qname", "dns_qtype",
    "dns_rcode", "tls_sni",     "ja4",           "http_host",     "records",
};

/* The cells of one flow; a field is absent (empty) exactly when the
 * agent's JSON writer (flowrec_to_json) leaves it out. */
static void flow_cells(const struct store_flow *f, struct cellbuf *cb)
{
    const struct flow_record *r = &f->rec;
    int64_t d = r->end_ns - r->start_ns;
    bool tcp = r->proto == 6;

    if (d < 0)
        d = 0;
    cells_reset(cb);
    cell_u64(cb, r->flow_id);
    CELL_FIELD(cb, true, r->agent);
    cell_text(cb, r->final ? "true" : "false");
    cell_text(cb, end_reason_name((enum end_reason)r->end_reason));
    cell_time(cb, r->start_ns);
    cell_time(cb, r->end_ns);
    cell_fmt(cb, "%" PRId64 ".%06" PRId64, d / NS_PER_SEC, d % NS_PER_SEC / NS_PER_US);
    cell_addr(cb, &r->src);
    cell_opt_u64(cb, r->has_ports, r->src_port);
    cell_addr(cb, &r->dst);
    cell_opt_u64(cb, r->has_ports, r->dst_port);
    cell_u64(cb, r->proto);
    cell_opt_u64(cb, r->vlan != VLAN_NONE, r->vlan);
    cell_text(cb, tunnel_name((enum tunnel_kind)r->tunnel));
    cell_opt_u64(cb, r->has_icmp, r->icmp_type);
    cell_opt_u64(cb, r->has_icmp, r->icmp_code);
    cell_u64(cb, r->pkts_fwd);
    cell_u64(cb, r->bytes_fwd);
    cell_u64(cb, r->pkts_rev);
    cell_u64(cb, r->bytes_rev);
    cell_opt_u64(cb, tcp, r->tcp_flags_fwd);
    cell_opt_u64(cb, tcp, r->tcp_flags_rev);
    cell_text(cb, tcp ? conn_state_name((enum conn_state)r->state) : "");
    cell_opt_u64(cb, tcp && r->has_rtt, r->rtt_us);
    cell_opt_u64(cb, tcp, r->retrans_fwd);
    cell_opt_u64(cb, tcp, r->retrans_rev);
    cell_text(cb, direction_name((enum flow_direction)r->direction));
    CELL_FIELD(cb, true, r->app);
    CELL_FIELD(cb, r->has_dns, r->dns_qname);
    cell_opt_u64(cb, r->has_dns, r->dns_qtype);
    cell_opt_u64(cb, r->has_dns && r->has_dns_rcode, r->dns_rcode);
    CELL_FIELD(cb, true, r->tls_sni);
    CELL_FIELD(cb, true, r->ja4);
    CELL_FIELD(cb, true, r->http_host);
    cell_u64(cb, f->records);
}

struct flow_ctx {
    struct rows *rows;
    struct cellbuf cb;
    int rc;
};

static int flow_row(const struct store_flow *f, void *ctx)
{
    struct flow_ctx *fc = ctx;
    flow_cells(f, &fc->cb);
    fc->rc = rows_add(fc->rows, &fc->cb);
    return fc->rc;
}

static int answer_flows(struct store *st, const Vigil__QueryRequest *q, int64_t now_ns,
                        struct rows *rows, bool *truncated, char *err, size_t errlen)
{
    static const char *const known[] = {"host",  "port",  "proto", "app",   "since",
                                        "until", "limit", "order", NULL};
    static const char *const orders[] = {"newest", "oldest", NULL};
    struct flow_query fq = {0};
    uint64_t v, limit = SERVICE_DEFAULT_FLOWS;
    unsigned order = 0;
    const char *text;
    int rc;

    if ((rc = args_known(q, known, err, errlen)) != 0 ||
        (rc = arg_range(q, now_ns, &fq.since_ns, &fq.until_ns, err, errlen)) != 0 ||
        (rc = arg_u64(q, "limit", 1, SERVICE_MAX_ROWS, &limit, err, errlen)) != 0 ||
        (rc = arg_word(q, "order", orders, &order, err, errlen)) != 0)
        return rc;
    if ((text = arg_find(q, "host")) != NULL) {
        if (addr_parse(text, &fq.host) != 0) {
            snprintf(err, errlen, "flows: host=\"%s\" is not an IPv4 or IPv6 address", text);
            return VIGIL_EINVAL;
        }
        fq.has_host = true;
    }
    if (arg_find(q, "port")) {
        if ((rc = arg_u64(q, "port", 0, 65535, &v, err, errlen)) != 0)
            return rc;
        fq.has_port = true;
        fq.port = (uint16_t)v;
    }
    if (arg_find(q, "proto")) {
        if ((rc = arg_u64(q, "proto", 0, 255, &v, err, errlen)) != 0)
            return rc;
        fq.has_proto = true;
        fq.proto = (uint8_t)v;
    }
    if ((text = arg_find(q, "app")) != NULL) {
        size_t n = strlen(text);
        if (n == 0 || n >= sizeof fq.app) {
            snprintf(err, errlen, "flows: app=\"%s\" is not an application label (1..%zu "
                     "characters)", text, sizeof fq.app - 1);
            return VIGIL_EINVAL;
        }
        memcpy(fq.app, text, n + 1);
    }
    fq.limit = (unsigned)limit;
    fq.oldest_first = order == 1;
    rows->limit = limit;

    struct flow_ctx *fc = malloc(sizeof *fc);
    if (!fc)
        return VIGIL_ENOMEM;
    fc->rows = rows;
    fc->rc = 0;
    struct flow_query_stats qs = {0};
    rc = store_query_flows(st, &fq, flow_row, fc, &qs);
    if (rc == 0)
        rc = fc->rc;
    free(fc);
    if (rc != 0) {
        snprintf(err, errlen, "flows: the store failed: %s", vigil_strerror(rc));
        return rc;
    }
    *truncated = qs.truncated;
    return 0;
}

/* ---- top -------------------------------------------------------------------- */

static const char *const top_groups[] = {"host", "app", "port", "pair", NULL};
static const char *const top_orders[] = {"bytes", "packets", "flows", NULL};
_Static_assert(TOP_HOST == 0 && TOP_APP == 1 && TOP_PORT == 2 && TOP_PAIR == 3,
               "top_groups[] follows enum top_group");
_Static_assert(TOP_BY_BYTES == 0 && TOP_BY_PACKETS == 1 && TOP_BY_FLOWS == 2,
               "top_orders[] follows enum top_order");

#define TOP_KEY_COLUMNS_MAX 2
static const char *const top_key_columns[TOP_GROUP_COUNT][TOP_KEY_COLUMNS_MAX + 1] = {
    [TOP_HOST] = {"host", NULL},
    [TOP_APP] = {"app", NULL},
    [TOP_PORT] = {"proto", "port", NULL},
    [TOP_PAIR] = {"host_a", "host_b", NULL},
};
static const char *const top_value_columns[] = {
    "bytes", "packets", "flows", "share", "bytes_out", "bytes_in", "pkts_out", "pkts_in", NULL,
};

static void top_cells(enum top_group g, const struct top_row *r, struct cellbuf *cb)
{
    cells_reset(cb);
    switch (g) {
    case TOP_HOST: cell_addr(cb, &r->key.host); break;
    case TOP_APP: CELL_FIELD(cb, true, r->key.app); break;
    case TOP_PORT:
        cell_u64(cb, r->key.proto);
        cell_u64(cb, r->key.port);
        break;
    case TOP_PAIR:
        cell_addr(cb, &r->key.host);
        cell_addr(cb, &r->key.host_b);
        break;
    default: break;
    }
    cell_u64(cb, r->c.bytes_out + r->c.bytes_in);
    cell_u64(cb, r->c.pkts_out + r->c.pkts_in);
    cell_u64(cb, r->c.flows);
    cell_fmt(cb, "%.6f", r->share);
    cell_u64(cb, r->c.bytes_out);
    cell_u64(cb, r->c.bytes_in);
    cell_u64(cb, r->c.pkts_out);
    cell_u64(cb, r->c.pkts_in);
}

static int answer_top(struct store *st, const Vigil__QueryRequest *q, int64_t now_ns,
                      struct rows *rows, enum top_group *group, bool *truncated, char *err,
                      size_t errlen)
{
    static const char *const known[] = {"group", "by", "since", "until", "limit", NULL};
    struct top_query tq = {0};
    struct top_result res;
    unsigned g = TOP_HOST, by = TOP_BY_BYTES;
    uint64_t limit = SERVICE_DEFAULT_TOP;
    int rc;

    if ((rc = args_known(q, known, err, errlen)) != 0 ||
        (rc = arg_word(q, "group", top_groups, &g, err, errlen)) != 0 ||
        (rc = arg_word(q, "by", top_orders, &by, err, errlen)) != 0 ||
        (rc = arg_range(q, now_ns, &tq.since_ns, &tq.until_ns, err, errlen)) != 0 ||
        (rc = arg_u64(q, "limit", 1, SERVICE_MAX_ROWS, &limit, err, errlen)) != 0)
        return rc;
    tq.group = (enum top_group)g;
    tq.order = (enum top_order)by;
    tq.limit = (unsigned)limit;
    *group = tq.group;
    rows->limit = limit;
    if ((rc = store_query_top(st, &tq, &res)) != 0) {
        snprintf(err, errlen, "top: the store failed: %s", vigil_strerror(rc));
        return rc;
    }
    struct cellbuf *cb = malloc(sizeof *cb);
    if (!cb) {
        top_result_free(&res);
        return VIGIL_ENOMEM;
    }
    for (size_t i = 0; i < res.n && rc == 0; i++) {
        top_cells(tq.group, &res.rows[i], cb);
        rc = rows_add(rows, cb);
    }
    *truncated = res.truncated;
    free(cb);
    top_result_free(&res);
    return rc;
}

/* ---- one answer ------------------------------------------------------------- */

/* service_answer, also telling whether the answer is ok and truncated
 * (for the worker's counters and log line). */
static int answer(struct store *st, const Vigil__QueryRequest *req, int64_t now_ns,
                  uint8_t **out, size_t *len, bool *ok, bool *truncated_out)
{
    Vigil__QueryResponse resp = VIGIL__QUERY_RESPONSE__INIT;
    struct rows rows = {.limit = SERVICE_MAX_ROWS};
    const char *columns[TOP_KEY_COLUMNS_MAX + 8 + 1];
    bool truncated = false;
    char err[512] = "";
    int rc;

    if (strcmp(req->kind, "agents") == 0) {
        rc = answer_agents(st, req, &rows, &truncated, err, sizeof err);
        resp.columns = (char **)agent_columns;
        resp.n_columns = sizeof agent_columns / sizeof agent_columns[0];
    } else if (strcmp(req->kind, "flows") == 0) {
        rc = answer_flows(st, req, now_ns, &rows, &truncated, err, sizeof err);
        resp.columns = (char **)flow_columns;
        resp.n_columns = sizeof flow_columns / sizeof flow_columns[0];
    } else if (strcmp(req->kind, "top") == 0) {
        enum top_group g = TOP_HOST;
        rc = answer_top(st, req, now_ns, &rows, &g, &truncated, err, sizeof err);
        size_t n = 0;
        for (const char *const *c = top_key_columns[g]; *c; c++)
            columns[n++] = *c;
        for (const char *const *c = top_value_columns; *c; c++)
            columns[n++] = *c;
        resp.columns = (char **)columns;
        resp.n_columns = n;
    } else {
        snprintf(err, sizeof err, "unknown query kind \"%s\" (this aggregator answers agents, "
                 "flows, top)", req->kind);
        rc = VIGIL_EINVAL;
    }
    *ok = rc == 0;
    if (rc != 0) {
        rows_free(&rows);
        if (!err[0])
            snprintf(err, sizeof err, "%s: %s", req->kind, vigil_strerror(rc));
        *truncated_out = false;
        return service_error(req->request_id, err, out, len);
    }
    resp.request_id = req->request_id;
    resp.ok = 1;
    resp.n_rows = rows.n;
    resp.rows = rows.v;
    resp.truncated = truncated;
    rc = pack_answer(&resp, out, len);
    *truncated_out = resp.truncated;
    rows_free(&rows);
    return rc;
}

int service_answer(struct store *st, const Vigil__QueryRequest *req, int64_t now_ns,
                   uint8_t **out, size_t *len)
{
    bool ok, truncated;
    return answer(st, req, now_ns, out, len, &ok, &truncated);
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
        rc = answer(sv->st, env->query, vigil_wallclock_ns(), &out, &len, &ok, &trunc);
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
    for (unsigned i = 0; i < sv->nthreads; i++)
        pthread_join(sv->threads[i], NULL);
    if (sv->jobs)
        zmq_close(sv->jobs);
    if (sv->replies)
        zmq_close(sv->replies);
    free(sv);
}
