/* test_store.c: the state store's operations on a real state.db in a
 * temporary directory, one process: run ids, recording and reading back
 * every field, group commit and barriers, log files and their caps,
 * reruns, history, retention, refusals. */
#include "helpers.h"

#include <sqlite3.h>

/* ---- run ids ----------------------------------------------------------------- */

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void run_ids_sort_by_time_and_differ_within_one_millisecond(void **state)
{
	(void)state;
	enum { N = 20000 };
	char **ids = calloc(N, sizeof(*ids));
	uint64_t ms = 1795931089123ull;   /* 2026-11-29 05:44:49.123 UTC */
	for (int i = 0; i < N; i++) {
		ids[i] = malloc(STORE_RUN_ID_SIZE);
		assert_int_equal(store_run_id_make(ids[i], ms), 0);
		assert_int_equal(strlen(ids[i]), STORE_RUN_ID_SIZE - 1);
		assert_true(store_run_id_valid(ids[i]));
	}
	assert_memory_equal(ids[0], "20261129-054449.123-", 20);
	qsort(ids, N, sizeof(*ids), cmp_str);
	for (int i = 1; i < N; i++)
		assert_string_not_equal(ids[i - 1], ids[i]);
	char later[STORE_RUN_ID_SIZE];
	assert_int_equal(store_run_id_make(later, ms + 1), 0);
	for (int i = 0; i < N; i++) {
		assert_true(strcmp(ids[i], later) < 0);
		free(ids[i]);
	}
	free(ids);
	assert_false(store_run_id_valid(""));
	assert_false(store_run_id_valid(".hidden"));
	assert_false(store_run_id_valid("../up"));
	assert_false(store_run_id_valid("a/b"));
	assert_false(store_run_id_valid("a b"));
	assert_false(store_run_id_valid(NULL));
	char longid[66];
	memset(longid, 'a', 65);
	longid[65] = '\0';
	assert_false(store_run_id_valid(longid));
	longid[64] = '\0';
	assert_true(store_run_id_valid(longid));
}

/* ---- recording and reading back ------------------------------------------------ */

