/* ai_util.c: the pure parts of AI tasks: rate-limit headers, UTF-8, reply
 * and error bodies, and the incremental Server-Sent Events parser; see
 * ai.h.
 *
 * Invariant: nothing here touches the loop or the network; a stream parser
 * gives the same reply whatever the chunk boundaries are.
 */
#include "exec/ai.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- durations and rate limits ------------------------------------------- */

/* A non-negative decimal (digits, optionally a fraction) at *s; advances. */
static bool number(const char **s, double *out)
{
	const char *p = *s;
	double v = 0, scale = 0.1;
	bool digits = false;
	for (; *p >= '0' && *p <= '9'; p++, digits = true)
		v = v * 10 + (*p - '0');
	if (*p == '.')
		for (p++; *p >= '0' && *p <= '9'; p++, digits = true, scale /= 10)
			v += (*p - '0') * scale;
	if (!digits)
		return false;
	*s = p;
	*out = v;
	return true;
}

/* The unit at *s in ms; advances. 0 when there is none. */
static double unit(const char **s)
{
	static const struct { const char *name; double ms; } units[] = {
		{"ms", 1}, {"us", 1e-3}, {"\xc2\xb5s", 1e-3}, {"ns", 1e-6},
		{"h", 3600e3}, {"m", 60e3}, {"s", 1e3},
	};
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		size_t n = strlen(units[i].name);
		if (!strncmp(*s, units[i].name, n)) {
			*s += n;
			return units[i].ms;
		}
	}
	return 0;
}

bool ai_parse_duration_ms(const char *s, uint64_t *ms)
{
	if (!s)
		return false;
	while (*s == ' ' || *s == '\t')
		s++;
	double total = 0, v;
	bool first = true;
	while (*s && *s != ' ' && *s != '\t') {
		if (!number(&s, &v))
			return false;
		double u = unit(&s);
		if (u == 0) {
			if (!first || (*s && *s != ' ' && *s != '\t'))
				return false;
			u = 1e3;    /* a bare number: seconds */
		}
		total += v * u;
		first = false;
	}
	while (*s == ' ' || *s == '\t')
		s++;
	if (first || *s)
		return false;
	double cap = (double)HTTP_RETRY_AFTER_MAX_MS;
	*ms = total >= cap ? HTTP_RETRY_AFTER_MAX_MS : (uint64_t)ceil(total);
	return true;
}

static const char *header(const json_t *headers, const char *name)
{
	return json_string_value(json_object_get(headers, name));
}

static bool is_zero(const char *v)
{
	if (!v)
		return false;
	while (*v == ' ')
		v++;
	if (*v != '0')
		return false;
	while (*v == '0')
		v++;
	while (*v == ' ')
		v++;
	return !*v;
}

/* The reset of one limit ("requests" or "tokens") when it applies. */
static uint64_t reset_ms(const json_t *headers, const char *which, bool absent_applies)
{
	char name[64];
	snprintf(name, sizeof(name), "x-ratelimit-remaining-%s", which);
	const char *rem = header(headers, name);
	if (!(rem ? is_zero(rem) : absent_applies))
		return 0;
	snprintf(name, sizeof(name), "x-ratelimit-reset-%s", which);
	uint64_t ms = 0;
	return ai_parse_duration_ms(header(headers, name), &ms) ? ms : 0;
}

static uint64_t max64(uint64_t a, uint64_t b)
{
	return a > b ? a : b;
}

uint64_t ai_retry_after_ms(const json_t *headers, int status, time_t now)
{
	if (!headers)
		return 0;
	bool absent = status == 429;
	uint64_t ms = http_retry_after_ms(headers, now);
	ms = max64(ms, reset_ms(headers, "requests", absent));
	return max64(ms, reset_ms(headers, "tokens", absent));
}

uint64_t ai_pace_ms(const json_t *headers)
{
	if (!headers)
		return 0;
	uint64_t ms = max64(reset_ms(headers, "requests", false),
			    reset_ms(headers, "tokens", false));
	return ms > AI_MAX_PACE_MS ? AI_MAX_PACE_MS : ms;
}

/* ---- UTF-8 ------------------------------------------------------------------- */

