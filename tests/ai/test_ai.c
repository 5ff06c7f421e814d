/* test_ai.c: the ai executor against tests/ai/fake_openai.py on a loopback
 * port: the request body field by field, the key, prompts, context,
 * promptFile, replies plain and streamed (split anywhere, cut short),
 * error classes and retry delays, and pacing; plus the pure helpers
 * (durations, rate-limit headers, UTF-8, the SSE parser at every split).
 *
 * Workflows are built by hand (no loader); a tiny render callback stands in
 * for the expressions module and exposes a->context as context.<key>.
 * Every test runs its own loop, closes every handle and checks that the
 * loop closes cleanly.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <openssl/evp.h>

#include "exec/ai.h"
#include "expr/redact.h"
#include "server.h"
#include "expr/value.h"

#define KEY_ENV "DAGRUN_TEST_AI_KEY"
#define SECRET_KEY "sk-test-SECRET-0123456789"

/* ---- the fake server ------------------------------------------------------------ */

static struct test_server server;
static int port;
static char tmpdir[64];

static int server_up(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/dagrun-ai-test-XXXXXX");
	if (!mkdtemp(tmpdir))
		return -1;
	if (test_server_start(&server, "tests/ai/fake_openai.py", NULL) < 0)
		return -1;
	port = server.ports[0];
	unsetenv(KEY_ENV);
	unsetenv("OPENAI_BASE_URL");
	return port > 0 ? 0 : -1;
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

static size_t collect(char *p, size_t size, size_t n, void *ud)
{
	struct buf *b = ud;
	return buf_add(b, p, size * n) == 0 ? size * n : 0;
}

/* A blocking request to the server's control endpoints (test side only). */
static json_t *control(const char *path, const char *key, const char *post)
{
	char url[512];
	snprintf(url, sizeof(url), "http://127.0.0.1:%d%s?key=%s", port, path, key);
	struct buf b = BUF_INIT;
	CURL *e = curl_easy_init();
	assert_non_null(e);
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, &b);
	if (post)
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, post);
	assert_int_equal(curl_easy_perform(e), CURLE_OK);
	curl_easy_cleanup(e);
	json_t *j = json_loadb(b.data ? b.data : "", b.len, 0, NULL);
	assert_non_null(j);
	buf_free(&b);
	return j;
}

/* Queues behaviours (a JSON list) for requests with model `key`. */
static void script(const char *key, const char *behaviours)
{
	json_decref(control("/_script", key, behaviours));
}

static json_t *requests(const char *key)
{
	return control("/_requests", key, NULL);
}

static json_t *req_body(json_t *reqs, size_t i)
{
	return json_object_get(json_array_get(reqs, i), "body");
}

static const char *req_header(json_t *reqs, size_t i, const char *name)
{
	return json_string_value(json_object_get(
		json_object_get(json_array_get(reqs, i), "headers"), name));
}

/* The content of message i of request r. */
static const char *msg_content(json_t *reqs, size_t r, size_t i)
{
	return json_string_value(json_object_get(
		json_array_get(json_object_get(req_body(reqs, r), "messages"), i), "content"));
}

/* ---- a workflow built by hand ----------------------------------------------------- */

#define MAX_TASKS 4
#define MAX_CTX 6

struct fixture {
	struct dagrun_workflow wf;
	struct dr_task tasks[MAX_TASKS];
	struct dr_task_opts opts[MAX_TASKS];
	struct dr_ai ai[MAX_TASKS];
	struct dr_value ctx[MAX_TASKS], items[MAX_TASKS][MAX_CTX];
	struct dr_text keys[MAX_TASKS][MAX_CTX];
	struct dr_value sub[3];
	struct dr_text subkeys[3];
	char *owned[16];
	int n_owned;
};

static struct dr_text text(const char *s)
{
	struct dr_text t = {s, s ? (uint32_t)strlen(s) : 0, 3, 7};
	return t;
}

static const char *own(struct fixture *f, char *s)
{
	assert_true(f->n_owned < 16);
	f->owned[f->n_owned++] = s;
	return s;
}

static const char *fmt(struct fixture *f, const char *format, ...)
	__attribute__((format(printf, 2, 3)));
static const char *fmt(struct fixture *f, const char *format, ...)
{
	char *s = NULL;
	va_list ap;
	va_start(ap, format);
	assert_true(vasprintf(&s, format, ap) > 0);
	va_end(ap);
	return own(f, s);
}

static struct fixture *fixture_new(void)
{
	struct fixture *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	f->wf.name = text("wf-ai");
	f->wf.path = "t.yaml";
	f->wf.dir = tmpdir;
	f->wf.tasks = f->tasks;
	static const char *const ids[MAX_TASKS] = {"t1", "t2", "t3", "t4"};
	for (int i = 0; i < MAX_TASKS; i++) {
		int added;
		f->tasks[i].sym = intern_add(&f->wf.ids, ids[i], 2, &added);
		f->opts[i].retry.max_attempts = 1;
		f->tasks[i].opts = &f->opts[i];
	}
	f->wf.n_tasks = f->wf.n_main = MAX_TASKS;
	return f;
}

static void fixture_free(struct fixture *f)
{
	intern_free(&f->wf.ids);
	for (int i = 0; i < f->n_owned; i++)
		free(f->owned[i]);
	free(f);
}

/* Task i: an ai task on the fake server (local: no key needed). */
static struct dr_ai *ai_task(struct fixture *f, int i, const char *model, const char *prompt)
{
	f->tasks[i].spec = &f->ai[i];
	struct dr_ai *ai = &f->ai[i];
	ai->model = text(model);
	ai->prompt = text(prompt);
	ai->base_url = text(fmt(f, "http://127.0.0.1:%d/v1/", port));
	ai->api_key_env = text(KEY_ENV);
	ai->max_context_bytes = AI_DEFAULT_MAX_CONTEXT;
	return ai;
}

/* Adds context key = a string (template) value to task i. */
static void ctx_add(struct fixture *f, int i, const char *key, enum dr_value_kind kind,
		    const char *value)
{
	struct dr_value *c = &f->ctx[i];
	assert_true(c->count < MAX_CTX);
	c->kind = DR_VAL_MAP;
	c->items = f->items[i];
	c->keys = f->keys[i];
	struct dr_value *v = &f->items[i][c->count];
	f->keys[i][c->count] = text(key);
	v->kind = (uint8_t)kind;
	v->text = text(value);
	if (kind == DR_VAL_INT)
		v->as.i = atoll(value);
	c->count++;
	f->ai[i].context = c;
}

/* ---- templates: a tiny stand-in for the expressions module ------------------ */

static const struct dr_text *rendered[8];   /* the texts rendered last, in order */
static int n_rendered;

static int lookup(struct exec_attempt *a, const char *name, size_t n, struct buf *out)
{
	static const char *const table[][2] = {
		{"variables.version", "1.4.0"}, {"tasks.log.output", "fix: a bug\nfeat: a thing"},
		{"variables.who", "world"},
	};
	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++)
		if (strlen(table[i][0]) == n && !memcmp(table[i][0], name, n))
			return buf_adds(out, table[i][1]);
	if (n > 8 && !memcmp(name, "context.", 8))
		for (size_t i = 0; i < a->n_context; i++)
			if (strlen(a->context[i].key) == n - 8 &&
			    !memcmp(a->context[i].key, name + 8, n - 8))
				return buf_add(out, a->context[i].value, a->context[i].value_len);
	return -ENOENT;
}

static int render(struct exec_attempt *a, const struct dr_text *t, enum exec_render_mode mode,
		  struct buf *out, char **err)
{
	(void)mode;
	if (n_rendered < 8)
		rendered[n_rendered++] = t;
	const char *s = t->s, *end = t->s + t->len;
	while (s < end) {
		const char *open = memmem(s, (size_t)(end - s), "{{", 2);
		if (!open)
			return buf_add(out, s, (size_t)(end - s));
		buf_add(out, s, (size_t)(open - s));
		const char *close = strstr(open, "}}");
		assert_non_null(close);
		const char *n = open + 2, *ne = close;
		while (*n == ' ')
			n++;
		while (ne > n && ne[-1] == ' ')
			ne--;
		if (lookup(a, n, (size_t)(ne - n), out) < 0) {
			assert_true(asprintf(err, "t.yaml:%u:%u: unknown name '%.*s'", t->line,
					     t->col, (int)(ne - n), n) > 0);
			return -EINVAL;
		}
		s = close + 2;
	}
	return 0;
}

