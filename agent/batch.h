/* batch.h — flow records into protobuf FlowBatch envelopes.
 *
 * The builder holds copies of up to max_records flow records (memory set
 * aside at creation: nothing is allocated per record) and packs them, with
 * the agent's name, the batch sequence, the agent's counters and the
 * spool's epoch, into one serialized Envelope, the unit the exporter
 * stores and sends.
 *
 * Not thread-safe: the exporter serialises access (see export.c).
 * Non-goals: sending, storing, deciding when to cut (export.c does). */
#ifndef VIGIL_BATCH_H
#define VIGIL_BATCH_H

#include "flowrec.h"
#include "transport.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* DESIGN.md: a batch is "up to a few thousand records or 1 s". */
#define BATCH_DEFAULT_RECORDS 2000u
#define BATCH_DEFAULT_MS 1000u
/* A record packs to at most ~1 KB (three 255-byte names, a JA4, addresses,
 * counters), so 8192 records stay well under TRANSPORT_MAX_MSG (16 MiB):
 * a batch is never refused by the transport for its size. */
#define BATCH_MAX_RECORDS 8192u
#define BATCH_RECORD_MAX_PACKED 1200u
_Static_assert((uint64_t)BATCH_MAX_RECORDS * BATCH_RECORD_MAX_PACKED + 4096 < TRANSPORT_MAX_MSG,
               "a full batch always fits one transport message");

/* The agent's health, sent with every batch (AgentCounters in vigil.proto):
 * running totals since the agent started, except spool_bytes/batches,
 * which are current. */
struct batch_counters {
    uint64_t packets, bytes;
    uint64_t decode_errors;
    uint64_t capture_drops, interface_drops; /* pcap_stats ps_drop, ps_ifdrop */
    uint64_t flows, evictions, emergency;    /* the flow table's */
    uint64_t records;                        /* records handed to the exporter */
    uint64_t spool_bytes, spool_batches;
    uint64_t spool_dropped_batches, spool_dropped_records;
    int64_t started_ns;                      /* wall clock */
};

/* What a batch carries besides its records. */
struct batch_meta {
    const char *agent;                      /* borrowed; 1..64 printable characters */
    uint64_t seq;                           /* >= 1 */
    uint64_t epoch;                         /* the spool's installation id */
    int64_t sent_ns;                        /* wall clock when the batch was cut */
    const struct batch_counters *counters;  /* borrowed */
};

/* Fills *out (initialised here) from *r. The strings and address bytes of
 * *out point into *r (borrowed): r must stay unchanged while out is used.
 * Addresses are 4 bytes for IPv4 (IPv4-mapped in r), else 16. */
void batch_record_to_pb(const struct flow_record *r, Vigil__FlowRecord *out);

struct batch_builder;

/* max_records: 1..BATCH_MAX_RECORDS. Returns NULL on bad input or no memory. */
struct batch_builder *batch_builder_create(uint32_t max_records);
void batch_builder_destroy(struct batch_builder *b); /* accepts NULL */

/* Copies *rec (borrowed) into the batch; now_ns (monotonic) is remembered
 * for the first record. Returns false (and copies nothing) when full. */
bool batch_builder_add(struct batch_builder *b, const struct flow_record *rec, int64_t now_ns);

uint32_t batch_builder_count(const struct batch_builder *b);
bool batch_builder_full(const struct batch_builder *b);

/* Monotonic time at which the oldest record waiting was added (0: empty). */
int64_t batch_builder_oldest_ns(const struct batch_builder *b);

/* Packs the waiting records (possibly none: a counters-only batch) into an
 * Envelope holding a FlowBatch. On success *out is a new buffer (malloc'd,
 * caller frees), *len its size, *records the record count, and the builder
 * is empty. On failure (VIGIL_ENOMEM; VIGIL_EINVAL for a bad meta) the
 * builder keeps its records. */
int batch_builder_pack(struct batch_builder *b, const struct batch_meta *meta, uint8_t **out,
                       size_t *len, uint32_t *records);

#endif
