/* http_xfer.c: one transfer of the HTTP client (see http_client.c): its
 * easy handle set up from a request, its body received under the cap, and
 * its result.
 *
 * Invariant: a transfer's result is whole when it lands on done
 * (http_finish()): status and timings read from curl (counted from the
 * first hop when redirects were followed here), start, end and duration,
 * and an error that says why whenever curl's code is not CURLE_OK. The
 * body kept never exceeds the transfer's cap.
 */
#include "exec/http_client_int.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dagrun.h"
#include "util/clock.h"

void http_xfer_free(struct http_xfer *x)
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

/* Moves x to done with curl's outcome code (CURLE_OK when none), taking
 * it out of the multi handle when it was running. */
void http_finish(struct http_xfer *x, CURLcode code)
{
	struct http_client *c = x->c;
	struct http_response *r = &x->res;
	bool running = x->list == &c->running;
	if (running) {
		collect_info(x);
		curl_multi_remove_handle(c->multi, x->easy);
	}
	http_list_remove(x);
	r->curl_code = (int)code;
	if (code == CURLE_OPERATION_TIMEDOUT)
		r->timed_out = true;
	if (code == CURLE_FILESIZE_EXCEEDED && !r->too_large) {
		r->too_large = true;
		snprintf(r->error, sizeof(r->error), "response body larger than the limit "
			 "of %" PRIu64 " bytes (maxResponseBytes; Content-Length says more)", x->cap);
	}
	if (running && code != CURLE_OK && !r->error[0])
		http_header_limit(x, code);
	if (code != CURLE_OK && !r->error[0])
		snprintf(r->error, sizeof(r->error), "%s",
			 x->errbuf[0] ? x->errbuf : curl_easy_strerror(code));
	r->end_ms = clock_wall_ms();
	r->duration_ms = (uv_hrtime() - x->queued_ns) / 1000000;
	http_list_push(&c->done, x);
}

/* ---- receiving --------------------------------------------------------------- */

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
	SET(CURLOPT_HEADERFUNCTION, http_on_header);
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
	int r = http_set_headers(x, rq);
	if (r == 0)
		r = set_method(x, rq);
	if (r == 0 && x->self) {
		const char *m = rq->method && *rq->method ? rq->method : "GET";
		x->body_private = rq->private_body;
		x->sends_body = x->body != NULL;
		x->post = is_method(m, "POST");
		x->head = is_method(m, "HEAD");
		x->origin = http_origin_of(rq->url);   /* NULL: every hop is another origin */
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
	x->self = http_follows_itself(rq);
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
	http_list_push(&c->queued, x);
	http_pump(c);
	http_arm_later(c);
	*out = x;
	x = NULL;
out:
	http_xfer_free(x);
	return r;
}

void http_request_cancel(struct http_xfer *x)
{
	if (!x || !x->list || x->list == &x->c->done)
		return;
	struct http_client *c = x->c;
	x->res.cancelled = true;
	snprintf(x->res.error, sizeof(x->res.error), "cancelled");
	http_finish(x, CURLE_OK);
	http_pump(c);
	http_arm_later(c);
}
