/* fake.h: an executor that spawns nothing (ninja's FakeCommandRunner).
 *
 * Each attempt ends after the delay and with the outcome a caller-supplied
 * function decides (by default: at once, successfully). Completions are
 * delivered from the loop, never from inside start(). Used by the scheduler
 * tests and by the scheduling-overhead benchmark.
 */
#ifndef DAGRUN_FAKE_H
#define DAGRUN_FAKE_H

#include <uv.h>

#include "exec/executor.h"

struct fake_outcome {
	bool ok;
	uint8_t error_class;     /* when !ok */
	int exit_code;
	uint64_t duration_ms;    /* 0: complete on the next loop iteration */
	uint64_t retry_after_ms;
};

/* Decides how attempt a ends; ud is the pointer given to fake_executor_new. */
typedef struct fake_outcome (*fake_decide_fn)(void *ud, const struct exec_attempt *a);

/* A new fake executor on loop. decide may be NULL (always succeed at once).
 * Returns NULL on OOM. Destroy through ex->ops->destroy. */
struct executor *fake_executor_new(uv_loop_t *loop, fake_decide_fn decide, void *ud);

#endif
