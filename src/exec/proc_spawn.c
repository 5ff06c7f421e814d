/* proc_spawn.c: starting a proc (see proc.c for its life after).
 *
 * One posix_spawn per proc, with the runner's attributes (a new session,
 * no blocked signals, default dispositions), stdin on /dev/null and
 * stdout/stderr on pipes whose read ends only we hold (close-on-exec, and
 * every descriptor from 3 up closed in the child). Invariant: the new pid
 * is in the registry before reg_lock is released, so no adopted runner's
 * reaper can take it for an orphan; and, guarded, no proc starts unless
 * the watchdog can be told of it.
 */
#include "exec/proc_int.h"
#include "util/clock.h"
#include "util/env.h"
#include "util/file.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

extern char **environ;

#define DEFAULT_PATH "/bin:/usr/bin"

/* execvp's search of file in path, done here because posix_spawnp looks at
 * our PATH, not the child's. Returns 0 and a malloc'd path, or -ENOENT,
 * -EACCES (found but not executable), -ENOMEM. */
static int search_path(const char *file, const char *path, char **out)
{
	size_t flen = strlen(file);
	int err = -ENOENT;
	for (const char *d = path;;) {
		const char *end = strchrnul(d, ':');
		size_t dlen = (size_t)(end - d);
		char *cand = malloc(dlen + flen + 3);
		if (!cand)
			return -ENOMEM;
		if (dlen)
			memcpy(cand, d, dlen);
		else
			cand[dlen++] = '.';
		cand[dlen] = '/';
		memcpy(cand + dlen + 1, file, flen + 1);
		struct stat st;
		if (stat(cand, &st) == 0 && S_ISREG(st.st_mode)) {
			if (access(cand, X_OK) == 0) {
				*out = cand;
				return 0;
			}
			err = -EACCES;
		}
		free(cand);
		if (!*end)
			return err;
		d = end + 1;
	}
}

/* A name without '/' is looked up in the child's PATH: by posix_spawnp
 * when that is ours (the common case, no extra work), else here. */
static int resolve(char *const *envp, const char **file, char **resolved, bool *use_path)
{
	const char *theirs = env_get(envp, "PATH"), *ours = env_get(NULL, "PATH");
	if (theirs == ours || (theirs && ours && !strcmp(theirs, ours)))
		return 0;
	int err = search_path(*file, theirs ? theirs : DEFAULT_PATH, resolved);
	if (err < 0)
		return err;
	*file = *resolved;
	*use_path = false;
	return 0;
}

static int file_actions(struct proc_runner *r, posix_spawn_file_actions_t *fa,
			int out_w, int err_w, const char *cwd)
{
	int e;
	if ((e = posix_spawn_file_actions_adddup2(fa, r->devnull, 0)) ||
	    (e = posix_spawn_file_actions_adddup2(fa, out_w, 1)) ||
	    (e = posix_spawn_file_actions_adddup2(fa, err_w, 2)) ||
	    (cwd && (e = posix_spawn_file_actions_addchdir_np(fa, cwd))) ||
	    (e = posix_spawn_file_actions_addclosefrom_np(fa, 3)))
		return -e;
	return 0;
}

int proc_start(struct proc_runner *r, const struct proc_opts *o, struct proc **out)
{
	if (!o->argv || !o->argv[0] || !o->on_exit)
		return -EINVAL;
	int po[2] = {-1, -1}, pe[2] = {-1, -1};
	posix_spawn_file_actions_t fa;
	bool fa_init = false;
	char *resolved = NULL;
	int err = 0;
	struct proc *p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	if (pipe2(po, O_CLOEXEC) < 0 || pipe2(pe, O_CLOEXEC) < 0) {
		err = -errno;
		goto out;
	}
	if ((err = file_lift_fd(&po[1])) < 0 || (err = file_lift_fd(&pe[1])) < 0)
		goto out;
	if ((err = -posix_spawn_file_actions_init(&fa)) < 0)
		goto out;
	fa_init = true;
	if ((err = file_actions(r, &fa, po[1], pe[1], o->cwd)) < 0)
		goto out;

	/* Guarded: no process starts unless the watchdog can be told of it. */
	if (r->wd && !r->wdw)
		proc_check_watchdog(r);   /* no pidfd tells us when it dies: look */
	if (r->marker && !r->wd && (err = proc_guard_start(r)) < 0)
		goto out;
	if (r->wd && (err = watchdog_reserve(r->wd)) < 0)
		goto out;

	char *const *envp = o->envp ? o->envp : environ;
	const char *file = o->argv[0];
	bool use_path = !strchr(file, '/');
	if (use_path && (err = resolve(envp, &file, &resolved, &use_path)) < 0)
		goto out;

	p->r = r;
	p->start_hr = uv_hrtime();
	p->res.start_ms = clock_wall_ms();
	pid_t pid;
	proc_reg_lock();
	int e = use_path ? posix_spawnp(&pid, file, &fa, &r->attr, o->argv, envp)
			 : posix_spawn(&pid, file, &fa, &r->attr, o->argv, envp);
	if (!e) {
		p->pid = pid;
		proc_track(r, p);
	}
	proc_reg_unlock();
	if (e) {
		err = -e;
		goto out;
	}
	if (r->wd)
		watchdog_watch(r->wd, pid);
	close(po[1]);
	close(pe[1]);
	po[1] = pe[1] = -1;

	p->kill_grace_ms = o->kill_grace_ms;
	p->drain_ms = o->drain_ms ? o->drain_ms : PROC_DRAIN_MS;
	p->out_cap = o->out_cap;
	p->on_output = o->on_output;
	p->on_exit = o->on_exit;
	p->ud = o->ud;
	p->res.exit_code = -1;
	p->s[0].fd = po[0];
	p->s[1].fd = pe[0];
	po[0] = pe[0] = -1;
	proc_watch(p, o->timeout_ms);
	*out = p;
	p = NULL;
out:
	if (fa_init)
		posix_spawn_file_actions_destroy(&fa);
	for (int i = 0; i < 2; i++) {
		if (po[i] >= 0)
			close(po[i]);
		if (pe[i] >= 0)
			close(pe[i]);
	}
	free(resolved);
	free(p);
	return err;
}

/* ---- the runner's spawn attributes ------------------------------------------ */

int proc_spawnattr_init(posix_spawnattr_t *a)
{
	sigset_t none, all;
	sigemptyset(&none);
	sigfillset(&all);
	sigdelset(&all, SIGKILL);
	sigdelset(&all, SIGSTOP);
	int e;
	if ((e = posix_spawnattr_init(a)))
		return -e;
	if ((e = posix_spawnattr_setflags(a, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK |
					     POSIX_SPAWN_SETSIGDEF)) ||
	    (e = posix_spawnattr_setsigmask(a, &none)) ||
	    (e = posix_spawnattr_setsigdefault(a, &all))) {
		posix_spawnattr_destroy(a);
		return -e;
	}
	return 0;
}
