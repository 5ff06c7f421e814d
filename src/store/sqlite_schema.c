/* sqlite_schema.c: the schema of state.db, its versions and migrations.
 *
 * PRAGMA application_id marks a dagrun store; PRAGMA user_version is the
 * schema version. A database is brought forward by applying the steps
 * after its version, in one transaction (a concurrent opener waits on the
 * write lock, then finds the work done). Invariant: nothing is written to
 * a file before it is known to be a dagrun store (or empty) of a version
 * this build knows; a newer, foreign or unreadable file is refused as it
 * is, and its name is in the message.
 *
 * Why this shape (the budget is 300 bytes per task attempt): integer keys
 * (a run's rowid, the task's index), WITHOUT ROWID tables keyed by
 * (run, task, attempt) so a row holds its key once and no rowid; task ids
 * stored once per run, as one blob in run_defs; task statuses one byte
 * each, 512 to a row (a batch rewrites the few chunks it touched, not a
 * row per task), and a task's reason or origin in a row of its own only
 * when it has one; end times as milliseconds after the start, ready times
 * as milliseconds before it (NULL or 0 cost one byte, a wait under 128 ms
 * two);
 * results, and HTTP and AI details, in tables of their own, so the rows of
 * command tasks stay small and scans of attempts (history) stay fast;
 * per-status task counts kept in the run's row, so listing runs never
 * counts tasks.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "store/sqlite_int.h"

static const char *const steps[SQ_SCHEMA_VERSION] = {
	/* v1: runs, their definitions, tasks, attempts, results. */
	"CREATE TABLE runs("
	" id INTEGER PRIMARY KEY,"
	" run_id TEXT NOT NULL,"
	" run_attempt INTEGER NOT NULL,"
	" workflow TEXT NOT NULL,"
	" path TEXT NOT NULL,"
	" status INTEGER NOT NULL DEFAULT 0,"   /* enum store_run_status */
	" start_ms INTEGER NOT NULL,"
	" end_ms INTEGER,"
	" n_tasks INTEGER NOT NULL,"
	" c_pending INTEGER NOT NULL DEFAULT 0, c_running INTEGER NOT NULL DEFAULT 0,"
	" c_completed INTEGER NOT NULL DEFAULT 0, c_failed INTEGER NOT NULL DEFAULT 0,"
	" c_retrying INTEGER NOT NULL DEFAULT 0, c_skipped INTEGER NOT NULL DEFAULT 0,"
	" c_cancelled INTEGER NOT NULL DEFAULT 0, c_interrupted INTEGER NOT NULL DEFAULT 0,"
	" error TEXT,"
	" owner_host TEXT, owner_pid INTEGER, owner_start INTEGER, beat_ms INTEGER,"
	" UNIQUE(run_id, run_attempt));"
	"CREATE INDEX runs_by_workflow ON runs(workflow, id);"
	"CREATE TABLE run_defs("
	" run INTEGER PRIMARY KEY REFERENCES runs(id) ON DELETE CASCADE,"
	" definition BLOB, vars TEXT,"
	" task_ids BLOB NOT NULL);"            /* "id\\0id\\0...", index order */
	"CREATE TABLE task_status("            /* byte i: task chunk * 512 + i */
	" run INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,"
	" chunk INTEGER NOT NULL,"
	" statuses BLOB NOT NULL,"             /* enum store_task_status each */
	" PRIMARY KEY(run, chunk)) WITHOUT ROWID;"
	"CREATE TABLE task_notes("             /* only tasks that have one */
	" run INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,"
	" idx INTEGER NOT NULL,"
	" class INTEGER, error TEXT,"          /* why it failed or was skipped */
	" from_run INTEGER, from_idx INTEGER," /* kept from that run attempt */
	" PRIMARY KEY(run, idx)) WITHOUT ROWID;"
	"CREATE TABLE attempts("
	" run INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,"
	" task INTEGER NOT NULL, attempt INTEGER NOT NULL,"
	" flags INTEGER,"                      /* STORE_ATTEMPT_*; NULL: no end yet */
	" start_ms INTEGER, end_ms INTEGER,"   /* end: ms after start_ms */
	" duration_ms INTEGER,"
	" pid INTEGER, pgid INTEGER, pid_start INTEGER,"
	" exit_code INTEGER, signal INTEGER, class INTEGER, error TEXT,"
	" cpu_user_ms INTEGER, cpu_sys_ms INTEGER, max_rss_kb INTEGER,"
	" out_bytes INTEGER, err_bytes INTEGER, out_dropped INTEGER, err_dropped INTEGER,"
	" out_logged INTEGER, err_logged INTEGER, out_log_cut INTEGER, err_log_cut INTEGER,"
	" PRIMARY KEY(run, task, attempt)) WITHOUT ROWID;"
	"CREATE TABLE results("
	" run INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,"
	" task INTEGER NOT NULL, attempt INTEGER NOT NULL,"
	" value TEXT NOT NULL,"                /* JSON: output, json, outputs */
	" PRIMARY KEY(run, task, attempt)) WITHOUT ROWID;",

	/* v2: HTTP and AI details of attempts, in a table of their own. */
	"CREATE TABLE attempt_ext("
	" run INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,"
	" task INTEGER NOT NULL, attempt INTEGER NOT NULL,"
	" http_status INTEGER, http_queue_us INTEGER, http_dns_us INTEGER,"
	" http_connect_us INTEGER, http_tls_us INTEGER, http_first_byte_us INTEGER,"
	" http_total_us INTEGER, http_redirects INTEGER,"
	" model TEXT, finish_reason TEXT, prompt_sha256 TEXT,"
	" prompt_tokens INTEGER, completion_tokens INTEGER,"
	" prompt_bytes INTEGER, context_cut_bytes INTEGER,"
	" PRIMARY KEY(run, task, attempt)) WITHOUT ROWID;",

	/* v3: when an attempt became ready (its dependencies done, or its
	 * retry delay over), as ms before its start_ms; NULL: not known (runs
	 * recorded before, or by an engine that does not say). Added last,
	 * so existing rows are not rewritten. */
	"ALTER TABLE attempts ADD COLUMN ready_ms INTEGER;",

	/* v4: what replay needs of an attempt (README "Replay"): its rendered
	 * inputs as one canonical JSON document, and the results that are in
	 * no other column nor in the log files (outputs, response headers),
	 * masked. A table of its own, keyed as attempts: a command task's row
	 * is its inputs alone (tens of bytes), and runs recorded before have
	 * none (replay says so). */
	"CREATE TABLE attempt_io("
	" run INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,"
	" task INTEGER NOT NULL, attempt INTEGER NOT NULL,"
	" inputs TEXT, results TEXT,"
	" PRIMARY KEY(run, task, attempt)) WITHOUT ROWID;",

	/* v5: a run made by `dagrun replay RUN --live TASK` (README "Replay"):
	 * the id of the run replayed; NULL for every other run. Added last,
	 * so existing rows are not rewritten. */
	"ALTER TABLE runs ADD COLUMN replay_of TEXT;",

	/* v6: the JSON body of the incoming webhook that started the run
	 * (`trigger.body` in its expressions; README "Incoming webhooks"),
	 * kept with the definition so that resume, rerun, replay and export
	 * see the same body; NULL: started otherwise. */
	"ALTER TABLE run_defs ADD COLUMN trigger TEXT;",

	/* v7: the cache (README "Cache"): per workflow and task id, the key of
	 * each attempt that ran and succeeded under one (the newest per key),
	 * the attempt it names (whose recorded result a hit replays), and the
	 * key's components (for explain). Its rows go with their run. */
	"CREATE TABLE cache("
	" workflow TEXT NOT NULL, task_id TEXT NOT NULL, key TEXT NOT NULL,"
	" run INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,"
	" task INTEGER NOT NULL, attempt INTEGER NOT NULL,"
	" created_ms INTEGER NOT NULL, parts TEXT,"
	" PRIMARY KEY(workflow, task_id, key)) WITHOUT ROWID;"
	"CREATE INDEX cache_by_run ON cache(run);",
};

