/* flow.c: data flow during a run (see flow.h): the object, its life
 * (flow_new(), a sub-run's flow_new_child(), flow_free()) and its warnings;
 * the parts are listed in flow_int.h.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "expr/redact.h"
#include "sched/flow_int.h"
#include "util/buf.h"
#include "util/diag.h"

/* ---- warnings ------------------------------------------------------------ */

void flow_warn(struct flow *f, uint32_t t, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *m = buf_vstrf(fmt, ap);
	va_end(ap);
	if (f->warn_fn) {
		f->warn_fn(f->warn_ud, t, m ? m : "a warning was lost (out of memory)");
	} else if (f->n_pending < PENDING_WARN_MAX && m &&
		   (f->pending || (f->pending = calloc(PENDING_WARN_MAX, sizeof(char *))))) {
		f->pending[f->n_pending++] = m;
		m = NULL;
	} else {
		f->pending_lost++;
	}
	free(m);
}

void flow_set_warn(struct flow *f, flow_warn_fn fn, void *ud)
{
	f->warn_fn = fn;
	f->warn_ud = ud;
	if (!fn)
		return;
	for (size_t i = 0; i < f->n_pending; i++) {
		if (f->pending[i])
			fn(ud, UINT32_MAX, f->pending[i]);
		free(f->pending[i]);
	}
	if (f->pending_lost)
		flow_warn(f, UINT32_MAX, "%zu more warnings were lost", f->pending_lost);
	free(f->pending);
	f->pending = NULL;
	f->n_pending = f->pending_lost = 0;
}

/* Warns once per new secret too short to mask; who: where it comes from
 * ("secret 'X'"), or NULL (read by an expression, name unknown). */
void flow_warn_short(struct flow *f, uint32_t t, const char *who)
{
	size_t n = redact_short_count(f->red);
	if (n <= f->shorts_warned)
		return;
	f->shorts_warned = n;
	char task[160] = "";
	if (t != UINT32_MAX)
		snprintf(task, sizeof(task), "task '%.100s': ", wf_task_id(f->wf, t));
	flow_warn(f, t, "%s%s is shorter than %d bytes: it cannot be masked usefully, so it "
		  "is not masked and may appear in output as is", task,
		  who ? who : "a secret read by an expression", REDACT_MIN_LEN);
}

/* Parses the trigger body (JSON text, capped) into f. Returns 0, -EINVAL
 * (in diags) or -ENOMEM. */
static int read_trigger(struct flow *f, const char *text, dagrun_diags *diags)
{
	if (!text)
		return 0;
	size_t n = strlen(text);
	json_error_t je;
	if (n > DAGRUN_TRIGGER_MAX) {
		diag_add(diags, DAGRUN_ERROR, NULL, 0, 0, "the trigger body is over %u bytes",
			 DAGRUN_TRIGGER_MAX);
		return -EINVAL;
	}
	if (!(f->trigger = json_loadb(text, n, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &je))) {
		diag_add(diags, DAGRUN_ERROR, NULL, 0, 0, "the trigger body is not JSON: %s "
			 "(line %d, column %d)", je.text, je.line, je.column);
		return -EINVAL;
	}
	return (f->trigger_text = strdup(text)) ? 0 : -ENOMEM;
}

const char *flow_trigger_json(const struct flow *f)
{
	return f ? f->trigger_text : NULL;
}

int flow_new(struct flow **out, const struct dagrun_workflow *wf,
	     const struct flow_opts *o, dagrun_diags *diags)
{
	*out = NULL;
	struct flow *f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	int r = -ENOMEM;
	f->wf = wf;
	f->run_id = o ? o->run_id : NULL;
	f->res = calloc(wf->n_tasks + 1, sizeof(*f->res));
	f->keep = calloc(wf->n_tasks + 1, 1);
	if (!f->res || !f->keep || redact_new(&f->red) < 0)
		goto fail;
	struct expr_opts eo = {.redactor = f->red};
	if (expr_new(&f->ex, &eo) < 0)
		goto fail;
	if ((r = read_trigger(f, o ? o->trigger_json : NULL, diags)) < 0 ||
	    (r = flow_override_vars(f, o ? o->vars : NULL, diags)) < 0 ||
	    (r = flow_read_secrets(f, o ? o->secrets_file : NULL, diags)) < 0 ||
	    (r = flow_scan(f)) < 0)
		goto fail;
	*out = f;
	return 0;
fail:
	flow_free(f);
	return r;
}

int flow_new_child(struct flow **out, const struct dagrun_workflow *wf, struct flow *parent,
		   const struct dr_value *with, dagrun_diags *diags)
{
	*out = NULL;
	struct flow *f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	int r = -ENOMEM;
	f->wf = wf;
	f->shared = true;
	f->red = parent->red;
	f->env = parent->env;
	f->run_id = parent->run_id;
	f->trigger = json_incref(parent->trigger);   /* the run's, in its sub-runs too */
	f->shorts_warned = redact_short_count(f->red);   /* said by the parent */
	f->res = calloc(wf->n_tasks + 1, sizeof(*f->res));
	f->keep = calloc(wf->n_tasks + 1, 1);
	if (!f->res || !f->keep)
		goto fail;
	struct expr_opts eo = {.redactor = f->red};
	if (expr_new(&f->ex, &eo) < 0)
		goto fail;
	if ((r = flow_with_vars(f, with, diags)) < 0 || (r = flow_scan(f)) < 0)
		goto fail;
	*out = f;
	return 0;
fail:
	flow_free(f);
	return r;
}

void flow_free(struct flow *f)
{
	if (!f)
		return;
	for (size_t i = 0; i < f->tab_cap; i++)
		if (f->tab[i].key) {
			tpl_free(&f->tab[i].tpl);
			free(f->tab[i].msg);
		}
	free(f->tab);
	if (f->res)
		for (uint32_t t = 0; t < f->wf->n_tasks; t++)
			flow_fres_free(f->res[t]);
	free(f->res);
	free(f->keep);
	if (!f->shared)
		free(f->env);
	for (size_t i = 0; i < f->n_pending; i++)
		free(f->pending[i]);
	free(f->pending);
	expr_free(f->ex);
	json_decref(f->trigger);
	free(f->trigger_text);
	if (!f->shared)
		redact_free(f->red);
	arena_free(&f->arena);
	free(f);
}