/* ---- running attempts ------------------------------------------------------------ */

struct outcome {
	bool done, ok, timed_out, cancelled, has_usage;
	int cls, status;
	char *error, *out, *model, *finish;
	size_t out_len;       /* out may hold NULs */
	const char *warning;
	uint64_t retry_after_ms, prompt_tokens, completion_tokens, prompt_bytes, cut;
	uint64_t duration_ms, out_bytes;
	char sha[65];
	struct buf live;      /* on_output chunks, concatenated */
	unsigned chunks;
};

struct ctx;

struct job {
	struct exec_attempt a;
	struct outcome o;
	struct ctx *c;
};

struct ctx {
	uv_loop_t loop;
	struct executor *ex;
	unsigned pending;
};

static void on_output(struct exec_attempt *a, enum exec_stream s, const char *d, size_t n)
{
	struct job *j = a->owner;
	assert_int_equal(s, EXEC_STDOUT);
	assert_false(j->o.done);
	assert_int_equal(buf_add(&j->o.live, d, n), 0);
	j->o.chunks++;
}

static char *dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

static void on_done(struct exec_attempt *a, struct exec_result *r)
{
	struct job *j = a->owner;
	struct outcome *o = &j->o;
	assert_false(o->done);
	assert_null(a->context);        /* only set around the executor's renders */
	o->done = true;
	o->ok = r->ok;
	o->cls = r->error_class;
	const struct dagrun_ext *pub = r->ext ? r->ext->pub : NULL;
	const struct dagrun_ext_http *h = (const void *)dagrun_ext_find(pub, DAGRUN_EXT_HTTP);
	const struct dagrun_ext_ai *x = (const void *)dagrun_ext_find(pub, DAGRUN_EXT_AI);
	assert_non_null(x);             /* every attempt's result carries one */
	o->status = h ? h->status : 0;
	o->timed_out = r->timed_out;
	o->cancelled = r->cancelled;
	o->error = dup_or_null(r->error);
	o->out_len = r->out.len;
	o->out = malloc(r->out.len + 1);
	assert_non_null(o->out);
	if (r->out.len)
		memcpy(o->out, r->out.data, r->out.len);
	o->out[r->out.len] = '\0';
	o->out_bytes = r->out_bytes;
	o->model = dup_or_null(x->model);
	o->finish = dup_or_null(x->finish_reason);
	o->warning = r->warning;
	o->retry_after_ms = r->retry_after_ms;
	o->has_usage = x->prompt_tokens >= 0;
	o->prompt_tokens = o->has_usage ? (uint64_t)x->prompt_tokens : 0;
	o->completion_tokens = o->has_usage ? (uint64_t)x->completion_tokens : 0;
	o->prompt_bytes = x->prompt_bytes;
	o->cut = x->context_cut_bytes;
	o->duration_ms = r->duration_ms;
	snprintf(o->sha, sizeof(o->sha), "%s", x->prompt_sha256 ? x->prompt_sha256 : "");
	assert_true(r->ok == (r->error == NULL));
	assert_true(r->end_ms >= r->start_ms);
	if (r->error)
		assert_null(strstr(r->error, SECRET_KEY));
	j->c->pending--;
}

static void outcome_free(struct outcome *o)
{
	free(o->error);
	free(o->out);
	free(o->model);
	free(o->finish);
	buf_free(&o->live);
}

static void ctx_init(struct ctx *c)
{
	memset(c, 0, sizeof(*c));
	assert_int_equal(uv_loop_init(&c->loop), 0);
	c->ex = ai_executor_new(&c->loop, NULL);
	assert_non_null(c->ex);
}

static void job_start(struct ctx *c, struct job *j, struct fixture *f, uint32_t task)
{
	memset(j, 0, sizeof(*j));
	j->c = c;
	j->a = (struct exec_attempt){
		.wf = &f->wf, .task = task, .attempt = 1, .run_id = "run-1",
		.on_output = on_output, .on_done = on_done, .render = render, .owner = j,
	};
	c->pending++;
	assert_int_equal(c->ex->ops->start(c->ex, &j->a), 0);
	assert_false(j->o.done);               /* never from inside start() */
}

/* Runs the loop until no attempt is pending (the executor stays). */
static void ctx_wait(struct ctx *c)
{
	while (c->pending)
		uv_run(&c->loop, UV_RUN_ONCE);
}

static void ctx_finish(struct ctx *c)
{
	ctx_wait(c);
	c->ex->ops->destroy(c->ex);
	uv_run(&c->loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(&c->loop), 0);
}

/* Runs task 0 of f once. */
static struct outcome run1(struct fixture *f)
{
	struct ctx c;
	struct job j;
	ctx_init(&c);
	job_start(&c, &j, f, 0);
	ctx_finish(&c);
	assert_true(j.o.done);
	return j.o;
}

static void assert_contains(const char *s, const char *sub)
{
	if (!s || !strstr(s, sub))
		fail_msg("'%s' does not contain '%s'", s ? s : "(null)", sub);
}

/* ---- requests ---------------------------------------------------------------------- */

static void request_body_has_every_field(void **state)
{
	(void)state;
	struct fixture *f = fixture_new();
	struct dr_ai *ai = ai_task(f, 0, "t-body", "Notes for {{ variables.version }}");
	ai->system = text("You are terse.");
	ai->temperature = 0.2;
	ai->has_temperature = true;
	ai->max_tokens = 77;
	ai->response_format = DR_RESP_JSON;
	script("t-body", "[{\"content\": \"{\\\"ok\\\": true}\"}]");
	struct outcome o = run1(f);
	assert_true(o.ok);
	assert_string_equal(o.out, "{\"ok\": true}");
	json_t *reqs = requests("t-body");
	assert_int_equal(json_array_size(reqs), 1);
	assert_string_equal(json_string_value(json_object_get(json_array_get(reqs, 0), "path")),
			    "/v1/chat/completions");
	json_t *b = req_body(reqs, 0);
	assert_string_equal(json_string_value(json_object_get(b, "model")), "t-body");
	json_t *msgs = json_object_get(b, "messages");
	assert_int_equal(json_array_size(msgs), 2);
	assert_string_equal(json_string_value(json_object_get(json_array_get(msgs, 0), "role")),
			    "system");
	assert_string_equal(msg_content(reqs, 0, 0), "You are terse.");
	assert_string_equal(json_string_value(json_object_get(json_array_get(msgs, 1), "role")),
			    "user");
	assert_string_equal(msg_content(reqs, 0, 1), "Notes for 1.4.0");
	assert_true(json_real_value(json_object_get(b, "temperature")) == 0.2);
	assert_int_equal(json_integer_value(json_object_get(b, "max_tokens")), 77);
	assert_string_equal(json_string_value(json_object_get(
		json_object_get(b, "response_format"), "type")), "json_object");
	assert_null(json_object_get(b, "stream"));
	assert_null(json_object_get(b, "stream_options"));
	assert_string_equal(req_header(reqs, 0, "content-type"), "application/json");
	json_decref(reqs);
	outcome_free(&o);
	fixture_free(f);
}

static void request_without_options_omits_them(void **state)
{
	(void)state;
	struct fixture *f = fixture_new();
	ai_task(f, 0, "t-min", "hi");
	struct outcome o = run1(f);
	assert_true(o.ok);
	json_t *reqs = requests("t-min");
	json_t *b = req_body(reqs, 0);
	assert_int_equal(json_array_size(json_object_get(b, "messages")), 1);
	assert_null(json_object_get(b, "temperature"));
	assert_null(json_object_get(b, "max_tokens"));
	assert_null(json_object_get(b, "response_format"));
	json_decref(reqs);
	outcome_free(&o);
	fixture_free(f);
}

