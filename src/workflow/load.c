/* load.c: dagrun_workflow_load() and _buffer(): the loader (load/) turns
 * the file into the model, then this step builds the graph and checks the
 * expressions; dagrun_workflow_free().
 *
 * Invariant: callers only ever own a fully valid workflow: on any failure
 * everything allocated is released and *out is left untouched. On a large
 * file (one the loader parsed in a thread of its own) the expression checks
 * run in a second thread while this one builds the graph
 * (build_and_check()); every thread is joined before the load returns, and
 * the diagnostics are exactly those of the same steps in sequence.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#include "graph/graph.h"
#include "kinds/kind.h"
#include "load/load.h"
#include "load/pipe.h"
#include "util/diag.h"
#include "workflow/workflow.h"

struct check_job {
	const struct dagrun_workflow *wf;
	struct dagrun_diags *diags;    /* of the job's own */
	int r;
};

static void *check_thread(void *arg)
{
	struct check_job *j = arg;
	j->r = dr_check_expressions(j->wf, j->diags);
	return NULL;
}

/* Appends the entries and counts of `from` to `to`. */
static void merge_diags(struct dagrun_diags *to, const struct dagrun_diags *from)
{
	size_t stored = 0;
	for (size_t i = 0; i < from->n; i++) {
		const struct dagrun_diag *g = &from->v[i];
		stored += g->severity == DAGRUN_ERROR;
		diag_add(to, g->severity, g->file, g->line, g->column, "%s", g->message);
	}
	to->errors += from->errors - stored;
	to->dropped += from->dropped;
}

/* Builds the graph, then checks templates and expressions (they compile,
 * and read only what exists and runs before them) unless the graph failed.
 * On a large workflow (large: the loader parsed it in a thread, so a second
 * core is likely there), the checks run in a thread of their own
 * meanwhile, into a list of their own of the room left, appended once the
 * graph is built: exactly the diagnostics of the sequence. This holds
 * because the checks read only the resolved tasks and dependencies, never
 * wf->graph, which graph_build() writes. */
static int build_and_check(struct dagrun_workflow *wf, bool large, struct dagrun_diags *d)
{
	struct check_job j = {wf, NULL, 0};
	pthread_t t;
	int r;
	if (!large || (d && diag_full(d)) ||
	    (d && !(j.diags = dagrun_diags_new(d->max - d->n))) ||
	    pipe_thread_start(&t, check_thread, &j) < 0) {
		dagrun_diags_free(j.diags);
		r = graph_build(wf, d);
		return r ? r : dr_check_expressions(wf, d);
	}
	r = graph_build(wf, d);
	pthread_join(t, NULL);
	if (!r) {
		if (d)
			merge_diags(d, j.diags);
		r = j.r;
	}
	dagrun_diags_free(j.diags);
	return r;
}

/* The kinds of kinds/table.c, as the loader takes them. */
static void kinds_opts(struct load_opts *o, const struct load_kind **v)
{
	unsigned n;
	const struct kind *const *k = kinds_table(&n);
	for (unsigned i = 0; i < n && i < LOAD_MAX_KINDS; i++)
		v[i] = &k[i]->load;
	*o = (struct load_opts){v, n};
}

/* The rest of a load that read and resolved (r, wf, info from the loader). */
static int finish(int r, struct dagrun_workflow *wf, const struct load_info *info,
		  dagrun_workflow **out, dagrun_diags *diags)
{
	if (r < 0)
		return r;
	r = build_and_check(wf, info->size_hint != 0, diags);
	if (r == -ENOMEM && diags)
		diag_add(diags, DAGRUN_ERROR, wf->path, 0, 0, "out of memory");
	if (r < 0) {
		dagrun_workflow_free(wf);
		return r;
	}
	*out = wf;
	return 0;
}

/* See dagrun.h. */
int dagrun_workflow_load(const char *path, dagrun_workflow **out, dagrun_diags *diags)
{
	struct dagrun_workflow *wf = NULL;
	struct load_info info = {0};
	const struct load_kind *kinds[LOAD_MAX_KINDS];
	struct load_opts opts;
	kinds_opts(&opts, kinds);
	int r = load_file(path, &opts, &wf, &info, diags);
	return finish(r, wf, &info, out, diags);
}

/* See dagrun.h. */
int dagrun_workflow_load_buffer(const char *name, const char *data, size_t len,
				dagrun_workflow **out, dagrun_diags *diags)
{
	struct dagrun_workflow *wf = NULL;
	struct load_info info = {0};
	const struct load_kind *kinds[LOAD_MAX_KINDS];
	struct load_opts opts;
	kinds_opts(&opts, kinds);
	int r = load_buffer(name, data, len, &opts, &wf, &info, diags);
	return finish(r, wf, &info, out, diags);
}

void dagrun_workflow_free(dagrun_workflow *wf)
{
	if (!wf)
		return;
	graph_free(wf->graph);
	wf->graph = NULL;
	dr_workflow_free(wf);
}
