/* test_graph.c: graph_build: CSR arrays, topological order, cycle reports,
 * critical-path weights, limits. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph/graph.h"
#include "wfbuild.h"

/* ---- helpers ------------------------------------------------------------ */

struct rng {
	uint64_t s;
};

static uint32_t rnd(struct rng *r, uint32_t n)
{
	r->s ^= r->s << 13;
	r->s ^= r->s >> 7;
	r->s ^= r->s << 17;
	return (uint32_t)(r->s % n);
}

/* The ids of wf's topological order, space-separated (caller frees). */
static char *topo_ids(const struct dagrun_workflow *wf)
{
	char *s = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&s, &len);
	assert_non_null(f);
	for (uint32_t i = 0; i < wf->graph->n; i++)
		fprintf(f, "%s%s", i ? " " : "", wf_task_id(wf, wf->graph->topo[i]));
	fclose(f);
	return s;
}

static struct dagrun_workflow *built(const char *spec)
{
	struct dagrun_workflow *wf = wfb_parse(spec);
	dagrun_diags *d = dagrun_diags_new(0);
	assert_int_equal(graph_build(wf, d), 0);
	assert_int_equal(dagrun_diags_count(d), 0);
	assert_non_null(wf->graph);
	dagrun_diags_free(d);
	return wf;
}

static void assert_order(const char *spec, const char *order)
{
	struct dagrun_workflow *wf = built(spec);
	char *ids = topo_ids(wf);
	assert_string_equal(ids, order);
	free(ids);
	dagrun_workflow_free(wf);
}

/* Builds spec, expects -EINVAL and exactly the given cycle messages, in
 * order, each at the line of `lines[i]` (column 7). */
static void assert_cycles(const char *spec, size_t n, const char *const *msgs,
			  const unsigned *lines)
{
	struct dagrun_workflow *wf = wfb_parse(spec);
	dagrun_diags *d = dagrun_diags_new(0);
	assert_int_equal(graph_build(wf, d), -EINVAL);
	assert_null(wf->graph);
	assert_int_equal(dagrun_diags_count(d), n);
	assert_int_equal(dagrun_diags_errors(d), n);
	for (size_t i = 0; i < n; i++) {
		const dagrun_diag *g = dagrun_diags_get(d, i);
		assert_string_equal(g->message, msgs[i]);
		assert_string_equal(g->file, "test.yaml");
		assert_int_equal(g->line, lines[i]);
		assert_int_equal(g->column, 7);
		assert_int_equal(g->severity, DAGRUN_ERROR);
	}
	dagrun_diags_free(d);
	dagrun_workflow_free(wf);
}

/* A random DAG of n tasks declared in random order: task t depends only on
 * tasks of smaller rank; rank is a random permutation. */
static struct dagrun_workflow *random_dag(struct rng *r, uint32_t n, uint32_t pct)
{
	uint32_t *rank = malloc(n * sizeof(*rank));
	for (uint32_t i = 0; i < n; i++)
		rank[i] = i;
	for (uint32_t i = n; i > 1; i--) {
		uint32_t j = rnd(r, i), tmp = rank[i - 1];
		rank[i - 1] = rank[j];
		rank[j] = tmp;
	}
	struct wfb b;
	char id[32], on[32];
	wfb_init(&b, "random");
	for (uint32_t t = 0; t < n; t++) {
		snprintf(id, sizeof(id), "t%u", t);
		wfb_task(&b, id, WFB_COMMAND, DR_HOOK_NONE);
		for (uint32_t u = 0; u < n; u++) {
			if (rank[u] < rank[t] && rnd(r, 100) < pct) {
				snprintf(on, sizeof(on), "t%u", u);
				wfb_dep(&b, on, rnd(r, 2), NULL);
			}
		}
	}
	free(rank);
	return wfb_finish(&b);
}

static int depends_on(const struct dagrun_workflow *wf, uint32_t t, uint32_t u)
{
	const struct dr_task *task = &wf->tasks[t];
	for (uint32_t i = 0; i < task->dep_count; i++)
		if (wf->deps[task->dep_first + i].target == u)
			return 1;
	return 0;
}

