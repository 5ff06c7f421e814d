/* ai_reply.c: an ai attempt's reply: the body or the stream parsed into
 * the result (its text as the output; the model, usage and finish reason,
 * masked, in the result's extension), an error status classified with the
 * API's message, and the pacing a response asks for.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exec/ai_int.h"
#include "expr/redact.h"

static void ai_ext_free(struct exec_ext *x)
{
	struct ai_ext *e = (struct ai_ext *)x;
	json_decref(x->headers);
	free(e->model);
	free(e->finish_reason);
	free(e);
}

/* An extension with no reply yet (no usage, no prompt sent). */
struct ai_ext *ax_ext_new(void)
{
	struct ai_ext *e = calloc(1, sizeof(*e));
	if (!e)
		return NULL;
	e->ai.base.type = DAGRUN_EXT_AI;
	e->ai.prompt_tokens = e->ai.completion_tokens = -1;
	e->x.pub = &e->ai.base;
	e->x.free = ai_ext_free;
	return e;
}

void ax_on_delta(void *ud, const char *text, size_t len)
{
	struct ax_attempt *st = ud;
	if (st->a->on_output)
		st->a->on_output(st->a, EXEC_STDOUT, text, len);
}

int ax_on_data(void *ud, const char *data, size_t len)
{
	struct ax_attempt *st = ud;
	if (!st->sse.events && st->raw.len < RAW_KEEP) {
		size_t n = RAW_KEEP - st->raw.len;
		if (buf_add(&st->raw, data, len < n ? len : n) < 0)
			return -1;
	}
	return ai_stream_feed(&st->sse, data, len) < 0 ? -1 : 0;
}

/* A string of the reply for the events, without the key or the run's
 * secrets (a server may echo them anywhere); malloc'd, NULL for NULL or
 * on OOM. */
static char *masked(const struct ax_attempt *st, const char *s)
{
	char *k = s ? ax_scrub(s, st->key) : NULL;
	if (!k || !st->a->redactor)
		return k;
	struct buf b = BUF_INIT;
	char *m = redact_text(st->a->redactor, k, strlen(k), &b) == 0 ? buf_steal(&b) : NULL;
	buf_free(&b);
	free(k);
	return m;
}

/* Moves what a reply said into the result. */
static void take_reply(struct ax_attempt *st, struct ai_reply *rp)
{
	struct exec_result *r = &st->res;
	struct ai_ext *e = st->ext;
	buf_free(&r->out);
	r->out = rp->text;
	rp->text = (struct buf)BUF_INIT;
	r->out_bytes = rp->text_bytes;
	r->out_dropped = rp->text_bytes > r->out.len ? rp->text_bytes - r->out.len : 0;
	free(e->model);
	e->ai.model = e->model = masked(st, rp->model);
	free(e->finish_reason);
	e->ai.finish_reason = e->finish_reason = masked(st, rp->finish_reason);
	e->ai.prompt_tokens = rp->has_usage ? (int64_t)rp->prompt_tokens : -1;
	e->ai.completion_tokens = rp->has_usage ? (int64_t)rp->completion_tokens : -1;
}

/* An HTTP error status: the class and the API's message. */
static void status_failure(struct ax_attempt *st, const struct buf *body)
{
	struct exec_result *r = &st->res;
	bool quota = false;
	char *api = ai_error_message(body->data, body->len, &quota);
	char *msg = api ? ax_scrub(api, st->key) : NULL;
	int status = st->ext->http.status;
	enum dr_error_class c = quota ? DR_CLASS_PERMANENT
		: http_status_transient(status) ? DR_CLASS_TRANSIENT : DR_CLASS_PERMANENT;
	if (msg) {
		ax_fail(st, c, "HTTP %d: %s", status, msg);
	} else {
		/* The start of the body, the key scrubbed first and the run's
		 * other secrets masked before the cut (a cut must not leave a
		 * piece of either). A NUL is a control byte (a space), not the
		 * end. */
		struct buf nb = BUF_INIT;
		if (body->len && buf_add(&nb, body->data, body->len) == 0)
			for (size_t i = 0; i < nb.len; i++)
				nb.data[i] = nb.data[i] ? nb.data[i] : ' ';
		char *s = ax_scrub(nb.data ? nb.data : "", st->key);
		buf_free(&nb);
		struct buf q = BUF_INIT;
		if (s)
			exec_body_snippet(st->a->redactor, s, strlen(s), &q);
		ax_fail(st, c, "HTTP %d%s%s", status, q.len ? ": " : "", q.len ? q.data : "");
		buf_free(&q);
		free(s);
	}
	free(api);
	free(msg);
	r->retry_after_ms = ai_retry_after_ms(st->ext->x.headers, status, time(NULL));
}

