/* doc.c: checking and parsing a run document (docs/run-document.md).
 *
 * Invariant: report_doc_parse either fills *out with a document every
 * renderer can draw without further checks (every required field present
 * with its type, task ids unique and non-empty without NUL, dependencies
 * resolved to indexes, attempt numbers increasing, times within
 * [0, 2^53) ms so that no renderer's arithmetic overflows, t1 > t0), or
 * fails naming the first field at fault. Strings are borrowed from the
 * json_t; everything else lives in the caller's arena.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "report/report_int.h"

#define TIME_MAX (((int64_t)1 << 53) - 1)   /* JavaScript's safe integers */

static const char *const status_names[REPORT_ST_N] = {
	"pending", "running", "completed", "failed", "retrying", "skipped",
	"cancelled", "interrupted", "other",
};

const char *report_status_name(int status)
{
	return status >= 0 && status < REPORT_ST_N ? status_names[status] : "other";
}

static int status_of(const char *s)
{
	for (int i = 0; i < REPORT_ST_OTHER; i++)
		if (!strcmp(s, status_names[i]))
			return i;
	return REPORT_ST_OTHER;
}

struct parse {
	struct arena *mem;
	char **err;
	unsigned flags;
	char where[96];            /* "tasks[3].attempts[0]" or "run" */
};

static int bad(struct parse *p, const char *field, const char *what)
{
	return report_fail(p->err, -EINVAL, "%s%s%s: %s", p->where,
			   *p->where && *field ? "." : "", field, what);
}

/* ---- typed fields ---------------------------------------------------------- */

enum { OPT = 0, REQ = 1, NUL_OK = 2 };   /* how a field may be given */

/* A string field: absent (or null with NUL_OK) leaves *out empty. */
static int get_str(struct parse *p, const json_t *o, const char *key,
		   int how, struct report_str *out)
{
	const json_t *v = json_object_get(o, key);
	out->s = NULL;
	out->len = 0;
	if (!v || (json_is_null(v) && (how & NUL_OK)))
		return (how & REQ) && !v ? bad(p, key, "missing") : 0;
	if (!json_is_string(v))
		return bad(p, key, "expected a string");
	out->s = json_string_value(v);
	out->len = json_string_length(v);
	return 0;
}

/* An integer field within [lo, hi]; *has tells whether one was given. */
static int get_int(struct parse *p, const json_t *o, const char *key, int how,
		   int64_t lo, int64_t hi, int64_t *out, bool *has)
{
	const json_t *v = json_object_get(o, key);
	*has = false;
	if (!v || (json_is_null(v) && (how & NUL_OK)))
		return (how & REQ) && !v ? bad(p, key, "missing") : 0;
	if (!json_is_integer(v))
		return bad(p, key, "expected an integer");
	json_int_t x = json_integer_value(v);
	if (x < lo || x > hi)
		return bad(p, key, lo == 0 && hi == TIME_MAX ?
			   "expected a time in ms since the epoch (0 to 2^53 - 1)" :
			   "integer out of range");
	*out = (int64_t)x;
	*has = true;
	return 0;
}

static int get_time(struct parse *p, const json_t *o, const char *key, int how,
		    int64_t *out, bool *has)
{
	return get_int(p, o, key, how, 0, TIME_MAX, out, has);
}

/* Optional fields the renderers do not need but check, so that a document
 * that passes here is one the page can show: name and JSON type. */
struct shape {
	const char *key;
	json_type type;            /* JSON_INTEGER, JSON_STRING, JSON_TRUE (a
				    * boolean), JSON_OBJECT (with sub) */
	const struct shape *sub;   /* the fields of an object, NULL-terminated */
};

