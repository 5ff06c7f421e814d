/* cache.c: the cache executor (README "Cache"), plugged in front of each
 * kind's executor (behind it: the recorder) when a task of the run has
 * `cache` and the run is recorded.
 *
 * For an attempt of a task with `cache`, it renders the attempt's
 * canonical inputs (kinds_inputs: what the recorder records and replay
 * compares), adds the extra key strings, the names of the secrets the task
 * uses, the values of the `env` names, the upstream results the task can
 * read, and the files of the `inputs` globs (expanded, stat'ed and hashed
 * on libuv's thread pool: a large input never stalls the loop), and looks
 * the key up in the entries read when the run started (cache_tab, with
 * their results up to CACHE_LOAD_BYTES: memory does not grow with every
 * entry's output). A hit whose result was not read with them reads it on
 * the pool (the store's query path never waits for its writer); it ends
 * the attempt from the loop with it (the replayer's io_result_recorded), `completed`,
 * with nothing started; a miss runs the inner executor. Both carry DAGRUN_EXT_CACHE (hit or not, the reason, the
 * key and its components), from which the store's observer records a new
 * entry for an attempt that ran and completed.
 *
 * Side effects are never cached by accident: a webhook never; an `api`
 * request other than GET or HEAD, and an `ai` task, only with `cache` on
 * the task itself (from defaults: not cached, with a warning).
 *
 * Invariant: the inner executor sees an attempt of its own (a copy whose
 * callbacks forward to the scheduler's), which lives until the loop turn
 * after its end; an attempt whose key is being computed on the pool is
 * ended (cancelled, or started) only from that work's completion.
 */
#include "engine/cache_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>


#include "engine/io.h"
#include "engine/wrap.h"
#include "expr/redact.h"
#include "kinds/kind.h"
#include "sched/flow.h"
#include "util/clock.h"

/* ---- the entries ---------------------------------------------------------------- */

int cache_tab_load(struct cache_tab *tab, struct store *st, const struct dagrun_workflow *wf,
		   char **err)
{
	/* the tests' way to reach the hits that read their own results */
	const char *b = getenv("DAGRUN_TEST_CACHE_LOAD_BYTES");
	uint64_t budget = b && *b ? strtoull(b, NULL, 10) : CACHE_LOAD_BYTES;
	int r = st->ops->cache_entries(st, dagrun_workflow_name(wf), NULL, budget,
				       &tab->mem, &tab->v, &tab->n, err);
	if (r < 0)
		return r;
	tab->first = malloc((wf->n_tasks ? wf->n_tasks : 1) * sizeof(*tab->first));
	tab->next = malloc((tab->n ? tab->n : 1) * sizeof(*tab->next));
	if (!tab->first || !tab->next) {
		if (err && !*err)
			*err = strdup("out of memory");
		return -ENOMEM;
	}
	for (uint32_t t = 0; t < wf->n_tasks; t++)
		tab->first[t] = UINT32_MAX;
	/* newest first: linking from the end keeps each task's list in order */
	for (size_t i = tab->n; i-- > 0;) {
		const char *id = tab->v[i].task_id;
		uint32_t sym = intern_find(&wf->ids, id, strlen(id));
		uint32_t t = sym == INTERN_NONE ? UINT32_MAX : wf->sym_task[sym];
		tab->next[i] = UINT32_MAX;
		if (t == UINT32_MAX)
			continue;
		tab->next[i] = tab->first[t];
		tab->first[t] = (uint32_t)i;
	}
	return 0;
}

void cache_tab_free(struct cache_tab *tab)
{
	if (!tab)
		return;
	arena_free(&tab->mem);
	free(tab->first);
	free(tab->next);
	memset(tab, 0, sizeof(*tab));
}

/* ---- the extension ------------------------------------------------------------- */

struct cache_ext {
	struct exec_ext base;
	struct exec_ext *inner;
	dagrun_ext_cache pub;
	char *reason, *key, *parts, *hit_run;
};

static void cache_ext_free(struct exec_ext *x)
{
	struct cache_ext *e = (struct cache_ext *)x;
	if (e->inner && e->inner->free)
		e->inner->free(e->inner);
	free(e->reason);
	free(e->key);
	free(e->parts);
	free(e->hit_run);
	free(e);
}

