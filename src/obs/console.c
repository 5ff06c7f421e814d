/* console.c: the human display observer: the record, the live line and
 * the events (task output as lines is in console_output.c, the summary in
 * console_summary.c; console_int.h declares what they share).
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

#include "obs/console_int.h"
#include "util/text.h"

static int drop_notice(void *ud, uint64_t lines, uint64_t bytes, struct buf *out)
{
	const dagrun_console *c = ud;
	char sz[32];
	text_fmt_bytes(bytes, sz, sizeof(sz));
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

void console_put(dagrun_console *c, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	buf_vprintf(&c->rec, fmt, ap);
	va_end(ap);
}

/* Text from the workflow or a task, escaped; NULL prints nothing. */
void console_put_textn(dagrun_console *c, const char *p, size_t n)
{
	if (p)
		text_escape(&c->rec, p, n, 0);
}

void console_put_text(dagrun_console *c, const char *s)
{
	if (s)
		console_put_textn(c, s, strlen(s));
}

/* A message (an error, a log line): its own newlines are kept. */
void console_put_message(dagrun_console *c, const char *s)
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
void console_copy_id(char *dst, const char *s)
{
	size_t n = strlen(s);
	if (n > ID_SHOWN)
		n = text_utf8_whole(s, ID_SHOWN);
	memcpy(dst, s, n);
	dst[n] = '\0';
}

const char *console_col(const dagrun_console *c, const char *code)
{
	return (c->flags & DAGRUN_CONSOLE_COLOR) ? code : "";
}

void console_clear_line(dagrun_console *c)
{
	if (c->line_shown) {
		console_put(c, "\r\033[K");
		c->line_shown = false;
	}
}

void console_draw_line(dagrun_console *c)
{
	if (!(c->flags & DAGRUN_CONSOLE_LIVE))
		return;
	console_clear_line(c);
	console_put(c, "[%llu/%llu] running %llu · failed %llu · retrying %llu  ",
	    (unsigned long long)c->done, (unsigned long long)c->total,
	    (unsigned long long)c->running, (unsigned long long)c->failed,
	    (unsigned long long)c->retrying);
	console_put_text(c, c->newest);
	c->line_shown = true;
}

void console_fmt_ms(uint64_t ms, char *buf, size_t n)
{
	if (ms < 1000)
		snprintf(buf, n, "%llums", (unsigned long long)ms);
	else if (ms < 60000)
		snprintf(buf, n, "%.1fs", (double)ms / 1000);
	else
		snprintf(buf, n, "%llum%02llus", (unsigned long long)(ms / 60000),
			 (unsigned long long)(ms / 1000 % 60));
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
		console_put(c, "started   ");
		console_put_text(c, ev->task);
		if (ev->attempt > 1)
			console_put(c, " (attempt %u)", ev->attempt);
		console_put(c, "\n");
		return;
	case DAGRUN_COMPLETED:
		if (quiet)
			return;
		console_put(c, "%sok%s        ", console_col(c, GREEN), console_col(c, RESET));
		console_put_text(c, ev->task);
		if (c->last_task == ev->task_index && c->last_cached) {
			console_put(c, " %s(cached)%s", console_col(c, DIM), console_col(c, RESET));
		} else if (c->last_task == ev->task_index) {
			char d[32];
			console_fmt_ms(c->last_ms, d, sizeof(d));
			console_put(c, " %s(%s)%s", console_col(c, DIM), d, console_col(c, RESET));
		}
		console_put(c, "\n");
		return;
	case DAGRUN_FAILED:
		console_put(c, "%sFAILED%s    ", console_col(c, RED), console_col(c, RESET));
		console_put_text(c, ev->task);
		console_put(c, " (%s): ", dagrun_class_name(ev->error_class));
		console_put_message(c, ev->error ? ev->error : "failed");
		console_put(c, "\n");
		return;
	case DAGRUN_RETRYING:
		return;  /* the RETRY event that follows says it all */
	case DAGRUN_SKIPPED:
		if (!quiet) {
			console_put(c, "skipped   ");
			console_put_text(c, ev->task);
			console_put(c, "\n");
		}
		return;
	case DAGRUN_CANCELLED:
		console_put(c, "%scancelled%s ", console_col(c, YELLOW), console_col(c, RESET));
		console_put_text(c, ev->task);
		console_put(c, "\n");
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
		console_copy_id(c->newest, ev->task ? ev->task : "");
		break;
	case DAGRUN_RETRYING:
		c->retrying++;
		break;
	case DAGRUN_FAILED:
		c->failed += !ev->depth;
		console_note_failure(c, ev);   /* a sub-run's too: the cause of its task's */
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
	console_clear_line(c);
	print_status(c, ev);
	console_draw_line(c);
}

