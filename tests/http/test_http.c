/* test_http.c: the api/webhook executor against tests/http/server.py on a
 * loopback port: classification, Retry-After, caps, headers, bodies, stable
 * ids, webhook signatures (checked by the server's own HMAC), cancellation,
 * the in-flight cap and a loop that never blocks under 200 requests.
 *
 * Workflows are built by hand (no loader). Every test runs its own loop,
 * closes every handle and checks that the loop closes cleanly.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>

#include "exec/http.h"
#include "server.h"
#include "expr/redact.h"
#include "util/sign.h"

/* ---- the test server ----------------------------------------------------------- */

static struct test_server server;
static int port, tls_port;
static char tmpdir[64];        /* the server's self-signed certificate */

static int server_up(void **state)
{
	(void)state;
	char cert[128], key[128], cmd[512];
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/dagrun-http-test-XXXXXX");
	if (!mkdtemp(tmpdir))
		return -1;
	snprintf(cert, sizeof(cert), "%s/cert.pem", tmpdir);
	snprintf(key, sizeof(key), "%s/key.pem", tmpdir);
	snprintf(cmd, sizeof(cmd), "openssl req -x509 -newkey rsa:2048 -nodes -days 2 "
		 "-subj /CN=localhost -keyout %s -out %s >/dev/null 2>&1", key, cert);
	if (system(cmd) != 0)
		return -1;
	const char *const args[] = {"--tls", cert, key, NULL};
	if (test_server_start(&server, "tests/http/server.py", args) < 0 || server.n_ports != 2)
		return -1;
	port = server.ports[0];
	tls_port = server.ports[1];
	return port > 0 && tls_port > 0 ? 0 : -1;
}

static int server_down(void **state)
{
	(void)state;
	test_server_stop(&server);
	if (tmpdir[0]) {
		char cmd[128];
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
		if (system(cmd) != 0)
			return -1;
	}
	curl_global_cleanup();
	return 0;
}

static char *url_of(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *url_of(const char *fmt, ...)
{
	char tail[2048], *s = NULL;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(tail, sizeof(tail), fmt, ap);
	va_end(ap);
	assert_true(asprintf(&s, "http://127.0.0.1:%d%s", port, tail) > 0);
	return s;
}

static size_t collect(char *p, size_t size, size_t n, void *ud)
{
	struct buf *b = ud;
	return buf_add(b, p, size * n) == 0 ? size * n : 0;
}

/* GETs a control endpoint of the server (blocking: test side only). */
static json_t *control(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static json_t *control(const char *fmt, ...)
{
	char tail[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(tail, sizeof(tail), fmt, ap);
	va_end(ap);
	char *u = url_of("%s", tail);
	struct buf b = BUF_INIT;
	CURL *e = curl_easy_init();
	assert_non_null(e);
	curl_easy_setopt(e, CURLOPT_URL, u);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, &b);
	assert_int_equal(curl_easy_perform(e), CURLE_OK);
	curl_easy_cleanup(e);
	free(u);
	json_t *j = json_loadb(b.data ? b.data : "", b.len, 0, NULL);
	assert_non_null(j);
	buf_free(&b);
	return j;
}

/* The recorded requests for key (a JSON array; the caller decrefs). */
static json_t *requests(const char *key)
{
	return control("/_requests?key=%s", key);
}

static const char *req_header(json_t *reqs, size_t i, const char *name)
{
	return json_string_value(json_object_get(
		json_object_get(json_array_get(reqs, i), "headers"), name));
}

/* A loopback port with nothing listening. */
static int closed_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(a);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	close(fd);
	return ntohs(a.sin_port);
}

/* ---- a workflow built by hand --------------------------------------------------- */

#define MAX_TASKS 4

struct fixture {
	struct dagrun_workflow wf;
	struct dr_task tasks[MAX_TASKS];
	struct dr_task_opts opts;
	struct dr_api api[MAX_TASKS];
	struct dr_webhook hook[MAX_TASKS];
	struct dr_kv hdr[MAX_TASKS][4];
	struct dr_value body, items[8];
	struct dr_text keys[8];
	struct dr_value list_items[2];
	uint16_t expect[2];
	char *urls[MAX_TASKS];
};

static struct dr_text text(const char *s)
{
	struct dr_text t = {s, s ? (uint32_t)strlen(s) : 0, 3, 7};
	return t;
}

static struct fixture *fixture_new(void)
{
	struct fixture *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	f->wf.name = text("wf-test");
	f->opts.retry.max_attempts = 1;
	f->wf.tasks = f->tasks;
	static const char *const ids[MAX_TASKS] = {"t1", "t2", "t3", "t4"};
	for (int i = 0; i < MAX_TASKS; i++) {
		int added;
		f->tasks[i].sym = intern_add(&f->wf.ids, ids[i], 2, &added);
		f->tasks[i].opts = &f->opts;
	}
	f->wf.n_tasks = f->wf.n_main = MAX_TASKS;
	return f;
}

static void fixture_free(struct fixture *f)
{
	intern_free(&f->wf.ids);
	for (int i = 0; i < MAX_TASKS; i++)
		free(f->urls[i]);
	free(f);
}

/* Task i becomes an api task on url (owned by the fixture). */
static struct dr_api *api_task(struct fixture *f, int i, const char *method, char *url)
{
	f->tasks[i].kind = HTTP_VARIANT_API;     /* the fixture's kind: the variant */
	f->tasks[i].spec = &f->api[i];
	f->urls[i] = url;
	f->api[i].url = text(url);
	f->api[i].method = text(method);
	return &f->api[i];
}

static struct dr_webhook *webhook_task(struct fixture *f, int i, char *url)
{
	f->tasks[i].kind = HTTP_VARIANT_WEBHOOK;
	f->tasks[i].spec = &f->hook[i];
	f->urls[i] = url;
	f->hook[i].url = text(url);
	return &f->hook[i];
}

static void set_header(struct fixture *f, int task, int k, const char *name, const char *value)
{
	f->hdr[task][k] = (struct dr_kv){text(name), text(value)};
	struct dr_kvlist *l = f->tasks[task].kind == HTTP_VARIANT_API ? &f->api[task].headers
								 : &f->hook[task].headers;
	l->v = f->hdr[task];
	if (l->n < (uint32_t)k + 1)
		l->n = (uint32_t)k + 1;
}

/* ---- templates: a tiny stand-in for the expressions module ------------------ */

static const char *lookup(const char *name, size_t n)
{
	static const char *const table[][2] = {
		{"secret", "s3cr3t"}, {"name", "world"}, {"evil", "a\r\nX-Injected: 1"},
		{"q", "a b&c"}, {"event", "release.published"},
	};
	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++)
		if (strlen(table[i][0]) == n && !memcmp(table[i][0], name, n))
			return table[i][1];
	return NULL;
}