/* Puts the cache's extension in front of r's (the strings are taken). On
 * OOM the strings are freed and r keeps its own. */
static void add_ext(struct exec_result *r, bool hit, char *reason, char *key, char *parts,
		    char *hit_run)
{
	struct cache_ext *e = calloc(1, sizeof(*e));
	if (!e) {
		free(reason);
		free(key);
		free(parts);
		free(hit_run);
		return;
	}
	e->inner = r->ext;
	e->base.free = cache_ext_free;
	e->base.pub = &e->pub.base;
	e->base.headers = r->ext ? r->ext->headers : NULL;
	e->base.outputs = r->ext ? r->ext->outputs : NULL;
	e->pub.base.type = DAGRUN_EXT_CACHE;
	e->pub.base.next = r->ext ? r->ext->pub : NULL;
	e->pub.hit = hit;
	e->pub.reason = e->reason = reason;
	e->pub.key = e->key = key;
	e->pub.parts = e->parts = parts;
	e->pub.hit_run = e->hit_run = hit_run;
	r->ext = &e->base;
}

/* ---- the executor ------------------------------------------------------------- */

struct cache_exec;
struct catt;
static int components(struct cache_exec *x, struct catt *ca, const char *inputs, char **err);
static void decide(struct cache_exec *x, struct catt *ca);
static const char *side_effect(const struct exec_attempt *a, const char *kind,
			       const char *inputs, const char **warn);

struct cache_files_job;

struct catt {
	struct exec_wrap w;              /* first: the inner executor's attempt */
	struct cache_exec *x;
	json_t *comp;                    /* the key's components */
	json_t *stat;                    /* inputs: path -> "size:mtime" */
	char *reason;                    /* malloc'd */
	char *inputs;                    /* canonical inputs (a hit records them) */
	const char *warning;             /* static, for the result */
	char key[65];
	bool keyed;                      /* key holds the key */
	const struct store_cache_entry *hit;
	/* a hit: its recorded result, read on the pool (fetch) */
	struct store_cache_entry full;
	struct arena fmem;
	uv_work_t fetch;
	char *ferr;
	int fr;
	bool fetched;
	char *fail;                      /* end failed with this (malloc'd) */
	bool cancelled, inner_started, queued;
	struct cache_files_job *job;           /* hashing on the pool, or NULL */
	struct catt *next;               /* on x->ready or x->dead */
};

struct cache_exec {
	struct executor base;
	uv_loop_t *loop;
	const struct kind *kind;
	struct executor *inner;
	struct cache_tab *tab;
	struct kind_env *env;
	uv_idle_t idle;
	struct catt *ready, *ready_tail; /* to end from the loop */
	struct catt *dead;               /* ended: freed on the next turn */
	unsigned jobs;                   /* on the pool */
	bool closing;
};

static void catt_free(struct catt *ca)
{
	json_decref(ca->comp);
	json_decref(ca->stat);
	free(ca->inputs);
	arena_free(&ca->fmem);
	free(ca->ferr);
	free(ca->reason);
	free(ca->fail);
	free(ca);
}

static void reap(struct cache_exec *x)
{
	while (x->dead) {
		struct catt *d = x->dead;
		x->dead = d->next;
		catt_free(d);
	}
}

static void on_idle(uv_idle_t *h);

static void wake(struct cache_exec *x)
{
	if (!x->closing && !uv_is_active((uv_handle_t *)&x->idle))
		uv_idle_start(&x->idle, on_idle);
}

static void bury(struct cache_exec *x, struct catt *ca)
{
	ca->next = x->dead;
	x->dead = ca;
	wake(x);
}

/* Ends ca from the loop (a hit, a failure, a cancellation). */
static void queue_end(struct cache_exec *x, struct catt *ca)
{
	ca->queued = true;
	ca->next = NULL;
	if (x->ready_tail)
		x->ready_tail->next = ca;
	else
		x->ready = ca;
	x->ready_tail = ca;
	wake(x);
}

/* ---- forwarding to the inner executor ----------------------------------------- */

