/* resume.c: what a resumed or rerun run keeps and what it runs again; see
 * resume.h for the invariants.
 *
 * The run continued is read through the store's queries (tasks, and every
 * attempt for the last one of each task: its end, its process, its
 * result). Tasks are matched by id, not by index, so that a rerun with the
 * current definition maps what is still there. Selection is one pass over
 * the tasks in dependency order: a task runs again when its own record
 * says so, or when a dependency runs again (downstream), and the first
 * reason found is kept for the dry run.
 */
#include "sched/resume.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "exec/watchdog.h"
#include "graph/graph.h"
#include "sched/flow.h"
#include "sched/sched.h"
#include "util/pstat.h"
#include "util/clock.h"

static int oom(char **err)
{
	if (err && !*err)
		*err = strdup("out of memory");
	return -ENOMEM;
}

int cont_find(const char *dir, const char *ref, struct cont_source *out, char **err)
{
	memset(out, 0, sizeof(*out));
	struct store_opts so = {.dir = dir, .read_only = true};
	struct store *st = NULL;
	int r = store_open(&store_sqlite_ops, &so, &st, err);
	if (r == 0)
		r = st->ops->find_run(st, ref, NULL, &out->mem, &out->run, err);
	if (r == 0)
		r = st->ops->definition(st, out->run.key, &out->mem, &out->def, err);
	store_close(st);
	if (r < 0)
		cont_source_free(out);
	return r;
}

void cont_source_free(struct cont_source *s)
{
	arena_free(&s->mem);
	memset(s, 0, sizeof(*s));
}

/* ---- reading and selecting --------------------------------------------------- */

static bool kept_status(int st)
{
	return st == STORE_TASK_COMPLETED || st == STORE_TASK_SKIPPED || st == STORE_TASK_FAILED;
}

static bool in_list(const char *const *v, const char *id)
{
	for (; v && *v; v++)
		if (!strcmp(*v, id))
			return true;
	return false;
}

/* Why a task of the old run runs again by its own record. */
static const char *own_reason(struct cont *c, const struct store_task_info *o)
{
	const struct store_attempt_info *a = c->last[o->index];
	switch (o->status) {
	case STORE_TASK_RUNNING:
		return a && !a->ended ? "interrupted: its dagrun ended while it ran"
				      : "interrupted: its dagrun ended as it started";
	case STORE_TASK_RETRYING:
		return "interrupted: its dagrun ended while it waited to retry";
	case STORE_TASK_INTERRUPTED:
		return "interrupted";
	case STORE_TASK_CANCELLED:
		return "cancelled";
	case STORE_TASK_PENDING:
		return "not run yet";
	case STORE_TASK_FAILED:
		return o->error_class == DAGRUN_CLASS_DEPENDENCY ? "dependency failed" : "failed";
	default:
		return store_task_status_name(o->status);
	}
}

/* A result for a kept task that ran no attempt (skipped by a condition,
 * failed as a dependency): what flow recorded of it, from its row. */
static const char *row_result(struct cont *c, const struct store_task_info *o)
{
	json_t *j = json_pack("{s:i,s:i}", "status", o->status, "attempts", (int)o->attempts);
	if (!j)
		return NULL;
	if (o->error_class > 0 && o->error_class <= DAGRUN_CLASS_RESOURCE)
		json_object_set_new(j, "errorClass", json_string(dagrun_class_name(o->error_class)));
	if (o->error)
		json_object_set_new(j, "error", json_string(o->error));
	char *s = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	const char *m = s ? arena_strdup(&c->mem, s) : NULL;
	free(s);
	return m;
}

