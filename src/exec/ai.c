/* ai.c: the executor of `ai` tasks; see ai.h.
 *
 * An attempt owns one struct ax_attempt from start() to on_done. Invariant:
 * it is in exactly one of three states:
 *  - sending: a transfer of ax->client runs (st->xfer set) and ends it from
 *    the transfer's done callback;
 *  - parked PARK_FAILED: it failed before any request (a template, the
 *    key, the prompt file) and waits for ax->tick, a timer, to report it
 *    from the loop (on_done never runs inside start());
 *  - parked PARK_PACED: its request is built and waits on ax->tick until
 *    the pacing hold of its base URL ends (or its timeout does).
 * Parked attempts are on ax->parked; ax->tick is armed for the earliest of
 * their wake times whenever the list is not empty.
 *
 * The request (URL, header lines, body) is built once, in start(), and kept
 * until sent: the client copies it. The API key lives only in st->auth and
 * st->key, wiped when the attempt ends.
 *
 * What does not change between attempts is worked out on a task's first
 * attempt and kept (struct ai_task) until the executor is destroyed:
 *  - a promptFile is read, with a struct dr_text over its contents: the
 *    engine caches compiled templates by the dr_text's address, so every
 *    attempt renders the same compiled template (a file changed during a
 *    run is not read again). The dr_text carries the promptFile key's
 *    position, so the FILE:LINE:COL of a template error in the file counts
 *    from that key (line + the line within the file); the message names
 *    the file;
 *  - whether the context is appended to the user message: only when
 *    neither the system nor the prompt template uses `context` in a
 *    `{{ }}` expression (found by the expression checker, so the word in
 *    prose does not count).
 */
#include "exec/ai.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <curl/curl.h>
#include <openssl/evp.h>

#include "expr/check.h"
#include "expr/redact.h"
#include "expr/template.h"
#include "expr/value.h"

#define RAW_KEEP ((size_t)1 << 20)   /* body kept while streaming (errors) */

enum park { PARK_NONE, PARK_FAILED, PARK_PACED };

/* The hold of one base URL: no request before not_before (loop ms). */
struct pace {
	char *base;
	uint64_t not_before;
	struct pace *next;
};

/* What is kept of one task from its first attempt (see above). */
struct ai_task {
	const struct dr_text *prompt; /* &ai->prompt, or &file */
	char *data;                   /* the promptFile's contents, or NULL */
	struct dr_text file;          /* over data */
	bool append_context;          /* no template of the task uses it */
};

/* The ai_tasks of one workflow, by task index (made on its first attempt). */
struct ai_tasks {
	const struct dagrun_workflow *wf;
	struct ai_task **by_task;     /* n entries; NULL: not yet */
	uint32_t n;                   /* wf->n_tasks (wf may be gone at the end) */
	struct ai_tasks *next;
};

struct ax_attempt;

struct ai_executor {
	struct executor base;
	uv_loop_t *loop;
	struct http_client *client;
	bool own_client;
	char *const *environ;
	uv_timer_t tick;
	struct ax_attempt *parked;
	struct pace *paces;
	struct ai_tasks *tasks;
};

/* The result's extension: the HTTP exchange (once there was a response)
 * then the request and reply (dagrun_ext_ai). */
struct ai_ext {
	struct exec_ext x;
	struct dagrun_ext_http http;
	struct dagrun_ext_ai ai;
	bool has_http;
	char *model, *finish_reason;    /* masked */
	char sha[65];
};

struct ax_attempt {
	struct ai_executor *ax;
	struct ai_ext *ext;              /* = res.ext, owned by res */
	struct exec_attempt *a;
	struct ax_attempt *next;         /* on ax->parked */
	uint8_t park;                    /* enum park */
	bool cancelled, stream, json_mode;
	struct http_xfer *xfer;          /* while sending */
	uint64_t started;                /* loop ms */
	uint64_t timeout_ms;             /* the attempt's; 0: none */
	char *base;                      /* the base URL, the pacing key */
	char *url;
	char *body;
	size_t body_len;
	char *key;                       /* the API key, or NULL; wiped */
	char *lines[4];                  /* header lines; lines[n-1] may hold the key */
	size_t n_lines;
	struct ai_stream sse;
	struct buf raw;                  /* streaming: the body's start */
	struct exec_result res;
};

/* The rendered context of one attempt. */
struct rctx {
	struct expr_kv *kv;
	size_t n;
	uint64_t cut;
};

static uint64_t wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static uint64_t now_ms(uv_loop_t *loop)
{
	uv_update_time(loop);
	return uv_now(loop);
}

static void wipe(char *s)
{
	if (s) {
		volatile char *p = s;
		while (*p)
			*p++ = 0;
	}
	free(s);
}

const char *ai_api_key_env(const struct dr_ai *ai)
{
	return ai && ai->api_key_env.s && ai->api_key_env.len ? ai->api_key_env.s
							      : AI_DEFAULT_KEY_ENV;
}

static const char *env_get(const struct ai_executor *ax, const char *name)
{
	if (!ax->environ)
		return getenv(name);
	size_t n = strlen(name);
	for (char *const *p = ax->environ; *p; p++)
		if (!strncmp(*p, name, n) && (*p)[n] == '=')
			return *p + n + 1;
	return NULL;
}

/* Records a failure of class c on st (the message is formatted; on OOM the
 * result still fails, with a NULL message). */
