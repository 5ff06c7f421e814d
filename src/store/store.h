/* store.h: the state store, every run remembered, behind one small table.
 *
 * A store keeps runs (a snapshot of the definition they ran, their resolved
 * variables, their task ids), the status of each task, every attempt of
 * every task (times, process, outcome, resources, HTTP and AI details, the
 * task's result) and the attempts' output (log files). The engine records
 * into it as the run goes; the CLI queries it (runs, show, logs), resume
 * claims a run that did not finish, the scheduler asks it for history.
 *
 * The store knows nothing of the engine: it has its own record types and
 * depends only on util/. Backends sit behind struct store_ops (today
 * sqlite.c: one file DIR/state.db; later PostgreSQL, many engines on many
 * machines): callers never see SQL and never depend on which backend they
 * drive. What each operation promises is written next to it below; a
 * backend must keep every promise, and a caller may rely on nothing more.
 *
 * Secrets: the caller masks secrets (its redactor) in everything it hands
 * to the store (error messages, results, variables, the definition's
 * values, output chunks) BEFORE the call. The store never sees the
 * redactor, stores bytes as given, and cannot mask anything itself.
 *
 * What every backend promises (this one, and a PostgreSQL one shared by
 * many engines on many machines):
 *  - Order: the state a store object reaches is that of applying its
 *    records in call order. A batch is one transaction: a crash loses a
 *    tail of the records, never a record in the middle, never half of one.
 *  - Durability: once a barrier has called back with 0, every record made
 *    before it (on that store object) is committed: it survives the death
 *    of the process (kill -9) and, with `durable`, of the machine.
 *  - Ownership: a run is recorded into by one live store object at a time
 *    (its lease): begin() and claim() are atomic against each other across
 *    processes and machines; the owner renews the lease while it lives; a
 *    store that finds its lease taken over fails (-EBUSY) instead of
 *    writing on.
 *  - Readers: a query sees committed records only, as one consistent
 *    snapshot per call, and never waits for writers (nor they for it)
 *    beyond busy_ms.
 *  - Cost to the caller: a record operation is a copy under a lock; it
 *    never waits for the disk or the network.
 *
 * Threads. One store object may be used from any thread, but the record
 * operations of one run must come from one thread (their order is the
 * order of the calls). Record operations never wait for the disk: they
 * copy the record into a queue and return; a writer (a thread of the
 * store) commits queued records in batches (group commit). Callbacks
 * (barrier, on_error) run on the writer thread: keep them short, and call
 * nothing from them but record operations (never close()).
 *
 * Errors. Functions return 0 or a negative errno. Operations that answer at
 * once (open, begin, claim, queries, prune) also set *err (when err is not
 * NULL) to a malloc'd message naming the file or object at fault, which the
 * caller frees. Failures of the writer are sticky: the first one is kept,
 * passed to on_error once, returned by every later record operation and
 * given to every pending and later barrier; last_error() returns its
 * message. A run whose store has failed must stop: nothing after the
 * failure is recorded, and the store never runs on silently.
 *   -ENOSPC   disk or database full (SQLITE_FULL, a log file's ENOSPC)
 *   -EBUSY    the database stayed locked beyond the busy timeout; or, from
 *             claim() and begin(), the run is driven by a live owner; or
 *             our lease was taken over
 *   -EALREADY claim() of a run that ended
 *   -EROFS / -EACCES  the state directory or file cannot be written; a
 *             store opened read-only asked to record
 *   -ENOENT   no such state directory (read-only open), run or attempt
 *   -EPROTO   a file that is not a dagrun state database (foreign, corrupt,
 *             not a database at all); nothing in it is touched
 *   -EPROTONOSUPPORT  a state database written by a newer dagrun (schema
 *             version above ours); nothing in it is touched
 *   -EINVAL   a bad argument (unknown run, task index out of range, bad id)
 *   -EEXIST   begin() with a run id and run attempt already recorded
 *   -ENOMEM   out of memory
 *   -EIO      any other failure of the backend (message says which)
 */
#ifndef DAGRUN_STORE_H
#define DAGRUN_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/arena.h"

/* ---- values ------------------------------------------------------------- */

