/* test_exprcheck.c: static checks of templates and expressions in
 * `dagrun validate`: each rejection with its message, line and column. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
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

/* Validates wfpath's yaml in a child with a deadline (a FIFO opened
 * without O_NONBLOCK would wait for a writer forever); the child exits 0
 * when it found exactly one error, at line:col, whose message is want. */
static void expect_file_error(const char *wfpath, const char *yaml, unsigned line,
			      unsigned col, const char *want)
{
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		alarm(20);
		dagrun_diags *d = dagrun_diags_new(0);
		dagrun_workflow *wf = NULL;
		int r = dagrun_workflow_load_buffer(wfpath, yaml, strlen(yaml), &wf, d);
		const dagrun_diag *g = dagrun_diags_count(d) == 1 ? dagrun_diags_get(d, 0) : NULL;
		bool ok = r == -22 && g && g->line == line && g->column == col &&
			  !strcmp(g->message, want);
		if (!ok)
			dagrun_diags_print(d, stderr, 0);
		_exit(ok ? 0 : 2);
	}
	int st = 0;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	if (WIFSIGNALED(st))
		fail_msg("validation was killed by signal %d: it hung on %s", WTERMSIG(st), want);
	assert_int_equal(WEXITSTATUS(st), 0);
}

static void prompt_file_that_is_not_a_small_regular_file_is_refused_at_once(void **state)
{
	(void)state;
	char dir[] = "/tmp/dagrun-pf-XXXXXX";
	assert_non_null(mkdtemp(dir));
	char path[256], wfpath[256];
	snprintf(path, sizeof(path), "%s/p.md", dir);
	snprintf(wfpath, sizeof(wfpath), "%s/wf.yaml", dir);
	const char *yaml = "name: x\ntasks:\n  - {id: c, model: m, promptFile: p.md}\n";

	/* The words of the run's reader (the AI executor's test checks the
	 * same for the run): dr_prompt_file_read. */
	expect_file_error(wfpath, yaml, 3, 35, "promptFile 'p.md': No such file or directory");
	assert_int_equal(mkfifo(path, 0600), 0);
	expect_file_error(wfpath, yaml, 3, 35, "promptFile 'p.md': is a FIFO, not a regular file");
	unlink(path);
	assert_int_equal(mkdir(path, 0700), 0);
	expect_file_error(wfpath, yaml, 3, 35,
			  "promptFile 'p.md': is a directory, not a regular file");
	rmdir(path);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	for (int i = 0; i < (1 << 20) + 1; i++)
		fputc('a', f);
	fclose(f);
	expect_file_error(wfpath, yaml, 3, 35, "promptFile 'p.md': is larger than 1 MiB");
	/* exactly the cap is fine */
	assert_int_equal(truncate(path, 1 << 20), 0);
	dagrun_diags *d = dagrun_diags_new(0);
	dagrun_workflow *wf = NULL;
	assert_int_equal(dagrun_workflow_load_buffer(wfpath, yaml, strlen(yaml), &wf, d), 0);
	dagrun_workflow_free(wf);
	dagrun_diags_free(d);
	unlink(path);
	rmdir(dir);
}

/* ---- what the run refuses, validation refuses (one checker) -------------- */

static void shell_contexts_the_run_refuses_are_errors(void **state)
{
	(void)state;
	static const struct { const char *task; unsigned line, col; const char *why; } bad[] = {
		{"  - {id: b, command: 'echo `{{ variables.v }}`'}\n", 5, 29, "inside `...`"},
		{"  - {id: b, command: 'echo ${X:-{{ variables.v }}}'}\n", 5, 33, "inside ${...}"},
		{"  - {id: b, command: 'echo $(( {{ variables.v }} + 1 ))'}\n", 5, 32,
		 "arithmetic"},
		{"  - {id: b, command: \"echo $'{{ variables.v }}'\"}\n", 5, 30, "inside $'...'"},
		{"  - {id: b, command: 'echo ${{ variables.v }}'}\n", 5, 29, "right after '$'"},
		{"  - {id: b, command: 'echo \\{{ variables.v }}'}\n", 5, 29,
		 "right after a backslash"},
		{"  - {id: b, command: 'cat <<{{ variables.v }}'}\n", 5, 29,
		 "here-document delimiter"},
		{"  - id: b\n    script: |\n      echo one\n      x=`{{ variables.v }}`\n", 8, 10,
		 "inside `...`"},
		{"  - id: b\n    interpreter: bash -e\n    script: |\n      echo \"$(( {{ variables.v }} ))\"\n",
		 8, 17, "arithmetic"},
	};
	char yaml[512];
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(yaml, sizeof(yaml), HEAD "%s", bad[i].task);
		expect_error(yaml, bad[i].line, bad[i].col, bad[i].why);
		expect_error(yaml, bad[i].line, bad[i].col, "pass it through env:");
	}
	/* what the run accepts for some values is accepted here */
	expect_ok(HEAD "  - {id: b, command: 'echo \"{{ variables.v }}\" {{ variables.v }} "
		  "# {{ variables.v }}'}\n"
		  "  - id: c\n    script: |\n      cat <<EOF\n      {{ variables.v }}\n      EOF\n"
		  "      echo $({{ variables.v }}) '{{ variables.v }}'\n"
		  "  - {id: d, command: ['echo', '`{{ variables.v }}`']}\n"
		  "  - {id: e, api: {url: 'http://h/${{ variables.v }}'}}\n");
}

