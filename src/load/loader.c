/* loader.c: load_file() and load_buffer(): the top level of a workflow
 * file, input handling and the loader's sequence (read, then resolve). The
 * graph and the expression checks are the next step's (workflow/load.c).
 *
 * Invariant: the file is streamed through libyaml in small reads and never
 * held in memory; on any failure everything allocated is released and *out
 * is left untouched, so callers only ever own a model that read and
 * resolved without error. A regular file of more than PIPE_MIN_BYTES is
 * parsed by a thread of its own (pipe.c) while this one builds the model;
 * whether it is or not shows nowhere but in load_next(), and the thread is
 * joined before load() goes on to resolve, so the load returns with no
 * thread running and the diagnostics are those of one thread.
 *
 * Choices of the format, documented in docs/workflow.md (see also loader.h):
 *  - Scalars follow the YAML 1.2 core schema (null: ~ null ""; booleans:
 *    true/false; ints: decimal, 0x, 0o; floats), so `on: yes` in variables
 *    is the string "yes". Keys typed boolean (stream, insecure) also accept
 *    the YAML 1.1 spellings yes/no/on/off. A key typed string accepts any
 *    non-null scalar as written (`command: true` runs `true`).
 *  - Anchors are accepted and ignored; every alias is an error ("aliases
 *    are not supported"), so no input can expand (billion laughs). Tags
 *    other than the standard !!str/!!int/... and ! are errors.
 *  - `defaults` accepts timeout, killGrace, retry (merged key by key with a
 *    task's own retry), workdir, priority and resources (a task's
 *    `resources`, even {}, replaces them). Top-level `env` already applies
 *    to every task, so defaults has no env. Defaults apply to hooks too.
 *  - timeout and connectTimeout must be positive; killGrace and retry
 *    delays may be 0. A quoted "1500" is a duration of 1500 ms.
 *  - Caps beyond model.h: backoffFactor <= 1000, maxTokens <= 10^7,
 *    maxResponseBytes <= 1 GiB, maxContextBytes <= 64 MiB, expectStatus
 *    100..599 (at most 1000 entries), permanentExitCodes 0..255 (at most 255).
 *  - A missing key that an unknown key was probably meant as ("did you
 *    mean") is not reported again; a YAML syntax error is listed first;
 *    the other diagnostics of one load are sorted by position.
 *  - Any input is capped (DAGRUN_MAX_FILE_BYTES; SPAN_MAX_BYTES without a
 *    token) and opened without blocking: a FIFO without a writer reads as
 *    empty ("no input"), a directory is refused. A NUL is refused in every
 *    string but those sent as JSON (read_value(), an AI model, system and
 *    prompt): see load_refuse_nul().
 *  - Left to their executors: api.method NULL means GET, expect NULL any
 *    2xx, script.interpreter NULL /bin/sh -e, ai.base_url NULL
 *    $OPENAI_BASE_URL or the OpenAI URL, ai.api_key_env NULL OPENAI_API_KEY.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "load/loader.h"

/* Smaller files are parsed in the loading thread: a thread would not pay. */
#define PIPE_MIN_BYTES ((off_t)1 << 20)

/* Bytes of a large file per task id, a guess (a task with an id, a short
 * command and three dependencies, in block style, takes about 80; most
 * take more): the id table is sized from it from the start, so that it is
 * not rebuilt as it fills. A guess above the truth costs one late rebuild;
 * below, memory (4 bytes a slot). */
#define BYTES_PER_ID 96

/* ---- top-level keys ------------------------------------------------------------------ */

static void w_name(struct loader *ld, void *obj)
{
	struct dagrun_workflow *wf = obj;
	if (!read_nonempty(ld, &wf->name))
		return;
	if (strspn(wf->name.s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
			       "0123456789_.-") != wf->name.len)
		load_error(ld, (struct pos){wf->name.line, wf->name.col},
			   "invalid workflow name '%.80s': use only letters, digits, "
			   "'_', '.' and '-'", wf->name.s);
}

static void w_description(struct loader *ld, void *obj)
{
	read_string(ld, &((struct dagrun_workflow *)obj)->description);
}