static void authorization_carries_the_key(void **state)
{
	(void)state;
	struct fixture *f = fixture_new();
	ai_task(f, 0, "t-auth", "hi");
	setenv(KEY_ENV, SECRET_KEY, 1);
	struct outcome o = run1(f);
	unsetenv(KEY_ENV);
	assert_true(o.ok);
	json_t *reqs = requests("t-auth");
	assert_string_equal(req_header(reqs, 0, "authorization"), "Bearer " SECRET_KEY);
	json_decref(reqs);
	outcome_free(&o);
	fixture_free(f);
}

static void local_base_url_without_key_sends_no_authorization(void **state)
{
	(void)state;
	struct fixture *f = fixture_new();
	ai_task(f, 0, "t-nokey", "hi");
	struct outcome o = run1(f);
	assert_true(o.ok);
	json_t *reqs = requests("t-nokey");
	assert_int_equal(json_array_size(reqs), 1);
	assert_null(req_header(reqs, 0, "authorization"));
	json_decref(reqs);
	outcome_free(&o);
	fixture_free(f);
}

static void missing_key_for_remote_url_is_permanent_before_any_request(void **state)
{
	(void)state;
	struct fixture *f = fixture_new();
	struct dr_ai *ai = ai_task(f, 0, "t-remote", "hi");
	ai->base_url = text(fmt(f, "http://127.0.0.2:%d/v1", port));
	struct outcome o = run1(f);
	assert_false(o.ok);
	assert_int_equal(o.cls, DR_CLASS_PERMANENT);
	assert_contains(o.error, KEY_ENV);
	assert_int_equal(o.status, 0);
	json_t *reqs = requests("t-remote");
	assert_int_equal(json_array_size(reqs), 0);
	json_decref(reqs);
	outcome_free(&o);
	/* The default: OPENAI_API_KEY against api.openai.com. */
	assert_string_equal(ai_api_key_env(&(struct dr_ai){0}), "OPENAI_API_KEY");
	fixture_free(f);
}

static void base_url_comes_from_the_environment_when_unset(void **state)
{
	(void)state;
	struct fixture *f = fixture_new();
	struct dr_ai *ai = ai_task(f, 0, "t-envbase", "hi");
	ai->base_url = text(NULL);
	char url[128];
	snprintf(url, sizeof(url), "http://localhost:%d/v1", port);
	setenv("OPENAI_BASE_URL", url, 1);
	struct outcome o = run1(f);
	unsetenv("OPENAI_BASE_URL");
	assert_true(o.ok);
	json_t *reqs = requests("t-envbase");
	assert_int_equal(json_array_size(reqs), 1);
	json_decref(reqs);
	outcome_free(&o);
	fixture_free(f);
}

static void template_error_is_permanent(void **state)
{
	(void)state;
	struct fixture *f = fixture_new();
	ai_task(f, 0, "t-tplerr", "hi {{ nope }}");
	struct outcome o = run1(f);
	assert_false(o.ok);
	assert_int_equal(o.cls, DR_CLASS_PERMANENT);
	assert_contains(o.error, "prompt: t.yaml:3:7: unknown name 'nope'");
	json_t *reqs = requests("t-tplerr");
	assert_int_equal(json_array_size(reqs), 0);
	json_decref(reqs);
	outcome_free(&o);
	fixture_free(f);
}

/* ---- replies ---------------------------------------------------------------------- */