size_t ai_utf8_floor(const char *s, size_t len, size_t max)
{
	if (max >= len)
		return len;
	size_t n = max;
	/* Back off the continuation bytes of a sequence cut at n (at most 3). */
	for (int i = 0; i < 3 && n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80; i++)
		n--;
	return ((unsigned char)s[n] & 0xc0) == 0x80 ? max : n;
}

/* The length of the valid UTF-8 sequence at s[0 .. n), or 0. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
	unsigned char c = s[0];
	if (c < 0x80)
		return 1;
	size_t len;
	unsigned char lo = 0x80, hi = 0xbf;
	if (c >= 0xc2 && c <= 0xdf)
		len = 2;
	else if (c >= 0xe0 && c <= 0xef) {
		len = 3;
		if (c == 0xe0)
			lo = 0xa0;      /* overlong */
		else if (c == 0xed)
			hi = 0x9f;      /* surrogates */
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4;
		if (c == 0xf0)
			lo = 0x90;
		else if (c == 0xf4)
			hi = 0x8f;      /* above U+10FFFF */
	} else {
		return 0;
	}
	if (n < len || s[1] < lo || s[1] > hi)
		return 0;
	for (size_t i = 2; i < len; i++)
		if ((s[i] & 0xc0) != 0x80)
			return 0;
	return len;
}

int ai_utf8_clean(struct buf *out, const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t start = 0, i = 0;
	int r = 0;
	while (i < n && r == 0) {
		size_t k = utf8_seq(p + i, n - i);
		if (k) {
			i += k;
			continue;
		}
		if ((r = buf_add(out, s + start, i - start)) == 0)
			r = buf_add(out, "\xef\xbf\xbd", 3);
		start = ++i;
	}
	if (r == 0 && i > start)
		r = buf_add(out, s + start, i - start);
	if (r == 0 && !out->data)
		r = buf_add(out, "", 0);
	return r;
}

/* ---- replies ------------------------------------------------------------------ */

void ai_reply_free(struct ai_reply *rp)
{
	if (!rp)
		return;
	buf_free(&rp->text);
	free(rp->refusal);
	free(rp->model);
	free(rp->finish_reason);
	memset(rp, 0, sizeof(*rp));
}

static int text_add(struct ai_reply *rp, const char *p, size_t n)
{
	rp->text.max = EXEC_OUTPUT_CAP;
	rp->text_bytes += n;
	size_t room = rp->text.len < EXEC_OUTPUT_CAP ? EXEC_OUTPUT_CAP - rp->text.len : 0;
	int r = buf_add(&rp->text, p, n < room ? n : room);
	return r == -E2BIG ? 0 : r;
}

/* A malloc'd copy of the JSON string j as C text, appended to pre[0 ..
 * pre_len): JSON may hold a NUL (\u0000), a C string cannot, so each is
 * written as the six characters \u0000 it was sent as, and nothing after
 * it is lost. NULL when out of memory. */
static char *c_text(const char *pre, size_t pre_len, const json_t *j)
{
	const char *s = json_string_value(j);
	size_t n = json_string_length(j), nul = 0;
	for (size_t i = 0; i < n; i++)
		nul += !s[i];
	char *c = malloc(pre_len + n + 5 * nul + 1), *w = c;
	if (!c)
		return NULL;
	if (pre_len)
		memcpy(w, pre, pre_len);
	w += pre_len;
	for (size_t i = 0; i < n; i++) {
		if (s[i]) {
			*w++ = s[i];
		} else {
			memcpy(w, "\\u0000", 6);
			w += 6;
		}
	}
	*w = '\0';
	return c;
}

/* Replaces *dst with a copy of the JSON string j when it is one. */
static int set_string(char **dst, const json_t *j)
{
	if (!json_is_string(j))
		return 0;
	char *c = c_text(NULL, 0, j);
	if (!c)
		return -ENOMEM;
	free(*dst);
	*dst = c;
	return 0;
}

static int append_string(char **dst, const json_t *j)
{
	if (!json_is_string(j) || !json_string_length(j))
		return 0;
	char *c = c_text(*dst, *dst ? strlen(*dst) : 0, j);
	if (!c)
		return -ENOMEM;
	free(*dst);
	*dst = c;
	return 0;
}

