/* workflow.h: the step above the loader, the graph and the expressions:
 * dagrun_workflow_load() reads the file into the model (load/), builds the
 * dependency graph (graph/) and checks every template and expression
 * statically (exprcheck.c, on expr/). Nothing below includes this.
 */
#ifndef DAGRUN_WORKFLOW_H
#define DAGRUN_WORKFLOW_H

#include "model/model.h"

/* Checks every template and expression of wf statically (they compile,
 * tasks.X names an upstream task; variables.X a declared variable; no
 * unknown names), adding errors to diags. Returns 0, -EINVAL or -ENOMEM.
 * It must not read wf->graph: load.c runs it in a second thread while
 * graph_build() builds the graph. */
int dr_check_expressions(const struct dagrun_workflow *wf, struct dagrun_diags *diags);

#endif
