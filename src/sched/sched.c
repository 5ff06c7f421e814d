/* sched.c: the scheduler's state machine; see sched.h for its invariants.
 *
 * Life of a task: PENDING until its dependencies are final; then either
 * ready (in the heap) or settled at once (FAILED with class dependency when
 * a blocking dependency did not complete). Dispatch takes the best ready
 * task that fits the concurrency limit and its pools; an attempt ends in
 * COMPLETED, FAILED, CANCELLED or RETRYING (a loop timer, then ready again).
 * Tasks that become final are handled from an explicit worklist, so a long
 * chain of failures never recurses.
 */
#include "sched.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "graph/graph.h"
#include "expr/redact.h"
#include "sched/backoff.h"
#include "sched/flow.h"

#define RETRY_AFTER_CAP_MS (10ull * 60 * 1000)
#define TAIL_BYTES 2048

struct slot {
	struct exec_attempt a;
	struct sched *s;
	uv_timer_t timer;          /* backoff wait */
	bool timer_init;
	uint64_t prev_delay;
	char *output_file;
	struct redact_stream *rs[2];  /* stdout, stderr; NULL: no secrets */
	uint64_t fed[2];              /* bytes each stream was given */
};

static uint64_t wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void ev_init(struct sched *s, dagrun_event *ev, int type, uint32_t t)
{
	memset(ev, 0, sizeof(*ev));
	ev->type = type;
	ev->level = DAGRUN_INFO;
	ev->ts_ms = wall_ms();
	ev->run_id = s->run_id;
	ev->task_index = t;
	ev->exit_code = -1;
	if (t != SCHED_NONE) {
		ev->task = wf_task_id(s->wf, t);
		ev->status = s->ts[t].status;
		ev->attempt = s->ts[t].attempts;
	}
}

static void deliver(struct sched *s, const dagrun_event *ev)
{
	for (uint32_t i = 0; i < s->n_obs; i++)
		s->obs[i].fn(s->obs[i].ud, ev);
}

/* Masks secrets in one text field of an event copy, into b. */
static void mask(struct sched *s, const char **field, struct buf *b)
{
	if (!*field)
		return;
	if (flow_redact(s->flow, *field, strlen(*field), b) < 0)
		*field = "[redaction failed: text withheld]";
	else
		*field = b->data ? b->data : "";
}

void sched_emit(struct sched *s, dagrun_event *ev)
{
	if (!flow_redacting(s->flow) || ev->type == DAGRUN_EV_OUTPUT) {
		deliver(s, ev);  /* output chunks are masked by their stream */
		return;
	}
	dagrun_event c = *ev;
	struct buf b1 = BUF_INIT, b2 = BUF_INIT, b3 = BUF_INIT;
	mask(s, &c.error, &b1);
	mask(s, &c.message, &b2);
	if (c.data) {
		if (flow_redact(s->flow, c.data, c.len, &b3) < 0) {
			c.data = NULL;
			c.len = 0;
		} else {
			c.data = b3.data ? b3.data : "";
			c.len = b3.len;
		}
	}
	deliver(s, &c);
	buf_free(&b1);
	buf_free(&b2);
	buf_free(&b3);
}

static void set_error(struct sched *s, int err)
{
	if (!s->error)
		s->error = err;
}

/* ---- state changes ------------------------------------------------------ */

static void emit_status(struct sched *s, uint32_t t, int old, const char *error,
			const char *tail)
{
	dagrun_event ev;
	ev_init(s, &ev, DAGRUN_EV_TASK_STATUS, t);
	ev.old_status = old;
	ev.error_class = s->ts[t].error_class;
	ev.error = error;
	ev.data = tail;
	ev.len = tail ? strlen(tail) : 0;
	if (s->ts[t].status == DAGRUN_FAILED)
		ev.level = DAGRUN_ERR;
	sched_emit(s, &ev);
}

static void free_slot(struct sched *s, uint32_t t)
{
	struct slot *sl = s->ts[t].slot;
	if (!sl)
		return;
	s->ts[t].slot = NULL;
	if (sl->output_file) {
		if (unlink(sl->output_file) < 0 && errno == EISDIR)
			rmdir(sl->output_file);   /* a task made it a directory */
		free(sl->output_file);
	}
	flow_stream_free(sl->rs[0]);
	flow_stream_free(sl->rs[1]);
	/* The timer, if it was ever used, is closed before we get here. */
	free(sl);
}

