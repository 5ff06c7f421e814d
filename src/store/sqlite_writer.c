/* sqlite_writer.c: the writer thread, group commit.
 *
 * The writer sleeps until a record is queued, then gives the queue up to
 * batch_ms to fill (or batch_max records; a barrier ends the wait at
 * once), takes the whole queue and commits it in transactions of at most
 * batch_max records, with prepared statements. While it commits, callers
 * keep queueing, so under load a batch is whatever arrived during the
 * previous commit: the cost of a commit is shared by every record in it,
 * and a barrier waits for one commit at most.
 *
 * A batch is applied in two passes. The first, in record order, touches
 * no SQL: it writes output chunks to the log files, follows task statuses
 * in memory (per-status counts), pairs each attempt's start with its end
 * when both are in the batch (one INSERT instead of an INSERT and an
 * UPDATE) and notes which chunks of task statuses changed and the last
 * reason of each task. The second (sqlite_apply.c) writes absolute values
 * only, so it can be retried as a whole when the database is busy.
 * Invariant: a barrier's callback runs after the commit
 * of every record queued before it, or with the sticky error; after the
 * first failure nothing more is written.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store/sqlite_int.h"

static int grow(void **v, size_t *cap, size_t n, size_t elem)
{
	if (n < *cap)
		return 0;
	size_t c = *cap ? *cap * 2 : 256;
	void *p = realloc(*v, c * elem);
	if (!p)
		return -ENOMEM;
	*v = p;
	*cap = c;
	return 0;
}

#define PUSH(v, n, cap, x) \
	(grow((void **)&(v), &(cap), (n), sizeof(*(v))) < 0 ? -ENOMEM : ((v)[(n)++] = (x), 0))

static uint64_t attempt_key(uint32_t task, uint32_t attempt)
{
	return (uint64_t)task << 32 | attempt;
}

static bool failed(struct sq_store *st)
{
	pthread_mutex_lock(&st->lock);
	bool f = st->err != 0;
	pthread_mutex_unlock(&st->lock);
	return f;
}

/* ---- pass 1 ----------------------------------------------------------------- */

static int mark_dirty(struct sq_batch *b, struct sq_run *run)
{
	if (run->dirty)
		return 0;
	run->dirty = true;
	return PUSH(b->dirty, b->ndirty, b->capdirty, run);
}

/* A status change: the counts, the task's chunk, and its note. */
static int note_status(struct sq_batch *b, struct sq_rec *r, uint32_t task, int status,
		       bool reason)
{
	struct sq_run *run = r->run;
	run->counts[run->status[task]]--;
	run->counts[status]++;
	run->status[task] = (uint8_t)status;
	if (mark_dirty(b, run) < 0)
		return -ENOMEM;
	uint32_t chunk = task / SQ_CHUNK;
	if (!sq_map_get(&b->cmap, run->key, chunk)) {
		struct sq_chunk c = {run, chunk};
		if (PUSH(b->chunks, b->nchunks, b->capchunks, c) < 0 ||
		    sq_map_put(&b->cmap, run->key, chunk, (void *)1) < 0)
			return -ENOMEM;
	}
	uint8_t bit = (uint8_t)(1u << (task & 7));
	if (!reason && !(run->noted[task >> 3] & bit))
		return 0;
	if (reason)
		run->noted[task >> 3] |= bit;
	else
		run->noted[task >> 3] &= (uint8_t)~bit;
	uintptr_t i = (uintptr_t)sq_map_get(&b->nmap, run->key, task);
	if (i) {
		b->notes[i - 1] = r;
		return 0;
	}
	if (PUSH(b->notes, b->nnotes, b->capnotes, r) < 0)
		return -ENOMEM;
	return sq_map_put(&b->nmap, run->key, task, (void *)(uintptr_t)b->nnotes);
}

