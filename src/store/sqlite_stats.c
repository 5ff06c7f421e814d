/* sqlite_stats.c: statistics of runs and tasks over many runs (`dagrun
 * stats`, a report's history), aggregated by SQLite.
 *
 * The caller receives one row per workflow or per task, never the
 * attempts: counts, sums and maxima are SQL aggregates, and percentiles
 * are nearest-rank ranks picked out of a window function's order
 * (row_number() over the values sorted, the row at rank ceil(p * n / 100)
 * kept), so a p95 is a duration that happened.
 *
 * Tasks are matched across runs by id, not by index (a workflow's tasks
 * come and go between runs), but ids are stored once per run as a blob in
 * run_defs: the SQL function dagrun_task_sym(task_ids, run, task) gives
 * the task's id as a small integer (a symbol of an intern table that lives
 * for one call), splitting each run's blob once (rows come grouped by run;
 * a run whose blob is the previous one's reuses its symbols), so that SQL
 * groups and sorts integers. The function is registered on the query
 * connection for the duration of one call, under qlock.
 *
 * Invariant: every query of one call runs in one read transaction (one
 * snapshot), like every other query of the store.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "store/sqlite_int.h"

/* The flags the queries below name by value: 32 a cache hit, 96 run under
 * a cache key (hit or miss), 48 not run here (replayed or a hit). */
_Static_assert(STORE_ATTEMPT_CACHED == 32 && STORE_ATTEMPT_CACHE_MISS == 64 &&
	       STORE_ATTEMPT_REPLAYED == 16, "sqlite_stats.c, sqlite_history.c: flags by value");
#include "util/intern.h"

#define SYM_FN "dagrun_task_sym"

/* The runs a filter selects: ?1 workflow (or NULL), ?2 since, ?3 before
 * key (0: any), ?4 limit (-1: none). */
#define SEL_SQL \
	"sel AS (SELECT id, workflow, status, start_ms, end_ms, owner_host, owner_pid," \
	" owner_start, beat_ms FROM runs WHERE (?1 IS NULL OR workflow = ?1)" \
	" AND replay_of IS NULL" \
	" AND start_ms >= ?2 AND (?3 = 0 OR id < ?3) ORDER BY id DESC LIMIT ?4)"

/* Nearest-rank percentiles of column v over partition rows ranked rn of k. */
#define PCT(p, v) "max(CASE WHEN rn = (k * " #p " + 99) / 100 THEN " v " END)"

static int oom(char **err)
{
	return sq_err(err, -ENOMEM, "out of memory");
}

static void bind_filter(sqlite3_stmt *q, const struct store_stats_filter *f)
{
	if (f->workflow)
		sqlite3_bind_text(q, 1, f->workflow, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(q, 1);
	sqlite3_bind_int64(q, 2, (int64_t)f->since_ms);
	sqlite3_bind_int64(q, 3, (int64_t)f->before_key);
	sqlite3_bind_int64(q, 4, f->max_runs ? (int64_t)f->max_runs : -1);
}

static uint64_t u64(sqlite3_stmt *q, int c)
{
	int64_t v = sqlite3_column_int64(q, c);
	return v > 0 ? (uint64_t)v : 0;
}

/* ---- workflows ---------------------------------------------------------------- */

/* Workflow names to their entries, in first-seen order. */
struct wfs {
	struct intern names;
	struct store_workflow_stats *v;
	uint32_t cap;
};

static struct store_workflow_stats *wf_entry(struct wfs *w, sqlite3_stmt *q, int col)
{
	const char *name = (const char *)sqlite3_column_text(q, col);
	if (!name)
		name = "";
	int added = 0;
	uint32_t sym = intern_add(&w->names, name, strlen(name), &added);
	if (sym == INTERN_NONE)
		return NULL;
	if (sym >= w->cap) {
		uint32_t cap = w->cap ? w->cap * 2 : 16;
		struct store_workflow_stats *nv = realloc(w->v, cap * sizeof(*nv));
		if (!nv)
			return NULL;
		w->v = nv;
		w->cap = cap;
	}
	if (added) {
		memset(&w->v[sym], 0, sizeof(w->v[sym]));
		w->v[sym].workflow = intern_str(&w->names, sym);
	}
	return &w->v[sym];
}

static int wf_step(struct sq_store *st, const char *sql, const struct store_stats_filter *f,
		   struct wfs *w, int kind, char **err)
{
	sqlite3_stmt *q = NULL;
	int r = sq_q_prep(st, sql, &q, err);
	if (r < 0)
		return r;
	bind_filter(q, f);
	int rc;
	uint64_t now = clock_wall_ms();
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		struct store_workflow_stats *e = wf_entry(w, q, 0);
		if (!e) {
			r = oom(err);
			break;
		}
		if (kind == 0) {          /* statuses recorded as final */
			int status = sqlite3_column_int(q, 1);
			uint32_t n = (uint32_t)u64(q, 2);
			if (status > STORE_RUN_RUNNING && status < STORE_RUN_INTERRUPTED)
				e->by_status[status] += n;
			e->runs += n;
		} else if (kind == 1) {   /* recorded running: alive or not */
			bool alive = sq_lease_alive(st, (const char *)sqlite3_column_text(q, 1),
						    sqlite3_column_int64(q, 2), u64(q, 3),
						    u64(q, 4), now);
			e->by_status[alive ? STORE_RUN_RUNNING : STORE_RUN_INTERRUPTED]++;
			e->runs++;
		} else {                  /* wall times */
			e->timed = (uint32_t)u64(q, 1);
			e->p50_ms = u64(q, 2);
			e->p95_ms = u64(q, 3);
			e->max_ms = u64(q, 4);
		}
	}
	if (r == 0 && rc != SQLITE_DONE)
		r = sq_q_fail(st, rc, err);
	sqlite3_finalize(q);
	return r;
}

