/* flow_secrets.c: the run's secrets: the redactor and what masks through
 * it; the secrets a workflow names (secrets.X in any text, a kind's secret
 * variables, its sub-workflows' too), found in one pass at start that also
 * marks which results are read; the secrets file (dotenv), whose entries
 * extend the environment expressions read.
 *
 * Invariant: every secret is in the redactor before the first task starts
 * or before its value can reach any output; the secrets file's text is
 * wiped once read.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "expr/check.h"
#include "expr/redact.h"
#include "sched/flow_int.h"
#include "util/diag.h"
#include "util/dotenv.h"
#include "util/env.h"

extern char **environ;

/* ---- secrets ------------------------------------------------------------------ */

bool flow_redacting(const struct flow *f)
{
	return f && f->red && redact_patterns(f->red) > 0;
}

int flow_redact(const struct flow *f, const char *text, size_t len, struct buf *out)
{
	if (!flow_redacting(f))
		return buf_add(out, text, len);
	return redact_text(f->red, text, len, out);
}

int flow_redact_slice(const struct flow *f, const char *text, size_t len, size_t start,
		      size_t end, int cut, struct buf *out)
{
	if (!flow_redacting(f))
		return buf_add(out, text + start, end - start);
	return redact_slice(f->red, text, len, start, end, cut, out);
}

const struct redactor *flow_redactor(const struct flow *f)
{
	return f ? f->red : NULL;
}

struct redact_stream *flow_stream_new(const struct flow *f)
{
	if (!flow_redacting(f))
		return NULL;
	struct redact_stream *s = calloc(1, sizeof(*s));
	if (s)
		redact_stream_init(s, f->red);
	return s;
}

void flow_stream_free(struct redact_stream *s)
{
	if (!s)
		return;
	redact_stream_free(s);
	free(s);
}

/* Registers the value of every `secrets.NAME` / secrets["NAME"] in src. */
static int register_secrets(struct flow *f, const char *src, size_t len)
{
	const char *p = src, *end = src + len;
	while ((p = memmem(p, (size_t)(end - p), "secrets", 7))) {
		p += 7;
		if (p < end && (*p == '.' || *p == '[')) {
			const char *q = p + 1;
			if (*p == '[')
				q += q < end && (*q == '"' || *q == '\'');
			const char *n = q;
			while (q < end && (isalnum((unsigned char)*q) || *q == '_' || *q == '-'))
				q++;
			char name[256];
			if (q > n && (size_t)(q - n) < sizeof(name)) {
				memcpy(name, n, (size_t)(q - n));
				name[q - n] = '\0';
				const char *v = env_get(f->env, name);
				int r = v ? redact_add(f->red, v, strlen(v)) : 0;
				if (r < 0 && r != -E2BIG)
					return r;
				if (r == REDACT_TOO_SHORT) {
					char who[300];
					snprintf(who, sizeof(who), "secret '%s'", name);
					flow_warn_short(f, UINT32_MAX, who);
				}
			}
		}
	}
	return 0;
}

/* One pass over a workflow's texts: f's own (keep set: which results are
 * read) or a sub-workflow's (keep NULL: only its secrets, for the run's
 * redactor). */
struct scan {
	struct flow *f;
	const struct dagrun_workflow *wf;
	uint8_t *keep;
	const struct dagrun_workflow **seen;   /* sub-workflows scanned */
	size_t n_seen;
	int err;
};

/* Marks the tasks the names of refs read, when keeping. */
static void keep_refs(struct scan *sc, const struct expr_refs *refs)
{
	const struct dagrun_workflow *wf = sc->wf;
	for (size_t k = 0; sc->keep && k < refs->n; k++)
		if (refs->v[k].kind == EXPR_NAME_TASK) {
			uint32_t s = intern_find(&wf->ids, refs->v[k].name, strlen(refs->v[k].name));
			if (s != INTERN_NONE && wf->sym_task[s] != UINT32_MAX)
				sc->keep[wf->sym_task[s]] = 1;
		}
}

