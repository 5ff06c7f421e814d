/* template.c: parsing and rendering `{{ }}` templates; see template.h. */
#include "expr/template.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "expr/lex.h"
#include "expr/shell.h"

bool tpl_has_template(const char *s, size_t len)
{
	return len >= 2 && memmem(s, len, "{{", 2) != NULL;
}

static int add_seg(struct tpl *t, size_t *cap, int kind, size_t off,
		   size_t len)
{
	if (t->n == *cap) {
		size_t n = *cap ? *cap * 2 : 4;
		struct tpl_seg *p = realloc(t->segs, n * sizeof(*p));
		if (!p)
			return -ENOMEM;
		t->segs = p;
		*cap = n;
	}
	t->segs[t->n++] = (struct tpl_seg){(uint8_t)kind, (uint32_t)off,
					   (uint32_t)len, 0};
	if (kind == TPL_EXPR)
		t->n_exprs++;
	return 0;
}

/* From `start` (just past a `{{`), the offset of the `}}` that ends the
 * expression, or 0 when there is none. Braces of table constructors nest;
 * strings and comments are skipped whole. */
static size_t find_end(const char *s, size_t len, size_t start)
{
	struct lex lx;
	struct lex_token tok;
	unsigned depth = 0;
	lex_init(&lx, s + start, len - start);
	for (;;) {
		int k = lex_next(&lx, &tok);
		if (k == LEX_EOF || k == LEX_ERROR)
			return 0;
		if (k != LEX_OP)
			continue;
		char c = s[start + tok.off];
		if (c == '{') {
			depth++;
		} else if (c == '}') {
			if (depth == 0 && start + tok.off + 1 < len
			    && s[start + tok.off + 1] == '}')
				return start + tok.off;
			if (depth)
				depth--;
		}
	}
}

static bool blank(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] != ' ' && s[i] != '\t' && s[i] != '\n' && s[i] != '\r')
			return false;
	return true;
}

int tpl_parse(const char *s, size_t len, struct tpl *out,
	      struct expr_error *err)
{
	size_t cap = 0, p = 0;
	int r = 0;
	memset(out, 0, sizeof(*out));
	out->src = s;
	out->len = len;
	if (len > UINT32_MAX)
		return expr_fail(err, -E2BIG, 0, "template too long");
	while (p < len) {
		const char *open = memmem(s + p, len - p, "{{", 2);
		size_t o = open ? (size_t)(open - s) : len;
		if (o > p && (r = add_seg(out, &cap, TPL_TEXT, p, o - p)) < 0)
			goto nomem;
		if (!open)
			break;
		size_t end = find_end(s, len, o + 2);
		if (!end)
			return expr_fail(err, -EINVAL, (uint32_t)o, "'{{' without "
					 "a matching '}}'");
		if (blank(s + o + 2, end - o - 2))
			return expr_fail(err, -EINVAL, (uint32_t)o,
					 "empty template expression '{{ }}'");
		if ((r = add_seg(out, &cap, TPL_EXPR, o + 2, end - o - 2)) < 0)
			goto nomem;
		p = end + 2;
	}
	return 0;
nomem:
	return expr_fail(err, r, 0, "out of memory");
}

int tpl_compile(struct tpl *t, struct expr_engine *e, struct expr_error *err)
{
	for (size_t i = 0; i < t->n; i++) {
		struct tpl_seg *g = &t->segs[i];
		if (g->kind != TPL_EXPR || g->id)
			continue;
		int r = expr_compile(e, t->src + g->off, g->len, &g->id, err);
		if (r < 0) {
			if (err)
				err->offset = err->offset == EXPR_NO_OFFSET
					      ? g->off - 2 : g->off + err->offset;
			return r;
		}
	}
	return 0;
}

/* The error for a value the shell text cannot take at `at`: the one
 * message of the run (tpl_render) and of validation (tpl_check_shell). */
static int refused(struct expr_error *err, uint32_t at, const char *why)
{
	return expr_fail(err, -EINVAL, at, "cannot substitute a value into the "
			 "shell text here: %s; pass it through env: and use "
			 "\"$NAME\" instead", why);
}

static int shell_text_error(struct expr_error *err, uint32_t at, const char *why)
{
	return expr_fail(err, -EINVAL, at, "cannot substitute into the shell "
			 "text: %s", why);
}

