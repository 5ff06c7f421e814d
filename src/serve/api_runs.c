/* api_runs.c: runs: list, one, its document, graph, report and logs;
 * cancel, rerun, resume; statistics. Every answer about a run reads the
 * store (read-only) at the time of the request. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "report/report.h"
#include "report/rundoc.h"
#include "serve/serve_int.h"

static int parse_status(const char *s)
{
	for (int i = 0; i < STORE_RUN_NSTATUS; i++)
		if (!strcmp(s, store_run_status_name(i)))
			return i;
	return -2;
}

void api_runs(struct serve *s, struct req *rq)
{
	const char *wf = req_arg(rq, "workflow"), *status = req_arg(rq, "status"),
		   *limit = req_arg(rq, "limit");
	struct store_run_filter f = {wf && *wf ? wf : NULL, -1, 50};
	if (status && *status && (f.status = parse_status(status)) < -1)
		return reply_error(rq, 400, "status is running, completed, failed, cancelled or "
				   "interrupted");
	if (limit && *limit) {
		char *end;
		unsigned long v = strtoul(limit, &end, 10);
		if (*end || v > 1000)
			return reply_error(rq, 400, "limit is a number from 0 to 1000 (0: 1000)");
		f.limit = v ? (uint32_t)v : 1000;
	}
	uint32_t want = f.limit;
	f.limit++;
	char *err = NULL;
	struct store *st = readers_get_or_503(s, rq);
	if (!st)
		return;
	struct arena mem = ARENA_INIT;
	struct store_run_info *v = NULL;
	size_t n = 0;
	int r = st->ops->list_runs(st, &f, &mem, &v, &n, &err);
	readers_put(s, st);
	if (r < 0) {
		reply_error(rq, 500, "%s", err ? err : strerror(-r));
	} else {
		json_t *a = json_array();
		for (size_t i = 0; i < n && i < want; i++) {
			serve_run_settle(&v[i]);
			json_array_append_new(a, serve_json_run(&v[i]));
		}
		reply_json(rq, 200, json_pack("{s:o, s:b}", "runs", a, "more", n > want));
	}
	free(err);
	arena_free(&mem);
}

/* A run the server started that the store does not hold (yet). */
static bool child_answer(struct serve *s, struct req *rq, const char *id)
{
	struct child c;
	if (!runner_find(s, id, &c) || c.kind != CHILD_RUN)
		return false;
	char *tail = c.exited ? runner_log_tail(c.log, 2048) : NULL;
	int code = WIFEXITED(c.wstatus) ? WEXITSTATUS(c.wstatus) : 128 + WTERMSIG(c.wstatus);
	json_t *run = json_pack("{s:s, s:o, s:s, s:o, s:o}", "id", id, "workflow",
				jstr(c.workflow), "status", c.exited ? "failed-to-start" : "starting",
				"exitCode", c.exited ? json_integer(code) : json_null(), "error",
				jstr(tail));
	free(tail);
	reply_json(rq, 200, json_pack("{s:o, s:[]}", "run", run, "tasks"));
	return true;
}

void api_run(struct serve *s, struct req *rq, const char *id)
{
	struct arena mem = ARENA_INIT;
	struct store_run_info ri;
	char *err = NULL;
	if (store_run_id_valid(id)) {
		/* Not an error page yet: a run just started may not be recorded. */
		struct store *st = readers_get(s, &err);
		int r = st ? st->ops->find_run(st, id, NULL, &mem, &ri, &err) : -EIO;
		readers_put(s, st);
		free(err);
		err = NULL;
		if (r == -ENOENT && child_answer(s, rq, id)) {
			arena_free(&mem);
			return;
		}
	}
	struct store *st = find_run(s, rq, id, &mem, &ri);
	if (!st) {
		arena_free(&mem);
		return;
	}
	struct store_task_info *t = NULL;
	struct store_attempt_info *a = NULL;
	size_t nt = 0, na = 0;
	int r = st->ops->tasks(st, ri.key, &mem, &t, &nt, &err);
	if (r == 0)
		r = st->ops->attempts(st, ri.key, STORE_ALL_TASKS, &mem, &a, &na, &err);
	json_t *o = r == 0 ? serve_json_show(&ri, t, nt, a, na) : NULL;
	readers_put(s, st);
	if (r < 0)
		reply_error(rq, 500, "%s", err ? err : strerror(-r));
	else
		reply_json(rq, 200, o);
	free(err);
	arena_free(&mem);
}

