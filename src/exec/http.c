/* http.c: the executor of `api` and `webhook` tasks; see http.h.
 *
 * An attempt owns one struct hx_attempt from start() to on_done. Invariant:
 * either it runs as a transfer of hx->client (st->xfer set; it ends from
 * the transfer's done callback), or it failed before any transfer (a
 * template, URL, header or body error) and waits on hx->failed, which
 * hx->later, a zero-delay timer, ends from the loop: on_done never runs
 * inside start(). The request (URL, header lines, body) is built in start()
 * and copied by the client, so nothing built for it outlives start().
 *
 * Secrets: a header whose value holds one of the run's secrets is marked
 * private, and so is a body holding one: the client then never sends them
 * to another origin on a redirect. The error message quotes the start of
 * a failed response's body; it is cut only after it is masked.
 *
 * Stable ids: the Idempotency-Key of an api request and the
 * X-Dagrun-Delivery of a webhook are derived (http_derive_id) from the
 * workflow name, the run id and the task id, so every attempt of one task
 * in one run sends the same value, and other tasks or runs do not.
 */
#include "exec/http.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

#include "expr/redact.h"
#include "util/clock.h"
#include "util/sign.h"
#include "util/url.h"

#define DEFAULT_EVENT "dagrun.task"
#define INSECURE_WARNING "TLS certificate verification is disabled for this request " \
			 "(insecure: true)"

struct hx_attempt;

struct http_executor {
	struct executor base;
	uv_loop_t *loop;
	struct http_client *client;
	http_summary_fn summary;
	void *summary_ud;
	uv_timer_t later;                /* ends the attempts on failed */
	struct hx_attempt *failed, *failed_tail;
};

struct hx_attempt {
	struct http_executor *hx;
	struct exec_attempt *a;
	struct http_xfer *xfer;          /* while the transfer runs */
	struct hx_attempt *next;         /* on hx->failed */
	const uint16_t *expect;
	uint32_t n_expect;
	bool cancelled;
	struct exec_result res;
};

/* What start() builds for one request. */
struct build {
	struct exec_attempt *a;
	const char *method;
	struct buf method_buf, url, body;
	bool has_body, json_body;
	char **lines;                    /* "Name: value", each malloc'd */
	bool *secret;                    /* by line: it holds a secret */
	size_t n_lines, cap_lines;
	char *err;                       /* malloc'd: the attempt fails permanently */
};

static void build_free(struct build *b)
{
	buf_free(&b->method_buf);
	buf_free(&b->url);
	buf_free(&b->body);
	for (size_t i = 0; i < b->n_lines; i++)
		free(b->lines[i]);
	free(b->lines);
	free(b->secret);
	free(b->err);
}

/* Records a permanent failure of the attempt; returns -EINVAL (or -ENOMEM
 * when even the message cannot be built). */
static int build_fail(struct build *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int build_fail(struct build *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *m = buf_vstrf(fmt, ap);
	va_end(ap);
	free(b->err);
	b->err = m;
	return m ? -EINVAL : -ENOMEM;
}

/* Renders t; a template error becomes the attempt's failure. */
static int render(struct build *b, const struct dr_text *t, enum exec_render_mode mode,
		  struct buf *out, const char *what)
{
	char *err = NULL;
	int r = exec_render(b->a, t, (int)mode, out, &err);
	if (r == 0)
		return 0;
	if (r == -ENOMEM) {
		free(err);
		return -ENOMEM;
	}
	r = build_fail(b, "%s: %s", what, err ? err : strerror(-r));
	free(err);
	return r;
}

/* ---- headers --------------------------------------------------------------- */

static bool header_is(const char *line, const char *name)
{
	size_t n = strlen(name);
	return !strncasecmp(line, name, n) && (line[n] == ':' || line[n] == ';');
}

static bool has_header(const struct build *b, const char *name)
{
	for (size_t i = 0; i < b->n_lines; i++)
		if (header_is(b->lines[i], name))
			return true;
	return false;
}

/* Adds "name: value": "name;" for an empty value (curl reads "name:" as
 * "remove"), and "name:" when val is NULL. Returns 0 or -ENOMEM. */
static int add_line(struct build *b, const char *name, size_t nlen, const char *val, size_t vlen)
{
	if (b->n_lines == b->cap_lines) {
		size_t cap = b->cap_lines ? 2 * b->cap_lines : 8;
		char **l = realloc(b->lines, cap * sizeof(*l));
		if (!l)
			return -ENOMEM;
		b->lines = l;
		bool *sec = realloc(b->secret, cap * sizeof(*sec));
		if (!sec)
			return -ENOMEM;
		b->secret = sec;
		b->cap_lines = cap;
	}
	struct buf line = BUF_INIT;
	int r = !val ? buf_printf(&line, "%.*s:", (int)nlen, name)
		: vlen ? buf_printf(&line, "%.*s: %.*s", (int)nlen, name, (int)vlen, val)
		: buf_printf(&line, "%.*s;", (int)nlen, name);
	char *s = r < 0 ? NULL : buf_steal(&line);
	buf_free(&line);
	if (!s)
		return -ENOMEM;
	b->secret[b->n_lines] = false;
	b->lines[b->n_lines++] = s;
	return 0;
}

/* Whether text holds one of the run's secrets. */
static bool holds_secret(const struct build *b, const char *text, size_t len)
{
	return b->a->redactor && redact_contains(b->a->redactor, text ? text : "", len);
}

static int add_header(struct build *b, const char *name, const char *val)
{
	return add_line(b, name, strlen(name), val, strlen(val));
}

/* RFC 9110 token characters. */
static bool token_ok(const char *s, size_t n)
{
	if (!n)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (!isalnum(c) && !strchr("!#$%&'*+-.^_`|~", c))
			return false;
	}
	return true;
}

