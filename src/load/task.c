/* task.c: reading one task (and the `defaults` mapping, which shares the
 * option keys) from the event stream into the compact model.
 *
 * Invariant: a task costs only what it writes: its kind's struct and its
 * options are allocated in the arena on their first key, dependencies are
 * appended straight to wf->deps with their target as an interned symbol,
 * and the per-task state lives in one reused struct on the stack.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "load/loader.h"

/* "task 'x'" or "task" for messages. */
static const char *label(const struct loader *ld, const struct task_tmp *t,
			 char *buf, size_t size)
{
	if (t->sym == INTERN_NONE)
		return "task";
	snprintf(buf, size, "task '%.80s'", intern_str(&ld->wf->ids, t->sym));
	return buf;
}

static struct opts_tmp *task_opts(struct loader *ld, void *obj)
{
	struct task_tmp *t = obj;
	if (!t->opts) {
		t->opts = arena_calloc(&ld->wf->arena, sizeof(*t->opts));
		if (!t->opts)
			load_oom(ld);
	}
	return t->opts;
}

/* ---- the task mapping ------------------------------------------------------------------ */

static void t_id(struct loader *ld, void *obj)
{
	struct task_tmp *t = obj;
	t->id_at = load_pos(ld);
	t->sym = ids_read(ld, true);
}

static void t_type(struct loader *ld, void *obj)
{
	const struct task_keys *tk = ld->tk;
	int v = read_enum(ld, tk->type_names, tk->n_types);
	if (v >= 0)
		((struct task_tmp *)obj)->type = (uint8_t)(v + 1);
}

static void t_priority(struct loader *ld, void *obj)
{
	int64_t v;
	if (read_int(ld, INT32_MIN + 1, INT32_MAX, &v))
		((struct task_tmp *)obj)->priority = (int32_t)v;
}

/* The generic keys, by G_*. */
static const struct keydef generic_keys[G_COUNT] = {
	[G_ID] = KEY("id", t_id),
	[G_DEPENDENCIES] = KEY("dependencies", deps_read),
	[G_TYPE] = KEY("type", t_type),
	[G_DESCRIPTION] = KEY_OPT("description", opts_description),
	[G_PRIORITY] = KEY("priority", t_priority),
	[G_RESOURCES] = KEY_OPT("resources", opts_resources),
	[G_TIMEOUT] = KEY_OPT("timeout", opts_timeout),
	[G_KILL_GRACE] = KEY_OPT("killGrace", opts_kill_grace),
	[G_RETRY] = KEY_OPT("retry", opts_retry),
	[G_ENV] = KEY_OPT("env", opts_env),
	[G_WORKDIR] = KEY_OPT("workdir", opts_workdir),
	[G_WHEN] = KEY_OPT("when", opts_when),
	[G_CACHE] = KEY_OPT("cache", opts_cache),
};

#define BIT(k) (1ull << (k))

/* A new spec of kind k, zeroed, with its defaults. NULL on OOM. */
static void *spec_new(struct loader *ld, unsigned k)
{
	const struct load_kind *kd = ld->tk->kinds[k];
	size_t words = ld->tk->spec_words[k];
	uint64_t *p = arena_alloc(&ld->wf->arena, words * 8);
	if (!p) {
		load_oom(ld);
		return NULL;
	}
	switch (words) {     /* constant sizes: stores, not a call to memset */
	case 1: memset(p, 0, 8); break;
	case 2: memset(p, 0, 16); break;
	case 3: memset(p, 0, 24); break;
	case 4: memset(p, 0, 32); break;
	case 5: memset(p, 0, 40); break;
	case 6: memset(p, 0, 48); break;
	case 7: memset(p, 0, 56); break;
	case 8: memset(p, 0, 64); break;
	default: memset(p, 0, words * 8); break;
	}
	if (kd->spec_init)
		kd->spec_init(p);
	return p;
}