static void w_variables(struct loader *ld, void *obj)
{
	((struct dagrun_workflow *)obj)->variables = read_value(ld, true);
}

static void w_env(struct loader *ld, void *obj)
{
	read_kvlist(ld, &((struct dagrun_workflow *)obj)->env, NAME_ENV);
}

/* What the workflow gives back when another runs it: name -> template. */
static void w_outputs(struct loader *ld, void *obj)
{
	struct dagrun_workflow *wf = obj;
	struct pos at = load_pos(ld);
	read_kvlist(ld, &wf->outputs, NAME_OUTPUT);
	if (wf->outputs.n > LOAD_MAX_OUTPUTS)
		load_error(ld, at, "'outputs' has %u entries, more than the limit of %d",
			   wf->outputs.n, LOAD_MAX_OUTPUTS);
}

static void w_max_parallel(struct loader *ld, void *obj)
{
	int64_t v;
	if (read_int(ld, 1, DR_MAX_PARALLEL, &v))
		((struct dagrun_workflow *)obj)->max_parallel = (uint32_t)v;
}

static void w_resources(struct loader *ld, void *obj)
{
	struct dr_res *r = NULL;
	uint32_t n = 0;
	(void)obj;
	read_res(ld, &r, &n);
	for (uint32_t i = 0; i < n; i++)
		ld->pool_v[r[i].pool] = (struct pool_info){r[i].units, {r[i].line, r[i].col}};
}

static void w_defaults(struct loader *ld, void *obj)
{
	(void)obj;
	defaults_read(ld);
}

static void read_tasks(struct loader *ld, unsigned g)
{
	const char *key = ld->key;
	struct pos at = load_pos(ld);
	uint32_t n = 0;
	if (!load_is(ld, YAML_SEQUENCE_START_EVENT)) {
		load_type_error(ld, "a list of tasks");
		return;
	}
	while (load_next(ld) && !load_is(ld, YAML_SEQUENCE_END_EVENT)) {
		n++;
		if (load_is(ld, YAML_MAPPING_START_EVENT)) {
			task_read(ld, g);
		} else {
			if (!load_is(ld, YAML_ALIAS_EVENT))
				load_error(ld, load_pos(ld), "each item of '%s' must be a task "
					   "map, got %s", key, load_type_name(ld));
			load_skip(ld);
		}
		ld->key = key;
	}
	if (g == GROUP_MAIN && !n && !ld->stop)
		load_error(ld, at, "'tasks' must list at least one task");
}

static void w_tasks(struct loader *ld, void *obj)
{
	(void)obj;
	read_tasks(ld, GROUP_MAIN);
}

static void w_on_success(struct loader *ld, void *obj)
{
	(void)obj;
	read_tasks(ld, GROUP_SUCCESS);
}

static void w_on_failure(struct loader *ld, void *obj)
{
	(void)obj;
	read_tasks(ld, GROUP_FAILURE);
}

static void w_on_exit(struct loader *ld, void *obj)
{
	(void)obj;
	read_tasks(ld, GROUP_EXIT);
}

enum { W_NAME, W_TASKS, W_SCHEDULE = 12 };

static const struct keydef top_keys[] = {
	[W_NAME] = KEY("name", w_name), [W_TASKS] = KEY("tasks", w_tasks),
	KEY("description", w_description), KEY("variables", w_variables),
	KEY("env", w_env), KEY("maxParallel", w_max_parallel),
	KEY("resources", w_resources), KEY("defaults", w_defaults),
	KEY("onSuccess", w_on_success), KEY("onFailure", w_on_failure),
	KEY("onExit", w_on_exit), KEY("outputs", w_outputs),
	/* read by `dagrun serve` only (schedule.c) */
	[W_SCHEDULE] = KEY("schedule", load_key_schedule), KEY("timezone", load_key_timezone),
	KEY("overlap", load_key_overlap), KEY("catchup", load_key_catchup),
	KEY("trigger", load_key_trigger),
};
static const struct keytab top_tab = {"workflow", top_keys, 17, NULL, NULL};

/* ---- the document ------------------------------------------------------------------------ */

