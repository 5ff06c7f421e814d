/* metrics.c: GET /metrics, the Prometheus text format (version 0.0.4).
 *
 * Runs by workflow and status are counted in the store at each scrape
 * (a gauge: what the store holds, retention included). Attempts and their
 * durations are counted by the poller as they end, since the server
 * started (counters: a restart resets them, which Prometheus handles).
 * Running and ready tasks are gauges the poller refreshes, summed over
 * each workflow's running runs (ready: main tasks pending whose
 * dependencies all ended, derived from the store and the run's own
 * definition: poll.c); schedule lag comes from the scheduler. Label values are escaped as the format says.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "serve/serve_int.h"

static const double bounds[MET_BUCKETS] = {0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300,
					   1800, 3600};
static const char *const classes[5] = {"none", "transient", "permanent", "dependency",
				       "resource"};

static struct met_wf *wf_get(struct metrics *m, const char *workflow)
{
	for (size_t i = 0; i < m->n; i++)
		if (!strcmp(m->v[i].workflow, workflow))
			return &m->v[i];
	struct met_wf *v = realloc(m->v, (m->n + 1) * sizeof(*v));
	if (!v)
		return NULL;
	m->v = v;
	struct met_wf *w = &v[m->n];
	memset(w, 0, sizeof(*w));
	if (!(w->workflow = strdup(workflow)))
		return NULL;
	m->n++;
	return w;
}

void met_attempt(struct serve *s, const char *workflow, uint64_t duration_ms, int error_class)
{
	pthread_mutex_lock(&s->met.mu);
	struct met_wf *w = wf_get(&s->met, workflow);
	if (w) {
		double sec = (double)duration_ms / 1000.0;
		size_t b = 0;
		while (b < MET_BUCKETS && sec > bounds[b])
			b++;
		w->hist[b]++;
		w->sum_s += sec;
		w->count++;
		w->attempts[error_class >= 0 && error_class < 5 ? error_class : 0]++;
	}
	pthread_mutex_unlock(&s->met.mu);
}

void met_gauges(struct serve *s, const struct met_gauge *g, size_t n)
{
	pthread_mutex_lock(&s->met.mu);
	for (size_t i = 0; i < s->met.n; i++)
		s->met.v[i].running = s->met.v[i].ready = 0;
	for (size_t i = 0; i < n; i++) {
		struct met_wf *w = wf_get(&s->met, g[i].workflow);
		if (w) {
			w->running = g[i].running;
			w->ready = g[i].ready;
		}
	}
	pthread_mutex_unlock(&s->met.mu);
}

void met_request(struct serve *s, unsigned status)
{
	pthread_mutex_lock(&s->met.mu);
	s->met.requests[status >= 100 && status < 600 ? status / 100 : 0]++;
	pthread_mutex_unlock(&s->met.mu);
}

void met_free(struct serve *s)
{
	for (size_t i = 0; i < s->met.n; i++)
		free(s->met.v[i].workflow);
	free(s->met.v);
	s->met.v = NULL;
	s->met.n = 0;
}

/* A label value: backslash, double quote and newline escaped. */
static void label(struct buf *b, const char *v)
{
	for (; *v; v++) {
		if (*v == '\\' || *v == '"')
			buf_addc(b, '\\');
		if (*v == '\n')
			buf_adds(b, "\\n");
		else
			buf_addc(b, *v);
	}
}