/* The spec of kind k for the task being read, allocated (and given its
 * defaults) on the kind's first key. */
static void *task_spec(struct loader *ld, void *obj, unsigned k)
{
	struct task_tmp *t = obj;
	if (t->spec_set & (1u << k))
		return t->spec[k];
	void *p = spec_new(ld, k);
	t->spec[k] = p;
	t->spec_set |= (uint16_t)((p != NULL) << k);
	return p;
}

static int add_key(struct task_keys *tk, unsigned *n, const struct keydef *d, unsigned kind)
{
	if (*n == MAX_KEYS)
		return -EINVAL;
	tk->keys[*n] = *d;
	tk->keys[*n].kind = (uint8_t)kind;
	tk->key_kind[*n] = (uint8_t)kind;
	(*n)++;
	return 0;
}

int task_keys_build(struct loader *ld)
{
	const struct load_opts *o = ld->opts;
	unsigned nk = o ? o->n_kinds : 0, n = 0;
	struct task_keys *tk = calloc(1, sizeof(*tk));
	if (!tk)
		return -ENOMEM;
	ld->tk = tk;
	if (nk > LOAD_MAX_KINDS)
		return -EINVAL;
	tk->kinds = o ? o->kinds : NULL;
	tk->n_kinds = nk;
	for (unsigned g = 0; g < G_TYPE; g++)
		add_key(tk, &n, &generic_keys[g], 0);
	for (unsigned k = 0; k < nk; k++) {
		const struct load_kind *kd = tk->kinds[k];
		tk->spec_words[k] = kd->spec_size ? (kd->spec_size + 7) / 8 : 1;
		tk->first[k] = (uint16_t)n;
		for (unsigned i = 0; i < kd->n_select; i++) {
			tk->select |= BIT(n);
			if (!kd->check && !kd->type)
				tk->quick |= BIT(n);
			if (add_key(tk, &n, &kd->keys[i], k + 1) < 0)
				return -EINVAL;
		}
	}
	tk->g_rest = n;
	for (unsigned g = G_TYPE; g < G_COUNT; g++)
		if (add_key(tk, &n, &generic_keys[g], 0) < 0)
			return -EINVAL;
	for (unsigned k = 0; k < nk; k++) {
		const struct load_kind *kd = tk->kinds[k];
		tk->first_rest[k] = (uint16_t)n;
		for (unsigned i = kd->n_select; i < kd->n_keys; i++)
			if (add_key(tk, &n, &kd->keys[i], k + 1) < 0)
				return -EINVAL;
	}
	tk->tab = (struct keytab){"task", tk->keys, n, task_opts, task_spec};
	/* `type:` standard, or a typed kind's name */
	tk->type_names[0] = "standard";
	tk->n_types = 1;
	for (unsigned k = 0; k < nk; k++)
		if (tk->kinds[k]->type) {
			tk->type_kind[tk->n_types] = (uint8_t)(k + 1);
			tk->type_names[tk->n_types++] = tk->kinds[k]->type;
		}
	/* "add 'command', 'script', 'api', 'webhook', 'prompt' or 'workflow'" */
	size_t len = 0;
	for (unsigned k = 0; k < nk; k++) {
		int w = snprintf(tk->nothing + len, sizeof(tk->nothing) - len, "%s'%s'",
				 !k ? "" : k + 1 == nk ? " or " : ", ", tk->kinds[k]->keys[0].name);
		if (w < 0 || (size_t)w >= sizeof(tk->nothing) - len)
			break;
		len += (size_t)w;
	}
	return 0;
}

static bool before(struct pos a, struct pos b)
{
	return a.line < b.line || (a.line == b.line && a.col < b.col);
}

/* The selecting keys present, the first of each kind, in file order; at
 * most one per kind (a kind's other selecting keys are its check's). */
