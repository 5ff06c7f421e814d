/* serve.c: serve_main(): set up, start the threads, wait for a signal,
 * stop in order. Also the server's log.
 *
 * Stopping: the listening socket closes first (no new request), then the
 * scheduler (no new run), the SSE streams are ended, the HTTP threads
 * joined, the poller joined. Runs started by the server are NOT stopped:
 * they are processes of their own, in sessions of their own, recording into
 * the store; the log names each one left running, and a server started
 * again follows them from the store (README "dagrun serve").
 */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>

#include "serve/serve_int.h"
#include "util/clock.h"


void serve_log(struct serve *s, const char *fmt, ...)
{
	char ts[32];
	struct timespec now;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", &tm);
	va_list ap;
	va_start(ap, fmt);
	char *msg = buf_vstrf(fmt, ap);
	va_end(ap);
	/* Control characters from names and messages are escaped: the log is
	 * one line per event, whatever a workflow holds. */
	struct buf b = BUF_INIT;
	for (const char *p = msg ? msg : "out of memory"; *p; p++) {
		unsigned char c = (unsigned char)*p;
		if (c < 0x20 || c == 0x7f)
			buf_printf(&b, "\\x%02x", c);
		else
			buf_addc(&b, (char)c);
	}
	pthread_mutex_lock(&s->log_mu);
	fprintf(s->o.log, "%s dagrun serve: %s\n", ts, b.data ? b.data : "");
	fflush(s->o.log);
	pthread_mutex_unlock(&s->log_mu);
	buf_free(&b);
	free(msg);
}

static int parse_addr(const char *host, uint16_t port, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	struct sockaddr_in *in = (void *)ss;
	struct sockaddr_in6 *in6 = (void *)ss;
	if (inet_pton(AF_INET, host, &in->sin_addr) == 1) {
		in->sin_family = AF_INET;
		in->sin_port = htons(port);
		return 0;
	}
	if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons(port);
		return 0;
	}
	return -EINVAL;
}

static bool loopback(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET)
		return (ntohl(((const struct sockaddr_in *)ss)->sin_addr.s_addr) >> 24) == 127;
	const struct in6_addr *a = &((const struct sockaddr_in6 *)ss)->sin6_addr;
	return IN6_IS_ADDR_LOOPBACK(a);
}

/* Creates the state directory and its database (upgrading an older one),
 * so that the readers can open it read-only. */
static int prepare_state(struct serve *s)
{
	struct store_opts o = {.dir = s->state};
	struct store *st = NULL;
	char *err = NULL;
	int r = store_open(&store_sqlite_ops, &o, &st, &err);
	if (r < 0) {
		serve_log(s, "cannot open the state directory %s: %s", s->state,
			  err ? err : strerror(-r));
		free(err);
		return r;
	}
	return store_close(st);
}

static int wait_signal(sigset_t *set)
{
	int sig = 0;
	while (sigwait(set, &sig) != 0)
		;
	return sig;
}

static void init_locks(struct serve *s)
{
	pthread_mutex_init(&s->log_mu, NULL);
	pthread_mutex_init(&s->cat.mu, NULL);
	pthread_mutex_init(&s->rd.mu, NULL);
	pthread_cond_init(&s->rd.cv, NULL);
	pthread_mutex_init(&s->run.mu, NULL);
	pthread_mutex_init(&s->met.mu, NULL);
	pthread_mutex_init(&s->seen.mu, NULL);
	pthread_mutex_init(&s->sch.mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&s->sch.cv, &ca);
	pthread_condattr_destroy(&ca);
}

static void free_all(struct serve *s)
{
	catalog_free(s);
	readers_free(s);
	runner_free(s);
	met_free(s);
	hub_free(&s->hub);
	json_decref(s->sch.last);
	json_decref(s->sch.lag);
	json_decref(s->sch.queued);
	free(s->dir);
	free(s->state);
	free(s->exe);
}

