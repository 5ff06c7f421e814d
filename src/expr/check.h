/* check.h: static checks of an expression, for `dagrun validate`.
 *
 * Works on tokens (lex.h), without evaluating anything: it finds every
 * task an expression reads (tasks.X, tasks["X"], tasks['X']), every
 * variable (variables.X), on request every secret (secrets.X), and every
 * free name that the expression
 * environment would not know, each with its byte offset in the source.
 * `_ENV.x` and `_ENV["x"]` are the name x (that is how the run reads them).
 * Approximation, on the safe side for a checker: a name bound anywhere in
 * the expression (a function parameter, a local, a for variable) counts as
 * bound everywhere in it.
 */
#ifndef DAGRUN_EXPR_CHECK_H
#define DAGRUN_EXPR_CHECK_H

#include <stddef.h>
#include <stdint.h>

#include "expr/expr.h"
#include "util/arena.h"

enum expr_check_flags {
	EXPR_CHECK_CONDITION = 1,   /* a dependency condition: the fields
				       status, exitCode, ... are known */
	EXPR_CHECK_SECRETS = 2,     /* also list secrets.X (EXPR_NAME_SECRET),
				       e.g. to register them before a run */
	EXPR_CHECK_CONTEXT = 4,     /* also list uses of context
				       (EXPR_NAME_CONTEXT) */
};

enum expr_name_kind {
	EXPR_NAME_TASK,             /* tasks.X: name is X */
	EXPR_NAME_VARIABLE,         /* variables.X: name is X */
	EXPR_NAME_UNKNOWN,          /* a free name the environment lacks */
	EXPR_NAME_CONDITION_ONLY,   /* status, exitCode, ... outside a
				       condition */
	EXPR_NAME_SECRET,           /* secrets.X: name is X (only with
				       EXPR_CHECK_SECRETS) */
	EXPR_NAME_CONTEXT,          /* context.X: name is X; context whole
				       or with a computed key: name is ""
				       (only with EXPR_CHECK_CONTEXT) */
};

struct expr_name {
	uint8_t kind;               /* enum expr_name_kind */
	uint32_t off, len;          /* the name's token in the source */
	const char *name;           /* NUL-terminated, in the arena */
};

struct expr_refs {
	struct expr_name *v;        /* in source order */
	size_t n;
	uint32_t dynamic_tasks;     /* offset of a tasks[...] whose key is
				       not a literal, or EXPR_NO_OFFSET */
	struct arena arena;
};

/* Checks src[0 .. len). With e, its syntax first (as expr_syntax_check,
 * returning its error). Fills *out, which the caller frees with
 * expr_refs_free (also on failure). Unknown names are not an error: they
 * are listed for the caller to report. Returns 0, -EINVAL (syntax, or an
 * unterminated string when e is NULL), -ENOMEM. */
int expr_check(struct expr_engine *e, const char *src, size_t len,
	       unsigned flags, struct expr_refs *out, struct expr_error *err);

/* Frees what *r holds. Accepts NULL and a zeroed struct. */
void expr_refs_free(struct expr_refs *r);

#endif
