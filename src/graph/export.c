/* export.c: the dependency graph as DOT (Graphviz), Mermaid and JSON.
 *
 * Invariant: output streams task by task to the FILE (nothing the size of
 * the graph is built in memory), and every piece of workflow text goes
 * through put_text(), which escapes it for the target syntax, replaces
 * invalid UTF-8 with U+FFFD and shortens labels at a character boundary.
 * Edges run from a dependency to its dependent, as in graph.h.
 */
#include <errno.h>
#include <string.h>

#include "graph/graph.h"

#define LABEL_MAX 80   /* bytes of a condition shown on an edge */

static const char *const hook_names[] = {"", "onSuccess", "onFailure", "onExit"};

/* ---- text ------------------------------------------------------------- */

/* Returns the replacement for ASCII byte c, or NULL to copy it. tmp is
 * scratch space for a replacement built on the fly. */
typedef const char *escape_fn(unsigned char c, char tmp[8]);

/* Inside a DOT "quoted string" used as an escString label. */
static const char *dot_escape(unsigned char c, char tmp[8])
{
	(void)tmp;
	switch (c) {
	case '"': return "\\\"";
	case '\\': return "\\\\";
	case '\n': return "\\n";
	}
	return c < 0x20 || c == 0x7f ? " " : NULL;
}

/* Inside a Mermaid "quoted label": entity codes, as Mermaid documents. */
static const char *mermaid_escape(unsigned char c, char tmp[8])
{
	(void)tmp;
	switch (c) {
	case '"': return "#quot;";
	case '#': return "#35;";
	case '&': return "#amp;";
	case '<': return "#lt;";
	case '>': return "#gt;";
	case '|': return "#124;";
	case '`': return "#96;";
	case '\n': return "<br/>";
	}
	return c < 0x20 || c == 0x7f ? " " : NULL;
}

/* Inside a JSON string (RFC 8259). */
static const char *json_escape(unsigned char c, char tmp[8])
{
	switch (c) {
	case '"': return "\\\"";
	case '\\': return "\\\\";
	case '\n': return "\\n";
	case '\r': return "\\r";
	case '\t': return "\\t";
	}
	if (c >= 0x20)
		return NULL;
	snprintf(tmp, 8, "\\u%04x", c);
	return tmp;
}

/* Length of the valid UTF-8 sequence at s (n > 0 bytes left, s[0] >= 0x80),
 * or 0 when it is invalid (stray, overlong, surrogate, beyond U+10FFFF). */
static size_t utf8_len(const unsigned char *s, size_t n)
{
	unsigned c = s[0];
	size_t len = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc2 ? 2 : 0;
	if (len == 0 || c > 0xf4 || len > n)
		return 0;
	for (size_t i = 1; i < len; i++)
		if ((s[i] & 0xc0) != 0x80)
			return 0;
	if ((c == 0xe0 && s[1] < 0xa0) || (c == 0xed && s[1] >= 0xa0) ||
	    (c == 0xf0 && s[1] < 0x90) || (c == 0xf4 && s[1] >= 0x90))
		return 0;
	return len;
}

/* Writes s[0..n) escaped by esc, copying runs that need no escape at once.
 * With cap > 0, stops at the first character starting at or past byte cap
 * and writes "..." instead of the rest. */
static void put_text(FILE *out, const char *s, size_t n, escape_fn *esc,
		     size_t cap)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t end = cap && cap < n ? cap : n, i = 0;
	char tmp[8];
	while (i < end) {
		size_t run = i;
		const char *e = NULL;
		while (i < end && p[i] < 0x80 && !(e = esc(p[i], tmp)))
			i++;
		fwrite(p + run, 1, i - run, out);
		if (i == end)
			break;
		if (e) {
			fputs(e, out);
			i++;
			continue;
		}
		size_t len = utf8_len(p + i, n - i);
		if (len)
			fwrite(p + i, 1, len, out);
		else
			fputs("\xef\xbf\xbd", out);
		i += len ? len : 1;
	}
	if (i < n)
		fputs("...", out);
}

static void put_id(FILE *out, const struct dagrun_workflow *wf, uint32_t t,
		   escape_fn *esc)
{
	const struct intern_entry *id = &wf->ids.entries[wf->tasks[t].sym];
	put_text(out, id->s, id->len, esc, 0);
}

