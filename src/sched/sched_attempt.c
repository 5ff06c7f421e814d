/* sched_attempt.c: a task's attempts: starting one on its kind's executor
 * (rendered output file, masked output streams), its end (the result
 * recorded, the ATTEMPT_END event with the kind's extensions), retries
 * with backoff on a loop timer. See sched.c for the state machine.
 *
 * Invariant: an attempt's end goes through sched_settle() or a retry,
 * never both; a slot's timer is closed before the slot is freed.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "graph/graph.h"
#include "expr/redact.h"
#include "sched/backoff.h"
#include "sched/flow.h"
#include "sched/sched_int.h"
#include "util/clock.h"

/* ---- attempts ------------------------------------------------------------ */

static void attempt_done(struct exec_attempt *a, struct exec_result *r);

static void emit_output(struct slot *sl, int stream, const char *data, size_t len)
{
	if (!len)
		return;
	dagrun_event ev;
	sched_ev_init(sl->s, &ev, DAGRUN_EV_OUTPUT, sl->a.task);
	ev.level = DAGRUN_DEBUG;
	ev.stream = stream;
	ev.data = data;
	ev.len = len;
	sched_emit(sl->s, &ev);
}

/* A chunk of output: through the secret-masking stream when there is one
 * (it may hold back the end of a chunk until the next). */
static void attempt_output(struct exec_attempt *a, enum exec_stream stream,
			   const char *data, size_t len)
{
	struct slot *sl = a->owner;
	struct redact_stream *rs = sl->rs[stream == EXEC_STDERR];
	sl->fed[stream == EXEC_STDERR] += len;
	if (!rs) {
		emit_output(sl, stream, data, len);
		return;
	}
	struct buf b = BUF_INIT;
	if (redact_stream_feed(rs, data, len, &b) == 0)
		emit_output(sl, stream, b.data, b.len);
	buf_free(&b);
}

/* Emits what the masking streams still hold, at the end of an attempt. A
 * stream that was not given every byte the result counts (a body stopped
 * at its size limit) was cut: a piece of a secret at its end is masked. */
static void flush_output(struct slot *sl, const struct exec_result *r)
{
	for (int i = 0; i < 2; i++) {
		if (!sl->rs[i])
			continue;
		struct buf b = BUF_INIT;
		bool cut = (i ? r->err_bytes : r->out_bytes) > sl->fed[i];
		if ((cut ? redact_stream_flush_cut(sl->rs[i], &b)
			 : redact_stream_flush(sl->rs[i], &b)) == 0)
			emit_output(sl, i ? EXEC_STDERR : EXEC_STDOUT, b.data, b.len);
		buf_free(&b);
	}
}

/* An event of a task the attempt runs itself (a sub-run's), forwarded:
 * masked and delivered like our own. */
static void attempt_event(struct exec_attempt *a, const dagrun_event *ev)
{
	struct slot *sl = a->owner;
	dagrun_event c = *ev;
	sched_emit(sl->s, &c);
}

static int attempt_render(struct exec_attempt *a, const struct dr_text *t,
			  enum exec_render_mode mode, struct buf *out, char **err)
{
	struct slot *sl = a->owner;
	return flow_render(sl->s->flow, a->task, t, mode, a->context, a->n_context, out, err);
}

static int classify_errno(int err)
{
	switch (-err) {
	case EAGAIN: case ENOMEM: case EMFILE: case ENFILE:
		return DR_CLASS_RESOURCE;
	default:
		return DR_CLASS_PERMANENT;
	}
}

static char *output_path(struct sched *s, uint32_t t, uint32_t attempt)
{
	if (!s->tmpdir)
		return NULL;
	return buf_strf("%s/%s%u.%u.out", s->tmpdir, s->out_prefix ? s->out_prefix : "", t,
			attempt);
}

