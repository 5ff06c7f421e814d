/* http_redirect.c: redirects followed by hand, for the HTTP client (see
 * http_client.c).
 *
 * Redirects: curl follows them (CURLOPT_FOLLOWLOCATION) and keeps custom
 * headers across origins. A request with a private header or body turns
 * that off and follows them here (http_follow()): the easy handle stays on the
 * running list and is re-added for each hop, with the same limits and
 * method rules, and private headers go only to the first URL's origin.
 *
 * Invariant: a private header never goes to another origin than the first
 * URL's, and a private body is never sent to one: such a redirect is not
 * followed, its response is final (redirect_refused). Every hop shares the
 * transfer's one timeout and its HTTP_MAX_REDIRECTS.
 */
#include "exec/http_client_int.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Whether redirects must be followed here: a private header, or a
 * private body that is sent. */
bool http_follows_itself(const struct http_request *rq)
{
	for (size_t i = 0; rq->private_headers && i < rq->n_headers; i++)
		if (rq->private_headers[i])
			return true;
	return rq->private_body && rq->body;
}

/* "scheme://host:port" of url, lower-cased; malloc'd, or NULL. */
char *http_origin_of(const char *url)
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

bool http_is_redirect(long status)
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
	http_list_remove(x);   /* no longer in the multi handle: finish as not running */
	x->res.err = -ENOMEM;
	snprintf(x->res.error, sizeof(x->res.error), "cannot follow the redirect");
	http_finish(x, CURLE_OK);
	return -ENOMEM;
}

/* The hop of a self-following transfer ended with a redirect: starts the
 * next one. Returns false when the response is final after all (no
 * usable Location, or a private body would go to another origin), true
 * when x went on or finished. */
bool http_follow(struct http_xfer *x)
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
		http_finish(x, CURLE_TOO_MANY_REDIRECTS);
		return true;
	}
	/* curl's rules: a 303 (but after HEAD), and a 301 or 302 after a POST,
	 * go on as a GET without a body; others keep the method and body */
	bool to_get = (status == 303 && !x->head) || ((status == 301 || status == 302) && x->post);
	if (!(next = strdup(loc))) {
		x->res.err = -ENOMEM;
		http_finish(x, CURLE_OK);
		return true;
	}
	origin = http_origin_of(next);
	bool same = origin && x->origin && !strcmp(origin, x->origin);
	bool followed = true;
	uint64_t waited = (uv_hrtime() - x->queued_ns) / 1000000;
	if (!same && x->sends_body && !to_get && x->body_private) {
		x->res.redirect_refused = true;
		followed = false;
	} else if (waited >= x->timeout_ms) {
		snprintf(x->res.error, sizeof(x->res.error), "timed out following a redirect");
		http_finish(x, CURLE_OPERATION_TIMEDOUT);
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
