/* test_proc.c: the process runner, with real processes on a real loop.
 *
 * Every test closes its handles and checks that the loop closes cleanly.
 * Timings only have lower bounds or generous upper bounds: the machine may
 * be loaded.
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
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "exec/executor.h"
#include "exec/proc.h"

struct run {
	uv_loop_t *loop;           /* on the heap: a failed test leaves it behind */
	struct proc_runner *r;
	struct proc *p;
	bool done;
	struct proc_result res;     /* copied at exit; out/err taken over */
	uint64_t seen[3];           /* bytes given to on_output, by stream */
	uv_timer_t killer;
	bool hard;
};

static void on_output(struct proc *p, enum proc_stream s, const char *data, size_t len,
		      void *ud)
{
	(void)p;
	(void)data;
	struct run *x = ud;
	x->seen[s] += len;
}

static void on_exit_cb(struct proc *p, struct proc_result *r, void *ud)
{
	struct run *x = ud;
	assert_ptr_equal(p, x->p);
	assert_false(x->done);
	x->done = true;
	x->res = *r;
	r->out = (struct buf)BUF_INIT;
	r->err = (struct buf)BUF_INIT;
	proc_kill(p, true);   /* a no-op now */
}

static void setup_run(struct run *x)
{
	memset(x, 0, sizeof(*x));
	x->loop = malloc(sizeof(*x->loop));
	assert_non_null(x->loop);
	assert_int_equal(uv_loop_init(x->loop), 0);
	assert_int_equal(proc_runner_new(x->loop, &x->r), 0);
}

static struct proc_opts opts_for(struct run *x, char *const *argv)
{
	struct proc_opts o = {
		.argv = argv, .kill_grace_ms = 5000, .out_cap = EXEC_OUTPUT_CAP,
		.on_output = on_output, .on_exit = on_exit_cb, .ud = x,
	};
	return o;
}

static void start(struct run *x, const struct proc_opts *o)
{
	assert_int_equal(proc_start(x->r, o, &x->p), 0);
	assert_true(proc_pid(x->p) > 0);
}

static void run_to_end(struct run *x)
{
	uv_run(x->loop, UV_RUN_DEFAULT);
	assert_true(x->done);
	assert_int_equal(proc_runner_count(x->r), 0);
}

static void teardown_run(struct run *x)
{
	buf_free(&x->res.out);
	buf_free(&x->res.err);
	proc_runner_free(x->r);
	uv_run(x->loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(x->loop), 0);
	free(x->loop);
}

/* Runs argv to the end with default options. */
static void run_argv(struct run *x, char *const *argv)
{
	setup_run(x);
	struct proc_opts o = opts_for(x, argv);
	start(x, &o);
	run_to_end(x);
}

static bool gone(pid_t pid)
{
	return kill(pid, 0) < 0 && errno == ESRCH;
}

struct waiter {
	uv_timer_t t;
	pid_t pid;
	int left;
};

static void check_gone(uv_timer_t *t)
{
	struct waiter *w = t->data;
	if (gone(w->pid) || --w->left <= 0)
		uv_close((uv_handle_t *)t, NULL);
}

/* Waits until pid is reaped, running the loop (a timer keeps it alive, so
 * the runner's unreferenced SIGCHLD watcher gets to reap). */
static bool wait_gone(struct run *x, pid_t pid, int ms)
{
	struct waiter w = {.pid = pid, .left = ms / 10};
	uv_timer_init(x->loop, &w.t);
	w.t.data = &w;
	uv_timer_start(&w.t, check_gone, 10, 10);
	uv_run(x->loop, UV_RUN_DEFAULT);
	return gone(pid);
}

static char *tmp_path(const char *name)
{
	const char *dir = getenv("TMPDIR");
	char *p;
	assert_true(asprintf(&p, "%s/dagrun-test-%d-%s", dir && *dir ? dir : "/tmp",
			     (int)getpid(), name) > 0);
	unlink(p);
	return p;
}

