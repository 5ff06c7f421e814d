/* test_redact.c: secrets and their encoded forms become ***, in one text
 * and in a stream split at every position; every variant of an encoding
 * (which characters are escaped, hex case, '+' or %20, \/ or /, wrapped
 * base64...) is masked; a slice or a cut text masks a secret crossing its
 * edges; overlaps merge; short secrets are reported and not masked;
 * streaming equals one-shot redaction. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <ctype.h>

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

/* "before FORM after" is masked as "before WANT after". */
static void expect_masked_as(const struct redactor *r, const char *form, const char *want)
{
	char text[1024], w[1024];
	snprintf(text, sizeof(text), "before %s after", form);
	snprintf(w, sizeof(w), "before %s after", want);
	char *got = redacted(r, text, strlen(text));
	if (strcmp(got, w))
		fail_msg("form [%s]: got [%s]", form, got);
	free(got);
}

static void expect_masked(const struct redactor *r, const char *form)
{
	expect_masked_as(r, form, "***");
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
	assert_int_equal(redact_add(r, "ab", 2), REDACT_TOO_SHORT);
	assert_int_equal(redact_add(r, "a", 1), REDACT_TOO_SHORT);
	assert_int_equal(redact_add(r, "abc", 3), REDACT_TOO_SHORT);
	assert_int_equal(redact_add(r, "ab", 2), REDACT_TOO_SHORT);
	assert_int_equal(redact_add(r, "", 0), 0);
	assert_int_equal(redact_short_count(r), 3);   /* each distinct one once */
	assert_int_equal(redact_patterns(r), 0);
	char *got = redacted(r, "abcd", 4);
	assert_string_equal(got, "abcd");
	free(got);
	assert_int_equal(redact_add(r, "aaaa", 4), 0);
	size_t n = redact_patterns(r);
	assert_int_equal(redact_add(r, "aaaa", 4), 0);
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

/* Percent-encodes s leaving alphanumerics and the bytes of `literal` as
 * they are; plus: ' ' as '+'. */
static void pct(const char *s, const char *literal, bool lower, bool plus, char *out)
{
	const char *hex = lower ? "0123456789abcdef" : "0123456789ABCDEF";
	size_t k = 0;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if ((*p < 0x80 && isalnum(*p)) || (*p && strchr(literal, *p))) {
			out[k++] = (char)*p;
		} else if (*p == ' ' && plus) {
			out[k++] = '+';
		} else {
			out[k++] = '%';
			out[k++] = hex[*p >> 4];
			out[k++] = hex[*p & 15];
		}
	}
	out[k] = '\0';
}

static void every_percent_variant_is_masked(void **state)
{
	(void)state;
	/* What each library leaves unescaped besides letters and digits. */
	static const struct { const char *lib, *literal; bool plus; } libs[] = {
		{"RFC 3986 unreserved", "-._~", false},
		{"old rawurlencode (~ escaped)", "-._", false},
		{"encodeURIComponent", "-._~!'()*", false},
		{"encodeURI", "-._~!'()*;,/?:@&=+$#", false},
		{"Python quote", "-._~/", false},
		{"Python quote, safe=\"!'()*~\"", "-._~!'()*", false},
		{"quote_plus / form", "-._~", true},
		{"Java URLEncoder", "-._*", true},
	};
	static const char *const secrets[] = {
		"pa/ss'w(o)rd*x!y~z",
		"s3cr>t/p@ss w0rd+\xc3\xa9\"\\",
	};
	struct redactor *r;
	assert_int_equal(redact_new(&r), 0);
	for (size_t i = 0; i < 2; i++)
		assert_int_equal(redact_add(r, secrets[i], strlen(secrets[i])), 0);
	char form[512];
	for (size_t i = 0; i < 2; i++)
		for (size_t l = 0; l < sizeof(libs) / sizeof(libs[0]); l++)
			for (int lower = 0; lower < 2; lower++) {
				pct(secrets[i], libs[l].literal, lower, libs[l].plus, form);
				expect_masked(r, form);
			}
	/* Python's quote(t) and quote(t, safe="!'()*~"), as in issue 9 */
	expect_masked(r, "pa/ss%27w%28o%29rd%2Ax%21y~z");
	expect_masked(r, "pa%2Fss'w(o)rd*x!y~z");
	/* mixed hex case, and a URL around it */
	expect_masked(r, "pa%2fss%27w%28o%29rd%2Ax%21y%7Ez");
	char *got = redacted(r, "GET /cb?token=pa%2Fss%27w%28o%29rd%2Ax%21y~z&x=1", 48);
	assert_string_equal(got, "GET /cb?token=***&x=1");
	free(got);
	redact_free(r);
}

