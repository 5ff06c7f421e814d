/* model.h: the engine's compact in-memory model of a workflow.
 *
 * Built by the loader straight from libyaml events (no DOM). Invariants after
 * a successful load:
 *  - every string is NUL-terminated and lives in wf->arena (ids in wf->ids);
 *  - task ids are interned: task i has symbol wf->tasks[i].sym, and
 *    wf->sym_task[sym] == i for every declared id;
 *  - wf->deps[t.dep_first .. t.dep_first + t.dep_count) are task t's
 *    dependencies, with `target` resolved to a task index;
 *  - wf->tasks holds the main tasks first, then the hook tasks
 *    (onSuccess, onFailure, onExit), each group in declaration order;
 *    a hook task depends only on tasks of hook lists;
 *  - task options are fully resolved: defaults are already applied, and a
 *    task that sets no option shares wf->default_opts (never freed alone);
 *  - wf->graph is built (see graph.h) by the step above the loader
 *    (workflow/load.c), which also checks the expressions.
 * The model depends on util/ only: every module above may read it.
 * Sizes: a plain command task with three dependencies costs about 200 bytes.
 */
#ifndef DAGRUN_MODEL_H
#define DAGRUN_MODEL_H

#include <stdbool.h>
#include <stdint.h>

#include "dagrun.h"
#include "util/arena.h"
#include "util/intern.h"

/* A string from the file with the position of its first character. Strings
 * that may hold templates or expressions keep their text verbatim. */
struct dr_text {
	const char *s;        /* NULL when absent */
	uint32_t len;
	uint32_t line, col;   /* 1-based */
};

/* A generic YAML value, kept only where the format allows any value
 * (variables, api.body, webhook.payload, ai.context). */
enum dr_value_kind {
	DR_VAL_NULL, DR_VAL_BOOL, DR_VAL_INT, DR_VAL_REAL, DR_VAL_STRING,
	DR_VAL_MAP, DR_VAL_LIST,
};

struct dr_value {
	uint8_t kind;              /* enum dr_value_kind */
	bool quoted;               /* a scalar written in quotes */
	uint32_t count;            /* children of a map or list */
	struct dr_text text;       /* scalar text, as written; a map key */
	union {
		bool b;
		int64_t i;
		double d;
	} as;
	struct dr_value *items;    /* children of a map or list */
	struct dr_text *keys;      /* map keys, parallel to items */
};

/* A map of string keys to string (template) values, e.g. env, headers. */
struct dr_kv {
	struct dr_text key, value;
};

struct dr_kvlist {
	struct dr_kv *v;
	uint32_t n;
};

enum dr_dep_type { DR_DEP_BLOCKING = 0, DR_DEP_NON_BLOCKING = 1 };

struct dr_dep {
	uint32_t target;            /* task index (a symbol while loading) */
	uint32_t line, col;         /* where the dependency is written */
	uint8_t type;               /* enum dr_dep_type */
	const struct dr_text *condition; /* NULL when none */
};

enum dr_jitter { DR_JITTER_FULL = 0, DR_JITTER_NONE, DR_JITTER_EQUAL,
		 DR_JITTER_DECORRELATED };

enum dr_error_class { DR_CLASS_NONE = 0, DR_CLASS_TRANSIENT, DR_CLASS_PERMANENT,
		      DR_CLASS_DEPENDENCY, DR_CLASS_RESOURCE };

#define DR_MAX_ATTEMPTS 100
#define DR_MAX_DELAY_MS (24ull * 3600 * 1000)     /* any retry delay: 1 day */
#define DR_MAX_TIMEOUT_MS (7ull * 24 * 3600 * 1000) /* a task timeout: 7 days */
#define DR_MAX_PARALLEL 100000
#define DR_MAX_POOL 1000000                 /* units of one pool */
#define DR_MAX_POOLS 65536                  /* resource pools in a workflow */

struct dr_retry {
	uint32_t max_attempts;      /* >= 1; default 1 */
	double backoff_factor;      /* >= 1; default 2 */
	uint64_t initial_delay_ms;  /* default 1000 */
	uint64_t max_delay_ms;      /* default 30000 */
	uint8_t jitter;             /* enum dr_jitter; default full */
	uint8_t retry_on;           /* bit (1 << class); default transient|resource */
	uint8_t n_permanent;        /* permanentExitCodes */
	uint8_t *permanent_codes;   /* each 0..255 */
};

/* Resource request or pool: index into wf->pools. */
struct dr_res {
	uint32_t pool;
	uint32_t units;
	uint32_t line, col;
};

/* `cache:` (README "Cache"): whether and how a task's result is reused
 * from an earlier run whose key matches. Caps: DR_CACHE_MAX_LIST entries
 * in each list. */
