/* exprcheck.c: static checks of every template and expression of a loaded
 * workflow, for `dagrun validate` (and so for `run`, which validates first).
 *
 * Each `{{ }}`, `when` and `condition` must compile; a `tasks.X` it reads
 * must name a task that runs before it (an upstream dependency, direct or
 * transitive; any main task for a hook), a `variables.X` a declared
 * variable, and every other free name one the expression language knows. A
 * template in shell text must sit where the run can substitute a value
 * (tpl_check_shell, the run's own decision), and an interpreter, which is
 * used as written, holds no template.
 *
 * Cost: one pass over the texts that contain templates, then one pass over
 * the graph for all the upstream questions together. A reference to a
 * direct dependency is answered at once (the task's dependencies are
 * marked once); the others are kept, in order, with the diagnostics found
 * meanwhile, and answered afterwards with bit sets: tasks in an order where
 * dependencies come first, each task's row the OR of its dependencies'
 * rows plus their own bits, one bit per referenced task, 64 referenced
 * tasks per word, over the window of tasks between the first referenced
 * one and the last reader. The diagnostics are then emitted in the order a
 * single pass finds them. Nothing reads wf->graph: load.c runs this in a
 * thread while graph_build() builds it.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "expr/check.h"
#include "expr/expr.h"
#include "expr/template.h"
#include "model/model.h"
#include "util/suggest.h"
#include "kinds/kind.h"
#include "util/diag.h"
#include "workflow/workflow.h"

#define BITS_MEMORY ((size_t)32 << 20)   /* bytes of bit rows at most */

/* The reader of the workflow's `outputs`, evaluated once the run is over:
 * it may read any main task. (UINT32_MAX: the workflow's env.) */
#define T_OUTPUTS (UINT32_MAX - 1)

/* A diagnostic found by the first pass, or a question for the second. */
struct finding {
	unsigned line, col;
	char *file;             /* NULL: the workflow's file */
	char *msg;              /* NULL: "does task t read x without depending
				   on it?", answered by the second pass */
	uint32_t t, x;
};

/* A text whose positions were last computed (they are asked in order). */
struct position {
	const struct dr_text *x;
	uint32_t off, lines, bol;
};

struct name_set {
	const struct dr_text **v;   /* sorted */
	size_t n;
};

struct checker {
	struct kind_checker kc;          /* first: what a kind's check() sees */
	const struct dagrun_workflow *wf;
	/* by kind: its check() (kinds/kind.h), or NULL */
	int (*kind_check[DR_MAX_KINDS])(struct kind_checker *c,
					const struct dagrun_workflow *wf, uint32_t t);
	struct dagrun_diags *diags;
	struct expr_engine *ex;
	struct finding *found;
	size_t n_found, cap_found;
	size_t errors;          /* among found, those with a message */
	size_t room;            /* diagnostics the list can take */
	uint32_t *direct;       /* by task: 1 + the task whose dependencies
				   are marked */
	uint32_t marked_for;
	struct name_set vars;
	struct position pos;
	int err;                /* -ENOMEM */
	const char *file;       /* where the texts are: wf->path, or a promptFile */
};

/* Enough errors found: the list can take no more. */
static bool full(const struct checker *c)
{
	return c->diags && c->errors >= c->room;
}

/* The expression engine, created on the first expression: a workflow
 * without any costs no Lua state. NULL (and c->err set) on OOM. */
static struct expr_engine *engine(struct checker *c)
{
	if (!c->ex && expr_new(&c->ex, NULL) < 0)
		c->err = -ENOMEM;
	return c->ex;
}

/* dr_text_position, continuing from the last position asked in the same
 * text: the first pass asks in increasing order, so a text is scanned once
 * however many references it holds. */
static void position(struct checker *c, const struct dr_text *x, uint32_t off,
		     unsigned *line, unsigned *col)
{
	struct position *p = &c->pos;
	*line = x->line;
	*col = x->col;
	if (off > x->len)
		return;
	if (p->x != x || p->off > off)
		*p = (struct position){x, 0, 0, 0};
	for (uint32_t i = p->off; i < off; i++)
		if (x->s[i] == '\n') {
			p->lines++;
			p->bol = i + 1;
		}
	p->off = off;
	*line += p->lines;
	*col += off - p->bol;
}

