/* store_json.h: the store's records as JSON, one way for every reader:
 * `dagrun runs|show --format json` (cli/hist.c) and the server's API
 * (serve/json.c) name a run's fields alike (docs/cli.md, docs/api.md).
 *
 * Every string read from the store goes out valid UTF-8 (invalid bytes as
 * U+FFFD), so a task's odd output never breaks a document.
 */
#ifndef DAGRUN_REPORT_STORE_JSON_H
#define DAGRUN_REPORT_STORE_JSON_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "store/store.h"

/* s as a JSON string (invalid UTF-8 bytes as U+FFFD), or null for NULL.
 * NULL only on OOM. */
json_t *store_json_str(const char *s);

/* ms since the epoch as RFC 3339 UTC with milliseconds
 * ("2026-11-29T08:00:00.000Z"), or null for 0. */
json_t *store_json_time(uint64_t ms);

/* A run whose dagrun died (status interrupted) still has the tasks it was
 * running recorded as running: counts them as interrupted, as `dagrun
 * show` shows them (until `resume` records it). */
void store_run_settle(struct store_run_info *r);

/* What became of an attempt, in one word, as docs/cli.md names it: ok,
 * failed, timedOut, cancelled, interrupted, running. dead: its run's
 * dagrun died (an attempt without an end is then interrupted). */
const char *store_attempt_outcome(const struct store_attempt_info *a, bool dead);

/* The run with the fields of `dagrun runs --format json` (docs/cli.md):
 * id, runAttempt, workflow, path, status, start(Ms), end(Ms), durationMs,
 * tasks (total and a count by status), error, owner (host, pid, alive,
 * heartbeat; null when none). NULL on OOM. */
json_t *store_json_run(const struct store_run_info *r);

#endif
