/* test_flowtab.c — the flow table on synthetic packets: orientation,
 * TCP states, timeouts on packet time, partial records, eviction,
 * fragments. Records are captured into an array and checked. */
#include "clock.h"
#include "flowtab.h"

#include <criterion/criterion.h>
#include <string.h>

#define MAX_RECS 256
static struct flow_record recs[MAX_RECS];
static int nrecs;

static void collect(void *ctx, const struct flow_record *r)
{
    (void)ctx;
    cr_assert_lt(nrecs, MAX_RECS);
    recs[nrecs++] = *r;
}

static struct flowtab *make_table(uint32_t max_flows)
{
    struct flowtab_config cfg;
    flowtab_config_defaults(&cfg);
    cfg.max_flows = max_flows;
    nrecs = 0;
    struct flowtab *ft = flowtab_create(&cfg, collect, NULL);
    cr_assert_not_null(ft);
    return ft;
}

#define SEC(s) ((int64_t)(s) * NS_PER_SEC)
#define T0 SEC(1700000000)

static struct pkt tcp(const char *src, uint16_t sp, const char *dst, uint16_t dp, uint8_t flags,
                      uint32_t seq, uint32_t payload, int64_t ts)
{
    struct pkt p = {.ts_ns = ts, .family = 4, .proto = 6, .vlan = VLAN_NONE, .has_ports = true};
    addr_parse(src, &p.src);
    addr_parse(dst, &p.dst);
    p.sport = sp;
    p.dport = dp;
    p.tcp_flags = flags;
    p.tcp_seq = seq;
    p.payload_len = payload;
    p.ip_len = 40 + payload;
    return p;
}

static struct pkt udp(const char *src, uint16_t sp, const char *dst, uint16_t dp, uint32_t len,
                      int64_t ts)
{
    struct pkt p = tcp(src, sp, dst, dp, 0, 0, 0, ts);
    p.proto = 17;
    p.payload_len = len;
    p.ip_len = 28 + len;
    return p;
}

#define A "10.0.0.1"
#define B "10.0.0.2"

/* A full handshake, data, FIN both ways: one SF record, oriented A -> B. */
Test(flowtab, tcp_sf_with_rtt_and_linger)
{
    struct flowtab *ft = make_table(1024);
    struct pkt s[] = {
        tcp(A, 40000, B, 80, 0x02, 100, 0, T0),
        tcp(B, 80, A, 40000, 0x12, 500, 0, T0 + 10 * NS_PER_MS),
        tcp(A, 40000, B, 80, 0x10, 101, 0, T0 + 12 * NS_PER_MS),
        tcp(A, 40000, B, 80, 0x18, 101, 100, T0 + 13 * NS_PER_MS),
        tcp(B, 80, A, 40000, 0x18, 501, 1000, T0 + 30 * NS_PER_MS),
        tcp(A, 40000, B, 80, 0x11, 201, 0, T0 + 40 * NS_PER_MS),
        tcp(B, 80, A, 40000, 0x11, 1501, 0, T0 + 41 * NS_PER_MS),
        tcp(A, 40000, B, 80, 0x10, 202, 0, T0 + 42 * NS_PER_MS),
    };
    for (size_t i = 0; i < sizeof s / sizeof s[0]; i++)
        flowtab_packet(ft, &s[i]);
    cr_assert_eq(nrecs, 0);
    flowtab_advance(ft, T0 + SEC(4));
    cr_assert_eq(nrecs, 0, "closed flows linger a few seconds");
    flowtab_advance(ft, T0 + SEC(7));
    cr_assert_eq(nrecs, 1);
    struct flow_record *r = &recs[0];
    cr_assert_eq(r->state, STATE_SF);
    cr_assert_eq(r->end_reason, END_FIN);
    cr_assert(r->final);
    cr_assert_eq(r->src_port, 40000);
    cr_assert_eq(r->pkts_fwd, 5);
    cr_assert_eq(r->pkts_rev, 3);
    cr_assert_eq(r->bytes_fwd, 5 * 40 + 100);
    cr_assert_eq(r->bytes_rev, 3 * 40 + 1000);
    cr_assert(r->has_rtt);
    cr_assert_eq(r->rtt_us, 12000);
    cr_assert_eq(r->start_ns, T0);
    cr_assert_eq(r->end_ns, T0 + 42 * NS_PER_MS);
    flowtab_destroy(ft);
}

