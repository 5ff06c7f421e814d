/* test_expr.c: the Lua sandbox: conversions, scope, helpers, errors and
 * hints, and the escape corpus (removed libraries, writes, memory bombs,
 * runaway loops and patterns, deep recursion), each followed by a check
 * that the engine still works. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "dagrun.h"
#include "expr/expr.h"
#include "expr/redact.h"
#include "model/model.h"

struct fx {
	struct expr_engine *e;
	struct redactor *red;
	struct expr_scope sc;
	struct buf out;
	struct expr_error err;
	int rc;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	assert_int_equal(redact_new(&f->red), 0);
	struct expr_opts o = {.redactor = f->red};
	assert_int_equal(expr_new(&f->e, &o), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	expr_free(f->e);
	redact_free(f->red);
	buf_free(&f->out);
	free(f);
	return 0;
}

/* Compiles and evaluates src as text; returns the text (in f->out) or NULL
 * with f->rc/f->err set. */
static const char *run_in(struct fx *f, const struct expr_scope *sc,
			  const char *src)
{
	int id;
	buf_reset(&f->out);
	memset(&f->err, 0, sizeof(f->err));
	f->rc = expr_compile(f->e, src, strlen(src), &id, &f->err);
	if (f->rc < 0)
		return NULL;
	f->rc = expr_eval_text(f->e, id, sc, &f->out, &f->err);
	if (f->rc < 0)
		return NULL;
	return f->out.data ? f->out.data : "";
}

static const char *run(struct fx *f, const char *src)
{
	return run_in(f, &f->sc, src);
}

static void expect_text(struct fx *f, const char *src, const char *want)
{
	const char *got = run(f, src);
	if (!got)
		fail_msg("%s: error %d: %s", src, f->rc, f->err.msg);
	if (strcmp(got, want))
		fail_msg("%s: got [%s], want [%s]", src, got, want);
}

static void expect_error(struct fx *f, const char *src, int code,
			 const char *fragment)
{
	const char *got = run(f, src);
	if (got)
		fail_msg("%s: no error, got [%s]", src, got);
	if (f->rc != code)
		fail_msg("%s: error %d (%s), want %d", src, f->rc, f->err.msg, code);
	if (fragment && !strstr(f->err.msg, fragment))
		fail_msg("%s: message [%s] lacks [%s]", src, f->err.msg, fragment);
}

/* The engine still evaluates ordinary expressions. */
static void still_works(struct fx *f)
{
	expect_text(f, "1 + 1", "2");
	expect_text(f, "('abc'):upper() .. string.rep('-', 3)", "ABC---");
	expect_text(f, "json({1, 'a', true})", "[1,\"a\",true]");
}

