/* jsonlog.c: the structured log observer: one JSON object per event, per
 * line (fields as in README "Structured logs").
 *
 * Lines go through a sink (sink.h): a slow reader costs lines, counted and
 * announced by a `log` line with droppedLines/droppedBytes, never the
 * engine's time. Strings keep their valid UTF-8 and get U+FFFD for each
 * invalid byte; an output chunk that had invalid bytes also carries them
 * exactly, base64-encoded, as dataBase64. A character cut between two
 * chunks of a stream is held back (per task and stream) and joined to the
 * next chunk, so a valid stream never shows U+FFFD.
 * Invariant: every line is a complete JSON object, written whole or not at
 * all, so a reader never sees half a record.
 */
#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dagrun.h"
#include "kinds/kind.h"
#include "obs/sink.h"
#include "util/text.h"
#include "util/buf.h"
#include "util/clock.h"

#define CARRIES 64   /* streams that may hold a character cut short */

struct carry {
	uint32_t task;
	int stream;          /* 0: free */
	uint8_t n;
	char b[4];
};

struct dagrun_jsonlog {
	struct obs_sink *sink;
	int min_level;
	char run_id[128];    /* for the drop notice */
	char *final;         /* run.end, when it had to wait for room */
	size_t final_len;
	struct carry carry[CARRIES];
};

static const char *event_name(int type)
{
	static const char *const names[] = {"run.start", "task.status", "attempt.start",
					    "attempt.end", "task.retry", "task.output",
					    "log", "run.end"};
	return (unsigned)type <= DAGRUN_EV_RUN_END ? names[type] : "?";
}

static const char *level_name(int level)
{
	static const char *const names[] = {"debug", "info", "warn", "error"};
	return (unsigned)level <= DAGRUN_ERR ? names[level] : "info";
}

/* RFC 3339 UTC with milliseconds. */
static void format_ts(uint64_t ms, char *buf, size_t n)
{
	time_t sec = (time_t)(ms / 1000);
	struct tm tm;
	gmtime_r(&sec, &tm);
	size_t k = strftime(buf, n, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf + k, n - k, ".%03uZ", (unsigned)(ms % 1000));
}

/* A JSON string of p[0 .. n): as it is when valid UTF-8, else with U+FFFD
 * for each invalid byte. NULL on OOM. */
static json_t *text(const char *p, size_t n)
{
	if (text_utf8_valid(p, n))
		return json_stringn_nocheck(p, n);
	struct buf b = BUF_INIT;
	json_t *j = text_utf8_clean(&b, p, n) == 0 ? json_stringn_nocheck(b.data, b.len) : NULL;
	buf_free(&b);
	return j;
}

static void set_str(json_t *o, const char *k, const char *v)
{
	if (v)
		json_object_set_new(o, k, text(v, strlen(v)));
}

static void set_uint(json_t *o, const char *k, uint64_t v)
{
	json_object_set_new(o, k, json_integer((json_int_t)v));
}

/* Emits one line. last: run.end, never dropped: when there is no room now,
 * it waits for dagrun_jsonlog_free (which may block; the run must not).
 * bulk: task output, the first to go when the reader is slow. */
static void emit(dagrun_jsonlog *l, json_t *o, bool last, bool bulk)
{
	char *line = json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII);
	if (!line)
		return;
	size_t n = strlen(line);
	line[n] = '\n';   /* json_dumps left room: its NUL becomes the newline */
	if (last && obs_sink_try_write(l->sink, line, n + 1) == 1) {
		free(l->final);
		l->final = line;
		l->final_len = n + 1;
		return;
	}
	if (!last)
		obs_sink_write(l->sink, line, n + 1, !bulk);
	free(line);
}

static int drop_notice(void *ud, uint64_t lines, uint64_t bytes, struct buf *out)
{
	dagrun_jsonlog *l = ud;
	json_t *o = json_object();
	if (!o)
		return -ENOMEM;
	char ts[40], msg[160];
	format_ts(clock_wall_ms(), ts, sizeof(ts));
	snprintf(msg, sizeof(msg), "%llu log line%s (%llu bytes) dropped: the reader is too slow",
		 (unsigned long long)lines, lines == 1 ? "" : "s", (unsigned long long)bytes);
	set_str(o, "ts", ts);
	set_str(o, "level", "warn");
	set_str(o, "event", "log");
	if (l->run_id[0])
		set_str(o, "run", l->run_id);
	set_str(o, "message", msg);
	set_uint(o, "droppedLines", lines);
	set_uint(o, "droppedBytes", bytes);
	char *line = json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII);
	json_decref(o);
	int r = line ? buf_printf(out, "%s\n", line) : -ENOMEM;
	free(line);
	return r;
}

