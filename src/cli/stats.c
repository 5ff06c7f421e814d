/* stats.c: `dagrun stats [WORKFLOW] [--task T] [--since AGE] [--format
 * text|json]`: what the state store knows of past runs, aggregated.
 *
 * Per workflow: runs, by status, success rate (completed of those that
 * ran to their end), p50 / p95 / max wall time of those. Per task:
 * runs, p50 / p95 / max duration of its successful attempts, failure
 * rate, retries per run, mean CPU, max RSS, AI tokens per run. Cancelled
 * and interrupted runs (and a task's cancelled or interrupted attempts)
 * are counted apart: neither successes nor failures, and not timed.
 * Percentiles are nearest-rank (store.h), never means; rows are sorted by
 * p95, highest first. The store aggregates (two queries): the command
 * holds one row per workflow and per task, never the attempts.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cli/hist.h"
#include "load/duration.h"
#include "util/text.h"

static const char usage[] =
	"usage: dagrun stats [OPTIONS] [WORKFLOW]\n"
	"\n"
	"Statistics of the runs recorded in the state directory (of WORKFLOW only,\n"
	"when given). Per workflow: runs by status, success rate (completed among\n"
	"the runs that ran to their end), p50 / p95 / max wall time of those. Per\n"
	"task: runs, p50 / p95 / max duration of its successful attempts, failure\n"
	"rate, retries per run, mean CPU time per attempt, largest RSS, and for AI\n"
	"tasks the tokens per run (prompt + completion). Cancelled and interrupted\n"
	"runs are counted apart: not failures, not timed. Percentiles are\n"
	"nearest-rank (a duration that happened), never means; rows are sorted by\n"
	"p95, highest first.\n"
	"\n"
	"      --task T        only task T (and the workflows that have it)\n"
	"      --since AGE     only runs started in the last AGE: a duration such\n"
	"                      as 7d, 12h, 1d12h, 30m\n"
	"      --format F      text (default) or json\n"
	"      --state DIR     the state directory (default: $DAGRUN_STATE, else .dagrun)\n"
	"\n"
	"Exit status: 0 shown (also when nothing is recorded), 2 usage error,\n"
	"3 the store cannot be read.\n";


struct stats_args {
	struct hist_common c;
	const char *workflow, *task;
	uint64_t since_ms;         /* an age; 0: any */
};

static int parse_args(int argc, char **argv, struct stats_args *a)
{
	static const struct option opts[] = {
		{"help", no_argument, NULL, 'h'},
		{"task", required_argument, NULL, 't'},
		{"since", required_argument, NULL, 's'},
		{"format", required_argument, NULL, 'f'},
		{"state", required_argument, NULL, 'S'},
		{0, 0, 0, 0},
	};
	const char *why;
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'h': fputs(usage, stdout); return 1;
		case 't': a->task = optarg; break;
		case 's':
			if (duration_parse(optarg, strlen(optarg), &a->since_ms, &why) < 0 ||
			    !a->since_ms) {
				fprintf(stderr, "dagrun stats: --since takes an age such as 7d, 12h "
					"or 30m%s%s\n", a->since_ms ? ": " : "",
					a->since_ms ? why : "");
				return -1;
			}
			break;
		case 'f':
			if (hist_parse_format("stats", optarg, &a->c) < 0)
				return -1;
			break;
		case 'S': a->c.state = optarg; break;
		default: fputs(usage, stderr); return -1;
		}
	}
	return hist_operands("stats", argc, argv, usage, &a->c, &a->workflow);
}

/* ---- the numbers ------------------------------------------------------------- */

struct wf_view {
	const struct store_workflow_stats *w;
	const struct store_task_stats *t;   /* its tasks: t[0 .. nt) */
	size_t nt;
};

static uint32_t ended(const struct store_workflow_stats *w)
{
	return w->by_status[STORE_RUN_COMPLETED] + w->by_status[STORE_RUN_FAILED];
}

static int by_p95(const void *x, const void *y)
{
	const struct wf_view *a = x, *b = y;
	if (!a->w->timed != !b->w->timed)
		return a->w->timed ? -1 : 1;
	if (a->w->p95_ms != b->w->p95_ms)
		return a->w->p95_ms > b->w->p95_ms ? -1 : 1;
	return strcmp(a->w->workflow, b->w->workflow);
}

