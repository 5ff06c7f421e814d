/* cli.h: the commands of the dagrun CLI, each `int cli_X(argc, argv)`
 * returning the process exit status; shared helpers for printing. */
#ifndef DAGRUN_CLI_H
#define DAGRUN_CLI_H

#include <stdint.h>
#include <stdio.h>

#include "dagrun.h"

enum { EXIT_OK = 0, EXIT_TASK_FAILED = 1, EXIT_USAGE = 2, EXIT_INTERNAL = 3 };

int cli_validate(int argc, char **argv);
int cli_graph(int argc, char **argv);
int cli_run(int argc, char **argv);
int cli_runs(int argc, char **argv);
int cli_show(int argc, char **argv);
int cli_logs(int argc, char **argv);
int cli_prune(int argc, char **argv);
int cli_serve(int argc, char **argv);
int cli_resume(int argc, char **argv);
int cli_rerun(int argc, char **argv);
int cli_report(int argc, char **argv);
int cli_trace(int argc, char **argv);
int cli_stats(int argc, char **argv);
int cli_export(int argc, char **argv);
int cli_replay(int argc, char **argv);
int cli_cache(int argc, char **argv);
int cli_explain(int argc, char **argv);

/* The recorded run ref (of the state directory state, NULL: the default)
 * as the document `dagrun export` writes (docs/export.md), into *doc (the
 * caller json_decref's it). Messages say "dagrun CMD: ...". Returns the
 * exit status: EXIT_OK; EXIT_USAGE (nothing recorded, no such run);
 * EXIT_INTERNAL (the store failed, out of memory). */
#include <jansson.h>
int cli_export_doc(const char *cmd, const char *state, const char *ref, json_t **doc);

/* Writes the Chrome trace of recorded run ref (of the state directory
 * state, NULL: the default) to path (NULL or "-": standard output), as
 * `dagrun trace` does; what `dagrun run --trace FILE` calls once its run
 * is recorded. Messages say "dagrun CMD: ...". Returns the exit status. */
int cli_trace_run(const char *cmd, const char *state, const char *ref, const char *path);

/* Whether to colour output on stream f given --color (auto|always|never)
 * and NO_COLOR. Returns 0 or 1. */
int cli_use_color(const char *mode, FILE *f);

/* Loads path, printing diagnostics to stderr. Returns the workflow or NULL
 * (then *status is the exit status to use). */
dagrun_workflow *cli_load(const char *path, int color, int *status);

/* The same from text (a run's recorded definition; name: its file, for
 * messages and relative paths). */
dagrun_workflow *cli_load_buffer(const char *name, const char *text, size_t len, int color,
				 int *status);

/* Reads path whole, then loads it: *text (malloc'd, *len bytes) is what was
 * loaded, which a recorded run keeps as its snapshot. */
dagrun_workflow *cli_load_snapshot(const char *path, int color, int *status, char **text,
				   size_t *len);

/* The state directory of a command: `opt` (--state DIR) when given, else
 * $DAGRUN_STATE when set and not empty, else ".dagrun" (in the current
 * directory). Never NULL; --no-state is the caller's to check. */
const char *cli_state_dir(const char *opt);

/* ---- what run, resume and rerun share ---------------------------------------- */

/* Option codes of the shared long options (beyond any short option). */
enum {
	CLI_OPT_LOG_FORMAT = 256, CLI_OPT_LOG_LEVEL, CLI_OPT_VAR, CLI_OPT_SECRETS,
	CLI_OPT_NO_PROGRESS, CLI_OPT_COLOR, CLI_OPT_STATE, CLI_OPT_NO_STATE,
	CLI_OPT_DURABLE, CLI_OPT_LOG_CAP,
	CLI_OPT_FIRST_FREE = 300,   /* a command's own long options from here */
};

#define CLI_EXEC_OPTIONS \
	{"jobs", required_argument, NULL, 'j'}, \
	{"log-format", required_argument, NULL, CLI_OPT_LOG_FORMAT}, \
	{"log-level", required_argument, NULL, CLI_OPT_LOG_LEVEL}, \
	{"verbose", no_argument, NULL, 'v'}, \
	{"quiet", no_argument, NULL, 'q'}, \
	{"no-progress", no_argument, NULL, CLI_OPT_NO_PROGRESS}, \
	{"color", required_argument, NULL, CLI_OPT_COLOR}, \
	{"var", required_argument, NULL, CLI_OPT_VAR}, \
	{"secrets-file", required_argument, NULL, CLI_OPT_SECRETS}, \
	{"state", required_argument, NULL, CLI_OPT_STATE}, \
	{"no-state", no_argument, NULL, CLI_OPT_NO_STATE}, \
	{"durable", no_argument, NULL, CLI_OPT_DURABLE}, \
	{"log-cap", required_argument, NULL, CLI_OPT_LOG_CAP}

#define CLI_EXEC_HELP \
	"      --state DIR          record the run in DIR (default: $DAGRUN_STATE, else\n" \
	"                           .dagrun in the current directory)\n" \
	"      --no-state           do not record the run\n" \
	"      --durable            survive power loss too (every commit synced)\n" \
	"      --log-cap SIZE       bytes of each attempt's stdout and stderr kept in\n" \
	"                           the state directory (default 64M)\n" \
	"      --log-format F       text (default) or json (one object per line on stderr)\n" \
	"      --log-level L        debug, info (default), warn or error\n" \
	"  -v, --verbose            also show the tasks' output\n" \
	"  -q, --quiet              only failures and the summary\n" \
	"      --no-progress        no live status line, even on a terminal\n" \
	"      --color WHEN         auto (default), always or never; NO_COLOR is honoured\n"

struct cli_exec {
	unsigned jobs;
	int dry_run, verbose, quiet, no_progress, json, level;
	const char *color;
	const char *secrets_file;
	const char **vars;       /* NULL-terminated, malloc'd (not the strings) */
	size_t n_vars;
	const char *state;       /* --state, or NULL */
	int no_state, durable;
	uint64_t log_cap;        /* 0: the default */
	const char *trace;       /* run --trace FILE, or NULL */
	char *trigger_json;      /* trigger.body (run --trigger-file, or the
				  * recorded one of resume and rerun); malloc'd */
	int no_cache;            /* run --no-cache */
};

#define CLI_EXEC_INIT {.level = DAGRUN_INFO, .color = "auto"}

/* Takes option c (getopt_long's) when it is a shared one: returns 1, or -1
 * after saying what is wrong (cmd names the command); 0: not a shared
 * option. */
int cli_exec_option(struct cli_exec *x, int c, const char *arg, const char *cmd);
void cli_exec_free(struct cli_exec *x);

/* Runs wf (or, with x->dry_run, prints its start order) with the display
 * x asks for. text, len: the definition to record (NULL: the engine reads
 * the file); run_id: NULL for a new one; cont: a resume or rerun, or NULL.
 * Returns the exit status, having said what went wrong. */
struct cont_opts;
int cli_execute(struct cli_exec *x, const char *cmd, dagrun_workflow *wf,
		const char *text, size_t len, const char *run_id,
		const struct cont_opts *cont);

#endif
