/* mkstate.c: records runs into a state directory through the store's API,
 * for the end-to-end tests of the history commands (tests/cli/
 * test_history_cli.py) and for measuring them (bench/README.md), while
 * `dagrun run` does not record yet.
 *
 *   mkstate DIR basic    a fixed history; prints a JSON object naming each
 *                        run's id (see record_basic)
 *   mkstate DIR live     a run held by this process: prints its id, then
 *                        obeys lines on stdin (see live), each answered by
 *                        "ok" once committed; at EOF it dies without
 *                        ending the run (its owner gone: interrupted)
 *   mkstate DIR many N   N runs of 10 tasks (5 workflows, one a minute)
 *
 * Every record is committed (a barrier waited for) before the program
 * says so on stdout, so a test that reads that line sees the records.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "store/store.h"

#define MIN_MS 60000ull
#define HOUR_MS (60 * MIN_MS)
#define DAY_MS (24 * HOUR_MS)

static void die(const char *what, int r, const char *err)
{
	fprintf(stderr, "mkstate: %s: %s%s%s\n", what, strerror(r < 0 ? -r : r),
		err ? ": " : "", err ? err : "");
	exit(1);
}

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static struct store *open_store(const char *dir, uint64_t log_cap)
{
	struct store_opts o = {.dir = dir, .log_cap = log_cap};
	struct store *s = NULL;
	char *err = NULL;
	int r = store_open(&store_sqlite_ops, &o, &s, &err);
	if (r < 0)
		die("open", r, err);
	return s;
}

struct wait {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool done;
	int status;
};

static void wait_cb(void *ud, int status)
{
	struct wait *w = ud;
	pthread_mutex_lock(&w->mu);
	w->done = true;
	w->status = status;
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
}

/* Waits until everything recorded so far is committed. */
static void sync_store(struct store *s)
{
	struct wait w = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false, 0};
	int r = store_barrier(s, wait_cb, &w);
	if (r < 0)
		die("barrier", r, NULL);
	pthread_mutex_lock(&w.mu);
	while (!w.done)
		pthread_cond_wait(&w.cv, &w.mu);
	pthread_mutex_unlock(&w.mu);
	if (w.status < 0)
		die("commit", w.status, NULL);
}

static uint64_t begin(struct store *s, const char *workflow, const char *const *ids,
		      uint32_t n, uint64_t start_ms, char id_out[STORE_RUN_ID_SIZE])
{
	struct store_run_begin b = {
		.run_attempt = 1, .workflow = workflow, .path = "wf.yaml",
		.definition = "tasks: []\n", .definition_len = 10, .vars_json = "{}",
		.task_ids = ids, .n_tasks = n, .start_ms = start_ms,
	};
	uint64_t key = 0;
	char *err = NULL;
	int r = s->ops->begin(s, &b, &key, id_out, &err);
	if (r < 0)
		die("begin", r, err);
	return key;
}

static void status(struct store *s, uint64_t key, uint32_t task, int st, int cls,
		   const char *error)
{
	struct store_task_status_rec t = {.task = task, .status = st, .error_class = cls,
					  .error = error};
	int r = store_task_status(s, key, &t);
	if (r < 0)
		die("task_status", r, NULL);
}

static void out(struct store *s, uint64_t key, uint32_t task, uint32_t attempt, int stream,
		const char *text)
{
	int r = store_output(s, key, task, attempt, stream, text, strlen(text));
	if (r < 0)
		die("output", r, NULL);
}

static void start(struct store *s, uint64_t key, uint32_t task, uint32_t attempt,
		  uint64_t at_ms)
{
	struct store_attempt_start a = {.task = task, .attempt = attempt, .start_ms = at_ms,
					.pid = 4000 + task, .pgid = 4000 + task, .pid_start = 1};
	int r = store_attempt_start(s, key, &a);
	if (r < 0)
		die("attempt_start", r, NULL);
}

