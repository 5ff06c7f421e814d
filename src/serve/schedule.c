/* schedule.c: the scheduler thread: starts runs at their cron times.
 *
 * Once a second it goes over the workflows with a `schedule`, and for each
 * computes the times due since the last one it handled (kept in
 * STATE/serve/schedules.json, written whole and renamed, so a restart
 * knows what it missed). A time is on time when it is less than a minute
 * old; older ones were missed while the server was down (or the machine
 * slept): they run only with `catchup: true` (at most SERVE_CATCHUP_MAX of
 * them, oldest first), and otherwise the log says how many were skipped.
 * A workflow first seen starts from now. When a run of the workflow is
 * still going: `overlap: skip` (the default) logs and skips, `queue`
 * starts it when the previous one ends (at most SERVE_QUEUE_MAX waiting;
 * more are logged and dropped), `allow` starts it anyway.
 *
 * The clock: sched_now_ms() is the wall clock, or (tests) a clock that
 * runs `clock_speed` times faster from the server's start, so that a
 * five-field schedule firing every minute fires every second of real time.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "model/model.h"
#include "serve/serve_int.h"
#include "util/clock.h"
#include "util/cron.h"

uint64_t sched_now_ms(struct serve *s)
{
	uint64_t real = clock_wall_ms();
	return s->sch.clock0_ms + (uint64_t)((double)(real - s->sch.real0_ms) * s->sch.speed);
}

size_t sched_next_times(const struct wfent *e, uint64_t from_ms, uint64_t *out, size_t n)
{
	size_t k = 0;
	int64_t t = (int64_t)(from_ms / 1000), next;
	while (k < n && e->cron && cron_next(e->cron, e->tz, t, &next) == 0) {
		out[k++] = (uint64_t)next * 1000;
		t = next;
	}
	return k;
}

void sched_snapshot(struct serve *s, json_t **lag, json_t **queued)
{
	pthread_mutex_lock(&s->sch.mu);
	*lag = json_deep_copy(s->sch.lag);
	*queued = json_deep_copy(s->sch.queued);
	pthread_mutex_unlock(&s->sch.mu);
	if (!*lag)
		*lag = json_object();
	if (!*queued)
		*queued = json_object();
}

static char *state_file(struct serve *s)
{
	char *dir = serve_subdir(s, "schedule");
	char *p = dir ? buf_strf("%s/last.json", dir) : NULL;
	free(dir);
	return p;
}

static void save(struct serve *s)
{
	char *p = state_file(s);
	char *tmp = p ? buf_strf("%s.tmp", p) : NULL;
	pthread_mutex_lock(&s->sch.mu);
	int r = tmp ? json_dump_file(s->sch.last, tmp, JSON_COMPACT) : -1;
	pthread_mutex_unlock(&s->sch.mu);
	if (r < 0 || rename(tmp, p) < 0)
		serve_log(s, "cannot save the schedules' state in %s: %s", p ? p : "?",
			  strerror(errno));
	free(tmp);
	free(p);
}

/* Whether a run of workflow `name` is going: a child of ours not ended, or
 * a run the store holds as running. */
static bool busy(struct serve *s, const char *name)
{
	bool yes = false;
	pthread_mutex_lock(&s->run.mu);
	for (struct child *c = s->run.list; c && !yes; c = c->next)
		yes = !c->exited && !strcmp(c->workflow, name);
	pthread_mutex_unlock(&s->run.mu);
	if (yes)
		return true;
	char *err = NULL;
	struct store *st = readers_get(s, &err);
	struct arena mem = ARENA_INIT;
	struct store_run_filter f = {name, STORE_RUN_RUNNING, 1};
	struct store_run_info *v = NULL;
	size_t n = 0;
	if (st && st->ops->list_runs(st, &f, &mem, &v, &n, &err) == 0)
		yes = n > 0;
	readers_put(s, st);
	free(err);
	arena_free(&mem);
	return yes;
}

static void event(struct serve *s, const char *name, uint64_t due, const char *action,
		  const char *run)
{
	hub_publish(s, EV_SCHEDULE, run, json_pack("{s:o, s:I, s:s, s:o}", "workflow", jstr(name),
						   "scheduledMs", (json_int_t)due, "action", action,
						   "run", jstr(run)));
}

static void start(struct serve *s, const struct wfent *e, uint64_t due)
{
	struct start_req rq = {.kind = CHILD_RUN, .file = e->path, .workflow = e->name,
			       .scheduled_ms = due};
	char id[72], *why = NULL;
	pid_t pid;
	if (runner_spawn(s, &rq, id, &pid, &why) < 0) {
		serve_log(s, "schedule of %s: cannot start its run: %s", e->name, why ? why : "?");
		event(s, e->name, due, "failed", NULL);
		free(why);
		return;
	}
	double lag = (double)(sched_now_ms(s) - due) / 1000.0;
	pthread_mutex_lock(&s->sch.mu);
	json_object_set_new(s->sch.lag, e->name, json_real(lag < 0 ? 0 : lag));
	pthread_mutex_unlock(&s->sch.mu);
	event(s, e->name, due, "started", id);
}

