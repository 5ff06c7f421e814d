/* graphsvg.c: the dependency graph as SVG, laid out by Graphviz in the
 * process (libcgraph builds it, libgvc lays it out with dot and renders
 * SVG); no `dot` program is run.
 *
 * Only two Graphviz plug-ins are used, linked in as builtins: the dot
 * layout and the core renderers (svg). A context made by gvContext() would
 * load every plug-in listed in Graphviz's configuration, pango among them
 * (fontconfig, cairo: slower, leaky, and a layout that depends on the fonts
 * installed); without a text layout plug-in Graphviz measures labels with
 * its built-in font metrics, the same on every machine.
 *
 * Graphviz keeps process-wide state (the error function, the default
 * graph discipline, attribute prototypes) and is not thread-safe: every use
 * here holds gv_lock, and gv_msgs (where the error function appends) is
 * only touched under it. These two are the module's only globals, forced by
 * Graphviz's interface (agseterrf takes no user data).
 *
 * Hooks are drawn as dashed nodes whose label names their hook list, not
 * in clusters as the DOT export draws them: Graphviz 2.42's dot layout
 * leaks memory with some clustered graphs (the virtual nodes
 * build_skeleton makes), and the server draws graphs for as long as it
 * runs; without clusters no leak was found (LeakSanitizer, random graphs).
 *
 * Invariant: every string handed to Graphviz went through gv_text(): valid
 * UTF-8 without control characters or non-characters (each made U+FFFD,
 * as report_put_html does), '&' written as
 * "&amp;" (Graphviz turns entities in labels into characters, then escapes
 * for XML) and, in labels, '\' as "\\" (Graphviz's escString), so the SVG
 * is well-formed XML showing each id exactly as it is.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <gvc.h>
#include <gvplugin.h>

#include "graph/graph.h"
#include "report/report_int.h"
#include "util/buf.h"

#define LABEL_MAX 80   /* bytes of a condition shown on an edge */

extern gvplugin_library_t gvplugin_dot_layout_LTX_library;
extern gvplugin_library_t gvplugin_core_LTX_library;

static lt_symlist_t gv_builtins[] = {
	{"gvplugin_dot_layout_LTX_library", &gvplugin_dot_layout_LTX_library},
	{"gvplugin_core_LTX_library", &gvplugin_core_LTX_library},
	{NULL, NULL},
};

static pthread_mutex_t gv_lock = PTHREAD_MUTEX_INITIALIZER;
static struct buf *gv_msgs;   /* under gv_lock */

/* Graphviz's error function: messages arrive in pieces ("Warning", ": ",
 * "text\n"). */
static int gv_error(char *msg)
{
	if (gv_msgs && msg)
		buf_adds(gv_msgs, msg);
	return 0;
}

/* Fill and outline per status (enum report_status order), the page's
 * palette (report.css). */
static const char *const fill[REPORT_ST_N] = {
	"#ffffff", "#bbdefb", "#c8e6c9", "#ffcdd2", "#fff9c4", "#eeeeee",
	"#ffe0b2", "#e1bee7", "#f5f5f5",
};
static const char *const line[REPORT_ST_N] = {
	"#9e9e9e", "#1565c0", "#2e7d32", "#c62828", "#f9a825", "#9e9e9e",
	"#ef6c00", "#6a1b9a", "#9e9e9e",
};

/* ---- text for Graphviz ---------------------------------------------------------- */

enum { GV_LABEL = 1 };

/* Length of the valid UTF-8 sequence at p with its code point, or 0. */
static size_t utf8_cp(const unsigned char *p, size_t n, uint32_t *cp)
{
	unsigned c = p[0];
	size_t len = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc2 ? 2 : 0;
	if (len == 0 || c > 0xf4 || len > n)
		return 0;
	uint32_t v = c & (0x7f >> len);
	for (size_t i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		v = v << 6 | (p[i] & 0x3f);
	}
	if ((c == 0xe0 && p[1] < 0xa0) || (c == 0xed && p[1] >= 0xa0) ||
	    (c == 0xf0 && p[1] < 0x90) || (c == 0xf4 && p[1] >= 0x90))
		return 0;
	*cp = v;
	return len;
}

/* Appends s[0 .. n) to b as Graphviz should get it (see the invariant);
 * with cap > 0, cut at the first character starting at or past byte cap,
 * then "...". */
