/* flowtab.h — the flow table: packets in, flow records out.
 *
 * Fixed capacity (no allocation after creation), keyed with a random
 * SipHash key, bidirectional (one entry per conversation, oriented by the
 * initiator). Timeouts run on packet time, so a file replays exactly; a
 * live capture also advances time from the clock when idle. Records leave
 * through the emit callback: partial ones every active timeout (same flow
 * id, final=false), a final one when the flow ends. */
#ifndef VIGIL_FLOWTAB_H
#define VIGIL_FLOWTAB_H

#include "addr.h"
#include "flowrec.h"
#include "packet.h"

#include <stdint.h>

struct flowtab_config {
    uint32_t max_flows;
    int64_t idle_ns, active_ns, close_ns;
    const struct cidr_set *local_nets; /* borrowed; NULL or empty: direction unknown */
    const char *agent_name;            /* borrowed; copied into records */
    uint64_t hash_k0, hash_k1;         /* 0,0: draw a random key */
};

void flowtab_config_defaults(struct flowtab_config *cfg);

/* Called for every record; the record is valid only during the call. */
typedef void (*flow_emit_fn)(void *ctx, const struct flow_record *rec);

struct flowtab_stats {
    uint64_t flows_created;
    uint64_t records_emitted;
    uint64_t active_flows;     /* now in the table */
    uint64_t evictions;        /* flows pushed out because the table was full */
    uint64_t emergency_entered;
    uint64_t emergency_active; /* 1 while in emergency mode */
    uint64_t meta_exhausted;   /* flows that lost metadata: pool empty */
    uint64_t reasm_exhausted;  /* ClientHellos not reassembled: pool empty */
    uint64_t frag_unmatched;   /* later fragments whose first was never seen */
    uint64_t time_backwards;   /* packets older than the table's clock */
};

struct flowtab;

/* Returns NULL on allocation failure or a bad config (logged). */
struct flowtab *flowtab_create(const struct flowtab_config *cfg, flow_emit_fn emit, void *ctx);
void flowtab_destroy(struct flowtab *ft);

/* Accounts one decoded packet (advancing the table's clock to its time). */
void flowtab_packet(struct flowtab *ft, const struct pkt *p);

/* Builds the packet's flow key and its keyed hash into p. Reads only
 * what never changes after creation, so the capture thread may call it
 * while the flow thread works on the table; flowtab_packet() then skips
 * that work. Optional: without it flowtab_packet() does the same. */
void flowtab_prepare(const struct flowtab *ft, struct pkt *p);

/* For a packet that flowtab_packet() will see a few packets later: stage 0
 * prefetches its bucket, stage 1 the flow the bucket points to. Hides
 * memory latency when packets are processed from a queue; never changes
 * results. */
void flowtab_prefetch(const struct flowtab *ft, const struct pkt *p, int stage);

/* Advances the clock without a packet (live capture, idle link). */
void flowtab_advance(struct flowtab *ft, int64_t now_ns);

/* Ends every flow with the given reason (END_SHUTDOWN at exit). */
void flowtab_flush(struct flowtab *ft, enum end_reason reason);

void flowtab_get_stats(const struct flowtab *ft, struct flowtab_stats *out);

/* Bytes of memory per table entry, all pools included (for the benchmark). */
size_t flowtab_bytes_per_flow(const struct flowtab *ft);

#endif
