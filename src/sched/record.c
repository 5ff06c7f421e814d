/* record.c: a run recorded in the state store; see record.h for the
 * invariants.
 *
 * Events map to records one to one (docs/architecture.md): TASK_STATUS to
 * task_status, ATTEMPT_START to attempt_start (with the process the
 * executor started and when the attempt became ready), OUTPUT to output,
 * ATTEMPT_END to attempt_end. An attempt's end is held back until the
 * status event that follows it in the same turn of the loop (the task's
 * final status, or retrying), so that it is recorded with the task's
 * result, which flow has by then. RUN_START,
 * RETRY, LOG and RUN_END record nothing: the run's row is written before it
 * starts and its end by record_finish(), before the end is reported.
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

/* ---- answers from the writer thread ------------------------------------------ */

void record_on_store_error(void *ud, int code, const char *msg)
{
	struct record *r = ud;
	pthread_mutex_lock(&r->mu);
	if (!r->msg)
		r->msg = strdup(msg ? msg : "the state store failed");
	pthread_mutex_unlock(&r->mu);
	int zero = 0;
	atomic_compare_exchange_strong(&r->failed, &zero, code < 0 ? code : -EIO);
	uv_async_send(&r->async);
}

static void on_barrier(void *ud, int status)
{
	struct record *r = ud;
	atomic_store(&r->barrier_status, status);
	atomic_store(&r->barrier_done, 1);
	uv_async_send(&r->async);
}

/* The store's failure message (malloc'd). */
static char *failure_msg(struct record *r, int code)
{
	pthread_mutex_lock(&r->mu);
	char *m = r->msg ? strdup(r->msg) : NULL;
	pthread_mutex_unlock(&r->mu);
	if (!m && r->st) {
		char *lm = NULL;
		if (r->st->ops->last_error(r->st, &lm) && lm)
			m = lm;
		else
			free(lm);
	}
	if (!m && asprintf(&m, "the state store failed: %s", strerror(-code)) < 0)
		m = NULL;
	return m;
}

/* Stops the run because the store failed: says why, once. */
static void stop(struct record *r, int code)
{
	if (r->stopped)
		return;
	r->stopped = true;
	char *m = failure_msg(r, code);
	char *line = NULL;
	if (asprintf(&line, "cannot record the run (%s): stopping its tasks; `dagrun resume %s` "
		     "continues it once the state store works again", m ? m : strerror(-code),
		     r->run_id) < 0)
		line = NULL;
	sched_log(r->s, SCHED_NONE, DAGRUN_ERR,
		  line ? line : "cannot record the run: stopping its tasks");
	free(line);
	pthread_mutex_lock(&r->mu);
	if (!r->msg) {
		r->msg = m;
		m = NULL;
	}
	pthread_mutex_unlock(&r->mu);
	free(m);
	sched_fail(r->s, code);
}

void record_on_async(uv_async_t *h)
{
	struct record *r = h->data;
	if (atomic_exchange(&r->barrier_done, 0)) {
		uv_unref((uv_handle_t *)h);
		int status = atomic_load(&r->barrier_status);
		if (r->live) {
			if (status < 0)
				stop(r, status);
			else
				sched_gate_open(r->s, 0);
		}
	}
	int code = atomic_load(&r->failed);
	if (!code)
		code = r->local_err;
	if (code && r->live)
		stop(r, code);
}

/* A record the store refused: the run stops (from the loop, not from
 * inside the event being delivered). */
static void check(struct record *r, int rc)
{
	if (rc < 0 && !r->local_err) {
		r->local_err = rc;
		uv_async_send(&r->async);
	}
}

/* ---- the observer ------------------------------------------------------------ */

static const char *stash_str(struct record *r, const char *s)
{
	if (!s)
		return NULL;
	size_t at = r->stash.text.len;
	if (buf_add(&r->stash.text, s, strlen(s) + 1) < 0)
		return NULL;
	return (const char *)(uintptr_t)(at + 1);   /* an offset until fixed */
}

