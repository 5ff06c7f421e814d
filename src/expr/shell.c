/* shell.c: a POSIX sh quoting state machine and context-aware quoting of
 * substituted values; see shell.h. (Which interpreters are POSIX shells
 * is told in shell_interp.c.) */
#include "expr/shell.h"

#include <errno.h>
#include <string.h>

enum {
	F_NORMAL,     /* outside quotes (top level or inside $( )) */
	F_SQ,         /* '...' */
	F_DQ,         /* "..." */
	F_DSQ,        /* $'...' */
	F_BQ,         /* `...` */
	F_PARAM,      /* ${...} */
	F_ARITH,      /* $((...)) */
	F_COMMENT,    /* # ... up to the newline */
	F_HEREDOC,    /* a here-document body, expansions on */
	F_HEREDOC_Q,  /* a here-document body with a quoted delimiter */
};

void sh_init(struct sh *m)
{
	memset(m, 0, sizeof(*m));
	m->depth = 1;
	m->stack[0].type = F_NORMAL;
	m->word_start = true;
	m->line_tabs = true;
}

static struct sh_frame *top(struct sh *m)
{
	return &m->stack[m->depth - 1];
}

static int fail(struct sh *m, const char *why)
{
	m->error = why;
	return -EINVAL;
}

static int push(struct sh *m, int type)
{
	if (m->depth >= SH_MAX_DEPTH)
		return fail(m, "shell quoting nested too deeply");
	m->stack[m->depth].type = (uint8_t)type;
	m->stack[m->depth].cmdsub = 0;
	m->stack[m->depth].depth = 0;
	m->depth++;
	return 0;
}

static void pop(struct sh *m)
{
	if (m->depth > 1)
		m->depth--;
}

/* ---- here-documents ------------------------------------------------------ */

static bool is_meta(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == ';' || c == '&'
	       || c == '|' || c == '<' || c == '>' || c == '(' || c == ')';
}

/* One character of the word after << (hd_read: 1 just after <<, 2 blanks,
 * 3 in the word). Returns 1 when c was consumed, 0 when the word is over
 * and c must be read normally, < 0 on error. */
static int read_delim(struct sh *m, char c)
{
	struct sh_heredoc *h = &m->hd[m->n_hd];
	if (m->hd_read == 1) {
		m->hd_read = 2;
		if (c == '-') {
			h->strip_tabs = true;
			return 1;
		}
		if (c == '<') {        /* <<< is a here-string */
			m->hd_read = 0;
			return 1;
		}
	}
	if (m->hd_read == 2) {
		if (c == ' ' || c == '\t')
			return 1;
		m->hd_read = 3;
	}
	if (!m->hd_sq && !m->hd_dq && !m->hd_esc && is_meta(c)) {
		m->hd_read = 0;
		if (!h->len && !h->quoted)
			return fail(m, "a here-document without a delimiter");
		m->n_hd++;
		return 0;
	}
	if (m->hd_esc) {
		m->hd_esc = false;
	} else if (!m->hd_dq && c == '\'') {
		m->hd_sq = !m->hd_sq;
		h->quoted = true;
		return 1;
	} else if (!m->hd_sq && c == '"') {
		m->hd_dq = !m->hd_dq;
		h->quoted = true;
		return 1;
	} else if (!m->hd_sq && c == '\\') {
		m->hd_esc = true;
		h->quoted = true;
		return 1;
	}
	if (h->len >= SH_MAX_DELIM)
		return fail(m, "here-document delimiter too long");
	h->delim[h->len++] = c;
	return 1;
}

static void start_delim(struct sh *m)
{
	if (m->hd_active) {
		fail(m, "a here-document inside a here-document");
		return;
	}
	if (m->n_hd >= SH_MAX_HEREDOCS) {
		fail(m, "too many here-documents on one line");
		return;
	}
	memset(&m->hd[m->n_hd], 0, sizeof(m->hd[0]));
	m->hd_read = 1;
	m->hd_sq = m->hd_dq = m->hd_esc = false;
}

