/* redact_int.h: what the pieces of the redactor share (like libuv's
 * internal.h); private to redact.c (the views of a text and the matcher),
 * redact_forms.c (the pattern set: each secret and its encoded forms),
 * redact_slice.c (runs, cut edges, masking a slice) and redact_stream.c
 * (streams). See redact.h for the promises and redact.c for the views.
 */
#ifndef DAGRUN_EXPR_REDACT_INT_H
#define DAGRUN_EXPR_REDACT_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "expr/redact.h"

/* The views a pattern is searched in (see redact.c). */
enum view_kind {
	V_RAW, V_B64, V_PCT, V_PCT2, V_ESC, V_ESCPCT, V_ESCPCT2, V_HTML, V_COUNT
};

/* One form of a secret, searched in one view. */
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

/* The longest text a match of p may cover. */
static inline size_t redact_span_cap(const struct pattern *p)
{
	switch (p->view) {
	case V_RAW: return p->n;
	case V_B64: return p->n + p->n / 8 + 2;    /* a line break per 16 */
	case V_PCT: case V_PCT2: return 3 * p->n;
	default: return 6 * p->n;                  /* \u0041, &#x27; */
	}
}

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

/* A run of the text to mask: [start, end). */
struct run {
	size_t start, end;
};

struct runs {
	struct run *v;
	size_t n, cap;
};

/* ---- redact.c: the views and the matcher -------------------------------- */

/* Frees what v holds and empties it. Accepts an empty view. */
void redact_view_free(struct view *v);

/* Whether view w is worth building for d[0 .. len) (see redact.c). */
bool redact_view_wanted(const struct redactor *r, int w, const char *d, size_t len);

/* Builds view w of d[0 .. len) into v (and tmp, for V_ESCPCT*, which v is
 * then decoded from). V_RAW is not built (v->d = NULL). cut: the text may
 * end inside an escape, whose decoding then stops before it. Returns 0 or
 * -ENOMEM; the caller frees v and tmp (redact_view_free) either way. */
int redact_view_build(int w, const char *d, size_t len, bool cut, struct view *v,
		      struct view *tmp);

/* Where the source of view byte i starts, in the text. */
size_t redact_raw_start(const struct view *v, size_t i);

/* Where the source of view byte i ends (one past it), in the text. */
size_t redact_raw_end(const struct view *v, size_t i);

/* Whether s[0 .. n) are all hex digits (a cut escape may end there). */
bool redact_all_hex(const char *s, size_t n);

/* Adds every match in d[0 .. len) to rs, offset by base. Returns 0 or
 * -ENOMEM; rs keeps what was added either way (the caller frees rs->v). */
int redact_find(const struct redactor *r, const char *d, size_t len, size_t base,
		struct runs *rs);

/* ---- redact_slice.c: runs, cut edges, masking --------------------------- */

/* Appends the run [start, end) to rs. Returns 0 or -ENOMEM. */
int redact_run_add(struct runs *rs, size_t start, size_t end);

/* Sorts the runs and merges those that overlap. */
void redact_runs_merge(struct runs *rs);

/* Adds the runs of pattern pieces at the lost edges of in[0 .. len): cut
 * is enum redact_cut flags. Returns 0 or -ENOMEM. */
int redact_edges(const struct redactor *r, const char *in, size_t len, int cut,
		 struct runs *rs);

/* Appends d[start .. end) to out with the (merged) runs masked; a run
 * crossing start is masked too, unless cont (it continues a mask already
 * written). *past: how far beyond end the last run emitted reaches (0:
 * none). Returns 0, or -ENOMEM/-E2BIG from out (out may then hold part). */
int redact_emit(const struct runs *rs, const char *d, size_t start, size_t end, bool cont,
		struct buf *out, size_t *past);

#endif
