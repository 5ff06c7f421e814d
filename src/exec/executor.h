/* executor.h: the one small interface every task kind runs behind.
 *
 * The scheduler hands an attempt to an executor with start(); the executor
 * later calls attempt->on_done exactly once (never from inside start(); a
 * synchronous failure is reported by returning < 0 from start, and then
 * on_done is not called). cancel() asks a running attempt to stop: soft
 * (SIGTERM, then SIGKILL after killGrace) or hard (at once); on_done still
 * follows, with result.cancelled set. The scheduler never knows which
 * executor it drives (ninja's CommandRunner; curl's Curl_ssl table). Which
 * executor runs which task kind is the kinds' table's business
 * (kinds/kind.h); an executor serving several kinds tells them apart by
 * the attempt's variant.
 */
#ifndef DAGRUN_EXECUTOR_H
#define DAGRUN_EXECUTOR_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "model/model.h"
#include "util/buf.h"

/* Per-attempt cap on captured stdout and on captured stderr (each). Bytes
 * beyond are read and counted but not kept; the result says so. */
#define EXEC_OUTPUT_CAP ((size_t)1 << 20)   /* 1 MiB */

enum exec_stream { EXEC_STDOUT = 1, EXEC_STDERR = 2 };

struct expr_outputs;   /* expr/value.h */

/* What a result holds of its kind's own (HTTP status and timings, an AI
 * reply's model and usage, a sub-run's counts), beside what every attempt
 * has. Made by the executor, owned by the result, freed by free():
 *  - pub: the tagged extensions events carry (dagrun_event.ext; the types
 *    and their fields are public, in dagrun.h), a chain; or NULL;
 *  - headers: an HTTP response's headers (a JSON object of strings, names
 *    lower-cased), which expressions read as http.headers and events do
 *    not carry; or NULL;
 *  - outputs: outputs the kind produced itself (a sub-run's `outputs`),
 *    which expressions read as outputs.<key> (masked, as those of
 *    $DAGRUN_OUTPUT, which they replace); or NULL.
 * Strings in pub are already masked with the attempt's redactor. */
struct exec_ext {
	struct dagrun_ext *pub;
	json_t *headers;
	struct expr_outputs *outputs;
	void (*free)(struct exec_ext *x);
};

struct exec_result {
	bool ok;                   /* the attempt succeeded */
	uint8_t error_class;       /* enum dr_error_class when !ok */
	int exit_code;             /* -1 when none (signal, spawn failure) */
	int term_signal;           /* 0 when none */
	bool timed_out, cancelled;
	char *error;               /* malloc'd message when !ok, or NULL */
	uint64_t start_ms, end_ms; /* wall clock, ms since the epoch */
	uint64_t duration_ms;      /* monotonic */
	uint64_t cpu_user_ms, cpu_sys_ms;
	long max_rss_kb;
	struct buf out;            /* captured stdout, up to EXEC_OUTPUT_CAP */
	struct buf err;            /* captured stderr, up to EXEC_OUTPUT_CAP */
	uint64_t out_bytes, err_bytes; /* all bytes seen, kept or not */
	struct buf err_tail;       /* stderr past EXEC_OUTPUT_CAP: its last
				    * bytes (up to 4 KiB), the real end; else
				    * empty (err holds the end) */
	uint64_t out_dropped, err_dropped; /* of those, bytes the result does not
				    * keep: past EXEC_OUTPUT_CAP (for HTTP,
				    * where `out` holds the whole body, the
				    * result's output is cut there) or lost;
				    * 0: complete. Reported, never silent. */
	uint64_t retry_after_ms;   /* a delay the server asked for, or 0 */
	const char *warning;       /* static text to surface once (e.g. TLS
				    * verification off), not owned; or NULL */
	struct exec_ext *ext;      /* the kind's own data; owned; or NULL */
};

/* Frees what a result owns (the extension too). */
void exec_result_free(struct exec_result *r);

/* Fails r: ok false, class c, error the formatted message (replacing the
 * one before, which an argument may be; NULL when it cannot be built). Returns 0, or -ENOMEM when the
 * message could not be built (r fails all the same). */