/* Notes which results are read and which secrets are named, for one text. */
static int scan_text(void *ud, uint32_t t, const struct dr_text *x, enum dr_text_use use)
{
	(void)t;
	(void)use;
	struct scan *sc = ud;
	struct flow *f = sc->f;
	if (!tpl_has_template(x->s, x->len))
		return 0;
	int r = register_secrets(f, x->s, x->len);
	if (r < 0)
		return sc->err = r;
	struct tpl tp = {0};
	struct expr_error e = {0};
	if (sc->keep && tpl_parse(x->s, x->len, &tp, &e) == 0) {
		for (size_t i = 0; i < tp.n; i++) {
			if (tp.segs[i].kind != TPL_EXPR)
				continue;
			struct expr_refs refs = {0};
			if (expr_check(NULL, x->s + tp.segs[i].off, tp.segs[i].len, 0, &refs, &e) == 0)
				keep_refs(sc, &refs);
			expr_refs_free(&refs);
		}
	}
	tpl_free(&tp);
	return 0;
}

static int scan_expr(struct scan *sc, const struct dr_text *x)
{
	if (!x)
		return 0;
	int r = register_secrets(sc->f, x->s, x->len);
	if (r < 0 || !sc->keep)
		return r;
	struct expr_refs refs = {0};
	struct expr_error e = {0};
	if (expr_check(NULL, x->s, x->len, EXPR_CHECK_CONDITION, &refs, &e) == 0)
		keep_refs(sc, &refs);
	expr_refs_free(&refs);
	return 0;
}

/* Registers the value of an environment variable a task kind says holds
 * a secret (an AI task's API key). */
static int register_env(void *ud, const char *name)
{
	struct flow *f = ud;
	const char *v = name ? env_get(NULL, name) : NULL;
	int r = v ? redact_add(f->red, v, strlen(v)) : 0;
	if (r == REDACT_TOO_SHORT) {
		char who[300];
		snprintf(who, sizeof(who), "the secret in $%.200s", name);
		flow_warn_short(f, UINT32_MAX, who);
	}
	return r == -E2BIG || r == REDACT_TOO_SHORT ? 0 : r;
}

static int scan_workflow(struct scan *sc);

/* A sub-workflow a task runs: its secrets are the run's (each one once). */
static int scan_child(void *ud, const struct dagrun_workflow *child)
{
	struct scan *sc = ud;
	for (size_t i = 0; i < sc->n_seen; i++)
		if (sc->seen[i] == child)
			return 0;
	const struct dagrun_workflow **v = realloc(sc->seen, (sc->n_seen + 1) * sizeof(*v));
	if (!v)
		return -ENOMEM;
	sc->seen = v;
	sc->seen[sc->n_seen++] = child;
	struct scan c = *sc;
	c.wf = child;
	c.keep = NULL;
	int r = scan_workflow(&c);
	sc->seen = c.seen;
	sc->n_seen = c.n_seen;
	return r;
}

/* The texts of sc->wf: env, outputs, each task's texts, secret variables,
 * `when`, conditions; then its sub-workflows'. */
static int scan_workflow(struct scan *sc)
{
	const struct dagrun_workflow *wf = sc->wf;
	struct flow *f = sc->f;
	for (uint32_t i = 0; i < wf->env.n; i++)
		if (scan_text(sc, 0, &wf->env.v[i].value, DR_USE_PLAIN) || sc->err)
			return sc->err;
	for (uint32_t i = 0; i < wf->outputs.n; i++)
		if (scan_text(sc, 0, &wf->outputs.v[i].value, DR_USE_PLAIN) || sc->err)
			return sc->err;
	for (uint32_t t = 0; t < wf->n_tasks; t++) {
		const struct dr_task *k = &wf->tasks[t];
		if (dr_task_each_text(wf, t, scan_text, sc) || sc->err)
			return sc->err;
		const struct dr_kind *kd = k->kind < wf->n_kinds ? wf->kinds[k->kind] : NULL;
		int r = kd && kd->each_secret_env && k->spec ?
			kd->each_secret_env(wf, t, register_env, f) : 0;
		if (r == 0 && kd && kd->each_child && k->spec)
			r = kd->each_child(wf, t, scan_child, sc);
		if (r == 0)
			r = scan_expr(sc, k->opts->when);
		for (uint32_t i = 0; i < k->dep_count && r == 0; i++) {
			const struct dr_dep *d = &wf->deps[k->dep_first + i];
			if (d->condition) {
				if (sc->keep)
					sc->keep[d->target] = 1;
				r = scan_expr(sc, d->condition);
			}
		}
		if (r < 0)
			return r;
	}
	return 0;
}

/* Marks what must be kept; registers named secrets and API keys, the
 * sub-workflows' too (before the first task starts); one pass at start. */
int flow_scan(struct flow *f)
{
	struct scan sc = {.f = f, .wf = f->wf, .keep = f->keep};
	int r = scan_workflow(&sc);
	free(sc.seen);
	return r;
}

