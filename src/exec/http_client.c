/* http_client.c: libcurl's multi-socket interface on a libuv loop; see http.h.
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
 *
 * Redirects: curl follows them (CURLOPT_FOLLOWLOCATION) and keeps custom
 * headers across origins. A request with a private header or body turns
 * that off and follows them here (follow()): the easy handle stays on the
 * running list and is re-added for each hop, with the same limits and
 * method rules, and private headers go only to the first URL's origin.
 */
#include "exec/http.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "dagrun.h"
#include "util/clock.h"

struct xlist {
	struct http_xfer *head, *tail;
	unsigned n;
};

struct sock {
	uv_poll_t poll;
	curl_socket_t fd;
	int events;                   /* UV_READABLE | UV_WRITABLE, as curl asked */
	struct http_client *c;
	struct sock *prev, *next;     /* c->socks, while open */
};

struct http_client {
	uv_loop_t *loop;
	CURLM *multi;
	uv_timer_t timer;             /* curl's timeout */
	uv_timer_t later;             /* delivers c->done from the loop */
	struct xlist queued, running, done;
	struct sock *socks;
	unsigned max_in_flight;
	unsigned open_handles;
	bool freeing, delivering;
};

struct http_xfer {
	struct http_client *c;
	struct xlist *list;
	struct http_xfer *prev, *next;
	CURL *easy;
	struct curl_slist *hdrs;
	char *body;                   /* our copy, sent from here */
	uint64_t timeout_ms, connect_timeout_ms, cap;
	bool discard_body;
	http_data_fn on_data;
	http_done_fn on_done;
	void *ud;
	uint64_t queued_ns, started_ns;
	size_t header_bytes;
	bool in_headers;              /* a status line came, the blank line not yet */
	struct http_response res;
	char errbuf[CURL_ERROR_SIZE];
	/* Redirects followed here (self) rather than by curl: */
	bool self;
	bool body_private;
	bool sends_body;              /* the method now sends x->body */
	bool saw_location;            /* this response has a Location */
	bool redirecting;             /* this response is followed: no body */
	bool post, head;              /* the method now is POST, HEAD */
	struct curl_slist *pub_hdrs;  /* hdrs without the private ones */
	char *origin;                 /* of the first URL */
	unsigned hops;
	uint64_t hops_us;             /* total time of the hops before this one */
};

/* The one global: libcurl's initialisation, once per process. */
static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

