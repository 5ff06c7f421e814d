/* duration.c: workflow durations; see duration.h for the grammar.
 *
 * Invariant: every multiplication and addition is overflow-checked, so any
 * input either parses exactly or is rejected.
 */
#include "load/duration.h"

#include <errno.h>
#include <stdio.h>

struct unit {
	const char *name;
	size_t len;
	uint64_t ms;
};

/* In the only order they may appear. */
static const struct unit units[] = {
	{"d", 1, 86400000}, {"h", 1, 3600000}, {"m", 1, 60000}, {"s", 1, 1000},
	{"ms", 2, 1},
};

/* duration_format starts at hours: limits read as "168h", not "7d". */
#define FORMAT_FIRST 1

#define N_UNITS (sizeof(units) / sizeof(units[0]))

static int is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static int is_alpha(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* Index of the unit s[0..n) in units[], or -1. */
static int find_unit(const char *s, size_t n)
{
	for (size_t u = 0; u < N_UNITS; u++) {
		if (units[u].len != n)
			continue;
		size_t i = 0;
		while (i < n && s[i] == units[u].name[i])
			i++;
		if (i == n)
			return (int)u;
	}
	return -1;
}

static int fail(const char **why, const char *msg, int err)
{
	*why = msg;
	return err;
}

int duration_parse(const char *s, size_t n, uint64_t *ms, const char **why)
{
	uint64_t total = 0;
	size_t i = 0;
	int last = -1;
	if (n == 0)
		return fail(why, "empty", -EINVAL);
	if (s[0] == '-')
		return fail(why, "durations cannot be negative", -EINVAL);
	while (i < n) {
		uint64_t v = 0;
		size_t d0 = i;
		for (; i < n && is_digit(s[i]); i++) {
			if (__builtin_mul_overflow(v, 10, &v) ||
			    __builtin_add_overflow(v, (uint64_t)(s[i] - '0'), &v))
				return fail(why, "too large", -ERANGE);
		}
		if (i == d0)
			return fail(why, "expected a number (write e.g. 250ms, 30s, 1m30s)", -EINVAL);
		size_t u0 = i;
		while (i < n && is_alpha(s[i]))
			i++;
		if (u0 == i) {
			if (i == n && d0 == 0) { /* bare digits: milliseconds */
				*ms = v;
				return 0;
			}
			if (i == n)
				return fail(why, "the last number has no unit (use ms, s, m, h or d)", -EINVAL);
			return fail(why, "unexpected character (write e.g. 250ms, 30s, 1m30s)", -EINVAL);
		}
		int u = find_unit(s + u0, i - u0);
		if (u < 0)
			return fail(why, "unknown unit (use ms, s, m, h or d)", -EINVAL);
		if (u <= last)
			return fail(why, "units must appear once each, largest first (d, h, m, s, ms)", -EINVAL);
		last = u;
		if (__builtin_mul_overflow(v, units[u].ms, &v) ||
		    __builtin_add_overflow(total, v, &total))
			return fail(why, "too large", -ERANGE);
	}
	*ms = total;
	return 0;
}

char *duration_format(uint64_t ms, char *out, size_t size)
{
	size_t len = 0;
	if (ms == 0) {
		snprintf(out, size, "0");
		return out;
	}
	out[0] = '\0';
	for (size_t u = FORMAT_FIRST; u < N_UNITS && len < size; u++) {
		uint64_t q = ms / units[u].ms;
		if (!q)
			continue;
		ms -= q * units[u].ms;
		int w = snprintf(out + len, size - len, "%llu%s",
				 (unsigned long long)q, units[u].name);
		if (w < 0)
			break;
		len += (size_t)w;
	}
	return out;
}
