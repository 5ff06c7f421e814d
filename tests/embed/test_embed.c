/* test_embed.c: libdagrun embedded in a host program that has children and
 * signal handlers of its own.
 *
 * The host (this process) installs SIGINT, SIGTERM and SIGCHLD handlers,
 * forks a child that exits at once and is not reaped yet (a zombie) and a
 * child that keeps running, then uses the public API only. Without
 * process_flags the library must leave all of that as it was: the host can
 * still waitpid both children and get their real status, its handlers are
 * still installed, the process is no subreaper, and no child of the
 * library's is left (every task and the watchdog reaped). The host stops a
 * run from its own signal handler with dagrun_engine_interrupt().
 */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "dagrun.h"

/* ---- the host ------------------------------------------------------------ */

static volatile sig_atomic_t got_int, got_term, got_chld;
static dagrun_engine *volatile interruptible;   /* for on_term */

static void on_int(int sig)
{
	(void)sig;
	got_int++;
}

/* The host's own SIGTERM handler: stops the run it embeds, if any. */
static void on_term(int sig)
{
	(void)sig;
	got_term++;
	dagrun_engine *e = interruptible;
	if (e)
		dagrun_engine_interrupt(e, 0);
}

static void on_chld(int sig)
{
	(void)sig;
	got_chld++;
}

struct host {
	pid_t zombie, running;
	char dir[64];
};

static void handle(int sig, void (*fn)(int))
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = fn;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	assert_int_equal(sigaction(sig, &sa, NULL), 0);
}

static void host_setup(struct host *h, bool children)
{
	memset(h, 0, sizeof(*h));
	got_int = got_term = got_chld = 0;
	handle(SIGINT, on_int);
	handle(SIGTERM, on_term);
	handle(SIGCHLD, on_chld);
	signal(SIGHUP, SIG_DFL);
	const char *tmp = getenv("TMPDIR");
	snprintf(h->dir, sizeof(h->dir), "%.40s/dagrun-embed-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	assert_non_null(mkdtemp(h->dir));
	if (!children)
		return;
	h->zombie = fork();
	assert_true(h->zombie >= 0);
	if (h->zombie == 0)
		_exit(7);
	h->running = fork();
	assert_true(h->running >= 0);
	if (h->running == 0) {
		for (;;)
			pause();
	}
	/* Peek until the first is a zombie, without reaping it. */
	siginfo_t info;
	memset(&info, 0, sizeof(info));
	assert_int_equal(waitid(P_PID, (id_t)h->zombie, &info, WEXITED | WNOWAIT), 0);
	assert_int_equal(info.si_pid, h->zombie);
}

static int subreaper(void)
{
	int v = -1;
	assert_int_equal(prctl(PR_GET_CHILD_SUBREAPER, &v, 0, 0, 0), 0);
	return v;
}

static void (*handler_of(int sig))(int)
{
	struct sigaction sa;
	assert_int_equal(sigaction(sig, NULL, &sa), 0);
	return sa.sa_handler;
}

/* The children of this process, from /proc (zombies included). */
static size_t children(pid_t *out, size_t max)
{
	DIR *d = opendir("/proc");
	assert_non_null(d);
	size_t n = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (de->d_name[0] < '1' || de->d_name[0] > '9')
			continue;
		char path[300], buf[512];
		snprintf(path, sizeof(path), "/proc/%s/stat", de->d_name);
		FILE *f = fopen(path, "r");
		if (!f)
			continue;
		size_t len = fread(buf, 1, sizeof(buf) - 1, f);
		fclose(f);
		buf[len] = '\0';
		char *rp = strrchr(buf, ')');
		char state;
		int ppid;
		if (rp && sscanf(rp + 1, " %c %d", &state, &ppid) == 2 && ppid == getpid() &&
		    n < max)
			out[n++] = atoi(de->d_name);
	}
	closedir(d);
	return n;
}

/* Everything the host had is as it was, and nothing of the library's is
 * left; then the host reaps its children itself. */
