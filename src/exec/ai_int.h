/* ai_int.h: what the parts of the ai executor share; see ai.h and ai.c.
 *
 * ai.c: the executor, an attempt's life (start, report, cancel, destroy)
 * and sending; ai_request.c: building the request (the rendered model,
 * messages and context, the base URL, the key, the body) once per
 * attempt; ai_pace.c: pacing (holds per base URL) and the parked
 * attempts' timer; ai_reply.c: the reply (streamed or not), its failures
 * and the result's extension; ai_util.c: the pure parsers.
 */
#ifndef DAGRUN_AI_INT_H
#define DAGRUN_AI_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "exec/ai.h"

#define RAW_KEEP ((size_t)1 << 20)   /* body kept while streaming (errors) */

enum park { PARK_NONE, PARK_FAILED, PARK_PACED };

/* The hold of one base URL: no request before not_before (loop ms). */
struct pace {
	char *base;
	uint64_t not_before;
	struct pace *next;
};

/* What is kept of one task from its first attempt (see above). */
struct ai_task {
	const struct dr_text *prompt; /* &ai->prompt, or &file */
	char *data;                   /* the promptFile's contents, or NULL */
	char *path;                   /* ... the file, as opened */
	struct dr_text file;          /* over data, from line 1 column 1 */
	bool append_context;          /* no template of the task uses it */
};

/* The ai_tasks of one workflow, by task index (made on its first attempt). */
struct ai_tasks {
	const struct dagrun_workflow *wf;
	struct ai_task **by_task;     /* n entries; NULL: not yet */
	uint32_t n;                   /* wf->n_tasks (wf may be gone at the end) */
	struct ai_tasks *next;
};

struct ax_attempt;

struct ai_executor {
	struct executor base;
	uv_loop_t *loop;
	struct http_client *client;
	bool own_client;
	char *const *environ;
	uv_timer_t tick;
	struct ax_attempt *parked;
	struct pace *paces;
	struct ai_tasks *tasks;
};

/* The result's extension: the HTTP exchange (once there was a response)
 * then the request and reply (dagrun_ext_ai). */
struct ai_ext {
	struct exec_ext x;
	struct dagrun_ext_http http;
	struct dagrun_ext_ai ai;
	bool has_http;
	char *model, *finish_reason;    /* masked */
	char sha[65];
};

struct ax_attempt {
	struct ai_executor *ax;
	struct ai_ext *ext;              /* = res.ext, owned by res */
	struct exec_attempt *a;
	struct ax_attempt *next;         /* on ax->parked */
	uint8_t park;                    /* enum park */
	bool cancelled, stream, json_mode;
	struct http_xfer *xfer;          /* while sending */
	uint64_t started;                /* loop ms */
	uint64_t timeout_ms;             /* the attempt's; 0: none */
	char *base;                      /* the base URL, the pacing key */
	char *url;
	char *body;
	size_t body_len;
	char *key;                       /* the API key, or NULL; wiped */
	char *lines[4];                  /* header lines; lines[n-1] may hold the key */
	size_t n_lines;
	struct ai_stream sse;
	struct buf raw;                  /* streaming: the body's start */
	struct exec_result res;
};

/* The rendered context of one attempt. */
struct rctx {
	struct expr_kv *kv;
	size_t n;
	uint64_t cut;
};

/* ---- ai.c ------------------------------------------------------------------- */

/* Records a failure of class c on st (the message is formatted; on OOM the
 * result still fails, with a NULL message). */
void ax_fail(struct ax_attempt *st, enum dr_error_class c, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* msg with every occurrence of key replaced by "***" (malloc'd), or NULL. */
char *ax_scrub(const char *msg, const char *key);

/* The loop's time, updated. */
uint64_t ax_now_ms(uv_loop_t *loop);

/* Ends st: its result to on_done (masked of the key), then frees it. */
void ax_report(struct ax_attempt *st);

/* Sends st's request. Returns 0 (sent), -ETIME (its timeout ended while
 * it waited), -EINVAL (the client refused it) or -ENOMEM; when not sent,
 * st is untouched and the caller reports (ax_send_failed()). */
int ax_send(struct ax_attempt *st, uint64_t now);
void ax_send_failed(struct ax_attempt *st, int r);

/* ---- ai_request.c ------------------------------------------------------------- */

/* Builds everything the request needs. Returns 0, -ENOMEM, or -EINVAL with
 * st->res failed (permanent). */
int ax_build(struct ax_attempt *st, const struct dr_ai *ai);

/* ---- ai_pace.c ---------------------------------------------------------------- */

/* The loop time before which no request may go to base (0: none). */
uint64_t ax_pace_get(const struct ai_executor *ax, const char *base);

/* Holds requests to base until `until` (loop ms). */
void ax_pace_set(struct ai_executor *ax, const char *base, uint64_t until, uint64_t now);

/* Arms ax->tick for the earliest wake time of the parked attempts. */
void ax_rearm(struct ai_executor *ax);

/* Parks st (failed before any request, or paced) until ax->tick. */
void ax_park(struct ax_attempt *st, enum park how);

/* ---- ai_reply.c --------------------------------------------------------------- */

/* The result's extension of an attempt with no reply yet; NULL on OOM. */
struct ai_ext *ax_ext_new(void);

/* The client's callbacks of a request: body bytes (streamed replies),
 * deltas of a stream, the end of the transfer. */
int ax_on_data(void *ud, const char *data, size_t len);
void ax_on_delta(void *ud, const char *text, size_t len);
void ax_on_response(void *ud, struct http_response *resp);

#endif
