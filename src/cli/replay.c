/* replay.c: `dagrun replay RUN|FILE.json [--with WORKFLOW] [--format
 * text|json]`: the workflow evaluated again over a recorded run, with no
 * side effect, and how it would diverge.
 *
 * The recording is one document (export.c's, from the store or a file):
 * the engine runs every task on its replayer (engine/io.c), which renders
 * the task's inputs through its kind's hook, as a real attempt would, and
 * gives back the recorded result; every `when`, condition, template and
 * hook decision is the scheduler's, as in a real run. This file compares
 * what the replay did with what was recorded. Invariant: nothing here or
 * below starts a process, sends a request or writes the state directory;
 * the same document gives the same report wherever it is replayed.
 */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cli/hist.h"
#include "cli/rundoc.h"
#include "model/model.h"
#include "util/buf.h"

static const char usage[] =
	"usage: dagrun replay [OPTIONS] RUN|FILE.json\n"
	"\n"
	"Evaluates the workflow again over a recorded run (RUN: a run id, a unique\n"
	"prefix of one, or `last`; FILE.json: what `dagrun export` wrote), with no side\n"
	"effect: no process is started, no request sent, no API key needed. Each task's\n"
	"result is the recorded one; every when, condition, template and hook is\n"
	"evaluated again, from the recorded definition or from --with. Reports, per\n"
	"task, `same` or how it diverges: inputs differ (the rendered command, request\n"
	"or prompt, with a short diff), would run, would be skipped, new task, removed,\n"
	"dependencies changed.\n"
	"\n"
	"      --with FILE     evaluate this workflow file instead of the recorded one\n"
	"      --format F      text (default) or json\n"
	"      --state DIR     the state directory (default: $DAGRUN_STATE, else .dagrun)\n"
	"\n"
	"Exit status: 0 nothing diverges, 1 something does, 2 usage error, invalid\n"
	"workflow, no such run or a file that is not an export, 3 the store cannot\n"
	"be read.\n";

#define DIFF_MAX 5        /* fields shown per task */
#define VALUE_MAX 60      /* characters of a value shown */

/* What the replay did for one task of the workflow evaluated. */
struct seen {
	uint32_t attempts;
	int status;                /* final, or -1 */
	char *inputs;              /* of its first attempt, or NULL */
	char *inputs_error;
	uint32_t inputs_attempt;
};

struct replay {
	const dagrun_workflow *wf;
	struct seen *seen;         /* by task index */
};

static void observe(void *ud, const dagrun_event *ev)
{
	struct replay *rp = ud;
	if (ev->depth || ev->task_index >= rp->wf->n_tasks)
		return;
	struct seen *s = &rp->seen[ev->task_index];
	if (ev->type == DAGRUN_EV_TASK_STATUS && ev->status != DAGRUN_RUNNING &&
	    ev->status != DAGRUN_RETRYING && ev->status != DAGRUN_PENDING)
		s->status = ev->status;
	if (ev->type != DAGRUN_EV_ATTEMPT_END)
		return;
	s->attempts++;
	const dagrun_ext_io *io = (const void *)dagrun_ext_find(ev->ext, DAGRUN_EXT_IO);
	if (io && !s->inputs && !s->inputs_error) {
		s->inputs_attempt = ev->attempt;
		s->inputs = io->inputs ? strdup(io->inputs) : NULL;
		s->inputs_error = io->inputs_error ? strdup(io->inputs_error) : NULL;
	}
}

/* ---- the recording ------------------------------------------------------------- */

/* The recorded tasks by id (a JSON object; the caller's to json_decref). */
static json_t *rec_tasks(const json_t *doc)
{
	json_t *m = json_object();
	const json_t *tasks = json_object_get(doc, "tasks");
	for (size_t i = 0; m && i < json_array_size(tasks); i++) {
		json_t *t = json_array_get(tasks, i);
		const char *tid = json_string_value(json_object_get(t, "id"));
		if (tid)
			json_object_set(m, tid, t);
	}
	return m;
}

static const json_t *rec_attempt(const json_t *t, uint32_t n)
{
	const json_t *atts = json_object_get(t, "attempts");
	for (size_t i = 0; i < json_array_size(atts); i++) {
		const json_t *a = json_array_get(atts, i);
		if (json_integer_value(json_object_get(a, "attempt")) == (json_int_t)n)
			return a;
	}
	return NULL;
}

static bool ran(const json_t *t)
{
	return json_array_size(json_object_get(t, "attempts")) > 0;
}

