/* exprcheck.c: static checks of every template and expression of a loaded
 * workflow, for `dagrun validate` (and so for `run`, which validates first).
 *
 * Each `{{ }}`, `when` and `condition` must compile; a `tasks.X` it reads
 * must name a task that runs before it (an upstream dependency, direct or
 * transitive; any main task for a hook), a `variables.X` a declared
 * variable, and every other free name one the expression language knows.
 * Invariant: nothing is evaluated; the check costs one pass over the texts
 * that contain templates, plus one upward walk of the graph per task whose
 * references are not among its direct dependencies.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "expr/check.h"
#include "expr/expr.h"
#include "expr/template.h"
#include "load/model.h"
#include "load/suggest.h"
#include "util/diag.h"

struct checker {
	const struct dagrun_workflow *wf;
	struct dagrun_diags *diags;
	struct expr_engine *ex;
	uint32_t *mark;         /* by task: the walk that last reached it */
	uint32_t walk;          /* the current walk's number */
	uint32_t *queue;
	uint32_t walked_for;    /* the task whose ancestors `mark` holds */
	int err;                /* -ENOMEM */
	size_t errors;
	const char *file;       /* where the texts are: wf->path, or a promptFile */
};

static void error_at(struct checker *c, const struct dr_text *x, uint32_t off,
		     const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* The diagnostics list is full (a NULL list never is). */
static bool full(const struct checker *c)
{
	return c->diags && diag_full(c->diags);
}

/* The expression engine, created on the first expression: a workflow
 * without any costs no Lua state. NULL (and c->err set) on OOM. */
static struct expr_engine *engine(struct checker *c)
{
	if (!c->ex && expr_new(&c->ex, NULL) < 0)
		c->err = -ENOMEM;
	return c->ex;
}

static void error_at(struct checker *c, const struct dr_text *x, uint32_t off,
		     const char *fmt, ...)
{
	unsigned line, col;
	dr_text_position(x, off, &line, &col);
	va_list ap;
	va_start(ap, fmt);
	diag_vadd(c->diags, DAGRUN_ERROR, c->file, line, col, fmt, ap);
	va_end(ap);
	c->errors++;
}

/* Marks every ancestor of t (its dependencies, theirs, ...) with a new walk
 * number. */
static void walk_up(struct checker *c, uint32_t t)
{
	const struct dagrun_workflow *wf = c->wf;
	if (c->walked_for == t)
		return;
	c->walked_for = t;
	c->walk++;
	uint32_t head = 0, tail = 0;
	c->queue[tail++] = t;
	while (head < tail) {
		const struct dr_task *k = &wf->tasks[c->queue[head++]];
		for (uint32_t i = 0; i < k->dep_count; i++) {
			uint32_t d = wf->deps[k->dep_first + i].target;
			if (c->mark[d] != c->walk) {
				c->mark[d] = c->walk;
				c->queue[tail++] = d;
			}
		}
	}
}

static bool is_upstream(struct checker *c, uint32_t t, uint32_t x)
{
	const struct dagrun_workflow *wf = c->wf;
	if (wf->tasks[t].hook != DR_HOOK_NONE && wf->tasks[x].hook == DR_HOOK_NONE)
		return true;   /* hooks run after every main task */
	const struct dr_task *k = &wf->tasks[t];
	for (uint32_t i = 0; i < k->dep_count; i++)
		if (wf->deps[k->dep_first + i].target == x)
			return true;
	walk_up(c, t);
	return c->mark[x] == c->walk;
}

static bool has_variable(const struct dagrun_workflow *wf, const char *name)
{
	const struct dr_value *v = wf->variables;
	size_t n = strlen(name);
	for (uint32_t i = 0; v && i < v->count; i++)
		if (v->keys[i].len == n && !memcmp(v->keys[i].s, name, n))
			return true;
	return false;
}

static const char *suggest_task(const struct dagrun_workflow *wf, const char *name)
{
	struct suggest s;
	suggest_init(&s, name, strlen(name));
	for (uint32_t t = 0; t < wf->n_tasks; t++)
		suggest_offer(&s, wf_task_id(wf, t));
	return s.best;
}

/* Checks one name an expression uses. t: the task (UINT32_MAX: the
 * workflow's env, which no task result can reach). */
static void check_name(struct checker *c, uint32_t t, const struct dr_text *x,
		       uint32_t base, const struct expr_name *nm)
{
	const struct dagrun_workflow *wf = c->wf;
	uint32_t off = base + nm->off;
	switch (nm->kind) {
	case EXPR_NAME_TASK: {
		uint32_t sym = intern_find(&wf->ids, nm->name, strlen(nm->name));
		uint32_t x_task = sym == INTERN_NONE ? UINT32_MAX : wf->sym_task[sym];
		if (x_task == UINT32_MAX) {
			const char *hint = suggest_task(wf, nm->name);
			error_at(c, x, off, "unknown task '%s' in tasks.%s%s%s%s", nm->name, nm->name,
				 hint ? "; did you mean '" : "", hint ? hint : "", hint ? "'?" : "");
		} else if (t == UINT32_MAX) {
			error_at(c, x, off, "the workflow's env cannot read tasks.%s: it applies to "
				 "every task; set it in the env of the tasks that depend on '%s'",
				 nm->name, nm->name);
		} else if (x_task == t) {
			error_at(c, x, off, "task '%s' cannot read its own result", nm->name);
		} else if (!is_upstream(c, t, x_task)) {
			error_at(c, x, off, "task '%s' reads tasks.%s but does not depend on it; "
				 "add '%s' to its dependencies", wf_task_id(wf, t), nm->name, nm->name);
		}
		return;
	}
	case EXPR_NAME_VARIABLE:
		if (!has_variable(wf, nm->name))
			error_at(c, x, off, "unknown variable '%s': declare it under `variables`",
				 nm->name);
		return;
	case EXPR_NAME_CONDITION_ONLY:
		error_at(c, x, off, "'%s' is only known in a dependency condition; here "
			 "write tasks.<id>.%s", nm->name, nm->name);
		return;
	default:
		error_at(c, x, off, "unknown name '%s' (known: variables, env, secrets, run, "
			 "context, tasks, and the helpers)", nm->name);
		return;
	}
}

/* Checks one expression source at byte `base` of text x. */
static void check_expr(struct checker *c, uint32_t t, const struct dr_text *x,
		       uint32_t base, uint32_t len, unsigned flags)
{
	struct expr_refs refs = {0};
	struct expr_error e = {0};
	if (!engine(c))
		return;
	int r = expr_check(c->ex, x->s + base, len, flags, &refs, &e);
	if (r == -ENOMEM) {
		c->err = r;
	} else if (r < 0) {
		error_at(c, x, e.offset == EXPR_NO_OFFSET ? base : base + e.offset,
			 "invalid expression: %s", e.msg);
	} else {
		for (size_t i = 0; i < refs.n && !full(c); i++)
			check_name(c, t, x, base, &refs.v[i]);
	}
	expr_refs_free(&refs);
}

static void check_template(struct checker *c, uint32_t t, const struct dr_text *x)
{
	if (!x || !x->s || !tpl_has_template(x->s, x->len))
		return;
	struct tpl tp = {0};
	struct expr_error e = {0};
	int r = tpl_parse(x->s, x->len, &tp, &e);
	if (r == -ENOMEM)
		c->err = r;
	else if (r < 0)
		error_at(c, x, e.offset, "invalid template: %s", e.msg);
	for (size_t i = 0; r == 0 && i < tp.n; i++)
		if (tp.segs[i].kind == TPL_EXPR)
			check_expr(c, t, x, tp.segs[i].off, tp.segs[i].len, 0);
	tpl_free(&tp);
}

static int on_text(void *ud, uint32_t t, const struct dr_text *x, enum dr_text_use use)
{
	struct checker *c = ud;
	if (use != DR_USE_NOTEMPLATE)   /* the loader already refused those */
		check_template(c, t, x);
	return c->err || full(c);
}

#define PROMPT_FILE_MAX ((size_t)1 << 20)

/* An AI task's promptFile must exist (relative to the workflow) and its
 * templates pass the same checks, reported at their place in that file. */
static void check_prompt_file(struct checker *c, uint32_t t, const struct dr_ai *ai)
{
	const struct dr_text *pf = &ai->prompt_file;
	if (!pf->s)
		return;
	char *path = NULL;
	if ((pf->s[0] == '/' ? asprintf(&path, "%s", pf->s)
			     : asprintf(&path, "%s/%s", c->wf->dir, pf->s)) < 0) {
		c->err = -ENOMEM;
		return;
	}
	FILE *f = fopen(path, "r");
	char *text = f ? malloc(PROMPT_FILE_MAX + 1) : NULL;
	size_t n = text ? fread(text, 1, PROMPT_FILE_MAX + 1, f) : 0;
	if (!f)
		error_at(c, pf, UINT32_MAX, "promptFile '%s': %s", path, strerror(errno));
	else if (!text)
		c->err = -ENOMEM;
	else if (n > PROMPT_FILE_MAX)
		error_at(c, pf, UINT32_MAX, "promptFile '%s' is larger than 1 MiB", path);
	else {
		struct dr_text x = {text, (uint32_t)n, 1, 1};
		c->file = path;
		check_template(c, t, &x);
		c->file = c->wf->path;
	}
	if (f)
		fclose(f);
	free(text);
	free(path);
}

/* See model.h. */
int dr_check_expressions(const struct dagrun_workflow *wf, struct dagrun_diags *diags)
{
	struct checker c = {.wf = wf, .diags = diags, .walked_for = UINT32_MAX,
			    .file = wf->path};
	c.mark = calloc(wf->n_tasks + 1, sizeof(*c.mark));
	c.queue = malloc((wf->n_tasks + 1) * sizeof(*c.queue));
	if (!c.mark || !c.queue) {
		c.err = -ENOMEM;
		goto out;
	}
	for (uint32_t i = 0; i < wf->env.n && !c.err; i++)
		check_template(&c, UINT32_MAX, &wf->env.v[i].value);
	for (uint32_t t = 0; t < wf->n_tasks && !c.err && !full(&c); t++) {
		const struct dr_task *k = &wf->tasks[t];
		if (dr_task_each_text(wf, t, on_text, &c))
			continue;
		if (k->kind == DR_KIND_AI)
			check_prompt_file(&c, t, k->spec.ai);
		const struct dr_text *w = k->opts->when;
		if (w && w->s)
			check_expr(&c, t, w, 0, w->len, 0);
		for (uint32_t i = 0; i < k->dep_count && !c.err; i++) {
			const struct dr_text *cond = wf->deps[k->dep_first + i].condition;
			if (cond && cond->s)
				check_expr(&c, t, cond, 0, cond->len, EXPR_CHECK_CONDITION);
		}
	}
out:
	expr_free(c.ex);
	free(c.mark);
	free(c.queue);
	return c.err ? c.err : c.errors ? -EINVAL : 0;
}
