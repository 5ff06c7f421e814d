/* wrap.h: an attempt that an executor standing in front of another (the
 * recorder, the cache) hands on: a copy of the scheduler's attempt whose
 * callbacks forward to it.
 *
 * Invariant: `in` is the first member, so the inner executor's attempt is
 * the wrap (and whatever struct begins with one); the render callback
 * forwards the context the inner executor sets around its calls (the AI
 * executor's) and clears it after.
 */
#ifndef DAGRUN_ENGINE_WRAP_H
#define DAGRUN_ENGINE_WRAP_H

#include "exec/executor.h"

struct exec_wrap {
	struct exec_attempt in;          /* what the inner executor sees */
	struct exec_attempt *out;        /* the scheduler's */
};

/* Makes w->in a copy of out whose output, events and render go to out,
 * and whose end goes to done (which forwards it, after its own work);
 * on_output, when not NULL, stands for the output forwarder (it calls
 * exec_wrap_output). */
void exec_wrap_init(struct exec_wrap *w, struct exec_attempt *out, exec_done_cb done,
		    exec_output_cb on_output);

/* The output forwarder: chunk to the scheduler's attempt. */
void exec_wrap_output(struct exec_attempt *a, enum exec_stream s, const char *p, size_t n);

#endif