/* The CSR arrays list exactly wf's dependencies, dependents in order. */
static void check_csr(const struct dagrun_workflow *wf)
{
	const struct graph *g = wf->graph;
	assert_int_equal(g->n, wf->n_tasks);
	assert_int_equal(g->n_edges, wf->n_deps);
	assert_int_equal(g->out_off[0], 0);
	assert_int_equal(g->out_off[g->n], g->n_edges);
	for (uint32_t u = 0; u < g->n; u++) {
		assert_int_equal(g->indeg[u], wf->tasks[u].dep_count);
		assert_true(g->out_off[u] <= g->out_off[u + 1]);
		for (uint32_t e = g->out_off[u]; e < g->out_off[u + 1]; e++) {
			const struct dr_dep *d = &wf->deps[g->out_dep[e]];
			assert_int_equal(d->target, u);
			uint32_t t = g->out_task[e];
			assert_true(g->out_dep[e] >= wf->tasks[t].dep_first);
			assert_true(g->out_dep[e] < wf->tasks[t].dep_first +
						   wf->tasks[t].dep_count);
			if (e > g->out_off[u])
				assert_true(g->out_dep[e - 1] < g->out_dep[e]);
		}
	}
}

/* topo is a topological order, and at each step the first declared of the
 * ready tasks (simulated the slow way). */
static void check_topo(const struct dagrun_workflow *wf)
{
	const struct graph *g = wf->graph;
	uint32_t n = g->n;
	char *done = calloc(n ? n : 1, 1);
	for (uint32_t i = 0; i < n; i++) {
		uint32_t want = UINT32_MAX;
		for (uint32_t t = 0; t < n && want == UINT32_MAX; t++) {
			if (done[t])
				continue;
			int ready = 1;
			const struct dr_task *task = &wf->tasks[t];
			for (uint32_t k = 0; k < task->dep_count; k++)
				ready &= done[wf->deps[task->dep_first + k].target];
			if (ready)
				want = t;
		}
		assert_int_equal(g->topo[i], want);
		done[want] = 1;
	}
	free(done);
}

/* Property checks without the slow simulation: each task once, every
 * dependency before its dependent. */
static void check_topo_fast(const struct dagrun_workflow *wf)
{
	const struct graph *g = wf->graph;
	uint32_t *pos = malloc((g->n ? g->n : 1) * sizeof(*pos));
	for (uint32_t t = 0; t < g->n; t++)
		pos[t] = UINT32_MAX;
	for (uint32_t i = 0; i < g->n; i++) {
		assert_true(g->topo[i] < g->n);
		assert_int_equal(pos[g->topo[i]], UINT32_MAX);
		pos[g->topo[i]] = i;
	}
	for (uint32_t t = 0; t < g->n; t++) {
		const struct dr_task *task = &wf->tasks[t];
		for (uint32_t k = 0; k < task->dep_count; k++)
			assert_true(pos[wf->deps[task->dep_first + k].target] < pos[t]);
	}
	free(pos);
}

/* Longest chain of dependents, by relaxing until nothing changes. */
static void check_weights_brute(const struct dagrun_workflow *wf)
{
	uint32_t n = wf->n_tasks;
	uint32_t *w = malloc((n ? n : 1) * sizeof(*w));
	for (uint32_t t = 0; t < n; t++)
		w[t] = 1;
	for (int changed = 1; changed;) {
		changed = 0;
		for (uint32_t t = 0; t < n; t++)
			for (uint32_t u = 0; u < n; u++)
				if (depends_on(wf, u, t) && w[u] + 1 > w[t]) {
					w[t] = w[u] + 1;
					changed = 1;
				}
	}
	for (uint32_t t = 0; t < n; t++)
		assert_int_equal(wf->graph->weight[t], w[t]);
	free(w);
}

/* ---- order ---------------------------------------------------------------- */

static void random_dags_order_dependencies_first_each_task_once(void **state)
{
	(void)state;
	struct rng r = {0x9e3779b97f4a7c15ull};
	for (int i = 0; i < 400; i++) {
		uint32_t n = 1 + rnd(&r, 40), pct = 1 + rnd(&r, 60);
		struct dagrun_workflow *wf = random_dag(&r, n, pct);
		assert_int_equal(graph_build(wf, NULL), 0);
		check_csr(wf);
		check_topo_fast(wf);
		check_topo(wf);
		dagrun_workflow_free(wf);
	}
}

static void large_random_dag_order_is_topological(void **state)
{
	(void)state;
	struct rng r = {12345};
	struct dagrun_workflow *wf = random_dag(&r, 3000, 1);
	assert_int_equal(graph_build(wf, NULL), 0);
	check_csr(wf);
	check_topo_fast(wf);
	dagrun_workflow_free(wf);
}

