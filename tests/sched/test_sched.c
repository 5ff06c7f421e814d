/* test_sched.c: the scheduler driven by the fake executor (no process is
 * spawned): dependency order, the concurrency limit, resource pools without
 * starvation, retries, failure propagation, hooks and interruption. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "exec/fake.h"
#include "graph/graph.h"
#include "load/model.h"
#include "sched/backoff.h"
#include "sched/sched.h"
#include "util/buf.h"

/* What one run did, as seen by an observer. */
struct trace {
	const struct dagrun_workflow *wf;
	uint32_t n;
	int *status;          /* final status per task */
	int *cls;             /* final error class */
	uint32_t *attempts;   /* attempts started */
	int64_t *start_seq;   /* sequence number of the first attempt start */
	int64_t *end_seq;     /* of the last attempt end */
	int64_t seq;
	uint32_t running, max_running;
	uint32_t *pool_used, *pool_max;
	uint32_t retries;
	uint64_t *delays;     /* RETRY delays, in order */
	uint32_t n_delays;
	uint32_t *order;      /* task indexes in start order */
	uint32_t n_order;
	/* the fake's script: task t fails its first fail_first[t] attempts */
	uint32_t *fail_first;
	uint8_t *fail_class;
	uint64_t duration_ms;
	uint32_t interrupt_after;  /* interrupt after this many starts (0: never) */
	struct sched *s;
	uv_timer_t interrupt_timer;
};

static void interrupt_now(uv_timer_t *h)
{
	struct trace *tr = h->data;
	sched_interrupt(tr->s, 2, false);
	uv_close((uv_handle_t *)h, NULL);
}

static void observe(void *ud, const dagrun_event *ev)
{
	struct trace *tr = ud;
	uint32_t t = ev->task_index;
	const struct dagrun_workflow *wf = tr->wf;
	switch (ev->type) {
	case DAGRUN_EV_ATTEMPT_START:
		tr->attempts[t]++;
		if (tr->start_seq[t] < 0)
			tr->start_seq[t] = tr->seq;
		tr->seq++;
		tr->order[tr->n_order++] = t;
		if (++tr->running > tr->max_running)
			tr->max_running = tr->running;
		for (uint32_t i = 0; i < wf->tasks[t].opts->n_res; i++) {
			const struct dr_res *r = &wf->tasks[t].opts->res[i];
			tr->pool_used[r->pool] += r->units;
			if (tr->pool_used[r->pool] > tr->pool_max[r->pool])
				tr->pool_max[r->pool] = tr->pool_used[r->pool];
		}
		if (tr->interrupt_after && tr->n_order == tr->interrupt_after) {
			/* As a signal would: from the loop, not inside this event. */
			uv_timer_init(tr->s->loop, &tr->interrupt_timer);
			tr->interrupt_timer.data = tr;
			uv_timer_start(&tr->interrupt_timer, interrupt_now, 0, 0);
		}
		break;
	case DAGRUN_EV_ATTEMPT_END:
		tr->end_seq[t] = tr->seq++;
		tr->running--;
		for (uint32_t i = 0; i < wf->tasks[t].opts->n_res; i++) {
			const struct dr_res *r = &wf->tasks[t].opts->res[i];
			tr->pool_used[r->pool] -= r->units;
		}
		break;
	case DAGRUN_EV_TASK_STATUS:
		tr->status[t] = ev->status;
		tr->cls[t] = ev->error_class;
		break;
	case DAGRUN_EV_RETRY:
		tr->retries++;
		tr->delays[tr->n_delays++] = ev->delay_ms;
		break;
	default:
		break;
	}
}

static struct fake_outcome decide(void *ud, const struct exec_attempt *a)
{
	struct trace *tr = ud;
	struct fake_outcome o = {.ok = true, .duration_ms = tr->duration_ms};
	if (tr->fail_first && a->attempt <= tr->fail_first[a->task]) {
		o.ok = false;
		o.exit_code = 1;
		o.error_class = tr->fail_class && tr->fail_class[a->task] ?
				tr->fail_class[a->task] : DR_CLASS_TRANSIENT;
	}
	return o;
}

