/* proc_runner.c: runners, the process-wide registry of them, adoption of
 * orphans and the watchdog (see proc.h for what each promises).
 *
 * The registry (a mutex-protected list of runners) exists for adopted
 * runners: their reaping is process-wide, so it must tell every runner's
 * leaders and watchdogs from orphans. Invariant: a pid is reaped here only
 * when no runner tracks it (an orphan) or it is r's own watchdog; a
 * tracked leader is left to its runner's finish(), which reaps it after
 * its pipes are drained.
 */
#include "exec/proc_int.h"
#include "util/buf.h"
#include "util/file.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---- the registry ---------------------------------------------------------- */

/* The process-wide registry of runners: an adopted runner's reaping is
 * process-wide (see proc.h), so it must tell every runner's leaders and
 * watchdogs from orphans. reg_lock also covers posix_spawn up to the new
 * proc's insertion, so no reaper can take a fresh child for an orphan, and
 * the adoption state below: while adopters > 0 the process is a child
 * subreaper and libuv handles SIGCHLD; the last one to go restores what
 * was there before the first. */
static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static struct proc_runner *reg_head;
static unsigned adopters;
static int subreaper_before;
static struct sigaction sigchld_before;

void proc_reg_lock(void)
{
	pthread_mutex_lock(&reg_lock);
}

void proc_reg_unlock(void)
{
	pthread_mutex_unlock(&reg_lock);
}

/* Caller holds reg_lock. */
static struct proc *registry_find(pid_t pid)
{
	for (struct proc_runner *r = reg_head; r; r = r->reg_next)
		for (struct proc *p = r->procs; p; p = p->next)
			if (p->pid == pid)
				return p;
	return NULL;
}

/* The runner whose watchdog is pid, or NULL. Caller holds reg_lock. */
static struct proc_runner *watchdog_owner(pid_t pid)
{
	for (struct proc_runner *r = reg_head; r; r = r->reg_next)
		if (r->wd_pid == pid)
			return r;
	return NULL;
}

void proc_track(struct proc_runner *r, struct proc *p)
{
	p->prev = NULL;
	p->next = r->procs;
	if (r->procs)
		r->procs->prev = p;
	r->procs = p;
	r->count++;
}

void proc_untrack(struct proc *p)
{
	struct proc_runner *r = p->r;
	pthread_mutex_lock(&reg_lock);
	if (p->prev)
		p->prev->next = p->next;
	else
		r->procs = p->next;
	if (p->next)
		p->next->prev = p->prev;
	p->prev = p->next = NULL;
	r->count--;
	pthread_mutex_unlock(&reg_lock);
}

/* Whether pid is a leader tracked by another runner than r, or the
 * watchdog of any runner (r's own included): not an orphan to kill. */
bool proc_tracked_elsewhere(struct proc_runner *r, pid_t pid)
{
	pthread_mutex_lock(&reg_lock);
	struct proc *p = registry_find(pid);
	bool other = (p && p->r != r) || (pid > 0 && watchdog_owner(pid));
	pthread_mutex_unlock(&reg_lock);
	return other;
}

/* ---- the watchdog and orphans ---------------------------------------------- */

static void unwatch_watchdog(struct proc_runner *r);

/* r's watchdog died before its time (killed by someone): reap it and start
 * another, which is told about every proc still running. Caller holds
 * reg_lock; releases it. */
static void watchdog_died(struct proc_runner *r, pid_t pid)
{
	siginfo_t gone;
	waitid(P_PID, (id_t)pid, &gone, WEXITED | WNOHANG);
	r->wd_pid = 0;
	pthread_mutex_unlock(&reg_lock);
	unwatch_watchdog(r);
	watchdog_reaped(r->wd);
	watchdog_stop(r->wd);
	r->wd = NULL;
	proc_tick_update(r);
	if (!r->freeing)
		proc_guard_start(r);   /* on failure, the next proc_start() tries again */
}

/* Whether r's watchdog has exited (or was reaped by someone else); if so,
 * reaps it and starts another. Only pid r->wd_pid is looked at. */
