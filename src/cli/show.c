/* show.c: `dagrun show RUN` (one run and its tasks), read from the state
 * store.
 *
 * It opens the store read-only (it never writes, never creates the state
 * directory) and makes one or two queries, each a consistent snapshot. A
 * run recorded as running whose owner is gone shows as interrupted (the
 * store computes it from the lease), and so do its tasks and attempts that
 * were running.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cli/hist.h"
#include "cli/rundoc.h"
#include "report/report.h"

static const char show_usage[] =
	"usage: dagrun show [OPTIONS] RUN\n"
	"\n"
	"Shows one run: its workflow, status, start, duration and run attempt, then\n"
	"each task's status, attempts, duration (of its last attempt), exit code,\n"
	"error class and message. RUN is a run id, a unique prefix of one, or\n"
	"`last` (the newest run).\n"
	"\n"
	"      --format F      text (default) or json (with every attempt's details)\n"
	"      --timeline      a Gantt chart of the run in the terminal's width ($COLUMNS,\n"
	"                      else the terminal's, else 100 columns): one line per\n"
	"                      task, '.' waiting while ready, '-' a retry delay, '=' a\n"
	"                      completed attempt, 'x' a failed one, '!' cancelled or\n"
	"                      interrupted, '>' running\n"
	"      --state DIR     the state directory (default: $DAGRUN_STATE, else .dagrun)\n"
	"\n"
	"Exit status: 0 shown, 2 usage error or no such run, 3 the store cannot be read.\n";

static int show_parse(int argc, char **argv, struct hist_common *c, const char **ref,
		      bool *timeline)
{
	static const struct option opts[] = {
		{"help", no_argument, NULL, 'h'},
		{"format", required_argument, NULL, 'f'},
		{"timeline", no_argument, NULL, 'T'},
		{"state", required_argument, NULL, 'S'},
		{0, 0, 0, 0},
	};
	int ch;
	optind = 1;
	while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (ch) {
		case 'h': fputs(show_usage, stdout); return 1;
		case 'f':
			if (hist_parse_format("show", optarg, c) < 0)
				return -1;
			break;
		case 'T': *timeline = true; break;
		case 'S': c->state = optarg; break;
		default: fputs(show_usage, stderr); return -1;
		}
	}
	if (optind != argc - 1) {
		fputs(show_usage, stderr);
		return -1;
	}
	if (*timeline && c->json) {
		fprintf(stderr, "dagrun show: --timeline is a text drawing: not with --format json\n");
		return -1;
	}
	*ref = argv[optind];
	if (c->state && !*c->state) {
		fprintf(stderr, "dagrun show: --state takes a directory\n");
		return -1;
	}
	return 0;
}

/* An attempt's outcome, as docs/cli.md names it. */
static const char *outcome(const struct store_attempt_info *a)
{
	return store_attempt_outcome(a, false);
}

static json_t *class_or_null(int c)
{
	return c ? json_string(dagrun_class_name(c)) : json_null();
}

