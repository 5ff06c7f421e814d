/* command.c: the `command` kind: a string run by /bin/sh -c (or exec'd
 * directly when the shell would only split it), or a list run as an argv.
 * Its executor, shared with `script`, is exec/command.c (on proc.c).
 *
 * Invariant: the spec (struct dr_command, exec/command.h) holds only what
 * the file says: the string form, or the list form, never both.
 */
#include <errno.h>
#include <string.h>

#include "exec/command.h"
#include "kinds/kind.h"

static void k_command(struct loader *ld, void *obj)
{
	struct dr_command *c = obj;
	if (load_is(ld, YAML_SCALAR_EVENT)) {
		read_nonempty(ld, &c->str);
		return;
	}
	if (!load_is(ld, YAML_SEQUENCE_START_EVENT)) {
		load_type_error(ld, "a string or a list of strings");
		return;
	}
	struct pos at = load_pos(ld);
	size_t mark = ld->top;
	uint32_t n = 0;
	while (load_next(ld) && !load_is(ld, YAML_SEQUENCE_END_EVENT)) {
		struct dr_text a;
		if (read_string(ld, &a) && load_push(ld, &a, sizeof(a)) != SIZE_MAX)
			n++;
	}
	if (ld->stop)
		return;
	if (!n)
		load_error(ld, at, "'command' must not be an empty list");
	c->argv = n ? arena_alloc(&ld->wf->arena, n * sizeof(*c->argv)) : NULL;
	if (n && !c->argv) {
		load_oom(ld);
		return;
	}
	if (n)
		memcpy(c->argv, ld->stk + mark, n * sizeof(*c->argv));
	c->argc = n;
	ld->top = mark;
}

/* Fingerprint: the argv's length (its words are texts). */
static void mix(const void *spec, struct dr_mix *m)
{
	uint64_t argc = ((const struct dr_command *)spec)->argc;
	m->bytes(m, &argc, sizeof(argc));
}

static int each_text(const struct dagrun_workflow *wf, uint32_t t, dr_text_fn fn, void *ud)
{
	const struct dr_command *c = wf->tasks[t].spec;
	int r = 0;
	if (c->str.s)
		return fn(ud, t, &c->str, DR_USE_SHELL);
	for (uint32_t i = 0; i < c->argc && !r; i++)
		r = dr_each_text(t, &c->argv[i], DR_USE_ARGV, fn, ud);
	return r;
}

/* Canonical inputs: the string or the argv, as rendered; the workdir and
 * environment the workflow sets. */
static int inputs(struct exec_attempt *a, json_t *o, char **err)
{
	const struct dr_command *c = a->wf->tasks[a->task].spec;
	int r;
	if (c->str.s) {
		r = kind_inputs_text(a, o, "command", &c->str, EXEC_RENDER_SHELL, err);
	} else {
		json_t *argv = json_array(), *tmp = json_object();
		r = argv && tmp ? 0 : -ENOMEM;
		for (uint32_t i = 0; i < c->argc && r == 0; i++)
			if ((r = kind_inputs_text(a, tmp, "a", &c->argv[i], EXEC_RENDER_ARGV, err)) == 0 &&
			    json_array_append(argv, json_object_get(tmp, "a")) < 0)
				r = -ENOMEM;
		json_decref(tmp);
		if (r == 0 && json_object_set_new(o, "argv", argv) < 0)
			r = -ENOMEM;
		else if (r < 0)
			json_decref(argv);
	}
	return r < 0 ? r : kind_inputs_process(a, o, err);
}

/* The executor of processes, for command and script tasks. */
static int make_process(struct kind_env *env, struct executor **out)
{
	return (*out = command_executor_new(env->loop)) ? 0 : -ENOMEM;
}

const struct exec_def kind_exec_process = {"process", make_process};

static const struct keydef keys[] = {KEY("command", k_command)};

const struct kind kind_command = {
	.load = {
		.model = {"command", COMMAND_VARIANT_COMMAND, each_text, NULL, NULL, mix},
		.keys = keys, .n_keys = 1, .n_select = 1,
		.spec_size = sizeof(struct dr_command),
	},
	.exec = &kind_exec_process,
	.inputs = inputs,
};
