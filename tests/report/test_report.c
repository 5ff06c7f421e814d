/* test_report.c: the report module (src/report/): parsing and checking run
 * documents, percentiles, the trace's slots and counters, the text Gantt,
 * the HTML's escaping and limits, the SVG graph, write errors. The
 * documents are JSON files of tests/report/; the end-to-end checks of the outputs
 * (trace schema, SVG as XML, the page in a browser) are in
 * test_report_e2e.py. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "dagrun.h"
#include "report/report.h"

/* ---- helpers ----------------------------------------------------------------- */

static json_t *fixture(const char *name)
{
	const char *src = getenv("SRCDIR");
	char path[4096];
	snprintf(path, sizeof(path), "%s/tests/report/%s", src ? src : ".", name);
	json_error_t je;
	json_t *doc = json_load_file(path, 0, &je);
	if (!doc)
		fail_msg("%s: %s", path, je.text);
	return doc;
}

static json_t *parse_text(const char *text)
{
	json_error_t je;
	json_t *doc = json_loads(text, JSON_ALLOW_NUL, &je);
	if (!doc)
		fail_msg("bad test JSON: %s: %s", je.text, text);
	return doc;
}

enum { R_HTML, R_TRACE, R_GANTT, R_SVG };

/* The output of renderer which on doc as a malloc'd string; *rc its
 * return, *err its message (caller frees both strings). */
static char *render(int which, const json_t *doc, unsigned arg, int *rc,
		    char **err)
{
	/* The buffer's pointer and size live on the heap: GCC 12 at -O3 takes
	 * locals given to open_memstream for dangling once render returns. */
	struct {
		char *s;
		size_t n;
	} *m = calloc(1, sizeof(*m));
	assert_non_null(m);
	FILE *f = open_memstream(&m->s, &m->n);
	assert_non_null(f);
	*err = NULL;
	switch (which) {
	case R_HTML: {
		struct report_html_opts o = {arg, 0};
		*rc = report_html(doc, arg ? &o : NULL, f, err);
		break;
	}
	case R_TRACE: *rc = report_trace(doc, f, err); break;
	case R_GANTT: *rc = report_gantt_text(doc, arg, f, err); break;
	default: *rc = report_graph_svg(doc, arg, f, err); break;
	}
	assert_int_equal(fclose(f), 0);
	char *s = m->s;
	free(m);
	return s;
}

static char *render_ok(int which, const json_t *doc, unsigned arg)
{
	int rc;
	char *err;
	char *s = render(which, doc, arg, &rc, &err);
	if (rc != 0)
		fail_msg("renderer %d failed: %d %s", which, rc, err ? err : "");
	free(err);
	return s;
}

static size_t count(const char *hay, const char *needle)
{
	size_t n = 0;
	for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
		n++;
	return n;
}

/* ---- parsing --------------------------------------------------------------------- */

static void parse_mixed_gives_tasks_deps_attempts_history(void **state)
{
	(void)state;
	json_t *doc = fixture("mixed.json");
	struct arena mem = ARENA_INIT;
	struct report_doc d;
	char *err = NULL;
	assert_int_equal(report_doc_parse(doc, 0, &mem, &d, &err), 0);
	assert_null(err);
	assert_int_equal(d.n_tasks, 9);
	assert_string_equal(d.workflow.s, "mixed");
	assert_int_equal(d.run_attempt, 1);
	assert_true(d.has_end);
	assert_int_equal(d.counts[REPORT_ST_COMPLETED], 6);
	assert_int_equal(d.counts[REPORT_ST_FAILED], 2);
	assert_int_equal(d.counts[REPORT_ST_SKIPPED], 1);
	assert_int_equal(d.n_attempts, 8);
	const struct report_task *build = &d.tasks[1];
	assert_string_equal(build->id.s, "build");
	assert_int_equal(build->n_att, 2);
	assert_int_equal(build->att[0].status, REPORT_ST_FAILED);
	assert_int_equal(build->att[0].exit_code, 1);
	assert_true(build->att[1].has_ready);
	assert_int_equal(build->att[1].ready_ms - build->att[0].end_ms, 1000);
	assert_true(build->has_history);
	assert_int_equal(build->p95_ms, 2500);
	assert_int_equal(build->n_deps, 1);
	assert_int_equal(build->deps[0].task, 0);
	const struct report_task *lint = &d.tasks[7];
	assert_true(lint->deps[0].non_blocking);
	assert_int_equal(lint->deps[0].task, 1);
	assert_string_equal(d.tasks[6].deps[0].condition.s,
			    "tasks.summarize.output contains 'urgent'");
	assert_string_equal(d.tasks[8].hook.s, "onExit");
	/* the span: from the first ready time to the last time in the document */
	assert_int_equal(d.t0, d.start_ms);
	assert_int_equal(d.t1, d.end_ms);   /* not generatedMs: nothing is open */
	arena_free(&mem);
	json_decref(doc);
}

