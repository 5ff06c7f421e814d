/* watchdog.c: the process that kills what we started if we die; see
 * watchdog.h.
 *
 * The protocol is a stream of fixed 8-byte records (op, pid) on a pipe.
 * Our side: one write() per record when nothing is pending (8 bytes, below
 * PIPE_BUF: all or nothing), else the pending buffer, in order; a partial
 * write of the pending buffer is fine, the reader reassembles records. The
 * watchdog's side: a hash set of announced groups in mmap'd memory, each
 * with a pidfd on its leader taken when announced (while the leader is
 * unreaped, so it is the right process), which tells at EOF whether the
 * group id is still held by our leader.
 */
#include "exec/watchdog.h"
#include "util/clock.h"
#include "util/file.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define REC_WATCH 1
#define REC_UNWATCH 2
#define PIPE_WANT (1 << 20)      /* the pipe buffer we ask for */
#define FLUSH_WAIT_MS 2000       /* at stop: for the pending records */
#define SWEEP_WAIT_MS 5000       /* at stop: for the watchdog's sweep */
#define SCAN_PASSES 50           /* /proc sweeps while they still find some */
#define EXEC_WAIT_MS 2000        /* more sweeps while a process is mid-execve */
#define PF_KTHREAD 0x00200000    /* stat flags: a kernel thread (linux/sched.h) */

struct rec {
	int32_t op;
	int32_t pid;
};

struct watchdog {
	uv_loop_t *loop;
	pid_t pid;              /* 0 once reaped */
	int wfd;                /* write end, O_NONBLOCK */
	int keep_rfd;           /* our read end: the pipe always has a reader */
	char *pend;             /* records a full pipe held back */
	size_t pend_len, pend_cap;
	size_t owed;            /* unwatch records reserved and not yet queued */
	uv_poll_t poll;         /* writable, while something is pending */
	bool polling;
};

/* ---- the watchdog process: async-signal-safe code only ------------------- */

struct slot {
	int32_t pgid;           /* 0: empty, -1: deleted */
	int32_t pidfd;          /* on the group's leader, or -1 */
};

struct set {
	struct slot *v;
	uint32_t cap, used;     /* used: live and deleted slots */
	uint32_t live;
};

struct dent64 {
	uint64_t d_ino;
	int64_t d_off;
	unsigned short d_reclen;
	unsigned char d_type;
	char d_name[];
};

static uint32_t slot_of(const struct set *s, int32_t pgid)
{
	return ((uint32_t)pgid * 2654435761u) & (s->cap - 1);
}

/* Rebuilds the set with room for twice the live entries (at least 1024
 * slots, half empty). Returns false when memory runs out. */
static bool set_grow(struct set *s)
{
	uint32_t cap = 1024;
	while (cap < 4 * (s->live + 1))
		cap *= 2;
	void *m = mmap(NULL, (size_t)cap * sizeof(struct slot), PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED)
		return false;
	struct set n = {m, cap, 0, 0};
	for (uint32_t i = 0; i < s->cap; i++) {
		if (s->v[i].pgid <= 0)
			continue;
		uint32_t j = slot_of(&n, s->v[i].pgid);
		while (n.v[j].pgid)
			j = (j + 1) & (cap - 1);
		n.v[j] = s->v[i];
		n.used++;
		n.live++;
	}
	if (s->v)
		munmap(s->v, (size_t)s->cap * sizeof(struct slot));
	*s = n;
	return true;
}

/* The slot holding pgid, or NULL. */
static struct slot *set_find(struct set *s, int32_t pgid)
{
	if (!s->cap)
		return NULL;
	for (uint32_t j = slot_of(s, pgid);; j = (j + 1) & (s->cap - 1)) {
		if (s->v[j].pgid == pgid)
			return &s->v[j];
		if (!s->v[j].pgid)
			return NULL;
	}
}

