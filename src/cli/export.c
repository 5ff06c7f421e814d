/* export.c: `dagrun export RUN [-o FILE]`: a recorded run as one JSON
 * document (docs/export.md): the definition it ran, its variables, and
 * every task with its dependencies and attempts (outcome, the canonical
 * inputs, the results replay needs, the start of stdout and stderr).
 *
 * Invariant: everything in the document comes from the state store, which
 * holds only masked text (the engine masks before recording): the export
 * adds no secret, and `dagrun replay FILE` needs nothing else.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cli/hist.h"
#include "cli/rundoc.h"
#include "exec/executor.h"
#include "model/model.h"

static const char usage[] =
	"usage: dagrun export [OPTIONS] RUN\n"
	"\n"
	"Writes a recorded run as one JSON document (docs/export.md): its definition,\n"
	"variables, and every task's attempts with their rendered inputs and results\n"
	"(secrets masked as recorded). `dagrun replay FILE` replays it anywhere.\n"
	"RUN is a run id, a unique prefix of one, or `last`.\n"
	"\n"
	"  -o, --output FILE   where to write it (default: standard output); replaced\n"
	"                      whole, never left half written\n"
	"      --state DIR     the state directory (default: $DAGRUN_STATE, else .dagrun)\n"
	"\n"
	"Exit status: 0 written, 2 usage error or no such run, 3 the store cannot be\n"
	"read or the file written.\n";

/* The first cap bytes of the file at path (NULL: none) as a JSON string
 * into o[key], and o[key "Truncated"] when there was more. */
static int put_log(json_t *o, const char *key, const char *path, size_t cap)
{
	if (!path)
		return 0;
	FILE *f = fopen(path, "rb");
	if (!f)
		return 0;   /* pruned meanwhile: the attempt's counts say it had some */
	char *data = malloc(cap + 1);
	size_t n = data ? fread(data, 1, cap + 1, f) : 0;
	fclose(f);
	if (!data)
		return -ENOMEM;
	bool more = n > cap;
	if (more)
		n = cap;
	data[n] = '\0';
	int r = 0;
	/* hist_json_str makes valid UTF-8 of it; the bytes stay the log's */
	json_t *s = json_stringn(data, n);
	if (!s)
		s = hist_json_str(data);
	if (!s || json_object_set_new(o, key, s) < 0)
		r = -ENOMEM;
	char tk[32];
	snprintf(tk, sizeof(tk), "%sTruncated", key);
	if (r == 0 && more && json_object_set_new(o, tk, json_true()) < 0)
		r = -ENOMEM;
	free(data);
	return r;
}

/* A JSON text as recorded (an object), or its string when it does not
 * parse (it always does: the engine wrote it). */
static json_t *recorded_json(const char *text)
{
	json_t *j = json_loads(text, JSON_DECODE_ANY, NULL);
	return j ? j : hist_json_str(text);
}