static const struct shape timings_shape[] = {
	{"queueUs", JSON_INTEGER, NULL}, {"dnsUs", JSON_INTEGER, NULL},
	{"connectUs", JSON_INTEGER, NULL}, {"tlsUs", JSON_INTEGER, NULL},
	{"firstByteUs", JSON_INTEGER, NULL}, {"totalUs", JSON_INTEGER, NULL},
	{NULL, 0, NULL},
};
static const struct shape http_shape[] = {
	{"status", JSON_INTEGER, NULL}, {"redirects", JSON_INTEGER, NULL},
	{"timings", JSON_OBJECT, timings_shape}, {NULL, 0, NULL},
};
static const struct shape usage_shape[] = {
	{"promptTokens", JSON_INTEGER, NULL},
	{"completionTokens", JSON_INTEGER, NULL}, {NULL, 0, NULL},
};
static const struct shape ai_shape[] = {
	{"model", JSON_STRING, NULL}, {"finishReason", JSON_STRING, NULL},
	{"usage", JSON_OBJECT, usage_shape}, {"promptBytes", JSON_INTEGER, NULL},
	{"contextCutBytes", JSON_INTEGER, NULL}, {NULL, 0, NULL},
};
static const struct shape stream_shape[] = {
	{"tail", JSON_STRING, NULL}, {"bytes", JSON_INTEGER, NULL},
	{"truncated", JSON_TRUE, NULL}, {NULL, 0, NULL},
};
static const struct shape attempt_shape[] = {
	{"durationMs", JSON_INTEGER, NULL}, {"cpuUserMs", JSON_INTEGER, NULL},
	{"cpuSysMs", JSON_INTEGER, NULL}, {"maxRssKb", JSON_INTEGER, NULL},
	{"cached", JSON_TRUE, NULL},
	{"http", JSON_OBJECT, http_shape}, {"ai", JSON_OBJECT, ai_shape},
	{"stdout", JSON_OBJECT, stream_shape},
	{"stderr", JSON_OBJECT, stream_shape}, {NULL, 0, NULL},
};
static const struct shape history_shape[] = {
	{"maxMs", JSON_INTEGER, NULL}, {NULL, 0, NULL},
};

static const char *type_word(json_type t)
{
	switch (t) {
	case JSON_INTEGER: return "expected an integer";
	case JSON_STRING: return "expected a string";
	case JSON_TRUE: return "expected true or false";
	default: return "expected an object";
	}
}

/* Checks the fields of o listed in shape (each optional, null allowed);
 * prefix is the path of o below p->where, for messages. */
static int check_shape(struct parse *p, const json_t *o, const char *prefix,
		       const struct shape *shape)
{
	for (const struct shape *f = shape; f->key; f++) {
		const json_t *v = json_object_get(o, f->key);
		if (!v || json_is_null(v))
			continue;
		bool ok = f->type == JSON_TRUE ? json_is_boolean(v) :
			  json_typeof(v) == f->type;
		char path[64];
		snprintf(path, sizeof(path), "%s%s%s", prefix, *prefix ? "." : "",
			 f->key);
		if (!ok)
			return bad(p, path, type_word(f->type));
		int r = f->sub ? check_shape(p, v, path, f->sub) : 0;
		if (r < 0)
			return r;
	}
	return 0;
}

/* ---- attempts, dependencies, tasks -------------------------------------------- */

