/* dagrun.h: the public interface of libdagrun, a DAG task execution engine.
 *
 * Everything else under src/ is private. Functions return 0 or a negative
 * errno-style code; details of workflow errors travel in a dagrun_diags list
 * owned by the caller. The library never prints (except to a FILE* the
 * caller passes), never exits and never aborts.
 */
#ifndef DAGRUN_H
#define DAGRUN_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Exported from the shared library: the library is compiled with
 * -fvisibility=hidden, and every declaration up to the matching pop below
 * is visible (libdagrun.so exports these dagrun_* names and nothing else). */
#if defined(__GNUC__)
#pragma GCC visibility push(default)
#endif

#define DAGRUN_VERSION "0.1.0"

const char *dagrun_version(void);

/* ---- diagnostics ------------------------------------------------------- */

enum dagrun_severity { DAGRUN_ERROR = 0, DAGRUN_WARNING = 1, DAGRUN_NOTE = 2 };

typedef struct dagrun_diag {
	const char *file;      /* may be NULL */
	unsigned line, column; /* 1-based; 0 when unknown */
	int severity;          /* enum dagrun_severity */
	const char *message;
} dagrun_diag;

typedef struct dagrun_diags dagrun_diags;

/* A new empty list keeping at most max entries (0: the default, 50).
 * Returns NULL on OOM. Free with dagrun_diags_free(). */
dagrun_diags *dagrun_diags_new(size_t max);
size_t dagrun_diags_count(const dagrun_diags *d);
/* Errors added (including those past the cap, which are not stored). */
size_t dagrun_diags_errors(const dagrun_diags *d);
const dagrun_diag *dagrun_diags_get(const dagrun_diags *d, size_t i);
/* Prints every entry as `FILE:LINE:COL: error: MESSAGE`, then the source
 * line and a caret (read from the file), then a count of dropped entries.
 * color: 0 or 1. Returns 0 or -errno from writing. */
int dagrun_diags_print(const dagrun_diags *d, FILE *out, int color);
void dagrun_diags_clear(dagrun_diags *d);
void dagrun_diags_free(dagrun_diags *d);

/* ---- workflows --------------------------------------------------------- */

typedef struct dagrun_workflow dagrun_workflow;

/* Limits on what a workflow file may hold (documented in docs/workflow.md). */
#define DAGRUN_MAX_FILE_BYTES   ((size_t)512 << 20) /* 512 MiB */
#define DAGRUN_MAX_TASKS        4000000u
#define DAGRUN_MAX_DEPTH        64u                 /* YAML nesting */
#define DAGRUN_MAX_STRING_BYTES ((size_t)1 << 20)   /* one scalar: 1 MiB */
#define DAGRUN_MAX_DEPS         100000u             /* per task */
#define DAGRUN_MAX_NESTING      8u                  /* sub-workflows in sub-workflows */

/* Loads and validates the workflow at path (YAML or JSON), including the
 * dependency graph (cycles, unknown ids). On success *out owns the workflow
 * (free with dagrun_workflow_free) and returns 0; warnings may still be
 * added to diags. On invalid input returns -EINVAL with the errors in diags;
 * on I/O failure -errno (also described in diags). */
int dagrun_workflow_load(const char *path, dagrun_workflow **out,
			 dagrun_diags *diags);

/* Same from a memory buffer; name is used in diagnostics (and for relative
 * paths: the workflow's directory is that of name). */
int dagrun_workflow_load_buffer(const char *name, const char *data, size_t len,
				dagrun_workflow **out, dagrun_diags *diags);

void dagrun_workflow_free(dagrun_workflow *wf);

const char *dagrun_workflow_name(const dagrun_workflow *wf);
size_t dagrun_workflow_task_count(const dagrun_workflow *wf);

enum dagrun_graph_format {
	DAGRUN_GRAPH_DOT,
	DAGRUN_GRAPH_MERMAID,
	DAGRUN_GRAPH_JSON,
	DAGRUN_GRAPH_SVG,        /* laid out by Graphviz (libgvc) in the process */
};

/* Writes the dependency graph of wf to out. Returns 0 or -errno. SVG:
 * -E2BIG over 5,000 tasks or 20,000 dependencies (Graphviz's layout would
 * take minutes), -EIO when Graphviz fails; it uses Graphviz's process-wide
 * state under a lock of the library's, so another user of libgvc or
 * libcgraph in the process must not run at the same time. */