/* A 2xx reply: the text, or why it is not usable. */
static void success(struct ax_attempt *st, const struct buf *body)
{
	struct exec_result *r = &st->res;
	struct ai_reply plain = {0};
	struct ai_reply *rp = &plain;
	char *err = NULL;
	int e = st->stream ? ai_stream_end(&st->sse) : 0;
	if (e < 0) {
		ax_fail(st, DR_CLASS_RESOURCE, "out of memory");
	} else if (st->stream && (st->sse.events || st->sse.error)) {
		rp = &st->sse.reply;
		if (st->sse.error)
			ax_fail(st, DR_CLASS_TRANSIENT, "%s", st->sse.error);
		else if (!st->sse.done)
			ax_fail(st, DR_CLASS_TRANSIENT, "stream ended early%s",
			     st->sse.partial ? " (inside an event)" : " (no [DONE])");
		else
			r->ok = true;
	} else {
		/* Not streamed, or a server that answered a stream request with
		 * one JSON reply. */
		e = ai_reply_parse(body->data, body->len, rp, &err);
		if (e == -ENOMEM)
			ax_fail(st, DR_CLASS_RESOURCE, "out of memory");
		else if (e < 0)
			ax_fail(st, DR_CLASS_TRANSIENT, "invalid reply: %s", err ? err : "");
		else
			r->ok = true;
		if (e == 0 && st->stream && rp->text.len)
			ax_on_delta(st, rp->text.data, rp->text.len);
	}
	char *refusal = rp->refusal;
	rp->refusal = NULL;
	take_reply(st, rp);
	if (r->ok && refusal && !r->out.len) {
		char *s = ax_scrub(refusal, st->key);
		ax_fail(st, DR_CLASS_PERMANENT, "the model refused: %s", s ? s : "");
		free(s);
	}
	if (r->ok && st->json_mode) {
		json_error_t je;
		json_t *j = json_loadb(r->out.data ? r->out.data : "", r->out.len,
				       JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
		if (!j)
			ax_fail(st, DR_CLASS_TRANSIENT, "the reply is not valid JSON "
			     "(responseFormat: json): %s at line %d", je.text, je.line);
		json_decref(j);
	}
	const char *finish = st->ext->finish_reason;
	if (finish && !strcmp(finish, "length"))
		r->warning = AI_LENGTH_WARNING;
	else if (finish && !strcmp(finish, "content_filter"))
		r->warning = AI_FILTER_WARNING;
	if (!r->ok)
		r->retry_after_ms = ai_retry_after_ms(st->ext->x.headers, st->ext->http.status,
						      time(NULL));
	free(refusal);
	free(err);
	ai_reply_free(&plain);
}

static bool transport_failed(const struct http_response *resp)
{
	return resp->cancelled || resp->err || resp->too_large || resp->headers_too_large ||
	       resp->aborted || resp->timed_out || resp->curl_code;
}

void ax_on_response(void *ud, struct http_response *resp)
{
	struct ax_attempt *st = ud;
	struct ai_executor *ax = st->ax;
	struct exec_result *r = &st->res;
	uint64_t now = ax_now_ms(ax->loop);
	st->xfer = NULL;
	struct ai_ext *e = st->ext;
	http_ext_fill(&e->http, resp);
	e->has_http = true;
	e->http.base.next = &e->ai.base;
	e->x.pub = &e->http.base;       /* the exchange, then the reply */
	json_decref(e->x.headers);
	e->x.headers = resp->headers;
	resp->headers = NULL;
	r->end_ms = resp->end_ms;
	uint64_t hold = ai_pace_ms(e->x.headers);
	if (hold) {
		ax_pace_set(ax, st->base, now + hold, now);
		ax_rearm(ax);
	}
	const struct buf *body = st->stream ? &st->raw : &resp->body;
	if (transport_failed(resp)) {
		http_classify(resp, NULL, 0, st->a->redactor, r);
		if (resp->too_large)
			ax_fail(st, DR_CLASS_PERMANENT, "the reply is larger than %llu bytes",
			     (unsigned long long)(st->stream ? AI_MAX_STREAM_BYTES
							     : HTTP_DEFAULT_MAX_RESPONSE));
		else if (st->stream && st->sse.events && !resp->cancelled && !resp->timed_out)
			ax_fail(st, DR_CLASS_TRANSIENT, "stream ended early: %s",
			     r->error ? r->error : "");
		if (st->stream) {
			take_reply(st, &st->sse.reply);
		}
	} else if (resp->status < 200 || resp->status > 299) {
		status_failure(st, body);
	} else {
		success(st, body);
	}
	ax_report(st);
}
