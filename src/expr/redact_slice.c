/* redact_slice.c: runs of text to mask, the pieces of secrets at a cut
 * edge, and masking a slice of a text; see redact.h.
 *
 * A run is a part of the text to mask. Matches (redact.c) and pieces at
 * the edges add runs; they are then sorted and merged, and each merged run
 * becomes one REDACT_MASK.
 *
 * Edges: at a cut, the longest end of the text that is the start of a
 * pattern (or the reverse) is found with the KMP failure function, in
 * O(pattern) per pattern.
 *
 * Invariant: a slice is masked as it reads inside the whole text: about
 * redact_max_len() + REDACT_STREAM_CONTEXT bytes on each side of it are
 * searched, which holds every match that crosses it and the start of any
 * escape a match there decodes.
 */
#include "expr/redact_int.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ---- runs ---------------------------------------------------------------- */

int redact_run_add(struct runs *rs, size_t start, size_t end)
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
void redact_runs_merge(struct runs *rs)
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
	int rc = redact_view_build(w, d, len, tail, &v, &tmp);
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
			rc = redact_run_add(rs, base + (w == V_RAW ? tn - k : redact_raw_start(&v, tn - k)),
					    tlen);
		else
			rc = redact_run_add(rs, 0, base + skip + (w == V_RAW ? k
									     : redact_raw_end(&v, k - 1)));
	}
	redact_view_free(&v);
	redact_view_free(&tmp);
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
	return redact_all_hex(s + i, n - i);
}

/* Adds the runs of pattern pieces at the lost edges of in[0 .. len). */
int redact_edges(const struct redactor *r, const char *in, size_t len, int cut,
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
		if (redact_view_wanted(r, w, d, win))
			rc = edge_view(r, w, d, win, true, len - win, 0, len, &et, rs);
	}
	/* At the head, the cut may have left the end of an escape: the views
	 * but base64 also start past up to 5 such bytes. */
	for (size_t skip = 0; skip <= 5 && skip < win && rc == 0 && (cut & REDACT_CUT_HEAD); skip++) {
		if (skip && !escape_rest(in, skip))
			continue;
		for (int w = 0; w < V_COUNT && rc == 0; w++)
			if ((w != V_B64 || !skip) &&
			    redact_view_wanted(r, w, in + skip, win - skip))
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
int redact_emit(const struct runs *rs, const char *d, size_t start, size_t end, bool cont,
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
		rc = redact_find(r, in + w0, w1 - w0, w0, &rs);
		int lost = (w0 == 0 ? cut & REDACT_CUT_HEAD : 0) |
			   (w1 == len ? cut & REDACT_CUT_TAIL : 0);
		if (rc == 0 && lost && len)
			rc = redact_edges(r, in, len, lost, &rs);
		redact_runs_merge(&rs);
	}
	if (rc == 0)
		rc = redact_emit(&rs, in, start, end, false, out, &past);
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
	int rc = redact_find(r, in, len, 0, &rs);
	bool found = rc < 0 || rs.n > 0;
	free(rs.v);
	return found;
}
