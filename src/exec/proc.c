/* proc.c: spawning and watching child processes on a libuv loop; see proc.h.
 *
 * Life of a proc: RUNNING (spawned; pipes and a pidfd polled, an optional
 * timeout armed) -> EXITED (the leader is a zombie we peeked at with
 * WNOWAIT; pipes drain until EOF, at most drain_ms) -> DONE (leader reaped
 * with wait4 for its rusage, on_exit called, handles closing; freed when the
 * last handle has closed). Invariant: the timer handle stays open until DONE,
 * so a proc is never freed before on_exit; a stream's fd is >= 0 exactly
 * while its poll handle is open.
 *
 * The normal path costs posix_spawn, two pipe2, a pidfd_open and the epoll
 * registrations, plus, when guarded, one 8-byte write to the watchdog at the
 * start and one before the reap; /proc is scanned only when something must
 * be killed.
 *
 * A runner is a guest in its process unless adopted (proc_runner_adopt):
 * it waits only for its own pids (waitid/wait4 on each, P_PID, never
 * P_ALL), signals only its procs' groups, sessions and descendants, and
 * installs no signal handler. A proc's exit is seen through a pidfd; when
 * none can be opened (old kernel, no descriptor left), through the runner's
 * tick timer, which polls such procs (and a watchdog without a pidfd)
 * every TICK_MS.
 */
#include "exec/proc.h"
#include "exec/watchdog.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define READ_CHUNK (64 * 1024)
#define READS_PER_WAKEUP 16       /* 1 MiB, then let other handles run */
#define DEFAULT_PATH "/bin:/usr/bin"
#define DOOMED_WAIT_MS 2000       /* how long freeing a runner waits for them */
#define TICK_MS 50                /* polling of procs without a pidfd */

enum proc_state { ST_RUNNING, ST_EXITED, ST_DONE };

struct stream {
	uv_poll_t poll;
	int fd;                   /* our read end; -1 once closed */
};

struct proc {
	struct proc_runner *r;
	struct proc *prev, *next;  /* r->procs; changed under reg_lock */
	pid_t pid;
	int pidfd;                 /* -1: none, SIGCHLD tells the exit */
	uv_poll_t pidfd_poll;
	uv_timer_t timer;          /* timeout, then grace, then drain */
	struct stream s[2];        /* [0] stdout, [1] stderr */
	enum proc_state state;
	int handles;               /* handles initialised and not yet closed */
	bool term_sent;            /* SIGTERM sent, the grace timer runs */
	bool blind;                /* no pidfd: the runner's tick polls it */
	bool lost;                 /* someone else reaped the leader */
	uint64_t start_hr;
	uint64_t kill_grace_ms, drain_ms;
	size_t out_cap;
	proc_output_cb on_output;
	proc_exit_cb on_exit;
	void *ud;
	struct proc_result res;
};

/* A pidfd poll on a runner's watchdog: tells when it died. Freed when its
 * handle has closed, which may be after the watchdog (and r) are gone. */
struct wd_watch {
	uv_poll_t poll;
	struct proc_runner *r;
	int fd;
};

struct proc_runner {
	uv_loop_t *loop;
	uv_signal_t sigchld;       /* adopted runners only */
	uv_timer_t tick;           /* polls blind procs / a blind watchdog */
	int handles;               /* of the two above, open */
	bool adopt;                /* proc_runner_adopt() succeeded */
	unsigned blind;            /* running procs without a pidfd */
	struct proc *procs;        /* running (not DONE); changed under reg_lock */
	unsigned count;
	bool reaping;
	struct proc_runner *reg_prev, *reg_next;
	posix_spawnattr_t attr;    /* the same for every spawn */
	int devnull;
	char *scratch;             /* READ_CHUNK bytes for read() */
	pid_t *doomed;             /* what proc_runner_kill_all() killed */
	size_t n_doomed;
	char *marker;              /* NAME=VALUE once guarded, else NULL */
	struct watchdog *wd;       /* while guarded; NULL: none (yet, or again) */
	pid_t wd_pid;              /* wd's process; changed under reg_lock */
	int hold_fd;               /* kept open by every watchdog, or -1 */
	struct wd_watch *wdw;      /* pidfd poll on wd, or NULL (blind: tick) */
	bool freeing;
};