static void usage(struct ai_reply *rp, const json_t *u)
{
	if (!json_is_object(u))
		return;
	json_t *p = json_object_get(u, "prompt_tokens");
	json_t *c = json_object_get(u, "completion_tokens");
	if (!json_is_integer(p) && !json_is_integer(c))
		return;
	rp->has_usage = true;
	if (json_integer_value(p) > 0)
		rp->prompt_tokens = (uint64_t)json_integer_value(p);
	if (json_integer_value(c) > 0)
		rp->completion_tokens = (uint64_t)json_integer_value(c);
}

/* Choice 0 of a reply or chunk: the one with "index": 0, else the first. */
static json_t *choice0(const json_t *root)
{
	json_t *choices = json_object_get(root, "choices"), *c;
	size_t i;
	json_array_foreach(choices, i, c) {
		json_t *idx = json_object_get(c, "index");
		if (!idx || (json_is_integer(idx) && json_integer_value(idx) == 0))
			return c;
	}
	return NULL;
}

int ai_reply_parse(const char *body, size_t len, struct ai_reply *rp, char **err)
{
	*err = NULL;
	json_error_t je;
	json_t *j = json_loadb(body ? body : "", len, JSON_ALLOW_NUL, &je);
	int r = -EINVAL;
	if (!json_is_object(j)) {
		*err = buf_strf("the reply is not a JSON object: %s", j ? "another value" : je.text);
		goto out;
	}
	bool quota;
	char *api = ai_error_message(body, len, &quota);
	if (api) {
		*err = api;
		goto out;
	}
	json_t *c = choice0(j);
	if (!c) {
		*err = strdup("the reply has no choices");
		goto out;
	}
	json_t *msg = json_object_get(c, "message");
	json_t *content = json_object_get(msg, "content");
	r = -ENOMEM;
	if ((json_is_string(content) && text_add(rp, json_string_value(content),
						  json_string_length(content)) < 0) ||
	    set_string(&rp->refusal, json_object_get(msg, "refusal")) < 0 ||
	    set_string(&rp->finish_reason, json_object_get(c, "finish_reason")) < 0 ||
	    set_string(&rp->model, json_object_get(j, "model")) < 0)
		goto out;
	usage(rp, json_object_get(j, "usage"));
	r = 0;
out:
	if (r == -EINVAL && !*err)
		r = -ENOMEM;
	json_decref(j);
	return r;
}

char *ai_error_message(const char *body, size_t len, bool *quota)
{
	*quota = false;
	json_t *j = json_loadb(body ? body : "", len, JSON_ALLOW_NUL, NULL);
	json_t *e = json_object_get(j, "error");
	char *out = NULL, *msg = NULL, *type = NULL, *code = NULL;
	if (!e)
		goto out;
	json_t *m = json_is_string(e) ? e : json_object_get(e, "message");
	json_t *t = json_object_get(e, "type"), *c = json_object_get(e, "code");
	if ((json_is_string(m) && !(msg = c_text(NULL, 0, m))) ||
	    (json_is_string(t) && !(type = c_text(NULL, 0, t))) ||
	    (json_is_string(c) && !(code = c_text(NULL, 0, c))))
		goto out;
	*quota = (type && !strcmp(type, "insufficient_quota")) ||
		 (code && !strcmp(code, "insufficient_quota"));
	struct buf b = BUF_INIT;
	int r = buf_adds(&b, msg && *msg ? msg : "no message");
	if (r == 0 && (type || code))
		r = buf_printf(&b, " (%s%s%s%s%s)", type ? "type: " : "", type ? type : "",
			       type && code ? ", " : "", code ? "code: " : "", code ? code : "");
	out = r == 0 ? buf_steal(&b) : NULL;
	buf_free(&b);
out:
	free(msg);
	free(type);
	free(code);
	json_decref(j);
	return out;
}

/* ---- Server-Sent Events ------------------------------------------------------------ */

static int stream_fail(struct ai_stream *s, const char *fmt, const char *arg)
{
	if (s->error)
		return 0;
	s->error = buf_strf(fmt, arg);
	return s->error ? 0 : -ENOMEM;
}