/* A task's status: the values of enum dagrun_status (include/dagrun.h), in
 * the same order, plus INTERRUPTED (its attempt was cut by the end of the
 * process that drove it; resume records it). The store treats them as
 * small integers: it counts them per run and returns them as given. */
enum store_task_status {
	STORE_TASK_PENDING, STORE_TASK_RUNNING, STORE_TASK_COMPLETED,
	STORE_TASK_FAILED, STORE_TASK_RETRYING, STORE_TASK_SKIPPED,
	STORE_TASK_CANCELLED, STORE_TASK_INTERRUPTED,
	STORE_TASK_NSTATUS
};

/* A run's status. INTERRUPTED is never recorded: queries report it for a
 * run recorded RUNNING whose owner (the lease) is gone. */
enum store_run_status {
	STORE_RUN_RUNNING, STORE_RUN_COMPLETED, STORE_RUN_FAILED,
	STORE_RUN_CANCELLED, STORE_RUN_INTERRUPTED,
	STORE_RUN_NSTATUS
};

/* Names for display ("running", ..., "interrupted"); "?" when out of range. */
const char *store_task_status_name(int status);
const char *store_run_status_name(int status);

/* Attempt flags. */
enum {
	STORE_ATTEMPT_OK = 1,          /* the attempt succeeded */
	STORE_ATTEMPT_TIMED_OUT = 2,
	STORE_ATTEMPT_CANCELLED = 4,
	STORE_ATTEMPT_INTERRUPTED = 8, /* ended by a crash of its driver */
	STORE_ATTEMPT_REPLAYED = 16,   /* not run: its result is a recording's
					* (a replay with live tasks) */
	STORE_ATTEMPT_CACHED = 32,     /* a cache hit: the result of an earlier
				        * attempt (README "Cache"); nothing ran */
	STORE_ATTEMPT_CACHE_MISS = 64, /* ran under a cache key (a miss) */
};

enum store_stream { STORE_STDOUT = 1, STORE_STDERR = 2 };

/* A task index meaning "every task" in queries. */
#define STORE_ALL_TASKS UINT32_MAX

/* Defaults. */
#define STORE_LOG_CAP_DEFAULT ((uint64_t)64 << 20)   /* per attempt and stream */
#define STORE_BATCH_MAX_DEFAULT 4096u                /* records per transaction */
#define STORE_BATCH_MS_DEFAULT 25u                   /* group commit window */
#define STORE_BUSY_MS_DEFAULT 10000u                 /* wait for a locked database */
#define STORE_HEARTBEAT_MS_DEFAULT 10000u            /* lease renewal period */
#define STORE_QUEUE_MAX_DEFAULT ((size_t)256 << 20)  /* output bytes waiting */
#define STORE_KEEP_DEFAULT 1000u                     /* retention: runs per workflow */
#define STORE_MAX_AGE_MS_DEFAULT (90ull * 24 * 3600 * 1000) /* retention: 90 days */

/* ---- run ids ------------------------------------------------------------ */

/* "YYYYMMDD-HHMMSS.mmm-rrrrrrrrrrrr" (util/runid.h, the engine's own): UTC
 * time to the millisecond, then 48 random bits (getrandom) in hex. Ids sort by start time; two processes
 * (or machines) making one in the same millisecond collide with odds 2^-48,
 * and begin() with a NULL id retries on a collision, so ids are unique in
 * a store. */
#define STORE_RUN_ID_SIZE 33   /* 32 characters and the NUL */

/* Writes a new id for a run starting at now_ms (ms since the epoch) into
 * out. Returns 0, or -errno when no random bytes could be read. */
int store_run_id_make(char out[STORE_RUN_ID_SIZE], uint64_t now_ms);

/* Whether s may be a run id: 1 to 64 characters of [A-Za-z0-9_.-], not
 * starting with '.' (it names a directory of logs). */
bool store_run_id_valid(const char *s);

/* ---- records (what the engine hands in) ---------------------------------- */

/* Every pointer in a record is borrowed for the duration of the call: the
 * store copies what it keeps. Strings are NUL-terminated unless a length is
 * given; NULL means absent. Times are ms since the epoch (wall clock). */