static void every_escape_variant_is_masked(void **state)
{
	(void)state;
	struct redactor *r;
	assert_int_equal(redact_new(&r), 0);
	const char *q = "pa/ss'w(o)rd*x!y~z";
	const char *u = "s3cr>t/p@ss w0rd+\xc3\xa9\"\\";
	const char *e = "emoji\xf0\x9f\x98\x80<&>";
	const char *nl = "line1\nline2'x";
	assert_int_equal(redact_add(r, q, strlen(q)), 0);
	assert_int_equal(redact_add(r, u, strlen(u)), 0);
	assert_int_equal(redact_add(r, e, strlen(e)), 0);
	assert_int_equal(redact_add(r, nl, strlen(nl)), 0);
	static const char *const forms[] = {
		/* JSON, as encoders write it */
		"pa\\/ss'w(o)rd*x!y~z",                       /* PHP: \/ */
		"pa/ss\\u0027w(o)rd*x!y~z",                   /* JSON_HEX_APOS */
		"s3cr>t/p@ss w0rd+\xc3\xa9\\\"\\\\",          /* Python, JS */
		"s3cr\\u003et\\/p@ss w0rd+\\u00e9\\\"\\\\",   /* Go-ish, ASCII */
		"s3cr\\u003Et/p@ss w0rd+\\u00E9\\\"\\\\",     /* upper-case hex */
		"emoji\\ud83d\\ude00\\u003c\\u0026\\u003e",   /* surrogate pair */
		"emoji\\uD83D\\uDE00<&>",
		"line1\\nline2'x",
		/* C, Python */
		"pa/ss\\x27w(o)rd*x!y~z",
		"emoji\\U0001f600<&>",
		"emoji\\360\\237\\230\\200<&>",
		/* shell: printf %q, '\'' (bash -x, ${x@Q}), shlex.quote, $'...' */
		"pa/ss\\'w\\(o\\)rd\\*x\\!y~z",

		/* HTML */
		"pa/ss&#39;w(o)rd*x!y~z",
		"pa/ss&#x27;w(o)rd*x!y~z",
		"s3cr&gt;t/p@ss w0rd+&#233;&quot;\\",
		"emoji&#128512;&lt;&amp;&gt;",
		/* JSON holding a percent-encoded value */
		"pa\\/ss%27w%28o%29rd%2Ax%21y~z",
		"s3cr%3Et%2Fp%40ss+w0rd%2B\\u00e9\\\"\\\\",
	};
	for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++)
		expect_masked(r, forms[i]);
	/* the quotes around a shell-quoted secret are not part of it */
	expect_masked_as(r, "'pa/ss'\\''w(o)rd*x!y~z'", "'***'");
	expect_masked_as(r, "'pa/ss'\"'\"'w(o)rd*x!y~z'", "'***'");
	expect_masked_as(r, "$'line1\\nline2\\'x'", "$'***'");
	expect_masked_as(r, "\"s3cr>t/p@ss w0rd+\xc3\xa9\\\"\\\\\"", "\"***\"");
	redact_free(r);
}

/* base64 of s wrapped every `width` characters with eol. */
static void b64_wrapped(const char *s, size_t n, size_t width, const char *eol, char *out)
{
	char flat[1024];
	b64(s, n, STD, true, flat);
	size_t k = 0;
	for (size_t i = 0; flat[i]; i++) {
		if (i && i % width == 0)
			for (const char *p = eol; *p; p++)
				out[k++] = *p;
		out[k++] = flat[i];
	}
	out[k] = '\0';
}

static void every_base64_variant_is_masked(void **state)
{
	(void)state;
	struct redactor *r;
	assert_int_equal(redact_new(&r), 0);
	/* 93 bytes, like a fine-grained GitHub token: its base64 is wrapped */
	char secret[128];
	snprintf(secret, sizeof(secret), "github_pat_%s",
		 "11ABCDEFG0abcdefghijkl_mnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ01234567ab");
	assert_int_equal(redact_add(r, secret, strlen(secret)), 0);
	char form[1024], plain[256];
	b64_wrapped(secret, strlen(secret), 76, "\n", form);      /* base64(1) */
	assert_non_null(strchr(form, '\n'));
	expect_masked(r, form);
	b64_wrapped(secret, strlen(secret), 64, "\r\n", form);    /* PEM, MIME */
	expect_masked(r, form);
	/* echo "$T" | base64: the secret and a newline */
	snprintf(plain, sizeof(plain), "%s\n", secret);
	b64(plain, strlen(plain), URL, false, form);
	char *got = redacted(r, form, strlen(form));
	assert_non_null(strstr(got, "***"));
	assert_true(strlen(got) <= 3 + 4);
	free(got);
	redact_free(r);
}

