/* events.c: the event ring and the Server-Sent Events streams.
 *
 * The poller publishes events into one ring (SERVE_RING_EVENTS events,
 * SERVE_RING_BYTES at most), each already formatted as an SSE frame with
 * its sequence number as `id:`. Each client is a cursor into the ring: its
 * connection thread (libmicrohttpd's content reader) copies the frames
 * after its cursor that match its filter (`?run=ID`) and waits on a
 * condition variable when there are none, sending a comment line every
 * SERVE_HEARTBEAT_MS so that a dead peer is found. So publishing never
 * waits for a client, whatever its speed: it appends, drops the oldest
 * frames when full, and wakes the readers.
 *
 * Rule: no event is lost silently. A client whose cursor the ring has
 * overwritten, or which is more than SERVE_CLIENT_LAG_BYTES behind, is
 * dropped: its stream ends and the log says which client and why. A client
 * that reconnects with Last-Event-ID gets every event after that id if the
 * ring still holds them, else an `event: reset` first (refetch the state).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <microhttpd.h>

#include "serve/serve_int.h"
#include "util/clock.h"

struct sub {
	struct sub *next;
	struct serve *s;
	uint64_t cursor;           /* the last seq sent (or skipped) */
	char run[72];              /* filter: events of this run; "" all */
	char peer[80];
	char *pending;             /* the rest of a frame that did not fit */
	size_t pending_len, pending_off;
	bool dropped, hello;
	char *hello_frame;
	uint64_t last_send_ms;
};

static const char *const type_names[] = {"run", "task", "attempt", "log", "schedule", "server"};

int hub_init(struct hub *h)
{
	memset(h, 0, sizeof(*h));
	pthread_mutex_init(&h->mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&h->cv, &ca);
	pthread_condattr_destroy(&ca);
	h->ring = calloc(SERVE_RING_EVENTS, sizeof(*h->ring));
	h->first = 1;
	h->last = 0;
	return h->ring ? 0 : -ENOMEM;
}

void hub_free(struct hub *h)
{
	if (!h->ring)
		return;
	for (uint64_t q = h->first; q <= h->last; q++)
		free(h->ring[q % SERVE_RING_EVENTS].frame);
	free(h->ring);
	h->ring = NULL;
}

uint64_t hub_seq(struct hub *h)
{
	pthread_mutex_lock(&h->mu);
	uint64_t q = h->last;
	pthread_mutex_unlock(&h->mu);
	return q;
}

bool hub_wants_logs(struct hub *h, const char *run)
{
	bool yes = false;
	pthread_mutex_lock(&h->mu);
	for (struct sub *c = h->subs; c && !yes; c = c->next)
		yes = c->run[0] && !strcmp(c->run, run);
	pthread_mutex_unlock(&h->mu);
	return yes;
}

void hub_close(struct hub *h)
{
	pthread_mutex_lock(&h->mu);
	h->closing = true;
	pthread_cond_broadcast(&h->cv);
	pthread_mutex_unlock(&h->mu);
}

/* Bytes of frames after seq `cursor` (of every run: an upper bound). */
static uint64_t behind(const struct hub *h, uint64_t cursor)
{
	if (cursor >= h->last || h->first > h->last)
		return 0;
	if (cursor >= h->first)
		return h->cum - h->ring[cursor % SERVE_RING_EVENTS].cum;
	const struct hub_ev *f = &h->ring[h->first % SERVE_RING_EVENTS];
	return h->cum - (f->cum - f->len);
}

static void evict_oldest(struct serve *s, struct hub *h)
{
	struct hub_ev *e = &h->ring[h->first % SERVE_RING_EVENTS];
	for (struct sub *c = h->subs; c; c = c->next)
		if (!c->dropped && c->cursor < h->first) {
			c->dropped = true;
			h->dropped++;
			serve_log(s, "SSE client %s dropped: it fell %llu events behind (the "
				  "server keeps %u); it may reconnect and fetch the state again",
				  c->peer, (unsigned long long)(h->last - c->cursor),
				  SERVE_RING_EVENTS);
		}
	h->bytes -= e->len;
	free(e->frame);
	e->frame = NULL;
	h->first++;
}

void hub_publish(struct serve *s, int type, const char *run, json_t *data)
{
	struct hub *h = &s->hub;
	if (!data)
		return;
	char *js = json_dumps(data, JSON_COMPACT | JSON_ENSURE_ASCII);
	json_decref(data);
	if (!js) {
		serve_log(s, "an event was lost: out of memory");
		return;
	}
	pthread_mutex_lock(&h->mu);
	uint64_t seq = h->last + 1;
	char *frame = buf_strf("id: %llu\nevent: %s\ndata: %s\n\n", (unsigned long long)seq,
			       type_names[type], js);
	free(js);
	if (!frame) {
		pthread_mutex_unlock(&h->mu);
		serve_log(s, "an event was lost: out of memory");
		return;
	}
	size_t len = strlen(frame);
	while (h->first <= h->last &&
	       (h->last - h->first + 1 >= SERVE_RING_EVENTS || h->bytes + len > SERVE_RING_BYTES))
		evict_oldest(s, h);
	struct hub_ev *e = &h->ring[seq % SERVE_RING_EVENTS];
	e->seq = seq;
	e->type = (uint8_t)type;
	snprintf(e->run, sizeof(e->run), "%s", run ? run : "");
	e->frame = frame;
	e->len = len;
	h->bytes += len;
	h->cum += len;
	e->cum = h->cum;
	h->last = seq;
	h->published++;
	/* A client further behind than its cap is dropped now, not when the
	 * ring comes round: its backlog would only grow. */
	for (struct sub *c = h->subs; c; c = c->next)
			if (!c->dropped && behind(h, c->cursor) > SERVE_CLIENT_LAG_BYTES) {
				c->dropped = true;
				h->dropped++;
				serve_log(s, "SSE client %s dropped: more than %u MiB of events "
					  "behind", c->peer, SERVE_CLIENT_LAG_BYTES >> 20);
			}
	pthread_cond_broadcast(&h->cv);
	pthread_mutex_unlock(&h->mu);
}

