/* sqlite_history.c: reading attempts back: one run's attempts in full, and
 * the history of a workflow's tasks for scheduling.
 *
 * History matches tasks by id, not by index, since a workflow's tasks come
 * and go between runs: the caller's ids are interned once; a past run whose
 * task list is the caller's (the common case: the same file run again)
 * maps by index with no lookup. Memory: 4 bytes per caller task and past
 * run, freed before returning.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "store/sqlite_int.h"
#include "util/intern.h"

#define HISTORY_RUNS_MAX 100

#define ATT_COLS \
	"a.task, a.attempt, a.flags, a.start_ms, a.end_ms, a.duration_ms, a.pid, a.pgid," \
	" a.pid_start, a.exit_code, a.signal, a.class, a.error, a.cpu_user_ms, a.cpu_sys_ms," \
	" a.max_rss_kb, a.out_bytes, a.err_bytes, a.out_dropped, a.err_dropped," \
	" a.out_logged, a.err_logged, a.out_log_cut, a.err_log_cut," \
	" x.http_status, x.http_queue_us, x.http_dns_us, x.http_connect_us, x.http_tls_us," \
	" x.http_first_byte_us, x.http_total_us, x.http_redirects, x.model, x.finish_reason," \
	" x.prompt_sha256, x.prompt_tokens, x.completion_tokens, x.prompt_bytes," \
	" x.context_cut_bytes, r.value, a.ready_ms, io.inputs, io.results" \
	" FROM attempts a LEFT JOIN attempt_ext x ON x.run=a.run AND x.task=a.task AND" \
	" x.attempt=a.attempt LEFT JOIN results r ON r.run=a.run AND r.task=a.task AND" \
	" r.attempt=a.attempt LEFT JOIN attempt_io io ON io.run=a.run AND io.task=a.task AND" \
	" io.attempt=a.attempt"

struct vec {
	struct store_attempt_info *v;
	size_t n, cap;
};

static uint64_t u64(sqlite3_stmt *q, int c)
{
	return (uint64_t)sqlite3_column_int64(q, c);
}

static int read_attempt(sqlite3_stmt *q, uint64_t run, struct arena *mem,
			struct store_attempt_info *a)
{
	memset(a, 0, sizeof(*a));
	a->run = run;
	a->stored_task = a->task = (uint32_t)u64(q, 0);
	a->attempt = (uint32_t)u64(q, 1);
	a->ended = sqlite3_column_type(q, 2) != SQLITE_NULL;
	a->flags = (unsigned)sqlite3_column_int(q, 2);
	a->start_ms = u64(q, 3);
	a->end_ms = a->ended ? a->start_ms + u64(q, 4) : 0;
	a->duration_ms = u64(q, 5);
	a->pid = sqlite3_column_int64(q, 6);
	a->pgid = sqlite3_column_int64(q, 7);
	a->pid_start = u64(q, 8);
	a->exit_code = a->ended ? sqlite3_column_int(q, 9) : -1;
	a->signal = sqlite3_column_int(q, 10);
	a->error_class = sqlite3_column_int(q, 11);
	a->error = sq_col_text(mem, q, 12);
	a->cpu_user_ms = u64(q, 13);
	a->cpu_sys_ms = u64(q, 14);
	a->max_rss_kb = sqlite3_column_int64(q, 15);
	uint64_t *o[] = {&a->out_bytes, &a->err_bytes, &a->out_dropped, &a->err_dropped,
			 &a->out_logged, &a->err_logged, &a->out_log_cut, &a->err_log_cut};
	for (int i = 0; i < 8; i++)
		*o[i] = u64(q, 16 + i);
	a->http_status = sqlite3_column_int(q, 24);
	uint64_t *h[] = {&a->http_queue_us, &a->http_dns_us, &a->http_connect_us,
			 &a->http_tls_us, &a->http_first_byte_us, &a->http_total_us};
	for (int i = 0; i < 6; i++)
		*h[i] = u64(q, 25 + i);
	a->http_redirects = (uint32_t)u64(q, 31);
	a->model = sq_col_text(mem, q, 32);
	a->finish_reason = sq_col_text(mem, q, 33);
	a->prompt_sha256 = sq_col_text(mem, q, 34);
	a->prompt_tokens = sqlite3_column_type(q, 35) == SQLITE_NULL ? -1 : sqlite3_column_int64(q, 35);
	a->completion_tokens = sqlite3_column_type(q, 36) == SQLITE_NULL ? -1 :
			       sqlite3_column_int64(q, 36);
	a->prompt_bytes = u64(q, 37);
	a->context_cut_bytes = u64(q, 38);
	a->result_json = sq_col_text(mem, q, 39);
	/* stored as ms before the start */
	if (sqlite3_column_type(q, 40) != SQLITE_NULL) {
		uint64_t wait = u64(q, 40);
		a->ready_ms = wait < a->start_ms ? a->start_ms - wait : 0;
	}
	a->inputs_json = sq_col_text(mem, q, 41);
	a->io_results_json = sq_col_text(mem, q, 42);
	return 0;
}

