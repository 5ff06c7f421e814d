/* command.c: the command and script executor; see command.h.
 *
 * An attempt owns one struct cmd_attempt from start() to on_done. Invariant:
 * while its process runs, st->proc is set and the attempt ends from the
 * proc's on_exit; when the spawn failed, st->proc is NULL and the attempt
 * ends from st->later, a zero-delay timer, so on_done never runs inside
 * start(). The argv and environment live only for the spawn call.
 */
#include "exec/command.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "exec/proc.h"

extern char **environ;

#define DEFAULT_INTERPRETER "/bin/sh -e"

struct command_executor {
	struct executor base;
	uv_loop_t *loop;
	struct proc_runner *runner;
	unsigned live;                /* attempts between start and on_done */
};

/* The task's strings for one attempt, templates rendered. Texts without a
 * template point into the model; the others into `arena`. */
struct texts {
	struct dr_command cmd;
	struct dr_text body;
	struct dr_kvlist wenv, tenv;
	struct dr_text workdir;
	bool has_workdir;
	struct arena arena;
	char *err;                    /* the first rendering error, malloc'd */
};

struct cmd_attempt {
	struct command_executor *cx;
	struct texts tx;
	struct exec_attempt *a;
	struct proc *proc;            /* NULL once ended or when never started */
	char *script;                 /* temporary file to unlink, or NULL */
	char *program;                /* argv[0], for messages */
	char *workdir;                /* malloc'd, or NULL: ours */
	struct command_outcome oc;
	uv_timer_t later;             /* ends a failed spawn from the loop */
	bool cancelled;
	struct exec_result res;
};

/* ---- deciding whether a command string needs the shell ------------------ */

static bool plain_char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       strchr("_./=:,+%@- ", c) != NULL;
}

/* Reserved words and builtins of dash and bash, sorted for bsearch. */
static const char *const shell_words[] = {
	"!", ".", ":", "[", "[[", "]]", "alias", "bg", "bind", "break", "builtin",
	"caller", "case", "cd", "chdir", "command", "compgen", "complete", "coproc",
	"declare", "dirs", "disown", "do", "done", "echo", "elif", "else", "enable",
	"esac", "eval", "exec", "exit", "export", "false", "fc", "fg", "fi", "for",
	"function", "getopts", "hash", "help", "history", "if", "in", "jobs", "kill",
	"let", "local", "logout", "mapfile", "popd", "printf", "pushd", "pwd", "read",
	"readarray", "readonly", "return", "select", "set", "shift", "shopt",
	"source", "suspend", "test", "then", "time", "times", "trap", "true", "type",
	"typeset", "ulimit", "umask", "unalias", "unset", "until", "wait", "while",
	"{", "}",
};

static bool is_shell_word(const char *w, size_t n)
{
	size_t lo = 0, hi = sizeof(shell_words) / sizeof(shell_words[0]);
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int c = strncmp(shell_words[mid], w, n);
		if (c == 0)
			c = shell_words[mid][n] ? 1 : 0;
		if (c == 0)
			return true;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return false;
}

bool command_needs_shell(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (!plain_char((unsigned char)s[i]))
			return true;
	size_t b = 0;
	while (b < len && s[b] == ' ')
		b++;
	if (b == len)
		return true;                   /* no word: let the shell decide */
	size_t e = b;
	while (e < len && s[e] != ' ')
		e++;
	if (memchr(s + b, '=', e - b))
		return true;                   /* an assignment */
	if (!is_shell_word(s + b, e - b))
		return false;
	/* A lone `true` or `false` acts the same as /usr/bin/true or false. */
	size_t rest = e;
	while (rest < len && s[rest] == ' ')
		rest++;
	bool lone = rest == len;
	bool tf = (e - b == 4 && !memcmp(s + b, "true", 4)) ||
		  (e - b == 5 && !memcmp(s + b, "false", 5));
	return !(lone && tf);
}

/* ---- classification ------------------------------------------------------ */