int sq_workflow_stats(struct store *s, const struct store_stats_filter *f,
		      struct arena *mem, struct store_workflow_stats **out, size_t *n,
		      char **err)
{
	static const char *const sql[3] = {
		"WITH " SEL_SQL " SELECT workflow, status, count(*) FROM sel"
		" WHERE status != 0 GROUP BY workflow, status",
		"WITH " SEL_SQL " SELECT workflow, owner_host, owner_pid, owner_start, beat_ms"
		" FROM sel WHERE status = 0",
		"WITH " SEL_SQL ", w AS (SELECT workflow, max(end_ms - start_ms, 0) AS v,"
		" row_number() OVER (PARTITION BY workflow ORDER BY max(end_ms - start_ms, 0))"
		" AS rn, count(*) OVER (PARTITION BY workflow) AS k FROM sel"
		" WHERE status IN (1, 2) AND end_ms IS NOT NULL)"
		" SELECT workflow, max(k), " PCT(50, "v") ", " PCT(95, "v") ", max(v)"
		" FROM w GROUP BY workflow",
	};
	struct sq_store *st = sq_of(s);
	struct wfs w = {0};
	*out = NULL;
	*n = 0;
	int r = sq_q_enter(st, err);
	if (r < 0)
		return r;
	for (int k = 0; k < 3 && r == 0; k++)
		r = wf_step(st, sql[k], f, &w, k, err);
	sq_q_leave(st);
	uint32_t cnt = w.names.count;
	if (r == 0 && !(*out = arena_alloc(mem, (cnt ? cnt : 1) * sizeof(**out))))
		r = oom(err);
	for (uint32_t i = 0; r == 0 && i < cnt; i++) {
		(*out)[i] = w.v[i];
		if (!((*out)[i].workflow = arena_strdup(mem, w.v[i].workflow)))
			r = oom(err);
	}
	if (r == 0)
		*n = cnt;
	free(w.v);
	intern_free(&w.names);
	return r;
}

/* ---- tasks ---------------------------------------------------------------------- */

/* dagrun_task_sym's state: the symbols of the last run's tasks. */
struct symfn {
	struct intern ids;
	uint32_t want;             /* the symbol of f->task, or INTERN_NONE */
	bool filter;
	int64_t run;               /* whose blob syms[] is of; -1: none */
	char *blob;                /* a copy of it */
	size_t blen;
	uint32_t *syms;
	uint32_t nsyms, capsyms;
};

/* Splits blob into symbols (a copy of the previous run's when equal). */
static int sym_split(struct symfn *c, const char *blob, size_t len)
{
	if (c->blob && len == c->blen && !memcmp(blob, c->blob, len))
		return 0;
	char *copy = malloc(len ? len : 1);
	if (!copy)
		return -ENOMEM;
	if (len)
		memcpy(copy, blob, len);
	free(c->blob);
	c->blob = copy;
	c->blen = len;
	c->nsyms = 0;
	for (size_t off = 0; off < len;) {
		size_t l = strnlen(blob + off, len - off);
		if (c->nsyms == c->capsyms) {
			uint32_t cap = c->capsyms ? c->capsyms * 2 : 64;
			uint32_t *ns = realloc(c->syms, cap * sizeof(*ns));
			if (!ns)
				return -ENOMEM;
			c->syms = ns;
			c->capsyms = cap;
		}
		int added = 0;
		uint32_t sym = intern_add(&c->ids, blob + off, l, &added);
		if (sym == INTERN_NONE)
			return -ENOMEM;
		c->syms[c->nsyms++] = sym;
		off += l + 1;
	}
	return 0;
}

