/* test_proc.c: the process runner, with real processes on a real loop.
 *
 * Every test closes its handles and checks that the loop closes cleanly.
 * Timings only have lower bounds or generous upper bounds: the machine may
 * be loaded.
 */
#include <dirent.h>
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
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "exec/executor.h"
#include "exec/proc.h"
#include "exec/watchdog.h"

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

/* The same on a runner that adopts orphans (the process is a subreaper
 * until teardown_run). */
static void run_argv_adopted(struct run *x, char *const *argv)
{
	setup_run(x);
	assert_int_equal(proc_runner_adopt(x->r), 0);
	struct proc_opts o = opts_for(x, argv);
	start(x, &o);
	run_to_end(x);
}

static void sleep_ms(int ms);

static int subreaper(void)
{
	int v = -1;
	assert_int_equal(prctl(PR_GET_CHILD_SUBREAPER, &v, 0, 0, 0), 0);
	return v;
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

static void test_adopted_escaped_pipe_holder_is_killed_after_the_drain(void **state)
{
	(void)state;
	/* setsid leaves the group and session; its parent dies, so it is
	 * reparented to us (subreaper), and found by the pipe it holds. */
	char *pidfile = tmp_path("escaped");
	char *script;
	assert_true(asprintf(&script, "setsid sh -c 'echo $$ > %s; exec sleep 1000' & "
				      "while [ ! -s %s ]; do sleep 0.01; done", pidfile, pidfile) > 0);
	struct run x;
	run_argv_adopted(&x, (char *[]){"sh", "-c", script, NULL});
	assert_int_equal(x.res.exit_code, 0);
	pid_t esc = read_pid(pidfile);
	assert_true(esc > 0);
	assert_true(wait_gone(&x, esc, 10000));
	teardown_run(&x);
	unlink(pidfile);
	free(pidfile);
	free(script);
}

static void test_adopted_escaped_daemon_survives_the_task_until_kill_all(void **state)
{
	(void)state;
	char *pidfile = tmp_path("daemon");
	char *script;
	assert_true(asprintf(&script, "setsid sh -c 'echo $$ > %s; exec sleep 1000' "
				      ">/dev/null 2>&1 & "
				      "while [ ! -s %s ]; do sleep 0.01; done", pidfile, pidfile) > 0);
	struct run x;
	run_argv_adopted(&x, (char *[]){"sh", "-c", script, NULL});
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

static void test_adopted_orphans_are_reaped(void **state)
{
	(void)state;
	/* A double fork: the sleep's parent exits, we inherit it, it exits. */
	struct run x;
	run_argv_adopted(&x, (char *[]){"sh", "-c", "(sleep 0.2 >/dev/null 2>&1 & echo $!)", NULL});
	pid_t orphan = atoi(x.res.out.data);
	assert_true(orphan > 0);
	assert_true(wait_gone(&x, orphan, 10000));
	teardown_run(&x);
}

/* A guest runner (not adopted): a task's descendant that left its session
 * and its parent is not ours to find by parentage, but the watchdog's
 * sweep of the run's marker still takes it at the end. */
static void test_guest_escaped_daemon_is_swept_by_the_watchdog_at_the_end(void **state)
{
	(void)state;
	char *pidfile = tmp_path("guest-daemon");
	char *script, *entry;
	assert_true(asprintf(&script, "setsid sh -c 'echo $$ > %s; exec sleep 1000' "
				      ">/dev/null 2>&1 & "
				      "while [ ! -s %s ]; do sleep 0.01; done", pidfile, pidfile) > 0);
	assert_true(asprintf(&entry, "H10_GUEST=%d-%ld", (int)getpid(), (long)time(NULL)) > 0);
	char *envp[] = {"PATH=/usr/bin:/bin", entry, NULL};
	struct run x;
	setup_run(&x);
	assert_int_equal(proc_runner_guard(x.r, "H10_GUEST", strchr(entry, '=') + 1), 0);
	struct proc_opts o = opts_for(&x, (char *[]){"sh", "-c", script, NULL});
	o.envp = envp;
	start(&x, &o);
	run_to_end(&x);
	assert_int_equal(subreaper(), 0);
	pid_t d = read_pid(pidfile);
	assert_true(d > 0);
	assert_false(gone(d));
	proc_runner_kill_all(x.r);   /* a guest does not find it */
	sleep_ms(200);
	assert_false(gone(d));
	teardown_run(&x);            /* the watchdog's last sweep does */
	bool dead = false;
	for (int i = 0; i < 1000 && !(dead = gone(d)); i++)
		sleep_ms(10);
	if (!dead)
		kill(d, SIGKILL);
	assert_true(dead);
	unlink(pidfile);
	free(pidfile);
	free(script);
	free(entry);
}

static int sigchld_seen;

static void host_sigchld(int sig)
{
	(void)sig;
	sigchld_seen++;
}

/* A guest runner in a process with children of its own (one exited and
 * not yet reaped, one running) and its own SIGCHLD handler: running,
 * killing everything (kill_all) and freeing the runner leave them alone. */
static void test_guest_runner_leaves_the_process_children_and_handler_alone(void **state)
{
	(void)state;
	struct sigaction sa, before, after;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = host_sigchld;
	sigemptyset(&sa.sa_mask);
	assert_int_equal(sigaction(SIGCHLD, &sa, &before), 0);
	pid_t zombie = fork();
	assert_true(zombie >= 0);
	if (zombie == 0)
		_exit(42);
	pid_t running = fork();
	assert_true(running >= 0);
	if (running == 0) {
		pause();
		_exit(0);
	}
	struct run x;
	run_argv(&x, (char *[]){"sh", "-c", "sleep 0.1; echo ok", NULL});
	assert_string_equal(x.res.out.data, "ok\n");
	proc_runner_kill_all(x.r);
	teardown_run(&x);
	assert_int_equal(subreaper(), 0);
	assert_int_equal(sigaction(SIGCHLD, NULL, &after), 0);
	assert_ptr_equal(after.sa_handler, host_sigchld);
	assert_true(sigchld_seen > 0);   /* the kernel's, for our task: not hidden */
	int st = 0;
	assert_int_equal(waitpid(zombie, &st, 0), zombie);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 42);
	assert_int_equal(waitpid(running, &st, WNOHANG), 0);   /* still running */
	kill(running, SIGTERM);
	assert_int_equal(waitpid(running, &st, 0), running);
	assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGTERM);
	assert_int_equal(sigaction(SIGCHLD, &before, NULL), 0);
}