dagrun_jsonlog *dagrun_jsonlog_new(FILE *out, int min_level)
{
	dagrun_jsonlog *l = calloc(1, sizeof(*l));
	if (!l)
		return NULL;
	l->min_level = min_level;
	int r = obs_sink_new(out, 0, drop_notice, l, &l->sink);
	if (r < 0) {
		free(l);
		errno = -r;
		return NULL;
	}
	return l;
}

/* ---- output chunks ------------------------------------------------------------ */

static struct carry *carry_of(dagrun_jsonlog *l, const dagrun_event *ev)
{
	struct carry *free_slot = NULL;
	for (int i = 0; i < CARRIES; i++) {
		struct carry *k = &l->carry[i];
		if (k->stream == ev->stream && k->task == ev->task_index)
			return k;
		if (!k->stream && !free_slot)
			free_slot = k;
	}
	if (free_slot) {
		free_slot->task = ev->task_index;
		free_slot->stream = ev->stream;
		free_slot->n = 0;
	}
	return free_slot;
}

/* The data fields of an output chunk p[0 .. n). */
static void add_data(json_t *o, const char *p, size_t n)
{
	if (text_utf8_valid(p, n)) {
		json_object_set_new(o, "data", json_stringn_nocheck(p, n));
		return;
	}
	json_object_set_new(o, "data", text(p, n));
	struct buf b = BUF_INIT;
	if (text_base64(&b, p, n) == 0)
		json_object_set_new(o, "dataBase64", json_stringn_nocheck(b.data ? b.data : "", b.len));
	buf_free(&b);
}

/* ---- events ------------------------------------------------------------------- */

static void add_attempt_end(json_t *o, const dagrun_event *ev)
{
	set_str(o, "status", dagrun_status_name(ev->status));
	if (ev->exit_code >= 0)
		json_object_set_new(o, "exitCode", json_integer(ev->exit_code));
	if (ev->signal)
		json_object_set_new(o, "signal", json_integer(ev->signal));
	if (ev->timed_out)
		json_object_set_new(o, "timedOut", json_true());
	set_uint(o, "durationMs", ev->duration_ms);
	set_uint(o, "cpuUserMs", ev->cpu_user_ms);
	set_uint(o, "cpuSysMs", ev->cpu_sys_ms);
	json_object_set_new(o, "maxRssKb", json_integer(ev->max_rss_kb));
	if (ev->out_dropped) {
		json_object_set_new(o, "outputTruncated", json_true());
		set_uint(o, "outputBytes", ev->out_bytes);
		set_uint(o, "outputDroppedBytes", ev->out_dropped);
	}
	if (ev->err_dropped) {
		json_object_set_new(o, "stderrTruncated", json_true());
		set_uint(o, "stderrBytes", ev->err_bytes);
		set_uint(o, "stderrDroppedBytes", ev->err_dropped);
	}
	if (ev->error_class)
		set_str(o, "errorClass", dagrun_class_name(ev->error_class));
	set_str(o, "error", ev->error);
	/* the kind's own fields (httpStatus, timings, model, usage...) */
	kinds_ext_json(ev->ext, o);
	/* the cache's decision (README "Cache") */
	const dagrun_ext_cache *k = (const void *)dagrun_ext_find(ev->ext, DAGRUN_EXT_CACHE);
	if (k) {
		json_object_set_new(o, "cached", json_boolean(k->hit));
		set_str(o, "cache", k->reason);
		set_str(o, "cacheKey", k->key);
	}
}

