/* shell_interp.c: whether a script's interpreter is a POSIX shell, so
 * that its templates are quoted for sh (see shell.h).
 *
 * Invariant: only the program that will run is looked at: the first word,
 * or, past `env` (its flags and NAME=value words) or `busybox`, the word
 * after; a path counts by its last component. No interpreter (NULL) is
 * the default shell.
 */
#include "expr/shell.h"

#include <string.h>

static bool is_blank(char c)
{
	return c == ' ' || c == '\t';
}

/* The next blank-separated word of s[*p .. len), as [*start, *end). */
static bool next_word(const char *s, size_t len, size_t *p, size_t *start,
		      size_t *end)
{
	while (*p < len && is_blank(s[*p]))
		(*p)++;
	if (*p >= len)
		return false;
	*start = *p;
	while (*p < len && !is_blank(s[*p]))
		(*p)++;
	*end = *p;
	return true;
}

static bool shell_name(const char *w, size_t n)
{
	static const char *const shells[] = {
		"sh", "bash", "dash", "zsh", "ksh", "mksh", "ksh93", "ash",
		"yash", "posh",
	};
	const char *slash = memrchr(w, '/', n);
	if (slash) {
		n -= (size_t)(slash + 1 - w);
		w = slash + 1;
	}
	for (size_t i = 0; i < sizeof(shells) / sizeof(shells[0]); i++)
		if (strlen(shells[i]) == n && !memcmp(shells[i], w, n))
			return true;
	return false;
}

static bool named(const char *w, size_t n, const char *name)
{
	const char *slash = memrchr(w, '/', n);
	if (slash) {
		n -= (size_t)(slash + 1 - w);
		w = slash + 1;
	}
	return strlen(name) == n && !memcmp(name, w, n);
}

bool sh_is_posix_shell(const char *interp, size_t len)
{
	size_t p = 0, a, b;
	if (!interp)
		return true;
	if (!next_word(interp, len, &p, &a, &b))
		return false;
	if (named(interp + a, b - a, "env")) {
		/* env [-flags] [NAME=value]... program */
		do {
			if (!next_word(interp, len, &p, &a, &b))
				return false;
		} while (interp[a] == '-' || memchr(interp + a, '=', b - a));
	}
	if (named(interp + a, b - a, "busybox")) {
		if (!next_word(interp, len, &p, &a, &b))
			return false;
	}
	return shell_name(interp + a, b - a);
}