struct store_run_begin {
	const char *run_id;        /* NULL: the store makes one (store_run_id_make)
				    * and retries on a collision */
	uint32_t run_attempt;      /* 1 for a new run; a rerun: previous + 1 */
	const char *workflow;      /* the workflow's name: runs, history and
				    * retention are grouped by it */
	const char *path;          /* the workflow file, as given */
	const char *definition;    /* snapshot of the loaded definition (text) */
	size_t definition_len;
	const char *vars_json;     /* the resolved variables, a JSON object */
	const char *trigger_json;  /* trigger.body (a webhook's JSON body), or
				    * NULL: the run was not started by one */
	const char *const *task_ids; /* n_tasks ids, in the engine's index order */
	uint32_t n_tasks;
	uint64_t start_ms;
	const char *replay_of;     /* a replay with live tasks (README
				    * "Replay"): the id of the run replayed;
				    * NULL: any other run */
};

struct store_attempt_start {
	uint32_t task, attempt;    /* task index; attempt 1-based */
	uint64_t start_ms;
	uint64_t ready_ms;         /* when it could have started: its
				    * dependencies were done (attempt 1) or
				    * its retry delay was over (a later one);
				    * start_ms - ready_ms is the time it waited
				    * for a slot or a pool. 0: not known. A
				    * ready_ms after start_ms counts as start_ms */
	int64_t pid, pgid;         /* 0: no process (HTTP, AI) */
	uint64_t pid_start;        /* the process's start time (clock ticks
				    * since boot, /proc/PID/stat field 22), to
				    * tell it from a later process with its pid */
};

struct store_task_status_rec;

struct store_attempt_end {
	uint32_t task, attempt;
	unsigned flags;            /* STORE_ATTEMPT_* */
	uint64_t start_ms, end_ms, duration_ms; /* duration: monotonic */
	int exit_code;             /* -1 when none */
	int signal;                /* 0 when none */
	int error_class;           /* enum dagrun_error_class; 0 when ok */
	const char *error;         /* message (masked), or NULL */
	uint64_t cpu_user_ms, cpu_sys_ms;
	int64_t max_rss_kb;
	/* HTTP (api, webhook, ai); all 0 when no transfer ran: */
	int http_status;
	uint64_t http_queue_us, http_dns_us, http_connect_us, http_tls_us,
		 http_first_byte_us, http_total_us;
	uint32_t http_redirects;
	/* AI: */
	const char *model, *finish_reason; /* or NULL */
	const char *prompt_sha256; /* hex, or NULL */
	int64_t prompt_tokens, completion_tokens; /* -1 when not reported */
	uint64_t prompt_bytes, context_cut_bytes;
	/* What the attempt wrote, as the executor counted it: */
	uint64_t out_bytes, err_bytes;     /* all bytes seen */
	uint64_t out_dropped, err_dropped; /* of those, not kept in the result */
	/* The task's result as JSON ({"output":..., "json":..., "outputs":...},
	 * masked), so that a resumed or rerun run can render downstream
	 * templates; NULL: none. */
	const char *result_json;
	size_t result_len;
	/* What replay needs (README "Replay"), masked; NULL: none. inputs:
	 * the attempt's rendered inputs, one canonical JSON object (the
	 * kind's inputs hook); io_results: what the attempt gave that is in
	 * no other field nor in the log files (outputs, response headers), a
	 * JSON object. */
	const char *inputs_json;
	const char *io_results_json;
	/* The cache (README "Cache"): an attempt that ran and succeeded under
	 * a cache key becomes the cache entry of (its run's workflow, task_id,
	 * cache_key), replacing one with that key; cache_parts: the key's
	 * components (JSON, masked) for explain. NULL: no entry. */
	const char *cache_key;
	const char *cache_parts;
	const char *cache_task_id;
	/* The task's status this end leads to (its final status, or
	 * retrying), or NULL. Committed in the same transaction as the end,
	 * never one without the other: a crash between them would leave an
	 * attempt that succeeded under a task still running, which resume
	 * would run again. status->task is a->task. */
	const struct store_task_status_rec *status;
};

