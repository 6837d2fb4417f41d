/* export.h — the exporter: flow records to the aggregator, in numbered
 * batches, with nothing lost and nothing counted twice.
 *
 * The flow table's emit callback (export_emit, on the flow thread) copies
 * each record into the current batch. A batch is cut when it holds
 * batch_records records, or when its oldest record has waited batch_ms
 * (the exporter thread cuts it, so an idle link still flushes), and every
 * heartbeat_ms even when empty while connected (the agent's counters still
 * reach the aggregator on a silent link). Each batch gets the next sequence
 * number from the spool.
 *
 * Cut batches go to the exporter thread through a small bounded queue; when
 * that queue is full (the exporter is behind) the flow thread writes the
 * batch to the spool itself, and only when the spool cannot take it either
 * (a disk error) does the flow thread wait: the back-pressure then shows as
 * capture drops, which are counted.
 *
 * The exporter thread stores every batch in the spool before sending it
 * (so every batch handed over survives an agent crash or restart), sends in
 * sequence order over a DEALER socket (transport_client: CURVE unless
 * insecure) with at most window_batches unacknowledged, removes everything
 * up to an Ack's sequence (acks are cumulative), resends from the oldest
 * unacknowledged batch after resend_ms without progress (backing off) or
 * after a reconnect, and drains the spool in order. The receiver dedups by
 * sequence (a resend is acked again and not applied). Batches the disk
 * cannot take (full disk) are kept in memory while there is room and
 * stored later. The reasoning is in export.c.
 *
 * Use (vigil-agent):
 *   export_config_defaults(&cfg); cfg.endpoint = ...; ...
 *   ex = export_create(&cfg, err, sizeof err);      // after dropping privileges:
 *                                                   // opens the spool, the socket
 *   table = flowtab_create(&tcfg, export_emit, ex);
 *   export_attach_flowtab(ex, table);               // before the flow thread starts
 *   export_start(ex);
 *   ... export_update_counters(ex, &c) from the capture thread now and then ...
 *   signal handler: export_request_stop(ex)
 *   pipeline_finish(); flowtab_flush(table, END_SHUTDOWN);  // last records
 *   export_stop(ex, 2000);                           // last batch, short delivery try
 *   export_destroy(ex);
 */
#ifndef VIGIL_EXPORT_H
#define VIGIL_EXPORT_H

#include "batch.h"
#include "flowrec.h"
#include "flowtab.h"
#include "transport.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define EXPORT_DEFAULT_WINDOW_BATCHES 64u
#define EXPORT_MAX_WINDOW_BATCHES (TRANSPORT_HWM / 2)
#define EXPORT_DEFAULT_WINDOW_BYTES (UINT64_C(64) << 20)
#define EXPORT_DEFAULT_QUEUE_BATCHES 4u
#define EXPORT_DEFAULT_RESEND_MS 5000u
#define EXPORT_MAX_RESEND_MS 60000u /* the resend timeout doubles up to this */
#define EXPORT_DEFAULT_HEARTBEAT_MS 30000u
#define EXPORT_HEARTBEAT_OFF UINT32_MAX
#define EXPORT_DEFAULT_STOP_GRACE_S 2 /* the agent's --stop-grace default */
#define EXPORT_DEFAULT_STOP_GRACE_MS (EXPORT_DEFAULT_STOP_GRACE_S * 1000u)

struct export_config {
    const char *endpoint;          /* "tcp://collector:7400"; borrowed, copied */
    const char *server_public_z85; /* the aggregator's public key; ignored if insecure */
    const struct keypair *client;  /* this agent's keys (copied); ignored if insecure */
    bool insecure;                 /* plain TCP (--insecure): logged loudly */
    const char *agent_name;        /* FlowBatch.agent; NULL: the host name */
    const char *spool_dir;         /* required */
    uint64_t spool_max_bytes;      /* 0: SPOOL_DEFAULT_MAX_BYTES */
    uint32_t batch_records;        /* 1..BATCH_MAX_RECORDS */
    uint32_t batch_ms;             /* >= 1 */
    uint32_t heartbeat_ms;         /* EXPORT_HEARTBEAT_OFF: no empty batches */
    uint32_t window_batches;       /* unacknowledged batches in flight, 1..EXPORT_MAX_WINDOW_BATCHES */
    uint64_t window_bytes;         /* memory for batches the disk has not taken */
    uint32_t queue_batches;        /* flow thread -> exporter hand-off, >= 1 */
    uint32_t resend_ms;            /* first resend timeout */
    void *zmq_ctx;                 /* borrowed; NULL: the exporter makes its own */
};

void export_config_defaults(struct export_config *cfg);

struct exporter;

/* Opens (and recovers) the spool, creates the socket and its connection
 * monitor; nothing runs yet. Returns NULL with a message in err. */