/* Renders one expression segment under the mode's rules. */
static int render_expr(const struct tpl *t, const struct tpl_seg *g,
		       struct expr_engine *e, const struct expr_scope *sc,
		       enum tpl_mode mode, struct sh *m, struct buf *val,
		       struct buf *out, struct expr_error *err)
{
	uint32_t at = g->off - 2;
	int r;
	(void)t;
	buf_reset(val);
	if (mode == TPL_PLAIN)
		val = out;
	if ((r = expr_eval_text(e, g->id, sc, val, err)) < 0) {
		if (err)
			err->offset = at;
		return r;
	}
	if (mode == TPL_PLAIN)
		return 0;
	if (mode == TPL_ARGV) {
		if (val->len && memchr(val->data, '\0', val->len))
			return expr_fail(err, -EINVAL, at, "the value contains a "
					 "NUL byte, which an argument cannot hold");
		return buf_add(out, val->data ? val->data : "", val->len) < 0
		       ? expr_fail(err, -E2BIG, at, "rendered text too large") : 0;
	}
	const char *why;
	r = sh_substitute(m, val->data ? val->data : "", val->len, out, &why);
	if (r == -EINVAL)
		return refused(err, at, why);
	if (r < 0)
		return expr_fail(err, r, at, "rendered text too large");
	return 0;
}

int tpl_render(const struct tpl *t, struct expr_engine *e,
	       const struct expr_scope *sc, enum tpl_mode mode,
	       struct buf *out, struct expr_error *err)
{
	size_t len0 = out->len;
	struct buf val = BUF_INIT;
	struct sh *m = NULL;
	int r = 0;
	if (mode == TPL_SHELL) {
		if (!(m = malloc(sizeof(*m)))) {
			r = expr_fail(err, -ENOMEM, 0, "out of memory");
			goto out;
		}
		sh_init(m);
	}
	for (size_t i = 0; i < t->n && r == 0; i++) {
		const struct tpl_seg *g = &t->segs[i];
		if (g->kind == TPL_EXPR) {
			r = render_expr(t, g, e, sc, mode, m, &val, out, err);
			continue;
		}
		const char *text = t->src + g->off;
		if ((r = buf_add(out, text, g->len)) < 0) {
			r = expr_fail(err, r, g->off, "rendered text too large");
		} else if (m && sh_feed(m, text, g->len, false) < 0) {
			r = shell_text_error(err, g->off, m->error);
		}
	}
out:
	if (r < 0) {
		out->len = len0;
		if (out->data)
			out->data[len0] = '\0';
	}
	buf_free(&val);
	free(m);
	return r;
}

int tpl_check_shell(const struct tpl *t, struct expr_error *err)
{
	struct sh *m = malloc(sizeof(*m));
	struct buf scratch = BUF_INIT;
	int r = 0;
	if (!m)
		return expr_fail(err, -ENOMEM, 0, "out of memory");
	sh_init(m);
	for (size_t i = 0; i < t->n && r == 0; i++) {
		const struct tpl_seg *g = &t->segs[i];
		if (g->kind == TPL_TEXT) {
			if (sh_feed(m, t->src + g->off, g->len, false) < 0)
				r = shell_text_error(err, g->off, m->error);
			continue;
		}
		/* A placeholder value: a context the run refuses, it refuses
		 * for every value; what it refuses for some values only (a NUL,
		 * a newline in a comment, a line that ends a here-document) is
		 * left to the run. One control byte: quoted like any byte, it
		 * is no newline, tab or quote and no here-document's
		 * delimiter, and it makes the line a value's line, as a real
		 * value does. */
		const char *why;
		buf_reset(&scratch);
		int s = sh_substitute(m, "\x01", 1, &scratch, &why);
		if (s == -EINVAL)
			r = refused(err, g->off - 2, why);
		else if (s < 0)
			r = expr_fail(err, s, g->off - 2, "out of memory");
	}
	buf_free(&scratch);
	free(m);
	return r;
}

void tpl_free(struct tpl *t)
{
	if (!t)
		return;
	free(t->segs);
	t->segs = NULL;
	t->n = t->n_exprs = 0;
}
