/* trace.c: a run document as Chrome trace-event JSON (Perfetto,
 * chrome://tracing); the format is Google's "Trace Event Format" document,
 * JSON object form.
 *
 * Process 1, "run": a track (tid) per running slot, attempts as complete
 * ("X") slices named by task id, and a counter "running tasks". Process
 * 2, "waiting": ready-waits and retry waits as X slices on their own
 * slots, and a counter "ready tasks" when the document has ready times.
 * Own tracks rather than flow or instant events: a wait has a duration,
 * and both viewers show slices on tracks best.
 *
 * Invariants: within one process, slices on one tid never overlap (each
 * is assigned greedily by start time to the lowest-numbered slot free at
 * its start); every slice has dur >= 0; counter events of one name are
 * written in strictly increasing time, each with the count after every
 * change at that time (so no spike at an end meeting a start); ts are integer microseconds
 * from the document's first time, so never negative.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "report/report_int.h"

enum { IV_ATTEMPT, IV_READY, IV_RETRY };

struct iv {
	int64_t s, e;              /* ms */
	uint32_t task, att;        /* att: index in the task's attempts */
	uint32_t slot;
	int kind;
};

struct ivs {
	struct iv *v;
	size_t n;
};

/* ---- slots ---------------------------------------------------------------- */

static int iv_cmp(const void *a, const void *b)
{
	const struct iv *x = a, *y = b;
	if (x->s != y->s)
		return x->s < y->s ? -1 : 1;
	if (x->e != y->e)
		return x->e < y->e ? -1 : 1;
	if (x->task != y->task)
		return x->task < y->task ? -1 : 1;
	return (x->att > y->att) - (x->att < y->att);
}

/* A binary min-heap of (key, slot), ordered by key then slot. */
struct heap {
	struct { int64_t key; uint32_t slot; } *h;
	size_t n;
};

static bool heap_less(const struct heap *h, size_t a, size_t b)
{
	return h->h[a].key < h->h[b].key ||
	       (h->h[a].key == h->h[b].key && h->h[a].slot < h->h[b].slot);
}

static void heap_swap(struct heap *h, size_t a, size_t b)
{
	__typeof__(*h->h) t = h->h[a];
	h->h[a] = h->h[b];
	h->h[b] = t;
}

static void heap_push(struct heap *h, int64_t key, uint32_t slot)
{
	size_t i = h->n++;
	h->h[i].key = key;
	h->h[i].slot = slot;
	while (i && heap_less(h, i, (i - 1) / 2)) {
		heap_swap(h, i, (i - 1) / 2);
		i = (i - 1) / 2;
	}
}

static void heap_pop(struct heap *h)
{
	h->h[0] = h->h[--h->n];
	size_t i = 0;
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;
		if (l < h->n && heap_less(h, l, m))
			m = l;
		if (r < h->n && heap_less(h, r, m))
			m = r;
		if (m == i)
			break;
		heap_swap(h, i, m);
		i = m;
	}
}

/* Sorts x by start and gives each interval the lowest slot (1-based) free
 * at its start. Returns the number of slots, or -ENOMEM. */
static int64_t assign_slots(struct ivs *x)
{
	if (!x->n)
		return 0;
	qsort(x->v, x->n, sizeof(*x->v), iv_cmp);
	struct heap busy = {malloc(x->n * sizeof(*busy.h)), 0};
	struct heap free_ = {malloc(x->n * sizeof(*free_.h)), 0};
	int64_t slots = -ENOMEM;
	if (!busy.h || !free_.h)
		goto out;
	slots = 0;
	for (size_t i = 0; i < x->n; i++) {
		while (busy.n && busy.h[0].key <= x->v[i].s) {
			heap_push(&free_, 0, busy.h[0].slot);
			heap_pop(&busy);
		}
		uint32_t slot;
		if (free_.n) {
			slot = free_.h[0].slot;
			heap_pop(&free_);
		} else {
			slot = (uint32_t)++slots;
		}
		x->v[i].slot = slot;
		heap_push(&busy, x->v[i].e, slot);
	}
out:
	free(busy.h);
	free(free_.h);
	return slots;
}

/* ---- writing ------------------------------------------------------------------ */

struct tw {
	const struct report_doc *d;
	FILE *out;
	bool first;                /* no event written yet */
};

static int64_t us(const struct tw *w, int64_t ms)
{
	return (ms - w->d->t0) * 1000;
}

static void sep(struct tw *w)
{
	fputs(w->first ? "\n" : ",\n", w->out);
	w->first = false;
}

/* A process_name or thread_name event; the name is ASCII unless d is
 * given: then "run ID (WORKFLOW)". */