/* dagrun_task_sym(task_ids, run, task): the task's id as a symbol; -1 for
 * an index out of range or, with a task filter, another task. */
static void sym_fn(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
	struct symfn *c = sqlite3_user_data(ctx);
	(void)argc;
	int64_t run = sqlite3_value_int64(argv[1]);
	int64_t idx = sqlite3_value_int64(argv[2]);
	if (run != c->run) {
		const char *blob = sqlite3_value_blob(argv[0]);
		size_t len = (size_t)sqlite3_value_bytes(argv[0]);
		c->run = -1;
		if (sym_split(c, blob ? blob : "", blob ? len : 0) < 0) {
			sqlite3_result_error_nomem(ctx);
			return;
		}
		c->run = run;
	}
	int64_t sym = idx >= 0 && idx < c->nsyms ? (int64_t)c->syms[idx] : -1;
	if (c->filter && sym != (int64_t)c->want)
		sym = -1;
	sqlite3_result_int64(ctx, sym);
}

static void symfn_free(struct symfn *c)
{
	intern_free(&c->ids);
	free(c->blob);
	free(c->syms);
}

#define TASK_SQL \
	"WITH " SEL_SQL ","                                                              \
	" att AS MATERIALIZED (SELECT s.workflow AS wf," \
	"   " SYM_FN "(d.task_ids, a.run, a.task) AS t, a.run AS run, a.flags AS fl,"    \
	"   a.duration_ms AS dur, a.cpu_user_ms + a.cpu_sys_ms AS cpu, a.max_rss_kb AS rss," \
	"   x.model IS NOT NULL AS ai, x.prompt_tokens AS pt, x.completion_tokens AS ct" \
	"  FROM sel s JOIN run_defs d ON d.run = s.id JOIN attempts a ON a.run = s.id"  \
	"  LEFT JOIN attempt_ext x ON x.run = a.run AND x.task = a.task"                 \
	"   AND x.attempt = a.attempt WHERE a.flags IS NOT NULL),"                         \
	" per AS (SELECT wf, t, count(*) AS n, max(fl & 1) AS ok,"                       \
	"   max((fl & 12) != 0) AS cut, total(cpu) AS cpu, max(rss) AS rss, max(ai) AS ai," \
	"   total(CASE WHEN ai THEN pt END) AS pt, total(CASE WHEN ai THEN ct END) AS ct,"  \
	"   max((fl & 96) != 0) AS keyed, max((fl & 32) != 0) AS hit"                     \
	"  FROM att WHERE t >= 0 GROUP BY wf, t, run),"                                  \
	" agg AS (SELECT wf, t, count(*) AS runs, sum(ok) AS ok_runs,"                   \
	"   sum(ok = 0 AND cut = 0) AS failed, sum(ok = 0 AND cut = 1) AS cut,"          \
	"   sum(n) AS attempts, total(cpu) AS cpu, max(rss) AS rss, sum(ai) AS ai_runs,"  \
	"   total(pt) AS pt, total(ct) AS ct, sum(keyed) AS keyed, sum(hit) AS hits"      \
	"   FROM per GROUP BY wf, t),"                                                     \
	" ranked AS (SELECT wf, t, dur,"                                                 \
	"   row_number() OVER (PARTITION BY wf, t ORDER BY dur) AS rn,"                  \
	"   count(*) OVER (PARTITION BY wf, t) AS k FROM att WHERE fl & 1 AND NOT fl & 48" \
	"   AND t >= 0),"                                                                  \
	" pct AS (SELECT wf, t, max(k) AS k, " PCT(50, "dur") " AS p50, "                 \
	"   " PCT(95, "dur") " AS p95, max(dur) AS mx FROM ranked GROUP BY wf, t)"        \
	" SELECT agg.wf, agg.t, runs, ok_runs, failed, cut, attempts, cpu, rss, ai_runs," \
	"  pt, ct, pct.k, p50, p95, mx, keyed, hits"                                       \
	" FROM agg LEFT JOIN pct ON pct.wf = agg.wf AND pct.t = agg.t"

static int by_wf_p95(const void *x, const void *y)
{
	const struct store_task_stats *a = x, *b = y;
	int c = strcmp(a->workflow, b->workflow);
	if (c)
		return c;
	if (!a->ok_attempts != !b->ok_attempts)
		return a->ok_attempts ? -1 : 1;
	if (a->p95_ms != b->p95_ms)
		return a->p95_ms > b->p95_ms ? -1 : 1;
	return strcmp(a->task, b->task);
}

