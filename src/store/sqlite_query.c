/* sqlite_query.c: what the CLI asks: runs, one run, its tasks and attempts,
 * its definition.
 *
 * Every query runs on the callers' connection under qlock, in one read
 * transaction (a WAL snapshot: it never waits for the writer and the
 * writer never waits for it), and copies what it returns into the caller's
 * arena. Listing runs reads only the runs table (counts by status are kept
 * there); a run's tasks read the task id blob, the task rows and the
 * attempts' keys. A task kept by a rerun points (from_run, from_idx) to
 * where its attempts are; chains of reruns are followed.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/sqlite_int.h"

#define RUN_COLS \
	"id, run_id, run_attempt, workflow, path, status, start_ms, end_ms, n_tasks," \
	" c_pending, c_running, c_completed, c_failed, c_retrying, c_skipped," \
	" c_cancelled, c_interrupted, error, owner_host, owner_pid, owner_start, beat_ms," \
	" replay_of"

#define MAX_CHAIN 100          /* reruns followed back from a kept task */

static int oom(char **err)
{
	return sq_err(err, -ENOMEM, "out of memory");
}

static int read_run(struct sq_store *st, sqlite3_stmt *q, struct arena *mem,
		    struct store_run_info *r)
{
	memset(r, 0, sizeof(*r));
	r->key = (uint64_t)sqlite3_column_int64(q, 0);
	r->run_id = sq_col_text(mem, q, 1);
	r->run_attempt = (uint32_t)sqlite3_column_int64(q, 2);
	r->workflow = sq_col_text(mem, q, 3);
	r->path = sq_col_text(mem, q, 4);
	r->status = sqlite3_column_int(q, 5);
	r->start_ms = (uint64_t)sqlite3_column_int64(q, 6);
	r->end_ms = (uint64_t)sqlite3_column_int64(q, 7);
	r->n_tasks = (uint32_t)sqlite3_column_int64(q, 8);
	for (int i = 0; i < STORE_TASK_NSTATUS; i++)
		r->counts[i] = (uint32_t)sqlite3_column_int64(q, 9 + i);
	r->error = sq_col_text(mem, q, 17);
	r->lease.host = sq_col_text(mem, q, 18);
	r->lease.pid = sqlite3_column_int64(q, 19);
	r->lease.pid_start = (uint64_t)sqlite3_column_int64(q, 20);
	r->lease.beat_ms = (uint64_t)sqlite3_column_int64(q, 21);
	r->replay_of = sq_col_text(mem, q, 22);
	r->lease.alive = sq_lease_alive(st, r->lease.host, r->lease.pid, r->lease.pid_start,
					r->lease.beat_ms, clock_wall_ms());
	if (r->status == STORE_RUN_RUNNING && !r->lease.alive)
		r->status = STORE_RUN_INTERRUPTED;
	return r->run_id && r->workflow && r->path ? 0 : -ENOMEM;
}

/* Prepares sql on qdb inside a read transaction. Caller holds qlock. */
int sq_q_prep(struct sq_store *st, const char *sql, sqlite3_stmt **q, char **err)
{
	int rc = sqlite3_prepare_v2(st->qdb, sql, -1, q, NULL);
	return rc == SQLITE_OK ? 0 : sq_fail(st->qdb, rc, st->path, err, "cannot query");
}

int sq_q_prep_run(struct sq_store *st, const char *all, const char *one, uint64_t run,
		  int64_t task, sqlite3_stmt **q, char **err)
{
	int r = sq_q_prep(st, task < 0 ? all : one, q, err);
	if (r < 0)
		return r;
	sqlite3_bind_int64(*q, 1, (int64_t)run);
	if (task >= 0)
		sqlite3_bind_int64(*q, 2, task);
	return 0;
}

int sq_q_enter(struct sq_store *st, char **err)
{
	pthread_mutex_lock(&st->qlock);
	int rc = sq_read_begin(st, st->qdb);
	if (rc == SQLITE_OK)
		return 0;
	int r = sq_fail(st->qdb, rc, st->path, err, "cannot read");
	pthread_mutex_unlock(&st->qlock);
	return r;
}

void sq_q_leave(struct sq_store *st)
{
	sq_read_end(st->qdb);
	pthread_mutex_unlock(&st->qlock);
}

