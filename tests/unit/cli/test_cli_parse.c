/* test_cli_parse.c — the CLI's own parsing and output: RFC 3339 and
 * --since/--until words into nanoseconds, and the JSON Lines / CSV
 * writers (types, absent cells, quoting). Expected instants were computed
 * independently (Python's datetime) and are written out as numbers. */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "clock.h"
#include "err.h"

#define S(x) ((int64_t)(x) * NS_PER_SEC)

Test(cli_time, rfc3339_instants)
{
    static const struct {
        const char *text;
        int64_t ns;
    } cases[] = {
        {"1970-01-01", 0},
        {"2026-01-01T00:00:00Z", S(1767225600)},
        {"2026-01-01", S(1767225600)},
        {"2024-02-29T12:34:56Z", S(1709210096)},
        {"2026-11-26T21:50:40.5Z", S(1795729840) + 500000000},
        {"2026-11-26T21:50:40.123456789Z", S(1795729840) + 123456789},
        {"2026-11-26T21:50:40.1234567891Z", S(1795729840) + 123456789}, /* beyond ns: cut */
        {"2026-11-26T23:50:40+02:00", S(1795729840)},
        {"2026-11-26T19:20:40-02:30", S(1795729840)},
        {"2000-03-01t00:00:00z", S(951868800)},
        {"2026-06-30 23:59:60Z", S(1782864000)}, /* a leap second reads as the next one */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int64_t ns = -1;
        cr_expect_eq(cli_parse_rfc3339(cases[i].text, &ns), 0, "%s", cases[i].text);
        cr_expect_eq(ns, cases[i].ns, "%s: %lld, want %lld", cases[i].text, (long long)ns,
                     (long long)cases[i].ns);
    }
}

Test(cli_time, rfc3339_refusals)
{
    static const char *const bad[] = {
        "", "2026", "2026-1-01", "2026-13-01", "2026-00-10", "2026-02-29", "2023-02-29T00:00:00Z",
        "2026-04-31", "1969-12-31", "2026-01-01T00:00:00", /* no zone: ambiguous */
        "2026-01-01T24:00:00Z", "2026-01-01T00:60:00Z", "2026-01-01T00:00:61Z",
        "2026-01-01T00:00:00.Z", "2026-01-01T00:00:00+0200", "2026-01-01T00:00:00Z ",
        "2026-01-01X", "+2026-01-01", "2026-01-01T00:00Z", "9999999-01-01",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int64_t ns = 42;
        cr_expect_eq(cli_parse_rfc3339(bad[i], &ns), VIGIL_EINVAL, "\"%s\" accepted", bad[i]);
        cr_expect_eq(ns, 42, "\"%s\" wrote a value", bad[i]);
    }
}

Test(cli_time, when_words)
{
    const int64_t now = S(1795729840);
    int64_t ns;
    cr_assert_eq(cli_parse_when("all", now, &ns), 0);
    cr_expect_eq(ns, 0);
    cr_assert_eq(cli_parse_when("now", now, &ns), 0);
    cr_expect_eq(ns, now);
    cr_assert_eq(cli_parse_when("90s", now, &ns), 0);
    cr_expect_eq(ns, now - S(90));
    cr_assert_eq(cli_parse_when("1h", now, &ns), 0);
    cr_expect_eq(ns, now - S(3600));
    cr_assert_eq(cli_parse_when("7d", now, &ns), 0);
    cr_expect_eq(ns, now - S(7 * 86400));
    cr_assert_eq(cli_parse_when("2026-01-01", now, &ns), 0);
    cr_expect_eq(ns, S(1767225600));
    /* further back than the epoch: clamps to the epoch, never negative */
    cr_assert_eq(cli_parse_when("100000d", S(1000), &ns), 0);
    cr_expect_eq(ns, 0);
    cr_expect_neq(cli_parse_when("yesterday", now, &ns), 0);
    cr_expect_neq(cli_parse_when("-1h", now, &ns), 0);
    cr_expect_neq(cli_parse_when("1 h", now, &ns), 0);
}

Test(cli_output, format_names)
{
    enum out_format f = OUT_TABLE;
    cr_expect_eq(output_format_parse("json", &f), 0);
    cr_expect_eq(f, OUT_JSON);
    cr_expect_eq(output_format_parse("csv", &f), 0);
    cr_expect_eq(f, OUT_CSV);
    cr_expect_eq(output_format_parse("table", &f), 0);
    cr_expect_eq(f, OUT_TABLE);
    cr_expect_eq(output_format_parse("JSON", &f), VIGIL_EINVAL);
    cr_expect_eq(output_format_parse("xml", &f), VIGIL_EINVAL);
}

/* Writes the response in format f to a memory stream; returns malloc'd text. */
static char *render(enum out_format f, const Vigil__QueryResponse *r)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *fp = open_memstream(&buf, &len);
    cr_assert_not_null(fp);
    cr_assert_eq(output_write(fp, f, r, NULL, S(1795729840)), 0);
    fclose(fp);
    return buf;
}

static Vigil__Row *row_of(char **cells, size_t n)
{
    Vigil__Row *row = malloc(sizeof *row);
    cr_assert_not_null(row);
    vigil__row__init(row);
    row->cells = cells;
    row->n_cells = n;
    return row;
}

Test(cli_output, json_types_and_absent_cells)
{
    char *cols[] = {"flow_id", "final", "src_ip", "dns_qname", "bytes_fwd", "share", "app"};
    char *r1[] = {"7", "true", "10.0.0.1", "", "1500", "0.250000", "dns"};
    /* a numeric column whose cell is no number stays a string: valid JSON */
    char *r2[] = {"012", "maybe", "::1", "a\"b\\c\n", "-3", "1e5", ""};
    Vigil__Row *rows[] = {row_of(r1, 7), row_of(r2, 7)};
    Vigil__QueryResponse resp = VIGIL__QUERY_RESPONSE__INIT;
    resp.ok = 1;
    resp.columns = cols;
    resp.n_columns = 7;
    resp.rows = rows;
    resp.n_rows = 2;

    char *out = render(OUT_JSON, &resp);
    cr_expect_str_eq(out,
                     "{\"flow_id\":7,\"final\":true,\"src_ip\":\"10.0.0.1\",\"bytes_fwd\":1500,"
                     "\"share\":0.250000,\"app\":\"dns\"}\n"
                     "{\"flow_id\":\"012\",\"final\":\"maybe\",\"src_ip\":\"::1\","
                     "\"dns_qname\":\"a\\\"b\\\\c\\n\",\"bytes_fwd\":\"-3\",\"share\":\"1e5\"}\n");
    free(out);

    out = render(OUT_CSV, &resp);
    cr_expect_str_eq(out, "flow_id,final,src_ip,dns_qname,bytes_fwd,share,app\n"
                          "7,true,10.0.0.1,,1500,0.250000,dns\n"
                          "012,maybe,::1,\"a\"\"b\\c\n\",-3,1e5,\n");
    free(out);
    free(rows[0]);
    free(rows[1]);
}