int dagrun_graph_write(const dagrun_workflow *wf, enum dagrun_graph_format fmt,
		       FILE *out);


/* ---- running ----------------------------------------------------------- */

/* Task statuses, as docs/workflow.md names them. */
enum dagrun_status {
	DAGRUN_PENDING, DAGRUN_RUNNING, DAGRUN_COMPLETED, DAGRUN_FAILED,
	DAGRUN_RETRYING, DAGRUN_SKIPPED, DAGRUN_CANCELLED,
};

/* Error classes of a failed attempt or task. */
enum dagrun_error_class {
	DAGRUN_CLASS_NONE, DAGRUN_CLASS_TRANSIENT, DAGRUN_CLASS_PERMANENT,
	DAGRUN_CLASS_DEPENDENCY, DAGRUN_CLASS_RESOURCE,
};

const char *dagrun_status_name(int status);
const char *dagrun_class_name(int error_class);

enum dagrun_event_type {
	DAGRUN_EV_RUN_START,     /* total tasks in `count` */
	DAGRUN_EV_TASK_STATUS,   /* status changed: status, old_status, error */
	DAGRUN_EV_ATTEMPT_START, /* attempt began */
	DAGRUN_EV_ATTEMPT_END,   /* attempt ended: exit, class, times, CPU, RSS */
	DAGRUN_EV_RETRY,         /* a retry is scheduled after delay_ms */
	DAGRUN_EV_OUTPUT,        /* a chunk of stdout (stream 1) or stderr (2) */
	DAGRUN_EV_LOG,           /* an engine message: level, message */
	DAGRUN_EV_RUN_END,       /* the run is over: status is the outcome */
};

enum dagrun_level { DAGRUN_DEBUG, DAGRUN_INFO, DAGRUN_WARN, DAGRUN_ERR };

/* One event. Pointers are valid during the callback only. */
typedef struct dagrun_event {
	int type;                /* enum dagrun_event_type */
	int level;               /* enum dagrun_level */
	uint64_t ts_ms;          /* wall clock, ms since the epoch */
	const char *run_id;
	const char *task;        /* task id, NULL for run events */
	uint32_t task_index;
	uint32_t attempt;        /* 1-based, 0 when not about an attempt */
	int status, old_status;  /* enum dagrun_status */
	int error_class;         /* enum dagrun_error_class */
	const char *error;       /* message, or NULL */
	int exit_code;           /* -1 when none */
	int signal;              /* 0 when none; RUN_END: the signal that
				  * stopped the run (SIGUSR1: a cancel) */
	int timed_out;
	uint64_t delay_ms;       /* RETRY */
	uint64_t start_ms, end_ms, duration_ms; /* ATTEMPT_END */
	uint64_t cpu_user_ms, cpu_sys_ms;
	long max_rss_kb;
	int stream;              /* OUTPUT: 1 stdout, 2 stderr */
	const char *data;        /* OUTPUT bytes (not NUL-terminated) */
	size_t len;
	const char *message;     /* LOG */
	uint64_t count;          /* RUN_START: tasks; RUN_END: wall ms */
	/* ATTEMPT_END: what the attempt wrote (stdout, or the response body of
	 * HTTP and AI tasks; and stderr) and how much of it the task's result
	 * does not keep because of the 1 MiB per-attempt cap (0: all kept). */
	uint64_t out_bytes, err_bytes;
	uint64_t out_dropped, err_dropped;
	/* ATTEMPT_END: what the task's kind adds (HTTP status and timings, an
	 * AI reply's usage, a sub-run's counts): a chain of tagged extensions
	 * (see below), or NULL. */
	const struct dagrun_ext *ext;
	/* 0: a task of the workflow run; n > 0: a task of a sub-workflow n
	 * levels down (a `workflow` task's), whose event is forwarded: `task`
	 * is then the path of ids from the top, "PARENT.CHILD", and
	 * task_index an index no task of the run has (unique within the run),
	 * and run events (RUN_START, RUN_END) of a sub-run are not forwarded. */
	uint32_t depth;
	/* ATTEMPT_START of a task that runs a process (command, script): the
	 * leader's pid, its process group (the same number: each attempt has
	 * a group of its own) and its start time in clock ticks since boot
	 * (/proc/PID/stat field 22), which tells it from a later process
	 * with that pid; all 0 for other tasks. */
	int64_t pid, pgid;
	uint64_t pid_start;
	/* ATTEMPT_START: wall clock (ms since the epoch) when the attempt
	 * became ready: its dependencies were final (attempt 1) or its retry
	 * delay was over (a later one). ts_ms - ready_ms is the time it
	 * waited for a free slot or a pool; the time between the previous
	 * attempt's end and ready_ms, its retry delay. 0: not known. */
	uint64_t ready_ms;
} dagrun_event;

