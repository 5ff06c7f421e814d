/* check.c: static checks of expressions; see check.h. Two passes over the
 * tokens: the first collects the names the expression binds itself (sorted,
 * so that each later lookup is a binary search), the second classifies
 * every other free name. `_ENV.x` and `_ENV["x"]` read the environment as
 * the bare name x does, and are checked as x is. */
#include "expr/check.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "expr/lex.h"

static const char *const known[] = {
	"variables", "env", "secrets", "run", "context", "tasks", "trigger", "json",
	"tojson", "fromjson", "contains", "startswith", "len", "string",
	"math", "table", "utf8", "tostring", "tonumber", "type", "pairs",
	"ipairs", "select", "next", "pcall", "error", "assert", "rawequal",
	"rawlen", "_ENV",
};

static const char *const condition_fields[] = {
	"status", "exitCode", "output", "json", "outputs", "error", "http",
	"usage", "attempts", "durationMs", "outputTruncated",
};

struct toks {
	const char *s;
	struct lex_token *v;
	size_t n;
};

static bool in_list(const char *const *list, size_t n, const char *s,
		    size_t len)
{
	for (size_t i = 0; i < n; i++)
		if (strlen(list[i]) == len && !memcmp(list[i], s, len))
			return true;
	return false;
}

static bool op(const struct toks *t, size_t i, const char *w)
{
	return i < t->n && t->v[i].kind == LEX_OP && lex_is(t->s, &t->v[i], w);
}

static bool kw(const struct toks *t, size_t i, const char *w)
{
	return i < t->n && t->v[i].kind == LEX_KEYWORD && lex_is(t->s, &t->v[i], w);
}

static bool is_name(const struct toks *t, size_t i)
{
	return i < t->n && t->v[i].kind == LEX_NAME;
}

static int tokenize(const char *s, size_t len, struct toks *t,
		    struct expr_error *err)
{
	struct lex lx;
	struct lex_token tok;
	size_t cap = 0;
	t->s = s;
	lex_init(&lx, s, len);
	for (;;) {
		int k = lex_next(&lx, &tok);
		if (k == LEX_EOF)
			return 0;
		if (k == LEX_ERROR)
			return expr_fail(err, -EINVAL, tok.off, "unfinished string "
					 "or comment");
		if (t->n == cap) {
			cap = cap ? cap * 2 : 32;
			struct lex_token *p = realloc(t->v, cap * sizeof(*p));
			if (!p)
				return expr_fail(err, -ENOMEM, 0, "out of memory");
			t->v = p;
		}
		t->v[t->n++] = tok;
	}
}

/* Pass 1: marks in bound[] the name tokens that the expression binds. */
static void mark_bound(const struct toks *t, bool *bound)
{
	for (size_t i = 0; i < t->n; i++) {
		if (kw(t, i, "function")) {
			size_t j = i + 1;
			while (j < t->n && !op(t, j, "("))
				j++;
			for (; j < t->n && !op(t, j, ")"); j++)
				if (is_name(t, j))
					bound[j] = true;
		} else if (kw(t, i, "local")) {
			size_t j = i + 1;
			if (kw(t, j, "function")) {
				if (is_name(t, j + 1))
					bound[j + 1] = true;
				continue;
			}
			while (is_name(t, j)) {
				bound[j++] = true;
				if (op(t, j, "<") && is_name(t, j + 1)
				    && op(t, j + 2, ">"))
					j += 3;      /* <const>, <close> */
				if (!op(t, j, ","))
					break;
				j++;
			}
		} else if (kw(t, i, "for")) {
			for (size_t j = i + 1; is_name(t, j); j += 2) {
				bound[j] = true;
				if (!op(t, j + 1, ","))
					break;
			}
		}
	}
}

struct bound {
	bool *at;          /* per token: a binding occurrence */
	size_t *list;      /* the binding tokens, sorted by name */
	size_t n;
};

static int name_cmp(const struct toks *t, size_t a, size_t b)
{
	const struct lex_token *x = &t->v[a], *y = &t->v[b];
	size_t n = x->len < y->len ? x->len : y->len;
	int r = memcmp(t->s + x->off, t->s + y->off, n);
	return r ? r : (x->len > y->len) - (x->len < y->len);
}