/* A cache entry, and what a hit needs of the attempt it names (filled by
 * cache_result only). */
struct store_cache_entry {
	const char *task_id, *key, *parts;
	const char *run_id;         /* the run of the attempt */
	uint64_t run;               /* its store key */
	uint32_t task, attempt;     /* as stored there */
	uint64_t created_ms;        /* the attempt's end */
	int exit_code;
	int http_status;            /* 0: none */
	const char *model;
	int64_t prompt_tokens, completion_tokens;
	const char *result_json;    /* the flow's result, or NULL */
	const char *io_results_json;
	const char *inputs_json;
	bool has_result;            /* the fields above were read */
};

struct store_task_status_rec {
	uint32_t task;
	int status;                /* enum store_task_status */
	int error_class;           /* why it failed (dependency, ...), or 0 */
	const char *error;         /* message (masked), or NULL */
};

/* ---- query results -------------------------------------------------------- */

/* Everything a query returns lives in the arena the caller passes; the
 * caller frees it all at once with arena_free(). */

struct store_lease {
	const char *host;          /* NULL: nobody holds it */
	int64_t pid;
	uint64_t pid_start;
	uint64_t beat_ms;          /* last heartbeat */
	bool alive;                /* the owner is a live process (same host:
				    * pid with that start time exists; another
				    * host: heartbeat within 3 periods) */
};

struct store_run_info {
	uint64_t key;              /* the store's handle of this run attempt */
	const char *run_id;
	uint32_t run_attempt;
	const char *workflow, *path;
	int status;                /* enum store_run_status (INTERRUPTED
				    * computed as above) */
	uint64_t start_ms, end_ms; /* end 0 while running */
	uint32_t n_tasks;
	uint32_t counts[STORE_TASK_NSTATUS]; /* tasks by status, as committed */
	const char *error;         /* why the run ended, or NULL */
	struct store_lease lease;
	const char *replay_of;     /* as begun (store_run_begin), or NULL */
};

struct store_run_filter {
	const char *workflow;      /* NULL: every workflow */
	int status;                /* enum store_run_status, or -1: any */
	uint32_t limit;            /* 0: no limit */
};

struct store_task_info {
	uint32_t index;
	const char *id;
	int status;                /* enum store_task_status */
	int error_class;           /* of the task, else of its last attempt */
	const char *error;         /* likewise, or NULL */
	uint32_t attempts;         /* how many attempts were recorded */
	/* Of the last attempt (all 0 when none): */
	int exit_code, signal;
	unsigned flags;
	uint64_t start_ms, end_ms, duration_ms;
	/* A task kept from an earlier attempt of the run (a rerun): where its
	 * attempts are stored; 0 when they are its own. */
	uint64_t from_run;
	uint32_t from_task;
};

struct store_attempt_info {
	uint32_t task;             /* index in the run asked about */
	uint64_t run;              /* where the attempt is stored (the run asked
				    * about, or the one a kept task came from) */
	uint32_t stored_task;      /* its task index there */
	uint32_t attempt;
	unsigned flags;
	uint64_t start_ms, end_ms, duration_ms;
	uint64_t ready_ms;         /* as recorded with its start; 0: not known */
	int64_t pid, pgid;
	uint64_t pid_start;
	int exit_code, signal, error_class;
	const char *error;
	uint64_t cpu_user_ms, cpu_sys_ms;
	int64_t max_rss_kb;
	int http_status;
	uint64_t http_queue_us, http_dns_us, http_connect_us, http_tls_us,
		 http_first_byte_us, http_total_us;
	uint32_t http_redirects;
	const char *model, *finish_reason, *prompt_sha256;
	int64_t prompt_tokens, completion_tokens;
	uint64_t prompt_bytes, context_cut_bytes;
	uint64_t out_bytes, err_bytes, out_dropped, err_dropped;
	uint64_t out_logged, err_logged; /* bytes in the log files */
	uint64_t out_log_cut, err_log_cut; /* bytes past the log cap (or the
				    * queue's cap), not in the files */
	bool ended;                /* an end was recorded */
	const char *result_json;   /* or NULL */
	const char *inputs_json;   /* as recorded (store_attempt_end), or NULL */
	const char *io_results_json;
};

