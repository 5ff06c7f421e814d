/* kind.h: task kinds as plug-ins: one descriptor per kind, all of them in
 * one table (table.c).
 *
 * A kind is its selecting key (`command:`, `api:`, `workflow:`...), its
 * keys and their validation, how its strings are visited for the checks
 * and the run (each_text, with how each is used), which environment
 * variables hold its secrets, the executor its tasks run on, and the
 * extension its results carry (a public type of dagrun.h and its JSON
 * encoder, for the log and the store). Each kind lives in its own file
 * here, with its loader keys and its descriptor; its executor is in exec/
 * when it runs on the shared executors (processes: command, script; HTTP:
 * api, webhook, ai), or in the kind's file when it needs the scheduler (a
 * sub-workflow runs a nested one).
 *
 * Layering: the loader, the model and the scheduler include none of this;
 * the step above the loader (workflow/) hands the loader's parts down
 * (struct load_kind), the model sees struct dr_kind, and the engine
 * (engine/) makes the executors through exec_def. Adding a kind: one file
 * defining a `const struct kind`, one line in table.c (and the file in
 * meson.build).
 */
#ifndef DAGRUN_KIND_H
#define DAGRUN_KIND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <uv.h>

#include "exec/executor.h"
#include "load/loader.h"

struct kind_env;
struct flow;

/* An executor one or more kinds run on (command and script share one,
 * api and webhook another, ai borrows the latter's HTTP client): made
 * once per engine, the first time a kind that uses it needs it. */
struct exec_def {
	const char *name;
	/* Makes the executor for env's engine. Returns 0 and *out, or -errno. */
	int (*make)(struct kind_env *env, struct executor **out);
};

/* The public extension type a kind's results carry (dagrun.h) and its
 * encoder to JSON: the fields of the JSON log's attempt.end (and of the
 * store's records). */
struct ext_def {
	int type;                     /* enum dagrun_ext_type */
	/* Adds x's fields to the object o. Returns 0 or -ENOMEM. */
	int (*json)(const struct dagrun_ext *x, json_t *o);
};

/* What the engine gives the executors it makes. Valid for the engine's
 * life. */
struct kind_env {
	uv_loop_t *loop;
	const struct dagrun_workflow *wf;  /* the workflow run */
	struct flow *flow;                 /* its data flow (secrets, results),
					    * or NULL (a fake run) */
	const char *run_id;
	unsigned max_parallel;             /* the run's */
	const char *tmpdir;                /* the run's private directory, once
					    * the run began; or NULL */
	/* The summary a webhook without a payload sends (see http.h). */
	char *(*summary)(void *ud, const struct exec_attempt *a);
	void *summary_ud;
	/* The executor of def, made now if it is not yet. Returns 0 and *out
	 * (the engine's, not the caller's to destroy), or -errno. */
	int (*executor)(struct kind_env *env, const struct exec_def *def,
			struct executor **out);
	/* The executor a task of kind k runs on (NULL: none; a fake run
	 * gives the fake to all). */
	struct executor *(*executor_of)(struct kind_env *env, const struct dr_kind *k);
	void *engine;                      /* the engine's own */
};

/* The expression checker (workflow/exprcheck.c) as offered to a kind's
 * check(); every call reports into the workflow's diagnostics. */
struct kind_checker {
	/* An error at byte off of x (UINT32_MAX: at its start). */
	void (*error)(struct kind_checker *c, const struct dr_text *x, uint32_t off,
		      const char *msg);
	/* Checks x, a template of task t read from the file `path` (x's
	 * positions count in that file), as the checker does the texts of
	 * each_text (use DR_USE_PLAIN). */
	void (*template_in)(struct kind_checker *c, uint32_t t, const struct dr_text *x,
			    const char *path);
};

/* The step above the loader, as offered to a kind's link(). */
struct kind_link {
	/* Loads the workflow file `path` (relative to from's directory) that
	 * task t of from runs, written at `at` in from's file. Returns 0 and
	 * *child (owned by the workflow being loaded: it lives as long as
	 * from), or -EINVAL after reporting (the child's own diagnostics,
	 * then at `at`: a missing or invalid file, a cycle between files,
	 * nesting too deep), or -ENOMEM. */
	int (*load)(struct kind_link *l, const struct dagrun_workflow *from, uint32_t t,
		    const struct dr_text *at, const char *path,
		    const struct dagrun_workflow **child);
	dagrun_diags *diags;
};

#define KIND_MAX_EXT 2

