/* redact.c: the views of a text and the matcher; see redact.h. The
 * pattern set and the forms of a secret are in redact_forms.c, runs, cut
 * edges and masking a slice in redact_slice.c, streams in redact_stream.c;
 * redact_int.h declares what they share.
 *
 * Views. Each pattern is searched in one view of the text: the text as it
 * is (V_RAW: the secret, its shell-quoted forms), or a decoded copy of it
 * in which every variant of one encoding reads the same:
 *   V_B64      CR and LF dropped, '-' and '_' read as '+' and '/': base64
 *              wrapped over lines (V_RAW has the unwrapped forms)
 *   V_PCT      %XY decoded, either case, and '+' as ' ' (forms, quote_plus)
 *   V_PCT2     %XY decoded, '+' left alone (URLs: encodeURI keeps '+')
 *   V_ESC      backslash escapes decoded (JSON, C, Python, shell)
 *   V_ESCPCT   V_ESC, then V_PCT over it   (a form or a URL inside a JSON
 *   V_ESCPCT2  V_ESC, then V_PCT2 over it   string)
 *   V_HTML     HTML character references decoded
 * Whatever an encoder leaves unescaped, the decoded copy is the secret, so
 * one pattern per view (the secret itself) covers every variant.
 * Decoding never makes text longer; each escape is recorded as a unit
 * (which view bytes come from which text bytes), so a match maps back to
 * a run of the text. A match whose source is longer than the span cap of
 * its pattern (redact_span_cap(): 6 bytes per byte, for \u0041) does not
 * count: that bounds how much a stream must withhold.
 *
 * A view is only built when the text holds a byte that starts one of its
 * escapes (for V_B64: a line break inside a run of base64; for the '+' of
 * V_PCT: a secret with a space); otherwise a match in it would be a match
 * in the text, which V_RAW finds, so skipping it changes nothing (and a
 * chunk of a stream finds what the whole text does).
 *
 * Matching: each pattern is searched with memmem in its view (overlapping
 * occurrences included). Each pattern's matches come in order and are
 * merged on the fly into runs; all runs are then sorted and merged.
 * Cost: O(patterns * text), plus one copy of the text per view built.
 */
#include "expr/redact_int.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ---- views -------------------------------------------------------------- */

void redact_view_free(struct view *v)
{
	free(v->d);
	free(v->u);
	memset(v, 0, sizeof(*v));
}

static int unit_add(struct view *v, size_t vo, size_t vn, size_t r, size_t rn)
{
	if (v->nu == v->cap) {
		size_t cap = v->cap ? v->cap * 2 : 64;
		struct unit *u = realloc(v->u, cap * sizeof(*u));
		if (!u)
			return -ENOMEM;
		v->u = u;
		v->cap = cap;
	}
	v->u[v->nu++] = (struct unit){vo, vn, r, rn};
	return 0;
}

/* The last unit starting at or before view byte i, or NULL. */
static const struct unit *unit_at(const struct view *v, size_t i)
{
	size_t lo = 0, hi = v->nu;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (v->u[mid].v <= i)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo ? &v->u[lo - 1] : NULL;
}

/* Where the source of view byte i starts, in the text. */
size_t redact_raw_start(const struct view *v, size_t i)
{
	const struct unit *u = unit_at(v, i);
	size_t p = !u ? i : i < u->v + u->vn ? u->r : u->r + u->rn + (i - u->v - u->vn);
	return v->parent ? redact_raw_start(v->parent, p) : p;
}

/* Where the source of view byte i ends, in the text. */
size_t redact_raw_end(const struct view *v, size_t i)
{
	const struct unit *u = unit_at(v, i);
	size_t p = u && i < u->v + u->vn ? u->r + u->rn
		   : (!u ? i : u->r + u->rn + (i - u->v - u->vn)) + 1;
	return v->parent ? redact_raw_end(v->parent, p - 1) : p;
}

static int hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* The value of n hex digits at s, or -1. */
static long hexn(const char *s, size_t n)
{
	long v = 0;
	for (size_t i = 0; i < n; i++) {
		int h = hexval((unsigned char)s[i]);
		if (h < 0)
			return -1;
		v = v * 16 + h;
	}
	return v;
}

/* Whether s[0 .. n) are all hex digits (a cut escape may end there). */
bool redact_all_hex(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (hexval((unsigned char)s[i]) < 0)
			return false;
	return true;
}

