/* test_sign.c: the X-Dagrun-Signature scheme (util/sign.c) both ways, and
 * the secrets file's reader (util/dotenv.c) as the server's hooks use it. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "util/dotenv.h"
#include "util/sign.h"

static const char body[] = "{\"a\":1}";

static int verify(const char *hdr, time_t now, long long *skew)
{
	return sign_webhook_verify("key", 3, hdr, body, sizeof(body) - 1, now, 300, skew);
}

static void a_signature_made_is_a_signature_accepted(void **state)
{
	(void)state;
	char *sig = NULL;
	long long skew = -1;
	assert_int_equal(sign_webhook("key", 3, 1700000000, body, sizeof(body) - 1, &sig), 0);
	assert_int_equal(verify(sig, 1700000000, &skew), 0);
	assert_int_equal(skew, 0);
	/* within the tolerance either way */
	assert_int_equal(verify(sig, 1700000300, &skew), 0);
	assert_int_equal(verify(sig, 1699999700, &skew), 0);
	/* another v1 beside it, in any order, upper-case hex: still accepted */
	char two[300], upper[200];
	snprintf(two, sizeof(two), "v1=%064d, %s", 0, sig);
	assert_int_equal(verify(two, 1700000000, &skew), 0);
	snprintf(upper, sizeof(upper), "%s", sig);
	for (char *p = strstr(upper, "v1=") + 3; *p; p++)
		if (*p >= 'a' && *p <= 'f')
			*p = (char)(*p - 'a' + 'A');
	assert_int_equal(verify(upper, 1700000000, &skew), 0);
	free(sig);
}

static void a_wrong_or_malformed_signature_is_refused(void **state)
{
	(void)state;
	char *sig = NULL;
	long long skew;
	assert_int_equal(sign_webhook("other", 5, 1700000000, body, sizeof(body) - 1, &sig), 0);
	assert_int_equal(verify(sig, 1700000000, &skew), -EACCES);
	free(sig);
	/* the right MAC given for another time: refused (t is signed) */
	char moved[200];
	assert_int_equal(sign_webhook("key", 3, 1700000000, body, sizeof(body) - 1, &sig), 0);
	snprintf(moved, sizeof(moved), "t=1700000001,%s", strchr(sig, ',') + 1);
	assert_int_equal(verify(moved, 1700000000, &skew), -EACCES);
	static const char *const bad[] = {
		NULL, "", "t=1700000000", "v1=00", "t=,v1=00", "t=x,v1=00",
		"t=1700000000,v1=zz", "t=1700000000,v1=0123", "t=1,t=2,v1=00",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++)
		assert_int_equal(verify(bad[i], 1700000000, &skew), -EBADMSG);
	free(sig);
}

static void a_good_signature_too_old_or_too_new_is_stale(void **state)
{
	(void)state;
	char *sig = NULL;
	long long skew = 0;
	assert_int_equal(sign_webhook("key", 3, 1700000000, body, sizeof(body) - 1, &sig), 0);
	assert_int_equal(verify(sig, 1700000301, &skew), -ETIME);
	assert_int_equal(skew, 301);
	assert_int_equal(verify(sig, 1699999699, &skew), -ETIME);
	assert_int_equal(skew, -301);
	free(sig);
}

static void dotenv_find_reads_a_secrets_file_as_the_runs_do(void **state)
{
	(void)state;
	static const char text[] =
		"# comment\n"
		"export A=plain value # a comment\n"
		"B='single \\' quoted'\n"
		"C=\"double\\nquoted\"\n"
		"A=last wins\n";
	char *v = NULL;
	unsigned line = 0;
	assert_int_equal(dotenv_find(text, sizeof(text) - 1, "A", &v, &line), 1);
	assert_string_equal(v, "last wins");
	free(v);
	assert_int_equal(dotenv_find(text, sizeof(text) - 1, "B", &v, &line), 1);
	assert_string_equal(v, "single ' quoted");
	free(v);
	assert_int_equal(dotenv_find(text, sizeof(text) - 1, "C", &v, &line), 1);
	assert_string_equal(v, "double\nquoted");
	free(v);
	assert_int_equal(dotenv_find(text, sizeof(text) - 1, "D", &v, &line), 0);
	assert_null(v);
	static const char broken[] = "A=1\nthis is no entry\n";
	assert_int_equal(dotenv_find(broken, sizeof(broken) - 1, "A", &v, &line), -EINVAL);
	assert_null(v);
	assert_int_equal(line, 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(a_signature_made_is_a_signature_accepted),
		cmocka_unit_test(a_wrong_or_malformed_signature_is_refused),
		cmocka_unit_test(a_good_signature_too_old_or_too_new_is_stale),
		cmocka_unit_test(dotenv_find_reads_a_secrets_file_as_the_runs_do),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
