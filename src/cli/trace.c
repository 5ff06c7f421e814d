/* trace.c: `dagrun trace RUN [-o FILE]`: a recorded run as Chrome
 * trace-event JSON (report/report.h, report_trace), for Perfetto
 * (ui.perfetto.dev) and chrome://tracing; and cli_trace_run(), which
 * `dagrun run --trace FILE` is to call once the run is recorded.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cli/hist.h"
#include "cli/rundoc.h"
#include "report/report.h"

static const char usage[] =
	"usage: dagrun trace [OPTIONS] RUN\n"
	"\n"
	"Writes a recorded run as Chrome trace-event JSON, which Perfetto\n"
	"(ui.perfetto.dev) and chrome://tracing open: one track per running slot\n"
	"with each attempt a slice named by its task (exit code, error and status in\n"
	"its arguments), the waits while ready and the retry delays on tracks of\n"
	"their own, counters of running and ready tasks. RUN is a run id, a unique\n"
	"prefix of one, or `last`.\n"
	"\n"
	"  -o, --output FILE   where to write it (default: standard output); replaced\n"
	"                      whole, never left half written\n"
	"      --state DIR     the state directory (default: $DAGRUN_STATE, else .dagrun)\n"
	"\n"
	"Exit status: 0 written, 2 usage error or no such run, 3 the store cannot be\n"
	"read or the file written.\n";

int cli_trace_run(const char *cmd, const char *state, const char *ref, const char *path)
{
	/* the trace reads no output and no history */
	struct report_rundoc_opts o = {.no_history = true, .no_outputs = true};
	json_t *doc = NULL;
	int status = cli_rundoc(cmd, state, ref, &o, &doc);
	if (status != EXIT_OK)
		return status;
	struct cli_out out;
	if (cli_out_open(cmd, path, &out) < 0) {
		json_decref(doc);
		return EXIT_INTERNAL;
	}
	char *err = NULL;
	int r = report_trace(doc, out.f, &err);
	if (r < 0)
		hist_say(cmd, err ? err : strerror(-r));
	if (cli_out_close(cmd, &out, r == 0) < 0 || r < 0)
		status = EXIT_INTERNAL;
	free(err);
	json_decref(doc);
	return status;
}

int cli_trace(int argc, char **argv)
{
	const char *state, *path, *ref;
	int status = cli_run_out_args("trace", usage, argc, argv, &state, &path, &ref);
	return status >= 0 ? status : cli_trace_run("trace", state, ref, path);
}
