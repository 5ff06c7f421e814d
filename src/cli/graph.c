/* graph.c: `dagrun graph FILE [--format dot|mermaid|json] [-o OUT]`. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const char usage[] =
	"usage: dagrun graph [--format dot|mermaid|json] [-o OUT] FILE\n"
	"\n"
	"Prints the dependency graph of FILE (default format: dot) to standard\n"
	"output or OUT. Nodes show the task id and kind; non-blocking edges are\n"
	"dashed and conditional edges carry their condition.\n"
	"Render dot with Graphviz: dagrun graph wf.yaml | dot -Tsvg > wf.svg\n";

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
	else {
		fprintf(stderr, "dagrun graph: unknown format '%s' (dot, mermaid, json)\n", format);
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
	int r = dagrun_graph_write(wf, fmt, out);
	if (out != stdout && fclose(out) != 0 && r == 0)
		r = -errno;
	else if (out == stdout && fflush(out) != 0 && r == 0)
		r = -errno;
	dagrun_workflow_free(wf);
	if (r < 0) {
		fprintf(stderr, "dagrun graph: %s\n", strerror(-r));
		return EXIT_INTERNAL;
	}
	return EXIT_OK;
}