static char *msg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *msg(const char *fmt, ...)
{
	struct buf b = BUF_INIT;
	va_list ap;
	va_start(ap, fmt);
	int r = buf_vprintf(&b, fmt, ap);
	va_end(ap);
	if (r < 0) {
		buf_free(&b);
		return NULL;
	}
	return buf_steal(&b);
}

static void fail(struct exec_result *r, enum dr_error_class c, char *text)
{
	r->ok = false;
	r->error_class = (uint8_t)c;
	free(r->error);
	r->error = text;
}

static bool permanent_code(const struct dr_retry *rt, int code)
{
	if (code == 126 || code == 127)
		return true;
	for (unsigned i = 0; rt && i < rt->n_permanent; i++)
		if (rt->permanent_codes[i] == code)
			return true;
	return false;
}

static void classify_spawn(struct exec_result *r, const struct command_outcome *o)
{
	int e = o->spawn_err;
	const char *prog = o->program ? o->program : "?";
	r->exit_code = -1;
	if (o->workdir_err) {
		fail(r, DR_CLASS_PERMANENT, msg("workdir %s: %s", o->workdir ? o->workdir : "?",
						strerror(o->workdir_err)));
		return;
	}
	switch (e) {
	case EAGAIN: case ENOMEM: case EMFILE: case ENFILE:
		fail(r, DR_CLASS_RESOURCE, msg("cannot start %s: %s", prog, strerror(e)));
		return;
	case ENOENT: case ENOTDIR:
		r->exit_code = 127;
		fail(r, DR_CLASS_PERMANENT, msg("command not found: %s", prog));
		return;
	case EACCES: case EPERM: case ENOEXEC: case EISDIR:
		r->exit_code = 126;
		fail(r, DR_CLASS_PERMANENT, msg("cannot execute %s: %s", prog, strerror(e)));
		return;
	case ETXTBSY: case EINTR: case EIO:
		fail(r, DR_CLASS_TRANSIENT, msg("cannot start %s: %s", prog, strerror(e)));
		return;
	default:
		fail(r, DR_CLASS_PERMANENT, msg("cannot start %s: %s", prog, strerror(e)));
	}
}

static char *duration_text(uint64_t ms)
{
	if (ms && ms % 1000 == 0)
		return msg("%" PRIu64 "s", ms / 1000);
	return msg("%" PRIu64 "ms", ms);
}

void command_classify(struct exec_result *r, const struct command_outcome *o)
{
	if (o->template_err) {
		r->exit_code = -1;
		fail(r, DR_CLASS_PERMANENT, strdup(o->template_err));
		return;
	}
	r->ok = false;
	r->error_class = DR_CLASS_NONE;
	free(r->error);
	r->error = NULL;
	if (r->cancelled) {
		fail(r, DR_CLASS_TRANSIENT, msg("cancelled"));
	} else if (r->timed_out) {
		char *d = duration_text(o->timeout_ms);
		fail(r, DR_CLASS_TRANSIENT, d ? msg("timed out after %s", d) : NULL);
		free(d);
	} else if (o->script_err) {
		int e = o->script_err;
		bool res = e == ENOSPC || e == EDQUOT || e == EMFILE || e == ENFILE || e == EAGAIN;
		r->exit_code = -1;
		fail(r, res ? DR_CLASS_RESOURCE : DR_CLASS_PERMANENT,
		     msg("cannot write the script to a temporary file: %s", strerror(e)));
	} else if (o->spawn_err) {
		classify_spawn(r, o);
	} else if (r->term_signal) {
		int s = r->term_signal;
		const char *name = sigabbrev_np(s);
		bool limit = (s == SIGKILL && !o->signalled) || s == SIGXCPU || s == SIGXFSZ;
		fail(r, limit ? DR_CLASS_RESOURCE : DR_CLASS_TRANSIENT,
		     msg("killed by signal %d (SIG%s)%s", s, name ? name : "?",
			 limit ? ": likely the OOM killer or a resource limit" : ""));
	} else if (r->exit_code == 0) {
		r->ok = true;
	} else {
		fail(r, permanent_code(o->retry, r->exit_code) ? DR_CLASS_PERMANENT
							       : DR_CLASS_TRANSIENT,
		     msg("exit code %d", r->exit_code));
	}
}

