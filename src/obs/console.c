/* console.c: the human display observer.
 *
 * On a terminal (LIVE): finished tasks are printed as lines and one status
 * line, `[done/total] running N · failed N · retrying N  <newest task>`, is
 * redrawn below them. Elsewhere: one plain line per state change. At the end:
 * counts by status, wall time, the slowest tasks, output cut at the
 * per-attempt cap, lines the reader was too slow for, and every failure with
 * its class and the tail of its stderr.
 *
 * Each event is formatted into one record (c->rec) handed to a sink
 * (sink.h), which never blocks: a slow reader costs lines (counted and
 * announced), never the engine's time. Text that came from the workflow or
 * a task goes through text_escape (text.h), on a terminal or not, so it can
 * neither drive the terminal nor hide part of a line.
 * Invariants: the status line, when shown, is always the last line on the
 * screen and is erased before other output; in LIVE mode every record that
 * prints starts by erasing it and ends by redrawing it, so dropping a
 * whole record leaves the screen consistent.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dagrun.h"
#include "obs/sink.h"
#include "util/text.h"
#include "util/buf.h"

#define SLOWEST 5
#define FAILURES_KEPT 20
#define CUTS_KEPT 5
#define ID_SHOWN 60
#define PARTIALS 32          /* output streams with an unfinished line */
#define PARTIAL_MAX 4096     /* a longer unfinished line is shown as is */

/* The unfinished last line of one task's stream, until its newline. */
struct partial {
	uint32_t task;
	int stream;          /* 0: free */
	char id[ID_SHOWN + 1];
	struct buf b;
};

struct slow {
	uint64_t ms;
	char id[ID_SHOWN + 1];
};

#define MODELS 16

/* Tokens used per model, for the summary. */
struct usage {
	char model[64];
	uint64_t prompt, completion, calls;
};

struct failure {
	char *id, *error, *tail;
	size_t tail_len;
	int cls;
};

/* A task whose output was cut at the per-attempt cap, for the summary. */
struct cut {
	char id[ID_SHOWN + 1];
	bool out, err;
};

struct dagrun_console {
	struct obs_sink *sink;
	struct buf rec;          /* the text of the event being handled */
	struct buf final;        /* the summary, when it had to wait for room */
	int flags;
	uint64_t total, done, running, failed, retrying;
	size_t counts[DAGRUN_CANCELLED + 1];
	char newest[ID_SHOWN + 1];
	bool line_shown;
	struct slow slow[SLOWEST];
	struct failure fail[FAILURES_KEPT];
	size_t n_fail, more_fail;
	struct cut cut[CUTS_KEPT];
	size_t n_cut, more_cut;
	struct partial part[PARTIALS];
	struct usage usage[MODELS];
	size_t n_usage;
	uint32_t last_task;      /* the task of the last ATTEMPT_END */
	uint64_t last_ms;        /* its duration */
};

static void fmt_bytes(uint64_t n, char *buf, size_t size)
{
	if (n < 1024)
		snprintf(buf, size, "%llu B", (unsigned long long)n);
	else if (n < (1u << 20))
		snprintf(buf, size, "%.1f KiB", (double)n / 1024);
	else if (n < (1u << 30))
		snprintf(buf, size, "%.1f MiB", (double)n / (1 << 20));
	else
		snprintf(buf, size, "%.1f GiB", (double)n / (1 << 30));
}

static int drop_notice(void *ud, uint64_t lines, uint64_t bytes, struct buf *out)
{
	const dagrun_console *c = ud;
	char sz[32];
	fmt_bytes(bytes, sz, sizeof(sz));
	return buf_printf(out, "%s[dagrun: %llu line%s (%s) of output dropped: the reader is too slow]\n",
			  (c->flags & DAGRUN_CONSOLE_LIVE) ? "\r\033[K" : "",
			  (unsigned long long)lines, lines == 1 ? "" : "s", sz);
}

dagrun_console *dagrun_console_new(FILE *out, int flags)
{
	dagrun_console *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->flags = flags;
	c->last_task = UINT32_MAX;
	int r = obs_sink_new(out, 0, drop_notice, c, &c->sink);
	if (r < 0) {
		free(c);
		errno = -r;
		return NULL;
	}
	return c;
}

