/* sqlite_prune.c: retention.
 *
 * The unit is a run id (every attempt of it goes together: a rerun's kept
 * tasks point into its earlier attempts), its age is that of its newest
 * attempt, and it belongs to the workflow of its newest attempt. Rows go in
 * one transaction (ON DELETE CASCADE takes the tasks, attempts, results and
 * definitions with them); log directories go after the commit, so a failed
 * commit loses no log of a run that stays. Invariant: a run whose owner is
 * alive is never removed (it still counts towards `keep`).
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "store/sqlite_int.h"

struct cand {
	char *run_id, *workflow;
	int64_t newest, start_ms;
};

static int by_workflow(const void *x, const void *y)
{
	const struct cand *a = x, *b = y;
	int c = strcmp(a->workflow, b->workflow);
	if (c)
		return c;
	return a->newest > b->newest ? -1 : a->newest < b->newest;
}

static void free_cands(struct cand *c, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(c[i].run_id);
		free(c[i].workflow);
	}
	free(c);
}

/* Every run id (of o->workflow), with its newest attempt's workflow,
 * start and key. */
static int list_ids(struct sq_store *st, sqlite3 *db, const struct store_prune_opts *o,
		    struct cand **out, size_t *n, char **err)
{
	sqlite3_stmt *q = NULL;
	struct cand *v = NULL;
	size_t cnt = 0, cap = 0;
	/* With one max(), SQLite takes the bare columns from that row. */
	int rc = sqlite3_prepare_v2(db, o->workflow ?
		"SELECT run_id, workflow, start_ms, max(id) FROM runs WHERE workflow=?1 GROUP BY run_id" :
		"SELECT run_id, workflow, start_ms, max(id) FROM runs GROUP BY run_id", -1, &q, NULL);
	if (rc == SQLITE_OK && o->workflow)
		sqlite3_bind_text(q, 1, o->workflow, -1, SQLITE_STATIC);
	while (rc == SQLITE_OK && (rc = sqlite3_step(q)) == SQLITE_ROW) {
		rc = SQLITE_OK;
		if (cnt == cap) {
			cap = cap ? cap * 2 : 256;
			struct cand *nv = realloc(v, cap * sizeof(*v));
			if (!nv) {
				rc = SQLITE_NOMEM;
				break;
			}
			v = nv;
		}
		struct cand *c = &v[cnt];
		c->run_id = strdup((const char *)sqlite3_column_text(q, 0));
		c->workflow = strdup((const char *)sqlite3_column_text(q, 1));
		c->start_ms = sqlite3_column_int64(q, 2);
		c->newest = sqlite3_column_int64(q, 3);
		cnt++;
		if (!c->run_id || !c->workflow)
			rc = SQLITE_NOMEM;
	}
	sqlite3_finalize(q);
	if (rc != SQLITE_DONE) {
		free_cands(v, cnt);
		return sq_fail(db, rc, st->path, err, "cannot list runs to prune");
	}
	qsort(v, cnt, sizeof(*v), by_workflow);
	*out = v;
	*n = cnt;
	return 0;
}

/* Whether an attempt of run_id has a live owner; its log directories'
 * bytes (and, unless dry, their paths in dirs). */
