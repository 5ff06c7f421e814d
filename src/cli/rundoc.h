/* rundoc.h: what the commands that draw a recorded run share (`dagrun
 * report`, `trace`, `show --timeline`, `graph RUN`): finding the run in the
 * state store, building its run document (report/rundoc.h) with its
 * warnings said on stderr, the output file, the terminal's width.
 */
#ifndef DAGRUN_CLI_RUNDOC_H
#define DAGRUN_CLI_RUNDOC_H

#include <stdbool.h>
#include <stdio.h>

#include <jansson.h>

#include "report/rundoc.h"

/* Opens the store of state (--state, or NULL for the default) read-only,
 * finds the run ref (an id, a unique prefix, or "last") and builds its
 * document with o (NULL: defaults) into *doc. Warnings (what the document
 * lacks) are printed as "dagrun CMD: warning: ..." on stderr. Returns the
 * exit status: EXIT_OK and *doc (the caller json_decref's it); EXIT_USAGE
 * (nothing recorded, no such run; said on stderr); EXIT_INTERNAL (the
 * store failed, out of memory; said). */
int cli_rundoc(const char *cmd, const char *state, const char *ref,
	       const struct report_rundoc_opts *o, json_t **doc);

/* An output named by -o: "-" or NULL is standard output. A file is
 * written under a temporary name in its directory and renamed over path
 * by cli_out_close only when everything was written, so a failed command
 * leaves no half file (and an existing file is replaced whole). */
struct cli_out {
	FILE *f;
	const char *path;          /* NULL: standard output */
	char *tmp;                 /* the temporary file's name */
};

/* Returns 0, or -1 after saying why on stderr. */
int cli_out_open(const char *cmd, const char *path, struct cli_out *o);
/* Flushes and closes; renames the file into place when ok and every write
 * succeeded, else removes it. Returns 0, or -1 after saying why. */
int cli_out_close(const char *cmd, struct cli_out *o, bool ok);

/* The arguments of a command that takes `RUN [-o FILE] [--state DIR]`
 * (export, trace): with usage printed for --help (EXIT_OK) or a usage
 * error (said; EXIT_USAGE), returns that status; else -1 and *state,
 * *path (NULL when not given) and *ref set. */
int cli_run_out_args(const char *cmd, const char *usage, int argc, char **argv,
		     const char **state, const char **path, const char **ref);

/* Columns for a text drawing on f: $COLUMNS when a number from 40 to
 * 10000, else the terminal's width when f is one, else 100. */
unsigned cli_term_width(FILE *f);

/* Whether arg names something in the file system (then `dagrun graph`
 * reads it as a workflow file, else as a run). */
bool cli_names_file(const char *arg);

#endif