static void sha256_of(const char *s, char out[65])
{
	unsigned char md[32];
	unsigned int n;
	EVP_Digest(s, strlen(s), md, &n, EVP_sha256(), NULL);
	for (int i = 0; i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
}

static void reply_text_usage_model_and_prompt_hash(void **state)
{
	(void)state;
	struct fixture *f = fixture_new();
	ai_task(f, 0, "t-reply", "Say hello to {{ variables.who }}");
	script("t-reply", "[{\"content\": \"Hello, world\", \"model\": \"gpt-x-2024\", "
	       "\"usage\": {\"prompt_tokens\": 12, \"completion_tokens\": 34}}]");
	struct outcome o = run1(f);
	assert_true(o.ok);
	assert_string_equal(o.out, "Hello, world");
	assert_int_equal(o.out_bytes, 12);
	assert_string_equal(o.model, "gpt-x-2024");
	assert_string_equal(o.finish, "stop");
	assert_true(o.has_usage);
	assert_int_equal(o.prompt_tokens, 12);
	assert_int_equal(o.completion_tokens, 34);
	assert_null(o.warning);
	assert_int_equal(o.status, 200);
	char sha[65];
	sha256_of("Say hello to world", sha);
	assert_string_equal(o.sha, sha);
	assert_int_equal(o.prompt_bytes, strlen("Say hello to world"));
	outcome_free(&o);
	fixture_free(f);
}

/* What the server says about itself (model, finish_reason) reaches the
 * events as the result's extension: a server that echoes the key, or
 * another secret of the run, has it masked there too. */
static void reply_strings_in_the_extension_are_masked(void **state)
{
	(void)state;
	struct fixture *f = fixture_new();
	ai_task(f, 0, "t-echo", "hi");
	script("t-echo", "[{\"content\": \"ok\", \"model\": \"m-" SECRET_KEY "\", "
	       "\"finish_reason\": \"stop hunter2-run-secret-77\"}]");
	setenv(KEY_ENV, SECRET_KEY, 1);
	struct redactor *red = NULL;
	assert_int_equal(redact_new(&red), 0);
	assert_int_equal(redact_add(red, "hunter2-run-secret-77", 21), 0);
	struct ctx c;
	struct job j;
	ctx_init(&c);
	memset(&j, 0, sizeof(j));
	j.c = &c;
	j.a = (struct exec_attempt){
		.wf = &f->wf, .task = 0, .attempt = 1, .run_id = "run-1", .on_output = on_output,
		.on_done = on_done, .render = render, .redactor = red, .owner = &j,
	};
	c.pending++;
	assert_int_equal(c.ex->ops->start(c.ex, &j.a), 0);
	ctx_finish(&c);
	unsetenv(KEY_ENV);
	assert_true(j.o.ok);
	assert_non_null(j.o.model);
	assert_null(strstr(j.o.model, SECRET_KEY));
	assert_string_equal(j.o.model, "m-***");
	assert_null(strstr(j.o.finish, "hunter2-run-secret-77"));
	assert_contains(j.o.finish, "stop ");
	outcome_free(&j.o);
	redact_free(red);
	fixture_free(f);
}

static void json_mode_invalid_reply_is_transient_with_usage(void **state)
{
	(void)state;
	struct fixture *f = fixture_new();
	struct dr_ai *ai = ai_task(f, 0, "t-badjson", "give json");
	ai->response_format = DR_RESP_JSON;
	script("t-badjson", "[{\"content\": \"sure! {not json\", "
	       "\"usage\": {\"prompt_tokens\": 5, \"completion_tokens\": 6}}]");
	struct outcome o = run1(f);
	assert_false(o.ok);
	assert_int_equal(o.cls, DR_CLASS_TRANSIENT);
	assert_contains(o.error, "not valid JSON");
	assert_true(o.has_usage);
	assert_int_equal(o.prompt_tokens, 5);
	assert_int_equal(o.completion_tokens, 6);
	assert_non_null(o.model);
	outcome_free(&o);
	fixture_free(f);
}

static void finish_reason_length_sets_a_warning(void **state)
{
	(void)state;
	struct fixture *f = fixture_new();
	struct dr_ai *ai = ai_task(f, 0, "t-length", "long story");
	ai->max_tokens = 3;
	script("t-length", "[{\"content\": \"Once upon\", \"finish_reason\": \"length\"}]");
	struct outcome o = run1(f);
	assert_true(o.ok);
	assert_string_equal(o.finish, "length");
	assert_string_equal(o.warning, AI_LENGTH_WARNING);
	outcome_free(&o);
	fixture_free(f);
}

static void refusal_without_content_is_permanent(void **state)
{
	(void)state;
	struct fixture *f = fixture_new();
	ai_task(f, 0, "t-refuse", "bad idea");
	script("t-refuse", "[{\"null_content\": true, \"refusal\": \"I can't help with that.\"}]");
	struct outcome o = run1(f);
	assert_false(o.ok);
	assert_int_equal(o.cls, DR_CLASS_PERMANENT);
	assert_contains(o.error, "I can't help with that.");
	outcome_free(&o);
	fixture_free(f);
}

/* ---- streaming ---------------------------------------------------------------------- */

#define STREAM_TEXT "Streaming is fun: \xc3\xa9t\xc3\xa9, \xe2\x82\xac, \xf0\x9f\x98\x80 and " \
		    "\\\"quotes\\\" across many small deltas."
#define STREAM_PLAIN "Streaming is fun: \xc3\xa9t\xc3\xa9, \xe2\x82\xac, \xf0\x9f\x98\x80 and " \
		     "\"quotes\" across many small deltas."

static struct outcome run_stream(const char *model, const char *behaviour, bool stream)
{
	struct fixture *f = fixture_new();
	struct dr_ai *ai = ai_task(f, 0, model, "stream please");
	ai->stream = stream;
	script(model, behaviour);
	struct outcome o = run1(f);
	fixture_free(f);
	return o;
}

static void streaming_equals_plain_with_live_chunks_in_order(void **state)
{
	(void)state;
	const char *b = "[{\"content\": \"" STREAM_TEXT "\", \"usage\": "
			"{\"prompt_tokens\": 7, \"completion_tokens\": 21}}]";
	struct outcome plain = run_stream("t-plain", b, false);
	struct outcome st = run_stream("t-stream", b, true);
	assert_true(plain.ok);
	assert_true(st.ok);
	assert_string_equal(plain.out, STREAM_PLAIN);
	assert_string_equal(st.out, plain.out);
	assert_int_equal(plain.chunks, 0);
	assert_true(st.chunks > 10);
	assert_string_equal(st.live.data, STREAM_PLAIN);   /* in order, nothing else */
	assert_true(st.has_usage);
	assert_int_equal(st.prompt_tokens, 7);
	assert_int_equal(st.completion_tokens, 21);
	assert_string_equal(st.model, "t-stream-0001");
	assert_string_equal(st.finish, "stop");
	json_t *reqs = requests("t-stream");
	json_t *body = req_body(reqs, 0);
	assert_true(json_is_true(json_object_get(body, "stream")));
	assert_true(json_is_true(json_object_get(json_object_get(body, "stream_options"),
						  "include_usage")));
	assert_string_equal(req_header(reqs, 0, "accept"), "text/event-stream");
	json_decref(reqs);
	outcome_free(&plain);
	outcome_free(&st);
}

static void stream_split_every_byte_with_crlf_gives_the_same_text(void **state)
{
	(void)state;
	struct outcome o = run_stream("t-split", "[{\"content\": \"" STREAM_TEXT "\", "
				      "\"split\": 1, \"crlf\": true}]", true);
	assert_true(o.ok);
	assert_string_equal(o.out, STREAM_PLAIN);
	assert_string_equal(o.live.data, STREAM_PLAIN);
	assert_true(o.has_usage);
	outcome_free(&o);
}

static void stream_length_finish_sets_a_warning(void **state)
{
	(void)state;
	struct outcome o = run_stream("t-slen", "[{\"content\": \"cut here\", "
				      "\"finish_reason\": \"length\"}]", true);
	assert_true(o.ok);
	assert_string_equal(o.warning, AI_LENGTH_WARNING);
	outcome_free(&o);
}

static void truncated_streams_are_transient(void **state)
{
	(void)state;
	static const char *const kinds[] = {"event", "drop", "no_done"};
	for (size_t i = 0; i < 3; i++) {
		char model[32], b[256];
		snprintf(model, sizeof(model), "t-trunc-%zu", i);
		snprintf(b, sizeof(b), "[{\"content\": \"%s\", \"truncate\": \"%s\"}]",
			 "a reply long enough to be cut in the middle of an event", kinds[i]);
		struct outcome o = run_stream(model, b, true);
		assert_false(o.ok);
		assert_int_equal(o.cls, DR_CLASS_TRANSIENT);
		assert_contains(o.error, "stream ended early");
		outcome_free(&o);
	}
}

static void stream_error_event_is_transient(void **state)
{
	(void)state;
	struct outcome o = run_stream("t-sevt", "[{\"content\": \"abcdefgh\", "
				      "\"error_event\": true}]", true);
	assert_false(o.ok);
	assert_int_equal(o.cls, DR_CLASS_TRANSIENT);
	assert_contains(o.error, "the server had an error");
	outcome_free(&o);
}

static void stream_answered_with_one_json_reply_still_works(void **state)
{
	(void)state;
	struct outcome o = run_stream("t-nostream", "[{\"content\": \"whole\", "
				      "\"plain_stream\": true}]", true);
	assert_true(o.ok);
	assert_string_equal(o.out, "whole");
	assert_string_equal(o.live.data, "whole");
	outcome_free(&o);
}

/* ---- errors and retry delays -------------------------------------------------------- */

static struct outcome run_script(const char *model, const char *behaviour)
{
	struct fixture *f = fixture_new();
	ai_task(f, 0, model, "hi");
	setenv(KEY_ENV, SECRET_KEY, 1);
	script(model, behaviour);
	struct outcome o = run1(f);
	unsetenv(KEY_ENV);
	fixture_free(f);
	return o;
}

static void rate_limits_are_transient_with_the_delay_asked(void **state)
{
	(void)state;
	static const struct { const char *headers; uint64_t ms; } cases[] = {
		{"{\"retry-after-ms\": \"1500\"}", 1500},
		{"{\"retry-after\": \"2\"}", 2000},
		{"{\"x-ratelimit-reset-requests\": \"6m30s\"}", 390000},
		{"{\"x-ratelimit-remaining-tokens\": \"0\", \"x-ratelimit-remaining-requests\": "
		 "\"12\", \"x-ratelimit-reset-tokens\": \"250ms\", "
		 "\"x-ratelimit-reset-requests\": \"9s\"}", 250},
		{"{\"retry-after\": \"1\", \"x-ratelimit-reset-requests\": \"1h2m\"}", 3720000},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char model[32], b[512];
		snprintf(model, sizeof(model), "t-429-%zu", i);
		snprintf(b, sizeof(b), "[{\"status\": 429, \"headers\": %s, \"error\": {\"message\": "
			 "\"Rate limit reached\", \"type\": \"requests\", \"code\": "
			 "\"rate_limit_exceeded\"}}]", cases[i].headers);
		struct outcome o = run_script(model, b);
		assert_false(o.ok);
		assert_int_equal(o.status, 429);
		assert_int_equal(o.cls, DR_CLASS_TRANSIENT);
		assert_int_equal(o.retry_after_ms, cases[i].ms);
		assert_contains(o.error, "HTTP 429: Rate limit reached (type: requests, "
			       "code: rate_limit_exceeded)");
		outcome_free(&o);
	}
}

static void insufficient_quota_is_permanent(void **state)
{
	(void)state;
	struct outcome o = run_script("t-quota", "[{\"status\": 429, \"error\": {\"message\": "
				      "\"You exceeded your current quota\", \"type\": "
				      "\"insufficient_quota\", \"code\": \"insufficient_quota\"}}]");
	assert_false(o.ok);
	assert_int_equal(o.cls, DR_CLASS_PERMANENT);
	assert_contains(o.error, "You exceeded your current quota");
	outcome_free(&o);
}

static void server_error_is_transient(void **state)
{
	(void)state;
	struct outcome o = run_script("t-500", "[{\"status\": 500}]");
	assert_false(o.ok);
	assert_int_equal(o.cls, DR_CLASS_TRANSIENT);
	assert_contains(o.error, "HTTP 500");
	outcome_free(&o);
	o = run_script("t-502", "[{\"status\": 502, \"body\": \"<html>Bad gateway</html>\"}]");
	assert_int_equal(o.cls, DR_CLASS_TRANSIENT);
	assert_contains(o.error, "HTTP 502: <html>Bad gateway</html>");
	outcome_free(&o);
}

static void client_errors_are_permanent_with_the_api_message_and_no_key(void **state)
{
	(void)state;
	static const int codes[] = {400, 401, 403, 404};
	for (size_t i = 0; i < 4; i++) {
		char model[32], b[512];
		snprintf(model, sizeof(model), "t-%d", codes[i]);
		snprintf(b, sizeof(b), "[{\"status\": %d, \"echo_key\": true, \"error\": {"
			 "\"message\": \"Incorrect API key provided\", \"type\": "
			 "\"invalid_request_error\", \"code\": \"invalid_api_key\"}}]", codes[i]);
		struct outcome o = run_script(model, b);
		assert_false(o.ok);
		assert_int_equal(o.status, codes[i]);
		assert_int_equal(o.cls, DR_CLASS_PERMANENT);
		assert_contains(o.error, "Incorrect API key provided");
		assert_contains(o.error, "invalid_api_key");
		assert_contains(o.error, "Bearer ***");          /* scrubbed echo */
		assert_null(strstr(o.error, SECRET_KEY));
		outcome_free(&o);
	}
	/* A wrong base path: the server's own 404. */
	struct fixture *f = fixture_new();
	struct dr_ai *ai = ai_task(f, 0, "t-path", "hi");
	ai->base_url = text(fmt(f, "http://127.0.0.1:%d/v2", port));
	struct outcome o = run1(f);
	assert_int_equal(o.cls, DR_CLASS_PERMANENT);
	assert_contains(o.error, "HTTP 404: Unknown request URL");
	outcome_free(&o);
	fixture_free(f);
}

static void timeout_is_transient(void **state)
{
	(void)state;
	struct fixture *f = fixture_new();
	ai_task(f, 0, "t-hang", "hi");
	f->opts[0].timeout_ms = 300;
	script("t-hang", "[{\"hang\": 3}]");
	struct outcome o = run1(f);
	assert_false(o.ok);
	assert_true(o.timed_out);
	assert_int_equal(o.cls, DR_CLASS_TRANSIENT);
	outcome_free(&o);
	fixture_free(f);
}

static void cancel_stops_a_hanging_request(void **state)
{
	(void)state;
	struct fixture *f = fixture_new();
	ai_task(f, 0, "t-cancel", "hi");
	script("t-cancel", "[{\"hang\": 3}]");
	struct ctx c;
	struct job j;
	ctx_init(&c);
	job_start(&c, &j, f, 0);
	for (int i = 0; i < 5; i++)
		uv_run(&c.loop, UV_RUN_NOWAIT);
	c.ex->ops->cancel(c.ex, &j.a, false);
	ctx_finish(&c);
	assert_true(j.o.cancelled);
	assert_false(j.o.ok);
	assert_true(j.o.duration_ms < 2000);
	outcome_free(&j.o);
	fixture_free(f);
}

/* ---- context and prompt files ---------------------------------------------------- */

static void context_is_appended_when_the_prompt_does_not_use_it(void **state)
{
	(void)state;
	struct fixture *f = fixture_new();
	ai_task(f, 0, "t-ctxapp", "Write release notes.");
	ctx_add(f, 0, "changes", DR_VAL_STRING, "{{ tasks.log.output }}");
	ctx_add(f, 0, "count", DR_VAL_INT, "42");
	f->sub[0] = (struct dr_value){.kind = DR_VAL_STRING, .text = text("v{{ variables.version }}")};
	f->sub[1] = (struct dr_value){.kind = DR_VAL_BOOL, .as.b = true, .text = text("true")};
	f->subkeys[0] = text("tag");
	f->subkeys[1] = text("draft");
	ctx_add(f, 0, "meta", DR_VAL_MAP, NULL);
	f->items[0][2].count = 2;
	f->items[0][2].items = f->sub;
	f->items[0][2].keys = f->subkeys;
	struct outcome o = run1(f);
	assert_true(o.ok);
	json_t *reqs = requests("t-ctxapp");
	const char *want = "Write release notes.\n\nContext:\n"
			   "changes: fix: a bug\nfeat: a thing\n\n"
			   "count: 42\n\n"
			   "meta: {\"tag\":\"v1.4.0\",\"draft\":true}\n";
	assert_string_equal(msg_content(reqs, 0, 0), want);
	assert_int_equal(o.prompt_bytes, strlen(want));
	assert_int_equal(o.cut, 0);
	json_decref(reqs);
	outcome_free(&o);
	fixture_free(f);
}

static void context_is_in_scope_when_the_prompt_uses_it(void **state)
{
	(void)state;
	struct fixture *f = fixture_new();
	ai_task(f, 0, "t-ctxuse", "Summarize: {{ context.changes }}");
	ctx_add(f, 0, "changes", DR_VAL_STRING, "{{ tasks.log.output }}");
	struct outcome o = run1(f);
	assert_true(o.ok);
	json_t *reqs = requests("t-ctxuse");
	assert_string_equal(msg_content(reqs, 0, 0), "Summarize: fix: a bug\nfeat: a thing");
	json_decref(reqs);
	outcome_free(&o);
	fixture_free(f);
}

/* The word "context" in the prompt's prose is not a use of it: only a
 * {{ }} expression that reads context is. */
static void context_is_appended_when_the_prompt_says_context_only_in_prose(void **state)
{
	(void)state;
	struct fixture *f = fixture_new();
	ai_task(f, 0, "t-ctxprose", "Use the context below (the context is the changelog).");
	ctx_add(f, 0, "changes", DR_VAL_STRING, "{{ tasks.log.output }}");
	struct outcome o = run1(f);
	assert_true(o.ok);
	json_t *reqs = requests("t-ctxprose");
	assert_string_equal(msg_content(reqs, 0, 0),
			    "Use the context below (the context is the changelog).\n\n"
			    "Context:\nchanges: fix: a bug\nfeat: a thing\n");
	json_decref(reqs);
	outcome_free(&o);
	fixture_free(f);
}

/* The system message reading context.KEY is a use too: nothing is
 * appended to the user message. */
static void context_is_not_appended_when_the_system_uses_it(void **state)
{
	(void)state;
	struct fixture *f = fixture_new();
	struct dr_ai *ai = ai_task(f, 0, "t-ctxsys", "Write the notes.");
	ai->system = text("Changes: {{context.changes}}");
	ctx_add(f, 0, "changes", DR_VAL_STRING, "{{ tasks.log.output }}");
	struct outcome o = run1(f);
	assert_true(o.ok);
	json_t *reqs = requests("t-ctxsys");
	assert_string_equal(msg_content(reqs, 0, 0), "Changes: fix: a bug\nfeat: a thing");
	assert_string_equal(msg_content(reqs, 0, 1), "Write the notes.");
	json_decref(reqs);
	outcome_free(&o);
	fixture_free(f);
}

static void context_over_the_cap_is_cut_with_a_marker(void **state)
{
	(void)state;
	struct fixture *f = fixture_new();
	struct dr_ai *ai = ai_task(f, 0, "t-ctxcut", "P");
	ai->max_context_bytes = 10;
	/* "ab\xc3\xa9" ... : the cut at 10 falls inside the two-byte é. */
	ctx_add(f, 0, "a", DR_VAL_STRING, "123456");
	ctx_add(f, 0, "b", DR_VAL_STRING, "ab\xc3\xa9xyz");     /* 4 + 1 + ...: cut after "ab" + ... */
	ctx_add(f, 0, "c", DR_VAL_STRING, "gone");
	struct outcome o = run1(f);
	assert_true(o.ok);
	json_t *reqs = requests("t-ctxcut");
	/* a keeps 6 bytes, b gets 4 of its 7: "ab" + the 2-byte é = 4 bytes. */
	const char *want = "P\n\nContext:\na: 123456\n\nb: ab\xc3\xa9\n[truncated 3 bytes]\n\n"
			   "c: [truncated 4 bytes]\n";
	assert_string_equal(msg_content(reqs, 0, 0), want);
	assert_int_equal(o.cut, 7);
	json_decref(reqs);
	outcome_free(&o);

	/* A cut inside é backs off to the character before it. */
	ai->model = text("t-ctxcut2");
	ai->max_context_bytes = 9;
	o = run1(f);
	reqs = requests("t-ctxcut2");
	assert_contains(msg_content(reqs, 0, 0), "b: ab\n[truncated 5 bytes]");
	assert_int_equal(o.cut, 9);
	json_decref(reqs);
	outcome_free(&o);
	fixture_free(f);
}

static void write_file(const char *name, const char *content)
{
	char path[256];
	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	FILE *fp = fopen(path, "w");
	assert_non_null(fp);
	fputs(content, fp);
	fclose(fp);
}

static void prompt_file_is_read_relative_to_the_workflow_and_cached(void **state)
{
	(void)state;
	char dir[128];
	snprintf(dir, sizeof(dir), "%s/prompts", tmpdir);
	mkdir(dir, 0700);
	write_file("prompts/notes.md", "Release {{ variables.version }}: {{ context.what }}\n");
	struct fixture *f = fixture_new();
	struct dr_ai *ai = ai_task(f, 0, "t-pfile", NULL);
	ai->prompt_file = text("prompts/notes.md");
	ctx_add(f, 0, "what", DR_VAL_STRING, "all the things");
	struct ctx c;
	struct job j1, j2;
	ctx_init(&c);
	n_rendered = 0;
	job_start(&c, &j1, f, 0);
	ctx_wait(&c);
	const struct dr_text *first = rendered[n_rendered - 1];
	/* positions in the file count from its start, as validation counts */
	assert_int_equal(first->line, 1);
	assert_int_equal(first->col, 1);
	write_file("prompts/notes.md", "changed: not read again\n");
	n_rendered = 0;
	job_start(&c, &j2, f, 0);
	ctx_finish(&c);
	assert_ptr_equal(rendered[n_rendered - 1], first);   /* the same text, cached */
	assert_true(j1.o.ok);
	assert_true(j2.o.ok);
	json_t *reqs = requests("t-pfile");
	assert_int_equal(json_array_size(reqs), 2);
	assert_string_equal(msg_content(reqs, 0, 0), "Release 1.4.0: all the things\n");
	assert_string_equal(msg_content(reqs, 1, 0), "Release 1.4.0: all the things\n");
	json_decref(reqs);
	outcome_free(&j1.o);
	outcome_free(&j2.o);

	/* A missing file is permanent and names it. */
	ai->prompt_file = text("prompts/missing.md");
	ai->model = text("t-pfile-missing");
	f->tasks[1] = f->tasks[0];
	struct outcome o;
	ctx_init(&c);
	job_start(&c, &j1, f, 1);
	ctx_finish(&c);
	o = j1.o;
	assert_false(o.ok);
	assert_int_equal(o.cls, DR_CLASS_PERMANENT);
	/* validation's words, at the key (dr_prompt_file_read) */
	assert_contains(o.error, "t.yaml:");
	assert_contains(o.error, "promptFile 'prompts/missing.md': No such file");
	outcome_free(&o);

	/* A template error in the file names the file, its line and column. */
	write_file("prompts/bad.md", "line one\nthen {{ nope }}\n");
	ai->prompt_file = text("prompts/bad.md");
	ai->model = text("t-pfile-bad");
	f->tasks[2] = f->tasks[0];
	ctx_init(&c);
	job_start(&c, &j1, f, 2);
	ctx_finish(&c);
	o = j1.o;
	assert_false(o.ok);
	assert_int_equal(o.cls, DR_CLASS_PERMANENT);
	char want[256];
	snprintf(want, sizeof(want), "promptFile 'prompts/bad.md': %s/prompts/bad.md:1:1: "
		 "unknown name 'nope'", tmpdir);
	assert_contains(o.error, want);
	outcome_free(&o);
	fixture_free(f);
}

/* The attempt of task 0 of f, in a child with a deadline: its exit status
 * is 0 when it failed permanently with `want` in the message, 2 when it
 * did otherwise; a hang ends with SIGALRM. */
static int child_expects(struct fixture *f, const char *want)
{
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		alarm(20);
		struct ctx c;
		struct job j;
		ctx_init(&c);
		job_start(&c, &j, f, 0);
		ctx_finish(&c);
		bool ok = !j.o.ok && j.o.cls == DR_CLASS_PERMANENT && j.o.error &&
			  strstr(j.o.error, want);
		if (!ok)
			fprintf(stderr, "got: %s\n", j.o.error ? j.o.error : "(none)");
		_exit(ok ? 0 : 2);
	}
	int st = 0;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	if (WIFSIGNALED(st))
		print_message("  killed by signal %d: the attempt hung\n", WTERMSIG(st));
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static void a_prompt_file_that_is_a_fifo_fails_without_blocking_the_loop(void **state)
{
	(void)state;
	/* The task may control the path: open() on a FIFO without a writer
	 * blocked the whole engine. */
	char path[256];
	snprintf(path, sizeof(path), "%s/prompt.fifo", tmpdir);
	unlink(path);
	assert_int_equal(mkfifo(path, 0600), 0);
	struct fixture *f = fixture_new();
	struct dr_ai *ai = ai_task(f, 0, "t-pfifo", NULL);
	ai->prompt_file = text("prompt.fifo");
	assert_int_equal(child_expects(f, "promptFile 'prompt.fifo': is a FIFO, not a regular "
					  "file"), 0);
	fixture_free(f);
	unlink(path);
}

/* ---- pacing ------------------------------------------------------------------------ */

static void remaining_zero_holds_the_next_request_until_the_reset(void **state)
{
	(void)state;
	struct fixture *f = fixture_new();
	ai_task(f, 0, "t-pace", "one");
	ai_task(f, 1, "t-pace", "two");
	struct dr_ai *other = ai_task(f, 2, "t-pace-other", "three");
	other->base_url = text(fmt(f, "http://localhost:%d/v1", port));   /* another base */
	script("t-pace", "[{\"headers\": {\"x-ratelimit-remaining-requests\": \"0\", "
	       "\"x-ratelimit-reset-requests\": \"1s\"}}]");
	struct ctx c;
	struct job j1, j2, j3;
	ctx_init(&c);
	job_start(&c, &j1, f, 0);
	ctx_wait(&c);
	assert_true(j1.o.ok);
	job_start(&c, &j2, f, 1);
	job_start(&c, &j3, f, 2);
	ctx_finish(&c);
	assert_true(j2.o.ok);
	assert_true(j3.o.ok);
	assert_true(j2.o.duration_ms >= 800);     /* held for about 1 s */
	assert_true(j2.o.duration_ms < 5000);
	assert_true(j3.o.duration_ms < j2.o.duration_ms);   /* not held */
	json_t *reqs = requests("t-pace");
	assert_int_equal(json_array_size(reqs), 2);
	double t1 = json_real_value(json_object_get(json_array_get(reqs, 0), "t"));
	double t2 = json_real_value(json_object_get(json_array_get(reqs, 1), "t"));
	assert_true(t2 - t1 >= 0.8);
	json_decref(reqs);
	outcome_free(&j1.o);
	outcome_free(&j2.o);
	outcome_free(&j3.o);
	fixture_free(f);
}

static void held_attempt_times_out_or_cancels_while_waiting(void **state)
{
	(void)state;
	struct fixture *f = fixture_new();
	ai_task(f, 0, "t-hold", "one");
	ai_task(f, 1, "t-hold", "two");
	ai_task(f, 2, "t-hold", "three");
	f->opts[1].timeout_ms = 200;
	script("t-hold", "[{\"headers\": {\"x-ratelimit-remaining-requests\": \"0\", "
	       "\"x-ratelimit-reset-requests\": \"20s\"}}]");
	struct ctx c;
	struct job j1, j2, j3;
	ctx_init(&c);
	job_start(&c, &j1, f, 0);
	ctx_wait(&c);
	job_start(&c, &j2, f, 1);
	job_start(&c, &j3, f, 2);
	c.ex->ops->cancel(c.ex, &j3.a, true);
	ctx_finish(&c);
	assert_true(j2.o.timed_out);
	assert_int_equal(j2.o.cls, DR_CLASS_TRANSIENT);
	assert_true(j2.o.duration_ms >= 150 && j2.o.duration_ms < 5000);
	assert_true(j3.o.cancelled);
	json_t *reqs = requests("t-hold");
	assert_int_equal(json_array_size(reqs), 1);    /* neither was sent */
	json_decref(reqs);
	outcome_free(&j1.o);
	outcome_free(&j2.o);
	outcome_free(&j3.o);
	fixture_free(f);
}

/* ---- the pure parts -------------------------------------------------------------------- */

static void durations_parse(void **state)
{
	(void)state;
	static const struct { const char *s; uint64_t ms; } ok[] = {
		{"1s", 1000}, {"6m30s", 390000}, {"250ms", 250}, {"1h2m", 3720000},
		{"0.5s", 500}, {"8.64s", 8640}, {"20ms", 20}, {"2", 2000}, {" 3s ", 3000},
		{"1m0.5s", 60500}, {"1.5ms", 2}, {"100us", 1}, {"0s", 0},
	};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		uint64_t ms = 12345;
		if (!ai_parse_duration_ms(ok[i].s, &ms))
			fail_msg("'%s' did not parse", ok[i].s);
		assert_int_equal(ms, ok[i].ms);
	}
	static const char *const bad[] = {"", "s", "1x", "1s2", "-1s", "abc", "1 s", NULL};
	for (size_t i = 0; bad[i]; i++) {
		uint64_t ms = 7;
		if (ai_parse_duration_ms(bad[i], &ms))
			fail_msg("'%s' parsed", bad[i]);
		assert_int_equal(ms, 7);
	}
	uint64_t ms;
	assert_true(ai_parse_duration_ms("99999h", &ms));
	assert_int_equal(ms, HTTP_RETRY_AFTER_MAX_MS);
}