static json_t *json_attempt(const struct store_attempt_info *a)
{
	json_t *o = json_object();
	if (!o)
		return NULL;
	int e = 0;
	bool ended = a->ended;
	e |= json_object_set_new(o, "attempt", json_integer(a->attempt));
	e |= json_object_set_new(o, "outcome", json_string(outcome(a)));
	if (a->flags & STORE_ATTEMPT_REPLAYED)
		e |= json_object_set_new(o, "replayed", json_true());
	/* a cache hit (README "Cache"): the result of an earlier run, nothing ran */
	e |= json_object_set_new(o, "cached", json_boolean(a->flags & STORE_ATTEMPT_CACHED));
	e |= json_object_set_new(o, "start", hist_json_time(a->start_ms));
	e |= json_object_set_new(o, "startMs", json_integer((json_int_t)a->start_ms));
	e |= json_object_set_new(o, "end", hist_json_time(ended ? a->end_ms : 0));
	e |= json_object_set_new(o, "endMs", ended ? json_integer((json_int_t)a->end_ms) : json_null());
	e |= json_object_set_new(o, "durationMs", ended ? json_integer((json_int_t)a->duration_ms)
							: json_null());
	e |= json_object_set_new(o, "exitCode", ended && a->exit_code >= 0 ?
				 json_integer(a->exit_code) : json_null());
	e |= json_object_set_new(o, "signal", a->signal ? json_integer(a->signal) : json_null());
	e |= json_object_set_new(o, "errorClass", class_or_null(ended ? a->error_class : 0));
	e |= json_object_set_new(o, "error", hist_json_str(a->error));
	e |= json_object_set_new(o, "pid", a->pid ? json_integer(a->pid) : json_null());
	e |= json_object_set_new(o, "cpuUserMs", json_integer((json_int_t)a->cpu_user_ms));
	e |= json_object_set_new(o, "cpuSysMs", json_integer((json_int_t)a->cpu_sys_ms));
	e |= json_object_set_new(o, "maxRssKb", json_integer(a->max_rss_kb));
	e |= json_object_set_new(o, "stdoutBytes", json_integer((json_int_t)a->out_bytes));
	e |= json_object_set_new(o, "stderrBytes", json_integer((json_int_t)a->err_bytes));
	e |= json_object_set_new(o, "stdoutLoggedBytes", json_integer((json_int_t)a->out_logged));
	e |= json_object_set_new(o, "stderrLoggedBytes", json_integer((json_int_t)a->err_logged));
	e |= json_object_set_new(o, "stdoutLogCutBytes", json_integer((json_int_t)a->out_log_cut));
	e |= json_object_set_new(o, "stderrLogCutBytes", json_integer((json_int_t)a->err_log_cut));
	if (a->http_status) {
		json_t *h = json_pack("{s:i, s:I, s:I, s:I, s:I, s:I, s:I, s:i}",
				      "status", a->http_status,
				      "queueUs", (json_int_t)a->http_queue_us,
				      "dnsUs", (json_int_t)a->http_dns_us,
				      "connectUs", (json_int_t)a->http_connect_us,
				      "tlsUs", (json_int_t)a->http_tls_us,
				      "firstByteUs", (json_int_t)a->http_first_byte_us,
				      "totalUs", (json_int_t)a->http_total_us,
				      "redirects", (int)a->http_redirects);
		e |= json_object_set_new(o, "http", h);
	}
	if (a->model) {
		json_t *ai = json_object();
		e |= !ai;
		if (ai) {
			e |= json_object_set_new(ai, "model", hist_json_str(a->model));
			e |= json_object_set_new(ai, "finishReason", hist_json_str(a->finish_reason));
			e |= json_object_set_new(ai, "promptSha256", hist_json_str(a->prompt_sha256));
			e |= json_object_set_new(ai, "promptTokens", a->prompt_tokens >= 0 ?
						 json_integer(a->prompt_tokens) : json_null());
			e |= json_object_set_new(ai, "completionTokens", a->completion_tokens >= 0 ?
						 json_integer(a->completion_tokens) : json_null());
			e |= json_object_set_new(ai, "promptBytes", json_integer((json_int_t)a->prompt_bytes));
			e |= json_object_set_new(ai, "contextCutBytes",
						 json_integer((json_int_t)a->context_cut_bytes));
			e |= json_object_set_new(o, "ai", ai);
		}
	}
	if (e) {
		json_decref(o);
		return NULL;
	}
	return o;
}

/* The task's attempts, found in v[*at ..] (sorted by task, then attempt). */
static json_t *json_task(const struct store_task_info *t, const struct store_attempt_info *v,
			 size_t n, size_t *at, struct store *s, struct arena *mem)
{
	json_t *o = json_object(), *atts = json_array();
	int e = !o || !atts;
	while (*at < n && v[*at].task < t->index)
		(*at)++;
	for (; !e && *at < n && v[*at].task == t->index; (*at)++)
		e = json_array_append_new(atts, json_attempt(&v[*at]));
	bool has = t->attempts > 0;
	if (!e) {
		e |= json_object_set_new(o, "index", json_integer(t->index));
		e |= json_object_set_new(o, "id", hist_json_str(t->id));
		e |= json_object_set_new(o, "status", json_string(store_task_status_name(t->status)));
		e |= json_object_set_new(o, "start", hist_json_time(has ? t->start_ms : 0));
		e |= json_object_set_new(o, "startMs", has ? json_integer((json_int_t)t->start_ms)
							 : json_null());
		e |= json_object_set_new(o, "end", hist_json_time(has ? t->end_ms : 0));
		e |= json_object_set_new(o, "endMs", has && t->end_ms ?
					 json_integer((json_int_t)t->end_ms) : json_null());
		e |= json_object_set_new(o, "durationMs", has && t->end_ms ?
					 json_integer((json_int_t)t->duration_ms) : json_null());
		e |= json_object_set_new(o, "exitCode", has && t->end_ms && t->exit_code >= 0 ?
					 json_integer(t->exit_code) : json_null());
		e |= json_object_set_new(o, "signal", t->signal ? json_integer(t->signal) : json_null());
		e |= json_object_set_new(o, "errorClass", class_or_null(t->error_class));
		e |= json_object_set_new(o, "error", hist_json_str(t->error));
		json_t *kept = json_null();
		if (t->from_run) {
			/* Where a rerun kept it from. */
			struct store_run_info fr;
			char *err = NULL;
			if (s->ops->get_run(s, t->from_run, mem, &fr, &err) == 0)
				kept = json_pack("{s:o, s:i}", "id", hist_json_str(fr.run_id),
						 "runAttempt", (int)fr.run_attempt);
			free(err);
		}
		e |= json_object_set_new(o, "keptFrom", kept);
		e |= json_object_set_new(o, "attempts", atts);
		atts = NULL;
	}
	json_decref(atts);
	if (e) {
		json_decref(o);
		return NULL;
	}
	return o;
}