/* ---- divergences ------------------------------------------------------------------- */

struct verdict {
	const char *kind;          /* "same", "inputs", "would-run", "would-skip",
				    * "new", "removed", "dependencies" */
	struct buf detail;         /* for people */
	json_t *diff;              /* inputs: [{field, recorded, now}] */
};

/* v for people: compact JSON, at most VALUE_MAX characters. */
static void short_value(struct buf *b, const json_t *v)
{
	if (!v) {
		buf_adds(b, "(none)");
		return;
	}
	char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_SORT_KEYS);
	if (!s)
		return;
	size_t n = strlen(s);
	if (n > VALUE_MAX) {
		buf_add(b, s, VALUE_MAX - 3);
		buf_adds(b, "...");
	} else {
		buf_add(b, s, n);
	}
	free(s);
}

/* Adds the fields where a and b differ (objects one level down: "env.X"). */
static void diff(const char *prefix, const json_t *a, const json_t *b, json_t *out, int depth)
{
	if (json_is_object(a) && json_is_object(b) && depth < 2) {
		json_t *keys = json_object();
		const char *k;
		json_t *v;
		json_object_foreach((json_t *)a, k, v)
			json_object_set(keys, k, json_true());
		json_object_foreach((json_t *)b, k, v)
			json_object_set(keys, k, json_true());
		/* in sorted order: one report whatever the documents' order */
		size_t n = json_object_size(keys), i = 0;
		const char **names = calloc(n ? n : 1, sizeof(*names));
		json_object_foreach(keys, k, v)
			if (names)
				names[i++] = k;
		for (size_t x = 1; names && x < n; x++)
			for (size_t y = x; y > 0 && strcmp(names[y - 1], names[y]) > 0; y--) {
				const char *t = names[y];
				names[y] = names[y - 1];
				names[y - 1] = t;
			}
		for (size_t x = 0; names && x < n; x++) {
			struct buf p = BUF_INIT;
			if (*prefix)
				buf_printf(&p, "%s.", prefix);
			buf_adds(&p, names[x]);
			diff(p.data ? p.data : "", json_object_get(a, names[x]),
			     json_object_get(b, names[x]), out, depth + 1);
			buf_free(&p);
		}
		free(names);
		json_decref(keys);
		return;
	}
	if (a && b && json_equal((json_t *)a, (json_t *)b))
		return;
	json_t *d = json_object();
	json_object_set_new(d, "field", json_string(prefix));
	json_object_set(d, "recorded", a ? (json_t *)a : json_null());
	json_object_set(d, "now", b ? (json_t *)b : json_null());
	json_array_append_new(out, d);
}

static void inputs_verdict(struct verdict *v, const json_t *rec, const struct seen *s)
{
	const json_t *ra = rec_attempt(rec, s->inputs_attempt ? s->inputs_attempt : 1);
	const json_t *old = ra ? json_object_get(ra, "inputs") : NULL;
	if (!old)
		return;   /* recorded before inputs were: nothing to compare */
	if (s->inputs_error) {
		v->kind = "inputs";
		buf_adds(&v->detail, "inputs differ: they no longer render: ");
		buf_adds(&v->detail, s->inputs_error);
		return;
	}
	json_t *now = s->inputs ? json_loads(s->inputs, 0, NULL) : NULL;
	json_t *d = json_array();
	diff("", old, now, d, 0);
	json_decref(now);
	if (!json_array_size(d)) {
		json_decref(d);
		return;
	}
	v->kind = "inputs";
	v->diff = d;
	buf_adds(&v->detail, "inputs differ:");
	for (size_t i = 0; i < json_array_size(d) && i < DIFF_MAX; i++) {
		const json_t *x = json_array_get(d, i);
		buf_printf(&v->detail, "%s %s: ", i ? ";" : "",
			   json_string_value(json_object_get(x, "field")));
		short_value(&v->detail, json_object_get(x, "recorded"));
		buf_adds(&v->detail, " -> ");
		short_value(&v->detail, json_object_get(x, "now"));
	}
	if (json_array_size(d) > DIFF_MAX)
		buf_printf(&v->detail, "; and %zu more", json_array_size(d) - DIFF_MAX);
}

/* The dependencies of task t of wf, as a sorted JSON array of ids. */
static json_t *deps_now(const dagrun_workflow *wf, uint32_t t)
{
	json_t *a = json_array();
	const struct dr_task *k = &wf->tasks[t];
	for (uint32_t i = 0; i < k->dep_count; i++)
		json_array_append_new(a, json_string(wf_task_id(wf, wf->deps[k->dep_first + i].target)));
	return a;
}

