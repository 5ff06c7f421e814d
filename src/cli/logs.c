/* logs.c: `dagrun logs RUN [TASK] [--attempt N] [-f]`: the output the
 * store kept of a run's attempts, read from its log files.
 *
 * A source is one stream (stdout or stderr) of one attempt: a file the
 * store appends to while the attempt runs. Sources are printed in the
 * order their attempts started (then stdout before stderr), each under a
 * header `==> TASK, attempt N, STREAM <==` printed whenever the source
 * changes, with the bytes escaped like the console's (text.h). With -f the
 * store and the files are polled every POLL_MS; complete lines are printed
 * as they come, so lines of attempts running at the same time interleave
 * but are never cut by another source's header.
 *
 * Invariants: a source's bytes are printed once each, in file order, from
 * offset 0 to the size the file has when its attempt has ended; the follow
 * ends only after a poll that saw the run ended (completed, failed,
 * cancelled, or interrupted: its owner is gone) has drained every file, so
 * nothing the run wrote before its end is missed, and a dead run never
 * keeps the follow waiting.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "cli/hist.h"
#include "util/text.h"

#define POLL_MS 200
#define READ_CHUNK ((size_t)64 << 10)
/* A line longer than this is printed in pieces (between characters). */
#define LINE_MAX_HELD ((size_t)64 << 10)

static const char usage[] =
	"usage: dagrun logs [OPTIONS] RUN [TASK]\n"
	"\n"
	"Prints the output the state store kept of RUN (a run id, a unique prefix of\n"
	"one, or `last`): of TASK, every attempt, or of every task in the order the\n"
	"attempts started. Each stream of each attempt comes under a header\n"
	"`==> TASK, attempt N, stdout <==`. Control characters and invalid UTF-8\n"
	"are shown as \\xNN.\n"
	"\n"
	"      --attempt N     only attempt N (of TASK, or of every task)\n"
	"  -f, --follow        follow a live run: print output as it comes, until\n"
	"                      the run ends (or its dagrun is found dead)\n"
	"      --state DIR     the state directory (default: $DAGRUN_STATE, else .dagrun)\n"
	"\n"
	"Exit status: 0 printed, 2 usage error, no such run, task or attempt,\n"
	"3 the store or a log file cannot be read.\n";

struct logs_args {
	const char *state, *ref, *task;
	uint32_t attempt;          /* 0: all */
	bool follow;
};

static int parse_args(int argc, char **argv, struct logs_args *a)
{
	static const struct option opts[] = {
		{"help", no_argument, NULL, 'h'},
		{"attempt", required_argument, NULL, 'a'},
		{"follow", no_argument, NULL, 'f'},
		{"state", required_argument, NULL, 'S'},
		{0, 0, 0, 0},
	};
	int c;
	char *end;
	optind = 1;
	while ((c = getopt_long(argc, argv, "hf", opts, NULL)) != -1) {
		switch (c) {
		case 'h': fputs(usage, stdout); return 1;
		case 'a': {
			errno = 0;
			unsigned long v = strtoul(optarg, &end, 10);
			if (!*optarg || *end || *optarg == '-' || errno || v < 1 || v > UINT32_MAX) {
				fprintf(stderr, "dagrun logs: --attempt takes a number from 1\n");
				return -1;
			}
			a->attempt = (uint32_t)v;
			break;
		}
		case 'f': a->follow = true; break;
		case 'S': a->state = optarg; break;
		default: fputs(usage, stderr); return -1;
		}
	}
	if (argc - optind < 1 || argc - optind > 2) {
		fputs(usage, stderr);
		return -1;
	}
	a->ref = argv[optind];
	a->task = optind + 1 < argc ? argv[optind + 1] : NULL;
	if (a->state && !*a->state) {
		fprintf(stderr, "dagrun logs: --state takes a directory\n");
		return -1;
	}
	return 0;
}

/* ---- sources ---------------------------------------------------------------- */

struct source {
	uint32_t task;             /* index in the run asked about */
	uint64_t run;              /* where the attempt is stored */
	uint32_t stored_task, attempt;
	int stream;                /* STORE_STDOUT, STORE_STDERR */
	uint64_t start_ms;         /* the attempt's start: the order */
	char *path;                /* the file, once it exists */
	uint64_t off;              /* bytes read from it */
	struct buf held;           /* read, not printed yet (a partial line) */
	bool ended;                /* the attempt ended: the file is final */
	uint64_t logged, cut;      /* what the store says of the file, at the end */
	bool done;                 /* ended, drained, its notes printed */
};

