/* buf.c: growable byte buffer with a cap; see buf.h. */
#include "buf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int grow(struct buf *b, size_t need)
{
	size_t max = b->max ? b->max : BUF_DEFAULT_MAX;
	if (need > max || b->len + need > max)
		return -E2BIG;
	size_t want = b->len + need + 1;
	if (want <= b->alloc)
		return 0;
	size_t n = b->alloc ? b->alloc : 64;
	while (n < want)
		n *= 2;
	char *p = realloc(b->data, n);
	if (!p)
		return -ENOMEM;
	b->data = p;
	b->alloc = n;
	return 0;
}

int buf_reserve(struct buf *b, size_t n)
{
	return grow(b, n);
}

int buf_add(struct buf *b, const void *p, size_t n)
{
	int r = grow(b, n);
	if (r < 0)
		return r;
	if (n)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	return 0;
}

int buf_adds(struct buf *b, const char *s)
{
	return buf_add(b, s, strlen(s));
}

int buf_addc(struct buf *b, char c)
{
	return buf_add(b, &c, 1);
}

int buf_vprintf(struct buf *b, const char *fmt, va_list ap)
{
	va_list ap2;
	va_copy(ap2, ap);
	char small[256];
	int n = vsnprintf(small, sizeof(small), fmt, ap2);
	va_end(ap2);
	if (n < 0)
		return -EINVAL;
	if ((size_t)n < sizeof(small))
		return buf_add(b, small, (size_t)n);
	int r = grow(b, (size_t)n);
	if (r < 0)
		return r;
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	b->len += (size_t)n;
	return 0;
}

int buf_printf(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int r = buf_vprintf(b, fmt, ap);
	va_end(ap);
	return r;
}

char *buf_vstrf(const char *fmt, va_list ap)
{
	struct buf b = BUF_INIT;
	if (buf_vprintf(&b, fmt, ap) < 0) {
		buf_free(&b);
		return NULL;
	}
	return buf_steal(&b);
}

char *buf_strf(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *s = buf_vstrf(fmt, ap);
	va_end(ap);
	return s;
}

void buf_reset(struct buf *b)
{
	b->len = 0;
	if (b->data)
		b->data[0] = '\0';
}

char *buf_steal(struct buf *b)
{
	char *p = b->data;
	if (!p)
		p = calloc(1, 1);
	b->data = NULL;
	b->len = b->alloc = 0;
	return p;
}

void buf_free(struct buf *b)
{
	if (!b)
		return;
	free(b->data);
	b->data = NULL;
	b->len = b->alloc = 0;
}
