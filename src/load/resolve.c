/* resolve.c: the checks that need the whole file, run once it is read:
 * task order (main tasks, then hooks), ids, dependencies, pools, defaults.
 *
 * Invariant: after resolve_all() with no error reported, the model holds
 * every promise of model.h except wf->graph: dependency targets are task
 * indexes, sym_task maps ids to final indexes, options are fully resolved.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "load/loader.h"
#include "util/suggest.h"

#define HINT_BUDGET 20000000u   /* candidates compared for "did you mean" ids */

static const char *const group_key[N_GROUPS] = {"tasks", "onSuccess", "onFailure",
						"onExit"};

static const char *task_id(const struct loader *ld, const struct dr_task *t)
{
	return t->sym == INTERN_NONE ? "?" : intern_str(&ld->wf->ids, t->sym);
}

/* Puts the hook groups after the main tasks in wf->tasks. */
static bool merge_groups(struct loader *ld)
{
	struct dagrun_workflow *wf = ld->wf;
	uint32_t total = ld->n_tasks, at = ld->groups[0].n;
	struct dr_task *v = ld->groups[0].v;
	if (total > at) {
		v = load_grow(v, (size_t)total * sizeof(*v));
		if (!v) {
			load_oom(ld);
			return false;
		}
	}
	ld->groups[0].v = NULL;
	wf->tasks = v;
	wf->n_main = ld->groups[0].n;
	wf->hook_count[0] = wf->n_main;
	for (unsigned g = 1; g < N_GROUPS; g++) {
		struct task_vec *h = &ld->groups[g];
		wf->hook_first[g] = at;
		wf->hook_count[g] = h->n;
		if (h->n)
			memcpy(v + at, h->v, (size_t)h->n * sizeof(*v));
		at += h->n;
		free(h->v);
		h->v = NULL;
	}
	wf->n_tasks = total;
	/* Symbols were declared as (group << 28 | index in group). */
	for (uint32_t s = 0; s < wf->ids.count; s++) {
		uint32_t e = wf->sym_task[s];
		if (e != UINT32_MAX)
			wf->sym_task[s] = wf->hook_first[e >> 28] + (e & 0x0FFFFFFF);
	}
	return true;
}

static bool build_pools(struct loader *ld)
{
	struct dagrun_workflow *wf = ld->wf;
	uint32_t n = ld->pools.count;
	if (!n)
		return true;
	wf->pools = arena_alloc(&wf->arena, (size_t)n * sizeof(*wf->pools));
	if (!wf->pools) {
		load_oom(ld);
		return false;
	}
	for (uint32_t i = 0; i < n; i++) {
		const struct pool_info *p = &ld->pool_v[i];
		const char *name = arena_strdup(&wf->arena, intern_str(&ld->pools, i));
		if (!name) {
			load_oom(ld);
			return false;
		}
		wf->pools[i] = (struct dr_pool){name, p->capacity, p->at.line, p->at.col};
	}
	wf->n_pools = n;
	return true;
}

static void unknown_pool(struct loader *ld, const struct dr_res *r)
{
	struct dagrun_workflow *wf = ld->wf;
	const char *name = wf->pools[r->pool].name;
	struct pos at = {r->line, r->col};
	struct suggest s;
	bool any = false;
	suggest_init(&s, name, strlen(name));
	for (uint32_t i = 0; i < wf->n_pools; i++) {
		if (wf->pools[i].capacity) {
			any = true;
			suggest_offer(&s, wf->pools[i].name);
		}
	}
	if (!any)
		load_error(ld, at, "unknown resource pool '%s' (the workflow declares no "
			   "top-level 'resources')", name);
	else if (s.best)
		load_error(ld, at, "unknown resource pool '%s'; did you mean '%s'?", name,
			   s.best);
	else
		load_error(ld, at, "unknown resource pool '%s'", name);
}

