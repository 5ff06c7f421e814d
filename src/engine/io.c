/* io.c: what replay needs of every attempt, recorded and replayed, as two
 * executors the engine plugs in front of (or instead of) the kinds' own.
 *
 *  - The recorder wraps a kind's executor in a recorded run: it renders
 *    the attempt's canonical inputs through the kind's hook (kinds_inputs)
 *    before handing the attempt on, and adds them, with the results that
 *    are nowhere else (outputs, response headers), masked, to the result
 *    as a DAGRUN_EXT_IO extension, which the store's observer records.
 *  - The replayer stands for every kind in a replay: it renders the
 *    inputs the same way and ends the attempt, from the loop, with the
 *    result recorded for that task and attempt (the recording being the
 *    document `dagrun export` writes). Nothing is spawned or sent.
 *
 * The scheduler knows neither: both are executors behind executor_ops.
 * Invariant: the inner executor sees an attempt of its own (a copy whose
 * callbacks forward to the scheduler's), which lives until the loop turn
 * after its end, since an executor may touch its attempt after on_done.
 */
#include "engine/io.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/wrap.h"
#include "expr/value.h"
#include "kinds/kind.h"
#include "util/buf.h"

/* ---- the extension -------------------------------------------------------------- */

struct io_ext {
	struct exec_ext base;
	struct exec_ext *inner;          /* the executor's, or NULL */
	dagrun_ext_io io;
	dagrun_ext_http http;            /* replay: the recorded status */
	dagrun_ext_ai ai;                /* replay: the recorded model, usage */
	struct expr_outputs outs;        /* replay: the recorded outputs */
	char *inputs, *results, *ierr, *model;
};

static void io_ext_free(struct exec_ext *x)
{
	struct io_ext *e = (struct io_ext *)x;
	/* headers of our own (a replay's), not the inner extension's */
	if (e->base.headers && (!e->inner || e->base.headers != e->inner->headers))
		json_decref(e->base.headers);
	if (e->inner && e->inner->free)
		e->inner->free(e->inner);
	expr_outputs_free(&e->outs);
	free(e->inputs);
	free(e->results);
	free(e->ierr);
	free(e->model);
	free(e);
}

/* A new extension over inner (taken), carrying inputs and ierr (taken). */
static struct io_ext *io_ext_new(struct exec_ext *inner, char *inputs, char *ierr)
{
	struct io_ext *e = calloc(1, sizeof(*e));
	if (!e) {
		if (inner && inner->free)
			inner->free(inner);
		free(inputs);
		free(ierr);
		return NULL;
	}
	e->inner = inner;
	e->base.free = io_ext_free;
	e->base.pub = &e->io.base;
	e->base.headers = inner ? inner->headers : NULL;
	e->base.outputs = inner ? inner->outputs : NULL;
	e->io.base.type = DAGRUN_EXT_IO;
	e->io.base.next = inner ? inner->pub : NULL;
	e->io.inputs = e->inputs = inputs;
	e->io.inputs_error = e->ierr = ierr;
	return e;
}

/* ---- the recorder ----------------------------------------------------------------- */

struct rec_att {
	struct exec_wrap w;              /* first: the inner executor's attempt */
	struct io_exec *x;
	char *inputs, *ierr;
	uint64_t out_seen;               /* stdout bytes that went to the log */
	struct rec_att *next;            /* on x->dead */
};

struct io_exec {
	struct executor base;
	uv_loop_t *loop;
	const struct kind *kind;
	struct executor *inner;          /* the recorder's; NULL: the replayer */
	uv_idle_t idle;
	struct rec_att *dead;            /* ended: freed on the next turn */
	/* replayer */
	json_t *doc;                     /* task id -> its attempts */
	struct rep_job *head, *tail;
	bool closing;
};

struct rep_job {
	struct exec_attempt *a;
	char *inputs, *ierr;
	bool cancelled;
	struct rep_job *next;
};

static void on_idle(uv_idle_t *h);

static void reap(struct io_exec *x)
{
	while (x->dead) {
		struct rec_att *d = x->dead;
		x->dead = d->next;
		free(d->inputs);
		free(d->ierr);
		free(d);
	}
}

static void count_output(struct exec_attempt *a, enum exec_stream s, const char *p, size_t n)
{
	struct rec_att *ra = (struct rec_att *)a;
	if (s == EXEC_STDOUT)
		ra->out_seen += n;
	exec_wrap_output(a, s, p, n);
}