#define DR_CACHE_MAX_LIST 64
#define DR_CACHE_MAX_TTL_MS (3650ull * 24 * 3600 * 1000)   /* ten years */
struct dr_cache {
	bool on;                        /* false: `cache: false` */
	const struct dr_text *const *key; /* templates, rendered per attempt */
	uint32_t n_key;
	const char *const *inputs;      /* globs, from the workflow's directory */
	uint32_t n_inputs;
	const char *const *env;         /* names of process environment variables */
	uint32_t n_env;
	uint64_t ttl_ms;                /* 0: no expiry */
	uint32_t line, col;             /* where `cache` was written */
};

/* Options common to all tasks that are rarely set; resolved with defaults. */
struct dr_task_opts {
	const struct dr_text *description;
	const struct dr_text *when;     /* expression */
	const struct dr_text *workdir;  /* template; NULL: the workflow's dir */
	struct dr_kvlist env;           /* task env only (workflow env is wf->env) */
	struct dr_res *res;
	uint32_t n_res;
	uint64_t timeout_ms;            /* 0: none */
	uint64_t kill_grace_ms;         /* default 5000 */
	struct dr_retry retry;
	const struct dr_cache *cache;   /* NULL: not cached */
	bool cache_own;                 /* `cache` written on the task itself
					 * (not from defaults) */
};

struct dr_task {
	uint32_t sym;                 /* interned id; text: wf_task_id() */
	uint32_t line, col;           /* the task's `id:` value */
	uint32_t dep_first, dep_count;
	int32_t priority;
	uint8_t kind;                 /* index into wf->kinds */
	uint8_t hook;                 /* 0 main, 1 onSuccess, 2 onFailure, 3 onExit */
	const struct dr_task_opts *opts;
	const void *spec;             /* the kind's own struct (its executor's
				       * header declares it), or NULL after
				       * errors only */
};

enum dr_hook { DR_HOOK_NONE = 0, DR_HOOK_SUCCESS, DR_HOOK_FAILURE, DR_HOOK_EXIT };

struct dr_pool {
	const char *name;
	uint32_t capacity;
	uint32_t line, col;
};

struct graph;   /* graph/graph.h */
struct dr_kind;

#define DR_MAX_KINDS 16                     /* task kinds in a table */

/* Something the workflow owns besides its arena (a sub-workflow it runs),
 * freed with it, last registered first. */
struct dr_owned {
	struct dr_owned *next;
	void (*free)(void *p);
	void *p;
};

/* A workflow's schedule: the top-level keys only `dagrun serve` reads
 * (`schedule`, `timezone`, `overlap`, `catchup`; a run ignores them),
 * checked by the loader (load/schedule.c: a valid five-field expression,
 * a zone this machine knows). */
enum dr_overlap { DR_OVERLAP_SKIP = 0, DR_OVERLAP_QUEUE, DR_OVERLAP_ALLOW };

struct dr_schedule {
	struct dr_text cron;         /* the expression as written */
	struct dr_text timezone;     /* .s NULL: the local zone */
	uint8_t overlap;             /* enum dr_overlap */
	bool catchup;
};

/* `trigger:` on a workflow: what `POST /hooks/NAME` of `dagrun serve`
 * needs (a run ignores it). The secret is written `{{ secrets.NAME }}`
 * and nothing else (load/schedule.c): the server, which evaluates no
 * expression, looks NAME up as the runs do (environment, then the
 * secrets file). */
struct dr_trigger {
	struct dr_text secret;       /* the template as written */
	struct dr_text secret_name;  /* NAME, in the arena */
};

struct dagrun_workflow {
	struct arena arena;
	struct intern ids;           /* task ids */
	uint32_t *sym_task;          /* symbol -> task index, UINT32_MAX if none */

	char *path;                  /* as given; malloc'd */
	char *dir;                   /* directory of the file; malloc'd */
	struct dr_text name, description;
	const struct dr_schedule *schedule; /* NULL: none */
	const struct dr_trigger *trigger; /* NULL: no incoming webhook */
	const struct dr_value *variables; /* a map, or NULL */
	struct dr_kvlist env;
	uint32_t max_parallel;       /* 0: number of CPUs */
	struct dr_pool *pools;
	uint32_t n_pools;

	struct dr_task *tasks;       /* main tasks, then hook tasks */
	uint32_t n_tasks;            /* all of them */
	uint32_t n_main;             /* tasks[0 .. n_main) are `tasks:` */
	uint32_t hook_first[4];      /* by enum dr_hook; [0] == 0 */
	uint32_t hook_count[4];      /* [0] == n_main */

	struct dr_dep *deps;
	uint64_t n_deps;

	struct dr_task_opts default_opts;
	struct graph *graph;

	/* The task kinds, handed down to the loader by the step above it (the
	 * table of kinds/table.c): tasks[t].kind indexes them. In the arena. */
	const struct dr_kind *const *kinds;
	uint32_t n_kinds;
	struct dr_kvlist outputs;    /* `outputs`: name -> template, what the
				      * workflow gives back when another runs
				      * it as a sub-workflow */
	struct dr_owned *owned;
};

static inline const char *wf_task_id(const struct dagrun_workflow *wf, uint32_t t)
{
	return intern_str(&wf->ids, wf->tasks[t].sym);
}

