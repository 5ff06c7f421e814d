/* load.h: the loader's entry points: a workflow file (YAML or JSON) into
 * the model (model/model.h), and nothing more.
 *
 * The loader reads and resolves (ids, dependencies, pools, defaults); it
 * builds no graph and checks no expression: that is the next step's
 * (workflow/workflow.h), which calls these. The task kinds are handed down
 * by the caller. Invariant: on success *out
 * owns a model with every promise of model.h except wf->graph (NULL); on
 * failure nothing is allocated and *out is untouched.
 */
#ifndef DAGRUN_LOAD_H
#define DAGRUN_LOAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "model/model.h"

struct load_kind;   /* load/loader.h: the loader's part of a task kind */

/* What the caller hands down to the loader: the task kinds (the table of
 * kinds/table.c; the loader includes no kind), at most LOAD_MAX_KINDS.
 * Tasks index them (dr_task.kind) in this order, and wf->kinds lists
 * their model parts. */
struct load_opts {
	const struct load_kind *const *kinds;
	unsigned n_kinds;
};

/* What the caller may want to know of the input. */
struct load_info {
	uint64_t size_hint;   /* the size of a large regular file (parsed in a
			       * thread of its own), else 0 */
	uint32_t kind_tasks[DR_MAX_KINDS]; /* the tasks of each kind */
};

/* Loads the file at path. Returns 0, -EINVAL (errors in diags; also for
 * kinds that do not fit), or -errno (also described in diags). info may be
 * NULL. */
int load_file(const char *path, const struct load_opts *o, struct dagrun_workflow **out,
	      struct load_info *info, dagrun_diags *diags);

/* Same from a memory buffer (not copied, need not be NUL-terminated); name
 * is used in diagnostics and for relative paths (NULL: "<input>"). */
int load_buffer(const char *name, const char *data, size_t len, const struct load_opts *o,
		struct dagrun_workflow **out, struct load_info *info, dagrun_diags *diags);

#endif
