/* workflow.c: the `workflow` kind: a task that runs another workflow file
 * as a sub-run.
 *
 *   - id: deploy
 *     workflow: deploy.yaml                 # relative to this file
 *     with: {region: eu, version: "{{ tasks.build.outputs.version }}"}
 *
 * Loading: the step above the loader (workflow/load.c) loads, links and
 * checks the child with the parent (link()): a missing or invalid file, a
 * cycle between files and nesting deeper than DAGRUN_MAX_NESTING are
 * errors at the `workflow:` key; every key of `with` must be a declared
 * variable of the child. The child's model lives as long as the parent's.
 *
 * Running: the child runs in this process, on the parent's loop and its
 * executors (its processes are the parent's to watch and kill), with a
 * scheduler and a data flow of its own: its variables are its defaults
 * overridden by `with` (rendered in the parent, as --var would be), its
 * secrets the parent's (one redactor, shared). Its events are forwarded
 * with the task's id prefixed ("deploy.step"), depth + 1 and a task index
 * of their own (dagrun_event.depth). The task's timeout covers the whole
 * sub-run: at its end the sub-run stops softly (its tasks get SIGTERM),
 * then hard after the task's killGrace; cancelling the task (Ctrl-C, a
 * stopped run) stops the sub-run the same way. The task completes when the
 * child's main tasks all completed or were skipped (its hooks run as in a
 * run of its own and do not change that); it fails otherwise, with the
 * class of the first child task that failed (not counting those failed by
 * a dependency). Its outputs are the child's `outputs`, rendered at the end
 * over the child's results (tasks.ID.outputs.NAME); its output is them as
 * one JSON object (tasks.ID.json.NAME).
 *
 * Invariant: a sub-run owns one struct sub from start() to on_done; it
 * ends from its prepare handle once the child's scheduler is done and no
 * handle of it is closing, never inside start().
 */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "expr/value.h"
#include "kinds/kind.h"
#include "sched/flow.h"
#include "sched/sched.h"
#include "util/diag.h"
#include "util/clock.h"

#define WITH_DEPTH 64   /* nesting of a `with` value */

struct wf_spec {
	struct dr_text path;                   /* `workflow:`, as written */
	const struct dr_value *with;           /* a map, or NULL */
	const struct dagrun_workflow *child;   /* set by link() */
};

/* ---- loading ---------------------------------------------------------------- */

enum { K_WORKFLOW, K_WITH };

static void k_workflow(struct loader *ld, void *obj)
{
	read_nonempty(ld, &((struct wf_spec *)obj)->path);
}

static void k_with(struct loader *ld, void *obj)
{
	((struct wf_spec *)obj)->with = read_value(ld, true);
}

static bool declared(const struct dr_value *vars, const struct dr_text *k)
{
	for (uint32_t i = 0; vars && i < vars->count; i++)
		if (vars->keys[i].len == k->len && !memcmp(vars->keys[i].s, k->s, k->len))
			return true;
	return false;
}

/* The child, loaded with the parent; `with` names its variables only. */
static int link_child(struct kind_link *l, struct dagrun_workflow *wf, uint32_t t)
{
	struct wf_spec *s = (struct wf_spec *)wf->tasks[t].spec;
	int r = l->load(l, wf, t, &s->path, s->path.s, &s->child);
	for (uint32_t i = 0; r == 0 && s->with && i < s->with->count; i++) {
		const struct dr_text *k = &s->with->keys[i];
		if (declared(s->child->variables, k))
			continue;
		diag_add(l->diags, DAGRUN_ERROR, wf->path, k->line, k->col, "'with': '%.*s' is "
			 "not a variable of the workflow %s (declare it under its `variables`)",
			 (int)(k->len > 100 ? 100 : k->len), k->s, s->child->path);
		r = -EINVAL;
	}
	return r;
}

static int each_text(const struct dagrun_workflow *wf, uint32_t t, dr_text_fn fn, void *ud)
{
	return dr_each_value(t, ((const struct wf_spec *)wf->tasks[t].spec)->with, fn, ud);
}

static int each_child(const struct dagrun_workflow *wf, uint32_t t,
		      int (*fn)(void *ud, const struct dagrun_workflow *child), void *ud)
{
	const struct wf_spec *s = wf->tasks[t].spec;
	return s->child ? fn(ud, s->child) : 0;
}