/* 0, or -errno when writing to out failed. */
static int stream_status(FILE *out)
{
	if (!ferror(out))
		return 0;
	return errno ? -errno : -EIO;
}

static const char *graph_name(const struct dagrun_workflow *wf)
{
	return wf->name.s && wf->name.len ? wf->name.s : "dagrun";
}

/* ---- DOT -------------------------------------------------------------- */

static void dot_node(FILE *out, const struct dagrun_workflow *wf, uint32_t t,
		     const char *indent)
{
	fprintf(out, "%s\"", indent);
	put_id(out, wf, t, dot_escape);
	fputs("\" [label=\"", out);
	put_id(out, wf, t, dot_escape);
	fprintf(out, "\\n(%s)\"];\n", dr_kind_name(wf, t));
}

/* The hook tasks of one kind, in a cluster of their own. */
static void dot_cluster(FILE *out, const struct dagrun_workflow *wf, int hook)
{
	int open = 0;
	for (uint32_t t = 0; t < wf->n_tasks && !ferror(out); t++) {
		if (wf->tasks[t].hook != hook)
			continue;
		if (!open++)
			fprintf(out, "\tsubgraph \"cluster_%s\" {\n"
				"\t\tlabel=\"%s\";\n\t\tstyle=dashed;\n",
				hook_names[hook], hook_names[hook]);
		dot_node(out, wf, t, "\t\t");
	}
	if (open)
		fputs("\t}\n", out);
}

static void dot_edge(FILE *out, const struct dagrun_workflow *wf, uint32_t t,
		     const struct dr_dep *d)
{
	fputs("\t\"", out);
	put_id(out, wf, d->target, dot_escape);
	fputs("\" -> \"", out);
	put_id(out, wf, t, dot_escape);
	fputc('"', out);
	const char *sep = " [";
	if (d->type == DR_DEP_NON_BLOCKING) {
		fputs(" [style=dashed", out);
		sep = ", ";
	}
	if (d->condition && d->condition->s) {
		fprintf(out, "%slabel=\"", sep);
		put_text(out, d->condition->s, d->condition->len, dot_escape,
			 LABEL_MAX);
		fputc('"', out);
		sep = ", ";
	}
	fputs(sep[0] == ',' ? "];\n" : ";\n", out);
}

/* See graph.h. Hook tasks sit in one cluster per hook list. */
int graph_write_dot(const struct dagrun_workflow *wf, FILE *out)
{
	const char *name = graph_name(wf);
	errno = 0;
	fputs("digraph \"", out);
	put_text(out, name, strlen(name), dot_escape, 0);
	fputs("\" {\n\tnode [shape=box, style=rounded];\n", out);
	for (uint32_t t = 0; t < wf->n_tasks && !ferror(out); t++)
		if (wf->tasks[t].hook == DR_HOOK_NONE)
			dot_node(out, wf, t, "\t");
	for (int h = DR_HOOK_SUCCESS; h <= DR_HOOK_EXIT; h++)
		dot_cluster(out, wf, h);
	for (uint32_t t = 0; t < wf->n_tasks && !ferror(out); t++) {
		const struct dr_task *task = &wf->tasks[t];
		for (uint32_t i = 0; i < task->dep_count; i++)
			dot_edge(out, wf, t, &wf->deps[(size_t)task->dep_first + i]);
	}
	fputs("}\n", out);
	return stream_status(out);
}

/* ---- Mermaid ---------------------------------------------------------- */

/* Node ids are n<index>: task ids may hold '-', which Mermaid reads as an
 * arrow; the id itself goes into the quoted label. */
static void mermaid_node(FILE *out, const struct dagrun_workflow *wf,
			 uint32_t t, const char *indent)
{
	fprintf(out, "%sn%u[\"", indent, t);
	put_id(out, wf, t, mermaid_escape);
	fprintf(out, "<br/>(%s)\"]\n", dr_kind_name(wf, t));
}

static void mermaid_subgraph(FILE *out, const struct dagrun_workflow *wf,
			     int hook)
{
	int open = 0;
	for (uint32_t t = 0; t < wf->n_tasks && !ferror(out); t++) {
		if (wf->tasks[t].hook != hook)
			continue;
		if (!open++)
			fprintf(out, "    subgraph %s[\"%s\"]\n", hook_names[hook],
				hook_names[hook]);
		mermaid_node(out, wf, t, "        ");
	}
	if (open)
		fputs("    end\n", out);
}

