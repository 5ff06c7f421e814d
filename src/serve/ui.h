/* ui.h: the web UI's files (src/serve/ui/, and the report's report.js and
 * report.css), embedded at build time by src/report/embed.py --served, and
 * the handler that serves them (ui.c). */
#ifndef DAGRUN_SERVE_UI_H
#define DAGRUN_SERVE_UI_H

#include <stdbool.h>
#include <stddef.h>

struct serve;
struct req;

extern const char ui_asset_index[];
extern const size_t ui_asset_index_len;
extern const char ui_asset_js[];
extern const size_t ui_asset_js_len;
extern const char ui_asset_css[];
extern const size_t ui_asset_css_len;
extern const char ui_asset_report_js[];
extern const size_t ui_asset_report_js_len;
extern const char ui_asset_report_css[];
extern const size_t ui_asset_report_css_len;

/* The Content-Security-Policy of every UI file: scripts and styles from
 * the server only (no inline script, no eval), requests to the server only,
 * nothing framed, no form posted anywhere. */
#define UI_CSP "default-src 'none'; script-src 'self'; style-src 'self'; " \
	"img-src 'self' data:; connect-src 'self'; base-uri 'none'; " \
	"form-action 'none'; frame-ancestors 'none'"

/* Whether rq names a UI file (`/`, `/index.html`, `/ui/NAME`): served
 * without a token (they hold no data; the page asks for the token). */
bool ui_path(const struct req *rq);

/* Answers a GET or HEAD of a UI path with the file and UI_CSP, or 404. */
void ui_serve(struct serve *s, struct req *rq);

#endif