/* Workflows sorted by p95, each with its tasks (the store's order: by
 * workflow name, then p95). With a task filter, only the workflows that
 * have the task. */
static struct wf_view *views(const struct store_workflow_stats *w, size_t nw,
			     const struct store_task_stats *t, size_t nt, bool only_with_tasks,
			     size_t *n)
{
	struct wf_view *v = calloc(nw ? nw : 1, sizeof(*v));
	if (!v)
		return NULL;
	size_t k = 0;
	for (size_t i = 0; i < nw; i++) {
		struct wf_view x = {.w = &w[i]};
		for (size_t j = 0; j < nt; j++) {
			if (strcmp(t[j].workflow, w[i].workflow))
				continue;
			if (!x.t)
				x.t = &t[j];
			x.nt++;
		}
		if (!only_with_tasks || x.nt)
			v[k++] = x;
	}
	qsort(v, k, sizeof(*v), by_p95);
	*n = k;
	return v;
}

static void pct(char *buf, size_t n, uint64_t part, uint64_t whole)
{
	if (whole)
		snprintf(buf, n, "%.1f%%", 100.0 * (double)part / (double)whole);
	else
		snprintf(buf, n, "-");
}

static void ms_or_dash(char *buf, size_t n, bool has, uint64_t ms)
{
	if (has)
		hist_fmt_ms(ms, buf, n);
	else
		snprintf(buf, n, "-");
}

/* ---- text --------------------------------------------------------------------- */

static int text_workflows(const struct wf_view *v, size_t n, FILE *f)
{
	struct hist_table t;
	char b[7][32];
	hist_table_init(&t, 11);
	const char *head[] = {"WORKFLOW", "RUNS", "SUCCESS", "P50", "P95", "MAX", "COMPLETED",
			      "FAILED", "CANCELLED", "INTERRUPTED", "RUNNING"};
	for (size_t i = 0; i < 11; i++)
		hist_table_add_raw(&t, head[i]);
	for (size_t i = 0; i < n; i++) {
		const struct store_workflow_stats *w = v[i].w;
		hist_table_add(&t, w->workflow);
		snprintf(b[0], sizeof(b[0]), "%u", w->runs);
		hist_table_add_raw(&t, b[0]);
		pct(b[1], sizeof(b[1]), w->by_status[STORE_RUN_COMPLETED], ended(w));
		hist_table_add_raw(&t, b[1]);
		ms_or_dash(b[2], sizeof(b[2]), w->timed, w->p50_ms);
		ms_or_dash(b[3], sizeof(b[3]), w->timed, w->p95_ms);
		ms_or_dash(b[4], sizeof(b[4]), w->timed, w->max_ms);
		for (int k = 2; k <= 4; k++)
			hist_table_add_raw(&t, b[k]);
		static const int st[] = {STORE_RUN_COMPLETED, STORE_RUN_FAILED, STORE_RUN_CANCELLED,
					 STORE_RUN_INTERRUPTED, STORE_RUN_RUNNING};
		for (int k = 0; k < 5; k++) {
			snprintf(b[5], sizeof(b[5]), "%u", w->by_status[st[k]]);
			hist_table_add_raw(&t, b[5]);
		}
	}
	int e = hist_table_print(&t, f);
	hist_table_free(&t);
	return e;
}