static void rate_limit_headers_decide_delays_and_holds(void **state)
{
	(void)state;
	json_t *h = json_pack("{s:s, s:s, s:s, s:s}",
			      "x-ratelimit-remaining-requests", "0",
			      "x-ratelimit-reset-requests", "2s",
			      "x-ratelimit-remaining-tokens", "100",
			      "x-ratelimit-reset-tokens", "30s");
	assert_int_equal(ai_pace_ms(h), 2000);
	assert_int_equal(ai_retry_after_ms(h, 429, time(NULL)), 2000);
	assert_int_equal(ai_retry_after_ms(h, 500, time(NULL)), 2000);
	json_object_set_new(h, "x-ratelimit-remaining-requests", json_string("5"));
	assert_int_equal(ai_pace_ms(h), 0);
	assert_int_equal(ai_retry_after_ms(h, 429, time(NULL)), 0);
	json_object_set_new(h, "retry-after-ms", json_string("700"));
	assert_int_equal(ai_retry_after_ms(h, 429, time(NULL)), 700);
	json_decref(h);
	h = json_pack("{s:s, s:s}", "x-ratelimit-remaining-requests", "0",
		      "x-ratelimit-reset-requests", "3h");
	assert_int_equal(ai_pace_ms(h), AI_MAX_PACE_MS);
	json_decref(h);
	assert_int_equal(ai_pace_ms(NULL), 0);
	assert_int_equal(ai_retry_after_ms(NULL, 429, 0), 0);
}

