/* http_driver.c: the api executor's throughput floor. Runs N attempts of
 * one GET api task through http_executor_new() on a libuv loop, all
 * started at once: the executor's in-flight cap (P) queues the rest in its
 * FIFO, as the engine would see it with P slots. bench/http_bench.sh
 * compares it with `curl --parallel --parallel-max P` over the same URLs.
 *
 * `http_driver URL N P` prints "N requests, P in flight: S s, R req/s" and
 * exits 0 when every attempt succeeded (else it prints the first error). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "exec/http.h"

struct tally {
	size_t ok, failed;
	char *first_error;
};

static void on_done(struct exec_attempt *a, struct exec_result *r)
{
	struct tally *t = a->owner;
	if (r->ok) {
		t->ok++;
		return;
	}
	t->failed++;
	if (!t->first_error)
		t->first_error = strdup(r->error ? r->error : "?");
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: %s URL N IN_FLIGHT\n", argv[0]);
		return 2;
	}
	const char *url = argv[1];
	long n = atol(argv[2]), p = atol(argv[3]);
	if (n <= 0 || p <= 0)
		return 2;
	/* A one-task workflow built by hand, like the tests. */
	struct dagrun_workflow wf;
	struct dr_task task;
	struct dr_task_opts opts;
	struct dr_api api;
	memset(&wf, 0, sizeof(wf));
	memset(&task, 0, sizeof(task));
	memset(&opts, 0, sizeof(opts));
	memset(&api, 0, sizeof(api));
	int added;
	task.sym = intern_add(&wf.ids, "get", 3, &added);
	task.opts = &opts;
	task.spec = &api;
	api.url = (struct dr_text){url, (uint32_t)strlen(url), 1, 1};
	wf.tasks = &task;
	wf.n_tasks = wf.n_main = 1;
	wf.name = (struct dr_text){"bench", 5, 1, 1};

	uv_loop_t loop;
	uv_loop_init(&loop);
	struct http_limits lim = {.max_in_flight = (uint32_t)p,
				  .max_host_connections = (uint32_t)p};
	struct executor *ex = http_executor_new(&loop, &lim);
	struct exec_attempt *at = calloc((size_t)n, sizeof(*at));
	struct tally t = {0};
	if (!ex || !at)
		return 1;
	double t0 = now();
	for (long i = 0; i < n; i++) {
		at[i] = (struct exec_attempt){.wf = &wf, .task = 0, .variant = HTTP_VARIANT_API,
					      .attempt = 1,
					      .run_id = "bench", .on_done = on_done, .owner = &t};
		if (ex->ops->start(ex, &at[i]) < 0) {
			fprintf(stderr, "start failed at %ld\n", i);
			return 1;
		}
	}
	uv_run(&loop, UV_RUN_DEFAULT);
	double secs = now() - t0;
	ex->ops->destroy(ex);
	uv_run(&loop, UV_RUN_DEFAULT);
	uv_loop_close(&loop);
	printf("%ld requests, %ld in flight: %.3f s, %.0f req/s, %zu ok, %zu failed\n", n, p, secs,
	       (double)n / secs, t.ok, t.failed);
	if (t.first_error)
		fprintf(stderr, "first error: %s\n", t.first_error);
	free(t.first_error);
	free(at);
	intern_free(&wf.ids);
	return t.failed ? 1 : 0;
}
