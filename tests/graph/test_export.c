/* test_export.c: dagrun_graph_write: DOT rendered by Graphviz, Mermaid
 * against a snapshot, JSON parsed back with jansson; escaping, long labels,
 * write errors. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>

#include "graph/graph.h"
#include "wfbuild.h"

/* A condition with everything that needs escaping somewhere. */
#define NASTY "status == \"failed\" and output ~= 'a\\b'\n or #x | y <z> & `q`"

/* build-1.0 <- test.unit <-(non-blocking, NASTY)- deploy <- summarize;
 * build-1.0 <-(exitCode == 0)- deploy; one hook of each kind. */
static struct dagrun_workflow *sample(const char *extra_cond)
{
	struct wfb b;
	wfb_init(&b, "rel-notes");
	wfb_task(&b, "build-1.0", WFB_COMMAND, DR_HOOK_NONE);
	wfb_task(&b, "test.unit", WFB_SCRIPT, DR_HOOK_NONE);
	wfb_dep(&b, "build-1.0", DR_DEP_BLOCKING, NULL);
	wfb_task(&b, "deploy", WFB_API, DR_HOOK_NONE);
	wfb_dep(&b, "test.unit", DR_DEP_NON_BLOCKING, NASTY);
	wfb_dep(&b, "build-1.0", DR_DEP_BLOCKING, "exitCode == 0");
	wfb_task(&b, "summarize", WFB_AI, DR_HOOK_NONE);
	wfb_dep(&b, "deploy", DR_DEP_NON_BLOCKING, extra_cond);
	wfb_task(&b, "notify", WFB_WEBHOOK, DR_HOOK_SUCCESS);
	wfb_task(&b, "page", WFB_WEBHOOK, DR_HOOK_FAILURE);
	wfb_task(&b, "cleanup", WFB_COMMAND, DR_HOOK_EXIT);
	wfb_task(&b, "report", WFB_AI, DR_HOOK_EXIT);
	wfb_dep(&b, "cleanup", DR_DEP_BLOCKING, "status ~= \"skipped\"");
	struct dagrun_workflow *wf = wfb_finish(&b);
	wf->tasks[2].priority = -3;
	wf->tasks[3].priority = 10;
	assert_int_equal(graph_build(wf, NULL), 0);
	return wf;
}

/* wf written in fmt, as a malloc'd string. */
static char *capture(const struct dagrun_workflow *wf, enum dagrun_graph_format fmt,
		     size_t *len)
{
	char *s = NULL;
	size_t n = 0;
	FILE *f = open_memstream(&s, &n);
	assert_non_null(f);
	assert_int_equal(dagrun_graph_write(wf, fmt, f), 0);
	assert_int_equal(fclose(f), 0);
	if (len)
		*len = n;
	return s;
}

/* ---- DOT ------------------------------------------------------------------ */

/* Renders text with `dot -Tsvg`; expects success and nothing on stderr.
 * Returns 0, or -1 when Graphviz is not installed. */
