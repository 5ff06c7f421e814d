/* cache.c: `dagrun cache clear [WORKFLOW [TASK]]` and `dagrun explain TASK
 * [--run RUN] [-f WORKFLOW]` (README "Cache").
 *
 * explain reads the task's cache entries (newest first) and prints the
 * components of the key of one of them (the one RUN wrote, else the newest
 * written by RUN's end, else the newest), marking those that differ from
 * the entry before it. Components are short hashes and names, never a
 * secret's value (engine/cache_key.c). Both open the store as the history
 * commands do; clear writes, explain only reads.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cli/hist.h"
#include "engine/cache.h"

static const char clear_usage[] =
	"usage: dagrun cache clear [--state DIR] [WORKFLOW [TASK]]\n"
	"\n"
	"Removes the cache entries (README \"Cache\") of every workflow, of WORKFLOW,\n"
	"or of one of its tasks: the next run of those tasks runs them. Runs and\n"
	"their results stay.\n"
	"\n"
	"Exit status: 0 done (also when nothing is recorded), 2 usage error,\n"
	"3 the store cannot be written.\n";

static const char explain_usage[] =
	"usage: dagrun explain [OPTIONS] TASK\n"
	"\n"
	"Prints the components of TASK's cache key as recorded (README \"Cache\"),\n"
	"those that differ from the entry before marked with *, and why.\n"
	"\n"
	"      --run RUN          the entry RUN wrote or used (default: the newest)\n"
	"  -f, --file WORKFLOW   the workflow file whose task it is (default: the\n"
	"                         workflow of RUN, else of the last run)\n"
	"      --format F         text (default) or json\n"
	"      --state DIR        the state directory (default: $DAGRUN_STATE, else .dagrun)\n"
	"\n"
	"Exit status: 0 done, 2 usage error or no entry for TASK, 3 the store cannot\n"
	"be read.\n";

static int cache_clear(int argc, char **argv)
{
	static const struct option opts[] = {
		{"help", no_argument, NULL, 'h'},
		{"state", required_argument, NULL, 'S'},
		{0, 0, 0, 0},
	};
	const char *state = NULL;
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'h': fputs(clear_usage, stdout); return EXIT_OK;
		case 'S': state = optarg; break;
		default: fputs(clear_usage, stderr); return EXIT_USAGE;
		}
	}
	if (argc - optind > 2 || (state && !*state)) {
		fputs(clear_usage, stderr);
		return EXIT_USAGE;
	}
	const char *wf = optind < argc ? argv[optind] : NULL;
	const char *task = optind + 1 < argc ? argv[optind + 1] : NULL;
	const char *dir = cli_state_dir(state);
	struct store *st = NULL;
	int r = hist_open("cache clear", dir, true, &st);
	if (r == -ENOENT) {
		printf("cleared 0 cache entries (nothing recorded in %s)\n", dir);
		return EXIT_OK;
	}
	if (r < 0)
		return EXIT_INTERNAL;
	uint64_t n = 0;
	char *err = NULL;
	r = st->ops->cache_clear(st, wf, task, &n, &err);
	if (r < 0)
		hist_say("cache clear", err ? err : strerror(-r));
	else
		printf("cleared %llu cache entr%s\n", (unsigned long long)n, n == 1 ? "y" : "ies");
	free(err);
	store_close(st);
	return r < 0 ? EXIT_INTERNAL : EXIT_OK;
}

int cli_cache(int argc, char **argv)
{
	if (argc >= 2 && !strcmp(argv[1], "clear"))
		return cache_clear(argc - 1, argv + 1);
	if (argc >= 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
		fputs(clear_usage, stdout);
		return EXIT_OK;
	}
	fputs(clear_usage, stderr);
	return EXIT_USAGE;
}

/* ---- explain -------------------------------------------------------------------- */

struct explain_args {
	struct hist_common c;
	const char *task, *run, *file;
};

/* The entry explained: the one `run` wrote, else the newest written by its
 * end (the one it could hit), else the newest. */
static size_t pick(const struct store_cache_entry *v, size_t n, const struct store_run_info *run)
{
	if (!run)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!strcmp(v[i].run_id, run->run_id))
			return i;
	uint64_t end = run->end_ms ? run->end_ms : UINT64_MAX;
	for (size_t i = 0; i < n; i++)
		if (v[i].created_ms <= end)
			return i;
	return 0;
}

static json_t *comp_of(const struct store_cache_entry *e, json_t **hold)
{
	*hold = e && e->parts ? json_loads(e->parts, 0, NULL) : NULL;
	return json_object_get(*hold, "c");
}

static bool in_array(const json_t *a, const char *s)
{
	for (size_t i = 0; i < json_array_size(a); i++)
		if (!strcmp(json_string_value(json_array_get(a, i)), s))
			return true;
	return false;
}

