/* readyq.c: binary min-heap under readyq_before(); see readyq.h. */
#include "readyq.h"

#include <errno.h>
#include <stdlib.h>

void readyq_init(struct readyq *q, const struct dr_task *tasks, const uint64_t *weight)
{
	q->heap = NULL;
	q->n = q->cap = 0;
	q->tasks = tasks;
	q->weight = weight;
}

int readyq_push(struct readyq *q, uint32_t t)
{
	if (q->n == q->cap) {
		uint32_t cap = q->cap ? q->cap * 2 : 256;
		uint32_t *h = realloc(q->heap, (size_t)cap * sizeof(*h));
		if (!h)
			return -ENOMEM;
		q->heap = h;
		q->cap = cap;
	}
	uint32_t i = q->n++;
	while (i > 0) {
		uint32_t parent = (i - 1) / 2;
		if (!readyq_before(q, t, q->heap[parent]))
			break;
		q->heap[i] = q->heap[parent];
		i = parent;
	}
	q->heap[i] = t;
	return 0;
}

uint32_t readyq_pop(struct readyq *q)
{
	uint32_t top = q->heap[0];
	uint32_t last = q->heap[--q->n];
	uint32_t i = 0, n = q->n;
	for (;;) {
		uint32_t c = 2 * i + 1;
		if (c >= n)
			break;
		if (c + 1 < n && readyq_before(q, q->heap[c + 1], q->heap[c]))
			c++;
		if (!readyq_before(q, q->heap[c], last))
			break;
		q->heap[i] = q->heap[c];
		i = c;
	}
	if (n)
		q->heap[i] = last;
	return top;
}

void readyq_free(struct readyq *q)
{
	free(q->heap);
	q->heap = NULL;
	q->n = q->cap = 0;
}