/* One integer from a PRAGMA or a SELECT. */
static int read_int(sqlite3 *db, const char *sql, int64_t *v)
{
	sqlite3_stmt *s = NULL;
	int rc = sqlite3_prepare_v2(db, sql, -1, &s, NULL);
	if (rc == SQLITE_OK) {
		rc = sqlite3_step(s);
		if (rc == SQLITE_ROW) {
			*v = sqlite3_column_int64(s, 0);
			rc = SQLITE_OK;
		} else if (rc == SQLITE_DONE) {
			*v = 0;
			rc = SQLITE_OK;
		}
	}
	sqlite3_finalize(s);
	return rc;
}

struct header {
	int64_t app, version, objects;
};

static int read_header(sqlite3 *db, struct header *h)
{
	int rc = read_int(db, "PRAGMA application_id", &h->app);
	if (rc == SQLITE_OK)
		rc = read_int(db, "PRAGMA user_version", &h->version);
	if (rc == SQLITE_OK)
		rc = read_int(db, "SELECT count(*) FROM sqlite_master", &h->objects);
	return rc;
}

/* Refuses what this build must not touch. */
static int judge(const struct header *h, const char *path, int target, char **err)
{
	if (h->app != SQ_APPLICATION_ID && (h->app != 0 || h->objects != 0))
		return sq_err(err, -EPROTO,
			      "%s: not a dagrun state database (application_id %#llx, %lld "
			      "schema objects); left untouched", path,
			      (unsigned long long)h->app, (long long)h->objects);
	if (h->version > target)
		return sq_err(err, -EPROTONOSUPPORT,
			      "%s: written by a newer dagrun (schema version %lld, this build "
			      "knows up to %d); left untouched: use a newer dagrun", path,
			      (long long)h->version, target);
	if (h->app == SQ_APPLICATION_ID && h->version < 1)
		return sq_err(err, -EPROTO, "%s: a dagrun state database without a schema "
			      "version (corrupt?); left untouched", path);
	return 0;
}