static void fail(struct ax_attempt *st, enum dr_error_class c, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void fail(struct ax_attempt *st, enum dr_error_class c, const char *fmt, ...)
{
	struct buf m = BUF_INIT;
	va_list ap;
	va_start(ap, fmt);
	int r = buf_vprintf(&m, fmt, ap);
	va_end(ap);
	free(st->res.error);
	st->res.error = r < 0 ? NULL : buf_steal(&m);
	buf_free(&m);
	st->res.ok = false;
	st->res.error_class = (uint8_t)c;
}

/* msg with every occurrence of key replaced by "***" (malloc'd), or NULL. */
static char *scrub(const char *msg, const char *key)
{
	size_t kn = key ? strlen(key) : 0;
	struct buf b = BUF_INIT;
	const char *p = msg, *hit;
	int r = 0;
	while (kn && r == 0 && (hit = strstr(p, key))) {
		r = buf_add(&b, p, (size_t)(hit - p));
		if (r == 0)
			r = buf_adds(&b, "***");
		p = hit + kn;
	}
	if (r == 0)
		r = buf_adds(&b, p);
	char *s = r == 0 ? buf_steal(&b) : NULL;
	buf_free(&b);
	return s;
}

/* ---- building the request --------------------------------------------------- */

/* Renders t; a template error fails the attempt (permanent). Returns 0,
 * -ENOMEM, or -EINVAL (failed). */
static int render(struct ax_attempt *st, const struct dr_text *t, enum exec_render_mode mode,
		  struct buf *out, const char *what)
{
	char *err = NULL;
	int r = exec_render(st->a, t, (int)mode, out, &err);
	if (r == 0 || r == -ENOMEM) {
		free(err);
		return r;
	}
	fail(st, DR_CLASS_PERMANENT, "%s: %s", what, err ? err : strerror(-r));
	free(err);
	return -EINVAL;
}

/* v as JSON (see exec_value_json); a failure fails the attempt. */
static int to_json(struct ax_attempt *st, const struct dr_value *v, json_t **out,
		   const char *what)
{
	char *err = NULL;
	int r = exec_value_json(st->a, v, out, &err);
	if (r == -EINVAL)
		fail(st, DR_CLASS_PERMANENT, "%s: %s", what, err ? err : "invalid value");
	free(err);
	return r;
}

/* The text of one context value. */
static int context_value(struct ax_attempt *st, const struct dr_value *v, const char *what,
			 struct buf *out)
{
	switch (v->kind) {
	case DR_VAL_NULL:
		return 0;
	case DR_VAL_STRING:
		return render(st, &v->text, EXEC_RENDER_PLAIN, out, what);
	case DR_VAL_BOOL: case DR_VAL_INT: case DR_VAL_REAL:
		if (v->text.s)
			return buf_add(out, v->text.s, v->text.len);
		return v->kind == DR_VAL_BOOL ? buf_adds(out, v->as.b ? "true" : "false")
			: v->kind == DR_VAL_INT ? buf_printf(out, "%lld", (long long)v->as.i)
			: buf_printf(out, "%.17g", v->as.d);
	default: {
		json_t *j = NULL;
		int r = to_json(st, v, &j, what);
		if (r < 0)
			return r;
		char *s = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(15));
		json_decref(j);
		if (!s)
			return -ENOMEM;
		r = buf_adds(out, s);
		free(s);
		return r;
	}
	}
}

static void rctx_free(struct rctx *cx)
{
	for (size_t i = 0; i < cx->n; i++) {
		free((char *)cx->kv[i].key);
		free((char *)cx->kv[i].value);
	}
	free(cx->kv);
	memset(cx, 0, sizeof(*cx));
}

/* Cuts the values, in order, to max bytes in all, each cut one ending with
 * "[truncated N bytes]". */
static int context_cut(struct rctx *cx, uint64_t max)
{
	uint64_t total = 0, left = max;
	for (size_t i = 0; i < cx->n; i++)
		total += cx->kv[i].value_len;
	if (total <= max)
		return 0;
	for (size_t i = 0; i < cx->n; i++) {
		struct expr_kv *kv = &cx->kv[i];
		if (kv->value_len <= left) {
			left -= kv->value_len;
			continue;
		}
		size_t keep = ai_utf8_floor(kv->value, kv->value_len, (size_t)left);
		size_t cut = kv->value_len - keep;
		struct buf b = BUF_INIT;
		if (buf_add(&b, kv->value, keep) < 0 ||
		    buf_printf(&b, "%s[truncated %zu bytes]", keep ? "\n" : "", cut) < 0) {
			buf_free(&b);
			return -ENOMEM;
		}
		free((char *)kv->value);
		kv->value_len = b.len;
		kv->value = buf_steal(&b);
		cx->cut += cut;
		left = 0;
	}
	return 0;
}

/* Renders ai->context into cx. Returns 0, -ENOMEM or -EINVAL (failed). */
static int render_context(struct ax_attempt *st, const struct dr_ai *ai, struct rctx *cx)
{
	const struct dr_value *v = ai->context;
	if (!v || v->kind != DR_VAL_MAP || !v->count)
		return 0;
	if (!(cx->kv = calloc(v->count, sizeof(*cx->kv))))
		return -ENOMEM;
	for (uint32_t i = 0; i < v->count; i++) {
		const struct dr_text *k = &v->keys[i];
		struct buf val = BUF_INIT, clean = BUF_INIT;
		char what[128];
		snprintf(what, sizeof(what), "context.%.*s", (int)(k->len > 80 ? 80 : k->len),
			 k->s ? k->s : "");
		char *key = strndup(k->s ? k->s : "", k->s ? k->len : 0);
		int r = key ? context_value(st, &v->items[i], what, &val) : -ENOMEM;
		if (r == 0)
			r = ai_utf8_clean(&clean, val.data ? val.data : "", val.len);
		buf_free(&val);
		if (r < 0) {
			free(key);
			buf_free(&clean);
			return r;
		}
		cx->kv[cx->n].key = key;
		cx->kv[cx->n].value_len = clean.len;
		cx->kv[cx->n].value = buf_steal(&clean);
		cx->n++;
		if (!cx->kv[cx->n - 1].value)
			return -ENOMEM;
	}
	uint64_t max = ai->max_context_bytes ? ai->max_context_bytes : AI_DEFAULT_MAX_CONTEXT;
	return context_cut(cx, max);
}