static int read_old(struct cont *c, struct store *st, char **err)
{
	struct store_task_info *tasks = NULL;
	struct store_attempt_info *att = NULL;
	size_t nt = 0, na = 0;
	int r = st->ops->tasks(st, c->o.key, &c->mem, &tasks, &nt, err);
	if (r < 0)
		return r;
	if ((r = st->ops->attempts(st, c->o.key, STORE_ALL_TASKS, &c->mem, &att, &na, err)) < 0)
		return r;
	c->old = tasks;
	c->n_old = nt;
	c->last = arena_calloc(&c->mem, (nt ? nt : 1) * sizeof(*c->last));
	c->result = arena_calloc(&c->mem, (nt ? nt : 1) * sizeof(*c->result));
	if (!c->last || !c->result)
		return oom(err);
	/* By task, then attempt: the last one of a task comes last. */
	for (size_t i = 0; i < na; i++) {
		if (att[i].task >= nt)
			continue;
		c->last[att[i].task] = &att[i];
		c->result[att[i].task] = att[i].result_json;
	}
	return 0;
}

/* Maps each task of wf to its index in the old run, by id. */
static void map_tasks(struct cont *c)
{
	const struct dagrun_workflow *wf = c->wf;
	for (uint32_t t = 0; t < c->n; t++) {
		c->t[t].old = CONT_NONE;
		c->t[t].status = -1;
	}
	for (size_t i = 0; i < c->n_old; i++) {
		const char *id = c->old[i].id;
		uint32_t sym = id ? intern_find(&wf->ids, id, strlen(id)) : INTERN_NONE;
		if (sym == INTERN_NONE || wf->sym_task[sym] == UINT32_MAX)
			continue;
		uint32_t t = wf->sym_task[sym];
		c->t[t].old = (uint32_t)i;
		c->t[t].status = c->old[i].status;
	}
}

/* Whether task t runs again by itself (not because of a dependency), and
 * why (*why); else why it is kept. *changed: it runs because the
 * definition added or changed it. */
static bool runs_by_itself(struct cont *c, uint32_t t, const struct flow *f, const char **why,
			   bool *changed)
{
	const struct dagrun_workflow *wf = c->wf;
	struct cont_task *ct = &c->t[t];
	const char *id = wf_task_id(wf, t);
	bool rerun = c->o.mode == CONT_RERUN;
	*changed = false;
	if (ct->old == CONT_NONE) {
		*why = rerun ? "added to the workflow" : "not in the run continued";
		*changed = true;
		return true;
	}
	const struct store_task_info *o = &c->old[ct->old];
	if (rerun && in_list(c->o.changed, id)) {
		*why = "changed in the workflow";
		*changed = true;
		return true;
	}
	if (rerun && wf->tasks[t].hook != DR_HOOK_NONE) {
		*why = "a hook: hooks run with each attempt of the run";
		return true;
	}
	if (!kept_status(o->status)) {
		*why = own_reason(c, o);
		return true;
	}
	if (rerun) {
		bool sel = false;
		if (c->o.select == CONT_FAILED)
			sel = o->status == STORE_TASK_FAILED;
		else if (c->o.select == CONT_FROM)
			sel = c->o.tasks && c->o.tasks[0] && !strcmp(c->o.tasks[0], id);
		else
			sel = in_list(c->o.tasks, id);
		if (sel) {
			*why = c->o.select == CONT_FAILED ? own_reason(c, o)
			       : c->o.select == CONT_FROM ? "selected (--from)" : "selected (--only)";
			return true;
		}
		if (flow_keeps(f, t) && !c->result[ct->old] && o->status == STORE_TASK_COMPLETED) {
			*why = "its result was not recorded, and a task reads it";
			return true;
		}
	}
	*why = o->status == STORE_TASK_COMPLETED ? "completed" :
	       o->status == STORE_TASK_SKIPPED ? "skipped" : "failed";
	return false;
}

/* One pass in dependency order. Resume keeps every task recorded final by
 * its own outcome, whatever else runs (a completed task never starts
 * again). Rerun also runs what depends on a task that runs again; with
 * --only and without --downstream, only what depends on a task added or
 * changed. */