/* Adopting is undone with the last adopted runner: the subreaper flag and
 * the SIGCHLD disposition are what they were. */
static void test_adoption_ends_with_the_runner(void **state)
{
	(void)state;
	struct sigaction sa, before, during, after;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = host_sigchld;
	sigemptyset(&sa.sa_mask);
	assert_int_equal(sigaction(SIGCHLD, &sa, &before), 0);
	assert_int_equal(subreaper(), 0);
	struct run x;
	setup_run(&x);
	assert_int_equal(proc_runner_adopt(x.r), 0);
	assert_int_equal(subreaper(), 1);
	assert_int_equal(sigaction(SIGCHLD, NULL, &during), 0);
	assert_ptr_not_equal(during.sa_handler, host_sigchld);   /* libuv's */
	teardown_run(&x);
	assert_int_equal(subreaper(), 0);
	assert_int_equal(sigaction(SIGCHLD, NULL, &after), 0);
	assert_ptr_equal(after.sa_handler, host_sigchld);
	assert_int_equal(sigaction(SIGCHLD, &before, NULL), 0);
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


static void test_ignored_sigpipe_is_reset_in_the_child(void **state)
{
	(void)state;
	/* The CLI ignores SIGPIPE; a task's `yes | head -1` must still end
	 * quietly by SIGPIPE, not with yes failing on EPIPE. */
	struct sigaction ign = {.sa_handler = SIG_IGN}, old;
	sigaction(SIGPIPE, &ign, &old);
	struct run x;
	run_argv(&x, (char *[]){"sh", "-c",
		 "yes | head -n 1; grep SigIgn /proc/self/status", NULL});
	sigaction(SIGPIPE, &old, NULL);
	assert_int_equal(x.res.exit_code, 0);
	assert_int_equal(x.res.err.len, 0);   /* "yes: standard output: Broken pipe" */
	unsigned long long mask = 0;
	assert_int_equal(sscanf(x.res.out.data, "y\nSigIgn: %llx", &mask), 1);
	assert_int_equal(mask & (1ull << (SIGPIPE - 1)), 0);
	teardown_run(&x);
}

/* ---- the watchdog ----------------------------------------------------------- */

/* state, ppid, session of pid; false when gone. A zombie counts as gone. */
static bool stat_of(pid_t pid, int *ppid, int *sid)
{
	char path[64], buf[512];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return false;
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	char *rp = strrchr(buf, ')'), st;
	int pp, pg, sd;
	if (!rp || sscanf(rp + 1, " %c %d %d %d", &st, &pp, &pg, &sd) != 4 || st == 'Z')
		return false;
	if (ppid)
		*ppid = pp;
	if (sid)
		*sid = sd;
	return true;
}

/* Our child named dagrun-watchdog other than `not`, or 0. */
static pid_t find_watchdog_now(pid_t parent, pid_t not)
{
	DIR *d = opendir("/proc");
	pid_t found = 0;
	struct dirent *de;
	while (d && !found && (de = readdir(d))) {
		char path[300], comm[64] = "";
		snprintf(path, sizeof(path), "/proc/%s/comm", de->d_name);
		FILE *f = fopen(path, "r");
		if (!f)
			continue;
		if (!fgets(comm, sizeof(comm), f))
			comm[0] = '\0';
		fclose(f);
		int ppid;
		pid_t pid = atoi(de->d_name);
		if (!strcmp(comm, "dagrun-watchdog\n") && pid != not &&
		    stat_of(pid, &ppid, NULL) && ppid == parent)
			found = pid;
	}
	if (d)
		closedir(d);
	return found;
}

static void sleep_ms(int ms)
{
	nanosleep(&(struct timespec){ms / 1000, (ms % 1000) * 1000000L}, NULL);
}

/* The same, waiting up to 10 s for the fork to name itself. */
static pid_t find_watchdog(pid_t parent)
{
	pid_t wd = 0;
	for (int i = 0; i < 1000 && !(wd = find_watchdog_now(parent, 0)); i++)
		sleep_ms(10);
	return wd;
}

/* Runs the loop for about ms (a timer keeps it alive). */
static void spin_done(uv_timer_t *t)
{
	*(bool *)t->data = true;
	/* uv_run(UV_RUN_ONCE) runs due timers before it polls: without this,
	 * it would then block until some other event (a SIGCHLD used to be
	 * one, when every runner watched SIGCHLD). */
	uv_stop(t->loop);
}

/* Runs the loop for about ms, whatever else keeps it alive. */
static void spin(uv_loop_t *loop, int ms)
{
	uv_timer_t t;
	bool fired = false;
	uv_timer_init(loop, &t);
	t.data = &fired;
	uv_timer_start(&t, spin_done, (uint64_t)ms, 0);
	while (!fired)
		uv_run(loop, UV_RUN_ONCE);
	uv_close((uv_handle_t *)&t, NULL);
	uv_run(loop, UV_RUN_NOWAIT);
}

static void test_guarded_runner_has_a_quiet_watchdog_reaped_at_the_end(void **state)
{
	(void)state;
	struct run x;
	setup_run(&x);
	assert_int_equal(find_watchdog_now(getpid(), 0), 0);
	assert_int_equal(proc_runner_guard(x.r, "DAGRUN_RUN_ID", "t1"), 0);
	pid_t wd = find_watchdog(getpid());
	assert_true(wd > 0);
	int sid = 0;
	assert_true(stat_of(wd, NULL, &sid));
	assert_int_equal(sid, wd);   /* its own session: no Ctrl-C reaches it */
	/* What is meant for us or our terminal does not stop it. */
	kill(wd, SIGINT);
	kill(wd, SIGTERM);
	kill(wd, SIGHUP);
	kill(wd, SIGQUIT);
	kill(wd, SIGPIPE);
	sleep_ms(200);
	assert_true(stat_of(wd, NULL, NULL));
	/* It carries no environment: no other run's marker either. */
	char path[64], env[4096];
	snprintf(path, sizeof(path), "/proc/%d/environ", (int)wd);
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	size_t n = fread(env, 1, sizeof(env), f);
	fclose(f);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(env[i], 0);
	/* A task runs under it normally. */
	struct proc_opts o = opts_for(&x, (char *[]){"sh", "-c", "echo ok", NULL});
	start(&x, &o);
	run_to_end(&x);
	assert_string_equal(x.res.out.data, "ok\n");
	teardown_run(&x);
	/* Reaped by proc_runner_free(): not even a zombie is left. */
	char p2[64];
	snprintf(p2, sizeof(p2), "/proc/%d", (int)wd);
	assert_int_equal(access(p2, F_OK), -1);
}

static void doomed_exit(struct proc *p, struct proc_result *r, void *ud)
{
	(void)p;
	(void)r;
	(void)ud;
	_exit(6);   /* nothing may end before we are killed */
}

/* In a child process: a guarded runner starts `sleep 300` tasks (one of
 * them leaving its session), optionally has its watchdog killed (it must be
 * replaced), says so on fd `report`, then waits to be SIGKILLed. */
static void __attribute__((noreturn)) doomed_engine(int report, bool kill_watchdog,
						     const char *marker)
{
	uv_loop_t loop;
	struct proc_runner *r;
	if (uv_loop_init(&loop) < 0 || proc_runner_new(&loop, &r) < 0 ||
	    proc_runner_guard(r, "H9_DOOMED", marker) < 0)
		_exit(2);
	char *env_entry;
	if (asprintf(&env_entry, "H9_DOOMED=%s", marker) < 0)
		_exit(2);
	char *envp[] = {"PATH=/usr/bin:/bin", env_entry, NULL};
	char *sleeper[] = {"sleep", "300", NULL};
	char *escaper[] = {"sh", "-c", "setsid sleep 300 </dev/null >/dev/null 2>&1 & "
			   "exec sleep 300", NULL};
	struct proc_opts o = {.argv = sleeper, .envp = envp, .kill_grace_ms = 5000,
			      .out_cap = 64, .on_exit = doomed_exit};
	struct proc *p;
	for (int i = 0; i < 2; i++)
		if (proc_start(r, &o, &p) < 0)
			_exit(2);
	if (kill_watchdog) {
		pid_t wd = find_watchdog(getpid());
		if (wd <= 0)
			_exit(3);
		kill(wd, SIGKILL);
		/* The SIGCHLD watcher notices, reaps it and starts another. */
		pid_t again = 0;
		for (int i = 0; i < 500 && (again = find_watchdog_now(getpid(), wd)) <= 0; i++)
			spin(&loop, 20);
		if (again <= 0 || again == wd)
			_exit(4);
	}
	o.argv = escaper;
	if (proc_start(r, &o, &p) < 0)
		_exit(2);
	char ok = 1;
	if (write(report, &ok, 1) != 1)
		_exit(5);
	for (;;)
		spin(&loop, 1000);
}

/* Reaps our zombies (the dead child, and what it left if we are a
 * subreaper). */
static void reap_all(void)
{
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
}

/* Every process whose environment has the entry `marker`, not a zombie. */
static int count_marked(const char *entry)
{
	DIR *d = opendir("/proc");
	int n = 0;
	struct dirent *de;
	size_t len = strlen(entry) + 1;
	while (d && (de = readdir(d))) {
		if (de->d_name[0] < '1' || de->d_name[0] > '9')
			continue;
		char path[300];
		snprintf(path, sizeof(path), "/proc/%s/environ", de->d_name);
		FILE *f = fopen(path, "r");
		if (!f)
			continue;
		static char env[65536];
		size_t got = fread(env, 1, sizeof(env) - 1, f);
		fclose(f);
		env[got] = '\0';
		for (size_t i = 0; i + len <= got + 1; i += strlen(env + i) + 1)
			if (!memcmp(env + i, entry, len) && stat_of(atoi(de->d_name), NULL, NULL))
				n++;
	}
	if (d)
		closedir(d);
	return n;
}

static void check_doomed_engine(bool kill_watchdog)
{
	char marker[64], entry[80];
	snprintf(marker, sizeof(marker), "%d-%ld-%d", (int)getpid(), (long)time(NULL),
		 kill_watchdog);
	snprintf(entry, sizeof(entry), "H9_DOOMED=%s", marker);
	int fds[2];
	assert_int_equal(pipe(fds), 0);
	pid_t child = fork();
	assert_true(child >= 0);
	if (child == 0) {
		close(fds[0]);
		doomed_engine(fds[1], kill_watchdog, marker);
	}
	close(fds[1]);
	char ok = 0;
	ssize_t n = read(fds[0], &ok, 1);
	close(fds[0]);
	int st = 0;
	if (n != 1) {
		waitpid(child, &st, 0);
		fail_msg("the doomed engine failed to start its tasks (status %d)", st);
	}
	/* Two sleeps, the escaping task's sh (exec'd into sleep) and the sleep
	 * that left its session. */
	int before = 0;
	for (int i = 0; i < 3000 && (before = count_marked(entry)) < 4; i++)
		sleep_ms(10);
	kill(child, SIGKILL);   /* before any assertion: it holds our stdout */
	assert_int_equal(waitpid(child, &st, 0), child);
	assert_int_equal(before, 4);
	int left = -1;
	for (int i = 0; i < 3000 && left; i++) {   /* up to 30 s */
		reap_all();
		left = count_marked(entry);
		if (left)
			sleep_ms(10);
	}
	assert_int_equal(left, 0);
	reap_all();
}

static void test_sigkilled_engine_takes_its_tasks_with_it(void **state)
{
	(void)state;
	check_doomed_engine(false);
}

static void test_killed_watchdog_is_replaced_and_still_guards(void **state)
{
	(void)state;
	check_doomed_engine(true);
}

/* Makes pidfd_open fail with ENOSYS in this process, as on a kernel
 * before 5.3. Returns 0 or -errno. */
static int deny_pidfd_open(void)
{
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_pidfd_open, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (ENOSYS & SECCOMP_RET_DATA)),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = {sizeof(f) / sizeof(f[0]), f};
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ||
	    prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) < 0)
		return -errno;
	return 0;
}