static void curl_init_once(void)
{
	/* A failure shows up as curl_multi_init/curl_easy_init returning NULL. */
	(void)curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* ---- lists ----------------------------------------------------------------- */

static void list_push(struct xlist *l, struct http_xfer *x)
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

static void list_remove(struct http_xfer *x)
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

static void xfer_free(struct http_xfer *x)
{
	if (!x)
		return;
	if (x->easy)
		curl_easy_cleanup(x->easy);
	curl_slist_free_all(x->hdrs);
	curl_slist_free_all(x->pub_hdrs);
	free(x->origin);
	free(x->body);
	json_decref(x->res.headers);
	buf_free(&x->res.body);
	free(x);
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

/* ---- completion ------------------------------------------------------------ */

static void collect_info(struct http_xfer *x)
{
	CURL *e = x->easy;
	long status = 0, redirects = 0;
	curl_off_t t;
	curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
	x->res.status = (int)status;
	struct exec_http_timing *tm = &x->res.timing;
	if (curl_easy_getinfo(e, CURLINFO_NAMELOOKUP_TIME_T, &t) == CURLE_OK && t > 0)
		tm->dns_us = (uint64_t)t;
	if (curl_easy_getinfo(e, CURLINFO_CONNECT_TIME_T, &t) == CURLE_OK && t > 0)
		tm->connect_us = (uint64_t)t;
	if (curl_easy_getinfo(e, CURLINFO_APPCONNECT_TIME_T, &t) == CURLE_OK && t > 0)
		tm->tls_us = (uint64_t)t;
	if (curl_easy_getinfo(e, CURLINFO_STARTTRANSFER_TIME_T, &t) == CURLE_OK && t > 0)
		tm->first_byte_us = (uint64_t)t;
	if (curl_easy_getinfo(e, CURLINFO_TOTAL_TIME_T, &t) == CURLE_OK && t > 0)
		tm->total_us = (uint64_t)t;
	if (curl_easy_getinfo(e, CURLINFO_REDIRECT_COUNT, &redirects) == CURLE_OK && redirects > 0)
		tm->redirects = (uint32_t)redirects;
	if (x->self) {
		/* each hop was a transfer of its own: count from the first */
		uint64_t *phase[] = {&tm->dns_us, &tm->connect_us, &tm->tls_us,
				     &tm->first_byte_us, &tm->total_us};
		for (size_t i = 0; i < sizeof(phase) / sizeof(phase[0]); i++)
			if (*phase[i])
				*phase[i] += x->hops_us;
		tm->redirects = x->hops;
	}
}

/* Recognises curl's own limits on response headers, which curl 7.x and
 * 8.0 to 8.5 report under codes that also mean other things, so that they
 * fail the request for good, with a message that says what was too large,
 * instead of a retry: one header line over CURL_MAX_HTTP_HEADER (100 KiB)
 * is CURLE_OUT_OF_MEMORY, all the headers over curl's total (300 KiB) are
 * CURLE_RECV_ERROR "Too large response headers" (CURLE_TOO_LARGE, a code
 * of its own, since 8.6). Only while the headers of a reply are being
 * received, after the request went out: an allocation that really failed
 * there is a header growing without end all the same. */
static void header_limit(struct http_xfer *x, CURLcode code)
{
	struct http_response *r = &x->res;
	long sent = 0;
	curl_easy_getinfo(x->easy, CURLINFO_REQUEST_SIZE, &sent);
	bool reading_headers = x->in_headers || (sent > 0 && !r->status && !r->body_bytes);
	if (!reading_headers)
		return;
	if (code == CURLE_OUT_OF_MEMORY) {
		r->headers_too_large = true;
		snprintf(r->error, sizeof(r->error), "a response header is larger than "
			 "curl's limit of %d KiB", CURL_MAX_HTTP_HEADER / 1024);
	} else if ((code == CURLE_RECV_ERROR &&
		    !strncmp(x->errbuf, "Too large response header", 25)) ||
		   code == (CURLcode)100 /* CURLE_TOO_LARGE, curl >= 8.6 */) {
		r->headers_too_large = true;
		snprintf(r->error, sizeof(r->error), "response headers larger than curl's "
			 "limit (%.200s)", x->errbuf[0] ? x->errbuf : curl_easy_strerror(code));
	}
}

/* Moves x to done with curl's outcome code (CURLE_OK when none), taking
 * it out of the multi handle when it was running. */
static void finish(struct http_xfer *x, CURLcode code)
{
	struct http_client *c = x->c;
	struct http_response *r = &x->res;
	bool running = x->list == &c->running;
	if (running) {
		collect_info(x);
		curl_multi_remove_handle(c->multi, x->easy);
	}
	list_remove(x);
	r->curl_code = (int)code;
	if (code == CURLE_OPERATION_TIMEDOUT)
		r->timed_out = true;
	if (code == CURLE_FILESIZE_EXCEEDED && !r->too_large) {
		r->too_large = true;
		snprintf(r->error, sizeof(r->error), "response body larger than the limit "
			 "of %" PRIu64 " bytes (maxResponseBytes; Content-Length says more)", x->cap);
	}
	if (running && code != CURLE_OK && !r->error[0])
		header_limit(x, code);
	if (code != CURLE_OK && !r->error[0])
		snprintf(r->error, sizeof(r->error), "%s",
			 x->errbuf[0] ? x->errbuf : curl_easy_strerror(code));
	r->end_ms = clock_wall_ms();
	r->duration_ms = (uv_hrtime() - x->queued_ns) / 1000000;
	list_push(&c->done, x);
}

static void deliver(struct http_client *c)
{
	if (c->delivering || c->freeing)
		return;
	c->delivering = true;
	struct http_xfer *x;
	while (!c->freeing && (x = c->done.head)) {
		list_remove(x);
		x->on_done(x->ud, &x->res);
		xfer_free(x);
	}
	c->delivering = false;
}

static void on_later(uv_timer_t *t)
{
	deliver(t->data);
}

static void arm_later(struct http_client *c)
{
	if (c->done.n && !c->freeing)
		uv_timer_start(&c->later, on_later, 0, 0);
}

/* Starts the queued transfers that fit under the in-flight cap. */
static void pump(struct http_client *c)
{
	while (c->queued.head && c->running.n < c->max_in_flight && !c->freeing) {
		struct http_xfer *x = c->queued.head;
		list_remove(x);
		x->started_ns = uv_hrtime();
		uint64_t waited = (x->started_ns - x->queued_ns) / 1000000;
		x->res.timing.queue_us = (x->started_ns - x->queued_ns) / 1000;
		if (waited >= x->timeout_ms) {
			snprintf(x->res.error, sizeof(x->res.error),
				 "no free connection slot within the timeout");
			finish(x, CURLE_OPERATION_TIMEDOUT);
			continue;
		}
		uint64_t left = x->timeout_ms - waited;
		uint64_t conn = x->connect_timeout_ms < left ? x->connect_timeout_ms : left;
		curl_easy_setopt(x->easy, CURLOPT_TIMEOUT_MS, (long)left);
		curl_easy_setopt(x->easy, CURLOPT_CONNECTTIMEOUT_MS, (long)conn);
		list_push(&c->running, x);
		if (curl_multi_add_handle(c->multi, x->easy) != CURLM_OK) {
			list_remove(x);
			x->res.err = -ENOMEM;
			snprintf(x->res.error, sizeof(x->res.error), "cannot start the transfer");
			finish(x, CURLE_OK);
		}
	}
}

/* "scheme://host:port" of url, lower-cased; malloc'd, or NULL. */
static char *origin_of(const char *url)
{
	CURLU *u = curl_url();
	char *scheme = NULL, *host = NULL, *port = NULL, *o = NULL;
	if (u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) == CURLUE_OK &&
	    (o = buf_strf("%s://%s:%s", scheme, host, port)))
		for (char *p = o; *p; p++)
			*p = (char)tolower((unsigned char)*p);
	curl_free(scheme);
	curl_free(host);
	curl_free(port);
	curl_url_cleanup(u);
	return o;
}

static bool is_redirect(long status)
{
	return status == 300 || status == 301 || status == 302 || status == 303 ||
	       status == 307 || status == 308;     /* what curl follows */
}

/* Sends x on to next for its next hop (curl's handle is out of the multi
 * handle): the header list for that origin, the time left, and a GET when
 * the method changes. Returns 0, or -ENOMEM (x is then finished). */
static int next_hop(struct http_xfer *x, const char *next, bool same, bool to_get,
		    uint64_t waited)
{
	CURL *e = x->easy;
	uint64_t left = x->timeout_ms - waited;
	uint64_t conn = x->connect_timeout_ms < left ? x->connect_timeout_ms : left;
	bool ok = curl_easy_setopt(e, CURLOPT_URL, next) == CURLE_OK &&
		  curl_easy_setopt(e, CURLOPT_HTTPHEADER, same ? x->hdrs : x->pub_hdrs) == CURLE_OK &&
		  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)left) == CURLE_OK &&
		  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)conn) == CURLE_OK;
	if (ok && to_get) {
		ok = curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, NULL) == CURLE_OK &&
		     curl_easy_setopt(e, CURLOPT_HTTPGET, 1L) == CURLE_OK;
		x->post = x->sends_body = false;
	}
	x->hops++;
	x->redirecting = x->saw_location = false;
	x->header_bytes = 0;
	buf_reset(&x->res.body);
	x->res.body_bytes = 0;
	if (ok && curl_multi_add_handle(x->c->multi, e) == CURLM_OK)
		return 0;
	list_remove(x);   /* no longer in the multi handle: finish as not running */
	x->res.err = -ENOMEM;
	snprintf(x->res.error, sizeof(x->res.error), "cannot follow the redirect");
	finish(x, CURLE_OK);
	return -ENOMEM;
}

