/* answer_fleet.c — the fleet's first questions: agents (their health),
 * flows (stored flows by host, port, protocol, app, time) and top (hosts,
 * applications, ports or talker pairs by bytes, packets or flows). The
 * arguments of each are listed in service.h. */
#include "answer.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "err.h"
#include "flowrec.h"
#include "query.h"
#include "service.h"

/* ---- agents ----------------------------------------------------------------- */

static const char *const agent_columns[] = {
    "agent",         "last_seen",      "last_seq",      "batches",
    "records",       "flows",          "seq_gaps",      "packets",
    "bytes",         "decode_errors",  "capture_drops", "interface_drops",
    "evictions",     "emergency",      "agent_flows",   "agent_records",
    "spool_batches", "spool_bytes",    "spool_dropped_batches",
    "spool_dropped_records",           "started", NULL,
};

int answer_agents(struct answer *a)
{
    static const char *const known[] = {NULL};
    struct agent_info *ag = NULL;
    size_t n = 0;
    struct cellbuf cb;
    int rc;

    a->columns = agent_columns;
    if ((rc = args_known(a, known)) != 0)
        return rc;
    if ((rc = store_query_agents(a->st, &ag, &n)) != 0) {
        snprintf(a->err, sizeof a->err, "agents: the store failed: %s", vigil_strerror(rc));
        return rc;
    }
    for (size_t i = 0; i < n && rc == 0; i++) {
        const struct agent_info *x = &ag[i];
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
        rc = answer_row(a, &cb);
    }
    free(ag);
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
    "dns_rcode", "tls_sni",     "ja4",           "http_host",     "records", NULL,
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
    struct answer *a;
    struct cellbuf cb;
    int rc;
};

static int flow_row(const struct store_flow *f, void *ctx)
{
    struct flow_ctx *fc = ctx;
    flow_cells(f, &fc->cb);
    fc->rc = answer_row(fc->a, &fc->cb);
    return fc->rc;
}

int answer_flows(struct answer *a)
{
    static const char *const known[] = {"host",  "port",  "proto", "app",   "since",
                                        "until", "limit", "order", NULL};
    static const char *const orders[] = {"newest", "oldest", NULL};
    struct flow_query fq = {0};
    uint64_t v, limit = SERVICE_DEFAULT_FLOWS;
    unsigned order = 0;
    const char *text;
    int rc;

    a->columns = flow_columns;
    if ((rc = args_known(a, known)) != 0 ||
        (rc = arg_range(a, &fq.since_ns, &fq.until_ns)) != 0 ||
        (rc = arg_u64(a, "limit", 1, SERVICE_MAX_ROWS, &limit)) != 0 ||
        (rc = arg_word(a, "order", orders, &order)) != 0 ||
        (rc = arg_addr(a, "host", &fq.host, &fq.has_host)) != 0)
        return rc;
    if (arg_find(a, "port")) {
        if ((rc = arg_u64(a, "port", 0, 65535, &v)) != 0)
            return rc;
        fq.has_port = true;
        fq.port = (uint16_t)v;
    }
    if (arg_find(a, "proto")) {
        if ((rc = arg_u64(a, "proto", 0, 255, &v)) != 0)
            return rc;
        fq.has_proto = true;
        fq.proto = (uint8_t)v;
    }
    if ((text = arg_find(a, "app")) != NULL) {
        size_t n = strlen(text);
        if (n == 0 || n >= sizeof fq.app) {
            snprintf(a->err, sizeof a->err, "flows: app=\"%s\" is not an application label (1..%zu "
                     "characters)", text, sizeof fq.app - 1);
            return VIGIL_EINVAL;
        }
        memcpy(fq.app, text, n + 1);
    }
    fq.limit = (unsigned)limit;
    fq.oldest_first = order == 1;
    a->rows.limit = limit;

    struct flow_ctx *fc = malloc(sizeof *fc);
    if (!fc)
        return VIGIL_ENOMEM;
    fc->a = a;
    fc->rc = 0;
    struct flow_query_stats qs = {0};
    rc = store_query_flows(a->st, &fq, flow_row, fc, &qs);
    if (rc == 0)
        rc = fc->rc;
    free(fc);
    if (rc != 0) {
        snprintf(a->err, sizeof a->err, "flows: the store failed: %s", vigil_strerror(rc));
        return rc;
    }
    a->truncated = a->truncated || qs.truncated;
    return 0;
}

