/* graph.c: STUB, to be replaced. */
#include <errno.h>
#include <stdlib.h>
#include "graph/graph.h"
int graph_build(struct dagrun_workflow *wf, struct dagrun_diags *diags)
{
	(void)wf; (void)diags;
	return -ENOSYS;
}
void graph_free(struct graph *g)
{
	free(g);
}
int dagrun_graph_write(const dagrun_workflow *wf, enum dagrun_graph_format fmt, FILE *out)
{
	(void)wf; (void)fmt; (void)out;
	return -ENOSYS;
}
