/* api_wf.c: the workflows of DIR: list, one, its graph, starting a run.
 *
 * What a workflow shows is its file's own text (names, descriptions,
 * declared variables and their defaults) and validation results: never a
 * secret, which a workflow names (`{{ secrets.X }}`) but never holds.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "model/model.h"
#include "report/report.h"
#include "serve/serve_int.h"

static json_t *time_json(uint64_t ms)
{
	return json_pack("{s:o, s:I}", "at", serve_json_time(ms), "ms", (json_int_t)ms);
}

/* The schedule and its next five times, or null. */
static json_t *schedule_json(struct serve *s, const struct wfent *e)
{
	const struct dr_schedule *sv = e->wf ? e->wf->schedule : NULL;
	if (!sv || !sv->cron.s)
		return json_null();
	static const char *const ov[] = {"skip", "queue", "allow"};
	uint64_t next[5];
	size_t n = e->cron ? sched_next_times(e, sched_now_ms(s), next, 5) : 0;
	json_t *times = json_array();
	for (size_t i = 0; times && i < n; i++)
		json_array_append_new(times, time_json(next[i]));
	return json_pack("{s:o, s:o, s:s, s:b, s:o}", "cron", jstr(sv->cron.s), "timezone",
			 sv->timezone.s ? jstr(sv->timezone.s) : json_string("local"), "overlap",
			 ov[sv->overlap], "catchup", sv->catchup, "next", times);
}

/* The newest runs of a workflow: the last one, and the durations of up to
 * 20 for the sparkline. */
static void add_recent(struct store *st, json_t *o, const char *name)
{
	struct arena mem = ARENA_INIT;
	struct store_run_filter f = {name, -1, 20};
	struct store_run_info *v = NULL;
	size_t n = 0;
	char *err = NULL;
	json_t *recent = json_array();
	if (st && st->ops->list_runs(st, &f, &mem, &v, &n, &err) == 0) {
		for (size_t i = 0; i < n; i++) {
			serve_run_settle(&v[i]);
			json_array_append_new(recent, json_pack("{s:o, s:s, s:o}", "id",
				jstr(v[i].run_id), "status", store_run_status_name(v[i].status),
				"durationMs", v[i].end_ms ? json_integer((json_int_t)(v[i].end_ms -
					v[i].start_ms)) : json_null()));
		}
		json_object_set_new(o, "lastRun", n ? serve_json_run(&v[0]) : json_null());
	} else {
		json_object_set_new(o, "lastRun", json_null());
	}
	json_object_set_new(o, "recent", recent);
	free(err);
	arena_free(&mem);
}

static json_t *summary(struct serve *s, struct store *st, const struct wfent *e)
{
	json_t *o = json_pack("{s:o, s:o, s:b, s:i}", "name", jstr(e->name), "file",
			      jstr(e->file), "valid", e->wf && !e->dup, "errors",
			      (int)json_array_size(e->errors));
	if (!o)
		return NULL;
	if (e->wf) {
		json_object_set_new(o, "description", jstr(e->wf->description.s));
		json_object_set_new(o, "tasks", json_integer(e->wf->n_tasks));
	}
	json_object_set_new(o, "schedule", schedule_json(s, e));
	/* Where its webhook is (hooks.c), or null: never its secret. */
	json_object_set_new(o, "hook", e->wf && e->wf->trigger ?
			    json_pack("{s:s+, s:o}", "path", "/hooks/", e->name, "secret",
				      jstr(e->wf->trigger->secret_name.s)) : json_null());
	add_recent(st, o, e->name);
	return o;
}

void api_workflows(struct serve *s, struct req *rq)
{
	size_t n = 0;
	struct wfent **v = catalog_all(s, &n);
	if (!v)
		return reply_error(rq, 500, "out of memory");
	char *err = NULL;
	struct store *st = readers_get(s, &err);
	json_t *a = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(a, summary(s, st, v[i]));
	readers_put(s, st);
	free(err);
	catalog_put_all(s, v, n);
	reply_json(rq, 200, json_pack("{s:o}", "workflows", a));
}