static int render(struct exec_attempt *a, const struct dr_text *t, enum exec_render_mode mode,
		  struct buf *out, char **err)
{
	(void)a;
	const char *s = t->s, *end = t->s + t->len;
	while (s < end) {
		const char *open = strstr(s, "{{");
		if (!open || open >= end)
			return buf_add(out, s, (size_t)(end - s));
		buf_add(out, s, (size_t)(open - s));
		const char *close = strstr(open, "}}");
		assert_non_null(close);
		const char *n = open + 2, *ne = close;
		while (*n == ' ')
			n++;
		while (ne > n && ne[-1] == ' ')
			ne--;
		const char *v = lookup(n, (size_t)(ne - n));
		if (!v) {
			assert_true(asprintf(err, "t.yaml:%u:%u: unknown name '%.*s'", t->line,
					     t->col, (int)(ne - n), n) > 0);
			return -EINVAL;
		}
		if (mode == EXEC_RENDER_HEADER && strpbrk(v, "\r\n")) {
			assert_true(asprintf(err, "t.yaml:%u:%u: a line break in a header",
					     t->line, t->col) > 0);
			return -EINVAL;
		}
		if (mode == EXEC_RENDER_URL) {
			for (const char *p = v; *p; p++)
				if (strchr("abcdefghijklmnopqrstuvwxyz0123456789-._~", *p))
					buf_addc(out, *p);
				else
					buf_printf(out, "%%%02X", (unsigned char)*p);
		} else {
			buf_adds(out, v);
		}
		s = close + 2;
	}
	return 0;
}

/* ---- running attempts ------------------------------------------------------------ */

struct outcome {
	bool done, ok, timed_out, cancelled;
	int cls, status;
	char *error, *out;
	size_t out_len;
	json_t *headers;
	uint64_t retry_after_ms, out_bytes, duration_ms;
	struct exec_http_timing timing;
	const char *warning;
	size_t seen;          /* bytes through on_output */
};

struct job {
	struct exec_attempt a;
	struct outcome o;
	struct ctx *c;
};

static bool no_render;     /* start attempts without a render callback */

struct ctx {
	uv_loop_t loop;
	struct executor *ex;
	unsigned pending;
};

static void on_output(struct exec_attempt *a, enum exec_stream s, const char *d, size_t n)
{
	(void)d;
	struct job *j = a->owner;
	assert_int_equal(s, EXEC_STDOUT);
	j->o.seen += n;
}

static void on_done(struct exec_attempt *a, struct exec_result *r)
{
	struct job *j = a->owner;
	struct outcome *o = &j->o;
	assert_false(o->done);
	o->done = true;
	o->ok = r->ok;
	o->cls = r->error_class;
	const struct dagrun_ext_http *h = r->ext ?
		(const void *)dagrun_ext_find(r->ext->pub, DAGRUN_EXT_HTTP) : NULL;
	o->status = h ? h->status : 0;
	o->timed_out = r->timed_out;
	o->cancelled = r->cancelled;
	o->error = r->error ? strdup(r->error) : NULL;
	o->out = strndup(r->out.data ? r->out.data : "", r->out.len);
	o->out_len = r->out.len;
	o->out_bytes = r->out_bytes;
	o->headers = json_incref(r->ext ? r->ext->headers : NULL);
	o->retry_after_ms = r->retry_after_ms;
	o->duration_ms = r->duration_ms;
	if (h)
		o->timing = (struct exec_http_timing){h->queue_us, h->dns_us, h->connect_us,
						      h->tls_us, h->first_byte_us, h->total_us,
						      h->redirects};
	o->warning = r->warning;
	assert_true(r->ok == (r->error == NULL));
	assert_true(r->end_ms >= r->start_ms);
	j->c->pending--;
}

static void outcome_free(struct outcome *o)
{
	free(o->error);
	free(o->out);
	json_decref(o->headers);
}

static void ctx_init(struct ctx *c, const struct http_limits *lim)
{
	memset(c, 0, sizeof(*c));
	assert_int_equal(uv_loop_init(&c->loop), 0);
	c->ex = http_executor_new(&c->loop, lim);
	assert_non_null(c->ex);
}

static void job_start(struct ctx *c, struct job *j, struct fixture *f, uint32_t task,
		      uint32_t attempt, const char *run_id)
{
	memset(j, 0, sizeof(*j));
	j->c = c;
	j->a = (struct exec_attempt){
		.wf = &f->wf, .task = task, .variant = f->tasks[task].kind, .attempt = attempt,
		.run_id = run_id, .on_output = on_output, .on_done = on_done, .render = no_render ? NULL : render,
		.owner = j,
	};
	c->pending++;
	assert_int_equal(c->ex->ops->start(c->ex, &j->a), 0);
	assert_false(j->o.done);               /* never from inside start() */
}

static void ctx_finish(struct ctx *c)
{
	uv_run(&c->loop, UV_RUN_DEFAULT);
	assert_int_equal(c->pending, 0);
	c->ex->ops->destroy(c->ex);
	uv_run(&c->loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(&c->loop), 0);
}

/* Runs task 0 of f once, attempt 1 of run "run-1". */
static struct outcome run1(struct fixture *f)
{
	struct ctx c;
	struct job j;
	ctx_init(&c, NULL);
	job_start(&c, &j, f, 0, 1, "run-1");
	ctx_finish(&c);
	assert_true(j.o.done);
	return j.o;
}