static int parse_attempt(struct parse *p, const json_t *o, uint32_t prev,
			 struct report_attempt *a)
{
	if (!json_is_object(o))
		return bad(p, "", "expected an object");
	int64_t n;
	bool has;
	int r = get_int(p, o, "attempt", REQ, 1, UINT32_MAX, &n, &has);
	if (r < 0)
		return r;
	if ((uint32_t)n <= prev)
		return bad(p, "attempt", "attempt numbers must increase");
	a->n = (uint32_t)n;
	if ((r = get_str(p, o, "status", REQ, &a->status_name)) < 0 ||
	    (r = get_time(p, o, "startMs", REQ, &a->start_ms, &has)) < 0 ||
	    (r = get_time(p, o, "endMs", NUL_OK, &a->end_ms, &a->has_end)) < 0 ||
	    (r = get_time(p, o, "readyMs", NUL_OK, &a->ready_ms, &a->has_ready)) < 0 ||
	    (r = get_str(p, o, "errorClass", NUL_OK, &a->error_class)) < 0 ||
	    (r = get_str(p, o, "error", NUL_OK, &a->error)) < 0)
		return r;
	a->status = status_of(a->status_name.s);
	int64_t x;
	if ((r = get_int(p, o, "exitCode", NUL_OK, INT32_MIN, INT32_MAX, &x,
			 &a->has_exit)) < 0)
		return r;
	a->exit_code = a->has_exit ? (int)x : -1;
	if ((r = get_int(p, o, "signal", NUL_OK, 0, 1024, &x, &has)) < 0)
		return r;
	a->signal = has ? (int)x : 0;
	const json_t *t = json_object_get(o, "timedOut");
	if (t && !json_is_null(t) && !json_is_boolean(t))
		return bad(p, "timedOut", "expected true or false");
	a->timed_out = json_is_true(t);
	return check_shape(p, o, "", attempt_shape);
}

static int parse_attempts(struct parse *p, const json_t *o, struct report_task *t)
{
	const json_t *arr = json_object_get(o, "attempts");
	if (!arr)
		return bad(p, "attempts", "missing");
	if (!json_is_array(arr))
		return bad(p, "attempts", "expected an array");
	size_t n = json_array_size(arr);
	if (n > UINT32_MAX)
		return bad(p, "attempts", "too many");
	t->n_att = (uint32_t)n;
	t->att = n ? arena_calloc(p->mem, n * sizeof(*t->att)) : NULL;
	if (n && !t->att)
		return report_fail(p->err, -ENOMEM, "out of memory");
	size_t base = strlen(p->where);
	uint32_t prev = 0;
	for (size_t i = 0; i < n; i++) {
		snprintf(p->where + base, sizeof(p->where) - base,
			 ".attempts[%zu]", i);
		int r = parse_attempt(p, json_array_get(arr, i), prev, &t->att[i]);
		if (r < 0)
			return r;
		prev = t->att[i].n;
	}
	p->where[base] = '\0';
	return 0;
}

/* The dependencies of t, their taskId kept in names[] until resolved. */
static int parse_deps(struct parse *p, const json_t *o, struct report_task *t,
		      struct report_str **names)
{
	const json_t *arr = json_object_get(o, "dependencies");
	if (!arr)
		return bad(p, "dependencies", "missing");
	if (!json_is_array(arr))
		return bad(p, "dependencies", "expected an array");
	size_t n = json_array_size(arr);
	if (n > UINT32_MAX)
		return bad(p, "dependencies", "too many");
	t->n_deps = (uint32_t)n;
	if (!n)
		return 0;
	t->deps = arena_calloc(p->mem, n * sizeof(*t->deps));
	*names = arena_calloc(p->mem, n * sizeof(**names));
	if (!t->deps || !*names)
		return report_fail(p->err, -ENOMEM, "out of memory");
	size_t base = strlen(p->where);
	for (size_t i = 0; i < n; i++) {
		const json_t *d = json_array_get(arr, i);
		snprintf(p->where + base, sizeof(p->where) - base,
			 ".dependencies[%zu]", i);
		if (!json_is_object(d))
			return bad(p, "", "expected an object");
		struct report_str type;
		int r;
		if ((r = get_str(p, d, "taskId", REQ, &(*names)[i])) < 0 ||
		    (r = get_str(p, d, "type", NUL_OK, &type)) < 0 ||
		    (r = get_str(p, d, "condition", NUL_OK, &t->deps[i].condition)) < 0)
			return r;
		if (type.s && strcmp(type.s, "blocking") &&
		    strcmp(type.s, "non-blocking"))
			return bad(p, "type", "expected \"blocking\" or \"non-blocking\"");
		t->deps[i].non_blocking = type.s && !strcmp(type.s, "non-blocking");
	}
	p->where[base] = '\0';
	return 0;
}