static int gv_text(struct buf *b, const char *s, size_t n, int flags,
		   size_t cap)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t end = cap && cap < n ? cap : n, i = 0;
	int r = 0;
	while (i < end && r == 0) {
		unsigned c = p[i];
		if (c < 0x80) {
			i++;
			if (c == '&')
				r = buf_adds(b, "&amp;");
			else if (c == '\\' && (flags & GV_LABEL))
				r = buf_adds(b, "\\\\");
			else if (c < 0x20 || c == 0x7f)
				r = buf_adds(b, "\xef\xbf\xbd");
			else
				r = buf_addc(b, (char)c);
			continue;
		}
		uint32_t cp = 0;
		size_t k = utf8_cp(p + i, n - i, &cp);
		bool ok = k && cp > 0x9f && !(cp >= 0xfdd0 && cp <= 0xfdef) &&
			  (cp & 0xfffe) != 0xfffe;
		r = ok ? buf_add(b, p + i, k) : buf_adds(b, "\xef\xbf\xbd");
		i += k ? k : 1;
	}
	if (r == 0 && i < n)
		r = buf_adds(b, "...");
	return r;
}

/* gv_text into a fresh NUL-terminated string in *b (reset first). */
static const char *gv_str(struct buf *b, const struct report_str *s, int flags,
			  size_t cap)
{
	buf_reset(b);
	if (gv_text(b, s->s ? s->s : "", s->s ? s->len : 0, flags, cap) < 0 ||
	    buf_add(b, "", 0) < 0)
		return NULL;
	return b->data;
}

/* ---- building the graph ------------------------------------------------------------ */

struct build {
	const struct report_doc *d;
	unsigned flags;
	Agraph_t *g;
	Agnode_t **nodes;
	struct buf name, label, tmp;
};

static int add_node(struct build *b, uint32_t i)
{
	const struct report_task *t = &b->d->tasks[i];
	const char *name = gv_str(&b->name, &t->id, 0, 0);
	if (!name)
		return -ENOMEM;
	/* "id\n(kind)", or "id\n(kind, onExit)" for a hook */
	buf_reset(&b->label);
	int r = gv_text(&b->label, t->id.s, t->id.len, GV_LABEL, 0);
	if (r == 0 && (t->kind.s || t->hook.s))
		r = buf_adds(&b->label, "\\n(");
	if (r == 0 && t->kind.s)
		r = gv_text(&b->label, t->kind.s, t->kind.len, GV_LABEL, 0);
	if (r == 0 && t->hook.s)
		r = buf_adds(&b->label, t->kind.s ? ", " : "");
	if (r == 0 && t->hook.s)
		r = gv_text(&b->label, t->hook.s, t->hook.len, GV_LABEL, 0);
	if (r == 0 && (t->kind.s || t->hook.s))
		r = buf_addc(&b->label, ')');
	if (r == 0)
		r = buf_add(&b->label, "", 0);
	/* Two ids may read the same once cleaned ("a\x01", "a\x02"): the
	 * later one's node name gets its index, so that no task is merged
	 * into another's node. */
	if (r == 0 && agnode(b->g, (char *)name, 0)) {
		r = buf_printf(&b->name, " [task %u]", i);
		name = b->name.data;
	}
	Agnode_t *n = r == 0 ? agnode(b->g, (char *)name, 1) : NULL;
	if (!n)
		return -ENOMEM;
	b->nodes[i] = n;
	char id[40], cls[48];
	int st = b->flags & REPORT_SVG_STATUS ? t->status : REPORT_ST_PENDING;
	snprintf(id, sizeof(id), "dagrun-node-%u", i);
	snprintf(cls, sizeof(cls), "st-%s", b->flags & REPORT_SVG_STATUS ?
		 report_status_name(st) : "none");
	agsafeset(n, "label", b->label.data, "");
	agsafeset(n, "id", id, "");
	agsafeset(n, "class", cls, "");
	agsafeset(n, "fillcolor", (char *)fill[st], "");
	agsafeset(n, "color", (char *)line[st], "");
	if (t->hook.s)
		agsafeset(n, "style", "rounded,filled,dashed", "");
	return 0;
}

static int add_edges(struct build *b, uint32_t i)
{
	const struct report_task *t = &b->d->tasks[i];
	for (uint32_t k = 0; k < t->n_deps; k++) {
		const struct report_dep *dep = &t->deps[k];
		Agedge_t *e = agedge(b->g, b->nodes[dep->task], b->nodes[i], NULL, 1);
		if (!e)
			return -ENOMEM;
		if (dep->non_blocking)
			agsafeset(e, "style", "dashed", "");
		if (dep->condition.s) {
			const char *label = gv_str(&b->tmp, &dep->condition,
						   GV_LABEL, LABEL_MAX);
			if (!label)
				return -ENOMEM;
			agsafeset(e, "label", (char *)label, "");
		}
	}
	return 0;
}

