/* store_bench.c: the state store alone, with its writer thread.
 *
 * `store_bench [TASKS [RUNS [DIR]]]` (defaults 1000000, 10000, a fresh
 * directory under /tmp that is removed at the end):
 *
 * 1. One run of TASKS tasks, each one attempt recorded as the engine will:
 *    status running, attempt start, attempt end (pid, times, CPU, RSS, exit
 *    code, byte counts), status completed; once with a barrier after every
 *    task (the write-ahead rule: the engine waits for it before starting
 *    dependents; here nobody waits, so batches form while the writer
 *    commits), once with no barrier but the last, and (TASKS / 50 tasks)
 *    waiting for each task's barrier before the next (a chain: one commit
 *    per task, the worst case for group commit). Prints the CPU time per
 *    task of the caller's thread and of the writer's thread, the wall time
 *    until everything is committed, and the bytes per attempt in state.db
 *    (after the WAL is checkpointed; per table from SQLite's dbstat).
 * 2. RUNS runs of 10 tasks each, then the queries the CLI makes, each from
 *    a fresh read-only open (as `dagrun runs` and `dagrun show` would):
 *    the newest 20 runs, all runs, one run by id prefix with its tasks and
 *    attempts, `last`. Best and median of 5, wall time.
 */
#include <errno.h>
#include <ftw.h>
#include <pthread.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "store/store.h"

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double thread_cpu_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void die(const char *what, int r, const char *err)
{
	fprintf(stderr, "store_bench: %s: %d %s\n", what, r, err ? err : "");
	exit(1);
}

/* ---- a barrier waited for --------------------------------------------------- */

struct waiter {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int done, status;
};

static void wake(void *ud, int status)
{
	struct waiter *w = ud;
	pthread_mutex_lock(&w->mu);
	w->done = 1;
	w->status = status;
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
}

static void sync_store(struct store *s)
{
	struct waiter w = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0};
	int r = store_barrier(s, wake, &w);
	if (r < 0)
		die("barrier", r, NULL);
	pthread_mutex_lock(&w.mu);
	while (!w.done)
		pthread_cond_wait(&w.cv, &w.mu);
	pthread_mutex_unlock(&w.mu);
	if (w.status < 0)
		die("commit", w.status, NULL);
}

static void noop(void *ud, int status)
{
	(void)ud;
	if (status < 0)
		die("commit", status, NULL);
}

/* ---- 1. one big run ---------------------------------------------------------- */

static struct store *open_store(const char *dir, bool ro)
{
	struct store_opts o = {.dir = dir, .read_only = ro};
	struct store *s = NULL;
	char *err = NULL;
	int r = store_open(&store_sqlite_ops, &o, &s, &err);
	if (r < 0)
		die("open", r, err);
	return s;
}

static uint64_t begin(struct store *s, const char *wf, uint32_t n, char **ids)
{
	struct store_run_begin b = {.run_attempt = 1, .workflow = wf, .path = "bench.yaml",
				    .definition = "tasks: {}\n", .definition_len = 10,
				    .vars_json = "{}", .task_ids = (const char *const *)ids,
				    .n_tasks = n, .start_ms = wall_ms()};
	uint64_t key;
	char *err = NULL;
	int r = s->ops->begin(s, &b, &key, NULL, &err);
	if (r < 0)
		die("begin", r, err);
	return key;
}

static void record(struct store *s, uint64_t key, uint32_t i, uint64_t t0)
{
	struct store_task_status_rec st = {.task = i, .status = STORE_TASK_RUNNING};
	struct store_attempt_start a = {.task = i, .attempt = 1, .start_ms = t0 + i / 8,
					.pid = 100000 + (i % 30000), .pgid = 100000 + (i % 30000),
					.pid_start = 9000000 + i};
	struct store_attempt_end e = {.task = i, .attempt = 1, .flags = STORE_ATTEMPT_OK,
				      .start_ms = t0 + i / 8, .end_ms = t0 + i / 8 + 4,
				      .duration_ms = 4, .exit_code = 0, .cpu_user_ms = 1,
				      .cpu_sys_ms = 2, .max_rss_kb = 3400, .out_bytes = 0,
				      .prompt_tokens = -1, .completion_tokens = -1};
	if (store_task_status(s, key, &st) < 0 || store_attempt_start(s, key, &a) < 0 ||
	    store_attempt_end(s, key, &e) < 0)
		die("record", -1, NULL);
	st.status = STORE_TASK_COMPLETED;
	if (store_task_status(s, key, &st) < 0)
		die("record", -1, NULL);
}

