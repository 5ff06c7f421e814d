/* continue.c: `dagrun resume RUN` and `dagrun rerun RUN`: a recorded run
 * continued (sched/resume.h says what is kept and what runs again).
 *
 * Both find the run in the state directory (an id, a unique prefix of one,
 * or `last`), load the definition it recorded (rerun: or the workflow file
 * as it is now, after listing what changed), give back the variables it
 * ran with, and run it with the same display options as `dagrun run`.
 */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "model/model.h"
#include "sched/fingerprint.h"
#include "sched/resume.h"

static const char resume_usage[] =
	"usage: dagrun resume [OPTIONS] RUN\n"
	"\n"
	"Continues a run that did not finish (dagrun was killed, the machine rebooted,\n"
	"Ctrl-C). RUN is a run id, a unique prefix of one, or `last`. Completed,\n"
	"skipped and failed tasks keep their results; tasks that were running are\n"
	"stopped if anything of them is still alive, recorded as interrupted and run\n"
	"again; pending tasks run. The run uses the definition and the variables it\n"
	"recorded (give --secrets-file again: secrets are never recorded).\n"
	"\n"
	"  -j, --jobs N             run at most N tasks at once\n"
	"      --var NAME=VALUE     a variable whose value was masked when recorded\n"
	"      --secrets-file F     KEY=VALUE lines read as secrets.KEY (mode 600)\n"
	CLI_EXEC_HELP
	"\n"
	"Exit status: as `dagrun run`; 2 also when RUN is unknown or already ended,\n"
	"3 when its state cannot be read or it is driven by a live dagrun.\n";

static const char rerun_usage[] =
	"usage: dagrun rerun [OPTIONS] RUN\n"
	"\n"
	"Runs a recorded run again as its next attempt (the same run id, attempt + 1):\n"
	"by default every task that did not complete or was skipped (failed,\n"
	"cancelled, failed as a dependency, interrupted, not run) and everything\n"
	"downstream of them; the other tasks keep their results from before.\n"
	"\n"
	"      --failed             that default selection\n"
	"      --from TASK          TASK and everything downstream of it\n"
	"      --only TASK[,TASK]   only these tasks (repeatable)\n"
	"      --downstream         with --only: and everything downstream of them\n"
	"      --definition WHICH   snapshot (default: what the run ran) or current (the\n"
	"                           workflow file as it is now: lists what changed;\n"
	"                           added and changed tasks run, with their downstream)\n"
	"      --dry-run            print what would run and why, and what is kept\n"
	"  -j, --jobs N             run at most N tasks at once\n"
	"      --var NAME=VALUE     override a variable (as recorded otherwise)\n"
	"      --secrets-file F     KEY=VALUE lines read as secrets.KEY (mode 600)\n"
	CLI_EXEC_HELP
	"\n"
	"Exit status: as `dagrun run`; 2 also when RUN or TASK is unknown.\n";

enum { OPT_FAILED = CLI_OPT_FIRST_FREE, OPT_FROM, OPT_ONLY, OPT_DOWNSTREAM, OPT_DEFINITION };

static bool given(const struct cli_exec *x, const char *name, size_t n)
{
	for (size_t i = 0; i < x->n_vars; i++)
		if (!strncmp(x->vars[i], name, n) && x->vars[i][n] == '=')
			return true;
	return false;
}

/* The declared default of variable `name` in wf, when it is a string. */
static const struct dr_text *default_text(const dagrun_workflow *wf, const char *name,
					  bool *declared)
{
	const struct dr_value *v = wf->variables;
	*declared = false;
	for (uint32_t i = 0; v && v->kind == DR_VAL_MAP && i < v->count; i++) {
		if (v->keys[i].len != strlen(name) || memcmp(v->keys[i].s, name, v->keys[i].len))
			continue;
		*declared = true;
		return v->items[i].kind == DR_VAL_STRING ? &v->items[i].text : NULL;
	}
	return NULL;
}

/* Gives back the variables the run recorded: each string that is not the
 * declared default becomes a --var, unless one was given for it. A value
 * masked when recorded (it held a secret) must be given again. Returns 0,
 * or EXIT_USAGE after saying why; *keep holds the strings (free it). */
