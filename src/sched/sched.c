/* sched.c: the scheduler's state machine; see sched.h for its invariants.
 *
 * Life of a task: PENDING until its dependencies are final; then either
 * ready (in the heap) or settled at once (FAILED with class dependency when
 * a blocking dependency did not complete). Dispatch takes the best ready
 * task that fits the concurrency limit and its pools; an attempt ends in
 * COMPLETED, FAILED, CANCELLED or RETRYING (a loop timer, then ready again).
 * Tasks that become final are handled from an explicit worklist, so a long
 * chain of failures never recurses. No pass holds the loop for more than
 * about SCHED_TURN_BUDGET_MS plus one unit of work (see dispatch()).
 */
#include "sched.h"

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
#include "util/clock.h"

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

static void ev_init(struct sched *s, dagrun_event *ev, int type, uint32_t t)
{
	memset(ev, 0, sizeof(*ev));
	ev->type = type;
	ev->level = DAGRUN_INFO;
	ev->ts_ms = clock_wall_ms();
	ev->run_id = s->run_id;
	ev->task_index = t;
	ev->exit_code = -1;
	if (t != SCHED_NONE) {
		ev->task = wf_task_id(s->wf, t);
		ev->status = s->ts[t].status;
		ev->attempt = sched_attempt_no(s, t);
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

/* tail: the end of stderr for the summary (may hold NULs), or NULL. */
static void emit_status(struct sched *s, uint32_t t, int old, const char *error,
			const struct buf *tail)
{
	dagrun_event ev;
	ev_init(s, &ev, DAGRUN_EV_TASK_STATUS, t);
	ev.old_status = old;
	ev.error_class = s->ts[t].error_class;
	ev.error = error;
	ev.data = tail && tail->len ? tail->data : NULL;
	ev.len = tail ? tail->len : 0;
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

static bool grow_u32(uint32_t **v, uint32_t *cap, uint32_t n)
{
	if (n < *cap)
		return true;
	uint32_t c = *cap ? *cap * 2 : 64;
	uint32_t *p = realloc(*v, (size_t)c * sizeof(*p));
	if (!p)
		return false;
	*v = p;
	*cap = c;
	return true;
}

/* t is final: its dependents are released now, or, with a gate, once the
 * gate has opened on a request made after this. */
static void finalize(struct sched *s, uint32_t t)
{
	if (!s->gate.request) {
		push_final(s, t);
		return;
	}
	if (!grow_u32(&s->held, &s->held_cap, s->held_n)) {
		sched_fail(s, -ENOMEM);
		return;
	}
	s->held[s->held_n++] = t;
}

#define GATE_HELD_URGENT 1024   /* tasks held: ask at once, however busy */

/* Whether the run waits for the gate: a slot is free and nothing else is
 * ready to take it, or the run is stopping. */
static bool gate_waited(const struct sched *s)
{
	return s->interrupted || (s->running < s->max_parallel && readyq_empty(&s->ready));
}

/* Asks the gate for what is held, unless a request is in flight (its
 * answer asks again; it is hurried when the run comes to wait for it). */
static void gate_kick(struct sched *s)
{
	if (!s->gate.request)
		return;
	if (s->gate_busy) {
		if (!s->gate_urgent && s->gate.hurry && gate_waited(s)) {
			s->gate_urgent = true;
			s->gate.hurry(s->gate.ud);
		}
		return;
	}
	if (!s->held_n)
		return;
	bool urgent = gate_waited(s) || s->held_n >= GATE_HELD_URGENT;
	uint32_t *v = s->passing, cap = s->passing_cap;
	s->passing = s->held;
	s->passing_cap = s->held_cap;
	s->passing_n = s->held_n;
	s->held = v;
	s->held_cap = cap;
	s->held_n = 0;
	s->gate_busy = true;
	s->gate_urgent = urgent;
	int r = s->gate.request(s->gate.ud, urgent);
	if (r < 0) {
		s->gate_busy = false;
		sched_fail(s, r);
	}
}

/* Makes t final, with all the bookkeeping that goes with it: t leaves the
 * phase's count of tasks left (every task settled belongs to the phase
 * being run), a backoff timer it waited on is stopped and no longer
 * counted, its result is recorded, counted and announced, its slot
 * released; its dependents are updated from the worklist. The one way a
 * task becomes final in a run (pass_over() marks the hook list that does
 * not apply, which is not run). */
static void settle(struct sched *s, uint32_t t, int status, int cls,
		   const char *error, const struct buf *tail, const struct exec_result *r)
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
		int e = flow_record(s->flow, t, status, sched_attempt_no(s, t),
				    r ? r->duration_ms : 0, cls, error, r,
				    sl ? sl->output_file : NULL);
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
	finalize(s, t);
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

/* Whether this loop turn has held the loop for its budget: the time since
 * libuv last read its clock (the start of the turn, or the return of its
 * poll; CLOCK_MONOTONIC, in ms). Read after each start: the coarse clock
 * (same origin, a few ns instead of 30, a tick behind at most) keeps that
 * out of the cost of a start. */
static bool turn_spent(const struct sched *s)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	uint64_t now = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
	uint64_t since = uv_now(s->loop);
	return now > since && now - since >= SCHED_TURN_BUDGET_MS;
}

#define DRAIN_CHECK_EVERY 1024   /* edges between two looks at the clock */

/* Propagates every final task on the worklist to its dependents, from
 * where the last call stopped (drain_t, drain_e). With budget, stops after
 * an edge whose condition was evaluated, or a batch of edges, once the
 * turn is spent: returns true then (something is left); false when the
 * worklist is empty. */
static bool drain_final(struct sched *s, bool budget)
{
	const struct graph *g = s->wf->graph;
	for (;;) {
		if (s->drain_t == SCHED_NONE) {
			if (!s->stack_n)
				return false;
			s->drain_t = s->stack[--s->stack_n];
			s->drain_e = g->out_off[s->drain_t];
		}
		/* dep_final never drains: the cursor is ours until we return */
		uint32_t t = s->drain_t, e = s->drain_e, end = g->out_off[t + 1];
		while (e < end) {
			const struct dr_dep *dep = &s->wf->deps[g->out_dep[e]];
			dep_final(s, g->out_task[e], t, dep);
			e++;
			if (budget && (dep->condition || !(e % DRAIN_CHECK_EVERY)) && turn_spent(s)) {
				s->drain_e = e;
				return true;
			}
		}
		s->drain_t = SCHED_NONE;
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
	return buf_strf("%s/%s%u.%u.out", s->tmpdir, s->out_prefix ? s->out_prefix : "", t,
			attempt);
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
	ev_init(s, &ev, DAGRUN_EV_ATTEMPT_START, t);
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
		struct buf tail = BUF_INIT;
		stderr_tail(s, r, &tail);
		settle(s, t, DAGRUN_FAILED, r->error_class ? r->error_class : DR_CLASS_TRANSIENT,
		       r->error, &tail, r);
		buf_free(&tail);
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
 * before anything behind them), then the ready heap. Returns true when it
 * stopped because the turn is spent (after a start, with its templates,
 * or a `when` that was not true): the rest waits for the next turn. */
static bool dispatch_once(struct sched *s)
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
		if (b != SCHED_NONE) {
			pool_queue(s, t, b);  /* now it waits for another pool */
			continue;
		}
		start_attempt(s, t);
		if (turn_spent(s))
			return true;
	}
	while (s->running < s->max_parallel && !readyq_empty(&s->ready) && !s->error) {
		uint32_t t = readyq_pop(&s->ready);
		if (s->ts[t].status == DAGRUN_PENDING && !when_holds(s, t)) {
			if (turn_spent(s))
				return true;
			continue;
		}
		uint32_t b = wf->tasks[t].opts->n_res ? pool_blocker(s, t) : SCHED_NONE;
		if (b != SCHED_NONE) {
			pool_queue(s, t, b);
			continue;
		}
		start_attempt(s, t);
		if (turn_spent(s))
			return true;
	}
	return false;
}

static void resume_closed(uv_handle_t *h)
{
	free(h);
}

/* The next turn: the pass that stopped goes on. */
static void resume_fire(uv_idle_t *h)
{
	struct sched *s = h->data;
	uv_idle_stop(h);
	uv_close((uv_handle_t *)h, resume_closed);
	s->resume = NULL;
	after_change(s);
}

/* Arms the idle handle that goes on with the pass next turn (the loop
 * polls without waiting meanwhile). Each is closed when it fires. */
static void defer(struct sched *s)
{
	uv_idle_t *h = malloc(sizeof(*h));
	if (!h) {
		set_error(s, -ENOMEM);
		return;
	}
	uv_idle_init(s->loop, h);
	h->data = s;
	uv_idle_start(h, resume_fire);
	s->resume = h;
}

/* The one path from "a task became final" to "what that frees has started".
 * Whatever made a task final (its attempt's end, `when`, a condition, a
 * failed or skipped dependency, an interruption) went through settle(),
 * which put it on the worklist. A pass releases the dependents of every
 * final task, then starts what may start; starting may settle more tasks
 * (`when` false or failing, a failed start), so the passes go on until one
 * leaves the worklist empty: no dependent is ever left ready with nothing
 * to start it. Once the loop turn has spent its budget (a hostile `when`,
 * condition or template takes up to its time limit, and there may be
 * thousands), the pass stops after the unit of work that spent it and goes
 * on next turn (defer()): timeouts, signals and I/O are serviced between
 * two such units. The settling of what is stuck and the list of hooks
 * passed over at the end of a phase are drained in one go. */
static void dispatch(struct sched *s)
{
	if (s->dispatching) {
		s->redispatch = true;
		return;
	}
	if (s->resume)
		return;   /* this turn is spent: the pass goes on next turn */
	s->dispatching = true;
	do {
		s->redispatch = false;
		if (drain_final(s, true) || (!s->interrupted && dispatch_once(s))) {
			defer(s);
			break;
		}
	} while ((s->redispatch || s->stack_n) && !s->error);
	s->dispatching = false;
	gate_kick(s);
}

static bool phase_idle(const struct sched *s)
{
	return s->running == 0 && s->retrying == 0 && readyq_empty(&s->ready) && !s->resume &&
	       !s->gate_busy && !s->held_n;
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
	drain_final(s, false);
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
	drain_final(s, false);
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
		if (s->phase_left) {
			settle_stuck(s);
			/* What it settled is durable before the next phase:
			 * the gate's answer comes back here. */
			gate_kick(s);
			if (!phase_idle(s))
				return;
		}
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
	/* Tasks final from before (resume, rerun), after the loop above: a
	 * dependent they release is resolved once, by its last dependency.
	 * Already durable: no gate. */
	bool kept = false;
	for (uint32_t t = first; t < first + n; t++) {
		struct tstate *st = &s->ts[t];
		if (!st->kept)
			continue;
		kept = true;
		s->phase_left--;
		s->counts[st->status]++;
		if (st->status == DAGRUN_FAILED) {
			s->any_failed = true;
			if (hook == DR_HOOK_NONE)
				s->main_failed = true;
		}
		push_final(s, t);
	}
	if (kept)
		drain_final(s, false);
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
	s->drain_t = SCHED_NONE;
	for (uint32_t t = 0; t < wf->n_tasks; t++) {
		s->ts[t].waiting = g->indeg[t];
		s->ts[t].blocked_by = SCHED_NONE;
		s->ts[t].skipped_by = SCHED_NONE;
	}
	if (!(s->weight = malloc((wf->n_tasks ? wf->n_tasks : 1) * sizeof(*s->weight))))
		return -ENOMEM;
	for (uint32_t t = 0; t < wf->n_tasks; t++)
		s->weight[t] = g->weight[t];
	readyq_init(&s->ready, wf->tasks, s->weight);
	for (uint32_t p = 0; p < wf->n_pools; p++) {
		s->pool_avail[p] = wf->pools[p].capacity;
		readyq_init(&s->pool_wait[p], wf->tasks, s->weight);
	}
	return 0;
}

void sched_set_weights(struct sched *s, const uint64_t *weight)
{
	memcpy(s->weight, weight, s->wf->n_tasks * sizeof(*s->weight));
}

void sched_set_gate(struct sched *s, const struct sched_gate *g)
{
	s->gate = *g;
}

void sched_seed(struct sched *s, uint32_t t, int status, int error_class)
{
	struct tstate *st = &s->ts[t];
	st->status = (uint8_t)status;
	st->error_class = (uint8_t)error_class;
	if (!st->kept && s->wf->tasks[t].hook == DR_HOOK_NONE)
		s->kept_main++;
	st->kept = 1;
}

int sched_seed_attempts(struct sched *s, uint32_t t, uint32_t attempts)
{
	if (!s->attempt_base &&
	    !(s->attempt_base = calloc(s->wf->n_tasks ? s->wf->n_tasks : 1,
				       sizeof(*s->attempt_base))))
		return -ENOMEM;
	s->attempt_base[t] = attempts;
	return 0;
}

uint32_t sched_attempt_no(const struct sched *s, uint32_t t)
{
	return s->ts[t].attempts + (s->attempt_base ? s->attempt_base[t] : 0);
}

void sched_gate_open(struct sched *s, int status)
{
	s->gate_busy = false;
	if (status < 0) {
		sched_fail(s, status);
		return;
	}
	for (uint32_t i = 0; i < s->passing_n; i++)
		push_final(s, s->passing[i]);
	s->passing_n = 0;
	after_change(s);
}

void sched_fail(struct sched *s, int err)
{
	set_error(s, err);
	s->gate.request = NULL;
	s->gate_busy = false;
	s->held_n = s->passing_n = 0;
	if (!s->interrupted)
		sched_interrupt(s, SIGTERM, false);
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
	ev.count = s->wf->n_main - s->kept_main;   /* to run: kept ones are final */
	sched_emit(s, &ev);
	if (s->flow)
		flow_set_warn(s->flow, flow_warned, s);
	uv_update_time(s->loop);   /* the turn's budget counts from now */
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
	readyq_init(&s->ready, wf->tasks, s->weight);
	for (uint32_t p = 0; p < wf->n_pools; p++) {
		readyq_free(&s->pool_wait[p]);
		readyq_init(&s->pool_wait[p], wf->tasks, s->weight);
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
	free(s->weight);
	free(s->attempt_base);
	free(s->held);
	free(s->passing);
	s->ts = NULL;
}
