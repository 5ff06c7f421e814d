/* helpers.h: what the store's tests share: a temporary state directory, a
 * store opened in it, waiting for a barrier, a run with n tasks, children
 * that must not hang the suite. */
#ifndef DAGRUN_TESTS_STORE_HELPERS_H
#define DAGRUN_TESTS_STORE_HELPERS_H

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "store/store.h"

static inline uint64_t t_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static inline int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *f)
{
	(void)sb; (void)flag; (void)f;
	remove(p);
	return 0;
}

static inline void t_rmrf(const char *dir)
{
	nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* A fresh directory under /tmp (the caller frees and removes it). */
static inline char *t_tmpdir(void)
{
	char *d = strdup("/tmp/dagrun-store-XXXXXX");
	assert_non_null(d);
	assert_non_null(mkdtemp(d));
	return d;
}

/* "DIR/state" (the state directory, not created yet). */
static inline char *t_statedir(const char *tmp)
{
	char *s = NULL;
	assert_true(asprintf(&s, "%s/state", tmp) > 0);
	return s;
}

static inline struct store *t_open(const char *dir, struct store_opts *o)
{
	struct store_opts def = {0};
	if (!o)
		o = &def;
	o->dir = dir;
	struct store *s = NULL;
	char *err = NULL;
	int r = store_open(&store_sqlite_ops, o, &s, &err);
	if (r < 0)
		fail_msg("open %s: %d %s", dir, r, err ? err : "");
	free(err);
	return s;
}

struct t_wait {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool done;
	int status;
};

static inline void t_wait_cb(void *ud, int status)
{
	struct t_wait *w = ud;
	pthread_mutex_lock(&w->mu);
	w->done = true;
	w->status = status;
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
}

/* Barrier and wait for it (at most timeout_s). Returns its status, or
 * -ETIMEDOUT (the test then fails). */
static inline int t_sync_timeout(struct store *s, int timeout_s)
{
	struct t_wait w = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false, 0};
	int r = store_barrier(s, t_wait_cb, &w);
	if (r < 0)
		return r;
	struct timespec dl;
	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += timeout_s;
	pthread_mutex_lock(&w.mu);
	while (!w.done)
		if (pthread_cond_timedwait(&w.cv, &w.mu, &dl) == ETIMEDOUT)
			break;
	r = w.done ? w.status : -ETIMEDOUT;
	pthread_mutex_unlock(&w.mu);
	if (r == -ETIMEDOUT)
		fail_msg("barrier not called back within %d s", timeout_s);
	return r;
}

static inline int t_sync(struct store *s)
{
	return t_sync_timeout(s, 60);
}

/* Task ids "t0".."t<n-1>" (the caller frees with t_free_ids). */
static inline char **t_ids(uint32_t n, const char *prefix)
{
	char **ids = calloc(n ? n : 1, sizeof(*ids));
	assert_non_null(ids);
	for (uint32_t i = 0; i < n; i++)
		assert_true(asprintf(&ids[i], "%s%u", prefix, i) > 0);
	return ids;
}

static inline void t_free_ids(char **ids, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++)
		free(ids[i]);
	free(ids);
}

/* Begins a run of `workflow` with tasks prefix0..; returns its key. */
static inline uint64_t t_begin(struct store *s, const char *workflow, uint32_t n,
			       const char *run_id, uint32_t run_attempt, char *id_out)
{
	char **ids = t_ids(n, "t");
	struct store_run_begin b = {
		.run_id = run_id, .run_attempt = run_attempt ? run_attempt : 1,
		.workflow = workflow, .path = "wf.yaml",
		.definition = "tasks: []\n", .definition_len = 10,
		.vars_json = "{\"v\":1}", .task_ids = (const char *const *)ids,
		.n_tasks = n, .start_ms = t_now_ms(),
	};
	uint64_t key = 0;
	char *err = NULL;
	int r = s->ops->begin(s, &b, &key, id_out, &err);
	if (r < 0)
		fail_msg("begin: %d %s", r, err ? err : "");
	free(err);
	t_free_ids(ids, n);
	return key;
}

/* One successful attempt of task i: start, end, statuses. */
static inline void t_attempt(struct store *s, uint64_t key, uint32_t task, uint32_t attempt,
			     bool ok, uint64_t duration_ms)
{
	uint64_t now = t_now_ms();
	struct store_attempt_start a = {.task = task, .attempt = attempt, .start_ms = now,
					.pid = 1000 + task, .pgid = 1000 + task, .pid_start = 77};
	struct store_task_status_rec st = {.task = task, .status = STORE_TASK_RUNNING};
	assert_int_equal(store_task_status(s, key, &st), 0);
	assert_int_equal(store_attempt_start(s, key, &a), 0);
	struct store_attempt_end e = {.task = task, .attempt = attempt,
				      .flags = ok ? STORE_ATTEMPT_OK : 0,
				      .start_ms = now, .end_ms = now + duration_ms,
				      .duration_ms = duration_ms, .exit_code = ok ? 0 : 3,
				      .error_class = ok ? 0 : 2, .error = ok ? NULL : "exit 3",
				      .cpu_user_ms = 1, .max_rss_kb = 1234};
	assert_int_equal(store_attempt_end(s, key, &e), 0);
	st.status = ok ? STORE_TASK_COMPLETED : STORE_TASK_FAILED;
	assert_int_equal(store_task_status(s, key, &st), 0);
}

/* Waits for child pid at most timeout_s (then kills it); returns its
 * wait status. */
static inline int t_waitpid(pid_t pid, int timeout_s)
{
	int status = 0;
	for (int i = 0; i < timeout_s * 100; i++) {
		pid_t w = waitpid(pid, &status, WNOHANG);
		if (w == pid)
			return status;
		usleep(10000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	fail_msg("child %d did not finish within %d s", (int)pid, timeout_s);
	return status;
}

static inline char *t_read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	*len = 0;
	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	fseek(f, 0, SEEK_SET);
	char *b = malloc((size_t)n + 1);
	assert_non_null(b);
	size_t got = fread(b, 1, (size_t)n, f);
	fclose(f);
	b[got] = '\0';
	*len = got;
	return b;
}

#endif
