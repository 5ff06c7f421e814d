/* workflow.c: the model's accessors, names and destructor, and the walk
 * over the strings of a task that may hold templates.
 *
 * The model depends on nothing but util/: what is built on it (the graph,
 * wf->graph) is freed by its builder's module (workflow/load.c). */
#include <errno.h>
#include <stdlib.h>

#include "model/model.h"

const char *dagrun_version(void)
{
	return DAGRUN_VERSION;
}

const char *dr_kind_name(const struct dagrun_workflow *wf, uint32_t t)
{
	unsigned k = wf->tasks[t].kind;
	return k < wf->n_kinds && wf->kinds[k] ? wf->kinds[k]->name : "?";
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

const dagrun_ext *dagrun_ext_find(const dagrun_ext *x, int type)
{
	while (x && x->type != type)
		x = x->next;
	return x;
}

const char *dagrun_workflow_name(const dagrun_workflow *wf)
{
	return wf && wf->name.s ? wf->name.s : "";
}

size_t dagrun_workflow_task_count(const dagrun_workflow *wf)
{
	return wf ? wf->n_tasks : 0;
}

int dr_workflow_own(struct dagrun_workflow *wf, void (*free_fn)(void *), void *p)
{
	struct dr_owned *o = arena_alloc(&wf->arena, sizeof(*o));
	if (!o)
		return -ENOMEM;
	*o = (struct dr_owned){wf->owned, free_fn, p};
	wf->owned = o;
	return 0;
}

void dr_workflow_free(struct dagrun_workflow *wf)
{
	if (!wf)
		return;
	for (struct dr_owned *o = wf->owned; o; o = o->next)
		o->free(o->p);
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

int dr_each_text(uint32_t t, const struct dr_text *x, enum dr_text_use use, dr_text_fn fn,
		 void *ud)
{
	return x && x->s ? fn(ud, t, x, use) : 0;
}

int dr_each_kv(uint32_t t, const struct dr_kvlist *kv, enum dr_text_use use, dr_text_fn fn,
	       void *ud)
{
	for (uint32_t i = 0; i < kv->n; i++) {
		int r = fn(ud, t, &kv->v[i].value, use);
		if (r)
			return r;
	}
	return 0;
}

int dr_each_value(uint32_t t, const struct dr_value *v, dr_text_fn fn, void *ud)
{
	if (!v)
		return 0;
	if (v->kind == DR_VAL_STRING)
		return fn(ud, t, &v->text, DR_USE_PLAIN);
	if (v->kind != DR_VAL_MAP && v->kind != DR_VAL_LIST)
		return 0;
	for (uint32_t i = 0; i < v->count; i++) {
		int r = dr_each_value(t, &v->items[i], fn, ud);
		if (r)
			return r;
	}
	return 0;
}

int dr_task_each_text(const struct dagrun_workflow *wf, uint32_t t, dr_text_fn fn, void *ud)
{
	const struct dr_task *k = &wf->tasks[t];
	const struct dr_task_opts *o = k->opts;
	const struct dr_kind *kd = k->kind < wf->n_kinds ? wf->kinds[k->kind] : NULL;
	int r;
	if (kd && kd->each_text && k->spec && (r = kd->each_text(wf, t, fn, ud)))
		return r;
	if ((r = dr_each_kv(t, &o->env, DR_USE_PLAIN, fn, ud)))
		return r;
	return dr_each_text(t, o->workdir, DR_USE_PLAIN, fn, ud);
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
