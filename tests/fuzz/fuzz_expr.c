/* fuzz_expr.c: libFuzzer target for expressions and templates.
 *
 * The first byte of an input, modulo 7, picks how the rest is used, as the
 * run uses workflow strings (the seeds in tests/fuzz/seeds-expr/ start with
 * the letter given): a template rendered plain (p), as an argv element (q),
 * as shell
 * text (r; after the static checks `dagrun validate` makes: tpl_check_shell,
 * expr_check), as a URL (s; each value percent-encoded, as flow.c does), as
 * a header value (t; no CR or LF); or a bare `when` (u; base environment)
 * or dependency `condition` (v; with a dependency's fields), evaluated as a
 * boolean (and, when that works, as text). Evaluation runs in the sandbox
 * with the run's memory limit, a tenth of its instructions and a fifth of
 * its time (for speed), in one engine reused across inputs as a run
 * reuses it. Any input must give a result or an error; never crash,
 * trip a sanitizer, or run long (libFuzzer's -timeout catches a limit that
 * does not hold). Checked after every input: the engine still evaluates,
 * no error message holds the secret, an argv value holds no NUL and a
 * header no CR/LF. Built by run.sh (clang -fsanitize=fuzzer,address,
 * undefined), not by meson.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "expr/check.h"
#include "expr/expr.h"
#include "expr/redact.h"
#include "expr/template.h"
#include "model/model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define SECRET "fuzz-s3cr3t-value"
#define MAX_INPUT ((size_t)64 << 10)
#define RENEW_EVERY 2000          /* inputs between two fresh engines */

enum mode { M_PLAIN, M_ARGV, M_SHELL, M_URL, M_HEADER, M_WHEN, M_CONDITION, M_COUNT };

struct world {
	struct expr_engine *e;
	struct redactor *red;
	unsigned inputs;
	struct dr_value vars, var_items[3];
	struct dr_text var_keys[3];
	struct expr_result a, self;
	struct expr_kv outputs[2], headers[1], context[1];
};

static struct world w;     /* libFuzzer's own: one per fuzzing process */

static void die(const char *what, const char *detail)
{
	fprintf(stderr, "fuzz_expr: %s: %s\n", what, detail);
	abort();
}

static const struct expr_result *lookup(void *ud, const char *id)
{
	(void)ud;
	return !strcmp(id, "a") || !strcmp(id, "build-x") ? &w.a : NULL;
}

static void set_text(struct dr_text *t, const char *s)
{
	*t = (struct dr_text){s, (uint32_t)strlen(s), 1, 1};
}

static void setup_world(void)
{
	set_text(&w.var_keys[0], "version");
	set_text(&w.var_keys[1], "n");
	set_text(&w.var_keys[2], "list");
	w.var_items[0] = (struct dr_value){.kind = DR_VAL_STRING};
	set_text(&w.var_items[0].text, "1.4.0");
	w.var_items[1] = (struct dr_value){.kind = DR_VAL_INT, .as.i = 3};
	w.var_items[2] = (struct dr_value){.kind = DR_VAL_LIST, .count = 2, .items = w.var_items};
	w.vars = (struct dr_value){.kind = DR_VAL_MAP, .count = 3, .items = w.var_items,
				   .keys = w.var_keys};
	w.outputs[0] = (struct expr_kv){"version", "1.4.0", 5};
	w.outputs[1] = (struct expr_kv){"multi", "a\nb\0c", 5};
	w.headers[0] = (struct expr_kv){"Content-Type", "application/json", 16};
	w.context[0] = (struct expr_kv){"changes", "- fix\n- feat", 12};
	expr_result_init(&w.a);
	w.a.status = 1;
	w.a.exit_code = 0;
	w.a.output = "{\"n\": 3, \"items\": [1, \"two\", {\"k\": null}], \"s\": \"x\\u00e9\"}\n";
	w.a.output_len = strlen(w.a.output);
	w.a.outputs = w.outputs;
	w.a.n_outputs = 2;
	w.a.http_status = 200;
	w.a.headers = w.headers;
	w.a.n_headers = 1;
	w.a.attempts = 2;
	w.a.duration_ms = 1234;
	expr_result_init(&w.self);
	w.self.status = 2;
	w.self.exit_code = 3;
	w.self.output = "not json " SECRET;
	w.self.output_len = strlen(w.self.output);
}

static void renew_engine(void)
{
	expr_free(w.e);
	redact_free(w.red);
	w.e = NULL;
	w.red = NULL;
	if (redact_new(&w.red) < 0 || redact_add(w.red, SECRET, strlen(SECRET)) < 0)
		die("setup", "redactor");
	/* The run's memory limit (32 MiB), a tenth of its instruction budget
	 * and a fifth of its time: most mutated inputs loop, and this is
	 * several times the inputs per second. The mechanisms are the run's,
	 * every charge is relative to the budget, and what a C function does
	 * unbounded still shows as an input past -timeout (100 times the
	 * limit). */
	struct expr_opts o = {.redactor = w.red, .instructions = 1000000, .time_ms = 100};
	if (expr_new(&w.e, &o) < 0)
		die("setup", "engine");
}

static struct expr_scope scope(bool condition)
{
	static char *const env[] = {"HOME=/home/fuzz", "TOKEN=" SECRET, "EMPTY=", NULL};
	return (struct expr_scope){
		.run_id = "20250101-000000-abcd", .run_name = "fuzz", .variables = &w.vars,
		.context = w.context, .n_context = 1, .environ = env, .lookup = lookup,
		.self = condition ? &w.self : NULL,
	};
}

static void check_message(const struct expr_error *err)
{
	if (strstr(err->msg, SECRET))
		die("secret in an error message", err->msg);
}

