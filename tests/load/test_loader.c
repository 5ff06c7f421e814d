/* test_loader.c: dagrun_workflow_load_buffer and _load: every key of the
 * format landing in the model, defaults, and every rejection with its exact
 * message, line and column. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <sys/stat.h>
#include <unistd.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "exec/ai.h"
#include "exec/command.h"
#include "exec/http.h"
#include "kinds/kind.h"
#include "load/load.h"
#include "load/loader.h"
#include "model/model.h"
#include "util/diag.h"

#define L(s) s "\n"

/* ---- helpers ---------------------------------------------------------------- */

static void print_diags(const dagrun_diags *d)
{
	for (size_t i = 0; i < dagrun_diags_count(d); i++) {
		const dagrun_diag *g = dagrun_diags_get(d, i);
		print_message("  %u:%u: %s\n", g->line, g->column, g->message);
	}
}

static struct dagrun_workflow *load_ok(const char *yaml)
{
	dagrun_diags *d = dagrun_diags_new(0);
	dagrun_workflow *wf = NULL;
	int r = dagrun_workflow_load_buffer("t.yaml", yaml, strlen(yaml), &wf, d);
	if (r != 0 || dagrun_diags_errors(d)) {
		print_diags(d);
		fail_msg("load failed: %d", r);
	}
	dagrun_diags_free(d);
	return wf;
}

/* Loads yaml, which must fail with -EINVAL and, among its diagnostics, an
 * error at line:col with exactly msg. Returns the number of errors. */
static size_t expect_err(const char *yaml, unsigned line, unsigned col, const char *msg)
{
	dagrun_diags *d = dagrun_diags_new(0);
	dagrun_workflow *wf = (void *)1;
	int r = dagrun_workflow_load_buffer("t.yaml", yaml, strlen(yaml), &wf, d);
	bool found = false;
	for (size_t i = 0; i < dagrun_diags_count(d); i++) {
		const dagrun_diag *g = dagrun_diags_get(d, i);
		if (g->severity == DAGRUN_ERROR && g->line == line && g->column == col &&
		    !strcmp(g->message, msg))
			found = true;
		assert_string_equal(g->file, "t.yaml");
	}
	if (!found) {
		print_message("MISMATCH want %u:%u: %s\n", line, col, msg);
		print_diags(d);
		if (!getenv("LISTALL"))
			fail_msg("no error %u:%u: %s", line, col, msg);
	}
	assert_int_equal(r, -EINVAL);
	assert_ptr_equal(wf, (void *)1); /* *out untouched */
	size_t n = dagrun_diags_errors(d);
	dagrun_diags_free(d);
	return n;
}

/* A minimal valid workflow plus extra top-level text. */
#define HEAD L("name: t") L("tasks:")

static const struct dr_task *task(const struct dagrun_workflow *wf, const char *id)
{
	uint32_t sym = intern_find(&wf->ids, id, strlen(id));
	assert_int_not_equal(sym, INTERN_NONE);
	assert_int_not_equal(wf->sym_task[sym], UINT32_MAX);
	return &wf->tasks[wf->sym_task[sym]];
}

static void assert_text(struct dr_text t, const char *s, unsigned line, unsigned col)
{
	assert_non_null(t.s);
	assert_string_equal(t.s, s);
	assert_int_equal(t.len, strlen(s));
	assert_int_equal(t.line, line);
	assert_int_equal(t.col, col);
}

static const struct dr_value *member(const struct dr_value *v, const char *key)
{
	assert_int_equal(v->kind, DR_VAL_MAP);
	for (uint32_t i = 0; i < v->count; i++)
		if (!strcmp(v->keys[i].s, key))
			return &v->items[i];
	fail_msg("no key %s", key);
	return NULL;
}

/* ---- every key lands in the model --------------------------------------------- */

static const char full_yaml[] =
	L("name: release-notes")                                   /* 1 */
	L("description: Builds notes")
	L("variables:")
	L("  version: \"1.4.0\"")
	L("  n: 3")                                                 /* 5 */
	L("  ratio: 0.5")
	L("  on: yes")
	L("  flags: [true, ~, 0x1F]")
	L("env:")
	L("  LC_ALL: C")                                            /* 10 */
	L("maxParallel: 4")
	L("resources:")
	L("  cpu: 2")
	L("  openai: 1")
	L("defaults:")                                              /* 15 */
	L("  timeout: 10m")
	L("  killGrace: 2s")
	L("  retry: { maxAttempts: 3, backoffFactor: 1.5, initialDelay: 1s, maxDelay: 30s }")
	L("  workdir: /tmp")
	L("  priority: 5")                                          /* 20 */
	L("  resources: { cpu: 1 }")
	L("tasks:")
	L("  - id: build")
	L("    command: make -j4")
	L("  - id: list")                                            /* 25 */
	L("    command: [git, log, \"--oneline\"]")
	L("    dependencies: [build]")
	L("    description: lists")
	L("    priority: -3")
	L("    resources: {}")                                       /* 30 */
	L("    timeout: 1m30s")
	L("    killGrace: 0")
	L("    retry:")
	L("      maxAttempts: 5")
	L("      jitter: decorrelated")                              /* 35 */
	L("      retryOn: [transient, permanent]")
	L("      permanentExitCodes: [2, 3]")
	L("    env: { A: \"1\", B_2: x }")
	L("    workdir: \"{{ variables.ratio }}\"")
	L("    when: variables.n > 2")                               /* 40 */
	L("  - id: transform")
	L("    type: standard")
	L("    interpreter: python3")
	L("    script: |")
	L("      print(1)")                                           /* 45 */
	L("  - id: fetch")
	L("    api:")
	L("      url: https://api.example.com/items?since={{ variables.n }}")
	L("      method: POST")
	L("      headers: { Authorization: \"Bearer {{ secrets.T }}\" }")  /* 50 */
	L("      body: { query: x, list: [1, 2] }")
	L("      expectStatus: [200, 201]")
	L("      connectTimeout: 5s")
	L("      maxResponseBytes: 1048576")
	L("      insecure: false")                                    /* 55 */
	L("  - id: notify")
	L("    webhook:")
	L("      url: https://hooks.example.com/dagrun")
	L("      event: release.published")
	L("      payload: { version: \"{{ variables.version }}\" }")  /* 60 */
	L("      secret: \"{{ secrets.HOOK }}\"")
	L("      headers: { X-Team: docs }")
	L("  - id: summarize")
	L("    model: gpt-4o-mini")
	L("    system: You write notes.")                            /* 65 */
	L("    prompt: Write notes for {{ variables.version }}.")
	L("    context: { changes: \"{{ tasks.build.output }}\", n: 2 }")
	L("    temperature: 0.2")
	L("    maxTokens: 400")
	L("    responseFormat: json")                                 /* 70 */
	L("    stream: true")
	L("    baseUrl: http://127.0.0.1:8080/v1")
	L("    apiKeyEnv: MY_KEY")
	L("    maxContextBytes: 1000")
	L("    dependencies:")                                        /* 75 */
	L("      - build")
	L("      - taskId: fetch")
	L("        type: non-blocking")
	L("        condition: status == \"failed\"")
	L("onSuccess:")                                             /* 80 */
	L("  - id: ok")
	L("    command: echo ok")
	L("onFailure:")
	L("  - id: bad")
	L("    command: echo bad")                                    /* 85 */
	L("    dependencies: [ok]")
	L("onExit:")
	L("  - id: bye")
	L("    promptFile: prompts/bye.md")
	L("    model: m");                                            /* 90 */

static void top_level_keys_land_in_the_model(void **state)
{
	(void)state;
	struct dagrun_workflow *wf = load_ok(full_yaml);
	assert_string_equal(dagrun_workflow_name(wf), "release-notes");
	assert_text(wf->name, "release-notes", 1, 7);
	assert_text(wf->description, "Builds notes", 2, 14);
	assert_string_equal(wf->path, "t.yaml");
	assert_string_equal(wf->dir, ".");
	const struct dr_value *v = wf->variables;
	assert_non_null(v);
	assert_int_equal(v->count, 5);
	assert_int_equal(member(v, "version")->kind, DR_VAL_STRING);
	assert_true(member(v, "version")->quoted);
	assert_text(member(v, "version")->text, "1.4.0", 4, 13);
	assert_int_equal(member(v, "n")->kind, DR_VAL_INT);
	assert_int_equal(member(v, "n")->as.i, 3);
	assert_int_equal(member(v, "ratio")->kind, DR_VAL_REAL);
	assert_true(member(v, "ratio")->as.d == 0.5);
	assert_int_equal(member(v, "on")->kind, DR_VAL_STRING); /* YAML 1.2 core */
	const struct dr_value *f = member(v, "flags");
	assert_int_equal(f->kind, DR_VAL_LIST);
	assert_int_equal(f->count, 3);
	assert_int_equal(f->items[0].kind, DR_VAL_BOOL);
	assert_true(f->items[0].as.b);
	assert_int_equal(f->items[1].kind, DR_VAL_NULL);
	assert_int_equal(f->items[2].kind, DR_VAL_INT);
	assert_int_equal(f->items[2].as.i, 31);
	assert_text(f->items[2].text, "0x1F", 8, 20);
	assert_int_equal(wf->env.n, 1);
	assert_text(wf->env.v[0].key, "LC_ALL", 10, 3);
	assert_text(wf->env.v[0].value, "C", 10, 11);
	assert_int_equal(wf->max_parallel, 4);
	assert_int_equal(wf->n_pools, 2);
	for (uint32_t i = 0; i < wf->n_pools; i++) {
		bool cpu = !strcmp(wf->pools[i].name, "cpu");
		assert_int_equal(wf->pools[i].capacity, cpu ? 2 : 1);
		assert_int_equal(wf->pools[i].line, cpu ? 13 : 14);
		assert_int_equal(wf->pools[i].col, 3);
	}
	dagrun_workflow_free(wf);
}

