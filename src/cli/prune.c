/* prune.c: `dagrun prune [WORKFLOW] [--keep N] [--older-than AGE]
 * [--dry-run]`: retention, by hand.
 *
 * Without options it applies the default policy (the one applied when a
 * run starts: the newest 1000 runs of each workflow, 90 days); --keep and
 * --older-than replace one part each (0 turns it off). The store removes
 * whole run ids with their logs, never a run whose dagrun is alive. What
 * goes is listed with its workflow, status and start, read before the
 * removal (a run recorded meanwhile is not listed by workflow: its id
 * still is). A dry run opens the store read-only and changes nothing; a
 * missing state directory is reported, never created.
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
	"usage: dagrun prune [OPTIONS] [WORKFLOW]\n"
	"\n"
	"Removes old runs (every attempt of a run id, with its logs) from the state\n"
	"directory, of WORKFLOW only when given, and lists them. A run whose dagrun\n"
	"is alive is never removed. Without options: the default policy, the newest\n"
	"1000 runs of each workflow and 90 days.\n"
	"\n"
	"      --keep N           keep the newest N runs of each workflow (0: no limit\n"
	"                         by count; default 1000)\n"
	"      --older-than AGE   remove runs started more than AGE ago: a duration\n"
	"                         such as 30d, 12h, 1d12h (0: no limit by age;\n"
	"                         default 90d)\n"
	"  -n, --dry-run          list what would be removed, remove nothing\n"
	"      --format F         text (default) or json\n"
	"      --state DIR        the state directory (default: $DAGRUN_STATE, else .dagrun)\n"
	"\n"
	"Exit status: 0 done (also when nothing is recorded), 2 usage error,\n"
	"3 the store cannot be read or written.\n";

struct prune_args {
	struct hist_common c;
	const char *workflow;
	uint32_t keep;
	uint64_t older_than_ms;
	bool dry_run;
};

static int parse_keep(const char *s, uint32_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (!*s || *end || *s == '-' || errno || v > UINT32_MAX)
		return -1;
	*out = (uint32_t)v;
	return 0;
}

static int parse_args(int argc, char **argv, struct prune_args *a)
{
	static const struct option opts[] = {
		{"help", no_argument, NULL, 'h'},
		{"keep", required_argument, NULL, 'k'},
		{"older-than", required_argument, NULL, 'o'},
		{"dry-run", no_argument, NULL, 'n'},
		{"format", required_argument, NULL, 'f'},
		{"state", required_argument, NULL, 'S'},
		{0, 0, 0, 0},
	};
	int c;
	const char *why;
	optind = 1;
	while ((c = getopt_long(argc, argv, "hn", opts, NULL)) != -1) {
		switch (c) {
		case 'h': fputs(usage, stdout); return 1;
		case 'k':
			if (parse_keep(optarg, &a->keep) < 0) {
				fprintf(stderr, "dagrun prune: --keep takes a number from 0 (no limit) "
					"to %u\n", UINT32_MAX);
				return -1;
			}
			break;
		case 'o':
			if (duration_parse(optarg, strlen(optarg), &a->older_than_ms, &why) < 0) {
				struct buf b = BUF_INIT;
				if (!buf_printf(&b, "invalid duration '%s' for --older-than: %s",
						optarg, why))
					hist_say("prune", b.data);
				buf_free(&b);
				return -1;
			}
			break;
		case 'n': a->dry_run = true; break;
		case 'f':
			if (hist_parse_format("prune", optarg, &a->c) < 0)
				return -1;
			break;
		case 'S': a->c.state = optarg; break;
		default: fputs(usage, stderr); return -1;
		}
	}
	return hist_operands("prune", argc, argv, usage, &a->c, &a->workflow);
}

static int by_id(const void *x, const void *y)
{
	const struct store_run_info *a = x, *b = y;
	int c = strcmp(a->run_id, b->run_id);
	if (c)
		return c;
	/* The newest attempt of an id first. */
	return a->run_attempt > b->run_attempt ? -1 : a->run_attempt < b->run_attempt;
}

/* The newest attempt of run id `id` in v (sorted by by_id), or NULL. */
static const struct store_run_info *lookup(const struct store_run_info *v, size_t n,
					   const char *id)
{
	size_t lo = 0, hi = n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(v[mid].run_id, id);
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < n && !strcmp(v[lo].run_id, id) ? &v[lo] : NULL;
}

