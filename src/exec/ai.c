/* ai.c: the executor of `ai` tasks (see ai.h): an attempt's life and
 * sending; the request is built in ai_request.c, pacing and parking are
 * ai_pace.c's, the reply ai_reply.c's (ai_int.h lists what they share).
 *
 * An attempt owns one struct ax_attempt from start() to on_done. Invariant:
 * it is in exactly one of three states:
 *  - sending: a transfer of ax->client runs (st->xfer set) and ends it from
 *    the transfer's done callback;
 *  - parked PARK_FAILED: it failed before any request (a template, the
 *    key, the prompt file) and waits for ax->tick, a timer, to report it
 *    from the loop (on_done never runs inside start());
 *  - parked PARK_PACED: its request is built and waits on ax->tick until
 *    the pacing hold of its base URL ends (or its timeout does).
 * Parked attempts are on ax->parked; ax->tick is armed for the earliest of
 * their wake times whenever the list is not empty.
 *
 * The request (URL, header lines, body) is built once, in start(), and kept
 * until sent: the client copies it. The API key lives only in st->auth and
 * st->key, wiped when the attempt ends.
 *
 * What does not change between attempts is worked out on a task's first
 * attempt and kept (struct ai_task) until the executor is destroyed:
 *  - a promptFile is read (ai_prompt_file_read, validation's reader too),
 *    with a struct dr_text over its contents: the engine caches compiled
 *    templates by the dr_text's address, so every attempt renders the same
 *    compiled template (a file changed during a run is not read again).
 *    The dr_text starts at line 1, column 1, and a template error's
 *    FILE:LINE:COL names the file (the render callback names the workflow:
 *    located() renames it), as validation reports it;
 *  - whether the context is appended to the user message: only when
 *    neither the system nor the prompt template uses `context` in a
 *    `{{ }}` expression (found by the expression checker, so the word in
 *    prose does not count).
 */
#include "exec/ai_int.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "expr/redact.h"
#include "util/clock.h"
#include "util/env.h"

uint64_t ax_now_ms(uv_loop_t *loop)
{
	uv_update_time(loop);
	return uv_now(loop);
}

static void wipe(char *s)
{
	if (s) {
		volatile char *p = s;
		while (*p)
			*p++ = 0;
	}
	free(s);
}

const char *ai_api_key_env(const struct dr_ai *ai)
{
	return ai && ai->api_key_env.s && ai->api_key_env.len ? ai->api_key_env.s
							      : AI_DEFAULT_KEY_ENV;
}

/* Records a failure of class c on st (the message is formatted; on OOM the
 * result still fails, with a NULL message). */
void ax_fail(struct ax_attempt *st, enum dr_error_class c, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	exec_vfail(&st->res, c, fmt, ap);
	va_end(ap);
}

/* msg with every occurrence of key replaced by "***" (malloc'd), or NULL. */
char *ax_scrub(const char *msg, const char *key)
{
	size_t kn = key ? strlen(key) : 0;
	struct buf b = BUF_INIT;
	const char *p = msg, *hit;
	int r = 0;
	while (kn && r == 0 && (hit = strstr(p, key))) {
		r = buf_add(&b, p, (size_t)(hit - p));
		if (r == 0)
			r = buf_adds(&b, "***");
		p = hit + kn;
	}
	if (r == 0)
		r = buf_adds(&b, p);
	char *s = r == 0 ? buf_steal(&b) : NULL;
	buf_free(&b);
	return s;
}

/* ---- running attempts ------------------------------------------------------------ */

static void attempt_free(struct ax_attempt *st)
{
	exec_result_free(&st->res);
	ai_stream_free(&st->sse);
	buf_free(&st->raw);
	free(st->base);
	free(st->url);
	free(st->body);
	wipe(st->key);
	for (size_t i = 0; i < st->n_lines; i++)
		wipe(st->lines[i]);
	free(st);
}

void ax_report(struct ax_attempt *st)
{
	struct exec_attempt *a = st->a;
	struct exec_result *r = &st->res;
	if (st->cancelled && !r->cancelled) {
		r->cancelled = true;
		ax_fail(st, DR_CLASS_TRANSIENT, "cancelled");
	}
	if (!r->end_ms)
		r->end_ms = clock_wall_ms();
	if (r->end_ms < r->start_ms)
		r->end_ms = r->start_ms;
	r->duration_ms = ax_now_ms(st->ax->loop) - st->started;
	if (r->ok && r->error) {
		free(r->error);
		r->error = NULL;
	}
	if (r->error && st->key && *st->key && strstr(r->error, st->key)) {
		char *s = ax_scrub(r->error, st->key);   /* whatever the server echoed */
		free(r->error);
		r->error = s;
	}
	a->priv = NULL;
	a->on_done(a, r);
	attempt_free(st);
}

/* Sends st's request. Returns 0 (sent), -ETIME (its timeout ended while
 * it waited), -EINVAL (the client refused it) or -ENOMEM; when not sent,
 * st is untouched and the caller reports. */
