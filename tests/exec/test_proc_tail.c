/* test_proc_tail.c: a stream that goes past the capture cap keeps its real
 * end (the last PROC_TAIL_BYTES) apart from the capture, whatever the
 * sizes of the reads (the ring wraps at any point); a stream within the
 * cap keeps none (the capture holds its end). Real processes on a real
 * loop; every handle is closed and the loop closes cleanly. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "exec/proc.h"

struct run {
	bool done;
	struct proc_result res;    /* buffers taken over */
};

static void on_exit_cb(struct proc *p, struct proc_result *r, void *ud)
{
	(void)p;
	struct run *x = ud;
	x->done = true;
	x->res = *r;
	r->out = r->err = r->out_tail = r->err_tail = (struct buf)BUF_INIT;
}

/* Byte i of a stream: a pattern that shows any misplaced piece. */
static unsigned char at(size_t i)
{
	return (unsigned char)(i % 251);
}

/* Runs a program writing n pattern bytes to stdout and to stderr, chunk
 * bytes per write, with the given cap; checks both tails. */
static void check(size_t n, size_t chunk, size_t cap)
{
	char ns[32], cs[32];
	snprintf(ns, sizeof(ns), "%zu", n);
	snprintf(cs, sizeof(cs), "%zu", chunk);
	char *argv[] = {"python3", "-c",
		"import sys\n"
		"n, ch = int(sys.argv[1]), int(sys.argv[2])\n"
		"d = bytes(i % 251 for i in range(n))\n"
		"for s in (sys.stdout.buffer, sys.stderr.buffer):\n"
		"    for k in range(0, n, ch):\n"
		"        s.write(d[k:k + ch]); s.flush()\n",
		ns, cs, NULL};
	uv_loop_t loop;
	assert_int_equal(uv_loop_init(&loop), 0);
	struct proc_runner *r;
	assert_int_equal(proc_runner_new(&loop, &r), 0);
	struct run x = {0};
	struct proc_opts o = {.argv = argv, .kill_grace_ms = 5000, .out_cap = cap,
			      .on_exit = on_exit_cb, .ud = &x};
	struct proc *p;
	assert_int_equal(proc_start(r, &o, &p), 0);
	uv_run(&loop, UV_RUN_DEFAULT);
	assert_true(x.done);
	assert_int_equal(x.res.exit_code, 0);
	const struct buf *tails[2] = {&x.res.out_tail, &x.res.err_tail};
	const struct buf *caps[2] = {&x.res.out, &x.res.err};
	for (int i = 0; i < 2; i++) {
		assert_int_equal(caps[i]->len, n < cap ? n : cap);
		size_t want = n <= cap ? 0 : n < PROC_TAIL_BYTES ? n : PROC_TAIL_BYTES;
		if (tails[i]->len != want)
			fail_msg("n %zu chunk %zu cap %zu stream %d: tail of %zu bytes, want %zu",
				 n, chunk, cap, i, tails[i]->len, want);
		for (size_t k = 0; k < want; k++)
			if ((unsigned char)tails[i]->data[k] != at(n - want + k))
				fail_msg("n %zu chunk %zu cap %zu stream %d: byte %zu of the tail "
					 "is wrong", n, chunk, cap, i, k);
	}
	buf_free(&x.res.out);
	buf_free(&x.res.err);
	buf_free(&x.res.out_tail);
	buf_free(&x.res.err_tail);
	proc_runner_free(r);
	uv_run(&loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(&loop), 0);
}

static void a_stream_past_the_cap_keeps_its_real_end(void **state)
{
	(void)state;
	static const size_t cases[][3] = {   /* bytes, per write, cap */
		{10, 10, 16},                /* within the cap: no tail */
		{16, 16, 16},
		{100, 3, 16},                /* past the cap, the ring not full */
		{PROC_TAIL_BYTES, 1000, 16}, /* exactly full */
		{PROC_TAIL_BYTES + 1, 7, 16},
		{5000, 4097, 16},            /* reads larger than the ring */
		{300000, 65536, 1000},
		{(1 << 20) + 12345, 8191, 1 << 20},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		check(cases[i][0], cases[i][1], cases[i][2]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(a_stream_past_the_cap_keeps_its_real_end),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
