/* run.c: `dagrun run FILE`: load, then run with the console and/or the
 * JSON log observing the engine. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

static const char usage[] =
	"usage: dagrun run [OPTIONS] FILE\n"
	"\n"
	"Validates FILE, then runs its tasks in dependency order.\n"
	"\n"
	"  -j, --jobs N             run at most N tasks at once (default: the\n"
	"                           workflow's maxParallel, else the CPU count)\n"
	"      --var NAME=VALUE     override a workflow variable (repeatable)\n"
	"      --secrets-file F     KEY=VALUE lines read as secrets.KEY (mode 600)\n"
	"      --dry-run            print the order tasks would start in (-j 1), run nothing\n"
	"      --log-format F       text (default) or json (one object per line on stderr)\n"
	"      --log-level L        debug, info (default), warn or error\n"
	"  -v, --verbose            also show the tasks' output\n"
	"  -q, --quiet              only failures and the summary\n"
	"      --no-progress        no live status line, even on a terminal\n"
	"      --color WHEN         auto (default), always or never; NO_COLOR is honoured\n"
	"\n"
	"Exit status: 0 all tasks completed or skipped, 1 a task failed,\n"
	"2 usage error or invalid workflow, 3 internal error, 129/130/143 interrupted (SIGHUP/SIGINT/SIGTERM).\n";

struct run_args {
	unsigned jobs;
	int dry_run, verbose, quiet, no_progress, json;
	int level;
	const char *color;
	const char *file;
	const char *secrets_file;
	const char **vars;   /* NULL-terminated, malloc'd */
	size_t n_vars;
};

static int parse_level(const char *s)
{
	if (!strcmp(s, "debug")) return DAGRUN_DEBUG;
	if (!strcmp(s, "info")) return DAGRUN_INFO;
	if (!strcmp(s, "warn")) return DAGRUN_WARN;
	if (!strcmp(s, "error")) return DAGRUN_ERR;
	return -1;
}

static int parse_args(int argc, char **argv, struct run_args *a)
{
	static const struct option opts[] = {
		{"help", no_argument, NULL, 'h'},
		{"jobs", required_argument, NULL, 'j'},
		{"dry-run", no_argument, NULL, 'n'},
		{"log-format", required_argument, NULL, 'F'},
		{"log-level", required_argument, NULL, 'L'},
		{"verbose", no_argument, NULL, 'v'},
		{"quiet", no_argument, NULL, 'q'},
		{"no-progress", no_argument, NULL, 'P'},
		{"color", required_argument, NULL, 'c'},
		{"var", required_argument, NULL, 'V'},
		{"secrets-file", required_argument, NULL, 'S'},
		{0, 0, 0, 0},
	};
	int c;
	char *end;
	optind = 1;
	while ((c = getopt_long(argc, argv, "hj:vq", opts, NULL)) != -1) {
		switch (c) {
		case 'h': fputs(usage, stdout); return 1;
		case 'j': {
			unsigned long v = strtoul(optarg, &end, 10);
			if (*end || !*optarg || v < 1 || v > 100000) {
				fprintf(stderr, "dagrun run: -j takes a number from 1 to 100000\n");
				return -1;
			}
			a->jobs = (unsigned)v;
			break;
		}
		case 'n': a->dry_run = 1; break;
		case 'F':
			if (strcmp(optarg, "text") && strcmp(optarg, "json")) {
				fprintf(stderr, "dagrun run: --log-format is text or json\n");
				return -1;
			}
			a->json = !strcmp(optarg, "json");
			break;
		case 'L':
			if ((a->level = parse_level(optarg)) < 0) {
				fprintf(stderr, "dagrun run: --log-level is debug, info, warn or error\n");
				return -1;
			}
			break;
		case 'V': {
			const char **v = realloc(a->vars, (a->n_vars + 2) * sizeof(*v));
			if (!v)
				return -1;
			a->vars = v;
			v[a->n_vars++] = optarg;
			v[a->n_vars] = NULL;
			break;
		}
		case 'S': a->secrets_file = optarg; break;
		case 'v': a->verbose = 1; break;
		case 'q': a->quiet = 1; break;
		case 'P': a->no_progress = 1; break;
		case 'c':
			if (strcmp(optarg, "auto") && strcmp(optarg, "always") && strcmp(optarg, "never")) {
				fprintf(stderr, "dagrun run: --color is auto, always or never\n");
				return -1;
			}
			a->color = optarg;
			break;
		default: return -1;
		}
	}
	if (optind != argc - 1) {
		fputs(usage, stderr);
		return -1;
	}
	a->file = argv[optind];
	return 0;
}

