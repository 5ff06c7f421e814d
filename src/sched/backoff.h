/* backoff.h: retry delays, per the AWS Architecture Blog's "Exponential
 * Backoff and Jitter".
 *
 * base(n) = min(maxDelay, initialDelay * factor^(n-1)) for the n-th retry
 * (n >= 1). none: base; full: uniform [0, base]; equal: base/2 + uniform
 * [0, base/2]; decorrelated: min(maxDelay, uniform [initialDelay, prev * 3]),
 * where prev is the previous delay (initialDelay before the first). Every
 * result is <= maxDelay. Randomness comes from a caller-owned xorshift state,
 * so tests can seed it and two engines never share one.
 */
#ifndef DAGRUN_BACKOFF_H
#define DAGRUN_BACKOFF_H

#include <stdint.h>

#include "model/model.h"

/* A uniform draw in [0, 1) from *state (xorshift64*; state must be != 0). */
double backoff_random(uint64_t *state);

/* The delay in ms before retry number n (1 = the second attempt).
 * prev_ms is the delay chosen before this one (0 for the first retry). */
uint64_t backoff_delay(const struct dr_retry *r, uint32_t n, uint64_t prev_ms,
		       uint64_t *rng);

#endif
