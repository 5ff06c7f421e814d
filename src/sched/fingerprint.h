/* fingerprint.h: telling two definitions of a task apart (rerun with the
 * workflow as it is now: what was added, removed and changed since the run).
 * See fingerprint.c for what the fingerprint covers.
 */
#ifndef DAGRUN_SCHED_FINGERPRINT_H
#define DAGRUN_SCHED_FINGERPRINT_H

#include <errno.h>
#include <stdint.h>

#include "model/model.h"
#include "util/arena.h"

/* A hash of everything that decides what task t of wf does. */
uint64_t task_fingerprint(const struct dagrun_workflow *wf, uint32_t t);

/* Task ids (in the workflows' arenas), NULL-terminated lists. */
struct wf_diff {
	const char **added, **removed, **changed;
	uint32_t n_added, n_removed, n_changed;
};

/* What changed from old to now, by task id: tasks of now not in old
 * (added), of old not in now (removed), in both with another fingerprint
 * (changed). Lists in mem. Returns 0 or -ENOMEM. */
int wf_diff(const struct dagrun_workflow *old, const struct dagrun_workflow *now,
	    struct arena *mem, struct wf_diff *out);

#endif