static bool eval_bool(struct fx *f, const struct expr_scope *sc,
		      const char *src)
{
	int id;
	bool v = false;
	f->rc = expr_compile(f->e, src, strlen(src), &id, &f->err);
	if (f->rc < 0)
		fail_msg("%s: %s", src, f->err.msg);
	f->rc = expr_eval_bool(f->e, id, sc, &v, &f->err);
	if (f->rc < 0)
		fail_msg("%s: %s", src, f->err.msg);
	return v;
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- conversions --------------------------------------------------------- */

static void values_become_text_as_the_spec_says(void **state)
{
	struct fx *f = *state;
	expect_text(f, "42", "42");
	expect_text(f, "42.0", "42");
	expect_text(f, "84 / 2", "42");
	expect_text(f, "1.5", "1.5");
	expect_text(f, "0.1", "0.1");
	expect_text(f, "1/3", "0.3333333333333333");
	expect_text(f, "-0.0", "0");
	expect_text(f, "2^53", "9007199254740992");
	expect_text(f, "1e300", "1e+300");
	expect_text(f, "math.huge", "inf");
	expect_text(f, "-7", "-7");
	expect_text(f, "true", "true");
	expect_text(f, "false", "false");
	expect_text(f, "nil", "");
	expect_text(f, "'as is'", "as is");
	expect_text(f, "'a\\0b' == 'a\\0b'", "true");
	expect_text(f, "{1, 2, 3}", "[1,2,3]");
	expect_text(f, "{b = 1, a = {c = true, d = 'x'}}",
		    "{\"a\":{\"c\":true,\"d\":\"x\"},\"b\":1}");
	expect_text(f, "{}", "{}");
	expect_text(f, "fromjson('[]')", "[]");
	expect_text(f, "{1, 2, x = 1.5}", "{\"1\":1,\"2\":2,\"x\":1.5}");
	expect_text(f, "{[1] = 'a', [3] = 'c'}", "{\"1\":\"a\",\"3\":\"c\"}");
	expect_text(f, "{'q\"\\\\\\n\\1'}", "[\"q\\\"\\\\\\n\\u0001\"]");
	expect_text(f, "{{{}}}", "[[{}]]");
	expect_error(f, "(function() local t = {} t.t = t return t end)()",
		     -EINVAL, "contains itself");
	expect_error(f, "print", -EINVAL, "unknown name 'print'");
	expect_error(f, "string.upper", -EINVAL, "cannot convert a function");
	expect_error(f, "{[true] = 1}", -EINVAL, "boolean keys");
	still_works(f);
	/* a text result is capped at EXPR_MAX_TEXT (16 MiB) */
	struct fx big = *f;
	/* sizes, not time, are under test: a loaded machine or a sanitizer
	 * build may take more than the default 500 ms to build 17 MiB */
	struct expr_opts o = {.eval_memory = 128 << 20, .time_ms = 60000,
			      .instructions = 1000000000};
	assert_int_equal(expr_new(&big.e, &o), 0);
	big.out = (struct buf)BUF_INIT;
	expect_error(&big, "('x'):rep(17 * 2^20)", -E2BIG, "result too large");
	expect_error(&big, "#json(('x'):rep(17 * 2^20))", -E2BIG, "result too large");
	expect_text(&big, "#('x'):rep(15 * 2^20)", "15728640");
	expr_free(big.e);
	buf_free(&big.out);
}

static void truthiness_is_lua_truthiness(void **state)
{
	struct fx *f = *state;
	assert_false(eval_bool(f, NULL, "nil"));
	assert_false(eval_bool(f, NULL, "false"));
	assert_true(eval_bool(f, NULL, "0"));
	assert_true(eval_bool(f, NULL, "''"));
	assert_true(eval_bool(f, NULL, "{}"));
	assert_true(eval_bool(f, NULL, "1 < 2 and 'x' ~= 'y'"));
}

/* ---- scope --------------------------------------------------------------- */

static const struct expr_result *lookup(void *ud, const char *id)
{
	struct expr_result *r = ud;
	int *calls = (int *)r[3].output;   /* test bookkeeping */
	(*calls)++;
	if (!strcmp(id, "build"))
		return &r[0];
	if (!strcmp(id, "my-task"))
		return &r[1];
	if (!strcmp(id, "fetch"))
		return &r[2];
	return NULL;
}

static void tasks_are_read_lazily_by_id(void **state)
{
	struct fx *f = *state;
	struct expr_result r[4];
	int calls = 0;
	for (int i = 0; i < 4; i++)
		expr_result_init(&r[i]);
	r[3].output = (const char *)&calls;
	r[0].status = DAGRUN_COMPLETED;
	r[0].exit_code = 0;
	r[0].output = "{\"n\": 3, \"items\": [\"a\", null, \"c\"], \"o\": null}\n";
	r[0].output_len = strlen(r[0].output);
	r[0].attempts = 2;
	r[0].duration_ms = 1234;
	struct expr_kv outs[] = {{"version", "1.4.0", 5}, {"multi", "a\nb", 3}};
	r[0].outputs = outs;
	r[0].n_outputs = 2;
	r[1].status = DAGRUN_FAILED;
	r[1].exit_code = 2;
	r[1].output = "plain text\r\n";
	r[1].output_len = strlen(r[1].output);
	r[1].error_class = "permanent";
	r[1].error_message = "exit code 2";
	struct expr_kv hdr[] = {{"Content-Type", "application/json", 16}};
	r[2].status = DAGRUN_COMPLETED;
	r[2].http_status = 201;
	r[2].headers = hdr;
	r[2].n_headers = 1;
	r[2].prompt_tokens = 10;
	r[2].completion_tokens = 20;
	r[2].output_truncated = true;
	json_t *j = json_pack("{s:i, s:[i, i], s:s}", "count", 7, "list", 1, 2,
			      "s", "x");
	r[2].json = j;
	struct expr_scope sc = {.lookup = lookup, .lookup_ud = r};

	expect_text(f, "1", "1");
	struct expr_scope *s = &sc;
#define T(src, want) do { const char *g = run_in(f, s, src); \
	if (!g) fail_msg("%s: %s", src, f->err.msg); \
	if (strcmp(g, want)) fail_msg("%s: [%s] != [%s]", src, g, want); } while (0)
	T("tasks.build.status", "completed");
	T("tasks.build.exitCode == 0", "true");
	T("tasks.build.json.n + 1", "4");
	T("tasks.build.json.items[3]", "c");
	T("tasks.build.json.items[2] == nil", "true");
	T("tasks.build.json.o == nil", "true");
	T("tasks.build.outputs.version", "1.4.0");
	T("tasks.build.outputs.multi", "a\nb");
	T("tasks.build.attempts .. '/' .. tasks.build.durationMs", "2/1234");
	T("tasks.build.output", "{\"n\": 3, \"items\": [\"a\", null, \"c\"], \"o\": null}");
	T("tasks['my-task'].output", "plain text");
	T("tasks[\"my-task\"].exitCode", "2");
	T("tasks['my-task'].json == nil", "true");
	T("tasks['my-task'].error.class .. ': ' .. tasks['my-task'].error.message",
	  "permanent: exit code 2");
	T("tasks.build.error.class == nil", "true");
	T("tasks.fetch.http.status", "201");
	T("tasks.fetch.http.headers['content-type']", "application/json");
	T("tasks.fetch.usage.promptTokens + tasks.fetch.usage.completionTokens", "30");
	T("tasks.fetch.json.list", "[1,2]");
	T("tasks.fetch.json", "{\"count\":7,\"list\":[1,2],\"s\":\"x\"}");
	T("tasks.fetch.exitCode == nil", "true");
	T("tasks.build.outputTruncated", "false");
	T("tasks.fetch.outputTruncated", "true");
	T("tasks.nope == nil", "true");
	T("json(tasks['my-task'].outputs)", "{}");
	calls = 0;
	T("rawequal(tasks.build, tasks.build) and rawequal(tasks.build.json, "
	  "tasks.build.json)", "true");
	assert_int_equal(calls, 1);
	T("(function() local n = 0 for k in pairs(tasks.build) do n = n + 1 end "
	  "return n end)()", "11");
	/* a whole result converts to JSON */
	const char *g = run_in(f, s, "tasks['my-task']");
	assert_non_null(g);
	assert_non_null(strstr(g, "\"status\":\"failed\""));
	assert_non_null(strstr(g, "\"exitCode\":2"));
	/* a mutation does not outlive its evaluation */
	T("(function() tasks.build.json.n = 99 return tasks.build.json.n end)()", "99");
	T("tasks.build.json.n", "3");
	/* results are not cached across evaluations */
	r[0].status = DAGRUN_FAILED;
	T("tasks.build.status", "failed");
#undef T
	f->rc = 0;
	const char *bad = run_in(f, s, "tasks.build.exitcode");
	assert_null(bad);
	assert_non_null(strstr(f->err.msg, "no field 'exitcode'"));
	json_decref(j);
	still_works(f);
}

