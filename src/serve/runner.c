/* runner.c: runs as child processes: `dagrun run|rerun|resume`, each in a
 * session of its own, recording into the shared state directory.
 *
 * The server never runs a task: a child records its run in the store and
 * the server reads it there. A child's stdout and stderr go to
 * STATE/serve/children/RUN.N.log (what it says before its run is
 * recorded, such as a store it cannot open, is kept, never lost). Children
 * are reaped by the poller; one that ends before its run appears in the
 * store is reported (log line and a `run` event with status
 * `failed-to-start` and the end of its output).
 *
 * Lifetime (rule 4, README "dagrun serve"): a child outlives the server on
 * purpose: it is a whole `dagrun run` with its watchdog, in its own session
 * (a Ctrl-C at the server's terminal does not reach it), recording into the
 * store, and a server started again follows it from there. At its stop the
 * server logs each run it leaves going. Cancel sends SIGUSR1 (a cancel:
 * the run stops and is recorded cancelled) to the process that drives the
 * run, found by its lease in the store (this host,
 * a pid whose start time matches: never a recycled pid) through a pidfd.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "serve/serve_int.h"
#include "util/clock.h"
#include "util/pstat.h"
#include "util/runid.h"
#include "util/text.h"

extern char **environ;

struct argv {
	char **v;
	size_t n, cap;
	bool oom;
};

static void arg(struct argv *a, const char *s)
{
	if (a->oom)
		return;
	if (a->n + 2 > a->cap) {
		size_t cap = a->cap ? a->cap * 2 : 16;
		char **v = realloc(a->v, cap * sizeof(*v));
		if (!v) {
			a->oom = true;
			return;
		}
		a->v = v;
		a->cap = cap;
	}
	if (!(a->v[a->n] = strdup(s))) {
		a->oom = true;
		return;
	}
	a->v[++a->n] = NULL;
}

static void argv_free(struct argv *a)
{
	for (size_t i = 0; i < a->n; i++)
		free(a->v[i]);
	free(a->v);
}

/* --var NAME=VALUE for each string, number or boolean of vars. */
static int add_vars(struct argv *a, json_t *vars, char **why)
{
	const char *k;
	json_t *v;
	if (!vars)
		return 0;
	if (!json_is_object(vars)) {
		*why = strdup("\"variables\" must be an object of names to values");
		return -EINVAL;
	}
	json_object_foreach(vars, k, v) {
		char *val = NULL;
		if (json_is_string(v))
			val = buf_strf("%s=%s", k, json_string_value(v));
		else if (json_is_integer(v))
			val = buf_strf("%s=%lld", k, (long long)json_integer_value(v));
		else if (json_is_real(v))
			val = buf_strf("%s=%.17g", k, json_real_value(v));
		else if (json_is_boolean(v))
			val = buf_strf("%s=%s", k, json_is_true(v) ? "true" : "false");
		else {
			*why = buf_strf("variable '%s': a string, number or boolean", k);
			return -EINVAL;
		}
		if (!val || strchr(k, '=') || !*k || strlen(val) > 65536) {
			free(val);
			*why = buf_strf("variable '%s': a bad name or a value over 64 KiB", k);
			return -EINVAL;
		}
		arg(a, "--var");
		arg(a, val);
		free(val);
	}
	return 0;
}

