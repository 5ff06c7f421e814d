/* test_exprcheck.c: static checks of templates and expressions in
 * `dagrun validate`: each rejection with its message, line and column. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "dagrun.h"

/* Loads yaml; expects failure with exactly one error at line:col whose
 * message contains want. */
static void expect_error(const char *yaml, unsigned line, unsigned col, const char *want)
{
	dagrun_diags *d = dagrun_diags_new(0);
	dagrun_workflow *wf = NULL;
	int r = dagrun_workflow_load_buffer("wf.yaml", yaml, strlen(yaml), &wf, d);
	if (dagrun_diags_count(d) != 1)
		dagrun_diags_print(d, stderr, 0);
	assert_int_equal(r, -22);
	assert_null(wf);
	assert_int_equal(dagrun_diags_count(d), 1);
	const dagrun_diag *g = dagrun_diags_get(d, 0);
	if (!strstr(g->message, want))
		fprintf(stderr, "message: %s\n", g->message);
	assert_non_null(strstr(g->message, want));
	assert_int_equal(g->line, line);
	assert_int_equal(g->column, col);
	dagrun_diags_free(d);
}

static void expect_ok(const char *yaml)
{
	dagrun_diags *d = dagrun_diags_new(0);
	dagrun_workflow *wf = NULL;
	int r = dagrun_workflow_load_buffer("wf.yaml", yaml, strlen(yaml), &wf, d);
	if (r)
		dagrun_diags_print(d, stderr, 0);
	assert_int_equal(r, 0);
	dagrun_workflow_free(wf);
	dagrun_diags_free(d);
}

#define HEAD "name: x\nvariables: {v: 1}\ntasks:\n  - {id: a, command: \"true\"}\n"

static void reading_a_task_that_is_not_upstream_is_an_error(void **state)
{
	(void)state;
	expect_error(HEAD "  - {id: b, command: 'echo {{ tasks.a.output }}'}\n",
		     5, 37, "task 'b' reads tasks.a but does not depend on it");
}

static void reading_a_transitive_upstream_task_is_fine(void **state)
{
	(void)state;
	expect_ok(HEAD
		  "  - {id: b, command: 'true', dependencies: [a]}\n"
		  "  - {id: c, command: 'echo {{ tasks.a.output }} {{ tasks[\"b\"].status }}',"
		  " dependencies: [b]}\n"
		  "onExit:\n"
		  "  - {id: h, command: 'echo {{ tasks.c.status }}'}\n");
}

static void unknown_task_gets_a_suggestion(void **state)
{
	(void)state;
	expect_error(HEAD "  - {id: b, dependencies: [a], command: 'echo {{ tasks.aa.output }}'}\n",
		     5, 56, "unknown task 'aa' in tasks.aa; did you mean 'a'?");
}

static void undeclared_variable_is_an_error(void **state)
{
	(void)state;
	expect_error(HEAD "  - {id: b, command: 'echo {{ variables.w }}'}\n",
		     5, 41, "unknown variable 'w'");
}

static void unknown_top_level_name_is_an_error(void **state)
{
	(void)state;
	expect_error(HEAD "  - {id: b, command: 'true', when: 'foo == 1'}\n",
		     5, 37, "unknown name 'foo'");
}

static void condition_field_outside_a_condition_is_an_error(void **state)
{
	(void)state;
	expect_error(HEAD "  - {id: b, command: 'true', when: 'exitCode == 0'}\n",
		     5, 37, "'exitCode' is only known in a dependency condition");
}

static void condition_fields_are_known_in_a_condition(void **state)
{
	(void)state;
	expect_ok(HEAD "  - id: b\n    command: 'true'\n    dependencies:\n"
		  "      - {taskId: a, condition: 'exitCode == 0 and contains(output, \"x\")'}\n");
}

static void c_style_operator_gets_a_lua_hint(void **state)
{
	(void)state;
	expect_error(HEAD "  - {id: b, command: 'true', when: 'variables.v != 1 && true'}\n",
		     5, 49, "~=");
}

static void syntax_error_in_a_template_points_into_it(void **state)
{
	(void)state;
	expect_error(HEAD "  - id: b\n    env: {X: \"pre {{ 1 + }} post\"}\n    command: 'true'\n",
		     6, 26, "invalid expression");
}

static void unclosed_template_is_an_error(void **state)
{
	(void)state;
	expect_error(HEAD "  - {id: b, command: 'echo {{ variables.v'}\n",
		     5, 28, "invalid template");
}

static void template_in_a_block_script_points_at_its_line(void **state)
{
	(void)state;
	expect_error(HEAD "  - id: b\n    script: |\n      echo one\n      echo {{ nope }}\n",
		     8, 15, "unknown name 'nope'");
}

static void workflow_env_cannot_read_task_results(void **state)
{
	(void)state;
	expect_error("name: x\nenv: {X: '{{ tasks.a.output }}'}\ntasks:\n  - {id: a, command: 'true'}\n",
		     2, 20, "the workflow's env cannot read tasks.a");
}

static void prompt_file_must_exist_and_its_templates_are_checked(void **state)
{
	(void)state;
	char dir[] = "/tmp/dagrun-pf-XXXXXX";
	assert_non_null(mkdtemp(dir));
	char path[256], wfpath[256];
	snprintf(path, sizeof(path), "%s/p.md", dir);
	FILE *f = fopen(path, "w");
	fputs("Summarize {{ tasks.a.output }}\nthen {{ nope }}\n", f);
	fclose(f);
	snprintf(wfpath, sizeof(wfpath), "%s/wf.yaml", dir);
	const char *yaml = "name: x\ntasks:\n  - {id: a, command: 'true'}\n"
			   "  - {id: b, model: m, promptFile: p.md, dependencies: [a]}\n"
			   "  - {id: c, model: m, promptFile: gone.md}\n";
	dagrun_diags *d = dagrun_diags_new(0);
	dagrun_workflow *wf = NULL;
	assert_int_equal(dagrun_workflow_load_buffer(wfpath, yaml, strlen(yaml), &wf, d), -22);
	assert_int_equal(dagrun_diags_count(d), 2);
	const dagrun_diag *g0 = dagrun_diags_get(d, 0), *g1 = dagrun_diags_get(d, 1);
	assert_string_equal(g0->file, path);
	assert_int_equal(g0->line, 2);
	assert_int_equal(g0->column, 9);
	assert_non_null(strstr(g0->message, "unknown name 'nope'"));
	assert_string_equal(g1->file, wfpath);
	assert_int_equal(g1->line, 5);
	assert_int_equal(g1->column, 35);
	assert_non_null(strstr(g1->message, "No such file"));
	dagrun_diags_free(d);
	unlink(path);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(reading_a_task_that_is_not_upstream_is_an_error),
		cmocka_unit_test(reading_a_transitive_upstream_task_is_fine),
		cmocka_unit_test(unknown_task_gets_a_suggestion),
		cmocka_unit_test(undeclared_variable_is_an_error),
		cmocka_unit_test(unknown_top_level_name_is_an_error),
		cmocka_unit_test(condition_field_outside_a_condition_is_an_error),
		cmocka_unit_test(condition_fields_are_known_in_a_condition),
		cmocka_unit_test(c_style_operator_gets_a_lua_hint),
		cmocka_unit_test(syntax_error_in_a_template_points_into_it),
		cmocka_unit_test(unclosed_template_is_an_error),
		cmocka_unit_test(template_in_a_block_script_points_at_its_line),
		cmocka_unit_test(workflow_env_cannot_read_task_results),
		cmocka_unit_test(prompt_file_must_exist_and_its_templates_are_checked),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