/* ---- building argv, environment and working directory -------------------- */

/* Splits s[0..len) on spaces and tabs into a NULL-terminated argv, with
 * extra more slots left NULL at the end. One malloc'd block; NULL on OOM. */
static char **split_words(const char *s, size_t len, size_t extra)
{
	size_t words = 0;
	for (size_t i = 0; i < len; i++)
		if (s[i] != ' ' && s[i] != '\t' && (i == 0 || s[i - 1] == ' ' || s[i - 1] == '\t'))
			words++;
	size_t slots = words + extra + 1;
	char **v = malloc(slots * sizeof(char *) + len + 1);
	if (!v)
		return NULL;
	char *text = (char *)(v + slots);
	memcpy(text, s, len);
	text[len] = '\0';
	size_t n = 0;
	for (size_t i = 0; i < len; i++) {
		bool sep = text[i] == ' ' || text[i] == '\t';
		if (sep)
			text[i] = '\0';
		else if (i == 0 || text[i - 1] == '\0')
			v[n++] = text + i;
	}
	for (size_t i = n; i < slots; i++)
		v[i] = NULL;
	return v;
}

struct env_add {
	const char *key;
	size_t klen;
	const char *val;      /* NULL: remove the variable */
	size_t vlen;
};

static size_t count_env(char **e)
{
	size_t n = 0;
	while (e[n])
		n++;
	return n;
}

/* Our environment with adds[0..n) applied in order (later wins). One
 * malloc'd block; NULL on OOM. */
static char **make_env(const struct env_add *adds, size_t n)
{
	char **base = environ ? environ : (char *[]){NULL};
	size_t nb = count_env(base), bytes = 0;
	for (size_t i = 0; i < n; i++)
		bytes += adds[i].klen + adds[i].vlen + 2;
	size_t slots = nb + n + 1;
	char **v = malloc(slots * sizeof(char *) + bytes);
	if (!v)
		return NULL;
	memcpy(v, base, nb * sizeof(char *));
	size_t count = nb;
	char *p = (char *)(v + slots);
	for (size_t i = 0; i < n; i++) {
		const struct env_add *a = &adds[i];
		size_t j = 0;
		while (j < count && !(strncmp(v[j], a->key, a->klen) == 0 && v[j][a->klen] == '='))
			j++;
		if (!a->val) {
			if (j < count)
				memmove(&v[j], &v[j + 1], (--count - j) * sizeof(char *));
			continue;
		}
		v[j] = p;
		if (j == count)
			count++;
		memcpy(p, a->key, a->klen);
		p[a->klen] = '=';
		memcpy(p + a->klen + 1, a->val, a->vlen);
		p[a->klen + 1 + a->vlen] = '\0';
		p += a->klen + a->vlen + 2;
	}
	v[count] = NULL;
	return v;
}

static void add_kvs(struct env_add *adds, size_t *n, const struct dr_kvlist *kv)
{
	for (uint32_t i = 0; i < kv->n; i++) {
		const struct dr_kv *e = &kv->v[i];
		if (!e->key.s)
			continue;
		adds[(*n)++] = (struct env_add){e->key.s, e->key.len,
						e->value.s ? e->value.s : "", e->value.s ? e->value.len : 0};
	}
}