static void every_field_of_a_run_is_recorded_and_read_back(void **state)
{
	(void)state;
	char *tmp = t_tmpdir(), *dir = t_statedir(tmp), *err = NULL;
	struct store *s = t_open(dir, NULL);
	const char *ids[] = {"build", "fetch", "ask"};
	struct store_run_begin b = {
		.run_attempt = 1, .workflow = "demo", .path = "/w/demo.yaml",
		.definition = "name: demo\0tail", .definition_len = 15,
		.vars_json = "{\"env\":\"prod\"}", .task_ids = ids, .n_tasks = 3,
		.start_ms = 1000,
	};
	uint64_t key = 0;
	char id[STORE_RUN_ID_SIZE];
	assert_int_equal(s->ops->begin(s, &b, &key, id, &err), 0);
	assert_true(store_run_id_valid(id));

	/* build: a command that wrote to both streams, with a result. */
	struct store_attempt_start a0 = {.task = 0, .attempt = 1, .start_ms = 2000, .pid = 4242,
					 .pgid = 4242, .pid_start = 99887766};
	assert_int_equal(store_attempt_start(s, key, &a0), 0);
	assert_int_equal(store_output(s, key, 0, 1, STORE_STDOUT, "hello ", 6), 0);
	assert_int_equal(store_output(s, key, 0, 1, STORE_STDERR, "warn\n", 5), 0);
	assert_int_equal(store_output(s, key, 0, 1, STORE_STDOUT, "world\n", 6), 0);
	const char *result = "{\"output\":\"hello world\\n\",\"json\":null,\"outputs\":{\"k\":\"v\"}}";
	struct store_attempt_end e0 = {
		.task = 0, .attempt = 1, .flags = STORE_ATTEMPT_OK, .start_ms = 2000,
		.end_ms = 2750, .duration_ms = 749, .exit_code = 0, .cpu_user_ms = 120,
		.cpu_sys_ms = 30, .max_rss_kb = 5555, .out_bytes = 12, .err_bytes = 5,
		.result_json = result, .result_len = strlen(result),
	};
	assert_int_equal(store_attempt_end(s, key, &e0), 0);
	struct store_task_status_rec st = {.task = 0, .status = STORE_TASK_COMPLETED};
	assert_int_equal(store_task_status(s, key, &st), 0);

	/* fetch: an HTTP attempt that failed, then a task-level reason. */
	struct store_attempt_end e1 = {
		.task = 1, .attempt = 1, .start_ms = 3000, .end_ms = 3100, .duration_ms = 100,
		.exit_code = -1, .error_class = 1, .error = "HTTP 503 from https://x.test",
		.http_status = 503, .http_queue_us = 5, .http_dns_us = 10, .http_connect_us = 20,
		.http_tls_us = 30, .http_first_byte_us = 40, .http_total_us = 50,
		.http_redirects = 2, .prompt_tokens = -1, .completion_tokens = -1,
		.out_bytes = 3000000, .out_dropped = 1000000,
	};
	assert_int_equal(store_attempt_end(s, key, &e1), 0);
	st = (struct store_task_status_rec){.task = 1, .status = STORE_TASK_FAILED,
					    .error_class = 1, .error = "gave up after 1 attempt"};
	assert_int_equal(store_task_status(s, key, &st), 0);

	/* ask: an AI attempt, still running at the end (no end recorded). */
	struct store_attempt_end e2 = {
		.task = 2, .attempt = 1, .flags = STORE_ATTEMPT_OK | STORE_ATTEMPT_TIMED_OUT,
		.start_ms = 4000, .end_ms = 4500, .duration_ms = 500, .model = "gpt-x",
		.finish_reason = "stop", .prompt_sha256 = "ab12", .prompt_tokens = 11,
		.completion_tokens = 22, .prompt_bytes = 333, .context_cut_bytes = 44,
		.http_status = 200, .http_total_us = 9,
	};
	assert_int_equal(store_attempt_end(s, key, &e2), 0);
	struct store_attempt_start a2 = {.task = 2, .attempt = 2, .start_ms = 5000};
	assert_int_equal(store_attempt_start(s, key, &a2), 0);
	assert_int_equal(t_sync(s), 0);

	struct arena mem = ARENA_INIT;
	struct store_run_info ri;
	assert_int_equal(s->ops->find_run(s, "last", NULL, &mem, &ri, &err), 0);
	assert_int_equal(ri.key, key);
	assert_string_equal(ri.run_id, id);
	assert_string_equal(ri.workflow, "demo");
	assert_string_equal(ri.path, "/w/demo.yaml");
	assert_int_equal(ri.status, STORE_RUN_RUNNING);
	assert_true(ri.lease.alive);
	assert_int_equal(ri.lease.pid, getpid());
	assert_int_equal(ri.n_tasks, 3);
	assert_int_equal(ri.counts[STORE_TASK_COMPLETED], 1);
	assert_int_equal(ri.counts[STORE_TASK_FAILED], 1);
	/* ask has an attempt started (and no status of its own): running. */
	assert_int_equal(ri.counts[STORE_TASK_RUNNING], 1);
	assert_int_equal(ri.counts[STORE_TASK_PENDING], 0);

	struct store_task_info *t;
	size_t n;
	assert_int_equal(s->ops->tasks(s, key, &mem, &t, &n, &err), 0);
	assert_int_equal(n, 3);
	assert_string_equal(t[0].id, "build");
	assert_int_equal(t[0].status, STORE_TASK_COMPLETED);
	assert_int_equal(t[0].attempts, 1);
	assert_int_equal(t[0].duration_ms, 749);
	assert_int_equal(t[0].end_ms, 2750);
	assert_null(t[0].error);
	assert_string_equal(t[1].id, "fetch");
	assert_int_equal(t[1].status, STORE_TASK_FAILED);
	assert_string_equal(t[1].error, "gave up after 1 attempt");
	assert_int_equal(t[1].exit_code, -1);
	assert_int_equal(t[2].status, STORE_TASK_RUNNING);
	assert_int_equal(t[2].attempts, 2);

	struct store_attempt_info *at;
	assert_int_equal(s->ops->attempts(s, key, STORE_ALL_TASKS, &mem, &at, &n, &err), 0);
	assert_int_equal(n, 4);
	assert_int_equal(at[0].pid, 4242);
	assert_int_equal(at[0].pid_start, 99887766);
	assert_int_equal(at[0].start_ms, 2000);
	assert_int_equal(at[0].end_ms, 2750);
	assert_int_equal(at[0].cpu_user_ms, 120);
	assert_int_equal(at[0].cpu_sys_ms, 30);
	assert_int_equal(at[0].max_rss_kb, 5555);
	assert_int_equal(at[0].out_logged, 12);
	assert_int_equal(at[0].err_logged, 5);
	assert_int_equal(at[0].out_log_cut, 0);
	assert_string_equal(at[0].result_json, result);
	assert_int_equal(at[0].prompt_tokens, -1);
	assert_int_equal(at[1].http_status, 503);
	assert_int_equal(at[1].http_queue_us, 5);
	assert_int_equal(at[1].http_first_byte_us, 40);
	assert_int_equal(at[1].http_redirects, 2);
	assert_int_equal(at[1].out_dropped, 1000000);
	assert_string_equal(at[1].error, "HTTP 503 from https://x.test");
	assert_int_equal(at[1].error_class, 1);
	assert_null(at[1].result_json);
	assert_string_equal(at[2].model, "gpt-x");
	assert_string_equal(at[2].finish_reason, "stop");
	assert_string_equal(at[2].prompt_sha256, "ab12");
	assert_int_equal(at[2].prompt_tokens, 11);
	assert_int_equal(at[2].completion_tokens, 22);
	assert_int_equal(at[2].context_cut_bytes, 44);
	assert_int_equal(at[2].flags, STORE_ATTEMPT_OK | STORE_ATTEMPT_TIMED_OUT);
	assert_true(at[2].ended);
	assert_false(at[3].ended);
	assert_int_equal(at[3].attempt, 2);
	assert_int_equal(at[3].start_ms, 5000);

	struct store_log_files lf;
	assert_int_equal(s->ops->log_files(s, at[0].run, at[0].stored_task, 1, &mem, &lf, &err), 0);
	size_t len;
	char *out = t_read_file(lf.path[STORE_STDOUT], &len);
	assert_string_equal(out, "hello world\n");
	free(out);
	assert_int_equal(lf.size[STORE_STDERR], 5);
	assert_int_equal(s->ops->log_files(s, key, 1, 1, &mem, &lf, &err), 0);
	assert_null(lf.path[STORE_STDOUT]);   /* no byte, no file */

	struct store_definition d;
	assert_int_equal(s->ops->definition(s, key, &mem, &d, &err), 0);
	assert_int_equal(d.definition_len, 15);
	assert_memory_equal(d.definition, "name: demo\0tail", 15);
	assert_string_equal(d.vars_json, "{\"env\":\"prod\"}");
	assert_int_equal(d.n_tasks, 3);
	assert_string_equal(d.task_ids[2], "ask");

	assert_int_equal(s->ops->run_end(s, key, STORE_RUN_FAILED, 9000, "fetch failed"), 0);
	assert_int_equal(t_sync(s), 0);
	assert_int_equal(s->ops->get_run(s, key, &mem, &ri, &err), 0);
	assert_int_equal(ri.status, STORE_RUN_FAILED);
	assert_int_equal(ri.end_ms, 9000);
	assert_string_equal(ri.error, "fetch failed");
	assert_null(ri.lease.host);           /* the lease was given up */
	assert_null(err);
	arena_free(&mem);
	assert_int_equal(store_close(s), 0);
	t_rmrf(tmp);
	free(tmp);
	free(dir);
}