static int start_body(struct sh *m)
{
	if (!m->n_hd || m->hd_active)
		return 0;
	m->hd_active = true;
	return push(m, m->hd[0].quoted ? F_HEREDOC_Q : F_HEREDOC);
}

/* At the end of a line inside a here-document body: does it end it? */
static int end_of_body_line(struct sh *m)
{
	struct sh_heredoc *h = &m->hd[0];
	if (m->line_len != h->len || memcmp(m->line, h->delim, h->len))
		return 0;
	if (m->line_tainted)
		return fail(m, "a substituted value would end the here-document "
			    "(a line equal to its delimiter)");
	pop(m);
	m->hd_active = false;
	memmove(&m->hd[0], &m->hd[1], (m->n_hd - 1) * sizeof(m->hd[0]));
	m->n_hd--;
	return start_body(m);
}

static void track_line(struct sh *m, char c, bool value)
{
	if (c == '\n') {
		m->line_len = 0;
		m->line_tabs = true;
		m->line_tainted = false;
		return;
	}
	if (value)
		m->line_tainted = true;
	bool strip = m->hd_active && m->hd[0].strip_tabs;
	if (m->line_tabs && c == '\t' && strip)
		return;
	m->line_tabs = false;
	if (m->line_len < sizeof(m->line))
		m->line[m->line_len] = c;
	m->line_len++;
}

/* ---- the frames ---------------------------------------------------------- */

/* After an unquoted `$` in a frame where expansions happen. Returns 1 when
 * c was consumed. */
static int after_dollar(struct sh *m, char c, bool in_normal)
{
	m->dollar = false;
	int r;
	if (c == '(') {
		if ((r = push(m, F_NORMAL)) < 0)
			return r;
		top(m)->cmdsub = 1;
		m->word_start = true;
		m->just_opened = true;
		return 1;
	}
	if (c == '{')
		return push(m, F_PARAM) < 0 ? -EINVAL : 1;
	if (c == '\'' && in_normal)
		return push(m, F_DSQ) < 0 ? -EINVAL : 1;
	return 0;
}

static int normal(struct sh *m, char c)
{
	struct sh_frame *f = top(m);
	int r;
	uint8_t lt = m->lt_run;
	bool lparen = m->lparen;
	m->lt_run = 0;
	m->lparen = false;
	if (m->just_opened) {
		m->just_opened = false;
		if (c == '(' && f->cmdsub) {   /* $(( is arithmetic */
			f->type = F_ARITH;
			f->cmdsub = 0;
			return 0;
		}
	}
	if (m->esc) {
		m->esc = false;
		m->word_start = false;
		return 0;
	}
	if (m->dollar && (r = after_dollar(m, c, true)) != 0)
		return r < 0 ? r : 0;
	if (m->hd_read && (r = read_delim(m, c)) != 0)
		return r < 0 ? r : 0;
	bool word_start = m->word_start;
	m->word_start = false;
	switch (c) {
	case '\\': m->esc = true; return 0;
	case '\'': return push(m, F_SQ);
	case '"': return push(m, F_DQ);
	case '`': return push(m, F_BQ);
	case '$': m->dollar = true; return 0;
	case '#':
		return word_start ? push(m, F_COMMENT) : 0;
	case '(':
		if (lparen) {          /* (( ... )): arithmetic, << is a shift */
			if (f->cmdsub && f->depth)
				f->depth--;
			return push(m, F_ARITH);
		}
		m->lparen = word_start;
		m->word_start = true;
		if (f->cmdsub)
			f->depth++;
		return 0;
	case ')':
		m->word_start = true;
		if (f->cmdsub) {
			if (f->depth == 0)
				pop(m);
			else
				f->depth--;
		}
		return 0;
	case '<':
		m->word_start = true;
		m->lt_run = (uint8_t)(lt + 1);
		if (m->lt_run == 2)
			start_delim(m);
		return m->error ? -EINVAL : 0;
	case '\n':
		m->word_start = true;
		return start_body(m);
	case ' ': case '\t': case ';': case '&': case '|': case '>':
		m->word_start = true;
		return 0;
	}
	return 0;
}

