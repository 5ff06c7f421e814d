/* value.c: struct expr_result defaults and the $DAGRUN_OUTPUT parser; see
 * value.h. The parser works line by line over the file's bytes; keys and
 * values are copied into the result's arena. */
#include "expr/value.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dagrun.h"
#include "expr/expr.h"
#include "util/buf.h"

void expr_result_init(struct expr_result *r)
{
	memset(r, 0, sizeof(*r));
	r->status = DAGRUN_PENDING;
	r->exit_code = -1;
	r->prompt_tokens = r->completion_tokens = -1;
}

struct line {
	const char *s;
	size_t len;      /* without "\n" and a "\r" before it */
};

/* The line starting at *pos; advances *pos past its newline. */
static bool next_line(const char *d, size_t len, size_t *pos, struct line *l)
{
	if (*pos >= len)
		return false;
	const char *nl = memchr(d + *pos, '\n', len - *pos);
	size_t end = nl ? (size_t)(nl - d) : len;
	l->s = d + *pos;
	l->len = end - *pos;
	if (l->len && l->s[l->len - 1] == '\r')
		l->len--;
	*pos = nl ? end + 1 : len;
	return true;
}

static bool valid_key(const char *k, size_t n)
{
	if (!n)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = k[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
		      || (c >= '0' && c <= '9') || c == '_' || c == '-'))
			return false;
	}
	return true;
}

static int set(struct expr_outputs *o, size_t *cap, const char *k, size_t kn,
	       const char *v, size_t vn)
{
	char *key = arena_strndup(&o->arena, k, kn);
	char *val = arena_strndup(&o->arena, v, vn);
	if (!key || !val)
		return -ENOMEM;
	for (size_t i = 0; i < o->n; i++) {
		if (!strcmp(o->v[i].key, key)) {
			o->v[i].value = val;
			o->v[i].value_len = vn;
			return 0;
		}
	}
	if (o->n >= EXPR_OUTPUTS_MAX_KEYS)
		return -E2BIG;
	if (o->n == *cap) {
		size_t c = *cap ? *cap * 2 : 16;
		struct expr_kv *p = arena_alloc(&o->arena, c * sizeof(*p));
		if (!p)
			return -ENOMEM;
		if (o->n)
			memcpy(p, o->v, o->n * sizeof(*p));
		o->v = p;
		*cap = c;
	}
	o->v[o->n++] = (struct expr_kv){key, val, vn};
	return 0;
}

/* Reads the body of `key<<DELIM` up to the line DELIM into b. */
static int heredoc(const char *d, size_t len, size_t *pos, unsigned *lineno,
		   struct line delim, struct buf *b)
{
	struct line l;
	bool first = true;
	while (next_line(d, len, pos, &l)) {
		(*lineno)++;
		if (l.len == delim.len && !memcmp(l.s, delim.s, l.len))
			return 0;
		int r = 0;
		if (!first)
			r = buf_addc(b, '\n');
		if (r == 0)
			r = buf_add(b, l.s, l.len);
		if (r < 0)
			return r;
		first = false;
	}
	return -ENOENT;
}

int expr_outputs_parse(const char *data, size_t len, struct expr_outputs *out,
		       struct expr_error *err)
{
	size_t pos = 0, cap = 0;
	unsigned lineno = 0;
	struct line l;
	struct buf b = BUF_INIT;
	int r = 0;
	memset(out, 0, sizeof(*out));
	if (len > EXPR_OUTPUTS_MAX_BYTES)
		return expr_fail(err, -E2BIG, 0, "$DAGRUN_OUTPUT is larger than "
				 "%zu bytes", EXPR_OUTPUTS_MAX_BYTES);
	while (r == 0 && next_line(data, len, &pos, &l)) {
		unsigned at = ++lineno;
		if (!l.len)
			continue;
		const char *eq = memchr(l.s, '=', l.len);
		const char *hd = memmem(l.s, l.len, "<<", 2);
		bool is_hd = hd && (!eq || hd < eq);
		const char *sep = is_hd ? hd : eq;
		if (!sep) {
			r = expr_fail(err, -EINVAL, 0, "$DAGRUN_OUTPUT line %u: "
				      "expected key=value or key<<DELIMITER", at);
			break;
		}
		size_t kn = (size_t)(sep - l.s);
		if (kn > EXPR_OUTPUTS_MAX_KEY) {
			r = expr_fail(err, -E2BIG, 0, "$DAGRUN_OUTPUT line %u: key "
				      "longer than %u bytes", at,
				      EXPR_OUTPUTS_MAX_KEY);
			break;
		}
		if (!valid_key(l.s, kn)) {
			r = expr_fail(err, -EINVAL, 0, "$DAGRUN_OUTPUT line %u: "
				      "invalid key '%.*s' (letters, digits, _ "
				      "and - only)", at, (int)kn, l.s);
			break;
		}
		if (!is_hd) {
			r = set(out, &cap, l.s, kn, eq + 1, l.len - kn - 1);
		} else {
			struct line delim = {hd + 2, l.len - kn - 2};
			if (!delim.len) {
				r = expr_fail(err, -EINVAL, 0, "$DAGRUN_OUTPUT line "
					      "%u: missing delimiter after <<", at);
				break;
			}
			buf_reset(&b);
			r = heredoc(data, len, &pos, &lineno, delim, &b);
			if (r == -ENOENT) {
				r = expr_fail(err, -EINVAL, 0, "$DAGRUN_OUTPUT line "
					      "%u: no line '%.*s' closes the value "
					      "of '%.*s'", at, (int)delim.len,
					      delim.s, (int)kn, l.s);
				break;
			}
			if (r == 0)
				r = set(out, &cap, l.s, kn, b.data ? b.data : "",
					b.len);
		}
		if (r == -E2BIG)
			r = expr_fail(err, r, 0, "$DAGRUN_OUTPUT line %u: more "
				      "than %u keys", at, EXPR_OUTPUTS_MAX_KEYS);
		else if (r < 0)
			r = expr_fail(err, r, 0, "out of memory");
	}
	buf_free(&b);
	return r;
}

int expr_outputs_read(const char *path, struct expr_outputs *out,
		      struct expr_error *err)
{
	struct buf b = BUF_INIT;
	int r = 0;
	memset(out, 0, sizeof(*out));
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			return 0;
		return expr_fail(err, -errno, 0, "cannot open $DAGRUN_OUTPUT "
				 "%s: %s", path, strerror(errno));
	}
	b.max = EXPR_OUTPUTS_MAX_BYTES;
	for (;;) {
		char chunk[16384];
		ssize_t n = read(fd, chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = expr_fail(err, -errno, 0, "cannot read $DAGRUN_OUTPUT "
				      "%s: %s", path, strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		if ((r = buf_add(&b, chunk, (size_t)n)) < 0) {
			r = expr_fail(err, r, 0, r == -E2BIG ? "$DAGRUN_OUTPUT is "
				      "larger than %zu bytes" : "out of memory",
				      EXPR_OUTPUTS_MAX_BYTES);
			goto out;
		}
	}
	r = expr_outputs_parse(b.data ? b.data : "", b.len, out, err);
out:
	close(fd);
	buf_free(&b);
	return r;
}

void expr_outputs_free(struct expr_outputs *o)
{
	if (!o)
		return;
	arena_free(&o->arena);
	o->v = NULL;
	o->n = 0;
}
