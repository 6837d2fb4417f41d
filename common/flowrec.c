/* flowrec.c — names for flow record enums and the record's JSON form. */
#include "flowrec.h"

#include "clock.h"
#include "json.h"

static const char *const state_names[STATE_COUNT] = {
    [STATE_NONE] = "", [STATE_S0] = "S0",         [STATE_S1] = "S1",     [STATE_SF] = "SF",
    [STATE_REJ] = "REJ", [STATE_S2] = "S2",       [STATE_S3] = "S3",     [STATE_RSTO] = "RSTO",
    [STATE_RSTR] = "RSTR", [STATE_RSTOS0] = "RSTOS0", [STATE_RSTRH] = "RSTRH", [STATE_SH] = "SH",
    [STATE_SHR] = "SHR", [STATE_OTH] = "OTH",
};

static const char *const end_names[END_COUNT] = {
    [END_IDLE] = "idle", [END_ACTIVE] = "active", [END_FIN] = "fin",
    [END_RST] = "rst",   [END_EVICTED] = "evicted", [END_SHUTDOWN] = "shutdown",
};

static const char *const dir_names[DIR_COUNT] = {
    [DIR_UNKNOWN] = "", [DIR_INBOUND] = "inbound", [DIR_OUTBOUND] = "outbound",
    [DIR_INTERNAL] = "internal", [DIR_EXTERNAL] = "external",
};

static const char *const tunnel_names[TUNNEL_COUNT] = {
    [TUNNEL_NONE] = "",     [TUNNEL_GRE] = "gre",       [TUNNEL_VXLAN] = "vxlan",
    [TUNNEL_GENEVE] = "geneve", [TUNNEL_IPIP] = "ipip", [TUNNEL_TEREDO] = "teredo",
    [TUNNEL_MPLS_UDP] = "mpls-udp",
};

const char *conn_state_name(enum conn_state s)
{
    return (unsigned)s < STATE_COUNT ? state_names[s] : "";
}

const char *end_reason_name(enum end_reason r)
{
    return (unsigned)r < END_COUNT ? end_names[r] : "";
}

const char *direction_name(enum flow_direction d)
{
    return (unsigned)d < DIR_COUNT ? dir_names[d] : "";
}

const char *tunnel_name(enum tunnel_kind t)
{
    return (unsigned)t < TUNNEL_COUNT ? tunnel_names[t] : "";
}

size_t flowrec_to_json(const struct flow_record *r, char *buf, size_t len)
{
    struct json_writer w;
    char text[ADDR_STRLEN];
    char ts[32];

    json_begin(&w, buf, len);
    json_key_u64(&w, "flow_id", r->flow_id);
    if (r->agent[0])
        json_key_str(&w, "agent", r->agent);
    json_key_bool(&w, "final", r->final);
    json_key_plain(&w, "end_reason", end_reason_name(r->end_reason));
    size_t n;
    if ((n = vigil_format_rfc3339(r->start_ns, ts, sizeof ts)) != 0)
        json__key_plain(&w, "start", 5, ts, n);
    if ((n = vigil_format_rfc3339(r->end_ns, ts, sizeof ts)) != 0)
        json__key_plain(&w, "end", 3, ts, n);
    json_key_decimal(&w, "duration", r->end_ns - r->start_ns, 1000000000u, 6);
    json_key_plain(&w, "src_ip", addr_format(&r->src, text));
    if (r->has_ports)
        json_key_u64(&w, "src_port", r->src_port);
    json_key_plain(&w, "dst_ip", addr_format(&r->dst, text));
    if (r->has_ports)
        json_key_u64(&w, "dst_port", r->dst_port);
    json_key_u64(&w, "proto", r->proto);
    if (r->vlan != VLAN_NONE)
        json_key_u64(&w, "vlan", r->vlan);
    if (r->tunnel != TUNNEL_NONE)
        json_key_plain(&w, "tunnel", tunnel_name(r->tunnel));
    if (r->has_icmp) {
        json_key_u64(&w, "icmp_type", r->icmp_type);
        json_key_u64(&w, "icmp_code", r->icmp_code);
    }
    json_key_u64(&w, "pkts_fwd", r->pkts_fwd);
    json_key_u64(&w, "bytes_fwd", r->bytes_fwd);
    json_key_u64(&w, "pkts_rev", r->pkts_rev);
    json_key_u64(&w, "bytes_rev", r->bytes_rev);
    if (r->proto == 6) {
        json_key_u64(&w, "tcp_flags_fwd", r->tcp_flags_fwd);
        json_key_u64(&w, "tcp_flags_rev", r->tcp_flags_rev);
        json_key_plain(&w, "state", conn_state_name(r->state));
        if (r->has_rtt)
            json_key_u64(&w, "rtt_us", r->rtt_us);
        json_key_u64(&w, "retrans_fwd", r->retrans_fwd);
        json_key_u64(&w, "retrans_rev", r->retrans_rev);
    }
    if (r->direction != DIR_UNKNOWN)
        json_key_plain(&w, "direction", direction_name(r->direction));
    if (r->app[0])
        json_key_str(&w, "app", r->app);
    if (r->has_dns) {
        json_key_str(&w, "dns_qname", r->dns_qname);
        json_key_u64(&w, "dns_qtype", r->dns_qtype);
        if (r->has_dns_rcode)
            json_key_u64(&w, "dns_rcode", r->dns_rcode);
    }
    if (r->tls_sni[0])
        json_key_str(&w, "tls_sni", r->tls_sni);
    if (r->ja4[0])
        json_key_str(&w, "ja4", r->ja4);
    if (r->http_host[0])
        json_key_str(&w, "http_host", r->http_host);
    return json_end(&w);
}