static dagrun_workflow *load(const char *yaml)
{
	dagrun_workflow *wf = NULL;
	dagrun_diags *d = dagrun_diags_new(0);
	int r = dagrun_workflow_load_buffer("test.yaml", yaml, strlen(yaml), &wf, d);
	if (r < 0)
		dagrun_diags_print(d, stderr, 0);
	dagrun_diags_free(d);
	assert_int_equal(r, 0);
	return wf;
}

static void trace_init(struct trace *tr, const struct dagrun_workflow *wf)
{
	memset(tr, 0, sizeof(*tr));
	uint32_t n = wf->n_tasks;
	tr->wf = wf;
	tr->n = n;
	tr->status = calloc(n, sizeof(int));
	tr->cls = calloc(n, sizeof(int));
	tr->attempts = calloc(n, sizeof(uint32_t));
	tr->start_seq = malloc(n * sizeof(int64_t));
	tr->end_seq = malloc(n * sizeof(int64_t));
	tr->order = calloc(n * 110 + 1, sizeof(uint32_t));
	tr->delays = calloc(n * 110 + 1, sizeof(uint64_t));
	tr->pool_used = calloc(wf->n_pools + 1, sizeof(uint32_t));
	tr->pool_max = calloc(wf->n_pools + 1, sizeof(uint32_t));
	for (uint32_t t = 0; t < n; t++)
		tr->start_seq[t] = tr->end_seq[t] = -1;
}

static void trace_free(struct trace *tr)
{
	free(tr->status);
	free(tr->cls);
	free(tr->attempts);
	free(tr->start_seq);
	free(tr->end_seq);
	free(tr->order);
	free(tr->delays);
	free(tr->pool_used);
	free(tr->pool_max);
	free(tr->fail_first);
	free(tr->fail_class);
}

/* Runs wf on the fake executor; returns what sched reports at the end. */
static void run(struct trace *tr, uint32_t max_parallel)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct executor *fx = fake_executor_new(&loop, decide, tr);
	struct executor *ex[DR_KIND_COUNT];
	for (int k = 0; k < DR_KIND_COUNT; k++)
		ex[k] = fx;
	struct sched s;
	assert_int_equal(sched_init(&s, tr->wf, &loop, ex, max_parallel, "test", 42), 0);
	struct observer *o = calloc(1, sizeof(*o));
	o->fn = observe;
	o->ud = tr;
	s.obs = o;
	s.n_obs = 1;
	tr->s = &s;
	sched_start(&s);
	uv_run(&loop, UV_RUN_DEFAULT);
	assert_true(sched_done(&s));
	assert_int_equal(s.error, 0);
	fx->ops->destroy(fx);
	uv_run(&loop, UV_RUN_DEFAULT);
	sched_free(&s);
	assert_int_equal(uv_loop_close(&loop), 0);
}

static uint32_t task(const struct dagrun_workflow *wf, const char *id)
{
	uint32_t sym = intern_find(&wf->ids, id, strlen(id));
	assert_true(sym != INTERN_NONE);
	return wf->sym_task[sym];
}

/* A random layered DAG as YAML: n tasks, each with up to k deps earlier. */
static char *random_dag(uint32_t n, uint32_t k, uint64_t seed)
{
	struct buf b = BUF_INIT;
	uint64_t rng = seed;
	buf_printf(&b, "name: random\ntasks:\n");
	for (uint32_t i = 0; i < n; i++) {
		buf_printf(&b, "  - id: t%u\n    command: \"true\"\n", i);
		if (i == 0)
			continue;
		uint32_t kk = (uint32_t)(backoff_random(&rng) * (k + 1));
		if (!kk)
			continue;
		buf_printf(&b, "    dependencies: [");
		uint32_t used[16] = {0}, nu = 0;
		for (uint32_t j = 0; j < kk && j < 16; j++) {
			uint32_t d = (uint32_t)(backoff_random(&rng) * i);
			int dup = 0;
			for (uint32_t m = 0; m < nu; m++)
				dup |= used[m] == d;
			if (dup)
				continue;
			used[nu++] = d;
			buf_printf(&b, "%st%u", nu > 1 ? ", " : "", d);
		}
		buf_printf(&b, "]\n");
	}
	return buf_steal(&b);
}

