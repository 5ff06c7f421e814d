/* http_client.c: libcurl's multi-socket interface on a libuv loop; see http.h.
 * A transfer and its result are in http_xfer.c, the headers of a request
 * and of its response in http_headers.c, redirects followed by hand in
 * http_redirect.c; http_client_int.h declares what they share.
 *
 * Invariant: every transfer is on exactly one of three lists: queued (in
 * FIFO order, waiting for one of max_in_flight slots; no curl state yet
 * beyond its easy handle), running (added to the multi handle), or done
 * (removed from the multi handle, its response complete, waiting to be
 * delivered). Done transfers are delivered only from the loop: by the
 * poll and timer callbacks once curl has returned, or by c->later, a
 * zero-delay timer armed whenever a transfer lands on done elsewhere
 * (cancel, a failed add). So no user callback ever runs inside start(),
 * cancel() or a curl callback, except on_data, which must not call back
 * into the client.
 *
 * Handles: c->timer is curl's timeout, c->later the delivery timer, and
 * one uv_poll_t per socket curl asks to watch. The client is freed when
 * the last of them is closed (c->open_handles).
 */
#include "exec/http_client_int.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

/* The one global: libcurl's initialisation, once per process. */
static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

static void curl_init_once(void)
{
	/* A failure shows up as curl_multi_init/curl_easy_init returning NULL. */
	(void)curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* ---- lists ----------------------------------------------------------------- */

void http_list_push(struct xlist *l, struct http_xfer *x)
{
	x->list = l;
	x->next = NULL;
	x->prev = l->tail;
	if (l->tail)
		l->tail->next = x;
	else
		l->head = x;
	l->tail = x;
	l->n++;
}

void http_list_remove(struct http_xfer *x)
{
	struct xlist *l = x->list;
	if (!l)
		return;
	if (x->prev)
		x->prev->next = x->next;
	else
		l->head = x->next;
	if (x->next)
		x->next->prev = x->prev;
	else
		l->tail = x->prev;
	l->n--;
	x->list = NULL;
	x->prev = x->next = NULL;
}

/* ---- handles --------------------------------------------------------------- */

static void handle_closed(struct http_client *c)
{
	if (--c->open_handles == 0 && c->freeing)
		free(c);
}

static void on_sock_closed(uv_handle_t *h)
{
	struct sock *s = h->data;
	struct http_client *c = s->c;
	free(s);
	handle_closed(c);
}

static void on_timer_closed(uv_handle_t *h)
{
	handle_closed(h->data);
}

static void sock_close(struct sock *s)
{
	struct http_client *c = s->c;
	if (s->prev)
		s->prev->next = s->next;
	else
		c->socks = s->next;
	if (s->next)
		s->next->prev = s->prev;
	uv_close((uv_handle_t *)&s->poll, on_sock_closed);
}

/* ---- delivery --------------------------------------------------------------- */

static void deliver(struct http_client *c)
{
	if (c->delivering || c->freeing)
		return;
	c->delivering = true;
	struct http_xfer *x;
	while (!c->freeing && (x = c->done.head)) {
		http_list_remove(x);
		x->on_done(x->ud, &x->res);
		http_xfer_free(x);
	}
	c->delivering = false;
}

static void on_later(uv_timer_t *t)
{
	deliver(t->data);
}

void http_arm_later(struct http_client *c)
{
	if (c->done.n && !c->freeing)
		uv_timer_start(&c->later, on_later, 0, 0);
}

/* Starts the queued transfers that fit under the in-flight cap. */
void http_pump(struct http_client *c)
{
	while (c->queued.head && c->running.n < c->max_in_flight && !c->freeing) {
		struct http_xfer *x = c->queued.head;
		http_list_remove(x);
		x->started_ns = uv_hrtime();
		uint64_t waited = (x->started_ns - x->queued_ns) / 1000000;
		x->res.timing.queue_us = (x->started_ns - x->queued_ns) / 1000;
		if (waited >= x->timeout_ms) {
			snprintf(x->res.error, sizeof(x->res.error),
				 "no free connection slot within the timeout");
			http_finish(x, CURLE_OPERATION_TIMEDOUT);
			continue;
		}
		uint64_t left = x->timeout_ms - waited;
		uint64_t conn = x->connect_timeout_ms < left ? x->connect_timeout_ms : left;
		curl_easy_setopt(x->easy, CURLOPT_TIMEOUT_MS, (long)left);
		curl_easy_setopt(x->easy, CURLOPT_CONNECTTIMEOUT_MS, (long)conn);
		http_list_push(&c->running, x);
		if (curl_multi_add_handle(c->multi, x->easy) != CURLM_OK) {
			http_list_remove(x);
			x->res.err = -ENOMEM;
			snprintf(x->res.error, sizeof(x->res.error), "cannot start the transfer");
			http_finish(x, CURLE_OK);
		}
	}
}

/* After curl ran: collects finished transfers, starts queued ones and
 * delivers. Called only from loop callbacks. */
static void progress(struct http_client *c)
{
	CURLMsg *m;
	int left;
	while ((m = curl_multi_info_read(c->multi, &left))) {
		if (m->msg != CURLMSG_DONE)
			continue;
		CURL *e = m->easy_handle;
		CURLcode code = m->data.result;
		char *priv = NULL;
		curl_easy_getinfo(e, CURLINFO_PRIVATE, &priv);
		struct http_xfer *x = (struct http_xfer *)(void *)priv;
		if (x && code == CURLE_OK && x->redirecting && http_follow(x))
			continue;
		if (x)
			http_finish(x, code);
	}
	http_pump(c);
	deliver(c);
}

/* ---- curl's callbacks -------------------------------------------------------- */

/* A socket is ready. On an error status (libuv's EBADF for POLLERR: a
 * reset, or a close by the server of a kept-alive connection), curl is told
 * the socket is ready for what it waits for, never CURL_CSELECT_ERR: it
 * then reads or writes, meets the real error (ECONNRESET, EOF) itself, and
 * does what curl does with it: retries a request on a fresh connection
 * when a reused one died before any byte of the reply, or fails with its
 * own message. CURL_CSELECT_ERR would fail the transfer at once with
 * "select/poll returned error". libuv stopped the handle on the error: it
 * is watched again unless curl changed or dropped the socket meanwhile. */
static void on_poll(uv_poll_t *h, int status, int events)
{
	struct sock *s = h->data;
	struct http_client *c = s->c;
	int flags = 0, running;
	if (status < 0)
		events = s->events;
	if (events & UV_READABLE)
		flags |= CURL_CSELECT_IN;
	if (events & UV_WRITABLE)
		flags |= CURL_CSELECT_OUT;
	curl_multi_socket_action(c->multi, s->fd, flags, &running);
	if (status < 0 && !uv_is_closing((uv_handle_t *)h) && !uv_is_active((uv_handle_t *)h) &&
	    s->events)
		uv_poll_start(h, s->events, on_poll);
	progress(c);
}

static void on_timeout(uv_timer_t *t)
{
	struct http_client *c = t->data;
	int running;
	curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	progress(c);
}

static int on_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
	(void)easy;
	struct http_client *c = userp;
	struct sock *s = socketp;
	if (what == CURL_POLL_REMOVE) {
		if (s) {
			curl_multi_assign(c->multi, fd, NULL);
			sock_close(s);
		}
		return 0;
	}
	if (!s) {
		if (!(s = calloc(1, sizeof(*s))))
			return -1;
		if (uv_poll_init_socket(c->loop, &s->poll, fd) < 0) {
			free(s);
			return -1;
		}
		s->fd = fd;
		s->c = c;
		s->poll.data = s;
		s->next = c->socks;
		if (c->socks)
			c->socks->prev = s;
		c->socks = s;
		c->open_handles++;
		curl_multi_assign(c->multi, fd, s);
	}
	int ev = 0;
	if (what & CURL_POLL_IN)
		ev |= UV_READABLE;
	if (what & CURL_POLL_OUT)
		ev |= UV_WRITABLE;
	s->events = ev;
	uv_poll_start(&s->poll, ev, on_poll);
	return 0;
}

