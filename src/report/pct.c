/* pct.c: nearest-rank percentiles (what `dagrun stats` and the history in
 * a run document report).
 *
 * Nearest rank, not interpolation: a percentile is always one of the
 * values measured (a p95 duration is one a run really took), and p50 of an
 * even count is the lower middle value. Invariant: report_percentile
 * reads sorted[rank - 1] with 1 <= rank <= n.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>

#include "report/report.h"

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return (x > y) - (x < y);
}

void report_sort_u64(uint64_t *v, size_t n)
{
	if (n > 1)
		qsort(v, n, sizeof(*v), cmp_u64);
}

int report_percentile(const uint64_t *sorted, size_t n, double p,
		      uint64_t *out)
{
	if (!n || !sorted || !(p >= 0.0 && p <= 100.0))
		return -EINVAL;
	/* ceil(p / 100 * n); the product shaved by a relative 1e-12 so that a
	 * rounding error above an integer (99.9 * 1000 / 100 may come out as
	 * 999.0000000000001) does not move the rank up by one. */
	double x = p * (double)n / 100.0;
	double r = ceil(x * (1.0 - 1e-12));
	size_t rank = r < 1.0 ? 1 : r > (double)n ? n : (size_t)r;
	*out = sorted[rank - 1];
	return 0;
}