/* The rerun options as the CLI takes them. */
static int add_rerun(struct argv *a, json_t *o, char **why)
{
	static const char *const known[] = {"failed", "from", "only", "downstream", "definition",
					    "variables"};
	json_t *v;
	const char *k;
	if (!o)
		return 0;
	/* An option not known, or of the wrong type, is refused, never
	 * ignored: a rerun must do what was asked or nothing. */
	json_object_foreach(o, k, v) {
		size_t i = 0;
		while (i < sizeof(known) / sizeof(*known) && strcmp(k, known[i]))
			i++;
		if (i == sizeof(known) / sizeof(*known) ||
		    ((!strcmp(k, "failed") || !strcmp(k, "downstream")) && !json_is_boolean(v)))
			goto bad;
	}
	if (json_is_true(json_object_get(o, "failed")))
		arg(a, "--failed");
	if ((v = json_object_get(o, "from"))) {
		if (!json_is_string(v) || !serve_name_ok(json_string_value(v)))
			goto bad;
		arg(a, "--from");
		arg(a, json_string_value(v));
	}
	if ((v = json_object_get(o, "only"))) {
		size_t i;
		json_t *x;
		if (!json_is_array(v))
			goto bad;
		json_array_foreach(v, i, x) {
			if (!json_is_string(x) || !serve_name_ok(json_string_value(x)))
				goto bad;
			arg(a, "--only");
			arg(a, json_string_value(x));
		}
	}
	if (json_is_true(json_object_get(o, "downstream")))
		arg(a, "--downstream");
	if ((v = json_object_get(o, "definition"))) {
		if (!json_is_string(v) || (strcmp(json_string_value(v), "snapshot") &&
					   strcmp(json_string_value(v), "current")))
			goto bad;
		arg(a, "--definition");
		arg(a, json_string_value(v));
	}
	return 0;
bad:
	*why = strdup("rerun options: failed (bool), from (a task), only (a list of tasks), "
		      "downstream (bool), definition (snapshot or current), variables");
	return -EINVAL;
}

/* Writes the trigger body to STATE/serve/triggers/ID.json (0600, a new
 * file): the child reads it with --trigger-file, so that the body is never
 * on a command line (`ps` shows those). Returns the path (malloc'd) or
 * NULL with -errno in *r. */
static char *write_trigger(struct serve *s, const char *id, const char *body, size_t len,
			   int *r)
{
	char *dir = serve_subdir(s, "triggers");
	char *path = dir ? buf_strf("%s/%s.json", dir, id) : NULL;
	int fd = path ? open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600) : -1;
	*r = 0;
	if (fd < 0) {
		*r = path ? -errno : -ENOMEM;
		goto out;
	}
	for (size_t off = 0; off < len;) {
		ssize_t n = write(fd, body + off, len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			*r = n < 0 ? -errno : -EIO;
			break;
		}
		off += (size_t)n;
	}
	if (close(fd) < 0 && !*r)
		*r = -errno;
	if (*r < 0)
		unlink(path);
out:
	free(dir);
	if (*r < 0) {
		free(path);
		path = NULL;
	}
	return path;
}

void runner_sweep_triggers(struct serve *s)
{
	char *dir = serve_subdir(s, "triggers");
	DIR *d = dir ? opendir(dir) : NULL;
	struct dirent *de;
	time_t now = time(NULL);
	int n = 0;
	while (d && (de = readdir(d))) {
		struct stat sb;
		if (de->d_name[0] == '.' ||
		    fstatat(dirfd(d), de->d_name, &sb, AT_SYMLINK_NOFOLLOW) < 0 ||
		    !S_ISREG(sb.st_mode) || now - sb.st_mtime < 60)
			continue;
		n += unlinkat(dirfd(d), de->d_name, 0) == 0;
	}
	if (d)
		closedir(d);
	if (n)
		serve_log(s, "removed %d trigger bod%s left by a server that stopped before its "
			  "runs had read them", n, n == 1 ? "y" : "ies");
	free(dir);
}

static int spawn(struct serve *s, char **argv, const char *log, pid_t *pid)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	posix_spawn_file_actions_init(&fa);
	posix_spawnattr_init(&at);
	sigset_t none, def;
	sigemptyset(&none);
	sigemptyset(&def);
	sigaddset(&def, SIGPIPE);
	sigaddset(&def, SIGINT);
	sigaddset(&def, SIGTERM);
	sigaddset(&def, SIGHUP);
	posix_spawnattr_setsigmask(&at, &none);
	posix_spawnattr_setsigdefault(&at, &def);
	posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK |
				 POSIX_SPAWN_SETSIGDEF);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, log, O_WRONLY | O_CREAT | O_APPEND, 0600);
	posix_spawn_file_actions_adddup2(&fa, 1, 2);
	posix_spawn_file_actions_addclosefrom_np(&fa, 3);
	posix_spawn_file_actions_addchdir_np(&fa, s->dir);
	int r = -posix_spawn(pid, argv[0], &fa, &at, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&at);
	return r;
}

