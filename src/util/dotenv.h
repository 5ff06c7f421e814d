/* dotenv.h: the secrets file's format (`dagrun run --secrets-file`, `dagrun
 * serve --secrets-file`): KEY=VALUE lines as dotenv reads them, parsed by
 * one parser for the runs (sched/flow_secrets.c) and the server's hooks
 * (serve/util.c), so both read a file the same way.
 */
#ifndef DAGRUN_UTIL_DOTENV_H
#define DAGRUN_UTIL_DOTENV_H

#include <stddef.h>

#include "util/buf.h"

/* One entry of a secrets file, as dotenv reads it: `[export] KEY=VALUE`,
 * VALUE unquoted (trimmed, " #" starts a comment), '...' (literal but \'
 * and \\) or "..." (\n \r \t \" \\ decoded); quoted values may span lines.
 * Blank and # lines are none. */
struct dotenv_entry {
	const char *key;
	size_t key_len;
	struct buf value;
	unsigned line;     /* where it starts */
};

/* Parses the entry at *p (a line start; end: the text's end), advancing *p
 * past it and *no over its lines. Returns 1 (an entry), 0 (a blank or
 * comment line), -ENOMEM, or -EINVAL with *why (static text). */
int dotenv_next(const char **p, const char *end, unsigned *no, struct dotenv_entry *e,
		const char **why);

/* The value of the last entry named name in text[0 .. len): 1 and *out
 * (malloc'd; the caller wipes and frees it), 0 when there is none,
 * -EINVAL (a malformed line: *line says which), -ENOMEM. */
int dotenv_find(const char *text, size_t len, const char *name, char **out, unsigned *line);

#endif
