/* watchdog.c: the process that kills what we started if we die (see
 * watchdog.h): our side of it, starting it and telling it of our groups;
 * the watchdog process itself is watchdog_proc.c.
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
#include "exec/watchdog_int.h"
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

#define PIPE_WANT (1 << 20)      /* the pipe buffer we ask for */
#define FLUSH_WAIT_MS 2000       /* at stop: for the pending records */
#define SWEEP_WAIT_MS 5000       /* at stop: for the watchdog's sweep */

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
	return watchdog_sweep_all(marker, strlen(marker) + 1);   /* with its NUL */
}

void watchdog_stop(struct watchdog *w)
{
	stop(w, false);
}

void watchdog_cancel(struct watchdog *w)
{
	stop(w, true);
}
