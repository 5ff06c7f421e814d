/* test_subworkflow.c: loading `workflow` tasks: the keys, the child loaded
 * with its parent (shared, owned by the top), `with` against the child's
 * variables, `outputs` checked like templates, cycles between files and the
 * nesting cap, each error at its FILE:LINE:COL. Real files in a temporary
 * directory. */
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
#include "model/model.h"

static char dir[64];

static void put(const char *name, const char *text)
{
	char path[256];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

/* Loads dir/name; returns the workflow (NULL on failure) and the diags. */
static dagrun_workflow *load(const char *name, dagrun_diags **d, int *r)
{
	char path[256];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	*d = dagrun_diags_new(0);
	dagrun_workflow *wf = NULL;
	*r = dagrun_workflow_load(path, &wf, *d);
	return wf;
}

/* An error whose file ends with file, at line:col, containing want. */
static void expect(const dagrun_diags *d, const char *file, unsigned line, unsigned col,
		   const char *want)
{
	for (size_t i = 0; i < dagrun_diags_count(d); i++) {
		const dagrun_diag *g = dagrun_diags_get(d, i);
		size_t fl = g->file ? strlen(g->file) : 0, wl = strlen(file);
		if (g->severity == DAGRUN_ERROR && g->line == line && g->column == col &&
		    fl >= wl && !strcmp(g->file + fl - wl, file) && strstr(g->message, want))
			return;
	}
	dagrun_diags_print(d, stderr, 0);
	fail_msg("no error %s:%u:%u: %s", file, line, col, want);
}

static void ok(const char *name)
{
	dagrun_diags *d;
	int r;
	dagrun_workflow *wf = load(name, &d, &r);
	if (r)
		dagrun_diags_print(d, stderr, 0);
	assert_int_equal(r, 0);
	dagrun_workflow_free(wf);
	dagrun_diags_free(d);
}

static dagrun_diags *fails(const char *name)
{
	dagrun_diags *d;
	int r;
	dagrun_workflow *wf = load(name, &d, &r);
	assert_int_equal(r, -22);
	assert_null(wf);
	return d;
}

#define CHILD "name: child\nvariables: {who: x, n: 1}\ntasks:\n" \
	      "  - {id: c1, command: \"echo {{ variables.who }}\"}\n" \
	      "outputs:\n  said: \"{{ tasks.c1.output }}\"\n"

static int grab(void *ud, const struct dagrun_workflow *child)
{
	*(const struct dagrun_workflow **)ud = child;
	return 0;
}

static void the_child_is_loaded_once_and_shared(void **state)
{
	(void)state;
	put("child.yaml", CHILD);
	put("p.yaml", "name: p\ntasks:\n"
		      "  - {id: a, workflow: child.yaml, with: {who: \"{{ run.id }}\"}}\n"
		      "  - {id: b, workflow: ./child.yaml, dependencies: [a]}\n");
	dagrun_diags *d;
	int r;
	dagrun_workflow *wf = load("p.yaml", &d, &r);
	assert_int_equal(r, 0);
	assert_string_equal(dr_kind_name(wf, 0), "workflow");
	/* one model for both tasks, owned by p */
	const struct dagrun_workflow *c[2] = {NULL, NULL};
	for (uint32_t t = 0; t < 2; t++) {
		const struct dr_kind *k = wf_task_kind(wf, t);
		assert_non_null(k->each_child);
		assert_int_equal(k->each_child(wf, t, grab, &c[t]), 0);
	}
	assert_non_null(c[0]);
	assert_ptr_equal(c[0], c[1]);
	assert_string_equal(dagrun_workflow_name(c[0]), "child");
	assert_int_equal(c[0]->outputs.n, 1);
	assert_string_equal(c[0]->outputs.v[0].key.s, "said");
	dagrun_workflow_free(wf);
	dagrun_diags_free(d);
}

static void with_names_declared_variables_only(void **state)
{
	(void)state;
	put("child.yaml", CHILD);
	put("p.yaml", "name: p\ntasks:\n"
		      "  - id: a\n    workflow: child.yaml\n    with: {who: 1, nn: 2}\n");
	dagrun_diags *d = fails("p.yaml");
	expect(d, "p.yaml", 5, 20, "'with': 'nn' is not a variable of the workflow");
	assert_int_equal(dagrun_diags_errors(d), 1);
	dagrun_diags_free(d);
	/* with is a map; with and workflow go together */
	put("p.yaml", "name: p\ntasks:\n"
		      "  - {id: a, workflow: child.yaml, with: [who]}\n"
		      "  - {id: b, command: \"true\", with: {who: 1}}\n");
	d = fails("p.yaml");
	expect(d, "p.yaml", 3, 41, "'with' must be a map");
	expect(d, "p.yaml", 4, 30, "'with' is only valid with 'workflow'");
	dagrun_diags_free(d);
}

static void a_missing_or_invalid_child_is_reported_where_it_is_named(void **state)
{
	(void)state;
	put("bad.yaml", "name: bad\ntasks:\n  - {id: x, command: \"echo {{ tasks.nope.output }}\"}\n");
	put("p.yaml", "name: p\ntasks:\n"
		      "  - {id: a, workflow: missing.yaml}\n"
		      "  - {id: b, workflow: bad.yaml}\n");
	dagrun_diags *d = fails("p.yaml");
	expect(d, "p.yaml", 3, 23, "workflow 'missing.yaml': cannot read");
	expect(d, "bad.yaml", 3, 37, "unknown task 'nope'");     /* the child's own */
	expect(d, "p.yaml", 4, 23, "workflow 'bad.yaml' is invalid");
	assert_int_equal(dagrun_diags_errors(d), 3);
	dagrun_diags_free(d);
}

static void a_cycle_is_named_with_its_chain(void **state)
{
	(void)state;
	put("a.yaml", "name: a\ntasks:\n  - {id: ta, workflow: b.yaml}\n");
	put("b.yaml", "name: b\ntasks:\n  - {id: tb, workflow: c.yaml}\n");
	put("c.yaml", "name: c\ntasks:\n  - {id: x, command: \"true\"}\n"
		      "  - {id: tc, workflow: b.yaml}\n");
	dagrun_diags *d = fails("a.yaml");
	expect(d, "c.yaml", 4, 24, "workflow 'b.yaml' runs itself: ");
	expect(d, "c.yaml", 4, 24, "/b.yaml -> ");
	expect(d, "c.yaml", 4, 24, "/c.yaml -> ");
	expect(d, "b.yaml", 3, 24, "workflow 'c.yaml' is invalid");
	expect(d, "a.yaml", 3, 24, "workflow 'b.yaml' is invalid");
	dagrun_diags_free(d);
}

static void nesting_deeper_than_the_cap_is_refused(void **state)
{
	(void)state;
	char name[32], text[128];
	for (unsigned i = 0; i <= DAGRUN_MAX_NESTING + 1; i++) {
		snprintf(name, sizeof(name), "n%u.yaml", i);
		snprintf(text, sizeof(text), "name: n%u\ntasks:\n  - {id: t, workflow: n%u.yaml}\n",
			 i, i + 1);
		put(name, text);
	}
	snprintf(name, sizeof(name), "n%u.yaml", DAGRUN_MAX_NESTING + 2);
	put(name, "name: leaf\ntasks:\n  - {id: t, command: \"true\"}\n");
	ok("n2.yaml");   /* 8 levels below it */
	dagrun_diags *d = fails("n1.yaml");
	expect(d, "n9.yaml", 3, 23, "workflow 'n10.yaml': sub-workflows nested deeper than 8");
	dagrun_diags_free(d);
	/* a file first loaded shallow (n3, 7 levels below it, at depth 1), then
	 * met deeper (at depth 2, through n2): the shared model is refused there */
	put("deep.yaml", "name: deep\ntasks:\n  - {id: s, workflow: n3.yaml}\n"
			 "  - {id: d, workflow: n2.yaml}\n");
	d = fails("deep.yaml");
	expect(d, "n2.yaml", 3, 23, "workflow 'n3.yaml': sub-workflows nested deeper than 8");
	expect(d, "n2.yaml", 3, 23, "/n3.yaml -> ...");
	expect(d, "deep.yaml", 4, 23, "workflow 'n2.yaml' is invalid");
	assert_int_equal(dagrun_diags_errors(d), 2);
	dagrun_diags_free(d);
}

static void outputs_are_checked_like_templates(void **state)
{
	(void)state;
	put("o.yaml", "name: o\ntasks:\n  - {id: a, command: \"true\"}\n"
		      "onExit:\n  - {id: h, command: \"true\"}\n"
		      "outputs:\n"
		      "  good: \"{{ tasks.a.output }}\"\n"
		      "  bad name: x\n"
		      "  hook: \"{{ tasks.h.output }}\"\n"
		      "  typo: \"{{ tasks.aa.output }}\"\n");
	dagrun_diags *d = fails("o.yaml");
	expect(d, "o.yaml", 8, 3, "invalid output name 'bad name'");
	dagrun_diags_free(d);
	put("o.yaml", "name: o\ntasks:\n  - {id: a, command: \"true\"}\n"
		      "onExit:\n  - {id: h, command: \"true\"}\n"
		      "outputs:\n"
		      "  good: \"{{ tasks.a.output }}\"\n"
		      "  hook: \"{{ tasks.h.output }}\"\n"
		      "  typo: \"{{ tasks.aa.output }}\"\n");
	d = fails("o.yaml");
	expect(d, "o.yaml", 8, 19, "`outputs` can read main tasks only; 'h' is a hook task");
	expect(d, "o.yaml", 9, 19, "unknown task 'aa'");
	assert_int_equal(dagrun_diags_errors(d), 2);
	dagrun_diags_free(d);
}

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/dagrun-sub-XXXXXX");
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(the_child_is_loaded_once_and_shared),
		cmocka_unit_test(with_names_declared_variables_only),
		cmocka_unit_test(a_missing_or_invalid_child_is_reported_where_it_is_named),
		cmocka_unit_test(a_cycle_is_named_with_its_chain),
		cmocka_unit_test(nesting_deeper_than_the_cap_is_refused),
		cmocka_unit_test(outputs_are_checked_like_templates),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