static void mermaid_edge(FILE *out, uint32_t t, const struct dr_dep *d)
{
	fprintf(out, "    n%u %s", d->target,
		d->type == DR_DEP_NON_BLOCKING ? "-.->" : "-->");
	if (d->condition && d->condition->s) {
		fputs("|\"", out);
		put_text(out, d->condition->s, d->condition->len, mermaid_escape,
			 LABEL_MAX);
		fputs("\"|", out);
	}
	fprintf(out, " n%u\n", t);
}

/* See graph.h. Hook tasks sit in one subgraph per hook list. */
int graph_write_mermaid(const struct dagrun_workflow *wf, FILE *out)
{
	errno = 0;
	fputs("flowchart TD\n", out);
	for (uint32_t t = 0; t < wf->n_tasks && !ferror(out); t++)
		if (wf->tasks[t].hook == DR_HOOK_NONE)
			mermaid_node(out, wf, t, "    ");
	for (int h = DR_HOOK_SUCCESS; h <= DR_HOOK_EXIT; h++)
		mermaid_subgraph(out, wf, h);
	for (uint32_t t = 0; t < wf->n_tasks && !ferror(out); t++) {
		const struct dr_task *task = &wf->tasks[t];
		for (uint32_t i = 0; i < task->dep_count; i++)
			mermaid_edge(out, t, &wf->deps[(size_t)task->dep_first + i]);
	}
	return stream_status(out);
}

/* ---- JSON ------------------------------------------------------------- */

static void json_string(FILE *out, const char *s, size_t n)
{
	fputc('"', out);
	put_text(out, s, n, json_escape, 0);
	fputc('"', out);
}

static void json_dep(FILE *out, const struct dagrun_workflow *wf,
		     const struct dr_dep *d)
{
	fputs("{\"taskId\": \"", out);
	put_id(out, wf, d->target, json_escape);
	fprintf(out, "\", \"type\": \"%s\", \"condition\": ",
		d->type == DR_DEP_NON_BLOCKING ? "non-blocking" : "blocking");
	if (d->condition && d->condition->s)
		json_string(out, d->condition->s, d->condition->len);
	else
		fputs("null", out);
	fputc('}', out);
}

static void json_task(FILE *out, const struct dagrun_workflow *wf, uint32_t t)
{
	const struct dr_task *task = &wf->tasks[t];
	fputs("    {\"id\": \"", out);
	put_id(out, wf, t, json_escape);
	fprintf(out, "\", \"kind\": \"%s\", ", dr_kind_name(wf, t));
	if (task->hook > DR_HOOK_NONE && task->hook <= DR_HOOK_EXIT)
		fprintf(out, "\"hook\": \"%s\", ", hook_names[task->hook]);
	fprintf(out, "\"priority\": %d, \"weight\": %u, \"dependencies\": [",
		(int)task->priority, wf->graph->weight[t]);
	for (uint32_t i = 0; i < task->dep_count; i++) {
		if (i)
			fputs(", ", out);
		json_dep(out, wf, &wf->deps[(size_t)task->dep_first + i]);
	}
	fputs("]}", out);
}

/* See graph.h. Needs wf->graph for weights and order: -EINVAL without. */
int graph_write_json(const struct dagrun_workflow *wf, FILE *out)
{
	const struct graph *g = wf->graph;
	if (!g || g->n != wf->n_tasks)
		return -EINVAL;
	errno = 0;
	fputs("{\n  \"name\": ", out);
	json_string(out, wf->name.s ? wf->name.s : "", wf->name.s ? wf->name.len : 0);
	fputs(",\n  \"tasks\": [\n", out);
	for (uint32_t t = 0; t < wf->n_tasks && !ferror(out); t++) {
		json_task(out, wf, t);
		fputs(t + 1 < wf->n_tasks ? ",\n" : "\n", out);
	}
	fputs("  ],\n  \"order\": [", out);
	for (uint32_t i = 0; i < g->n && !ferror(out); i++) {
		fputs(i ? ", \"" : "\"", out);
		put_id(out, wf, g->topo[i], json_escape);
		fputc('"', out);
	}
	fputs("]\n}\n", out);
	return stream_status(out);
}

/* ---- public ----------------------------------------------------------- */