static void host_check(struct host *h)
{
	assert_ptr_equal(handler_of(SIGINT), on_int);
	assert_ptr_equal(handler_of(SIGTERM), on_term);
	assert_ptr_equal(handler_of(SIGCHLD), on_chld);
	assert_ptr_equal(handler_of(SIGHUP), SIG_DFL);
	assert_int_equal(subreaper(), 0);
	pid_t kids[16];
	size_t n = children(kids, 16);
	for (size_t i = 0; i < n; i++)
		if (kids[i] != h->zombie && kids[i] != h->running)
			fail_msg("child %d is not the host's: the library left it", (int)kids[i]);
	if (h->zombie) {
		int st = 0;
		assert_int_equal(n, 2);
		assert_int_equal(waitpid(h->zombie, &st, 0), h->zombie);
		assert_true(WIFEXITED(st));
		assert_int_equal(WEXITSTATUS(st), 7);
		assert_int_equal(waitpid(h->running, &st, WNOHANG), 0);   /* alive */
		assert_int_equal(kill(h->running, SIGKILL), 0);
		assert_int_equal(waitpid(h->running, &st, 0), h->running);
		assert_true(WIFSIGNALED(st));
		assert_int_equal(WTERMSIG(st), SIGKILL);
	} else {
		assert_int_equal(n, 0);
	}
}

static void host_teardown(struct host *h)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", h->dir);
	assert_int_equal(system(cmd), 0);
	signal(SIGINT, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	signal(SIGCHLD, SIG_DFL);
}

/* ---- the workflow ---------------------------------------------------------- */

static dagrun_workflow *load(struct host *h, const char *yaml)
{
	char name[128];
	snprintf(name, sizeof(name), "%s/wf.yaml", h->dir);
	dagrun_diags *d = dagrun_diags_new(0);
	dagrun_workflow *wf = NULL;
	int r = dagrun_workflow_load_buffer(name, yaml, strlen(yaml), &wf, d);
	if (r < 0)
		dagrun_diags_print(d, stderr, 0);
	assert_int_equal(r, 0);
	dagrun_diags_free(d);
	return wf;
}

static pid_t read_pid(struct host *h, const char *file)
{
	char path[128];
	snprintf(path, sizeof(path), "%s/%s", h->dir, file);
	FILE *f = fopen(path, "r");
	int pid = 0;
	if (f) {
		if (fscanf(f, "%d", &pid) != 1)
			pid = 0;
		fclose(f);
	}
	return pid;
}

static bool exists(struct host *h, const char *file)
{
	char path[128];
	snprintf(path, sizeof(path), "%s/%s", h->dir, file);
	return access(path, F_OK) == 0;
}

/* Whether pid has ended: no such process, or a zombie (of init or of
 * the host: host_check sees that no zombie of ours is left). Waits up to
 * 10 s for it: what a task left is killed, then reaped by its parent, a
 * moment later. */
static bool gone(pid_t pid)
{
	for (int i = 0; i < 1000; i++) {
		if (kill(pid, 0) < 0 && errno == ESRCH)
			return true;
		char path[64], buf[512];
		snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
		FILE *f = fopen(path, "r");
		size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
		if (f)
			fclose(f);
		buf[n] = '\0';
		char *rp = strrchr(buf, ')');
		if (rp && rp[1] == ' ' && rp[2] == 'Z')
			return true;
		nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
	}
	return false;
}

/* ---- tests ------------------------------------------------------------------ */

/* A run with real processes (a chain, a background child, a failure that
 * is retried, a timeout that kills a tree) in a host with children and
 * handlers of its own: all of the host's is untouched, all of the
 * library's is reaped. */
static void run_leaves_the_host_children_and_handlers_alone(void **state)
{
	(void)state;
	struct host h;
	host_setup(&h, true);
	dagrun_workflow *wf = load(&h,
		"name: embed\n"
		"tasks:\n"
		"  - id: a\n"
		"    command: sh -c 'echo $$ > a.pid; sleep 0.3; echo a'\n"
		"  - id: b\n"
		"    dependencies: [a]\n"
		"    command: sh -c 'echo $$ > b.pid; (sleep 0.2; echo bg) & wait'\n"
		"  - id: c\n"
		"    script: |\n"
		"      echo $$ > c.pid\n"
		"      exit 3\n"
		"    retry: { maxAttempts: 2, initialDelay: 100ms, jitter: none }\n"
		"  - id: d\n"
		"    command: sh -c 'echo $$ > d.pid; sleep 300 & sleep 300'\n"
		"    timeout: 1s\n"
		"    killGrace: 1s\n"
		"    retry: { maxAttempts: 1 }\n");
	dagrun_engine *e = NULL;
	assert_int_equal(dagrun_engine_new(&e, wf, NULL, NULL), 0);
	assert_int_equal(dagrun_engine_run(e), 1);   /* c and d failed */
	size_t counts[DAGRUN_CANCELLED + 1];
	dagrun_engine_counts(e, counts);
	assert_int_equal(counts[DAGRUN_COMPLETED], 2);
	assert_int_equal(counts[DAGRUN_FAILED], 2);
	dagrun_engine_free(e);
	dagrun_workflow_free(wf);
	const char *pids[] = {"a.pid", "b.pid", "c.pid", "d.pid"};
	for (size_t i = 0; i < 4; i++) {
		pid_t p = read_pid(&h, pids[i]);
		assert_true(p > 0);
		if (!gone(p))
			fail_msg("%s: process %d is still there", pids[i], (int)p);
	}
	assert_true(got_chld > 0);   /* the kernel told the host; nothing hid it */
	assert_int_equal(got_int + got_term, 0);
	host_check(&h);
	host_teardown(&h);
}

