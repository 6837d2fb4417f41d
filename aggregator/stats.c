/* stats.c — nearest-rank percentiles, the share cut and a least-squares
 * line (see stats.h). */
#include "stats.h"

#include <stdlib.h>
#include <string.h>

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

void stats_sort_u64(uint64_t *v, size_t n)
{
    if (n > 1)
        qsort(v, n, sizeof *v, cmp_u64);
}

uint64_t stats_percentile(const uint64_t *sorted, size_t n, unsigned pct)
{
    if (n == 0)
        return 0;
    if (pct == 0)
        pct = 1;
    if (pct > 100)
        pct = 100;
    /* integer arithmetic: 0.95 * 20 must be rank 19, not 19.000000000000004 */
    size_t rank = (size_t)(((uint64_t)pct * n + 99) / 100);
    if (rank < 1)
        rank = 1;
    return sorted[rank - 1];
}

size_t stats_share_cut(const uint64_t *desc, size_t n, uint64_t total, unsigned pct)
{
    /* cum >= total * pct / 100 exactly, for an integer cum: cum >= the
     * ceiling, computed without overflow as (total / 100) * pct plus the
     * remainder's part rounded up */
    uint64_t want = total / 100 * pct + (total % 100 * pct + 99) / 100;
    uint64_t cum = 0;
    for (size_t i = 0; i < n; i++) {
        cum += desc[i];
        if (cum >= want)
            return i + 1;
    }
    return n;
}

int stats_linfit(const double *x, const double *y, size_t n, struct linfit *out)
{
    memset(out, 0, sizeof *out);
    if (n < 2)
        return -1;
    /* centred sums: stable when x are large (days since the epoch) */
    double mx = 0, my = 0;
    for (size_t i = 0; i < n; i++) {
        mx += x[i];
        my += y[i];
    }
    mx /= (double)n;
    my /= (double)n;
    double sxx = 0, sxy = 0, syy = 0;
    for (size_t i = 0; i < n; i++) {
        double dx = x[i] - mx, dy = y[i] - my;
        sxx += dx * dx;
        sxy += dx * dy;
        syy += dy * dy;
    }
    if (sxx == 0)
        return -1;
    out->slope = sxy / sxx;
    out->intercept = my - out->slope * mx;
    out->r2 = syy == 0 ? 1.0 : (sxy * sxy) / (sxx * syy);
    out->n = n;
    return 0;
}