static void records_for_unknown_or_ended_runs_and_bad_tasks_are_refused(void **state)
{
	(void)state;
	char *tmp = t_tmpdir(), *dir = t_statedir(tmp);
	struct store *s = t_open(dir, NULL);
	uint64_t key = t_begin(s, "wf", 2, NULL, 1, NULL);
	struct store_attempt_start a = {.task = 2, .attempt = 1};
	assert_int_equal(store_attempt_start(s, key, &a), -EINVAL);       /* task 2 of 2 */
	a.task = 0;
	assert_int_equal(store_attempt_start(s, key + 1, &a), -EINVAL);   /* no such run */
	assert_int_equal(store_output(s, key, 0, 1, 3, "x", 1), -EINVAL); /* stream 3 */
	struct store_task_status_rec st = {.task = 0, .status = STORE_TASK_NSTATUS};
	assert_int_equal(store_task_status(s, key, &st), -EINVAL);
	assert_int_equal(s->ops->run_end(s, key, STORE_RUN_INTERRUPTED, 1, NULL), -EINVAL);
	assert_int_equal(s->ops->run_end(s, key, STORE_RUN_COMPLETED, 1, NULL), 0);
	assert_int_equal(store_attempt_start(s, key, &a), -EINVAL);       /* after its end */
	assert_int_equal(t_sync(s), 0);
	/* The same id and attempt again. */
	char id[STORE_RUN_ID_SIZE];
	t_begin(s, "wf", 1, "fixed-id", 1, id);
	struct store_run_begin b = {.run_id = "fixed-id", .run_attempt = 1, .workflow = "wf",
				    .path = "p"};
	uint64_t k2;
	char *err = NULL;
	assert_int_equal(s->ops->begin(s, &b, &k2, NULL, &err), -EEXIST);
	assert_non_null(strstr(err, "fixed-id"));
	free(err);
	err = NULL;
	b.run_id = "../etc";
	assert_int_equal(s->ops->begin(s, &b, &k2, NULL, &err), -EINVAL);
	free(err);
	assert_int_equal(store_close(s), 0);
	t_rmrf(tmp);
	free(tmp);
	free(dir);
}

/* ---- group commit and barriers ------------------------------------------------- */

static void start_and_end_in_one_batch_or_two_give_the_same_row(void **state)
{
	(void)state;
	char *tmp = t_tmpdir(), *dir = t_statedir(tmp), *err = NULL;
	/* A long window: only barriers end a batch. */
	struct store_opts o = {.batch_ms = 60000};
	struct store *s = t_open(dir, &o);
	uint64_t key = t_begin(s, "wf", 2, NULL, 1, NULL);
	for (uint32_t task = 0; task < 2; task++) {
		struct store_attempt_start a = {.task = task, .attempt = 1, .start_ms = 100,
						.pid = 77, .pgid = 78, .pid_start = 79};
		assert_int_equal(store_attempt_start(s, key, &a), 0);
		if (task == 1)   /* the start committed alone, then updated */
			assert_int_equal(t_sync(s), 0);
		struct store_attempt_end e = {.task = task, .attempt = 1, .flags = 1,
					      .start_ms = 100, .end_ms = 150, .duration_ms = 50};
		assert_int_equal(store_attempt_end(s, key, &e), 0);
	}
	assert_int_equal(t_sync(s), 0);
	struct arena mem = ARENA_INIT;
	struct store_attempt_info *at;
	size_t n;
	assert_int_equal(s->ops->attempts(s, key, STORE_ALL_TASKS, &mem, &at, &n, &err), 0);
	assert_int_equal(n, 2);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(at[i].pid, 77);
		assert_int_equal(at[i].pgid, 78);
		assert_int_equal(at[i].pid_start, 79);
		assert_int_equal(at[i].end_ms, 150);
		assert_int_equal(at[i].duration_ms, 50);
		assert_true(at[i].ended);
	}
	arena_free(&mem);
	assert_int_equal(store_close(s), 0);
	t_rmrf(tmp);
	free(tmp);
	free(dir);
}

static void many_records_share_one_transaction_and_a_barrier_commits_at_once(void **state)
{
	(void)state;
	char *tmp = t_tmpdir(), *dir = t_statedir(tmp);
	/* A window of a minute: if a barrier waited it out, t_sync's 30 s
	 * would fail the test. */
	struct store_opts o = {.batch_ms = 60000};
	struct store *s = t_open(dir, &o);
	uint64_t key = t_begin(s, "wf", 1000, NULL, 1, NULL);
	struct store_stats before, after;
	s->ops->stats(s, &before);
	for (uint32_t i = 0; i < 1000; i++)
		t_attempt(s, key, i, 1, true, 5);
	assert_int_equal(t_sync_timeout(s, 30), 0);
	s->ops->stats(s, &after);
	/* 4000 records, batch_max 4096: one transaction. */
	assert_int_equal(after.records - before.records, 4001);
	assert_int_equal(after.transactions - before.transactions, 1);
	/* And batch_max splits a longer queue. */
	store_close(s);
	o = (struct store_opts){.batch_ms = 60000, .batch_max = 500};
	s = t_open(dir, &o);
	struct arena mem = ARENA_INIT;
	struct store_run_info ri;
	char *err = NULL;
	assert_int_equal(s->ops->find_run(s, "last", NULL, &mem, &ri, &err), 0);
	assert_int_equal(ri.counts[STORE_TASK_COMPLETED], 1000);
	key = t_begin(s, "wf", 1000, NULL, 1, NULL);
	for (uint32_t i = 0; i < 1000; i++)
		t_attempt(s, key, i, 1, true, 5);
	assert_int_equal(t_sync_timeout(s, 30), 0);
	s->ops->stats(s, &after);
	assert_true(after.transactions >= 8);   /* never more than 500 records in one */
	arena_free(&mem);
	assert_int_equal(store_close(s), 0);
	t_rmrf(tmp);
	free(tmp);
	free(dir);
}

/* An end that carries its task's status is one record: with one record to
 * a transaction, the end and the status still commit together (a kill
 * between two transactions cannot leave an attempt that succeeded under a
 * task that is still running, which resume would run again). The same end
 * and status as two records take two transactions. */