/* The process-wide registry of runners: an adopted runner's reaping is
 * process-wide (see proc.h), so it must tell every runner's leaders and
 * watchdogs from orphans. reg_lock also covers posix_spawn up to the new
 * proc's insertion, so no reaper can take a fresh child for an orphan, and
 * the adoption state below: while adopters > 0 the process is a child
 * subreaper and libuv handles SIGCHLD; the last one to go restores what
 * was there before the first. */
static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static struct proc_runner *reg_head;
static unsigned adopters;
static int subreaper_before;
static struct sigaction sigchld_before;

static uint64_t wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Caller holds reg_lock. */
static struct proc *registry_find(pid_t pid)
{
	for (struct proc_runner *r = reg_head; r; r = r->reg_next)
		for (struct proc *p = r->procs; p; p = p->next)
			if (p->pid == pid)
				return p;
	return NULL;
}

/* The runner whose watchdog is pid, or NULL. Caller holds reg_lock. */
static struct proc_runner *watchdog_owner(pid_t pid)
{
	for (struct proc_runner *r = reg_head; r; r = r->reg_next)
		if (r->wd_pid == pid)
			return r;
	return NULL;
}

static void track(struct proc_runner *r, struct proc *p)
{
	p->prev = NULL;
	p->next = r->procs;
	if (r->procs)
		r->procs->prev = p;
	r->procs = p;
	r->count++;
}

static void untrack(struct proc *p)
{
	struct proc_runner *r = p->r;
	pthread_mutex_lock(&reg_lock);
	if (p->prev)
		p->prev->next = p->next;
	else
		r->procs = p->next;
	if (p->next)
		p->next->prev = p->prev;
	p->prev = p->next = NULL;
	r->count--;
	pthread_mutex_unlock(&reg_lock);
}

/* ---- finding and signalling a process tree (the slow path) ------------- */

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

/* Whether pid is a leader tracked by another runner than r, or the
 * watchdog of any runner (r's own included): not an orphan to kill. */
static bool tracked_elsewhere(struct proc_runner *r, pid_t pid)
{
	pthread_mutex_lock(&reg_lock);
	struct proc *p = registry_find(pid);
	bool other = (p && p->r != r) || (pid > 0 && watchdog_owner(pid));
	pthread_mutex_unlock(&reg_lock);
	return other;
}

/* Sends sig (then SIGCONT, so stopped processes see a SIGTERM) to p's
 * process group, to every process of its session, to the descendants of its
 * leader and, when the runner adopted orphans, to our children (reparented
 * orphans) that hold its pipes, with their descendants. A guest runner
 * never signals a child of ours it did not start: it may be the host's. */