static int select_tasks(struct cont *c, const struct flow *f, char **err)
{
	const struct dagrun_workflow *wf = c->wf;
	const struct graph *g = wf->graph;
	bool rerun = c->o.mode == CONT_RERUN;
	bool follow = rerun && !(c->o.select == CONT_ONLY && !c->o.downstream);
	for (uint32_t i = 0; i < c->n; i++) {
		uint32_t t = g->topo[i];
		struct cont_task *ct = &c->t[t];
		const char *why = NULL;
		bool changed = false;
		bool run = runs_by_itself(c, t, f, &why, &changed);
		const struct dr_task *k = &wf->tasks[t];
		for (uint32_t d = 0; rerun && !run && d < k->dep_count; d++) {
			uint32_t dep = wf->deps[k->dep_first + d].target;
			if (c->t[dep].keep || (!follow && !c->t[dep].changed))
				continue;
			char *m = NULL;
			if (asprintf(&m, "depends on '%s', which runs again", wf_task_id(wf, dep)) < 0)
				return oom(err);
			why = arena_strdup(&c->mem, m);
			free(m);
			if (!why)
				return oom(err);
			run = true;
			changed = c->t[dep].changed;
		}
		ct->keep = !run;
		ct->changed = run && changed;
		ct->why = why;
		c->kept += ct->keep;
	}
	return 0;
}

int cont_read(struct store *st, const struct dagrun_workflow *wf, const struct cont_opts *o,
	      const struct flow *f, struct cont **out, char **err)
{
	*out = NULL;
	struct cont *c = calloc(1, sizeof(*c));
	if (!c)
		return oom(err);
	c->wf = wf;
	c->o = *o;
	c->n = wf->n_tasks;
	int r;
	if (!(c->t = arena_calloc(&c->mem, (c->n ? c->n : 1) * sizeof(*c->t)))) {
		r = oom(err);
		goto fail;
	}
	if ((r = read_old(c, st, err)) < 0)
		goto fail;
	map_tasks(c);
	if ((r = select_tasks(c, f, err)) < 0)
		goto fail;
	for (size_t i = 0; i < c->n_old; i++)
		if (c->last[i] && !c->last[i]->ended)
			c->open++;
	*out = c;
	return 0;
fail:
	cont_free(c);
	return r;
}

void cont_free(struct cont *c)
{
	if (!c)
		return;
	arena_free(&c->mem);
	free(c);
}

int cont_print(const struct cont *c, FILE *out)
{
	const struct dagrun_workflow *wf = c->wf;
	uint32_t run = c->n - c->kept;
	fprintf(out, "would run again: %u task%s\n", run, run == 1 ? "" : "s");
	for (uint32_t i = 0; i < c->n; i++) {
		uint32_t t = wf->graph->topo[i];
		if (!c->t[t].keep)
			fprintf(out, "  %-24s %s\n", wf_task_id(wf, t), c->t[t].why);
	}
	fprintf(out, "would keep (with their results): %u task%s\n", c->kept,
		c->kept == 1 ? "" : "s");
	for (uint32_t i = 0; i < c->n; i++) {
		uint32_t t = wf->graph->topo[i];
		if (c->t[t].keep)
			fprintf(out, "  %-24s %s\n", wf_task_id(wf, t), c->t[t].why);
	}
	return ferror(out) ? -EIO : 0;
}

int cont_dry_run(const char *dir, const struct dagrun_workflow *wf, const struct cont_opts *o,
		 FILE *out, char **err)
{
	struct store_opts so = {.dir = dir, .read_only = true};
	struct store *st = NULL;
	struct flow *f = NULL;
	struct cont *c = NULL;
	dagrun_diags *d = dagrun_diags_new(0);
	int r = d ? store_open(&store_sqlite_ops, &so, &st, err) : oom(err);
	if (r == 0 && (r = flow_new(&f, wf, NULL, d)) < 0 && err && !*err)
		*err = strdup("cannot set up the data flow");
	if (r == 0)
		r = cont_read(st, wf, o, f, &c, err);
	if (r == 0)
		r = cont_print(c, out);
	cont_free(c);
	flow_free(f);
	store_close(st);
	dagrun_diags_free(d);
	return r;
}

/* ---- leftovers ------------------------------------------------------------------ */