static void an_end_with_its_status_commits_in_one_transaction(void **state)
{
	(void)state;
	char *tmp = t_tmpdir(), *dir = t_statedir(tmp);
	struct store_opts o = {.batch_max = 1};
	struct store *s = t_open(dir, &o);
	uint64_t key = t_begin(s, "wf", 2, NULL, 1, NULL);
	struct store_stats before, after;
	for (uint32_t task = 0; task < 2; task++) {
		struct store_attempt_start a = {.task = task, .attempt = 1, .start_ms = 100};
		assert_int_equal(store_attempt_start(s, key, &a), 0);
		assert_int_equal(t_sync(s), 0);
		s->ops->stats(s, &before);
		struct store_task_status_rec st = {.task = task, .status = STORE_TASK_FAILED,
						   .error_class = 2, .error = "exit 3"};
		struct store_attempt_end e = {.task = task, .attempt = 1, .start_ms = 100,
					      .end_ms = 150, .duration_ms = 50, .exit_code = 3,
					      .error_class = 2, .error = "exit 3"};
		if (task == 0) {
			e.status = &st;
			assert_int_equal(store_attempt_end(s, key, &e), 0);
		} else {
			assert_int_equal(store_attempt_end(s, key, &e), 0);
			assert_int_equal(store_task_status(s, key, &st), 0);
		}
		assert_int_equal(t_sync(s), 0);
		s->ops->stats(s, &after);
		assert_int_equal(after.transactions - before.transactions, task == 0 ? 1 : 2);
	}
	/* Both as recorded: status and reason, and the attempt. */
	struct arena mem = ARENA_INIT;
	struct store_task_info *t;
	size_t n;
	char *err = NULL;
	assert_int_equal(s->ops->tasks(s, key, &mem, &t, &n, &err), 0);
	assert_int_equal(n, 2);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(t[i].status, STORE_TASK_FAILED);
		assert_int_equal(t[i].error_class, 2);
		assert_string_equal(t[i].error, "exit 3");
		assert_int_equal(t[i].attempts, 1);
		assert_int_equal(t[i].exit_code, 3);
	}
	/* A status for another task, or out of range, is refused. */
	struct store_task_status_rec bad = {.task = 0, .status = STORE_TASK_COMPLETED};
	struct store_attempt_end e = {.task = 1, .attempt = 2, .status = &bad};
	assert_int_equal(store_attempt_end(s, key, &e), -EINVAL);
	bad = (struct store_task_status_rec){.task = 1, .status = STORE_TASK_NSTATUS};
	assert_int_equal(store_attempt_end(s, key, &e), -EINVAL);
	arena_free(&mem);
	assert_int_equal(store_close(s), 0);
	t_rmrf(tmp);
	free(tmp);
	free(dir);
}

/* Attempts whose start and end share a batch are written 16 to a
 * statement, the rest one by one: 37 of them (two full statements and 5
 * alone), among ends whose start was committed before, come back field
 * by field, each with its own values and its result. */
static void attempts_written_many_to_a_statement_come_back_whole(void **state)
{
	(void)state;
	char *tmp = t_tmpdir(), *dir = t_statedir(tmp);
	struct store_opts o = {.batch_ms = 60000};
	struct store *s = t_open(dir, &o);
	enum { N = 40, EARLY = 3 };   /* tasks 0..2: start committed alone */
	uint64_t key = t_begin(s, "wf", N, NULL, 1, NULL);
	for (uint32_t t = 0; t < EARLY; t++) {
		struct store_attempt_start a = {.task = t, .attempt = 1, .start_ms = 1000 + t,
						.ready_ms = 990 + t, .pid = 500 + t, .pgid = 600 + t,
						.pid_start = 700 + t};
		assert_int_equal(store_attempt_start(s, key, &a), 0);
	}
	assert_int_equal(t_sync(s), 0);
	char results[N][32], errors[N][16];
	for (uint32_t t = 0; t < N; t++) {
		if (t >= EARLY) {
			struct store_attempt_start a = {.task = t, .attempt = 1, .start_ms = 1000 + t,
							.ready_ms = 990 + t, .pid = 500 + t,
							.pgid = 600 + t, .pid_start = 700 + t};
			assert_int_equal(store_attempt_start(s, key, &a), 0);
		}
		snprintf(results[t], sizeof(results[t]), "{\"output\":\"r%u\"}", t);
		snprintf(errors[t], sizeof(errors[t]), "e%u", t);
		struct store_task_status_rec st = {.task = t, .status = t % 2 ? STORE_TASK_FAILED :
								  STORE_TASK_COMPLETED};
		struct store_attempt_end e = {
			.task = t, .attempt = 1, .flags = t % 2 ? 0 : STORE_ATTEMPT_OK,
			.start_ms = 1000 + t, .end_ms = 1100 + 2 * t, .duration_ms = 100 + t,
			.exit_code = (int)t, .signal = (int)(t % 3), .error_class = t % 2 ? 2 : 0,
			.error = t % 2 ? errors[t] : NULL, .cpu_user_ms = 10 + t, .cpu_sys_ms = 20 + t,
			.max_rss_kb = 3000 + t, .out_bytes = 40 + t, .err_bytes = 50 + t,
			.out_dropped = t, .err_dropped = 2 * t, .result_json = results[t],
			.result_len = strlen(results[t]), .status = &st};
		assert_int_equal(store_attempt_end(s, key, &e), 0);
	}
	assert_int_equal(t_sync(s), 0);
	struct arena mem = ARENA_INIT;
	struct store_attempt_info *at;
	size_t n;
	char *err = NULL;
	assert_int_equal(s->ops->attempts(s, key, STORE_ALL_TASKS, &mem, &at, &n, &err), 0);
	assert_int_equal(n, N);
	for (uint32_t t = 0; t < N; t++) {
		const struct store_attempt_info *x = &at[t];
		assert_int_equal(x->task, t);
		assert_int_equal(x->attempt, 1);
		assert_true(x->ended);
		assert_int_equal(x->flags & STORE_ATTEMPT_OK, t % 2 ? 0 : STORE_ATTEMPT_OK);
		assert_int_equal(x->start_ms, 1000 + t);
		assert_int_equal(x->end_ms, 1100 + 2 * t);
		assert_int_equal(x->duration_ms, 100 + t);
		assert_int_equal(x->ready_ms, 990 + t);
		assert_int_equal(x->pid, 500 + t);
		assert_int_equal(x->pgid, 600 + t);
		assert_int_equal(x->pid_start, 700 + t);
		assert_int_equal(x->exit_code, t);
		assert_int_equal(x->signal, t % 3);
		assert_int_equal(x->error_class, t % 2 ? 2 : 0);
		if (t % 2)
			assert_string_equal(x->error, errors[t]);
		else
			assert_null(x->error);
		assert_int_equal(x->cpu_user_ms, 10 + t);
		assert_int_equal(x->cpu_sys_ms, 20 + t);
		assert_int_equal(x->max_rss_kb, 3000 + t);
		assert_int_equal(x->out_bytes, 40 + t);
		assert_int_equal(x->err_bytes, 50 + t);
		assert_int_equal(x->out_dropped, t);
		assert_int_equal(x->err_dropped, 2 * t);
		assert_non_null(x->result_json);
		assert_string_equal(x->result_json, results[t]);
	}
	struct store_task_info *ti;
	assert_int_equal(s->ops->tasks(s, key, &mem, &ti, &n, &err), 0);
	for (uint32_t t = 0; t < N; t++)
		assert_int_equal(ti[t].status, t % 2 ? STORE_TASK_FAILED : STORE_TASK_COMPLETED);
	arena_free(&mem);
	assert_int_equal(store_close(s), 0);
	t_rmrf(tmp);
	free(tmp);
	free(dir);
}