static void random_dags_respect_edges_and_concurrency_limit(void **state)
{
	(void)state;
	for (uint64_t seed = 1; seed <= 12; seed++) {
		char *yaml = random_dag(300, 4, seed * 7919);
		dagrun_workflow *wf = load(yaml);
		free(yaml);
		struct trace tr;
		trace_init(&tr, wf);
		tr.duration_ms = seed % 3 == 0 ? 1 : 0;
		uint32_t limit = (uint32_t)(seed % 4) + 1;
		run(&tr, limit);
		assert_true(tr.max_running <= limit);
		for (uint32_t t = 0; t < wf->n_tasks; t++) {
			assert_int_equal(tr.status[t], DAGRUN_COMPLETED);
			assert_int_equal(tr.attempts[t], 1);
			const struct dr_task *k = &wf->tasks[t];
			for (uint32_t i = 0; i < k->dep_count; i++) {
				uint32_t d = wf->deps[k->dep_first + i].target;
				assert_true(tr.end_seq[d] < tr.start_seq[t]);
			}
		}
		trace_free(&tr);
		dagrun_workflow_free(wf);
	}
}

static void wide_dag_reaches_the_concurrency_limit(void **state)
{
	(void)state;
	char *yaml = random_dag(64, 0, 1);
	dagrun_workflow *wf = load(yaml);
	free(yaml);
	struct trace tr;
	trace_init(&tr, wf);
	tr.duration_ms = 20;
	run(&tr, 8);
	assert_int_equal(tr.max_running, 8);
	trace_free(&tr);
	dagrun_workflow_free(wf);
}

static void one_worker_starts_by_priority_then_critical_path(void **state)
{
	(void)state;
	dagrun_workflow *wf = load(
		"name: order\n"
		"tasks:\n"
		"  - {id: a, command: 'true'}\n"
		"  - {id: b, command: 'true'}\n"
		"  - {id: c, command: 'true', dependencies: [b]}\n"
		"  - {id: d, command: 'true', priority: 5}\n"
		"  - {id: e, command: 'true', dependencies: [c]}\n");
	struct trace tr;
	trace_init(&tr, wf);
	run(&tr, 1);
	/* d has priority; b heads the longest chain (b, c, e); after b ends
	 * the ready set is {a (weight 1), c (weight 2)}: c; then a before e
	 * (same weight, declared first). */
	const char *want[] = {"d", "b", "c", "a", "e"};
	for (int i = 0; i < 5; i++)
		assert_int_equal(tr.order[i], task(wf, want[i]));
	trace_free(&tr);
	dagrun_workflow_free(wf);
}

static void transient_failure_is_retried_until_success(void **state)
{
	(void)state;
	dagrun_workflow *wf = load(
		"name: retry\n"
		"tasks:\n"
		"  - id: flaky\n"
		"    command: 'true'\n"
		"    retry: {maxAttempts: 4, initialDelay: 10ms, maxDelay: 40ms, jitter: none}\n"
		"  - {id: after, command: 'true', dependencies: [flaky]}\n");
	struct trace tr;
	trace_init(&tr, wf);
	tr.fail_first = calloc(wf->n_tasks, sizeof(uint32_t));
	tr.fail_first[task(wf, "flaky")] = 3;
	run(&tr, 4);
	assert_int_equal(tr.attempts[task(wf, "flaky")], 4);
	assert_int_equal(tr.status[task(wf, "flaky")], DAGRUN_COMPLETED);
	assert_int_equal(tr.status[task(wf, "after")], DAGRUN_COMPLETED);
	assert_int_equal(tr.n_delays, 3);
	assert_int_equal(tr.delays[0], 10);
	assert_int_equal(tr.delays[1], 20);
	assert_int_equal(tr.delays[2], 40);
	trace_free(&tr);
	dagrun_workflow_free(wf);
}