struct kind {
	struct load_kind load;             /* first: the loader's and the model's parts */
	const struct exec_def *exec;       /* the executor its tasks run on */
	const struct ext_def *ext[KIND_MAX_EXT]; /* the extensions its results
					    * carry (NULL-padded) */
	/* After the file loaded without error: what task t needs beyond it (a
	 * sub-workflow's file). Returns 0, -EINVAL (said in l->diags) or
	 * -ENOMEM. NULL: nothing. */
	int (*link)(struct kind_link *l, struct dagrun_workflow *wf, uint32_t t);
	/* Static checks of task t beyond its texts (which the checker walks
	 * with each_text): an interpreter used as written, a prompt file.
	 * Returns 0 or -ENOMEM. NULL: none. */
	int (*check)(struct kind_checker *c, const struct dagrun_workflow *wf, uint32_t t);
	/* The attempt a's inputs as its executor renders them (README
	 * "Replay"): adds them to the object o (which holds "kind" already),
	 * through the kind_inputs_* helpers below; kinds_inputs() masks and
	 * serialises. The one definition of what a task of this kind is given:
	 * what the store records, what replay compares, what a cache key is
	 * made of. Returns 0, -ENOMEM, or -EINVAL with *err (malloc'd: a
	 * template that fails). NULL: the kind records no inputs. */
	int (*inputs)(struct exec_attempt *a, json_t *o, char **err);
};

/* ---- the table (table.c) --------------------------------------------------- */

/* Every kind, in the order tasks index them; *n their count. */
const struct kind *const *kinds_table(unsigned *n);

/* The kind whose model part is k (every dr_kind of a workflow loaded by
 * dagrun_workflow_load is one of the table's). */
static inline const struct kind *kind_of(const struct dr_kind *k)
{
	return (const struct kind *)(const void *)k;  /* load.model is first */
}

/* The encoder of extension type `type`, or NULL (an unknown type). */
const struct ext_def *kinds_ext(int type);

/* Adds the fields of every extension of the chain x that has an encoder
 * to o. Returns 0 or -ENOMEM. */
int kinds_ext_json(const struct dagrun_ext *x, json_t *o);

/* ---- canonical inputs (inputs.c) --------------------------------------------- */

/* Sets o[key] to text t rendered for a (mode: enum exec_render_mode), as
 * a JSON string (a byte that is not UTF-8 as U+FFFD); nothing when t is
 * absent. Returns as kind.inputs. */
int kind_inputs_text(struct exec_attempt *a, json_t *o, const char *key,
		     const struct dr_text *t, int mode, char **err);

/* Sets o[key] to the object of l's values rendered (mode), by name;
 * nothing when l is empty. Returns as kind.inputs. */
int kind_inputs_kvs(struct exec_attempt *a, json_t *o, const char *key,
		    const struct dr_kvlist *l, int mode, char **err);

/* Sets o[key] to v as JSON, its strings rendered (exec_value_json);
 * nothing when v is NULL. Returns as kind.inputs. */
int kind_inputs_value(struct exec_attempt *a, json_t *o, const char *key,
		      const struct dr_value *v, char **err);

/* Sets o's "workdir" (when the task sets one) and "env" (the workflow's
 * env, then the task's over it): what the workflow gives a process. */
int kind_inputs_process(struct exec_attempt *a, json_t *o, char **err);

/* The canonical inputs of attempt a of a task of kind k: one JSON object
 * ({"kind": NAME, ...} and what k->inputs adds), every string holding a
 * secret of a->redactor masked, keys sorted, compact: two attempts given
 * the same inputs give the same bytes. *out is malloc'd, or NULL when k
 * records none. Returns 0, -ENOMEM, or -EINVAL with *err (malloc'd). */
int kinds_inputs(const struct kind *k, struct exec_attempt *a, char **out, char **err);

/* s[0 .. n) as a JSON string, each byte of an invalid UTF-8 text that is
 * not ASCII as U+FFFD (lossy, but nothing is left out). NULL on OOM. */
json_t *kinds_json_string(const char *s, size_t n);

/* Masks, in place, every string of j (not the keys) holding a secret of
 * red (NULL: none). Returns 0 or -ENOMEM. */
int kinds_mask_json(const struct redactor *red, json_t *j);

/* The executors shared by several kinds (defined with the first kind that
 * uses them). */
extern const struct exec_def kind_exec_process;   /* command, script */
extern const struct exec_def kind_exec_http;      /* api, webhook; ai's client */
extern const struct ext_def kind_ext_http;        /* DAGRUN_EXT_HTTP */

#endif