/* Checks requests against the pools; who: "task 'x'" or "defaults". */
static void check_res(struct loader *ld, const struct dr_res *r, uint32_t n,
		      const char *who)
{
	for (uint32_t i = 0; i < n && !ld->stop; i++) {
		const struct dr_pool *p = &ld->wf->pools[r[i].pool];
		if (!p->capacity)
			unknown_pool(ld, &r[i]);
		else if (r[i].units > p->capacity)
			load_error(ld, (struct pos){r[i].line, r[i].col},
				   "%s requests %u units of '%s', more than its capacity of %u",
				   who, r[i].units, p->name, p->capacity);
	}
}

static void builtin_opts(struct dr_task_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->kill_grace_ms = 5000;
	o->retry.max_attempts = 1;
	o->retry.backoff_factor = 2;
	o->retry.initial_delay_ms = 1000;
	o->retry.max_delay_ms = 30000;
	o->retry.jitter = DR_JITTER_FULL;
	o->retry.retry_on = (1u << DR_CLASS_TRANSIENT) | (1u << DR_CLASS_RESOURCE);
}

/* Fills the fields of own that were not written from base. */
static void fill_unset(struct opts_tmp *own, const struct dr_task_opts *base)
{
	struct dr_task_opts *o = &own->o;
	const struct dr_retry *b = &base->retry;
	uint32_t set = own->set;
	if (!(set & O_DESCRIPTION)) o->description = base->description;
	if (!(set & O_WHEN)) o->when = base->when;
	if (!(set & O_WORKDIR)) o->workdir = base->workdir;
	if (!(set & O_ENV)) o->env = base->env;
	if (!(set & O_RES)) {
		o->res = base->res;
		o->n_res = base->n_res;
	}
	if (!(set & O_TIMEOUT)) o->timeout_ms = base->timeout_ms;
	if (!(set & O_KILL_GRACE)) o->kill_grace_ms = base->kill_grace_ms;
	if (!(set & O_CACHE)) o->cache = base->cache;
	o->cache_own = (set & O_CACHE) != 0;
	if (!(set & O_R_ATTEMPTS)) o->retry.max_attempts = b->max_attempts;
	if (!(set & O_R_BACKOFF)) o->retry.backoff_factor = b->backoff_factor;
	if (!(set & O_R_INITIAL)) o->retry.initial_delay_ms = b->initial_delay_ms;
	if (!(set & O_R_MAX_DELAY)) o->retry.max_delay_ms = b->max_delay_ms;
	if (!(set & O_R_JITTER)) o->retry.jitter = b->jitter;
	if (!(set & O_R_RETRY_ON)) o->retry.retry_on = b->retry_on;
	if (!(set & O_R_CODES)) {
		o->retry.permanent_codes = b->permanent_codes;
		o->retry.n_permanent = b->n_permanent;
	}
}

static void apply_defaults(struct loader *ld)
{
	struct dagrun_workflow *wf = ld->wf;
	struct dr_task_opts builtin;
	char who[100];
	builtin_opts(&builtin);
	fill_unset(&ld->defaults, &builtin);
	wf->default_opts = ld->defaults.o;
	wf->default_opts.cache_own = false;   /* a task's own, never the defaults' */
	if (ld->defaults.set & O_RES)
		check_res(ld, wf->default_opts.res, wf->default_opts.n_res, "defaults");
	int32_t prio = ld->default_priority == PRIORITY_UNSET ? 0 : ld->default_priority;
	for (uint32_t i = 0; i < wf->n_tasks && !ld->stop; i++) {
		struct dr_task *t = &wf->tasks[i];
		if (t->priority == PRIORITY_UNSET)
			t->priority = prio;
		if (!t->opts) {
			t->opts = &wf->default_opts;
			continue;
		}
		struct opts_tmp *own = (struct opts_tmp *)t->opts;
		if (own->set & O_RES) {
			snprintf(who, sizeof(who), "task '%.80s'", task_id(ld, t));
			check_res(ld, own->o.res, own->o.n_res, who);
		}
		fill_unset(own, &wf->default_opts);
	}
}

/* ---- dependencies ------------------------------------------------------------------- */