static int build_graph(struct build *b)
{
	struct report_str dflt = {"dagrun", 6};
	const char *name = gv_str(&b->tmp, b->d->workflow.s ? &b->d->workflow : &dflt, 0, 0);
	if (!name || !(b->g = agopen((char *)name, Agdirected, NULL)))
		return -ENOMEM;
	agattr(b->g, AGRAPH, "fontname", "Helvetica,Arial,sans-serif");
	agattr(b->g, AGRAPH, "fontsize", "11");
	agattr(b->g, AGNODE, "shape", "box");
	agattr(b->g, AGNODE, "style", "rounded,filled");
	agattr(b->g, AGNODE, "fontname", "Helvetica,Arial,sans-serif");
	agattr(b->g, AGNODE, "fontsize", "11");
	agattr(b->g, AGEDGE, "fontname", "Helvetica,Arial,sans-serif");
	agattr(b->g, AGEDGE, "fontsize", "9");
	agattr(b->g, AGEDGE, "color", "#616161");
	b->nodes = b->d->n_tasks ? calloc(b->d->n_tasks, sizeof(*b->nodes)) : NULL;
	if (b->d->n_tasks && !b->nodes)
		return -ENOMEM;
	int r = 0;
	for (uint32_t i = 0; i < b->d->n_tasks && r == 0; i++)
		r = add_node(b, i);
	for (uint32_t i = 0; i < b->d->n_tasks && r == 0; i++)
		r = add_edges(b, i);
	return r;
}

/* ---- writing ----------------------------------------------------------------------- */

/* For an HTML page: from "<svg" on, without the xmlns attributes. */
static int write_inline(FILE *out, const char *data, size_t len)
{
	const char *svg = memmem(data, len, "<svg", 4);
	if (!svg)
		return -EIO;
	const char *gt = memchr(svg, '>', len - (size_t)(svg - data));
	if (!gt)
		return -EIO;
	/* The start tag, attribute by attribute minus xmlns and xmlns:*. */
	const char *p = svg + 4;
	fputs("<svg", out);
	while (p < gt) {
		while (p < gt && (*p == ' ' || *p == '\n' || *p == '\t'))
			p++;
		const char *a = p, *q = memchr(p, '"', (size_t)(gt - p));
		if (!q)
			break;
		const char *q2 = memchr(q + 1, '"', (size_t)(gt - q - 1));
		if (!q2)
			return -EIO;
		p = q2 + 1;
		if (!strncmp(a, "xmlns", 5))
			continue;
		fputc(' ', out);
		fwrite(a, 1, (size_t)(p - a), out);
	}
	fwrite(gt, 1, len - (size_t)(gt - data), out);
	return 0;
}

static int render(struct build *b, FILE *out, char **err)
{
	GVC_t *gvc = gvContextPlugins(gv_builtins, 0);
	if (!gvc)
		return report_fail(err, -ENOMEM, "graphviz: cannot make a context");
	int r = build_graph(b);
	char *data = NULL;
	unsigned len = 0;
	bool laid = false;
	if (r < 0) {
		r = report_fail(err, r, "graphviz: cannot build the graph");
		goto out;
	}
	if (gvLayout(gvc, b->g, "dot") != 0) {
		r = report_fail(err, -EIO, "graphviz: the dot layout failed: %s",
				gv_msgs->len ? gv_msgs->data : "no message");
		goto out;
	}
	laid = true;
	if (gvRenderData(gvc, b->g, "svg", &data, &len) != 0 || !data) {
		r = report_fail(err, -EIO, "graphviz: rendering SVG failed: %s",
				gv_msgs->len ? gv_msgs->data : "no message");
		goto out;
	}
	errno = 0;
	if (b->flags & REPORT_SVG_INLINE)
		r = write_inline(out, data, len);
	else
		fwrite(data, 1, len, out);
	if (r < 0)
		r = report_fail(err, r, "graphviz: the SVG has no <svg> element");
	else if ((r = report_stream_status(out)) < 0)
		report_fail(err, r, "writing the SVG: %s", strerror(-r));
out:
	if (data)
		gvFreeRenderData(data);
	if (laid)
		gvFreeLayout(gvc, b->g);
	if (b->g)
		agclose(b->g);
	gvFreeContext(gvc);
	return r;
}

