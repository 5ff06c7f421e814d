/* sqlite.c: the SQLite store's table, open and close, and shared helpers.
 *
 * open: the state directory (created unless read-only), DIR/state.db
 * checked and upgraded (sqlite_schema.c) before anything else is done to
 * it, the writer's connection and statements, the callers' connection,
 * then the writer thread. close: the writer drains the queue and gives up
 * its leases; then both connections close (the last one checkpoints the
 * WAL into state.db).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "store/sqlite_int.h"

int sq_err(char **err, int code, const char *fmt, ...)
{
	if (err && !*err) {
		va_list ap;
		va_start(ap, fmt);
		*err = buf_vstrf(fmt, ap);
		va_end(ap);
	}
	return code;
}

int sq_code(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_OK: case SQLITE_ROW: case SQLITE_DONE: return 0;
	case SQLITE_FULL: return -ENOSPC;
	case SQLITE_BUSY: case SQLITE_LOCKED: return -EBUSY;
	case SQLITE_READONLY: return -EROFS;
	case SQLITE_PERM: case SQLITE_AUTH: return -EACCES;
	case SQLITE_CANTOPEN: return -EACCES;
	case SQLITE_NOTADB: case SQLITE_CORRUPT: return -EPROTO;
	case SQLITE_NOMEM: return -ENOMEM;
	case SQLITE_CONSTRAINT: return -EEXIST;
	default: return -EIO;
	}
}

int sq_fail(sqlite3 *db, int rc, const char *path, char **err,
	    const char *fmt, ...)
{
	int code = sq_code(rc);
	int sys = db ? sqlite3_system_errno(db) : 0;
	if ((rc & 0xff) == SQLITE_CANTOPEN && sys > 0)
		code = -sys;
	if ((rc & 0xff) == SQLITE_IOERR && sys == ENOSPC)
		code = -ENOSPC;
	if (code == 0)
		code = -EIO;
	if (err && !*err) {
		char what[256];
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(what, sizeof(what), fmt, ap);
		va_end(ap);
		const char *why = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
		const char *hint = "";
		if (code == -EPROTO)
			hint = " (not a dagrun state database, or a corrupt one)";
		else if (code == -EBUSY)
			hint = " (another process holds it too long)";
		if (sys > 0 && (rc & 0xff) != SQLITE_NOTADB && (rc & 0xff) != SQLITE_CORRUPT)
			*err = buf_strf("%s: %s: %s%s (%s)", path, what, why, hint, strerror(sys));
		else
			*err = buf_strf("%s: %s: %s%s", path, what, why, hint);
	}
	return code;
}

void sq_set_error(struct sq_store *st, int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *msg = buf_vstrf(fmt, ap);
	va_end(ap);
	bool first = false;
	pthread_mutex_lock(&st->lock);
	if (!st->err) {
		st->err = code < 0 ? code : -EIO;
		st->errmsg = msg;
		msg = NULL;
		first = true;
	}
	pthread_mutex_unlock(&st->lock);
	free(msg);
	/* errmsg is never changed once set: reading it unlocked is safe. */
	if (first && st->on_error)
		st->on_error(st->ud, st->err, st->errmsg ? st->errmsg : "out of memory");
}

int sq_exec(sqlite3 *db, const char *sql)
{
	return sqlite3_exec(db, sql, NULL, NULL, NULL);
}

static void nap_ms(unsigned ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
	nanosleep(&ts, NULL);
}

static void count_retry(struct sq_store *st)
{
	pthread_mutex_lock(&st->lock);
	st->stats.busy_retries++;
	pthread_mutex_unlock(&st->lock);
}

/* SQLite's busy handler waits out most locks; what it cannot (a WAL being
 * recovered by another connection, a stale snapshot) is retried here. */
int sq_begin_write(struct sq_store *st, sqlite3 *db)
{
	uint64_t t0 = clock_mono_ms();
	for (;;) {
		int rc = sq_exec(db, "BEGIN IMMEDIATE");
		if ((rc & 0xff) != SQLITE_BUSY)
			return rc;
		if (clock_mono_ms() - t0 >= st->busy_ms)
			return rc;
		count_retry(st);
		nap_ms(2);
	}
}

int sq_read_begin(struct sq_store *st, sqlite3 *db)
{
	uint64_t t0 = clock_mono_ms();
	for (;;) {
		/* BEGIN is deferred: the SELECT takes the snapshot. */
		int rc = sq_exec(db, "BEGIN; SELECT 1 FROM sqlite_master LIMIT 1");
		if (rc == SQLITE_OK)
			return rc;
		sq_exec(db, "ROLLBACK");
		if ((rc & 0xff) != SQLITE_BUSY || clock_mono_ms() - t0 >= st->busy_ms)
			return rc;
		count_retry(st);
		nap_ms(2);
	}
}