/* One event's data: a chunk, or [DONE]. */
static int event(struct ai_stream *s, const char *data, size_t len)
{
	s->events = true;
	if (len == 6 && !memcmp(data, "[DONE]", 6)) {
		s->done = true;
		return 0;
	}
	if (s->done)
		return 0;
	json_error_t je;
	json_t *j = json_loadb(data, len, JSON_ALLOW_NUL, &je);
	int r = 0;
	if (!json_is_object(j)) {
		r = stream_fail(s, "a malformed chunk in the stream: %s",
				j ? "not an object" : je.text);
		goto out;
	}
	if (json_object_get(j, "error")) {
		bool quota;
		char *m = ai_error_message(data, len, &quota);
		r = stream_fail(s, "an error in the stream: %s", m ? m : "no message");
		free(m);
		goto out;
	}
	struct ai_reply *rp = &s->reply;
	if (!rp->model && (r = set_string(&rp->model, json_object_get(j, "model"))) < 0)
		goto out;
	usage(rp, json_object_get(j, "usage"));
	json_t *c = choice0(j);
	json_t *delta = json_object_get(c, "delta");
	json_t *content = json_object_get(delta, "content");
	const char *text = json_string_value(content);
	size_t n = json_string_length(content);
	if (text && n) {
		if ((r = text_add(rp, text, n)) < 0)
			goto out;
		if (s->on_delta)
			s->on_delta(s->ud, text, n);
	}
	if ((r = append_string(&rp->refusal, json_object_get(delta, "refusal"))) < 0)
		goto out;
	if (json_is_string(json_object_get(c, "finish_reason")))
		r = set_string(&rp->finish_reason, json_object_get(c, "finish_reason"));
out:
	json_decref(j);
	return r;
}

/* A complete line in s->line. */
static int line(struct ai_stream *s)
{
	const char *l = s->line.data ? s->line.data : "";
	size_t n = s->line.len;
	int r = 0;
	if (n == 0) {
		if (s->has_data)
			r = event(s, s->data.data ? s->data.data : "", s->data.len);
		buf_reset(&s->data);
		s->has_data = false;
	} else if (l[0] != ':') {
		const char *colon = memchr(l, ':', n);
		size_t field = colon ? (size_t)(colon - l) : n;
		if (field == 4 && !memcmp(l, "data", 4)) {
			const char *v = colon ? colon + 1 : l + n;
			if (v < l + n && *v == ' ')
				v++;
			s->data.max = AI_MAX_SSE_LINE;
			if (s->has_data)
				r = buf_addc(&s->data, '\n');
			if (r == 0)
				r = buf_add(&s->data, v, (size_t)(l + n - v));
			if (r == 0 && !s->data.data)
				r = buf_add(&s->data, "", 0);
			s->has_data = true;
			if (r == -E2BIG)
				r = stream_fail(s, "%s", "an event larger than the limit");
		}
	}
	buf_reset(&s->line);
	return r;
}

int ai_stream_feed(struct ai_stream *s, const char *p, size_t n)
{
	size_t i = 0;
	s->line.max = AI_MAX_SSE_LINE;
	while (i < n && !s->error) {
		if (s->cr) {
			s->cr = false;
			if (p[i] == '\n') {
				i++;
				continue;
			}
		}
		size_t j = i;
		while (j < n && p[j] != '\n' && p[j] != '\r')
			j++;
		int r = buf_add(&s->line, p + i, j - i);
		if (r == -E2BIG)
			return stream_fail(s, "%s", "a line longer than the limit");
		if (r < 0)
			return r;
		if (j == n)
			break;
		s->cr = p[j] == '\r';
		if ((r = line(s)) < 0)
			return r;
		i = j + 1;
	}
	return 0;
}

int ai_stream_end(struct ai_stream *s)
{
	int r = 0;
	if (s->error)
		return 0;
	if (s->line.len && (r = line(s)) < 0)
		return r;
	if (s->has_data) {
		if (s->data.len == 6 && !memcmp(s->data.data, "[DONE]", 6))
			s->done = s->events = true;
		else
			s->partial = true;
		buf_reset(&s->data);
		s->has_data = false;
	}
	return 0;
}

void ai_stream_free(struct ai_stream *s)
{
	if (!s)
		return;
	ai_reply_free(&s->reply);
	free(s->error);
	s->error = NULL;
	buf_free(&s->line);
	buf_free(&s->data);
}
