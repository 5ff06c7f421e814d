/* test_store_faults.c: the state store with other processes and bad
 * conditions: two writers in one state directory, a reader during writes,
 * kill -9 after a barrier, leases (a dead owner taken over, a live one
 * refused, heartbeats), schema versions (an older file upgraded, a newer,
 * foreign or corrupt one refused untouched), a read-only directory, a full
 * database, a full disk under the log files. */
#include "helpers.h"

#include <sys/mount.h>
#include <sqlite3.h>

#include "store/sqlite_int.h"

/* Fails the child (exit 1) instead of cmocka's longjmp. */
#define CHECK(c) do { if (!(c)) { fprintf(stderr, "child: %s:%d: %s\n", __FILE__, \
					       __LINE__, #c); _exit(1); } } while (0)

static uint64_t child_begin(struct store *s, const char *wf, uint32_t n)
{
	char **ids = t_ids(n, "t");
	struct store_run_begin b = {.run_attempt = 1, .workflow = wf, .path = "p",
				    .task_ids = (const char *const *)ids, .n_tasks = n,
				    .start_ms = t_now_ms()};
	uint64_t key = 0;
	CHECK(s->ops->begin(s, &b, &key, NULL, NULL) == 0);
	t_free_ids(ids, n);
	return key;
}

static void child_attempt(struct store *s, uint64_t key, uint32_t i)
{
	struct store_task_status_rec st = {.task = i, .status = STORE_TASK_RUNNING};
	struct store_attempt_start a = {.task = i, .attempt = 1, .start_ms = t_now_ms(), .pid = 1};
	struct store_attempt_end e = {.task = i, .attempt = 1, .flags = 1, .duration_ms = i};
	CHECK(store_task_status(s, key, &st) == 0);
	CHECK(store_attempt_start(s, key, &a) == 0);
	CHECK(store_output(s, key, i, 1, STORE_STDOUT, "x\n", 2) == 0);
	CHECK(store_attempt_end(s, key, &e) == 0);
	st.status = STORE_TASK_COMPLETED;
	CHECK(store_task_status(s, key, &st) == 0);
}

/* A child that records n attempts with a barrier every `every`; exits 0. */
static pid_t spawn_writer(const char *dir, const char *wf, uint32_t n, uint32_t every)
{
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid)
		return pid;
	struct store_opts o = {.dir = dir};
	struct store *s = NULL;
	char *err = NULL;
	if (store_open(&store_sqlite_ops, &o, &s, &err) < 0) {
		fprintf(stderr, "child: %s\n", err);
		_exit(1);
	}
	uint64_t key = child_begin(s, wf, n);
	for (uint32_t i = 0; i < n; i++) {
		child_attempt(s, key, i);
		if (i % every == every - 1)
			CHECK(t_sync(s) == 0);
	}
	CHECK(s->ops->run_end(s, key, STORE_RUN_COMPLETED, t_now_ms(), NULL) == 0);
	CHECK(store_close(s) == 0);
	_exit(0);
}

static void count_completed(struct store *s, const char *wf, uint32_t want)
{
	struct arena mem = ARENA_INIT;
	struct store_run_info ri;
	char *err = NULL;
	assert_int_equal(s->ops->find_run(s, "last", wf, &mem, &ri, &err), 0);
	assert_int_equal(ri.status, STORE_RUN_COMPLETED);
	assert_int_equal(ri.counts[STORE_TASK_COMPLETED], want);
	struct store_attempt_info *at;
	size_t n;
	assert_int_equal(s->ops->attempts(s, ri.key, STORE_ALL_TASKS, &mem, &at, &n, &err), 0);
	assert_int_equal(n, want);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(at[i].task, i);
		assert_int_equal(at[i].duration_ms, i);
		assert_int_equal(at[i].out_logged, 2);
	}
	arena_free(&mem);
}

