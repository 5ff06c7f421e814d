/* report_int.h: what the files of src/report/ share: writing escaped text
 * to a stream, the error message helper, and the assets (CSS, JavaScript)
 * embedded at build time by embed.py.
 *
 * Invariant: every string of a document reaches an output through one of
 * the put_* writers below (or Graphviz's XML escaping, for the SVG), each
 * of which escapes every character its syntax gives a meaning to.
 */
#ifndef DAGRUN_REPORT_INT_H
#define DAGRUN_REPORT_INT_H

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>

#include <jansson.h>

#include "report/report.h"

/* Sets *err (when err is not NULL) to a malloc'd message; returns code. */
int report_fail(char **err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* 0, or -errno (-EIO when errno says nothing) once a write to out failed. */
int report_stream_status(FILE *out);

/* s[0 .. n) as a JSON string with its quotes (RFC 8259: '"', '\\' and the
 * C0 controls escaped; the rest, valid UTF-8 from jansson, as it is). */
void report_put_json(FILE *out, const char *s, size_t n);
/* The same without the quotes (a piece of a longer string). */
void report_put_json_inner(FILE *out, const char *s, size_t n);

/* s[0 .. n) as HTML text, also fit for a quoted attribute value: & < > " '
 * as character references; C0 controls but tab and newline, DEL, and
 * invalid UTF-8 as U+FFFD. */
void report_put_html(FILE *out, const char *s, size_t n);

/* The assets (embed.py): NUL-terminated text, and the CSP source for it:
 * "'sha256-BASE64'", the hash of exactly those bytes. */
extern const char report_asset_css[];
extern const char report_asset_css_csp[];
extern const char report_asset_js[];
extern const char report_asset_js_csp[];

#endif
