/* sqlite_int.h: what the files of the SQLite store share.
 *
 * Two connections to DIR/state.db: `wdb`, used only by the writer thread
 * (batches of records, asynchronous prune, heartbeats), and `qdb`, used by
 * callers under `qlock` (queries, begin, claim, prune). The queue between
 * callers and the writer, the registry of runs this store records into and
 * the sticky error live under `lock`. Invariant: a record refers to a
 * struct sq_run that stays registered until the writer has committed that
 * run's end (callers cannot queue records after run_end), so the writer
 * reads a record's run without the lock.
 */
#ifndef DAGRUN_STORE_SQLITE_INT_H
#define DAGRUN_STORE_SQLITE_INT_H

#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sqlite3.h>

#include "store/store.h"
#include "util/buf.h"
#include "util/clock.h"

/* The schema version this build writes; see sqlite_schema.c. */
#define SQ_SCHEMA_VERSION 7
/* PRAGMA application_id of a dagrun state database: "dgst". */
#define SQ_APPLICATION_ID 0x64677374

/* ---- a small hash map: 128-bit keys to pointers ---------------------------- */

struct sq_map_ent {
	uint64_t a, b;
	void *v;
	uint32_t gen;              /* live when == the map's gen */
};

struct sq_map {
	struct sq_map_ent *e;
	uint32_t mask, n, gen;
};

/* The value of (a, b), or NULL. */
void *sq_map_get(const struct sq_map *m, uint64_t a, uint64_t b);
/* Sets (a, b) to v. Returns 0 or -ENOMEM. */
int sq_map_put(struct sq_map *m, uint64_t a, uint64_t b, void *v);
/* Removes (a, b) if present. */
void sq_map_del(struct sq_map *m, uint64_t a, uint64_t b);
/* Empties the map in O(1) (keeps its memory). */
void sq_map_clear(struct sq_map *m);
/* Frees the map's memory; it may be used again. */
void sq_map_free(struct sq_map *m);

/* ---- runs this store records into ------------------------------------------- */

/* Task statuses are stored SQ_CHUNK to a row of task_status, one byte each. */
#define SQ_CHUNK 512

struct sq_run {
	uint64_t key;
	uint32_t n_tasks;
	uint32_t run_attempt;
	char *run_id;
	bool ended;                /* run_end queued (under lock) */
	/* The writer's: */
	uint8_t *status;           /* per task */
	uint8_t *noted;            /* bit per task: it has a row in task_notes */
	uint32_t counts[STORE_TASK_NSTATUS];
	bool dirty;                /* counts changed in this batch */
	bool logdir_made;
};

/* ---- the queue ----------------------------------------------------------------- */

enum sq_rec_type {
	REC_START, REC_END, REC_STATUS, REC_CARRY, REC_OUTPUT, REC_RUN_END,
	REC_BARRIER, REC_PRUNE,
};

struct sq_rec {
	uint8_t type;
	uint8_t stream;            /* OUTPUT */
	uint32_t size;             /* bytes of this record, aligned */
	struct sq_run *run;        /* NULL: BARRIER, PRUNE */
	union {
		struct store_attempt_start start;
		struct store_attempt_end end;
		struct store_task_status_rec status;
		struct {
			uint32_t task, from_task;
			int status;
			uint64_t from_run;
		} carry;
		struct {
			uint32_t task, attempt;
			size_t len;    /* bytes following the record */
			uint64_t cut;  /* bytes not queued (queue full) */
		} output;
		struct {
			int status;
			uint64_t end_ms;
			const char *error;
		} run_end;
		struct {
			store_barrier_fn cb;
			void *ud;
		} barrier;
		struct store_prune_opts prune;
	} u;
	/* followed by the record's strings and bytes */
};

/* A record's size with payload member m, and where its strings start. */
#define REC_SIZE(m) (offsetof(struct sq_rec, u) + sizeof(((struct sq_rec *)0)->u.m))
#define REC_TAIL(r, m) ((char *)&(r)->u + sizeof((r)->u.m))

/* Queue blocks: large enough for several of the biggest output chunks a
 * caller hands in (64 KiB reads), so that a flood of output reuses a few
 * blocks instead of allocating one per chunk; SQ_SPARE_MAX are kept. */
#define SQ_BLOCK_SIZE ((size_t)256 << 10)
#define SQ_SPARE_MAX 16

struct sq_block {
	struct sq_block *next;
	size_t used, cap;
	_Alignas(8) char data[];
};

struct sq_log;   /* sqlite_logs.c */