static char *parts_text(struct catt *ca)
{
	json_t *o = json_pack("{s:O,s:O}", "c", ca->comp, "s", ca->stat ? ca->stat : json_null());
	char *s = o ? json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
	json_decref(o);
	return s;
}

/* The extension of an attempt that ran (or could not be cached). */
static void add_miss_ext(struct catt *ca, struct exec_result *r)
{
	if (!ca->reason)
		return;   /* not a task with `cache` */
	char *key = ca->keyed ? strdup(ca->key) : NULL;
	char *parts = ca->keyed ? parts_text(ca) : NULL;
	add_ext(r, false, ca->reason, key, parts, NULL);
	ca->reason = NULL;
	if (ca->warning && !r->warning)
		r->warning = ca->warning;
}

static void fwd_done(struct exec_attempt *a, struct exec_result *r)
{
	struct catt *ca = (struct catt *)a;
	struct cache_exec *x = ca->x;
	add_miss_ext(ca, r);
	ca->w.out->priv = NULL;
	ca->w.out->on_done(ca->w.out, r);
	/* the inner executor may still read its attempt: freed next turn */
	bury(x, ca);
}

/* Starts ca on the inner executor. Returns its error (nothing started). */
static int start_inner(struct cache_exec *x, struct catt *ca)
{
	struct exec_attempt *a = ca->w.out;
	exec_wrap_init(&ca->w, a, fwd_done, NULL);
	ca->inner_started = true;
	int r = x->inner->ops->start(x->inner, &ca->w.in);
	if (r < 0) {
		ca->inner_started = false;
		return r;
	}
	a->pid = ca->w.in.pid;
	a->pid_start = ca->w.in.pid_start;
	return 0;
}


/* ---- deciding ----------------------------------------------------------------------- */

static const json_t *entry_comp(const struct store_cache_entry *e, json_t **hold)
{
	*hold = e && e->parts ? json_loads(e->parts, 0, NULL) : NULL;
	return json_object_get(*hold, "c");
}

/* The recorded result of entry e, as io_result_recorded reads it. */
static json_t *recorded_of(const struct store_cache_entry *e)
{
	json_t *t = json_pack("{s:b,s:i}", "ok", 1, "exitCode", e->exit_code);
	if (!t)
		return NULL;
	json_t *res = e->result_json ? json_loads(e->result_json, 0, NULL) : NULL;
	const json_t *out = json_object_get(res, "output");
	if (json_is_string(out))
		json_object_set(t, "stdout", (json_t *)out);
	json_decref(res);
	json_t *io = e->io_results_json ? json_loads(e->io_results_json, 0, NULL) : NULL;
	if (json_is_object(io))
		json_object_set(t, "results", io);
	json_decref(io);
	if (e->http_status)
		json_object_set_new(t, "httpStatus", json_integer(e->http_status));
	if (e->model) {
		json_object_set_new(t, "model", json_string(e->model));
		if (e->prompt_tokens >= 0)
			json_object_set_new(t, "promptTokens", json_integer(e->prompt_tokens));
		if (e->completion_tokens >= 0)
			json_object_set_new(t, "completionTokens",
					    json_integer(e->completion_tokens));
	}
	return t;
}

/* With the components complete: the key, then hit or miss. */
static void decide(struct cache_exec *x, struct catt *ca)
{
	const struct exec_attempt *a = ca->w.out;
	const struct dr_cache *cc = a->wf->tasks[a->task].opts->cache;
	struct cache_tab *tab = x->tab;
	if (cache_key_of(ca->comp, ca->key) < 0) {
		ca->reason = strdup("not cached: out of memory");
		return;
	}
	ca->keyed = true;
	uint32_t first = tab && tab->first ? tab->first[a->task] : UINT32_MAX;
	if (tab && tab->no_cache) {
		ca->reason = strdup("miss: --no-cache");
		return;
	}
	if (first == UINT32_MAX) {
		ca->reason = strdup("miss: no earlier run");
		return;
	}
	for (uint32_t i = first; i != UINT32_MAX; i = tab->next[i]) {
		const struct store_cache_entry *e = &tab->v[i];
		if (strcmp(e->key, ca->key))
			continue;
		uint64_t now = clock_wall_ms();
		if (cc->ttl_ms && now > e->created_ms && now - e->created_ms >= cc->ttl_ms) {
			ca->reason = strdup("miss: expired");
			return;
		}
		ca->hit = e;
		ca->reason = buf_strf("hit (run %s)", e->run_id);
		return;
	}
	json_t *hold = NULL;
	const json_t *old = entry_comp(&tab->v[first], &hold);
	ca->reason = old ? cache_reason(old, ca->comp) : strdup("miss: key changed");
	json_decref(hold);
}

