/* json.c: records of the store as the API's JSON (docs/api.md): a run with
 * its tasks and their attempts. Strings, times and a run alone are the
 * report module's (report/store_json.c), as `dagrun runs|show --format
 * json` writes them.
 *
 * Invariant: every string read from the store goes out valid UTF-8
 * (invalid bytes as U+FFFD), so a task's odd output never breaks a reply;
 * nothing here reads a secret (the store holds none: it records what the
 * engine's redactor already masked).
 */
#include <stdlib.h>
#include <string.h>

#include "serve/serve_int.h"

static json_t *uint_or_null(bool present, uint64_t v)
{
	return present ? json_integer((json_int_t)v) : json_null();
}

/* Sets key to v (stolen) in o; returns nonzero on failure (v NULL: OOM). */
static int set(json_t *o, const char *key, json_t *v)
{
	return !v || json_object_set_new(o, key, v);
}

json_t *serve_json_attempt(const struct store_attempt_info *a, bool dead)
{
	json_t *o = json_object();
	int e = !o;
	if (e)
		return NULL;
	e |= set(o, "attempt", json_integer(a->attempt));
	e |= set(o, "outcome", json_string(store_attempt_outcome(a, dead)));
	e |= set(o, "start", serve_json_time(a->start_ms));
	e |= set(o, "startMs", json_integer((json_int_t)a->start_ms));
	e |= set(o, "endMs", uint_or_null(a->ended, a->end_ms));
	e |= set(o, "durationMs", uint_or_null(a->ended, a->duration_ms));
	e |= set(o, "exitCode", a->ended && a->exit_code >= 0 ? json_integer(a->exit_code)
							      : json_null());
	e |= set(o, "signal", a->signal > 0 ? json_integer(a->signal) : json_null());
	e |= set(o, "errorClass", a->error_class ? json_string(dagrun_class_name(a->error_class))
						 : json_null());
	e |= set(o, "error", jstr(a->error));
	e |= set(o, "httpStatus", a->http_status > 0 ? json_integer(a->http_status) : json_null());
	e |= set(o, "stdoutBytes", json_integer((json_int_t)a->out_bytes));
	e |= set(o, "stderrBytes", json_integer((json_int_t)a->err_bytes));
	if (e) {
		json_decref(o);
		return NULL;
	}
	return o;
}

json_t *serve_json_show(const struct store_run_info *ri, const struct store_task_info *t,
			size_t nt, const struct store_attempt_info *att, size_t na)
{
	bool dead = ri->status == STORE_RUN_INTERRUPTED;
	json_t *o = json_object(), *tasks = json_array();
	int e = !o || !tasks;
	size_t at = 0;
	for (size_t i = 0; !e && i < nt; i++) {
		int status = t[i].status;
		if (dead && status == STORE_TASK_RUNNING)
			status = STORE_TASK_INTERRUPTED;
		json_t *x = json_object(), *atts = json_array();
		e |= !x || !atts;
		/* attempts come sorted by task, then attempt */
		while (!e && at < na && att[at].task < t[i].index)
			at++;
		for (; !e && at < na && att[at].task == t[i].index; at++)
			e |= json_array_append_new(atts, serve_json_attempt(&att[at], dead));
		if (!e) {
			e |= set(x, "id", jstr(t[i].id));
			e |= set(x, "index", json_integer(t[i].index));
			e |= set(x, "status", json_string(store_task_status_name(status)));
			e |= set(x, "errorClass", t[i].error_class ?
				 json_string(dagrun_class_name(t[i].error_class)) : json_null());
			e |= set(x, "error", jstr(t[i].error));
			e |= set(x, "attempts", json_incref(atts));
		}
		json_decref(atts);
		e |= json_array_append_new(tasks, x);
	}
	if (!e) {
		e |= set(o, "run", serve_json_run(ri));
		e |= set(o, "tasks", json_incref(tasks));
	}
	json_decref(tasks);
	if (e) {
		json_decref(o);
		return NULL;
	}
	return o;
}