static int recorded_vars(struct cli_exec *x, const dagrun_workflow *wf, const char *json,
			 const char *cmd, char ***keep)
{
	*keep = NULL;
	json_error_t je;
	json_t *o = json ? json_loads(json, 0, &je) : NULL;
	if (!json_is_object(o)) {
		json_decref(o);
		return 0;
	}
	size_t n = 0, cap = json_object_size(o) + 1;
	char **strs = calloc(cap, sizeof(*strs));
	const char *k;
	json_t *v;
	int r = 0;
	json_object_foreach(o, k, v) {
		bool declared;
		const struct dr_text *d = default_text(wf, k, &declared);
		if (!declared || !json_is_string(v) || given(x, k, strlen(k)))
			continue;
		const char *s = json_string_value(v);
		if (d && d->len == json_string_length(v) && !memcmp(d->s, s, d->len))
			continue;
		if (strstr(s, "***")) {
			fprintf(stderr, "dagrun %s: variable '%s' held a secret when the run was "
				"recorded, so its value was masked: give it again with --var %s=VALUE\n",
				cmd, k, k);
			r = EXIT_USAGE;
			break;
		}
		if (!strs || asprintf(&strs[n], "%s=%s", k, s) < 0) {
			r = EXIT_INTERNAL;
			break;
		}
		const char **nv = realloc(x->vars, (x->n_vars + 2) * sizeof(*nv));
		if (!nv) {
			r = EXIT_INTERNAL;
			break;
		}
		x->vars = nv;
		nv[x->n_vars++] = strs[n++];
		nv[x->n_vars] = NULL;
	}
	json_decref(o);
	*keep = strs;
	return r;
}

static void free_strs(char **v)
{
	for (size_t i = 0; v && v[i]; i++)
		free(v[i]);
	free(v);
}

/* Finds RUN; says why not. Returns 0, or the exit status. */
static int find(const char *cmd, const struct cli_exec *x, const char *ref,
		struct cont_source *src)
{
	if (x->no_state) {
		fprintf(stderr, "dagrun %s: --no-state: there is no state to continue from\n", cmd);
		return EXIT_USAGE;
	}
	const char *dir = cli_state_dir(x->state);
	char *err = NULL;
	int r = cont_find(dir, ref, src, &err);
	if (r < 0) {
		fprintf(stderr, "dagrun %s: %s\n", cmd, err ? err : strerror(-r));
		free(err);
		return r == -ENOENT || r == -EINVAL ? EXIT_USAGE : EXIT_INTERNAL;
	}
	if (!src->def.definition) {
		fprintf(stderr, "dagrun %s: run %s recorded no definition (its workflow was not "
			"a file that could be read again): it cannot be continued\n", cmd,
			src->run.run_id);
		return EXIT_INTERNAL;
	}
	if (src->run.replay_of) {
		/* its replayed tasks did not run: continuing it for real would
		 * run what the replay kept from running */
		fprintf(stderr, "dagrun %s: run %s is a live replay of %s: it cannot be "
			"continued (its other tasks would run for real); replay %s again with "
			"--live\n", cmd, src->run.run_id, src->run.replay_of, src->run.replay_of);
		return EXIT_USAGE;
	}
	return 0;
}

/* The recorded definition, loaded; its task list must be the one recorded. */
static dagrun_workflow *load_recorded(const char *cmd, const struct cont_source *src, int color,
				      int *status)
{
	const struct store_definition *d = &src->def;
	dagrun_workflow *wf = cli_load_buffer(d->path, d->definition, d->definition_len, color,
					      status);
	if (!wf)
		return NULL;
	bool same = wf->n_tasks == d->n_tasks;
	for (uint32_t t = 0; same && t < wf->n_tasks; t++)
		same = !strcmp(wf_task_id(wf, t), d->task_ids[t]);
	if (!same) {
		fprintf(stderr, "dagrun %s: run %s: its recorded definition does not give the "
			"tasks it recorded (a secret masked in an id?): it cannot be continued\n",
			cmd, src->run.run_id);
		dagrun_workflow_free(wf);
		*status = EXIT_INTERNAL;
		return NULL;
	}
	return wf;
}

