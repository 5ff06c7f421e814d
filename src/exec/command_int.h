/* command_int.h: what the parts of the command executor share; see
 * command.h and command.c.
 */
#ifndef DAGRUN_COMMAND_INT_H
#define DAGRUN_COMMAND_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "exec/command.h"
#include "exec/proc.h"
#include "util/arena.h"

struct command_executor {
	struct executor base;
	uv_loop_t *loop;
	struct proc_runner *runner;
	unsigned live;                /* attempts between start and on_done */
};

/* The task's strings for one attempt, templates rendered. Texts without a
 * template point into the model; the others into `arena`. */
struct texts {
	struct dr_command cmd;
	struct dr_text body;
	struct dr_kvlist wenv, tenv;
	struct dr_text workdir;
	bool has_workdir;
	struct arena arena;
	char *err;                    /* the first rendering error, malloc'd */
};

struct cmd_attempt {
	struct command_executor *cx;
	struct texts tx;
	struct exec_attempt *a;
	struct proc *proc;            /* NULL once ended or when never started */
	char *script;                 /* temporary file to unlink, or NULL */
	char *program;                /* argv[0], for messages */
	char *workdir;                /* malloc'd, or NULL: ours */
	struct command_outcome oc;
	uv_timer_t later;             /* ends a failed spawn from the loop */
	bool cancelled;
	struct exec_result res;
};

/* ---- command_classify.c ------------------------------------------------------- */

/* ---- command_env.c ------------------------------------------------------------ */

/* Renders every string the attempt uses into st->tx. Returns 0, or
 * -ENOMEM; a template error is left in st->tx.err (the attempt then
 * fails, class permanent). */
int cmd_render_texts(struct cmd_attempt *st, const struct dr_task *t,
		     const struct dr_task_opts *opts);

/* Fails the attempt (st->tx.err) when a rendered string the process gets
 * holds a NUL. */
void cmd_refuse_nuls(struct cmd_attempt *st, const struct dr_task *t,
		     const struct dr_task_opts *opts);

/* The attempt's environment (ours, the workflow's env, the task's env,
 * DAGRUN_*), malloc'd in one block; NULL on OOM. */
char **cmd_attempt_env(const struct exec_attempt *a, const struct texts *tx);

/* The working directory (malloc'd, or NULL: ours). Returns 0 or -ENOMEM. */
int cmd_attempt_workdir(const struct dagrun_workflow *wf, const struct texts *tx,
			char **out);

/* Writes the script to a private temporary file (0600). Returns 0 and
 * *path (malloc'd), or -errno. */
int cmd_write_script(const struct dr_text *body, char **path);

/* The argv for the attempt, malloc'd in one block; *direct tells whether a
 * string was split instead of going to /bin/sh. NULL on OOM. */
char **cmd_attempt_argv(struct cmd_attempt *st, const struct dr_task *t, bool force_shell,
			bool *direct);

#endif