/* ---- formatting into the record -------------------------------------------- */

__attribute__((format(printf, 2, 3)))
static void put(dagrun_console *c, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	buf_vprintf(&c->rec, fmt, ap);
	va_end(ap);
}

/* Text from the workflow or a task, escaped; NULL prints nothing. */
static void put_textn(dagrun_console *c, const char *p, size_t n)
{
	if (p)
		text_escape(&c->rec, p, n, 0);
}

static void put_text(dagrun_console *c, const char *s)
{
	if (s)
		put_textn(c, s, strlen(s));
}

/* A message (an error, a log line): its own newlines are kept. */
static void put_message(dagrun_console *c, const char *s)
{
	if (s)
		text_escape(&c->rec, s, strlen(s), TEXT_ESC_NEWLINE);
}

/* Hands the record to the sink. last: the summary, never dropped: when
 * there is no room now, it waits for dagrun_console_free (which may block;
 * the run must not). bulk: task output, the first to go when the reader is
 * slow. */
static void send(dagrun_console *c, bool last, bool bulk)
{
	if (c->rec.len) {
		if (last && obs_sink_try_write(c->sink, c->rec.data, c->rec.len) == 1) {
			buf_free(&c->final);
			c->final = c->rec;
			c->rec = (struct buf)BUF_INIT;
			return;
		}
		if (!last)
			obs_sink_write(c->sink, c->rec.data, c->rec.len, !bulk);
	}
	buf_reset(&c->rec);
}

/* Copies at most ID_SHOWN bytes of s, not cutting a character. */
static void copy_id(char *dst, const char *s)
{
	size_t n = strlen(s);
	if (n > ID_SHOWN)
		n = text_utf8_whole(s, ID_SHOWN);
	memcpy(dst, s, n);
	dst[n] = '\0';
}

static const char *col(const dagrun_console *c, const char *code)
{
	return (c->flags & DAGRUN_CONSOLE_COLOR) ? code : "";
}

#define RESET "\033[0m"
#define RED "\033[31m"
#define GREEN "\033[32m"
#define YELLOW "\033[33m"
#define BOLD "\033[1m"
#define DIM "\033[2m"

static void clear_line(dagrun_console *c)
{
	if (c->line_shown) {
		put(c, "\r\033[K");
		c->line_shown = false;
	}
}

static void draw_line(dagrun_console *c)
{
	if (!(c->flags & DAGRUN_CONSOLE_LIVE))
		return;
	clear_line(c);
	put(c, "[%llu/%llu] running %llu · failed %llu · retrying %llu  ",
	    (unsigned long long)c->done, (unsigned long long)c->total,
	    (unsigned long long)c->running, (unsigned long long)c->failed,
	    (unsigned long long)c->retrying);
	put_text(c, c->newest);
	c->line_shown = true;
}

static void fmt_ms(uint64_t ms, char *buf, size_t n)
{
	if (ms < 1000)
		snprintf(buf, n, "%llums", (unsigned long long)ms);
	else if (ms < 60000)
		snprintf(buf, n, "%.1fs", (double)ms / 1000);
	else
		snprintf(buf, n, "%llum%02llus", (unsigned long long)(ms / 60000),
			 (unsigned long long)(ms / 1000 % 60));
}

/* ---- what the summary remembers --------------------------------------------- */

/* Keeps the SLOWEST longest attempts, one entry per task. */
static void note_slow(dagrun_console *c, const char *task, uint64_t ms)
{
	char id[ID_SHOWN + 1];
	copy_id(id, task);
	int n = 0, found = -1;
	while (n < SLOWEST && c->slow[n].id[0]) {
		if (found < 0 && strcmp(c->slow[n].id, id) == 0)
			found = n;
		n++;
	}
	if (found >= 0) {
		if (c->slow[found].ms >= ms)
			return;
		memmove(&c->slow[found], &c->slow[found + 1],
			(size_t)(n - found - 1) * sizeof(c->slow[0]));
		c->slow[--n].id[0] = '\0';
	}
	int i = n < SLOWEST ? n : SLOWEST - 1;
	if (n == SLOWEST && ms <= c->slow[i].ms)
		return;
	while (i > 0 && ms > c->slow[i - 1].ms) {
		c->slow[i] = c->slow[i - 1];
		i--;
	}
	c->slow[i].ms = ms;
	memcpy(c->slow[i].id, id, sizeof(id));
}