int cli_resume(int argc, char **argv)
{
	static const struct option opts[] = {
		{"help", no_argument, NULL, 'h'},
		CLI_EXEC_OPTIONS,
		{0, 0, 0, 0},
	};
	struct cli_exec x = CLI_EXEC_INIT;
	struct cont_source src = {0};
	dagrun_workflow *wf = NULL;
	char **vars = NULL;
	int c, status = EXIT_USAGE;
	optind = 1;
	while ((c = getopt_long(argc, argv, "hj:vq", opts, NULL)) != -1) {
		int h = cli_exec_option(&x, c, optarg, "resume");
		if (h < 0)
			goto out;
		if (h)
			continue;
		if (c == 'h') {
			fputs(resume_usage, stdout);
			status = EXIT_OK;
		}
		goto out;
	}
	if (optind != argc - 1) {
		fputs(resume_usage, stderr);
		goto out;
	}
	if ((status = find("resume", &x, argv[optind], &src)))
		goto out;
	const struct store_run_info *run = &src.run;
	if (run->status != STORE_RUN_INTERRUPTED) {
		if (run->status == STORE_RUN_RUNNING)
			fprintf(stderr, "dagrun resume: run %s is being run by pid %lld on %s: it "
				"cannot be resumed while that process lives\n", run->run_id,
				(long long)run->lease.pid, run->lease.host ? run->lease.host : "?");
		else
			fprintf(stderr, "dagrun resume: run %s already ended (%s): nothing to resume; "
				"`dagrun rerun %s` runs what did not complete again\n", run->run_id,
				store_run_status_name(run->status), run->run_id);
		status = run->status == STORE_RUN_RUNNING ? EXIT_INTERNAL : EXIT_USAGE;
		goto out;
	}
	int color = cli_use_color(x.color, stderr);
	if (!(wf = load_recorded("resume", &src, color, &status)))
		goto out;
	if ((status = recorded_vars(&x, wf, src.def.vars_json, "resume", &vars)))
		goto out;
	/* The same trigger.body as the run it continues. */
	if (src.def.trigger_json && !(x.trigger_json = strdup(src.def.trigger_json))) {
		status = EXIT_INTERNAL;
		goto out;
	}
	struct cont_opts co = {.mode = CONT_RESUME, .key = run->key};
	status = cli_execute(&x, "resume", wf, NULL, 0, run->run_id, &co);
out:
	dagrun_workflow_free(wf);
	cont_source_free(&src);
	free_strs(vars);
	cli_exec_free(&x);
	return status;
}

/* Appends the ids in arg (comma-separated) to *v. */
static int add_ids(const char ***v, size_t *n, char *arg)
{
	for (char *save = NULL, *id = strtok_r(arg, ",", &save); id; id = strtok_r(NULL, ",", &save)) {
		const char **nv = realloc(*v, (*n + 2) * sizeof(*nv));
		if (!nv)
			return -1;
		*v = nv;
		nv[(*n)++] = id;
		nv[*n] = NULL;
	}
	return 0;
}

static bool known_task(const dagrun_workflow *wf, const char *id)
{
	uint32_t sym = intern_find(&wf->ids, id, strlen(id));
	return sym != INTERN_NONE && wf->sym_task[sym] != UINT32_MAX;
}

static void print_ids(FILE *f, const char *what, const char *const *v, uint32_t n)
{
	fprintf(f, "%s (%u):", what, n);
	for (uint32_t i = 0; i < n; i++)
		fprintf(f, " %s", v[i]);
	fputc('\n', f);
}