/* The hop of a self-following transfer ended with a redirect: starts the
 * next one. Returns false when the response is final after all (no
 * usable Location, or a private body would go to another origin), true
 * when x went on or finished. */
static bool follow(struct http_xfer *x)
{
	CURL *e = x->easy;
	char *loc = NULL, *next = NULL, *origin = NULL;
	long status = 0;
	curl_off_t hop_us = 0;
	curl_easy_getinfo(e, CURLINFO_REDIRECT_URL, &loc);
	curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
	if (!loc)
		return false;
	if (x->hops >= HTTP_MAX_REDIRECTS) {
		snprintf(x->res.error, sizeof(x->res.error), "Maximum (%d) redirects followed",
			 HTTP_MAX_REDIRECTS);
		finish(x, CURLE_TOO_MANY_REDIRECTS);
		return true;
	}
	/* curl's rules: a 303 (but after HEAD), and a 301 or 302 after a POST,
	 * go on as a GET without a body; others keep the method and body */
	bool to_get = (status == 303 && !x->head) || ((status == 301 || status == 302) && x->post);
	if (!(next = strdup(loc))) {
		x->res.err = -ENOMEM;
		finish(x, CURLE_OK);
		return true;
	}
	origin = origin_of(next);
	bool same = origin && x->origin && !strcmp(origin, x->origin);
	bool followed = true;
	uint64_t waited = (uv_hrtime() - x->queued_ns) / 1000000;
	if (!same && x->sends_body && !to_get && x->body_private) {
		x->res.redirect_refused = true;
		followed = false;
	} else if (waited >= x->timeout_ms) {
		snprintf(x->res.error, sizeof(x->res.error), "timed out following a redirect");
		finish(x, CURLE_OPERATION_TIMEDOUT);
	} else {
		if (curl_easy_getinfo(e, CURLINFO_TOTAL_TIME_T, &hop_us) == CURLE_OK && hop_us > 0)
			x->hops_us += (uint64_t)hop_us;
		curl_multi_remove_handle(x->c->multi, e);
		(void)next_hop(x, next, same, to_get, waited);
	}
	free(next);
	free(origin);
	return followed;
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
		if (x && code == CURLE_OK && x->redirecting && follow(x))
			continue;
		if (x)
			finish(x, code);
	}
	pump(c);
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