static int cmp_str(const void *x, const void *y)
{
	return strcmp(json_string_value(*(json_t *const *)x), json_string_value(*(json_t *const *)y));
}

static json_t *sorted(const json_t *arr)
{
	size_t n = json_array_size(arr);
	json_t **v = calloc(n ? n : 1, sizeof(*v)), *out = json_array();
	for (size_t i = 0; v && i < n; i++)
		v[i] = json_array_get(arr, i);
	if (v)
		qsort(v, n, sizeof(*v), cmp_str);
	for (size_t i = 0; v && i < n; i++)
		json_array_append(out, v[i]);
	free(v);
	return out;
}

static void judge(struct verdict *v, const dagrun_workflow *wf, uint32_t t, const json_t *rec,
		  const struct seen *s)
{
	v->kind = "same";
	bool now_ran = s->attempts > 0;
	if (!rec) {
		v->kind = "new";
		buf_adds(&v->detail, now_ran || s->status != DAGRUN_SKIPPED ?
			 "new task (no recording): would run" : "new task: would be skipped");
		return;
	}
	const json_t *old_deps = json_object_get(rec, "dependencies");
	if (json_is_array(old_deps)) {
		json_t *a = sorted(old_deps), *b = deps_now(wf, t), *bs = sorted(b);
		if (!json_equal(a, bs)) {
			v->kind = "dependencies";
			buf_adds(&v->detail, "dependencies changed: ");
			short_value(&v->detail, a);
			buf_adds(&v->detail, " -> ");
			short_value(&v->detail, bs);
		}
		json_decref(a);
		json_decref(b);
		json_decref(bs);
		if (strcmp(v->kind, "same"))
			return;
	}
	bool was_ran = ran(rec);
	if (was_ran && !now_ran) {
		v->kind = "would-skip";
		buf_printf(&v->detail, "would be skipped (recorded: ran; now %s)",
			   s->status == DAGRUN_SKIPPED ? "a when or condition decides otherwise" :
			   "a dependency ends otherwise");
		return;
	}
	if (!was_ran && now_ran) {
		v->kind = "would-run";
		buf_adds(&v->detail, "would run (recorded: not run; no recorded result)");
		return;
	}
	if (now_ran)
		inputs_verdict(v, rec, s);
}

/* ---- output ------------------------------------------------------------------------ */

#define ID_WIDTH_MAX 40   /* ids longer than this are not padded to */

static void print_text(FILE *f, const char *id, size_t width, const struct verdict *v)
{
	struct buf b = BUF_INIT;
	hist_esc(&b, id);
	while (b.len < width)
		buf_addc(&b, ' ');
	buf_adds(&b, "  ");
	if (!strcmp(v->kind, "same"))
		buf_adds(&b, "same");
	else
		hist_esc(&b, v->detail.data ? v->detail.data : v->kind);
	fprintf(f, "%s\n", b.data ? b.data : "");
	buf_free(&b);
}

static json_t *verdict_json(const char *id, const struct verdict *v)
{
	json_t *o = json_object();
	json_object_set_new(o, "id", hist_json_str(id));
	json_object_set_new(o, "verdict", json_string(v->kind));
	if (v->detail.len)
		json_object_set_new(o, "detail", hist_json_str(v->detail.data));
	if (v->diff)
		json_object_set(o, "diff", v->diff);
	return o;
}

/* ---- the command ----------------------------------------------------------------------- */

struct replay_args {
	const char *state, *ref, *with;
	bool json;
};

static int parse_args(int argc, char **argv, struct replay_args *a)
{
	static const struct option opts[] = {
		{"help", no_argument, NULL, 'h'},
		{"with", required_argument, NULL, 'w'},
		{"format", required_argument, NULL, 'f'},
		{"state", required_argument, NULL, 'S'},
		{0, 0, 0, 0},
	};
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'h': fputs(usage, stdout); return 1;
		case 'w': a->with = optarg; break;
		case 'S': a->state = optarg; break;
		case 'f':
			if (!strcmp(optarg, "json") || !strcmp(optarg, "text")) {
				a->json = !strcmp(optarg, "json");
				break;
			}
			fprintf(stderr, "dagrun replay: --format takes text or json\n");
			return -1;
		default: fputs(usage, stderr); return -1;
		}
	}
	if (optind != argc - 1) {
		fputs(usage, stderr);
		return -1;
	}
	a->ref = argv[optind];
	return 0;
}

