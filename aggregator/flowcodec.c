/* flowcodec.c — stored flow and journal entry layouts (see flowcodec.h).
 *
 * Stored flow, version 1 (value of the flows DB):
 *   u8 version (1)
 *   u8 flags      0x01 final, 0x02 has_ports, 0x04 has_icmp, 0x08 has_rtt,
 *                 0x10 has_dns, 0x20 has_dns_rcode, 0x40 IPv6, 0x80 VLAN tagged
 *   u8 end_reason, u8 proto, u8 state, u8 direction, u8 tunnel
 *   varint agent_id, flow_id, end_ns, end_ns - start_ns
 *   src, dst: 4 bytes each (IPv4) or 16 (IPv6), network order
 *   [has_ports] be16 src_port, be16 dst_port      [VLAN] be16 vlan
 *   [has_icmp] u8 type, u8 code
 *   varint pkts_fwd, bytes_fwd, pkts_rev, bytes_rev
 *   u8 tcp_flags_fwd, u8 tcp_flags_rev
 *   [has_rtt] varint rtt_us
 *   varint retrans_fwd, retrans_rev, records
 *   [has_dns] varint dns_qtype                     [has_dns_rcode] u8 dns_rcode
 *   app, dns_qname, tls_sni, ja4, http_host: varint length + bytes each
 * A typical IPv4 TCP flow with an app label takes 50-60 bytes.
 *
 * Journal entry, version 1 (value of the journal DB; the key is the seq):
 *   u8 version (1)
 *   u8 flags      0x01 src IPv4, 0x02 dst IPv4, 0x04 new flow, 0x08 placed,
 *                 0x10 refs only
 *   varint end_ns
 *   [placed] varint row second - end second
 *   src, dst (4 or 16 bytes each)
 *   u8 proto, be16 dst_port
 *   varint app length + bytes
 *   varint pkts_fwd, bytes_fwd, pkts_rev, bytes_rev
 * About 30 bytes for IPv4. */
#include "flowcodec.h"

#include <string.h>

#include "bytes.h"
#include "cursor.h"
#include "err.h"

enum {
    F_FINAL = 0x01,
    F_PORTS = 0x02,
    F_ICMP = 0x04,
    F_RTT = 0x08,
    F_DNS = 0x10,
    F_RCODE = 0x20,
    F_V6 = 0x40,
    F_VLAN = 0x80,
};

enum { J_SRC4 = 0x01, J_DST4 = 0x02, J_NEW = 0x04, J_PLACED = 0x08, J_REFS = 0x10 };

/* Copies a NUL-terminated wire string (may be NULL) into a fixed field,
 * cutting it to fit. */
static void copy_str(char *dst, size_t cap, const char *src)
{
    size_t n = src && *src ? strnlen(src, cap - 1) : 0;
    if (n)
        memcpy(dst, src, n);
    dst[n] = '\0';
}

static uint8_t lookup_name(const char *text, const char *(*name_of)(int), int count)
{
    if (!text || !*text)
        return 0;
    for (int i = 1; i < count; i++) {
        const char *name = name_of(i);
        if (name[0] == text[0] && strcmp(text, name) == 0) /* most differ at once */
            return (uint8_t)i;
    }
    return 0;
}

static const char *state_of(int i)
{
    return conn_state_name((enum conn_state)i);
}

static const char *dir_of(int i)
{
    return direction_name((enum flow_direction)i);
}

static const char *tunnel_of(int i)
{
    return tunnel_name((enum tunnel_kind)i);
}

static bool addr_from_bytes(struct vigil_addr *a, const ProtobufCBinaryData *b)
{
    if (b->len == 4 && b->data) {
        addr_from_v4(a, b->data);
        return true;
    }
    if (b->len == 16 && b->data) {
        memcpy(a->b, b->data, 16);
        return true;
    }
    return false;
}