/* The run document of run `id`, or NULL after replying. */
static json_t *document(struct serve *s, struct req *rq, const char *id)
{
	struct arena mem = ARENA_INIT;
	struct store_run_info ri;
	struct store *st = find_run(s, rq, id, &mem, &ri);
	json_t *doc = NULL;
	char *err = NULL;
	if (st) {
		int r = report_rundoc_from_store(st, &ri, NULL, &doc, NULL, &err);
		readers_put(s, st);
		if (r < 0)
			reply_error(rq, 500, "%s", err ? err : strerror(-r));
	}
	free(err);
	arena_free(&mem);
	return doc;
}

void api_run_document(struct serve *s, struct req *rq, const char *id)
{
	json_t *doc = document(s, rq, id);
	if (doc)
		reply_json(rq, 200, doc);
}

static void render(struct req *rq, json_t *doc, bool html)
{
	char *out = NULL, *err = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&out, &len);
	int r = !f ? -ENOMEM : html ? report_html(doc, NULL, f, &err)
				    : report_graph_svg(doc, REPORT_SVG_STATUS, f, &err);
	if (f && fclose(f) != 0 && r == 0)
		r = -ENOMEM;
	json_decref(doc);
	if (r < 0) {
		free(out);
		reply_error(rq, r == -E2BIG ? 413 : 500, "%s", err ? err : strerror(-r));
	} else {
		reply_data(rq, 200, html ? "text/html; charset=utf-8" : "image/svg+xml", out, len);
	}
	free(err);
}

void api_run_graph(struct serve *s, struct req *rq, const char *id)
{
	json_t *doc = document(s, rq, id);
	if (doc)
		render(rq, doc, false);
}

void api_report(struct serve *s, struct req *rq, const char *id)
{
	json_t *doc = document(s, rq, id);
	if (doc)
		render(rq, doc, true);
}

/* A decimal number, whole: 0 or -EINVAL. */
static int parse_u64(const char *s, uint64_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (!*s || *s == '-' || *end || errno)
		return -EINVAL;
	*out = v;
	return 0;
}

/* ---- logs ----------------------------------------------------------------------- */

