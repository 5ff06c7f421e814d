/* graph.c: building the dependency graph: CSR adjacency, topological order,
 * cycle reports and critical-path weights.
 *
 * Invariant: every step is O(V + E) and iterative (no recursion), so a chain
 * of millions of tasks cannot overflow the stack. Besides the arrays of
 * struct graph, only temporaries freed before return are allocated; on a
 * cycle the graph is discarded, so cycle finding borrows its arrays too.
 *
 * The topological order is Kahn's algorithm taking, among the ready tasks,
 * the first declared one: topo[] is the declaration order whenever that
 * order is already valid (checked while counting the edges: then Kahn's
 * algorithm is skipped). The ready set is a 64-ary tree of bitmaps, whose
 * depth is at most 4 for DAGRUN_MAX_TASKS (6 for 2^32), so taking its
 * smallest element costs a constant number of count-trailing-zeros.
 */
#include "graph/graph.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util/buf.h"

#define NONE UINT32_MAX
#define READY_LEVELS 6          /* 64^6 > 2^32 tasks */
#define CYCLE_MSG_MAX 4096      /* names listed before eliding the middle */
#define CYCLE_ID_MAX 200        /* bytes of one id shown in a cycle */

/* Task t's dependencies (NULL when none: wf->deps may be NULL). */
static const struct dr_dep *deps_of(const struct dagrun_workflow *wf, uint32_t t)
{
	return wf->tasks[t].dep_count ? wf->deps + wf->tasks[t].dep_first : NULL;
}

static uint32_t *alloc_u32(uint64_t count)
{
	return malloc((count ? count : 1) * sizeof(uint32_t));
}

/* See graph.h. */
void graph_free(struct graph *g)
{
	if (!g)
		return;
	free(g->out_off);
	free(g->out_task);
	free(g->out_dep);
	free(g->indeg);
	free(g->topo);
	free(g->weight);
	free(g);
}

static struct graph *alloc_graph(uint32_t n, uint32_t n_edges)
{
	struct graph *g = calloc(1, sizeof(*g));
	if (!g)
		return NULL;
	g->n = n;
	g->n_edges = n_edges;
	g->out_off = calloc((uint64_t)n + 1, sizeof(uint32_t));
	g->out_task = alloc_u32(n_edges);
	g->out_dep = alloc_u32(n_edges);
	g->indeg = alloc_u32(n);
	g->topo = alloc_u32(n);
	g->weight = alloc_u32(n);
	if (!g->out_off || !g->out_task || !g->out_dep || !g->indeg ||
	    !g->topo || !g->weight) {
		graph_free(g);
		return NULL;
	}
	return g;
}

/* ---- CSR adjacency ------------------------------------------------------ */

static void internal_error(const struct dagrun_workflow *wf, uint32_t t,
			   struct dagrun_diags *diags)
{
	diag_add(diags, DAGRUN_ERROR, wf->path, wf->tasks[t].line, wf->tasks[t].col,
		 "internal error: dependencies of task '%s' out of range",
		 wf_task_id(wf, t));
}

/* Checks that every task's dependency range is in bounds (the loader
 * guarantees it; a violation is reported as an internal error) and that
 * the edges fit in uint32. Reads the tasks only: targets are checked by
 * count_csr(). */
static int count_edges(const struct dagrun_workflow *wf, uint32_t *n_edges,
		       struct dagrun_diags *diags)
{
	uint64_t sum = 0;
	uint32_t t;
	for (t = 0; t < wf->n_tasks; t++) {
		const struct dr_task *task = &wf->tasks[t];
		uint64_t end = (uint64_t)task->dep_first + task->dep_count;
		if (end > wf->n_deps)
			goto bad;
		sum += task->dep_count;
		if (end > (uint64_t)UINT32_MAX + 1 || sum > UINT32_MAX)
			return -E2BIG;  /* out_dep and n_edges hold uint32 */
	}
	*n_edges = (uint32_t)sum;
	return 0;
bad:
	internal_error(wf, t, diags);
	return -EINVAL;
}

/* One pass over the dependencies: checks every target is a task (else
 * the internal error, -EINVAL), fills indeg and counts each task's
 * dependents into out_off[t + 1]. Returns 1 when every task depends only
 * on tasks declared before it (the declaration order is then the
 * topological order), else 0. */
static int count_csr(const struct dagrun_workflow *wf, struct graph *g,
		     struct dagrun_diags *diags)
{
	int forward = 1;
	for (uint32_t t = 0; t < g->n; t++) {
		const struct dr_dep *deps = deps_of(wf, t);
		g->indeg[t] = wf->tasks[t].dep_count;
		for (uint32_t i = 0; i < g->indeg[t]; i++) {
			uint32_t target = deps[i].target;
			if (target >= g->n) {
				internal_error(wf, t, diags);
				return -EINVAL;
			}
			forward &= target < t;
			g->out_off[target + 1]++;
		}
	}
	return forward;
}

