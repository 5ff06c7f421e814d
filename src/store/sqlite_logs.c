/* sqlite_logs.c: the attempts' output, in append-only files.
 *
 * DIR/logs/RUNID.RUNATTEMPT/TASK.ATTEMPT.out (and .err): one file per
 * attempt and stream, created on its first byte (no output, no file),
 * written by the writer thread only, up to log_cap bytes; what is past the
 * cap is counted, not written, and the counts go into the attempt's row
 * at its end. Invariant: a file holds a prefix of what the attempt wrote
 * to that stream, without gaps: once a byte is cut (past the cap, or in a
 * chunk the full queue could not take), every later byte of that stream
 * is cut too, and counted. At most MAX_FDS files
 * stay open; beyond, all are closed and reopened in append mode on their
 * next byte (the first open truncates what a dead process may have left).
 * With `durable`, a file is synced before its attempt's end is committed.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/sqlite_int.h"

#define MAX_FDS 64

struct sq_log {
	int fd[3];
	uint64_t logged[3], cut[3];
};

static const char *const ext[3] = {"", "out", "err"};

int sq_log_dir(const struct sq_store *st, const char *run_id, uint32_t run_attempt,
	       char *buf, size_t n)
{
	int w = snprintf(buf, n, "%s/%s.%u", st->logs, run_id, run_attempt);
	return w < 0 || (size_t)w >= n ? -ENAMETOOLONG : 0;
}

static int log_path(const struct sq_store *st, const struct sq_run *run, uint32_t task,
		    uint32_t attempt, int stream, char *buf, size_t n)
{
	int w = snprintf(buf, n, "%s/%s.%u/%u.%u.%s", st->logs, run->run_id,
			 run->run_attempt, task, attempt, ext[stream]);
	return w < 0 || (size_t)w >= n ? -ENAMETOOLONG : 0;
}

static void close_fd(struct sq_store *st, int *fd)
{
	if (*fd < 0)
		return;
	if (st->durable)
		fdatasync(*fd);
	close(*fd);
	*fd = -1;
	st->open_fds--;
}

static void close_all_fds(struct sq_store *st)
{
	struct sq_map *m = &st->logmap;
	for (uint32_t i = 0; m->e && i <= m->mask; i++) {
		if (m->e[i].gen != m->gen)
			continue;
		struct sq_log *l = m->e[i].v;
		close_fd(st, &l->fd[1]);
		close_fd(st, &l->fd[2]);
	}
}

static int open_log(struct sq_store *st, struct sq_run *run, uint32_t task,
		    uint32_t attempt, int stream, struct sq_log *l)
{
	char path[PATH_MAX];
	int r = log_path(st, run, task, attempt, stream, path, sizeof(path));
	if (r < 0)
		goto fail;
	if (!run->logdir_made) {
		char dir[PATH_MAX];
		sq_log_dir(st, run->run_id, run->run_attempt, dir, sizeof(dir));
		if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
			r = -errno;
			sq_set_error(st, r, "%s: cannot create the log directory: %s", dir,
				     strerror(-r));
			return r;
		}
		run->logdir_made = true;
	}
	if (st->open_fds >= MAX_FDS)
		close_all_fds(st);
	/* The first open truncates: a file left by a process that died
	 * before recording this attempt (resume numbers attempts from the
	 * recorded ones) holds nothing of this one. */
	l->fd[stream] = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC |
			     (l->logged[stream] ? 0 : O_TRUNC), 0600);
	if (l->fd[stream] < 0) {
		r = -errno;
		goto fail;
	}
	st->open_fds++;
	return 0;
fail:
	sq_set_error(st, r, "%s: cannot open a log file: %s", path, strerror(-r));
	return r;
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

int sq_log_append(struct sq_store *st, struct sq_rec *r)
{
	uint32_t task = r->u.output.task, attempt = r->u.output.attempt;
	int s = r->stream;
	struct sq_run *run = r->run;
	struct sq_log *l = sq_map_get(&st->logmap, run->key, (uint64_t)task << 32 | attempt);
	if (!l) {
		l = calloc(1, sizeof(*l));
		if (!l || sq_map_put(&st->logmap, run->key, (uint64_t)task << 32 | attempt, l) < 0) {
			free(l);
			sq_set_error(st, -ENOMEM, "%s: out of memory in the writer", st->path);
			return -ENOMEM;
		}
		l->fd[1] = l->fd[2] = -1;
	}
	uint64_t len = r->u.output.len, cut = r->u.output.cut;
	uint64_t room = l->cut[s] || cut || st->log_cap <= l->logged[s] ? 0
			: st->log_cap - l->logged[s];
	uint64_t n = len < room ? len : room;
	cut += len - n;
	l->cut[s] += cut;
	st->w.log_cut_bytes += cut;
	if (!n)
		return 0;
	if (l->fd[s] < 0) {
		int e = open_log(st, run, task, attempt, s, l);
		if (e < 0)
			return e;
	}
	int e = write_all(l->fd[s], (const char *)REC_TAIL(r, output), (size_t)n);
	if (e < 0) {
		char path[PATH_MAX];
		log_path(st, run, task, attempt, s, path, sizeof(path));
		sq_set_error(st, e, "%s: cannot write a log file: %s", path, strerror(-e));
		return e;
	}
	l->logged[s] += n;
	st->w.log_bytes += n;
	return 0;
}

