/* lex.h: a token scanner for Lua 5.4 source, used without a lua_State.
 *
 * It serves three callers that must agree on what is inside a string or a
 * comment: the template parser (where does `{{ ... }}` end?), the static
 * checks of `dagrun validate` (which names does an expression use?) and the
 * compile-error hints (is there a `!=` outside string literals?).
 * Invariant: tokens are returned in order, never overlap, and cover every
 * byte of the input that is not whitespace or a comment.
 */
#ifndef DAGRUN_EXPR_LEX_H
#define DAGRUN_EXPR_LEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum lex_kind {
	LEX_EOF = 0,
	LEX_NAME,      /* an identifier that is not a keyword */
	LEX_KEYWORD,   /* and, break, do, ..., while (incl. true/false/nil) */
	LEX_STRING,    /* "...", '...' or [[...]] (off/len include the quotes) */
	LEX_NUMBER,
	LEX_OP,        /* punctuation: one of Lua's operators, or any other byte */
	LEX_ERROR,     /* unterminated string or long comment: off is its start */
};

struct lex_token {
	uint8_t kind;      /* enum lex_kind */
	uint32_t off, len; /* byte range in the source */
};

struct lex {
	const char *s;
	size_t len, pos;
};

/* Starts scanning s[0 .. len). s need not be NUL-terminated. */
void lex_init(struct lex *lx, const char *s, size_t len);

/* Scans the next token into *t (skipping blanks and comments) and returns
 * its kind. After LEX_EOF or LEX_ERROR every further call returns the same. */
int lex_next(struct lex *lx, struct lex_token *t);

/* True when token t of source s is exactly the text w. */
bool lex_is(const char *s, const struct lex_token *t, const char *w);

/* Decodes the string literal token t (of source s) into out (out_cap bytes,
 * NUL-terminated, truncated if needed). Returns the decoded length, or -1
 * when the literal uses an escape this decoder does not handle (\z, \u{}).
 * Used for `tasks["id"]`, where ids are plain text. */
long lex_string_value(const char *s, const struct lex_token *t, char *out,
		      size_t out_cap);

#endif
