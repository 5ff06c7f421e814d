/* workflow.c: the model's accessors, names and destructor, and the walk
 * over the strings of a task that may hold templates.
 *
 * The model depends on nothing but util/: what is built on it (the graph,
 * wf->graph) is freed by its builder's module (workflow/load.c). */
#include <stdlib.h>

#include "model/model.h"

const char *dagrun_version(void)
{
	return DAGRUN_VERSION;
}

const char *dr_kind_name(enum dr_kind k)
{
	static const char *const names[] = {"command", "script", "api", "webhook", "ai"};
	return (unsigned)k < DR_KIND_COUNT ? names[k] : "?";
}

const char *dr_class_name(enum dr_error_class c)
{
	static const char *const names[] = {"none", "transient", "permanent",
					    "dependency", "resource"};
	return (unsigned)c <= DR_CLASS_RESOURCE ? names[c] : "?";
}

const char *dagrun_status_name(int status)
{
	static const char *const names[] = {"pending", "running", "completed", "failed",
					    "retrying", "skipped", "cancelled"};
	return (unsigned)status <= DAGRUN_CANCELLED ? names[status] : "?";
}

const char *dagrun_class_name(int c)
{
	return dr_class_name((enum dr_error_class)c);
}

const char *dagrun_workflow_name(const dagrun_workflow *wf)
{
	return wf && wf->name.s ? wf->name.s : "";
}

size_t dagrun_workflow_task_count(const dagrun_workflow *wf)
{
	return wf ? wf->n_tasks : 0;
}

void dr_workflow_free(struct dagrun_workflow *wf)
{
	if (!wf)
		return;
	free(wf->sym_task);
	free(wf->tasks);
	free(wf->deps);
	free(wf->path);
	free(wf->dir);
	intern_free(&wf->ids);
	arena_free(&wf->arena);
	free(wf);
}

/* ---- the strings of a task that may hold templates ----------------------- */

static int each_kv(const struct dagrun_workflow *wf, uint32_t t, const struct dr_kvlist *kv,
		   enum dr_text_use use, dr_text_fn fn, void *ud)
{
	(void)wf;
	for (uint32_t i = 0; i < kv->n; i++) {
		int r = fn(ud, t, &kv->v[i].value, use);
		if (r)
			return r;
	}
	return 0;
}

/* The string leaves of a generic value (JSON bodies, payloads, context). */
static int each_value(uint32_t t, const struct dr_value *v, dr_text_fn fn, void *ud)
{
	if (!v)
		return 0;
	if (v->kind == DR_VAL_STRING)
		return fn(ud, t, &v->text, DR_USE_PLAIN);
	if (v->kind != DR_VAL_MAP && v->kind != DR_VAL_LIST)
		return 0;
	for (uint32_t i = 0; i < v->count; i++) {
		int r = each_value(t, &v->items[i], fn, ud);
		if (r)
			return r;
	}
	return 0;
}

static int call(dr_text_fn fn, void *ud, uint32_t t, const struct dr_text *x,
		enum dr_text_use use)
{
	return x && x->s ? fn(ud, t, x, use) : 0;
}

static int each_spec_text(const struct dagrun_workflow *wf, uint32_t t, dr_text_fn fn, void *ud)
{
	const struct dr_task *k = &wf->tasks[t];
	int r = 0;
	switch (k->kind) {
	case DR_KIND_COMMAND: {
		const struct dr_command *c = k->spec.command;
		if (c->str.s)
			return fn(ud, t, &c->str, DR_USE_SHELL);
		for (uint32_t i = 0; i < c->argc && !r; i++)
			r = call(fn, ud, t, &c->argv[i], DR_USE_ARGV);
		return r;
	}
	case DR_KIND_SCRIPT: {
		const struct dr_script *s = k->spec.script;
		return call(fn, ud, t, &s->body, s->posix_shell ? DR_USE_SHELL : DR_USE_NOTEMPLATE);
	}
	case DR_KIND_API: {
		const struct dr_api *a = k->spec.api;
		if ((r = call(fn, ud, t, &a->url, DR_USE_URL)) ||
		    (r = call(fn, ud, t, &a->method, DR_USE_HEADER)) ||
		    (r = each_kv(wf, t, &a->headers, DR_USE_HEADER, fn, ud)))
			return r;
		return each_value(t, a->body, fn, ud);
	}
	case DR_KIND_WEBHOOK: {
		const struct dr_webhook *w = k->spec.webhook;
		if ((r = call(fn, ud, t, &w->url, DR_USE_URL)) ||
		    (r = call(fn, ud, t, &w->event, DR_USE_HEADER)) ||
		    (r = call(fn, ud, t, &w->secret, DR_USE_PLAIN)) ||
		    (r = each_kv(wf, t, &w->headers, DR_USE_HEADER, fn, ud)))
			return r;
		return each_value(t, w->payload, fn, ud);
	}
	case DR_KIND_AI: {
		const struct dr_ai *a = k->spec.ai;
		if ((r = call(fn, ud, t, &a->model, DR_USE_PLAIN)) ||
		    (r = call(fn, ud, t, &a->system, DR_USE_PLAIN)) ||
		    (r = call(fn, ud, t, &a->prompt, DR_USE_PLAIN)) ||
		    (r = call(fn, ud, t, &a->base_url, DR_USE_URL)))
			return r;
		return each_value(t, a->context, fn, ud);
	}
	default:
		return 0;
	}
}

int dr_task_each_text(const struct dagrun_workflow *wf, uint32_t t, dr_text_fn fn, void *ud)
{
	const struct dr_task_opts *o = wf->tasks[t].opts;
	int r;
	if ((r = each_spec_text(wf, t, fn, ud)))
		return r;
	if ((r = each_kv(wf, t, &o->env, DR_USE_PLAIN, fn, ud)))
		return r;
	return call(fn, ud, t, o->workdir, DR_USE_PLAIN);
}

void dr_text_position(const struct dr_text *x, uint32_t off, unsigned *line, unsigned *col)
{
	*line = x->line;
	*col = x->col;
	if (off > x->len)
		return;
	uint32_t lines = 0, bol = 0;
	for (uint32_t i = 0; i < off; i++)
		if (x->s[i] == '\n') {
			lines++;
			bol = i + 1;
		}
	*line += lines;
	*col += off - bol;
}