static void tasks_are_ordered_main_then_hooks(void **state)
{
	(void)state;
	struct dagrun_workflow *wf = load_ok(full_yaml);
	static const char *const ids[] = {"build", "list", "transform", "fetch", "notify",
					  "summarize", "ok", "bad", "bye"};
	assert_int_equal(wf->n_tasks, 9);
	assert_int_equal(wf->n_main, 6);
	for (uint32_t i = 0; i < 9; i++) {
		assert_string_equal(wf_task_id(wf, i), ids[i]);
		assert_int_equal(wf->tasks[i].hook, i < 6 ? 0 : i - 5);
	}
	assert_int_equal(wf->hook_first[0], 0);
	assert_int_equal(wf->hook_count[0], 6);
	assert_int_equal(wf->hook_first[DR_HOOK_SUCCESS], 6);
	assert_int_equal(wf->hook_first[DR_HOOK_FAILURE], 7);
	assert_int_equal(wf->hook_first[DR_HOOK_EXIT], 8);
	assert_int_equal(wf->hook_count[DR_HOOK_EXIT], 1);
	assert_int_equal(wf->tasks[0].line, 23);
	assert_int_equal(wf->tasks[0].col, 9);
	assert_non_null(wf->graph);
	dagrun_workflow_free(wf);
}

static void command_and_script_tasks_keep_their_text(void **state)
{
	(void)state;
	struct dagrun_workflow *wf = load_ok(full_yaml);
	const struct dr_task *t = task(wf, "build");
	assert_string_equal(wf->kinds[t->kind]->name, "command");
	assert_text(((const struct dr_command *)t->spec)->str, "make -j4", 24, 14);
	assert_null(((const struct dr_command *)t->spec)->argv);
	t = task(wf, "list");
	assert_null(((const struct dr_command *)t->spec)->str.s);
	assert_int_equal(((const struct dr_command *)t->spec)->argc, 3);
	assert_text(((const struct dr_command *)t->spec)->argv[0], "git", 26, 15);
	assert_text(((const struct dr_command *)t->spec)->argv[2], "--oneline", 26, 26);
	t = task(wf, "transform");
	assert_string_equal(wf->kinds[t->kind]->name, "script");
	assert_string_equal(((const struct dr_script *)t->spec)->body.s, "print(1)\n");
	assert_text(((const struct dr_script *)t->spec)->interpreter, "python3", 43, 18);
	dagrun_workflow_free(wf);
}

static void task_options_land_in_the_model(void **state)
{
	(void)state;
	struct dagrun_workflow *wf = load_ok(full_yaml);
	const struct dr_task *t = task(wf, "list");
	const struct dr_task_opts *o = t->opts;
	assert_ptr_not_equal(o, &wf->default_opts);
	assert_int_equal(t->priority, -3);
	assert_text(*o->description, "lists", 28, 18);
	assert_int_equal(o->n_res, 0);               /* {} overrides the default */
	assert_int_equal(o->timeout_ms, 90000);
	assert_int_equal(o->kill_grace_ms, 0);
	assert_int_equal(o->retry.max_attempts, 5);
	assert_true(o->retry.backoff_factor == 1.5);  /* from defaults */
	assert_int_equal(o->retry.initial_delay_ms, 1000);
	assert_int_equal(o->retry.max_delay_ms, 30000);
	assert_int_equal(o->retry.jitter, DR_JITTER_DECORRELATED);
	assert_int_equal(o->retry.retry_on, (1 << DR_CLASS_TRANSIENT) | (1 << DR_CLASS_PERMANENT));
	assert_int_equal(o->retry.n_permanent, 2);
	assert_int_equal(o->retry.permanent_codes[1], 3);
	assert_int_equal(o->env.n, 2);
	assert_text(o->env.v[1].key, "B_2", 38, 20);
	assert_text(o->env.v[0].value, "1", 38, 16);
	assert_text(*o->workdir, "{{ variables.ratio }}", 39, 15);
	assert_text(*o->when, "variables.n > 2", 40, 11);
	dagrun_workflow_free(wf);
}

static void api_and_webhook_keys_land_in_the_model(void **state)
{
	(void)state;
	struct dagrun_workflow *wf = load_ok(full_yaml);
	const struct dr_api *a = ((const struct dr_api *)task(wf, "fetch")->spec);
	assert_string_equal(wf->kinds[task(wf, "fetch")->kind]->name, "api");
	assert_text(a->url, "https://api.example.com/items?since={{ variables.n }}", 48, 12);
	assert_text(a->method, "POST", 49, 15);
	assert_int_equal(a->headers.n, 1);
	assert_text(a->headers.v[0].value, "Bearer {{ secrets.T }}", 50, 34);
	assert_int_equal(a->body->kind, DR_VAL_MAP);
	assert_int_equal(member(a->body, "list")->count, 2);
	assert_int_equal(a->n_expect, 2);
	assert_int_equal(a->expect[0], 200);
	assert_int_equal(a->expect[1], 201);
	assert_int_equal(a->connect_timeout_ms, 5000);
	assert_int_equal(a->max_response_bytes, 1048576);
	assert_false(a->insecure);
	const struct dr_webhook *w = ((const struct dr_webhook *)task(wf, "notify")->spec);
	assert_string_equal(wf->kinds[task(wf, "notify")->kind]->name, "webhook");
	assert_text(w->url, "https://hooks.example.com/dagrun", 58, 12);
	assert_text(w->event, "release.published", 59, 14);
	assert_string_equal(member(w->payload, "version")->text.s, "{{ variables.version }}");
	assert_text(w->secret, "{{ secrets.HOOK }}", 61, 16);
	assert_text(w->headers.v[0].key, "X-Team", 62, 18);
	dagrun_workflow_free(wf);
}

static void ai_keys_land_in_the_model_and_type_is_inferred(void **state)
{
	(void)state;
	struct dagrun_workflow *wf = load_ok(full_yaml);
	const struct dr_task *t = task(wf, "summarize");
	assert_string_equal(wf->kinds[t->kind]->name, "ai");
	const struct dr_ai *a = ((const struct dr_ai *)t->spec);
	assert_text(a->model, "gpt-4o-mini", 64, 12);
	assert_text(a->system, "You write notes.", 65, 13);
	assert_text(a->prompt, "Write notes for {{ variables.version }}.", 66, 13);
	assert_null(a->prompt_file.s);
	assert_int_equal(member(a->context, "n")->as.i, 2);
	assert_true(a->has_temperature && a->temperature == 0.2);
	assert_int_equal(a->max_tokens, 400);
	assert_int_equal(a->response_format, DR_RESP_JSON);
	assert_true(a->stream);
	assert_text(a->base_url, "http://127.0.0.1:8080/v1", 72, 14);
	assert_text(a->api_key_env, "MY_KEY", 73, 16);
	assert_int_equal(a->max_context_bytes, 1000);
	a = ((const struct dr_ai *)task(wf, "bye")->spec);
	assert_text(a->prompt_file, "prompts/bye.md", 89, 17);
	assert_int_equal(a->max_context_bytes, 64 * 1024);
	assert_false(a->has_temperature);
	dagrun_workflow_free(wf);
}

static void dependencies_are_resolved_to_task_indexes(void **state)
{
	(void)state;
	struct dagrun_workflow *wf = load_ok(full_yaml);
	const struct dr_task *t = task(wf, "summarize");
	assert_int_equal(t->dep_count, 2);
	const struct dr_dep *d = &wf->deps[t->dep_first];
	assert_int_equal(d[0].target, 0);
	assert_int_equal(d[0].type, DR_DEP_BLOCKING);
	assert_null(d[0].condition);
	assert_int_equal(d[0].line, 76);
	assert_int_equal(d[0].col, 9);
	assert_int_equal(d[1].target, 3);
	assert_int_equal(d[1].type, DR_DEP_NON_BLOCKING);
	assert_text(*d[1].condition, "status == \"failed\"", 79, 20);
	assert_int_equal(d[1].line, 77);
	assert_int_equal(d[1].col, 17);
	t = task(wf, "bad");
	assert_int_equal(wf->deps[t->dep_first].target, 6);
	dagrun_workflow_free(wf);
}