/* The file name is used as written. */
static int check_exprs(struct kind_checker *c, const struct dagrun_workflow *wf, uint32_t t)
{
	const struct dr_text *x = &((const struct wf_spec *)wf->tasks[t].spec)->path;
	const char *open = x->s ? memmem(x->s, x->len, "{{", 2) : NULL;
	if (open)
		c->error(c, x, (uint32_t)(open - x->s), "'workflow' is used as written, it is "
			 "not a template");
	return 0;
}

/* ---- running ---------------------------------------------------------------- */

struct wx {
	struct executor base;
	struct kind_env *env;
	uint32_t next_index;       /* the first task index of the next sub-run */
};

struct wf_ext {
	struct exec_ext x;
	struct dagrun_ext_workflow pub;
	struct expr_outputs outs;
};

struct sub {
	struct wx *wx;
	struct exec_attempt *a;
	const struct dagrun_workflow *child;
	struct sched s;
	bool started;              /* s is set up and started */
	bool cancelled, timed_out, concluded;
	struct flow *flow;
	struct arena arena;        /* `with`, rendered */
	uv_prepare_t prepare;      /* notices the end */
	uv_timer_t timer;          /* the timeout, then the kill grace */
	int open_handles;
	uint32_t base;             /* the index of the child's task 0 in events */
	char out_prefix[24];
	uint64_t started_ms;       /* loop time */
	uint8_t fail_class;        /* the first child task that failed */
	char *fail;
	struct wf_ext *ext;
	struct exec_result res;
};