/* Reads path (relative to dir) into *out, NUL-terminated, at most
 * AI_PROMPT_FILE_MAX bytes. Returns 0 or -errno (-EFBIG: too large). */
static int read_file(const char *dir, const char *path, char **out, size_t *len)
{
	char *full = NULL;
	int fd = -1, r = 0;
	*out = NULL;
	if (path[0] == '/' || !dir)
		full = strdup(path);
	else if (asprintf(&full, "%s/%s", dir, path) < 0)
		full = NULL;
	if (!full)
		return -ENOMEM;
	struct stat sb;
	if ((fd = open(full, O_RDONLY | O_NONBLOCK | O_CLOEXEC)) < 0 || fstat(fd, &sb) < 0) {
		r = -errno;
		goto out;
	}
	if (!S_ISREG(sb.st_mode)) {
		r = S_ISDIR(sb.st_mode) ? -EISDIR : -EINVAL;
		goto out;
	}
	if ((uint64_t)sb.st_size > AI_PROMPT_FILE_MAX) {
		r = -EFBIG;
		goto out;
	}
	char *data = malloc(AI_PROMPT_FILE_MAX + 1);
	size_t n = 0;
	if (!data) {
		r = -ENOMEM;
		goto out;
	}
	for (;;) {
		ssize_t k = read(fd, data + n, AI_PROMPT_FILE_MAX + 1 - n);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0) {
			r = -errno;
			break;
		}
		if (k == 0)
			break;
		n += (size_t)k;
		if (n > AI_PROMPT_FILE_MAX) {
			r = -EFBIG;
			break;
		}
	}
	if (r < 0) {
		free(data);
		goto out;
	}
	data[n] = '\0';
	*out = data;
	*len = n;
out:
	if (fd >= 0)
		close(fd);
	free(full);
	return r;
}

/* Whether template t uses `context` in one of its expressions (context.KEY,
 * context["KEY"], context whole): "context" in the text around them does
 * not count. A template that does not parse counts as not using it (its
 * rendering fails anyway). */
static bool uses_context(const struct dr_text *t)
{
	if (!t || !t->s || !tpl_has_template(t->s, t->len))
		return false;
	struct tpl tp = {0};
	struct expr_error e = {0};
	bool used = false;
	if (tpl_parse(t->s, t->len, &tp, &e) == 0) {
		for (size_t i = 0; i < tp.n && !used; i++) {
			if (tp.segs[i].kind != TPL_EXPR)
				continue;
			struct expr_refs refs = {0};
			if (expr_check(NULL, t->s + tp.segs[i].off, tp.segs[i].len,
				       EXPR_CHECK_CONTEXT, &refs, &e) == 0)
				for (size_t k = 0; k < refs.n && !used; k++)
					used = refs.v[k].kind == EXPR_NAME_CONTEXT;
			expr_refs_free(&refs);
		}
	}
	tpl_free(&tp);
	return used;
}

/* The table of a->wf's tasks, made on first use. NULL on OOM. */
static struct ai_tasks *tasks_of(struct ai_executor *ax, const struct dagrun_workflow *wf)
{
	for (struct ai_tasks *w = ax->tasks; w; w = w->next)
		if (w->wf == wf)
			return w;
	struct ai_tasks *w = calloc(1, sizeof(*w));
	if (!w || !(w->by_task = calloc(wf->n_tasks ? wf->n_tasks : 1, sizeof(*w->by_task)))) {
		free(w);
		return NULL;
	}
	w->wf = wf;
	w->n = wf->n_tasks;
	w->next = ax->tasks;
	ax->tasks = w;
	return w;
}

/* The task's kept state (see the file's header), made on its first
 * attempt: the prompt's template (the prompt key, or the promptFile's
 * contents) and whether the context is appended. Returns 0, -ENOMEM, or
 * -EINVAL with st failed (no prompt, an unreadable promptFile: the next
 * attempt tries again). */
static int task_state(struct ax_attempt *st, const struct dr_ai *ai, struct ai_task **out)
{
	const struct exec_attempt *a = st->a;
	struct ai_tasks *w = tasks_of(st->ax, a->wf);
	if (!w)
		return -ENOMEM;
	if ((*out = w->by_task[a->task]))
		return 0;
	if (!ai->prompt.s && !ai->prompt_file.s) {
		fail(st, DR_CLASS_PERMANENT, "the task has neither prompt nor promptFile");
		return -EINVAL;
	}
	struct ai_task *k = calloc(1, sizeof(*k));
	if (!k)
		return -ENOMEM;
	k->prompt = &ai->prompt;
	if (!ai->prompt.s) {
		size_t len = 0;
		int r = read_file(a->wf->dir, ai->prompt_file.s, &k->data, &len);
		if (r == 0 && len > UINT32_MAX)
			r = -ENOMEM;
		if (r < 0) {
			free(k->data);
			free(k);
			if (r == -ENOMEM)
				return r;
			fail(st, DR_CLASS_PERMANENT, "promptFile %s: %s", ai->prompt_file.s,
			     r == -EFBIG ? "larger than 1 MiB" : strerror(-r));
			return -EINVAL;
		}
		k->file = (struct dr_text){k->data, (uint32_t)len, ai->prompt_file.line,
					   ai->prompt_file.col};
		k->prompt = &k->file;
	}
	k->append_context = !uses_context(&ai->system) && !uses_context(k->prompt);
	w->by_task[a->task] = k;
	*out = k;
	return 0;
}