int sq_log_finish(struct sq_store *st, uint64_t run, uint32_t task, uint32_t attempt,
		  uint64_t logged[3], uint64_t cut[3])
{
	uint64_t k = (uint64_t)task << 32 | attempt;
	struct sq_log *l = sq_map_get(&st->logmap, run, k);
	memset(logged, 0, 3 * sizeof(*logged));
	memset(cut, 0, 3 * sizeof(*cut));
	if (!l)
		return 0;
	for (int s = 1; s <= 2; s++) {
		logged[s] = l->logged[s];
		cut[s] = l->cut[s];
		close_fd(st, &l->fd[s]);
	}
	sq_map_del(&st->logmap, run, k);
	free(l);
	return 0;
}

void sq_log_close_run(struct sq_store *st, uint64_t run)
{
	struct sq_map *m = &st->logmap;
	for (uint32_t i = 0; m->e && i <= m->mask;) {
		struct sq_map_ent *e = &m->e[i];
		if (e->gen != m->gen || (run && e->a != run)) {
			i++;
			continue;
		}
		struct sq_log *l = e->v;
		close_fd(st, &l->fd[1]);
		close_fd(st, &l->fd[2]);
		free(l);
		/* Deleting shifts a later entry into slot i: look at it again. */
		sq_map_del(m, e->a, e->b);
	}
}

int sq_log_remove_dir(const char *dir, bool dry_run, uint64_t *bytes)
{
	DIR *d = opendir(dir);
	if (!d)
		return errno == ENOENT ? 0 : -errno;
	int r = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		struct stat sb;
		if (fstatat(dirfd(d), de->d_name, &sb, AT_SYMLINK_NOFOLLOW) == 0)
			*bytes += (uint64_t)sb.st_size;
		if (!dry_run && unlinkat(dirfd(d), de->d_name, 0) < 0 && errno != ENOENT)
			r = -errno;
	}
	closedir(d);
	if (!dry_run && !r && rmdir(dir) < 0 && errno != ENOENT)
		r = -errno;
	return r;
}

int sq_log_files(struct store *s, uint64_t run, uint32_t task, uint32_t attempt,
		 struct arena *mem, struct store_log_files *out, char **err)
{
	struct sq_store *st = sq_of(s);
	memset(out, 0, sizeof(*out));
	sqlite3_stmt *q = NULL;
	int r = 0;
	pthread_mutex_lock(&st->qlock);
	int rc = sqlite3_prepare_v2(st->qdb, "SELECT run_id, run_attempt FROM runs WHERE id=?1",
				    -1, &q, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_int64(q, 1, (int64_t)run);
		rc = sqlite3_step(q);
	}
	if (rc == SQLITE_DONE) {
		r = sq_err(err, -ENOENT, "%s: no run %llu", st->path, (unsigned long long)run);
		goto out;
	}
	if (rc != SQLITE_ROW) {
		r = sq_fail(st->qdb, rc, st->path, err, "cannot read a run");
		goto out;
	}
	struct sq_run tmp = {.run_id = (char *)sqlite3_column_text(q, 0),
			     .run_attempt = (uint32_t)sqlite3_column_int64(q, 1)};
	for (int i = 1; i <= 2; i++) {
		char path[PATH_MAX];
		struct stat sb;
		if (log_path(st, &tmp, task, attempt, i, path, sizeof(path)) < 0 ||
		    stat(path, &sb) < 0)
			continue;
		out->path[i] = arena_strdup(mem, path);
		out->size[i] = (uint64_t)sb.st_size;
		if (!out->path[i]) {
			r = sq_err(err, -ENOMEM, "out of memory");
			goto out;
		}
	}
out:
	sqlite3_finalize(q);
	pthread_mutex_unlock(&st->qlock);
	return r;
}
