/* sqlite_cache.c: the cache's queries (README "Cache"): the entries of a
 * workflow with what a hit replays of the attempt each names, read in one
 * query when a run starts; and `dagrun cache clear`.
 *
 * Invariant: an entry is written by the writer with the end of the
 * attempt it names (sqlite_apply.c), in the same transaction, so an entry
 * never names an attempt that is not committed; its rows go with their run
 * (ON DELETE CASCADE), so retention never leaves one naming nothing.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "store/sqlite_int.h"

/* The entries, with what a hit replays while the budget lasts (beyond,
 * a hit reads its own: RESULT_SQL). */
#define ENTRIES_SQL \
	"SELECT c.task_id, c.key, c.parts, r.run_id, c.run, c.task, c.attempt, c.created_ms," \
	" a.exit_code, x.http_status, x.model, x.prompt_tokens, x.completion_tokens," \
	" res.value, io.results, io.inputs" \
	" FROM cache c JOIN runs r ON r.id = c.run" \
	" JOIN attempts a ON a.run = c.run AND a.task = c.task AND a.attempt = c.attempt" \
	" LEFT JOIN attempt_ext x ON x.run = c.run AND x.task = c.task AND x.attempt = c.attempt" \
	" LEFT JOIN results res ON res.run = c.run AND res.task = c.task" \
	"  AND res.attempt = c.attempt" \
	" LEFT JOIN attempt_io io ON io.run = c.run AND io.task = c.task" \
	"  AND io.attempt = c.attempt" \
	" WHERE c.workflow = ?1 AND (?2 IS NULL OR c.task_id = ?2)" \
	" ORDER BY c.created_ms DESC"

#define RESULT_SQL \
	"SELECT a.exit_code, x.http_status, x.model, x.prompt_tokens, x.completion_tokens," \
	" res.value, io.results, io.inputs FROM attempts a" \
	" LEFT JOIN attempt_ext x ON x.run = a.run AND x.task = a.task AND x.attempt = a.attempt" \
	" LEFT JOIN results res ON res.run = a.run AND res.task = a.task" \
	"  AND res.attempt = a.attempt" \
	" LEFT JOIN attempt_io io ON io.run = a.run AND io.task = a.task" \
	"  AND io.attempt = a.attempt" \
	" WHERE a.run = ?1 AND a.task = ?2 AND a.attempt = ?3"

static int64_t i64_or(sqlite3_stmt *q, int c, int64_t none)
{
	return sqlite3_column_type(q, c) == SQLITE_NULL ? none : sqlite3_column_int64(q, c);
}

/* Columns from `first` on of q (RESULT_SQL's order) into e. */
static void read_result(sqlite3_stmt *q, int first, struct arena *mem,
			struct store_cache_entry *e)
{
	e->exit_code = (int)i64_or(q, first, -1);
	e->http_status = (int)i64_or(q, first + 1, 0);
	e->model = sq_col_text(mem, q, first + 2);
	e->prompt_tokens = i64_or(q, first + 3, -1);
	e->completion_tokens = i64_or(q, first + 4, -1);
	e->result_json = sq_col_text(mem, q, first + 5);
	e->io_results_json = sq_col_text(mem, q, first + 6);
	e->inputs_json = sq_col_text(mem, q, first + 7);
	e->has_result = true;
}