int cli_run(int argc, char **argv)
{
	struct run_args a = {.level = DAGRUN_INFO, .color = "auto"};
	int r = parse_args(argc, argv, &a);
	if (r) {
		free(a.vars);
		return r > 0 ? EXIT_OK : EXIT_USAGE;
	}
	int color = cli_use_color(a.color, stderr);
	int status = EXIT_OK;
	dagrun_workflow *wf = cli_load(a.file, color, &status);
	if (!wf) {
		free(a.vars);
		return status;
	}
	dagrun_diags *d = dagrun_diags_new(0);
	dagrun_engine *e = NULL;
	dagrun_console *con = NULL;
	dagrun_jsonlog *log = NULL;
	/* The command line owns its process: it reaps and kills what escapes
	 * the tasks' groups, and Ctrl-C, SIGTERM and SIGHUP stop the run. */
	dagrun_run_opts ro = {.max_parallel = a.jobs, .vars = a.vars,
			      .secrets_file = a.secrets_file,
			      .process_flags = DAGRUN_PROC_SUBREAPER | DAGRUN_PROC_SIGNALS};
	r = d ? dagrun_engine_new(&e, wf, &ro, d) : -ENOMEM;
	if (r < 0) {
		dagrun_diags_print(d, stderr, color);
		if (r != -ENOTSUP && r != -EINVAL)
			fprintf(stderr, "dagrun run: %s\n", strerror(-r));
		status = r == -ENOTSUP || r == -EINVAL ? EXIT_USAGE : EXIT_INTERNAL;
		goto out;
	}
	if (a.dry_run) {
		status = dagrun_engine_plan(e, stdout) < 0 ? EXIT_INTERNAL : EXIT_OK;
		goto out;
	}
	/* From here until the observers are freed, stderr belongs to them
	 * (their writer thread); see dagrun_console_new. */
	if (a.json) {
		log = dagrun_jsonlog_new(stderr, a.level);
		r = log ? dagrun_engine_observe(e, dagrun_jsonlog_event, log) : -errno;
	} else {
		int flags = (color ? DAGRUN_CONSOLE_COLOR : 0) |
			    (a.quiet ? DAGRUN_CONSOLE_QUIET : 0) |
			    (a.verbose || a.level == DAGRUN_DEBUG ? DAGRUN_CONSOLE_VERBOSE : 0);
		if (!a.no_progress && !a.quiet && isatty(fileno(stderr)))
			flags |= DAGRUN_CONSOLE_LIVE;
		con = dagrun_console_new(stderr, flags);
		r = con ? dagrun_engine_observe(e, dagrun_console_event, con) : -errno;
	}
	if (r < 0) {
		dagrun_console_free(con);
		dagrun_jsonlog_free(log);
		con = NULL;
		log = NULL;
		fprintf(stderr, "dagrun run: cannot set up the display: %s\n",
			strerror(-r));
		status = EXIT_INTERNAL;
		goto out;
	}
	/* A reader of our output that went away (`dagrun run ... | head`) is
	 * not a reason to die and orphan the tasks: writes fail with EPIPE and
	 * the run goes on to its end. Tasks get the default back (proc_spawn.c). A
	 * dry run keeps the default: it has nothing to protect. */
	signal(SIGPIPE, SIG_IGN);
	r = dagrun_engine_run(e);
	/* The observers write what they still hold before anything else
	 * goes to stderr. */
	dagrun_engine_free(e);
	e = NULL;
	dagrun_console_free(con);
	dagrun_jsonlog_free(log);
	con = NULL;
	log = NULL;
	if (r < 0) {
		fprintf(stderr, "dagrun run: internal error: %s\n", strerror(-r));
		status = EXIT_INTERNAL;
	} else {
		status = r;
	}
out:
	dagrun_engine_free(e);
	dagrun_console_free(con);
	dagrun_jsonlog_free(log);
	dagrun_diags_free(d);
	dagrun_workflow_free(wf);
	free(a.vars);
	return status;
}