static void read_root(struct loader *ld)
{
	struct map_seen seen;
	struct pos at = load_pos(ld);
	if (!load_is(ld, YAML_MAPPING_START_EVENT)) {
		if (!load_is(ld, YAML_ALIAS_EVENT))
			load_error(ld, at, "a workflow must be a map with 'name' and "
				   "'tasks', got %s", load_type_name(ld));
		load_skip(ld);
		return;
	}
	read_map(ld, &top_tab, ld->wf, &seen);
	if (ld->stop)
		return;
	if (!seen_or_hinted(&seen, W_NAME))
		load_error(ld, at, "missing required key 'name' in workflow");
	if (!seen_or_hinted(&seen, W_TASKS))
		load_error(ld, at, "missing required key 'tasks' in workflow");
	load_schedule_check(ld, &seen, W_SCHEDULE);
}

/* Reads the stream: exactly one document holding a mapping. */
static void read_stream(struct loader *ld)
{
	if (!load_next(ld) || !load_next(ld)) /* STREAM_START, DOCUMENT_START */
		return;
	if (load_is(ld, YAML_STREAM_END_EVENT) && ld->fifo && !ld->bytes) {
		load_error(ld, (struct pos){0, 0}, "no input: %s gave no bytes (a FIFO "
			   "is read only if its writer has it open already)", ld->file);
		return;
	}
	if (load_is(ld, YAML_STREAM_END_EVENT)) {
		load_error(ld, (struct pos){1, 1}, "the file is empty: a workflow needs "
			   "'name' and 'tasks'");
		return;
	}
	if (!load_next(ld))
		return;
	read_root(ld);
	if (!load_next(ld) || !load_next(ld)) /* DOCUMENT_END, then STREAM_END */
		return;
	if (load_is(ld, YAML_DOCUMENT_START_EVENT))
		load_error(ld, load_pos(ld), "a workflow file holds one YAML document; "
			   "this is a second one");
}

/* ---- input ---------------------------------------------------------------------------------- */

/* The read callback of libyaml, in whichever thread parses. Every input is
 * capped, whatever its kind: DAGRUN_MAX_FILE_BYTES in all, and
 * SPAN_MAX_BYTES without the parser taking a token (one scalar far over
 * the string limit, or an endless comment: `yes | dagrun validate
 * /dev/stdin` stops there, not after 512 MiB held in one string). */
static int read_fd(void *data, unsigned char *buffer, size_t size, size_t *size_read)
{
	struct loader *ld = data;
	ssize_t n;
	/* tokens_parsed is libyaml's count of tokens its parser took from
	 * the scanner: it stands still while the scanner reads one token. */
	if (ld->parser.tokens_parsed != ld->span_tokens) {
		ld->span_tokens = ld->parser.tokens_parsed;
		ld->span_from = ld->bytes;
	} else if (ld->bytes - ld->span_from > SPAN_MAX_BYTES) {
		ld->too_long_span = true;
		return 0;
	}
	do
		n = read(ld->fd, buffer, size);
	while (n < 0 && errno == EINTR);
	if (n < 0) {
		ld->io_err = errno;
		return 0;
	}
	ld->bytes += (uint64_t)n;
	if (ld->bytes > DAGRUN_MAX_FILE_BYTES) {
		ld->too_big = true;
		return 0;
	}
	*size_read = (size_t)n;
	return 1;
}

/* Sorts this load's diagnostics (from index `from`) by position, so that
 * errors found after reading (ids, pools) read in file order; a YAML syntax
 * error, the likely cause of the others, comes first. Stable. */
static void sort_diags(struct dagrun_diags *d, size_t from, const char *first)
{
	for (size_t i = from + 1; d && i < d->n; i++) {
		struct dagrun_diag x = d->v[i];
		size_t j = i;
		while (j > from && (d->v[j - 1].line > x.line ||
				    (d->v[j - 1].line == x.line && d->v[j - 1].column > x.column))) {
			d->v[j] = d->v[j - 1];
			j--;
		}
		d->v[j] = x;
	}
	for (size_t i = from; first && d && i < d->n; i++) {
		if (d->v[i].message != first)
			continue;
		struct dagrun_diag x = d->v[i];
		memmove(d->v + from + 1, d->v + from, (i - from) * sizeof(x));
		d->v[from] = x;
		break;
	}
}

