/* command.c: the command and script executor (see command.h): an
 * attempt's life; what the process gets (argv, environment, working
 * directory, the script file) is command_env.c's, whether a string needs
 * the shell command_shell.c's, how an attempt ended command_classify.c's.
 *
 * An attempt owns one struct cmd_attempt from start() to on_done. Invariant:
 * while its process runs, st->proc is set and the attempt ends from the
 * proc's on_exit; when the spawn failed, st->proc is NULL and the attempt
 * ends from st->later, a zero-delay timer, so on_done never runs inside
 * start(). The argv and environment live only for the spawn call.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "exec/command_int.h"
#include "util/clock.h"
#include "util/pstat.h"

/* ---- running an attempt -------------------------------------------------- */

static void attempt_free(struct cmd_attempt *st)
{
	arena_free(&st->tx.arena);
	free(st->tx.err);
	exec_result_free(&st->res);
	free(st->program);
	free(st->workdir);
	free(st);
}

static void on_later_closed(uv_handle_t *h)
{
	attempt_free(h->data);
}

/* Classifies, reports and releases the attempt. */
static void end_attempt(struct cmd_attempt *st, bool has_timer)
{
	struct exec_attempt *a = st->a;
	if (st->script) {
		unlink(st->script);
		free(st->script);
		st->script = NULL;
	}
	st->res.cancelled |= st->cancelled;
	command_classify(&st->res, &st->oc);
	st->cx->live--;
	a->priv = NULL;
	a->on_done(a, &st->res);
	if (has_timer)
		uv_close((uv_handle_t *)&st->later, on_later_closed);
	else
		attempt_free(st);
}

static void on_proc_output(struct proc *p, enum proc_stream s, const char *data,
			   size_t len, void *ud)
{
	(void)p;
	struct cmd_attempt *st = ud;
	if (st->a->on_output)
		st->a->on_output(st->a, s == PROC_STDOUT ? EXEC_STDOUT : EXEC_STDERR, data, len);
}

static void on_proc_exit(struct proc *p, struct proc_result *pr, void *ud)
{
	(void)p;
	struct cmd_attempt *st = ud;
	struct exec_result *r = &st->res;
	st->proc = NULL;
	r->exit_code = pr->exit_code;
	r->term_signal = pr->term_signal;
	r->timed_out = pr->timed_out;
	r->cancelled = pr->cancelled;
	r->start_ms = pr->start_ms;
	r->end_ms = pr->end_ms;
	r->duration_ms = pr->duration_ms;
	r->cpu_user_ms = pr->cpu_user_ms;
	r->cpu_sys_ms = pr->cpu_sys_ms;
	r->max_rss_kb = pr->max_rss_kb;
	r->out = pr->out;
	r->err = pr->err;
	pr->out = (struct buf)BUF_INIT;
	pr->err = (struct buf)BUF_INIT;
	r->err_tail = pr->err_tail;
	pr->err_tail = (struct buf)BUF_INIT;
	r->out_bytes = pr->out_bytes;
	r->err_bytes = pr->err_bytes;
	r->out_dropped = pr->out_truncated ? pr->out_bytes - r->out.len : 0;
	r->err_dropped = pr->err_truncated ? pr->err_bytes - r->err.len : 0;
	st->oc.signalled = pr->signalled;
	end_attempt(st, false);
}

static void on_later(uv_timer_t *t)
{
	end_attempt(t->data, true);
}

/* Spawns the attempt's process. Returns 0 (started), a positive errno (the
 * spawn failed: report it), or -errno (nothing could be set up). */
static int spawn(struct cmd_attempt *st, const struct dr_task *t, const struct dr_task_opts *opts,
		 char **env)
{
	bool direct;
	int err = 0;
	char **argv = cmd_attempt_argv(st, t, false, &direct);
	if (!argv)
		return -ENOMEM;
	if (argv[0] == NULL) {
		free(argv);
		return ENOENT;           /* an empty argv or interpreter */
	}
	struct proc_opts po = {
		.argv = argv, .envp = env, .cwd = st->workdir,
		.timeout_ms = opts->timeout_ms, .kill_grace_ms = opts->kill_grace_ms,
		.out_cap = EXEC_OUTPUT_CAP, .on_output = on_proc_output,
		.on_exit = on_proc_exit, .ud = st,
	};
	if (!(st->program = strdup(argv[0]))) {
		err = -ENOMEM;
		goto out;
	}
	err = proc_start(st->cx->runner, &po, &st->proc);
	if (err == -ENOEXEC && direct) {
		/* Not a binary nor a #! script: the shell runs it, as execvp would. */
		free(argv);
		if (!(argv = cmd_attempt_argv(st, t, true, &direct))) {
			err = -ENOMEM;
			goto out;
		}
		po.argv = argv;
		err = proc_start(st->cx->runner, &po, &st->proc);
	}
	if (err < 0)
		err = -err;
out:
	free(argv);
	return err;
}