static unsigned kind_keys(const struct task_keys *tk, const struct task_tmp *t, unsigned *out)
{
	uint64_t m = t->seen.mask & tk->select;
	uint32_t kinds_seen = 0;
	unsigned n = 0;
	for (unsigned b = 0; m; b++, m >>= 1) {
		if (!(m & 1))
			continue;
		unsigned k = tk->key_kind[b] - 1u;
		if (kinds_seen & (1u << k))
			continue;
		kinds_seen |= 1u << k;
		unsigned j = n++;
		for (; j > 0 && before(t->seen.at[b], t->seen.at[out[j - 1]]); j--)
			out[j] = out[j - 1];
		out[j] = b;
	}
	return n;
}

/* Decides the task's kind, reporting conflicts; tk->n_kinds if none. */
static unsigned pick_kind(struct loader *ld, const struct task_tmp *t, const char *name)
{
	const struct task_keys *tk = ld->tk;
	unsigned k[LOAD_MAX_KINDS];
	unsigned n = kind_keys(tk, t, k);
	unsigned typed = t->type ? tk->type_kind[t->type - 1] : 0; /* 1 + kind, 0: standard */
	for (unsigned i = 0; i < n && t->type; i++) {
		unsigned kk = tk->key_kind[k[i]] - 1u;
		bool ok = typed ? kk + 1 == typed : !tk->kinds[kk]->type;
		if (!ok)
			load_error(ld, t->seen.at[k[i]], "%s has both 'type: %s' and '%s'",
				   name, tk->type_names[t->type - 1], tk->keys[k[i]].name);
	}
	if (n >= 2)
		load_error(ld, t->seen.at[k[1]], "%s has both '%s' and '%s'", name,
			   tk->keys[k[0]].name, tk->keys[k[1]].name);
	if (typed)
		return typed - 1;
	if (n)
		return tk->key_kind[k[0]] - 1u;
	for (unsigned kk = 0; kk < tk->n_kinds; kk++) {
		const struct load_kind *kd = tk->kinds[kk];
		uint64_t own = (BIT(kd->n_keys - kd->n_select) - 1) << tk->first_rest[kk];
		if (kd->keys_select && (t->seen.mask & own))
			return kk;
	}
	return tk->n_kinds;
}

/* The other keys of a kind that is not the task's: an error each. A kind
 * whose keys select it wants to be the task's kind; another wants one of
 * its selecting keys written (interpreter: with script). */
static void check_keys_fit(struct loader *ld, struct task_tmp *t, unsigned kind)
{
	const struct task_keys *tk = ld->tk;
	uint64_t m = t->seen.mask;
	for (unsigned kk = 0; kk < tk->n_kinds; kk++) {
		const struct load_kind *kd = tk->kinds[kk];
		unsigned rest = kd->n_keys - kd->n_select;
		uint64_t own = (BIT(rest) - 1) << tk->first_rest[kk];
		uint64_t sel = (BIT(kd->n_select) - 1) << tk->first[kk];
		if (!(m & own) || kk == kind || (!kd->keys_select && (m & sel)))
			continue;
		for (unsigned i = 0; i < rest; i++) {
			unsigned b = tk->first_rest[kk] + i;
			if (m & BIT(b))
				load_error(ld, t->seen.at[b], "'%s' is only valid %s",
					   tk->keys[b].name, kd->only_in ? kd->only_in : "in another kind of task");
		}
	}
}

/* Declares the id; reports a duplicate. */
static void declare(struct loader *ld, const struct task_tmp *t, unsigned g,
		    uint32_t idx)
{
	uint32_t *slot = &ld->wf->sym_task[t->sym];
	if (*slot == UINT32_MAX) {
		*slot = (g << 28) | idx;
		return;
	}
	const struct dr_task *first = &ld->groups[*slot >> 28].v[*slot & 0x0FFFFFFF];
	load_error(ld, t->id_at, "duplicate task id '%.80s' (first defined at line %u)",
		   intern_str(&ld->wf->ids, t->sym), first->line);
}

