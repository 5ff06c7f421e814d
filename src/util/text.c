/* text.c: escaping for terminals, UTF-8 cleaning for JSON; see text.h.
 * Invariant: what text_escape writes holds no byte below 0x20 but tab and
 * (when asked) newline, no DEL, no C1 control and no invalid UTF-8; what
 * text_utf8_clean writes is valid UTF-8. */
#include "util/text.h"

#include <stdint.h>
#include <stdio.h>

/* The length of the UTF-8 sequence at p (1 to 4) with its code point in
 * *cp, 0 when p[0] starts no valid sequence, or -1 when the n bytes are a
 * valid start cut short. */
static int utf8_len(const unsigned char *p, size_t n, uint32_t *cp)
{
	unsigned c = p[0], lo = 0x80, hi = 0xbf;
	int len;
	uint32_t v;
	if (c < 0x80) {
		*cp = c;
		return 1;
	}
	if (c >= 0xc2 && c <= 0xdf) {
		len = 2;
		v = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		len = 3;
		v = c & 0x0f;
		lo = c == 0xe0 ? 0xa0 : 0x80;   /* no overlong forms */
		hi = c == 0xed ? 0x9f : 0xbf;   /* no surrogates */
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4;
		v = c & 0x07;
		lo = c == 0xf0 ? 0x90 : 0x80;
		hi = c == 0xf4 ? 0x8f : 0xbf;   /* at most U+10FFFF */
	} else {
		return 0;
	}
	for (int i = 1; i < len; i++) {
		if ((size_t)i >= n)
			return -1;
		unsigned b = p[i];
		if (b < lo || b > hi)
			return 0;
		lo = 0x80;
		hi = 0xbf;
		v = v << 6 | (b & 0x3f);
	}
	*cp = v;
	return len;
}

static int add_hex(struct buf *out, unsigned char c)
{
	static const char hex[] = "0123456789abcdef";
	char e[4] = {'\\', 'x', hex[c >> 4], hex[c & 15]};
	return buf_add(out, e, sizeof(e));
}

int text_escape(struct buf *out, const char *s, size_t n, int flags)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t run = 0, i = 0;   /* p[run .. i) is safe, not yet added */
	int r = 0;
	while (i < n && r == 0) {
		unsigned c = p[i];
		int k = 1;
		uint32_t cp = 0;
		bool safe;
		if (c < 0x80)
			safe = (c >= 0x20 && c != 0x7f) || c == '\t' ||
			       (c == '\n' && (flags & TEXT_ESC_NEWLINE));
		else
			safe = (k = utf8_len(p + i, n - i, &cp)) > 0 && cp > 0x9f;
		if (safe) {
			i += (size_t)k;
			continue;
		}
		if (k < 1)
			k = 1;   /* invalid or cut short: escape one byte, resync */
		r = buf_add(out, p + run, i - run);
		for (int j = 0; j < k && r == 0; j++)
			r = add_hex(out, p[i + (size_t)j]);
		i += (size_t)k;
		run = i;
	}
	return r ? r : buf_add(out, p + run, i - run);
}

size_t text_utf8_whole(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	/* A cut sequence starts at most 3 bytes from the end. */
	for (size_t back = 1; back <= 3 && back <= n; back++) {
		unsigned c = p[n - back];
		if ((c & 0xc0) != 0x80) {
			uint32_t cp;
			return c >= 0x80 && utf8_len(p + n - back, back, &cp) < 0 ? n - back : n;
		}
	}
	return n;
}

bool text_utf8_valid(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	for (size_t i = 0; i < n;) {
		uint32_t cp;
		int k = p[i] < 0x80 ? 1 : utf8_len(p + i, n - i, &cp);
		if (k < 1)
			return false;
		i += (size_t)k;
	}
	return true;
}

int text_utf8_clean(struct buf *out, const char *s, size_t n)
{
	static const char fffd[] = "\xef\xbf\xbd";
	const unsigned char *p = (const unsigned char *)s;
	size_t run = 0, i = 0;
	int r = 0;
	while (i < n && r == 0) {
		uint32_t cp;
		int k = p[i] < 0x80 ? 1 : utf8_len(p + i, n - i, &cp);
		if (k > 0) {
			i += (size_t)k;
			continue;
		}
		if ((r = buf_add(out, p + run, i - run)) == 0)
			r = buf_add(out, fffd, 3);
		run = ++i;
	}
	return r ? r : buf_add(out, p + run, i - run);
}

int text_base64(struct buf *out, const char *s, size_t n)
{
	static const char abc[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	const unsigned char *p = (const unsigned char *)s;
	int r = 0;
	for (size_t i = 0; i < n && r == 0; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16;
		if (i + 1 < n)
			v |= (uint32_t)p[i + 1] << 8;
		if (i + 2 < n)
			v |= p[i + 2];
		char q[4] = {abc[v >> 18], abc[v >> 12 & 63],
			     i + 1 < n ? abc[v >> 6 & 63] : '=', i + 2 < n ? abc[v & 63] : '='};
		r = buf_add(out, q, sizeof(q));
	}
	return r;
}

void text_fmt_bytes(uint64_t n, char *buf, size_t size)
{
	if (n < 1024)
		snprintf(buf, size, "%llu B", (unsigned long long)n);
	else if (n < (1u << 20))
		snprintf(buf, size, "%.1f KiB", (double)n / 1024);
	else if (n < (1u << 30))
		snprintf(buf, size, "%.1f MiB", (double)n / (1 << 20));
	else
		snprintf(buf, size, "%.1f GiB", (double)n / (1 << 30));
}
