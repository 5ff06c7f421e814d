/* graph.h: the dependency graph in compact arrays (CSR), built once.
 *
 * Edges run from a dependency to its dependent, the direction work flows:
 * out_task[out_off[t] .. out_off[t+1]) are the tasks that depend on t, and
 * out_dep[] the matching index into wf->deps. Invariants after graph_build:
 * topo[] lists every task, each after all its dependencies, ties broken by
 * declaration order; weight[t] is the number of tasks on the longest chain
 * of dependents starting at t (1 for a task nothing depends on): the
 * critical-path weight the scheduler orders ready tasks by.
 */
#ifndef DAGRUN_GRAPH_H
#define DAGRUN_GRAPH_H

#include <stdint.h>
#include <stdio.h>

#include "model/model.h"
#include "util/diag.h"

struct graph {
	uint32_t n;          /* tasks */
	uint32_t n_edges;
	uint32_t *out_off;   /* n + 1 */
	uint32_t *out_task;  /* n_edges */
	uint32_t *out_dep;   /* n_edges */
	uint32_t *indeg;     /* n: number of dependencies */
	uint32_t *topo;      /* n */
	uint32_t *weight;    /* n */
};

/* Builds wf->graph from wf->tasks and wf->deps (targets already resolved to
 * task indexes). On a cycle, adds one error per cycle found, each naming
 * every task on it in order (`dependency cycle: a -> b -> c -> a`, where
 * `x -> y` reads "x depends on y"), at the position of the first task, and
 * returns -EINVAL. Returns -ENOMEM on OOM. wf->graph is set only on success. */
int graph_build(struct dagrun_workflow *wf, struct dagrun_diags *diags);

/* Critical-path weights from a cost per task (measured durations):
 * out[t] = cost[t] + the largest out[] among t's dependents, saturating, so
 * that the task heading the longest chain in time weighs most. cost NULL:
 * 1 per task (out[] then equals weight[]). out has n entries. */
void graph_weigh(const struct graph *g, const uint64_t *cost, uint64_t *out);

/* Frees g. Accepts NULL. */
void graph_free(struct graph *g);

/* Writers behind dagrun_graph_write(); return 0 or -errno. */
int graph_write_dot(const struct dagrun_workflow *wf, FILE *out);
int graph_write_mermaid(const struct dagrun_workflow *wf, FILE *out);
int graph_write_json(const struct dagrun_workflow *wf, FILE *out);

#endif