static void two_processes_write_one_state_dir_and_lose_no_record(void **state)
{
	(void)state;
	char *tmp = t_tmpdir(), *dir = t_statedir(tmp);
	pid_t a = spawn_writer(dir, "one", 3000, 50);
	pid_t b = spawn_writer(dir, "two", 3000, 50);
	int sa = t_waitpid(a, 120), sb = t_waitpid(b, 120);
	assert_true(WIFEXITED(sa) && WEXITSTATUS(sa) == 0);
	assert_true(WIFEXITED(sb) && WEXITSTATUS(sb) == 0);
	struct store_opts ro = {.read_only = true};
	struct store *s = t_open(dir, &ro);
	count_completed(s, "one", 3000);
	count_completed(s, "two", 3000);
	assert_int_equal(store_close(s), 0);
	t_rmrf(tmp);
	free(tmp);
	free(dir);
}

static void processes_creating_one_store_at_once_all_open_it(void **state)
{
	(void)state;
	enum { KIDS = 8, ROUNDS = 10 };
	for (int round = 0; round < ROUNDS; round++) {
		char *tmp = t_tmpdir(), *dir = t_statedir(tmp);
		int go[2];
		assert_int_equal(pipe(go), 0);
		pid_t kids[KIDS];
		for (int k = 0; k < KIDS; k++) {
			kids[k] = fork();
			assert_true(kids[k] >= 0);
			if (kids[k])
				continue;
			close(go[1]);
			char c;
			CHECK(read(go[0], &c, 1) == 0);   /* all start together */
			struct store_opts o = {.dir = dir};
			struct store *s = NULL;
			char *err = NULL;
			if (store_open(&store_sqlite_ops, &o, &s, &err) < 0) {
				fprintf(stderr, "child: %s\n", err);
				_exit(1);
			}
			CHECK(store_close(s) == 0);
			_exit(0);
		}
		close(go[0]);
		close(go[1]);
		for (int k = 0; k < KIDS; k++) {
			int st = t_waitpid(kids[k], 60);
			assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
		}
		t_rmrf(tmp);
		free(tmp);
		free(dir);
	}
}

static void a_reader_during_writes_sees_consistent_snapshots(void **state)
{
	(void)state;
	char *tmp = t_tmpdir(), *dir = t_statedir(tmp), *err = NULL;
	/* The directory and an empty store exist before the reader opens. */
	store_close(t_open(dir, NULL));
	pid_t w = spawn_writer(dir, "wf", 20000, 25);
	struct store_opts ro = {.read_only = true};
	struct store *s = t_open(dir, &ro);
	struct arena mem = ARENA_INIT;
	uint32_t last = 0, reads = 0;
	int status = 0;
	for (;;) {
		bool done = waitpid(w, &status, WNOHANG) == w;
		struct store_run_info ri;
		int r = s->ops->find_run(s, "last", NULL, &mem, &ri, &err);
		if (r == 0) {
			/* The counts in the run's row and the task rows agree:
			 * each query is one snapshot. */
			struct store_task_info *t;
			size_t n;
			assert_int_equal(s->ops->tasks(s, ri.key, &mem, &t, &n, &err), 0);
			uint32_t done_tasks = 0;
			for (size_t i = 0; i < n; i++)
				done_tasks += t[i].status == STORE_TASK_COMPLETED;
			uint32_t c = ri.counts[STORE_TASK_COMPLETED];
			assert_true(c >= last);
			assert_true(done_tasks >= c);
			last = c;
			reads++;
		} else {
			assert_int_equal(r, -ENOENT);   /* before the run began */
			free(err);
			err = NULL;
		}
		arena_free(&mem);
		if (done)
			break;
		usleep(20000);
	}
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	assert_true(reads > 0);
	count_completed(s, "wf", 20000);
	assert_int_equal(store_close(s), 0);
	t_rmrf(tmp);
	free(tmp);
	free(dir);
}