int cli_rerun(int argc, char **argv)
{
	static const struct option opts[] = {
		{"help", no_argument, NULL, 'h'},
		{"dry-run", no_argument, NULL, 'n'},
		{"failed", no_argument, NULL, OPT_FAILED},
		{"from", required_argument, NULL, OPT_FROM},
		{"only", required_argument, NULL, OPT_ONLY},
		{"downstream", no_argument, NULL, OPT_DOWNSTREAM},
		{"definition", required_argument, NULL, OPT_DEFINITION},
		CLI_EXEC_OPTIONS,
		{0, 0, 0, 0},
	};
	struct cli_exec x = CLI_EXEC_INIT;
	struct cont_source src = {0};
	dagrun_workflow *wf = NULL, *snap = NULL;
	char **vars = NULL, *text = NULL;
	size_t len = 0, n_only = 0;
	const char **only = NULL, *from = NULL, *from_v[2] = {NULL, NULL};
	int c, status = EXIT_USAGE, selects = 0, downstream = 0, current = 0;
	struct arena mem = ARENA_INIT;
	optind = 1;
	while ((c = getopt_long(argc, argv, "hj:vq", opts, NULL)) != -1) {
		int h = cli_exec_option(&x, c, optarg, "rerun");
		if (h < 0)
			goto out;
		if (h)
			continue;
		switch (c) {
		case 'h': fputs(rerun_usage, stdout); status = EXIT_OK; goto out;
		case 'n': x.dry_run = 1; break;
		case OPT_FAILED: selects |= 1; break;
		case OPT_FROM: selects |= 2; from = optarg; break;
		case OPT_ONLY:
			selects |= 4;
			if (add_ids(&only, &n_only, optarg) < 0)
				goto out;
			break;
		case OPT_DOWNSTREAM: downstream = 1; break;
		case OPT_DEFINITION:
			if (strcmp(optarg, "snapshot") && strcmp(optarg, "current")) {
				fprintf(stderr, "dagrun rerun: --definition is snapshot or current\n");
				goto out;
			}
			current = !strcmp(optarg, "current");
			break;
		default: goto out;
		}
	}
	if (optind != argc - 1) {
		fputs(rerun_usage, stderr);
		goto out;
	}
	if (selects & (selects - 1)) {
		fprintf(stderr, "dagrun rerun: --failed, --from and --only exclude each other\n");
		goto out;
	}
	if (downstream && !(selects & 4)) {
		fprintf(stderr, "dagrun rerun: --downstream goes with --only\n");
		goto out;
	}
	if ((status = find("rerun", &x, argv[optind], &src)))
		goto out;
	const struct store_run_info *run = &src.run;
	if (run->status == STORE_RUN_RUNNING) {
		fprintf(stderr, "dagrun rerun: run %s is still being run by pid %lld on %s: "
			"wait for it to end\n", run->run_id, (long long)run->lease.pid,
			run->lease.host ? run->lease.host : "?");
		status = EXIT_INTERNAL;
		goto out;
	}
	int color = cli_use_color(x.color, stderr);
	if (!(snap = load_recorded("rerun", &src, color, &status)))
		goto out;
	struct wf_diff diff = {0};
	if (current) {
		if (!(wf = cli_load_snapshot(src.def.path, color, &status, &text, &len)))
			goto out;
		if (wf_diff(snap, wf, &mem, &diff) < 0) {
			status = EXIT_INTERNAL;
			goto out;
		}
		FILE *f = x.dry_run ? stdout : stderr;
		fprintf(f, "definition: %s as it is now, against the one run %s ran\n",
			src.def.path, run->run_id);
		print_ids(f, "  added", diff.added, diff.n_added);
		print_ids(f, "  removed", diff.removed, diff.n_removed);
		print_ids(f, "  changed", diff.changed, diff.n_changed);
	} else {
		wf = snap;
		snap = NULL;
	}
	for (size_t i = 0; i < n_only; i++)
		if (!known_task(wf, only[i])) {
			fprintf(stderr, "dagrun rerun: --only %s: no such task in the workflow\n",
				only[i]);
			status = EXIT_USAGE;
			goto out;
		}
	if (from && !known_task(wf, from)) {
		fprintf(stderr, "dagrun rerun: --from %s: no such task in the workflow\n", from);
		status = EXIT_USAGE;
		goto out;
	}
	from_v[0] = from;
	if ((status = recorded_vars(&x, wf, src.def.vars_json, "rerun", &vars)))
		goto out;
	/* The same trigger.body as the run it continues. */
	if (src.def.trigger_json && !(x.trigger_json = strdup(src.def.trigger_json))) {
		status = EXIT_INTERNAL;
		goto out;
	}
	struct cont_opts co = {
		.mode = CONT_RERUN, .key = run->key, .run_attempt = run->run_attempt + 1,
		.select = selects & 2 ? CONT_FROM : selects & 4 ? CONT_ONLY : CONT_FAILED,
		.tasks = selects & 2 ? from_v : only, .downstream = downstream,
		.changed = current ? diff.changed : NULL,
	};
	/* Added tasks are found by id; changed ones need the list. */
	if (x.dry_run) {
		char *err = NULL;
		int r = cont_dry_run(cli_state_dir(x.state), wf, &co, stdout, &err);
		if (r < 0)
			fprintf(stderr, "dagrun rerun: %s\n", err ? err : strerror(-r));
		free(err);
		status = r < 0 ? EXIT_INTERNAL : EXIT_OK;
		goto out;
	}
	status = cli_execute(&x, "rerun", wf,
			     current ? text : src.def.definition,
			     current ? len : src.def.definition_len, run->run_id, &co);
out:
	dagrun_workflow_free(wf);
	dagrun_workflow_free(snap);
	cont_source_free(&src);
	arena_free(&mem);
	free_strs(vars);
	free(only);
	free(text);
	cli_exec_free(&x);
	return status;
}