void api_log(struct serve *s, struct req *rq, const char *id, const char *task)
{
	const char *as = req_arg(rq, "attempt"), *os = req_arg(rq, "offset"),
		   *ss = req_arg(rq, "stream");
	int stream = !ss || !strcmp(ss, "stdout") ? STORE_STDOUT :
		     !strcmp(ss, "stderr") ? STORE_STDERR : 0;
	if (!stream)
		return reply_error(rq, 400, "stream is stdout or stderr");
	uint64_t off = 0, want = 0;
	if ((os && parse_u64(os, &off) < 0) || (as && (parse_u64(as, &want) < 0 || want > UINT32_MAX)))
		return reply_error(rq, 400, "offset and attempt are numbers");
	struct arena mem = ARENA_INIT;
	struct store_run_info ri;
	struct store *st = find_run(s, rq, id, &mem, &ri);
	if (!st) {
		arena_free(&mem);
		return;
	}
	struct store_task_info *t = NULL;
	struct store_attempt_info *a = NULL;
	struct store_log_files lf;
	size_t nt = 0, na = 0;
	char *err = NULL;
	int r = st->ops->tasks(st, ri.key, &mem, &t, &nt, &err);
	size_t k = nt;
	for (size_t i = 0; r == 0 && i < nt && k == nt; i++)
		if (t[i].id && !strcmp(t[i].id, task))
			k = i;
	if (r == 0 && k == nt) {
		/* ri's strings live in mem: the reply is made first */
		reply_error(rq, 404, "run %s has no task '%s'", ri.run_id, task);
		readers_put(s, st);
		arena_free(&mem);
		return;
	}
	if (r == 0)
		r = st->ops->attempts(st, ri.key, t[k].index, &mem, &a, &na, &err);
	const struct store_attempt_info *x = NULL;
	for (size_t i = 0; r == 0 && i < na; i++)
		if (!want || a[i].attempt == want)
			x = &a[i];
	if (r == 0 && !x) {
		if (want)
			reply_error(rq, 404, "task '%s' has no attempt %u", task, (unsigned)want);
		else
			reply_error(rq, 404, "task '%s' has not started", task);
		readers_put(s, st);
		arena_free(&mem);
		return;
	}
	if (r == 0)
		r = st->ops->log_files(st, x->run, x->stored_task, x->attempt, &mem, &lf, &err);
	readers_put(s, st);
	if (r < 0) {
		reply_error(rq, 500, "%s", err ? err : strerror(-r));
		free(err);
		arena_free(&mem);
		return;
	}
	const char *path = lf.path[stream];
	size_t cap = 1u << 20, got = 0;
	char *data = malloc(cap);
	int fd = path && data ? open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC) : -1;
	if (fd >= 0) {
		ssize_t n = pread(fd, data, cap, (off_t)off);
		got = n > 0 ? (size_t)n : 0;
		close(fd);
	}
	char hdr[32];
	reply_data(rq, 200, "text/plain; charset=utf-8", data ? data : strdup(""), got);
	snprintf(hdr, sizeof(hdr), "%u", x->attempt);
	reply_header(rq, "X-Dagrun-Attempt", hdr);
	snprintf(hdr, sizeof(hdr), "%llu", (unsigned long long)(off + got));
	reply_header(rq, "X-Dagrun-Next-Offset", hdr);
	snprintf(hdr, sizeof(hdr), "%llu", (unsigned long long)(path ? lf.size[stream] : 0));
	reply_header(rq, "X-Dagrun-Log-Size", hdr);
	reply_header(rq, "X-Dagrun-Attempt-Ended", x->ended ? "true" : "false");
	arena_free(&mem);
}

/* ---- actions ------------------------------------------------------------------------ */

/* Whether the store shows what the child was started to do: the run
 * recorded (run), its next run attempt (rerun), taken out of the
 * interrupted state (resume: running, or already ended). */
static bool recorded(struct serve *s, const struct start_req *rq, const char *id,
		     struct arena *mem, struct store_run_info *ri)
{
	char *err = NULL;
	struct store *st = readers_get(s, &err);
	int r = st ? st->ops->find_run(st, id, NULL, mem, ri, &err) : -EIO;
	readers_put(s, st);
	free(err);
	return r == 0 && (rq->kind == CHILD_RUN ||
			  (rq->kind == CHILD_RERUN && ri->run_attempt > rq->prev_attempt) ||
			  (rq->kind == CHILD_RESUME && ri->status != STORE_RUN_INTERRUPTED));
}

/* Waits (on this request's thread only) until the child has recorded what
 * it was started for, or has exited without. The exit is read before the
 * store, so a child that records and exits between two looks is seen
 * recorded. */