static struct finding *add_finding(struct checker *c, const struct dr_text *x, uint32_t off)
{
	if (c->n_found == c->cap_found) {
		size_t n = c->cap_found ? c->cap_found * 2 : 16;
		struct finding *v = realloc(c->found, n * sizeof(*v));
		if (!v) {
			c->err = -ENOMEM;
			return NULL;
		}
		c->found = v;
		c->cap_found = n;
	}
	struct finding *f = &c->found[c->n_found];
	*f = (struct finding){0};
	position(c, x, off, &f->line, &f->col);
	if (c->file != c->wf->path && !(f->file = strdup(c->file))) {
		c->err = -ENOMEM;
		return NULL;
	}
	c->n_found++;
	return f;
}

static void error_at(struct checker *c, const struct dr_text *x, uint32_t off,
		     const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void error_at(struct checker *c, const struct dr_text *x, uint32_t off,
		     const char *fmt, ...)
{
	struct finding *f = add_finding(c, x, off);
	if (!f)
		return;
	c->errors++;
	va_list ap;
	va_start(ap, fmt);
	f->msg = buf_vstrf(fmt, ap);
	va_end(ap);
	if (!f->msg) {
		c->n_found--;
		free(f->file);
		c->err = -ENOMEM;
	}
}

/* ---- names --------------------------------------------------------------- */

static int text_cmp(const void *a, const void *b)
{
	const struct dr_text *x = *(const struct dr_text *const *)a;
	const struct dr_text *y = *(const struct dr_text *const *)b;
	size_t n = x->len < y->len ? x->len : y->len;
	int r = memcmp(x->s, y->s, n);
	return r ? r : (x->len > y->len) - (x->len < y->len);
}

static int set_variables(struct checker *c)
{
	const struct dr_value *v = c->wf->variables;
	if (!v || v->kind != DR_VAL_MAP || !v->count)
		return 0;
	c->vars.v = malloc(v->count * sizeof(*c->vars.v));
	if (!c->vars.v)
		return -ENOMEM;
	for (uint32_t i = 0; i < v->count; i++)
		c->vars.v[i] = &v->keys[i];
	c->vars.n = v->count;
	qsort(c->vars.v, c->vars.n, sizeof(*c->vars.v), text_cmp);
	return 0;
}

static bool has_variable(const struct checker *c, const char *name)
{
	struct dr_text key = {name, (uint32_t)strlen(name), 0, 0};
	const struct dr_text *k = &key;
	return c->vars.n && bsearch(&k, c->vars.v, c->vars.n, sizeof(*c->vars.v), text_cmp);
}

static const char *suggest_task(const struct dagrun_workflow *wf, const char *name)
{
	struct suggest s;
	suggest_init(&s, name, strlen(name));
	for (uint32_t t = 0; t < wf->n_tasks; t++)
		suggest_offer(&s, wf_task_id(wf, t));
	return s.best;
}

/* Is x a direct dependency of t? Marks t's dependencies once per task. */
static bool is_direct(struct checker *c, uint32_t t, uint32_t x)
{
	const struct dagrun_workflow *wf = c->wf;
	if (c->marked_for != t) {
		const struct dr_task *k = &wf->tasks[t];
		for (uint32_t i = 0; i < k->dep_count; i++)
			c->direct[wf->deps[k->dep_first + i].target] = t + 1;
		c->marked_for = t;
	}
	return c->direct[x] == t + 1;
}

/* A task read by task t: answered now, or kept for the second pass. */
static void check_task_ref(struct checker *c, uint32_t t, uint32_t x, const struct dr_text *text,
			   uint32_t off)
{
	const struct dagrun_workflow *wf = c->wf;
	if (wf->tasks[t].hook != DR_HOOK_NONE && wf->tasks[x].hook == DR_HOOK_NONE)
		return;   /* hooks run after every main task */
	if (is_direct(c, t, x))
		return;
	struct finding *f = add_finding(c, text, off);
	if (f) {
		f->t = t;
		f->x = x;
	}
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
			const char *hint = c->diags ? suggest_task(wf, nm->name) : NULL;
			error_at(c, x, off, "unknown task '%s' in tasks.%s%s%s%s", nm->name, nm->name,
				 hint ? "; did you mean '" : "", hint ? hint : "", hint ? "'?" : "");
		} else if (t == UINT32_MAX) {
			error_at(c, x, off, "the workflow's env cannot read tasks.%s: it applies to "
				 "every task; set it in the env of the tasks that depend on '%s'",
				 nm->name, nm->name);
		} else if (t == T_OUTPUTS) {
			if (wf->tasks[x_task].hook != DR_HOOK_NONE)
				error_at(c, x, off, "`outputs` can read main tasks only; '%s' is a "
					 "hook task, which may not run", nm->name);
		} else if (x_task == t) {
			error_at(c, x, off, "task '%s' cannot read its own result", nm->name);
		} else {
			check_task_ref(c, t, x_task, x, off);
		}
		return;
	}
	case EXPR_NAME_VARIABLE:
		if (!has_variable(c, nm->name))
			error_at(c, x, off, "unknown variable '%s': declare it under `variables`",
				 nm->name);
		return;
	case EXPR_NAME_CONDITION_ONLY:
		error_at(c, x, off, "'%s' is only known in a dependency condition; here "
			 "write tasks.<id>.%s", nm->name, nm->name);
		return;
	default:
		error_at(c, x, off, "unknown name '%s' (known: variables, env, secrets, run, "
			 "trigger, context, tasks, and the helpers)", nm->name);
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
		for (size_t i = 0; i < refs.n && !full(c) && !c->err; i++)
			check_name(c, t, x, base, &refs.v[i]);
	}
	expr_refs_free(&refs);
}

