/* store_json.c: the store's records as JSON (see store_json.h).
 *
 * Invariant: nothing here reads a secret (the store holds none: it
 * records what the engine's redactor already masked), and every string
 * goes through the UTF-8 check.
 */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "report/store_json.h"
#include "util/buf.h"
#include "util/text.h"

json_t *store_json_str(const char *s)
{
	if (!s)
		return json_null();
	size_t n = strlen(s);
	if (text_utf8_valid(s, n))
		return json_stringn_nocheck(s, n);
	struct buf b = BUF_INIT;
	json_t *j = text_utf8_clean(&b, s, n) == 0 ?
		    json_stringn_nocheck(b.data ? b.data : "", b.len) : NULL;
	buf_free(&b);
	return j;
}

json_t *store_json_time(uint64_t ms)
{
	if (!ms)
		return json_null();
	time_t sec = (time_t)(ms / 1000);
	struct tm tm;
	char buf[64];
	if (!gmtime_r(&sec, &tm))
		return json_null();
	size_t k = strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf + k, sizeof(buf) - k, ".%03uZ", (unsigned)(ms % 1000));
	return json_string(buf);
}

void store_run_settle(struct store_run_info *r)
{
	if (r->status != STORE_RUN_INTERRUPTED)
		return;
	r->counts[STORE_TASK_INTERRUPTED] += r->counts[STORE_TASK_RUNNING];
	r->counts[STORE_TASK_RUNNING] = 0;
}

const char *store_attempt_outcome(const struct store_attempt_info *a, bool dead)
{
	if (!a->ended)
		return dead || (a->flags & STORE_ATTEMPT_INTERRUPTED) ? "interrupted" : "running";
	if (a->flags & STORE_ATTEMPT_OK)
		return "ok";
	if (a->flags & STORE_ATTEMPT_INTERRUPTED)
		return "interrupted";
	if (a->flags & STORE_ATTEMPT_TIMED_OUT)
		return "timedOut";
	return a->flags & STORE_ATTEMPT_CANCELLED ? "cancelled" : "failed";
}

static json_t *uint_or_null(bool present, uint64_t v)
{
	return present ? json_integer((json_int_t)v) : json_null();
}

/* Sets key to v (stolen) in o; nonzero on failure (v NULL: OOM). */
static int set(json_t *o, const char *key, json_t *v)
{
	return !v || json_object_set_new(o, key, v);
}

static json_t *owner(const struct store_lease *l)
{
	if (!l->host)
		return json_null();
	json_t *o = json_object();
	if (o && (set(o, "host", store_json_str(l->host)) |
		  set(o, "pid", json_integer((json_int_t)l->pid)) |
		  set(o, "alive", json_boolean(l->alive)) |
		  set(o, "heartbeat", store_json_time(l->beat_ms)))) {
		json_decref(o);
		return NULL;
	}
	return o;
}

json_t *store_json_run(const struct store_run_info *r)
{
	json_t *o = json_object(), *tasks = json_object();
	int e = !o || !tasks;
	bool ended = r->end_ms != 0;
	if (e)
		goto out;
	e |= set(o, "id", store_json_str(r->run_id));
	e |= set(o, "runAttempt", json_integer(r->run_attempt));
	e |= set(o, "replayOf", store_json_str(r->replay_of));
	e |= set(o, "workflow", store_json_str(r->workflow));
	e |= set(o, "path", store_json_str(r->path));
	e |= set(o, "status", json_string(store_run_status_name(r->status)));
	e |= set(o, "start", store_json_time(r->start_ms));
	e |= set(o, "startMs", json_integer((json_int_t)r->start_ms));
	e |= set(o, "end", store_json_time(r->end_ms));
	e |= set(o, "endMs", uint_or_null(ended, r->end_ms));
	e |= set(o, "durationMs", uint_or_null(ended && r->end_ms >= r->start_ms,
						r->end_ms - r->start_ms));
	e |= set(tasks, "total", json_integer(r->n_tasks));
	for (int i = 0; i < STORE_TASK_NSTATUS; i++)
		e |= set(tasks, store_task_status_name(i), json_integer(r->counts[i]));
	e |= set(o, "tasks", json_incref(tasks));
	e |= set(o, "error", store_json_str(r->error));
	e |= set(o, "owner", owner(&r->lease));
out:
	json_decref(tasks);
	if (e) {
		json_decref(o);
		return NULL;
	}
	return o;
}
