/* test_readyq_backoff.c: the ready queue's order and the retry delay
 * formulas (bounds over many draws, the cap, exact values without jitter). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include "sched/backoff.h"
#include "sched/readyq.h"

static void readyq_orders_by_priority_then_weight_then_index(void **state)
{
	(void)state;
	struct dr_task tasks[6] = {0};
	uint64_t weight[6] = {1, 5, 5, 2, 9, 1};
	tasks[3].priority = 10;
	tasks[5].priority = 10;
	struct readyq q;
	readyq_init(&q, tasks, weight);
	for (uint32_t t = 0; t < 6; t++)
		assert_int_equal(readyq_push(&q, t), 0);
	/* priority 10: 3 (w2) before 5 (w1); then w9: 4; w5: 1 before 2; w1: 0 */
	uint32_t want[6] = {3, 5, 4, 1, 2, 0};
	for (int i = 0; i < 6; i++)
		assert_int_equal(readyq_pop(&q), want[i]);
	assert_true(readyq_empty(&q));
	readyq_free(&q);
}

static void readyq_pops_in_sorted_order_on_random_input(void **state)
{
	(void)state;
	enum { N = 5000 };
	struct dr_task *tasks = calloc(N, sizeof(*tasks));
	uint64_t *weight = calloc(N, sizeof(*weight));
	uint64_t rng = 12345;
	for (uint32_t t = 0; t < N; t++) {
		tasks[t].priority = (int32_t)(backoff_random(&rng) * 5) - 2;
		weight[t] = (uint64_t)(backoff_random(&rng) * 10);
	}
	struct readyq q;
	readyq_init(&q, tasks, weight);
	for (uint32_t t = 0; t < N; t++)
		readyq_push(&q, (t * 7919) % N);
	uint32_t prev = readyq_pop(&q);
	for (uint32_t i = 1; i < N; i++) {
		uint32_t t = readyq_pop(&q);
		assert_true(readyq_before(&q, prev, t));
		prev = t;
	}
	readyq_free(&q);
	free(tasks);
	free(weight);
}

static struct dr_retry retry(int jitter)
{
	struct dr_retry r = {0};
	r.max_attempts = 10;
	r.backoff_factor = 2;
	r.initial_delay_ms = 100;
	r.max_delay_ms = 5000;
	r.jitter = (uint8_t)jitter;
	return r;
}

static void backoff_none_is_exponential_and_capped(void **state)
{
	(void)state;
	struct dr_retry r = retry(DR_JITTER_NONE);
	uint64_t rng = 1;
	uint64_t want[] = {100, 200, 400, 800, 1600, 3200, 5000, 5000};
	for (uint32_t n = 1; n <= 8; n++)
		assert_int_equal(backoff_delay(&r, n, 0, &rng), want[n - 1]);
	/* A huge attempt number must not overflow past the cap. */
	assert_int_equal(backoff_delay(&r, 5000, 0, &rng), 5000);
	r.backoff_factor = 1;
	assert_int_equal(backoff_delay(&r, 7, 0, &rng), 100);
}

static void backoff_full_stays_in_zero_to_base(void **state)
{
	(void)state;
	struct dr_retry r = retry(DR_JITTER_FULL);
	uint64_t rng = 99, lo = UINT64_MAX, hi = 0;
	for (int i = 0; i < 100000; i++) {
		uint64_t d = backoff_delay(&r, 3, 0, &rng);  /* base 400 */
		assert_true(d <= 400);
		lo = d < lo ? d : lo;
		hi = d > hi ? d : hi;
	}
	/* The draws cover the range, not a constant. */
	assert_true(lo < 40);
	assert_true(hi > 360);
}

static void backoff_equal_stays_in_half_to_base(void **state)
{
	(void)state;
	struct dr_retry r = retry(DR_JITTER_EQUAL);
	uint64_t rng = 7, lo = UINT64_MAX, hi = 0;
	for (int i = 0; i < 100000; i++) {
		uint64_t d = backoff_delay(&r, 4, 0, &rng);  /* base 800 */
		assert_true(d >= 400 && d <= 800);
		lo = d < lo ? d : lo;
		hi = d > hi ? d : hi;
	}
	assert_true(lo < 420);
	assert_true(hi > 780);
}

static void backoff_decorrelated_between_initial_and_three_prev_capped(void **state)
{
	(void)state;
	struct dr_retry r = retry(DR_JITTER_DECORRELATED);
	uint64_t rng = 3, prev = 0;
	for (int i = 0; i < 100000; i++) {
		uint64_t d = backoff_delay(&r, 1 + (uint32_t)(i % 10), prev, &rng);
		uint64_t p = prev ? prev : 100;
		uint64_t top = p * 3 < 5000 ? p * 3 : 5000;
		assert_true(d >= 100);
		assert_true(d <= top);
		prev = d;
	}
}

static void backoff_respects_max_delay_for_every_jitter(void **state)
{
	(void)state;
	for (int j = 0; j <= DR_JITTER_DECORRELATED; j++) {
		struct dr_retry r = retry(j);
		r.max_delay_ms = 250;
		uint64_t rng = 5, prev = 0;
		for (uint32_t n = 1; n < 2000; n++) {
			prev = backoff_delay(&r, n % 50 + 1, prev, &rng);
			assert_true(prev <= 250);
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(readyq_orders_by_priority_then_weight_then_index),
		cmocka_unit_test(readyq_pops_in_sorted_order_on_random_input),
		cmocka_unit_test(backoff_none_is_exponential_and_capped),
		cmocka_unit_test(backoff_full_stays_in_zero_to_base),
		cmocka_unit_test(backoff_equal_stays_in_half_to_base),
		cmocka_unit_test(backoff_decorrelated_between_initial_and_three_prev_capped),
		cmocka_unit_test(backoff_respects_max_delay_for_every_jitter),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