static void set_add(struct set *s, int32_t pgid)
{
	int pidfd = (int)syscall(SYS_pidfd_open, pgid, 0);
	struct slot *e = set_find(s, pgid);
	if (e) {
		/* A reused id announced again: the newer leader is the one. */
		if (e->pidfd >= 0)
			close(e->pidfd);
		e->pidfd = pidfd;
		return;
	}
	if (2 * (s->used + 1) > s->cap && !set_grow(s)) {
		/* No memory: the group is not held, the /proc sweep remains. */
		if (pidfd >= 0)
			close(pidfd);
		return;
	}
	uint32_t j = slot_of(s, pgid);
	while (s->v[j].pgid > 0)
		j = (j + 1) & (s->cap - 1);
	if (!s->v[j].pgid)
		s->used++;
	s->v[j] = (struct slot){pgid, pidfd};
	s->live++;
}

static void set_del(struct set *s, int32_t pgid)
{
	struct slot *e = set_find(s, pgid);
	if (!e)
		return;
	if (e->pidfd >= 0)
		close(e->pidfd);
	e->pgid = -1;
	e->pidfd = -1;
	s->live--;
}

/* SIGKILLs each announced group whose leader still holds the group id
 * (alive or an unreaped zombie). A group whose leader is gone may have had
 * its id reused: its members are left to the /proc sweep. */
static void kill_groups(struct set *s)
{
	for (uint32_t i = 0; i < s->cap; i++) {
		struct slot *e = &s->v[i];
		if (e->pgid <= 0)
			continue;
		if (e->pidfd >= 0 &&
		    syscall(SYS_pidfd_send_signal, e->pidfd, 0, NULL, 0) < 0 && errno != ENOSYS)
			continue;
		kill(-e->pgid, SIGKILL);
	}
}

enum env { ENV_OTHER, ENV_MARKED, ENV_EMPTY, ENV_PENDING };

/* path = "<name>/<leaf>" (name: a /proc entry, at most 20 characters). */
static void proc_path(char path[48], const char *name, const char *leaf)
{
	size_t n = 0, k = 0;
	while (name[n] && n < 20) {
		path[n] = name[n];
		n++;
	}
	path[n++] = '/';
	while (leaf[k] && k < 20)
		path[n++] = leaf[k++];
	path[n] = '\0';
}

/* What the environment of process `name` (a /proc entry) reads as: holds
 * the entry needle[0..len) (NAME=VALUE and its NUL, matched at entry
 * starts), reads nothing at all, or else (unreadable, another value). */
