/* test_command.c: the command/script executor over real processes, the
 * shell-or-exec decision and the classification of results.
 *
 * Workflows are built by hand (no loader). Every test closes its handles and
 * checks that the loop closes cleanly.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "exec/command.h"

/* ---- a one-task workflow built by hand ----------------------------------- */

struct fixture {
	struct dagrun_workflow wf;
	struct dr_task task;
	struct dr_task_opts opts;
	struct dr_command cmd;
	struct dr_script script;
	struct dr_text argv[8];
	struct dr_text workdir;
	struct dr_kv wf_env[2], task_env[2];
	uint8_t perm[2];
	bool no_output_file;      /* run with output_file NULL */
};

static struct dr_text text(const char *s)
{
	struct dr_text t = {s, s ? (uint32_t)strlen(s) : 0, 1, 1};
	return t;
}

/* kind: COMMAND_VARIANT_COMMAND or _SCRIPT (the attempt's variant). */
static struct fixture *fixture_new(int kind)
{
	struct fixture *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	int added;
	f->task.sym = intern_add(&f->wf.ids, "t1", 2, &added);
	f->task.kind = (uint8_t)kind;
	f->task.opts = &f->opts;
	f->opts.kill_grace_ms = 5000;
	f->opts.retry.max_attempts = 1;
	if (kind == COMMAND_VARIANT_SCRIPT)
		f->task.spec = &f->script;
	else
		f->task.spec = &f->cmd;
	f->wf.tasks = &f->task;
	f->wf.n_tasks = f->wf.n_main = 1;
	return f;
}

static void fixture_free(struct fixture *f)
{
	intern_free(&f->wf.ids);
	free(f->wf.dir);
	free(f);
}

static struct fixture *command(const char *s)
{
	struct fixture *f = fixture_new(COMMAND_VARIANT_COMMAND);
	f->cmd.str = text(s);
	return f;
}

static struct fixture *command_list(const char *const *words)
{
	struct fixture *f = fixture_new(COMMAND_VARIANT_COMMAND);
	uint32_t n = 0;
	for (; words[n]; n++)
		f->argv[n] = text(words[n]);
	f->cmd.argv = f->argv;
	f->cmd.argc = n;
	return f;
}

static struct fixture *script(const char *interp, const char *body)
{
	struct fixture *f = fixture_new(COMMAND_VARIANT_SCRIPT);
	f->script.interpreter = text(interp);
	f->script.body = text(body);
	return f;
}

/* ---- running one attempt ------------------------------------------------------ */

struct outcome {
	bool done;
	bool ok;
	int cls, exit_code, term_signal;
	bool timed_out, cancelled;
	char *error, *out, *err;
	uint64_t out_bytes, err_bytes, seen, duration_ms, start_ms, end_ms;
	size_t out_len;
};

struct ctx {
	uv_loop_t *loop;           /* on the heap: a failed test leaves it behind */
	struct executor *ex;
	struct exec_attempt a;
	struct outcome o;
	uv_timer_t canceller;
	bool hard;
};

static char *dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

static void on_output(struct exec_attempt *a, enum exec_stream s, const char *d, size_t n)
{
	(void)s;
	(void)d;
	struct ctx *c = a->owner;
	c->o.seen += n;
}

static void on_done(struct exec_attempt *a, struct exec_result *r)
{
	struct ctx *c = a->owner;
	struct outcome *o = &c->o;
	assert_false(o->done);
	o->done = true;
	o->ok = r->ok;
	o->cls = r->error_class;
	o->exit_code = r->exit_code;
	o->term_signal = r->term_signal;
	o->timed_out = r->timed_out;
	o->cancelled = r->cancelled;
	o->error = dup_or_null(r->error);
	o->out = strdup(r->out.data ? r->out.data : "");
	o->err = strdup(r->err.data ? r->err.data : "");
	o->out_len = r->out.len;
	o->out_bytes = r->out_bytes;
	o->err_bytes = r->err_bytes;
	o->duration_ms = r->duration_ms;
	o->start_ms = r->start_ms;
	o->end_ms = r->end_ms;
	assert_true(r->ok == (r->error == NULL));
}