/* ---- top -------------------------------------------------------------------- */

static const char *const top_groups[] = {"host", "app", "port", "pair", NULL};
static const char *const top_orders[] = {"bytes", "packets", "flows", NULL};
_Static_assert(TOP_HOST == 0 && TOP_APP == 1 && TOP_PORT == 2 && TOP_PAIR == 3,
               "top_groups[] follows enum top_group");
_Static_assert(TOP_BY_BYTES == 0 && TOP_BY_PACKETS == 1 && TOP_BY_FLOWS == 2,
               "top_orders[] follows enum top_order");

/* The group's key columns, then the counters. */
#define TOP_VALUES "bytes", "packets", "flows", "share", "bytes_out", "bytes_in", "pkts_out", \
                   "pkts_in", NULL
static const char *const top_columns[TOP_GROUP_COUNT][2 + 8 + 1] = {
    [TOP_HOST] = {"host", TOP_VALUES},
    [TOP_APP] = {"app", TOP_VALUES},
    [TOP_PORT] = {"proto", "port", TOP_VALUES},
    [TOP_PAIR] = {"host_a", "host_b", TOP_VALUES},
};

void top_key_cells(struct cellbuf *cb, enum top_group g, const struct top_row *r)
{
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
}

static void top_cells(enum top_group g, const struct top_row *r, struct cellbuf *cb)
{
    cells_reset(cb);
    top_key_cells(cb, g, r);
    cell_u64(cb, r->c.bytes_out + r->c.bytes_in);
    cell_u64(cb, r->c.pkts_out + r->c.pkts_in);
    cell_u64(cb, r->c.flows);
    cell_fmt(cb, "%.6f", r->share);
    cell_u64(cb, r->c.bytes_out);
    cell_u64(cb, r->c.bytes_in);
    cell_u64(cb, r->c.pkts_out);
    cell_u64(cb, r->c.pkts_in);
}

int answer_top(struct answer *a)
{
    static const char *const known[] = {"group", "by", "since", "until", "limit", NULL};
    struct top_query tq = {0};
    struct top_result res;
    unsigned g = TOP_HOST, by = TOP_BY_BYTES;
    uint64_t limit = SERVICE_DEFAULT_TOP;
    int rc;

    a->columns = top_columns[TOP_HOST];
    if ((rc = args_known(a, known)) != 0 ||
        (rc = arg_word(a, "group", top_groups, &g)) != 0 ||
        (rc = arg_word(a, "by", top_orders, &by)) != 0 ||
        (rc = arg_range(a, &tq.since_ns, &tq.until_ns)) != 0 ||
        (rc = arg_u64(a, "limit", 1, SERVICE_MAX_ROWS, &limit)) != 0)
        return rc;
    tq.group = (enum top_group)g;
    tq.order = (enum top_order)by;
    tq.limit = (unsigned)limit;
    a->columns = top_columns[tq.group];
    a->rows.limit = limit;
    if ((rc = store_query_top(a->st, &tq, &res)) != 0) {
        snprintf(a->err, sizeof a->err, "top: the store failed: %s", vigil_strerror(rc));
        return rc;
    }
    struct cellbuf *cb = malloc(sizeof *cb);
    if (!cb) {
        top_result_free(&res);
        return VIGIL_ENOMEM;
    }
    for (size_t i = 0; i < res.n && rc == 0; i++) {
        top_cells(tq.group, &res.rows[i], cb);
        rc = answer_row(a, cb);
    }
    a->truncated = a->truncated || res.truncated;
    free(cb);
    top_result_free(&res);
    return rc;
}

