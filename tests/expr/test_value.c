/* test_value.c: the $DAGRUN_OUTPUT format: both forms, duplicates, caps
 * and errors with line numbers; reading from a file. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "dagrun.h"
#include "expr/expr.h"
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
	struct expr_error err;
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
	assert_int_equal(expr_outputs_parse(s, strlen(s), &o, &err), 0);
	assert_int_equal(o.n, 7);
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
	assert_int_equal(expr_outputs_parse("a=b<<c\n", 7, &o, &err), 0);
	assert_string_equal(get(&o, "a"), "b<<c");
	expr_outputs_free(&o);
	assert_int_equal(expr_outputs_parse("", 0, &o, &err), 0);
	assert_int_equal(o.n, 0);
	expr_outputs_free(&o);
}

static void errors_name_the_line(void **state)
{
	(void)state;
	static const struct { const char *s; int rc; const char *msg; } bad[] = {
		{"ok=1\njunk\n", -EINVAL, "line 2: expected key=value"},
		{"=x\n", -EINVAL, "line 1: invalid key ''"},
		{"a b=1\n", -EINVAL, "invalid key 'a b'"},
		{"k.x=1\n", -EINVAL, "invalid key"},
		{"a=1\nm<<EOF\nx\n", -EINVAL, "line 2: no line 'EOF' closes the value of 'm'"},
		{"m<<\n", -EINVAL, "missing delimiter"},
	};
	struct expr_outputs o;
	struct expr_error err;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(expr_outputs_parse(bad[i].s, strlen(bad[i].s), &o,
						    &err), bad[i].rc);
		if (!strstr(err.msg, bad[i].msg))
			fail_msg("%s: %s", bad[i].s, err.msg);
		expr_outputs_free(&o);
	}
}

static void caps_hold(void **state)
{
	(void)state;
	struct expr_outputs o;
	struct expr_error err;
	struct buf b = BUF_INIT;
	for (unsigned i = 0; i <= EXPR_OUTPUTS_MAX_KEYS; i++)
		buf_printf(&b, "k%u=v\n", i);
	assert_int_equal(expr_outputs_parse(b.data, b.len, &o, &err), -E2BIG);
	assert_non_null(strstr(err.msg, "more than 1000 keys"));
	expr_outputs_free(&o);
	/* rewriting the same key many times is fine */
	buf_reset(&b);
	for (unsigned i = 0; i < 5000; i++)
		buf_printf(&b, "same=%u\n", i);
	assert_int_equal(expr_outputs_parse(b.data, b.len, &o, &err), 0);
	assert_string_equal(get(&o, "same"), "4999");
	expr_outputs_free(&o);
	buf_reset(&b);
	for (unsigned i = 0; i < EXPR_OUTPUTS_MAX_KEY + 1; i++)
		buf_addc(&b, 'k');
	buf_adds(&b, "=1\n");
	assert_int_equal(expr_outputs_parse(b.data, b.len, &o, &err), -E2BIG);
	assert_non_null(strstr(err.msg, "key longer than"));
	expr_outputs_free(&o);
	buf_free(&b);
	char *big = malloc(EXPR_OUTPUTS_MAX_BYTES + 1);
	memset(big, 'x', EXPR_OUTPUTS_MAX_BYTES + 1);
	assert_int_equal(expr_outputs_parse(big, EXPR_OUTPUTS_MAX_BYTES + 1, &o,
					    &err), -E2BIG);
	expr_outputs_free(&o);
	free(big);
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
	struct expr_error err;
	assert_int_equal(expr_outputs_read(path, &o, &err), 0);
	assert_int_equal(o.n, 2);
	assert_string_equal(get(&o, "b"), "x\ny");
	expr_outputs_free(&o);
	/* over the cap */
	char chunk[4096];
	memset(chunk, 'x', sizeof(chunk));
	assert_int_equal(write(fd, "c=", 2), 2);
	for (size_t n = 0; n <= EXPR_OUTPUTS_MAX_BYTES; n += sizeof(chunk))
		assert_int_equal(write(fd, chunk, sizeof(chunk)), (ssize_t)sizeof(chunk));
	close(fd);
	assert_int_equal(expr_outputs_read(path, &o, &err), -E2BIG);
	expr_outputs_free(&o);
	unlink(path);
	/* no file: no outputs */
	assert_int_equal(expr_outputs_read(path, &o, &err), 0);
	assert_int_equal(o.n, 0);
	expr_outputs_free(&o);
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
		cmocka_unit_test(errors_name_the_line),
		cmocka_unit_test(caps_hold),
		cmocka_unit_test(files_are_read_with_the_cap),
		cmocka_unit_test(a_result_starts_empty),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