static void conditions_see_the_dependency_fields(void **state)
{
	struct fx *f = *state;
	struct expr_result r;
	expr_result_init(&r);
	r.status = DAGRUN_FAILED;
	r.exit_code = 3;
	r.output = "{\"ok\": false, \"n\": 3}";
	r.output_len = strlen(r.output);
	r.error_class = "transient";
	struct expr_scope sc = {.self = &r};
	assert_true(eval_bool(f, &sc, "status == \"failed\""));
	assert_false(eval_bool(f, &sc, "status == \"completed\""));
	assert_true(eval_bool(f, &sc, "exitCode ~= 0 and exitCode == 3"));
	assert_true(eval_bool(f, &sc, "json.n == 3 and json.ok == false"));
	assert_true(eval_bool(f, &sc, "error.class == 'transient'"));
	assert_true(eval_bool(f, &sc, "contains(output, '\"ok\"')"));
	assert_true(eval_bool(f, &sc, "tojson(json) == '{\"n\":3,\"ok\":false}'"));
	assert_true(eval_bool(f, &sc, "attempts == 0 and usage.promptTokens == nil"));
	/* outside a condition the fields are not names */
	expect_error(f, "status == 'failed'", -EINVAL,
		     "only available in a dependency's condition");
	expect_error(f, "stauts", -EINVAL, "unknown name 'stauts'");
	/* and in a condition, error/json are the fields, not the builtins */
	int id;
	assert_int_equal(expr_compile(f->e, "error('x')", 10, &id, &f->err), 0);
	bool v;
	assert_int_equal(expr_eval_bool(f->e, id, &sc, &v, &f->err), -EINVAL);
	assert_non_null(strstr(f->err.msg, "call"));
	still_works(f);
}

static void variables_env_run_and_context_resolve(void **state)
{
	struct fx *f = *state;
	struct dr_value items[4], list[2], inner[1];
	struct dr_text keys[4], ikeys[1];
	memset(items, 0, sizeof(items));
	memset(list, 0, sizeof(list));
	memset(inner, 0, sizeof(inner));
	keys[0] = (struct dr_text){"version", 7, 1, 1};
	items[0].kind = DR_VAL_STRING;
	items[0].text = (struct dr_text){"1.4.0", 5, 1, 1};
	keys[1] = (struct dr_text){"n", 1, 1, 1};
	items[1].kind = DR_VAL_INT;
	items[1].as.i = 7;
	keys[2] = (struct dr_text){"list", 4, 1, 1};
	items[2].kind = DR_VAL_LIST;
	items[2].count = 2;
	items[2].items = list;
	list[0].kind = DR_VAL_BOOL;
	list[0].as.b = true;
	list[1].kind = DR_VAL_REAL;
	list[1].as.d = 2.5;
	keys[3] = (struct dr_text){"map", 3, 1, 1};
	items[3].kind = DR_VAL_MAP;
	items[3].count = 1;
	items[3].items = inner;
	items[3].keys = ikeys;
	ikeys[0] = (struct dr_text){"k", 1, 1, 1};
	inner[0].kind = DR_VAL_STRING;
	inner[0].text = (struct dr_text){"v", 1, 1, 1};
	struct dr_value vars = {.kind = DR_VAL_MAP, .count = 4, .items = items,
				.keys = keys};
	char *envp[] = {"HOME=/home/x", "API_TOKEN=s3cr3t-t0ken", "EMPTY=", NULL};
	struct expr_kv ctx[] = {{"changes", "fixed bugs", 10}};
	f->sc = (struct expr_scope){
		.run_id = "r-123", .run_name = "release",
		.variables = &vars, .environ = envp,
		.context = ctx, .n_context = 1,
	};
	expect_text(f, "variables.version", "1.4.0");
	expect_text(f, "variables.n * 2", "14");
	expect_text(f, "variables.list", "[true,2.5]");
	expect_text(f, "#variables.list", "2");
	expect_text(f, "variables.map.k", "v");
	expect_text(f, "variables.missing", "");
	expect_text(f, "variables", "{\"list\":[true,2.5],\"map\":{\"k\":\"v\"},"
		    "\"n\":7,\"version\":\"1.4.0\"}");
	expect_text(f, "env.HOME", "/home/x");
	expect_text(f, "env.NOPE == nil", "true");
	expect_text(f, "env.EMPTY == ''", "true");
	expect_text(f, "run.id .. ' ' .. run.name", "r-123 release");
	expect_text(f, "context.changes", "fixed bugs");
	expect_error(f, "(function() variables.version = 'x' end)()", -EINVAL,
		     "cannot assign");
	expect_text(f, "variables.version", "1.4.0");
	expect_error(f, "json(env)", -EINVAL, "cannot list");
	/* a secret is registered for redaction when read */
	assert_int_equal(redact_patterns(f->red), 0);
	expect_text(f, "secrets.API_TOKEN", "s3cr3t-t0ken");
	assert_true(redact_patterns(f->red) > 0);
	expect_error(f, "error('token is ' .. secrets.API_TOKEN)", -EINVAL,
		     "token is ***");
	assert_null(strstr(f->err.msg, "s3cr3t"));
	expect_error(f, "secrets.MISSING", -EINVAL, "secret 'MISSING' is not set");
	/* a syntax error quotes the source near it: a secret there is masked */
	expect_error(f, "'s3cr3t-t0ken", -EINVAL, "unfinished string");
	assert_null(strstr(f->err.msg, "s3cr3t"));
	expect_error(f, "1 's3cr3t-t0ken'", -EINVAL, "near");
	assert_null(strstr(f->err.msg, "s3cr3t"));
	memset(&f->sc, 0, sizeof(f->sc));
	still_works(f);
}

/* ---- helpers ------------------------------------------------------------- */