/* Appends the attempts of (run, task) (task < 0: all) to v, as task `as`. */
static int read_rows(struct sq_store *st, uint64_t run, int64_t task, uint32_t as,
		     struct arena *mem, struct vec *v, char **err)
{
	sqlite3_stmt *q = NULL;
	int r = sq_q_prep_run(st, "SELECT " ATT_COLS " WHERE a.run=?1 ORDER BY a.task, a.attempt",
			      "SELECT " ATT_COLS " WHERE a.run=?1 AND a.task=?2 ORDER BY a.attempt",
			      run, task, &q, err);
	if (r < 0)
		return r;
	int rc = SQLITE_DONE;
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		if (v->n == v->cap) {
			size_t cap = v->cap ? v->cap * 2 : 64;
			struct store_attempt_info *nv = realloc(v->v, cap * sizeof(*nv));
			if (!nv) {
				r = sq_err(err, -ENOMEM, "out of memory");
				break;
			}
			v->v = nv;
			v->cap = cap;
		}
		struct store_attempt_info *a = &v->v[v->n++];
		read_attempt(q, run, mem, a);
		if (task >= 0)
			a->task = as;
	}
	sqlite3_finalize(q);
	if (r == 0 && rc != SQLITE_DONE)
		r = sq_q_fail(st, rc, err);
	return r;
}

static int by_task(const void *x, const void *y)
{
	const struct store_attempt_info *a = x, *b = y;
	if (a->task != b->task)
		return a->task < b->task ? -1 : 1;
	return a->attempt < b->attempt ? -1 : a->attempt > b->attempt;
}

/* Adds the attempts of the run's kept tasks. */
static int kept_rows(struct sq_store *st, uint64_t key, struct arena *mem, struct vec *v,
		     char **err)
{
	sqlite3_stmt *q = NULL;
	int r = sq_q_prep(st, "SELECT idx, from_run, from_idx FROM task_notes WHERE run=?1 AND "
			  "from_run IS NOT NULL", &q, err);
	if (r < 0)
		return r;
	sqlite3_bind_int64(q, 1, (int64_t)key);
	int rc = SQLITE_DONE;
	while (r == 0 && (rc = sqlite3_step(q)) == SQLITE_ROW) {
		uint32_t idx = (uint32_t)u64(q, 0), task = (uint32_t)u64(q, 2);
		uint64_t run = u64(q, 1);
		if ((r = sq_q_source(st, &run, &task, err)) == 0)
			r = read_rows(st, run, task, idx, mem, v, err);
	}
	sqlite3_finalize(q);
	if (r == 0 && rc != SQLITE_DONE)
		r = sq_q_fail(st, rc, err);
	return r;
}

static int n_tasks(struct sq_store *st, uint64_t key, uint32_t *n, char **err)
{
	sqlite3_stmt *q = NULL;
	int r = sq_q_prep(st, "SELECT n_tasks FROM runs WHERE id=?1", &q, err);
	if (r < 0)
		return r;
	sqlite3_bind_int64(q, 1, (int64_t)key);
	int rc = sqlite3_step(q);
	if (rc == SQLITE_ROW)
		*n = (uint32_t)u64(q, 0);
	else if (rc == SQLITE_DONE)
		r = sq_err(err, -ENOENT, "%s: no run %llu", st->path, (unsigned long long)key);
	else
		r = sq_q_fail(st, rc, err);
	sqlite3_finalize(q);
	return r;
}

