/* test_rundoc.c: the run document built from the state store
 * (report_rundoc_from_store): runs recorded through the store's API, the
 * document checked field by field against what was recorded, and by the
 * renderers' own parser (report_doc_parse) for what the store may hold
 * that a document may not (invalid UTF-8, ids alike, an unloadable
 * definition, a run cut by a crash). */
#include <jansson.h>

#include "../store/helpers.h"
#include "report/report.h"
#include "report/rundoc.h"

static const char mixed_yaml[] =
	"name: mix\n"
	"tasks:\n"
	"  - id: a\n"
	"    command: 'true'\n"
	"  - id: b\n"
	"    dependencies: [a]\n"
	"    command: 'true'\n"
	"  - id: c\n"
	"    dependencies:\n"
	"      - {taskId: a, type: non-blocking}\n"
	"      - {taskId: b, condition: 'status == \"failed\"'}\n"
	"    api: {url: 'http://127.0.0.1:9/x'}\n"
	"onExit:\n"
	"  - id: bye\n"
	"    command: 'true'\n";

static const char *const mixed_ids[] = {"a", "b", "c", "bye"};

struct fix {
	char *tmp, *dir;
	struct store *s;
	struct arena mem;
};

static void fix_open(struct fix *f, uint64_t log_cap)
{
	f->tmp = t_tmpdir();
	f->dir = t_statedir(f->tmp);
	struct store_opts o = {.log_cap = log_cap};
	f->s = t_open(f->dir, &o);
	f->mem = (struct arena)ARENA_INIT;
}

static void fix_close(struct fix *f)
{
	if (f->s)
		assert_int_equal(store_close(f->s), 0);
	arena_free(&f->mem);
	t_rmrf(f->tmp);
	free(f->tmp);
	free(f->dir);
}

static uint64_t begin_def(struct fix *f, const char *wf, const char *def, const char *const *ids,
			  uint32_t n, uint64_t start)
{
	struct store_run_begin b = {
		.run_attempt = 1, .workflow = wf, .path = "mix.yaml", .definition = def,
		.definition_len = def ? strlen(def) : 0, .vars_json = "{}", .task_ids = ids,
		.n_tasks = n, .start_ms = start,
	};
	uint64_t key = 0;
	char *err = NULL;
	int r = f->s->ops->begin(f->s, &b, &key, NULL, &err);
	if (r < 0)
		fail_msg("begin: %s", err ? err : "");
	return key;
}

static void attempt(struct fix *f, uint64_t key, uint32_t task, uint32_t n, uint64_t ready,
		    uint64_t start, uint64_t dur, bool ok)
{
	struct store_attempt_start a = {.task = task, .attempt = n, .start_ms = start,
					.ready_ms = ready, .pid = 77};
	assert_int_equal(store_attempt_start(f->s, key, &a), 0);
	struct store_attempt_end e = {.task = task, .attempt = n, .flags = ok ? STORE_ATTEMPT_OK : 0,
				      .start_ms = start, .end_ms = start + dur, .duration_ms = dur,
				      .exit_code = ok ? 0 : 3, .error_class = ok ? 0 : 1,
				      .error = ok ? NULL : "exit status 3", .cpu_user_ms = 7,
				      .max_rss_kb = 99, .prompt_tokens = -1, .completion_tokens = -1};
	assert_int_equal(store_attempt_end(f->s, key, &e), 0);
}

static void status(struct fix *f, uint64_t key, uint32_t task, int st, int cls, const char *err)
{
	struct store_task_status_rec r = {.task = task, .status = st, .error_class = cls,
					  .error = err};
	assert_int_equal(store_task_status(f->s, key, &r), 0);
}

/* Builds the document of run key; checks that the renderers' parser takes
 * it. *warn is the builder's (malloc'd or NULL). */