static int show_json(struct store *s, const struct store_run_info *ri,
		     const struct store_task_info *t, size_t nt,
		     const struct store_attempt_info *att, size_t na, struct arena *mem, FILE *f)
{
	json_t *o = json_object(), *tasks = json_array();
	int e = !o || !tasks;
	size_t at = 0;
	for (size_t i = 0; !e && i < nt; i++)
		e = json_array_append_new(tasks, json_task(&t[i], att, na, &at, s, mem));
	if (!e) {
		e |= json_object_set_new(o, "run", hist_json_run(ri));
		e |= json_object_set_new(o, "tasks", tasks);
		tasks = NULL;
	}
	json_decref(tasks);
	if (e) {
		json_decref(o);
		return -1;
	}
	return hist_json_print(o, f);
}

/* The header of `show`: "key  value" lines. */
static void show_header(const struct store_run_info *ri, FILE *f)
{
	struct buf b = BUF_INIT;
	char tm[64], dur[32];
	uint64_t now = hist_now_ms();
	int e = 0;
	e |= buf_adds(&b, "run       ");
	e |= hist_esc(&b, ri->run_id);
	e |= buf_printf(&b, " (run attempt %u)", ri->run_attempt);
	if (ri->replay_of) {
		e |= buf_adds(&b, "\nreplay of ");
		e |= hist_esc(&b, ri->replay_of);
		e |= buf_adds(&b, " (its other tasks' results come from there)");
	}
	e |= buf_adds(&b, "\nworkflow  ");
	e |= hist_esc(&b, ri->workflow);
	e |= buf_adds(&b, " (");
	e |= hist_esc(&b, ri->path);
	e |= buf_printf(&b, ")\nstatus    %s", store_run_status_name(ri->status));
	if (ri->error) {
		e |= buf_adds(&b, ": ");
		e |= hist_esc(&b, ri->error);
	}
	if (ri->status == STORE_RUN_INTERRUPTED) {
		hist_fmt_time(ri->lease.beat_ms, tm, sizeof(tm));
		if (ri->lease.host) {
			e |= buf_printf(&b, " (its dagrun, pid %lld on ", (long long)ri->lease.pid);
			e |= hist_esc(&b, ri->lease.host);
			e |= buf_printf(&b, ", is gone; last heard of %s)", tm);
		} else {
			e |= buf_printf(&b, " (its dagrun stopped without ending it; last heard of %s)",
					tm);
		}
	} else if (ri->status == STORE_RUN_RUNNING && ri->lease.host) {
		e |= buf_printf(&b, " (pid %lld on ", (long long)ri->lease.pid);
		e |= hist_esc(&b, ri->lease.host);
		e |= buf_adds(&b, ")");
	}
	hist_fmt_time(ri->start_ms, tm, sizeof(tm));
	e |= buf_printf(&b, "\nstarted   %s", tm);
	if (ri->end_ms && ri->end_ms >= ri->start_ms) {
		hist_fmt_ms(ri->end_ms - ri->start_ms, dur, sizeof(dur));
		e |= buf_printf(&b, ", took %s", dur);
	} else if (ri->status == STORE_RUN_RUNNING && now >= ri->start_ms) {
		hist_fmt_ms(now - ri->start_ms, dur, sizeof(dur));
		e |= buf_printf(&b, ", running for %s", dur);
	}
	e |= buf_printf(&b, "\ntasks     %u: ", ri->n_tasks);
	e |= hist_counts(&b, ri->counts);
	e |= buf_adds(&b, "\n");
	if (e)
		fputs("dagrun show: out of memory\n", stderr);
	else
		fputs(b.data, f);
	buf_free(&b);
}

