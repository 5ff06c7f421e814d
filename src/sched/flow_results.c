/* flow_results.c: what later expressions read of a final task (its
 * result, masked: output, json, outputs, http.headers, error.message), the
 * scope they are evaluated in, and a sub-run's `outputs` rendered.
 *
 * Invariant: a result is kept only when something reads it (flow->keep),
 * and whatever is kept of it is masked before it is stored.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "expr/redact.h"
#include "sched/flow_int.h"

/* ---- scope and results ---------------------------------------------------- */

static const struct expr_result *lookup(void *ud, const char *id)
{
	struct flow *f = ud;
	uint32_t sym = intern_find(&f->wf->ids, id, strlen(id));
	if (sym == INTERN_NONE || f->wf->sym_task[sym] == UINT32_MAX)
		return NULL;
	struct fres *r = f->res[f->wf->sym_task[sym]];
	return r ? &r->er : NULL;
}

void flow_scope(struct flow *f, struct expr_scope *sc, const struct expr_result *self)
{
	memset(sc, 0, sizeof(*sc));
	sc->run_id = f->run_id;
	sc->run_name = f->wf->name.s;
	sc->variables = f->vars ? f->vars : f->wf->variables;
	sc->trigger_body = f->trigger;
	sc->environ = f->env;
	sc->lookup = lookup;
	sc->lookup_ud = f;
	sc->self = self;
}

void flow_fres_free(struct fres *r)
{
	if (!r)
		return;
	free(r->output);
	expr_outputs_free(&r->outs);
	free(r->headers);
	free(r->strings);
	free(r->error);
	free(r);
}

/* Copies the response headers (a JSON object of strings) for http.headers,
 * their values masked. */
static int copy_headers(struct flow *f, struct fres *fr, json_t *h)
{
	if (!h || !json_is_object(h))
		return 0;
	size_t n = json_object_size(h), bytes = 0, i = 0;
	const char *k;
	json_t *v;
	int r = 0;
	struct buf *mv = calloc(n ? n : 1, sizeof(*mv));
	if (!mv)
		return -ENOMEM;
	json_object_foreach(h, k, v) {
		const char *s = json_is_string(v) ? json_string_value(v) : "";
		size_t len = json_is_string(v) ? json_string_length(v) : 0;
		if (r == 0)
			r = flow_redact(f, s, len, &mv[i]);
		bytes += strlen(k) + 1 + mv[i++].len + 1;
	}
	fr->headers = calloc(n ? n : 1, sizeof(*fr->headers));
	fr->strings = malloc(bytes ? bytes : 1);
	if (r < 0 || !fr->headers || !fr->strings) {
		r = r < 0 ? r : -ENOMEM;
		goto out;
	}
	char *p = fr->strings;
	i = 0;
	json_object_foreach(h, k, v) {
		size_t kl = strlen(k), vl = mv[i].len;
		memcpy(p, k, kl + 1);
		fr->headers[fr->n_headers].key = p;
		p += kl + 1;
		if (vl)
			memcpy(p, mv[i].data, vl);
		p[vl] = '\0';
		fr->headers[fr->n_headers].value = p;
		fr->headers[fr->n_headers].value_len = vl;
		fr->n_headers++;
		p += vl + 1;
		i++;
	}
out:
	for (size_t j = 0; j < n; j++)
		buf_free(&mv[j]);
	free(mv);
	return r;
}

/* Masks t's outputs in place: a value holding a secret is masked; a key
 * holding one is dropped (with a warning: it names no output anyone could
 * read without the secret). */
static int mask_outputs(struct flow *f, uint32_t t, struct expr_outputs *o)
{
	if (!flow_redacting(f))
		return 0;
	struct buf b = BUF_INIT;
	size_t k = 0;
	int r = 0;
	for (size_t i = 0; i < o->n && r == 0; i++) {
		struct expr_kv kv = o->v[i];
		if (redact_contains(f->red, kv.key, strlen(kv.key))) {
			flow_warn(f, t, "task '%.100s': $DAGRUN_OUTPUT: a key holds a secret; that "
				  "output is ignored", wf_task_id(f->wf, t));
			continue;
		}
		if (redact_contains(f->red, kv.value, kv.value_len)) {
			buf_reset(&b);
			char *m = NULL;
			if ((r = redact_text(f->red, kv.value, kv.value_len, &b)) == 0 &&
			    !(m = arena_strndup(&o->arena, b.data ? b.data : "", b.len)))
				r = -ENOMEM;
			kv.value = m;
			kv.value_len = b.len;
		}
		o->v[k++] = kv;
	}
	o->n = k;
	buf_free(&b);
	return r;
}