static void ties_go_to_the_first_declared_ready_task(void **state)
{
	(void)state;
	assert_order("c b a", "c b a");
	assert_order("a b:d c d", "a c d b");
	assert_order("x:y y z", "y x z");
	assert_order("z:a y:a a", "a z y");
}

static void valid_declaration_order_is_kept(void **state)
{
	(void)state;
	assert_order("a b:a c d:b,c e:a,d f", "a b c d e f");
}

static void hook_tasks_are_ordered_with_the_rest(void **state)
{
	(void)state;
	struct wfb b;
	wfb_init(&b, "hooks");
	wfb_task(&b, "main", WFB_COMMAND, DR_HOOK_NONE);
	wfb_task(&b, "ok2", WFB_WEBHOOK, DR_HOOK_SUCCESS);
	wfb_dep(&b, "ok1", DR_DEP_BLOCKING, NULL);
	wfb_task(&b, "ok1", WFB_COMMAND, DR_HOOK_SUCCESS);
	wfb_task(&b, "bye", WFB_AI, DR_HOOK_EXIT);
	struct dagrun_workflow *wf = wfb_finish(&b);
	assert_int_equal(wf->n_main, 1);
	assert_int_equal(graph_build(wf, NULL), 0);
	char *ids = topo_ids(wf);
	assert_string_equal(ids, "main ok1 ok2 bye");
	free(ids);
	assert_int_equal(wf->graph->weight[2], 2);
	dagrun_workflow_free(wf);
}

static void empty_workflow_builds_an_empty_graph(void **state)
{
	(void)state;
	struct wfb b;
	wfb_init(&b, "empty");
	struct dagrun_workflow *wf = wfb_finish(&b);
	assert_int_equal(graph_build(wf, NULL), 0);
	assert_int_equal(wf->graph->n, 0);
	assert_int_equal(wf->graph->out_off[0], 0);
	dagrun_workflow_free(wf);
}

static void rebuilding_replaces_the_graph(void **state)
{
	(void)state;
	struct dagrun_workflow *wf = built("a b:a");
	assert_int_equal(graph_build(wf, NULL), 0);  /* the old one is freed: ASan */
	assert_non_null(wf->graph);
	assert_int_equal(wf->graph->weight[0], 2);
	dagrun_workflow_free(wf);
}

/* ---- cycles --------------------------------------------------------------- */

static void two_cycle_is_named_in_order(void **state)
{
	(void)state;
	const char *m[] = {"dependency cycle: a -> b -> a"};
	assert_cycles("a:b b:a", 1, m, (unsigned[]){1});
}

static void three_cycle_is_named_in_dependency_order(void **state)
{
	(void)state;
	const char *m1[] = {"dependency cycle: a -> b -> c -> a"};
	assert_cycles("a:b b:c c:a", 1, m1, (unsigned[]){1});
	const char *m2[] = {"dependency cycle: a -> c -> b -> a"};
	assert_cycles("a:c b:a c:b", 1, m2, (unsigned[]){1});
}

static void self_dependency_is_a_cycle_of_one(void **state)
{
	(void)state;
	const char *m[] = {"dependency cycle: b -> b"};
	assert_cycles("a b:a,b c:b", 1, m, (unsigned[]){2});
}

static void cycle_in_bigger_graph_names_only_its_tasks(void **state)
{
	(void)state;
	/* t1 -> t2 -> p leads into the cycle; after and down depend on it too;
	 * r also depends on ok1, which is fine. */
	const char *m[] = {"dependency cycle: p -> q -> r -> p"};
	assert_cycles("ok1 t1:t2 t2:p ok2:ok1 after:t1 p:q q:r r:ok1,p down:r,ok2",
		      1, m, (unsigned[]){6});
}

static void disjoint_cycles_are_all_reported(void **state)
{
	(void)state;
	const char *m1[] = {"dependency cycle: a -> b -> a",
			    "dependency cycle: c -> d -> c"};
	/* c's cycle also depends on a's: it is found all the same. */
	assert_cycles("a:b b:a c:d,a d:c", 2, m1, (unsigned[]){1, 3});
	const char *m2[] = {"dependency cycle: x -> y -> x",
			    "dependency cycle: u -> v -> u",
			    "dependency cycle: s -> s"};
	/* a path m, n between two cycles is not named */
	assert_cycles("ok x:y y:x m:x n:m,ok u:v,n v:u s:s,ok", 3, m2,
		      (unsigned[]){2, 6, 8});
}