static pid_t read_pid(const char *path)
{
	FILE *f = fopen(path, "r");
	int pid = 0;
	if (f) {
		if (fscanf(f, "%d", &pid) != 1)
			pid = 0;
		fclose(f);
	}
	return pid;
}

/* ---- exit status ----------------------------------------------------------- */

static void test_exit_code_is_reported(void **state)
{
	(void)state;
	struct run x;
	run_argv(&x, (char *[]){"sh", "-c", "exit 3", NULL});
	assert_int_equal(x.res.exit_code, 3);
	assert_int_equal(x.res.term_signal, 0);
	assert_false(x.res.timed_out);
	assert_false(x.res.cancelled);
	assert_false(x.res.signalled);
	assert_true(x.res.start_ms > 0 && x.res.end_ms >= x.res.start_ms);
	assert_true(x.res.max_rss_kb > 0);
	teardown_run(&x);
}

static void test_success_exits_zero(void **state)
{
	(void)state;
	struct run x;
	run_argv(&x, (char *[]){"true", NULL});
	assert_int_equal(x.res.exit_code, 0);
	assert_int_equal(x.res.out_bytes + x.res.err_bytes, 0);
	teardown_run(&x);
}

static void test_signal_death_is_reported_not_ours(void **state)
{
	(void)state;
	struct run x;
	run_argv(&x, (char *[]){"sh", "-c", "kill -9 $$", NULL});
	assert_int_equal(x.res.exit_code, -1);
	assert_int_equal(x.res.term_signal, SIGKILL);
	assert_false(x.res.signalled);
	teardown_run(&x);
}

static void test_cpu_time_is_measured(void **state)
{
	(void)state;
	struct run x;
	run_argv(&x, (char *[]){"sh", "-c",
				"i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done", NULL});
	assert_int_equal(x.res.exit_code, 0);
	assert_true(x.res.cpu_user_ms + x.res.cpu_sys_ms > 0);
	teardown_run(&x);
}

/* ---- output ------------------------------------------------------------------ */

static void test_stdout_and_stderr_are_captured_apart(void **state)
{
	(void)state;
	struct run x;
	run_argv(&x, (char *[]){"sh", "-c", "echo out; echo err >&2; echo more", NULL});
	assert_string_equal(x.res.out.data, "out\nmore\n");
	assert_string_equal(x.res.err.data, "err\n");
	assert_int_equal(x.res.out_bytes, 9);
	assert_int_equal(x.res.err_bytes, 4);
	assert_int_equal(x.seen[PROC_STDOUT], 9);
	assert_int_equal(x.seen[PROC_STDERR], 4);
	assert_false(x.res.out_truncated);
	teardown_run(&x);
}

static void test_output_written_just_before_exit_is_kept(void **state)
{
	(void)state;
	/* More than a pipe holds: most of it is read after the exit is seen. */
	struct run x;
	run_argv(&x, (char *[]){"sh", "-c", "head -c 300000 /dev/zero; printf end", NULL});
	assert_int_equal(x.res.out_bytes, 300003);
	assert_int_equal(x.res.out.len, 300003);
	assert_memory_equal(x.res.out.data + 300000, "end", 3);
	teardown_run(&x);
}

static void test_stdin_is_dev_null(void **state)
{
	(void)state;
	struct run x;
	run_argv(&x, (char *[]){"cat", NULL});
	assert_int_equal(x.res.exit_code, 0);
	assert_int_equal(x.res.out_bytes, 0);
	teardown_run(&x);
}

static long max_rss_self(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_maxrss;
}

