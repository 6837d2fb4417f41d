/* detect_thread.h — the detection engine (detect.h) on a thread of its own,
 * beside ingest, so a record costs the ingest thread a copy instead of the
 * detectors' work: the aggregator's rate becomes the slower of the two
 * stages, not their sum.
 *
 * The ingest thread hands over every batch the store committed (not a
 * duplicate) with detect_thread_submit: the records are deep-copied, all
 * their fields, into one allocation per batch (the received message is
 * freed right after the commit), and queued. The queue is bounded
 * (DETECT_QUEUE_SLOTS batches, DETECT_QUEUE_BYTES of copies); when it is
 * full the ingest thread waits (back-pressure): no batch is ever skipped,
 * so detection stays exact, and the waits are counted for the status line.
 * The detection thread runs detect_batch on each batch in order, and
 * detect_tick after each batch and, when none comes, at least every
 * DETECT_THREAD_WAKE_NS (a timed condition wait, no spinning): idle flush,
 * window closing and persistence keep their rhythm.
 *
 * Threads and LMDB. The detection thread writes the engine's databases
 * (baselines, known_dsts, alerts) in its own write transactions, in the
 * engine's own environment (store_int.h, enum detect_db): LMDB has one
 * writer per environment, so these writes never wait for ingest's nor hold
 * it up, and that environment's map never grows, so no lock is needed
 * around them. The store's rollups, journal and META_GEN are not touched,
 * so a query's snapshot check is unaffected. A failed write (disk full,
 * map full) is retried by the engine a second later; the store pauses
 * ingest on its own errors.
 *
 * New alerts: the engine's on_new_alert hook (forensic capture orders,
 * which need the ingest thread: capture.h) is taken over while the thread
 * runs; alerts are copied into a list the ingest thread empties in
 * detect_thread_poll and detect_thread_stop, calling the hook there. The
 * list never blocks the detection thread: beyond DETECT_THREAD_ALERTS_MAX
 * waiting, a hook call is dropped and counted (the alert itself is raised,
 * stored and logged all the same).
 *
 * Stop: detect_thread_stop (ingest thread) lets the thread judge every
 * queued batch, tick once more, and joins it; the caller then destroys the
 * engine (which persists what is pending) before the store closes, and
 * frees t (detect_thread_free).
 *
 * Non-goals: the detectors (detect.h); deciding what is a batch to judge
 * (ingest.c). */
#ifndef VIGIL_DETECT_THREAD_H
#define VIGIL_DETECT_THREAD_H

#include <stddef.h>
#include <stdint.h>

#include "clock.h"
#include "detect.h"
#include "store.h"
#include "vigil.pb-c.h"

/* Batches waiting: a few group commits' worth (the ingest thread commits up
 * to INGEST_BURST batches at once), so a burst does not stall ingest. */
#define DETECT_QUEUE_SLOTS 128u
/* Bytes of copied records waiting (about 400 bytes a record: 160 K
 * records). A batch larger than this still passes once the queue is empty. */
#define DETECT_QUEUE_BYTES (64u << 20)
/* The thread ticks the engine at least this often when no batch comes. */
#define DETECT_THREAD_WAKE_NS (100 * NS_PER_MS)
/* New alerts waiting for the ingest thread's hook. */
#define DETECT_THREAD_ALERTS_MAX 1024u

struct detect_thread_stats {
    uint64_t submitted;      /* batches handed over */
    uint64_t records;        /* their records */
    uint64_t judged;         /* batches the engine has run */
    uint64_t queued;         /* batches waiting now */
    uint64_t queued_bytes;   /* bytes of copies waiting now */
    uint64_t waits;          /* submits that found the queue full and waited */
    int64_t wait_ns;         /* monotonic time they waited, in all */
    uint64_t lost;           /* batches not judged: no memory for the copy (logged) */
    uint64_t hooks;          /* new-alert hook calls made on the ingest thread */
    uint64_t hooks_dropped;  /* ... dropped: DETECT_THREAD_ALERTS_MAX were waiting */
    int64_t cpu_ns;          /* the detection thread's CPU time */
    int64_t tick_ns;         /* wall time in detect_tick (windows, writes), in all */
    int64_t tick_max_ns;     /* the longest one (a write transaction the store's
                                writer may have waited for) */
};

struct detect_thread;

/* Starts the thread running d (borrowed; the thread owns it until
 * detect_thread_stop: nothing else may call detect_batch, detect_tick or
 * detect_flush meanwhile) on store s (borrowed: the one d was created on).
 * Call on the ingest thread, before the first submit. Returns NULL with a
 * message in err. */
struct detect_thread *detect_thread_start(struct detect *d, struct store *s, char *err,
                                          size_t errlen);

/* Ingest thread: hands over a committed batch b (borrowed: copied before
 * the return) from agent (the authenticated name, borrowed). Waits while
 * the queue is full. */
void detect_thread_submit(struct detect_thread *t, const Vigil__FlowBatch *b, const char *agent);

/* Ingest thread, from its timers: calls the new-alert hook for alerts
 * raised since. */
void detect_thread_poll(struct detect_thread *t);

/* Ingest thread: judges everything queued, ticks once more, joins the
 * thread, calls the hook for the last alerts and gives the hook back to
 * the engine (the caller may use it directly again). Later submits are
 * ignored; the stats and status text stay readable. Accepts NULL. */
void detect_thread_stop(struct detect_thread *t);

/* Stops (if not yet) and frees t. Accepts NULL. */
void detect_thread_free(struct detect_thread *t);

/* A consistent copy of the counters; any thread. */
void detect_thread_get_stats(struct detect_thread *t, struct detect_thread_stats *out);

/* The status line's detection part: the engine's (detect_status_text) and
 * the queue's ("queue=3/128 waits=12 (0.4 s)"). Ingest thread only (the
 * engine's "+new" count is kept per caller). */
void detect_thread_status_text(struct detect_thread *t, char *buf, size_t len);

#endif