static void utf8_helpers(void **state)
{
	(void)state;
	const char *s = "a\xc3\xa9\xe2\x82\xac";   /* a é € : 1 + 2 + 3 bytes */
	assert_int_equal(ai_utf8_floor(s, 6, 0), 0);
	assert_int_equal(ai_utf8_floor(s, 6, 1), 1);
	assert_int_equal(ai_utf8_floor(s, 6, 2), 1);
	assert_int_equal(ai_utf8_floor(s, 6, 3), 3);
	assert_int_equal(ai_utf8_floor(s, 6, 4), 3);
	assert_int_equal(ai_utf8_floor(s, 6, 5), 3);
	assert_int_equal(ai_utf8_floor(s, 6, 6), 6);
	assert_int_equal(ai_utf8_floor(s, 6, 99), 6);
	struct buf b = BUF_INIT;
	assert_int_equal(ai_utf8_clean(&b, "ok\xff\xc3(\xed\xa0\x80z\xc3\xa9", 12), 0);
	assert_string_equal(b.data, "ok\xef\xbf\xbd\xef\xbf\xbd(\xef\xbf\xbd\xef\xbf\xbd"
			    "\xef\xbf\xbdz\xc3\xa9");
	buf_free(&b);
	assert_int_equal(ai_utf8_clean(&b, "", 0), 0);
	assert_non_null(b.data);
	buf_free(&b);
}

