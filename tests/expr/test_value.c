/* test_value.c: the $DAGRUN_OUTPUT format: both forms, duplicates; bad
 * lines and caps skipped with a warning naming the line, the rest kept;
 * reading a file without ever blocking or following a link. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "dagrun.h"
#include "util/buf.h"
#include "expr/value.h"

static const char *get(const struct expr_outputs *o, const char *k)
{
	for (size_t i = 0; i < o->n; i++)
		if (!strcmp(o->v[i].key, k))
			return o->v[i].value;
	return NULL;
}

static void both_forms_parse(void **state)
{
	(void)state;
	struct expr_outputs o;
	const char *s = "version=1.4.0\n"
			"empty=\n"
			"eq=a=b=c\r\n"
			"\n"
			"notes<<EOF\n"
			"line 1\n"
			"\n"
			"line 3 with EOF inside\r\n"
			"EOF\n"
			"one<<END\n"
			"single\n"
			"END\n"
			"blank<<X\n"
			"X\n"
			"version=2.0\n"
			"last=no newline";
	assert_int_equal(expr_outputs_parse(s, strlen(s), &o), 0);
	assert_int_equal(o.n, 7);
	assert_int_equal(o.n_warn, 0);
	assert_string_equal(o.v[0].key, "version");
	assert_string_equal(get(&o, "version"), "2.0");   /* last wins, first place */
	assert_string_equal(get(&o, "empty"), "");
	assert_string_equal(get(&o, "eq"), "a=b=c");
	assert_string_equal(get(&o, "notes"), "line 1\n\nline 3 with EOF inside");
	assert_string_equal(get(&o, "one"), "single");
	assert_string_equal(get(&o, "blank"), "");
	assert_string_equal(get(&o, "last"), "no newline");
	expr_outputs_free(&o);
	expr_outputs_free(&o);
	expr_outputs_free(NULL);
	/* a value may hold "<<" after the = */
	assert_int_equal(expr_outputs_parse("a=b<<c\n", 7, &o), 0);
	assert_string_equal(get(&o, "a"), "b<<c");
	expr_outputs_free(&o);
	assert_int_equal(expr_outputs_parse("", 0, &o), 0);
	assert_int_equal(o.n, 0);
	expr_outputs_free(&o);
}

/* Whether one of o's warnings holds text. */
static bool warned(const struct expr_outputs *o, const char *text)
{
	for (size_t i = 0; i < o->n_warn; i++)
		if (strstr(o->warn[i], text))
			return true;
	return false;
}

static void bad_lines_are_skipped_with_a_warning(void **state)
{
	(void)state;
	/* Each bad line costs itself (and the value it opens), never the
	 * valid entries around it; the warning names the line and why. */
	static const struct { const char *s; const char *keys; const char *msg; } bad[] = {
		{"ok=1\njunk\nafter=2\n", "ok after", "line 2: expected key=value or key<<DELIMITER"},
		{"=x\nb=2\n", "b", "line 1: invalid key ''"},
		{"a b=1\nc=3\n", "c", "line 1: invalid key 'a b'"},
		{"k.x=1\nk=2\n", "k", "invalid key 'k.x'"},
		{"a=1\nm<<EOF\nx\nb=2\n", "a", "line 2: no line 'EOF' closes the value of the key "
		 "'m'; it is ignored, with the 2 lines after it"},
		{"m<<\nz=1\n", "z", "line 1: missing delimiter"},
		{"x y<<E\nv=1\nE\nw=2\n", "w", "line 1: invalid key 'x y' (letters, digits, _ and - "
		 "only); its value (to line 3) is ignored"},
	};
	struct expr_outputs o;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(expr_outputs_parse(bad[i].s, strlen(bad[i].s), &o), 0);
		char keys[64] = "";
		for (size_t k = 0; k < o.n; k++)
			snprintf(keys + strlen(keys), sizeof(keys) - strlen(keys), "%s%s",
				 k ? " " : "", o.v[k].key);
		if (strcmp(keys, bad[i].keys))
			fail_msg("%s: keys [%s]", bad[i].s, keys);
		if (o.n_warn != 1 || !warned(&o, bad[i].msg))
			fail_msg("%s: %zu warnings, first [%s]", bad[i].s, o.n_warn,
				 o.n_warn ? o.warn[0] : "");
		expr_outputs_free(&o);
	}
	/* many bad lines: EXPR_OUTPUTS_MAX_WARN are kept, the rest counted */
	struct buf b = BUF_INIT;
	for (unsigned i = 0; i < 25; i++)
		buf_printf(&b, "bad line %u\ngood%u=%u\n", i, i, i);
	assert_int_equal(expr_outputs_parse(b.data, b.len, &o), 0);
	assert_int_equal(o.n, 25);
	assert_int_equal(o.n_warn, EXPR_OUTPUTS_MAX_WARN);
	assert_int_equal(o.n_warn_more, 25 - EXPR_OUTPUTS_MAX_WARN);
	expr_outputs_free(&o);
	buf_free(&b);
}