static int blind_exit_code = -100;

static void blind_exit(struct proc *p, struct proc_result *r, void *ud)
{
	(void)p;
	(void)ud;
	blind_exit_code = r->exit_code;
}

/* In a child without pidfd_open: a guest runner (no SIGCHLD handler) still
 * sees a proc end that closed its pipes long before, and still replaces a
 * killed watchdog, by polling. Exits 0, or the number of the check that
 * failed. */
static void __attribute__((noreturn)) blind_runner(void)
{
	alarm(120);   /* a hang fails the test instead of hanging it */
	if (deny_pidfd_open() < 0)
		_exit(10);
	if (syscall(SYS_pidfd_open, getpid(), 0) >= 0 || errno != ENOSYS)
		_exit(11);
	uv_loop_t loop;
	struct proc_runner *r;
	if (uv_loop_init(&loop) < 0 || proc_runner_new(&loop, &r) < 0 ||
	    proc_runner_guard(r, "H10_BLIND", "x") < 0)
		_exit(12);
	char *quiet[] = {"sh", "-c", "exec >&- 2>&-; sleep 0.5; exit 5", NULL};
	struct proc_opts o = {.argv = quiet, .kill_grace_ms = 5000, .out_cap = 64,
			      .on_exit = blind_exit};
	struct proc *p;
	if (proc_start(r, &o, &p) < 0)
		_exit(13);
	uv_run(&loop, UV_RUN_DEFAULT);   /* only the polling keeps it alive */
	if (blind_exit_code != 5)
		_exit(14);
	pid_t wd = find_watchdog(getpid());
	if (wd <= 0)
		_exit(15);
	kill(wd, SIGKILL);
	pid_t again = 0;
	for (int i = 0; i < 500 && (again = find_watchdog_now(getpid(), wd)) <= 0; i++)
		spin(&loop, 20);
	if (again <= 0 || again == wd)
		_exit(16);
	char *ok[] = {"sh", "-c", "exit 0", NULL};
	o.argv = ok;
	blind_exit_code = -100;
	if (proc_start(r, &o, &p) < 0)
		_exit(17);
	uv_run(&loop, UV_RUN_DEFAULT);
	if (blind_exit_code != 0)
		_exit(18);
	proc_runner_free(r);
	uv_run(&loop, UV_RUN_DEFAULT);
	if (uv_loop_close(&loop) != 0)
		_exit(19);
	_exit(0);
}

