/* internal.h: what expr.c, scope*.c, convert*.c, guard.c and match.c share
 * about the engine's lua_State. Private to src/expr.
 *
 * Registry layout (refs in struct expr_engine): the two environments
 * (base, and condition, which adds a dependency's fields; each an empty
 * read-only front table reading through to its globals table), the per-
 * evaluation scratch table (result tables -> their struct expr_result,
 * task id -> result table, a dependency's table-valued fields; emptied
 * after an evaluation that used it), the metatables of lazy tables, and
 * the compiled expressions (their ids are registry refs). Every metatable we create carries its kind
 * under the light-userdata key &expr_kind_key; expressions can reach no
 * metatable (no getmetatable, and __metatable is set anyway).
 */
#ifndef DAGRUN_EXPR_INTERNAL_H
#define DAGRUN_EXPR_INTERNAL_H

#include <lauxlib.h>
#include <lua.h>

#include "expr/expr.h"

/* The kinds of tables with a metatable of ours. */
enum lz_kind {
	LZ_NONE = 0,
	LZ_ARRAY,       /* a plain table that came from a JSON/YAML list */
	LZ_RESULT,      /* tasks.<id>: fields filled on first read */
	LZ_VARIABLES, LZ_CONTEXT, LZ_RUN, LZ_ENV, LZ_SECRETS, LZ_TASKS,
	LZ_LIBRARY,     /* read-only view of string, math, table, utf8 */
	LZ_ENVIRONMENT, /* an expression's _ENV */
	LZ_TRIGGER,     /* trigger.body: an incoming webhook's JSON body */
	LZ_COUNT
};

/* Fields of a task result, by the names expressions use. */
enum lz_field {
	F_NONE = 0, F_STATUS, F_EXIT_CODE, F_OUTPUT, F_JSON, F_OUTPUTS, F_ERROR,
	F_HTTP, F_USAGE, F_ATTEMPTS, F_DURATION, F_OUTPUT_TRUNCATED, F_COUNT
};

struct expr_engine {
	lua_State *L;
	size_t used;              /* bytes allocated by L */
	size_t total_limit, eval_limit, eval_base;
	bool in_eval, mem_hit, budget_hit;
	bool late;                /* budget_hit by the clock */
	int budget;               /* steps per evaluation (see expr.c) */
	uint64_t spent;           /* ... counted so far */
	uint64_t unclocked;       /* steps charged since the clock was read */
	size_t alloc_bytes;       /* allocated, not yet charged as steps */
	const char *why;          /* the function that ran out of budget */
	uint64_t why_steps;       /* ... and what it asked for (0: unknown) */
	uint64_t time_ns;         /* wall-clock limit per evaluation */
	uint64_t deadline;        /* CLOCK_MONOTONIC ns of this one's end */
	uint64_t match_budget;    /* pattern-matching steps left (this eval) */
	const struct expr_scope *scope;   /* during an evaluation only */
	struct redactor *redactor;

	uint64_t evals;           /* evaluations begun */
	uint64_t rand_eval;       /* the one math.random was last reseeded for */
	uint64_t rand_seed;       /* where the reseeds come from (splitmix64) */
	int ref_randomseed;       /* the math library's own randomseed */

	int ref_env, ref_cond_env, ref_scratch;
	int ref_mt[LZ_COUNT];     /* metatable of each kind (0: none) */
	bool scratch_used;
	int buf_rc;               /* a C buffer failed this eval (-E2BIG...) */
	struct buf tmp;           /* json() helper output, reused */
};

extern const char expr_kind_key;

static inline struct expr_engine *expr_engine_of(lua_State *L)
{
	return *(struct expr_engine **)lua_getextraspace(L);
}

/* scope.c: builds both environments and the lazy tables' metatables.
 * Runs in protected mode (may raise). Returns 0. */
int scope_setup(lua_State *L);
/* After an evaluation: forgets what it cached. Allocates nothing, so it
 * runs outside protected mode. */
void scope_reset(struct expr_engine *e);
/* scope_fields.c: pushes field f (enum lz_field) of r. Returns true when the
 * value is a table (worth caching for the rest of the evaluation). May
 * raise (allocation, a JSON output's parse charged to the budget). */