static json_int_t queued(struct serve *s, const char *name, int delta)
{
	pthread_mutex_lock(&s->sch.mu);
	json_int_t n = json_integer_value(json_object_get(s->sch.queued, name)) + delta;
	if (n < 0)
		n = 0;
	json_object_set_new(s->sch.queued, name, json_integer(n));
	pthread_mutex_unlock(&s->sch.mu);
	return n;
}

static void fire(struct serve *s, const struct wfent *e, uint64_t due)
{
	int ov = e->wf->schedule->overlap;
	if (ov == DR_OVERLAP_ALLOW || !busy(s, e->name))
		return start(s, e, due);
	if (ov == DR_OVERLAP_SKIP) {
		serve_log(s, "schedule of %s: the run due at %llu ms skipped: the previous run is "
			  "still going (overlap: skip)", e->name, (unsigned long long)due);
		return event(s, e->name, due, "skipped", NULL);
	}
	if (queued(s, e->name, 0) >= SERVE_QUEUE_MAX) {
		serve_log(s, "schedule of %s: the run due at %llu ms dropped: %d runs already wait "
			  "for the previous one (overlap: queue)", e->name, (unsigned long long)due,
			  SERVE_QUEUE_MAX);
		return event(s, e->name, due, "dropped", NULL);
	}
	queued(s, e->name, 1);
	event(s, e->name, due, "queued", NULL);
}

static void one(struct serve *s, const struct wfent *e, uint64_t now, uint64_t tolerance)
{
	pthread_mutex_lock(&s->sch.mu);
	json_t *l = json_object_get(s->sch.last, e->name);
	uint64_t last = l ? (uint64_t)json_integer_value(l) : now;
	if (!l)
		json_object_set_new(s->sch.last, e->name, json_integer((json_int_t)now));
	pthread_mutex_unlock(&s->sch.mu);
	/* A queued run starts when the previous one has ended. */
	if (queued(s, e->name, 0) > 0 && !busy(s, e->name)) {
		queued(s, e->name, -1);
		start(s, e, now);
	}
	uint64_t due[SERVE_CATCHUP_MAX + 1];
	size_t n = 0, total = 0;
	int64_t t = (int64_t)(last / 1000), next;
	uint64_t newest = last;
	while (cron_next(e->cron, e->tz, t, &next) == 0 && (uint64_t)next * 1000 <= now) {
		total++;
		newest = (uint64_t)next * 1000;
		if (n < SERVE_CATCHUP_MAX + 1)
			due[n++] = newest;
		else
			memmove(due, due + 1, sizeof(due) - sizeof(due[0])), due[n - 1] = newest;
		t = next;
		if (total > 10000000)
			break;
	}
	if (!total)
		return;
	bool catchup = e->wf->schedule->catchup;
	size_t missed = 0;
	for (size_t i = 0; i < n; i++) {
		bool late = now - due[i] > tolerance;
		if (late && (!catchup || n - i > SERVE_CATCHUP_MAX)) {
			missed++;
			continue;
		}
		fire(s, e, due[i]);
	}
	missed += total - n;
	if (missed) {
		serve_log(s, "schedule of %s: %zu run%s missed while the server was not running "
			  "%s", e->name, missed, missed == 1 ? "" : "s",
			  catchup ? "(more than catchup runs: the oldest)" : "not run (catchup: false)");
		event(s, e->name, newest, "missed", NULL);
	}
	pthread_mutex_lock(&s->sch.mu);
	json_object_set_new(s->sch.last, e->name, json_integer((json_int_t)newest));
	pthread_mutex_unlock(&s->sch.mu);
	save(s);
}

static void load_state(struct serve *s)
{
	char *p = state_file(s);
	json_error_t je;
	json_t *j = p ? json_load_file(p, 0, &je) : NULL;
	if (!json_is_object(j)) {
		json_decref(j);
		j = json_object();
	}
	free(p);
	pthread_mutex_lock(&s->sch.mu);
	s->sch.last = j;
	s->sch.lag = json_object();
	s->sch.queued = json_object();
	pthread_mutex_unlock(&s->sch.mu);
}

void *sched_thread(void *arg)
{
	struct serve *s = arg;
	load_state(s);
	uint64_t tick = 1000, tolerance = (uint64_t)(60000 > 3 * tick * s->sch.speed ? 60000
						      : 3 * tick * s->sch.speed);
	for (;;) {
		pthread_mutex_lock(&s->sch.mu);
		bool stop = s->sch.stop;
		pthread_mutex_unlock(&s->sch.mu);
		if (stop)
			break;
		catalog_scan(s, 2000);
		size_t n = 0;
		struct wfent **v = catalog_all(s, &n);
		uint64_t now = sched_now_ms(s);
		for (size_t i = 0; v && i < n; i++)
			if (v[i]->cron && v[i]->wf && !v[i]->dup)
				one(s, v[i], now, tolerance);
		catalog_put_all(s, v, n);
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_sec += 1;
		pthread_mutex_lock(&s->sch.mu);
		if (!s->sch.stop)
			pthread_cond_timedwait(&s->sch.cv, &s->sch.mu, &ts);
		pthread_mutex_unlock(&s->sch.mu);
	}
	return NULL;
}