static char **attempt_env(const struct exec_attempt *a, const struct texts *tx)
{
	const struct dagrun_workflow *wf = a->wf;
	size_t max = tx->wenv.n + tx->tenv.n + 4, n = 0;
	struct env_add *adds = malloc(max * sizeof(*adds));
	if (!adds)
		return NULL;
	char attempt[16];
	snprintf(attempt, sizeof(attempt), "%" PRIu32, a->attempt);
	const char *id = wf->ids.entries ? wf_task_id(wf, a->task) : "";
	add_kvs(adds, &n, &tx->wenv);
	add_kvs(adds, &n, &tx->tenv);
	/* Absent ones are removed: a dagrun run inside a task must not pass
	 * on the outer task's values. */
	const char *run = a->run_id, *outf = a->output_file;
	adds[n++] = (struct env_add){"DAGRUN_RUN_ID", 13, run, run ? strlen(run) : 0};
	adds[n++] = (struct env_add){"DAGRUN_TASK_ID", 14, id, strlen(id)};
	adds[n++] = (struct env_add){"DAGRUN_ATTEMPT", 14, attempt, strlen(attempt)};
	adds[n++] = (struct env_add){"DAGRUN_OUTPUT", 13, outf, outf ? strlen(outf) : 0};
	char **env = make_env(adds, n);
	free(adds);
	return env;
}

/* The working directory: a relative workdir is taken from the workflow's
 * directory. Returns 0 and *out (malloc'd, or NULL: ours), or -ENOMEM. */
static int attempt_workdir(const struct dagrun_workflow *wf, const struct texts *tx,
			   char **out)
{
	*out = NULL;
	const struct dr_text *w = tx->has_workdir ? &tx->workdir : NULL;
	struct buf b = BUF_INIT;
	int r = 0;
	if (w && w->s && w->len) {
		if (w->s[0] != '/' && wf->dir && *wf->dir)
			r = buf_printf(&b, "%s/", wf->dir);
		if (r == 0)
			r = buf_add(&b, w->s, w->len);
	} else if (wf->dir && *wf->dir) {
		r = buf_adds(&b, wf->dir);
	} else {
		return 0;
	}
	if (r < 0) {
		buf_free(&b);
		return -ENOMEM;
	}
	*out = buf_steal(&b);
	return *out ? 0 : -ENOMEM;
}

/* Writes body to a new private temporary file. Returns 0 and *path
 * (malloc'd), or -errno (nothing left behind). */
static int write_script(const struct dr_text *body, char **path)
{
	const char *dir = getenv("TMPDIR");
	if (!dir || dir[0] != '/')
		dir = "/tmp";    /* a relative one would move with the workdir */
	char *p = msg("%s/dagrun-script-XXXXXX", dir);
	if (!p)
		return -ENOMEM;
	int fd = mkostemp(p, O_CLOEXEC);   /* mode 0600 */
	int err = 0;
	if (fd < 0) {
		err = -errno;
		goto out;
	}
	const char *s = body->s ? body->s : "";
	size_t left = body->s ? body->len : 0;
	while (left) {
		ssize_t n = write(fd, s, left);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			err = -errno;
			break;
		}
		s += n;
		left -= (size_t)n;
	}
	if (close(fd) < 0 && !err)
		err = -errno;
	if (err < 0)
		unlink(p);
out:
	if (err < 0) {
		free(p);
		p = NULL;
	}
	*path = p;
	return err;
}

/* ---- rendering the task's strings for this attempt ------------------------ */

/* *dst = src with its templates rendered (a copy in the arena), or src
 * itself when it has none. Records the first error in tx->err. */
static void render_text(struct exec_attempt *a, struct texts *tx, const struct dr_text *src,
			enum exec_render_mode mode, struct dr_text *dst)
{
	*dst = *src;
	if (!src->s || !a->render || tx->err || !memmem(src->s, src->len, "{{", 2))
		return;
	struct buf b = BUF_INIT;
	char *err = NULL;
	if (a->render(a, src, mode, &b, &err) < 0) {
		tx->err = err ? err : strdup("template error");
	} else {
		dst->s = arena_strndup(&tx->arena, b.data ? b.data : "", b.len);
		dst->len = (uint32_t)b.len;
		if (!dst->s && !tx->err)
			tx->err = strdup("out of memory rendering a template");
	}
	buf_free(&b);
}