static void caps_keep_what_fits(void **state)
{
	(void)state;
	struct expr_outputs o;
	struct buf b = BUF_INIT;
	for (unsigned i = 0; i <= EXPR_OUTPUTS_MAX_KEYS + 4; i++)
		buf_printf(&b, "k%u=v\n", i);
	buf_printf(&b, "k0=rewritten\n");
	assert_int_equal(expr_outputs_parse(b.data, b.len, &o), 0);
	assert_int_equal(o.n, EXPR_OUTPUTS_MAX_KEYS);
	assert_string_equal(get(&o, "k999"), "v");
	assert_string_equal(get(&o, "k0"), "rewritten");   /* an existing key still */
	assert_null(get(&o, "k1000"));
	assert_true(warned(&o, "line 1001: more than 1000 keys; 5 new keys"));
	expr_outputs_free(&o);
	/* rewriting the same key many times is fine */
	buf_reset(&b);
	for (unsigned i = 0; i < 5000; i++)
		buf_printf(&b, "same=%u\n", i);
	assert_int_equal(expr_outputs_parse(b.data, b.len, &o), 0);
	assert_string_equal(get(&o, "same"), "4999");
	assert_int_equal(o.n_warn, 0);
	expr_outputs_free(&o);
	buf_reset(&b);
	for (unsigned i = 0; i < EXPR_OUTPUTS_MAX_KEY + 1; i++)
		buf_addc(&b, 'k');
	buf_adds(&b, "=1\nok=1\n");
	assert_int_equal(expr_outputs_parse(b.data, b.len, &o), 0);
	assert_int_equal(o.n, 1);
	assert_true(warned(&o, "line 1: a key of 257 bytes is longer than 256 bytes"));
	expr_outputs_free(&o);
	buf_free(&b);
	/* over 1 MiB: the complete lines within it are kept */
	size_t big = EXPR_OUTPUTS_MAX_BYTES + 100;
	char *d = malloc(big);
	memset(d, 'x', big);
	memcpy(d, "a=1\nb=", 6);
	memcpy(d + EXPR_OUTPUTS_MAX_BYTES - 10, "\nc=2\nd=3", 8);
	assert_int_equal(expr_outputs_parse(d, big, &o), 0);
	assert_int_equal(o.n, 3);
	assert_string_equal(get(&o, "a"), "1");
	assert_int_equal(strlen(get(&o, "b")), EXPR_OUTPUTS_MAX_BYTES - 16);
	assert_string_equal(get(&o, "c"), "2");
	assert_null(get(&o, "d"));             /* cut by the cap */
	assert_true(warned(&o, "line 3: the file is larger than 1048576 bytes"));
	expr_outputs_free(&o);
	free(d);
}

