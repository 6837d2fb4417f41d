/* test_addr.c — address text and CIDR membership. */
#include "addr.h"
#include "err.h"

#include <criterion/criterion.h>
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