static void retry_closed(uv_handle_t *h);

/* Frees t's slot, closing its backoff timer first if it has one. */
static void release_slot(struct sched *s, uint32_t t)
{
	struct slot *sl = s->ts[t].slot;
	if (!sl)
		return;
	if (!sl->timer_init)
		free_slot(s, t);
	else if (!uv_is_closing((uv_handle_t *)&sl->timer))
		uv_close((uv_handle_t *)&sl->timer, retry_closed);
}

/* Puts t, now final, on the worklist of tasks whose dependents to update. */
static void push_final(struct sched *s, uint32_t t)
{
	if (s->stack_n == s->stack_cap) {
		uint32_t cap = s->stack_cap ? s->stack_cap * 2 : 64;
		uint32_t *p = realloc(s->stack, cap * sizeof(*p));
		if (!p) {
			set_error(s, -ENOMEM);
			return;
		}
		s->stack = p;
		s->stack_cap = cap;
	}
	s->stack[s->stack_n++] = t;
}

/* Makes t final, with all the bookkeeping that goes with it: t leaves the
 * phase's count of tasks left (every task settled belongs to the phase
 * being run), a backoff timer it waited on is stopped and no longer
 * counted, its result is recorded, counted and announced, its slot
 * released; its dependents are updated from the worklist. The one way a
 * task becomes final in a run (pass_over() marks the hook list that does
 * not apply, which is not run). */
static void settle(struct sched *s, uint32_t t, int status, int cls,
		   const char *error, const char *tail, const struct exec_result *r)
{
	struct tstate *st = &s->ts[t];
	int old = st->status;
	s->phase_left--;
	if (old == DAGRUN_RETRYING && st->slot && st->slot->timer_init &&
	    uv_is_active((uv_handle_t *)&st->slot->timer)) {
		uv_timer_stop(&st->slot->timer);
		s->retrying--;
	}
	if (s->flow) {
		const struct slot *sl = st->slot;
		int e = flow_record(s->flow, t, status, st->attempts, r ? r->duration_ms : 0,
				    cls, error, r, sl ? sl->output_file : NULL);
		if (e < 0)
			set_error(s, e);
	}
	st->status = (uint8_t)status;
	st->error_class = (uint8_t)cls;
	s->counts[status]++;
	if (status == DAGRUN_FAILED) {
		s->any_failed = true;
		if (s->wf->tasks[t].hook == DR_HOOK_NONE)
			s->main_failed = true;
	}
	emit_status(s, t, old, error, tail);
	release_slot(s, t);
	push_final(s, t);
}

static void make_ready(struct sched *s, uint32_t t)
{
	if (readyq_push(&s->ready, t) < 0)
		set_error(s, -ENOMEM);
}

/* d's dependencies are all final: it fails at once when a blocking one did
 * not complete, else it is ready. */
static void resolve(struct sched *s, uint32_t d)
{
	uint32_t b = s->ts[d].blocked_by;
	char msg[256];
	if (b == SCHED_NONE && s->ts[d].skipped_by != SCHED_NONE) {
		snprintf(msg, sizeof(msg), "the condition on '%.200s' is false",
			 wf_task_id(s->wf, s->ts[d].skipped_by));
		settle(s, d, DAGRUN_SKIPPED, DR_CLASS_NONE, msg, NULL, NULL);
		return;
	}
	if (b == SCHED_NONE) {
		make_ready(s, d);
		return;
	}
	snprintf(msg, sizeof(msg), "dependency '%.200s' %s", wf_task_id(s->wf, b),
		 dagrun_status_name(s->ts[b].status));
	settle(s, d, DAGRUN_FAILED, DR_CLASS_DEPENDENCY, msg, NULL, NULL);
}

/* Evaluates the condition of d's dependency edge dep. False: d will be
 * skipped. An evaluation error fails d at once (class permanent) and
 * returns false; true otherwise. */
