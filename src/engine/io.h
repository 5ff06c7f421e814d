/* io.h: the recorder and the replayer (io.c): the executors that record
 * what replay needs of each attempt, and replay a recorded run. */
#ifndef DAGRUN_ENGINE_IO_H
#define DAGRUN_ENGINE_IO_H

#include <stddef.h>

#include <jansson.h>
#include <uv.h>

#include "exec/executor.h"

struct kind;

/* An executor for the tasks of kind k that runs them on inner (borrowed:
 * destroy this one first) and adds DAGRUN_EXT_IO to their results. NULL
 * on OOM. */
struct executor *io_recorder_new(uv_loop_t *loop, const struct kind *k, struct executor *inner);

/* Parses the recording (the document `dagrun export` writes) into *out, a
 * map of task id to its attempts (the caller's to json_decref), and, when
 * run_id is not NULL, the id of the run recorded into *run_id (malloc'd;
 * NULL when the document names none). Returns 0, -ENOMEM, or -EINVAL with
 * *err (malloc'd). */
int io_replay_doc(const char *text, size_t len, json_t **out, char **run_id, char **err);

/* Fills r (which it clears first) with the result recorded in t, one
 * attempt as `dagrun export` writes it (ok, exitCode, stdout, results,
 * httpStatus, model...; NULL: r stays empty), with DAGRUN_EXT_IO carrying
 * inputs and ierr (both malloc'd or NULL, taken). What a replay and a
 * cache hit end an attempt with. */
void io_result_recorded(const json_t *t, char *inputs, char *ierr, struct exec_result *r);

/* An executor for the tasks of kind k that ends each attempt with its
 * recorded result (doc: from io_replay_doc, referenced), from the loop,
 * with DAGRUN_EXT_IO holding the inputs rendered now. NULL on OOM. */
struct executor *io_replayer_new(uv_loop_t *loop, const struct kind *k, json_t *doc);

#endif
