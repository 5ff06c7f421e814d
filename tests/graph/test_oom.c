/* test_oom.c: graph_build with each of its allocations failing in turn.
 *
 * Allocations fail through tests/common/oom.h (libdagrun's own, not
 * libc's). Every failure must come back as -ENOMEM (or, while reporting
 * cycles, still -EINVAL), leave wf->graph unset and leak nothing (ASan).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <limits.h>
#include <stdlib.h>

#include "graph/graph.h"
#include "oom.h"
#include "wfbuild.h"

/* Builds spec with allocation number k failing (k < 0: none); returns the
 * result and sets *calls to the allocations made. */
static int build_failing(const char *spec, long k, long *calls, int *has_graph)
{
	struct dagrun_workflow *wf = wfb_parse(spec);
	dagrun_diags *d = dagrun_diags_new(0);
	oom_start(k);
	int r = graph_build(wf, d);
	*calls = oom_stop();
	*has_graph = wf->graph != NULL;
	dagrun_diags_free(d);
	dagrun_workflow_free(wf);
	return r;
}

static void each_failing_allocation(const char *spec, int want)
{
	long total, calls;
	int has_graph;
	assert_int_equal(build_failing(spec, -1, &total, &has_graph), want);
	assert_true(total > 0);
	for (long k = 0; k < total; k++) {
		int r = build_failing(spec, k, &calls, &has_graph);
		assert_false(has_graph);
		assert_true(r == -ENOMEM || (want == -EINVAL && r == -EINVAL));
	}
}

static void failed_allocations_in_a_valid_graph_are_enomem(void **state)
{
	(void)state;
	each_failing_allocation("a b:a c:a d:b,c e", 0);
}

static void failed_allocations_while_reporting_cycles_are_clean(void **state)
{
	(void)state;
	each_failing_allocation("ok x:y y:x m:x n:m,ok u:v,n v:u s:s", -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(failed_allocations_in_a_valid_graph_are_enomem),
		cmocka_unit_test(failed_allocations_while_reporting_cycles_are_clean),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