static void note_usage(dagrun_console *c, const dagrun_event *ev)
{
	const dagrun_ext_ai *ai = (const dagrun_ext_ai *)dagrun_ext_find(ev->ext, DAGRUN_EXT_AI);
	if (!ai || ai->prompt_tokens < 0 || !ai->model)
		return;
	size_t i = 0;
	while (i < c->n_usage && strncmp(c->usage[i].model, ai->model, sizeof(c->usage[i].model) - 1))
		i++;
	if (i == c->n_usage) {
		if (c->n_usage == MODELS)
			i = MODELS - 1;   /* the last line then sums the rest */
		else
			snprintf(c->usage[c->n_usage++].model, sizeof(c->usage[i].model), "%s",
				 ai->model);
	}
	c->usage[i].prompt += (uint64_t)ai->prompt_tokens;
	c->usage[i].completion += (uint64_t)(ai->completion_tokens > 0 ? ai->completion_tokens : 0);
	c->usage[i].calls++;
}

static void note_failure(dagrun_console *c, const dagrun_event *ev)
{
	if (c->n_fail == FAILURES_KEPT) {
		c->more_fail++;
		return;
	}
	struct failure *f = &c->fail[c->n_fail++];
	f->id = strdup(ev->task ? ev->task : "");
	f->error = ev->error ? strdup(ev->error) : NULL;
	if (ev->len && (f->tail = malloc(ev->len))) {
		memcpy(f->tail, ev->data, ev->len);
		f->tail_len = ev->len;
	}
	f->cls = ev->error_class;
}

static void note_cut(dagrun_console *c, const dagrun_event *ev)
{
	char id[ID_SHOWN + 1];
	copy_id(id, ev->task ? ev->task : "");
	for (size_t i = 0; i < c->n_cut; i++)
		if (!strcmp(c->cut[i].id, id)) {
			c->cut[i].out |= ev->out_dropped > 0;
			c->cut[i].err |= ev->err_dropped > 0;
			return;
		}
	if (c->n_cut == CUTS_KEPT) {
		c->more_cut++;
		return;
	}
	struct cut *k = &c->cut[c->n_cut++];
	memcpy(k->id, id, sizeof(id));
	k->out = ev->out_dropped > 0;
	k->err = ev->err_dropped > 0;
}

static bool is_final(int s)
{
	return s == DAGRUN_COMPLETED || s == DAGRUN_FAILED || s == DAGRUN_SKIPPED ||
	       s == DAGRUN_CANCELLED;
}

/* ---- events ------------------------------------------------------------------ */

/* Prints the line for a status change, if it deserves one. */
static void print_status(dagrun_console *c, const dagrun_event *ev)
{
	bool quiet = c->flags & DAGRUN_CONSOLE_QUIET;
	bool live = c->flags & DAGRUN_CONSOLE_LIVE;
	switch (ev->status) {
	case DAGRUN_RUNNING:
		if (live || quiet)
			return;
		put(c, "started   ");
		put_text(c, ev->task);
		if (ev->attempt > 1)
			put(c, " (attempt %u)", ev->attempt);
		put(c, "\n");
		return;
	case DAGRUN_COMPLETED:
		if (quiet)
			return;
		put(c, "%sok%s        ", col(c, GREEN), col(c, RESET));
		put_text(c, ev->task);
		if (c->last_task == ev->task_index) {
			char d[32];
			fmt_ms(c->last_ms, d, sizeof(d));
			put(c, " %s(%s)%s", col(c, DIM), d, col(c, RESET));
		}
		put(c, "\n");
		return;
	case DAGRUN_FAILED:
		put(c, "%sFAILED%s    ", col(c, RED), col(c, RESET));
		put_text(c, ev->task);
		put(c, " (%s): ", dagrun_class_name(ev->error_class));
		put_message(c, ev->error ? ev->error : "failed");
		put(c, "\n");
		return;
	case DAGRUN_RETRYING:
		return;  /* the RETRY event that follows says it all */
	case DAGRUN_SKIPPED:
		if (!quiet) {
			put(c, "skipped   ");
			put_text(c, ev->task);
			put(c, "\n");
		}
		return;
	case DAGRUN_CANCELLED:
		put(c, "%scancelled%s ", col(c, YELLOW), col(c, RESET));
		put_text(c, ev->task);
		put(c, "\n");
		return;
	default:
		return;
	}
}

