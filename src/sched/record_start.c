/* record_start.c: before a recorded run starts (record_start): the store
 * opened, the critical-path weights read from history, the default
 * retention applied, the run's row begun (or claimed to resume it, or a
 * new run attempt with the kept tasks carried for rerun), the run's lock
 * taken, the definition's snapshot recorded; and the weights alone for a
 * plan (record_plan_weights).
 *
 * Invariant: a run that cannot be recorded does not start: every failure
 * here returns with *err naming the file, and nothing is left open.
 */
#include "sched/record.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>

#include "graph/graph.h"
#include "sched/flow.h"
#include "sched/record_int.h"
#include "sched/resume.h"
#include "sched/sched.h"
#include "store/store.h"
#include "util/buf.h"
#include "util/clock.h"

/* ---- starting ------------------------------------------------------------------- */

int record_fail(char **err, int code, const char *fmt, ...)
{
	if (err && !*err) {
		va_list ap;
		va_start(ap, fmt);
		*err = buf_vstrf(fmt, ap);
		va_end(ap);
	}
	return code;
}

static void nap_20ms(void)
{
	struct timespec ts = {0, 20 * 1000 * 1000};
	nanosleep(&ts, NULL);
}

/* DIR/locks/RUNID, held (flock) by the engine and its watchdog while they
 * live: a run that continues this one waits here until both are gone. */
static int take_lock(struct record *r, const char *dir, bool wait, char **err)
{
	char *locks = NULL;
	int rc = 0;
	if (asprintf(&locks, "%s/locks", dir) < 0 ||
	    asprintf(&r->lock_path, "%s/%s", locks, r->run_id) < 0) {
		free(locks);
		return record_fail(err, -ENOMEM, "out of memory");
	}
	if (mkdir(locks, 0700) < 0 && errno != EEXIST) {
		rc = record_fail(err, -errno, "%s: cannot create: %s", locks, strerror(errno));
		goto out;
	}
	r->lock_fd = open(r->lock_path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (r->lock_fd < 0) {
		rc = record_fail(err, -errno, "%s: cannot open: %s", r->lock_path, strerror(errno));
		goto out;
	}
	for (unsigned waited = 0;; waited += 20) {
		if (flock(r->lock_fd, LOCK_EX | LOCK_NB) == 0)
			break;
		if (errno != EWOULDBLOCK && errno != EINTR) {
			rc = record_fail(err, -errno, "%s: cannot lock: %s", r->lock_path, strerror(errno));
			goto out;
		}
		if (!wait || waited >= LOCK_WAIT_MS) {
			rc = record_fail(err, -EBUSY, "run %s: a process of the dagrun that drove it before "
				  "still holds %s (its watchdog, still sweeping?); try again later",
				  r->run_id, r->lock_path);
			goto out;
		}
		nap_20ms();
	}
out:
	free(locks);
	return rc;
}

/* The workflow's text for the snapshot, masked: *text and *len, pointing
 * into o->definition or into b (which the caller frees); *text NULL when
 * there is none to record (not a file that can be read again). */
static int snapshot(struct record *r, const struct record_opts *o, struct buf *b,
		    const char **text, size_t *len)
{
	*text = o->definition;
	*len = o->definition_len;
	struct buf file = BUF_INIT;
	int rc = 0;
	if (!*text) {
		int fd = open(r->wf->path, O_RDONLY | O_CLOEXEC);
		struct stat sb;
		if (fd < 0 || fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode)) {
			if (fd >= 0)
				close(fd);
			return 0;
		}
		file.max = DAGRUN_MAX_FILE_BYTES;
		char chunk[65536];
		ssize_t n;
		while ((n = read(fd, chunk, sizeof(chunk))) > 0)
			if ((rc = buf_add(&file, chunk, (size_t)n)) < 0)
				break;
		close(fd);
		if (rc < 0) {
			buf_free(&file);
			return rc == -E2BIG ? 0 : rc;
		}
		*text = file.data ? file.data : "";
		*len = file.len;
	}
	if (!flow_redacting(r->f)) {
		*b = file;   /* nothing to mask: no copy */
		return 0;
	}
	rc = flow_redact(r->f, *text, *len, b);
	buf_free(&file);
	*text = b->data ? b->data : "";
	*len = b->len;
	return rc;
}

