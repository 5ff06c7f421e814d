/* redact.c: secret patterns and masking; see redact.h.
 *
 * Matching: each pattern is searched with memmem (overlapping occurrences
 * included); each pattern's matches come in order and are merged on the
 * fly into runs; the runs of all patterns are then sorted and merged.
 * Cost: O(patterns * text) for ordinary text, with a few secrets the
 * common case.
 */
#include "expr/redact.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct pattern {
	char *s;
	size_t n;
};

struct redactor {
	struct pattern *p;
	size_t n, cap;
	size_t max_len;
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
	return r->n;
}

size_t redact_max_len(const struct redactor *r)
{
	return r->max_len;
}

/* ---- encoded forms ------------------------------------------------------- */

static const char b64_std[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char b64_url[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* Standard padded base64 of (shift zero bytes + s) into b. */
static int base64(struct buf *b, const char *s, size_t n, size_t shift,
		  const char *alpha)
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

enum { JSON_SLASH = 1, JSON_ASCII = 2, JSON_HTML = 4 };

static int json_u(struct buf *b, unsigned v)
{
	static const char hex[] = "0123456789abcdef";
	char u[6] = {'\\', 'u', hex[(v >> 12) & 15], hex[(v >> 8) & 15],
		     hex[(v >> 4) & 15], hex[v & 15]};
	return buf_add(b, u, 6);
}

/* A UTF-8 sequence at s (n bytes left): its code point and length, or 0
 * when invalid. */
static size_t utf8_decode(const unsigned char *s, size_t n, unsigned *cp)
{
	size_t len = s[0] >= 0xf0 ? 4 : s[0] >= 0xe0 ? 3 : s[0] >= 0xc0 ? 2 : 0;
	if (!len || len > n || s[0] > 0xf4)
		return 0;
	unsigned v = s[0] & (0x3f >> (len - 1));
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		v = (v << 6) | (s[i] & 0x3f);
	}
	*cp = v;
	return len;
}

/* s as the inside of a JSON string, the way common encoders write it. */
static int json_escape(struct buf *b, const char *s, size_t n, int flags)
{
	int r = 0;
	for (size_t i = 0; i < n && r == 0; i++) {
		unsigned char c = (unsigned char)s[i];
		const char *e = NULL;
		switch (c) {
		case '"': e = "\\\""; break;
		case '\\': e = "\\\\"; break;
		case '\n': e = "\\n"; break;
		case '\r': e = "\\r"; break;
		case '\t': e = "\\t"; break;
		case '\b': e = "\\b"; break;
		case '\f': e = "\\f"; break;
		case '/': e = flags & JSON_SLASH ? "\\/" : NULL; break;
		}
		if (e) {
			r = buf_adds(b, e);
		} else if (c < 0x20 || ((flags & JSON_HTML)
					&& (c == '<' || c == '>' || c == '&'))) {
			r = json_u(b, c);
		} else if (c >= 0x80 && (flags & JSON_ASCII)) {
			unsigned cp;
			size_t len = utf8_decode((const unsigned char *)s + i,
						 n - i, &cp);
			if (!len)
				return -EILSEQ;
			if (cp >= 0x10000) {
				cp -= 0x10000;
				r = json_u(b, 0xd800 + (cp >> 10));
				if (r == 0)
					r = json_u(b, 0xdc00 + (cp & 0x3ff));
			} else {
				r = json_u(b, cp);
			}
			i += len - 1;
		} else {
			r = buf_addc(b, (char)c);
		}
	}
	return r;
}

enum { PCT_LOWER = 1, PCT_PLUS = 2 };

static int percent(struct buf *b, const char *s, size_t n, int flags)
{
	const char *hex = flags & PCT_LOWER ? "0123456789abcdef"
			  : "0123456789ABCDEF";
	int r = 0;
	for (size_t i = 0; i < n && r == 0; i++) {
		unsigned char c = (unsigned char)s[i];
		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
		    || (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_'
		    || c == '~') {
			r = buf_addc(b, (char)c);
		} else if (c == ' ' && (flags & PCT_PLUS)) {
			r = buf_addc(b, '+');
		} else {
			char e[3] = {'%', hex[c >> 4], hex[c & 15]};
			r = buf_add(b, e, 3);
		}
	}
	return r;
}

/* The forms of one secret, collected before any is committed. */
struct forms {
	struct pattern v[40];
	size_t n;
};

static bool listed(const struct pattern *v, size_t n, const char *s,
		   size_t len)
{
	for (size_t i = 0; i < n; i++)
		if (v[i].n == len && !memcmp(v[i].s, s, len))
			return true;
	return false;
}

static int form(struct forms *f, const char *s, size_t n, size_t min)
{
	if (n < min || listed(f->v, f->n, s, n))
		return 0;
	if (f->n >= sizeof(f->v) / sizeof(f->v[0]))
		return -ENOSPC;
	char *copy = malloc(n ? n : 1);
	if (!copy)
		return -ENOMEM;
	memcpy(copy, s, n);
	f->v[f->n++] = (struct pattern){copy, n};
	return 0;
}

static int base64_forms(struct forms *f, const char *s, size_t n,
			const char *alpha, struct buf *b)
{
	int r;
	buf_reset(b);
	if ((r = base64(b, s, n, 0, alpha)) < 0 || (r = form(f, b->data, b->len, 4)))
		return r;
	size_t unpadded = b->len;
	while (unpadded && b->data[unpadded - 1] == '=')
		unpadded--;
	if ((r = form(f, b->data, unpadded, 4)) < 0)
		return r;
	for (size_t shift = 0; shift < 3; shift++) {
		buf_reset(b);
		if ((r = base64(b, s, n, shift, alpha)) < 0)
			return r;
		size_t first = (8 * shift + 5) / 6, last = (n + shift) * 8 / 6;
		if (last > first && (r = form(f, b->data + first, last - first, 4)))
			return r;
	}
	return 0;
}

static int collect(struct forms *f, const char *s, size_t n)
{
	static const int json_flags[] = {
		0, JSON_SLASH, JSON_ASCII, JSON_HTML, JSON_ASCII | JSON_HTML,
		JSON_SLASH | JSON_ASCII,
	};
	static const int pct_flags[] = {0, PCT_LOWER, PCT_PLUS,
					PCT_LOWER | PCT_PLUS};
	struct buf b = BUF_INIT;
	int r = form(f, s, n, REDACT_MIN_LEN);
	if (r == 0)
		r = base64_forms(f, s, n, b64_std, &b);
	if (r == 0)
		r = base64_forms(f, s, n, b64_url, &b);
	for (size_t i = 0; r == 0 && i < sizeof(pct_flags) / sizeof(int); i++) {
		buf_reset(&b);
		if ((r = percent(&b, s, n, pct_flags[i])) == 0)
			r = form(f, b.data, b.len, 4);
	}
	for (size_t i = 0; r == 0 && i < sizeof(json_flags) / sizeof(int); i++) {
		buf_reset(&b);
		r = json_escape(&b, s, n, json_flags[i]);
		if (r == -EILSEQ)
			r = 0;          /* not UTF-8: no \u form */
		else if (r == 0)
			r = form(f, b.data, b.len, 4);
	}
	buf_free(&b);
	return r;
}

int redact_add(struct redactor *r, const char *secret, size_t len)
{
	struct forms f = {.n = 0};
	int rc;
	if (len < REDACT_MIN_LEN)
		return 0;
	if (len > REDACT_MAX_SECRET)
		return -E2BIG;
	if (listed(r->p, r->n, secret, len))
		return 0;
	if ((rc = collect(&f, secret, len)) < 0)
		goto out;
	size_t fresh = 0;
	for (size_t i = 0; i < f.n; i++)
		if (!listed(r->p, r->n, f.v[i].s, f.v[i].n))
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
	for (size_t i = 0; i < f.n; i++) {
		if (listed(r->p, r->n, f.v[i].s, f.v[i].n))
			continue;
		r->p[r->n++] = f.v[i];
		if (f.v[i].n > r->max_len)
			r->max_len = f.v[i].n;
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

/* Every match of every pattern in d[0 .. len), as sorted disjoint runs;
 * [0, covered) counts as a run too. */
static int find_runs(const struct redactor *r, const char *d, size_t len,
		     size_t covered, struct runs *rs)
{
	int rc = 0;
	if (covered && (rc = run_add(rs, 0, covered)) < 0)
		return rc;
	for (size_t i = 0; r && i < r->n; i++) {
		const struct pattern *p = &r->p[i];
		size_t pos = 0, rs_start = 0, rs_end = 0;
		bool open = false;
		while (pos + p->n <= len) {
			const char *hit = memmem(d + pos, len - pos, p->s, p->n);
			if (!hit)
				break;
			size_t s = (size_t)(hit - d);
			if (open && s < rs_end) {
				rs_end = s + p->n;
			} else {
				if (open && (rc = run_add(rs, rs_start, rs_end)) < 0)
					return rc;
				rs_start = s;
				rs_end = s + p->n;
				open = true;
			}
			pos = s + 1;
		}
		if (open && (rc = run_add(rs, rs_start, rs_end)) < 0)
			return rc;
	}
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
	return 0;
}

/* Emits d[0 .. safe) masked, plus any run that starts before safe. A run
 * starting inside [0, covered) continues a mask already written. Sets
 * *covered_out to how many bytes past safe the last run masked. */
static int emit(const struct redactor *r, const char *d, size_t len,
		size_t covered, size_t safe, struct buf *out,
		size_t *covered_out)
{
	struct runs rs = {NULL, 0, 0};
	size_t pos = 0;
	int rc = find_runs(r, d, len, covered, &rs);
	*covered_out = 0;
	for (size_t i = 0; rc == 0 && i < rs.n && rs.v[i].start < safe; i++) {
		if (rs.v[i].start > pos)
			rc = buf_add(out, d + pos, rs.v[i].start - pos);
		if (rc == 0 && !(covered && rs.v[i].start == 0))
			rc = buf_adds(out, REDACT_MASK);
		pos = rs.v[i].end;
	}
	if (rc == 0 && pos < safe)
		rc = buf_add(out, d + pos, safe - pos);
	if (pos > safe)
		*covered_out = pos - safe;
	free(rs.v);
	return rc;
}

int redact_text(const struct redactor *r, const char *in, size_t len,
		struct buf *out)
{
	size_t len0 = out->len, dummy;
	int rc = emit(r, in, len, 0, len, out, &dummy);
	if (rc < 0) {
		out->len = len0;
		if (out->data)
			out->data[len0] = '\0';
	}
	return rc;
}

void redact_stream_init(struct redact_stream *s, const struct redactor *r)
{
	s->r = r;
	s->hold = (struct buf)BUF_INIT;
	s->covered = 0;
}

static int stream_step(struct redact_stream *s, struct buf *out, bool last)
{
	size_t keep = s->r && s->r->max_len ? s->r->max_len - 1 : 0;
	size_t len = s->hold.len;
	size_t safe = last ? len : len > keep ? len - keep : 0;
	size_t covered;
	if (safe == 0 && !last)
		return 0;
	int rc = emit(s->r, s->hold.data ? s->hold.data : "", len, s->covered,
		      safe, out, &covered);
	if (rc < 0)
		return rc;
	memmove(s->hold.data, s->hold.data + safe, len - safe);
	s->hold.len = len - safe;
	s->hold.data[s->hold.len] = '\0';
	s->covered = covered;
	return 0;
}

int redact_stream_feed(struct redact_stream *s, const char *data, size_t len,
		       struct buf *out)
{
	int rc = buf_add(&s->hold, data, len);
	return rc < 0 ? rc : stream_step(s, out, false);
}

int redact_stream_flush(struct redact_stream *s, struct buf *out)
{
	if (!s->hold.len)
		return 0;
	int rc = stream_step(s, out, true);
	s->covered = 0;
	return rc;
}

void redact_stream_free(struct redact_stream *s)
{
	if (!s)
		return;
	buf_free(&s->hold);
	s->covered = 0;
}
