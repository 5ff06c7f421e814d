/* live.c: `dagrun replay RUN --live TASK`: the tasks named run for real,
 * every other one is replayed from the recording.
 *
 * One executor per kind stands in front of two: the kind's real executor
 * (behind the recorder, so the live run is recorded as any run is) and the
 * replayer (io.c). It picks one per attempt, by task, and forwards the
 * attempt as it is: the scheduler, its callbacks and the attempt's
 * lifetime are those of the executor picked. Invariant: an attempt is
 * cancelled on the executor that started it (the pick depends on the
 * attempt alone), and nothing of a replayed task reaches a real executor.
 */
#include "engine/live.h"

#include <stdlib.h>
#include <string.h>

struct live_exec {
	struct executor base;
	const struct dagrun_workflow *wf;
	struct executor *real, *replayer;
	uint8_t *live;                   /* by task index of wf */
};

static struct executor *pick(struct live_exec *x, const struct exec_attempt *a)
{
	if (a->wf != x->wf)
		return x->real;   /* a child of a live sub-workflow task */
	return a->task < x->wf->n_tasks && x->live[a->task] ? x->real : x->replayer;
}

static int live_start(struct executor *ex, struct exec_attempt *a)
{
	struct executor *to = pick((struct live_exec *)ex, a);
	return to->ops->start(to, a);
}

static void live_cancel(struct executor *ex, struct exec_attempt *a, bool hard)
{
	struct executor *to = pick((struct live_exec *)ex, a);
	to->ops->cancel(to, a, hard);
}

static void live_destroy(struct executor *ex)
{
	struct live_exec *x = (struct live_exec *)ex;
	free(x->live);
	free(x);
}

static const struct executor_ops live_ops = {
	.name = "live", .start = live_start, .cancel = live_cancel, .destroy = live_destroy,
};

struct executor *live_executor_new(const struct dagrun_workflow *wf, const uint8_t *live,
				   struct executor *real, struct executor *replayer)
{
	struct live_exec *x = calloc(1, sizeof(*x));
	if (!x)
		return NULL;
	x->live = malloc(wf->n_tasks ? wf->n_tasks : 1);
	if (!x->live) {
		free(x);
		return NULL;
	}
	if (wf->n_tasks)
		memcpy(x->live, live, wf->n_tasks);
	x->base.ops = &live_ops;
	x->wf = wf;
	x->real = real;
	x->replayer = replayer;
	return &x->base;
}
