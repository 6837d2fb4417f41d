/* ingest.h — the aggregator's ROUTER loop: flow batches from agents into
 * the store, acknowledged only once durable; queries handed to the query
 * service; the store's upkeep (tick, retention) between messages.
 *
 * One thread runs everything here: it owns the ROUTER socket and is the
 * store's only writer (store.h). For each message:
 *   1. receive [routing id][body] with zmq_msg_recv (the body frame carries
 *      the User-Id and Peer-Address metadata the ZAP handler attached);
 *   2. envelope_unpack: size, structure, version and field validation;
 *   3. role check: a FlowBatch only from an agent key (and its `agent` must
 *      be the key's name, unless --insecure), a QueryRequest only from an
 *      analyst key (an agent key gets an error answer);
 *   4. a batch goes to store_apply_batch; the Ack(seq, duplicate) is sent
 *      only after it returned 0 (so a SIGKILL at any moment loses nothing:
 *      what was not acked is resent by the agent and deduplicated);
 *   5. a query goes to the query service (service.h), whose answer comes
 *      back through the same loop.
 * Anything malformed is counted under its reason, logged rate-limited with
 * the sender's address and key name, and dropped; the loop goes on.
 *
 * When the store cannot take a batch for a reason that may pass (disk full
 * or failing, the map at its ceiling, out of memory), ingest pauses: the
 * batch is not acked, one line is logged, and for a while (1 s, doubling up
 * to INGEST_PAUSE_MAX_NS) batches are neither applied nor acked — agents
 * keep them in their spools and resend. The socket is still read meanwhile:
 * analysts can still query (and see the agents' spools grow), and the
 * ROUTER's queues do not fill with batches that would then sit in memory.
 * A batch the store refuses for good (VIGIL_EINVAL: malformed beyond what
 * the transport checks) is acked and counted, with a log line naming the
 * agent, or the agent would resend it forever.
 *
 * Non-goals: storage (store.h), answering queries (service.h),
 * authentication (the ZAP handler in common/zap.c). */
#ifndef VIGIL_INGEST_H
#define VIGIL_INGEST_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store.h"
#include "transport.h"

#define INGEST_PAUSE_FIRST_NS (1 * INT64_C(1000000000))
#define INGEST_PAUSE_MAX_NS (60 * INT64_C(1000000000))
/* The map must grow and queries held it (store_apply_batch VIGIL_EAGAIN):
 * a short pause, not a loud one. */
#define INGEST_PAUSE_GROW_NS (100 * INT64_C(1000000))
/* Messages handled per wake-up before the loop looks at timers and answers
 * again: bounds how long a burst of batches delays a query's answer. */
#define INGEST_BURST 64
/* Budget of each store_tick (closed minutes, hour and day tiers) and how
 * often it runs while batches keep coming; when idle it runs every poll. */
#define INGEST_TICK_BUDGET_NS (20 * INT64_C(1000000))
#define INGEST_TICK_EVERY_NS (100 * INT64_C(1000000))
#define INGEST_POLL_MS 100
/* Retention: after a pass that did not finish, the next slice comes soon. */
#define INGEST_RETENTION_BUDGET_NS (50 * INT64_C(1000000))
#define INGEST_RETENTION_AGAIN_NS (1 * INT64_C(1000000000))
#define INGEST_RETENTION_FIRST_NS (10 * INT64_C(1000000000))

struct capture_jobs;

struct ingest_config {
    const char *listen;                /* endpoint to bind, e.g. "tcp://0.0.0.0:7400" */
    const struct keypair *server_keys; /* borrowed; NULL when insecure */
    bool insecure;                     /* NULL mechanism: every peer is agent and analyst */
    struct zap_handler *zap;           /* borrowed: reloaded on SIGHUP; must outlive ingest */
    struct store *store;               /* borrowed; ingest is its writer thread */
    unsigned query_threads;            /* query service workers, 1..SERVICE_MAX_THREADS */
    int64_t status_interval_ns;        /* one status line this often; 0: never */
    int64_t retention_interval_ns;     /* a retention pass this often; 0: never */
    struct capture_jobs *captures;     /* borrowed: forensic capture orders (capture.h);
                                          NULL: none (capture kinds go to the workers
                                          and are unknown there) */
    const char *capture_allow;         /* with analysts_allow: re-read on SIGHUP into the */
    const char *analysts_allow;        /* capture right (capture_rights.h); NULL: kept as is */
    struct detect *detect;             /* borrowed: baselines, detectors, alerts (detect.h),
                                          run on a thread of its own (detect_thread.h)
                                          from ingest_create to ingest_destroy, which
                                          judges what is queued; NULL: detection off */
};

