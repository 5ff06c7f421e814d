/* suggest.c: bounded edit distance and the best-candidate search.
 *
 * Invariant: distances are computed on at most SUGGEST_MAX_LEN bytes with
 * three rows on the stack, so a hint costs no allocation.
 */
#include "util/suggest.h"

#include <string.h>

static size_t min3(size_t a, size_t b, size_t c)
{
	size_t m = a < b ? a : b;
	return m < c ? m : c;
}

/* Case differences count as half a typo: compare folded, add one if the
 * folded strings are equal but the originals differ. */
static char fold(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

size_t suggest_distance(const char *a, size_t an, const char *b, size_t bn,
			size_t max)
{
	size_t rows[3][SUGGEST_MAX_LEN + 1];
	size_t *pp = rows[0], *p = rows[1], *c = rows[2];
	if (an > SUGGEST_MAX_LEN || bn > SUGGEST_MAX_LEN)
		return max + 1;
	if ((an > bn ? an - bn : bn - an) > max)
		return max + 1;
	for (size_t j = 0; j <= bn; j++)
		p[j] = j;
	for (size_t i = 1; i <= an; i++) {
		size_t row_min = c[0] = i;
		for (size_t j = 1; j <= bn; j++) {
			size_t cost = fold(a[i - 1]) == fold(b[j - 1]) ? 0 : 1;
			c[j] = min3(p[j] + 1, c[j - 1] + 1, p[j - 1] + cost);
			if (i > 1 && j > 1 && fold(a[i - 1]) == fold(b[j - 2]) &&
			    fold(a[i - 2]) == fold(b[j - 1]) && pp[j - 2] + 1 < c[j])
				c[j] = pp[j - 2] + 1;
			if (c[j] < row_min)
				row_min = c[j];
		}
		if (row_min > max)
			return max + 1;
		size_t *t = pp;
		pp = p;
		p = c;
		c = t;
	}
	size_t d = p[bn];
	if (d == 0 && (an != bn || memcmp(a, b, an)))
		d = 1; /* differ only in case */
	return d;
}

void suggest_init(struct suggest *s, const char *word, size_t len)
{
	s->word = word;
	s->len = len;
	s->limit = len / 3 > 1 ? len / 3 : 1;
	s->best_dist = s->limit + 1;
	s->best = NULL;
}

void suggest_offer(struct suggest *s, const char *cand)
{
	size_t n = strlen(cand);
	if (s->len > SUGGEST_MAX_LEN || n > SUGGEST_MAX_LEN)
		return;
	if (n == s->len && memcmp(cand, s->word, n) == 0)
		return; /* the word itself is no hint */
	size_t d = suggest_distance(s->word, s->len, cand, n, s->best_dist - 1);
	if (d < s->best_dist) {
		s->best_dist = d;
		s->best = cand;
	}
}
