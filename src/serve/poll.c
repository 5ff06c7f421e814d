/* poll.c: the poller thread: what the store records becomes events.
 *
 * Every poll_ms it reaps exited children, lists the newest runs and every
 * running one, and for each run that is running (or has just ended: one
 * last pass) compares the tasks' statuses and attempts with what it saw
 * last, publishing a `run`, `task` or `attempt` event for each change, and
 * follows the log files of runs that a stream watches (`log` events).
 *
 * What a poll can see is what the store committed: a status held for less
 * than a poll period may be passed over, but every attempt is a record, so
 * each attempt's start and end is published (in attempt order) and every
 * task's final status is; the metrics count attempts as they end. A run
 * that was already going when the server started is taken as it stands
 * (its earlier changes are not replayed); a run started since is followed
 * from its first record.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "model/model.h"
#include "serve/serve_int.h"
#include "util/arena.h"
#include "util/clock.h"
#include "util/text.h"

struct logf {
	uint32_t task, attempt;    /* index in the run; attempt number */
	uint64_t run;              /* where the attempt is stored */
	uint32_t stored_task;
	int stream;
	uint64_t off;
	bool done;
	struct buf part;           /* a line not ended yet */
};

struct prun {
	struct prun *next;
	uint64_t key;
	char id[72];
	uint32_t run_attempt;
	char *workflow;
	int status;
	bool ended_pass;           /* the pass after its end is done */
	uint32_t n;
	uint8_t *st;               /* per task: last status published */
	uint32_t *started, *ended; /* per task: attempts whose start, end was published */
	struct logf *lf;
	size_t nlf;
	uint64_t seen_ms;
	/* For dagrun_ready_tasks: the run's own definition (its snapshot),
	 * loaded once; NULL when it could not be (then no task counts as
	 * ready). */
	dagrun_workflow *wf;
	bool wf_tried;
	uint32_t running, ready;   /* the last pass's counts */
};

struct poller {
	struct serve *s;
	struct prun *runs;
	uint64_t t0_ms;            /* the server's start */
};

static void prun_free(struct prun *p)
{
	dagrun_workflow_free(p->wf);
	free(p->workflow);
	free(p->st);
	free(p->started);
	free(p->ended);
	for (size_t i = 0; i < p->nlf; i++)
		buf_free(&p->lf[i].part);
	free(p->lf);
	free(p);
}

static struct prun *find(struct poller *pl, uint64_t key)
{
	for (struct prun *p = pl->runs; p; p = p->next)
		if (p->key == key)
			return p;
	return NULL;
}

static json_t *task_event(const struct prun *p, const struct store_task_info *t, int status)
{
	return json_pack("{s:s, s:i, s:o, s:i, s:o, s:s, s:i, s:o, s:o}", "run", p->id,
			 "runAttempt", (int)p->run_attempt, "workflow", jstr(p->workflow),
			 "index", (int)t->index, "task", jstr(t->id), "status",
			 store_task_status_name(status), "attempts", (int)t->attempts,
			 "errorClass", t->error_class ? json_string(dagrun_class_name(t->error_class))
						      : json_null(),
			 "error", jstr(t->error));
}

static const char *outcome(const struct store_attempt_info *a)
{
	return store_attempt_outcome(a, false);
}

static json_t *attempt_event(const struct prun *p, const char *task,
			     const struct store_attempt_info *a, bool end)
{
	json_t *o = json_pack("{s:s, s:i, s:o, s:i, s:o, s:i, s:s, s:s, s:I}", "run", p->id,
			      "runAttempt", (int)p->run_attempt, "workflow", jstr(p->workflow),
			      "index", (int)a->task, "task", jstr(task), "attempt", (int)a->attempt,
			      "phase", end ? "end" : "start", "outcome", end ? outcome(a) : "running",
			      "startMs", (json_int_t)a->start_ms);
	if (o && end) {
		json_object_set_new(o, "endMs", json_integer((json_int_t)a->end_ms));
		json_object_set_new(o, "durationMs", json_integer((json_int_t)a->duration_ms));
		json_object_set_new(o, "exitCode", a->exit_code >= 0 ? json_integer(a->exit_code)
								    : json_null());
		json_object_set_new(o, "errorClass", a->error_class ?
				    json_string(dagrun_class_name(a->error_class)) : json_null());
		json_object_set_new(o, "error", jstr(a->error));
	}
	return o;
}

/* ---- logs ------------------------------------------------------------------ */