struct store_log_files {
	const char *path[3];       /* [STORE_STDOUT], [STORE_STDERR]: the file,
				    * or NULL when the stream wrote nothing */
	uint64_t size[3];          /* on disk now (grows while running) */
};

struct store_definition {
	const char *run_id, *workflow, *path;
	uint32_t run_attempt;
	const char *definition;
	size_t definition_len;
	const char *vars_json;
	const char *trigger_json;  /* NULL: none (see store_run_begin) */
	const char *const *task_ids;
	uint32_t n_tasks;
};

struct store_prune_opts {
	const char *workflow;      /* NULL: every workflow */
	uint32_t keep;             /* keep the newest N runs of each workflow;
				    * 0: no limit by count */
	uint64_t older_than_ms;    /* remove runs that started more than this
				    * long before now_ms; 0: no limit by age */
	uint64_t now_ms;
	bool dry_run;              /* report, remove nothing */
};

struct store_prune_result {
	uint32_t runs;             /* run ids removed (every attempt of each) */
	uint64_t log_bytes;        /* bytes of log files removed */
	const char *const *run_ids; /* which, in the caller's arena */
};

struct store_stats {
	uint64_t queued_bytes;     /* records waiting for the writer, in bytes:
				    * a caller that produces records faster
				    * than the disk takes them may hold back new
				    * work while this is high (the store never
				    * blocks, and drops no record) */
	uint64_t records;          /* taken by the writer */
	uint64_t transactions;     /* committed */
	uint64_t busy_retries;
	uint64_t writer_cpu_ns;    /* CPU time of the writer thread */
	uint64_t log_bytes;        /* written to log files */
	uint64_t log_cut_bytes;    /* not written (caps) */
};

/* What `dagrun stats` and a report's history aggregate: the runs selected
 * by a filter, newest first. */
struct store_stats_filter {
	const char *workflow;      /* NULL: every workflow */
	const char *task;          /* task_stats: only this task id; NULL: all */
	uint64_t since_ms;         /* runs that started at or after; 0: any */
	uint64_t before_key;       /* runs recorded before this one (its key);
				    * 0: any */
	uint32_t max_runs;         /* only the newest N runs of those (in
				    * begin order, over every workflow
				    * selected); 0: no limit */
};

/* One workflow's runs. Percentiles are nearest-rank (the value at rank
 * ceil(p / 100 * n)): durations that happened, never interpolated. */
struct store_workflow_stats {
	const char *workflow;
	uint32_t runs;             /* every run selected */
	uint32_t by_status[STORE_RUN_NSTATUS]; /* INTERRUPTED computed as
				    * list_runs does (a running run whose
				    * owner is gone) */
	/* Wall time (end - start) of the runs that ran to their end
	 * (completed or failed; cancelled and interrupted ones are counted
	 * apart, not timed): */
	uint32_t timed;
	uint64_t p50_ms, p95_ms, max_ms; /* 0 when timed is 0 */
};

/* One task (by id) of one workflow, over the attempts that ended in the
 * runs selected. A task kept by a rerun counts once, in the run its
 * attempts are stored in. */
struct store_task_stats {
	const char *workflow, *task;
	uint32_t runs;             /* runs in which it has an attempt that ended */
	uint32_t ok_runs;          /* ... one of them succeeded */
	uint32_t failed_runs;      /* ... none succeeded, the last was not cut */
	uint32_t cut_runs;         /* ... none succeeded, one was cancelled or
				    * interrupted (counted apart, not failed) */
	uint64_t attempts;         /* attempts that ended, in those runs */
	/* Durations (monotonic) of its successful attempts: */
	uint32_t ok_attempts;
	uint64_t p50_ms, p95_ms, max_ms; /* 0 when ok_attempts is 0 */
	uint64_t cpu_ms;           /* user + system, summed over its attempts */
	int64_t max_rss_kb;        /* the largest of its attempts' */
	uint32_t ai_runs;          /* runs with an attempt that named a model */
	uint64_t prompt_tokens, completion_tokens; /* summed over those (a
				    * count the server did not report: 0) */
	uint32_t cache_runs;       /* runs whose attempt was a cache hit or ran
				    * under a cache key (README "Cache") */
	uint32_t cached_runs;      /* ... a cache hit */
};