static int show_text(const struct store_run_info *ri, const struct store_task_info *t,
		     size_t nt, FILE *f)
{
	struct hist_table tab;
	struct buf b = BUF_INIT;
	char num[32], dur[32];
	uint64_t now = hist_now_ms();
	show_header(ri, f);
	if (!nt)
		return 0;
	fputc('\n', f);
	hist_table_init(&tab, 6);
	const char *head[] = {"TASK", "STATUS", "ATTEMPTS", "DURATION", "EXIT", "ERROR"};
	for (size_t i = 0; i < 6; i++)
		hist_table_add_raw(&tab, head[i]);
	for (size_t i = 0; i < nt; i++) {
		const struct store_task_info *ti = &t[i];
		hist_table_add(&tab, ti->id);
		snprintf(dur, sizeof(dur), "%s%s", store_task_status_name(ti->status),
			 ti->flags & STORE_ATTEMPT_REPLAYED ? " (replayed)" : "");
		hist_table_add_raw(&tab, dur);
		snprintf(num, sizeof(num), "%u", ti->attempts);
		hist_table_add_raw(&tab, num);
		if (ti->attempts && ti->end_ms && (ti->flags & STORE_ATTEMPT_CACHED))
			snprintf(dur, sizeof(dur), "cached");
		else if (ti->attempts && ti->end_ms)
			hist_fmt_ms(ti->duration_ms, dur, sizeof(dur));
		else if (ti->attempts && ti->status == STORE_TASK_RUNNING &&
			 ri->status == STORE_RUN_RUNNING && now >= ti->start_ms)
			hist_fmt_ms(now - ti->start_ms, dur, sizeof(dur));
		else
			snprintf(dur, sizeof(dur), "-");
		hist_table_add_raw(&tab, dur);
		if (ti->attempts && ti->end_ms && ti->signal)
			hist_fmt_signal(ti->signal, num, sizeof(num));
		else if (ti->attempts && ti->end_ms && ti->exit_code >= 0)
			snprintf(num, sizeof(num), "%d", ti->exit_code);
		else
			snprintf(num, sizeof(num), "-");
		hist_table_add_raw(&tab, num);
		buf_reset(&b);
		if (ti->error_class)
			buf_printf(&b, "%s: ", dagrun_class_name(ti->error_class));
		if (ti->error || ti->error_class)
			buf_adds(&b, ti->error ? ti->error : "");
		hist_table_add(&tab, b.data);
	}
	buf_free(&b);
	int e = hist_table_print(&tab, f);
	hist_table_free(&tab);
	return e;
}

/* `show RUN --timeline`: the run document drawn as a text Gantt. */
static int show_timeline(const char *state, const char *ref)
{
	struct report_rundoc_opts o = {.no_history = true, .no_outputs = true};
	json_t *doc = NULL;
	int status = cli_rundoc("show", state, ref, &o, &doc);
	if (status != EXIT_OK)
		return status;
	char *err = NULL;
	int r = report_gantt_text(doc, cli_term_width(stdout), stdout, &err);
	if (r < 0 || fflush(stdout) != 0) {
		fprintf(stderr, "dagrun show: cannot write: %s\n",
			err ? err : strerror(r < 0 ? -r : errno));
		status = EXIT_INTERNAL;
	}
	free(err);
	json_decref(doc);
	return status;
}

int cli_show(int argc, char **argv)
{
	struct hist_common c = {0};
	const char *ref = NULL;
	bool timeline = false;
	int r = show_parse(argc, argv, &c, &ref, &timeline);
	if (r)
		return r > 0 ? EXIT_OK : EXIT_USAGE;
	if (timeline)
		return show_timeline(c.state, ref);
	const char *dir = cli_state_dir(c.state);
	struct store *s = NULL;
	struct arena mem = ARENA_INIT;
	struct store_run_info ri;
	struct store_task_info *t = NULL;
	struct store_attempt_info *att = NULL;
	size_t nt = 0, na = 0;
	char *err = NULL;
	int status = EXIT_OK;
	if ((r = hist_open("show", dir, false, &s)) == -ENOENT) {
		hist_none("show", dir);
		return EXIT_USAGE;
	}
	if (r < 0)
		return EXIT_INTERNAL;
	if ((status = hist_find("show", s, ref, &mem, &ri)) != EXIT_OK)
		goto out;
	if ((r = s->ops->tasks(s, ri.key, &mem, &t, &nt, &err)) < 0 ||
	    (c.json && (r = s->ops->attempts(s, ri.key, STORE_ALL_TASKS, &mem, &att, &na,
					     &err)) < 0)) {
		hist_say("show", err ? err : strerror(-r));
		status = EXIT_INTERNAL;
		goto out;
	}
	/* What was running when its dagrun died was cut short. */
	for (size_t i = 0; ri.status == STORE_RUN_INTERRUPTED && i < nt; i++)
		if (t[i].status == STORE_TASK_RUNNING)
			t[i].status = STORE_TASK_INTERRUPTED;
	for (size_t i = 0; ri.status == STORE_RUN_INTERRUPTED && i < na; i++)
		if (!att[i].ended)
			att[i].flags |= STORE_ATTEMPT_INTERRUPTED;
	r = c.json ? show_json(s, &ri, t, nt, att, na, &mem, stdout) : show_text(&ri, t, nt, stdout);
	if (r < 0 || fflush(stdout) != 0) {
		fprintf(stderr, "dagrun show: cannot write: %s\n",
			r < 0 ? strerror(ENOMEM) : strerror(errno));
		status = EXIT_INTERNAL;
	}
out:
	free(err);
	arena_free(&mem);
	store_close(s);
	return status;
}
