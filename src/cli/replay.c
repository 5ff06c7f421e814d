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
 *
 * With --live TASK, and only then, the tasks named run for real (engine/
 * live.c): the replay is then a run recorded in the state directory, marked
 * as a replay of the recorded one, with the real secrets for the live
 * tasks; the invariant above holds for every other task.
 */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cli/hist.h"
#include "cli/rundoc.h"
#include "model/model.h"
#include "util/buf.h"
#include "util/suggest.h"

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
	"      --live TASK     run TASK for real (repeatable, or TASK,TASK): its\n"
	"                      processes and requests happen, every other task is\n"
	"                      replayed and its templates see the live results; the\n"
	"                      live run is recorded in the state directory as a\n"
	"                      replay of RUN (`dagrun runs`, `dagrun show`)\n"
	"      --secrets-file F  KEY=VALUE lines read as secrets.KEY, for live tasks\n"
	"      --format F      text (default) or json\n"
	"      --state DIR     the state directory (default: $DAGRUN_STATE, else .dagrun)\n"
	"\n"
	"Exit status: 0 nothing diverges (and every live task completed), 1 something\n"
	"diverges or a live task did not complete, 2 usage error, invalid workflow,\n"
	"unknown live task, no such run or a file that is not an export, 3 the store\n"
	"cannot be read or written, 128+N the live run was stopped by signal N.\n";

#define DIFF_MAX 5        /* fields shown per task */
#define VALUE_MAX 60      /* characters of a value shown */
#define LIVE_OUT_MAX 65536 /* bytes of a live task's output in the report */

/* What the replay did for one task of the workflow evaluated. */
struct seen {
	uint32_t attempts;
	int status;                /* final, or -1 */
	char *inputs;              /* of its first attempt, or NULL */
	char *inputs_error;
	uint32_t inputs_attempt;
	bool live;                 /* ran for real (--live) */
	struct buf out;            /* live: its last attempt's output (masked) */
	bool out_cut;              /* more than LIVE_OUT_MAX */
	char *error;               /* live: why it did not complete, or NULL */
};

struct replay {
	const dagrun_workflow *wf;
	struct seen *seen;         /* by task index */
	char *run_id;              /* live: the run recorded */
};

static void keep_output(struct seen *s, const char *p, size_t n)
{
	if (s->out.len + n > LIVE_OUT_MAX) {
		n = LIVE_OUT_MAX - s->out.len;
		s->out_cut = true;
	}
	buf_add(&s->out, p, n);
}

/* A live task's attempt: its output (stdout as it came, else the reply the
 * recorder kept) and why it failed. */
static void observe_live(struct seen *s, const dagrun_event *ev, const dagrun_ext_io *io)
{
	if (ev->type == DAGRUN_EV_ATTEMPT_START) {
		buf_reset(&s->out);
		s->out_cut = false;
	} else if (ev->type == DAGRUN_EV_OUTPUT && ev->stream == 1) {
		keep_output(s, ev->data, ev->len);
	} else if (ev->type == DAGRUN_EV_ATTEMPT_END && !s->out.len && io && io->results) {
		json_t *r = json_loads(io->results, 0, NULL);
		const json_t *o = json_object_get(r, "output");
		if (json_is_string(o))
			keep_output(s, json_string_value(o), json_string_length(o));
		json_decref(r);
	} else if (ev->type == DAGRUN_EV_TASK_STATUS && ev->error) {
		free(s->error);
		s->error = strdup(ev->error);
	}
}