static void do_cancel(uv_timer_t *t)
{
	struct ctx *c = t->data;
	c->ex->ops->cancel(c->ex, &c->a, c->hard);
	uv_close((uv_handle_t *)t, NULL);
}

/* Runs f's task once; cancel_ms > 0 cancels it after that long. */
static struct outcome run_cancel(struct fixture *f, uint64_t cancel_ms, bool hard)
{
	struct ctx c;
	memset(&c, 0, sizeof(c));
	c.loop = malloc(sizeof(*c.loop));
	assert_non_null(c.loop);
	assert_int_equal(uv_loop_init(c.loop), 0);
	c.ex = command_executor_new(c.loop);
	assert_non_null(c.ex);
	c.a.wf = &f->wf;
	c.a.variant = f->task.kind;
	c.a.task = 0;
	c.a.attempt = 2;
	c.a.run_id = "run-42";
	c.a.output_file = f->no_output_file ? NULL : "/tmp/dagrun-out-t1";
	c.a.on_output = on_output;
	c.a.on_done = on_done;
	c.a.owner = &c;
	assert_int_equal(c.ex->ops->start(c.ex, &c.a), 0);
	assert_false(c.o.done);               /* never from inside start() */
	if (cancel_ms) {
		c.hard = hard;
		uv_timer_init(c.loop, &c.canceller);
		c.canceller.data = &c;
		uv_timer_start(&c.canceller, do_cancel, cancel_ms, 0);
	}
	uv_run(c.loop, UV_RUN_DEFAULT);
	assert_true(c.o.done);
	c.ex->ops->destroy(c.ex);
	uv_run(c.loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(c.loop), 0);
	free(c.loop);
	return c.o;
}

static struct outcome run(struct fixture *f)
{
	return run_cancel(f, 0, false);
}

static void outcome_free(struct outcome *o)
{
	free(o->error);
	free(o->out);
	free(o->err);
}

static char *tmp_path(const char *name)
{
	const char *dir = getenv("TMPDIR");
	char *p;
	assert_true(asprintf(&p, "%s/dagrun-ctest-%d-%s", dir && *dir ? dir : "/tmp",
			     (int)getpid(), name) > 0);
	return p;
}

/* ---- command_needs_shell --------------------------------------------------- */

static void test_needs_shell_decides_by_syntax(void **state)
{
	(void)state;
	static const char *const direct[] = {
		"make -j4", "ls", "  ls  -l  ", "/usr/bin/env", "./configure --prefix=/usr",
		"gcc -O2 -o a.out x.c", "git log --oneline", "true", "false", " true ",
		"curl -sS https://example.com:8080/a,b+c%20@x", "make CC=gcc", "python3 -m http.server",
		"sleep 1", "env", "ls -la /tmp",
	};
	static const char *const shell[] = {
		"", "   ", "echo hi", "cd /tmp", "exit 1", "export A=b", "A=b make", "a=b",
		"ls | wc", "ls > f", "ls < f", "ls; ls", "ls && ls", "ls &", "echo $HOME",
		"ls *.c", "ls ?", "ls [ab]", "ls ~", "ls 'a b'", "ls \"a\"", "ls \\a", "ls #c",
		"ls\nls", "ls\tx", "ls $(pwd)", "ls `pwd`", "if true", "for x", "while true",
		"{ ls; }", "(ls)", "! ls", "true x", "false 1", "test -f x", "[ -f x ]", ".",
		". ./env.sh", ": nothing", "source x", "exec ls", "printf x", "kill 1", "pwd",
		"set -e", "umask 022", "ulimit -n", "wait", "time ls", "ls ${x}", "ls a^b",
		"read x", "trap x", "eval ls", "alias x", "type ls", "command ls", "local x",
		"echo", "do", "done", "fi", "then", "ulimit",
	};
	for (size_t i = 0; i < sizeof(direct) / sizeof(*direct); i++)
		if (command_needs_shell(direct[i], strlen(direct[i])))
			fail_msg("should exec directly: \"%s\"", direct[i]);
	for (size_t i = 0; i < sizeof(shell) / sizeof(*shell); i++)
		if (!command_needs_shell(shell[i], strlen(shell[i])))
			fail_msg("should use the shell: \"%s\"", shell[i]);
	/* Only the given length counts. */
	assert_false(command_needs_shell("ls; rm", 2));
}

