/* redact.c: secret patterns and masking; see redact.h.
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
 * a run of the text. A match whose source is longer than span_cap() of its
 * pattern (6 bytes per byte, for \u0041) does not count: that bounds how
 * much a stream must withhold.
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
 *
 * Edges: at a cut, the longest end of the text that is the start of a
 * pattern (or the reverse) is found with the KMP failure function, in
 * O(pattern) per pattern.
 */
#include "expr/redact.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum view_kind {
	V_RAW, V_B64, V_PCT, V_PCT2, V_ESC, V_ESCPCT, V_ESCPCT2, V_HTML, V_COUNT
};

struct pattern {
	char *s;
	size_t n;
	uint8_t view;
};

#define SHORT_KEPT 64

struct redactor {
	struct pattern *p;
	size_t n, cap;
	size_t max_len;
	bool spaced;           /* a secret has a space ('+' in a form) */
	size_t n_short;
	size_t n_short_kept;
	char shorts[SHORT_KEPT][REDACT_MIN_LEN];
	uint8_t short_len[SHORT_KEPT];
};

int redact_new(struct redactor **out)
{
	*out = calloc(1, sizeof(**out));
	return *out ? 0 : -ENOMEM;
}

void redact_free(struct redactor *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->n; i++)
		free(r->p[i].s);
	free(r->p);
	free(r);
}

size_t redact_patterns(const struct redactor *r)
{
	return r ? r->n : 0;
}

size_t redact_max_len(const struct redactor *r)
{
	return r ? r->max_len : 0;
}

size_t redact_short_count(const struct redactor *r)
{
	return r ? r->n_short : 0;
}

/* The longest text a match of p may cover. */
static size_t span_cap(const struct pattern *p)
{
	switch (p->view) {
	case V_RAW: return p->n;
	case V_B64: return p->n + p->n / 8 + 2;    /* a line break per 16 */
	case V_PCT: case V_PCT2: return 3 * p->n;
	default: return 6 * p->n;                  /* \u0041, &#x27; */
	}
}

/* ---- views -------------------------------------------------------------- */

/* An escape: view bytes [v, v + vn) decode parent bytes [r, r + rn). A
 * byte-for-byte substitution ('+' read as ' ') needs none. */
struct unit {
	size_t v, vn, r, rn;
};

struct view {
	char *d;                      /* decoded bytes */
	size_t n;
	struct unit *u;               /* in order; bytes between them are copied */
	size_t nu, cap;
	const struct view *parent;    /* decoded from another view; NULL: the text */
};

static void view_free(struct view *v)
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
static size_t raw_start(const struct view *v, size_t i)
{
	const struct unit *u = unit_at(v, i);
	size_t p = !u ? i : i < u->v + u->vn ? u->r : u->r + u->rn + (i - u->v - u->vn);
	return v->parent ? raw_start(v->parent, p) : p;
}