static const char *unstash(struct record *r, const char *off)
{
	return off ? r->stash.text.data + ((uintptr_t)off - 1) : NULL;
}

static void stash_end(struct record *r, const dagrun_event *ev)
{
	struct stash *k = &r->stash;
	struct store_attempt_end *e = &k->e;
	buf_reset(&k->text);
	memset(e, 0, sizeof(*e));
	e->task = ev->task_index;
	e->attempt = ev->attempt;
	e->flags = (ev->status == DAGRUN_COMPLETED ? STORE_ATTEMPT_OK : 0) |
		   (ev->timed_out ? STORE_ATTEMPT_TIMED_OUT : 0) |
		   (ev->status == DAGRUN_CANCELLED ? STORE_ATTEMPT_CANCELLED : 0);
	e->start_ms = ev->start_ms;
	e->end_ms = ev->end_ms;
	e->duration_ms = ev->duration_ms;
	e->exit_code = ev->exit_code;
	e->signal = ev->signal;
	e->error_class = ev->error_class;
	e->error = stash_str(r, ev->error);
	e->cpu_user_ms = ev->cpu_user_ms;
	e->cpu_sys_ms = ev->cpu_sys_ms;
	e->max_rss_kb = ev->max_rss_kb;
	/* what the task's kind adds: its extensions (the store keeps those
	 * it has columns for; -1: no usage reported) */
	const dagrun_ext_http *h = (const void *)dagrun_ext_find(ev->ext, DAGRUN_EXT_HTTP);
	const dagrun_ext_ai *ai = (const void *)dagrun_ext_find(ev->ext, DAGRUN_EXT_AI);
	if (h) {
		e->http_status = h->status;
		e->http_queue_us = h->queue_us;
		e->http_dns_us = h->dns_us;
		e->http_connect_us = h->connect_us;
		e->http_tls_us = h->tls_us;
		e->http_first_byte_us = h->first_byte_us;
		e->http_total_us = h->total_us;
		e->http_redirects = h->redirects;
	}
	e->prompt_tokens = e->completion_tokens = -1;
	if (ai) {
		e->model = stash_str(r, ai->model);
		e->finish_reason = stash_str(r, ai->finish_reason);
		e->prompt_sha256 = stash_str(r, ai->prompt_sha256);
		e->prompt_tokens = ai->prompt_tokens;
		e->completion_tokens = ai->completion_tokens;
		e->prompt_bytes = ai->prompt_bytes;
		e->context_cut_bytes = ai->context_cut_bytes;
	}
	/* what replay needs (the recorder's, engine/io.c; masked) */
	const dagrun_ext_io *io = (const void *)dagrun_ext_find(ev->ext, DAGRUN_EXT_IO);
	if (io) {
		e->inputs_json = stash_str(r, io->inputs);
		e->io_results_json = stash_str(r, io->results);
		if (io->replayed)
			e->flags |= STORE_ATTEMPT_REPLAYED;
	}
	/* the cache's decision (engine/cache.c): a hit is marked; an attempt
	 * that ran and completed under a key becomes its entry */
	const dagrun_ext_cache *c = (const void *)dagrun_ext_find(ev->ext, DAGRUN_EXT_CACHE);
	if (c && c->hit)
		e->flags |= STORE_ATTEMPT_CACHED;
	else if (c && c->key)
		e->flags |= STORE_ATTEMPT_CACHE_MISS;
	if (c && !c->hit && c->key && ev->status == DAGRUN_COMPLETED) {
		e->cache_key = stash_str(r, c->key);
		e->cache_parts = stash_str(r, c->parts);
		e->cache_task_id = stash_str(r, ev->task);
	}
	e->out_bytes = ev->out_bytes;
	e->err_bytes = ev->err_bytes;
	e->out_dropped = ev->out_dropped;
	e->err_dropped = ev->err_dropped;
	k->full = true;
}

static bool final_status(int st)
{
	return st == DAGRUN_COMPLETED || st == DAGRUN_FAILED || st == DAGRUN_SKIPPED ||
	       st == DAGRUN_CANCELLED;
}

