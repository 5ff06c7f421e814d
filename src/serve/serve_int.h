/* serve_int.h: what the files of the server share (see serve.h).
 *
 * Threads: libmicrohttpd's (one per connection, at most SERVE_MAX_CONN),
 * the poller (poll.c: reads the store, publishes events, reaps children),
 * the scheduler (schedule.c) and the main thread (waits for a signal).
 * Shared state and its lock:
 *  - the catalog of workflows (catalog.c): cat.mu; entries are reference
 *    counted, so a handler keeps one while it renders without the lock;
 *  - the read-only store connections (readers.c): rd.mu;
 *  - the event ring and its subscribers (events.c): hub.mu;
 *  - the child processes (runner.c): run.mu;
 *  - counters for /metrics (metrics.c): met.mu.
 * No lock is held while another is taken, except hub.mu inside none and
 * cat.mu inside none: each function takes one lock at a time.
 */
#ifndef DAGRUN_SERVE_INT_H
#define DAGRUN_SERVE_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include <jansson.h>

#include "dagrun.h"
#include "report/store_json.h"
#include "serve/serve.h"
#include "store/store.h"
#include "util/buf.h"

struct MHD_Connection;
struct MHD_Response;
struct serve;
struct cron;
struct tz;

/* ---- limits -------------------------------------------------------------- */

#define SERVE_MAX_CONN 256            /* connections at once (a thread each) */
#define SERVE_MAX_BODY (64u << 10)    /* an API request body */
#define SERVE_MAX_HOOK_BODY (1u << 20) /* a hook's body (DAGRUN_TRIGGER_MAX) */
#define SERVE_HOOK_TOLERANCE_S 300    /* a hook's timestamp, either way of now */
#define SERVE_HOOK_SEEN 4096          /* deliveries remembered against replays */
#define SERVE_READERS 6               /* read-only store connections */
#define SERVE_RING_EVENTS 65536u      /* events kept for SSE clients */
#define SERVE_RING_BYTES (64u << 20)
#define SERVE_CLIENT_LAG_BYTES (16u << 20) /* an SSE client further behind: dropped */
#define SERVE_HEARTBEAT_MS 15000      /* SSE comment line when idle */
#define SERVE_LOG_CHUNK (64u << 10)   /* log bytes read per attempt and poll */
#define SERVE_START_WAIT_MS 10000     /* POST .../runs waits for the record */
#define SERVE_QUEUE_MAX 10            /* overlap: queue, runs waiting per workflow */
#define SERVE_CATCHUP_MAX 100         /* catchup: missed times run at most */

/* ---- the log ------------------------------------------------------------- */

/* One line on the server's log, "2026-11-29T08:00:00Z dagrun serve: MSG".
 * Thread-safe; never blocks on anything but the log stream itself. */
