/* test_gate.c: the scheduler's write-ahead gate with a fake gate (no store,
 * no process): a task's dependents start only after a gate answer to a
 * request made once the task was final; hooks and the run's end wait for
 * it too; a failing gate stops the run with nothing more started; tasks
 * seeded final from before (resume) do not run and release their
 * dependents; measured weights order the ready tasks. */
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
#include "sched/sched.h"
#include "util/buf.h"

/* The fake gate: answers each request after delay_ms (or fails one). */
struct gate {
	struct sched *s;
	const struct dagrun_workflow *wf;
	uv_timer_t timer;
	uint64_t delay_ms;
	uint32_t requests, answers, urgent, hurries;
	uint64_t lazy_ms;         /* a request that is not urgent waits this (0: delay_ms) */
	int fail_at;              /* the request (1-based) answered with -ENOSPC; 0: none */
	bool busy;
	uint8_t *final;           /* per task: the observers saw it final */
	uint8_t *asked;           /* final when a request was made */
	uint8_t *committed;       /* covered by an answered request */
	uint8_t *pending;         /* final when the request in flight was made */
	uint32_t violations;      /* a start before its dependencies were committed */
	uint32_t *started;        /* attempts started per task */
	bool done_before_answer;  /* sched_done() while a request was in flight */
	bool ended_committed;     /* at the end, every final task was committed */
	uint32_t *order;
	uint32_t n_order;
};

static void answer(uv_timer_t *h);

/* The gate was told the run now waits: answer at once. */
static void hurry(void *ud)
{
	struct gate *g = ud;
	g->hurries++;
	uv_timer_start(&g->timer, answer, 0, 0);
}

static void answer(uv_timer_t *h)
{
	struct gate *g = h->data;
	g->answers++;
	g->busy = false;
	if (sched_done(g->s))
		g->done_before_answer = true;
	int status = g->fail_at && (int)g->answers == g->fail_at ? -ENOSPC : 0;
	if (status == 0)
		for (uint32_t t = 0; t < g->wf->n_tasks; t++)
			if (g->pending[t])
				g->committed[t] = 1;
	sched_gate_open(g->s, status);
}

static int request(void *ud, bool urgent)
{
	struct gate *g = ud;
	if (urgent)
		g->urgent++;
	assert_false(g->busy);          /* one request in flight at a time */
	g->busy = true;
	g->requests++;
	memcpy(g->pending, g->final, g->wf->n_tasks);
	uv_timer_start(&g->timer, answer, !urgent && g->lazy_ms ? g->lazy_ms : g->delay_ms, 0);
	return 0;
}

static void observe(void *ud, const dagrun_event *ev)
{
	struct gate *g = ud;
	uint32_t t = ev->task_index;
	const struct dagrun_workflow *wf = g->wf;
	if (ev->type == DAGRUN_EV_ATTEMPT_START) {
		g->started[t]++;
		g->order[g->n_order++] = t;
		const struct dr_task *k = &wf->tasks[t];
		for (uint32_t i = 0; i < k->dep_count; i++)
			if (!g->committed[wf->deps[k->dep_first + i].target])
				g->violations++;
	}
	if (ev->type == DAGRUN_EV_TASK_STATUS &&
	    (ev->status == DAGRUN_COMPLETED || ev->status == DAGRUN_FAILED ||
	     ev->status == DAGRUN_SKIPPED || ev->status == DAGRUN_CANCELLED))
		g->final[t] = 1;
}