static json_t *doc_of(struct fix *f, uint64_t key, const struct report_rundoc_opts *o,
		      char **warn)
{
	assert_int_equal(t_sync(f->s), 0);
	struct store_run_info ri;
	char *err = NULL;
	assert_int_equal(f->s->ops->get_run(f->s, key, &f->mem, &ri, &err), 0);
	json_t *doc = NULL;
	int r = report_rundoc_from_store(f->s, &ri, o, &doc, warn, &err);
	if (r < 0)
		fail_msg("rundoc: %d %s", r, err ? err : "");
	struct arena mem = ARENA_INIT;
	struct report_doc d;
	r = report_doc_parse(doc, 0, &mem, &d, &err);
	if (r < 0)
		fail_msg("the document does not parse: %s\n%s", err, json_dumps(doc, JSON_INDENT(1)));
	arena_free(&mem);
	return doc;
}

static json_t *task_of(json_t *doc, const char *id)
{
	size_t i;
	json_t *t;
	json_array_foreach(json_object_get(doc, "tasks"), i, t)
		if (!strcmp(json_string_value(json_object_get(t, "id")), id))
			return t;
	fail_msg("no task %s", id);
	return NULL;
}

static int64_t geti(json_t *o, const char *k)
{
	json_t *v = json_object_get(o, k);
	if (!json_is_integer(v))
		fail_msg("%s is not an integer", k);
	return json_integer_value(v);
}

static const char *gets(json_t *o, const char *k)
{
	json_t *v = json_object_get(o, k);
	return json_is_string(v) ? json_string_value(v) : NULL;
}

/* ---- a run and its definition ------------------------------------------------------- */