int flowcodec_from_pb(const Vigil__FlowRecord *pb, struct flow_record *out)
{
    memset(out, 0, sizeof *out);
    if (!pb || pb->src_ip.len != pb->dst_ip.len)
        return VIGIL_EBADMSG;
    if (!addr_from_bytes(&out->src, &pb->src_ip) || !addr_from_bytes(&out->dst, &pb->dst_ip))
        return VIGIL_EBADMSG;
    if (pb->start_ns < 0 || pb->end_ns < pb->start_ns ||
        pb->end_ns / 1000000000 > (int64_t)UINT32_MAX - 86400)
        return VIGIL_EBADMSG;
    if (pb->src_port > 65535 || pb->dst_port > 65535 || pb->proto > 255 || pb->vlan > 4095 ||
        pb->icmp_type > 255 || pb->icmp_code > 255 || pb->dns_qtype > 65535 ||
        pb->dns_rcode > 255 || (unsigned)pb->end_reason >= END_COUNT)
        return VIGIL_EBADMSG;
    out->flow_id = pb->flow_id;
    out->final = pb->final;
    out->end_reason = (uint8_t)pb->end_reason;
    out->start_ns = pb->start_ns;
    out->end_ns = pb->end_ns;
    out->has_ports = pb->has_ports;
    if (pb->has_ports) {
        out->src_port = (uint16_t)pb->src_port;
        out->dst_port = (uint16_t)pb->dst_port;
    }
    out->proto = (uint8_t)pb->proto;
    out->vlan = pb->has_vlan ? (uint16_t)pb->vlan : VLAN_NONE;
    out->tunnel = lookup_name(pb->tunnel, tunnel_of, TUNNEL_COUNT);
    out->has_icmp = pb->has_icmp;
    if (pb->has_icmp) {
        out->icmp_type = (uint8_t)pb->icmp_type;
        out->icmp_code = (uint8_t)pb->icmp_code;
    }
    out->pkts_fwd = pb->pkts_fwd;
    out->bytes_fwd = pb->bytes_fwd;
    out->pkts_rev = pb->pkts_rev;
    out->bytes_rev = pb->bytes_rev;
    out->tcp_flags_fwd = (uint8_t)pb->tcp_flags_fwd;
    out->tcp_flags_rev = (uint8_t)pb->tcp_flags_rev;
    out->state = lookup_name(pb->state, state_of, STATE_COUNT);
    out->has_rtt = pb->has_rtt;
    out->rtt_us = pb->has_rtt ? pb->rtt_us : 0;
    out->retrans_fwd = pb->retrans_fwd;
    out->retrans_rev = pb->retrans_rev;
    out->direction = lookup_name(pb->direction, dir_of, DIR_COUNT);
    copy_str(out->app, sizeof out->app, pb->app);
    out->has_dns = pb->has_dns;
    if (pb->has_dns) {
        copy_str(out->dns_qname, sizeof out->dns_qname, pb->dns_qname);
        out->dns_qtype = (uint16_t)pb->dns_qtype;
    }
    out->has_dns_rcode = pb->has_dns_rcode;
    out->dns_rcode = pb->has_dns_rcode ? (uint8_t)pb->dns_rcode : 0;
    copy_str(out->tls_sni, sizeof out->tls_sni, pb->tls_sni);
    copy_str(out->ja4, sizeof out->ja4, pb->ja4);
    copy_str(out->http_host, sizeof out->http_host, pb->http_host);
    return 0;
}

