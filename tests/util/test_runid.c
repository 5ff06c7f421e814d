/* test_runid.c: run ids are well formed, ordered by the time they were
 * made, and unique across processes making them at the same moment. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "util/runid.h"

static uint64_t wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* The ms since the epoch that id's time part says. */
static uint64_t id_ms(const char *id)
{
	struct tm tm;
	memset(&tm, 0, sizeof(tm));
	int ms = -1;
	assert_int_equal(sscanf(id, "%4d%2d%2d-%2d%2d%2d.%3d", &tm.tm_year, &tm.tm_mon,
				&tm.tm_mday, &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &ms), 7);
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	return (uint64_t)timegm(&tm) * 1000 + (uint64_t)ms;
}

static void runid_is_utc_ms_then_48_random_bits_in_hex(void **state)
{
	(void)state;
	uint64_t before = wall_ms();
	char id[RUNID_LEN + 1];
	assert_int_equal(runid_new(id), 0);
	uint64_t after = wall_ms();
	assert_int_equal(strlen(id), RUNID_LEN);
	assert_int_equal(RUNID_LEN, 32);
	for (size_t i = 0; i < RUNID_LEN; i++) {
		char c = id[i];
		if (i == 8 || i == 19)
			assert_int_equal(c, '-');
		else if (i == 15)
			assert_int_equal(c, '.');
		else if (i < 19)
			assert_true(c >= '0' && c <= '9');
		else
			assert_true((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'));
	}
	uint64_t at = id_ms(id);
	assert_true(at >= before && at <= after);
}

static void runids_sort_in_the_order_they_were_made(void **state)
{
	(void)state;
	char prev[RUNID_LEN + 1], id[RUNID_LEN + 1];
	assert_int_equal(runid_new(prev), 0);
	for (int i = 0; i < 200; i++) {
		/* Wait for the next millisecond: within one, the order is random. */
		uint64_t ms = id_ms(prev);
		while (wall_ms() <= ms)
			;
		assert_int_equal(runid_new(id), 0);
		assert_true(strcmp(prev, id) < 0);
		memcpy(prev, id, sizeof(id));
	}
}

static int by_str(const void *a, const void *b)
{
	return strcmp(a, b);
}

#define PROCS 8
#define PER_PROC 20000

/* PROCS processes make PER_PROC ids each as fast as they can, all at once
 * (thousands per millisecond): no two are the same. */
static void runids_made_at_once_by_several_processes_are_unique(void **state)
{
	(void)state;
	size_t total = (size_t)PROCS * PER_PROC;
	char (*ids)[RUNID_LEN + 1] = calloc(total, sizeof(*ids));
	assert_non_null(ids);
	int fds[PROCS];
	pid_t pids[PROCS];
	int go[2];
	assert_int_equal(pipe(go), 0);
	for (int p = 0; p < PROCS; p++) {
		int fd[2];
		assert_int_equal(pipe(fd), 0);
		pids[p] = fork();
		assert_true(pids[p] >= 0);
		if (pids[p] == 0) {
			close(fd[0]);
			close(go[1]);
			char c;
			if (read(go[0], &c, 1) != 0)   /* EOF: everyone starts */
				_exit(2);
			static char out[PER_PROC][RUNID_LEN + 1];
			for (int i = 0; i < PER_PROC; i++)
				if (runid_new(out[i]) < 0)
					_exit(3);
			size_t left = sizeof(out), off = 0;
			while (left) {
				ssize_t n = write(fd[1], (char *)out + off, left);
				if (n <= 0)
					_exit(4);
				off += (size_t)n;
				left -= (size_t)n;
			}
			_exit(0);
		}
		close(fd[1]);
		fds[p] = fd[0];
	}
	close(go[0]);
	close(go[1]);
	for (int p = 0; p < PROCS; p++) {
		char *dst = (char *)ids[(size_t)p * PER_PROC];
		size_t want = (size_t)PER_PROC * (RUNID_LEN + 1), got = 0;
		while (got < want) {
			ssize_t n = read(fds[p], dst + got, want - got);
			if (n <= 0)
				break;
			got += (size_t)n;
		}
		close(fds[p]);
		int st = 0;
		assert_int_equal(waitpid(pids[p], &st, 0), pids[p]);
		assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
		assert_int_equal(got, want);
	}
	qsort(ids, total, sizeof(*ids), by_str);
	size_t same_ms = 0;
	for (size_t i = 1; i < total; i++) {
		assert_int_equal(strlen(ids[i]), RUNID_LEN);
		if (strcmp(ids[i - 1], ids[i]) == 0)
			fail_msg("duplicate run id %s", ids[i]);
		same_ms += !memcmp(ids[i - 1], ids[i], 19);
	}
	/* The test means something only if many shared a millisecond. */
	assert_true(same_ms > total / 2);
	free(ids);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(runid_is_utc_ms_then_48_random_bits_in_hex),
		cmocka_unit_test(runids_sort_in_the_order_they_were_made),
		cmocka_unit_test(runids_made_at_once_by_several_processes_are_unique),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