static void a_run_maps_to_its_document(void **state)
{
	(void)state;
	struct fix f;
	fix_open(&f, 0);
	uint64_t t0 = 1700000000000ull;
	uint64_t key = begin_def(&f, "mix", mixed_yaml, mixed_ids, 4, t0);
	attempt(&f, key, 0, 1, t0, t0 + 10, 100, false);
	attempt(&f, key, 0, 2, t0 + 300, t0 + 350, 200, true);
	status(&f, key, 0, STORE_TASK_COMPLETED, 0, NULL);
	status(&f, key, 1, STORE_TASK_SKIPPED, 3, "dependency 'a' failed");
	struct store_attempt_start hs = {.task = 2, .attempt = 1, .start_ms = t0 + 600};
	assert_int_equal(store_attempt_start(f.s, key, &hs), 0);
	struct store_attempt_end he = {.task = 2, .attempt = 1, .flags = STORE_ATTEMPT_OK,
				       .start_ms = t0 + 600, .end_ms = t0 + 700, .duration_ms = 100,
				       .exit_code = -1, .http_status = 201, .http_total_us = 99000,
				       .http_dns_us = 10, .model = "m1", .finish_reason = "stop",
				       .prompt_tokens = 12, .completion_tokens = -1};
	assert_int_equal(store_attempt_end(f.s, key, &he), 0);
	status(&f, key, 2, STORE_TASK_COMPLETED, 0, NULL);
	status(&f, key, 3, STORE_TASK_PENDING, 0, NULL);
	assert_int_equal(f.s->ops->run_end(f.s, key, STORE_RUN_FAILED, t0 + 1000, "1 failed"), 0);
	char *warn = NULL;
	json_t *doc = doc_of(&f, key, NULL, &warn);
	assert_null(warn);
	assert_int_equal(geti(doc, "dagrunRunDocument"), 1);
	json_t *run = json_object_get(doc, "run");
	assert_string_equal(gets(run, "workflow"), "mix");
	assert_string_equal(gets(run, "status"), "failed");
	assert_int_equal(geti(run, "startMs"), (int64_t)t0);
	assert_int_equal(geti(run, "endMs"), (int64_t)t0 + 1000);
	assert_string_equal(gets(run, "error"), "1 failed");
	json_t *counts = json_object_get(run, "counts");
	assert_int_equal(geti(counts, "completed"), 2);
	assert_int_equal(geti(counts, "skipped"), 1);
	assert_int_equal(geti(counts, "pending"), 1);
	/* a: kind from the definition, two attempts with ready times */
	json_t *a = task_of(doc, "a");
	assert_string_equal(gets(a, "kind"), "command");
	assert_null(json_object_get(a, "hook"));
	json_t *att = json_object_get(a, "attempts");
	assert_int_equal(json_array_size(att), 2);
	json_t *a1 = json_array_get(att, 0), *a2 = json_array_get(att, 1);
	assert_string_equal(gets(a1, "status"), "failed");
	assert_string_equal(gets(a1, "errorClass"), "transient");
	assert_string_equal(gets(a1, "error"), "exit status 3");
	assert_int_equal(geti(a1, "exitCode"), 3);
	assert_int_equal(geti(a1, "readyMs"), (int64_t)t0);
	assert_int_equal(geti(a2, "readyMs"), (int64_t)t0 + 300);
	assert_int_equal(geti(a2, "startMs"), (int64_t)t0 + 350);
	assert_int_equal(geti(a2, "durationMs"), 200);
	assert_string_equal(gets(a2, "status"), "completed");
	assert_true(json_is_null(json_object_get(a2, "errorClass")));
	assert_int_equal(geti(a2, "cpuUserMs"), 7);
	assert_int_equal(geti(a2, "maxRssKb"), 99);
	/* b: skipped by its dependency, the task's own reason */
	json_t *b = task_of(doc, "b");
	assert_string_equal(gets(b, "status"), "skipped");
	assert_string_equal(gets(b, "errorClass"), "dependency");
	assert_int_equal(json_array_size(json_object_get(b, "attempts")), 0);
	json_t *bd = json_array_get(json_object_get(b, "dependencies"), 0);
	assert_string_equal(gets(bd, "taskId"), "a");
	assert_string_equal(gets(bd, "type"), "blocking");
	/* c: an HTTP and AI attempt, a non-blocking and a conditional edge */
	json_t *c = task_of(doc, "c");
	assert_string_equal(gets(c, "kind"), "api");
	json_t *deps = json_object_get(c, "dependencies");
	assert_int_equal(json_array_size(deps), 2);
	assert_string_equal(gets(json_array_get(deps, 0), "type"), "non-blocking");
	assert_string_equal(gets(json_array_get(deps, 1), "condition"), "status == \"failed\"");
	json_t *c1 = json_array_get(json_object_get(c, "attempts"), 0);
	assert_null(json_object_get(c1, "readyMs"));      /* not recorded */
	assert_true(json_is_null(json_object_get(c1, "exitCode")));
	json_t *http = json_object_get(c1, "http");
	assert_int_equal(geti(http, "status"), 201);
	assert_int_equal(geti(json_object_get(http, "timings"), "totalUs"), 99000);
	json_t *ai = json_object_get(c1, "ai");
	assert_string_equal(gets(ai, "model"), "m1");
	assert_string_equal(gets(ai, "finishReason"), "stop");
	assert_int_equal(geti(json_object_get(ai, "usage"), "promptTokens"), 12);
	assert_true(json_is_null(json_object_get(json_object_get(ai, "usage"), "completionTokens")));
	/* bye: the hook, after the main tasks */
	json_t *bye = json_array_get(json_object_get(doc, "tasks"), 3);
	assert_string_equal(gets(bye, "id"), "bye");
	assert_string_equal(gets(bye, "hook"), "onExit");
	json_decref(doc);
	fix_close(&f);
}

/* ---- output tails ------------------------------------------------------------------- */

