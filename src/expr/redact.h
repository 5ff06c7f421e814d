/* redact.h: replacing secret values by *** in text and in output streams.
 *
 * A redactor holds secrets and finds each in every common form it takes
 * once encoded, whichever characters the encoder chose to leave alone:
 *  - as is, and shell-quoted ('\'' or '"'"' for a quote inside '...');
 *  - base64, standard or URL-safe, padded or not, wrapped over lines, and
 *    at the three byte alignments it can have inside a longer base64 text
 *    (e.g. "Basic base64(user:secret)");
 *  - percent-encoded: any set of characters escaped (RFC 3986 unreserved,
 *    encodeURIComponent, encodeURI, Python's quote), upper- or lower-case
 *    hex, '+' or %20 for a space;
 *  - backslash-escaped: JSON (\" \\ \/ \n, \u00e9 or \u00E9, \u003c for
 *    HTML safety, surrogate pairs), C, Python (\x41, \U0001F600), shell
 *    (\$ \' $'...'), and JSON holding a percent-encoded value;
 *  - HTML character references (&#39; &#x27; &quot; &amp; ...).
 * It does so by decoding the text while matching (see redact.c), not by
 * listing every variant. Where matches overlap, the union of their bytes
 * becomes one ***.
 *
 * Secrets shorter than REDACT_MIN_LEN bytes are not masked: masking every
 * "a" or "ab" would garble all output while protecting nothing (such a
 * value is guessed at once). redact_add says so, so the caller can warn.
 *
 * Cuts: text cut from a longer text (a tail, a capped capture) can begin or
 * end inside a secret. redact_slice masks a part of the text as it reads
 * inside the whole (a secret crossing the cut is masked), and where the
 * bytes beyond a cut are lost, a piece of a secret of at least
 * REDACT_EDGE_MIN bytes at that edge.
 *
 * Invariant of a stream: it withholds fewer than redact_max_len() +
 * REDACT_STREAM_CONTEXT bytes, so a secret split across chunks at any
 * position is still masked, and the output of feed()s then flush() is the
 * same as redact_text() of the whole.
 */
#ifndef DAGRUN_EXPR_REDACT_H
#define DAGRUN_EXPR_REDACT_H

#include <stdbool.h>
#include <stddef.h>

#include "util/buf.h"

#define REDACT_MASK "***"
#define REDACT_MIN_LEN 4                       /* a shorter secret is not masked */
#define REDACT_EDGE_MIN 3                      /* a piece of a secret at a cut */
#define REDACT_MAX_SECRET ((size_t)64 << 10)   /* one secret: 64 KiB */
#define REDACT_MAX_PATTERNS 4096u
#define REDACT_STREAM_CONTEXT 16               /* bytes a stream keeps for decoding */

/* Returned by redact_add for a secret too short to mask. */
#define REDACT_TOO_SHORT 1

/* What was lost around a text given to redact_slice. */
enum redact_cut {
	REDACT_CUT_HEAD = 1,   /* bytes before in[0] */
	REDACT_CUT_TAIL = 2,   /* bytes after in[len - 1] */
};

struct redactor;

/* A new empty redactor. Returns 0 or -ENOMEM. */
int redact_new(struct redactor **out);

/* Frees it. Accepts NULL. */
void redact_free(struct redactor *r);

/* Adds a secret. Adding the same secret again, or an empty one, does
 * nothing and returns 0. Returns REDACT_TOO_SHORT (> 0) for a secret of 1
 * to REDACT_MIN_LEN - 1 bytes, which is not added; 0; -E2BIG for a secret
 * over REDACT_MAX_SECRET; -ENOSPC past REDACT_MAX_PATTERNS; -ENOMEM. On
 * failure nothing of this secret was added. */
int redact_add(struct redactor *r, const char *secret, size_t len);

/* How many distinct too-short secrets redact_add was given (those past the
 * first 64 distinct ones are counted every time). */
size_t redact_short_count(const struct redactor *r);

/* Number of patterns (secrets and their forms). */
size_t redact_patterns(const struct redactor *r);

/* The longest text one match can cover, in bytes (0 when empty). */
size_t redact_max_len(const struct redactor *r);

/* Appends in[0 .. len) to out with every secret masked. Returns 0, or
 * -ENOMEM/-E2BIG from out (out is then left as it was). r may be NULL. */
int redact_text(const struct redactor *r, const char *in, size_t len,
		struct buf *out);

/* Appends in[start .. end) to out, masked as it reads inside in[0 .. len):
 * a secret crossing start or end is masked (its part inside becomes ***).
 * cut (enum redact_cut flags) says that text before in[0] or after
 * in[len - 1] was lost: a prefix (suffix) of in[0 .. len) that could be the
 * end (start) of a secret, of at least REDACT_EDGE_MIN bytes, is masked
 * too. Only about redact_max_len() bytes around the slice are examined.
 * Requires start <= end <= len. Returns as redact_text. */
int redact_slice(const struct redactor *r, const char *in, size_t len,
		 size_t start, size_t end, int cut, struct buf *out);

/* Whether in[0 .. len) holds a secret in any of its forms. -ENOMEM counts
 * as true (the caller then treats the text as secret). */
bool redact_contains(const struct redactor *r, const char *in, size_t len);

/* A streaming redactor over one output stream. */
struct redact_stream {
	const struct redactor *r;   /* borrowed */
	struct buf hold;            /* context, then bytes not yet known safe */
	size_t ctx;                 /* leading bytes of hold already emitted */
	size_t covered;             /* bytes after ctx already masked */
};

void redact_stream_init(struct redact_stream *s, const struct redactor *r);

/* Takes a chunk; appends to out what is now known to be final. Returns 0,
 * or -ENOMEM/-E2BIG. */
int redact_stream_feed(struct redact_stream *s, const char *data, size_t len,
		       struct buf *out);

/* Appends what is withheld (masked as needed). The stream can be reused. */
int redact_stream_flush(struct redact_stream *s, struct buf *out);

/* The same when the stream was cut: what followed its last chunk was lost
 * (e.g. a body stopped at its size limit), so a piece of a secret at its
 * end (REDACT_EDGE_MIN bytes or more) is masked too. */
int redact_stream_flush_cut(struct redact_stream *s, struct buf *out);

/* Frees what the stream holds. Accepts NULL. */
void redact_stream_free(struct redact_stream *s);

#endif
