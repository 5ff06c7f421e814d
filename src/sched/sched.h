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
 *  - every state change is one event, delivered to every observer.
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
	uint16_t attempts;
	struct slot *slot;       /* while running or retrying */
};

struct observer {
	dagrun_observer_fn fn;
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
	size_t counts[DAGRUN_CANCELLED + 1];
	uint64_t total;              /* tasks in this run (main + hooks run) */
	int error;                   /* first internal error (-errno), or 0 */
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

void sched_emit(struct sched *s, dagrun_event *ev);
void sched_free(struct sched *s);

#endif