/* The recording: a file's document, or the run's from the store. */
static int recording(const struct replay_args *a, json_t **doc)
{
	size_t n = strlen(a->ref);
	if (n > 5 && !strcmp(a->ref + n - 5, ".json") && cli_names_file(a->ref)) {
		json_error_t je;
		*doc = json_load_file(a->ref, 0, &je);
		if (!*doc || !json_is_object(json_object_get(*doc, "run")) ||
		    !json_is_array(json_object_get(*doc, "tasks"))) {
			fprintf(stderr, "dagrun replay: %s: not a run exported by `dagrun export`%s%s\n",
				a->ref, *doc ? "" : ": ", *doc ? "" : je.text);
			json_decref(*doc);
			*doc = NULL;
			return EXIT_USAGE;
		}
		return EXIT_OK;
	}
	return cli_export_doc("replay", a->state, a->ref, doc);
}

/* Secrets are recorded masked: in a replay each secret the workflow reads
 * is its mask, so a template holding one renders as it was recorded. */
static void mask_secrets(const char *data, size_t len)
{
	char *text = data ? strndup(data, len) : NULL;   /* NUL-terminated */
	for (const char *p = text; p && (p = strstr(p, "secrets")); p += 7) {
		const char *q = p + 7;
		if (*q == '.')
			q++;
		else if (!strncmp(q, "[\"", 2) || !strncmp(q, "['", 2))
			q += 2;
		else
			continue;
		size_t n = 0;
		while (isalnum((unsigned char)q[n]) || q[n] == '_')
			n++;
		if (!n || n > 200)
			continue;
		char name[201];
		memcpy(name, q, n);
		name[n] = '\0';
		setenv(name, "***", 0);
	}
	free(text);
}

/* The recorded variables as --var overrides ("NAME=VALUE", malloc'd,
 * NULL-terminated) for the names wf declares whose recorded value is a
 * string (--var sets strings; any other value is the declared default):
 * the run's values, overrides included, are the replay's. NULL on OOM. */
static char **recorded_vars(const json_t *doc, const dagrun_workflow *wf)
{
	const json_t *vars = json_object_get(doc, "variables");
	const struct dr_value *decl = wf->variables;
	uint32_t n = decl && decl->kind == DR_VAL_MAP ? decl->count : 0;
	char **v = calloc(n + 1, sizeof(*v));
	size_t k = 0;
	for (uint32_t i = 0; v && i < n; i++) {
		char name[256];
		const struct dr_text *key = &decl->keys[i];
		if (!key->s || key->len >= sizeof(name))
			continue;
		memcpy(name, key->s, key->len);
		name[key->len] = '\0';
		const char *val = json_string_value(json_object_get(vars, name));
		if (val && asprintf(&v[k], "%s=%s", name, val) >= 0)
			k++;
	}
	return v;
}

