/* command_shell.c: whether a command string needs /bin/sh -c, or may be
 * split on spaces and exec'd (command_needs_shell(), see command.h).
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "exec/command.h"

/* ---- deciding whether a command string needs the shell ------------------ */

static bool plain_char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       strchr("_./=:,+%@- ", c) != NULL;
}

/* Reserved words and builtins of dash and bash, sorted for bsearch. */
static const char *const shell_words[] = {
	"!", ".", ":", "[", "[[", "]]", "alias", "bg", "bind", "break", "builtin",
	"caller", "case", "cd", "chdir", "command", "compgen", "complete", "coproc",
	"declare", "dirs", "disown", "do", "done", "echo", "elif", "else", "enable",
	"esac", "eval", "exec", "exit", "export", "false", "fc", "fg", "fi", "for",
	"function", "getopts", "hash", "help", "history", "if", "in", "jobs", "kill",
	"let", "local", "logout", "mapfile", "popd", "printf", "pushd", "pwd", "read",
	"readarray", "readonly", "return", "select", "set", "shift", "shopt",
	"source", "suspend", "test", "then", "time", "times", "trap", "true", "type",
	"typeset", "ulimit", "umask", "unalias", "unset", "until", "wait", "while",
	"{", "}",
};

static bool is_shell_word(const char *w, size_t n)
{
	size_t lo = 0, hi = sizeof(shell_words) / sizeof(shell_words[0]);
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int c = strncmp(shell_words[mid], w, n);
		if (c == 0)
			c = shell_words[mid][n] ? 1 : 0;
		if (c == 0)
			return true;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return false;
}

bool command_needs_shell(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (!plain_char((unsigned char)s[i]))
			return true;
	size_t b = 0;
	while (b < len && s[b] == ' ')
		b++;
	if (b == len)
		return true;                   /* no word: let the shell decide */
	size_t e = b;
	while (e < len && s[e] != ' ')
		e++;
	if (memchr(s + b, '=', e - b))
		return true;                   /* an assignment */
	if (!is_shell_word(s + b, e - b))
		return false;
	/* A lone `true` or `false` acts the same as /usr/bin/true or false. */
	size_t rest = e;
	while (rest < len && s[rest] == ' ')
		rest++;
	bool lone = rest == len;
	bool tf = (e - b == 4 && !memcmp(s + b, "true", 4)) ||
		  (e - b == 5 && !memcmp(s + b, "false", 5));
	return !(lone && tf);
}
