/* http_util.c: the pure parts of HTTP tasks: classifying a response,
 * reading Retry-After, deriving stable ids and signing webhooks; see http.h.
 *
 * Invariant: nothing here touches the loop or the network, so every
 * function is a plain input -> output mapping, tested directly.
 */
#include "exec/http.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <openssl/evp.h>

/* ---- the result's extension ---------------------------------------------------- */

void http_ext_fill(struct dagrun_ext_http *pub, const struct http_response *resp)
{
	const struct exec_http_timing *tm = &resp->timing;
	*pub = (struct dagrun_ext_http){
		.base = {DAGRUN_EXT_HTTP, NULL}, .status = resp->status,
		.queue_us = tm->queue_us, .dns_us = tm->dns_us, .connect_us = tm->connect_us,
		.tls_us = tm->tls_us, .first_byte_us = tm->first_byte_us,
		.total_us = tm->total_us, .redirects = tm->redirects,
	};
}

struct http_ext {
	struct exec_ext x;
	struct dagrun_ext_http pub;
};

static void http_ext_free(struct exec_ext *x)
{
	json_decref(x->headers);
	free(x);
}

struct exec_ext *http_ext_new(struct http_response *resp)
{
	struct http_ext *h = calloc(1, sizeof(*h));
	if (!h)
		return NULL;
	http_ext_fill(&h->pub, resp);
	h->x.pub = &h->pub.base;
	h->x.headers = resp->headers;
	resp->headers = NULL;
	h->x.free = http_ext_free;
	return &h->x;
}

/* ---- Retry-After ------------------------------------------------------------ */

/* A non-negative decimal number (digits, optionally a fraction) times
 * scale, rounded up. Returns false when s is not exactly that. */
static bool parse_number(const char *s, uint64_t scale, uint64_t *out)
{
	while (*s == ' ' || *s == '\t')
		s++;
	uint64_t whole = 0, frac = 0, div = 1;
	const char *p = s;
	for (; *p >= '0' && *p <= '9'; p++) {
		if (whole > UINT64_MAX / 100)
			whole = UINT64_MAX / 100;   /* saturate: capped later */
		else
			whole = whole * 10 + (uint64_t)(*p - '0');
	}
	if (p == s)
		return false;
	if (*p == '.') {
		for (p++; *p >= '0' && *p <= '9'; p++)
			if (div < 1000000) {
				frac = frac * 10 + (uint64_t)(*p - '0');
				div *= 10;
			}
	}
	while (*p == ' ' || *p == '\t')
		p++;
	if (*p)
		return false;
	uint64_t v = whole > UINT64_MAX / scale ? UINT64_MAX : whole * scale;
	uint64_t f = (frac * scale + div - 1) / div;
	*out = v > UINT64_MAX - f ? UINT64_MAX : v + f;
	return true;
}

uint64_t http_retry_after_ms(const json_t *headers, time_t now)
{
	uint64_t ms = 0;
	const char *v = json_string_value(json_object_get(headers, "retry-after-ms"));
	if (v && parse_number(v, 1, &ms))
		goto out;
	ms = 0;
	v = json_string_value(json_object_get(headers, "retry-after"));
	if (!v)
		return 0;
	if (parse_number(v, 1000, &ms))
		goto out;
	ms = 0;
	time_t at = curl_getdate(v, NULL);
	if (at != (time_t)-1 && at > now)
		ms = (uint64_t)(at - now) * 1000;
out:
	return ms > HTTP_RETRY_AFTER_MAX_MS ? HTTP_RETRY_AFTER_MAX_MS : ms;
}

/* ---- ids and signatures ------------------------------------------------------- */

int http_derive_id(const char *domain, const char *const *parts, size_t n, char out[37])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	int r = -EIO;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	if (!ctx)
		return -ENOMEM;
	if (!EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) ||
	    !EVP_DigestUpdate(ctx, domain, strlen(domain) + 1))
		goto out;
	for (size_t i = 0; i < n; i++) {
		const char *p = parts[i] ? parts[i] : "";
		if (!EVP_DigestUpdate(ctx, p, strlen(p) + 1))
			goto out;
	}
	if (!EVP_DigestFinal_ex(ctx, md, &mdlen) || mdlen < 16)
		goto out;
	md[6] = (unsigned char)((md[6] & 0x0f) | 0x80);  /* version 8: custom */
	md[8] = (unsigned char)((md[8] & 0x3f) | 0x80);  /* variant 10 */
	snprintf(out, 37,
		 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
		 md[0], md[1], md[2], md[3], md[4], md[5], md[6], md[7], md[8], md[9],
		 md[10], md[11], md[12], md[13], md[14], md[15]);
	r = 0;
out:
	EVP_MD_CTX_free(ctx);
	return r;
}

/* ---- classification ------------------------------------------------------------ */

bool http_status_transient(int status)
{
	return status == 408 || status == 409 || status == 425 || status == 429 ||
	       (status >= 500 && status <= 599);
}

