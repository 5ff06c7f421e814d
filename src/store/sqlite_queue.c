/* sqlite_queue.c: the record operations, on the caller's side of the queue.
 *
 * A record is copied, with its strings and bytes, into the tail block of a
 * list of 256 KiB blocks under `lock`; the writer takes the whole list at
 * once. The caller wakes the writer only when it may be asleep for good
 * (the queue was empty), when a barrier wants a commit now, or when a
 * batch is full, so a run of records costs one wake-up per batch, not one
 * per record. Nothing here waits for the disk: the lock is held for a copy.
 * Invariant: records are queued in call order and never reordered; the
 * writer sees every record queued before a barrier before the barrier.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "store/sqlite_int.h"

#define BLOCK_SIZE SQ_BLOCK_SIZE

static size_t align8(size_t n)
{
	return (n + 7) & ~(size_t)7;
}

struct sq_run *sq_find_run_locked(struct sq_store *st, uint64_t key)
{
	for (size_t i = 0; i < st->nruns; i++)
		if (st->runs[i]->key == key)
			return st->runs[i];
	return NULL;
}

int sq_register(struct sq_store *st, struct sq_run *r)
{
	int ret = 0;
	pthread_mutex_lock(&st->lock);
	if (st->nruns == st->caprun) {
		size_t cap = st->caprun ? st->caprun * 2 : 4;
		struct sq_run **v = realloc(st->runs, cap * sizeof(*v));
		if (!v) {
			ret = -ENOMEM;
			goto out;
		}
		st->runs = v;
		st->caprun = cap;
	}
	st->runs[st->nruns++] = r;
	/* An idle writer sleeps without a deadline while it has no run: wake
	 * it to start renewing this one's lease. */
	pthread_cond_signal(&st->wake);
out:
	pthread_mutex_unlock(&st->lock);
	return ret;
}

/* Room for a record of `size` bytes at the queue's tail (its header
 * zeroed). Caller holds lock. */
static struct sq_rec *reserve(struct sq_store *st, size_t size)
{
	size = align8(size);
	struct sq_block *b = st->tail;
	if (!b || b->cap - b->used < size) {
		if (st->spare && st->spare->cap >= size) {
			b = st->spare;
			st->spare = b->next;
			st->nspare--;
		} else {
			size_t cap = size > BLOCK_SIZE ? size : BLOCK_SIZE;
			b = malloc(sizeof(*b) + cap);
			if (!b)
				return NULL;
			b->cap = cap;
		}
		b->next = NULL;
		b->used = 0;
		if (st->tail)
			st->tail->next = b;
		else
			st->head = b;
		st->tail = b;
	}
	struct sq_rec *r = (struct sq_rec *)(b->data + b->used);
	b->used += size;
	st->stats.queued_bytes += size;
	memset(r, 0, offsetof(struct sq_rec, u));
	r->size = (uint32_t)size;
	return r;
}

/* Takes the lock and checks the store and the run. Returns 0 (lock held,
 * *run set when key != 0) or < 0 (lock released). */
static int enter(struct sq_store *st, uint64_t key, uint32_t task, struct sq_run **run)
{
	if (st->read_only)
		return -EROFS;
	pthread_mutex_lock(&st->lock);
	int r = st->err;
	if (!r && st->stop)
		r = -EINVAL;
	if (!r && key) {
		*run = sq_find_run_locked(st, key);
		if (!*run || (*run)->ended || (task != UINT32_MAX && task >= (*run)->n_tasks))
			r = -EINVAL;
	}
	if (r)
		pthread_mutex_unlock(&st->lock);
	return r;
}

/* Queues r (reserved under lock) and releases the lock. */
static void leave(struct sq_store *st, struct sq_rec *r)
{
	bool wake = st->queued == 0 || r->type == REC_BARRIER;
	st->queued++;
	if (st->queued == st->batch_max)
		wake = true;
	/* Output piling up: the writer takes it now rather than after its
	 * batch window, before the queue's cap makes us cut it. */
	if (r->type == REC_OUTPUT && st->queued_out >= sq_out_wake(st) &&
	    st->queued_out - r->u.output.len < sq_out_wake(st))
		wake = true;
	if (r->type == REC_BARRIER)
		st->barrier_waiting = true;
	if (wake)
		pthread_cond_signal(&st->wake);
	pthread_mutex_unlock(&st->lock);
}

/* A record that could not be queued is lost: the store has failed. */
static int lost(struct sq_store *st)
{
	pthread_mutex_unlock(&st->lock);
	sq_set_error(st, -ENOMEM, "%s: out of memory queuing a record", st->path);
	return -ENOMEM;
}