struct logs {
	struct store *s;
	struct arena *mem;
	const struct store_run_info *ri;
	const char **ids;          /* task ids by index */
	uint32_t n_ids;
	const struct logs_args *a;
	int64_t task;              /* the TASK asked about, or -1 */
	struct source *src;
	size_t nsrc, capsrc;
	size_t last;               /* the source printed last (its header is up),
				    * or NO_SOURCE */
	bool bol;                  /* stdout is at the beginning of a line */
	bool printed;              /* some output was printed */
	uint32_t *empty_noted;     /* task mode: attempts said to have no output */
	size_t nempty;
	int err;                   /* the first failure (exit 3) */
};

#define NO_SOURCE SIZE_MAX

static const char *const stream_name[3] = {"", "stdout", "stderr"};

/* The index of a source in l->src, or NO_SOURCE. */
static size_t find_source(const struct logs *l, const struct store_attempt_info *a, int stream)
{
	for (size_t i = 0; i < l->nsrc; i++) {
		const struct source *s = &l->src[i];
		if (s->run == a->run && s->stored_task == a->stored_task &&
		    s->attempt == a->attempt && s->stream == stream)
			return i;
	}
	return NO_SOURCE;
}

/* Adds a source; returns its index, or NO_SOURCE (out of memory). */
static size_t add_source(struct logs *l, const struct store_attempt_info *a, int stream)
{
	if (l->nsrc == l->capsrc) {
		size_t cap = l->capsrc ? l->capsrc * 2 : 16;
		struct source *n = realloc(l->src, cap * sizeof(*n));
		if (!n)
			return NO_SOURCE;
		l->src = n;
		l->capsrc = cap;
	}
	struct source *s = &l->src[l->nsrc];
	memset(s, 0, sizeof(*s));
	s->task = a->task;
	s->run = a->run;
	s->stored_task = a->stored_task;
	s->attempt = a->attempt;
	s->stream = stream;
	s->start_ms = a->start_ms;
	return l->nsrc++;
}

static const char *task_id(const struct logs *l, uint32_t task)
{
	return task < l->n_ids ? l->ids[task] : "?";
}

/* Writes out[0 .. n) to stdout; keeps bol. */
static void put(struct logs *l, const char *p, size_t n)
{
	if (!n)
		return;
	fwrite(p, 1, n, stdout);
	l->bol = p[n - 1] == '\n';
	l->printed = true;
}

/* Puts source i's header up, unless it is up already. */
static void header(struct logs *l, size_t i)
{
	const struct source *s = &l->src[i];
	struct buf b = BUF_INIT;
	if (l->last == i)
		return;
	l->last = i;
	if (!l->bol)
		put(l, "\n", 1);
	int e = buf_adds(&b, l->printed ? "\n==> " : "==> ");
	e |= hist_esc(&b, task_id(l, s->task));
	e |= buf_printf(&b, ", attempt %u, %s <==\n", s->attempt, stream_name[s->stream]);
	if (e)
		l->err = -ENOMEM;
	else
		put(l, b.data, b.len);
	buf_free(&b);
}

/* Prints held bytes of s: the complete lines, or all of them (final), or
 * a long line's head (cut between characters). */
static void emit(struct logs *l, size_t i, bool final)
{
	struct buf *h = &l->src[i].held;
	size_t n = 0;
	if (final) {
		n = h->len;
	} else {
		const char *nl = h->len ? memrchr(h->data, '\n', h->len) : NULL;
		if (nl)
			n = (size_t)(nl - h->data) + 1;
		else if (h->len >= LINE_MAX_HELD)
			n = text_utf8_whole(h->data, h->len);
	}
	if (!n)
		return;
	header(l, i);
	struct buf out = BUF_INIT;
	if (text_escape(&out, h->data, n, TEXT_ESC_NEWLINE) < 0)
		l->err = -ENOMEM;
	else
		put(l, out.data, out.len);
	buf_free(&out);
	memmove(h->data, h->data + n, h->len - n);
	h->len -= n;
	if (h->data)
		h->data[h->len] = '\0';
}