/* ---- the table ------------------------------------------------------------ */

struct store;

struct store_opts {
	const char *dir;           /* the state directory (holds state.db and
				    * logs/); created, mode 0700, unless
				    * read_only */
	bool read_only;            /* queries only (dagrun runs/show/logs):
				    * creates nothing, records nothing */
	bool durable;              /* survive power loss: every commit and every
				    * log file synced (SQLite synchronous=FULL);
				    * default: survive a crash of dagrun
				    * (kill -9), not of the machine */
	uint64_t log_cap;          /* bytes per attempt and stream; 0: default */
	uint32_t batch_max, batch_ms, busy_ms, heartbeat_ms; /* 0: defaults */
	size_t queue_max;          /* output bytes waiting for the writer; more
				    * is counted as cut (never blocks); 0: default */
	uint64_t max_db_bytes;     /* cap on the database file; 0: none */
	const char *host;          /* this machine's name; NULL: gethostname */
	/* Called once, on the writer thread, when the store first fails. */
	void (*on_error)(void *ud, int code, const char *msg);
	void *ud;
};

/* Called once on the writer thread when every record made before the
 * barrier() call is committed (status 0), or the store failed (status < 0:
 * those records may not be committed). */
typedef void (*store_barrier_fn)(void *ud, int status);

struct store_ops {
	const char *name;

	/* Opens (creating when needed, unless read_only) the store in o->dir,
	 * upgrading an older schema in place (in one transaction; a
	 * concurrent opener waits, then finds it done). Refuses, touching
	 * nothing, a file that is not a dagrun store (-EPROTO) or is newer
	 * than this build (-EPROTONOSUPPORT). A read-only store needs the
	 * directory to be writable all the same when the database is in use
	 * (SQLite's WAL index), and refuses a schema older than this build's.
	 * Returns 0 and *out, or < 0 and *err. */
	int (*open)(const struct store_opts *o, struct store **out, char **err);

	/* Commits everything recorded (waiting for the disk), calls pending
	 * barriers, gives up the leases of runs still open (they show as
	 * interrupted and can be resumed), stops the writer and frees s.
	 * Returns 0 or the sticky error. Accepts NULL. */
	int (*close)(struct store *s);

	/* Records a new run attempt and makes this process its owner (the
	 * lease). Synchronous: when it returns 0, the run is committed (a run
	 * that cannot be recorded does not start) and *key is its handle for
	 * the records below. With b->run_id NULL, the id made is in *run_id
	 * (STORE_RUN_ID_SIZE bytes, may be NULL otherwise). -EEXIST: that id
	 * and run attempt exist; -EBUSY: a rerun (run_attempt > 1) of a run
	 * whose earlier attempt still has a live owner. */
	int (*begin)(struct store *s, const struct store_run_begin *b,
		     uint64_t *key, char *run_id, char **err);

	/* Takes over an unfinished run to resume it: atomically, if its owner
	 * is gone (or nobody holds it), this process becomes the owner and the
	 * previous lease is returned in *prev (strings in mem). A live owner:
	 * -EBUSY and a message naming it (host, pid, last heartbeat). A run
	 * that ended: -EALREADY. Synchronous, like begin. After it, records
	 * for the run are accepted as after begin. The writer renews the
	 * lease every heartbeat_ms until run_end or close. */
	int (*claim)(struct store *s, uint64_t key, struct store_lease *prev,
		     struct arena *mem, char **err);