/* Reads t's $DAGRUN_OUTPUT into fr, masked; warns of what it skipped. */
static int record_outputs(struct flow *f, uint32_t t, struct fres *fr, const char *path)
{
	int r = expr_outputs_read(path, &fr->outs);
	const char *id = wf_task_id(f->wf, t);
	for (size_t i = 0; i < fr->outs.n_warn; i++)
		flow_warn(f, t, "task '%.100s': $DAGRUN_OUTPUT %s", id, fr->outs.warn[i]);
	if (fr->outs.n_warn_more)
		flow_warn(f, t, "task '%.100s': $DAGRUN_OUTPUT: %zu more lines were ignored "
			  "(not shown)", id, fr->outs.n_warn_more);
	if (r == 0)
		r = mask_outputs(f, t, &fr->outs);
	if (r < 0) {
		expr_outputs_free(&fr->outs);
		return r;
	}
	fr->er.outputs = fr->outs.v;
	fr->er.n_outputs = fr->outs.n;
	return 0;
}

/* Outputs an executor produced itself (a sub-run's): copied, masked. */
static int take_outputs(struct flow *f, uint32_t t, struct fres *fr,
			const struct expr_outputs *o)
{
	int r = 0;
	for (size_t i = 0; i < o->n && r == 0; i++)
		if ((r = expr_outputs_set(&fr->outs, o->v[i].key, o->v[i].value,
					  o->v[i].value_len)) > 0)
			r = 0;   /* full: the producer capped its outputs already */
	if (r == 0)
		r = mask_outputs(f, t, &fr->outs);
	if (r < 0) {
		expr_outputs_free(&fr->outs);
		return r;
	}
	fr->er.outputs = fr->outs.v;
	fr->er.n_outputs = fr->outs.n;
	return 0;
}

int flow_record(struct flow *f, uint32_t t, int status, uint32_t attempts,
		uint64_t duration_ms, int error_class, const char *error,
		const struct exec_result *r, const char *output_file)
{
	if (!f->keep[t])
		return 0;
	flow_fres_free(f->res[t]);
	struct fres *fr = f->res[t] = calloc(1, sizeof(*fr));
	if (!fr)
		return -ENOMEM;
	expr_result_init(&fr->er);
	fr->er.status = status;
	fr->er.attempts = attempts;
	fr->er.duration_ms = duration_ms;
	if (error_class)
		fr->er.error_class = dr_class_name((enum dr_error_class)error_class);
	struct buf out = BUF_INIT;
	int e;
	if (error) {
		if ((e = flow_redact(f, error, strlen(error), &out)) < 0 ||
		    !(fr->er.error_message = fr->error = buf_steal(&out))) {
			buf_free(&out);
			return e < 0 ? e : -ENOMEM;
		}
	}
	if (!r)
		return 0;
	fr->er.exit_code = r->exit_code;
	fr->er.output_truncated = r->out_dropped > 0 || r->out.len > OUTPUT_KEEP_MAX;
	/* What expressions read of the kind's own: http.status, usage.* */
	const struct dagrun_ext *pub = r->ext ? r->ext->pub : NULL;
	const struct dagrun_ext_http *h = (const void *)dagrun_ext_find(pub, DAGRUN_EXT_HTTP);
	const struct dagrun_ext_ai *ai = (const void *)dagrun_ext_find(pub, DAGRUN_EXT_AI);
	if (h)
		fr->er.http_status = h->status;
	if (ai && ai->prompt_tokens >= 0) {
		fr->er.prompt_tokens = ai->prompt_tokens;
		fr->er.completion_tokens = ai->completion_tokens;
	}
	/* Masked as it reads in the whole capture, so a secret across the cap
	 * is masked; when the capture itself was cut (bytes seen beyond it), a
	 * piece of a secret at its end is masked too. */
	size_t len = r->out.len, keep = len < OUTPUT_KEEP_MAX ? len : OUTPUT_KEEP_MAX;
	int cut = r->out_bytes > r->out.len ? REDACT_CUT_TAIL : 0;
	e = flow_redact_slice(f, r->out.data ? r->out.data : "", len, 0, keep, cut, &out);
	if (e < 0) {
		buf_free(&out);
		return e;
	}
	fr->er.output_len = out.len;
	fr->output = buf_steal(&out);
	fr->er.output = fr->output;
	if (!fr->output)
		return -ENOMEM;
	if ((e = copy_headers(f, fr, r->ext ? r->ext->headers : NULL)) < 0)
		return e;
	fr->er.headers = fr->headers;
	fr->er.n_headers = fr->n_headers;
	if (r->ext && r->ext->outputs)
		return take_outputs(f, t, fr, r->ext->outputs);
	return output_file ? record_outputs(f, t, fr, output_file) : 0;
}

int flow_outputs(struct flow *f, struct expr_outputs *out, char **err)
{
	const struct dr_kvlist *o = &f->wf->outputs;
	struct buf b = BUF_INIT;
	int r = 0;
	*err = NULL;
	for (uint32_t i = 0; i < o->n && r == 0; i++) {
		buf_reset(&b);
		char *key = strndup(o->v[i].key.s, o->v[i].key.len);
		if (!key)
			r = -ENOMEM;
		else if ((r = flow_render(f, UINT32_MAX, &o->v[i].value, EXEC_RENDER_PLAIN, NULL, 0,
					  &b, err)) == 0 &&
			 (r = expr_outputs_set(out, key, b.data ? b.data : "", b.len)) > 0)
			r = 0;   /* more keys than $DAGRUN_OUTPUT takes: the loader caps them */
		free(key);
	}
	buf_free(&b);
	return r;
}