/* Renders the task's headers, skipping the names in skip (which we set). */
static int user_headers(struct build *b, const struct dr_kvlist *kv, const char *const *skip)
{
	struct buf v = BUF_INIT;
	int r = 0;
	for (uint32_t i = 0; i < kv->n && r == 0; i++) {
		const struct dr_kv *h = &kv->v[i];
		const char *name = h->key.s ? h->key.s : "";
		size_t nlen = h->key.s ? h->key.len : 0;
		bool ours = false;
		for (const char *const *s = skip; s && *s && !ours; s++)
			ours = strlen(*s) == nlen && !strncasecmp(*s, name, nlen);
		if (ours)
			continue;
		if (!token_ok(name, nlen)) {
			r = build_fail(b, "invalid header name '%.*s'", (int)(nlen > 80 ? 80 : nlen),
				       name);
			break;
		}
		buf_reset(&v);
		char what[128];
		snprintf(what, sizeof(what), "header '%.*s'", (int)(nlen > 80 ? 80 : nlen), name);
		if ((r = render(b, &h->value, EXEC_RENDER_HEADER, &v, what)) < 0)
			break;
		if (v.len && (memchr(v.data, '\r', v.len) || memchr(v.data, '\n', v.len) ||
			      memchr(v.data, '\0', v.len))) {
			r = build_fail(b, "%s: the value contains a line break or NUL", what);
			break;
		}
		if ((r = add_line(b, name, nlen, v.data ? v.data : "", v.len)) == 0)
			b->secret[b->n_lines - 1] = holds_secret(b, v.data, v.len);
	}
	buf_free(&v);
	return r;
}

/* ---- bodies ------------------------------------------------------------------ */

/* v as JSON (see exec_value_json); a failure fails the build. */
static int to_json(struct build *b, const struct dr_value *v, json_t **out, const char *what)
{
	char *err = NULL;
	int r = exec_value_json(b->a, v, out, &err);
	if (r == -EINVAL)
		r = build_fail(b, "%s: %s", what, err ? err : "invalid value");
	free(err);
	return r;
}

/* The body of v: a string as rendered, anything else as JSON. */
static int value_body(struct build *b, const struct dr_value *v)
{
	b->body.max = HTTP_MAX_REQUEST_BODY;
	b->has_body = true;
	if (v->kind == DR_VAL_STRING)
		return render(b, &v->text, EXEC_RENDER_PLAIN, &b->body, "body");
	b->json_body = true;
	json_t *j = NULL;
	int r = to_json(b, v, &j, "body");
	if (r < 0)
		return r;
	char *s = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
	json_decref(j);
	if (!s)
		return -ENOMEM;
	size_t n = strlen(s);
	if (n > HTTP_MAX_REQUEST_BODY)
		r = build_fail(b, "body: larger than %zu bytes", HTTP_MAX_REQUEST_BODY);
	else
		r = buf_add(&b->body, s, n);
	free(s);
	return r;
}

/* ---- urls and ids ---------------------------------------------------------- */

/* Renders the URL and checks it parses as http(s); the URL itself never
 * goes into a message (it may carry a secret). */
