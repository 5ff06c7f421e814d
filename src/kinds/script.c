/* script.c: the `script` kind: a body written to a private file and run
 * by its `interpreter` (default /bin/sh -e). Runs on the executor of
 * processes (kinds/command.c, exec/command.c).
 *
 * Invariant: after the loader's check, spec->posix_shell says whether the
 * interpreter is a POSIX shell; only then may the body hold templates (the
 * values are quoted by the shell context around each {{ }}); the
 * interpreter itself is used as written and never holds one.
 */
#include <stdio.h>
#include <string.h>

#include "exec/command.h"
#include "expr/shell.h"
#include "kinds/kind.h"

enum { K_SCRIPT, K_INTERPRETER };

static void k_script(struct loader *ld, void *obj)
{
	read_nonempty(ld, &((struct dr_script *)obj)->body);
}

static void k_interpreter(struct loader *ld, void *obj)
{
	read_nonempty(ld, &((struct dr_script *)obj)->interpreter);
}

/* Decides posix_shell; templates in a script of another interpreter are
 * an error (only POSIX shell scripts are escaped safely). */
static void check(struct loader *ld, const struct kind_view *v)
{
	struct dr_script *s = v->spec;
	if (!s)
		return;
	s->posix_shell = sh_is_posix_shell(s->interpreter.s, s->interpreter.len);
	if (!s->body.s || s->posix_shell || !strstr(s->body.s, "{{"))
		return;
	load_error(ld, (struct pos){s->body.line, s->body.col},
		   "templates are not allowed in a script run by '%.40s' (only POSIX shell "
		   "scripts are escaped safely); pass values through 'env'",
		   s->interpreter.s);
}

/* Fingerprint: the interpreter. */
static void mix(const void *spec, struct dr_mix *m)
{
	m->text(m, &((const struct dr_script *)spec)->interpreter);
}

static int each_text(const struct dagrun_workflow *wf, uint32_t t, dr_text_fn fn, void *ud)
{
	const struct dr_script *s = wf->tasks[t].spec;
	return dr_each_text(t, &s->body, s->posix_shell ? DR_USE_SHELL : DR_USE_NOTEMPLATE,
			    fn, ud);
}

/* The interpreter is used as written: a template in it would reach the
 * program as braces. */
static int check_exprs(struct kind_checker *c, const struct dagrun_workflow *wf, uint32_t t)
{
	const struct dr_text *x = &((const struct dr_script *)wf->tasks[t].spec)->interpreter;
	const char *open = x->s ? memmem(x->s, x->len, "{{", 2) : NULL;
	if (open)
		c->error(c, x, (uint32_t)(open - x->s), "'interpreter' is used as written, it "
			 "is not a template; pass values through 'env' instead");
	return 0;
}

/* Canonical inputs: the body (rendered when its interpreter is a POSIX
 * shell, else as written) and the interpreter; workdir and environment. */
static int inputs(struct exec_attempt *a, json_t *o, char **err)
{
	const struct dr_script *s = a->wf->tasks[a->task].spec;
	int r;
	if (s->posix_shell)
		r = kind_inputs_text(a, o, "script", &s->body, EXEC_RENDER_SHELL, err);
	else
		r = json_object_set_new(o, "script", json_stringn(s->body.s ? s->body.s : "",
								   s->body.len)) < 0 ? -ENOMEM : 0;
	if (r == 0)
		r = json_object_set_new(o, "interpreter",
					s->interpreter.s ? json_stringn(s->interpreter.s, s->interpreter.len)
							 : json_string("/bin/sh -e")) < 0 ? -ENOMEM : 0;
	return r < 0 ? r : kind_inputs_process(a, o, err);
}

static const struct keydef keys[] = {
	[K_SCRIPT] = KEY("script", k_script),
	[K_INTERPRETER] = KEY("interpreter", k_interpreter),
};

const struct kind kind_script = {
	.load = {
		.model = {"script", COMMAND_VARIANT_SCRIPT, each_text, NULL, NULL, mix},
		.keys = keys, .n_keys = 2, .n_select = 1,
		.only_in = "with 'script'",
		.spec_size = sizeof(struct dr_script),
		.check = check,
	},
	.exec = &kind_exec_process,
	.check = check_exprs,
	.inputs = inputs,
};