bool scope_push_field(lua_State *L, const struct expr_result *r, int f);
/* Pushes a table of the n pairs of kv (an entry without a key is left
 * out), the keys lower-cased when lower. May raise. */
void scope_push_kv_table(lua_State *L, const struct expr_kv *kv, size_t n, bool lower);
/* Sets field k of the table on top of the stack to the string v, or to
 * nil when v is NULL. May raise. */
void scope_set_str_or_nil(lua_State *L, const char *k, const char *v);

/* The kind of the table at idx, LZ_NONE for a plain one or a non-table. */
int lz_kind_of(lua_State *L, int idx);
/* Pushes a plain table with the content of the lazy table at idx, or
 * returns 0 (pushing nothing) when it is not lazy. Raises for the tables
 * that cannot be listed (env, secrets, tasks, libraries). */
int lz_materialize(lua_State *L, int idx);

/* convert.c, convert_parse.c, convert_encode.c (all may raise Lua errors:
 * call in protected mode). */

/* Values nested deeper than this (or containing themselves) are an error. */
#define CONV_MAX_DEPTH 100
/* Append p[0 .. n), or the C string s, to out; raise on a buffer error
 * (its code goes to engine->buf_rc). */
void conv_add(lua_State *L, struct buf *out, const void *p, size_t n);
void conv_adds(lua_State *L, struct buf *out, const char *s);
/* Gives the table on top of the stack the metatable of lists (LZ_ARRAY). */
void conv_set_array_mt(lua_State *L);
/* Raises when depth is past CONV_MAX_DEPTH; makes room on the stack. */
void conv_check_depth(lua_State *L, int depth);
/* Pushes v (a struct dr_value) as a Lua value. */
void conv_push_dr_value(lua_State *L, const struct dr_value *v, int depth);
/* Pushes a jansson value. */
void conv_push_json(lua_State *L, const json_t *j, int depth);
/* Parses JSON text s[0 .. len) and pushes its value; returns 0, or -1 with
 * an error message pushed instead. `what` names the caller for the budget
 * error (the parse is charged). */
int conv_parse_json(lua_State *L, const char *what, const char *s, size_t len);
/* Appends the value at idx as text (the template rules) to out; raises on a
 * function/userdata, a cycle, or a buffer error (its code then goes to
 * engine->buf_rc). */
void conv_to_text(lua_State *L, int idx, struct buf *out);
/* Appends the value at idx as compact JSON to out. */
void conv_to_json(lua_State *L, int idx, struct buf *out);
/* Registers json, tojson, fromjson, contains, startswith, len in the table
 * at idx. */
void conv_register_helpers(lua_State *L, int idx);
/* Appends a number the way templates print it. */
void conv_number(lua_State *L, int idx, struct buf *out);

/* match.c: replaces find, match, gmatch and gsub in the string library at
 * idx by versions that charge their steps to the evaluation's budget. */
void match_register(lua_State *L, int idx);

/* Raises the "took too long" error: the budget is spent. */
int expr_raise_budget(lua_State *L);

/* Charges `steps` of work that the C function `what` (e.g. "string.rep",
 * a static string) is about to do, or has just done, to the evaluation in
 * progress: raises the "took too long" error naming it when that is more
 * than is left of the budget, or when the deadline has passed. One step is
 * worth about one VM instruction (a few ns). No-op outside an evaluation. */
void expr_charge(lua_State *L, const char *what, uint64_t steps);

/* guard.c: wraps the library functions of the sandbox (string, table,
 * utf8, math, the base functions, the string metatable's arithmetic) so
 * that each charges its work. Runs in protected mode; call it after the
 * libraries are opened and before the environments copy them. */
void guard_register(lua_State *L);

/* guard.c: the 1-based start of a string position as the string library
 * reads it (Lua's posrelatI: negative counts from the end, 0 and below
 * the start are 1). */
size_t expr_str_start(lua_Integer pos, size_t len);

/* Raises it when the evaluation's wall-clock deadline has passed; what
 * (may be NULL) names the C function at work, for the message. */
void expr_check_deadline(lua_State *L, const char *what);

/* Raises a Lua error for a failed buf operation (-ENOMEM, -E2BIG). */
int expr_raise_buf(lua_State *L, int rc);

#endif
