/* http_headers.c: the headers of a request and of its response, for the
 * HTTP client (see http_client.c).
 *
 * A request's headers go in one list; when redirects are followed here
 * (http_redirect.c), a second list without the private ones (those marked
 * so, and those curl itself keeps from other hosts) is sent to other
 * origins. A response's headers are parsed into a JSON object, names
 * lower-cased, repeated ones joined.
 *
 * Invariant: the headers kept are those of the last response (a redirect
 * or a 1xx starts over), and never more than HTTP_MAX_HEADER_BYTES of
 * them: past it, or past one of curl's own limits, the transfer fails for
 * good with headers_too_large and a message that says which limit.
 */
#include "exec/http_client_int.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* ---- response headers ------------------------------------------------------- */

/* Recognises curl's own limits on response headers, which curl 7.x and
 * 8.0 to 8.5 report under codes that also mean other things, so that they
 * fail the request for good, with a message that says what was too large,
 * instead of a retry: one header line over CURL_MAX_HTTP_HEADER (100 KiB)
 * is CURLE_OUT_OF_MEMORY, all the headers over curl's total (300 KiB) are
 * CURLE_RECV_ERROR "Too large response headers" (CURLE_TOO_LARGE, a code
 * of its own, since 8.6). Only while the headers of a reply are being
 * received, after the request went out: an allocation that really failed
 * there is a header growing without end all the same. */
void http_header_limit(struct http_xfer *x, CURLcode code)
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

size_t http_on_header(char *p, size_t size, size_t n, void *ud)
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
		x->redirecting = x->saw_location && http_is_redirect(status);
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

/* ---- request headers -------------------------------------------------------- */

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
int http_set_headers(struct http_xfer *x, const struct http_request *rq)
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