/* Copies s (n bytes, NUL added) after the record at *tail; returns the copy. */
static const char *put(char **tail, const char *s, size_t n)
{
	if (!s)
		return NULL;
	char *d = *tail;
	memcpy(d, s, n);
	d[n] = '\0';
	*tail += n + 1;
	return d;
}

static size_t slen(const char *s)
{
	return s ? strlen(s) + 1 : 0;
}

int sq_attempt_start(struct store *s, uint64_t key, const struct store_attempt_start *a)
{
	struct sq_store *st = sq_of(s);
	struct sq_run *run = NULL;
	if (!a->attempt)
		return -EINVAL;
	int r = enter(st, key, a->task, &run);
	if (r)
		return r;
	struct sq_rec *q = reserve(st, REC_SIZE(start));
	if (!q)
		return lost(st);
	q->type = REC_START;
	q->run = run;
	q->u.start = *a;
	leave(st, q);
	return 0;
}

int sq_attempt_end(struct store *s, uint64_t key, const struct store_attempt_end *a)
{
	struct sq_store *st = sq_of(s);
	struct sq_run *run = NULL;
	const struct store_task_status_rec *ts = a->status;
	if (!a->attempt || (a->result_json && a->result_len > INT32_MAX) ||
	    (ts && (ts->task != a->task || ts->status < 0 || ts->status >= STORE_TASK_NSTATUS)))
		return -EINVAL;
	int r = enter(st, key, a->task, &run);
	if (r)
		return r;
	size_t rl = a->result_json ? a->result_len + 1 : 0;
	/* The status goes first in the tail (REC_TAIL is 8-aligned), its
	 * message with the strings. */
	size_t extra = slen(a->error) + slen(a->model) + slen(a->finish_reason) +
		       slen(a->prompt_sha256) + slen(a->inputs_json) + slen(a->io_results_json) + rl +
		       slen(a->cache_key) + slen(a->cache_parts) + slen(a->cache_task_id) +
		       (ts ? sizeof(*ts) + slen(ts->error) : 0);
	struct sq_rec *q = reserve(st, REC_SIZE(end) + extra);
	if (!q)
		return lost(st);
	q->type = REC_END;
	q->run = run;
	q->u.end = *a;
	char *tail = REC_TAIL(q, end);
	struct store_attempt_end *e = &q->u.end;
	if (ts) {
		struct store_task_status_rec *copy = (struct store_task_status_rec *)(void *)tail;
		tail += sizeof(*copy);
		*copy = *ts;
		copy->error = put(&tail, ts->error, slen(ts->error) ? slen(ts->error) - 1 : 0);
		e->status = copy;
	}
	e->error = put(&tail, a->error, slen(a->error) ? slen(a->error) - 1 : 0);
	e->model = put(&tail, a->model, slen(a->model) ? slen(a->model) - 1 : 0);
	e->finish_reason = put(&tail, a->finish_reason,
			       slen(a->finish_reason) ? slen(a->finish_reason) - 1 : 0);
	e->prompt_sha256 = put(&tail, a->prompt_sha256,
			       slen(a->prompt_sha256) ? slen(a->prompt_sha256) - 1 : 0);
	e->inputs_json = put(&tail, a->inputs_json,
			     slen(a->inputs_json) ? slen(a->inputs_json) - 1 : 0);
	e->io_results_json = put(&tail, a->io_results_json,
				 slen(a->io_results_json) ? slen(a->io_results_json) - 1 : 0);
	e->result_json = put(&tail, a->result_json, a->result_len);
	e->cache_key = put(&tail, a->cache_key, slen(a->cache_key) ? slen(a->cache_key) - 1 : 0);
	e->cache_parts = put(&tail, a->cache_parts,
			     slen(a->cache_parts) ? slen(a->cache_parts) - 1 : 0);
	e->cache_task_id = put(&tail, a->cache_task_id,
			       slen(a->cache_task_id) ? slen(a->cache_task_id) - 1 : 0);
	leave(st, q);
	return 0;
}

int sq_task_status(struct store *s, uint64_t key, const struct store_task_status_rec *t)
{
	struct sq_store *st = sq_of(s);
	struct sq_run *run = NULL;
	if (t->status < 0 || t->status >= STORE_TASK_NSTATUS)
		return -EINVAL;
	int r = enter(st, key, t->task, &run);
	if (r)
		return r;
	struct sq_rec *q = reserve(st, REC_SIZE(status) + slen(t->error));
	if (!q)
		return lost(st);
	q->type = REC_STATUS;
	q->run = run;
	q->u.status = *t;
	char *tail = REC_TAIL(q, status);
	q->u.status.error = put(&tail, t->error, slen(t->error) ? slen(t->error) - 1 : 0);
	leave(st, q);
	return 0;
}

