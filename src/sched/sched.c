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
#include "sched/sched_int.h"
#include "util/clock.h"

/* ---- state changes ------------------------------------------------------ */

/* tail: the end of stderr for the summary (may hold NULs), or NULL. */
void sched_emit_status(struct sched *s, uint32_t t, int old, const char *error,
			const struct buf *tail)
{
	dagrun_event ev;
	sched_ev_init(s, &ev, DAGRUN_EV_TASK_STATUS, t);
	ev.old_status = old;
	ev.error_class = s->ts[t].error_class;
	ev.error = error;
	ev.data = tail && tail->len ? tail->data : NULL;
	ev.len = tail ? tail->len : 0;
	if (s->ts[t].status == DAGRUN_FAILED)
		ev.level = DAGRUN_ERR;
	sched_emit(s, &ev);
}

void sched_free_slot(struct sched *s, uint32_t t)
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


/* Frees t's slot, closing its backoff timer first if it has one. */
static void release_slot(struct sched *s, uint32_t t)
{
	struct slot *sl = s->ts[t].slot;
	if (!sl)
		return;
	if (!sl->timer_init)
		sched_free_slot(s, t);
	else if (!uv_is_closing((uv_handle_t *)&sl->timer))
		uv_close((uv_handle_t *)&sl->timer, sched_retry_closed);
}

/* Puts t, now final, on the worklist of tasks whose dependents to update. */
void sched_push_final(struct sched *s, uint32_t t)
{
	if (s->stack_n == s->stack_cap) {
		uint32_t cap = s->stack_cap ? s->stack_cap * 2 : 64;
		uint32_t *p = realloc(s->stack, cap * sizeof(*p));
		if (!p) {
			sched_set_error(s, -ENOMEM);
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
		sched_push_final(s, t);
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
void sched_settle(struct sched *s, uint32_t t, int status, int cls,
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
			sched_set_error(s, e);
	}
	st->status = (uint8_t)status;
	st->error_class = (uint8_t)cls;
	s->counts[status]++;
	if (status == DAGRUN_FAILED) {
		s->any_failed = true;
		if (s->wf->tasks[t].hook == DR_HOOK_NONE)
			s->main_failed = true;
	}
	sched_emit_status(s, t, old, error, tail);
	release_slot(s, t);
	finalize(s, t);
}

void sched_make_ready(struct sched *s, uint32_t t)
{
	s->ts[t].ready_ms = clock_wall_ms();
	if (readyq_push(&s->ready, t) < 0)
		sched_set_error(s, -ENOMEM);
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
		sched_settle(s, d, DAGRUN_SKIPPED, DR_CLASS_NONE, msg, NULL, NULL);
		return;
	}
	if (b == SCHED_NONE) {
		sched_make_ready(s, d);
		return;
	}
	snprintf(msg, sizeof(msg), "dependency '%.200s' %s", wf_task_id(s->wf, b),
		 dagrun_status_name(s->ts[b].status));
	sched_settle(s, d, DAGRUN_FAILED, DR_CLASS_DEPENDENCY, msg, NULL, NULL);
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
			sched_settle(s, d, DAGRUN_FAILED, DR_CLASS_PERMANENT, err, NULL, NULL);
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

void sched_pools_take(struct sched *s, uint32_t t, int sign)
{
	const struct dr_task_opts *o = s->wf->tasks[t].opts;
	for (uint32_t i = 0; i < o->n_res; i++)
		s->pool_avail[o->res[i].pool] += (uint32_t)(sign * (int64_t)o->res[i].units);
}

static void pool_queue(struct sched *s, uint32_t t, uint32_t p)
{
	s->ts[t].in_pool_wait = p + 1;
	if (readyq_push(&s->pool_wait[p], t) < 0) {
		sched_set_error(s, -ENOMEM);
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
		sched_settle(s, t, DAGRUN_FAILED, DR_CLASS_PERMANENT, err, NULL, NULL);
		free(err);
		return false;
	}
	if (!ok) {
		sched_settle(s, t, DAGRUN_SKIPPED, DR_CLASS_NONE, "'when' is false", NULL, NULL);
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
		sched_start_attempt(s, t);
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
		sched_start_attempt(s, t);
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
	sched_after_change(s);
}

/* Arms the idle handle that goes on with the pass next turn (the loop
 * polls without waiting meanwhile). Each is closed when it fires. */
static void defer(struct sched *s)
{
	uv_idle_t *h = malloc(sizeof(*h));
	if (!h) {
		sched_set_error(s, -ENOMEM);
		return;
	}
	uv_idle_init(s->loop, h);
	h->data = s;
	uv_idle_start(h, resume_fire);
	s->resume = h;
}

/* The one path from "a task became final" to "what that frees has started".
 * Whatever made a task final (its attempt's end, `when`, a condition, a
 * failed or skipped dependency, an interruption) went through sched_settle(),
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
void sched_dispatch(struct sched *s)
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

bool sched_phase_idle(const struct sched *s)
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
			sched_settle(s, t, DAGRUN_FAILED, DR_CLASS_DEPENDENCY,
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
		sched_push_final(s, t);
	}
	drain_final(s, false);
}

void sched_after_change(struct sched *s)
{
	if (s->dispatching) {
		/* An attempt ended inside a dispatch pass (its start failed at
		 * once): that pass goes on, and its caller looks for the end of
		 * the phase once nothing more can start, not now, while tasks
		 * may still be waiting for the units just given back. */
		s->redispatch = true;
		return;
	}
	sched_dispatch(s);
	while (sched_phase_idle(s) && !s->error) {
		if (s->phase_left) {
			settle_stuck(s);
			/* What it settled is durable before the next phase:
			 * the gate's answer comes back here. */
			gate_kick(s);
			if (!sched_phase_idle(s))
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
		sched_start_phase(s, next);
		sched_dispatch(s);
	}
}

void sched_start_phase(struct sched *s, int hook)
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
		sched_push_final(s, t);
	}
	if (kept)
		drain_final(s, false);
}
