/* test_store_stats.c: what the store adds for issue 13: an attempt's ready
 * time (recorded with its start, schema version 3, older databases
 * upgraded) and the statistics of workflows and tasks over many runs
 * (nearest-rank percentiles, runs counted by status, tasks matched by id
 * across runs, the filters). */
#include <sqlite3.h>

#include "helpers.h"
#include "store/sqlite_int.h"

/* A run of workflow wf with the given task ids, begun at start_ms. */
static uint64_t begin_at(struct store *s, const char *wf, const char *const *ids, uint32_t n,
			 uint64_t start_ms)
{
	struct store_run_begin b = {
		.run_attempt = 1, .workflow = wf, .path = "wf.yaml",
		.definition = "tasks: []\n", .definition_len = 10, .vars_json = "{}",
		.task_ids = ids, .n_tasks = n, .start_ms = start_ms,
	};
	uint64_t key = 0;
	char *err = NULL;
	int r = s->ops->begin(s, &b, &key, NULL, &err);
	if (r < 0)
		fail_msg("begin: %d %s", r, err ? err : "");
	free(err);
	return key;
}

struct att {
	uint32_t task, attempt;
	unsigned flags;
	uint64_t start, dur;
	uint64_t cpu;
	int64_t rss;
	const char *model;
	int64_t pt, ct;
};

static void record(struct store *s, uint64_t key, const struct att *a)
{
	struct store_attempt_start st = {.task = a->task, .attempt = a->attempt,
					 .start_ms = a->start};
	assert_int_equal(store_attempt_start(s, key, &st), 0);
	struct store_attempt_end e = {
		.task = a->task, .attempt = a->attempt, .flags = a->flags,
		.start_ms = a->start, .end_ms = a->start + a->dur, .duration_ms = a->dur,
		.exit_code = a->flags & STORE_ATTEMPT_OK ? 0 : 1, .cpu_user_ms = a->cpu,
		.cpu_sys_ms = 0, .max_rss_kb = a->rss, .model = a->model,
		.prompt_tokens = a->model ? a->pt : -1,
		.completion_tokens = a->model ? a->ct : -1,
	};
	assert_int_equal(store_attempt_end(s, key, &e), 0);
}

static void end_run(struct store *s, uint64_t key, int status, uint64_t end_ms)
{
	assert_int_equal(s->ops->run_end(s, key, status, end_ms, NULL), 0);
}

/* ---- ready times ---------------------------------------------------------------- */

static void ready_times_are_kept_with_the_start(void **state)
{
	(void)state;
	char *tmp = t_tmpdir(), *dir = t_statedir(tmp), *err = NULL;
	struct store *s = t_open(dir, NULL);
	uint64_t key = t_begin(s, "wf", 5, NULL, 1, NULL);
	/* 0: start and end in one batch; 1: start committed, then its end;
	 * 2: no ready time; 3: ready after the start (a clock step); 4:
	 * still running */
	struct store_attempt_start a = {.task = 0, .attempt = 1, .start_ms = 100000,
					.ready_ms = 99250};
	assert_int_equal(store_attempt_start(s, key, &a), 0);
	struct store_attempt_end e = {.task = 0, .attempt = 1, .flags = 1, .start_ms = 100000,
				      .end_ms = 100500, .duration_ms = 500, .prompt_tokens = -1,
				      .completion_tokens = -1};
	assert_int_equal(store_attempt_end(s, key, &e), 0);
	a = (struct store_attempt_start){.task = 1, .attempt = 1, .start_ms = 200000,
					 .ready_ms = 190000};
	assert_int_equal(store_attempt_start(s, key, &a), 0);
	assert_int_equal(t_sync(s), 0);
	e.task = 1;
	e.start_ms = 200000;
	e.end_ms = 200100;
	assert_int_equal(store_attempt_end(s, key, &e), 0);
	a = (struct store_attempt_start){.task = 2, .attempt = 1, .start_ms = 300000};
	assert_int_equal(store_attempt_start(s, key, &a), 0);
	a = (struct store_attempt_start){.task = 3, .attempt = 1, .start_ms = 400000,
					 .ready_ms = 400007};
	assert_int_equal(store_attempt_start(s, key, &a), 0);
	a = (struct store_attempt_start){.task = 4, .attempt = 1, .start_ms = 500000,
					 .ready_ms = 499999};
	assert_int_equal(store_attempt_start(s, key, &a), 0);
	assert_int_equal(t_sync(s), 0);
	struct arena mem = ARENA_INIT;
	struct store_attempt_info *v;
	size_t n;
	assert_int_equal(s->ops->attempts(s, key, STORE_ALL_TASKS, &mem, &v, &n, &err), 0);
	assert_int_equal(n, 5);
	assert_int_equal(v[0].ready_ms, 99250);
	assert_int_equal(v[1].ready_ms, 190000);
	assert_int_equal(v[1].end_ms, 200100);
	assert_int_equal(v[2].ready_ms, 0);
	assert_int_equal(v[3].ready_ms, 400000);
	assert_int_equal(v[4].ready_ms, 499999);
	assert_false(v[4].ended);
	assert_int_equal(store_close(s), 0);
	arena_free(&mem);
	t_rmrf(tmp);
	free(tmp);
	free(dir);
}

