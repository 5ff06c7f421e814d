/* test_duration.c: duration_parse and duration_format. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "load/duration.h"

static uint64_t ok(const char *s)
{
	uint64_t ms = 12345;
	const char *why = NULL;
	int r = duration_parse(s, strlen(s), &ms, &why);
	if (r != 0)
		fail_msg("'%s' rejected: %s", s, why);
	return ms;
}

static void bad(const char *s, int err, const char *why_part)
{
	uint64_t ms = 7;
	const char *why = NULL;
	assert_int_equal(duration_parse(s, strlen(s), &ms, &why), err);
	assert_non_null(why);
	if (!strstr(why, why_part))
		fail_msg("'%s': reason '%s' lacks '%s'", s, why, why_part);
	assert_int_equal(ms, 7); /* untouched on error */
}

static void single_units_are_converted_to_milliseconds(void **state)
{
	(void)state;
	assert_int_equal(ok("250ms"), 250);
	assert_int_equal(ok("2s"), 2000);
	assert_int_equal(ok("5m"), 300000);
	assert_int_equal(ok("1h"), 3600000);
	assert_int_equal(ok("0s"), 0);
	assert_int_equal(ok("0"), 0);
}

static void bare_digits_mean_milliseconds(void **state)
{
	(void)state;
	assert_int_equal(ok("1500"), 1500);
	assert_int_equal(ok("007"), 7);
}

static void compound_durations_add_up(void **state)
{
	(void)state;
	assert_int_equal(ok("1m30s"), 90000);
	assert_int_equal(ok("1h2m3s500ms"), 3723500);
	assert_int_equal(ok("2h30m"), 9000000);
	assert_int_equal(ok("1s1ms"), 1001);
}

static void days_are_the_largest_unit(void **state)
{
	(void)state;
	assert_int_equal(ok("30d"), 30ull * 86400000);
	assert_int_equal(ok("1d12h"), 36ull * 3600000);
	assert_int_equal(ok("2d3h4m5s6ms"), 2ull * 86400000 + 3 * 3600000 + 4 * 60000 + 5006);
	bad("1h1d", -EINVAL, "largest first (d, h");
	bad("1d1d", -EINVAL, "once each");
	bad("1w", -EINVAL, "use ms, s, m, h or d");
	bad("213503982335d", -ERANGE, "too large");         /* > 2^64 ms */
	assert_int_equal(ok("213503982334d"), 213503982334ull * 86400000);
}

static void syntax_errors_are_rejected_with_a_reason(void **state)
{
	(void)state;
	bad("", -EINVAL, "empty");
	bad("-5s", -EINVAL, "negative");
	bad("5x", -EINVAL, "unknown unit");
	bad("5 s", -EINVAL, "unexpected character");
	bad("1.5s", -EINVAL, "unexpected character");
	bad("s", -EINVAL, "expected a number");
	bad("1m30", -EINVAL, "no unit");
	bad("30s1m", -EINVAL, "largest first");
	bad("1s1s", -EINVAL, "once each");
	bad("5sec", -EINVAL, "unknown unit");
	bad("+5s", -EINVAL, "expected a number");
}

static void overflow_is_rejected(void **state)
{
	(void)state;
	bad("18446744073709551616", -ERANGE, "too large");  /* 2^64 */
	bad("18446744073709551615h", -ERANGE, "too large");
	bad("5124095576031h", -ERANGE, "too large");       /* > 2^64 ms */
	assert_int_equal(ok("5124095576030h"), 5124095576030ull * 3600000);
	bad("5124095576030h999999999999m", -ERANGE, "too large");
	assert_int_equal(ok("18446744073709551615"), UINT64_MAX);
}

static void formatting_is_the_shortest_text(void **state)
{
	char b[32];
	(void)state;
	assert_string_equal(duration_format(0, b, sizeof(b)), "0");
	assert_string_equal(duration_format(250, b, sizeof(b)), "250ms");
	assert_string_equal(duration_format(90000, b, sizeof(b)), "1m30s");
	assert_string_equal(duration_format(3723500, b, sizeof(b)), "1h2m3s500ms");
	assert_string_equal(duration_format(7ull * 24 * 3600 * 1000, b, sizeof(b)), "168h");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(single_units_are_converted_to_milliseconds),
		cmocka_unit_test(bare_digits_mean_milliseconds),
		cmocka_unit_test(compound_durations_add_up),
		cmocka_unit_test(days_are_the_largest_unit),
		cmocka_unit_test(syntax_errors_are_rejected_with_a_reason),
		cmocka_unit_test(overflow_is_rejected),
		cmocka_unit_test(formatting_is_the_shortest_text),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