static void attempts_are_exact_when_every_attempt_fails(void **state)
{
	(void)state;
	dagrun_workflow *wf = load(
		"name: retry\n"
		"tasks:\n"
		"  - id: bad\n"
		"    command: 'true'\n"
		"    retry: {maxAttempts: 3, initialDelay: 1ms, maxDelay: 2ms}\n");
	struct trace tr;
	trace_init(&tr, wf);
	tr.fail_first = calloc(wf->n_tasks, sizeof(uint32_t));
	tr.fail_first[0] = 100;
	run(&tr, 2);
	assert_int_equal(tr.attempts[0], 3);
	assert_int_equal(tr.status[0], DAGRUN_FAILED);
	assert_int_equal(tr.cls[0], DR_CLASS_TRANSIENT);
	trace_free(&tr);
	dagrun_workflow_free(wf);
}

static void permanent_failure_is_not_retried(void **state)
{
	(void)state;
	dagrun_workflow *wf = load(
		"name: perm\n"
		"tasks:\n"
		"  - id: bad\n"
		"    command: 'true'\n"
		"    retry: {maxAttempts: 5, initialDelay: 1ms}\n");
	struct trace tr;
	trace_init(&tr, wf);
	tr.fail_first = calloc(1, sizeof(uint32_t));
	tr.fail_class = calloc(1, 1);
	tr.fail_first[0] = 100;
	tr.fail_class[0] = DR_CLASS_PERMANENT;
	run(&tr, 2);
	assert_int_equal(tr.attempts[0], 1);
	assert_int_equal(tr.status[0], DAGRUN_FAILED);
	assert_int_equal(tr.cls[0], DR_CLASS_PERMANENT);
	trace_free(&tr);
	dagrun_workflow_free(wf);
}

static void blocking_failure_fails_dependents_and_the_rest_goes_on(void **state)
{
	(void)state;
	dagrun_workflow *wf = load(
		"name: prop\n"
		"tasks:\n"
		"  - {id: a, command: 'true'}\n"
		"  - {id: b, command: 'true', dependencies: [a]}\n"
		"  - {id: c, command: 'true', dependencies: [b]}\n"
		"  - {id: cleanup, command: 'true', dependencies: [{taskId: b, type: non-blocking}]}\n"
		"  - {id: other, command: 'true'}\n");
	struct trace tr;
	trace_init(&tr, wf);
	tr.fail_first = calloc(wf->n_tasks, sizeof(uint32_t));
	tr.fail_first[task(wf, "a")] = 1;
	run(&tr, 2);
	assert_int_equal(tr.status[task(wf, "a")], DAGRUN_FAILED);
	assert_int_equal(tr.status[task(wf, "b")], DAGRUN_FAILED);
	assert_int_equal(tr.cls[task(wf, "b")], DR_CLASS_DEPENDENCY);
	assert_int_equal(tr.attempts[task(wf, "b")], 0);
	assert_int_equal(tr.status[task(wf, "c")], DAGRUN_FAILED);
	assert_int_equal(tr.cls[task(wf, "c")], DR_CLASS_DEPENDENCY);
	assert_int_equal(tr.attempts[task(wf, "c")], 0);
	/* non-blocking: runs after b is final, whatever b's outcome */
	assert_int_equal(tr.status[task(wf, "cleanup")], DAGRUN_COMPLETED);
	assert_int_equal(tr.status[task(wf, "other")], DAGRUN_COMPLETED);
	trace_free(&tr);
	dagrun_workflow_free(wf);
}

static void long_failed_chain_propagates_without_recursion(void **state)
{
	(void)state;
	struct buf b = BUF_INIT;
	buf_printf(&b, "name: chain\ntasks:\n  - {id: t0, command: 'true'}\n");
	for (int i = 1; i < 200000; i++)
		buf_printf(&b, "  - {id: t%d, command: 'true', dependencies: [t%d]}\n", i, i - 1);
	dagrun_workflow *wf = load(b.data);
	buf_free(&b);
	struct trace tr;
	trace_init(&tr, wf);
	tr.fail_first = calloc(wf->n_tasks, sizeof(uint32_t));
	tr.fail_first[0] = 1;
	run(&tr, 2);
	assert_int_equal(tr.status[wf->n_tasks - 1], DAGRUN_FAILED);
	assert_int_equal(tr.cls[wf->n_tasks - 1], DR_CLASS_DEPENDENCY);
	trace_free(&tr);
	dagrun_workflow_free(wf);
}

