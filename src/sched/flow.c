/* flow.c: templates, conditions, results and secrets during a run; see
 * flow.h for the invariants.
 *
 * Compiled templates and expressions live in one open-addressing table
 * keyed by the address of the model's dr_text (the model never moves while
 * a run uses it). Results are kept per task in `res`, NULL until the task
 * is final or when nothing can read them.
 */
#include "flow.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "expr/check.h"
#include "expr/expr.h"
#include "expr/redact.h"
#include "expr/template.h"
#include "expr/value.h"
#include "util/arena.h"
#include "util/diag.h"

#define OUTPUT_KEEP_MAX ((size_t)1 << 20)   /* bytes of `output` kept: 1 MiB */
#define SECRETS_FILE_MAX ((size_t)1 << 20)
#define PENDING_WARN_MAX 64                 /* warnings kept before flow_set_warn */

extern char **environ;

/* A compiled template or bare expression. */
struct compiled {
	const struct dr_text *key;   /* NULL: empty slot */
	bool is_expr;                /* a bare expression (condition, when) */
	int id;                      /* is_expr: the compiled id */
	struct tpl tpl;              /* else: the template */
	int err;                     /* < 0: it failed to compile */
	char *msg;                   /* the compile error, FILE:LINE:COL: ... */
};

/* What later expressions can read of a final task. */
struct fres {
	struct expr_result er;
	char *output;                /* redacted, capped */
	struct expr_outputs outs;
	struct expr_kv *headers;
	size_t n_headers;
	char *error;
	char *strings;               /* header names and values, one block */
};

struct flow {
	const struct dagrun_workflow *wf;
	struct expr_engine *ex;
	struct redactor *red;
	bool shared;                 /* red and env are the parent's (a sub-run) */
	struct arena arena;
	struct dr_value *vars;       /* variables after --var, or NULL */
	char **env;                  /* environment + secrets file, or NULL */
	struct compiled *tab;
	size_t tab_n, tab_cap;       /* entries, slots (a power of two) */
	struct fres **res;           /* by task */
	uint8_t *keep;               /* by task: someone reads its result */
	const char *run_id;
	flow_warn_fn warn_fn;
	void *warn_ud;
	char **pending;              /* warnings before warn_fn was set */
	size_t n_pending, pending_lost;
	size_t shorts_warned;        /* redact_short_count() already warned of */
};

/* ---- warnings ------------------------------------------------------------ */

