/* sched_int.h: what the files of the scheduler share (sched.c the state
 * machine and dispatch, sched_attempt.c attempts and retries, sched_run.c
 * the engine's entry points and the event stream). Not for other modules:
 * sched.h is the scheduler's interface.
 *
 * Invariant: a slot (struct slot) exists exactly while its task has an
 * attempt running or a retry pending; sched_free_slot() ends it.
 */
#ifndef DAGRUN_SCHED_INT_H
#define DAGRUN_SCHED_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "sched/sched.h"
#include "util/buf.h"

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
void sched_dispatch(struct sched *s);

void sched_ev_init(struct sched *s, dagrun_event *ev, int type, uint32_t t);

void sched_retry_closed(uv_handle_t *h);

void sched_set_error(struct sched *s, int err);

void sched_pools_take(struct sched *s, uint32_t t, int sign);

/* tail: the end of stderr for the summary (may hold NULs), or NULL. */
void sched_emit_status(struct sched *s, uint32_t t, int old, const char *error,
			const struct buf *tail);

void sched_after_change(struct sched *s);

/* Makes t final, with all the bookkeeping that goes with it: t leaves the
 * phase's count of tasks left (every task settled belongs to the phase
 * being run), a backoff timer it waited on is stopped and no longer
 * counted, its result is recorded, counted and announced, its slot
 * released; its dependents are updated from the worklist. The one way a
 * task becomes final in a run (pass_over() marks the hook list that does
 * not apply, which is not run). */
void sched_settle(struct sched *s, uint32_t t, int status, int cls,
		  const char *error, const struct buf *tail, const struct exec_result *r);

void sched_free_slot(struct sched *s, uint32_t t);

void sched_make_ready(struct sched *s, uint32_t t);

void sched_start_attempt(struct sched *s, uint32_t t);

/* Puts t, now final, on the worklist of tasks whose dependents to update. */
void sched_push_final(struct sched *s, uint32_t t);

/* Masks secrets in one text field of an event copy, into b. */
void sched_mask(struct sched *s, const char **field, struct buf *b);

void sched_start_phase(struct sched *s, int hook);

bool sched_phase_idle(const struct sched *s);

#endif
