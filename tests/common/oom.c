/* oom.c: the allocation wrappers of oom.h. Off (no counting, no failure)
 * until oom_start. */
#include "oom.h"

#include <limits.h>
#include <stddef.h>

static long calls, fail_at = -1;   /* -1: off */

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t n);

static int fail_now(void)
{
	return fail_at >= 0 && calls++ == fail_at;
}

void *__wrap_malloc(size_t n)
{
	return fail_now() ? NULL : __real_malloc(n);
}

void *__wrap_calloc(size_t n, size_t size)
{
	return fail_now() ? NULL : __real_calloc(n, size);
}

void *__wrap_realloc(void *p, size_t n)
{
	return fail_now() ? NULL : __real_realloc(p, n);
}

void oom_start(long k)
{
	calls = 0;
	fail_at = k < 0 ? LONG_MAX : k;
}

long oom_stop(void)
{
	fail_at = -1;
	return calls;
}