static void fetch_work(uv_work_t *req)
{
	struct catt *ca = container_of(req, struct catt, fetch);
	struct store *st = ca->x->tab->st;
	ca->fr = st->ops->cache_result(st, &ca->full, &ca->fmem, &ca->ferr);
}

static void fetch_done(uv_work_t *req, int status)
{
	struct catt *ca = container_of(req, struct catt, fetch);
	struct cache_exec *x = ca->x;
	x->jobs--;
	int r = status < 0 ? status : ca->fr;
	if (r == 0 || ca->cancelled) {
		ca->fetched = r == 0;
		queue_end(x, ca);
		return;
	}
	/* the entry names an attempt that cannot be read: the task runs, and
	 * says why */
	free(ca->reason);
	ca->reason = buf_strf("miss: the recorded result cannot be read: %s",
			      ca->ferr ? ca->ferr : strerror(-r));
	ca->hit = NULL;
	if ((r = start_inner(x, ca)) < 0) {
		ca->fail = buf_strf("cannot start: %s", strerror(-r));
		queue_end(x, ca);
	}
}

/* A hit: its recorded result is read on the pool, then the attempt ends
 * from the loop (fetch_done). Returns 0 or the pool's error. */
static int fetch_hit(struct cache_exec *x, struct catt *ca)
{
	ca->full = *ca->hit;
	if (ca->full.has_result) {
		ca->fetched = true;
		queue_end(x, ca);
		return 0;
	}
	if (!x->tab->st)
		return -EINVAL;
	int r = uv_queue_work(x->loop, &ca->fetch, fetch_work, fetch_done);
	if (r == 0)
		x->jobs++;
	return r;
}

/* After decide(): a hit's result fetched, a miss started. Returns the
 * error of what could not be started (nothing started; the caller says
 * it). */
static int go(struct cache_exec *x, struct catt *ca)
{
	if (!ca->reason)
		return -ENOMEM;
	if (ca->hit && !ca->fail && !ca->cancelled)
		return fetch_hit(x, ca);
	if (ca->fail || ca->cancelled) {
		queue_end(x, ca);
		return 0;
	}
	return start_inner(x, ca);
}

static void files_done(uv_work_t *req, int status)
{
	struct cache_files_job *j = req->data;
	struct catt *ca = j->ca;
	struct cache_exec *x = ca->x;
	x->jobs--;
	ca->job = NULL;
	int r = status < 0 ? status : j->r;
	if (r == 0) {
		json_object_update(ca->comp, j->comp);
		ca->stat = json_incref(j->stat);
		decide(x, ca);
	} else {
		/* nothing can be cached: the task runs, and says why */
		ca->reason = buf_strf("not cached: %s", j->err ? j->err : strerror(-r));
		ca->warning = "cache: its inputs cannot be hashed (see the reason with -v): "
			      "not cached";
	}
	json_decref(j->comp);
	json_decref(j->stat);
	json_decref(j->prev_c);
	json_decref(j->prev_s);
	free(j->err);
	free(j->dir);
	free(j);
	int e = go(x, ca);
	if (e < 0) {
		ca->fail = buf_strf("cannot start: %s", strerror(-e));
		queue_end(x, ca);
	}
}

