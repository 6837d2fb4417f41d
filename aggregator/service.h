/* service.h — the query service: analysts' QueryRequests answered from the
 * store on worker threads, so a slow query never stalls ingest.
 *
 * The ingest thread owns the ROUTER socket (ZeroMQ sockets belong to one
 * thread). It checks the sender's role, then hands the request over with
 * service_submit(); a worker decodes it again, runs it against the store in
 * its own read transaction (query.h) and queues the packed QueryResponse;
 * the ingest thread polls service_reply_socket() and forwards each reply to
 * the analyst with service_take_reply(). Handing over is inproc PUSH/PULL:
 * bounded (SERVICE_QUEUE_PER_THREAD waiting requests per worker), never
 * blocking the ingest thread: when every worker is busy the request is
 * answered "busy" at once. The service also runs the thread that keeps the
 * standing trailing ranking (trail.h), so `top` over the last day is
 * answered in milliseconds.
 *
 * Query kinds and their arguments (QueryRequest.args; every value is text,
 * every argument optional, anything else is refused with a message):
 *   agents   (none)
 *   flows    host=IP  port=0..65535  proto=0..255  app=LABEL
 *            since=NS  until=NS  limit=1..SERVICE_MAX_ROWS (100)
 *            order=newest|oldest (newest)
 *   top      group=host|app|port|pair (host)  by=bytes|packets|flows (bytes)
 *            since=NS  until=NS  limit=1..SERVICE_MAX_ROWS (20)
 *   capture_list  id=CAPTURE_ID  agent=NAME  files=0|1  limit=1..SERVICE_MAX_ROWS (100):
 *            forensic capture jobs, or their files (answer_capture.c)
 *   capture_start, capture_stop: forensic capture orders, answered on the
 *            ingest thread (they write) for analysts with the capture right
 *            (capture_query.c lists their arguments)
 *   bandwidth  host=IP | app=LABEL (else the fleet)  since=NS  until=NS
 *            step=SECONDS (300; whole minutes, hours past an hour, days past a day):
 *            per step and over the range: bytes in/out, average and p50/p95/p99/max
 *            rates in bits/s of the samples (answer_bandwidth.c says which)
 *   series   since=NS  until=NS  step=SECONDS (3600)  limit=1..16 (6): bytes per step
 *            of the largest applications, the rest as other=true
 *   share    group=host|app|port|pair (app)  by=bytes|packets|flows (bytes)
 *            since=NS  until=NS  share=1..100 (80): the fewest groups reaching it
 *   forecast capacity=BITS_PER_SECOND (required)  host=IP | app=LABEL
 *            since=NS  until=NS: daily p95 points and their least-squares trend
 *   latency  host=IP  group=none|src|dst (none)  limit=1..100 (10)
 *            since=NS  until=NS  step=SECONDS (300): TCP handshake RTT and
 *            retransmissions per step, from the stored flows
 *   alerts   since=NS  until=NS (alerts whose activity overlaps; default: all)
 *            type=exfiltration|port_scan|horizontal_scan|fleet_scan|distributed_scan|
 *            dns_tunnel|beacon  host=IP (a source or target)  limit=1..SERVICE_MAX_ROWS
 *            (100); newest first; the column `alert` is the whole alert as JSON
 *   baseline host=IP (none: the fleet's); one row per hour of the day (UTC)
 * NS is nanoseconds since the Unix epoch, decimal; the CLI turns "1h" or an
 * RFC 3339 time into it with its own clock. Defaults: until = the
 * aggregator's now + 1 day (the furthest a record may end, see
 * envelope_unpack), since = now - 24 h.
 *
 * Answers: columns and rows of text cells. An empty cell means "absent"
 * (the field does not apply or is unknown), as in the agent's JSON. Flow
 * columns carry DESIGN.md's flow-record names plus `records` (records merged
 * into the stored flow); numbers are decimal, times RFC 3339 UTC with
 * microseconds. A response that would not fit one transport message loses
 * rows from the end and says truncated.
 *
 * Non-goals: authentication and role checks (ingest.c does them before
 * submitting), time-range words like "1h" (the CLI's job). */
#ifndef VIGIL_SERVICE_H
#define VIGIL_SERVICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <zmq.h>

#include "store.h"
#include "transport.h"
#include "vigil.pb-c.h"

/* Rows one answer may hold: below the transport's bound on repeated fields
 * (TRANSPORT_MAX_RECORDS) and the store's QUERY_MAX_LIMIT; an analyst who
 * wants more narrows the range. */
#define SERVICE_MAX_ROWS 50000u
#define SERVICE_DEFAULT_FLOWS 100u
#define SERVICE_DEFAULT_TOP 20u
#define SERVICE_MAX_THREADS 16u
/* Requests waiting per worker before the service answers "busy": queries
 * take milliseconds; a queue this deep means analysts outrun the store. */
#define SERVICE_QUEUE_PER_THREAD 8

_Static_assert(SERVICE_MAX_ROWS < TRANSPORT_MAX_RECORDS, "an answer passes validation");

/* Answers one request (borrowed) from the store at wall-clock time now_ns.
 * Always produces a response (an error answer has ok=false and a message):
 * *out (malloc'd, caller frees) holds the packed Envelope, *len its size.
 * Returns 0, or VIGIL_ENOMEM when not even the error answer could be built.
 * Thread-safe as query.h is: any thread, several at once. */
int service_answer(struct store *st, const Vigil__QueryRequest *req, int64_t now_ns,
                   uint8_t **out, size_t *len);

/* Packs an error answer (ok=false, the message) for request_id. Same
 * contract as service_answer. */
int service_error(uint64_t request_id, const char *message, uint8_t **out, size_t *len);

struct service;

/* Starts `threads` workers (1..SERVICE_MAX_THREADS) on zmq_ctx against st
 * (borrowed; must outlive service_stop). Call on the ingest thread: the
 * hand-over sockets it creates belong to that thread. Returns NULL with a
 * message in err. */
struct service *service_start(void *zmq_ctx, struct store *st, unsigned threads, char *err,
                              size_t errlen);

/* Queues a request: rid is the ROUTER routing-id frame, body the received
 * body frame (the packed Envelope), peer the authenticated sender for the
 * log. On 0 both messages were taken (they are left empty, initialised);
 * VIGIL_EAGAIN: every worker is busy, nothing was taken. */
int service_submit(struct service *sv, zmq_msg_t *rid, const struct transport_peer *peer,
                   zmq_msg_t *body);

/* The socket to poll (ZMQ_POLLIN) for finished answers. */
void *service_reply_socket(struct service *sv);

/* Takes one finished answer without waiting: rid and body (initialised
 * by the callee; the caller closes or sends them). Returns 0, or
 * VIGIL_EAGAIN when none is ready. */
int service_take_reply(struct service *sv, zmq_msg_t *rid, zmq_msg_t *body);

struct service_stats {
    uint64_t queries;   /* answered (ok or not) */
    uint64_t failed;    /* answered with ok=false (bad arguments, store errors) */
    uint64_t truncated; /* answered with truncated=true */
    uint64_t busy;      /* refused at submit: every worker busy */
};

/* Safe from any thread. */
void service_get_stats(struct service *sv, struct service_stats *out);

/* Stops and joins the workers (within ~100 ms plus a running query, which
 * is time-bounded by query.h), closes the sockets, frees sv. Requests still
 * queued are dropped (analysts time out). Accepts NULL. Call on the thread
 * that called service_start. */
void service_stop(struct service *sv);

#endif
