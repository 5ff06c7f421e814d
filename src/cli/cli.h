/* cli.h: the commands of the dagrun CLI, each `int cli_X(argc, argv)`
 * returning the process exit status; shared helpers for printing. */
#ifndef DAGRUN_CLI_H
#define DAGRUN_CLI_H

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
int cli_report(int argc, char **argv);
int cli_trace(int argc, char **argv);
int cli_stats(int argc, char **argv);

/* Writes the Chrome trace of recorded run ref (of the state directory
 * state, NULL: the default) to path (NULL or "-": standard output), as
 * `dagrun trace` does; what `dagrun run --trace FILE` calls once its run
 * is recorded. Messages say "dagrun CMD: ...". Returns the exit status. */
int cli_trace_run(const char *cmd, const char *state, const char *ref, const char *path);

/* The state directory: opt (--state DIR) when given, else $DAGRUN_STATE
 * when set and not empty, else ".dagrun" (in the current directory). The
 * string returned is opt, the environment's or a literal: not to be
 * freed. */
const char *cli_state_dir(const char *opt);

/* Whether to colour output on stream f given --color (auto|always|never)
 * and NO_COLOR. Returns 0 or 1. */
int cli_use_color(const char *mode, FILE *f);

/* Loads path, printing diagnostics to stderr. Returns the workflow or NULL
 * (then *status is the exit status to use). */
dagrun_workflow *cli_load(const char *path, int color, int *status);

#endif