static int url(struct build *b, const struct dr_text *t)
{
	int r = render(b, t, EXEC_RENDER_URL, &b->url, "url");
	if (r < 0)
		return r;
	CURLU *u = curl_url();
	if (!u)
		return -ENOMEM;
	CURLUcode uc = curl_url_set(u, CURLUPART_URL, b->url.data ? b->url.data : "", 0);
	if (uc == CURLUE_OUT_OF_MEMORY)
		r = -ENOMEM;
	else if (uc != CURLUE_OK)
		r = build_fail(b, "invalid URL: %s", curl_url_strerror(uc));
	else if (!url_is_http(b->url.data))
		r = build_fail(b, "invalid URL: the URL " URL_HTTP_RULE);
	curl_url_cleanup(u);
	return r;
}

static int stable_id(const struct exec_attempt *a, const char *domain, char out[37])
{
	const struct dagrun_workflow *wf = a->wf;
	const char *task = wf->ids.entries ? wf_task_id(wf, a->task) : "";
	const char *parts[] = {wf->name.s, a->run_id, task};
	return http_derive_id(domain, parts, 3, out);
}

/* ---- the two kinds ------------------------------------------------------------- */

static int build_api(struct build *b, const struct dr_api *api)
{
	static const char *const none[] = {NULL};
	int r;
	if (api->method.s && (r = render(b, &api->method, EXEC_RENDER_HEADER, &b->method_buf,
					 "method")) < 0)
		return r;
	b->method = b->method_buf.len ? b->method_buf.data : "GET";
	if (!token_ok(b->method, strlen(b->method)))
		return strlen(b->method) <= 20 ? build_fail(b, "invalid method '%s'", b->method)
		       : build_fail(b, "invalid method (%zu bytes)", strlen(b->method));
	if ((r = url(b, &api->url)) < 0 || (r = user_headers(b, &api->headers, none)) < 0)
		return r;
	if (api->body && api->body->kind != DR_VAL_NULL && (r = value_body(b, api->body)) < 0)
		return r;
	if (b->has_body && !has_header(b, "Content-Type") &&
	    (r = b->json_body ? add_header(b, "Content-Type", "application/json")
			      : add_line(b, "Content-Type", 12, NULL, 0)) < 0)
		return r;  /* "Content-Type:" drops curl's form-urlencoded default */
	if (strcasecmp(b->method, "GET") && strcasecmp(b->method, "HEAD") &&
	    !has_header(b, "Idempotency-Key")) {
		char id[37];
		if ((r = stable_id(b->a, "dagrun idempotency-key v1", id)) < 0 ||
		    (r = add_header(b, "Idempotency-Key", id)) < 0)
			return r;
	}
	return 0;
}

/* The default payload: {"run", "workflow", "task"}. */
static char *default_summary(const struct exec_attempt *a)
{
	const struct dagrun_workflow *wf = a->wf;
	const char *task = wf->ids.entries ? wf_task_id(wf, a->task) : "";
	json_t *j = json_object();
	char *s = NULL;
	if (j && !json_object_set_new(j, "run", json_string(a->run_id ? a->run_id : "")) &&
	    !json_object_set_new(j, "workflow", json_stringn(wf->name.s ? wf->name.s : "",
							      wf->name.s ? wf->name.len : 0)) &&
	    !json_object_set_new(j, "task", json_string(task)))
		s = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	return s;
}

static int webhook_payload(struct build *b, const struct dr_webhook *w, struct http_executor *hx)
{
	if (w->payload && w->payload->kind != DR_VAL_NULL)
		return value_body(b, w->payload);
	char *s = hx->summary ? hx->summary(hx->summary_ud, b->a) : NULL;
	if (!s && !(s = default_summary(b->a)))
		return -ENOMEM;
	b->has_body = b->json_body = true;
	int r = buf_adds(&b->body, s);
	free(s);
	return r;
}