static void unknown_dep(struct loader *ld, const struct dr_task *t,
			const struct dr_dep *d)
{
	const struct dagrun_workflow *wf = ld->wf;
	const char *name = intern_str(&wf->ids, d->target);
	struct suggest s;
	suggest_init(&s, name, strlen(name));
	if (ld->hints < HINT_BUDGET) {
		for (uint32_t i = 0; i < wf->n_tasks; i++)
			if (wf->tasks[i].sym != INTERN_NONE)
				suggest_offer(&s, intern_str(&wf->ids, wf->tasks[i].sym));
		ld->hints += wf->n_tasks;
	}
	struct pos at = {d->line, d->col};
	if (s.best)
		load_error(ld, at, "task '%.80s' depends on unknown task '%.80s'; did you mean '%s'?",
			   task_id(ld, t), name, s.best);
	else
		load_error(ld, at, "task '%.80s' depends on unknown task '%.80s'",
			   task_id(ld, t), name);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return (x > y) - (x < y);
}

static void dup_dep(struct loader *ld, const struct dr_dep *d, const struct dr_dep *first)
{
	load_error(ld, (struct pos){d->line, d->col},
		   "duplicate dependency '%.80s' (already listed at line %u)",
		   intern_str(&ld->wf->ids, d->target), first->line);
}

/* Reports repeated targets among n deps (targets still symbols). Sorting
 * (symbol << 32 | index) keeps the first listing first. */
static bool check_dup_deps(struct loader *ld, const struct dr_dep *d, uint32_t n)
{
	if (n <= 16) {
		for (uint32_t i = 1; i < n && !ld->stop; i++)
			for (uint32_t j = 0; j < i; j++)
				if (d[i].target == d[j].target) {
					dup_dep(ld, &d[i], &d[j]);
					break;
				}
		return true;
	}
	uint64_t *k = malloc((size_t)n * sizeof(*k));
	if (!k) {
		load_oom(ld);
		return false;
	}
	for (uint32_t i = 0; i < n; i++)
		k[i] = (uint64_t)d[i].target << 32 | i;
	qsort(k, n, sizeof(*k), cmp_u64);
	for (uint32_t i = 1, first = 0; i < n && !ld->stop; i++) {
		if (k[i] >> 32 != k[first] >> 32)
			first = i;
		else
			dup_dep(ld, &d[(uint32_t)k[i]], &d[(uint32_t)k[first]]);
	}
	free(k);
	return true;
}

/* Resolves one dependency of task ti in place. */
static void resolve_dep(struct loader *ld, uint32_t ti, struct dr_dep *d)
{
	struct dagrun_workflow *wf = ld->wf;
	const struct dr_task *t = &wf->tasks[ti];
	uint32_t target = wf->sym_task[d->target];
	struct pos at = {d->line, d->col};
	if (target == UINT32_MAX) {
		unknown_dep(ld, t, d);
		return;
	}
	const struct dr_task *u = &wf->tasks[target];
	if (target == ti)
		load_error(ld, at, "task '%.80s' depends on itself", task_id(ld, t));
	else if (t->hook && !u->hook)
		load_error(ld, at, "hook task '%.80s' (%s) cannot depend on '%.80s' of 'tasks' "
			   "(hooks run after them and may read tasks.%.80s without a dependency)",
			   task_id(ld, t), group_key[t->hook], task_id(ld, u), task_id(ld, u));
	else if (!t->hook && u->hook)
		load_error(ld, at, "task '%.80s' cannot depend on hook task '%.80s' (%s)",
			   task_id(ld, t), task_id(ld, u), group_key[u->hook]);
	d->target = target;
}

static bool resolve_deps(struct loader *ld)
{
	struct dagrun_workflow *wf = ld->wf;
	for (uint32_t i = 0; i < wf->n_tasks && !ld->stop; i++) {
		uint32_t n = wf->tasks[i].dep_count;
		if (!n)
			continue; /* wf->deps may be NULL */
		struct dr_dep *d = wf->deps + wf->tasks[i].dep_first;
		if (!check_dup_deps(ld, d, n))
			return false;
		for (uint32_t j = 0; j < n; j++)
			resolve_dep(ld, i, &d[j]);
	}
	return true;
}

bool resolve_all(struct loader *ld)
{
	if (!merge_groups(ld) || !build_pools(ld))
		return false;
	apply_defaults(ld);
	return resolve_deps(ld);
}