/* Reads what s's file has past s->off, printing complete lines. */
static int pump(struct logs *l, size_t i)
{
	struct source *s = &l->src[i];
	if (!s->path)
		return 0;
	int fd = open(s->path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			return 0;   /* removed (pruned) under us: reported below */
		return -errno;
	}
	char *chunk = malloc(READ_CHUNK);
	int r = chunk ? 0 : -ENOMEM;
	while (r == 0) {
		ssize_t got = pread(fd, chunk, READ_CHUNK, (off_t)s->off);
		if (got < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			break;
		}
		if (got == 0)
			break;
		s->off += (uint64_t)got;
		if ((r = buf_add(&s->held, chunk, (size_t)got)) < 0)
			break;
		emit(l, i, false);
		/* A long line: emit() printed its head; keep reading. */
	}
	free(chunk);
	close(fd);
	return r;
}

/* Notes on stdout, after an ended source's bytes: what the cap cut. */
static void note_end(struct logs *l, size_t i)
{
	struct source *s = &l->src[i];
	char sz[32];
	emit(l, i, true);
	if (!l->bol && l->last == i)
		put(l, "\n", 1);   /* the next header starts a line */
	if (s->cut) {
		header(l, i);
		if (!l->bol)
			put(l, "\n", 1);
		text_fmt_bytes(s->cut, sz, sizeof(sz));
		printf("[dagrun: %s more of this stream was written but not kept: over the "
		       "log's cap]\n", sz);
		l->bol = true;
	}
	if (s->logged > s->off) {
		struct buf b = BUF_INIT;
		text_fmt_bytes(s->logged - s->off, sz, sizeof(sz));
		if (!hist_esc(&b, task_id(l, s->task)))
			fprintf(stderr, "dagrun logs: %s, attempt %u, %s: %s of its log %s\n",
				b.data ? b.data : "", s->attempt, stream_name[s->stream], sz,
				s->path ? "missing (the file is shorter than recorded)"
					: "missing (no file)");
		buf_free(&b);
	}
	s->done = true;
}

/* Task mode: an ended attempt without any output gets a line of its own,
 * so that every attempt shows. */
static void note_empty(struct logs *l, const struct store_attempt_info *a)
{
	for (size_t i = 0; i < l->nempty; i++)
		if (l->empty_noted[i] == a->attempt)
			return;
	uint32_t *n = realloc(l->empty_noted, (l->nempty + 1) * sizeof(*n));
	if (!n) {
		l->err = -ENOMEM;
		return;
	}
	l->empty_noted = n;
	n[l->nempty++] = a->attempt;
	struct buf b = BUF_INIT;
	if (!l->bol)
		put(l, "\n", 1);
	int e = buf_adds(&b, l->printed ? "\n==> " : "==> ");
	e |= hist_esc(&b, task_id(l, a->task));
	e |= buf_printf(&b, ", attempt %u: no output <==\n", a->attempt);
	if (e)
		l->err = -ENOMEM;
	else
		put(l, b.data, b.len);
	buf_free(&b);
	l->last = NO_SOURCE;
}

static int by_start(const void *x, const void *y)
{
	const struct store_attempt_info *a = x, *b = y;
	if (a->start_ms != b->start_ms)
		return a->start_ms < b->start_ms ? -1 : 1;
	if (a->task != b->task)
		return a->task < b->task ? -1 : 1;
	return a->attempt < b->attempt ? -1 : a->attempt > b->attempt;
}

/* One pass: the attempts as the store has them now, their files read to
 * their current ends. final: the run had ended before this pass began, so
 * every file is complete: flush everything. */
