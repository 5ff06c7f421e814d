/* sink.c: a bounded buffer between the observers and a slow reader; see
 * sink.h.
 *
 * The ring (ring[head .. head + used), modulo cap) is shared under mu: the
 * producer appends at the tail, the writer thread takes the longest
 * contiguous run at the head, writes it with the lock released (the
 * producer never touches the used part) and then advances head. The drop
 * state (dropping, pending and total counts) belongs to the producer alone.
 */
#include "obs/sink.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct obs_sink {
	FILE *out;
	int fd;                 /* -1: write synchronously to out */
	obs_notice_fn notice;
	void *ud;
	/* Shared with the writer thread, under mu. */
	pthread_mutex_t mu;
	pthread_cond_t more;    /* data queued, or closing */
	pthread_cond_t room;    /* space freed, or a write error */
	char *ring;
	size_t cap, head, used;
	bool closing;
	int error;              /* -errno of the first failed write, or 0 */
	pthread_t thread;
	bool started;
	/* The producer's own. */
	bool dropping;          /* dropping until the buffer is half empty */
	uint64_t pending_lines, pending_bytes;  /* since the last notice */
	uint64_t total_lines, total_bytes;
};

/* ---- the writer thread ----------------------------------------------------- */

/* Writes p[0 .. n) in full. Returns n or -errno. A file description someone
 * else made non-blocking is waited on with poll. */
static ssize_t write_all(int fd, const char *p, size_t n)
{
	size_t done = 0;
	while (done < n) {
		ssize_t w = write(fd, p + done, n - done);
		if (w > 0) {
			done += (size_t)w;
		} else if (w < 0 && errno == EINTR) {
			continue;
		} else if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			struct pollfd pfd = {.fd = fd, .events = POLLOUT};
			if (poll(&pfd, 1, -1) < 0 && errno != EINTR)
				return -errno;
		} else {
			return w < 0 ? -errno : -EIO;
		}
	}
	return (ssize_t)n;
}

static void *writer_main(void *arg)
{
	struct obs_sink *s = arg;
	pthread_mutex_lock(&s->mu);
	for (;;) {
		while (!s->used && !s->closing)
			pthread_cond_wait(&s->more, &s->mu);
		if (!s->used)
			break;   /* closing, and everything written */
		size_t head = s->head;
		size_t n = s->used < s->cap - head ? s->used : s->cap - head;
		pthread_mutex_unlock(&s->mu);
		ssize_t w = write_all(s->fd, s->ring + head, n);
		pthread_mutex_lock(&s->mu);
		if (w < 0) {
			s->error = (int)w;
			s->used = s->head = 0;   /* discarded: the reader is gone */
		} else {
			s->head = (s->head + n) % s->cap;
			s->used -= n;
			if (!s->used)
				s->head = 0;
		}
		pthread_cond_broadcast(&s->room);
	}
	pthread_mutex_unlock(&s->mu);
	return NULL;
}

/* ---- the producer ---------------------------------------------------------- */

/* Copies p[0 .. n) to the tail of the ring; the caller holds mu and has
 * checked that n bytes are free. */
static void ring_put(struct obs_sink *s, const char *p, size_t n)
{
	size_t tail = (s->head + s->used) % s->cap;
	size_t first = n < s->cap - tail ? n : s->cap - tail;
	memcpy(s->ring + tail, p, first);
	memcpy(s->ring, p + first, n - first);
	s->used += n;
	pthread_cond_signal(&s->more);
}

static uint64_t count_lines(const char *p, size_t n)
{
	uint64_t k = 0;
	for (const char *e = p + n; (p = memchr(p, '\n', (size_t)(e - p))); p++)
		k++;
	return k;
}

static void count_drop(struct obs_sink *s, const char *p, size_t n)
{
	uint64_t lines = count_lines(p, n);
	s->dropping = true;
	s->pending_lines += lines;
	s->pending_bytes += n;
	s->total_lines += lines;
	s->total_bytes += n;
}

/* Synchronous writing, for a FILE without a file descriptor. */
static int direct_write(struct obs_sink *s, const char *p, size_t n)
{
	if (s->error)
		return s->error;
	errno = 0;
	if ((n && fwrite(p, 1, n, s->out) != n) || fflush(s->out) != 0)
		s->error = errno ? -errno : -EIO;
	return s->error;
}

/* Queues the notice for the pending drop. wait: block for room. Returns 0
 * (queued, or nothing pending), 1 (no room: still pending) or -errno. */
