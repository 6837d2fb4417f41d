/* test_cursor.c — bounds checks of the cursor accessors. */
#include "cursor.h"

#include <criterion/criterion.h>

Test(cursor, reads_big_and_little_endian)
{
    const uint8_t b[] = {0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0};
    struct cursor c = cur_make(b, sizeof b);
    uint16_t v16;
    uint32_t v32;
    cr_assert(cur_be16(&c, &v16));
    cr_assert_eq(v16, 0x1234);
    cr_assert(cur_le16(&c, &v16));
    cr_assert_eq(v16, 0x7856);
    cr_assert(cur_be32(&c, &v32));
    cr_assert_eq(v32, 0x9abcdef0u);
    cr_assert_eq(cur_left(&c), 0);
}

Test(cursor, short_reads_fail_without_moving)
{
    const uint8_t b[] = {1, 2, 3};
    struct cursor c = cur_make(b, sizeof b);
    uint32_t v32;
    uint8_t out[4];
    cr_assert_not(cur_be32(&c, &v32));
    cr_assert_not(cur_bytes(&c, out, 4));
    cr_assert_not(cur_skip(&c, 4));
    cr_assert_eq(cur_left(&c), 3);
    cr_assert(cur_skip(&c, 3));
    uint8_t v8;
    cr_assert_not(cur_u8(&c, &v8));
}

Test(cursor, huge_lengths_cannot_wrap)
{
    const uint8_t b[4] = {0};
    struct cursor c = cur_make(b, sizeof b);
    cr_assert_not(cur_skip(&c, SIZE_MAX));
    cr_assert_not(cur_has(&c, SIZE_MAX - 1));
    uint8_t v;
    cr_assert_not(cur_peek_u8(&c, SIZE_MAX, &v));
    cr_assert(cur_peek_u8(&c, 3, &v));
    cr_assert_not(cur_peek_u8(&c, 4, &v));
}

Test(cursor, sub_and_limit)
{
    const uint8_t b[] = {1, 2, 3, 4, 5, 6};
    struct cursor c = cur_make(b, sizeof b), s;
    cr_assert(cur_sub(&c, 2, &s));
    cr_assert_eq(cur_left(&s), 2);
    cr_assert_eq(cur_left(&c), 4);
    cr_assert_not(cur_sub(&c, 5, &s));
    cur_limit(&c, 1);
    cr_assert_eq(cur_left(&c), 1);
    cur_limit(&c, 100); /* never grows */
    cr_assert_eq(cur_left(&c), 1);
}
