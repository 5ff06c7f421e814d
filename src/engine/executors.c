/* executors.c: the engine's executors, made from the kinds' table
 * (kinds/kind.h: the engine names no kind): one per kind the workflow
 * uses, each distinct one made once, behind a recorder when the run is
 * recorded, the replayer for every kind in a replay (with live tasks: the
 * kind's own, recorded, for those, behind a switch), the fake for all in a
 * fake run; and the default webhook payload they are given.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "engine/engine_int.h"
#include "engine/io.h"
#include "engine/live.h"
#include "exec/fake.h"
#include "util/diag.h"

/* Every kind the workflow uses has an executor in this build; else one
 * error per missing kind (naming its first task) and -ENOTSUP. */
int engine_check_kinds(dagrun_engine *e, dagrun_diags *d)
{
	const struct dagrun_workflow *wf = e->wf;
	uint32_t first[DR_MAX_KINDS], count[DR_MAX_KINDS] = {0};
	for (uint32_t t = 0; t < wf->n_tasks; t++) {
		unsigned k = wf->tasks[t].kind;
		if (k < DR_MAX_KINDS && !e->exec[k] && !count[k]++)
			first[k] = t;
	}
	int r = 0;
	for (unsigned k = 0; k < DR_MAX_KINDS; k++) {
		if (!count[k])
			continue;
		const struct dr_task *t = &wf->tasks[first[k]];
		diag_add(d, DAGRUN_ERROR, wf->path, t->line, t->col,
			 "task '%s'%s: this build of dagrun cannot run `%s` tasks",
			 wf_task_id(wf, first[k]), count[k] > 1 ? " (and others)" : "",
			 dr_kind_name(wf, first[k]));
		r = -ENOTSUP;
	}
	return r;
}

#define SUMMARY_TASKS_MAX 1000

/* The default webhook payload: the run and its tasks so far (at most
 * SUMMARY_TASKS_MAX of them, then "truncated": true). malloc'd JSON. */
static char *run_summary(void *ud, const struct exec_attempt *a)
{
	dagrun_engine *e = ud;
	const struct dagrun_workflow *wf = e->wf;
	const struct sched *s = &e->s;
	json_t *o = json_object(), *tasks = json_array(), *counts = json_object();
	if (!o || !tasks || !counts) {
		json_decref(o);
		json_decref(tasks);
		json_decref(counts);
		return NULL;
	}
	json_object_set_new(o, "run", json_string(e->run_id));
	json_object_set_new(o, "workflow", json_string(dagrun_workflow_name(wf)));
	json_object_set_new(o, "task", json_string(wf_task_id(wf, a->task)));
	json_object_set_new(o, "status", json_string(
		s->phase == DR_HOOK_NONE ? "running" : s->main_failed ? "failed" : "completed"));
	size_t listed = 0;
	for (uint32_t t = 0; t < wf->n_tasks; t++) {
		const struct tstate *st = &s->ts[t];
		if (st->status == DAGRUN_PENDING && !st->attempts)
			continue;
		if (listed++ == SUMMARY_TASKS_MAX) {
			json_object_set_new(o, "truncated", json_true());
			break;
		}
		json_t *k = json_object();
		json_object_set_new(k, "id", json_string(wf_task_id(wf, t)));
		json_object_set_new(k, "status", json_string(dagrun_status_name(st->status)));
		json_object_set_new(k, "attempts", json_integer(st->attempts));
		if (st->error_class)
			json_object_set_new(k, "errorClass",
					    json_string(dagrun_class_name(st->error_class)));
		json_array_append_new(tasks, k);
	}
	for (int i = DAGRUN_COMPLETED; i <= DAGRUN_CANCELLED; i++)
		if (i != DAGRUN_RETRYING)
			json_object_set_new(counts, dagrun_status_name(i),
					    json_integer((json_int_t)s->counts[i]));
	json_object_set_new(o, "counts", counts);
	json_object_set_new(o, "tasks", tasks);
	char *text = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	return text;
}

