/* http.c: the HTTP side of the server on libmicrohttpd: requests in,
 * authentication, size caps, routing to the handlers, replies out.
 *
 * Invariants:
 *  - Every request is answered by exactly one reply_* call (a handler that
 *    sets none gets a 500), with no-store caching, nosniff and no referrer.
 *  - A body is never held beyond its cap (64 KiB for the API, 1 MiB for a
 *    hook): past it the request is answered 413 at once.
 *  - With a token, everything but /metrics, the UI's files (ui.c) and
 *    POST /hooks/NAME (signed instead: hooks.c) needs `Authorization:
 *    Bearer TOKEN`, compared in constant time. No cookie is ever read or
 *    set.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <microhttpd.h>
#include <openssl/crypto.h>

#include "serve/serve_int.h"
#include "serve/ui.h"
#include "util/clock.h"

const char *req_arg(struct req *rq, const char *name)
{
	return MHD_lookup_connection_value(rq->conn, MHD_GET_ARGUMENT_KIND, name);
}

const char *req_header(struct req *rq, const char *name)
{
	return MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND, name);
}

void req_peer(struct req *rq, char *out, size_t n)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(rq->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	char a[INET6_ADDRSTRLEN] = "?";
	unsigned port = 0;
	if (ci && ci->client_addr && ci->client_addr->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const void *)ci->client_addr;
		inet_ntop(AF_INET, &in->sin_addr, a, sizeof(a));
		port = ntohs(in->sin_port);
	} else if (ci && ci->client_addr && ci->client_addr->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in = (const void *)ci->client_addr;
		inet_ntop(AF_INET6, &in->sin6_addr, a, sizeof(a));
		port = ntohs(in->sin6_port);
	}
	snprintf(out, n, "%s:%u", a, port);
}

static void common_headers(struct MHD_Response *r)
{
	MHD_add_response_header(r, "Cache-Control", "no-store");
	MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
	MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
	MHD_add_response_header(r, "X-Frame-Options", "DENY");
}

static void set_reply(struct req *rq, unsigned status, struct MHD_Response *r)
{
	if (rq->resp)
		MHD_destroy_response(rq->resp);
	rq->resp = r;
	rq->status = status;
}

void reply_data(struct req *rq, unsigned status, const char *ctype, char *data, size_t len)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(len, data, MHD_RESPMEM_MUST_FREE);
	if (!r) {
		free(data);
		set_reply(rq, 500, NULL);
		return;
	}
	MHD_add_response_header(r, "Content-Type", ctype);
	common_headers(r);
	set_reply(rq, status, r);
}

void reply_header(struct req *rq, const char *name, const char *value)
{
	if (rq->resp)
		MHD_add_response_header(rq->resp, name, value);
}

void reply_static(struct req *rq, const char *ctype, const char *data, size_t len)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(len, (void *)data,
								 MHD_RESPMEM_PERSISTENT);
	if (!r) {
		set_reply(rq, 500, NULL);
		return;
	}
	MHD_add_response_header(r, "Content-Type", ctype);
	common_headers(r);
	set_reply(rq, 200, r);
}

void reply_json(struct req *rq, unsigned status, json_t *j)
{
	char *s = j ? json_dumps(j, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;
	json_decref(j);
	if (!s) {
		set_reply(rq, 500, NULL);
		return;
	}
	size_t n = strlen(s);
	char *t = realloc(s, n + 2);
	if (t) {
		s = t;
		s[n++] = '\n';
		s[n] = 0;
	}
	reply_data(rq, status, "application/json", s, n);
}

void reply_error(struct req *rq, unsigned status, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *msg = buf_vstrf(fmt, ap);
	va_end(ap);
	reply_json(rq, status, json_pack("{s:o}", "error", jstr(msg ? msg : "out of memory")));
	free(msg);
}

json_t *req_json(struct req *rq)
{
	if (!rq->body.len)
		return json_object();
	json_error_t je;
	json_t *j = json_loadb(rq->body.data, rq->body.len, JSON_REJECT_DUPLICATES, &je);
	if (!j) {
		reply_error(rq, 400, "the body is not JSON: %s (line %d, column %d)", je.text,
			    je.line, je.column);
		return NULL;
	}
	if (!json_is_object(j)) {
		json_decref(j);
		reply_error(rq, 400, "the body must be a JSON object");
		return NULL;
	}
	return j;
}

/* ---- authentication -------------------------------------------------------- */