static void helpers_behave(void **state)
{
	struct fx *f = *state;
	expect_text(f, "json('a\"b')", "\"a\\\"b\"");
	expect_text(f, "json(nil)", "null");
	expect_text(f, "json(1.5)", "1.5");
	expect_text(f, "fromjson('{\"a\": [1, 2.5, \"x\", true, null], \"b\": null}')",
		    "{\"a\":[1,2.5,\"x\",true]}");
	expect_text(f, "fromjson('\"\\\\u00e9\\\\ud83d\\\\ude00\"')", "\xc3\xa9\xf0\x9f\x98\x80");
	expect_text(f, "fromjson('null') == nil", "true");
	expect_text(f, "fromjson(' 12345678901234567890 ')", "12345678901234567168");
	expect_text(f, "math.type(fromjson('3'))", "integer");
	expect_error(f, "fromjson('{\"a\": }')", -EINVAL, "fromjson: invalid JSON");
	expect_error(f, "fromjson('[1] x')", -EINVAL, "after the value");
	expect_error(f, "fromjson(string.rep('[', 500))", -EINVAL, "nested");
	expect_text(f, "contains('hello', 'ell')", "true");
	expect_text(f, "contains('hello', 'xyz')", "false");
	expect_text(f, "contains({'a', 'b'}, 'b')", "true");
	expect_text(f, "contains({'a', 'b'}, 'c')", "false");
	expect_text(f, "contains({x = 1}, 1)", "true");
	expect_text(f, "contains(nil, 'x')", "false");
	expect_text(f, "startswith('v1.4.0', 'v1.')", "true");
	expect_text(f, "startswith('v1.4.0', '1.')", "false");
	expect_text(f, "startswith(nil, 'x')", "false");
	expect_text(f, "len('héllo')", "6");
	expect_text(f, "len({1, 2, 3})", "3");
	expect_text(f, "len(nil)", "0");
	expect_error(f, "len(5)", -EINVAL, "len() expects");
	expect_text(f, "table.concat({'a', 'b'}, ',') .. select('#', 1, 2)", "a,b2");
	expect_text(f, "utf8.len('héllo') .. math.floor(2.7) .. tostring(10)", "5210");
	expect_text(f, "table.unpack({7, 8})", "7");
	still_works(f);
}

/* ---- library functions that work in C ------------------------------------ */

/* Lua's instruction hook never fires inside a C function: each library
 * function must charge its own work, so that what it is asked to do stops
 * with the budget error naming it, within the time limit. An alarm turns
 * a hang into a failed test. */
struct c_case {
	const char *src;
	const char *fn;      /* must appear in the message; NULL: any */
};

static void expect_stopped(struct fx *f, const struct c_case *c, double limit)
{
	double t0 = now();
	alarm(40);
	const char *got = run(f, c->src);
	alarm(0);
	double dt = now() - t0;
	if (got)
		fail_msg("%s: no error, got [%.40s]", c->src, got);
	if (f->rc != -ETIME)
		fail_msg("%s: error %d (%s), want -ETIME", c->src, f->rc, f->err.msg);
	if (!strstr(f->err.msg, "expression took too long"))
		fail_msg("%s: message [%s]", c->src, f->err.msg);
	if (c->fn && !strstr(f->err.msg, c->fn))
		fail_msg("%s: message [%s] does not name %s", c->src, f->err.msg, c->fn);
	if (getenv("SHOW_TIMES"))
		fprintf(stderr, "%5.2f s  %.60s\n", dt, c->src);
	if (dt > limit)
		fail_msg("%s: stopped after %.1f s", c->src, dt);
	still_works(f);
}

/* Runs the cases in an engine whose time limit is a minute: the budget
 * alone must stop each, naming the function, whatever the machine's load. */
static void expect_all_stopped(struct fx *f, const struct c_case *v, size_t n)
{
	struct expr_engine *fast = f->e;
	struct expr_opts o = {.redactor = f->red, .time_ms = 60000};
	assert_int_equal(expr_new(&f->e, &o), 0);
	for (size_t i = 0; i < n; i++)
		expect_stopped(f, &v[i], 15.0);     /* (a hang runs to the alarm) */
	expr_free(f->e);
	f->e = fast;
}

#define LOOP(setup, body) "(function() " setup " for i = 1, 1e9 do " body " end end)()"
#define BIG "('x'):rep(1e7)"
#define SPACES "((' '):rep(1e7) .. '1')"
/* A table whose border (#t) is 2^k although it holds k + 1 entries. */
#define SPARSE(k) "local t = {} for i = " #k ", 0, -1 do t[1 << i] = 1 end "

static void string_functions_charge_their_work(void **state)
{
	struct fx *f = *state;
	static const struct c_case cases[] = {
		{LOOP("", "local s = ('x'):rep(1e7)"), "string.rep"},
		{LOOP("local s = " BIG, "local u = s:upper()"), "string.upper"},
		{LOOP("local s = " BIG, "local u = s:lower()"), "string.lower"},
		{LOOP("local s = " BIG, "local u = s:reverse()"), "string.reverse"},
		{LOOP("local s = ('x'):rep(9e5)", "local n = select('#', s:byte(1, -1))"),
		 "string.byte"},
		{LOOP("local s = ('\\1'):rep(5e6)", "local q = ('%q'):format(s)"),
		 "string.format"},
		{LOOP("", "local p = string.pack('c10000000', '')"), "string.pack"},
		{LOOP("local f = ('i'):rep(1e7)", "local n = string.packsize(f)"),
		 "string.packsize"},
		{LOOP("local s = ('a'):rep(1.6e7) .. '\\0'", "local z = string.unpack('z', s)"),
		 "string.unpack"},
		{LOOP("local s = ('a'):rep(1.6e7)", "local p = s:find('b', 1, true)"),
		 "string.find"},
		{"('x'):rep(1e5):gsub('', ('%0'):rep(1e5))", "string.gsub"},
		{"('a'):rep(1e5):find('[' .. ('b'):rep(1e6) .. ']')", "string.find"},
		{"('a'):rep(1e6):find('(.*)%1b')", "string.find"},
		{LOOP("local s = " SPACES, "local n = s + 1"), "arithmetic on a string"},
		{LOOP("local s = " SPACES, "local n = -s"), "arithmetic on a string"},
	};
	expect_all_stopped(f, cases, sizeof(cases) / sizeof(cases[0]));
	/* what ordinary expressions do still works */
	expect_text(f, "string.rep('ab', 3, ',') .. string.rep('', 5) .. ('x'):rep(0)",
		    "ab,ab,ab");
	/* nothing repeated n times is nothing, at once */
	expect_text(f, "string.rep('', 1e12) == '' and ('').rep('', 1e15, '') == ''", "true");
	expect_text(f, "#('x'):rep(1e6) .. #string.rep('', 1e15)", "10000000");
	expect_text(f, "('Hello'):upper() .. ('Hello'):lower() .. ('abc'):reverse()",
		    "HELLOhellocba");
	expect_text(f, "select('#', ('abc'):byte(1, -1)) .. string.char(104, 105)", "3hi");
	expect_text(f, "string.format('%5.2f|%q|%d', 1.5, 'a\\n', '7')", " 1.50|\"a\\\n\"|7");
	expect_text(f, "#string.format('%99.99f', 1e308)", "409");
	expect_error(f, "string.format('%100d', 1)", -EINVAL, "invalid conversion");
	expect_text(f, "string.unpack('z', string.pack('z', 'hey'))", "hey");
	expect_text(f, "string.packsize('i4i8') .. ('abc'):find('c', 1, true)", "123");
	expect_text(f, "('hello'):gsub('l', '%0%0') .. ('a1'):find('[%d]')", "hellllo2");
	expect_text(f, "('abab'):find('(ab)%1') .. ('10' + 1) .. (-'2')", "111-2");
}