/* What runs nothing starts nothing and kills nothing: an engine that fails
 * to be made, a dry run, an engine freed without running. */
static void engine_that_does_not_run_leaves_the_host_alone(void **state)
{
	(void)state;
	struct host h;
	host_setup(&h, true);
	dagrun_workflow *wf = load(&h,
		"name: embed\n"
		"tasks:\n"
		"  - { id: a, command: touch a.ran }\n"
		"  - { id: b, dependencies: [a], command: touch b.ran }\n");
	const char *bad_vars[] = {"NOPE=1", NULL};
	dagrun_run_opts bad = {.vars = bad_vars};
	dagrun_diags *d = dagrun_diags_new(0);
	dagrun_engine *e = NULL;
	assert_int_equal(dagrun_engine_new(&e, wf, &bad, d), -EINVAL);
	assert_null(e);
	assert_true(dagrun_diags_errors(d) > 0);
	dagrun_run_opts bad_id = {.run_id = "../x"};
	assert_int_equal(dagrun_engine_new(&e, wf, &bad_id, d), -EINVAL);
	assert_int_equal(dagrun_engine_new(&e, wf, NULL, d), 0);
	char *plan = NULL;
	size_t plan_len = 0;
	FILE *out = open_memstream(&plan, &plan_len);
	assert_non_null(out);
	assert_int_equal(dagrun_engine_plan(e, out), 0);
	fclose(out);
	assert_string_equal(plan, "a\nb\n");
	free(plan);
	dagrun_engine_free(e);
	assert_false(exists(&h, "a.ran"));
	dagrun_diags_free(d);
	dagrun_workflow_free(wf);
	host_check(&h);
	host_teardown(&h);
}

struct waiter {
	struct host *h;
	pthread_t thread;
	bool started;
};

/* Waits for the long task to be there, then signals the host process: its
 * own SIGTERM handler interrupts the run. */
static void *send_term(void *arg)
{
	struct waiter *w = arg;
	for (int i = 0; i < 3000 && !read_pid(w->h, "long.pid"); i++)
		nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
	kill(getpid(), SIGTERM);
	return NULL;
}

static void on_event(void *ud, const dagrun_event *ev)
{
	struct waiter *w = ud;
	if (ev->type == DAGRUN_EV_ATTEMPT_START && !w->started) {
		w->started = true;
		assert_int_equal(pthread_create(&w->thread, NULL, send_term, w), 0);
	}
}

static uint64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* The host's SIGTERM handler calls dagrun_engine_interrupt() (from a signal
 * handler, on whatever thread took the signal): the running task is
 * stopped, its dependent never starts, the run returns 130. */
static void host_signal_handler_interrupts_the_run(void **state)
{
	(void)state;
	struct host h;
	host_setup(&h, true);
	dagrun_workflow *wf = load(&h,
		"name: embed\n"
		"tasks:\n"
		"  - id: long\n"
		"    command: [sh, -c, 'echo $$ > long.pid; exec sleep 300']\n"
		"  - { id: after, dependencies: [long], command: touch after.ran }\n");
	dagrun_engine *e = NULL;
	assert_int_equal(dagrun_engine_new(&e, wf, NULL, NULL), 0);
	struct waiter w = {.h = &h};
	assert_int_equal(dagrun_engine_observe(e, on_event, &w), 0);
	interruptible = e;
	uint64_t t0 = mono_ms();
	int r = dagrun_engine_run(e);
	uint64_t took = mono_ms() - t0;
	interruptible = NULL;
	assert_true(w.started);
	pthread_join(w.thread, NULL);
	assert_int_equal(r, 130);
	assert_true(took < 120 * 1000);   /* not the sleep's 300 s */
	assert_int_equal(got_term, 1);    /* the host's handler, not the library's */
	size_t counts[DAGRUN_CANCELLED + 1];
	dagrun_engine_counts(e, counts);
	assert_int_equal(counts[DAGRUN_CANCELLED], 1);
	assert_int_equal(counts[DAGRUN_COMPLETED] + counts[DAGRUN_FAILED], 0);
	dagrun_engine_free(e);
	dagrun_workflow_free(wf);
	assert_false(exists(&h, "after.ran"));
	pid_t p = read_pid(&h, "long.pid");
	assert_true(p > 0 && gone(p));
	host_check(&h);
	host_teardown(&h);
}

