/* value.c: struct expr_result defaults and the $DAGRUN_OUTPUT reader; see
 * value.h. The parser works line by line over the file's bytes; keys,
 * values and warnings are copied into the result's arena. A bad line costs
 * that line (and the value it opens), never the rest of the file. */
#include "expr/value.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dagrun.h"
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

/* Adds a warning (printf-style). Returns 0 or -ENOMEM. */
static int warn(struct expr_outputs *o, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static int warn(struct expr_outputs *o, const char *fmt, ...)
{
	if (o->n_warn >= EXPR_OUTPUTS_MAX_WARN) {
		o->n_warn_more++;
		return 0;
	}
	if (!o->warn && !(o->warn = arena_alloc(&o->arena, EXPR_OUTPUTS_MAX_WARN *
						 sizeof(*o->warn))))
		return -ENOMEM;
	struct buf b = BUF_INIT;
	va_list ap;
	va_start(ap, fmt);
	int r = buf_vprintf(&b, fmt, ap);
	va_end(ap);
	char *m = r < 0 ? NULL : arena_strndup(&o->arena, b.data ? b.data : "", b.len);
	buf_free(&b);
	if (!m)
		return -ENOMEM;
	o->warn[o->n_warn++] = m;
	return 0;
}

/* A key as a warning shows it: itself when short and printable (a
 * message is never cut inside it), else its size. */
static const char *shown(const char *k, size_t n, char out[80])
{
	bool printable = n <= 64;
	for (size_t i = 0; i < n && printable; i++)
		printable = k[i] >= 0x20 && k[i] < 0x7f;
	if (printable)
		snprintf(out, 80, "'%.*s'", (int)n, k);
	else
		snprintf(out, 80, "of %zu bytes", n);
	return out;
}

/* Sets k to v. Returns 0, 1 when k is new and there are already
 * EXPR_OUTPUTS_MAX_KEYS keys (nothing set), or -ENOMEM. */
static int set(struct expr_outputs *o, size_t *cap, const char *k, size_t kn,
	       const char *v, size_t vn)
{
	size_t i = 0;
	while (i < o->n && !(strlen(o->v[i].key) == kn && !memcmp(o->v[i].key, k, kn)))
		i++;
	if (i == o->n && o->n >= EXPR_OUTPUTS_MAX_KEYS)
		return 1;
	char *val = arena_strndup(&o->arena, v, vn);
	if (!val)
		return -ENOMEM;
	if (i < o->n) {
		o->v[i].value = val;
		o->v[i].value_len = vn;
		return 0;
	}
	char *key = arena_strndup(&o->arena, k, kn);
	if (!key)
		return -ENOMEM;
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

/* Reads the body of `key<<DELIM` up to the line DELIM into b (NULL: skips
 * it). Returns 0, -ENOENT when no line closes it, or -ENOMEM. */
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
		if (b && !first)
			r = buf_addc(b, '\n');
		if (b && r == 0)
			r = buf_add(b, l.s, l.len);
		if (r < 0)
			return -ENOMEM;
		first = false;
	}
	return -ENOENT;
}

struct parse {
	struct expr_outputs *o;
	size_t cap;
	unsigned full_at;      /* the line of the first key past the cap */
	size_t full_skipped;   /* new keys ignored past the cap */
};

/* Sets a key, counting those past the cap. */
static int put(struct parse *p, unsigned at, const char *k, size_t kn, const char *v, size_t vn)
{
	int r = set(p->o, &p->cap, k, kn, v, vn);
	if (r == 1) {
		if (!p->full_skipped++)
			p->full_at = at;
		r = 0;
	}
	return r;
}

/* One line that is not blank, and a value it opens. */
static int parse_line(struct parse *p, const char *data, size_t len, size_t *pos,
		      unsigned *lineno, struct line l, struct buf *b)
{
	struct expr_outputs *o = p->o;
	unsigned at = *lineno;
	char k[80];
	const char *eq = memchr(l.s, '=', l.len);
	const char *hd = l.len >= 2 ? memmem(l.s, l.len, "<<", 2) : NULL;
	bool is_hd = hd && (!eq || hd < eq);
	const char *sep = is_hd ? hd : eq;
	if (!sep)
		return warn(o, "line %u: expected key=value or key<<DELIMITER; the line "
			    "is ignored", at);
	size_t kn = (size_t)(sep - l.s);
	struct line delim = {is_hd ? hd + 2 : NULL, is_hd ? l.len - kn - 2 : 0};
	if (is_hd && !delim.len)
		return warn(o, "line %u: missing delimiter after <<; the line is ignored", at);
	bool bad = kn > EXPR_OUTPUTS_MAX_KEY || !valid_key(l.s, kn);
	int r = 0;
	if (!is_hd) {
		if (bad)
			return warn(o, kn > EXPR_OUTPUTS_MAX_KEY ? "line %u: a key %s is longer than "
				    "256 bytes; the line is ignored" : "line %u: invalid key %s "
				    "(letters, digits, _ and - only); the line is ignored", at,
				    shown(l.s, kn, k));
		return put(p, at, l.s, kn, eq + 1, l.len - kn - 1);
	}
	buf_reset(b);
	r = heredoc(data, len, pos, lineno, delim, bad ? NULL : b);
	if (r == -ENOENT) {
		char d[80];
		return warn(o, "line %u: no line %s closes the value of the key %s; it is "
			    "ignored, with the %u line%s after it", at, shown(delim.s, delim.len, d),
			    shown(l.s, kn, k), *lineno - at, *lineno - at == 1 ? "" : "s");
	}
	if (r < 0)
		return r;
	if (bad)
		return warn(o, kn > EXPR_OUTPUTS_MAX_KEY ? "line %u: a key %s is longer than 256 "
			    "bytes; its value (to line %u) is ignored" : "line %u: invalid key %s "
			    "(letters, digits, _ and - only); its value (to line %u) is ignored",
			    at, shown(l.s, kn, k), *lineno);
	return put(p, at, l.s, kn, b->data ? b->data : "", b->len);
}

