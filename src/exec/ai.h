/* ai.h: the executor of `ai` tasks, a client of the OpenAI Chat Completions
 * API (POST {baseUrl}/chat/completions), or of any server that speaks it.
 *
 * One attempt is one request, sent through a struct http_client (shared
 * with the api/webhook executor to reuse its connections, or its own).
 * The request body:
 *   {"model", "messages": [{"role": "system"} (when `system` is set),
 *    {"role": "user"}], "temperature" (when set), "max_tokens" (when
 *    maxTokens is set), "response_format": {"type": "json_object"} (json),
 *    "stream": true, "stream_options": {"include_usage": true} (stream)}
 * Known limitation: maxTokens is always sent as "max_tokens". Models that
 * only accept "max_completion_tokens" (OpenAI's o-series reasoning models)
 * reject it with a 400 (permanent); leave maxTokens unset for them, or
 * point baseUrl at a compatible gateway that translates the field.
 *
 * The API key is read from the environment variable named by apiKeyEnv
 * (default OPENAI_API_KEY) when the attempt starts and goes into the
 * Authorization header only: never into a message, a result or a log (an
 * error body that echoes it has it replaced by "***"). The engine should
 * still register its value with the redactor (ai_api_key_env(): the ai
 * kind's each_secret_env, kinds/ai.c). Without a
 * key, a local base URL (127.0.0.1, localhost, ::1) is called without
 * Authorization; any other fails `permanent` before a request is sent.
 *
 * Pacing: a response with x-ratelimit-remaining-requests: 0 (or
 * x-ratelimit-remaining-tokens: 0) holds every later request to the same
 * base URL until its x-ratelimit-reset-requests (-tokens) time, capped at
 * AI_MAX_PACE_MS. Attempts started meanwhile stay "running" for the
 * scheduler and wait on the executor's timer; the wait counts against the
 * attempt's timeout. When the hold ends, all waiting attempts are sent
 * together (a new zero in a reply holds the next ones again).
 *
 * An attempt without `timeout` is bounded by HTTP_DEFAULT_TIMEOUT_MS (5
 * minutes), streamed or not: set `timeout` for longer generations.
 */
#ifndef DAGRUN_AI_H
#define DAGRUN_AI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <jansson.h>
#include <uv.h>

#include "exec/executor.h"
#include "exec/http.h"

/* The spec of an ai task (kinds/ai.c fills it). */
enum dr_response_format { DR_RESP_TEXT = 0, DR_RESP_JSON = 1 };

struct dr_ai {
	struct dr_text model, system, prompt, prompt_file, base_url, api_key_env;
	const struct dr_value *context; /* a map, or NULL */
	double temperature;
	bool has_temperature;
	uint32_t max_tokens;            /* 0: not sent */
	uint8_t response_format;
	bool stream;
	uint64_t max_context_bytes;     /* default 64 KiB */
};

#define AI_DEFAULT_BASE_URL "https://api.openai.com/v1"
#define AI_DEFAULT_KEY_ENV "OPENAI_API_KEY"
#define AI_BASE_URL_ENV "OPENAI_BASE_URL"
#define AI_PROMPT_FILE_MAX ((size_t)1 << 20)            /* a promptFile: 1 MiB */
#define AI_DEFAULT_MAX_CONTEXT ((uint64_t)64 << 10)     /* maxContextBytes */
#define AI_MAX_PACE_MS (10ull * 60 * 1000)              /* one pacing hold */
#define AI_MAX_STREAM_BYTES ((uint64_t)256 << 20)       /* a streamed body */
#define AI_MAX_SSE_LINE ((size_t)8 << 20)               /* one SSE line */
#define AI_LENGTH_WARNING "the reply was cut at maxTokens (finish_reason: length)"
#define AI_FILTER_WARNING "the reply was cut by the content filter " \
			  "(finish_reason: content_filter)"

/* The canonical inputs of ai attempt a (kinds/kind.h, kind.inputs): model,
 * system and user messages as the executor builds them (the context
 * rendered, cut at maxContextBytes, appended unless a template reads it;
 * a promptFile read and rendered), the context's values, temperature,
 * maxTokens, responseFormat, stream; into o, unmasked (the caller masks).
 * Never the base URL nor the key. Reads a promptFile as the executor does
 * on a task's first attempt. Returns 0, -ENOMEM, or -EINVAL with *err. */
int ai_inputs(struct exec_attempt *a, json_t *o, char **err);

/* The executor of ai tasks on loop. Its results carry an extension:
 * DAGRUN_EXT_HTTP (once a response came) then DAGRUN_EXT_AI, their strings
 * masked (the key, the attempt's redactor). client: the http client to send
 * through (e.g. http_executor_client() of the api executor), borrowed: it
 * must outlive this executor; NULL: the executor makes its own. Returns
 * NULL on failure. Destroy through its ops, then run the loop so its
 * handles close. */
struct executor *ai_executor_new(uv_loop_t *loop, struct http_client *client);

/* Where the executor reads the API key, OPENAI_BASE_URL and the like: a
 * NULL-terminated "NAME=value" array, borrowed until the executor is
 * destroyed or this is called again; NULL (the default): the process
 * environment. */