static void error_bodies(void **state)
{
	(void)state;
	bool quota;
	const char *b = "{\"error\": {\"message\": \"Quota\", \"type\": \"insufficient_quota\", "
			"\"code\": null}}";
	char *m = ai_error_message(b, strlen(b), &quota);
	assert_string_equal(m, "Quota (type: insufficient_quota)");
	assert_true(quota);
	free(m);
	b = "{\"error\": \"plain\"}";
	m = ai_error_message(b, strlen(b), &quota);
	assert_string_equal(m, "plain");
	assert_false(quota);
	free(m);
	assert_null(ai_error_message("<html>", 6, &quota));
	assert_null(ai_error_message("{}", 2, &quota));
}

struct deltas {
	struct buf text;
	unsigned n;
};

static void delta(void *ud, const char *text, size_t len)
{
	struct deltas *d = ud;
	buf_add(&d->text, text, len);
	d->n++;
}

#define SSE \
	": keep-alive\n\n" \
	"data: {\"model\":\"m-1\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\"," \
	"\"content\":\"\"},\"finish_reason\":null}]}\r\n\r\n" \
	"event: message\nid: 7\n" \
	"data: {\"model\":\"m-1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"H\\u00e9\"}," \
	"\"finish_reason\":null}]}\n\n" \
	"data: {\"model\":\"m-1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"llo\\n" \
	"wo\"},\"finish_reason\":null}]}\r\r" \
	"data: {\"model\":\"m-1\",\n" \
	"data: \"choices\":[{\"index\":0,\"delta\":{\"content\":\"rld\"},\"finish_reason\":null}]}\n\n" \
	"data: {\"model\":\"m-1\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":" \
	"\"stop\"}]}\n\n" \
	"data: {\"model\":\"m-1\",\"choices\":[],\"usage\":{\"prompt_tokens\":3," \
	"\"completion_tokens\":4,\"total_tokens\":7}}\n\n" \
	"data: [DONE]\n\n"

static void sse_parser_gives_one_reply_at_every_split(void **state)
{
	(void)state;
	const char *sse = SSE;
	size_t n = strlen(sse);
	for (size_t cut = 0; cut <= n; cut++) {
		for (size_t cut2 = cut; cut2 <= n; cut2 += (cut2 < n && cut % 7 ? 13 : n + 1)) {
			struct deltas d = {BUF_INIT, 0};
			struct ai_stream s = {.on_delta = delta, .ud = &d};
			assert_int_equal(ai_stream_feed(&s, sse, cut), 0);
			assert_int_equal(ai_stream_feed(&s, sse + cut, cut2 - cut), 0);
			assert_int_equal(ai_stream_feed(&s, sse + cut2, n - cut2), 0);
			assert_int_equal(ai_stream_end(&s), 0);
			assert_null(s.error);
			assert_true(s.done);
			assert_false(s.partial);
			assert_string_equal(s.reply.text.data, "H\xc3\xa9llo\nworld");
			assert_string_equal(d.text.data, "H\xc3\xa9llo\nworld");
			assert_int_equal(d.n, 3);
			assert_string_equal(s.reply.model, "m-1");
			assert_string_equal(s.reply.finish_reason, "stop");
			assert_true(s.reply.has_usage);
			assert_int_equal(s.reply.prompt_tokens, 3);
			assert_int_equal(s.reply.completion_tokens, 4);
			ai_stream_free(&s);
			buf_free(&d.text);
		}
	}
}

