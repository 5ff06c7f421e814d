/* sched_fake.c: pure scheduling overhead. Loads a workflow, then runs it
 * through libdagrun's engine with the fake executor (dagrun_run_opts.fake),
 * which spawns nothing and completes each attempt on the next loop
 * iteration. Like `ninja -n`, what remains is the engine's own cost per
 * task: ready queue, dependency counting, events (one counting observer).
 *
 * `sched_fake FILE [J [STATE_DIR]]` (J: tasks in flight, default 8) prints
 * wall and CPU time of loading and of engine_new + run, CPU microseconds per
 * task, and peak RSS (getrusage) after each. With STATE_DIR, the run is
 * recorded there (the state store: its writer thread's CPU time is in the
 * process's), and the bytes state.db takes per task attempt are printed
 * (after the run, when the WAL is checkpointed into it; no output is
 * written by the fake executor, so none is counted). Exits 0 when every
 * task completed. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>

#include "dagrun.h"

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Peak resident set so far, in MiB. */
static double peak_rss_mb(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_maxrss / 1024.0;
}

/* CPU seconds of the calling thread (the engine's loop) so far. */
static double thread_cpu_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* CPU seconds (user + system) used so far: unlike wall time, barely moved
 * by other load on a shared machine. */
static double cpu_s(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
	       (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

int main(int argc, char **argv)
{
	if (argc < 2 || argc > 4) {
		fprintf(stderr, "usage: sched_fake FILE [J [STATE_DIR]]\n");
		return 2;
	}
	dagrun_run_opts ro = {.max_parallel = argc > 2 ? (unsigned)atoi(argv[2]) : 8,
			      .fake = 1, .state_dir = argc > 3 ? argv[3] : NULL};
	dagrun_diags *d = dagrun_diags_new(0);
	dagrun_workflow *wf = NULL;
	dagrun_engine *e = NULL;
	size_t counts[DAGRUN_CANCELLED + 1] = {0};
	double t0 = now(), c0 = cpu_s(), t1, t2, c1, c2, rss_load, l1, l2;
	int r = -1;

	if (!d || dagrun_workflow_load(argv[1], &wf, d) < 0)
		goto out;
	t1 = now();
	c1 = cpu_s();
	rss_load = peak_rss_mb();
	size_t n = dagrun_workflow_task_count(wf);
	l1 = thread_cpu_s();
	if (dagrun_engine_new(&e, wf, &ro, d) < 0)
		goto out;
	r = dagrun_engine_run(e);
	t2 = now();
	c2 = cpu_s();
	l2 = thread_cpu_s();
	if (r < 0 && dagrun_engine_error(e))
		fprintf(stderr, "sched_fake: %s\n", dagrun_engine_error(e));

	dagrun_engine_counts(e, counts);
	printf("tasks %zu  -j %u  completed %zu\n", n, ro.max_parallel,
	       counts[DAGRUN_COMPLETED]);
	printf("load %.3f s wall, %.3f s CPU (%.2f us/task)  peak RSS %.1f MB\n",
	       t1 - t0, c1 - c0, (c1 - c0) * 1e6 / (double)n, rss_load);
	printf("run  %.3f s wall, %.3f s CPU (%.2f us/task; the loop's thread %.2f)  peak RSS "
	       "%.1f MB (%.0f B/task)\n", t2 - t1, c2 - c1, (c2 - c1) * 1e6 / (double)n,
	       (l2 - l1) * 1e6 / (double)n, peak_rss_mb(), peak_rss_mb() * 1048576.0 / (double)n);
	if (ro.state_dir) {
		char db[4096];
		struct stat sb;
		snprintf(db, sizeof(db), "%s/state.db", ro.state_dir);
		if (stat(db, &sb) == 0)
			printf("state.db %.1f MB: %.1f bytes per task attempt (definition, task ids "
			       "and attempts of every run in it)\n", (double)sb.st_size / 1e6,
			       (double)sb.st_size / (double)n);
	}
	if (r == 0 && counts[DAGRUN_COMPLETED] != n)
		r = -1;
out:
	if (d && dagrun_diags_count(d))
		dagrun_diags_print(d, stderr, 0);
	dagrun_engine_free(e);
	dagrun_workflow_free(wf);
	dagrun_diags_free(d);
	return r == 0 ? 0 : 1;
}
