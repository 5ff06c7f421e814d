/* http.h: HTTP for dagrun, on the engine's libuv loop.
 *
 * Two layers:
 *  - struct http_client: libcurl's multi-socket interface driven by a
 *    uv_loop_t (one uv_poll_t per socket curl asks about, one uv_timer_t for
 *    curl's timeout), with a global in-flight cap whose overflow waits in a
 *    FIFO, and per-host / total connection caps. No thread per request and
 *    nothing that blocks the loop (names are resolved by curl's own threaded
 *    resolver, cached per client). The AI executor reuses it.
 *  - the executor of `api` and `webhook` tasks (http.c), built on it.
 *
 * Completion is always reported from the loop, never inside a start call.
 *
 * Redirects (at most HTTP_MAX_REDIRECTS, http and https only) are followed
 * by curl, which drops only Authorization and Cookie when the origin
 * changes. A request with a private header or body follows them itself,
 * with curl's method rules (303, and 301/302 after a POST, become a GET
 * without a body), and sends private headers (and Authorization, Cookie)
 * only to the origin of the first URL.
 *
 * libcurl's global state: every constructor here calls curl_global_init()
 * once per process through pthread_once, so any thread may create clients.
 * dagrun never calls curl_global_cleanup(); a program that wants a clean
 * exit (tests under LeakSanitizer) may call it once every client is freed.
 */
#ifndef DAGRUN_HTTP_H
#define DAGRUN_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <jansson.h>
#include <uv.h>

#include "exec/executor.h"

/* The specs of the two kinds the executor of http.c runs (kinds/api.c and
 * kinds/webhook.c fill them), told apart by the attempt's variant. */
enum { HTTP_VARIANT_API = 0, HTTP_VARIANT_WEBHOOK = 1 };

struct dr_api {
	struct dr_text url, method;    /* method .s NULL: GET */
	struct dr_kvlist headers;
	const struct dr_value *body;   /* NULL when none */
	uint16_t *expect;              /* NULL: any 2xx */
	uint32_t n_expect;
	uint64_t connect_timeout_ms;   /* 0: default */
	uint64_t max_response_bytes;   /* 0: default */
	bool insecure;                 /* TLS verification off (warned) */
};

struct dr_webhook {
	struct dr_text url, event, secret;
	struct dr_kvlist headers;
	const struct dr_value *payload; /* NULL: a run summary */
};

/* Where an HTTP attempt spent its time, in microseconds (curl's *_TIME_T).
 * dns..total count from the start of the transfer and are cumulative, as
 * curl reports them (connect includes dns); a phase that did not happen
 * (no TLS, a reused connection) is 0. queue is the time spent waiting for
 * a slot in the executor's FIFO before the transfer started. */
struct exec_http_timing {
	uint64_t queue_us;
	uint64_t dns_us, connect_us, tls_us, first_byte_us, total_us;
	uint32_t redirects;
};

/* Defaults and caps (see README "api tasks"). */
#define HTTP_DEFAULT_IN_FLIGHT 256u            /* transfers at once, per client */
#define HTTP_DEFAULT_HOST_CONNECTIONS 256u     /* connections per host:port */
#define HTTP_DEFAULT_TIMEOUT_MS (5ull * 60 * 1000)     /* an attempt, when no timeout */
#define HTTP_DEFAULT_CONNECT_TIMEOUT_MS (10ull * 1000)
#define HTTP_DEFAULT_MAX_RESPONSE ((uint64_t)10 << 20) /* 10 MiB of body */
#define HTTP_MAX_REDIRECTS 5
#define HTTP_MAX_REQUEST_BODY ((size_t)64 << 20)       /* a rendered body */
#define HTTP_MAX_HEADER_BYTES ((size_t)1 << 20)        /* response headers kept */
#define HTTP_RETRY_AFTER_MAX_MS (24ull * 3600 * 1000)  /* parsed values are capped */

struct http_limits {
	uint32_t max_in_flight;         /* 0: HTTP_DEFAULT_IN_FLIGHT */
	uint32_t max_host_connections;  /* 0: HTTP_DEFAULT_HOST_CONNECTIONS */
	uint32_t max_total_connections; /* 0: max_in_flight */
};

struct http_client;
struct http_xfer;

/* What a transfer ended with. Owned by the client; valid during the done
 * callback only. The callee may take body (move the struct buf and reset
 * it) and headers (take the reference and set the field to NULL). */
struct http_response {
	int status;                   /* of the last response; 0 when none */
	json_t *headers;              /* the last response's headers: lower-cased
				       * names, repeated ones joined with ", " */
	struct buf body;              /* up to max_response_bytes (unless discarded) */
	uint64_t body_bytes;          /* bytes of body received */
	bool too_large;               /* aborted: body above max_response_bytes */
	bool headers_too_large;       /* aborted: headers above HTTP_MAX_HEADER_BYTES */
	bool cancelled;               /* http_request_cancel() */
	bool timed_out;               /* the request's timeout (FIFO wait included) */
	bool aborted;                 /* the data callback asked to stop */
	bool redirect_refused;        /* a redirect was not followed: it would
				       * have resent a private body to another
				       * origin (the response is the 3xx) */
	int curl_code;                /* CURLcode; 0 when the transfer completed */
	int err;                      /* -errno of a local failure (ENOMEM), or 0 */
	char error[256];              /* curl's message, or "" */
	struct exec_http_timing timing;
	uint64_t start_ms, end_ms;    /* wall clock; start: when queued */
	uint64_t duration_ms;         /* monotonic, FIFO wait included */
};