static enum env env_of(int procfd, const char *name, const char *needle, size_t len)
{
	char path[48], buf[4096];
	proc_path(path, name, "environ");
	int fd = openat(procfd, path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return ENV_OTHER;
	size_t at = 0;          /* bytes of needle matched in this entry */
	bool in = true;         /* this entry still matches so far */
	bool found = false, any = false;
	ssize_t got;
	while (!found && (got = read(fd, buf, sizeof(buf))) > 0) {
		any = true;
		for (ssize_t i = 0; i < got && !found; i++) {
			char c = buf[i];
			if (in && c == needle[at]) {
				if (++at == len)
					found = true;
			} else {
				in = false;
			}
			if (c == '\0') {
				in = true;
				at = 0;
			}
		}
	}
	close(fd);
	return found ? ENV_MARKED : any ? ENV_OTHER : ENV_EMPTY;
}

/* Reads the stat file at path (relative to dirfd) into field[3..51], the
 * numeric fields by their number in proc(5), and *state (field 3).
 * Returns false if it cannot be read or is cut short. */
static bool read_stat(int dirfd, const char *path, unsigned long field[52], char *state)
{
	char buf[1024];
	int fd = openat(dirfd, path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	char *p = NULL;
	for (char *q = buf; *q; q++)
		if (*q == ')')
			p = q;   /* comm may hold ')': the last one ends it */
	if (!p || p[1] != ' ' || !p[2])
		return false;
	*state = p[2];
	int f = 2;
	for (p++; *p && f < 51;) {
		while (*p == ' ')
			p++;
		if (!*p)
			break;
		f++;
		unsigned long v = 0;
		for (; *p >= '0' && *p <= '9'; p++)
			v = v * 10 + (unsigned long)(*p - '0');
		while (*p && *p != ' ')
			p++;
		field[f] = v;
	}
	return f == 51;
}

/* env_of(), except that a process caught inside execve() is ENV_PENDING:
 * from the moment execve() lets go of the old memory until the ELF loader
 * sets the new environment's bounds, environ reads empty (the time for
 * the loader to map the program and its interpreter: under load,
 * milliseconds; a parent's posix_spawn() has returned by then). It is
 * told apart from what has no environment for good (a kernel thread, a
 * zombie, an emptied environment) by env_end, stat field 51, still 0. */
static enum env examine(int procfd, const char *name, const char *needle, size_t len)
{
	for (int tries = 0; tries < 2; tries++) {
		enum env e = env_of(procfd, name, needle, len);
		if (e != ENV_EMPTY)
			return e;
		char path[48], state = 0;
		unsigned long field[52] = {0};
		proc_path(path, name, "stat");
		if (!read_stat(procfd, path, field, &state) || state == 'Z' || state == 'X' ||
		    (field[9] & PF_KTHREAD))
			return ENV_OTHER;   /* gone, dead or a kernel thread */
		if (!field[51])
			return ENV_PENDING;
		/* The bounds are set: execve() has just ended (read again), or
		 * the environment is empty. */
	}
	return ENV_OTHER;
}

struct pass {
	int killed;     /* processes signalled */
	int pending;    /* processes inside execve(): look again */
};

/* One sweep of /proc: SIGKILLs every process but us carrying the marker.
 * Through a pidfd taken before reading the environment, so a pid reused
 * meanwhile is never signalled. Returns how many were signalled, and how
 * many could not be judged yet. */
static struct pass sweep(const char *needle, size_t len)
{
	struct pass r = {0, 0};
	int procfd = open("/proc", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (procfd < 0)
		return r;
	pid_t self = getpid(), parent = getppid();   /* not the engine either */
	char buf[8192];
	long n;
	while ((n = syscall(SYS_getdents64, procfd, buf, sizeof(buf))) > 0) {
		for (long off = 0; off < n;) {
			struct dent64 *d = (struct dent64 *)(buf + off);
			off += d->d_reclen;
			pid_t pid = 0;
			const char *c = d->d_name;
			for (; *c >= '0' && *c <= '9' && pid < 100000000; c++)
				pid = pid * 10 + (*c - '0');
			if (*c || pid <= 1 || pid == self || pid == parent)
				continue;
			int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
			if (pidfd < 0 && errno != ENOSYS)
				continue;   /* gone already */
			enum env e = examine(procfd, d->d_name, needle, len);
			if (e == ENV_MARKED) {
				if (pidfd >= 0)
					syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, NULL, 0);
				else
					kill(pid, SIGKILL);
				r.killed++;
			} else if (e == ENV_PENDING) {
				r.pending++;
			}
			if (pidfd >= 0)
				close(pidfd);
		}
	}
	close(procfd);
	return r;
}

/* Sweeps, 10 ms apart, while a sweep signals some (at most SCAN_PASSES
 * such sweeps) or finds a process inside execve() (for at most
 * EXEC_WAIT_MS): a process that a sweep could not judge is judged by a
 * later one. Returns how many processes were signalled. */
static int sweep_all(const char *needle, size_t len)
{
	uint64_t deadline = clock_mono_ms() + EXEC_WAIT_MS;
	int total = 0;
	for (int kills = 0;;) {
		struct pass p = sweep(needle, len);
		total += p.killed;
		kills += p.killed > 0;
		if (!(p.killed && kills < SCAN_PASSES) &&
		    !(p.pending && clock_mono_ms() < deadline))
			break;
		struct timespec ts = {0, 10 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	return total;
}

/* Zeroes our own initial environment block, where /proc/self/environ reads
 * from: a watchdog carries no marker, so that the watchdog of a run that
 * started this one (a nested dagrun) never kills it before it has swept. */
static void scrub_environment(void)
{
	unsigned long field[52] = {0};
	char state;
	/* env_start, env_end: fields 50, 51. */
	if (read_stat(AT_FDCWD, "/proc/self/stat", field, &state) && field[50] &&
	    field[51] > field[50])
		for (volatile char *c = (char *)field[50]; c < (char *)field[51]; c++)
			*c = '\0';
}

static void quiet_signals(void)
{
	struct sigaction dfl, ign;
	memset(&dfl, 0, sizeof(dfl));
	memset(&ign, 0, sizeof(ign));
	dfl.sa_handler = SIG_DFL;
	ign.sa_handler = SIG_IGN;
	for (int sig = 1; sig < NSIG; sig++)
		if (sig != SIGKILL && sig != SIGSTOP)
			sigaction(sig, &dfl, NULL);   /* fails harmlessly for some */
	const int ignored[] = {SIGINT, SIGQUIT, SIGHUP, SIGTERM, SIGPIPE,
			       SIGTSTP, SIGTTIN, SIGTTOU, SIGUSR1, SIGUSR2};
	for (size_t i = 0; i < sizeof(ignored) / sizeof(ignored[0]); i++)
		sigaction(ignored[i], &ign, NULL);
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
}

/* stdin, stdout, stderr on /dev/null, the pipe on 3, the held descriptor
 * (if any) on 4, nothing else open: the watchdog must hold no pipe, socket
 * or terminal of ours. */
static void own_descriptors(int rfd, int hold)
{
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);
	for (int fd = 0; fd < 3; fd++)
		if (null >= 0 && null != fd)
			dup2(null, fd);
	if (rfd != 3)
		dup2(rfd, 3);   /* rfd >= 3 (lifted by our parent) */
	if (hold >= 0 && hold != 4)
		dup2(hold, 4);  /* hold >= 5 (lifted by our parent): rfd survives */
	int first = hold >= 0 ? 5 : 4;
	if (syscall(SYS_close_range, first, ~0u, 0) == 0)
		return;
	int dfd = open("/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return;
	char buf[4096];
	long n;
	while ((n = syscall(SYS_getdents64, dfd, buf, sizeof(buf))) > 0) {
		for (long off = 0; off < n;) {
			struct dent64 *d = (struct dent64 *)(buf + off);
			off += d->d_reclen;
			int fd = 0;
			const char *c = d->d_name;
			for (; *c >= '0' && *c <= '9' && fd < 10000000; c++)
				fd = fd * 10 + (*c - '0');
			if (!*c && c != d->d_name && fd >= first && fd != dfd)
				close(fd);
		}
	}
	close(dfd);
}

static __attribute__((noreturn)) void watchdog_main(int rfd, int hold, const char *needle,
							 size_t len)
{
	setsid();
	quiet_signals();
	own_descriptors(rfd, hold);
	prctl(PR_SET_NAME, "dagrun-watchdog", 0, 0, 0);
	scrub_environment();
	/* A pidfd per running group: raise our descriptor limit to the hard one. */
	struct rlimit rl;
	if (syscall(SYS_prlimit64, 0, RLIMIT_NOFILE, NULL, &rl) == 0) {
		rl.rlim_cur = rl.rlim_max;
		syscall(SYS_prlimit64, 0, RLIMIT_NOFILE, &rl, NULL);
	}
	struct set set = {NULL, 0, 0, 0};
	char buf[4096];
	size_t have = 0;
	for (;;) {
		ssize_t n = read(3, buf + have, sizeof(buf) - have);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;   /* EOF: whoever held the write end is gone */
		have += (size_t)n;
		size_t i = 0;
		for (; i + sizeof(struct rec) <= have; i += sizeof(struct rec)) {
			struct rec r;
			memcpy(&r, buf + i, sizeof(r));
			if (r.pid <= 1)
				continue;
			if (r.op == REC_WATCH)
				set_add(&set, r.pid);
			else if (r.op == REC_UNWATCH)
				set_del(&set, r.pid);
		}
		memmove(buf, buf + i, have - i);
		have -= i;
	}
	kill_groups(&set);
	if (len)
		sweep_all(needle, len);
	_exit(0);
}

/* ---- our side ------------------------------------------------------------ */

static void on_closed(uv_handle_t *h)
{
	struct watchdog *w = h->data;
	free(w->pend);
	free(w);
}

int watchdog_start(uv_loop_t *loop, const char *marker, int hold_fd,
		   struct watchdog **out)
{
	*out = NULL;
	int p[2] = {-1, -1}, hold = -1, err = 0;
	char *needle = NULL;
	size_t len = marker ? strlen(marker) + 1 : 0;   /* with its NUL */
	struct watchdog *w = calloc(1, sizeof(*w));
	if (!w || (len && !(needle = malloc(len)))) {
		err = -ENOMEM;
		goto out;
	}
	if (len)
		memcpy(needle, marker, len);
	if (pipe2(p, O_CLOEXEC) < 0) {
		err = -errno;
		goto out;
	}
	if ((err = file_lift_fd(&p[0])) < 0 || (err = file_lift_fd(&p[1])) < 0)
		goto out;
	/* Above 4, so that moving it to 4 in the child overwrites nothing. */
	if (hold_fd >= 0 && (hold = fcntl(hold_fd, F_DUPFD_CLOEXEC, 5)) < 0) {
		err = -errno;
		goto out;
	}
	/* As large as allowed (pipe-max-size, 1 MiB by default): fails
	 * harmlessly, the pending buffer covers the rest. */
	for (int sz = PIPE_WANT; sz >= 65536 && fcntl(p[1], F_SETPIPE_SZ, sz) < 0; sz /= 4)
		;
	if (fcntl(p[1], F_SETFL, O_NONBLOCK) < 0) {
		err = -errno;
		goto out;
	}
	if ((err = uv_poll_init(loop, &w->poll, p[1])) < 0)
		goto out;
	w->poll.data = w;
	pid_t pid = fork();
	if (pid == 0)
		watchdog_main(p[0], hold, needle, len);
	if (pid < 0) {
		err = -errno;
		uv_close((uv_handle_t *)&w->poll, on_closed);
		w = NULL;   /* freed by the close callback */
		goto out;
	}
	w->loop = loop;
	w->pid = pid;
	w->keep_rfd = p[0];
	w->wfd = p[1];
	p[0] = p[1] = -1;
	*out = w;
	w = NULL;
out:
	if (p[0] >= 0)
		close(p[0]);
	if (p[1] >= 0)
		close(p[1]);
	if (hold >= 0)
		close(hold);
	free(needle);
	free(w);
	return err;
}

/* Writes what is pending, as far as the pipe takes it now. */
static void flush(struct watchdog *w)
{
	while (w->pend_len) {
		ssize_t n = write(w->wfd, w->pend, w->pend_len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		memmove(w->pend, w->pend + n, w->pend_len - (size_t)n);
		w->pend_len -= (size_t)n;
	}
}

static void on_writable(uv_poll_t *h, int status, int events)
{
	(void)status;
	(void)events;
	struct watchdog *w = h->data;
	flush(w);
	if (!w->pend_len) {
		uv_poll_stop(h);
		w->polling = false;
	}
}

int watchdog_reserve(struct watchdog *w)
{
	size_t need = w->pend_len + (w->owed + 2) * sizeof(struct rec);
	if (need <= w->pend_cap)
		return 0;
	size_t cap = w->pend_cap ? w->pend_cap * 2 : 4096;
	if (cap < need)
		cap = need;
	char *p = realloc(w->pend, cap);
	if (!p)
		return -ENOMEM;
	w->pend = p;
	w->pend_cap = cap;
	return 0;
}

/* Sends one record, or queues it behind what is pending (room reserved). */
static void send_rec(struct watchdog *w, int op, pid_t pid)
{
	struct rec r = {op, (int32_t)pid};
	if (!w->pend_len) {
		ssize_t n;
		do
			n = write(w->wfd, &r, sizeof(r));
		while (n < 0 && errno == EINTR);
		if (n == (ssize_t)sizeof(r))
			return;
	}
	if (w->pend_len + sizeof(r) > w->pend_cap)
		return;   /* not reserved: cannot happen through proc_start() */
	memcpy(w->pend + w->pend_len, &r, sizeof(r));
	w->pend_len += sizeof(r);
	flush(w);
	if (w->pend_len && !w->polling) {
		uv_poll_start(&w->poll, UV_WRITABLE, on_writable);
		w->polling = true;
	}
}

void watchdog_watch(struct watchdog *w, pid_t pgid)
{
	w->owed++;
	send_rec(w, REC_WATCH, pgid);
}

void watchdog_unwatch(struct watchdog *w, pid_t pgid)
{
	if (w->owed)
		w->owed--;
	send_rec(w, REC_UNWATCH, pgid);
}

size_t watchdog_pending(const struct watchdog *w)
{
	return w->pend_len;
}

pid_t watchdog_pid(const struct watchdog *w)
{
	return w->pid;
}

void watchdog_reaped(struct watchdog *w)
{
	w->pid = 0;
}

/* Sends the pending records, waiting for the pipe at most FLUSH_WAIT_MS. */
static bool flush_all(struct watchdog *w)
{
	uint64_t deadline = clock_mono_ms() + FLUSH_WAIT_MS;
	for (;;) {
		flush(w);
		uint64_t now = clock_mono_ms();
		if (!w->pend_len || now >= deadline)
			return !w->pend_len;
		struct pollfd pf = {w->wfd, POLLOUT, 0};
		poll(&pf, 1, (int)(deadline - now));
	}
}

/* Closes w; with cancel, SIGKILLs the watchdog first (it does nothing). */
static void stop(struct watchdog *w, bool cancel)
{
	if (!w)
		return;
	if (w->pid > 0 && (cancel || !flush_all(w)))
		kill(w->pid, SIGKILL);   /* not wanted, or stuck on stale groups */
	if (w->polling)
		uv_poll_stop(&w->poll);
	uv_close((uv_handle_t *)&w->poll, on_closed);
	close(w->wfd);
	close(w->keep_rfd);
	if (w->pid > 0) {
		uint64_t deadline = clock_mono_ms() + SWEEP_WAIT_MS;
		for (;;) {
			pid_t r = waitpid(w->pid, NULL, WNOHANG);
			if (r == w->pid || (r < 0 && errno != EINTR))
				break;
			if (clock_mono_ms() > deadline) {
				/* Still sweeping (something forks as fast as it
				 * kills): we leave no child of ours behind, not even
				 * a zombie for a host to find. */
				kill(w->pid, SIGKILL);
				while (waitpid(w->pid, NULL, 0) < 0 && errno == EINTR)
					;
				break;
			}
			struct timespec ts = {0, 2 * 1000 * 1000};
			nanosleep(&ts, NULL);
		}
		w->pid = 0;
	}
}

int watchdog_sweep(const char *marker)
{
	return sweep_all(marker, strlen(marker) + 1);   /* with its NUL */
}

void watchdog_stop(struct watchdog *w)
{
	stop(w, false);
}

void watchdog_cancel(struct watchdog *w)
{
	stop(w, true);
}
