/* http_client_int.h: what the pieces of the HTTP client share (like
 * libuv's internal.h); private to http_client.c (the curl multi on the
 * loop), http_xfer.c (transfers and their results), http_headers.c (the
 * headers of a request and of its response) and http_redirect.c
 * (redirects followed by hand). See http.h for the promises and
 * http_client.c for the lists a transfer is on.
 */
#ifndef DAGRUN_EXEC_HTTP_CLIENT_INT_H
#define DAGRUN_EXEC_HTTP_CLIENT_INT_H

#include <stdbool.h>
#include <stdint.h>

#include <curl/curl.h>

#include "exec/http.h"

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

/* ---- http_client.c: the curl multi on the loop --------------------------- */

/* Appends x to l (x is on no list). */
void http_list_push(struct xlist *l, struct http_xfer *x);

/* Takes x off its list, if it is on one. */
void http_list_remove(struct http_xfer *x);

/* Starts the queued transfers that fit under the in-flight cap; one that
 * cannot start lands on done. */
void http_pump(struct http_client *c);

/* Arms the delivery timer when transfers are done: what lands on done
 * outside a loop callback of the client is delivered from the loop. */
void http_arm_later(struct http_client *c);

/* ---- http_xfer.c: transfers and their results ---------------------------- */

/* Frees x with its easy handle and what it holds. Accepts NULL. */
void http_xfer_free(struct http_xfer *x);

/* Moves x to done with curl's outcome code (CURLE_OK when none), taking
 * it out of the multi handle when it was running: its result gets its
 * timings, its end and, when code is not CURLE_OK, the error that says
 * why. */
void http_finish(struct http_xfer *x, CURLcode code);

/* ---- http_headers.c: request and response headers ------------------------ */

/* curl's header callback (CURLOPT_HEADERFUNCTION, ud the transfer): keeps
 * the headers of the last response in x->res.headers, under
 * HTTP_MAX_HEADER_BYTES, and tells whether it is a redirect followed here.
 * Returns what curl must see: size * n, or 0 to fail the transfer. */
size_t http_on_header(char *p, size_t size, size_t n, void *ud);

/* Sets the result's error when curl's code (not CURLE_OK) for a running
 * transfer is one of curl's own limits on response headers (see
 * http_headers.c); leaves it alone otherwise. */
void http_header_limit(struct http_xfer *x, CURLcode code);

/* Builds x's header list from rq (and, when x follows redirects itself,
 * the list for other origins, without the private headers) and sets it on
 * the easy handle. Returns 0 or -ENOMEM. */
int http_set_headers(struct http_xfer *x, const struct http_request *rq);

/* ---- http_redirect.c: redirects followed by hand ------------------------- */

/* Whether redirects must be followed here: a private header, or a
 * private body that is sent. */
bool http_follows_itself(const struct http_request *rq);

/* "scheme://host:port" of url, lower-cased; malloc'd (caller frees), or
 * NULL. */
char *http_origin_of(const char *url);

/* Whether status is a redirect curl would follow. */
bool http_is_redirect(long status);

/* The hop of a self-following transfer ended with a redirect: starts the
 * next one. Returns false when the response is final after all (no
 * usable Location, or a private body would go to another origin), true
 * when x went on or finished. */
bool http_follow(struct http_xfer *x);

#endif