/* outputs as an object of strings, or NULL. */
static json_t *outputs_json(const struct expr_outputs *o)
{
	if (!o || !o->n)
		return NULL;
	json_t *j = json_object();
	for (size_t i = 0; j && i < o->n; i++) {
		json_t *v = kinds_json_string(o->v[i].value, o->v[i].value_len);
		if (!v || json_object_set_new(j, o->v[i].key, v) < 0) {
			json_decref(j);
			return NULL;
		}
	}
	return j;
}

/* What the attempt gave that is in no other record (outputs, response
 * headers; the result's output when it did not go to the log as stdout:
 * an AI reply not streamed), masked; malloc'd JSON or NULL when nothing. */
static char *results_json(const struct exec_attempt *a, const struct exec_result *r,
			  uint64_t out_seen)
{
	json_t *o = json_object();
	if (!o)
		return NULL;
	if (r->out.len && !out_seen) {
		json_t *s = kinds_json_string(r->out.data, r->out.len);
		if (s)
			json_object_set_new(o, "output", s);
	}
	struct expr_outputs file;
	memset(&file, 0, sizeof(file));
	const struct expr_outputs *outs = r->ext ? r->ext->outputs : NULL;
	if (!outs && a->output_file && expr_outputs_read(a->output_file, &file) == 0)
		outs = &file;
	json_t *oj = outputs_json(outs);
	if (oj)
		json_object_set_new(o, "outputs", oj);
	expr_outputs_free(&file);
	if (r->ext && r->ext->headers && json_object_size(r->ext->headers))
		json_object_set_new(o, "headers", json_deep_copy(r->ext->headers));
	char *s = NULL;
	if (json_object_size(o) && kinds_mask_json(a->redactor, o) == 0)
		s = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(o);
	return s;
}

static void rec_done(struct exec_attempt *a, struct exec_result *r)
{
	struct rec_att *ra = (struct rec_att *)a;
	struct io_exec *x = ra->x;
	struct io_ext *e = io_ext_new(r->ext, ra->inputs, ra->ierr);
	ra->inputs = ra->ierr = NULL;
	r->ext = e ? &e->base : NULL;
	if (e)
		e->io.results = e->results = results_json(a, r, ra->out_seen);
	ra->w.out->priv = NULL;
	ra->w.out->on_done(ra->w.out, r);
	/* the inner executor may still read its attempt: freed next turn */
	ra->next = x->dead;
	x->dead = ra;
	if (!x->closing && !uv_is_active((uv_handle_t *)&x->idle))
		uv_idle_start(&x->idle, on_idle);
}

static int rec_start(struct executor *ex, struct exec_attempt *a)
{
	struct io_exec *x = (struct io_exec *)ex;
	reap(x);
	struct rec_att *ra = calloc(1, sizeof(*ra));
	if (!ra)
		return -ENOMEM;
	int r = kinds_inputs(x->kind, a, &ra->inputs, &ra->ierr);
	if (r == -ENOMEM) {
		free(ra->ierr);
		free(ra);
		return r;
	}
	exec_wrap_init(&ra->w, a, rec_done, count_output);
	ra->x = x;
	a->priv = ra;
	if ((r = x->inner->ops->start(x->inner, &ra->w.in)) < 0) {
		a->priv = NULL;
		free(ra->inputs);
		free(ra->ierr);
		free(ra);
		return r;
	}
	a->pid = ra->w.in.pid;
	a->pid_start = ra->w.in.pid_start;
	return 0;
}

static void rec_cancel(struct executor *ex, struct exec_attempt *a, bool hard)
{
	struct io_exec *x = (struct io_exec *)ex;
	struct rec_att *ra = a->priv;
	if (ra)
		x->inner->ops->cancel(x->inner, &ra->w.in, hard);
}

static void on_closed(uv_handle_t *h)
{
	struct io_exec *x = h->data;
	reap(x);
	while (x->head) {
		struct rep_job *j = x->head;
		x->head = j->next;
		free(j->inputs);
		free(j->ierr);
		free(j);
	}
	json_decref(x->doc);
	free(x);
}

static void io_destroy(struct executor *ex)
{
	struct io_exec *x = (struct io_exec *)ex;
	x->closing = true;
	uv_close((uv_handle_t *)&x->idle, on_closed);
}