static int inspect(struct sq_store *st, sqlite3 *db, const char *run_id, bool *live,
		   uint64_t *bytes, char ***dirs, size_t *ndirs, char **err)
{
	sqlite3_stmt *q = NULL;
	int rc = sqlite3_prepare_v2(db, "SELECT run_attempt, status, owner_host, owner_pid, "
				    "owner_start, beat_ms FROM runs WHERE run_id=?1", -1, &q, NULL);
	uint64_t now = clock_wall_ms();
	*live = false;
	if (rc == SQLITE_OK)
		sqlite3_bind_text(q, 1, run_id, -1, SQLITE_STATIC);
	while (rc == SQLITE_OK && (rc = sqlite3_step(q)) == SQLITE_ROW) {
		rc = SQLITE_OK;
		if (sqlite3_column_int(q, 1) == STORE_RUN_RUNNING &&
		    sq_lease_alive(st, (const char *)sqlite3_column_text(q, 2),
				   sqlite3_column_int64(q, 3), (uint64_t)sqlite3_column_int64(q, 4),
				   (uint64_t)sqlite3_column_int64(q, 5), now))
			*live = true;
		char dir[PATH_MAX];
		if (sq_log_dir(st, run_id, (uint32_t)sqlite3_column_int64(q, 0), dir, sizeof(dir)) < 0)
			continue;
		sq_log_remove_dir(dir, true, bytes);
		char **nd = realloc(*dirs, (*ndirs + 1) * sizeof(*nd));
		if (!nd || !(nd[*ndirs] = strdup(dir))) {
			if (nd)
				*dirs = nd;
			rc = SQLITE_NOMEM;
			break;
		}
		*dirs = nd;
		(*ndirs)++;
	}
	sqlite3_finalize(q);
	return rc == SQLITE_DONE ? 0 : sq_fail(db, rc, st->path, err, "cannot read run %s", run_id);
}

static int delete_id(struct sq_store *st, sqlite3 *db, const char *run_id, char **err)
{
	sqlite3_stmt *q = NULL;
	int rc = sqlite3_prepare_v2(db, "DELETE FROM runs WHERE run_id=?1", -1, &q, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_text(q, 1, run_id, -1, SQLITE_STATIC);
		rc = sqlite3_step(q);
	}
	sqlite3_finalize(q);
	return rc == SQLITE_DONE ? 0 : sq_fail(db, rc, st->path, err, "cannot remove run %s", run_id);
}

/* Whether candidate i (its position in its workflow is pos) is to go. */
static bool expired(const struct store_prune_opts *o, const struct cand *c, uint32_t pos,
		    uint64_t now)
{
	if (o->keep && pos >= o->keep)
		return true;
	return o->older_than_ms && now > o->older_than_ms &&
	       (uint64_t)c->start_ms < now - o->older_than_ms;
}

int sq_prune_on(struct sq_store *st, sqlite3 *db, const struct store_prune_opts *o,
		struct arena *mem, struct store_prune_result *res, char **err)
{
	struct cand *c = NULL;
	size_t n = 0, ndirs = 0, nout = 0;
	char **dirs = NULL;
	uint64_t now = o->now_ms ? o->now_ms : clock_wall_ms();
	memset(res, 0, sizeof(*res));
	if (!o->keep && !o->older_than_ms)
		return 0;
	/* The writer's connection checks no foreign key (sq_pragmas): the
	 * cascades need them, for this transaction (outside one, or the
	 * pragma does nothing). */
	bool fk = db == st->wdb && !o->dry_run;
	if (fk && sq_exec(db, "PRAGMA foreign_keys=ON") != SQLITE_OK)
		return sq_fail(db, sqlite3_errcode(db), st->path, err, "cannot start pruning");
	int rc = o->dry_run ? sq_read_begin(st, db) : sq_begin_write(st, db);
	if (rc != SQLITE_OK && fk)
		sq_exec(db, "PRAGMA foreign_keys=OFF");
	if (rc != SQLITE_OK)
		return sq_fail(db, rc, st->path, err, "cannot start pruning");
	int r = list_ids(st, db, o, &c, &n, err);
	const char **ids = r == 0 ? arena_alloc(mem, (n ? n : 1) * sizeof(*ids)) : NULL;
	if (r == 0 && !ids)
		r = sq_err(err, -ENOMEM, "out of memory");
	uint32_t pos = 0;
	for (size_t i = 0; r == 0 && i < n; i++) {
		pos = i && !strcmp(c[i].workflow, c[i - 1].workflow) ? pos + 1 : 0;
		if (!expired(o, &c[i], pos, now))
			continue;
		bool live = false;
		size_t before = ndirs;
		uint64_t bytes = 0;
		if ((r = inspect(st, db, c[i].run_id, &live, &bytes, &dirs, &ndirs, err)) < 0)
			break;
		if (live) {
			while (ndirs > before)
				free(dirs[--ndirs]);
			continue;
		}
		if (!o->dry_run && (r = delete_id(st, db, c[i].run_id, err)) < 0)
			break;
		res->log_bytes += bytes;
		if (!(ids[nout++] = arena_strdup(mem, c[i].run_id)))
			r = sq_err(err, -ENOMEM, "out of memory");
	}
	if (r == 0 && !o->dry_run && (rc = sq_exec(db, "COMMIT")) != SQLITE_OK)
		r = sq_fail(db, rc, st->path, err, "cannot commit the pruning");
	if (!sqlite3_get_autocommit(db))
		sq_exec(db, r == 0 ? "COMMIT" : "ROLLBACK");
	if (fk && sq_exec(db, "PRAGMA foreign_keys=OFF") != SQLITE_OK && r == 0)
		r = sq_fail(db, sqlite3_errcode(db), st->path, err, "cannot end pruning");
	/* The rows are gone: now their logs. */
	for (size_t i = 0; i < ndirs; i++) {
		uint64_t ignored = 0;
		if (r == 0 && !o->dry_run)
			sq_log_remove_dir(dirs[i], false, &ignored);
		free(dirs[i]);
	}
	free(dirs);
	free_cands(c, n);
	if (r == 0) {
		res->runs = (uint32_t)nout;
		res->run_ids = ids;
	}
	return r;
}