static int render_dot(const char *text, size_t len)
{
	if (system("command -v dot >/dev/null 2>&1") != 0)
		return -1;
	char dir[] = "/tmp/dagrun-dot-XXXXXX";
	assert_non_null(mkdtemp(dir));
	char in[64], svg[80], err[80], cmd[300];
	snprintf(in, sizeof(in), "%s/g.dot", dir);
	snprintf(svg, sizeof(svg), "%s/g.svg", dir);
	snprintf(err, sizeof(err), "%s/err", dir);
	FILE *f = fopen(in, "w");
	assert_non_null(f);
	assert_int_equal(fwrite(text, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
	snprintf(cmd, sizeof(cmd), "dot -Tsvg '%s' -o '%s' 2>'%s'", in, svg, err);
	int status = system(cmd);
	struct stat st_err, st_svg;
	assert_int_equal(stat(err, &st_err), 0);
	if (st_err.st_size) {
		snprintf(cmd, sizeof(cmd), "cat '%s' >&2", err);
		(void)system(cmd);
	}
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_int_equal(st_err.st_size, 0);
	assert_int_equal(stat(svg, &st_svg), 0);
	assert_true(st_svg.st_size > 0);
	unlink(in);
	unlink(svg);
	unlink(err);
	rmdir(dir);
	return 0;
}

static void dot_renders_with_graphviz_and_escapes_conditions(void **state)
{
	(void)state;
	struct dagrun_workflow *wf = sample(NULL);
	size_t len;
	char *dot = capture(wf, DAGRUN_GRAPH_DOT, &len);
	assert_non_null(strstr(dot, "digraph \"rel-notes\" {\n"));
	assert_non_null(strstr(dot, "\t\"build-1.0\" [label=\"build-1.0\\n(command)\"];\n"));
	assert_non_null(strstr(dot, "\t\"test.unit\" [label=\"test.unit\\n(script)\"];\n"));
	assert_non_null(strstr(dot, "\t\"build-1.0\" -> \"test.unit\";\n"));
	assert_non_null(strstr(dot,
		"\t\"test.unit\" -> \"deploy\" [style=dashed, label=\"status == "
		"\\\"failed\\\" and output ~= 'a\\\\b'\\n or #x | y <z> & `q`\"];\n"));
	assert_non_null(strstr(dot, "\t\"build-1.0\" -> \"deploy\" [label=\"exitCode == 0\"];\n"));
	assert_non_null(strstr(dot, "\t\"deploy\" -> \"summarize\" [style=dashed];\n"));
	assert_non_null(strstr(dot, "\tsubgraph \"cluster_onSuccess\" {\n"
				    "\t\tlabel=\"onSuccess\";\n\t\tstyle=dashed;\n"
				    "\t\t\"notify\" [label=\"notify\\n(webhook)\"];\n\t}\n"));
	assert_non_null(strstr(dot, "\tsubgraph \"cluster_onExit\" {\n"
				    "\t\tlabel=\"onExit\";\n\t\tstyle=dashed;\n"
				    "\t\t\"cleanup\" [label=\"cleanup\\n(command)\"];\n"
				    "\t\t\"report\" [label=\"report\\n(ai)\"];\n\t}\n"));
	assert_non_null(strstr(dot, "cluster_onFailure"));
	if (render_dot(dot, len) < 0)
		skip();
	free(dot);
	dagrun_workflow_free(wf);
}

static void dot_shortens_long_labels_at_a_character_boundary(void **state)
{
	(void)state;
	char cond[301] = "";
	for (int i = 0; i < 100; i++)
		strcat(cond, "\xc3\xa9");   /* é: cut at 80 bytes is 40 of them */
	strcat(cond, "\x01\xff\xc3(");     /* control char, invalid UTF-8 */
	struct dagrun_workflow *wf = sample(cond);
	size_t len;
	char *dot = capture(wf, DAGRUN_GRAPH_DOT, &len);
	char want[200] = "[style=dashed, label=\"";
	for (int i = 0; i < 40; i++)
		strcat(want, "\xc3\xa9");
	strcat(want, "...\"];");
	assert_non_null(strstr(dot, want));
	if (render_dot(dot, len) < 0)
		skip();
	free(dot);
	dagrun_workflow_free(wf);
}

static void dot_replaces_invalid_utf8_and_control_chars(void **state)
{
	(void)state;
	struct dagrun_workflow *wf = sample("a\x01" "b\xff" "c\xc3(d\xed\xa0\x80" "e\r");
	size_t len;
	char *dot = capture(wf, DAGRUN_GRAPH_DOT, &len);
	assert_non_null(strstr(dot, "label=\"a b\xef\xbf\xbd" "c\xef\xbf\xbd(d"
				    "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd" "e \"]"));
	if (render_dot(dot, len) < 0)
		skip();
	free(dot);
	dagrun_workflow_free(wf);
}

/* ---- Mermaid -------------------------------------------------------------- */

static const char mermaid_snapshot[] =
	"flowchart TD\n"
	"    n0[\"build-1.0<br/>(command)\"]\n"
	"    n1[\"test.unit<br/>(script)\"]\n"
	"    n2[\"deploy<br/>(api)\"]\n"
	"    n3[\"summarize<br/>(ai)\"]\n"
	"    subgraph onSuccess[\"onSuccess\"]\n"
	"        n4[\"notify<br/>(webhook)\"]\n"
	"    end\n"
	"    subgraph onFailure[\"onFailure\"]\n"
	"        n5[\"page<br/>(webhook)\"]\n"
	"    end\n"
	"    subgraph onExit[\"onExit\"]\n"
	"        n6[\"cleanup<br/>(command)\"]\n"
	"        n7[\"report<br/>(ai)\"]\n"
	"    end\n"
	"    n0 --> n1\n"
	"    n1 -.->|\"status == #quot;failed#quot; and output ~= 'a\\b'<br/> or "
	"#35;x #124; y #lt;z#gt; #amp; #96;q#96;\"| n2\n"
	"    n0 -->|\"exitCode == 0\"| n2\n"
	"    n2 -.-> n3\n"
	"    n6 -->|\"status ~= #quot;skipped#quot;\"| n7\n";

static void mermaid_matches_snapshot(void **state)
{
	(void)state;
	struct dagrun_workflow *wf = sample(NULL);
	char *text = capture(wf, DAGRUN_GRAPH_MERMAID, NULL);
	assert_string_equal(text, mermaid_snapshot);
	free(text);
	dagrun_workflow_free(wf);
}

/* ---- JSON ----------------------------------------------------------------- */

static json_t *parse(const char *text, size_t len)
{
	json_error_t err;
	json_t *j = json_loadb(text, len, 0, &err);
	if (!j)
		fprintf(stderr, "JSON error: %s at line %d col %d\n", err.text,
			err.line, err.column);
	assert_non_null(j);
	return j;
}

static const char *str_at(json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);
	assert_true(json_is_string(v));
	return json_string_value(v);
}

static json_int_t int_at(json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);
	assert_true(json_is_integer(v));
	return json_integer_value(v);
}