static void test_100mb_flood_is_counted_with_flat_memory(void **state)
{
	(void)state;
	struct run x;
	long before = max_rss_self();
	run_argv(&x, (char *[]){"head", "-c", "100000000", "/dev/zero", NULL});
	assert_int_equal(x.res.exit_code, 0);
	assert_int_equal(x.res.out_bytes, 100000000);
	assert_int_equal(x.seen[PROC_STDOUT], 100000000);
	assert_int_equal(x.res.out.len, EXEC_OUTPUT_CAP);
	assert_true(x.res.out.alloc <= EXEC_OUTPUT_CAP + 1);
	assert_true(x.res.out_truncated);
	assert_false(x.res.err_truncated);
	/* Memory stays around the cap, far from the 100 MB that went by. */
	assert_true(max_rss_self() - before < 32 * 1024);
	teardown_run(&x);
}

static void test_small_cap_keeps_the_head(void **state)
{
	(void)state;
	struct run x;
	setup_run(&x);
	char *argv[] = {"sh", "-c", "echo 0123456789; echo abcdefghij >&2", NULL};
	struct proc_opts o = opts_for(&x, argv);
	o.out_cap = 4;
	start(&x, &o);
	run_to_end(&x);
	assert_string_equal(x.res.out.data, "0123");
	assert_string_equal(x.res.err.data, "abcd");
	assert_int_equal(x.res.out_bytes, 11);
	assert_true(x.res.out_truncated && x.res.err_truncated);
	teardown_run(&x);
}

/* ---- pipes and the end of a task --------------------------------------------- */

static void test_closing_stdout_early_still_waits_for_exit(void **state)
{
	(void)state;
	struct run x;
	run_argv(&x, (char *[]){"sh", "-c", "echo hi; exec >&- 2>&-; sleep 1", NULL});
	assert_int_equal(x.res.exit_code, 0);
	assert_string_equal(x.res.out.data, "hi\n");
	assert_true(x.res.duration_ms >= 900);
	teardown_run(&x);
}

static void test_background_child_holding_the_pipe_does_not_hang(void **state)
{
	(void)state;
	struct run x;
	uint64_t t0 = uv_hrtime();
	run_argv(&x, (char *[]){"sh", "-c", "sleep 1000 & echo $!", NULL});
	assert_int_equal(x.res.exit_code, 0);
	assert_true((uv_hrtime() - t0) / 1000000 < 20000);
	pid_t bg = atoi(x.res.out.data);
	assert_true(bg > 0);
	assert_true(x.res.signalled);        /* the leftover was killed */
	assert_true(wait_gone(&x, bg, 10000));
	teardown_run(&x);
}

static void test_escaped_pipe_holder_is_killed_after_the_drain(void **state)
{
	(void)state;
	/* setsid leaves the group and session; its parent dies, so it is
	 * reparented to us (subreaper), and found by the pipe it holds. */
	char *pidfile = tmp_path("escaped");
	char *script;
	assert_true(asprintf(&script, "setsid sh -c 'echo $$ > %s; exec sleep 1000' & "
				      "while [ ! -s %s ]; do sleep 0.01; done", pidfile, pidfile) > 0);
	struct run x;
	run_argv(&x, (char *[]){"sh", "-c", script, NULL});
	assert_int_equal(x.res.exit_code, 0);
	pid_t esc = read_pid(pidfile);
	assert_true(esc > 0);
	assert_true(wait_gone(&x, esc, 10000));
	teardown_run(&x);
	unlink(pidfile);
	free(pidfile);
	free(script);
}

static void test_escaped_daemon_survives_the_task_until_kill_all(void **state)
{
	(void)state;
	char *pidfile = tmp_path("daemon");
	char *script;
	assert_true(asprintf(&script, "setsid sh -c 'echo $$ > %s; exec sleep 1000' "
				      ">/dev/null 2>&1 & "
				      "while [ ! -s %s ]; do sleep 0.01; done", pidfile, pidfile) > 0);
	struct run x;
	run_argv(&x, (char *[]){"sh", "-c", script, NULL});
	pid_t d = read_pid(pidfile);
	assert_true(d > 0);
	assert_false(gone(d));
	proc_runner_kill_all(x.r);
	assert_true(wait_gone(&x, d, 10000));
	teardown_run(&x);
	unlink(pidfile);
	free(pidfile);
	free(script);
}