static int parse_history(struct parse *p, const json_t *o, struct report_task *t)
{
	const json_t *h = json_object_get(o, "history");
	if (!h || json_is_null(h))
		return 0;
	if (!json_is_object(h))
		return bad(p, "history", "expected an object");
	size_t base = strlen(p->where);
	snprintf(p->where + base, sizeof(p->where) - base, ".history");
	int64_t runs;
	bool has;
	int r;
	if ((r = get_int(p, h, "runs", REQ, 1, UINT32_MAX, &runs, &has)) < 0 ||
	    (r = get_int(p, h, "p50Ms", REQ, 0, TIME_MAX, &t->p50_ms, &has)) < 0 ||
	    (r = get_int(p, h, "p95Ms", REQ, 0, TIME_MAX, &t->p95_ms, &has)) < 0 ||
	    (r = check_shape(p, h, "", history_shape)) < 0)
		return r;
	p->where[base] = '\0';
	t->history_runs = (uint32_t)runs;
	t->has_history = true;
	return 0;
}

static int parse_task(struct parse *p, const json_t *o, struct report_task *t,
		      struct report_str **dep_names)
{
	if (!json_is_object(o))
		return bad(p, "", "expected an object");
	bool graph = p->flags & REPORT_PARSE_GRAPH;
	int r;
	if ((r = get_str(p, o, "id", REQ, &t->id)) < 0 ||
	    (r = get_str(p, o, "kind", NUL_OK, &t->kind)) < 0 ||
	    (r = get_str(p, o, "hook", NUL_OK, &t->hook)) < 0 ||
	    (r = get_str(p, o, "status", graph ? NUL_OK : REQ, &t->status_name)) < 0 ||
	    (r = get_str(p, o, "errorClass", NUL_OK, &t->error_class)) < 0 ||
	    (r = get_str(p, o, "error", NUL_OK, &t->error)) < 0)
		return r;
	if (!t->id.len || strlen(t->id.s) != t->id.len)
		return bad(p, "id", "expected a non-empty string without NUL");
	t->status = t->status_name.s ? status_of(t->status_name.s) : REPORT_ST_PENDING;
	if ((r = parse_deps(p, o, t, dep_names)) < 0)
		return r;
	if (graph)
		return 0;
	if ((r = parse_attempts(p, o, t)) < 0 || (r = parse_history(p, o, t)) < 0)
		return r;
	return 0;
}

/* ---- ids ------------------------------------------------------------------ */

struct id_ref {
	const char *s;
	size_t len;
	uint32_t task;
};

static int id_cmp(const void *a, const void *b)
{
	const struct id_ref *x = a, *y = b;
	size_t n = x->len < y->len ? x->len : y->len;
	int c = memcmp(x->s, y->s, n);
	return c ? c : (x->len > y->len) - (x->len < y->len);
}

/* Resolves every dependency's taskId to an index; refuses duplicate ids. */
static int resolve(struct parse *p, struct report_doc *d,
		   struct report_str **dep_names)
{
	struct id_ref *ids = d->n_tasks ?
		arena_alloc(p->mem, d->n_tasks * sizeof(*ids)) : NULL;
	if (d->n_tasks && !ids)
		return report_fail(p->err, -ENOMEM, "out of memory");
	for (uint32_t i = 0; i < d->n_tasks; i++)
		ids[i] = (struct id_ref){d->tasks[i].id.s, d->tasks[i].id.len, i};
	if (d->n_tasks)
		qsort(ids, d->n_tasks, sizeof(*ids), id_cmp);
	for (uint32_t i = 1; i < d->n_tasks; i++)
		if (!id_cmp(&ids[i - 1], &ids[i])) {
			snprintf(p->where, sizeof(p->where), "tasks[%u]",
				 ids[i - 1].task > ids[i].task ? ids[i - 1].task : ids[i].task);
			return bad(p, "id", "duplicate task id");
		}
	for (uint32_t t = 0; t < d->n_tasks; t++) {
		struct report_task *task = &d->tasks[t];
		for (uint32_t k = 0; k < task->n_deps; k++) {
			struct id_ref key = {dep_names[t][k].s, dep_names[t][k].len, 0};
			const struct id_ref *hit = d->n_tasks ?
				bsearch(&key, ids, d->n_tasks, sizeof(*ids), id_cmp) : NULL;
			if (!hit) {
				snprintf(p->where, sizeof(p->where),
					 "tasks[%u].dependencies[%u]", t, k);
				return bad(p, "taskId", "no task has this id");
			}
			task->deps[k].task = hit->task;
		}
		d->n_edges += task->n_deps;
	}
	return 0;
}