static bool condition_holds(struct sched *s, uint32_t d, const struct dr_dep *dep)
{
	struct tstate *st = &s->ts[d];
	bool ok = true;
	char *err = NULL;
	if (flow_condition(s->flow, dep, &ok, &err) < 0) {
		st->waiting--;
		if (st->active) {
			settle(s, d, DAGRUN_FAILED, DR_CLASS_PERMANENT, err, NULL, NULL);
		} else {
			st->blocked_by = dep->target;
		}
		free(err);
		return false;
	}
	if (!ok && st->skipped_by == SCHED_NONE)
		st->skipped_by = dep->target;
	return true;
}

/* A dependency of d became final; d is ready or settled when none is left. */
static void dep_final(struct sched *s, uint32_t d, uint32_t dep_task, const struct dr_dep *dep)
{
	struct tstate *st = &s->ts[d];
	int ds = s->ts[dep_task].status;
	if (dep->type == DR_DEP_BLOCKING && ds != DAGRUN_COMPLETED &&
	    st->blocked_by == SCHED_NONE)
		st->blocked_by = dep_task;
	if (dep->condition && s->flow && st->status == DAGRUN_PENDING && !s->interrupted &&
	    !condition_holds(s, d, dep))
		return;
	if (--st->waiting || !st->active || st->status != DAGRUN_PENDING)
		return;
	if (s->interrupted)
		return;
	resolve(s, d);
}

static void start_phase(struct sched *s, int hook);

/* Propagates every final task on the worklist to its dependents. */
static void drain_final(struct sched *s)
{
	const struct graph *g = s->wf->graph;
	while (s->stack_n) {
		uint32_t t = s->stack[--s->stack_n];
		for (uint32_t e = g->out_off[t]; e < g->out_off[t + 1]; e++)
			dep_final(s, g->out_task[e], t, &s->wf->deps[g->out_dep[e]]);
	}
}

/* ---- pools --------------------------------------------------------------- */

/* Skips stale entries at the top of pool p's wait heap; returns the live
 * top or NONE. */
static uint32_t pool_top(struct sched *s, uint32_t p)
{
	struct readyq *q = &s->pool_wait[p];
	while (!readyq_empty(q)) {
		uint32_t t = readyq_top(q);
		if (s->ts[t].in_pool_wait == p + 1)
			return t;
		readyq_pop(q);
	}
	return SCHED_NONE;
}

/* Whether t may take all its units now: each pool has them free and no
 * task ordered before t waits on it. Returns the first pool in the way, or
 * NONE when t may go. */
static uint32_t pool_blocker(struct sched *s, uint32_t t)
{
	const struct dr_task_opts *o = s->wf->tasks[t].opts;
	for (uint32_t i = 0; i < o->n_res; i++) {
		uint32_t p = o->res[i].pool;
		if (s->pool_avail[p] < o->res[i].units)
			return p;
		uint32_t w = pool_top(s, p);
		if (w != SCHED_NONE && w != t && readyq_before(&s->ready, w, t))
			return p;
	}
	return SCHED_NONE;
}

static void pools_take(struct sched *s, uint32_t t, int sign)
{
	const struct dr_task_opts *o = s->wf->tasks[t].opts;
	for (uint32_t i = 0; i < o->n_res; i++)
		s->pool_avail[o->res[i].pool] += (uint32_t)(sign * (int64_t)o->res[i].units);
}

static void pool_queue(struct sched *s, uint32_t t, uint32_t p)
{
	s->ts[t].in_pool_wait = p + 1;
	if (readyq_push(&s->pool_wait[p], t) < 0) {
		set_error(s, -ENOMEM);
		return;
	}
	if (!s->waited_pos[p]) {
		s->waited[s->n_waited++] = p;
		s->waited_pos[p] = s->n_waited;
	}
}

/* Drops waited[i] (its pool has no live waiter left); the last entry takes
 * its place. */
static void pool_unwaited(struct sched *s, uint32_t i)
{
	uint32_t p = s->waited[i], last = s->waited[--s->n_waited];
	s->waited[i] = last;
	s->waited_pos[last] = i + 1;
	s->waited_pos[p] = 0;
}