static void signal_tree(struct proc *p, int sig)
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
			else if (orphans && e->ppid == self && !tracked_elsewhere(p->r, e->pid) &&
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

/* ---- output ------------------------------------------------------------- */

/* Makes room in b for add more bytes without ever holding more than cap + 1. */
static int reserve(struct buf *b, size_t add, size_t cap)
{
	size_t need = b->len + add + 1;
	if (need <= b->alloc)
		return 0;
	size_t n = b->alloc ? b->alloc * 2 : 4096;
	if (n < need)
		n = need;
	if (n > cap + 1)
		n = cap + 1;
	char *d = realloc(b->data, n);
	if (!d)
		return -ENOMEM;
	b->data = d;
	b->alloc = n;
	return 0;
}

static void capture(struct proc *p, int i, const char *data, size_t n)
{
	struct buf *b = i == 0 ? &p->res.out : &p->res.err;
	size_t room = p->out_cap > b->len ? p->out_cap - b->len : 0;
	size_t keep = n < room ? n : room;
	if (keep && (reserve(b, keep, p->out_cap) < 0 || buf_add(b, data, keep) < 0))
		keep = 0;
	if (i == 0) {
		p->res.out_bytes += n;
		p->res.out_truncated |= keep < n;
	} else {
		p->res.err_bytes += n;
		p->res.err_truncated |= keep < n;
	}
	if (p->on_output)
		p->on_output(p, i == 0 ? PROC_STDOUT : PROC_STDERR, data, n, p->ud);
}

static void on_closed(uv_handle_t *h)
{
	struct proc *p = h->data;
	if (--p->handles > 0)
		return;
	buf_free(&p->res.out);
	buf_free(&p->res.err);
	free(p);
}

static void close_stream(struct proc *p, int i)
{
	if (p->s[i].fd < 0)
		return;
	uv_close((uv_handle_t *)&p->s[i].poll, on_closed);
	close(p->s[i].fd);
	p->s[i].fd = -1;
}

/* Reads up to max chunks of stream i; closes it at EOF or on error. */
static void drain(struct proc *p, int i, int max)
{
	char *chunk = p->r->scratch;
	for (int k = 0; k < max && p->s[i].fd >= 0; k++) {
		ssize_t n = read(p->s[i].fd, chunk, READ_CHUNK);
		if (n > 0) {
			capture(p, i, chunk, (size_t)n);
		} else if (n < 0 && errno == EINTR) {
			continue;
		} else if (n < 0 && errno == EAGAIN) {
			return;
		} else {
			close_stream(p, i);
		}
	}
}

/* ---- the end of a proc -------------------------------------------------- */

static void reap_orphans(struct proc_runner *r);

static void finish(struct proc *p)
{
	struct proc_runner *r = p->r;
	p->state = ST_DONE;
	/* Before the reap: from then on the group id may be reused. */
	if (r->wd)
		watchdog_unwatch(r->wd, p->pid);
	if (!p->lost) {
		struct rusage ru;
		int status;
		pid_t w;
		do
			w = wait4(p->pid, &status, WNOHANG, &ru);
		while (w < 0 && errno == EINTR);
		if (w == p->pid) {
			p->res.cpu_user_ms = (uint64_t)ru.ru_utime.tv_sec * 1000 +
					     (uint64_t)ru.ru_utime.tv_usec / 1000;
			p->res.cpu_sys_ms = (uint64_t)ru.ru_stime.tv_sec * 1000 +
					    (uint64_t)ru.ru_stime.tv_usec / 1000;
			p->res.max_rss_kb = ru.ru_maxrss;
		}
	}
	untrack(p);
	close_stream(p, 0);
	close_stream(p, 1);
	uv_timer_stop(&p->timer);
	uv_close((uv_handle_t *)&p->timer, on_closed);
	/* Our zombie may have hidden other zombies from the reaper's peek. */
	if (r->adopt)
		reap_orphans(r);
	/* Handles close on a later loop turn: p stays valid during the call. */
	p->on_exit(p, &p->res, p->ud);
}

static void maybe_finish(struct proc *p)
{
	if (p->state == ST_EXITED && p->s[0].fd < 0 && p->s[1].fd < 0)
		finish(p);
}

static void on_drain_timeout(uv_timer_t *t)
{
	struct proc *p = t->data;
	/* Whatever still holds the pipes is the task's leftover: kill it, take
	 * what is already in the pipes, and end. */
	if (p->s[0].fd >= 0 || p->s[1].fd >= 0)
		signal_tree(p, SIGKILL);
	for (int i = 0; i < 2; i++) {
		drain(p, i, READS_PER_WAKEUP);
		close_stream(p, i);
	}
	finish(p);
}

static void tick_update(struct proc_runner *r);

static void note_exit(struct proc *p, const siginfo_t *info)
{
	p->state = ST_EXITED;
	if (p->blind) {
		p->blind = false;
		p->r->blind--;
		tick_update(p->r);
	}
	p->res.duration_ms = (uv_hrtime() - p->start_hr) / 1000000;
	p->res.end_ms = wall_ms();
	if (p->lost) {
		p->res.exit_code = -1;
	} else if (info->si_code == CLD_EXITED) {
		p->res.exit_code = info->si_status;
	} else {
		p->res.exit_code = -1;
		p->res.term_signal = info->si_status;
	}
	if (p->pidfd >= 0) {
		uv_close((uv_handle_t *)&p->pidfd_poll, on_closed);
		close(p->pidfd);
		p->pidfd = -1;
	}
	uv_timer_stop(&p->timer);
	/* What the leader wrote is in the pipes already: take it now. */
	for (int i = 0; i < 2; i++)
		drain(p, i, READS_PER_WAKEUP);
	if (p->s[0].fd < 0 && p->s[1].fd < 0)
		finish(p);
	else
		uv_timer_start(&p->timer, on_drain_timeout, p->drain_ms, 0);
}

/* Peeks at the leader without reaping it; notes its exit if it has ended. */
static void check_exit(struct proc *p)
{
	if (p->state != ST_RUNNING)
		return;
	siginfo_t info;
	memset(&info, 0, sizeof(info));
	int rc;
	do
		rc = waitid(P_PID, (id_t)p->pid, &info, WEXITED | WNOHANG | WNOWAIT);
	while (rc < 0 && errno == EINTR);
	if (rc < 0 && errno == ECHILD)
		p->lost = true;
	else if (rc < 0 || info.si_pid == 0)
		return;
	note_exit(p, &info);
}

static int guard_start(struct proc_runner *r);
static void unwatch_watchdog(struct proc_runner *r);

/* r's watchdog died before its time (killed by someone): reap it and start
 * another, which is told about every proc still running. Caller holds
 * reg_lock; releases it. */
static void watchdog_died(struct proc_runner *r, pid_t pid)
{
	siginfo_t gone;
	waitid(P_PID, (id_t)pid, &gone, WEXITED | WNOHANG);
	r->wd_pid = 0;
	pthread_mutex_unlock(&reg_lock);
	unwatch_watchdog(r);
	watchdog_reaped(r->wd);
	watchdog_stop(r->wd);
	r->wd = NULL;
	tick_update(r);
	if (!r->freeing)
		guard_start(r);   /* on failure, the next proc_start() tries again */
}

/* Whether r's watchdog has exited (or was reaped by someone else); if so,
 * reaps it and starts another. Only pid r->wd_pid is looked at. */
static void check_watchdog(struct proc_runner *r)
{
	if (!r->wd || r->freeing)
		return;
	siginfo_t info;
	memset(&info, 0, sizeof(info));
	pthread_mutex_lock(&reg_lock);
	pid_t pid = r->wd_pid;
	int rc = -1;
	if (pid > 0) {
		do
			rc = waitid(P_PID, (id_t)pid, &info, WEXITED | WNOHANG | WNOWAIT);
		while (rc < 0 && errno == EINTR);
	}
	if (pid > 0 && ((rc == 0 && info.si_pid == pid) || (rc < 0 && errno == ECHILD))) {
		watchdog_died(r, pid);   /* releases reg_lock */
		return;
	}
	pthread_mutex_unlock(&reg_lock);
}

static void on_watchdog_exit(uv_poll_t *h, int status, int events)
{
	(void)status;
	(void)events;
	struct wd_watch *w = h->data;
	if (w->r)
		check_watchdog(w->r);
}

static void wd_watch_closed(uv_handle_t *h)
{
	struct wd_watch *w = h->data;
	close(w->fd);
	free(w);
}

/* Watches r's new watchdog through a pidfd; without one, the tick polls. */
static void watch_watchdog(struct proc_runner *r)
{
	struct wd_watch *w = calloc(1, sizeof(*w));
	int fd = w ? (int)syscall(SYS_pidfd_open, r->wd_pid, 0) : -1;
	if (fd >= 0 && uv_poll_init(r->loop, &w->poll, fd) == 0) {
		w->r = r;
		w->fd = fd;
		w->poll.data = w;
		uv_poll_start(&w->poll, UV_READABLE, on_watchdog_exit);
		uv_unref((uv_handle_t *)&w->poll);   /* the watchdog keeps no loop alive */
		r->wdw = w;
	} else {
		if (fd >= 0)
			close(fd);
		free(w);
	}
	tick_update(r);
}

static void unwatch_watchdog(struct proc_runner *r)
{
	struct wd_watch *w = r->wdw;
	if (!w)
		return;
	r->wdw = NULL;
	w->r = NULL;
	uv_poll_stop(&w->poll);
	uv_close((uv_handle_t *)&w->poll, wd_watch_closed);
	tick_update(r);
}

/* Reaps every zombie child that no runner tracks; notes the exit of r's
 * own leaders on the way (so the pidfd is an optimisation, not a need).
 * Stops at a zombie it must not reap: it will be reaped by its owner, whose
 * finish() calls this again. Adopted runners only: this is what reaps
 * children the process did not start through us. */
static void reap_orphans(struct proc_runner *r)
{
	if (r->reaping || !r->adopt)
		return;   /* the outer call peeks again after note_exit() */
	r->reaping = true;
	for (;;) {
		siginfo_t info;
		memset(&info, 0, sizeof(info));
		pthread_mutex_lock(&reg_lock);
		int rc = waitid(P_ALL, 0, &info, WEXITED | WNOHANG | WNOWAIT);
		if (rc < 0 || info.si_pid == 0) {
			pthread_mutex_unlock(&reg_lock);
			break;
		}
		struct proc *p = registry_find(info.si_pid);
		struct proc_runner *owner = p ? NULL : watchdog_owner(info.si_pid);
		if (owner == r) {
			watchdog_died(r, info.si_pid);
			continue;
		}
		if (owner) {
			pthread_mutex_unlock(&reg_lock);
			break;   /* another runner's watchdog: its owner reaps it */
		}
		if (!p) {
			siginfo_t gone;
			waitid(P_PID, (id_t)info.si_pid, &gone, WEXITED | WNOHANG);
			pthread_mutex_unlock(&reg_lock);
			continue;
		}
		bool mine = p->r == r;
		pthread_mutex_unlock(&reg_lock);
		if (!mine || p->state != ST_RUNNING)
			break;
		note_exit(p, &info);
	}
	r->reaping = false;
}

/* ---- handle callbacks ---------------------------------------------------- */

static void on_readable(uv_poll_t *h, int status, int events)
{
	(void)events;
	struct proc *p = h->data;
	int i = h == &p->s[0].poll ? 0 : 1;
	if (status < 0)
		close_stream(p, i);
	else
		drain(p, i, READS_PER_WAKEUP);
	maybe_finish(p);
}

static void on_pidfd(uv_poll_t *h, int status, int events)
{
	(void)status;
	(void)events;
	check_exit(h->data);
}

static void on_grace(uv_timer_t *t)
{
	signal_tree(t->data, SIGKILL);
}

static void terminate(struct proc *p)
{
	p->term_sent = true;
	signal_tree(p, SIGTERM);
	uv_timer_start(&p->timer, on_grace, p->kill_grace_ms, 0);
}

static void on_timeout(uv_timer_t *t)
{
	struct proc *p = t->data;
	p->res.timed_out = true;
	terminate(p);
}

static void on_sigchld(uv_signal_t *h, int signum)
{
	(void)signum;
	reap_orphans(h->data);
}

/* Polls what has no pidfd: the exit of blind procs, a blind watchdog. */
static void on_tick(uv_timer_t *t)
{
	struct proc_runner *r = t->data;
	struct proc *next;
	for (struct proc *p = r->procs; p; p = next) {
		next = p->next;   /* p may end here; a started one goes first */
		if (p->blind)
			check_exit(p);
	}
	if (r->wd && !r->wdw)
		check_watchdog(r);
}

/* Runs the tick while something needs it; it keeps the loop alive only
 * for blind procs (whose pipes may be closed long before they exit). */
static void tick_update(struct proc_runner *r)
{
	if (r->freeing)
		return;
	bool need = r->blind || (r->wd && !r->wdw);
	if (need && !uv_is_active((uv_handle_t *)&r->tick))
		uv_timer_start(&r->tick, on_tick, TICK_MS, TICK_MS);
	else if (!need)
		uv_timer_stop(&r->tick);
	if (r->blind)
		uv_ref((uv_handle_t *)&r->tick);
	else
		uv_unref((uv_handle_t *)&r->tick);
}

/* ---- spawning ------------------------------------------------------------- */

/* Moves *fd to >= 3 so that dup2 onto 0..2 in the child always clears
 * close-on-exec. */
static int lift_fd(int *fd)
{
	if (*fd >= 3)
		return 0;
	int n = fcntl(*fd, F_DUPFD_CLOEXEC, 3);
	if (n < 0)
		return -errno;
	close(*fd);
	*fd = n;
	return 0;
}

static const char *env_get(char *const *envp, const char *name, size_t len)
{
	for (; *envp; envp++)
		if (!strncmp(*envp, name, len) && (*envp)[len] == '=')
			return *envp + len + 1;
	return NULL;
}

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
	const char *theirs = env_get(envp, "PATH", 4), *ours = getenv("PATH");
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

/* Registers fd with a poll handle of p; on failure closes fd (the stream is
 * then lost, as if at EOF). */
static void watch(struct proc *p, uv_poll_t *h, int *fd, uv_poll_cb cb)
{
	if (uv_poll_init(p->r->loop, h, *fd) < 0) {
		close(*fd);
		*fd = -1;
		return;
	}
	h->data = p;
	p->handles++;
	uv_poll_start(h, UV_READABLE, cb);
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
	if ((err = lift_fd(&po[1])) < 0 || (err = lift_fd(&pe[1])) < 0)
		goto out;
	if ((err = -posix_spawn_file_actions_init(&fa)) < 0)
		goto out;
	fa_init = true;
	if ((err = file_actions(r, &fa, po[1], pe[1], o->cwd)) < 0)
		goto out;

	/* Guarded: no process starts unless the watchdog can be told of it. */
	if (r->wd && !r->wdw)
		check_watchdog(r);   /* no pidfd tells us when it dies: look */
	if (r->marker && !r->wd && (err = guard_start(r)) < 0)
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
	p->res.start_ms = wall_ms();
	pid_t pid;
	pthread_mutex_lock(&reg_lock);
	int e = use_path ? posix_spawnp(&pid, file, &fa, &r->attr, o->argv, envp)
			 : posix_spawn(&pid, file, &fa, &r->attr, o->argv, envp);
	if (!e) {
		p->pid = pid;
		track(r, p);
	}
	pthread_mutex_unlock(&reg_lock);
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

	uv_timer_init(r->loop, &p->timer);
	p->timer.data = p;
	p->handles = 1;
	watch(p, &p->s[0].poll, &p->s[0].fd, on_readable);
	watch(p, &p->s[1].poll, &p->s[1].fd, on_readable);
	p->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (p->pidfd >= 0) {
		int fd = p->pidfd;
		watch(p, &p->pidfd_poll, &fd, on_pidfd);
		p->pidfd = fd;
	}
	if (p->pidfd < 0) {
		/* Nothing tells us of its exit (a guest has no SIGCHLD handler):
		 * poll. */
		p->blind = true;
		r->blind++;
		tick_update(r);
	}
	if (o->timeout_ms)
		uv_timer_start(&p->timer, on_timeout, o->timeout_ms, 0);
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

void proc_kill(struct proc *p, bool hard)
{
	if (p->state == ST_DONE)
		return;
	p->res.cancelled = true;
	if (p->state == ST_EXITED) {
		/* Only leftovers hold the pipes: end the drain now. */
		uv_timer_start(&p->timer, on_drain_timeout, 0, 0);
		return;
	}
	if (hard) {
		uv_timer_stop(&p->timer);
		signal_tree(p, SIGKILL);
	} else if (!p->term_sent) {
		terminate(p);
	}
}

int proc_pid(const struct proc *p)
{
	return p->pid;
}

/* ---- the runner ---------------------------------------------------------- */

static int init_attr(posix_spawnattr_t *a)
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

static void runner_closed(uv_handle_t *h);

/* Starts r's watchdog and tells it of every proc running. Returns 0 or
 * -errno (then r has none). */
static int guard_start(struct proc_runner *r)
{
	struct watchdog *w;
	pthread_mutex_lock(&reg_lock);
	int err = watchdog_start(r->loop, r->marker, r->hold_fd, &w);
	if (!err)
		r->wd_pid = watchdog_pid(w);
	pthread_mutex_unlock(&reg_lock);
	if (err < 0)
		return err;
	struct proc *p;
	for (p = r->procs; p; p = p->next) {
		if ((err = watchdog_reserve(w)) < 0)
			break;
		watchdog_watch(w, p->pid);
	}
	if (err < 0) {
		/* It must not kill what runs: take it down without its sweep. */
		pthread_mutex_lock(&reg_lock);
		r->wd_pid = 0;
		pthread_mutex_unlock(&reg_lock);
		watchdog_cancel(w);
		return err;
	}
	r->wd = w;
	watch_watchdog(r);
	return 0;
}

void proc_runner_hold(struct proc_runner *r, int fd)
{
	r->hold_fd = fd;
}

int proc_runner_guard(struct proc_runner *r, const char *name, const char *value)
{
	if (r->marker)
		return r->wd ? 0 : guard_start(r);
	if (asprintf(&r->marker, "%s=%s", name, value ? value : "") < 0) {
		r->marker = NULL;
		return -ENOMEM;
	}
	int err = guard_start(r);
	if (err < 0) {
		free(r->marker);
		r->marker = NULL;
	}
	return err;
}

int proc_runner_new(uv_loop_t *loop, struct proc_runner **out)
{
	*out = NULL;
	int err;
	bool attr = false;
	struct proc_runner *r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->loop = loop;
	r->hold_fd = -1;
	r->devnull = -1;
	if ((r->devnull = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0) {
		err = -errno;
		goto out;
	}
	if ((err = lift_fd(&r->devnull)) < 0)
		goto out;
	if (!(r->scratch = malloc(READ_CHUNK))) {
		err = -ENOMEM;
		goto out;
	}
	if ((err = init_attr(&r->attr)) < 0)
		goto out;
	attr = true;
	if ((err = uv_timer_init(loop, &r->tick)) < 0)
		goto out;
	r->tick.data = r;
	r->handles = 1;
	uv_unref((uv_handle_t *)&r->tick);
	pthread_mutex_lock(&reg_lock);
	r->reg_next = reg_head;
	if (reg_head)
		reg_head->reg_prev = r;
	reg_head = r;
	pthread_mutex_unlock(&reg_lock);
	*out = r;
	return 0;
out:
	if (attr)
		posix_spawnattr_destroy(&r->attr);
	if (r->devnull >= 0)
		close(r->devnull);
	free(r->scratch);
	free(r);
	return err;
}

/* Undoes one adoption; the last one restores the subreaper flag and the
 * SIGCHLD disposition found by the first (the latter only if libuv has let
 * go of SIGCHLD: another of its users may still hold it). Call after r's
 * SIGCHLD handle was closed. */
static void unadopt(void)
{
	pthread_mutex_lock(&reg_lock);
	if (adopters && --adopters == 0) {
		if (!subreaper_before)
			prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0);
		struct sigaction now;
		if (sigaction(SIGCHLD, NULL, &now) == 0 && !(now.sa_flags & SA_SIGINFO) &&
		    now.sa_handler == SIG_DFL)
			sigaction(SIGCHLD, &sigchld_before, NULL);
	}
	pthread_mutex_unlock(&reg_lock);
}

int proc_runner_adopt(struct proc_runner *r)
{
	if (r->adopt)
		return 0;
	int err = 0;
	pthread_mutex_lock(&reg_lock);
	if (!adopters) {
		int was = 0;
		if (prctl(PR_GET_CHILD_SUBREAPER, &was, 0, 0, 0) < 0 ||
		    prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0 ||
		    sigaction(SIGCHLD, NULL, &sigchld_before) < 0)
			err = -errno;
		else
			subreaper_before = was;
	}
	if (!err)
		adopters++;
	pthread_mutex_unlock(&reg_lock);
	if (err < 0)
		return err;
	if ((err = uv_signal_init(r->loop, &r->sigchld)) < 0) {
		unadopt();
		return err;
	}
	r->sigchld.data = r;
	r->handles++;
	if ((err = uv_signal_start(&r->sigchld, on_sigchld, SIGCHLD)) < 0) {
		uv_close((uv_handle_t *)&r->sigchld, runner_closed);
		unadopt();
		return err;
	}
	uv_unref((uv_handle_t *)&r->sigchld);
	r->adopt = true;
	reap_orphans(r);   /* what exited before the handler was there */
	return 0;
}

static void runner_closed(uv_handle_t *h)
{
	struct proc_runner *r = h->data;
	if (--r->handles > 0)
		return;
	free(r->marker);
	posix_spawnattr_destroy(&r->attr);
	close(r->devnull);
	free(r->scratch);
	free(r);
}

/* Whether pid is still a running process (a zombie counts as gone: its
 * parent, maybe not us, has only to reap it). */
static bool still_running(pid_t pid)
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

/* Gives what proc_runner_kill_all() killed a moment to die (adopted: also
 * reaping it), so no process of ours outlives the runner. Blocks, but only
 * at shutdown. */
static void wait_doomed(struct proc_runner *r)
{
	uint64_t deadline = uv_hrtime() + (uint64_t)DOOMED_WAIT_MS * 1000000;
	for (;;) {
		reap_orphans(r);
		size_t alive = 0;
		for (size_t i = 0; i < r->n_doomed; i++)
			if (still_running(r->doomed[i]))
				r->doomed[alive++] = r->doomed[i];
		r->n_doomed = alive;
		if (!alive || uv_hrtime() > deadline)
			break;
		nanosleep(&(struct timespec){0, 2 * 1000 * 1000}, NULL);
	}
	reap_orphans(r);
	free(r->doomed);
	r->doomed = NULL;
	r->n_doomed = 0;
}

void proc_runner_free(struct proc_runner *r)
{
	if (!r)
		return;
	r->freeing = true;   /* a watchdog that dies now is not replaced */
	wait_doomed(r);
	/* Its last sweep catches what left our tree carrying the marker. */
	unwatch_watchdog(r);
	watchdog_stop(r->wd);
	r->wd = NULL;
	pthread_mutex_lock(&reg_lock);
	r->wd_pid = 0;
	if (r->reg_prev)
		r->reg_prev->reg_next = r->reg_next;
	else
		reg_head = r->reg_next;
	if (r->reg_next)
		r->reg_next->reg_prev = r->reg_prev;
	pthread_mutex_unlock(&reg_lock);
	uv_timer_stop(&r->tick);
	uv_close((uv_handle_t *)&r->tick, runner_closed);
	if (r->adopt) {
		uv_close((uv_handle_t *)&r->sigchld, runner_closed);
		unadopt();
	}
}

unsigned proc_runner_count(const struct proc_runner *r)
{
	return r->count;
}

void proc_runner_kill_all(struct proc_runner *r)
{
	if (!r->procs && !r->adopt)
		return;   /* a guest with nothing running has nothing to kill */
	/* Snapshot first, as in signal_tree(). */
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
				if (!tracked_elsewhere(r, e->pid))
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
			uv_timer_start(&p->timer, on_drain_timeout, 0, 0);
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