void ai_executor_set_environ(struct executor *ex, char *const *environ);

/* The name of the environment variable that holds ai's API key: apiKeyEnv,
 * or AI_DEFAULT_KEY_ENV. Static or the model's storage; never NULL. */
const char *ai_api_key_env(const struct dr_ai *ai);

/* Reads the promptFile of ai (which must have one), relative to the
 * workflow's folder: the one reader of validation (kinds/ai.c) and run, so
 * both accept and refuse the same files with the same words. It never
 * blocks (a FIFO is refused at once) and reads only a regular file of at
 * most AI_PROMPT_FILE_MAX bytes (util/file.h). Returns 0 with *path (the
 * file as opened: the FILE of template positions in it), *data
 * (NUL-terminated) and *len, all the caller's to free; -ENOMEM; or another
 * -errno with *err, a malloc'd "promptFile 'NAME': WHY" (NULL on OOM)
 * that both report at the promptFile key. */
int ai_prompt_file_read(const struct dagrun_workflow *wf, const struct dr_ai *ai,
			char **path, char **data, size_t *len, char **err);

/* ---- the pure parts (ai_util.c), exposed for the tests --------------------- */

/* Parses a duration as OpenAI's x-ratelimit-reset-* headers write it
 * ("1s", "6m30s", "250ms", "1h2m", "0.5s"; a bare number is seconds) into
 * milliseconds, rounded up and capped at HTTP_RETRY_AFTER_MAX_MS. Returns
 * false (and leaves *ms alone) when s is not such a duration. */
bool ai_parse_duration_ms(const char *s, uint64_t *ms);

/* The delay before a retry that a failed response asks for, in ms: the
 * longest of retry-after-ms / Retry-After (http_retry_after_ms) and of
 * x-ratelimit-reset-requests / -tokens whose x-ratelimit-remaining-* is
 * "0" (or, for a 429, absent). 0 when none applies. */
uint64_t ai_retry_after_ms(const json_t *headers, int status, time_t now);

/* How long a response asks to hold further requests (pacing): the longest
 * x-ratelimit-reset-* whose x-ratelimit-remaining-* is "0", capped at
 * AI_MAX_PACE_MS; 0 when none. */
uint64_t ai_pace_ms(const json_t *headers);

/* The largest n <= max such that s[0 .. n) does not end inside a UTF-8
 * sequence (len when max >= len). */
size_t ai_utf8_floor(const char *s, size_t len, size_t max);

/* Appends s[0 .. n) to out with every invalid UTF-8 sequence replaced by
 * U+FFFD, so the text can go into JSON. Returns 0 or what buf_add returns. */
int ai_utf8_clean(struct buf *out, const char *s, size_t n);

/* What a reply said (a whole JSON reply, or a stream of chunks). */
struct ai_reply {
	struct buf text;             /* choice 0's content, up to EXEC_OUTPUT_CAP */
	uint64_t text_bytes;         /* all of it */
	char *refusal;               /* malloc'd, or NULL */
	char *model, *finish_reason; /* malloc'd, or NULL */
	uint64_t prompt_tokens, completion_tokens;
	bool has_usage;
};

void ai_reply_free(struct ai_reply *rp);

/* Parses a non-streamed reply body into rp (which the caller frees with
 * ai_reply_free, also on failure). Returns 0; -EINVAL with *err (malloc'd)
 * when the body is not a chat completion; -ENOMEM. */
int ai_reply_parse(const char *body, size_t len, struct ai_reply *rp, char **err);

/* The message of an API error body ({"error": {"message", "type",
 * "code"}}) as "message (type: T, code: C)", malloc'd; NULL when the body
 * has none. *quota: the type or code is "insufficient_quota". */
char *ai_error_message(const char *body, size_t len, bool *quota);

/* An incremental parser of a streamed reply: Server-Sent Events (lines
 * ending in LF, CRLF or CR, split anywhere across chunks; "data:" lines
 * joined until a blank line; ":" comments and other fields ignored), each
 * event a chat.completion.chunk, the last one "[DONE]". Zero-initialise,
 * set on_delta/ud, feed, end, free. */
struct ai_stream {
	struct ai_reply reply;
	void (*on_delta)(void *ud, const char *text, size_t len);  /* may be NULL */
	void *ud;
	bool done;           /* "data: [DONE]" seen */
	bool events;         /* at least one event (an SSE stream indeed) */
	bool partial;        /* ended inside an event or a line */
	char *error;         /* malloc'd: an error event or a malformed chunk;
				parsing stopped there */
	/* framing state */
	struct buf line, data;
	bool has_data, cr;
};

/* Feeds n bytes. Returns 0 (also after an error in the stream, which sets
 * s->error and ignores the rest) or -ENOMEM. */
int ai_stream_feed(struct ai_stream *s, const char *p, size_t n);

/* The body ended: flushes a last line without its end of line (so a final
 * "data: [DONE]" counts) and sets s->partial when an event was left open.
 * Returns 0 or -ENOMEM. */
int ai_stream_end(struct ai_stream *s);

void ai_stream_free(struct ai_stream *s);

#endif