static void env_lookups_are_checked_like_names(void **state)
{
	(void)state;
	expect_error(HEAD "  - {id: b, command: 'true', when: '_ENV.os == nil'}\n",
		     5, 42, "unknown name 'os'");
	expect_error(HEAD "  - {id: b, command: 'true', when: '_ENV[\"io\"] == nil'}\n",
		     5, 42, "unknown name 'io'");
	expect_error(HEAD "  - {id: b, command: 'echo {{ _ENV.variables.w }}'}\n",
		     5, 46, "unknown variable 'w'");
	expect_error(HEAD "  - {id: b, command: 'echo {{ _ENV.tasks.a.output }}'}\n",
		     5, 42, "task 'b' reads tasks.a but does not depend on it");
	expect_ok(HEAD "  - {id: b, dependencies: [a], command: 'echo {{ _ENV.string.upper(\"x\") }}"
		  " {{ _ENV.variables.v }} {{ _ENV.tasks.a.status }} {{ _ENV[\"math\"].pi }}'}\n"
		  "  - {id: c, command: 'true', when: '(function(_ENV) return _ENV.os end)({os = 1})'}\n"
		  "  - id: d\n    command: 'true'\n    dependencies:\n"
		  "      - {taskId: a, condition: '_ENV.status == \"completed\"'}\n");
}

static void templates_where_nothing_is_rendered_are_errors(void **state)
{
	(void)state;
	expect_error(HEAD "  - id: b\n    interpreter: '{{ variables.v }}'\n    script: echo hi\n",
		     6, 19, "'interpreter' is used as written");
	expect_error(HEAD "  - id: b\n    interpreter: python3 {{ variables.v }}\n    script: print(1)\n",
		     6, 26, "'interpreter' is used as written");
}

/* ---- upstream references: one pass for all of them ----------------------- */

/* Loads yaml, expects failure with errors at exactly the lines given (in
 * that order), each about a task read without depending on it. */
static void expect_upstream_errors(const char *yaml, const unsigned *lines, size_t n, size_t max)
{
	dagrun_diags *d = dagrun_diags_new(max);
	dagrun_workflow *wf = NULL;
	int r = dagrun_workflow_load_buffer("wf.yaml", yaml, strlen(yaml), &wf, d);
	if (dagrun_diags_count(d) != n)
		dagrun_diags_print(d, stderr, 0);
	assert_int_equal(r, n ? -22 : 0);
	assert_int_equal(dagrun_diags_count(d), n);
	for (size_t i = 0; i < n; i++) {
		const dagrun_diag *g = dagrun_diags_get(d, i);
		if (g->line != lines[i] || !strstr(g->message, "does not depend on it"))
			fail_msg("error %zu: %u: %s (want line %u)", i, g->line, g->message, lines[i]);
	}
	dagrun_workflow_free(wf);
	dagrun_diags_free(d);
}