static void pools_are_never_exceeded_and_taken_all_or_nothing(void **state)
{
	(void)state;
	struct buf b = BUF_INIT;
	buf_printf(&b, "name: pools\nresources: {cpu: 4, gpu: 1}\ntasks:\n");
	for (int i = 0; i < 60; i++)
		buf_printf(&b, "  - {id: t%d, command: 'true', resources: {cpu: %d%s}}\n", i,
			   i % 4 + 1, i % 5 == 0 ? ", gpu: 1" : "");
	dagrun_workflow *wf = load(b.data);
	buf_free(&b);
	struct trace tr;
	trace_init(&tr, wf);
	tr.duration_ms = 2;
	run(&tr, 16);
	assert_true(tr.pool_max[0] <= 4);
	assert_true(tr.pool_max[1] <= 1);
	assert_int_equal(tr.pool_max[0], 4);
	for (uint32_t t = 0; t < wf->n_tasks; t++)
		assert_int_equal(tr.status[t], DAGRUN_COMPLETED);
	trace_free(&tr);
	dagrun_workflow_free(wf);
}

static void large_request_is_not_starved_by_small_ones(void **state)
{
	(void)state;
	/* big needs the whole pool. Small tasks keep becoming ready (each chain
	 * link frees a unit and readies the next), and each would fit in what
	 * is free. The later links are ordered after big (lower priority), so
	 * once big waits none of them may take the pool: big must start before
	 * them, not after the chains have drained. */
	struct buf b = BUF_INIT;
	buf_printf(&b, "name: starve\nresources: {cpu: 4}\ntasks:\n");
	for (int c = 0; c < 3; c++) {
		buf_printf(&b, "  - {id: c%d_0, command: 'true', resources: {cpu: 1}, priority: 1}\n", c);
		for (int i = 1; i < 30; i++)
			buf_printf(&b, "  - {id: c%d_%d, command: 'true', resources: {cpu: 1}, "
				   "dependencies: [c%d_%d], priority: -1}\n", c, i, c, i - 1);
	}
	buf_printf(&b, "  - {id: big, command: 'true', resources: {cpu: 4}}\n");
	dagrun_workflow *wf = load(b.data);
	buf_free(&b);
	struct trace tr;
	trace_init(&tr, wf);
	tr.duration_ms = 1;
	run(&tr, 8);
	uint32_t big = task(wf, "big");
	assert_int_equal(tr.status[big], DAGRUN_COMPLETED);
	/* Every link after the first three starts after big. */
	uint32_t started_after = 0;
	for (uint32_t t = 0; t < wf->n_tasks; t++)
		if (t != big && tr.start_seq[t] > tr.start_seq[big])
			started_after++;
	assert_int_equal(started_after, 3 * 29);
	assert_true(tr.pool_max[0] <= 4);
	trace_free(&tr);
	dagrun_workflow_free(wf);
}

static void failure_runs_on_failure_and_on_exit_hooks_only(void **state)
{
	(void)state;
	dagrun_workflow *wf = load(
		"name: hooks\n"
		"tasks:\n"
		"  - {id: a, command: 'true'}\n"
		"onSuccess:\n"
		"  - {id: yay, command: 'true'}\n"
		"onFailure:\n"
		"  - {id: alert, command: 'true'}\n"
		"onExit:\n"
		"  - {id: bye, command: 'true'}\n");
	struct trace tr;
	trace_init(&tr, wf);
	tr.fail_first = calloc(wf->n_tasks, sizeof(uint32_t));
	tr.fail_first[task(wf, "a")] = 1;
	run(&tr, 2);
	assert_int_equal(tr.attempts[task(wf, "yay")], 0);
	assert_int_equal(tr.status[task(wf, "alert")], DAGRUN_COMPLETED);
	assert_int_equal(tr.status[task(wf, "bye")], DAGRUN_COMPLETED);
	assert_true(tr.start_seq[task(wf, "bye")] > tr.end_seq[task(wf, "alert")]);
	assert_true(tr.start_seq[task(wf, "alert")] > tr.end_seq[task(wf, "a")]);
	trace_free(&tr);
	dagrun_workflow_free(wf);
}

static void interrupt_cancels_running_and_starts_nothing_more(void **state)
{
	(void)state;
	char *yaml = random_dag(50, 0, 3);
	dagrun_workflow *wf = load(yaml);
	free(yaml);
	struct trace tr;
	trace_init(&tr, wf);
	tr.duration_ms = 50;
	tr.interrupt_after = 4;
	run(&tr, 4);
	uint32_t cancelled = 0, pending = 0;
	for (uint32_t t = 0; t < wf->n_tasks; t++) {
		cancelled += tr.status[t] == DAGRUN_CANCELLED;
		pending += tr.attempts[t] == 0;
	}
	assert_int_equal(tr.n_order, 4);
	assert_int_equal(cancelled, 4);
	assert_int_equal(pending, 46);
	trace_free(&tr);
	dagrun_workflow_free(wf);
}

static void on_exit_hook_depending_on_an_unused_hook_still_runs(void **state)
{
	(void)state;
	dagrun_workflow *wf = load(
		"name: hooks\n"
		"tasks:\n"
		"  - {id: a, command: 'true'}\n"
		"onFailure:\n"
		"  - {id: page, command: 'true'}\n"
		"onExit:\n"
		"  - {id: tidy, command: 'true', dependencies: [{taskId: page, type: non-blocking}]}\n"
		"  - {id: strict, command: 'true', dependencies: [page]}\n");
	struct trace tr;
	trace_init(&tr, wf);
	run(&tr, 2);
	assert_int_equal(tr.attempts[task(wf, "page")], 0);
	assert_int_equal(tr.status[task(wf, "tidy")], DAGRUN_COMPLETED);
	assert_int_equal(tr.status[task(wf, "strict")], DAGRUN_FAILED);
	assert_int_equal(tr.cls[task(wf, "strict")], DR_CLASS_DEPENDENCY);
	trace_free(&tr);
	dagrun_workflow_free(wf);
}

/* The public engine with the fake executor: the run ends by itself (its
 * last completion comes from an idle callback, nothing else wakes the loop). */
static void engine_run_on_the_fake_executor_returns(void **state)
{
	(void)state;
	char *yaml = random_dag(2000, 3, 11);
	dagrun_workflow *wf = load(yaml);
	free(yaml);
	dagrun_run_opts ro = {.max_parallel = 4, .fake = 1};
	dagrun_engine *e = NULL;
	assert_int_equal(dagrun_engine_new(&e, wf, &ro, NULL), 0);
	assert_int_equal(dagrun_engine_run(e), 0);
	size_t counts[DAGRUN_CANCELLED + 1];
	dagrun_engine_counts(e, counts);
	assert_int_equal(counts[DAGRUN_COMPLETED], 2000);
	dagrun_engine_free(e);
	dagrun_workflow_free(wf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(random_dags_respect_edges_and_concurrency_limit),
		cmocka_unit_test(wide_dag_reaches_the_concurrency_limit),
		cmocka_unit_test(one_worker_starts_by_priority_then_critical_path),
		cmocka_unit_test(transient_failure_is_retried_until_success),
		cmocka_unit_test(attempts_are_exact_when_every_attempt_fails),
		cmocka_unit_test(permanent_failure_is_not_retried),
		cmocka_unit_test(blocking_failure_fails_dependents_and_the_rest_goes_on),
		cmocka_unit_test(long_failed_chain_propagates_without_recursion),
		cmocka_unit_test(pools_are_never_exceeded_and_taken_all_or_nothing),
		cmocka_unit_test(large_request_is_not_starved_by_small_ones),
		cmocka_unit_test(failure_runs_on_failure_and_on_exit_hooks_only),
		cmocka_unit_test(interrupt_cancels_running_and_starts_nothing_more),
		cmocka_unit_test(on_exit_hook_depending_on_an_unused_hook_still_runs),
		cmocka_unit_test(engine_run_on_the_fake_executor_returns),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
