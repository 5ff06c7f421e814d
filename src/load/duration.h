/* duration.h: parsing workflow durations ("250ms", "1m30s", "2h", "30d").
 *
 * Invariant: a duration is a sequence of <digits><unit> parts with units in
 * strictly decreasing order (d, h, m, s, ms), or bare digits meaning
 * milliseconds; the result never overflows 64 bits.
 */
#ifndef DAGRUN_DURATION_H
#define DAGRUN_DURATION_H

#include <stddef.h>
#include <stdint.h>

/* Parses s[0..n) into *ms. Returns 0, or -EINVAL (bad syntax) or -ERANGE
 * (too large for 64 bits) with *why set to a static explanation suitable
 * after "invalid duration 'S': ". */
int duration_parse(const char *s, size_t n, uint64_t *ms, const char **why);

/* Writes ms as the shortest duration text in hours and smaller units
 * ("1m30s", "250ms", "0", "168h": never days, so limits read alike) into
 * out (at least 32 bytes). Returns out. */
char *duration_format(uint64_t ms, char *out, size_t size);

#endif