static int bound_cmp(const void *a, const void *b, void *ud)
{
	return name_cmp(ud, *(const size_t *)a, *(const size_t *)b);
}

static bool is_bound(const struct toks *t, const struct bound *b, size_t i)
{
	if (b->at[i])
		return true;
	size_t lo = 0, hi = b->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int r = name_cmp(t, i, b->list[mid]);
		if (!r)
			return true;
		if (r < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return false;
}

static int add_name(struct expr_refs *out, size_t *cap, int kind,
		    uint32_t off, uint32_t len, const char *name, size_t n)
{
	if (out->n == *cap) {
		size_t c = *cap ? *cap * 2 : 8;
		struct expr_name *p = realloc(out->v, c * sizeof(*p));
		if (!p)
			return -ENOMEM;
		out->v = p;
		*cap = c;
	}
	char *copy = arena_strndup(&out->arena, name, n);
	if (!copy)
		return -ENOMEM;
	out->v[out->n++] = (struct expr_name){(uint8_t)kind, off, len, copy};
	return 0;
}

/* At name token i (tasks or variables): adds the reference that follows,
 * if it is a literal one. Returns 1 when the key is not a literal. */
static int add_ref(const struct toks *t, size_t i, int kind,
		   struct expr_refs *out, size_t *cap)
{
	if (op(t, i + 1, ".") && is_name(t, i + 2)) {
		const struct lex_token *k = &t->v[i + 2];
		return add_name(out, cap, kind, k->off, k->len, t->s + k->off,
				k->len);
	}
	if (!op(t, i + 1, "["))
		return 0;
	if (i + 2 < t->n && t->v[i + 2].kind == LEX_STRING && op(t, i + 3, "]")) {
		const struct lex_token *k = &t->v[i + 2];
		char id[256];
		long n = lex_string_value(t->s, k, id, sizeof(id));
		if (n >= 0 && (size_t)n < sizeof(id))
			return add_name(out, cap, kind, k->off, k->len, id,
					(size_t)n);
	}
	return 1;
}

/* Is name token i a key in a table constructor ({ key = value })? */
static bool constructor_key(const struct toks *t, size_t i,
			    const char *brackets, size_t depth)
{
	return depth && brackets[depth - 1] == '{' && op(t, i + 1, "=")
	       && (op(t, i - 1, "{") || op(t, i - 1, ",") || op(t, i - 1, ";"));
}

static bool names(const char *s, size_t n, const char *w)
{
	return strlen(w) == n && !memcmp(s, w, n);
}

/* A free name s[0 .. n), at token j for what follows it (tasks.X,
 * variables.X), written at [off, off + len) of the source. */
static int classify_free(const struct toks *t, size_t j, const char *s, size_t n,
			 uint32_t off, uint32_t len, unsigned flags,
			 struct expr_refs *out, size_t *cap)
{
	if ((flags & EXPR_CHECK_SECRETS) && names(s, n, "secrets"))
		return add_ref(t, j, EXPR_NAME_SECRET, out, cap);
	if ((flags & EXPR_CHECK_CONTEXT) && names(s, n, "context")) {
		size_t before = out->n;
		int r = add_ref(t, j, EXPR_NAME_CONTEXT, out, cap);
		if (r >= 0 && out->n == before)
			r = add_name(out, cap, EXPR_NAME_CONTEXT, off, len, "", 0);
		return r;
	}
	if (names(s, n, "tasks") || names(s, n, "variables")) {
		bool tasks = names(s, n, "tasks");
		int r = add_ref(t, j, tasks ? EXPR_NAME_TASK : EXPR_NAME_VARIABLE, out, cap);
		if (r == 1 && tasks && out->dynamic_tasks == EXPR_NO_OFFSET)
			out->dynamic_tasks = off;
		return r;
	}
	bool field = in_list(condition_fields, sizeof(condition_fields)
			     / sizeof(condition_fields[0]), s, n);
	if (in_list(known, sizeof(known) / sizeof(known[0]), s, n)
	    || (field && (flags & EXPR_CHECK_CONDITION)))
		return 0;
	return add_name(out, cap, field ? EXPR_NAME_CONDITION_ONLY : EXPR_NAME_UNKNOWN,
			off, len, s, n);
}

/* At a free `_ENV` token i: `_ENV.x` and `_ENV["x"]` are the name x.
 * Returns what classify_free returns, or 0 for another use of _ENV. */
static int classify_env(const struct toks *t, size_t i, unsigned flags,
			struct expr_refs *out, size_t *cap)
{
	if (op(t, i + 1, ".") && is_name(t, i + 2)) {
		const struct lex_token *k = &t->v[i + 2];
		return classify_free(t, i + 2, t->s + k->off, k->len, k->off, k->len,
				     flags, out, cap);
	}
	if (op(t, i + 1, "[") && i + 2 < t->n && t->v[i + 2].kind == LEX_STRING
	    && op(t, i + 3, "]")) {
		const struct lex_token *k = &t->v[i + 2];
		char name[256];
		long n = lex_string_value(t->s, k, name, sizeof(name));
		if (n > 0 && (size_t)n < sizeof(name))
			return classify_free(t, i + 3, name, (size_t)n, k->off, k->len,
					     flags, out, cap);
	}
	return 0;
}

static int classify(const struct toks *t, const struct bound *bound,
		    unsigned flags,
		    struct expr_refs *out)
{
	size_t cap = 0, depth = 0;
	char brackets[256];
	int r = 0;
	for (size_t i = 0; i < t->n && r >= 0; i++) {
		const struct lex_token *k = &t->v[i];
		if (k->kind == LEX_OP) {
			char c = t->s[k->off];
			if ((c == '(' || c == '[' || c == '{') && k->len == 1) {
				if (depth < sizeof(brackets))
					brackets[depth] = c;
				depth++;
			} else if ((c == ')' || c == ']' || c == '}') && depth) {
				depth--;
			}
			continue;
		}
		if (k->kind != LEX_NAME)
			continue;
		if (i > 0 && (op(t, i - 1, ".") || op(t, i - 1, ":")
			      || op(t, i - 1, "::") || kw(t, i - 1, "goto")))
			continue;
		if (i > 0 && op(t, i - 1, "<") && op(t, i + 1, ">")
		    && (lex_is(t->s, k, "const") || lex_is(t->s, k, "close")))
			continue;          /* local x <const> */
		if (i > 0 && depth <= sizeof(brackets)
		    && constructor_key(t, i, brackets, depth))
			continue;
		if (is_bound(t, bound, i))
			continue;
		if (lex_is(t->s, k, "_ENV")) {
			r = classify_env(t, i, flags, out, &cap);
			continue;
		}
		r = classify_free(t, i, t->s + k->off, k->len, k->off, k->len, flags,
				  out, &cap);
	}
	return r < 0 ? r : 0;
}

int expr_check(struct expr_engine *e, const char *src, size_t len,
	       unsigned flags, struct expr_refs *out, struct expr_error *err)
{
	struct toks t = {src, NULL, 0};
	struct bound b = {NULL, NULL, 0};
	int r;
	memset(out, 0, sizeof(*out));
	out->dynamic_tasks = EXPR_NO_OFFSET;
	if (e && (r = expr_syntax_check(e, src, len, err)) < 0)
		return r;
	if ((r = tokenize(src, len, &t, err)) < 0)
		goto out;
	b.at = calloc(t.n ? t.n : 1, sizeof(*b.at));
	b.list = calloc(t.n ? t.n : 1, sizeof(*b.list));
	if (!b.at || !b.list) {
		r = expr_fail(err, -ENOMEM, 0, "out of memory");
		goto out;
	}
	mark_bound(&t, b.at);
	for (size_t i = 0; i < t.n; i++)
		if (b.at[i])
			b.list[b.n++] = i;
	qsort_r(b.list, b.n, sizeof(*b.list), bound_cmp, &t);
	if ((r = classify(&t, &b, flags, out)) < 0)
		expr_fail(err, r, 0, "out of memory");
out:
	free(b.at);
	free(b.list);
	free(t.v);
	return r;
}

void expr_refs_free(struct expr_refs *r)
{
	if (!r)
		return;
	free(r->v);
	arena_free(&r->arena);
	r->v = NULL;
	r->n = 0;
}
