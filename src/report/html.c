/* html.c: the HTML report, one self-contained file.
 *
 * The page is a frame written here (title, header, sections, the graph as
 * inline SVG), the run document embedded as data, and one script
 * (report.js, embedded at build time) that draws the summary, the
 * failures, the timeline and each task's attempts from that data. The
 * same script can draw a document fetched from the server's API.
 *
 * Invariants:
 *  - Nothing is fetched: no element or style of the page names a URL, and
 *    a Content-Security-Policy (default-src 'none', the script and the
 *    style allowed by their SHA-256 only) tells the browser to fetch and
 *    run nothing else, so even a mistake here could not load or run
 *    anything.
 *  - Document text in the frame goes through report_put_html; the data
 *    block is JSON with every '<', '>' and '&' written as \u003c, \u003e,
 *    \u0026 and every non-ASCII character (U+2028, U+2029 among them) as
 *    \uXXXX, so nothing in it can end its <script> element or open a
 *    comment; the script puts text in the page with textContent only.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "report/report_int.h"

/* json_dump_callback's writer: the JSON escaped for a <script> element. */
static int put_data(const char *buf, size_t size, void *data)
{
	FILE *out = data;
	size_t run = 0;
	for (size_t i = 0; i < size; i++) {
		const char *e;
		switch (buf[i]) {
		case '<': e = "\\u003c"; break;
		case '>': e = "\\u003e"; break;
		case '&': e = "\\u0026"; break;
		default: continue;
		}
		fwrite(buf + run, 1, i - run, out);
		fputs(e, out);
		run = i + 1;
	}
	fwrite(buf + run, 1, size - run, out);
	return ferror(out) ? -1 : 0;
}

static void put_str(FILE *out, const struct report_str *s)
{
	if (s->s)
		report_put_html(out, s->s, s->len);
}

static void head(FILE *out, const struct report_doc *d)
{
	fprintf(out, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n"
		"<meta charset=\"utf-8\">\n"
		"<meta http-equiv=\"Content-Security-Policy\" content=\"default-src "
		"'none'; script-src %s; style-src %s; base-uri 'none'; form-action "
		"'none'\">\n"
		"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
		"<meta name=\"generator\" content=\"dagrun\">\n<title>dagrun: ",
		report_asset_js_csp, report_asset_css_csp);
	put_str(out, &d->workflow);
	fputs(" run ", out);
	put_str(out, &d->run_id);
	fputs(" (", out);
	put_str(out, &d->run_status);
	fprintf(out, ")</title>\n<style>%s</style>\n</head>\n", report_asset_css);
}

static void frame_top(FILE *out, const struct report_doc *d)
{
	fputs("<body>\n<header id=\"summary\" class=\"summary\">\n<h1><span class=\"wf\">", out);
	put_str(out, &d->workflow);
	fputs("</span> <span class=\"muted\">run</span> <span class=\"runid\">", out);
	put_str(out, &d->run_id);
	fputs("</span></h1>\n<noscript><p class=\"notice\">This report draws its "
	      "timeline and task details with JavaScript, which is off: only the "
	      "graph below is shown.</p></noscript>\n</header>\n<main>\n"
	      "<section id=\"failures\" hidden></section>\n"
	      "<section id=\"timeline\"><h2>Timeline</h2></section>\n"
	      "<div class=\"cols\">\n<section id=\"graph\"><h2>Dependency graph</h2>\n", out);
}

static void frame_bottom(FILE *out)
{
	fputs("</section>\n<section id=\"details\"><h2>Task</h2><p class=\"muted\">"
	      "Click a task in the timeline or the graph.</p></section>\n</div>\n"
	      "</main>\n<div id=\"tip\" class=\"tip\" hidden></div>\n", out);
}

/* The graph as inline SVG, or a notice saying why it is not drawn. */
static int graph(FILE *out, const struct report_doc *d,
		 const struct report_html_opts *o)
{
	uint32_t max_nodes = o && o->graph_max_nodes ? o->graph_max_nodes :
			     REPORT_HTML_GRAPH_MAX_NODES;
	uint32_t max_edges = o && o->graph_max_edges ? o->graph_max_edges :
			     REPORT_HTML_GRAPH_MAX_EDGES;
	if (d->n_tasks > max_nodes || d->n_edges > max_edges) {
		fprintf(out, "<p class=\"notice\" id=\"graph-omitted\">Not drawn: this "
			"run has %u tasks and %llu dependencies, more than the %u tasks "
			"or %llu dependencies a report draws (Graphviz would take too "
			"long). The timeline above shows every task.</p>\n",
			d->n_tasks, (unsigned long long)d->n_edges, max_nodes,
			(unsigned long long)max_edges);
		return 0;
	}
	char *svg = NULL, *err = NULL;
	size_t len = 0;
	FILE *ms = open_memstream(&svg, &len);
	if (!ms)
		return -ENOMEM;
	int r = report_graph_svg_doc(d, REPORT_SVG_STATUS | REPORT_SVG_INLINE,
				     max_nodes, max_edges, ms, &err);
	if (fclose(ms) != 0 && r == 0)
		r = -ENOMEM;
	if (r == 0) {
		fputs("<div class=\"graph-box\">\n", out);
		fwrite(svg, 1, len, out);
		fputs("</div>\n", out);
	} else if (r == -ENOMEM) {
		/* keep it: out of memory fails the report */
	} else {
		fputs("<p class=\"notice\" id=\"graph-failed\">The graph could not be "
		      "drawn: ", out);
		report_put_html(out, err ? err : strerror(-r), strlen(err ? err : strerror(-r)));
		fputs("</p>\n", out);
		r = 0;
	}
	free(svg);
	free(err);
	return r;
}

int report_html(const json_t *doc, const struct report_html_opts *o,
		FILE *out, char **err)
{
	struct arena mem = ARENA_INIT;
	struct report_doc d;
	int r = report_doc_parse(doc, 0, &mem, &d, err);
	if (r < 0)
		goto out;
	errno = 0;
	head(out, &d);
	frame_top(out, &d);
	if ((r = graph(out, &d, o)) < 0) {
		report_fail(err, r, "out of memory");
		goto out;
	}
	frame_bottom(out);
	fputs("<script type=\"application/json\" id=\"dagrun-data\">", out);
	if (json_dump_callback(doc, put_data, out,
			       JSON_COMPACT | JSON_ENSURE_ASCII) != 0 && !ferror(out)) {
		r = report_fail(err, -ENOMEM, "out of memory");
		goto out;
	}
	fprintf(out, "</script>\n<script>%s</script>\n</body>\n</html>\n",
		report_asset_js);
	if ((r = report_stream_status(out)) < 0)
		report_fail(err, r, "writing the report: %s", strerror(-r));
out:
	arena_free(&mem);
	return r;
}