static void defaults_apply_to_tasks_that_do_not_set_the_key(void **state)
{
	(void)state;
	struct dagrun_workflow *wf = load_ok(full_yaml);
	const struct dr_task_opts *d = &wf->default_opts;
	assert_int_equal(d->timeout_ms, 600000);
	assert_int_equal(d->kill_grace_ms, 2000);
	assert_int_equal(d->retry.max_attempts, 3);
	assert_int_equal(d->retry.jitter, DR_JITTER_FULL);
	assert_int_equal(d->retry.retry_on, (1 << DR_CLASS_TRANSIENT) | (1 << DR_CLASS_RESOURCE));
	assert_string_equal(d->workdir->s, "/tmp");
	assert_int_equal(d->n_res, 1);
	assert_int_equal(d->res[0].units, 1);
	assert_string_equal(wf->pools[d->res[0].pool].name, "cpu");
	const struct dr_task *b = task(wf, "build");
	assert_ptr_equal(b->opts, &wf->default_opts); /* shared */
	assert_int_equal(b->priority, 5);
	assert_int_equal(task(wf, "list")->priority, -3);
	assert_int_equal(task(wf, "bye")->priority, 5); /* hooks too */
	dagrun_workflow_free(wf);
}

static void builtin_defaults_without_a_defaults_section(void **state)
{
	(void)state;
	struct dagrun_workflow *wf = load_ok(HEAD L("  - id: a") L("    command: x")
					     L("  - id: b") L("    command: x")
					     L("    retry: { maxAttempts: 2 }"));
	const struct dr_task_opts *d = &wf->default_opts;
	assert_ptr_equal(task(wf, "a")->opts, d);
	assert_int_equal(task(wf, "a")->priority, 0);
	assert_int_equal(d->timeout_ms, 0);
	assert_int_equal(d->kill_grace_ms, 5000);
	assert_int_equal(d->retry.max_attempts, 1);
	assert_true(d->retry.backoff_factor == 2);
	assert_int_equal(d->retry.initial_delay_ms, 1000);
	assert_int_equal(d->retry.max_delay_ms, 30000);
	assert_int_equal(d->retry.jitter, DR_JITTER_FULL);
	assert_int_equal(d->retry.retry_on, (1 << DR_CLASS_TRANSIENT) | (1 << DR_CLASS_RESOURCE));
	assert_null(d->workdir);
	assert_int_equal(wf->max_parallel, 0);
	const struct dr_task_opts *o = task(wf, "b")->opts;
	assert_int_equal(o->retry.max_attempts, 2);
	assert_int_equal(o->kill_grace_ms, 5000);
	assert_null(wf->variables);
	dagrun_workflow_free(wf);
}

static void durations_accept_units_and_bare_milliseconds(void **state)
{
	(void)state;
	struct dagrun_workflow *wf = load_ok(HEAD
		L("  - { id: a, command: x, timeout: 250 }")
		L("  - { id: b, command: x, timeout: \"1500\" }")
		L("  - { id: c, command: x, timeout: 1h2m3s500ms }")
		L("  - { id: d, command: x, timeout: 168h }"));
	assert_int_equal(task(wf, "a")->opts->timeout_ms, 250);
	assert_int_equal(task(wf, "b")->opts->timeout_ms, 1500);
	assert_int_equal(task(wf, "c")->opts->timeout_ms, 3723500);
	assert_int_equal(task(wf, "d")->opts->timeout_ms, DR_MAX_TIMEOUT_MS);
	dagrun_workflow_free(wf);
}

static void json_is_accepted(void **state)
{
	(void)state;
	struct dagrun_workflow *wf = load_ok(
		"{\"name\": \"j\", \"tasks\": [{\"id\": \"a\", \"command\": \"true\"},\n"
		"\t{\"id\": \"b\", \"command\": [\"echo\", \"hi\"], \"dependencies\": [\"a\"],\n"
		"\t \"retry\": {\"maxAttempts\": 2}, \"description\": \"\\u00e9\"}]}");
	assert_int_equal(wf->n_tasks, 0 + 2);
	dagrun_workflow_free(wf);
}

static void hook_lists_may_come_first_and_depend_on_hooks(void **state)
{
	(void)state;
	struct dagrun_workflow *wf = load_ok(
		L("onExit: [{id: z, command: x, dependencies: [y]}]")
		L("onFailure: [{id: y, command: x}]")
		L("name: t")
		L("tasks: [{id: a, command: x}]"));
	assert_string_equal(wf_task_id(wf, 0), "a");
	assert_string_equal(wf_task_id(wf, 1), "y");
	assert_string_equal(wf_task_id(wf, 2), "z");
	assert_int_equal(wf->deps[wf->tasks[2].dep_first].target, 1);
	assert_int_equal(wf->hook_count[DR_HOOK_SUCCESS], 0);
	dagrun_workflow_free(wf);
}

static void anchors_without_aliases_and_tags_are_fine(void **state)
{
	(void)state;
	struct dagrun_workflow *wf = load_ok(
		L("name: t")
		L("variables: &v { a: !!str 12, b: !!int \"7\" }")
		L("tasks: [{id: a, command: !!str true}]"));
	assert_int_equal(member(wf->variables, "a")->kind, DR_VAL_STRING);
	assert_int_equal(member(wf->variables, "b")->kind, DR_VAL_INT);
	assert_string_equal(((const struct dr_command *)task(wf, "a")->spec)->str.s, "true");
	dagrun_workflow_free(wf);
}

static void only_api_webhook_and_ai_tasks_still_load(void **state)
{
	(void)state;
	struct dagrun_workflow *wf = load_ok(HEAD
		L("  - { id: a, api: { url: \"{{ env.BASE }}/x\" } }")
		L("  - { id: b, webhook: { url: \"http://h/\" }, dependencies: [a] }")
		L("  - { id: c, type: ai, model: m, prompt: p, dependencies: [b] }"));
	assert_int_equal(wf->n_tasks, 3);
	assert_null(((const struct dr_api *)task(wf, "a")->spec)->method.s);
	assert_null(((const struct dr_api *)task(wf, "a")->spec)->expect);
	dagrun_workflow_free(wf);
}

static void posix_shell_scripts_may_hold_templates(void **state)
{
	(void)state;
	struct dagrun_workflow *wf = load_ok(HEAD
		L("  - { id: a, script: \"echo {{ env.X }}\" }")
		L("  - { id: b, interpreter: /usr/bin/env -S bash -e, script: \"echo {{ env.X }}\" }")
		L("  - { id: c, interpreter: python3, script: \"print(1)\" }"));
	dagrun_workflow_free(wf);
}

static void insecure_api_loads_with_a_warning(void **state)
{
	(void)state;
	const char *y = HEAD L("  - { id: a, api: { url: \"https://x\", insecure: true } }");
	dagrun_diags *d = dagrun_diags_new(0);
	dagrun_workflow *wf = NULL;
	assert_int_equal(dagrun_workflow_load_buffer("t.yaml", y, strlen(y), &wf, d), 0);
	assert_int_equal(dagrun_diags_errors(d), 0);
	assert_int_equal(dagrun_diags_count(d), 1);
	assert_int_equal(dagrun_diags_get(d, 0)->severity, DAGRUN_WARNING);
	assert_int_equal(dagrun_diags_get(d, 0)->line, 3);
	assert_int_equal(dagrun_diags_get(d, 0)->column, 49);
	assert_true(((const struct dr_api *)wf->tasks[0].spec)->insecure);
	dagrun_workflow_free(wf);
	dagrun_diags_free(d);
}

/* ---- rejections: keys and types --------------------------------------------------- */

static void unknown_keys_are_rejected_with_a_hint(void **state)
{
	(void)state;
	expect_err(HEAD L("  - id: a") L("    comand: x"), 4, 5,
		   "unknown key 'comand' in task; did you mean 'command'?");
	expect_err(L("nmae: t") L("name: t") L("tasks: [{id: a, command: x}]"), 1, 1,
		   "unknown key 'nmae' in workflow; did you mean 'name'?");
	expect_err(HEAD L("  - id: a") L("    command: x") L("    retry: {maxAttempt: 2}"), 5, 13,
		   "unknown key 'maxAttempt' in retry; did you mean 'maxAttempts'?");
	expect_err(HEAD L("  - id: a") L("    api: {url: \"http://x\", metod: GET}"), 4, 28,
		   "unknown key 'metod' in api; did you mean 'method'?");
	expect_err(HEAD L("  - {id: a, command: x}") L("  - {id: b, command: x, dependencies: [{task: a}]}"),
		   4, 41, "unknown key 'task' in dependency");
	expect_err(HEAD L("  - {id: a, command: x, zzzzz: 1}"), 3, 25, "unknown key 'zzzzz' in task");
	expect_err(L("name: t") L("defaults: {env: {A: b}}") L("tasks: [{id: a, command: x}]"), 2, 12,
		   "unknown key 'env' in defaults");
}