/* Fills out_off, out_task and out_dep from the counts of count_csr().
 * Each task's dependents come out in declaration order. Uses topo[] as
 * the fill cursors. */
static void fill_csr(const struct dagrun_workflow *wf, struct graph *g)
{
	for (uint32_t t = 0; t < g->n; t++) {
		g->out_off[t + 1] += g->out_off[t];
		g->topo[t] = g->out_off[t];
	}
	for (uint32_t t = 0; t < g->n; t++) {
		const struct dr_dep *deps = deps_of(wf, t);
		for (uint32_t i = 0; i < g->indeg[t]; i++) {
			uint32_t pos = g->topo[deps[i].target]++;
			g->out_task[pos] = t;
			g->out_dep[pos] = wf->tasks[t].dep_first + i;
		}
	}
}

/* ---- the ready set: a 64-ary tree of bitmaps ---------------------------- */

struct ready {
	uint64_t *words;                /* all levels, one allocation */
	uint64_t *lvl[READY_LEVELS];    /* lvl[0]: one bit per task */
	int depth;                      /* levels in use; the top has 1 word */
};

static int ready_init(struct ready *r, uint32_t n)
{
	uint64_t count[READY_LEVELS], total = 0, w = ((uint64_t)n + 63) / 64;
	r->depth = 0;
	do {
		w = w ? w : 1;
		count[r->depth++] = w;
		total += w;
		w = (w + 63) / 64;
	} while (count[r->depth - 1] > 1);
	r->words = calloc(total, sizeof(uint64_t));
	if (!r->words)
		return -ENOMEM;
	uint64_t *p = r->words;
	for (int k = 0; k < r->depth; k++) {
		r->lvl[k] = p;
		p += count[k];
	}
	return 0;
}

static void ready_add(struct ready *r, uint32_t t)
{
	for (int k = 0; k < r->depth; k++) {
		uint64_t *word = &r->lvl[k][t >> 6];
		int was_empty = *word == 0;
		*word |= (uint64_t)1 << (t & 63);
		if (!was_empty)
			return;
		t >>= 6;
	}
}

/* Removes and returns the smallest task in r, or NONE when r is empty. */
static uint32_t ready_pop(struct ready *r)
{
	if (!r->lvl[r->depth - 1][0])
		return NONE;
	uint32_t t = 0;
	for (int k = r->depth - 1; k >= 0; k--)
		t = (t << 6) | (uint32_t)__builtin_ctzll(r->lvl[k][t]);
	uint32_t i = t;
	for (int k = 0; k < r->depth; k++) {
		uint64_t *word = &r->lvl[k][i >> 6];
		*word &= ~((uint64_t)1 << (i & 63));
		if (*word)
			break;
		i >>= 6;
	}
	return t;
}

/* ---- order and weights -------------------------------------------------- */

/* Kahn's algorithm into topo[]; weight[] holds the dependencies not yet
 * placed, so after a cycle weight[t] > 0 exactly for the tasks left out.
 * Sets *placed to the number of tasks ordered. */
static int toposort(struct graph *g, uint32_t *placed)
{
	struct ready r;
	if (ready_init(&r, g->n) < 0)
		return -ENOMEM;
	uint32_t *left = g->weight;
	memcpy(left, g->indeg, (size_t)g->n * sizeof(uint32_t));
	for (uint32_t t = 0; t < g->n; t++)
		if (!left[t])
			ready_add(&r, t);
	uint32_t k = 0, t;
	while ((t = ready_pop(&r)) != NONE) {
		g->topo[k++] = t;
		for (uint32_t e = g->out_off[t]; e < g->out_off[t + 1]; e++)
			if (--left[g->out_task[e]] == 0)
				ready_add(&r, g->out_task[e]);
	}
	free(r.words);
	*placed = k;
	return 0;
}

/* weight[t] = 1 + the largest weight among t's dependents, in reverse
 * topological order so that every dependent is done first. */
static void compute_weights(struct graph *g)
{
	for (uint32_t i = g->n; i-- > 0;) {
		uint32_t t = g->topo[i], w = 0;
		for (uint32_t e = g->out_off[t]; e < g->out_off[t + 1]; e++)
			if (g->weight[g->out_task[e]] > w)
				w = g->weight[g->out_task[e]];
		g->weight[t] = w + 1;
	}
}