/* ---- command_classify ------------------------------------------------------------ */

static struct exec_result result(int code, int sig)
{
	struct exec_result r;
	memset(&r, 0, sizeof(r));
	r.exit_code = code;
	r.term_signal = sig;
	return r;
}

static void expect(struct exec_result *r, const struct command_outcome *o, bool ok, int cls,
		   const char *error)
{
	command_classify(r, o);
	assert_int_equal(r->ok, ok);
	if (!ok)
		assert_int_equal(r->error_class, cls);
	if (error)
		assert_string_equal(r->error, error);
	else
		assert_null(r->error);
	exec_result_free(r);
}

static void test_classify_follows_the_spec(void **state)
{
	(void)state;
	uint8_t codes[] = {2, 42};
	struct dr_retry rt = {.max_attempts = 1, .n_permanent = 2, .permanent_codes = codes};
	struct command_outcome o = {.retry = &rt, .program = "prog", .timeout_ms = 2000};
	struct exec_result r;

	r = result(0, 0);
	expect(&r, &o, true, 0, NULL);
	r = result(3, 0);
	expect(&r, &o, false, DR_CLASS_TRANSIENT, "exit code 3");
	r = result(2, 0);
	expect(&r, &o, false, DR_CLASS_PERMANENT, "exit code 2");
	r = result(42, 0);
	expect(&r, &o, false, DR_CLASS_PERMANENT, "exit code 42");
	r = result(126, 0);
	expect(&r, &o, false, DR_CLASS_PERMANENT, "exit code 126");
	r = result(127, 0);
	expect(&r, &o, false, DR_CLASS_PERMANENT, "exit code 127");
	o.retry = NULL;
	r = result(2, 0);
	expect(&r, &o, false, DR_CLASS_TRANSIENT, "exit code 2");

	r = result(-1, SIGTERM);
	r.timed_out = true;
	expect(&r, &o, false, DR_CLASS_TRANSIENT, "timed out after 2s");
	o.timeout_ms = 1500;
	r = result(-1, SIGKILL);
	r.timed_out = true;
	expect(&r, &o, false, DR_CLASS_TRANSIENT, "timed out after 1500ms");
	r = result(-1, SIGTERM);
	r.cancelled = true;
	expect(&r, &o, false, DR_CLASS_TRANSIENT, "cancelled");

	r = result(-1, SIGKILL);
	expect(&r, &o, false, DR_CLASS_RESOURCE,
	       "killed by signal 9 (SIGKILL): likely the OOM killer or a resource limit");
	r = result(-1, SIGXCPU);
	command_classify(&r, &o);
	assert_int_equal(r.error_class, DR_CLASS_RESOURCE);
	exec_result_free(&r);
	o.signalled = true;
	r = result(-1, SIGKILL);
	expect(&r, &o, false, DR_CLASS_TRANSIENT, "killed by signal 9 (SIGKILL)");
	o.signalled = false;
	r = result(-1, SIGSEGV);
	expect(&r, &o, false, DR_CLASS_TRANSIENT, "killed by signal 11 (SIGSEGV)");

	o.spawn_err = ENOENT;
	r = result(-1, 0);
	command_classify(&r, &o);
	assert_int_equal(r.exit_code, 127);
	assert_int_equal(r.error_class, DR_CLASS_PERMANENT);
	assert_string_equal(r.error, "command not found: prog");
	exec_result_free(&r);
	o.spawn_err = EACCES;
	r = result(-1, 0);
	command_classify(&r, &o);
	assert_int_equal(r.exit_code, 126);
	assert_int_equal(r.error_class, DR_CLASS_PERMANENT);
	exec_result_free(&r);
	int resource[] = {EAGAIN, ENOMEM, EMFILE, ENFILE};
	for (int i = 0; i < 4; i++) {
		o.spawn_err = resource[i];
		r = result(-1, 0);
		command_classify(&r, &o);
		assert_int_equal(r.error_class, DR_CLASS_RESOURCE);
		assert_int_equal(r.exit_code, -1);
		exec_result_free(&r);
	}
	o.spawn_err = ENOENT;
	o.workdir_err = ENOENT;
	o.workdir = "/nope";
	r = result(-1, 0);
	expect(&r, &o, false, DR_CLASS_PERMANENT, "workdir /nope: No such file or directory");
}

