/* rundoc_store.c: the run document of a recorded run (its attempts:
 * rundoc_attempt.c; see rundoc.h and the
 * mapping at the end of docs/run-document.md).
 *
 * Reads, each a query of the store: the run's tasks, all their attempts
 * (one query), the recorded definition, the history of the workflow's
 * tasks (one aggregated query), and for each attempt that wrote output
 * the end of its log files (at most tail_bytes of each, read with one
 * pread from the end). Nothing is read whole: the cost is the run's size,
 * not its output's.
 *
 * Invariant: every string put in the document went through jtext(),
 * which makes it valid UTF-8 (jansson refuses anything else), and every
 * task id written is non-empty and unique among the document's ids, so
 * the document passes report_doc_parse whatever the store holds.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "model/model.h"
#include "report/rundoc.h"
#include "report/rundoc_int.h"
#include "store/store.h"
#include "util/buf.h"
#include "util/clock.h"
#include "util/intern.h"
#include "util/text.h"

static const char *const hook_names[] = {NULL, "onSuccess", "onFailure", "onExit"};

int rd_oom(struct build *b)
{
	if (b->err && !*b->err)
		*b->err = strdup("out of memory");
	return -ENOMEM;
}

void rd_warn(struct build *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	if (b->warn.len)
		buf_addc(&b->warn, '\n');
	buf_vprintf(&b->warn, fmt, ap);
	va_end(ap);
}

/* ---- JSON values -------------------------------------------------------------- */

/* s[0 .. n) as a JSON string, invalid UTF-8 made U+FFFD; NULL: null. */
json_t *rd_jtextn(struct build *b, const char *s, size_t n)
{
	if (!s)
		return json_null();
	if (text_utf8_valid(s, n))
		return json_stringn_nocheck(s, n);
	buf_reset(&b->tmp);
	if (text_utf8_clean(&b->tmp, s, n) < 0)
		return NULL;
	return json_stringn_nocheck(b->tmp.data ? b->tmp.data : "", b->tmp.len);
}

json_t *rd_jtext(struct build *b, const char *s)
{
	return rd_jtextn(b, s, s ? strlen(s) : 0);
}

json_t *rd_jtime(uint64_t ms)
{
	return json_integer((json_int_t)(ms > TIME_MAX ? TIME_MAX : ms));
}

json_t *rd_juint(uint64_t v)
{
	return json_integer((json_int_t)(v > INT64_MAX ? INT64_MAX : v));
}

json_t *rd_jclass(int c)
{
	return c ? json_string(dagrun_class_name(c)) : json_null();
}

/* Sets o[key] = v (v stolen); returns non-zero when v is NULL or on OOM. */
int rd_set(json_t *o, const char *key, json_t *v)
{
	return json_object_set_new_nocheck(o, key, v) != 0;
}

/* ---- task ids --------------------------------------------------------------- */

/* The id written for each task: its own, cleaned; "#INDEX" appended when
 * it is empty or another task's cleaned id is the same ("#INDEX.K" if that
 * is taken too). */
static int make_ids(struct build *b)
{
	struct intern seen = {0};
	uint32_t renamed = 0;
	int r = 0;
	if (!(b->id = calloc(b->nt ? b->nt : 1, sizeof(*b->id))))
		return rd_oom(b);
	for (size_t i = 0; i < b->nt && r == 0; i++) {
		json_t *v = rd_jtext(b, b->t[i].id ? b->t[i].id : "");
		if (!(b->id[i] = v)) {
			r = rd_oom(b);
			break;
		}
		int added = 0;
		if (json_string_length(v) &&
		    intern_add(&seen, json_string_value(v), json_string_length(v),
			       &added) == INTERN_NONE)
			r = rd_oom(b);
		if (added || r < 0)
			continue;
		renamed++;
		for (unsigned k = 0; !added && r == 0; k++) {
			buf_reset(&b->tmp);
			if (buf_add(&b->tmp, json_string_value(v), json_string_length(v)) < 0 ||
			    buf_printf(&b->tmp, k ? "#%zu.%u" : "#%zu", i, k) < 0 ||
			    intern_add(&seen, b->tmp.data, b->tmp.len, &added) == INTERN_NONE)
				r = rd_oom(b);
		}
		if (r == 0) {
			json_decref(v);
			if (!(b->id[i] = json_stringn_nocheck(b->tmp.data, b->tmp.len)))
				r = rd_oom(b);
		}
	}
	if (renamed)
		rd_warn(b, "%u task id%s empty or alike once made valid UTF-8: shown with "
		     "'#INDEX' appended", renamed, renamed == 1 ? " is" : "s are");
	intern_free(&seen);
	return r;
}