/* How a task string is used, which decides how template values in it are
 * escaped (see exec_render_mode). */
enum dr_text_use {
	DR_USE_PLAIN,     /* env values, workdir, prompts, JSON string leaves */
	DR_USE_SHELL,     /* a command string, a POSIX shell script body */
	DR_USE_ARGV,      /* one element of a command list */
	DR_USE_URL,       /* api/webhook url */
	DR_USE_HEADER,    /* an HTTP header value */
	DR_USE_NOTEMPLATE,/* a non-shell script body: templates are an error */
};

/* Receives one string of task t that may hold templates, and how it is
 * used; a non-zero return stops the walk. */
typedef int (*dr_text_fn)(void *ud, uint32_t t, const struct dr_text *text,
			  enum dr_text_use use);

/* What the model knows of a task kind: the part of its descriptor that
 * walks its own struct (tasks[t].spec). The loader's part (load/loader.h:
 * struct load_kind) and the rest (kinds/kind.h: struct kind) embed it;
 * kinds/table.c lists every kind. */
/* What a kind feeds a task's fingerprint (sched/fingerprint.c: resume and
 * rerun tell a changed task) besides the strings each_text visits. */
struct dr_mix {
	void (*bytes)(struct dr_mix *m, const void *p, size_t n);
	void (*text)(struct dr_mix *m, const struct dr_text *x);
	void (*value)(struct dr_mix *m, const struct dr_value *v);  /* v may be NULL */
};

struct dr_kind {
	const char *name;     /* its name: its selecting key ("command", "api",
			       * "workflow"...), or the `type` naming it ("ai") */
	uint8_t variant;      /* which of the kinds its executor serves it is
			       * (an executor may serve several: exec_attempt) */
	/* Calls fn for each of task t's own strings that may hold templates
	 * (spec: never NULL when called). Returns fn's first non-zero value,
	 * or 0. NULL: the kind has none. */
	int (*each_text)(const struct dagrun_workflow *wf, uint32_t t, dr_text_fn fn,
			 void *ud);
	/* Calls fn with the name of each environment variable whose value is
	 * a secret of task t (an API key), to be masked like secrets.NAME.
	 * Returns fn's first non-zero value, or 0. NULL: none. */
	int (*each_secret_env)(const struct dagrun_workflow *wf, uint32_t t,
			       int (*fn)(void *ud, const char *name), void *ud);
	/* Calls fn with each workflow task t runs as a sub-workflow (whose
	 * secrets are the run's too). As above. NULL: none. */
	int (*each_child)(const struct dagrun_workflow *wf, uint32_t t,
			  int (*fn)(void *ud, const struct dagrun_workflow *child), void *ud);
	/* Feeds m the settings of spec (never NULL) that are not such
	 * strings: numbers, flags, maps (headers, a body). NULL: none. */
	void (*mix)(const void *spec, struct dr_mix *m);
};

static inline const struct dr_kind *wf_task_kind(const struct dagrun_workflow *wf, uint32_t t)
{
	return wf->kinds[wf->tasks[t].kind];
}

/* Calls fn for every string of task t that may hold templates: its kind's
 * (dr_kind.each_text), then its env values and workdir (not `when` or
 * dependency conditions, which are bare expressions). Stops and returns
 * fn's value when it is non-zero. */
int dr_task_each_text(const struct dagrun_workflow *wf, uint32_t t, dr_text_fn fn,
		      void *ud);

/* Helpers of the each_text hooks: one string (nothing when x or x->s is
 * NULL), the values of a map of strings, the string leaves of a generic
 * value (DR_USE_PLAIN). Each returns fn's first non-zero value, or 0. */
int dr_each_text(uint32_t t, const struct dr_text *x, enum dr_text_use use, dr_text_fn fn,
		 void *ud);
int dr_each_kv(uint32_t t, const struct dr_kvlist *kv, enum dr_text_use use, dr_text_fn fn,
	       void *ud);
int dr_each_value(uint32_t t, const struct dr_value *v, dr_text_fn fn, void *ud);

/* Has wf free p with free_fn when wf is freed (after wf->graph, before the
 * rest). Returns 0 or -ENOMEM (p is then not owned). */
int dr_workflow_own(struct dagrun_workflow *wf, void (*free_fn)(void *), void *p);

/* The line and column of byte `off` of x (UINT32_MAX or past the end: of
 * its start). A block scalar's text starts at its indentation on the line
 * below the indicator, and all its lines share that indentation. */
void dr_text_position(const struct dr_text *x, uint32_t off, unsigned *line, unsigned *col);

/* Frees what the model owns (not wf->graph, which must be freed before).
 * Accepts NULL. */
void dr_workflow_free(struct dagrun_workflow *wf);

/* The name of task t's kind ("?" when wf has no kinds: a hand-built model). */
const char *dr_kind_name(const struct dagrun_workflow *wf, uint32_t t);
const char *dr_class_name(enum dr_error_class c);

#endif
