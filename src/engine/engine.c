/* engine.c: the public run API: a scheduler, its executors and its loop.
 *
 * The engine owns one libuv loop, the executors of the workflow's task
 * kinds (made from the kinds' table, kinds/kind.h: the engine names no
 * kind), an async handle through which dagrun_engine_interrupt() reaches the
 * loop from any thread or signal handler, and a private temporary
 * directory for the attempts' $DAGRUN_OUTPUT files. Invariant:
 * dagrun_engine_run() returns only after every handle but the async one is
 * closed and every process it started is gone; if the process dies first
 * (even SIGKILL), the command executor's watchdog kills the tasks (see
 * exec/watchdog.h).
 *
 * The engine is a guest in its process: dagrun_engine_new() has no
 * process-wide effect at all, and a run only the watchdog (one child
 * process) unless the caller asks for more (dagrun_run_opts.process_flags):
 * DAGRUN_PROC_SIGNALS has the run handle SIGINT, SIGTERM, SIGHUP and
 * SIGUSR1 (a cancel: recorded cancelled) (128 + the signal), the
 * dispositions found being put back at its end;
 * DAGRUN_PROC_SUBREAPER has the command executor adopt orphans (see
 * exec/proc.h).
 *
 * With a state directory, the run is recorded (sched/record.h) before any
 * task starts, or does not start; its end is committed before it is
 * reported; resume and rerun continue a recorded run (sched/resume.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "engine/engine_int.h"
#include "engine/tmpdir.h"
#include "exec/fake.h"
#include "graph/graph.h"
#include "kinds/kind.h"
#include "engine/io.h"
#include "sched/flow.h"
#include "sched/record.h"
#include "sched/resume.h"
#include "sched/sched.h"
#include "util/diag.h"
#include "util/runid.h"
#include "util/buf.h"
#include "util/clock.h"


static unsigned cpu_count(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	return n > 0 ? (unsigned)n : 1;
}

/* The caller's run id (checked: it goes into file names, URLs and the
 * tasks' environment), or a new one (util/runid.h). Returns 0, -EINVAL
 * (said in d) or -errno. */