/* Appends the context under a "Context:" heading. */
static int append_context(struct buf *user, const struct rctx *cx)
{
	int r = buf_adds(user, user->len ? "\n\nContext:\n" : "Context:\n");
	for (size_t i = 0; i < cx->n && r == 0; i++) {
		const struct expr_kv *kv = &cx->kv[i];
		if ((r = buf_printf(user, "%s%s: ", i ? "\n" : "", kv->key)) == 0)
			r = buf_add(user, kv->value, kv->value_len);
		if (r == 0 && (!kv->value_len || kv->value[kv->value_len - 1] != '\n'))
			r = buf_addc(user, '\n');
	}
	return r;
}

static int sha256_hex(const char *p, size_t n, char out[65])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int len = 0;
	if (!EVP_Digest(p, n, md, &len, EVP_sha256(), NULL) || len != 32)
		return -EIO;
	for (unsigned i = 0; i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
	return 0;
}

static bool local_host(const char *h)
{
	return !strcasecmp(h, "localhost") || !strcmp(h, "127.0.0.1") ||
	       !strcmp(h, "[::1]") || !strcmp(h, "::1");
}

/* Renders and checks the base URL into st->base and st->url. */
static int base_url(struct ax_attempt *st, const struct dr_ai *ai, bool *local)
{
	struct buf b = BUF_INIT;
	int r = 0;
	if (ai->base_url.s) {
		r = render(st, &ai->base_url, EXEC_RENDER_URL, &b, "baseUrl");
	} else {
		const char *env = env_get(st->ax, AI_BASE_URL_ENV);
		r = buf_adds(&b, env && *env ? env : AI_DEFAULT_BASE_URL);
	}
	while (r == 0 && b.len && b.data[b.len - 1] == '/')
		b.data[--b.len] = '\0';
	CURLU *u = r == 0 ? curl_url() : NULL;
	char *scheme = NULL, *host = NULL;
	if (r == 0 && !u)
		r = -ENOMEM;
	if (r < 0)
		goto out;
	CURLUcode uc = curl_url_set(u, CURLUPART_URL, b.data ? b.data : "", 0);
	if (uc == CURLUE_OUT_OF_MEMORY) {
		r = -ENOMEM;
	} else if (uc != CURLUE_OK ||
		   curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
		   (strcmp(scheme, "http") && strcmp(scheme, "https")) ||
		   curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK) {
		fail(st, DR_CLASS_PERMANENT, "baseUrl: not an http(s) URL%s",
		     ai->base_url.s ? "" : " in $" AI_BASE_URL_ENV);
		r = -EINVAL;
	} else {
		*local = local_host(host);
		if (!(st->base = buf_steal(&b)) || asprintf(&st->url, "%s/chat/completions",
							     st->base) < 0) {
			st->url = NULL;
			r = -ENOMEM;
		}
	}
out:
	curl_free(scheme);
	curl_free(host);
	curl_url_cleanup(u);
	buf_free(&b);
	return r;
}

/* The key and the header lines. */
static int headers(struct ax_attempt *st, const struct dr_ai *ai, bool local)
{
	const char *name = ai_api_key_env(ai);
	const char *key = env_get(st->ax, name);
	st->lines[st->n_lines++] = strdup("Content-Type: application/json");
	st->lines[st->n_lines++] = strdup(st->stream ? "Accept: text/event-stream"
						     : "Accept: application/json");
	st->lines[st->n_lines++] = strdup("Expect:");
	for (size_t i = 0; i < st->n_lines; i++)
		if (!st->lines[i])
			return -ENOMEM;
	if (!key || !*key) {
		if (local)
			return 0;
		fail(st, DR_CLASS_PERMANENT, "no API key: the environment variable %s "
		     "(apiKeyEnv) is not set, and the base URL is not local", name);
		return -EINVAL;
	}
	if (strpbrk(key, "\r\n")) {
		fail(st, DR_CLASS_PERMANENT, "the API key in %s contains a line break", name);
		return -EINVAL;
	}
	if (!(st->key = strdup(key)) ||
	    asprintf(&st->lines[st->n_lines], "Authorization: Bearer %s", key) < 0)
		return -ENOMEM;
	st->n_lines++;
	return 0;
}

static int set_text(json_t *o, const char *k, const char *s, size_t n)
{
	struct buf c = BUF_INIT;
	int r = ai_utf8_clean(&c, s ? s : "", n);
	json_t *j = r == 0 ? json_stringn(c.data, c.len) : NULL;
	buf_free(&c);
	return j && !json_object_set_new(o, k, j) ? 0 : -ENOMEM;
}

static int message(json_t *msgs, const char *role, const struct buf *content)
{
	json_t *m = json_object();
	if (!m || json_array_append_new(msgs, m) < 0 ||
	    json_object_set_new(m, "role", json_string(role)) < 0)
		return -ENOMEM;
	return set_text(m, "content", content->data, content->len);
}