static bool append(struct loader *ld, unsigned g, const struct dr_task *task)
{
	struct task_vec *v = &ld->groups[g];
	if (v->n == v->cap) {
		uint32_t cap = v->cap ? v->cap * 2 : (g == GROUP_MAIN ? 1024 : 8);
		struct dr_task *p = load_grow(v->v, (size_t)cap * sizeof(*p));
		if (!p) {
			load_oom(ld);
			return false;
		}
		v->v = p;
		v->cap = cap;
	}
	v->v[v->n++] = *task;
	ld->n_tasks++;
	return true;
}

/* The checks of a task as a whole; returns its kind (n_kinds: none). */
static unsigned check_task(struct loader *ld, struct task_tmp *t, struct pos at)
{
	const struct task_keys *tk = ld->tk;
	char buf[100];
	const char *name = label(ld, t, buf, sizeof(buf));
	if (!seen_or_hinted(&t->seen, G_ID))
		load_error(ld, t->start, "missing required key 'id' in task");
	unsigned kind = pick_kind(ld, t, name);
	if (kind == tk->n_kinds && !(t->seen.hinted & tk->select))
		load_error(ld, at, "%s has nothing to run: add %s", name, tk->nothing);
	check_keys_fit(ld, t, kind);
	if (kind < tk->n_kinds && tk->kinds[kind]->check) {
		const struct load_kind *kd = tk->kinds[kind];
		struct kind_view v = {&t->seen, tk->first[kind], tk->first_rest[kind], kd->n_select,
				      (t->spec_set >> kind) & 1 ? t->spec[kind] : NULL, name, at};
		kd->check(ld, &v);
	}
	return kind;
}

static void finish(struct loader *ld, struct task_tmp *t, unsigned g)
{
	const struct task_keys *tk = ld->tk;
	struct pos at = t->sym != INTERN_NONE ? t->id_at : t->start;
	unsigned kind;
	/* The common case, an id and one selecting key of a kind without
	 * checks (and dependencies), needs no further check. */
	uint64_t m = t->seen.mask & ~(BIT(G_ID) | BIT(G_DEPENDENCIES));
	if ((t->seen.mask & BIT(G_ID)) && m && !(m & (m - 1)) && (m & tk->quick))
		kind = tk->key_kind[__builtin_ctzll(m)] - 1u;
	else
		kind = check_task(ld, t, at);
	struct dr_task task = {
		.sym = t->sym, .line = at.line, .col = at.col,
		.dep_first = t->dep_first, .dep_count = t->dep_count,
		.priority = t->priority, .kind = (uint8_t)(kind < tk->n_kinds ? kind : 0),
		.hook = (uint8_t)g, .opts = t->opts ? &t->opts->o : NULL,
		.spec = kind < tk->n_kinds && ((t->spec_set >> kind) & 1) ? t->spec[kind] : NULL,
	};
	if (t->sym != INTERN_NONE)
		declare(ld, t, g, ld->groups[g].n);
	ld->kind_tasks[task.kind]++;
	append(ld, g, &task);
}

void task_read(struct loader *ld, unsigned g)
{
	struct task_tmp t;
	if (ld->n_tasks >= DAGRUN_MAX_TASKS) {
		load_error(ld, load_pos(ld), "too many tasks (the limit is %u)",
			   DAGRUN_MAX_TASKS);
		ld->stop = true;
		return;
	}
	t.start = load_pos(ld);
	t.sym = INTERN_NONE;
	t.id_at = t.start;
	t.priority = PRIORITY_UNSET;
	t.type = 0;
	t.deps_capped = false;
	t.spec_set = 0;
	t.dep_first = (uint32_t)ld->wf->n_deps;
	t.dep_count = 0;
	t.opts = NULL;
	read_map(ld, &ld->tk->tab, &t, &t.seen);
	if (!ld->stop)
		finish(ld, &t, g);
}