int cli_replay(int argc, char **argv)
{
	struct replay_args a = {0};
	int r = parse_args(argc, argv, &a);
	if (r)
		return r > 0 ? EXIT_OK : EXIT_USAGE;
	json_t *doc = NULL;
	int status = recording(&a, &doc);
	if (status != EXIT_OK)
		return status;
	const char *def = json_string_value(json_object_get(doc, "definition"));
	const char *path = json_string_value(json_object_get(json_object_get(doc, "run"), "path"));
	dagrun_workflow *wf = NULL;
	char *text = NULL;
	struct replay rp = {0};
	dagrun_engine *e = NULL;
	char **vars = NULL, *tbody = NULL;
	status = EXIT_USAGE;
	if (a.with) {
		size_t len = 0;
		wf = cli_load_snapshot(a.with, 0, &status, &text, &len);
		mask_secrets(text, len);
	} else if (def) {
		wf = cli_load_buffer(path ? path : "workflow.yaml", def, strlen(def), 0, &status);
		mask_secrets(def, strlen(def));
	} else {
		fprintf(stderr, "dagrun replay: the run recorded no definition: give --with FILE\n");
	}
	if (!wf)
		goto out;
	status = EXIT_INTERNAL;
	char *rec = json_dumps(doc, JSON_COMPACT);
	dagrun_diags *diags = dagrun_diags_new(100);
	vars = recorded_vars(doc, wf);
	/* The run's trigger.body, so that its inputs render as they did. */
	const json_t *tb = json_object_get(json_object_get(doc, "trigger"), "body");
	tbody = tb && !json_is_null(tb) ? json_dumps(tb, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
	dagrun_run_opts o = {.replay = rec, .replay_len = rec ? strlen(rec) : 0, .max_parallel = 64,
			     .vars = (const char *const *)vars, .trigger_json = tbody};
	rp.wf = wf;
	rp.seen = calloc(wf->n_tasks ? wf->n_tasks : 1, sizeof(*rp.seen));
	if (!rec || !diags || !rp.seen || !vars) {
		fprintf(stderr, "dagrun replay: out of memory\n");
		free(rec);
		dagrun_diags_free(diags);
		goto out;
	}
	for (uint32_t t = 0; t < wf->n_tasks; t++)
		rp.seen[t].status = -1;
	r = dagrun_engine_new(&e, wf, &o, diags);
	if (r < 0) {
		dagrun_diags_print(diags, stderr, 0);
		fprintf(stderr, "dagrun replay: %s\n", strerror(-r));
		status = r == -EINVAL ? EXIT_USAGE : EXIT_INTERNAL;
		free(rec);
		dagrun_diags_free(diags);
		goto out;
	}
	dagrun_diags_free(diags);
	dagrun_engine_observe(e, observe, &rp);
	r = dagrun_engine_run(e);
	free(rec);
	if (r < 0) {
		const char *m = dagrun_engine_error(e);
		fprintf(stderr, "dagrun replay: %s\n", m ? m : strerror(-r));
		goto out;
	}
	/* the report: the workflow's tasks, then those only recorded */
	size_t same = 0, diverged = 0, width = 0;
	json_t *list = json_array(), *by_id = rec_tasks(doc), *now_ids = json_object();
	const char *wid;
	json_t *wv;
	for (uint32_t t = 0; t < wf->n_tasks; t++)
		if (strlen(wf_task_id(wf, t)) > width)
			width = strlen(wf_task_id(wf, t));
	json_object_foreach(by_id, wid, wv)
		if (strlen(wid) > width)
			width = strlen(wid);
	if (width > ID_WIDTH_MAX)
		width = ID_WIDTH_MAX;
	for (uint32_t t = 0; t < wf->n_tasks; t++) {
		const char *id = wf_task_id(wf, t);
		struct verdict v = {.detail = BUF_INIT};
		judge(&v, wf, t, json_object_get(by_id, id), &rp.seen[t]);
		json_object_set_new(now_ids, id, json_true());
		if (!strcmp(v.kind, "same"))
			same++;
		else
			diverged++;
		if (a.json)
			json_array_append_new(list, verdict_json(id, &v));
		else
			print_text(stdout, id, width, &v);
		buf_free(&v.detail);
		json_decref(v.diff);
	}
	const json_t *tasks = json_object_get(doc, "tasks");
	for (size_t i = 0; i < json_array_size(tasks); i++) {
		const char *id = json_string_value(json_object_get(json_array_get(tasks, i), "id"));
		if (!id || json_object_get(now_ids, id))
			continue;
		struct verdict v = {.kind = "removed", .detail = BUF_INIT};
		buf_adds(&v.detail, "removed (recorded, not in the workflow)");
		diverged++;
		if (a.json)
			json_array_append_new(list, verdict_json(id, &v));
		else
			print_text(stdout, id, width, &v);
		buf_free(&v.detail);
	}
	if (a.json) {
		json_t *out = json_object();
		json_object_set_new(out, "run", hist_json_str(json_string_value(
			json_object_get(json_object_get(doc, "run"), "id"))));
		json_object_set_new(out, "same", json_integer((json_int_t)same));
		json_object_set_new(out, "diverged", json_integer((json_int_t)diverged));
		json_object_set_new(out, "tasks", list);
		list = NULL;
		hist_json_print(out, stdout);
	} else {
		printf("replay: %zu same, %zu diverge%s\n", same, diverged, diverged == 1 ? "s" : "");
	}
	json_decref(list);
	json_decref(by_id);
	json_decref(now_ids);
	status = diverged ? EXIT_TASK_FAILED : EXIT_OK;
out:
	dagrun_engine_free(e);
	for (uint32_t t = 0; rp.seen && t < wf->n_tasks; t++) {
		free(rp.seen[t].inputs);
		free(rp.seen[t].inputs_error);
	}
	free(rp.seen);
	for (size_t i = 0; vars && vars[i]; i++)
		free(vars[i]);
	free(vars);
	free(tbody);
	dagrun_workflow_free(wf);
	free(text);
	json_decref(doc);
	return status;
}