void graph_weigh(const struct graph *g, const uint64_t *cost, uint64_t *out)
{
	for (uint32_t i = g->n; i-- > 0;) {
		uint32_t t = g->topo[i];
		uint64_t w = 0, c = cost ? cost[t] : 1;
		for (uint32_t e = g->out_off[t]; e < g->out_off[t + 1]; e++)
			if (out[g->out_task[e]] > w)
				w = out[g->out_task[e]];
		out[t] = w > UINT64_MAX - c ? UINT64_MAX : w + c;
	}
}

/* ---- cycles --------------------------------------------------------------
 *
 * The tasks Kahn left out are those on a cycle and those depending on one,
 * directly or not. Tarjan's algorithm (iterative) splits them into strongly
 * connected components; every component with more than one task, or with a
 * task depending on itself, holds a cycle, and the components are disjoint.
 * For each one, a breadth-first search along dependencies from its first
 * declared task finds a shortest cycle through it, which is reported.
 */

#define DONE UINT32_MAX   /* num[]: the task's component is known */

struct scc {
	const struct graph *g;
	uint32_t *num;     /* borrows g->indeg: 0 unvisited, DFS number, DONE */
	uint32_t *low;     /* borrows g->weight: lowlink; once DONE, the first
			    * task of a component holding a cycle, else NONE */
	uint32_t *stack;   /* borrows g->topo: tasks of unfinished components */
	uint32_t *frame;   /* DFS stack: tasks ... */
	uint32_t *next;    /* ... and the position in their out list */
	uint32_t sp, fp, counter;
};

static int depends_on_itself(const struct graph *g, uint32_t t)
{
	for (uint32_t e = g->out_off[t]; e < g->out_off[t + 1]; e++)
		if (g->out_task[e] == t)
			return 1;
	return 0;
}

static void push_frame(struct scc *s, uint32_t t)
{
	s->num[t] = s->low[t] = ++s->counter;
	s->stack[s->sp++] = t;
	s->frame[s->fp] = t;
	s->next[s->fp++] = s->g->out_off[t];
}

/* Pops the component rooted at t off the stack and labels its tasks. */
static void pop_component(struct scc *s, uint32_t t)
{
	uint32_t k = s->sp, first = t;
	do {
		k--;
		if (s->stack[k] < first)
			first = s->stack[k];
	} while (s->stack[k] != t);
	int cyclic = s->sp - k > 1 || depends_on_itself(s->g, t);
	for (uint32_t i = k; i < s->sp; i++) {
		s->num[s->stack[i]] = DONE;
		s->low[s->stack[i]] = cyclic ? first : NONE;
	}
	s->sp = k;
}

static void strongconnect(struct scc *s, uint32_t root)
{
	const struct graph *g = s->g;
	push_frame(s, root);
	while (s->fp) {
		uint32_t v = s->frame[s->fp - 1];
		if (s->next[s->fp - 1] < g->out_off[v + 1]) {
			uint32_t w = g->out_task[s->next[s->fp - 1]++];
			if (s->num[w] == 0)
				push_frame(s, w);
			else if (s->num[w] != DONE && s->num[w] < s->low[v])
				s->low[v] = s->num[w];
			continue;
		}
		s->fp--;
		if (s->low[v] == s->num[v]) {
			pop_component(s, v);
		} else {
			uint32_t u = s->frame[s->fp - 1];
			if (s->low[v] < s->low[u])
				s->low[u] = s->low[v];
		}
	}
}

/* Appends a task id, shortened if very long. */
static int add_id(struct buf *b, const struct dagrun_workflow *wf, uint32_t t)
{
	const char *id = wf_task_id(wf, t);
	size_t len = strlen(id);
	if (len <= CYCLE_ID_MAX)
		return buf_add(b, id, len);
	return buf_printf(b, "%.*s...", CYCLE_ID_MAX, id);
}

/* path[0 .. len) is the cycle, each task depending on the next and the last
 * on path[0]. Past CYCLE_MSG_MAX bytes the middle is elided. */
static int cycle_message(struct buf *b, const struct dagrun_workflow *wf,
			 const uint32_t *path, uint32_t len)
{
	int r = buf_adds(b, "dependency cycle: ");
	for (uint32_t i = 0; i < len && r == 0; i++) {
		if (i > 0 && i + 1 < len && b->len > CYCLE_MSG_MAX) {
			r = buf_printf(b, " -> ... (%u more)", len - 1 - i);
			i = len - 1;
		}
		if (r == 0 && i > 0)
			r = buf_adds(b, " -> ");
		if (r == 0)
			r = add_id(b, wf, path[i]);
	}
	if (r == 0)
		r = buf_adds(b, " -> ");
	return r ? r : add_id(b, wf, path[0]);
}

/* Finds a shortest cycle through `first` inside its component by a BFS
 * along dependencies; writes it to path (from `first`) and returns its
 * length. queue and parent are n-sized; parent[] is NONE for every task of
 * the component on entry (components are disjoint, so it needs no reset). */
