/* test_keep.c — which payload bytes reach the flow thread. */
#include "keep.h"

#include <criterion/criterion.h>
#include <string.h>

static uint8_t payload[1500];

static struct pkt tcp_pkt(uint16_t sp, uint16_t dp, uint32_t len, int64_t ts)
{
    struct pkt p = {.ts_ns = ts, .family = 4, .proto = 6, .vlan = 0xffff, .has_ports = true};
    addr_parse("10.0.0.1", &p.src);
    addr_parse("10.0.0.2", &p.dst);
    p.sport = sp;
    p.dport = dp;
    p.payload = payload;
    p.payload_len = p.payload_caplen = len;
    p.ip_len = 40 + len;
    return p;
}

static struct flowtab *table(void)
{
    struct flowtab_config cfg;
    flowtab_config_defaults(&cfg);
    cfg.max_flows = 128;
    return flowtab_create(&cfg, NULL, NULL);
}

Test(keep, data_keeps_a_prefix_and_parsers_get_everything)
{
    struct flowtab *ft = table();
    struct keep_filter *kf = keep_filter_create();
    memset(payload, 'x', sizeof payload);
    struct pkt p = tcp_pkt(40000, 8000, 1400, 1);
    cr_assert_eq(keep_filter_bytes(kf, ft, &p), KEEP_PREFIX);
    memcpy(payload, "GET / HTTP/1.1\r\n", 16);
    p = tcp_pkt(40000, 80, 1400, 2);
    cr_assert_eq(keep_filter_bytes(kf, ft, &p), 1400, "an HTTP request is kept whole");
    p = tcp_pkt(40000, 53, 1400, 3);
    cr_assert_eq(keep_filter_bytes(kf, ft, &p), 1400, "DNS over TCP is kept whole");
    p = tcp_pkt(40000, 8000, 100, 4);
    cr_assert_eq(keep_filter_bytes(kf, ft, &p), 100);
    keep_filter_destroy(kf);
    flowtab_destroy(ft);
}

/* A ClientHello record of 1600 bytes in a 1400-byte segment: the next
 * segments of that client, which do not look like TLS, are kept whole. */
Test(keep, split_client_hello_continuations_are_kept)
{
    struct flowtab *ft = table();
    struct keep_filter *kf = keep_filter_create();
    memset(payload, 'x', sizeof payload);
    const uint8_t start[6] = {0x16, 0x03, 0x01, 0x06, 0x3b, 0x01}; /* record 1595, ClientHello */
    memcpy(payload, start, sizeof start);
    struct pkt hello = tcp_pkt(40000, 443, 1400, 1);
    cr_assert_eq(keep_filter_bytes(kf, ft, &hello), 1400);
    memset(payload, 'y', sizeof payload);
    struct pkt other = tcp_pkt(40001, 443, 1400, 2); /* another connection */
    cr_assert_eq(keep_filter_bytes(kf, ft, &other), KEEP_PREFIX);
    struct pkt cont = tcp_pkt(40000, 443, 1400, 3);
    cr_assert_eq(keep_filter_bytes(kf, ft, &cont), 1400);
    /* long after, the slot has been given up */
    for (int i = 0; i < 20; i++) {
        struct pkt late = tcp_pkt(40000, 443, 1400, 3 + 20 * (int64_t)1000000000);
        keep_filter_bytes(kf, ft, &late);
    }
    struct pkt later = tcp_pkt(40000, 443, 1400, 60 * (int64_t)1000000000);
    cr_assert_eq(keep_filter_bytes(kf, ft, &later), KEEP_PREFIX);
    keep_filter_destroy(kf);
    flowtab_destroy(ft);
}