/* Frames with backslash escapes and $ expansions: DQ, BQ, PARAM, HEREDOC. */
static int expanding(struct sh *m, char c, char closer)
{
	int r;
	if (m->esc) {
		m->esc = false;
		return 0;
	}
	if (m->dollar && (r = after_dollar(m, c, false)) != 0)
		return r < 0 ? r : 0;
	if (c == '\\') {
		m->esc = true;
		return 0;
	}
	if (c == '$') {
		m->dollar = true;
		return 0;
	}
	if (closer && c == closer) {
		pop(m);
		return 0;
	}
	if (c == '`' && closer != '`')
		return push(m, F_BQ);
	return 0;
}

static int param(struct sh *m, char c)
{
	struct sh_frame *f = top(m);
	if (!m->esc && !m->dollar) {
		if (c == '{') {
			f->depth++;
			return 0;
		}
		if (c == '}' && f->depth) {
			f->depth--;
			return 0;
		}
		if (c == '\'')
			return push(m, F_SQ);
		if (c == '"')
			return push(m, F_DQ);
	}
	return expanding(m, c, '}');
}

static int arith(struct sh *m, char c)
{
	struct sh_frame *f = top(m);
	if (c == '(') {
		f->depth++;
	} else if (c == ')') {
		if (f->depth == 0) {
			pop(m);
			m->eat_paren = true;
		} else {
			f->depth--;
		}
	}
	return 0;
}

static int feed_char(struct sh *m, char c, bool value)
{
	int r = 0;
	if (m->eat_paren) {
		m->eat_paren = false;
		if (c == ')')
			goto line;
	}
	switch (top(m)->type) {
	case F_NORMAL: r = normal(m, c); break;
	case F_SQ:
		if (c == '\'')
			pop(m);
		break;
	case F_DSQ:
		if (m->esc)
			m->esc = false;
		else if (c == '\\')
			m->esc = true;
		else if (c == '\'')
			pop(m);
		break;
	case F_DQ: r = expanding(m, c, '"'); break;
	case F_BQ: r = expanding(m, c, '`'); break;
	case F_PARAM: r = param(m, c); break;
	case F_ARITH: r = arith(m, c); break;
	case F_COMMENT:
		if (c == '\n') {
			pop(m);
			r = normal(m, c);
		}
		break;
	case F_HEREDOC:
	case F_HEREDOC_Q:
		if (c == '\n') {
			m->esc = m->dollar = false;
			r = end_of_body_line(m);
		} else if (top(m)->type == F_HEREDOC) {
			r = expanding(m, c, 0);
		}
		break;
	}
	if (r < 0)
		return r;
line:
	track_line(m, c, value);
	return 0;
}

int sh_feed(struct sh *m, const char *p, size_t n, bool value)
{
	if (m->error)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		int r = feed_char(m, p[i], value);
		if (r < 0) {
			if (!m->error)
				m->error = "invalid shell text";
			return r;
		}
	}
	return 0;
}

/* ---- substituting -------------------------------------------------------- */

/* The parts of the state that a substitution must leave as they were
 * (word_start, the line being read and the one-character lookaheads are
 * expected to change). */
static bool same_state(const struct sh *a, const struct sh *b)
{
	if (a->depth != b->depth || a->esc != b->esc || a->dollar != b->dollar
	    || a->eat_paren != b->eat_paren || a->hd_read != b->hd_read
	    || a->n_hd != b->n_hd || a->hd_active != b->hd_active)
		return false;
	for (unsigned i = 0; i < a->depth; i++)
		if (a->stack[i].type != b->stack[i].type
		    || a->stack[i].cmdsub != b->stack[i].cmdsub
		    || a->stack[i].depth != b->stack[i].depth)
			return false;
	return true;
}

/* Why the current context cannot take a value, or NULL when it can. */
static const char *unsafe_context(const struct sh *m)
{
	static const char *const inside[] = {
		[F_DSQ] = "inside $'...'",
		[F_BQ] = "inside `...` (use $(...))",
		[F_PARAM] = "inside ${...}",
		[F_ARITH] = "inside an arithmetic expression",
	};
	for (unsigned i = 0; i < m->depth; i++) {
		int t = m->stack[i].type;
		if (t == F_DSQ || t == F_BQ || t == F_PARAM || t == F_ARITH)
			return inside[t];
	}
	if (m->error)
		return m->error;
	if (m->hd_read)
		return "in a here-document delimiter";
	if (m->esc)
		return "right after a backslash";
	if (m->dollar)
		return "right after '$'";
	return NULL;
}