static void records_confirmed_by_a_barrier_survive_kill_9(void **state)
{
	(void)state;
	char *tmp = t_tmpdir(), *dir = t_statedir(tmp), *err = NULL;
	int fds[2];
	assert_int_equal(pipe(fds), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (!pid) {
		close(fds[0]);
		struct store_opts o = {.dir = dir};
		struct store *s = NULL;
		CHECK(store_open(&store_sqlite_ops, &o, &s, NULL) == 0);
		uint64_t key = child_begin(s, "wf", 1000000);
		CHECK(write(fds[1], &key, sizeof(key)) == sizeof(key));
		for (uint32_t i = 0;; i++) {
			child_attempt(s, key, i);
			if (i % 10 == 9) {
				CHECK(t_sync(s) == 0);
				uint32_t n = i + 1;   /* committed: say so */
				CHECK(write(fds[1], &n, sizeof(n)) == sizeof(n));
			}
		}
	}
	close(fds[1]);
	uint64_t key;
	assert_int_equal(read(fds[0], &key, sizeof(key)), sizeof(key));
	uint32_t confirmed = 0, n;
	while (confirmed < 3000 && read(fds[0], &n, sizeof(n)) == sizeof(n))
		confirmed = n;
	kill(pid, SIGKILL);
	t_waitpid(pid, 60);
	while (read(fds[0], &n, sizeof(n)) == sizeof(n))
		confirmed = n;
	close(fds[0]);
	struct store *s = t_open(dir, NULL);
	struct arena mem = ARENA_INIT;
	struct store_run_info ri;
	assert_int_equal(s->ops->get_run(s, key, &mem, &ri, &err), 0);
	assert_int_equal(ri.status, STORE_RUN_INTERRUPTED);   /* its owner is dead */
	assert_true(ri.counts[STORE_TASK_COMPLETED] >= confirmed);
	struct store_attempt_info *at;
	size_t na;
	assert_int_equal(s->ops->attempts(s, key, STORE_ALL_TASKS, &mem, &at, &na, &err), 0);
	assert_true(na >= confirmed);
	for (size_t i = 0; i < confirmed; i++) {
		assert_int_equal(at[i].task, i);
		assert_true(at[i].ended);
	}
	arena_free(&mem);
	assert_int_equal(store_close(s), 0);
	t_rmrf(tmp);
	free(tmp);
	free(dir);
}

/* ---- leases ------------------------------------------------------------------------ */

static void a_live_owner_is_refused_and_a_dead_one_taken_over(void **state)
{
	(void)state;
	char *tmp = t_tmpdir(), *dir = t_statedir(tmp), *err = NULL;
	int up[2], down[2];
	assert_int_equal(pipe(up), 0);
	assert_int_equal(pipe(down), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (!pid) {
		struct store_opts o = {.dir = dir};
		struct store *s = NULL;
		CHECK(store_open(&store_sqlite_ops, &o, &s, NULL) == 0);
		uint64_t key = child_begin(s, "wf", 3);
		child_attempt(s, key, 0);
		CHECK(t_sync(s) == 0);
		CHECK(write(up[1], &key, sizeof(key)) == sizeof(key));
		char c;
		CHECK(read(down[0], &c, 1) >= 0);   /* until killed */
		_exit(0);
	}
	uint64_t key;
	assert_int_equal(read(up[0], &key, sizeof(key)), sizeof(key));
	struct store *s = t_open(dir, NULL);
	struct arena mem = ARENA_INIT;
	struct store_lease prev;
	char pidtext[32];
	snprintf(pidtext, sizeof(pidtext), "pid %d", (int)pid);
	assert_int_equal(s->ops->claim(s, key, &prev, &mem, &err), -EBUSY);
	assert_non_null(strstr(err, pidtext));
	free(err);
	err = NULL;
	struct store_attempt_start a = {.task = 1, .attempt = 1};
	assert_int_equal(store_attempt_start(s, key, &a), -EINVAL);   /* not ours */
	kill(pid, SIGKILL);
	t_waitpid(pid, 60);
	assert_int_equal(s->ops->claim(s, key, &prev, &mem, &err), 0);
	assert_int_equal(prev.pid, pid);
	assert_false(prev.alive);
	/* Claimed: the counts carry on from what was committed. */
	t_attempt(s, key, 1, 1, true, 1);
	t_attempt(s, key, 2, 1, true, 1);
	assert_int_equal(s->ops->claim(s, key, &prev, &mem, &err), -EBUSY);  /* ours now */
	free(err);
	err = NULL;
	assert_int_equal(s->ops->run_end(s, key, STORE_RUN_COMPLETED, 1, NULL), 0);
	assert_int_equal(t_sync(s), 0);
	struct store_run_info ri;
	assert_int_equal(s->ops->get_run(s, key, &mem, &ri, &err), 0);
	assert_int_equal(ri.counts[STORE_TASK_COMPLETED], 3);
	assert_int_equal(ri.counts[STORE_TASK_PENDING], 0);
	assert_int_equal(s->ops->claim(s, key, &prev, &mem, &err), -EALREADY);
	free(err);
	err = NULL;
	/* A pid that lives but started at another time is not the owner. */
	uint64_t k2 = t_begin(s, "wf", 1, NULL, 1, NULL);
	assert_int_equal(store_close(s), 0);
	sqlite3 *db;
	char *path = NULL;
	assert_true(asprintf(&path, "%s/state.db", dir) > 0);
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	char sql[400], host[256] = "";
	gethostname(host, sizeof(host) - 1);
	snprintf(sql, sizeof(sql), "UPDATE runs SET owner_host='%s', owner_pid=%d, "
		 "owner_start=1 WHERE id=%llu", host, (int)getpid(), (unsigned long long)k2);
	assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	s = t_open(dir, NULL);
	assert_int_equal(s->ops->claim(s, k2, &prev, &mem, &err), 0);
	assert_int_equal(prev.pid, getpid());
	assert_false(prev.alive);
	arena_free(&mem);
	assert_int_equal(store_close(s), 0);
	free(path);
	t_rmrf(tmp);
	free(tmp);
	free(dir);
}

static void another_hosts_lease_lives_by_its_heartbeat(void **state)
{
	(void)state;
	char *tmp = t_tmpdir(), *dir = t_statedir(tmp), *err = NULL;
	struct store_opts oa = {.host = "host-a", .heartbeat_ms = 200};
	struct store *a = t_open(dir, &oa);
	usleep(200000);   /* the writer is idle, asleep, when the run begins */
	uint64_t key = t_begin(a, "wf", 1, NULL, 1, NULL);
	struct store_opts ob = {.host = "host-b", .heartbeat_ms = 200};
	struct store *b = t_open(dir, &ob);
	struct arena mem = ARENA_INIT;
	struct store_run_info r0, r1;
	assert_int_equal(b->ops->get_run(b, key, &mem, &r0, &err), 0);
	/* host-a renews its lease: the heartbeat moves. */
	for (int i = 0; i < 1000; i++) {
		usleep(20000);
		assert_int_equal(b->ops->get_run(b, key, &mem, &r1, &err), 0);
		if (r1.lease.beat_ms > r0.lease.beat_ms)
			break;
	}
	assert_true(r1.lease.beat_ms > r0.lease.beat_ms);
	assert_true(r1.lease.alive);
	struct store_lease prev;
	assert_int_equal(b->ops->claim(b, key, &prev, &mem, &err), -EBUSY);
	assert_non_null(strstr(err, "host-a"));
	free(err);
	err = NULL;
	/* host-a stops beating (as if its machine died): host-b takes over
	 * once three periods have passed. */
	assert_int_equal(a->ops->close(a), 0);
	sqlite3 *db;
	char *path = NULL;
	assert_true(asprintf(&path, "%s/state.db", dir) > 0);
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "UPDATE runs SET owner_host='host-a', owner_pid=1, "
				      "beat_ms=1", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	assert_int_equal(b->ops->claim(b, key, &prev, &mem, &err), 0);
	assert_string_equal(prev.host, "host-a");
	assert_false(prev.alive);
	arena_free(&mem);
	assert_int_equal(store_close(b), 0);
	free(path);
	t_rmrf(tmp);
	free(tmp);
	free(dir);
}

/* ---- schema versions and files that are not ours --------------------------------------- */

static char *state_db(const char *dir)
{
	char *p = NULL;
	assert_true(asprintf(&p, "%s/state.db", dir) > 0);
	return p;
}

/* Opening must fail with code, a message naming the file and `what`, and
 * leave the file byte for byte as it was. */
static void refused_untouched(const char *dir, bool read_only, int code, const char *what)
{
	char *path = state_db(dir);
	size_t len0, len1;
	char *before = t_read_file(path, &len0);
	assert_non_null(before);
	struct store_opts o = {.dir = dir, .read_only = read_only};
	struct store *s = NULL;
	char *err = NULL;
	assert_int_equal(store_open(&store_sqlite_ops, &o, &s, &err), code);
	assert_null(s);
	assert_non_null(err);
	assert_non_null(strstr(err, path));
	if (!strstr(err, what))
		fail_msg("message without '%s': %s", what, err);
	char *after = t_read_file(path, &len1);
	assert_int_equal(len0, len1);
	assert_memory_equal(before, after, len0);
	free(before);
	free(after);
	free(err);
	free(path);
}

static void an_older_schema_is_upgraded_keeping_its_runs(void **state)
{
	(void)state;
	char *tmp = t_tmpdir(), *dir = t_statedir(tmp), *err = NULL;
	assert_int_equal(mkdir(dir, 0700), 0);
	char *path = state_db(dir);
	sqlite3 *db;
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sq_schema_open(db, path, 1, false, 1000, &err), 0);
	assert_int_equal(sqlite3_exec(db,
		"INSERT INTO runs(id, run_id, run_attempt, workflow, path, status, start_ms, "
		"n_tasks, c_completed) VALUES(1, 'old-run', 1, 'wf', 'p', 1, 5, 1, 1);"
		"INSERT INTO run_defs(run, task_ids) VALUES(1, CAST('only' || char(0) AS BLOB));"
		"INSERT INTO attempts(run, task, attempt, flags, start_ms, end_ms, duration_ms) "
		"VALUES(1, 0, 1, 1, 5, 10, 10);", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	struct store *s = t_open(dir, NULL);
	struct arena mem = ARENA_INIT;
	struct store_run_info ri;
	assert_int_equal(s->ops->find_run(s, "old-run", NULL, &mem, &ri, &err), 0);
	assert_int_equal(ri.status, STORE_RUN_COMPLETED);
	struct store_task_info *t;
	size_t n;
	assert_int_equal(s->ops->tasks(s, ri.key, &mem, &t, &n, &err), 0);
	assert_string_equal(t[0].id, "only");
	assert_int_equal(t[0].duration_ms, 10);
	/* What v2 added works. */
	uint64_t key = t_begin(s, "wf", 1, NULL, 1, NULL);
	struct store_attempt_end e = {.task = 0, .attempt = 1, .flags = 1, .model = "m",
				      .http_status = 200};
	assert_int_equal(store_attempt_end(s, key, &e), 0);
	assert_int_equal(t_sync(s), 0);
	struct store_attempt_info *at;
	assert_int_equal(s->ops->attempts(s, key, 0, &mem, &at, &n, &err), 0);
	assert_string_equal(at[0].model, "m");
	assert_int_equal(store_close(s), 0);
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	sqlite3_stmt *q;
	assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &q, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(q), SQLITE_ROW);
	assert_int_equal(sqlite3_column_int(q, 0), SQ_SCHEMA_VERSION);
	sqlite3_finalize(q);
	sqlite3_close(db);
	arena_free(&mem);
	free(path);
	t_rmrf(tmp);
	free(tmp);
	free(dir);
}

static void a_newer_schema_is_refused_untouched(void **state)
{
	(void)state;
	char *tmp = t_tmpdir(), *dir = t_statedir(tmp);
	struct store *s = t_open(dir, NULL);
	uint64_t key = t_begin(s, "wf", 1, NULL, 1, NULL);
	t_attempt(s, key, 0, 1, true, 1);
	assert_int_equal(store_close(s), 0);
	char *path = state_db(dir);
	sqlite3 *db;
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "PRAGMA user_version=99", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	refused_untouched(dir, false, -EPROTONOSUPPORT, "newer dagrun (schema version 99");
	refused_untouched(dir, true, -EPROTONOSUPPORT, "newer");
	free(path);
	t_rmrf(tmp);
	free(tmp);
	free(dir);
}

static void a_foreign_or_corrupt_file_is_refused_untouched(void **state)
{
	(void)state;
	char *tmp = t_tmpdir(), *dir = t_statedir(tmp), *err = NULL;
	assert_int_equal(mkdir(dir, 0700), 0);
	char *path = state_db(dir);
	/* Not a database at all. */
	FILE *f = fopen(path, "w");
	for (int i = 0; i < 100; i++)
		fputs("this is a text file, not a database\n", f);
	fclose(f);
	refused_untouched(dir, false, -EPROTO, "not a dagrun state database");
	/* Another program's SQLite database. */
	unlink(path);
	sqlite3 *db;
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "CREATE TABLE notes(x); INSERT INTO notes VALUES(1);",
				      NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	refused_untouched(dir, false, -EPROTO, "not a dagrun state database");
	refused_untouched(dir, true, -EPROTO, "application_id 0");
	/* Ours, damaged past its first page: the damage is named when met. */
	unlink(path);
	struct store *s = t_open(dir, NULL);
	uint64_t key = t_begin(s, "wf", 200, NULL, 1, NULL);
	for (uint32_t i = 0; i < 200; i++)
		t_attempt(s, key, i, 1, true, 1);
	assert_int_equal(t_sync(s), 0);
	assert_int_equal(store_close(s), 0);
	size_t len;
	char *bytes = t_read_file(path, &len);
	assert_true(len > 4096 * 3);
	for (size_t i = 4096; i < len; i++)
		bytes[i] = (char)(i * 7);
	f = fopen(path, "w");
	fwrite(bytes, 1, len, f);
	fclose(f);
	free(bytes);
	struct store_opts ro = {.dir = dir, .read_only = true};
	int r = store_open(&store_sqlite_ops, &ro, &s, &err);
	if (r == 0) {
		struct arena mem = ARENA_INIT;
		struct store_task_info *t;
		size_t n;
		r = s->ops->tasks(s, key, &mem, &t, &n, &err);
		arena_free(&mem);
		store_close(s);
	}
	assert_int_equal(r, -EPROTO);
	assert_non_null(strstr(err, path));
	free(err);
	free(path);
	t_rmrf(tmp);
	free(tmp);
	free(dir);
}

/* ---- directories, full database, full disk ---------------------------------------------- */

static void a_missing_or_read_only_state_dir_is_refused_with_its_name(void **state)
{
	(void)state;
	char *tmp = t_tmpdir(), *dir = t_statedir(tmp), *err = NULL;
	struct store_opts ro = {.dir = dir, .read_only = true};
	struct store *s = NULL;
	assert_int_equal(store_open(&store_sqlite_ops, &ro, &s, &err), -ENOENT);
	assert_non_null(strstr(err, dir));
	free(err);
	err = NULL;
	assert_int_equal(mkdir(dir, 0755), 0);
	assert_int_equal(store_open(&store_sqlite_ops, &ro, &s, &err), -ENOENT);
	assert_non_null(strstr(err, "state.db"));
	free(err);
	/* A directory this user cannot write (root ignores modes: the check
	 * runs as nobody). */
	assert_int_equal(chmod(tmp, 0755), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (!pid) {
		if (geteuid() == 0)
			CHECK(setgid(65534) == 0 && setuid(65534) == 0);
		else
			CHECK(chmod(dir, 0555) == 0);
		struct store_opts o = {.dir = dir};
		char *e = NULL;
		CHECK(store_open(&store_sqlite_ops, &o, &s, &e) == -EACCES);
		CHECK(e && strstr(e, dir) && strstr(e, "not writable"));
		_exit(0);
	}
	int st = t_waitpid(pid, 60);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	free(dir);
	/* A read-only file system, when this user may mount one. */
	dir = t_statedir(tmp);
	if (mount("tmpfs", dir, "tmpfs", MS_RDONLY, "size=1m") == 0) {
		struct store_opts o = {.dir = dir};
		err = NULL;
		assert_int_equal(store_open(&store_sqlite_ops, &o, &s, &err), -EROFS);
		assert_non_null(strstr(err, dir));
		free(err);
		umount(dir);
	} else {
		fprintf(stderr, "(read-only mount not permitted here: %s; that part skipped)\n",
			strerror(errno));
	}
	t_rmrf(tmp);
	free(tmp);
	free(dir);
}

struct errs {
	pthread_mutex_t mu;
	int calls, code;
	char msg[512];
};

static void on_error(void *ud, int code, const char *msg)
{
	struct errs *e = ud;
	pthread_mutex_lock(&e->mu);
	e->calls++;
	e->code = code;
	snprintf(e->msg, sizeof(e->msg), "%s", msg);
	pthread_mutex_unlock(&e->mu);
}

static void a_full_database_stops_recording_and_says_why(void **state)
{
	(void)state;
	char *tmp = t_tmpdir(), *dir = t_statedir(tmp), *msg = NULL;
	struct errs e = {.mu = PTHREAD_MUTEX_INITIALIZER};
	struct store_opts o = {.max_db_bytes = 256 << 10, .on_error = on_error, .ud = &e};
	struct store *s = t_open(dir, &o);
	uint64_t key = t_begin(s, "wf", 1000, NULL, 1, NULL);
	char big[2000];
	memset(big, 'e', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	int r = 0;
	uint32_t i;
	for (i = 0; i < 1000 && r == 0; i++) {
		struct store_attempt_end end = {.task = i, .attempt = 1, .error = big};
		r = store_attempt_end(s, key, &end);
		if (r == 0 && i % 20 == 19)
			r = t_sync(s);
	}
	assert_int_equal(r, -ENOSPC);
	assert_true(i < 1000);
	/* Sticky: every later record and barrier says the same. */
	struct store_attempt_start a = {.task = 0, .attempt = 2};
	assert_int_equal(store_attempt_start(s, key, &a), -ENOSPC);
	assert_int_equal(store_barrier(s, t_wait_cb, NULL), -ENOSPC);
	assert_int_equal(s->ops->last_error(s, &msg), -ENOSPC);
	char *path = state_db(dir);
	assert_non_null(strstr(msg, path));
	assert_non_null(strstr(msg, "full"));
	pthread_mutex_lock(&e.mu);
	assert_int_equal(e.calls, 1);
	assert_int_equal(e.code, -ENOSPC);
	assert_string_equal(e.msg, msg);
	pthread_mutex_unlock(&e.mu);
	free(msg);
	assert_int_equal(store_close(s), -ENOSPC);
	free(path);
	t_rmrf(tmp);
	free(tmp);
	free(dir);
}

static void a_full_disk_under_the_logs_stops_recording_and_names_the_file(void **state)
{
	(void)state;
	char *tmp = t_tmpdir(), *dir = t_statedir(tmp), *msg = NULL;
	assert_int_equal(mkdir(dir, 0700), 0);
	if (mount("tmpfs", dir, "tmpfs", 0, "size=512k") != 0) {
		fprintf(stderr, "(tmpfs mount not permitted here: %s; skipped)\n", strerror(errno));
		t_rmrf(tmp);
		free(tmp);
		free(dir);
		skip();
	}
	struct store *s = t_open(dir, NULL);
	uint64_t key = t_begin(s, "wf", 1, NULL, 1, NULL);
	char chunk[65536];
	memset(chunk, 'o', sizeof(chunk));
	int r = 0;
	for (int i = 0; i < 64 && r == 0; i++) {
		r = store_output(s, key, 0, 1, STORE_STDOUT, chunk, sizeof(chunk));
		if (r == 0)
			r = t_sync(s);
	}
	assert_int_equal(r, -ENOSPC);
	assert_int_equal(s->ops->last_error(s, &msg), -ENOSPC);
	assert_non_null(strstr(msg, "/logs/"));
	assert_non_null(strstr(msg, "0.1.out"));
	free(msg);
	assert_int_equal(store_close(s), -ENOSPC);
	umount(dir);
	t_rmrf(tmp);
	free(tmp);
	free(dir);
}

/* A child holding the write lock of dir's state.db for ms milliseconds;
 * returns once it holds it. */
static pid_t hold_lock(const char *dir, int ms)
{
	int fds[2];
	assert_int_equal(pipe(fds), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (!pid) {
		char *path = state_db(dir);
		sqlite3 *db;
		CHECK(sqlite3_open(path, &db) == SQLITE_OK);
		CHECK(sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) == SQLITE_OK);
		CHECK(write(fds[1], "x", 1) == 1);
		usleep((useconds_t)ms * 1000);
		sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
		sqlite3_close(db);
		_exit(0);
	}
	char c;
	assert_int_equal(read(fds[0], &c, 1), 1);
	close(fds[0]);
	close(fds[1]);
	return pid;
}

static void a_lock_is_waited_out_but_not_beyond_the_busy_timeout(void **state)
{
	(void)state;
	char *tmp = t_tmpdir(), *dir = t_statedir(tmp), *msg = NULL, *err = NULL;
	struct store_opts o = {.busy_ms = 3000};
	struct store *s = t_open(dir, &o);
	uint64_t key = t_begin(s, "wf", 10, NULL, 1, NULL);
	/* Held for 0.5 s: the writer waits, then commits. */
	pid_t p = hold_lock(dir, 500);
	t_attempt(s, key, 0, 1, true, 1);
	assert_int_equal(t_sync(s), 0);
	t_waitpid(p, 60);
	/* begin() waits too. */
	p = hold_lock(dir, 500);
	t_begin(s, "wf", 1, NULL, 1, NULL);
	t_waitpid(p, 60);
	/* Held for 20 s, past the 3 s timeout: begin and the writer give up
	 * and say which file. */
	p = hold_lock(dir, 20000);
	struct store_run_begin b = {.run_attempt = 1, .workflow = "wf", .path = "p"};
	uint64_t k2;
	assert_int_equal(s->ops->begin(s, &b, &k2, NULL, &err), -EBUSY);
	char *path = state_db(dir);
	assert_non_null(strstr(err, path));
	t_attempt(s, key, 1, 1, true, 1);
	assert_int_equal(t_sync(s), -EBUSY);
	assert_int_equal(s->ops->last_error(s, &msg), -EBUSY);
	assert_non_null(strstr(msg, path));
	assert_non_null(strstr(msg, "locked"));
	kill(p, SIGKILL);
	t_waitpid(p, 60);
	assert_int_equal(store_close(s), -EBUSY);
	free(msg);
	free(err);
	free(path);
	t_rmrf(tmp);
	free(tmp);
	free(dir);
}

static int synchronous_of(struct store *s)
{
	struct sq_store *st = sq_of(s);
	sqlite3_stmt *q;
	pthread_mutex_lock(&st->qlock);
	assert_int_equal(sqlite3_prepare_v2(st->qdb, "PRAGMA synchronous", -1, &q, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(q), SQLITE_ROW);
	int v = sqlite3_column_int(q, 0);
	sqlite3_finalize(q);
	pthread_mutex_unlock(&st->qlock);
	return v;
}

static void durable_stores_sync_every_commit(void **state)
{
	(void)state;
	char *tmp = t_tmpdir(), *dir = t_statedir(tmp);
	struct store *s = t_open(dir, NULL);
	assert_int_equal(synchronous_of(s), 1);   /* NORMAL */
	assert_int_equal(store_close(s), 0);
	struct store_opts o = {.durable = true};
	s = t_open(dir, &o);
	assert_int_equal(synchronous_of(s), 2);   /* FULL */
	uint64_t key = t_begin(s, "wf", 1, NULL, 1, NULL);
	assert_int_equal(store_output(s, key, 0, 1, STORE_STDOUT, "kept\n", 5), 0);
	t_attempt(s, key, 0, 1, true, 1);
	assert_int_equal(t_sync(s), 0);
	assert_int_equal(store_close(s), 0);
	t_rmrf(tmp);
	free(tmp);
	free(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(two_processes_write_one_state_dir_and_lose_no_record),
		cmocka_unit_test(processes_creating_one_store_at_once_all_open_it),
		cmocka_unit_test(a_reader_during_writes_sees_consistent_snapshots),
		cmocka_unit_test(records_confirmed_by_a_barrier_survive_kill_9),
		cmocka_unit_test(a_live_owner_is_refused_and_a_dead_one_taken_over),
		cmocka_unit_test(another_hosts_lease_lives_by_its_heartbeat),
		cmocka_unit_test(an_older_schema_is_upgraded_keeping_its_runs),
		cmocka_unit_test(a_newer_schema_is_refused_untouched),
		cmocka_unit_test(a_foreign_or_corrupt_file_is_refused_untouched),
		cmocka_unit_test(a_missing_or_read_only_state_dir_is_refused_with_its_name),
		cmocka_unit_test(a_full_database_stops_recording_and_says_why),
		cmocka_unit_test(a_full_disk_under_the_logs_stops_recording_and_names_the_file),
		cmocka_unit_test(a_lock_is_waited_out_but_not_beyond_the_busy_timeout),
		cmocka_unit_test(durable_stores_sync_every_commit),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