/* Body bytes as they arrive (after the cap check). Returns 0, or < 0 to
 * abort the transfer (the response then says aborted). */
typedef int (*http_data_fn)(void *ud, const char *data, size_t len);
/* Called once per started request, from the loop. */
typedef void (*http_done_fn)(void *ud, struct http_response *r);

struct http_request {
	const char *method;            /* NULL: GET; HEAD never reads a body */
	const char *url;               /* http:// or https:// only */
	const char *const *headers;    /* "Name: value" lines (no CR/LF) */
	size_t n_headers;
	const bool *private_headers;   /* per header, or NULL: true when it holds
				        * a secret; never sent to another origin
				        * (scheme, host, port) on a redirect */
	bool private_body;             /* the body holds a secret: a redirect that
				        * would resend it to another origin is
				        * not followed (redirect_refused) */
	const char *body;              /* NULL: no body */
	size_t body_len;
	uint64_t timeout_ms;           /* whole request, FIFO wait included; 0: default */
	uint64_t connect_timeout_ms;   /* 0: default */
	uint64_t max_response_bytes;   /* 0: default */
	bool insecure;                 /* no TLS peer/host verification */
	bool discard_body;             /* only on_data sees the body */
	http_data_fn on_data;          /* may be NULL */
	http_done_fn on_done;          /* required */
	void *ud;
};

/* A client on loop. lim may be NULL (defaults). Returns 0 and *out, or
 * -ENOMEM / -EIO (curl could not be initialised). Free with
 * http_client_free(). */
int http_client_new(uv_loop_t *loop, const struct http_limits *lim,
		    struct http_client **out);

/* Cancels what is still queued or running (their done callbacks are NOT
 * called), closes the client's handles and frees it once they are closed:
 * run the loop afterwards. Accepts NULL. */
void http_client_free(struct http_client *c);

/* Starts rq (everything is copied: rq and its strings may go when this
 * returns). rq->on_done is called exactly once, from the loop, never from
 * inside this call. Returns 0 and *out (valid until on_done returns), or
 * -ENOMEM / -EINVAL (nothing started, on_done never called). */
int http_request_start(struct http_client *c, const struct http_request *rq,
		       struct http_xfer **out);

/* Stops x; its on_done follows from the loop with cancelled set. Does
 * nothing once x has ended. */
void http_request_cancel(struct http_xfer *x);

/* Transfers queued or running. */
unsigned http_client_live(const struct http_client *c);

/* ---- helpers (http_util.c) ------------------------------------------------ */

/* The public part of an HTTP result's extension from a finished response:
 * its status and timings (type DAGRUN_EXT_HTTP, next NULL). */
void http_ext_fill(struct dagrun_ext_http *pub, const struct http_response *resp);

/* A result's extension for resp: pub as http_ext_fill() makes it, headers
 * taken from resp (resp->headers is then NULL). NULL on OOM (resp keeps
 * its headers). Freed by its free(). */
struct exec_ext *http_ext_new(struct http_response *resp);

/* The delay a response asks for, in ms: retry-after-ms (a number of
 * milliseconds) wins over Retry-After (seconds, or an HTTP date compared
 * with now). 0 when absent, unparsable or in the past; capped at
 * HTTP_RETRY_AFTER_MAX_MS. headers: as in struct http_response, or NULL. */
uint64_t http_retry_after_ms(const json_t *headers, time_t now);

/* A UUID-shaped id (version 8, RFC 9562 layout) from SHA-256 of domain and
 * the given parts, each NUL-separated: the same inputs give the same id.
 * NULL parts count as "". out: 37 bytes. Returns 0 or -EIO. */
int http_derive_id(const char *domain, const char *const *parts, size_t n, char out[37]);

/* Fills r->ok, r->error_class, r->error and r->timed_out from a finished
 * response: transport failures, then the status against expect (n == 0:
 * any 2xx), quoting the body with the secrets of red (may be NULL) masked
 * (exec_body_snippet). Returns 0 or -ENOMEM. */
int http_classify(const struct http_response *resp, const uint16_t *expect, uint32_t n,
		  const struct redactor *red,
		  struct exec_result *r);

/* True when the status is retried: 408, 409, 425, 429, 5xx. */
bool http_status_transient(int status);

/* ---- the api / webhook executor (http.c) ---------------------------------- */

/* Returns the run's summary for a webhook without a payload: a malloc'd
 * JSON text, or NULL for the default {"run", "workflow", "task"}. Called
 * inside start(), on the loop. */
typedef char *(*http_summary_fn)(void *ud, const struct exec_attempt *a);

/* The executor of api and webhook tasks (variants HTTP_VARIANT_*), with its own
 * client (lim may be NULL). NULL on failure. Destroy through its ops; run
 * the loop afterwards so its handles close. */
struct executor *http_executor_new(uv_loop_t *loop, const struct http_limits *lim);

/* Sets the webhook summary hook (fn NULL: the default). */
void http_executor_set_summary(struct executor *ex, http_summary_fn fn, void *ud);

/* The executor's client, to share its connections (e.g. the AI executor). */
struct http_client *http_executor_client(struct executor *ex);

#endif
