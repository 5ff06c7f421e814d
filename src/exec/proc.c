/* proc.c: the life of a proc on a libuv loop; see proc.h. Its start is
 * in proc_spawn.c, the killing of its tree in proc_tree.c, the runner
 * (registry, adoption, watchdog) in proc_runner.c; proc_int.h is what they
 * share.
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
#include "exec/proc_int.h"
#include "util/clock.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

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

/* Keeps the last PROC_TAIL_BYTES of stream i in its ring, whatever the
 * capture keeps: the end of a stream past the cap is its real end. */
static void ring_add(struct proc *p, int i, const char *data, size_t n)
{
	if (n > PROC_TAIL_BYTES) {
		p->ring_at[i] += n - PROC_TAIL_BYTES;
		data += n - PROC_TAIL_BYTES;
		n = PROC_TAIL_BYTES;
	}
	size_t at = p->ring_at[i] % PROC_TAIL_BYTES, first = PROC_TAIL_BYTES - at;
	if (first > n)
		first = n;
	memcpy(p->ring[i] + at, data, first);
	memcpy(p->ring[i], data + first, n - first);
	p->ring_at[i] += n;
}

/* At the end: the ring of a stream that went past the cap, in order, into
 * the result (an allocation failure leaves it empty: the tail then comes
 * from the capture, as before). */
static void ring_take(struct proc *p, int i)
{
	struct buf *cap = i == 0 ? &p->res.out : &p->res.err;
	struct buf *t = i == 0 ? &p->res.out_tail : &p->res.err_tail;
	uint64_t bytes = i == 0 ? p->res.out_bytes : p->res.err_bytes;
	if (bytes <= cap->len)
		return;
	size_t at = p->ring_at[i] % PROC_TAIL_BYTES;
	int r = p->ring_at[i] < PROC_TAIL_BYTES
		? buf_add(t, p->ring[i], at)   /* never wrapped: all of it */
		: buf_add(t, p->ring[i] + at, PROC_TAIL_BYTES - at);   /* the older part first */
	if (r < 0 || (p->ring_at[i] >= PROC_TAIL_BYTES && buf_add(t, p->ring[i], at) < 0))
		buf_free(t);
}

static void capture(struct proc *p, int i, const char *data, size_t n)
{
	ring_add(p, i, data, n);
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
	buf_free(&p->res.out_tail);
	buf_free(&p->res.err_tail);
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
	proc_untrack(p);
	close_stream(p, 0);
	close_stream(p, 1);
	uv_timer_stop(&p->timer);
	uv_close((uv_handle_t *)&p->timer, on_closed);
	/* Our zombie may have hidden other zombies from the reaper's peek. */
	if (r->adopt)
		proc_reap_orphans(r);
	/* Handles close on a later loop turn: p stays valid during the call. */
	ring_take(p, 0);
	ring_take(p, 1);
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
		proc_signal_tree(p, SIGKILL);
	for (int i = 0; i < 2; i++) {
		drain(p, i, READS_PER_WAKEUP);
		close_stream(p, i);
	}
	finish(p);
}

void proc_note_exit(struct proc *p, const siginfo_t *info)
{
	p->state = ST_EXITED;
	if (p->blind) {
		p->blind = false;
		p->r->blind--;
		proc_tick_update(p->r);
	}
	p->res.duration_ms = (uv_hrtime() - p->start_hr) / 1000000;
	p->res.end_ms = clock_wall_ms();
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
void proc_check_exit(struct proc *p)
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
	proc_note_exit(p, &info);
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
	proc_check_exit(h->data);
}

static void on_grace(uv_timer_t *t)
{
	proc_signal_tree(t->data, SIGKILL);
}

static void terminate(struct proc *p)
{
	p->term_sent = true;
	proc_signal_tree(p, SIGTERM);
	uv_timer_start(&p->timer, on_grace, p->kill_grace_ms, 0);
}

static void on_timeout(uv_timer_t *t)
{
	struct proc *p = t->data;
	p->res.timed_out = true;
	terminate(p);
}

/* ---- starting to watch, stopping --------------------------------------------- */

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

void proc_watch(struct proc *p, uint64_t timeout_ms)
{
	struct proc_runner *r = p->r;
	uv_timer_init(r->loop, &p->timer);
	p->timer.data = p;
	p->handles = 1;
	watch(p, &p->s[0].poll, &p->s[0].fd, on_readable);
	watch(p, &p->s[1].poll, &p->s[1].fd, on_readable);
	p->pidfd = (int)syscall(SYS_pidfd_open, p->pid, 0);
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
		proc_tick_update(r);
	}
	if (timeout_ms)
		uv_timer_start(&p->timer, on_timeout, timeout_ms, 0);
}

void proc_drain_now(struct proc *p)
{
	uv_timer_start(&p->timer, on_drain_timeout, 0, 0);
}

void proc_kill(struct proc *p, bool hard)
{
	if (p->state == ST_DONE)
		return;
	p->res.cancelled = true;
	if (p->state == ST_EXITED) {
		/* Only leftovers hold the pipes: end the drain now. */
		proc_drain_now(p);
		return;
	}
	if (hard) {
		uv_timer_stop(&p->timer);
		proc_signal_tree(p, SIGKILL);
	} else if (!p->term_sent) {
		terminate(p);
	}
}

int proc_pid(const struct proc *p)
{
	return p->pid;
}