static json_t *wait_for(struct serve *s, const struct start_req *rq, const char *id, pid_t pid,
			unsigned *status)
{
	for (unsigned waited = 0; waited < SERVE_START_WAIT_MS; waited += 50) {
		struct arena mem = ARENA_INIT;
		struct store_run_info ri;
		int ws;
		bool exited = runner_exited(s, pid, &ws);
		if (recorded(s, rq, id, &mem, &ri)) {
			serve_run_settle(&ri);
			json_t *o = json_pack("{s:s, s:i, s:s, s:o}", "id", id, "runAttempt",
					      (int)ri.run_attempt, "status",
					      store_run_status_name(ri.status), "run", serve_json_run(&ri));
			arena_free(&mem);
			*status = rq->kind == CHILD_RESUME ? 202 : 201;
			return o;
		}
		arena_free(&mem);
		if (exited) {
			struct child c;
			char *tail = runner_find(s, id, &c) ? runner_log_tail(c.log, 2048) : NULL;
			int code = WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws);
			*status = code == 2 ? 422 : 500;
			json_t *o = json_pack("{s:s, s:s+, s:i, s:o}", "id", id, "error",
					      "dagrun exited before it recorded the run: ",
					      tail ? tail : "", "exitCode", code, "output", jstr(tail));
			free(tail);
			return o;
		}
		struct timespec ts = {0, 50 * 1000000};
		nanosleep(&ts, NULL);
	}
	*status = 202;
	return json_pack("{s:s, s:s}", "id", id, "status", "starting");
}

json_t *runner_start_and_wait(struct serve *s, const struct start_req *rq, unsigned *status)
{
	char id[72], *why = NULL;
	pid_t pid = 0;
	int r = runner_spawn(s, rq, id, &pid, &why);
	if (r < 0) {
		*status = r == -EINVAL ? 400 : 500;
		json_t *o = json_pack("{s:o}", "error", jstr(why ? why : strerror(-r)));
		free(why);
		return o;
	}
	json_t *o = wait_for(s, rq, id, pid, status);
	/* A trigger body is read before the run is recorded: once it is (or
	 * the child is gone), its file has served (else the reaper removes it). */
	struct child c;
	if (rq->trigger && *status != 202 && runner_find(s, id, &c) && c.trigger)
		unlink(c.trigger);
	return o;
}

void api_action(struct serve *s, struct req *rq, const char *id, const char *action)
{
	json_t *body = req_json(rq);
	if (!body)
		return;
	struct arena mem = ARENA_INIT;
	struct store_run_info ri;
	struct store *st = find_run(s, rq, id, &mem, &ri);
	if (!st)
		goto out;
	readers_put(s, st);
	const char *status = store_run_status_name(ri.status);
	if (!strcmp(action, "cancel")) {
		if (ri.status != STORE_RUN_RUNNING) {
			reply_error(rq, 409, "run %s is %s, not running", ri.run_id, status);
			goto out;
		}
		/* SIGUSR1: the run stops as with SIGTERM, and records itself
		 * cancelled (SIGTERM would leave it interrupted: resumable). */
		int r = runner_signal_owner(s, &ri, SIGUSR1);
		if (r == -EREMOTE)
			reply_error(rq, 409, "run %s is driven on host %s: cancel it there", ri.run_id,
				    ri.lease.host);
		else if (r < 0)
			reply_error(rq, 409, "run %s: its dagrun cannot be signalled: %s", ri.run_id,
				    strerror(-r));
		else {
			serve_log(s, "cancel: SIGUSR1 to pid %lld, which drives run %s",
				  (long long)ri.lease.pid, ri.run_id);
			reply_json(rq, 202, json_pack("{s:s, s:s}", "id", ri.run_id, "status",
						      "cancelling"));
		}
		goto out;
	}
	bool rerun = !strcmp(action, "rerun");
	if (ri.replay_of) {
		reply_error(rq, 409, "run %s is a live replay of %s: it cannot be continued "
			    "(its other tasks would run for real)", ri.run_id, ri.replay_of);
		goto out;
	}
	if (!rerun && ri.status != STORE_RUN_INTERRUPTED) {
		reply_error(rq, 409, "run %s is %s: only an interrupted run is resumed", ri.run_id,
			    status);
		goto out;
	}
	if (rerun && ri.status == STORE_RUN_RUNNING) {
		reply_error(rq, 409, "run %s is still running", ri.run_id);
		goto out;
	}
	struct start_req sr = {.kind = rerun ? CHILD_RERUN : CHILD_RESUME, .run_id = ri.run_id,
			       .workflow = ri.workflow, .vars = json_object_get(body, "variables"),
			       .rerun = body, .prev_attempt = ri.run_attempt};
	unsigned code = 500;
	json_t *o = runner_start_and_wait(s, &sr, &code);
	reply_json(rq, code, o);
out:
	json_decref(body);
	arena_free(&mem);
}

