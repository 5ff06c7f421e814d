/* flow_render.c: conditions, `when` and templates evaluated for the
 * scheduler and the executors, each value escaped for where it lands.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sched/flow_int.h"

/* ---- evaluation ------------------------------------------------------------- */

static char *eval_error(struct flow *f, const struct dr_text *x, const struct expr_error *e,
			const char *what)
{
	char *m = flow_located(f, x, e, what);
	return m ? m : strdup(what);
}

static int eval_bool(struct flow *f, uint32_t t, const struct dr_text *x,
		     const struct expr_result *self, bool *out, char **err)
{
	*err = NULL;
	int r;
	struct compiled *c = flow_compiled(f, x, true, &r, err);
	if (!c)
		return r;
	struct expr_scope sc;
	flow_scope(f, &sc, self);
	struct expr_error e = {0};
	r = expr_eval_bool(f->ex, c->id, &sc, out, &e);
	if (r < 0)
		*err = eval_error(f, x, &e, "cannot evaluate");
	flow_warn_short(f, t, NULL);
	return r;
}

int flow_condition(struct flow *f, const struct dr_dep *dep, bool *out, char **err)
{
	*out = true;
	*err = NULL;
	if (!dep->condition)
		return 0;
	const struct fres *r = f->res[dep->target];
	struct expr_result empty;
	expr_result_init(&empty);
	return eval_bool(f, UINT32_MAX, dep->condition, r ? &r->er : &empty, out, err);
}

int flow_when(struct flow *f, uint32_t t, bool *out, char **err)
{
	*out = true;
	*err = NULL;
	const struct dr_text *w = f->wf->tasks[t].opts->when;
	return w ? eval_bool(f, t, w, NULL, out, err) : 0;
}

/* RFC 3986's unreserved characters (A-Z a-z 0-9 - . _ ~), one bit each. */
static const uint64_t url_unreserved[4] = {0x03ff600000000000ull, 0x47fffffe87fffffeull, 0, 0};

static bool unreserved(unsigned char c)
{
	return (url_unreserved[c >> 6] >> (c & 63)) & 1;
}

/* Appends v[0 .. n) percent-encoded, but for unreserved characters: the
 * size is counted first, the buffer grown once, the bytes written from the
 * table (a 16 MB value is a few tens of milliseconds, not a printf each). */
static int url_encode(struct buf *out, const char *v, size_t n)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t need = n;
	for (size_t k = 0; k < n; k++)
		need += unreserved((unsigned char)v[k]) ? 0 : 2;
	int r = buf_reserve(out, need);
	if (r < 0)
		return r;
	char *w = out->data + out->len;
	for (size_t k = 0; k < n; k++) {
		unsigned char ch = (unsigned char)v[k];
		if (unreserved(ch)) {
			*w++ = (char)ch;
		} else {
			*w++ = '%';
			*w++ = hex[ch >> 4];
			*w++ = hex[ch & 15];
		}
	}
	out->len += need;
	out->data[out->len] = '\0';
	return 0;
}

/* A URL: each value percent-encoded, unless one expression is the whole URL. */
static int render_url(struct flow *f, const struct compiled *c, const struct expr_scope *sc,
		      struct buf *out, struct expr_error *e)
{
	const struct tpl *t = &c->tpl;
	if (t->n == 1 && t->segs[0].kind == TPL_EXPR)
		return tpl_render(t, f->ex, sc, TPL_PLAIN, out, e);
	size_t start = out->len;
	struct buf v = BUF_INIT;
	int r = 0;
	for (size_t i = 0; i < t->n && !r; i++) {
		const struct tpl_seg *s = &t->segs[i];
		if (s->kind == TPL_TEXT) {
			r = buf_add(out, t->src + s->off, s->len);
			continue;
		}
		buf_reset(&v);
		if ((r = expr_eval_text(f->ex, s->id, sc, &v, e)) < 0) {
			if (e->offset == EXPR_NO_OFFSET)
				e->offset = s->off;
			break;
		}
		r = url_encode(out, v.data ? v.data : "", v.len);
	}
	buf_free(&v);
	if (r < 0) {
		out->len = start;
		if (out->data)
			out->data[start] = '\0';
		if (!e->msg[0])
			expr_fail(e, r, EXPR_NO_OFFSET, "%s", strerror(-r));
	}
	return r;
}

int flow_render(struct flow *f, uint32_t t, const struct dr_text *x, int mode,
		const struct expr_kv *context, size_t n_context, struct buf *out, char **err)
{
	*err = NULL;
	if (!x->s)
		return 0;
	if (!tpl_has_template(x->s, x->len)) {
		int r = buf_add(out, x->s, x->len);
		if (r < 0)
			*err = strdup("value too large");
		return r;
	}
	int r;
	struct compiled *c = flow_compiled(f, x, false, &r, err);
	if (!c)
		return r;
	struct expr_scope sc;
	flow_scope(f, &sc, NULL);
	sc.context = context;
	sc.n_context = n_context;
	struct expr_error e = {0};
	size_t start = out->len;
	switch (mode) {
	case EXEC_RENDER_SHELL: r = tpl_render(&c->tpl, f->ex, &sc, TPL_SHELL, out, &e); break;
	case EXEC_RENDER_ARGV: r = tpl_render(&c->tpl, f->ex, &sc, TPL_ARGV, out, &e); break;
	case EXEC_RENDER_URL: r = render_url(f, c, &sc, out, &e); break;
	default: r = tpl_render(&c->tpl, f->ex, &sc, TPL_PLAIN, out, &e); break;
	}
	if (r == 0 && mode == EXEC_RENDER_HEADER &&
	    strcspn(out->data + start, "\r\n") != out->len - start) {
		out->len = start;
		out->data[start] = '\0';
		r = expr_fail(&e, -EINVAL, EXPR_NO_OFFSET,
			      "a header value may not contain CR, LF or NUL");
	}
	if (r < 0)
		*err = eval_error(f, x, &e, "template error");
	flow_warn_short(f, t, NULL);
	return r;
}