static void render_kvs(struct exec_attempt *a, struct texts *tx, const struct dr_kvlist *src,
		       struct dr_kvlist *dst)
{
	*dst = *src;
	bool any = false;
	for (uint32_t i = 0; i < src->n && !any; i++)
		any = src->v[i].value.s && memmem(src->v[i].value.s, src->v[i].value.len, "{{", 2);
	if (!any || !a->render)
		return;
	struct dr_kv *v = arena_alloc(&tx->arena, src->n * sizeof(*v));
	if (!v) {
		tx->err = strdup("out of memory rendering a template");
		return;
	}
	for (uint32_t i = 0; i < src->n; i++) {
		v[i].key = src->v[i].key;
		render_text(a, tx, &src->v[i].value, EXEC_RENDER_PLAIN, &v[i].value);
	}
	dst->v = v;
}

/* Renders every string the attempt uses. Returns 0, or -ENOMEM; a template
 * error is left in st->tx.err (the attempt then fails, class permanent). */
static int render_texts(struct cmd_attempt *st, const struct dr_task *t,
			const struct dr_task_opts *opts)
{
	struct exec_attempt *a = st->a;
	struct texts *tx = &st->tx;
	if (a->variant == COMMAND_VARIANT_COMMAND) {
		const struct dr_command *c = t->spec;
		tx->cmd = *c;
		if (c->str.s) {
			render_text(a, tx, &c->str, EXEC_RENDER_SHELL, &tx->cmd.str);
		} else if (c->argc) {
			struct dr_text *v = arena_alloc(&tx->arena, c->argc * sizeof(*v));
			if (!v)
				return -ENOMEM;
			for (uint32_t i = 0; i < c->argc; i++)
				render_text(a, tx, &c->argv[i], EXEC_RENDER_ARGV, &v[i]);
			tx->cmd.argv = v;
		}
	} else {
		/* Validation refused templates in scripts of other interpreters. */
		const struct dr_script *sc = t->spec;
		render_text(a, tx, &sc->body, EXEC_RENDER_SHELL, &tx->body);
	}
	render_kvs(a, tx, &a->wf->env, &tx->wenv);
	render_kvs(a, tx, &opts->env, &tx->tenv);
	if (opts->workdir) {
		tx->has_workdir = true;
		render_text(a, tx, opts->workdir, EXEC_RENDER_PLAIN, &tx->workdir);
	}
	return 0;
}

/* ---- NUL: what a process cannot receive ------------------------------------ */

/* Fails the attempt (tx->err) when t, as rendered, holds a NUL: argv,
 * the environment, paths and the script's text are C strings, and would
 * silently end there. `src` gives the position in the workflow. */
static void refuse_nul(const struct exec_attempt *a, struct texts *tx, const struct dr_text *t,
		       const struct dr_text *src, const char *what, const char *name)
{
	if (tx->err || !t->s || !memchr(t->s, '\0', t->len))
		return;
	const struct dagrun_workflow *wf = a->wf;
	const char *id = wf->ids.entries ? wf_task_id(wf, a->task) : "?";
	tx->err = msg("%s:%u:%u: %s%s%s%s of task '%s' holds a NUL character (\\0) once "
		      "rendered, which a process cannot receive", wf->path ? wf->path : "?",
		      src->line, src->col, what, name ? " '" : "", name ? name : "",
		      name ? "'" : "", id);
	if (!tx->err)
		tx->err = strdup("a NUL character in a rendered string");
}

static void refuse_nul_kvs(const struct exec_attempt *a, struct texts *tx,
			   const struct dr_kvlist *kv, const struct dr_kvlist *src)
{
	for (uint32_t i = 0; i < kv->n && !tx->err; i++) {
		const struct dr_kv *e = &kv->v[i];
		refuse_nul(a, tx, &e->key, &src->v[i].key, "an env name", NULL);
		refuse_nul(a, tx, &e->value, &src->v[i].value, "env", e->key.s);
	}
}