static void flow_warn(struct flow *f, uint32_t t, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void flow_warn(struct flow *f, uint32_t t, const char *fmt, ...)
{
	struct buf b = BUF_INIT;
	va_list ap;
	va_start(ap, fmt);
	int r = buf_vprintf(&b, fmt, ap);
	va_end(ap);
	const char *msg = r < 0 ? "a warning was lost (out of memory)" : b.data;
	if (f->warn_fn) {
		f->warn_fn(f->warn_ud, t, msg);
	} else if (f->n_pending < PENDING_WARN_MAX && r == 0 &&
		   (f->pending || (f->pending = calloc(PENDING_WARN_MAX, sizeof(char *))))) {
		f->pending[f->n_pending++] = buf_steal(&b);
	} else {
		f->pending_lost++;
	}
	buf_free(&b);
}

void flow_set_warn(struct flow *f, flow_warn_fn fn, void *ud)
{
	f->warn_fn = fn;
	f->warn_ud = ud;
	if (!fn)
		return;
	for (size_t i = 0; i < f->n_pending; i++) {
		if (f->pending[i])
			fn(ud, UINT32_MAX, f->pending[i]);
		free(f->pending[i]);
	}
	if (f->pending_lost)
		flow_warn(f, UINT32_MAX, "%zu more warnings were lost", f->pending_lost);
	free(f->pending);
	f->pending = NULL;
	f->n_pending = f->pending_lost = 0;
}

/* Warns once per new secret too short to mask; who: where it comes from
 * ("secret 'X'"), or NULL (read by an expression, name unknown). */
static void warn_short(struct flow *f, uint32_t t, const char *who)
{
	size_t n = redact_short_count(f->red);
	if (n <= f->shorts_warned)
		return;
	f->shorts_warned = n;
	char task[160] = "";
	if (t != UINT32_MAX)
		snprintf(task, sizeof(task), "task '%.100s': ", wf_task_id(f->wf, t));
	flow_warn(f, t, "%s%s is shorter than %d bytes: it cannot be masked usefully, so it "
		  "is not masked and may appear in output as is", task,
		  who ? who : "a secret read by an expression", REDACT_MIN_LEN);
}

/* ---- the cache ------------------------------------------------------------ */

static size_t slot_of(const struct flow *f, const void *key)
{
	uintptr_t h = (uintptr_t)key;
	h ^= h >> 17;
	h *= 0x9E3779B97F4A7C15ull;
	return (size_t)(h >> 20) & (f->tab_cap - 1);
}

static struct compiled *find(struct flow *f, const struct dr_text *key)
{
	if (!f->tab_cap)
		return NULL;
	for (size_t i = slot_of(f, key);; i = (i + 1) & (f->tab_cap - 1)) {
		if (f->tab[i].key == key)
			return &f->tab[i];
		if (!f->tab[i].key)
			return NULL;
	}
}

static struct compiled *insert(struct flow *f, const struct dr_text *key)
{
	if ((f->tab_n + 1) * 2 > f->tab_cap) {
		size_t cap = f->tab_cap ? f->tab_cap * 2 : 64;
		struct compiled *old = f->tab;
		size_t oldcap = f->tab_cap;
		f->tab = calloc(cap, sizeof(*f->tab));
		if (!f->tab) {
			f->tab = old;
			return NULL;
		}
		f->tab_cap = cap;
		for (size_t i = 0; i < oldcap; i++) {
			if (!old[i].key)
				continue;
			size_t j = slot_of(f, old[i].key);
			while (f->tab[j].key)
				j = (j + 1) & (cap - 1);
			f->tab[j] = old[i];
		}
		free(old);
	}
	size_t i = slot_of(f, key);
	while (f->tab[i].key)
		i = (i + 1) & (f->tab_cap - 1);
	f->tab[i].key = key;
	f->tab_n++;
	return &f->tab[i];
}

static char *located(const struct flow *f, const struct dr_text *x,
		     const struct expr_error *e, const char *what)
{
	unsigned line, col;
	dr_text_position(x, e->offset, &line, &col);
	char *m = NULL;
	if (asprintf(&m, "%s:%u:%u: %s: %s", f->wf->path, line, col, what, e->msg) < 0)
		return NULL;
	return m;
}

static struct compiled *compiled_of(struct flow *f, const struct dr_text *x, bool is_expr)
{
	struct compiled *c = find(f, x);
	if (c)
		return c;
	if (!(c = insert(f, x)))
		return NULL;
	struct expr_error e = {0};
	c->is_expr = is_expr;
	if (is_expr)
		c->err = expr_compile(f->ex, x->s, x->len, &c->id, &e);
	else if (!(c->err = tpl_parse(x->s, x->len, &c->tpl, &e)))
		c->err = tpl_compile(&c->tpl, f->ex, &e);
	if (c->err)
		c->msg = located(f, x, &e, is_expr ? "invalid expression" : "invalid template");
	return c;
}

/* ---- scope and results ---------------------------------------------------- */

static const struct expr_result *lookup(void *ud, const char *id)
{
	struct flow *f = ud;
	uint32_t sym = intern_find(&f->wf->ids, id, strlen(id));
	if (sym == INTERN_NONE || f->wf->sym_task[sym] == UINT32_MAX)
		return NULL;
	struct fres *r = f->res[f->wf->sym_task[sym]];
	return r ? &r->er : NULL;
}

static void scope(struct flow *f, struct expr_scope *sc, const struct expr_result *self)
{
	memset(sc, 0, sizeof(*sc));
	sc->run_id = f->run_id;
	sc->run_name = f->wf->name.s;
	sc->variables = f->vars ? f->vars : f->wf->variables;
	sc->environ = f->env;
	sc->lookup = lookup;
	sc->lookup_ud = f;
	sc->self = self;
}

static void fres_free(struct fres *r)
{
	if (!r)
		return;
	free(r->output);
	expr_outputs_free(&r->outs);
	free(r->headers);
	free(r->strings);
	free(r->error);
	free(r);
}

/* Copies the response headers (a JSON object of strings) for http.headers,
 * their values masked. */
static int copy_headers(struct flow *f, struct fres *fr, json_t *h)
{
	if (!h || !json_is_object(h))
		return 0;
	size_t n = json_object_size(h), bytes = 0, i = 0;
	const char *k;
	json_t *v;
	int r = 0;
	struct buf *mv = calloc(n ? n : 1, sizeof(*mv));
	if (!mv)
		return -ENOMEM;
	json_object_foreach(h, k, v) {
		const char *s = json_is_string(v) ? json_string_value(v) : "";
		size_t len = json_is_string(v) ? json_string_length(v) : 0;
		if (r == 0)
			r = flow_redact(f, s, len, &mv[i]);
		bytes += strlen(k) + 1 + mv[i++].len + 1;
	}
	fr->headers = calloc(n ? n : 1, sizeof(*fr->headers));
	fr->strings = malloc(bytes ? bytes : 1);
	if (r < 0 || !fr->headers || !fr->strings) {
		r = r < 0 ? r : -ENOMEM;
		goto out;
	}
	char *p = fr->strings;
	i = 0;
	json_object_foreach(h, k, v) {
		size_t kl = strlen(k), vl = mv[i].len;
		memcpy(p, k, kl + 1);
		fr->headers[fr->n_headers].key = p;
		p += kl + 1;
		if (vl)
			memcpy(p, mv[i].data, vl);
		p[vl] = '\0';
		fr->headers[fr->n_headers].value = p;
		fr->headers[fr->n_headers].value_len = vl;
		fr->n_headers++;
		p += vl + 1;
		i++;
	}
out:
	for (size_t j = 0; j < n; j++)
		buf_free(&mv[j]);
	free(mv);
	return r;
}

/* Masks t's outputs in place: a value holding a secret is masked; a key
 * holding one is dropped (with a warning: it names no output anyone could
 * read without the secret). */
static int mask_outputs(struct flow *f, uint32_t t, struct expr_outputs *o)
{
	if (!flow_redacting(f))
		return 0;
	struct buf b = BUF_INIT;
	size_t k = 0;
	int r = 0;
	for (size_t i = 0; i < o->n && r == 0; i++) {
		struct expr_kv kv = o->v[i];
		if (redact_contains(f->red, kv.key, strlen(kv.key))) {
			flow_warn(f, t, "task '%.100s': $DAGRUN_OUTPUT: a key holds a secret; that "
				  "output is ignored", wf_task_id(f->wf, t));
			continue;
		}
		if (redact_contains(f->red, kv.value, kv.value_len)) {
			buf_reset(&b);
			char *m = NULL;
			if ((r = redact_text(f->red, kv.value, kv.value_len, &b)) == 0 &&
			    !(m = arena_strndup(&o->arena, b.data ? b.data : "", b.len)))
				r = -ENOMEM;
			kv.value = m;
			kv.value_len = b.len;
		}
		o->v[k++] = kv;
	}
	o->n = k;
	buf_free(&b);
	return r;
}

/* Reads t's $DAGRUN_OUTPUT into fr, masked; warns of what it skipped. */
static int record_outputs(struct flow *f, uint32_t t, struct fres *fr, const char *path)
{
	int r = expr_outputs_read(path, &fr->outs);
	const char *id = wf_task_id(f->wf, t);
	for (size_t i = 0; i < fr->outs.n_warn; i++)
		flow_warn(f, t, "task '%.100s': $DAGRUN_OUTPUT %s", id, fr->outs.warn[i]);
	if (fr->outs.n_warn_more)
		flow_warn(f, t, "task '%.100s': $DAGRUN_OUTPUT: %zu more lines were ignored "
			  "(not shown)", id, fr->outs.n_warn_more);
	if (r == 0)
		r = mask_outputs(f, t, &fr->outs);
	if (r < 0) {
		expr_outputs_free(&fr->outs);
		return r;
	}
	fr->er.outputs = fr->outs.v;
	fr->er.n_outputs = fr->outs.n;
	return 0;
}

/* Outputs an executor produced itself (a sub-run's): copied, masked. */
static int take_outputs(struct flow *f, uint32_t t, struct fres *fr,
			const struct expr_outputs *o)
{
	int r = 0;
	for (size_t i = 0; i < o->n && r == 0; i++)
		if ((r = expr_outputs_set(&fr->outs, o->v[i].key, o->v[i].value,
					  o->v[i].value_len)) > 0)
			r = 0;   /* full: the producer capped its outputs already */
	if (r == 0)
		r = mask_outputs(f, t, &fr->outs);
	if (r < 0) {
		expr_outputs_free(&fr->outs);
		return r;
	}
	fr->er.outputs = fr->outs.v;
	fr->er.n_outputs = fr->outs.n;
	return 0;
}

int flow_record(struct flow *f, uint32_t t, int status, uint32_t attempts,
		uint64_t duration_ms, int error_class, const char *error,
		const struct exec_result *r, const char *output_file)
{
	if (!f->keep[t])
		return 0;
	fres_free(f->res[t]);
	struct fres *fr = f->res[t] = calloc(1, sizeof(*fr));
	if (!fr)
		return -ENOMEM;
	expr_result_init(&fr->er);
	fr->er.status = status;
	fr->er.attempts = attempts;
	fr->er.duration_ms = duration_ms;
	if (error_class)
		fr->er.error_class = dr_class_name((enum dr_error_class)error_class);
	struct buf out = BUF_INIT;
	int e;
	if (error) {
		if ((e = flow_redact(f, error, strlen(error), &out)) < 0 ||
		    !(fr->er.error_message = fr->error = buf_steal(&out))) {
			buf_free(&out);
			return e < 0 ? e : -ENOMEM;
		}
	}
	if (!r)
		return 0;
	fr->er.exit_code = r->exit_code;
	fr->er.output_truncated = r->out_dropped > 0 || r->out.len > OUTPUT_KEEP_MAX;
	/* What expressions read of the kind's own: http.status, usage.* */
	const struct dagrun_ext *pub = r->ext ? r->ext->pub : NULL;
	const struct dagrun_ext_http *h = (const void *)dagrun_ext_find(pub, DAGRUN_EXT_HTTP);
	const struct dagrun_ext_ai *ai = (const void *)dagrun_ext_find(pub, DAGRUN_EXT_AI);
	if (h)
		fr->er.http_status = h->status;
	if (ai && ai->prompt_tokens >= 0) {
		fr->er.prompt_tokens = ai->prompt_tokens;
		fr->er.completion_tokens = ai->completion_tokens;
	}
	/* Masked as it reads in the whole capture, so a secret across the cap
	 * is masked; when the capture itself was cut (bytes seen beyond it), a
	 * piece of a secret at its end is masked too. */
	size_t len = r->out.len, keep = len < OUTPUT_KEEP_MAX ? len : OUTPUT_KEEP_MAX;
	int cut = r->out_bytes > r->out.len ? REDACT_CUT_TAIL : 0;
	e = flow_redact_slice(f, r->out.data ? r->out.data : "", len, 0, keep, cut, &out);
	if (e < 0) {
		buf_free(&out);
		return e;
	}
	fr->er.output_len = out.len;
	fr->output = buf_steal(&out);
	fr->er.output = fr->output;
	if (!fr->output)
		return -ENOMEM;
	if ((e = copy_headers(f, fr, r->ext ? r->ext->headers : NULL)) < 0)
		return e;
	fr->er.headers = fr->headers;
	fr->er.n_headers = fr->n_headers;
	if (r->ext && r->ext->outputs)
		return take_outputs(f, t, fr, r->ext->outputs);
	return output_file ? record_outputs(f, t, fr, output_file) : 0;
}

/* ---- evaluation ------------------------------------------------------------- */

static char *eval_error(struct flow *f, const struct dr_text *x, const struct expr_error *e,
			const char *what)
{
	char *m = located(f, x, e, what);
	return m ? m : strdup(what);
}

/* The compiled form of x, or NULL with *r set: -ENOMEM, or its compile
 * error (the message, with its position, in *err). */
static struct compiled *usable(struct flow *f, const struct dr_text *x, bool is_expr,
			       int *r, char **err)
{
	struct compiled *c = compiled_of(f, x, is_expr);
	*r = c ? c->err : -ENOMEM;
	if (!c || !c->err)
		return c;
	*err = strdup(c->msg ? c->msg : is_expr ? "invalid expression" : "invalid template");
	return NULL;
}

static int eval_bool(struct flow *f, uint32_t t, const struct dr_text *x,
		     const struct expr_result *self, bool *out, char **err)
{
	*err = NULL;
	int r;
	struct compiled *c = usable(f, x, true, &r, err);
	if (!c)
		return r;
	struct expr_scope sc;
	scope(f, &sc, self);
	struct expr_error e = {0};
	r = expr_eval_bool(f->ex, c->id, &sc, out, &e);
	if (r < 0)
		*err = eval_error(f, x, &e, "cannot evaluate");
	warn_short(f, t, NULL);
	return r;
}

int flow_condition(struct flow *f, const struct dr_dep *dep, bool *out, char **err)
{
	*out = true;
	*err = NULL;
	if (!dep->condition)
		return 0;
	const struct fres *r = f->res[dep->target];
	struct expr_result empty;
	expr_result_init(&empty);
	return eval_bool(f, UINT32_MAX, dep->condition, r ? &r->er : &empty, out, err);
}

int flow_when(struct flow *f, uint32_t t, bool *out, char **err)
{
	*out = true;
	*err = NULL;
	const struct dr_text *w = f->wf->tasks[t].opts->when;
	return w ? eval_bool(f, t, w, NULL, out, err) : 0;
}

static bool unreserved(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '.' || c == '_' || c == '~';
}

/* A URL: each value percent-encoded, unless one expression is the whole URL. */
static int render_url(struct flow *f, const struct compiled *c, const struct expr_scope *sc,
		      struct buf *out, struct expr_error *e)
{
	const struct tpl *t = &c->tpl;
	if (t->n == 1 && t->segs[0].kind == TPL_EXPR)
		return tpl_render(t, f->ex, sc, TPL_PLAIN, out, e);
	size_t start = out->len;
	struct buf v = BUF_INIT;
	int r = 0;
	for (size_t i = 0; i < t->n && !r; i++) {
		const struct tpl_seg *s = &t->segs[i];
		if (s->kind == TPL_TEXT) {
			r = buf_add(out, t->src + s->off, s->len);
			continue;
		}
		buf_reset(&v);
		if ((r = expr_eval_text(f->ex, s->id, sc, &v, e)) < 0) {
			if (e->offset == EXPR_NO_OFFSET)
				e->offset = s->off;
			break;
		}
		for (size_t k = 0; k < v.len && !r; k++) {
			unsigned char ch = (unsigned char)v.data[k];
			r = unreserved(ch) ? buf_addc(out, (char)ch) : buf_printf(out, "%%%02X", ch);
		}
	}
	buf_free(&v);
	if (r < 0) {
		out->len = start;
		if (out->data)
			out->data[start] = '\0';
		if (!e->msg[0])
			expr_fail(e, r, EXPR_NO_OFFSET, "%s", strerror(-r));
	}
	return r;
}

int flow_render(struct flow *f, uint32_t t, const struct dr_text *x, int mode,
		const struct expr_kv *context, size_t n_context, struct buf *out, char **err)
{
	*err = NULL;
	if (!x->s)
		return 0;
	if (!tpl_has_template(x->s, x->len)) {
		int r = buf_add(out, x->s, x->len);
		if (r < 0)
			*err = strdup("value too large");
		return r;
	}
	int r;
	struct compiled *c = usable(f, x, false, &r, err);
	if (!c)
		return r;
	struct expr_scope sc;
	scope(f, &sc, NULL);
	sc.context = context;
	sc.n_context = n_context;
	struct expr_error e = {0};
	size_t start = out->len;
	switch (mode) {
	case EXEC_RENDER_SHELL: r = tpl_render(&c->tpl, f->ex, &sc, TPL_SHELL, out, &e); break;
	case EXEC_RENDER_ARGV: r = tpl_render(&c->tpl, f->ex, &sc, TPL_ARGV, out, &e); break;
	case EXEC_RENDER_URL: r = render_url(f, c, &sc, out, &e); break;
	default: r = tpl_render(&c->tpl, f->ex, &sc, TPL_PLAIN, out, &e); break;
	}
	if (r == 0 && mode == EXEC_RENDER_HEADER &&
	    strcspn(out->data + start, "\r\n") != out->len - start) {
		out->len = start;
		out->data[start] = '\0';
		r = expr_fail(&e, -EINVAL, EXPR_NO_OFFSET,
			      "a header value may not contain CR, LF or NUL");
	}
	if (r < 0)
		*err = eval_error(f, x, &e, "template error");
	warn_short(f, t, NULL);
	return r;
}

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
				const char *v = NULL;
				size_t nl = strlen(name);
				for (char **e = f->env ? f->env : environ; e && *e && !v; e++)
					if (!strncmp(*e, name, nl) && (*e)[nl] == '=')
						v = *e + nl + 1;
				int r = v ? redact_add(f->red, v, strlen(v)) : 0;
				if (r < 0 && r != -E2BIG)
					return r;
				if (r == REDACT_TOO_SHORT) {
					char who[300];
					snprintf(who, sizeof(who), "secret '%s'", name);
					warn_short(f, UINT32_MAX, who);
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
	const char *v = name ? getenv(name) : NULL;
	int r = v ? redact_add(f->red, v, strlen(v)) : 0;
	if (r == REDACT_TOO_SHORT) {
		char who[300];
		snprintf(who, sizeof(who), "the secret in $%.200s", name);
		warn_short(f, UINT32_MAX, who);
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
static int scan(struct flow *f)
{
	struct scan sc = {.f = f, .wf = f->wf, .keep = f->keep};
	int r = scan_workflow(&sc);
	free(sc.seen);
	return r;
}

/* ---- variables and the secrets file ---------------------------------------- */

/* A copy of the declared variables (a map; empty when none) in f's
 * arena, for values to override; NULL on OOM. */
static struct dr_value *vars_copy(struct flow *f)
{
	const struct dr_value *v = f->wf->variables;
	uint32_t n = v ? v->count : 0;
	struct dr_value *m = arena_calloc(&f->arena, sizeof(*m));
	if (!m)
		return NULL;
	m->kind = DR_VAL_MAP;
	m->count = n;
	m->items = arena_calloc(&f->arena, (n ? n : 1) * sizeof(*m->items));
	m->keys = arena_calloc(&f->arena, (n ? n : 1) * sizeof(*m->keys));
	if (!m->items || !m->keys)
		return NULL;
	for (uint32_t i = 0; i < n; i++) {
		m->items[i] = v->items[i];
		m->keys[i] = v->keys[i];
	}
	return m;
}

/* The index of variable name[0 .. len) in m, or m->count. */
static uint32_t var_index(const struct dr_value *m, const char *name, size_t len)
{
	uint32_t i = 0;
	while (i < m->count && !(m->keys[i].len == len && !memcmp(m->keys[i].s, name, len)))
		i++;
	return i;
}

static int override_vars(struct flow *f, const char *const *vars, dagrun_diags *d)
{
	if (!vars || !vars[0])
		return 0;
	struct dr_value *m = vars_copy(f);
	if (!m)
		return -ENOMEM;
	int r = 0;
	for (const char *const *p = vars; *p; p++) {
		const char *eq = strchr(*p, '=');
		size_t kl = eq ? (size_t)(eq - *p) : strlen(*p);
		uint32_t i = var_index(m, *p, kl);
		if (!eq) {
			diag_add(d, DAGRUN_ERROR, NULL, 0, 0, "--var '%s': expected NAME=VALUE", *p);
			r = -EINVAL;
			continue;
		}
		if (i == m->count) {
			diag_add(d, DAGRUN_ERROR, NULL, 0, 0,
				 "--var '%.*s': no such variable in the workflow's `variables` "
				 "(declare it there with a default)", (int)kl, *p);
			r = -EINVAL;
			continue;
		}
		struct dr_value *it = &m->items[i];
		memset(it, 0, sizeof(*it));
		it->kind = DR_VAL_STRING;
		it->quoted = true;
		it->text.s = arena_strdup(&f->arena, eq + 1);
		if (!it->text.s)
			return -ENOMEM;
		it->text.len = (uint32_t)strlen(eq + 1);
	}
	f->vars = m;
	return r;
}

/* A sub-run's variables: those of with (a map, already rendered) override
 * the declared ones, which they must be (the link step checked). */
static int with_vars(struct flow *f, const struct dr_value *with, dagrun_diags *d)
{
	if (!with || !with->count)
		return 0;
	struct dr_value *m = vars_copy(f);
	if (!m)
		return -ENOMEM;
	int r = 0;
	for (uint32_t k = 0; k < with->count; k++) {
		const struct dr_text *key = &with->keys[k];
		uint32_t i = var_index(m, key->s, key->len);
		if (i == m->count) {
			diag_add(d, DAGRUN_ERROR, f->wf->path, 0, 0, "'with': no variable '%.*s' in "
				 "the workflow's `variables`", (int)key->len, key->s);
			r = -EINVAL;
			continue;
		}
		m->items[i] = with->items[k];
	}
	f->vars = m;
	return r;
}

/* One entry of a secrets file, as dotenv reads it: `[export] KEY=VALUE`,
 * VALUE unquoted (trimmed, " #" starts a comment), '...' (literal but \'
 * and \\) or "..." (\n \r \t \" \\ decoded); quoted values may span lines.
 * Blank and # lines are none. */
struct entry {
	const char *key;
	size_t key_len;
	struct buf value;
	unsigned line;     /* where it starts */
};

static bool blank(char c)
{
	return c == ' ' || c == '\t';
}

/* Parses the entry at *p (a line start; end: the text's end), advancing *p
 * past it and *no over its lines. Returns 1 (an entry), 0 (a blank or
 * comment line), -ENOMEM, or -EINVAL with *why. */
static int dotenv_entry(const char **p, const char *end, unsigned *no, struct entry *e,
			const char **why)
{
	const char *s = *p, *eol = memchr(s, '\n', (size_t)(end - s));
	if (!eol)
		eol = end;
	*p = eol < end ? eol + 1 : end;
	e->line = ++*no;
	buf_reset(&e->value);
	while (s < eol && (blank(*s) || *s == '\r'))
		s++;
	if (s == eol || *s == '#')
		return 0;
	if (eol - s > 7 && !memcmp(s, "export", 6) && blank(s[6]))
		for (s += 6; s < eol && blank(*s);)
			s++;
	const char *k = s;
	while (s < eol && (isalnum((unsigned char)*s) || *s == '_' || *s == '.' || *s == '-'))
		s++;
	e->key = k;
	e->key_len = (size_t)(s - k);
	while (s < eol && blank(*s))
		s++;
	if (!e->key_len || s == eol || *s != '=') {
		*why = e->key_len ? "expected KEY=VALUE (a key is letters, digits, _ . -)"
				  : "expected KEY=VALUE";
		return -EINVAL;
	}
	for (s++; s < eol && blank(*s);)
		s++;
	int r = 0;
	if (s < eol && (*s == '"' || *s == '\'')) {
		char q = *s++;
		for (;; s++) {
			if (s == end) {
				*why = q == '"' ? "no closing \" for this value" : "no closing ' for this value";
				return -EINVAL;
			}
			if (*s == q)
				break;
			if (*s == '\n')
				++*no;
			char c = *s;
			if (c == '\\' && s + 1 < end && s[1]) {
				static const char from[] = "nrt\"\\", to[] = "\n\r\t\"\\";
				const char *m = strchr(q == '"' ? from : "'\\", s[1]);
				if (m) {
					c = q == '"' ? to[m - from] : s[1];
					s++;
				}
			}
			if ((r = buf_addc(&e->value, c)) < 0)
				return r;
		}
		const char *rest = s + 1;
		eol = memchr(rest, '\n', (size_t)(end - rest));
		if (!eol)
			eol = end;
		*p = eol < end ? eol + 1 : end;
		while (rest < eol && (blank(*rest) || *rest == '\r'))
			rest++;
		if (rest < eol && *rest != '#') {
			*why = "unexpected text after the closing quote";
			return -EINVAL;
		}
		return 1;
	}
	const char *v = s, *ve = eol;
	for (const char *c = v; c < eol; c++)
		if (*c == '#' && blank(c[-1])) {   /* c[-1]: at worst the '=' */
			ve = c;
			break;
		}
	while (ve > v && (blank(ve[-1]) || ve[-1] == '\r'))
		ve--;
	r = buf_add(&e->value, v, (size_t)(ve - v));
	return r < 0 ? r : 1;
}

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

static int read_secrets(struct flow *f, const char *path, dagrun_diags *d)
{
	if (!path)
		return 0;
	struct buf text = BUF_INIT, kv = BUF_INIT;
	struct entry e = {.value = BUF_INIT};
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
		int k = dotenv_entry(&p, end, &no, &e, &why);
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
			warn_short(f, UINT32_MAX, who);
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

int flow_new(struct flow **out, const struct dagrun_workflow *wf,
	     const struct flow_opts *o, dagrun_diags *diags)
{
	*out = NULL;
	struct flow *f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	int r = -ENOMEM;
	f->wf = wf;
	f->run_id = o ? o->run_id : NULL;
	f->res = calloc(wf->n_tasks + 1, sizeof(*f->res));
	f->keep = calloc(wf->n_tasks + 1, 1);
	if (!f->res || !f->keep || redact_new(&f->red) < 0)
		goto fail;
	struct expr_opts eo = {.redactor = f->red};
	if (expr_new(&f->ex, &eo) < 0)
		goto fail;
	if ((r = override_vars(f, o ? o->vars : NULL, diags)) < 0 ||
	    (r = read_secrets(f, o ? o->secrets_file : NULL, diags)) < 0 ||
	    (r = scan(f)) < 0)
		goto fail;
	*out = f;
	return 0;
fail:
	flow_free(f);
	return r;
}

int flow_new_child(struct flow **out, const struct dagrun_workflow *wf, struct flow *parent,
		   const struct dr_value *with, dagrun_diags *diags)
{
	*out = NULL;
	struct flow *f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	int r = -ENOMEM;
	f->wf = wf;
	f->shared = true;
	f->red = parent->red;
	f->env = parent->env;
	f->run_id = parent->run_id;
	f->shorts_warned = redact_short_count(f->red);   /* said by the parent */
	f->res = calloc(wf->n_tasks + 1, sizeof(*f->res));
	f->keep = calloc(wf->n_tasks + 1, 1);
	if (!f->res || !f->keep)
		goto fail;
	struct expr_opts eo = {.redactor = f->red};
	if (expr_new(&f->ex, &eo) < 0)
		goto fail;
	if ((r = with_vars(f, with, diags)) < 0 || (r = scan(f)) < 0)
		goto fail;
	*out = f;
	return 0;
fail:
	flow_free(f);
	return r;
}

int flow_outputs(struct flow *f, struct expr_outputs *out, char **err)
{
	const struct dr_kvlist *o = &f->wf->outputs;
	struct buf b = BUF_INIT;
	int r = 0;
	*err = NULL;
	for (uint32_t i = 0; i < o->n && r == 0; i++) {
		buf_reset(&b);
		char *key = strndup(o->v[i].key.s, o->v[i].key.len);
		if (!key)
			r = -ENOMEM;
		else if ((r = flow_render(f, UINT32_MAX, &o->v[i].value, EXEC_RENDER_PLAIN, NULL, 0,
					  &b, err)) == 0 &&
			 (r = expr_outputs_set(out, key, b.data ? b.data : "", b.len)) > 0)
			r = 0;   /* more keys than $DAGRUN_OUTPUT takes: the loader caps them */
		free(key);
	}
	buf_free(&b);
	return r;
}

void flow_free(struct flow *f)
{
	if (!f)
		return;
	for (size_t i = 0; i < f->tab_cap; i++)
		if (f->tab[i].key) {
			tpl_free(&f->tab[i].tpl);
			free(f->tab[i].msg);
		}
	free(f->tab);
	if (f->res)
		for (uint32_t t = 0; t < f->wf->n_tasks; t++)
			fres_free(f->res[t]);
	free(f->res);
	free(f->keep);
	if (!f->shared)
		free(f->env);
	for (size_t i = 0; i < f->n_pending; i++)
		free(f->pending[i]);
	free(f->pending);
	expr_free(f->ex);
	if (!f->shared)
		redact_free(f->red);
	arena_free(&f->arena);
	free(f);
}