static void check_template(struct checker *c, uint32_t t, const struct dr_text *x, bool shell)
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
	for (size_t i = 0; r == 0 && i < tp.n && !full(c) && !c->err; i++)
		if (tp.segs[i].kind == TPL_EXPR)
			check_expr(c, t, x, tp.segs[i].off, tp.segs[i].len, 0);
	/* where the run would refuse every value: the same decision */
	if (r == 0 && shell && !full(c) && !c->err) {
		r = tpl_check_shell(&tp, &e);
		if (r == -ENOMEM)
			c->err = r;
		else if (r < 0)
			error_at(c, x, e.offset, "%s", e.msg);
	}
	tpl_free(&tp);
}

static int on_text(void *ud, uint32_t t, const struct dr_text *x, enum dr_text_use use)
{
	struct checker *c = ud;
	if (use != DR_USE_NOTEMPLATE)   /* the loader already refused those */
		check_template(c, t, x, use == DR_USE_SHELL);
	return c->err || full(c);
}

/* ---- what a kind's check() may call ------------------------------------------ */

static void kc_error(struct kind_checker *kc, const struct dr_text *x, uint32_t off,
		     const char *msg)
{
	error_at((struct checker *)kc, x, off, "%s", msg);
}

/* A template read from another file (a promptFile): positions count in
 * that file, which its diagnostics name. */
static void kc_template_in(struct kind_checker *kc, uint32_t t, const struct dr_text *x,
			   const char *path)
{
	struct checker *c = (struct checker *)kc;
	c->file = path;
	check_template(c, t, x, false);
	c->file = c->wf->path;
	c->pos.x = NULL;    /* x is gone: forget its position */
}

static void check_task(struct checker *c, uint32_t t)
{
	const struct dagrun_workflow *wf = c->wf;
	const struct dr_task *k = &wf->tasks[t];
	if (dr_task_each_text(wf, t, on_text, c))
		return;
	int r = c->kind_check[k->kind] && k->spec ? c->kind_check[k->kind](&c->kc, wf, t) : 0;
	if (r < 0)
		c->err = r;
	const struct dr_text *w = k->opts->when;
	if (w && w->s && !full(c) && !c->err)
		check_expr(c, t, w, 0, w->len, 0);
	for (uint32_t i = 0; i < k->dep_count && !c->err && !full(c); i++) {
		const struct dr_text *cond = wf->deps[k->dep_first + i].condition;
		if (cond && cond->s)
			check_expr(c, t, cond, 0, cond->len, EXPR_CHECK_CONDITION);
	}
}

/* ---- the second pass: which kept references are upstream ----------------- */

struct reach {
	uint32_t *order;        /* tasks, each after its dependencies */
	uint32_t *pos;          /* by task: its index in order */
	uint32_t *bit;          /* by task: its bit among the referenced, or
				   UINT32_MAX */
	uint32_t *refd;         /* the referenced tasks, by position */
	uint32_t n_refd;
	uint32_t *kept;         /* the kept questions (indexes in found), by
				   bit of their referenced task */
	uint32_t *start;        /* by bit: where its questions begin in kept */
};

/* Depth-first over the dependencies, each task after them (a cycle, which
 * the graph build reports, only makes the answers wrong, never unsafe). */