/* Takes one record into the batch. Returns 0 or < 0 (sticky error set). */
static int take(struct sq_store *st, struct sq_batch *b, struct sq_rec *r)
{
	int ret = 0;
	struct sq_op op = {.rec = r};
	uintptr_t i;
	switch (r->type) {
	case REC_START:
		/* The task runs (store.h: attempt_start implies its status). */
		if ((ret = PUSH(b->ops, b->nops, b->capops, op)) == 0 &&
		    (ret = sq_map_put(&b->starts, r->run->key,
				      attempt_key(r->u.start.task, r->u.start.attempt),
				      (void *)(uintptr_t)b->nops)) == 0)
			ret = note_status(b, r, r->u.start.task, STORE_TASK_RUNNING, false);
		break;
	case REC_END:
		i = (uintptr_t)sq_map_get(&b->starts, r->run->key,
					  attempt_key(r->u.end.task, r->u.end.attempt));
		if (i && !b->ops[i - 1].dead) {
			b->ops[i - 1].dead = true;
			op.start = b->ops[i - 1].rec;
		}
		if ((ret = sq_log_finish(st, r->run->key, r->u.end.task, r->u.end.attempt,
					 op.logged, op.cut)) < 0)
			return ret;
		ret = PUSH(b->ops, b->nops, b->capops, op);
		/* The status it carries: in the same batch, so the same
		 * transaction (store.h). */
		if (ret == 0 && r->u.end.status)
			ret = note_status(b, r, r->u.end.task, r->u.end.status->status,
					  r->u.end.status->error_class || r->u.end.status->error);
		break;
	case REC_STATUS:
		ret = note_status(b, r, r->u.status.task, r->u.status.status,
				  r->u.status.error_class || r->u.status.error);
		break;
	case REC_CARRY:
		ret = note_status(b, r, r->u.carry.task, r->u.carry.status, true);
		break;
	case REC_OUTPUT:
		return sq_log_append(st, r);
	case REC_RUN_END:
		if ((ret = mark_dirty(b, r->run)) == 0)
			ret = PUSH(b->other, b->nother, b->capother, r);
		break;
	default:
		ret = PUSH(b->other, b->nother, b->capother, r);
		break;
	}
	if (ret < 0)
		sq_set_error(st, ret, "%s: out of memory in the writer", st->path);
	return ret;
}

static uint64_t thread_cpu_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Copies the writer's counters where stats() reads them. Caller holds lock. */
static void publish(struct sq_store *st, uint64_t cpu)
{
	st->stats.records = st->w.records;
	st->stats.transactions = st->w.transactions;
	st->stats.log_bytes = st->w.log_bytes;
	st->stats.log_cut_bytes = st->w.log_cut_bytes;
	st->stats.writer_cpu_ns = cpu;
}

static void unregister(struct sq_store *st, struct sq_run *run)
{
	pthread_mutex_lock(&st->lock);
	for (size_t i = 0; i < st->nruns; i++) {
		if (st->runs[i] == run) {
			st->runs[i] = st->runs[--st->nruns];
			break;
		}
	}
	pthread_mutex_unlock(&st->lock);
	sq_log_close_run(st, run->key);
	sq_run_free(run);
}

/* Commits the batch, then calls its barriers and runs its prunes. */
static void flush(struct sq_store *st, struct sq_batch *b)
{
	bool work = b->nops || b->nchunks || b->nnotes || b->ndirty;
	for (size_t i = 0; i < b->nother && !work; i++)
		work = b->other[i]->type == REC_RUN_END;
	int err = 0;
	if (failed(st))
		err = -1;
	else if (work)
		err = sq_commit(st, sq_apply_batch, b, "cannot record the runs' progress");
	for (size_t i = 0; i < b->ndirty; i++)
		b->dirty[i]->dirty = false;
	/* Counters first: a barrier's caller may read them. */
	uint64_t cpu = thread_cpu_ns();
	pthread_mutex_lock(&st->lock);
	publish(st, cpu);
	if (err)
		err = st->err;
	pthread_mutex_unlock(&st->lock);
	for (size_t i = 0; i < b->nother; i++) {
		struct sq_rec *r = b->other[i];
		if (r->type == REC_BARRIER) {
			r->u.barrier.cb(r->u.barrier.ud, err);
		} else if (r->type == REC_RUN_END) {
			unregister(st, r->run);
		} else if (r->type == REC_PRUNE && !err) {
			char *msg = NULL;
			struct arena mem = ARENA_INIT;
			struct store_prune_result res;
			int pr = sq_prune_on(st, st->wdb, &r->u.prune, &mem, &res, &msg);
			if (pr < 0) {
				sq_set_error(st, pr, "%s", msg ? msg : "prune failed");
				err = pr;
			}
			free(msg);
			arena_free(&mem);
		}
	}
	b->nops = b->nnotes = b->nchunks = b->nother = b->ndirty = b->nrec = 0;
	sq_map_clear(&b->starts);
	sq_map_clear(&b->nmap);
	sq_map_clear(&b->cmap);
}

static void process(struct sq_store *st, struct sq_batch *b, struct sq_block *list)
{
	bool dead = failed(st);
	for (struct sq_block *blk = list; blk; blk = blk->next) {
		for (size_t off = 0; off < blk->used;) {
			struct sq_rec *r = (struct sq_rec *)(blk->data + off);
			off += r->size;
			st->w.records++;
			if (dead && r->type != REC_BARRIER)
				continue;
			if (dead) {
				if (PUSH(b->other, b->nother, b->capother, r) == 0)
					continue;
				r->u.barrier.cb(r->u.barrier.ud, -ENOMEM);
				continue;
			}
			if (take(st, b, r) < 0) {
				dead = true;
				continue;
			}
			if (++b->nrec >= st->batch_max)
				flush(st, b);
		}
	}
	flush(st, b);
}