static void test_orphans_are_reaped(void **state)
{
	(void)state;
	/* A double fork: the sleep's parent exits, we inherit it, it exits. */
	struct run x;
	run_argv(&x, (char *[]){"sh", "-c", "(sleep 0.2 >/dev/null 2>&1 & echo $!)", NULL});
	pid_t orphan = atoi(x.res.out.data);
	assert_true(orphan > 0);
	assert_true(wait_gone(&x, orphan, 10000));
	teardown_run(&x);
}

/* ---- timeouts and cancellation ----------------------------------------------- */

static void test_timeout_kills_the_tree_even_a_term_ignoring_grandchild(void **state)
{
	(void)state;
	char *pidfile = tmp_path("grandchild");
	char *script;
	assert_true(asprintf(&script, "sh -c 'trap \"\" TERM; echo $$ > %s; exec sleep 1000' & "
				      "wait", pidfile) > 0);
	struct run x;
	setup_run(&x);
	char *argv[] = {"sh", "-c", script, NULL};
	struct proc_opts o = opts_for(&x, argv);
	o.timeout_ms = 1000;
	o.kill_grace_ms = 300;
	start(&x, &o);
	run_to_end(&x);
	assert_true(x.res.timed_out);
	assert_false(x.res.cancelled);
	assert_true(x.res.signalled);
	assert_int_equal(x.res.term_signal, SIGTERM);
	assert_true(x.res.duration_ms >= 900);
	pid_t gc = read_pid(pidfile);
	assert_true(gc > 0);
	assert_true(wait_gone(&x, gc, 10000));
	teardown_run(&x);
	unlink(pidfile);
	free(pidfile);
	free(script);
}

static void test_timeout_reaches_descendants_that_left_the_group(void **state)
{
	(void)state;
	/* The child leaves the session and the pipes: only its parentage (the
	 * leader is still alive) tells it belongs to the task. */
	char *pidfile = tmp_path("descendant");
	char *script;
	assert_true(asprintf(&script, "setsid sh -c 'echo $$ > %s; exec sleep 1000' "
				      ">/dev/null 2>&1 & wait", pidfile) > 0);
	struct run x;
	setup_run(&x);
	char *argv[] = {"sh", "-c", script, NULL};
	struct proc_opts o = opts_for(&x, argv);
	o.timeout_ms = 1000;
	start(&x, &o);
	run_to_end(&x);
	assert_true(x.res.timed_out);
	pid_t d = read_pid(pidfile);
	assert_true(d > 0);
	assert_true(wait_gone(&x, d, 10000));
	teardown_run(&x);
	unlink(pidfile);
	free(pidfile);
	free(script);
}

static void timed_kill(uv_timer_t *t)
{
	struct run *x = t->data;
	proc_kill(x->p, x->hard);
	uv_close((uv_handle_t *)t, NULL);
}

static void run_with_kill(struct run *x, char *const *argv, bool hard, uint64_t grace)
{
	setup_run(x);
	struct proc_opts o = opts_for(x, argv);
	o.kill_grace_ms = grace;
	start(x, &o);
	x->hard = hard;
	uv_timer_init(x->loop, &x->killer);
	x->killer.data = x;
	uv_timer_start(&x->killer, timed_kill, 300, 0);
	run_to_end(x);
}

static void test_soft_cancel_sends_sigterm(void **state)
{
	(void)state;
	struct run x;
	run_with_kill(&x, (char *[]){"sleep", "1000", NULL}, false, 10000);
	assert_true(x.res.cancelled);
	assert_false(x.res.timed_out);
	assert_int_equal(x.res.term_signal, SIGTERM);
	teardown_run(&x);
}