/* A fixture whose task 0 is GET url. */
static struct outcome get(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static struct outcome get(const char *fmt, ...)
{
	char tail[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(tail, sizeof(tail), fmt, ap);
	va_end(ap);
	struct fixture *f = fixture_new();
	api_task(f, 0, NULL, url_of("%s", tail));
	struct outcome o = run1(f);
	fixture_free(f);
	return o;
}

/* ---- success --------------------------------------------------------------- */

static void api_get_json_success_keeps_body_headers_and_timings(void **state)
{
	(void)state;
	struct outcome o = get("/json?key=ok1&body=%%7B%%22a%%22%%3A1%%2C%%22b%%22%%3A%%5B1%%2C2%%5D%%7D"
			       "&h=X-Multi:one&h=X-Multi:two");
	assert_true(o.ok);
	assert_int_equal(o.status, 200);
	assert_string_equal(o.out, "{\"a\":1,\"b\":[1,2]}");
	assert_int_equal(o.out_bytes, o.out_len);
	assert_int_equal(o.seen, o.out_len);      /* streamed to on_output too */
	json_t *body = json_loads(o.out, 0, NULL);
	assert_non_null(body);
	assert_int_equal(json_integer_value(json_object_get(body, "a")), 1);
	json_decref(body);
	assert_string_equal(json_string_value(json_object_get(o.headers, "content-type")),
			    "application/json");
	assert_string_equal(json_string_value(json_object_get(o.headers, "x-multi")), "one, two");
	assert_true(o.timing.total_us > 0);
	assert_true(o.timing.connect_us > 0);
	assert_true(o.timing.first_byte_us >= o.timing.connect_us);
	assert_true(o.timing.total_us >= o.timing.first_byte_us);
	assert_null(o.warning);
	json_t *r = requests("ok1");
	assert_int_equal(json_array_size(r), 1);
	assert_string_equal(json_string_value(json_object_get(json_array_get(r, 0), "method")), "GET");
	assert_null(req_header(r, 0, "idempotency-key"));   /* never on GET */
	assert_true(!strncmp(req_header(r, 0, "user-agent"), "dagrun/", 7));
	json_decref(r);
	outcome_free(&o);
}

static void api_redirect_is_followed(void **state)
{
	(void)state;
	struct outcome o = get("/from?redirect=/to%%3Fbody%%3Dlanded");
	assert_true(o.ok);
	assert_int_equal(o.status, 200);
	assert_string_equal(o.out, "landed");
	assert_int_equal(o.timing.redirects, 1);
	outcome_free(&o);
}

static void api_expect_status_accepts_listed_code(void **state)
{
	(void)state;
	struct fixture *f = fixture_new();
	struct dr_api *api = api_task(f, 0, NULL, url_of("/x?status=404"));
	f->expect[0] = 404;
	api->expect = f->expect;
	api->n_expect = 1;
	struct outcome o = run1(f);
	assert_true(o.ok);
	assert_int_equal(o.status, 404);
	outcome_free(&o);
	fixture_free(f);
}

/* ---- classification -------------------------------------------------------- */

static void check_class(struct outcome o, int cls, int status)
{
	assert_false(o.ok);
	assert_int_equal(o.cls, cls);
	assert_int_equal(o.status, status);
	assert_non_null(o.error);
	outcome_free(&o);
}

static void api_503_is_transient(void **state)
{
	(void)state;
	struct outcome o = get("/x?status=503&body=down");
	assert_non_null(strstr(o.error, "HTTP 503"));
	assert_non_null(strstr(o.error, "down"));
	check_class(o, DR_CLASS_TRANSIENT, 503);
}

static void api_429_408_409_425_are_transient(void **state)
{
	(void)state;
	check_class(get("/x?status=429"), DR_CLASS_TRANSIENT, 429);
	check_class(get("/x?status=408"), DR_CLASS_TRANSIENT, 408);
	check_class(get("/x?status=409"), DR_CLASS_TRANSIENT, 409);
	check_class(get("/x?status=425"), DR_CLASS_TRANSIENT, 425);
}

static void api_404_and_400_are_permanent(void **state)
{
	(void)state;
	check_class(get("/x?status=404"), DR_CLASS_PERMANENT, 404);
	check_class(get("/x?status=400"), DR_CLASS_PERMANENT, 400);
}

static void api_unexpected_status_is_permanent(void **state)
{
	(void)state;
	struct fixture *f = fixture_new();
	struct dr_api *api = api_task(f, 0, NULL, url_of("/x?status=200"));
	f->expect[0] = 201;
	f->expect[1] = 202;
	api->expect = f->expect;
	api->n_expect = 2;
	struct outcome o = run1(f);
	assert_non_null(strstr(o.error, "expected 201, 202"));
	check_class(o, DR_CLASS_PERMANENT, 200);
	fixture_free(f);
}

static void api_connection_refused_is_transient(void **state)
{
	(void)state;
	struct fixture *f = fixture_new();
	char *u = NULL;
	assert_true(asprintf(&u, "http://127.0.0.1:%d/x", closed_port()) > 0);
	api_task(f, 0, NULL, u);
	struct outcome o = run1(f);
	assert_non_null(strstr(o.error, "cannot connect"));
	check_class(o, DR_CLASS_TRANSIENT, 0);
	fixture_free(f);
}

static void api_connection_reset_is_transient(void **state)
{
	(void)state;
	check_class(get("/x?reset=1"), DR_CLASS_TRANSIENT, 0);
}

static void api_timeout_is_transient_and_timed_out(void **state)
{
	(void)state;
	struct fixture *f = fixture_new();
	api_task(f, 0, NULL, url_of("/x?hang=1"));
	f->opts.timeout_ms = 300;
	struct outcome o = run1(f);
	assert_true(o.timed_out);
	assert_non_null(strstr(o.error, "timed out"));
	assert_true(o.duration_ms >= 250 && o.duration_ms < 20000);
	check_class(o, DR_CLASS_TRANSIENT, 0);
	fixture_free(f);
}

static void api_invalid_url_is_permanent(void **state)
{
	(void)state;
	static const char *const bad[] = {"ftp://127.0.0.1/x", "http://[::1/x", "not a url",
					  "http:/127.0.0.1/x"};
	for (size_t i = 0; i < 4; i++) {
		struct fixture *f = fixture_new();
		api_task(f, 0, NULL, strdup(bad[i]));
		struct outcome o = run1(f);
		assert_non_null(strstr(o.error, "invalid URL"));
		check_class(o, DR_CLASS_PERMANENT, 0);
		fixture_free(f);
	}
	/* the loader's rule (util/url.h): curl parses "http:/host", and the
	 * scheme may be in any case */
	struct fixture *f = fixture_new();
	api_task(f, 0, NULL, strdup("ftp://127.0.0.1/x"));
	struct outcome o = run1(f);
	assert_string_equal(o.error, "invalid URL: the URL must start with http:// or https://");
	outcome_free(&o);
	fixture_free(f);
	f = fixture_new();
	char *up = url_of("/x?key=upper-scheme");
	memcpy(up, "HTTP", 4);
	api_task(f, 0, NULL, up);
	o = run1(f);
	assert_true(o.ok);
	outcome_free(&o);
	fixture_free(f);
}

static void api_template_error_is_permanent_with_position(void **state)
{
	(void)state;
	struct fixture *f = fixture_new();
	api_task(f, 0, NULL, url_of("/x?v={{ nope }}"));
	struct outcome o = run1(f);
	assert_non_null(strstr(o.error, "t.yaml:3:7"));
	check_class(o, DR_CLASS_PERMANENT, 0);
	fixture_free(f);
}

/* ---- Retry-After ------------------------------------------------------------ */

static void retry_after_seconds_date_and_ms_are_parsed(void **state)
{
	(void)state;
	struct outcome o = get("/x?status=429&retry_after=7");
	assert_int_equal(o.retry_after_ms, 7000);
	check_class(o, DR_CLASS_TRANSIENT, 429);

	o = get("/x?status=503&retry_after=date%%2B30");
	assert_true(o.retry_after_ms >= 25000 && o.retry_after_ms <= 31000);
	check_class(o, DR_CLASS_TRANSIENT, 503);

	o = get("/x?status=429&retry_after_ms=1500&retry_after=60");
	assert_int_equal(o.retry_after_ms, 1500);            /* the ms header wins */
	check_class(o, DR_CLASS_TRANSIENT, 429);
}

static void retry_after_parser_edge_cases(void **state)
{
	(void)state;
	json_t *h = json_object();
	time_t now = 1700000000;
	assert_int_equal(http_retry_after_ms(NULL, now), 0);
	assert_int_equal(http_retry_after_ms(h, now), 0);
	json_object_set_new(h, "retry-after", json_string("1.5"));
	assert_int_equal(http_retry_after_ms(h, now), 1500);
	json_object_set_new(h, "retry-after", json_string(" 120 "));
	assert_int_equal(http_retry_after_ms(h, now), 120000);
	json_object_set_new(h, "retry-after", json_string("soon"));
	assert_int_equal(http_retry_after_ms(h, now), 0);
	json_object_set_new(h, "retry-after", json_string("-5"));
	assert_int_equal(http_retry_after_ms(h, now), 0);
	/* 1700000000 is Tue, 14 Nov 2023 22:13:20 GMT. */
	json_object_set_new(h, "retry-after", json_string("Tue, 14 Nov 2023 22:13:50 GMT"));
	assert_int_equal(http_retry_after_ms(h, now), 30000);
	json_object_set_new(h, "retry-after", json_string("Tue, 14 Nov 2023 22:00:00 GMT"));
	assert_int_equal(http_retry_after_ms(h, now), 0);     /* in the past */
	json_object_set_new(h, "retry-after", json_string("99999999999999999999999"));
	assert_int_equal(http_retry_after_ms(h, now), HTTP_RETRY_AFTER_MAX_MS);
	json_object_set_new(h, "retry-after-ms", json_string("250"));
	assert_int_equal(http_retry_after_ms(h, now), 250);
	json_object_set_new(h, "retry-after-ms", json_string("x"));
	assert_int_equal(http_retry_after_ms(h, now), HTTP_RETRY_AFTER_MAX_MS);
	json_decref(h);
}

/* ---- caps ------------------------------------------------------------------ */

static void response_over_cap_is_a_clear_permanent_error(void **state)
{
	(void)state;
	for (int chunked = 0; chunked <= 1; chunked++) {
		struct fixture *f = fixture_new();
		struct dr_api *api = api_task(f, 0, NULL,
					      url_of("/big?size=3000000&chunked=%d", chunked));
		api->max_response_bytes = 100000;
		struct outcome o = run1(f);
		assert_non_null(strstr(o.error, "maxResponseBytes"));
		assert_true(o.out_len <= 100000);
		check_class(o, DR_CLASS_PERMANENT, 200);
		fixture_free(f);
	}
	/* Under the cap: all of it. */
	struct fixture *f = fixture_new();
	struct dr_api *api = api_task(f, 0, NULL, url_of("/big?size=200000&chunked=1"));
	api->max_response_bytes = 200000;
	struct outcome o = run1(f);
	assert_true(o.ok);
	assert_int_equal(o.out_len, 200000);
	outcome_free(&o);
	fixture_free(f);
}

static void response_headers_over_curls_limits_are_a_clear_permanent_error(void **state)
{
	(void)state;
	/* One header line over curl's 100 KiB used to read "request failed: Out
	 * of memory" (class resource, retried); all headers over curl's total
	 * "connection failed: Too large response headers" (transient). */
	static const struct {
		const char *query, *want;
	} cases[] = {
		{"/h?big_header=1000000", "a response header is larger than curl's limit of 100 KiB"},
		{"/h?big_header=200000", "a response header is larger than curl's limit of 100 KiB"},
		{"/h?big_header=90000x4", "response headers larger than curl's limit"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct fixture *f = fixture_new();
		api_task(f, 0, NULL, url_of("%s", cases[i].query));
		struct outcome o = run1(f);
		assert_false(o.ok);
		assert_int_equal(o.cls, DR_CLASS_PERMANENT);
		if (!o.error || strncmp(o.error, cases[i].want, strlen(cases[i].want)))
			fail_msg("%s: %s", cases[i].query, o.error ? o.error : "(null)");
		outcome_free(&o);
		fixture_free(f);
	}
	/* Large but within the limits: kept. */
	struct fixture *f = fixture_new();
	api_task(f, 0, NULL, url_of("/h?big_header=90000"));
	struct outcome o = run1(f);
	assert_true(o.ok);
	outcome_free(&o);
	fixture_free(f);
}

/* ---- headers and bodies ------------------------------------------------------- */

static void header_with_line_break_is_refused_before_sending(void **state)
{
	(void)state;
	/* Through the render callback, and in a raw string without one. */
	for (int raw = 0; raw <= 1; raw++) {
		struct fixture *f = fixture_new();
		api_task(f, 0, NULL, url_of("/x?key=crlf%d", raw));
		set_header(f, 0, 0, "X-Ok", "fine");
		set_header(f, 0, 1, "X-Bad", raw ? "a\r\nX-Injected: 1" : "{{ evil }}");
		struct ctx c;
		struct job j;
		ctx_init(&c, NULL);
		no_render = raw;
		job_start(&c, &j, f, 0, 1, "run-1");
		no_render = false;
		ctx_finish(&c);
		assert_non_null(strstr(j.o.error, "X-Bad"));
		check_class(j.o, DR_CLASS_PERMANENT, 0);
		json_t *r = control("/_requests?key=crlf%d", raw);
		assert_int_equal(json_array_size(r), 0);          /* nothing was sent */
		json_decref(r);
		fixture_free(f);
	}
}

static void headers_are_rendered_and_sent(void **state)
{
	(void)state;
	struct fixture *f = fixture_new();
	api_task(f, 0, NULL, url_of("/x?key=hdr&q={{ q }}"));
	set_header(f, 0, 0, "Authorization", "Bearer {{ secret }}");
	set_header(f, 0, 1, "X-Empty", "");
	struct outcome o = run1(f);
	assert_true(o.ok);
	outcome_free(&o);
	json_t *r = requests("hdr");
	assert_int_equal(json_array_size(r), 1);
	assert_string_equal(req_header(r, 0, "authorization"), "Bearer s3cr3t");
	assert_string_equal(req_header(r, 0, "x-empty"), "");
	assert_string_equal(json_string_value(json_object_get(json_array_get(r, 0), "query")),
			    "key=hdr&q=a%20b%26c");
	json_decref(r);
	fixture_free(f);
}

static struct dr_value scalar(int kind, const char *s)
{
	struct dr_value v = {.kind = (uint8_t)kind, .text = text(s)};
	return v;
}

static void json_body_is_sent_with_content_type(void **state)
{
	(void)state;
	struct fixture *f = fixture_new();
	struct dr_api *api = api_task(f, 0, "POST", url_of("/x?key=jb"));
	f->keys[0] = text("name");
	f->items[0] = scalar(DR_VAL_STRING, "hello {{ name }}");
	f->keys[1] = text("n");
	f->items[1] = scalar(DR_VAL_INT, "3");
	f->items[1].as.i = 3;
	f->keys[2] = text("ok");
	f->items[2] = scalar(DR_VAL_BOOL, "true");
	f->items[2].as.b = true;
	f->keys[3] = text("none");
	f->items[3] = scalar(DR_VAL_NULL, "null");
	f->keys[4] = text("list");
	f->list_items[0] = scalar(DR_VAL_REAL, "1.5");
	f->list_items[0].as.d = 1.5;
	f->list_items[1] = scalar(DR_VAL_STRING, "x\"y");
	f->items[4] = (struct dr_value){.kind = DR_VAL_LIST, .count = 2, .items = f->list_items};
	f->body = (struct dr_value){.kind = DR_VAL_MAP, .count = 5, .items = f->items,
				    .keys = f->keys};
	api->body = &f->body;
	struct outcome o = run1(f);
	assert_true(o.ok);
	outcome_free(&o);
	json_t *r = requests("jb");
	assert_string_equal(req_header(r, 0, "content-type"), "application/json");
	json_t *sent = json_loads(json_string_value(json_object_get(json_array_get(r, 0), "body")),
				  0, NULL);
	json_t *want = json_loads("{\"name\":\"hello world\",\"n\":3,\"ok\":true,\"none\":null,"
				  "\"list\":[1.5,\"x\\\"y\"]}", 0, NULL);
	assert_non_null(sent);
	assert_true(json_equal(sent, want));
	json_decref(sent);
	json_decref(want);
	json_decref(r);
	fixture_free(f);
}

static void string_body_is_sent_as_is_and_content_type_kept(void **state)
{
	(void)state;
	struct fixture *f = fixture_new();
	struct dr_api *api = api_task(f, 0, "PUT", url_of("/x?key=sb"));
	f->body = scalar(DR_VAL_STRING, "plain {{ name }}");
	api->body = &f->body;
	struct outcome o = run1(f);
	assert_true(o.ok);
	outcome_free(&o);
	/* A task's own Content-Type wins over application/json. */
	api_task(f, 1, "PATCH", url_of("/x?key=sb"));
	f->list_items[0] = scalar(DR_VAL_INT, "1");
	f->list_items[0].as.i = 1;
	f->items[0] = (struct dr_value){.kind = DR_VAL_LIST, .count = 1, .items = f->list_items};
	f->api[1].body = &f->items[0];
	set_header(f, 1, 0, "content-type", "application/merge-patch+json");
	struct ctx c;
	struct job j;
	ctx_init(&c, NULL);
	job_start(&c, &j, f, 1, 1, "run-1");
	ctx_finish(&c);
	assert_true(j.o.ok);
	outcome_free(&j.o);
	json_t *r = requests("sb");
	assert_int_equal(json_array_size(r), 2);
	json_t *r0 = json_array_get(r, 0), *r1 = json_array_get(r, 1);
	assert_string_equal(json_string_value(json_object_get(r0, "method")), "PUT");
	assert_string_equal(json_string_value(json_object_get(r0, "body")), "plain world");
	assert_null(req_header(r, 0, "content-type"));     /* not form-urlencoded */
	assert_string_equal(json_string_value(json_object_get(r1, "method")), "PATCH");
	assert_string_equal(json_string_value(json_object_get(r1, "body")), "[1]");
	assert_string_equal(req_header(r, 1, "content-type"), "application/merge-patch+json");
	json_decref(r);
	fixture_free(f);
}

/* ---- stable ids ------------------------------------------------------------------ */

static void idempotency_key_is_stable_across_attempts_and_absent_on_get(void **state)
{
	(void)state;
	struct fixture *f = fixture_new();
	api_task(f, 0, "POST", url_of("/x?key=idem&fail=1"));
	api_task(f, 1, "POST", url_of("/x?key=idem"));          /* another task */
	api_task(f, 2, "DELETE", url_of("/x?key=idem"));
	set_header(f, 2, 0, "idempotency-KEY", "mine");
	api_task(f, 3, "GET", url_of("/x?key=idem"));
	struct ctx c;
	struct job j[5];
	ctx_init(&c, NULL);
	job_start(&c, &j[0], f, 0, 1, "run-1");
	uv_run(&c.loop, UV_RUN_DEFAULT);
	assert_false(j[0].o.ok);
	assert_int_equal(j[0].o.cls, DR_CLASS_TRANSIENT);
	job_start(&c, &j[1], f, 0, 2, "run-1");                 /* the retry */
	uv_run(&c.loop, UV_RUN_DEFAULT);
	assert_true(j[1].o.ok);
	job_start(&c, &j[2], f, 1, 1, "run-1");
	uv_run(&c.loop, UV_RUN_DEFAULT);
	job_start(&c, &j[3], f, 2, 1, "run-1");
	uv_run(&c.loop, UV_RUN_DEFAULT);
	job_start(&c, &j[4], f, 3, 1, "run-1");
	ctx_finish(&c);
	for (int i = 0; i < 5; i++)
		outcome_free(&j[i].o);
	json_t *r = requests("idem");
	assert_int_equal(json_array_size(r), 5);
	const char *k0 = req_header(r, 0, "idempotency-key"), *k1 = req_header(r, 1, "idempotency-key");
	assert_non_null(k0);
	assert_int_equal(strlen(k0), 36);
	assert_string_equal(k0, k1);
	assert_string_not_equal(k0, req_header(r, 2, "idempotency-key"));
	assert_string_equal(req_header(r, 3, "idempotency-key"), "mine");
	assert_null(req_header(r, 4, "idempotency-key"));
	json_decref(r);
	fixture_free(f);
}

static void derived_ids_are_uuid_shaped_and_stable(void **state)
{
	(void)state;
	const char *a[] = {"wf", "run-1", "t1"}, *b[] = {"wf", "run-2", "t1"};
	char x[37], y[37], z[37];
	assert_int_equal(http_derive_id("d", a, 3, x), 0);
	assert_int_equal(http_derive_id("d", a, 3, y), 0);
	assert_int_equal(http_derive_id("d", b, 3, z), 0);
	assert_string_equal(x, y);
	assert_string_not_equal(x, z);
	assert_int_equal(strlen(x), 36);
	assert_true(x[8] == '-' && x[13] == '-' && x[18] == '-' && x[23] == '-');
	assert_int_equal(x[14], '8');
	assert_non_null(strchr("89ab", x[19]));
	/* Parts are separated: ("ab", "c") is not ("a", "bc"). */
	const char *p[] = {"ab", "c"}, *q[] = {"a", "bc"};
	assert_int_equal(http_derive_id("d", p, 2, x), 0);
	assert_int_equal(http_derive_id("d", q, 2, y), 0);
	assert_string_not_equal(x, y);
}

/* ---- webhooks ---------------------------------------------------------------------- */

static void webhook_signature_verifies_independently(void **state)
{
	(void)state;
	struct fixture *f = fixture_new();
	struct dr_webhook *w = webhook_task(f, 0, url_of("/hook?key=sig"));
	w->secret = text("{{ secret }}");
	w->event = text("{{ event }}");
	f->keys[0] = text("version");
	f->items[0] = scalar(DR_VAL_STRING, "1.4.0 for {{ name }} \xc3\xa9");
	f->body = (struct dr_value){.kind = DR_VAL_MAP, .count = 1, .items = f->items,
				    .keys = f->keys};
	w->payload = &f->body;
	set_header(f, 0, 0, "X-Extra", "1");
	set_header(f, 0, 1, "X-Dagrun-Signature", "forged");   /* ours wins */
	struct outcome o = run1(f);
	assert_true(o.ok);
	outcome_free(&o);
	json_t *r = requests("sig");
	assert_int_equal(json_array_size(r), 1);
	json_t *r0 = json_array_get(r, 0);
	assert_string_equal(json_string_value(json_object_get(r0, "method")), "POST");
	assert_string_equal(req_header(r, 0, "content-type"), "application/json");
	assert_string_equal(req_header(r, 0, "x-dagrun-event"), "release.published");
	assert_string_equal(req_header(r, 0, "x-extra"), "1");
	assert_int_equal(strlen(req_header(r, 0, "x-dagrun-delivery")), 36);
	const char *sig = req_header(r, 0, "x-dagrun-signature");
	assert_true(!strncmp(sig, "t=", 2) && strstr(sig, ",v1="));
	long long t = atoll(sig + 2);
	assert_true(llabs(t - (long long)time(NULL)) < 60);
	json_decref(r);
	json_t *v = control("/_verify?key=sig&secret=s3cr3t");
	assert_int_equal(json_array_size(v), 1);
	assert_true(json_is_true(json_array_get(v, 0)));
	json_decref(v);
	v = control("/_verify?key=sig&secret=wrong");
	assert_true(json_is_false(json_array_get(v, 0)));
	json_decref(v);
	fixture_free(f);
}

static void signature_matches_a_known_vector(void **state)
{
	(void)state;
	/* printf '1700000000.{"a":1}' | openssl dgst -sha256 -hmac key */
	FILE *p = popen("printf '%s' '1700000000.{\"a\":1}' | openssl dgst -sha256 -hmac key"
			" | sed 's/.*= //'", "r");
	assert_non_null(p);
	char want[128] = "";
	assert_non_null(fgets(want, sizeof(want), p));
	pclose(p);
	want[strcspn(want, "\n")] = '\0';
	char *sig = NULL;
	assert_int_equal(sign_webhook("key", 3, 1700000000, "{\"a\":1}", 7, &sig), 0);
	char expect[160];
	snprintf(expect, sizeof(expect), "t=1700000000,v1=%s", want);
	assert_string_equal(sig, expect);
	free(sig);
}

static char *summary(void *ud, const struct exec_attempt *a)
{
	(void)a;
	int *calls = ud;
	(*calls)++;
	return strdup("{\"run\":\"r\",\"tasks\":{\"t1\":\"completed\"}}");
}

static void webhook_delivery_is_stable_and_default_payload_summarises(void **state)
{
	(void)state;
	struct fixture *f = fixture_new();
	webhook_task(f, 0, url_of("/hook?key=dlv&fail=1&fail_status=502"));
	webhook_task(f, 1, url_of("/hook?key=dlv"));
	struct ctx c;
	struct job j[4];
	ctx_init(&c, NULL);
	job_start(&c, &j[0], f, 0, 1, "run-7");
	uv_run(&c.loop, UV_RUN_DEFAULT);
	assert_false(j[0].o.ok);
	assert_int_equal(j[0].o.cls, DR_CLASS_TRANSIENT);
	job_start(&c, &j[1], f, 0, 2, "run-7");
	uv_run(&c.loop, UV_RUN_DEFAULT);
	assert_true(j[1].o.ok);
	job_start(&c, &j[2], f, 1, 1, "run-7");
	uv_run(&c.loop, UV_RUN_DEFAULT);
	int calls = 0;
	http_executor_set_summary(c.ex, summary, &calls);
	job_start(&c, &j[3], f, 1, 2, "run-7");
	ctx_finish(&c);
	assert_int_equal(calls, 1);
	for (int i = 0; i < 4; i++)
		outcome_free(&j[i].o);
	json_t *r = requests("dlv");
	assert_int_equal(json_array_size(r), 4);
	const char *d0 = req_header(r, 0, "x-dagrun-delivery");
	assert_string_equal(d0, req_header(r, 1, "x-dagrun-delivery"));
	assert_string_not_equal(d0, req_header(r, 2, "x-dagrun-delivery"));
	assert_string_equal(req_header(r, 0, "x-dagrun-event"), "dagrun.task");
	assert_null(req_header(r, 0, "x-dagrun-signature"));      /* no secret */
	json_t *body = json_loads(json_string_value(json_object_get(json_array_get(r, 0), "body")),
				  0, NULL);
	json_t *want = json_loads("{\"run\":\"run-7\",\"workflow\":\"wf-test\",\"task\":\"t1\"}",
				  0, NULL);
	assert_true(json_equal(body, want));
	json_decref(body);
	json_decref(want);
	assert_string_equal(json_string_value(json_object_get(json_array_get(r, 3), "body")),
			    "{\"run\":\"r\",\"tasks\":{\"t1\":\"completed\"}}");
	json_decref(r);
	fixture_free(f);
}

/* ---- cancellation, warnings ----------------------------------------------------- */

static void cancel_c(uv_timer_t *t)
{
	struct job *j = t->data;
	j->c->ex->ops->cancel(j->c->ex, &j->a, false);
	j->c->ex->ops->cancel(j->c->ex, &j->a, true);     /* twice: harmless */
	uv_close((uv_handle_t *)t, NULL);
}

static void cancel_stops_a_hanging_request(void **state)
{
	(void)state;
	struct fixture *f = fixture_new();
	api_task(f, 0, NULL, url_of("/x?hang=1"));
	api_task(f, 1, NULL, url_of("/x?v={{ nope }}"));    /* fails before sending */
	struct ctx c;
	struct job j, k;
	uv_timer_t t;
	ctx_init(&c, NULL);
	job_start(&c, &j, f, 0, 1, "run-1");
	job_start(&c, &k, f, 1, 1, "run-1");
	uv_timer_init(&c.loop, &t);
	t.data = &j;
	uv_timer_start(&t, cancel_c, 100, 0);
	c.ex->ops->cancel(c.ex, &k.a, true);   /* before its failure is reported */
	ctx_finish(&c);
	assert_true(j.o.cancelled);
	assert_false(j.o.ok);
	assert_true(j.o.duration_ms < 10000);
	assert_true(k.o.cancelled);
	outcome_free(&j.o);
	outcome_free(&k.o);
	fixture_free(f);
}

static void insecure_sets_a_warning(void **state)
{
	(void)state;
	struct fixture *f = fixture_new();
	struct dr_api *api = api_task(f, 0, NULL, url_of("/x"));
	api->insecure = true;
	struct outcome o = run1(f);
	assert_true(o.ok);
	assert_non_null(o.warning);
	assert_non_null(strstr(o.warning, "TLS"));
	outcome_free(&o);
	fixture_free(f);
}

/* ---- methods and TLS --------------------------------------------------------------- */

static void head_and_delete_send_their_method(void **state)
{
	(void)state;
	struct fixture *f = fixture_new();
	api_task(f, 0, "HEAD", url_of("/x?key=meth"));
	api_task(f, 1, "DELETE", url_of("/x?key=meth"));
	struct ctx c;
	struct job j[2];
	ctx_init(&c, NULL);
	job_start(&c, &j[0], f, 0, 1, "run-1");
	job_start(&c, &j[1], f, 1, 1, "run-1");
	ctx_finish(&c);
	assert_true(j[0].o.ok);
	assert_int_equal(j[0].o.out_len, 0);
	assert_non_null(json_object_get(j[0].o.headers, "content-length"));
	assert_true(j[1].o.ok);
	outcome_free(&j[0].o);
	outcome_free(&j[1].o);
	json_t *r = requests("meth");
	assert_int_equal(json_array_size(r), 2);
	const char *m0 = json_string_value(json_object_get(json_array_get(r, 0), "method"));
	const char *m1 = json_string_value(json_object_get(json_array_get(r, 1), "method"));
	assert_true((!strcmp(m0, "HEAD") && !strcmp(m1, "DELETE")) ||
		    (!strcmp(m0, "DELETE") && !strcmp(m1, "HEAD")));
	json_decref(r);
	fixture_free(f);
}

static void tls_is_verified_unless_insecure(void **state)
{
	(void)state;
	struct fixture *f = fixture_new();
	char *u = NULL;
	assert_true(asprintf(&u, "https://127.0.0.1:%d/x?key=tls", tls_port) > 0);
	struct dr_api *api = api_task(f, 0, NULL, u);
	struct outcome o = run1(f);
	assert_non_null(strstr(o.error, "TLS"));
	check_class(o, DR_CLASS_PERMANENT, 0);      /* a self-signed certificate */
	api->insecure = true;
	o = run1(f);
	assert_true(o.ok);
	assert_int_equal(o.status, 200);
	assert_true(o.timing.tls_us >= o.timing.connect_us && o.timing.tls_us > 0);
	assert_non_null(o.warning);
	outcome_free(&o);
	fixture_free(f);
}

static void tls_handshake_timeout_is_transient(void **state)
{
	(void)state;
	/* A listener that never accepts: TCP connects, TLS never answers. */
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(a);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(fd, 8), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	struct fixture *f = fixture_new();
	char *u = NULL;
	assert_true(asprintf(&u, "https://127.0.0.1:%d/x", ntohs(a.sin_port)) > 0);
	api_task(f, 0, NULL, u);
	f->opts.timeout_ms = 300;
	struct outcome o = run1(f);
	close(fd);
	assert_true(o.timed_out);
	check_class(o, DR_CLASS_TRANSIENT, 0);
	fixture_free(f);
}

/* ---- concurrency -------------------------------------------------------------------- */

struct ticker {
	uv_timer_t t;
	uint64_t last, max_gap;
	struct ctx *c;
};

static void tick(uv_timer_t *h)
{
	struct ticker *tk = h->data;
	uint64_t now = uv_hrtime() / 1000000;
	if (tk->last && now - tk->last > tk->max_gap)
		tk->max_gap = now - tk->last;
	tk->last = now;
	if (tk->c->pending == 0)
		uv_close((uv_handle_t *)h, NULL);
}

static void many_requests_complete_while_the_loop_keeps_ticking(void **state)
{
	(void)state;
	enum { N = 200 };
	struct fixture *f = fixture_new();
	api_task(f, 0, "POST", url_of("/x?key=many&delay=0.3"));
	struct http_limits lim = {.max_in_flight = N, .max_host_connections = N};
	struct ctx c;
	struct job *j = calloc(N, sizeof(*j));
	assert_non_null(j);
	ctx_init(&c, &lim);
	struct ticker tk = {.c = &c};
	uv_timer_init(&c.loop, &tk.t);
	tk.t.data = &tk;
	uv_timer_start(&tk.t, tick, 10, 10);
	uint64_t t0 = uv_hrtime();
	for (int i = 0; i < N; i++)
		job_start(&c, &j[i], f, 0, (uint32_t)i + 1, "run-1");
	ctx_finish(&c);
	uint64_t ms = (uv_hrtime() - t0) / 1000000;
	int ok = 0;
	for (int i = 0; i < N; i++) {
		ok += j[i].o.ok;
		outcome_free(&j[i].o);
	}
	assert_int_equal(ok, N);
	print_message("# %d requests in %llu ms, largest gap between 10 ms ticks: %llu ms\n", N,
		      (unsigned long long)ms, (unsigned long long)tk.max_gap);
	assert_true(tk.max_gap < 500);
	json_t *s = control("/_stats?key=many");
	assert_int_equal(json_integer_value(json_object_get(s, "count")), N);
	/* They really ran side by side (0.3 s each). */
	assert_true(json_integer_value(json_object_get(s, "max_concurrent")) > 20);
	json_decref(s);
	free(j);
	fixture_free(f);
}

static void in_flight_cap_queues_the_rest_in_order(void **state)
{
	(void)state;
	enum { N = 12 };
	struct fixture *f = fixture_new();
	api_task(f, 0, NULL, url_of("/x?key=cap&delay=0.1"));
	struct http_limits lim = {.max_in_flight = 3};
	struct ctx c;
	struct job j[N];
	ctx_init(&c, &lim);
	for (int i = 0; i < N; i++)
		job_start(&c, &j[i], f, 0, (uint32_t)i + 1, "run-1");
	ctx_finish(&c);
	for (int i = 0; i < N; i++) {
		assert_true(j[i].o.ok);
		if (i >= 3)
			assert_true(j[i].o.timing.queue_us > 50000);
		outcome_free(&j[i].o);
	}
	json_t *s = control("/_stats?key=cap");
	assert_int_equal(json_integer_value(json_object_get(s, "count")), N);
	assert_true(json_integer_value(json_object_get(s, "max_concurrent")) <= 3);
	json_decref(s);
	fixture_free(f);
}

static void queued_request_times_out_with_its_attempt(void **state)
{
	(void)state;
	struct fixture *f = fixture_new();
	api_task(f, 0, NULL, url_of("/x?delay=1"));
	f->opts.timeout_ms = 3000;
	struct fixture *g = fixture_new();
	api_task(g, 0, NULL, url_of("/x"));
	struct dr_task_opts short_opts = f->opts;
	short_opts.timeout_ms = 200;
	g->tasks[0].opts = &short_opts;
	struct http_limits lim = {.max_in_flight = 1};
	struct ctx c;
	struct job a, b;
	ctx_init(&c, &lim);
	job_start(&c, &a, f, 0, 1, "run-1");
	job_start(&c, &b, g, 0, 1, "run-1");   /* waits 1 s for the slot: too long */
	ctx_finish(&c);
	assert_true(a.o.ok);
	assert_false(b.o.ok);
	assert_true(b.o.timed_out);
	assert_int_equal(b.o.cls, DR_CLASS_TRANSIENT);
	outcome_free(&a.o);
	outcome_free(&b.o);
	fixture_free(f);
	fixture_free(g);
}

/* ---- the client alone ------------------------------------------------------------ */

static void status_classes(void **state)
{
	(void)state;
	int transient[] = {408, 409, 425, 429, 500, 502, 503, 504, 599};
	int other[] = {200, 301, 400, 401, 403, 404, 410, 422, 499};
	for (size_t i = 0; i < sizeof(transient) / sizeof(int); i++)
		assert_true(http_status_transient(transient[i]));
	for (size_t i = 0; i < sizeof(other) / sizeof(int); i++)
		assert_false(http_status_transient(other[i]));
}

/* What an error quotes of a body: the HTTP and AI executors' one snippet. */
static void body_snippet_masks_before_the_cut_and_cuts_on_a_character(void **state)
{
	(void)state;
	struct redactor *red = NULL;
	assert_int_equal(redact_new(&red), 0);
	assert_int_equal(redact_add(red, "SECRET-TOKEN-0123456789", 23), 0);
	char body[1000];
	struct buf q = BUF_INIT;

	/* a secret across byte 200: masked whole, no piece of it quoted */
	memset(body, 'a', sizeof(body));
	memcpy(body + 190, "SECRET-TOKEN-0123456789", 23);
	assert_int_equal(exec_body_snippet(red, body, sizeof(body), &q), 0);
	assert_null(strstr(q.data, "SECRET"));
	assert_non_null(strstr(q.data, "***"));
	assert_string_equal(q.data + q.len - 3, "...");
	buf_reset(&q);
	/* without a redactor the same body is quoted as is, 200 bytes */
	assert_int_equal(exec_body_snippet(NULL, body, sizeof(body), &q), 0);
	assert_int_equal(q.len, 203);
	assert_memory_equal(q.data + 190, "SECRET-TOK", 10);
	buf_reset(&q);

	/* a character across byte 200 is left out whole; controls are spaces */
	memset(body, 'b', 199);
	memcpy(body + 199, "\xc3\xa9", 2);
	body[0] = '\n';
	body[1] = '\x1b';
	assert_int_equal(exec_body_snippet(red, body, 201, &q), 0);
	assert_int_equal(q.len, 199 + 3);
	assert_memory_equal(q.data, "  bbb", 5);
	assert_string_equal(q.data + 199, "...");
	buf_reset(&q);

	/* short: whole, no "..."; empty: nothing */
	assert_int_equal(exec_body_snippet(red, "{\"error\": \"no\"}", 15, &q), 0);
	assert_string_equal(q.data, "{\"error\": \"no\"}");
	buf_reset(&q);
	assert_int_equal(exec_body_snippet(red, NULL, 0, &q), 0);
	assert_int_equal(q.len, 0);
	buf_free(&q);
	redact_free(red);
}

/* exec_fail: the HTTP and AI executors' one way to fail a result, also
 * with a message that quotes the one it replaces. */
static void exec_fail_may_quote_the_message_it_replaces(void **state)
{
	(void)state;
	struct exec_result r = {.ok = true};
	assert_int_equal(exec_fail(&r, DR_CLASS_TRANSIENT, "first %d", 1), 0);
	assert_false(r.ok);
	assert_int_equal(r.error_class, DR_CLASS_TRANSIENT);
	assert_string_equal(r.error, "first 1");
	assert_int_equal(exec_fail(&r, DR_CLASS_PERMANENT, "stream ended early: %s", r.error), 0);
	assert_int_equal(r.error_class, DR_CLASS_PERMANENT);
	assert_string_equal(r.error, "stream ended early: first 1");
	exec_result_free(&r);
}

static void must_not_be_called(void *ud, struct http_response *r)
{
	(void)ud;
	(void)r;
	fail_msg("a done callback after http_client_free()");
}

static void free_with_requests_in_flight_closes_cleanly(void **state)
{
	(void)state;
	uv_loop_t loop;
	assert_int_equal(uv_loop_init(&loop), 0);
	struct http_client *c;
	assert_int_equal(http_client_new(&loop, NULL, &c), 0);
	char *u = url_of("/x?hang=1"), *u2 = url_of("/x?delay=0.5");
	struct http_request rq = {.url = u, .on_done = must_not_be_called};
	struct http_xfer *x;
	assert_int_equal(http_request_start(c, &rq, &x), 0);
	rq.url = u2;
	assert_int_equal(http_request_start(c, &rq, &x), 0);
	assert_int_equal(http_client_live(c), 2);
	uv_run(&loop, UV_RUN_NOWAIT);
	uv_run(&loop, UV_RUN_NOWAIT);
	http_client_free(c);           /* no callback may follow */
	uv_run(&loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(&loop), 0);
	free(u);
	free(u2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(api_get_json_success_keeps_body_headers_and_timings),
		cmocka_unit_test(api_redirect_is_followed),
		cmocka_unit_test(api_expect_status_accepts_listed_code),
		cmocka_unit_test(api_503_is_transient),
		cmocka_unit_test(api_429_408_409_425_are_transient),
		cmocka_unit_test(api_404_and_400_are_permanent),
		cmocka_unit_test(api_unexpected_status_is_permanent),
		cmocka_unit_test(api_connection_refused_is_transient),
		cmocka_unit_test(api_connection_reset_is_transient),
		cmocka_unit_test(api_timeout_is_transient_and_timed_out),
		cmocka_unit_test(api_invalid_url_is_permanent),
		cmocka_unit_test(api_template_error_is_permanent_with_position),
		cmocka_unit_test(retry_after_seconds_date_and_ms_are_parsed),
		cmocka_unit_test(retry_after_parser_edge_cases),
		cmocka_unit_test(response_over_cap_is_a_clear_permanent_error),
		cmocka_unit_test(response_headers_over_curls_limits_are_a_clear_permanent_error),
		cmocka_unit_test(header_with_line_break_is_refused_before_sending),
		cmocka_unit_test(headers_are_rendered_and_sent),
		cmocka_unit_test(json_body_is_sent_with_content_type),
		cmocka_unit_test(string_body_is_sent_as_is_and_content_type_kept),
		cmocka_unit_test(idempotency_key_is_stable_across_attempts_and_absent_on_get),
		cmocka_unit_test(derived_ids_are_uuid_shaped_and_stable),
		cmocka_unit_test(webhook_signature_verifies_independently),
		cmocka_unit_test(signature_matches_a_known_vector),
		cmocka_unit_test(webhook_delivery_is_stable_and_default_payload_summarises),
		cmocka_unit_test(cancel_stops_a_hanging_request),
		cmocka_unit_test(insecure_sets_a_warning),
		cmocka_unit_test(head_and_delete_send_their_method),
		cmocka_unit_test(tls_is_verified_unless_insecure),
		cmocka_unit_test(tls_handshake_timeout_is_transient),
		cmocka_unit_test(many_requests_complete_while_the_loop_keeps_ticking),
		cmocka_unit_test(in_flight_cap_queues_the_rest_in_order),
		cmocka_unit_test(queued_request_times_out_with_its_attempt),
		cmocka_unit_test(status_classes),
		cmocka_unit_test(body_snippet_masks_before_the_cut_and_cuts_on_a_character),
		cmocka_unit_test(exec_fail_may_quote_the_message_it_replaces),
		cmocka_unit_test(free_with_requests_in_flight_closes_cleanly),
	};
	return cmocka_run_group_tests_name("http", tests, server_up, server_down);
}