static void check_dep(json_t *dep, const char *id, const char *type,
		      const char *cond)
{
	assert_int_equal(json_object_size(dep), 3);
	assert_string_equal(str_at(dep, "taskId"), id);
	assert_string_equal(str_at(dep, "type"), type);
	json_t *c = json_object_get(dep, "condition");
	if (cond)
		assert_string_equal(json_string_value(c), cond);
	else
		assert_true(json_is_null(c));
}

static void json_parses_back_with_the_right_structure(void **state)
{
	(void)state;
	struct dagrun_workflow *wf = sample(NULL);
	size_t len;
	char *text = capture(wf, DAGRUN_GRAPH_JSON, &len);
	json_t *root = parse(text, len);
	assert_int_equal(json_object_size(root), 3);
	assert_string_equal(str_at(root, "name"), "rel-notes");
	json_t *tasks = json_object_get(root, "tasks");
	assert_int_equal(json_array_size(tasks), 8);
	static const char *const ids[] = {"build-1.0", "test.unit", "deploy",
		"summarize", "notify", "page", "cleanup", "report"};
	static const char *const kinds[] = {"command", "script", "api", "ai",
		"webhook", "webhook", "command", "ai"};
	static const char *const hooks[] = {NULL, NULL, NULL, NULL, "onSuccess",
		"onFailure", "onExit", "onExit"};
	static const int weights[] = {4, 3, 2, 1, 1, 1, 2, 1};
	static const int prios[] = {0, 0, -3, 10, 0, 0, 0, 0};
	for (size_t i = 0; i < 8; i++) {
		json_t *t = json_array_get(tasks, i);
		assert_int_equal(json_object_size(t), hooks[i] ? 6 : 5);
		assert_string_equal(str_at(t, "id"), ids[i]);
		assert_string_equal(str_at(t, "kind"), kinds[i]);
		assert_int_equal(int_at(t, "weight"), weights[i]);
		assert_int_equal(int_at(t, "priority"), prios[i]);
		if (hooks[i])
			assert_string_equal(str_at(t, "hook"), hooks[i]);
		assert_true(json_is_array(json_object_get(t, "dependencies")));
	}
	json_t *deps = json_object_get(json_array_get(tasks, 2), "dependencies");
	assert_int_equal(json_array_size(deps), 2);
	check_dep(json_array_get(deps, 0), "test.unit", "non-blocking", NASTY);
	check_dep(json_array_get(deps, 1), "build-1.0", "blocking", "exitCode == 0");
	deps = json_object_get(json_array_get(tasks, 1), "dependencies");
	check_dep(json_array_get(deps, 0), "build-1.0", "blocking", NULL);
	json_t *order = json_object_get(root, "order");
	assert_int_equal(json_array_size(order), 8);
	for (size_t i = 0; i < 8; i++)
		assert_string_equal(json_string_value(json_array_get(order, i)),
				    wf_task_id(wf, wf->graph->topo[i]));
	json_decref(root);
	free(text);
	dagrun_workflow_free(wf);
}

