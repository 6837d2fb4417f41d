/* stats.h — the arithmetic behind the analyst's answers (bandwidth
 * percentiles, the share cut, the capacity forecast), kept apart from the
 * store so it is tested on its own.
 *
 * Percentiles are nearest-rank, as links are billed: of n samples sorted
 * ascending, the p-th percentile is the sample at rank ceil(p * n / 100)
 * (1-based). It is always a value that was measured (no interpolation), and
 * the 95th percentile drops exactly the busiest 5 % of samples, rounded
 * down. With n = 0 every percentile is 0.
 *
 * Non-goals: anything approximate (sketches, histograms); callers bound n. */
#ifndef VIGIL_STATS_H
#define VIGIL_STATS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Sorts v[0..n) ascending. */
void stats_sort_u64(uint64_t *v, size_t n);

/* The nearest-rank pct-th percentile (pct in 1..100) of v[0..n), which must
 * be sorted ascending; 0 when n == 0. */
uint64_t stats_percentile(const uint64_t *sorted, size_t n, unsigned pct);

/* The smallest k such that the first k of v[0..n) (sorted descending) sum to
 * at least pct % of total; n when even all of them do not. pct in 1..100. */
size_t stats_share_cut(const uint64_t *desc, size_t n, uint64_t total, unsigned pct);

/* Ordinary least squares y = intercept + slope * x. */
struct linfit {
    double slope, intercept;
    double r2; /* coefficient of determination; 1 when every y is equal */
    size_t n;
};

/* Fits x[0..n), y[0..n). Returns 0, or -1 when n < 2 or every x is equal
 * (no line is defined); *out is then zeroed. */
int stats_linfit(const double *x, const double *y, size_t n, struct linfit *out);

#endif
