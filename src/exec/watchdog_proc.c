/* watchdog_proc.c: the watchdog process (see watchdog.h, and watchdog.c for
 * our side): it reads our records of announced groups, and when the pipe
 * reaches EOF (we died or stopped it) kills the groups still held by our
 * leaders and sweeps /proc for processes that carry the run's marker.
 * Invariant: async-signal-safe code only (it runs in a child forked from a
 * threaded process).
 */
#include "exec/watchdog_int.h"
#include "util/clock.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
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

#define SCAN_PASSES 50           /* /proc sweeps while they still find some */
#define EXEC_WAIT_MS 2000        /* more sweeps while a process is mid-execve */
#define PF_KTHREAD 0x00200000    /* stat flags: a kernel thread (linux/sched.h) */

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
int watchdog_sweep_all(const char *needle, size_t len)
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

void watchdog_main(int rfd, int hold, const char *needle,
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
		watchdog_sweep_all(needle, len);
	_exit(0);
}