/* The JSON body. */
static int body(struct ax_attempt *st, const struct dr_ai *ai, const struct buf *model,
		const struct buf *sys, const struct buf *user)
{
	json_t *req = json_object(), *msgs = json_array(), *o;
	int r = -ENOMEM;
	if (!req || !msgs || set_text(req, "model", model->data, model->len) < 0 ||
	    json_object_set(req, "messages", msgs) < 0)
		goto out;
	if ((ai->system.s && message(msgs, "system", sys) < 0) || message(msgs, "user", user) < 0)
		goto out;
	if (ai->has_temperature &&
	    json_object_set_new(req, "temperature", json_real(ai->temperature)) < 0)
		goto out;
	if (ai->max_tokens &&
	    json_object_set_new(req, "max_tokens", json_integer(ai->max_tokens)) < 0)
		goto out;
	if (ai->response_format == DR_RESP_JSON &&
	    (!(o = json_pack("{s:s}", "type", "json_object")) ||
	     json_object_set_new(req, "response_format", o) < 0))
		goto out;
	if (ai->stream &&
	    (json_object_set_new(req, "stream", json_true()) < 0 ||
	     !(o = json_pack("{s:b}", "include_usage", 1)) ||
	     json_object_set_new(req, "stream_options", o) < 0))
		goto out;
	if (!(st->body = json_dumps(req, JSON_COMPACT | JSON_REAL_PRECISION(15))))
		goto out;
	st->body_len = strlen(st->body);
	r = 0;
out:
	json_decref(msgs);
	json_decref(req);
	return r;
}

/* Renders system and prompt with the context in scope, and builds the user
 * message. */
static int messages(struct ax_attempt *st, const struct dr_ai *ai, const struct rctx *cx,
		    struct buf *sys, struct buf *user)
{
	struct exec_attempt *a = st->a;
	struct ai_task *k = NULL;
	int r;
	a->context = cx->kv;
	a->n_context = cx->n;
	if ((ai->system.s && (r = render(st, &ai->system, EXEC_RENDER_PLAIN, sys, "system")) < 0) ||
	    (r = task_state(st, ai, &k)) < 0)
		goto out;
	if (ai->prompt.s) {
		r = render(st, k->prompt, EXEC_RENDER_PLAIN, user, "prompt");
	} else {
		char what[256];
		snprintf(what, sizeof(what), "promptFile %.200s", ai->prompt_file.s);
		r = render(st, k->prompt, EXEC_RENDER_PLAIN, user, what);
	}
	if (r == 0 && cx->n && k->append_context)
		r = append_context(user, cx);
out:
	a->context = NULL;
	a->n_context = 0;
	return r;
}

/* Builds everything the request needs. Returns 0, -ENOMEM, or -EINVAL with
 * st->res failed (permanent). */
static int build(struct ax_attempt *st, const struct dr_ai *ai)
{
	struct buf model = BUF_INIT, sys = BUF_INIT, user = BUF_INIT, sent = BUF_INIT;
	struct rctx cx = {0};
	bool local = false;
	int r;
	if ((r = render(st, &ai->model, EXEC_RENDER_PLAIN, &model, "model")) < 0)
		goto out;
	if (!model.len) {
		fail(st, DR_CLASS_PERMANENT, "model: empty after rendering");
		r = -EINVAL;
		goto out;
	}
	if ((r = base_url(st, ai, &local)) < 0 || (r = headers(st, ai, local)) < 0 ||
	    (r = render_context(st, ai, &cx)) < 0 || (r = messages(st, ai, &cx, &sys, &user)) < 0)
		goto out;
	/* The user message as sent: valid UTF-8 (the context already is). */
	if ((r = ai_utf8_clean(&sent, user.data ? user.data : "", user.len)) < 0)
		goto out;
	st->ext->ai.context_cut_bytes = cx.cut;
	st->ext->ai.prompt_bytes = sent.len;
	if ((r = sha256_hex(sent.data, sent.len, st->ext->sha)) == 0)
		st->ext->ai.prompt_sha256 = st->ext->sha;
	if (r < 0 ||
	    (r = body(st, ai, &model, &sys, &sent)) < 0)
		goto out;
out:
	buf_free(&sent);
	rctx_free(&cx);
	buf_free(&model);
	buf_free(&sys);
	buf_free(&user);
	return r == -EIO ? -ENOMEM : r;
}

/* ---- pacing ----------------------------------------------------------------- */

static uint64_t pace_get(const struct ai_executor *ax, const char *base)
{
	for (const struct pace *p = ax->paces; p; p = p->next)
		if (!strcmp(p->base, base))
			return p->not_before;
	return 0;
}

/* Holds requests to base until `until`; drops holds that have ended. On
 * OOM there is no hold (the server will answer 429 instead). */
static void pace_set(struct ai_executor *ax, const char *base, uint64_t until, uint64_t now)
{
	struct pace **pp = &ax->paces, *found = NULL;
	while (*pp) {
		struct pace *p = *pp;
		if (!strcmp(p->base, base)) {
			found = p;
		} else if (p->not_before <= now) {
			*pp = p->next;
			free(p->base);
			free(p);
			continue;
		}
		pp = &p->next;
	}
	if (!found) {
		if (!(found = calloc(1, sizeof(*found))) || !(found->base = strdup(base))) {
			free(found);
			return;
		}
		found->next = ax->paces;
		ax->paces = found;
	}
	if (until > found->not_before)
		found->not_before = until;
}

/* ---- running attempts ------------------------------------------------------------ */

static void ai_ext_free(struct exec_ext *x)
{
	struct ai_ext *e = (struct ai_ext *)x;
	json_decref(x->headers);
	free(e->model);
	free(e->finish_reason);
	free(e);
}

/* An extension with no reply yet (no usage, no prompt sent). */
static struct ai_ext *ai_ext_new(void)
{
	struct ai_ext *e = calloc(1, sizeof(*e));
	if (!e)
		return NULL;
	e->ai.base.type = DAGRUN_EXT_AI;
	e->ai.prompt_tokens = e->ai.completion_tokens = -1;
	e->x.pub = &e->ai.base;
	e->x.free = ai_ext_free;
	return e;
}

static void attempt_free(struct ax_attempt *st)
{
	exec_result_free(&st->res);
	ai_stream_free(&st->sse);
	buf_free(&st->raw);
	free(st->base);
	free(st->url);
	free(st->body);
	wipe(st->key);
	for (size_t i = 0; i < st->n_lines; i++)
		wipe(st->lines[i]);
	free(st);
}