/* ---- commands ---------------------------------------------------------------------- */

static void test_shell_string_exit_code_is_transient(void **state)
{
	(void)state;
	struct fixture *f = command("echo before; exit 3");
	struct outcome o = run(f);
	assert_false(o.ok);
	assert_int_equal(o.exit_code, 3);
	assert_int_equal(o.cls, DR_CLASS_TRANSIENT);
	assert_string_equal(o.error, "exit code 3");
	assert_string_equal(o.out, "before\n");
	assert_true(o.end_ms >= o.start_ms && o.start_ms > 0);
	outcome_free(&o);
	fixture_free(f);
}

static void test_direct_string_succeeds(void **state)
{
	(void)state;
	struct fixture *f = command("printf %s,%s a b");   /* printf: shell builtin */
	struct outcome o = run(f);
	assert_true(o.ok);
	assert_string_equal(o.out, "a,b");
	outcome_free(&o);
	fixture_free(f);
	f = command("  cat  /dev/null  ");                 /* direct exec */
	o = run(f);
	assert_true(o.ok);
	assert_int_equal(o.exit_code, 0);
	outcome_free(&o);
	fixture_free(f);
}

static void test_list_runs_without_a_shell(void **state)
{
	(void)state;
	struct fixture *f = command_list((const char *[]){"sh", "-c", "echo \"$1\"; exit 4", "x",
							   "a b; $c", NULL});
	f->perm[0] = 4;
	f->opts.retry.permanent_codes = f->perm;
	f->opts.retry.n_permanent = 1;
	struct outcome o = run(f);
	assert_string_equal(o.out, "a b; $c\n");
	assert_int_equal(o.exit_code, 4);
	assert_int_equal(o.cls, DR_CLASS_PERMANENT);
	outcome_free(&o);
	fixture_free(f);
}

static void test_missing_program_is_permanent_127_every_way(void **state)
{
	(void)state;
	const char *forms[] = {"no-such-program-dagrun arg", "no-such-program-dagrun; exit $?"};
	for (int i = 0; i < 2; i++) {
		struct fixture *f = command(forms[i]);
		struct outcome o = run(f);
		assert_false(o.ok);
		assert_int_equal(o.exit_code, 127);
		assert_int_equal(o.cls, DR_CLASS_PERMANENT);
		outcome_free(&o);
		fixture_free(f);
	}
	struct fixture *f = command_list((const char *[]){"no-such-program-dagrun", NULL});
	struct outcome o = run(f);
	assert_int_equal(o.exit_code, 127);
	assert_int_equal(o.cls, DR_CLASS_PERMANENT);
	assert_string_equal(o.error, "command not found: no-such-program-dagrun");
	outcome_free(&o);
	fixture_free(f);
}

static void test_file_without_shebang_falls_back_to_the_shell(void **state)
{
	(void)state;
	char *path = tmp_path("noshebang");
	FILE *fp = fopen(path, "w");
	assert_non_null(fp);
	fputs("echo fallback\n", fp);
	fclose(fp);
	chmod(path, 0755);
	struct fixture *f = command(path);
	struct outcome o = run(f);
	assert_true(o.ok);
	assert_string_equal(o.out, "fallback\n");
	outcome_free(&o);
	fixture_free(f);
	unlink(path);
	free(path);
}