static int text_tasks(const struct wf_view *v, FILE *f)
{
	struct hist_table t;
	char b[32];
	struct buf head = BUF_INIT;
	int e = buf_adds(&head, "\n") < 0 || hist_esc(&head, v->w->workflow) < 0 ||
		buf_adds(&head, ": tasks by p95 of their successful attempts\n") < 0;
	if (e) {
		buf_free(&head);
		return -ENOMEM;
	}
	fputs(head.data, f);
	buf_free(&head);
	hist_table_init(&t, 12);
	const char *cols[] = {"TASK", "RUNS", "P50", "P95", "MAX", "FAILED", "RETRIES/RUN",
			      "CUT", "CPU/ATTEMPT", "MAX RSS", "TOKENS/RUN", "CACHE HITS"};
	for (size_t i = 0; i < 12; i++)
		hist_table_add_raw(&t, cols[i]);
	for (size_t i = 0; i < v->nt; i++) {
		const struct store_task_stats *s = &v->t[i];
		hist_table_add(&t, s->task);
		snprintf(b, sizeof(b), "%u", s->runs);
		hist_table_add_raw(&t, b);
		uint64_t ms[3] = {s->p50_ms, s->p95_ms, s->max_ms};
		for (int k = 0; k < 3; k++) {
			ms_or_dash(b, sizeof(b), s->ok_attempts, ms[k]);
			hist_table_add_raw(&t, b);
		}
		pct(b, sizeof(b), s->failed_runs, s->runs - s->cut_runs);
		hist_table_add_raw(&t, b);
		snprintf(b, sizeof(b), "%.2f", s->runs ? (double)(s->attempts - s->runs) /
			 (double)s->runs : 0.0);
		hist_table_add_raw(&t, b);
		snprintf(b, sizeof(b), "%u", s->cut_runs);
		hist_table_add_raw(&t, b);
		ms_or_dash(b, sizeof(b), s->attempts, s->attempts ? s->cpu_ms / s->attempts : 0);
		hist_table_add_raw(&t, b);
		if (s->max_rss_kb > 0)
			text_fmt_bytes((uint64_t)s->max_rss_kb * 1024, b, sizeof(b));
		else
			snprintf(b, sizeof(b), "-");
		hist_table_add_raw(&t, b);
		if (s->ai_runs)
			snprintf(b, sizeof(b), "%.0f+%.0f", (double)s->prompt_tokens / s->ai_runs,
				 (double)s->completion_tokens / s->ai_runs);
		else
			snprintf(b, sizeof(b), "-");
		hist_table_add_raw(&t, b);
		if (s->cache_runs)
			pct(b, sizeof(b), s->cached_runs, s->cache_runs);
		else
			snprintf(b, sizeof(b), "-");
		hist_table_add_raw(&t, b);
	}
	e = hist_table_print(&t, f);
	hist_table_free(&t);
	return e;
}

static int stats_text(const struct wf_view *v, size_t n, FILE *f)
{
	int e = text_workflows(v, n, f);
	for (size_t i = 0; e == 0 && i < n; i++)
		if (v[i].nt)
			e = text_tasks(&v[i], f);
	return e;
}

/* ---- JSON --------------------------------------------------------------------- */

static json_t *ratio(uint64_t part, uint64_t whole)
{
	return whole ? json_real((double)part / (double)whole) : json_null();
}

static json_t *durations(uint32_t n, uint64_t p50, uint64_t p95, uint64_t max, const char *what)
{
	if (!n)
		return json_null();
	return json_pack("{s:i, s:I, s:I, s:I}", what, (int)n, "p50Ms", (json_int_t)p50,
			 "p95Ms", (json_int_t)p95, "maxMs", (json_int_t)max);
}

static json_t *json_task(const struct store_task_stats *s)
{
	json_t *o = json_object();
	if (!o)
		return NULL;
	int e = 0;
	e |= json_object_set_new(o, "task", hist_json_str(s->task));
	e |= json_object_set_new(o, "runs", json_integer(s->runs));
	e |= json_object_set_new(o, "completedRuns", json_integer(s->ok_runs));
	e |= json_object_set_new(o, "failedRuns", json_integer(s->failed_runs));
	e |= json_object_set_new(o, "cutRuns", json_integer(s->cut_runs));
	e |= json_object_set_new(o, "failureRate", ratio(s->failed_runs, s->runs - s->cut_runs));
	e |= json_object_set_new(o, "attempts", json_integer((json_int_t)s->attempts));
	e |= json_object_set_new(o, "retriesPerRun", ratio(s->attempts - s->runs, s->runs));
	e |= json_object_set_new(o, "duration", durations(s->ok_attempts, s->p50_ms, s->p95_ms,
							   s->max_ms, "attempts"));
	e |= json_object_set_new(o, "cpuMeanMs", ratio(s->cpu_ms, s->attempts));
	e |= json_object_set_new(o, "maxRssKb", s->max_rss_kb > 0 ?
				 json_integer(s->max_rss_kb) : json_null());
	/* null: never run with `cache`, never a made-up 0 */
	e |= json_object_set_new(o, "cacheHitRate", s->cache_runs ?
				 ratio(s->cached_runs, s->cache_runs) : json_null());
	e |= json_object_set_new(o, "ai", s->ai_runs ?
				 json_pack("{s:i, s:o, s:o}", "runs", (int)s->ai_runs,
					   "promptTokensPerRun", ratio(s->prompt_tokens, s->ai_runs),
					   "completionTokensPerRun",
					   ratio(s->completion_tokens, s->ai_runs)) : json_null());
	if (e) {
		json_decref(o);
		return NULL;
	}
	return o;
}