/* ---- statistics ------------------------------------------------------------------------ */

static json_t *pcts(uint64_t *v, size_t n)
{
	if (!n)
		return json_null();
	uint64_t p50 = 0, p95 = 0;
	report_sort_u64(v, n);
	report_percentile(v, n, 50, &p50);
	report_percentile(v, n, 95, &p95);
	return json_pack("{s:I, s:I, s:I, s:i}", "p50Ms", (json_int_t)p50, "p95Ms",
			 (json_int_t)p95, "maxMs", (json_int_t)v[n - 1], "count", (int)n);
}

void api_stats(struct serve *s, struct req *rq)
{
	const char *wf = req_arg(rq, "workflow");
	struct store_run_filter f = {wf && *wf ? wf : NULL, -1, 200};
	char *err = NULL;
	struct store *st = readers_get_or_503(s, rq);
	if (!st)
		return;
	struct arena mem = ARENA_INIT;
	struct store_run_info *v = NULL;
	size_t n = 0;
	int r = st->ops->list_runs(st, &f, &mem, &v, &n, &err);
	uint64_t *dur = calloc(n ? n : 1, sizeof(*dur));
	size_t nd = 0;
	json_t *by = json_object(), *tasks = json_object();
	for (size_t i = 0; r == 0 && i < n; i++) {
		serve_run_settle(&v[i]);
		const char *sn = store_run_status_name(v[i].status);
		json_object_set_new(by, sn, json_integer(json_integer_value(json_object_get(by, sn)) + 1));
		if (v[i].status == STORE_RUN_COMPLETED && v[i].end_ms >= v[i].start_ms)
			dur[nd++] = v[i].end_ms - v[i].start_ms;
		if (!f.workflow || i >= 20)
			continue;
		/* Per task, over the 20 newest runs of the workflow. */
		struct store_task_info *t = NULL;
		size_t nt = 0;
		if (st->ops->tasks(st, v[i].key, &mem, &t, &nt, &err) < 0)
			continue;
		for (size_t k = 0; k < nt; k++) {
			json_t *e = json_object_get(tasks, t[k].id);
			if (!e) {
				e = json_pack("{s:[], s:i}", "durations", "failures", 0);
				json_object_set_new(tasks, t[k].id, e);
			}
			if (t[k].status == STORE_TASK_COMPLETED && t[k].end_ms)
				json_array_append_new(json_object_get(e, "durations"),
						      json_integer((json_int_t)t[k].duration_ms));
			if (t[k].status == STORE_TASK_FAILED)
				json_object_set_new(e, "failures", json_integer(
					json_integer_value(json_object_get(e, "failures")) + 1));
		}
	}
	readers_put(s, st);
	if (r < 0) {
		reply_error(rq, 500, "%s", err ? err : strerror(-r));
		json_decref(by);
		json_decref(tasks);
	} else {
		json_t *ta = json_array();
		const char *k;
		json_t *e;
		json_object_foreach(tasks, k, e) {
			json_t *d = json_object_get(e, "durations");
			size_t m = json_array_size(d);
			uint64_t *x = calloc(m ? m : 1, sizeof(*x));
			for (size_t i = 0; x && i < m; i++)
				x[i] = (uint64_t)json_integer_value(json_array_get(d, i));
			json_array_append_new(ta, json_pack("{s:o, s:o, s:O}", "id", jstr(k),
				"durationMs", x ? pcts(x, m) : json_null(), "failures",
				json_object_get(e, "failures")));
			free(x);
		}
		json_decref(tasks);
		reply_json(rq, 200, json_pack("{s:o, s:i, s:o, s:o, s:o}", "workflow", jstr(f.workflow),
					      "runs", (int)n, "byStatus", by, "durationMs",
					      pcts(dur, nd), "tasks", ta));
	}
	free(dur);
	free(err);
	arena_free(&mem);
}
