/* consumer.c: a program written by a user of libdagrun, compiled by
 * test_install.py against the installed library, found through pkg-config.
 *
 *   consumer WORKFLOW   loads and runs WORKFLOW (every task must complete),
 *                       then checks that an invalid workflow is refused with
 *                       its line; exit 0 when all is as expected.
 *
 * It uses nothing but <dagrun.h> and the C library.
 */
#include <dagrun.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

struct seen {
	unsigned completed; /* task.status events to completed */
	unsigned run_end;
};

static void observe(void *ud, const dagrun_event *ev)
{
	struct seen *s = ud;
	if (ev->type == DAGRUN_EV_TASK_STATUS && ev->status == DAGRUN_COMPLETED)
		s->completed++;
	else if (ev->type == DAGRUN_EV_RUN_END)
		s->run_end++;
}

/* An unknown key is refused, at its line, with a suggestion. */
static int check_invalid(void)
{
	static const char bad[] = "name: bad\ntasks:\n  - id: a\n    comand: true\n";
	dagrun_diags *d = dagrun_diags_new(0);
	dagrun_workflow *wf = NULL;
	int ok = 0;
	if (!d)
		return -1;
	int r = dagrun_workflow_load_buffer("bad.yaml", bad, sizeof(bad) - 1, &wf, d);
	if (r != -EINVAL || wf || dagrun_diags_errors(d) < 1) {
		fprintf(stderr, "consumer: invalid workflow: load returned %d, %zu errors\n",
			r, dagrun_diags_errors(d));
		ok = -1;
	} else {
		const dagrun_diag *g = dagrun_diags_get(d, 0);
		if (!g || g->line != 4 || !strstr(g->message, "comand")) {
			fprintf(stderr, "consumer: unexpected diagnostic %u: %s\n",
				g ? g->line : 0, g ? g->message : "(none)");
			ok = -1;
		}
	}
	dagrun_workflow_free(wf);
	dagrun_diags_free(d);
	return ok;
}

int main(int argc, char **argv)
{
	dagrun_diags *d = NULL;
	dagrun_workflow *wf = NULL;
	dagrun_engine *e = NULL;
	dagrun_run_opts opts;
	struct seen seen = {0, 0};
	size_t counts[DAGRUN_CANCELLED + 1];
	int rc = 1, r;

	if (argc != 2) {
		fputs("usage: consumer WORKFLOW\n", stderr);
		return 2;
	}
	if (strcmp(dagrun_version(), DAGRUN_VERSION)) {
		fprintf(stderr, "consumer: library %s, header %s\n", dagrun_version(),
			DAGRUN_VERSION);
		return 1;
	}
	if (!(d = dagrun_diags_new(0)))
		goto out;
	if ((r = dagrun_workflow_load(argv[1], &wf, d))) {
		dagrun_diags_print(d, stderr, 0);
		fprintf(stderr, "consumer: load: %d\n", r);
		goto out;
	}
	memset(&opts, 0, sizeof(opts));
	opts.max_parallel = 2;
	if ((r = dagrun_engine_new(&e, wf, &opts, d))) {
		dagrun_diags_print(d, stderr, 0);
		fprintf(stderr, "consumer: engine: %d\n", r);
		goto out;
	}
	if ((r = dagrun_engine_observe(e, observe, &seen)))
		goto out;
	r = dagrun_engine_run(e);
	dagrun_engine_counts(e, counts);
	printf("run %d: %zu tasks, %zu completed, %u completed events, %u run.end\n", r,
	       dagrun_workflow_task_count(wf), counts[DAGRUN_COMPLETED], seen.completed,
	       seen.run_end);
	if (r != 0 || counts[DAGRUN_COMPLETED] != dagrun_workflow_task_count(wf) ||
	    seen.completed != counts[DAGRUN_COMPLETED] || seen.run_end != 1)
		goto out;
	if (check_invalid())
		goto out;
	rc = 0;
out:
	dagrun_engine_free(e);
	dagrun_workflow_free(wf);
	dagrun_diags_free(d);
	return rc;
}