static void test_runner_without_pidfd_polls_for_exits_and_its_watchdog(void **state)
{
	(void)state;
	pid_t child = fork();
	assert_true(child >= 0);
	if (child == 0)
		blind_runner();
	int st = 0;
	assert_int_equal(waitpid(child, &st, 0), child);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
}

struct held {
	struct run x;
	pid_t pid;
};

/* Starts a `sleep 300` in its own group on h's runner (set up already),
 * an unguarded one: only the watchdog under test knows of it. envp may be
 * NULL. posix_spawn() returns while the child is still inside execve(),
 * its new environment not yet readable in /proc. */
static void spawn_held(struct held *h, char **envp)
{
	struct proc_opts o = opts_for(&h->x, (char *[]){"sleep", "300", NULL});
	o.envp = envp;
	start(&h->x, &o);
	h->pid = proc_pid(h->x.p);
}

static void start_held(struct held *h, char **envp)
{
	setup_run(&h->x);
	spawn_held(h, envp);
}

/* Ends a held sleep: by the watchdog (killed) or by us; returns how it died. */
static int end_held(struct held *h)
{
	spin(h->x.loop, 50);
	if (!h->x.done) {
		proc_kill(h->x.p, true);
		run_to_end(&h->x);
		int sig = h->x.res.cancelled ? -1 : h->x.res.term_signal;
		teardown_run(&h->x);
		return sig;
	}
	int sig = h->x.res.cancelled ? -1 : h->x.res.term_signal;
	teardown_run(&h->x);
	return sig;
}