int sq_q_fail(struct sq_store *st, int rc, char **err)
{
	return sq_fail(st->qdb, rc, st->path, err, "cannot read");
}

/* ---- runs ------------------------------------------------------------------- */

int sq_list_runs(struct store *s, const struct store_run_filter *f, struct arena *mem,
		 struct store_run_info **out, size_t *n, char **err)
{
	struct sq_store *st = sq_of(s);
	struct store_run_info *v = NULL, one;
	size_t cap = 0, cnt = 0;
	sqlite3_stmt *q = NULL;
	/* Statuses kept as they are can be filtered by SQL; running and
	 * interrupted (recorded as running) depend on the lease. */
	bool by_sql = f->status > STORE_RUN_RUNNING && f->status < STORE_RUN_INTERRUPTED;
	bool by_lease = f->status == STORE_RUN_RUNNING || f->status == STORE_RUN_INTERRUPTED;
	int r = sq_q_enter(st, err);
	if (r < 0)
		return r;
	if ((r = sq_q_prep(st, f->workflow ?
		      (by_sql || by_lease ? "SELECT " RUN_COLS " FROM runs WHERE workflow=?1 AND status=?2 ORDER BY id DESC"
					  : "SELECT " RUN_COLS " FROM runs WHERE workflow=?1 ORDER BY id DESC") :
		      (by_sql || by_lease ? "SELECT " RUN_COLS " FROM runs WHERE status=?2 ORDER BY id DESC"
					  : "SELECT " RUN_COLS " FROM runs ORDER BY id DESC"),
		      &q, err)) < 0)
		goto out;
	if (f->workflow)
		sqlite3_bind_text(q, 1, f->workflow, -1, SQLITE_STATIC);
	sqlite3_bind_int(q, 2, by_lease ? STORE_RUN_RUNNING : f->status);
	int rc = SQLITE_DONE;
	while ((!f->limit || cnt < f->limit) && (rc = sqlite3_step(q)) == SQLITE_ROW) {
		if (read_run(st, q, mem, &one) < 0) {
			r = oom(err);
			goto out;
		}
		if (by_lease && one.status != f->status)
			continue;
		if (cnt == cap) {
			cap = cap ? cap * 2 : 64;
			struct store_run_info *nv = realloc(v, cap * sizeof(*v));
			if (!nv) {
				r = oom(err);
				goto out;
			}
			v = nv;
		}
		v[cnt++] = one;
	}
	if ((!f->limit || cnt < f->limit) && rc != SQLITE_DONE) {
		r = sq_q_fail(st, rc, err);
		goto out;
	}
	*out = arena_alloc(mem, (cnt ? cnt : 1) * sizeof(**out));
	if (!*out) {
		r = oom(err);
		goto out;
	}
	if (cnt)
		memcpy(*out, v, cnt * sizeof(*v));
	*n = cnt;
out:
	sqlite3_finalize(q);
	sq_q_leave(st);
	free(v);
	return r;
}

/* The first row of q as *out; -ENOENT when none. */
static int one_run(struct sq_store *st, sqlite3_stmt *q, struct arena *mem,
		   struct store_run_info *out, char **err)
{
	int rc = sqlite3_step(q);
	if (rc == SQLITE_DONE)
		return -ENOENT;
	if (rc != SQLITE_ROW)
		return sq_q_fail(st, rc, err);
	return read_run(st, q, mem, out) < 0 ? oom(err) : 0;
}

int sq_get_run(struct store *s, uint64_t key, struct arena *mem,
	       struct store_run_info *out, char **err)
{
	struct sq_store *st = sq_of(s);
	sqlite3_stmt *q = NULL;
	int r = sq_q_enter(st, err);
	if (r < 0)
		return r;
	if ((r = sq_q_prep(st, "SELECT " RUN_COLS " FROM runs WHERE id=?1", &q, err)) == 0) {
		sqlite3_bind_int64(q, 1, (int64_t)key);
		if ((r = one_run(st, q, mem, out, err)) == -ENOENT)
			sq_err(err, r, "%s: no run %llu", st->path, (unsigned long long)key);
	}
	sqlite3_finalize(q);
	sq_q_leave(st);
	return r;
}

#define PREFIX_SHOWN 5          /* run ids an ambiguous prefix names */