static struct logf *logf_get(struct prun *p, const struct store_attempt_info *a, int stream)
{
	for (size_t i = 0; i < p->nlf; i++)
		if (p->lf[i].task == a->task && p->lf[i].attempt == a->attempt &&
		    p->lf[i].stream == stream)
			return &p->lf[i];
	struct logf *v = realloc(p->lf, (p->nlf + 1) * sizeof(*v));
	if (!v)
		return NULL;
	p->lf = v;
	struct logf *f = &v[p->nlf++];
	*f = (struct logf){a->task, a->attempt, a->run, a->stored_task, stream, 0, false, BUF_INIT};
	return f;
}

static void publish_log(struct serve *s, struct prun *p, const char *task, struct logf *f,
			const char *text, size_t n)
{
	struct buf clean = BUF_INIT;
	if (text_utf8_clean(&clean, text, n) < 0) {
		buf_free(&clean);
		return;
	}
	json_t *o = json_pack("{s:s, s:i, s:o, s:i, s:o, s:i, s:s, s:s%}", "run", p->id,
			      "runAttempt", (int)p->run_attempt, "workflow", jstr(p->workflow),
			      "index", (int)f->task, "task", jstr(task), "attempt", (int)f->attempt,
			      "stream", f->stream == STORE_STDOUT ? "stdout" : "stderr", "text",
			      clean.data ? clean.data : "", clean.len);
	buf_free(&clean);
	hub_publish(s, EV_LOG, p->id, o);
}

/* Reads what the log file of f gained (SERVE_LOG_CHUNK at most) and
 * publishes its whole lines; the rest of a line waits for its end (or the
 * attempt's end). */
static void follow(struct serve *s, struct store *st, struct prun *p, const char *task,
		   struct logf *f, bool ended, struct arena *mem)
{
	struct store_log_files lfs;
	char *err = NULL;
	if (st->ops->log_files(st, f->run, f->stored_task, f->attempt, mem, &lfs, &err) < 0) {
		free(err);
		return;
	}
	const char *path = lfs.path[f->stream];
	if (!path || lfs.size[f->stream] <= f->off) {
		if (ended && (!path || lfs.size[f->stream] <= f->off)) {
			if (f->part.len)
				publish_log(s, p, task, f, f->part.data, f->part.len);
			buf_reset(&f->part);
			f->done = true;
		}
		return;
	}
	int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return;
	char *chunk = malloc(SERVE_LOG_CHUNK);
	ssize_t n = chunk ? pread(fd, chunk, SERVE_LOG_CHUNK, (off_t)f->off) : -1;
	close(fd);
	if (n > 0) {
		f->off += (uint64_t)n;
		buf_add(&f->part, chunk, (size_t)n);
		char *nl = memrchr(f->part.data, '\n', f->part.len);
		size_t whole = nl ? (size_t)(nl - f->part.data) + 1 : 0;
		if (!whole && f->part.len >= 4096)
			whole = f->part.len;   /* a long line goes in pieces */
		if (whole) {
			publish_log(s, p, task, f, f->part.data, whole);
			memmove(f->part.data, f->part.data + whole, f->part.len - whole);
			f->part.len -= whole;
		}
	}
	free(chunk);
}

/* ---- one run -------------------------------------------------------------------- */

static void attempts_pass(struct serve *s, struct store *st, struct prun *p,
			  const struct store_task_info *t, size_t nt, bool logs,
			  struct arena *mem)
{
	struct store_attempt_info *a = NULL;
	size_t na = 0;
	char *err = NULL;
	if (st->ops->attempts(st, p->key, STORE_ALL_TASKS, mem, &a, &na, &err) < 0) {
		free(err);
		return;
	}
	for (size_t i = 0; i < na; i++) {
		uint32_t k = a[i].task;
		if (k >= p->n || k >= nt)
			continue;
		const char *tid = t[k].id;
		if (a[i].attempt > p->started[k]) {
			hub_publish(s, EV_ATTEMPT, p->id, attempt_event(p, tid, &a[i], false));
			p->started[k] = a[i].attempt;
		}
		if (a[i].ended && a[i].attempt > p->ended[k]) {
			hub_publish(s, EV_ATTEMPT, p->id, attempt_event(p, tid, &a[i], true));
			p->ended[k] = a[i].attempt;
			met_attempt(s, p->workflow, a[i].duration_ms,
				    a[i].flags & STORE_ATTEMPT_OK ? 0 : a[i].error_class);
		}
		if (!logs)
			continue;
		for (int sm = STORE_STDOUT; sm <= STORE_STDERR; sm++) {
			struct logf *f = logf_get(p, &a[i], sm);
			if (f && !f->done)
				follow(s, st, p, tid, f, a[i].ended, mem);
		}
	}
}

/* Loads the definition the run recorded, once, when it is small enough to
 * load within a poll (READY_MAX_TASKS) and its tasks are those recorded. */