static void test_soft_cancel_escalates_to_sigkill_after_grace(void **state)
{
	(void)state;
	struct run x;
	run_with_kill(&x, (char *[]){"sh", "-c", "trap '' TERM; sleep 1000", NULL}, false, 300);
	assert_true(x.res.cancelled);
	assert_int_equal(x.res.term_signal, SIGKILL);
	assert_true(x.res.duration_ms >= 550);
	teardown_run(&x);
}

static void test_hard_cancel_sends_sigkill_at_once(void **state)
{
	(void)state;
	struct run x;
	run_with_kill(&x, (char *[]){"sh", "-c", "trap '' TERM; sleep 1000", NULL}, true, 100000);
	assert_true(x.res.cancelled);
	assert_int_equal(x.res.term_signal, SIGKILL);
	teardown_run(&x);
}

/* ---- spawning ------------------------------------------------------------------ */

static void test_spawn_failures_return_errno_and_no_callback(void **state)
{
	(void)state;
	struct run x;
	setup_run(&x);
	struct proc *p = NULL;
	struct proc_opts o = opts_for(&x, (char *[]){"no-such-program-dagrun", NULL});
	assert_int_equal(proc_start(x.r, &o, &p), -ENOENT);
	o.argv = (char *[]){"/no/such/program", NULL};
	assert_int_equal(proc_start(x.r, &o, &p), -ENOENT);
	o.argv = (char *[]){"true", NULL};
	o.cwd = "/no/such/dir";
	assert_int_equal(proc_start(x.r, &o, &p), -ENOENT);
	char *plain = tmp_path("not-executable");
	int fd = open(plain, O_WRONLY | O_CREAT, 0644);
	assert_true(fd >= 0);
	close(fd);
	o.cwd = NULL;
	o.argv = (char *[]){plain, NULL};
	assert_int_equal(proc_start(x.r, &o, &p), -EACCES);
	uv_run(x.loop, UV_RUN_DEFAULT);
	assert_false(x.done);
	assert_int_equal(proc_runner_count(x.r), 0);
	teardown_run(&x);
	unlink(plain);
	free(plain);
}

static void test_path_comes_from_the_child_environment(void **state)
{
	(void)state;
	char *dir = tmp_path("bin");
	assert_int_equal(mkdir(dir, 0700), 0);
	char *tool;
	assert_true(asprintf(&tool, "%s/dagrun-test-tool", dir) > 0);
	FILE *f = fopen(tool, "w");
	assert_non_null(f);
	fputs("#!/bin/sh\necho tool:$1\n", f);
	fclose(f);
	chmod(tool, 0755);
	char *path_env;
	assert_true(asprintf(&path_env, "PATH=/nonexistent:%s", dir) > 0);
	struct run x;
	setup_run(&x);
	char *argv[] = {"dagrun-test-tool", "x", NULL};
	char *envp[] = {path_env, NULL};
	struct proc_opts o = opts_for(&x, argv);
	o.envp = envp;
	start(&x, &o);
	run_to_end(&x);
	assert_string_equal(x.res.out.data, "tool:x\n");
	teardown_run(&x);
	unlink(tool);
	rmdir(dir);
	free(tool);
	free(dir);
	free(path_env);
}

static void test_child_leads_its_own_session_and_group(void **state)
{
	(void)state;
	struct run x;
	run_argv(&x, (char *[]){"cat", "/proc/self/stat", NULL});
	const char *rp = strrchr(x.res.out.data, ')');
	assert_non_null(rp);
	char st;
	int ppid, pgrp, sid;
	assert_int_equal(sscanf(rp + 1, " %c %d %d %d", &st, &ppid, &pgrp, &sid), 4);
	int pid = atoi(x.res.out.data);
	assert_int_equal(pgrp, pid);
	assert_int_equal(sid, pid);
	assert_int_equal(ppid, getpid());
	teardown_run(&x);
}