struct sq_store {
	struct store base;
	char *dir, *path, *logs;   /* DIR, DIR/state.db, DIR/logs */
	char *host;
	bool read_only, durable;
	uint64_t log_cap;
	uint32_t batch_max, batch_ms, busy_ms, heartbeat_ms;
	size_t queue_max;
	uint64_t max_db_bytes;
	void (*on_error)(void *ud, int code, const char *msg);
	void *ud;
	int64_t pid;
	uint64_t pid_start;

	/* Caller side, under qlock. */
	pthread_mutex_t qlock;
	sqlite3 *qdb;

	/* Shared, under lock. */
	pthread_mutex_t lock;
	pthread_cond_t wake;       /* the writer waits for records */
	struct sq_block *head, *tail, *spare;
	size_t nspare;
	size_t queued;             /* records waiting */
	size_t queued_out;         /* output bytes waiting */
	bool barrier_waiting;
	bool stop;
	int err;                   /* sticky */
	char *errmsg;
	struct sq_run **runs;      /* the registry */
	size_t nruns, caprun;
	struct store_stats stats;

	/* The writer's. */
	pthread_t writer;
	bool writer_started;
	sqlite3 *wdb;
	sqlite3_stmt *stmt[16];
	struct store_stats w;      /* counters, published to stats by the writer */
	struct sq_map logmap;      /* open attempts' log state */
	unsigned open_fds;
	uint64_t next_beat_ms;
};

/* Output bytes queued that wake the writer before its batch window ends:
 * a quarter of the queue's cap, and at least 1 MiB (small queues, as in
 * tests, keep their batch window). */
static inline size_t sq_out_wake(const struct sq_store *st)
{
	size_t q = st->queue_max / 4;
	return q > ((size_t)1 << 20) ? q : (size_t)1 << 20;
}

static inline struct sq_store *sq_of(struct store *s)
{
	return (struct sq_store *)s;
}

/* ---- helpers (sqlite.c) ------------------------------------------------------ */

/* Sets *err (when err) to "PATH: FMT: sqlite's message". Returns the
 * errno-style code for rc (see store.h). */
