/* flow_json.c: a final task's result and the run's variables as JSON, for
 * the state store: recorded with the attempt that made it, already masked,
 * so that a resumed or rerun run seeds it back and downstream templates
 * read what they would have read.
 *
 * Invariant: only a kept result (flow->keep) is written or seeded; bytes
 * that are not valid UTF-8 are kept as {"base64": "..."} and read back
 * byte for byte.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "exec/executor.h"
#include "sched/flow_int.h"
#include "util/text.h"

static json_t *bytes_json(const char *p, size_t n)
{
	json_t *j = json_stringn(p ? p : "", n);
	if (j || !p)
		return j;
	struct buf b = BUF_INIT;
	if (text_base64(&b, p, n) < 0) {
		buf_free(&b);
		return NULL;
	}
	j = json_pack("{s:s#}", "base64", b.data ? b.data : "", (int)b.len);
	buf_free(&b);
	return j;
}

/* The bytes of a value written by bytes_json, malloc'd (NUL added), or
 * NULL: not such a value, or out of memory. */
static char *json_bytes(const json_t *j, size_t *n)
{
	if (json_is_string(j)) {
		*n = json_string_length(j);
		char *s = malloc(*n + 1);
		if (s) {
			memcpy(s, json_string_value(j), *n);
			s[*n] = '\0';
		}
		return s;
	}
	const json_t *b = json_object_get(j, "base64");
	if (!json_is_string(b))
		return NULL;
	size_t len = json_string_length(b);
	unsigned char *s = malloc(len / 4 * 3 + 4);
	if (!s)
		return NULL;
	int got = len ? EVP_DecodeBlock(s, (const unsigned char *)json_string_value(b), (int)len) : 0;
	if (got < 0) {
		free(s);
		return NULL;
	}
	/* EVP_DecodeBlock counts the padding as zero bytes. */
	const char *t = json_string_value(b);
	while (len && t[len - 1] == '=' && got > 0) {
		len--;
		got--;
	}
	s[got] = '\0';
	*n = (size_t)got;
	return (char *)s;
}

static json_t *kv_json(const struct expr_kv *v, size_t n)
{
	json_t *o = json_object();
	for (size_t i = 0; o && i < n; i++) {
		json_t *x = bytes_json(v[i].value, v[i].value_len);
		if (!x || json_object_set_new(o, v[i].key, x) < 0) {
			json_decref(o);
			return NULL;
		}
	}
	return o;
}

bool flow_keeps(const struct flow *f, uint32_t t)
{
	return f && f->keep[t];
}

int flow_result_json(const struct flow *f, uint32_t t, struct buf *out)
{
	const struct fres *r = f ? f->res[t] : NULL;
	if (!r)
		return 0;
	const struct expr_result *e = &r->er;
	json_t *o = json_object();
	int ret = -ENOMEM;
	if (!o)
		return ret;
	json_t *x;
	if (json_object_set_new(o, "status", json_integer(e->status)) < 0 ||
	    json_object_set_new(o, "attempts", json_integer(e->attempts)) < 0 ||
	    json_object_set_new(o, "durationMs", json_integer((json_int_t)e->duration_ms)) < 0)
		goto out;
	if (e->exit_code >= 0 && json_object_set_new(o, "exitCode", json_integer(e->exit_code)) < 0)
		goto out;
	if (e->output && (!(x = bytes_json(e->output, e->output_len)) ||
			  json_object_set_new(o, "output", x) < 0))
		goto out;
	if (e->output_truncated && json_object_set_new(o, "outputTruncated", json_true()) < 0)
		goto out;
	if (e->n_outputs && (!(x = kv_json(e->outputs, e->n_outputs)) ||
			     json_object_set_new(o, "outputs", x) < 0))
		goto out;
	if (e->http_status && json_object_set_new(o, "httpStatus", json_integer(e->http_status)) < 0)
		goto out;
	if (e->n_headers && (!(x = kv_json(e->headers, e->n_headers)) ||
			     json_object_set_new(o, "headers", x) < 0))
		goto out;
	if (e->prompt_tokens >= 0 &&
	    json_object_set_new(o, "promptTokens", json_integer(e->prompt_tokens)) < 0)
		goto out;
	if (e->completion_tokens >= 0 &&
	    json_object_set_new(o, "completionTokens", json_integer(e->completion_tokens)) < 0)
		goto out;
	if (e->error_class && json_object_set_new(o, "errorClass", json_string(e->error_class)) < 0)
		goto out;
	if (e->error_message && (!(x = bytes_json(e->error_message, strlen(e->error_message))) ||
				 json_object_set_new(o, "error", x) < 0))
		goto out;
	char *text = json_dumps(o, JSON_COMPACT);
	if (text) {
		ret = buf_adds(out, text);
		free(text);
	}
out:
	json_decref(o);
	return ret;
}