static void json_escapes_control_chars_and_invalid_utf8(void **state)
{
	(void)state;
	struct dagrun_workflow *wf = sample("\x01\x1f\t\r\\\"\xff\xc3(\xc3\xa9\xe2\x82\xac"
					    "\xf0\x9f\x98\x80\xf4\x90\x80\x80");
	size_t len;
	char *text = capture(wf, DAGRUN_GRAPH_JSON, &len);
	assert_non_null(strstr(text, "\"\\u0001\\u001f\\t\\r\\\\\\\""));
	json_t *root = parse(text, len);
	json_t *deps = json_object_get(json_array_get(json_object_get(root, "tasks"), 3),
				       "dependencies");
	check_dep(json_array_get(deps, 0), "deploy", "non-blocking",
		  "\x01\x1f\t\r\\\"\xef\xbf\xbd\xef\xbf\xbd(\xc3\xa9\xe2\x82\xac"
		  "\xf0\x9f\x98\x80\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
	json_decref(root);
	free(text);
	dagrun_workflow_free(wf);
}

static void json_needs_a_built_graph(void **state)
{
	(void)state;
	struct dagrun_workflow *wf = wfb_parse("a b:a");
	FILE *f = fopen("/dev/null", "w");
	assert_int_equal(dagrun_graph_write(wf, DAGRUN_GRAPH_JSON, f), -EINVAL);
	assert_int_equal(dagrun_graph_write(wf, DAGRUN_GRAPH_DOT, f), 0);
	fclose(f);
	dagrun_workflow_free(wf);
}

/* ---- errors and size ------------------------------------------------------ */

static void bad_arguments_are_einval(void **state)
{
	(void)state;
	struct dagrun_workflow *wf = sample(NULL);
	FILE *f = fopen("/dev/null", "w");
	assert_int_equal(dagrun_graph_write(wf, (enum dagrun_graph_format)42, f), -EINVAL);
	assert_int_equal(dagrun_graph_write(NULL, DAGRUN_GRAPH_DOT, f), -EINVAL);
	assert_int_equal(dagrun_graph_write(wf, DAGRUN_GRAPH_DOT, NULL), -EINVAL);
	fclose(f);
	dagrun_workflow_free(wf);
}

static void write_failure_returns_errno(void **state)
{
	(void)state;
	struct dagrun_workflow *wf = sample(NULL);
	for (int fmt = DAGRUN_GRAPH_DOT; fmt <= DAGRUN_GRAPH_JSON; fmt++) {
		FILE *f = fopen("/dev/full", "w");
		if (!f)
			skip();
		setvbuf(f, NULL, _IONBF, 0);
		assert_int_equal(dagrun_graph_write(wf, fmt, f), -ENOSPC);
		fclose(f);
	}
	dagrun_workflow_free(wf);
}

static void large_graph_streams_in_every_format(void **state)
{
	(void)state;
	enum { N = 200000 };
	struct wfb b;
	char id[32], on[32];
	wfb_init(&b, "big");
	for (unsigned i = 0; i < N; i++) {
		snprintf(id, sizeof(id), "task-%u", i);
		wfb_task(&b, id, WFB_COMMAND, DR_HOOK_NONE);
		if (i) {
			snprintf(on, sizeof(on), "task-%u", i / 2);
			wfb_dep(&b, on, DR_DEP_BLOCKING, i % 7 ? NULL : "status == \"ok\"");
		}
	}
	struct dagrun_workflow *wf = wfb_finish(&b);
	assert_int_equal(graph_build(wf, NULL), 0);
	FILE *f = fopen("/dev/null", "w");
	assert_int_equal(dagrun_graph_write(wf, DAGRUN_GRAPH_DOT, f), 0);
	assert_int_equal(dagrun_graph_write(wf, DAGRUN_GRAPH_MERMAID, f), 0);
	fclose(f);
	f = tmpfile();
	assert_non_null(f);
	assert_int_equal(dagrun_graph_write(wf, DAGRUN_GRAPH_JSON, f), 0);
	rewind(f);
	json_error_t err;
	json_t *root = json_loadf(f, 0, &err);
	assert_non_null(root);
	assert_int_equal(json_array_size(json_object_get(root, "order")), N);
	assert_int_equal(json_array_size(json_object_get(root, "tasks")), N);
	json_decref(root);
	fclose(f);
	dagrun_workflow_free(wf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(dot_renders_with_graphviz_and_escapes_conditions),
		cmocka_unit_test(dot_shortens_long_labels_at_a_character_boundary),
		cmocka_unit_test(dot_replaces_invalid_utf8_and_control_chars),
		cmocka_unit_test(mermaid_matches_snapshot),
		cmocka_unit_test(json_parses_back_with_the_right_structure),
		cmocka_unit_test(json_escapes_control_chars_and_invalid_utf8),
		cmocka_unit_test(json_needs_a_built_graph),
		cmocka_unit_test(bad_arguments_are_einval),
		cmocka_unit_test(write_failure_returns_errno),
		cmocka_unit_test(large_graph_streams_in_every_format),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