int report_graph_svg_doc(const struct report_doc *d, unsigned flags,
			 uint32_t max_nodes, uint64_t max_edges, FILE *out,
			 char **err)
{
	if (d->n_tasks > max_nodes || d->n_edges > max_edges)
		return report_fail(err, -E2BIG,
				   "%u tasks and %llu dependencies: more than the %u tasks or "
				   "%llu dependencies Graphviz lays out in reasonable time",
				   d->n_tasks, (unsigned long long)d->n_edges, max_nodes,
				   (unsigned long long)max_edges);
	struct build b = {.d = d, .flags = flags, .name = BUF_INIT,
			  .label = BUF_INIT, .tmp = BUF_INIT};
	struct buf msgs = BUF_INIT;
	msgs.max = 64 << 10;
	pthread_mutex_lock(&gv_lock);
	gv_msgs = &msgs;
	agusererrf prev = agseterrf(gv_error);
	int r = render(&b, out, err);
	agseterrf(prev);
	gv_msgs = NULL;
	pthread_mutex_unlock(&gv_lock);
	free(b.nodes);
	buf_free(&b.name);
	buf_free(&b.label);
	buf_free(&b.tmp);
	buf_free(&msgs);
	return r;
}

/* The graph as built for the SVG, written as DOT (agwrite): no layout, so
 * no size limit but memory. */
int report_graph_dot_doc(const struct report_doc *d, unsigned flags, FILE *out,
			 char **err)
{
	struct build b = {.d = d, .flags = flags, .name = BUF_INIT,
			  .label = BUF_INIT, .tmp = BUF_INIT};
	struct buf msgs = BUF_INIT;
	msgs.max = 64 << 10;
	pthread_mutex_lock(&gv_lock);
	gv_msgs = &msgs;
	agusererrf prev = agseterrf(gv_error);
	int r = build_graph(&b);
	if (r < 0) {
		r = report_fail(err, r, "graphviz: cannot build the graph");
	} else {
		errno = 0;
		if (agwrite(b.g, out) != 0 && !ferror(out))
			r = report_fail(err, -EIO, "graphviz: writing DOT failed: %s",
					msgs.len ? msgs.data : "no message");
		else if ((r = report_stream_status(out)) < 0)
			report_fail(err, r, "writing the graph: %s", strerror(-r));
	}
	if (b.g)
		agclose(b.g);
	agseterrf(prev);
	gv_msgs = NULL;
	pthread_mutex_unlock(&gv_lock);
	free(b.nodes);
	buf_free(&b.name);
	buf_free(&b.label);
	buf_free(&b.tmp);
	buf_free(&msgs);
	return r;
}

int report_graph_dot(const json_t *doc, unsigned flags, FILE *out, char **err)
{
	struct arena mem = ARENA_INIT;
	struct report_doc d;
	int r = report_doc_parse(doc, REPORT_PARSE_GRAPH, &mem, &d, err);
	if (r == 0)
		r = report_graph_dot_doc(&d, flags & REPORT_SVG_STATUS, out, err);
	arena_free(&mem);
	return r;
}

int report_graph_svg(const json_t *doc, unsigned flags, FILE *out, char **err)
{
	struct arena mem = ARENA_INIT;
	struct report_doc d;
	int r = report_doc_parse(doc, REPORT_PARSE_GRAPH, &mem, &d, err);
	if (r == 0)
		r = report_graph_svg_doc(&d, flags, REPORT_SVG_MAX_NODES,
					 REPORT_SVG_MAX_EDGES, out, err);
	arena_free(&mem);
	return r;
}

int report_graph_svg_workflow(const struct dagrun_workflow *wf, FILE *out,
			      char **err)
{
	char *text = NULL;
	size_t len = 0;
	json_t *doc = NULL;
	int r;
	FILE *ms = open_memstream(&text, &len);
	if (!ms)
		return report_fail(err, -ENOMEM, "out of memory");
	r = graph_write_json(wf, ms);
	if (fclose(ms) != 0 && r == 0)
		r = -ENOMEM;
	if (r < 0) {
		r = report_fail(err, r, "cannot describe the graph: %s", strerror(-r));
		goto out;
	}
	json_error_t je;
	doc = json_loadb(text, len, 0, &je);
	if (!doc) {
		r = report_fail(err, -EIO, "cannot read the graph back: %s", je.text);
		goto out;
	}
	r = report_graph_svg(doc, 0, out, err);
out:
	json_decref(doc);
	free(text);
	return r;
}

/* See dagrun.h. -EINVAL for a NULL argument or an unknown format. The
 * public entry of every format lives here, above graph/ (which writes the
 * text formats) and beside the SVG layout. */
int dagrun_graph_write(const dagrun_workflow *wf, enum dagrun_graph_format fmt,
		       FILE *out)
{
	if (!wf || !out)
		return -EINVAL;
	switch (fmt) {
	case DAGRUN_GRAPH_DOT:
		return graph_write_dot(wf, out);
	case DAGRUN_GRAPH_MERMAID:
		return graph_write_mermaid(wf, out);
	case DAGRUN_GRAPH_JSON:
		return graph_write_json(wf, out);
	case DAGRUN_GRAPH_SVG:
		return report_graph_svg_workflow(wf, out, NULL);
	}
	return -EINVAL;
}