/* The class of a transfer that failed below HTTP. */
static enum dr_error_class curl_class(int code)
{
	switch (code) {
	case CURLE_URL_MALFORMAT: case CURLE_UNSUPPORTED_PROTOCOL:
	case CURLE_TOO_MANY_REDIRECTS: case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CACERT_BADFILE: case CURLE_SSL_CERTPROBLEM: case CURLE_SSL_CIPHER:
	case CURLE_SSL_ISSUER_ERROR: case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
	case CURLE_SSL_INVALIDCERTSTATUS: case CURLE_SSL_CRL_BADFILE:
	case CURLE_SSL_ENGINE_NOTFOUND: case CURLE_SSL_ENGINE_SETFAILED:
	case CURLE_SSL_ENGINE_INITFAILED: case CURLE_LOGIN_DENIED:
	case CURLE_REMOTE_ACCESS_DENIED: case CURLE_NOT_BUILT_IN:
	case CURLE_BAD_FUNCTION_ARGUMENT: case CURLE_UNKNOWN_OPTION:
	case CURLE_FILESIZE_EXCEEDED:
	case 100: /* CURLE_TOO_LARGE (curl >= 8.6): a field over one of curl's limits */
		return DR_CLASS_PERMANENT;
	case CURLE_OUT_OF_MEMORY:
		return DR_CLASS_RESOURCE;
	default:
		/* Refused, reset, DNS, TLS handshake, a reply cut short, ... */
		return DR_CLASS_TRANSIENT;
	}
}

static const char *curl_what(int code)
{
	switch (code) {
	case CURLE_COULDNT_RESOLVE_HOST: case CURLE_COULDNT_RESOLVE_PROXY:
		return "DNS failure";
	case CURLE_COULDNT_CONNECT: return "cannot connect";
	case CURLE_SEND_ERROR: case CURLE_RECV_ERROR: return "connection failed";
	case CURLE_GOT_NOTHING: return "empty reply";
	case CURLE_PARTIAL_FILE: return "reply cut short";
	case CURLE_SSL_CONNECT_ERROR: return "TLS handshake failed";
	case CURLE_PEER_FAILED_VERIFICATION: return "TLS verification failed";
	case CURLE_URL_MALFORMAT: case CURLE_UNSUPPORTED_PROTOCOL: return "invalid URL";
	case CURLE_TOO_MANY_REDIRECTS: return "too many redirects";
	default: return "request failed";
	}
}

static bool expected(int status, const uint16_t *expect, uint32_t n)
{
	if (n == 0)
		return status >= 200 && status <= 299;
	for (uint32_t i = 0; i < n; i++)
		if (expect[i] == status)
			return true;
	return false;
}

static int status_error(const struct http_response *resp, const uint16_t *expect,
			uint32_t n, const struct redactor *red, struct exec_result *r)
{
	struct buf want = BUF_INIT, body = BUF_INIT;
	int e = 0;
	for (uint32_t i = 0; i < n && e == 0; i++)
		e = buf_printf(&want, "%s%u", i ? ", " : "", (unsigned)expect[i]);
	if (e == 0)
		e = exec_body_snippet(red, resp->body.data, resp->body.len, &body);
	if (e < 0)
		goto out;
	enum dr_error_class c = http_status_transient(resp->status) ? DR_CLASS_TRANSIENT
								      : DR_CLASS_PERMANENT;
	e = exec_fail(r, c, "HTTP %d%s%s%s%s%s", resp->status,
		 n ? " (expected " : "", n ? want.data : "", n ? ")" : "",
		 body.len ? ": " : "", body.len ? body.data : "");
out:
	buf_free(&want);
	buf_free(&body);
	return e < 0 ? -ENOMEM : e;
}

int http_classify(const struct http_response *resp, const uint16_t *expect, uint32_t n,
		  const struct redactor *red, struct exec_result *r)
{
	r->ok = false;
	r->error_class = DR_CLASS_NONE;
	free(r->error);
	r->error = NULL;
	const char *detail = resp->error[0] ? resp->error : "no detail";
	if (resp->cancelled) {
		r->cancelled = true;
		return exec_fail(r, DR_CLASS_TRANSIENT, "cancelled");
	}
	if (resp->err)
		return exec_fail(r, DR_CLASS_RESOURCE, "request failed: %s", strerror(-resp->err));
	/* Size limits are permanent: the same reply will be as large again. */
	if (resp->too_large)
		return exec_fail(r, DR_CLASS_PERMANENT, "%s", resp->error[0] ? resp->error :
			    "response body larger than the limit (maxResponseBytes)");
	if (resp->headers_too_large)
		return exec_fail(r, DR_CLASS_PERMANENT, "%s", resp->error[0] ? resp->error :
			    "response headers larger than the limit");
	if (resp->aborted)
		return exec_fail(r, DR_CLASS_PERMANENT, "response rejected while streaming");
	if (resp->timed_out) {
		r->timed_out = true;
		return exec_fail(r, DR_CLASS_TRANSIENT, "timed out: %s", detail);
	}
	if (resp->curl_code)
		return exec_fail(r, curl_class(resp->curl_code), "%s: %s", curl_what(resp->curl_code),
			    detail);
	if (expected(resp->status, expect, n)) {
		r->ok = true;
		return 0;
	}
	return status_error(resp, expect, n, red, r);
}
