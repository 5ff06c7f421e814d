/* proc_tree.c: finding and signalling a proc's process tree; the slow
 * path, taken only when something must be killed (see proc.c for the
 * life of a proc).
 *
 * A tree is what /proc shows at one moment: the proc's process group, its
 * session, its leader's descendants (parentage is the only link of those
 * that left both) and, for an adopted runner, our children that hold its
 * pipes. Invariant: the snapshot is taken before any signal, since a dying
 * leader would orphan its children; a pid is signalled only if it was
 * marked in that snapshot, never this process or init.
 */
#include "exec/proc_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum { UNKNOWN = 0, MARKED = 1, SPARED = 2 };

struct pinfo {
	pid_t pid, ppid, pgrp, sid;
	uint8_t mark;         /* UNKNOWN, MARKED or SPARED */
};

static bool read_stat(int procfd, const char *name, struct pinfo *pi)
{
	char path[64], buf[512];
	snprintf(path, sizeof(path), "%s/stat", name);
	int fd = openat(procfd, path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	char *rp = strrchr(buf, ')');   /* comm may hold spaces and ')' */
	char state;
	int ppid, pgrp, sid;
	if (!rp || sscanf(rp + 1, " %c %d %d %d", &state, &ppid, &pgrp, &sid) != 4)
		return false;
	pi->pid = (pid_t)atoi(name);
	pi->ppid = ppid;
	pi->pgrp = pgrp;
	pi->sid = sid;
	pi->mark = UNKNOWN;
	return true;
}

/* Every process in /proc. Returns 0 and a malloc'd array, or -errno. */
static int scan_procs(int *procfd, struct pinfo **out, size_t *n)
{
	*out = NULL;
	*n = 0;
	DIR *d = opendir("/proc");
	if (!d)
		return -errno;
	size_t cap = 0;
	struct dirent *de;
	int err = 0;
	while ((de = readdir(d))) {
		if (de->d_name[0] < '1' || de->d_name[0] > '9')
			continue;
		if (*n == cap) {
			size_t nc = cap ? cap * 2 : 256;
			struct pinfo *v = realloc(*out, nc * sizeof(*v));
			if (!v) {
				err = -ENOMEM;
				break;
			}
			*out = v;
			cap = nc;
		}
		if (read_stat(dirfd(d), de->d_name, &(*out)[*n]))
			(*n)++;
	}
	if (err < 0) {
		closedir(d);
		free(*out);
		*out = NULL;
		*n = 0;
		return err;
	}
	*procfd = dup(dirfd(d));
	closedir(d);
	return 0;
}

/* Whether process pid has an fd open on one of the pipes ino[0..n). */
static bool holds_pipe(int procfd, pid_t pid, const ino_t *ino, int n)
{
	char path[64], link[64];
	snprintf(path, sizeof(path), "%d/fd", (int)pid);
	int fd = openat(procfd, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return false;
	DIR *d = fdopendir(fd);
	if (!d) {
		close(fd);
		return false;
	}
	bool found = false;
	struct dirent *de;
	while (!found && (de = readdir(d))) {
		ssize_t len = readlinkat(dirfd(d), de->d_name, link, sizeof(link) - 1);
		if (len <= 0)
			continue;
		link[len] = '\0';
		unsigned long v;
		if (sscanf(link, "pipe:[%lu]", &v) != 1)
			continue;
		for (int i = 0; i < n; i++)
			found |= (ino_t)v == ino[i];
	}
	closedir(d);
	return found;
}

static int by_pid(const void *a, const void *b)
{
	pid_t x = ((const struct pinfo *)a)->pid, y = ((const struct pinfo *)b)->pid;
	return (x > y) - (x < y);
}

static struct pinfo *find_pid(struct pinfo *v, size_t n, pid_t pid)
{
	struct pinfo key = {.pid = pid};
	return bsearch(&key, v, n, sizeof(*v), by_pid);
}

/* Marks every descendant of a marked process: O(n log n) per level of the
 * tree, each chain walked once. The snapshot may be inconsistent (pids
 * reused while reading), hence the depth limit. */
static void mark_descendants(struct pinfo *v, size_t n)
{
	qsort(v, n, sizeof(*v), by_pid);
	for (size_t i = 0; i < n; i++) {
		struct pinfo *top = &v[i];
		for (int depth = 0; top && top->mark == UNKNOWN && depth < 4096; depth++)
			top = top->ppid > 0 ? find_pid(v, n, top->ppid) : NULL;
		uint8_t result = top && top->mark == MARKED ? MARKED : SPARED;
		struct pinfo *e = &v[i];
		for (int depth = 0; e && e->mark == UNKNOWN && depth < 4096; depth++) {
			e->mark = result;
			e = e->ppid > 0 ? find_pid(v, n, e->ppid) : NULL;
		}
	}
}

/* Signals the marked processes; returns how many. */
static size_t kill_marked(struct pinfo *v, size_t n, int sig, bool cont)
{
	pid_t self = getpid();
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		if (v[i].mark != MARKED || v[i].pid == self || v[i].pid <= 1)
			continue;
		kill(v[i].pid, sig);
		if (cont)
			kill(v[i].pid, SIGCONT);
		v[k++] = v[i];
	}
	return k;
}

/* Sends sig (then SIGCONT, so stopped processes see a SIGTERM) to p's
 * process group, to every process of its session, to the descendants of its
 * leader and, when the runner adopted orphans, to our children (reparented
 * orphans) that hold its pipes, with their descendants. A guest runner
 * never signals a child of ours it did not start: it may be the host's. */
void proc_signal_tree(struct proc *p, int sig)
{
	bool cont = sig != SIGKILL;
	p->res.signalled = true;
	ino_t ino[2];
	int n_ino = 0;
	for (int i = 0; i < 2; i++) {
		struct stat st;
		if (p->s[i].fd >= 0 && fstat(p->s[i].fd, &st) == 0)
			ino[n_ino++] = st.st_ino;
	}
	/* Snapshot the tree before signalling: a dying leader would orphan its
	 * children, and parentage is the only link of those that left. */
	struct pinfo *v = NULL;
	size_t n = 0;
	int procfd = -1;
	if (scan_procs(&procfd, &v, &n) == 0) {
		pid_t self = getpid();
		bool orphans = p->r->adopt && n_ino;
		for (size_t i = 0; i < n; i++) {
			struct pinfo *e = &v[i];
			if (e->sid == p->pid || e->pgrp == p->pid ||
			    (e->pid == p->pid && p->state == ST_RUNNING))
				e->mark = MARKED;
			else if (orphans && e->ppid == self && !proc_tracked_elsewhere(p->r, e->pid) &&
				 holds_pipe(procfd, e->pid, ino, n_ino))
				e->mark = MARKED;
		}
		close(procfd);
		mark_descendants(v, n);
	}
	kill(-p->pid, sig);
	if (cont)
		kill(-p->pid, SIGCONT);
	kill_marked(v, n, sig, cont);
	free(v);
}

/* Whether pid is still a running process (a zombie counts as gone: its
 * parent, maybe not us, has only to reap it). */
bool proc_still_running(pid_t pid)
{
	if (kill(pid, 0) < 0 && errno == ESRCH)
		return false;
	char path[64], buf[512];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno != ENOENT;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	char *rp = strrchr(buf, ')');
	return !(rp && rp[1] == ' ' && (rp[2] == 'Z' || rp[2] == 'X'));
}

void proc_runner_kill_all(struct proc_runner *r)
{
	if (!r->procs && !r->adopt)
		return;   /* a guest with nothing running has nothing to kill */
	/* Snapshot first, as in proc_signal_tree(). */
	struct pinfo *v = NULL;
	size_t n = 0;
	int procfd = -1;
	if (scan_procs(&procfd, &v, &n) == 0) {
		close(procfd);
		pid_t self = getpid();
		for (size_t i = 0; i < n; i++) {
			struct pinfo *e = &v[i];
			if (e->ppid == self && r->adopt) {
				/* An orphan we adopted (or another child of the
				 * process: adopting runners cannot tell). */
				if (!proc_tracked_elsewhere(r, e->pid))
					e->mark = MARKED;
				continue;
			}
			for (struct proc *p = r->procs; p && e->mark != MARKED; p = p->next)
				if (e->sid == p->pid || e->pgrp == p->pid)
					e->mark = MARKED;
		}
		mark_descendants(v, n);
	}
	for (struct proc *p = r->procs; p; p = p->next) {
		p->res.cancelled = true;
		p->res.signalled = true;
		kill(-p->pid, SIGKILL);
		uv_timer_stop(&p->timer);
		if (p->state == ST_EXITED)
			proc_drain_now(p);
	}
	size_t k = kill_marked(v, n, SIGKILL, false);
	pid_t *d = k ? realloc(r->doomed, (r->n_doomed + k) * sizeof(*d)) : NULL;
	if (d) {
		for (size_t i = 0; i < k; i++)
			d[r->n_doomed++] = v[i].pid;
		r->doomed = d;
	}
	free(v);
}