#define READY_MAX_TASKS 100000
static void load_def(struct store *st, struct prun *p)
{
	struct arena mem = ARENA_INIT;
	struct store_definition def;
	char *err = NULL;
	dagrun_diags *d = NULL;
	p->wf_tried = true;
	if (p->n > READY_MAX_TASKS || st->ops->definition(st, p->key, &mem, &def, &err) < 0 ||
	    !def.definition || !(d = dagrun_diags_new(1)) ||
	    dagrun_workflow_load_buffer(def.path ? def.path : "workflow.yaml", def.definition,
					def.definition_len, &p->wf, d) < 0)
		goto out;
	bool same = p->wf->n_tasks == p->n && def.n_tasks == p->n;
	for (uint32_t t = 0; same && t < p->n; t++)
		same = !strcmp(wf_task_id(p->wf, t), def.task_ids[t]);
	if (!same) {
		dagrun_workflow_free(p->wf);
		p->wf = NULL;
	}
out:
	dagrun_diags_free(d);
	free(err);
	arena_free(&mem);
}

static bool ended(int status)
{
	return status == STORE_TASK_COMPLETED || status == STORE_TASK_FAILED ||
	       status == STORE_TASK_SKIPPED || status == STORE_TASK_CANCELLED;
}

/* Main tasks that wait for a slot or a pool: pending, every dependency
 * ended (the engine settles a task whose dependencies ended at once:
 * started, or skipped; one left pending waits for room). Hook tasks are
 * not counted (they wait for the main tasks, not for room). */
static uint32_t count_ready(const struct prun *p, const struct store_task_info *t, size_t nt)
{
	const struct dagrun_workflow *wf = p->wf;
	uint32_t ready = 0;
	for (uint32_t i = 0; wf && i < wf->n_main && i < nt; i++) {
		if (t[i].status != STORE_TASK_PENDING)
			continue;
		const struct dr_task *x = &wf->tasks[i];
		bool ok = true;
		for (uint32_t k = 0; ok && k < x->dep_count; k++) {
			uint32_t d = wf->deps[x->dep_first + k].target;
			ok = d < nt && ended(t[d].status);
		}
		ready += ok;
	}
	return ready;
}

static void tasks_pass(struct serve *s, struct store *st, struct prun *p, bool dead)
{
	struct arena mem = ARENA_INIT;
	struct store_task_info *t = NULL;
	size_t nt = 0;
	char *err = NULL;
	if (st->ops->tasks(st, p->key, &mem, &t, &nt, &err) < 0) {
		free(err);
		arena_free(&mem);
		return;
	}
	bool changed = false;
	uint32_t running = 0;
	for (size_t i = 0; i < nt && i < p->n; i++) {
		int status = t[i].status;
		if (dead && status == STORE_TASK_RUNNING)
			status = STORE_TASK_INTERRUPTED;
		if (status == STORE_TASK_RUNNING)
			running++;
		if (t[i].attempts != p->started[i] || (t[i].end_ms && p->ended[i] < t[i].attempts))
			changed = true;
		if (status != p->st[i]) {
			hub_publish(s, EV_TASK, p->id, task_event(p, &t[i], status));
			p->st[i] = (uint8_t)status;
		}
	}
	bool logs = hub_wants_logs(&s->hub, p->id);
	if (changed || logs)
		attempts_pass(s, st, p, t, nt, logs, &mem);
	if (!dead && !p->wf_tried)
		load_def(st, p);
	p->running = dead ? 0 : running;
	p->ready = dead ? 0 : count_ready(p, t, nt);
	arena_free(&mem);
}

static struct prun *track(struct poller *pl, const struct store_run_info *r)
{
	struct prun *p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	p->key = r->key;
	snprintf(p->id, sizeof(p->id), "%s", r->run_id);
	p->run_attempt = r->run_attempt;
	p->workflow = strdup(r->workflow ? r->workflow : "");
	p->n = r->n_tasks;
	p->st = calloc(p->n ? p->n : 1, 1);
	p->started = calloc(p->n ? p->n : 1, sizeof(uint32_t));
	p->ended = calloc(p->n ? p->n : 1, sizeof(uint32_t));
	p->status = -1;
	if (!p->workflow || !p->st || !p->started || !p->ended) {
		prun_free(p);
		return NULL;
	}
	p->next = pl->runs;
	pl->runs = p;
	return p;
}

/* Takes a run found going when the server started as it stands. */
static void adopt(struct store *st, struct prun *p)
{
	struct arena mem = ARENA_INIT;
	struct store_task_info *t = NULL;
	size_t nt = 0;
	char *err = NULL;
	if (st->ops->tasks(st, p->key, &mem, &t, &nt, &err) == 0)
		for (size_t i = 0; i < nt && i < p->n; i++) {
			p->st[i] = (uint8_t)t[i].status;
			p->started[i] = t[i].attempts;
			p->ended[i] = t[i].end_ms ? t[i].attempts : t[i].attempts - (t[i].attempts > 0);
		}
	free(err);
	arena_free(&mem);
}