/* Adds "name: value" to r->headers, the name lower-cased, a repeated name
 * joined with ", ". Returns 0 or -ENOMEM. */
static int add_header(json_t *h, const char *name, size_t nlen, const char *val, size_t vlen)
{
	char key[256];
	if (nlen == 0 || nlen >= sizeof(key))
		return 0;     /* not a header we can name; dropped */
	for (size_t i = 0; i < nlen; i++)
		key[i] = (char)tolower((unsigned char)name[i]);
	key[nlen] = '\0';
	struct buf v = BUF_INIT;
	const json_t *old = json_object_get(h, key);
	int r = 0;
	if (old && (r = buf_printf(&v, "%s, ", json_string_value(old))) < 0)
		goto out;
	if ((r = buf_add(&v, val, vlen)) < 0)
		goto out;
	json_t *s = json_stringn(v.data, v.len);
	if (!s) {
		/* Not UTF-8: keep ASCII, mark the rest. */
		for (size_t i = 0; i < v.len; i++)
			if ((unsigned char)v.data[i] >= 0x80)
				v.data[i] = '?';
		s = json_stringn(v.data, v.len);
	}
	if (!s || json_object_set_new(h, key, s) < 0)
		r = -ENOMEM;
out:
	buf_free(&v);
	return r;
}

static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
	struct http_xfer *x = ud;
	size_t len = size * n;
	struct http_response *r = &x->res;
	if (len >= 5 && !memcmp(p, "HTTP/", 5)) {
		/* A new response (after a redirect or a 1xx): start over. */
		json_decref(r->headers);
		r->headers = json_object();
		x->header_bytes = 0;
		x->in_headers = true;
		if (!r->headers)
			r->err = -ENOMEM;
		x->saw_location = x->redirecting = false;
		return r->headers ? len : 0;
	}
	x->header_bytes += len;
	if (x->header_bytes > HTTP_MAX_HEADER_BYTES) {
		r->headers_too_large = true;
		snprintf(r->error, sizeof(r->error), "response headers larger than %zu "
			 "KiB in all", HTTP_MAX_HEADER_BYTES >> 10);
		return 0;
	}
	if (!r->headers && !(r->headers = json_object())) {
		r->err = -ENOMEM;
		return 0;
	}
	while (len && (p[len - 1] == '\n' || p[len - 1] == '\r'))
		len--;
	if (!len)
		x->in_headers = false;  /* the blank line: the headers are complete */
	const char *colon = memchr(p, ':', len);
	if (!len && x->self) {
		/* the end of a response's headers: is it a redirect we follow? */
		long status = 0;
		curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
		x->redirecting = x->saw_location && is_redirect(status);
	}
	if (!len || p[0] == ' ' || p[0] == '\t' || !colon)
		return size * n;  /* the blank line, obsolete folding, junk */
	size_t nlen = (size_t)(colon - p);
	while (nlen && (p[nlen - 1] == ' ' || p[nlen - 1] == '\t'))
		nlen--;
	if (nlen == 8 && !strncasecmp(p, "location", 8))
		x->saw_location = true;
	const char *v = colon + 1, *end = p + len;
	while (v < end && (*v == ' ' || *v == '\t'))
		v++;
	while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	if (add_header(r->headers, p, nlen, v, (size_t)(end - v)) < 0) {
		r->err = -ENOMEM;
		return 0;
	}
	return size * n;
}