static void report(struct ax_attempt *st)
{
	struct exec_attempt *a = st->a;
	struct exec_result *r = &st->res;
	if (st->cancelled && !r->cancelled) {
		r->cancelled = true;
		fail(st, DR_CLASS_TRANSIENT, "cancelled");
	}
	if (!r->end_ms)
		r->end_ms = wall_ms();
	if (r->end_ms < r->start_ms)
		r->end_ms = r->start_ms;
	r->duration_ms = now_ms(st->ax->loop) - st->started;
	if (r->ok && r->error) {
		free(r->error);
		r->error = NULL;
	}
	if (r->error && st->key && *st->key && strstr(r->error, st->key)) {
		char *s = scrub(r->error, st->key);   /* whatever the server echoed */
		free(r->error);
		r->error = s;
	}
	a->priv = NULL;
	a->on_done(a, r);
	attempt_free(st);
}

static uint64_t deadline(const struct ax_attempt *st)
{
	return st->timeout_ms ? st->started + st->timeout_ms : UINT64_MAX;
}

/* When st must be looked at again. */
static uint64_t wake(const struct ai_executor *ax, const struct ax_attempt *st)
{
	if (st->cancelled || st->park == PARK_FAILED)
		return 0;
	uint64_t nb = pace_get(ax, st->base), d = deadline(st);
	return nb < d ? nb : d;
}

static void on_tick(uv_timer_t *t);

static void rearm(struct ai_executor *ax)
{
	if (!ax->parked) {
		uv_timer_stop(&ax->tick);
		return;
	}
	uint64_t at = UINT64_MAX, now = now_ms(ax->loop);
	for (const struct ax_attempt *st = ax->parked; st; st = st->next) {
		uint64_t w = wake(ax, st);
		if (w < at)
			at = w;
	}
	uv_timer_start(&ax->tick, on_tick, at > now ? at - now : 0, 0);
}

static void park(struct ax_attempt *st, enum park how)
{
	struct ai_executor *ax = st->ax;
	struct ax_attempt **pp = &ax->parked;
	while (*pp)
		pp = &(*pp)->next;
	st->park = (uint8_t)how;
	st->next = NULL;
	*pp = st;
	rearm(ax);
}

static void on_delta(void *ud, const char *text, size_t len)
{
	struct ax_attempt *st = ud;
	if (st->a->on_output)
		st->a->on_output(st->a, EXEC_STDOUT, text, len);
}

static int on_data(void *ud, const char *data, size_t len)
{
	struct ax_attempt *st = ud;
	if (!st->sse.events && st->raw.len < RAW_KEEP) {
		size_t n = RAW_KEEP - st->raw.len;
		if (buf_add(&st->raw, data, len < n ? len : n) < 0)
			return -1;
	}
	return ai_stream_feed(&st->sse, data, len) < 0 ? -1 : 0;
}

/* A string of the reply for the events, without the key or the run's
 * secrets (a server may echo them anywhere); malloc'd, NULL for NULL or
 * on OOM. */
static char *masked(const struct ax_attempt *st, const char *s)
{
	char *k = s ? scrub(s, st->key) : NULL;
	if (!k || !st->a->redactor)
		return k;
	struct buf b = BUF_INIT;
	char *m = redact_text(st->a->redactor, k, strlen(k), &b) == 0 ? buf_steal(&b) : NULL;
	buf_free(&b);
	free(k);
	return m;
}

/* Moves what a reply said into the result. */
static void take_reply(struct ax_attempt *st, struct ai_reply *rp)
{
	struct exec_result *r = &st->res;
	struct ai_ext *e = st->ext;
	buf_free(&r->out);
	r->out = rp->text;
	rp->text = (struct buf)BUF_INIT;
	r->out_bytes = rp->text_bytes;
	r->out_dropped = rp->text_bytes > r->out.len ? rp->text_bytes - r->out.len : 0;
	free(e->model);
	e->ai.model = e->model = masked(st, rp->model);
	free(e->finish_reason);
	e->ai.finish_reason = e->finish_reason = masked(st, rp->finish_reason);
	e->ai.prompt_tokens = rp->has_usage ? (int64_t)rp->prompt_tokens : -1;
	e->ai.completion_tokens = rp->has_usage ? (int64_t)rp->completion_tokens : -1;
}

/* An HTTP error status: the class and the API's message. */
static void status_failure(struct ax_attempt *st, const struct buf *body)
{
	struct exec_result *r = &st->res;
	bool quota = false;
	char *api = ai_error_message(body->data, body->len, &quota);
	char *msg = api ? scrub(api, st->key) : NULL;
	int status = st->ext->http.status;
	enum dr_error_class c = quota ? DR_CLASS_PERMANENT
		: http_status_transient(status) ? DR_CLASS_TRANSIENT : DR_CLASS_PERMANENT;
	if (msg) {
		fail(st, c, "HTTP %d: %s", status, msg);
	} else {
		/* Up to 200 bytes of the body (scrubbed first: a cut must not
		 * leave a piece of the key), on one line. */
		char *s = scrub(body->data ? body->data : "", st->key);
		if (s && st->a->redactor) {
			/* the run's other secrets too, before the cut */
			struct buf m = BUF_INIT;
			size_t sl = strlen(s);
			if (redact_slice(st->a->redactor, s, sl, 0, sl < 4096 ? sl : 4096, 0, &m) < 0)
				buf_reset(&m);
			free(s);
			s = buf_steal(&m);
			buf_free(&m);
		}
		size_t len = s ? strlen(s) : 0;
		size_t n = ai_utf8_floor(s ? s : "", len, 200);
		for (size_t i = 0; i < n; i++)
			if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
				s[i] = ' ';
		fail(st, c, "HTTP %d%s%.*s%s", status, n ? ": " : "", (int)n,
		     s ? s : "", n < len ? "..." : "");
		free(s);
	}
	free(api);
	free(msg);
	r->retry_after_ms = ai_retry_after_ms(st->ext->x.headers, status, time(NULL));
}

