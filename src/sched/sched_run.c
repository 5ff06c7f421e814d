/* sched_run.c: the scheduler's entry points for the engine (init, start,
 * seeds of a resumed run, the write-ahead gate, interruption, free) and
 * the event stream every observer reads (sched_emit: masked copies).
 *
 * Invariant: every event leaves through sched_emit(), masked with the
 * run's redactor, in the order the state machine made it.
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

void sched_ev_init(struct sched *s, dagrun_event *ev, int type, uint32_t t)
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
void sched_mask(struct sched *s, const char **field, struct buf *b)
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
	sched_mask(s, &c.error, &b1);
	sched_mask(s, &c.message, &b2);
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

void sched_set_error(struct sched *s, int err)
{
	if (!s->error)
		s->error = err;
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
		sched_push_final(s, s->passing[i]);
	s->passing_n = 0;
	sched_after_change(s);
}

void sched_fail(struct sched *s, int err)
{
	sched_set_error(s, err);
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
	sched_log(ud, t, DAGRUN_WARN, msg);
}

void sched_log(struct sched *s, uint32_t t, int level, const char *msg)
{
	dagrun_event ev;
	sched_ev_init(s, &ev, DAGRUN_EV_LOG, t);
	ev.level = level;
	ev.message = msg;
	sched_emit(s, &ev);
}

int sched_start(struct sched *s)
{
	dagrun_event ev;
	sched_ev_init(s, &ev, DAGRUN_EV_RUN_START, SCHED_NONE);
	ev.count = s->wf->n_main - s->kept_main;   /* to run: kept ones are final */
	sched_emit(s, &ev);
	if (s->flow)
		flow_set_warn(s->flow, flow_warned, s);
	uv_update_time(s->loop);   /* the turn's budget counts from now */
	sched_start_phase(s, DR_HOOK_NONE);
	sched_after_change(s);
	return s->error;
}

bool sched_done(const struct sched *s)
{
	return sched_phase_idle(s) && (s->interrupted || s->phase == DR_HOOK_EXIT || s->error);
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
			sched_settle(s, t, DAGRUN_CANCELLED, DR_CLASS_NONE, "cancelled before retry", NULL, NULL);
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
	sched_dispatch(s);
}

void sched_free(struct sched *s)
{
	if (!s->ts)
		return;
	/* Slots with a timer were freed when it closed, before the loop ended. */
	for (uint32_t t = 0; t < s->wf->n_tasks; t++)
		if (s->ts[t].slot && !s->ts[t].slot->timer_init)
			sched_free_slot(s, t);
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
