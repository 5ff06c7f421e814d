/* report_bench.c: the report module's renderers on a large run document.
 *
 *   report_bench FILE.json [REPS]
 *
 * FILE is a run document (tests/report/gen_rundoc.py makes one of any
 * size). Prints, for reading it (json_load_file) and for each renderer
 * (report_html, report_trace, report_gantt_text at 120 columns), the best
 * and the median wall time and the CPU time of REPS runs (default 5), each
 * writing a real file in $TMPDIR (or /tmp), and the output's size. The
 * HTML figure is what `dagrun report` adds to reading the document from
 * the store. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "report/report.h"

static double now(clockid_t c)
{
	struct timespec ts;
	clock_gettime(c, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int dcmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

enum { HTML, TRACE, GANTT, LOAD };

static int run(int which, const char *in, json_t **doc, const char *path)
{
	if (which == LOAD) {
		json_error_t je;
		json_decref(*doc);
		*doc = json_load_file(in, 0, &je);
		if (!*doc)
			fprintf(stderr, "report_bench: %s: %s\n", in, je.text);
		return *doc ? 0 : -EINVAL;
	}
	FILE *out = fopen(path, "w");
	if (!out)
		return -errno;
	char *err = NULL;
	int r = which == HTML ? report_html(*doc, NULL, out, &err) :
		which == TRACE ? report_trace(*doc, out, &err) :
		report_gantt_text(*doc, 120, out, &err);
	if (fclose(out) != 0 && r == 0)
		r = -errno;
	if (r < 0)
		fprintf(stderr, "report_bench: %s\n", err ? err : strerror(-r));
	free(err);
	return r;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fputs("usage: report_bench FILE.json [REPS]\n", stderr);
		return 2;
	}
	int reps = argc > 2 ? atoi(argv[2]) : 5;
	if (reps < 1)
		reps = 1;
	const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	static const char *const names[] = {"html", "trace", "gantt", "load"};
	json_t *doc = NULL;
	if (run(LOAD, argv[1], &doc, NULL) < 0)
		return 1;
	printf("%-6s %10s %10s %10s %12s\n", "what", "best s", "median s", "CPU s", "output MB");
	int order[] = {LOAD, HTML, TRACE, GANTT};
	for (int k = 0; k < 4; k++) {
		int w = order[k];
		char path[4096];
		snprintf(path, sizeof(path), "%s/report_bench.%d.%s", tmp, (int)getpid(), names[w]);
		double *t = calloc((size_t)reps, sizeof(*t)), cpu = 0;
		for (int i = 0; i < reps; i++) {
			double w0 = now(CLOCK_MONOTONIC), c0 = now(CLOCK_PROCESS_CPUTIME_ID);
			if (run(w, argv[1], &doc, path) < 0)
				return 1;
			t[i] = now(CLOCK_MONOTONIC) - w0;
			cpu += now(CLOCK_PROCESS_CPUTIME_ID) - c0;
		}
		qsort(t, (size_t)reps, sizeof(*t), dcmp);
		struct stat st = {0};
		stat(w == LOAD ? argv[1] : path, &st);
		printf("%-6s %10.3f %10.3f %10.3f %12.1f\n", names[w], t[0], t[reps / 2],
		       cpu / reps, (double)st.st_size / 1e6);
		if (w != LOAD)
			unlink(path);
		free(t);
	}
	json_decref(doc);
	return 0;
}