/* An attempt's end; flags STORE_ATTEMPT_*, exit code, signal, class. */
static void end(struct store *s, uint64_t key, uint32_t task, uint32_t attempt,
		uint64_t at_ms, uint64_t dur_ms, unsigned flags, int exit_code, int sig,
		int cls, const char *error)
{
	struct store_attempt_end e = {
		.task = task, .attempt = attempt, .flags = flags, .start_ms = at_ms,
		.end_ms = at_ms + dur_ms, .duration_ms = dur_ms, .exit_code = exit_code,
		.signal = sig, .error_class = cls, .error = error, .cpu_user_ms = dur_ms / 2,
		.cpu_sys_ms = dur_ms / 10, .max_rss_kb = 2048, .prompt_tokens = -1,
		.completion_tokens = -1,
	};
	int r = store_attempt_end(s, key, &e);
	if (r < 0)
		die("attempt_end", r, NULL);
}

/* A whole attempt that succeeded, with output on stdout (and stderr). */
static void ok_attempt(struct store *s, uint64_t key, uint32_t task, uint64_t at_ms,
		       uint64_t dur_ms, const char *o, const char *e)
{
	status(s, key, task, STORE_TASK_RUNNING, 0, NULL);
	start(s, key, task, 1, at_ms);
	if (o)
		out(s, key, task, 1, STORE_STDOUT, o);
	if (e)
		out(s, key, task, 1, STORE_STDERR, e);
	end(s, key, task, 1, at_ms, dur_ms, STORE_ATTEMPT_OK, 0, 0, 0, NULL);
	status(s, key, task, STORE_TASK_COMPLETED, 0, NULL);
}

static void run_end(struct store *s, uint64_t key, int st, uint64_t end_ms, const char *error)
{
	int r = s->ops->run_end(s, key, st, end_ms, error);
	if (r < 0)
		die("run_end", r, NULL);
}

/* ---- basic ---------------------------------------------------------------------- */

/* A run of "archive" started `age` ago: one task, completed or failed. */
static void archive_run(struct store *s, uint64_t now, uint64_t age, bool ok, char *id)
{
	static const char *const ids[] = {"fetch"};
	uint64_t t0 = now - age;
	uint64_t key = begin(s, "archive", ids, 1, t0, id);
	status(s, key, 0, STORE_TASK_RUNNING, 0, NULL);
	start(s, key, 0, 1, t0);
	out(s, key, 0, 1, STORE_STDOUT, "fetched\n");
	end(s, key, 0, 1, t0, 5000, ok ? STORE_ATTEMPT_OK : 0, ok ? 0 : 2, 0, ok ? 0 : 2,
	    ok ? NULL : "exit status 2");
	status(s, key, 0, ok ? STORE_TASK_COMPLETED : STORE_TASK_FAILED, 0, NULL);
	run_end(s, key, ok ? STORE_RUN_COMPLETED : STORE_RUN_FAILED, t0 + 5000,
		ok ? NULL : "1 task failed");
}

/* "build", completed in 3m04s, 2 hours ago. Task indexes do not follow the
 * order the attempts started in: compile (0) at t0, lint (3) at t0+1s,
 * test (1) at t0+2s, package (2) at t0+3s, without output. */
static void completed_run(struct store *s, uint64_t now, char *id)
{
	static const char *const ids[] = {"compile", "test", "package", "lint"};
	uint64_t t0 = now - 2 * HOUR_MS;
	uint64_t key = begin(s, "build", ids, 4, t0, id);
	ok_attempt(s, key, 0, t0, 1234, "compiling main.c\n", "warning: unused x\n");
	ok_attempt(s, key, 3, t0 + 1000, 500, "lint ok\n", NULL);
	ok_attempt(s, key, 1, t0 + 2000, 90000, "test 1 ok\ntest 2 ok\n", NULL);
	ok_attempt(s, key, 2, t0 + 3000, 181000, NULL, NULL);
	run_end(s, key, STORE_RUN_COMPLETED, t0 + 184000, NULL);
}