/* kind_env.executor: the executor of def, made on first use. */
static int env_executor(struct kind_env *env, const struct exec_def *def, struct executor **out)
{
	dagrun_engine *e = env->engine;
	for (unsigned i = 0; i < e->n_owned; i++)
		if (e->owned[i].def == def) {
			*out = e->owned[i].ex;
			return 0;
		}
	if (e->n_owned == ENGINE_OWNED_MAX)
		return -ENOMEM;
	struct executor *ex = NULL;
	int r = def->make(env, &ex);
	if (r < 0)
		return r;
	e->owned[e->n_owned].def = def;
	e->owned[e->n_owned++].ex = ex;
	*out = ex;
	return 0;
}

/* kind_env.executor_of: the executor of kind k (a sub-workflow's tasks
 * run on the engine's executors). */
static struct executor *env_executor_of(struct kind_env *env, const struct dr_kind *k)
{
	dagrun_engine *e = env->engine;
	if (e->opts.fake)
		return e->owned[0].ex;
	for (uint32_t i = 0; i < e->wf->n_kinds; i++)
		if (e->wf->kinds[i] == k)
			return e->exec[i];
	return NULL;
}

/* Adds ex (made, or NULL: out of memory) to what the engine destroys. */
static int own(dagrun_engine *e, struct executor *ex)
{
	if (!ex)
		return -ENOMEM;
	if (e->n_owned == ENGINE_OWNED_MAX) {
		ex->ops->destroy(ex);
		return -ENOMEM;
	}
	e->owned[e->n_owned].def = NULL;
	e->owned[e->n_owned++].ex = ex;
	return 0;
}

/* The tasks named by e->opts.live, as n_tasks bytes (*out, malloc'd):
 * -EINVAL (said in d) for an id that is no task of the workflow. */
static int live_tasks(dagrun_engine *e, dagrun_diags *d, uint8_t **out)
{
	const struct dagrun_workflow *wf = e->wf;
	uint8_t *live = calloc(wf->n_tasks ? wf->n_tasks : 1, 1);
	if (!live)
		return -ENOMEM;
	int r = 0;
	for (const char *const *id = e->opts.live; *id; id++) {
		uint32_t sym = intern_find(&wf->ids, *id, strlen(*id));
		uint32_t t = sym == INTERN_NONE ? UINT32_MAX : wf->sym_task[sym];
		if (t == UINT32_MAX) {
			diag_add(d, DAGRUN_ERROR, wf->path, 0, 0, "live task '%s': no such task",
				 *id);
			r = -EINVAL;
			continue;
		}
		live[t] = 1;
	}
	if (r < 0) {
		free(live);
		return r;
	}
	*out = live;
	return 0;
}

/* The live tasks' executor of kind index k: the kind's own behind a
 * recorder, and the replayer rep, behind the switch (live.c). */
static int make_live(dagrun_engine *e, uint32_t k, const uint8_t *live, struct executor *rep)
{
	const struct exec_def *def = kind_of(e->wf->kinds[k])->exec;
	struct executor *real = NULL;
	int r = def ? env_executor(&e->env, def, &real) : 0;
	if (r < 0 || !real) {
		e->exec[k] = rep;   /* a kind with nothing to run: replayed */
		return r;
	}
	if ((r = own(e, io_recorder_new(&e->loop, kind_of(e->wf->kinds[k]), real))) < 0)
		return r;
	real = e->owned[e->n_owned - 1].ex;
	if ((r = own(e, live_executor_new(e->wf, live, real, rep))) == 0)
		e->exec[k] = e->owned[e->n_owned - 1].ex;
	return r;
}

/* A replay: the replayer for every kind (io.c); with live tasks, the
 * switch between it and the kind's own executor (live.c). */