static void publish_run(struct serve *s, struct prun *p, const struct store_run_info *r)
{
	struct store_run_info rr = *r;
	serve_run_settle(&rr);
	hub_publish(s, EV_RUN, p->id, serve_json_run(&rr));
}

static void run_pass(struct poller *pl, struct store *st, const struct store_run_info *r,
		     uint64_t now)
{
	struct serve *s = pl->s;
	struct prun *p = find(pl, r->key);
	if (!p) {
		if (r->status != STORE_RUN_RUNNING && r->end_ms && r->end_ms < pl->t0_ms)
			return;   /* history: nothing to follow */
		if (!(p = track(pl, r)))
			return;
		if (r->start_ms < pl->t0_ms)
			adopt(st, p);
	}
	p->seen_ms = now;
	bool changed = r->status != p->status;
	/* A run that starts is announced before its tasks; one that ends,
	 * after their last changes: a client that stops reading at the run's
	 * end has seen every task's final status. */
	if (changed && r->status == STORE_RUN_RUNNING)
		publish_run(s, p, r);
	if (r->status == STORE_RUN_RUNNING || !p->ended_pass || changed) {
		tasks_pass(s, st, p, r->status == STORE_RUN_INTERRUPTED);
		if (r->status != STORE_RUN_RUNNING)
			p->ended_pass = true;
	}
	if (changed && r->status != STORE_RUN_RUNNING)
		publish_run(s, p, r);
	p->status = r->status;
}

/* The running and ready gauges: the sums over the running runs of each
 * workflow (several runs of one workflow add up), set at once. */
static void gauges(struct poller *pl)
{
	size_t n = 0, cap = 0;
	struct met_gauge *g = NULL;
	for (struct prun *p = pl->runs; p; p = p->next) {
		if (p->status != STORE_RUN_RUNNING)
			continue;
		size_t i = 0;
		while (i < n && strcmp(g[i].workflow, p->workflow))
			i++;
		if (i == n) {
			if (n == cap) {
				struct met_gauge *x = realloc(g, (cap = cap ? 2 * cap : 8) * sizeof(*g));
				if (!x)
					break;
				g = x;
			}
			g[n++] = (struct met_gauge){p->workflow, 0, 0};
		}
		g[i].running += p->running;
		g[i].ready += p->ready;
	}
	met_gauges(pl->s, g, n);
	free(g);
}

static void tick(struct poller *pl)
{
	struct serve *s = pl->s;
	runner_reap(s);
	char *err = NULL;
	struct store *st = readers_get(s, &err);
	if (!st) {
		free(err);
		return;
	}
	struct arena mem = ARENA_INIT;
	struct store_run_info *v = NULL, *w = NULL;
	size_t n = 0, m = 0;
	struct store_run_filter recent = {NULL, -1, 50}, live = {NULL, STORE_RUN_RUNNING, 0};
	uint64_t now = clock_mono_ms();
	if (st->ops->list_runs(st, &live, &mem, &w, &m, &err) == 0)
		for (size_t i = 0; i < m; i++)
			run_pass(pl, st, &w[i], now);
	free(err);
	err = NULL;
	if (st->ops->list_runs(st, &recent, &mem, &v, &n, &err) == 0)
		for (size_t i = 0; i < n; i++)
			if (v[i].status != STORE_RUN_RUNNING)
				run_pass(pl, st, &v[i], now);
	free(err);
	arena_free(&mem);
	readers_put(s, st);
	/* Forget runs not seen for a minute (ended and out of the newest). */
	for (struct prun **pp = &pl->runs; *pp;) {
		struct prun *p = *pp;
		if (now - p->seen_ms > 60000) {
			*pp = p->next;
			prun_free(p);
		} else {
			pp = &p->next;
		}
	}
	gauges(pl);
}

void *poll_thread(void *arg)
{
	struct poller pl = {.s = arg, .t0_ms = clock_wall_ms()};
	struct serve *s = arg;
	runner_sweep_triggers(s);
	while (!atomic_load(&s->stop)) {
		tick(&pl);
		struct timespec ts = {(time_t)(s->poll_ms / 1000), (long)(s->poll_ms % 1000) * 1000000};
		nanosleep(&ts, NULL);
	}
	while (pl.runs) {
		struct prun *p = pl.runs;
		pl.runs = p->next;
		prun_free(p);
	}
	return NULL;
}