/* Runs h's loop until its sleep has ended, for at most ms. */
static void await_held(struct held *h, int ms)
{
	for (int i = 0; i < ms / 20 && !h->x.done; i++)
		spin(h->x.loop, 20);
}

/* The watchdog stopped (SIGSTOP) while we announce 300,000 records: the
 * pipe fills, the rest waits in the pending buffer, the loop never blocks;
 * once it runs again everything arrives in order (the last record wins). */
static void check_pending_order(bool last_is_watch)
{
	struct held h;
	start_held(&h, NULL);
	struct watchdog *w;
	assert_int_equal(watchdog_start(h.x.loop, NULL, -1, &w), 0);
	pid_t wd = watchdog_pid(w);
	assert_int_equal(kill(wd, SIGSTOP), 0);
	uint64_t t0 = uv_hrtime();
	for (int i = 0; i < 150000; i++) {
		assert_int_equal(watchdog_reserve(w), 0);
		watchdog_watch(w, h.pid);
		watchdog_unwatch(w, h.pid);
	}
	assert_int_equal(watchdog_reserve(w), 0);
	watchdog_watch(w, h.pid);
	if (!last_is_watch)
		watchdog_unwatch(w, h.pid);
	/* Not a bound on speed: a blocked write would have hung here. */
	assert_true(watchdog_pending(w) > 0);
	assert_true(uv_hrtime() - t0 < 60ull * 1000000000);
	kill(wd, SIGCONT);
	for (int i = 0; i < 3000 && watchdog_pending(w); i++)
		spin(h.x.loop, 10);
	assert_int_equal(watchdog_pending(w), 0);
	watchdog_stop(w);
	if (last_is_watch) {
		await_held(&h, 30000);
		assert_int_equal(end_held(&h), SIGKILL);   /* the watchdog's */
	} else {
		sleep_ms(100);
		assert_int_equal(end_held(&h), -1);        /* still there: ours */
	}
}