/* ---- the run header ----------------------------------------------------------- */

static int parse_run(struct parse *p, const json_t *doc, struct report_doc *d)
{
	const json_t *v = json_object_get(doc, "dagrunRunDocument");
	if (!v)
		return bad(p, "dagrunRunDocument", "missing: not a dagrun run document");
	if (!json_is_integer(v) || json_integer_value(v) != REPORT_DOC_VERSION)
		return bad(p, "dagrunRunDocument",
			   "unsupported version (this dagrun reads version 1)");
	int r;
	if ((r = get_time(p, doc, "generatedMs", NUL_OK, &d->generated_ms,
			  &d->has_generated)) < 0)
		return r;
	const json_t *run = json_object_get(doc, "run");
	if (!json_is_object(run))
		return bad(p, "run", run ? "expected an object" : "missing");
	snprintf(p->where, sizeof(p->where), "run");
	int64_t x;
	bool has;
	if ((r = get_str(p, run, "id", REQ, &d->run_id)) < 0 ||
	    (r = get_int(p, run, "runAttempt", REQ, 1, UINT32_MAX, &x, &has)) < 0 ||
	    (r = get_str(p, run, "workflow", REQ, &d->workflow)) < 0 ||
	    (r = get_str(p, run, "path", NUL_OK, &d->path)) < 0 ||
	    (r = get_str(p, run, "status", REQ, &d->run_status)) < 0 ||
	    (r = get_time(p, run, "startMs", REQ, &d->start_ms, &has)) < 0 ||
	    (r = get_time(p, run, "endMs", NUL_OK, &d->end_ms, &d->has_end)) < 0 ||
	    (r = get_str(p, run, "error", NUL_OK, &d->error)) < 0)
		return r;
	d->run_attempt = (uint32_t)x;
	p->where[0] = '\0';
	return 0;
}

/* run.counts must be the tasks counted by status. */
static int check_counts(struct parse *p, const json_t *doc, struct report_doc *d)
{
	const json_t *counts = json_object_get(json_object_get(doc, "run"), "counts");
	snprintf(p->where, sizeof(p->where), "run");
	if (!json_is_object(counts))
		return bad(p, "counts", counts ? "expected an object" : "missing");
	uint64_t sum = 0;
	const char *key;
	const json_t *v;
	json_object_foreach((json_t *)counts, key, v) {
		char path[64];
		snprintf(path, sizeof(path), "counts.%.40s", key);
		if (!json_is_integer(v) || json_integer_value(v) < 0)
			return bad(p, path, "expected an integer >= 0");
		uint64_t want = 0;
		int st = status_of(key);
		if (st != REPORT_ST_OTHER)
			want = d->counts[st];
		else
			for (uint32_t t = 0; t < d->n_tasks; t++)
				want += !strcmp(d->tasks[t].status_name.s, key);
		if ((uint64_t)json_integer_value(v) != want)
			return bad(p, path, "does not match the tasks' statuses");
		sum += want;
	}
	if (sum != d->n_tasks)
		return bad(p, "counts", "does not count every task");
	p->where[0] = '\0';
	return 0;
}