static json_t *attempt_json(struct store *s, const struct store_attempt_info *a,
			    struct arena *mem)
{
	json_t *o = json_object();
	if (!o)
		return NULL;
	bool ok = a->flags & STORE_ATTEMPT_OK;
	int e = 0;
	e |= json_object_set_new(o, "attempt", json_integer(a->attempt));
	e |= json_object_set_new(o, "ok", json_boolean(ok));
	if (a->ended && a->exit_code >= 0)
		e |= json_object_set_new(o, "exitCode", json_integer(a->exit_code));
	if (a->signal)
		e |= json_object_set_new(o, "signal", json_integer(a->signal));
	if (a->flags & STORE_ATTEMPT_TIMED_OUT)
		e |= json_object_set_new(o, "timedOut", json_true());
	if (a->flags & (STORE_ATTEMPT_CANCELLED | STORE_ATTEMPT_INTERRUPTED))
		e |= json_object_set_new(o, "cancelled", json_true());
	if (!ok && a->error_class)
		e |= json_object_set_new(o, "errorClass",
					 json_string(dr_class_name((enum dr_error_class)a->error_class)));
	if (a->error)
		e |= json_object_set_new(o, "error", hist_json_str(a->error));
	e |= json_object_set_new(o, "startMs", json_integer((json_int_t)a->start_ms));
	e |= json_object_set_new(o, "durationMs", json_integer((json_int_t)a->duration_ms));
	if (a->http_status)
		e |= json_object_set_new(o, "httpStatus", json_integer(a->http_status));
	if (a->model)
		e |= json_object_set_new(o, "model", hist_json_str(a->model));
	if (a->prompt_tokens >= 0)
		e |= json_object_set_new(o, "promptTokens", json_integer(a->prompt_tokens));
	if (a->completion_tokens >= 0)
		e |= json_object_set_new(o, "completionTokens", json_integer(a->completion_tokens));
	if (a->inputs_json)
		e |= json_object_set_new(o, "inputs", recorded_json(a->inputs_json));
	if (a->io_results_json)
		e |= json_object_set_new(o, "results", recorded_json(a->io_results_json));
	struct store_log_files lf;
	char *err = NULL;
	if (!e && s->ops->log_files(s, a->run, a->stored_task, a->attempt, mem, &lf, &err) == 0)
		e |= put_log(o, "stdout", lf.path[STORE_STDOUT], EXEC_OUTPUT_CAP) |
		     put_log(o, "stderr", lf.path[STORE_STDERR], EXEC_OUTPUT_CAP);
	free(err);
	if (e) {
		json_decref(o);
		return NULL;
	}
	return o;
}

/* Each task's dependencies (ids), from the recorded definition; NULL when
 * it does not load (said on stderr). */
static dagrun_workflow *load_def(const struct store_definition *d)
{
	if (!d->definition)
		return NULL;
	int st = 0;
	return cli_load_buffer(d->path ? d->path : "workflow.yaml", d->definition,
			       d->definition_len, 0, &st);
}

static json_t *deps_json(const dagrun_workflow *wf, uint32_t index, const char *id)
{
	if (!wf)
		return NULL;
	/* the store's index order is the definition's: a scan only if not */
	bool at = index < wf->n_tasks && !strcmp(wf_task_id(wf, index), id);
	for (uint32_t t = at ? index : 0; t < wf->n_tasks; t++) {
		if (strcmp(wf_task_id(wf, t), id))
			continue;
		json_t *a = json_array();
		const struct dr_task *k = &wf->tasks[t];
		for (uint32_t i = 0; a && i < k->dep_count; i++)
			json_array_append_new(a, json_string(wf_task_id(wf,
						wf->deps[k->dep_first + i].target)));
		return a;
	}
	return NULL;
}