static struct fake_outcome decide(void *ud, const struct exec_attempt *a)
{
	(void)ud;
	(void)a;
	return (struct fake_outcome){.ok = true, .duration_ms = 1};
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

static uint32_t task(const struct dagrun_workflow *wf, const char *id)
{
	uint32_t sym = intern_find(&wf->ids, id, strlen(id));
	assert_true(sym != INTERN_NONE);
	return wf->sym_task[sym];
}

struct setup {
	uint64_t delay_ms;
	int fail_at;
	bool no_gate;
	uint64_t lazy_ms;
	const int *seed_status;   /* per task: -1, or seeded final with it */
	const uint64_t *weights;  /* or NULL */
	uint32_t jobs;
};

/* Runs wf on the fake executor behind the fake gate; returns s.error. */
static int run(const struct dagrun_workflow *wf, struct gate *g, const struct setup *su)
{
	uint32_t n = wf->n_tasks;
	memset(g, 0, sizeof(*g));
	g->wf = wf;
	g->delay_ms = su->delay_ms;
	g->fail_at = su->fail_at;
	g->lazy_ms = su->lazy_ms;
	g->final = calloc(n, 1);
	g->asked = calloc(n, 1);
	g->committed = calloc(n, 1);
	g->pending = calloc(n, 1);
	g->started = calloc(n, sizeof(uint32_t));
	g->order = calloc(4 * n + 1, sizeof(uint32_t));
	uv_loop_t loop;
	uv_loop_init(&loop);
	uv_timer_init(&loop, &g->timer);
	g->timer.data = g;
	struct executor *fx = fake_executor_new(&loop, decide, g);
	struct executor *ex[DR_MAX_KINDS];
	for (int k = 0; k < DR_MAX_KINDS; k++)
		ex[k] = fx;
	struct sched s;
	assert_int_equal(sched_init(&s, wf, &loop, ex, su->jobs ? su->jobs : 4, "test", 42), 0);
	g->s = &s;
	struct observer *o = calloc(1, sizeof(*o));
	o->fn = observe;
	o->ud = g;
	s.obs = o;
	s.n_obs = 1;
	if (!su->no_gate) {
		struct sched_gate gt = {request, hurry, g};
		sched_set_gate(&s, &gt);
	}
	if (su->weights)
		sched_set_weights(&s, su->weights);
	for (uint32_t t = 0; su->seed_status && t < n; t++)
		if (su->seed_status[t] >= 0) {
			sched_seed(&s, t, su->seed_status[t], 0);
			g->committed[t] = 1;   /* recorded before this run */
		}
	sched_start(&s);
	uv_run(&loop, UV_RUN_DEFAULT);
	assert_true(sched_done(&s));
	g->ended_committed = true;
	for (uint32_t t = 0; t < n; t++)
		if (g->final[t] && !g->committed[t])
			g->ended_committed = false;
	int err = s.error;
	fx->ops->destroy(fx);
	uv_close((uv_handle_t *)&g->timer, NULL);
	uv_run(&loop, UV_RUN_DEFAULT);
	sched_free(&s);
	assert_int_equal(uv_loop_close(&loop), 0);
	return err;
}

static void gate_free(struct gate *g)
{
	free(g->final);
	free(g->asked);
	free(g->committed);
	free(g->pending);
	free(g->started);
	free(g->order);
}

/* A random layered DAG as YAML, with hooks. */
static char *random_dag(uint32_t n, uint64_t seed)
{
	struct buf b = BUF_INIT;
	uint64_t rng = seed;
	buf_printf(&b, "name: random\ntasks:\n");
	for (uint32_t i = 0; i < n; i++) {
		buf_printf(&b, "  - id: t%u\n    command: \"true\"\n", i);
		if (i == 0)
			continue;
		uint32_t k = (uint32_t)(backoff_random(&rng) * 4);
		if (!k)
			continue;
		buf_printf(&b, "    dependencies: [");
		uint32_t used[4], nu = 0;
		for (uint32_t j = 0; j < k; j++) {
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
	buf_printf(&b, "onSuccess:\n  - {id: ok, command: 'true'}\n"
		       "onExit:\n  - {id: bye, command: 'true', dependencies: [ok]}\n");
	return buf_steal(&b);
}

static void dependents_start_only_after_the_gate_committed_their_dependencies(void **state)
{
	(void)state;
	for (uint64_t seed = 1; seed <= 6; seed++) {
		char *yaml = random_dag(200, seed * 31);
		dagrun_workflow *wf = load(yaml);
		free(yaml);
		struct gate g;
		struct setup su = {.delay_ms = seed % 2 ? 0 : 2, .jobs = (uint32_t)seed % 4 + 1};
		assert_int_equal(run(wf, &g, &su), 0);
		assert_int_equal(g.violations, 0);
		for (uint32_t t = 0; t < wf->n_tasks; t++)
			assert_int_equal(g.started[t], 1);
		assert_true(g.requests > 0);
		assert_int_equal(g.requests, g.answers);
		/* Grouped: far fewer requests than tasks when tasks overlap. */
		assert_true(g.requests <= wf->n_tasks);
		assert_true(g.ended_committed);
		assert_false(g.done_before_answer);
		gate_free(&g);
		dagrun_workflow_free(wf);
	}
}

static void hooks_and_the_end_of_the_run_wait_for_the_gate(void **state)
{
	(void)state;
	dagrun_workflow *wf = load(
		"name: chain\n"
		"tasks:\n"
		"  - {id: a, command: 'true'}\n"
		"onSuccess:\n"
		"  - {id: hook, command: 'true'}\n");
	struct gate g;
	struct setup su = {.delay_ms = 50};
	assert_int_equal(run(wf, &g, &su), 0);
	/* a, then its commit, then the hook (a phase waits for the gate),
	 * then the hook's commit before the run may end. */
	assert_int_equal(g.n_order, 2);
	assert_int_equal(g.violations, 0);
	assert_int_equal(g.requests, 2);
	assert_int_equal(g.answers, 2);
	assert_false(g.done_before_answer);
	assert_true(g.ended_committed);
	gate_free(&g);
	dagrun_workflow_free(wf);
}

static void a_hook_starts_only_after_the_main_tasks_are_committed(void **state)
{
	(void)state;
	dagrun_workflow *wf = load(
		"name: chain\n"
		"tasks:\n"
		"  - {id: a, command: 'true'}\n"
		"  - {id: b, command: 'true'}\n"
		"onExit:\n"
		"  - {id: hook, command: 'true'}\n");
	struct gate g;
	struct setup su = {.delay_ms = 30};
	assert_int_equal(run(wf, &g, &su), 0);
	/* When the hook started, a and b had been committed. */
	uint32_t hook = task(wf, "hook");
	assert_int_equal(g.order[g.n_order - 1], hook);
	assert_true(g.committed[task(wf, "a")] && g.committed[task(wf, "b")]);
	assert_true(g.ended_committed);
	gate_free(&g);
	dagrun_workflow_free(wf);
}

static void a_failing_gate_stops_the_run_and_starts_nothing_more(void **state)
{
	(void)state;
	dagrun_workflow *wf = load(
		"name: chain\n"
		"tasks:\n"
		"  - {id: a, command: 'true'}\n"
		"  - {id: b, command: 'true', dependencies: [a]}\n"
		"  - {id: c, command: 'true', dependencies: [b]}\n"
		"onFailure:\n"
		"  - {id: hook, command: 'true'}\n");
	struct gate g;
	struct setup su = {.delay_ms = 5, .fail_at = 1};
	assert_int_equal(run(wf, &g, &su), -ENOSPC);
	assert_int_equal(g.n_order, 1);            /* a only */
	assert_int_equal(g.started[task(wf, "b")], 0);
	assert_int_equal(g.started[task(wf, "hook")], 0);
	assert_int_equal(g.violations, 0);
	gate_free(&g);
	dagrun_workflow_free(wf);
}

static void requests_are_urgent_only_when_the_run_waits_and_are_hurried_then(void **state)
{
	(void)state;
	/* A chain: after each task the run waits, every request is urgent. */
	dagrun_workflow *wf = load(
		"name: chain\n"
		"tasks:\n"
		"  - {id: a, command: 'true'}\n"
		"  - {id: b, command: 'true', dependencies: [a]}\n"
		"  - {id: c, command: 'true', dependencies: [b]}\n");
	struct gate g;
	struct setup su = {.delay_ms = 1, .lazy_ms = 60000, .jobs = 1};
	assert_int_equal(run(wf, &g, &su), 0);
	assert_int_equal(g.requests, 3);
	assert_int_equal(g.urgent, 3);
	gate_free(&g);
	dagrun_workflow_free(wf);
	/* Wide, one slot: while other tasks keep it busy the requests may
	 * wait (60 s here); the run ends in time only because each is hurried
	 * once the run comes to wait for it. */
	char *yaml = random_dag(60, 7);
	wf = load(yaml);
	free(yaml);
	su.jobs = 2;
	assert_int_equal(run(wf, &g, &su), 0);
	assert_int_equal(g.violations, 0);
	assert_true(g.urgent < g.requests);
	assert_true(g.hurries > 0);
	assert_true(g.ended_committed);
	gate_free(&g);
	dagrun_workflow_free(wf);
}

static void without_a_gate_nothing_waits(void **state)
{
	(void)state;
	dagrun_workflow *wf = load(
		"name: chain\n"
		"tasks:\n"
		"  - {id: a, command: 'true'}\n"
		"  - {id: b, command: 'true', dependencies: [a]}\n");
	struct gate g;
	struct setup su = {.no_gate = true};
	assert_int_equal(run(wf, &g, &su), 0);
	assert_int_equal(g.requests, 0);
	assert_int_equal(g.n_order, 2);
	gate_free(&g);
	dagrun_workflow_free(wf);
}

static void seeded_tasks_do_not_run_and_release_their_dependents(void **state)
{
	(void)state;
	dagrun_workflow *wf = load(
		"name: resume\n"
		"tasks:\n"
		"  - {id: a, command: 'true'}\n"
		"  - {id: b, command: 'true', dependencies: [a]}\n"
		"  - {id: f, command: 'true'}\n"
		"  - {id: g, command: 'true', dependencies: [f]}\n"
		"  - {id: c, command: 'true', dependencies: [b]}\n"
		"onFailure:\n"
		"  - {id: hook, command: 'true'}\n");
	int seed[6];
	for (int i = 0; i < 6; i++)
		seed[i] = -1;
	seed[task(wf, "a")] = DAGRUN_COMPLETED;
	seed[task(wf, "b")] = DAGRUN_COMPLETED;
	seed[task(wf, "f")] = DAGRUN_FAILED;
	struct gate g;
	struct setup su = {.delay_ms = 1, .seed_status = seed};
	assert_int_equal(run(wf, &g, &su), 0);
	assert_int_equal(g.started[task(wf, "a")], 0);
	assert_int_equal(g.started[task(wf, "b")], 0);
	assert_int_equal(g.started[task(wf, "f")], 0);
	assert_int_equal(g.started[task(wf, "c")], 1);   /* its dependency was kept */
	assert_int_equal(g.started[task(wf, "g")], 0);   /* f failed: g fails as a dependency */
	assert_int_equal(g.started[task(wf, "hook")], 1); /* a kept failure counts */
	assert_int_equal(g.violations, 0);
	gate_free(&g);
	dagrun_workflow_free(wf);
}

static void measured_weights_order_the_ready_tasks(void **state)
{
	(void)state;
	dagrun_workflow *wf = load(
		"name: weights\n"
		"tasks:\n"
		"  - {id: short1, command: 'true'}\n"
		"  - {id: short2, command: 'true', dependencies: [short1]}\n"
		"  - {id: long, command: 'true'}\n");
	/* By count, short1 heads the longer chain; measured, long does. */
	uint64_t cost[3];
	cost[task(wf, "short1")] = 10;
	cost[task(wf, "short2")] = 10;
	cost[task(wf, "long")] = 5000;
	uint64_t w[3];
	graph_weigh(wf->graph, cost, w);
	assert_true(w[task(wf, "long")] > w[task(wf, "short1")]);
	assert_int_equal(w[task(wf, "short1")], 20);
	struct gate g;
	struct setup su = {.weights = w, .jobs = 1};
	assert_int_equal(run(wf, &g, &su), 0);
	assert_int_equal(g.order[0], task(wf, "long"));
	gate_free(&g);
	/* Without them, the chain of two first. */
	struct setup su2 = {.jobs = 1};
	assert_int_equal(run(wf, &g, &su2), 0);
	assert_int_equal(g.order[0], task(wf, "short1"));
	gate_free(&g);
	dagrun_workflow_free(wf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(dependents_start_only_after_the_gate_committed_their_dependencies),
		cmocka_unit_test(hooks_and_the_end_of_the_run_wait_for_the_gate),
		cmocka_unit_test(a_hook_starts_only_after_the_main_tasks_are_committed),
		cmocka_unit_test(a_failing_gate_stops_the_run_and_starts_nothing_more),
		cmocka_unit_test(requests_are_urgent_only_when_the_run_waits_and_are_hurried_then),
		cmocka_unit_test(without_a_gate_nothing_waits),
		cmocka_unit_test(seeded_tasks_do_not_run_and_release_their_dependents),
		cmocka_unit_test(measured_weights_order_the_ready_tasks),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
