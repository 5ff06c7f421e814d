/* flow_cache.c: templates and expressions compiled once per run, in an
 * open-addressing table keyed by the address of the model's dr_text (the
 * model never moves while a run uses it); a compile error is kept with its
 * message and given again to every use.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sched/flow_int.h"

/* ---- the cache ------------------------------------------------------------ */

static size_t slot_of(const struct flow *f, const void *key)
{
	uintptr_t h = (uintptr_t)key;
	h ^= h >> 17;
	h *= 0x9E3779B97F4A7C15ull;
	return (size_t)(h >> 20) & (f->tab_cap - 1);
}

static struct compiled *find(struct flow *f, const struct dr_text *key)
{
	if (!f->tab_cap)
		return NULL;
	for (size_t i = slot_of(f, key);; i = (i + 1) & (f->tab_cap - 1)) {
		if (f->tab[i].key == key)
			return &f->tab[i];
		if (!f->tab[i].key)
			return NULL;
	}
}

static struct compiled *insert(struct flow *f, const struct dr_text *key)
{
	if ((f->tab_n + 1) * 2 > f->tab_cap) {
		size_t cap = f->tab_cap ? f->tab_cap * 2 : 64;
		struct compiled *old = f->tab;
		size_t oldcap = f->tab_cap;
		f->tab = calloc(cap, sizeof(*f->tab));
		if (!f->tab) {
			f->tab = old;
			return NULL;
		}
		f->tab_cap = cap;
		for (size_t i = 0; i < oldcap; i++) {
			if (!old[i].key)
				continue;
			size_t j = slot_of(f, old[i].key);
			while (f->tab[j].key)
				j = (j + 1) & (cap - 1);
			f->tab[j] = old[i];
		}
		free(old);
	}
	size_t i = slot_of(f, key);
	while (f->tab[i].key)
		i = (i + 1) & (f->tab_cap - 1);
	f->tab[i].key = key;
	f->tab_n++;
	return &f->tab[i];
}

char *flow_located(const struct flow *f, const struct dr_text *x,
		     const struct expr_error *e, const char *what)
{
	unsigned line, col;
	dr_text_position(x, e->offset, &line, &col);
	return buf_strf("%s:%u:%u: %s: %s", f->wf->path, line, col, what, e->msg);
}

static struct compiled *compiled_of(struct flow *f, const struct dr_text *x, bool is_expr)
{
	struct compiled *c = find(f, x);
	if (c)
		return c;
	if (!(c = insert(f, x)))
		return NULL;
	struct expr_error e = {0};
	c->is_expr = is_expr;
	if (is_expr)
		c->err = expr_compile(f->ex, x->s, x->len, &c->id, &e);
	else if (!(c->err = tpl_parse(x->s, x->len, &c->tpl, &e)))
		c->err = tpl_compile(&c->tpl, f->ex, &e);
	if (c->err)
		c->msg = flow_located(f, x, &e, is_expr ? "invalid expression" : "invalid template");
	return c;
}

/* The compiled form of x, or NULL with *r set: -ENOMEM, or its compile
 * error (the message, with its position, in *err). */
struct compiled *flow_compiled(struct flow *f, const struct dr_text *x, bool is_expr,
			       int *r, char **err)
{
	struct compiled *c = compiled_of(f, x, is_expr);
	*r = c ? c->err : -ENOMEM;
	if (!c || !c->err)
		return c;
	*err = strdup(c->msg ? c->msg : is_expr ? "invalid expression" : "invalid template");
	return NULL;
}