static void wrong_types_are_rejected(void **state)
{
	(void)state;
	expect_err(HEAD L("  - id: a") L("    command: x") L("    priority: high"), 5, 15,
		   "'priority' must be an integer, got string");
	expect_err(HEAD L("  - {id: a, command: x, priority: 1.5}"), 3, 35,
		   "'priority' must be an integer, got number");
	expect_err(HEAD L("  - {id: a, command: x, priority: 1e3}"), 3, 35,
		   "'priority' must be an integer, got number");
	expect_err(HEAD L("  - {id: a, command: {x: 1}}"), 3, 22,
		   "'command' must be a string or a list of strings, got map");
	expect_err(HEAD L("  - {id: a, command: x, env: [A]}"), 3, 30, "'env' must be a map, got list");
	expect_err(HEAD L("  - {id: a, command: x, env: {A: [1]}}"), 3, 34,
		   "'env.A' must be a string, got list");
	expect_err(HEAD L("  - {id: a, command: x, description: ~}"), 3, 38,
		   "'description' must be a string, got null");
	expect_err(HEAD L("  - {id: a, prompt: p, model: m, stream: maybe}"), 3, 42,
		   "'stream' must be a boolean (true or false), got string");
	expect_err(L("name: t") L("tasks: {a: 1}"), 2, 8, "'tasks' must be a list of tasks, got map");
	expect_err(HEAD L("  - just a string"), 3, 5, "each item of 'tasks' must be a task map, got string");
	expect_err(L("name: t") L("variables: [1]") L("tasks: [{id: a, command: x}]"), 2, 12,
		   "'variables' must be a map, got list");
	expect_err(HEAD L("  - {id: a, command: x, dependencies: a}"), 3, 39,
		   "'dependencies' must be a list of task ids, got string");
	expect_err(HEAD L("  - {id: a, command: x, dependencies: [[b]]}"), 3, 40,
		   "'dependencies' must be a task id or a map {taskId, type, condition}, got list");
	expect_err(L("- a") L("- b"), 1, 1,
		   "a workflow must be a map with 'name' and 'tasks', got list");
	expect_err(HEAD L("  - {id: a, command: x, temperature: 1}"), 3, 25,
		   "'temperature' is only valid in an ai task");
	expect_err(L("name: t") L("tasks: [{id: a, command: x}]") L("? [a]") L(": 1"), 3, 3,
		   "keys must be strings, got list");
}

static void duplicate_keys_are_rejected(void **state)
{
	(void)state;
	expect_err(HEAD L("  - id: a") L("    command: x") L("    command: y"), 5, 5,
		   "duplicate key 'command' (first at line 4)");
	expect_err(L("name: t") L("name: u") L("tasks: [{id: a, command: x}]"), 2, 1,
		   "duplicate key 'name' (first at line 1)");
	expect_err(HEAD L("  - id: a") L("    command: x") L("    env:") L("      A: 1")
		   L("      B: 2") L("      A: 3"), 8, 7, "duplicate key 'A' (first at line 6)");
	expect_err(L("name: t") L("variables: {a: 1, b: {c: 1, c: 2}}") L("tasks: [{id: a, command: x}]"),
		   2, 29, "duplicate key 'c' (first at line 2)");
	expect_err(L("name: t") L("resources: {cpu: 1, cpu: 2}") L("tasks: [{id: a, command: x}]"),
		   2, 21, "duplicate key 'cpu' (first at line 2)");
}

static void many_duplicate_keys_are_found_by_sorting(void **state)
{
	(void)state;
	char y[2048];
	int n = snprintf(y, sizeof(y), "name: t\ntasks: [{id: a, command: x}]\nenv:\n");
	for (int i = 0; i < 20; i++)
		n += snprintf(y + n, sizeof(y) - (size_t)n, "  V%d: x\n", i);
	snprintf(y + n, sizeof(y) - (size_t)n, "  V7: again\n");
	assert_int_equal(expect_err(y, 24, 3, "duplicate key 'V7' (first at line 11)"), 1);
}

static void missing_required_keys_are_reported(void **state)
{
	(void)state;
	expect_err(L("tasks: [{id: a, command: x}]"), 1, 1, "missing required key 'name' in workflow");
	expect_err(L("name: t"), 1, 1, "missing required key 'tasks' in workflow");
	expect_err(HEAD L("  - command: x"), 3, 5, "missing required key 'id' in task");
	expect_err(HEAD L("  - id: a"), 3, 9,
		   "task 'a' has nothing to run: add 'command', 'script', 'api', 'webhook', 'prompt' or 'workflow'");
	expect_err(HEAD L("  - id: a") L("    prompt: hi"), 3, 9, "missing required key 'model' in ai task 'a'");
	expect_err(HEAD L("  - {id: a, type: ai, model: m}"), 3, 10,
		   "missing required key 'prompt' (or 'promptFile') in ai task 'a'");
	expect_err(HEAD L("  - {id: a, model: m}"), 3, 10,
		   "missing required key 'prompt' (or 'promptFile') in ai task 'a'");
	expect_err(HEAD L("  - id: a") L("    api: {method: GET}"), 4, 10, "missing required key 'url' in api");
	expect_err(HEAD L("  - id: a") L("    webhook: {event: e}"), 4, 14,
		   "missing required key 'url' in webhook");
	expect_err(HEAD L("  - {id: a, command: x}") L("  - {id: b, command: x, dependencies: [{type: blocking}]}"),
		   4, 40, "missing required key 'taskId' in dependency");
	expect_err(L("name: t") L("tasks: []"), 2, 8, "'tasks' must list at least one task");
	expect_err("", 1, 1, "the file is empty: a workflow needs 'name' and 'tasks'");
}

static void a_misspelled_required_key_is_reported_once(void **state)
{
	(void)state;
	assert_int_equal(expect_err(L("nmae: t") L("tasks: [{id: a, command: x}]"), 1, 1,
				    "unknown key 'nmae' in workflow; did you mean 'name'?"), 1);
	assert_int_equal(expect_err(HEAD L("  - {id: a, comand: x}"), 3, 13,
				    "unknown key 'comand' in task; did you mean 'command'?"), 1);
	assert_int_equal(expect_err(HEAD L("  - {ID: a, command: x}"), 3, 6,
				    "unknown key 'ID' in task; did you mean 'id'?"), 1);
	assert_int_equal(expect_err(HEAD L("  - {id: a, api: {ulr: \"http://x\"}}"), 3, 19,
				    "unknown key 'ulr' in api; did you mean 'url'?"), 1);
	/* Without a hint the missing key is still reported. */
	assert_int_equal(expect_err(HEAD L("  - {id: a, run: x}"), 3, 10,
				    "task 'a' has nothing to run: add 'command', 'script', "
				    "'api', 'webhook', 'prompt' or 'workflow'"), 2);
}

static void a_syntax_error_is_reported_first(void **state)
{
	(void)state;
	const char *y = HEAD L("  - {id: a, comand: x}") L("  - id: b") L("   command: x");
	dagrun_diags *d = dagrun_diags_new(0);
	dagrun_workflow *wf = NULL;
	assert_int_equal(dagrun_workflow_load_buffer("t.yaml", y, strlen(y), &wf, d), -EINVAL);
	assert_true(dagrun_diags_count(d) >= 2);
	assert_int_equal(dagrun_diags_get(d, 0)->line, 5);
	assert_non_null(strstr(dagrun_diags_get(d, 0)->message, "YAML syntax error"));
	dagrun_diags_free(d);
}

static void two_kinds_in_one_task_are_rejected(void **state)
{
	(void)state;
	expect_err(HEAD L("  - id: x") L("    command: a") L("    script: b"), 5, 5,
		   "task 'x' has both 'command' and 'script'");
	expect_err(HEAD L("  - script: b") L("    api: {url: \"http://x\"}") L("    id: x"), 4, 5,
		   "task 'x' has both 'script' and 'api'");
	expect_err(HEAD L("  - {id: x, webhook: {url: \"http://x\"}, prompt: p, model: m}"), 3, 41,
		   "task 'x' has both 'webhook' and 'prompt'");
	expect_err(HEAD L("  - {id: x, type: ai, model: m, prompt: p, command: c}"), 3, 44,
		   "task 'x' has both 'type: ai' and 'command'");
	expect_err(HEAD L("  - {id: x, type: standard, model: m, prompt: p}"), 3, 39,
		   "task 'x' has both 'type: standard' and 'prompt'");
	expect_err(HEAD L("  - {id: x, model: m, prompt: p, promptFile: f}"), 3, 34,
		   "task 'x' has both 'prompt' and 'promptFile'");
	expect_err(HEAD L("  - {id: x, command: c, interpreter: sh}"), 3, 25,
		   "'interpreter' is only valid with 'script'");
}