/* Why a message was dropped (each has a counter). */
enum ingest_bad {
    BAD_FRAMES = 0,    /* not exactly [routing id][body] */
    BAD_TOO_LARGE,     /* envelope_unpack: ENV_TOO_LARGE */
    BAD_UNDECODABLE,   /* ENV_UNDECODABLE: garbage or truncated */
    BAD_VERSION,       /* ENV_BAD_VERSION */
    BAD_NO_BODY,       /* ENV_NO_BODY */
    BAD_INVALID,       /* ENV_INVALID: decoded, a field out of range */
    BAD_NO_IDENTITY,   /* no or unknown User-Id (cannot happen with the ZAP handler) */
    BAD_ROLE,          /* a batch from an analyst key, a query from an agent key */
    BAD_AGENT_NAME,    /* batch.agent is not the name of the key that sent it */
    BAD_UNEXPECTED,    /* a body a client never sends (Ack, Command, QueryResponse) */
    BAD_COUNT
};

/* A stable lower-case name per reason ("undecodable", ...), for the log. */
const char *ingest_bad_name(enum ingest_bad b);

struct ingest_stats {
    uint64_t messages;         /* bodies received */
    uint64_t batches;          /* applied (committed) */
    uint64_t duplicates;       /* at or below the agent's last sequence: acked, not applied */
    uint64_t records;          /* stored */
    uint64_t rejected_records; /* records the store skipped in committed batches */
    uint64_t refused_batches;  /* refused for good by the store: acked and counted */
    uint64_t deferred;         /* not applied, not acked (store paused): agents resend */
    uint64_t pauses;           /* times ingest paused */
    uint64_t acks;             /* acks sent */
    uint64_t send_failures;    /* acks/answers the ROUTER could not send (peer gone, full) */
    uint64_t statuses;         /* AgentStatus received (forensic capture progress) */
    uint64_t queries;          /* requests handed to the query service */
    uint64_t query_refused;    /* answered "busy" or refused at once */
    uint64_t bad[BAD_COUNT];
    uint64_t retention_rows;   /* rows retention deleted */
};

struct ingest;

/* Binds the ROUTER (transport_server: the ZAP handler must be running on
 * zmq_ctx) and starts the query service. Call on the thread that will run
 * ingest_run. Logs the endpoint it listens on and whether CURVE is on
 * (loudly when not). Returns NULL with a message in err. */
struct ingest *ingest_create(void *zmq_ctx, const struct ingest_config *cfg, char *err,
                             size_t errlen);

/* The bound endpoint (with the real port when the config said ":*"). */
const char *ingest_endpoint(const struct ingest *in);

/* Runs the loop until *stop becomes non-zero (set by a signal handler):
 * the message being handled is finished first (a batch is applied and
 * acked, or not applied). When *reload is non-zero the allow lists are
 * re-read (zap_reload) and *reload is cleared. Returns 0 after a stop, or
 * a negative VIGIL_E* code if the socket failed. */
int ingest_run(struct ingest *in, const volatile sig_atomic_t *stop,
               volatile sig_atomic_t *reload);

/* Consistent only on the ingest thread (a snapshot for tests and the log). */
void ingest_get_stats(const struct ingest *in, struct ingest_stats *out);

/* Logs the final status line, stops the query service, closes the ROUTER
 * (pending acks get TRANSPORT_LINGER_MS to leave) and frees in. The store
 * stays open (the caller closes it). Accepts NULL. */
void ingest_destroy(struct ingest *in);

#endif