static uint64_t sat_add(uint64_t a, uint64_t b)
{
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

static uint32_t sat_add32(uint32_t a, uint32_t b)
{
    return a > UINT32_MAX - b ? UINT32_MAX : a + b;
}

void flowcodec_merge(struct sflow *f, const struct flow_record *r)
{
    struct flow_record *m = &f->rec;
    bool newer = r->end_ns >= m->end_ns;

    m->pkts_fwd = sat_add(m->pkts_fwd, r->pkts_fwd);
    m->bytes_fwd = sat_add(m->bytes_fwd, r->bytes_fwd);
    m->pkts_rev = sat_add(m->pkts_rev, r->pkts_rev);
    m->bytes_rev = sat_add(m->bytes_rev, r->bytes_rev);
    m->retrans_fwd = sat_add32(m->retrans_fwd, r->retrans_fwd);
    m->retrans_rev = sat_add32(m->retrans_rev, r->retrans_rev);
    m->tcp_flags_fwd |= r->tcp_flags_fwd;
    m->tcp_flags_rev |= r->tcp_flags_rev;
    if (r->start_ns < m->start_ns)
        m->start_ns = r->start_ns;
    if (r->end_ns > m->end_ns)
        m->end_ns = r->end_ns;
    /* The final record says how the flow ended; until then the newest does. */
    if (r->final || (!m->final && newer)) {
        m->end_reason = r->end_reason;
        if (r->state != STATE_NONE)
            m->state = r->state;
    }
    m->final = m->final || r->final;
    if (!m->has_rtt && r->has_rtt) {
        m->has_rtt = true;
        m->rtt_us = r->rtt_us;
    }
    if (!m->has_icmp && r->has_icmp) {
        m->has_icmp = true;
        m->icmp_type = r->icmp_type;
        m->icmp_code = r->icmp_code;
    }
    if (m->vlan == VLAN_NONE)
        m->vlan = r->vlan;
    if (m->tunnel == TUNNEL_NONE)
        m->tunnel = r->tunnel;
    if (m->direction == DIR_UNKNOWN)
        m->direction = r->direction;
    if (!m->app[0])
        memcpy(m->app, r->app, sizeof m->app);
    if (!m->has_dns && r->has_dns) {
        m->has_dns = true;
        memcpy(m->dns_qname, r->dns_qname, sizeof m->dns_qname);
        m->dns_qtype = r->dns_qtype;
    }
    if (!m->has_dns_rcode && r->has_dns_rcode) {
        m->has_dns_rcode = true;
        m->dns_rcode = r->dns_rcode;
    }
    if (!m->tls_sni[0])
        memcpy(m->tls_sni, r->tls_sni, sizeof m->tls_sni);
    if (!m->ja4[0])
        memcpy(m->ja4, r->ja4, sizeof m->ja4);
    if (!m->http_host[0])
        memcpy(m->http_host, r->http_host, sizeof m->http_host);
    f->records = sat_add32(f->records, 1);
}

static size_t put_addr(uint8_t *p, const struct vigil_addr *a, bool v6)
{
    if (v6) {
        memcpy(p, a->b, 16);
        return 16;
    }
    memcpy(p, a->b + 12, 4);
    return 4;
}

static size_t put_str(uint8_t *p, const char *s, size_t cap)
{
    if (!s[0]) { /* most are absent */
        *p = 0;
        return 1;
    }
    size_t n = strnlen(s, cap - 1);
    size_t k = put_varint(p, n);
    memcpy(p + k, s, n);
    return k + n;
}

size_t flowcodec_encode(const struct sflow *f, uint8_t *buf)
{
    const struct flow_record *r = &f->rec;
    bool v6 = !addr_is_v4(&r->src) || !addr_is_v4(&r->dst);
    uint8_t flags = (uint8_t)((r->final ? F_FINAL : 0) | (r->has_ports ? F_PORTS : 0) |
                              (r->has_icmp ? F_ICMP : 0) | (r->has_rtt ? F_RTT : 0) |
                              (r->has_dns ? F_DNS : 0) | (r->has_dns_rcode ? F_RCODE : 0) |
                              (v6 ? F_V6 : 0) | (r->vlan != VLAN_NONE ? F_VLAN : 0));
    uint8_t *p = buf;

    *p++ = FLOWCODEC_VERSION;
    *p++ = flags;
    *p++ = r->end_reason;
    *p++ = r->proto;
    *p++ = r->state;
    *p++ = r->direction;
    *p++ = r->tunnel;
    p += put_varint(p, f->agent_id);
    p += put_varint(p, r->flow_id);
    p += put_varint(p, (uint64_t)r->end_ns);
    p += put_varint(p, (uint64_t)(r->end_ns - r->start_ns));
    p += put_addr(p, &r->src, v6);
    p += put_addr(p, &r->dst, v6);
    if (r->has_ports) {
        put_be16(p, r->src_port);
        put_be16(p + 2, r->dst_port);
        p += 4;
    }
    if (r->vlan != VLAN_NONE) {
        put_be16(p, r->vlan);
        p += 2;
    }
    if (r->has_icmp) {
        *p++ = r->icmp_type;
        *p++ = r->icmp_code;
    }
    p += put_varint(p, r->pkts_fwd);
    p += put_varint(p, r->bytes_fwd);
    p += put_varint(p, r->pkts_rev);
    p += put_varint(p, r->bytes_rev);
    *p++ = r->tcp_flags_fwd;
    *p++ = r->tcp_flags_rev;
    if (r->has_rtt)
        p += put_varint(p, r->rtt_us);
    p += put_varint(p, r->retrans_fwd);
    p += put_varint(p, r->retrans_rev);
    p += put_varint(p, f->records);
    if (r->has_dns)
        p += put_varint(p, r->dns_qtype);
    if (r->has_dns_rcode)
        *p++ = r->dns_rcode;
    p += put_str(p, r->app, sizeof r->app);
    p += put_str(p, r->has_dns ? r->dns_qname : "", sizeof r->dns_qname);
    p += put_str(p, r->tls_sni, sizeof r->tls_sni);
    p += put_str(p, r->ja4, sizeof r->ja4);
    p += put_str(p, r->http_host, sizeof r->http_host);
    return (size_t)(p - buf);
}

static bool get_addr(struct cursor *c, struct vigil_addr *a, bool v6)
{
    if (v6)
        return cur_bytes(c, a->b, 16);
    uint8_t v4[4];
    if (!cur_bytes(c, v4, 4))
        return false;
    addr_from_v4(a, v4);
    return true;
}

static bool get_str(struct cursor *c, char *dst, size_t cap)
{
    uint64_t n;
    if (!cur_varint(c, &n) || n >= cap || !cur_bytes(c, dst, (size_t)n))
        return false;
    dst[n] = '\0';
    return true;
}

static bool get_u8v(struct cursor *c, uint8_t *v, unsigned max)
{
    return cur_u8(c, v) && *v < max;
}

int flowcodec_decode(const void *data, size_t len, struct sflow *out)
{
    struct cursor c = cur_make(data, len);
    struct flow_record *r = &out->rec;
    uint8_t ver, flags, proto;
    uint64_t v, dur;

    if (!cur_u8(&c, &ver) || ver != FLOWCODEC_VERSION || !cur_u8(&c, &flags))
        return VIGIL_EBADMSG;
    r->agent[0] = '\0';
    r->final = flags & F_FINAL;
    r->has_ports = flags & F_PORTS;
    r->has_icmp = flags & F_ICMP;
    r->has_rtt = flags & F_RTT;
    r->has_dns = flags & F_DNS;
    r->has_dns_rcode = flags & F_RCODE;
    if (!get_u8v(&c, &r->end_reason, END_COUNT) || !cur_u8(&c, &proto) ||
        !get_u8v(&c, &r->state, STATE_COUNT) || !get_u8v(&c, &r->direction, DIR_COUNT) ||
        !get_u8v(&c, &r->tunnel, TUNNEL_COUNT))
        return VIGIL_EBADMSG;
    r->proto = proto;
    if (!cur_varint32(&c, &out->agent_id) || !cur_varint(&c, &r->flow_id) ||
        !cur_varint(&c, &v) || !cur_varint(&c, &dur) || v > INT64_MAX || dur > v)
        return VIGIL_EBADMSG;
    r->end_ns = (int64_t)v;
    r->start_ns = (int64_t)(v - dur);
    if (!get_addr(&c, &r->src, flags & F_V6) || !get_addr(&c, &r->dst, flags & F_V6))
        return VIGIL_EBADMSG;
    r->src_port = r->dst_port = 0;
    if (r->has_ports && (!cur_be16(&c, &r->src_port) || !cur_be16(&c, &r->dst_port)))
        return VIGIL_EBADMSG;
    r->vlan = VLAN_NONE;
    if ((flags & F_VLAN) && !cur_be16(&c, &r->vlan))
        return VIGIL_EBADMSG;
    r->icmp_type = r->icmp_code = 0;
    if (r->has_icmp && (!cur_u8(&c, &r->icmp_type) || !cur_u8(&c, &r->icmp_code)))
        return VIGIL_EBADMSG;
    if (!cur_varint(&c, &r->pkts_fwd) || !cur_varint(&c, &r->bytes_fwd) ||
        !cur_varint(&c, &r->pkts_rev) || !cur_varint(&c, &r->bytes_rev) ||
        !cur_u8(&c, &r->tcp_flags_fwd) || !cur_u8(&c, &r->tcp_flags_rev))
        return VIGIL_EBADMSG;
    r->rtt_us = 0;
    if (r->has_rtt && !cur_varint32(&c, &r->rtt_us))
        return VIGIL_EBADMSG;
    if (!cur_varint32(&c, &r->retrans_fwd) || !cur_varint32(&c, &r->retrans_rev) ||
        !cur_varint32(&c, &out->records))
        return VIGIL_EBADMSG;
    r->dns_qtype = 0;
    if (r->has_dns) {
        uint32_t qt;
        if (!cur_varint32(&c, &qt) || qt > 65535)
            return VIGIL_EBADMSG;
        r->dns_qtype = (uint16_t)qt;
    }
    r->dns_rcode = 0;
    if (r->has_dns_rcode && !cur_u8(&c, &r->dns_rcode))
        return VIGIL_EBADMSG;
    if (!get_str(&c, r->app, sizeof r->app) || !get_str(&c, r->dns_qname, sizeof r->dns_qname) ||
        !get_str(&c, r->tls_sni, sizeof r->tls_sni) || !get_str(&c, r->ja4, sizeof r->ja4) ||
        !get_str(&c, r->http_host, sizeof r->http_host))
        return VIGIL_EBADMSG;
    /* Bytes past the known fields belong to a later, additive layout. */
    return 0;
}

size_t contrib_encode(const struct contrib *c, uint8_t *buf)
{
    bool s4 = addr_is_v4(&c->src), d4 = addr_is_v4(&c->dst);
    uint8_t *p = buf;

    *p++ = JOURNAL_VERSION;
    *p++ = (uint8_t)((s4 ? J_SRC4 : 0) | (d4 ? J_DST4 : 0) | (c->new_flow ? J_NEW : 0) |
                     (c->placed ? J_PLACED : 0) | (c->refs_only ? J_REFS : 0));
    p += put_varint(p, (uint64_t)c->end_ns);
    if (c->placed)
        p += put_varint(p, c->row_sec - (uint32_t)(c->end_ns / 1000000000));
    p += put_addr(p, &c->src, !s4);
    p += put_addr(p, &c->dst, !d4);
    *p++ = c->proto;
    put_be16(p, c->dst_port);
    p += 2;
    p += put_str(p, c->app, sizeof c->app);
    p += put_varint(p, c->pkts_fwd);
    p += put_varint(p, c->bytes_fwd);
    p += put_varint(p, c->pkts_rev);
    p += put_varint(p, c->bytes_rev);
    return (size_t)(p - buf);
}

int contrib_decode(const void *data, size_t len, struct contrib *c)
{
    struct cursor cur = cur_make(data, len);
    uint8_t ver, flags;
    uint64_t end;

    if (!cur_u8(&cur, &ver) || ver != JOURNAL_VERSION || !cur_u8(&cur, &flags) ||
        !cur_varint(&cur, &end) || end > INT64_MAX)
        return VIGIL_EBADMSG;
    c->end_ns = (int64_t)end;
    c->new_flow = flags & J_NEW;
    c->placed = flags & J_PLACED;
    c->refs_only = flags & J_REFS;
    c->row_sec = 0;
    if (c->placed) {
        uint64_t d;
        if (!cur_varint(&cur, &d) || end / 1000000000 + d > UINT32_MAX)
            return VIGIL_EBADMSG;
        c->row_sec = (uint32_t)(end / 1000000000 + d);
    }
    if (!get_addr(&cur, &c->src, !(flags & J_SRC4)) || !get_addr(&cur, &c->dst, !(flags & J_DST4)))
        return VIGIL_EBADMSG;
    if (!cur_u8(&cur, &c->proto) || !cur_be16(&cur, &c->dst_port) ||
        !get_str(&cur, c->app, sizeof c->app) || !cur_varint(&cur, &c->pkts_fwd) ||
        !cur_varint(&cur, &c->bytes_fwd) || !cur_varint(&cur, &c->pkts_rev) ||
        !cur_varint(&cur, &c->bytes_rev))
        return VIGIL_EBADMSG;
    return 0;
}