static void table_functions_charge_their_work(void **state)
{
	struct fx *f = *state;
	static const struct c_case cases[] = {
		{"table.move({}, 1, 1e15, 1)", "table.move"},
		{"table.move({}, -1e15, 1e15, 1)", "table.move"},
		{"(function() " SPARSE(50) "table.insert(t, 1, 0) end)()", "table.insert"},
		{"(function() " SPARSE(50) "table.remove(t, 1) end)()", "table.remove"},
		{"(function() " SPARSE(30) "table.sort(t, type) end)()", "table.sort"},
		{"(function() " SPARSE(50) "table.move(t, 1, #t, 2) end)()", "table.move"},
		/* a comparator in Lua counts its own instructions */
		{"table.sort({3, 2, 1}, function(a, b) while true do end end)",
		 "instruction budget"},
		{LOOP("local t = {} for i = 1, 1e6 do t[i] = '' end", "table.concat(t)"),
		 "table.concat"},
		{LOOP("local t = {} for i = 1, 5e5 do t[i] = i end",
		      "local n = select('#', table.unpack(t))"), "table.unpack"},
	};
	expect_all_stopped(f, cases, sizeof(cases) / sizeof(cases[0]));
	expect_text(f, "(function() local t = {3, 1, 2} table.insert(t, 1, 0) "
		    "table.insert(t, 5) table.remove(t, 2) table.sort(t) "
		    "return table.concat(t, ',') end)()", "0,1,2,5");
	expect_text(f, "json(table.move({1, 2, 3}, 1, 3, 2)) .. json(table.pack(1, 2).n)",
		    "[1,1,2,3]2");
	expect_text(f, "(function() local t = {} for i = 1, 1000 do t[i] = (i * 7919) % 1000 "
		    "end table.sort(t, function(a, b) return a > b end) "
		    "return t[1] .. ',' .. select('#', table.unpack(t)) end)()", "999,1000");
}

static void utf8_functions_charge_their_work(void **state)
{
	struct fx *f = *state;
	static const struct c_case cases[] = {
		{LOOP("local s = " BIG, "local n = utf8.len(s)"), "utf8.len"},
		{LOOP("local s = 'a' .. ('\\x80'):rep(1e7)", "local n = utf8.offset(s, 0, #s)"),
		 "utf8.offset"},
		{LOOP("local s = 'a' .. ('\\x80'):rep(1e7) local f = utf8.codes(s)",
		      "local p = f(s, 1)"), "utf8.codes"},
		{LOOP("local s = ('x'):rep(9e5)", "local n = select('#', utf8.codepoint(s, 1, -1))"),
		 "utf8.codepoint"},
	};
	expect_all_stopped(f, cases, sizeof(cases) / sizeof(cases[0]));
	expect_text(f, "utf8.len('h\\u{e9}llo') .. utf8.offset('h\\u{e9}llo', 3) .. "
		    "utf8.char(104, 233) .. select('#', utf8.codepoint('h\\u{e9}', 1, -1))",
		    "54h\xc3\xa9" "2");
	expect_text(f, "(function() local t = {} for p, c in utf8.codes('a\\u{e9}b') do "
		    "t[#t + 1] = p .. ':' .. c end return table.concat(t, ' ') end)()",
		    "1:97 2:233 4:98");
}

static void other_functions_charge_their_work(void **state)
{
	struct fx *f = *state;
	static const struct c_case cases[] = {
		{LOOP("local s = " SPACES, "local n = tonumber(s)"), "tonumber"},
		{LOOP("local s = " SPACES, "local n = math.floor(s)"), "math.floor"},
		{LOOP("local s = " SPACES, "local n = math.abs(s)"), "math.abs"},
		{LOOP("local a = " BIG " local b = " BIG,
		      "local e = rawequal(a, b)"), "rawequal"},
		{LOOP("local t = {} for i = 1, 1e6 do t[i] = i end", "local j = json(t)"),
		 "json"},
		{LOOP("local s = '\"' .. " BIG " .. '\"'", "local v = fromjson(s)"),
		 "fromjson"},
		{LOOP("local s = ('a'):rep(1.6e7)", "local c = contains(s, 'b')"), "contains"},
		{LOOP("local s = ('a'):rep(1.6e7)", "local v = env[s]"), "env"},
		/* no C function: each instruction is bounded by the memory limit
		 * and the clock is read often enough */
		{LOOP("local s = ('x'):rep(7e6)", "local c = s .. s .. s"), "instruction budget"},
	};
	expect_all_stopped(f, cases, sizeof(cases) / sizeof(cases[0]));
	/* converting a long string in a `for`, or comparing two: the clock
	 * stops it, read every few such instructions */
	static const struct c_case clock[] = {
		{LOOP("local s = " SPACES, "for j = s, 0 do end"), "time limit"},
		{LOOP("local a = " BIG " local b = " BIG, "local e = a == b"), "time limit"},
	};
	for (size_t i = 0; i < sizeof(clock) / sizeof(clock[0]); i++)
		expect_stopped(f, &clock[i], 2.5);  /* the limit is 0.5 s */
	expect_text(f, "tonumber(' 12 ') + math.floor('2.5') + math.abs('-3')", "17");
	expect_text(f, "json({a = {1, 2}, b = 'x'}) .. tostring(rawequal('a', 'a'))",
		    "{\"a\":[1,2],\"b\":\"x\"}true");
}