/* A 2xx reply: the text, or why it is not usable. */
static void success(struct ax_attempt *st, const struct buf *body)
{
	struct exec_result *r = &st->res;
	struct ai_reply plain = {0};
	struct ai_reply *rp = &plain;
	char *err = NULL;
	int e = st->stream ? ai_stream_end(&st->sse) : 0;
	if (e < 0) {
		fail(st, DR_CLASS_RESOURCE, "out of memory");
	} else if (st->stream && (st->sse.events || st->sse.error)) {
		rp = &st->sse.reply;
		if (st->sse.error)
			fail(st, DR_CLASS_TRANSIENT, "%s", st->sse.error);
		else if (!st->sse.done)
			fail(st, DR_CLASS_TRANSIENT, "stream ended early%s",
			     st->sse.partial ? " (inside an event)" : " (no [DONE])");
		else
			r->ok = true;
	} else {
		/* Not streamed, or a server that answered a stream request with
		 * one JSON reply. */
		e = ai_reply_parse(body->data, body->len, rp, &err);
		if (e == -ENOMEM)
			fail(st, DR_CLASS_RESOURCE, "out of memory");
		else if (e < 0)
			fail(st, DR_CLASS_TRANSIENT, "invalid reply: %s", err ? err : "");
		else
			r->ok = true;
		if (e == 0 && st->stream && rp->text.len)
			on_delta(st, rp->text.data, rp->text.len);
	}
	char *refusal = rp->refusal;
	rp->refusal = NULL;
	take_reply(st, rp);
	if (r->ok && refusal && !r->out.len) {
		char *s = scrub(refusal, st->key);
		fail(st, DR_CLASS_PERMANENT, "the model refused: %s", s ? s : "");
		free(s);
	}
	if (r->ok && st->json_mode) {
		json_error_t je;
		json_t *j = json_loadb(r->out.data ? r->out.data : "", r->out.len,
				       JSON_DECODE_ANY, &je);
		if (!j)
			fail(st, DR_CLASS_TRANSIENT, "the reply is not valid JSON "
			     "(responseFormat: json): %s at line %d", je.text, je.line);
		json_decref(j);
	}
	const char *finish = st->ext->finish_reason;
	if (finish && !strcmp(finish, "length"))
		r->warning = AI_LENGTH_WARNING;
	else if (finish && !strcmp(finish, "content_filter"))
		r->warning = AI_FILTER_WARNING;
	if (!r->ok)
		r->retry_after_ms = ai_retry_after_ms(st->ext->x.headers, st->ext->http.status,
						      time(NULL));
	free(refusal);
	free(err);
	ai_reply_free(&plain);
}

static bool transport_failed(const struct http_response *resp)
{
	return resp->cancelled || resp->err || resp->too_large || resp->headers_too_large ||
	       resp->aborted || resp->timed_out || resp->curl_code;
}

static void on_response(void *ud, struct http_response *resp)
{
	struct ax_attempt *st = ud;
	struct ai_executor *ax = st->ax;
	struct exec_result *r = &st->res;
	uint64_t now = now_ms(ax->loop);
	st->xfer = NULL;
	struct ai_ext *e = st->ext;
	http_ext_fill(&e->http, resp);
	e->has_http = true;
	e->http.base.next = &e->ai.base;
	e->x.pub = &e->http.base;       /* the exchange, then the reply */
	json_decref(e->x.headers);
	e->x.headers = resp->headers;
	resp->headers = NULL;
	r->end_ms = resp->end_ms;
	uint64_t hold = ai_pace_ms(e->x.headers);
	if (hold) {
		pace_set(ax, st->base, now + hold, now);
		rearm(ax);
	}
	const struct buf *body = st->stream ? &st->raw : &resp->body;
	if (transport_failed(resp)) {
		http_classify(resp, NULL, 0, r);
		if (resp->too_large)
			fail(st, DR_CLASS_PERMANENT, "the reply is larger than %llu bytes",
			     (unsigned long long)(st->stream ? AI_MAX_STREAM_BYTES
							     : HTTP_DEFAULT_MAX_RESPONSE));
		else if (st->stream && st->sse.events && !resp->cancelled && !resp->timed_out)
			fail(st, DR_CLASS_TRANSIENT, "stream ended early: %s",
			     r->error ? r->error : "");
		if (st->stream) {
			take_reply(st, &st->sse.reply);
		}
	} else if (resp->status < 200 || resp->status > 299) {
		status_failure(st, body);
	} else {
		success(st, body);
	}
	report(st);
}

/* Sends st's request. Returns 0 (sent), -ETIME (its timeout ended while
 * it waited), -EINVAL (the client refused it) or -ENOMEM; when not sent,
 * st is untouched and the caller reports. */
static int send_request(struct ax_attempt *st, uint64_t now)
{
	uint64_t remain = 0;
	if (st->timeout_ms) {
		uint64_t used = now - st->started;
		remain = used < st->timeout_ms ? st->timeout_ms - used : 0;
		if (!remain)
			return -ETIME;
	}
	struct http_request rq = {
		.method = "POST", .url = st->url,
		.headers = (const char *const *)st->lines, .n_headers = st->n_lines,
		.body = st->body, .body_len = st->body_len, .timeout_ms = remain,
		.max_response_bytes = st->stream ? AI_MAX_STREAM_BYTES : 0,
		.discard_body = st->stream, .on_data = st->stream ? on_data : NULL,
		.on_done = on_response, .ud = st,
	};
	st->sse.on_delta = on_delta;
	st->sse.ud = st;
	int r = http_request_start(st->ax->client, &rq, &st->xfer);
	return r == -ENOMEM || r == -EINVAL ? r : r < 0 ? -EINVAL : 0;
}