static char *sliced(const struct redactor *r, const char *s, size_t start, size_t end, int cut)
{
	struct buf b = BUF_INIT;
	assert_int_equal(redact_slice(r, s, strlen(s), start, end, cut, &b), 0);
	return buf_steal(&b);
}

static void slices_mask_secrets_across_their_edges(void **state)
{
	(void)state;
	struct redactor *r;
	assert_int_equal(redact_new(&r), 0);
	const char *secret = "secretXYZ123";
	const char *q = "pa/ss'w(o)rd*x!y~z";
	assert_int_equal(redact_add(r, secret, strlen(secret)), 0);
	assert_int_equal(redact_add(r, q, strlen(q)), 0);
	static const struct {
		const char *text;
		size_t start, end;   /* SIZE_MAX: the text's length */
		int cut;
		const char *want;
	} cases[] = {
		/* a slice starting or ending inside a secret (the whole is known) */
		{"aaa secretXYZ123 bbb", 5, SIZE_MAX, 0, "*** bbb"},
		{"aaa secretXYZ123 bbb", 0, 8, 0, "aaa ***"},
		{"aaa secretXYZ123 bbb", 6, 9, 0, "***"},
		{"aaa secretXYZ123 bbb", 0, 3, 0, "aaa"},
		/* a text whose end or start was lost */
		{"log: hunter secretXY", 0, SIZE_MAX, REDACT_CUT_TAIL, "log: hunter ***"},
		{"log: hunter secretXY", 0, SIZE_MAX, 0, "log: hunter secretXY"},
		{"ecretXYZ123 and more", 0, SIZE_MAX, REDACT_CUT_HEAD, "*** and more"},
		{"ecretXYZ123 and more", 0, SIZE_MAX, REDACT_CUT_TAIL, "ecretXYZ123 and more"},
		{"23 and more", 0, SIZE_MAX, REDACT_CUT_HEAD, "23 and more"},   /* < EDGE_MIN */
		{"123 and more", 0, SIZE_MAX, REDACT_CUT_HEAD, "*** and more"},
		{"zz123 and more", 0, SIZE_MAX, REDACT_CUT_HEAD, "zz123 and more"},
		{"text ends se", 0, SIZE_MAX, REDACT_CUT_TAIL, "text ends se"},
		{"text ends sec", 0, SIZE_MAX, REDACT_CUT_TAIL, "text ends ***"},
		/* pieces of encoded forms, cut inside an escape too */
		{"url=pa%2Fss%2", 0, SIZE_MAX, REDACT_CUT_TAIL, "url=***"},
		{"url=pa%2Fss%27w%2", 0, SIZE_MAX, REDACT_CUT_TAIL, "url=***"},
		{"2Fss%27w(o)rd*x!y~z&x=1", 0, SIZE_MAX, REDACT_CUT_HEAD, "***&x=1"},
		{"{\"t\":\"pa\\/ss\\u00", 0, SIZE_MAX, REDACT_CUT_TAIL, "{\"t\":\"***"},
		{"0027w(o)rd*x!y~z\"}", 0, SIZE_MAX, REDACT_CUT_HEAD, "***\"}"},
		{"Basic c2VjcmV0WF", 0, SIZE_MAX, REDACT_CUT_TAIL, "Basic ***"},
		/* both ends */
		{"tXYZ123 mid secr", 0, SIZE_MAX, REDACT_CUT_HEAD | REDACT_CUT_TAIL, "*** mid ***"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t len = strlen(cases[i].text);
		size_t end = cases[i].end == SIZE_MAX ? len : cases[i].end;
		char *got = sliced(r, cases[i].text, cases[i].start, end, cases[i].cut);
		if (strcmp(got, cases[i].want))
			fail_msg("[%s] %zu..%zu cut %d: [%s] want [%s]", cases[i].text,
				 cases[i].start, end, cases[i].cut, got, cases[i].want);
		free(got);
	}
	/* a tail of a large text: only the part asked for is returned, and a
	 * secret crossing its start is masked */
	size_t big = (size_t)1 << 20;
	char *text = malloc(big + 1);
	memset(text, 'x', big);
	text[big] = '\0';
	memcpy(text + big - 2048 - 4, secret, strlen(secret));
	char *got = sliced(r, text, big - 2048, big, 0);
	assert_int_equal(strlen(got), 3 + 2048 - (strlen(secret) - 4));
	assert_memory_equal(got, "***xxx", 6);
	free(got);
	/* the same text cut at 1 MiB with a secret at its end */
	memcpy(text + big - 8, secret, 8);
	got = sliced(r, text, 0, big, REDACT_CUT_TAIL);
	assert_int_equal(strlen(got), big - 12 + 3 - 8 + 3);   /* two secrets */
	assert_string_equal(got + strlen(got) - 4, "x***");
	free(got);
	free(text);
	redact_free(r);
}

static void a_cut_stream_masks_a_piece_at_its_end(void **state)
{
	(void)state;
	struct redactor *r;
	assert_int_equal(redact_new(&r), 0);
	assert_int_equal(redact_add(r, "hunter2secretvalue", 18), 0);
	struct redact_stream st;
	struct buf out = BUF_INIT;
	redact_stream_init(&st, r);
	/* the body stopped at its limit after "hunter2s" */
	assert_int_equal(redact_stream_feed(&st, "body: xxxx hunt", 15, &out), 0);
	assert_int_equal(redact_stream_feed(&st, "er2s", 4, &out), 0);
	assert_int_equal(redact_stream_flush_cut(&st, &out), 0);
	assert_string_equal(out.data, "body: xxxx ***");
	/* reused, not cut: the same text is left alone */
	buf_reset(&out);
	assert_int_equal(redact_stream_feed(&st, "body: xxxx hunter2s", 19, &out), 0);
	assert_int_equal(redact_stream_flush(&st, &out), 0);
	assert_string_equal(out.data, "body: xxxx hunter2s");
	buf_free(&out);
	redact_stream_free(&st);
	redact_free(r);
}

static void contains_sees_every_form(void **state)
{
	(void)state;
	struct redactor *r;
	assert_false(redact_contains(NULL, "x", 1));
	assert_int_equal(redact_new(&r), 0);
	assert_false(redact_contains(r, "anything", 8));
	const char *q = "pa/ss'w(o)rd*x!y~z";
	assert_int_equal(redact_add(r, q, strlen(q)), 0);
	assert_true(redact_contains(r, "Bearer pa/ss'w(o)rd*x!y~z", 25));
	assert_true(redact_contains(r, "k=pa%2Fss%27w%28o%29rd%2Ax%21y~z", 32));
	assert_false(redact_contains(r, "Bearer pa/ss'w(o)rd", 19));
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
		assert_true(s.hold.len < redact_max_len(r) + REDACT_STREAM_CONTEXT);
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
	static const char *const secrets[] = {"abab", "baba", "aaaa", "xyzzy",
					      "b a b", "a%2b", "b\\a&", "x+y/"};
	for (size_t i = 0; i < sizeof(secrets) / sizeof(secrets[0]); i++)
		assert_int_equal(redact_add(r, secrets[i], strlen(secrets[i])), 0);
	unsigned seed = 7;
	char text[200];
	size_t cuts[10];
	for (int iter = 0; iter < 3000; iter++) {
		size_t len = (size_t)(rand_r(&seed) % sizeof(text));
		for (size_t i = 0; i < len; i++)
			text[i] = "abxyz %\\&+2;#/u0"[rand_r(&seed) % 16];
		/* now and then an encoded form of a secret inside */
		static const char *const forms[] = {"x%2By%2f", "x+y%2F", "b\\\\a\\u0026",
						    "b%5Ca&", "YWJhYg", "a%252b", "b&#92;a&amp;"};
		const char *f = forms[rand_r(&seed) % 7];
		size_t at = len ? (size_t)rand_r(&seed) % len : 0;
		bool put = rand_r(&seed) % 2 && at + strlen(f) < sizeof(text);
		if (put) {
			/* not right after an escape's start: "\b" is a
			 * backspace, "%0b" a vertical tab */
			for (size_t k = at > 2 ? at - 2 : 0; k < at; k++)
				text[k] = ' ';
			memcpy(text + at, f, strlen(f));
			if (at + strlen(f) > len)
				len = at + strlen(f);
		}
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
		if (put && strstr(got, f))
			fail_msg("[%.*s]: form %s left in [%s]", (int)len, text, f, got);
		free(got);
		free(want);
	}
	redact_free(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(every_encoded_form_is_masked),
		cmocka_unit_test(every_percent_variant_is_masked),
		cmocka_unit_test(every_escape_variant_is_masked),
		cmocka_unit_test(every_base64_variant_is_masked),
		cmocka_unit_test(slices_mask_secrets_across_their_edges),
		cmocka_unit_test(a_cut_stream_masks_a_piece_at_its_end),
		cmocka_unit_test(contains_sees_every_form),
		cmocka_unit_test(short_and_repeated_secrets),
		cmocka_unit_test(overlapping_secrets_merge),
		cmocka_unit_test(a_secret_split_anywhere_is_masked),
		cmocka_unit_test(random_streams_equal_one_shot),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
