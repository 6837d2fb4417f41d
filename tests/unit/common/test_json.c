/* test_json.c — the JSON writer and the flow record's JSON form. */
#include "clock.h"
#include "flowrec.h"
#include "json.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

Test(json, escapes_hostile_strings)
{
    char buf[256];
    struct json_writer w;
    json_begin(&w, buf, sizeof buf);
    json_key_str(&w, "s", "a\"b\\c\n\x01\xff");
    json_key_i64(&w, "n", -42);
    json_key_u64(&w, "u", UINT64_MAX);
    json_key_bool(&w, "b", true);
    size_t n = json_end(&w);
    cr_assert_gt(n, 0);
    cr_assert_str_eq(buf, "{\"s\":\"a\\\"b\\\\c\\u000a\\u0001\\u00ff\",\"n\":-42,"
                          "\"u\":18446744073709551615,\"b\":true}\n");
}

Test(json, rfc3339_dates)
{
    char ts[32];
    cr_assert_gt(vigil_format_rfc3339(0, ts, sizeof ts), 0);
    cr_assert_str_eq(ts, "1970-01-01T00:00:00.000000Z");
    vigil_format_rfc3339(INT64_C(951782400) * 1000000000 + 999999999, ts, sizeof ts);
    cr_assert_str_eq(ts, "2000-02-29T00:00:00.999999Z");
    vigil_format_rfc3339(INT64_C(4294967296) * 1000000000, ts, sizeof ts);
    cr_assert_str_eq(ts, "2106-02-07T06:28:16.000000Z");
    vigil_format_rfc3339(-1, ts, sizeof ts);
    cr_assert_str_eq(ts, "1969-12-31T23:59:59.999999Z");
    cr_assert_eq(vigil_format_rfc3339(0, ts, 10), 0);
}

/* Against gmtime_r, over times that jump between days and stay within one
 * (the formatter keeps the last day's date), and every number's width. */
Test(json, rfc3339_agrees_with_gmtime_and_u64_with_printf)
{
    uint64_t x = 0x2545f4914f6cdd1du;
    char ts[32], want[64];
    for (int i = 0; i < 100000; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        int64_t sec = (int64_t)(x % INT64_C(9000000000)); /* 1970 to 2255: ns fit in 64 bits */
        if (i % 3)
            sec = sec / 86400 * 86400 + (int64_t)(x >> 40) % 86400; /* often the same day */
        int64_t ns = sec * 1000000000 + (int64_t)((x >> 20) % 1000000000);
        time_t t = (time_t)sec;
        struct tm tm;
        gmtime_r(&t, &tm);
        size_t n = strftime(want, sizeof want, "%Y-%m-%dT%H:%M:%S", &tm);
        snprintf(want + n, sizeof want - n, ".%06dZ", (int)((ns % 1000000000) / 1000));
        cr_assert_eq(vigil_format_rfc3339(ns, ts, sizeof ts), strlen(want));
        cr_assert_str_eq(ts, want);

        char buf[64], num[32];
        struct json_writer w;
        uint64_t v = x >> (x & 63);
        json_begin(&w, buf, sizeof buf);
        json_key_u64(&w, "v", v);
        json_end(&w);
        snprintf(num, sizeof num, "{\"v\":%llu}\n", (unsigned long long)v);
        cr_assert_str_eq(buf, num);
    }
}

Test(json, overflow_is_reported_not_written_past)
{
    char buf[16];
    memset(buf, 'x', sizeof buf);
    struct json_writer w;
    json_begin(&w, buf, 10);
    json_key_str(&w, "key", "a long value");
    cr_assert_eq(json_end(&w), 0);
    cr_assert_eq(buf[10], 'x');
}

Test(json, flow_record_fields)
{
    struct flow_record r;
    memset(&r, 0, sizeof r);
    r.flow_id = 7;
    r.final = true;
    r.end_reason = END_FIN;
    r.start_ns = 1700000000LL * 1000000000LL + 123456789;
    r.end_ns = r.start_ns + 1500000000LL;
    addr_parse("10.0.0.1", &r.src);
    addr_parse("10.0.0.2", &r.dst);
    r.has_ports = true;
    r.src_port = 40000;
    r.dst_port = 443;
    r.proto = 6;
    r.vlan = VLAN_NONE;
    r.pkts_fwd = 3;
    r.bytes_fwd = 180;
    r.state = STATE_SF;
    strcpy(r.tls_sni, "example.com");
    char buf[FLOWREC_JSON_MAX];
    size_t n = flowrec_to_json(&r, buf, sizeof buf);
    cr_assert_gt(n, 0);
    cr_assert(strstr(buf, "\"start\":\"2023-11-14T22:13:20.123456Z\""));
    cr_assert(strstr(buf, "\"duration\":1.500000"));
    cr_assert(strstr(buf, "\"src_ip\":\"10.0.0.1\",\"src_port\":40000"));
    cr_assert(strstr(buf, "\"state\":\"SF\""));
    cr_assert(strstr(buf, "\"end_reason\":\"fin\""));
    cr_assert(strstr(buf, "\"tls_sni\":\"example.com\""));
    cr_assert_null(strstr(buf, "\"vlan\""));
    cr_assert_null(strstr(buf, "dns_qname"));
}

Test(json, longest_record_fits)
{
    struct flow_record r;
    memset(&r, 0, sizeof r); /* every field at its widest */
    r.flow_id = UINT64_MAX;
    r.final = true;
    memset(&r.src, 0xff, sizeof r.src);
    memset(&r.dst, 0xff, sizeof r.dst);
    r.has_ports = r.has_icmp = r.has_rtt = r.has_dns = r.has_dns_rcode = true;
    r.src_port = r.dst_port = UINT16_MAX;
    r.vlan = 4095;
    r.icmp_type = r.icmp_code = UINT8_MAX;
    r.pkts_fwd = r.bytes_fwd = r.pkts_rev = r.bytes_rev = UINT64_MAX;
    r.tcp_flags_fwd = r.tcp_flags_rev = UINT8_MAX;
    r.rtt_us = r.retrans_fwd = r.retrans_rev = UINT32_MAX;
    r.dns_qtype = UINT16_MAX;
    r.dns_rcode = 15;
    memset(r.agent, 0x01, sizeof r.agent - 1);
    r.agent[sizeof r.agent - 1] = '\0';
    r.end_reason = END_IDLE;
    r.state = STATE_SF;
    r.direction = DIR_INBOUND;
    r.tunnel = TUNNEL_GRE;
    r.proto = 6;
    memset(r.app, 0x01, sizeof r.app - 1);
    r.app[sizeof r.app - 1] = '\0';
    char *names[] = {r.dns_qname, r.tls_sni, r.http_host};
    for (int i = 0; i < 3; i++) {
        memset(names[i], 0x01, FLOWREC_NAME_MAX - 1); /* each escapes to 6 bytes */
        names[i][FLOWREC_NAME_MAX - 1] = '\0';
    }
    memset(r.ja4, 'a', sizeof r.ja4 - 1);
    r.ja4[sizeof r.ja4 - 1] = '\0';
    r.start_ns = INT64_MAX; /* 2262-04-11T23:47:16.854775Z */
    r.end_ns = r.start_ns;
    char buf[FLOWREC_JSON_MAX];
    size_t n = flowrec_to_json(&r, buf, sizeof buf);
    cr_assert_gt(n, 0, "the widest record must fit FLOWREC_JSON_MAX");
}
