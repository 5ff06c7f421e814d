/* sqlite_lease.c: beginning a run, and the lease that says who drives it.
 *
 * A run's row names its owner: host, pid, the pid's start time (so a later
 * process that got the same pid is not taken for the owner) and the last
 * heartbeat. On the owner's host, the owner is alive while a process with
 * that pid and start time exists (not a zombie); seen from another host
 * (a shared store, later), while its heartbeat is younger than three of
 * our periods. begin() and claim() run on the callers' connection in a
 * write transaction (BEGIN IMMEDIATE), so two processes claiming one run
 * are serialised by SQLite: the second sees the first as a live owner.
 * Invariant: a run registered in a store is one whose lease this process
 * took, and the writer renews it until run_end or close.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/sqlite_int.h"
#include "util/pstat.h"

uint64_t sq_proc_start(int64_t pid)
{
	bool zombie;
	uint64_t t = pstat_start_time(pid, &zombie);
	return zombie ? 0 : t;
}

bool sq_lease_alive(const struct sq_store *st, const char *host, int64_t pid,
		    uint64_t pid_start, uint64_t beat_ms, uint64_t now_ms)
{
	if (!host || pid <= 0)
		return false;
	if (!strcmp(host, st->host)) {
		uint64_t s = sq_proc_start(pid);
		return s && (!pid_start || s == pid_start);
	}
	return beat_ms + 3ull * st->heartbeat_ms > now_ms;
}

void sq_run_free(struct sq_run *r)
{
	if (!r)
		return;
	free(r->run_id);
	free(r->status);
	free(r->noted);
	free(r);
}

static struct sq_run *new_run(uint64_t key, const char *run_id, uint32_t run_attempt,
			      uint32_t n_tasks)
{
	struct sq_run *r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	r->key = key;
	r->n_tasks = n_tasks;
	r->run_attempt = run_attempt;
	r->run_id = strdup(run_id);
	r->status = calloc(n_tasks ? n_tasks : 1, 1);
	r->noted = calloc(n_tasks / 8 + 1, 1);
	if (!r->run_id || !r->status || !r->noted) {
		sq_run_free(r);
		return NULL;
	}
	r->counts[STORE_TASK_PENDING] = n_tasks;
	return r;
}

static int check_begin(const struct store_run_begin *b, char **err)
{
	if (!b->workflow || !b->path || b->run_attempt < 1 || (b->n_tasks && !b->task_ids))
		return sq_err(err, -EINVAL, "begin: workflow, path, run attempt and task ids "
			      "are required");
	if (b->run_id && !store_run_id_valid(b->run_id))
		return sq_err(err, -EINVAL, "begin: '%s' is not a valid run id (1 to 64 of "
			      "A-Z a-z 0-9 _ . -, not starting with '.')", b->run_id);
	return 0;
}

/* The task ids, each NUL-terminated, one after the other. */
static char *id_blob(const struct store_run_begin *b, size_t *len)
{
	size_t n = 0;
	for (uint32_t i = 0; i < b->n_tasks; i++)
		n += strlen(b->task_ids[i]) + 1;
	char *blob = malloc(n ? n : 1), *p = blob;
	if (!blob)
		return NULL;
	for (uint32_t i = 0; i < b->n_tasks; i++) {
		size_t l = strlen(b->task_ids[i]) + 1;
		memcpy(p, b->task_ids[i], l);
		p += l;
	}
	*len = n;
	return blob;
}

