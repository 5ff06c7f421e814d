/* expr.h: the expression engine, a Lua 5.4 sandbox for `condition`, `when`
 * and `{{ }}` templates.
 *
 * One engine (one lua_State) per run; two engines in one process are
 * independent. Expressions are compiled once (expr_compile) and evaluated
 * many times (expr_eval_bool, expr_eval_text) against a scope that the
 * caller fills for each evaluation. Invariants:
 *  - an expression sees only the allowlisted globals below and the scope;
 *    nothing it creates survives its evaluation (the environment and every
 *    library table are read-only, task results are rebuilt per evaluation),
 *    so evaluations cannot influence each other;
 *  - an evaluation stops with an error after `instructions` steps (VM
 *    instructions, pattern-matching steps, bytes allocated, and the work
 *    every library function charges before doing it, see guard.c) or
 *    `time_ms` of wall-clock time, or when it allocates `eval_memory` bytes
 *    more than it started with; no C function runs unbounded, and the
 *    engine stays usable afterwards.
 *
 * Names an expression can use:
 *  variables.<k>  env.<K>  secrets.<K>  run.id  run.name  context.<k>
 *  tasks.<id> / tasks["my-id"] (a struct expr_result, see value.h)
 *  in a condition (scope->self set): status exitCode output json outputs
 *    error http usage attempts durationMs of that dependency; there `json`
 *    and `error` mean the fields, not the helper / the builtin;
 *  helpers: json(v) (alias tojson, also usable in conditions), fromjson(s),
 *    contains(s, x), startswith(s, p), len(v);
 *  globals: assert error ipairs next pairs pcall select tonumber tostring
 *    type rawequal rawlen string (without dump) math table utf8.
 * An unknown name is an error at run time ("unknown name 'x'"), so a typo
 * does not silently read as nil.
 */
#ifndef DAGRUN_EXPR_H
#define DAGRUN_EXPR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "expr/value.h"
#include "util/buf.h"

struct dr_value;
struct redactor;

/* Where an error happened: offset is a byte offset into the expression's
 * source (for a template: into the template string), so the caller can turn
 * it into FILE:LINE:COL. msg never contains a registered secret. */
#define EXPR_NO_OFFSET UINT32_MAX
struct expr_error {
	int code;          /* the negative value the function returned */
	uint32_t offset;   /* EXPR_NO_OFFSET when unknown */
	char msg[512];
};

/* Fills *err (when err != NULL): code, offset and a printf-style message,
 * truncated to fit. Returns code, so callers can `return expr_fail(...)`. */
int expr_fail(struct expr_error *err, int code, uint32_t offset,
	      const char *fmt, ...) __attribute__((format(printf, 4, 5)));

struct expr_opts {
	size_t eval_memory;        /* per evaluation; 0: EXPR_DEFAULT_EVAL_MEMORY */
	size_t total_memory;       /* the whole state, compiled code included;
				    * 0: EXPR_DEFAULT_TOTAL_MEMORY */
	uint64_t instructions;     /* steps per evaluation (about one per VM
				    * instruction); 0: EXPR_DEFAULT_INSTRUCTIONS */
	struct redactor *redactor; /* borrowed, may be NULL: every secret read
				    * is registered with it, and error messages
				    * are redacted with it */
	uint32_t time_ms;          /* wall-clock limit per evaluation (C
				    * functions such as error() or string.rep
				    * cost more than one instruction);
				    * 0: EXPR_DEFAULT_TIME_MS */
};

#define EXPR_DEFAULT_EVAL_MEMORY   ((size_t)32 << 20)   /* 32 MiB */
#define EXPR_DEFAULT_TOTAL_MEMORY  ((size_t)1 << 30)    /* 1 GiB */
#define EXPR_DEFAULT_INSTRUCTIONS  10000000u            /* ~50 ms */
#define EXPR_DEFAULT_TIME_MS       500u
#define EXPR_MAX_SOURCE            ((size_t)64 << 10)   /* one expression */
#define EXPR_MAX_TEXT              ((size_t)16 << 20)   /* one text result */

/* A task result looked up by id for `tasks.<id>`: return NULL when there is
 * no such task (the expression then reads nil). The pointer must stay valid
 * until the evaluation returns. */
typedef const struct expr_result *(*expr_lookup_fn)(void *ud, const char *id);

/* What one evaluation can see. Everything is borrowed for the duration of
 * the call; any member may be NULL/0 (the name then reads as empty). */
struct expr_scope {
	const char *run_id, *run_name;
	const struct dr_value *variables;  /* a DR_VAL_MAP, or NULL */
	const struct json_t *trigger_body; /* trigger.body (the JSON body of
					    * the webhook that started the run);
					    * NULL: null */
	const struct expr_kv *context;     /* an AI task's rendered context */
	size_t n_context;
	char *const *environ;              /* env.* and secrets.*; NULL: the
					    * process environment */
	expr_lookup_fn lookup;             /* tasks.*; NULL: no task results */
	void *lookup_ud;
	const struct expr_result *self;    /* the dependency a condition tests;
					    * NULL outside a condition */
};

struct expr_engine;

/* Creates an engine. opts may be NULL (defaults). Returns 0 or -ENOMEM. */
int expr_new(struct expr_engine **out, const struct expr_opts *opts);

/* Frees the engine and every compiled expression. Accepts NULL. */
void expr_free(struct expr_engine *e);

/* Compiles the expression src[0 .. len) (as `return (src)`, text only) and
 * stores it in the engine. On success *id names it (ids are > 0) and 0 is
 * returned. On a syntax error returns -EINVAL with the message in err, with
 * a hint when the source uses `!=`, `&&`, `||` or `!`; -E2BIG when src is
 * over EXPR_MAX_SOURCE; -ENOMEM past total_memory. A compiled expression
 * lives as long as the engine: compile each text once. */
int expr_compile(struct expr_engine *e, const char *src, size_t len, int *id,
		 struct expr_error *err);

/* Evaluates expression id in scope sc; *out is its truthiness (nil and false
 * are false, everything else, 0 and "" included, is true). Returns 0, or on
 * a run-time error -EINVAL (the expression's error), -ETIME (instruction
 * budget or time limit exceeded), -ENOMEM (memory limit exceeded), with err
 * filled (offset 0: the expression; for -ETIME the message names the
 * library function that asked for too much work, when one did). sc may be
 * NULL (an empty scope). */
int expr_eval_bool(struct expr_engine *e, int id, const struct expr_scope *sc,
		   bool *out, struct expr_error *err);

/* Evaluates expression id and APPENDS its value as text to out: strings as
 * they are, integral numbers without a fraction (42, also for 42.0), other
 * numbers in the shortest form that reads back the same, true/false, nil as
 * nothing, tables as compact JSON (a sequence 1..n, or a table that came
 * from a JSON array, is an array; other tables are objects with their keys
 * sorted; a cycle or more than 100 levels is an error). Returns what
 * expr_eval_bool returns, or -E2BIG past EXPR_MAX_TEXT (or out's cap). On
 * failure out is left as it was. */
int expr_eval_text(struct expr_engine *e, int id, const struct expr_scope *sc,
		   struct buf *out, struct expr_error *err);

/* Checks the syntax of src without keeping it. Returns what expr_compile
 * returns. */
int expr_syntax_check(struct expr_engine *e, const char *src, size_t len,
		      struct expr_error *err);

/* Statistics: bytes the Lua state holds now. */
size_t expr_memory(const struct expr_engine *e);

#endif