/* ---- errors and hints ---------------------------------------------------- */

static void compile_errors_hint_at_lua_syntax(void **state)
{
	struct fx *f = *state;
	int id;
	struct expr_error err;
	static const struct { const char *src, *hint; uint32_t off; } cases[] = {
		{"status != \"failed\"", "~=", 7},
		{"a && b", "'and'", 2},
		{"a || b", "'or'", 2},
		{"!ok", "'not'", 0},
		{"x == 1 && !y", "'and'", 7},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int r = expr_compile(f->e, cases[i].src, strlen(cases[i].src), &id,
				     &err);
		assert_int_equal(r, -EINVAL);
		if (!strstr(err.msg, cases[i].hint))
			fail_msg("%s: %s", cases[i].src, err.msg);
		assert_int_equal(err.offset, cases[i].off);
		assert_null(strstr(err.msg, "expr:"));
	}
	/* `!=` inside a string is no hint */
	assert_int_equal(expr_compile(f->e, "'!=' +", 6, &id, &err), -EINVAL);
	assert_null(strstr(err.msg, "hint"));
	assert_int_equal(expr_compile(f->e, "  ", 2, &id, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "empty"));
	assert_int_equal(expr_compile(f->e, "a b", 3, &id, &err), -EINVAL);
	assert_int_equal(err.offset, 2);
	assert_int_equal(expr_compile(f->e, "1 +\n+ 2 )", 9, &id, &err), -EINVAL);
	/* a statement cannot sneak out of the parentheses */
	assert_int_equal(expr_compile(f->e, "1) x = (2", 9, &id, &err), -EINVAL);
	/* a trailing comment cannot swallow the closing parenthesis */
	assert_int_equal(expr_compile(f->e, "1 -- note", 9, &id, &err), 0);
	char *big = malloc(EXPR_MAX_SOURCE + 2);
	memset(big, '1', EXPR_MAX_SOURCE + 1);
	big[EXPR_MAX_SOURCE + 1] = 0;
	assert_int_equal(expr_compile(f->e, big, EXPR_MAX_SOURCE + 1, &id, &err),
			 -E2BIG);
	free(big);
	/* bytecode is never loaded */
	assert_int_equal(expr_compile(f->e, "\x1bLuaT\x00", 6, &id, &err), -EINVAL);
	expect_error(f, "error('boom')", -EINVAL, "boom");
	assert_int_equal(strcmp(f->err.msg, "boom"), 0);
	expect_error(f, "nil + 1", -EINVAL, "arithmetic on a nil value");
	expect_error(f, "error({})", -EINVAL, "error value of type table");
	bool v;
	assert_int_equal(expr_eval_bool(f->e, 99999, NULL, &v, &err), -EINVAL);
	still_works(f);
}

/* ---- the escape corpus --------------------------------------------------- */

static void removed_globals_are_unknown(void **state)
{
	struct fx *f = *state;
	static const char *const names[] = {
		"io", "os", "load", "loadstring", "loadfile", "dofile", "require",
		"debug", "package", "collectgarbage", "getmetatable",
		"setmetatable", "rawset", "rawget", "coroutine", "print", "_G",
		"module", "newproxy", "setfenv", "getfenv", "unpack",
	};
	char src[64], frag[80];
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		snprintf(src, sizeof(src), "%s", names[i]);
		snprintf(frag, sizeof(frag), "unknown name '%s'", names[i]);
		expect_error(f, src, -EINVAL, frag);
		snprintf(src, sizeof(src), "%s.x", names[i]);
		expect_error(f, src, -EINVAL, frag);
	}
	expect_text(f, "string.dump == nil and ('x').dump == nil", "true");
	expect_error(f, "string.dump(function() end)", -EINVAL, "nil value");
	expect_text(f, "('x').__index == nil", "true");
	expect_error(f, "_ENV.io", -EINVAL, "unknown name 'io'");
	still_works(f);
}

static void the_sandbox_is_read_only(void **state)
{
	struct fx *f = *state;
	static const char *const writes[] = {
		"(function() x = 1 end)()",
		"(function() _ENV.x = 1 end)()",
		"(function() string.upper = nil end)()",
		"(function() string.x = 1 end)()",
		"(function() math.pi = 3 end)()",
		"(function() table.insert(string, 1) end)()",
		"(function() tasks.a = 1 end)()",
		"(function() env.PATH = '' end)()",
		"(function() json = nil end)()",
		"(function() tostring = nil end)()",
	};
	for (size_t i = 0; i < sizeof(writes) / sizeof(writes[0]); i++) {
		expect_error(f, writes[i], -EINVAL, NULL);
		assert_true(strstr(f->err.msg, "cannot assign")
			    || strstr(f->err.msg, "cannot change"));
	}
	expect_text(f, "string.upper('x') .. math.floor(math.pi)", "X3");
	/* a local of one evaluation is gone in the next */
	expect_text(f, "(function() local t = string return 1 end)()", "1");
	still_works(f);
}