/* Bytes of each table (and its indexes) in path, from dbstat. */
static void table_bytes(const char *path, uint32_t n)
{
	sqlite3 *db;
	sqlite3_stmt *q;
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db, "SELECT name, sum(pgsize) FROM dbstat GROUP BY name "
			       "ORDER BY 2 DESC", -1, &q, NULL) != SQLITE_OK) {
		fprintf(stderr, "store_bench: dbstat: %s\n", sqlite3_errmsg(db));
		sqlite3_close(db);
		return;
	}
	printf("  by table (dbstat):");
	while (sqlite3_step(q) == SQLITE_ROW)
		if (sqlite3_column_int64(q, 1) >= 65536)
			printf(" %s %.1f B", (const char *)sqlite3_column_text(q, 0),
			       (double)sqlite3_column_int64(q, 1) / n);
	printf(" (per attempt)\n");
	sqlite3_finalize(q);
	sqlite3_close(db);
}

static off_t file_size(const char *path)
{
	struct stat sb;
	return stat(path, &sb) == 0 ? sb.st_size : 0;
}

enum mode { AT_END, EACH, EACH_WAITED };

static double peak_rss_mb(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_maxrss / 1024.0;
}

static void big_run(const char *dir, uint32_t n, enum mode mode, char **ids)
{
	static const char *const names[] = {
		"one barrier at the end",
		"a barrier after each task, not waited for",
		"a barrier after each task, waited for (a chain: every commit alone)",
	};
	bool barrier_each = mode != AT_END;
	char path[4096];
	snprintf(path, sizeof(path), "%s/state.db", dir);
	off_t size0 = file_size(path);
	struct store *s = open_store(dir, false);
	struct store_stats st0, st1;
	s->ops->stats(s, &st0);
	double w0 = now_s(), c0 = thread_cpu_s();
	uint64_t key = begin(s, mode == AT_END ? "big" : mode == EACH ? "big-barriers" : "chain",
			     n, ids);
	double c1 = thread_cpu_s();
	uint64_t t0 = wall_ms();
	for (uint32_t i = 0; i < n; i++) {
		record(s, key, i, t0);
		if (mode == EACH_WAITED)
			sync_store(s);
		else if (barrier_each && store_barrier(s, noop, NULL) < 0)
			die("barrier", -1, NULL);
	}
	if (s->ops->run_end(s, key, STORE_RUN_COMPLETED, wall_ms(), NULL) < 0)
		die("run_end", -1, NULL);
	double c2 = thread_cpu_s();
	sync_store(s);
	double w1 = now_s();
	s->ops->stats(s, &st1);
	if (store_close(s) < 0)
		die("close", -1, NULL);
	double writer = (double)(st1.writer_cpu_ns - st0.writer_cpu_ns) / 1e9;
	printf("%u tasks, %s:\n", n, names[mode]);
	printf("  begin (ids of %u tasks): %.3f s CPU\n", n, c1 - c0);
	printf("  caller %.3f s CPU (%.2f us/task), writer %.3f s CPU (%.2f us/task), "
	       "together %.2f us/task\n", c2 - c1, (c2 - c1) * 1e6 / n, writer, writer * 1e6 / n,
	       (c2 - c1 + writer) * 1e6 / n);
	printf("  wall %.3f s until committed; %" PRIu64 " records in %" PRIu64
	       " transactions (%.0f records each)\n", w1 - w0, st1.records - st0.records,
	       st1.transactions - st0.transactions,
	       (double)(st1.records - st0.records) /
	       (double)(st1.transactions - st0.transactions ? st1.transactions - st0.transactions : 1));
	if (mode == EACH_WAITED)
		printf("  %.1f us wall per task: record, barrier, commit, callback\n",
		       (w1 - w0) * 1e6 / n);
	printf("  peak RSS so far %.0f MB\n", peak_rss_mb());
	off_t size1 = file_size(path);
	printf("  state.db grew %.1f MB: %.1f bytes per attempt (task ids and all)\n",
	       (double)(size1 - size0) / 1e6, (double)(size1 - size0) / n);
	if (mode == AT_END)
		table_bytes(path, n);
}

/* ---- 2. many runs, the CLI's queries ----------------------------------------- */

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static void timed(const char *what, const char *dir, int (*fn)(struct store *, void *),
		  void *arg)
{
	double t[5];
	int rows = 0;
	for (int i = 0; i < 5; i++) {
		double w0 = now_s();
		struct store *s = open_store(dir, true);
		rows = fn(s, arg);
		store_close(s);
		t[i] = now_s() - w0;
	}
	qsort(t, 5, sizeof(t[0]), cmp_double);
	printf("  %-44s best %6.2f ms, median %6.2f ms (%d rows)\n", what, t[0] * 1e3,
	       t[2] * 1e3, rows);
}