void cont_kill_leftovers(struct cont *c, const char *run_id)
{
	int killed = 0;
	for (size_t i = 0; i < c->n_old; i++) {
		const struct store_attempt_info *a = c->last[i];
		if (!a || a->ended || a->pid <= 0 || !a->pid_start)
			continue;
		/* Its leader still holds the group id: the group is its. A
		 * zombie leader: what was in the group is gone or swept below. */
		bool zombie;
		if (pstat_start_time(a->pid, &zombie) == a->pid_start && !zombie &&
		    kill(-(pid_t)(a->pgid > 0 ? a->pgid : a->pid), SIGKILL) == 0)
			killed++;
	}
	/* Let the groups die (at most a second) before the sweep, so that it
	 * counts only what they did not take with them. */
	for (int wait = 0; killed && wait < 100; wait++) {
		bool alive = false;
		for (size_t i = 0; i < c->n_old && !alive; i++) {
			const struct store_attempt_info *a = c->last[i];
			bool zombie;
			alive = a && !a->ended && a->pid > 0 && a->pid_start &&
				pstat_start_time(a->pid, &zombie) == a->pid_start && !zombie;
		}
		if (!alive)
			break;
		struct timespec ts = {0, 10 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	char *marker = NULL;
	if (asprintf(&marker, "DAGRUN_RUN_ID=%s", run_id) >= 0) {
		killed += watchdog_sweep(marker);
		free(marker);
	}
	c->killed = killed;
}

/* ---- recording and seeding ------------------------------------------------------ */

static int interrupted(struct cont *c, struct store *st, uint64_t key, uint32_t t, char **err)
{
	const struct store_task_info *o = &c->old[t];
	const struct store_attempt_info *a = c->last[t];
	bool task = o->status == STORE_TASK_RUNNING || o->status == STORE_TASK_RETRYING;
	if (!task && (!a || a->ended))
		return 0;
	const char *msg = "interrupted: the dagrun that ran it ended before it did";
	struct store_task_status_rec s = {.task = t, .status = STORE_TASK_INTERRUPTED, .error = msg};
	int r = 0;
	if (a && !a->ended) {
		uint64_t now = clock_wall_ms();
		struct store_attempt_end e = {
			.task = t, .attempt = a->attempt, .flags = STORE_ATTEMPT_INTERRUPTED,
			.start_ms = a->start_ms, .end_ms = now,
			.duration_ms = now > a->start_ms ? now - a->start_ms : 0,
			.exit_code = -1, .error = msg, .prompt_tokens = -1, .completion_tokens = -1,
			.status = task ? &s : NULL,   /* in the same transaction */
		};
		r = store_attempt_end(st, key, &e);
	} else if (task) {
		r = store_task_status(st, key, &s);
	}
	if (r < 0 && err && !*err)
		st->ops->last_error(st, err);
	return r;
}

int cont_apply(struct cont *c, struct store *st, uint64_t key, struct sched *s, struct flow *f,
	       char **err)
{
	bool resume = c->o.mode == CONT_RESUME;
	int r = 0;
	if (resume)
		for (size_t i = 0; i < c->n_old && r == 0; i++)
			r = interrupted(c, st, key, (uint32_t)i, err);
	for (uint32_t t = 0; t < c->n && r == 0; t++) {
		const struct cont_task *ct = &c->t[t];
		if (ct->old == CONT_NONE)
			continue;
		const struct store_task_info *o = &c->old[ct->old];
		if (!ct->keep) {
			/* Resume: the next attempt follows the recorded ones. */
			const struct store_attempt_info *a = c->last[ct->old];
			uint32_t n = a ? a->attempt : o->attempts;
			if (resume && n)
				r = sched_seed_attempts(s, t, n);
			continue;
		}
		if (!resume && (r = st->ops->carry(st, key, t, o->status, c->o.key, ct->old)) < 0) {
			if (err && !*err)
				st->ops->last_error(st, err);
			break;
		}
		sched_seed(s, t, o->status, o->error_class);
		const char *res = c->result[ct->old];
		if (!res && flow_keeps(f, t))
			res = row_result(c, o);
		if (res && (r = flow_seed(f, t, res, strlen(res))) == -ENOMEM)
			return oom(err);
		r = 0;   /* a result that does not parse is one less to read */
	}
	if (r < 0 && err && !*err)
		*err = strdup(strerror(-r));
	return r;
}
