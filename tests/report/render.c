/* render.c: the report module's renderers from the command line, for the
 * end-to-end tests (test_report_e2e.py) until `dagrun report`, `dagrun
 * trace` and `dagrun show --timeline` call them.
 *
 *   render html|trace|gantt|svg|graph-svg IN.json [OUT] [WIDTH]
 *
 * svg: the status graph of a run document; graph-svg: a graph document
 * (`dagrun graph --format json`). OUT "-" or absent: standard output.
 * Exit 0, or 1 with the renderer's message on standard error. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "report/report.h"

int main(int argc, char **argv)
{
	if (argc < 3) {
		fputs("usage: render html|trace|gantt|svg|graph-svg IN.json [OUT] [WIDTH]\n", stderr);
		return 2;
	}
	json_error_t je;
	json_t *doc = json_load_file(argv[2], 0, &je);
	if (!doc) {
		fprintf(stderr, "render: %s:%d: %s\n", argv[2], je.line, je.text);
		return 1;
	}
	FILE *out = stdout;
	if (argc > 3 && strcmp(argv[3], "-") && !(out = fopen(argv[3], "w"))) {
		fprintf(stderr, "render: %s: %s\n", argv[3], strerror(errno));
		json_decref(doc);
		return 1;
	}
	char *err = NULL;
	int r;
	const char *what = argv[1];
	if (!strcmp(what, "html"))
		r = report_html(doc, NULL, out, &err);
	else if (!strcmp(what, "trace"))
		r = report_trace(doc, out, &err);
	else if (!strcmp(what, "gantt"))
		r = report_gantt_text(doc, argc > 4 ? (unsigned)atoi(argv[4]) : 100, out, &err);
	else if (!strcmp(what, "svg"))
		r = report_graph_svg(doc, REPORT_SVG_STATUS, out, &err);
	else if (!strcmp(what, "graph-svg"))
		r = report_graph_svg(doc, 0, out, &err);
	else {
		fprintf(stderr, "render: unknown renderer '%s'\n", what);
		r = -EINVAL;
	}
	if (out != stdout && fclose(out) != 0 && r == 0)
		r = -errno;
	if (r < 0)
		fprintf(stderr, "render: %s\n", err ? err : strerror(-r));
	free(err);
	json_decref(doc);
	return r < 0;
}