static int queue_files(struct cache_exec *x, struct catt *ca, const struct dr_cache *cc)
{
	const struct exec_attempt *a = ca->w.out;
	struct cache_files_job *j = calloc(1, sizeof(*j));
	if (!j || !(j->dir = strdup(a->wf->dir ? a->wf->dir : "."))) {
		free(j);
		return -ENOMEM;
	}
	j->req.data = j;
	j->ca = ca;
	j->cc = cc;
	uint32_t first = x->tab && x->tab->first ? x->tab->first[a->task] : UINT32_MAX;
	if (first != UINT32_MAX) {
		json_t *hold = NULL;
		entry_comp(&x->tab->v[first], &hold);
		j->prev_c = json_deep_copy(json_object_get(hold, "c"));
		j->prev_s = json_deep_copy(json_object_get(hold, "s"));
		json_decref(hold);
	}
	int r = uv_queue_work(x->loop, &j->req, cache_files_work, files_done);
	if (r < 0) {
		json_decref(j->prev_c);
		json_decref(j->prev_s);
		free(j->dir);
		free(j);
		return r;
	}
	ca->job = j;
	x->jobs++;
	return 0;
}

/* Why a task with `cache` is not cached by this rule, or NULL; *warn: a
 * static warning to give once. inputs: the canonical inputs. */
static const char *side_effect(const struct exec_attempt *a, const char *kind,
			       const char *inputs, const char **warn)
{
	bool own = a->wf->tasks[a->task].opts->cache_own;
	*warn = NULL;
	if (!strcmp(kind, "webhook")) {
		if (own)
			*warn = "cache: webhooks are never cached (they are side effects)";
		return "not cached: webhooks are never cached";
	}
	if (own)
		return NULL;
	if (a->wf->tasks[a->task].hook != DR_HOOK_NONE)
		return "not cached: a hook takes `cache` from the task itself only";
	if (!strcmp(kind, "ai")) {
		*warn = "cache: an ai task is cached only with `cache` on the task itself, "
			"not from defaults";
		return "not cached: an ai task takes `cache` from the task itself only";
	}
	if (!strcmp(kind, "api")) {
		json_t *in = inputs ? json_loads(inputs, 0, NULL) : NULL;
		const char *m = json_string_value(json_object_get(in, "method"));
		bool safe = !m || !strcasecmp(m, "GET") || !strcasecmp(m, "HEAD");
		json_decref(in);
		if (!safe) {
			*warn = "cache: an api request other than GET or HEAD is cached only with "
				"`cache` on the task itself, not from defaults";
			return "not cached: a request other than GET or HEAD takes `cache` from "
			       "the task itself only";
		}
	}
	return NULL;
}

/* The components known on the loop; the files follow on the pool. */
static int components(struct cache_exec *x, struct catt *ca, const char *inputs, char **err)
{
	if (!(ca->comp = json_object()))
		return -ENOMEM;
	return cache_components(ca->comp, ca->w.out, x->kind->load.model.name, inputs,
				x->env ? x->env->flow : NULL, err);
}

static int cache_start(struct executor *ex, struct exec_attempt *a)
{
	struct cache_exec *x = (struct cache_exec *)ex;
	reap(x);
	struct catt *ca = calloc(1, sizeof(*ca));
	if (!ca)
		return -ENOMEM;
	ca->w.out = a;
	ca->x = x;
	a->priv = ca;
	const struct dr_task_opts *o = a->wf->tasks[a->task].opts;
	const struct dr_cache *cc = o ? o->cache : NULL;
	int r = 0;
	if (!cc || !cc->on)
		goto run;   /* no `cache`: no reason to give */
	char *inputs = NULL, *ierr = NULL, *kerr = NULL;
	if (x->env && a->wf != x->env->wf) {
		/* a task of a sub-workflow (run on our executors): its entries,
		 * its upstream results are not the run's */
		if (!(ca->reason = strdup("not cached: a task of a sub-workflow is never cached"))) {
			r = -ENOMEM;
			goto fail;
		}
		goto run;
	}
	if ((r = kinds_inputs(x->kind, a, &inputs, &ierr)) == -ENOMEM)
		goto fail;
	const char *why = side_effect(a, x->kind->load.model.name, inputs, &ca->warning);
	if (!why && r == 0 && !inputs) {
		/* what it runs is not in its inputs (a sub-workflow's tasks):
		 * no key could tell a changed run from the recorded one */
		why = "not cached: its kind has no canonical inputs";
		if (a->wf->tasks[a->task].opts->cache_own)
			ca->warning = "cache: a task of this kind is never cached (its inputs are "
				      "not recorded)";
	}
	if (why) {
		ca->reason = strdup(why);
		r = 0;   /* runs (a template that fails says so there) */
	} else if (r < 0) {
		/* the inner executor renders them again and fails the same way,
		 * with the template's message */
		ca->reason = strdup("not cached: its inputs cannot be rendered");
		r = 0;
	} else if ((r = components(x, ca, inputs, &kerr)) == -ENOMEM) {
		free(inputs);
		free(ierr);
		goto fail;
	} else if (r < 0) {
		/* the message may quote a rendered value */
		struct buf m = BUF_INIT;
		if (kerr && a->redactor && redact_text(a->redactor, kerr, strlen(kerr), &m) == 0 &&
		    m.data) {
			free(kerr);
			kerr = buf_steal(&m);
		}
		buf_free(&m);
		ca->fail = kerr ? buf_strf("cache key: %s", kerr) : strdup("cache key: invalid");
		ca->reason = strdup("not cached: its key cannot be rendered");
	} else if (cc->n_inputs) {
		r = queue_files(x, ca, cc);
	} else {
		decide(x, ca);
	}
	ca->inputs = inputs;
	free(ierr);
	free(kerr);
	if (r == -ENOMEM || (r < 0 && !ca->fail))
		goto fail;
	if (ca->job)
		return 0;
	if (!ca->reason) {
		r = -ENOMEM;
		goto fail;
	}
	if (ca->fail) {
		queue_end(x, ca);
		return 0;
	}
	if (ca->hit) {
		if ((r = fetch_hit(x, ca)) < 0)
			goto fail;
		return 0;
	}
run:
	if ((r = start_inner(x, ca)) < 0)
		goto fail;
	return 0;
fail:
	a->priv = NULL;
	catt_free(ca);
	return r;
}