/* Every string the process gets, once rendered. Validation refuses a NUL
 * written in the file; a template can still render one (a variable, an
 * upstream output), in a mode that does not escape it (env, workdir). */
static void refuse_nuls(struct cmd_attempt *st, const struct dr_task *t,
			const struct dr_task_opts *opts)
{
	struct exec_attempt *a = st->a;
	struct texts *tx = &st->tx;
	if (a->variant == COMMAND_VARIANT_COMMAND) {
		const struct dr_command *c = t->spec;
		refuse_nul(a, tx, &tx->cmd.str, &c->str, "the command", NULL);
		for (uint32_t i = 0; i < tx->cmd.argc && !c->str.s; i++)
			refuse_nul(a, tx, &tx->cmd.argv[i], &c->argv[i], "an argument of the command",
				   NULL);
	} else {
		const struct dr_script *sc = t->spec;
		refuse_nul(a, tx, &tx->body, &sc->body, "the script", NULL);
		refuse_nul(a, tx, &sc->interpreter, &sc->interpreter, "the interpreter", NULL);
	}
	refuse_nul_kvs(a, tx, &tx->wenv, &a->wf->env);
	refuse_nul_kvs(a, tx, &tx->tenv, &opts->env);
	if (tx->has_workdir)
		refuse_nul(a, tx, &tx->workdir, opts->workdir, "the workdir", NULL);
}

/* ---- running an attempt -------------------------------------------------- */

static void attempt_free(struct cmd_attempt *st)
{
	arena_free(&st->tx.arena);
	free(st->tx.err);
	exec_result_free(&st->res);
	free(st->program);
	free(st->workdir);
	free(st);
}

static void on_later_closed(uv_handle_t *h)
{
	attempt_free(h->data);
}

/* Classifies, reports and releases the attempt. */
static void end_attempt(struct cmd_attempt *st, bool has_timer)
{
	struct exec_attempt *a = st->a;
	if (st->script) {
		unlink(st->script);
		free(st->script);
		st->script = NULL;
	}
	st->res.cancelled |= st->cancelled;
	command_classify(&st->res, &st->oc);
	st->cx->live--;
	a->priv = NULL;
	a->on_done(a, &st->res);
	if (has_timer)
		uv_close((uv_handle_t *)&st->later, on_later_closed);
	else
		attempt_free(st);
}

static void on_proc_output(struct proc *p, enum proc_stream s, const char *data,
			   size_t len, void *ud)
{
	(void)p;
	struct cmd_attempt *st = ud;
	if (st->a->on_output)
		st->a->on_output(st->a, s == PROC_STDOUT ? EXEC_STDOUT : EXEC_STDERR, data, len);
}

static void on_proc_exit(struct proc *p, struct proc_result *pr, void *ud)
{
	(void)p;
	struct cmd_attempt *st = ud;
	struct exec_result *r = &st->res;
	st->proc = NULL;
	r->exit_code = pr->exit_code;
	r->term_signal = pr->term_signal;
	r->timed_out = pr->timed_out;
	r->cancelled = pr->cancelled;
	r->start_ms = pr->start_ms;
	r->end_ms = pr->end_ms;
	r->duration_ms = pr->duration_ms;
	r->cpu_user_ms = pr->cpu_user_ms;
	r->cpu_sys_ms = pr->cpu_sys_ms;
	r->max_rss_kb = pr->max_rss_kb;
	r->out = pr->out;
	r->err = pr->err;
	pr->out = (struct buf)BUF_INIT;
	pr->err = (struct buf)BUF_INIT;
	r->out_bytes = pr->out_bytes;
	r->err_bytes = pr->err_bytes;
	r->out_dropped = pr->out_truncated ? pr->out_bytes - r->out.len : 0;
	r->err_dropped = pr->err_truncated ? pr->err_bytes - r->err.len : 0;
	st->oc.signalled = pr->signalled;
	end_attempt(st, false);
}