void proc_check_watchdog(struct proc_runner *r)
{
	if (!r->wd || r->freeing)
		return;
	siginfo_t info;
	memset(&info, 0, sizeof(info));
	pthread_mutex_lock(&reg_lock);
	pid_t pid = r->wd_pid;
	int rc = -1;
	if (pid > 0) {
		do
			rc = waitid(P_PID, (id_t)pid, &info, WEXITED | WNOHANG | WNOWAIT);
		while (rc < 0 && errno == EINTR);
	}
	if (pid > 0 && ((rc == 0 && info.si_pid == pid) || (rc < 0 && errno == ECHILD))) {
		watchdog_died(r, pid);   /* releases reg_lock */
		return;
	}
	pthread_mutex_unlock(&reg_lock);
}

static void on_watchdog_exit(uv_poll_t *h, int status, int events)
{
	(void)status;
	(void)events;
	struct wd_watch *w = h->data;
	if (w->r)
		proc_check_watchdog(w->r);
}

static void wd_watch_closed(uv_handle_t *h)
{
	struct wd_watch *w = h->data;
	close(w->fd);
	free(w);
}

/* Watches r's new watchdog through a pidfd; without one, the tick polls. */
static void watch_watchdog(struct proc_runner *r)
{
	struct wd_watch *w = calloc(1, sizeof(*w));
	int fd = w ? (int)syscall(SYS_pidfd_open, r->wd_pid, 0) : -1;
	if (fd >= 0 && uv_poll_init(r->loop, &w->poll, fd) == 0) {
		w->r = r;
		w->fd = fd;
		w->poll.data = w;
		uv_poll_start(&w->poll, UV_READABLE, on_watchdog_exit);
		uv_unref((uv_handle_t *)&w->poll);   /* the watchdog keeps no loop alive */
		r->wdw = w;
	} else {
		if (fd >= 0)
			close(fd);
		free(w);
	}
	proc_tick_update(r);
}

static void unwatch_watchdog(struct proc_runner *r)
{
	struct wd_watch *w = r->wdw;
	if (!w)
		return;
	r->wdw = NULL;
	w->r = NULL;
	uv_poll_stop(&w->poll);
	uv_close((uv_handle_t *)&w->poll, wd_watch_closed);
	proc_tick_update(r);
}

/* Reaps every zombie child that no runner tracks; notes the exit of r's
 * own leaders on the way (so the pidfd is an optimisation, not a need).
 * Stops at a zombie it must not reap: it will be reaped by its owner, whose
 * finish() calls this again. Adopted runners only: this is what reaps
 * children the process did not start through us. */
void proc_reap_orphans(struct proc_runner *r)
{
	if (r->reaping || !r->adopt)
		return;   /* the outer call peeks again after proc_note_exit() */
	r->reaping = true;
	for (;;) {
		siginfo_t info;
		memset(&info, 0, sizeof(info));
		pthread_mutex_lock(&reg_lock);
		int rc = waitid(P_ALL, 0, &info, WEXITED | WNOHANG | WNOWAIT);
		if (rc < 0 || info.si_pid == 0) {
			pthread_mutex_unlock(&reg_lock);
			break;
		}
		struct proc *p = registry_find(info.si_pid);
		struct proc_runner *owner = p ? NULL : watchdog_owner(info.si_pid);
		if (owner == r) {
			watchdog_died(r, info.si_pid);
			continue;
		}
		if (owner) {
			pthread_mutex_unlock(&reg_lock);
			break;   /* another runner's watchdog: its owner reaps it */
		}
		if (!p) {
			siginfo_t gone;
			waitid(P_PID, (id_t)info.si_pid, &gone, WEXITED | WNOHANG);
			pthread_mutex_unlock(&reg_lock);
			continue;
		}
		bool mine = p->r == r;
		pthread_mutex_unlock(&reg_lock);
		if (!mine || p->state != ST_RUNNING)
			break;
		proc_note_exit(p, &info);
	}
	r->reaping = false;
}

static void on_sigchld(uv_signal_t *h, int signum)
{
	(void)signum;
	proc_reap_orphans(h->data);
}

