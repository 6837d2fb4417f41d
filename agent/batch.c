/* batch.c — struct flow_record to Vigil__FlowRecord, and batches of them
 * packed into Envelopes.
 *
 * The builder keeps plain copies of the records and converts them only when
 * the batch is packed: the protobuf structs then point into those copies
 * (strings, address bytes), so packing allocates nothing but the output
 * buffer. */
#include "batch.h"

#include "err.h"

#include <stdlib.h>
#include <string.h>

struct batch_builder {
    uint32_t max, count;
    int64_t oldest_ns;            /* monotonic, when records[0] arrived */
    struct flow_record *records;  /* [max], from malloc() */
    Vigil__FlowRecord *pb;        /* [max], filled at pack time */
    Vigil__FlowRecord **pb_ptrs;  /* [max] */
};

/* protobuf-c wants char * for strings it only reads when packing. */
static char *str(const char *s)
{
    return (char *)(uintptr_t)s;
}

void batch_record_to_pb(const struct flow_record *r, Vigil__FlowRecord *out)
{
    vigil__flow_record__init(out);
    out->flow_id = r->flow_id;
    out->final = r->final;
    out->end_reason = r->end_reason < END_COUNT ? (Vigil__EndReason)r->end_reason
                                                : VIGIL__END_REASON__END_SHUTDOWN;
    out->start_ns = r->start_ns;
    out->end_ns = r->end_ns;

    /* Both addresses in one family: 4 bytes when both are IPv4-mapped. */
    bool v4 = addr_is_v4(&r->src) && addr_is_v4(&r->dst);
    out->src_ip.data = (uint8_t *)(uintptr_t)(v4 ? r->src.b + 12 : r->src.b);
    out->src_ip.len = v4 ? 4 : 16;
    out->dst_ip.data = (uint8_t *)(uintptr_t)(v4 ? r->dst.b + 12 : r->dst.b);
    out->dst_ip.len = v4 ? 4 : 16;

    out->has_ports = r->has_ports;
    out->src_port = r->src_port;
    out->dst_port = r->dst_port;
    out->proto = r->proto;
    out->has_vlan = r->vlan != VLAN_NONE;
    out->vlan = r->vlan != VLAN_NONE ? r->vlan : 0;
    out->tunnel = str(tunnel_name((enum tunnel_kind)r->tunnel));
    out->has_icmp = r->has_icmp;
    out->icmp_type = r->icmp_type;
    out->icmp_code = r->icmp_code;
    out->pkts_fwd = r->pkts_fwd;
    out->bytes_fwd = r->bytes_fwd;
    out->pkts_rev = r->pkts_rev;
    out->bytes_rev = r->bytes_rev;
    out->tcp_flags_fwd = r->tcp_flags_fwd;
    out->tcp_flags_rev = r->tcp_flags_rev;
    out->state = str(conn_state_name((enum conn_state)r->state));
    out->has_rtt = r->has_rtt;
    out->rtt_us = r->rtt_us;
    out->retrans_fwd = r->retrans_fwd;
    out->retrans_rev = r->retrans_rev;
    out->direction = str(direction_name((enum flow_direction)r->direction));
    out->app = str(r->app);
    out->has_dns = r->has_dns;
    out->dns_qname = str(r->dns_qname);
    out->dns_qtype = r->dns_qtype;
    out->has_dns_rcode = r->has_dns_rcode;
    out->dns_rcode = r->dns_rcode;
    out->tls_sni = str(r->tls_sni);
    out->ja4 = str(r->ja4);
    out->http_host = str(r->http_host);
}

struct batch_builder *batch_builder_create(uint32_t max_records)
{
    if (max_records == 0 || max_records > BATCH_MAX_RECORDS)
        return NULL;
    struct batch_builder *b = calloc(1, sizeof *b);
    if (!b)
        return NULL;
    b->max = max_records;
    b->records = malloc(max_records * sizeof *b->records);
    b->pb = malloc(max_records * sizeof *b->pb);
    b->pb_ptrs = malloc(max_records * sizeof *b->pb_ptrs);
    if (!b->records || !b->pb || !b->pb_ptrs) {
        batch_builder_destroy(b);
        return NULL;
    }
    return b;
}

void batch_builder_destroy(struct batch_builder *b)
{
    if (!b)
        return;
    free(b->records);
    free(b->pb);
    free(b->pb_ptrs);
    free(b);
}

bool batch_builder_add(struct batch_builder *b, const struct flow_record *rec, int64_t now_ns)
{
    if (b->count == b->max)
        return false;
    if (b->count == 0)
        b->oldest_ns = now_ns;
    b->records[b->count++] = *rec;
    return true;
}

uint32_t batch_builder_count(const struct batch_builder *b)
{
    return b->count;
}

bool batch_builder_full(const struct batch_builder *b)
{
    return b->count == b->max;
}

int64_t batch_builder_oldest_ns(const struct batch_builder *b)
{
    return b->count ? b->oldest_ns : 0;
}

static void counters_to_pb(const struct batch_counters *c, Vigil__AgentCounters *out)
{
    vigil__agent_counters__init(out);
    if (!c)
        return;
    out->packets = c->packets;
    out->bytes = c->bytes;
    out->decode_errors = c->decode_errors;
    out->capture_drops = c->capture_drops;
    out->interface_drops = c->interface_drops;
    out->flows = c->flows;
    out->evictions = c->evictions;
    out->emergency = c->emergency;
    out->records = c->records;
    out->spool_bytes = c->spool_bytes;
    out->spool_batches = c->spool_batches;
    out->spool_dropped_batches = c->spool_dropped_batches;
    out->spool_dropped_records = c->spool_dropped_records;
    out->started_ns = c->started_ns;
}

int batch_builder_pack(struct batch_builder *b, const struct batch_meta *meta, uint8_t **out,
                       size_t *len, uint32_t *records)
{
    if (!meta || meta->seq == 0 || !meta->agent || !meta->agent[0])
        return VIGIL_EINVAL;
    for (uint32_t i = 0; i < b->count; i++) {
        batch_record_to_pb(&b->records[i], &b->pb[i]);
        b->pb_ptrs[i] = &b->pb[i];
    }
    Vigil__AgentCounters counters;
    counters_to_pb(meta->counters, &counters);

    Vigil__FlowBatch fb = VIGIL__FLOW_BATCH__INIT;
    fb.agent = str(meta->agent);
    fb.seq = meta->seq;
    fb.n_records = b->count;
    fb.records = b->count ? b->pb_ptrs : NULL;
    fb.counters = &counters;
    fb.sent_ns = meta->sent_ns;
    fb.agent_epoch = meta->epoch;

    Vigil__Envelope env = VIGIL__ENVELOPE__INIT;
    env.body_case = VIGIL__ENVELOPE__BODY_BATCH;
    env.batch = &fb;
    int rc = envelope_pack(&env, out, len);
    if (rc != 0)
        return rc;
    if (records)
        *records = b->count;
    b->count = 0;
    b->oldest_ns = 0;
    return 0;
}
