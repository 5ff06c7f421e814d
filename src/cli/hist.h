/* hist.h: what the history commands (runs, show, logs, prune) share:
 * opening the state store, finding a run, formatting times, durations and
 * sizes for people and for JSON, escaping, and text tables.
 *
 * Everything read from the store (workflow names, task ids, errors,
 * output) is text a workflow or a task wrote: on the text outputs it goes
 * through text_escape (util/text.h), as the console does, so it cannot
 * drive the terminal; in JSON, invalid UTF-8 becomes U+FFFD.
 */
#ifndef DAGRUN_CLI_HIST_H
#define DAGRUN_CLI_HIST_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#include "report/store_json.h"
#include "store/store.h"
#include "util/arena.h"
#include "util/buf.h"

/* Options every history command takes. */
struct hist_common {
	const char *state;         /* --state DIR, or NULL */
	bool json;                 /* --format json */
};

/* Parses --format's argument into c->json. Returns 0, or -1 after printing
 * a usage message naming cmd. */
int hist_parse_format(const char *cmd, const char *arg, struct hist_common *c);

/* After getopt: at most one operand, the WORKFLOW (*workflow, left alone
 * when absent), and a --state that is not empty. Prints usage or the
 * error for cmd and returns -1 when not, else 0. */
int hist_operands(const char *cmd, int argc, char **argv, const char *usage,
		  const struct hist_common *c, const char **workflow);

/* Opens the store of dir (read-only unless write). Returns 0 and *out;
 * -ENOENT when nothing was recorded in dir (the state directory or its
 * database does not exist; nothing printed, nothing created); any other
 * negative errno after printing "dagrun CMD: why" on stderr. */
int hist_open(const char *cmd, const char *dir, bool write, struct store **out);

/* Prints "dagrun CMD: MSG" on stderr with MSG escaped (it names files and
 * runs the user typed, and may quote text from the store). */
void hist_say(const char *cmd, const char *msg);

/* Prints "dagrun CMD: no runs recorded in DIR" on stderr. */
void hist_none(const char *cmd, const char *dir);

/* Finds the run `ref` (an id, a unique prefix of one, or "last"). Returns
 * the exit status: EXIT_OK and *ri (strings in mem); EXIT_USAGE for an
 * unknown, ambiguous or malformed reference; EXIT_INTERNAL for a failure of
 * the store. Prints the reason on stderr. */
int hist_find(const char *cmd, struct store *s, const char *ref, struct arena *mem,
	      struct store_run_info *ri);

/* See store_run_settle (report/store_json.h). */
static inline void hist_run_settle(struct store_run_info *r)
{
	store_run_settle(r);
}

/* Milliseconds since the epoch, now. */
uint64_t hist_now_ms(void);

/* A duration for people: "450ms", "1.2s", "3m04s", "2h05m", "3d04h". */
void hist_fmt_ms(uint64_t ms, char *buf, size_t n);
/* A wall-clock time (ms since the epoch) in local time,
 * "2025-03-01 14:03:22"; "-" for 0. */
void hist_fmt_time(uint64_t ms, char *buf, size_t n);
/* A signal number as "SIGTERM" (or "signal N"). */
void hist_fmt_signal(int sig, char *buf, size_t n);

/* Counts by status ("3 completed, 1 failed") into out. Returns 0 or what
 * buf_add returns. */
int hist_counts(struct buf *out, const uint32_t counts[STORE_TASK_NSTATUS]);

/* ---- JSON ---------------------------------------------------------------- */

/* The store's records as JSON, as the server's API writes them too
 * (report/store_json.h): a string (invalid UTF-8 as U+FFFD; null for
 * NULL), a time (RFC 3339 UTC; null for 0), a run (`dagrun runs --format
 * json`, docs/cli.md). NULL only on OOM. */
static inline json_t *hist_json_str(const char *s)
{
	return store_json_str(s);
}
static inline json_t *hist_json_time(uint64_t ms)
{
	return store_json_time(ms);
}
static inline json_t *hist_json_run(const struct store_run_info *r)
{
	return store_json_run(r);
}
/* Writes j and a newline to f, and frees j. Returns 0 or -1 (OOM, or f
 * failed). */
int hist_json_print(json_t *j, FILE *f);
/* Appends j (no newline after it) to out as it would show nested `depth`
 * levels down in an indented document, and frees j: lists of many items
 * are written one item at a time, never held whole. tmp is scratch space
 * (kept for the next call). Returns 0 or -1 (OOM). */
int hist_json_item(json_t *j, unsigned depth, struct buf *tmp, struct buf *out);

/* ---- text tables --------------------------------------------------------- */

/* Rows of cells, printed in columns two spaces apart; the last column is
 * not padded. Cells are copied, escaped unless added raw. */
struct hist_table {
	size_t ncol, ncell, cap;
	char **cell;
	int err;                   /* the first failure: -ENOMEM */
};

void hist_table_init(struct hist_table *t, size_t ncol);
/* Adds the next cell (rows fill left to right): s escaped for a terminal
 * (NULL: empty). Failures are kept in t->err. */
void hist_table_add(struct hist_table *t, const char *s);
/* Adds a cell the caller made (digits, formatted times): not escaped. */
void hist_table_add_raw(struct hist_table *t, const char *s);
/* Prints the table to f. Returns 0, or t->err. */
int hist_table_print(struct hist_table *t, FILE *f);
void hist_table_free(struct hist_table *t);

/* Appends s escaped for a terminal (newlines escaped too). */
int hist_esc(struct buf *out, const char *s);

#endif