/* "build", failed in 1.2s an hour ago: test failed its 3 attempts (output
 * on both streams, escape sequences in the last), package was skipped. */
static void failed_run(struct store *s, uint64_t now, char *id)
{
	static const char *const ids[] = {"compile", "test", "package"};
	uint64_t t0 = now - HOUR_MS;
	uint64_t key = begin(s, "build", ids, 3, t0, id);
	ok_attempt(s, key, 0, t0, 100, "compiled\n", NULL);
	char o[64], e[64];
	for (uint32_t a = 1; a <= 3; a++) {
		uint64_t at = t0 + 200 + (a - 1) * 300;
		status(s, key, 1, STORE_TASK_RUNNING, 0, NULL);
		start(s, key, 1, a, at);
		snprintf(o, sizeof(o), "test attempt %u out\n", a);
		snprintf(e, sizeof(e), "test attempt %u err\n", a);
		out(s, key, 1, a, STORE_STDOUT, o);
		out(s, key, 1, a, STORE_STDERR, e);
		if (a == 3)
			out(s, key, 1, a, STORE_STDOUT, "\x1b]0;pwned\x07\x1b[31mred\x1b[0m\n");
		end(s, key, 1, a, at, 250, 0, 1, 0, a < 3 ? 1 : 2,
		    a < 3 ? "exit status 1" : "tests failed: \x1b[31m2 failures\x1b[0m");
		status(s, key, 1, a < 3 ? STORE_TASK_RETRYING : STORE_TASK_FAILED, 0, NULL);
	}
	status(s, key, 2, STORE_TASK_SKIPPED, 3, "dependency 'test' failed");
	run_end(s, key, STORE_RUN_FAILED, t0 + 1234, "1 task failed");
}

/* "deploy", cancelled 30 minutes ago: upload stopped by SIGTERM, notify
 * never started. */
static void cancelled_run(struct store *s, uint64_t now, char *id)
{
	static const char *const ids[] = {"upload", "notify"};
	uint64_t t0 = now - 30 * MIN_MS;
	uint64_t key = begin(s, "deploy", ids, 2, t0, id);
	status(s, key, 0, STORE_TASK_RUNNING, 0, NULL);
	start(s, key, 0, 1, t0);
	out(s, key, 0, 1, STORE_STDOUT, "uploading\n");
	end(s, key, 0, 1, t0, 7000, STORE_ATTEMPT_CANCELLED, -1, 15, 0, "cancelled");
	status(s, key, 0, STORE_TASK_CANCELLED, 0, NULL);
	status(s, key, 1, STORE_TASK_CANCELLED, 0, NULL);
	run_end(s, key, STORE_RUN_CANCELLED, t0 + 7000, "interrupted by SIGINT");
}

/* A workflow name and task ids that would drive a terminal, invalid UTF-8,
 * and output over the log cap (4096 bytes). */
static void weird_run(struct store *s, uint64_t now, char *id)
{
	static const char *const ids[] = {"big", "bad\x1b[31mid", "bin\xff\xfe"};
	uint64_t t0 = now - 20 * MIN_MS;
	uint64_t key = begin(s, "evil\x1b[2Jname", ids, 3, t0, id);
	char line[101];
	memset(line, 'x', 99);
	line[99] = '\n';
	line[100] = '\0';
	status(s, key, 0, STORE_TASK_RUNNING, 0, NULL);
	start(s, key, 0, 1, t0);
	for (int i = 0; i < 50; i++)   /* 5000 bytes: 904 past the cap */
		out(s, key, 0, 1, STORE_STDOUT, line);
	end(s, key, 0, 1, t0, 10, STORE_ATTEMPT_OK, 0, 0, 0, NULL);
	status(s, key, 0, STORE_TASK_COMPLETED, 0, NULL);
	ok_attempt(s, key, 1, t0 + 20, 10, "hello\n", NULL);
	ok_attempt(s, key, 2, t0 + 30, 10, "\xff\xfe\n", NULL);
	run_end(s, key, STORE_RUN_COMPLETED, t0 + 100, NULL);
}

