/* rundoc.h: the run document (docs/run-document.md) of a run recorded in
 * the state store, for `dagrun report`, `trace`, `show --timeline` and
 * `graph RUN` (and later the server's GET /api/runs/{id}).
 *
 * Layering: the report module reads the store (store/store.h, through its
 * table of operations only); the store knows nothing of reports. The
 * renderers of report.h still read only documents.
 *
 * Where each field comes from is the mapping at the end of
 * docs/run-document.md: the run and its tasks from the store's queries;
 * each task's kind, hook and dependencies from the definition recorded
 * with the run (the workflow's text, loaded again with
 * dagrun_workflow_load_buffer: nothing else records them); each
 * attempt's output tails from the ends of its log files; the history
 * (p50, p95, max of the task's successful attempts in the runs of the
 * workflow recorded before this one) from the store's task_stats.
 */
#ifndef DAGRUN_REPORT_RUNDOC_H
#define DAGRUN_REPORT_RUNDOC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct json_t;
struct store;
struct store_run_info;

#define REPORT_TAIL_DEFAULT 4096u           /* bytes of each stream's end */
#define REPORT_TAIL_MAX (1u << 20)
#define REPORT_HISTORY_RUNS_DEFAULT 50u     /* past runs the history is of */

struct report_rundoc_opts {
	size_t tail_bytes;         /* per attempt and stream; 0: the default;
				    * at most REPORT_TAIL_MAX */
	uint32_t history_runs;     /* 0: the default */
	bool no_history;           /* leave history out (no query) */
	bool no_outputs;           /* leave the output tails out (no file read) */
	uint64_t now_ms;           /* generatedMs; 0: the wall clock */
};

/* Builds the run document of ri (as find_run or get_run of s returned it)
 * into *out (a new json_t, the caller's to json_decref). The document is
 * valid for report_doc_parse whatever the store holds: text that is not
 * UTF-8 is cleaned (U+FFFD), task ids that clean alike or are empty are
 * told apart ("#INDEX" appended), counts are those of the statuses
 * written. A run whose dagrun died (interrupted) shows its running tasks
 * and unended attempts as interrupted, as `dagrun show` does.
 *
 * What the document cannot hold is said in *warn (when warn is not NULL):
 * NULL when nothing is missing, else a malloc'd text, one line per
 * reason, e.g. "dependencies and kinds not known: the recorded definition
 * does not load: wf.yaml:3:5: ..."; the document is complete otherwise.
 * Output tails cut by the log cap end with a line saying how many bytes
 * the log did not keep.
 *
 * Returns 0; -ENOMEM; or the store's error with *err set (malloc'd). */
int report_rundoc_from_store(struct store *s, const struct store_run_info *ri,
			     const struct report_rundoc_opts *o,
			     struct json_t **out, char **warn, char **err);

#endif
