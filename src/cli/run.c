/* run.c: `dagrun run FILE`: the run engine's command line. */
#include <stdio.h>

#include "cli.h"

int cli_run(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr, "dagrun run: not built yet\n");
	return EXIT_INTERNAL;
}