/* Seen from the middle: the SYN-ACK comes first, yet the client is the source. */
Test(flowtab, synack_first_orients_to_client)
{
    struct flowtab *ft = make_table(1024);
    struct pkt a = tcp(B, 443, A, 50000, 0x12, 1, 0, T0);
    struct pkt b = tcp(A, 50000, B, 443, 0x10, 1, 0, T0 + 1000);
    flowtab_packet(ft, &a);
    flowtab_packet(ft, &b);
    flowtab_flush(ft, END_SHUTDOWN);
    cr_assert_eq(nrecs, 1);
    char buf[ADDR_STRLEN];
    cr_assert_str_eq(addr_format(&recs[0].src, buf), A);
    cr_assert_eq(recs[0].dst_port, 443);
    cr_assert_eq(recs[0].end_reason, END_SHUTDOWN);
    flowtab_destroy(ft);
}

Test(flowtab, tcp_s0_rej_rsto)
{
    struct flowtab *ft = make_table(1024);
    struct pkt syn = tcp(A, 1, B, 22, 0x02, 1, 0, T0);
    flowtab_packet(ft, &syn); /* S0: no answer */
    struct pkt syn2 = tcp(A, 2, B, 23, 0x02, 1, 0, T0);
    struct pkt rst = tcp(B, 23, A, 2, 0x14, 0, 0, T0 + 1000);
    flowtab_packet(ft, &syn2); /* REJ */
    flowtab_packet(ft, &rst);
    struct pkt e[] = {
        tcp(A, 3, B, 24, 0x02, 1, 0, T0),
        tcp(B, 24, A, 3, 0x12, 9, 0, T0 + 1),
        tcp(A, 3, B, 24, 0x10, 2, 0, T0 + 2),
        tcp(A, 3, B, 24, 0x04, 2, 0, T0 + 3),
    };
    for (int i = 0; i < 4; i++)
        flowtab_packet(ft, &e[i]); /* RSTO */
    flowtab_flush(ft, END_SHUTDOWN);
    cr_assert_eq(nrecs, 3);
    int seen = 0;
    for (int i = 0; i < nrecs; i++) {
        int bit = recs[i].dst_port - 22;
        static const enum conn_state want[] = {STATE_S0, STATE_REJ, STATE_RSTO};
        cr_assert(bit >= 0 && bit < 3);
        cr_assert_eq(recs[i].state, want[bit], "port %d: state %s", recs[i].dst_port,
                     conn_state_name(recs[i].state));
        seen |= 1 << bit;
    }
    cr_assert_eq(seen, 7);
    flowtab_destroy(ft);
}

Test(flowtab, retransmission_counted_once)
{
    struct flowtab *ft = make_table(1024);
    struct pkt s[] = {
        tcp(A, 5, B, 80, 0x02, 0, 0, T0),
        tcp(B, 80, A, 5, 0x12, 0, 0, T0 + 1),
        tcp(A, 5, B, 80, 0x18, 1, 100, T0 + 2),
        tcp(A, 5, B, 80, 0x18, 1, 100, T0 + 3), /* the same segment again */
        tcp(A, 5, B, 80, 0x18, 101, 100, T0 + 4),
    };
    for (int i = 0; i < 5; i++)
        flowtab_packet(ft, &s[i]);
    flowtab_flush(ft, END_SHUTDOWN);
    cr_assert_eq(recs[0].retrans_fwd, 1);
    cr_assert_eq(recs[0].retrans_rev, 0);
    flowtab_destroy(ft);
}

/* Idle timeout on packet time: a 20 s gap splits a UDP conversation in two. */
Test(flowtab, idle_timeout_splits)
{
    struct flowtab *ft = make_table(1024);
    struct pkt a = udp(A, 5000, B, 6000, 10, T0);
    struct pkt b = udp(A, 5000, B, 6000, 10, T0 + SEC(20));
    flowtab_packet(ft, &a);
    flowtab_packet(ft, &b);
    cr_assert_eq(nrecs, 1);
    cr_assert_eq(recs[0].end_reason, END_IDLE);
    cr_assert_eq(recs[0].pkts_fwd, 1);
    flowtab_flush(ft, END_SHUTDOWN);
    cr_assert_eq(nrecs, 2);
    cr_assert_neq(recs[0].flow_id, recs[1].flow_id);
    flowtab_destroy(ft);
}

/* Active timeout: a 150 s flow with a packet every 5 s gives partial records
 * with one flow id, whose counts add up to every packet. */
