/* serve.h: `dagrun serve`, the web UI, REST API, schedules, incoming
 * webhooks and metrics over the state store (docs/api.md); what is built
 * today: the REST API, Server-Sent Events, metrics and schedules.
 *
 * The server is libmicrohttpd on threads of its own (one per connection,
 * capped), a poller thread that turns what the store records into events
 * (Server-Sent Events), a scheduler thread that starts runs at their cron
 * times, and `dagrun run` child processes, one per run, that record into
 * the shared store. The server never runs a task itself: a crashing task or
 * a huge run cannot take it down, and a restart of the server leaves runs
 * alone (they go on and are found again in the store).
 */
#ifndef DAGRUN_SERVE_H
#define DAGRUN_SERVE_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

struct serve_opts {
	const char *host;          /* an IP address to listen on ("127.0.0.1") */
	uint16_t port;             /* 0: any free port (printed) */
	const char *dir;           /* the workflows: DIR/ *.yaml, *.yml */
	const char *state;         /* the state directory */
	const char *token;         /* Bearer token, or NULL: no authentication
				    * (only on a loopback address) */
	const char *secrets_file;  /* given to every run; NULL: none */
	const char *exe;           /* the dagrun binary runs are started with */
	FILE *log;                 /* the server's log (one line per event) */
	FILE *ready;               /* "listening on http://HOST:PORT/" goes here */
	unsigned poll_ms;          /* store poll period; 0: 100 */
	double clock_speed;        /* the schedules' clock runs this many times
				    * faster than the wall clock from the
				    * server's start (tests); 0: 1 */
};

/* Runs the server until SIGINT or SIGTERM (or SIGHUP). Returns 0 after a
 * clean stop, or a negative errno after writing why to o->log. */
int serve_main(const struct serve_opts *o);

#endif