static json_t *variables_json(const struct dagrun_workflow *wf)
{
	json_t *o = json_object();
	const struct dr_value *v = wf->variables;
	for (uint32_t i = 0; v && v->kind == DR_VAL_MAP && i < v->count; i++) {
		const struct dr_value *x = &v->items[i];
		json_t *val = x->kind == DR_VAL_STRING || x->kind == DR_VAL_INT ||
			      x->kind == DR_VAL_REAL || x->kind == DR_VAL_BOOL
			      ? jstr(x->text.s) : json_null();
		json_object_set_new(o, v->keys[i].s, val);
	}
	return o;
}

void api_workflow(struct serve *s, struct req *rq, const char *name)
{
	struct wfent *e = catalog_get(s, name);
	if (!e)
		return reply_error(rq, 404, "no workflow named '%s' in the server's folder", name);
	char *err = NULL;
	struct store *st = readers_get(s, &err);
	json_t *o = summary(s, st, e);
	readers_put(s, st);
	free(err);
	json_object_set(o, "errors", e->errors ? e->errors : json_array());
	if (e->dup)
		json_array_append_new(json_object_get(o, "errors"),
			json_pack("{s:i, s:i, s:s, s:s}", "line", 0, "column", 0, "severity", "error",
				  "message", "another file of the folder declares the same name"));
	if (e->wf) {
		json_object_set_new(o, "variables", variables_json(e->wf));
		json_t *ids = json_array();
		for (uint32_t i = 0; i < e->wf->n_tasks; i++)
			json_array_append_new(ids, jstr(wf_task_id(e->wf, i)));
		json_object_set_new(o, "taskIds", ids);
	}
	catalog_put(s, e);
	reply_json(rq, 200, o);
}

void api_workflow_graph(struct serve *s, struct req *rq, const char *name)
{
	struct wfent *e = catalog_get(s, name);
	if (!e)
		return reply_error(rq, 404, "no workflow named '%s'", name);
	if (!e->wf) {
		catalog_put(s, e);
		return reply_error(rq, 422, "workflow '%s' is invalid: see its errors", name);
	}
	char *svg = NULL, *err = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&svg, &len);
	int r = f ? report_graph_svg_workflow(e->wf, f, &err) : -ENOMEM;
	if (f && fclose(f) != 0 && r == 0)
		r = -ENOMEM;
	catalog_put(s, e);
	if (r < 0) {
		free(svg);
		reply_error(rq, r == -E2BIG ? 413 : 500, "%s", err ? err : strerror(-r));
		free(err);
		return;
	}
	reply_data(rq, 200, "image/svg+xml", svg, len);
}

void api_start(struct serve *s, struct req *rq, const char *name)
{
	json_t *body = req_json(rq);
	if (!body)
		return;
	const char *k;
	json_t *v;
	json_object_foreach(body, k, v) {
		if (strcmp(k, "variables")) {
			/* k lives in body: the reply is made before body goes */
			reply_error(rq, 400, "unknown field '%s' (a run takes \"variables\")", k);
			json_decref(body);
			return;
		}
	}
	struct wfent *e = catalog_get(s, name);
	if (!e) {
		json_decref(body);
		return reply_error(rq, 404, "no workflow named '%s' in the server's folder", name);
	}
	if (!e->wf || e->dup) {
		json_t *o = json_pack("{s:s, s:O}", "error", e->dup ? "two files declare this name" :
				      "the workflow is invalid", "errors", e->errors);
		catalog_put(s, e);
		json_decref(body);
		return reply_json(rq, 422, o);
	}
	struct start_req sr = {.kind = CHILD_RUN, .file = e->path, .workflow = e->name,
			       .vars = json_object_get(body, "variables")};
	unsigned status = 500;
	json_t *o = runner_start_and_wait(s, &sr, &status);
	catalog_put(s, e);
	json_decref(body);
	reply_json(rq, status, o);
}