/* A run whose dagrun dies: a child records it and exits without ending it
 * (nor closing its store). Writes the id to fd. */
static void interrupted_child(const char *dir, int fd)
{
	static const char *const ids[] = {"migrate", "verify"};
	char id[STORE_RUN_ID_SIZE];
	struct store *s = open_store(dir, 4096);
	uint64_t t0 = now_ms() - 10 * MIN_MS;
	uint64_t key = begin(s, "deploy", ids, 2, t0, id);
	status(s, key, 0, STORE_TASK_RUNNING, 0, NULL);
	start(s, key, 0, 1, t0);
	out(s, key, 0, 1, STORE_STDOUT, "migrating\npartial line");
	sync_store(s);
	if (write(fd, id, strlen(id)) < 0)
		_exit(1);
	_exit(0);
}

static void record_basic(const char *dir)
{
	char arch[3][STORE_RUN_ID_SIZE], done[STORE_RUN_ID_SIZE], failed[STORE_RUN_ID_SIZE],
	     cancelled[STORE_RUN_ID_SIZE], weird[STORE_RUN_ID_SIZE], intr[STORE_RUN_ID_SIZE] = "";
	uint64_t now = now_ms();
	struct store *s = open_store(dir, 4096);
	archive_run(s, now, 40 * DAY_MS, true, arch[0]);
	archive_run(s, now, 35 * DAY_MS, false, arch[1]);
	archive_run(s, now, 10 * DAY_MS, true, arch[2]);
	completed_run(s, now, done);
	failed_run(s, now, failed);
	cancelled_run(s, now, cancelled);
	weird_run(s, now, weird);
	sync_store(s);
	int r = store_close(s);
	if (r < 0)
		die("close", r, NULL);
	/* No thread of ours runs now: fork is safe. */
	int p[2];
	if (pipe(p) < 0)
		die("pipe", -errno, NULL);
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0)
		die("fork", -errno, NULL);
	if (pid == 0) {
		close(p[0]);
		interrupted_child(dir, p[1]);
	}
	close(p[1]);
	ssize_t got = read(p[0], intr, sizeof(intr) - 1);
	intr[got > 0 ? got : 0] = '\0';
	close(p[0]);
	int ws = 0;
	waitpid(pid, &ws, 0);
	if (!WIFEXITED(ws) || WEXITSTATUS(ws) != 0 || !intr[0])
		die("the interrupted run's child failed", EIO, NULL);
	printf("{\"archive\": [\"%s\", \"%s\", \"%s\"], \"completed\": \"%s\", \"failed\": \"%s\", "
	       "\"cancelled\": \"%s\", \"weird\": \"%s\", \"interrupted\": \"%s\"}\n",
	       arch[0], arch[1], arch[2], done, failed, cancelled, weird, intr);
}

/* ---- live ----------------------------------------------------------------------- */

/* Commands, one a line; each answered by "ok" once committed:
 *   out TEXT       a line on task a's stdout
 *   err TEXT       a line on task a's stderr
 *   partial TEXT   TEXT on stdout, no newline
 *   end            a ends, b runs (output "b done"), the run completes;
 *                  the store is closed, then "ok", then exit 0
 * At EOF: exit at once, the run left running (its owner is gone). */