int sq_cache_entries(struct store *s, const char *workflow, const char *task, uint64_t budget,
		     struct arena *mem, struct store_cache_entry **out, size_t *n, char **err)
{
	struct sq_store *st = sq_of(s);
	sqlite3_stmt *q = NULL;
	struct store_cache_entry *v = NULL;
	size_t cap = 0, k = 0;
	*out = NULL;
	*n = 0;
	int r = sq_q_enter(st, err);
	if (r < 0)
		return r;
	if ((r = sq_q_prep(st, ENTRIES_SQL, &q, err)) < 0)
		goto out;
	sqlite3_bind_text(q, 1, workflow, -1, SQLITE_STATIC);
	if (task)
		sqlite3_bind_text(q, 2, task, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(q, 2);
	int rc;
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		if (k == cap) {
			size_t nc = cap ? cap * 2 : 64;
			struct store_cache_entry *nv = realloc(v, nc * sizeof(*nv));
			if (!nv) {
				r = sq_err(err, -ENOMEM, "out of memory");
				goto out;
			}
			v = nv;
			cap = nc;
		}
		struct store_cache_entry *e = &v[k++];
		memset(e, 0, sizeof(*e));
		e->task_id = sq_col_text(mem, q, 0);
		e->key = sq_col_text(mem, q, 1);
		e->parts = sq_col_text(mem, q, 2);
		e->run_id = sq_col_text(mem, q, 3);
		e->run = (uint64_t)sqlite3_column_int64(q, 4);
		e->task = (uint32_t)sqlite3_column_int64(q, 5);
		e->attempt = (uint32_t)sqlite3_column_int64(q, 6);
		e->created_ms = (uint64_t)sqlite3_column_int64(q, 7);
		e->exit_code = -1;
		e->prompt_tokens = e->completion_tokens = -1;
		uint64_t bytes = 0;
		for (int c = 10; c <= 15; c++)
			bytes += (uint64_t)sqlite3_column_bytes(q, c);
		if (bytes <= budget) {
			budget -= bytes;
			read_result(q, 8, mem, e);
		}
		if (!e->task_id || !e->key || !e->run_id) {
			r = sq_err(err, -ENOMEM, "out of memory");
			goto out;
		}
	}
	if (rc != SQLITE_DONE) {
		r = sq_q_fail(st, rc, err);
		goto out;
	}
	if (k) {
		*out = arena_alloc(mem, k * sizeof(**out));
		if (!*out) {
			r = sq_err(err, -ENOMEM, "out of memory");
			goto out;
		}
		memcpy(*out, v, k * sizeof(**out));
	}
	*n = k;
out:
	free(v);
	sqlite3_finalize(q);
	sq_q_leave(st);
	return r;
}

int sq_cache_result(struct store *s, struct store_cache_entry *e, struct arena *mem,
		    char **err)
{
	struct sq_store *st = sq_of(s);
	sqlite3_stmt *q = NULL;
	int r = sq_q_enter(st, err);
	if (r < 0)
		return r;
	if ((r = sq_q_prep(st, RESULT_SQL, &q, err)) < 0)
		goto out;
	sqlite3_bind_int64(q, 1, (int64_t)e->run);
	sqlite3_bind_int64(q, 2, e->task);
	sqlite3_bind_int64(q, 3, e->attempt);
	int rc = sqlite3_step(q);
	if (rc == SQLITE_DONE) {
		r = sq_err(err, -ENOENT, "%s: the attempt of cache entry %.16s is gone", st->path,
			   e->key);
		goto out;
	}
	if (rc != SQLITE_ROW) {
		r = sq_q_fail(st, rc, err);
		goto out;
	}
	read_result(q, 0, mem, e);
out:
	sqlite3_finalize(q);
	sq_q_leave(st);
	return r;
}

int sq_cache_clear(struct store *s, const char *workflow, const char *task, uint64_t *n,
		   char **err)
{
	struct sq_store *st = sq_of(s);
	*n = 0;
	if (st->read_only)
		return sq_err(err, -EROFS, "%s: open read-only", st->path);
	pthread_mutex_lock(&st->qlock);
	sqlite3_stmt *q = NULL;
	int rc = sqlite3_prepare_v2(st->qdb, workflow ?
				    "DELETE FROM cache WHERE workflow=?1 AND (?2 IS NULL OR task_id=?2)" :
				    "DELETE FROM cache", -1, &q, NULL);
	if (rc == SQLITE_OK && workflow) {
		sqlite3_bind_text(q, 1, workflow, -1, SQLITE_STATIC);
		if (task)
			sqlite3_bind_text(q, 2, task, -1, SQLITE_STATIC);
		else
			sqlite3_bind_null(q, 2);
	}
	if (rc == SQLITE_OK)
		rc = sqlite3_step(q);
	int r = 0;
	if (rc == SQLITE_DONE)
		*n = (uint64_t)sqlite3_changes(st->qdb);
	else
		r = sq_fail(st->qdb, rc, st->path, err, "cannot clear the cache");
	sqlite3_finalize(q);
	pthread_mutex_unlock(&st->qlock);
	return r;
}