static void ids_and_names_are_checked(void **state)
{
	(void)state;
	expect_err(HEAD L("  - {id: a, command: x}") L("  - {id: b, command: x}") L("  - {id: a, command: y}"),
		   5, 10, "duplicate task id 'a' (first defined at line 3)");
	expect_err(HEAD L("  - {id: a, command: x}") L("onExit:") L("  - {id: a, command: y}"),
		   5, 10, "duplicate task id 'a' (first defined at line 3)");
	expect_err(HEAD L("  - {id: a b, command: x}"), 3, 10,
		   "invalid task id 'a b': use only letters, digits, '_' and '-'");
	expect_err(HEAD L("  - {id: \"\", command: x}"), 3, 10,
		   "'id' must not be empty");
	expect_err(L("name: a/b") L("tasks: [{id: a, command: x}]"), 1, 7,
		   "invalid workflow name 'a/b': use only letters, digits, '_', '.' and '-'");
}

/* ---- rejections: values ------------------------------------------------------------ */

static void invalid_durations_are_rejected(void **state)
{
	(void)state;
	expect_err(HEAD L("  - {id: a, command: x, timeout: 5x}"), 3, 34,
		   "invalid duration '5x' for 'timeout': unknown unit (use ms, s, m, h or d)");
	expect_err(HEAD L("  - {id: a, command: x, timeout: -5}"), 3, 34,
		   "'timeout' must not be negative, got -5");
	expect_err(HEAD L("  - {id: a, command: x, timeout: -5s}"), 3, 34,
		   "invalid duration '-5s' for 'timeout': durations cannot be negative");
	expect_err(HEAD L("  - {id: a, command: x, timeout: 0s}"), 3, 34,
		   "'timeout' must be positive, got 0s");
	expect_err(HEAD L("  - {id: a, command: x, timeout: 169h}"), 3, 34,
		   "'timeout' is 169h, more than the limit of 168h");
	expect_err(HEAD L("  - {id: a, command: x, timeout: 99999999999999999999h}"), 3, 34,
		   "invalid duration '99999999999999999999h' for 'timeout': too large");
	expect_err(HEAD L("  - {id: a, command: x, retry: {maxDelay: 25h}}"), 3, 43,
		   "'maxDelay' is 25h, more than the limit of 24h");
	expect_err(HEAD L("  - {id: a, command: x, killGrace: true}"), 3, 36,
		   "'killGrace' must be a duration (e.g. 30s, 5m, 1m30s), got boolean");
	expect_err(HEAD L("  - {id: a, api: {url: \"http://x\", connectTimeout: 0}}"), 3, 52,
		   "'connectTimeout' must be positive, got 0");
	expect_err(HEAD L("  - {id: a, command: x, retry: {initialDelay: 10s, maxDelay: 5s}}"), 3, 33,
		   "'initialDelay' is greater than 'maxDelay'");
}

static void numbers_out_of_range_are_rejected(void **state)
{
	(void)state;
	expect_err(L("name: t") L("maxParallel: 0") L("tasks: [{id: a, command: x}]"), 2, 14,
		   "'maxParallel' must be positive, got 0");
	expect_err(L("name: t") L("maxParallel: 100001") L("tasks: [{id: a, command: x}]"), 2, 14,
		   "'maxParallel' must be at most 100000, got 100001");
	expect_err(HEAD L("  - {id: a, command: x, retry: {maxAttempts: 101}}"), 3, 46,
		   "'maxAttempts' must be at most 100, got 101");
	expect_err(HEAD L("  - {id: a, command: x, retry: {backoffFactor: 0.5}}"), 3, 48,
		   "'backoffFactor' must be between 1 and 1000, got 0.5");
	expect_err(HEAD L("  - {id: a, command: x, retry: {permanentExitCodes: [1, 256]}}"), 3, 57,
		   "'permanentExitCodes' must be at most 255, got 256");
	expect_err(HEAD L("  - {id: a, command: x, priority: 99999999999}"), 3, 35,
		   "'priority' must be at most 2147483647, got 99999999999");
	expect_err(HEAD L("  - {id: a, command: x, priority: 99999999999999999999}"), 3, 35,
		   "'priority' is out of range");
	expect_err(HEAD L("  - {id: a, api: {url: \"http://x\", expectStatus: 99}}"), 3, 50,
		   "'expectStatus' must be at least 100, got 99");
	expect_err(HEAD L("  - {id: a, api: {url: \"http://x\", expectStatus: []}}"), 3, 36,
		   "'expectStatus' must not be empty");
	expect_err(HEAD L("  - {id: a, model: m, prompt: p, temperature: 2.5}"), 3, 47,
		   "'temperature' must be between 0 and 2, got 2.5");
	expect_err(HEAD L("  - {id: a, model: m, prompt: p, maxTokens: 0}"), 3, 45,
		   "'maxTokens' must be positive, got 0");
}

static void invalid_enums_are_rejected_with_a_hint(void **state)
{
	(void)state;
	expect_err(HEAD L("  - {id: a, command: x, retry: {jitter: ful}}"), 3, 41,
		   "invalid 'jitter' value 'ful' (expected full, none, equal or decorrelated); "
		   "did you mean 'full'?");
	expect_err(HEAD L("  - {id: a, api: {url: \"http://x\", method: get}}"), 3, 44,
		   "invalid 'method' value 'get' (expected GET, POST, PUT, PATCH, DELETE, HEAD or "
		   "OPTIONS); did you mean 'GET'?");
	expect_err(HEAD L("  - {id: a, model: m, prompt: p, responseFormat: xml}"), 3, 50,
		   "invalid 'responseFormat' value 'xml' (expected text or json)");
	expect_err(HEAD L("  - {id: a, type: agent, model: m, prompt: p}"), 3, 19,
		   "invalid 'type' value 'agent' (expected standard or ai)");
	expect_err(HEAD L("  - {id: a, command: x}") L("  - {id: b, command: x, dependencies: [{taskId: a, type: soft}]}"),
		   4, 58, "invalid 'type' value 'soft' (expected blocking or non-blocking)");
	expect_err(HEAD L("  - {id: a, command: x, retry: {retryOn: [dependency]}}"), 3, 43,
		   "'dependency' failures are never retried (the task does not run)");
	expect_err(HEAD L("  - {id: a, command: x, retry: {retryOn: [transient, transiant]}}"), 3, 54,
		   "invalid 'retryOn' value 'transiant' (expected transient, permanent or resource); "
		   "did you mean 'transient'?");
}

static void names_urls_and_scripts_are_checked(void **state)
{
	(void)state;
	expect_err(HEAD L("  - {id: a, command: x, env: {A-B: x}}"), 3, 31,
		   "invalid environment variable name 'A-B' (use letters, digits and '_', not "
		   "starting with a digit)");
	expect_err(HEAD L("  - {id: a, api: {url: \"http://x\", headers: {\"a b\": x}}}"), 3, 47,
		   "invalid HTTP header name 'a b'");
	expect_err(HEAD L("  - {id: a, api: {url: ftp://x}}"), 3, 24,
		   "'url' must start with http:// or https://, got 'ftp://x'");
	/* the executors' rule (util/url.h): the scheme in any case, then // */
	expect_err(HEAD L("  - {id: a, api: {url: \"http:/x\"}}"), 3, 25,
		   "'url' must start with http:// or https://, got 'http:/x'");
	expect_err(HEAD L("  - {id: a, model: m, prompt: p, baseUrl: \"ftp://x\"}"), 3, 44,
		   "'baseUrl' must start with http:// or https://, got 'ftp://x'");
	dagrun_workflow_free(load_ok(HEAD L("  - {id: a, webhook: {url: \"HTTPS://x\"}}")));
	expect_err(HEAD L("  - {id: a, model: m, prompt: p, apiKeyEnv: \"A B\"}"), 3, 46,
		   "invalid environment variable name 'A B' in 'apiKeyEnv'");
	expect_err(HEAD L("  - id: a") L("    interpreter: python3") L("    script: \"print({{ x }})\""),
		   5, 14, "templates are not allowed in a script run by 'python3' (only POSIX shell "
		   "scripts are escaped safely); pass values through 'env'");
	expect_err(HEAD L("  - {id: a, command: []}"), 3, 22, "'command' must not be an empty list");
	expect_err(HEAD L("  - {id: a, command: \"\"}"), 3, 22, "'command' must not be empty");
}

/* ---- rejections: resources and dependencies ---------------------------------------- */