int sq_fail(sqlite3 *db, int rc, const char *path, char **err,
	    const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* The negative errno for a SQLite result code. */
int sq_code(int rc);
/* Sets *err (when err) to a malloc'd message; returns code. */
int sq_err(char **err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Records the sticky error (the first one wins) and calls on_error once. */
void sq_set_error(struct sq_store *st, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Runs one SQL text (no rows). Returns a SQLite code. */
int sq_exec(sqlite3 *db, const char *sql);
/* Starts a read transaction (a snapshot), waiting while the database is
 * busy; every query runs in one, so its statements agree. */
int sq_read_begin(struct sq_store *st, sqlite3 *db);
void sq_read_end(sqlite3 *db);
/* Starts a write transaction (BEGIN IMMEDIATE), waiting up to busy_ms. */
int sq_begin_write(struct sq_store *st, sqlite3 *db);
/* Copies a column's text into mem (NULL for SQL NULL). */
const char *sq_col_text(struct arena *mem, sqlite3_stmt *s, int col);

/* ---- schema (sqlite_schema.c) ---------------------------------------------- */

/* Checks that db (a connection to path) holds a dagrun store this build can
 * use and brings it to `target` (SQ_SCHEMA_VERSION but in tests), creating
 * it when empty. Touches nothing when refusing. read_only: check only.
 * Waits up to busy_ms for other openers. */
int sq_schema_open(sqlite3 *db, const char *path, int target, bool read_only,
		   unsigned busy_ms, char **err);
/* Sets the connection's pragmas (WAL, foreign keys, synchronous, cap). */
int sq_pragmas(struct sq_store *st, sqlite3 *db, char **err);

/* ---- leases and runs (sqlite_lease.c) ---------------------------------------- */

/* Start time of process pid (clock ticks since boot), or 0 when it is gone. */
uint64_t sq_proc_start(int64_t pid);
/* Whether the lease's owner is alive, seen from st at now_ms. */
bool sq_lease_alive(const struct sq_store *st, const char *host, int64_t pid,
		    uint64_t pid_start, uint64_t beat_ms, uint64_t now_ms);
/* The table's begin and claim (store.h says what they promise). */
int sq_begin_run(struct store *s, const struct store_run_begin *b,
		 uint64_t *key, char *run_id, char **err);
int sq_claim(struct store *s, uint64_t key, struct store_lease *prev,
	     struct arena *mem, char **err);
/* Frees a run of the registry. Accepts NULL. */
void sq_run_free(struct sq_run *r);

/* ---- the queue, caller side (sqlite_queue.c) --------------------------------- */

/* The table's record operations, last_error, stats and prune_async (see
 * store.h). */
int sq_attempt_start(struct store *s, uint64_t key, const struct store_attempt_start *a);
int sq_attempt_end(struct store *s, uint64_t key, const struct store_attempt_end *a);
int sq_task_status(struct store *s, uint64_t key, const struct store_task_status_rec *t);
int sq_carry(struct store *s, uint64_t key, uint32_t task, int status,
	     uint64_t from_key, uint32_t from_task);
int sq_output(struct store *s, uint64_t key, uint32_t task, uint32_t attempt,
	      int stream, const void *data, size_t len);
int sq_run_end(struct store *s, uint64_t key, int status, uint64_t end_ms,
	       const char *error);
int sq_barrier(struct store *s, store_barrier_fn cb, void *ud);
int sq_last_error(struct store *s, char **msg);
void sq_stats(struct store *s, struct store_stats *st);
int sq_prune_async(struct store *s, const struct store_prune_opts *o);
/* Adds r to the registry. Returns 0 or -ENOMEM. */
int sq_register(struct sq_store *st, struct sq_run *r);
/* Whether key is registered here. Caller holds lock. */
struct sq_run *sq_find_run_locked(struct sq_store *st, uint64_t key);

/* ---- the writer (sqlite_writer.c, sqlite_apply.c) ----------------------------- */

/* Prepares the writer's statements and starts its thread (signals
 * blocked). Returns 0 or < 0 and *err. */
int sq_writer_start(struct sq_store *st, char **err);
/* Stops the writer after it has committed everything queued. */
void sq_writer_stop(struct sq_store *st);

/* An attempt's start or end, in batch order. */
struct sq_op {
	struct sq_rec *rec;
	struct sq_rec *start;      /* END: its START in this batch */
	uint64_t logged[3], cut[3];
	bool dead;                 /* START written with its END */
};

struct sq_chunk {
	struct sq_run *run;
	uint32_t chunk;
};

/* What one transaction writes, gathered by the writer's first pass. */
struct sq_batch {
	struct sq_op *ops;
	size_t nops, capops;
	struct sq_rec **notes;     /* the last STATUS/CARRY of a task with a note */
	size_t nnotes, capnotes;
	struct sq_chunk *chunks;   /* status chunks changed */
	size_t nchunks, capchunks;
	struct sq_rec **other;     /* RUN_END, BARRIER, PRUNE, in order */
	size_t nother, capother;
	struct sq_run **dirty;     /* runs whose counts changed */
	size_t ndirty, capdirty;
	struct sq_map starts, nmap, cmap;
	size_t nrec;
};

/* The lease renewal (or release) of some runs, for sq_apply_leases. */
struct sq_leases {
	uint64_t *keys;
	size_t n;
	bool release;
	uint64_t lost;             /* a run whose lease is gone, or 0 */
};

/* Prepares the writer's statements. */
int sq_apply_prepare(struct sq_store *st, char **err);
/* Writes batch (a struct sq_batch) or leases (a struct sq_leases) in the
 * open transaction; return a SQLite code. */
int sq_apply_batch(struct sq_store *st, void *batch);
int sq_apply_leases(struct sq_store *st, void *leases);
/* Runs fn in a write transaction on wdb, retried while busy; a failure is
 * sticky (message: "PATH: what: why"). Returns 0 or < 0. */
int sq_commit(struct sq_store *st, int (*fn)(struct sq_store *, void *), void *arg,
	      const char *what);

/* ---- log files (sqlite_logs.c), writer side ----------------------------------- */

/* Appends an OUTPUT record to its attempt's log file. Returns 0 or < 0 with
 * the sticky error set. */
int sq_log_append(struct sq_store *st, struct sq_rec *r);
/* Closes the attempt's files (synced when durable) and reports the bytes
 * written and cut per stream ([1], [2]). Returns 0 or < 0 (sticky set). */
int sq_log_finish(struct sq_store *st, uint64_t run, uint32_t task,
		  uint32_t attempt, uint64_t logged[3], uint64_t cut[3]);
/* Closes whatever is still open for run (all runs: run == 0). */
void sq_log_close_run(struct sq_store *st, uint64_t run);
/* "DIR/logs/RUNID.ATTEMPT" into buf. */
int sq_log_dir(const struct sq_store *st, const char *run_id,
	       uint32_t run_attempt, char *buf, size_t n);
/* The table's log_files (store.h). */
int sq_log_files(struct store *s, uint64_t run, uint32_t task, uint32_t attempt,
		 struct arena *mem, struct store_log_files *out, char **err);
/* Removes a run's log directory; adds the bytes freed to *bytes. */
int sq_log_remove_dir(const char *dir, bool dry_run, uint64_t *bytes);

/* ---- queries (sqlite_query.c, sqlite_history.c) ------------------------------ */

/* Takes qlock and starts a read transaction; sq_q_leave ends both. */
int sq_q_enter(struct sq_store *st, char **err);
void sq_q_leave(struct sq_store *st);
/* Prepares sql on qdb; sets *err on failure. */
int sq_q_prep(struct sq_store *st, const char *sql, sqlite3_stmt **q, char **err);
/* Prepares the query of one run's attempts, all tasks' (task < 0: all, with
 * ?1 the run) or one task's (one, with ?1 the run and ?2 the task), and
 * binds them. */
int sq_q_prep_run(struct sq_store *st, const char *all, const char *one, uint64_t run,
		  int64_t task, sqlite3_stmt **q, char **err);
/* The error for a failed step on qdb. */
int sq_q_fail(struct sq_store *st, int rc, char **err);
/* Reads a run's task statuses (n of them) into status (pending where
 * none is stored). Returns a SQLite code. */
int sq_read_statuses(sqlite3 *db, uint64_t key, uint32_t n, uint8_t *status);
/* Follows a kept task (a rerun's) back to where its attempts are stored:
 * updates *run and *task. In a read transaction. */
int sq_q_source(struct sq_store *st, uint64_t *run, uint32_t *task, char **err);

/* The table's queries (store.h says what they promise). */
int sq_list_runs(struct store *s, const struct store_run_filter *f,
		 struct arena *mem, struct store_run_info **out, size_t *n,
		 char **err);
int sq_find_run(struct store *s, const char *ref, const char *workflow,
		struct arena *mem, struct store_run_info *out, char **err);
int sq_get_run(struct store *s, uint64_t key, struct arena *mem,
	       struct store_run_info *out, char **err);
int sq_tasks(struct store *s, uint64_t key, struct arena *mem,
	     struct store_task_info **out, size_t *n, char **err);
int sq_attempts(struct store *s, uint64_t key, uint32_t task, struct arena *mem,
		struct store_attempt_info **out, size_t *n, char **err);
int sq_definition(struct store *s, uint64_t key, struct arena *mem,
		  struct store_definition *out, char **err);
/* Splits a task id blob ("a\0b\0") into n ids in mem. */
int sq_split_ids(struct arena *mem, const char *blob, size_t len, uint32_t n,
		 const char ***out);
int sq_history(struct store *s, const char *workflow, const char *const *ids,
	       uint32_t n, uint32_t max_runs, uint64_t *median_ms, char **err);
/* The table's cache_entries and cache_clear (sqlite_cache.c). */
int sq_cache_entries(struct store *s, const char *workflow, const char *task,
		     uint64_t budget, struct arena *mem, struct store_cache_entry **out, size_t *n, char **err);
int sq_cache_clear(struct store *s, const char *workflow, const char *task, uint64_t *n,
		   char **err);
int sq_cache_result(struct store *s, struct store_cache_entry *e, struct arena *mem,
		    char **err);

/* ---- statistics (sqlite_stats.c) ---------------------------------------------- */

/* The table's workflow_stats and task_stats (store.h). */
int sq_workflow_stats(struct store *s, const struct store_stats_filter *f,
		      struct arena *mem, struct store_workflow_stats **out, size_t *n,
		      char **err);
int sq_task_stats(struct store *s, const struct store_stats_filter *f, struct arena *mem,
		  struct store_task_stats **out, size_t *n, char **err);

/* ---- retention (sqlite_prune.c) -------------------------------------------- */

/* prune() on connection db (qdb under qlock, or the writer's wdb). */
int sq_prune_on(struct sq_store *st, sqlite3 *db,
		const struct store_prune_opts *o, struct arena *mem,
		struct store_prune_result *res, char **err);
/* The table's prune and prune_due (store.h). */
int sq_prune(struct store *s, const struct store_prune_opts *o,
	     struct arena *mem, struct store_prune_result *res, char **err);
int sq_prune_due(struct store *s, const struct store_prune_opts *o, char **err);

#endif