/* ---- extensions: what a task kind adds to ATTEMPT_END ------------------- */

/* Each extension starts with a dagrun_ext whose type says which struct it
 * is; extensions chain through next. A consumer reads the types it knows
 * and skips the others (a later version may add types and fields at the
 * end of a struct). Strings are masked as the event's are. Valid during
 * the callback only. */
enum dagrun_ext_type {
	DAGRUN_EXT_HTTP = 1,     /* dagrun_ext_http: api, webhook and ai tasks */
	DAGRUN_EXT_AI = 2,       /* dagrun_ext_ai: ai tasks */
	DAGRUN_EXT_WORKFLOW = 3, /* dagrun_ext_workflow: workflow tasks (sub-runs) */
	DAGRUN_EXT_IO = 4,       /* dagrun_ext_io: a recorded or replayed run's
				  * tasks (every kind with canonical inputs) */
	DAGRUN_EXT_CACHE = 5,    /* dagrun_ext_cache: tasks with `cache` set */
};

typedef struct dagrun_ext {
	int type;                       /* enum dagrun_ext_type */
	const struct dagrun_ext *next;  /* the next extension, or NULL */
} dagrun_ext;

/* The first extension of type `type` in the chain x, or NULL. */
const dagrun_ext *dagrun_ext_find(const dagrun_ext *x, int type);

/* An HTTP exchange: the last response's status and where the time went,
 * in microseconds from the start of the transfer, cumulative as curl
 * reports them (connect includes dns); a phase that did not happen is 0
 * (total 0: no transfer ran). queue: the wait for a slot before it. */
typedef struct dagrun_ext_http {
	dagrun_ext base;         /* DAGRUN_EXT_HTTP */
	int status;              /* 0 when no response */
	uint64_t queue_us, dns_us, connect_us, tls_us, first_byte_us, total_us;
	uint32_t redirects;
} dagrun_ext_http;

/* An AI request and its reply (its HTTP exchange follows in the chain). */
typedef struct dagrun_ext_ai {
	dagrun_ext base;         /* DAGRUN_EXT_AI */
	const char *model;       /* the model that answered, or NULL */
	int64_t prompt_tokens, completion_tokens; /* -1 when not reported */
	const char *finish_reason; /* or NULL */
	const char *prompt_sha256; /* hex SHA-256 of the user message sent, or
				    * NULL when none was */
	uint64_t prompt_bytes;   /* its size */
	uint64_t context_cut_bytes; /* context bytes cut by maxContextBytes */
} dagrun_ext_ai;

/* A sub-run: the workflow a `workflow` task ran and how its tasks ended
 * (counts of the child's own tasks, not of its sub-runs). */
typedef struct dagrun_ext_workflow {
	dagrun_ext base;         /* DAGRUN_EXT_WORKFLOW */
	const char *name;        /* the child workflow's name */
	const char *file;        /* its file, as loaded */
	uint64_t tasks;          /* main tasks of the child */
	uint64_t completed, failed, skipped, cancelled;
} dagrun_ext_workflow;

/* What replay needs of an attempt (README "Replay"), on the ATTEMPT_END of
 * a run that is recorded (run_opts.state_dir) or replayed
 * (run_opts.replay). inputs: the attempt's canonical inputs, one JSON
 * object ({"kind": ..., the rendered command, request or prompt}, keys
 * sorted, compact), or NULL when they could not be rendered; results: a
 * JSON object of what the attempt gave that the event does not carry
 * (outputs, response headers), or NULL. Both masked. */
typedef struct dagrun_ext_io {
	dagrun_ext base;         /* DAGRUN_EXT_IO */
	const char *inputs;
	const char *results;
	const char *inputs_error;/* why inputs is NULL, or NULL */
	int replayed;            /* 1: the attempt did not run, its result is
				  * the recording's (a replay) */
} dagrun_ext_io;

/* The cache's decision for an attempt of a task with `cache` (README
 * "Cache"), on its ATTEMPT_END. hit: nothing ran, the result is that of
 * run hit_run (the attempt ended `completed`); else the task ran. reason:
 * "hit (run R)", "miss: ..." or "not cached: ..." (why no key applies).
 * key: the hex SHA-256 of the key, or NULL; parts: its components (a JSON
 * object of name to short hash or value; never a secret's value), or
 * NULL. */
