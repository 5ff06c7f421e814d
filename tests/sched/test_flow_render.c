/* test_flow_render.c: rendering a large value escapes it in one pass.
 *
 * Rule 1 (the loop never blocks): a template value in a URL used to be
 * percent-encoded with one buf_printf per byte, and a value full of quotes
 * in a shell command cost a buffer call per quote; a 16 MB value held the
 * loop about a second. This test is linked with the linker's --wrap of
 * buf_printf, buf_addc and buf_adds, counts their calls during a render of
 * a 300 kB value, and checks both the exact output (every byte value, in
 * every context) and that no call is made per byte.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dagrun.h"
#include "sched/flow.h"
#include "util/buf.h"

static unsigned long calls;   /* of the wrapped functions, since reset */

int __real_buf_addc(struct buf *b, char c);
int __real_buf_adds(struct buf *b, const char *s);

int __wrap_buf_printf(struct buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
int __wrap_buf_printf(struct buf *b, const char *fmt, ...)
{
	calls++;
	va_list ap;
	va_start(ap, fmt);
	int r = buf_vprintf(b, fmt, ap);
	va_end(ap);
	return r;
}

int __wrap_buf_addc(struct buf *b, char c);
int __wrap_buf_addc(struct buf *b, char c)
{
	calls++;
	return __real_buf_addc(b, c);
}

int __wrap_buf_adds(struct buf *b, const char *s);
int __wrap_buf_adds(struct buf *b, const char *s)
{
	calls++;
	return __real_buf_adds(b, s);
}

#define REPS 100000        /* copies of the 3-byte piece: a 300 kB value */
#define FEW_CALLS 1000     /* far below one per byte */

struct fixture {
	dagrun_workflow *wf;
	struct flow *f;
	struct dr_text texts[8];   /* flow caches by the text's address */
	int n_texts;
};

static struct fixture *setup(void)
{
	static const char yaml[] = "name: r\ntasks:\n  - {id: a, command: 'true'}\n";
	struct fixture *x = calloc(1, sizeof(*x));
	assert_non_null(x);
	dagrun_diags *d = dagrun_diags_new(0);
	assert_int_equal(dagrun_workflow_load_buffer("r.yaml", yaml, strlen(yaml), &x->wf, d), 0);
	struct flow_opts fo = {.run_id = "run"};
	assert_int_equal(flow_new(&x->f, x->wf, &fo, d), 0);
	dagrun_diags_free(d);
	return x;
}

static void teardown(struct fixture *x)
{
	flow_free(x->f);
	dagrun_workflow_free(x->wf);
	for (int i = 0; i < x->n_texts; i++)
		free((char *)x->texts[i].s);
	free(x);
}

/* Renders src in mode; returns the output (malloc'd) and its length. */
static char *render(struct fixture *x, const char *src, int mode, size_t *len)
{
	assert_true(x->n_texts < 8);
	struct dr_text *t = &x->texts[x->n_texts++];
	*t = (struct dr_text){strdup(src), (uint32_t)strlen(src), 1, 1};
	struct buf out = BUF_INIT;
	char *err = NULL;
	calls = 0;
	int r = flow_render(x->f, 0, t, mode, NULL, 0, &out, &err);
	if (r < 0)
		fail_msg("render failed: %s", err ? err : "?");
	*len = out.len;
	return buf_steal(&out);
}

static bool unreserved(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '.' || c == '_' || c == '~';
}

static void url_values_are_encoded_in_one_pass_for_every_byte(void **state)
{
	(void)state;
	struct fixture *x = setup();
	/* every byte value 1..255 once (\0 is refused before encoding) */
	size_t len;
	char *out = render(x, "http://h/p?q={{ (function() local t = {} for i = 1, 255 do "
			   "t[i] = string.char(i) end return table.concat(t) end)() }}&r=1",
			   EXEC_RENDER_URL, &len);
	struct buf want = BUF_INIT;
	buf_add(&want, "http://h/p?q=", 13);
	for (int c = 1; c < 256; c++) {
		char e[4];
		if (unreserved((unsigned char)c)) {
			e[0] = (char)c;
			buf_add(&want, e, 1);
		} else {
			snprintf(e, sizeof(e), "%%%02X", c);
			buf_add(&want, e, 3);
		}
	}
	buf_add(&want, "&r=1", 4);
	assert_int_equal(len, want.len);
	assert_memory_equal(out, want.data, len);
	free(out);
	buf_free(&want);

	/* a 300 kB value to escape, 2/3 of it: no call per byte */
	char src[128];
	snprintf(src, sizeof(src), "http://h/?q={{ string.rep('a/ ', %d) }}", REPS);
	out = render(x, src, EXEC_RENDER_URL, &len);
	assert_int_equal(len, 12 + (size_t)REPS * 7);
	for (size_t i = 0; i < REPS; i++)
		assert_memory_equal(out + 12 + i * 7, "a%2F%20", 7);
	assert_true(calls < FEW_CALLS);
	free(out);
	teardown(x);
}

static void shell_values_full_of_quotes_are_quoted_in_one_pass(void **state)
{
	(void)state;
	struct fixture *x = setup();
	static const struct {
		const char *tpl;      /* %d: REPS; the value is 'a"$ repeated */
		const char *piece;    /* what each repetition becomes */
		size_t head, tail;    /* bytes of the template around it */
	} cases[] = {
		/* outside quotes: one single-quoted word */
		{"echo {{ string.rep([['a\"$]], %d) }}", "'\\''a\"$", 6, 1},
		/* inside single quotes */
		{"echo '{{ string.rep([['a\"$]], %d) }}'", "'\\''a\"$", 6, 1},
		/* inside double quotes */
		{"echo \"{{ string.rep([['a\"$]], %d) }}\"", "'a\\\"\\$", 6, 1},
	};
	for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		char src[128];
		snprintf(src, sizeof(src), cases[k].tpl, REPS);
		size_t len, pl = strlen(cases[k].piece);
		char *out = render(x, src, EXEC_RENDER_SHELL, &len);
		assert_int_equal(len, cases[k].head + (size_t)REPS * pl + cases[k].tail);
		for (size_t i = 0; i < REPS; i++)
			assert_memory_equal(out + cases[k].head + i * pl, cases[k].piece, pl);
		if (calls >= FEW_CALLS)
			fail_msg("case %zu: %lu buffer calls for a %d-byte value", k, calls,
				 REPS * 3);
		free(out);
	}
	teardown(x);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(url_values_are_encoded_in_one_pass_for_every_byte),
		cmocka_unit_test(shell_values_full_of_quotes_are_quoted_in_one_pass),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