static int build_webhook(struct build *b, const struct dr_webhook *w, struct http_executor *hx)
{
	static const char *const ours[] = {"X-Dagrun-Event", "X-Dagrun-Delivery",
					   "X-Dagrun-Signature", NULL};
	struct buf ev = BUF_INIT, secret = BUF_INIT;
	char id[37], *sig = NULL;
	int r;
	b->method = "POST";
	if ((r = url(b, &w->url)) < 0 || (r = user_headers(b, &w->headers, ours)) < 0 ||
	    (r = webhook_payload(b, w, hx)) < 0)
		goto out;
	if (!has_header(b, "Content-Type") &&
	    (r = add_header(b, "Content-Type", "application/json")) < 0)
		goto out;
	if (w->event.s && (r = render(b, &w->event, EXEC_RENDER_HEADER, &ev, "event")) < 0)
		goto out;
	if (ev.len && (memchr(ev.data, '\r', ev.len) || memchr(ev.data, '\n', ev.len) ||
		       memchr(ev.data, '\0', ev.len))) {
		r = build_fail(b, "event: the value contains a line break or NUL");
		goto out;
	}
	if ((r = add_header(b, "X-Dagrun-Event", ev.len ? ev.data : DEFAULT_EVENT)) < 0 ||
	    (r = stable_id(b->a, "dagrun webhook delivery v1", id)) < 0 ||
	    (r = add_header(b, "X-Dagrun-Delivery", id)) < 0)
		goto out;
	if (w->secret.s) {
		if ((r = render(b, &w->secret, EXEC_RENDER_PLAIN, &secret, "secret")) < 0 ||
		    (r = sign_webhook(secret.data ? secret.data : "", secret.len, time(NULL),
					b->body.data, b->body.len, &sig)) < 0 ||
		    (r = add_header(b, "X-Dagrun-Signature", sig)) < 0)
			goto out;
	}
out:
	if (secret.data)
		memset(secret.data, 0, secret.len);
	buf_free(&secret);
	buf_free(&ev);
	free(sig);
	return r;
}

/* ---- running an attempt ------------------------------------------------------- */

static void attempt_free(struct hx_attempt *st)
{
	exec_result_free(&st->res);
	free(st);
}

static void report(struct hx_attempt *st)
{
	struct exec_attempt *a = st->a;
	a->priv = NULL;
	a->on_done(a, &st->res);
	attempt_free(st);
}

static void on_later(uv_timer_t *t)
{
	struct http_executor *hx = t->data;
	struct hx_attempt *st = hx->failed;
	hx->failed = hx->failed_tail = NULL;
	while (st) {
		struct hx_attempt *next = st->next;
		if (st->cancelled) {
			st->res.cancelled = true;
			free(st->res.error);
			st->res.error = strdup("cancelled");
			st->res.error_class = DR_CLASS_TRANSIENT;
		}
		report(st);
		st = next;
	}
}

static int on_data(void *ud, const char *data, size_t len)
{
	struct hx_attempt *st = ud;
	if (st->a->on_output)
		st->a->on_output(st->a, EXEC_STDOUT, data, len);
	return 0;
}

static void on_response(void *ud, struct http_response *resp)
{
	struct hx_attempt *st = ud;
	struct exec_result *r = &st->res;
	st->xfer = NULL;
	r->exit_code = -1;
	r->retry_after_ms = http_retry_after_ms(resp->headers, time(NULL));
	r->ext = http_ext_new(resp);     /* takes the headers */
	r->start_ms = resp->start_ms;
	r->end_ms = resp->end_ms;
	r->duration_ms = resp->duration_ms;
	http_classify(resp, st->expect, st->n_expect, st->a->redactor, r);
	if (resp->redirect_refused) {
		free(r->error);
		r->ok = false;
		r->error_class = DR_CLASS_PERMANENT;
		r->error = buf_strf("HTTP %d: redirect to another origin not followed: the "
				    "request body holds a secret", resp->status);
	}
	r->cancelled |= st->cancelled;
	r->out = resp->body;
	resp->body = (struct buf)BUF_INIT;
	r->out_bytes = resp->body_bytes;
	/* The result keeps the first EXEC_OUTPUT_CAP bytes of the body. */
	if (r->out_bytes > EXEC_OUTPUT_CAP)
		r->out_dropped = r->out_bytes - EXEC_OUTPUT_CAP;
	report(st);
}

/* Builds and starts the request. Returns 0 (started, or *failed: st->res
 * holds a permanent failure to report from the loop) or -ENOMEM. Build
 * steps return 0, -ENOMEM, or another -errno with b.err set. */