struct exporter *export_create(const struct export_config *cfg, char *err, size_t errlen);

/* Flow-table figures (flows, evictions, emergency) go into the counters of
 * each batch: they are read in export_emit, on the thread that owns the
 * table. table is borrowed and must outlive the exporter's use of it;
 * call before the flow thread starts. */
void export_attach_flowtab(struct exporter *ex, const struct flowtab *table);

/* Starts the exporter thread. Returns 0 or a negative VIGIL_E* code. */
int export_start(struct exporter *ex);

/* The flow table's emit callback (ctx: struct exporter). Never waits for
 * the network; waits only while neither the exporter nor the disk can take
 * a full batch. May run on the flow thread and, after it ended, on the main
 * thread (flowtab_flush); never concurrently from two threads. */
void export_emit(void *ctx, const struct flow_record *rec);

/* Merges the agent's running totals into the counters sent with each
 * batch: each field becomes the larger of its old and new value, so each
 * thread passes the figures it owns and leaves the others 0. Thread-safe.
 * The records and spool fields are the exporter's own and ignored here. */
void export_update_counters(struct exporter *ex, const struct batch_counters *c);

/* Async-signal-safe: tells a flow thread that waits on a broken disk to
 * give up soon (after the stop grace), so the agent can exit. */
void export_request_stop(struct exporter *ex);

/* Call after the last export_emit. Cuts the last batch, stores it, tries to
 * deliver what is unacknowledged for at most grace_ms, and stops the
 * thread. What is not acknowledged stays in the spool for the next start.
 * Returns 0 when everything was acknowledged, VIGIL_EAGAIN when batches
 * remain in the spool, VIGIL_EIO when some could not even be stored (the
 * records are counted as lost and logged). */
int export_stop(struct exporter *ex, uint32_t grace_ms);

/* Stops (grace 0) if still running, closes the socket and the spool.
 * Accepts NULL. */
void export_destroy(struct exporter *ex);

struct export_stats {
    uint64_t records_in;      /* records handed to export_emit */
    uint64_t records_lost;    /* records that could not be kept (logged) */
    uint64_t batches_cut;
    uint64_t batches_spilled; /* written to the spool by the flow thread */
    uint64_t sends;           /* messages sent, resends included */
    uint64_t resends;         /* rewinds to the oldest unacknowledged batch */
    uint64_t acks;            /* acks received */
    uint64_t acked_through;   /* highest acknowledged sequence */
    uint64_t bad_messages;    /* received messages that failed validation */
    uint64_t ignored_messages; /* valid, but not for the exporter (commands without control) */
    uint64_t commands;        /* commands handed to the control (export_set_control) */
    uint64_t statuses;        /* AgentStatus messages sent */
    uint64_t unspooled;       /* batches held only in memory (full disk) now */
    uint64_t in_flight;       /* sent, not yet acknowledged, now */
    uint64_t flow_waits;      /* times the flow thread had to wait (back-pressure) */
    bool connected;           /* handshake with the aggregator done */
};

/* Thread-safe snapshot. */
void export_get_stats(struct exporter *ex, struct export_stats *out);

/* ---- commands and status (forensic capture) ---------------------------------
 * The same connection carries the aggregator's Commands to the agent and
 * AgentStatus messages back. on_command gets each valid Command (borrowed,
 * for the call) on the exporter thread. pack_status packs an AgentStatus
 * Envelope for agent (malloc'd into *out); it is sent, never spooled (a
 * status is state: the next one replaces it), right after each handshake
 * (so the aggregator learns where the agent is and delivers waiting
 * orders), soon after a command, every EXPORT_STATUS_BUSY_MS while busy()
 * says so, else every EXPORT_STATUS_IDLE_MS. tick runs on every turn of the
 * exporter loop (about ten a second). Set it before export_start; ctl is
 * copied and ctx borrowed. */
#define EXPORT_STATUS_BUSY_MS 1000u
#define EXPORT_STATUS_IDLE_MS 30000u

struct export_control {
    void (*on_command)(void *ctx, const Vigil__Command *cmd);
    int (*pack_status)(void *ctx, const char *agent, uint8_t **out, size_t *len);
    bool (*busy)(void *ctx);
    void (*tick)(void *ctx);
    void *ctx;
};

void export_set_control(struct exporter *ex, const struct export_control *ctl);

/* Asks for a status as soon as connected (any thread); export_stop then
 * waits, within its grace, until it is sent. */
void export_status_now(struct exporter *ex);

/* The spool's figures (thread-safe). */
struct spool_stats;
void export_get_spool_stats(struct exporter *ex, struct spool_stats *out);

/* Internal, for the tests: the exporter's spool (to inject disk errors). */
struct spool *export__spool(struct exporter *ex);

#endif
