/* flowcodec.h — the byte layouts the store writes: one stored flow (the
 * value in the flows DB) and one journal entry (a record's contribution to
 * the rollups and the host index).
 *
 * Both are compact and versioned: the first byte is the layout version, a
 * reader refuses a version it does not know, and a new layout only ever adds
 * fields at the end. Integers are LEB128 varints unless said otherwise,
 * addresses are 4 bytes when IPv4 (flagged) or 16. Reading goes through
 * common/cursor.h: a damaged row is refused (VIGIL_EBADMSG), never trusted.
 *
 * Non-goals: the wire format (proto/vigil.proto) and JSON (common/flowrec.c). */
#ifndef VIGIL_FLOWCODEC_H
#define VIGIL_FLOWCODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "addr.h"
#include "flowrec.h"
#include "vigil.pb-c.h"

#define FLOWCODEC_VERSION 1
#define JOURNAL_VERSION 1
/* Largest stored flow: fixed part plus five strings at their longest. */
#define FLOWCODEC_MAX (160 + 3 * FLOWREC_NAME_MAX + FLOWREC_JA4_MAX + FLOWREC_APP_MAX + 16)
#define JOURNAL_MAX 128

/* One stored flow: the merged record plus what the store adds. agent[] of
 * rec is not stored (agent_id is); queries fill it from the agents DB. */
struct sflow {
    struct flow_record rec;
    uint32_t agent_id;
    uint32_t records; /* records merged into it */
};

/* Converts a wire record (already validated by the transport) to the
 * in-memory form, re-checking what the store relies on: address lengths (4
 * or 16, same family), end >= start >= 0, end before 2106 (keys hold seconds
 * in 32 bits), port/proto ranges. Strings longer than flow_record's fields
 * are cut. Returns 0 or VIGIL_EBADMSG. */
int flowcodec_from_pb(const Vigil__FlowRecord *pb, struct flow_record *out);

/* Merges a later record of the same flow into f: counters summed, flags
 * OR-ed, start = min, end = max, final and end_reason from the final record,
 * state from the newest record, metadata kept from whichever record has it
 * (the earlier one wins when both do). */
void flowcodec_merge(struct sflow *f, const struct flow_record *r);

/* Encodes f into buf (at least FLOWCODEC_MAX bytes); returns the length. */
size_t flowcodec_encode(const struct sflow *f, uint8_t *buf);

/* Decodes a stored flow; returns 0 or VIGIL_EBADMSG (unknown version, short). */
int flowcodec_decode(const void *data, size_t len, struct sflow *out);

/* A record's contribution to the rollups and to the host index, as the
 * journal keeps it so the in-memory part can be rebuilt after a crash. */
struct contrib {
    uint64_t seq;        /* the journal key: global ingest sequence */
    int64_t end_ns;      /* the record's own end: decides the minute bucket */
    struct vigil_addr src, dst;
    uint16_t dst_port;   /* 0 without ports */
    uint8_t proto;
    bool new_flow;       /* the record started a flow: flows += 1 */
    bool placed;         /* a flow row was written at (row_sec, seq): index it by host */
    bool refs_only;      /* no counters: only the host index entry (a stale flow moved) */
    uint32_t row_sec;    /* with placed: the second of the flow row's key */
    char app[FLOWREC_APP_MAX];
    uint64_t pkts_fwd, bytes_fwd, pkts_rev, bytes_rev;
};

/* Encodes c (without seq, which is the key) into buf (JOURNAL_MAX bytes);
 * returns the length. */
size_t contrib_encode(const struct contrib *c, uint8_t *buf);

/* Decodes a journal entry; c->seq is left to the caller. Returns 0 or
 * VIGIL_EBADMSG. */
int contrib_decode(const void *data, size_t len, struct contrib *c);

#endif