static size_t on_write(char *p, size_t size, size_t n, void *ud)
{
	struct http_xfer *x = ud;
	size_t len = size * n;
	struct http_response *r = &x->res;
	if (x->redirecting)
		return len;     /* the body of a redirect we follow, as curl drops it */
	r->body_bytes += len;
	if (r->body_bytes > x->cap) {
		r->too_large = true;
		snprintf(r->error, sizeof(r->error), "response body larger than the limit "
			 "of %" PRIu64 " bytes (maxResponseBytes)", x->cap);
		return 0;
	}
	if (!x->discard_body && buf_add(&r->body, p, len) < 0) {
		r->err = -ENOMEM;
		return 0;
	}
	if (x->on_data && x->on_data(x->ud, p, len) < 0) {
		r->aborted = true;
		return 0;
	}
	return len;
}

/* ---- requests ------------------------------------------------------------- */

static bool is_method(const char *m, const char *name)
{
	return m && !strcasecmp(m, name);
}

/* The method and body options. Returns 0 or -ENOMEM. */
static int set_method(struct http_xfer *x, const struct http_request *rq)
{
	CURL *e = x->easy;
	const char *m = rq->method && *rq->method ? rq->method : "GET";
	if (is_method(m, "HEAD"))
		return curl_easy_setopt(e, CURLOPT_NOBODY, 1L) == CURLE_OK ? 0 : -ENOMEM;
	bool sends = rq->body || is_method(m, "POST") || is_method(m, "PUT") ||
		     is_method(m, "PATCH");
	if (sends) {
		/* A POST, PUT or PATCH without a body still says Content-Length: 0. */
		size_t len = rq->body ? rq->body_len : 0;
		if (!(x->body = malloc(len + 1)))
			return -ENOMEM;
		if (len)
			memcpy(x->body, rq->body, len);
		x->body[len] = '\0';
		curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, x->body);
		if (!is_method(m, "POST"))
			return curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, m) == CURLE_OK ? 0 : -ENOMEM;
		return 0;
	}
	if (is_method(m, "GET"))
		return 0;
	return curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, m) == CURLE_OK ? 0 : -ENOMEM;
}

/* Whether header line i must stay with the first URL's origin: marked
 * private, or one curl itself keeps from other hosts. */
static bool private_header(const struct http_request *rq, size_t i)
{
	static const char *const always[] = {"authorization", "proxy-authorization", "cookie"};
	if (rq->private_headers && rq->private_headers[i])
		return true;
	const char *h = rq->headers[i];
	for (size_t k = 0; k < sizeof(always) / sizeof(always[0]); k++) {
		size_t n = strlen(always[k]);
		if (!strncasecmp(h, always[k], n) && (h[n] == ':' || h[n] == ';'))
			return true;
	}
	return false;
}

/* The header list (and, when redirects are followed here, the one for
 * other origins). Returns 0 or -ENOMEM. */
static int set_headers(struct http_xfer *x, const struct http_request *rq)
{
	struct curl_slist *l = NULL, *pub = NULL, *n;
	for (size_t i = 0; i < rq->n_headers; i++) {
		if (!(n = curl_slist_append(l, rq->headers[i])))
			goto fail;
		l = n;
		if (x->self && !private_header(rq, i)) {
			if (!(n = curl_slist_append(pub, rq->headers[i])))
				goto fail;
			pub = n;
		}
	}
	/* No "Expect: 100-continue" round trip before large bodies. */
	if (!(n = curl_slist_append(l, "Expect:")))
		goto fail;
	l = n;
	if (x->self) {
		if (!(n = curl_slist_append(pub, "Expect:")))
			goto fail;
		pub = n;
	}
	x->hdrs = l;
	x->pub_hdrs = pub;
	return curl_easy_setopt(x->easy, CURLOPT_HTTPHEADER, x->hdrs) == CURLE_OK ? 0 : -ENOMEM;
fail:
	curl_slist_free_all(l);
	curl_slist_free_all(pub);
	return -ENOMEM;
}