static void resource_requests_are_checked_against_pools(void **state)
{
	(void)state;
	expect_err(L("name: t") L("resources: {cpu: 2}") L("tasks:")
		   L("  - {id: a, command: x, resources: {cpu: 3}}"), 4, 37,
		   "task 'a' requests 3 units of 'cpu', more than its capacity of 2");
	expect_err(L("name: t") L("resources: {cpu: 2}") L("tasks:")
		   L("  - {id: a, command: x, resources: {cpux: 1}}"), 4, 37,
		   "unknown resource pool 'cpux'; did you mean 'cpu'?");
	expect_err(HEAD L("  - {id: a, command: x, resources: {gpu: 1}}"), 3, 37,
		   "unknown resource pool 'gpu' (the workflow declares no top-level 'resources')");
	expect_err(L("name: t") L("resources: {cpu: 0}") L("tasks: [{id: a, command: x}]"), 2, 18,
		   "'cpu' must be positive, got 0");
	expect_err(L("name: t") L("resources: {cpu: 1000001}") L("tasks: [{id: a, command: x}]"), 2, 18,
		   "'cpu' must be at most 1000000, got 1000001");
	expect_err(L("name: t") L("resources: {cpu: 1}") L("defaults: {resources: {cpu: 2}}")
		   L("tasks: [{id: a, command: x}]"), 3, 24,
		   "defaults requests 2 units of 'cpu', more than its capacity of 1");
	expect_err(HEAD L("  - {id: a, command: x, resources: {cpu: -1}}"), 3, 42,
		   "'cpu' must be positive, got -1");
}

static void bad_dependencies_are_reported(void **state)
{
	(void)state;
	expect_err(HEAD L("  - {id: build, command: x}") L("  - {id: b, command: x, dependencies: [bild]}"),
		   4, 40, "task 'b' depends on unknown task 'bild'; did you mean 'build'?");
	expect_err(HEAD L("  - {id: a, command: x, dependencies: [zzz]}"), 3, 40,
		   "task 'a' depends on unknown task 'zzz'");
	expect_err(HEAD L("  - {id: a, command: x, dependencies: [a]}"), 3, 40,
		   "task 'a' depends on itself");
	expect_err(HEAD L("  - {id: a, command: x}") L("  - {id: b, command: x, dependencies: [a, {taskId: a}]}"),
		   4, 52, "duplicate dependency 'a' (already listed at line 4)");
	expect_err(HEAD L("  - {id: a, command: x}") L("onExit:") L("  - {id: h, command: x, dependencies: [a]}"),
		   5, 40, "hook task 'h' (onExit) cannot depend on 'a' of 'tasks' (hooks run after "
		   "them and may read tasks.a without a dependency)");
	expect_err(HEAD L("  - {id: a, command: x, dependencies: [h]}") L("onSuccess:") L("  - {id: h, command: x}"),
		   3, 40, "task 'a' cannot depend on hook task 'h' (onSuccess)");
	expect_err(HEAD L("  - {id: a, command: x, dependencies: [b]}") L("  - {id: b, command: x, dependencies: [a]}"),
		   3, 10, "dependency cycle: a -> b -> a");
}

static void many_duplicate_dependencies_are_found_by_sorting(void **state)
{
	(void)state;
	char y[4096];
	int n = snprintf(y, sizeof(y), "name: t\ntasks:\n");
	for (int i = 0; i < 20; i++)
		n += snprintf(y + n, sizeof(y) - (size_t)n, "  - {id: t%d, command: x}\n", i);
	n += snprintf(y + n, sizeof(y) - (size_t)n, "  - id: z\n    command: x\n    dependencies:\n");
	for (int i = 0; i < 20; i++)
		n += snprintf(y + n, sizeof(y) - (size_t)n, "      - t%d\n", i);
	snprintf(y + n, sizeof(y) - (size_t)n, "      - t3\n");
	assert_int_equal(expect_err(y, 46, 9, "duplicate dependency 't3' (already listed at line 29)"), 1);
}

/* ---- YAML-level rejections and limits ---------------------------------------------------- */

static void yaml_syntax_errors_stop_with_libyaml_position(void **state)
{
	(void)state;
	assert_int_equal(expect_err(L("name: t") L("tasks: [{id: a, command: x}") L("x: 1"), 3, 1,
				    "YAML syntax error: did not find expected ',' or ']' "
				    "(while parsing a flow sequence at line 2)"), 1);
	expect_err(L("name: t") L("  bad: indent"), 2, 6,
		   "YAML syntax error: mapping values are not allowed in this context");
	expect_err(L("name: \"t") , 2, 1,
		   "YAML syntax error: found unexpected end of stream (while scanning a quoted "
		   "scalar at line 1)");
	expect_err("name: t\x01\n", 1, 8, "control characters are not allowed (byte 0x01 at offset 7)");
	expect_err("name: \xff\n", 1, 7, "invalid leading UTF-8 octet (byte 0xFF at offset 6)");
}

static void aliases_are_rejected(void **state)
{
	(void)state;
	expect_err(L("name: t") L("x: &a [1]") L("tasks: [{id: a, command: x}]"), 2, 1,
		   "unknown key 'x' in workflow");
	expect_err(L("name: t") L("variables: {a: &x [1, 2], b: *x}") L("tasks: [{id: a, command: x}]"),
		   2, 30, "aliases are not supported (anchor 'x'); write the value out");
	expect_err(L("name: &n t") L("tasks: [{id: a, command: *n}]"), 2, 26,
		   "aliases are not supported (anchor 'n'); write the value out");
}

static void billion_laughs_cannot_blow_up(void **state)
{
	(void)state;
	const char *y =
		L("name: t")
		L("variables:")
		L("  a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]")
		L("  b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]")
		L("  c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]")
		L("  d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]")
		L("tasks: [{id: a, command: x}]");
	assert_int_equal(expect_err(y, 4, 10, "aliases are not supported (anchor 'a'); write the value out"), 27);
}

static void a_second_document_is_rejected(void **state)
{
	(void)state;
	expect_err(L("name: t") L("tasks: [{id: a, command: x}]") L("---") L("name: u"), 3, 1,
		   "a workflow file holds one YAML document; this is a second one");
}

static void nesting_deeper_than_the_limit_is_rejected(void **state)
{
	(void)state;
	char y[512];
	int n = snprintf(y, sizeof(y), "name: t\ntasks: [{id: a, command: x}]\nvariables: ");
	for (unsigned i = 0; i < DAGRUN_MAX_DEPTH; i++)
		y[n++] = '[';
	y[n] = '\0';
	expect_err(y, 3, 12 + DAGRUN_MAX_DEPTH - 1, "nesting is deeper than the limit of 64 levels");
}

static void a_string_longer_than_the_limit_is_rejected(void **state)
{
	(void)state;
	static const char pre[] = "name: t\ndescription: ", post[] = "\ntasks: [{id: a, command: x}]\n";
	size_t big = DAGRUN_MAX_STRING_BYTES + 1, n = sizeof(pre) - 1;
	char *y = calloc(1, n + big + sizeof(post));
	if (!y)
		fail();
	memcpy(y, pre, n);
	for (size_t i = 0; i < big; i++)
		y[n + i] = 'x';
	memcpy(y + n + big, post, sizeof(post));
	expect_err(y, 2, 14, "string is longer than the limit of 1024 KiB");
	free(y);
}

static void more_dependencies_than_the_limit_are_rejected(void **state)
{
	(void)state;
	size_t cap = (size_t)DAGRUN_MAX_DEPS * 4 + 256;
	char *y = malloc(cap);
	if (!y)
		fail();
	size_t n = (size_t)sprintf(y, "name: t\ntasks:\n  - {id: a, command: x}\n  - {id: b, command: x, dependencies: [");
	for (unsigned i = 0; i <= DAGRUN_MAX_DEPS; i++) {
		memcpy(y + n, i ? ",a" : "a", i ? 2 : 1);
		n += i ? 2 : 1;
	}
	strcpy(y + n, "]}\n");
	/* The 100001st item is at column 40 + 2 * 100000. */
	size_t errors = expect_err(y, 4, 40 + 2 * DAGRUN_MAX_DEPS,
				   "too many dependencies (the limit is 100000 per task)");
	assert_true(errors <= 51); /* and duplicates of 'a' until the diags are full */
	free(y);
}

static void a_buffer_larger_than_the_file_limit_is_rejected(void **state)
{
	(void)state;
	dagrun_diags *d = dagrun_diags_new(0);
	dagrun_workflow *wf = NULL;
	assert_int_equal(dagrun_workflow_load_buffer("t.yaml", "x", DAGRUN_MAX_FILE_BYTES + 1, &wf, d),
			 -EINVAL);
	assert_null(wf);
	assert_string_equal(dagrun_diags_get(d, 0)->message, "file is larger than the limit of 512 MiB");
	assert_int_equal(dagrun_diags_get(d, 0)->line, 0);
	dagrun_diags_free(d);
}

/* ---- files, errors together, the diagnostics cap --------------------------------------------- */