static void attempt_without_end_runs_to_generated_time(void **state)
{
	(void)state;
	json_t *doc = fixture("running.json");
	struct arena mem = ARENA_INIT;
	struct report_doc d;
	assert_int_equal(report_doc_parse(doc, 0, &mem, &d, NULL), 0);
	assert_false(d.has_end);
	const struct report_attempt *a = &d.tasks[1].att[0];
	assert_false(a->has_end);
	assert_int_equal(report_attempt_end(&d, a), d.generated_ms);
	assert_int_equal(d.t1, d.generated_ms);
	arena_free(&mem);
	json_decref(doc);
}

/* A minimal valid document with `tasks` spliced in and run fields extra. */
static char *doc_text(const char *tasks, const char *counts, const char *extra)
{
	char *s = NULL;
	assert_true(asprintf(&s,
		"{\"dagrunRunDocument\": 1, \"run\": {\"id\": \"r\", \"runAttempt\": 1,"
		" \"workflow\": \"w\", \"status\": \"completed\", \"startMs\": 1000,"
		" \"endMs\": 5000, \"counts\": %s%s}, \"tasks\": %s}",
		counts, extra, tasks) > 0);
	return s;
}

#define T1 "{\"id\": \"a\", \"status\": \"completed\", \"dependencies\": [], \"attempts\": [%s]}"
#define A1 "{\"attempt\": 1, \"status\": \"completed\", \"startMs\": 1000, \"endMs\": 2000%s}"