Test(flowtab, active_timeout_partials)
{
    struct flowtab *ft = make_table(1024);
    int n = 0;
    for (int t = 0; t <= 150; t += 5, n++) {
        struct pkt p = udp(A, 7000, B, 7001, 100, T0 + SEC(t));
        flowtab_packet(ft, &p);
    }
    flowtab_flush(ft, END_SHUTDOWN);
    cr_assert_geq(nrecs, 3);
    uint64_t pkts = 0;
    for (int i = 0; i < nrecs; i++) {
        cr_assert_eq(recs[i].flow_id, recs[0].flow_id);
        cr_assert_eq(recs[i].final, i == nrecs - 1);
        if (i < nrecs - 1)
            cr_assert_eq(recs[i].end_reason, END_ACTIVE);
        pkts += recs[i].pkts_fwd;
    }
    cr_assert_eq(pkts, (uint64_t)n);
    flowtab_destroy(ft);
}

/* A full table evicts, counts, enters emergency mode, and loses no packet. */
Test(flowtab, full_table_evicts_and_counts)
{
    struct flowtab *ft = make_table(64);
    for (int i = 0; i < 200; i++) {
        struct pkt p = udp(A, (uint16_t)(10000 + i), B, 53, 30, T0 + i);
        flowtab_packet(ft, &p);
    }
    struct flowtab_stats st;
    flowtab_get_stats(ft, &st);
    cr_assert_eq(st.evictions, 200 - 64);
    cr_assert_geq(st.emergency_entered, 1);
    cr_assert_eq(st.active_flows, 64);
    int evicted = 0;
    for (int i = 0; i < nrecs; i++)
        evicted += recs[i].end_reason == END_EVICTED;
    cr_assert_eq(evicted, 200 - 64);
    flowtab_flush(ft, END_SHUTDOWN);
    cr_assert_eq(nrecs, 200, "every flow is reported once");
    flowtab_destroy(ft);
}

/* Later fragments join their first fragment's flow, even when they come first. */
Test(flowtab, fragments_join_their_flow)
{
    struct flowtab *ft = make_table(1024);
    struct pkt later = udp(A, 0, B, 0, 0, T0);
    later.has_ports = false;
    later.frag = FRAG_LATER;
    later.frag_id = 9;
    later.ip_len = 500;
    struct pkt first = udp(A, 1234, B, 123, 1472, T0 + 1);
    first.frag = FRAG_FIRST;
    first.frag_id = 9;
    first.ip_len = 1500;
    flowtab_packet(ft, &later); /* arrives before its first fragment */
    flowtab_packet(ft, &first);
    struct pkt later2 = later;
    later2.ts_ns = T0 + 2;
    flowtab_packet(ft, &later2);
    flowtab_flush(ft, END_SHUTDOWN);
    cr_assert_eq(nrecs, 1);
    cr_assert_eq(recs[0].dst_port, 123);
    cr_assert_eq(recs[0].pkts_fwd, 3);
    cr_assert_eq(recs[0].bytes_fwd, 2500);
    cr_assert_eq(recs[0].start_ns, T0);
    flowtab_destroy(ft);
}

Test(flowtab, direction_from_local_nets)
{
    struct flowtab_config cfg;
    struct cidr_set nets = {0};
    cidr_set_add(&nets, "10.0.0.0/8");
    flowtab_config_defaults(&cfg);
    cfg.max_flows = 128;
    cfg.local_nets = &nets;
    nrecs = 0;
    struct flowtab *ft = flowtab_create(&cfg, collect, NULL);
    struct pkt out = udp(A, 40000, "8.8.8.8", 53, 30, T0);
    struct pkt in = udp("8.8.4.4", 40000, B, 2000, 30, T0);
    struct pkt internal = udp(A, 40001, B, 2001, 30, T0);
    flowtab_packet(ft, &out);
    flowtab_packet(ft, &in);
    flowtab_packet(ft, &internal);
    flowtab_flush(ft, END_SHUTDOWN);
    cr_assert_eq(nrecs, 3);
    for (int i = 0; i < 3; i++) {
        if (recs[i].dst_port == 53)
            cr_assert_eq(recs[i].direction, DIR_OUTBOUND);
        else if (recs[i].dst_port == 2000)
            cr_assert_eq(recs[i].direction, DIR_INBOUND);
        else
            cr_assert_eq(recs[i].direction, DIR_INTERNAL);
    }
    flowtab_destroy(ft);
}

Test(flowtab, rejects_bad_config)
{
    struct flowtab_config cfg;
    flowtab_config_defaults(&cfg);
    cfg.max_flows = 1;
    cr_assert_null(flowtab_create(&cfg, collect, NULL));
    flowtab_config_defaults(&cfg);
    cfg.idle_ns = 0;
    cr_assert_null(flowtab_create(&cfg, collect, NULL));
}
