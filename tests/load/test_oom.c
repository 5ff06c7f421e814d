/* test_oom.c: the loader with each of its allocations failing in turn.
 *
 * Allocations fail through tests/common/oom.h (libdagrun's own, not libc's
 * or libyaml's). Every failure must come back as -ENOMEM (or -EINVAL for an
 * invalid file), leave *out untouched and leak nothing (ASan).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dagrun.h"
#include "oom.h"

/* Every kind of collection, more than 8 env keys and 16 dependencies (the
 * sorting duplicate checks), hooks, pools, defaults. */
static const char valid[] =
	"name: oom\n"
	"variables: {a: [1, 2.5, {b: c}], d: null}\n"
	"env: {A: a, B: b, C: c, D: d, E: e, F: f, G: g, H: h, I: i, J: j}\n"
	"resources: {cpu: 2}\n"
	"defaults: {timeout: 1m, retry: {maxAttempts: 2, permanentExitCodes: [3]}}\n"
	"tasks:\n"
	"  - {id: t0, command: x}\n  - {id: t1, command: x}\n  - {id: t2, command: x}\n"
	"  - {id: t3, command: x}\n  - {id: t4, command: x}\n  - {id: t5, command: x}\n"
	"  - {id: t6, command: x}\n  - {id: t7, command: x}\n  - {id: t8, command: x}\n"
	"  - {id: t9, command: x}\n  - {id: u0, command: x}\n  - {id: u1, command: x}\n"
	"  - {id: u2, command: x}\n  - {id: u3, command: x}\n  - {id: u4, command: x}\n"
	"  - {id: u5, command: x}\n  - {id: u6, command: x}\n"
	"  - id: all\n"
	"    command: [echo, all]\n"
	"    resources: {cpu: 1}\n"
	"    env: {X: y}\n"
	"    description: d\n"
	"    dependencies: [t0, t1, t2, t3, t4, t5, t6, t7, t8, t9, u0, u1, u2, u3, u4, u5,\n"
	"                   {taskId: u6, type: non-blocking, condition: status == 'failed'}]\n"
	"  - {id: api, api: {url: 'http://x', headers: {A: b}, body: [1, {c: d}], expectStatus: [200]}}\n"
	"  - {id: hook, webhook: {url: 'http://x', payload: {a: b}}}\n"
	"  - {id: ai, model: m, prompt: p, context: {a: [b]}}\n"
	"  - {id: sc, script: echo, interpreter: bash}\n"
	"onExit:\n"
	"  - {id: bye, command: x}\n";

static const char invalid[] =
	"name: oom\n"
	"tasks:\n"
	"  - {id: a, comand: x, dependencies: [zz, a, a]}\n"
	"  - {id: b, command: x, resources: {cpu: 3}, timeout: 0}\n"
	"  - {id: b, command: x, env: {A: 1, A: 2}}\n";

static int load_failing(const char *y, long k, long *calls)
{
	dagrun_diags *d = dagrun_diags_new(0);
	dagrun_workflow *wf = (void *)1;
	oom_start(k);
	int r = dagrun_workflow_load_buffer("oom.yaml", y, strlen(y), &wf, d);
	*calls = oom_stop();
	if (r == 0)
		dagrun_workflow_free(wf);
	else
		assert_ptr_equal(wf, (void *)1);
	dagrun_diags_free(d);
	return r;
}

static void each_failing_allocation(const char *y, int want)
{
	long total, calls;
	assert_int_equal(load_failing(y, -1, &total), want);
	assert_true(total > 10);
	for (long k = 0; k < total; k++) {
		int r = load_failing(y, k, &calls);
		/* Lua retries a failed allocation after an emergency collection
		 * (the expression checks use it), so a load may also succeed. */
		if (r != -ENOMEM && r != want && !(r == 0 && want == 0))
			fail_msg("allocation %ld of %ld failing: got %d", k, total, r);
	}
}

static void failed_allocations_in_a_valid_file_are_enomem(void **state)
{
	(void)state;
	each_failing_allocation(valid, 0);
}

static void failed_allocations_in_an_invalid_file_never_crash(void **state)
{
	(void)state;
	each_failing_allocation(invalid, -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(failed_allocations_in_a_valid_file_are_enomem),
		cmocka_unit_test(failed_allocations_in_an_invalid_file_never_crash),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
