/* test_addr.c — address text and CIDR membership. */
#include "addr.h"
#include "err.h"

#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <string.h>

Test(addr, formats_both_families)
{
    struct vigil_addr a;
    char buf[ADDR_STRLEN];
    cr_assert_eq(addr_parse("192.0.2.7", &a), 0);
    cr_assert(addr_is_v4(&a));
    cr_assert_str_eq(addr_format(&a, buf), "192.0.2.7");
    cr_assert_eq(addr_parse("2001:db8::1", &a), 0);
    cr_assert_not(addr_is_v4(&a));
    cr_assert_str_eq(addr_format(&a, buf), "2001:db8::1");
    cr_assert_eq(addr_parse("300.1.1.1", &a), VIGIL_EINVAL);
    cr_assert_eq(addr_parse("", &a), VIGIL_EINVAL);
}

Test(addr, cidr_membership)
{
    struct cidr_set s = {0};
    struct vigil_addr a;
    cr_assert_eq(cidr_set_add(&s, "10.0.0.0/8"), 0);
    cr_assert_eq(cidr_set_add(&s, "192.168.1.128/25"), 0);
    cr_assert_eq(cidr_set_add(&s, "fd00::/8"), 0);
    addr_parse("10.255.1.1", &a);
    cr_assert(cidr_set_contains(&s, &a));
    addr_parse("11.0.0.1", &a);
    cr_assert_not(cidr_set_contains(&s, &a));
    addr_parse("192.168.1.200", &a);
    cr_assert(cidr_set_contains(&s, &a));
    addr_parse("192.168.1.100", &a);
    cr_assert_not(cidr_set_contains(&s, &a));
    addr_parse("fd12::1", &a);
    cr_assert(cidr_set_contains(&s, &a));
    addr_parse("fe80::1", &a);
    cr_assert_not(cidr_set_contains(&s, &a));
}

Test(addr, cidr_rejects_garbage)
{
    struct cidr c;
    cr_assert_eq(cidr_parse("10.0.0.0/33", &c), VIGIL_EINVAL);
    cr_assert_eq(cidr_parse("10.0.0.0/", &c), VIGIL_EINVAL);
    cr_assert_eq(cidr_parse("10.0.0.0/-1", &c), VIGIL_EINVAL);
    cr_assert_eq(cidr_parse("/8", &c), VIGIL_EINVAL);
    cr_assert_eq(cidr_parse("2001:db8::/129", &c), VIGIL_EINVAL);
    cr_assert_eq(cidr_parse("10.1.2.3/8", &c), 0); /* host bits are masked */
    struct vigil_addr a;
    addr_parse("10.9.9.9", &a);
    cr_assert(cidr_contains(&c, &a));
    cr_assert_eq(cidr_parse("0.0.0.0/0", &c), 0);
    addr_parse("2001:db8::1", &a);
    cr_assert_not(cidr_contains(&c, &a)); /* an IPv4 /0 holds IPv4 only */
}

Test(addr, cidr_set_is_bounded)
{
    struct cidr_set s = {0};
    for (int i = 0; i < CIDR_SET_MAX; i++)
        cr_assert_eq(cidr_set_add(&s, "10.0.0.0/8"), 0);
    cr_assert_eq(cidr_set_add(&s, "10.0.0.0/8"), VIGIL_EFULL);
}

/* The IPv6 text is glibc's inet_ntop's, group for group: fixed cases (the
 * IPv4 forms, runs at each end, ties) and addresses whose groups are zero
 * half the time, so every shape of zero run comes up. */
Test(addr, ipv6_text_is_inet_ntops)
{
    static const char *fixed[] = {
        "::", "::1", "::2", "1::", "::ffff:0:1", "::1.2.3.4", "::0.0.1.0", "1:0:0:2:0:0:0:3",
        "1:0:0:2:0:0:3:4", "0:0:1::", "fe80::1:2", "2001:db8:0:0:1:0:0:1", "::fffe:1.2.3.4",
        "0:0:0:0:0:1:1.2.3.4", "1:2:3:4:5:6:7:8", "ffff::", "::ffff",
    };
    char want[INET6_ADDRSTRLEN], got[ADDR_STRLEN];
    struct vigil_addr a;
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) {
        cr_assert_eq(inet_pton(AF_INET6, fixed[i], a.b), 1, "%s", fixed[i]);
        if (addr_is_v4(&a))
            continue;
        inet_ntop(AF_INET6, a.b, want, sizeof want);
        cr_expect_str_eq(addr_format(&a, got), want, "%s", fixed[i]);
    }
    uint64_t x = 0x9e3779b97f4a7c15u;
    for (int n = 0; n < 200000; n++) {
        for (int g = 0; g < 8; g++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            unsigned v = (x & 1) ? 0 : (unsigned)(x >> 8) >> ((x >> 4) & 15);
            a.b[2 * g] = (uint8_t)(v >> 8);
            a.b[2 * g + 1] = (uint8_t)v;
        }
        if (addr_is_v4(&a))
            continue;
        inet_ntop(AF_INET6, a.b, want, sizeof want);
        addr_format(&a, got);
        if (strcmp(got, want) != 0)
            cr_assert_fail("%s, inet_ntop says %s", got, want);
    }
}
