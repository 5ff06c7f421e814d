/* workflow.c: the workflow object's accessors, names and destructor. */
#include <stdlib.h>

#include "graph/graph.h"
#include "load/model.h"

const char *dagrun_version(void)
{
	return DAGRUN_VERSION;
}

const char *dr_kind_name(enum dr_kind k)
{
	static const char *const names[] = {"command", "script", "api", "webhook", "ai"};
	return (unsigned)k < DR_KIND_COUNT ? names[k] : "?";
}

const char *dr_class_name(enum dr_error_class c)
{
	static const char *const names[] = {"none", "transient", "permanent",
					    "dependency", "resource"};
	return (unsigned)c <= DR_CLASS_RESOURCE ? names[c] : "?";
}

const char *dagrun_workflow_name(const dagrun_workflow *wf)
{
	return wf && wf->name.s ? wf->name.s : "";
}

size_t dagrun_workflow_task_count(const dagrun_workflow *wf)
{
	return wf ? wf->n_tasks : 0;
}

void dagrun_workflow_free(dagrun_workflow *wf)
{
	if (!wf)
		return;
	graph_free(wf->graph);
	free(wf->sym_task);
	free(wf->tasks);
	free(wf->deps);
	free(wf->path);
	free(wf->dir);
	intern_free(&wf->ids);
	arena_free(&wf->arena);
	free(wf);
}
