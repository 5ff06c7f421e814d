/* readyq.h: a binary heap of task indexes in the order ready tasks start.
 *
 * Order: higher priority first, then higher critical-path weight (tasks on
 * the chain, or measured time: graph_weigh), then lower index (declaration
 * order). Invariant: heap[0] is the best task; push and
 * pop are O(log n). The key arrays are borrowed and must not change while a
 * task they describe is in the heap.
 */
#ifndef DAGRUN_READYQ_H
#define DAGRUN_READYQ_H

#include <stdbool.h>
#include <stdint.h>

#include "model/model.h"

struct readyq {
	uint32_t *heap;
	uint32_t n, cap;
	const struct dr_task *tasks;  /* priority */
	const uint64_t *weight;       /* critical-path weight */
};

/* Sets up an empty queue ordering by tasks[].priority and weight[]. */
void readyq_init(struct readyq *q, const struct dr_task *tasks, const uint64_t *weight);

/* True when task a starts before task b. */
static inline bool readyq_before(const struct readyq *q, uint32_t a, uint32_t b)
{
	int32_t pa = q->tasks[a].priority, pb = q->tasks[b].priority;
	if (pa != pb)
		return pa > pb;
	if (q->weight[a] != q->weight[b])
		return q->weight[a] > q->weight[b];
	return a < b;
}

/* Adds t. Returns 0 or -ENOMEM. */
int readyq_push(struct readyq *q, uint32_t t);

/* Removes and returns the best task; the queue must not be empty. */
uint32_t readyq_pop(struct readyq *q);

static inline uint32_t readyq_top(const struct readyq *q)
{
	return q->heap[0];
}

static inline bool readyq_empty(const struct readyq *q)
{
	return q->n == 0;
}

void readyq_free(struct readyq *q);

#endif