static void cycles_sharing_a_task_are_reported_once_shortest(void **state)
{
	(void)state;
	const char *m[] = {"dependency cycle: a -> c -> a"};
	assert_cycles("a:b,c b:d d:a c:a", 1, m, (unsigned[]){1});
}

static void cycles_past_the_diags_cap_are_counted(void **state)
{
	(void)state;
	struct dagrun_workflow *wf = wfb_parse("a:b b:a c:d d:c e:f f:e g:g");
	dagrun_diags *d = dagrun_diags_new(2);
	assert_int_equal(graph_build(wf, d), -EINVAL);
	assert_int_equal(dagrun_diags_count(d), 2);
	assert_int_equal(dagrun_diags_errors(d), 4);
	assert_string_equal(dagrun_diags_get(d, 1)->message,
			    "dependency cycle: c -> d -> c");
	dagrun_diags_free(d);
	dagrun_workflow_free(wf);
}

static void long_ids_are_shortened_in_cycle_messages(void **state)
{
	(void)state;
	char id[1001], spec[3000];
	memset(id, 'x', 1000);
	id[1000] = '\0';
	snprintf(spec, sizeof(spec), "%s:b b:%s", id, id);
	struct dagrun_workflow *wf = wfb_parse(spec);
	dagrun_diags *d = dagrun_diags_new(0);
	assert_int_equal(graph_build(wf, d), -EINVAL);
	const char *msg = dagrun_diags_get(d, 0)->message;
	assert_true(strlen(msg) < 600);
	assert_non_null(strstr(msg, "x... -> b -> xxx"));
	dagrun_diags_free(d);
	dagrun_workflow_free(wf);
}

/* ---- weights -------------------------------------------------------------- */

static void assert_weights(const char *spec, const uint32_t *want)
{
	struct dagrun_workflow *wf = built(spec);
	for (uint32_t t = 0; t < wf->n_tasks; t++)
		assert_int_equal(wf->graph->weight[t], want[t]);
	dagrun_workflow_free(wf);
}

static void chain_weights_count_down_to_one(void **state)
{
	(void)state;
	assert_weights("a b:a c:b d:c", (uint32_t[]){4, 3, 2, 1});
	assert_weights("d:c c:b b:a a", (uint32_t[]){1, 2, 3, 4});
}

static void diamond_weight_takes_the_longer_branch(void **state)
{
	(void)state;
	assert_weights("a b:a c:a d:b,c", (uint32_t[]){3, 2, 2, 1});
	assert_weights("a b:a c:a x:c d:b,x", (uint32_t[]){4, 2, 3, 2, 1});
}

static void wide_fan_out_weights(void **state)
{
	(void)state;
	assert_weights("root x1:root x2:root x3:root x4:root tail:x3 lone",
		       (uint32_t[]){3, 1, 1, 2, 1, 1, 1});
}

static void random_dag_weights_match_brute_force(void **state)
{
	(void)state;
	struct rng r = {0xdeadbeefcafeull};
	for (int i = 0; i < 200; i++) {
		struct dagrun_workflow *wf = random_dag(&r, 1 + rnd(&r, 25),
							1 + rnd(&r, 50));
		assert_int_equal(graph_build(wf, NULL), 0);
		check_weights_brute(wf);
		dagrun_workflow_free(wf);
	}
}

/* ---- size and limits ------------------------------------------------------ */

#define BIG 1000000u

/* t_i depends on t_{i+1}: declared backwards, and t_{n-1} on t0 if cyclic. */
static struct dagrun_workflow *big_chain(int cyclic)
{
	struct wfb b;
	char id[32], on[32];
	wfb_init(&b, "chain");
	for (uint32_t i = 0; i < BIG; i++) {
		snprintf(id, sizeof(id), "t%u", i);
		wfb_task(&b, id, WFB_COMMAND, DR_HOOK_NONE);
		if (i + 1 < BIG || cyclic) {
			snprintf(on, sizeof(on), "t%u", (i + 1) % BIG);
			wfb_dep(&b, on, DR_DEP_BLOCKING, NULL);
		}
	}
	return wfb_finish(&b);
}

static void million_task_chain_builds_without_recursion(void **state)
{
	(void)state;
	struct dagrun_workflow *wf = big_chain(0);
	assert_int_equal(graph_build(wf, NULL), 0);
	const struct graph *g = wf->graph;
	for (uint32_t i = 0; i < BIG; i++) {
		assert_int_equal(g->topo[i], BIG - 1 - i);
		assert_int_equal(g->weight[i], i + 1);
	}
	dagrun_workflow_free(wf);
}

