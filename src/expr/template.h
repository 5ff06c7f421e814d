/* template.h: `{{ expr }}` templates inside workflow strings.
 *
 * A template is parsed once into segments (literal text, expression
 * source), its expressions compiled once into an engine, then rendered
 * many times. The end of an expression is found with the Lua scanner: a
 * `}}` inside a string literal or closing a table constructor does not end
 * it, so `{{ "}}" }}` prints }} and `{{ json({a={1}}) }}` works; that is
 * also the way to write a literal `{{`: `{{ "{{" }}`.
 * Invariant of a parsed struct tpl: segments cover the source in order,
 * without gaps except the `{{`/`}}` delimiters, and no two text segments
 * are adjacent.
 */
#ifndef DAGRUN_EXPR_TEMPLATE_H
#define DAGRUN_EXPR_TEMPLATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "expr/expr.h"

enum tpl_seg_kind { TPL_TEXT, TPL_EXPR };

struct tpl_seg {
	uint8_t kind;        /* enum tpl_seg_kind */
	uint32_t off, len;   /* the text, or the expression's source between
				the braces (blanks included), in tpl->src */
	int id;              /* TPL_EXPR: compiled id, 0 until tpl_compile */
};

struct tpl {
	const char *src;     /* borrowed: must outlive the struct */
	size_t len;
	struct tpl_seg *segs;
	size_t n, n_exprs;
};

/* True when s holds a `{{` (cheap test before parsing). */
bool tpl_has_template(const char *s, size_t len);

/* Parses s[0 .. len) into *out (free with tpl_free, also on failure).
 * Returns 0; -EINVAL for a `{{` without its `}}` or an empty `{{ }}`
 * (err->offset: the `{{`); -ENOMEM. */
int tpl_parse(const char *s, size_t len, struct tpl *out,
	      struct expr_error *err);

/* Compiles every expression of t into e. Returns 0 or what expr_compile
 * returns, with err->offset relative to the template's source. */
int tpl_compile(struct tpl *t, struct expr_engine *e, struct expr_error *err);

enum tpl_mode {
	TPL_PLAIN,   /* values as they are (URLs, headers, prompts, env) */
	TPL_ARGV,    /* one argv element: values as they are, but no NUL */
	TPL_SHELL,   /* a `command` string or a POSIX shell script: each value
			quoted for its shell context (see shell.h) */
};

/* Renders t (compiled into e) in scope sc and APPENDS the text to out.
 * Returns 0; on failure out is left as it was, and the error is what
 * expr_eval_text returns, or -EINVAL for a value that cannot be placed
 * safely (TPL_SHELL) or holds NUL (TPL_ARGV, TPL_SHELL), with err->offset
 * at the expression's `{{`. */
int tpl_render(const struct tpl *t, struct expr_engine *e,
	       const struct expr_scope *sc, enum tpl_mode mode,
	       struct buf *out, struct expr_error *err);

/* For a template in a `command` string or a shell script: checks, without
 * evaluating anything, that every `{{ }}` sits where the shell text can
 * take a value (what tpl_render in TPL_SHELL mode would refuse whatever the
 * value: inside `...`, ${ }, $(( )), $'...', right after $ or \, in a
 * here-document delimiter; or shell text it cannot follow). The run and
 * `dagrun validate` share this decision (sh_substitute). Returns 0, or
 * -EINVAL with the message tpl_render would give and err->offset at the
 * `{{` (or the text); -ENOMEM. Values refused only for what they hold (a
 * NUL, a newline in a # comment, a line that ends a here-document) are
 * still refused by tpl_render. */
int tpl_check_shell(const struct tpl *t, struct expr_error *err);

/* Frees the segments. Accepts NULL and a zeroed struct. */
void tpl_free(struct tpl *t);

#endif