/* Records why send_request() did not send. */
static void send_failed(struct ax_attempt *st, int r)
{
	if (r == -ETIME) {
		st->res.timed_out = true;
		fail(st, DR_CLASS_TRANSIENT, "timed out waiting for the rate limit to reset");
	} else if (r == -ENOMEM) {
		fail(st, DR_CLASS_RESOURCE, "out of memory");
	} else {
		fail(st, DR_CLASS_PERMANENT, "invalid request");
	}
}

static void on_tick(uv_timer_t *t)
{
	struct ai_executor *ax = t->data;
	struct ax_attempt *list = ax->parked, *keep = NULL, **kt = &keep;
	ax->parked = NULL;
	uint64_t now = now_ms(ax->loop);
	while (list) {
		struct ax_attempt *st = list;
		list = st->next;
		st->next = NULL;
		if (st->cancelled || st->park == PARK_FAILED) {
			report(st);
			continue;
		}
		int r = now >= deadline(st) ? -ETIME : 0;
		if (r == 0 && now >= pace_get(ax, st->base)) {
			st->park = PARK_NONE;
			if ((r = send_request(st, now)) == 0)
				continue;
		}
		if (r < 0) {
			send_failed(st, r);
			report(st);
			continue;
		}
		*kt = st;
		kt = &st->next;
	}
	*kt = ax->parked;   /* attempts parked by the reports above */
	ax->parked = keep;
	rearm(ax);
}

static int ax_start(struct executor *ex, struct exec_attempt *a)
{
	struct ai_executor *ax = (struct ai_executor *)ex;
	const struct dr_task *t = &a->wf->tasks[a->task];
	if (!t->spec)
		return -EINVAL;
	const struct dr_ai *ai = t->spec;
	const struct dr_task_opts *opts = t->opts ? t->opts : &a->wf->default_opts;
	struct ax_attempt *st = calloc(1, sizeof(*st));
	if (!st)
		return -ENOMEM;
	if (!(st->ext = ai_ext_new())) {
		free(st);
		return -ENOMEM;
	}
	st->res.ext = &st->ext->x;
	st->ax = ax;
	st->a = a;
	st->stream = ai->stream;
	st->json_mode = ai->response_format == DR_RESP_JSON;
	st->timeout_ms = opts->timeout_ms;
	st->started = now_ms(ax->loop);
	st->res.exit_code = -1;
	st->res.start_ms = wall_ms();
	int r = build(st, ai);
	if (r == -ENOMEM) {
		attempt_free(st);
		return r;
	}
	a->priv = st;
	if (r < 0) {
		park(st, PARK_FAILED);
		return 0;
	}
	if (pace_get(ax, st->base) > st->started) {
		park(st, PARK_PACED);
		return 0;
	}
	if ((r = send_request(st, st->started)) == -ENOMEM) {
		a->priv = NULL;
		attempt_free(st);
		return r;
	}
	if (r < 0) {
		send_failed(st, r);
		park(st, PARK_FAILED);
	}
	return 0;
}

static void ax_cancel(struct executor *ex, struct exec_attempt *a, bool hard)
{
	struct ai_executor *ax = (struct ai_executor *)ex;
	(void)hard;   /* a request stops at once either way */
	struct ax_attempt *st = a->priv;
	if (!st || st->cancelled)
		return;
	st->cancelled = true;
	if (st->xfer)
		http_request_cancel(st->xfer);
	else
		rearm(ax);   /* parked: reported from the loop */
}

static void on_tick_closed(uv_handle_t *h)
{
	free(h->data);
}

static void ax_destroy(struct executor *ex)
{
	struct ai_executor *ax = (struct ai_executor *)ex;
	if (!ax)
		return;
	while (ax->parked) {
		struct ax_attempt *st = ax->parked;
		ax->parked = st->next;
		st->a->priv = NULL;
		attempt_free(st);
	}
	while (ax->paces) {
		struct pace *p = ax->paces;
		ax->paces = p->next;
		free(p->base);
		free(p);
	}
	while (ax->tasks) {
		struct ai_tasks *w = ax->tasks;
		ax->tasks = w->next;
		for (uint32_t t = 0; t < w->n; t++)
			if (w->by_task[t]) {
				free(w->by_task[t]->data);
				free(w->by_task[t]);
			}
		free(w->by_task);
		free(w);
	}
	if (ax->own_client)
		http_client_free(ax->client);
	ax->client = NULL;
	uv_close((uv_handle_t *)&ax->tick, on_tick_closed);
}

static const struct executor_ops ai_ops = {
	.name = "ai",
	.start = ax_start,
	.cancel = ax_cancel,
	.destroy = ax_destroy,
};

struct executor *ai_executor_new(uv_loop_t *loop, struct http_client *client)
{
	struct ai_executor *ax = calloc(1, sizeof(*ax));
	if (!ax)
		return NULL;
	ax->base.ops = &ai_ops;
	ax->loop = loop;
	ax->client = client;
	if (!client) {
		if (http_client_new(loop, NULL, &ax->client) < 0) {
			free(ax);
			return NULL;
		}
		ax->own_client = true;
	}
	uv_timer_init(loop, &ax->tick);
	ax->tick.data = ax;
	return &ax->base;
}

void ai_executor_set_environ(struct executor *ex, char *const *environ)
{
	if (ex && ex->ops == &ai_ops)
		((struct ai_executor *)ex)->environ = environ;
}
