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
 * UPDATE) and keeps only the last status of each task. The second writes
 * absolute values only (upserts), so it can be retried as a whole when the
 * database is busy. Invariant: a barrier's callback runs after the commit
 * of every record queued before it, or with the sticky error; after the
 * first failure nothing more is written.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store/sqlite_int.h"

enum { ST_START, ST_END, ST_RESULT, ST_EXT, ST_TASK, ST_COUNTS, ST_RUN_END,
       ST_BEAT, ST_RELEASE, ST_N };

static const char *const sql[ST_N] = {
	[ST_START] =
	"INSERT INTO attempts(run,task,attempt,start_ms,pid,pgid,pid_start)"
	" VALUES(?1,?2,?3,?4,?5,?6,?7) ON CONFLICT(run,task,attempt) DO UPDATE SET"
	" start_ms=excluded.start_ms, pid=excluded.pid, pgid=excluded.pgid,"
	" pid_start=excluded.pid_start",
	[ST_END] =
	"INSERT INTO attempts(run,task,attempt,flags,start_ms,end_ms,duration_ms,"
	"pid,pgid,pid_start,exit_code,signal,class,error,cpu_user_ms,cpu_sys_ms,"
	"max_rss_kb,out_bytes,err_bytes,out_dropped,err_dropped,out_logged,"
	"err_logged,out_log_cut,err_log_cut) VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,"
	"?10,?11,?12,?13,?14,?15,?16,?17,?18,?19,?20,?21,?22,?23,?24,?25)"
	" ON CONFLICT(run,task,attempt) DO UPDATE SET flags=excluded.flags,"
	" start_ms=excluded.start_ms, end_ms=excluded.end_ms,"
	" duration_ms=excluded.duration_ms, exit_code=excluded.exit_code,"
	" signal=excluded.signal, class=excluded.class, error=excluded.error,"
	" cpu_user_ms=excluded.cpu_user_ms, cpu_sys_ms=excluded.cpu_sys_ms,"
	" max_rss_kb=excluded.max_rss_kb, out_bytes=excluded.out_bytes,"
	" err_bytes=excluded.err_bytes, out_dropped=excluded.out_dropped,"
	" err_dropped=excluded.err_dropped, out_logged=excluded.out_logged,"
	" err_logged=excluded.err_logged, out_log_cut=excluded.out_log_cut,"
	" err_log_cut=excluded.err_log_cut",
	[ST_RESULT] =
	"INSERT OR REPLACE INTO results(run,task,attempt,value) VALUES(?1,?2,?3,?4)",
	[ST_EXT] =
	"INSERT OR REPLACE INTO attempt_ext(run,task,attempt,http_status,"
	"http_queue_us,http_dns_us,http_connect_us,http_tls_us,http_first_byte_us,"
	"http_total_us,http_redirects,model,finish_reason,prompt_sha256,"
	"prompt_tokens,completion_tokens,prompt_bytes,context_cut_bytes)"
	" VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16,?17,?18)",
	[ST_TASK] =
	"INSERT INTO tasks(run,idx,status,class,error,from_run,from_idx)"
	" VALUES(?1,?2,?3,?4,?5,?6,?7) ON CONFLICT(run,idx) DO UPDATE SET"
	" status=excluded.status, class=excluded.class, error=excluded.error,"
	" from_run=excluded.from_run, from_idx=excluded.from_idx",
	[ST_COUNTS] =
	"UPDATE runs SET c_pending=?2, c_running=?3, c_completed=?4, c_failed=?5,"
	" c_retrying=?6, c_skipped=?7, c_cancelled=?8, c_interrupted=?9 WHERE id=?1",
	[ST_RUN_END] =
	"UPDATE runs SET status=?2, end_ms=?3, error=?4, owner_host=NULL,"
	" owner_pid=NULL, owner_start=NULL WHERE id=?1",
	[ST_BEAT] =
	"UPDATE runs SET beat_ms=?2 WHERE id=?1 AND owner_pid=?3 AND owner_host=?4",
	[ST_RELEASE] =
	"UPDATE runs SET owner_host=NULL, owner_pid=NULL, owner_start=NULL"
	" WHERE id=?1 AND owner_pid=?2 AND owner_host=?3",
};