/* Appends v with a backslash before each byte of `special`; with sq set,
 * each ' becomes '\'' instead. The size is counted first and the buffer
 * grown once: a value of many quotes costs no call per byte. */
static int quote(struct buf *out, const char *v, size_t n, const char *special,
		 bool sq)
{
	bool esc[256] = {false};
	if (sq)
		esc['\''] = true;
	else
		for (const char *c = special; *c; c++)
			esc[(unsigned char)*c] = true;
	size_t extra = 0, per = sq ? 3 : 1;   /* ' -> '\'' ; c -> \c */
	for (size_t i = 0; i < n; i++)
		extra += esc[(unsigned char)v[i]] ? per : 0;
	int r = buf_reserve(out, n + extra);
	if (r < 0)
		return r;
	char *w = out->data + out->len;
	for (size_t i = 0; i < n; i++) {
		if (!esc[(unsigned char)v[i]]) {
			*w++ = v[i];
		} else if (sq) {
			memcpy(w, "'\\''", 4);
			w += 4;
		} else {
			*w++ = '\\';
			*w++ = v[i];
		}
	}
	out->len += n + extra;
	out->data[out->len] = '\0';
	return 0;
}

/* In a <<- here-document, the shell strips the tabs that begin a line,
 * the value's too: is there such a tab? */
static bool lost_tabs(const struct sh *m, const char *v, size_t n)
{
	int t = top((struct sh *)m)->type;
	if (!m->hd_active || !m->hd[0].strip_tabs
	    || (t != F_HEREDOC && t != F_HEREDOC_Q))
		return false;
	bool line_start = m->line_tabs;
	for (size_t i = 0; i < n; i++) {
		if (line_start && v[i] == '\t')
			return true;
		line_start = v[i] == '\n';
	}
	return false;
}

int sh_substitute(struct sh *m, const char *v, size_t n, struct buf *out,
		  const char **why)
{
	static const char *const changed = "the value would change the shell "
		"quoting around it";
	size_t len0 = out->len;
	int r = 0;
	*why = NULL;
	if (memchr(v, '\0', n)) {
		*why = "the value contains a NUL byte";
		return -EINVAL;
	}
	if ((*why = unsafe_context(m)))
		return -EINVAL;
	if (lost_tabs(m, v, n)) {
		*why = "a line of the value would lose its leading tabs in a "
		       "<<- here-document";
		return -EINVAL;
	}
	struct sh before = *m;
	switch (top(m)->type) {
	case F_NORMAL:
		r = buf_addc(out, '\'');
		if (r == 0)
			r = quote(out, v, n, NULL, true);
		if (r == 0)
			r = buf_addc(out, '\'');
		break;
	case F_SQ:
		r = quote(out, v, n, NULL, true);
		break;
	case F_DQ:
		r = quote(out, v, n, "\"$`\\", false);
		break;
	case F_HEREDOC:
		r = quote(out, v, n, "$`\\", false);
		break;
	case F_COMMENT:
		if (memchr(v, '\n', n)) {
			*why = "a value with a newline inside a # comment";
			return -EINVAL;
		}
		/* fall through */
	case F_HEREDOC_Q:
		r = buf_add(out, v, n);
		break;
	}
	if (r == 0 && sh_feed(m, out->data + len0, out->len - len0, true) < 0) {
		*why = m->error;
		r = -EINVAL;
	}
	/* The rest of this line follows a value, even an empty one or one
	 * that ends with a newline: it may not end a here-document. */
	m->line_tainted = true;
	if (r == 0 && !same_state(&before, m)) {
		*why = changed;
		r = -EINVAL;
	}
	if (r < 0) {
		*m = before;
		out->len = len0;
		if (out->data)
			out->data[len0] = '\0';
	}
	return r;
}
