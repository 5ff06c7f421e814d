/* lex.c: a Lua 5.4 token scanner; see lex.h. Long brackets ([==[ ... ]==])
 * are matched by level, as Lua does, so `]]` inside `[=[ ... ]=]` does not
 * end the string. */
#include "lex.h"

#include <string.h>

static const char *const keywords[] = {
	"and", "break", "do", "else", "elseif", "end", "false", "for",
	"function", "goto", "if", "in", "local", "nil", "not", "or", "repeat",
	"return", "then", "true", "until", "while",
};

void lex_init(struct lex *lx, const char *s, size_t len)
{
	lx->s = s;
	lx->len = len;
	lx->pos = 0;
}

static bool is_alpha(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static bool is_xdigit(char c)
{
	return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* At s[p] == '[': the level of a long bracket `[=*[`, or -1 if none. */
static long long_open(const struct lex *lx, size_t p)
{
	size_t q = p + 1;
	while (q < lx->len && lx->s[q] == '=')
		q++;
	if (q < lx->len && lx->s[q] == '[')
		return (long)(q - p - 1);
	return -1;
}

/* From p (just past the opening bracket), the position after the closing
 * `]=*]` of that level, or 0 when there is none. */
static size_t long_close(const struct lex *lx, size_t p, long level)
{
	for (; p < lx->len; p++) {
		if (lx->s[p] != ']')
			continue;
		size_t q = p + 1;
		while (q < lx->len && lx->s[q] == '=')
			q++;
		if (q < lx->len && lx->s[q] == ']' && (long)(q - p - 1) == level)
			return q + 1;
	}
	return 0;
}

/* Skips blanks and comments. Returns false on an unterminated long comment
 * (lx->pos is then its start). */
static bool skip_space(struct lex *lx)
{
	while (lx->pos < lx->len) {
		char c = lx->s[lx->pos];
		if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f'
		    || c == '\v') {
			lx->pos++;
			continue;
		}
		if (c != '-' || lx->pos + 1 >= lx->len || lx->s[lx->pos + 1] != '-')
			return true;
		size_t p = lx->pos + 2;
		long level = p < lx->len && lx->s[p] == '[' ? long_open(lx, p) : -1;
		if (level >= 0) {
			size_t end = long_close(lx, p + (size_t)level + 2, level);
			if (!end)
				return false;
			lx->pos = end;
			continue;
		}
		while (p < lx->len && lx->s[p] != '\n')
			p++;
		lx->pos = p;
	}
	return true;
}

static size_t scan_quoted(const struct lex *lx, size_t p)
{
	char q = lx->s[p++];
	while (p < lx->len) {
		char c = lx->s[p];
		if (c == q)
			return p + 1;
		if (c == '\n')
			return 0;
		if (c == '\\') {
			p++;
			if (p < lx->len && lx->s[p] == 'z') {
				/* \z skips the following blanks, newlines included */
				p++;
				while (p < lx->len && (lx->s[p] == ' ' || lx->s[p] == '\n'
						       || lx->s[p] == '\t' || lx->s[p] == '\r'))
					p++;
				continue;
			}
		}
		p++;
	}
	return 0;
}

static size_t scan_number(const struct lex *lx, size_t p)
{
	bool hex = lx->s[p] == '0' && p + 1 < lx->len
		   && (lx->s[p + 1] == 'x' || lx->s[p + 1] == 'X');
	if (hex)
		p += 2;
	while (p < lx->len) {
		char c = lx->s[p];
		bool expo = hex ? (c == 'p' || c == 'P') : (c == 'e' || c == 'E');
		if (expo && p + 1 < lx->len
		    && (lx->s[p + 1] == '+' || lx->s[p + 1] == '-'))
			p += 2;
		else if (expo || c == '.' || (hex ? is_xdigit(c) : is_digit(c))
			 || is_alpha(c))
			p++;   /* letters too: Lua reports `3x` as malformed */
		else
			break;
	}
	return p;
}

static size_t op_len(const struct lex *lx, size_t p)
{
	static const char *const ops[] = {
		"...", "..", "==", "~=", "<=", ">=", "//", "::", "<<", ">>",
	};
	for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
		size_t n = strlen(ops[i]);
		if (p + n <= lx->len && !memcmp(lx->s + p, ops[i], n))
			return n;
	}
	return 1;
}