/* The engine must still evaluate after whatever came before. */
static void canary(void)
{
	static const char src[] = "('ok'):upper() .. #json({1, 2}) .. math.floor(2.5)";
	struct expr_error err;
	struct buf out = BUF_INIT;
	int id;
	if (expr_compile(w.e, src, sizeof(src) - 1, &id, &err) < 0)
		die("canary compile", err.msg);
	if (expr_eval_text(w.e, id, NULL, &out, &err) < 0)
		die("canary eval", err.msg);
	if (strcmp(out.data, "OK52"))
		die("canary value", out.data);
	buf_free(&out);
}

static bool unreserved(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '.' || c == '_' || c == '~';
}

/* flow.c's URL rendering: each value percent-encoded, unless one
 * expression is the whole URL. */
static int render_url(const struct tpl *t, const struct expr_scope *sc, struct buf *out,
		      struct expr_error *err)
{
	if (t->n == 1 && t->segs[0].kind == TPL_EXPR)
		return tpl_render(t, w.e, sc, TPL_PLAIN, out, err);
	struct buf v = BUF_INIT;
	int r = 0;
	for (size_t i = 0; i < t->n && !r; i++) {
		const struct tpl_seg *g = &t->segs[i];
		if (g->kind == TPL_TEXT) {
			r = buf_add(out, t->src + g->off, g->len);
			continue;
		}
		buf_reset(&v);
		if ((r = expr_eval_text(w.e, g->id, sc, &v, err)) < 0)
			break;
		for (size_t k = 0; k < v.len && !r; k++) {
			unsigned char ch = (unsigned char)v.data[k];
			r = unreserved(ch) ? buf_addc(out, (char)ch) : buf_printf(out, "%%%02X", ch);
		}
	}
	buf_free(&v);
	return r;
}

static void template(enum mode m, const char *src, size_t len)
{
	struct tpl t;
	struct expr_error err = {0};
	struct buf out = BUF_INIT;
	struct expr_scope sc = scope(false);
	if (tpl_parse(src, len, &t, &err) < 0 || tpl_compile(&t, w.e, &err) < 0) {
		check_message(&err);
		tpl_free(&t);
		return;
	}
	for (size_t i = 0; i < t.n; i++) {     /* what validation checks */
		struct expr_refs refs;
		if (t.segs[i].kind == TPL_EXPR)
			expr_check(w.e, src + t.segs[i].off, t.segs[i].len, EXPR_CHECK_SECRETS,
				   &refs, &err);
		if (t.segs[i].kind == TPL_EXPR)
			expr_refs_free(&refs);
	}
	int r;
	switch (m) {
	case M_ARGV:
		r = tpl_render(&t, w.e, &sc, TPL_ARGV, &out, &err);
		/* (a NUL in the text itself is the loader's to refuse) */
		if (r == 0 && out.len && memchr(out.data, '\0', out.len) && !memchr(src, '\0', len))
			die("argv", "a NUL in an argument");
		break;
	case M_SHELL: {
		struct expr_error cerr = {0};
		int c = tpl_check_shell(&t, &cerr);
		r = tpl_render(&t, w.e, &sc, TPL_SHELL, &out, &err);
		/* Validation's verdict holds at run time: up to the first
		 * `{{`, both have read the same text, so what validation
		 * refuses there the run refuses whatever the value. (Past it,
		 * a real value may leave a here-document's lines otherwise
		 * than validation's placeholder: value-dependent, the run's.) */
		uint32_t first = UINT32_MAX;
		for (size_t i = 0; i < t.n && first == UINT32_MAX; i++)
			if (t.segs[i].kind == TPL_EXPR)
				first = t.segs[i].off - 2;
		if (c == -EINVAL && r == 0 && cerr.offset <= first)
			die("tpl_check_shell refused what tpl_render took", cerr.msg);
		check_message(&cerr);
		break;
	}
	case M_URL:
		r = render_url(&t, &sc, &out, &err);
		break;
	case M_HEADER:
		r = tpl_render(&t, w.e, &sc, TPL_PLAIN, &out, &err);
		if (r == 0 && strcspn(out.data ? out.data : "", "\r\n") != out.len)
			r = -EINVAL;    /* flow.c refuses it */
		break;
	default:
		r = tpl_render(&t, w.e, &sc, TPL_PLAIN, &out, &err);
		break;
	}
	if (r < 0)
		check_message(&err);
	tpl_free(&t);
	buf_free(&out);
}

static void expression(enum mode m, const char *src, size_t len)
{
	struct expr_error err = {0};
	struct expr_refs refs;
	struct buf out = BUF_INIT;
	bool condition = m == M_CONDITION, v;
	struct expr_scope sc = scope(condition);
	int id;
	expr_check(w.e, src, len, condition ? EXPR_CHECK_CONDITION : 0, &refs, &err);
	expr_refs_free(&refs);
	if (expr_compile(w.e, src, len, &id, &err) < 0) {
		check_message(&err);
		return;
	}
	if (expr_eval_bool(w.e, id, &sc, &v, &err) < 0)
		check_message(&err);
	else if (expr_eval_text(w.e, id, &sc, &out, &err) < 0)
		check_message(&err);
	buf_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1 || size > MAX_INPUT)
		return 0;
	if (!w.vars.count)
		setup_world();
	if (!w.e || ++w.inputs % RENEW_EVERY == 0)
		renew_engine();
	enum mode m = (enum mode)(data[0] % M_COUNT);
	const char *src = (const char *)data + 1;
	size_t len = size - 1;
	if (m <= M_HEADER)
		template(m, src, len);
	else
		expression(m, src, len);
	canary();
	return 0;
}