static void meta(struct tw *w, int pid, uint32_t tid, const char *what,
		 const char *name, int64_t sort, const struct report_doc *d)
{
	sep(w);
	fprintf(w->out, "{\"name\":\"%s\",\"ph\":\"M\",\"pid\":%d,\"tid\":%u,"
		"\"args\":{\"name\":\"%s", what, pid, tid, name);
	if (d) {
		report_put_json_inner(w->out, d->run_id.s, d->run_id.len);
		fputs(" (", w->out);
		report_put_json_inner(w->out, d->workflow.s, d->workflow.len);
		fputc(')', w->out);
	}
	fputs("\"}}", w->out);
	sep(w);
	fprintf(w->out, "{\"name\":\"%s_sort_index\",\"ph\":\"M\",\"pid\":%d,"
		"\"tid\":%u,\"args\":{\"sort_index\":%lld}}",
		strncmp(what, "process", 7) ? "thread" : "process", pid, tid,
		(long long)sort);
}

static void put_field(FILE *out, const char *key, const struct report_str *s)
{
	if (!s->s)
		return;
	fprintf(out, ",\"%s\":", key);
	report_put_json(out, s->s, s->len);
}

static void attempt_slice(struct tw *w, const struct iv *v)
{
	const struct report_task *t = &w->d->tasks[v->task];
	const struct report_attempt *a = &t->att[v->att];
	FILE *out = w->out;
	sep(w);
	fputs("{\"name\":", out);
	report_put_json(out, t->id.s, t->id.len);
	fprintf(out, ",\"cat\":\"attempt\",\"ph\":\"X\",\"pid\":1,\"tid\":%u,"
		"\"ts\":%lld,\"dur\":%lld,\"args\":{\"task\":", v->slot,
		(long long)us(w, v->s), (long long)((v->e - v->s) * 1000));
	report_put_json(out, t->id.s, t->id.len);
	fprintf(out, ",\"attempt\":%u,\"status\":", a->n);
	report_put_json(out, a->status_name.s, a->status_name.len);
	if (a->has_exit)
		fprintf(out, ",\"exitCode\":%d", a->exit_code);
	if (a->signal)
		fprintf(out, ",\"signal\":%d", a->signal);
	if (a->timed_out)
		fputs(",\"timedOut\":true", out);
	if (!a->has_end)
		fputs(",\"ended\":false", out);
	put_field(out, "errorClass", &a->error_class);
	put_field(out, "error", &a->error);
	fputs("}}", out);
}

static void wait_slice(struct tw *w, const struct iv *v)
{
	const struct report_task *t = &w->d->tasks[v->task];
	FILE *out = w->out;
	bool ready = v->kind == IV_READY;
	sep(w);
	fprintf(out, "{\"name\":\"%s", ready ? "ready: " : "retry: ");
	report_put_json_inner(out, t->id.s, t->id.len);
	fprintf(out, "\",\"cat\":\"%s\",\"ph\":\"X\",\"pid\":2,\"tid\":%u,"
		"\"ts\":%lld,\"dur\":%lld,\"args\":{\"task\":",
		ready ? "ready-wait" : "retry-wait", v->slot,
		(long long)us(w, v->s), (long long)((v->e - v->s) * 1000));
	report_put_json(out, t->id.s, t->id.len);
	fprintf(out, ",\"attempt\":%u}}", t->att[v->att].n + (ready ? 0 : 1));
}

struct delta {
	int64_t t;
	int d;
};

static int delta_cmp(const void *a, const void *b)
{
	const struct delta *x = a, *y = b;
	if (x->t != y->t)
		return x->t < y->t ? -1 : 1;
	return x->d - y->d;   /* -1 (an end) before +1 (a start) */
}

/* A counter named name in process pid over the intervals of x of kind. */
static int counter(struct tw *w, const struct ivs *x, int kind, int pid,
		   const char *name, const char *series)
{
	size_t n = 0;
	for (size_t i = 0; i < x->n; i++)
		n += x->v[i].kind == kind;
	struct delta *v = malloc((2 * n + 1) * sizeof(*v));
	if (!v)
		return -ENOMEM;
	n = 0;
	for (size_t i = 0; i < x->n; i++)
		if (x->v[i].kind == kind) {
			v[n++] = (struct delta){x->v[i].s, 1};
			v[n++] = (struct delta){x->v[i].e, -1};
		}
	qsort(v, n, sizeof(*v), delta_cmp);
	int64_t value = 0;
	if (!n || v[0].t > w->d->t0) {   /* from 0 at the start of the trace */
		sep(w);
		fprintf(w->out, "{\"name\":\"%s\",\"ph\":\"C\",\"pid\":%d,\"tid\":0,"
			"\"ts\":0,\"args\":{\"%s\":0}}", name, pid, series);
	}
	for (size_t i = 0; i < n;) {
		int64_t t = v[i].t;
		while (i < n && v[i].t == t)
			value += v[i++].d;
		sep(w);
		fprintf(w->out, "{\"name\":\"%s\",\"ph\":\"C\",\"pid\":%d,\"tid\":0,"
			"\"ts\":%lld,\"args\":{\"%s\":%lld}}", name, pid,
			(long long)us(w, t), series, (long long)value);
	}
	free(v);
	return 0;
}

