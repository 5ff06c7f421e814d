/* redact_forms.c: the pattern set of a redactor; see redact.h.
 *
 * A secret is added as the forms it takes once encoded, each a pattern
 * searched in one view of the text (redact.c): as is in V_RAW and in every
 * decoding view but V_B64; in V_RAW too its shell-quoted forms (when it
 * holds a quote) and its base64, standard and URL-safe, padded or not and
 * at each of the three alignments it can have inside a longer base64
 * text; in V_B64 its standard base64 (that view reads the URL-safe
 * alphabet as the standard one).
 *
 * Invariant: a secret is added whole or not at all (its forms are
 * collected, then committed only when all fit), no (view, bytes) pattern
 * is held twice, and max_len is the largest span of any pattern. A secret
 * too short to mask is only counted.
 */
#include "expr/redact_int.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

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
		if (redact_span_cap(&f.v[i]) > r->max_len)
			r->max_len = redact_span_cap(&f.v[i]);
		f.v[i].s = NULL;
	}
	rc = 0;
out:
	for (size_t i = 0; i < f.n; i++)
		free(f.v[i].s);
	return rc;
}
