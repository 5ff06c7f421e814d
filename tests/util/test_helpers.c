/* test_helpers.c: the one-of-each helpers every module uses: the clocks,
 * the environment lookup, the printf-to-malloc builder, the http(s) URL
 * rule and the non-blocking reader of small files. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "util/buf.h"
#include "util/clock.h"
#include "util/env.h"
#include "util/file.h"
#include "util/url.h"

static void wall_clock_is_the_epoch_in_ms_and_monotonic_never_goes_back(void **state)
{
	(void)state;
	time_t before = time(NULL);
	uint64_t w = clock_wall_ms();
	time_t after = time(NULL);
	assert_true(w / 1000 >= (uint64_t)before && w / 1000 <= (uint64_t)after);
	uint64_t m = clock_mono_ms();
	for (int i = 0; i < 1000; i++) {
		uint64_t n = clock_mono_ms();
		assert_true(n >= m);
		m = n;
	}
}

static void env_lookup_matches_whole_names_only(void **state)
{
	(void)state;
	char *env[] = {"PATHX=no", "PATH=/bin", "A=1=2", "EMPTY=", "PATH=/second", NULL};
	assert_string_equal(env_get(env, "PATH"), "/bin");   /* the first wins */
	assert_string_equal(env_get(env, "A"), "1=2");
	assert_string_equal(env_get(env, "EMPTY"), "");
	assert_null(env_get(env, "PAT"));
	assert_null(env_get(env, "PATHXY"));
	assert_null(env_get(env, ""));
	assert_null(env_get(env, "A=1"));                    /* a name never holds '=' */
	size_t scanned = 99;
	assert_string_equal(env_lookup(env, "PATHX", 4, &scanned), "/bin");
	assert_int_equal(scanned, 1);
	assert_null(env_lookup(env, "NOPE", 4, &scanned));
	assert_int_equal(scanned, 5);
	/* NULL: the process's environment, as getenv reads it */
	assert_int_equal(setenv("DAGRUN_TEST_HELPERS", "yes", 1), 0);
	assert_ptr_equal(env_get(NULL, "DAGRUN_TEST_HELPERS"), getenv("DAGRUN_TEST_HELPERS"));
	unsetenv("DAGRUN_TEST_HELPERS");
	assert_null(env_get(NULL, "DAGRUN_TEST_HELPERS"));
}

static void strf_formats_into_a_new_string(void **state)
{
	(void)state;
	char *s = buf_strf("%s:%u:%u: %s", "wf.yaml", 3u, 7u, "boom");
	assert_string_equal(s, "wf.yaml:3:7: boom");
	free(s);
	s = buf_strf("%s", "");
	assert_non_null(s);
	assert_string_equal(s, "");
	free(s);
	char big[5000];
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	s = buf_strf("<%s>", big);
	assert_int_equal(strlen(s), sizeof(big) + 1);
	free(s);
}

static void only_http_and_https_urls_pass_in_any_case(void **state)
{
	(void)state;
	assert_true(url_is_http("http://x"));
	assert_true(url_is_http("https://x/y?z"));
	assert_true(url_is_http("HTTPS://x"));
	assert_true(url_is_http("hTTp://x"));
	assert_false(url_is_http("ftp://x"));
	assert_false(url_is_http("http:x"));
	assert_false(url_is_http("http:/x"));
	assert_false(url_is_http(" http://x"));
	assert_false(url_is_http("httpx://x"));
	assert_false(url_is_http(""));
}

static char dir[64];

static void path_in(char *out, size_t n, const char *name)
{
	snprintf(out, n, "%s/%s", dir, name);
}

/* file_read_regular in a child with a deadline: a FIFO must not block. The
 * child exits 0 when the result is want_rc with the reason want_why. */
static void expect_refused(const char *path, size_t max, int want_rc, const char *want_why)
{
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		alarm(20);
		char *data = NULL, *why = NULL;
		size_t len = 7;
		int r = file_read_regular(path, max, &data, &len, &why);
		int ok = r == want_rc && !data && len == 0 && why && !strcmp(why, want_why);
		if (!ok)
			fprintf(stderr, "%s: got %d '%s'\n", path, r, why ? why : "(null)");
		_exit(ok ? 0 : 2);
	}
	int st = 0;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	if (WIFSIGNALED(st))
		fail_msg("reading %s was killed by signal %d: it blocked", path, WTERMSIG(st));
	assert_int_equal(WEXITSTATUS(st), 0);
}

static void write_bytes(const char *path, size_t n)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	for (size_t i = 0; i < n; i++)
		fputc('a' + (int)(i % 26), f);
	fclose(f);
}

static void small_regular_files_are_read_and_nothing_else_blocks(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/dagrun-helpers-XXXXXX");
	assert_non_null(mkdtemp(dir));
	char p[128], fifo[128], sub[128], sock[128];
	path_in(p, sizeof(p), "p.txt");
	path_in(fifo, sizeof(fifo), "fifo");
	path_in(sub, sizeof(sub), "sub");
	path_in(sock, sizeof(sock), "sock");

	write_bytes(p, 1000);
	char *data = NULL, *why = NULL;
	size_t len = 0;
	assert_int_equal(file_read_regular(p, 1000, &data, &len, &why), 0);
	assert_int_equal(len, 1000);
	assert_null(why);
	assert_int_equal(data[1000], '\0');
	assert_memory_equal(data, "abcdef", 6);
	free(data);
	write_bytes(p, 0);
	assert_int_equal(file_read_regular(p, 10, &data, &len, &why), 0);
	assert_int_equal(len, 0);
	assert_string_equal(data, "");
	free(data);

	write_bytes(p, 1001);
	expect_refused(p, 1000, -EFBIG, "is larger than 1000 bytes");
	write_bytes(p, (1 << 20) + 1);
	expect_refused(p, 1 << 20, -EFBIG, "is larger than 1 MiB");
	expect_refused(p, 64 << 10, -EFBIG, "is larger than 64 KiB");
	assert_int_equal(mkfifo(fifo, 0600), 0);
	expect_refused(fifo, 1000, -EINVAL, "is a FIFO, not a regular file");
	assert_int_equal(mkdir(sub, 0700), 0);
	expect_refused(sub, 1000, -EISDIR, "is a directory, not a regular file");
	expect_refused("/dev/null", 1000, -EINVAL, "is a character device, not a regular file");
	path_in(p, sizeof(p), "missing");
	expect_refused(p, 1000, -ENOENT, "No such file or directory");
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	assert_true(strlen(sock) < sizeof(sa.sun_path));
	memcpy(sa.sun_path, sock, strlen(sock) + 1);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	expect_refused(sock, 1000, -EINVAL, "is a socket, not a regular file");
	close(fd);

	char *j = file_join("/a/b", "c.md");
	assert_string_equal(j, "/a/b/c.md");
	free(j);
	j = file_join("/a/b", "/abs.md");
	assert_string_equal(j, "/abs.md");
	free(j);
	j = file_join(NULL, "rel.md");
	assert_string_equal(j, "rel.md");
	free(j);

	unlink(sock);
	unlink(fifo);
	rmdir(sub);
	path_in(p, sizeof(p), "p.txt");
	unlink(p);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(wall_clock_is_the_epoch_in_ms_and_monotonic_never_goes_back),
		cmocka_unit_test(env_lookup_matches_whole_names_only),
		cmocka_unit_test(strf_formats_into_a_new_string),
		cmocka_unit_test(only_http_and_https_urls_pass_in_any_case),
		cmocka_unit_test(small_regular_files_are_read_and_nothing_else_blocks),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