static int begin_run(struct record *r, const struct record_opts *o, uint32_t run_attempt,
		     char **err)
{
	const struct dagrun_workflow *wf = r->wf;
	struct buf def = BUF_INIT, vars = BUF_INIT;
	const char **ids = malloc((wf->n_tasks ? wf->n_tasks : 1) * sizeof(*ids));
	char path[PATH_MAX];
	int rc = -ENOMEM;
	const char *text = NULL;
	size_t len = 0;
	if (!ids || (rc = snapshot(r, o, &def, &text, &len)) < 0 ||
	    (rc = flow_vars_json(r->f, wf, &vars)) < 0) {
		record_fail(err, rc, "cannot record the run's definition: %s", strerror(-rc));
		goto out;
	}
	for (uint32_t t = 0; t < wf->n_tasks; t++)
		ids[t] = wf_task_id(wf, t);
	struct store_run_begin b = {
		.run_id = r->run_id, .run_attempt = run_attempt,
		.workflow = dagrun_workflow_name(wf),
		.path = realpath(wf->path, path) ? path : wf->path,
		.definition = text, .definition_len = len,
		.vars_json = vars.data, .trigger_json = flow_trigger_json(r->f), .task_ids = ids,
		.n_tasks = wf->n_tasks, .start_ms = clock_wall_ms(), .replay_of = o->replay_of,
	};
	rc = r->st->ops->begin(r->st, &b, &r->key, NULL, err);
out:
	free(ids);
	buf_free(&def);
	buf_free(&vars);
	return rc;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* Critical-path weights from the workflow's history in st, into s: a
 * task's cost is the median of its recent successful durations; without
 * history, the median of those that have one. Nothing when none has. */
static int weigh(struct store *st, const struct dagrun_workflow *wf, struct sched *s,
		 char **err)
{
	uint32_t n = wf->n_tasks;
	if (!n)
		return 0;
	const char **ids = malloc(n * sizeof(*ids));
	uint64_t *ms = calloc(n, sizeof(*ms)), *known = malloc(n * sizeof(*known));
	int rc = -ENOMEM;
	if (!ids || !ms || !known) {
		record_fail(err, rc, "out of memory");
		goto out;
	}
	for (uint32_t t = 0; t < n; t++)
		ids[t] = wf_task_id(wf, t);
	uint32_t runs = HISTORY_TASK_RUNS / n;
	runs = runs < 1 ? 1 : runs > HISTORY_RUNS ? HISTORY_RUNS : runs;
	if ((rc = st->ops->history(st, dagrun_workflow_name(wf), ids, n, runs, ms, err)) < 0)
		goto out;
	uint32_t k = 0;
	for (uint32_t t = 0; t < n; t++)
		if (ms[t])
			known[k++] = ms[t];
	if (!k)
		goto out;
	/* The median of those with history. */
	qsort(known, k, sizeof(*known), cmp_u64);
	uint64_t mid = known[k / 2];
	for (uint32_t t = 0; t < n; t++)
		if (!ms[t])
			ms[t] = mid ? mid : 1;
	uint64_t *w = known;   /* reused: n entries */
	graph_weigh(wf->graph, ms, w);
	sched_set_weights(s, w);
out:
	free(ids);
	free(ms);
	free(known);
	return rc;
}

/* The default retention for this workflow: cheap when nothing is due. */
static void retention(struct record *r)
{
	struct store_prune_opts po = {
		.workflow = dagrun_workflow_name(r->wf), .keep = KEEP_RUNS,
		.older_than_ms = KEEP_MS, .now_ms = clock_wall_ms(),
	};
	char *e = NULL;
	if (r->st->ops->prune_due(r->st, &po, &e) == 1)
		r->st->ops->prune_async(r->st, &po);
	free(e);
}

static int sched_observe(struct sched *s, dagrun_observer_fn fn, void *ud)
{
	struct observer *o = realloc(s->obs, (s->n_obs + 1) * sizeof(*o));
	if (!o)
		return -ENOMEM;
	s->obs = o;
	o[s->n_obs++] = (struct observer){fn, ud};
	return 0;
}

static void make_summary(struct record *r)
{
	const struct cont *c = r->cont;
	if (!c)
		return;
	char *m = NULL;
	int n;
	if (c->o.mode == CONT_RESUME)
		n = asprintf(&m, "resuming run %s: %u task%s kept as recorded, %u attempt%s "
			     "found interrupted (run again)%s%d leftover process%s killed",
			     r->run_id, c->kept, c->kept == 1 ? "" : "s", c->open,
			     c->open == 1 ? "" : "s", ", ", c->killed, c->killed == 1 ? "" : "es");
	else
		n = asprintf(&m, "rerun of run %s (attempt %u): %u task%s kept, %u to run again",
			     r->run_id, c->o.run_attempt, c->kept, c->kept == 1 ? "" : "s",
			     c->n - c->kept);
	r->summary = n < 0 ? NULL : m;
}

struct store *record_store(struct record *r)
{
	return r->st;
}

int record_start(struct record **out, const struct record_opts *o,
		 const struct dagrun_workflow *wf, struct sched *s, struct flow *f,
		 const char *run_id, char **err)
{
	*out = NULL;
	struct record *r = calloc(1, sizeof(*r));
	if (!r)
		return record_fail(err, -ENOMEM, "out of memory");
	int rc;
	r->wf = wf;
	r->s = s;
	r->f = f;
	r->co = o->cont;
	r->lock_fd = -1;
	pthread_mutex_init(&r->mu, NULL);
	if (!(r->run_id = strdup(run_id))) {
		rc = record_fail(err, -ENOMEM, "out of memory");
		goto record_fail;
	}
	if ((rc = uv_async_init(s->loop, &r->async, record_on_async)) < 0) {
		record_fail(err, rc, "cannot set up the state store's wake-up: %s", uv_strerror(rc));
		goto record_fail;
	}
	r->async.data = r;
	r->async_init = true;
	uv_unref((uv_handle_t *)&r->async);
	uv_timer_init(s->loop, &r->group);
	r->group.data = r;
	r->group_init = true;
	struct store_opts so = {
		.dir = o->dir, .durable = o->durable, .log_cap = o->log_cap,
		.queue_max = QUEUE_MAX, .on_error = record_on_store_error, .ud = r,
	};
	if ((rc = store_open(&store_sqlite_ops, &so, &r->st, err)) < 0)
		goto record_fail;
	if ((rc = weigh(r->st, wf, s, err)) < 0)
		goto record_fail;
	retention(r);
	const struct cont_opts *co = o->cont;
	if (!co) {
		rc = begin_run(r, o, 1, err);
	} else if (co->mode == CONT_RESUME) {
		struct arena mem = ARENA_INIT;
		struct store_lease prev;
		r->key = co->key;
		rc = r->st->ops->claim(r->st, co->key, &prev, &mem, err);
		arena_free(&mem);
		if (rc == 0)
			rc = cont_read(r->st, wf, co, f, &r->cont, err);
	} else {
		if ((rc = cont_read(r->st, wf, co, f, &r->cont, err)) == 0)
			rc = begin_run(r, o, co->run_attempt, err);
	}
	if (rc < 0)
		goto record_fail;
	if ((rc = take_lock(r, o->dir, co != NULL, err)) < 0)
		goto record_fail;
	if (r->cont) {
		cont_kill_leftovers(r->cont, r->run_id);
		if ((rc = cont_apply(r->cont, r->st, r->key, s, f, err)) < 0)
			goto record_fail;
		make_summary(r);
	}
	if ((rc = sched_observe(s, record_observe, r)) < 0) {
		record_fail(err, rc, "out of memory");
		goto record_fail;
	}
	struct sched_gate g = {record_gate_request, record_gate_hurry, r};
	sched_set_gate(s, &g);
	r->live = true;
	*out = r;
	return 0;
record_fail:
	record_detach(r);
	/* The handle closes when the engine's loop next runs; r stays until
	 * then, freed by the caller through record_free (see engine.c). */
	*out = r;
	if (r->st) {
		store_close(r->st);
		r->st = NULL;
	}
	return rc;
}

int record_plan_weights(const char *dir, const struct dagrun_workflow *wf, struct sched *s,
			char **err)
{
	char *db = NULL;
	struct stat sb;
	if (asprintf(&db, "%s/state.db", dir) < 0)
		return record_fail(err, -ENOMEM, "out of memory");
	bool none = stat(db, &sb) < 0;
	free(db);
	if (none)
		return 0;   /* nothing recorded yet: no history */
	struct store_opts so = {.dir = dir, .read_only = true};
	struct store *st = NULL;
	int rc = store_open(&store_sqlite_ops, &so, &st, err);
	if (rc == 0)
		rc = weigh(st, wf, s, err);
	store_close(st);
	return rc;
}