static size_t utf8_put(unsigned long cp, char *o)
{
	if (cp < 0x80) {
		o[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		o[0] = (char)(0xc0 | (cp >> 6));
		o[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		o[0] = (char)(0xe0 | (cp >> 12));
		o[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		o[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	o[0] = (char)(0xf0 | (cp >> 18));
	o[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
	o[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
	o[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

/* One decoded unit: the bytes it stands for (out, *k of them) and the
 * source bytes it used. 0 used: the text ends inside an escape that a cut
 * may have shortened (decoding stops there). */
typedef size_t (*decode_fn)(const char *s, size_t n, bool cut, char *out, size_t *k);

static size_t dec_b64(const char *s, size_t n, bool cut, char *out, size_t *k)
{
	(void)n;
	(void)cut;
	char c = s[0];
	*k = c == '\r' || c == '\n' ? 0 : 1;
	out[0] = c == '-' ? '+' : c == '_' ? '/' : c;
	return 1;
}

static size_t dec_pct2(const char *s, size_t n, bool cut, char *out, size_t *k)
{
	*k = 1;
	if (s[0] == '%') {
		long v = n >= 3 ? hexn(s + 1, 2) : -1;
		if (v >= 0) {
			out[0] = (char)v;
			return 3;
		}
		if (cut && n < 3 && redact_all_hex(s + 1, n - 1))
			return 0;
	}
	out[0] = s[0];
	return 1;
}

static size_t dec_pct(const char *s, size_t n, bool cut, char *out, size_t *k)
{
	if (s[0] != '+')
		return dec_pct2(s, n, cut, out, k);
	*k = 1;
	out[0] = ' ';
	return 1;
}

/* \uXXXX at s (n bytes left), with a following low surrogate: the code
 * point and the bytes used, 0 when not one, SIZE_MAX when cut short. */
static size_t u_escape(const char *s, size_t n, bool cut, unsigned long *cp)
{
	if (n < 6) {
		bool partial = redact_all_hex(s + 2, n - 2);
		return cut && partial ? SIZE_MAX : 0;
	}
	long v = hexn(s + 2, 4);
	if (v < 0)
		return 0;
	if (v >= 0xdc00 && v <= 0xdfff)
		return 0;
	if (v < 0xd800 || v > 0xdbff) {
		*cp = (unsigned long)v;
		return 6;
	}
	static const char lo[] = "\\u";
	size_t m = n - 6 < 6 ? n - 6 : 6;
	if (m < 6) {
		bool partial = !memcmp(s + 6, lo, m < 2 ? m : 2) &&
			       redact_all_hex(s + 8, m > 2 ? m - 2 : 0);
		return cut && partial ? SIZE_MAX : 0;
	}
	long w = s[6] == '\\' && s[7] == 'u' ? hexn(s + 8, 4) : -1;
	if (w < 0xdc00 || w > 0xdfff)
		return 0;
	*cp = 0x10000 + (((unsigned long)v - 0xd800) << 10) + ((unsigned long)w - 0xdc00);
	return 12;
}

static size_t dec_esc(const char *s, size_t n, bool cut, char *out, size_t *k)
{
	*k = 1;
	if (s[0] != '\\') {
		out[0] = s[0];
		return 1;
	}
	if (n < 2) {
		if (cut)
			return 0;
		out[0] = '\\';
		return 1;
	}
	static const char from[] = "nrtbfvae", to[] = "\n\r\t\b\f\v\a\x1b";
	const char *m = strchr(from, s[1]);
	if (s[1] && m) {
		out[0] = to[m - from];
		return 2;
	}
	unsigned long cp;
	size_t used;
	switch (s[1]) {
	case 'x': {
		size_t h = 0;
		while (h < 2 && 2 + h < n && hexval((unsigned char)s[2 + h]) >= 0)
			h++;
		if (cut && 2 + h == n && h < 2)
			return 0;
		if (!h)
			break;
		out[0] = (char)hexn(s + 2, h);
		return 2 + h;
	}
	case 'u':
		used = u_escape(s, n, cut, &cp);
		if (used == SIZE_MAX)
			return 0;
		if (!used)
			break;
		*k = utf8_put(cp, out);
		return used;
	case 'U': {
		if (n < 10) {
			if (cut && redact_all_hex(s + 2, n - 2))
				return 0;
			break;
		}
		long v = hexn(s + 2, 8);
		if (v < 0 || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
			break;
		*k = utf8_put((unsigned long)v, out);
		return 10;
	}
	case '0': case '1': case '2': case '3': case '4': case '5': case '6': case '7': {
		size_t d = 0;
		unsigned v = 0;
		while (d < 3 && 1 + d < n && s[1 + d] >= '0' && s[1 + d] <= '7' &&
		       v * 8 + (unsigned)(s[1 + d] - '0') <= 0xff)
			v = v * 8 + (unsigned)(s[1 + d++] - '0');
		if (cut && 1 + d == n && d < 3)
			return 0;
		out[0] = (char)v;
		return 1 + d;
	}
	default:
		break;
	}
	out[0] = s[1];   /* \" \\ \/ \' \$ ...: the character itself */
	return 2;
}

static size_t dec_html(const char *s, size_t n, bool cut, char *out, size_t *k)
{
	static const struct { const char *name, *text; } named[] = {
		{"amp", "&"}, {"lt", "<"}, {"gt", ">"}, {"quot", "\""},
		{"apos", "'"}, {"nbsp", "\xc2\xa0"},
	};
	*k = 1;
	out[0] = s[0];
	if (s[0] != '&')
		return 1;
	size_t lim = n < 12 ? n : 12, j = 1;
	while (j < lim && s[j] != ';' && s[j] != '&')
		j++;
	if (j == lim || s[j] != ';') {
		bool word = true;
		for (size_t i = 1; i < j && word; i++)
			word = (s[i] >= '0' && s[i] <= '9') || ((s[i] | 0x20) >= 'a' && (s[i] | 0x20) <= 'z') ||
			       s[i] == '#';
		return cut && j == n && word ? 0 : 1;
	}
	const char *e = s + 1;
	size_t en = j - 1;
	if (en >= 2 && e[0] == '#') {
		unsigned long cp = 0;
		bool hex = e[1] == 'x' || e[1] == 'X';
		size_t i = hex ? 2 : 1;
		if (i == en)
			return 1;
		for (; i < en; i++) {
			int h = hex ? hexval((unsigned char)e[i]) : e[i] >= '0' && e[i] <= '9' ? e[i] - '0' : -1;
			if (h < 0 || cp > 0x10ffff)
				return 1;
			cp = cp * (hex ? 16 : 10) + (unsigned long)h;
		}
		if (!cp || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return 1;
		*k = utf8_put(cp, out);
		return j + 1;
	}
	for (size_t i = 0; i < sizeof(named) / sizeof(named[0]); i++)
		if (strlen(named[i].name) == en && !memcmp(named[i].name, e, en)) {
			*k = strlen(named[i].text);
			memcpy(out, named[i].text, *k);
			return j + 1;
		}
	return 1;
}

/* The bytes that start an escape, by view. */
static const unsigned char special[V_COUNT][256] = {
	[V_B64] = {['\r'] = 1, ['\n'] = 1, ['-'] = 1, ['_'] = 1},
	[V_PCT] = {['%'] = 1, ['+'] = 1},
	[V_PCT2] = {['%'] = 1},
	[V_ESC] = {['\\'] = 1},
	[V_ESCPCT] = {['%'] = 1, ['+'] = 1},
	[V_ESCPCT2] = {['%'] = 1},
	[V_HTML] = {['&'] = 1},
};

/* Decodes s[0 .. n) into v: runs of ordinary bytes are copied, escapes
 * decoded by fn. cut: the text may end inside an escape. */
static int decode(struct view *v, int w, decode_fn fn, const char *s, size_t n, bool cut)
{
	static const char one[V_COUNT] = {
		[V_PCT2] = '%', [V_ESC] = '\\', [V_ESCPCT2] = '%', [V_HTML] = '&',
	};
	const unsigned char *sp = special[w];
	size_t i = 0, o = 0;
	if (!(v->d = malloc(n + 1)))
		return -ENOMEM;
	while (i < n) {
		size_t j = i;
		if (one[w]) {
			const char *q = memchr(s + i, one[w], n - i);
			j = q ? (size_t)(q - s) : n;
		} else {
			while (j < n && !sp[(unsigned char)s[j]])
				j++;
		}
		memcpy(v->d + o, s + i, j - i);
		o += j - i;
		i = j;
		if (i == n)
			break;
		char unit[4];
		size_t k;
		size_t used = fn(s + i, n - i, cut, unit, &k);
		if (!used)
			break;
		if (k != used && unit_add(v, o, k, i, used) < 0)
			return -ENOMEM;
		memcpy(v->d + o, unit, k);
		o += k;
		i += used;
	}
	v->n = o;
	return 0;
}

static bool b64_char(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '+' || c == '/' || c == '-' || c == '_';
}

/* Whether d[0 .. len) has a line break after a line of base64 (at least
 * 16 characters, the whole line or 40 of them) and before more of it:
 * base64 wrapped over lines. */
static bool wrapped_b64(const char *d, size_t len)
{
	for (const char *p = d; (p = memchr(p, '\n', (size_t)(d + len - p))); p++) {
		size_t i = (size_t)(p - d), k = 0;
		if (i + 1 >= len || !b64_char((unsigned char)d[i + 1]))
			continue;
		if (i && d[i - 1] == '\r')
			i--;
		while (k < 40 && k < i && b64_char((unsigned char)d[i - 1 - k]))
			k++;
		if (k == 40 || (k >= 16 && (k == i || d[i - 1 - k] == '\n')))
			return true;
	}
	return false;
}

/* Whether view w is worth building for d[0 .. len) (see the top). */
bool redact_view_wanted(const struct redactor *r, int w, const char *d, size_t len)
{
	if (w == V_RAW)
		return true;
	if (w == V_B64)
		return wrapped_b64(d, len);
	bool pct = memchr(d, '%', len) != NULL;
	bool plus = r->spaced && (pct || memchr(d, '+', len));   /* else = V_PCT2 */
	switch (w) {
	case V_PCT: return plus;
	case V_PCT2: return pct;
	case V_ESC: return memchr(d, '\\', len) != NULL;
	case V_ESCPCT: return plus && memchr(d, '\\', len);
	case V_ESCPCT2: return pct && memchr(d, '\\', len);
	case V_HTML: return memchr(d, '&', len) != NULL;
	}
	return false;
}

/* Builds view w of d[0 .. len) into v (and tmp, for V_ESCPCT*). V_RAW is
 * not built (v->d = NULL). */
int redact_view_build(int w, const char *d, size_t len, bool cut, struct view *v,
		      struct view *tmp)
{
	static const decode_fn fns[V_COUNT] = {
		[V_B64] = dec_b64, [V_PCT] = dec_pct, [V_PCT2] = dec_pct2, [V_ESC] = dec_esc,
		[V_ESCPCT] = dec_pct, [V_ESCPCT2] = dec_pct2, [V_HTML] = dec_html,
	};
	if (w == V_RAW)
		return 0;
	if (w != V_ESCPCT && w != V_ESCPCT2)
		return decode(v, w, fns[w], d, len, cut);
	int rc = decode(tmp, V_ESC, dec_esc, d, len, cut);
	if (rc == 0)
		rc = decode(v, w, fns[w], tmp->d, tmp->n, cut);
	v->parent = tmp;
	return rc;
}

/* ---- matching ------------------------------------------------------------ */

/* Every match in view w (v; raw text d when w is V_RAW) of the patterns
 * searched there; runs are offset by base. */
static int search(const struct redactor *r, int w, const char *d, size_t len,
		  const struct view *v, size_t base, struct runs *rs)
{
	const char *t = w == V_RAW ? d : v->d;
	size_t tn = w == V_RAW ? len : v->n;
	for (size_t i = 0; i < r->n; i++) {
		const struct pattern *p = &r->p[i];
		if (p->view != w)
			continue;
		size_t pos = 0, rs_start = 0, rs_end = 0, cap = redact_span_cap(p);
		bool open = false;
		int rc;
		while (pos + p->n <= tn) {
			const char *hit = memmem(t + pos, tn - pos, p->s, p->n);
			if (!hit)
				break;
			size_t s = (size_t)(hit - t);
			pos = s + 1;
			size_t a = w == V_RAW ? s : redact_raw_start(v, s);
			size_t b = w == V_RAW ? s + p->n : redact_raw_end(v, s + p->n - 1);
			if (b - a > cap)
				continue;
			if (open && base + a < rs_end) {
				if (base + b > rs_end)
					rs_end = base + b;
				continue;
			}
			if (open && (rc = redact_run_add(rs, rs_start, rs_end)) < 0)
				return rc;
			rs_start = base + a;
			rs_end = base + b;
			open = true;
		}
		if (open && (rc = redact_run_add(rs, rs_start, rs_end)) < 0)
			return rc;
	}
	return 0;
}

/* Adds every match in d[0 .. len) to rs, offset by base. */
int redact_find(const struct redactor *r, const char *d, size_t len, size_t base,
		struct runs *rs)
{
	struct view v = {0}, tmp = {0};
	int rc = 0;
	if (!len)
		return 0;
	for (int w = 0; w < V_COUNT && rc == 0 && r && r->n; w++) {
		if (!redact_view_wanted(r, w, d, len))
			continue;
		if ((rc = redact_view_build(w, d, len, false, &v, &tmp)) == 0)
			rc = search(r, w, d, len, &v, base, rs);
		redact_view_free(&v);
		redact_view_free(&tmp);
	}
	return rc;
}