static int read_task_row(sqlite3_stmt *q, const struct symfn *c, struct arena *mem,
			 struct store_task_stats *t)
{
	memset(t, 0, sizeof(*t));
	int64_t sym = sqlite3_column_int64(q, 1);
	t->workflow = sq_col_text(mem, q, 0);
	t->task = sym >= 0 && sym < c->ids.count ? arena_strdup(mem, intern_str(&c->ids,
						     (uint32_t)sym)) : arena_strdup(mem, "");
	t->runs = (uint32_t)u64(q, 2);
	t->ok_runs = (uint32_t)u64(q, 3);
	t->failed_runs = (uint32_t)u64(q, 4);
	t->cut_runs = (uint32_t)u64(q, 5);
	t->attempts = u64(q, 6);
	t->cpu_ms = (uint64_t)sqlite3_column_double(q, 7);
	t->max_rss_kb = sqlite3_column_int64(q, 8);
	t->ai_runs = (uint32_t)u64(q, 9);
	t->prompt_tokens = (uint64_t)sqlite3_column_double(q, 10);
	t->completion_tokens = (uint64_t)sqlite3_column_double(q, 11);
	t->ok_attempts = (uint32_t)u64(q, 12);
	t->p50_ms = u64(q, 13);
	t->p95_ms = u64(q, 14);
	t->max_ms = u64(q, 15);
	t->cache_runs = (uint32_t)u64(q, 16);
	t->cached_runs = (uint32_t)u64(q, 17);
	return t->workflow && t->task ? 0 : -ENOMEM;
}

/* Runs TASK_SQL with c registered; rows appended to *v. Caller is in a
 * read transaction. */
static int task_rows(struct sq_store *st, const struct store_stats_filter *f,
		     struct symfn *c, struct arena *mem, struct store_task_stats **v,
		     size_t *cnt, char **err)
{
	sqlite3_stmt *q = NULL;
	size_t cap = 0;
	int rc = sqlite3_create_function_v2(st->qdb, SYM_FN, 3,
					    SQLITE_UTF8 | SQLITE_DETERMINISTIC |
					    SQLITE_DIRECTONLY, c, sym_fn, NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		return sq_q_fail(st, rc, err);
	int r = sq_q_prep(st, TASK_SQL, &q, err);
	if (r == 0) {
		bind_filter(q, f);
		while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
			if (*cnt == cap) {
				cap = cap ? cap * 2 : 64;
				struct store_task_stats *nv = realloc(*v, cap * sizeof(*nv));
				if (!nv) {
					r = oom(err);
					break;
				}
				*v = nv;
			}
			if (read_task_row(q, c, mem, &(*v)[*cnt]) < 0) {
				r = oom(err);
				break;
			}
			++*cnt;
		}
		if (r == 0 && rc != SQLITE_DONE)
			r = rc == SQLITE_NOMEM ? oom(err) : sq_q_fail(st, rc, err);
	}
	sqlite3_finalize(q);
	/* Unregistered: c lives on the caller's stack. */
	sqlite3_create_function_v2(st->qdb, SYM_FN, 3, SQLITE_UTF8, NULL, NULL, NULL, NULL, NULL);
	return r;
}

int sq_task_stats(struct store *s, const struct store_stats_filter *f, struct arena *mem,
		  struct store_task_stats **out, size_t *n, char **err)
{
	struct sq_store *st = sq_of(s);
	struct symfn c = {.run = -1, .want = INTERN_NONE, .filter = f->task != NULL};
	struct store_task_stats *v = NULL;
	size_t cnt = 0;
	int r = 0;
	*out = NULL;
	*n = 0;
	if (f->task) {
		int added = 0;
		if ((c.want = intern_add(&c.ids, f->task, strlen(f->task), &added)) == INTERN_NONE) {
			symfn_free(&c);
			return oom(err);
		}
	}
	if ((r = sq_q_enter(st, err)) < 0) {
		symfn_free(&c);
		return r;
	}
	r = task_rows(st, f, &c, mem, &v, &cnt, err);
	sq_q_leave(st);
	if (r == 0 && cnt)
		qsort(v, cnt, sizeof(*v), by_wf_p95);
	if (r == 0 && !(*out = arena_alloc(mem, (cnt ? cnt : 1) * sizeof(**out))))
		r = oom(err);
	if (r == 0) {
		if (cnt)
			memcpy(*out, v, cnt * sizeof(*v));
		*n = cnt;
	}
	free(v);
	symfn_free(&c);
	return r;
}
