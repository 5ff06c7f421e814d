/* runs.c: `dagrun runs` (past and live runs, newest first), read from the
 * state store (`dagrun show RUN` is in show.c).
 *
 * It opens the store read-only (it never writes, never creates the state
 * directory) and makes one query, a consistent snapshot. A run recorded as
 * running whose owner is gone shows as interrupted (the store computes it
 * from the lease).
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cli/hist.h"

#define RUNS_LIMIT_DEFAULT 20u
#define RUNS_LIMIT_MAX 100000000u

static const char runs_usage[] =
	"usage: dagrun runs [OPTIONS] [WORKFLOW]\n"
	"\n"
	"Lists past and live runs recorded in the state directory, newest first\n"
	"(of WORKFLOW only, when given): id, workflow, status, start (local time),\n"
	"duration and the tasks' counts by status. A run whose dagrun died without\n"
	"ending it shows as interrupted.\n"
	"\n"
	"      --status S      only runs with status S: running, completed, failed,\n"
	"                      cancelled or interrupted\n"
	"  -n, --limit N       at most N runs (default 20; 0: all)\n"
	"      --format F      text (default) or json\n"
	"      --state DIR     the state directory (default: $DAGRUN_STATE, else .dagrun)\n"
	"\n"
	"Exit status: 0 listed (also when nothing is recorded), 2 usage error,\n"
	"3 the store cannot be read.\n";

static int parse_run_status(const char *s)
{
	for (int i = 0; i < STORE_RUN_NSTATUS; i++)
		if (!strcmp(s, store_run_status_name(i)))
			return i;
	return -1;
}

static int parse_limit(const char *s, uint32_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (!*s || *end || *s == '-' || errno || v > RUNS_LIMIT_MAX)
		return -1;
	*out = (uint32_t)v;
	return 0;
}

/* ---- dagrun runs -------------------------------------------------------------- */

struct runs_args {
	struct hist_common c;
	const char *workflow;
	int status;
	uint32_t limit;
};

static int runs_parse(int argc, char **argv, struct runs_args *a)
{
	static const struct option opts[] = {
		{"help", no_argument, NULL, 'h'},
		{"status", required_argument, NULL, 's'},
		{"limit", required_argument, NULL, 'n'},
		{"format", required_argument, NULL, 'f'},
		{"state", required_argument, NULL, 'S'},
		{0, 0, 0, 0},
	};
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "hn:", opts, NULL)) != -1) {
		switch (c) {
		case 'h': fputs(runs_usage, stdout); return 1;
		case 's':
			if ((a->status = parse_run_status(optarg)) < 0) {
				fprintf(stderr, "dagrun runs: --status is running, completed, failed, "
					"cancelled or interrupted\n");
				return -1;
			}
			break;
		case 'n':
			if (parse_limit(optarg, &a->limit) < 0) {
				fprintf(stderr, "dagrun runs: --limit takes a number from 0 (all) to %u\n",
					RUNS_LIMIT_MAX);
				return -1;
			}
			break;
		case 'f':
			if (hist_parse_format("runs", optarg, &a->c) < 0)
				return -1;
			break;
		case 'S': a->c.state = optarg; break;
		default: fputs(runs_usage, stderr); return -1;
		}
	}
	return hist_operands("runs", argc, argv, runs_usage, &a->c, &a->workflow);
}

/* Duration of a run for the table: to its end, or so far while it runs. */
static void run_duration(const struct store_run_info *r, uint64_t now, char *buf, size_t n)
{
	if (r->end_ms && r->end_ms >= r->start_ms)
		hist_fmt_ms(r->end_ms - r->start_ms, buf, n);
	else if (r->status == STORE_RUN_RUNNING && now >= r->start_ms)
		hist_fmt_ms(now - r->start_ms, buf, n);
	else
		snprintf(buf, n, "-");
}

static int runs_text(const struct store_run_info *v, size_t n, FILE *f)
{
	struct hist_table t;
	struct buf b = BUF_INIT;
	uint64_t now = hist_now_ms();
	char tm[64], dur[32], id[128];
	hist_table_init(&t, 6);
	const char *head[] = {"RUN", "WORKFLOW", "STATUS", "STARTED", "DURATION", "TASKS"};
	for (size_t i = 0; i < 6; i++)
		hist_table_add_raw(&t, head[i]);
	for (size_t i = 0; i < n; i++) {
		const struct store_run_info *r = &v[i];
		if (r->replay_of) {
			snprintf(id, sizeof(id), "%.64s (replay of %.40s)", r->run_id, r->replay_of);
			hist_table_add(&t, id);
		} else if (r->run_attempt > 1) {
			snprintf(id, sizeof(id), "%.64s #%u", r->run_id, r->run_attempt);
			hist_table_add(&t, id);
		} else {
			hist_table_add(&t, r->run_id);
		}
		hist_table_add(&t, r->workflow);
		hist_table_add_raw(&t, store_run_status_name(r->status));
		hist_fmt_time(r->start_ms, tm, sizeof(tm));
		hist_table_add_raw(&t, tm);
		run_duration(r, now, dur, sizeof(dur));
		hist_table_add_raw(&t, dur);
		buf_reset(&b);
		if (hist_counts(&b, r->counts) < 0)
			t.err = -ENOMEM;
		hist_table_add_raw(&t, b.data);
	}
	int e = hist_table_print(&t, f);
	hist_table_free(&t);
	buf_free(&b);
	return e;
}