/* An attempt's start or end, in batch order. */
struct op {
	struct sq_rec *rec;
	struct sq_rec *start;      /* END: its START in this batch */
	uint64_t logged[3], cut[3];
	bool dead;                 /* START written with its END */
};

struct batch {
	struct op *ops;
	size_t nops, capops;
	struct sq_rec **tasks;     /* the last STATUS/CARRY of each task */
	size_t ntasks, captasks;
	struct sq_rec **other;     /* RUN_END, BARRIER, PRUNE, in order */
	size_t nother, capother;
	struct sq_run **dirty;
	size_t ndirty, capdirty;
	struct sq_map starts, tmap;
	size_t nrec;
};

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

static int note_status(struct batch *b, struct sq_rec *r, uint32_t task, int status)
{
	struct sq_run *run = r->run;
	uint8_t old = run->status[task];
	run->counts[old]--;
	run->counts[status]++;
	run->status[task] = (uint8_t)status;
	if (!run->dirty) {
		if (PUSH(b->dirty, b->ndirty, b->capdirty, run) < 0)
			return -ENOMEM;
		run->dirty = true;
	}
	uintptr_t i = (uintptr_t)sq_map_get(&b->tmap, run->key, task);
	if (i) {
		b->tasks[i - 1] = r;
		return 0;
	}
	if (PUSH(b->tasks, b->ntasks, b->captasks, r) < 0)
		return -ENOMEM;
	return sq_map_put(&b->tmap, run->key, task, (void *)(uintptr_t)b->ntasks);
}