/* Fills an expr_kv array in arena from a JSON object written by kv_json. */
static int kv_seed(struct arena *a, const json_t *o, struct expr_kv **out, size_t *n)
{
	*n = 0;
	if (!json_is_object(o))
		return 0;
	size_t cap = json_object_size(o);
	struct expr_kv *v = arena_calloc(a, (cap ? cap : 1) * sizeof(*v));
	if (!v)
		return -ENOMEM;
	const char *k;
	json_t *x;
	json_object_foreach((json_t *)o, k, x) {
		size_t len = 0;
		char *b = json_bytes(x, &len);
		if (!b)
			continue;
		v[*n].key = arena_strdup(a, k);
		v[*n].value = arena_strndup(a, b, len);
		v[*n].value_len = len;
		free(b);
		if (!v[*n].key || !v[*n].value)
			return -ENOMEM;
		++*n;
	}
	*out = v;
	return 0;
}

int flow_seed(struct flow *f, uint32_t t, const char *json, size_t len)
{
	if (!f || !f->keep[t] || !json)
		return 0;
	json_error_t je;
	json_t *o = json_loadb(json, len, 0, &je);
	if (!json_is_object(o)) {
		json_decref(o);
		return -EINVAL;
	}
	flow_fres_free(f->res[t]);
	struct fres *fr = f->res[t] = calloc(1, sizeof(*fr));
	int r = -ENOMEM;
	if (!fr)
		goto out;
	expr_result_init(&fr->er);
	struct expr_result *e = &fr->er;
	e->status = (int)json_integer_value(json_object_get(o, "status"));
	e->attempts = (uint32_t)json_integer_value(json_object_get(o, "attempts"));
	e->duration_ms = (uint64_t)json_integer_value(json_object_get(o, "durationMs"));
	json_t *x;
	if ((x = json_object_get(o, "exitCode")))
		e->exit_code = (int)json_integer_value(x);
	if ((x = json_object_get(o, "output"))) {
		if (!(fr->output = json_bytes(x, &e->output_len)))
			goto out;
		e->output = fr->output;
	}
	e->output_truncated = json_is_true(json_object_get(o, "outputTruncated"));
	struct expr_kv *kv = NULL;
	size_t n = 0;
	if (kv_seed(&fr->outs.arena, json_object_get(o, "outputs"), &kv, &n) < 0)
		goto out;
	fr->outs.v = kv;
	fr->outs.n = n;
	e->outputs = kv;
	e->n_outputs = n;
	e->http_status = (int)json_integer_value(json_object_get(o, "httpStatus"));
	if (kv_seed(&fr->outs.arena, json_object_get(o, "headers"), &kv, &n) < 0)
		goto out;
	e->headers = kv;
	e->n_headers = n;
	if ((x = json_object_get(o, "promptTokens")))
		e->prompt_tokens = json_integer_value(x);
	if ((x = json_object_get(o, "completionTokens")))
		e->completion_tokens = json_integer_value(x);
	const char *cls = json_string_value(json_object_get(o, "errorClass"));
	for (int c = DR_CLASS_TRANSIENT; cls && c <= DR_CLASS_RESOURCE; c++)
		if (!strcmp(cls, dr_class_name((enum dr_error_class)c)))
			e->error_class = dr_class_name((enum dr_error_class)c);
	if ((x = json_object_get(o, "error"))) {
		size_t el;
		if (!(fr->error = json_bytes(x, &el)))
			goto out;
		e->error_message = fr->error;
	}
	r = 0;
out:
	json_decref(o);
	return r;
}

/* Copies a variable's text masked (exec_value_json's render callback). */
static int mask_render(struct exec_attempt *a, const struct dr_text *x,
		       enum exec_render_mode mode, struct buf *out, char **err)
{
	(void)mode;
	(void)err;
	return flow_redact(a->owner, x->s ? x->s : "", x->len, out);
}

int flow_vars_json(const struct flow *f, const struct dagrun_workflow *wf, struct buf *out)
{
	const struct dr_value *v = f && f->vars ? f->vars : wf->variables;
	if (!v)
		return buf_adds(out, "{}");
	struct exec_attempt a = {.wf = wf, .render = mask_render, .owner = (void *)f};
	json_t *j = NULL;
	char *err = NULL;
	int r = exec_value_json(&a, v, &j, &err);
	free(err);
	if (r < 0)
		return r;
	char *text = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	if (!text)
		return -ENOMEM;
	r = buf_adds(out, text);
	free(text);
	return r;
}