/* Records the held attempt end; with the task's status event that follows
 * it (final: with the task's result) and its record t, which the store
 * commits with the end, atomically. */
static void flush_end(struct record *r, const dagrun_event *status,
		      const struct store_task_status_rec *t)
{
	struct stash *k = &r->stash;
	if (!k->full)
		return;
	k->full = false;
	struct store_attempt_end e = k->e;
	e.error = unstash(r, e.error);
	e.model = unstash(r, e.model);
	e.finish_reason = unstash(r, e.finish_reason);
	e.prompt_sha256 = unstash(r, e.prompt_sha256);
	e.inputs_json = unstash(r, e.inputs_json);
	e.io_results_json = unstash(r, e.io_results_json);
	e.cache_key = unstash(r, e.cache_key);
	e.cache_parts = unstash(r, e.cache_parts);
	e.cache_task_id = unstash(r, e.cache_task_id);
	buf_reset(&r->result);
	if (status && final_status(status->status) &&
	    flow_result_json(r->f, e.task, &r->result) == 0 && r->result.len) {
		e.result_json = r->result.data;
		e.result_len = r->result.len;
	}
	e.status = t;
	check(r, store_attempt_end(r->st, r->key, &e));
}

void record_observe(void *ud, const dagrun_event *ev)
{
	struct record *r = ud;
	/* A sub-run's task (a `workflow` task's) has no row of its own: the
	 * store records the workflow task, whose result holds its outputs. */
	if (ev->depth)
		return;
	switch (ev->type) {
	case DAGRUN_EV_ATTEMPT_START: {
		flush_end(r, NULL, NULL);
		struct store_attempt_start a = {
			.task = ev->task_index, .attempt = ev->attempt, .start_ms = ev->ts_ms,
			.ready_ms = ev->ready_ms,
			.pid = ev->pid, .pgid = ev->pgid, .pid_start = ev->pid_start,
		};
		check(r, store_attempt_start(r->st, r->key, &a));
		break;
	}
	case DAGRUN_EV_OUTPUT:
		if (ev->len)
			check(r, store_output(r->st, r->key, ev->task_index, ev->attempt,
					      ev->stream == 2 ? STORE_STDERR : STORE_STDOUT,
					      ev->data, ev->len));
		break;
	case DAGRUN_EV_ATTEMPT_END:
		flush_end(r, NULL, NULL);
		stash_end(r, ev);
		break;
	case DAGRUN_EV_TASK_STATUS: {
		/* Running: its attempt's start (next) says so. */
		if (ev->status == DAGRUN_RUNNING)
			break;
		struct store_task_status_rec t = {
			.task = ev->task_index, .status = ev->status,
			.error_class = final_status(ev->status) || ev->status == DAGRUN_RETRYING ?
				       ev->error_class : 0,
			.error = ev->error,
		};
		/* The end of the task's attempt and the status it leads to:
		 * one record, so that no crash can keep one without the other. */
		if (r->stash.full && r->stash.e.task == ev->task_index) {
			flush_end(r, ev, &t);
			break;
		}
		flush_end(r, NULL, NULL);
		check(r, store_task_status(r->st, r->key, &t));
		break;
	}
	default:
		break;
	}
}

/* ---- the gate ------------------------------------------------------------------ */

static int barrier_now(struct record *r)
{
	int rc = store_barrier(r->st, on_barrier, r);
	if (rc == 0)
		uv_ref((uv_handle_t *)&r->async);   /* the answer keeps the loop */
	return rc;
}

static void on_group(uv_timer_t *h)
{
	struct record *r = h->data;
	int rc = barrier_now(r);
	if (rc < 0 && r->live)
		stop(r, rc);
}

/* Urgent: a barrier now, which the writer commits at once. Else in
 * GATE_GROUP_MS, unless hurried: a busy run asks once per group of tasks,
 * and the store commits once per request. */
