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
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph/graph.h"
#include "kinds/kind.h"
#include "load/load.h"
#include "load/pipe.h"
#include "util/diag.h"
#include "util/file.h"
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

/* ---- sub-workflows: linking --------------------------------------------------
 *
 * A kind's link() (the `workflow` kind's) asks for another file through
 * struct kind_link. Every file is loaded (read, resolved), linked (its own
 * sub-workflows, depth first) and checked (graph, expressions) once per
 * top-level load, then shared by every task that runs it, and owned by the
 * top-level workflow. The files being linked form a chain from the top:
 * a file already on it is a cycle; a chain longer than DAGRUN_MAX_NESTING
 * is too deep. Both are reported where the `workflow:` key names the file,
 * with the whole chain. */

struct linked {
	char *real;                    /* realpath() */
	struct dagrun_workflow *wf;
	unsigned height;               /* the depth of its deepest sub-workflow */
};

struct linker {
	struct kind_link l;            /* first: what link() sees */
	struct dagrun_workflow *root;
	const struct load_opts *opts;
	char *chain[DAGRUN_MAX_NESTING + 1];       /* real paths, from the top */
	const char *names[DAGRUN_MAX_NESTING + 1]; /* the same, as loaded */
	unsigned depth;                /* of the workflow being linked: 0 at the top */
	unsigned height;               /* the deepest nesting below it so far */
	struct linked *done;
	size_t n_done;
};

static void free_workflow(void *p)
{
	dagrun_workflow_free(p);
}

static int link_all(struct linker *lk, struct dagrun_workflow *wf,
		    const struct load_info *info);

/* "a.yaml -> b.yaml -> ... -> last" from chain position `from`. */
static char *chain_text(const struct linker *lk, unsigned from, const char *last)
{
	struct buf b = BUF_INIT;
	int r = 0;
	for (unsigned i = from; i <= lk->depth && r == 0; i++)
		r = buf_printf(&b, "%s -> ", lk->names[i]);
	if (r == 0)
		r = buf_adds(&b, last);
	char *s = r == 0 ? buf_steal(&b) : NULL;
	buf_free(&b);
	return s;
}

static int link_error(const struct linker *lk, const struct dagrun_workflow *from,
		      const struct dr_text *at, char *msg)
{
	if (!msg)
		return -ENOMEM;
	diag_add(lk->l.diags, DAGRUN_ERROR, from->path, at->line, at->col, "%s", msg);
	free(msg);
	return -EINVAL;
}

/* Loads, links and checks the file at full (real: its realpath). */
static int load_child(struct linker *lk, const char *full, char *real,
		      struct dagrun_workflow **out, unsigned *height)
{
	struct dagrun_workflow *cw = NULL;
	struct load_info info = {0};
	int r = load_file(full, lk->opts, &cw, &info, lk->l.diags);
	if (r < 0)
		return r;
	unsigned saved = lk->height;
	lk->depth++;
	lk->chain[lk->depth] = real;
	lk->names[lk->depth] = cw->path;
	lk->height = 0;
	r = link_all(lk, cw, &info);
	*height = lk->height;
	lk->height = saved;
	lk->depth--;
	int rc = build_and_check(cw, info.size_hint != 0, lk->l.diags);
	if (r == 0)
		r = rc;
	if (r == 0 && (r = dr_workflow_own(lk->root, free_workflow, cw)) == 0) {
		*out = cw;
		return 0;
	}
	dagrun_workflow_free(cw);
	return r;
}