typedef struct dagrun_ext_cache {
	dagrun_ext base;         /* DAGRUN_EXT_CACHE */
	int hit;
	const char *reason;
	const char *key;
	const char *parts;
	const char *hit_run;     /* hit: the run whose result it is; or NULL */
} dagrun_ext_cache;

typedef void (*dagrun_observer_fn)(void *ud, const dagrun_event *ev);

typedef struct dagrun_engine dagrun_engine;

/* The library is a guest in its process. By default (process_flags 0) an
 * engine touches only what it created:
 *  - dagrun_engine_new(), dagrun_engine_plan() and dagrun_engine_free() of
 *    an engine that did not run start, wait for and signal nothing;
 *  - dagrun_engine_run() starts each task in its own session and process
 *    group (posix_spawn, signal mask and dispositions reset to the defaults
 *    in the child), waits only for those pids (waitid/wait4 on each, never
 *    waitpid(-1)), and signals only its tasks' process groups, sessions and
 *    the descendants of their leaders; it installs no signal handler;
 *  - each run forks one child process, its watchdog (`dagrun-watchdog`),
 *    which lives until the run ends (then it is reaped) and, if this
 *    process dies, SIGKILLs the run's tasks and every process whose
 *    environment holds DAGRUN_RUN_ID=<the run id> (README "If dagrun
 *    dies"); do not fork without exec during a run: a child holding the
 *    watchdog's pipe delays it;
 *  - the kernel sends this process a SIGCHLD whenever a task leader or the
 *    watchdog ends: a host's SIGCHLD handler runs for them, and must not
 *    reap children it did not start (waitpid(-1), wait(), SIGCHLD set to
 *    SIG_IGN or SA_NOCLDWAIT): a task reaped by someone else ends with no
 *    exit status (-1), and its process group may be reused while the
 *    engine still signals it;
 *  - also process-wide, and unavoidable: libcurl's global initialisation
 *    (curl_global_init, once, never undone), the environment read (tasks
 *    inherit it; TMPDIR, OPENAI_BASE_URL, API key variables), a private
 *    directory under $TMPDIR for the run, removed at its end.
 * A host stops a run with dagrun_engine_interrupt(). The flags below give
 * the run process-wide behaviour instead, for a program that owns its
 * process (the dagrun command line sets both). */
enum dagrun_process_flags {
	/* While dagrun_engine_run() runs, the process is a child subreaper (prctl PR_SET_CHILD_SUBREAPER): descendants of the
	 * tasks that leave their group and lose their parent are reparented to
	 * this process instead of to init, so that a timeout or an interruption
	 * finds and kills them. To that end the engine handles SIGCHLD (a libuv
	 * handler replaces the host's), reaps EVERY zombie child of the process
	 * that no engine started (the host's included), and at the end SIGKILLs
	 * every child of the process no engine started (the host's included),
	 * with its descendants. Afterwards the subreaper flag and the SIGCHLD
	 * disposition are put back as they were (the latter unless another
	 * libuv user holds SIGCHLD by then). */
	DAGRUN_PROC_SUBREAPER = 1,
	/* While dagrun_engine_run() runs, SIGINT, SIGTERM, SIGHUP and SIGUSR1
	 * are handled by the engine (libuv handlers replace the host's): the
	 * first stops the run as a soft dagrun_engine_interrupt() does, a
	 * second one kills every task at once; the run returns 128 + the first
	 * signal's number (SIGHUP stops it as SIGTERM does, but returns 129).
	 * SIGUSR1 is a cancel: the run stops the same way but is recorded
	 * `cancelled` (over: rerun, not resume, continues it) where the others
	 * leave it `interrupted` (resumable); `dagrun serve` cancels with it.
	 * The dispositions found are put back when the run ends (a signal then
	 * has its effect from before the run). */
	DAGRUN_PROC_SIGNALS = 2,
};

/* Run ids generated by the engine are `YYYYMMDD-HHMMSS.mmm-` then 12 hex
 * digits: the UTC start time to the millisecond and 48 random bits
 * (getrandom). They sort (as strings) by start time and are unique across
 * machines in practice; safe in file names, URLs and environment values. */
#define DAGRUN_RUN_ID_MAX 64    /* the longest run id a caller may give */

