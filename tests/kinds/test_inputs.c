/* test_inputs.c: the canonical inputs of an attempt (kind.inputs through
 * kinds_inputs, kinds/inputs.c), what the store records and replay
 * compares: rendered as the executor renders (shell, argv, URL, header
 * escaping), every secret masked, keys sorted, the same bytes for the same
 * inputs, a template that fails said with its place.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dagrun.h"
#include "kinds/kind.h"
#include "model/model.h"
#include "sched/flow.h"

#define SECRET "hunter2-token-8c1f0b"

static const char yaml[] =
	"name: inputs\n"
	"variables: { who: \"O'Brien\", path: \"a b/c\" }\n"
	"env: { Z_LAST: z, A_FIRST: \"{{ variables.who }}\" }\n"
	"tasks:\n"
	"  - id: sh\n"
	"    command: \"echo {{ variables.who }}\"\n"
	"    env: { A_FIRST: task }\n"
	"    workdir: \"/tmp/{{ variables.path }}\"\n"
	"  - id: argv\n"
	"    command: [\"printf\", \"%s\", \"{{ variables.who }}\"]\n"
	"  - id: get\n"
	"    api:\n"
	"      url: \"http://127.0.0.1:9/x/{{ variables.path }}\"\n"
	"      method: POST\n"
	"      headers: { Authorization: \"Bearer {{ secrets.TOKEN }}\" }\n"
	"      body: { q: \"{{ variables.who }}\", n: 3, key: \"{{ secrets.TOKEN }}\" }\n"
	"  - id: py\n"
	"    script: \"print('{ {not rendered} }')\"\n"
	"    interpreter: python3\n"
	"  - id: bad\n"
	"    command: \"echo {{ variables.who.x.y }}\"\n";

struct fixture {
	dagrun_workflow *wf;
	struct flow *f;
};

static int render(struct exec_attempt *a, const struct dr_text *t, enum exec_render_mode mode,
		  struct buf *out, char **err)
{
	return flow_render(a->owner, a->task, t, (int)mode, a->context, a->n_context, out, err);
}

static int setup(void **state)
{
	struct fixture *x = calloc(1, sizeof(*x));
	assert_non_null(x);
	setenv("TOKEN", SECRET, 1);
	dagrun_diags *d = dagrun_diags_new(0);
	int r = dagrun_workflow_load_buffer("inputs.yaml", yaml, strlen(yaml), &x->wf, d);
	if (r)
		dagrun_diags_print(d, stderr, 0);
	assert_int_equal(r, 0);
	struct flow_opts fo = {.run_id = "run"};
	assert_int_equal(flow_new(&x->f, x->wf, &fo, d), 0);
	dagrun_diags_free(d);
	*state = x;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *x = *state;
	if (!x)
		return 0;
	flow_free(x->f);
	dagrun_workflow_free(x->wf);
	free(x);
	return 0;
}

static uint32_t task(const dagrun_workflow *wf, const char *id)
{
	for (uint32_t t = 0; t < wf->n_tasks; t++)
		if (!strcmp(wf_task_id(wf, t), id))
			return t;
	fail_msg("no task %s", id);
	return 0;
}

/* The inputs of task id's attempt 1; *err on failure. */
static int inputs(struct fixture *x, const char *id, char **out, char **err)
{
	uint32_t t = task(x->wf, id);
	struct exec_attempt a;
	memset(&a, 0, sizeof(a));
	a.wf = x->wf;
	a.task = t;
	a.attempt = 1;
	a.render = render;
	a.owner = x->f;
	a.redactor = flow_redactor(x->f);
	return kinds_inputs(kind_of(x->wf->kinds[x->wf->tasks[t].kind]), &a, out, err);
}

static void expect(struct fixture *x, const char *id, const char *want)
{
	char *got = NULL, *err = NULL;
	assert_int_equal(inputs(x, id, &got, &err), 0);
	assert_null(err);
	assert_string_equal(got, want);
	/* the same inputs, the same bytes */
	char *again = NULL;
	assert_int_equal(inputs(x, id, &again, &err), 0);
	assert_string_equal(again, got);
	free(again);
	free(got);
}

static void a_command_string_is_rendered_with_shell_escaping_and_its_environment(void **state)
{
	/* keys sorted; the task's env over the workflow's */
	expect(*state, "sh",
	       "{\"command\":\"echo 'O'\\\\''Brien'\",\"env\":{\"A_FIRST\":\"task\",\"Z_LAST\":\"z\"},"
	       "\"kind\":\"command\",\"workdir\":\"/tmp/a b/c\"}");
}

static void an_argv_is_rendered_word_by_word(void **state)
{
	expect(*state, "argv",
	       "{\"argv\":[\"printf\",\"%s\",\"O'Brien\"],\"env\":{\"A_FIRST\":\"O'Brien\","
	       "\"Z_LAST\":\"z\"},\"kind\":\"command\"}");
}

static void a_request_is_rendered_and_its_secrets_masked(void **state)
{
	expect(*state, "get",
	       "{\"body\":{\"key\":\"***\",\"n\":3,\"q\":\"O'Brien\"},"
	       "\"headers\":{\"Authorization\":\"Bearer ***\"},\"kind\":\"api\","
	       "\"method\":\"POST\",\"url\":\"http://127.0.0.1:9/x/a%20b%2Fc\"}");
}

static void a_script_not_for_a_shell_is_given_with_its_interpreter(void **state)
{
	expect(*state, "py",
	       "{\"env\":{\"A_FIRST\":\"O'Brien\",\"Z_LAST\":\"z\"},\"interpreter\":\"python3\","
	       "\"kind\":\"script\",\"script\":\"print('{ {not rendered} }')\"}");
}

static void a_template_that_fails_says_where(void **state)
{
	char *got = NULL, *err = NULL;
	assert_int_equal(inputs(*state, "bad", &got, &err), -EINVAL);
	assert_null(got);
	assert_non_null(err);
	assert_non_null(strstr(err, "inputs.yaml:"));
	free(err);
}

static void masking_reaches_every_string_of_a_document(void **state)
{
	struct fixture *x = *state;
	json_t *j = json_pack("{s:[s,{s:s}],s:i}", "a", "x " SECRET " y", "k", SECRET, "n", 1);
	assert_int_equal(kinds_mask_json(flow_redactor(x->f), j), 0);
	char *s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
	assert_string_equal(s, "{\"a\":[\"x *** y\",{\"k\":\"***\"}],\"n\":1}");
	free(s);
	json_decref(j);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(a_command_string_is_rendered_with_shell_escaping_and_its_environment),
		cmocka_unit_test(an_argv_is_rendered_word_by_word),
		cmocka_unit_test(a_request_is_rendered_and_its_secrets_masked),
		cmocka_unit_test(a_script_not_for_a_shell_is_given_with_its_interpreter),
		cmocka_unit_test(a_template_that_fails_says_where),
		cmocka_unit_test(masking_reaches_every_string_of_a_document),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