void serve_log(struct serve *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- the catalog of workflows (catalog.c) ----------------------------------- */

struct wfent {
	int refs;                  /* under cat.mu */
	char *path;                /* DIR/FILE */
	char *file;                /* FILE */
	char *name;                /* the workflow's name, else FILE without .yaml */
	dagrun_workflow *wf;       /* NULL: invalid */
	json_t *errors;            /* [{line, column, severity, message}] */
	struct cron *cron;         /* its schedule, or NULL */
	struct tz *tz;             /* the schedule's zone */
	atomic_bool dup;           /* another file declares the same name (set
				    * by every scan, under cat.mu, while other
				    * threads may hold and read the entry) */
	dev_t dev;
	ino_t ino;
	off_t size;
	int64_t mtime_ns;
};

struct catalog {
	pthread_mutex_t mu;
	struct wfent **v;
	size_t n;
	uint64_t scanned_ms;
};

/* Rescans DIR when the last scan is older than max_age_ms (0: now): new,
 * changed and removed files. Returns 0 or -errno (DIR unreadable). */
int catalog_scan(struct serve *s, uint64_t max_age_ms);
/* The entry named `name` (a reference: catalog_put it), or NULL. */
struct wfent *catalog_get(struct serve *s, const char *name);
/* Every entry, sorted by name (references; free with catalog_put_all). */
struct wfent **catalog_all(struct serve *s, size_t *n);
/* Gives back a reference (e may be NULL); the last one frees the entry. */
void catalog_put(struct serve *s, struct wfent *e);
/* Gives back every reference of v, and frees v. */
void catalog_put_all(struct serve *s, struct wfent **v, size_t n);
/* Drops the table's references (at the stop, no handler left). */
void catalog_free(struct serve *s);

/* ---- read-only store connections (readers.c) --------------------------------- */

struct readers {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct store *idle[SERVE_READERS];
	size_t n_idle, n_open;
};

/* A read-only connection to the store, waiting for one to be free. NULL
 * with *err (malloc'd) when the store cannot be opened. */
struct store *readers_get(struct serve *s, char **err);
/* readers_get, or NULL after answering rq 503 (saying why). */
struct req;
struct store *readers_get_or_503(struct serve *s, struct req *rq);
/* Gives a connection back to the pool (st may be NULL). */
void readers_put(struct serve *s, struct store *st);
/* Closes the idle connections (at the stop, every one given back). */
void readers_free(struct serve *s);

/* ---- events (events.c) ------------------------------------------------------- */

enum ev_type { EV_RUN, EV_TASK, EV_ATTEMPT, EV_LOG, EV_SCHEDULE, EV_SERVER };

struct hub_ev {
	uint64_t seq;
	uint8_t type;              /* enum ev_type */
	char run[72];              /* the run id it is about, or "" */
	char *frame;               /* "id: N\nevent: T\ndata: JSON\n\n" */
	size_t len;
	uint64_t cum;              /* bytes published up to and with this one */
};

struct sub;

struct hub {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct hub_ev *ring;       /* seq % SERVE_RING_EVENTS */
	uint64_t first, last;      /* seqs held: [first, last]; empty: first > last */
	size_t bytes;
	uint64_t cum;              /* bytes ever published */
	struct sub *subs;
	uint32_t n_subs;
	uint64_t dropped;          /* clients dropped for lagging */
	uint64_t published;
	bool closing;
};

/* An empty ring. Returns 0 or -ENOMEM. */
int hub_init(struct hub *h);
/* Frees the ring (no client left: after the HTTP threads are joined). */
void hub_free(struct hub *h);
/* Publishes an event of `type` about run `run` (NULL: none) with data
 * `data` (stolen). Never blocks on a client: a client that the ring would
 * leave behind is dropped (and the log says so). */
void hub_publish(struct serve *s, int type, const char *run, json_t *data);
/* Wakes every SSE client so that they end (server stopping). */
void hub_close(struct hub *h);
/* The current last sequence number. */
uint64_t hub_seq(struct hub *h);
/* Whether a client follows run `run` (so its logs are worth reading). */
bool hub_wants_logs(struct hub *h, const char *run);

/* ---- child runs (runner.c) ----------------------------------------------------- */

enum child_kind { CHILD_RUN, CHILD_RERUN, CHILD_RESUME };

struct child {
	struct child *next;
	char id[72];
	int kind;
	pid_t pid;
	bool exited;
	int wstatus;
	uint64_t start_ms, end_ms;
	char *log;                 /* STATE/serve/children/ID.N.log */
	char *workflow;
	uint64_t scheduled_ms;     /* a scheduled run: the time it was due */
	char *trigger;             /* the trigger body's file, removed when the
				    * child has exited, or NULL */
};

struct runner {
	pthread_mutex_t mu;
	struct child *list;
	uint32_t n_live;
	uint64_t seq;
};

/* What to start. */
struct start_req {
	int kind;                  /* enum child_kind */
	const char *file;          /* CHILD_RUN: the workflow file */
	const char *workflow;      /* its name (for the log and metrics) */
	const char *run_id;        /* RERUN, RESUME: the run; RUN: NULL (made) */
	json_t *vars;              /* {"NAME": "value"}, or NULL */
	json_t *rerun;             /* RERUN: {"failed", "from", "only", ...} */
	uint64_t scheduled_ms;
	uint32_t prev_attempt;     /* RERUN: the run attempt before */
	const char *trigger;       /* RUN: the trigger body (JSON), or NULL */
	size_t trigger_len;
};

/* Spawns `dagrun run|rerun|resume` for rq in a session of its own. Returns
 * 0 with id (the run id) or a negative errno with *why (malloc'd). */
int runner_spawn(struct serve *s, const struct start_req *rq, char id[72], pid_t *pid,
		 char **why);
/* Removes the trigger bodies (STATE/serve/triggers) over a minute old: a
 * child reads its own within milliseconds of its start, so those were left
 * by a server that stopped before its children exited (poller, at start). */
void runner_sweep_triggers(struct serve *s);
/* Reaps exited children (WNOHANG); publishes an event for one that ended
 * before its run was recorded. */
void runner_reap(struct serve *s);
/* The child started for run id (newest), copied into *out; false if none. */
bool runner_find(struct serve *s, const char *id, struct child *out);
/* Whether child pid has exited; *wstatus then. */
bool runner_exited(struct serve *s, pid_t pid, int *wstatus);
/* Children still running. */
uint32_t runner_live(struct serve *s);
/* The log tail of a child (last n bytes, valid UTF-8), malloc'd or NULL. */
char *runner_log_tail(const char *path, size_t n);
/* Logs which runs are left running as the server stops. */
void runner_leave(struct serve *s);
/* Forgets the children (their processes are left alone: see runner.c). */
void runner_free(struct serve *s);
/* Sends sig to the process driving run ri (from its lease: only on
 * this host, only while that pid is the same process). Returns 0, -ESRCH
 * (nobody drives it), -EPERM, or -EREMOTE (another host). */
int runner_signal_owner(struct serve *s, const struct store_run_info *ri, int sig);

/* Starts rq and waits (up to SERVE_START_WAIT_MS) until the store holds the
 * run (or the child failed). Fills *status and returns the JSON answer. */
json_t *runner_start_and_wait(struct serve *s, const struct start_req *rq, unsigned *status);

/* ---- schedules (schedule.c) ----------------------------------------------- */

struct sched_state {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool stop;
	json_t *last;              /* {"workflow": last fired time (ms)} (persisted) */
	json_t *lag;               /* {"workflow": seconds} of the last fire */
	json_t *queued;            /* {"workflow": n} waiting (overlap: queue) */
	uint64_t real0_ms, clock0_ms;
	double speed;
};

/* The schedules' clock: ms since the epoch (sped up in tests). */
uint64_t sched_now_ms(struct serve *s);
/* The scheduler thread: fires the workflows' schedules until sch.stop. */
void *sched_thread(void *arg);
/* The next n fire times (ms) of e after from_ms; returns how many. */
size_t sched_next_times(const struct wfent *e, uint64_t from_ms, uint64_t *out, size_t n);
/* Copies for /metrics: lag and queue lengths by workflow (new references). */
void sched_snapshot(struct serve *s, json_t **lag, json_t **queued);

/* ---- metrics (metrics.c) ------------------------------------------------------- */

#define MET_BUCKETS 12
struct met_wf {
	char *workflow;
	uint64_t hist[MET_BUCKETS + 1];  /* task attempt durations */
	double sum_s;
	uint64_t count;
	uint64_t attempts[5];      /* by error class: none (ok), transient, ... */
	uint32_t running, ready;   /* gauges, refreshed by the poller */
};

struct metrics {
	pthread_mutex_t mu;
	struct met_wf *v;
	size_t n;
	uint64_t requests[6];      /* by status class 1xx..5xx, [0] other */
};

/* Counts an attempt that ended (poller). */
void met_attempt(struct serve *s, const char *workflow, uint64_t duration_ms, int error_class);
/* The running and ready gauges of every workflow at once (poller): those
 * of the n in g, 0 for the others. */
struct met_gauge {
	const char *workflow;
	uint32_t running, ready;
};
void met_gauges(struct serve *s, const struct met_gauge *g, size_t n);
/* Counts a request answered with status. */
void met_request(struct serve *s, unsigned status);
/* The /metrics text (malloc'd) or NULL. */
char *met_render(struct serve *s, size_t *len);
/* Frees the counters. */
void met_free(struct serve *s);

struct MHD_Daemon;
struct sockaddr;
/* Starts libmicrohttpd listening on sa (its own threads). Returns the
 * daemon, or NULL with *why (malloc'd). */
struct MHD_Daemon *http_start(struct serve *s, const struct sockaddr *sa, char **why);

/* ---- requests (http.c) and handlers (api_*.c, hooks.c, ui.c) ------------------------ */

struct req {
	struct MHD_Connection *conn;
	const char *method;
	char path[1024];
	char *seg[16];             /* path segments (percent-decoded by MHD) */
	size_t nseg;
	struct buf body;
	size_t body_cap;
	bool too_big;
	bool authed;
	uint64_t t0_ms;
	/* the reply */
	unsigned status;
	struct MHD_Response *resp;
};

/* A query argument (decoded), or NULL. */
const char *req_arg(struct req *rq, const char *name);
/* A request header, or NULL. */
const char *req_header(struct req *rq, const char *name);
/* The client's address as text ("127.0.0.1:43210"). */
void req_peer(struct req *rq, char *out, size_t n);
/* Replies: each takes ownership of what it is given. */
void reply_json(struct req *rq, unsigned status, json_t *j);
void reply_error(struct req *rq, unsigned status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void reply_data(struct req *rq, unsigned status, const char *ctype, char *data, size_t len);
/* Adds a header to the reply set (after a reply_* call). */
void reply_header(struct req *rq, const char *name, const char *value);
void reply_static(struct req *rq, const char *ctype, const char *data, size_t len);
/* The request body as JSON (an object; empty body: {}), or NULL after an
 * error reply. */
json_t *req_json(struct req *rq);

void api_workflows(struct serve *s, struct req *rq);
void api_workflow(struct serve *s, struct req *rq, const char *name);
void api_workflow_graph(struct serve *s, struct req *rq, const char *name);
void api_start(struct serve *s, struct req *rq, const char *name);
void api_runs(struct serve *s, struct req *rq);
void api_run(struct serve *s, struct req *rq, const char *id);
void api_run_document(struct serve *s, struct req *rq, const char *id);
void api_run_graph(struct serve *s, struct req *rq, const char *id);
void api_log(struct serve *s, struct req *rq, const char *id, const char *task);
void api_report(struct serve *s, struct req *rq, const char *id);
void api_action(struct serve *s, struct req *rq, const char *id, const char *action);
void api_stats(struct serve *s, struct req *rq);
void api_events(struct serve *s, struct req *rq);
void api_metrics(struct serve *s, struct req *rq);
void api_hook(struct serve *s, struct req *rq, const char *name);

/* ---- helpers (util.c) ----------------------------------------------------------- */

/* Finds run `ref` (id, prefix, last) in a reader; settles a dead owner's
 * running tasks (hist_run_settle). Replies 404/400/500 itself and returns
 * NULL on failure; else the reader to give back with readers_put. */
struct store *find_run(struct serve *s, struct req *rq, const char *ref,
		       struct arena *mem, struct store_run_info *ri);
/* The value of secret `name` as a run started by the server reads it: its
 * environment, else its --secrets-file. malloc'd (wipe it: explicit_bzero),
 * or NULL when unknown or the file is refused (*why, malloc'd, then says
 * why; it never holds a value). */
char *serve_secret(struct serve *s, const char *name, char **why);
/* Whether name is a safe workflow or task reference in a URL. */
bool serve_name_ok(const char *name);
/* mkdir -p STATE/serve/SUB (0700). Returns the path (malloc'd) or NULL. */
char *serve_subdir(struct serve *s, const char *sub);

/* ---- JSON of the store's records (json.c) ------------------------------------ */

/* Strings, times and runs as `dagrun runs|show --format json` write them:
 * report/store_json.h (one implementation for the CLI and the server). */
static inline json_t *jstr(const char *s)
{
	return store_json_str(s);
}
static inline json_t *serve_json_time(uint64_t ms)
{
	return store_json_time(ms);
}
static inline void serve_run_settle(struct store_run_info *r)
{
	store_run_settle(r);
}
static inline json_t *serve_json_run(const struct store_run_info *r)
{
	return store_json_run(r);
}
/* One attempt; dead: its run's dagrun died (an unended attempt is
 * interrupted). NULL on OOM. */
json_t *serve_json_attempt(const struct store_attempt_info *a, bool dead);
/* {"run", "tasks": [{id, index, status, errorClass, error, attempts}]}:
 * t and att as the store's tasks and attempts queries return them. NULL
 * on OOM. */
json_t *serve_json_show(const struct store_run_info *ri, const struct store_task_info *t,
			size_t nt, const struct store_attempt_info *att, size_t na);

/* ---- the server ---------------------------------------------------------------- */

/* Hook deliveries accepted within the timestamp tolerance (hooks.c): a
 * ring of SHA-256(workflow, timestamp, body), each until its timestamp
 * turns stale, so that a captured request cannot start a second run. */
struct hook_seen {
	pthread_mutex_t mu;
	struct {
		unsigned char d[32];
		time_t until;
	} v[SERVE_HOOK_SEEN];
	size_t next;               /* the slot written next (the oldest) */
};

struct serve {
	struct serve_opts o;
	char *dir, *state, *exe;   /* absolute */
	char host[256];            /* gethostname(), to tell our leases */
	pthread_mutex_t log_mu;
	struct catalog cat;
	struct readers rd;
	struct hub hub;
	struct runner run;
	struct sched_state sch;
	struct metrics met;
	struct hook_seen seen;
	atomic_bool stop;
	unsigned poll_ms;
};

/* The poller thread (poll.c). */
void *poll_thread(void *arg);

#endif