static const struct executor_ops rec_ops = {
	.name = "recorder", .start = rec_start, .cancel = rec_cancel, .destroy = io_destroy,
};

static struct io_exec *io_new(uv_loop_t *loop, const struct kind *k)
{
	struct io_exec *x = calloc(1, sizeof(*x));
	if (!x)
		return NULL;
	x->loop = loop;
	x->kind = k;
	uv_idle_init(loop, &x->idle);
	x->idle.data = x;
	return x;
}

struct executor *io_recorder_new(uv_loop_t *loop, const struct kind *k, struct executor *inner)
{
	struct io_exec *x = io_new(loop, k);
	if (!x)
		return NULL;
	x->base.ops = &rec_ops;
	x->inner = inner;
	return &x->base;
}

/* ---- the replayer --------------------------------------------------------------------- */

static const json_t *recorded(struct io_exec *x, const struct exec_attempt *a)
{
	const json_t *atts = json_object_get(x->doc, wf_task_id(a->wf, a->task));
	size_t n = json_array_size(atts);
	if (!n)
		return NULL;
	/* attempt N, or the last one recorded */
	for (size_t i = 0; i < n; i++) {
		const json_t *t = json_array_get(atts, i);
		if (json_integer_value(json_object_get(t, "attempt")) == (json_int_t)a->attempt)
			return t;
	}
	return json_array_get(atts, n - 1);
}

static int class_of(const char *name)
{
	for (int c = DR_CLASS_TRANSIENT; name && c <= DR_CLASS_RESOURCE; c++)
		if (!strcmp(dr_class_name((enum dr_error_class)c), name))
			return c;
	return DR_CLASS_PERMANENT;
}

