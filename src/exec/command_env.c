/* command_env.c: what the process of a command or script attempt gets:
 * its strings rendered (and refused when they hold a NUL once rendered),
 * its argv, its environment, its working directory, the script's file.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "exec/command_int.h"

#define DEFAULT_INTERPRETER "/bin/sh -e"

extern char **environ;

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

char **cmd_attempt_env(const struct exec_attempt *a, const struct texts *tx)
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
int cmd_attempt_workdir(const struct dagrun_workflow *wf, const struct texts *tx,
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
int cmd_write_script(const struct dr_text *body, char **path)
{
	const char *dir = getenv("TMPDIR");
	if (!dir || dir[0] != '/')
		dir = "/tmp";    /* a relative one would move with the workdir */
	char *p = buf_strf("%s/dagrun-script-XXXXXX", dir);
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
int cmd_render_texts(struct cmd_attempt *st, const struct dr_task *t,
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
	tx->err = buf_strf("%s:%u:%u: %s%s%s%s of task '%s' holds a NUL character (\\0) once "
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
void cmd_refuse_nuls(struct cmd_attempt *st, const struct dr_task *t,
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


/* The argv for a's task, malloc'd in one block; *shell tells whether a
 * string went to /bin/sh. Returns NULL on OOM. */
char **cmd_attempt_argv(struct cmd_attempt *st, const struct dr_task *t, bool force_shell,
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