static void memory_bombs_fail_cleanly(void **state)
{
	struct fx *f = *state;
	static const char *const bombs[] = {
		"('x'):rep(1e9)",
		"string.rep('x', 1e8, 'yy')",
		"(function() local s = 'x' while true do s = s .. s end end)()",
		"(function() local t = {} for i = 1, 1e9 do t[i] = i end end)()",
		"(function() local t = {} for i = 1, 1e9 do t[#t + 1] = {i} end end)()",
		"(function() local t = {} for i = 1, 1e9 do t['k' .. i] = i end end)()",
		"table.concat((function() local t = {} for i = 1, 1e6 do "
		"t[i] = ('x'):rep(100) end return t end)())",
	};
	size_t base = expr_memory(f->e);
	for (int round = 0; round < 2; round++) {
		for (size_t i = 0; i < sizeof(bombs) / sizeof(bombs[0]); i++) {
			double t0 = now();
			/* the slow ones may meet the time limit first on a
			 * loaded machine: both are a clean stop */
			const char *got = run(f, bombs[i]);
			if (got || (f->rc != -ENOMEM && f->rc != -ETIME))
				fail_msg("%s: %d %s", bombs[i], f->rc, f->err.msg);
			if (i < 2 || f->rc == -ENOMEM)
				assert_non_null(strstr(f->err.msg,
						       "memory limit exceeded"));
			assert_true(now() - t0 < 10.0);
			still_works(f);
			/* what a bomb allocated is collected, not kept (the
			 * string table shrinks by halves, one per cycle) */
			if (expr_memory(f->e) >= base + (8 << 20))
				fail_msg("%s: %zu -> %zu", bombs[i], base,
					 expr_memory(f->e));
		}
	}
	/* a caught allocation failure is the expression's business */
	expect_text(f, "pcall(string.rep, 'x', 1e9)", "false");
}

static void runaway_loops_hit_the_budget(void **state)
{
	struct fx *f = *state;
	static const char *const loops[] = {
		"(function() while true do end end)()",
		"(function() repeat until false end)()",
		"(function() for i = 1, math.maxinteger do end end)()",
		"pcall(function() while true do end end)",
		"(function() while true do pcall(function() while true do end end) "
		"end end)()",
		"(function() local function f(n) return f(n + 1) end return f(1) end)()",
		"(function() while true do pcall(error, 'x') end end)()",
	};
	for (size_t i = 0; i < sizeof(loops) / sizeof(loops[0]); i++) {
		double t0 = now();
		expect_error(f, loops[i], -ETIME, "expression took too long (");
		assert_true(now() - t0 < 5.0);
		still_works(f);
	}
}

static void deep_recursion_fails_cleanly(void **state)
{
	struct fx *f = *state;
	static const char *const deep[] = {
		"(function() local function f(n) return 1 + f(n + 1) end "
		"return f(1) end)()",
		"(function() local function f(s) return ('x'):gsub('x', f) end "
		"return f() end)()",
		"(function() local t = {} for i = 1, 1000 do t = {t} end return "
		"json(t) end)()",
		"(function() local function f(n) return tostring(setmetatable) end "
		"return f(1) end)()",
	};
	for (size_t i = 0; i < sizeof(deep) / sizeof(deep[0]); i++) {
		double t0 = now();
		const char *got = run(f, deep[i]);
		if (got)
			fail_msg("%s: no error", deep[i]);
		assert_true(f->rc == -EINVAL || f->rc == -ENOMEM || f->rc == -ETIME);
		assert_true(now() - t0 < 5.0);
		still_works(f);
	}
}

static void hostile_patterns_hit_the_budget(void **state)
{
	struct fx *f = *state;
	static const char *const pats[] = {
		"string.rep('a', 5000):find(string.rep('a*', 20) .. 'b')",
		"string.rep('a', 200000):match('.-.-.-b')",
		"string.rep('a', 200000):gsub('(.-)=(.-);', '')",
		"(function() for w in string.rep('ab', 100000):gmatch('.-x') do "
		"end end)()",
		"string.rep('(', 100000):find('%b()')",
	};
	for (size_t i = 0; i < sizeof(pats) / sizeof(pats[0]); i++) {
		double t0 = now();
		expect_error(f, pats[i], -ETIME, "took too long");
		assert_true(now() - t0 < 5.0);
		still_works(f);
	}
	expect_error(f, "('x'):find(string.rep('(', 40) .. 'x' .. string.rep(')', 40))",
		     -EINVAL, "too many captures");
	expect_error(f, "('x'):find('[a')", -EINVAL, "missing ']'");
	expect_error(f, "('x'):gsub('x', '%2')", -EINVAL, "invalid capture index");
	expect_text(f, "('key=value'):match('(%w+)=(%w+)')", "key");
	expect_text(f, "select(2, ('key=value'):match('(%w+)=(%w+)'))", "value");
	expect_text(f, "('hello world'):gsub('o', '0')", "hell0 w0rld");
	expect_text(f, "(function() local t = {} for w in ('a b c'):gmatch('%a') "
		    "do t[#t + 1] = w end return table.concat(t, ',') end)()", "a,b,c");
}

static void the_clock_stops_what_instructions_do_not(void **state)
{
	(void)state;
	struct expr_engine *e;
	struct expr_error err;
	struct buf out = BUF_INIT;
	int id;
	/* a huge instruction budget: the 100 ms time limit stops it */
	struct expr_opts o = {.instructions = 2000000000u, .time_ms = 100};
	assert_int_equal(expr_new(&e, &o), 0);
	const char *src = "(function() while true do pcall(error, 'x') end end)()";
	assert_int_equal(expr_compile(e, src, strlen(src), &id, &err), 0);
	double t0 = now();
	assert_int_equal(expr_eval_text(e, id, NULL, &out, &err), -ETIME);
	assert_true(now() - t0 < 2.0);
	assert_non_null(strstr(err.msg, "time limit of 100 ms"));
	src = "string.rep('a', 30000):find(string.rep('a*', 30) .. 'b')";
	assert_int_equal(expr_compile(e, src, strlen(src), &id, &err), 0);
	assert_int_equal(expr_eval_text(e, id, NULL, &out, &err), -ETIME);
	src = "'still ' .. 'fine'";
	assert_int_equal(expr_compile(e, src, strlen(src), &id, &err), 0);
	assert_int_equal(expr_eval_text(e, id, NULL, &out, &err), 0);
	assert_string_equal(out.data, "still fine");
	buf_free(&out);
	expr_free(e);
}