static void upstream_checks_follow_the_graph(void **state)
{
	(void)state;
	/* a chain, a diamond, siblings, a reverse reference, hooks */
	const char *yaml =
		"name: x\ntasks:\n"
		"  - {id: a, command: 'true'}\n"                                         /* 3 */
		"  - {id: b1, command: 'true', dependencies: [a]}\n"                     /* 4 */
		"  - {id: b2, command: 'echo {{ tasks.b1.output }}', dependencies: [a]}\n"
		"  - {id: c, command: 'echo {{ tasks.a.output }}', dependencies: [b1, b2]}\n"
		"  - {id: d, command: 'true', when: 'tasks.b2.status == \"x\" and tasks.c.output',"
		" dependencies: [c]}\n"                                                  /* 7 */
		"  - {id: e, command: 'echo {{ tasks.d.output }}', dependencies: [b1]}\n"
		"  - {id: f, command: 'echo {{ tasks.f2.output }} {{ tasks.a.output }}'}\n"
		"  - {id: f2, command: 'true', dependencies: [f]}\n"                    /* 10 */
		"onFailure:\n"
		"  - {id: h1, command: 'echo {{ tasks.f2.output }}'}\n"                 /* 12 */
		"onExit:\n"
		"  - {id: h2, command: 'echo {{ tasks.h1.output }}'}\n"                 /* 14 */
		"  - {id: h3, command: 'echo {{ tasks.h1.output }}', dependencies: [h1]}\n";
	static const unsigned lines[] = {5, 8, 9, 9, 14};
	expect_upstream_errors(yaml, lines, 5, 0);
	/* the cap keeps the first errors, in order */
	expect_upstream_errors(yaml, lines, 2, 2);
}

/* Many distinct referenced tasks (more than a word of bits), read from
 * far and near, some upstream and some not; other errors in between keep
 * their order. */
static void many_references_are_checked_in_order(void **state)
{
	(void)state;
	enum { N = 300 };
	size_t cap = 256 * N;
	char *yaml = malloc(cap);
	unsigned lines[N];
	size_t n = 0, len = 0;
	len += (size_t)snprintf(yaml + len, cap - len, "name: x\nvariables: {v: 1}\ntasks:\n"
				"  - {id: t0, command: 'true'}\n");
	for (unsigned i = 1; i < N; i++) {
		unsigned line = i + 4;
		/* t_i depends on t_{i-1}: t_{i/2} and t_{i-1} are upstream;
		 * t_{i+1} and t_{i+7} (when they exist) are not */
		len += (size_t)snprintf(yaml + len, cap - len,
					"  - {id: t%u, dependencies: [t%u], command: 'echo "
					"{{ tasks.t%u.output }} {{ tasks.t%u.output }}", i, i - 1,
					i / 2, i - 1);
		if (i % 3 == 0 && i + 1 < N) {
			len += (size_t)snprintf(yaml + len, cap - len, " {{ tasks.t%u.status }}", i + 1);
			lines[n++] = line;
		}
		if (i % 5 == 0 && i + 7 < N) {
			len += (size_t)snprintf(yaml + len, cap - len, " {{ tasks.t%u.status }}", i + 7);
			lines[n++] = line;
		}
		len += (size_t)snprintf(yaml + len, cap - len, "'}\n");
	}
	expect_upstream_errors(yaml, lines, n, 2 * N);
	expect_upstream_errors(yaml, lines, 7, 7);
	/* an unknown variable between them keeps its place */
	len = (size_t)snprintf(yaml, cap, "name: x\ntasks:\n"
			       "  - {id: a, command: 'true'}\n"
			       "  - {id: b, command: 'echo {{ tasks.c.output }}'}\n"
			       "  - {id: c, command: 'echo {{ variables.nope }}'}\n"
			       "  - {id: d, command: 'echo {{ tasks.b.output }}', dependencies: [a]}\n");
	dagrun_diags *d = dagrun_diags_new(0);
	dagrun_workflow *wf = NULL;
	assert_int_equal(dagrun_workflow_load_buffer("wf.yaml", yaml, len, &wf, d), -22);
	assert_int_equal(dagrun_diags_count(d), 3);
	assert_int_equal(dagrun_diags_get(d, 0)->line, 4);
	assert_int_equal(dagrun_diags_get(d, 1)->line, 5);
	assert_non_null(strstr(dagrun_diags_get(d, 1)->message, "unknown variable"));
	assert_int_equal(dagrun_diags_get(d, 2)->line, 6);
	assert_int_equal(dagrun_diags_get(d, 2)->column, 37);
	dagrun_diags_free(d);
	free(yaml);
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
		cmocka_unit_test(prompt_file_that_is_not_a_small_regular_file_is_refused_at_once),
		cmocka_unit_test(shell_contexts_the_run_refuses_are_errors),
		cmocka_unit_test(env_lookups_are_checked_like_names),
		cmocka_unit_test(templates_where_nothing_is_rendered_are_errors),
		cmocka_unit_test(upstream_checks_follow_the_graph),
		cmocka_unit_test(many_references_are_checked_in_order),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
