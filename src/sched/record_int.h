/* record_int.h: what the two files of the store observer share: record.c
 * (the writer's answers, the observer, the gate, the end) and
 * record_start.c (the run's row, its lock, history and retention before
 * the run starts). Not for other modules: record.h is the interface.
 */
#ifndef DAGRUN_RECORD_INT_H
#define DAGRUN_RECORD_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include <uv.h>

#include "sched/record.h"
#include "store/store.h"
#include "util/buf.h"

#define LOCK_WAIT_MS 30000           /* for the engine and watchdog before us */
#define KEEP_RUNS STORE_KEEP_DEFAULT /* retention: runs per workflow */
#define KEEP_MS STORE_MAX_AGE_MS_DEFAULT
#define HISTORY_TASK_RUNS 2000000u   /* tasks x runs read for history, at most */
#define HISTORY_RUNS 10u
#define GATE_GROUP_MS 25             /* a request that is not urgent waits this */
/* Output waiting for the writer, at most: a task that writes faster than
 * the disk takes it costs this much memory, and what arrives beyond is
 * counted as cut from its log (the attempt's *_log_cut), never held. */
#define QUEUE_MAX ((size_t)2 << 20)

/* An attempt's end, waiting for the status event that follows it. */
struct stash {
	bool full;
	struct store_attempt_end e;
	struct buf text;             /* its strings, one after the other */
};

struct record {
	struct store *st;
	uint64_t key;
	const struct dagrun_workflow *wf;
	struct sched *s;
	struct flow *f;
	const struct cont_opts *co;
	struct cont *cont;
	char *run_id;
	char *lock_path;
	int lock_fd;
	uv_async_t async;            /* answers from the writer thread */
	uv_timer_t group;            /* a request that is not urgent, waiting */
	bool async_init, group_init, detached;
	bool live;                   /* the run's loop acts on answers */
	bool stopped;                /* the store's failure was acted on */
	atomic_int barrier_done;
	atomic_int barrier_status;
	atomic_int failed;           /* the store's error, from on_error */
	pthread_mutex_t mu;          /* msg */
	char *msg;                   /* the store's failure, as it said it */
	int local_err;               /* a record refused, seen on the loop */
	struct stash stash;
	struct buf result;
	char *summary;
};


void record_on_async(uv_async_t *h);

void record_on_store_error(void *ud, int code, const char *msg);

void record_observe(void *ud, const dagrun_event *ev);

/* Urgent: a barrier now, which the writer commits at once. Else in
 * GATE_GROUP_MS, unless hurried: a busy run asks once per group of tasks,
 * and the store commits once per request. */
int record_gate_request(void *ud, bool urgent);

void record_gate_hurry(void *ud);

int record_fail(char **err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif
