/* test_sched.c: the scheduler driven by the fake executor (no process is
 * spawned): dependency order, the concurrency limit, resource pools without
 * starvation, retries, failure propagation, hooks and interruption. */
#include <errno.h>
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
#include "model/model.h"
#include "sched/backoff.h"
#include "sched/flow.h"
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
	uint64_t *start_ms, *ready_ms; /* of each ATTEMPT_START, in start order */
	uint64_t *end_ms;     /* per task, of its last ATTEMPT_END */
	/* the fake's script: task t fails its first fail_first[t] attempts */
	uint32_t *fail_first;
	uint8_t *fail_class;
	uint64_t duration_ms;
	uint64_t *task_ms;         /* per task, overrides duration_ms when set */
	uint32_t interrupt_after;  /* interrupt after this many starts (0: never) */
	uint32_t interrupt_on;     /* interrupt when this task + 1 starts (0: never) */
	bool with_flow;            /* conditions and `when` evaluated (a real flow) */
	bool no_api_executor;      /* api tasks cannot start: start() fails at once */
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
		tr->start_ms[tr->n_order] = ev->ts_ms;
		tr->ready_ms[tr->n_order] = ev->ready_ms;
		tr->order[tr->n_order++] = t;
		if (++tr->running > tr->max_running)
			tr->max_running = tr->running;
		for (uint32_t i = 0; i < wf->tasks[t].opts->n_res; i++) {
			const struct dr_res *r = &wf->tasks[t].opts->res[i];
			tr->pool_used[r->pool] += r->units;
			if (tr->pool_used[r->pool] > tr->pool_max[r->pool])
				tr->pool_max[r->pool] = tr->pool_used[r->pool];
		}
		if ((tr->interrupt_after && tr->n_order == tr->interrupt_after) ||
		    (tr->interrupt_on && tr->interrupt_on == t + 1)) {
			/* As a signal would: from the loop, not inside this event. */
			uv_timer_init(tr->s->loop, &tr->interrupt_timer);
			tr->interrupt_timer.data = tr;
			uv_timer_start(&tr->interrupt_timer, interrupt_now, 0, 0);
		}
		break;
	case DAGRUN_EV_ATTEMPT_END:
		tr->end_seq[t] = tr->seq++;
		tr->end_ms[t] = ev->end_ms;
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
	if (tr->task_ms && tr->task_ms[a->task])
		o.duration_ms = tr->task_ms[a->task];
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
	tr->start_ms = calloc(n * 110 + 1, sizeof(uint64_t));
	tr->ready_ms = calloc(n * 110 + 1, sizeof(uint64_t));
	tr->end_ms = calloc(n + 1, sizeof(uint64_t));
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
	free(tr->start_ms);
	free(tr->ready_ms);
	free(tr->end_ms);
	free(tr->pool_used);
	free(tr->pool_max);
	free(tr->fail_first);
	free(tr->fail_class);
	free(tr->task_ms);
}

/* Runs wf on the fake executor; returns what sched reports at the end. */
static void run(struct trace *tr, uint32_t max_parallel)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	struct executor *fx = fake_executor_new(&loop, decide, tr);
	struct executor *ex[DR_MAX_KINDS];
	for (int k = 0; k < DR_MAX_KINDS; k++)
		ex[k] = fx;
	for (uint32_t k = 0; k < tr->wf->n_kinds && tr->no_api_executor; k++)
		if (!strcmp(tr->wf->kinds[k]->name, "api"))
			ex[k] = NULL;
	struct sched s;
	assert_int_equal(sched_init(&s, tr->wf, &loop, ex, max_parallel, "test", 42), 0);
	struct flow *f = NULL;
	if (tr->with_flow) {
		struct flow_opts fo = {.run_id = "test"};
		dagrun_diags *d = dagrun_diags_new(0);
		assert_int_equal(flow_new(&f, tr->wf, &fo, d), 0);
		dagrun_diags_free(d);
		s.flow = f;
	}
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
	flow_free(f);
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

/* One slot, two tasks ready at once: the second started waits for the
 * first's 300 ms while ready; a retry becomes ready after its delay. Each
 * ATTEMPT_START says when it became ready (what the store records and the
 * report draws apart from running time). Bounds are one-sided or halved:
 * a loaded machine only makes waits longer. */
static void attempt_start_carries_its_ready_time(void **state)
{
	(void)state;
	dagrun_workflow *wf = load(
		"name: ready\n"
		"tasks:\n"
		"  - {id: a, command: 'true'}\n"
		"  - {id: b, command: 'true'}\n"
		"  - id: flaky\n"
		"    command: 'true'\n"
		"    dependencies: [a, b]\n"
		"    retry: {maxAttempts: 2, initialDelay: 400ms, jitter: none}\n");
	struct trace tr;
	trace_init(&tr, wf);
	tr.duration_ms = 300;
	tr.fail_first = calloc(wf->n_tasks, sizeof(uint32_t));
	tr.fail_first[task(wf, "flaky")] = 1;
	run(&tr, 1);
	assert_int_equal(tr.n_order, 4);
	for (uint32_t i = 0; i < tr.n_order; i++) {
		assert_true(tr.ready_ms[i] != 0);
		assert_true(tr.ready_ms[i] <= tr.start_ms[i]);
	}
	/* the second of a and b waited for the first */
	assert_true(tr.start_ms[1] - tr.ready_ms[1] >= 150);
	/* flaky's retry became ready at its delay's end, after attempt 1 */
	assert_int_equal(tr.order[3], task(wf, "flaky"));
	assert_true(tr.ready_ms[3] >= tr.start_ms[2] + 300 + 400 / 2);
	assert_int_equal(tr.status[task(wf, "flaky")], DAGRUN_COMPLETED);
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

/* n pools of capacity 1, and per pool in `busy` three tasks that each want
 * one unit of that pool: two of them always wait. */
static char *many_pools_yaml(uint32_t n, const uint32_t *busy, uint32_t n_busy)
{
	struct buf b = BUF_INIT;
	buf_printf(&b, "name: pools\nresources:\n");
	for (uint32_t p = 0; p < n; p++)
		buf_printf(&b, "  p%u: 1\n", p);
	buf_printf(&b, "tasks:\n  - {id: first, command: 'true'}\n");
	for (uint32_t i = 0; i < n_busy; i++)
		for (int k = 0; k < 3; k++)
			buf_printf(&b, "  - {id: t%u_%d, command: 'true', resources: {p%u: 1}}\n",
				   busy[i], k, busy[i]);
	return buf_steal(&b);
}

static void run_many_pools(uint32_t n, const uint32_t *busy, uint32_t n_busy)
{
	char *yaml = many_pools_yaml(n, busy, n_busy);
	dagrun_workflow *wf = load(yaml);
	free(yaml);
	assert_int_equal(wf->n_pools, n);
	struct trace tr;
	trace_init(&tr, wf);
	tr.duration_ms = 5;
	run(&tr, 16);
	for (uint32_t t = 0; t < wf->n_tasks; t++)
		assert_int_equal(tr.status[t], DAGRUN_COMPLETED);
	for (uint32_t p = 0; p < n; p++)
		assert_true(tr.pool_max[p] <= 1);
	for (uint32_t i = 0; i < n_busy; i++)
		assert_int_equal(tr.pool_max[busy[i]], 1);
	trace_free(&tr);
	dagrun_workflow_free(wf);
}

static void tasks_wait_on_the_256th_pool_and_beyond(void **state)
{
	(void)state;
	/* The 256th pool (index 255) was an internal error, ENOMEM, exit 3. */
	run_many_pools(256, (const uint32_t[]){255}, 1);
	run_many_pools(300, (const uint32_t[]){0, 254, 255, 256, 299}, 5);
}

static void tasks_wait_on_the_last_pool_at_the_cap(void **state)
{
	(void)state;
	uint32_t last = DR_MAX_POOLS - 1;
	run_many_pools(DR_MAX_POOLS, (const uint32_t[]){0, 255, last / 2, last}, 4);
}

static void one_pool_more_than_the_cap_is_refused_with_a_message(void **state)
{
	(void)state;
	char *yaml = many_pools_yaml(DR_MAX_POOLS + 1, NULL, 0);
	dagrun_workflow *wf = NULL;
	dagrun_diags *d = dagrun_diags_new(0);
	assert_int_equal(dagrun_workflow_load_buffer("test.yaml", yaml, strlen(yaml), &wf, d),
			 -EINVAL);
	assert_null(wf);
	assert_true(dagrun_diags_count(d) >= 1);
	const dagrun_diag *e = dagrun_diags_get(d, 0);
	char want[64];
	snprintf(want, sizeof(want), "at most %u resource pools", DR_MAX_POOLS);
	assert_non_null(strstr(e->message, want));
	assert_int_equal(e->line, DR_MAX_POOLS + 3);   /* the first pool too many */
	dagrun_diags_free(d);
	free(yaml);
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


/* ---- every way a task becomes final x every kind of dependent ----------- */

/* How x becomes final. */
enum way {
	W_COMPLETED, W_FAILED, W_FAILED_RETRIES, W_WHEN_FALSE, W_WHEN_ERROR,
	W_COND_FALSE, W_COND_ERROR, W_DEP_FAILED, W_DEP_WHEN_SKIPPED, W_CANCELLED,
	W_COUNT
};

static const char *const way_name[] = {
	"completed", "failed", "failed after retries", "skipped by when",
	"failed by a when error", "skipped by a false condition",
	"failed by a condition error", "dependency failed",
	"dependency skipped by when", "cancelled",
};

/* Where x and its dependents sit. */
enum place { P_MAIN, P_ON_SUCCESS, P_ON_FAILURE, P_ON_EXIT, P_COUNT };

static const char *const place_name[] = {"main tasks", "onSuccess", "onFailure", "onExit"};

/* m (main; fails for onFailure), then up, then x, and x's dependents: blk
 * (blocking), nb (non-blocking), nb2 (non-blocking on blk, which may itself
 * fail as a dependency), blk2 (blocking on nb). The chain m -> up -> x makes
 * x's end the only thing going on, so nothing else wakes the scheduler. */
static char *matrix_yaml(int way, int place)
{
	static const char *const list[] = {NULL, "onSuccess", "onFailure", "onExit"};
	struct buf b = BUF_INIT;
	buf_printf(&b, "name: matrix\ntasks:\n  - {id: m, command: 'true'}\n");
	if (list[place])
		buf_printf(&b, "%s:\n", list[place]);
	buf_printf(&b, "  - {id: up, command: 'true'%s%s}\n",
		   way == W_DEP_WHEN_SKIPPED ? ", when: 'false'" : "",
		   list[place] ? "" : ", dependencies: [{taskId: m, type: non-blocking}]");
	buf_printf(&b, "  - {id: x, command: 'true'");
	switch (way) {
	case W_COND_FALSE:
		buf_printf(&b, ", dependencies: [{taskId: up, condition: 'status == \"failed\"'}]");
		break;
	case W_COND_ERROR:
		buf_printf(&b, ", dependencies: [{taskId: up, condition: 'error(\"boom\")'}]");
		break;
	case W_DEP_FAILED: case W_DEP_WHEN_SKIPPED:
		buf_printf(&b, ", dependencies: [up]");
		break;
	default:
		buf_printf(&b, ", dependencies: [{taskId: up, type: non-blocking}]");
		break;
	}
	switch (way) {
	case W_FAILED_RETRIES:
		buf_printf(&b, ", retry: {maxAttempts: 3, initialDelay: 1ms, maxDelay: 2ms}");
		break;
	case W_WHEN_FALSE: buf_printf(&b, ", when: 'false'"); break;
	case W_WHEN_ERROR: buf_printf(&b, ", when: 'error(\"boom\")'"); break;
	default: break;
	}
	buf_printf(&b, "}\n");
	buf_printf(&b,
		   "  - {id: blk, command: 'true', dependencies: [x]}\n"
		   "  - {id: nb, command: 'true', dependencies: [{taskId: x, type: non-blocking}]}\n"
		   "  - {id: nb2, command: 'true', dependencies: [{taskId: blk, type: non-blocking}]}\n"
		   "  - {id: blk2, command: 'true', dependencies: [nb]}\n");
	return buf_steal(&b);
}

static void check_matrix_case(int way, int place, uint32_t jobs)
{
	char *yaml = matrix_yaml(way, place);
	dagrun_workflow *wf = load(yaml);
	free(yaml);
	struct trace tr;
	trace_init(&tr, wf);
	tr.with_flow = true;
	tr.fail_first = calloc(wf->n_tasks, sizeof(uint32_t));
	tr.task_ms = calloc(wf->n_tasks, sizeof(uint64_t));
	uint32_t m = task(wf, "m"), up = task(wf, "up"), x = task(wf, "x");
	if (place == P_ON_FAILURE)
		tr.fail_first[m] = 100;
	if (way == W_FAILED || way == W_FAILED_RETRIES)
		tr.fail_first[x] = 100;
	if (way == W_DEP_FAILED)
		tr.fail_first[up] = 100;
	if (way == W_CANCELLED) {
		tr.task_ms[x] = 60000;   /* cut short by the interruption */
		tr.interrupt_on = x + 1;
	}
	print_message("%s, %s, -j %u\n", way_name[way], place_name[place], jobs);
	run(&tr, jobs);   /* asserts the run ended, with no internal error */

	static const int x_status[W_COUNT] = {
		DAGRUN_COMPLETED, DAGRUN_FAILED, DAGRUN_FAILED, DAGRUN_SKIPPED, DAGRUN_FAILED,
		DAGRUN_SKIPPED, DAGRUN_FAILED, DAGRUN_FAILED, DAGRUN_FAILED, DAGRUN_CANCELLED,
	};
	static const int x_class[W_COUNT] = {
		DR_CLASS_NONE, DR_CLASS_TRANSIENT, DR_CLASS_TRANSIENT, DR_CLASS_NONE,
		DR_CLASS_PERMANENT, DR_CLASS_NONE, DR_CLASS_PERMANENT, DR_CLASS_DEPENDENCY,
		DR_CLASS_DEPENDENCY, DR_CLASS_NONE,
	};
	assert_int_equal(tr.status[x], x_status[way]);
	assert_int_equal(tr.cls[x], x_class[way]);
	assert_int_equal(tr.attempts[x], way == W_FAILED_RETRIES ? 3 :
			 way == W_COMPLETED || way == W_FAILED || way == W_CANCELLED ? 1 : 0);
	uint32_t blk = task(wf, "blk"), nb = task(wf, "nb"), nb2 = task(wf, "nb2"),
		 blk2 = task(wf, "blk2");
	if (way == W_CANCELLED) {
		/* Interrupted: nothing more starts, the dependents stay pending. */
		assert_int_equal(tr.n_order, 3);   /* m, up, x */
		const uint32_t deps[] = {blk, nb, nb2, blk2};
		for (int i = 0; i < 4; i++) {
			assert_int_equal(tr.attempts[deps[i]], 0);
			assert_int_equal(tr.status[deps[i]], DAGRUN_PENDING);
		}
	} else {
		if (way == W_COMPLETED) {
			assert_int_equal(tr.status[blk], DAGRUN_COMPLETED);
		} else {
			assert_int_equal(tr.status[blk], DAGRUN_FAILED);
			assert_int_equal(tr.cls[blk], DR_CLASS_DEPENDENCY);
			assert_int_equal(tr.attempts[blk], 0);
		}
		/* Non-blocking: each runs once its dependency is final, however
		 * it became final; and what depends on it runs after it. */
		assert_int_equal(tr.status[nb], DAGRUN_COMPLETED);
		assert_int_equal(tr.status[nb2], DAGRUN_COMPLETED);
		assert_int_equal(tr.status[blk2], DAGRUN_COMPLETED);
		assert_true(tr.start_seq[blk2] > tr.end_seq[nb]);
	}
	trace_free(&tr);
	dagrun_workflow_free(wf);
}

static void every_way_to_be_final_releases_every_kind_of_dependent(void **state)
{
	(void)state;
	for (int place = 0; place < P_COUNT; place++)
		for (int way = 0; way < W_COUNT; way++)
			for (uint32_t jobs = 1; jobs <= 4; jobs += 3)
				check_matrix_case(way, place, jobs);
}

/* The list that does not apply (onFailure after a success, onSuccess after
 * a failure) is final as skipped for the onExit tasks that depend on it. */
static void passed_over_hook_releases_on_exit_dependents_of_both_kinds(void **state)
{
	(void)state;
	for (int fail = 0; fail <= 1; fail++) {
		for (uint32_t jobs = 1; jobs <= 4; jobs += 3) {
			char yaml[1024];
			snprintf(yaml, sizeof(yaml),
				 "name: over\n"
				 "tasks:\n  - {id: m, command: 'true'}\n"
				 "%s:\n  - {id: x, command: 'true'}\n"
				 "onExit:\n"
				 "  - {id: blk, command: 'true', dependencies: [x]}\n"
				 "  - {id: nb, command: 'true', dependencies: [{taskId: x, type: non-blocking}]}\n"
				 "  - {id: nb2, command: 'true', dependencies: [{taskId: blk, type: non-blocking}]}\n",
				 fail ? "onSuccess" : "onFailure");
			dagrun_workflow *wf = load(yaml);
			struct trace tr;
			trace_init(&tr, wf);
			tr.with_flow = true;
			tr.fail_first = calloc(wf->n_tasks, sizeof(uint32_t));
			tr.fail_first[task(wf, "m")] = fail ? 100 : 0;
			run(&tr, jobs);
			assert_int_equal(tr.attempts[task(wf, "x")], 0);
			assert_int_equal(tr.status[task(wf, "blk")], DAGRUN_FAILED);
			assert_int_equal(tr.cls[task(wf, "blk")], DR_CLASS_DEPENDENCY);
			assert_int_equal(tr.status[task(wf, "nb")], DAGRUN_COMPLETED);
			assert_int_equal(tr.status[task(wf, "nb2")], DAGRUN_COMPLETED);
			trace_free(&tr);
			dagrun_workflow_free(wf);
		}
	}
}

/* A long chain where every other link is skipped by `when` and linked to
 * the next by a non-blocking edge: each skip must release the next link. */
static void chain_of_when_skips_over_non_blocking_edges_runs_to_the_end(void **state)
{
	(void)state;
	struct buf b = BUF_INIT;
	buf_printf(&b, "name: chain\ntasks:\n  - {id: t0, command: 'true', when: 'false'}\n");
	for (int i = 1; i < 2000; i++)
		buf_printf(&b, "  - {id: t%d, command: 'true'%s, dependencies: "
			   "[{taskId: t%d, type: non-blocking}]}\n", i,
			   i % 2 ? "" : ", when: 'false'", i - 1);
	dagrun_workflow *wf = load(b.data);
	buf_free(&b);
	struct trace tr;
	trace_init(&tr, wf);
	tr.with_flow = true;
	run(&tr, 3);
	for (uint32_t t = 0; t < wf->n_tasks; t++)
		assert_int_equal(tr.status[t], t % 2 ? DAGRUN_COMPLETED : DAGRUN_SKIPPED);
	trace_free(&tr);
	dagrun_workflow_free(wf);
}

/* A start that fails at once (here: no executor for the kind) ends its
 * attempt inside the dispatch pass; the task waiting behind it on the pool
 * must still run, not be settled as stuck by that nested end. */
static void failed_start_inside_dispatch_does_not_strand_pool_waiters(void **state)
{
	(void)state;
	dagrun_workflow *wf = load(
		"name: nested\n"
		"resources: {slot: 1}\n"
		"tasks:\n"
		"  - {id: x, command: 'true', resources: {slot: 1}, priority: 10}\n"
		"  - {id: a, api: {url: 'http://127.0.0.1:9/'}, resources: {slot: 1}, priority: 5}\n"
		"  - {id: b, command: 'true', resources: {slot: 1}}\n");
	struct trace tr;
	trace_init(&tr, wf);
	tr.no_api_executor = true;
	tr.duration_ms = 20;
	run(&tr, 4);
	assert_int_equal(tr.status[task(wf, "x")], DAGRUN_COMPLETED);
	assert_int_equal(tr.status[task(wf, "a")], DAGRUN_FAILED);
	assert_int_equal(tr.status[task(wf, "b")], DAGRUN_COMPLETED);
	assert_true(tr.pool_max[0] <= 1);
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
		cmocka_unit_test(attempt_start_carries_its_ready_time),
		cmocka_unit_test(attempts_are_exact_when_every_attempt_fails),
		cmocka_unit_test(permanent_failure_is_not_retried),
		cmocka_unit_test(blocking_failure_fails_dependents_and_the_rest_goes_on),
		cmocka_unit_test(long_failed_chain_propagates_without_recursion),
		cmocka_unit_test(pools_are_never_exceeded_and_taken_all_or_nothing),
		cmocka_unit_test(large_request_is_not_starved_by_small_ones),
		cmocka_unit_test(tasks_wait_on_the_256th_pool_and_beyond),
		cmocka_unit_test(tasks_wait_on_the_last_pool_at_the_cap),
		cmocka_unit_test(one_pool_more_than_the_cap_is_refused_with_a_message),
		cmocka_unit_test(failure_runs_on_failure_and_on_exit_hooks_only),
		cmocka_unit_test(interrupt_cancels_running_and_starts_nothing_more),
		cmocka_unit_test(on_exit_hook_depending_on_an_unused_hook_still_runs),
		cmocka_unit_test(engine_run_on_the_fake_executor_returns),
		cmocka_unit_test(every_way_to_be_final_releases_every_kind_of_dependent),
		cmocka_unit_test(passed_over_hook_releases_on_exit_dependents_of_both_kinds),
		cmocka_unit_test(chain_of_when_skips_over_non_blocking_edges_runs_to_the_end),
		cmocka_unit_test(failed_start_inside_dispatch_does_not_strand_pool_waiters),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
