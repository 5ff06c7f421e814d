/* dotenv.c: KEY=VALUE lines as dotenv reads them (see dotenv.h).
 *
 * Invariant: a value is only ever held in the caller's buffer, which the
 * caller wipes; nothing here logs or keeps one.
 */
#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "util/dotenv.h"

static bool blank(char c)
{
	return c == ' ' || c == '\t';
}

int dotenv_next(const char **p, const char *end, unsigned *no, struct dotenv_entry *e,
		const char **why)
{
	const char *s = *p, *eol = memchr(s, '\n', (size_t)(end - s));
	if (!eol)
		eol = end;
	*p = eol < end ? eol + 1 : end;
	e->line = ++*no;
	buf_reset(&e->value);
	while (s < eol && (blank(*s) || *s == '\r'))
		s++;
	if (s == eol || *s == '#')
		return 0;
	if (eol - s > 7 && !memcmp(s, "export", 6) && blank(s[6]))
		for (s += 6; s < eol && blank(*s);)
			s++;
	const char *k = s;
	while (s < eol && (isalnum((unsigned char)*s) || *s == '_' || *s == '.' || *s == '-'))
		s++;
	e->key = k;
	e->key_len = (size_t)(s - k);
	while (s < eol && blank(*s))
		s++;
	if (!e->key_len || s == eol || *s != '=') {
		*why = e->key_len ? "expected KEY=VALUE (a key is letters, digits, _ . -)"
				  : "expected KEY=VALUE";
		return -EINVAL;
	}
	for (s++; s < eol && blank(*s);)
		s++;
	int r = 0;
	if (s < eol && (*s == '"' || *s == '\'')) {
		char q = *s++;
		for (;; s++) {
			if (s == end) {
				*why = q == '"' ? "no closing \" for this value" : "no closing ' for this value";
				return -EINVAL;
			}
			if (*s == q)
				break;
			if (*s == '\n')
				++*no;
			char c = *s;
			if (c == '\\' && s + 1 < end && s[1]) {
				static const char from[] = "nrt\"\\", to[] = "\n\r\t\"\\";
				const char *m = strchr(q == '"' ? from : "'\\", s[1]);
				if (m) {
					c = q == '"' ? to[m - from] : s[1];
					s++;
				}
			}
			if ((r = buf_addc(&e->value, c)) < 0)
				return r;
		}
		const char *rest = s + 1;
		eol = memchr(rest, '\n', (size_t)(end - rest));
		if (!eol)
			eol = end;
		*p = eol < end ? eol + 1 : end;
		while (rest < eol && (blank(*rest) || *rest == '\r'))
			rest++;
		if (rest < eol && *rest != '#') {
			*why = "unexpected text after the closing quote";
			return -EINVAL;
		}
		return 1;
	}
	const char *v = s, *ve = eol;
	for (const char *c = v; c < eol; c++)
		if (*c == '#' && blank(c[-1])) {   /* c[-1]: at worst the '=' */
			ve = c;
			break;
		}
	while (ve > v && (blank(ve[-1]) || ve[-1] == '\r'))
		ve--;
	r = buf_add(&e->value, v, (size_t)(ve - v));
	return r < 0 ? r : 1;
}


int dotenv_find(const char *text, size_t len, const char *name, char **out, unsigned *line)
{
	struct dotenv_entry e = {.value = BUF_INIT};
	const char *p = text ? text : "", *end = p + len, *why = NULL;
	size_t n = strlen(name);
	unsigned no = 0;
	int r = 0;
	*out = NULL;
	*line = 0;
	while (p < end) {
		int k = dotenv_next(&p, end, &no, &e, &why);
		if (k < 0) {
			*line = e.line;
			r = k;
			break;
		}
		if (k == 0 || e.key_len != n || memcmp(e.key, name, n))
			continue;
		if (*out) {
			explicit_bzero(*out, strlen(*out));
			free(*out);
		}
		if (!(*out = strndup(e.value.data ? e.value.data : "", e.value.len))) {
			r = -ENOMEM;
			break;
		}
		r = 1;
	}
	if (r < 0 && *out) {
		explicit_bzero(*out, strlen(*out));
		free(*out);
		*out = NULL;
	}
	if (e.value.data)
		explicit_bzero(e.value.data, e.value.len);
	buf_free(&e.value);
	return r;
}
