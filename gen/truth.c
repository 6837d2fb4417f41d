/* truth.c — JSON Lines writer for the ground truth, using common/json.h. */
#include "truth.h"

#include "addr.h"
#include "clock.h"
#include "json.h"

#include <errno.h>
#include <string.h>

void truth_acc_reset(struct truth_acc *a)
{
    memset(a, 0, sizeof *a);
}

int truth_open(struct truth_writer *w, const char *path)
{
    w->records = 0;
    w->f = fopen(path, "w");
    return w->f ? 0 : -errno;
}

static void key_addr(struct json_writer *j, const char *key, const struct pkt_ends *e, int side)
{
    struct vigil_addr a;
    char text[ADDR_STRLEN];
    if (e->ipver == 4)
        addr_from_v4(&a, e->ip[side]);
    else
        memcpy(a.b, e->ip[side], 16);
    json_key_str(j, key, addr_format(&a, text));
}

void truth_write(struct truth_writer *w, const struct truth_flow *fl, const struct truth_acc *a)
{
    if (!w->f)
        return;
    const struct pkt_ends *e = fl->ends;
    bool ports = e->proto == 6 || e->proto == 17;
    char buf[2048];
    char ts[32];
    struct json_writer j;

    json_begin(&j, buf, sizeof buf);
    key_addr(&j, "src_ip", e, 0);
    if (ports)
        json_key_u64(&j, "src_port", e->port[0]);
    key_addr(&j, "dst_ip", e, 1);
    if (ports)
        json_key_u64(&j, "dst_port", e->port[1]);
    json_key_u64(&j, "proto", e->proto);
    if (e->vlan != PKT_VLAN_NONE)
        json_key_u64(&j, "vlan", e->vlan);
    if (fl->icmp_type >= 0) {
        json_key_u64(&j, "icmp_type", (uint64_t)fl->icmp_type);
        json_key_u64(&j, "icmp_code", (uint64_t)fl->icmp_code);
    }
    json_key_u64(&j, "pkts_fwd", a->pkts[0]);
    json_key_u64(&j, "bytes_fwd", a->bytes[0]);
    json_key_u64(&j, "pkts_rev", a->pkts[1]);
    json_key_u64(&j, "bytes_rev", a->bytes[1]);
    if (e->proto == 6) {
        json_key_u64(&j, "tcp_flags_fwd", a->flags[0]);
        json_key_u64(&j, "tcp_flags_rev", a->flags[1]);
        if (fl->state && fl->state[0])
            json_key_str(&j, "state", fl->state);
        if (a->syn_ns && a->hs_ack_ns)
            json_key_u64(&j, "rtt_us", (uint64_t)(a->hs_ack_ns - a->syn_ns) / 1000);
        json_key_u64(&j, "retrans_fwd", a->retrans[0]);
        json_key_u64(&j, "retrans_rev", a->retrans[1]);
    }
    if (fl->app && fl->app[0])
        json_key_str(&j, "app", fl->app);
    if (fl->dns_qname && fl->dns_qname[0]) {
        json_key_str(&j, "dns_qname", fl->dns_qname);
        if (fl->dns_qtype >= 0)
            json_key_u64(&j, "dns_qtype", (uint64_t)fl->dns_qtype);
        if (fl->dns_rcode >= 0)
            json_key_u64(&j, "dns_rcode", (uint64_t)fl->dns_rcode);
    }
    if (fl->tls_sni && fl->tls_sni[0])
        json_key_str(&j, "tls_sni", fl->tls_sni);
    if (fl->http_host && fl->http_host[0])
        json_key_str(&j, "http_host", fl->http_host);
    if (vigil_format_rfc3339(a->first_ns, ts, sizeof ts))
        json_key_str(&j, "start", ts);
    if (vigil_format_rfc3339(a->last_ns, ts, sizeof ts))
        json_key_str(&j, "end", ts);
    if (fl->note && fl->note[0])
        json_key_str(&j, "note", fl->note);
    size_t n = json_end(&j);
    if (n) {
        fwrite(buf, 1, n, w->f);
        w->records++;
    }
}

int truth_close(struct truth_writer *w)
{
    if (!w->f)
        return 0;
    int bad = ferror(w->f);
    if (fclose(w->f) != 0)
        bad = 1;
    w->f = NULL;
    return bad ? -EIO : 0;
}