static void on_status(dagrun_console *c, const dagrun_event *ev)
{
	if (ev->old_status == DAGRUN_RUNNING)
		c->running--;
	if (ev->old_status == DAGRUN_RETRYING)
		c->retrying--;
	switch (ev->status) {
	case DAGRUN_RUNNING:
		c->running++;
		copy_id(c->newest, ev->task ? ev->task : "");
		break;
	case DAGRUN_RETRYING:
		c->retrying++;
		break;
	case DAGRUN_FAILED:
		c->failed += !ev->depth;
		note_failure(c, ev);   /* a sub-run's too: the cause of its task's */
		break;
	default:
		break;
	}
	if (is_final(ev->status) && !ev->depth) {   /* a sub-run's tasks are its task's */
		c->done++;
		c->counts[ev->status]++;
		if (c->done > c->total)
			c->total = c->done;
	}
	clear_line(c);
	print_status(c, ev);
	draw_line(c);
}

/* One line of output; a CR before its end (CRLF) is not shown. */
static void print_line(dagrun_console *c, const char *id, const char *p, size_t n)
{
	if (n && p[n - 1] == '\r')
		n--;
	put(c, "%s", col(c, DIM));
	put_text(c, id);
	put(c, " |%s ", col(c, RESET));
	put_textn(c, p, n);
	put(c, "\n");
}

/* Prints what p holds as a line and frees the slot. */
static void flush_partial(dagrun_console *c, struct partial *p)
{
	if (p->b.len)
		print_line(c, p->id, p->b.data, p->b.len);
	buf_free(&p->b);
	p->stream = 0;
}

static struct partial *partial_of(dagrun_console *c, const dagrun_event *ev)
{
	struct partial *free_slot = NULL;
	for (int i = 0; i < PARTIALS; i++) {
		struct partial *p = &c->part[i];
		if (p->stream == ev->stream && p->task == ev->task_index)
			return p;
		if (!p->stream && !free_slot)
			free_slot = p;
	}
	if (free_slot) {
		free_slot->task = ev->task_index;
		free_slot->stream = ev->stream;
		copy_id(free_slot->id, ev->task ? ev->task : "");
		free_slot->b = (struct buf)BUF_INIT;
	}
	return free_slot;
}

/* Shows part's text up to its last whole character (all of it at a
 * newline) and keeps the rest, a character cut short, for the next chunk. */
static void show_partial(dagrun_console *c, struct partial *part, bool at_newline)
{
	struct buf *b = &part->b;
	size_t show = at_newline ? b->len : text_utf8_whole(b->data, b->len);
	if (!show && !at_newline)
		return;
	print_line(c, part->id, b->data ? b->data : "", show);
	memmove(b->data, b->data + show, b->len - show);
	b->len -= show;
	b->data[b->len] = '\0';
}

/* Task output, one prefixed line per line; an unfinished line waits for
 * the rest of it (or the end of the attempt). */
static void on_output(dagrun_console *c, const dagrun_event *ev)
{
	if (!(c->flags & DAGRUN_CONSOLE_VERBOSE))
		return;
	clear_line(c);
	struct partial *part = partial_of(c, ev);
	const char *p = ev->data, *end = ev->data + ev->len;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
		if (!nl && part && part->b.len + n < PARTIAL_MAX) {
			buf_add(&part->b, p, n);
			break;
		}
		if (part && (part->b.len || !nl) && buf_add(&part->b, p, n) == 0)
			show_partial(c, part, nl != NULL);
		else
			print_line(c, ev->task, p, n);
		p += n + (nl ? 1 : 0);
	}
	if (part && !part->b.len)
		flush_partial(c, part);
	draw_line(c);
}

