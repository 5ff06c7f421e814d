/* engine_int.h: the engine (engine.c) and its executors (executors.c). */
#ifndef DAGRUN_ENGINE_INT_H
#define DAGRUN_ENGINE_INT_H

#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>

#include <uv.h>

#include "dagrun.h"
#include "engine/cache.h"
#include "kinds/kind.h"
#include "sched/sched.h"

#define RUN_ID_MAX 64
/* Executors an engine owns: per kind, its own, a recorder, and either in
 * a live replay the replayer and the switch (engine/live.h), or in a
 * recorded run with a task that has `cache`, the cache (engine/cache.h):
 * four at most. */
#define ENGINE_OWNED_MAX (4 * DR_MAX_KINDS)

/* Bits of dagrun_engine.irq: what dagrun_engine_interrupt() asked for. */
#define IRQ_SOFT 1
#define IRQ_HARD 2

/* SIGUSR1 cancels: it stops the run as SIGTERM does, and the run is
 * recorded cancelled (over), not interrupted (resumable). */
#define N_HANDLED_SIGNALS 4
static const int handled_signals[N_HANDLED_SIGNALS] = {SIGINT, SIGTERM, SIGHUP, SIGUSR1};

struct dagrun_engine {
	const struct dagrun_workflow *wf;
	uv_loop_t loop;
	struct sched s;
	struct executor *exec[DR_MAX_KINDS];  /* by task kind (wf->kinds) */
	/* The distinct executors, in the order they were made (one that
	 * borrows from another, ai from http, comes after it), destroyed last
	 * first; def NULL: the fake. */
	struct {
		const struct exec_def *def;
		struct executor *ex;
	} owned[ENGINE_OWNED_MAX];
	unsigned n_owned;
	struct kind_env env;          /* what the executors are made with */
	struct flow *flow;
	uv_async_t wake;              /* from dagrun_engine_interrupt(); unref'd */
	atomic_int irq;               /* IRQ_* requests not yet handled */
	bool running;                 /* the run's loop runs: act on requests */
	/* DAGRUN_PROC_SIGNALS: SIGINT, SIGTERM, SIGHUP (a SIGTERM), SIGUSR1
	 * (a cancel), and the dispositions they had before. */
	uv_signal_t sig[N_HANDLED_SIGNALS];
	struct sigaction sig_before[N_HANDLED_SIGNALS];
	bool signals;
	int signals_seen;
	char run_id[RUN_ID_MAX + 1];
	char tmpdir[64];
	dagrun_run_opts opts;
	uint64_t started_ms;
	bool ran;
	struct record *rec;           /* the state store, while a run records */
	struct cache_tab cache;       /* the cache's entries (README "Cache") */
	bool cache_on;                /* a task has `cache`, the run is recorded */
	const struct cont_opts *cont; /* resume or rerun, or NULL */
	char *replay_of;              /* a live replay: the run replayed */
	char *errmsg;                 /* dagrun_engine_error() */
};

/* Every kind the workflow uses has an executor in this build; else one
 * error per missing kind (naming its first task) in d and -ENOTSUP. */
int engine_check_kinds(dagrun_engine *e, dagrun_diags *d);

/* Makes e->exec: the executor of every kind of the workflow (see
 * executors.c). Returns 0 or -errno (a replay's document: said in d). */
int engine_make_executors(dagrun_engine *e, dagrun_diags *d);

/* Destroys the executors, last made first. */
void engine_destroy_executors(dagrun_engine *e);

#endif
