/* run.c: `dagrun run FILE`: load, then run with the console and/or the
 * JSON log observing the engine. What run, resume and rerun share (the
 * display options, -j, --var, --secrets-file, the state directory, and
 * running an engine with observers) is here too: cli_exec_*. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "sched/resume.h"
#include "util/file.h"

static const char usage[] =
	"usage: dagrun run [OPTIONS] FILE\n"
	"\n"
	"Validates FILE, then runs its tasks in dependency order, recording the run\n"
	"in the state directory (see --state).\n"
	"\n"
	"  -j, --jobs N             run at most N tasks at once (default: the\n"
	"                           workflow's maxParallel, else the CPU count)\n"
	"      --var NAME=VALUE     override a workflow variable (repeatable)\n"
	"      --secrets-file F     KEY=VALUE lines read as secrets.KEY (mode 600)\n"
	"      --dry-run            print the order tasks would start in (-j 1), run nothing\n"
	"      --run-id ID          the new run's id (1 to 64 of A-Z a-z 0-9 . _ -, not\n"
	"                           starting with . or -; default: generated)\n"
	"      --trigger-file F     JSON read as the run's trigger.body (as `dagrun serve`\n"
	"                           passes the body of a webhook; default: null)\n"
	"      --no-cache           run every task: no cache hit (entries are still\n"
	"                           written; README \"Cache\")\n"
	"      --trace FILE         at the end, write the run as Chrome trace-event JSON\n"
	"                           (Perfetto, chrome://tracing; `-`: standard output),\n"
	"                           as `dagrun trace RUN` does: read from the state\n"
	"                           directory, so not with --no-state\n"
	CLI_EXEC_HELP
	"\n"
	"Exit status: 0 all tasks completed or skipped, 1 a task failed,\n"
	"2 usage error or invalid workflow, 3 internal or state store error,\n"
	"129/130/143 interrupted (SIGHUP/SIGINT/SIGTERM), 138 cancelled (SIGUSR1: the\n"
	"run is recorded cancelled, not resumable).\n";

static int parse_level(const char *s)
{
	if (!strcmp(s, "debug")) return DAGRUN_DEBUG;
	if (!strcmp(s, "info")) return DAGRUN_INFO;
	if (!strcmp(s, "warn")) return DAGRUN_WARN;
	if (!strcmp(s, "error")) return DAGRUN_ERR;
	return -1;
}

/* "64M", "1G", "4096": bytes; 0 on a bad size. */
static uint64_t parse_size(const char *s)
{
	char *end;
	unsigned long long v = strtoull(s, &end, 10);
	if (end == s)
		return 0;
	int shift = 0;
	switch (*end) {
	case 'k': case 'K': shift = 10; end++; break;
	case 'm': case 'M': shift = 20; end++; break;
	case 'g': case 'G': shift = 30; end++; break;
	default: break;
	}
	if (*end == 'i' && shift)
		end++;
	if (*end == 'B' || *end == 'b')
		end++;
	if (*end || v > (UINT64_MAX >> shift))
		return 0;
	return (uint64_t)v << shift;
}

