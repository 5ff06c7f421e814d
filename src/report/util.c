/* util.c: what the renderers share: error messages, stream status, JSON
 * strings and HTML text.
 *
 * Invariant: report_put_json and report_put_html write every byte of their
 * input either as it is (when it has no meaning in the target syntax) or
 * escaped; neither ever drops text.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "report/report_int.h"

int report_fail(char **err, int code, const char *fmt, ...)
{
	if (!err)
		return code;
	va_list ap;
	va_start(ap, fmt);
	if (vasprintf(err, fmt, ap) < 0)
		*err = NULL;
	va_end(ap);
	return code;
}

int report_stream_status(FILE *out)
{
	if (!ferror(out))
		return 0;
	return errno ? -errno : -EIO;
}

void report_put_json_inner(FILE *out, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = (const unsigned char *)s;
	size_t run = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned c = p[i];
		if (c >= 0x20 && c != '"' && c != '\\')
			continue;
		fwrite(p + run, 1, i - run, out);
		run = i + 1;
		switch (c) {
		case '"': fputs("\\\"", out); break;
		case '\\': fputs("\\\\", out); break;
		case '\n': fputs("\\n", out); break;
		case '\t': fputs("\\t", out); break;
		case '\r': fputs("\\r", out); break;
		default: fprintf(out, "\\u00%c%c", hex[c >> 4], hex[c & 15]);
		}
	}
	fwrite(p + run, 1, n - run, out);
}

void report_put_json(FILE *out, const char *s, size_t n)
{
	fputc('"', out);
	report_put_json_inner(out, s, n);
	fputc('"', out);
}

/* Length of the valid UTF-8 sequence at p (n > 0 bytes, p[0] >= 0x80), or
 * 0 when it is invalid (stray, overlong, surrogate, beyond U+10FFFF). */
static size_t utf8_len(const unsigned char *p, size_t n)
{
	unsigned c = p[0];
	size_t len = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc2 ? 2 : 0;
	if (len == 0 || c > 0xf4 || len > n)
		return 0;
	for (size_t i = 1; i < len; i++)
		if ((p[i] & 0xc0) != 0x80)
			return 0;
	if ((c == 0xe0 && p[1] < 0xa0) || (c == 0xed && p[1] >= 0xa0) ||
	    (c == 0xf0 && p[1] < 0x90) || (c == 0xf4 && p[1] >= 0x90))
		return 0;
	return len;
}

void report_put_html(FILE *out, const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0, run = 0;
	while (i < n) {
		unsigned c = p[i];
		const char *e = NULL;
		size_t k = 1;
		if (c >= 0x80) {
			k = utf8_len(p + i, n - i);
			if (k) {
				i += k;
				continue;
			}
			k = 1;
			e = "\xef\xbf\xbd";
		} else {
			switch (c) {
			case '&': e = "&amp;"; break;
			case '<': e = "&lt;"; break;
			case '>': e = "&gt;"; break;
			case '"': e = "&quot;"; break;
			case '\'': e = "&#39;"; break;
			case '\t': case '\n': break;
			default:
				if (c < 0x20 || c == 0x7f)
					e = "\xef\xbf\xbd";
			}
			if (!e) {
				i++;
				continue;
			}
		}
		fwrite(p + run, 1, i - run, out);
		fputs(e, out);
		i += k;
		run = i;
	}
	fwrite(p + run, 1, n - run, out);
}