static void sse_parser_sees_a_stream_cut_short(void **state)
{
	(void)state;
	const char *sse = SSE;
	size_t done = strstr(sse, "data: [DONE]") - sse;
	for (size_t cut = 0; cut < done; cut++) {
		struct ai_stream s = {0};
		assert_int_equal(ai_stream_feed(&s, sse, cut), 0);
		assert_int_equal(ai_stream_end(&s), 0);
		assert_false(s.done);
		ai_stream_free(&s);
	}
	/* [DONE] without its blank line still ends the stream. */
	struct ai_stream s = {0};
	assert_int_equal(ai_stream_feed(&s, sse, done + 12), 0);
	assert_int_equal(ai_stream_end(&s), 0);
	assert_true(s.done);
	ai_stream_free(&s);
	/* A malformed chunk stops the parser with an error. */
	memset(&s, 0, sizeof(s));
	const char *bad = "data: {\"choices\": [\n\ndata: [DONE]\n\n";
	assert_int_equal(ai_stream_feed(&s, bad, strlen(bad)), 0);
	assert_non_null(s.error);
	assert_false(s.done);
	ai_stream_free(&s);
}

static void reply_parse_rejects_what_is_not_a_completion(void **state)
{
	(void)state;
	static const char *const bad[] = {"", "[]", "{\"choices\": []}", "{\"x\": 1}",
					  "{\"error\": {\"message\": \"m\"}}", NULL};
	for (size_t i = 0; bad[i]; i++) {
		struct ai_reply rp = {0};
		char *err = NULL;
		assert_int_equal(ai_reply_parse(bad[i], strlen(bad[i]), &rp, &err), -EINVAL);
		assert_non_null(err);
		free(err);
		ai_reply_free(&rp);
	}
}

/* ---- a NUL in the reply (\u0000: valid JSON) --------------------------------------- */

static void a_nul_in_the_reply_text_is_kept_whole_plain_and_streamed(void **state)
{
	(void)state;
	static const char want[] = "a\0b\0c";
	const char *b = "[{\"content\": \"a\\u0000b\\u0000c\"}]";
	struct outcome plain = run_stream("t-nul-plain", b, false);
	struct outcome st = run_stream("t-nul-stream", b, true);
	struct outcome *os[2] = {&plain, &st};
	for (int i = 0; i < 2; i++) {
		struct outcome *o = os[i];
		if (!o->ok)
			fail_msg("%s: %s", i ? "streamed" : "plain", o->error);
		assert_int_equal(o->out_len, sizeof(want) - 1);
		assert_memory_equal(o->out, want, sizeof(want) - 1);
		assert_int_equal(o->out_bytes, sizeof(want) - 1);
	}
	assert_int_equal(st.live.len, sizeof(want) - 1);    /* the live chunks too */
	assert_memory_equal(st.live.data, want, sizeof(want) - 1);
	outcome_free(&plain);
	outcome_free(&st);
}

static void a_nul_in_json_mode_text_is_valid_json(void **state)
{
	(void)state;
	struct fixture *f = fixture_new();
	struct dr_ai *ai = ai_task(f, 0, "t-nul-json", "give json");
	ai->response_format = DR_RESP_JSON;
	script("t-nul-json", "[{\"content\": \"{\\\"a\\\": \\\"x\\\\u0000y\\\"}\"}]");
	struct outcome o = run1(f);
	if (!o.ok)
		fail_msg("%s", o.error);
	assert_string_equal(o.out, "{\"a\": \"x\\u0000y\"}");
	outcome_free(&o);
	fixture_free(f);
}

/* A NUL cannot travel in a C string (an error message): it is written as
 * \u0000, and what follows it is kept. */
static void a_nul_in_a_refusal_or_an_api_error_is_shown_not_cut(void **state)
{
	(void)state;
	struct outcome o = run_script("t-nul-refuse", "[{\"null_content\": true, "
				      "\"refusal\": \"no\\u0000way\"}]");
	assert_false(o.ok);
	assert_int_equal(o.cls, DR_CLASS_PERMANENT);
	assert_contains(o.error, "no\\u0000way");
	outcome_free(&o);
	o = run_script("t-nul-error", "[{\"status\": 400, \"error\": {\"message\": "
		       "\"bad\\u0000request\", \"type\": \"invalid_request_error\"}}]");
	assert_false(o.ok);
	assert_int_equal(o.cls, DR_CLASS_PERMANENT);
	assert_contains(o.error, "HTTP 400: bad\\u0000request (type: invalid_request_error)");
	outcome_free(&o);
	o = run_script("t-nul-body", "[{\"status\": 502, \"body\": \"oops\\u0000tail\"}]");
	assert_false(o.ok);
	assert_int_equal(o.cls, DR_CLASS_TRANSIENT);
	assert_contains(o.error, "HTTP 502: oops tail");   /* not an API error: raw bytes */
	outcome_free(&o);
	o = run_stream("t-nul-stream-refuse", "[{\"content\": \"\", "
		       "\"refusal\": \"no\\u0000way\"}]", true);
	assert_false(o.ok);
	assert_int_equal(o.cls, DR_CLASS_PERMANENT);
	assert_contains(o.error, "no\\u0000way");
	outcome_free(&o);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(request_body_has_every_field),
		cmocka_unit_test(request_without_options_omits_them),
		cmocka_unit_test(authorization_carries_the_key),
		cmocka_unit_test(local_base_url_without_key_sends_no_authorization),
		cmocka_unit_test(missing_key_for_remote_url_is_permanent_before_any_request),
		cmocka_unit_test(base_url_comes_from_the_environment_when_unset),
		cmocka_unit_test(template_error_is_permanent),
		cmocka_unit_test(reply_text_usage_model_and_prompt_hash),
		cmocka_unit_test(json_mode_invalid_reply_is_transient_with_usage),
		cmocka_unit_test(finish_reason_length_sets_a_warning),
		cmocka_unit_test(reply_strings_in_the_extension_are_masked),
		cmocka_unit_test(refusal_without_content_is_permanent),
		cmocka_unit_test(streaming_equals_plain_with_live_chunks_in_order),
		cmocka_unit_test(stream_split_every_byte_with_crlf_gives_the_same_text),
		cmocka_unit_test(stream_length_finish_sets_a_warning),
		cmocka_unit_test(truncated_streams_are_transient),
		cmocka_unit_test(stream_error_event_is_transient),
		cmocka_unit_test(stream_answered_with_one_json_reply_still_works),
		cmocka_unit_test(rate_limits_are_transient_with_the_delay_asked),
		cmocka_unit_test(insufficient_quota_is_permanent),
		cmocka_unit_test(server_error_is_transient),
		cmocka_unit_test(client_errors_are_permanent_with_the_api_message_and_no_key),
		cmocka_unit_test(timeout_is_transient),
		cmocka_unit_test(cancel_stops_a_hanging_request),
		cmocka_unit_test(context_is_appended_when_the_prompt_does_not_use_it),
		cmocka_unit_test(context_is_in_scope_when_the_prompt_uses_it),
		cmocka_unit_test(context_is_appended_when_the_prompt_says_context_only_in_prose),
		cmocka_unit_test(context_is_not_appended_when_the_system_uses_it),
		cmocka_unit_test(context_over_the_cap_is_cut_with_a_marker),
		cmocka_unit_test(prompt_file_is_read_relative_to_the_workflow_and_cached),
		cmocka_unit_test(a_prompt_file_that_is_a_fifo_fails_without_blocking_the_loop),
		cmocka_unit_test(remaining_zero_holds_the_next_request_until_the_reset),
		cmocka_unit_test(held_attempt_times_out_or_cancels_while_waiting),
		cmocka_unit_test(durations_parse),
		cmocka_unit_test(rate_limit_headers_decide_delays_and_holds),
		cmocka_unit_test(utf8_helpers),
		cmocka_unit_test(error_bodies),
		cmocka_unit_test(sse_parser_gives_one_reply_at_every_split),
		cmocka_unit_test(sse_parser_sees_a_stream_cut_short),
		cmocka_unit_test(reply_parse_rejects_what_is_not_a_completion),
		cmocka_unit_test(a_nul_in_the_reply_text_is_kept_whole_plain_and_streamed),
		cmocka_unit_test(a_nul_in_json_mode_text_is_valid_json),
		cmocka_unit_test(a_nul_in_a_refusal_or_an_api_error_is_shown_not_cut),
	};
	return cmocka_run_group_tests_name("ai", tests, server_up, server_down);
}
