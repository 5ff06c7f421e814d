/* validate.c: `dagrun validate FILE`: load and check, run nothing. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const char usage[] =
	"usage: dagrun validate [--color auto|always|never] [--quiet] FILE\n"
	"\n"
	"Checks FILE completely without running anything: YAML syntax, every key\n"
	"and type, ids, dependencies, cycles, durations and resource requests.\n"
	"Errors are printed as FILE:LINE:COL: error: MESSAGE with the line and a\n"
	"caret. Exit status: 0 valid, 2 invalid or unreadable.\n";

int cli_validate(int argc, char **argv)
{
	static const struct option opts[] = {
		{"help", no_argument, NULL, 'h'},
		{"color", required_argument, NULL, 'c'},
		{"quiet", no_argument, NULL, 'q'},
		{0, 0, 0, 0},
	};
	const char *color = "auto";
	int quiet = 0, c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "hq", opts, NULL)) != -1) {
		switch (c) {
		case 'h': fputs(usage, stdout); return EXIT_OK;
		case 'c': color = optarg; break;
		case 'q': quiet = 1; break;
		default: fputs(usage, stderr); return EXIT_USAGE;
		}
	}
	if (optind != argc - 1) {
		fputs(usage, stderr);
		return EXIT_USAGE;
	}
	int status = EXIT_OK;
	dagrun_workflow *wf = cli_load(argv[optind], cli_use_color(color, stderr), &status);
	if (!wf)
		return status;
	if (!quiet)
		printf("%s: ok: workflow '%s', %zu tasks\n", argv[optind],
		       dagrun_workflow_name(wf), dagrun_workflow_task_count(wf));
	dagrun_workflow_free(wf);
	return EXIT_OK;
}