int cli_export_doc(const char *cmd, const char *state, const char *ref, json_t **doc)
{
	const char *dir = cli_state_dir(state);
	struct store *s = NULL;
	struct arena mem = ARENA_INIT;
	struct store_run_info ri;
	struct store_definition def;
	struct store_task_info *tasks = NULL;
	struct store_attempt_info *atts = NULL;
	size_t n_tasks = 0, n_atts = 0;
	dagrun_workflow *wf = NULL;
	char *err = NULL;
	json_t *o = NULL, *arr = NULL;
	*doc = NULL;
	int r = hist_open(cmd, dir, false, &s);
	if (r == -ENOENT) {
		hist_none(cmd, dir);
		return EXIT_USAGE;
	}
	if (r < 0)
		return EXIT_INTERNAL;
	int status = hist_find(cmd, s, ref, &mem, &ri);
	if (status != EXIT_OK)
		goto out;
	status = EXIT_INTERNAL;
	if ((r = s->ops->definition(s, ri.key, &mem, &def, &err)) < 0 ||
	    (r = s->ops->tasks(s, ri.key, &mem, &tasks, &n_tasks, &err)) < 0 ||
	    (r = s->ops->attempts(s, ri.key, STORE_ALL_TASKS, &mem, &atts, &n_atts, &err)) < 0) {
		hist_say(cmd, err ? err : strerror(-r));
		goto out;
	}
	wf = load_def(&def);
	o = json_object();
	arr = json_array();
	json_t *run = json_object();
	if (!o || !arr || !run) {
		json_decref(run);
		goto oom;
	}
	json_object_set_new(o, "dagrunExport", json_integer(1));
	json_object_set_new(run, "id", hist_json_str(ri.run_id));
	json_object_set_new(run, "attempt", json_integer(ri.run_attempt));
	json_object_set_new(run, "workflow", hist_json_str(ri.workflow));
	json_object_set_new(run, "path", hist_json_str(ri.path));
	json_object_set_new(run, "status", json_string(store_run_status_name(ri.status)));
	json_object_set_new(run, "startMs", json_integer((json_int_t)ri.start_ms));
	json_object_set_new(run, "endMs", json_integer((json_int_t)ri.end_ms));
	json_object_set_new(o, "run", run);
	json_t *dj = def.definition ? json_stringn(def.definition, def.definition_len) : json_null();
	json_object_set_new(o, "definition", dj ? dj : hist_json_str(def.definition));
	json_object_set_new(o, "variables", def.vars_json ? recorded_json(def.vars_json)
							    : json_object());
	/* trigger.body as the run saw it (null: not started by a webhook). */
	json_t *tb = def.trigger_json ? json_loads(def.trigger_json, JSON_DECODE_ANY, NULL) : NULL;
	json_object_set_new(o, "trigger", json_pack("{s:o}", "body", tb ? tb : json_null()));
	size_t k = 0;
	for (size_t i = 0; i < n_tasks; i++) {
		const struct store_task_info *t = &tasks[i];
		json_t *tj = json_object(), *aj = json_array(), *deps = deps_json(wf, t->index, t->id);
		if (!tj || !aj) {
			json_decref(tj);
			json_decref(aj);
			json_decref(deps);
			goto oom;
		}
		json_object_set_new(tj, "id", hist_json_str(t->id));
		json_object_set_new(tj, "status", json_string(store_task_status_name(t->status)));
		if (t->error)
			json_object_set_new(tj, "error", hist_json_str(t->error));
		if (deps)
			json_object_set_new(tj, "dependencies", deps);
		for (; k < n_atts && atts[k].task < t->index; k++)
			;
		for (; k < n_atts && atts[k].task == t->index; k++) {
			json_t *a = attempt_json(s, &atts[k], &mem);
			if (!a || json_array_append_new(aj, a) < 0) {
				json_decref(tj);
				json_decref(aj);
				goto oom;
			}
		}
		json_object_set_new(tj, "attempts", aj);
		if (json_array_append_new(arr, tj) < 0)
			goto oom;
	}
	json_object_set_new(o, "tasks", arr);
	arr = NULL;
	*doc = o;
	o = NULL;
	status = EXIT_OK;
	goto out;
oom:
	hist_say(cmd, "out of memory");
out:
	json_decref(o);
	json_decref(arr);
	dagrun_workflow_free(wf);
	free(err);
	arena_free(&mem);
	store_close(s);
	return status;
}

int cli_export(int argc, char **argv)
{
	const char *state, *path, *ref;
	int status = cli_run_out_args("export", usage, argc, argv, &state, &path, &ref);
	if (status >= 0)
		return status;
	json_t *doc = NULL;
	status = cli_export_doc("export", state, ref, &doc);
	if (status != EXIT_OK)
		return status;
	struct cli_out out;
	if (cli_out_open("export", path, &out) < 0) {
		json_decref(doc);
		return EXIT_INTERNAL;
	}
	bool ok = json_dumpf(doc, out.f, JSON_INDENT(1) | JSON_PRESERVE_ORDER) == 0 &&
		  fputc('\n', out.f) != EOF;
	json_decref(doc);
	return cli_out_close("export", &out, ok) == 0 && ok ? EXIT_OK : EXIT_INTERNAL;
}
