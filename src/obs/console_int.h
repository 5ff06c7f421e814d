/* console_int.h: what the pieces of the console observer share (like
 * libuv's internal.h); private to console.c (the record, the live line,
 * the events), console_output.c (task output as lines) and
 * console_summary.c (what the summary remembers, and the summary). See
 * console.c for the invariants of the screen.
 */
#ifndef DAGRUN_OBS_CONSOLE_INT_H
#define DAGRUN_OBS_CONSOLE_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dagrun.h"
#include "obs/sink.h"
#include "util/buf.h"

#define SLOWEST 5
#define FAILURES_KEPT 20
#define CUTS_KEPT 5
#define ID_SHOWN 60
#define PARTIALS 32          /* output streams with an unfinished line */
#define PARTIAL_MAX 4096     /* a longer unfinished line is shown as is */

/* The unfinished last line of one task's stream, until its newline. */
struct partial {
	uint32_t task;
	int stream;          /* 0: free */
	char id[ID_SHOWN + 1];
	struct buf b;
};

struct slow {
	uint64_t ms;
	char id[ID_SHOWN + 1];
};

#define MODELS 16

/* Tokens used per model, for the summary. */
struct usage {
	char model[64];
	uint64_t prompt, completion, calls;
};

struct failure {
	char *id, *error, *tail;
	size_t tail_len;
	int cls;
};

/* A task whose output was cut at the per-attempt cap, for the summary. */
struct cut {
	char id[ID_SHOWN + 1];
	bool out, err;
};

struct dagrun_console {
	struct obs_sink *sink;
	struct buf rec;          /* the text of the event being handled */
	struct buf final;        /* the summary, when it had to wait for room */
	int flags;
	uint64_t total, done, running, failed, retrying;
	size_t counts[DAGRUN_CANCELLED + 1];
	char newest[ID_SHOWN + 1];
	bool line_shown;
	struct slow slow[SLOWEST];
	struct failure fail[FAILURES_KEPT];
	size_t n_fail, more_fail;
	struct cut cut[CUTS_KEPT];
	size_t n_cut, more_cut;
	struct partial part[PARTIALS];
	struct usage usage[MODELS];
	size_t n_usage;
	uint32_t last_task;      /* the task of the last ATTEMPT_END */
	uint64_t last_ms;        /* its duration */
	bool last_cached;        /* it was a cache hit */
	uint64_t cached;         /* cache hits in the run */
};

#define RESET "\033[0m"
#define RED "\033[31m"
#define GREEN "\033[32m"
#define YELLOW "\033[33m"
#define BOLD "\033[1m"
#define DIM "\033[2m"

/* ---- console.c: the record and the live line ----------------------------- */

/* Appends to the record, printf-style (text from the workflow or a task
 * goes through the console_put_text* functions instead). */
__attribute__((format(printf, 2, 3)))
void console_put(dagrun_console *c, const char *fmt, ...);

/* Appends p[0 .. n), text from the workflow or a task, escaped; NULL
 * appends nothing. */
void console_put_textn(dagrun_console *c, const char *p, size_t n);

/* The same for the C string s. */
void console_put_text(dagrun_console *c, const char *s);

/* A message (an error, a log line): escaped, its own newlines kept. */
void console_put_message(dagrun_console *c, const char *s);

/* Copies at most ID_SHOWN bytes of s into dst (ID_SHOWN + 1 bytes), not
 * cutting a character. */
void console_copy_id(char *dst, const char *s);

/* code (one of the colours above) when the console has colours, else "". */
const char *console_col(const dagrun_console *c, const char *code);

/* Erases the live line from the screen, if it is shown. */
void console_clear_line(dagrun_console *c);

/* LIVE: draws the live line anew (erasing the one shown). */
void console_draw_line(dagrun_console *c);

/* ms as "12ms", "1.5s" or "2m05s" into buf (n bytes). */
void console_fmt_ms(uint64_t ms, char *buf, size_t n);

/* ---- console_output.c: task output ---------------------------------------- */

/* A chunk of task output (VERBOSE): one prefixed line per line; an
 * unfinished line waits for the rest of it (or the end of the attempt). */
void console_on_output(dagrun_console *c, const dagrun_event *ev);

/* Shows what the task's streams hold of an unfinished line, as lines. */
void console_flush_task_output(dagrun_console *c, uint32_t task);

/* A line for an attempt whose output the result does not keep in full. */
void console_print_cut(dagrun_console *c, const dagrun_event *ev);

/* ---- console_summary.c: the summary --------------------------------------- */

/* Keeps the SLOWEST longest attempts, one entry per task. */
void console_note_slow(dagrun_console *c, const char *task, uint64_t ms);

/* Adds an attempt's tokens to its model's (nothing for an attempt that
 * used none). */
void console_note_usage(dagrun_console *c, const dagrun_event *ev);

/* Keeps a failed task's id, error and stderr tail (FAILURES_KEPT of them;
 * the others are counted). An allocation that fails loses that detail. */
void console_note_failure(dagrun_console *c, const dagrun_event *ev);

/* Notes an attempt whose output was cut (CUTS_KEPT tasks; the others are
 * counted). */
void console_note_cut(dagrun_console *c, const dagrun_event *ev);

/* Puts the summary of the run that ev (RUN_END) ends into the record. */
void console_print_summary(dagrun_console *c, const dagrun_event *ev);

#endif