static const char *str(const json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

/* The recorded outputs into e->outs. */
static void put_outputs(struct io_ext *e, const json_t *outs)
{
	const char *k;
	const json_t *v;
	json_object_foreach((json_t *)outs, k, v)
		if (json_is_string(v))
			expr_outputs_set(&e->outs, k, json_string_value(v), json_string_length(v));
	e->base.outputs = &e->outs;
}

/* The result recorded for j's attempt, into r. */
static void replay_result(struct io_exec *x, struct rep_job *j, struct exec_result *r)
{
	const json_t *t = j->cancelled ? NULL : recorded(x, j->a);
	io_result_recorded(t, j->inputs, j->ierr, r);
	j->inputs = j->ierr = NULL;
	if (r->ext)   /* the extension io_result_recorded made: ours */
		((struct io_ext *)r->ext)->io.replayed = 1;
	if (j->cancelled) {
		r->cancelled = true;
		exec_fail(r, DR_CLASS_PERMANENT, "cancelled");
	} else if (!t) {
		exec_fail(r, DR_CLASS_PERMANENT, "no recording");
	}
}

void io_result_recorded(const json_t *t, char *inputs, char *ierr, struct exec_result *r)
{
	memset(r, 0, sizeof(*r));
	r->exit_code = -1;
	struct io_ext *e = io_ext_new(NULL, inputs, ierr);
	r->ext = e ? &e->base : NULL;
	if (!t)
		return;
	r->ok = json_is_true(json_object_get(t, "ok"));
	r->exit_code = json_is_integer(json_object_get(t, "exitCode")) ?
		       (int)json_integer_value(json_object_get(t, "exitCode")) : -1;
	r->term_signal = (int)json_integer_value(json_object_get(t, "signal"));
	r->timed_out = json_is_true(json_object_get(t, "timedOut"));
	if (!r->ok)
		exec_fail(r, class_of(str(t, "errorClass")), "%s",
			  str(t, "error") ? str(t, "error") : "failed (recorded)");
	const json_t *so = json_object_get(t, "stdout");
	if (json_is_string(so)) {
		buf_add(&r->out, json_string_value(so), json_string_length(so));
		r->out_bytes = json_string_length(so);
	}
	if (!e)
		return;
	const json_t *res = json_object_get(t, "results");
	const json_t *ro = json_object_get(res, "output");
	if (json_is_string(ro)) {
		buf_reset(&r->out);
		buf_add(&r->out, json_string_value(ro), json_string_length(ro));
		r->out_bytes = json_string_length(ro);
	}
	if (json_is_object(res))
		e->io.results = e->results = json_dumps(res, JSON_COMPACT | JSON_SORT_KEYS);
	if (json_is_object(json_object_get(res, "outputs")))
		put_outputs(e, json_object_get(res, "outputs"));
	if (json_is_object(json_object_get(res, "headers")))
		e->base.headers = json_incref(json_object_get(res, "headers"));
	const dagrun_ext *chain = NULL;
	if (json_is_integer(json_object_get(t, "httpStatus"))) {
		e->http.base.type = DAGRUN_EXT_HTTP;
		e->http.status = (int)json_integer_value(json_object_get(t, "httpStatus"));
		chain = &e->http.base;
	}
	if (str(t, "model")) {
		e->ai.base.type = DAGRUN_EXT_AI;
		e->ai.base.next = chain;
		e->ai.model = e->model = strdup(str(t, "model"));
		const json_t *pt = json_object_get(t, "promptTokens"),
			     *ct = json_object_get(t, "completionTokens");
		e->ai.prompt_tokens = json_is_integer(pt) ? json_integer_value(pt) : -1;
		e->ai.completion_tokens = json_is_integer(ct) ? json_integer_value(ct) : -1;
		chain = &e->ai.base;
	}
	e->io.base.next = chain;
}

static void on_idle(uv_idle_t *h)
{
	struct io_exec *x = h->data;
	reap(x);
	struct rep_job *j = x->head;
	x->head = x->tail = NULL;
	while (j) {
		struct rep_job *next = j->next;
		struct exec_result r;
		replay_result(x, j, &r);
		j->a->priv = NULL;
		j->a->on_done(j->a, &r);
		exec_result_free(&r);
		free(j->inputs);
		free(j->ierr);
		free(j);
		j = next;
	}
	if (!x->head && !x->dead)
		uv_idle_stop(&x->idle);
}

static int rep_start(struct executor *ex, struct exec_attempt *a)
{
	struct io_exec *x = (struct io_exec *)ex;
	struct rep_job *j = calloc(1, sizeof(*j));
	if (!j)
		return -ENOMEM;
	int r = kinds_inputs(x->kind, a, &j->inputs, &j->ierr);
	if (r == -ENOMEM) {
		free(j->ierr);
		free(j);
		return r;
	}
	j->a = a;
	a->priv = j;
	if (x->tail)
		x->tail->next = j;
	else
		x->head = j;
	x->tail = j;
	uv_idle_start(&x->idle, on_idle);
	return 0;
}

static void rep_cancel(struct executor *ex, struct exec_attempt *a, bool hard)
{
	(void)ex;
	(void)hard;
	struct rep_job *j = a->priv;
	if (j)
		j->cancelled = true;
}

static const struct executor_ops rep_ops = {
	.name = "replay", .start = rep_start, .cancel = rep_cancel, .destroy = io_destroy,
};

int io_replay_doc(const char *text, size_t len, json_t **out, char **run_id, char **err)
{
	*out = NULL;
	if (run_id)
		*run_id = NULL;
	json_error_t je;
	json_t *doc = json_loadb(text, len, 0, &je);
	if (!doc) {
		*err = NULL;
		if (asprintf(err, "the recording is not JSON: line %d: %s", je.line, je.text) < 0)
			*err = NULL;
		return -EINVAL;
	}
	json_t *map = json_object();
	const json_t *tasks = json_object_get(doc, "tasks");
	int r = map && json_is_array(tasks) ? 0 : -EINVAL;
	for (size_t i = 0; r == 0 && i < json_array_size(tasks); i++) {
		const json_t *t = json_array_get(tasks, i);
		const char *id = str(t, "id");
		const json_t *atts = json_object_get(t, "attempts");
		if (id && json_is_array(atts) && json_object_set(map, id, (json_t *)atts) < 0)
			r = -ENOMEM;
	}
	const char *rid = str(json_object_get(doc, "run"), "id");
	if (r == 0 && run_id && rid && !(*run_id = strdup(rid)))
		r = -ENOMEM;
	json_decref(doc);
	if (r < 0) {
		if (run_id) {
			free(*run_id);
			*run_id = NULL;
		}
		json_decref(map);
		if (r == -EINVAL && asprintf(err, "the recording has no \"tasks\" array") < 0)
			*err = NULL;
		return r;
	}
	*out = map;
	return 0;
}

struct executor *io_replayer_new(uv_loop_t *loop, const struct kind *k, json_t *doc)
{
	struct io_exec *x = io_new(loop, k);
	if (!x)
		return NULL;
	x->base.ops = &rep_ops;
	x->doc = json_incref(doc);
	return &x->base;
}