static void head(struct buf *b, const char *name, const char *type, const char *help)
{
	buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* dagrun_runs: every run the store holds, by workflow and status. */
static void runs_gauge(struct serve *s, struct buf *b)
{
	char *err = NULL;
	struct store *st = readers_get(s, &err);
	struct arena mem = ARENA_INIT;
	struct store_run_filter f = {NULL, -1, 0};
	struct store_run_info *v = NULL;
	size_t n = 0;
	json_t *by = json_object();
	if (st && st->ops->list_runs(st, &f, &mem, &v, &n, &err) == 0)
		for (size_t i = 0; i < n; i++) {
			const char *w = v[i].workflow ? v[i].workflow : "";
			json_t *o = json_object_get(by, w);
			if (!o)
				json_object_set_new(by, w, o = json_object());
			const char *sn = store_run_status_name(v[i].status);
			json_object_set_new(o, sn, json_integer(json_integer_value(
				json_object_get(o, sn)) + 1));
		}
	readers_put(s, st);
	free(err);
	arena_free(&mem);
	head(b, "dagrun_runs", "gauge", "Runs held in the state store, by workflow and status.");
	const char *w, *sn;
	json_t *o, *c;
	json_object_foreach(by, w, o) {
		for (int k = 0; k < STORE_RUN_NSTATUS; k++) {
			sn = store_run_status_name(k);
			c = json_object_get(o, sn);
			buf_adds(b, "dagrun_runs{workflow=\"");
			label(b, w);
			buf_printf(b, "\",status=\"%s\"} %lld\n", sn,
				   (long long)(c ? json_integer_value(c) : 0));
		}
	}
	json_decref(by);
}

static void per_wf(struct buf *b, const struct met_wf *w, const char *name, const char *extra)
{
	buf_printf(b, "%s{workflow=\"", name);
	label(b, w->workflow);
	buf_printf(b, "\"%s}", extra ? extra : "");
}

static void schedule_gauges(struct serve *s, struct buf *b)
{
	json_t *lag = NULL, *queued = NULL;
	sched_snapshot(s, &lag, &queued);
	const char *k;
	json_t *v;
	head(b, "dagrun_schedule_lag_seconds", "gauge",
	     "How late the last scheduled run of a workflow started after its time.");
	json_object_foreach(lag, k, v) {
		buf_adds(b, "dagrun_schedule_lag_seconds{workflow=\"");
		label(b, k);
		buf_printf(b, "\"} %.3f\n", json_number_value(v));
	}
	head(b, "dagrun_schedule_queued_runs", "gauge",
	     "Scheduled runs waiting for the previous run to end (overlap: queue).");
	json_object_foreach(queued, k, v) {
		buf_adds(b, "dagrun_schedule_queued_runs{workflow=\"");
		label(b, k);
		buf_printf(b, "\"} %lld\n", (long long)json_integer_value(v));
	}
	json_decref(lag);
	json_decref(queued);
}

char *met_render(struct serve *s, size_t *len)
{
	struct buf b = BUF_INIT;
	runs_gauge(s, &b);
	pthread_mutex_lock(&s->met.mu);
	const struct metrics *m = &s->met;
	head(&b, "dagrun_task_duration_seconds", "histogram",
	     "Duration of task attempts that ended since the server started.");
	for (size_t i = 0; i < m->n; i++) {
		const struct met_wf *w = &m->v[i];
		uint64_t cum = 0;
		for (size_t k = 0; k <= MET_BUCKETS; k++) {
			char le[48];
			cum += w->hist[k];
			if (k < MET_BUCKETS)
				snprintf(le, sizeof(le), ",le=\"%g\"", bounds[k]);
			else
				snprintf(le, sizeof(le), ",le=\"+Inf\"");
			per_wf(&b, w, "dagrun_task_duration_seconds_bucket", le);
			buf_printf(&b, " %llu\n", (unsigned long long)cum);
		}
		per_wf(&b, w, "dagrun_task_duration_seconds_sum", NULL);
		buf_printf(&b, " %.3f\n", w->sum_s);
		per_wf(&b, w, "dagrun_task_duration_seconds_count", NULL);
		buf_printf(&b, " %llu\n", (unsigned long long)w->count);
	}
	head(&b, "dagrun_attempts_total", "counter",
	     "Task attempts that ended since the server started, by error class (none: succeeded).");
	for (size_t i = 0; i < m->n; i++)
		for (int c = 0; c < 5; c++) {
			char ex[48];
			snprintf(ex, sizeof(ex), ",error_class=\"%s\"", classes[c]);
			per_wf(&b, &m->v[i], "dagrun_attempts_total", ex);
			buf_printf(&b, " %llu\n", (unsigned long long)m->v[i].attempts[c]);
		}
	head(&b, "dagrun_running_tasks", "gauge", "Tasks running now.");
	for (size_t i = 0; i < m->n; i++) {
		per_wf(&b, &m->v[i], "dagrun_running_tasks", NULL);
		buf_printf(&b, " %u\n", m->v[i].running);
	}
	head(&b, "dagrun_ready_tasks", "gauge",
	     "Tasks whose dependencies are done, waiting for a slot or a resource pool.");
	for (size_t i = 0; i < m->n; i++) {
		per_wf(&b, &m->v[i], "dagrun_ready_tasks", NULL);
		buf_printf(&b, " %u\n", m->v[i].ready);
	}
	head(&b, "dagrun_serve_requests_total", "counter", "HTTP requests answered, by status class.");
	static const char *const cls[6] = {"other", "1xx", "2xx", "3xx", "4xx", "5xx"};
	for (int i = 0; i < 6; i++)
		buf_printf(&b, "dagrun_serve_requests_total{code=\"%s\"} %llu\n", cls[i],
			   (unsigned long long)m->requests[i]);
	pthread_mutex_unlock(&s->met.mu);
	schedule_gauges(s, &b);
	pthread_mutex_lock(&s->hub.mu);
	uint32_t subs = s->hub.n_subs;
	uint64_t dropped = s->hub.dropped, published = s->hub.published;
	pthread_mutex_unlock(&s->hub.mu);
	head(&b, "dagrun_serve_sse_clients", "gauge", "Server-Sent Events streams open.");
	buf_printf(&b, "dagrun_serve_sse_clients %u\n", subs);
	head(&b, "dagrun_serve_sse_dropped_total", "counter",
	     "SSE clients dropped because they fell too far behind.");
	buf_printf(&b, "dagrun_serve_sse_dropped_total %llu\n", (unsigned long long)dropped);
	head(&b, "dagrun_serve_events_total", "counter", "Events published to SSE streams.");
	buf_printf(&b, "dagrun_serve_events_total %llu\n", (unsigned long long)published);
	head(&b, "dagrun_serve_child_runs", "gauge", "dagrun processes started by this server, running.");
	buf_printf(&b, "dagrun_serve_child_runs %u\n", runner_live(s));
	*len = b.len;
	return buf_steal(&b);
}

void api_metrics(struct serve *s, struct req *rq)
{
	size_t len = 0;
	char *text = met_render(s, &len);
	if (!text)
		return reply_error(rq, 500, "out of memory");
	reply_data(rq, 200, "text/plain; version=0.0.4; charset=utf-8", text, len);
}
