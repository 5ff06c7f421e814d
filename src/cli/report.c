/* report.c: `dagrun report RUN [-o FILE]`: the HTML report of a recorded
 * run, one self-contained file (report/report.h, report_html), from the
 * run document built from the state store (report/rundoc.h).
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cli/hist.h"
#include "cli/rundoc.h"
#include "report/report.h"

#define REPORT_DEFAULT_PATH "report.html"

static const char usage[] =
	"usage: dagrun report [OPTIONS] RUN\n"
	"\n"
	"Writes the HTML report of a recorded run: one self-contained file (inline\n"
	"CSS, JavaScript and SVG; nothing fetched, it opens from a file:// URL, as a\n"
	"CI artefact or by mail) with the run's summary, a timeline of every attempt\n"
	"(time waited while ready, retry delays), the dependency graph coloured by\n"
	"status (up to 1,000 tasks), and each task's attempts: exit code, error,\n"
	"duration, CPU, memory, HTTP status and timings, AI model and tokens, the\n"
	"end of its stdout and stderr, and its duration against p50 / p95 of its\n"
	"successful attempts in the workflow's earlier runs (the newest 50). RUN is a\n"
	"run id, a unique prefix of one, or `last`.\n"
	"\n"
	"  -o, --output FILE   where to write it (default report.html; - for standard\n"
	"                      output); replaced whole, never left half written\n"
	"      --tail N        bytes of the end of each attempt's stdout and stderr\n"
	"                      (default 4096, at most 1048576)\n"
	"      --state DIR     the state directory (default: $DAGRUN_STATE, else .dagrun)\n"
	"\n"
	"Exit status: 0 written, 2 usage error or no such run, 3 the store cannot be\n"
	"read or the file written.\n";

struct report_args {
	const char *state, *ref, *out;
	size_t tail;
};

static int parse_args(int argc, char **argv, struct report_args *a)
{
	static const struct option opts[] = {
		{"help", no_argument, NULL, 'h'},
		{"output", required_argument, NULL, 'o'},
		{"tail", required_argument, NULL, 't'},
		{"state", required_argument, NULL, 'S'},
		{0, 0, 0, 0},
	};
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "ho:", opts, NULL)) != -1) {
		switch (c) {
		case 'h': fputs(usage, stdout); return 1;
		case 'o': a->out = optarg; break;
		case 't': {
			char *end;
			errno = 0;
			unsigned long long v = strtoull(optarg, &end, 10);
			if (!*optarg || *end || *optarg == '-' || errno || v < 1 ||
			    v > REPORT_TAIL_MAX) {
				fprintf(stderr, "dagrun report: --tail takes a number of bytes from 1 "
					"to %u\n", REPORT_TAIL_MAX);
				return -1;
			}
			a->tail = (size_t)v;
			break;
		}
		case 'S': a->state = optarg; break;
		default: fputs(usage, stderr); return -1;
		}
	}
	if (optind != argc - 1) {
		fputs(usage, stderr);
		return -1;
	}
	a->ref = argv[optind];
	if ((a->state && !*a->state) || (a->out && !*a->out)) {
		fprintf(stderr, "dagrun report: --%s takes a %s\n", a->out && !*a->out ? "output" :
			"state", a->out && !*a->out ? "file" : "directory");
		return -1;
	}
	return 0;
}

int cli_report(int argc, char **argv)
{
	struct report_args a = {0};
	int r = parse_args(argc, argv, &a);
	if (r)
		return r > 0 ? EXIT_OK : EXIT_USAGE;
	struct report_rundoc_opts o = {.tail_bytes = a.tail};
	json_t *doc = NULL;
	int status = cli_rundoc("report", a.state, a.ref, &o, &doc);
	if (status != EXIT_OK)
		return status;
	const char *path = a.out ? a.out : REPORT_DEFAULT_PATH;
	struct cli_out out;
	if (cli_out_open("report", path, &out) < 0) {
		json_decref(doc);
		return EXIT_INTERNAL;
	}
	char *err = NULL;
	r = report_html(doc, NULL, out.f, &err);
	if (r < 0)
		hist_say("report", err ? err : strerror(-r));
	if (cli_out_close("report", &out, r == 0) < 0 || r < 0)
		status = EXIT_INTERNAL;
	else if (out.path)
		fprintf(stderr, "dagrun report: wrote %s\n", out.path);
	free(err);
	json_decref(doc);
	return status;
}