struct order {
	pthread_mutex_t mu;
	int seen[200];
	int n;
};

struct order_cb {
	struct order *o;
	int i;
};

static void order_cb(void *ud, int status)
{
	struct order_cb *c = ud;
	pthread_mutex_lock(&c->o->mu);
	c->o->seen[c->o->n++] = status == 0 ? c->i : -1;
	pthread_mutex_unlock(&c->o->mu);
}

static void barriers_call_back_in_order_after_what_came_before_is_committed(void **state)
{
	(void)state;
	char *tmp = t_tmpdir(), *dir = t_statedir(tmp), *err = NULL;
	struct store *s = t_open(dir, NULL);
	uint64_t key = t_begin(s, "wf", 200, NULL, 1, NULL);
	struct store_opts ro = {.read_only = true};
	struct store *r = t_open(dir, &ro);
	struct order o = {.mu = PTHREAD_MUTEX_INITIALIZER};
	struct order_cb cbs[200];
	struct arena mem = ARENA_INIT;
	for (int i = 0; i < 200; i++) {
		t_attempt(s, key, (uint32_t)i, 1, true, 1);
		cbs[i] = (struct order_cb){&o, i};
		assert_int_equal(store_barrier(s, order_cb, &cbs[i]), 0);
		if (i % 20 == 19) {
			/* Once called back, another connection sees it all. */
			assert_int_equal(t_sync(s), 0);
			struct store_run_info ri;
			assert_int_equal(r->ops->get_run(r, key, &mem, &ri, &err), 0);
			assert_int_equal(ri.counts[STORE_TASK_COMPLETED], i + 1);
			struct store_attempt_info *at;
			size_t n;
			assert_int_equal(r->ops->attempts(r, key, STORE_ALL_TASKS, &mem, &at, &n,
							  &err), 0);
			assert_int_equal(n, (size_t)i + 1);
		}
	}
	assert_int_equal(t_sync(s), 0);
	assert_int_equal(o.n, 200);
	for (int i = 0; i < 200; i++)
		assert_int_equal(o.seen[i], i);
	arena_free(&mem);
	assert_int_equal(store_close(r), 0);
	assert_int_equal(store_close(s), 0);
	t_rmrf(tmp);
	free(tmp);
	free(dir);
}

/* ---- log files -------------------------------------------------------------------- */

