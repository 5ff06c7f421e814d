/* proc_int.h: what the pieces of the process runner share (like libuv's
 * internal.h); private to proc.c (the life of a proc), proc_spawn.c (its
 * start), proc_tree.c (killing its tree) and proc_runner.c (runners, the
 * registry, adoption, the watchdog). See proc.h for the promises and
 * proc.c for the states of a proc.
 */
#ifndef DAGRUN_EXEC_PROC_INT_H
#define DAGRUN_EXEC_PROC_INT_H

#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "exec/proc.h"
#include "exec/watchdog.h"

#define READ_CHUNK (64 * 1024)
#define READS_PER_WAKEUP 16       /* 1 MiB, then let other handles run */
#define DOOMED_WAIT_MS 2000       /* how long freeing a runner waits for them */
#define TICK_MS 50                /* polling of procs without a pidfd */

enum proc_state { ST_RUNNING, ST_EXITED, ST_DONE };

struct stream {
	uv_poll_t poll;
	int fd;                   /* our read end; -1 once closed */
};

struct proc {
	struct proc_runner *r;
	struct proc *prev, *next;  /* r->procs; changed under the registry lock */
	pid_t pid;
	int pidfd;                 /* -1: none, SIGCHLD tells the exit */
	uv_poll_t pidfd_poll;
	uv_timer_t timer;          /* timeout, then grace, then drain */
	struct stream s[2];        /* [0] stdout, [1] stderr */
	enum proc_state state;
	int handles;               /* handles initialised and not yet closed */
	bool term_sent;            /* SIGTERM sent, the grace timer runs */
	bool blind;                /* no pidfd: the runner's tick polls it */
	bool lost;                 /* someone else reaped the leader */
	uint64_t start_hr;
	uint64_t kill_grace_ms, drain_ms;
	size_t out_cap;
	char ring[2][PROC_TAIL_BYTES];  /* the last bytes of each stream, */
	size_t ring_at[2];             /* ... written up to here (mod size) */
	proc_output_cb on_output;
	proc_exit_cb on_exit;
	void *ud;
	struct proc_result res;
};

/* A pidfd poll on a runner's watchdog: tells when it died. Freed when its
 * handle has closed, which may be after the watchdog (and r) are gone. */
struct wd_watch {
	uv_poll_t poll;
	struct proc_runner *r;
	int fd;
};

struct proc_runner {
	uv_loop_t *loop;
	uv_signal_t sigchld;       /* adopted runners only */
	uv_timer_t tick;           /* polls blind procs / a blind watchdog */
	int handles;               /* of the two above, open */
	bool adopt;                /* proc_runner_adopt() succeeded */
	unsigned blind;            /* running procs without a pidfd */
	struct proc *procs;        /* running (not DONE); changed under the lock */
	unsigned count;
	bool reaping;
	struct proc_runner *reg_prev, *reg_next;
	posix_spawnattr_t attr;    /* the same for every spawn */
	int devnull;
	char *scratch;             /* READ_CHUNK bytes for read() */
	pid_t *doomed;             /* what proc_runner_kill_all() killed */
	size_t n_doomed;
	char *marker;              /* NAME=VALUE once guarded, else NULL */
	struct watchdog *wd;       /* while guarded; NULL: none (yet, or again) */
	pid_t wd_pid;              /* wd's process; changed under the lock */
	int hold_fd;               /* kept open by every watchdog, or -1 */
	struct wd_watch *wdw;      /* pidfd poll on wd, or NULL (blind: tick) */
	bool freeing;
};

/* ---- proc.c: the life of a proc ------------------------------------------ */

/* Arms p's handles once it is spawned: its timer (with timeout_ms; 0:
 * none), the polls of its two pipes and of its pidfd, or the runner's
 * tick when no pidfd can be had. */
void proc_watch(struct proc *p, uint64_t timeout_ms);
/* Notes that p's leader exited as info says (not reaped yet) and drains
 * its pipes; p may end (on_exit) inside. */
void proc_note_exit(struct proc *p, const siginfo_t *info);
/* Peeks at p's leader without reaping it; notes its exit if it has ended. */
void proc_check_exit(struct proc *p);
/* Ends p's drain at once (from the loop): what still holds its pipes is
 * killed, p ends. */
void proc_drain_now(struct proc *p);

/* ---- proc_spawn.c -------------------------------------------------------- */

/* The attributes of every spawn: a new session, no blocked signal, every
 * disposition back to default. Returns 0 or -errno. */
int proc_spawnattr_init(posix_spawnattr_t *a);

/* ---- proc_tree.c --------------------------------------------------------- */

/* Sends sig to p's whole tree (see proc_tree.c). */
void proc_signal_tree(struct proc *p, int sig);
/* Whether pid is still a running process (a zombie counts as gone). */
bool proc_still_running(pid_t pid);

/* ---- proc_runner.c ------------------------------------------------------- */

/* The registry lock: held around a spawn up to proc_track, and while the
 * registry or a runner's procs and wd_pid change. */
void proc_reg_lock(void);
void proc_reg_unlock(void);
/* Adds p to r's running procs; caller holds the lock. */
void proc_track(struct proc_runner *r, struct proc *p);
/* Removes p from its runner's running procs (takes the lock). */
void proc_untrack(struct proc *p);
/* Whether pid is a leader tracked by another runner than r, or the
 * watchdog of any runner: not an orphan to kill. */
bool proc_tracked_elsewhere(struct proc_runner *r, pid_t pid);
/* Adopted runners: reaps every zombie child no runner tracks (see
 * proc_runner.c). No-op for a guest. */
void proc_reap_orphans(struct proc_runner *r);
/* Runs r's tick while a blind proc or a blind watchdog needs it. */
void proc_tick_update(struct proc_runner *r);
/* Whether r's watchdog died; if so, reaps it and starts another. */
void proc_check_watchdog(struct proc_runner *r);
/* Starts r's watchdog and tells it of every proc running. Returns 0 or
 * -errno (then r has none). */
int proc_guard_start(struct proc_runner *r);

#endif
