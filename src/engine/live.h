/* live.h: the executor of a replay with live tasks (live.c). */
#ifndef DAGRUN_ENGINE_LIVE_H
#define DAGRUN_ENGINE_LIVE_H

#include <stdint.h>

#include "exec/executor.h"
#include "model/model.h"

/* An executor that starts the attempts of wf's tasks marked in live
 * (wf->n_tasks bytes, copied; non-zero: live) on real, and every other
 * attempt of wf on replayer. An attempt of another workflow (a task of a
 * sub-workflow: only a live one starts its children) goes to real. real
 * and replayer are borrowed: destroy this one first. NULL on OOM. */
struct executor *live_executor_new(const struct dagrun_workflow *wf, const uint8_t *live,
				   struct executor *real, struct executor *replayer);

#endif
