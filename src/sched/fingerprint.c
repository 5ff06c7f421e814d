/* fingerprint.c: what tells two definitions of a task apart, for `dagrun
 * rerun --definition current`, which lists the tasks added, removed and
 * changed since the run and runs the added and changed ones again.
 *
 * A task's fingerprint is a 64-bit FNV-1a hash over everything that decides
 * what it does (not where it is written, nor its description): its kind and
 * hook list, priority, every string of it that may hold a template (with
 * how it is used), the keys of its maps, the structure and scalars of its
 * values, its options (when, timeout, kill grace, retry, resources,
 * workdir), its kind's settings, its dependencies (by id, type and
 * condition), and the workflow's env, which every task receives. Equal
 * fingerprints: the same task, as far as running it goes (64-bit
 * collisions aside).
 */
#include "sched/fingerprint.h"

#include <string.h>


struct fp {
	struct dr_mix m;             /* first: what a kind's mix() is handed */
	uint64_t h;
};

static void mix(struct fp *f, const void *p, size_t n)
{
	const unsigned char *c = p;
	for (size_t i = 0; i < n; i++) {
		f->h ^= c[i];
		f->h *= 0x100000001b3ull;
	}
}

static void mix_u64(struct fp *f, uint64_t v)
{
	mix(f, &v, sizeof(v));
}

static void mix_text(struct fp *f, const struct dr_text *x)
{
	if (!x || !x->s) {
		mix_u64(f, UINT64_MAX);
		return;
	}
	mix_u64(f, x->len);
	mix(f, x->s, x->len);
}

static void mix_value(struct fp *f, const struct dr_value *v)
{
	if (!v) {
		mix_u64(f, UINT64_MAX);
		return;
	}
	mix_u64(f, (uint64_t)v->kind << 1 | v->quoted);
	mix_u64(f, v->count);
	if (v->kind != DR_VAL_MAP && v->kind != DR_VAL_LIST) {
		mix_text(f, &v->text);
		return;
	}
	for (uint32_t i = 0; i < v->count; i++) {
		if (v->kind == DR_VAL_MAP)
			mix_text(f, &v->keys[i]);
		mix_value(f, &v->items[i]);
	}
}

static void mix_kv(struct fp *f, const struct dr_kvlist *kv)
{
	mix_u64(f, kv->n);
	for (uint32_t i = 0; i < kv->n; i++) {
		mix_text(f, &kv->v[i].key);
		mix_text(f, &kv->v[i].value);
	}
}

static int each(void *ud, uint32_t t, const struct dr_text *x, enum dr_text_use use)
{
	(void)t;
	mix_u64(ud, use);
	mix_text(ud, x);
	return 0;
}

static void m_bytes(struct dr_mix *m, const void *p, size_t n)
{
	mix((struct fp *)m, p, n);
}

static void m_text(struct dr_mix *m, const struct dr_text *x)
{
	mix_text((struct fp *)m, x);
}

static void m_value(struct dr_mix *m, const struct dr_value *v)
{
	mix_value((struct fp *)m, v);
}

/* The settings of the task's kind that are not strings (kinds' mix()). */
static void mix_spec(struct fp *f, const struct dagrun_workflow *wf, const struct dr_task *k)
{
	const struct dr_kind *kd = k->kind < wf->n_kinds ? wf->kinds[k->kind] : NULL;
	if (kd && kd->mix && k->spec)
		kd->mix(k->spec, &f->m);
}

uint64_t task_fingerprint(const struct dagrun_workflow *wf, uint32_t t)
{
	struct fp f = {{m_bytes, m_text, m_value}, 0xcbf29ce484222325ull};
	const struct dr_task *k = &wf->tasks[t];
	const struct dr_task_opts *o = k->opts;
	mix_u64(&f, (uint64_t)k->kind << 8 | k->hook);
	mix_u64(&f, (uint64_t)(uint32_t)k->priority);
	dr_task_each_text(wf, t, each, &f);
	mix_kv(&f, &o->env);
	mix_spec(&f, wf, k);
	mix_text(&f, o->when);
	mix_u64(&f, o->timeout_ms);
	mix_u64(&f, o->kill_grace_ms);
	const struct dr_retry *r = &o->retry;
	mix_u64(&f, r->max_attempts);
	mix(&f, &r->backoff_factor, sizeof(r->backoff_factor));
	mix_u64(&f, r->initial_delay_ms);
	mix_u64(&f, r->max_delay_ms);
	mix_u64(&f, (uint64_t)r->jitter << 16 | (uint64_t)r->retry_on << 8 | r->n_permanent);
	mix(&f, r->permanent_codes, r->n_permanent);
	mix_u64(&f, o->n_res);
	for (uint32_t i = 0; i < o->n_res; i++) {
		const char *pool = wf->pools[o->res[i].pool].name;
		mix(&f, pool, strlen(pool) + 1);
		mix_u64(&f, o->res[i].units);
	}
	mix_u64(&f, k->dep_count);
	for (uint32_t i = 0; i < k->dep_count; i++) {
		const struct dr_dep *d = &wf->deps[k->dep_first + i];
		const char *id = wf_task_id(wf, d->target);
		mix(&f, id, strlen(id) + 1);
		mix_u64(&f, d->type);
		mix_text(&f, d->condition);
	}
	mix_kv(&f, &wf->env);
	return f.h;
}

int wf_diff(const struct dagrun_workflow *old, const struct dagrun_workflow *now,
	    struct arena *mem, struct wf_diff *out)
{
	memset(out, 0, sizeof(*out));
	uint32_t n = now->n_tasks, m = old->n_tasks;
	out->added = arena_calloc(mem, (n + 1) * sizeof(char *));
	out->changed = arena_calloc(mem, (n + 1) * sizeof(char *));
	out->removed = arena_calloc(mem, (m + 1) * sizeof(char *));
	if (!out->added || !out->changed || !out->removed)
		return -ENOMEM;
	for (uint32_t t = 0; t < n; t++) {
		const char *id = wf_task_id(now, t);
		uint32_t sym = intern_find(&old->ids, id, strlen(id));
		uint32_t o = sym == INTERN_NONE ? UINT32_MAX : old->sym_task[sym];
		if (o == UINT32_MAX)
			out->added[out->n_added++] = id;
		else if (task_fingerprint(old, o) != task_fingerprint(now, t))
			out->changed[out->n_changed++] = id;
	}
	for (uint32_t t = 0; t < m; t++) {
		const char *id = wf_task_id(old, t);
		uint32_t sym = intern_find(&now->ids, id, strlen(id));
		if (sym == INTERN_NONE || now->sym_task[sym] == UINT32_MAX)
			out->removed[out->n_removed++] = id;
	}
	return 0;
}