/* Whether an attempt of run_id is driven by a live process. */
static int live_attempt(struct sq_store *st, const char *run_id, bool *live)
{
	sqlite3_stmt *q = NULL;
	*live = false;
	int rc = sqlite3_prepare_v2(st->qdb, "SELECT owner_host, owner_pid, owner_start, "
				    "beat_ms FROM runs WHERE run_id=?1 AND status=0", -1, &q, NULL);
	if (rc == SQLITE_OK)
		sqlite3_bind_text(q, 1, run_id, -1, SQLITE_STATIC);
	while (rc == SQLITE_OK && (rc = sqlite3_step(q)) == SQLITE_ROW) {
		rc = SQLITE_OK;
		*live |= sq_lease_alive(st, (const char *)sqlite3_column_text(q, 0),
					sqlite3_column_int64(q, 1),
					(uint64_t)sqlite3_column_int64(q, 2),
					(uint64_t)sqlite3_column_int64(q, 3), clock_wall_ms());
	}
	sqlite3_finalize(q);
	return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* Inserts the run's rows in an open transaction. */
static int insert_run(struct sq_store *st, const struct store_run_begin *b, const char *id,
		      const char *blob, size_t blen, uint64_t *key)
{
	sqlite3_stmt *q = NULL;
	int rc = sqlite3_prepare_v2(st->qdb,
		"INSERT INTO runs(run_id, run_attempt, workflow, path, status, start_ms, "
		"n_tasks, c_pending, owner_host, owner_pid, owner_start, beat_ms, replay_of) "
		"VALUES(?1,?2,?3,?4,0,?5,?6,?6,?7,?8,?9,?10,?11)", -1, &q, NULL);
	if (rc != SQLITE_OK)
		return rc;
	sqlite3_bind_text(q, 1, id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(q, 2, b->run_attempt);
	sqlite3_bind_text(q, 3, b->workflow, -1, SQLITE_STATIC);
	sqlite3_bind_text(q, 4, b->path, -1, SQLITE_STATIC);
	sqlite3_bind_int64(q, 5, (int64_t)b->start_ms);
	sqlite3_bind_int64(q, 6, b->n_tasks);
	sqlite3_bind_text(q, 7, st->host, -1, SQLITE_STATIC);
	sqlite3_bind_int64(q, 8, st->pid);
	sqlite3_bind_int64(q, 9, (int64_t)st->pid_start);
	sqlite3_bind_int64(q, 10, (int64_t)clock_wall_ms());
	if (b->replay_of)
		sqlite3_bind_text(q, 11, b->replay_of, -1, SQLITE_STATIC);
	rc = sqlite3_step(q);
	sqlite3_finalize(q);
	if (rc != SQLITE_DONE)
		return rc;
	*key = (uint64_t)sqlite3_last_insert_rowid(st->qdb);
	rc = sqlite3_prepare_v2(st->qdb, "INSERT INTO run_defs(run, definition, vars, task_ids, "
				"trigger) VALUES(?1,?2,?3,?4,?5)", -1, &q, NULL);
	if (rc != SQLITE_OK)
		return rc;
	sqlite3_bind_int64(q, 1, (int64_t)*key);
	if (b->definition)
		sqlite3_bind_blob64(q, 2, b->definition, b->definition_len, SQLITE_STATIC);
	if (b->vars_json)
		sqlite3_bind_text(q, 3, b->vars_json, -1, SQLITE_STATIC);
	sqlite3_bind_blob64(q, 4, blob, blen, SQLITE_STATIC);
	if (b->trigger_json)
		sqlite3_bind_text(q, 5, b->trigger_json, -1, SQLITE_STATIC);
	rc = sqlite3_step(q);
	sqlite3_finalize(q);
	return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

int sq_begin_run(struct store *s, const struct store_run_begin *b, uint64_t *key,
		 char *run_id, char **err)
{
	struct sq_store *st = sq_of(s);
	char id[STORE_RUN_ID_SIZE > 65 ? STORE_RUN_ID_SIZE : 65];
	size_t blen = 0;
	char *blob = NULL;
	struct sq_run *run = NULL;
	int r = 0, rc = SQLITE_OK;
	if (st->read_only)
		return sq_err(err, -EROFS, "%s: open read-only", st->path);
	if ((r = check_begin(b, err)) < 0)
		return r;
	if (!(blob = id_blob(b, &blen)))
		return sq_err(err, -ENOMEM, "out of memory");
	pthread_mutex_lock(&st->qlock);
	for (int tries = 0;; tries++) {
		if (b->run_id)
			snprintf(id, sizeof(id), "%s", b->run_id);
		else if ((r = store_run_id_make(id, clock_wall_ms())) < 0) {
			sq_err(err, r, "cannot make a run id: %s", strerror(-r));
			goto out;
		}
		if ((rc = sq_begin_write(st, st->qdb)) != SQLITE_OK)
			break;
		bool live = false;
		if (b->run_attempt > 1 && (rc = live_attempt(st, id, &live)) != SQLITE_OK)
			break;
		if (live) {
			sq_exec(st->qdb, "ROLLBACK");
			r = sq_err(err, -EBUSY, "run %s: an attempt of it is still running "
				   "(its owner is alive)", id);
			goto out;
		}
		rc = insert_run(st, b, id, blob, blen, key);
		if (rc == SQLITE_OK)
			rc = sq_exec(st->qdb, "COMMIT");
		if (rc == SQLITE_OK)
			break;
		sq_exec(st->qdb, "ROLLBACK");
		if ((rc & 0xff) != SQLITE_CONSTRAINT)
			break;
		if (b->run_id || tries >= 8) {
			r = sq_err(err, -EEXIST, "run %s attempt %u is already recorded in %s",
				   id, b->run_attempt, st->path);
			goto out;
		}
	}
	if (rc != SQLITE_OK) {
		sq_exec(st->qdb, "ROLLBACK");
		r = sq_fail(st->qdb, rc, st->path, err, "cannot record the run's start");
		goto out;
	}
	if (run_id && !b->run_id)
		memcpy(run_id, id, STORE_RUN_ID_SIZE);
	run = new_run(*key, id, b->run_attempt, b->n_tasks);
	if (!run || (r = sq_register(st, run)) < 0) {
		sq_run_free(run);
		r = sq_err(err, -ENOMEM, "out of memory");
	}
out:
	pthread_mutex_unlock(&st->qlock);
	free(blob);
	return r;
}

/* Reads the run's task statuses and notes into run (in the claim's
 * transaction). */
static int load_status(struct sq_store *st, struct sq_run *run)
{
	int rc = sq_read_statuses(st->qdb, run->key, run->n_tasks, run->status);
	if (rc != SQLITE_OK)
		return rc;
	memset(run->counts, 0, sizeof(run->counts));
	for (uint32_t i = 0; i < run->n_tasks; i++)
		run->counts[run->status[i]]++;
	sqlite3_stmt *q = NULL;
	rc = sqlite3_prepare_v2(st->qdb, "SELECT idx FROM task_notes WHERE run=?1", -1, &q, NULL);
	if (rc == SQLITE_OK)
		sqlite3_bind_int64(q, 1, (int64_t)run->key);
	while (rc == SQLITE_OK && (rc = sqlite3_step(q)) == SQLITE_ROW) {
		int64_t i = sqlite3_column_int64(q, 0);
		rc = SQLITE_OK;
		if (i >= 0 && i < run->n_tasks)
			run->noted[i >> 3] |= (uint8_t)(1u << (i & 7));
	}
	sqlite3_finalize(q);
	return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* Who holds the run, checked and taken in the claim's transaction. */
static int take_lease(struct sq_store *st, uint64_t key, sqlite3_stmt *q,
		      struct store_lease *prev, struct arena *mem, char **err)
{
	const char *id = (const char *)sqlite3_column_text(q, 0);
	int status = sqlite3_column_int(q, 2);
	memset(prev, 0, sizeof(*prev));
	prev->host = sq_col_text(mem, q, 3);
	prev->pid = sqlite3_column_int64(q, 4);
	prev->pid_start = (uint64_t)sqlite3_column_int64(q, 5);
	prev->beat_ms = (uint64_t)sqlite3_column_int64(q, 6);
	uint64_t now = clock_wall_ms();
	prev->alive = sq_lease_alive(st, prev->host, prev->pid, prev->pid_start,
				     prev->beat_ms, now);
	if (status != STORE_RUN_RUNNING)
		return sq_err(err, -EALREADY, "run %s already ended (%s): nothing to resume",
			      id, store_run_status_name(status));
	pthread_mutex_lock(&st->lock);
	bool mine = sq_find_run_locked(st, key) != NULL;
	pthread_mutex_unlock(&st->lock);
	if (mine || prev->alive)
		return sq_err(err, -EBUSY, "run %s is being run by pid %lld on %s (last "
			      "heartbeat %llu s ago): it cannot be resumed while that "
			      "process lives", id, (long long)prev->pid,
			      prev->host ? prev->host : "?",
			      (unsigned long long)(now > prev->beat_ms ? (now - prev->beat_ms) / 1000 : 0));
	sqlite3_stmt *u = NULL;
	int rc = sqlite3_prepare_v2(st->qdb, "UPDATE runs SET owner_host=?2, owner_pid=?3, "
				    "owner_start=?4, beat_ms=?5 WHERE id=?1", -1, &u, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_int64(u, 1, (int64_t)key);
		sqlite3_bind_text(u, 2, st->host, -1, SQLITE_STATIC);
		sqlite3_bind_int64(u, 3, st->pid);
		sqlite3_bind_int64(u, 4, (int64_t)st->pid_start);
		sqlite3_bind_int64(u, 5, (int64_t)now);
		rc = sqlite3_step(u);
	}
	sqlite3_finalize(u);
	if (rc != SQLITE_DONE)
		return sq_fail(st->qdb, rc, st->path, err, "cannot take the lease of run %s", id);
	return 0;
}

int sq_claim(struct store *s, uint64_t key, struct store_lease *prev, struct arena *mem,
	     char **err)
{
	struct sq_store *st = sq_of(s);
	struct store_lease scratch;
	sqlite3_stmt *q = NULL;
	struct sq_run *run = NULL;
	int r = 0;
	if (st->read_only)
		return sq_err(err, -EROFS, "%s: open read-only", st->path);
	if (!prev)
		prev = &scratch;
	pthread_mutex_lock(&st->qlock);
	int rc = sq_begin_write(st, st->qdb);
	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v2(st->qdb, "SELECT run_id, run_attempt, status, owner_host, "
					"owner_pid, owner_start, beat_ms, n_tasks FROM runs "
					"WHERE id=?1", -1, &q, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_int64(q, 1, (int64_t)key);
		rc = sqlite3_step(q);
	}
	if (rc == SQLITE_DONE) {
		r = sq_err(err, -ENOENT, "%s: no run %llu", st->path, (unsigned long long)key);
		goto out;
	}
	if (rc != SQLITE_ROW) {
		r = sq_fail(st->qdb, rc, st->path, err, "cannot read run %llu",
			    (unsigned long long)key);
		goto out;
	}
	if ((r = take_lease(st, key, q, prev, mem, err)) < 0)
		goto out;
	run = new_run(key, (const char *)sqlite3_column_text(q, 0),
		      (uint32_t)sqlite3_column_int64(q, 1), (uint32_t)sqlite3_column_int64(q, 7));
	if (!run) {
		r = sq_err(err, -ENOMEM, "out of memory");
		goto out;
	}
	rc = load_status(st, run);
	if (rc == SQLITE_OK)
		rc = sq_exec(st->qdb, "COMMIT");
	if (rc != SQLITE_OK) {
		r = sq_fail(st->qdb, rc, st->path, err, "cannot claim run %s", run->run_id);
		goto out;
	}
	if ((r = sq_register(st, run)) < 0) {
		sq_err(err, r, "out of memory");
		goto out;
	}
	run = NULL;
out:
	sqlite3_finalize(q);
	if (!sqlite3_get_autocommit(st->qdb))
		sq_exec(st->qdb, "ROLLBACK");
	pthread_mutex_unlock(&st->qlock);
	sq_run_free(run);
	return r;
}