static void on_attempt_end(dagrun_console *c, const dagrun_event *ev)
{
	console_flush_task_output(c, ev->task_index);
	console_note_slow(c, ev->task ? ev->task : "", ev->duration_ms);
	console_note_usage(c, ev);
	c->last_task = ev->task_index;
	c->last_ms = ev->duration_ms;
	/* the cache's decision (README "Cache"): hits are counted and said on
	 * the task's line; with -v, every decision and its reason */
	const dagrun_ext_cache *k = (const void *)dagrun_ext_find(ev->ext, DAGRUN_EXT_CACHE);
	c->last_cached = k && k->hit;
	c->cached += k && k->hit && !ev->depth;
	if (k && k->reason && (c->flags & DAGRUN_CONSOLE_VERBOSE)) {
		console_clear_line(c);
		console_put(c, "cache     ");
		console_put_text(c, ev->task);
		console_put(c, ": ");
		console_put_text(c, k->reason);
		console_put(c, "\n");
	}
	if (ev->out_dropped || ev->err_dropped) {
		console_note_cut(c, ev);
		if (!(c->flags & DAGRUN_CONSOLE_QUIET))
			console_print_cut(c, ev);
	}
}

void dagrun_console_event(void *ud, const dagrun_event *ev)
{
	dagrun_console *c = ud;
	bool last = false;
	switch (ev->type) {
	case DAGRUN_EV_RUN_START:
		c->total = ev->count;
		console_draw_line(c);
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
			console_fmt_ms(ev->delay_ms, d, sizeof(d));
			console_clear_line(c);
			console_put(c, "%sretrying%s  ", console_col(c, YELLOW),
				    console_col(c, RESET));
			console_put_text(c, ev->task);
			console_put(c, ": attempt %u failed (%s: ", ev->attempt,
			    dagrun_class_name(ev->error_class));
			console_put_message(c, ev->error ? ev->error : "failed");
			console_put(c, "), next in %s\n", d);
			console_draw_line(c);
		}
		break;
	case DAGRUN_EV_OUTPUT:
		console_on_output(c, ev);
		break;
	case DAGRUN_EV_LOG:
		if (ev->level >= DAGRUN_WARN || !(c->flags & DAGRUN_CONSOLE_QUIET)) {
			console_clear_line(c);
			console_put(c, "dagrun: ");
			console_put_message(c, ev->message);
			console_put(c, "\n");
			console_draw_line(c);
		}
		break;
	case DAGRUN_EV_RUN_END:
		console_print_summary(c, ev);
		last = true;
		break;
	default:
		break;
	}
	/* LIVE: every record ends with the status line (see the invariant). */
	if (!last && c->rec.len && !c->line_shown)
		console_draw_line(c);
	send(c, last, ev->type == DAGRUN_EV_OUTPUT);
}

void dagrun_console_free(dagrun_console *c)
{
	if (!c)
		return;
	if (c->final.len)
		obs_sink_write_wait(c->sink, c->final.data, c->final.len);
	console_clear_line(c);   /* a run that never ended: leave a clean line */
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