/* Ends the attempts queued (hits, failures, cancellations). */
static void end_queued(struct cache_exec *x)
{
	struct catt *ca = x->ready;
	x->ready = x->ready_tail = NULL;
	while (ca) {
		struct catt *next = ca->next;
		struct exec_result r;
		json_t *t = ca->hit && ca->fetched && !ca->cancelled ? recorded_of(&ca->full) : NULL;
		io_result_recorded(t, ca->hit ? ca->inputs : NULL, NULL, &r);
		if (ca->hit)
			ca->inputs = NULL;
		bool lost = ca->hit && !ca->cancelled && !t;
		json_decref(t);
		r.start_ms = r.end_ms = clock_wall_ms();
		if (ca->cancelled) {
			r.ok = false;
			r.cancelled = true;
			exec_fail(&r, DR_CLASS_PERMANENT, "cancelled");
		} else if (ca->fail) {
			r.ok = false;
			exec_fail(&r, DR_CLASS_PERMANENT, "%s", ca->fail);
		} else if (!ca->hit || lost) {
			exec_fail(&r, DR_CLASS_RESOURCE, "out of memory");
		}
		if (ca->hit && !ca->cancelled && !lost)
			add_ext(&r, true, ca->reason, strdup(ca->key), NULL,
				strdup(ca->hit->run_id));
		else
			add_miss_ext(ca, &r);
		ca->reason = NULL;
		ca->w.out->priv = NULL;
		ca->w.out->on_done(ca->w.out, &r);
		exec_result_free(&r);
		catt_free(ca);
		ca = next;
	}
}

static void on_idle(uv_idle_t *h)
{
	struct cache_exec *x = h->data;
	reap(x);
	end_queued(x);
	if (!x->ready && !x->dead)
		uv_idle_stop(&x->idle);
}

static void cache_cancel(struct executor *ex, struct exec_attempt *a, bool hard)
{
	struct cache_exec *x = (struct cache_exec *)ex;
	struct catt *ca = a->priv;
	if (!ca)
		return;
	if (ca->inner_started)
		x->inner->ops->cancel(x->inner, &ca->w.in, hard);
	else
		ca->cancelled = true;   /* ends when its work does, or next turn */
}

static void on_closed(uv_handle_t *h)
{
	struct cache_exec *x = h->data;
	reap(x);
	while (x->ready) {
		struct catt *ca = x->ready;
		x->ready = ca->next;
		catt_free(ca);
	}
	free(x);
}

static void cache_destroy(struct executor *ex)
{
	struct cache_exec *x = (struct cache_exec *)ex;
	x->closing = true;
	uv_close((uv_handle_t *)&x->idle, on_closed);
}