static void log_files_keep_a_prefix_up_to_the_cap_and_count_the_rest(void **state)
{
	(void)state;
	char *tmp = t_tmpdir(), *dir = t_statedir(tmp), *err = NULL;
	struct store_opts o = {.log_cap = 1000};
	struct store *s = t_open(dir, &o);
	uint64_t key = t_begin(s, "wf", 2, NULL, 1, NULL);
	char chunk[600];
	for (int i = 0; i < 3; i++) {
		memset(chunk, 'a' + i, sizeof(chunk));
		assert_int_equal(store_output(s, key, 0, 1, STORE_STDOUT, chunk, sizeof(chunk)), 0);
	}
	struct store_attempt_end e = {.task = 0, .attempt = 1, .flags = 1, .out_bytes = 1800};
	assert_int_equal(store_attempt_end(s, key, &e), 0);
	assert_int_equal(t_sync(s), 0);
	struct arena mem = ARENA_INIT;
	struct store_attempt_info *at;
	size_t n;
	assert_int_equal(s->ops->attempts(s, key, 0, &mem, &at, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_int_equal(at[0].out_logged, 1000);
	assert_int_equal(at[0].out_log_cut, 800);
	assert_int_equal(at[0].err_logged, 0);
	struct store_log_files lf;
	assert_int_equal(s->ops->log_files(s, key, 0, 1, &mem, &lf, &err), 0);
	assert_null(lf.path[STORE_STDERR]);
	size_t len;
	char *data = t_read_file(lf.path[STORE_STDOUT], &len);
	assert_int_equal(len, 1000);
	for (size_t i = 0; i < len; i++)
		assert_int_equal(data[i], i < 600 ? 'a' : 'b');
	free(data);
	struct store_stats stt;
	s->ops->stats(s, &stt);
	assert_int_equal(stt.log_bytes, 1000);
	assert_int_equal(stt.log_cut_bytes, 800);
	arena_free(&mem);
	assert_int_equal(store_close(s), 0);

	/* A full queue cuts instead of waiting, and the file stays a prefix:
	 * with a minute's window nothing is taken before the barrier. */
	o = (struct store_opts){.queue_max = 1000, .batch_ms = 60000};
	s = t_open(dir, &o);
	key = t_begin(s, "wf", 1, NULL, 1, NULL);
	for (int i = 0; i < 5; i++) {
		memset(chunk, 'a' + i, 400);
		assert_int_equal(store_output(s, key, 0, 1, STORE_STDERR, chunk, 400), 0);
	}
	assert_int_equal(store_attempt_end(s, key, &e), 0);
	assert_int_equal(t_sync(s), 0);
	assert_int_equal(s->ops->attempts(s, key, 0, &mem, &at, &n, &err), 0);
	assert_int_equal(at[0].err_logged, 800);
	assert_int_equal(at[0].err_log_cut, 1200);
	arena_free(&mem);
	assert_int_equal(store_close(s), 0);
	t_rmrf(tmp);
	free(tmp);
	free(dir);
}

static void many_attempts_with_output_at_once_stay_within_open_file_limits(void **state)
{
	(void)state;
	char *tmp = t_tmpdir(), *dir = t_statedir(tmp), *err = NULL;
	struct store *s = t_open(dir, NULL);
	uint64_t key = t_begin(s, "wf", 300, NULL, 1, NULL);
	/* 300 attempts writing at once, interleaved: more than the writer
	 * keeps open; every byte still lands in order. */
	for (int round = 0; round < 3; round++)
		for (uint32_t t = 0; t < 300; t++) {
			char line[32];
			int l = snprintf(line, sizeof(line), "%u:%d\n", t, round);
			assert_int_equal(store_output(s, key, t, 1, STORE_STDOUT, line, (size_t)l), 0);
		}
	for (uint32_t t = 0; t < 300; t++) {
		struct store_attempt_end e = {.task = t, .attempt = 1, .flags = 1};
		assert_int_equal(store_attempt_end(s, key, &e), 0);
	}
	assert_int_equal(t_sync(s), 0);
	struct arena mem = ARENA_INIT;
	for (uint32_t t = 0; t < 300; t += 37) {
		struct store_log_files lf;
		assert_int_equal(s->ops->log_files(s, key, t, 1, &mem, &lf, &err), 0);
		size_t len;
		char *data = t_read_file(lf.path[STORE_STDOUT], &len), want[64];
		snprintf(want, sizeof(want), "%u:0\n%u:1\n%u:2\n", t, t, t);
		assert_string_equal(data, want);
		free(data);
	}
	arena_free(&mem);
	assert_int_equal(store_close(s), 0);
	t_rmrf(tmp);
	free(tmp);
	free(dir);
}

/* ---- finding runs ---------------------------------------------------------------- */

static void runs_are_found_by_last_id_or_unique_prefix_newest_first(void **state)
{
	(void)state;
	char *tmp = t_tmpdir(), *dir = t_statedir(tmp), *err = NULL;
	struct store *s = t_open(dir, NULL);
	uint64_t k1 = t_begin(s, "alpha", 1, "abc-111", 1, NULL);
	uint64_t k2 = t_begin(s, "alpha", 1, "abc-222", 1, NULL);
	uint64_t k3 = t_begin(s, "beta", 1, "xyz-333", 1, NULL);
	assert_int_equal(s->ops->run_end(s, k1, STORE_RUN_COMPLETED, 5, NULL), 0);
	assert_int_equal(s->ops->run_end(s, k3, STORE_RUN_FAILED, 5, NULL), 0);
	assert_int_equal(t_sync(s), 0);
	struct arena mem = ARENA_INIT;
	struct store_run_info ri, *v;
	size_t n;
	assert_int_equal(s->ops->find_run(s, "last", NULL, &mem, &ri, &err), 0);
	assert_int_equal(ri.key, k3);
	assert_int_equal(s->ops->find_run(s, "last", "alpha", &mem, &ri, &err), 0);
	assert_int_equal(ri.key, k2);
	assert_int_equal(s->ops->find_run(s, "abc-1", NULL, &mem, &ri, &err), 0);
	assert_int_equal(ri.key, k1);
	assert_int_equal(s->ops->find_run(s, "xyz-333", NULL, &mem, &ri, &err), 0);
	assert_int_equal(ri.key, k3);
	assert_int_equal(s->ops->find_run(s, "abc", NULL, &mem, &ri, &err), -EINVAL);
	assert_non_null(strstr(err, "abc-111"));
	assert_non_null(strstr(err, "abc-222"));
	free(err);
	err = NULL;
	assert_int_equal(s->ops->find_run(s, "nope", NULL, &mem, &ri, &err), -ENOENT);
	free(err);
	err = NULL;
	assert_int_equal(s->ops->find_run(s, "last", "gamma", &mem, &ri, &err), -ENOENT);
	free(err);
	err = NULL;

	struct store_run_filter f = {.status = -1};
	assert_int_equal(s->ops->list_runs(s, &f, &mem, &v, &n, &err), 0);
	assert_int_equal(n, 3);
	assert_int_equal(v[0].key, k3);
	assert_int_equal(v[2].key, k1);
	f = (struct store_run_filter){.workflow = "alpha", .status = -1, .limit = 1};
	assert_int_equal(s->ops->list_runs(s, &f, &mem, &v, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_int_equal(v[0].key, k2);
	f = (struct store_run_filter){.status = STORE_RUN_RUNNING};
	assert_int_equal(s->ops->list_runs(s, &f, &mem, &v, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_int_equal(v[0].key, k2);
	f = (struct store_run_filter){.status = STORE_RUN_FAILED};
	assert_int_equal(s->ops->list_runs(s, &f, &mem, &v, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_int_equal(v[0].key, k3);
	/* Closing gives up the lease: the unfinished run is interrupted. */
	assert_int_equal(store_close(s), 0);
	struct store_opts ro = {.read_only = true};
	s = t_open(dir, &ro);
	f = (struct store_run_filter){.status = STORE_RUN_INTERRUPTED};
	assert_int_equal(s->ops->list_runs(s, &f, &mem, &v, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_int_equal(v[0].key, k2);
	assert_false(v[0].lease.alive);
	assert_int_equal(s->ops->barrier(s, t_wait_cb, NULL), -EROFS);
	arena_free(&mem);
	assert_int_equal(store_close(s), 0);
	t_rmrf(tmp);
	free(tmp);
	free(dir);
}

/* ---- reruns ----------------------------------------------------------------------- */

static void a_rerun_keeps_tasks_and_their_results_from_the_earlier_attempt(void **state)
{
	(void)state;
	char *tmp = t_tmpdir(), *dir = t_statedir(tmp), *err = NULL;
	struct store *s = t_open(dir, NULL);
	char id[STORE_RUN_ID_SIZE];
	uint64_t k1 = t_begin(s, "wf", 2, NULL, 1, id);
	struct store_attempt_end e = {.task = 0, .attempt = 1, .flags = 1, .duration_ms = 7,
				      .result_json = "{\"output\":\"A\"}", .result_len = 14};
	assert_int_equal(store_attempt_end(s, k1, &e), 0);
	struct store_task_status_rec st = {.task = 0, .status = STORE_TASK_COMPLETED};
	assert_int_equal(store_task_status(s, k1, &st), 0);
	t_attempt(s, k1, 1, 1, false, 3);
	assert_int_equal(s->ops->run_end(s, k1, STORE_RUN_FAILED, 10, NULL), 0);
	assert_int_equal(t_sync(s), 0);

	uint64_t k2 = t_begin(s, "wf", 2, id, 2, NULL);
	assert_int_equal(s->ops->carry(s, k2, 0, STORE_TASK_COMPLETED, k1, 0), 0);
	t_attempt(s, k2, 1, 2, true, 4);
	assert_int_equal(s->ops->run_end(s, k2, STORE_RUN_COMPLETED, 20, NULL), 0);
	assert_int_equal(t_sync(s), 0);
	/* A third attempt keeps task 0 again: chains are followed. */
	uint64_t k3 = t_begin(s, "wf", 2, id, 3, NULL);
	assert_int_equal(s->ops->carry(s, k3, 0, STORE_TASK_COMPLETED, k2, 0), 0);
	assert_int_equal(t_sync(s), 0);

	struct arena mem = ARENA_INIT;
	struct store_run_info ri;
	assert_int_equal(s->ops->find_run(s, id, NULL, &mem, &ri, &err), 0);
	assert_int_equal(ri.key, k3);
	assert_int_equal(ri.run_attempt, 3);
	struct store_task_info *t;
	size_t n;
	assert_int_equal(s->ops->tasks(s, k2, &mem, &t, &n, &err), 0);
	assert_int_equal(t[0].status, STORE_TASK_COMPLETED);
	assert_int_equal(t[0].from_run, k1);
	assert_int_equal(t[0].attempts, 1);
	assert_int_equal(t[0].duration_ms, 7);
	assert_int_equal(t[1].status, STORE_TASK_COMPLETED);
	assert_int_equal(t[1].attempts, 1);
	struct store_attempt_info *at;
	assert_int_equal(s->ops->attempts(s, k3, STORE_ALL_TASKS, &mem, &at, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_int_equal(at[0].task, 0);
	assert_int_equal(at[0].run, k1);
	assert_string_equal(at[0].result_json, "{\"output\":\"A\"}");
	assert_int_equal(s->ops->attempts(s, k2, 1, &mem, &at, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_int_equal(at[0].attempt, 2);
	assert_int_equal(s->ops->carry(s, k3, 1, STORE_TASK_COMPLETED, k3, 1), -EINVAL);
	arena_free(&mem);
	assert_int_equal(store_close(s), 0);
	t_rmrf(tmp);
	free(tmp);
	free(dir);
}

/* ---- history ---------------------------------------------------------------------- */

static void history_gives_the_median_of_successful_attempts_by_task_id(void **state)
{
	(void)state;
	char *tmp = t_tmpdir(), *dir = t_statedir(tmp), *err = NULL;
	struct store *s = t_open(dir, NULL);
	/* Three runs of a, b, c (indices 0, 1, 2). */
	const uint64_t da[] = {10, 20, 30}, db[] = {5, 0, 7};
	for (int r = 0; r < 3; r++) {
		const char *ids[] = {"a", "b", "c"};
		struct store_run_begin b = {.run_attempt = 1, .workflow = "wf", .path = "p",
					    .task_ids = ids, .n_tasks = 3};
		uint64_t key;
		assert_int_equal(s->ops->begin(s, &b, &key, NULL, &err), 0);
		t_attempt(s, key, 0, 1, true, da[r]);
		t_attempt(s, key, 1, 1, db[r] != 0, db[r] ? db[r] : 999);
		t_attempt(s, key, 2, 1, false, 50);
		if (r == 2)   /* a retry that succeeded counts too */
			t_attempt(s, key, 1, 2, true, 9);
	}
	/* Another workflow's runs do not count. */
	uint64_t other = t_begin(s, "other", 1, NULL, 1, NULL);
	t_attempt(s, other, 0, 1, true, 100000);
	assert_int_equal(t_sync(s), 0);
	const char *mine[] = {"c", "b", "a", "z", "a"};
	uint64_t med[5];
	assert_int_equal(s->ops->history(s, "wf", mine, 5, 10, med, &err), 0);
	assert_int_equal(med[0], 0);   /* c never succeeded */
	assert_int_equal(med[1], 7);   /* b: 5, 7, 9 */
	assert_int_equal(med[2], 20);  /* a: 10, 20, 30 */
	assert_int_equal(med[3], 0);   /* z: no history */
	assert_int_equal(med[4], 20);
	/* A newer run with another task list: matched by id. */
	const char *ids2[] = {"d", "a"};
	struct store_run_begin b2 = {.run_attempt = 1, .workflow = "wf", .path = "p",
				     .task_ids = ids2, .n_tasks = 2};
	uint64_t k4;
	assert_int_equal(s->ops->begin(s, &b2, &k4, NULL, &err), 0);
	t_attempt(s, k4, 1, 1, true, 100);
	assert_int_equal(t_sync(s), 0);
	const char *same[] = {"a", "b", "c"};
	assert_int_equal(s->ops->history(s, "wf", same, 3, 2, med, &err), 0);
	assert_int_equal(med[0], 65);  /* a over the newest 2 runs: 100, 30 */
	assert_int_equal(med[1], 8);   /* b: 7, 9 */
	assert_int_equal(s->ops->history(s, "none", same, 3, 10, med, &err), 0);
	assert_int_equal(med[0], 0);
	assert_null(err);
	assert_int_equal(store_close(s), 0);
	t_rmrf(tmp);
	free(tmp);
	free(dir);
}

/* A run of `dagrun replay --live` (replay_of set): read back as begun, and
 * left out of history (its replayed attempts did not run). */
static void a_live_replay_run_is_marked_and_left_out_of_history(void **state)
{
	(void)state;
	char *tmp = t_tmpdir(), *dir = t_statedir(tmp), *err = NULL;
	struct store *s = t_open(dir, NULL);
	const char *ids[] = {"a"};
	struct store_run_begin b = {.run_attempt = 1, .workflow = "wf", .path = "p",
				    .task_ids = ids, .n_tasks = 1};
	uint64_t k1, k2;
	char id1[STORE_RUN_ID_SIZE];
	assert_int_equal(s->ops->begin(s, &b, &k1, id1, &err), 0);
	t_attempt(s, k1, 0, 1, true, 10);
	b.replay_of = id1;
	assert_int_equal(s->ops->begin(s, &b, &k2, NULL, &err), 0);
	t_attempt(s, k2, 0, 1, true, 1000);
	assert_int_equal(t_sync(s), 0);
	struct arena mem = ARENA_INIT;
	struct store_run_info ri;
	assert_int_equal(s->ops->get_run(s, k2, &mem, &ri, &err), 0);
	assert_string_equal(ri.replay_of, id1);
	assert_int_equal(s->ops->get_run(s, k1, &mem, &ri, &err), 0);
	assert_null(ri.replay_of);
	struct store_run_filter f = {.status = -1};
	struct store_run_info *v;
	size_t n;
	assert_int_equal(s->ops->list_runs(s, &f, &mem, &v, &n, &err), 0);
	assert_int_equal(n, 2);
	assert_string_equal(v[0].replay_of, id1);
	assert_null(v[1].replay_of);
	uint64_t med;
	assert_int_equal(s->ops->history(s, "wf", ids, 1, 10, &med, &err), 0);
	assert_int_equal(med, 10);
	assert_null(err);
	arena_free(&mem);
	assert_int_equal(store_close(s), 0);
	t_rmrf(tmp);
	free(tmp);
	free(dir);
}

/* ---- retention ------------------------------------------------------------------------ */

static bool exists(const char *path)
{
	struct stat sb;
	return stat(path, &sb) == 0;
}

static void prune_keeps_the_newest_drops_the_old_with_their_logs_and_spares_live_runs(void **state)
{
	(void)state;
	char *tmp = t_tmpdir(), *dir = t_statedir(tmp), *err = NULL;
	struct store *s = t_open(dir, NULL);
	char ids[6][STORE_RUN_ID_SIZE];
	uint64_t keys[6];
	for (int i = 0; i < 5; i++) {
		keys[i] = t_begin(s, "A", 1, NULL, 1, ids[i]);
		assert_int_equal(store_output(s, keys[i], 0, 1, STORE_STDOUT, "0123456789", 10), 0);
		t_attempt(s, keys[i], 0, 1, true, 1);
		if (i != 0)   /* run 0 stays live: this process owns it */
			assert_int_equal(s->ops->run_end(s, keys[i], STORE_RUN_COMPLETED, 1, NULL), 0);
	}
	keys[5] = t_begin(s, "B", 1, NULL, 1, ids[5]);
	assert_int_equal(s->ops->run_end(s, keys[5], STORE_RUN_COMPLETED, 1, NULL), 0);
	assert_int_equal(t_sync(s), 0);
	char logdir[512];
	snprintf(logdir, sizeof(logdir), "%s/logs/%s.1", dir, ids[1]);
	assert_true(exists(logdir));

	struct store_prune_opts po = {.workflow = "A", .keep = 2};
	assert_int_equal(s->ops->prune_due(s, &po, &err), 1);
	po.keep = 5;
	assert_int_equal(s->ops->prune_due(s, &po, &err), 0);
	po = (struct store_prune_opts){.keep = 2, .dry_run = true};
	struct arena mem = ARENA_INIT;
	struct store_prune_result res;
	assert_int_equal(s->ops->prune(s, &po, &mem, &res, &err), 0);
	/* A: runs 4, 3 kept; 2, 1 go; 0 is live. B: one run, kept. */
	assert_int_equal(res.runs, 2);
	assert_int_equal(res.log_bytes, 20);
	assert_true(exists(logdir));
	po.dry_run = false;
	assert_int_equal(s->ops->prune(s, &po, &mem, &res, &err), 0);
	assert_int_equal(res.runs, 2);
	assert_string_equal(res.run_ids[0], ids[2]);
	assert_string_equal(res.run_ids[1], ids[1]);
	assert_false(exists(logdir));
	struct store_run_info ri;
	assert_int_equal(s->ops->find_run(s, ids[1], NULL, &mem, &ri, &err), -ENOENT);
	free(err);
	err = NULL;
	assert_int_equal(s->ops->find_run(s, ids[0], NULL, &mem, &ri, &err), 0);
	/* The cascade took the attempts with the run. */
	struct store_run_filter f = {.status = -1};
	struct store_run_info *v;
	size_t n;
	assert_int_equal(s->ops->list_runs(s, &f, &mem, &v, &n, &err), 0);
	assert_int_equal(n, 4);

	/* By age, on the writer, after what came before. */
	po = (struct store_prune_opts){.older_than_ms = 3600000, .now_ms = t_now_ms() + 7200000};
	assert_int_equal(s->ops->prune_async(s, &po), 0);
	assert_int_equal(t_sync(s), 0);
	assert_int_equal(s->ops->list_runs(s, &f, &mem, &v, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_int_equal(v[0].key, keys[0]);
	/* The writer's connection checks no foreign key for its records, but
	 * its prune cascades: no row of a removed run is left behind. */
	char dbp[600];
	snprintf(dbp, sizeof(dbp), "%s/state.db", dir);
	sqlite3 *db = NULL;
	assert_int_equal(sqlite3_open_v2(dbp, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	sqlite3_stmt *q = NULL;
	assert_int_equal(sqlite3_prepare_v2(db,
		"SELECT (SELECT count(*) FROM attempts WHERE run NOT IN (SELECT id FROM runs)) +"
		" (SELECT count(*) FROM task_status WHERE run NOT IN (SELECT id FROM runs)) +"
		" (SELECT count(*) FROM run_defs WHERE run NOT IN (SELECT id FROM runs)),"
		" (SELECT count(*) FROM attempts)", -1, &q, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(q), SQLITE_ROW);
	assert_int_equal(sqlite3_column_int(q, 0), 0);
	assert_int_equal(sqlite3_column_int(q, 1), 1);   /* run 0's */
	sqlite3_finalize(q);
	sqlite3_close(db);
	po.workflow = "A";
	assert_int_equal(s->ops->prune_due(s, &po, &err), 1);
	po.now_ms = 0;
	assert_int_equal(s->ops->prune_due(s, &po, &err), 0);
	assert_null(err);
	arena_free(&mem);
	assert_int_equal(store_close(s), 0);
	t_rmrf(tmp);
	free(tmp);
	free(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(run_ids_sort_by_time_and_differ_within_one_millisecond),
		cmocka_unit_test(every_field_of_a_run_is_recorded_and_read_back),
		cmocka_unit_test(records_for_unknown_or_ended_runs_and_bad_tasks_are_refused),
		cmocka_unit_test(start_and_end_in_one_batch_or_two_give_the_same_row),
		cmocka_unit_test(many_records_share_one_transaction_and_a_barrier_commits_at_once),
		cmocka_unit_test(an_end_with_its_status_commits_in_one_transaction),
		cmocka_unit_test(attempts_written_many_to_a_statement_come_back_whole),
		cmocka_unit_test(barriers_call_back_in_order_after_what_came_before_is_committed),
		cmocka_unit_test(log_files_keep_a_prefix_up_to_the_cap_and_count_the_rest),
		cmocka_unit_test(many_attempts_with_output_at_once_stay_within_open_file_limits),
		cmocka_unit_test(runs_are_found_by_last_id_or_unique_prefix_newest_first),
		cmocka_unit_test(a_rerun_keeps_tasks_and_their_results_from_the_earlier_attempt),
		cmocka_unit_test(history_gives_the_median_of_successful_attempts_by_task_id),
		cmocka_unit_test(a_live_replay_run_is_marked_and_left_out_of_history),
		cmocka_unit_test(prune_keeps_the_newest_drops_the_old_with_their_logs_and_spares_live_runs),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
