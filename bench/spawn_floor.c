/* spawn_floor.c: the floor for running N tasks with -j J: a bare
 * posix_spawn loop keeping up to J children in flight, reaping each with
 * waitpid and starting the next at once. No pipes, no session, no event
 * loop: whatever a runner spends beyond this is its own overhead.
 *
 * `spawn_floor N J PROG [ARG...]` runs PROG (searched in PATH) N times,
 * prints `N J SECONDS US_PER_TASK` on stdout and exits 0, or 1 when a spawn
 * failed or a child did not exit 0. Children inherit stdin/stdout/stderr. */
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

extern char **environ;

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Reaps one child; returns 0 when it exited 0, -1 otherwise. */
static int reap(void)
{
	int st;
	if (waitpid(-1, &st, 0) < 0)
		return -1;
	return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

int main(int argc, char **argv)
{
	long n = argc > 3 ? atol(argv[1]) : 0, j = argc > 3 ? atol(argv[2]) : 0;
	if (n < 1 || j < 1) {
		fprintf(stderr, "usage: spawn_floor N J PROG [ARG...]\n");
		return 2;
	}
	long started = 0, running = 0, bad = 0;
	double t0 = now();
	while (started < n || running > 0) {
		if (started < n && running < j) {
			pid_t pid;
			int e = posix_spawnp(&pid, argv[3], NULL, NULL, argv + 3, environ);
			if (e) {
				fprintf(stderr, "spawn_floor: %s: %s\n", argv[3], strerror(e));
				return 1;
			}
			started++;
			running++;
			continue;
		}
		bad += reap() < 0;
		running--;
	}
	double s = now() - t0;
	printf("%ld %ld %.3f %.1f\n", n, j, s, s * 1e6 / (double)n);
	if (bad)
		fprintf(stderr, "spawn_floor: %ld children failed\n", bad);
	return bad ? 1 : 0;
}