static int migrate(sqlite3 *db, const char *path, int target, char **err)
{
	int rc = sq_exec(db, "BEGIN IMMEDIATE");
	struct header h = {0};
	if (rc != SQLITE_OK)
		return sq_fail(db, rc, path, err, "cannot lock to set up the schema");
	/* Another process may have set it up while we waited. */
	if ((rc = read_header(db, &h)) != SQLITE_OK) {
		sq_fail(db, rc, path, err, "cannot read the schema");
		goto fail;
	}
	int r = judge(&h, path, target, err);
	if (r < 0) {
		sq_exec(db, "ROLLBACK");
		return r;
	}
	if (h.version == 0 && h.app == 0) {
		char sql[64];
		snprintf(sql, sizeof(sql), "PRAGMA application_id=%d", SQ_APPLICATION_ID);
		if ((rc = sq_exec(db, sql)) != SQLITE_OK) {
			sq_fail(db, rc, path, err, "cannot mark the file");
			goto fail;
		}
	}
	for (int v = (int)h.version; v < target; v++) {
		if ((rc = sq_exec(db, steps[v])) != SQLITE_OK) {
			sq_fail(db, rc, path, err, "cannot upgrade the schema to version %d", v + 1);
			goto fail;
		}
	}
	char sql[64];
	snprintf(sql, sizeof(sql), "PRAGMA user_version=%d", target);
	if ((rc = sq_exec(db, sql)) != SQLITE_OK || (rc = sq_exec(db, "COMMIT")) != SQLITE_OK) {
		sq_fail(db, rc, path, err, "cannot set up the schema");
		goto fail;
	}
	return 0;
fail:
	sq_exec(db, "ROLLBACK");
	return sq_code(rc) ? sq_code(rc) : -EIO;
}

/* WAL mode, if not yet. Switching needs the database to itself: while
 * other openers read it, SQLite answers busy at once, so wait here. */
static int to_wal(sqlite3 *db, unsigned busy_ms)
{
	struct timespec nap = {0, 2000000};
	uint64_t t0 = clock_mono_ms();
	for (;;) {
		sqlite3_stmt *q = NULL;
		int rc = sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &q, NULL);
		bool wal = false;
		if (rc == SQLITE_OK && (rc = sqlite3_step(q)) == SQLITE_ROW) {
			wal = !sqlite3_stricmp((const char *)sqlite3_column_text(q, 0), "wal");
			rc = SQLITE_OK;
		}
		sqlite3_finalize(q);
		if (rc == SQLITE_OK && !wal)
			rc = sq_exec(db, "PRAGMA journal_mode=WAL");
		if ((rc & 0xff) != SQLITE_BUSY)
			return rc;
		if (clock_mono_ms() - t0 >= busy_ms)
			return rc;
		nanosleep(&nap, NULL);
	}
}

int sq_schema_open(sqlite3 *db, const char *path, int target, bool read_only,
		   unsigned busy_ms, char **err)
{
	struct header h = {0};
	/* One snapshot: another process may be creating the schema. */
	int rc = sq_exec(db, "BEGIN");
	if (rc == SQLITE_OK)
		rc = read_header(db, &h);
	if (rc == SQLITE_OK)
		rc = sq_exec(db, "COMMIT");
	if (rc != SQLITE_OK) {
		int code = sq_fail(db, rc, path, err, "cannot read");
		if (!sqlite3_get_autocommit(db))
			sq_exec(db, "ROLLBACK");
		return code;
	}
	int r = judge(&h, path, target, err);
	if (r < 0)
		return r;
	if (read_only) {
		if (h.version == 0)
			return sq_err(err, -ENOENT, "%s: empty (no run recorded here)", path);
		if (h.version < target)
			return sq_err(err, -EPROTONOSUPPORT,
				      "%s: schema version %lld is older than this dagrun's (%d) "
				      "and the store is open read-only: run a workflow (or prune) "
				      "once to upgrade it", path, (long long)h.version, target);
		return 0;
	}
	/* Known to be ours (or empty): now it may be written. */
	if ((rc = to_wal(db, busy_ms)) != SQLITE_OK)
		return sq_fail(db, rc, path, err, "cannot switch to WAL mode");
	if (h.version == target)
		return 0;
	return migrate(db, path, target, err);
}