static void live(const char *dir)
{
	static const char *const ids[] = {"a", "b"};
	char id[STORE_RUN_ID_SIZE], line[4096];
	struct store *s = open_store(dir, 0);
	uint64_t t0 = now_ms();
	uint64_t key = begin(s, "live", ids, 2, t0, id);
	status(s, key, 0, STORE_TASK_RUNNING, 0, NULL);
	start(s, key, 0, 1, t0);
	out(s, key, 0, 1, STORE_STDOUT, "a line 1\n");
	sync_store(s);
	printf("%s\n", id);
	fflush(stdout);
	while (fgets(line, sizeof(line), stdin)) {
		line[strcspn(line, "\n")] = '\0';
		if (!strncmp(line, "out ", 4) || !strncmp(line, "err ", 4)) {
			strcat(line, "\n");
			out(s, key, 0, 1, line[0] == 'o' ? STORE_STDOUT : STORE_STDERR, line + 4);
		} else if (!strncmp(line, "partial ", 8)) {
			out(s, key, 0, 1, STORE_STDOUT, line + 8);
		} else if (!strcmp(line, "end")) {
			uint64_t t = now_ms();
			end(s, key, 0, 1, t0, t - t0, STORE_ATTEMPT_OK, 0, 0, 0, NULL);
			status(s, key, 0, STORE_TASK_COMPLETED, 0, NULL);
			ok_attempt(s, key, 1, t, 5, "b done\n", NULL);
			run_end(s, key, STORE_RUN_COMPLETED, t + 5, NULL);
			sync_store(s);
			int r = store_close(s);
			if (r < 0)
				die("close", r, NULL);
			printf("ok\n");
			fflush(stdout);
			exit(0);
		} else {
			fprintf(stderr, "mkstate live: unknown command '%s'\n", line);
			_exit(2);
		}
		sync_store(s);
		printf("ok\n");
		fflush(stdout);
	}
	_exit(0);   /* the owner dies: the run stays recorded as running */
}

/* ---- many ----------------------------------------------------------------------- */

static void many(const char *dir, unsigned long n)
{
	static const char *const ids[] = {"fetch", "unpack", "configure", "compile", "test-unit",
					  "test-int", "lint", "docs", "package", "publish"};
	static const char *const wfs[] = {"bulk0", "bulk1", "bulk2", "bulk3", "bulk4"};
	char id[STORE_RUN_ID_SIZE];
	struct store *s = open_store(dir, 0);
	uint64_t now = now_ms();
	for (unsigned long i = 0; i < n; i++) {
		uint64_t t0 = now - (n - i) * MIN_MS;
		uint64_t key = begin(s, wfs[i % 5], ids, 10, t0, id);
		bool fail = i % 10 == 3;
		for (uint32_t t = 0; t < 10; t++) {
			uint64_t at = t0 + t * 1000;
			status(s, key, t, STORE_TASK_RUNNING, 0, NULL);
			start(s, key, t, 1, at);
			bool bad = fail && t == 9;
			end(s, key, t, 1, at, 900, bad ? 0 : STORE_ATTEMPT_OK, bad ? 1 : 0, 0,
			    bad ? 2 : 0, bad ? "exit status 1" : NULL);
			status(s, key, t, bad ? STORE_TASK_FAILED : STORE_TASK_COMPLETED, 0, NULL);
		}
		run_end(s, key, fail ? STORE_RUN_FAILED : STORE_RUN_COMPLETED, t0 + 10000,
			fail ? "1 task failed" : NULL);
	}
	sync_store(s);
	int r = store_close(s);
	if (r < 0)
		die("close", r, NULL);
	printf("%lu runs\n", n);
}

int main(int argc, char **argv)
{
	if (argc >= 3 && !strcmp(argv[2], "basic")) {
		record_basic(argv[1]);
		return 0;
	}
	if (argc >= 3 && !strcmp(argv[2], "live")) {
		live(argv[1]);
		return 0;
	}
	if (argc >= 4 && !strcmp(argv[2], "many")) {
		many(argv[1], strtoul(argv[3], NULL, 10));
		return 0;
	}
	fprintf(stderr, "usage: mkstate DIR basic | DIR live | DIR many N\n");
	return 2;
}