/* How many run ids start with prefix (*n), and the first PREFIX_SHOWN of
 * them (for the message). */
static int by_prefix(struct sq_store *st, const char *prefix, const char *workflow,
		     struct arena *mem, const char *ids[PREFIX_SHOWN], int64_t *n,
		     char **err)
{
	sqlite3_stmt *q = NULL;
	/* The first PREFIX_SHOWN ids, then their count: both walk the index
	 * on (run_id, run_attempt) over the prefix's range only. */
	int r = sq_q_prep(st, workflow ?
		     "SELECT run_id, 0 FROM (SELECT DISTINCT run_id FROM runs WHERE run_id >= ?1 "
		     "AND run_id < ?2 AND workflow=?3 ORDER BY run_id LIMIT ?4) UNION ALL "
		     "SELECT NULL, count(DISTINCT run_id) FROM runs WHERE run_id >= ?1 AND "
		     "run_id < ?2 AND workflow=?3" :
		     "SELECT run_id, 0 FROM (SELECT DISTINCT run_id FROM runs WHERE run_id >= ?1 "
		     "AND run_id < ?2 ORDER BY run_id LIMIT ?4) UNION ALL "
		     "SELECT NULL, count(DISTINCT run_id) FROM runs WHERE run_id >= ?1 AND "
		     "run_id < ?2", &q, err);
	if (r < 0)
		return r;
	/* Every character of an id sorts below 0x7f. */
	char *hi = arena_alloc(mem, strlen(prefix) + 2);
	if (!hi) {
		sqlite3_finalize(q);
		return oom(err);
	}
	strcpy(hi, prefix);
	strcat(hi, "\x7f");
	sqlite3_bind_text(q, 1, prefix, -1, SQLITE_STATIC);
	sqlite3_bind_text(q, 2, hi, -1, SQLITE_STATIC);
	if (workflow)
		sqlite3_bind_text(q, 3, workflow, -1, SQLITE_STATIC);
	sqlite3_bind_int(q, 4, PREFIX_SHOWN);
	int rc = SQLITE_DONE, shown = 0;
	*n = 0;
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		if (sqlite3_column_type(q, 0) == SQLITE_NULL)
			*n = sqlite3_column_int64(q, 1);
		else if (shown < PREFIX_SHOWN && !(ids[shown++] = sq_col_text(mem, q, 0)))
			rc = SQLITE_NOMEM;
	}
	sqlite3_finalize(q);
	if (rc == SQLITE_NOMEM)
		return oom(err);
	return rc == SQLITE_DONE ? 0 : sq_q_fail(st, rc, err);
}

/* The message for a prefix matching n > 1 run ids. */
static int ambiguous(const char *ref, const char *const *ids, int64_t n, char **err)
{
	char list[PREFIX_SHOWN * (STORE_RUN_ID_SIZE + 2) + 1] = "";
	size_t len = 0;
	for (int64_t i = 0; i < n && i < PREFIX_SHOWN; i++) {
		int w = snprintf(list + len, sizeof(list) - len, "%s%.64s", i ? ", " : "", ids[i]);
		if (w < 0 || (size_t)w >= sizeof(list) - len)
			break;
		len += (size_t)w;
	}
	if (n > PREFIX_SHOWN)
		return sq_err(err, -EINVAL, "'%s' is ambiguous: it matches %lld runs: %s and %lld more",
			      ref, (long long)n, list, (long long)(n - PREFIX_SHOWN));
	return sq_err(err, -EINVAL, "'%s' is ambiguous: it matches %lld runs: %s", ref,
		      (long long)n, list);
}