static void a_missing_file_is_an_io_error(void **state)
{
	(void)state;
	dagrun_diags *d = dagrun_diags_new(0);
	dagrun_workflow *wf = NULL;
	assert_int_equal(dagrun_workflow_load("/nonexistent/w.yaml", &wf, d), -ENOENT);
	assert_null(wf);
	assert_int_equal(dagrun_diags_count(d), 1);
	assert_string_equal(dagrun_diags_get(d, 0)->message,
			    "cannot open /nonexistent/w.yaml: No such file or directory");
	assert_int_equal(dagrun_diags_get(d, 0)->line, 0);
	dagrun_diags_clear(d);
	assert_int_equal(dagrun_workflow_load("/", &wf, d), -EISDIR);
	assert_string_equal(dagrun_diags_get(d, 0)->message, "cannot read /: Is a directory");
	dagrun_diags_free(d);
}

static void a_file_loads_and_knows_its_directory(void **state)
{
	(void)state;
	char dir[] = "/tmp/dagrun-load-XXXXXX", path[64];
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/w.yaml", dir);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(full_yaml, f);
	fclose(f);
	char pdir[80], pfile[96];
	snprintf(pdir, sizeof(pdir), "%s/prompts", dir);
	snprintf(pfile, sizeof(pfile), "%s/bye.md", pdir);
	mkdir(pdir, 0755);
	f = fopen(pfile, "w");
	assert_non_null(f);
	fputs("Say goodbye.\n", f);
	fclose(f);
	dagrun_diags *d = dagrun_diags_new(0);
	dagrun_workflow *wf = NULL;
	assert_int_equal(dagrun_workflow_load(path, &wf, d), 0);
	unlink(pfile);
	rmdir(pdir);
	assert_string_equal(wf->path, path);
	assert_string_equal(wf->dir, dir);
	assert_int_equal(wf->n_tasks, 9);
	dagrun_workflow_free(wf);
	/* Errors in a file carry its name and position. */
	f = fopen(path, "w");
	fputs("name: t\ntasks: [{id: a, comand: x}]\n", f);
	fclose(f);
	assert_int_equal(dagrun_workflow_load(path, &wf, d), -EINVAL);
	assert_string_equal(dagrun_diags_get(d, 0)->file, path);
	assert_int_equal(dagrun_diags_get(d, 0)->line, 2);
	dagrun_diags_free(d);
	remove(path);
	rmdir(dir);
}

static void all_errors_are_reported_in_one_pass_in_file_order(void **state)
{
	(void)state;
	const char *y = HEAD
		L("  - {id: a, command: x, dependencies: [nope]}")   /* 3: unknown dep */
		L("  - {id: b, comand: x}")                           /* 4: unknown key only */
		L("  - {id: c, command: x, priority: x}")             /* 5: type */
		L("  - {id: c, command: x, timeout: 0}");             /* 6: dup id + zero */
	dagrun_diags *d = dagrun_diags_new(0);
	dagrun_workflow *wf = NULL;
	assert_int_equal(dagrun_workflow_load_buffer("t.yaml", y, strlen(y), &wf, d), -EINVAL);
	assert_int_equal(dagrun_diags_errors(d), 5);
	unsigned last = 0;
	for (size_t i = 0; i < dagrun_diags_count(d); i++) {
		assert_true(dagrun_diags_get(d, i)->line >= last);
		last = dagrun_diags_get(d, i)->line;
	}
	assert_int_equal(dagrun_diags_get(d, 0)->line, 3);
	assert_string_equal(dagrun_diags_get(d, 0)->message, "task 'a' depends on unknown task 'nope'");
	dagrun_diags_free(d);
}

static void loading_stops_once_the_diagnostics_list_is_full(void **state)
{
	(void)state;
	char y[8192];
	int n = snprintf(y, sizeof(y), "name: t\ntasks:\n");
	for (int i = 0; i < 100; i++)
		n += snprintf(y + n, sizeof(y) - (size_t)n, "  - {id: t%d, comand: x}\n", i);
	dagrun_diags *d = dagrun_diags_new(3);
	dagrun_workflow *wf = NULL;
	assert_int_equal(dagrun_workflow_load_buffer("t.yaml", y, strlen(y), &wf, d), -EINVAL);
	assert_int_equal(dagrun_diags_count(d), 3);
	assert_true(dagrun_diags_errors(d) < 10);
	dagrun_diags_free(d);
}

static void a_null_diags_list_is_allowed(void **state)
{
	(void)state;
	const char *bad = "name: t\n";
	dagrun_workflow *wf = NULL;
	assert_int_equal(dagrun_workflow_load_buffer(NULL, bad, strlen(bad), &wf, NULL), -EINVAL);
	assert_int_equal(dagrun_workflow_load_buffer(NULL, full_yaml, strlen(full_yaml), &wf, NULL), 0);
	assert_string_equal(wf->path, "<input>");
	dagrun_workflow_free(wf);
}

/* ---- NUL characters ---------------------------------------------------------- */

#define NUL_MSG(key) "NUL character (\\0) in '" key "': a process, a path, a URL " \
	"or a header cannot hold one (only values sent as JSON may)"

static void a_nul_where_it_cannot_be_passed_on_is_an_error_at_its_place(void **state)
{
	(void)state;
	/* A "\0" escape (or \x00, \u0000) used to cut the string silently. */
	expect_err(HEAD L("  - {id: a, command: \"echo a\\0b\"}"), 3, 23, NUL_MSG("command"));
	expect_err(HEAD L("  - {id: a, command: [echo, \"x\\x00y\"]}"), 3, 30, NUL_MSG("command"));
	expect_err(HEAD L("  - {id: a, script: \"echo \\u0000\"}"), 3, 22, NUL_MSG("script"));
	expect_err(HEAD L("  - {id: a, script: x, interpreter: \"sh\\0\"}"), 3, 38,
		   NUL_MSG("interpreter"));
	expect_err(HEAD L("  - {id: a, command: x, env: {X: \"1\\02\"}}"), 3, 35, NUL_MSG("env"));
	expect_err(HEAD L("  - {id: a, command: x, env: {\"X\\0Y\": v}}"), 3, 32,
		   "NUL character (\\0) in a name in 'env'");
	expect_err(L("name: t") L("env: {X: \"\\0\"}") L("tasks: [{id: a, command: x}]"), 2, 11,
		   NUL_MSG("env"));
	expect_err(HEAD L("  - {id: a, command: x, workdir: \"/tmp\\0\"}"), 3, 35, NUL_MSG("workdir"));
	expect_err(HEAD L("  - {id: a, api: {url: \"http://x/\\0\"}}"), 3, 25, NUL_MSG("url"));
	expect_err(HEAD L("  - {id: a, api: {url: \"http://x/\", headers: {Z: \"1\\0\"}}}"), 3, 51,
		   NUL_MSG("headers"));
	expect_err(HEAD L("  - {id: a, api: {url: \"http://x/\", headers: {\"X\\0\": v}}}"), 3, 48,
		   "NUL character (\\0) in a name in 'headers'");
	expect_err(HEAD L("  - {id: a, webhook: {url: \"http://x/\", event: \"e\\0\"}}"), 3, 49,
		   NUL_MSG("event"));
	expect_err(HEAD L("  - {id: a, model: m, prompt: p, promptFile: \"f\\0\"}"), 3, 47,
		   NUL_MSG("promptFile"));
	expect_err(HEAD L("  - {id: a, model: m, prompt: p, baseUrl: \"http://x\\0\"}"), 3, 44,
		   NUL_MSG("baseUrl"));
	expect_err(HEAD L("  - {id: a, command: x, description: \"d\\0\"}"), 3, 39,
		   NUL_MSG("description"));
	expect_err(HEAD L("  - {id: a, command: x}") L("  - {id: b, command: x, dependencies: [\"a\\0\"]}"),
		   4, 41, NUL_MSG("dependencies"));
	expect_err(HEAD L("  - {id: a, command: x, \"time\\0out\": 1s}"), 3, 25,
		   "NUL character (\\0) in a key of task");
	expect_err(L("name: t") L("resources: {\"p\\0\": 1}") L("tasks: [{id: a, command: x}]"), 2, 14,
		   "NUL character (\\0) in a pool name in 'resources'");
}

static void a_nul_in_a_value_sent_as_json_is_kept(void **state)
{
	(void)state;
	struct dagrun_workflow *wf = load_ok(
		L("name: t") L("variables: {v: \"a\\0b\"}") L("tasks:")
		L("  - {id: a, api: {url: \"http://x/\", method: POST, body: {k: \"v\\0w\"}}}")
		L("  - {id: b, webhook: {url: \"http://x/\", payload: [\"p\\0\"]}}")
		L("  - {id: c, model: \"m\\0\", system: \"s\\0\", prompt: \"p\\0q\", context: {k: \"\\0\"}}"));
	const struct dr_value *v = wf->variables;
	assert_int_equal(v->items[0].text.len, 3);
	assert_memory_equal(v->items[0].text.s, "a\0b", 3);
	const struct dr_value *body = ((const struct dr_api *)task(wf, "a")->spec)->body;
	assert_int_equal(body->items[0].text.len, 3);
	assert_memory_equal(body->items[0].text.s, "v\0w", 3);
	assert_int_equal(((const struct dr_webhook *)task(wf, "b")->spec)->payload->items[0].text.len, 2);
	const struct dr_ai *ai = ((const struct dr_ai *)task(wf, "c")->spec);
	assert_int_equal(ai->model.len, 2);
	assert_int_equal(ai->system.len, 2);
	assert_int_equal(ai->prompt.len, 3);
	assert_memory_equal(ai->prompt.s, "p\0q", 3);
	assert_int_equal(ai->context->items[0].text.len, 1);
	dagrun_workflow_free(wf);
}