void sq_read_end(sqlite3 *db)
{
	if (!sqlite3_get_autocommit(db))
		sq_exec(db, "COMMIT");
}

const char *sq_col_text(struct arena *mem, sqlite3_stmt *s, int col)
{
	const unsigned char *t = sqlite3_column_text(s, col);
	if (!t)
		return NULL;
	const char *c = arena_strndup(mem, (const char *)t, (size_t)sqlite3_column_bytes(s, col));
	return c ? c : "";
}

/* mkdir -p, the last component with mode 0700. */
static int make_dir(const char *dir)
{
	char *p = strdup(dir);
	int r = 0;
	if (!p)
		return -ENOMEM;
	for (char *c = p + 1; *c; c++) {
		if (*c != '/')
			continue;
		*c = '\0';
		if (mkdir(p, 0755) < 0 && errno != EEXIST) {
			r = -errno;
			goto out;
		}
		*c = '/';
	}
	if (mkdir(p, 0700) < 0 && errno != EEXIST)
		r = -errno;
out:
	free(p);
	return r;
}

static int open_db(struct sq_store *st, sqlite3 **db, bool ro, char **err)
{
	int flags = (ro ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE) |
		    SQLITE_OPEN_NOMUTEX;
	int rc = sqlite3_open_v2(st->path, db, flags, NULL);
	if (rc != SQLITE_OK)
		return sq_fail(*db, rc, st->path, err, "cannot open");
	sqlite3_busy_timeout(*db, (int)st->busy_ms);
	sqlite3_extended_result_codes(*db, 1);
	return 0;
}

int sq_pragmas(struct sq_store *st, sqlite3 *db, char **err)
{
	char sql[160];
	/* The writer's connection checks no foreign key: it only adds rows
	 * to runs that exist (a run's row is committed before its records
	 * are queued, and a live run is never pruned), and the check was a
	 * seek into runs per row, a sixth of the writer's time. Its prunes,
	 * which need ON DELETE CASCADE, turn the checks on for their own
	 * transaction (sqlite_prune.c). */
	snprintf(sql, sizeof(sql), "PRAGMA foreign_keys=%s; PRAGMA synchronous=%s;",
		 db == st->wdb ? "OFF" : "ON", st->durable ? "FULL" : "NORMAL");
	int rc = sq_exec(db, sql);
	if (rc == SQLITE_OK && st->max_db_bytes) {
		sqlite3_stmt *q = NULL;
		uint64_t page = 4096;
		rc = sqlite3_prepare_v2(db, "PRAGMA page_size", -1, &q, NULL);
		if (rc == SQLITE_OK && (rc = sqlite3_step(q)) == SQLITE_ROW) {
			page = (uint64_t)sqlite3_column_int64(q, 0);
			rc = SQLITE_OK;
		}
		sqlite3_finalize(q);
		uint64_t pages = st->max_db_bytes / (page ? page : 4096);
		snprintf(sql, sizeof(sql), "PRAGMA max_page_count=%llu;",
			 (unsigned long long)(pages ? pages : 1));
		if (rc == SQLITE_OK)
			rc = sq_exec(db, sql);
	}
	if (rc != SQLITE_OK)
		return sq_fail(db, rc, st->path, err, "cannot set up the connection");
	return 0;
}

static void free_store(struct sq_store *st)
{
	for (size_t i = 0; i < sizeof(st->stmt) / sizeof(st->stmt[0]); i++)
		sqlite3_finalize(st->stmt[i]);
	sqlite3_close(st->wdb);
	sqlite3_close(st->qdb);
	for (size_t i = 0; i < st->nruns; i++)
		sq_run_free(st->runs[i]);
	free(st->runs);
	for (struct sq_block *b = st->head, *n; b; b = n) {
		n = b->next;
		free(b);
	}
	for (struct sq_block *b = st->spare, *n; b; b = n) {
		n = b->next;
		free(b);
	}
	sq_map_free(&st->logmap);
	pthread_mutex_destroy(&st->lock);
	pthread_mutex_destroy(&st->qlock);
	pthread_cond_destroy(&st->wake);
	free(st->errmsg);
	free(st->dir);
	free(st->path);
	free(st->logs);
	free(st->host);
	free(st);
}

static int check_dir(struct sq_store *st, char **err)
{
	struct stat sb;
	if (st->read_only) {
		if (stat(st->dir, &sb) < 0 || !S_ISDIR(sb.st_mode))
			return sq_err(err, -ENOENT, "%s: no such state directory", st->dir);
		if (stat(st->path, &sb) < 0)
			return sq_err(err, -ENOENT, "%s: no state database (no run recorded here)",
				      st->path);
		return 0;
	}
	int r = make_dir(st->dir);
	if (r < 0)
		return sq_err(err, r, "%s: cannot create the state directory: %s",
			      st->dir, strerror(-r));
	if (access(st->dir, W_OK | X_OK) < 0) {
		r = -errno;
		return sq_err(err, r, "%s: the state directory is not writable: %s",
			      st->dir, strerror(-r));
	}
	if (mkdir(st->logs, 0700) < 0 && errno != EEXIST) {
		r = -errno;
		return sq_err(err, r, "%s: cannot create the log directory: %s",
			      st->logs, strerror(-r));
	}
	return 0;
}

