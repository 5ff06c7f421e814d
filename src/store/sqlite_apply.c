/* sqlite_apply.c: the writer's statements: what a batch writes.
 *
 * Everything here writes absolute values (inserts that replace, upserts,
 * updates to a value), so a transaction that the database refused while
 * busy can be run again as a whole. Every parameter of a statement is
 * bound on every use (no clearing of bindings between rows). Task
 * statuses are written a chunk of SQ_CHUNK tasks at a time, from the
 * writer's copy of the run's statuses: a batch of N consecutive
 * completions writes N / SQ_CHUNK rows, not N. Likewise the attempts
 * whose start and end share the batch (most of them, in a busy run) are
 * inserted SQ_ROWS rows to a statement.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/sqlite_int.h"

enum { ST_INSERT, ST_START, ST_END, ST_RESULT, ST_IO, ST_EXT, ST_CHUNK, ST_NOTE, ST_UNNOTE,
       ST_COUNTS, ST_RUN_END, ST_BEAT, ST_RELEASE, ST_CACHE, ST_INSERTS, ST_N };

/* Attempts whose start and end share a batch go SQ_ROWS to a statement:
 * the per-statement cost (cursor opened, VM started and halted) is paid
 * once for them all; the rows' own (a seek and an insert each) is not. */
#define SQ_ROWS 16
#define ATT_COLS 26

#define ATT_INSERT \
	"INTO attempts(run,task,attempt,flags,start_ms,end_ms,duration_ms,pid,pgid," \
	"pid_start,exit_code,signal,class,error,cpu_user_ms,cpu_sys_ms,max_rss_kb," \
	"out_bytes,err_bytes,out_dropped,err_dropped,out_logged,err_logged,out_log_cut," \
	"err_log_cut,ready_ms) VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15," \
	"?16,?17,?18,?19,?20,?21,?22,?23,?24,?25,?26)"