/* ---- the secrets file ------------------------------------------------------- */

/* Reads the secrets file (at most SECRETS_FILE_MAX; it may be a pipe). */
static int slurp(const char *path, struct buf *b, dagrun_diags *d)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	int r = 0;
	if (fd < 0 || fstat(fd, &st) < 0) {
		int e = errno;
		diag_add(d, DAGRUN_ERROR, NULL, 0, 0, "--secrets-file %s: %s", path, strerror(e));
		r = -EINVAL;
		goto out;
	}
	if (st.st_mode & (S_IRWXG | S_IRWXO)) {
		diag_add(d, DAGRUN_ERROR, NULL, 0, 0, "--secrets-file %s: others may read it "
			 "(mode %03o); run chmod 600 %s", path, (unsigned)st.st_mode & 0777, path);
		r = -EINVAL;
		goto out;
	}
	b->max = SECRETS_FILE_MAX;
	for (;;) {
		char chunk[16384];
		ssize_t n = read(fd, chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n < 0) {
				diag_add(d, DAGRUN_ERROR, NULL, 0, 0, "--secrets-file %s: %s", path,
					 strerror(errno));
				r = -EINVAL;
			}
			break;
		}
		if ((r = buf_add(b, chunk, (size_t)n)) < 0) {
			if (r == -E2BIG) {
				diag_add(d, DAGRUN_ERROR, NULL, 0, 0, "--secrets-file %s: larger "
					 "than 1 MiB", path);
				r = -EINVAL;
			}
			break;
		}
	}
out:
	if (fd >= 0)
		close(fd);
	return r;
}

int flow_read_secrets(struct flow *f, const char *path, dagrun_diags *d)
{
	if (!path)
		return 0;
	struct buf text = BUF_INIT, kv = BUF_INIT;
	struct dotenv_entry e = {.value = BUF_INIT};
	char **env = NULL;
	int r = slurp(path, &text, d);
	if (r < 0)
		goto out;
	if (text.len && memchr(text.data, '\0', text.len)) {
		diag_add(d, DAGRUN_ERROR, NULL, 0, 0, "--secrets-file %s: holds a NUL byte", path);
		r = -EINVAL;
		goto out;
	}
	size_t n_env = 0;
	while (environ[n_env])
		n_env++;
	size_t cap = n_env + 64, n = n_env;
	if (!(env = malloc((cap + 1) * sizeof(*env)))) {
		r = -ENOMEM;
		goto out;
	}
	memcpy(env, environ, n_env * sizeof(*env));
	const char *p = text.data ? text.data : "", *end = p + text.len, *why = NULL;
	unsigned no = 0;
	while (p < end) {
		int k = dotenv_next(&p, end, &no, &e, &why);
		if (k == -ENOMEM) {
			r = k;
			goto out;
		}
		if (k < 0) {
			diag_add(d, DAGRUN_ERROR, path, e.line, 1, "%s", why);
			r = -EINVAL;
			continue;
		}
		if (k == 0)
			continue;
		if (n == cap) {
			char **e2 = realloc(env, (cap * 2 + 1) * sizeof(*env));
			if (!e2) {
				r = -ENOMEM;
				goto out;
			}
			env = e2;
			cap *= 2;
		}
		buf_reset(&kv);
		char *s = NULL;
		if (buf_printf(&kv, "%.*s=", (int)e.key_len, e.key) < 0 ||
		    buf_add(&kv, e.value.data ? e.value.data : "", e.value.len) < 0 ||
		    !(s = arena_strndup(&f->arena, kv.data, kv.len))) {
			r = -ENOMEM;
			goto out;
		}
		int a = redact_add(f->red, e.value.data ? e.value.data : "", e.value.len);
		if (a == -ENOMEM) {
			r = a;
			goto out;
		}
		if (a == REDACT_TOO_SHORT) {
			char who[400];
			snprintf(who, sizeof(who), "--secrets-file %.200s line %u: the secret '%.*s'",
				 path, e.line, (int)(e.key_len > 100 ? 100 : e.key_len), e.key);
			flow_warn_short(f, UINT32_MAX, who);
		}
		env[n++] = s;   /* the process environment is searched first */
	}
	if (r == 0) {
		env[n] = NULL;
		f->env = env;
		env = NULL;
	}
out:
	free(env);
	buf_free(&e.value);
	buf_free(&kv);
	if (text.data)
		memset(text.data, 0, text.len);
	buf_free(&text);
	return r;
}