static void on_later(uv_timer_t *t)
{
	end_attempt(t->data, true);
}

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* The argv for a's task, malloc'd in one block; *shell tells whether a
 * string went to /bin/sh. Returns NULL on OOM. */
static char **attempt_argv(struct cmd_attempt *st, const struct dr_task *t, bool force_shell,
			   bool *direct)
{
	*direct = false;
	if (st->a->variant == COMMAND_VARIANT_SCRIPT) {
		const struct dr_text *in = &((const struct dr_script *)t->spec)->interpreter;
		const char *s = in->s && in->len ? in->s : DEFAULT_INTERPRETER;
		size_t len = in->s && in->len ? in->len : strlen(DEFAULT_INTERPRETER);
		char **v = split_words(s, len, 1);
		if (!v)
			return NULL;
		size_t n = 0;
		while (v[n])
			n++;
		v[n] = st->script;
		return v;
	}
	const struct dr_command *c = &st->tx.cmd;
	if (!c->str.s) {
		char **v = malloc((c->argc + 1) * sizeof(char *));
		if (!v)
			return NULL;
		for (uint32_t i = 0; i < c->argc; i++)
			v[i] = (char *)(c->argv[i].s ? c->argv[i].s : "");
		v[c->argc] = NULL;
		return v;
	}
	if (!force_shell && !command_needs_shell(c->str.s, c->str.len)) {
		*direct = true;
		return split_words(c->str.s, c->str.len, 0);
	}
	char **v = malloc(4 * sizeof(char *) + c->str.len + 1);
	if (!v)
		return NULL;
	char *text = (char *)(v + 4);
	memcpy(text, c->str.s, c->str.len);
	text[c->str.len] = '\0';
	v[0] = "/bin/sh";
	v[1] = "-c";
	v[2] = text;
	v[3] = NULL;
	return v;
}

/* Spawns the attempt's process. Returns 0 (started), a positive errno (the
 * spawn failed: report it), or -errno (nothing could be set up). */
static int spawn(struct cmd_attempt *st, const struct dr_task *t, const struct dr_task_opts *opts,
		 char **env)
{
	bool direct;
	int err = 0;
	char **argv = attempt_argv(st, t, false, &direct);
	if (!argv)
		return -ENOMEM;
	if (argv[0] == NULL) {
		free(argv);
		return ENOENT;           /* an empty argv or interpreter */
	}
	struct proc_opts po = {
		.argv = argv, .envp = env, .cwd = st->workdir,
		.timeout_ms = opts->timeout_ms, .kill_grace_ms = opts->kill_grace_ms,
		.out_cap = EXEC_OUTPUT_CAP, .on_output = on_proc_output,
		.on_exit = on_proc_exit, .ud = st,
	};
	if (!(st->program = strdup(argv[0]))) {
		err = -ENOMEM;
		goto out;
	}
	err = proc_start(st->cx->runner, &po, &st->proc);
	if (err == -ENOEXEC && direct) {
		/* Not a binary nor a #! script: the shell runs it, as execvp would. */
		free(argv);
		if (!(argv = attempt_argv(st, t, true, &direct))) {
			err = -ENOMEM;
			goto out;
		}
		po.argv = argv;
		err = proc_start(st->cx->runner, &po, &st->proc);
	}
	if (err < 0)
		err = -err;
out:
	free(argv);
	return err;
}