static bool token_ok(struct serve *s, struct req *rq)
{
	if (!s->o.token)
		return true;
	const char *h = req_header(rq, "Authorization");
	if (!h || strncasecmp(h, "Bearer ", 7))
		return false;
	h += 7;
	size_t a = strlen(h), b = strlen(s->o.token);
	/* Compare in constant time over the token's length. */
	unsigned char diff = a != b;
	for (size_t i = 0; i < b; i++)
		diff |= (unsigned char)(s->o.token[i] ^ (i < a ? h[i] : 0));
	return diff == 0;
}

/* ---- routing ---------------------------------------------------------------- */

static bool is(const struct req *rq, size_t i, const char *w)
{
	return i < rq->nseg && !strcmp(rq->seg[i], w);
}

static bool method(const struct req *rq, const char *m)
{
	return !strcmp(rq->method, m);
}

/* A hook: POST /hooks/NAME (hooks.c). */
static bool hook_path(const struct req *rq)
{
	return rq->nseg == 2 && is(rq, 0, "hooks") && method(rq, "POST");
}

/* Which paths need no token: /metrics (counts, no names but workflows'),
 * the web UI's files (fixed bytes, no data: the page asks for the token,
 * then sends it with each API request), and hooks, whose signature is
 * their authentication (hooks.c). */
static bool public_path(const struct req *rq)
{
	return (rq->nseg == 1 && is(rq, 0, "metrics")) || ui_path(rq) || hook_path(rq);
}

static void route_api(struct serve *s, struct req *rq)
{
	size_t n = rq->nseg;
	bool get = method(rq, "GET") || method(rq, "HEAD"), post = method(rq, "POST");
	if (is(rq, 1, "workflows")) {
		if (n == 2 && get)
			return api_workflows(s, rq);
		if (n == 3 && get)
			return api_workflow(s, rq, rq->seg[2]);
		if (n == 4 && get && is(rq, 3, "graph.svg"))
			return api_workflow_graph(s, rq, rq->seg[2]);
		if (n == 4 && post && is(rq, 3, "runs"))
			return api_start(s, rq, rq->seg[2]);
	} else if (is(rq, 1, "runs")) {
		if (n == 2 && get)
			return api_runs(s, rq);
		if (n == 3 && get)
			return api_run(s, rq, rq->seg[2]);
		if (n == 4 && get && is(rq, 3, "report"))
			return api_report(s, rq, rq->seg[2]);
		if (n == 4 && get && is(rq, 3, "document"))
			return api_run_document(s, rq, rq->seg[2]);
		if (n == 4 && get && is(rq, 3, "graph.svg"))
			return api_run_graph(s, rq, rq->seg[2]);
		if (n == 4 && post && (is(rq, 3, "cancel") || is(rq, 3, "rerun") ||
				       is(rq, 3, "resume")))
			return api_action(s, rq, rq->seg[2], rq->seg[3]);
		if (n == 6 && get && is(rq, 3, "tasks") && is(rq, 5, "log"))
			return api_log(s, rq, rq->seg[2], rq->seg[4]);
	} else if (n == 2 && get && is(rq, 1, "stats")) {
		return api_stats(s, rq);
	} else if (n == 2 && get && is(rq, 1, "events")) {
		return api_events(s, rq);
	}
	reply_error(rq, 404, "no such API path: %s %s", rq->method, rq->path);
}

static void route(struct serve *s, struct req *rq)
{
	if (is(rq, 0, "api"))
		return route_api(s, rq);
	if (rq->nseg == 1 && is(rq, 0, "metrics") && (method(rq, "GET") || method(rq, "HEAD")))
		return api_metrics(s, rq);
	if (ui_path(rq))
		return ui_serve(s, rq);
	if (hook_path(rq))
		return api_hook(s, rq, rq->seg[1]);
	reply_error(rq, 404, "not found: %s", rq->path);
}

/* Splits rq->path into segments; false for a path that cannot name
 * anything (too long, too many segments, empty or dot segments). */
