/* backoff.c: retry delay formulas; see backoff.h. */
#include "backoff.h"

#include <math.h>

double backoff_random(uint64_t *state)
{
	uint64_t x = *state;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*state = x;
	return (double)((x * 0x2545F4914F6CDD1Dull) >> 11) * 0x1.0p-53;
}

static uint64_t base_delay(const struct dr_retry *r, uint32_t n)
{
	double d = (double)r->initial_delay_ms;
	double f = r->backoff_factor >= 1.0 ? r->backoff_factor : 1.0;
	/* pow may overflow to inf for large n; the cap handles it. */
	d *= pow(f, (double)(n ? n - 1 : 0));
	if (!(d < (double)r->max_delay_ms))
		return r->max_delay_ms;
	return (uint64_t)d;
}

uint64_t backoff_delay(const struct dr_retry *r, uint32_t n, uint64_t prev_ms,
		       uint64_t *rng)
{
	uint64_t base = base_delay(r, n), d;
	switch (r->jitter) {
	case DR_JITTER_NONE:
		d = base;
		break;
	case DR_JITTER_EQUAL:
		d = base / 2 + (uint64_t)(backoff_random(rng) * (double)(base - base / 2 + 1));
		break;
	case DR_JITTER_DECORRELATED: {
		uint64_t lo = r->initial_delay_ms;
		uint64_t prev = prev_ms ? prev_ms : lo;
		uint64_t hi = prev > UINT64_MAX / 3 ? UINT64_MAX : prev * 3;
		if (hi < lo)
			hi = lo;
		d = lo + (uint64_t)(backoff_random(rng) * (double)(hi - lo + 1));
		break;
	}
	case DR_JITTER_FULL:
	default:
		d = (uint64_t)(backoff_random(rng) * (double)(base + 1));
		break;
	}
	if (r->jitter != DR_JITTER_DECORRELATED && d > base)
		d = base;   /* a draw of (1 - 2^-53) * (base + 1) rounds up */
	return d > r->max_delay_ms ? r->max_delay_ms : d;
}