/* kind_link.load: see kinds/kind.h. */
static int link_load(struct kind_link *l, const struct dagrun_workflow *from, uint32_t t,
		     const struct dr_text *at, const char *path,
		     const struct dagrun_workflow **child)
{
	struct linker *lk = (struct linker *)l;
	char *full = NULL, *real = NULL, *msg = NULL;
	const struct linked *hit = NULL;
	unsigned height = 0;
	int r = 0;
	(void)t;
	if (!(full = file_join(from->dir, path)))
		return -ENOMEM;
	if (!(real = realpath(full, NULL))) {
		int e = errno;
		r = e == ENOMEM ? -ENOMEM : link_error(lk, from, at, asprintf(&msg,
			"workflow '%s': cannot read %s: %s", path, full, strerror(e)) < 0 ? NULL : msg);
		goto out;
	}
	for (unsigned i = 0; i <= lk->depth; i++)
		if (!strcmp(lk->chain[i], real)) {
			char *c = chain_text(lk, i, full);
			r = link_error(lk, from, at, c && asprintf(&msg, "workflow '%s' runs itself: "
						   "%s", path, c) >= 0 ? msg : NULL);
			free(c);
			goto out;
		}
	for (size_t i = 0; i < lk->n_done && !hit; i++)
		if (!strcmp(lk->done[i].real, real))
			hit = &lk->done[i];
	if (lk->depth + 1 + (hit ? hit->height : 0) > DAGRUN_MAX_NESTING) {
		char *c = chain_text(lk, 0, full);
		r = link_error(lk, from, at, c && asprintf(&msg, "workflow '%s': sub-workflows "
					   "nested deeper than %u: %s%s", path, DAGRUN_MAX_NESTING, c,
					   hit && hit->height ? " -> ..." : "") >= 0 ? msg : NULL);
		free(c);
		goto out;
	}
	if (hit) {
		*child = hit->wf;
		height = hit->height;
	} else {
		struct dagrun_workflow *cw = NULL;
		if ((r = load_child(lk, full, real, &cw, &height)) < 0) {
			if (r != -ENOMEM)
				r = link_error(lk, from, at, asprintf(&msg, "workflow '%s' is invalid "
					       "(its errors are above)", path) < 0 ? NULL : msg);
			goto out;
		}
		/* after: loading it added the files it runs */
		struct linked *v = realloc(lk->done, (lk->n_done + 1) * sizeof(*v));
		if (!v) {
			r = -ENOMEM;   /* cw is the root's already */
			goto out;
		}
		lk->done = v;
		lk->done[lk->n_done++] = (struct linked){real, cw, height};
		real = NULL;
		*child = cw;
	}
	if (lk->height < height + 1)
		lk->height = height + 1;
out:
	free(full);
	free(real);
	return r;
}

/* Links every task of wf whose kind has a link(): all of them, reporting
 * every error. Returns 0, -EINVAL or -ENOMEM. info: the loader's counts
 * of tasks by kind (none of a linking kind: no pass over the tasks). */
static int link_all(struct linker *lk, struct dagrun_workflow *wf,
		    const struct load_info *info)
{
	bool any = false;
	for (uint32_t k = 0; k < wf->n_kinds; k++)
		any = any || (kind_of(wf->kinds[k])->link && info->kind_tasks[k]);
	int r = 0;
	for (uint32_t t = 0; any && t < wf->n_tasks && r != -ENOMEM; t++) {
		const struct kind *kd = kind_of(wf_task_kind(wf, t));
		int e = kd->link && wf->tasks[t].spec ? kd->link(&lk->l, wf, t) : 0;
		if (e < 0 && r != -ENOMEM)
			r = e;
	}
	return r;
}

/* Links the top-level workflow wf (loaded as path). */
static int link_top(struct dagrun_workflow *wf, const struct load_opts *opts,
		    const struct load_info *info, dagrun_diags *diags)
{
	struct linker lk = {.l = {link_load, diags}, .root = wf, .opts = opts};
	lk.chain[0] = realpath(wf->path, NULL);
	if (!lk.chain[0] && !(lk.chain[0] = strdup(wf->path)))
		return -ENOMEM;
	lk.names[0] = wf->path;
	int r = link_all(&lk, wf, info);
	free(lk.chain[0]);
	for (size_t i = 0; i < lk.n_done; i++)
		free(lk.done[i].real);
	free(lk.done);
	return r;
}

/* The rest of a load that read and resolved (r, wf, info from the loader):
 * sub-workflows, graph, checks. */
static int finish(int r, struct dagrun_workflow *wf, const struct load_info *info,
		  const struct load_opts *opts, dagrun_workflow **out, dagrun_diags *diags)
{
	if (r < 0)
		return r;
	int linked = link_top(wf, opts, info, diags);
	r = linked == -ENOMEM ? linked : build_and_check(wf, info->size_hint != 0, diags);
	if (r == 0)
		r = linked;
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
	return finish(r, wf, &info, &opts, out, diags);
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
	return finish(r, wf, &info, &opts, out, diags);
}

void dagrun_workflow_free(dagrun_workflow *wf)
{
	if (!wf)
		return;
	graph_free(wf->graph);
	wf->graph = NULL;
	dr_workflow_free(wf);
}