static int command_start(struct executor *ex, struct exec_attempt *a)
{
	struct command_executor *cx = (struct command_executor *)ex;
	const struct dagrun_workflow *wf = a->wf;
	const struct dr_task *t = &wf->tasks[a->task];
	if ((a->variant != COMMAND_VARIANT_COMMAND && a->variant != COMMAND_VARIANT_SCRIPT) ||
	    !t->spec)
		return -EINVAL;
	const struct dr_task_opts *opts = t->opts ? t->opts : &wf->default_opts;
	char **env = NULL;
	int err = 0;
	struct cmd_attempt *st = calloc(1, sizeof(*st));
	if (!st)
		return -ENOMEM;
	st->cx = cx;
	st->a = a;
	st->res.exit_code = -1;
	st->oc.timeout_ms = opts->timeout_ms;
	st->oc.retry = &opts->retry;
	st->res.start_ms = now_ms();
	if ((err = render_texts(st, t, opts)) < 0)
		goto out;
	refuse_nuls(st, t, opts);
	if (st->tx.err) {
		st->oc.template_err = st->tx.err;
		goto later;
	}
	if ((err = attempt_workdir(wf, &st->tx, &st->workdir)) < 0)
		goto out;
	st->oc.workdir = st->workdir;
	if (!(env = attempt_env(a, &st->tx))) {
		err = -ENOMEM;
		goto out;
	}
	if (a->variant == COMMAND_VARIANT_SCRIPT &&
	    (err = write_script(&st->tx.body, &st->script)) < 0) {
		if (err == -ENOMEM)
			goto out;
		st->oc.script_err = -err;
	} else if ((err = spawn(st, t, opts, env)) < 0) {
		goto out;
	} else if (err > 0) {
		st->oc.spawn_err = err;
		if (st->workdir && (err == ENOENT || err == ENOTDIR || err == EACCES) &&
		    access(st->workdir, X_OK) < 0)
			st->oc.workdir_err = errno;
	}
	st->oc.program = st->program;
	err = 0;
later:
	if (st->oc.script_err || st->oc.spawn_err || st->oc.template_err) {
		/* Report from the loop, never from inside start(). */
		st->res.end_ms = st->res.start_ms;
		uv_timer_init(cx->loop, &st->later);
		st->later.data = st;
		uv_timer_start(&st->later, on_later, 0, 0);
	}
	cx->live++;
	a->priv = st;
	st = NULL;
out:
	free(env);
	if (st) {
		if (st->script) {
			unlink(st->script);
			free(st->script);
		}
		attempt_free(st);
	}
	return err;
}

static void command_cancel(struct executor *ex, struct exec_attempt *a, bool hard)
{
	(void)ex;
	struct cmd_attempt *st = a->priv;
	if (!st)
		return;
	st->cancelled = true;
	if (st->proc)
		proc_kill(st->proc, hard);
}

static void command_destroy(struct executor *ex)
{
	struct command_executor *cx = (struct command_executor *)ex;
	if (!cx)
		return;
	/* Whatever the tasks left behind must not outlive the engine. */
	proc_runner_kill_all(cx->runner);
	proc_runner_free(cx->runner);
	free(cx);
}

void command_executor_kill_all(struct executor *ex)
{
	proc_runner_kill_all(((struct command_executor *)ex)->runner);
}

int command_executor_adopt(struct executor *ex)
{
	return proc_runner_adopt(((struct command_executor *)ex)->runner);
}

int command_executor_guard(struct executor *ex, const char *run_id)
{
	return proc_runner_guard(((struct command_executor *)ex)->runner, "DAGRUN_RUN_ID",
				 run_id);
}

/* Before the run's first task: the tasks die with this process (the
 * watchdog); on request, what escapes their groups is ours to reap and
 * kill (a subreaper). */
static int command_begin(struct executor *ex, const char *run_id, unsigned process_flags)
{
	int r = 0;
	if (process_flags & DAGRUN_PROC_SUBREAPER)
		r = command_executor_adopt(ex);
	return r < 0 ? r : command_executor_guard(ex, run_id);
}

static const struct executor_ops command_ops = {
	.name = "command",
	.start = command_start,
	.cancel = command_cancel,
	.destroy = command_destroy,
	.begin = command_begin,
};

struct executor *command_executor_new(uv_loop_t *loop)
{
	struct command_executor *cx = calloc(1, sizeof(*cx));
	if (!cx)
		return NULL;
	cx->base.ops = &command_ops;
	cx->loop = loop;
	if (proc_runner_new(loop, &cx->runner) < 0) {
		free(cx);
		return NULL;
	}
	return &cx->base;
}