static int make_run_id(dagrun_engine *e, dagrun_diags *d)
{
	const char *id = e->opts.run_id;
	if (!id)
		return runid_new(e->run_id);
	size_t n = strlen(id);
	bool ok = n >= 1 && n <= RUN_ID_MAX && id[0] != '.' && id[0] != '-';
	for (size_t i = 0; ok && i < n; i++) {
		char c = id[i];
		ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		     (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
	}
	if (!ok) {
		diag_add(d, DAGRUN_ERROR, NULL, 0, 0, "run id '%.80s%s': expected 1 to %d "
			 "characters among A-Z a-z 0-9 . _ - (not starting with . or -)",
			 id, n > 80 ? "..." : "", RUN_ID_MAX);
		return -EINVAL;
	}
	memcpy(e->run_id, id, n + 1);
	return 0;
}

static void on_wake(uv_async_t *h);

int dagrun_engine_new(dagrun_engine **out, const dagrun_workflow *wf,
		      const dagrun_run_opts *opts, dagrun_diags *diags)
{
	*out = NULL;
	dagrun_engine *e = calloc(1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	int r = 0;
	e->wf = wf;
	if (opts)
		e->opts = *opts;
	if ((r = make_run_id(e, diags)) < 0)
		goto fail_free;
	if ((r = uv_loop_init(&e->loop)) < 0)
		goto fail_free;
	if ((r = uv_async_init(&e->loop, &e->wake, on_wake)) < 0) {
		uv_loop_close(&e->loop);
		goto fail_free;
	}
	e->wake.data = e;
	uv_unref((uv_handle_t *)&e->wake);
	if (e->opts.replay && e->opts.state_dir && !e->opts.live) {
		diag_add(diags, DAGRUN_ERROR, NULL, 0, 0, "a replay records nothing: no state directory");
		r = -EINVAL;
		goto fail_loop;
	}
	if (e->opts.live && (!e->opts.replay || !e->opts.state_dir)) {
		diag_add(diags, DAGRUN_ERROR, NULL, 0, 0, "live tasks are for a replay, which "
			 "then records a run: give both the recording and a state directory");
		r = -EINVAL;
		goto fail_loop;
	}
	if ((r = engine_make_executors(e, diags)) < 0 || (r = engine_check_kinds(e, diags)) < 0)
		goto fail_loop;
	unsigned par = e->opts.max_parallel ? e->opts.max_parallel
		       : wf->max_parallel ? wf->max_parallel : cpu_count();
	e->env.max_parallel = par;
	if ((r = sched_init(&e->s, wf, &e->loop, e->exec, par, e->run_id,
			    (uint64_t)clock_wall_ms() ^ ((uint64_t)getpid() << 32))) < 0)
		goto fail_loop;
	struct flow_opts fo = {e->opts.vars, e->opts.secrets_file, e->run_id,
				e->opts.trigger_json};
	if (!e->opts.fake && (r = flow_new(&e->flow, wf, &fo, diags)) < 0)
		goto fail_loop;
	e->s.flow = e->flow;
	e->env.flow = e->flow;
	*out = e;
	return 0;
fail_loop:
	sched_free(&e->s);
	engine_destroy_executors(e);
	uv_close((uv_handle_t *)&e->wake, NULL);
	uv_run(&e->loop, UV_RUN_DEFAULT);
	uv_loop_close(&e->loop);
fail_free:
	free(e->replay_of);
	free(e);
	return r;
}

int dagrun_engine_observe(dagrun_engine *e, dagrun_observer_fn fn, void *ud)
{
	struct sched *s = &e->s;
	struct observer *o = realloc(s->obs, (s->n_obs + 1) * sizeof(*o));
	if (!o)
		return -ENOMEM;
	s->obs = o;
	o[s->n_obs++] = (struct observer){fn, ud};
	return 0;
}

static void log_event(dagrun_engine *e, int level, const char *msg)
{
	sched_log(&e->s, SCHED_NONE, level, msg);
}

static void on_signal(uv_signal_t *h, int signo)
{
	dagrun_engine *e = h->data;
	e->signals_seen++;
	bool hard = e->signals_seen > 1;
	if (signo == SIGUSR1 && !hard)
		log_event(e, DAGRUN_WARN, "cancelled: stopping running tasks (again to kill at "
			  "once); the run is recorded cancelled");
	else
		log_event(e, DAGRUN_WARN, hard ? "interrupted again: killing every task now"
			  : "interrupted: stopping running tasks (again to kill at once)");
	sched_interrupt(&e->s, signo, hard);
}

/* Acts on what dagrun_engine_interrupt() asked for, as a SIGINT would. */
static void on_wake(uv_async_t *h)
{
	dagrun_engine *e = h->data;
	if (!e->running)
		return;   /* kept for the run; none after it */
	int req = atomic_exchange(&e->irq, 0);
	bool hard = req & IRQ_HARD;
	if (!req || (e->s.interrupted && (e->s.hard || !hard)))
		return;   /* nothing more than what is under way */
	log_event(e, DAGRUN_WARN, hard ? "interrupted by the host: killing every task now"
				       : "interrupted by the host: stopping running tasks");
	sched_interrupt(&e->s, SIGINT, hard);
}

int dagrun_engine_interrupt(dagrun_engine *e, int hard)
{
	atomic_fetch_or(&e->irq, hard ? IRQ_SOFT | IRQ_HARD : IRQ_SOFT);
	return uv_async_send(&e->wake);
}

/* DAGRUN_PROC_SIGNALS: handle SIGINT, SIGTERM and SIGHUP while the run
 * lasts, remembering what was there. */
static void signals_stop(dagrun_engine *e);

static int signals_start(dagrun_engine *e)
{
	for (int i = 0; i < N_HANDLED_SIGNALS; i++) {
		sigaction(handled_signals[i], NULL, &e->sig_before[i]);
		uv_signal_init(&e->loop, &e->sig[i]);
		e->sig[i].data = e;
	}
	e->signals = true;
	for (int i = 0; i < N_HANDLED_SIGNALS; i++) {
		int r = uv_signal_start(&e->sig[i], on_signal, handled_signals[i]);
		if (r < 0) {
			signals_stop(e);
			return r;
		}
	}
	return 0;
}

/* Stops handling them and puts back the dispositions found, where libuv
 * has let go (it resets a signal to SIG_DFL when its last handle stops;
 * another of its users in the process may still hold one). */
static void signals_stop(dagrun_engine *e)
{
	if (!e->signals)
		return;
	e->signals = false;
	for (int i = 0; i < N_HANDLED_SIGNALS; i++) {
		uv_close((uv_handle_t *)&e->sig[i], NULL);
		struct sigaction now;
		if (sigaction(handled_signals[i], NULL, &now) == 0 &&
		    !(now.sa_flags & SA_SIGINFO) && now.sa_handler == SIG_DFL)
			sigaction(handled_signals[i], &e->sig_before[i], NULL);
	}
}

/* Runs before the loop would block: whatever ended the run (an I/O event,
 * a timer, the fake executor's idle callback) has been handled by then. */
static void on_prepare(uv_prepare_t *h)
{
	dagrun_engine *e = h->data;
	if (!sched_done(&e->s))
		return;
	uv_prepare_stop(h);
	uv_close((uv_handle_t *)h, NULL);
	signals_stop(e);
	engine_destroy_executors(e);
}

static int make_tmpdir(dagrun_engine *e)
{
	int r = tmpdir_make(e->tmpdir, sizeof(e->tmpdir));
	if (r < 0)
		return r;
	e->s.tmpdir = e->tmpdir;
	e->env.tmpdir = e->tmpdir;
	return 0;
}

static int remove_tmpdir(dagrun_engine *e)
{
	return tmpdir_remove(e->tmpdir);
}

static int start_recording(dagrun_engine *e);

int dagrun_engine_run(dagrun_engine *e)
{
	if (e->ran)
		return -EALREADY;
	e->ran = true;
	int r = 0;
	unsigned flags = e->opts.process_flags;
	if (flags & ~(unsigned)(DAGRUN_PROC_SUBREAPER | DAGRUN_PROC_SIGNALS))
		return -EINVAL;
	/* A run that cannot be recorded does not start. */
	if (e->opts.state_dir && (r = start_recording(e)) < 0)
		return r;
	if (!e->opts.fake && (r = make_tmpdir(e)) < 0)
		return r;
	/* Before any task: the tasks die with us, even if we are SIGKILLed;
	 * and, on request, what escapes their groups is ours to reap and kill
	 * (the executor of processes does both: executor_ops.begin). */
	int hold = e->rec ? record_lock_fd(e->rec) : -1;
	for (unsigned i = 0; i < e->n_owned && !e->opts.fake && r == 0; i++) {
		struct executor *ex = e->owned[i].ex;
		if (ex->ops->begin)
			r = ex->ops->begin(ex, e->run_id, flags, hold);
	}
	if (r < 0) {
		remove_tmpdir(e);
		return r;
	}
	/* SIGHUP (the terminal went away) stops the run as SIGTERM does (tasks
	 * stopped, temporary directory removed), 129. */
	if ((flags & DAGRUN_PROC_SIGNALS) && (r = signals_start(e)) < 0) {
		uv_run(&e->loop, UV_RUN_NOWAIT);   /* close what was opened */
		remove_tmpdir(e);
		return r;
	}
	uv_prepare_t prepare;
	uv_prepare_init(&e->loop, &prepare);
	prepare.data = e;
	uv_prepare_start(&prepare, on_prepare);
	e->started_ms = clock_wall_ms();
	e->running = true;
	/* Asked to stop before it began: nothing starts. */
	int early = atomic_exchange(&e->irq, 0);
	if (early)
		sched_interrupt(&e->s, SIGINT, early & IRQ_HARD);
	/* `cache` needs a recorded run (README "Cache"): said, not ignored */
	if (e->cache_on && !e->opts.state_dir && !e->opts.fake && !e->opts.replay)
		log_event(e, DAGRUN_WARN, "the run is not recorded (no state directory): tasks "
			  "with `cache` run, and nothing is cached");
	char *said = record_summary(e->rec);
	if (said)
		log_event(e, DAGRUN_INFO, said);
	free(said);
	sched_start(&e->s);
	if (early)
		log_event(e, DAGRUN_WARN, "interrupted by the host before the run began: "
			  "no task started");
	/* The prepare handle notices the end on each loop iteration; a run
	 * that ended inside sched_start (every task skipped) ends here. */
	on_prepare(&prepare);
	uv_run(&e->loop, UV_RUN_DEFAULT);
	e->running = false;

	/* Every task is gone: what they left in the temporary directory goes
	 * too, or the run says what stays (before its end event). */
	char dir[sizeof(e->tmpdir)];
	memcpy(dir, e->tmpdir, sizeof(dir));
	if ((r = remove_tmpdir(e)) < 0) {
		char msg[sizeof(dir) + 200];
		snprintf(msg, sizeof(msg), "could not remove the temporary directory %s "
			 "entirely: %s (what tasks left there stays)", dir,
			 r == -E2BIG ? "a task left a tree deeper than 32 levels" : strerror(-r));
		log_event(e, DAGRUN_WARN, msg);
		e->tmpdir[0] = '\0';
	}

	dagrun_event ev;
	memset(&ev, 0, sizeof(ev));
	ev.type = DAGRUN_EV_RUN_END;
	ev.ts_ms = clock_wall_ms();
	ev.run_id = e->run_id;
	ev.task_index = SCHED_NONE;
	ev.exit_code = -1;
	ev.count = ev.ts_ms - e->started_ms;
	int outcome = e->s.error ? e->s.error
		      : e->s.interrupted ? 128 + e->s.interrupted
		      : e->s.main_failed ? 1 : 0;
	/* The write-ahead rule: the run's end is committed before it is
	 * reported. */
	if (e->rec) {
		char *err = NULL;
		int rr = record_finish(e->rec, outcome, &err);
		if (rr < 0) {
			if (outcome >= 0)
				outcome = rr;
			free(e->errmsg);
			e->errmsg = err;
		} else {
			free(err);
		}
	}
	ev.status = outcome == 0 ? DAGRUN_COMPLETED : outcome > 128 ? DAGRUN_CANCELLED
		    : DAGRUN_FAILED;
	/* What stopped it (SIGUSR1: a cancel, recorded cancelled). */
	ev.signal = e->s.interrupted && outcome == 128 + e->s.interrupted ? e->s.interrupted : 0;
	ev.level = outcome ? DAGRUN_ERR : DAGRUN_INFO;
	sched_emit(&e->s, &ev);
	return outcome;
}

/* Opens the store and records the run (record.h); before anything starts. */
static int start_recording(dagrun_engine *e)
{
	struct record_opts ro = {
		.dir = e->opts.state_dir, .durable = e->opts.durable != 0,
		.log_cap = e->opts.log_cap, .definition = e->opts.definition,
		.definition_len = e->opts.definition_len, .cont = e->cont,
		.replay_of = e->replay_of,
	};
	char *err = NULL;
	int r = record_start(&e->rec, &ro, e->wf, &e->s, e->flow, e->run_id, &err);
	/* the cache's entries, read once: a lookup never waits for the disk */
	if (r == 0 && e->cache_on && (r = cache_tab_load(&e->cache, record_store(e->rec), e->wf,
							 &err)) < 0) {
		char *m = buf_strf("cannot read the cache: %s", err ? err : strerror(-r));
		free(err);
		err = m;
	}
	if (r == 0 && e->cache_on)
		e->cache.st = record_store(e->rec);   /* hits read their results there */
	if (r < 0) {
		free(e->errmsg);
		e->errmsg = err;
	}
	return r;
}

int engine_set_continue(dagrun_engine *e, const struct cont_opts *o)
{
	if (!e->opts.state_dir || e->ran || !o)
		return -EINVAL;
	e->cont = o;
	return 0;
}

const char *dagrun_engine_error(const dagrun_engine *e)
{
	return e->errmsg;
}

void dagrun_engine_counts(const dagrun_engine *e, size_t *counts)
{
	memcpy(counts, e->s.counts, sizeof(e->s.counts));
}

/* Simulates the run with one worker, every task succeeding at once. */
int dagrun_engine_plan(dagrun_engine *e, FILE *out)
{
	const struct dagrun_workflow *wf = e->wf;
	const struct graph *g = wf->graph;
	int r = 0;
	if (e->opts.state_dir) {
		char *err = NULL;
		/* A plan is read-only: a store it cannot read (an older schema
		 * it may not upgrade, a locked or corrupt file) costs it the
		 * history-fed order, not the plan; it says so. */
		if (record_plan_weights(e->opts.state_dir, wf, &e->s, &err) < 0)
			fprintf(out, "# history not used (order by declared weights): %s\n",
				err ? err : "the state store cannot be read");
		free(err);
	}
	/* the cache's decisions, from its entries read once (read only) */
	bool cache = e->opts.state_dir && e->flow && e->cache_on;
	if (cache) {
		struct store_opts so = {.dir = e->opts.state_dir, .read_only = true};
		struct store *st = NULL;
		char *err = NULL;
		int rr = store_open(&store_sqlite_ops, &so, &st, &err);
		if (rr == 0)
			rr = cache_tab_load(&e->cache, st, wf, &err);
		store_close(st);
		if (rr < 0 && rr != -ENOENT)
			fprintf(out, "# cache not read (every task would run): %s\n",
				err ? err : strerror(-rr));
		free(err);
	}
	uint32_t *waiting = malloc((wf->n_tasks + 1) * sizeof(*waiting));
	struct readyq q;
	readyq_init(&q, wf->tasks, e->s.weight);
	if (!waiting)
		return -ENOMEM;
	for (int phase = DR_HOOK_NONE; phase <= DR_HOOK_EXIT; phase++) {
		if (phase == DR_HOOK_FAILURE)
			continue;  /* a dry run assumes success */
		uint32_t first = wf->hook_first[phase], n = wf->hook_count[phase];
		if (phase != DR_HOOK_NONE && n)
			fprintf(out, "# %s\n", phase == DR_HOOK_SUCCESS ? "onSuccess" : "onExit");
		for (uint32_t t = first; t < first + n; t++) {
			waiting[t] = g->indeg[t];
			if (!waiting[t] && (r = readyq_push(&q, t)) < 0)
				goto out;
		}
		while (!readyq_empty(&q)) {
			uint32_t t = readyq_pop(&q);
			fprintf(out, "%s\n", wf_task_id(wf, t));
			char *why = cache ? cache_plan(&e->env, &e->cache, t) : NULL;
			if (why)
				fprintf(out, "# cache: %s\n", why);
			free(why);
			for (uint32_t i = g->out_off[t]; i < g->out_off[t + 1]; i++) {
				uint32_t d = g->out_task[i];
				if (wf->tasks[d].hook == phase && --waiting[d] == 0 &&
				    (r = readyq_push(&q, d)) < 0)
					goto out;
			}
		}
	}
out:
	readyq_free(&q);
	free(waiting);
	return r ? r : ferror(out) ? -EIO : 0;
}

void dagrun_engine_free(dagrun_engine *e)
{
	if (!e)
		return;
	engine_destroy_executors(e);
	uv_close((uv_handle_t *)&e->wake, NULL);
	record_detach(e->rec);
	uv_run(&e->loop, UV_RUN_DEFAULT);
	record_free(e->rec);
	cache_tab_free(&e->cache);
	sched_free(&e->s);
	flow_free(e->flow);
	uv_loop_close(&e->loop);
	remove_tmpdir(e);
	free(e->errmsg);
	free(e->replay_of);
	free(e);
}