static int command_start(struct executor *ex, struct exec_attempt *a)
{
	struct command_executor *cx = (struct command_executor *)ex;
	const struct dagrun_workflow *wf = a->wf;
	const struct dr_task *t = &wf->tasks[a->task];
	if ((a->variant != COMMAND_VARIANT_COMMAND && a->variant != COMMAND_VARIANT_SCRIPT) ||
	    !t->spec)
		return -EINVAL;
	const struct dr_task_opts *opts = t->opts ? t->opts : &wf->default_opts;
	char **env = NULL;
	int err = 0;
	struct cmd_attempt *st = calloc(1, sizeof(*st));
	if (!st)
		return -ENOMEM;
	st->cx = cx;
	st->a = a;
	st->res.exit_code = -1;
	st->oc.timeout_ms = opts->timeout_ms;
	st->oc.retry = &opts->retry;
	st->res.start_ms = clock_wall_ms();
	if ((err = cmd_render_texts(st, t, opts)) < 0)
		goto out;
	cmd_refuse_nuls(st, t, opts);
	if (st->tx.err) {
		st->oc.template_err = st->tx.err;
		goto later;
	}
	if ((err = cmd_attempt_workdir(wf, &st->tx, &st->workdir)) < 0)
		goto out;
	st->oc.workdir = st->workdir;
	if (!(env = cmd_attempt_env(a, &st->tx))) {
		err = -ENOMEM;
		goto out;
	}
	if (a->variant == COMMAND_VARIANT_SCRIPT &&
	    (err = cmd_write_script(&st->tx.body, &st->script)) < 0) {
		if (err == -ENOMEM)
			goto out;
		st->oc.script_err = -err;
	} else if ((err = spawn(st, t, opts, env)) < 0) {
		goto out;
	} else if (err > 0) {
		st->oc.spawn_err = err;
		if (st->workdir && (err == ENOENT || err == ENOTDIR || err == EACCES) &&
		    access(st->workdir, X_OK) < 0)
			st->oc.workdir_err = errno;
	}
	st->oc.program = st->program;
	if (st->proc) {
		a->pid = proc_pid(st->proc);
		a->pid_start = pstat_start_time(a->pid, NULL);
	}
	err = 0;
later:
	if (st->oc.script_err || st->oc.spawn_err || st->oc.template_err) {
		/* Report from the loop, never from inside start(). */
		st->res.end_ms = st->res.start_ms;
		uv_timer_init(cx->loop, &st->later);
		st->later.data = st;
		uv_timer_start(&st->later, on_later, 0, 0);
	}
	cx->live++;
	a->priv = st;
	st = NULL;
out:
	free(env);
	if (st) {
		if (st->script) {
			unlink(st->script);
			free(st->script);
		}
		attempt_free(st);
	}
	return err;
}

static void command_cancel(struct executor *ex, struct exec_attempt *a, bool hard)
{
	(void)ex;
	struct cmd_attempt *st = a->priv;
	if (!st)
		return;
	st->cancelled = true;
	if (st->proc)
		proc_kill(st->proc, hard);
}

static void command_destroy(struct executor *ex)
{
	struct command_executor *cx = (struct command_executor *)ex;
	if (!cx)
		return;
	/* Whatever the tasks left behind must not outlive the engine. */
	proc_runner_kill_all(cx->runner);
	proc_runner_free(cx->runner);
	free(cx);
}

void command_executor_kill_all(struct executor *ex)
{
	proc_runner_kill_all(((struct command_executor *)ex)->runner);
}

int command_executor_adopt(struct executor *ex)
{
	return proc_runner_adopt(((struct command_executor *)ex)->runner);
}

void command_executor_hold(struct executor *ex, int fd)
{
	proc_runner_hold(((struct command_executor *)ex)->runner, fd);
}

int command_executor_guard(struct executor *ex, const char *run_id)
{
	return proc_runner_guard(((struct command_executor *)ex)->runner, "DAGRUN_RUN_ID",
				 run_id);
}

/* Before the run's first task: the tasks die with this process (the
 * watchdog, which holds hold_fd); on request, what escapes their groups is
 * ours to reap and kill (a subreaper). */
static int command_begin(struct executor *ex, const char *run_id, unsigned process_flags,
			 int hold_fd)
{
	int r = 0;
	if (hold_fd >= 0)
		command_executor_hold(ex, hold_fd);
	if (process_flags & DAGRUN_PROC_SUBREAPER)
		r = command_executor_adopt(ex);
	return r < 0 ? r : command_executor_guard(ex, run_id);
}

static const struct executor_ops command_ops = {
	.name = "command",
	.start = command_start,
	.cancel = command_cancel,
	.destroy = command_destroy,
	.begin = command_begin,
};

struct executor *command_executor_new(uv_loop_t *loop)
{
	struct command_executor *cx = calloc(1, sizeof(*cx));
	if (!cx)
		return NULL;
	cx->base.ops = &command_ops;
	cx->loop = loop;
	if (proc_runner_new(loop, &cx->runner) < 0) {
		free(cx);
		return NULL;
	}
	return &cx->base;
}