int sq_find_run(struct store *s, const char *ref, const char *workflow, struct arena *mem,
		struct store_run_info *out, char **err)
{
	struct sq_store *st = sq_of(s);
	sqlite3_stmt *q = NULL;
	bool last = ref && !strcmp(ref, "last");
	if (!last && !store_run_id_valid(ref))
		return sq_err(err, -EINVAL, "'%s' is not a run id", ref ? ref : "");
	int r = sq_q_enter(st, err);
	if (r < 0)
		return r;
	const char *sql = last ?
		(workflow ? "SELECT " RUN_COLS " FROM runs WHERE workflow=?2 ORDER BY id DESC LIMIT 1"
			  : "SELECT " RUN_COLS " FROM runs ORDER BY id DESC LIMIT 1") :
		(workflow ? "SELECT " RUN_COLS " FROM runs WHERE run_id=?1 AND workflow=?2 "
			    "ORDER BY run_attempt DESC LIMIT 1"
			  : "SELECT " RUN_COLS " FROM runs WHERE run_id=?1 "
			    "ORDER BY run_attempt DESC LIMIT 1");
	if ((r = sq_q_prep(st, sql, &q, err)) < 0)
		goto out;
	if (workflow)
		sqlite3_bind_text(q, 2, workflow, -1, SQLITE_STATIC);
	if (!last)
		sqlite3_bind_text(q, 1, ref, -1, SQLITE_STATIC);
	if ((r = one_run(st, q, mem, out, err)) != -ENOENT)
		goto out;
	if (last) {
		r = sq_err(err, -ENOENT, "no run recorded%s%s in %s", workflow ? " of " : "",
			   workflow ? workflow : "", st->path);
		goto out;
	}
	const char *ids[PREFIX_SHOWN];
	int64_t n = 0;
	if ((r = by_prefix(st, ref, workflow, mem, ids, &n, err)) < 0)
		goto out;
	if (n == 0) {
		r = sq_err(err, -ENOENT, "no run matches '%s' in %s", ref, st->path);
		goto out;
	}
	if (n > 1) {
		r = ambiguous(ref, ids, n, err);
		goto out;
	}
	sqlite3_reset(q);
	sqlite3_bind_text(q, 1, ids[0], -1, SQLITE_STATIC);
	r = one_run(st, q, mem, out, err);
out:
	sqlite3_finalize(q);
	sq_q_leave(st);
	return r;
}

/* ---- tasks ------------------------------------------------------------------- */

int sq_split_ids(struct arena *mem, const char *blob, size_t len, uint32_t n,
		 const char ***out)
{
	const char **ids = arena_alloc(mem, (n ? n : 1) * sizeof(*ids));
	if (!ids)
		return -ENOMEM;
	char *copy = arena_alloc(mem, len + 1);
	if (!copy)
		return -ENOMEM;
	if (len)
		memcpy(copy, blob, len);
	copy[len] = '\0';
	size_t off = 0;
	for (uint32_t i = 0; i < n; i++) {
		ids[i] = off < len ? copy + off : "";
		off += strlen(ids[i]) + 1;
	}
	*out = ids;
	return 0;
}

/* The run's task count and ids. Caller is in a read transaction. */
static int task_ids(struct sq_store *st, uint64_t key, struct arena *mem, uint32_t *n,
		    const char ***ids, char **err)
{
	sqlite3_stmt *q = NULL;
	int r = sq_q_prep(st, "SELECT r.n_tasks, d.task_ids FROM runs r JOIN run_defs d "
		     "ON d.run = r.id WHERE r.id=?1", &q, err);
	if (r < 0)
		return r;
	sqlite3_bind_int64(q, 1, (int64_t)key);
	int rc = sqlite3_step(q);
	if (rc == SQLITE_ROW) {
		*n = (uint32_t)sqlite3_column_int64(q, 0);
		r = sq_split_ids(mem, sqlite3_column_blob(q, 1),
				 (size_t)sqlite3_column_bytes(q, 1), *n, ids);
		if (r < 0)
			oom(err);
	} else if (rc == SQLITE_DONE) {
		r = sq_err(err, -ENOENT, "%s: no run %llu", st->path, (unsigned long long)key);
	} else {
		r = sq_q_fail(st, rc, err);
	}
	sqlite3_finalize(q);
	return r;
}

/* Folds the attempts of (run, task) (all tasks: task < 0) into t[]. */
#define FOLD_SQL "SELECT task, attempt, flags, start_ms, end_ms, duration_ms, exit_code, " \
		 "signal, class, error FROM attempts WHERE run=?1"

