/* bench_expr.c: the cost of one evaluation of typical compiled expressions
 * (built, not run by `meson test`). Usage: bench_expr [iterations]. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dagrun.h"
#include "expr/expr.h"
#include "expr/template.h"
#include "model/model.h"

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static struct expr_result results[2];

static const struct expr_result *lookup(void *ud, const char *id)
{
	(void)ud;
	if (!strcmp(id, "a"))
		return &results[0];
	if (!strcmp(id, "build-x"))
		return &results[1];
	return NULL;
}

static void bench_bool(struct expr_engine *e, const struct expr_scope *sc,
		       const char *src, long n)
{
	struct expr_error err;
	int id;
	bool v = false;
	if (expr_compile(e, src, strlen(src), &id, &err)) {
		fprintf(stderr, "%s: %s\n", src, err.msg);
		exit(1);
	}
	double t0 = now();
	for (long i = 0; i < n; i++)
		if (expr_eval_bool(e, id, sc, &v, &err)) {
			fprintf(stderr, "%s: %s\n", src, err.msg);
			exit(1);
		}
	double dt = now() - t0;
	printf("%-48s %8.3f us  (%s)\n", src, dt / (double)n * 1e6,
	       v ? "true" : "false");
}

static void bench_text(struct expr_engine *e, const struct expr_scope *sc,
		       const char *src, enum tpl_mode mode, long n)
{
	struct expr_error err;
	struct tpl t;
	struct buf out = BUF_INIT;
	if (tpl_parse(src, strlen(src), &t, &err) || tpl_compile(&t, e, &err)) {
		fprintf(stderr, "%s: %s\n", src, err.msg);
		exit(1);
	}
	double t0 = now();
	for (long i = 0; i < n; i++) {
		buf_reset(&out);
		if (tpl_render(&t, e, sc, mode, &out, &err)) {
			fprintf(stderr, "%s: %s\n", src, err.msg);
			exit(1);
		}
	}
	double dt = now() - t0;
	printf("%-48s %8.3f us  -> %s\n", src, dt / (double)n * 1e6, out.data);
	tpl_free(&t);
	buf_free(&out);
}

int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 200000;
	struct expr_engine *e;
	if (expr_new(&e, NULL))
		return 1;
	expr_result_init(&results[0]);
	results[0].status = DAGRUN_COMPLETED;
	results[0].exit_code = 0;
	results[0].output = "{\"n\": 3}\n";
	results[0].output_len = strlen(results[0].output);
	struct expr_kv outs[] = {{"version", "1.4.0", 5}};
	results[0].outputs = outs;
	results[0].n_outputs = 1;
	expr_result_init(&results[1]);
	results[1].status = DAGRUN_FAILED;
	results[1].exit_code = 2;

	struct dr_value item = {.kind = DR_VAL_STRING,
				.text = {"1.4.0", 5, 1, 1}};
	struct dr_text key = {"version", 7, 1, 1};
	struct dr_value vars = {.kind = DR_VAL_MAP, .count = 1, .items = &item,
				.keys = &key};
	struct expr_scope cond = {.self = &results[0], .lookup = lookup};
	struct expr_scope plain = {.lookup = lookup, .variables = &vars,
				   .run_id = "r1"};

	printf("%ld evaluations each\n", n);
	bench_bool(e, &cond, "status == \"completed\"", n);
	bench_bool(e, &cond, "exitCode == 0 and status ~= \"failed\"", n);
	bench_bool(e, &plain, "tasks.a.exitCode == 0", n);
	bench_bool(e, &plain, "tasks[\"build-x\"].status == \"failed\"", n);
	bench_bool(e, &plain, "tasks.a.json.n == 3", n);
	bench_bool(e, &plain, "contains(tasks.a.outputs.version, '1.4')", n);
	bench_text(e, &plain, "v{{ variables.version }}", TPL_PLAIN, n);
	bench_text(e, &plain, "echo {{ tasks.a.outputs.version }} \"{{ run.id }}\"",
		   TPL_SHELL, n);
	printf("engine memory: %zu KiB\n", expr_memory(e) >> 10);
	expr_free(e);
	return 0;
}