typedef struct dagrun_run_opts {
	unsigned max_parallel;   /* 0: the workflow's maxParallel, else CPUs */
	const char *run_id;      /* NULL: generated (see above); else 1 to
				  * DAGRUN_RUN_ID_MAX characters among A-Z a-z
				  * 0-9 . _ -, not starting with . or - */
	int fake;                /* use the no-op fake executor (benchmarks) */
	const char *const *vars; /* "NAME=VALUE" overrides of `variables`,
				  * NULL-terminated; each NAME must exist */
	const char *secrets_file;/* KEY=VALUE lines for secrets.KEY; must not
				  * be readable by group or others */
	unsigned process_flags;  /* enum dagrun_process_flags; 0: a guest */
	/* The state store (README "The state directory"). state_dir: where
	 * the run is recorded (DIR/state.db, DIR/logs/, created when missing);
	 * NULL: not recorded, and nothing below applies. A run that cannot be
	 * recorded does not start (dagrun_engine_run() fails, and
	 * dagrun_engine_error() says why, naming the file); a store that fails
	 * during the run stops it as an interruption does. */
	const char *state_dir;
	int durable;             /* survive power loss, not only a crash of
				  * this process: every commit synced */
	uint64_t log_cap;        /* bytes of each attempt's stdout, and of its
				  * stderr, kept in its log files; 0: 64 MiB */
	const char *definition;  /* the workflow's text as it was loaded,
				  * recorded as the run's snapshot (what resume
				  * and rerun run); NULL: wf's file is read
				  * when the run starts */
	size_t definition_len;
	/* Replay (README "Replay"): a recorded run, as the JSON document
	 * `dagrun export` writes. Every task then runs on the replay
	 * executor: its inputs are rendered as for a real attempt (and carried
	 * by DAGRUN_EXT_IO), its result is the recorded one; no process is
	 * started, no request sent, nothing is recorded (state_dir must be
	 * NULL; but see live below). A task with no recording fails with
	 * class "permanent" and the message "no recording". NULL: a real run. */
	const char *replay;
	size_t replay_len;
	/* With replay: the ids of the tasks that run for real (NULL-terminated;
	 * each must be a task of wf, else -EINVAL), on their kind's executor,
	 * with timeouts, signals and secrets as in any run; every other task
	 * is replayed as above, its templates seeing the live results. The
	 * run is then recorded as any run is (state_dir required: replayed
	 * tasks are recorded with their recorded results, their attempts
	 * flagged DAGRUN_EXT_IO.replayed), marked as a replay of the
	 * recording's run (its "run"."id"; store: replay_of). NULL: nothing
	 * live. */
	const char *const *live;
	/* `trigger.body` of the run's expressions: JSON text (the body of the
	 * incoming webhook that started it, README "Incoming webhooks"), at
	 * most DAGRUN_TRIGGER_MAX bytes, recorded with the run; NULL: null. */
	const char *trigger_json;
	/* The cache (README "Cache"): 1 runs every task (`--no-cache`): none
	 * is a hit, each says "miss: --no-cache", and what runs still writes
	 * its entry. Needs state_dir for anything to be cached at all. */
	int no_cache;
} dagrun_run_opts;

#define DAGRUN_TRIGGER_MAX (1u << 20)

/* A new engine for wf (which must outlive it). No process-wide effect: no
 * process is started, no handler installed. Returns 0, -ENOMEM, -EINVAL
 * for a bad --var, secrets file or run id, or -ENOTSUP when the workflow
 * has tasks of a kind this build has no executor for (the messages, naming
 * the tasks, go to diags). There is no dry-run option: a dry run is
 * dagrun_engine_plan() on an engine that never runs. */
int dagrun_engine_new(dagrun_engine **out, const dagrun_workflow *wf,
		      const dagrun_run_opts *opts, dagrun_diags *diags);

/* Registers an observer; every event goes to each, in registration order. */
int dagrun_engine_observe(dagrun_engine *e, dagrun_observer_fn fn, void *ud);

/* Runs the workflow to completion on its own libuv loop, in the calling
 * thread, once per engine (-EALREADY after). Process-wide effects: see
 * above, and the run's process_flags. Returns 0 when every task completed
 * or was skipped, 1 when one failed, 130 when stopped by
 * dagrun_engine_interrupt(), 128 + the signal when stopped by a signal
 * (DAGRUN_PROC_SIGNALS), -EINVAL for unknown process_flags, or a negative
 * errno on an internal error (nothing started when the watchdog could not
 * be). */
