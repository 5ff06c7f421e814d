/* wfbuild.h: workflows built by hand for the graph tests.
 *
 * Tests need shapes no loader produces on demand (a million-task chain,
 * random DAGs, corrupt ranges), and the loader may not exist yet, so this
 * fills struct dagrun_workflow directly, keeping model.h's invariants: main
 * tasks first, then hook tasks; each task's dependencies contiguous; ids
 * interned. Task i sits at line i + 1, column 7 (as in "- id: x").
 * Helpers abort on OOM or misuse: they are test code.
 */
#ifndef DAGRUN_TEST_WFBUILD_H
#define DAGRUN_TEST_WFBUILD_H

#include "model/model.h"

/* Task kinds, as indexes of kinds/table.c's table, which wfb_init() gives
 * the workflow (and checks the order of). */
enum wfb_kind { WFB_COMMAND, WFB_SCRIPT, WFB_API, WFB_WEBHOOK, WFB_AI };

struct wfb {
	struct dagrun_workflow *wf;
	uint32_t task_cap;
	uint64_t dep_cap;
};

/* Starts a workflow named name with path "test.yaml". */
void wfb_init(struct wfb *b, const char *name);

/* Adds a task (hook: enum dr_hook) and returns its index. */
uint32_t wfb_task(struct wfb *b, const char *id, enum wfb_kind kind, int hook);

/* Adds a dependency of the last task on the task with id `on`, which may be
 * declared later. cond: a condition text or NULL. */
void wfb_dep(struct wfb *b, const char *on, enum dr_dep_type type,
	     const char *cond);

/* Resolves dependencies and hook ranges; returns the workflow (owned by
 * the caller: dagrun_workflow_free), without a graph. */
struct dagrun_workflow *wfb_finish(struct wfb *b);

/* Shorthand: space-separated tasks, each `id` or `id:dep,dep,...` (a dep
 * written `~dep` is non-blocking), all main command tasks. */
struct dagrun_workflow *wfb_parse(const char *spec);

#endif
