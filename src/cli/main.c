/* main.c: the dagrun command line; dispatches to one function per command.
 * Only the CLI prints and chooses exit codes (docs/cli.md): 0 ok, 1 a task
 * failed, 2 usage or invalid workflow, 3 store or internal error. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

static const char usage[] =
	"usage: dagrun [--version] [--help] COMMAND [ARGS]\n"
	"\n"
	"commands:\n"
	"  run FILE        validate, then run the workflow (recorded in .dagrun/)\n"
	"  resume RUN      continue a run that did not finish\n"
	"  rerun RUN       run a recorded run again: what failed, or a selection\n"
	"  validate FILE   check a workflow without running anything\n"
	"  graph FILE      print the dependency graph (dot, mermaid, json, svg)\n"
	"  runs            list past and live runs, newest first\n"
	"  show RUN        a run's tasks: status, attempts, duration, errors\n"
	"                  (--timeline: a text Gantt chart)\n"
	"  logs RUN [TASK] the output of a run or a task (-f follows a live run)\n"
	"  report RUN      write a run's HTML report (one self-contained file)\n"
	"  trace RUN       write a run as a Chrome trace (Perfetto, chrome://tracing)\n"
	"  graph RUN       a recorded run's graph coloured by status (dot, svg)\n"
	"  export RUN      write a recorded run as one JSON document (secrets masked)\n"
	"  replay RUN      evaluate the workflow again over a recorded run (or an\n"
	"                  export), no side effect: what would diverge\n"
	"  explain TASK    the components of a task's cache key, and what changed\n"
	"  cache clear     remove cache entries (of a workflow, of one task)\n"
	"  stats           durations, failure rates and resources over past runs\n"
	"  prune           remove old runs and their logs\n"
	"  serve           REST API and metrics over the workflows and the store\n"
	"\n"
	"`dagrun COMMAND --help` describes a command.\n";

int main(int argc, char **argv)
{
	if (argc < 2) {
		fputs(usage, stderr);
		return 2;
	}
	const char *cmd = argv[1];
	if (!strcmp(cmd, "--version") || !strcmp(cmd, "-V")) {
		printf("dagrun %s\n", dagrun_version());
		return 0;
	}
	if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
		fputs(usage, stdout);
		return 0;
	}
	/* Each command parses its own options from argv[1] on. */
	if (!strcmp(cmd, "validate"))
		return cli_validate(argc - 1, argv + 1);
	if (!strcmp(cmd, "graph"))
		return cli_graph(argc - 1, argv + 1);
	if (!strcmp(cmd, "run"))
		return cli_run(argc - 1, argv + 1);
	if (!strcmp(cmd, "runs"))
		return cli_runs(argc - 1, argv + 1);
	if (!strcmp(cmd, "show"))
		return cli_show(argc - 1, argv + 1);
	if (!strcmp(cmd, "logs"))
		return cli_logs(argc - 1, argv + 1);
	if (!strcmp(cmd, "prune"))
		return cli_prune(argc - 1, argv + 1);
	if (!strcmp(cmd, "serve"))
		return cli_serve(argc - 1, argv + 1);
	if (!strcmp(cmd, "resume"))
		return cli_resume(argc - 1, argv + 1);
	if (!strcmp(cmd, "rerun"))
		return cli_rerun(argc - 1, argv + 1);
	if (!strcmp(cmd, "report"))
		return cli_report(argc - 1, argv + 1);
	if (!strcmp(cmd, "trace"))
		return cli_trace(argc - 1, argv + 1);
	if (!strcmp(cmd, "export"))
		return cli_export(argc - 1, argv + 1);
	if (!strcmp(cmd, "replay"))
		return cli_replay(argc - 1, argv + 1);
	if (!strcmp(cmd, "stats"))
		return cli_stats(argc - 1, argv + 1);
	if (!strcmp(cmd, "cache"))
		return cli_cache(argc - 1, argv + 1);
	if (!strcmp(cmd, "explain"))
		return cli_explain(argc - 1, argv + 1);
	fprintf(stderr, "dagrun: unknown command '%s'\n%s", cmd, usage);
	return 2;
}
