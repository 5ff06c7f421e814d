/* test_check.c: static checks for `dagrun validate`: task and variable
 * references, unknown names, names bound inside the expression. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "expr/check.h"
#include "expr/lex.h"

/* Formats the names found as "kind:name@off ..." for comparison. */
static void names(const char *src, unsigned flags, const char *want)
{
	struct expr_refs r;
	struct expr_error err;
	struct expr_engine *e;
	assert_int_equal(expr_new(&e, NULL), 0);
	int rc = expr_check(e, src, strlen(src), flags, &r, &err);
	if (rc)
		fail_msg("%s: %s", src, err.msg);
	char got[1024] = "";
	for (size_t i = 0; i < r.n; i++) {
		static const char kinds[] = "TVUCS";
		size_t n = strlen(got);
		snprintf(got + n, sizeof(got) - n, "%s%c:%s@%u", i ? " " : "",
			 kinds[r.v[i].kind], r.v[i].name, r.v[i].off);
	}
	if (strcmp(got, want))
		fail_msg("%s:\n got [%s]\nwant [%s]", src, got, want);
	expr_refs_free(&r);
	expr_refs_free(&r);
	expr_free(e);
}

static void task_references_are_found_in_every_spelling(void **state)
{
	(void)state;
	names("tasks.build.exitCode == 0", 0, "T:build@6");
	names("tasks[\"my-id\"].output .. tasks['other'].json.x", 0,
	      "T:my-id@6 T:other@31");
	names("tasks[ [[long-id]] ].status", 0, "T:long-id@7");
	names("tasks.a.status == 'ok' and tasks.b.status", 0, "T:a@6 T:b@33");
	names("variables.version .. variables['x-y']", 0,
	      "V:version@10 V:x-y@31");
	/* not references: fields named tasks, strings, comments */
	names("json.tasks.x", EXPR_CHECK_CONDITION, "");
	names("'tasks.fake' -- tasks.other", 0, "");
	names("x:tasks()", 0, "U:x@0");
	names("secrets.TOKEN .. secrets['B']", 0, "");
	names("secrets.TOKEN .. secrets['B'] .. secrets[k]", EXPR_CHECK_SECRETS,
	      "S:TOKEN@8 S:B@25 U:k@41");
	struct expr_refs r;
	struct expr_error err;
	assert_int_equal(expr_check(NULL, "tasks[id].status", 16, 0, &r, &err), 0);
	assert_int_equal(r.dynamic_tasks, 0);
	assert_int_equal(r.n, 1);           /* id is unknown */
	expr_refs_free(&r);
	assert_int_equal(expr_check(NULL, "tasks.a", 7, 0, &r, &err), 0);
	assert_int_equal(r.dynamic_tasks, EXPR_NO_OFFSET);
	expr_refs_free(&r);
}

static void unknown_names_are_reported_with_offsets(void **state)
{
	(void)state;
	names("stauts == 'failed'", EXPR_CHECK_CONDITION, "U:stauts@0");
	names("status == 'failed'", EXPR_CHECK_CONDITION, "");
	names("status == 'failed'", 0, "C:status@0");
	names("exitCode ~= 0 and durationMs > 10 and json.n", 0,
	      "C:exitCode@0 C:durationMs@18");
	names("print(x)", 0, "U:print@0 U:x@6");
	names("os.exit()", 0, "U:os@0");
	names("string.upper(env.HOME) .. secrets.T .. run.id .. context.k", 0, "");
	names("contains(output, 'x')", EXPR_CHECK_CONDITION, "");
	names("len(nope)", 0, "U:nope@4");
	names("true and nil or false", 0, "");
}

static void names_bound_in_the_expression_are_not_unknown(void **state)
{
	(void)state;
	names("(function(a, b) return a + b end)(1, 2)", 0, "");
	names("(function() local x, y <const> = 1, 2 return x + y + z end)()", 0,
	      "U:z@53");
	names("(function() for k, v in pairs({}) do return k .. v end end)()", 0,
	      "");
	names("(function() for i = 1, 3 do end return i end)()", 0, "");
	names("(function() local function f(n) return n end return f(1) end)()",
	      0, "");
	names("{ a = 1, b = c }", 0, "U:c@13");
	names("{ [k] = 1 }", 0, "U:k@3");
	names("(function() goto done ::done:: end)()", 0, "");
	names("a.b.c:d(e)", 0, "U:a@0 U:e@8");
	names("x == y", 0, "U:x@0 U:y@5");
}

static void syntax_errors_come_first(void **state)
{
	(void)state;
	struct expr_refs r;
	struct expr_error err;
	struct expr_engine *e;
	assert_int_equal(expr_new(&e, NULL), 0);
	assert_int_equal(expr_check(e, "a != b", 6, 0, &r, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "~="));
	expr_refs_free(&r);
	assert_int_equal(expr_check(NULL, "'open", 5, 0, &r, &err), -EINVAL);
	expr_refs_free(&r);
	expr_free(e);
}

static void the_lexer_splits_lua(void **state)
{
	(void)state;
	const char *s = "a.b 0x1F 3.5e-2 'x\\'y' [==[ ]] ]==] --[[ c ]] ... ~= !";
	static const int kinds[] = {LEX_NAME, LEX_OP, LEX_NAME, LEX_NUMBER,
				    LEX_NUMBER, LEX_STRING, LEX_STRING, LEX_OP,
				    LEX_OP, LEX_OP, LEX_EOF};
	struct lex lx;
	struct lex_token t;
	lex_init(&lx, s, strlen(s));
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
		assert_int_equal(lex_next(&lx, &t), kinds[i]);
	char out[16];
	lex_init(&lx, "'a\\65\\x42\\n'", 12);
	lex_next(&lx, &t);
	assert_int_equal(lex_string_value(lx.s, &t, out, sizeof(out)), 4);
	assert_string_equal(out, "aAB\n");
	lex_init(&lx, "--[[ open", 9);
	assert_int_equal(lex_next(&lx, &t), LEX_ERROR);
	assert_int_equal(lex_next(&lx, &t), LEX_ERROR);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(task_references_are_found_in_every_spelling),
		cmocka_unit_test(unknown_names_are_reported_with_offsets),
		cmocka_unit_test(names_bound_in_the_expression_are_not_unknown),
		cmocka_unit_test(syntax_errors_come_first),
		cmocka_unit_test(the_lexer_splits_lua),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