static int fold_attempts(struct sq_store *st, uint64_t run, int64_t task, uint32_t as,
			 struct store_task_info *t, uint32_t n, struct arena *mem, char **err)
{
	sqlite3_stmt *q = NULL;
	int r = sq_q_prep_run(st, FOLD_SQL, FOLD_SQL " AND task=?2", run, task, &q, err);
	if (r < 0)
		return r;
	int rc = SQLITE_DONE;
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		int64_t i = task < 0 ? sqlite3_column_int64(q, 0) : as;
		if (i < 0 || i >= n)
			continue;
		struct store_task_info *ti = &t[i];
		/* Rows come by attempt: the last one wins. */
		ti->attempts++;
		ti->flags = (unsigned)sqlite3_column_int(q, 2);
		ti->start_ms = (uint64_t)sqlite3_column_int64(q, 3);
		ti->end_ms = sqlite3_column_type(q, 4) == SQLITE_NULL ? 0 :
			     ti->start_ms + (uint64_t)sqlite3_column_int64(q, 4);
		ti->duration_ms = (uint64_t)sqlite3_column_int64(q, 5);
		ti->exit_code = sqlite3_column_int(q, 6);
		ti->signal = sqlite3_column_int(q, 7);
		bool failed = sqlite3_column_type(q, 2) != SQLITE_NULL &&
			      !(ti->flags & STORE_ATTEMPT_OK);
		ti->error_class = failed ? sqlite3_column_int(q, 8) : 0;
		ti->error = failed ? sq_col_text(mem, q, 9) : NULL;
	}
	sqlite3_finalize(q);
	return rc == SQLITE_DONE ? 0 : sq_q_fail(st, rc, err);
}

/* Where the attempts of (run, task) are stored: follows kept tasks. */
int sq_q_source(struct sq_store *st, uint64_t *run, uint32_t *task, char **err)
{
	sqlite3_stmt *q = NULL;
	int r = sq_q_prep(st, "SELECT from_run, from_idx FROM task_notes WHERE run=?1 AND idx=?2 "
		     "AND from_run IS NOT NULL", &q, err);
	for (int i = 0; r == 0 && i < MAX_CHAIN; i++) {
		sqlite3_reset(q);
		sqlite3_bind_int64(q, 1, (int64_t)*run);
		sqlite3_bind_int64(q, 2, *task);
		int rc = sqlite3_step(q);
		if (rc == SQLITE_DONE)
			break;
		if (rc != SQLITE_ROW) {
			r = sq_q_fail(st, rc, err);
			break;
		}
		*run = (uint64_t)sqlite3_column_int64(q, 0);
		*task = (uint32_t)sqlite3_column_int64(q, 1);
	}
	sqlite3_finalize(q);
	return r;
}

int sq_read_statuses(sqlite3 *db, uint64_t key, uint32_t n, uint8_t *status)
{
	sqlite3_stmt *q = NULL;
	int rc = sqlite3_prepare_v2(db, "SELECT chunk, statuses FROM task_status WHERE run=?1",
				    -1, &q, NULL);
	if (rc == SQLITE_OK)
		sqlite3_bind_int64(q, 1, (int64_t)key);
	while (rc == SQLITE_OK && (rc = sqlite3_step(q)) == SQLITE_ROW) {
		rc = SQLITE_OK;
		uint64_t first = (uint64_t)sqlite3_column_int64(q, 0) * SQ_CHUNK;
		const uint8_t *b = sqlite3_column_blob(q, 1);
		size_t len = (size_t)sqlite3_column_bytes(q, 1);
		for (size_t j = 0; b && j < len && first + j < n; j++)
			status[first + j] = b[j] < STORE_TASK_NSTATUS ? b[j] : STORE_TASK_PENDING;
	}
	sqlite3_finalize(q);
	return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static int task_rows(struct sq_store *st, uint64_t key, struct store_task_info *t,
		     uint32_t n, struct arena *mem, char **err)
{
	uint8_t *status = calloc(n ? n : 1, 1);
	if (!status)
		return oom(err);
	int rc = sq_read_statuses(st->qdb, key, n, status);
	for (uint32_t i = 0; i < n; i++)
		t[i].status = status[i];
	free(status);
	if (rc != SQLITE_OK)
		return sq_q_fail(st, rc, err);
	sqlite3_stmt *q = NULL;
	int r = sq_q_prep(st, "SELECT idx, class, error, from_run, from_idx FROM task_notes "
			  "WHERE run=?1", &q, err);
	if (r < 0)
		return r;
	sqlite3_bind_int64(q, 1, (int64_t)key);
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		int64_t i = sqlite3_column_int64(q, 0);
		if (i < 0 || i >= n)
			continue;
		/* The task's own reason (a dependency failed, ...) wins over
		 * its last attempt's. */
		if (sqlite3_column_int(q, 1) || sqlite3_column_type(q, 2) != SQLITE_NULL) {
			t[i].error_class = sqlite3_column_int(q, 1);
			t[i].error = sq_col_text(mem, q, 2);
		}
		t[i].from_run = (uint64_t)sqlite3_column_int64(q, 3);
		t[i].from_task = (uint32_t)sqlite3_column_int64(q, 4);
	}
	sqlite3_finalize(q);
	return rc == SQLITE_DONE ? 0 : sq_q_fail(st, rc, err);
}