int ax_send(struct ax_attempt *st, uint64_t now)
{
	uint64_t remain = 0;
	if (st->timeout_ms) {
		uint64_t used = now - st->started;
		remain = used < st->timeout_ms ? st->timeout_ms - used : 0;
		if (!remain)
			return -ETIME;
	}
	struct http_request rq = {
		.method = "POST", .url = st->url,
		.headers = (const char *const *)st->lines, .n_headers = st->n_lines,
		.body = st->body, .body_len = st->body_len, .timeout_ms = remain,
		.max_response_bytes = st->stream ? AI_MAX_STREAM_BYTES : 0,
		.discard_body = st->stream, .on_data = st->stream ? ax_on_data : NULL,
		.on_done = ax_on_response, .ud = st,
	};
	st->sse.on_delta = ax_on_delta;
	st->sse.ud = st;
	int r = http_request_start(st->ax->client, &rq, &st->xfer);
	return r == -ENOMEM || r == -EINVAL ? r : r < 0 ? -EINVAL : 0;
}

/* Records why ax_send() did not send. */
void ax_send_failed(struct ax_attempt *st, int r)
{
	if (r == -ETIME) {
		st->res.timed_out = true;
		ax_fail(st, DR_CLASS_TRANSIENT, "timed out waiting for the rate limit to reset");
	} else if (r == -ENOMEM) {
		ax_fail(st, DR_CLASS_RESOURCE, "out of memory");
	} else {
		ax_fail(st, DR_CLASS_PERMANENT, "invalid request");
	}
}

static int ax_start(struct executor *ex, struct exec_attempt *a)
{
	struct ai_executor *ax = (struct ai_executor *)ex;
	const struct dr_task *t = &a->wf->tasks[a->task];
	if (!t->spec)
		return -EINVAL;
	const struct dr_ai *ai = t->spec;
	const struct dr_task_opts *opts = t->opts ? t->opts : &a->wf->default_opts;
	struct ax_attempt *st = calloc(1, sizeof(*st));
	if (!st)
		return -ENOMEM;
	if (!(st->ext = ax_ext_new())) {
		free(st);
		return -ENOMEM;
	}
	st->res.ext = &st->ext->x;
	st->ax = ax;
	st->a = a;
	st->stream = ai->stream;
	st->json_mode = ai->response_format == DR_RESP_JSON;
	st->timeout_ms = opts->timeout_ms;
	st->started = ax_now_ms(ax->loop);
	st->res.exit_code = -1;
	st->res.start_ms = clock_wall_ms();
	int r = ax_build(st, ai);
	if (r == -ENOMEM) {
		attempt_free(st);
		return r;
	}
	a->priv = st;
	if (r < 0) {
		ax_park(st, PARK_FAILED);
		return 0;
	}
	if (ax_pace_get(ax, st->base) > st->started) {
		ax_park(st, PARK_PACED);
		return 0;
	}
	if ((r = ax_send(st, st->started)) == -ENOMEM) {
		a->priv = NULL;
		attempt_free(st);
		return r;
	}
	if (r < 0) {
		ax_send_failed(st, r);
		ax_park(st, PARK_FAILED);
	}
	return 0;
}

static void ax_cancel(struct executor *ex, struct exec_attempt *a, bool hard)
{
	struct ai_executor *ax = (struct ai_executor *)ex;
	(void)hard;   /* a request stops at once either way */
	struct ax_attempt *st = a->priv;
	if (!st || st->cancelled)
		return;
	st->cancelled = true;
	if (st->xfer)
		http_request_cancel(st->xfer);
	else
		ax_rearm(ax);   /* parked: reported from the loop */
}

static void on_tick_closed(uv_handle_t *h)
{
	free(h->data);
}

static void ax_destroy(struct executor *ex)
{
	struct ai_executor *ax = (struct ai_executor *)ex;
	if (!ax)
		return;
	while (ax->parked) {
		struct ax_attempt *st = ax->parked;
		ax->parked = st->next;
		st->a->priv = NULL;
		attempt_free(st);
	}
	while (ax->paces) {
		struct pace *p = ax->paces;
		ax->paces = p->next;
		free(p->base);
		free(p);
	}
	while (ax->tasks) {
		struct ai_tasks *w = ax->tasks;
		ax->tasks = w->next;
		for (uint32_t t = 0; t < w->n; t++)
			if (w->by_task[t]) {
				free(w->by_task[t]->data);
				free(w->by_task[t]->path);
				free(w->by_task[t]);
			}
		free(w->by_task);
		free(w);
	}
	if (ax->own_client)
		http_client_free(ax->client);
	ax->client = NULL;
	uv_close((uv_handle_t *)&ax->tick, on_tick_closed);
}

static const struct executor_ops ai_ops = {
	.name = "ai",
	.start = ax_start,
	.cancel = ax_cancel,
	.destroy = ax_destroy,
};

struct executor *ai_executor_new(uv_loop_t *loop, struct http_client *client)
{
	struct ai_executor *ax = calloc(1, sizeof(*ax));
	if (!ax)
		return NULL;
	ax->base.ops = &ai_ops;
	ax->loop = loop;
	ax->client = client;
	if (!client) {
		if (http_client_new(loop, NULL, &ax->client) < 0) {
			free(ax);
			return NULL;
		}
		ax->own_client = true;
	}
	uv_timer_init(loop, &ax->tick);
	ax->tick.data = ax;
	return &ax->base;
}

void ai_executor_set_environ(struct executor *ex, char *const *environ)
{
	if (ex && ex->ops == &ai_ops)
		((struct ai_executor *)ex)->environ = environ;
}