static void million_task_cycle_is_reported_shortened(void **state)
{
	(void)state;
	struct dagrun_workflow *wf = big_chain(1);
	dagrun_diags *d = dagrun_diags_new(0);
	assert_int_equal(graph_build(wf, d), -EINVAL);
	assert_int_equal(dagrun_diags_count(d), 1);
	const char *msg = dagrun_diags_get(d, 0)->message;
	assert_true(strlen(msg) < 5000);
	assert_memory_equal(msg, "dependency cycle: t0 -> t1 -> t2 -> ", 36);
	assert_non_null(strstr(msg, " more) -> t999999 -> t0"));
	const char *end = strstr(msg, " -> ... (");
	assert_non_null(end);
	/* the names shown and the count elided add up to the cycle */
	unsigned shown = 0, more = 0;
	for (const char *p = msg; p < end; p++)
		shown += !strncmp(p, " -> ", 4);
	assert_int_equal(sscanf(end, " -> ... (%u more)", &more), 1);
	assert_int_equal(shown + 1 + more + 1, BIG);
	dagrun_diags_free(d);
	dagrun_workflow_free(wf);
}

static void edges_beyond_uint32_are_e2big(void **state)
{
	(void)state;
	struct dagrun_workflow *wf = wfb_parse("a b");
	/* Ranges are checked before any dependency is read: deps stays NULL. */
	wf->tasks[0].dep_count = 0x80000000u;
	wf->tasks[1].dep_first = 0x80000000u;
	wf->tasks[1].dep_count = 0x80000000u;
	wf->n_deps = (uint64_t)1 << 32;
	assert_int_equal(graph_build(wf, NULL), -E2BIG);
	assert_null(wf->graph);
	wf->tasks[0].dep_count = wf->tasks[1].dep_count = 0;
	dagrun_workflow_free(wf);
}

static void dependency_out_of_range_is_an_internal_error(void **state)
{
	(void)state;
	struct dagrun_workflow *wf = wfb_parse("a b:a");
	wf->deps[0].target = 7;
	dagrun_diags *d = dagrun_diags_new(0);
	assert_int_equal(graph_build(wf, d), -EINVAL);
	assert_non_null(strstr(dagrun_diags_get(d, 0)->message, "internal error"));
	wf->deps[0].target = 0;
	wf->tasks[1].dep_count = 5;
	assert_int_equal(graph_build(wf, d), -EINVAL);
	assert_int_equal(dagrun_diags_count(d), 2);
	dagrun_diags_free(d);
	dagrun_workflow_free(wf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(random_dags_order_dependencies_first_each_task_once),
		cmocka_unit_test(large_random_dag_order_is_topological),
		cmocka_unit_test(ties_go_to_the_first_declared_ready_task),
		cmocka_unit_test(valid_declaration_order_is_kept),
		cmocka_unit_test(hook_tasks_are_ordered_with_the_rest),
		cmocka_unit_test(empty_workflow_builds_an_empty_graph),
		cmocka_unit_test(rebuilding_replaces_the_graph),
		cmocka_unit_test(two_cycle_is_named_in_order),
		cmocka_unit_test(three_cycle_is_named_in_dependency_order),
		cmocka_unit_test(self_dependency_is_a_cycle_of_one),
		cmocka_unit_test(cycle_in_bigger_graph_names_only_its_tasks),
		cmocka_unit_test(disjoint_cycles_are_all_reported),
		cmocka_unit_test(cycles_sharing_a_task_are_reported_once_shortest),
		cmocka_unit_test(cycles_past_the_diags_cap_are_counted),
		cmocka_unit_test(long_ids_are_shortened_in_cycle_messages),
		cmocka_unit_test(chain_weights_count_down_to_one),
		cmocka_unit_test(diamond_weight_takes_the_longer_branch),
		cmocka_unit_test(wide_fan_out_weights),
		cmocka_unit_test(random_dag_weights_match_brute_force),
		cmocka_unit_test(million_task_chain_builds_without_recursion),
		cmocka_unit_test(million_task_cycle_is_reported_shortened),
		cmocka_unit_test(edges_beyond_uint32_are_e2big),
		cmocka_unit_test(dependency_out_of_range_is_an_internal_error),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
