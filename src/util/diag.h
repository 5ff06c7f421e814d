/* diag.h: collecting and printing diagnostics (FILE:LINE:COL: error: MSG).
 *
 * Invariant: a diagnostics list never holds more than its cap of entries;
 * further errors are counted in `dropped` and still make the list failed.
 */
#ifndef DAGRUN_DIAG_H
#define DAGRUN_DIAG_H

#include <stdarg.h>
#include <stddef.h>

#include "dagrun.h"

struct dagrun_diags {
	struct dagrun_diag *v;
	size_t n, cap;
	size_t max;        /* cap on stored entries */
	size_t errors;     /* errors added, stored or not */
	size_t dropped;    /* entries beyond max */
};

/* Adds a diagnostic; file is copied. line/col are 1-based; 0 means unknown.
 * Returns 0, or -ENOMEM (the entry is then counted as dropped). */
int diag_add(struct dagrun_diags *d, int severity, const char *file,
	     unsigned line, unsigned col, const char *fmt, ...)
	__attribute__((format(printf, 6, 7)));
int diag_vadd(struct dagrun_diags *d, int severity, const char *file,
	      unsigned line, unsigned col, const char *fmt, va_list ap);

/* True when the cap is reached: callers may stop looking for more errors. */
static inline int diag_full(const struct dagrun_diags *d)
{
	return d->n >= d->max;
}

#endif