/* {"runs": [...], "more": B}, made a run at a time and written in large
 * pieces (10,000 runs held as one JSON tree, or written token by token,
 * would cost more than the query). */
static int runs_json(const struct store_run_info *v, size_t n, bool more, FILE *f)
{
	struct buf tmp = BUF_INIT, out = BUF_INIT;
	int e = buf_adds(&out, n ? "{\n  \"runs\": [\n" : "{\n  \"runs\": [],\n") < 0;
	for (size_t i = 0; !e && i < n; i++) {
		e |= buf_adds(&out, "    ") < 0;
		e |= hist_json_item(hist_json_run(&v[i]), 2, &tmp, &out) < 0;
		e |= buf_adds(&out, i + 1 < n ? ",\n" : "\n  ],\n") < 0;
		if (!e && out.len >= ((size_t)1 << 20)) {
			e = fwrite(out.data, 1, out.len, f) != out.len;
			buf_reset(&out);
		}
	}
	if (!e)
		e = buf_printf(&out, "  \"more\": %s\n}\n", more ? "true" : "false") < 0;
	if (!e)
		e = fwrite(out.data, 1, out.len, f) != out.len;
	buf_free(&tmp);
	buf_free(&out);
	return e ? -1 : 0;
}

/* Says on stderr that no run matched. */
static int say_empty(const struct runs_args *a, const char *dir)
{
	struct buf b = BUF_INIT;
	int e = buf_adds(&b, "no runs");
	if (a->workflow)
		e |= buf_printf(&b, " of workflow '%s'", a->workflow);
	if (a->status >= 0)
		e |= buf_printf(&b, " with status %s", store_run_status_name(a->status));
	e |= buf_printf(&b, " in %s", dir);
	if (!e)
		hist_say("runs", b.data);
	buf_free(&b);
	return e ? -ENOMEM : 0;
}

int cli_runs(int argc, char **argv)
{
	struct runs_args a = {.status = -1, .limit = RUNS_LIMIT_DEFAULT};
	int r = runs_parse(argc, argv, &a);
	if (r)
		return r > 0 ? EXIT_OK : EXIT_USAGE;
	const char *dir = cli_state_dir(a.c.state);
	struct store *s = NULL;
	struct arena mem = ARENA_INIT;
	struct store_run_info *v = NULL;
	size_t n = 0;
	bool more = false;
	int status = EXIT_OK;
	if ((r = hist_open("runs", dir, false, &s)) == -ENOENT) {
		hist_none("runs", dir);
		r = 0;   /* nothing recorded: an empty list */
	} else if (r < 0) {
		return EXIT_INTERNAL;
	} else {
		/* One more than asked, to tell whether there are more. */
		struct store_run_filter flt = {.workflow = a.workflow, .status = a.status,
					       .limit = a.limit ? a.limit + 1 : 0};
		char *err = NULL;
		if ((r = s->ops->list_runs(s, &flt, &mem, &v, &n, &err)) < 0) {
			hist_say("runs", err ? err : strerror(-r));
			free(err);
			status = EXIT_INTERNAL;
			goto out;
		}
		if (a.limit && n > a.limit) {
			more = true;
			n = a.limit;
		}
		for (size_t i = 0; i < n; i++)
			hist_run_settle(&v[i]);
	}
	if (a.c.json)
		r = runs_json(v, n, more, stdout);
	else if (n)
		r = runs_text(v, n, stdout);
	else if (s)
		r = say_empty(&a, dir);
	if (!a.c.json && more)
		fprintf(stderr, "(the newest %u runs; --limit N shows more, --limit 0 all)\n",
			a.limit);
	if (r < 0 || fflush(stdout) != 0) {
		fprintf(stderr, "dagrun runs: cannot write the list: %s\n",
			r == -ENOMEM ? strerror(ENOMEM) : strerror(errno));
		status = EXIT_INTERNAL;
	}
out:
	arena_free(&mem);
	store_close(s);
	return status;
}