static int order_tasks(const struct dagrun_workflow *wf, struct reach *r)
{
	uint32_t n = wf->n_tasks, done = 0;
	uint32_t *stack = malloc((size_t)(n + 1) * 2 * sizeof(*stack));
	uint8_t *state = calloc(n + 1, 1);
	if (!stack || !state) {
		free(stack);
		free(state);
		return -ENOMEM;
	}
	for (uint32_t root = 0; root < n; root++) {
		if (state[root])
			continue;
		uint32_t sp = 0;
		stack[sp++] = root;
		stack[sp++] = 0;
		state[root] = 1;
		while (sp) {
			uint32_t v = stack[sp - 2], i = stack[sp - 1];
			const struct dr_task *k = &wf->tasks[v];
			if (i < k->dep_count) {
				stack[sp - 1]++;
				uint32_t d = wf->deps[k->dep_first + i].target;
				if (d < n && !state[d]) {
					state[d] = 1;
					stack[sp++] = d;
					stack[sp++] = 0;
				}
				continue;
			}
			sp -= 2;
			r->pos[v] = done;
			r->order[done++] = v;
		}
	}
	free(stack);
	free(state);
	return 0;
}

static int pos_cmp(const void *a, const void *b, void *ud)
{
	const uint32_t *pos = ud;
	uint32_t x = pos[*(const uint32_t *)a], y = pos[*(const uint32_t *)b];
	return (x > y) - (x < y);
}

/* Answers the kept questions whose referenced task has a bit in
 * [first, last): sets their msg to "" when x is upstream of t (so they are
 * dropped), leaves it NULL otherwise. `words` words of bits per task. */
static int answer_round(struct checker *c, struct reach *r, uint32_t first, uint32_t last,
			uint32_t words)
{
	const struct dagrun_workflow *wf = c->wf;
	uint32_t lo = r->pos[r->refd[first]], hi = lo;
	for (uint32_t k = r->start[first]; k < r->start[last]; k++) {
		const struct finding *f = &c->found[r->kept[k]];
		if (r->pos[f->t] > hi)
			hi = r->pos[f->t];
	}
	size_t rows = (size_t)(hi - lo) + 1;
	uint64_t *set = calloc(rows * words, sizeof(*set));
	if (!set)
		return -ENOMEM;
	for (uint32_t p = lo; p <= hi; p++) {
		uint32_t v = r->order[p];
		uint64_t *row = set + (size_t)(p - lo) * words;
		const struct dr_task *k = &wf->tasks[v];
		for (uint32_t i = 0; i < k->dep_count; i++) {
			uint32_t d = wf->deps[k->dep_first + i].target;
			uint32_t pd = r->pos[d];
			if (pd < lo || pd >= p)   /* before the window, or a cycle */
				continue;
			const uint64_t *from = set + (size_t)(pd - lo) * words;
			for (uint32_t w = 0; w < words; w++)
				row[w] |= from[w];
			uint32_t b = r->bit[d];
			if (b >= first && b < last)
				row[(b - first) / 64] |= (uint64_t)1 << ((b - first) % 64);
		}
	}
	for (uint32_t k = r->start[first]; k < r->start[last]; k++) {
		struct finding *f = &c->found[r->kept[k]];
		uint32_t b = r->bit[f->x] - first, p = r->pos[f->t];
		bool up = p >= lo && p <= hi &&
			  (set[(size_t)(p - lo) * words + b / 64] >> (b % 64) & 1);
		if (up && !(f->msg = strdup(""))) {
			free(set);
			return -ENOMEM;
		}
	}
	free(set);
	return 0;
}