void sched_start_attempt(struct sched *s, uint32_t t)
{
	struct tstate *st = &s->ts[t];
	struct slot *sl = st->slot;
	if (!sl) {
		sl = calloc(1, sizeof(*sl));
		if (!sl) {
			sched_set_error(s, -ENOMEM);
			return;
		}
		sl->s = s;
		st->slot = sl;
	}
	int old = st->status;
	st->status = DAGRUN_RUNNING;
	st->attempts++;
	s->running++;
	sched_pools_take(s, t, -1);
	sched_emit_status(s, t, old, NULL, NULL);

	uint32_t no = sched_attempt_no(s, t);
	free(sl->output_file);
	sl->output_file = output_path(s, t, no);
	sl->a = (struct exec_attempt){
		.wf = s->wf, .task = t, .attempt = no, .run_id = s->run_id,
		.output_file = sl->output_file, .on_output = attempt_output,
		.on_event = attempt_event, .on_done = attempt_done, .render = s->flow ? attempt_render : NULL,
		.redactor = flow_redactor(s->flow), .owner = sl,
	};
	for (int i = 0; i < 2; i++) {
		if (!sl->rs[i])
			sl->rs[i] = flow_stream_new(s->flow);
		sl->fed[i] = 0;
	}
	unsigned kind = s->wf->tasks[t].kind;
	sl->a.variant = kind < s->wf->n_kinds ? s->wf->kinds[kind]->variant : 0;
	struct executor *ex = s->exec[kind];
	int r = ex ? ex->ops->start(ex, &sl->a) : -ENOTSUP;
	/* After start(), which never calls back: the event carries the
	 * process it started (what resume looks for after a crash). */
	dagrun_event ev;
	sched_ev_init(s, &ev, DAGRUN_EV_ATTEMPT_START, t);
	ev.ready_ms = st->ready_ms;
	if (r == 0 && sl->a.pid > 0) {
		ev.pid = ev.pgid = sl->a.pid;
		ev.pid_start = sl->a.pid_start;
	}
	sched_emit(s, &ev);
	if (r < 0) {
		struct exec_result res;
		memset(&res, 0, sizeof(res));
		res.error_class = (uint8_t)classify_errno(r);
		res.exit_code = -1;
		res.start_ms = res.end_ms = clock_wall_ms();
		char msg[256];
		snprintf(msg, sizeof(msg), "cannot start: %s", strerror(-r));
		res.error = msg;
		attempt_done(&sl->a, &res);
	}
}

/* The last TAIL_BYTES of stderr, starting at a line boundary, into tail
 * (NULs and all). From the real end: the capture when it holds all of
 * stderr, else the end the process capture kept apart (err_tail). Masked
 * as it reads in the whole text it is cut from, so a secret the cut goes
 * through is masked; where bytes were lost beyond that text (before the
 * kept end, after a capped capture), so is a piece of a secret at that
 * edge. On failure, tail stays empty. */
static void stderr_tail(struct sched *s, const struct exec_result *r, struct buf *tail)
{
	bool past_cap = r->err_bytes > r->err.len && r->err_tail.len;
	const struct buf *src = past_cap ? &r->err_tail : &r->err;
	if (!src->len)
		return;
	const char *p = src->data;
	size_t len = src->len, start = 0;
	if (len > TAIL_BYTES) {
		start = len - TAIL_BYTES;
		const char *nl = memchr(p + start, '\n', TAIL_BYTES);
		if (nl && (size_t)(nl - p) < len - 1)
			start = (size_t)(nl + 1 - p);
	}
	int cut = past_cap ? (r->err_bytes > len ? REDACT_CUT_HEAD : 0)
		  : r->err_bytes > len ? REDACT_CUT_TAIL : 0;
	int e = s->flow ? flow_redact_slice(s->flow, p, len, start, len, cut, tail)
			: buf_add(tail, p + start, len - start);
	if (e < 0)
		buf_free(tail);
}

static void retry_fire(uv_timer_t *h);

static bool should_retry(struct sched *s, uint32_t t, const struct exec_result *r)
{
	const struct dr_retry *rc = &s->wf->tasks[t].opts->retry;
	return !s->interrupted && !r->cancelled && s->ts[t].attempts < rc->max_attempts &&
	       r->error_class < 8 && (rc->retry_on & (1u << r->error_class));
}

