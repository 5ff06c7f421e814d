/* buf.h: a growable byte buffer (like curl's dynbuf), always NUL-terminated.
 *
 * Invariant: after any successful call, data[len] == '\0' when data != NULL.
 * A buffer has a cap (max bytes); growing past it fails with -E2BIG, so a
 * user-controlled size can never exhaust memory.
 */
#ifndef DAGRUN_BUF_H
#define DAGRUN_BUF_H

#include <stdarg.h>
#include <stddef.h>

struct buf {
	char *data;
	size_t len;
	size_t alloc;
	size_t max;   /* 0 means the default cap, BUF_DEFAULT_MAX */
};

#define BUF_DEFAULT_MAX ((size_t)1 << 30)
#define BUF_INIT {NULL, 0, 0, 0}

/* Appends n bytes. Returns 0, -ENOMEM, or -E2BIG past the cap. */
int buf_add(struct buf *b, const void *p, size_t n);
int buf_adds(struct buf *b, const char *s);
int buf_addc(struct buf *b, char c);
int buf_printf(struct buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
int buf_vprintf(struct buf *b, const char *fmt, va_list ap);

/* Makes room for n more bytes (and the NUL) without adding any, so that a
 * caller that knows the size of what it appends grows the buffer once and
 * then writes data[len ..] itself (setting len and the NUL after). Returns
 * 0, -ENOMEM, or -E2BIG past the cap. */
int buf_reserve(struct buf *b, size_t n);

/* printf into a new malloc'd string (the caller frees it): the one way
 * dagrun builds a formatted message. Returns NULL on OOM (or a format
 * error), never a partial text. */
char *buf_strf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
char *buf_vstrf(const char *fmt, va_list ap);

/* Empties the buffer and keeps its memory. */
void buf_reset(struct buf *b);

/* Hands the data over to the caller (who must free() it) and resets b.
 * Returns an empty malloc'd string if nothing was added, NULL on OOM. */
char *buf_steal(struct buf *b);

/* Frees the data. Accepts NULL. */
void buf_free(struct buf *b);

#endif
