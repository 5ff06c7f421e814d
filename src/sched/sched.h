/* sched.h: the scheduler: the per-task state machine over the graph.
 *
 * One thread, one libuv loop. Invariants:
 *  - waiting[t] counts t's dependencies not yet final; t becomes ready when
 *    it reaches 0 (dependency outcomes were already folded in as they ended);
 *  - however a task became final (its attempt, `when`, a condition, a
 *    dependency, a stuck wait, an interruption), it goes on one worklist,
 *    and dispatch rests only once that worklist is empty and what it
 *    readied has been offered to start;
 *  - a task is in at most one queue: the ready heap, or one pool's wait heap
 *    (entries there are dropped lazily once stale);
 *  - running <= max_parallel, and a pool's units in use never exceed its
 *    capacity: a task takes all its units at once or none;
 *  - a task that cannot get its units queues on that pool, and from then on
 *    no task ordered after it may take units of that pool: no starvation of
 *    a large request by a stream of small ones;
 *  - a pool with a live waiter is in `waited`, so dispatch visits only pools
 *    that someone waits on, never all of them (up to DR_MAX_POOLS);
 *  - every state change is one event, delivered to every observer;
 *  - the loop is never held for long (rule 1): a dispatch pass stops once
 *    the loop turn has spent SCHED_TURN_BUDGET_MS (measured from libuv's
 *    clock of the turn, after the unit of work that spent it: an
 *    evaluation, a start and its templates, a batch of dependents) and
 *    continues from where it stopped on the next turn, from an idle
 *    handle, after timers, signals and I/O have been serviced; while it
 *    waits, the phase is not idle and the run not done.
 *  - with a gate (the write-ahead rule, sched_gate), a task that became
 *    final releases its dependents only once the gate has opened on a
 *    request made after it did: what the observers were told (a store
 *    recording it) is durable before any dependent starts, before the
 *    next phase (hooks) starts and before the run is done. A task waits
 *    in `held` until a request takes it, then in `passing` until that
 *    request is answered; one request is in flight at a time, and it
 *    takes every task held, so commits group themselves under load. A
 *    request is urgent when the run would wait for it (a free slot and
 *    nothing ready, or the run stopping): the gate may otherwise group
 *    for a few milliseconds while other tasks keep every slot busy.
 *    Without a gate, nothing waits.
 * Work per task is O((deps + dependents) + log n): no rescans.
 */
#ifndef DAGRUN_SCHED_H
#define DAGRUN_SCHED_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "dagrun.h"
#include "exec/executor.h"
#include "model/model.h"
#include "sched/readyq.h"

#define SCHED_NONE UINT32_MAX
#define SCHED_TURN_BUDGET_MS 50

struct slot;
struct flow;

struct tstate {
	uint32_t waiting;        /* dependencies not yet final */
	uint32_t blocked_by;     /* a blocking dependency that failed, or NONE */
	uint32_t skipped_by;     /* a dependency whose condition is false, or NONE */
	uint32_t in_pool_wait;   /* queued on pool in_pool_wait - 1; 0: on none */
	uint8_t status;          /* enum dagrun_status */
	uint8_t error_class;     /* enum dr_error_class of the final failure */
	uint8_t active;          /* belongs to the phase being run */
	uint8_t kept;            /* final from before (sched_seed): not run */
	uint16_t attempts;
	struct slot *slot;       /* while running or retrying */
	uint64_t ready_ms;       /* wall clock when it last became ready (its
				  * dependencies final, or its retry delay
				  * over); its next ATTEMPT_START carries it */
};

struct observer {
	dagrun_observer_fn fn;
	void *ud;
};

/* The write-ahead gate (see the invariants above): the engine plugs the
 * state store in; tests plug a fake. */
struct sched_gate {
	/* Asks that everything the observers were told so far be made
	 * durable. Answered later, from the loop and never from inside this
	 * call, by exactly one sched_gate_open(). urgent: the run waits for
	 * the answer (a slot is free and nothing else is ready, or the run is
	 * stopping); not urgent, the gate may take a few milliseconds to group
	 * commits, since other tasks keep the run busy meanwhile. Returns 0,
	 * or < 0 when no answer will come (the run then stops as with
	 * sched_fail()). */
	int (*request)(void *ud, bool urgent);
	/* The request in flight became urgent (may be NULL). */
	void (*hurry)(void *ud);
	void *ud;
};

