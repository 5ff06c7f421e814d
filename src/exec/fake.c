/* fake.c: the executor that spawns nothing; see fake.h.
 *
 * Invariant: an attempt is either in the immediate queue (ends on the next
 * loop iteration, via one shared uv_idle handle) or owns a timer; cancel
 * moves it to the immediate queue marked cancelled.
 */
#include "fake.h"
#include "util/clock.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct fake_job {
	struct exec_attempt *a;
	struct fake_executor *fx;
	struct fake_outcome outcome;
	uv_timer_t timer;
	bool timer_used, cancelled, queued;
	struct fake_job *next;
	uint64_t start_ms;
};

struct fake_executor {
	struct executor base;
	uv_loop_t *loop;
	fake_decide_fn decide;
	void *ud;
	uv_idle_t idle;
	struct fake_job *head, *tail;   /* jobs ending on the next iteration */
	bool closing;
};

static void finish(struct fake_job *j)
{
	struct exec_result r;
	memset(&r, 0, sizeof(r));
	r.ok = j->outcome.ok && !j->cancelled;
	r.cancelled = j->cancelled;
	r.exit_code = j->cancelled ? -1 : j->outcome.exit_code;
	r.error_class = r.ok ? DR_CLASS_NONE : j->outcome.error_class;
	if (!r.ok && !j->cancelled && r.error_class == DR_CLASS_NONE)
		r.error_class = DR_CLASS_TRANSIENT;
	r.start_ms = j->start_ms;
	r.end_ms = clock_wall_ms();
	r.duration_ms = r.end_ms - r.start_ms;
	r.retry_after_ms = j->outcome.retry_after_ms;
	if (!r.ok)
		r.error = strdup(j->cancelled ? "cancelled" : "fake failure");
	struct exec_attempt *a = j->a;
	free(j);
	a->priv = NULL;
	a->on_done(a, &r);
	exec_result_free(&r);
}

static void on_idle(uv_idle_t *h)
{
	struct fake_executor *fx = h->data;
	/* Take the whole queue: jobs queued by callbacks wait for the next turn. */
	struct fake_job *j = fx->head;
	fx->head = fx->tail = NULL;
	while (j) {
		struct fake_job *next = j->next;
		finish(j);
		j = next;
	}
	if (!fx->head)
		uv_idle_stop(&fx->idle);
}

static void enqueue(struct fake_executor *fx, struct fake_job *j)
{
	j->queued = true;
	j->next = NULL;
	if (fx->tail)
		fx->tail->next = j;
	else
		fx->head = j;
	fx->tail = j;
	if (!uv_is_active((uv_handle_t *)&fx->idle))
		uv_idle_start(&fx->idle, on_idle);
}

static void on_timer_closed(uv_handle_t *h)
{
	struct fake_job *j = h->data;
	if (j->cancelled && !j->queued) {
		enqueue(j->fx, j);
		return;
	}
	finish(j);
}

static void on_timer(uv_timer_t *t)
{
	uv_close((uv_handle_t *)t, on_timer_closed);
}

static int start(struct executor *ex, struct exec_attempt *a)
{
	struct fake_executor *fx = (struct fake_executor *)ex;
	struct fake_job *j = calloc(1, sizeof(*j));
	if (!j)
		return -ENOMEM;
	j->a = a;
	j->fx = fx;
	j->start_ms = clock_wall_ms();
	if (fx->decide)
		j->outcome = fx->decide(fx->ud, a);
	else
		j->outcome.ok = true;
	a->priv = j;
	if (j->outcome.duration_ms == 0) {
		enqueue(fx, j);
		return 0;
	}
	j->timer_used = true;
	uv_timer_init(fx->loop, &j->timer);
	j->timer.data = j;
	uv_timer_start(&j->timer, on_timer, j->outcome.duration_ms, 0);
	return 0;
}

static void cancel(struct executor *ex, struct exec_attempt *a, bool hard)
{
	(void)ex;
	(void)hard;
	struct fake_job *j = a->priv;
	if (!j || j->cancelled)
		return;
	j->cancelled = true;
	if (j->timer_used && !uv_is_closing((uv_handle_t *)&j->timer))
		uv_close((uv_handle_t *)&j->timer, on_timer_closed);
}

static void on_idle_closed(uv_handle_t *h)
{
	free(h->data);
}

static void destroy(struct executor *ex)
{
	struct fake_executor *fx = (struct fake_executor *)ex;
	if (!fx)
		return;
	uv_close((uv_handle_t *)&fx->idle, on_idle_closed);
}

static const struct executor_ops fake_ops = {
	.name = "fake", .start = start, .cancel = cancel, .destroy = destroy,
};

struct executor *fake_executor_new(uv_loop_t *loop, fake_decide_fn decide, void *ud)
{
	struct fake_executor *fx = calloc(1, sizeof(*fx));
	if (!fx)
		return NULL;
	fx->base.ops = &fake_ops;
	fx->loop = loop;
	fx->decide = decide;
	fx->ud = ud;
	uv_idle_init(loop, &fx->idle);
	fx->idle.data = fx;
	return &fx->base;
}