/* Polls what has no pidfd: the exit of blind procs, a blind watchdog. */
static void on_tick(uv_timer_t *t)
{
	struct proc_runner *r = t->data;
	struct proc *next;
	for (struct proc *p = r->procs; p; p = next) {
		next = p->next;   /* p may end here; a started one goes first */
		if (p->blind)
			proc_check_exit(p);
	}
	if (r->wd && !r->wdw)
		proc_check_watchdog(r);
}

/* Runs the tick while something needs it; it keeps the loop alive only
 * for blind procs (whose pipes may be closed long before they exit). */
void proc_tick_update(struct proc_runner *r)
{
	if (r->freeing)
		return;
	bool need = r->blind || (r->wd && !r->wdw);
	if (need && !uv_is_active((uv_handle_t *)&r->tick))
		uv_timer_start(&r->tick, on_tick, TICK_MS, TICK_MS);
	else if (!need)
		uv_timer_stop(&r->tick);
	if (r->blind)
		uv_ref((uv_handle_t *)&r->tick);
	else
		uv_unref((uv_handle_t *)&r->tick);
}

/* ---- the runner ---------------------------------------------------------- */

static void runner_closed(uv_handle_t *h);

/* Starts r's watchdog and tells it of every proc running. Returns 0 or
 * -errno (then r has none). */
int proc_guard_start(struct proc_runner *r)
{
	struct watchdog *w;
	pthread_mutex_lock(&reg_lock);
	int err = watchdog_start(r->loop, r->marker, r->hold_fd, &w);
	if (!err)
		r->wd_pid = watchdog_pid(w);
	pthread_mutex_unlock(&reg_lock);
	if (err < 0)
		return err;
	struct proc *p;
	for (p = r->procs; p; p = p->next) {
		if ((err = watchdog_reserve(w)) < 0)
			break;
		watchdog_watch(w, p->pid);
	}
	if (err < 0) {
		/* It must not kill what runs: take it down without its sweep. */
		pthread_mutex_lock(&reg_lock);
		r->wd_pid = 0;
		pthread_mutex_unlock(&reg_lock);
		watchdog_cancel(w);
		return err;
	}
	r->wd = w;
	watch_watchdog(r);
	return 0;
}

void proc_runner_hold(struct proc_runner *r, int fd)
{
	r->hold_fd = fd;
}

int proc_runner_guard(struct proc_runner *r, const char *name, const char *value)
{
	if (r->marker)
		return r->wd ? 0 : proc_guard_start(r);
	if (!(r->marker = buf_strf("%s=%s", name, value ? value : "")))
		return -ENOMEM;
	int err = proc_guard_start(r);
	if (err < 0) {
		free(r->marker);
		r->marker = NULL;
	}
	return err;
}

int proc_runner_new(uv_loop_t *loop, struct proc_runner **out)
{
	*out = NULL;
	int err;
	bool attr = false;
	struct proc_runner *r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->loop = loop;
	r->hold_fd = -1;
	r->devnull = -1;
	if ((r->devnull = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0) {
		err = -errno;
		goto out;
	}
	if ((err = file_lift_fd(&r->devnull)) < 0)
		goto out;
	if (!(r->scratch = malloc(READ_CHUNK))) {
		err = -ENOMEM;
		goto out;
	}
	if ((err = proc_spawnattr_init(&r->attr)) < 0)
		goto out;
	attr = true;
	if ((err = uv_timer_init(loop, &r->tick)) < 0)
		goto out;
	r->tick.data = r;
	r->handles = 1;
	uv_unref((uv_handle_t *)&r->tick);
	pthread_mutex_lock(&reg_lock);
	r->reg_next = reg_head;
	if (reg_head)
		reg_head->reg_prev = r;
	reg_head = r;
	pthread_mutex_unlock(&reg_lock);
	*out = r;
	return 0;
out:
	if (attr)
		posix_spawnattr_destroy(&r->attr);
	if (r->devnull >= 0)
		close(r->devnull);
	free(r->scratch);
	free(r);
	return err;
}

/* Undoes one adoption; the last one restores the subreaper flag and the
 * SIGCHLD disposition found by the first (the latter only if libuv has let
 * go of SIGCHLD: another of its users may still hold it). Call after r's
 * SIGCHLD handle was closed. */
static void unadopt(void)
{
	pthread_mutex_lock(&reg_lock);
	if (adopters && --adopters == 0) {
		if (!subreaper_before)
			prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0);
		struct sigaction now;
		if (sigaction(SIGCHLD, NULL, &now) == 0 && !(now.sa_flags & SA_SIGINFO) &&
		    now.sa_handler == SIG_DFL)
			sigaction(SIGCHLD, &sigchld_before, NULL);
	}
	pthread_mutex_unlock(&reg_lock);
}

