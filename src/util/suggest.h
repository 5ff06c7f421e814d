/* suggest.h: "did you mean" hints by edit distance.
 *
 * Invariant: a suggestion is only made when the candidate is close enough
 * to be a plausible typo (distance <= max(1, len/3)), and ties keep the
 * first candidate offered, so hints are deterministic.
 */
#ifndef DAGRUN_SUGGEST_H
#define DAGRUN_SUGGEST_H

#include <stddef.h>

#define SUGGEST_MAX_LEN 64   /* longer words get no suggestion */

struct suggest {
	const char *word;
	size_t len;
	size_t limit;        /* largest distance accepted */
	size_t best_dist;
	const char *best;    /* NULL until a candidate is close enough */
};

/* Starts a search for a candidate close to word[0..len). */
void suggest_init(struct suggest *s, const char *word, size_t len);

/* Offers one candidate (NUL-terminated, borrowed: it must outlive s). */
void suggest_offer(struct suggest *s, const char *cand);

/* Optimal-string-alignment distance between a and b (transpositions count
 * as one edit), or max + 1 if it exceeds max. Both at most SUGGEST_MAX_LEN. */
size_t suggest_distance(const char *a, size_t an, const char *b, size_t bn,
			size_t max);

#endif