/* ---- attempts ------------------------------------------------------------ */

static void attempt_done(struct exec_attempt *a, struct exec_result *r);

static void emit_output(struct slot *sl, int stream, const char *data, size_t len)
{
	if (!len)
		return;
	dagrun_event ev;
	ev_init(sl->s, &ev, DAGRUN_EV_OUTPUT, sl->a.task);
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
	char *p = NULL;
	if (asprintf(&p, "%s/%s%u.%u.out", s->tmpdir, s->out_prefix ? s->out_prefix : "", t,
		     attempt) < 0)
		return NULL;
	return p;
}

static void start_attempt(struct sched *s, uint32_t t)
{
	struct tstate *st = &s->ts[t];
	struct slot *sl = st->slot;
	if (!sl) {
		sl = calloc(1, sizeof(*sl));
		if (!sl) {
			set_error(s, -ENOMEM);
			return;
		}
		sl->s = s;
		st->slot = sl;
	}
	int old = st->status;
	st->status = DAGRUN_RUNNING;
	st->attempts++;
	s->running++;
	pools_take(s, t, -1);
	emit_status(s, t, old, NULL, NULL);
	dagrun_event ev;
	ev_init(s, &ev, DAGRUN_EV_ATTEMPT_START, t);
	sched_emit(s, &ev);

	free(sl->output_file);
	sl->output_file = output_path(s, t, st->attempts);
	sl->a = (struct exec_attempt){
		.wf = s->wf, .task = t, .attempt = st->attempts, .run_id = s->run_id,
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
	if (r < 0) {
		struct exec_result res;
		memset(&res, 0, sizeof(res));
		res.error_class = (uint8_t)classify_errno(r);
		res.exit_code = -1;
		res.start_ms = res.end_ms = wall_ms();
		char msg[256];
		snprintf(msg, sizeof(msg), "cannot start: %s", strerror(-r));
		res.error = msg;
		attempt_done(&sl->a, &res);
	}
}

/* The last TAIL_BYTES of stderr, starting at a line boundary; malloc'd, or
 * NULL. Masked as it reads in the whole capture, so a secret the cut goes
 * through is masked; when the capture itself was cut at its cap, so is a
 * piece of a secret at its end. */
static char *stderr_tail(struct sched *s, const struct exec_result *r)
{
	if (!r->err.len)
		return NULL;
	const char *p = r->err.data;
	size_t len = r->err.len, start = 0;
	if (len > TAIL_BYTES) {
		start = len - TAIL_BYTES;
		const char *nl = memchr(p + start, '\n', TAIL_BYTES);
		if (nl && (size_t)(nl - p) < len - 1)
			start = (size_t)(nl + 1 - p);
	}
	int cut = r->err_bytes > r->err.len ? REDACT_CUT_TAIL : 0;
	struct buf b = BUF_INIT;
	int e = s->flow ? flow_redact_slice(s->flow, p, len, start, len, cut, &b)
			: buf_add(&b, p + start, len - start);
	if (e < 0) {
		buf_free(&b);
		return NULL;
	}
	char *tail = strndup(b.data ? b.data : "", b.len);
	buf_free(&b);
	return tail;
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
	emit_status(s, t, old, r->error, NULL);
	dagrun_event ev;
	ev_init(s, &ev, DAGRUN_EV_RETRY, t);
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
	ev_init(s, &ev, DAGRUN_EV_ATTEMPT_END, t);
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

static void dispatch(struct sched *s);
static void after_change(struct sched *s);

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
	pools_take(s, t, +1);
	flush_output(sl, r);
	if (r->warning && st_first_warning(s, t)) {
		dagrun_event ev;
		ev_init(s, &ev, DAGRUN_EV_LOG, t);
		ev.level = DAGRUN_WARN;
		char msg[300];
		snprintf(msg, sizeof(msg), "task '%.100s': %s", wf_task_id(s->wf, t), r->warning);
		ev.message = msg;
		sched_emit(s, &ev);
	}
	attempt_end_event(s, t, r);
	if (r->ok) {
		settle(s, t, DAGRUN_COMPLETED, DR_CLASS_NONE, NULL, NULL, r);
	} else if (r->cancelled || s->interrupted) {
		settle(s, t, DAGRUN_CANCELLED, DR_CLASS_NONE,
		       r->error ? r->error : "cancelled", NULL, r);
	} else if (should_retry(s, t, r)) {
		schedule_retry(s, t, r);
	} else {
		char *tail = stderr_tail(s, r);
		settle(s, t, DAGRUN_FAILED, r->error_class ? r->error_class : DR_CLASS_TRANSIENT,
		       r->error, tail, r);
		free(tail);
	}
	after_change(s);
}

static void retry_closed(uv_handle_t *h)
{
	struct slot *sl = h->data;
	struct sched *s = sl->s;
	uint32_t t = sl->a.task;
	sl->timer_init = false;
	if (s->ts[t].status != DAGRUN_RETRYING && s->ts[t].status != DAGRUN_RUNNING)
		free_slot(s, t);
}

static void retry_fire(uv_timer_t *h)
{
	struct slot *sl = h->data;
	struct sched *s = sl->s;
	s->retrying--;
	uv_timer_stop(h);
	make_ready(s, sl->a.task);
	after_change(s);
}

/* ---- dispatch and phases ------------------------------------------------- */

/* Evaluates t's `when` just before it would start: false settles it
 * skipped, an error failed (permanent). Returns whether t may start. */
static bool when_holds(struct sched *s, uint32_t t)
{
	if (!s->flow || !s->wf->tasks[t].opts->when)
		return true;
	bool ok = true;
	char *err = NULL;
	if (flow_when(s->flow, t, &ok, &err) < 0) {
		settle(s, t, DAGRUN_FAILED, DR_CLASS_PERMANENT, err, NULL, NULL);
		free(err);
		return false;
	}
	if (!ok) {
		settle(s, t, DAGRUN_SKIPPED, DR_CLASS_NONE, "'when' is false", NULL, NULL);
	}
	return ok;
}

/* Starts what may start: first tasks waiting on pools (they were ordered
 * before anything behind them), then the ready heap. */
static void dispatch_once(struct sched *s)
{
	const struct dagrun_workflow *wf = s->wf;
	/* Only pools someone waits on; a pool queued on during the pass is
	 * appended and visited in this pass too. */
	uint32_t i = 0;
	while (i < s->n_waited && s->running < s->max_parallel && !s->error) {
		uint32_t p = s->waited[i];
		uint32_t t = pool_top(s, p);
		if (t == SCHED_NONE) {
			pool_unwaited(s, i);  /* waited[i] is now an unvisited pool */
			continue;
		}
		uint32_t b = pool_blocker(s, t);
		if (b == p) {
			i++;
			continue;
		}
		readyq_pop(&s->pool_wait[p]);
		s->ts[t].in_pool_wait = 0;
		if (b != SCHED_NONE)
			pool_queue(s, t, b);  /* now it waits for another pool */
		else
			start_attempt(s, t);
	}
	while (s->running < s->max_parallel && !readyq_empty(&s->ready) && !s->error) {
		uint32_t t = readyq_pop(&s->ready);
		if (s->ts[t].status == DAGRUN_PENDING && !when_holds(s, t))
			continue;
		uint32_t b = wf->tasks[t].opts->n_res ? pool_blocker(s, t) : SCHED_NONE;
		if (b != SCHED_NONE)
			pool_queue(s, t, b);
		else
			start_attempt(s, t);
	}
}

/* The one path from "a task became final" to "what that frees has started".
 * Whatever made a task final (its attempt's end, `when`, a condition, a
 * failed or skipped dependency, an interruption) went through settle(),
 * which put it on the worklist. A pass releases the dependents of every
 * final task, then starts what may start; starting may settle more tasks
 * (`when` false or failing, a failed start), so the passes go on until one
 * leaves the worklist empty: no dependent is ever left ready with nothing
 * to start it. */
static void dispatch(struct sched *s)
{
	if (s->dispatching) {
		s->redispatch = true;
		return;
	}
	s->dispatching = true;
	do {
		s->redispatch = false;
		drain_final(s);
		if (!s->interrupted)
			dispatch_once(s);
	} while ((s->redispatch || s->stack_n) && !s->error);
	s->dispatching = false;
}

static bool phase_idle(const struct sched *s)
{
	return s->running == 0 && s->retrying == 0 && readyq_empty(&s->ready);
}

/* Settles what can no longer run in this phase (an unsatisfiable wait). */
static void settle_stuck(struct sched *s)
{
	const struct dagrun_workflow *wf = s->wf;
	uint32_t first = wf->hook_first[s->phase], n = wf->hook_count[s->phase];
	for (uint32_t t = first; t < first + n; t++) {
		struct tstate *st = &s->ts[t];
		if (st->active && (st->status == DAGRUN_PENDING || st->in_pool_wait)) {
			st->in_pool_wait = 0;
			if (s->interrupted)
				continue;  /* stays pending: the run is resumable */
			settle(s, t, DAGRUN_FAILED, DR_CLASS_DEPENDENCY,
			       "its dependencies can never be satisfied", NULL, NULL);
		}
	}
	s->phase_left = 0;   /* interrupted: what stays pending is not left to do */
	drain_final(s);
}

/* The hook list that does not apply to this run ends `skipped` without an
 * event and without being counted, so that onExit tasks depending on it
 * see a final status (a blocking dependency on it then fails them). */
static void pass_over(struct sched *s, int hook)
{
	const struct dagrun_workflow *wf = s->wf;
	uint32_t first = wf->hook_first[hook], n = wf->hook_count[hook];
	for (uint32_t t = first; t < first + n; t++) {
		s->ts[t].status = DAGRUN_SKIPPED;
		push_final(s, t);
	}
	drain_final(s);
}

static void after_change(struct sched *s)
{
	if (s->dispatching) {
		/* An attempt ended inside a dispatch pass (its start failed at
		 * once): that pass goes on, and its caller looks for the end of
		 * the phase once nothing more can start, not now, while tasks
		 * may still be waiting for the units just given back. */
		s->redispatch = true;
		return;
	}
	dispatch(s);
	while (phase_idle(s) && !s->error) {
		if (s->phase_left)
			settle_stuck(s);
		if (s->interrupted)
			return;
		/* Main tasks, then onSuccess or onFailure, then onExit. */
		int next;
		if (s->phase == DR_HOOK_NONE) {
			next = s->main_failed ? DR_HOOK_FAILURE : DR_HOOK_SUCCESS;
			pass_over(s, s->main_failed ? DR_HOOK_SUCCESS : DR_HOOK_FAILURE);
		} else if (s->phase == DR_HOOK_EXIT)
			return;
		else
			next = DR_HOOK_EXIT;
		start_phase(s, next);
		dispatch(s);
	}
}

static void start_phase(struct sched *s, int hook)
{
	const struct dagrun_workflow *wf = s->wf;
	uint32_t first = wf->hook_first[hook], n = wf->hook_count[hook];
	s->phase = hook;
	s->phase_left = n;
	s->total += n;
	for (uint32_t t = first; t < first + n; t++)
		s->ts[t].active = 1;
	/* Interrupted before the run began (sched_interrupt before
	 * sched_start): nothing becomes ready, everything stays pending. */
	for (uint32_t t = first; t < first + n && !s->interrupted; t++) {
		struct tstate *st = &s->ts[t];
		if (!st->waiting && st->status == DAGRUN_PENDING)
			resolve(s, t);
	}
}

/* ---- public to the engine ------------------------------------------------ */

int sched_init(struct sched *s, const struct dagrun_workflow *wf, uv_loop_t *loop,
	       struct executor **exec, uint32_t max_parallel, const char *run_id,
	       uint64_t seed)
{
	memset(s, 0, sizeof(*s));
	s->wf = wf;
	s->loop = loop;
	memcpy(s->exec, exec, sizeof(s->exec));
	s->max_parallel = max_parallel ? max_parallel : 1;
	s->run_id = run_id;
	s->rng = seed ? seed : 0x9E3779B97F4A7C15ull;
	s->ts = calloc(wf->n_tasks ? wf->n_tasks : 1, sizeof(*s->ts));
	s->pool_avail = calloc(wf->n_pools + 1, sizeof(*s->pool_avail));
	s->pool_wait = calloc(wf->n_pools + 1, sizeof(*s->pool_wait));
	s->waited = calloc(wf->n_pools + 1, sizeof(*s->waited));
	s->waited_pos = calloc(wf->n_pools + 1, sizeof(*s->waited_pos));
	if (!s->ts || !s->pool_avail || !s->pool_wait || !s->waited || !s->waited_pos)
		return -ENOMEM;
	const struct graph *g = wf->graph;
	for (uint32_t t = 0; t < wf->n_tasks; t++) {
		s->ts[t].waiting = g->indeg[t];
		s->ts[t].blocked_by = SCHED_NONE;
		s->ts[t].skipped_by = SCHED_NONE;
	}
	readyq_init(&s->ready, wf->tasks, g->weight);
	for (uint32_t p = 0; p < wf->n_pools; p++) {
		s->pool_avail[p] = wf->pools[p].capacity;
		readyq_init(&s->pool_wait[p], wf->tasks, g->weight);
	}
	return 0;
}

/* A warning from data flow (a skipped $DAGRUN_OUTPUT line, a secret too
 * short to mask), as a log event. */
static void flow_warned(void *ud, uint32_t t, const char *msg)
{
	struct sched *s = ud;
	dagrun_event ev;
	ev_init(s, &ev, DAGRUN_EV_LOG, t);
	ev.level = DAGRUN_WARN;
	ev.message = msg;
	sched_emit(s, &ev);
}

int sched_start(struct sched *s)
{
	dagrun_event ev;
	ev_init(s, &ev, DAGRUN_EV_RUN_START, SCHED_NONE);
	ev.count = s->wf->n_main;
	sched_emit(s, &ev);
	if (s->flow)
		flow_set_warn(s->flow, flow_warned, s);
	start_phase(s, DR_HOOK_NONE);
	after_change(s);
	return s->error;
}

bool sched_done(const struct sched *s)
{
	return phase_idle(s) && (s->interrupted || s->phase == DR_HOOK_EXIT || s->error);
}

void sched_interrupt(struct sched *s, int signo, bool hard)
{
	if (!s->interrupted)
		s->interrupted = signo;
	s->hard |= hard;
	const struct dagrun_workflow *wf = s->wf;
	for (uint32_t t = 0; t < wf->n_tasks; t++) {
		struct tstate *st = &s->ts[t];
		if (st->status == DAGRUN_RUNNING) {
			struct executor *ex = s->exec[wf->tasks[t].kind];
			ex->ops->cancel(ex, &st->slot->a, hard);
		} else if (st->status == DAGRUN_RETRYING) {
			settle(s, t, DAGRUN_CANCELLED, DR_CLASS_NONE, "cancelled before retry", NULL, NULL);
		}
	}
	/* Ready tasks stay pending: they never started, the run is resumable. */
	readyq_free(&s->ready);
	readyq_init(&s->ready, wf->tasks, wf->graph->weight);
	for (uint32_t p = 0; p < wf->n_pools; p++) {
		readyq_free(&s->pool_wait[p]);
		readyq_init(&s->pool_wait[p], wf->tasks, wf->graph->weight);
		s->waited_pos[p] = 0;
	}
	s->n_waited = 0;
	for (uint32_t t = 0; t < wf->n_tasks; t++)
		s->ts[t].in_pool_wait = 0;
	/* What became final above releases its dependents (none starts now). */
	dispatch(s);
}

void sched_free(struct sched *s)
{
	if (!s->ts)
		return;
	/* Slots with a timer were freed when it closed, before the loop ended. */
	for (uint32_t t = 0; t < s->wf->n_tasks; t++)
		if (s->ts[t].slot && !s->ts[t].slot->timer_init)
			free_slot(s, t);
	readyq_free(&s->ready);
	for (uint32_t p = 0; p < s->wf->n_pools; p++)
		readyq_free(&s->pool_wait[p]);
	free(s->pool_wait);
	free(s->pool_avail);
	free(s->waited);
	free(s->waited_pos);
	free(s->stack);
	free(s->ts);
	free(s->obs);
	s->ts = NULL;
}
