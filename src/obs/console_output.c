/* console_output.c: task output shown as lines (VERBOSE), and the line
 * for an attempt whose output the result does not keep in full; see
 * console.c.
 *
 * Invariant: every piece printed is a whole line of its own, prefixed by
 * its task's id, so the output of two tasks never mixes within a line. An
 * unfinished line waits in one of PARTIALS slots for its newline, the end
 * of its attempt or PARTIAL_MAX bytes; a character is not cut in two
 * between pieces.
 */
#include <string.h>

#include "obs/console_int.h"
#include "util/text.h"

/* One line of output; a CR before its end (CRLF) is not shown. */
static void print_line(dagrun_console *c, const char *id, const char *p, size_t n)
{
	if (n && p[n - 1] == '\r')
		n--;
	console_put(c, "%s", console_col(c, DIM));
	console_put_text(c, id);
	console_put(c, " |%s ", console_col(c, RESET));
	console_put_textn(c, p, n);
	console_put(c, "\n");
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
		console_copy_id(free_slot->id, ev->task ? ev->task : "");
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
void console_on_output(dagrun_console *c, const dagrun_event *ev)
{
	if (!(c->flags & DAGRUN_CONSOLE_VERBOSE))
		return;
	console_clear_line(c);
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
	console_draw_line(c);
}

void console_flush_task_output(dagrun_console *c, uint32_t task)
{
	for (int i = 0; i < PARTIALS; i++)
		if (c->part[i].stream && c->part[i].task == task) {
			console_clear_line(c);
			flush_partial(c, &c->part[i]);
		}
}

/* A line for an attempt whose output the result does not keep in full. */
void console_print_cut(dagrun_console *c, const dagrun_event *ev)
{
	console_clear_line(c);
	console_put(c, "%struncated%s ", console_col(c, YELLOW), console_col(c, RESET));
	console_put_text(c, ev->task);
	const char *sep = ": ";
	for (int s = 0; s < 2; s++) {
		uint64_t all = s ? ev->err_bytes : ev->out_bytes;
		uint64_t dropped = s ? ev->err_dropped : ev->out_dropped;
		if (!dropped)
			continue;
		char kept[32], total[32], gone[32];
		text_fmt_bytes(all > dropped ? all - dropped : 0, kept, sizeof(kept));
		text_fmt_bytes(all, total, sizeof(total));
		text_fmt_bytes(dropped, gone, sizeof(gone));
		console_put(c, "%s%s kept its first %s of %s (%s dropped)", sep,
			    s ? "stderr" : "stdout", kept, total, gone);
		sep = ", ";
	}
	if (ev->attempt > 1)
		console_put(c, " in attempt %u", ev->attempt);
	console_put(c, "\n");
	console_draw_line(c);
}