int proc_runner_adopt(struct proc_runner *r)
{
	if (r->adopt)
		return 0;
	int err = 0;
	pthread_mutex_lock(&reg_lock);
	if (!adopters) {
		int was = 0;
		if (prctl(PR_GET_CHILD_SUBREAPER, &was, 0, 0, 0) < 0 ||
		    prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0 ||
		    sigaction(SIGCHLD, NULL, &sigchld_before) < 0)
			err = -errno;
		else
			subreaper_before = was;
	}
	if (!err)
		adopters++;
	pthread_mutex_unlock(&reg_lock);
	if (err < 0)
		return err;
	if ((err = uv_signal_init(r->loop, &r->sigchld)) < 0) {
		unadopt();
		return err;
	}
	r->sigchld.data = r;
	r->handles++;
	if ((err = uv_signal_start(&r->sigchld, on_sigchld, SIGCHLD)) < 0) {
		uv_close((uv_handle_t *)&r->sigchld, runner_closed);
		unadopt();
		return err;
	}
	uv_unref((uv_handle_t *)&r->sigchld);
	r->adopt = true;
	proc_reap_orphans(r);   /* what exited before the handler was there */
	return 0;
}

static void runner_closed(uv_handle_t *h)
{
	struct proc_runner *r = h->data;
	if (--r->handles > 0)
		return;
	free(r->marker);
	posix_spawnattr_destroy(&r->attr);
	close(r->devnull);
	free(r->scratch);
	free(r);
}

/* Gives what proc_runner_kill_all() killed a moment to die (adopted: also
 * reaping it), so no process of ours outlives the runner. Blocks, but only
 * at shutdown. */
static void wait_doomed(struct proc_runner *r)
{
	uint64_t deadline = uv_hrtime() + (uint64_t)DOOMED_WAIT_MS * 1000000;
	for (;;) {
		proc_reap_orphans(r);
		size_t alive = 0;
		for (size_t i = 0; i < r->n_doomed; i++)
			if (proc_still_running(r->doomed[i]))
				r->doomed[alive++] = r->doomed[i];
		r->n_doomed = alive;
		if (!alive || uv_hrtime() > deadline)
			break;
		nanosleep(&(struct timespec){0, 2 * 1000 * 1000}, NULL);
	}
	proc_reap_orphans(r);
	free(r->doomed);
	r->doomed = NULL;
	r->n_doomed = 0;
}

void proc_runner_free(struct proc_runner *r)
{
	if (!r)
		return;
	r->freeing = true;   /* a watchdog that dies now is not replaced */
	wait_doomed(r);
	/* Its last sweep catches what left our tree carrying the marker. */
	unwatch_watchdog(r);
	watchdog_stop(r->wd);
	r->wd = NULL;
	pthread_mutex_lock(&reg_lock);
	r->wd_pid = 0;
	if (r->reg_prev)
		r->reg_prev->reg_next = r->reg_next;
	else
		reg_head = r->reg_next;
	if (r->reg_next)
		r->reg_next->reg_prev = r->reg_prev;
	pthread_mutex_unlock(&reg_lock);
	uv_timer_stop(&r->tick);
	uv_close((uv_handle_t *)&r->tick, runner_closed);
	if (r->adopt) {
		uv_close((uv_handle_t *)&r->sigchld, runner_closed);
		unadopt();
	}
}

unsigned proc_runner_count(const struct proc_runner *r)
{
	return r->count;
}