/* ---- the definition --------------------------------------------------------- */

/* The first error of d, for a warning, or NULL. */
static const dagrun_diag *first_error(const dagrun_diags *d)
{
	for (size_t i = 0; i < dagrun_diags_count(d); i++) {
		const dagrun_diag *g = dagrun_diags_get(d, i);
		if (g->severity == DAGRUN_ERROR)
			return g;
	}
	return NULL;
}

/* Loads the definition and maps its tasks to the recorded ones by id. A
 * definition that is missing or does not load leaves b->wf NULL (a
 * warning says why): the document then has no kinds, hooks nor
 * dependencies. */
static int load_definition(struct build *b)
{
	struct store_definition def;
	char *qerr = NULL;
	int r = b->s->ops->definition(b->s, b->ri->key, &b->mem, &def, &qerr);
	if (r < 0) {
		if (b->err)
			*b->err = qerr;
		else
			free(qerr);
		return r;
	}
	if (!def.definition || !def.definition_len) {
		rd_warn(b, "dependencies and kinds not known: no definition was recorded with the run");
		return 0;
	}
	dagrun_diags *d = dagrun_diags_new(1);
	if (!d)
		return rd_oom(b);
	const char *name = b->ri->path && *b->ri->path ? b->ri->path : "<recorded definition>";
	r = dagrun_workflow_load_buffer(name, def.definition, def.definition_len, &b->wf, d);
	if (r == -ENOMEM) {
		dagrun_diags_free(d);
		return rd_oom(b);
	}
	if (r < 0) {
		const dagrun_diag *g = first_error(d);
		if (g)
			rd_warn(b, "dependencies and kinds not known: the definition recorded with "
			     "the run does not load: %s:%u:%u: %s", g->file ? g->file : name,
			     g->line, g->column, g->message);
		else
			rd_warn(b, "dependencies and kinds not known: the definition recorded with "
			     "the run does not load: %s", strerror(-r));
		b->wf = NULL;
		dagrun_diags_free(d);
		return 0;
	}
	dagrun_diags_free(d);
	const struct dagrun_workflow *wf = b->wf;
	b->wf_of = malloc((b->nt ? b->nt : 1) * sizeof(*b->wf_of));
	b->rec_of = malloc((wf->n_tasks ? wf->n_tasks : 1) * sizeof(*b->rec_of));
	if (!b->wf_of || !b->rec_of)
		return rd_oom(b);
	for (uint32_t i = 0; i < wf->n_tasks; i++)
		b->rec_of[i] = NONE;
	uint32_t missing = 0;
	for (size_t i = 0; i < b->nt; i++) {
		const char *id = b->t[i].id ? b->t[i].id : "";
		uint32_t sym = intern_find(&wf->ids, id, strlen(id));
		uint32_t k = sym == INTERN_NONE ? NONE : wf->sym_task[sym];
		b->wf_of[i] = k;
		if (k == NONE)
			missing++;
		else if (b->rec_of[k] == NONE)
			b->rec_of[k] = (uint32_t)i;
	}
	if (missing)
		rd_warn(b, "%u task%s of the run %s not in its recorded definition: shown without "
		     "kind and dependencies", missing, missing == 1 ? "" : "s",
		     missing == 1 ? "is" : "are");
	return 0;
}

static json_t *dependencies(struct build *b, size_t i, uint32_t *dropped)
{
	json_t *deps = json_array();
	if (!deps || !b->wf || b->wf_of[i] == NONE)
		return deps;
	const struct dagrun_workflow *wf = b->wf;
	const struct dr_task *k = &wf->tasks[b->wf_of[i]];
	int e = 0;
	for (uint32_t j = 0; j < k->dep_count && !e; j++) {
		const struct dr_dep *d = &wf->deps[(size_t)k->dep_first + j];
		uint32_t to = b->rec_of[d->target];
		if (to == NONE) {
			++*dropped;
			continue;
		}
		json_t *o = json_object();
		e |= !o;
		if (!o)
			break;
		e |= rd_set(o, "taskId", json_incref(b->id[to]));
		e |= rd_set(o, "type", json_string(d->type == DR_DEP_NON_BLOCKING ? "non-blocking" :
						"blocking"));
		e |= rd_set(o, "condition", d->condition && d->condition->s ?
			 rd_jtextn(b, d->condition->s, d->condition->len) : json_null());
		e |= json_array_append_new(deps, o) != 0;
	}
	if (e) {
		json_decref(deps);
		return NULL;
	}
	return deps;
}

/* ---- history ---------------------------------------------------------------- */