static void test_pending_records_reach_the_watchdog_in_order(void **state)
{
	(void)state;
	check_pending_order(true);
	check_pending_order(false);
}

/* The watchdog, ready before the processes start, sweeps as soon as they
 * have: it meets them inside execve() (environ reads empty) or after, and
 * takes the marked one either way. Rounds, as each catches a different
 * moment. */
static void test_watchdog_sweeps_marked_processes_it_was_not_told_of(void **state)
{
	(void)state;
	char entry[64];
	snprintf(entry, sizeof(entry), "H9_SWEEP=%d-%ld", (int)getpid(), (long)time(NULL));
	char *marked_env[] = {"PATH=/usr/bin:/bin", entry, NULL};
	char *plain_env[] = {"PATH=/usr/bin:/bin", "H9_SWEEP=other", NULL};
	for (int round = 0; round < 10; round++) {
		struct held a, b;
		setup_run(&a.x);
		setup_run(&b.x);
		struct watchdog *w;
		assert_int_equal(watchdog_start(a.x.loop, entry, -1, &w), 0);
		spawn_held(&b, plain_env);
		spawn_held(&a, marked_env);
		watchdog_stop(w);
		await_held(&a, 30000);
		assert_int_equal(end_held(&a), SIGKILL);
		assert_int_equal(end_held(&b), -1);   /* another marker: left alone */
	}
}