static int launch(struct hx_attempt *st, const struct dr_task *t, bool *failed)
{
	struct http_executor *hx = st->hx;
	const struct dr_task_opts *opts = t->opts ? t->opts : &st->a->wf->default_opts;
	struct build b = {.a = st->a};
	struct http_request rq = {.timeout_ms = opts->timeout_ms, .on_data = on_data,
				  .on_done = on_response, .ud = st};
	int r;
	*failed = false;
	if (st->a->variant == HTTP_VARIANT_API) {
		const struct dr_api *api = t->spec;
		st->expect = api->expect;
		st->n_expect = api->expect ? api->n_expect : 0;
		rq.connect_timeout_ms = api->connect_timeout_ms;
		rq.max_response_bytes = api->max_response_bytes;
		rq.insecure = api->insecure;
		if (api->insecure)
			st->res.warning = INSECURE_WARNING;
		r = build_api(&b, api);
	} else {
		r = build_webhook(&b, t->spec, hx);
	}
	if (r == 0) {
		rq.method = b.method;
		rq.url = b.url.data;
		rq.headers = (const char *const *)b.lines;
		rq.n_headers = b.n_lines;
		rq.private_headers = b.secret;
		rq.body = b.has_body ? (b.body.data ? b.body.data : "") : NULL;
		rq.body_len = b.body.len;
		rq.private_body = b.has_body && holds_secret(&b, b.body.data, b.body.len);
		r = http_request_start(hx->client, &rq, &st->xfer);
	}
	if (r < 0 && r != -ENOMEM) {
		st->res.ok = false;
		st->res.error_class = DR_CLASS_PERMANENT;
		st->res.error = b.err ? b.err : strdup("invalid request");
		b.err = NULL;
		*failed = true;
		r = 0;
	}
	build_free(&b);
	return r;
}

static int hx_start(struct executor *ex, struct exec_attempt *a)
{
	struct http_executor *hx = (struct http_executor *)ex;
	const struct dr_task *t = &a->wf->tasks[a->task];
	if ((a->variant != HTTP_VARIANT_API && a->variant != HTTP_VARIANT_WEBHOOK) || !t->spec)
		return -EINVAL;
	struct hx_attempt *st = calloc(1, sizeof(*st));
	if (!st)
		return -ENOMEM;
	st->hx = hx;
	st->a = a;
	st->res.exit_code = -1;
	st->res.start_ms = clock_wall_ms();
	bool failed;
	int r = launch(st, t, &failed);
	if (r < 0) {
		attempt_free(st);
		return r;
	}
	if (failed) {
		st->res.end_ms = st->res.start_ms;
		if (hx->failed_tail)
			hx->failed_tail->next = st;
		else
			hx->failed = st;
		hx->failed_tail = st;
		uv_timer_start(&hx->later, on_later, 0, 0);
	}
	a->priv = st;
	return 0;
}

static void hx_cancel(struct executor *ex, struct exec_attempt *a, bool hard)
{
	(void)ex;
	(void)hard;   /* a transfer stops at once either way */
	struct hx_attempt *st = a->priv;
	if (!st || st->cancelled)
		return;
	st->cancelled = true;
	if (st->xfer)
		http_request_cancel(st->xfer);
}

static void on_later_closed(uv_handle_t *h)
{
	free(h->data);
}

static void hx_destroy(struct executor *ex)
{
	struct http_executor *hx = (struct http_executor *)ex;
	if (!hx)
		return;
	http_client_free(hx->client);
	hx->client = NULL;
	while (hx->failed) {
		struct hx_attempt *st = hx->failed;
		hx->failed = st->next;
		attempt_free(st);
	}
	uv_close((uv_handle_t *)&hx->later, on_later_closed);
}

static const struct executor_ops http_ops = {
	.name = "http",
	.start = hx_start,
	.cancel = hx_cancel,
	.destroy = hx_destroy,
};

struct executor *http_executor_new(uv_loop_t *loop, const struct http_limits *lim)
{
	struct http_executor *hx = calloc(1, sizeof(*hx));
	if (!hx)
		return NULL;
	hx->base.ops = &http_ops;
	hx->loop = loop;
	if (http_client_new(loop, lim, &hx->client) < 0) {
		free(hx);
		return NULL;
	}
	uv_timer_init(loop, &hx->later);
	hx->later.data = hx;
	return &hx->base;
}

void http_executor_set_summary(struct executor *ex, http_summary_fn fn, void *ud)
{
	if (!ex || ex->ops != &http_ops)
		return;
	struct http_executor *hx = (struct http_executor *)ex;
	hx->summary = fn;
	hx->summary_ud = ud;
}

struct http_client *http_executor_client(struct executor *ex)
{
	if (!ex || ex->ops != &http_ops)
		return NULL;
	return ((struct http_executor *)ex)->client;
}