static int print_explain(const struct explain_args *a, const char *workflow,
			 const struct store_cache_entry *e, const struct store_cache_entry *prev)
{
	json_t *hold = NULL, *hold_prev = NULL;
	json_t *c = comp_of(e, &hold), *pc = prev ? comp_of(prev, &hold_prev) : NULL;
	json_t *diff = pc && c ? cache_diff(pc, c) : json_array();
	char *why = pc && c ? cache_reason(pc, c) : NULL;
	int r = 0;
	if (a->c.json) {
		json_t *o = json_object();
		json_object_set_new(o, "workflow", hist_json_str(workflow));
		json_object_set_new(o, "task", hist_json_str(a->task));
		json_object_set_new(o, "run", hist_json_str(e->run_id));
		json_object_set_new(o, "key", hist_json_str(e->key));
		json_object_set_new(o, "created", hist_json_time(e->created_ms));
		json_object_set(o, "components", c ? c : json_null());
		json_object_set_new(o, "previousRun", prev ? hist_json_str(prev->run_id) : json_null());
		json_object_set(o, "changed", diff ? diff : json_null());
		json_object_set_new(o, "reason", why ? hist_json_str(why) : json_null());
		r = hist_json_print(o, stdout);
	} else {
		char tm[64];
		struct hist_table t;
		hist_fmt_time(e->created_ms, tm, sizeof(tm));
		struct buf b = BUF_INIT;
		hist_esc(&b, a->task);
		printf("task %s", b.data ? b.data : "");
		buf_reset(&b);
		hist_esc(&b, workflow);
		printf(" of %s: key %.16s, written by run %s at %s\n", b.data ? b.data : "", e->key,
		       e->run_id, tm);
		buf_free(&b);
		hist_table_init(&t, 3);
		const char *k;
		json_t *v;
		json_object_foreach(c, k, v) {
			hist_table_add_raw(&t, in_array(diff, k) ? "*" : " ");
			hist_table_add(&t, k);
			hist_table_add(&t, json_string_value(v));
		}
		/* removed since the entry before */
		json_object_foreach(pc, k, v) {
			if (json_object_get(c, k))
				continue;
			hist_table_add_raw(&t, "*");
			hist_table_add(&t, k);
			hist_table_add_raw(&t, "(removed)");
		}
		r = hist_table_print(&t, stdout);
		hist_table_free(&t);
		if (!prev)
			printf("no entry before it: the first run of this task under a key\n");
		else if (!json_array_size(diff))
			printf("same components as the entry before (run %s)\n", prev->run_id);
		else
			printf("differs from the entry before (run %s): %s\n", prev->run_id,
			       why ? why : "?");
	}
	free(why);
	json_decref(diff);
	json_decref(hold);
	json_decref(hold_prev);
	return r < 0 ? EXIT_INTERNAL : EXIT_OK;
}

static int explain_args(int argc, char **argv, struct explain_args *a)
{
	static const struct option opts[] = {
		{"help", no_argument, NULL, 'h'},
		{"run", required_argument, NULL, 'r'},
		{"file", required_argument, NULL, 'f'},
		{"format", required_argument, NULL, 'F'},
		{"state", required_argument, NULL, 'S'},
		{0, 0, 0, 0},
	};
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "hf:", opts, NULL)) != -1) {
		switch (c) {
		case 'h': fputs(explain_usage, stdout); return 1;
		case 'r': a->run = optarg; break;
		case 'f': a->file = optarg; break;
		case 'F':
			if (hist_parse_format("explain", optarg, &a->c) < 0)
				return -1;
			break;
		case 'S': a->c.state = optarg; break;
		default: fputs(explain_usage, stderr); return -1;
		}
	}
	if (argc - optind != 1 || (a->c.state && !*a->c.state)) {
		fputs(explain_usage, stderr);
		return -1;
	}
	a->task = argv[optind];
	return 0;
}

int cli_explain(int argc, char **argv)
{
	struct explain_args a = {0};
	int p = explain_args(argc, argv, &a);
	if (p)
		return p > 0 ? EXIT_OK : EXIT_USAGE;
	const char *dir = cli_state_dir(a.c.state);
	struct store *st = NULL;
	struct arena mem = {0};
	dagrun_workflow *wf = NULL;
	char *err = NULL;
	int status = EXIT_USAGE;
	int r = hist_open("explain", dir, false, &st);
	if (r == -ENOENT) {
		hist_none("explain", dir);
		return EXIT_USAGE;
	}
	if (r < 0)
		return EXIT_INTERNAL;
	const char *workflow = NULL;
	struct store_run_info run;
	bool have_run = false;
	if (a.file) {
		if (!(wf = cli_load(a.file, 0, &status)))
			goto out;
		workflow = dagrun_workflow_name(wf);
	}
	if (a.run || !workflow) {
		if ((status = hist_find("explain", st, a.run ? a.run : "last", &mem, &run)) != EXIT_OK)
			goto out;
		have_run = true;
		if (!workflow)
			workflow = run.workflow;
	}
	struct store_cache_entry *v = NULL;
	size_t n = 0;
	if ((r = st->ops->cache_entries(st, workflow, a.task, 0, &mem, &v, &n, &err)) < 0) {
		hist_say("explain", err ? err : strerror(-r));
		status = EXIT_INTERNAL;
		goto out;
	}
	if (!n) {
		struct buf b = BUF_INIT;
		if (!buf_printf(&b, "no cache entry for task '%s' of %s (not run with `cache`, "
				"or cleared)", a.task, workflow))
			hist_say("explain", b.data);
		buf_free(&b);
		status = EXIT_USAGE;
		goto out;
	}
	size_t i = pick(v, n, have_run && a.run ? &run : NULL);
	status = print_explain(&a, workflow, &v[i], i + 1 < n ? &v[i + 1] : NULL);
out:
	free(err);
	arena_free(&mem);
	dagrun_workflow_free(wf);
	store_close(st);
	return status;
}