static void test_environment_layers_and_dagrun_vars(void **state)
{
	(void)state;
	setenv("DAGRUN_TEST_BASE", "base", 1);
	setenv("DAGRUN_TEST_OVER", "engine", 1);
	struct fixture *f = command("echo $DAGRUN_RUN_ID $DAGRUN_TASK_ID $DAGRUN_ATTEMPT "
				    "$DAGRUN_OUTPUT $DAGRUN_TEST_BASE $WF $TASK $DAGRUN_TEST_OVER");
	f->wf_env[0] = (struct dr_kv){text("WF"), text("w")};
	f->wf_env[1] = (struct dr_kv){text("DAGRUN_TEST_OVER"), text("workflow")};
	f->task_env[0] = (struct dr_kv){text("TASK"), text("{{ not rendered }}")};
	f->task_env[1] = (struct dr_kv){text("DAGRUN_TEST_OVER"), text("task")};
	f->wf.env = (struct dr_kvlist){f->wf_env, 2};
	f->opts.env = (struct dr_kvlist){f->task_env, 2};
	struct outcome o = run(f);
	assert_true(o.ok);
	assert_string_equal(o.out, "run-42 t1 2 /tmp/dagrun-out-t1 base w {{ not rendered }} task\n");
	outcome_free(&o);
	fixture_free(f);
	unsetenv("DAGRUN_TEST_BASE");
	unsetenv("DAGRUN_TEST_OVER");
}

static void test_absent_dagrun_vars_are_not_inherited(void **state)
{
	(void)state;
	setenv("DAGRUN_OUTPUT", "/outer/task/output", 1);
	struct fixture *f = command("echo [${DAGRUN_OUTPUT-unset}]");
	f->no_output_file = true;
	struct outcome o = run(f);
	assert_string_equal(o.out, "[unset]\n");
	outcome_free(&o);
	fixture_free(f);
	unsetenv("DAGRUN_OUTPUT");
}

static void test_workdir_defaults_to_the_workflow_dir(void **state)
{
	(void)state;
	char *dir = tmp_path("wfdir");
	char *sub;
	assert_true(asprintf(&sub, "%s/sub", dir) > 0);
	mkdir(dir, 0700);
	mkdir(sub, 0700);
	char *real = realpath(dir, NULL);
	assert_non_null(real);

	struct fixture *f = command("pwd -P");
	f->wf.dir = strdup(dir);
	struct outcome o = run(f);
	char *want;
	assert_true(asprintf(&want, "%s\n", real) > 0);
	assert_string_equal(o.out, want);
	outcome_free(&o);
	free(want);

	f->workdir = text("sub");                        /* relative to wf->dir */
	f->opts.workdir = &f->workdir;
	o = run(f);
	assert_true(asprintf(&want, "%s/sub\n", real) > 0);
	assert_string_equal(o.out, want);
	outcome_free(&o);
	free(want);

	f->workdir = text("/no/such/dir");
	o = run(f);
	assert_false(o.ok);
	assert_int_equal(o.cls, DR_CLASS_PERMANENT);
	assert_string_equal(o.error, "workdir /no/such/dir: No such file or directory");
	outcome_free(&o);
	fixture_free(f);
	rmdir(sub);
	rmdir(dir);
	free(real);
	free(sub);
	free(dir);
}

/* ---- scripts ------------------------------------------------------------------------- */

static void test_python_script_runs_and_its_file_is_removed(void **state)
{
	(void)state;
	struct fixture *f = script("python3", "import os, sys\n"
					      "print(os.environ['DAGRUN_TASK_ID'], sys.argv[1:])\n"
					      "print(sys.argv[0], file=sys.stderr)\n"
					      "sys.exit(5)\n");
	struct outcome o = run(f);
	assert_int_equal(o.exit_code, 5);
	assert_int_equal(o.cls, DR_CLASS_TRANSIENT);
	assert_string_equal(o.out, "t1 []\n");
	o.err[strcspn(o.err, "\n")] = '\0';
	assert_non_null(strstr(o.err, "dagrun-script-"));
	struct stat st;
	assert_int_equal(stat(o.err, &st), -1);           /* unlinked */
	outcome_free(&o);
	fixture_free(f);
}