/* Interrupted before it runs: nothing starts. */
static void interrupt_before_the_run_starts_nothing(void **state)
{
	(void)state;
	struct host h;
	host_setup(&h, false);
	dagrun_workflow *wf = load(&h,
		"name: embed\n"
		"tasks:\n"
		"  - { id: a, command: touch a.ran }\n"
		"  - { id: b, command: touch b.ran }\n");
	dagrun_engine *e = NULL;
	assert_int_equal(dagrun_engine_new(&e, wf, NULL, NULL), 0);
	assert_int_equal(dagrun_engine_interrupt(e, 0), 0);
	assert_int_equal(dagrun_engine_run(e), 130);
	size_t counts[DAGRUN_CANCELLED + 1];
	dagrun_engine_counts(e, counts);
	assert_int_equal(counts[DAGRUN_COMPLETED] + counts[DAGRUN_FAILED] +
			 counts[DAGRUN_CANCELLED], 0);
	assert_int_equal(dagrun_engine_interrupt(e, 1), 0);   /* after: harmless */
	dagrun_engine_free(e);
	dagrun_workflow_free(wf);
	assert_false(exists(&h, "a.ran"));
	assert_false(exists(&h, "b.ran"));
	host_check(&h);
	host_teardown(&h);
}

/* DAGRUN_PROC_SIGNALS: during the run the library takes SIGTERM (a task
 * sends it to us) and stops with 143; afterwards the host's handler is
 * back, and it never saw the signal. */
static void signals_option_handles_then_gives_back_the_handlers(void **state)
{
	(void)state;
	struct host h;
	host_setup(&h, true);
	dagrun_workflow *wf = load(&h,
		"name: embed\n"
		"tasks:\n"
		"  - id: k\n"
		"    command: [sh, -c, 'echo $$ > k.pid; kill -TERM $PPID; exec sleep 300']\n");
	dagrun_run_opts ro = {.process_flags = DAGRUN_PROC_SIGNALS};
	dagrun_engine *e = NULL;
	assert_int_equal(dagrun_engine_new(&e, wf, &ro, NULL), 0);
	assert_int_equal(dagrun_engine_run(e), 143);
	assert_int_equal(got_term, 0);
	dagrun_engine_free(e);
	dagrun_workflow_free(wf);
	pid_t p = read_pid(&h, "k.pid");
	assert_true(p > 0 && gone(p));
	host_check(&h);
	host_teardown(&h);
}

static void note_subreaper(void *ud, const dagrun_event *ev)
{
	if (ev->type == DAGRUN_EV_ATTEMPT_START)
		*(int *)ud = subreaper();
}

/* DAGRUN_PROC_SUBREAPER: the process is a subreaper while the run runs,
 * and an escaped descendant (it left its session, its parent exited) is
 * reaped and killed; afterwards the flag is off again. */
static void subreaper_option_lasts_for_the_run(void **state)
{
	(void)state;
	struct host h;
	host_setup(&h, false);
	dagrun_workflow *wf = load(&h,
		"name: embed\n"
		"tasks:\n"
		"  - id: escape\n"
		"    command: sh -c 'setsid sh -c \"echo \\$\\$ > esc.pid; exec sleep 300\" "
		"</dev/null >/dev/null 2>&1 & while [ ! -s esc.pid ]; do sleep 0.01; done'\n");
	dagrun_run_opts ro = {.process_flags = DAGRUN_PROC_SUBREAPER};
	dagrun_engine *e = NULL;
	int during = -1;
	assert_int_equal(dagrun_engine_new(&e, wf, &ro, NULL), 0);
	assert_int_equal(subreaper(), 0);
	assert_int_equal(dagrun_engine_observe(e, note_subreaper, &during), 0);
	assert_int_equal(dagrun_engine_run(e), 0);
	assert_int_equal(during, 1);
	dagrun_engine_free(e);
	dagrun_workflow_free(wf);
	pid_t p = read_pid(&h, "esc.pid");
	assert_true(p > 0 && gone(p));
	host_check(&h);
	host_teardown(&h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(run_leaves_the_host_children_and_handlers_alone),
		cmocka_unit_test(engine_that_does_not_run_leaves_the_host_alone),
		cmocka_unit_test(host_signal_handler_interrupts_the_run),
		cmocka_unit_test(interrupt_before_the_run_starts_nothing),
		cmocka_unit_test(signals_option_handles_then_gives_back_the_handlers),
		cmocka_unit_test(subreaper_option_lasts_for_the_run),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