static bool split(struct req *rq, const char *url)
{
	size_t n = strlen(url);
	if (n >= sizeof(rq->path) || url[0] != '/')
		return false;
	memcpy(rq->path, url, n + 1);
	char *p = rq->path + 1;
	rq->nseg = 0;
	while (*p) {
		char *e = strchr(p, '/');
		if (e)
			*e = 0;
		if (!*p || !strcmp(p, ".") || !strcmp(p, "..") || rq->nseg == 16)
			return e == NULL && !*p && rq->nseg > 0; /* a trailing '/' is fine */
		rq->seg[rq->nseg++] = p;
		if (!e)
			break;
		p = e + 1;
	}
	return true;
}

/* ---- libmicrohttpd callbacks ---------------------------------------------- */

static void finish(struct serve *s, struct req *rq)
{
	if (!rq->resp) {
		rq->status = 500;
		rq->resp = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
	}
	met_request(s, rq->status);
	MHD_queue_response(rq->conn, rq->status, rq->resp);
	MHD_destroy_response(rq->resp);
	rq->resp = NULL;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
				  const char *meth, const char *version,
				  const char *upload, size_t *upload_size, void **con_cls)
{
	struct serve *s = cls;
	struct req *rq = *con_cls;
	(void)version;
	if (!rq) {
		/* The headers: decide at once what can be decided. */
		if (!(rq = calloc(1, sizeof(*rq))))
			return MHD_NO;
		*con_cls = rq;
		rq->conn = conn;
		rq->method = meth;
		rq->t0_ms = clock_mono_ms();
		bool ok = split(rq, url);
		rq->body_cap = ok && hook_path(rq) ? SERVE_MAX_HOOK_BODY : SERVE_MAX_BODY;
		const char *cl = req_header(rq, "Content-Length");
		if (!ok) {
			rq->path[0] = 0;
			reply_error(rq, 404, "not found");
		} else if (!public_path(rq) && !token_ok(s, rq)) {
			reply_error(rq, 401, "this server needs Authorization: Bearer TOKEN");
		} else if (cl && strtoull(cl, NULL, 10) > rq->body_cap) {
			reply_error(rq, 413, "the body is over %zu bytes", rq->body_cap);
		} else {
			return MHD_YES;
		}
		rq->too_big = true;   /* answered: the body, if any, is ignored */
		finish(s, rq);
		return MHD_YES;
	}
	if (*upload_size) {
		size_t n = *upload_size;
		*upload_size = 0;
		if (rq->too_big)
			return MHD_YES;
		if (rq->body.len + n > rq->body_cap) {
			rq->too_big = true;
			buf_free(&rq->body);
			reply_error(rq, 413, "the body is over %zu bytes", rq->body_cap);
			finish(s, rq);
			return MHD_YES;
		}
		if (buf_add(&rq->body, upload, n) < 0)
			return MHD_NO;
		return MHD_YES;
	}
	if (rq->too_big)
		return MHD_YES;
	route(s, rq);
	finish(s, rq);
	return MHD_YES;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
			 enum MHD_RequestTerminationCode why)
{
	(void)cls;
	(void)conn;
	(void)why;
	struct req *rq = *con_cls;
	if (!rq)
		return;
	if (rq->resp)
		MHD_destroy_response(rq->resp);
	buf_free(&rq->body);
	free(rq);
	*con_cls = NULL;
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
	struct serve *s = cls;
	char *msg = buf_vstrf(fmt, ap);
	if (msg) {
		size_t n = strlen(msg);
		while (n && msg[n - 1] == '\n')
			msg[--n] = 0;
		serve_log(s, "http: %s", msg);
	}
	free(msg);
}

struct MHD_Daemon *http_start(struct serve *s, const struct sockaddr *sa, char **why)
{
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION |
			 MHD_USE_ERROR_LOG | MHD_USE_SUPPRESS_DATE_NO_CLOCK * 0;
	if (sa->sa_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	struct MHD_Daemon *d = MHD_start_daemon(
		flags, 0, NULL, NULL, on_request, s,
		MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, s,
		MHD_OPTION_SOCK_ADDR, sa,
		MHD_OPTION_CONNECTION_LIMIT, (unsigned)SERVE_MAX_CONN,
		MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)SERVE_MAX_CONN,
		MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)60,
		MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(256u << 10),
		MHD_OPTION_THREAD_STACK_SIZE, (size_t)(1u << 20),
		MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
		MHD_OPTION_LISTENING_ADDRESS_REUSE, (unsigned)1,
		MHD_OPTION_END);
	if (!d)
		*why = buf_strf("cannot listen: %s", strerror(errno ? errno : EADDRINUSE));
	return d;
}