static void test_default_interpreter_stops_on_error(void **state)
{
	(void)state;
	struct fixture *f = script(NULL, "echo one\nfalse\necho never\n");
	struct outcome o = run(f);
	assert_int_equal(o.exit_code, 1);
	assert_string_equal(o.out, "one\n");
	outcome_free(&o);
	fixture_free(f);
}

static void test_missing_interpreter_is_permanent(void **state)
{
	(void)state;
	struct fixture *f = script("no-such-interpreter-dagrun -x", "print 1\n");
	struct outcome o = run(f);
	assert_int_equal(o.exit_code, 127);
	assert_int_equal(o.cls, DR_CLASS_PERMANENT);
	outcome_free(&o);
	fixture_free(f);
}

static void test_unwritable_script_dir_is_reported_as_a_result(void **state)
{
	(void)state;
	char *old = getenv("TMPDIR") ? strdup(getenv("TMPDIR")) : NULL;
	setenv("TMPDIR", "/nonexistent-dagrun-dir", 1);
	struct fixture *f = script(NULL, "true\n");
	struct outcome o = run(f);
	if (old)
		setenv("TMPDIR", old, 1);
	else
		unsetenv("TMPDIR");
	free(old);
	assert_false(o.ok);
	assert_int_equal(o.cls, DR_CLASS_PERMANENT);
	assert_string_equal(o.error, "cannot write the script to a temporary file: "
				     "No such file or directory");
	outcome_free(&o);
	fixture_free(f);
}

/* ---- limits, timeouts, cancellation ------------------------------------------------------ */

static void test_output_is_capped_and_counted(void **state)
{
	(void)state;
	struct fixture *f = command("head -c 3000000 /dev/zero");
	struct outcome o = run(f);
	assert_true(o.ok);
	assert_int_equal(o.out_len, EXEC_OUTPUT_CAP);
	assert_int_equal(o.out_bytes, 3000000);
	assert_int_equal(o.seen, 3000000);
	outcome_free(&o);
	fixture_free(f);
}

static void test_timeout_is_transient(void **state)
{
	(void)state;
	struct fixture *f = command("sleep 30");
	f->opts.timeout_ms = 300;
	struct outcome o = run(f);
	assert_false(o.ok);
	assert_true(o.timed_out);
	assert_int_equal(o.cls, DR_CLASS_TRANSIENT);
	assert_string_equal(o.error, "timed out after 300ms");
	assert_true(o.duration_ms >= 250);
	outcome_free(&o);
	fixture_free(f);
}

static void test_cancel_soft_and_hard(void **state)
{
	(void)state;
	struct fixture *f = command("sleep 30");
	struct outcome o = run_cancel(f, 200, false);
	assert_true(o.cancelled);
	assert_false(o.ok);
	assert_int_equal(o.term_signal, SIGTERM);
	outcome_free(&o);
	fixture_free(f);

	f = command("trap '' TERM; sleep 30");
	f->opts.kill_grace_ms = 60000;
	o = run_cancel(f, 200, true);
	assert_true(o.cancelled);
	assert_int_equal(o.term_signal, SIGKILL);
	outcome_free(&o);
	fixture_free(f);
}

static void test_sigkill_not_sent_by_us_is_resource(void **state)
{
	(void)state;
	struct fixture *f = command("kill -9 $$");
	struct outcome o = run(f);
	assert_int_equal(o.term_signal, SIGKILL);
	assert_int_equal(o.cls, DR_CLASS_RESOURCE);
	outcome_free(&o);
	fixture_free(f);
}

/* Text with an embedded NUL, as a template can render it (a variable or an
 * upstream output holding one); the executor gets it with its length. */
static struct dr_text nul_text(const char *s, size_t len)
{
	struct dr_text t = {s, (uint32_t)len, 1, 1};
	return t;
}