static void test_no_descriptor_leaks_into_the_child(void **state)
{
	(void)state;
	int leak = open("/dev/null", O_RDONLY);   /* deliberately not O_CLOEXEC */
	assert_true(leak >= 0);
	struct run x;
	run_argv(&x, (char *[]){"ls", "/proc/self/fd", NULL});
	close(leak);
	/* 0-2 and the directory ls reads. */
	assert_string_equal(x.res.out.data, "0\n1\n2\n3\n");
	teardown_run(&x);
}

static void test_ignored_signals_are_reset_in_the_child(void **state)
{
	(void)state;
	struct sigaction ign = {.sa_handler = SIG_IGN}, old;
	sigaction(SIGTERM, &ign, &old);
	struct run x;
	run_argv(&x, (char *[]){"sh", "-c", "kill -TERM $$; sleep 5", NULL});
	sigaction(SIGTERM, &old, NULL);
	assert_int_equal(x.res.term_signal, SIGTERM);
	teardown_run(&x);
}

struct many {
	int done;
};

static void many_exit(struct proc *p, struct proc_result *r, void *ud)
{
	(void)p;
	struct many *m = ud;
	assert_int_equal(r->exit_code, 0);
	assert_string_equal(r->out.data, "x\n");
	m->done++;
}

static void test_many_concurrent_procs_all_end(void **state)
{
	(void)state;
	uv_loop_t loop;
	struct proc_runner *r;
	struct many m = {0};
	assert_int_equal(uv_loop_init(&loop), 0);
	assert_int_equal(proc_runner_new(&loop, &r), 0);
	char *argv[] = {"sh", "-c", "echo x", NULL};
	struct proc_opts o = {.argv = argv, .out_cap = 16, .on_exit = many_exit, .ud = &m};
	for (int i = 0; i < 64; i++) {
		struct proc *p;
		assert_int_equal(proc_start(r, &o, &p), 0);
	}
	assert_int_equal(proc_runner_count(r), 64);
	uv_run(&loop, UV_RUN_DEFAULT);
	assert_int_equal(m.done, 64);
	proc_runner_free(r);
	uv_run(&loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_exit_code_is_reported),
		cmocka_unit_test(test_success_exits_zero),
		cmocka_unit_test(test_signal_death_is_reported_not_ours),
		cmocka_unit_test(test_cpu_time_is_measured),
		cmocka_unit_test(test_stdout_and_stderr_are_captured_apart),
		cmocka_unit_test(test_output_written_just_before_exit_is_kept),
		cmocka_unit_test(test_stdin_is_dev_null),
		cmocka_unit_test(test_100mb_flood_is_counted_with_flat_memory),
		cmocka_unit_test(test_small_cap_keeps_the_head),
		cmocka_unit_test(test_closing_stdout_early_still_waits_for_exit),
		cmocka_unit_test(test_background_child_holding_the_pipe_does_not_hang),
		cmocka_unit_test(test_escaped_pipe_holder_is_killed_after_the_drain),
		cmocka_unit_test(test_escaped_daemon_survives_the_task_until_kill_all),
		cmocka_unit_test(test_orphans_are_reaped),
		cmocka_unit_test(test_timeout_kills_the_tree_even_a_term_ignoring_grandchild),
		cmocka_unit_test(test_timeout_reaches_descendants_that_left_the_group),
		cmocka_unit_test(test_soft_cancel_sends_sigterm),
		cmocka_unit_test(test_soft_cancel_escalates_to_sigkill_after_grace),
		cmocka_unit_test(test_hard_cancel_sends_sigkill_at_once),
		cmocka_unit_test(test_spawn_failures_return_errno_and_no_callback),
		cmocka_unit_test(test_path_comes_from_the_child_environment),
		cmocka_unit_test(test_child_leads_its_own_session_and_group),
		cmocka_unit_test(test_no_descriptor_leaks_into_the_child),
		cmocka_unit_test(test_ignored_signals_are_reset_in_the_child),
		cmocka_unit_test(test_many_concurrent_procs_all_end),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