/* Every attempt, ready-wait and retry wait of d, as intervals. */
static int collect(const struct report_doc *d, struct ivs *run, struct ivs *wait,
		   bool *has_ready)
{
	size_t n = d->n_attempts;
	run->v = malloc((n ? n : 1) * sizeof(*run->v));
	wait->v = malloc((n ? 2 * n : 1) * sizeof(*wait->v));
	if (!run->v || !wait->v)
		return -ENOMEM;
	for (uint32_t t = 0; t < d->n_tasks; t++) {
		const struct report_task *task = &d->tasks[t];
		for (uint32_t i = 0; i < task->n_att; i++) {
			const struct report_attempt *a = &task->att[i];
			int64_t end = report_attempt_end(d, a);
			run->v[run->n++] = (struct iv){a->start_ms, end, t, i, 0, IV_ATTEMPT};
			if (a->has_ready) {
				*has_ready = true;
				if (a->ready_ms < a->start_ms)
					wait->v[wait->n++] = (struct iv){a->ready_ms,
						a->start_ms, t, i, 0, IV_READY};
			}
			if (i + 1 < task->n_att && a->has_end) {
				const struct report_attempt *b = &task->att[i + 1];
				int64_t next = b->has_ready && b->ready_ms < b->start_ms ?
					       b->ready_ms : b->start_ms;
				if (next > a->end_ms)
					wait->v[wait->n++] = (struct iv){a->end_ms, next,
						t, i, 0, IV_RETRY};
			}
		}
	}
	return 0;
}

static void header(struct tw *w)
{
	const struct report_doc *d = w->d;
	FILE *out = w->out;
	fputs("{\"displayTimeUnit\":\"ms\",\"otherData\":{\"dagrunRunDocument\":1,"
	      "\"runId\":", out);
	report_put_json(out, d->run_id.s, d->run_id.len);
	fprintf(out, ",\"runAttempt\":%u,\"workflow\":", d->run_attempt);
	report_put_json(out, d->workflow.s, d->workflow.len);
	fputs(",\"status\":", out);
	report_put_json(out, d->run_status.s, d->run_status.len);
	fprintf(out, ",\"startMs\":%lld,\"timeZeroMs\":%lld},\"traceEvents\":[",
		(long long)d->start_ms, (long long)d->t0);
}

static int write_trace(struct tw *w, struct ivs *run, struct ivs *wait,
		       bool has_ready)
{
	int64_t nrun = assign_slots(run), nwait = assign_slots(wait);
	if (nrun < 0 || nwait < 0)
		return -ENOMEM;
	const struct report_doc *d = w->d;
	header(w);
	char name[64];
	meta(w, 1, 0, "process_name", "run ", 1, d);
	for (int64_t s = 1; s <= nrun; s++) {
		snprintf(name, sizeof(name), "slot %lld", (long long)s);
		meta(w, 1, (uint32_t)s, "thread_name", name, s, NULL);
	}
	meta(w, 2, 0, "process_name", "waiting (ready, retry)", 2, NULL);
	for (int64_t s = 1; s <= nwait; s++) {
		snprintf(name, sizeof(name), "wait %lld", (long long)s);
		meta(w, 2, (uint32_t)s, "thread_name", name, s, NULL);
	}
	for (size_t i = 0; i < run->n && !ferror(w->out); i++)
		attempt_slice(w, &run->v[i]);
	for (size_t i = 0; i < wait->n && !ferror(w->out); i++)
		wait_slice(w, &wait->v[i]);
	int r = counter(w, run, IV_ATTEMPT, 1, "running tasks", "running");
	if (r == 0 && has_ready)
		r = counter(w, wait, IV_READY, 2, "ready tasks", "ready");
	fputs("\n]}\n", w->out);
	return r;
}

int report_trace(const json_t *doc, FILE *out, char **err)
{
	struct arena mem = ARENA_INIT;
	struct report_doc d;
	struct ivs run = {0}, wait = {0};
	bool has_ready = false;
	int r = report_doc_parse(doc, 0, &mem, &d, err);
	if (r < 0)
		goto out;
	if ((r = collect(&d, &run, &wait, &has_ready)) < 0) {
		r = report_fail(err, r, "out of memory");
		goto out;
	}
	errno = 0;
	struct tw w = {&d, out, true};
	if ((r = write_trace(&w, &run, &wait, has_ready)) < 0)
		report_fail(err, r, "out of memory");
	else if ((r = report_stream_status(out)) < 0)
		report_fail(err, r, "writing the trace: %s", strerror(-r));
out:
	free(run.v);
	free(wait.v);
	arena_free(&mem);
	return r;
}