static void tails_are_bounded_and_start_at_a_character(void **state)
{
	(void)state;
	struct fix f;
	fix_open(&f, 3000);
	uint64_t t0 = 1700000000000ull;
	static const char *const ids[] = {"talk", "quiet"};
	uint64_t key = begin_def(&f, "w", NULL, ids, 2, t0);
	struct store_attempt_start a = {.task = 0, .attempt = 1, .start_ms = t0};
	assert_int_equal(store_attempt_start(f.s, key, &a), 0);
	/* 1,000 "é" (2 bytes each) on stdout: the tail's window of 101 bytes
	 * starts inside one */
	char buf[2000];
	for (int i = 0; i < 1000; i++)
		memcpy(buf + 2 * i, "\xc3\xa9", 2);
	assert_int_equal(store_output(f.s, key, 0, 1, STORE_STDOUT, buf, sizeof(buf)), 0);
	/* 4,000 bytes on stderr: the log keeps 3,000 (its cap) */
	memset(buf, 'e', sizeof(buf));
	assert_int_equal(store_output(f.s, key, 0, 1, STORE_STDERR, buf, sizeof(buf)), 0);
	assert_int_equal(store_output(f.s, key, 0, 1, STORE_STDERR, buf, sizeof(buf)), 0);
	struct store_attempt_end e = {.task = 0, .attempt = 1, .flags = STORE_ATTEMPT_OK,
				      .start_ms = t0, .end_ms = t0 + 5, .duration_ms = 5,
				      .out_bytes = 2000, .err_bytes = 4000, .prompt_tokens = -1,
				      .completion_tokens = -1};
	assert_int_equal(store_attempt_end(f.s, key, &e), 0);
	attempt(&f, key, 1, 1, 0, t0, 1, true);
	struct report_rundoc_opts o = {.tail_bytes = 101};
	char *warn = NULL;
	json_t *doc = doc_of(&f, key, &o, &warn);
	/* no definition recorded: said, and the document has no kinds */
	assert_non_null(warn);
	assert_non_null(strstr(warn, "no definition was recorded"));
	free(warn);
	json_t *t = task_of(doc, "talk");
	assert_null(json_object_get(t, "kind"));
	json_t *a1 = json_array_get(json_object_get(t, "attempts"), 0);
	json_t *so = json_object_get(a1, "stdout");
	const char *tail = gets(so, "tail");
	assert_int_equal(strlen(tail), 100);            /* 50 whole characters */
	for (size_t i = 0; i < 100; i += 2)
		assert_memory_equal(tail + i, "\xc3\xa9", 2);
	assert_int_equal(geti(so, "bytes"), 2000);
	assert_true(json_is_true(json_object_get(so, "truncated")));
	json_t *se = json_object_get(a1, "stderr");
	tail = gets(se, "tail");
	assert_int_equal(geti(se, "bytes"), 4000);
	assert_true(json_is_true(json_object_get(se, "truncated")));
	assert_non_null(strstr(tail, "eeee\n[dagrun: the log kept the first 3000 bytes of this "
			       "stream; the last 1000 were not kept"));
	/* an attempt that wrote nothing has no streams */
	json_t *q1 = json_array_get(json_object_get(task_of(doc, "quiet"), "attempts"), 0);
	assert_null(json_object_get(q1, "stdout"));
	assert_null(json_object_get(q1, "stderr"));
	json_decref(doc);
	/* without outputs: no file read */
	o.no_outputs = true;
	doc = doc_of(&f, key, &o, NULL);
	a1 = json_array_get(json_object_get(task_of(doc, "talk"), "attempts"), 0);
	assert_null(json_object_get(a1, "stdout"));
	json_decref(doc);
	fix_close(&f);
}

/* ---- what a document cannot hold ------------------------------------------------------ */

