/* pipeline.h — the agent's two threads joined by a single-producer,
 * single-consumer ring.
 *
 * The capture thread reads and decodes packets and copies each decoded
 * packet (with the captured payload it may need for application metadata)
 * into the ring; the flow thread keeps the flow table and writes records.
 * libpcap reuses its buffer after each callback, hence the copy. Order is
 * preserved, so the records are the same as with one thread.
 *
 * Non-goals: more than one consumer (the flow table is single-threaded by
 * design; per-flow state needs no locks). */
#ifndef VIGIL_PIPELINE_H
#define VIGIL_PIPELINE_H

#include "flowtab.h"
#include "packet.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct pipeline;

/* Creates the ring (ring_bytes, rounded up) and starts the flow thread,
 * which owns `table` until pipeline_finish() returns. NULL on failure. */
struct pipeline *pipeline_start(struct flowtab *table, size_t ring_bytes);

/* Queues a packet (copying p and the first `keep` bytes of its captured
 * payload, see keep.h); waits while the ring is full. */
void pipeline_push(struct pipeline *pl, const struct pkt *p, uint32_t keep);

/* Is the flow thread behind (the ring more than half full)? The capture
 * thread then takes on work the flow thread would otherwise do. */
bool pipeline_backlogged(struct pipeline *pl);

/* Queues a clock tick for an idle live link. */
void pipeline_tick(struct pipeline *pl, int64_t now_ns);

/* Makes everything queued so far visible to the flow thread. */
void pipeline_publish(struct pipeline *pl);

/* Queues the end, waits for the flow thread to drain the ring and exit,
 * and frees the pipeline. The table is the caller's again afterwards.
 * Returns the CPU seconds the flow thread used. */
double pipeline_finish(struct pipeline *pl);

/* CPU seconds used so far by the calling thread (the capture thread). */
double pipeline_caller_cpu_seconds(void);

#endif