/* Like curl's torture tests: with the engine's memory capped at every size
 * from tiny up, creating, compiling and evaluating fail with -ENOMEM or
 * succeed, and never crash (the allocator fails, Lua must not panic). */
static void allocation_failures_are_errors_not_crashes(void **state)
{
	(void)state;
	struct expr_result r;
	expr_result_init(&r);
	r.status = DAGRUN_COMPLETED;
	r.output = "{\"a\": [1, 2, {\"b\": \"c\"}]}";
	r.output_len = strlen(r.output);
	struct expr_scope sc = {.self = &r, .run_id = "x"};
	static const char *const srcs[] = {
		"status == 'completed' and json.a[3].b == 'c'",
		"json",
		"tostring(42) .. run.id .. fromjson('[1, 2]')[2]",
		"error(42)",
	};
	int created = 0, ok = 0;
	for (size_t lim = 1024; lim <= 160 * 1024; lim += 512) {
		struct expr_engine *e;
		struct expr_opts o = {.total_memory = lim};
		int rc = expr_new(&e, &o);
		assert_true(rc == 0 || rc == -ENOMEM);
		if (rc)
			continue;
		created++;
		for (size_t i = 0; i < sizeof(srcs) / sizeof(srcs[0]); i++) {
			struct expr_error err;
			struct buf out = BUF_INIT;
			int id;
			rc = expr_compile(e, srcs[i], strlen(srcs[i]), &id, &err);
			assert_true(rc == 0 || rc == -ENOMEM);
			if (rc == 0) {
				rc = expr_eval_text(e, id, &sc, &out, &err);
				assert_true(rc == 0 || rc == -ENOMEM
					    || (i == 3 && rc == -EINVAL));
				ok += rc == 0;
			}
			buf_free(&out);
		}
		expr_free(e);
	}
	assert_true(created > 0);
	assert_true(ok > 0);
}

static void two_engines_are_independent(void **state)
{
	(void)state;
	struct expr_engine *a, *b;
	struct expr_error err;
	struct buf out = BUF_INIT;
	int ia, ib;
	assert_int_equal(expr_new(&a, NULL), 0);
	struct expr_opts small = {.eval_memory = 1 << 20, .instructions = 1000};
	assert_int_equal(expr_new(&b, &small), 0);
	assert_int_equal(expr_compile(a, "'a' .. 1", 8, &ia, &err), 0);
	const char *loop = "(function() for i = 1, 1e6 do end end)()";
	assert_int_equal(expr_compile(b, loop, strlen(loop), &ib, &err), 0);
	assert_int_equal(expr_eval_text(b, ib, NULL, &out, &err), -ETIME);
	assert_int_equal(expr_eval_text(a, ia, NULL, &out, &err), 0);
	assert_string_equal(out.data, "a1");
	assert_int_equal(expr_compile(b, "('x'):rep(2e6)", 14, &ib, &err), 0);
	assert_int_equal(expr_eval_text(b, ib, NULL, &out, &err), -ENOMEM);
	assert_non_null(strstr(err.msg, "(1 MiB)"));
	assert_int_equal(expr_compile(a, "#('x'):rep(2e6)", 15, &ia, &err), 0);
	buf_reset(&out);
	assert_int_equal(expr_eval_text(a, ia, NULL, &out, &err), 0);
	assert_string_equal(out.data, "2000000");
	expr_free(a);
	expr_free(b);
	expr_free(NULL);
	buf_free(&out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(values_become_text_as_the_spec_says, setup, teardown),
		cmocka_unit_test_setup_teardown(truthiness_is_lua_truthiness, setup, teardown),
		cmocka_unit_test_setup_teardown(tasks_are_read_lazily_by_id, setup, teardown),
		cmocka_unit_test_setup_teardown(conditions_see_the_dependency_fields, setup, teardown),
		cmocka_unit_test_setup_teardown(variables_env_run_and_context_resolve, setup, teardown),
		cmocka_unit_test_setup_teardown(helpers_behave, setup, teardown),
		cmocka_unit_test_setup_teardown(string_functions_charge_their_work, setup, teardown),
		cmocka_unit_test_setup_teardown(table_functions_charge_their_work, setup, teardown),
		cmocka_unit_test_setup_teardown(utf8_functions_charge_their_work, setup, teardown),
		cmocka_unit_test_setup_teardown(other_functions_charge_their_work, setup, teardown),
		cmocka_unit_test_setup_teardown(compile_errors_hint_at_lua_syntax, setup, teardown),
		cmocka_unit_test_setup_teardown(removed_globals_are_unknown, setup, teardown),
		cmocka_unit_test_setup_teardown(the_sandbox_is_read_only, setup, teardown),
		cmocka_unit_test_setup_teardown(memory_bombs_fail_cleanly, setup, teardown),
		cmocka_unit_test_setup_teardown(runaway_loops_hit_the_budget, setup, teardown),
		cmocka_unit_test_setup_teardown(deep_recursion_fails_cleanly, setup, teardown),
		cmocka_unit_test_setup_teardown(hostile_patterns_hit_the_budget, setup, teardown),
		cmocka_unit_test(the_clock_stops_what_instructions_do_not),
		cmocka_unit_test(allocation_failures_are_errors_not_crashes),
		cmocka_unit_test(two_engines_are_independent),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
