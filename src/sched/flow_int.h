/* flow_int.h: what the parts of data flow share; see flow.h for what
 * flow promises.
 *
 * flow.c: the object, its life and its warnings; flow_cache.c: the
 * compiled templates and expressions; flow_results.c: the results later
 * expressions read, and a sub-run's outputs; flow_render.c: conditions,
 * `when` and templates evaluated; flow_secrets.c: the redactor, the
 * secrets a workflow names, the secrets file; flow_vars.c: variables
 * (--var, a sub-run's `with`).
 *
 * Compiled templates and expressions live in one open-addressing table
 * keyed by the address of the model's dr_text (the model never moves while
 * a run uses it). Results are kept per task in `res`, NULL until the task
 * is final or when nothing can read them.
 */
#ifndef DAGRUN_FLOW_INT_H
#define DAGRUN_FLOW_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "expr/expr.h"
#include "expr/template.h"
#include "expr/value.h"
#include "sched/flow.h"
#include "util/arena.h"

#define OUTPUT_KEEP_MAX ((size_t)1 << 20)   /* bytes of `output` kept: 1 MiB */
#define SECRETS_FILE_MAX ((size_t)1 << 20)
#define PENDING_WARN_MAX 64                 /* warnings kept before flow_set_warn */

/* A compiled template or bare expression. */
struct compiled {
	const struct dr_text *key;   /* NULL: empty slot */
	bool is_expr;                /* a bare expression (condition, when) */
	int id;                      /* is_expr: the compiled id */
	struct tpl tpl;              /* else: the template */
	int err;                     /* < 0: it failed to compile */
	char *msg;                   /* the compile error, FILE:LINE:COL: ... */
};

/* What later expressions can read of a final task. */
struct fres {
	struct expr_result er;
	char *output;                /* redacted, capped */
	struct expr_outputs outs;
	struct expr_kv *headers;
	size_t n_headers;
	char *error;
	char *strings;               /* header names and values, one block */
};

struct flow {
	const struct dagrun_workflow *wf;
	struct expr_engine *ex;
	struct redactor *red;
	bool shared;                 /* red and env are the parent's (a sub-run) */
	struct arena arena;
	struct dr_value *vars;       /* variables after --var, or NULL */
	char **env;                  /* environment + secrets file, or NULL */
	struct compiled *tab;
	size_t tab_n, tab_cap;       /* entries, slots (a power of two) */
	struct fres **res;           /* by task */
	uint8_t *keep;               /* by task: someone reads its result */
	const char *run_id;
	json_t *trigger;             /* trigger.body, or NULL (a reference:
				      * a sub-run holds one to its parent's) */
	char *trigger_text;          /* its JSON text as given (recorded) */
	flow_warn_fn warn_fn;
	void *warn_ud;
	char **pending;              /* warnings before warn_fn was set */
	size_t n_pending, pending_lost;
	size_t shorts_warned;        /* redact_short_count() already warned of */
};

/* ---- flow.c ------------------------------------------------------------------- */

/* A warning (printf-style), to the warning callback, or kept until one is
 * set (flow_set_warn()); t: the task it is about, or UINT32_MAX. */
void flow_warn(struct flow *f, uint32_t t, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Warns once per new secret too short to mask; who: where it comes from
 * ("secret 'X'"), or NULL (read by an expression, name unknown). */
void flow_warn_short(struct flow *f, uint32_t t, const char *who);

/* ---- flow_cache.c ------------------------------------------------------------- */

/* "FILE:LINE:COL: what: message" for error e at its offset in x; malloc'd,
 * NULL on OOM. */
char *flow_located(const struct flow *f, const struct dr_text *x,
		   const struct expr_error *e, const char *what);

/* The compiled form of x (a bare expression when is_expr, else a
 * template), compiled on first use; NULL with *r set: -ENOMEM, or its
 * compile error (the message, with its position, in *err, malloc'd). */
struct compiled *flow_compiled(struct flow *f, const struct dr_text *x, bool is_expr,
			       int *r, char **err);

/* ---- flow_results.c ------------------------------------------------------------- */

/* The scope expressions are evaluated in: the run, the variables, the
 * environment, the results (self: a condition's upstream result). */
void flow_scope(struct flow *f, struct expr_scope *sc, const struct expr_result *self);

void flow_fres_free(struct fres *r);

/* ---- flow_secrets.c ------------------------------------------------------------- */

/* One pass at start: marks which results are read, registers every
 * secret named (secrets.X, a kind's secret variables), the sub-workflows'
 * too. Returns 0 or -ENOMEM. */
int flow_scan(struct flow *f);

/* Reads the secrets file at path (NULL: none) into f->env and the
 * redactor. Returns 0, -EINVAL (said in d) or -ENOMEM. */
int flow_read_secrets(struct flow *f, const char *path, dagrun_diags *d);

/* ---- flow_vars.c ---------------------------------------------------------------- */

/* --var NAME=VALUE overrides of declared variables (NULL: none). Returns
 * 0, -EINVAL (said in d) or -ENOMEM. */
int flow_override_vars(struct flow *f, const char *const *vars, dagrun_diags *d);

/* A sub-run's `with` (a map, rendered; NULL: none) over the declared
 * variables. As above. */
int flow_with_vars(struct flow *f, const struct dr_value *with, dagrun_diags *d);

#endif
