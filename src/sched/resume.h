/* resume.h: a run that continues an earlier one: `dagrun resume` (the same
 * run attempt, claimed from a dead owner) and `dagrun rerun` (a new attempt
 * of the run, which keeps the results of the tasks not selected).
 *
 * What a continued run keeps, it keeps with its recorded status and result
 * (seeded into the scheduler and the data flow, so downstream templates see
 * them) and never runs again; everything else runs. Invariants:
 *  - resume keeps exactly the tasks recorded final by their own outcome
 *    (completed, skipped, failed): a task recorded completed never starts
 *    again; an attempt found without an end (its dagrun died) is recorded
 *    interrupted and its task runs again, at-least-once;
 *  - before a continued run starts anything, nothing of the run continued is
 *    alive: the lock held by its engine and watchdog is free (the watchdog
 *    has swept and gone), the process group of each attempt without an end
 *    is killed if its leader still lives (pid and start time), and /proc is
 *    swept for processes carrying the run's DAGRUN_RUN_ID (the watchdog's
 *    own sweep);
 *  - rerun selects by the recorded statuses and the graph, the same way for
 *    a dry run and for the run, and says why each task runs or is kept.
 */
#ifndef DAGRUN_SCHED_RESUME_H
#define DAGRUN_SCHED_RESUME_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "dagrun.h"
#include "model/model.h"
#include "store/store.h"
#include "util/arena.h"

struct sched;
struct flow;

enum cont_mode { CONT_RESUME = 1, CONT_RERUN = 2 };

/* rerun: which tasks run again (with what depends on them, unless ONLY). */
enum cont_select {
	CONT_FAILED = 0,   /* every task not completed or skipped (the default) */
	CONT_FROM,         /* tasks[0] */
	CONT_ONLY,         /* tasks[], with what depends on them if downstream */
};

struct cont_opts {
	int mode;                    /* enum cont_mode */
	uint64_t key;                /* the store's key of the run attempt
				      * resumed, or rerun */
	uint32_t run_attempt;        /* rerun: the new attempt's number */
	int select;                  /* rerun: enum cont_select */
	const char *const *tasks;    /* rerun: ids, NULL-terminated, or NULL */
	bool downstream;             /* CONT_ONLY: and what depends on them */
	const char *const *changed;  /* rerun with another definition: the ids of
				      * tasks added or changed (they run, with
				      * what depends on them), or NULL */
};

#define CONT_NONE UINT32_MAX

struct cont_task {
	uint32_t old;                /* index in the run continued; CONT_NONE:
				      * it has no such task (added) */
	int status;                  /* recorded there (store_task_status), or
				      * -1 when added */
	bool keep;                   /* keeps its status and result */
	bool changed;                /* runs because the definition changed */
	const char *why;             /* why it runs again, or why it is kept */
};

struct cont {
	struct arena mem;
	const struct dagrun_workflow *wf;
	struct cont_opts o;
	uint32_t n;                  /* wf->n_tasks */
	struct cont_task *t;
	const struct store_task_info *old;   /* the run continued, by index */
	size_t n_old;
	const struct store_attempt_info **last; /* per old task: last attempt */
	const char **result;         /* per old task: its result JSON, or NULL */
	uint32_t kept, open;         /* tasks kept; attempts found without end */
	int killed;                  /* leftover processes killed */
};

/* A run found by reference ("last", an id, a unique prefix) in the state
 * directory dir, with what it ran. */
struct cont_source {
	struct arena mem;
	struct store_run_info run;
	struct store_definition def;
};

/* Opens dir read-only and finds ref. Returns 0 (free with cont_source_free)
 * or < 0 with *err (malloc'd). */
int cont_find(const char *dir, const char *ref, struct cont_source *out, char **err);
void cont_source_free(struct cont_source *s);

/* Reads what run o->key recorded, through st, and decides what runs again
 * (o->mode, o->select...). f: the new run's data flow (a kept task whose
 * result it reads but that has none recorded runs again), or NULL. Returns
 * 0 and *out (cont_free), or < 0 with *err. */
int cont_read(struct store *st, const struct dagrun_workflow *wf,
	      const struct cont_opts *o, const struct flow *f, struct cont **out,
	      char **err);

/* Writes what would run again and why, then what is kept (a dry run). */
int cont_print(const struct cont *c, FILE *out);

/* The dry run of a rerun: cont_read on dir (read only), then cont_print.
 * Returns 0, or < 0 with *err. */
int cont_dry_run(const char *dir, const struct dagrun_workflow *wf,
		 const struct cont_opts *o, FILE *out, char **err);

/* Kills what is left of the attempts the run continued recorded without an
 * end, and sweeps /proc for DAGRUN_RUN_ID=run_id (see the invariants); the
 * caller holds the run's lock. Sets c->killed. */
void cont_kill_leftovers(struct cont *c, const char *run_id);

/* Records, in run attempt key (resume: the one continued; rerun: the new
 * one), what continuing means: resume, each attempt without an end
 * interrupted and its task too; rerun, each kept task carried. Then seeds
 * the kept tasks into s (status, error class) and f (results), and, for
 * resume, the attempts already made. Returns 0, or < 0 with *err. */
int cont_apply(struct cont *c, struct store *st, uint64_t key, struct sched *s,
	       struct flow *f, char **err);

void cont_free(struct cont *c);

/* Makes e's run continue an earlier one (engine.c). Call after
 * dagrun_engine_new() with the workflow the run recorded (or the current
 * one for a rerun with --definition current) and its run id; the engine
 * must have a state_dir. o and what it points to are borrowed until the
 * run ends. Returns 0 or -EINVAL. */
int engine_set_continue(dagrun_engine *e, const struct cont_opts *o);

#endif