static int put_notice(struct obs_sink *s, bool wait)
{
	if (!s->pending_bytes)
		return 0;
	struct buf b = BUF_INIT;
	int r = 0;
	if (!s->notice || s->notice(s->ud, s->pending_lines, s->pending_bytes, &b) < 0 ||
	    !b.len)
		goto done;   /* no notice to give: the drop is still counted */
	if (s->fd < 0) {
		r = direct_write(s, b.data, b.len);
		goto done;
	}
	pthread_mutex_lock(&s->mu);
	while (wait && !s->error && s->cap - s->used < b.len && b.len <= s->cap)
		pthread_cond_wait(&s->room, &s->mu);
	if (s->error)
		r = s->error;
	else if (s->cap - s->used >= b.len)
		ring_put(s, b.data, b.len);
	else
		r = 1;
	pthread_mutex_unlock(&s->mu);
done:
	if (r == 0)
		s->pending_lines = s->pending_bytes = 0;
	buf_free(&b);
	return r;
}

/* Queues a record without blocking; count: a record that finds no room is
 * dropped and counted (else it is only refused). Returns 0, 1 or -errno. */
static int queue(struct obs_sink *s, const char *p, size_t n, bool keep, bool count)
{
	if (s->fd < 0)
		return direct_write(s, p, n);
	pthread_mutex_lock(&s->mu);
	int err = s->error;
	size_t used = s->used;
	pthread_mutex_unlock(&s->mu);
	if (err)
		return err;
	/* Once dropping, keep dropping until the reader has caught up with
	 * half the buffer: the notice then marks one gap, not many. A record
	 * to keep ends the gap at once (when the notice and it fit). */
	if (s->dropping) {
		if ((!keep && used > s->cap / 2) || put_notice(s, false) != 0) {
			if (count)
				count_drop(s, p, n);
			return 1;
		}
		if (!keep)
			s->dropping = false;
	}
	/* The last eighth is for records to keep: a flood of task output
	 * cannot crowd out status lines. */
	size_t limit = keep ? s->cap : s->cap - s->cap / 8;
	pthread_mutex_lock(&s->mu);
	int r = s->error;
	if (!r && n <= limit && s->used <= limit - n)
		ring_put(s, p, n);
	else if (!r)
		r = 1;
	pthread_mutex_unlock(&s->mu);
	if (r == 1 && count)
		count_drop(s, p, n);
	return r;
}

int obs_sink_write(struct obs_sink *s, const char *p, size_t n, bool keep)
{
	return queue(s, p, n, keep, true);
}

int obs_sink_try_write(struct obs_sink *s, const char *p, size_t n)
{
	return queue(s, p, n, true, false);
}

int obs_sink_write_wait(struct obs_sink *s, const char *p, size_t n)
{
	int r = put_notice(s, true);
	if (r < 0)
		return r;
	s->dropping = false;
	if (s->fd < 0)
		return direct_write(s, p, n);
	pthread_mutex_lock(&s->mu);
	while (n && !s->error) {
		while (!s->error && s->used == s->cap)
			pthread_cond_wait(&s->room, &s->mu);
		if (s->error)
			break;
		size_t k = s->cap - s->used < n ? s->cap - s->used : n;
		ring_put(s, p, k);
		p += k;
		n -= k;
	}
	r = s->error;
	pthread_mutex_unlock(&s->mu);
	return r;
}

void obs_sink_dropped(const struct obs_sink *s, uint64_t *lines, uint64_t *bytes)
{
	*lines = s->total_lines;
	*bytes = s->total_bytes;
}

/* ---- life ------------------------------------------------------------------ */

int obs_sink_new(FILE *out, size_t cap, obs_notice_fn notice, void *ud,
		 struct obs_sink **sink)
{
	*sink = NULL;
	struct obs_sink *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->out = out;
	s->notice = notice;
	s->ud = ud;
	s->cap = cap ? cap : OBS_SINK_CAP;
	fflush(out);
	s->fd = fileno(out);
	if (s->fd < 0) {
		*sink = s;
		return 0;
	}
	int r = -ENOMEM;
	if (!(s->ring = malloc(s->cap)))
		goto fail;
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->more, NULL);
	pthread_cond_init(&s->room, NULL);
	/* The thread starts with every signal blocked: signals stay with the
	 * engine's thread, and a SIGPIPE from write() stays pending here. */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	r = -pthread_create(&s->thread, NULL, writer_main, s);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r < 0) {
		pthread_cond_destroy(&s->room);
		pthread_cond_destroy(&s->more);
		pthread_mutex_destroy(&s->mu);
		goto fail;
	}
	s->started = true;
	*sink = s;
	return 0;
fail:
	free(s->ring);
	free(s);
	return r;
}

void obs_sink_free(struct obs_sink *s)
{
	if (!s)
		return;
	put_notice(s, true);
	if (s->started) {
		pthread_mutex_lock(&s->mu);
		s->closing = true;
		pthread_cond_signal(&s->more);
		pthread_mutex_unlock(&s->mu);
		pthread_join(s->thread, NULL);
		pthread_cond_destroy(&s->room);
		pthread_cond_destroy(&s->more);
		pthread_mutex_destroy(&s->mu);
	}
	free(s->ring);
	free(s);
}
