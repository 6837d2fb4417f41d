/* test_stats.c — nearest-rank percentiles, the share cut and the
 * least-squares line (aggregator/stats.c), each checked against its
 * definition computed another way. */
#include <criterion/criterion.h>

#include <math.h>
#include <stdlib.h>

#include "stats.h"

/* The definition: the smallest sample v such that at least pct % of the
 * samples are <= v (counting, no ranks). */
static uint64_t by_counting(const uint64_t *v, size_t n, unsigned pct)
{
    uint64_t best = UINT64_MAX;
    for (size_t i = 0; i < n; i++) {
        size_t le = 0;
        for (size_t j = 0; j < n; j++)
            le += v[j] <= v[i];
        if (le * 100 >= (size_t)pct * n && v[i] < best)
            best = v[i];
    }
    return n ? best : 0;
}

Test(stats, percentile_matches_definition)
{
    unsigned seed = 12345;
    for (size_t n = 1; n <= 120; n++) {
        uint64_t v[120], s[120];
        for (size_t i = 0; i < n; i++)
            v[i] = s[i] = (uint64_t)(rand_r(&seed) % 50); /* ties on purpose */
        stats_sort_u64(s, n);
        for (size_t i = 1; i < n; i++)
            cr_assert_leq(s[i - 1], s[i]);
        static const unsigned pcts[] = {1, 50, 95, 99, 100};
        for (size_t k = 0; k < sizeof pcts / sizeof pcts[0]; k++)
            cr_assert_eq(stats_percentile(s, n, pcts[k]), by_counting(v, n, pcts[k]),
                         "n=%zu p%u", n, pcts[k]);
    }
}

Test(stats, percentile_billing_cases)
{
    /* 20 samples 1..20: p95 drops the top one (rank 19), p50 is rank 10 */
    uint64_t v[20];
    for (int i = 0; i < 20; i++)
        v[i] = (uint64_t)i + 1;
    cr_assert_eq(stats_percentile(v, 20, 95), 19);
    cr_assert_eq(stats_percentile(v, 20, 50), 10);
    cr_assert_eq(stats_percentile(v, 20, 100), 20);
    /* 5 samples (five minutes in a 5-minute step): p95 is the largest */
    cr_assert_eq(stats_percentile(v, 5, 95), 5);
    cr_assert_eq(stats_percentile(v, 0, 95), 0);
    /* 8640 five-minute samples of a month: p95 is rank 8208 */
    uint64_t *m = malloc(8640 * sizeof *m);
    cr_assert_not_null(m);
    for (int i = 0; i < 8640; i++)
        m[i] = (uint64_t)i;
    cr_assert_eq(stats_percentile(m, 8640, 95), 8207);
    free(m);
}

Test(stats, share_cut_is_smallest_prefix)
{
    unsigned seed = 99;
    for (int round = 0; round < 500; round++) {
        size_t n = (size_t)(rand_r(&seed) % 30) + 1;
        uint64_t v[30], total = 0;
        for (size_t i = 0; i < n; i++)
            v[i] = (uint64_t)(rand_r(&seed) % 1000);
        /* descending */
        for (size_t i = 0; i < n; i++)
            for (size_t j = i + 1; j < n; j++)
                if (v[j] > v[i]) {
                    uint64_t t = v[i];
                    v[i] = v[j];
                    v[j] = t;
                }
        for (size_t i = 0; i < n; i++)
            total += v[i];
        unsigned pct = (unsigned)(rand_r(&seed) % 100) + 1;
        size_t want = n;
        uint64_t cum = 0;
        for (size_t i = 0; i < n; i++) {
            cum += v[i];
            if (cum * 100 >= (uint64_t)pct * total) { /* exact: small numbers */
                want = i + 1;
                break;
            }
        }
        cr_assert_eq(stats_share_cut(v, n, total, pct), want, "round %d", round);
    }
}

Test(stats, share_cut_large_totals)
{
    /* byte counts near 2^62 must not overflow the comparison */
    uint64_t v[3] = {UINT64_C(1) << 61, UINT64_C(1) << 60, UINT64_C(1) << 60};
    uint64_t total = (UINT64_C(1) << 61) + (UINT64_C(1) << 61);
    cr_assert_eq(stats_share_cut(v, 3, total, 50), 1);
    cr_assert_eq(stats_share_cut(v, 3, total, 51), 2);
    cr_assert_eq(stats_share_cut(v, 3, total, 75), 2);
    cr_assert_eq(stats_share_cut(v, 3, total, 76), 3);
    cr_assert_eq(stats_share_cut(v, 3, total, 100), 3);
    /* a total larger than the groups listed: all of them */
    cr_assert_eq(stats_share_cut(v, 3, total * 2, 80), 3);
}

Test(stats, linfit_known_values)
{
    double x[] = {0, 1, 2, 3}, y[] = {1, 3, 2, 5};
    struct linfit f;
    cr_assert_eq(stats_linfit(x, y, 4, &f), 0);
    /* by hand: sxy = 5.5, sxx = 5 */
    cr_assert_float_eq(f.slope, 1.1, 1e-12);
    cr_assert_float_eq(f.intercept, 1.1, 1e-12);
    /* r2 = sxy^2 / (sxx syy), syy = 8.75 */
    cr_assert_float_eq(f.r2, 5.5 * 5.5 / (5 * 8.75), 1e-12);
}

Test(stats, linfit_recovers_a_line_at_epoch_days)
{
    /* days since the epoch (~20,000) with a steep slope: centred sums keep it exact */
    double x[90], y[90];
    for (int i = 0; i < 90; i++) {
        x[i] = 20454.5 + i;
        y[i] = 3e8 + 2.5e7 * (x[i] - 20454.5);
    }
    struct linfit f;
    cr_assert_eq(stats_linfit(x, y, 90, &f), 0);
    cr_assert(fabs(f.slope - 2.5e7) < 1e-3, "slope %f", f.slope);
    cr_assert(fabs(f.intercept + 2.5e7 * 20454.5 - 3e8) < 1.0, "intercept %f", f.intercept);
    cr_assert_float_eq(f.r2, 1.0, 1e-9);
}

Test(stats, linfit_refuses_degenerate)
{
    double x[] = {5, 5, 5}, y[] = {1, 2, 3};
    struct linfit f;
    cr_assert_eq(stats_linfit(x, y, 3, &f), -1);
    cr_assert_eq(stats_linfit(x, y, 1, &f), -1);
    double x2[] = {1, 2, 3}, y2[] = {7, 7, 7};
    cr_assert_eq(stats_linfit(x2, y2, 3, &f), 0);
    cr_assert_float_eq(f.slope, 0.0, 1e-12);
    cr_assert_float_eq(f.r2, 1.0, 1e-12);
}