static int on_curl_timer(CURLM *multi, long ms, void *userp)
{
	(void)multi;
	struct http_client *c = userp;
	if (ms < 0)
		uv_timer_stop(&c->timer);
	else
		uv_timer_start(&c->timer, on_timeout, (uint64_t)ms, 0);
	return 0;
}

unsigned http_client_live(const struct http_client *c)
{
	return c->queued.n + c->running.n + c->done.n;
}

/* ---- the client ------------------------------------------------------------- */

int http_client_new(uv_loop_t *loop, const struct http_limits *lim,
		    struct http_client **out)
{
	*out = NULL;
	pthread_once(&curl_once, curl_init_once);
	struct http_client *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	struct http_limits l = lim ? *lim : (struct http_limits){0};
	c->loop = loop;
	c->max_in_flight = l.max_in_flight ? l.max_in_flight : HTTP_DEFAULT_IN_FLIGHT;
	long host = l.max_host_connections ? (long)l.max_host_connections
					   : (long)HTTP_DEFAULT_HOST_CONNECTIONS;
	long total = l.max_total_connections ? (long)l.max_total_connections
					     : (long)c->max_in_flight;
	if (!(c->multi = curl_multi_init())) {
		free(c);
		return -EIO;
	}
	curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
	curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, (void *)c);
	curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
	curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, (void *)c);
	curl_multi_setopt(c->multi, CURLMOPT_MAX_HOST_CONNECTIONS, host);
	curl_multi_setopt(c->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, total);
	uv_timer_init(loop, &c->timer);
	uv_timer_init(loop, &c->later);
	c->timer.data = c->later.data = c;
	c->open_handles = 2;
	*out = c;
	return 0;
}

static void drop_list(struct http_client *c, struct xlist *l)
{
	struct http_xfer *x;
	while ((x = l->head)) {
		if (l == &c->running)
			curl_multi_remove_handle(c->multi, x->easy);
		http_list_remove(x);
		http_xfer_free(x);
	}
}

void http_client_free(struct http_client *c)
{
	if (!c || c->freeing)
		return;
	c->freeing = true;
	drop_list(c, &c->running);
	drop_list(c, &c->queued);
	drop_list(c, &c->done);
	/* May report sockets removed: on_socket closes their polls. */
	curl_multi_cleanup(c->multi);
	c->multi = NULL;
	while (c->socks)
		sock_close(c->socks);
	uv_close((uv_handle_t *)&c->timer, on_timer_closed);
	uv_close((uv_handle_t *)&c->later, on_timer_closed);
}
