/* test_cache_key.c: the cache key and its reasons (engine/cache_key.c):
 * the key is a function of the components alone (not of their order), any
 * change of a component changes it, and the reason names the first
 * difference in the documented order (format, kind, upstream, inputs,
 * key, secrets, env, files), with how many more.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "engine/cache.h"

static json_t *comp(const char *text)
{
	json_t *j = json_loads(text, 0, NULL);
	assert_non_null(j);
	return j;
}

static void sha256_of_abc_is_the_standard_vector(void **state)
{
	(void)state;
	char hex[65], s[17];
	cache_sha256_hex("abc", 3, hex, false);
	assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	cache_sha256_hex("abc", 3, s, true);
	assert_string_equal(s, "ba7816bf8f01cfea");
}

static void key_is_the_same_whatever_the_order_and_changes_with_any_value(void **state)
{
	(void)state;
	json_t *a = comp("{\"version\":\"1\",\"kind\":\"command\",\"inputs.command\":\"aa\","
			 "\"file:src/a.c\":\"11\"}");
	json_t *b = comp("{\"file:src/a.c\":\"11\",\"inputs.command\":\"aa\",\"kind\":\"command\","
			 "\"version\":\"1\"}");
	json_t *c = comp("{\"file:src/a.c\":\"12\",\"inputs.command\":\"aa\",\"kind\":\"command\","
			 "\"version\":\"1\"}");
	json_t *d = comp("{\"inputs.command\":\"aa\",\"kind\":\"command\",\"version\":\"1\"}");
	char ka[65], kb[65], kc[65], kd[65];
	assert_int_equal(cache_key_of(a, ka), 0);
	assert_int_equal(cache_key_of(b, kb), 0);
	assert_int_equal(cache_key_of(c, kc), 0);
	assert_int_equal(cache_key_of(d, kd), 0);
	assert_int_equal(strlen(ka), 64);
	assert_string_equal(ka, kb);
	assert_string_not_equal(ka, kc);
	assert_string_not_equal(ka, kd);
	json_decref(a);
	json_decref(b);
	json_decref(c);
	json_decref(d);
}

static void check_reason(const char *old, const char *now, const char *want)
{
	json_t *o = comp(old), *n = comp(now);
	char *r = cache_reason(o, n);
	assert_non_null(r);
	assert_string_equal(r, want);
	free(r);
	json_decref(o);
	json_decref(n);
}

static void reason_names_the_first_difference_in_order(void **state)
{
	(void)state;
	check_reason("{\"file:src/a.c\":\"11\",\"file:src/b.c\":\"22\"}",
		     "{\"file:src/a.c\":\"13\",\"file:src/b.c\":\"22\"}",
		     "miss: input changed: src/a.c");
	check_reason("{\"file:src/a.c\":\"11\"}", "{\"file:src/a.c\":\"11\",\"file:src/c.c\":\"3\"}",
		     "miss: input added: src/c.c");
	check_reason("{\"file:src/a.c\":\"11\"}", "{}", "miss: input removed: src/a.c");
	check_reason("{\"inputs.command\":\"aa\"}", "{\"inputs.command\":\"ab\"}",
		     "miss: command changed");
	check_reason("{\"inputs.url\":\"aa\"}", "{\"inputs.url\":\"ab\"}", "miss: url changed");
	check_reason("{\"env:HOME\":\"aa\"}", "{\"env:HOME\":\"unset\"}",
		     "miss: env changed: HOME");
	check_reason("{\"secrets\":\"A\"}", "{\"secrets\":\"A,B\"}", "miss: secrets used changed");
	check_reason("{\"version\":\"0\"}", "{\"version\":\"1\"}", "miss: cache format changed");
	/* the upstream result first: the rendered command changed because of it */
	check_reason("{\"inputs.command\":\"aa\",\"upstream:build\":\"1\",\"file:x\":\"1\"}",
		     "{\"inputs.command\":\"ab\",\"upstream:build\":\"2\",\"file:x\":\"2\"}",
		     "miss: upstream result changed: build (and 2 more)");
	check_reason("{\"upstream:build\":\"1\"}", "{}", "miss: upstream removed: build");
	/* equal components under another key: said, never empty */
	check_reason("{\"kind\":\"command\"}", "{\"kind\":\"command\"}", "miss: key changed");
}

static void diff_lists_every_difference_in_order(void **state)
{
	(void)state;
	json_t *o = comp("{\"file:b\":\"1\",\"inputs.command\":\"a\",\"key\":\"k\",\"env:X\":\"1\"}");
	json_t *n = comp("{\"file:a\":\"1\",\"inputs.command\":\"b\",\"key\":\"k\",\"env:X\":\"2\"}");
	json_t *d = cache_diff(o, n);
	assert_non_null(d);
	char *s = json_dumps(d, JSON_COMPACT);
	assert_string_equal(s, "[\"inputs.command\",\"env:X\",\"file:a\",\"file:b\"]");
	free(s);
	json_decref(d);
	json_decref(o);
	json_decref(n);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(sha256_of_abc_is_the_standard_vector),
		cmocka_unit_test(key_is_the_same_whatever_the_order_and_changes_with_any_value),
		cmocka_unit_test(reason_names_the_first_difference_in_order),
		cmocka_unit_test(diff_lists_every_difference_in_order),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