int dagrun_engine_run(dagrun_engine *e);

/* Asks the run of e to stop, as Ctrl-C does the dagrun command: soft (hard
 * 0): running tasks get SIGTERM (their whole tree), then SIGKILL after
 * their killGrace, and end `cancelled`; retries waiting are cancelled;
 * tasks not started stay pending; hooks do not run. hard: every running
 * task is SIGKILLed at once (also after a soft request). A soft request
 * after another does nothing more. Made before dagrun_engine_run(), the
 * run starts stopped: no task starts. After the run has ended, does
 * nothing. dagrun_engine_run() then returns 130.
 * Safe from any thread and from a signal handler (an atomic flag and
 * uv_async_send), for as long as e is not freed: e.g. a host's own SIGINT
 * handler calls dagrun_engine_interrupt(e, 0), its second one (e, 1).
 * Returns 0, or what uv_async_send returns. */
int dagrun_engine_interrupt(dagrun_engine *e, int hard);

/* The dry run: writes, one id per line, the order in which tasks would
 * start with one worker and every task succeeding (then `# onSuccess` and
 * `# onExit` with theirs); runs nothing. With a state directory, the order
 * is fed by history; a store that cannot be read for it (older, locked,
 * corrupt: it is opened read-only, never changed) makes a first line
 * `# history not used (...): REASON` and the plan goes on without it.
 * Returns 0 or -errno. */
int dagrun_engine_plan(dagrun_engine *e, FILE *out);

/* Why the last dagrun_engine_run() or dagrun_engine_plan() of e failed
 * when the reason is more than its return value says (a state store that
 * cannot be opened or failed: the message names the file), or NULL. Owned
 * by e. */
const char *dagrun_engine_error(const dagrun_engine *e);

/* Per-status task counts after a run; counts has DAGRUN_CANCELLED + 1 slots. */
void dagrun_engine_counts(const dagrun_engine *e, size_t *counts);

void dagrun_engine_free(dagrun_engine *e);

/* ---- observers shipped with the library ---------------------------------- */

typedef struct dagrun_console dagrun_console;

enum dagrun_console_flags {
	DAGRUN_CONSOLE_COLOR = 1,     /* ANSI colours */
	DAGRUN_CONSOLE_LIVE = 2,      /* a live status line (a terminal) */
	DAGRUN_CONSOLE_QUIET = 4,     /* only failures and the summary */
	DAGRUN_CONSOLE_VERBOSE = 8,   /* also task output */
};

/* How the observers below write: out is flushed, then its file descriptor
 * is written by a thread of the observer's own through a 4 MiB buffer, so an
 * event never waits for a slow reader; when the buffer is full, whole lines
 * are dropped, counted, and announced by a notice once the reader has caught
 * up. The last record (the summary, run.end) is never dropped: if there is
 * no room for it, it waits for the free. Do not write to out yourself until
 * the observer is freed: freeing writes what is left, waiting for the
 * reader (free the engine first, so that signals have their default effect
 * again while it waits); a write error such as EPIPE ends the wait and
 * discards the rest. A FILE without a descriptor (open_memstream) is
 * written directly. */

/* The human display: a live status line on a terminal, one line per state
 * change elsewhere, and a summary at the end, written to out. Text from the
 * workflow or the tasks (ids, messages, output) is shown with control bytes
 * and invalid UTF-8 escaped as \xNN. Returns NULL on OOM or when the writer
 * thread cannot start (errno says why). */
dagrun_console *dagrun_console_new(FILE *out, int flags);
void dagrun_console_event(void *console, const dagrun_event *ev);
void dagrun_console_free(dagrun_console *c);

/* One JSON object per event, per line, on out; events below min_level are
 * dropped. Strings keep their valid UTF-8, invalid bytes become U+FFFD; an
 * output chunk that had invalid bytes also carries them exactly as
 * `dataBase64`. Returns NULL as dagrun_console_new does. */
typedef struct dagrun_jsonlog dagrun_jsonlog;
dagrun_jsonlog *dagrun_jsonlog_new(FILE *out, int min_level);
void dagrun_jsonlog_event(void *log, const dagrun_event *ev);
void dagrun_jsonlog_free(dagrun_jsonlog *l);

#if defined(__GNUC__)
#pragma GCC visibility pop
#endif

#ifdef __cplusplus
}
#endif
#endif