/* Takes one record into the batch. Returns 0 or < 0 (sticky error set). */
static int take(struct sq_store *st, struct batch *b, struct sq_rec *r)
{
	int ret = 0;
	struct op op = {.rec = r};
	uintptr_t i;
	switch (r->type) {
	case REC_START:
		if ((ret = PUSH(b->ops, b->nops, b->capops, op)) == 0)
			ret = sq_map_put(&b->starts, r->run->key,
					 attempt_key(r->u.start.task, r->u.start.attempt),
					 (void *)(uintptr_t)b->nops);
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
		break;
	case REC_STATUS:
		ret = note_status(b, r, r->u.status.task, r->u.status.status);
		break;
	case REC_CARRY:
		ret = note_status(b, r, r->u.carry.task, r->u.carry.status);
		break;
	case REC_OUTPUT:
		return sq_log_append(st, r);
	case REC_RUN_END:
		if (!r->run->dirty) {
			if (PUSH(b->dirty, b->ndirty, b->capdirty, r->run) < 0)
				ret = -ENOMEM;
			r->run->dirty = true;
		}
		if (!ret)
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

/* ---- pass 2 ----------------------------------------------------------------- */

static void bind_text(sqlite3_stmt *s, int i, const char *t)
{
	if (t)
		sqlite3_bind_text(s, i, t, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(s, i);
}

static int run_stmt(sqlite3_stmt *s)
{
	int rc = sqlite3_step(s);
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static void bind_key(sqlite3_stmt *s, uint64_t run, uint32_t task, uint32_t attempt)
{
	sqlite3_bind_int64(s, 1, (int64_t)run);
	sqlite3_bind_int64(s, 2, task);
	sqlite3_bind_int64(s, 3, attempt);
}

static bool has_ext(const struct store_attempt_end *e)
{
	return e->http_status || e->http_total_us || e->http_queue_us || e->http_redirects ||
	       e->model || e->finish_reason || e->prompt_sha256 || e->prompt_tokens > 0 ||
	       e->completion_tokens > 0 || e->prompt_bytes || e->context_cut_bytes;
}

static int put_ext(struct sq_store *st, uint64_t run, const struct store_attempt_end *e)
{
	sqlite3_stmt *s = st->stmt[ST_EXT];
	bind_key(s, run, e->task, e->attempt);
	sqlite3_bind_int(s, 4, e->http_status);
	const uint64_t us[] = {e->http_queue_us, e->http_dns_us, e->http_connect_us,
			       e->http_tls_us, e->http_first_byte_us, e->http_total_us};
	for (int i = 0; i < 6; i++)
		sqlite3_bind_int64(s, 5 + i, (int64_t)us[i]);
	sqlite3_bind_int64(s, 11, e->http_redirects);
	bind_text(s, 12, e->model);
	bind_text(s, 13, e->finish_reason);
	bind_text(s, 14, e->prompt_sha256);
	if (e->prompt_tokens >= 0)
		sqlite3_bind_int64(s, 15, e->prompt_tokens);
	if (e->completion_tokens >= 0)
		sqlite3_bind_int64(s, 16, e->completion_tokens);
	sqlite3_bind_int64(s, 17, (int64_t)e->prompt_bytes);
	sqlite3_bind_int64(s, 18, (int64_t)e->context_cut_bytes);
	return run_stmt(s);
}

static int put_end(struct sq_store *st, const struct op *op)
{
	const struct store_attempt_end *e = &op->rec->u.end;
	const struct store_attempt_start *a = op->start ? &op->start->u.start : NULL;
	uint64_t run = op->rec->run->key;
	sqlite3_stmt *s = st->stmt[ST_END];
	uint64_t start = e->start_ms ? e->start_ms : a ? a->start_ms : e->end_ms;
	bind_key(s, run, e->task, e->attempt);
	sqlite3_bind_int(s, 4, (int)e->flags);
	sqlite3_bind_int64(s, 5, (int64_t)start);
	sqlite3_bind_int64(s, 6, (int64_t)(e->end_ms > start ? e->end_ms - start : 0));
	sqlite3_bind_int64(s, 7, (int64_t)e->duration_ms);
	if (a) {
		sqlite3_bind_int64(s, 8, a->pid);
		sqlite3_bind_int64(s, 9, a->pgid);
		sqlite3_bind_int64(s, 10, (int64_t)a->pid_start);
	}
	sqlite3_bind_int(s, 11, e->exit_code);
	sqlite3_bind_int(s, 12, e->signal);
	sqlite3_bind_int(s, 13, e->error_class);
	bind_text(s, 14, e->error);
	sqlite3_bind_int64(s, 15, (int64_t)e->cpu_user_ms);
	sqlite3_bind_int64(s, 16, (int64_t)e->cpu_sys_ms);
	sqlite3_bind_int64(s, 17, e->max_rss_kb);
	sqlite3_bind_int64(s, 18, (int64_t)e->out_bytes);
	sqlite3_bind_int64(s, 19, (int64_t)e->err_bytes);
	sqlite3_bind_int64(s, 20, (int64_t)e->out_dropped);
	sqlite3_bind_int64(s, 21, (int64_t)e->err_dropped);
	sqlite3_bind_int64(s, 22, (int64_t)op->logged[STORE_STDOUT]);
	sqlite3_bind_int64(s, 23, (int64_t)op->logged[STORE_STDERR]);
	sqlite3_bind_int64(s, 24, (int64_t)op->cut[STORE_STDOUT]);
	sqlite3_bind_int64(s, 25, (int64_t)op->cut[STORE_STDERR]);
	int rc = run_stmt(s);
	if (rc == SQLITE_OK && e->result_json) {
		s = st->stmt[ST_RESULT];
		bind_key(s, run, e->task, e->attempt);
		sqlite3_bind_text(s, 4, e->result_json, (int)e->result_len, SQLITE_STATIC);
		rc = run_stmt(s);
	}
	if (rc == SQLITE_OK && has_ext(e))
		rc = put_ext(st, run, e);
	return rc;
}

static int put_start(struct sq_store *st, const struct sq_rec *r)
{
	const struct store_attempt_start *a = &r->u.start;
	sqlite3_stmt *s = st->stmt[ST_START];
	bind_key(s, r->run->key, a->task, a->attempt);
	sqlite3_bind_int64(s, 4, (int64_t)a->start_ms);
	sqlite3_bind_int64(s, 5, a->pid);
	sqlite3_bind_int64(s, 6, a->pgid);
	sqlite3_bind_int64(s, 7, (int64_t)a->pid_start);
	return run_stmt(s);
}

static int put_task(struct sq_store *st, const struct sq_rec *r)
{
	sqlite3_stmt *s = st->stmt[ST_TASK];
	sqlite3_bind_int64(s, 1, (int64_t)r->run->key);
	if (r->type == REC_STATUS) {
		const struct store_task_status_rec *t = &r->u.status;
		sqlite3_bind_int64(s, 2, t->task);
		sqlite3_bind_int(s, 3, t->status);
		if (t->error_class)
			sqlite3_bind_int(s, 4, t->error_class);
		bind_text(s, 5, t->error);
	} else {
		sqlite3_bind_int64(s, 2, r->u.carry.task);
		sqlite3_bind_int(s, 3, r->u.carry.status);
		sqlite3_bind_int64(s, 6, (int64_t)r->u.carry.from_run);
		sqlite3_bind_int64(s, 7, r->u.carry.from_task);
	}
	return run_stmt(s);
}

static int put_counts(struct sq_store *st, const struct sq_run *run)
{
	sqlite3_stmt *s = st->stmt[ST_COUNTS];
	sqlite3_bind_int64(s, 1, (int64_t)run->key);
	for (int i = 0; i < STORE_TASK_NSTATUS; i++)
		sqlite3_bind_int64(s, 2 + i, run->counts[i]);
	return run_stmt(s);
}

static int put_run_end(struct sq_store *st, const struct sq_rec *r)
{
	sqlite3_stmt *s = st->stmt[ST_RUN_END];
	sqlite3_bind_int64(s, 1, (int64_t)r->run->key);
	sqlite3_bind_int(s, 2, r->u.run_end.status);
	sqlite3_bind_int64(s, 3, (int64_t)r->u.run_end.end_ms);
	bind_text(s, 4, r->u.run_end.error);
	return run_stmt(s);
}

static int apply(struct sq_store *st, struct batch *b)
{
	int rc = SQLITE_OK;
	for (size_t i = 0; i < b->nops && rc == SQLITE_OK; i++) {
		const struct op *op = &b->ops[i];
		if (op->dead)
			continue;
		rc = op->rec->type == REC_START ? put_start(st, op->rec) : put_end(st, op);
	}
	for (size_t i = 0; i < b->ntasks && rc == SQLITE_OK; i++)
		rc = put_task(st, b->tasks[i]);
	for (size_t i = 0; i < b->ndirty && rc == SQLITE_OK; i++)
		rc = put_counts(st, b->dirty[i]);
	for (size_t i = 0; i < b->nother && rc == SQLITE_OK; i++)
		if (b->other[i]->type == REC_RUN_END)
			rc = put_run_end(st, b->other[i]);
	return rc;
}

/* One transaction of `apply`, retried while the database is busy. */
static int commit(struct sq_store *st, int (*fn)(struct sq_store *, void *), void *arg,
		  const char *what)
{
	uint64_t t0 = sq_mono_ms();
	for (;;) {
		int rc = sq_begin_write(st, st->wdb);
		if (rc == SQLITE_OK)
			rc = fn(st, arg);
		if (rc == SQLITE_OK)
			rc = sq_exec(st->wdb, "COMMIT");
		if (rc == SQLITE_OK) {
			st->w.transactions++;
			return 0;
		}
		char *msg = NULL;
		int code = sq_fail(st->wdb, rc, st->path, &msg, "%s", what);
		sq_exec(st->wdb, "ROLLBACK");
		if ((rc & 0xff) == SQLITE_BUSY && sq_mono_ms() - t0 < st->busy_ms) {
			free(msg);
			continue;
		}
		sq_set_error(st, code, "%s", msg ? msg : "out of memory");
		free(msg);
		return code;
	}
}

static int apply_batch(struct sq_store *st, void *arg)
{
	return apply(st, arg);
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
static void flush(struct sq_store *st, struct batch *b)
{
	bool work = b->nops || b->ntasks || b->ndirty;
	for (size_t i = 0; i < b->nother && !work; i++)
		work = b->other[i]->type == REC_RUN_END;
	int err = 0;
	if (failed(st))
		err = -1;
	else if (work)
		err = commit(st, apply_batch, b, "cannot record the runs' progress");
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
	b->nops = b->ntasks = b->nother = b->ndirty = b->nrec = 0;
	sq_map_clear(&b->starts);
	sq_map_clear(&b->tmap);
}

static void process(struct sq_store *st, struct batch *b, struct sq_block *list)
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

struct beat {
	uint64_t *keys;
	size_t n;
	int stmt;                  /* ST_BEAT or ST_RELEASE */
	uint64_t lost;             /* a run whose lease is gone, or 0 */
};

static int apply_beat(struct sq_store *st, void *arg)
{
	struct beat *bt = arg;
	sqlite3_stmt *s = st->stmt[bt->stmt];
	for (size_t i = 0; i < bt->n; i++) {
		sqlite3_bind_int64(s, 1, (int64_t)bt->keys[i]);
		if (bt->stmt == ST_BEAT) {
			sqlite3_bind_int64(s, 2, (int64_t)sq_now_ms());
			sqlite3_bind_int64(s, 3, st->pid);
			sqlite3_bind_text(s, 4, st->host, -1, SQLITE_STATIC);
		} else {
			sqlite3_bind_int64(s, 2, st->pid);
			sqlite3_bind_text(s, 3, st->host, -1, SQLITE_STATIC);
		}
		int rc = run_stmt(s);
		if (rc != SQLITE_OK)
			return rc;
		if (bt->stmt == ST_BEAT && sqlite3_changes(st->wdb) == 0)
			bt->lost = bt->keys[i];
	}
	return SQLITE_OK;
}

/* Renews (or gives up) the leases of the registered runs. */
static void leases(struct sq_store *st, int stmt)
{
	struct beat bt = {.stmt = stmt};
	pthread_mutex_lock(&st->lock);
	bt.keys = st->nruns ? malloc(st->nruns * sizeof(*bt.keys)) : NULL;
	for (size_t i = 0; bt.keys && i < st->nruns; i++)
		bt.keys[bt.n++] = st->runs[i]->key;
	pthread_mutex_unlock(&st->lock);
	if (bt.n && !failed(st))
		commit(st, apply_beat, &bt, stmt == ST_BEAT ? "cannot renew the lease"
							    : "cannot give up the lease");
	if (bt.lost)
		sq_set_error(st, -EBUSY, "%s: run %llu was taken over by another process "
			     "(its lease is no longer ours): stopping", st->path,
			     (unsigned long long)bt.lost);
	free(bt.keys);
	st->next_beat_ms = sq_mono_ms() + st->heartbeat_ms;
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
		if (st->nspare < 32 && list->cap == ((size_t)64 << 10)) {
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
	struct batch b = {0};
	pthread_mutex_lock(&st->lock);
	for (;;) {
		if (!st->head) {
			if (st->stop)
				break;
			if (st->nruns && sq_mono_ms() >= st->next_beat_ms) {
				pthread_mutex_unlock(&st->lock);
				leases(st, ST_BEAT);
				pthread_mutex_lock(&st->lock);
				continue;
			}
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
		abs_deadline(&ts, sq_mono_ms() + st->batch_ms);
		while (!st->stop && !st->barrier_waiting && st->queued < st->batch_max && !st->err)
			if (pthread_cond_timedwait(&st->wake, &st->lock, &ts) == ETIMEDOUT)
				break;
		struct sq_block *list = st->head;
		st->head = st->tail = NULL;
		st->queued = st->queued_out = 0;
		st->barrier_waiting = false;
		pthread_mutex_unlock(&st->lock);
		process(st, &b, list);
		if (st->nruns && sq_mono_ms() >= st->next_beat_ms)
			leases(st, ST_BEAT);
		uint64_t cpu = thread_cpu_ns();
		pthread_mutex_lock(&st->lock);
		publish(st, cpu);
		recycle(st, list);
	}
	pthread_mutex_unlock(&st->lock);
	leases(st, ST_RELEASE);
	sq_log_close_run(st, 0);
	uint64_t cpu = thread_cpu_ns();
	pthread_mutex_lock(&st->lock);
	publish(st, cpu);
	pthread_mutex_unlock(&st->lock);
	free(b.ops);
	free(b.tasks);
	free(b.other);
	free(b.dirty);
	sq_map_free(&b.starts);
	sq_map_free(&b.tmap);
	return NULL;
}

int sq_writer_start(struct sq_store *st, char **err)
{
	for (int i = 0; i < ST_N; i++) {
		int rc = sqlite3_prepare_v3(st->wdb, sql[i], -1, SQLITE_PREPARE_PERSISTENT,
					    &st->stmt[i], NULL);
		if (rc != SQLITE_OK)
			return sq_fail(st->wdb, rc, st->path, err, "cannot prepare statements");
	}
	st->next_beat_ms = sq_mono_ms() + st->heartbeat_ms;
	/* The writer takes no signal: they go to the host's threads. */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	int r = pthread_create(&st->writer, NULL, writer_main, st);
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