static int make_replayers(dagrun_engine *e, dagrun_diags *d)
{
	json_t *doc = NULL;
	char *err = NULL;
	uint8_t *live = NULL;
	int r = io_replay_doc(e->opts.replay, e->opts.replay_len, &doc,
			      e->opts.live ? &e->replay_of : NULL, &err);
	if (r < 0) {
		diag_add(d, DAGRUN_ERROR, NULL, 0, 0, "%s", err ? err : strerror(-r));
		free(err);
		return r;
	}
	if (e->opts.live && (r = live_tasks(e, d, &live)) < 0) {
		json_decref(doc);
		return r;
	}
	for (uint32_t k = 0; k < e->wf->n_kinds && k < DR_MAX_KINDS && r == 0; k++) {
		if ((r = own(e, io_replayer_new(&e->loop, kind_of(e->wf->kinds[k]), doc))) < 0)
			break;
		e->exec[k] = e->owned[e->n_owned - 1].ex;
		if (live)
			r = make_live(e, k, live, e->exec[k]);
	}
	free(live);
	json_decref(doc);
	return r;
}

/* A recorded run: each kind's executor behind a recorder (io.c); also
 * those without inputs (a sub-workflow), whose results replay needs. */
static int make_recorders(dagrun_engine *e)
{
	int r = 0;
	for (uint32_t k = 0; k < e->wf->n_kinds && k < DR_MAX_KINDS && r == 0; k++)
		if (e->exec[k] &&
		    (r = own(e, io_recorder_new(&e->loop, kind_of(e->wf->kinds[k]),
						e->exec[k]))) == 0)
			e->exec[k] = e->owned[e->n_owned - 1].ex;
	return r;
}

/* A recorded run with a task that has `cache`: each kind's executor behind
 * the cache (cache.c), in front of the recorder. */
static int make_caches(dagrun_engine *e)
{
	const struct dagrun_workflow *wf = e->wf;
	e->cache.no_cache = e->opts.no_cache != 0;
	int r = 0;
	for (uint32_t k = 0; e->cache_on && k < wf->n_kinds && k < DR_MAX_KINDS && r == 0; k++)
		if (e->exec[k] &&
		    (r = own(e, cache_executor_new(&e->loop, kind_of(wf->kinds[k]), e->exec[k],
						   &e->cache, &e->env))) == 0)
			e->exec[k] = e->owned[e->n_owned - 1].ex;
	return r;
}

/* The executor of every kind of the workflow (the fake for all, in a fake
 * run), each distinct one made once. */
int engine_make_executors(dagrun_engine *e, dagrun_diags *d)
{
	const struct dagrun_workflow *wf = e->wf;
	e->env = (struct kind_env){
		.loop = &e->loop, .wf = wf, .run_id = e->run_id, .summary = run_summary,
		.summary_ud = e, .executor = env_executor, .executor_of = env_executor_of,
		.engine = e,
	};
	if (e->opts.fake) {
		struct executor *f = fake_executor_new(&e->loop, NULL, NULL);
		if (!f)
			return -ENOMEM;
		e->owned[e->n_owned++].ex = f;
		for (int k = 0; k < DR_MAX_KINDS; k++)
			e->exec[k] = f;
		return 0;
	}
	for (uint32_t t = 0; t < wf->n_tasks && !e->cache_on; t++)
		e->cache_on = wf->tasks[t].opts && wf->tasks[t].opts->cache &&
			      wf->tasks[t].opts->cache->on;
	if (e->opts.replay)
		return make_replayers(e, d);
	for (uint32_t k = 0; k < wf->n_kinds && k < DR_MAX_KINDS; k++) {
		const struct exec_def *def = kind_of(wf->kinds[k])->exec;
		int r = def ? env_executor(&e->env, def, &e->exec[k]) : 0;
		if (r < 0)
			return r;
	}
	int r = e->opts.state_dir ? make_recorders(e) : 0;
	return r == 0 && e->opts.state_dir ? make_caches(e) : r;
}

/* Destroys the executors, last made first. */
void engine_destroy_executors(dagrun_engine *e)
{
	while (e->n_owned) {
		struct executor *ex = e->owned[--e->n_owned].ex;
		ex->ops->destroy(ex);
	}
}