static const char *const sql[ST_N] = {
	/* An attempt whose start and end are in one batch: one row. */
	[ST_INSERT] = "INSERT OR REPLACE " ATT_INSERT,
	[ST_START] =
	"INSERT INTO attempts(run,task,attempt,start_ms,pid,pgid,pid_start,ready_ms)"
	" VALUES(?1,?2,?3,?4,?5,?6,?7,?8) ON CONFLICT(run,task,attempt) DO UPDATE SET"
	" start_ms=excluded.start_ms, pid=excluded.pid, pgid=excluded.pgid,"
	" pid_start=excluded.pid_start, ready_ms=excluded.ready_ms",
	/* An end whose start was committed before (or never recorded): the
	 * start's ready time stays. */
	[ST_END] =
	"INSERT " ATT_INSERT
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
	[ST_IO] =
	"INSERT OR REPLACE INTO attempt_io(run,task,attempt,inputs,results) VALUES(?1,?2,?3,?4,?5)",
	[ST_EXT] =
	"INSERT OR REPLACE INTO attempt_ext(run,task,attempt,http_status,"
	"http_queue_us,http_dns_us,http_connect_us,http_tls_us,http_first_byte_us,"
	"http_total_us,http_redirects,model,finish_reason,prompt_sha256,"
	"prompt_tokens,completion_tokens,prompt_bytes,context_cut_bytes)"
	" VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16,?17,?18)",
	/* A cache entry (README "Cache"): the newest attempt of a key wins. */
	[ST_CACHE] =
	"INSERT OR REPLACE INTO cache(workflow,task_id,key,run,task,attempt,created_ms,parts)"
	" SELECT workflow,?4,?5,?1,?2,?3,?6,?7 FROM runs WHERE id=?1",
	[ST_CHUNK] =
	"INSERT OR REPLACE INTO task_status(run,chunk,statuses) VALUES(?1,?2,?3)",
	[ST_NOTE] =
	"INSERT OR REPLACE INTO task_notes(run,idx,class,error,from_run,from_idx)"
	" VALUES(?1,?2,?3,?4,?5,?6)",
	[ST_UNNOTE] = "DELETE FROM task_notes WHERE run=?1 AND idx=?2",
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

/* ST_INSERT with SQ_ROWS rows of values. */
static char *inserts_sql(void)
{
	const char *one = sql[ST_INSERT];
	const char *values = strstr(one, " VALUES(");
	size_t head = (size_t)(values - one) + 7, cap = head + SQ_ROWS * ATT_COLS * 7 + 16;
	char *q = malloc(cap);
	if (!q)
		return NULL;
	memcpy(q, one, head);
	size_t n = head;
	for (int r = 0; r < SQ_ROWS; r++) {
		n += (size_t)snprintf(q + n, cap - n, r ? ",(" : "(");
		for (int c = 0; c < ATT_COLS; c++)
			n += (size_t)snprintf(q + n, cap - n, c ? ",?%d" : "?%d",
					      r * ATT_COLS + c + 1);
		n += (size_t)snprintf(q + n, cap - n, ")");
	}
	return q;
}

int sq_apply_prepare(struct sq_store *st, char **err)
{
	_Static_assert(ST_N <= sizeof(st->stmt) / sizeof(st->stmt[0]), "room for the statements");
	char *many = inserts_sql();
	if (!many)
		return sq_err(err, -ENOMEM, "%s: out of memory", st->path);
	for (int i = 0; i < ST_N; i++) {
		int rc = sqlite3_prepare_v3(st->wdb, i == ST_INSERTS ? many : sql[i], -1,
					    SQLITE_PREPARE_PERSISTENT, &st->stmt[i], NULL);
		if (rc != SQLITE_OK) {
			free(many);
			return sq_fail(st->wdb, rc, st->path, err, "cannot prepare statements");
		}
	}
	free(many);
	return 0;
}

static void bind_text(sqlite3_stmt *s, int i, const char *t)
{
	if (t)
		sqlite3_bind_text(s, i, t, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(s, i);
}

static void bind_u64(sqlite3_stmt *s, int i, uint64_t v)
{
	sqlite3_bind_int64(s, i, (int64_t)v);
}

static int run_stmt(sqlite3_stmt *s)
{
	int rc = sqlite3_step(s);
	sqlite3_reset(s);
	return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* A ready time as stored: ms before the row's start_ms (NULL: not known,
 * ready 0). */
static void bind_ready(sqlite3_stmt *s, int i, uint64_t ready_ms, uint64_t start_ms)
{
	if (ready_ms)
		bind_u64(s, i, ready_ms < start_ms ? start_ms - ready_ms : 0);
	else
		sqlite3_bind_null(s, i);
}

static void bind_key(sqlite3_stmt *s, uint64_t run, uint32_t task, uint32_t attempt)
{
	bind_u64(s, 1, run);
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
		bind_u64(s, 5 + i, us[i]);
	sqlite3_bind_int64(s, 11, e->http_redirects);
	bind_text(s, 12, e->model);
	bind_text(s, 13, e->finish_reason);
	bind_text(s, 14, e->prompt_sha256);
	if (e->prompt_tokens >= 0)
		sqlite3_bind_int64(s, 15, e->prompt_tokens);
	else
		sqlite3_bind_null(s, 15);
	if (e->completion_tokens >= 0)
		sqlite3_bind_int64(s, 16, e->completion_tokens);
	else
		sqlite3_bind_null(s, 16);
	bind_u64(s, 17, e->prompt_bytes);
	bind_u64(s, 18, e->context_cut_bytes);
	return run_stmt(s);
}

/* Binds an attempt's row (ATT_INSERT's ATT_COLS values) at parameters
 * base + 1 ... */
static void bind_attempt(sqlite3_stmt *s, int base, const struct sq_op *op)
{
	const struct store_attempt_end *e = &op->rec->u.end;
	const struct store_attempt_start *a = op->start ? &op->start->u.start : NULL;
	uint64_t start = e->start_ms ? e->start_ms : a ? a->start_ms : e->end_ms;
	bind_u64(s, base + 1, op->rec->run->key);
	sqlite3_bind_int64(s, base + 2, e->task);
	sqlite3_bind_int64(s, base + 3, e->attempt);
	sqlite3_bind_int(s, base + 4, (int)e->flags);
	bind_u64(s, base + 5, start);
	bind_u64(s, base + 6, e->end_ms > start ? e->end_ms - start : 0);
	bind_u64(s, base + 7, e->duration_ms);
	if (a) {
		sqlite3_bind_int64(s, base + 8, a->pid);
		sqlite3_bind_int64(s, base + 9, a->pgid);
		bind_u64(s, base + 10, a->pid_start);
	} else {
		for (int i = 8; i <= 10; i++)
			sqlite3_bind_null(s, base + i);
	}
	sqlite3_bind_int(s, base + 11, e->exit_code);
	sqlite3_bind_int(s, base + 12, e->signal);
	sqlite3_bind_int(s, base + 13, e->error_class);
	bind_text(s, base + 14, e->error);
	bind_u64(s, base + 15, e->cpu_user_ms);
	bind_u64(s, base + 16, e->cpu_sys_ms);
	sqlite3_bind_int64(s, base + 17, e->max_rss_kb);
	const uint64_t v[] = {e->out_bytes, e->err_bytes, e->out_dropped, e->err_dropped,
			      op->logged[STORE_STDOUT], op->logged[STORE_STDERR],
			      op->cut[STORE_STDOUT], op->cut[STORE_STDERR]};
	for (int i = 0; i < 8; i++)
		bind_u64(s, base + 18 + i, v[i]);
	bind_ready(s, base + 26, a ? a->ready_ms : 0, start);
}

/* The rows of other tables an attempt's end writes. */
static int put_end_rest(struct sq_store *st, const struct sq_op *op)
{
	const struct store_attempt_end *e = &op->rec->u.end;
	uint64_t run = op->rec->run->key;
	sqlite3_stmt *s;
	int rc = SQLITE_OK;
	if (e->result_json) {
		s = st->stmt[ST_RESULT];
		bind_key(s, run, e->task, e->attempt);
		sqlite3_bind_text(s, 4, e->result_json, (int)e->result_len, SQLITE_STATIC);
		rc = run_stmt(s);
	}
	if (rc == SQLITE_OK && (e->inputs_json || e->io_results_json)) {
		s = st->stmt[ST_IO];
		bind_key(s, run, e->task, e->attempt);
		bind_text(s, 4, e->inputs_json);
		bind_text(s, 5, e->io_results_json);
		rc = run_stmt(s);
	}
	if (rc == SQLITE_OK && has_ext(e))
		rc = put_ext(st, run, e);
	if (rc == SQLITE_OK && e->cache_key && e->cache_task_id) {
		s = st->stmt[ST_CACHE];
		bind_key(s, run, e->task, e->attempt);
		bind_text(s, 4, e->cache_task_id);
		bind_text(s, 5, e->cache_key);
		bind_u64(s, 6, e->end_ms);
		bind_text(s, 7, e->cache_parts);
		rc = run_stmt(s);
		/* said as what it is (a busy database is retried as a whole) */
		if (rc != SQLITE_OK && (rc & 0xff) != SQLITE_BUSY)
			sq_set_error(st, sq_code(rc), "%s: cannot write the cache entry of task "
				     "'%s': %s", st->path, e->cache_task_id, sqlite3_errmsg(st->wdb));
	}
	return rc;
}

static int put_end(struct sq_store *st, const struct sq_op *op)
{
	sqlite3_stmt *s = st->stmt[op->start ? ST_INSERT : ST_END];
	bind_attempt(s, 0, op);
	int rc = run_stmt(s);
	return rc == SQLITE_OK ? put_end_rest(st, op) : rc;
}

static int put_start(struct sq_store *st, const struct sq_rec *r)
{
	const struct store_attempt_start *a = &r->u.start;
	sqlite3_stmt *s = st->stmt[ST_START];
	bind_key(s, r->run->key, a->task, a->attempt);
	bind_u64(s, 4, a->start_ms);
	sqlite3_bind_int64(s, 5, a->pid);
	sqlite3_bind_int64(s, 6, a->pgid);
	bind_u64(s, 7, a->pid_start);
	bind_ready(s, 8, a->ready_ms, a->start_ms);
	return run_stmt(s);
}

static int put_chunk(struct sq_store *st, const struct sq_chunk *c)
{
	sqlite3_stmt *s = st->stmt[ST_CHUNK];
	uint32_t first = c->chunk * SQ_CHUNK, n = c->run->n_tasks - first;
	bind_u64(s, 1, c->run->key);
	sqlite3_bind_int64(s, 2, c->chunk);
	sqlite3_bind_blob(s, 3, c->run->status + first, (int)(n < SQ_CHUNK ? n : SQ_CHUNK),
			  SQLITE_STATIC);
	return run_stmt(s);
}

/* A task's reason (class, message) or origin (a rerun's kept task); a
 * status without either removes the note left by an earlier one. */
static int put_note(struct sq_store *st, const struct sq_rec *r)
{
	/* A status record, or an end that carries its task's status. */
	const struct store_task_status_rec *t = r->type == REC_END ? r->u.end.status :
						r->type == REC_STATUS ? &r->u.status : NULL;
	uint32_t task = t ? t->task : r->u.carry.task;
	bool keep = !t || t->error_class || t->error;
	sqlite3_stmt *s = st->stmt[keep ? ST_NOTE : ST_UNNOTE];
	bind_u64(s, 1, r->run->key);
	sqlite3_bind_int64(s, 2, task);
	if (!keep)
		return run_stmt(s);
	if (t) {
		sqlite3_bind_int(s, 3, t->error_class);
		bind_text(s, 4, t->error);
		sqlite3_bind_null(s, 5);
		sqlite3_bind_null(s, 6);
	} else {
		sqlite3_bind_null(s, 3);
		sqlite3_bind_null(s, 4);
		bind_u64(s, 5, r->u.carry.from_run);
		sqlite3_bind_int64(s, 6, r->u.carry.from_task);
	}
	return run_stmt(s);
}

static int put_counts(struct sq_store *st, const struct sq_run *run)
{
	sqlite3_stmt *s = st->stmt[ST_COUNTS];
	bind_u64(s, 1, run->key);
	for (int i = 0; i < STORE_TASK_NSTATUS; i++)
		sqlite3_bind_int64(s, 2 + i, run->counts[i]);
	return run_stmt(s);
}

static int put_run_end(struct sq_store *st, const struct sq_rec *r)
{
	sqlite3_stmt *s = st->stmt[ST_RUN_END];
	bind_u64(s, 1, r->run->key);
	sqlite3_bind_int(s, 2, r->u.run_end.status);
	bind_u64(s, 3, r->u.run_end.end_ms);
	bind_text(s, 4, r->u.run_end.error);
	return run_stmt(s);
}

int sq_apply_batch(struct sq_store *st, void *batch)
{
	struct sq_batch *b = batch;
	int rc = SQLITE_OK;
	/* Attempts of distinct keys: their rows can go in any order, the
	 * other tables' rows (the cache's: newest wins) in record order. */
	sqlite3_stmt *many = st->stmt[ST_INSERTS];
	size_t bulk = 0;           /* paired ends left to go SQ_ROWS at a time */
	for (size_t i = 0; i < b->nops; i++)
		bulk += !b->ops[i].dead && b->ops[i].start;
	bulk -= bulk % SQ_ROWS;
	int rows = 0;
	for (size_t i = 0; i < b->nops && rc == SQLITE_OK; i++) {
		const struct sq_op *op = &b->ops[i];
		if (op->dead)
			continue;
		if (op->rec->type == REC_START) {
			rc = put_start(st, op->rec);
		} else if (op->start && bulk) {
			bulk--;
			bind_attempt(many, rows * ATT_COLS, op);
			if (++rows == SQ_ROWS) {
				rc = run_stmt(many);
				rows = 0;
			}
			if (rc == SQLITE_OK)
				rc = put_end_rest(st, op);
		} else {
			rc = put_end(st, op);
		}
	}
	for (size_t i = 0; i < b->nchunks && rc == SQLITE_OK; i++)
		rc = put_chunk(st, &b->chunks[i]);
	for (size_t i = 0; i < b->nnotes && rc == SQLITE_OK; i++)
		rc = put_note(st, b->notes[i]);
	for (size_t i = 0; i < b->ndirty && rc == SQLITE_OK; i++)
		rc = put_counts(st, b->dirty[i]);
	for (size_t i = 0; i < b->nother && rc == SQLITE_OK; i++)
		if (b->other[i]->type == REC_RUN_END)
			rc = put_run_end(st, b->other[i]);
	return rc;
}

int sq_apply_leases(struct sq_store *st, void *leases)
{
	struct sq_leases *l = leases;
	sqlite3_stmt *s = st->stmt[l->release ? ST_RELEASE : ST_BEAT];
	for (size_t i = 0; i < l->n; i++) {
		bind_u64(s, 1, l->keys[i]);
		if (!l->release) {
			bind_u64(s, 2, clock_wall_ms());
			sqlite3_bind_int64(s, 3, st->pid);
			sqlite3_bind_text(s, 4, st->host, -1, SQLITE_STATIC);
		} else {
			sqlite3_bind_int64(s, 2, st->pid);
			sqlite3_bind_text(s, 3, st->host, -1, SQLITE_STATIC);
		}
		int rc = run_stmt(s);
		if (rc != SQLITE_OK)
			return rc;
		if (!l->release && sqlite3_changes(st->wdb) == 0)
			l->lost = l->keys[i];
	}
	return SQLITE_OK;
}

int sq_commit(struct sq_store *st, int (*fn)(struct sq_store *, void *), void *arg,
	      const char *what)
{
	uint64_t t0 = clock_mono_ms();
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
		if ((rc & 0xff) == SQLITE_BUSY && clock_mono_ms() - t0 < st->busy_ms) {
			free(msg);
			continue;
		}
		sq_set_error(st, code, "%s", msg ? msg : "out of memory");
		free(msg);
		return code;
	}
}
