/* test_svg.c — the report's escaping (cli/svg.c), its charts' counts, and
 * the terminal sparklines (cli/sparkline.c). */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analyst.h"

static char *escaped(const char *in)
{
    static char buf[512];
    svg_escape_buf(buf, sizeof buf, in);
    return buf;
}

Test(svg, escapes_markup)
{
    cr_assert_str_eq(escaped("<script>alert('x')</script>"),
                     "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;");
    cr_assert_str_eq(escaped("a&b\"c"), "a&amp;b&quot;c");
    cr_assert_str_eq(escaped("plain.example.com"), "plain.example.com");
}

Test(svg, replaces_controls_and_bad_utf8)
{
    /* a NUL-free string with a control byte, a lone continuation byte, an
     * overlong '<' (C0 BC), a surrogate (ED A0 80) and a truncated sequence */
    cr_assert_str_eq(escaped("a\x01" "b"), "a\xef\xbf\xbd" "b");
    cr_assert_str_eq(escaped("\x80"), "\xef\xbf\xbd");
    cr_assert_str_eq(escaped("\xc0\xbc"), "\xef\xbf\xbd\xef\xbf\xbd");
    cr_assert_str_eq(escaped("\xed\xa0\x80"), "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
    cr_assert_str_eq(escaped("x\xe2\x82"), "x\xef\xbf\xbd\xef\xbf\xbd");
    /* valid multi-byte text passes through */
    cr_assert_str_eq(escaped("caf\xc3\xa9 \xe2\x96\x81 \xf0\x9f\x98\x80"),
                     "caf\xc3\xa9 \xe2\x96\x81 \xf0\x9f\x98\x80");
}

Test(svg, buffer_cut_at_character_boundary)
{
    char small[8];
    size_t n = svg_escape_buf(small, sizeof small, "ab&cd");
    /* "ab&amp;" is 7 bytes: fits exactly with the NUL */
    cr_assert_eq(n, 7);
    cr_assert_str_eq(small, "ab&amp;");
    n = svg_escape_buf(small, 5, "ab&cd");
    cr_assert_str_eq(small, "ab"); /* never half an entity */
    cr_assert_eq(n, 2);
}

/* Writes a chart to memory and returns it (free it). */
static char *draw_lines(size_t npts, size_t nseries, const char *name)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *fp = open_memstream(&buf, &len);
    int64_t t[64];
    double v[4][64];
    struct svg_series s[4];
    for (size_t i = 0; i < npts; i++) {
        t[i] = (int64_t)i * 60000000000LL;
        for (size_t k = 0; k < nseries; k++)
            v[k][i] = (double)(i * (k + 1));
    }
    for (size_t k = 0; k < nseries; k++)
        s[k] = (struct svg_series){name, v[k]};
    struct svg_axis ax = {t, npts, "bit/s"};
    svg_stacked(fp, "x\"y", "title <b>", &ax, s, nseries);
    fclose(fp);
    return buf;
}

static size_t count(const char *hay, const char *needle)
{
    size_t n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

Test(svg, chart_declares_and_draws_its_points)
{
    char *svg = draw_lines(17, 3, "t<l>s");
    cr_assert(strstr(svg, "data-series=\"3\" data-points=\"17\""));
    cr_assert_eq(count(svg, "<polyline class=\"series\""), 3);
    /* each polyline has exactly 17 coordinate pairs */
    const char *p = svg;
    for (int k = 0; k < 3; k++) {
        p = strstr(p, "<polyline class=\"series\"");
        /* the points attribute itself, not data-points */
        const char *pts = strstr(p, "\" points=\"") + 10, *end = strchr(pts, '"');
        size_t pairs = 0;
        for (const char *c = pts; c < end; c++)
            pairs += *c == ',';
        cr_assert_eq(pairs, 17);
        p = end;
    }
    /* names and ids from the network are escaped, never markup */
    cr_assert_null(strstr(svg, "t<l>s"));
    cr_assert(strstr(svg, "t&lt;l&gt;s"));
    cr_assert(strstr(svg, "data-chart=\"x&quot;y\""));
    cr_assert_null(strstr(svg, "<b>"));
    free(svg);
}

Test(sparkline, levels_ascii_and_utf8)
{
    double v[8] = {0, 1, 2, 3, 4, 5, 6, 7};
    char out[SPARK_MAX_BYTES];
    cr_assert_str_eq(sparkline(out, sizeof out, v, 8, 64, false), "_.-:=+*#");
    cr_assert_str_eq(sparkline(out, sizeof out, v, 8, 64, true),
                     "\u2581\u2582\u2583\u2584\u2585\u2586\u2587\u2588");
    double z[3] = {0, 0, 0};
    cr_assert_str_eq(sparkline(out, sizeof out, z, 3, 64, false), "___");
}

Test(sparkline, narrowing_keeps_the_peak)
{
    double v[100] = {0};
    v[57] = 10; /* one spike among 100 values shown in 10 columns */
    char out[SPARK_MAX_BYTES];
    sparkline(out, sizeof out, v, 100, 10, false);
    cr_assert_str_eq(out, "_____#____");
}

Test(sparkline, locale_detection)
{
    setenv("LC_ALL", "", 1);
    setenv("LC_CTYPE", "en_US.UTF-8", 1);
    cr_assert(sparkline_utf8());
    setenv("LC_ALL", "C", 1);
    cr_assert_not(sparkline_utf8());
    unsetenv("LC_ALL");
    setenv("LC_CTYPE", "C.utf8", 1);
    cr_assert(sparkline_utf8());
    unsetenv("LC_CTYPE");
    setenv("LANG", "POSIX", 1);
    cr_assert_not(sparkline_utf8());
}

Test(bitrate, parses_link_speeds)
{
    uint64_t b;
    cr_assert_eq(parse_bit_rate("10G", &b), 0);
    cr_assert_eq(b, 10000000000ULL);
    cr_assert_eq(parse_bit_rate("2.5Gbit/s", &b), 0);
    cr_assert_eq(b, 2500000000ULL);
    cr_assert_eq(parse_bit_rate("100M", &b), 0);
    cr_assert_eq(b, 100000000ULL);
    cr_assert_eq(parse_bit_rate("800000", &b), 0);
    cr_assert_eq(b, 800000ULL);
    cr_assert_neq(parse_bit_rate("10X", &b), 0);
    cr_assert_neq(parse_bit_rate("-1G", &b), 0);
    cr_assert_neq(parse_bit_rate("", &b), 0);
    cr_assert_neq(parse_bit_rate("G", &b), 0);
}
