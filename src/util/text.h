/* text.h: text that came from a workflow or a task, made safe to show on a
 * terminal and to store in JSON.
 *
 * Terminal: every byte of a C0 control character (but tab, and newline when
 * asked), DEL, a C1 control character (U+0080..U+009F) or an invalid UTF-8
 * sequence is written as the four characters \xNN, so no escape sequence
 * from a task can reach the terminal and a NUL ends nothing.
 * JSON: each byte of an invalid UTF-8 sequence becomes U+FFFD; the valid
 * text around it is kept as it is.
 * UTF-8 here is RFC 3629's: no overlong forms, no surrogates, at most
 * U+10FFFF.
 */
#ifndef DAGRUN_UTIL_TEXT_H
#define DAGRUN_UTIL_TEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"

enum { TEXT_ESC_NEWLINE = 1 };   /* keep '\n' as it is */

/* Appends p[0 .. n) to out, escaped for a terminal as above. Returns 0 or
 * what buf_add returns. */
int text_escape(struct buf *out, const char *p, size_t n, int flags);

/* The length of p[0 .. n) without a trailing sequence that is valid so far
 * but incomplete (at most 3 bytes), so a stream can be cut between
 * characters. */
size_t text_utf8_whole(const char *p, size_t n);

/* Whether p[0 .. n) is valid UTF-8. */
bool text_utf8_valid(const char *p, size_t n);

/* Appends p[0 .. n) to out with every byte of an invalid UTF-8 sequence
 * replaced by U+FFFD. Returns 0 or what buf_add returns. */
int text_utf8_clean(struct buf *out, const char *p, size_t n);

/* Appends p[0 .. n) to out in base64 (RFC 4648, with padding). Returns 0 or
 * what buf_add returns. */
int text_base64(struct buf *out, const char *p, size_t n);

/* n bytes for people: "512 B", "1.5 KiB", "2.0 MiB", "1.1 GiB" (into buf of
 * size bytes, cut to fit). */
void text_fmt_bytes(uint64_t n, char *buf, size_t size);

#endif