/* ---- schema upgrade ---------------------------------------------------------------- */

static int user_version(const char *path)
{
	sqlite3 *db;
	sqlite3_stmt *q;
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &q, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(q), SQLITE_ROW);
	int v = sqlite3_column_int(q, 0);
	sqlite3_finalize(q);
	sqlite3_close(db);
	return v;
}

/* A database of schema version `version` with one run, one attempt. */
static char *old_store(const char *dir, int version)
{
	char *path = NULL, *err = NULL;
	assert_int_equal(mkdir(dir, 0700), 0);
	assert_true(asprintf(&path, "%s/state.db", dir) > 0);
	sqlite3 *db;
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sq_schema_open(db, path, version, false, 1000, &err), 0);
	assert_int_equal(sqlite3_exec(db,
		"INSERT INTO runs(id, run_id, run_attempt, workflow, path, status, start_ms, "
		"end_ms, n_tasks, c_completed) VALUES(1, 'old-run', 1, 'wf', 'p', 1, 5000, 7000, 1, 1);"
		"INSERT INTO run_defs(run, task_ids) VALUES(1, CAST('only' || char(0) AS BLOB));"
		"INSERT INTO attempts(run, task, attempt, flags, start_ms, end_ms, duration_ms) "
		"VALUES(1, 0, 1, 1, 5000, 2000, 2000);", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	assert_int_equal(user_version(path), version);
	return path;
}

static void upgraded(int version)
{
	char *tmp = t_tmpdir(), *dir = t_statedir(tmp), *err = NULL;
	char *path = old_store(dir, version);
	/* Read-only, an older schema is refused (nothing may be written). */
	struct store_opts ro = {.dir = dir, .read_only = true};
	struct store *s = NULL;
	assert_int_equal(store_open(&store_sqlite_ops, &ro, &s, &err), -EPROTONOSUPPORT);
	assert_non_null(strstr(err, "older"));
	free(err);
	err = NULL;
	assert_int_equal(user_version(path), version);
	s = t_open(dir, NULL);
	assert_int_equal(user_version(path), SQ_SCHEMA_VERSION);
	struct arena mem = ARENA_INIT;
	struct store_run_info ri;
	assert_int_equal(s->ops->find_run(s, "old-run", NULL, &mem, &ri, &err), 0);
	struct store_attempt_info *v;
	size_t n;
	assert_int_equal(s->ops->attempts(s, ri.key, STORE_ALL_TASKS, &mem, &v, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_int_equal(v[0].duration_ms, 2000);
	assert_int_equal(v[0].ready_ms, 0);   /* not known */
	assert_null(v[0].inputs_json);        /* recorded before inputs were */
	assert_null(v[0].io_results_json);
	/* the old run counts in the statistics */
	struct store_stats_filter f = {0};
	struct store_task_stats *ts;
	assert_int_equal(s->ops->task_stats(s, &f, &mem, &ts, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_string_equal(ts[0].task, "only");
	assert_int_equal(ts[0].p95_ms, 2000);
	/* new runs record ready times */
	uint64_t key = t_begin(s, "wf", 1, NULL, 1, NULL);
	struct store_attempt_start a = {.task = 0, .attempt = 1, .start_ms = 9000, .ready_ms = 8000};
	assert_int_equal(store_attempt_start(s, key, &a), 0);
	assert_int_equal(t_sync(s), 0);
	assert_int_equal(s->ops->attempts(s, key, 0, &mem, &v, &n, &err), 0);
	assert_int_equal(v[0].ready_ms, 8000);
	/* and what replay needs (schema version 4) */
	struct store_attempt_end e = {.task = 0, .attempt = 1, .flags = STORE_ATTEMPT_OK,
				      .start_ms = 9000, .end_ms = 9100, .exit_code = 0,
				      .prompt_tokens = -1, .completion_tokens = -1,
				      .inputs_json = "{\"command\":\"true\",\"kind\":\"command\"}",
				      .io_results_json = "{\"outputs\":{\"k\":\"v\"}}"};
	assert_int_equal(store_attempt_end(s, key, &e), 0);
	assert_int_equal(t_sync(s), 0);
	assert_int_equal(s->ops->attempts(s, key, 0, &mem, &v, &n, &err), 0);
	assert_string_equal(v[0].inputs_json, e.inputs_json);
	assert_string_equal(v[0].io_results_json, e.io_results_json);
	assert_int_equal(store_close(s), 0);
	/* and read-only opens work again */
	s = NULL;
	assert_int_equal(store_open(&store_sqlite_ops, &ro, &s, &err), 0);
	assert_int_equal(store_close(s), 0);
	arena_free(&mem);
	free(path);
	t_rmrf(tmp);
	free(tmp);
	free(dir);
}

static void a_version_1_store_is_upgraded_to_ready_times(void **state)
{
	(void)state;
	upgraded(1);
}

static void a_version_2_store_is_upgraded_to_ready_times(void **state)
{
	(void)state;
	upgraded(2);
}

static void a_version_3_store_is_upgraded_to_recorded_inputs(void **state)
{
	(void)state;
	upgraded(3);
}

/* ---- workflow statistics ------------------------------------------------------------- */

static const struct store_workflow_stats *wf_of(const struct store_workflow_stats *v, size_t n,
						const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(v[i].workflow, name))
			return &v[i];
	fail_msg("no statistics of workflow %s", name);
	return NULL;
}

#define DAY 86400000ull

static void workflow_stats_count_statuses_apart_and_rank_wall_times(void **state)
{
	(void)state;
	char *tmp = t_tmpdir(), *dir = t_statedir(tmp), *err = NULL;
	struct store *s = t_open(dir, NULL);
	static const char *const ids[] = {"a"};
	uint64_t now = t_now_ms();
	/* "ci": 7 timed runs (wall 5, 1, 9, 3, 7, 2, 100 s: sorted 1 2 3 5 7 9
	 * 100, nearest rank p50 = 4th = 5 s, p95 = 7th = 100 s; interpolation
	 * would say 5 s and 72.7 s), 2 cancelled (long: not timed), 1
	 * interrupted (its owner gone), 1 running (ours) */
	static const uint64_t wall[] = {5, 1, 9, 3, 7, 2, 100};
	for (int i = 0; i < 7; i++) {
		uint64_t t0 = now - (20 - i) * DAY / 24;
		uint64_t key = begin_at(s, "ci", ids, 1, t0);
		end_run(s, key, i % 2 ? STORE_RUN_FAILED : STORE_RUN_COMPLETED, t0 + wall[i] * 1000);
	}
	for (int i = 0; i < 2; i++) {
		uint64_t t0 = now - (10 - i) * DAY / 24;
		end_run(s, begin_at(s, "ci", ids, 1, t0), STORE_RUN_CANCELLED, t0 + 5000000);
	}
	/* "old": one run 10 days ago */
	end_run(s, begin_at(s, "old", ids, 1, now - 10 * DAY), STORE_RUN_COMPLETED,
		now - 10 * DAY + 60000);
	uint64_t running = begin_at(s, "ci", ids, 1, now - 1000);
	assert_int_equal(t_sync(s), 0);
	/* another store object's run, left open when it closes: interrupted */
	struct store *s2 = t_open(dir, NULL);
	begin_at(s2, "ci", ids, 1, now - 500);
	assert_int_equal(store_close(s2), 0);

	struct arena mem = ARENA_INIT;
	struct store_workflow_stats *v;
	size_t n;
	struct store_stats_filter f = {0};
	assert_int_equal(s->ops->workflow_stats(s, &f, &mem, &v, &n, &err), 0);
	assert_int_equal(n, 2);
	const struct store_workflow_stats *ci = wf_of(v, n, "ci");
	assert_int_equal(ci->runs, 11);
	assert_int_equal(ci->by_status[STORE_RUN_COMPLETED], 4);
	assert_int_equal(ci->by_status[STORE_RUN_FAILED], 3);
	assert_int_equal(ci->by_status[STORE_RUN_CANCELLED], 2);
	assert_int_equal(ci->by_status[STORE_RUN_INTERRUPTED], 1);
	assert_int_equal(ci->by_status[STORE_RUN_RUNNING], 1);
	assert_int_equal(ci->timed, 7);
	assert_int_equal(ci->p50_ms, 5000);
	assert_int_equal(ci->p95_ms, 100000);
	assert_int_equal(ci->max_ms, 100000);
	const struct store_workflow_stats *old = wf_of(v, n, "old");
	assert_int_equal(old->runs, 1);
	assert_int_equal(old->p50_ms, 60000);
	/* since: the last 7 days leave "old" out */
	f.since_ms = now - 7 * DAY;
	assert_int_equal(s->ops->workflow_stats(s, &f, &mem, &v, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_string_equal(v[0].workflow, "ci");
	/* one workflow */
	f = (struct store_stats_filter){.workflow = "old"};
	assert_int_equal(s->ops->workflow_stats(s, &f, &mem, &v, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_int_equal(v[0].runs, 1);
	/* nothing selected: no entries, no error */
	f = (struct store_stats_filter){.workflow = "none"};
	assert_int_equal(s->ops->workflow_stats(s, &f, &mem, &v, &n, &err), 0);
	assert_int_equal(n, 0);
	end_run(s, running, STORE_RUN_COMPLETED, now);
	assert_int_equal(store_close(s), 0);
	arena_free(&mem);
	t_rmrf(tmp);
	free(tmp);
	free(dir);
}

/* ---- task statistics ----------------------------------------------------------------- */

static const struct store_task_stats *task_of(const struct store_task_stats *v, size_t n,
					      const char *wf, const char *id)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(v[i].workflow, wf) && !strcmp(v[i].task, id))
			return &v[i];
	fail_msg("no statistics of %s/%s", wf, id);
	return NULL;
}

/* Ten runs of "ci". The task list changes between runs (index order
 * differs, a task comes and goes): tasks are matched by id.
 *  - build: ok in every run, durations 100, 200, ..., 1000 ms (p50 500,
 *    p95 1000); in run 3 it took 2 attempts (a failure first);
 *  - test: fails its 2 attempts in runs 0 and 1, is cancelled in run 2,
 *    ok (300 ms) in the rest; each attempt 10 ms CPU, RSS 1000 + run;
 *  - ask: an AI task in runs 5 to 9, 100 prompt + 20 completion tokens
 *    each; in run 9, the server reported no completion count.
 * And one run of "other" with a task "build" (another workflow's). */
static struct store *task_fixture(const char *dir, uint64_t now)
{
	struct store *s = t_open(dir, NULL);
	static const char *const ids_a[] = {"build", "test"};
	static const char *const ids_b[] = {"ask", "test", "build"};
	for (uint32_t r = 0; r < 10; r++) {
		uint64_t t0 = now - (10 - r) * 3600000ull;
		bool b = r >= 5;
		uint64_t key = begin_at(s, "ci", b ? ids_b : ids_a, b ? 3 : 2, t0);
		uint32_t build = b ? 2 : 0, test = 1;
		uint32_t at = 1;
		if (r == 3)
			record(s, key, &(struct att){build, at++, 0, t0, 50, 10, 1000, NULL, 0, 0});
		record(s, key, &(struct att){build, at, STORE_ATTEMPT_OK, t0, 100 * (r + 1), 10,
					     1000, NULL, 0, 0});
		if (r < 2) {
			record(s, key, &(struct att){test, 1, 0, t0, 30, 10, 1000 + r, NULL, 0, 0});
			record(s, key, &(struct att){test, 2, 0, t0, 30, 10, 1000 + r, NULL, 0, 0});
		} else if (r == 2) {
			record(s, key, &(struct att){test, 1, STORE_ATTEMPT_CANCELLED, t0, 30, 10,
						     1002, NULL, 0, 0});
		} else {
			record(s, key, &(struct att){test, 1, STORE_ATTEMPT_OK, t0, 300, 10,
						     1000 + r, NULL, 0, 0});
		}
		if (b)
			record(s, key, &(struct att){0, 1, STORE_ATTEMPT_OK, t0, 700, 0, 0, "m", 100,
						     r == 9 ? -1 : 20});
		end_run(s, key, r < 2 ? STORE_RUN_FAILED : r == 2 ? STORE_RUN_CANCELLED :
			STORE_RUN_COMPLETED, t0 + 2000);
	}
	static const char *const ids_o[] = {"build"};
	uint64_t key = begin_at(s, "other", ids_o, 1, now - 60000);
	record(s, key, &(struct att){0, 1, STORE_ATTEMPT_OK, now - 60000, 99999, 0, 0, NULL, 0, 0});
	end_run(s, key, STORE_RUN_COMPLETED, now);
	assert_int_equal(t_sync(s), 0);
	return s;
}

static void task_stats_match_ids_across_runs_with_nearest_rank_percentiles(void **state)
{
	(void)state;
	char *tmp = t_tmpdir(), *dir = t_statedir(tmp), *err = NULL;
	uint64_t now = t_now_ms();
	struct store *s = task_fixture(dir, now);
	struct arena mem = ARENA_INIT;
	struct store_task_stats *v;
	size_t n;
	struct store_stats_filter f = {0};
	assert_int_equal(s->ops->task_stats(s, &f, &mem, &v, &n, &err), 0);
	assert_int_equal(n, 4);
	/* by workflow, then p95 highest first */
	assert_string_equal(v[0].workflow, "ci");
	assert_string_equal(v[0].task, "build");
	assert_string_equal(v[1].task, "ask");
	assert_string_equal(v[2].task, "test");
	assert_string_equal(v[3].workflow, "other");
	const struct store_task_stats *b = task_of(v, n, "ci", "build");
	assert_int_equal(b->runs, 10);
	assert_int_equal(b->ok_runs, 10);
	assert_int_equal(b->failed_runs, 0);
	assert_int_equal(b->attempts, 11);           /* one retry in ten runs */
	assert_int_equal(b->ok_attempts, 10);
	assert_int_equal(b->p50_ms, 500);
	assert_int_equal(b->p95_ms, 1000);
	assert_int_equal(b->max_ms, 1000);
	assert_int_equal(b->ai_runs, 0);
	const struct store_task_stats *t = task_of(v, n, "ci", "test");
	assert_int_equal(t->runs, 10);
	assert_int_equal(t->ok_runs, 7);
	assert_int_equal(t->failed_runs, 2);
	assert_int_equal(t->cut_runs, 1);
	assert_int_equal(t->attempts, 12);
	assert_int_equal(t->ok_attempts, 7);
	assert_int_equal(t->p50_ms, 300);
	assert_int_equal(t->cpu_ms, 120);
	assert_int_equal(t->max_rss_kb, 1009);
	const struct store_task_stats *a = task_of(v, n, "ci", "ask");
	assert_int_equal(a->runs, 5);
	assert_int_equal(a->ai_runs, 5);
	assert_int_equal(a->prompt_tokens, 500);
	assert_int_equal(a->completion_tokens, 80);
	assert_int_equal(task_of(v, n, "other", "build")->p95_ms, 99999);
	/* one task, one workflow */
	f = (struct store_stats_filter){.workflow = "ci", .task = "test"};
	assert_int_equal(s->ops->task_stats(s, &f, &mem, &v, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_string_equal(v[0].task, "test");
	assert_int_equal(v[0].attempts, 12);
	f.task = "nosuch";
	assert_int_equal(s->ops->task_stats(s, &f, &mem, &v, &n, &err), 0);
	assert_int_equal(n, 0);
	/* since: the newest 3 runs of ci (build 800, 900, 1000 ms) */
	f = (struct store_stats_filter){.workflow = "ci", .since_ms = now - 3 * 3600000ull};
	assert_int_equal(s->ops->task_stats(s, &f, &mem, &v, &n, &err), 0);
	b = task_of(v, n, "ci", "build");
	assert_int_equal(b->runs, 3);
	assert_int_equal(b->p50_ms, 900);
	assert_int_equal(b->p95_ms, 1000);
	assert_int_equal(store_close(s), 0);
	arena_free(&mem);
	t_rmrf(tmp);
	free(tmp);
	free(dir);
}

static void task_stats_of_runs_before_one_take_the_newest(void **state)
{
	(void)state;
	char *tmp = t_tmpdir(), *dir = t_statedir(tmp), *err = NULL;
	uint64_t now = t_now_ms();
	struct store *s = task_fixture(dir, now);
	struct arena mem = ARENA_INIT;
	struct store_run_filter rf = {.workflow = "ci", .status = -1, .limit = 0};
	struct store_run_info *runs;
	size_t nr, n;
	assert_int_equal(s->ops->list_runs(s, &rf, &mem, &runs, &nr, &err), 0);
	assert_int_equal(nr, 10);
	/* runs[0] is run 9: the 4 before it are runs 5..8: build 600..900 */
	struct store_stats_filter f = {.workflow = "ci", .before_key = runs[0].key, .max_runs = 4};
	struct store_task_stats *v;
	assert_int_equal(s->ops->task_stats(s, &f, &mem, &v, &n, &err), 0);
	const struct store_task_stats *b = task_of(v, n, "ci", "build");
	assert_int_equal(b->runs, 4);
	assert_int_equal(b->p50_ms, 700);
	assert_int_equal(b->p95_ms, 900);
	assert_int_equal(b->max_ms, 900);
	assert_int_equal(store_close(s), 0);
	arena_free(&mem);
	t_rmrf(tmp);
	free(tmp);
	free(dir);
}

static void stats_of_an_empty_store_are_empty(void **state)
{
	(void)state;
	char *tmp = t_tmpdir(), *dir = t_statedir(tmp), *err = NULL;
	struct store *s = t_open(dir, NULL);
	struct arena mem = ARENA_INIT;
	struct store_stats_filter f = {0};
	struct store_task_stats *v;
	struct store_workflow_stats *w;
	size_t n = 99;
	assert_int_equal(s->ops->task_stats(s, &f, &mem, &v, &n, &err), 0);
	assert_int_equal(n, 0);
	n = 99;
	assert_int_equal(s->ops->workflow_stats(s, &f, &mem, &w, &n, &err), 0);
	assert_int_equal(n, 0);
	assert_int_equal(store_close(s), 0);
	arena_free(&mem);
	t_rmrf(tmp);
	free(tmp);
	free(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(ready_times_are_kept_with_the_start),
		cmocka_unit_test(a_version_1_store_is_upgraded_to_ready_times),
		cmocka_unit_test(a_version_2_store_is_upgraded_to_ready_times),
		cmocka_unit_test(a_version_3_store_is_upgraded_to_recorded_inputs),
		cmocka_unit_test(workflow_stats_count_statuses_apart_and_rank_wall_times),
		cmocka_unit_test(task_stats_match_ids_across_runs_with_nearest_rank_percentiles),
		cmocka_unit_test(task_stats_of_runs_before_one_take_the_newest),
		cmocka_unit_test(stats_of_an_empty_store_are_empty),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