static int load_history(struct build *b)
{
	if (b->o->no_history || !b->ri->workflow || !b->nt)
		return 0;
	struct store_stats_filter f = {
		.workflow = b->ri->workflow, .before_key = b->ri->key,
		.max_runs = b->o->history_runs ? b->o->history_runs : REPORT_HISTORY_RUNS_DEFAULT,
	};
	struct store_task_stats *v;
	size_t n;
	char *qerr = NULL;
	int r = b->s->ops->task_stats(b->s, &f, &b->mem, &v, &n, &qerr);
	if (r < 0) {
		if (b->err)
			*b->err = qerr;
		else
			free(qerr);
		return r;
	}
	if (!n)
		return 0;
	struct intern ids = {0};
	uint32_t *first = malloc(b->nt * sizeof(*first));
	if (!first || !(b->hist = calloc(b->nt, sizeof(*b->hist)))) {
		free(first);
		return rd_oom(b);
	}
	for (size_t i = 0; i < b->nt && r == 0; i++) {
		const char *id = b->t[i].id ? b->t[i].id : "";
		int added = 0;
		uint32_t sym = intern_add(&ids, id, strlen(id), &added);
		if (sym == INTERN_NONE)
			r = rd_oom(b);
		else if (added)
			first[sym] = (uint32_t)i;
	}
	for (size_t j = 0; j < n && r == 0; j++) {
		uint32_t sym = intern_find(&ids, v[j].task, strlen(v[j].task));
		if (sym != INTERN_NONE && v[j].ok_attempts)
			b->hist[first[sym]] = &v[j];
	}
	intern_free(&ids);
	free(first);
	return r;
}

static json_t *history(const struct store_task_stats *h)
{
	json_t *o = json_object();
	if (!o)
		return NULL;
	int e = 0;
	e |= rd_set(o, "runs", json_integer(h->ok_attempts));
	e |= rd_set(o, "p50Ms", rd_juint(h->p50_ms));
	e |= rd_set(o, "p95Ms", rd_juint(h->p95_ms));
	e |= rd_set(o, "maxMs", rd_juint(h->max_ms));
	if (e) {
		json_decref(o);
		return NULL;
	}
	return o;
}

/* ---- tasks and the run --------------------------------------------------------- */

static json_t *task(struct build *b, size_t i, size_t *at, uint32_t *dropped,
		    const char **status)
{
	const struct store_task_info *t = &b->t[i];
	json_t *o = json_object(), *atts = json_array();
	int e = !o || !atts;
	int st = t->status;
	if (b->interrupted && st == STORE_TASK_RUNNING)
		st = STORE_TASK_INTERRUPTED;
	*status = store_task_status_name(st);
	while (*at < b->na && b->a[*at].task < i)
		(*at)++;
	for (; !e && *at < b->na && b->a[*at].task == i; (*at)++)
		e |= json_array_append_new(atts, rd_attempt(b, &b->a[*at])) != 0;
	if (!e) {
		e |= rd_set(o, "id", json_incref(b->id[i]));
		if (b->wf && b->wf_of[i] != NONE) {
			const struct dr_task *k = &b->wf->tasks[b->wf_of[i]];
			e |= rd_set(o, "kind", json_string(dr_kind_name(b->wf, b->wf_of[i])));
			if (k->hook > DR_HOOK_NONE && k->hook <= DR_HOOK_EXIT)
				e |= rd_set(o, "hook", json_string(hook_names[k->hook]));
		}
		e |= rd_set(o, "status", json_string(*status));
		e |= rd_set(o, "errorClass", rd_jclass(t->error_class));
		e |= rd_set(o, "error", rd_jtext(b, t->error));
		e |= rd_set(o, "dependencies", dependencies(b, i, dropped));
		e |= rd_set(o, "attempts", atts);
		atts = NULL;
		if (b->hist && b->hist[i])
			e |= rd_set(o, "history", history(b->hist[i]));
	}
	json_decref(atts);
	if (e) {
		json_decref(o);
		return NULL;
	}
	return o;
}

static json_t *run_header(struct build *b, json_t *counts)
{
	const struct store_run_info *ri = b->ri;
	json_t *o = json_object();
	if (!o) {
		json_decref(counts);
		return NULL;
	}
	int e = 0;
	e |= rd_set(o, "id", rd_jtext(b, ri->run_id));
	e |= rd_set(o, "runAttempt", json_integer(ri->run_attempt ? ri->run_attempt : 1));
	e |= rd_set(o, "workflow", rd_jtext(b, ri->workflow ? ri->workflow : ""));
	e |= rd_set(o, "path", rd_jtext(b, ri->path));
	e |= rd_set(o, "status", json_string(store_run_status_name(ri->status)));
	e |= rd_set(o, "startMs", rd_jtime(ri->start_ms));
	e |= rd_set(o, "endMs", ri->end_ms ? rd_jtime(ri->end_ms) : json_null());
	e |= rd_set(o, "error", rd_jtext(b, ri->error));
	e |= rd_set(o, "counts", counts);
	if (e) {
		json_decref(o);
		return NULL;
	}
	return o;
}

