/* test_obs.c: the observers' output sink (real pipes, a real writer thread),
 * the escaping of untrusted text, and what the console and the JSON log make
 * of hostile or oversized task output. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include <jansson.h>

#include "dagrun.h"
#include "obs/sink.h"
#include "util/text.h"
#include "util/buf.h"

/* ---- helpers ------------------------------------------------------------------ */

/* Reads a pipe to its end on a thread of its own, after an optional delay. */
struct reader {
	int fd;
	unsigned delay_ms;
	pthread_t th;
	struct buf got;
};

static void sleep_ms(unsigned ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static void *reader_main(void *arg)
{
	struct reader *r = arg;
	sleep_ms(r->delay_ms);
	char b[65536];
	ssize_t n;
	while ((n = read(r->fd, b, sizeof(b))) > 0 || (n < 0 && errno == EINTR))
		if (n > 0)
			buf_add(&r->got, b, (size_t)n);
	return NULL;
}

static void reader_start(struct reader *r, int fd, unsigned delay_ms)
{
	r->fd = fd;
	r->delay_ms = delay_ms;
	r->got = (struct buf)BUF_INIT;
	assert_int_equal(pthread_create(&r->th, NULL, reader_main, r), 0);
}

static void reader_join(struct reader *r)
{
	pthread_join(r->th, NULL);
	close(r->fd);
}

/* A pipe whose write end is a FILE, with a small kernel buffer so that a
 * few KiB fill it. */
static FILE *small_pipe(int *rfd)
{
	int p[2];
	assert_int_equal(pipe(p), 0);
	fcntl(p[1], F_SETPIPE_SZ, 4096);
	*rfd = p[0];
	FILE *f = fdopen(p[1], "w");
	assert_non_null(f);
	return f;
}

/* Fills the pipe under f with 'f' bytes, so that the sink's first write
 * blocks until a reader comes: the sink's buffer is then all there is, and
 * what gets dropped does not depend on timing. */
static void fill_pipe(FILE *f)
{
	int fd = fileno(f), fl = fcntl(fd, F_GETFL);
	fcntl(fd, F_SETFL, fl | O_NONBLOCK);
	while (write(fd, "f", 1) == 1)
		;
	assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
	fcntl(fd, F_SETFL, fl);
}

static const char *skip_fill(const char *s)
{
	assert_true(*s == 'f');
	while (*s == 'f')
		s++;
	return s;
}

static int test_notice(void *ud, uint64_t lines, uint64_t bytes, struct buf *out)
{
	(void)ud;
	return buf_printf(out, "[dropped %llu %llu]\n", (unsigned long long)lines,
			  (unsigned long long)bytes);
}

/* Checks that text is "line N" records in increasing order, where each gap
 * is announced, at its place, by a notice counting exactly the missing
 * lines; returns the records seen. */
static unsigned check_gaps(const char *text, unsigned total, unsigned *notices)
{
	unsigned next = 0, seen = 0;
	unsigned long long pending = 0;
	*notices = 0;
	const char *p = text;
	while (*p) {
		const char *nl = strchr(p, '\n');
		assert_non_null(nl);
		unsigned n;
		unsigned long long lines, bytes;
		if (sscanf(p, "[dropped %llu %llu]", &lines, &bytes) == 2) {
			assert_int_equal(pending, 0);
			pending = lines;
			(*notices)++;
			assert_int_equal(bytes, lines * 11);
		} else {
			assert_int_equal(sscanf(p, "line %05u", &n), 1);
			if (n < next)
				fail_msg("line %u after line %u", n, next - 1);
			assert_int_equal(n - next, pending);   /* the gap is what the notice said */
			pending = 0;
			next = n + 1;
			seen++;
		}
		p = nl + 1;
	}
	assert_int_equal(total - next, pending);   /* a last gap, announced at the end */
	return seen;
}

/* ---- the sink ----------------------------------------------------------------- */

static void sink_writes_every_record_in_order_through_a_pipe(void **state)
{
	(void)state;
	int rfd;
	FILE *f = small_pipe(&rfd);
	struct reader rd;
	reader_start(&rd, rfd, 0);
	struct obs_sink *s;
	assert_int_equal(obs_sink_new(f, 0, test_notice, NULL, &s), 0);
	struct buf want = BUF_INIT;
	char line[32];
	for (unsigned i = 0; i < 20000; i++) {
		int n = snprintf(line, sizeof(line), "line %05u\n", i);
		buf_add(&want, line, (size_t)n);
		/* 220 KB through a 4 MiB buffer: nothing is dropped */
		assert_int_equal(obs_sink_write(s, line, (size_t)n, false), 0);
	}
	obs_sink_free(s);
	fclose(f);
	reader_join(&rd);
	assert_int_equal(rd.got.len, want.len);
	assert_memory_equal(rd.got.data, want.data, want.len);
	buf_free(&want);
	buf_free(&rd.got);
}

static void sink_drops_whole_lines_when_nobody_reads_and_announces_the_gap(void **state)
{
	(void)state;
	int rfd;
	FILE *f = small_pipe(&rfd);
	fill_pipe(f);
	struct obs_sink *s;
	assert_int_equal(obs_sink_new(f, 8192, test_notice, NULL, &s), 0);
	/* Nobody reads: the pipe is full, the buffer (8 KiB) fills, and
	 * every further write returns at once, dropped. A write that blocked
	 * would hang here; the suite's timeout turns that into a failure. */
	unsigned dropped = 0, i = 0;
	char line[32];
	for (; i < 5000; i++) {
		int n = snprintf(line, sizeof(line), "line %05u\n", i);
		int r = obs_sink_write(s, line, (size_t)n, false);
		assert_true(r == 0 || r == 1);
		dropped += r == 1;
	}
	assert_true(dropped > 3000);
	uint64_t lines, bytes;
	obs_sink_dropped(s, &lines, &bytes);
	assert_int_equal(lines, dropped);
	assert_int_equal(bytes, dropped * 11ull);
	/* The reader comes; once it caught up, writing resumes after a notice. */
	struct reader rd;
	reader_start(&rd, rfd, 0);
	for (int tries = 0, r = 1; tries < 1000 && r == 1; tries++) {
		int n = snprintf(line, sizeof(line), "line %05u\n", i++);
		r = obs_sink_write(s, line, (size_t)n, false);
		dropped += r == 1;
		if (r == 1)
			sleep_ms(10);
	}
	for (unsigned k = 0; k < 10; k++, i++) {
		int n = snprintf(line, sizeof(line), "line %05u\n", i);
		assert_int_equal(obs_sink_write(s, line, (size_t)n, false), 0);
	}
	obs_sink_free(s);
	fclose(f);
	reader_join(&rd);
	unsigned notices;
	unsigned seen = check_gaps(skip_fill(rd.got.data), i, &notices);
	assert_int_equal(seen + dropped, i);
	assert_int_equal(notices, 1);   /* one gap: dropping lasts until the reader catches up */
	buf_free(&rd.got);
}

static void sink_lets_records_to_keep_pass_a_flood(void **state)
{
	(void)state;
	int rfd;
	FILE *f = small_pipe(&rfd);
	fill_pipe(f);
	struct obs_sink *s;
	assert_int_equal(obs_sink_new(f, 8192, test_notice, NULL, &s), 0);
	char line[32];
	unsigned i = 0;
	for (; i < 3000; i++) {
		int n = snprintf(line, sizeof(line), "line %05u\n", i);
		obs_sink_write(s, line, (size_t)n, false);
	}
	/* The flood is being dropped, but a status line still gets in, after
	 * a notice for the lines dropped before it. */
	int n = snprintf(line, sizeof(line), "line %05u\n", i++);
	assert_int_equal(obs_sink_write(s, line, (size_t)n, true), 0);
	n = snprintf(line, sizeof(line), "line %05u\n", i++);
	assert_int_equal(obs_sink_write(s, line, (size_t)n, false), 1);   /* bulk: still dropped */
	struct reader rd;
	reader_start(&rd, rfd, 0);
	obs_sink_free(s);
	fclose(f);
	reader_join(&rd);
	unsigned notices;
	check_gaps(skip_fill(rd.got.data), i, &notices);
	assert_int_equal(notices, 2);   /* before the kept line, and at the end */
	char want[32];
	snprintf(want, sizeof(want), "line %05u\n", i - 2);
	assert_non_null(strstr(rd.got.data, want));
	buf_free(&rd.got);
}

static void sink_wait_write_loses_nothing_even_past_its_capacity(void **state)
{
	(void)state;
	int rfd;
	FILE *f = small_pipe(&rfd);
	struct reader rd;
	reader_start(&rd, rfd, 300);   /* a slow reader */
	struct obs_sink *s;
	assert_int_equal(obs_sink_new(f, 4096, test_notice, NULL, &s), 0);
	struct buf big = BUF_INIT;
	for (unsigned i = 0; i < 3000; i++)
		buf_printf(&big, "line %05u\n", i);
	assert_int_equal(obs_sink_write_wait(s, big.data, big.len), 0);
	obs_sink_free(s);
	fclose(f);
	reader_join(&rd);
	assert_int_equal(rd.got.len, big.len);
	assert_memory_equal(rd.got.data, big.data, big.len);
	buf_free(&big);
	buf_free(&rd.got);
}

static void sink_try_write_refuses_without_counting_and_wait_delivers(void **state)
{
	(void)state;
	int rfd;
	FILE *f = small_pipe(&rfd);
	fill_pipe(f);
	struct obs_sink *s;
	assert_int_equal(obs_sink_new(f, 4096, test_notice, NULL, &s), 0);
	char line[32];
	unsigned i = 0;
	for (; i < 3000; i++) {   /* records to keep fill the whole buffer */
		int n = snprintf(line, sizeof(line), "line %05u\n", i);
		obs_sink_write(s, line, (size_t)n, true);
	}
	uint64_t lines, bytes, lines2, bytes2;
	obs_sink_dropped(s, &lines, &bytes);
	assert_true(lines > 0);
	int n = snprintf(line, sizeof(line), "line %05u\n", i++);
	assert_int_equal(obs_sink_try_write(s, line, (size_t)n), 1);
	obs_sink_dropped(s, &lines2, &bytes2);
	assert_int_equal(lines2, lines);   /* refused, not dropped */
	struct reader rd;
	reader_start(&rd, rfd, 200);
	assert_int_equal(obs_sink_write_wait(s, line, (size_t)n), 0);
	obs_sink_free(s);
	fclose(f);
	reader_join(&rd);
	unsigned notices;
	check_gaps(skip_fill(rd.got.data), i, &notices);
	assert_int_equal(notices, 1);
	/* the waited record comes last, after the notice of the gap before it */
	assert_non_null(strstr(rd.got.data, "]\nline 03000\n"));
	assert_int_equal(strcmp(rd.got.data + rd.got.len - 11, "line 03000\n"), 0);
	buf_free(&rd.got);
}

static void sink_survives_a_reader_that_went_away(void **state)
{
	(void)state;
	/* SIGPIPE is left at its default (fatal) disposition on purpose: the
	 * writer thread blocks it, so the write fails with EPIPE instead. */
	signal(SIGPIPE, SIG_DFL);
	int rfd;
	FILE *f = small_pipe(&rfd);
	close(rfd);
	struct obs_sink *s;
	assert_int_equal(obs_sink_new(f, 4096, test_notice, NULL, &s), 0);
	int r = 0;
	for (int i = 0; i < 2000 && r >= 0; i++) {
		r = obs_sink_write(s, "line 00000\n", 11, false);
		if (r >= 0)
			sleep_ms(1);
	}
	assert_int_equal(r, -EPIPE);
	assert_int_equal(obs_sink_write_wait(s, "the end\n", 8), -EPIPE);
	obs_sink_free(s);   /* returns: nothing left to wait for */
	fclose(f);
}

static void sink_writes_a_stream_without_descriptor_directly(void **state)
{
	(void)state;
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	struct obs_sink *s;
	assert_int_equal(obs_sink_new(f, 16, test_notice, NULL, &s), 0);
	for (int i = 0; i < 100; i++)
		assert_int_equal(obs_sink_write(s, "line 00000\n", 11, false), 0);
	obs_sink_free(s);
	fclose(f);
	assert_int_equal(len, 1100);
	free(text);
}

/* ---- escaping ----------------------------------------------------------------- */

static void expect_escape(const char *in, size_t n, int flags, const char *want)
{
	struct buf b = BUF_INIT;
	assert_int_equal(text_escape(&b, in, n, flags), 0);
	assert_string_equal(b.data ? b.data : "", want);
	buf_free(&b);
}

#define ESC(lit, flags, want) expect_escape(lit, sizeof(lit) - 1, flags, want)

static void escape_neutralises_controls_and_keeps_text(void **state)
{
	(void)state;
	ESC("plain text, tab\there", 0, "plain text, tab\there");
	ESC("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", 0, "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
	ESC("a\x1b]0;PWNED\x07\x1b[2J", 0, "a\\x1b]0;PWNED\\x07\\x1b[2J");
	ESC("before\0after", 0, "before\\x00after");
	ESC("cr\rdel\x7f", 0, "cr\\x0ddel\\x7f");
	ESC("two\nlines", 0, "two\\x0alines");
	ESC("two\nlines", TEXT_ESC_NEWLINE, "two\nlines");
	ESC("c1 csi \xc2\x9b" "31m", 0, "c1 csi \\xc2\\x9b31m");     /* U+009B */
	ESC("raw \x9b" "31m", 0, "raw \\x9b31m");                  /* invalid alone */
	ESC("\xc2\xa0nbsp", 0, "\xc2\xa0nbsp");                     /* U+00A0 is text */
	ESC("overlong \xc0\xaf", 0, "overlong \\xc0\\xaf");
	ESC("surrogate \xed\xa0\x80", 0, "surrogate \\xed\\xa0\\x80");
	ESC("too big \xf4\x90\x80\x80", 0, "too big \\xf4\\x90\\x80\\x80");
	ESC("cut \xe2\x82", 0, "cut \\xe2\\x82");
}

static void utf8_helpers_cut_between_characters_and_clean(void **state)
{
	(void)state;
	assert_int_equal(text_utf8_whole("abc", 3), 3);
	assert_int_equal(text_utf8_whole("ab\xc3", 3), 2);
	assert_int_equal(text_utf8_whole("ab\xe2\x82", 4), 2);
	assert_int_equal(text_utf8_whole("ab\xf0\x9f\x98", 5), 2);
	assert_int_equal(text_utf8_whole("ab\xf0\x9f\x98\x80", 6), 6);
	assert_int_equal(text_utf8_whole("ab\xff", 3), 3);        /* invalid, not cut */
	assert_int_equal(text_utf8_whole("ab\xc0", 3), 3);        /* never valid */
	assert_int_equal(text_utf8_whole("\x82\x82\x82", 3), 3);
	assert_true(text_utf8_valid("caf\xc3\xa9", 5));
	assert_false(text_utf8_valid("caf\xc3", 4));
	assert_false(text_utf8_valid("\xed\xa0\x80", 3));
	struct buf b = BUF_INIT;
	assert_int_equal(text_utf8_clean(&b, "caf\xc3\xa9 \xff ok\xc3", 11), 0);
	assert_string_equal(b.data, "caf\xc3\xa9 \xef\xbf\xbd ok\xef\xbf\xbd");
	buf_free(&b);
	const char *vec[][2] = {{"", ""}, {"f", "Zg=="}, {"fo", "Zm8="}, {"foo", "Zm9v"},
				{"foob", "Zm9vYg=="}, {"fooba", "Zm9vYmE="}, {"foobar", "Zm9vYmFy"}};
	for (size_t i = 0; i < sizeof(vec) / sizeof(vec[0]); i++) {
		b = (struct buf)BUF_INIT;
		assert_int_equal(text_base64(&b, vec[i][0], strlen(vec[i][0])), 0);
		assert_string_equal(b.data ? b.data : "", vec[i][1]);
		buf_free(&b);
	}
	b = (struct buf)BUF_INIT;
	text_base64(&b, "\xff\x00\xfe", 3);
	assert_string_equal(b.data, "/wD+");
	buf_free(&b);
}

/* ---- the console and the JSON log, fed events --------------------------------- */

static dagrun_event event(int type, const char *task, uint32_t index)
{
	dagrun_event ev;
	memset(&ev, 0, sizeof(ev));
	ev.type = type;
	ev.level = DAGRUN_INFO;
	ev.ts_ms = 1700000000000ull;
	ev.run_id = "run-1";
	ev.task = task;
	ev.task_index = index;
	ev.attempt = task ? 1 : 0;
	ev.exit_code = -1;
	return ev;
}

static void output(void (*fn)(void *, const dagrun_event *), void *o, const char *task,
		   const char *data, size_t len)
{
	dagrun_event ev = event(DAGRUN_EV_OUTPUT, task, 0);
	ev.level = DAGRUN_DEBUG;
	ev.stream = 1;
	ev.data = data;
	ev.len = len;
	fn(o, &ev);
}

/* Feeds one task's life: running, output chunks, a truncated attempt, a
 * failure with a stderr tail, the end. */
static void feed(void (*fn)(void *, const dagrun_event *), void *o, const char *task,
		 const char *const *chunks, const size_t *lens, size_t n_chunks)
{
	dagrun_event ev = event(DAGRUN_EV_RUN_START, NULL, UINT32_MAX);
	ev.count = 1;
	fn(o, &ev);
	ev = event(DAGRUN_EV_TASK_STATUS, task, 0);
	ev.status = DAGRUN_RUNNING;
	fn(o, &ev);
	for (size_t i = 0; i < n_chunks; i++)
		output(fn, o, task, chunks[i], lens[i]);
	ev = event(DAGRUN_EV_ATTEMPT_END, task, 0);
	ev.status = DAGRUN_FAILED;
	ev.error_class = DAGRUN_CLASS_TRANSIENT;
	ev.error = "exit code 1: \x1b[31mred\xff";
	ev.exit_code = 1;
	ev.out_bytes = 3u << 20;
	ev.out_dropped = 2u << 20;
	fn(o, &ev);
	ev = event(DAGRUN_EV_TASK_STATUS, task, 0);
	ev.status = DAGRUN_FAILED;
	ev.old_status = DAGRUN_RUNNING;
	ev.error_class = DAGRUN_CLASS_TRANSIENT;
	ev.error = "exit code 1: \x1b[31mred\xff";
#define TAIL "tail \x1b[2J\0hidden\n"
	ev.data = TAIL;
	ev.len = sizeof(TAIL) - 1;
	fn(o, &ev);
	ev = event(DAGRUN_EV_RUN_END, NULL, UINT32_MAX);
	ev.status = DAGRUN_FAILED;
	fn(o, &ev);
}

static void console_escapes_ids_output_errors_and_tails(void **state)
{
	(void)state;
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	dagrun_console *c = dagrun_console_new(f, DAGRUN_CONSOLE_VERBOSE);
	assert_non_null(c);
	const char *id = "a\x1b]0;PWNED\x07\x1b[2J";
#define C1 "before\0after\x1b[2J\r\n"
#define C2 "caf\xc3"
#define C3 "\xa9\n"
	const char *chunks[] = {C1, C2, C3};
	size_t lens[] = {sizeof(C1) - 1, sizeof(C2) - 1, sizeof(C3) - 1};
	feed(dagrun_console_event, c, id, chunks, lens, 3);
	dagrun_console_free(c);
	fclose(f);
	assert_null(memchr(text, '\x1b', len));   /* no escape reaches the screen */
	assert_null(memchr(text, '\0', len));
	assert_null(memchr(text, '\x07', len));
	assert_non_null(strstr(text, "started   a\\x1b]0;PWNED\\x07\\x1b[2J\n"));
	assert_non_null(strstr(text, "| before\\x00after\\x1b[2J\n"));   /* whole line, CRLF ends it */
	assert_non_null(strstr(text, "| caf\xc3\xa9\n"));   /* a character split between chunks */
	assert_non_null(strstr(text, "exit code 1: \\x1b[31mred\\xff"));
	assert_non_null(strstr(text, "    | tail \\x1b[2J\\x00hidden\n"));
	/* the cut is reported for the attempt and in the summary */
	assert_non_null(strstr(text, "stdout kept its first 1.0 MiB of 3.0 MiB (2.0 MiB dropped)"));
	assert_non_null(strstr(text, "truncated output (over 1 MiB per attempt): a\\x1b]0;PWNED"));
	free(text);
}

static json_t *next_json(const char **p)
{
	const char *nl = strchr(*p, '\n');
	assert_non_null(nl);
	json_error_t err;
	json_t *j = json_loadb(*p, (size_t)(nl - *p), 0, &err);
	if (!j)
		fail_msg("not JSON: %.*s (%s)", (int)(nl - *p), *p, err.text);
	*p = nl + 1;
	return j;
}

static void jsonlog_keeps_valid_text_and_exact_bytes(void **state)
{
	(void)state;
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	dagrun_jsonlog *l = dagrun_jsonlog_new(f, DAGRUN_DEBUG);
	assert_non_null(l);
#define J1 "caf\xc3\xa9 \xff ok\n"
#define J2 "split \xe2\x82"
#define J3 "\xac end\n"
#define J4 "cut \xf0\x9f"
	const char *chunks[] = {J1, J2, J3, J4};
	size_t lens[] = {sizeof(J1) - 1, sizeof(J2) - 1, sizeof(J3) - 1, sizeof(J4) - 1};
	feed(dagrun_jsonlog_event, l, "t\xffid", chunks, lens, 4);
	dagrun_jsonlog_free(l);
	fclose(f);
	const char *p = text;
	struct buf data = BUF_INIT;
	int outputs = 0;
	bool saw_end = false, saw_base64 = false;
	while (*p) {
		json_t *j = next_json(&p);
		const char *ev = json_string_value(json_object_get(j, "event"));
		assert_non_null(ev);
		const char *task = json_string_value(json_object_get(j, "task"));
		if (task)   /* an id that is not UTF-8 is kept, cleaned */
			assert_string_equal(task, "t\xef\xbf\xbdid");
		if (!strcmp(ev, "task.output")) {
			const char *d = json_string_value(json_object_get(j, "data"));
			const char *b64 = json_string_value(json_object_get(j, "dataBase64"));
			buf_adds(&data, d);
			buf_adds(&data, "|");
			if (outputs == 0) {
				assert_string_equal(d, "caf\xc3\xa9 \xef\xbf\xbd ok\n");
				assert_string_equal(b64, "Y2Fmw6kg/yBvawo=");
				saw_base64 = true;
			} else if (outputs < 3) {
				assert_null(b64);   /* valid once joined */
			}
			outputs++;
		} else if (!strcmp(ev, "attempt.end")) {
			assert_true(json_is_true(json_object_get(j, "outputTruncated")));
			assert_int_equal(json_integer_value(json_object_get(j, "outputBytes")), 3 << 20);
			assert_int_equal(json_integer_value(json_object_get(j, "outputDroppedBytes")),
					 2 << 20);
			assert_string_equal(json_string_value(json_object_get(j, "error")),
					    "exit code 1: \x1b[31mred\xef\xbf\xbd");
			saw_end = true;
		} else if (!strcmp(ev, "task.status") &&
			   !strcmp(json_string_value(json_object_get(j, "status")), "failed")) {
			assert_non_null(json_object_get(j, "error"));
		}
		json_decref(j);
	}
	assert_true(saw_end && saw_base64);
	/* the character split between chunks arrives whole; the one the
	 * stream ended inside is flushed at the attempt's end, replaced */
	assert_string_equal(data.data, "caf\xc3\xa9 \xef\xbf\xbd ok\n|split |\xe2\x82\xac end\n|cut |"
			    "\xef\xbf\xbd\xef\xbf\xbd|");
	buf_free(&data);
	free(text);
}

/* An ATTEMPT_END of an ai task: its extensions (HTTP, then AI, then a type
 * no encoder knows) become the same top-level fields as before they were
 * extensions: httpStatus, timings, model, usage, finishReason,
 * promptSha256, promptBytes, contextCutBytes. */
static void jsonlog_writes_extensions_as_top_level_fields(void **state)
{
	(void)state;
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	dagrun_jsonlog *l = dagrun_jsonlog_new(f, DAGRUN_DEBUG);
	assert_non_null(l);
	dagrun_ext unknown = {99, NULL};
	dagrun_ext_ai ai = {{DAGRUN_EXT_AI, &unknown}, "gpt-x", 12, 34, "stop", "ab12", 333, 44};
	dagrun_ext_http http = {{DAGRUN_EXT_HTTP, &ai.base}, 200, 5, 10, 20, 30, 40, 50, 1};
	dagrun_event ev = event(DAGRUN_EV_ATTEMPT_END, "summarize", 3);
	ev.status = DAGRUN_COMPLETED;
	ev.ext = &http.base;
	dagrun_jsonlog_event(l, &ev);
	dagrun_event sub = event(DAGRUN_EV_ATTEMPT_END, "child.step", 7);
	sub.status = DAGRUN_COMPLETED;
	sub.depth = 1;
	dagrun_jsonlog_event(l, &sub);
	dagrun_jsonlog_free(l);
	fclose(f);
	const char *p = text;
	json_t *j = next_json(&p);
	assert_int_equal(json_integer_value(json_object_get(j, "httpStatus")), 200);
	json_t *t = json_object_get(j, "timings");
	assert_int_equal(json_integer_value(json_object_get(t, "dnsUs")), 10);
	assert_int_equal(json_integer_value(json_object_get(t, "connectUs")), 20);
	assert_int_equal(json_integer_value(json_object_get(t, "tlsUs")), 30);
	assert_int_equal(json_integer_value(json_object_get(t, "firstByteUs")), 40);
	assert_int_equal(json_integer_value(json_object_get(t, "totalUs")), 50);
	assert_string_equal(json_string_value(json_object_get(j, "model")), "gpt-x");
	json_t *u = json_object_get(j, "usage");
	assert_int_equal(json_integer_value(json_object_get(u, "promptTokens")), 12);
	assert_int_equal(json_integer_value(json_object_get(u, "completionTokens")), 34);
	assert_string_equal(json_string_value(json_object_get(j, "finishReason")), "stop");
	assert_string_equal(json_string_value(json_object_get(j, "promptSha256")), "ab12");
	assert_int_equal(json_integer_value(json_object_get(j, "promptBytes")), 333);
	assert_int_equal(json_integer_value(json_object_get(j, "contextCutBytes")), 44);
	assert_null(json_object_get(j, "depth"));
	json_decref(j);
	j = next_json(&p);
	assert_string_equal(json_string_value(json_object_get(j, "task")), "child.step");
	assert_int_equal(json_integer_value(json_object_get(j, "depth")), 1);
	assert_null(json_object_get(j, "httpStatus"));
	json_decref(j);
	free(text);
}

/* The console's summary sums an AI extension's tokens per model. */
static void console_sums_tokens_from_the_ai_extension(void **state)
{
	(void)state;
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	dagrun_console *c = dagrun_console_new(f, 0);
	assert_non_null(c);
	dagrun_event ev = event(DAGRUN_EV_RUN_START, NULL, 0);
	ev.count = 2;
	dagrun_console_event(c, &ev);
	for (int i = 0; i < 2; i++) {
		dagrun_ext_ai ai = {{DAGRUN_EXT_AI, NULL}, "gpt-x", 10 + i, 100, "stop", NULL, 0, 0};
		dagrun_ext_http http = {{DAGRUN_EXT_HTTP, &ai.base}, 200, 0, 0, 0, 0, 0, 0, 0};
		ev = event(DAGRUN_EV_ATTEMPT_END, i ? "b" : "a", (uint32_t)i);
		ev.status = DAGRUN_COMPLETED;
		ev.ext = &http.base;
		dagrun_console_event(c, &ev);
	}
	ev = event(DAGRUN_EV_RUN_END, NULL, 0);
	ev.status = DAGRUN_COMPLETED;
	dagrun_console_event(c, &ev);
	dagrun_console_free(c);
	fclose(f);
	assert_non_null(strstr(text, "gpt-x"));
	assert_non_null(strstr(text, "21"));    /* prompt tokens: 10 + 11 */
	assert_non_null(strstr(text, "200"));   /* completion tokens: 100 + 100 */
	free(text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(sink_writes_every_record_in_order_through_a_pipe),
		cmocka_unit_test(sink_drops_whole_lines_when_nobody_reads_and_announces_the_gap),
		cmocka_unit_test(sink_lets_records_to_keep_pass_a_flood),
		cmocka_unit_test(sink_wait_write_loses_nothing_even_past_its_capacity),
		cmocka_unit_test(sink_try_write_refuses_without_counting_and_wait_delivers),
		cmocka_unit_test(sink_survives_a_reader_that_went_away),
		cmocka_unit_test(sink_writes_a_stream_without_descriptor_directly),
		cmocka_unit_test(escape_neutralises_controls_and_keeps_text),
		cmocka_unit_test(utf8_helpers_cut_between_characters_and_clean),
		cmocka_unit_test(console_escapes_ids_output_errors_and_tails),
		cmocka_unit_test(jsonlog_keeps_valid_text_and_exact_bytes),
		cmocka_unit_test(jsonlog_writes_extensions_as_top_level_fields),
		cmocka_unit_test(console_sums_tokens_from_the_ai_extension),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
