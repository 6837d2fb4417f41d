/* query.h — what analysts ask the store: top talkers, flows, agents.
 *
 * Every query runs in one LMDB read transaction (a snapshot) plus a copy
 * of the not-yet-flushed rollups taken at the same instant, so its answer
 * is exact for that instant. A query never blocks ingest; it is bounded by
 * max_rows (rows read) and max_ns (time), after which it returns what it has
 * with truncated set, so no snapshot pins old pages for long. Any thread
 * may run queries, several at once. */
#ifndef VIGIL_QUERY_H
#define VIGIL_QUERY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "addr.h"
#include "flowrec.h"
#include "store.h"

#define QUERY_DEFAULT_MAX_NS (2 * INT64_C(1000000000))
#define QUERY_DEFAULT_MAX_ROWS 50000000u
#define QUERY_MAX_LIMIT 100000u      /* rows a query may return */
#define QUERY_MAX_GROUPS 4000000u    /* distinct groups a top query may hold */

/* ---- top ----------------------------------------------------------------
 * Groups and their counters. Bytes and packets are split by direction:
 *   host:  out = sent by the host, in = received by it (a flow counts for
 *          both its hosts; a host talking to itself counts once);
 *   pair:  the unordered talker pair {a, b} with a < b (bytewise on the
 *          16-byte form); out = a to b, in = b to a;
 *   app, port: out = initiator to responder (fwd), in = responder to
 *          initiator (rev). The port is the responder's (dst) port with the
 *          protocol; records without ports group under port 0.
 * flows counts a flow once, in the minute its first record ended; bytes
 * and packets of every record go to the minute that record ended. */
enum top_group { TOP_HOST = 0, TOP_APP, TOP_PORT, TOP_PAIR, TOP_GROUP_COUNT };
enum top_order { TOP_BY_BYTES = 0, TOP_BY_PACKETS, TOP_BY_FLOWS };

struct top_query {
    enum top_group group;
    enum top_order order;
    int64_t since_ns, until_ns; /* [since, until); widened to whole minutes (see top_result) */
    unsigned limit;             /* rows wanted, 1..QUERY_MAX_LIMIT */
    uint64_t max_rows;          /* 0: QUERY_DEFAULT_MAX_ROWS */
    int64_t max_ns;             /* 0: QUERY_DEFAULT_MAX_NS */
};

struct top_key {
    struct vigil_addr host;    /* TOP_HOST; pair: a */
    struct vigil_addr host_b;  /* TOP_PAIR: b */
    char app[STORE_APP_MAX];   /* TOP_APP: "" for unlabelled traffic */
    uint8_t proto;             /* TOP_PORT */
    uint16_t port;             /* TOP_PORT */
};

struct top_counters {
    uint64_t bytes_out, bytes_in, pkts_out, pkts_in, flows;
};

struct top_row {
    struct top_key key;
    struct top_counters c;
    double share; /* the ordering metric over the same metric of all traffic in range */
};

struct top_result {
    struct top_row *rows; /* malloc'd, n of them, best first (ties: key ascending) */
    size_t n;
    struct top_counters total; /* all traffic in range, each record once (out = fwd) */
    uint64_t groups;           /* distinct groups in range (see groups_approx) */
    int64_t since_ns, until_ns; /* the range actually answered: whole minutes (whole
                                   hours or days where older minutes were expired) */
    unsigned buckets[3];       /* buckets read per tier: 0 minute, 1 hour, 2 day */
    uint64_t rows_read;
    bool truncated;            /* a bound was hit: the figures are NOT complete */
    bool ranked;               /* answered from a built day's ranking (rank.h) */
    bool standing;             /* answered from the standing trailing ranking (trail.h) */
    bool groups_approx;        /* groups counts the standing ranking's own range, a few
                                  minutes off this one (rows and totals are exact) */
};

/* Runs a top query. On success fills *out (free with top_result_free) and
 * returns 0; otherwise returns VIGIL_EINVAL, VIGIL_ENOMEM or an LMDB-derived
 * code and *out holds nothing to free. */
int store_query_top(struct store *s, const struct top_query *q, struct top_result *out);
void top_result_free(struct top_result *r);

/* ---- flows ----------------------------------------------------------------
 * Flows (partial records merged into one) whose last record so far ended in
 * [since, until), newest or oldest first, filtered; flows still in progress
 * are included as merged so far (final = false). */
struct flow_query {
    bool has_host;
    struct vigil_addr host;    /* either end; served by the host index */
    bool has_port;
    uint16_t port;             /* either port */
    bool has_proto;
    uint8_t proto;
    char app[STORE_APP_MAX];   /* "" = any */
    int64_t since_ns, until_ns;
    unsigned limit;            /* 1..QUERY_MAX_LIMIT */
    bool oldest_first;         /* default newest first */
    uint64_t max_rows;         /* 0: QUERY_DEFAULT_MAX_ROWS */
    int64_t max_ns;            /* 0: QUERY_DEFAULT_MAX_NS */
};

struct store_flow {
    struct flow_record rec; /* agent holds the agent's name */
    uint32_t records;       /* how many records were merged into this flow */
};

/* Called once per result row, in order, after the snapshot was released.
 * f is valid only during the call. Return 0 to go on, non-zero to stop. */
typedef int (*flow_cb)(const struct store_flow *f, void *ctx);

struct flow_query_stats {
    size_t returned;
    uint64_t rows_read;
    bool truncated; /* a bound was hit before the range was exhausted */
};

/* Runs a flow query. On error returns a negative code and cb was never
 * called; on success returns 0 after calling cb for each row. st (OUT) may be NULL. */
int store_query_flows(struct store *s, const struct flow_query *q, flow_cb cb, void *ctx,
                      struct flow_query_stats *st);

/* ---- agents ---------------------------------------------------------------- */
struct agent_info {
    char name[STORE_AGENT_NAME_MAX];
    uint32_t id;
    int64_t last_seen_ns;  /* wall clock of the last applied batch */
    uint64_t last_seq, epoch;
    uint64_t batches, records, flows; /* applied by the store */
    uint64_t seq_gaps;     /* sequence numbers skipped (batches the agent never delivered) */
    /* the agent's own counters, as of its last batch */
    uint64_t packets, bytes, decode_errors, capture_drops, interface_drops;
    uint64_t agent_flows, evictions, emergency, agent_records;
    uint64_t spool_bytes, spool_batches, spool_dropped_batches, spool_dropped_records;
    int64_t started_ns;
};

/* Lists every agent, ordered by name. *out is malloc'd (free() it), *n its
 * length. Returns 0 or a negative code (then *out is NULL). */
int store_query_agents(struct store *s, struct agent_info **out, size_t *n);

#endif