static int build_doc(struct build *b, json_t **out)
{
	json_t *doc = json_object(), *tasks = json_array(), *counts = json_object();
	int r = 0;
	uint32_t dropped = 0;
	size_t at = 0;
	if (!doc || !tasks || !counts) {
		r = rd_oom(b);
		goto out;
	}
	for (size_t i = 0; i < b->nt; i++) {
		const char *status = NULL;
		json_t *t = task(b, i, &at, &dropped, &status);
		if (!t || json_array_append_new(tasks, t) != 0) {
			r = rd_oom(b);
			goto out;
		}
		json_t *c = json_object_get(counts, status);
		if (json_object_set_new(counts, status,
					json_integer(c ? json_integer_value(c) + 1 : 1)) != 0) {
			r = rd_oom(b);
			goto out;
		}
	}
	if (b->unread)
		rd_warn(b, "the output of %u attempt stream%s could not be read (log files "
		     "removed?): not shown", b->unread, b->unread == 1 ? "" : "s");
	if (dropped)
		rd_warn(b, "%u dependenc%s on tasks the run did not record left out", dropped,
		     dropped == 1 ? "y" : "ies");
	char gen[64];
	snprintf(gen, sizeof(gen), "dagrun %s", dagrun_version());
	int e = 0;
	e |= rd_set(doc, "dagrunRunDocument", json_integer(1));
	e |= rd_set(doc, "generator", json_string(gen));
	e |= rd_set(doc, "generatedMs", rd_jtime(b->o->now_ms ? b->o->now_ms : clock_wall_ms()));
	e |= rd_set(doc, "run", run_header(b, counts));
	counts = NULL;
	e |= rd_set(doc, "tasks", tasks);
	tasks = NULL;
	if (e) {
		r = rd_oom(b);
		goto out;
	}
	*out = doc;
	doc = NULL;
out:
	json_decref(doc);
	json_decref(tasks);
	json_decref(counts);
	return r;
}

static int query(struct build *b)
{
	char *qerr = NULL;
	int r = b->s->ops->tasks(b->s, b->ri->key, &b->mem, &b->t, &b->nt, &qerr);
	if (r == 0)
		r = b->s->ops->attempts(b->s, b->ri->key, STORE_ALL_TASKS, &b->mem, &b->a,
					&b->na, &qerr);
	if (r < 0) {
		if (b->err)
			*b->err = qerr;
		else
			free(qerr);
	}
	return r;
}

int report_rundoc_from_store(struct store *s, const struct store_run_info *ri,
			     const struct report_rundoc_opts *o, json_t **out, char **warn_out,
			     char **err)
{
	static const struct report_rundoc_opts dflt = {0};
	struct build b = {.s = s, .ri = ri, .o = o ? o : &dflt, .mem = ARENA_INIT,
			  .tmp = BUF_INIT, .warn = BUF_INIT, .err = err};
	*out = NULL;
	if (warn_out)
		*warn_out = NULL;
	if (err)
		*err = NULL;
	b.tail = b.o->tail_bytes ? b.o->tail_bytes : REPORT_TAIL_DEFAULT;
	if (b.tail > REPORT_TAIL_MAX)
		b.tail = REPORT_TAIL_MAX;
	b.interrupted = ri->status == STORE_RUN_INTERRUPTED;
	int r = -ENOMEM;
	if (!(b.rbuf = malloc(b.tail))) {
		r = rd_oom(&b);
		goto out;
	}
	if ((r = query(&b)) < 0 || (r = make_ids(&b)) < 0 || (r = load_definition(&b)) < 0 ||
	    (r = load_history(&b)) < 0 || (r = build_doc(&b, out)) < 0)
		goto out;
	if (warn_out && b.warn.len && !(*warn_out = buf_steal(&b.warn)))
		r = rd_oom(&b);
out:
	if (r < 0) {
		json_decref(*out);
		*out = NULL;
	}
	for (size_t i = 0; b.id && i < b.nt; i++)
		json_decref(b.id[i]);
	free(b.id);
	free(b.wf_of);
	free(b.rec_of);
	free(b.hist);
	free(b.rbuf);
	dagrun_workflow_free(b.wf);
	buf_free(&b.tmp);
	buf_free(&b.warn);
	arena_free(&b.mem);
	return r;
}