static int set_paths(struct dagrun_workflow *wf, const char *path)
{
	const char *slash = strrchr(path, '/');
	wf->path = strdup(path);
	if (!slash)
		wf->dir = strdup(".");
	else if (slash == path)
		wf->dir = strdup("/");
	else
		wf->dir = strndup(path, (size_t)(slash - path));
	return wf->path && wf->dir ? 0 : -ENOMEM;
}

/* Stops and joins the parsing thread, if any; the parser is ours again. */
static void end_pipe(struct loader *ld)
{
	if (!ld->pipe)
		return;
	pipe_end(ld->pipe);
	ld->pipe = NULL;
	memset(&ld->ev, 0, sizeof(ld->ev)); /* it pointed into the pipe */
}

static void loader_free(struct loader *ld)
{
	end_pipe(ld);
	if (ld->have_ev)
		yaml_event_delete(&ld->ev);
	if (ld->parser_ready)
		yaml_parser_delete(&ld->parser);
	for (unsigned g = 0; g < N_GROUPS; g++)
		free(ld->groups[g].v);
	intern_free(&ld->pools);
	free(ld->pool_v);
	free(ld->stk);
	free(ld->idc);
	free(ld->tk);
}

/* The task keys of the kinds handed down, and wf->kinds (their model
 * parts, in the arena). Returns 0, -EINVAL (said in diags) or -ENOMEM. */
static int set_kinds(struct loader *ld, const char *name)
{
	int r = task_keys_build(ld);
	if (r == -EINVAL)
		diag_add(ld->diags, DAGRUN_ERROR, name, 0, 0, "internal error: the task "
			 "kinds do not fit the loader (at most %d kinds and %d task keys)",
			 LOAD_MAX_KINDS, MAX_KEYS);
	if (r < 0)
		return r;
	struct dagrun_workflow *wf = ld->wf;
	unsigned n = ld->tk->n_kinds;
	const struct dr_kind **v = arena_alloc(&wf->arena, (n ? n : 1) * sizeof(*v));
	if (!v)
		return -ENOMEM;
	for (unsigned k = 0; k < n; k++)
		v[k] = &ld->tk->kinds[k]->model;
	wf->kinds = v;
	wf->n_kinds = n;
	return 0;
}

/* Reads and resolves; returns 0, -EINVAL or a system error. */
static int load(struct loader *ld)
{
	size_t from = ld->diags ? ld->diags->n : 0;
	read_stream(ld);
	end_pipe(ld); /* at once: the parser may still be running ahead */
	if (!ld->stop)
		resolve_all(ld); /* even after errors: reports unknown ids, pools */
	sort_diags(ld->diags, from, ld->syntax_msg);
	if (ld->err)
		return ld->err;
	return ld->nerr ? -EINVAL : 0;
}

/* Shared by both entry points: ld has its input set. */
static int load_with(struct loader *ld, const char *name, const struct load_opts *o,
		     dagrun_workflow **out, struct load_info *info, dagrun_diags *diags)
{
	struct dagrun_workflow *wf = calloc(1, sizeof(*wf));
	int r = -ENOMEM;
	ld->diags = diags;
	ld->opts = o;
	ld->default_priority = PRIORITY_UNSET;
	/* The scratch stack exists from the start: offsets into it are always
	 * valid pointers, even for empty collections. */
	ld->stk_cap = 4096;
	ld->stk = malloc(ld->stk_cap);
	if (!wf || !ld->stk || set_paths(wf, name) < 0)
		goto out;
	if (ld->size_hint)
		intern_reserve(&wf->ids, (uint32_t)(ld->size_hint / BYTES_PER_ID));
	ld->wf = wf;
	ld->file = wf->path;
	if ((r = set_kinds(ld, name)) == 0)
		r = load(ld);
out:
	if (r == -ENOMEM && diags)
		diag_add(diags, DAGRUN_ERROR, name, 0, 0, "out of memory");
	if (info) {
		info->size_hint = ld->size_hint;
		memcpy(info->kind_tasks, ld->kind_tasks, sizeof(info->kind_tasks));
	}
	loader_free(ld);
	if (r < 0) {
		dr_workflow_free(wf);
		return r;
	}
	*out = wf;
	return 0;
}