static void flush_task_output(dagrun_console *c, uint32_t task)
{
	for (int i = 0; i < PARTIALS; i++)
		if (c->part[i].stream && c->part[i].task == task) {
			clear_line(c);
			flush_partial(c, &c->part[i]);
		}
}

/* A line for an attempt whose output the result does not keep in full. */
static void print_cut(dagrun_console *c, const dagrun_event *ev)
{
	clear_line(c);
	put(c, "%struncated%s ", col(c, YELLOW), col(c, RESET));
	put_text(c, ev->task);
	const char *sep = ": ";
	for (int s = 0; s < 2; s++) {
		uint64_t all = s ? ev->err_bytes : ev->out_bytes;
		uint64_t dropped = s ? ev->err_dropped : ev->out_dropped;
		if (!dropped)
			continue;
		char kept[32], total[32], gone[32];
		fmt_bytes(all > dropped ? all - dropped : 0, kept, sizeof(kept));
		fmt_bytes(all, total, sizeof(total));
		fmt_bytes(dropped, gone, sizeof(gone));
		put(c, "%s%s kept its first %s of %s (%s dropped)", sep, s ? "stderr" : "stdout",
		    kept, total, gone);
		sep = ", ";
	}
	if (ev->attempt > 1)
		put(c, " in attempt %u", ev->attempt);
	put(c, "\n");
	draw_line(c);
}

static void on_attempt_end(dagrun_console *c, const dagrun_event *ev)
{
	flush_task_output(c, ev->task_index);
	note_slow(c, ev->task ? ev->task : "", ev->duration_ms);
	note_usage(c, ev);
	c->last_task = ev->task_index;
	c->last_ms = ev->duration_ms;
	if (ev->out_dropped || ev->err_dropped) {
		note_cut(c, ev);
		if (!(c->flags & DAGRUN_CONSOLE_QUIET))
			print_cut(c, ev);
	}
}

/* ---- the summary -------------------------------------------------------------- */

static void print_tail(dagrun_console *c, const char *p, size_t len)
{
	const char *end = p + len;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
		if (n && p[n - 1] == '\r')
			n--;
		put(c, "    | ");
		put_textn(c, p, n);
		put(c, "\n");
		p = nl ? nl + 1 : end;
	}
}

static void print_cuts(dagrun_console *c)
{
	if (!c->n_cut)
		return;
	put(c, "%struncated%s output (over 1 MiB per attempt): ", col(c, YELLOW), col(c, RESET));
	for (size_t i = 0; i < c->n_cut; i++) {
		put(c, "%s", i ? ", " : "");
		put_text(c, c->cut[i].id);
		put(c, " (%s)", c->cut[i].out && c->cut[i].err ? "stdout, stderr"
			       : c->cut[i].out ? "stdout" : "stderr");
	}
	if (c->more_cut)
		put(c, " and %zu more", c->more_cut);
	put(c, "\n");
}

static void print_dropped(dagrun_console *c)
{
	uint64_t lines, bytes;
	obs_sink_dropped(c->sink, &lines, &bytes);
	if (!bytes)
		return;
	char sz[32];
	fmt_bytes(bytes, sz, sizeof(sz));
	put(c, "%sdropped%s %llu line%s (%s) of this display: the reader was too slow\n",
	    col(c, YELLOW), col(c, RESET), (unsigned long long)lines, lines == 1 ? "" : "s", sz);
}