static void fail(struct sub *sub, uint8_t cls, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void fail(struct sub *sub, uint8_t cls, const char *fmt, ...)
{
	struct exec_result *r = &sub->res;
	struct buf b = BUF_INIT;
	va_list ap;
	va_start(ap, fmt);
	int e = buf_vprintf(&b, fmt, ap);
	va_end(ap);
	free(r->error);
	r->error = e == 0 ? buf_steal(&b) : strdup("out of memory");
	buf_free(&b);
	r->ok = false;
	r->error_class = cls;
}

/* v with its string leaves rendered in the parent (templates of the parent
 * task), in sub->arena; NULL with the attempt failed (or on OOM). */
static struct dr_value *render_value(struct sub *sub, const struct dr_value *v, int depth)
{
	struct dr_value *o = arena_alloc(&sub->arena, sizeof(*o));
	if (!o || depth > WITH_DEPTH) {
		fail(sub, depth > WITH_DEPTH ? DR_CLASS_PERMANENT : DR_CLASS_RESOURCE,
		     depth > WITH_DEPTH ? "'with': nested too deep" : "out of memory");
		return NULL;
	}
	*o = *v;
	if (v->kind == DR_VAL_STRING) {
		struct buf b = BUF_INIT;
		char *err = NULL;
		int r = exec_render(sub->a, &v->text, EXEC_RENDER_PLAIN, &b, &err);
		char *s = r == 0 ? arena_strndup(&sub->arena, b.data ? b.data : "", b.len) : NULL;
		if (r < 0 || !s)
			fail(sub, r == -ENOMEM || !s ? DR_CLASS_RESOURCE : DR_CLASS_PERMANENT, "%s",
			     err ? err : "out of memory");
		o->text.s = s;
		o->text.len = (uint32_t)b.len;
		buf_free(&b);
		free(err);
		return s ? o : NULL;
	}
	if (v->kind != DR_VAL_MAP && v->kind != DR_VAL_LIST)
		return o;
	o->items = arena_alloc(&sub->arena, (v->count ? v->count : 1) * sizeof(*o->items));
	if (!o->items) {
		fail(sub, DR_CLASS_RESOURCE, "out of memory");
		return NULL;
	}
	for (uint32_t i = 0; i < v->count; i++) {
		struct dr_value *item = render_value(sub, &v->items[i], depth + 1);
		if (!item)
			return NULL;
		o->items[i] = *item;
	}
	return o;
}

/* A child's event, as the parent's: its id prefixed by the task's, one
 * level deeper, an index of its own in the run; the child's run events
 * become the task's own (a warning of its data flow). */
static void forward(void *ud, const dagrun_event *ev)
{
	struct sub *sub = ud;
	struct exec_attempt *a = sub->a;
	if (ev->type == DAGRUN_EV_RUN_START || ev->type == DAGRUN_EV_RUN_END)
		return;
	const char *id = wf_task_id(a->wf, a->task);
	if (ev->type == DAGRUN_EV_TASK_STATUS && !ev->depth && ev->status == DAGRUN_FAILED &&
	    ev->task_index < sub->child->n_tasks &&
	    sub->child->tasks[ev->task_index].hook == DR_HOOK_NONE &&
	    ev->error_class != DR_CLASS_DEPENDENCY && !sub->fail) {
		sub->fail_class = (uint8_t)ev->error_class;
		sub->fail = buf_strf("task '%s' failed: %s", ev->task ? ev->task : "?",
				     ev->error ? ev->error : "failed");
	}
	dagrun_event c = *ev;
	struct buf b = BUF_INIT;
	if (!ev->task) {
		c.task = id;
		c.task_index = a->task;
	} else {
		c.task = buf_printf(&b, "%s.%s", id, ev->task) == 0 ? b.data : ev->task;
		c.task_index = ev->depth ? ev->task_index : sub->base + ev->task_index;
		c.depth = ev->depth + 1;
	}
	if (a->on_event)
		a->on_event(a, &c);
	buf_free(&b);
}

/* Sets up and starts the child's run. Returns 0 (started), or < 0 with
 * sub->res failed (reported from the loop). */
static int begin(struct sub *sub, const struct wf_spec *spec)
{
	struct kind_env *env = sub->wx->env;
	const struct dagrun_workflow *child = sub->child;
	const struct dr_value *with = spec->with ? render_value(sub, spec->with, 0) : NULL;
	if (spec->with && !with)
		return -EINVAL;
	if (!env->flow) {
		fail(sub, DR_CLASS_PERMANENT, "a sub-workflow needs the run's data flow");
		return -EINVAL;
	}
	dagrun_diags *d = dagrun_diags_new(4);
	int r = d ? flow_new_child(&sub->flow, child, env->flow, with, d) : -ENOMEM;
	if (r < 0) {
		const dagrun_diag *g = d && dagrun_diags_count(d) ? dagrun_diags_get(d, 0) : NULL;
		fail(sub, r == -ENOMEM ? DR_CLASS_RESOURCE : DR_CLASS_PERMANENT, "%s",
		     g ? g->message : strerror(-r));
		dagrun_diags_free(d);
		return r;
	}
	dagrun_diags_free(d);
	struct executor *ex[DR_MAX_KINDS] = {0};
	for (uint32_t k = 0; k < child->n_kinds && k < DR_MAX_KINDS; k++)
		ex[k] = env->executor_of(env, child->kinds[k]);
	unsigned par = child->max_parallel ? child->max_parallel : env->max_parallel;
	struct observer *o = malloc(sizeof(*o));
	if (!o || (r = sched_init(&sub->s, child, env->loop, ex, par, sub->a->run_id,
				  clock_wall_ms() ^ sub->base)) < 0) {
		free(o);
		sched_free(&sub->s);
		fail(sub, DR_CLASS_RESOURCE, "out of memory");
		return -ENOMEM;
	}
	*o = (struct observer){forward, sub};
	sub->s.obs = o;
	sub->s.n_obs = 1;
	sub->s.flow = sub->flow;
	sub->s.tmpdir = env->tmpdir;
	snprintf(sub->out_prefix, sizeof(sub->out_prefix), "w%u-", sub->base);
	sub->s.out_prefix = sub->out_prefix;
	sub->started = true;
	sched_start(&sub->s);
	return 0;
}

static void on_kill(uv_timer_t *t)
{
	struct sub *sub = t->data;
	sched_interrupt(&sub->s, SIGKILL, true);
}

/* The task's timeout: stop the sub-run, and kill it after killGrace. */
static void on_timeout(uv_timer_t *t)
{
	struct sub *sub = t->data;
	const struct dr_task *task = &sub->a->wf->tasks[sub->a->task];
	const struct dr_task_opts *opts = task->opts ? task->opts : &sub->a->wf->default_opts;
	if (sched_done(&sub->s))
		return;   /* it ended in time: the result is on its way */
	sub->timed_out = true;
	sched_interrupt(&sub->s, SIGTERM, false);
	uv_timer_start(t, on_kill, opts->kill_grace_ms, 0);
}

/* The result, once the child's run is over. */
static void conclude(struct sub *sub)
{
	struct exec_result *r = &sub->res;
	const struct sched *s = &sub->s;
	const struct dr_task_opts *opts = sub->a->wf->tasks[sub->a->task].opts;
	struct wf_ext *x = sub->ext;
	r->end_ms = clock_wall_ms();
	r->duration_ms = uv_now(sub->wx->env->loop) - sub->started_ms;
	x->pub.tasks = sub->child->n_main;
	x->pub.completed = s->counts[DAGRUN_COMPLETED];
	x->pub.failed = s->counts[DAGRUN_FAILED];
	x->pub.skipped = s->counts[DAGRUN_SKIPPED];
	x->pub.cancelled = s->counts[DAGRUN_CANCELLED];
	if (!sub->started)
		return;   /* failed before: r says why */
	if (sub->timed_out) {
		unsigned long long ms = opts ? opts->timeout_ms : 0;
		r->timed_out = true;
		if (ms % 1000 == 0)
			fail(sub, DR_CLASS_TRANSIENT, "timed out after %llus", ms / 1000);
		else
			fail(sub, DR_CLASS_TRANSIENT, "timed out after %llums", ms);
	} else if (sub->cancelled || s->interrupted) {
		r->cancelled = true;
		fail(sub, DR_CLASS_TRANSIENT, "cancelled");
	} else if (s->error) {
		fail(sub, DR_CLASS_RESOURCE, "the sub-workflow's run failed: %s", strerror(-s->error));
	} else if (s->main_failed) {
		fail(sub, sub->fail_class ? sub->fail_class : DR_CLASS_TRANSIENT,
		     "workflow %s failed: %s", sub->child->path,
		     sub->fail ? sub->fail : "a task failed");
	} else {
		char *err = NULL;
		int e = flow_outputs(sub->flow, &x->outs, &err);
		json_t *o = e == 0 ? json_object() : NULL;
		for (size_t i = 0; o && i < x->outs.n; i++) {
			/* not UTF-8: null in the JSON, still readable as outputs.NAME */
			json_t *v = json_stringn(x->outs.v[i].value, x->outs.v[i].value_len);
			if (json_object_set_new(o, x->outs.v[i].key, v ? v : json_null()) < 0)
				e = -ENOMEM;
		}
		char *text = o && e == 0 ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
		json_decref(o);
		if (e < 0 || !text) {
			fail(sub, err ? DR_CLASS_PERMANENT : DR_CLASS_RESOURCE, "outputs: %s",
			     err ? err : "out of memory");
		} else {
			r->ok = true;
			x->x.outputs = &x->outs;
			buf_adds(&r->out, text);
			r->out_bytes = r->out.len;
		}
		free(text);
		free(err);
	}
}

static void on_closed(uv_handle_t *h)
{
	struct sub *sub = h->data;
	if (--sub->open_handles)
		return;
	struct exec_attempt *a = sub->a;
	sched_free(&sub->s);
	flow_free(sub->flow);
	sub->flow = NULL;
	arena_free(&sub->arena);
	a->priv = NULL;
	a->on_done(a, &sub->res);
	exec_result_free(&sub->res);
	free(sub->fail);
	free(sub);
}

/* Once the child's run is done and none of its timers is still closing,
 * the result, then the end (after our handles closed). */
static void on_prepare(uv_prepare_t *h)
{
	struct sub *sub = h->data;
	if (sub->started) {
		if (!sched_done(&sub->s))
			return;
		for (uint32_t t = 0; t < sub->child->n_tasks; t++)
			if (sub->s.ts[t].slot)
				return;   /* a retry timer closing */
	}
	uv_prepare_stop(h);
	if (sub->concluded)
		return;
	sub->concluded = true;
	conclude(sub);
	uv_close((uv_handle_t *)&sub->prepare, on_closed);
	uv_close((uv_handle_t *)&sub->timer, on_closed);
}

static void ext_free(struct exec_ext *x)
{
	struct wf_ext *e = (struct wf_ext *)x;
	expr_outputs_free(&e->outs);
	free(e);
}

static int wx_start(struct executor *ex, struct exec_attempt *a)
{
	struct wx *wx = (struct wx *)ex;
	const struct dr_task *t = &a->wf->tasks[a->task];
	const struct wf_spec *spec = t->spec;
	if (!spec || !spec->child)
		return -EINVAL;
	const struct dr_task_opts *opts = t->opts ? t->opts : &a->wf->default_opts;
	struct sub *sub = calloc(1, sizeof(*sub));
	struct wf_ext *x = calloc(1, sizeof(*x));
	if (!sub || !x) {
		free(sub);
		free(x);
		return -ENOMEM;
	}
	uv_loop_t *loop = wx->env->loop;
	sub->wx = wx;
	sub->a = a;
	sub->child = spec->child;
	sub->base = wx->next_index;
	wx->next_index += spec->child->n_tasks;
	sub->started_ms = uv_now(loop);
	x->pub.base.type = DAGRUN_EXT_WORKFLOW;
	x->pub.name = dagrun_workflow_name(spec->child);
	x->pub.file = spec->child->path;
	x->x.pub = &x->pub.base;
	x->x.free = ext_free;
	sub->ext = x;
	sub->res.ext = &x->x;
	sub->res.exit_code = -1;
	sub->res.start_ms = clock_wall_ms();
	uv_prepare_init(loop, &sub->prepare);
	uv_timer_init(loop, &sub->timer);
	sub->prepare.data = sub->timer.data = sub;
	sub->open_handles = 2;
	a->priv = sub;
	if (begin(sub, spec) == 0 && opts->timeout_ms)
		uv_timer_start(&sub->timer, on_timeout, opts->timeout_ms, 0);
	uv_prepare_start(&sub->prepare, on_prepare);
	return 0;
}

static void wx_cancel(struct executor *ex, struct exec_attempt *a, bool hard)
{
	(void)ex;
	struct sub *sub = a->priv;
	if (!sub || sub->concluded)
		return;
	sub->cancelled = true;
	if (sub->started)
		sched_interrupt(&sub->s, SIGINT, hard);
}

static void wx_destroy(struct executor *ex)
{
	free(ex);
}

static const struct executor_ops wx_ops = {
	.name = "workflow", .start = wx_start, .cancel = wx_cancel, .destroy = wx_destroy,
};

static int make(struct kind_env *env, struct executor **out)
{
	struct wx *wx = calloc(1, sizeof(*wx));
	if (!wx)
		return -ENOMEM;
	wx->base.ops = &wx_ops;
	wx->env = env;
	wx->next_index = env->wf->n_tasks;
	*out = &wx->base;
	return 0;
}

static const struct exec_def exec_workflow = {"workflow", make};

/* ---- the extension ------------------------------------------------------------ */

/* The JSON log's field: subRun {workflow, file, tasks, completed, failed,
 * skipped, cancelled}. */
static int ext_json(const struct dagrun_ext *x, json_t *o)
{
	const struct dagrun_ext_workflow *w = (const struct dagrun_ext_workflow *)x;
	json_t *j = json_pack("{s:s?, s:s?, s:I, s:I, s:I, s:I, s:I}", "workflow", w->name,
			      "file", w->file, "tasks", (json_int_t)w->tasks,
			      "completed", (json_int_t)w->completed,
			      "failed", (json_int_t)w->failed, "skipped", (json_int_t)w->skipped,
			      "cancelled", (json_int_t)w->cancelled);
	return j && json_object_set_new(o, "subRun", j) == 0 ? 0 : -ENOMEM;
}

static const struct ext_def ext_workflow = {DAGRUN_EXT_WORKFLOW, ext_json};

static const struct keydef keys[] = {
	[K_WORKFLOW] = KEY("workflow", k_workflow),
	[K_WITH] = KEY("with", k_with),
};

const struct kind kind_workflow = {
	.load = {
		.model = {"workflow", 0, each_text, NULL, each_child},
		.keys = keys, .n_keys = 2, .n_select = 1, .only_in = "with 'workflow'",
		.spec_size = sizeof(struct wf_spec),
	},
	.exec = &exec_workflow,
	.ext = {&ext_workflow},
	.link = link_child,
	.check = check_exprs,
};
