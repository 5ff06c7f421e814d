/* report.h: what a run looked like, drawn from one JSON document.
 *
 * Every renderer here reads the run document (docs/run-document.md,
 * "dagrunRunDocument": 1): a run header and its tasks, each with its
 * dependencies and attempts. The same document is what `dagrun export`
 * writes and what the server's `GET /api/runs/{id}` answers, so a renderer
 * never reads the store, the scheduler or an executor: whoever holds a
 * document (the CLI from the store, a test from a file, the server) can
 * draw it. The module depends on util/, jansson, graph/ (the workflow as a
 * graph document) and Graphviz's libgvc and libcgraph.
 *
 * The renderers:
 *  - report_html: one self-contained HTML page (inline CSS, JavaScript and
 *    SVG, nothing fetched from anywhere): summary, failures, timeline,
 *    dependency graph, each task's attempts;
 *  - report_trace: Chrome trace-event JSON, for Perfetto and
 *    chrome://tracing;
 *  - report_gantt_text: a Gantt chart in a terminal's width;
 *  - report_graph_svg: the dependency graph laid out by Graphviz (dot) and
 *    rendered as SVG in the process, coloured by status when known;
 *  - report_percentile: nearest-rank percentiles for `dagrun stats` and
 *    the history (p50, p95) a document carries.
 *
 * Safety: the document's strings (task ids, errors, output tails) are the
 * tasks' text and may hold anything. Each renderer escapes them for its
 * output: HTML text and a JSON data block that cannot end its <script>
 * element, XML in the SVG, JSON strings in the trace, the console's escapes
 * (util/text.h) in the text Gantt. Nothing in a document can run code in
 * the HTML page or write a control sequence to a terminal.
 *
 * Errors: functions return 0 or a negative errno and, when err is not NULL,
 * set *err to a malloc'd message the caller frees (for an invalid document:
 * the path of the field at fault, e.g. "tasks[3].attempts[0].startMs:
 * expected an integer").
 *   -EINVAL  not a run document (or graph document), or an invalid field
 *   -E2BIG   a graph too large to lay out (report_graph_svg)
 *   -ENOTSUP Graphviz lacks the dot layout or the SVG renderer
 *   -EIO     Graphviz failed (its message in *err), or writing failed
 *   -ENOMEM  out of memory
 *
 * Threads: the renderers keep no state and may run on any thread, but
 * Graphviz keeps process-wide state (its error function, graph
 * discipline); report_graph_svg (and report_html, which calls it) take a
 * process-wide lock around every use of it. Another user of libgvc or
 * libcgraph in the same process must not run at the same time.
 */
#ifndef DAGRUN_REPORT_H
#define DAGRUN_REPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "util/arena.h"

/* jansson's json_t (struct json_t): declared, not included, so that a file
 * of another module can call report_graph_svg_workflow without jansson's
 * names. */
struct json_t;

/* The version of the run document these renderers read and write. */
#define REPORT_DOC_VERSION 1

/* Task statuses as the document names them (the order of enum
 * dagrun_status, then interrupted as in store.h); REPORT_ST_OTHER for a
 * name this build does not know (drawn grey, shown as written). */
enum report_status {
	REPORT_ST_PENDING, REPORT_ST_RUNNING, REPORT_ST_COMPLETED,
	REPORT_ST_FAILED, REPORT_ST_RETRYING, REPORT_ST_SKIPPED,
	REPORT_ST_CANCELLED, REPORT_ST_INTERRUPTED,
	REPORT_ST_OTHER,
	REPORT_ST_N
};

/* "pending", ..., "interrupted"; "other" for REPORT_ST_OTHER. */
const char *report_status_name(int status);

/* ---- the document, parsed ------------------------------------------------ */

/* Strings point into the json_t the document was parsed from (valid while
 * it lives); len excludes the NUL; s is NULL when the field is absent or
 * null. */
struct report_str {
	const char *s;
	size_t len;
};

struct report_attempt {
	uint32_t n;                /* attempt number, 1-based, increasing */
	int status;                /* enum report_status */
	struct report_str status_name;
	int64_t start_ms;
	int64_t end_ms;            /* valid when has_end */
	int64_t ready_ms;          /* valid when has_ready */
	bool has_end, has_ready, has_exit, timed_out;
	int exit_code;             /* valid when has_exit */
	int signal;                /* 0 when none */
	struct report_str error_class, error;
};