static void ids_alike_once_cleaned_are_told_apart(void **state)
{
	(void)state;
	struct fix f;
	fix_open(&f, 0);
	static const char *const ids[] = {"x\xff", "x\xfe", "", "x\xef\xbf\xbd#1"};
	uint64_t key = begin_def(&f, "w\xff", "not: [valid", ids, 4, 1700000000000ull);
	for (uint32_t i = 0; i < 4; i++)
		attempt(&f, key, i, 1, 0, 1700000000000ull, 1, true);
	char *warn = NULL;
	json_t *doc = doc_of(&f, key, NULL, &warn);
	assert_non_null(warn);
	assert_non_null(strstr(warn, "does not load: mix.yaml:"));
	assert_non_null(strstr(warn, "alike once made valid UTF-8"));
	free(warn);
	json_t *tasks = json_object_get(doc, "tasks");
	assert_string_equal(gets(json_array_get(tasks, 0), "id"), "x\xef\xbf\xbd");
	assert_string_equal(gets(json_array_get(tasks, 1), "id"), "x\xef\xbf\xbd#1");
	assert_string_equal(gets(json_array_get(tasks, 2), "id"), "#2");
	/* the real "x?#1" came after the one renamed to it */
	assert_string_equal(gets(json_array_get(tasks, 3), "id"), "x\xef\xbf\xbd#1#3");
	assert_string_equal(gets(json_object_get(doc, "run"), "workflow"), "w\xef\xbf\xbd");
	json_decref(doc);
	fix_close(&f);
}

static void an_interrupted_run_shows_its_running_tasks_interrupted(void **state)
{
	(void)state;
	struct fix f;
	fix_open(&f, 0);
	static const char *const ids[] = {"done", "cut"};
	uint64_t t0 = 1700000000000ull;
	/* recorded by another store object that goes away without ending the
	 * run: its lease is given up, the run reads as interrupted */
	struct store_opts o2 = {0};
	struct store *s2 = t_open(f.dir, &o2);
	struct store_run_begin b = {.run_attempt = 1, .workflow = "w", .path = "p",
				    .task_ids = ids, .n_tasks = 2, .start_ms = t0};
	uint64_t key = 0;
	char *err = NULL;
	assert_int_equal(s2->ops->begin(s2, &b, &key, NULL, &err), 0);
	struct store *keep = f.s;
	f.s = s2;
	attempt(&f, key, 0, 1, t0, t0, 10, true);
	status(&f, key, 0, STORE_TASK_COMPLETED, 0, NULL);
	struct store_attempt_start a = {.task = 1, .attempt = 1, .start_ms = t0 + 20};
	assert_int_equal(store_attempt_start(s2, key, &a), 0);
	status(&f, key, 1, STORE_TASK_RUNNING, 0, NULL);
	assert_int_equal(store_close(s2), 0);
	f.s = keep;
	json_t *doc = doc_of(&f, key, &(struct report_rundoc_opts){.now_ms = t0 + 5000}, NULL);
	assert_string_equal(gets(json_object_get(doc, "run"), "status"), "interrupted");
	json_t *cut = task_of(doc, "cut");
	assert_string_equal(gets(cut, "status"), "interrupted");
	json_t *a1 = json_array_get(json_object_get(cut, "attempts"), 0);
	assert_string_equal(gets(a1, "status"), "interrupted");
	assert_true(json_is_null(json_object_get(a1, "endMs")));
	assert_int_equal(geti(json_object_get(json_object_get(doc, "run"), "counts"),
			      "interrupted"), 1);
	assert_int_equal(geti(doc, "generatedMs"), (int64_t)t0 + 5000);
	json_decref(doc);
	fix_close(&f);
}

/* ---- history -------------------------------------------------------------------------- */