int exec_fail(struct exec_result *r, enum dr_error_class c, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
int exec_vfail(struct exec_result *r, enum dr_error_class c, const char *fmt, va_list ap);

struct exec_attempt;
struct expr_kv;     /* expr/value.h */
struct redactor;    /* expr/redact.h */

#define EXEC_SNIPPET_MAX 200     /* bytes of a reply body an error quotes */
#define EXEC_SNIPPET_SCAN 4096   /* ... masked first over this many */

/* Appends to out what an error message quotes of a reply body (HTTP and AI
 * executors alike): its first EXEC_SNIPPET_MAX bytes, with every secret of
 * red (may be NULL) masked BEFORE the cut (redact_slice over the first
 * EXEC_SNIPPET_SCAN bytes as they read inside the whole body, so a secret
 * crossing the cut is masked, never quoted in part), cut on a UTF-8
 * character boundary, control characters as spaces, and "..." when
 * anything was left out. Appends nothing when the masking fails (nothing
 * rather than a piece). Returns 0 or -ENOMEM/-E2BIG from out. */
int exec_body_snippet(const struct redactor *red, const char *body, size_t len,
		      struct buf *out);

/* Renders t through a->render, or copies it when there is none. Returns 0
 * or < 0 with *err (malloc'd). */
int exec_render(struct exec_attempt *a, const struct dr_text *t,
		int mode, struct buf *out, char **err);

/* A generic value (a JSON body, a payload, a context value) as JSON, its
 * string leaves rendered as plain text through exec_render. Returns 0 and
 * *out (the caller's to json_decref), -ENOMEM, or -EINVAL with *err
 * (malloc'd: a template error, a string that is not UTF-8, a number that is
 * not finite, nesting deeper than 64). */
int exec_value_json(struct exec_attempt *a, const struct dr_value *v, json_t **out, char **err);

struct exec_attempt;

/* How a template's values are escaped where they land (the expressions
 * module implements the rules; see README "Templates"). */
enum exec_render_mode {
	EXEC_RENDER_PLAIN,   /* as text */
	EXEC_RENDER_SHELL,   /* by the shell quoting context around each {{ }} */
	EXEC_RENDER_ARGV,    /* one argv element: as text, no NUL */
	EXEC_RENDER_URL,     /* values percent-encoded unless one is the whole URL */
	EXEC_RENDER_HEADER,  /* as text; a CR or LF in the result is an error */
};

/* Renders template text t (a string of the task, as loaded) for attempt a,
 * appending to out. Returns 0, or < 0 with *err set to a malloc'd message
 * that names the template's FILE:LINE:COL (the attempt then fails with
 * class permanent). */
typedef int (*exec_render_fn)(struct exec_attempt *a, const struct dr_text *t,
			      enum exec_render_mode mode, struct buf *out, char **err);

typedef void (*exec_output_cb)(struct exec_attempt *a, enum exec_stream s,
			       const char *data, size_t len);
/* An event of a task the attempt runs itself (a sub-workflow's tasks),
 * forwarded with its task id prefixed and its depth counted (see
 * dagrun_event.depth); the scheduler masks and delivers it. Borrowed for
 * the call. */
typedef void (*exec_event_cb)(struct exec_attempt *a, const struct dagrun_event *ev);
/* Called once when the attempt ends. The result is the callee's to read
 * during the call only; the executor frees it after the callback returns. */
typedef void (*exec_done_cb)(struct exec_attempt *a, struct exec_result *r);

struct exec_attempt {
	/* Set by the scheduler before start(); constant while running. */
	const struct dagrun_workflow *wf;
	uint32_t task;               /* index into wf->tasks */
	uint8_t variant;             /* the task kind's dr_kind.variant: which of
				      * the kinds an executor serves it is */
	uint32_t attempt;            /* 1-based */
	const char *run_id;
	const char *output_file;     /* path for $DAGRUN_OUTPUT, or NULL */
	exec_output_cb on_output;    /* chunks as they arrive; may be NULL */
	exec_event_cb on_event;      /* a sub-run's events; may be NULL */
	exec_done_cb on_done;
	exec_render_fn render;       /* NULL: strings are used as written */
	/* The run's secrets (borrowed; NULL: none), for what an executor cuts
	 * (mask first: redact_slice) and for headers that hold a secret (not
	 * sent to another origin on a redirect). */
	const struct redactor *redactor;
	void *owner;                 /* the scheduler's data */
	/* The executor's own state for this attempt. */
	void *priv;
	/* Set by start() when it started a process (command, script): the
	 * leader's pid (also its process group and session) and its start
	 * time (util/pstat.h), which the store records so that resume can
	 * find what is left of the attempt after a crash; 0 otherwise. */
	int64_t pid;
	uint64_t pid_start;
	/* Set by the AI executor around its own render calls (system, prompt)
	 * and NULL otherwise: the task's rendered context, which the render
	 * callback exposes to templates as context.<key>. Borrowed. */
	const struct expr_kv *context;
	size_t n_context;
};

struct executor;

struct executor_ops {
	const char *name;
	/* Starts a. Returns 0, or -errno when nothing could be started (the
	 * caller classifies: -EAGAIN/-ENOMEM/-EMFILE/-ENFILE as resource). */
	int (*start)(struct executor *ex, struct exec_attempt *a);
	/* Asks a running attempt to stop; hard: SIGKILL at once. */
	void (*cancel)(struct executor *ex, struct exec_attempt *a, bool hard);
	/* Frees the executor; no attempt may still be running. */
	void (*destroy)(struct executor *ex);
	/* Optional: called once before the run's first attempt, with the run
	 * id, the run's dagrun_process_flags and hold_fd, a descriptor that
	 * what the executor leaves behind must keep open while it lives (the
	 * state store's lock: resume waits for it), or -1 (the executor of
	 * processes sets up its watchdog, which holds hold_fd, and, on
	 * request, adopts orphans). Returns 0 or -errno (the run does not
	 * start). NULL: nothing to do. */
	int (*begin)(struct executor *ex, const char *run_id, unsigned process_flags,
		     int hold_fd);
};

struct executor {
	const struct executor_ops *ops;
};

#endif