int sq_prune(struct store *s, const struct store_prune_opts *o, struct arena *mem,
	     struct store_prune_result *res, char **err)
{
	struct sq_store *st = sq_of(s);
	if (st->read_only && !o->dry_run)
		return sq_err(err, -EROFS, "%s: open read-only", st->path);
	pthread_mutex_lock(&st->qlock);
	int r = sq_prune_on(st, st->qdb, o, mem, res, err);
	pthread_mutex_unlock(&st->qlock);
	return r;
}

/* One integer of the workflow's runs, or 0 with no row. */
static int probe(struct sq_store *st, const char *sql, const char *workflow, int64_t arg,
		 int64_t *v, bool *row, char **err)
{
	sqlite3_stmt *q = NULL;
	int rc = sqlite3_prepare_v2(st->qdb, sql, -1, &q, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_text(q, 1, workflow, -1, SQLITE_STATIC);
		sqlite3_bind_int64(q, 2, arg);
		rc = sqlite3_step(q);
	}
	*row = rc == SQLITE_ROW;
	*v = *row ? sqlite3_column_int64(q, 0) : 0;
	sqlite3_finalize(q);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 :
	       sq_fail(st->qdb, rc, st->path, err, "cannot check retention");
}

int sq_prune_due(struct store *s, const struct store_prune_opts *o, char **err)
{
	struct sq_store *st = sq_of(s);
	if (!o->workflow)
		return sq_err(err, -EINVAL, "prune_due: a workflow is required");
	uint64_t now = o->now_ms ? o->now_ms : clock_wall_ms();
	int64_t v = 0;
	bool row = false;
	int r = sq_q_enter(st, err);
	if (r < 0)
		return r;
	/* More rows than keep: maybe more run ids (a rerun adds a row). */
	if (o->keep)
		r = probe(st, "SELECT id FROM runs WHERE workflow=?1 ORDER BY id DESC "
			  "LIMIT 1 OFFSET ?2", o->workflow, o->keep, &v, &row, err);
	if (r == 0 && !row && o->older_than_ms && now > o->older_than_ms) {
		/* Rows are made in time order: the first is the oldest. */
		r = probe(st, "SELECT start_ms FROM runs WHERE workflow=?1 ORDER BY id "
			  "LIMIT 1 OFFSET ?2", o->workflow, 0, &v, &row, err);
		row = row && (uint64_t)v < now - o->older_than_ms;
	}
	sq_q_leave(st);
	return r < 0 ? r : row;
}
