/* test_util.c: arena, buf (with its cap), interning and diagnostics. */
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

#include "util/arena.h"
#include "util/buf.h"
#include "util/diag.h"
#include "util/intern.h"

static void arena_returns_aligned_distinct_memory_and_big_blocks(void **state)
{
	(void)state;
	struct arena a = ARENA_INIT;
	char *prev = NULL;
	for (int i = 1; i < 5000; i++) {
		char *p = arena_alloc(&a, (size_t)(i % 37) + 1);
		assert_non_null(p);
		assert_int_equal((uintptr_t)p % 8, 0);
		assert_ptr_not_equal(p, prev);
		memset(p, 0xab, (size_t)(i % 37) + 1);
		prev = p;
	}
	char *big = arena_alloc(&a, 3 << 20);
	assert_non_null(big);
	memset(big, 1, 3 << 20);
	assert_string_equal(arena_strndup(&a, "hello world", 5), "hello");
	arena_free(&a);
	arena_free(&a);  /* twice is fine */
}

static void buf_grows_formats_and_stops_at_its_cap(void **state)
{
	(void)state;
	struct buf b = BUF_INIT;
	for (int i = 0; i < 1000; i++)
		assert_int_equal(buf_printf(&b, "%d,", i), 0);
	assert_int_equal(strncmp(b.data, "0,1,2,", 6), 0);
	assert_int_equal(b.data[b.len], '\0');
	buf_reset(&b);
	b.max = 10;
	assert_int_equal(buf_adds(&b, "0123456789"), 0);
	assert_int_equal(buf_addc(&b, 'x'), -E2BIG);
	assert_int_equal(b.len, 10);
	char *s = buf_steal(&b);
	assert_string_equal(s, "0123456789");
	free(s);
	buf_free(&b);
}

static void intern_gives_dense_stable_symbols(void **state)
{
	(void)state;
	struct intern t = {0};
	char name[32];
	for (uint32_t i = 0; i < 100000; i++) {
		int added;
		snprintf(name, sizeof(name), "task-%u", i);
		assert_int_equal(intern_add(&t, name, strlen(name), &added), i);
		assert_true(added);
	}
	for (uint32_t i = 0; i < 100000; i += 7) {
		int added;
		snprintf(name, sizeof(name), "task-%u", i);
		assert_int_equal(intern_add(&t, name, strlen(name), &added), i);
		assert_false(added);
		assert_int_equal(intern_find(&t, name, strlen(name)), i);
		assert_string_equal(intern_str(&t, i), name);
	}
	assert_int_equal(intern_find(&t, "nope", 4), INTERN_NONE);
	intern_free(&t);
}

static void diag_prints_position_line_and_caret_and_caps_entries(void **state)
{
	(void)state;
	char path[] = "/tmp/dagrun-diag-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	const char *text = "name: x\ntasks:\n  - id: a\n    comand: true\n";
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	dagrun_diags *d = dagrun_diags_new(2);
	diag_add(d, DAGRUN_ERROR, path, 4, 5, "unknown key '%s'", "comand");
	diag_add(d, DAGRUN_WARNING, path, 1, 7, "a warning");
	diag_add(d, DAGRUN_ERROR, path, 2, 1, "dropped");
	assert_int_equal(dagrun_diags_count(d), 2);
	assert_int_equal(dagrun_diags_errors(d), 2);
	char *out = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&out, &len);
	assert_int_equal(dagrun_diags_print(d, f, 0), 0);
	fclose(f);
	char want[512];
	snprintf(want, sizeof(want),
		 "%s:4:5: error: unknown key 'comand'\n    comand: true\n    ^\n"
		 "%s:1:7: warning: a warning\nname: x\n      ^\n"
		 "dagrun: 1 more error(s) not shown\n", path, path);
	assert_string_equal(out, want);
	free(out);
	dagrun_diags_free(d);
	unlink(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(arena_returns_aligned_distinct_memory_and_big_blocks),
		cmocka_unit_test(buf_grows_formats_and_stops_at_its_cap),
		cmocka_unit_test(intern_gives_dense_stable_symbols),
		cmocka_unit_test(diag_prints_position_line_and_caret_and_caps_entries),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
