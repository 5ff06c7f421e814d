/* watchdog.h: a small process that kills what we started if we die.
 *
 * Started once (a fork, before the first task), it blocks reading a pipe on
 * which we announce each process group we start and each one we are about
 * to reap. When the pipe reaches EOF (we exited, were killed, even with
 * SIGKILL, or closed it at the normal end) it SIGKILLs every group still
 * announced, then every process whose environment carries the marker
 * (NAME=VALUE, e.g. DAGRUN_RUN_ID=<id>), which catches descendants that
 * left their group (setsid), and exits. A process met inside execve()
 * (environment not readable yet) is looked at again, never passed over. Invariants:
 *  - writing never blocks and never raises SIGPIPE: the write end is
 *    non-blocking with a large pipe buffer, what does not fit waits in a
 *    pending buffer flushed when the pipe is writable (a poll handle on the
 *    loop), and we keep a read end open ourselves, so the pipe always has a
 *    reader;
 *  - a group is announced as gone before its leader is reaped: while the
 *    watchdog holds a group id, that id cannot have been reused (a leader
 *    that is alive or a zombie keeps it), except for announcements still in
 *    the pending buffer when we die (only when the watchdog is more than the
 *    pipe buffer behind);
 *  - the watchdog survives what is meant for us or our terminal (its own
 *    session, SIGINT, SIGTERM, SIGHUP, SIGQUIT and SIGPIPE ignored) but
 *    never its job: it exits at EOF, and EOF comes when every copy of the
 *    write end is closed (close-on-exec, never inherited by tasks).
 * The watchdog is our child: we reap it (waitpid on its pid only), and
 * the process gets a SIGCHLD when it ends.
 * The child runs only async-signal-safe code (raw system calls, no malloc,
 * no stdio): we may have threads when we fork.
 */
#ifndef DAGRUN_WATCHDOG_H
#define DAGRUN_WATCHDOG_H

#include <stdbool.h>
#include <sys/types.h>
#include <uv.h>

struct watchdog;

/* Forks the watchdog. marker: the environment entry NAME=VALUE that marks
 * our descendants, or NULL (then only announced groups are killed).
 * hold_fd: a descriptor the watchdog keeps open until it exits (a lock on
 * the run's lock file, so that whoever resumes the run can wait until
 * this watchdog has swept and gone), or -1. The poll handle lives on
 * loop, which must outlive w. Returns 0 and *out, or -errno with nothing
 * started. */
int watchdog_start(uv_loop_t *loop, const char *marker, int hold_fd,
		   struct watchdog **out);

/* In this process: SIGKILLs every process but this one and its parent
 * whose environment holds the entry `marker` (NAME=VALUE), the watchdog's
 * own sweep, repeated 10 ms apart while a pass finds some (at most 50
 * such passes) or a process inside execve(), whose environment cannot be
 * read yet (for at most 2 s). Blocks meanwhile. For finding what a run
 * that died left behind (resume). Returns how many processes were
 * signalled (one that takes a moment to die may count twice). */
int watchdog_sweep(const char *marker);

/* Makes room, before starting a process group, for announcing it now and
 * its end later: after a 0 return, the next watchdog_watch() and the
 * matching watchdog_unwatch() cannot fail. Returns 0 or -ENOMEM. */
int watchdog_reserve(struct watchdog *w);

/* Announces process group pgid as ours (its leader just started) / as gone
 * (call before reaping its leader). Never blocks. */
void watchdog_watch(struct watchdog *w, pid_t pgid);
void watchdog_unwatch(struct watchdog *w, pid_t pgid);

/* Bytes of records waiting for room in the pipe. */
size_t watchdog_pending(const struct watchdog *w);

/* The watchdog's pid, or 0 once it has been reaped. */
pid_t watchdog_pid(const struct watchdog *w);

/* The caller reaped the watchdog process (it died before its time). */
void watchdog_reaped(struct watchdog *w);

/* Ends w: sends what is pending (waits at most a moment; a watchdog that
 * cannot take it is killed rather than left acting on stale groups),
 * closes the pipe, waits for the watchdog's sweep (at most 5 s, then it is
 * killed) and reaps it: no child of ours is left. Blocks, but only at
 * shutdown. w is freed once its poll handle has
 * closed: run the loop afterwards. Accepts NULL. */
void watchdog_stop(struct watchdog *w);

/* Ends w without its sweep: the watchdog is SIGKILLed (nothing announced
 * is touched), then as watchdog_stop(). Accepts NULL. */
void watchdog_cancel(struct watchdog *w);

#endif