static uint32_t find_cycle(const struct dagrun_workflow *wf, const uint32_t *low,
			   uint32_t first, uint32_t *queue, uint32_t *parent)
{
	uint32_t head = 0, tail = 0, last = NONE;
	queue[tail++] = first;
	parent[first] = first;
	while (last == NONE && head < tail) {
		uint32_t x = queue[head++];
		const struct dr_dep *deps = deps_of(wf, x);
		for (uint32_t i = 0; i < wf->tasks[x].dep_count; i++) {
			uint32_t y = deps[i].target;
			if (y == first) {
				last = x;
				break;
			}
			if (low[y] == first && parent[y] == NONE) {
				parent[y] = x;
				queue[tail++] = y;
			}
		}
	}
	/* A component is strongly connected, so last is always found. */
	uint32_t len = 0;
	for (uint32_t x = last; x != first; x = parent[x])
		queue[len++] = x;
	queue[len++] = first;
	for (uint32_t i = 0; i < len / 2; i++) {
		uint32_t tmp = queue[i];
		queue[i] = queue[len - 1 - i];
		queue[len - 1 - i] = tmp;
	}
	return len;
}

/* Adds the error for one cycle. Past the cap of diags, or out of memory for
 * the message, the error is still counted, with a short message. */
static void report_cycle(const struct dagrun_workflow *wf,
			 struct dagrun_diags *diags, const uint32_t *path,
			 uint32_t len)
{
	const struct dr_task *task = &wf->tasks[path[0]];
	struct buf b = BUF_INIT;
	int full = !diags || diag_full(diags);
	if (!full && cycle_message(&b, wf, path, len) == 0)
		diag_add(diags, DAGRUN_ERROR, wf->path, task->line, task->col,
			 "%s", b.data);
	else
		diag_add(diags, DAGRUN_ERROR, wf->path, task->line, task->col,
			 "dependency cycle");
	buf_free(&b);
}

/* Reports every cycle component of g (after Kahn stopped short), in the
 * declaration order of their first tasks. Consumes g's arrays. */
static int report_cycles(const struct dagrun_workflow *wf, struct graph *g,
			 struct dagrun_diags *diags)
{
	struct scc s = {g, g->indeg, g->weight, g->topo, alloc_u32(g->n),
			alloc_u32(g->n), 0, 0, 0};
	int r = -ENOMEM;
	if (!s.frame || !s.next)
		goto out;
	for (uint32_t t = 0; t < g->n; t++) {
		s.num[t] = g->weight[t] ? 0 : DONE;  /* weight: deps left by Kahn */
		s.low[t] = NONE;
	}
	for (uint32_t t = 0; t < g->n; t++)
		if (s.num[t] == 0)
			strongconnect(&s, t);
	uint32_t *queue = s.frame, *parent = s.next;
	for (uint32_t t = 0; t < g->n; t++)
		parent[t] = NONE;
	for (uint32_t t = 0; t < g->n; t++) {
		if (s.low[t] != t)
			continue;
		uint32_t len = find_cycle(wf, s.low, t, queue, parent);
		report_cycle(wf, diags, queue, len);
	}
	r = 0;
out:
	free(s.frame);
	free(s.next);
	return r;
}

/* ---- entry point -------------------------------------------------------- */

/* See graph.h. Also -E2BIG when the edges do not fit in uint32, and -EINVAL
 * with an internal error when a dependency is out of range. A previous
 * wf->graph is replaced on success. */
int graph_build(struct dagrun_workflow *wf, struct dagrun_diags *diags)
{
	struct graph *g = NULL;
	uint32_t n_edges = 0, placed = 0;
	int r = count_edges(wf, &n_edges, diags);
	if (r < 0)
		goto out;
	r = -ENOMEM;
	g = alloc_graph(wf->n_tasks, n_edges);
	if (!g)
		goto out;
	r = count_csr(wf, g, diags);
	if (r < 0)
		goto out;
	fill_csr(wf, g);
	if (r == 1) {
		/* What Kahn's algorithm below would give: the first declared
		 * ready task is always the next one. */
		for (uint32_t t = 0; t < g->n; t++)
			g->topo[t] = t;
		placed = g->n;
	} else {
		r = toposort(g, &placed);
		if (r < 0)
			goto out;
	}
	if (placed < g->n) {
		r = report_cycles(wf, g, diags);
		r = r < 0 ? r : -EINVAL;
		goto out;
	}
	compute_weights(g);
	graph_free(wf->graph);
	wf->graph = g;
	g = NULL;
	r = 0;
out:
	graph_free(g);
	return r;
}