static int pass(struct logs *l, bool final)
{
	struct store_attempt_info *v = NULL;
	size_t n = 0;
	char *err = NULL;
	struct arena mem = ARENA_INIT;
	uint32_t which = l->task >= 0 ? (uint32_t)l->task : STORE_ALL_TASKS;
	int r = l->s->ops->attempts(l->s, l->ri->key, which, &mem, &v, &n, &err);
	if (r < 0) {
		hist_say("logs", err ? err : strerror(-r));
		goto out;
	}
	qsort(v, n, sizeof(*v), by_start);
	for (size_t i = 0; r == 0 && l->err == 0 && i < n; i++) {
		const struct store_attempt_info *a = &v[i];
		if (l->a->attempt && a->attempt != l->a->attempt)
			continue;
		size_t ss[3] = {NO_SOURCE, NO_SOURCE, NO_SOURCE};
		bool pending = false;
		for (int st = STORE_STDOUT; st <= STORE_STDERR; st++) {
			size_t k = find_source(l, a, st);
			if (k != NO_SOURCE && l->src[k].done)
				continue;
			if (k == NO_SOURCE && (k = add_source(l, a, st)) == NO_SOURCE) {
				r = -ENOMEM;
				break;
			}
			ss[st] = k;
			pending = true;
		}
		if (r < 0 || !pending)
			continue;
		struct store_log_files lf;
		if ((r = l->s->ops->log_files(l->s, a->run, a->stored_task, a->attempt, &mem,
					      &lf, &err)) < 0) {
			hist_say("logs", err ? err : strerror(-r));
			break;
		}
		bool any = false;
		for (int st = STORE_STDOUT; st <= STORE_STDERR && r == 0; st++) {
			if (ss[st] == NO_SOURCE)
				continue;
			struct source *s = &l->src[ss[st]];
			if (!s->path && lf.path[st] && !(s->path = strdup(lf.path[st]))) {
				r = -ENOMEM;
				break;
			}
			s->ended = a->ended;
			s->logged = st == STORE_STDOUT ? a->out_logged : a->err_logged;
			s->cut = st == STORE_STDOUT ? a->out_log_cut : a->err_log_cut;
			if ((r = pump(l, ss[st])) < 0) {
				struct buf b = BUF_INIT;
				if (!hist_esc(&b, s->path))
					fprintf(stderr, "dagrun logs: %s: %s\n", b.data ? b.data : "",
						strerror(-r));
				buf_free(&b);
				break;
			}
			s = &l->src[ss[st]];
			any |= s->path != NULL || s->off > 0;
			if (a->ended || final)
				note_end(l, ss[st]);
		}
		if (r == 0 && l->task >= 0 && (a->ended || final) && !any && !a->out_logged &&
		    !a->err_logged && !a->out_log_cut && !a->err_log_cut)
			note_empty(l, a);
	}
	if (r == 0 && l->err)
		r = l->err;
out:
	free(err);
	arena_free(&mem);
	fflush(stdout);
	return r;
}

