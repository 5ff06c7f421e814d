/* test_redact.c: secrets and their encoded forms become ***, in one text
 * and in a stream split at every position; overlaps merge; short secrets
 * are ignored; streaming equals one-shot redaction. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "expr/redact.h"

static char *redacted(const struct redactor *r, const char *s, size_t n)
{
	struct buf b = BUF_INIT;
	assert_int_equal(redact_text(r, s, n, &b), 0);
	return buf_steal(&b);
}

static void b64(const char *s, size_t n, const char *alpha, bool pad,
		char *out)
{
	size_t k = 0;
	for (size_t i = 0; i < n; i += 3) {
		unsigned v = (unsigned char)s[i] << 16;
		if (i + 1 < n)
			v |= (unsigned char)s[i + 1] << 8;
		if (i + 2 < n)
			v |= (unsigned char)s[i + 2];
		out[k++] = alpha[(v >> 18) & 63];
		out[k++] = alpha[(v >> 12) & 63];
		if (i + 1 < n)
			out[k++] = alpha[(v >> 6) & 63];
		else if (pad)
			out[k++] = '=';
		if (i + 2 < n)
			out[k++] = alpha[v & 63];
		else if (pad)
			out[k++] = '=';
	}
	out[k] = '\0';
}

static const char STD[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char URL[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static void expect_masked(const struct redactor *r, const char *form)
{
	char text[1024];
	snprintf(text, sizeof(text), "before %s after", form);
	char *got = redacted(r, text, strlen(text));
	if (strcmp(got, "before *** after"))
		fail_msg("form [%s]: got [%s]", form, got);
	free(got);
}

static void every_encoded_form_is_masked(void **state)
{
	(void)state;
	struct redactor *r;
	const char *secret = "s3cr>t/p@ss w0rd+\xc3\xa9\"\\";
	assert_int_equal(redact_new(&r), 0);
	assert_int_equal(redact_add(r, secret, strlen(secret)), 0);
	char form[512];
	expect_masked(r, secret);
	b64(secret, strlen(secret), STD, true, form);
	expect_masked(r, form);
	b64(secret, strlen(secret), STD, false, form);
	expect_masked(r, form);
	b64(secret, strlen(secret), URL, true, form);
	expect_masked(r, form);
	b64(secret, strlen(secret), URL, false, form);
	expect_masked(r, form);
	expect_masked(r, "s3cr%3Et%2Fp%40ss%20w0rd%2B%C3%A9%22%5C");
	expect_masked(r, "s3cr%3et%2fp%40ss%20w0rd%2b%c3%a9%22%5c");
	expect_masked(r, "s3cr%3Et%2Fp%40ss+w0rd%2B%C3%A9%22%5C");
	expect_masked(r, "s3cr>t/p@ss w0rd+\xc3\xa9\\\"\\\\");
	expect_masked(r, "s3cr>t\\/p@ss w0rd+\xc3\xa9\\\"\\\\");
	expect_masked(r, "s3cr>t/p@ss w0rd+\\u00e9\\\"\\\\");
	expect_masked(r, "s3cr\\u003et/p@ss w0rd+\\u00e9\\\"\\\\");
	/* inside a longer base64 text, at each alignment */
	for (int pre = 0; pre < 3; pre++) {
		char plain[256], enc[512];
		snprintf(plain, sizeof(plain), "%.*suser:%s", pre, "xy", secret);
		b64(plain, strlen(plain), STD, true, enc);
		char *got = redacted(r, enc, strlen(enc));
		/* left: the prefix's own characters, one character shared
		 * with the secret, and the tail's last characters */
		char *mask = strstr(got, "***");
		assert_non_null(mask);
		size_t prefix = (strlen(plain) - strlen(secret)) * 4 / 3;
		assert_true((size_t)(mask - got) <= prefix + 1);
		assert_memory_equal(got, enc, (size_t)(mask - got));
		assert_true(strlen(mask + 3) <= 4);
		free(got);
	}
	redact_free(r);
}

static void short_and_repeated_secrets(void **state)
{
	(void)state;
	struct redactor *r;
	assert_int_equal(redact_new(&r), 0);
	assert_int_equal(redact_add(r, "ab", 2), 0);
	assert_int_equal(redact_add(r, "", 0), 0);
	assert_int_equal(redact_patterns(r), 0);
	char *got = redacted(r, "abc", 3);
	assert_string_equal(got, "abc");
	free(got);
	assert_int_equal(redact_add(r, "aaa", 3), 0);
	size_t n = redact_patterns(r);
	assert_int_equal(redact_add(r, "aaa", 3), 0);
	assert_int_equal(redact_patterns(r), n);
	got = redacted(r, "xaaaaaay", 8);
	assert_string_equal(got, "x***y");
	free(got);
	char *big = calloc(1, REDACT_MAX_SECRET + 1);
	memset(big, 'z', REDACT_MAX_SECRET + 1);
	assert_int_equal(redact_add(r, big, REDACT_MAX_SECRET + 1), -E2BIG);
	assert_int_equal(redact_patterns(r), n);
	free(big);
	redact_free(r);
	redact_free(NULL);
}