int sq_tasks(struct store *s, uint64_t key, struct arena *mem,
	     struct store_task_info **out, size_t *n, char **err)
{
	struct sq_store *st = sq_of(s);
	const char **ids = NULL;
	uint32_t nt = 0;
	int r = sq_q_enter(st, err);
	if (r < 0)
		return r;
	if ((r = task_ids(st, key, mem, &nt, &ids, err)) < 0)
		goto out;
	struct store_task_info *t = arena_calloc(mem, (nt ? nt : 1) * sizeof(*t));
	if (!t) {
		r = oom(err);
		goto out;
	}
	for (uint32_t i = 0; i < nt; i++) {
		t[i].index = i;
		t[i].id = ids[i];
	}
	if ((r = fold_attempts(st, key, -1, 0, t, nt, mem, err)) < 0 ||
	    (r = task_rows(st, key, t, nt, mem, err)) < 0)
		goto out;
	for (uint32_t i = 0; i < nt && r == 0; i++) {
		if (!t[i].from_run)
			continue;
		uint64_t run = t[i].from_run;
		uint32_t task = t[i].from_task;
		if ((r = sq_q_source(st, &run, &task, err)) == 0) {
			t[i].from_run = run;
			t[i].from_task = task;
			r = fold_attempts(st, run, task, i, t, nt, mem, err);
		}
	}
	*out = t;
	*n = nt;
out:
	sq_q_leave(st);
	return r;
}

int sq_definition(struct store *s, uint64_t key, struct arena *mem,
		  struct store_definition *out, char **err)
{
	struct sq_store *st = sq_of(s);
	sqlite3_stmt *q = NULL;
	memset(out, 0, sizeof(*out));
	int r = sq_q_enter(st, err);
	if (r < 0)
		return r;
	if ((r = sq_q_prep(st, "SELECT r.run_id, r.workflow, r.path, r.run_attempt, r.n_tasks, "
		      "d.definition, d.vars, d.task_ids, d.trigger FROM runs r JOIN run_defs d "
		      "ON d.run = r.id WHERE r.id=?1", &q, err)) < 0)
		goto out;
	sqlite3_bind_int64(q, 1, (int64_t)key);
	int rc = sqlite3_step(q);
	if (rc == SQLITE_DONE) {
		r = sq_err(err, -ENOENT, "%s: no run %llu", st->path, (unsigned long long)key);
		goto out;
	}
	if (rc != SQLITE_ROW) {
		r = sq_q_fail(st, rc, err);
		goto out;
	}
	out->run_id = sq_col_text(mem, q, 0);
	out->workflow = sq_col_text(mem, q, 1);
	out->path = sq_col_text(mem, q, 2);
	out->run_attempt = (uint32_t)sqlite3_column_int64(q, 3);
	out->n_tasks = (uint32_t)sqlite3_column_int64(q, 4);
	size_t dl = (size_t)sqlite3_column_bytes(q, 5);
	char *def = arena_alloc(mem, dl + 1);
	if (def) {
		if (dl)
			memcpy(def, sqlite3_column_blob(q, 5), dl);
		def[dl] = '\0';
	}
	out->definition = def;
	out->definition_len = dl;
	out->vars_json = sq_col_text(mem, q, 6);
	out->trigger_json = sq_col_text(mem, q, 8);
	const char **ids = NULL;
	if (!def || sq_split_ids(mem, sqlite3_column_blob(q, 7), (size_t)sqlite3_column_bytes(q, 7),
				 out->n_tasks, &ids) < 0) {
		r = oom(err);
		goto out;
	}
	out->task_ids = ids;
out:
	sqlite3_finalize(q);
	sq_q_leave(st);
	return r;
}
