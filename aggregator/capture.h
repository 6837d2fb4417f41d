/* capture.h — forensic capture orders on the aggregator: recording them,
 * delivering each to its agent over the agent's own connection, following
 * the agent's reports, expiring what could not be delivered.
 *
 * An order names agents, a BPF filter, a duration, byte and packet caps, a
 * snap length and an expiry; it becomes one job (capture_job.h) per agent,
 * each with its own capture id, stored in LMDB before anything is sent and
 * logged with who ordered it and what it matched. The filter is compiled
 * with libpcap here first, so a filter that does not compile is refused
 * with libpcap's message before anything starts (the agent checks again).
 *
 * Delivery: the ROUTER can reach an agent only through the routing id of
 * its connection, learnt from any message it sends (batch, heartbeat,
 * status: capture_jobs_heard). A pending job is sent when it is ordered (if
 * the agent was heard from) and each time its agent is heard from, at most
 * every CAPTURE_RESEND_NS, until a status from the agent mentions it (the
 * agent ignores a start it already knows). A job not acknowledged by its
 * expiry is marked expired. A stop is sent the same way until the agent
 * reports the capture ended; a job never sent is stopped at once.
 *
 * Reports: each CaptureProgress in an agent's status updates that agent's
 * job of that id (another agent's job is never touched); it is stored when
 * something changed. A running job its agent no longer lists (the agent
 * restarted during it) is marked failed.
 *
 * Threads: everything here runs on the ingest thread (the store's writer),
 * except what capture_job.h says may run anywhere. */
#ifndef VIGIL_CAPTURE_H
#define VIGIL_CAPTURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "capture_job.h"
#include "capture_rights.h"
#include "store.h"
#include "vigil.pb-c.h"

#define CAPTURE_RESEND_NS (5 * INT64_C(1000000000))
#define CAPTURE_MAX_ACTIVE 4096u     /* pending or running jobs at once */
#define CAPTURE_MAX_ROUTES 65536u    /* agents whose connection is remembered */
#define CAPTURE_ORDER_MAX_AGENTS 64u /* agents in one order */
#define CAPTURE_MAX_DURATION_NS (INT64_C(7) * 86400 * INT64_C(1000000000))
#define CAPTURE_DEFAULT_DURATION_NS (INT64_C(600) * INT64_C(1000000000))
#define CAPTURE_DEFAULT_EXPIRY_NS (INT64_C(3600) * INT64_C(1000000000))
#define CAPTURE_MAX_SNAPLEN 262144u

struct capture_order {
    const char *const *agents; /* borrowed; n_agents names */
    size_t n_agents;
    const char *filter;     /* BPF; "" captures everything */
    int64_t duration_ns;    /* > 0, <= CAPTURE_MAX_DURATION_NS */
    uint64_t max_bytes;     /* 0: none (the agent's quota bounds) */
    uint64_t max_packets;   /* 0: none */
    uint32_t snaplen;       /* 0: full packets */
    int64_t expires_ns;     /* wall clock; 0: now + CAPTURE_DEFAULT_EXPIRY_NS */
    const char *ordered_by; /* "analyst:alice", "policy:port_scan" */
    const char *reason;     /* what it matched, for people; may be NULL */
};

/* Sends [rid][data] on the ROUTER; returns 0 or a negative code (the peer
 * is gone: the job stays pending). */
typedef int (*capture_send_fn)(void *ctx, const void *rid, size_t rid_len, const uint8_t *data,
                               size_t len);

struct capture_jobs;

/* Loads the pending and running jobs of store (borrowed). Returns NULL with
 * a message in err. */
struct capture_jobs *capture_jobs_open(struct store *store, char *err, size_t errlen);
void capture_jobs_close(struct capture_jobs *cj); /* NULL is fine */

/* Where commands go (ingest sets it); rights: who may order (borrowed, may
 * be replaced on SIGHUP; NULL: nobody). */
void capture_jobs_set_sender(struct capture_jobs *cj, capture_send_fn send, void *ctx);
void capture_jobs_set_rights(struct capture_jobs *cj, const struct capture_rights *rights);
const struct capture_rights *capture_jobs_rights(const struct capture_jobs *cj);

/* The alert policy (capture_policy.h; borrowed, NULL: none), kept here so
 * whatever raises alerts reaches it through the jobs it orders into. */
struct capture_policy;
void capture_jobs_set_policy(struct capture_jobs *cj, struct capture_policy *policy);
struct capture_policy *capture_jobs_policy(const struct capture_jobs *cj);
struct store *capture_jobs_store(const struct capture_jobs *cj);

/* Records an order: one job per agent, ids written to ids[i] (n_agents
 * entries). Returns 0, or VIGIL_EINVAL with a message for people in err
 * (bad filter — libpcap's words —, unknown agent, bounds), or a store
 * error. Nothing is recorded unless everything is valid. */
int capture_jobs_order(struct capture_jobs *cj, const struct capture_order *o, int64_t now_ns,
                       char (*ids)[CAPTURE_ID_MAX + 1], char *err, size_t errlen);

/* Stops capture id (by: who asks, for the log). *job_out (may be NULL)
 * receives the job's state afterwards (files not copied). Returns 0,
 * VIGIL_ENOENT (unknown id), VIGIL_EINVAL (already finished: err says
 * how) or a store error. */
int capture_jobs_stop(struct capture_jobs *cj, const char *id, const char *by, int64_t now_ns,
                      struct capture_job *job_out, char *err, size_t errlen);

/* agent (authenticated name) was heard from on connection rid: remember
 * it, and send what is due to it. */
void capture_jobs_heard(struct capture_jobs *cj, const char *agent, const void *rid, size_t rid_len,
                        int64_t now_ns);

/* An AgentStatus (borrowed) from agent: updates its jobs. */
void capture_jobs_status(struct capture_jobs *cj, const char *agent, const Vigil__AgentStatus *st,
                         int64_t now_ns);

/* Expires undelivered jobs and resends what is due to agents heard from
 * recently. Call about once a second. */
void capture_jobs_tick(struct capture_jobs *cj, int64_t now_ns);

/* A pending or running job of agent with this filter (policies use it not
 * to order the same capture twice). */
bool capture_jobs_active_for(const struct capture_jobs *cj, const char *agent, const char *filter);

/* Checks a BPF filter with libpcap (Ethernet link type). Returns 0 or
 * VIGIL_EINVAL with libpcap's message in err. */
int capture_filter_check(const char *filter, char *err, size_t errlen);

struct capture_jobs_stats {
    uint64_t ordered, refused, sent, send_failures, acked, finished, expired, stopped;
    uint64_t reports, foreign_reports, bad_reports, store_failures;
    uint64_t active;
};
void capture_jobs_get_stats(const struct capture_jobs *cj, struct capture_jobs_stats *out);

#endif
