/* test_input.c: workflow files that are not regular files (pipes, FIFOs,
 * devices, directories): every input is bounded, a fatal error stops the
 * reading at once, nothing waits for a writer that is not there, and
 * printing the diagnostics never reads the input again.
 *
 * Endless inputs come from a thread writing into a pipe until the reader
 * goes away (EPIPE), up to a safety cap that ends the test should the
 * loader read on. The assertions are on the bytes written, never on time.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "model/model.h"
#include "util/diag.h"

/* ---- an endless writer ---------------------------------------------------------- */

struct writer {
	int fd;                  /* the pipe's write end; closed by the thread */
	char unit[64];           /* written over and over */
	size_t unit_len;
	uint64_t cap;            /* stops there: the loader did not stop */
	unsigned delay_ms;       /* before the first byte */
	const char *once;        /* else: this text, then the end */
	uint64_t written;
	pthread_t thread;
};

static void *write_forever(void *arg)
{
	struct writer *w = arg;
	char buf[65536];
	if (w->delay_ms)
		usleep(w->delay_ms * 1000);
	if (w->once) {
		size_t n = strlen(w->once);
		if (write(w->fd, w->once, n) == (ssize_t)n)
			w->written = n;
		close(w->fd);
		return NULL;
	}
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = w->unit[i % w->unit_len];
	size_t chunk = sizeof(buf) - sizeof(buf) % w->unit_len;
	while (w->written < w->cap) {
		ssize_t n = write(w->fd, buf, chunk);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;            /* EPIPE: the reader is gone */
		w->written += (uint64_t)n;
	}
	close(w->fd);
	return NULL;
}

/* Starts a writer of `unit` forever (or `once`) into a new pipe; *path is
 * the path of its read end, /dev/fd/N (N is returned, to close). */
static int start_writer(struct writer *w, const char *unit, size_t unit_len, uint64_t cap,
			char path[32])
{
	int p[2];
	assert_int_equal(pipe(p), 0);
	w->fd = p[1];
	if (unit_len)
		memcpy(w->unit, unit, unit_len);
	w->unit_len = unit_len;
	w->cap = cap;
	w->written = 0;
	snprintf(path, 32, "/dev/fd/%d", p[0]);
	assert_int_equal(pthread_create(&w->thread, NULL, write_forever, w), 0);
	return p[0];
}

/* Closes the test's read end (the writer then meets EPIPE) and joins. */
static void stop_writer(struct writer *w, int rfd)
{
	close(rfd);
	pthread_join(w->thread, NULL);
}

static bool has_message(const dagrun_diags *d, const char *prefix)
{
	for (size_t i = 0; i < dagrun_diags_count(d); i++)
		if (!strncmp(dagrun_diags_get(d, i)->message, prefix, strlen(prefix)))
			return true;
	for (size_t i = 0; i < dagrun_diags_count(d); i++)
		print_message("  %s\n", dagrun_diags_get(d, i)->message);
	return false;
}

#define MiB ((uint64_t)1 << 20)

/* ---- tests ----------------------------------------------------------------------- */

static void an_endless_string_on_a_pipe_stops_long_before_the_file_limit(void **state)
{
	(void)state;
	/* `yes | dagrun validate /dev/stdin`: one plain scalar without end.
	 * It used to be read to the 512 MiB file limit, all of it held in
	 * one libyaml string. */
	struct writer w = {0};
	char path[32];
	int rfd = start_writer(&w, "y\n", 2, 1024 * MiB, path);
	dagrun_diags *d = dagrun_diags_new(0);
	dagrun_workflow *wf = NULL;
	assert_int_equal(dagrun_workflow_load(path, &wf, d), -EINVAL);
	stop_writer(&w, rfd);
	assert_null(wf);
	assert_true(has_message(d, "more than 64 MiB of input without a complete YAML value"));
	print_message("  written: %" PRIu64 " MiB\n", w.written / MiB);
	assert_true(w.written < 80 * MiB);
	dagrun_diags_free(d);
}

static void endless_nul_bytes_stop_at_once_and_are_not_read_again_to_print(void **state)
{
	(void)state;
	/* `dagrun validate /dev/zero`: the error is at byte 0; printing it used
	 * to open the input again for its source line and read it to the end,
	 * gigabytes of one line. */
	struct writer w = {0};
	char path[32];
	int rfd = start_writer(&w, "\0", 1, 256 * MiB, path);
	dagrun_diags *d = dagrun_diags_new(0);
	dagrun_workflow *wf = NULL;
	assert_int_equal(dagrun_workflow_load(path, &wf, d), -EINVAL);
	assert_true(has_message(d, "control characters are not allowed (byte 0x00 at offset 0)"));
	FILE *out = tmpfile();
	assert_non_null(out);
	assert_int_equal(dagrun_diags_print(d, out, 0), 0);
	fclose(out);
	stop_writer(&w, rfd);
	print_message("  written: %" PRIu64 " KiB\n", w.written >> 10);
	assert_true(w.written < 8 * MiB);
	dagrun_diags_free(d);
}

static void an_endless_comment_on_a_pipe_is_bounded_too(void **state)
{
	(void)state;
	/* No event at all: libyaml holds nothing, but the reading must end. */
	struct writer w = {0};
	char path[32];
	const char *unit = "# a comment that never ends\n";
	int rfd = start_writer(&w, unit, strlen(unit), 1024 * MiB, path);
	dagrun_diags *d = dagrun_diags_new(0);
	dagrun_workflow *wf = NULL;
	assert_int_equal(dagrun_workflow_load(path, &wf, d), -EINVAL);
	stop_writer(&w, rfd);
	assert_true(has_message(d, "more than 64 MiB of input without a complete YAML value"));
	assert_true(w.written < 80 * MiB);
	dagrun_diags_free(d);
}