struct report_dep {
	uint32_t task;             /* index of the task depended on */
	bool non_blocking;
	struct report_str condition;
};

struct report_task {
	struct report_str id, kind, hook, error_class, error;
	int status;                /* enum report_status; PENDING in a graph
				    * document without statuses */
	struct report_str status_name;
	struct report_dep *deps;
	uint32_t n_deps;
	struct report_attempt *att;
	uint32_t n_att;
	bool has_history;
	uint32_t history_runs;
	int64_t p50_ms, p95_ms;    /* valid when has_history */
};

struct report_doc {
	bool graph_only;           /* parsed with REPORT_PARSE_GRAPH */
	struct report_str run_id, workflow, path, error, run_status;
	uint32_t run_attempt;
	int64_t start_ms, end_ms;  /* end_ms valid when has_end */
	int64_t generated_ms;      /* valid when has_generated */
	bool has_end, has_generated;
	struct report_task *tasks;
	uint32_t n_tasks;
	uint64_t n_edges, n_attempts;
	uint32_t counts[REPORT_ST_N]; /* tasks by status (counted) */
	/* The span to draw: from the earliest to the latest time in the
	 * document, generatedMs included only while the run or an attempt
	 * has no end; an attempt without an end runs to generatedMs, else to
	 * the run's end, else to the latest time seen. t1 > t0. */
	int64_t t0, t1;
};

enum {
	/* Read only the graph: "tasks" with ids, kinds, hooks, dependencies
	 * and (optional) statuses; no version, run or attempts needed. This
	 * reads `dagrun graph --format json` output as well as a run
	 * document. */
	REPORT_PARSE_GRAPH = 1,
};

/* Checks and parses doc (see docs/run-document.md) into *out, allocated in
 * mem; strings are borrowed from doc, which must outlive *out. Unknown
 * fields are ignored (later writers of version 1 may add optional ones);
 * a known field of the wrong type, a missing required one, a duplicate
 * task id, a dependency on an unknown id, attempt numbers not increasing,
 * run.counts that do not match the tasks, or another version: -EINVAL and
 * *err naming the field. */
int report_doc_parse(const struct json_t *doc, unsigned flags, struct arena *mem,
		     struct report_doc *out, char **err);

/* The end of attempt a as drawn: its end, or for an attempt that has none
 * (still running, or cut by a crash) the document's end as in t1. */
int64_t report_attempt_end(const struct report_doc *d,
			   const struct report_attempt *a);

/* ---- renderers ------------------------------------------------------------- */

/* Graph size limits. Graphviz's dot layout grows much faster than the
 * graph (measured, layered graphs of 1 to 3 dependencies per task, CPU:
 * 1,000 tasks 0.4 to 0.6 s, 2,000 tasks 1.3 to 2.1 s, 5,000 tasks 12 s):
 * a report stays near a second with the graph, and a graph of more than a
 * thousand boxes is not read anyway (the timeline shows every task). */
#define REPORT_HTML_GRAPH_MAX_NODES 1000u  /* above: a notice in the page */
#define REPORT_HTML_GRAPH_MAX_EDGES 3000u
#define REPORT_SVG_MAX_NODES 5000u         /* report_graph_svg: -E2BIG above */
#define REPORT_SVG_MAX_EDGES 20000u

struct report_html_opts {
	uint32_t graph_max_nodes;  /* 0: REPORT_HTML_GRAPH_MAX_NODES */
	uint32_t graph_max_edges;  /* 0: REPORT_HTML_GRAPH_MAX_EDGES */
};

/* Writes the HTML report of run document doc to out: one file, opening
 * from file:// with nothing fetched (a Content-Security-Policy of
 * default-src 'none' and hashes for its one script and one style says
 * so to the browser). The document itself is embedded as the page's data
 * (a <script type="application/json"> element, escaped so that nothing in
 * it can end the element) and drawn by the page's script; the graph is
 * SVG laid out here. A graph over the limits of o (NULL: defaults), or
 * one Graphviz fails to draw, is replaced by a notice saying why; the
 * report is written all the same. Returns 0, -EINVAL (invalid document,
 * *err), -EIO or -errno of the stream. */