static int answer_all(struct checker *c)
{
	const struct dagrun_workflow *wf = c->wf;
	uint32_t n = wf->n_tasks;
	struct reach r = {0};
	int err = 0;
	size_t kept = 0;
	for (size_t i = 0; i < c->n_found; i++)
		kept += !c->found[i].msg;
	if (!kept)
		return 0;
	r.order = malloc((size_t)(n + 1) * sizeof(*r.order));
	r.pos = malloc((size_t)(n + 1) * sizeof(*r.pos));
	r.bit = malloc((size_t)(n + 1) * sizeof(*r.bit));
	r.refd = malloc((kept + 1) * sizeof(*r.refd));
	r.kept = malloc((kept + 1) * sizeof(*r.kept));
	r.start = calloc(kept + 2, sizeof(*r.start));
	if (!r.order || !r.pos || !r.bit || !r.refd || !r.kept || !r.start ||
	    order_tasks(wf, &r) < 0) {
		err = -ENOMEM;
		goto out;
	}
	memset(r.bit, 0xff, (size_t)(n + 1) * sizeof(*r.bit));
	for (size_t i = 0; i < c->n_found; i++) {
		const struct finding *f = &c->found[i];
		if (!f->msg && r.bit[f->x] == UINT32_MAX) {
			r.bit[f->x] = 0;
			r.refd[r.n_refd++] = f->x;
		}
	}
	/* bits in the order of the tasks, so that a round's window is short */
	qsort_r(r.refd, r.n_refd, sizeof(*r.refd), pos_cmp, r.pos);
	for (uint32_t i = 0; i < r.n_refd; i++)
		r.bit[r.refd[i]] = i;
	/* the questions grouped by bit (a counting sort), so that each round
	 * reads its own */
	for (size_t i = 0; i < c->n_found; i++)
		if (!c->found[i].msg)
			r.start[r.bit[c->found[i].x] + 1]++;
	for (uint32_t b = 0; b < r.n_refd; b++)
		r.start[b + 1] += r.start[b];
	for (size_t i = 0; i < c->n_found; i++)
		if (!c->found[i].msg)
			r.kept[r.start[r.bit[c->found[i].x]]++] = (uint32_t)i;
	for (uint32_t b = r.n_refd; b > 0; b--)   /* back to the beginnings */
		r.start[b] = r.start[b - 1];
	r.start[0] = 0;
	size_t max_words = BITS_MEMORY / 8 / ((size_t)n + 1);
	uint32_t words = (r.n_refd + 63) / 64;
	if (words > max_words)
		words = max_words ? (uint32_t)max_words : 1;
	for (uint32_t first = 0; first < r.n_refd && !err; first += 64 * words) {
		uint32_t last = first + 64 * words < r.n_refd ? first + 64 * words : r.n_refd;
		err = answer_round(c, &r, first, last, words);
	}
out:
	free(r.order);
	free(r.pos);
	free(r.bit);
	free(r.refd);
	free(r.kept);
	free(r.start);
	return err;
}

/* ---- the whole check ----------------------------------------------------- */

/* The diagnostics, in the order found: a kept question with no answer is
 * an error; an answered one ("") is dropped. */
static void emit(struct checker *c)
{
	const struct dagrun_workflow *wf = c->wf;
	size_t errors = 0;
	for (size_t i = 0; i < c->n_found; i++) {
		const struct finding *f = &c->found[i];
		if (f->msg && !*f->msg)
			continue;
		if (c->diags && errors >= c->room)
			break;
		errors++;
		const char *file = f->file ? f->file : c->file;
		if (f->msg)
			diag_add(c->diags, DAGRUN_ERROR, file, f->line, f->col, "%s", f->msg);
		else
			diag_add(c->diags, DAGRUN_ERROR, file, f->line, f->col,
				 "task '%s' reads tasks.%s but does not depend on it; add '%s' "
				 "to its dependencies", wf_task_id(wf, f->t), wf_task_id(wf, f->x),
				 wf_task_id(wf, f->x));
	}
	c->errors = errors;
}

/* See workflow.h. */
int dr_check_expressions(const struct dagrun_workflow *wf, struct dagrun_diags *diags)
{
	struct checker c = {.kc = {kc_error, kc_template_in}, .wf = wf, .diags = diags,
			    .marked_for = UINT32_MAX, .file = wf->path};
	c.room = diags ? (diags->n < diags->max ? diags->max - diags->n : 0) : 0;
	for (uint32_t k = 0; k < wf->n_kinds && k < DR_MAX_KINDS; k++)
		c.kind_check[k] = kind_of(wf->kinds[k])->check;
	c.direct = calloc(wf->n_tasks + 1, sizeof(*c.direct));
	if (!c.direct || set_variables(&c) < 0) {
		c.err = -ENOMEM;
		goto out;
	}
	for (uint32_t i = 0; i < wf->env.n && !c.err && !full(&c); i++)
		check_template(&c, UINT32_MAX, &wf->env.v[i].value, false);
	for (uint32_t i = 0; i < wf->outputs.n && !c.err && !full(&c); i++)
		check_template(&c, T_OUTPUTS, &wf->outputs.v[i].value, false);
	for (uint32_t t = 0; t < wf->n_tasks && !c.err && !full(&c); t++)
		check_task(&c, t);
	if (!c.err)
		c.err = answer_all(&c);
	if (!c.err)
		emit(&c);
out:
	expr_free(c.ex);
	for (size_t i = 0; i < c.n_found; i++) {
		free(c.found[i].msg);
		free(c.found[i].file);
	}
	free(c.found);
	free(c.direct);
	free(c.vars.v);
	return c.err ? c.err : c.errors ? -EINVAL : 0;
}
