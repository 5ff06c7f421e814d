/* ai_request.c: building an ai attempt's request, once, in start(): the
 * rendered model, system and prompt (a promptFile read on the task's first
 * attempt), the context (rendered, cut at maxContextBytes, appended unless
 * a template reads it), the base URL, the key and its header, the JSON
 * body, and the prompt's hash for the result's extension. See ai.c for
 * what is kept per task.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <openssl/evp.h>

#include "exec/ai_int.h"
#include "expr/check.h"
#include "expr/template.h"
#include "expr/value.h"
#include "util/env.h"
#include "util/file.h"
#include "util/url.h"

/* ---- building the request --------------------------------------------------- */

/* Renders t, the text of file (NULL: of the workflow); a template error
 * fails the attempt (permanent) with "WHAT: FILE:LINE:COL: ERROR", where
 * FILE is file (the render callback names the workflow's file). Returns
 * 0, -ENOMEM, or -EINVAL (failed). */
static int render_in(struct ax_attempt *st, const struct dr_text *t, enum exec_render_mode mode,
		     struct buf *out, const char *what, const char *file)
{
	char *err = NULL;
	int r = exec_render(st->a, t, (int)mode, out, &err);
	if (r == 0 || r == -ENOMEM) {
		free(err);
		return r;
	}
	/* The callback names the workflow's file; t is file's text. */
	const char *wf = st->a->wf->path, *at = err;
	size_t n = wf ? strlen(wf) : 0;
	if (file && at && n && !strncmp(at, wf, n) && at[n] == ':')
		at += n;
	else
		file = "";
	ax_fail(st, DR_CLASS_PERMANENT, "%s: %s%s", what, file, at ? at : strerror(-r));
	free(err);
	return -EINVAL;
}

/* Renders t, a string of the workflow; a template error fails the attempt
 * with "WHAT: ERROR". Returns 0, -ENOMEM or -EINVAL. */
static int render(struct ax_attempt *st, const struct dr_text *t, enum exec_render_mode mode,
		  struct buf *out, const char *what)
{
	return render_in(st, t, mode, out, what, NULL);
}

/* v as JSON (see exec_value_json); a failure fails the attempt. */
static int to_json(struct ax_attempt *st, const struct dr_value *v, json_t **out,
		   const char *what)
{
	char *err = NULL;
	int r = exec_value_json(st->a, v, out, &err);
	if (r == -EINVAL)
		ax_fail(st, DR_CLASS_PERMANENT, "%s: %s", what, err ? err : "invalid value");
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

int ai_prompt_file_read(const struct dagrun_workflow *wf, const struct dr_ai *ai,
			char **path, char **data, size_t *len, char **err)
{
	char *why = NULL;
	*data = *err = NULL;
	*len = 0;
	if (!(*path = file_join(wf->dir, ai->prompt_file.s)))
		return -ENOMEM;
	int r = file_read_regular(*path, AI_PROMPT_FILE_MAX, data, len, &why);
	if (r < 0 && r != -ENOMEM && !(*err = buf_strf("promptFile '%s': %s",
						       ai->prompt_file.s, why)))
		r = -ENOMEM;
	free(why);
	if (r < 0) {
		free(*path);
		*path = NULL;
	}
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
		ax_fail(st, DR_CLASS_PERMANENT, "the task has neither prompt nor promptFile");
		return -EINVAL;
	}
	struct ai_task *k = calloc(1, sizeof(*k));
	if (!k)
		return -ENOMEM;
	k->prompt = &ai->prompt;
	if (!ai->prompt.s) {
		size_t len = 0;
		char *err = NULL;
		int r = ai_prompt_file_read(a->wf, ai, &k->path, &k->data, &len, &err);
		if (r < 0) {
			free(k);
			/* where and what validation says (FILE:LINE:COL of the key) */
			if (r != -ENOMEM)
				ax_fail(st, DR_CLASS_PERMANENT, "%s:%u:%u: %s", a->wf->path,
					ai->prompt_file.line, ai->prompt_file.col, err);
			free(err);
			return r == -ENOMEM ? r : -EINVAL;
		}
		k->file = (struct dr_text){k->data, (uint32_t)len, 1, 1};
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
		const char *env = env_get(st->ax->environ, AI_BASE_URL_ENV);
		r = buf_adds(&b, env && *env ? env : AI_DEFAULT_BASE_URL);
	}
	while (r == 0 && b.len && b.data[b.len - 1] == '/')
		b.data[--b.len] = '\0';
	CURLU *u = r == 0 ? curl_url() : NULL;
	char *host = NULL;
	if (r == 0 && !u)
		r = -ENOMEM;
	if (r < 0)
		goto out;
	CURLUcode uc = curl_url_set(u, CURLUPART_URL, b.data ? b.data : "", 0);
	if (uc == CURLUE_OUT_OF_MEMORY) {
		r = -ENOMEM;
	} else if (uc != CURLUE_OK || !url_is_http(b.data) ||
		   curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK) {
		ax_fail(st, DR_CLASS_PERMANENT, "baseUrl: not an http(s) URL%s",
		     ai->base_url.s ? "" : " in $" AI_BASE_URL_ENV);
		r = -EINVAL;
	} else {
		*local = local_host(host);
		if (!(st->base = buf_steal(&b)) ||
		    !(st->url = buf_strf("%s/chat/completions", st->base)))
			r = -ENOMEM;
	}
out:
	curl_free(host);
	curl_url_cleanup(u);
	buf_free(&b);
	return r;
}