static char *absolute(const char *p)
{
	char *r = realpath(p, NULL);
	return r;
}

int serve_main(const struct serve_opts *o)
{
	struct serve *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->o = *o;
	init_locks(s);
	s->poll_ms = o->poll_ms ? o->poll_ms : 100;
	int r = 0;
	struct MHD_Daemon *d = NULL;
	pthread_t poller, sched;
	bool poller_on = false, sched_on = false;
	char *why = NULL;
	struct sockaddr_storage ss;

	if (parse_addr(o->host, o->port, &ss) < 0) {
		serve_log(s, "--listen: '%s' is not an IP address", o->host);
		r = -EINVAL;
		goto out;
	}
	if (!loopback(&ss) && !o->token) {
		serve_log(s, "listening on %s (not a loopback address) needs --token-file: "
			  "every request would be trusted", o->host);
		r = -EPERM;
		goto out;
	}
	if (mkdir(o->state, 0700) < 0 && errno != EEXIST) {
		r = -errno;
		serve_log(s, "cannot create the state directory %s: %s", o->state, strerror(errno));
		goto out;
	}
	if (!(s->dir = absolute(o->dir)) || !(s->state = absolute(o->state))) {
		r = -errno;
		serve_log(s, "cannot find %s: %s", s->dir ? o->state : o->dir, strerror(errno));
		goto out;
	}
	if (!(s->exe = strdup(o->exe))) {
		r = -ENOMEM;
		goto out;
	}
	if (gethostname(s->host, sizeof(s->host) - 1) < 0)
		strcpy(s->host, "localhost");
	if ((r = prepare_state(s)) < 0 || (r = hub_init(&s->hub)) < 0)
		goto out;
	catalog_scan(s, 0);

	/* Signals are taken by sigwait() here; every thread started from now
	 * on inherits the mask. SIGPIPE: a client gone is a failed write. */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	s->sch.speed = o->clock_speed > 0 ? o->clock_speed : 1;
	s->sch.real0_ms = s->sch.clock0_ms = clock_wall_ms();
	if ((r = -pthread_create(&poller, NULL, poll_thread, s)) < 0)
		goto out;
	poller_on = true;
	if (!(d = http_start(s, (struct sockaddr *)&ss, &why))) {
		serve_log(s, "%s:%u: %s", o->host, o->port, why ? why : "cannot listen");
		r = -EADDRINUSE;
		goto out;
	}
	if ((r = -pthread_create(&sched, NULL, sched_thread, s)) < 0)
		goto out;
	sched_on = true;
	const union MHD_DaemonInfo *di = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
	unsigned port = di ? di->port : o->port;
	bool v6 = ss.ss_family == AF_INET6;
	serve_log(s, "listening on http://%s%s%s:%u/ (workflows in %s, state in %s%s)",
		  v6 ? "[" : "", o->host, v6 ? "]" : "", port, s->dir, s->state,
		  o->token ? ", token required" : "");
	if (o->ready) {
		fprintf(o->ready, "http://%s%s%s:%u/\n", v6 ? "[" : "", o->host, v6 ? "]" : "", port);
		fflush(o->ready);
	}
	int sig = wait_signal(&set);
	serve_log(s, "stopping (%s)", sig == SIGINT ? "SIGINT" : sig == SIGTERM ? "SIGTERM" : "SIGHUP");
out:
	if (d)
		MHD_quiesce_daemon(d);
	if (sched_on) {
		pthread_mutex_lock(&s->sch.mu);
		s->sch.stop = true;
		pthread_cond_broadcast(&s->sch.cv);
		pthread_mutex_unlock(&s->sch.mu);
		pthread_join(sched, NULL);
	}
	hub_close(&s->hub);
	if (d)
		MHD_stop_daemon(d);
	atomic_store(&s->stop, true);
	if (poller_on)
		pthread_join(poller, NULL);
	runner_leave(s);
	free(why);
	free_all(s);
	free(s);
	return r;
}