int cli_exec_option(struct cli_exec *x, int c, const char *arg, const char *cmd)
{
	char *end;
	switch (c) {
	case 'j': {
		unsigned long v = strtoul(arg, &end, 10);
		if (*end || !*arg || v < 1 || v > 100000) {
			fprintf(stderr, "dagrun %s: -j takes a number from 1 to 100000\n", cmd);
			return -1;
		}
		x->jobs = (unsigned)v;
		return 1;
	}
	case CLI_OPT_LOG_FORMAT:
		if (strcmp(arg, "text") && strcmp(arg, "json")) {
			fprintf(stderr, "dagrun %s: --log-format is text or json\n", cmd);
			return -1;
		}
		x->json = !strcmp(arg, "json");
		return 1;
	case CLI_OPT_LOG_LEVEL:
		if ((x->level = parse_level(arg)) < 0) {
			fprintf(stderr, "dagrun %s: --log-level is debug, info, warn or error\n", cmd);
			return -1;
		}
		return 1;
	case CLI_OPT_VAR: {
		const char **v = realloc(x->vars, (x->n_vars + 2) * sizeof(*v));
		if (!v)
			return -1;
		x->vars = v;
		v[x->n_vars++] = arg;
		v[x->n_vars] = NULL;
		return 1;
	}
	case CLI_OPT_SECRETS: x->secrets_file = arg; return 1;
	case 'v': x->verbose = 1; return 1;
	case 'q': x->quiet = 1; return 1;
	case CLI_OPT_NO_PROGRESS: x->no_progress = 1; return 1;
	case CLI_OPT_COLOR:
		if (strcmp(arg, "auto") && strcmp(arg, "always") && strcmp(arg, "never")) {
			fprintf(stderr, "dagrun %s: --color is auto, always or never\n", cmd);
			return -1;
		}
		x->color = arg;
		return 1;
	case CLI_OPT_STATE:
		if (!*arg) {
			fprintf(stderr, "dagrun %s: --state needs a directory\n", cmd);
			return -1;
		}
		x->state = arg;
		return 1;
	case CLI_OPT_NO_STATE: x->no_state = 1; return 1;
	case CLI_OPT_DURABLE: x->durable = 1; return 1;
	case CLI_OPT_LOG_CAP:
		if (!(x->log_cap = parse_size(arg))) {
			fprintf(stderr, "dagrun %s: --log-cap takes a size in bytes above 0 (suffixes "
				"K, M, G)\n", cmd);
			return -1;
		}
		return 1;
	default:
		return 0;
	}
}

void cli_exec_free(struct cli_exec *x)
{
	free(x->vars);
	x->vars = NULL;
	free(x->trigger_json);
	x->trigger_json = NULL;
}

/* The workflow file's text, for the run's snapshot (at most the loader's
 * limit; a pipe is read to its end). Returns 0 or -errno. */
static int read_text(const char *path, char **text, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	size_t cap = 65536, n = 0;
	struct stat sb;
	if (fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode) && sb.st_size > 0 &&
	    (uint64_t)sb.st_size < DAGRUN_MAX_FILE_BYTES)
		cap = (size_t)sb.st_size + 1;
	char *b = malloc(cap);
	int r = 0;
	while (b) {
		if (n == cap) {
			if (cap > DAGRUN_MAX_FILE_BYTES) {
				r = -EFBIG;
				break;
			}
			char *nb = realloc(b, cap * 2);
			if (!nb)
				break;
			b = nb;
			cap *= 2;
		}
		ssize_t got = read(fd, b + n, cap - n);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			r = -errno;
			break;
		}
		if (got == 0) {
			close(fd);
			*text = b;
			*len = n;
			return 0;
		}
		n += (size_t)got;
	}
	close(fd);
	free(b);
	return r ? r : -ENOMEM;
}

dagrun_workflow *cli_load_snapshot(const char *path, int color, int *status, char **text,
				   size_t *len)
{
	int r = read_text(path, text, len);
	if (r == -EFBIG)
		return cli_load(path, color, status);   /* the loader says why */
	if (r < 0) {
		fprintf(stderr, "%s: error: cannot read %s: %s\n", path, path, strerror(-r));
		*status = EXIT_USAGE;
		return NULL;
	}
	dagrun_workflow *wf = cli_load_buffer(path, *text, *len, color, status);
	if (!wf) {
		free(*text);
		*text = NULL;
	}
	return wf;
}

/* Keeps the id of the run being executed (the first event's), for
 * --trace. */
static void keep_run_id(void *ud, const dagrun_event *ev)
{
	char **id = ud;
	if (!*id && ev->run_id)
		*id = strdup(ev->run_id);   /* NULL: said at the end */
}

/* Writes the trace of the run just executed (x->trace), as `dagrun trace`
 * would; status: the run's exit status. Returns the exit status: the
 * run's, or EXIT_INTERNAL when the run succeeded but its trace could not be
 * written (said on stderr). */
static int write_trace(struct cli_exec *x, const char *cmd, const char *run_id, int status)
{
	if (!run_id) {
		fprintf(stderr, "dagrun %s: no trace written: the run did not start\n", cmd);
		return status == EXIT_OK ? EXIT_INTERNAL : status;
	}
	int r = cli_trace_run(cmd, x->state, run_id, x->trace);
	return r != EXIT_OK && status == EXIT_OK ? EXIT_INTERNAL : status;
}

