/* common.c: helpers shared by the CLI commands. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

int cli_use_color(const char *mode, FILE *f)
{
	if (mode && !strcmp(mode, "always"))
		return 1;
	if (mode && !strcmp(mode, "never"))
		return 0;
	const char *nc = getenv("NO_COLOR");
	if (nc && *nc)
		return 0;
	const char *term = getenv("TERM");
	if (term && !strcmp(term, "dumb"))
		return 0;
	return isatty(fileno(f));
}

const char *cli_state_dir(const char *opt)
{
	if (opt && *opt)
		return opt;
	const char *env = getenv("DAGRUN_STATE");
	return env && *env ? env : ".dagrun";
}

/* Loads path, or text when not NULL (named path). */
static dagrun_workflow *load(const char *path, const char *text, size_t len, int color,
			     int *status)
{
	dagrun_diags *d = dagrun_diags_new(0);
	dagrun_workflow *wf = NULL;
	if (!d) {
		fprintf(stderr, "dagrun: out of memory\n");
		*status = EXIT_INTERNAL;
		return NULL;
	}
	int r = text ? dagrun_workflow_load_buffer(path, text, len, &wf, d)
		     : dagrun_workflow_load(path, &wf, d);
	dagrun_diags_print(d, stderr, color);
	if (r < 0) {
		size_t n = dagrun_diags_errors(d);
		if (n)
			fprintf(stderr, "%s: %zu error%s\n", path, n, n == 1 ? "" : "s");
		else
			fprintf(stderr, "dagrun: %s: %s\n", path, strerror(-r));
		*status = EXIT_USAGE;
		wf = NULL;
	}
	dagrun_diags_free(d);
	return wf;
}

dagrun_workflow *cli_load(const char *path, int color, int *status)
{
	return load(path, NULL, 0, color, status);
}

dagrun_workflow *cli_load_buffer(const char *name, const char *text, size_t len, int color,
				 int *status)
{
	return load(name, text ? text : "", len, color, status);
}
