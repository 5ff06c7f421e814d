/* redact.h: replacing secret values by *** in text and in output streams.
 *
 * A redactor holds a set of patterns: each secret, and the forms it takes
 * once encoded, which are just as readable: base64 (standard and URL-safe,
 * with and without padding, and at the three byte alignments it can have
 * inside a longer base64 text, e.g. "Basic base64(user:secret)"),
 * percent-encoding (upper- and lower-case hex, and '+' for space), and JSON
 * string escaping (also with \/ and with \uXXXX for non-ASCII).
 * Where matches overlap, the union of their bytes becomes one ***.
 * Secrets shorter than REDACT_MIN_LEN bytes are ignored (and encoded forms
 * shorter than 4): masking every "a" or "1" would garble all output while
 * protecting nothing.
 * Invariant of a stream: it withholds at most (longest pattern - 1) bytes,
 * so a secret split across chunks at any position is still masked, and the
 * output of feed()s then flush() is the same as redact_text() of the whole.
 */
#ifndef DAGRUN_EXPR_REDACT_H
#define DAGRUN_EXPR_REDACT_H

#include <stdbool.h>
#include <stddef.h>

#include "util/buf.h"

#define REDACT_MASK "***"
#define REDACT_MIN_LEN 3
#define REDACT_MAX_SECRET ((size_t)64 << 10)   /* one secret: 64 KiB */
#define REDACT_MAX_PATTERNS 4096u

struct redactor;

/* A new empty redactor. Returns 0 or -ENOMEM. */
int redact_new(struct redactor **out);

/* Frees it. Accepts NULL. */
void redact_free(struct redactor *r);

/* Adds a secret (and its encoded forms). Adding the same secret again, or
 * one shorter than REDACT_MIN_LEN, does nothing. Returns 0; -E2BIG for a
 * secret over REDACT_MAX_SECRET; -ENOSPC past REDACT_MAX_PATTERNS; -ENOMEM.
 * On failure nothing of this secret was added. */
int redact_add(struct redactor *r, const char *secret, size_t len);

/* Number of patterns (secrets and their forms). */
size_t redact_patterns(const struct redactor *r);

/* The longest pattern, in bytes (0 when empty). */
size_t redact_max_len(const struct redactor *r);

/* Appends in[0 .. len) to out with every pattern masked. Returns 0, or
 * -ENOMEM/-E2BIG from out (out is then left as it was). */
int redact_text(const struct redactor *r, const char *in, size_t len,
		struct buf *out);

/* A streaming redactor over one output stream. */
struct redact_stream {
	const struct redactor *r;   /* borrowed */
	struct buf hold;            /* bytes not yet known to be safe */
	size_t covered;             /* leading bytes of hold already masked */
};

void redact_stream_init(struct redact_stream *s, const struct redactor *r);

/* Takes a chunk; appends to out what is now known to be final. Returns 0,
 * or -ENOMEM/-E2BIG. */
int redact_stream_feed(struct redact_stream *s, const char *data, size_t len,
		       struct buf *out);

/* Appends what is withheld (masked as needed). The stream can be reused. */
int redact_stream_flush(struct redact_stream *s, struct buf *out);

/* Frees what the stream holds. Accepts NULL. */
void redact_stream_free(struct redact_stream *s);

#endif