int sq_carry(struct store *s, uint64_t key, uint32_t task, int status,
	     uint64_t from_key, uint32_t from_task)
{
	struct sq_store *st = sq_of(s);
	struct sq_run *run = NULL;
	if (status < 0 || status >= STORE_TASK_NSTATUS || !from_key || from_key == key)
		return -EINVAL;
	int r = enter(st, key, task, &run);
	if (r)
		return r;
	struct sq_rec *q = reserve(st, REC_SIZE(carry));
	if (!q)
		return lost(st);
	q->type = REC_CARRY;
	q->run = run;
	q->u.carry.task = task;
	q->u.carry.status = status;
	q->u.carry.from_run = from_key;
	q->u.carry.from_task = from_task;
	leave(st, q);
	return 0;
}

int sq_output(struct store *s, uint64_t key, uint32_t task, uint32_t attempt,
	      int stream, const void *data, size_t len)
{
	struct sq_store *st = sq_of(s);
	struct sq_run *run = NULL;
	if ((stream != STORE_STDOUT && stream != STORE_STDERR) || !attempt)
		return -EINVAL;
	if (!len)
		return 0;
	int r = enter(st, key, task, &run);
	if (r)
		return r;
	/* Past the queue's cap the bytes are not queued, only counted: the
	 * caller must never wait for the disk. */
	bool room = st->queued_out + len <= st->queue_max;
	struct sq_rec *q = reserve(st, REC_SIZE(output) + (room ? len : 0));
	if (!q)
		return lost(st);
	q->type = REC_OUTPUT;
	q->stream = (uint8_t)stream;
	q->run = run;
	q->u.output.task = task;
	q->u.output.attempt = attempt;
	q->u.output.len = 0;
	q->u.output.cut = 0;
	if (room) {
		memcpy(REC_TAIL(q, output), data, len);
		q->u.output.len = len;
		st->queued_out += len;
	} else {
		q->u.output.cut = len;
	}
	leave(st, q);
	return 0;
}

int sq_run_end(struct store *s, uint64_t key, int status, uint64_t end_ms,
	       const char *error)
{
	struct sq_store *st = sq_of(s);
	struct sq_run *run = NULL;
	if (status <= STORE_RUN_RUNNING || status >= STORE_RUN_INTERRUPTED)
		return -EINVAL;
	int r = enter(st, key, UINT32_MAX, &run);
	if (r)
		return r;
	struct sq_rec *q = reserve(st, REC_SIZE(run_end) + slen(error));
	if (!q)
		return lost(st);
	q->type = REC_RUN_END;
	q->run = run;
	q->u.run_end.status = status;
	q->u.run_end.end_ms = end_ms;
	char *tail = REC_TAIL(q, run_end);
	q->u.run_end.error = put(&tail, error, slen(error) ? slen(error) - 1 : 0);
	run->ended = true;
	leave(st, q);
	return 0;
}

int sq_barrier(struct store *s, store_barrier_fn cb, void *ud)
{
	struct sq_store *st = sq_of(s);
	if (!cb)
		return -EINVAL;
	int r = enter(st, 0, UINT32_MAX, NULL);
	if (r)
		return r;
	struct sq_rec *q = reserve(st, REC_SIZE(barrier));
	if (!q)
		return lost(st);
	q->type = REC_BARRIER;
	q->u.barrier.cb = cb;
	q->u.barrier.ud = ud;
	leave(st, q);
	return 0;
}

int sq_prune_async(struct store *s, const struct store_prune_opts *o)
{
	struct sq_store *st = sq_of(s);
	int r = enter(st, 0, UINT32_MAX, NULL);
	if (r)
		return r;
	struct sq_rec *q = reserve(st, REC_SIZE(prune) + slen(o->workflow));
	if (!q)
		return lost(st);
	q->type = REC_PRUNE;
	q->u.prune = *o;
	char *tail = REC_TAIL(q, prune);
	q->u.prune.workflow = put(&tail, o->workflow, slen(o->workflow) ? slen(o->workflow) - 1 : 0);
	leave(st, q);
	return 0;
}

int sq_last_error(struct store *s, char **msg)
{
	struct sq_store *st = sq_of(s);
	pthread_mutex_lock(&st->lock);
	int r = st->err;
	if (msg)
		*msg = r && st->errmsg ? strdup(st->errmsg) : NULL;
	pthread_mutex_unlock(&st->lock);
	return r;
}

void sq_stats(struct store *s, struct store_stats *out)
{
	struct sq_store *st = sq_of(s);
	pthread_mutex_lock(&st->lock);
	*out = st->stats;
	pthread_mutex_unlock(&st->lock);
}