/* Copies what fits of the pending frame into buf. */
static size_t take_pending(struct sub *c, char *buf, size_t max)
{
	size_t n = c->pending_len - c->pending_off;
	if (n > max)
		n = max;
	memcpy(buf, c->pending + c->pending_off, n);
	c->pending_off += n;
	if (c->pending_off == c->pending_len) {
		free(c->pending);
		c->pending = NULL;
		c->pending_len = c->pending_off = 0;
	}
	return n;
}

static bool matches(const struct sub *c, const struct hub_ev *e)
{
	if (!c->run[0])
		return e->type != EV_LOG;   /* logs go to streams of one run */
	return !strcmp(c->run, e->run);
}

static ssize_t reader(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct sub *c = cls;
	struct serve *s = c->s;
	struct hub *h = &s->hub;
	(void)pos;
	if (c->pending)
		return (ssize_t)take_pending(c, buf, max);
	pthread_mutex_lock(&h->mu);
	for (;;) {
		if (c->dropped) {
			pthread_mutex_unlock(&h->mu);
			return MHD_CONTENT_READER_END_WITH_ERROR;
		}
		if (h->closing) {
			pthread_mutex_unlock(&h->mu);
			return MHD_CONTENT_READER_END_OF_STREAM;
		}
		if (c->hello_frame) {
			c->pending = c->hello_frame;
			c->pending_len = strlen(c->pending);
			c->hello_frame = NULL;
			break;
		}
		while (c->cursor < h->last) {
			const struct hub_ev *e = &h->ring[(c->cursor + 1) % SERVE_RING_EVENTS];
			c->cursor++;
			if (matches(c, e)) {
				c->pending = strdup(e->frame);
				c->pending_len = e->len;
				break;
			}
		}
		if (c->pending)
			break;
		uint64_t now = clock_mono_ms();
		if (now - c->last_send_ms >= SERVE_HEARTBEAT_MS) {
			c->pending = strdup(": keep-alive\n\n");
			c->pending_len = c->pending ? strlen(c->pending) : 0;
			break;
		}
		uint64_t until = c->last_send_ms + SERVE_HEARTBEAT_MS;
		struct timespec ts = {(time_t)(until / 1000), (long)(until % 1000) * 1000000};
		pthread_cond_timedwait(&h->cv, &h->mu, &ts);
	}
	pthread_mutex_unlock(&h->mu);
	if (!c->pending)
		return MHD_CONTENT_READER_END_WITH_ERROR;   /* out of memory */
	c->last_send_ms = clock_mono_ms();
	return (ssize_t)take_pending(c, buf, max);
}

static void sub_free(void *cls)
{
	struct sub *c = cls;
	struct hub *h = &c->s->hub;
	pthread_mutex_lock(&h->mu);
	for (struct sub **p = &h->subs; *p; p = &(*p)->next)
		if (*p == c) {
			*p = c->next;
			h->n_subs--;
			break;
		}
	pthread_mutex_unlock(&h->mu);
	free(c->pending);
	free(c->hello_frame);
	free(c);
}

void api_events(struct serve *s, struct req *rq)
{
	struct hub *h = &s->hub;
	const char *run = req_arg(rq, "run");
	const char *last = req_header(rq, "Last-Event-ID");
	if (!last)
		last = req_arg(rq, "since");
	if (run && (!*run || strlen(run) >= 72 || !store_run_id_valid(run)))
		return reply_error(rq, 400, "?run= takes a run id");
	struct sub *c = calloc(1, sizeof(*c));
	if (!c)
		return reply_error(rq, 500, "out of memory");
	c->s = s;
	snprintf(c->run, sizeof(c->run), "%s", run ? run : "");
	req_peer(rq, c->peer, sizeof(c->peer));
	c->last_send_ms = clock_mono_ms();
	pthread_mutex_lock(&h->mu);
	uint64_t since = last ? strtoull(last, NULL, 10) : 0;
	bool reset = false;
	if (last && since + 1 >= h->first && since <= h->last) {
		c->cursor = since;
	} else {
		reset = last != NULL;
		c->cursor = h->last;
	}
	c->hello_frame = buf_strf("retry: 2000\nid: %llu\nevent: %s\ndata: {\"seq\":%llu}\n\n",
				  (unsigned long long)c->cursor, reset ? "reset" : "hello",
				  (unsigned long long)c->cursor);
	c->next = h->subs;
	h->subs = c;
	h->n_subs++;
	pthread_mutex_unlock(&h->mu);
	struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384,
								   reader, c, sub_free);
	if (!r) {
		sub_free(c);
		return reply_error(rq, 500, "out of memory");
	}
	MHD_add_response_header(r, "Content-Type", "text/event-stream");
	MHD_add_response_header(r, "Cache-Control", "no-store");
	MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
	MHD_add_response_header(r, "X-Accel-Buffering", "no");
	if (rq->resp)
		MHD_destroy_response(rq->resp);
	rq->resp = r;
	rq->status = 200;
	serve_log(s, "SSE client %s connected%s%s", c->peer, run ? " for run " : "", run ? run : "");
}