static void add_fields(dagrun_jsonlog *l, json_t *o, const dagrun_event *ev)
{
	switch (ev->type) {
	case DAGRUN_EV_RUN_START:
		set_uint(o, "tasks", ev->count);
		break;
	case DAGRUN_EV_TASK_STATUS:
		set_str(o, "status", dagrun_status_name(ev->status));
		set_str(o, "from", dagrun_status_name(ev->old_status));
		if (ev->error_class)
			set_str(o, "errorClass", dagrun_class_name(ev->error_class));
		set_str(o, "error", ev->error);
		break;
	case DAGRUN_EV_ATTEMPT_END:
		add_attempt_end(o, ev);
		break;
	case DAGRUN_EV_RETRY:
		set_uint(o, "delayMs", ev->delay_ms);
		set_str(o, "errorClass", dagrun_class_name(ev->error_class));
		set_str(o, "error", ev->error);
		break;
	case DAGRUN_EV_OUTPUT:
		set_str(o, "stream", ev->stream == 2 ? "stderr" : "stdout");
		add_data(o, ev->data, ev->len);
		break;
	case DAGRUN_EV_LOG:
		set_str(o, "message", ev->message);
		break;
	case DAGRUN_EV_RUN_END: {
		set_str(o, "status", dagrun_status_name(ev->status));
		set_uint(o, "durationMs", ev->count);
		if (ev->signal)   /* SIGUSR1: cancelled (recorded so), else interrupted */
			json_object_set_new(o, "signal", json_integer(ev->signal));
		uint64_t lines, bytes;
		obs_sink_dropped(l->sink, &lines, &bytes);
		if (bytes) {
			set_uint(o, "droppedLines", lines);
			set_uint(o, "droppedBytes", bytes);
		}
		break;
	}
	default:
		break;
	}
}

/* One event as one line. */
static void log_event(dagrun_jsonlog *l, const dagrun_event *ev)
{
	json_t *o = json_object();
	if (!o)
		return;
	char ts[40];
	format_ts(ev->ts_ms, ts, sizeof(ts));
	set_str(o, "ts", ts);
	set_str(o, "level", level_name(ev->level));
	set_str(o, "event", event_name(ev->type));
	set_str(o, "run", ev->run_id);
	set_str(o, "task", ev->task);
	if (ev->depth)   /* a sub-workflow's task, "PARENT.CHILD" */
		set_uint(o, "depth", ev->depth);
	if (ev->attempt)
		json_object_set_new(o, "attempt", json_integer(ev->attempt));
	add_fields(l, o, ev);
	emit(l, o, ev->type == DAGRUN_EV_RUN_END, ev->type == DAGRUN_EV_OUTPUT);
	json_decref(o);
}

/* An output chunk, joined to the character the stream's last chunk cut
 * short, itself without a character it cuts short. */
static void log_output(dagrun_jsonlog *l, const dagrun_event *ev)
{
	struct carry *k = carry_of(l, ev);
	struct buf b = BUF_INIT;
	if (k && k->n && buf_add(&b, k->b, k->n) < 0)
		goto out;
	if (buf_add(&b, ev->data, ev->len) < 0)
		goto out;
	size_t whole = b.len;
	if (k) {
		whole = text_utf8_whole(b.data, b.len);
		k->n = (uint8_t)(b.len - whole);
		memcpy(k->b, b.data + whole, k->n);
		if (!k->n)
			k->stream = 0;   /* nothing held: free the slot */
	}
	if (whole) {
		dagrun_event e = *ev;
		e.data = b.data;
		e.len = whole;
		log_event(l, &e);
	}
out:
	buf_free(&b);
}

/* At the end of an attempt, what its streams still hold (invalid bytes). */
static void flush_carries(dagrun_jsonlog *l, const dagrun_event *end)
{
	for (int i = 0; i < CARRIES; i++) {
		struct carry *k = &l->carry[i];
		if (!k->stream || k->task != end->task_index)
			continue;
		dagrun_event e = *end;
		e.type = DAGRUN_EV_OUTPUT;
		e.level = DAGRUN_DEBUG;
		e.stream = k->stream;
		e.data = k->b;
		e.len = k->n;
		k->stream = 0;
		if (e.len && e.level >= l->min_level)
			log_event(l, &e);
	}
}

void dagrun_jsonlog_event(void *ud, const dagrun_event *ev)
{
	dagrun_jsonlog *l = ud;
	if (ev->run_id && !l->run_id[0])
		snprintf(l->run_id, sizeof(l->run_id), "%s", ev->run_id);
	if (ev->type == DAGRUN_EV_ATTEMPT_END)
		flush_carries(l, ev);
	if (ev->level < l->min_level)
		return;
	if (ev->type == DAGRUN_EV_OUTPUT)
		log_output(l, ev);
	else
		log_event(l, ev);
}

void dagrun_jsonlog_free(dagrun_jsonlog *l)
{
	if (!l)
		return;
	if (l->final)
		obs_sink_write_wait(l->sink, l->final, l->final_len);
	obs_sink_free(l->sink);
	free(l->final);
	free(l);
}