int expr_outputs_set(struct expr_outputs *o, const char *k, const char *v, size_t vn)
{
	size_t kn = strlen(k), cap = o->n ? 16 : 0;
	if (!valid_key(k, kn) || kn > EXPR_OUTPUTS_MAX_KEY)
		return -EINVAL;
	while (cap && cap < o->n)
		cap *= 2;   /* set() grows 16, 32, 64...: the capacity o->v has */
	return set(o, &cap, k, kn, v, vn);
}

int expr_outputs_parse(const char *data, size_t len, struct expr_outputs *out)
{
	struct parse p = {.o = out};
	size_t pos = 0, end = len;
	unsigned lineno = 0;
	struct line l;
	struct buf b = BUF_INIT;
	int r = 0;
	memset(out, 0, sizeof(*out));
	if (len > EXPR_OUTPUTS_MAX_BYTES) {
		/* only the complete lines within the cap */
		const char *nl = memrchr(data, '\n', EXPR_OUTPUTS_MAX_BYTES);
		end = nl ? (size_t)(nl - data) + 1 : 0;
	}
	while (r == 0 && next_line(data, end, &pos, &l)) {
		lineno++;
		if (l.len)
			r = parse_line(&p, data, end, &pos, &lineno, l, &b);
	}
	buf_free(&b);
	if (r == 0 && p.full_skipped)
		r = warn(out, "line %u: more than %u keys; %zu new keys from this line on are "
			 "ignored", p.full_at, EXPR_OUTPUTS_MAX_KEYS, p.full_skipped);
	if (r == 0 && end < len)
		r = warn(out, "line %u: the file is larger than %zu bytes; what follows this "
			 "line is ignored", lineno, EXPR_OUTPUTS_MAX_BYTES);
	return r;
}

static const char *file_kind(mode_t m)
{
	return S_ISFIFO(m) ? "a FIFO" : S_ISDIR(m) ? "a directory" : S_ISCHR(m) ?
	       "a character device" : S_ISBLK(m) ? "a block device" : S_ISSOCK(m) ?
	       "a socket" : "not a regular file";
}

int expr_outputs_read(const char *path, struct expr_outputs *out)
{
	struct buf b = BUF_INIT;
	struct stat st;
	int r = 0;
	memset(out, 0, sizeof(*out));
	/* The task controls the path: never wait on it (a FIFO), never follow
	 * it elsewhere (a link to /dev/zero or a huge file). */
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOFOLLOW | O_NOCTTY);
	if (fd < 0 && errno == ENOENT)
		return 0;
	if (fd < 0)
		return warn(out, errno == ELOOP ? "is a symbolic link; it is not read"
			    : "cannot be opened (%s); it is not read", strerror(errno));
	if (fstat(fd, &st) < 0) {
		r = warn(out, "cannot be examined (%s); it is not read", strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		r = warn(out, "is %s, not a regular file; it is not read", file_kind(st.st_mode));
		goto out;
	}
	b.max = EXPR_OUTPUTS_MAX_BYTES + 1;
	bool failed = false;
	while (b.len < b.max) {
		char chunk[16384];
		size_t want = b.max - b.len < sizeof(chunk) ? b.max - b.len : sizeof(chunk);
		ssize_t n = read(fd, chunk, want);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			if ((r = warn(out, "cannot be read (%s); only what came before is used",
				      strerror(errno))) < 0)
				goto out;
			failed = true;
			break;
		}
		if (n == 0)
			break;
		if ((r = buf_add(&b, chunk, (size_t)n)) < 0)
			goto out;
	}
	struct expr_outputs parsed;
	if (failed && b.len) {
		/* a read error: only the complete lines */
		const char *nl = memrchr(b.data, '\n', b.len);
		b.len = nl ? (size_t)(nl - b.data) + 1 : 0;
	}
	r = expr_outputs_parse(b.data ? b.data : "", b.len, &parsed);
	for (size_t i = 0; r == 0 && i < out->n_warn; i++)
		r = warn(&parsed, "%s", out->warn[i]);
	expr_outputs_free(out);
	*out = parsed;
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
	memset(o, 0, sizeof(*o));
}