	/* Records (asynchronous). Each returns 0 when the record is queued, or
	 * the sticky error, or -EINVAL for a run not begun/claimed here (or
	 * ended) or a task index out of range; never waits for the disk.
	 * Records of a run are committed in the order they were made; a
	 * record is durable once a barrier made after it has called back. */
	/* An attempt's start; the task's status becomes running with it (no
	 * task_status record is needed for that, and its reason is cleared). */
	int (*attempt_start)(struct store *s, uint64_t key,
			     const struct store_attempt_start *a);
	/* An attempt's end: inserted with its start as one row when both are
	 * in one batch. Output chunks for the attempt must come before it.
	 * With a->status, the task's status too, atomically (as if by
	 * task_status right after it, in the same transaction). */
	int (*attempt_end)(struct store *s, uint64_t key,
			   const struct store_attempt_end *a);
	int (*task_status)(struct store *s, uint64_t key,
			   const struct store_task_status_rec *t);
	/* A rerun keeps task `task` as it ended in run attempt from_key, task
	 * from_task (status and result; attempts are read from there). */
	int (*carry)(struct store *s, uint64_t key, uint32_t task, int status,
		     uint64_t from_key, uint32_t from_task);
	/* A chunk of an attempt's output (masked). Appended to the attempt's
	 * log file for that stream (created on its first byte) up to log_cap;
	 * bytes beyond it, or beyond the queue's cap, are counted as cut (the
	 * attempt's *_log_cut), never silently lost; once a stream is cut, the
	 * rest of it is too (a file is always a prefix). The sizes recorded
	 * with the attempt are those at its end: send chunks before it. */
	int (*output)(struct store *s, uint64_t key, uint32_t task,
		      uint32_t attempt, int stream, const void *data, size_t len);
	/* The run's end (status: enum store_run_status but INTERRUPTED; error:
	 * why, or NULL). Gives up the lease. No record of the run after it. */
	int (*run_end)(struct store *s, uint64_t key, int status,
		       uint64_t end_ms, const char *error);
	/* The write-ahead rule: cb is called when everything recorded before
	 * this call (in any run of s) is committed. A pending barrier makes the
	 * writer commit at once instead of waiting out batch_ms. Returns 0
	 * (cb will be called exactly once) or the sticky error (cb is not). */
	int (*barrier)(struct store *s, store_barrier_fn cb, void *ud);
	/* The sticky error: 0, or its code and *msg (malloc'd; may be NULL). */
	int (*last_error)(struct store *s, char **msg);
	void (*stats)(struct store *s, struct store_stats *st);

	/* Queries: synchronous, from any thread, see what is committed (a
	 * barrier first to see one's own records), never block the writer.
	 * Results live in mem. -ENOENT when the run does not exist. */

	/* Runs, newest first (by begin order), filtered. */
	int (*list_runs)(struct store *s, const struct store_run_filter *f,
			 struct arena *mem, struct store_run_info **out,
			 size_t *n, char **err);
	/* One run by reference: "last" (the newest run, of `workflow` when not
	 * NULL), an exact run id or a unique prefix of one; the newest attempt
	 * of that id. A prefix matching two ids: -EINVAL naming some. */
	int (*find_run)(struct store *s, const char *ref, const char *workflow,
			struct arena *mem, struct store_run_info *out, char **err);
	int (*get_run)(struct store *s, uint64_t key, struct arena *mem,
		       struct store_run_info *out, char **err);
	/* Every task of the run, in index order (pending ones too). */
	int (*tasks)(struct store *s, uint64_t key, struct arena *mem,
		     struct store_task_info **out, size_t *n, char **err);
	/* Attempts of one task (or STORE_ALL_TASKS), by task then attempt;
	 * a kept task's attempts are those of the run it came from. */
	int (*attempts)(struct store *s, uint64_t key, uint32_t task,
			struct arena *mem, struct store_attempt_info **out,
			size_t *n, char **err);
	/* The log files of attempt (run, task, attempt) as stored (use an
	 * attempt's run and stored_task). */
	int (*log_files)(struct store *s, uint64_t run, uint32_t task,
			 uint32_t attempt, struct arena *mem,
			 struct store_log_files *out, char **err);
	/* What the run ran: definition, variables, task ids (for resume). */
	int (*definition)(struct store *s, uint64_t key, struct arena *mem,
			  struct store_definition *out, char **err);
	/* History for scheduling: for each of the n ids (the caller's tasks),
	 * the median duration of its successful attempts in the newest
	 * max_runs runs of `workflow` (matched by task id), or 0 with no such
	 * attempt. Costs a read of those runs' attempts. */
	int (*history)(struct store *s, const char *workflow,
		       const char *const *ids, uint32_t n, uint32_t max_runs,
		       uint64_t *median_ms, char **err);
	/* Statistics of the runs f selects (f->task is ignored), one entry
	 * per workflow that has any, by workflow name. Aggregated by the
	 * backend (one pass over the runs, none over attempts). */
	int (*workflow_stats)(struct store *s, const struct store_stats_filter *f,
			      struct arena *mem, struct store_workflow_stats **out,
			      size_t *n, char **err);
	/* Statistics of the tasks of the runs f selects, matched by id across
	 * runs, one entry per (workflow, task id) that has an attempt that
	 * ended, by workflow then by p95 (highest first; tasks without a
	 * successful attempt last, by id). Aggregated by the backend: the
	 * caller receives one row per task, not the attempts. */
	int (*task_stats)(struct store *s, const struct store_stats_filter *f,
			  struct arena *mem, struct store_task_stats **out,
			  size_t *n, char **err);

