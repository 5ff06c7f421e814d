/* jsonlog.c: the structured log observer: one JSON object per event, per
 * line (fields as in cli.md). Invariant: every line is a complete JSON
 * object, flushed as written, so a crash never leaves half a record. */
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dagrun.h"

struct dagrun_jsonlog {
	FILE *out;
	int min_level;
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

dagrun_jsonlog *dagrun_jsonlog_new(FILE *out, int min_level)
{
	dagrun_jsonlog *l = calloc(1, sizeof(*l));
	if (l) {
		l->out = out;
		l->min_level = min_level;
	}
	return l;
}

static void set_str(json_t *o, const char *k, const char *v)
{
	if (v)
		json_object_set_new(o, k, json_string(v));
}

static void add_fields(json_t *o, const dagrun_event *ev)
{
	switch (ev->type) {
	case DAGRUN_EV_RUN_START:
		json_object_set_new(o, "tasks", json_integer((json_int_t)ev->count));
		break;
	case DAGRUN_EV_TASK_STATUS:
		set_str(o, "status", dagrun_status_name(ev->status));
		set_str(o, "from", dagrun_status_name(ev->old_status));
		if (ev->error_class)
			set_str(o, "errorClass", dagrun_class_name(ev->error_class));
		set_str(o, "error", ev->error);
		break;
	case DAGRUN_EV_ATTEMPT_END:
		set_str(o, "status", dagrun_status_name(ev->status));
		if (ev->exit_code >= 0)
			json_object_set_new(o, "exitCode", json_integer(ev->exit_code));
		if (ev->signal)
			json_object_set_new(o, "signal", json_integer(ev->signal));
		if (ev->timed_out)
			json_object_set_new(o, "timedOut", json_true());
		json_object_set_new(o, "durationMs", json_integer((json_int_t)ev->duration_ms));
		json_object_set_new(o, "cpuUserMs", json_integer((json_int_t)ev->cpu_user_ms));
		json_object_set_new(o, "cpuSysMs", json_integer((json_int_t)ev->cpu_sys_ms));
		json_object_set_new(o, "maxRssKb", json_integer(ev->max_rss_kb));
		if (ev->error_class)
			set_str(o, "errorClass", dagrun_class_name(ev->error_class));
		set_str(o, "error", ev->error);
		if (ev->http_status)
			json_object_set_new(o, "httpStatus", json_integer(ev->http_status));
		if (ev->total_us) {
			json_t *t = json_object();
			json_object_set_new(t, "dnsUs", json_integer((json_int_t)ev->dns_us));
			json_object_set_new(t, "connectUs", json_integer((json_int_t)ev->connect_us));
			json_object_set_new(t, "tlsUs", json_integer((json_int_t)ev->tls_us));
			json_object_set_new(t, "firstByteUs", json_integer((json_int_t)ev->first_byte_us));
			json_object_set_new(t, "totalUs", json_integer((json_int_t)ev->total_us));
			json_object_set_new(o, "timings", t);
		}
		set_str(o, "model", ev->model);
		if (ev->prompt_tokens >= 0) {
			json_t *u = json_object();
			json_object_set_new(u, "promptTokens", json_integer(ev->prompt_tokens));
			json_object_set_new(u, "completionTokens", json_integer(ev->completion_tokens));
			json_object_set_new(o, "usage", u);
		}
		set_str(o, "finishReason", ev->finish_reason);
		if (ev->prompt_sha256) {
			set_str(o, "promptSha256", ev->prompt_sha256);
			json_object_set_new(o, "promptBytes", json_integer((json_int_t)ev->prompt_bytes));
			json_object_set_new(o, "contextCutBytes",
					    json_integer((json_int_t)ev->context_cut_bytes));
		}
		break;
	case DAGRUN_EV_RETRY:
		json_object_set_new(o, "delayMs", json_integer((json_int_t)ev->delay_ms));
		set_str(o, "errorClass", dagrun_class_name(ev->error_class));
		set_str(o, "error", ev->error);
		break;
	case DAGRUN_EV_OUTPUT:
		set_str(o, "stream", ev->stream == 2 ? "stderr" : "stdout");
		json_object_set_new(o, "data", json_stringn_nocheck(ev->data, ev->len));
		break;
	case DAGRUN_EV_LOG:
		set_str(o, "message", ev->message);
		break;
	case DAGRUN_EV_RUN_END:
		set_str(o, "status", dagrun_status_name(ev->status));
		json_object_set_new(o, "durationMs", json_integer((json_int_t)ev->count));
		break;
	default:
		break;
	}
}

void dagrun_jsonlog_event(void *ud, const dagrun_event *ev)
{
	dagrun_jsonlog *l = ud;
	if (ev->level < l->min_level)
		return;
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
	if (ev->attempt)
		json_object_set_new(o, "attempt", json_integer(ev->attempt));
	add_fields(o, ev);
	/* Output chunks may hold any bytes: keep invalid UTF-8 from making the
	 * line unparseable by replacing the string with an escaped form. */
	char *line = json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII);
	if (!line && ev->type == DAGRUN_EV_OUTPUT) {
		json_object_set_new(o, "data", json_string("<binary output>"));
		line = json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII);
	}
	if (line) {
		fputs(line, l->out);
		fputc('\n', l->out);
		fflush(l->out);
		free(line);
	}
	json_decref(o);
}

void dagrun_jsonlog_free(dagrun_jsonlog *l)
{
	free(l);
}
