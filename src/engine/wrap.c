/* wrap.c: an attempt handed on to an inner executor (see wrap.h). */
#include "engine/wrap.h"

void exec_wrap_output(struct exec_attempt *a, enum exec_stream s, const char *p, size_t n)
{
	struct exec_wrap *w = (struct exec_wrap *)a;
	if (w->out->on_output)
		w->out->on_output(w->out, s, p, n);
}

static void fwd_event(struct exec_attempt *a, const struct dagrun_event *ev)
{
	struct exec_wrap *w = (struct exec_wrap *)a;
	if (w->out->on_event)
		w->out->on_event(w->out, ev);
}

static int fwd_render(struct exec_attempt *a, const struct dr_text *t,
		      enum exec_render_mode mode, struct buf *out, char **err)
{
	struct exec_wrap *w = (struct exec_wrap *)a;
	w->out->context = a->context;
	w->out->n_context = a->n_context;
	int r = w->out->render(w->out, t, mode, out, err);
	w->out->context = NULL;
	w->out->n_context = 0;
	return r;
}

void exec_wrap_init(struct exec_wrap *w, struct exec_attempt *out, exec_done_cb done,
		    exec_output_cb on_output)
{
	w->in = *out;
	w->in.on_output = on_output ? on_output : exec_wrap_output;
	w->in.on_event = fwd_event;
	w->in.on_done = done;
	w->in.render = out->render ? fwd_render : NULL;
	w->in.priv = NULL;
	w->out = out;
}