static void a_slow_writer_on_a_pipe_is_waited_for(void **state)
{
	(void)state;
	/* The input is opened without blocking, then read blocking: a pipe
	 * whose writer takes its time still loads (`(sleep 1; cat wf) |`). */
	struct writer w = {0};
	char path[32];
	w.delay_ms = 300;
	w.once = "name: slow\ntasks:\n  - {id: a, command: x}\n";
	int rfd = start_writer(&w, NULL, 0, 0, path);
	dagrun_diags *d = dagrun_diags_new(0);
	dagrun_workflow *wf = NULL;
	assert_int_equal(dagrun_workflow_load(path, &wf, d), 0);
	assert_string_equal(wf->name.s, "slow");
	dagrun_workflow_free(wf);
	stop_writer(&w, rfd);
	dagrun_diags_free(d);
}

/* Runs fn(arg) in a child with a deadline; true when it exited 0 (a hang
 * ends with SIGALRM instead of hanging the suite). */
static bool in_child(int (*fn)(const char *), const char *arg, unsigned seconds)
{
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		alarm(seconds);
		_exit(fn(arg));
	}
	int st = 0;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	if (WIFSIGNALED(st))
		print_message("  the child was killed by signal %d (a hang)\n", WTERMSIG(st));
	return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

static int load_fifo_without_writer(const char *path)
{
	dagrun_diags *d = dagrun_diags_new(0);
	dagrun_workflow *wf = NULL;
	int r = dagrun_workflow_load(path, &wf, d);
	const dagrun_diag *g = dagrun_diags_get(d, 0);
	/* Printing must not open the FIFO again either (that would block). */
	FILE *out = fopen("/dev/null", "w");
	dagrun_diags_print(d, out, 0);
	fclose(out);
	bool ok = r == -EINVAL && g && strstr(g->message, "gave no bytes (a FIFO is read only "
					      "if its writer has it open already)");
	if (!ok)
		fprintf(stderr, "r=%d: %s\n", r, g ? g->message : "(none)");
	dagrun_diags_free(d);
	return ok ? 0 : 1;
}

static void a_fifo_without_a_writer_fails_at_once(void **state)
{
	(void)state;
	char dir[] = "/tmp/dagrun-fifo-XXXXXX", path[64];
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/wf.yaml", dir);
	assert_int_equal(mkfifo(path, 0600), 0);
	/* It used to block in open() for as long as no writer came. */
	assert_true(in_child(load_fifo_without_writer, path, 20));
	unlink(path);
	rmdir(dir);
}

static void a_directory_is_refused(void **state)
{
	(void)state;
	dagrun_diags *d = dagrun_diags_new(0);
	dagrun_workflow *wf = NULL;
	assert_int_equal(dagrun_workflow_load("/tmp", &wf, d), -EISDIR);
	assert_string_equal(dagrun_diags_get(d, 0)->message, "cannot read /tmp: Is a directory");
	dagrun_diags_free(d);
}

/* rchar of /proc/self/io: bytes this process read so far, or 0. */
static uint64_t bytes_read(void)
{
	FILE *f = fopen("/proc/self/io", "r");
	uint64_t n = 0;
	char line[128];
	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "rchar: %" SCNu64, &n) == 1)
			break;
	if (f)
		fclose(f);
	return n;
}

static void a_fatal_error_stops_the_parsing_thread_inside_a_long_comment(void **state)
{
	(void)state;
	/* A large file is parsed by a thread of its own, which hands events
	 * over in blocks: the events before 40 MiB of comment (which yield
	 * none) waited for the block to fill, so the fatal error among them
	 * (nesting too deep) was seen, and the thread stopped, only after the
	 * whole comment was read. The block is now handed over once the input
	 * runs dry of events, and the thread stops at its next read. */
	char path[] = "/tmp/dagrun-input-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	FILE *f = fdopen(fd, "w");
	assert_non_null(f);
	/* Block style: its events come before the scanner reaches the
	 * comment (in flow style, libyaml itself looks past it first). */
	fputs("name: t\ntasks:\n  - id: a\n    command:\n      ", f);
	for (int i = 0; i < 100; i++)
		fputs("- ", f);
	fputs("x\n", f);
	for (uint64_t n = 0; n < 40 * MiB; n += 64)
		fputs("# a comment line, long enough to make forty mebibytes quickly\n", f);
	fclose(f);
	dagrun_diags *d = dagrun_diags_new(0);
	dagrun_workflow *wf = NULL;
	uint64_t before = bytes_read();
	assert_int_equal(dagrun_workflow_load(path, &wf, d), -EINVAL);
	uint64_t read = bytes_read() - before;
	assert_true(has_message(d, "nesting is deeper than the limit of 64 levels"));
	print_message("  read: %" PRIu64 " KiB\n", read >> 10);
	if (before)
		assert_true(read < 8 * MiB);
	dagrun_diags_free(d);
	unlink(path);
}

int main(void)
{
	/* A writer whose reader went away gets EPIPE, not the signal. */
	signal(SIGPIPE, SIG_IGN);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(an_endless_string_on_a_pipe_stops_long_before_the_file_limit),
		cmocka_unit_test(endless_nul_bytes_stop_at_once_and_are_not_read_again_to_print),
		cmocka_unit_test(an_endless_comment_on_a_pipe_is_bounded_too),
		cmocka_unit_test(a_slow_writer_on_a_pipe_is_waited_for),
		cmocka_unit_test(a_fifo_without_a_writer_fails_at_once),
		cmocka_unit_test(a_directory_is_refused),
		cmocka_unit_test(a_fatal_error_stops_the_parsing_thread_inside_a_long_comment),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