int sq_attempts(struct store *s, uint64_t key, uint32_t task, struct arena *mem,
		struct store_attempt_info **out, size_t *n, char **err)
{
	struct sq_store *st = sq_of(s);
	struct vec v = {0};
	uint32_t nt = 0;
	int r = sq_q_enter(st, err);
	if (r < 0)
		return r;
	if ((r = n_tasks(st, key, &nt, err)) < 0)
		goto out;
	if (task != STORE_ALL_TASKS) {
		if (task >= nt) {
			r = sq_err(err, -EINVAL, "run %llu has no task %u",
				   (unsigned long long)key, task);
			goto out;
		}
		uint64_t run = key;
		uint32_t t = task;
		if ((r = sq_q_source(st, &run, &t, err)) == 0)
			r = read_rows(st, run, t, task, mem, &v, err);
	} else {
		size_t own;
		if ((r = read_rows(st, key, -1, 0, mem, &v, err)) == 0) {
			own = v.n;
			r = kept_rows(st, key, mem, &v, err);
			if (r == 0 && v.n > own)
				qsort(v.v, v.n, sizeof(*v.v), by_task);
		}
	}
	if (r < 0)
		goto out;
	*out = arena_alloc(mem, (v.n ? v.n : 1) * sizeof(**out));
	if (!*out) {
		r = sq_err(err, -ENOMEM, "out of memory");
		goto out;
	}
	if (v.n)
		memcpy(*out, v.v, v.n * sizeof(*v.v));
	*n = v.n;
out:
	sq_q_leave(st);
	free(v.v);
	return r;
}

/* ---- history ---------------------------------------------------------------- */

struct hist {
	uint32_t n, runs;
	uint32_t *sym;             /* caller index -> its id's symbol */
	bool unique;               /* every caller id distinct */
	char *blob;                /* the caller's ids as a blob */
	size_t blen;
	struct intern in;
	uint32_t *samples;         /* [sym * runs + k] */
	uint16_t *count;
	uint32_t *map;             /* a past run's task index -> symbol */
	size_t capmap;
};

static int hist_init(struct hist *h, const char *const *ids, uint32_t n)
{
	h->sym = malloc(n * sizeof(*h->sym));
	h->count = calloc(n, sizeof(*h->count));
	if (!h->sym || !h->count)
		return -ENOMEM;
	h->unique = true;
	for (uint32_t i = 0; i < n; i++) {
		size_t l = strlen(ids[i]);
		int added = 0;
		h->sym[i] = intern_add(&h->in, ids[i], l, &added);
		if (h->sym[i] == INTERN_NONE)
			return -ENOMEM;
		h->unique &= added != 0;
		h->blen += l + 1;
	}
	if (!(h->blob = malloc(h->blen ? h->blen : 1)))
		return -ENOMEM;
	size_t off = 0;
	for (uint32_t i = 0; i < n; i++) {
		size_t l = strlen(ids[i]) + 1;
		memcpy(h->blob + off, ids[i], l);
		off += l;
	}
	return 0;
}

/* Maps a past run's task indices to symbols; NULL map: the identity. */
static int hist_map(struct hist *h, const char *blob, size_t len, uint32_t pn, bool *identity)
{
	*identity = h->unique && pn == h->n && len == h->blen && !memcmp(blob, h->blob, len);
	if (*identity)
		return 0;
	if (pn > h->capmap) {
		uint32_t *m = realloc(h->map, pn * sizeof(*m));
		if (!m)
			return -ENOMEM;
		h->map = m;
		h->capmap = pn;
	}
	size_t off = 0;
	for (uint32_t i = 0; i < pn; i++) {
		const char *id = off < len ? blob + off : "";
		size_t l = off < len ? strnlen(id, len - off) : 0;
		h->map[i] = intern_find(&h->in, id, l);
		off += l + 1;
	}
	return 0;
}

static int hist_add(struct hist *h, uint32_t sym, uint64_t ms)
{
	if (!h->samples && !(h->samples = malloc((size_t)h->n * h->runs * sizeof(*h->samples))))
		return -ENOMEM;
	if (h->count[sym] < h->runs)
		h->samples[(size_t)sym * h->runs + h->count[sym]++] =
			ms > UINT32_MAX ? UINT32_MAX : (uint32_t)ms;
	return 0;
}