int runner_spawn(struct serve *s, const struct start_req *rq, char id[72], pid_t *pid,
		 char **why)
{
	struct argv a = {0};
	char *dir = NULL, *log = NULL, *trig = NULL;
	int r = 0;
	*why = NULL;
	if (rq->kind == CHILD_RUN) {
		char made[RUNID_LEN + 1];
		if ((r = runid_new(made)) < 0)
			goto out;
		snprintf(id, 72, "%s", made);
	} else {
		snprintf(id, 72, "%s", rq->run_id);
	}
	static const char *const cmd[] = {"run", "rerun", "resume"};
	arg(&a, s->exe);
	arg(&a, cmd[rq->kind]);
	arg(&a, "--state");
	arg(&a, s->state);
	arg(&a, "--log-format");
	arg(&a, "json");
	if (s->o.secrets_file) {
		arg(&a, "--secrets-file");
		arg(&a, s->o.secrets_file);
	}
	if ((r = add_vars(&a, rq->vars, why)) < 0 ||
	    (rq->kind == CHILD_RERUN && (r = add_rerun(&a, rq->rerun, why)) < 0))
		goto out;
	if (rq->kind == CHILD_RUN && rq->trigger) {
		if (!(trig = write_trigger(s, id, rq->trigger, rq->trigger_len, &r))) {
			*why = buf_strf("cannot write the trigger body: %s", strerror(-r));
			goto out;
		}
		arg(&a, "--trigger-file");
		arg(&a, trig);
	}
	if (rq->kind == CHILD_RUN) {
		arg(&a, "--run-id");
		arg(&a, id);
		arg(&a, "--");
		arg(&a, rq->file);
	} else {
		arg(&a, "--");
		arg(&a, id);
	}
	if (a.oom || !(dir = serve_subdir(s, "children"))) {
		r = a.oom ? -ENOMEM : -errno;
		goto out;
	}
	pthread_mutex_lock(&s->run.mu);
	uint64_t n = ++s->run.seq;
	pthread_mutex_unlock(&s->run.mu);
	if (!(log = buf_strf("%s/%s.%llu.log", dir, id, (unsigned long long)n))) {
		r = -ENOMEM;
		goto out;
	}
	struct child *c = calloc(1, sizeof(*c));
	if (!c || !(c->workflow = strdup(rq->workflow ? rq->workflow : ""))) {
		free(c);
		r = -ENOMEM;
		goto out;
	}
	/* Spawned under the lock, so that the reaper never sees an exit of a
	 * pid that is not in the list yet. */
	pthread_mutex_lock(&s->run.mu);
	r = spawn(s, a.v, log, pid);
	if (r == 0) {
		snprintf(c->id, sizeof(c->id), "%s", id);
		c->kind = rq->kind;
		c->pid = *pid;
		c->start_ms = clock_wall_ms();
		c->scheduled_ms = rq->scheduled_ms;
		c->log = log;
		log = NULL;
		c->trigger = trig;
		trig = NULL;
		c->next = s->run.list;
		s->run.list = c;
		s->run.n_live++;
	}
	pthread_mutex_unlock(&s->run.mu);
	if (r < 0) {
		free(c->workflow);
		free(c);
		*why = buf_strf("cannot start %s: %s", s->exe, strerror(-r));
		goto out;
	}
	serve_log(s, "started `dagrun %s` for run %s%s%s (pid %d)", cmd[rq->kind], id,
		  rq->workflow ? " of " : "", rq->workflow ? rq->workflow : "", (int)*pid);
out:
	if (r < 0 && !*why && r != -EINVAL)
		*why = strdup(strerror(-r));
	argv_free(&a);
	free(dir);
	free(log);
	if (trig)
		unlink(trig);
	free(trig);
	return r;
}

char *runner_log_tail(const char *path, size_t n)
{
	int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	off_t end = lseek(fd, 0, SEEK_END);
	off_t from = end > (off_t)n ? end - (off_t)n : 0;
	char *data = malloc(n + 1);
	ssize_t got = data ? pread(fd, data, n, from) : -1;
	close(fd);
	if (got < 0) {
		free(data);
		return NULL;
	}
	struct buf b = BUF_INIT;
	text_utf8_clean(&b, data, (size_t)got);
	free(data);
	return b.data ? buf_steal(&b) : strdup("");
}