static void history_is_of_the_runs_before_only(void **state)
{
	(void)state;
	struct fix f;
	fix_open(&f, 0);
	uint64_t t0 = 1700000000000ull;
	static const uint64_t past[] = {300, 100, 200, 900};   /* p50 200, p95 900 */
	for (int k = 0; k < 4; k++) {
		uint64_t key = begin_def(&f, "mix", mixed_yaml, mixed_ids, 4, t0 + (uint64_t)k * 10000);
		attempt(&f, key, 0, 1, 0, t0 + (uint64_t)k * 10000, past[k], true);
		attempt(&f, key, 1, 1, 0, t0 + (uint64_t)k * 10000, 5, false);
	}
	/* another workflow's "a" does not count */
	uint64_t other = begin_def(&f, "other", mixed_yaml, mixed_ids, 4, t0);
	attempt(&f, other, 0, 1, 0, t0, 99999, true);
	uint64_t key = begin_def(&f, "mix", mixed_yaml, mixed_ids, 4, t0 + 50000);
	attempt(&f, key, 0, 1, 0, t0 + 50000, 5000, true);
	/* a later run does not count either */
	uint64_t later = begin_def(&f, "mix", mixed_yaml, mixed_ids, 4, t0 + 60000);
	attempt(&f, later, 0, 1, 0, t0 + 60000, 77777, true);
	json_t *doc = doc_of(&f, key, NULL, NULL);
	json_t *h = json_object_get(task_of(doc, "a"), "history");
	assert_non_null(h);
	assert_int_equal(geti(h, "runs"), 4);
	assert_int_equal(geti(h, "p50Ms"), 200);
	assert_int_equal(geti(h, "p95Ms"), 900);
	assert_int_equal(geti(h, "maxMs"), 900);
	/* b never succeeded: no history */
	assert_null(json_object_get(task_of(doc, "b"), "history"));
	json_decref(doc);
	/* the newest 2 runs before only */
	doc = doc_of(&f, key, &(struct report_rundoc_opts){.history_runs = 2}, NULL);
	h = json_object_get(task_of(doc, "a"), "history");
	assert_int_equal(geti(h, "runs"), 2);
	assert_int_equal(geti(h, "p50Ms"), 200);
	assert_int_equal(geti(h, "p95Ms"), 900);
	json_decref(doc);
	doc = doc_of(&f, key, &(struct report_rundoc_opts){.no_history = true}, NULL);
	assert_null(json_object_get(task_of(doc, "a"), "history"));
	json_decref(doc);
	fix_close(&f);
}

/* ---- a running run ------------------------------------------------------------------- */

static void a_live_run_has_running_attempts_and_the_time_made(void **state)
{
	(void)state;
	struct fix f;
	fix_open(&f, 0);
	uint64_t t0 = t_now_ms() - 1000;
	uint64_t key = begin_def(&f, "mix", mixed_yaml, mixed_ids, 4, t0);
	struct store_attempt_start a = {.task = 0, .attempt = 1, .start_ms = t0, .ready_ms = t0};
	assert_int_equal(store_attempt_start(f.s, key, &a), 0);
	status(&f, key, 0, STORE_TASK_RUNNING, 0, NULL);
	assert_int_equal(store_output(f.s, key, 0, 1, STORE_STDOUT, "half", 4), 0);
	json_t *doc = doc_of(&f, key, NULL, NULL);
	json_t *run = json_object_get(doc, "run");
	assert_string_equal(gets(run, "status"), "running");
	assert_true(json_is_null(json_object_get(run, "endMs")));
	json_t *a1 = json_array_get(json_object_get(task_of(doc, "a"), "attempts"), 0);
	assert_string_equal(gets(a1, "status"), "running");
	assert_true(json_is_null(json_object_get(a1, "endMs")));
	/* what it wrote so far */
	assert_string_equal(gets(json_object_get(a1, "stdout"), "tail"), "half");
	assert_true(geti(doc, "generatedMs") >= (int64_t)t0);
	json_decref(doc);
	assert_int_equal(f.s->ops->run_end(f.s, key, STORE_RUN_CANCELLED, t0 + 1, NULL), 0);
	fix_close(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(a_run_maps_to_its_document),
		cmocka_unit_test(tails_are_bounded_and_start_at_a_character),
		cmocka_unit_test(ids_alike_once_cleaned_are_told_apart),
		cmocka_unit_test(an_interrupted_run_shows_its_running_tasks_interrupted),
		cmocka_unit_test(history_is_of_the_runs_before_only),
		cmocka_unit_test(a_live_run_has_running_attempts_and_the_time_made),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