static void nap(unsigned ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* The index of the task `id` in the run, or -1 after saying so. */
static int64_t find_task(struct logs *l, const char *id)
{
	for (uint32_t i = 0; i < l->n_ids; i++)
		if (!strcmp(l->ids[i], id))
			return i;
	struct buf b = BUF_INIT;
	int e = buf_printf(&b, "no task '%s' in run %s (tasks: ", id, l->ri->run_id);
	for (uint32_t i = 0; !e && i < l->n_ids && i < 20; i++)
		e = buf_printf(&b, "%s%s", i ? ", " : "", l->ids[i]);
	if (!e && l->n_ids > 20)
		e = buf_printf(&b, " and %u more", l->n_ids - 20);
	if (!e && buf_adds(&b, ")") == 0)
		hist_say("logs", b.data);
	buf_free(&b);
	return -1;
}

static int load_tasks(struct logs *l)
{
	struct store_task_info *t = NULL;
	size_t n = 0;
	char *err = NULL;
	int r = l->s->ops->tasks(l->s, l->ri->key, l->mem, &t, &n, &err);
	if (r < 0) {
		hist_say("logs", err ? err : strerror(-r));
		free(err);
		return r;
	}
	l->ids = arena_alloc(l->mem, (n ? n : 1) * sizeof(*l->ids));
	if (!l->ids)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		l->ids[i] = t[i].id;
	l->n_ids = (uint32_t)n;
	return 0;
}

/* How the run stands, on stderr, once its output is printed. */
static void say_status(const struct logs *l, int status)
{
	struct buf b = BUF_INIT;
	int e = 0;
	if (status == STORE_RUN_RUNNING)
		e = buf_printf(&b, "run %s is still running (-f follows it)", l->ri->run_id);
	else if (status == STORE_RUN_INTERRUPTED)
		e = buf_printf(&b, "run %s was interrupted: the dagrun that drove it is gone "
			       "without ending it", l->ri->run_id);
	else if (l->a->follow)
		e = buf_printf(&b, "run %s ended: %s", l->ri->run_id,
			       store_run_status_name(status));
	if (!e && b.len)
		hist_say("logs", b.data);
	buf_free(&b);
}

/* Prints what is there; with -f, follows until the run ends. Returns the
 * exit status. */
static int show_logs(struct logs *l)
{
	struct store_run_info now = *l->ri;
	for (;;) {
		bool ended = now.status != STORE_RUN_RUNNING;
		if (pass(l, ended || !l->a->follow) < 0)
			return EXIT_INTERNAL;
		if (ended || !l->a->follow)
			break;
		nap(POLL_MS);
		char *err = NULL;
		struct arena mem = ARENA_INIT;
		int r = l->s->ops->get_run(l->s, l->ri->key, &mem, &now, &err);
		now.run_id = now.workflow = now.path = now.error = NULL;
		now.lease.host = NULL;
		arena_free(&mem);
		if (r < 0) {
			hist_say("logs", r == -ENOENT ? "the run was removed from the store "
				 "while being followed" : err ? err : strerror(-r));
			free(err);
			return EXIT_INTERNAL;
		}
		free(err);
	}
	struct buf b = BUF_INIT;
	int e = 0;
	if (!l->printed) {
		e = buf_printf(&b, "no output recorded for %s%s", l->task >= 0 ? "task " : "run ",
			       l->task >= 0 ? task_id(l, (uint32_t)l->task) : l->ri->run_id);
		if (!e && l->a->attempt)
			e = buf_printf(&b, ", attempt %u", l->a->attempt);
		if (!e)
			hist_say("logs", b.data);
	}
	buf_free(&b);
	say_status(l, now.status);
	return EXIT_OK;
}

/* --attempt N of TASK (not following a live run): N must exist. */
static int check_attempt(struct logs *l)
{
	struct store_attempt_info *v = NULL;
	size_t n = 0;
	char *err = NULL;
	struct arena mem = ARENA_INIT;
	int r = l->s->ops->attempts(l->s, l->ri->key, (uint32_t)l->task, &mem, &v, &n, &err);
	int status = EXIT_OK;
	if (r < 0) {
		hist_say("logs", err ? err : strerror(-r));
		status = EXIT_INTERNAL;
	} else {
		bool found = false;
		for (size_t i = 0; i < n; i++)
			found |= v[i].attempt == l->a->attempt;
		if (!found) {
			struct buf b = BUF_INIT;
			if (!buf_printf(&b, "task '%s' of run %s has no attempt %u (it has %zu)",
					task_id(l, (uint32_t)l->task), l->ri->run_id, l->a->attempt, n))
				hist_say("logs", b.data);
			buf_free(&b);
			status = EXIT_USAGE;
		}
	}
	free(err);
	arena_free(&mem);
	return status;
}

int cli_logs(int argc, char **argv)
{
	struct logs_args a = {0};
	int r = parse_args(argc, argv, &a);
	if (r)
		return r > 0 ? EXIT_OK : EXIT_USAGE;
	const char *dir = cli_state_dir(a.state);
	struct store *s = NULL;
	struct arena mem = ARENA_INIT;
	struct store_run_info ri;
	struct logs l = {.mem = &mem, .ri = &ri, .a = &a, .task = -1, .bol = true,
			 .last = NO_SOURCE};
	int status = EXIT_OK;
	if ((r = hist_open("logs", dir, false, &s)) == -ENOENT) {
		hist_none("logs", dir);
		return EXIT_USAGE;
	}
	if (r < 0)
		return EXIT_INTERNAL;
	l.s = s;
	if ((status = hist_find("logs", s, a.ref, &mem, &ri)) != EXIT_OK)
		goto out;
	if (load_tasks(&l) < 0) {
		status = EXIT_INTERNAL;
		goto out;
	}
	if (a.task && (l.task = find_task(&l, a.task)) < 0) {
		status = EXIT_USAGE;
		goto out;
	}
	if (a.task && a.attempt && !(a.follow && ri.status == STORE_RUN_RUNNING) &&
	    (status = check_attempt(&l)) != EXIT_OK)
		goto out;
	status = show_logs(&l);
out:
	for (size_t i = 0; i < l.nsrc; i++) {
		free(l.src[i].path);
		buf_free(&l.src[i].held);
	}
	free(l.src);
	free(l.empty_noted);
	arena_free(&mem);
	store_close(s);
	if (fflush(stdout) != 0 && status == EXIT_OK) {
		fprintf(stderr, "dagrun logs: cannot write: %s\n", strerror(errno));
		status = EXIT_INTERNAL;
	}
	return status;
}