/* The key and the header lines. */
static int headers(struct ax_attempt *st, const struct dr_ai *ai, bool local)
{
	const char *name = ai_api_key_env(ai);
	const char *key = env_get(st->ax->environ, name);
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
		ax_fail(st, DR_CLASS_PERMANENT, "no API key: the environment variable %s "
		     "(apiKeyEnv) is not set, and the base URL is not local", name);
		return -EINVAL;
	}
	if (strpbrk(key, "\r\n")) {
		ax_fail(st, DR_CLASS_PERMANENT, "the API key in %s contains a line break", name);
		return -EINVAL;
	}
	if (!(st->key = strdup(key)) ||
	    !(st->lines[st->n_lines] = buf_strf("Authorization: Bearer %s", key)))
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
		snprintf(what, sizeof(what), "promptFile '%.200s'", ai->prompt_file.s);
		r = render_in(st, k->prompt, EXEC_RENDER_PLAIN, user, what, k->path);
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
int ax_build(struct ax_attempt *st, const struct dr_ai *ai)
{
	struct buf model = BUF_INIT, sys = BUF_INIT, user = BUF_INIT, sent = BUF_INIT;
	struct rctx cx = {0};
	bool local = false;
	int r;
	if ((r = render(st, &ai->model, EXEC_RENDER_PLAIN, &model, "model")) < 0)
		goto out;
	if (!model.len) {
		ax_fail(st, DR_CLASS_PERMANENT, "model: empty after rendering");
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

/* ---- canonical inputs (kind.inputs) -------------------------------------------- */

static int put_str(json_t *o, const char *k, const struct buf *b)
{
	json_t *v = json_stringn(b->data ? b->data : "", b->len);
	return v && json_object_set_new(o, k, v) == 0 ? 0 : -ENOMEM;
}

static int put_params(json_t *o, const struct dr_ai *ai, const struct rctx *cx)
{
	json_t *c = cx->n ? json_object() : NULL;
	for (size_t i = 0; c && i < cx->n; i++)
		if (json_object_set_new(c, cx->kv[i].key,
					json_stringn(cx->kv[i].value, cx->kv[i].value_len)) < 0) {
			json_decref(c);
			return -ENOMEM;
		}
	if ((cx->n && (!c || json_object_set_new(o, "context", c) < 0)) ||
	    (ai->has_temperature &&
	     json_object_set_new(o, "temperature", json_real(ai->temperature)) < 0) ||
	    (ai->max_tokens &&
	     json_object_set_new(o, "maxTokens", json_integer(ai->max_tokens)) < 0) ||
	    (ai->response_format == DR_RESP_JSON &&
	     json_object_set_new(o, "responseFormat", json_string("json")) < 0) ||
	    (ai->stream && json_object_set_new(o, "stream", json_true()) < 0))
		return -ENOMEM;
	return 0;
}

int ai_inputs(struct exec_attempt *a, json_t *o, char **err)
{
	const struct dr_ai *ai = a->wf->tasks[a->task].spec;
	struct ax_attempt st;
	memset(&st, 0, sizeof(st));
	st.a = a;
	st.res.exit_code = -1;
	struct buf model = BUF_INIT, sys = BUF_INIT, user = BUF_INIT, sent = BUF_INIT;
	struct rctx cx = {0};
	char *path = NULL, *data = NULL;
	size_t len = 0;
	struct dr_text file;
	const struct dr_text *prompt = &ai->prompt;
	int r;
	*err = NULL;
	if ((r = render(&st, &ai->model, EXEC_RENDER_PLAIN, &model, "model")) < 0 ||
	    (r = render_context(&st, ai, &cx)) < 0)
		goto out;
	if (!ai->prompt.s && ai->prompt_file.s) {
		if ((r = ai_prompt_file_read(a->wf, ai, &path, &data, &len, err)) < 0) {
			r = r == -ENOMEM ? r : -EINVAL;
			goto out;
		}
		file = (struct dr_text){data, (uint32_t)len, 1, 1};
		prompt = &file;
	}
	a->context = cx.kv;
	a->n_context = cx.n;
	if (ai->system.s)
		r = render(&st, &ai->system, EXEC_RENDER_PLAIN, &sys, "system");
	if (r == 0 && prompt->s)
		r = render_in(&st, prompt, EXEC_RENDER_PLAIN, &user, path ? "promptFile" : "prompt",
			      path);
	a->context = NULL;
	a->n_context = 0;
	if (r == 0 && cx.n && !uses_context(&ai->system) && !uses_context(prompt))
		r = append_context(&user, &cx);
	if (r == 0)
		r = ai_utf8_clean(&sent, user.data ? user.data : "", user.len);
	if (r == 0)
		r = put_str(o, "model", &model);
	if (r == 0 && ai->system.s)
		r = put_str(o, "system", &sys);
	if (r == 0)
		r = put_str(o, "prompt", &sent);
	if (r == 0)
		r = put_params(o, ai, &cx);
out:
	if (r == -EINVAL && !*err)
		*err = strdup(st.res.error ? st.res.error : "invalid input");
	exec_result_free(&st.res);
	rctx_free(&cx);
	free(path);
	free(data);
	buf_free(&model);
	buf_free(&sys);
	buf_free(&user);
	buf_free(&sent);
	return r;
}