static int init_store(struct sq_store *st, const struct store_opts *o)
{
	st->base.ops = &store_sqlite_ops;
	st->read_only = o->read_only;
	st->durable = o->durable;
	st->log_cap = o->log_cap ? o->log_cap : STORE_LOG_CAP_DEFAULT;
	st->batch_max = o->batch_max ? o->batch_max : STORE_BATCH_MAX_DEFAULT;
	st->batch_ms = o->batch_ms ? o->batch_ms : STORE_BATCH_MS_DEFAULT;
	st->busy_ms = o->busy_ms ? o->busy_ms : STORE_BUSY_MS_DEFAULT;
	st->heartbeat_ms = o->heartbeat_ms ? o->heartbeat_ms : STORE_HEARTBEAT_MS_DEFAULT;
	st->queue_max = o->queue_max ? o->queue_max : STORE_QUEUE_MAX_DEFAULT;
	st->max_db_bytes = o->max_db_bytes;
	st->on_error = o->on_error;
	st->ud = o->ud;
	st->pid = (int64_t)getpid();
	st->pid_start = sq_proc_start(st->pid);
	pthread_mutex_init(&st->lock, NULL);
	pthread_mutex_init(&st->qlock, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&st->wake, &ca);
	pthread_condattr_destroy(&ca);
	char host[256] = "";
	if (!o->host && gethostname(host, sizeof(host) - 1) < 0)
		snprintf(host, sizeof(host), "localhost");
	st->host = strdup(o->host ? o->host : host);
	st->dir = strdup(o->dir);
	st->path = buf_strf("%s/state.db", o->dir);
	st->logs = buf_strf("%s/logs", o->dir);
	return st->host && st->dir && st->path && st->logs ? 0 : -ENOMEM;
}

static int sq_open(const struct store_opts *o, struct store **out, char **err)
{
	*out = NULL;
	if (!o || !o->dir || !*o->dir)
		return sq_err(err, -EINVAL, "no state directory given");
	struct sq_store *st = calloc(1, sizeof(*st));
	if (!st)
		return sq_err(err, -ENOMEM, "out of memory");
	int r = init_store(st, o);
	if (r < 0) {
		sq_err(err, r, "out of memory");
		goto out;
	}
	if ((r = check_dir(st, err)) < 0)
		goto out;
	if (!st->read_only) {
		if ((r = open_db(st, &st->wdb, false, err)) < 0 ||
		    (r = sq_schema_open(st->wdb, st->path, SQ_SCHEMA_VERSION, false, st->busy_ms, err)) < 0 ||
		    (r = sq_pragmas(st, st->wdb, err)) < 0)
			goto out;
	}
	if ((r = open_db(st, &st->qdb, st->read_only, err)) < 0)
		goto out;
	if (st->read_only &&
	    (r = sq_schema_open(st->qdb, st->path, SQ_SCHEMA_VERSION, true, st->busy_ms, err)) < 0)
		goto out;
	if ((r = sq_pragmas(st, st->qdb, err)) < 0)
		goto out;
	if (!st->read_only && (r = sq_writer_start(st, err)) < 0)
		goto out;
	*out = &st->base;
	return 0;
out:
	free_store(st);
	return r;
}

static int sq_close(struct store *s)
{
	if (!s)
		return 0;
	struct sq_store *st = sq_of(s);
	if (st->writer_started)
		sq_writer_stop(st);
	int r = st->err;
	free_store(st);
	return r;
}

const struct store_ops store_sqlite_ops = {
	.name = "sqlite",
	.open = sq_open,
	.close = sq_close,
	.begin = sq_begin_run,
	.claim = sq_claim,
	.attempt_start = sq_attempt_start,
	.attempt_end = sq_attempt_end,
	.task_status = sq_task_status,
	.carry = sq_carry,
	.output = sq_output,
	.run_end = sq_run_end,
	.barrier = sq_barrier,
	.last_error = sq_last_error,
	.stats = sq_stats,
	.list_runs = sq_list_runs,
	.find_run = sq_find_run,
	.get_run = sq_get_run,
	.tasks = sq_tasks,
	.attempts = sq_attempts,
	.log_files = sq_log_files,
	.definition = sq_definition,
	.history = sq_history,
	.workflow_stats = sq_workflow_stats,
	.task_stats = sq_task_stats,
	.prune = sq_prune,
	.prune_due = sq_prune_due,
	.prune_async = sq_prune_async,
	.cache_entries = sq_cache_entries,
	.cache_clear = sq_cache_clear,
	.cache_result = sq_cache_result,
};
