/* command.h: the executor for command and script tasks (over proc.h).
 *
 * A command string runs via `/bin/sh -c STRING`, unless command_needs_shell()
 * says the shell would only split it on spaces and exec the first word: then
 * it is split and exec'd directly, saving a process, with the same outcome
 * (a missing program is exit 127, a non-executable one 126, as the shell
 * reports them; a file without #! falls back to the shell, as in execvp).
 * A command list is an argv, never a shell. A script is written to a private
 * temporary file (0600, unlinked when the attempt ends) and run as
 * `INTERPRETER... FILE` (default "/bin/sh -e").
 *
 * Environment: ours, then the workflow's env, then the task's env, then
 * DAGRUN_RUN_ID, DAGRUN_TASK_ID, DAGRUN_ATTEMPT and DAGRUN_OUTPUT (later
 * entries win). Values are used verbatim (template rendering happens
 * upstream). Working directory: the task's workdir (relative to the
 * workflow's directory) or else the workflow's directory.
 *
 * Results: every failure to spawn or to write the script is reported
 * through on_done, from the loop; start() itself fails only with -ENOMEM,
 * or -EINVAL for a task kind it does not run. out_bytes >
 * out.len (err likewise) means the capture was truncated at EXEC_OUTPUT_CAP.
 */
#ifndef DAGRUN_COMMAND_H
#define DAGRUN_COMMAND_H

#include <stdbool.h>
#include <stddef.h>

#include <uv.h>

#include "exec/executor.h"

/* The specs of the two kinds this executor runs (the kinds' loader keys,
 * kinds/command.c and kinds/script.c, fill them), told apart by the
 * attempt's variant. */
enum { COMMAND_VARIANT_COMMAND = 0, COMMAND_VARIANT_SCRIPT = 1 };

struct dr_command {
	struct dr_text str;            /* the string form; .s NULL for argv */
	struct dr_text *argv;          /* the list form */
	uint32_t argc;
};

struct dr_script {
	struct dr_text body;
	struct dr_text interpreter;    /* .s NULL: default "/bin/sh -e" */
	bool posix_shell;              /* the interpreter is a POSIX shell (its
					* templates are escaped); set by the loader */
};



/* A new command/script executor on loop, a guest in its process (see
 * proc.h: it waits for, and signals, only what it started). Returns NULL on
 * failure (OOM, or no /dev/null). Destroying it SIGKILLs whatever its tasks
 * left running in their groups, sessions and trees; run the loop afterwards
 * so its handles close. */
struct executor *command_executor_new(uv_loop_t *loop);

/* Makes the process a child subreaper for as long as ex lives, ex reaping
 * and, at the end, killing the orphans it adopts (proc_runner_adopt()):
 * process-wide, for a program that owns its process. Returns 0 or -errno. */
int command_executor_adopt(struct executor *ex);

/* SIGKILLs every running attempt's process tree (they end cancelled); when
 * adopted, also every other child process of ours no runner tracks. */
void command_executor_kill_all(struct executor *ex);

/* Makes the tasks of run run_id die with this process, even if it is
 * SIGKILLed (proc_runner_guard(), marker DAGRUN_RUN_ID=run_id). Call once,
 * before the first task. Returns 0 or -errno. */
int command_executor_guard(struct executor *ex, const char *run_id);

/* Before command_executor_guard(): its watchdog keeps fd open until it
 * exits (proc_runner_hold): the run's lock, which a resume waits on. */
void command_executor_hold(struct executor *ex, int fd);

/* Whether s[0..len) needs `/bin/sh -c` (true) or may be split on spaces and
 * exec'd (false). It may be exec'd only when (like GNU make's fast path):
 *  - every byte is one of [A-Za-z0-9_./=:,+%@-] or a space, so there is no
 *    quoting, expansion, glob, redirection, separator, comment or newline;
 *  - it has at least one word and the first has no '=' (an assignment);
 *  - the first word is not a reserved word nor a builtin of dash or bash
 *    (cd, exit, export, echo, printf, kill, test...: their external twins,
 *    where they exist, differ), except a lone `true` or `false`. */
bool command_needs_shell(const char *s, size_t len);

/* What command_classify() needs besides the result. */
struct command_outcome {
	int spawn_err;            /* errno of a failed spawn, or 0 */
	int workdir_err;          /* errno reaching the workdir, when that failed */
	int script_err;           /* errno writing the script file, or 0 */
	const char *template_err; /* a template could not be rendered: the
				   * message (class permanent), or NULL */
	bool signalled;           /* we signalled the process group */
	uint64_t timeout_ms;      /* for the message */
	const char *program;      /* argv[0], for messages */
	const char *workdir;      /* for messages; may be NULL */
	const struct dr_retry *retry; /* permanent exit codes; may be NULL */
};

/* Sets r->ok, r->error_class and r->error (malloc'd; NULL when out of
 * memory) from r->exit_code, r->term_signal, r->timed_out, r->cancelled and
 * o; for a failed spawn also r->exit_code (127 not found, 126 not
 * executable, else -1). Rules, first match wins: cancelled -> transient;
 * timeout -> transient; writing the script failed: ENOSPC, EDQUOT, EMFILE,
 * ENFILE, EAGAIN -> resource, else permanent; spawn EAGAIN/ENOMEM/EMFILE/
 * ENFILE -> resource;
 * other spawn failures -> permanent (or transient for ETXTBSY, EINTR, EIO);
 * exit 0 -> ok; 126, 127 or a permanent exit code -> permanent; other exit
 * codes -> transient; SIGKILL we did not send, SIGXCPU, SIGXFSZ ->
 * resource (the OOM killer or a resource limit: a heuristic); other
 * signals -> transient. */
void command_classify(struct exec_result *r, const struct command_outcome *o);

#endif