static void invalid_documents_fail_naming_the_field(void **state)
{
	(void)state;
	char a_bad_start[256], a_bad_http[256], a_bad_tail[256], a_order[512];
	snprintf(a_bad_start, sizeof(a_bad_start), "[" T1 "]",
		 "{\"attempt\": 1, \"status\": \"completed\", \"startMs\": \"soon\"}");
	char inner[160];
	snprintf(inner, sizeof(inner), A1, ", \"http\": {\"status\": \"200\"}");
	snprintf(a_bad_http, sizeof(a_bad_http), "[" T1 "]", inner);
	snprintf(inner, sizeof(inner), A1, ", \"stdout\": {\"tail\": 3}");
	snprintf(a_bad_tail, sizeof(a_bad_tail), "[" T1 "]", inner);
	snprintf(inner, sizeof(inner), "%s", "{\"attempt\": 2, \"status\": \"failed\", \"startMs\": 1000},"
		 " {\"attempt\": 2, \"status\": \"completed\", \"startMs\": 2000}");
	snprintf(a_order, sizeof(a_order), "[" T1 "]", inner);
	const char *one = "{\"completed\": 1}";
	struct {
		const char *tasks, *counts, *extra, *want;
	} cases[] = {
		{"[{\"id\": \"a\", \"status\": \"completed\", \"dependencies\": [], \"attempts\": []},"
		 " {\"id\": \"a\", \"status\": \"completed\", \"dependencies\": [], \"attempts\": []}]",
		 "{\"completed\": 2}", "", "tasks[1].id: duplicate task id"},
		{"[{\"id\": \"a\", \"status\": \"completed\", \"attempts\": [],"
		 " \"dependencies\": [{\"taskId\": \"nope\"}]}]", one, "",
		 "tasks[0].dependencies[0].taskId: no task has this id"},
		{"[{\"id\": \"a\", \"status\": \"completed\", \"attempts\": [],"
		 " \"dependencies\": [{\"taskId\": \"a\", \"type\": \"soft\"}]}]", one, "",
		 "tasks[0].dependencies[0].type: expected \"blocking\" or \"non-blocking\""},
		{a_bad_start, one, "", "tasks[0].attempts[0].startMs: expected an integer"},
		{a_bad_http, one, "", "tasks[0].attempts[0].http.status: expected an integer"},
		{a_bad_tail, one, "", "tasks[0].attempts[0].stdout.tail: expected a string"},
		{a_order, one, "", "tasks[0].attempts[1].attempt: attempt numbers must increase"},
		{"[{\"id\": \"\", \"status\": \"completed\", \"dependencies\": [], \"attempts\": []}]",
		 one, "", "tasks[0].id: expected a non-empty string without NUL"},
		{"[{\"id\": \"a\\u0000b\", \"status\": \"completed\", \"dependencies\": [], \"attempts\": []}]",
		 one, "", "tasks[0].id: expected a non-empty string without NUL"},
		{"[{\"id\": \"a\", \"status\": \"completed\", \"attempts\": []}]", one, "",
		 "tasks[0].dependencies: missing"},
		{"[{\"id\": \"a\", \"status\": \"failed\", \"dependencies\": [], \"attempts\": []}]",
		 one, "", "run.counts.completed: does not match the tasks' statuses"},
		{"[{\"id\": \"a\", \"status\": \"completed\", \"dependencies\": [], \"attempts\": []}]",
		 "{}", "", "run.counts: does not count every task"},
		{"[]", "{}", ", \"endMs\": -5", "run.endMs: expected a time in ms since the epoch"},
		{"[]", "{}", ", \"runAttempt\": 0", "run.runAttempt: integer out of range"},
		{"{}", "{}", "", "tasks: expected an array"},
		{"[{\"id\": \"a\", \"status\": \"completed\", \"dependencies\": [], \"attempts\": [],"
		 " \"history\": {\"runs\": 3, \"p50Ms\": 1}}]", one, "",
		 "tasks[0].history.p95Ms: missing"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		/* a duplicated key: the later one wins in jansson, so "extra"
		 * replaces the defaults above */
		char *text = doc_text(cases[i].tasks, cases[i].counts, cases[i].extra);
		json_t *doc = parse_text(text);
		struct arena mem = ARENA_INIT;
		struct report_doc d;
		char *err = NULL;
		int rc = report_doc_parse(doc, 0, &mem, &d, &err);
		if (rc != -EINVAL || !err || !strstr(err, cases[i].want))
			fail_msg("case %zu: rc %d, message '%s', wanted '%s'", i, rc,
				 err ? err : "(none)", cases[i].want);
		free(err);
		arena_free(&mem);
		json_decref(doc);
		free(text);
	}
}

static void other_versions_and_non_documents_are_refused(void **state)
{
	(void)state;
	const char *texts[] = {
		"{\"dagrunRunDocument\": 2, \"run\": {}, \"tasks\": []}",
		"{\"run\": {}, \"tasks\": []}",
		"[1, 2]",
	};
	const char *want[] = {"unsupported version", "not a dagrun run document",
			      "expected a JSON object"};
	for (size_t i = 0; i < 3; i++) {
		json_t *doc = parse_text(texts[i]);
		int rc;
		char *err;
		char *out = render(R_HTML, doc, 0, &rc, &err);
		assert_int_equal(rc, -EINVAL);
		assert_non_null(strstr(err, want[i]));
		assert_string_equal(out, "");   /* nothing written */
		free(out);
		free(err);
		json_decref(doc);
	}
}

static void graph_document_needs_no_run_or_attempts(void **state)
{
	(void)state;
	json_t *doc = parse_text("{\"name\": \"g\", \"tasks\": ["
		"{\"id\": \"a\", \"kind\": \"command\", \"dependencies\": []},"
		"{\"id\": \"b\", \"kind\": \"ai\", \"hook\": \"onFailure\","
		" \"dependencies\": [{\"taskId\": \"a\", \"type\": \"non-blocking\", \"condition\": null}]}]}");
	struct arena mem = ARENA_INIT;
	struct report_doc d;
	assert_int_equal(report_doc_parse(doc, REPORT_PARSE_GRAPH, &mem, &d, NULL), 0);
	assert_int_equal(d.n_tasks, 2);
	assert_int_equal(d.n_edges, 1);
	assert_string_equal(d.workflow.s, "g");
	assert_int_equal(report_doc_parse(doc, 0, &mem, &d, NULL), -EINVAL);
	arena_free(&mem);
	json_decref(doc);
}

/* ---- percentiles ---------------------------------------------------------------- */

static void percentiles_are_nearest_rank(void **state)
{
	(void)state;
	uint64_t v[20], out;
	for (int i = 0; i < 20; i++)
		v[i] = (uint64_t)(20 - i) * 10;   /* 200, 190, ..., 10 */
	report_sort_u64(v, 20);
	assert_int_equal(v[0], 10);
	struct { double p; uint64_t want; } cases[] = {
		{0, 10}, {5, 10}, {5.1, 20}, {50, 100}, {50.1, 110}, {90, 180},
		{95, 190}, {95.01, 200}, {100, 200},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		assert_int_equal(report_percentile(v, 20, cases[i].p, &out), 0);
		if (out != cases[i].want)
			fail_msg("p%g: %llu, wanted %llu", cases[i].p,
				 (unsigned long long)out, (unsigned long long)cases[i].want);
	}
	uint64_t one = 7;
	assert_int_equal(report_percentile(&one, 1, 50, &out), 0);
	assert_int_equal(out, 7);
	/* rank ceil(99.9 * 1000 / 100) = 999, not 1000 from a rounding error */
	uint64_t *big = malloc(1000 * sizeof(*big));
	for (int i = 0; i < 1000; i++)
		big[i] = (uint64_t)i + 1;
	assert_int_equal(report_percentile(big, 1000, 99.9, &out), 0);
	assert_int_equal(out, 999);
	assert_int_equal(report_percentile(big, 1000, 50, &out), 0);
	assert_int_equal(out, 500);   /* the lower middle of an even count */
	free(big);
	assert_int_equal(report_percentile(v, 0, 50, &out), -EINVAL);
	assert_int_equal(report_percentile(v, 20, -1, &out), -EINVAL);
	assert_int_equal(report_percentile(v, 20, 100.5, &out), -EINVAL);
	assert_int_equal(report_percentile(v, 20, NAN, &out), -EINVAL);
}

/* ---- trace ------------------------------------------------------------------------ */

/* a, b, c overlap (slots 1, 2, 3); d starts as b ends (b's slot); c's
 * retry takes the lowest slot free then. The counter starts at 1 (a starts
 * with the trace: one value per time, never 0 then 1 at ts 0). */
static void trace_assigns_lowest_free_slot_and_counts_running(void **state)
{
	(void)state;
	json_t *doc = parse_text(
		"{\"dagrunRunDocument\": 1, \"run\": {\"id\": \"r\", \"runAttempt\": 1,"
		" \"workflow\": \"w\", \"status\": \"completed\", \"startMs\": 1000, \"endMs\": 9000,"
		" \"counts\": {\"completed\": 4}}, \"tasks\": ["
		"{\"id\": \"a\", \"status\": \"completed\", \"dependencies\": [], \"attempts\": ["
		"  {\"attempt\": 1, \"status\": \"completed\", \"startMs\": 1000, \"endMs\": 4000}]},"
		"{\"id\": \"b\", \"status\": \"completed\", \"dependencies\": [], \"attempts\": ["
		"  {\"attempt\": 1, \"status\": \"completed\", \"startMs\": 1500, \"endMs\": 2000}]},"
		"{\"id\": \"c\", \"status\": \"completed\", \"dependencies\": [], \"attempts\": ["
		"  {\"attempt\": 1, \"status\": \"failed\", \"readyMs\": 1000, \"startMs\": 1800, \"endMs\": 3000,"
		"   \"exitCode\": 1, \"errorClass\": \"transient\"},"
		"  {\"attempt\": 2, \"status\": \"completed\", \"readyMs\": 3500, \"startMs\": 3600, \"endMs\": 3700}]},"
		"{\"id\": \"d\", \"status\": \"completed\", \"dependencies\": [], \"attempts\": ["
		"  {\"attempt\": 1, \"status\": \"completed\", \"startMs\": 2000, \"endMs\": 2500}]}]}");
	char *s = render_ok(R_TRACE, doc, 0);
	json_error_t je;
	json_t *t = json_loads(s, 0, &je);
	if (!t)
		fail_msg("trace is not JSON: %s", je.text);
	json_t *ev = json_object_get(t, "traceEvents");
	size_t i;
	json_t *e;
	/* slot of each attempt, by name and attempt */
	int slot_a = 0, slot_b = 0, slot_c1 = 0, slot_c2 = 0, slot_d = 0, waits = 0;
	json_array_foreach(ev, i, e) {
		const char *ph = json_string_value(json_object_get(e, "ph"));
		const char *name = json_string_value(json_object_get(e, "name"));
		int tid = (int)json_integer_value(json_object_get(e, "tid"));
		if (!strcmp(ph, "X") && json_integer_value(json_object_get(e, "pid")) == 1) {
			int att = (int)json_integer_value(json_object_get(json_object_get(e, "args"), "attempt"));
			if (!strcmp(name, "a")) slot_a = tid;
			if (!strcmp(name, "b")) slot_b = tid;
			if (!strcmp(name, "c") && att == 1) slot_c1 = tid;
			if (!strcmp(name, "c") && att == 2) {
				slot_c2 = tid;
				assert_int_equal(json_integer_value(json_object_get(e, "ts")), 2600000);
				assert_int_equal(json_integer_value(json_object_get(e, "dur")), 100000);
			}
			if (!strcmp(name, "d")) slot_d = tid;
		}
		if (!strcmp(ph, "X") && json_integer_value(json_object_get(e, "pid")) == 2) {
			waits++;
			if (!strcmp(name, "retry: c")) {
				assert_int_equal(json_integer_value(json_object_get(e, "ts")), 2000000);
				assert_int_equal(json_integer_value(json_object_get(e, "dur")), 500000);
			} else {
				assert_string_equal(json_string_value(json_object_get(e, "cat")),
						    "ready-wait");
				assert_string_equal(name, "ready: c");
			}
		}
	}
	assert_int_equal(slot_a, 1);
	assert_int_equal(slot_b, 2);
	assert_int_equal(slot_c1, 3);
	assert_int_equal(slot_d, 2);    /* b's slot, free at 2000 */
	assert_int_equal(slot_c2, 2);   /* the lowest free at 3600: 2 (1 busy) */
	assert_int_equal(waits, 3);     /* c's ready-waits (800, 100 ms), its retry */
	/* the counter, in time order */
	json_int_t want[][2] = {{0, 1}, {500, 2}, {800, 3}, {1000, 3},
				{1500, 2}, {2000, 1}, {2600, 2}, {2700, 1}, {3000, 0}};
	size_t k = 0;
	json_array_foreach(ev, i, e) {
		if (strcmp(json_string_value(json_object_get(e, "ph")), "C") ||
		    strcmp(json_string_value(json_object_get(e, "name")), "running tasks"))
			continue;
		assert_true(k < sizeof(want) / sizeof(*want));
		assert_int_equal(json_integer_value(json_object_get(e, "ts")), want[k][0] * 1000);
		assert_int_equal(json_integer_value(json_object_get(json_object_get(e, "args"),
								"running")), want[k][1]);
		k++;
	}
	assert_int_equal(k, sizeof(want) / sizeof(*want));
	json_decref(t);
	free(s);
	json_decref(doc);
}

/* ---- the text Gantt ------------------------------------------------------------------ */

static void gantt_text_matches_expected_lines(void **state)
{
	(void)state;
	json_t *doc = parse_text(
		"{\"dagrunRunDocument\": 1, \"run\": {\"id\": \"r1\", \"runAttempt\": 2,"
		" \"workflow\": \"w\", \"status\": \"failed\", \"startMs\": 0, \"endMs\": 10000,"
		" \"counts\": {\"completed\": 1, \"failed\": 1, \"skipped\": 1}}, \"tasks\": ["
		"{\"id\": \"late\", \"status\": \"failed\", \"dependencies\": [], \"attempts\": ["
		"  {\"attempt\": 1, \"status\": \"failed\", \"readyMs\": 0, \"startMs\": 2000, \"endMs\": 4000},"
		"  {\"attempt\": 2, \"status\": \"failed\", \"readyMs\": 6000, \"startMs\": 6000, \"endMs\": 10000}]},"
		"{\"id\": \"early\", \"status\": \"completed\", \"dependencies\": [], \"attempts\": ["
		"  {\"attempt\": 1, \"status\": \"completed\", \"startMs\": 0, \"endMs\": 5000}]},"
		"{\"id\": \"never\", \"status\": \"skipped\", \"dependencies\": [], \"attempts\": []}]}");
	char *s = render_ok(R_GANTT, doc, 60);
	char *lines[16];
	int n = 0;
	for (char *p = s, *nl; n < 16 && (nl = strchr(p, '\n')); p = nl + 1) {
		*nl = '\0';
		lines[n++] = p;
	}
	assert_true(n >= 6);
	/* 60 columns: id 5 (the longest id), " |", a bar of 60 - 5 - 4 - 20 = 31
	 * columns (10 s: 0.32 s a column), "| ", status 11, " ", duration;
	 * the header cut at 60 columns with an ellipsis */
	assert_string_equal(lines[0],
		"run r1 (attempt 2) of w: failed in 10.0s, 3 tasks: 1 comple\xe2\x80\xa6");
	assert_string_equal(lines[1], "task  |0s                        10.0s| status      duration");
	assert_string_equal(lines[2], "early |================               | completed   5.0s");
	assert_string_equal(lines[3], "late  |......xxxxxxx-----xxxxxxxxxxxxx| failed      8.0s");
	assert_string_equal(lines[4], "never |                               | skipped     ");
	assert_string_equal(lines[5], "'.' waited while ready  '-' retry wait  '=' completed");
	for (int i = 0; i < n; i++) {
		size_t cols = 0;
		for (const char *p = lines[i]; *p; p++)
			cols += ((unsigned char)*p & 0xc0) != 0x80;
		if (cols > 60)
			fail_msg("line %d is %zu columns: %s", i, cols, lines[i]);
	}
	free(s);
	json_decref(doc);
}

static void gantt_escapes_control_characters_in_ids(void **state)
{
	(void)state;
	json_t *doc = fixture("inject.json");
	char *s = render_ok(R_GANTT, doc, 120);
	assert_null(strchr(s, '\x1b'));
	assert_null(strchr(s, '\x01'));
	assert_null(strchr(s, '\x7f'));
	assert_non_null(strstr(s, "ctl\\x01\\x1b[31mred"));
	free(s);
	json_decref(doc);
}

/* ---- HTML ---------------------------------------------------------------------------- */

static void html_data_cannot_end_its_script_element(void **state)
{
	(void)state;
	json_t *doc = fixture("inject.json");
	char *s = render_ok(R_HTML, doc, 0);
	/* the data block and the app script close; nothing else does */
	assert_int_equal(count(s, "</script"), 2);
	const char *data = strstr(s, "<script type=\"application/json\" id=\"dagrun-data\">");
	assert_non_null(data);
	const char *end = strstr(data, "</script>");
	size_t tag = strlen("<script type=\"application/json\" id=\"dagrun-data\">");
	char *block = strndup(data + tag, (size_t)(end - data) - tag);
	assert_null(strchr(block, '<'));
	assert_null(strchr(block, '>'));
	assert_null(strchr(block, '&'));
	assert_null(strstr(block, "\xe2\x80\xa8"));   /* U+2028 */
	assert_null(strstr(block, "\xe2\x80\xa9"));
	assert_non_null(strstr(block, "\\u2028"));
	/* the data is the document, unchanged */
	json_error_t je;
	json_t *back = json_loads(block, 0, &je);
	assert_non_null(back);
	assert_true(json_equal(back, doc));
	json_decref(back);
	free(block);
	/* the title is text */
	assert_non_null(strstr(s, "<title>dagrun: &lt;script&gt;document.title=&#39;PWNED&#39;"
			       "&lt;/script&gt; run "));
	/* nothing fetched: a CSP, and no URL-bearing attribute outside the
	 * data (where the injected text is, escaped) */
	assert_non_null(strstr(s, "content=\"default-src 'none'; script-src 'sha256-"));
	char *frame = strndup(s, (size_t)(data - s));
	assert_null(strstr(frame, " src="));
	assert_null(strstr(frame, " href="));
	assert_null(strstr(frame, "//"));
	free(frame);
	assert_null(strstr(end, " src="));
	assert_null(strstr(end, "//"));
	free(s);
	json_decref(doc);
}

static void html_large_graph_is_replaced_by_a_notice(void **state)
{
	(void)state;
	json_t *doc = fixture("mixed.json");
	char *s = render_ok(R_HTML, doc, 3);   /* graph_max_nodes = 3 */
	assert_non_null(strstr(s, "id=\"graph-omitted\""));
	assert_non_null(strstr(s, "this run has 9 tasks"));
	assert_null(strstr(s, "<svg"));
	free(s);
	s = render_ok(R_HTML, doc, 0);
	assert_null(strstr(s, "graph-omitted"));
	assert_int_equal(count(s, "<svg"), 1);
	assert_null(strstr(s, "xmlns"));
	assert_null(strstr(s, "<?xml"));
	assert_non_null(strstr(s, "class=\"node st&#45;failed\""));
	free(s);
	json_decref(doc);
}

static void write_errors_are_returned(void **state)
{
	(void)state;
	json_t *doc = fixture("mixed.json");
	FILE *full = fopen("/dev/full", "w");
	if (!full)
		skip();
	setvbuf(full, NULL, _IONBF, 0);
	char *err = NULL;
	assert_int_equal(report_html(doc, NULL, full, &err), -ENOSPC);
	assert_non_null(strstr(err, "writing the report"));
	free(err);
	err = NULL;
	assert_int_equal(report_trace(doc, full, &err), -ENOSPC);
	free(err);
	err = NULL;
	assert_int_equal(report_gantt_text(doc, 80, full, &err), -ENOSPC);
	free(err);
	err = NULL;
	assert_int_equal(report_graph_svg(doc, REPORT_SVG_STATUS, full, &err), -ENOSPC);
	free(err);
	fclose(full);
	json_decref(doc);
}

/* ---- SVG -------------------------------------------------------------------------------- */

/* Runs fn with standard error sent to a file; returns what was written. */
static char *stderr_of(void (*fn)(void *), void *arg)
{
	char path[] = "/tmp/report-stderr-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	fflush(stderr);
	int saved = dup(2);
	dup2(fd, 2);
	fn(arg);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	char *buf = calloc(1, 4096);
	assert_true(pread(fd, buf, 4095, 0) >= 0);
	close(fd);
	unlink(path);
	return buf;
}

static void svg_of_inject(void *arg)
{
	char *s = render_ok(R_SVG, arg, REPORT_SVG_STATUS);
	/* each id exactly as text (XML-escaped by Graphviz) */
	assert_non_null(strstr(s, "&lt;script&gt;document.title=&#39;PWNED&#39;&lt;/script&gt;"));
	assert_non_null(strstr(s, "a&amp;lt;b&amp;amp;c"));
	assert_non_null(strstr(s, "back\\slash&quot;quote&#39;apos"));
	assert_null(strchr(s, '\x1b'));
	assert_null(strstr(s, "<script"));
	free(s);
}

static void svg_escapes_ids_and_prints_nothing(void **state)
{
	(void)state;
	json_t *doc = fixture("inject.json");
	char *err = stderr_of(svg_of_inject, doc);
	assert_string_equal(err, "");
	free(err);
	json_decref(doc);
}

/* "a\x01" and "a\x02" both read "a\ufffd" in the SVG: still two nodes. */
static void svg_keeps_ids_that_clean_alike_apart(void **state)
{
	(void)state;
	json_t *doc = parse_text("{\"name\": \"g\", \"tasks\": ["
		"{\"id\": \"a\\u0001\", \"dependencies\": []},"
		"{\"id\": \"a\\u0002\", \"dependencies\": [{\"taskId\": \"a\\u0001\"}]}]}");
	char *s = render_ok(R_SVG, doc, 0);
	assert_int_equal(count(s, "class=\"node "), 2);
	assert_int_equal(count(s, "class=\"edge\""), 1);
	assert_non_null(strstr(s, "<title>a\xef\xbf\xbd</title>"));
	assert_non_null(strstr(s, "<title>a\xef\xbf\xbd [task 1]</title>"));
	free(s);
	json_decref(doc);
}

static void svg_over_the_limit_is_refused(void **state)
{
	(void)state;
	json_t *doc = fixture("mixed.json");
	struct arena mem = ARENA_INIT;
	struct report_doc d;
	assert_int_equal(report_doc_parse(doc, 0, &mem, &d, NULL), 0);
	char *err = NULL;
	FILE *f = fopen("/dev/null", "w");
	assert_int_equal(report_graph_svg_doc(&d, 0, 8, 100, f, &err), -E2BIG);
	assert_non_null(strstr(err, "9 tasks"));
	free(err);
	err = NULL;
	assert_int_equal(report_graph_svg_doc(&d, 0, 100, 3, f, &err), -E2BIG);
	free(err);
	assert_int_equal(report_graph_svg_doc(&d, 0, 9, 8, f, NULL), 0);
	fclose(f);
	arena_free(&mem);
	json_decref(doc);
}

static void public_graph_write_draws_svg(void **state)
{
	(void)state;
	static const char wf_text[] =
		"name: pub\n"
		"tasks:\n"
		"  - {id: one, command: 'true'}\n"
		"  - {id: two, command: 'true', dependencies: [one]}\n"
		"  - {id: three, command: 'true', dependencies: [{taskId: two, type: non-blocking}]}\n";
	dagrun_diags *diags = dagrun_diags_new(10);
	dagrun_workflow *wf = NULL;
	assert_int_equal(dagrun_workflow_load_buffer("pub.yaml", wf_text, sizeof(wf_text) - 1,
						     &wf, diags), 0);
	char *s = NULL;
	size_t n = 0;
	FILE *f = open_memstream(&s, &n);
	assert_int_equal(dagrun_graph_write(wf, DAGRUN_GRAPH_SVG, f), 0);
	fclose(f);
	assert_non_null(strstr(s, "<svg"));
	assert_non_null(strstr(s, "<title>pub</title>"));
	assert_non_null(strstr(s, ">three</text>"));
	assert_non_null(strstr(s, "stroke-dasharray"));   /* the non-blocking edge */
	free(s);
	dagrun_workflow_free(wf);
	dagrun_diags_free(diags);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(parse_mixed_gives_tasks_deps_attempts_history),
		cmocka_unit_test(attempt_without_end_runs_to_generated_time),
		cmocka_unit_test(invalid_documents_fail_naming_the_field),
		cmocka_unit_test(other_versions_and_non_documents_are_refused),
		cmocka_unit_test(graph_document_needs_no_run_or_attempts),
		cmocka_unit_test(percentiles_are_nearest_rank),
		cmocka_unit_test(trace_assigns_lowest_free_slot_and_counts_running),
		cmocka_unit_test(gantt_text_matches_expected_lines),
		cmocka_unit_test(gantt_escapes_control_characters_in_ids),
		cmocka_unit_test(html_data_cannot_end_its_script_element),
		cmocka_unit_test(html_large_graph_is_replaced_by_a_notice),
		cmocka_unit_test(write_errors_are_returned),
		cmocka_unit_test(svg_escapes_ids_and_prints_nothing),
		cmocka_unit_test(svg_keeps_ids_that_clean_alike_apart),
		cmocka_unit_test(svg_over_the_limit_is_refused),
		cmocka_unit_test(public_graph_write_draws_svg),
	};
	return cmocka_run_group_tests_name("report", tests, NULL, NULL);
}