static json_t *json_workflow(const struct wf_view *v)
{
	const struct store_workflow_stats *w = v->w;
	json_t *o = json_object(), *by = json_object(), *tasks = json_array();
	int e = !o || !by || !tasks;
	for (int k = STORE_RUN_RUNNING; !e && k < STORE_RUN_NSTATUS; k++)
		e |= json_object_set_new(by, store_run_status_name(k),
					 json_integer(w->by_status[k]));
	for (size_t i = 0; !e && i < v->nt; i++)
		e |= json_array_append_new(tasks, json_task(&v->t[i]));
	if (!e) {
		e |= json_object_set_new(o, "workflow", hist_json_str(w->workflow));
		e |= json_object_set_new(o, "runs", json_integer(w->runs));
		e |= json_object_set_new(o, "byStatus", by);
		by = NULL;
		e |= json_object_set_new(o, "successRate",
					 ratio(w->by_status[STORE_RUN_COMPLETED], ended(w)));
		e |= json_object_set_new(o, "wallTime", durations(w->timed, w->p50_ms, w->p95_ms,
								   w->max_ms, "runs"));
		e |= json_object_set_new(o, "tasks", tasks);
		tasks = NULL;
	}
	json_decref(by);
	json_decref(tasks);
	if (e) {
		json_decref(o);
		return NULL;
	}
	return o;
}

static int stats_json(const struct wf_view *v, size_t n, uint64_t since, FILE *f)
{
	json_t *o = json_object(), *wfs = json_array();
	int e = !o || !wfs;
	for (size_t i = 0; !e && i < n; i++)
		e |= json_array_append_new(wfs, json_workflow(&v[i]));
	if (!e) {
		e |= json_object_set_new(o, "since", hist_json_time(since));
		e |= json_object_set_new(o, "workflows", wfs);
		wfs = NULL;
		e |= json_object_set_new(o, "notes", json_array());
	}
	json_decref(wfs);
	if (e) {
		json_decref(o);
		return -1;
	}
	return hist_json_print(o, f);
}

int cli_stats(int argc, char **argv)
{
	struct stats_args a = {0};
	int r = parse_args(argc, argv, &a);
	if (r)
		return r > 0 ? EXIT_OK : EXIT_USAGE;
	const char *dir = cli_state_dir(a.c.state);
	struct store *s = NULL;
	struct arena mem = ARENA_INIT;
	struct store_workflow_stats *w = NULL;
	struct store_task_stats *t = NULL;
	struct wf_view *v = NULL;
	size_t nw = 0, nt = 0, nv = 0;
	char *err = NULL;
	int status = EXIT_OK;
	uint64_t now = hist_now_ms();
	uint64_t since = a.since_ms ? (a.since_ms < now ? now - a.since_ms : 1) : 0;
	if ((r = hist_open("stats", dir, false, &s)) == -ENOENT) {
		hist_none("stats", dir);
	} else if (r < 0) {
		return EXIT_INTERNAL;
	} else {
		struct store_stats_filter f = {.workflow = a.workflow, .task = a.task,
					       .since_ms = since};
		if ((r = s->ops->workflow_stats(s, &f, &mem, &w, &nw, &err)) < 0 ||
		    (r = s->ops->task_stats(s, &f, &mem, &t, &nt, &err)) < 0) {
			hist_say("stats", err ? err : strerror(-r));
			status = EXIT_INTERNAL;
			goto out;
		}
	}
	if (!(v = views(w, nw, t, nt, a.task != NULL, &nv))) {
		fputs("dagrun stats: out of memory\n", stderr);
		status = EXIT_INTERNAL;
		goto out;
	}
	if (a.c.json)
		r = stats_json(v, nv, since, stdout);
	else if (nv)
		r = stats_text(v, nv, stdout);
	else if (s)
		hist_say("stats", "no runs match");
	if (r < 0 || fflush(stdout) != 0) {
		fprintf(stderr, "dagrun stats: cannot write: %s\n",
			r < 0 ? strerror(ENOMEM) : strerror(errno));
		status = EXIT_INTERNAL;
	}
out:
	free(err);
	free(v);
	arena_free(&mem);
	store_close(s);
	return status;
}