static bool is_keyword(const char *s, size_t n)
{
	for (size_t i = 0; i < sizeof(keywords) / sizeof(keywords[0]); i++)
		if (strlen(keywords[i]) == n && !memcmp(keywords[i], s, n))
			return true;
	return false;
}

static int emit(struct lex *lx, struct lex_token *t, int kind, size_t start,
		size_t end)
{
	t->kind = (uint8_t)kind;
	t->off = (uint32_t)start;
	t->len = (uint32_t)(end - start);
	if (kind != LEX_ERROR)
		lx->pos = end;
	return kind;
}

int lex_next(struct lex *lx, struct lex_token *t)
{
	if (!skip_space(lx))
		return emit(lx, t, LEX_ERROR, lx->pos, lx->pos);
	size_t p = lx->pos;
	if (p >= lx->len)
		return emit(lx, t, LEX_EOF, p, p);
	char c = lx->s[p];
	if (is_alpha(c)) {
		size_t q = p;
		while (q < lx->len && (is_alpha(lx->s[q]) || is_digit(lx->s[q])))
			q++;
		return emit(lx, t, is_keyword(lx->s + p, q - p) ? LEX_KEYWORD
			    : LEX_NAME, p, q);
	}
	if (is_digit(c) || (c == '.' && p + 1 < lx->len && is_digit(lx->s[p + 1])))
		return emit(lx, t, LEX_NUMBER, p, scan_number(lx, p));
	if (c == '"' || c == '\'') {
		size_t end = scan_quoted(lx, p);
		return end ? emit(lx, t, LEX_STRING, p, end)
			   : emit(lx, t, LEX_ERROR, p, p);
	}
	if (c == '[') {
		long level = long_open(lx, p);
		if (level >= 0) {
			size_t end = long_close(lx, p + (size_t)level + 2, level);
			return end ? emit(lx, t, LEX_STRING, p, end)
				   : emit(lx, t, LEX_ERROR, p, p);
		}
	}
	return emit(lx, t, LEX_OP, p, p + op_len(lx, p));
}

bool lex_is(const char *s, const struct lex_token *t, const char *w)
{
	size_t n = strlen(w);
	return t->len == n && !memcmp(s + t->off, w, n);
}

static int hexval(char c)
{
	if (is_digit(c))
		return c - '0';
	return (c | 0x20) - 'a' + 10;
}

long lex_string_value(const char *s, const struct lex_token *t, char *out,
		      size_t out_cap)
{
	const char *p = s + t->off, *end = s + t->off + t->len;
	size_t n = 0;
	if (*p == '[') {
		size_t level = 0;
		p++;
		while (*p == '=')
			p++, level++;
		p++;
		if (*p == '\n')
			p++;    /* Lua drops a first newline */
		end -= level + 2;
	} else {
		p++;
		end--;
	}
	while (p < end) {
		char c = *p++;
		if (c == '\\' && p < end) {
			char e = *p++;
			switch (e) {
			case 'n': c = '\n'; break;
			case 't': c = '\t'; break;
			case 'r': c = '\r'; break;
			case 'a': c = '\a'; break;
			case 'b': c = '\b'; break;
			case 'f': c = '\f'; break;
			case 'v': c = '\v'; break;
			case '\\': case '"': case '\'': case '\n': c = e; break;
			case 'x':
				if (end - p < 2 || !is_xdigit(p[0]) || !is_xdigit(p[1]))
					return -1;
				c = (char)(hexval(p[0]) * 16 + hexval(p[1]));
				p += 2;
				break;
			default:
				if (!is_digit(e))
					return -1;
				int v = e - '0';
				for (int k = 0; k < 2 && p < end && is_digit(*p); k++)
					v = v * 10 + (*p++ - '0');
				if (v > 255)
					return -1;
				c = (char)v;
			}
		}
		if (n + 1 < out_cap)
			out[n] = c;
		n++;
	}
	if (out_cap)
		out[n < out_cap ? n : out_cap - 1] = '\0';
	return (long)n;
}
