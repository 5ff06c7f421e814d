/* proc.h: a libuv-driven runner of child processes, independent of the
 * workflow model.
 *
 * A proc is one spawned program in its own session and process group, with
 * stdin on /dev/null and stdout/stderr read through pipes. Invariant: a
 * proc's on_exit runs exactly once, from the loop, after its program has
 * exited AND its pipes have reached EOF (or a short drain after the exit
 * expired, at which point whatever still holds the pipes is killed); the
 * proc's leader stays an unreaped zombie until then, so its pid and process
 * group id cannot be reused while we may still signal them.
 *
 * A runner is a guest in its process: it waits only for the pids it
 * started (waitid/wait4 on each pid, never on any child), signals only its
 * procs' process groups and sessions and the descendants of their leaders,
 * and installs no signal handler (a proc's exit is seen through a pidfd, or
 * by polling that pid when no pidfd can be had). The process's other
 * children and its signal dispositions are left alone. What it cannot
 * avoid: the kernel sends the process a SIGCHLD for each of its procs'
 * leaders (and its watchdog); a host that reaps any child (waitpid(-1),
 * SIGCHLD set to SIG_IGN or SA_NOCLDWAIT) takes their exit status, and such
 * a proc ends with exit_code -1.
 *
 * Process-wide behaviour, only on request (proc_runner_adopt):
 *  - the process becomes a child subreaper (PR_SET_CHILD_SUBREAPER):
 *    descendants that escape a task's process group are reparented to us
 *    instead of to init; an adopted runner reaps every zombie child no
 *    runner tracks, from a SIGCHLD handler (libuv's), and kills every
 *    untracked child with its descendants in proc_runner_kill_all(). A small
 *    registry (mutex-protected list of runners) tells a tracked task leader
 *    or watchdog, of any runner, from an orphan. Do not use uv_spawn or
 *    waitpid(-1) elsewhere in a process with an adopted runner. When the
 *    last adopted runner is freed, the subreaper flag and the SIGCHLD
 *    disposition are put back as the first one found them;
 *  - a guarded runner (proc_runner_guard) has one more child, its watchdog
 *    (watchdog.h), watched through a pidfd (or polled): never taken for an
 *    orphan, never killed by proc_runner_kill_all(), replaced if it dies,
 *    reaped by proc_runner_free(). Do not fork without exec while a runner
 *    is guarded: a child holding the watchdog's pipe delays it until it
 *    exits.
 */
#ifndef DAGRUN_PROC_H
#define DAGRUN_PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "util/buf.h"

struct proc_runner;
struct proc;

enum proc_stream { PROC_STDOUT = 1, PROC_STDERR = 2 };

/* How a proc ended. Owned by the proc; valid during on_exit only, except
 * out and err, which the callback may take over (copy the struct buf and set
 * the proc's to BUF_INIT). */
struct proc_result {
	int exit_code;            /* -1 when killed by a signal */
	int term_signal;          /* 0 when it exited */
	bool timed_out;           /* the timeout expired */
	bool cancelled;           /* proc_kill() or proc_runner_kill_all() */
	bool signalled;           /* we sent the group any signal */
	bool out_truncated, err_truncated;
	uint64_t start_ms, end_ms;   /* CLOCK_REALTIME, ms since the epoch */
	uint64_t duration_ms;        /* monotonic, spawn to exit */
	uint64_t cpu_user_ms, cpu_sys_ms;
	long max_rss_kb;
	struct buf out, err;         /* first out_cap bytes of each stream */
	uint64_t out_bytes, err_bytes; /* every byte read, kept or not */
	struct buf out_tail, err_tail; /* a stream that went past out_cap: its
				      * last PROC_TAIL_BYTES (the real end);
				      * else empty. Taken over as out, err */
};

#define PROC_TAIL_BYTES 4096

/* A chunk of output as it arrives (all of it, also past the cap). data is
 * valid during the call only. */
typedef void (*proc_output_cb)(struct proc *p, enum proc_stream s,
			       const char *data, size_t len, void *ud);
