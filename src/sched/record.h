/* record.h: a run recorded in the state store (src/store/store.h).
 *
 * What the engine plugs in when it has a state directory: the store
 * opened for the run, the run begun (or claimed by resume, or begun as a
 * new attempt by rerun: resume.h), the observer that turns the engine's
 * events into records, the write-ahead gate of the scheduler (sched.h),
 * the critical-path weights from history, the default retention, the lock
 * whose holders a resume waits for, and the run's end. Invariants:
 *  - everything handed to the store is masked by the run's redactor first
 *    (output chunks by their streams, messages by sched_emit(), results by
 *    flow, the definition and the variables here): no secret reaches the
 *    disk;
 *  - a task's final state and its result are recorded before its dependents
 *    start and before the run reports its end: the gate asks the store for
 *    a barrier; the barrier's answer, which comes on the store's writer
 *    thread, is forwarded to the loop through a uv_async_t;
 *  - a failure of the store (disk full, a database locked beyond its
 *    timeout, the lease taken over) stops the run (sched_fail) with its
 *    message, on the loop's thread; the run never goes on unrecorded.
 * The store module knows nothing of the engine; this file is the only
 * place where the two meet.
 */
#ifndef DAGRUN_SCHED_RECORD_H
#define DAGRUN_SCHED_RECORD_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "dagrun.h"
#include "model/model.h"

struct sched;
struct flow;
struct record;
struct cont_opts;

struct record_opts {
	const char *dir;             /* the state directory */
	bool durable;
	uint64_t log_cap;            /* 0: the store's default */
	const char *definition;      /* the workflow's text; NULL: read wf->path */
	size_t definition_len;
	const struct cont_opts *cont;/* resume or rerun (resume.h), or NULL */
	const char *replay_of;       /* a replay's live run: the run replayed */
};

/* Opens the store in o->dir and records the run into it: the lock, then
 * history (critical-path weights into s), the default retention, begin (a
 * new run or rerun attempt) or claim (resume), what a continued run keeps
 * (seeded into s and f), then the observer and the gate on s. run_id is
 * the engine's (a new run's id, or the id of the run continued). Before
 * any task starts; nothing is started here. Returns 0 and *out, or < 0
 * with *err (malloc'd, naming the file or the run). */
int record_start(struct record **out, const struct record_opts *o,
		 const struct dagrun_workflow *wf, struct sched *s, struct flow *f,
		 const char *run_id, char **err);

/* The store the run records into (borrowed: r's), for what reads it
 * before the run starts (the cache's entries). */
struct store *record_store(struct record *r);

/* The descriptor of the run's lock, which every process of the run that
 * may outlive the engine (the watchdog) must hold open (-1: none). */
int record_lock_fd(const struct record *r);

/* A line for the console about what a continued run keeps and found
 * (malloc'd), or NULL. */
char *record_summary(const struct record *r);

/* The run's end (after the loop has ended): run_end with the outcome
 * (0 completed, 1 failed, RECORD_CANCELLED cancelled; anything else, an
 * interruption or an error, leaves the run resumable), then the store is
 * closed, which commits everything. Returns 0, or the store's error with
 * *err. */
#define RECORD_CANCELLED (128 + SIGUSR1)   /* stopped by SIGUSR1: a cancel */
int record_finish(struct record *r, int outcome, char **err);

/* Closes the loop handles of r (the engine runs its loop afterwards, then
 * record_free). Accepts NULL. */
void record_detach(struct record *r);
void record_free(struct record *r);

/* The dry run's weights: from the history in dir (read only; none when
 * there is no state database yet) into s. Returns 0, or < 0 with *err. */
int record_plan_weights(const char *dir, const struct dagrun_workflow *wf,
			struct sched *s, char **err);

#endif