/* Prints why the engine failed (its message names the file at fault). */
static void say_error(const char *cmd, dagrun_engine *e, int r)
{
	const char *m = e ? dagrun_engine_error(e) : NULL;
	if (m)
		fprintf(stderr, "dagrun %s: %s\n", cmd, m);
	else
		fprintf(stderr, "dagrun %s: internal error: %s\n", cmd, strerror(-r));
}

int cli_execute(struct cli_exec *x, const char *cmd, dagrun_workflow *wf,
		const char *text, size_t len, const char *run_id,
		const struct cont_opts *cont)
{
	int color = cli_use_color(x->color, stderr);
	dagrun_diags *d = dagrun_diags_new(0);
	dagrun_engine *e = NULL;
	dagrun_console *con = NULL;
	dagrun_jsonlog *log = NULL;
	char *run_id_seen = NULL;
	int status = EXIT_OK;
	/* The command line owns its process: it reaps and kills what escapes
	 * the tasks' groups, and Ctrl-C, SIGTERM and SIGHUP stop the run. */
	dagrun_run_opts ro = {.max_parallel = x->jobs, .vars = x->vars,
			      .secrets_file = x->secrets_file, .run_id = run_id,
			      .process_flags = DAGRUN_PROC_SUBREAPER | DAGRUN_PROC_SIGNALS,
			      .state_dir = x->no_state ? NULL : cli_state_dir(x->state),
			      .durable = x->durable, .log_cap = x->log_cap,
			      .definition = text, .definition_len = len,
			      .trigger_json = x->trigger_json, .no_cache = x->no_cache};
	int r = d ? dagrun_engine_new(&e, wf, &ro, d) : -ENOMEM;
	if (r < 0) {
		dagrun_diags_print(d, stderr, color);
		if (r != -ENOTSUP && r != -EINVAL)
			fprintf(stderr, "dagrun %s: %s\n", cmd, strerror(-r));
		status = r == -ENOTSUP || r == -EINVAL ? EXIT_USAGE : EXIT_INTERNAL;
		goto out;
	}
	if (cont && (r = engine_set_continue(e, cont)) < 0) {
		fprintf(stderr, "dagrun %s: %s\n", cmd, strerror(-r));
		status = EXIT_INTERNAL;
		goto out;
	}
	if (x->dry_run) {
		r = dagrun_engine_plan(e, stdout);
		if (r < 0)
			say_error(cmd, e, r);
		status = r < 0 ? EXIT_INTERNAL : EXIT_OK;
		goto out;
	}
	/* From here until the observers are freed, stderr belongs to them
	 * (their writer thread); see dagrun_console_new. */
	if (x->json) {
		log = dagrun_jsonlog_new(stderr, x->level);
		r = log ? dagrun_engine_observe(e, dagrun_jsonlog_event, log) : -errno;
	} else {
		int flags = (color ? DAGRUN_CONSOLE_COLOR : 0) |
			    (x->quiet ? DAGRUN_CONSOLE_QUIET : 0) |
			    (x->verbose || x->level == DAGRUN_DEBUG ? DAGRUN_CONSOLE_VERBOSE : 0);
		if (!x->no_progress && !x->quiet && isatty(fileno(stderr)))
			flags |= DAGRUN_CONSOLE_LIVE;
		con = dagrun_console_new(stderr, flags);
		r = con ? dagrun_engine_observe(e, dagrun_console_event, con) : -errno;
	}
	if (r < 0) {
		dagrun_console_free(con);
		dagrun_jsonlog_free(log);
		con = NULL;
		log = NULL;
		fprintf(stderr, "dagrun %s: cannot set up the display: %s\n", cmd, strerror(-r));
		status = EXIT_INTERNAL;
		goto out;
	}
	if (x->trace && (r = dagrun_engine_observe(e, keep_run_id, &run_id_seen)) < 0) {
		fprintf(stderr, "dagrun %s: cannot set up the trace: %s\n", cmd, strerror(-r));
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
	 * goes to stderr; the engine's message outlives its loop. */
	char *why = r < 0 && dagrun_engine_error(e) ? strdup(dagrun_engine_error(e)) : NULL;
	dagrun_engine_free(e);
	e = NULL;
	dagrun_console_free(con);
	dagrun_jsonlog_free(log);
	con = NULL;
	log = NULL;
	if (r < 0) {
		if (why)
			fprintf(stderr, "dagrun %s: %s\n", cmd, why);
		else
			fprintf(stderr, "dagrun %s: internal error: %s\n", cmd, strerror(-r));
		status = EXIT_INTERNAL;
	} else {
		status = r;
	}
	free(why);
	if (x->trace)
		status = write_trace(x, cmd, run_id_seen, status);
out:
	free(run_id_seen);
	dagrun_engine_free(e);
	dagrun_console_free(con);
	dagrun_jsonlog_free(log);
	dagrun_diags_free(d);
	return status;
}

/* --trigger-file F: its text, at most DAGRUN_TRIGGER_MAX bytes (the
 * engine checks it is JSON). The body is passed in a file, never on the
 * command line, where `ps` would show it. */
static int read_trigger(const char *path, char **out)
{
	char *why = NULL;
	size_t len = 0;
	free(*out);
	*out = NULL;
	int r = file_read_regular(path, DAGRUN_TRIGGER_MAX, out, &len, &why);
	if (r < 0) {
		fprintf(stderr, "dagrun run: --trigger-file %s: %s\n", path, why ? why : strerror(-r));
		free(why);
		return r;
	}
	if (memchr(*out, 0, len)) {
		fprintf(stderr, "dagrun run: --trigger-file %s: holds a NUL byte\n", path);
		free(*out);
		*out = NULL;
		return -EINVAL;
	}
	return 0;
}

int cli_run(int argc, char **argv)
{
	static const struct option opts[] = {
		{"help", no_argument, NULL, 'h'},
		{"dry-run", no_argument, NULL, 'n'},
		{"trace", required_argument, NULL, 'T'},
		{"run-id", required_argument, NULL, 'I'},
		{"trigger-file", required_argument, NULL, 'G'},
		{"no-cache", no_argument, NULL, 'C'},
		CLI_EXEC_OPTIONS,
		{0, 0, 0, 0},
	};
	struct cli_exec x = CLI_EXEC_INIT;
	int c, status = EXIT_USAGE;
	char *text = NULL;
	size_t len = 0;
	dagrun_workflow *wf = NULL;
	const char *run_id = NULL;
	optind = 1;
	while ((c = getopt_long(argc, argv, "hj:vq", opts, NULL)) != -1) {
		int h = cli_exec_option(&x, c, optarg, "run");
		if (h < 0)
			goto out;
		if (h)
			continue;
		switch (c) {
		case 'h': fputs(usage, stdout); status = EXIT_OK; goto out;
		case 'n': x.dry_run = 1; break;
		case 'T': x.trace = optarg; break;
		case 'I': run_id = optarg; break;
		case 'G':
			if (read_trigger(optarg, &x.trigger_json) < 0)
				goto out;
			break;
		case 'C': x.no_cache = 1; break;
		default: goto out;
		}
	}
	if (optind != argc - 1) {
		fputs(usage, stderr);
		goto out;
	}
	if (x.trace && (!*x.trace || x.no_state || x.dry_run)) {
		fprintf(stderr, "dagrun run: --trace %s\n", !*x.trace ? "takes a file" :
			x.no_state ? "reads the run from the state directory: not with "
			"--no-state" : "writes a run: not with --dry-run");
		goto out;
	}
	const char *file = argv[optind];
	int color = cli_use_color(x.color, stderr);
	/* Recorded, the run keeps the very text it loaded (its snapshot). */
	wf = x.no_state || x.dry_run ? cli_load(file, color, &status)
				     : cli_load_snapshot(file, color, &status, &text, &len);
	if (!wf)
		goto out;
	status = cli_execute(&x, "run", wf, text, len, run_id, NULL);
out:
	dagrun_workflow_free(wf);
	free(text);
	cli_exec_free(&x);
	return status;
}