/* See load.h. data need not be NUL-terminated; it is not copied. */
int load_buffer(const char *name, const char *data, size_t len, const struct load_opts *o,
		struct dagrun_workflow **out, struct load_info *info, dagrun_diags *diags)
{
	struct loader ld;
	memset(&ld, 0, sizeof(ld));
	ld.fd = -1;
	ld.data = data;
	ld.len = len;
	if (!name)
		name = "<input>";
	if (len > DAGRUN_MAX_FILE_BYTES) {
		diag_add(diags, DAGRUN_ERROR, name, 0, 0,
			 "file is larger than the limit of %zu MiB", DAGRUN_MAX_FILE_BYTES >> 20);
		return -EINVAL;
	}
	if (!yaml_parser_initialize(&ld.parser))
		return -ENOMEM;
	ld.parser_ready = true;
	yaml_parser_set_input_string(&ld.parser, (const unsigned char *)(data ? data : ""),
				     data ? len : 0);
	return load_with(&ld, name, o, out, info, diags);
}

/* Opens path for reading into ld->fd; returns 0 and, for a regular file,
 * its size in *size (else 0, and ld->stream and ld->fifo say what it is);
 * or returns -errno after adding the error to diags. The open never blocks: a FIFO without a writer opens at
 * once (and then reads as empty, see read_stream()) instead of waiting
 * for one; the descriptor is made blocking again, so that a pipe whose
 * writer is slow is waited for as before. */
static int open_checked(struct loader *ld, const char *path, dagrun_diags *diags,
			off_t *size)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	int err = 0, fl;
	if (fd < 0) {
		err = errno;
		diag_add(diags, DAGRUN_ERROR, path, 0, 0, "cannot open %s: %s", path,
			 strerror(err));
		return -err;
	}
	if (fstat(fd, &st) < 0)
		err = errno;
	else if (S_ISDIR(st.st_mode))
		err = EISDIR;
	else if ((fl = fcntl(fd, F_GETFL)) < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0)
		err = errno;
	if (err) {
		diag_add(diags, DAGRUN_ERROR, path, 0, 0, "cannot read %s: %s", path,
			 strerror(err));
		close(fd);
		return -err;
	}
	if (S_ISREG(st.st_mode) && (uint64_t)st.st_size > DAGRUN_MAX_FILE_BYTES) {
		diag_add(diags, DAGRUN_ERROR, path, 0, 0,
			 "file is larger than the limit of %zu MiB", DAGRUN_MAX_FILE_BYTES >> 20);
		close(fd);
		return -EINVAL;
	}
	*size = S_ISREG(st.st_mode) ? st.st_size : 0;
	ld->stream = !S_ISREG(st.st_mode);
	ld->fifo = S_ISFIFO(st.st_mode);
	ld->fd = fd;
	return 0;
}

/* See load.h. The file is read in small chunks as libyaml asks. */
int load_file(const char *path, const struct load_opts *o, struct dagrun_workflow **out,
	      struct load_info *info, dagrun_diags *diags)
{
	struct loader ld;
	off_t size = 0;
	memset(&ld, 0, sizeof(ld));
	int r = open_checked(&ld, path, diags, &size);
	if (r < 0)
		return r;
	int fd = ld.fd;
	if (!yaml_parser_initialize(&ld.parser)) {
		close(fd);
		return -ENOMEM;
	}
	ld.parser_ready = true;
	yaml_parser_set_input(&ld.parser, read_fd, &ld);
	/* Without a thread (none could start), the file is parsed here. */
	if (size > PIPE_MIN_BYTES) {
		ld.size_hint = (uint64_t)size;
		if (pipe_start(&ld.pipe, &ld.parser, ld.size_hint) < 0)
			ld.pipe = NULL;
	}
	r = load_with(&ld, path, o, out, info, diags);
	close(fd);
	return r;
}