/* The end of p (see the invariant above). p is freed after the callback
 * returns; calling proc_kill(p) from inside it is a harmless no-op. */
typedef void (*proc_exit_cb)(struct proc *p, struct proc_result *r, void *ud);

struct proc_opts {
	char *const *argv;        /* argv[0]: a path, or a name looked up in PATH */
	char *const *envp;        /* the full environment; NULL: ours */
	const char *cwd;          /* NULL: ours */
	uint64_t timeout_ms;      /* 0: none */
	uint64_t kill_grace_ms;   /* SIGTERM to SIGKILL on timeout or soft kill */
	uint64_t drain_ms;        /* after the exit, wait this long for pipe EOF;
				   * 0: PROC_DRAIN_MS */
	size_t out_cap;           /* bytes kept per stream */
	proc_output_cb on_output; /* may be NULL */
	proc_exit_cb on_exit;     /* required */
	void *ud;
};

#define PROC_DRAIN_MS 100

/* A new runner on loop (which must outlive it), a guest (see above): no
 * process-wide effect. Returns 0 and *out, or -errno. */
int proc_runner_new(uv_loop_t *loop, struct proc_runner **out);

/* Makes r responsible for the orphans of the process (see above): the
 * process becomes a child subreaper and r reaps, from a SIGCHLD watcher
 * that does not keep the loop alive, every zombie child that no runner
 * tracks, and kills what proc_runner_kill_all() finds among them. For a
 * program that owns its process (the dagrun command line). Until
 * proc_runner_free(r). Returns 0 or -errno (nothing changed). */
int proc_runner_adopt(struct proc_runner *r);

/* Makes every proc started through r die with this process, however it
 * ends (even SIGKILL): forks r's watchdog now (see watchdog.h), which is
 * told of each proc's process group and, when this process is gone or at
 * proc_runner_free(), SIGKILLs those groups and every process whose
 * environment holds the entry NAME=VALUE (give each proc that entry: it
 * finds descendants that left their group). A watchdog that dies is
 * replaced; while none can be started, proc_start() fails with its error.
 * Costs one fork per runner and one 8-byte write per start and per end.
 * Returns 0 or -errno (-EAGAIN, -ENOMEM, -EMFILE: nothing started). */
int proc_runner_guard(struct proc_runner *r, const char *name, const char *value);

/* Before proc_runner_guard(): every watchdog of r (the first and any
 * replacement) keeps a copy of fd open until it exits (see
 * watchdog_start). The caller keeps fd open while r lives. */
void proc_runner_hold(struct proc_runner *r, int fd);

/* Frees r once its handles have closed (run the loop afterwards). No proc
 * may be running; waits (at most 2 s) for what proc_runner_kill_all()
 * killed to die, reaping what orphans it can when adopted, and stops the
 * watchdog. Accepts NULL. */
void proc_runner_free(struct proc_runner *r);

/* SIGKILLs every running proc's process tree (marking them cancelled):
 * its group, its session and its leader's descendants; adopted, also every
 * other child of this process that no runner tracks (orphans reparented to
 * us) and its descendants, so nothing started through r outlives it. The
 * procs still end through on_exit: keep running the loop. */
void proc_runner_kill_all(struct proc_runner *r);

/* Procs running (started, on_exit not yet called). */
unsigned proc_runner_count(const struct proc_runner *r);

/* Starts a process. Returns 0 and *out (valid until on_exit returns), or
 * -errno with nothing started and no callback to come: the error of
 * posix_spawn (-ENOENT or -EACCES for the program or cwd, -ENOEXEC,
 * -EAGAIN, ...) or of setting up (-EMFILE, -ENOMEM). */
int proc_start(struct proc_runner *r, const struct proc_opts *o, struct proc **out);

/* Stops p: soft: SIGTERM to its tree, SIGKILL after kill_grace_ms; hard:
 * SIGKILL now. on_exit follows with cancelled set. No-op once p has ended. */
void proc_kill(struct proc *p, bool hard);

/* The pid of p's leader (also its session and process group id). */
int proc_pid(const struct proc *p);

#endif