static void schedule_retry(struct sched *s, uint32_t t, const struct exec_result *r)
{
	struct tstate *st = &s->ts[t];
	struct slot *sl = st->slot;
	const struct dr_retry *rc = &s->wf->tasks[t].opts->retry;
	uint64_t delay = backoff_delay(rc, st->attempts, sl->prev_delay, &s->rng);
	if (r->retry_after_ms > delay)
		delay = r->retry_after_ms < RETRY_AFTER_CAP_MS ? r->retry_after_ms : RETRY_AFTER_CAP_MS;
	sl->prev_delay = delay;
	int old = st->status;
	st->status = DAGRUN_RETRYING;
	sched_emit_status(s, t, old, r->error, NULL);
	dagrun_event ev;
	sched_ev_init(s, &ev, DAGRUN_EV_RETRY, t);
	ev.delay_ms = delay;
	ev.error_class = r->error_class;
	ev.error = r->error;
	ev.level = DAGRUN_WARN;
	sched_emit(s, &ev);
	if (!sl->timer_init) {
		uv_timer_init(s->loop, &sl->timer);
		sl->timer.data = sl;
	}
	sl->timer_init = true;
	s->retrying++;
	uv_timer_start(&sl->timer, retry_fire, delay, 0);
}

static void attempt_end_event(struct sched *s, uint32_t t, const struct exec_result *r)
{
	dagrun_event ev;
	sched_ev_init(s, &ev, DAGRUN_EV_ATTEMPT_END, t);
	ev.status = r->ok ? DAGRUN_COMPLETED : r->cancelled ? DAGRUN_CANCELLED : DAGRUN_FAILED;
	ev.error_class = r->ok ? DR_CLASS_NONE : r->error_class;
	ev.error = r->error;
	ev.exit_code = r->exit_code;
	ev.signal = r->term_signal;
	ev.timed_out = r->timed_out;
	ev.start_ms = r->start_ms;
	ev.end_ms = r->end_ms;
	ev.duration_ms = r->duration_ms;
	ev.cpu_user_ms = r->cpu_user_ms;
	ev.cpu_sys_ms = r->cpu_sys_ms;
	ev.max_rss_kb = r->max_rss_kb;
	ev.ext = r->ext ? r->ext->pub : NULL;   /* the kind's own, masked at the source */
	ev.out_bytes = r->out_bytes;
	ev.err_bytes = r->err_bytes;
	ev.out_dropped = r->out_dropped;
	ev.err_dropped = r->err_dropped;
	if (!r->ok)
		ev.level = r->cancelled ? DAGRUN_WARN : DAGRUN_ERR;
	sched_emit(s, &ev);
}


/* Whether this is t's first attempt, so a warning is said once. */
static bool st_first_warning(const struct sched *s, uint32_t t)
{
	return s->ts[t].attempts == 1;
}

static void attempt_done(struct exec_attempt *a, struct exec_result *r)
{
	struct slot *sl = a->owner;
	struct sched *s = sl->s;
	uint32_t t = a->task;
	s->running--;
	sched_pools_take(s, t, +1);
	flush_output(sl, r);
	if (r->warning && st_first_warning(s, t)) {
		dagrun_event ev;
		sched_ev_init(s, &ev, DAGRUN_EV_LOG, t);
		ev.level = DAGRUN_WARN;
		char msg[300];
		snprintf(msg, sizeof(msg), "task '%.100s': %s", wf_task_id(s->wf, t), r->warning);
		ev.message = msg;
		sched_emit(s, &ev);
	}
	attempt_end_event(s, t, r);
	if (r->ok) {
		sched_settle(s, t, DAGRUN_COMPLETED, DR_CLASS_NONE, NULL, NULL, r);
	} else if (r->cancelled || s->interrupted) {
		sched_settle(s, t, DAGRUN_CANCELLED, DR_CLASS_NONE,
		             r->error ? r->error : "cancelled", NULL, r);
	} else if (should_retry(s, t, r)) {
		schedule_retry(s, t, r);
	} else {
		struct buf tail = BUF_INIT;
		stderr_tail(s, r, &tail);
		sched_settle(s, t, DAGRUN_FAILED, r->error_class ? r->error_class : DR_CLASS_TRANSIENT,
		             r->error, &tail, r);
		buf_free(&tail);
	}
	sched_after_change(s);
}

void sched_retry_closed(uv_handle_t *h)
{
	struct slot *sl = h->data;
	struct sched *s = sl->s;
	uint32_t t = sl->a.task;
	sl->timer_init = false;
	if (s->ts[t].status != DAGRUN_RETRYING && s->ts[t].status != DAGRUN_RUNNING)
		sched_free_slot(s, t);
}

static void retry_fire(uv_timer_t *h)
{
	struct slot *sl = h->data;
	struct sched *s = sl->s;
	s->retrying--;
	uv_timer_stop(h);
	sched_make_ready(s, sl->a.task);
	sched_after_change(s);
}