static void expect_nul_failure(struct fixture *f, const char *what)
{
	struct outcome o = run(f);
	assert_false(o.ok);
	assert_int_equal(o.cls, DR_CLASS_PERMANENT);
	assert_int_equal(o.exit_code, -1);    /* nothing ran */
	assert_non_null(o.error);
	if (!strstr(o.error, what) || !strstr(o.error, "of task 't1' holds a NUL character"))
		fail_msg("unexpected error: %s", o.error);
	assert_string_equal(o.out, "");
	outcome_free(&o);
	fixture_free(f);
}

static void test_a_nul_in_a_string_for_the_process_fails_the_attempt(void **state)
{
	(void)state;
	/* Each used to be cut at the NUL silently: $X was "a", the workdir
	 * /tmp, the argument "a". */
	struct fixture *f = command("echo \"[$X]\"");
	f->task_env[0] = (struct dr_kv){text("X"), nul_text("a\0b", 3)};
	f->opts.env = (struct dr_kvlist){f->task_env, 1};
	expect_nul_failure(f, "env 'X'");

	f = command("echo \"[$X]\"");
	f->wf_env[0] = (struct dr_kv){text("X"), nul_text("a\0b", 3)};
	f->wf.env = (struct dr_kvlist){f->wf_env, 1};
	expect_nul_failure(f, "env 'X'");

	f = command("pwd");
	f->workdir = nul_text("/tmp\0/x", 7);
	f->opts.workdir = &f->workdir;
	expect_nul_failure(f, "the workdir");

	f = command_list((const char *[]){"echo", "x", NULL});
	f->argv[1] = nul_text("a\0b", 3);
	expect_nul_failure(f, "an argument of the command");

	f = command("echo a");
	f->cmd.str = nul_text("echo a\0b", 8);
	expect_nul_failure(f, "the command");

	f = script("/bin/sh", "echo a");
	f->script.body = nul_text("echo a\0echo b\n", 14);
	expect_nul_failure(f, "the script");
}

static void test_unsupported_kind_is_refused(void **state)
{
	(void)state;
	uv_loop_t loop;
	assert_int_equal(uv_loop_init(&loop), 0);
	struct executor *ex = command_executor_new(&loop);
	assert_non_null(ex);
	struct fixture *f = command("true");
	struct exec_attempt a = {.wf = &f->wf, .variant = 7, .attempt = 1, .on_done = on_done};
	assert_int_equal(ex->ops->start(ex, &a), -EINVAL);
	ex->ops->destroy(ex);
	uv_run(&loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(&loop), 0);
	fixture_free(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_needs_shell_decides_by_syntax),
		cmocka_unit_test(test_classify_follows_the_spec),
		cmocka_unit_test(test_shell_string_exit_code_is_transient),
		cmocka_unit_test(test_direct_string_succeeds),
		cmocka_unit_test(test_list_runs_without_a_shell),
		cmocka_unit_test(test_missing_program_is_permanent_127_every_way),
		cmocka_unit_test(test_file_without_shebang_falls_back_to_the_shell),
		cmocka_unit_test(test_environment_layers_and_dagrun_vars),
		cmocka_unit_test(test_absent_dagrun_vars_are_not_inherited),
		cmocka_unit_test(test_workdir_defaults_to_the_workflow_dir),
		cmocka_unit_test(test_python_script_runs_and_its_file_is_removed),
		cmocka_unit_test(test_default_interpreter_stops_on_error),
		cmocka_unit_test(test_missing_interpreter_is_permanent),
		cmocka_unit_test(test_unwritable_script_dir_is_reported_as_a_result),
		cmocka_unit_test(test_output_is_capped_and_counted),
		cmocka_unit_test(test_timeout_is_transient),
		cmocka_unit_test(test_cancel_soft_and_hard),
		cmocka_unit_test(test_sigkill_not_sent_by_us_is_resource),
		cmocka_unit_test(test_unsupported_kind_is_refused),
		cmocka_unit_test(test_a_nul_in_a_string_for_the_process_fails_the_attempt),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