/* ---- the span drawn ---------------------------------------------------------- */

int64_t report_attempt_end(const struct report_doc *d,
			   const struct report_attempt *a)
{
	int64_t end = a->has_end ? a->end_ms :
		      d->has_generated ? d->generated_ms :
		      d->has_end ? d->end_ms : d->t1;
	return end > a->start_ms ? end : a->start_ms;
}

/* From the first time to the last; the time the document was made counts
 * only while something is still open (the run, or an attempt): a report
 * made a day after the run is not a day long. */
static void span(struct report_doc *d)
{
	int64_t lo = d->start_ms, hi = d->start_ms;
	bool open = !d->has_end;
	if (d->has_end && d->end_ms > hi)
		hi = d->end_ms;
	for (uint32_t t = 0; t < d->n_tasks; t++)
		for (uint32_t i = 0; i < d->tasks[t].n_att; i++) {
			const struct report_attempt *a = &d->tasks[t].att[i];
			int64_t s = a->has_ready && a->ready_ms < a->start_ms ?
				    a->ready_ms : a->start_ms;
			if (s < lo)
				lo = s;
			if (a->start_ms > hi)
				hi = a->start_ms;
			if (a->has_end && a->end_ms > hi)
				hi = a->end_ms;
			open |= !a->has_end;
		}
	if (open && d->has_generated && d->generated_ms > hi)
		hi = d->generated_ms;
	d->t0 = lo;
	d->t1 = hi > lo ? hi : lo + 1;
}

/* ---- entry ------------------------------------------------------------------- */

int report_doc_parse(const json_t *doc, unsigned flags, struct arena *mem,
		     struct report_doc *out, char **err)
{
	struct parse p = {.mem = mem, .err = err, .flags = flags};
	struct report_doc d = {.graph_only = flags & REPORT_PARSE_GRAPH};
	if (!json_is_object(doc))
		return report_fail(err, -EINVAL, "expected a JSON object");
	int r;
	if (!d.graph_only && (r = parse_run(&p, doc, &d)) < 0)
		return r;
	if (d.graph_only && (r = get_str(&p, doc, "name", NUL_OK, &d.workflow)) < 0)
		return r;
	const json_t *run = json_object_get(doc, "run");
	if (d.graph_only && !d.workflow.s && json_is_object(run) &&
	    json_is_string(json_object_get(run, "workflow"))) {
		d.workflow.s = json_string_value(json_object_get(run, "workflow"));
		d.workflow.len = json_string_length(json_object_get(run, "workflow"));
	}
	const json_t *tasks = json_object_get(doc, "tasks");
	if (!json_is_array(tasks))
		return bad(&p, "tasks", tasks ? "expected an array" : "missing");
	size_t n = json_array_size(tasks);
	if (n > UINT32_MAX - 1)
		return bad(&p, "tasks", "too many");
	d.n_tasks = (uint32_t)n;
	d.tasks = n ? arena_calloc(mem, n * sizeof(*d.tasks)) : NULL;
	struct report_str **dep_names = n ? arena_calloc(mem, n * sizeof(*dep_names)) : NULL;
	if (n && (!d.tasks || !dep_names))
		return report_fail(err, -ENOMEM, "out of memory");
	for (uint32_t i = 0; i < d.n_tasks; i++) {
		snprintf(p.where, sizeof(p.where), "tasks[%u]", i);
		if ((r = parse_task(&p, json_array_get(tasks, i), &d.tasks[i],
				    &dep_names[i])) < 0)
			return r;
		d.counts[d.tasks[i].status]++;
		d.n_attempts += d.tasks[i].n_att;
	}
	p.where[0] = '\0';
	if ((r = resolve(&p, &d, dep_names)) < 0)
		return r;
	if (!d.graph_only) {
		if ((r = check_counts(&p, doc, &d)) < 0)
			return r;
		span(&d);
	}
	*out = d;
	return 0;
}