static const struct executor_ops cache_ops = {
	.name = "cache", .start = cache_start, .cancel = cache_cancel, .destroy = cache_destroy,
};

/* ---- the dry run --------------------------------------------------------------- */

static int plan_render(struct exec_attempt *a, const struct dr_text *t,
		       enum exec_render_mode mode, struct buf *out, char **err)
{
	struct kind_env *env = a->owner;
	return flow_render(env->flow, a->task, t, mode, a->context, a->n_context, out, err);
}

char *cache_plan(struct kind_env *env, struct cache_tab *tab, uint32_t t)
{
	const struct dagrun_workflow *wf = env->wf;
	const struct dr_task_opts *o = wf->tasks[t].opts;
	const struct dr_cache *cc = o ? o->cache : NULL;
	if (!cc || !cc->on || !env->flow)
		return NULL;
	const struct dr_task *k = &wf->tasks[t];
	for (uint32_t d = 0; d < k->dep_count; d++) {
		uint32_t dep = wf->deps[k->dep_first + d].target;
		if (flow_keeps(env->flow, dep))
			return buf_strf("decided when it runs (it reads the result of '%s')",
					wf_task_id(wf, dep));
	}
	struct cache_exec x = {.kind = kind_of(wf->kinds[k->kind]), .tab = tab, .env = env};
	struct exec_attempt a = {
		.wf = wf, .task = t, .attempt = 1, .run_id = env->run_id, .render = plan_render,
		.redactor = flow_redactor(env->flow), .owner = env,
		.variant = wf->kinds[k->kind]->variant,
	};
	struct catt ca = {.w.out = &a, .x = &x};
	char *inputs = NULL, *ierr = NULL, *kerr = NULL, *said = NULL;
	const char *warn;
	int r = kinds_inputs(x.kind, &a, &inputs, &ierr);
	const char *why = r == -ENOMEM ? NULL : side_effect(&a, x.kind->load.model.name, inputs,
							     &warn);
	if (!why && r == 0 && !inputs)
		why = "not cached: its kind has no canonical inputs";
	if (why)
		said = strdup(why);
	else if (r < 0)
		said = r == -ENOMEM ? NULL : strdup("not cached: its inputs cannot be rendered");
	else if ((r = components(&x, &ca, inputs, &kerr)) < 0)
		said = r == -ENOMEM ? NULL : strdup("not cached: its key cannot be rendered");
	else if (cc->n_inputs) {
		/* a dry run may wait for the disk: the pool's work, here */
		struct cache_files_job j = {.cc = cc, .dir = (char *)(wf->dir ? wf->dir : ".")};
		uint32_t first = tab && tab->first ? tab->first[t] : UINT32_MAX;
		json_t *hold = NULL;
		if (first != UINT32_MAX)
			entry_comp(&tab->v[first], &hold);
		j.prev_c = json_object_get(hold, "c");
		j.prev_s = json_object_get(hold, "s");
		cache_files_work(&j.req);
		if (j.r == 0 && json_object_update(ca.comp, j.comp) == 0)
			decide(&x, &ca);
		else
			ca.reason = buf_strf("not cached: %s", j.err ? j.err : strerror(-j.r));
		json_decref(j.comp);
		json_decref(j.stat);
		json_decref(hold);
		free(j.err);
		said = ca.reason;
		ca.reason = NULL;
	} else {
		decide(&x, &ca);
		said = ca.reason;
		ca.reason = NULL;
	}
	free(inputs);
	free(ierr);
	free(kerr);
	json_decref(ca.comp);
	json_decref(ca.stat);
	return said;
}

struct executor *cache_executor_new(uv_loop_t *loop, const struct kind *k, struct executor *inner,
				    struct cache_tab *tab, struct kind_env *env)
{
	struct cache_exec *x = calloc(1, sizeof(*x));
	if (!x)
		return NULL;
	x->base.ops = &cache_ops;
	x->loop = loop;
	x->kind = k;
	x->inner = inner;
	x->tab = tab;
	x->env = env;
	uv_idle_init(loop, &x->idle);
	x->idle.data = x;
	return &x->base;
}