/* Whether redirects must be followed here: a private header, or a
 * private body that is sent. */
static bool follows_itself(const struct http_request *rq)
{
	for (size_t i = 0; rq->private_headers && i < rq->n_headers; i++)
		if (rq->private_headers[i])
			return true;
	return rq->private_body && rq->body;
}

static int setup(struct http_xfer *x, const struct http_request *rq)
{
	CURL *e = x->easy;
	CURLcode bad = CURLE_OK;
#define SET(opt, val) do { CURLcode c_ = curl_easy_setopt(e, opt, val); \
		if (c_ != CURLE_OK && bad == CURLE_OK) bad = c_; } while (0)
	SET(CURLOPT_URL, rq->url);
	SET(CURLOPT_PRIVATE, (void *)x);
	SET(CURLOPT_ERRORBUFFER, x->errbuf);
	SET(CURLOPT_NOSIGNAL, 1L);
	SET(CURLOPT_WRITEFUNCTION, on_write);
	SET(CURLOPT_WRITEDATA, (void *)x);
	SET(CURLOPT_HEADERFUNCTION, on_header);
	SET(CURLOPT_HEADERDATA, (void *)x);
	SET(CURLOPT_PROTOCOLS_STR, "http,https");
	SET(CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
	SET(CURLOPT_FOLLOWLOCATION, x->self ? 0L : 1L);
	SET(CURLOPT_MAXREDIRS, (long)HTTP_MAX_REDIRECTS);
	SET(CURLOPT_SSL_VERIFYPEER, rq->insecure ? 0L : 1L);
	SET(CURLOPT_SSL_VERIFYHOST, rq->insecure ? 0L : 2L);
	SET(CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)x->cap);
	SET(CURLOPT_USERAGENT, "dagrun/" DAGRUN_VERSION);
#undef SET
	if (bad == CURLE_OUT_OF_MEMORY)
		return -ENOMEM;
	if (bad != CURLE_OK)
		return -EINVAL;
	int r = set_headers(x, rq);
	if (r == 0)
		r = set_method(x, rq);
	if (r == 0 && x->self) {
		const char *m = rq->method && *rq->method ? rq->method : "GET";
		x->body_private = rq->private_body;
		x->sends_body = x->body != NULL;
		x->post = is_method(m, "POST");
		x->head = is_method(m, "HEAD");
		x->origin = origin_of(rq->url);   /* NULL: every hop is another origin */
	}
	return r;
}

int http_request_start(struct http_client *c, const struct http_request *rq,
		       struct http_xfer **out)
{
	*out = NULL;
	if (!rq->url || !rq->on_done || c->freeing)
		return -EINVAL;
	struct http_xfer *x = calloc(1, sizeof(*x));
	if (!x)
		return -ENOMEM;
	int r = 0;
	x->c = c;
	x->timeout_ms = rq->timeout_ms ? rq->timeout_ms : HTTP_DEFAULT_TIMEOUT_MS;
	x->connect_timeout_ms = rq->connect_timeout_ms ? rq->connect_timeout_ms
						       : HTTP_DEFAULT_CONNECT_TIMEOUT_MS;
	x->cap = rq->max_response_bytes ? rq->max_response_bytes : HTTP_DEFAULT_MAX_RESPONSE;
	x->discard_body = rq->discard_body;
	x->self = follows_itself(rq);
	x->on_data = rq->on_data;
	x->on_done = rq->on_done;
	x->ud = rq->ud;
	if (!(x->easy = curl_easy_init())) {
		r = -ENOMEM;
		goto out;
	}
	if ((r = setup(x, rq)) < 0)
		goto out;
	x->queued_ns = uv_hrtime();
	x->res.start_ms = clock_wall_ms();
	list_push(&c->queued, x);
	pump(c);
	arm_later(c);
	*out = x;
	x = NULL;
out:
	xfer_free(x);
	return r;
}

void http_request_cancel(struct http_xfer *x)
{
	if (!x || !x->list || x->list == &x->c->done)
		return;
	struct http_client *c = x->c;
	x->res.cancelled = true;
	snprintf(x->res.error, sizeof(x->res.error), "cancelled");
	finish(x, CURLE_OK);
	pump(c);
	arm_later(c);
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
		list_remove(x);
		xfer_free(x);
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