int record_gate_request(void *ud, bool urgent)
{
	struct record *r = ud;
	flush_end(r, NULL, NULL);
	if (urgent)
		return barrier_now(r);
	return uv_timer_start(&r->group, on_group, GATE_GROUP_MS, 0);
}

void record_gate_hurry(void *ud)
{
	struct record *r = ud;
	if (!uv_is_active((uv_handle_t *)&r->group))
		return;   /* the barrier is already asked for */
	uv_timer_stop(&r->group);
	on_group(&r->group);
}

int record_lock_fd(const struct record *r)
{
	return r ? r->lock_fd : -1;
}

char *record_summary(const struct record *r)
{
	return r && r->summary ? strdup(r->summary) : NULL;
}

struct waiter {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool done;
};

static void on_final_barrier(void *ud, int status)
{
	(void)status;
	struct waiter *w = ud;
	pthread_mutex_lock(&w->mu);
	w->done = true;
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
}

/* Says how much output the log files did not get (the log cap, or output
 * faster than the disk took it), once everything is written: counted in
 * the attempts' records, and said here, never dropped silently. */
static void warn_cut(struct record *r)
{
	struct waiter w = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false};
	if (store_barrier(r->st, on_final_barrier, &w) == 0) {
		pthread_mutex_lock(&w.mu);
		while (!w.done)
			pthread_cond_wait(&w.cv, &w.mu);
		pthread_mutex_unlock(&w.mu);
	}
	struct store_stats st;
	r->st->ops->stats(r->st, &st);
	if (getenv("DAGRUN_STORE_STATS"))
		fprintf(stderr, "store: %llu records, %llu transactions, writer %.3f s CPU, %llu busy\n",
			(unsigned long long)st.records, (unsigned long long)st.transactions,
			st.writer_cpu_ns / 1e9, (unsigned long long)st.busy_retries);
	if (!st.log_cut_bytes)
		return;
	char *m = NULL;
	if (asprintf(&m, "%llu bytes of the tasks' output are not in the state directory's log "
		     "files (past --log-cap, or written faster than the disk took them); each "
		     "attempt's record says how many of its own", (unsigned long long)st.log_cut_bytes) < 0)
		return;
	sched_log(r->s, SCHED_NONE, DAGRUN_WARN, m);
	free(m);
}

int record_finish(struct record *r, int outcome, char **err)
{
	if (!r || !r->st)
		return 0;
	r->live = false;
	flush_end(r, NULL, NULL);
	warn_cut(r);
	int rc = 0;
	bool over = outcome == 0 || outcome == 1 || outcome == RECORD_CANCELLED;
	if (over)
		rc = r->st->ops->run_end(r->st, r->key, outcome == RECORD_CANCELLED ? STORE_RUN_CANCELLED
					 : outcome ? STORE_RUN_FAILED : STORE_RUN_COMPLETED,
					 clock_wall_ms(), NULL);
	int code = atomic_load(&r->failed);
	int cl = store_close(r->st);
	r->st = NULL;
	if (!rc)
		rc = cl;
	if (!rc)
		rc = code;
	if (rc < 0) {
		char *m = failure_msg(r, rc);
		record_fail(err, rc, "%s", m ? m : strerror(-rc));
		free(m);
		return rc;
	}
	/* Over: nobody continues it (a rerun takes the lock anew). */
	if (over && r->lock_path)
		unlink(r->lock_path);
	return 0;
}

void record_detach(struct record *r)
{
	if (!r || r->detached)
		return;
	r->detached = true;
	r->live = false;
	if (r->async_init)
		uv_close((uv_handle_t *)&r->async, NULL);
	if (r->group_init)
		uv_close((uv_handle_t *)&r->group, NULL);
}

void record_free(struct record *r)
{
	if (!r)
		return;
	store_close(r->st);
	cont_free(r->cont);
	if (r->lock_fd >= 0)
		close(r->lock_fd);
	buf_free(&r->stash.text);
	buf_free(&r->result);
	pthread_mutex_destroy(&r->mu);
	free(r->msg);
	free(r->run_id);
	free(r->lock_path);
	free(r->summary);
	free(r);
}