static void overlapping_secrets_merge(void **state)
{
	(void)state;
	struct redactor *r;
	assert_int_equal(redact_new(&r), 0);
	assert_int_equal(redact_add(r, "abcd", 4), 0);
	assert_int_equal(redact_add(r, "cdef", 4), 0);
	assert_int_equal(redact_add(r, "password", 8), 0);
	assert_int_equal(redact_add(r, "word", 4), 0);
	static const struct { const char *in, *out; } cases[] = {
		{"abcdef", "***"},
		{"xabcdefx", "x***x"},
		{"abcd cdef", "*** ***"},
		{"abcdcdef", "******"},
		{"my password!", "my ***!"},
		{"words", "***s"},
		{"nothing here", "nothing here"},
		{"", ""},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *got = redacted(r, cases[i].in, strlen(cases[i].in));
		if (strcmp(got, cases[i].out))
			fail_msg("[%s]: [%s]", cases[i].in, got);
		free(got);
	}
	redact_free(r);
}

/* Feeds text in chunks cut at cuts[0..n) and returns the output. */
static char *streamed(const struct redactor *r, const char *text, size_t len,
		      const size_t *cuts, size_t n)
{
	struct redact_stream s;
	struct buf out = BUF_INIT;
	size_t pos = 0;
	redact_stream_init(&s, r);
	for (size_t i = 0; i <= n; i++) {
		size_t end = i < n ? cuts[i] : len;
		assert_int_equal(redact_stream_feed(&s, text + pos, end - pos, &out), 0);
		assert_true(s.hold.len < (redact_max_len(r) ? redact_max_len(r) : 1));
		pos = end;
	}
	assert_int_equal(redact_stream_flush(&s, &out), 0);
	redact_stream_free(&s);
	return buf_steal(&out);
}

static void a_secret_split_anywhere_is_masked(void **state)
{
	(void)state;
	struct redactor *r;
	assert_int_equal(redact_new(&r), 0);
	const char *secret = "hunter2-secret";
	assert_int_equal(redact_add(r, secret, strlen(secret)), 0);
	assert_int_equal(redact_add(r, "cdef", 4), 0);
	assert_int_equal(redact_add(r, "abcd", 4), 0);
	const char *texts[] = {
		"xx hunter2-secret yy",
		"hunter2-secret",
		"aaabcdefhunter2-secrethunter2-secretz",
		"aGFudGVyMi1zZWNyZXQ= aHVudGVyMi1zZWNyZXQ=",
		"no secret at all, just text",
	};
	for (size_t t = 0; t < sizeof(texts) / sizeof(texts[0]); t++) {
		const char *text = texts[t];
		size_t len = strlen(text);
		char *want = redacted(r, text, len);
		for (size_t a = 0; a <= len; a++) {
			char *got = streamed(r, text, len, &a, 1);
			if (strcmp(got, want))
				fail_msg("[%s] cut at %zu: [%s] want [%s]", text, a,
					 got, want);
			free(got);
			for (size_t b = a; b <= len; b += 3) {
				size_t cuts[2] = {a, b};
				got = streamed(r, text, len, cuts, 2);
				if (strcmp(got, want))
					fail_msg("[%s] cut at %zu,%zu: [%s]", text, a,
						 b, got);
				free(got);
			}
		}
		/* one byte at a time */
		size_t *cuts = malloc(len * sizeof(*cuts));
		for (size_t i = 0; i < len; i++)
			cuts[i] = i;
		char *got = streamed(r, text, len, cuts, len);
		assert_string_equal(got, want);
		free(got);
		free(cuts);
		free(want);
	}
	char *got = redacted(r, texts[0], strlen(texts[0]));
	assert_string_equal(got, "xx *** yy");
	free(got);
	redact_free(r);
}

static void random_streams_equal_one_shot(void **state)
{
	(void)state;
	struct redactor *r;
	assert_int_equal(redact_new(&r), 0);
	static const char *const secrets[] = {"abab", "bab", "aaaa", "xyzzy",
					      "b a b"};
	for (size_t i = 0; i < sizeof(secrets) / sizeof(secrets[0]); i++)
		assert_int_equal(redact_add(r, secrets[i], strlen(secrets[i])), 0);
	unsigned seed = 7;
	char text[200];
	size_t cuts[10];
	for (int iter = 0; iter < 3000; iter++) {
		size_t len = (size_t)(rand_r(&seed) % sizeof(text));
		for (size_t i = 0; i < len; i++)
			text[i] = "abxyz "[rand_r(&seed) % 6];
		size_t n = (size_t)(rand_r(&seed) % 10);
		for (size_t i = 0; i < n; i++)
			cuts[i] = len ? (size_t)rand_r(&seed) % (len + 1) : 0;
		for (size_t i = 1; i < n; i++)       /* sort the cuts */
			for (size_t j = i; j > 0 && cuts[j] < cuts[j - 1]; j--) {
				size_t t = cuts[j];
				cuts[j] = cuts[j - 1];
				cuts[j - 1] = t;
			}
		char *want = redacted(r, text, len);
		char *got = streamed(r, text, len, cuts, n);
		if (strcmp(got, want))
			fail_msg("[%.*s]: [%s] want [%s]", (int)len, text, got, want);
		for (size_t s = 0; s < sizeof(secrets) / sizeof(secrets[0]); s++)
			assert_null(strstr(got, secrets[s]));
		free(got);
		free(want);
	}
	redact_free(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(every_encoded_form_is_masked),
		cmocka_unit_test(short_and_repeated_secrets),
		cmocka_unit_test(overlapping_secrets_merge),
		cmocka_unit_test(a_secret_split_anywhere_is_masked),
		cmocka_unit_test(random_streams_equal_one_shot),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
