/* graph.c: `dagrun graph FILE [--format dot|mermaid|json|svg] [-o OUT]`,
 * and `dagrun graph RUN [--format dot|svg]`: a recorded run's graph,
 * coloured by status. An argument that names something in the file system
 * is a workflow file; anything else is a run of the state store. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cli/rundoc.h"
#include "report/report.h"

static const char usage[] =
	"usage: dagrun graph [--format dot|mermaid|json|svg] [-o OUT] FILE\n"
	"       dagrun graph [--format dot|svg] [-o OUT] [--state DIR] RUN\n"
	"\n"
	"Prints the dependency graph of FILE (default format: dot) to standard\n"
	"output or OUT. Nodes show the task id and kind; non-blocking edges are\n"
	"dashed and conditional edges carry their condition. svg is laid out by\n"
	"Graphviz's library in the process (no dot program needed; at most 5,000\n"
	"tasks).\n"
	"\n"
	"When the argument names no file, it is a recorded run (a run id, a unique\n"
	"prefix of one, or `last`, in the state directory: --state DIR, else\n"
	"$DAGRUN_STATE, else .dagrun): its graph, each task filled with the colour\n"
	"of its status (and, in svg, its node of class st-STATUS).\n";

/* A recorded run's graph (fmt DAGRUN_GRAPH_DOT or _SVG). */
static int graph_run(const char *ref, enum dagrun_graph_format fmt, const char *state,
		     const char *outpath)
{
	struct report_rundoc_opts o = {.no_history = true, .no_outputs = true};
	json_t *doc = NULL;
	int status = cli_rundoc("graph", state, ref, &o, &doc);
	if (status == EXIT_USAGE)
		fprintf(stderr, "dagrun graph: (and no file is named '%s')\n", ref);
	if (status != EXIT_OK)
		return status;
	struct cli_out out;
	if (cli_out_open("graph", outpath, &out) < 0) {
		json_decref(doc);
		return EXIT_USAGE;
	}
	char *err = NULL;
	int r = fmt == DAGRUN_GRAPH_SVG ? report_graph_svg(doc, REPORT_SVG_STATUS, out.f, &err) :
		report_graph_dot(doc, REPORT_SVG_STATUS, out.f, &err);
	if (r < 0)
		fprintf(stderr, "dagrun graph: %s\n", err ? err : strerror(-r));
	if (cli_out_close("graph", &out, r == 0) < 0 && r == 0)
		r = -EIO;
	free(err);
	json_decref(doc);
	return r == 0 ? EXIT_OK : r == -E2BIG ? EXIT_USAGE : EXIT_INTERNAL;
}

int cli_graph(int argc, char **argv)
{
	static const struct option opts[] = {
		{"help", no_argument, NULL, 'h'},
		{"format", required_argument, NULL, 'f'},
		{"output", required_argument, NULL, 'o'},
		{"color", required_argument, NULL, 'c'},
		{"state", required_argument, NULL, 'S'},
		{0, 0, 0, 0},
	};
	const char *format = "dot", *outpath = NULL, *color = "auto", *state = NULL;
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "hf:o:", opts, NULL)) != -1) {
		switch (c) {
		case 'h': fputs(usage, stdout); return EXIT_OK;
		case 'f': format = optarg; break;
		case 'o': outpath = optarg; break;
		case 'c': color = optarg; break;
		case 'S': state = optarg; break;
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
	if (!cli_names_file(argv[optind])) {
		if (fmt != DAGRUN_GRAPH_DOT && fmt != DAGRUN_GRAPH_SVG) {
			fprintf(stderr, "dagrun graph: '%s' names no file: as a recorded run, its "
				"graph is drawn as dot or svg, not %s\n", argv[optind], format);
			return EXIT_USAGE;
		}
		if (state && !*state) {
			fprintf(stderr, "dagrun graph: --state takes a directory\n");
			return EXIT_USAGE;
		}
		return graph_run(argv[optind], fmt, state, outpath);
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