struct sched {
	const struct dagrun_workflow *wf;
	uv_loop_t *loop;
	struct executor *exec[DR_MAX_KINDS]; /* by task kind (wf->kinds) */
	struct tstate *ts;
	struct readyq ready;
	uint32_t *pool_avail;        /* by pool index */
	struct readyq *pool_wait;    /* by pool index */
	uint32_t *waited;            /* pools whose wait heap may hold a live entry */
	uint32_t *waited_pos;        /* by pool: its index in waited + 1, 0: absent */
	uint32_t n_waited;
	uint32_t max_parallel;
	uint32_t running;            /* attempts in flight */
	uint32_t retrying;           /* backoff timers armed */
	uint32_t phase_left;         /* tasks of the current phase not final */
	int phase;                   /* enum dr_hook of the phase being run */
	bool main_failed;            /* a main task ended failed */
	bool any_failed;             /* a task ended failed */
	bool dispatching, redispatch;
	int interrupted;             /* the signal that stopped us, or 0 */
	int hard;                    /* tasks were killed at once */
	const char *run_id;
	struct flow *flow;           /* templates, conditions, results; may be NULL */
	const char *tmpdir;          /* for $DAGRUN_OUTPUT files; may be NULL */
	const char *out_prefix;      /* of those files' names (a sub-run's, so
				      * that they differ from the parent's); or NULL */
	uint64_t rng;
	struct observer *obs;
	uint32_t n_obs;
	uint32_t *stack;             /* worklist of tasks that became final */
	uint32_t stack_n, stack_cap;
	uint32_t drain_t, drain_e;   /* the final task whose dependents are being
				      * updated (NONE: none) and its next edge */
	uv_idle_t *resume;           /* armed: the pass goes on next turn */
	size_t counts[DAGRUN_CANCELLED + 1];
	uint64_t total;              /* tasks in this run (main + hooks run) */
	int error;                   /* first internal error (-errno), or 0 */
	uint64_t *weight;            /* critical-path weight per task (readyq) */
	uint32_t *attempt_base;      /* per task: attempts made before this
				      * process (resume), or NULL: none */
	struct sched_gate gate;      /* request NULL: no gate */
	uint32_t *held, *passing;    /* final tasks waiting for the gate */
	uint32_t held_n, held_cap, passing_n, passing_cap;
	bool gate_busy;              /* a request is in flight */
	bool gate_urgent;            /* and it is urgent */
	uint32_t kept_main;          /* main tasks seeded final (sched_seed) */
};

/* Sets up s to run wf with the given executors (DR_MAX_KINDS of them,
 * indexed by dr_task.kind; NULL where a kind cannot run). Returns 0 or
 * -ENOMEM. */
int sched_init(struct sched *s, const struct dagrun_workflow *wf, uv_loop_t *loop,
	       struct executor **exec, uint32_t max_parallel, const char *run_id,
	       uint64_t seed);

/* Starts the run: the main tasks with no dependencies become ready. The
 * loop does the rest; sched_done() tells when it is over. */
int sched_start(struct sched *s);

/* True when every task of the run is final and nothing is in flight. */
bool sched_done(const struct sched *s);

/* Stops the run: running attempts are cancelled (hard: killed at once),
 * retries pending become cancelled, nothing new starts. Called before
 * sched_start(), the run starts stopped: no task starts, all stay pending. */
void sched_interrupt(struct sched *s, int signo, bool hard);

/* Before sched_start(): t is final from an earlier run (resume, rerun)
 * with this status and error class: it does not run, emits no event, and
 * counts and releases its dependents as final when its phase starts. */
void sched_seed(struct sched *s, uint32_t t, int status, int error_class);

/* Before sched_start(): t made `attempts` attempts before this process
 * (resume): its next attempt is number attempts + 1. Its retries are
 * counted from this run only. Returns 0 or -ENOMEM. */
int sched_seed_attempts(struct sched *s, uint32_t t, uint32_t attempts);

/* Before sched_start(): orders ready tasks by these critical-path weights
 * (graph_weigh over measured durations) instead of tasks on the chain.
 * Copied. */
void sched_set_weights(struct sched *s, const uint64_t *weight);

/* Before sched_start(): the write-ahead gate (see struct sched_gate). */
void sched_set_gate(struct sched *s, const struct sched_gate *g);

/* The gate's answer to its request: status 0, the tasks it took release
 * their dependents; < 0, the run stops as with sched_fail(status). */
void sched_gate_open(struct sched *s, int status);

/* Stops the run on an error that forbids going on (the state store
 * failed): err becomes the run's error, the gate is dropped (tasks it held
 * never release their dependents, which stay pending), running attempts
 * are cancelled as by a soft interruption, nothing new starts. */
void sched_fail(struct sched *s, int err);

/* The number of t's current (or last) attempt, counting those made before
 * this process. */
uint32_t sched_attempt_no(const struct sched *s, uint32_t t);

void sched_emit(struct sched *s, dagrun_event *ev);

/* Emits a LOG event of level (DAGRUN_WARN, ...) saying msg, about task t
 * or the run (SCHED_NONE). */
void sched_log(struct sched *s, uint32_t t, int level, const char *msg);
void sched_free(struct sched *s);

#endif