static void observe(void *ud, const dagrun_event *ev)
{
	struct replay *rp = ud;
	if (!rp->run_id && ev->run_id)
		rp->run_id = strdup(ev->run_id);
	if (ev->depth || ev->task_index >= rp->wf->n_tasks)
		return;
	struct seen *s = &rp->seen[ev->task_index];
	const dagrun_ext_io *io = (const void *)dagrun_ext_find(ev->ext, DAGRUN_EXT_IO);
	if (s->live)
		observe_live(s, ev, io);
	if (ev->type == DAGRUN_EV_TASK_STATUS && ev->status != DAGRUN_RUNNING &&
	    ev->status != DAGRUN_RETRYING && ev->status != DAGRUN_PENDING)
		s->status = ev->status;
	if (ev->type != DAGRUN_EV_ATTEMPT_END)
		return;
	s->attempts++;
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

/* A live task: its new status (and error), then, for information, how its
 * inputs differ from the recording's (that is what was tried). */
static void live_verdict(struct verdict *v, const json_t *rec, const struct seen *s)
{
	v->kind = "live";
	buf_printf(&v->detail, "live: %s", s->status >= 0 ? dagrun_status_name(s->status)
							: "did not run");
	if (s->status != DAGRUN_COMPLETED && s->error)
		buf_printf(&v->detail, ": %s", s->error);
	if (!rec) {
		buf_adds(&v->detail, "; new task (no recording)");
		return;
	}
	if (!s->attempts)
		return;
	struct verdict iv = {.kind = "same", .detail = BUF_INIT};
	inputs_verdict(&iv, rec, s);
	if (strcmp(iv.kind, "same") && iv.detail.len) {
		buf_adds(&v->detail, "; ");
		buf_add(&v->detail, iv.detail.data, iv.detail.len);
	}
	v->diff = iv.diff;
	buf_free(&iv.detail);
}

static void judge(struct verdict *v, const dagrun_workflow *wf, uint32_t t, const json_t *rec,
		  const struct seen *s)
{
	v->kind = "same";
	if (s->live) {
		live_verdict(v, rec, s);
		return;
	}
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

/* s: the task's, for a live one's output; or NULL. */
static void print_text(FILE *f, const char *id, size_t width, const struct verdict *v,
		       const struct seen *s)
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
	if (s && s->live && s->out.len) {
		struct buf o = BUF_INIT;
		json_t *j = hist_json_str(s->out.data);
		short_value(&o, j);
		json_decref(j);
		buf_adds(&b, "\n");
		for (size_t i = 0; i < width + 2; i++)
			buf_addc(&b, ' ');
		buf_adds(&b, "output: ");
		hist_esc(&b, o.data ? o.data : "");
		buf_free(&o);
	}
	fprintf(f, "%s\n", b.data ? b.data : "");
	buf_free(&b);
}

static json_t *verdict_json(const char *id, const struct verdict *v, const struct seen *s)
{
	json_t *o = json_object();
	json_object_set_new(o, "id", hist_json_str(id));
	json_object_set_new(o, "verdict", json_string(v->kind));
	if (v->detail.len)
		json_object_set_new(o, "detail", hist_json_str(v->detail.data));
	if (v->diff)
		json_object_set(o, "diff", v->diff);
	if (s && s->live) {
		json_object_set_new(o, "status", s->status >= 0 ?
				    json_string(dagrun_status_name(s->status)) : json_null());
		json_object_set_new(o, "output", hist_json_str(s->out.data ? s->out.data : ""));
		if (s->out_cut)
			json_object_set_new(o, "outputTruncated", json_true());
		if (s->status != DAGRUN_COMPLETED && s->error)
			json_object_set_new(o, "error", hist_json_str(s->error));
	}
	return o;
}

/* ---- the command ----------------------------------------------------------------------- */

struct replay_args {
	const char *state, *ref, *with, *secrets_file;
	bool json;
	char **live;               /* --live ids, NULL-terminated, or NULL */
	size_t n_live;
};

/* Adds the ids of one --live (a comma list). -1 on a bad one or OOM. */
static int add_live(struct replay_args *a, const char *arg)
{
	for (const char *p = arg;; p++) {
		size_t n = strcspn(p, ",");
		if (!n) {
			fprintf(stderr, "dagrun replay: --live '%s': an empty task id\n", arg);
			return -1;
		}
		char **v = realloc(a->live, (a->n_live + 2) * sizeof(*v));
		if (!v || !(v[a->n_live] = strndup(p, n))) {
			if (v)
				a->live = v;
			fprintf(stderr, "dagrun replay: out of memory\n");
			return -1;
		}
		a->live = v;
		v[++a->n_live] = NULL;
		p += n;
		if (!*p)
			return 0;
	}
}

static void free_args(struct replay_args *a)
{
	for (size_t i = 0; i < a->n_live; i++)
		free(a->live[i]);
	free(a->live);
}

static int parse_args(int argc, char **argv, struct replay_args *a)
{
	static const struct option opts[] = {
		{"help", no_argument, NULL, 'h'},
		{"with", required_argument, NULL, 'w'},
		{"live", required_argument, NULL, 'L'},
		{"secrets-file", required_argument, NULL, 's'},
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
		case 's': a->secrets_file = optarg; break;
		case 'L':
			if (add_live(a, optarg) < 0)
				return -1;
			break;
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
	if (a->secrets_file && !a->live) {
		fprintf(stderr, "dagrun replay: --secrets-file is for live tasks: give --live TASK\n");
		return -1;
	}
	a->ref = argv[optind];
	return 0;
}

/* Every --live id is a task of wf; else says which is not (with the
 * closest id) and returns -1. Marks the live ones in rp. */
static int check_live(const struct replay_args *a, const dagrun_workflow *wf, struct replay *rp)
{
	int bad = 0;
	for (size_t i = 0; i < a->n_live; i++) {
		const char *id = a->live[i];
		uint32_t sym = intern_find(&wf->ids, id, strlen(id));
		uint32_t t = sym == INTERN_NONE ? UINT32_MAX : wf->sym_task[sym];
		if (t != UINT32_MAX) {
			rp->seen[t].live = true;
			continue;
		}
		struct suggest sg;
		suggest_init(&sg, id, strlen(id));
		for (uint32_t k = 0; k < wf->n_tasks; k++)
			suggest_offer(&sg, wf_task_id(wf, k));
		struct buf b = BUF_INIT;
		hist_esc(&b, id);
		fprintf(stderr, "dagrun replay: --live %s: no such task in the workflow", b.data);
		if (sg.best) {
			buf_reset(&b);
			hist_esc(&b, sg.best);
			fprintf(stderr, " (did you mean '%s'?)", b.data);
		}
		fputc('\n', stderr);
		buf_free(&b);
		bad = -1;
	}
	return bad;
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

/* Adds to names (a JSON object used as a set) each secret data reads:
 * `secrets.NAME`, secrets["NAME"], secrets['NAME']. */
static void secret_names(const char *data, size_t len, json_t *names)
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
		json_object_set_new(names, name, json_true());
	}
	free(text);
}

static int live_text(void *ud, uint32_t t, const struct dr_text *x, enum dr_text_use use)
{
	(void)t;
	(void)use;
	if (x && x->s)
		secret_names(x->s, x->len, ud);
	return 0;
}

/* Secrets are recorded masked: in a replay each secret the workflow reads
 * is its mask, so a template holding one renders as it was recorded (when
 * the environment has it, its value renders and is masked as recorded).
 * Not those a live task reads (its own texts, the workflow's env): it
 * needs the real one, from the environment or --secrets-file (which the
 * mask, in the environment, would shadow), or fails saying it is not set. */
static void mask_secrets(const char *data, size_t len, const dagrun_workflow *wf,
			 const struct replay *rp, bool live)
{
	json_t *all = json_object(), *real = json_object();
	secret_names(data, len, all);
	for (uint32_t t = 0; live && t < wf->n_tasks; t++)
		if (rp->seen[t].live)
			dr_task_each_text(wf, t, live_text, real);
	for (uint32_t i = 0; live && i < wf->env.n; i++)
		live_text(real, 0, &wf->env.v[i].value, DR_USE_PLAIN);
	const char *name;
	json_t *v;
	json_object_foreach(all, name, v)
		if (!json_object_get(real, name))
			setenv(name, "***", 0);
	json_decref(all);
	json_decref(real);
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


/* The workflow evaluated: --with's, or the recorded definition; its text
 * in *text (malloc'd, for the live run's snapshot). NULL: said why. */
static dagrun_workflow *workflow(const struct replay_args *a, const json_t *doc, int *status,
				 char **text, size_t *len)
{
	const char *def = json_string_value(json_object_get(doc, "definition"));
	const char *path = json_string_value(json_object_get(json_object_get(doc, "run"), "path"));
	*status = EXIT_USAGE;
	if (a->with)
		return cli_load_snapshot(a->with, 0, status, text, len);
	if (!def) {
		fprintf(stderr, "dagrun replay: the run recorded no definition: give --with FILE\n");
		return NULL;
	}
	dagrun_workflow *wf = cli_load_buffer(path ? path : "workflow.yaml", def, strlen(def), 0,
					      status);
	*len = strlen(def);
	if (wf && !(*text = strdup(def))) {
		dagrun_workflow_free(wf);
		*status = EXIT_INTERNAL;
		fprintf(stderr, "dagrun replay: out of memory\n");
		return NULL;
	}
	return wf;
}

/* Runs the replay (with its live tasks) on a new engine; the observers see
 * it. Returns the engine's outcome (0, 1, 128+N) or an exit status
 * negated (-EXIT_USAGE, -EXIT_INTERNAL), said on stderr. */
static int run_engine(const struct replay_args *a, const json_t *doc, const dagrun_workflow *wf,
		      const char *text, size_t len, char **vars, struct replay *rp)
{
	char *rec = json_dumps(doc, JSON_COMPACT);
	dagrun_diags *diags = dagrun_diags_new(100);
	dagrun_engine *e = NULL;
	dagrun_console *con = NULL;
	int status = -EXIT_INTERNAL, r;
	/* The run's trigger.body, so that its inputs render as they did. */
	const json_t *tb = json_object_get(json_object_get(doc, "trigger"), "body");
	char *tbody = tb && !json_is_null(tb) ? json_dumps(tb, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
	dagrun_run_opts o = {.replay = rec, .replay_len = rec ? strlen(rec) : 0, .max_parallel = 64,
			     .vars = (const char *const *)vars, .trigger_json = tbody};
	if (a->live) {
		/* a run of our own process, as `dagrun run`'s */
		o.live = (const char *const *)a->live;
		o.state_dir = cli_state_dir(a->state);
		o.secrets_file = a->secrets_file;
		o.max_parallel = 0;
		o.process_flags = DAGRUN_PROC_SUBREAPER | DAGRUN_PROC_SIGNALS;
		o.definition = text;
		o.definition_len = len;
	}
	if (!rec || !diags || (tb && !json_is_null(tb) && !tbody)) {
		fprintf(stderr, "dagrun replay: out of memory\n");
		goto out;
	}
	if ((r = dagrun_engine_new(&e, wf, &o, diags)) < 0) {
		dagrun_diags_print(diags, stderr, 0);
		fprintf(stderr, "dagrun replay: %s\n", strerror(-r));
		status = r == -EINVAL ? -EXIT_USAGE : -EXIT_INTERNAL;
		goto out;
	}
	dagrun_engine_observe(e, observe, rp);
	if (a->live) {
		/* the live run's failures and warnings, on stderr (by a writer
		 * thread: the loop never waits for stderr) */
		if (!(con = dagrun_console_new(stderr, DAGRUN_CONSOLE_QUIET)) ||
		    dagrun_engine_observe(e, dagrun_console_event, con) < 0) {
			fprintf(stderr, "dagrun replay: cannot set up the display\n");
			goto out;
		}
		signal(SIGPIPE, SIG_IGN);   /* as `dagrun run`: see run.c */
	}
	r = dagrun_engine_run(e);
	char *why = r < 0 && dagrun_engine_error(e) ? strdup(dagrun_engine_error(e)) : NULL;
	dagrun_engine_free(e);
	e = NULL;
	dagrun_console_free(con);
	con = NULL;
	if (r < 0)
		fprintf(stderr, "dagrun replay: %s\n", why ? why : strerror(-r));
	free(why);
	status = r < 0 ? -EXIT_INTERNAL : r;
out:
	dagrun_engine_free(e);
	dagrun_console_free(con);
	dagrun_diags_free(diags);
	free(rec);
	free(tbody);
	return status;
}

/* The report, on stdout; returns its exit status. */
static int report(const struct replay_args *a, const json_t *doc, const dagrun_workflow *wf,
		  const struct replay *rp)
{
	/* the workflow's tasks, then those only recorded */
	size_t same = 0, diverged = 0, live = 0, live_bad = 0, width = 0;
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
		const struct seen *s = &rp->seen[t];
		struct verdict v = {.detail = BUF_INIT};
		judge(&v, wf, t, json_object_get(by_id, id), s);
		json_object_set_new(now_ids, id, json_true());
		if (s->live) {
			live++;
			live_bad += s->status != DAGRUN_COMPLETED;
		} else if (!strcmp(v.kind, "same")) {
			same++;
		} else {
			diverged++;
		}
		if (a->json)
			json_array_append_new(list, verdict_json(id, &v, s));
		else
			print_text(stdout, id, width, &v, s);
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
		if (a->json)
			json_array_append_new(list, verdict_json(id, &v, NULL));
		else
			print_text(stdout, id, width, &v, NULL);
		buf_free(&v.detail);
	}
	if (a->json) {
		json_t *out = json_object();
		json_object_set_new(out, "run", hist_json_str(json_string_value(
			json_object_get(json_object_get(doc, "run"), "id"))));
		json_object_set_new(out, "same", json_integer((json_int_t)same));
		json_object_set_new(out, "diverged", json_integer((json_int_t)diverged));
		if (a->live) {
			json_object_set_new(out, "live", json_integer((json_int_t)live));
			json_object_set_new(out, "liveFailed", json_integer((json_int_t)live_bad));
			json_object_set_new(out, "liveRun", hist_json_str(rp->run_id));
		}
		json_object_set_new(out, "tasks", list);
		list = NULL;
		hist_json_print(out, stdout);
	} else {
		printf("replay: %zu same, %zu diverge%s", same, diverged, diverged == 1 ? "s" : "");
		if (a->live) {
			struct buf b = BUF_INIT;
			hist_esc(&b, rp->run_id ? rp->run_id : "?");
			printf("; %zu live (%zu did not complete) in run %s", live, live_bad,
			       b.data ? b.data : "?");
			buf_free(&b);
		}
		printf("\n");
	}
	json_decref(list);
	json_decref(by_id);
	json_decref(now_ids);
	return diverged || live_bad ? EXIT_TASK_FAILED : EXIT_OK;
}

int cli_replay(int argc, char **argv)
{
	struct replay_args a = {0};
	int r = parse_args(argc, argv, &a);
	if (r) {
		free_args(&a);
		return r > 0 ? EXIT_OK : EXIT_USAGE;
	}
	json_t *doc = NULL;
	int status = recording(&a, &doc);
	if (status != EXIT_OK) {
		free_args(&a);
		return status;
	}
	char *text = NULL;
	size_t len = 0;
	struct replay rp = {0};
	char **vars = NULL;
	dagrun_workflow *wf = workflow(&a, doc, &status, &text, &len);
	if (!wf)
		goto out;
	status = EXIT_INTERNAL;
	vars = recorded_vars(doc, wf);
	rp.wf = wf;
	rp.seen = calloc(wf->n_tasks ? wf->n_tasks : 1, sizeof(*rp.seen));
	if (!rp.seen || !vars) {
		fprintf(stderr, "dagrun replay: out of memory\n");
		goto out;
	}
	for (uint32_t t = 0; t < wf->n_tasks; t++)
		rp.seen[t].status = -1;
	if (check_live(&a, wf, &rp) < 0) {
		status = EXIT_USAGE;
		goto out;
	}
	mask_secrets(text, len, wf, &rp, a.live != NULL);
	r = run_engine(&a, doc, wf, text, len, vars, &rp);
	if (r < 0) {
		status = -r;
		goto out;
	}
	status = report(&a, doc, wf, &rp);
	if (r > 128)
		status = r;   /* the live run was stopped by a signal */
out:
	for (uint32_t t = 0; rp.seen && t < wf->n_tasks; t++) {
		free(rp.seen[t].inputs);
		free(rp.seen[t].inputs_error);
		free(rp.seen[t].error);
		buf_free(&rp.seen[t].out);
	}
	free(rp.seen);
	free(rp.run_id);
	for (size_t i = 0; vars && vars[i]; i++)
		free(vars[i]);
	free(vars);
	dagrun_workflow_free(wf);
	free(text);
	json_decref(doc);
	free_args(&a);
	return status;
}