/* ---- kinds are handed down: a kind the loader never heard of ------------------- */

struct echo_spec {
	struct dr_text text;
	int64_t times;
};

static void echo_key(struct loader *ld, void *obj)
{
	read_nonempty(ld, &((struct echo_spec *)obj)->text);
}

static void echo_times(struct loader *ld, void *obj)
{
	read_int(ld, 1, 9, &((struct echo_spec *)obj)->times);
}

static void echo_init(void *spec)
{
	((struct echo_spec *)spec)->times = 1;
}

static int echo_each_text(const struct dagrun_workflow *wf, uint32_t t, dr_text_fn fn, void *ud)
{
	const struct echo_spec *e = wf->tasks[t].spec;
	return fn(ud, t, &e->text, DR_USE_PLAIN);
}

static int count_text(void *ud, uint32_t t, const struct dr_text *x, enum dr_text_use use)
{
	(void)t;
	(void)x;
	(void)use;
	++*(int *)ud;
	return 0;
}

static const struct keydef echo_keys[] = {KEY("echo", echo_key), KEY("times", echo_times)};

static const struct load_kind echo_kind = {
	.model = {"echo", 0, echo_each_text, NULL, NULL},
	.keys = echo_keys, .n_keys = 2, .n_select = 1, .only_in = "with 'echo'",
	.spec_size = sizeof(struct echo_spec), .spec_init = echo_init,
};

static int load_with_kinds(const char *yaml, struct dagrun_workflow **wf, dagrun_diags *d)
{
	unsigned n;
	const struct kind *const *all = kinds_table(&n);
	const struct load_kind *v[] = {&all[0]->load, &echo_kind};   /* command, echo */
	struct load_opts o = {v, 2};
	return load_buffer("t.yaml", yaml, strlen(yaml), &o, wf, NULL, d);
}

static void a_kind_handed_down_is_read_checked_and_walked(void **state)
{
	(void)state;
	dagrun_diags *d = dagrun_diags_new(0);
	struct dagrun_workflow *wf = NULL;
	assert_int_equal(load_with_kinds(HEAD L("  - {id: a, echo: hi, times: 3}")
					 L("  - {id: b, command: \"true\", dependencies: [a]}"), &wf, d), 0);
	assert_int_equal(wf->n_kinds, 2);
	const struct dr_task *a = &wf->tasks[0];
	assert_string_equal(wf->kinds[a->kind]->name, "echo");
	assert_string_equal(dr_kind_name(wf, 0), "echo");
	const struct echo_spec *e = a->spec;
	assert_text(e->text, "hi", 3, 19);
	assert_int_equal(e->times, 3);
	int texts = 0;
	assert_int_equal(dr_task_each_text(wf, 0, count_text, &texts), 0);
	assert_int_equal(texts, 1);
	assert_string_equal(dr_kind_name(wf, 1), "command");
	assert_null(wf->graph);            /* the loader builds none */
	dr_workflow_free(wf);
	/* its keys are the task's keys: conflicts, misplaced keys, suggestions */
	dagrun_diags_clear(d);
	wf = (void *)1;
	assert_int_equal(load_with_kinds(HEAD L("  - {id: a, echo: hi, command: x}")
					 L("  - {id: b, times: 2, command: y}")
					 L("  - {id: c, ecko: hi}")
					 L("  - {id: e, script: s}"), &wf, d), -EINVAL);
	assert_ptr_equal(wf, (void *)1);
	const char *want[][2] = {
		{"3:23", "task 'a' has both 'echo' and 'command'"},
		{"4:13", "'times' is only valid with 'echo'"},
		{"5:13", "unknown key 'ecko' in task; did you mean 'echo'?"},
		{"6:13", "unknown key 'script' in task"},
		{"6:10", "task 'e' has nothing to run: add 'command' or 'echo'"},
	};
	for (size_t w = 0; w < sizeof(want) / sizeof(want[0]); w++) {
		bool found = false;
		for (size_t i = 0; i < dagrun_diags_count(d) && !found; i++) {
			const dagrun_diag *g = dagrun_diags_get(d, i);
			char at[32];
			snprintf(at, sizeof(at), "%u:%u", g->line, g->column);
			found = !strcmp(at, want[w][0]) && !strcmp(g->message, want[w][1]);
		}
		if (!found) {
			print_diags(d);
			fail_msg("no error %s: %s", want[w][0], want[w][1]);
		}
	}
	assert_int_equal(dagrun_diags_errors(d), 5);
	dagrun_diags_free(d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(a_kind_handed_down_is_read_checked_and_walked),
		cmocka_unit_test(top_level_keys_land_in_the_model),
		cmocka_unit_test(tasks_are_ordered_main_then_hooks),
		cmocka_unit_test(command_and_script_tasks_keep_their_text),
		cmocka_unit_test(task_options_land_in_the_model),
		cmocka_unit_test(api_and_webhook_keys_land_in_the_model),
		cmocka_unit_test(ai_keys_land_in_the_model_and_type_is_inferred),
		cmocka_unit_test(dependencies_are_resolved_to_task_indexes),
		cmocka_unit_test(defaults_apply_to_tasks_that_do_not_set_the_key),
		cmocka_unit_test(builtin_defaults_without_a_defaults_section),
		cmocka_unit_test(durations_accept_units_and_bare_milliseconds),
		cmocka_unit_test(json_is_accepted),
		cmocka_unit_test(hook_lists_may_come_first_and_depend_on_hooks),
		cmocka_unit_test(anchors_without_aliases_and_tags_are_fine),
		cmocka_unit_test(only_api_webhook_and_ai_tasks_still_load),
		cmocka_unit_test(posix_shell_scripts_may_hold_templates),
		cmocka_unit_test(insecure_api_loads_with_a_warning),
		cmocka_unit_test(unknown_keys_are_rejected_with_a_hint),
		cmocka_unit_test(wrong_types_are_rejected),
		cmocka_unit_test(duplicate_keys_are_rejected),
		cmocka_unit_test(many_duplicate_keys_are_found_by_sorting),
		cmocka_unit_test(missing_required_keys_are_reported),
		cmocka_unit_test(a_misspelled_required_key_is_reported_once),
		cmocka_unit_test(a_syntax_error_is_reported_first),
		cmocka_unit_test(two_kinds_in_one_task_are_rejected),
		cmocka_unit_test(ids_and_names_are_checked),
		cmocka_unit_test(invalid_durations_are_rejected),
		cmocka_unit_test(numbers_out_of_range_are_rejected),
		cmocka_unit_test(invalid_enums_are_rejected_with_a_hint),
		cmocka_unit_test(names_urls_and_scripts_are_checked),
		cmocka_unit_test(resource_requests_are_checked_against_pools),
		cmocka_unit_test(bad_dependencies_are_reported),
		cmocka_unit_test(many_duplicate_dependencies_are_found_by_sorting),
		cmocka_unit_test(yaml_syntax_errors_stop_with_libyaml_position),
		cmocka_unit_test(aliases_are_rejected),
		cmocka_unit_test(billion_laughs_cannot_blow_up),
		cmocka_unit_test(a_second_document_is_rejected),
		cmocka_unit_test(nesting_deeper_than_the_limit_is_rejected),
		cmocka_unit_test(a_string_longer_than_the_limit_is_rejected),
		cmocka_unit_test(more_dependencies_than_the_limit_are_rejected),
		cmocka_unit_test(a_buffer_larger_than_the_file_limit_is_rejected),
		cmocka_unit_test(a_missing_file_is_an_io_error),
		cmocka_unit_test(a_file_loads_and_knows_its_directory),
		cmocka_unit_test(all_errors_are_reported_in_one_pass_in_file_order),
		cmocka_unit_test(loading_stops_once_the_diagnostics_list_is_full),
		cmocka_unit_test(a_null_diags_list_is_allowed),
		cmocka_unit_test(a_nul_where_it_cannot_be_passed_on_is_an_error_at_its_place),
		cmocka_unit_test(a_nul_in_a_value_sent_as_json_is_kept),
	};
	/* full_yaml's hook names a promptFile relative to the workflow's
	 * directory ("." for a buffer named t.yaml): validate checks it exists. */
	mkdir("prompts", 0755);
	FILE *pf = fopen("prompts/bye.md", "w");
	if (pf) {
		fputs("Say goodbye.\n", pf);
		fclose(pf);
	}
	int failed = cmocka_run_group_tests(tests, NULL, NULL);
	unlink("prompts/bye.md");
	rmdir("prompts");
	return failed;
}