void runner_reap(struct serve *s)
{
	for (;;) {
		int ws;
		pthread_mutex_lock(&s->run.mu);
		pid_t pid = s->run.n_live ? waitpid(-1, &ws, WNOHANG) : 0;
		struct child *c = NULL;
		for (struct child *x = s->run.list; pid > 0 && x; x = x->next)
			if (x->pid == pid && !x->exited) {
				c = x;
				c->exited = true;
				c->wstatus = ws;
				c->end_ms = clock_wall_ms();
				s->run.n_live--;
				/* read by now, and recorded if the run was */
				if (c->trigger)
					unlink(c->trigger);
			}
		struct child copy = c ? *c : (struct child){0};
		pthread_mutex_unlock(&s->run.mu);
		if (pid <= 0)
			return;
		if (!c)
			continue;
		int code = WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws);
		serve_log(s, "run %s: its dagrun (pid %d) exited with status %d", copy.id,
			  (int)pid, code);
		/* Was the run recorded? If not, say why it could not start. */
		char *err = NULL;
		struct store *st = readers_get(s, &err);
		struct arena mem = ARENA_INIT;
		struct store_run_info ri;
		int r = st ? st->ops->find_run(st, copy.id, NULL, &mem, &ri, &err) : -EIO;
		readers_put(s, st);
		arena_free(&mem);
		free(err);
		if (r == -ENOENT && copy.kind == CHILD_RUN) {
			char *tail = runner_log_tail(copy.log, 2048);
			serve_log(s, "run %s was never recorded: dagrun exited %d: %s", copy.id, code,
				  tail ? tail : "");
			hub_publish(s, EV_RUN, copy.id,
				    json_pack("{s:s, s:o, s:s, s:i, s:o}", "id", copy.id, "workflow",
					      jstr(copy.workflow), "status", "failed-to-start",
					      "exitCode", code, "error", jstr(tail)));
			free(tail);
		}
	}
}

bool runner_find(struct serve *s, const char *id, struct child *out)
{
	bool found = false;
	pthread_mutex_lock(&s->run.mu);
	for (struct child *c = s->run.list; c && !found; c = c->next)
		if (!strcmp(c->id, id)) {
			*out = *c;
			found = true;
		}
	pthread_mutex_unlock(&s->run.mu);
	return found;
}

bool runner_exited(struct serve *s, pid_t pid, int *wstatus)
{
	bool ex = false;
	pthread_mutex_lock(&s->run.mu);
	for (struct child *c = s->run.list; c; c = c->next)
		if (c->pid == pid) {
			ex = c->exited;
			*wstatus = c->wstatus;
		}
	pthread_mutex_unlock(&s->run.mu);
	return ex;
}

uint32_t runner_live(struct serve *s)
{
	pthread_mutex_lock(&s->run.mu);
	uint32_t n = s->run.n_live;
	pthread_mutex_unlock(&s->run.mu);
	return n;
}

void runner_leave(struct serve *s)
{
	pthread_mutex_lock(&s->run.mu);
	for (struct child *c = s->run.list; c; c = c->next)
		if (!c->exited && kill(c->pid, 0) == 0)
			serve_log(s, "leaving run %s (pid %d) running: it goes on recording into %s; "
				  "`dagrun runs` and a new `dagrun serve` follow it, "
				  "`kill -USR1 %d` cancels it", c->id, (int)c->pid, s->state,
				  (int)c->pid);
	pthread_mutex_unlock(&s->run.mu);
}

void runner_free(struct serve *s)
{
	while (s->run.list) {
		struct child *c = s->run.list;
		s->run.list = c->next;
		free(c->log);
		free(c->workflow);
		free(c->trigger);
		free(c);
	}
}

int runner_signal_owner(struct serve *s, const struct store_run_info *ri, int sig)
{
	const struct store_lease *l = &ri->lease;
	if (!l->host || !l->pid || !l->alive)
		return -ESRCH;
	if (strcmp(l->host, s->host))
		return -EREMOTE;
	int fd = (int)syscall(SYS_pidfd_open, (pid_t)l->pid, 0);
	if (fd < 0)
		return -ESRCH;
	/* The pid is held by the pidfd: check it is still the owner. */
	int r = 0;
	if (pstat_start_time(l->pid, NULL) != l->pid_start)
		r = -ESRCH;
	else if (syscall(SYS_pidfd_send_signal, fd, sig, NULL, 0) < 0)
		r = -errno;
	close(fd);
	return r;
}
