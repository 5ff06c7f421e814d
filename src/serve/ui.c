/* ui.c: the web UI at `/`: one HTML page, its script and style, and the
 * report's script and style (the run page draws its timeline and task
 * details with the report's own code), all embedded in the binary.
 *
 * Invariant: the UI's files are fixed bytes of the build, the same for
 * every client: no request data goes into them (the page fetches
 * everything else from the API and puts it in the DOM as text), and each
 * is served with UI_CSP, so the page runs no script but these files. */
#include <string.h>

#include "serve/serve_int.h"
#include "serve/ui.h"

struct ui_file {
	const char *name;          /* under /ui/ ("" for the page) */
	const char *ctype;
	const char *data;
	const size_t *len;
};

static const struct ui_file files[] = {
	{"", "text/html; charset=utf-8", ui_asset_index, &ui_asset_index_len},
	{"ui.js", "text/javascript; charset=utf-8", ui_asset_js, &ui_asset_js_len},
	{"ui.css", "text/css; charset=utf-8", ui_asset_css, &ui_asset_css_len},
	{"report.js", "text/javascript; charset=utf-8", ui_asset_report_js,
	 &ui_asset_report_js_len},
	{"report.css", "text/css; charset=utf-8", ui_asset_report_css,
	 &ui_asset_report_css_len},
};

static const struct ui_file *lookup(const struct req *rq)
{
	const char *name = NULL;
	if (rq->nseg == 0 || (rq->nseg == 1 && !strcmp(rq->seg[0], "index.html")))
		name = "";
	else if (rq->nseg == 2 && !strcmp(rq->seg[0], "ui") && rq->seg[1][0])
		name = rq->seg[1];
	for (size_t i = 0; name && i < sizeof(files) / sizeof(files[0]); i++)
		if (!strcmp(files[i].name, name))
			return &files[i];
	return NULL;
}

bool ui_path(const struct req *rq)
{
	return lookup(rq) != NULL;
}

void ui_serve(struct serve *s, struct req *rq)
{
	(void)s;
	const struct ui_file *f = lookup(rq);
	if (!f || (strcmp(rq->method, "GET") && strcmp(rq->method, "HEAD")))
		return reply_error(rq, 404, "not found: %s", rq->path);
	reply_static(rq, f->ctype, f->data, *f->len);
	reply_header(rq, "Content-Security-Policy", UI_CSP);
}
