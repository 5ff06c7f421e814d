/* flow_vars.c: the variables expressions read: the declared ones, with
 * --var NAME=VALUE (strings) or a sub-run's `with` (any values, rendered)
 * over them, and only over declared names.
 */
#include <errno.h>
#include <string.h>

#include "sched/flow_int.h"
#include "util/diag.h"

/* ---- variables --------------------------------------------------------------- */

/* A copy of the declared variables (a map; empty when none) in f's
 * arena, for values to override; NULL on OOM. */
static struct dr_value *vars_copy(struct flow *f)
{
	const struct dr_value *v = f->wf->variables;
	uint32_t n = v ? v->count : 0;
	struct dr_value *m = arena_calloc(&f->arena, sizeof(*m));
	if (!m)
		return NULL;
	m->kind = DR_VAL_MAP;
	m->count = n;
	m->items = arena_calloc(&f->arena, (n ? n : 1) * sizeof(*m->items));
	m->keys = arena_calloc(&f->arena, (n ? n : 1) * sizeof(*m->keys));
	if (!m->items || !m->keys)
		return NULL;
	for (uint32_t i = 0; i < n; i++) {
		m->items[i] = v->items[i];
		m->keys[i] = v->keys[i];
	}
	return m;
}

/* The index of variable name[0 .. len) in m, or m->count. */
static uint32_t var_index(const struct dr_value *m, const char *name, size_t len)
{
	uint32_t i = 0;
	while (i < m->count && !(m->keys[i].len == len && !memcmp(m->keys[i].s, name, len)))
		i++;
	return i;
}

int flow_override_vars(struct flow *f, const char *const *vars, dagrun_diags *d)
{
	if (!vars || !vars[0])
		return 0;
	struct dr_value *m = vars_copy(f);
	if (!m)
		return -ENOMEM;
	int r = 0;
	for (const char *const *p = vars; *p; p++) {
		const char *eq = strchr(*p, '=');
		size_t kl = eq ? (size_t)(eq - *p) : strlen(*p);
		uint32_t i = var_index(m, *p, kl);
		if (!eq) {
			diag_add(d, DAGRUN_ERROR, NULL, 0, 0, "--var '%s': expected NAME=VALUE", *p);
			r = -EINVAL;
			continue;
		}
		if (i == m->count) {
			diag_add(d, DAGRUN_ERROR, NULL, 0, 0,
				 "--var '%.*s': no such variable in the workflow's `variables` "
				 "(declare it there with a default)", (int)kl, *p);
			r = -EINVAL;
			continue;
		}
		struct dr_value *it = &m->items[i];
		memset(it, 0, sizeof(*it));
		it->kind = DR_VAL_STRING;
		it->quoted = true;
		it->text.s = arena_strdup(&f->arena, eq + 1);
		if (!it->text.s)
			return -ENOMEM;
		it->text.len = (uint32_t)strlen(eq + 1);
	}
	f->vars = m;
	return r;
}

/* A sub-run's variables: those of with (a map, already rendered) override
 * the declared ones, which they must be (the link step checked). */
int flow_with_vars(struct flow *f, const struct dr_value *with, dagrun_diags *d)
{
	if (!with || !with->count)
		return 0;
	struct dr_value *m = vars_copy(f);
	if (!m)
		return -ENOMEM;
	int r = 0;
	for (uint32_t k = 0; k < with->count; k++) {
		const struct dr_text *key = &with->keys[k];
		uint32_t i = var_index(m, key->s, key->len);
		if (i == m->count) {
			diag_add(d, DAGRUN_ERROR, f->wf->path, 0, 0, "'with': no variable '%.*s' in "
				 "the workflow's `variables`", (int)key->len, key->s);
			r = -EINVAL;
			continue;
		}
		m->items[i] = with->items[k];
	}
	f->vars = m;
	return r;
}
