/* graph.c: `dagrun graph FILE [--format dot|mermaid|json|svg] [-o OUT]`. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "report/report.h"

static const char usage[] =
	"usage: dagrun graph [--format dot|mermaid|json|svg] [-o OUT] FILE\n"
	"\n"
	"Prints the dependency graph of FILE (default format: dot) to standard\n"
	"output or OUT. Nodes show the task id and kind; non-blocking edges are\n"
	"dashed and conditional edges carry their condition. svg is laid out by\n"
	"Graphviz's library in the process (no dot program needed; at most 5,000\n"
	"tasks).\n";

int cli_graph(int argc, char **argv)
{
	static const struct option opts[] = {
		{"help", no_argument, NULL, 'h'},
		{"format", required_argument, NULL, 'f'},
		{"output", required_argument, NULL, 'o'},
		{"color", required_argument, NULL, 'c'},
		{0, 0, 0, 0},
	};
	const char *format = "dot", *outpath = NULL, *color = "auto";
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "hf:o:", opts, NULL)) != -1) {
		switch (c) {
		case 'h': fputs(usage, stdout); return EXIT_OK;
		case 'f': format = optarg; break;
		case 'o': outpath = optarg; break;
		case 'c': color = optarg; break;
		default: fputs(usage, stderr); return EXIT_USAGE;
		}
	}
	if (optind != argc - 1) {
		fputs(usage, stderr);
		return EXIT_USAGE;
	}
	enum dagrun_graph_format fmt;
	if (!strcmp(format, "dot"))
		fmt = DAGRUN_GRAPH_DOT;
	else if (!strcmp(format, "mermaid"))
		fmt = DAGRUN_GRAPH_MERMAID;
	else if (!strcmp(format, "json"))
		fmt = DAGRUN_GRAPH_JSON;
	else if (!strcmp(format, "svg"))
		fmt = DAGRUN_GRAPH_SVG;
	else {
		fprintf(stderr, "dagrun graph: unknown format '%s' (dot, mermaid, json, svg)\n", format);
		return EXIT_USAGE;
	}
	int status = EXIT_OK;
	dagrun_workflow *wf = cli_load(argv[optind], cli_use_color(color, stderr), &status);
	if (!wf)
		return status;
	FILE *out = stdout;
	if (outpath && !(out = fopen(outpath, "w"))) {
		fprintf(stderr, "dagrun graph: %s: %s\n", outpath, strerror(errno));
		dagrun_workflow_free(wf);
		return EXIT_USAGE;
	}
	/* svg through the report module directly, for Graphviz's message */
	char *err = NULL;
	int r = fmt == DAGRUN_GRAPH_SVG ? report_graph_svg_workflow(wf, out, &err) :
		dagrun_graph_write(wf, fmt, out);
	if (out != stdout && fclose(out) != 0 && r == 0)
		r = -errno;
	else if (out == stdout && fflush(out) != 0 && r == 0)
		r = -errno;
	dagrun_workflow_free(wf);
	if (r < 0) {
		fprintf(stderr, "dagrun graph: %s\n", err ? err : strerror(-r));
		free(err);
		return r == -E2BIG ? EXIT_USAGE : EXIT_INTERNAL;
	}
	return EXIT_OK;
}