static int print_text(const struct prune_args *a, const struct store_prune_result *res,
		      const struct store_run_info *v, size_t n, FILE *f)
{
	struct hist_table t;
	char tm[64], sz[32];
	hist_table_init(&t, 5);
	for (uint32_t i = 0; i < res->runs; i++) {
		const struct store_run_info *r = lookup(v, n, res->run_ids[i]);
		hist_table_add_raw(&t, a->dry_run ? "would remove" : "removed");
		hist_table_add(&t, res->run_ids[i]);
		hist_table_add(&t, r ? r->workflow : "");
		hist_table_add_raw(&t, r ? store_run_status_name(r->status) : "");
		hist_fmt_time(r ? r->start_ms : 0, tm, sizeof(tm));
		hist_table_add_raw(&t, r ? tm : "");
	}
	int e = hist_table_print(&t, f);
	hist_table_free(&t);
	text_fmt_bytes(res->log_bytes, sz, sizeof(sz));
	if (a->dry_run)
		fprintf(f, "would remove %u run%s (%s of logs); nothing removed (--dry-run)\n",
			res->runs, res->runs == 1 ? "" : "s", sz);
	else
		fprintf(f, "removed %u run%s (%s of logs)\n", res->runs,
			res->runs == 1 ? "" : "s", sz);
	return e;
}

static int print_json(const struct prune_args *a, const struct store_prune_result *res,
		      const struct store_run_info *v, size_t n, FILE *f)
{
	json_t *o = json_object(), *runs = json_array();
	int e = !o || !runs;
	for (uint32_t i = 0; !e && i < res->runs; i++) {
		const struct store_run_info *r = lookup(v, n, res->run_ids[i]);
		json_t *j = json_object();
		e = !j;
		if (j) {
			e |= json_object_set_new(j, "id", hist_json_str(res->run_ids[i]));
			e |= json_object_set_new(j, "workflow", hist_json_str(r ? r->workflow : NULL));
			e |= json_object_set_new(j, "status", r ? json_string(store_run_status_name(r->status))
								: json_null());
			e |= json_object_set_new(j, "start", hist_json_time(r ? r->start_ms : 0));
			e |= json_array_append_new(runs, j);
		}
	}
	if (!e) {
		e |= json_object_set_new(o, "dryRun", json_boolean(a->dry_run));
		e |= json_object_set_new(o, "keep", json_integer(a->keep));
		e |= json_object_set_new(o, "olderThanMs", json_integer((json_int_t)a->older_than_ms));
		e |= json_object_set_new(o, "removed", runs);
		runs = NULL;
		e |= json_object_set_new(o, "logBytes", json_integer((json_int_t)res->log_bytes));
	}
	json_decref(runs);
	if (e) {
		json_decref(o);
		return -1;
	}
	return hist_json_print(o, f);
}

int cli_prune(int argc, char **argv)
{
	struct prune_args a = {.keep = STORE_KEEP_DEFAULT, .older_than_ms = STORE_MAX_AGE_MS_DEFAULT};
	int r = parse_args(argc, argv, &a);
	if (r)
		return r > 0 ? EXIT_OK : EXIT_USAGE;
	const char *dir = cli_state_dir(a.c.state);
	struct store *s = NULL;
	struct arena mem = ARENA_INIT;
	struct store_run_info *v = NULL;
	struct store_prune_result res = {0};
	size_t n = 0;
	char *err = NULL;
	int status = EXIT_OK;
	if ((r = hist_open("prune", dir, !a.dry_run, &s)) == -ENOENT) {
		hist_none("prune", dir);
		r = 0;   /* nothing to remove */
	} else if (r < 0) {
		return EXIT_INTERNAL;
	} else {
		/* What each run was, for the list: read before it goes. */
		struct store_run_filter flt = {.workflow = a.workflow, .status = -1};
		if ((r = s->ops->list_runs(s, &flt, &mem, &v, &n, &err)) < 0)
			goto fail;
		qsort(v, n, sizeof(*v), by_id);
		struct store_prune_opts po = {.workflow = a.workflow, .keep = a.keep,
					      .older_than_ms = a.older_than_ms,
					      .now_ms = hist_now_ms(), .dry_run = a.dry_run};
		if ((r = s->ops->prune(s, &po, &mem, &res, &err)) < 0)
			goto fail;
	}
	r = a.c.json ? print_json(&a, &res, v, n, stdout) : print_text(&a, &res, v, n, stdout);
	if (r < 0 || fflush(stdout) != 0) {
		fprintf(stderr, "dagrun prune: cannot write: %s\n",
			r < 0 ? strerror(ENOMEM) : strerror(errno));
		status = EXIT_INTERNAL;
	}
	goto out;
fail:
	hist_say("prune", err ? err : strerror(-r));
	status = EXIT_INTERNAL;
out:
	free(err);
	arena_free(&mem);
	if (store_close(s) < 0 && status == EXIT_OK) {
		fprintf(stderr, "dagrun prune: the store failed while closing\n");
		status = EXIT_INTERNAL;
	}
	return status;
}