/* The same in this process (resume's sweep): a sweep right after the
 * spawn meets the process inside execve() and waits for its environment. */
static void test_sweep_judges_a_process_caught_inside_execve(void **state)
{
	(void)state;
	char entry[64];
	snprintf(entry, sizeof(entry), "H9_EXEC=%d-%ld", (int)getpid(), (long)time(NULL));
	char *marked_env[] = {"PATH=/usr/bin:/bin", entry, NULL};
	for (int round = 0; round < 10; round++) {
		struct held a;
		start_held(&a, marked_env);
		assert_true(watchdog_sweep(entry) >= 1);   /* a dying process may count twice */
		await_held(&a, 30000);
		assert_int_equal(end_held(&a), SIGKILL);
	}
}

static void test_cancelled_watchdog_kills_nothing(void **state)
{
	(void)state;
	struct held h;
	start_held(&h, NULL);
	struct watchdog *w;
	assert_int_equal(watchdog_start(h.x.loop, NULL, -1, &w), 0);
	assert_int_equal(watchdog_reserve(w), 0);
	watchdog_watch(w, h.pid);
	watchdog_cancel(w);
	sleep_ms(100);
	assert_int_equal(end_held(&h), -1);
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
		cmocka_unit_test(test_adopted_escaped_pipe_holder_is_killed_after_the_drain),
		cmocka_unit_test(test_adopted_escaped_daemon_survives_the_task_until_kill_all),
		cmocka_unit_test(test_adopted_orphans_are_reaped),
		cmocka_unit_test(test_guest_escaped_daemon_is_swept_by_the_watchdog_at_the_end),
		cmocka_unit_test(test_guest_runner_leaves_the_process_children_and_handler_alone),
		cmocka_unit_test(test_adoption_ends_with_the_runner),
		cmocka_unit_test(test_timeout_kills_the_tree_even_a_term_ignoring_grandchild),
		cmocka_unit_test(test_timeout_reaches_descendants_that_left_the_group),
		cmocka_unit_test(test_soft_cancel_sends_sigterm),
		cmocka_unit_test(test_soft_cancel_escalates_to_sigkill_after_grace),
		cmocka_unit_test(test_hard_cancel_sends_sigkill_at_once),
		cmocka_unit_test(test_ignored_sigpipe_is_reset_in_the_child),
		cmocka_unit_test(test_guarded_runner_has_a_quiet_watchdog_reaped_at_the_end),
		cmocka_unit_test(test_sigkilled_engine_takes_its_tasks_with_it),
		cmocka_unit_test(test_killed_watchdog_is_replaced_and_still_guards),
		cmocka_unit_test(test_runner_without_pidfd_polls_for_exits_and_its_watchdog),
		cmocka_unit_test(test_pending_records_reach_the_watchdog_in_order),
		cmocka_unit_test(test_watchdog_sweeps_marked_processes_it_was_not_told_of),
		cmocka_unit_test(test_sweep_judges_a_process_caught_inside_execve),
		cmocka_unit_test(test_cancelled_watchdog_kills_nothing),
		cmocka_unit_test(test_spawn_failures_return_errno_and_no_callback),
		cmocka_unit_test(test_path_comes_from_the_child_environment),
		cmocka_unit_test(test_child_leads_its_own_session_and_group),
		cmocka_unit_test(test_no_descriptor_leaks_into_the_child),
		cmocka_unit_test(test_ignored_signals_are_reset_in_the_child),
		cmocka_unit_test(test_many_concurrent_procs_all_end),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