static int q_list(struct store *s, void *arg)
{
	struct store_run_filter f = {.status = -1, .limit = *(uint32_t *)arg};
	struct arena mem = ARENA_INIT;
	struct store_run_info *v;
	size_t n = 0;
	char *err = NULL;
	int r = s->ops->list_runs(s, &f, &mem, &v, &n, &err);
	if (r < 0)
		die("list_runs", r, err);
	arena_free(&mem);
	return (int)n;
}

static int q_show(struct store *s, void *arg)
{
	struct arena mem = ARENA_INIT;
	struct store_run_info ri;
	struct store_task_info *t;
	struct store_attempt_info *a;
	size_t nt, na;
	char *err = NULL;
	int r = s->ops->find_run(s, arg, NULL, &mem, &ri, &err);
	if (r == 0)
		r = s->ops->tasks(s, ri.key, &mem, &t, &nt, &err);
	if (r == 0)
		r = s->ops->attempts(s, ri.key, STORE_ALL_TASKS, &mem, &a, &na, &err);
	if (r < 0)
		die("show", r, err);
	arena_free(&mem);
	return (int)(nt + na);
}

static int q_open(struct store *s, void *arg)
{
	(void)s;
	(void)arg;
	return 0;
}

static void many_runs(const char *dir, uint32_t runs)
{
	struct store *s = open_store(dir, false);
	char *ids[10], mid[STORE_RUN_ID_SIZE] = "";
	for (int i = 0; i < 10; i++) {
		ids[i] = malloc(16);
		snprintf(ids[i], 16, "step-%d", i);
	}
	double w0 = now_s();
	for (uint32_t r = 0; r < runs; r++) {
		char id[STORE_RUN_ID_SIZE];
		struct store_run_begin b = {.run_attempt = 1, .workflow = r % 2 ? "etl" : "deploy",
					    .path = "wf.yaml", .task_ids = (const char *const *)ids,
					    .n_tasks = 10, .start_ms = wall_ms()};
		uint64_t key;
		char *err = NULL;
		int e = s->ops->begin(s, &b, &key, id, &err);
		if (e < 0)
			die("begin", e, err);
		if (r == runs / 2)
			memcpy(mid, id, sizeof(id));
		for (uint32_t i = 0; i < 10; i++)
			record(s, key, i, wall_ms());
		s->ops->run_end(s, key, STORE_RUN_COMPLETED, wall_ms(), NULL);
	}
	sync_store(s);
	store_close(s);
	printf("%u runs of 10 tasks recorded in %.1f s; queries, each from a fresh read-only open:\n",
	       runs, now_s() - w0);
	uint32_t twenty = 20, all = 0;
	char prefix[24];
	snprintf(prefix, sizeof(prefix), "%.23s", mid);
	timed("open + close only", dir, q_open, NULL);
	timed("runs: the newest 20", dir, q_list, &twenty);
	timed("runs: all", dir, q_list, &all);
	timed("show: a run by id prefix, tasks, attempts", dir, q_show, prefix);
	timed("show: last", dir, q_show, "last");
	for (int i = 0; i < 10; i++)
		free(ids[i]);
}

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *f)
{
	(void)sb; (void)flag; (void)f;
	remove(p);
	return 0;
}

int main(int argc, char **argv)
{
	uint32_t n = argc > 1 ? (uint32_t)strtoul(argv[1], NULL, 10) : 1000000;
	uint32_t runs = argc > 2 ? (uint32_t)strtoul(argv[2], NULL, 10) : 10000;
	char tmp[] = "/tmp/store-bench-XXXXXX";
	const char *dir = argc > 3 ? argv[3] : mkdtemp(tmp);
	if (!dir || !n)
		die("usage: store_bench [TASKS [RUNS [DIR]]]", -EINVAL, NULL);
	double load[3] = {0};
	getloadavg(load, 3);
	printf("store_bench in %s, load average %.2f %.2f %.2f\n", dir, load[0], load[1], load[2]);
	char **ids = malloc(n * sizeof(*ids));
	for (uint32_t i = 0; i < n; i++) {
		ids[i] = malloc(16);
		snprintf(ids[i], 16, "task-%07u", i);
	}
	big_run(dir, n, AT_END, ids);
	big_run(dir, n, EACH, ids);
	big_run(dir, n / 50 ? n / 50 : 1, EACH_WAITED, ids);
	for (uint32_t i = 0; i < n; i++)
		free(ids[i]);
	free(ids);
	if (runs)
		many_runs(dir, runs);
	getloadavg(load, 3);
	printf("load average at the end %.2f %.2f %.2f\n", load[0], load[1], load[2]);
	if (argc <= 3)
		nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	return 0;
}
