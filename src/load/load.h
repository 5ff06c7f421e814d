/* load.h: the loader's entry points: a workflow file (YAML or JSON) into
 * the model (model/model.h), and nothing more.
 *
 * The loader reads and resolves (ids, dependencies, pools, defaults); it
 * builds no graph and checks no expression: that is the next step's
 * (workflow/workflow.h), which calls these. Invariant: on success *out
 * owns a model with every promise of model.h except wf->graph (NULL); on
 * failure nothing is allocated and *out is untouched.
 */
#ifndef DAGRUN_LOAD_H
#define DAGRUN_LOAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "model/model.h"

/* What the caller hands down to the loader. */
struct load_opts {
	/* Whether an interpreter (interp[0 .. len), NULL: the default) runs
	 * its script as a POSIX shell, whose templates can be escaped. */
	bool (*posix_shell)(const char *interp, size_t len);
};

/* What the caller may want to know of the input. */
struct load_info {
	uint64_t size_hint;   /* the size of a large regular file (parsed in a
			       * thread of its own), else 0 */
};

/* Loads the file at path. Returns 0, -EINVAL (errors in diags), or -errno
 * (also described in diags). info may be NULL. */
int load_file(const char *path, const struct load_opts *o, struct dagrun_workflow **out,
	      struct load_info *info, dagrun_diags *diags);

/* Same from a memory buffer (not copied, need not be NUL-terminated); name
 * is used in diagnostics and for relative paths (NULL: "<input>"). */
int load_buffer(const char *name, const char *data, size_t len, const struct load_opts *o,
		struct dagrun_workflow **out, struct load_info *info, dagrun_diags *diags);

#endif