/* ---- heartbeats and the end ------------------------------------------------ */

/* Renews (or gives up) the leases of the registered runs. */
static void leases(struct sq_store *st, bool release)
{
	struct sq_leases l = {.release = release};
	pthread_mutex_lock(&st->lock);
	l.keys = st->nruns ? malloc(st->nruns * sizeof(*l.keys)) : NULL;
	for (size_t i = 0; l.keys && i < st->nruns; i++)
		l.keys[l.n++] = st->runs[i]->key;
	pthread_mutex_unlock(&st->lock);
	if (l.n && !failed(st))
		sq_commit(st, sq_apply_leases, &l, release ? "cannot give up the lease"
							   : "cannot renew the lease");
	if (l.lost)
		sq_set_error(st, -EBUSY, "%s: run %llu was taken over by another process "
			     "(its lease is no longer ours): stopping", st->path,
			     (unsigned long long)l.lost);
	free(l.keys);
	st->next_beat_ms = clock_mono_ms() + st->heartbeat_ms;
}

static void abs_deadline(struct timespec *ts, uint64_t mono_ms)
{
	ts->tv_sec = (time_t)(mono_ms / 1000);
	ts->tv_nsec = (long)(mono_ms % 1000) * 1000000;
}

/* Gives the taken blocks back for reuse. Caller holds lock. */
static void recycle(struct sq_store *st, struct sq_block *list)
{
	while (list) {
		struct sq_block *n = list->next;
		if (st->nspare < SQ_SPARE_MAX && list->cap == SQ_BLOCK_SIZE) {
			list->next = st->spare;
			st->spare = list;
			st->nspare++;
		} else {
			free(list);
		}
		list = n;
	}
}

static void *writer_main(void *arg)
{
	struct sq_store *st = arg;
	struct sq_batch b = {0};
	pthread_mutex_lock(&st->lock);
	for (;;) {
		/* Leases are renewed between batches, busy or idle. */
		if (st->nruns && clock_mono_ms() >= st->next_beat_ms) {
			pthread_mutex_unlock(&st->lock);
			leases(st, false);
			pthread_mutex_lock(&st->lock);
		}
		if (!st->head) {
			if (st->stop)
				break;
			if (st->nruns) {
				struct timespec ts;
				abs_deadline(&ts, st->next_beat_ms);
				pthread_cond_timedwait(&st->wake, &st->lock, &ts);
			} else {
				pthread_cond_wait(&st->wake, &st->lock);
			}
			continue;
		}
		/* Group commit: let the batch fill for batch_ms, unless a
		 * barrier is waiting or the batch is full. */
		struct timespec ts;
		abs_deadline(&ts, clock_mono_ms() + st->batch_ms);
		while (!st->stop && !st->barrier_waiting && st->queued < st->batch_max &&
		       st->queued_out < sq_out_wake(st) && !st->err)
			if (pthread_cond_timedwait(&st->wake, &st->lock, &ts) == ETIMEDOUT)
				break;
		struct sq_block *list = st->head;
		st->head = st->tail = NULL;
		st->queued = st->queued_out = 0;
		st->stats.queued_bytes = 0;
		st->barrier_waiting = false;
		pthread_mutex_unlock(&st->lock);
		process(st, &b, list);
		uint64_t cpu = thread_cpu_ns();
		pthread_mutex_lock(&st->lock);
		publish(st, cpu);
		recycle(st, list);
	}
	pthread_mutex_unlock(&st->lock);
	leases(st, true);
	sq_log_close_run(st, 0);
	uint64_t cpu = thread_cpu_ns();
	pthread_mutex_lock(&st->lock);
	publish(st, cpu);
	pthread_mutex_unlock(&st->lock);
	free(b.ops);
	free(b.notes);
	free(b.chunks);
	free(b.other);
	free(b.dirty);
	sq_map_free(&b.starts);
	sq_map_free(&b.nmap);
	sq_map_free(&b.cmap);
	return NULL;
}

int sq_writer_start(struct sq_store *st, char **err)
{
	int r = sq_apply_prepare(st, err);
	if (r < 0)
		return r;
	st->next_beat_ms = clock_mono_ms() + st->heartbeat_ms;
	/* The writer takes no signal: they go to the host's threads. */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	r = pthread_create(&st->writer, NULL, writer_main, st);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r != 0)
		return sq_err(err, -r, "%s: cannot start the writer thread: %s", st->path,
			      strerror(r));
	st->writer_started = true;
	return 0;
}

void sq_writer_stop(struct sq_store *st)
{
	pthread_mutex_lock(&st->lock);
	st->stop = true;
	pthread_cond_signal(&st->wake);
	pthread_mutex_unlock(&st->lock);
	pthread_join(st->writer, NULL);
	st->writer_started = false;
}
