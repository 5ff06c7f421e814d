/* wfbuild.c: hand-built workflows for tests; see wfbuild.h. */
#include "wfbuild.h"

#include "kinds/kind.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *xrealloc(void *p, size_t n)
{
	p = realloc(p, n ? n : 1);
	if (!p) {
		fprintf(stderr, "wfbuild: out of memory\n");
		abort();
	}
	return p;
}

void wfb_init(struct wfb *b, const char *name)
{
	memset(b, 0, sizeof(*b));
	b->wf = xrealloc(NULL, sizeof(*b->wf));
	memset(b->wf, 0, sizeof(*b->wf));
	b->wf->path = strdup("test.yaml");
	b->wf->dir = strdup(".");
	if (name) {
		b->wf->name.s = arena_strdup(&b->wf->arena, name);
		b->wf->name.len = (uint32_t)strlen(name);
	}
	static const char *const names[] = {"command", "script", "api", "webhook", "ai"};
	unsigned n;
	const struct kind *const *k = kinds_table(&n);
	const struct dr_kind **v = arena_alloc(&b->wf->arena, n * sizeof(*v));
	for (unsigned i = 0; i < n; i++) {
		v[i] = &k[i]->load.model;
		if (i < 5 && strcmp(v[i]->name, names[i]))
			abort();   /* enum wfb_kind is out of date */
	}
	b->wf->kinds = v;
	b->wf->n_kinds = n;
}

uint32_t wfb_task(struct wfb *b, const char *id, enum wfb_kind kind, int hook)
{
	struct dagrun_workflow *wf = b->wf;
	uint32_t sym = intern_add(&wf->ids, id, strlen(id), NULL);
	if (sym == INTERN_NONE)
		abort();
	if (wf->n_tasks == b->task_cap) {
		b->task_cap = b->task_cap ? b->task_cap * 2 : 16;
		wf->tasks = xrealloc(wf->tasks, b->task_cap * sizeof(*wf->tasks));
	}
	uint32_t t = wf->n_tasks++;
	wf->tasks[t] = (struct dr_task){
		.sym = sym, .line = t + 1, .col = 7, .dep_first = (uint32_t)wf->n_deps,
		.kind = (uint8_t)kind, .hook = (uint8_t)hook, .opts = &wf->default_opts,
	};
	return t;
}

void wfb_dep(struct wfb *b, const char *on, enum dr_dep_type type,
	     const char *cond)
{
	struct dagrun_workflow *wf = b->wf;
	if (!wf->n_tasks)
		abort();
	uint32_t sym = intern_add(&wf->ids, on, strlen(on), NULL);
	if (sym == INTERN_NONE)
		abort();
	if (wf->n_deps == b->dep_cap) {
		b->dep_cap = b->dep_cap ? b->dep_cap * 2 : 16;
		wf->deps = xrealloc(wf->deps, b->dep_cap * sizeof(*wf->deps));
	}
	struct dr_text *c = NULL;
	if (cond) {
		c = arena_calloc(&wf->arena, sizeof(*c));
		c->s = arena_strdup(&wf->arena, cond);
		c->len = (uint32_t)strlen(cond);
		c->line = wf->n_tasks;
		c->col = 20;
	}
	uint32_t t = wf->n_tasks - 1;
	wf->deps[wf->n_deps++] = (struct dr_dep){
		.target = sym, .line = t + 1, .col = 9, .type = (uint8_t)type,
		.condition = c,
	};
	wf->tasks[t].dep_count++;
}

static void set_hooks(struct dagrun_workflow *wf)
{
	for (uint32_t t = 0; t < wf->n_tasks; t++) {
		int h = wf->tasks[t].hook;
		if (t && h < wf->tasks[t - 1].hook) {
			fprintf(stderr, "wfbuild: tasks not grouped by hook\n");
			abort();
		}
		if (!wf->hook_count[h]++)
			wf->hook_first[h] = t;
	}
	wf->n_main = wf->hook_count[DR_HOOK_NONE];
	wf->hook_first[DR_HOOK_NONE] = 0;
}

struct dagrun_workflow *wfb_finish(struct wfb *b)
{
	struct dagrun_workflow *wf = b->wf;
	uint32_t n_syms = wf->ids.count;
	wf->sym_task = xrealloc(NULL, (n_syms ? n_syms : 1) * sizeof(uint32_t));
	for (uint32_t s = 0; s < n_syms; s++)
		wf->sym_task[s] = UINT32_MAX;
	for (uint32_t t = 0; t < wf->n_tasks; t++) {
		if (wf->sym_task[wf->tasks[t].sym] != UINT32_MAX) {
			fprintf(stderr, "wfbuild: duplicate id %s\n", wf_task_id(wf, t));
			abort();
		}
		wf->sym_task[wf->tasks[t].sym] = t;
	}
	for (uint64_t d = 0; d < wf->n_deps; d++) {
		uint32_t t = wf->sym_task[wf->deps[d].target];
		if (t == UINT32_MAX) {
			fprintf(stderr, "wfbuild: unknown id %s\n",
				intern_str(&wf->ids, wf->deps[d].target));
			abort();
		}
		wf->deps[d].target = t;
	}
	set_hooks(wf);
	b->wf = NULL;
	return wf;
}

struct dagrun_workflow *wfb_parse(const char *spec)
{
	struct wfb b;
	wfb_init(&b, "parsed");
	char *copy = strdup(spec), *save = NULL;
	for (char *tok = strtok_r(copy, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
		char *deps = strchr(tok, ':');
		if (deps)
			*deps++ = '\0';
		wfb_task(&b, tok, WFB_COMMAND, DR_HOOK_NONE);
		char *save2 = NULL;
		for (char *d = deps ? strtok_r(deps, ",", &save2) : NULL; d;
		     d = strtok_r(NULL, ",", &save2)) {
			int nb = d[0] == '~';
			wfb_dep(&b, d + nb, nb ? DR_DEP_NON_BLOCKING : DR_DEP_BLOCKING, NULL);
		}
	}
	free(copy);
	return wfb_finish(&b);
}
