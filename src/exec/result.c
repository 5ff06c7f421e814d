/* result.c: what every executor's result owns. */
#include "exec/executor.h"
#include "expr/redact.h"
#include "util/text.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void exec_result_free(struct exec_result *r)
{
	if (!r)
		return;
	free(r->error);
	r->error = NULL;
	buf_free(&r->out);
	buf_free(&r->err);
	buf_free(&r->err_tail);
	if (r->ext && r->ext->free)
		r->ext->free(r->ext);
	r->ext = NULL;
}

int exec_vfail(struct exec_result *r, enum dr_error_class c, const char *fmt, va_list ap)
{
	/* Formatted first: an argument may be the message it replaces. */
	char *m = buf_vstrf(fmt, ap);
	r->ok = false;
	r->error_class = (uint8_t)c;
	free(r->error);
	r->error = m;
	return m ? 0 : -ENOMEM;
}

int exec_fail(struct exec_result *r, enum dr_error_class c, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int e = exec_vfail(r, c, fmt, ap);
	va_end(ap);
	return e;
}

/* A URL, a header or an argument is a C string to curl or the kernel: a
 * NUL in it would silently end it there (a template rendering a variable
 * that holds one). Returns -EINVAL with *err, or 0. */
static int refuse_nul(const struct exec_attempt *a, const struct dr_text *t, int mode,
		      const struct buf *out, size_t from, char **err)
{
	static const char *const what[] = {
		[EXEC_RENDER_ARGV] = "an argument", [EXEC_RENDER_URL] = "a URL",
		[EXEC_RENDER_HEADER] = "a header",
	};
	if (mode != EXEC_RENDER_ARGV && mode != EXEC_RENDER_URL && mode != EXEC_RENDER_HEADER)
		return 0;
	if (out->len == from || !memchr(out->data + from, '\0', out->len - from))
		return 0;
	*err = buf_strf("%s:%u:%u: the rendered text holds a NUL character (\\0), "
			"which %s cannot hold", a->wf && a->wf->path ? a->wf->path : "?",
			t->line, t->col, what[mode]);
	return -EINVAL;
}

int exec_render(struct exec_attempt *a, const struct dr_text *t,
		int mode, struct buf *out, char **err)
{
	size_t from = out->len;
	int r;
	*err = NULL;
	if (!t->s)
		return 0;
	if (a->render) {
		r = a->render(a, t, (enum exec_render_mode)mode, out, err);
		return r < 0 ? r : refuse_nul(a, t, mode, out, from, err);
	}
	r = buf_add(out, t->s, t->len);
	if (r < 0)
		*err = strdup(r == -E2BIG ? "value too large" : "out of memory");
	return r < 0 ? r : refuse_nul(a, t, mode, out, from, err);
}

#define VALUE_JSON_DEPTH 64

static int value_fail(char **err, const char *msg)
{
	*err = strdup(msg);
	return *err ? -EINVAL : -ENOMEM;
}

static int value_json(struct exec_attempt *a, const struct dr_value *v, int depth,
		      json_t **out, char **err);

static int container_json(struct exec_attempt *a, const struct dr_value *v, int depth,
			  json_t *j, char **err)
{
	for (uint32_t i = 0; i < v->count; i++) {
		json_t *item = NULL;
		int r = value_json(a, &v->items[i], depth + 1, &item, err);
		if (r < 0)
			return r;
		if (v->kind == DR_VAL_LIST) {
			r = json_array_append_new(j, item);
		} else {
			const struct dr_text *k = &v->keys[i];
			char *key = strndup(k->s ? k->s : "", k->s ? k->len : 0);
			r = key ? json_object_set_new(j, key, item) : (json_decref(item), -1);
			free(key);
		}
		if (r < 0)
			return -ENOMEM;
	}
	return 0;
}

static int value_json(struct exec_attempt *a, const struct dr_value *v, int depth,
		      json_t **out, char **err)
{
	*out = NULL;
	if (depth > VALUE_JSON_DEPTH)
		return value_fail(err, "nested too deep");
	json_t *j = NULL;
	int r = 0;
	switch (v->kind) {
	case DR_VAL_NULL: j = json_null(); break;
	case DR_VAL_BOOL: j = json_boolean(v->as.b); break;
	case DR_VAL_INT: j = json_integer((json_int_t)v->as.i); break;
	case DR_VAL_REAL:
		if (!(j = json_real(v->as.d)))
			return value_fail(err, "a number is not finite");
		break;
	case DR_VAL_STRING: {
		struct buf s = BUF_INIT;
		if ((r = exec_render(a, &v->text, EXEC_RENDER_PLAIN, &s, err)) == 0 &&
		    !(j = json_stringn(s.data ? s.data : "", s.len)))
			r = value_fail(err, "a string is not valid UTF-8");
		buf_free(&s);
		if (r < 0)
			return r;
		break;
	}
	case DR_VAL_MAP: case DR_VAL_LIST:
		j = v->kind == DR_VAL_MAP ? json_object() : json_array();
		if (j && (r = container_json(a, v, depth, j, err)) < 0) {
			json_decref(j);
			return r;
		}
		break;
	default:
		return value_fail(err, "unknown value kind");
	}
	if (!j)
		return -ENOMEM;
	*out = j;
	return 0;
}

int exec_value_json(struct exec_attempt *a, const struct dr_value *v, json_t **out, char **err)
{
	*err = NULL;
	return value_json(a, v, 0, out, err);
}

int exec_body_snippet(const struct redactor *red, const char *body, size_t len,
		      struct buf *out)
{
	struct buf masked = BUF_INIT;
	size_t scan = len < EXEC_SNIPPET_SCAN ? len : EXEC_SNIPPET_SCAN;
	const char *m = body;
	size_t mlen = scan;
	if (red && scan) {
		if (redact_slice(red, body, len, 0, scan, 0, &masked) < 0) {
			buf_free(&masked);
			return 0;
		}
		m = masked.data ? masked.data : "";
		mlen = masked.len;
	}
	size_t n = mlen < EXEC_SNIPPET_MAX ? mlen : text_utf8_whole(m, EXEC_SNIPPET_MAX);
	size_t from = out->len;
	int r = n ? buf_add(out, m, n) : 0;
	for (size_t i = from; r == 0 && i < out->len; i++)
		if ((unsigned char)out->data[i] < 0x20 || out->data[i] == 0x7f)
			out->data[i] = ' ';
	if (r == 0 && (n < mlen || scan < len))
		r = buf_adds(out, "...");
	buf_free(&masked);
	return r;
}