static void files_are_read_with_the_cap(void **state)
{
	(void)state;
	char path[] = "/tmp/dagrun-out-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	const char *s = "a=1\nb<<E\nx\ny\nE\n";
	assert_int_equal(write(fd, s, strlen(s)), (ssize_t)strlen(s));
	struct expr_outputs o;
	assert_int_equal(expr_outputs_read(path, &o), 0);
	assert_int_equal(o.n, 2);
	assert_string_equal(get(&o, "b"), "x\ny");
	expr_outputs_free(&o);
	/* over the cap: what came before is kept */
	char chunk[4096];
	memset(chunk, 'x', sizeof(chunk));
	assert_int_equal(write(fd, "c=", 2), 2);
	for (size_t n = 0; n <= 2 * EXPR_OUTPUTS_MAX_BYTES; n += sizeof(chunk))
		assert_int_equal(write(fd, chunk, sizeof(chunk)), (ssize_t)sizeof(chunk));
	close(fd);
	assert_int_equal(expr_outputs_read(path, &o), 0);
	assert_int_equal(o.n, 2);
	assert_string_equal(get(&o, "a"), "1");
	assert_true(warned(&o, "larger than"));
	expr_outputs_free(&o);
	unlink(path);
	/* no file: no outputs */
	assert_int_equal(expr_outputs_read(path, &o), 0);
	assert_int_equal(o.n, 0);
	assert_int_equal(o.n_warn, 0);
	expr_outputs_free(&o);
}

static void on_alarm(int sig)
{
	(void)sig;
	static const char m[] = "expr_outputs_read blocked\n";
	(void)!write(2, m, sizeof(m) - 1);
	_exit(1);
}

static void task_controlled_paths_never_block(void **state)
{
	(void)state;
	char dir[] = "/tmp/dagrun-outdir-XXXXXX", path[64], big[64];
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/out", dir);
	snprintf(big, sizeof(big), "%s/big", dir);
	struct expr_outputs o;
	signal(SIGALRM, on_alarm);
	alarm(20);    /* a regression blocks in open() or read(): fail, not hang */
	static const struct { const char *what, *msg; } kinds[] = {
		{"fifo", "is a FIFO, not a regular file"},
		{"link to /dev/zero", "is a symbolic link"},
		{"link to a regular file", "is a symbolic link"},
		{"directory", "is a directory, not a regular file"},
	};
	int fd = open(big, O_WRONLY | O_CREAT, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "k=v\n", 4), 4);
	close(fd);
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		switch (i) {
		case 0: assert_int_equal(mkfifo(path, 0600), 0); break;
		case 1: assert_int_equal(symlink("/dev/zero", path), 0); break;
		case 2: assert_int_equal(symlink(big, path), 0); break;
		case 3: assert_int_equal(mkdir(path, 0700), 0); break;
		}
		assert_int_equal(expr_outputs_read(path, &o), 0);
		assert_int_equal(o.n, 0);
		if (o.n_warn != 1 || !warned(&o, kinds[i].msg))
			fail_msg("%s: [%s]", kinds[i].what, o.n_warn ? o.warn[0] : "no warning");
		expr_outputs_free(&o);
		if (i == 3)
			rmdir(path);
		else
			unlink(path);
	}
	/* a FIFO with a writer holding it open: still not read */
	assert_int_equal(mkfifo(path, 0600), 0);
	int rd = open(path, O_RDONLY | O_NONBLOCK);
	int wr = open(path, O_WRONLY);
	assert_true(rd >= 0 && wr >= 0);
	assert_int_equal(expr_outputs_read(path, &o), 0);
	assert_true(warned(&o, "FIFO"));
	expr_outputs_free(&o);
	close(wr);
	close(rd);
	unlink(path);
	alarm(0);
	unlink(big);
	rmdir(dir);
}

static void a_result_starts_empty(void **state)
{
	(void)state;
	struct expr_result r;
	expr_result_init(&r);
	assert_int_equal(r.status, DAGRUN_PENDING);
	assert_int_equal(r.exit_code, -1);
	assert_true(r.prompt_tokens < 0 && r.completion_tokens < 0);
	assert_null(r.output);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(both_forms_parse),
		cmocka_unit_test(bad_lines_are_skipped_with_a_warning),
		cmocka_unit_test(caps_keep_what_fits),
		cmocka_unit_test(files_are_read_with_the_cap),
		cmocka_unit_test(task_controlled_paths_never_block),
		cmocka_unit_test(a_result_starts_empty),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