/* The successful attempts of one past run. */
static int hist_run(struct sq_store *st, struct hist *h, sqlite3_stmt *a, uint64_t run,
		    uint32_t pn, bool identity)
{
	sqlite3_reset(a);
	sqlite3_bind_int64(a, 1, (int64_t)run);
	int rc = SQLITE_DONE;
	while ((rc = sqlite3_step(a)) == SQLITE_ROW) {
		uint64_t t = u64(a, 0);
		if (t >= pn)
			continue;
		uint32_t sym = identity ? (uint32_t)t : h->map[t];
		if (sym != INTERN_NONE && hist_add(h, sym, u64(a, 1)) < 0)
			return -ENOMEM;
	}
	return rc == SQLITE_DONE ? 0 : sq_q_fail(st, rc, NULL);
}

static int cmp_u32(const void *x, const void *y)
{
	uint32_t a = *(const uint32_t *)x, b = *(const uint32_t *)y;
	return a < b ? -1 : a > b;
}

static void hist_free(struct hist *h)
{
	free(h->sym);
	free(h->blob);
	free(h->samples);
	free(h->count);
	free(h->map);
	intern_free(&h->in);
}

int sq_history(struct store *s, const char *workflow, const char *const *ids, uint32_t n,
	       uint32_t max_runs, uint64_t *median_ms, char **err)
{
	struct sq_store *st = sq_of(s);
	struct hist h = {.n = n, .runs = max_runs > HISTORY_RUNS_MAX ? HISTORY_RUNS_MAX : max_runs};
	sqlite3_stmt *q = NULL, *a = NULL;
	if (n)
		memset(median_ms, 0, n * sizeof(*median_ms));
	if (!n || !h.runs || !workflow)
		return 0;
	int r = hist_init(&h, ids, n);
	if (r < 0) {
		hist_free(&h);
		return sq_err(err, r, "out of memory");
	}
	if ((r = sq_q_enter(st, err)) < 0) {
		hist_free(&h);
		return r;
	}
	if ((r = sq_q_prep(st, "SELECT r.id, r.n_tasks, d.task_ids FROM runs r JOIN run_defs d "
			   "ON d.run = r.id WHERE r.workflow=?1 AND r.replay_of IS NULL "
			   "ORDER BY r.id DESC LIMIT ?2",
			   &q, err)) < 0 ||
	    (r = sq_q_prep(st, "SELECT task, duration_ms FROM attempts WHERE run=?1 AND "
			   "flags & 1 AND NOT flags & 48", &a, err)) < 0)
		goto out;
	sqlite3_bind_text(q, 1, workflow, -1, SQLITE_STATIC);
	sqlite3_bind_int64(q, 2, h.runs);
	int rc = SQLITE_DONE;
	while (r == 0 && (rc = sqlite3_step(q)) == SQLITE_ROW) {
		uint32_t pn = (uint32_t)u64(q, 1);
		bool identity;
		r = hist_map(&h, sqlite3_column_blob(q, 2), (size_t)sqlite3_column_bytes(q, 2),
			     pn, &identity);
		if (r == 0)
			r = hist_run(st, &h, a, u64(q, 0), pn, identity);
	}
	if (r == -ENOMEM)
		sq_err(err, r, "out of memory");
	else if (r == 0 && rc != SQLITE_DONE)
		r = sq_q_fail(st, rc, err);
	else if (r < 0)
		sq_q_fail(st, sqlite3_errcode(st->qdb), err);
	/* Medians by symbol (the samples' order), then by caller index. */
	uint32_t nsym = h.in.count;
	uint64_t *med = r == 0 ? calloc(nsym ? nsym : 1, sizeof(*med)) : NULL;
	if (r == 0 && !med)
		r = sq_err(err, -ENOMEM, "out of memory");
	for (uint32_t sym = 0; r == 0 && sym < nsym; sym++) {
		uint32_t c = h.count[sym];
		if (!c)
			continue;
		uint32_t *v = h.samples + (size_t)sym * h.runs;
		qsort(v, c, sizeof(*v), cmp_u32);
		med[sym] = c % 2 ? v[c / 2] : ((uint64_t)v[c / 2 - 1] + v[c / 2]) / 2;
	}
	for (uint32_t i = 0; r == 0 && i < n; i++)
		median_ms[i] = med[h.sym[i]];
	free(med);
out:
	sqlite3_finalize(q);
	sqlite3_finalize(a);
	sq_q_leave(st);
	hist_free(&h);
	return r;
}