/* Where the source of view byte i ends, in the text. */
static size_t raw_end(const struct view *v, size_t i)
{
	const struct unit *u = unit_at(v, i);
	size_t p = u && i < u->v + u->vn ? u->r + u->rn
		   : (!u ? i : u->r + u->rn + (i - u->v - u->vn)) + 1;
	return v->parent ? raw_end(v->parent, p - 1) : p;
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
static bool all_hex(const char *s, size_t n)
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
		if (cut && n < 3 && all_hex(s + 1, n - 1))
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
		bool partial = all_hex(s + 2, n - 2);
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
		bool partial = !memcmp(s + 6, lo, m < 2 ? m : 2) && all_hex(s + 8, m > 2 ? m - 2 : 0);
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
			if (cut && all_hex(s + 2, n - 2))
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
static bool wanted(const struct redactor *r, int w, const char *d, size_t len)
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
static int build(int w, const char *d, size_t len, bool cut, struct view *v, struct view *tmp)
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

/* ---- the forms of a secret ----------------------------------------------- */

static const char b64_std[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char b64_url[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* Padded base64 of (shift zero bytes + s) into b. */
static int base64(struct buf *b, const char *s, size_t n, size_t shift, const char *alpha)
{
	size_t total = n + shift;
	for (size_t i = 0; i < total; i += 3) {
		uint8_t in[3] = {0, 0, 0};
		size_t k = total - i < 3 ? total - i : 3;
		for (size_t j = 0; j < k; j++)
			in[j] = i + j < shift ? 0 : (uint8_t)s[i + j - shift];
		char o[4] = {
			alpha[in[0] >> 2],
			alpha[((in[0] & 3) << 4) | (in[1] >> 4)],
			k > 1 ? alpha[((in[1] & 15) << 2) | (in[2] >> 6)] : '=',
			k > 2 ? alpha[in[2] & 63] : '=',
		};
		int r = buf_add(b, o, 4);
		if (r < 0)
			return r;
	}
	return 0;
}

/* The forms of one secret, collected before any is committed. */
struct forms {
	struct pattern v[32];
	size_t n;
};

static bool listed(const struct pattern *v, size_t n, const char *s, size_t len, int view)
{
	for (size_t i = 0; i < n; i++)
		if (v[i].view == view && v[i].n == len && !memcmp(v[i].s, s, len))
			return true;
	return false;
}

static int form(struct forms *f, int view, const char *s, size_t n)
{
	if (n < REDACT_MIN_LEN || listed(f->v, f->n, s, n, view))
		return 0;
	if (f->n >= sizeof(f->v) / sizeof(f->v[0]))
		return -ENOSPC;
	char *copy = malloc(n);
	if (!copy)
		return -ENOMEM;
	memcpy(copy, s, n);
	f->v[f->n++] = (struct pattern){copy, n, (uint8_t)view};
	return 0;
}

/* Base64 of the secret alone, padded and not, and the characters fully
 * determined by it at each alignment in a longer text; in view w. */
static int base64_forms(struct forms *f, int w, const char *s, size_t n, const char *alpha,
			struct buf *b)
{
	int r;
	buf_reset(b);
	if ((r = base64(b, s, n, 0, alpha)) < 0)
		return r;
	size_t unpadded = b->len;
	while (unpadded && b->data[unpadded - 1] == '=')
		unpadded--;
	if ((r = form(f, w, b->data, b->len)) < 0 || (r = form(f, w, b->data, unpadded)) < 0)
		return r;
	for (size_t shift = 0; shift < 3; shift++) {
		buf_reset(b);
		if ((r = base64(b, s, n, shift, alpha)) < 0)
			return r;
		size_t first = (8 * shift + 5) / 6, last = (n + shift) * 8 / 6;
		if (last > first && (r = form(f, w, b->data + first, last - first)))
			return r;
	}
	return 0;
}

/* s with every `'` replaced by q (a shell's way to put one inside '...'). */
static int quote_form(struct forms *f, const char *s, size_t n, const char *q, struct buf *b)
{
	buf_reset(b);
	int r = 0;
	for (size_t i = 0; i < n && r == 0; i++)
		r = s[i] == '\'' ? buf_adds(b, q) : buf_addc(b, s[i]);
	return r < 0 ? r : form(f, V_RAW, b->data, b->len);
}

static int collect(struct forms *f, const char *s, size_t n)
{
	struct buf b = BUF_INIT;
	int r = form(f, V_RAW, s, n);
	if (r == 0 && memchr(s, '\'', n) &&
	    (r = quote_form(f, s, n, "'\\''", &b)) == 0)
		r = quote_form(f, s, n, "'\"'\"'", &b);
	if (r == 0)
		r = base64_forms(f, V_RAW, s, n, b64_std, &b);
	if (r == 0)
		r = base64_forms(f, V_RAW, s, n, b64_url, &b);
	if (r == 0)
		r = base64_forms(f, V_B64, s, n, b64_std, &b);
	for (int w = V_PCT; w < V_COUNT && r == 0; w++)
		r = form(f, w, s, n);
	buf_free(&b);
	return r;
}

/* Notes a secret too short to mask; counts each distinct one once. */
static void note_short(struct redactor *r, const char *s, size_t len)
{
	for (size_t i = 0; i < r->n_short_kept; i++)
		if (r->short_len[i] == len && !memcmp(r->shorts[i], s, len))
			return;
	if (r->n_short_kept < SHORT_KEPT) {
		memcpy(r->shorts[r->n_short_kept], s, len);
		r->short_len[r->n_short_kept++] = (uint8_t)len;
	}
	r->n_short++;
}

int redact_add(struct redactor *r, const char *secret, size_t len)
{
	struct forms f = {.n = 0};
	int rc;
	if (len == 0)
		return 0;
	if (len < REDACT_MIN_LEN) {
		note_short(r, secret, len);
		return REDACT_TOO_SHORT;
	}
	if (len > REDACT_MAX_SECRET)
		return -E2BIG;
	if (listed(r->p, r->n, secret, len, V_RAW))
		return 0;
	if ((rc = collect(&f, secret, len)) < 0)
		goto out;
	size_t fresh = 0;
	for (size_t i = 0; i < f.n; i++)
		if (!listed(r->p, r->n, f.v[i].s, f.v[i].n, f.v[i].view))
			fresh++;
	if (r->n + fresh > REDACT_MAX_PATTERNS) {
		rc = -ENOSPC;
		goto out;
	}
	if (r->n + fresh > r->cap) {
		size_t cap = r->cap ? r->cap : 16;
		while (cap < r->n + fresh)
			cap *= 2;
		struct pattern *p = realloc(r->p, cap * sizeof(*p));
		if (!p) {
			rc = -ENOMEM;
			goto out;
		}
		r->p = p;
		r->cap = cap;
	}
	if (memchr(secret, ' ', len))
		r->spaced = true;
	for (size_t i = 0; i < f.n; i++) {
		if (listed(r->p, r->n, f.v[i].s, f.v[i].n, f.v[i].view))
			continue;
		r->p[r->n++] = f.v[i];
		if (span_cap(&f.v[i]) > r->max_len)
			r->max_len = span_cap(&f.v[i]);
		f.v[i].s = NULL;
	}
	rc = 0;
out:
	for (size_t i = 0; i < f.n; i++)
		free(f.v[i].s);
	return rc;
}

/* ---- matching ------------------------------------------------------------ */

struct run {
	size_t start, end;
};

struct runs {
	struct run *v;
	size_t n, cap;
};

static int run_add(struct runs *rs, size_t start, size_t end)
{
	if (rs->n == rs->cap) {
		size_t cap = rs->cap ? rs->cap * 2 : 16;
		struct run *p = realloc(rs->v, cap * sizeof(*p));
		if (!p)
			return -ENOMEM;
		rs->v = p;
		rs->cap = cap;
	}
	rs->v[rs->n++] = (struct run){start, end};
	return 0;
}

static int run_cmp(const void *a, const void *b)
{
	const struct run *x = a, *y = b;
	return (x->start > y->start) - (x->start < y->start);
}

/* Sorts the runs and merges those that overlap. */
static void runs_merge(struct runs *rs)
{
	if (rs->n > 1)
		qsort(rs->v, rs->n, sizeof(*rs->v), run_cmp);
	size_t k = 0;
	for (size_t i = 0; i < rs->n; i++) {
		if (k && rs->v[i].start < rs->v[k - 1].end) {
			if (rs->v[i].end > rs->v[k - 1].end)
				rs->v[k - 1].end = rs->v[i].end;
		} else {
			rs->v[k++] = rs->v[i];
		}
	}
	rs->n = k;
}

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
		size_t pos = 0, rs_start = 0, rs_end = 0, cap = span_cap(p);
		bool open = false;
		int rc;
		while (pos + p->n <= tn) {
			const char *hit = memmem(t + pos, tn - pos, p->s, p->n);
			if (!hit)
				break;
			size_t s = (size_t)(hit - t);
			pos = s + 1;
			size_t a = w == V_RAW ? s : raw_start(v, s);
			size_t b = w == V_RAW ? s + p->n : raw_end(v, s + p->n - 1);
			if (b - a > cap)
				continue;
			if (open && base + a < rs_end) {
				if (base + b > rs_end)
					rs_end = base + b;
				continue;
			}
			if (open && (rc = run_add(rs, rs_start, rs_end)) < 0)
				return rc;
			rs_start = base + a;
			rs_end = base + b;
			open = true;
		}
		if (open && (rc = run_add(rs, rs_start, rs_end)) < 0)
			return rc;
	}
	return 0;
}

/* Adds every match in d[0 .. len) to rs, offset by base. */
static int find(const struct redactor *r, const char *d, size_t len, size_t base,
		struct runs *rs)
{
	struct view v = {0}, tmp = {0};
	int rc = 0;
	if (!len)
		return 0;
	for (int w = 0; w < V_COUNT && rc == 0 && r && r->n; w++) {
		if (!wanted(r, w, d, len))
			continue;
		if ((rc = build(w, d, len, false, &v, &tmp)) == 0)
			rc = search(r, w, d, len, &v, base, rs);
		view_free(&v);
		view_free(&tmp);
	}
	return rc;
}

/* ---- edges --------------------------------------------------------------- */

/* The longest k < pn with t[tn - k .. tn) == p[0 .. k): how far the end of
 * t may run into p. KMP over the last pn - 1 bytes of t; fail has pn
 * entries. */
static size_t overlap(const char *t, size_t tn, const char *p, size_t pn, size_t *fail)
{
	if (pn < 2)
		return 0;
	fail[0] = 0;
	for (size_t i = 1, k = 0; i < pn; i++) {
		while (k && p[i] != p[k])
			k = fail[k - 1];
		if (p[i] == p[k])
			k++;
		fail[i] = k;
	}
	size_t from = tn > pn - 1 ? tn - (pn - 1) : 0, q = 0;
	for (size_t i = from; i < tn; i++) {
		while (q && t[i] != p[q])
			q = fail[q - 1];
		if (t[i] == p[q])
			q++;
		if (q == pn)
			q = fail[q - 1];
	}
	return q;
}

static void reverse(char *dst, const char *src, size_t n)
{
	for (size_t i = 0; i < n; i++)
		dst[i] = src[n - 1 - i];
}

struct edge_tmp {
	size_t *fail;
	char *rt, *rp;     /* reversed text and pattern (head) */
};

/* Adds the run of a pattern piece at the end (tail) or start (head) of
 * view w of d[0 .. len) (offset base in the text; tlen: the text's end). */
static int edge_view(const struct redactor *r, int w, const char *d, size_t len, bool tail,
		     size_t base, size_t skip, size_t tlen, struct edge_tmp *et, struct runs *rs)
{
	struct view v = {0}, tmp = {0};
	int rc = build(w, d, len, tail, &v, &tmp);
	const char *t = w == V_RAW ? d : v.d;
	size_t tn = w == V_RAW ? len : v.n;
	for (size_t i = 0; rc == 0 && i < r->n; i++) {
		const struct pattern *p = &r->p[i];
		if (p->view != w)
			continue;
		size_t k;
		if (tail) {
			k = overlap(t, tn, p->s, p->n, et->fail);
		} else {
			size_t m = tn < p->n - 1 ? tn : p->n - 1;
			reverse(et->rt, t, m);
			reverse(et->rp, p->s, p->n);
			k = overlap(et->rt, m, et->rp, p->n, et->fail);
		}
		if (k < REDACT_EDGE_MIN)
			continue;
		if (tail)
			rc = run_add(rs, base + (w == V_RAW ? tn - k : raw_start(&v, tn - k)), tlen);
		else
			rc = run_add(rs, 0, base + skip + (w == V_RAW ? k : raw_end(&v, k - 1)));
	}
	view_free(&v);
	view_free(&tmp);
	return rc;
}

/* Whether s[0 .. n) can be the end of an escape a cut went through: hex
 * digits (after a u, U or x: "0027" of "\u0027", "2F" of "%2F"), or an
 * entity's end ("39;", "amp;"). */
static bool escape_rest(const char *s, size_t n)
{
	if (n && s[n - 1] == ';') {
		for (size_t i = 0; i + 1 < n; i++)
			if (!((s[i] >= '0' && s[i] <= '9') || ((s[i] | 0x20) >= 'a' &&
			      (s[i] | 0x20) <= 'z') || s[i] == '#'))
				return false;
		return true;
	}
	size_t i = n && strchr("uUx", s[0]) ? 1 : 0;
	return all_hex(s + i, n - i);
}

/* Adds the runs of pattern pieces at the lost edges of in[0 .. len). */
static int edges(const struct redactor *r, const char *in, size_t len, int cut,
		 struct runs *rs)
{
	size_t win = r->max_len + REDACT_STREAM_CONTEXT, longest = 0;
	for (size_t i = 0; i < r->n; i++)
		if (r->p[i].n > longest)
			longest = r->p[i].n;
	if (win > len)
		win = len;
	struct edge_tmp et = {malloc(longest * sizeof(size_t)), malloc(win + 1), malloc(longest)};
	int rc = et.fail && et.rt && et.rp ? 0 : -ENOMEM;
	for (int w = 0; w < V_COUNT && rc == 0 && (cut & REDACT_CUT_TAIL); w++) {
		const char *d = in + len - win;
		if (wanted(r, w, d, win))
			rc = edge_view(r, w, d, win, true, len - win, 0, len, &et, rs);
	}
	/* At the head, the cut may have left the end of an escape: the views
	 * but base64 also start past up to 5 such bytes. */
	for (size_t skip = 0; skip <= 5 && skip < win && rc == 0 && (cut & REDACT_CUT_HEAD); skip++) {
		if (skip && !escape_rest(in, skip))
			continue;
		for (int w = 0; w < V_COUNT && rc == 0; w++)
			if ((w != V_B64 || !skip) && wanted(r, w, in + skip, win - skip))
				rc = edge_view(r, w, in + skip, win - skip, false, 0, skip, len, &et, rs);
	}
	free(et.fail);
	free(et.rt);
	free(et.rp);
	return rc;
}

/* ---- output -------------------------------------------------------------- */

/* Appends d[start .. end) with the (merged) runs masked; a run crossing
 * start is masked too, unless cont (it continues a mask already written).
 * *past: how far beyond end the last run emitted reaches (0: none). */
static int emit(const struct runs *rs, const char *d, size_t start, size_t end, bool cont,
		struct buf *out, size_t *past)
{
	size_t pos = start;
	int rc = 0;
	*past = 0;
	for (size_t i = 0; rc == 0 && i < rs->n && rs->v[i].start < end; i++) {
		const struct run *u = &rs->v[i];
		if (u->end <= pos)
			continue;
		if (u->start > pos)
			rc = buf_add(out, d + pos, u->start - pos);
		if (rc == 0 && !(cont && u->start <= start))
			rc = buf_adds(out, REDACT_MASK);
		pos = u->end;
	}
	if (rc == 0 && pos < end)
		rc = buf_add(out, d + pos, end - pos);
	if (pos > end)
		*past = pos - end;
	return rc;
}

int redact_slice(const struct redactor *r, const char *in, size_t len,
		 size_t start, size_t end, int cut, struct buf *out)
{
	size_t len0 = out->len, past;
	size_t margin = r ? r->max_len + REDACT_STREAM_CONTEXT : 0;
	size_t w0 = start > margin ? start - margin : 0;
	size_t w1 = len - end > margin ? end + margin : len;
	struct runs rs = {NULL, 0, 0};
	int rc = 0;
	if (r && r->n) {
		rc = find(r, in + w0, w1 - w0, w0, &rs);
		int lost = (w0 == 0 ? cut & REDACT_CUT_HEAD : 0) |
			   (w1 == len ? cut & REDACT_CUT_TAIL : 0);
		if (rc == 0 && lost && len)
			rc = edges(r, in, len, lost, &rs);
		runs_merge(&rs);
	}
	if (rc == 0)
		rc = emit(&rs, in, start, end, false, out, &past);
	free(rs.v);
	if (rc < 0) {
		out->len = len0;
		if (out->data)
			out->data[len0] = '\0';
	}
	return rc;
}

int redact_text(const struct redactor *r, const char *in, size_t len,
		struct buf *out)
{
	return redact_slice(r, in, len, 0, len, 0, out);
}

bool redact_contains(const struct redactor *r, const char *in, size_t len)
{
	if (!r || !r->n)
		return false;
	struct runs rs = {NULL, 0, 0};
	int rc = find(r, in, len, 0, &rs);
	bool found = rc < 0 || rs.n > 0;
	free(rs.v);
	return found;
}

/* ---- streams ------------------------------------------------------------- */

void redact_stream_init(struct redact_stream *s, const struct redactor *r)
{
	s->r = r;
	s->hold = (struct buf)BUF_INIT;
	s->ctx = 0;
	s->covered = 0;
}

/* Emits what is known final: all of it when last. The hold then keeps up
 * to REDACT_STREAM_CONTEXT emitted bytes before what is withheld, so an
 * escape that began before a chunk's end still decodes as it will in the
 * whole text. */
static int stream_step(struct redact_stream *s, struct buf *out, bool last, bool cut)
{
	size_t keep = s->r && s->r->max_len ? s->r->max_len - 1 : 0;
	size_t len = s->hold.len, ctx = s->ctx;
	size_t safe = last ? len : len - ctx > keep ? len - keep : ctx;
	if (safe == ctx && !last)
		return 0;
	const char *d = s->hold.data ? s->hold.data : "";
	struct runs rs = {NULL, 0, 0};
	size_t past = 0;
	int rc = 0;
	if (s->covered)
		rc = run_add(&rs, ctx, ctx + s->covered);
	if (rc == 0 && s->r && s->r->n)
		rc = find(s->r, d, len, 0, &rs);
	if (rc == 0 && cut && s->r && s->r->n && len)
		rc = edges(s->r, d, len, REDACT_CUT_TAIL, &rs);
	if (rc == 0) {
		runs_merge(&rs);
		rc = emit(&rs, d, ctx, safe, s->covered > 0, out, &past);
	}
	free(rs.v);
	if (rc < 0)
		return rc;
	size_t nctx = safe < REDACT_STREAM_CONTEXT ? safe : REDACT_STREAM_CONTEXT;
	memmove(s->hold.data, s->hold.data + safe - nctx, len - safe + nctx);
	s->hold.len = len - safe + nctx;
	s->hold.data[s->hold.len] = '\0';
	s->ctx = nctx;
	s->covered = past;
	return 0;
}

int redact_stream_feed(struct redact_stream *s, const char *data, size_t len,
		       struct buf *out)
{
	int rc = buf_add(&s->hold, data, len);
	return rc < 0 ? rc : stream_step(s, out, false, false);
}

static int flush(struct redact_stream *s, struct buf *out, bool cut)
{
	int rc = 0;
	if (s->hold.len > s->ctx)
		rc = stream_step(s, out, true, cut);
	buf_reset(&s->hold);
	s->ctx = 0;
	s->covered = 0;
	return rc;
}

int redact_stream_flush(struct redact_stream *s, struct buf *out)
{
	return flush(s, out, false);
}

int redact_stream_flush_cut(struct redact_stream *s, struct buf *out)
{
	return flush(s, out, true);
}

void redact_stream_free(struct redact_stream *s)
{
	if (!s)
		return;
	buf_free(&s->hold);
	s->ctx = 0;
	s->covered = 0;
}
