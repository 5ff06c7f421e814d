/* test_template.c: template parsing, plain/argv rendering, and the shell-
 * safe rendering, verified by running the rendered text with /bin/sh (and
 * bash when present) against a corpus of hostile values: the output must
 * be the value, byte for byte, and no canary file may appear. */
#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <setjmp.h>
#include <spawn.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "expr/expr.h"
#include "expr/shell.h"
#include "expr/template.h"

extern char **environ;

struct fx {
	struct expr_engine *e;
	struct expr_error err;
	struct buf out;
	char dir[64];
	char canary[128];
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	assert_int_equal(expr_new(&f->e, NULL), 0);
	strcpy(f->dir, "/tmp/dagrun-tpl-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->canary, sizeof(f->canary), "%s/canary", f->dir);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	unlink(f->canary);
	rmdir(f->dir);
	expr_free(f->e);
	buf_free(&f->out);
	free(f);
	return 0;
}

/* ---- parsing ------------------------------------------------------------- */

static void check_segs(const char *s, size_t n, const char *kinds)
{
	struct tpl t;
	struct expr_error err;
	assert_int_equal(tpl_parse(s, strlen(s), &t, &err), 0);
	assert_int_equal(t.n, n);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(t.segs[i].kind, kinds[i] == 'E' ? TPL_EXPR
				 : TPL_TEXT);
	tpl_free(&t);
}

static void templates_parse_into_segments(void **state)
{
	(void)state;
	struct tpl t;
	struct expr_error err;
	const char *s = "a {{ x }} b {{y}}";
	assert_int_equal(tpl_parse(s, strlen(s), &t, &err), 0);
	assert_int_equal(t.n, 4);
	assert_int_equal(t.n_exprs, 2);
	assert_int_equal(t.segs[0].kind, TPL_TEXT);
	assert_int_equal(t.segs[0].len, 2);
	assert_int_equal(t.segs[1].kind, TPL_EXPR);
	assert_int_equal(t.segs[1].off, 4);
	assert_int_equal(t.segs[1].len, 3);
	assert_memory_equal(s + t.segs[1].off, " x ", 3);
	assert_memory_equal(s + t.segs[2].off, " b ", 3);
	assert_int_equal(t.segs[3].off, 14);
	tpl_free(&t);
	tpl_free(&t);
	check_segs("", 0, "");
	check_segs("no template", 1, "T");
	check_segs("{{a}}{{b}}", 2, "EE");
	check_segs("{{ '}}' }}", 1, "E");
	check_segs("{{ json({a = {1}}) }}!", 2, "ET");
	check_segs("{{ {1} }}", 1, "E");
	check_segs("{{ \"{{\" }} literal", 2, "ET");
	check_segs("x {{ a --[[ }} ]] }}", 2, "TE");
	assert_true(tpl_has_template("a{{b", 4));
	assert_false(tpl_has_template("a{b}", 4));
	static const struct { const char *s; uint32_t off; const char *msg; } bad[] = {
		{"{{ x", 0, "without a matching"},
		{"abc {{ x } }", 4, "without a matching"},
		{"ok {{ a }} then {{ 'unterminated }}", 16, "without a matching"},
		{"{{ }}", 0, "empty"},
		{"x{{}}", 1, "empty"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(tpl_parse(bad[i].s, strlen(bad[i].s), &t, &err),
				 -EINVAL);
		assert_int_equal(err.offset, bad[i].off);
		assert_non_null(strstr(err.msg, bad[i].msg));
		tpl_free(&t);
	}
}

static void compile_errors_point_into_the_template(void **state)
{
	struct fx *f = *state;
	struct tpl t;
	const char *s = "abc {{ a != b }}";
	assert_int_equal(tpl_parse(s, strlen(s), &t, &f->err), 0);
	assert_int_equal(tpl_compile(&t, f->e, &f->err), -EINVAL);
	assert_int_equal(f->err.offset, 9);
	assert_non_null(strstr(f->err.msg, "~="));
	tpl_free(&t);
}

static int render(struct fx *f, const char *s, const struct expr_scope *sc,
		  enum tpl_mode mode)
{
	struct tpl t;
	int r = tpl_parse(s, strlen(s), &t, &f->err);
	if (r == 0)
		r = tpl_compile(&t, f->e, &f->err);
	buf_reset(&f->out);
	if (r == 0)
		r = tpl_render(&t, f->e, sc, mode, &f->out, &f->err);
	tpl_free(&t);
	return r;
}

static struct expr_scope value_scope(struct expr_kv *kv, const char *v,
				     size_t n)
{
	kv->key = "v";
	kv->value = v;
	kv->value_len = n;
	return (struct expr_scope){.context = kv, .n_context = 1};
}

static void plain_and_argv_render(void **state)
{
	struct fx *f = *state;
	struct expr_kv kv;
	struct expr_scope sc = value_scope(&kv, "wor'ld", 6);
	assert_int_equal(render(f, "hello {{ context.v }}{{ 1 + 1 }}!", &sc,
				TPL_PLAIN), 0);
	assert_string_equal(f->out.data, "hello wor'ld2!");
	assert_int_equal(render(f, "--name={{ context.v }}", &sc, TPL_ARGV), 0);
	assert_string_equal(f->out.data, "--name=wor'ld");
	sc = value_scope(&kv, "a\0b", 3);
	assert_int_equal(render(f, "x{{ context.v }}", &sc, TPL_PLAIN), 0);
	assert_int_equal(f->out.len, 4);
	assert_int_equal(render(f, "x{{ context.v }}", &sc, TPL_ARGV), -EINVAL);
	assert_int_equal(f->err.offset, 1);
	assert_int_equal(f->out.len, 0);
	/* a run-time error points at its {{ */
	assert_int_equal(render(f, "ab {{ nil .. 1 }}", &sc, TPL_PLAIN), -EINVAL);
	assert_int_equal(f->err.offset, 3);
	assert_non_null(strstr(f->err.msg, "concatenate"));
}

/* ---- running the shell --------------------------------------------------- */

/* Runs `shell -c script` in dir; returns its stdout (malloc'd) and length. */
static char *run_sh(const char *shell, const char *script, const char *dir,
		    size_t *len, int *status)
{
	int fds[2];
	assert_int_equal(pipe(fds), 0);
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
	posix_spawn_file_actions_addclose(&fa, fds[0]);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	char *argv[] = {(char *)shell, "-c", (char *)script, NULL};
	pid_t pid;
	char cwd[512];
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	assert_int_equal(chdir(dir), 0);
	int r = posix_spawn(&pid, shell, &fa, NULL, argv, environ);
	assert_int_equal(chdir(cwd), 0);
	posix_spawn_file_actions_destroy(&fa);
	close(fds[1]);
	assert_int_equal(r, 0);
	struct buf b = BUF_INIT;
	char chunk[4096];
	ssize_t n;
	while ((n = read(fds[0], chunk, sizeof(chunk))) > 0)
		buf_add(&b, chunk, (size_t)n);
	close(fds[0]);
	waitpid(pid, status, 0);
	*len = b.len;
	return buf_steal(&b);
}

static const char *const hostile[] = {
	"plain", "", "a b  c", "$(touch CANARY)", "`touch CANARY`",
	"; touch CANARY", "x && touch CANARY", "| touch CANARY",
	"a\nb\ntouch CANARY\n", "'", "\"", "'\\''", "''", "\"\"",
	"'\"'\"'", "${IFS}", "$IFS$(touch CANARY)", "\\", "\\\\", "\\'",
	"\\\"", "\\$(touch CANARY)", "$HOME", "*", "~", "~root", "!",
	"%s %d", "-n", "a\\nb", "\t tab", "trailing\n", "\n\nlead",
	"'$(touch CANARY)'", "\"$(touch CANARY)\"", "$'\\x41'", "#not a comment",
	"}", "{", "))", "EOF", "a)b", "$((1+1))", "\xc3\xa9\xe2\x82\xac",
};

/* Shell texts with a {{ context.v }}; the output must be prefix + value +
 * suffix. */
static const struct { const char *tpl, *pre, *post; int twice; } contexts[] = {
	{"printf '%s' {{ context.v }}", "", "", 0},
	{"printf '%s' \"{{ context.v }}\"", "", "", 0},
	{"printf '%s' '{{ context.v }}'", "", "", 0},
	{"printf '%s' pre{{ context.v }}post", "pre", "post", 0},
	{"printf '%s' \"a'{{ context.v }}'b\"", "a'", "'b", 0},
	{"printf '%s' 'a\"{{ context.v }}\"b'", "a\"", "\"b", 0},
	{"printf '%s' \"$(printf '%s' {{ context.v }}; printf x)\"", "", "x", 0},
	{"printf '%s' \"$(printf '%s' \"{{ context.v }}\"; printf x)\"", "", "x", 0},
	{"x=$(printf '%s' {{ context.v }}; printf x); printf '%s' \"$x\"", "", "x", 0},
	{"cat <<EOF\n{{ context.v }}\nEOF\n", "", "\n", 0},
	{"cat <<'EOF'\n{{ context.v }}\nEOF\n", "", "\n", 0},
	{"cat <<-\"EOF\"\n\t{{ context.v }}\n\tEOF\n", "", "\n", 0},
	{"cat << EOF\n[{{ context.v }}]\nEOF\nprintf done", "[", "]\ndone", 0},
	{"printf '%s' {{ context.v }}{{ context.v }}", "", "", 1},
	{"printf '%s' \"{{ context.v }}{{ context.v }}\"", "", "", 1},
	{"printf '%s' {{ context.v }}\"{{ context.v }}\"", "", "", 1},
	{"printf '%s' {{ context.v }} # {{ 'comment' }}", "", "", 0},
	{"f() { printf '%s' \"$1\"; }; f {{ context.v }}", "", "", 0},
	{"if true; then printf '%s' {{ context.v }}; fi", "", "", 0},
	{"(( 1 << 2 )) 2>/dev/null; printf '%s' {{ context.v }}", "", "", 0},
};

/* Renders every hostile value into context c; returns the batch script
 * (each rendering in a { } group, followed by a \001 separator) and the
 * expected outputs, NUL-separated, in *want. */
static int batch(struct fx *f, size_t c, struct buf *script, struct buf *want)
{
	struct expr_kv kv;
	char val[256];
	int n = 0;
	for (size_t h = 0; h < sizeof(hostile) / sizeof(hostile[0]); h++) {
		/* CANARY stands for the canary's absolute path */
		const char *src = hostile[h], *at = strstr(src, "CANARY");
		if (at)
			snprintf(val, sizeof(val), "%.*s%s%s", (int)(at - src), src,
				 f->canary, at + 6);
		else
			snprintf(val, sizeof(val), "%s", src);
		struct expr_scope sc = value_scope(&kv, val, strlen(val));
		if (render(f, contexts[c].tpl, &sc, TPL_SHELL) < 0) {
			/* only a value that would end a here-document, or lose
			 * its tabs in one, may be refused here */
			bool heredoc = strstr(contexts[c].tpl, "EOF") != NULL;
			bool tabs = strstr(contexts[c].tpl, "<<-")
				    && strstr(f->err.msg, "tabs");
			if (!(heredoc && strstr(val, "EOF")) && !tabs)
				fail_msg("%s with [%s]: %s", contexts[c].tpl, val,
					 f->err.msg);
			continue;
		}
		buf_printf(script, "{\n%s\n}\nprintf '\\001'\n", f->out.data);
		buf_printf(want, "%s%s%s%s", contexts[c].pre, val,
			   contexts[c].twice ? val : "", contexts[c].post);
		buf_addc(want, '\0');
		n++;
	}
	return n;
}

static void check_shell(struct fx *f, const char *shell)
{
	int checked = 0;
	for (size_t c = 0; c < sizeof(contexts) / sizeof(contexts[0]); c++) {
		if (strstr(contexts[c].tpl, "((") && !strstr(shell, "bash"))
			continue;
		struct buf script = BUF_INIT, want = BUF_INIT;
		int n = batch(f, c, &script, &want);
		size_t len;
		int status;
		char *got = run_sh(shell, script.data, f->dir, &len, &status);
		const char *g = got, *w = want.data;
		for (int i = 0; i < n; i++) {
			const char *sep = memchr(g, '\001', len - (size_t)(g - got));
			if (!sep)
				fail_msg("%s: %s: output ends early:\n%s", shell,
					 contexts[c].tpl, got);
			if ((size_t)(sep - g) != strlen(w) || memcmp(g, w, strlen(w)))
				fail_msg("%s: %s: value %d: got [%.*s] want [%s]",
					 shell, contexts[c].tpl, i, (int)(sep - g),
					 g, w);
			g = sep + 1;
			w += strlen(w) + 1;
			checked++;
		}
		if (access(f->canary, F_OK) == 0)
			fail_msg("%s: canary created by %s", shell, script.data);
		free(got);
		buf_free(&script);
		buf_free(&want);
	}
	assert_true(checked > 500);
}

static void shell_render_prints_hostile_values_exactly(void **state)
{
	struct fx *f = *state;
	char sh[PATH_MAX], other[PATH_MAX];
	check_shell(f, "/bin/sh");
	assert_non_null(realpath("/bin/sh", sh));
	static const char *const shells[] = {"/bin/bash", "/bin/dash",
					     "/bin/zsh", "/bin/ksh"};
	for (size_t i = 0; i < sizeof(shells) / sizeof(shells[0]); i++)
		if (access(shells[i], X_OK) == 0 && realpath(shells[i], other)
		    && strcmp(sh, other))
			check_shell(f, shells[i]);
}

static void shell_render_refuses_unsafe_contexts(void **state)
{
	struct fx *f = *state;
	struct expr_kv kv;
	struct expr_scope sc = value_scope(&kv, "x", 1);
	static const struct { const char *tpl, *why; } bad[] = {
		{"echo `{{ context.v }}`", "inside `...`"},
		{"echo \"`echo {{ context.v }}`\"", "inside `...`"},
		{"echo ${X:-{{ context.v }}}", "inside ${...}"},
		{"echo $(( {{ context.v }} + 1 ))", "arithmetic"},
		{"echo ${{ context.v }}", "after '$'"},
		{"echo \"${{ context.v }}\"", "after '$'"},
		{"echo \\{{ context.v }}", "after a backslash"},
		{"echo \"\\{{ context.v }}\"", "after a backslash"},
		{"echo $'{{ context.v }}'", "$'...'"},
		{"cat <<{{ context.v }}", "delimiter"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(render(f, bad[i].tpl, &sc, TPL_SHELL), -EINVAL);
		if (!strstr(f->err.msg, bad[i].why))
			fail_msg("%s: %s", bad[i].tpl, f->err.msg);
		assert_int_equal(f->err.offset,
				 (uint32_t)(strstr(bad[i].tpl, "{{") - bad[i].tpl));
		assert_int_equal(f->out.len, 0);
	}
	sc = value_scope(&kv, "a\0b", 3);
	assert_int_equal(render(f, "echo {{ context.v }}", &sc, TPL_SHELL), -EINVAL);
	assert_non_null(strstr(f->err.msg, "NUL"));
	sc = value_scope(&kv, "x\ntouch /tmp/x", 14);
	assert_int_equal(render(f, "echo hi # {{ context.v }}", &sc, TPL_SHELL),
			 -EINVAL);
	assert_non_null(strstr(f->err.msg, "comment"));
	sc = value_scope(&kv, "a\nEOF\nrm -rf /", 14);
	assert_int_equal(render(f, "cat <<EOF\n{{ context.v }}\nEOF\n", &sc,
				TPL_SHELL), -EINVAL);
	assert_non_null(strstr(f->err.msg, "here-document"));
	sc = value_scope(&kv, "EO", 2);
	assert_int_equal(render(f, "cat <<EOF\n{{ context.v }}F\nEOF\n", &sc,
				TPL_SHELL), -EINVAL);
	/* an empty value leaves the author's text on its line: that text must
	 * not end the here-document either (the lines after it would run) */
	sc = value_scope(&kv, "", 0);
	assert_int_equal(render(f, "cat <<EOF\n{{ context.v }}EOF\necho pwned\nEOF\n", &sc,
				TPL_SHELL), -EINVAL);
	assert_non_null(strstr(f->err.msg, "here-document"));
	assert_int_equal(render(f, "cat <<'EOF'\n{{ context.v }}EOF\necho pwned\nEOF\n", &sc,
				TPL_SHELL), -EINVAL);
	assert_int_equal(render(f, "cat <<-EOF\n\t{{ context.v }}EOF\necho pwned\nEOF\n", &sc,
				TPL_SHELL), -EINVAL);
	assert_int_equal(render(f, "cat <<EOF\n{{ context.v }}\nEOF\n", &sc, TPL_SHELL), 0);
	sc = value_scope(&kv, "x\n", 2);
	assert_int_equal(render(f, "cat <<EOF\n{{ context.v }}EOF\necho pwned\nEOF\n", &sc,
				TPL_SHELL), -EINVAL);
	/* a value in the same here-document that does not end it is fine */
	sc = value_scope(&kv, "EOFx", 4);
	assert_int_equal(render(f, "cat <<EOF\n{{ context.v }}\nEOF\n", &sc,
				TPL_SHELL), 0);
}

static void posix_shells_are_recognised(void **state)
{
	(void)state;
	static const char *const yes[] = {
		"sh", "/bin/sh -e", "bash", "bash -euo pipefail", "/usr/bin/zsh",
		"dash", "ksh", "/usr/bin/env bash", "env -i FOO=1 sh -e",
		"busybox sh", "  /bin/bash  ",
	};
	static const char *const no[] = {
		"python3", "/usr/bin/python3 -u", "node", "env python3", "perl",
		"ruby", "", "shx", "/bin/bash.exe2", "fish", "pwsh",
	};
	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
		if (!sh_is_posix_shell(yes[i], strlen(yes[i])))
			fail_msg("%s should be a POSIX shell", yes[i]);
	for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
		if (sh_is_posix_shell(no[i], strlen(no[i])))
			fail_msg("%s should not be a POSIX shell", no[i]);
	assert_true(sh_is_posix_shell(NULL, 0));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(templates_parse_into_segments),
		cmocka_unit_test_setup_teardown(compile_errors_point_into_the_template, setup, teardown),
		cmocka_unit_test_setup_teardown(plain_and_argv_render, setup, teardown),
		cmocka_unit_test_setup_teardown(shell_render_prints_hostile_values_exactly, setup, teardown),
		cmocka_unit_test_setup_teardown(shell_render_refuses_unsafe_contexts, setup, teardown),
		cmocka_unit_test(posix_shells_are_recognised),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