	/* Retention. Removes whole run ids (every attempt, their tasks,
	 * attempts, results and log files), never a run whose owner is alive.
	 * Synchronous; result strings in mem. */
	int (*prune)(struct store *s, const struct store_prune_opts *o,
		     struct arena *mem, struct store_prune_result *res,
		     char **err);
	/* The cheap check for run start: 1 when `workflow` may hold more than
	 * o->keep runs or a run older than o->older_than_ms (then prune), 0
	 * when not; two index lookups. */
	int (*prune_due)(struct store *s, const struct store_prune_opts *o,
			 char **err);
	/* prune() on the writer thread, after everything recorded before:
	 * returns at once; a failure is sticky. */
	int (*prune_async)(struct store *s, const struct store_prune_opts *o);

	/* The cache (README "Cache"). cache_entries: every entry of
	 * `workflow` (of one task id when task is not NULL), newest first,
	 * with what a hit replays (has_result) as long as those bytes add
	 * up to at most `budget` (beyond: cache_result reads them); in mem. cache_clear: removes them
	 * (synchronous); *n: how many. */
	int (*cache_entries)(struct store *s, const char *workflow, const char *task,
			     uint64_t budget, struct arena *mem, struct store_cache_entry **out, size_t *n,
			     char **err);
	int (*cache_clear)(struct store *s, const char *workflow, const char *task,
			   uint64_t *n, char **err);
	/* What a hit replays of e's attempt (e->run, task, attempt): fills
	 * e's exit code, HTTP, AI and result fields (strings in mem). -ENOENT
	 * when the attempt is gone. */
	int (*cache_result)(struct store *s, struct store_cache_entry *e, struct arena *mem,
			    char **err);
};

/* Every store starts with its table. */
struct store {
	const struct store_ops *ops;
};

/* The SQLite backend: DIR/state.db and DIR/logs/. */
extern const struct store_ops store_sqlite_ops;

/* ---- shorthands: s->ops->op(s, ...) --------------------------------------- */

static inline int store_open(const struct store_ops *ops,
			     const struct store_opts *o, struct store **out,
			     char **err)
{
	return ops->open(o, out, err);
}

static inline int store_close(struct store *s)
{
	return s ? s->ops->close(s) : 0;
}

static inline int store_attempt_start(struct store *s, uint64_t key,
				      const struct store_attempt_start *a)
{
	return s->ops->attempt_start(s, key, a);
}

static inline int store_attempt_end(struct store *s, uint64_t key,
				    const struct store_attempt_end *a)
{
	return s->ops->attempt_end(s, key, a);
}

static inline int store_task_status(struct store *s, uint64_t key,
				    const struct store_task_status_rec *t)
{
	return s->ops->task_status(s, key, t);
}

static inline int store_output(struct store *s, uint64_t key, uint32_t task,
			       uint32_t attempt, int stream,
			       const void *data, size_t len)
{
	return s->ops->output(s, key, task, attempt, stream, data, len);
}

static inline int store_barrier(struct store *s, store_barrier_fn cb, void *ud)
{
	return s->ops->barrier(s, cb, ud);
}

#endif