static void print_summary(dagrun_console *c, const dagrun_event *ev)
{
	clear_line(c);
	char wall[32];
	fmt_ms(ev->count, wall, sizeof(wall));
	uint64_t not_run = c->total > c->done ? c->total - c->done : 0;
	put(c, "\n%s%s%s: %zu completed, %zu failed, %zu skipped, %zu cancelled",
	    col(c, BOLD), ev->status == DAGRUN_COMPLETED ? "done" :
	    ev->status == DAGRUN_CANCELLED ? "interrupted" : "FAILED", col(c, RESET),
	    c->counts[DAGRUN_COMPLETED], c->counts[DAGRUN_FAILED],
	    c->counts[DAGRUN_SKIPPED], c->counts[DAGRUN_CANCELLED]);
	if (not_run)
		put(c, ", %llu not run", (unsigned long long)not_run);
	put(c, " in %s (run ", wall);
	put_text(c, ev->run_id ? ev->run_id : "?");
	put(c, ")\n");
	if (c->slow[0].id[0] && !(c->flags & DAGRUN_CONSOLE_QUIET)) {
		put(c, "slowest:");
		for (int i = 0; i < SLOWEST && c->slow[i].id[0]; i++) {
			char d[32];
			fmt_ms(c->slow[i].ms, d, sizeof(d));
			put(c, "%s ", i ? "," : "");
			put_text(c, c->slow[i].id);
			put(c, " %s", d);
		}
		put(c, "\n");
	}
	for (size_t i = 0; i < c->n_usage; i++) {
		put(c, "tokens: ");
		put_text(c, c->usage[i].model);
		put(c, ": %llu prompt + %llu completion in %llu call%s\n",
		    (unsigned long long)c->usage[i].prompt,
		    (unsigned long long)c->usage[i].completion,
		    (unsigned long long)c->usage[i].calls, c->usage[i].calls == 1 ? "" : "s");
	}
	print_cuts(c);
	print_dropped(c);
	for (size_t i = 0; i < c->n_fail; i++) {
		struct failure *f = &c->fail[i];
		put(c, "%sfailed%s ", col(c, RED), col(c, RESET));
		put_text(c, f->id);
		put(c, " [%s]: ", dagrun_class_name(f->cls));
		put_message(c, f->error ? f->error : "");
		put(c, "\n");
		if (f->tail)
			print_tail(c, f->tail, f->tail_len);
	}
	if (c->more_fail)
		put(c, "... and %zu more failures\n", c->more_fail);
}

void dagrun_console_event(void *ud, const dagrun_event *ev)
{
	dagrun_console *c = ud;
	bool last = false;
	switch (ev->type) {
	case DAGRUN_EV_RUN_START:
		c->total = ev->count;
		draw_line(c);
		break;
	case DAGRUN_EV_TASK_STATUS:
		on_status(c, ev);
		break;
	case DAGRUN_EV_ATTEMPT_END:
		on_attempt_end(c, ev);
		break;
	case DAGRUN_EV_RETRY:
		if (!(c->flags & DAGRUN_CONSOLE_QUIET)) {
			char d[32];
			fmt_ms(ev->delay_ms, d, sizeof(d));
			clear_line(c);
			put(c, "%sretrying%s  ", col(c, YELLOW), col(c, RESET));
			put_text(c, ev->task);
			put(c, ": attempt %u failed (%s: ", ev->attempt,
			    dagrun_class_name(ev->error_class));
			put_message(c, ev->error ? ev->error : "failed");
			put(c, "), next in %s\n", d);
			draw_line(c);
		}
		break;
	case DAGRUN_EV_OUTPUT:
		on_output(c, ev);
		break;
	case DAGRUN_EV_LOG:
		if (ev->level >= DAGRUN_WARN || !(c->flags & DAGRUN_CONSOLE_QUIET)) {
			clear_line(c);
			put(c, "dagrun: ");
			put_message(c, ev->message);
			put(c, "\n");
			draw_line(c);
		}
		break;
	case DAGRUN_EV_RUN_END:
		print_summary(c, ev);
		last = true;
		break;
	default:
		break;
	}
	/* LIVE: every record ends with the status line (see the invariant). */
	if (!last && c->rec.len && !c->line_shown)
		draw_line(c);
	send(c, last, ev->type == DAGRUN_EV_OUTPUT);
}

void dagrun_console_free(dagrun_console *c)
{
	if (!c)
		return;
	if (c->final.len)
		obs_sink_write_wait(c->sink, c->final.data, c->final.len);
	clear_line(c);   /* a run that never ended: leave a clean line */
	if (c->rec.len)
		obs_sink_write_wait(c->sink, c->rec.data, c->rec.len);
	obs_sink_free(c->sink);
	buf_free(&c->final);
	for (size_t i = 0; i < c->n_fail; i++) {
		free(c->fail[i].id);
		free(c->fail[i].error);
		free(c->fail[i].tail);
	}
	for (int i = 0; i < PARTIALS; i++)
		buf_free(&c->part[i].b);
	buf_free(&c->rec);
	free(c);
}