int report_html(const struct json_t *doc, const struct report_html_opts *o,
		FILE *out, char **err);

/* Writes run document doc as Chrome trace-event JSON (the JSON object
 * format: {"traceEvents": [...], ...}) to out. Times are microseconds
 * from the start of the run. Process 1 is the run: one thread (track) per
 * running slot, attempts assigned greedily by start time to the lowest
 * free slot, each attempt an "X" slice named by its task id with args
 * (task, attempt, status, exitCode, signal, errorClass, error, timedOut);
 * a counter "running tasks". Process 2 is the waiting: ready-waits
 * (readyMs to startMs, cat "ready-wait", named "ready: ID") and retry waits
 * (an attempt's end to the next one's ready time or start, cat
 * "retry-wait", named "retry: ID") as X slices on their own slots, and a
 * counter "ready tasks" when the document has ready times. Metadata
 * events name both processes and every thread. Returns 0, -EINVAL (*err),
 * -ENOMEM or -errno of the stream. */
int report_trace(const struct json_t *doc, FILE *out, char **err);

/* Writes a text Gantt chart of run document doc, width columns wide (at
 * least 40 are used), to out: a header line, one line per task (its id
 * escaped as the console escapes task text and cut to its column, a bar
 * over the run's duration, its status and duration), in order of first
 * start (tasks that never started last, in document order), and a legend.
 * Bar characters: '.' waited while ready, '-' retry wait, '=' a completed
 * attempt, 'x' a failed or timed-out one, '!' cancelled or interrupted,
 * '>' still running. Returns 0, -EINVAL (*err) or -errno of the stream. */
int report_gantt_text(const struct json_t *doc, unsigned width, FILE *out,
		      char **err);

enum {
	REPORT_SVG_STATUS = 1,     /* colour nodes by status (a run document) */
	REPORT_SVG_INLINE = 2,     /* for an HTML page: no XML prolog, no
				    * DOCTYPE, no xmlns attributes (HTML needs
				    * none; they hold URLs) */
};

/* Lays out the graph of doc (a run document, or a graph document as
 * `dagrun graph --format json` writes: read with REPORT_PARSE_GRAPH) with
 * Graphviz's dot and writes it as SVG to out. Nodes show the task id and
 * kind (hooks dashed, with their hook list), non-blocking edges are
 * dashed, conditional edges carry their condition (cut at 80 bytes); each
 * node's SVG group has id "dagrun-node-INDEX" and class "node st-STATUS".
 * With REPORT_SVG_STATUS, nodes are filled by status. Graphviz's messages
 * are captured (agseterrf), never printed: an error fails with -EIO and
 * them in *err; warnings are dropped only when the SVG is drawn all the
 * same. Over REPORT_SVG_MAX_NODES or _EDGES: -E2BIG. Serialised by a
 * process-wide lock (Graphviz is not thread-safe). */
int report_graph_svg(const struct json_t *doc, unsigned flags, FILE *out,
		     char **err);

/* report_graph_svg() from a parsed document (what report_html uses);
 * max_nodes, max_edges: the limits (-E2BIG above them). */
int report_graph_svg_doc(const struct report_doc *d, unsigned flags,
			 uint32_t max_nodes, uint64_t max_edges, FILE *out,
			 char **err);

struct dagrun_workflow;

/* report_graph_svg() of a loaded workflow (no statuses): what
 * `dagrun graph FILE --format svg` and dagrun_graph_write(DAGRUN_GRAPH_SVG)
 * write. Needs wf->graph (a validated workflow). */
int report_graph_svg_workflow(const struct dagrun_workflow *wf, FILE *out,
			      char **err);

/* ---- percentiles ------------------------------------------------------------ */

/* Sorts v[0 .. n) in increasing order. */
void report_sort_u64(uint64_t *v, size_t n);

/* The p-th percentile (0 <= p <= 100) of sorted[0 .. n) (increasing) by
 * the nearest-rank method: the value at rank ceil(p / 100 * n), rank 1 for
 * p = 0; always a value of the data (no interpolation), so a p95 is a
 * duration that happened. Returns 0 and *out; -EINVAL when n is 0 or p is
 * outside [0, 100] (or NaN). */
int report_percentile(const uint64_t *sorted, size_t n, double p,
		      uint64_t *out);

#endif
