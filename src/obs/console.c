/* console.c: the human display observer.
 *
 * On a terminal (LIVE): finished tasks are printed as lines and one status
 * line, `[done/total] running N · failed N · retrying N  <newest task>`, is
 * redrawn below them. Elsewhere: one plain line per state change. At the end:
 * counts by status, wall time, the slowest tasks, and every failure with its
 * class and the tail of its stderr. Invariant: the status line, when shown,
 * is always the last line on the screen and is erased before other output.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dagrun.h"
#include "util/buf.h"

#define SLOWEST 5
#define FAILURES_KEPT 20
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
	int cls;
};

struct dagrun_console {
	FILE *out;
	int flags;
	uint64_t total, done, running, failed, retrying;
	size_t counts[DAGRUN_CANCELLED + 1];
	char newest[ID_SHOWN + 1];
	bool line_shown;
	struct slow slow[SLOWEST];
	struct failure fail[FAILURES_KEPT];
	size_t n_fail, more_fail;
	char *run_id;
	struct partial part[PARTIALS];
	struct usage usage[MODELS];
	size_t n_usage;
	uint32_t last_task;      /* the task of the last ATTEMPT_END */
	uint64_t last_ms;        /* its duration */
};

dagrun_console *dagrun_console_new(FILE *out, int flags)
{
	dagrun_console *c = calloc(1, sizeof(*c));
	if (c) {
		c->out = out;
		c->flags = flags;
		c->last_task = UINT32_MAX;
	}
	return c;
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
		fputs("\r\033[K", c->out);
		c->line_shown = false;
	}
}

static void draw_line(dagrun_console *c)
{
	if (!(c->flags & DAGRUN_CONSOLE_LIVE))
		return;
	clear_line(c);
	fprintf(c->out, "[%llu/%llu] running %llu · failed %llu · retrying %llu  %s",
		(unsigned long long)c->done, (unsigned long long)c->total,
		(unsigned long long)c->running, (unsigned long long)c->failed,
		(unsigned long long)c->retrying, c->newest);
	c->line_shown = true;
	fflush(c->out);
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

/* Keeps the SLOWEST longest attempts, one entry per task. */
static void note_slow(dagrun_console *c, const char *id, uint64_t ms)
{
	int n = 0, found = -1;
	while (n < SLOWEST && c->slow[n].id[0]) {
		if (found < 0 && strncmp(c->slow[n].id, id, ID_SHOWN) == 0)
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
	snprintf(c->slow[i].id, sizeof(c->slow[i].id), "%s", id);
}

static void note_usage(dagrun_console *c, const dagrun_event *ev)
{
	if (ev->prompt_tokens < 0 || !ev->model)
		return;
	size_t i = 0;
	while (i < c->n_usage && strncmp(c->usage[i].model, ev->model, sizeof(c->usage[i].model) - 1))
		i++;
	if (i == c->n_usage) {
		if (c->n_usage == MODELS)
			i = MODELS - 1;   /* the last line then sums the rest */
		else
			snprintf(c->usage[c->n_usage++].model, sizeof(c->usage[i].model), "%s",
				 ev->model);
	}
	c->usage[i].prompt += (uint64_t)ev->prompt_tokens;
	c->usage[i].completion += (uint64_t)(ev->completion_tokens > 0 ? ev->completion_tokens : 0);
	c->usage[i].calls++;
}

static void note_failure(dagrun_console *c, const dagrun_event *ev)
{
	if (c->n_fail == FAILURES_KEPT) {
		c->more_fail++;
		return;
	}
	struct failure *f = &c->fail[c->n_fail++];
	f->id = strdup(ev->task);
	f->error = ev->error ? strdup(ev->error) : NULL;
	f->tail = ev->len ? strndup(ev->data, ev->len) : NULL;
	f->cls = ev->error_class;
}

static bool is_final(int s)
{
	return s == DAGRUN_COMPLETED || s == DAGRUN_FAILED || s == DAGRUN_SKIPPED ||
	       s == DAGRUN_CANCELLED;
}

/* Prints the line for a status change, if it deserves one. */
static void print_status(dagrun_console *c, const dagrun_event *ev)
{
	bool quiet = c->flags & DAGRUN_CONSOLE_QUIET;
	bool live = c->flags & DAGRUN_CONSOLE_LIVE;
	switch (ev->status) {
	case DAGRUN_RUNNING:
		if (live || quiet)
			return;
		if (ev->attempt > 1)
			fprintf(c->out, "started   %s (attempt %u)\n", ev->task, ev->attempt);
		else
			fprintf(c->out, "started   %s\n", ev->task);
		return;
	case DAGRUN_COMPLETED:
		if (quiet)
			return;
		if (c->last_task == ev->task_index) {
			char d[32];
			fmt_ms(c->last_ms, d, sizeof(d));
			fprintf(c->out, "%sok%s        %s %s(%s)%s\n", col(c, GREEN), col(c, RESET),
				ev->task, col(c, DIM), d, col(c, RESET));
		} else {
			fprintf(c->out, "%sok%s        %s\n", col(c, GREEN), col(c, RESET), ev->task);
		}
		return;
	case DAGRUN_FAILED:
		fprintf(c->out, "%sFAILED%s    %s (%s): %s\n", col(c, RED), col(c, RESET),
			ev->task, dagrun_class_name(ev->error_class),
			ev->error ? ev->error : "failed");
		return;
	case DAGRUN_RETRYING:
		return;  /* the RETRY event that follows says it all */
	case DAGRUN_SKIPPED:
		if (!quiet)
			fprintf(c->out, "skipped   %s\n", ev->task);
		return;
	case DAGRUN_CANCELLED:
		fprintf(c->out, "%scancelled%s %s\n", col(c, YELLOW), col(c, RESET), ev->task);
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
		snprintf(c->newest, sizeof(c->newest), "%s", ev->task);
		break;
	case DAGRUN_RETRYING:
		c->retrying++;
		break;
	case DAGRUN_FAILED:
		c->failed++;
		note_failure(c, ev);
		break;
	default:
		break;
	}
	if (is_final(ev->status)) {
		c->done++;
		c->counts[ev->status]++;
		if (c->done > c->total)
			c->total = c->done;
	}
	clear_line(c);
	print_status(c, ev);
	draw_line(c);
}

static void print_line(dagrun_console *c, const char *id, const char *p, size_t n)
{
	fprintf(c->out, "%s%s |%s %.*s\n", col(c, DIM), id, col(c, RESET), (int)n, p);
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
		snprintf(free_slot->id, sizeof(free_slot->id), "%s", ev->task);
		free_slot->b = (struct buf)BUF_INIT;
	}
	return free_slot;
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
		if (part && part->b.len) {
			buf_add(&part->b, p, n);
			print_line(c, part->id, part->b.data, part->b.len);
			buf_reset(&part->b);
		} else {
			print_line(c, ev->task, p, n);
		}
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

static void print_summary(dagrun_console *c, const dagrun_event *ev)
{
	clear_line(c);
	char wall[32];
	fmt_ms(ev->count, wall, sizeof(wall));
	uint64_t not_run = c->total > c->done ? c->total - c->done : 0;
	fprintf(c->out, "\n%s%s%s: %zu completed, %zu failed, %zu skipped, %zu cancelled",
		col(c, BOLD), ev->status == DAGRUN_COMPLETED ? "done" :
		ev->status == DAGRUN_CANCELLED ? "interrupted" : "FAILED", col(c, RESET),
		c->counts[DAGRUN_COMPLETED], c->counts[DAGRUN_FAILED],
		c->counts[DAGRUN_SKIPPED], c->counts[DAGRUN_CANCELLED]);
	if (not_run)
		fprintf(c->out, ", %llu not run", (unsigned long long)not_run);
	fprintf(c->out, " in %s (run %s)\n", wall, ev->run_id ? ev->run_id : "?");
	if (c->slow[0].id[0] && !(c->flags & DAGRUN_CONSOLE_QUIET)) {
		fprintf(c->out, "slowest:");
		for (int i = 0; i < SLOWEST && c->slow[i].id[0]; i++) {
			char d[32];
			fmt_ms(c->slow[i].ms, d, sizeof(d));
			fprintf(c->out, "%s %s %s", i ? "," : "", c->slow[i].id, d);
		}
		fputc('\n', c->out);
	}
	for (size_t i = 0; i < c->n_usage; i++)
		fprintf(c->out, "tokens: %s: %llu prompt + %llu completion in %llu call%s\n",
			c->usage[i].model, (unsigned long long)c->usage[i].prompt,
			(unsigned long long)c->usage[i].completion,
			(unsigned long long)c->usage[i].calls, c->usage[i].calls == 1 ? "" : "s");
	for (size_t i = 0; i < c->n_fail; i++) {
		struct failure *f = &c->fail[i];
		fprintf(c->out, "%sfailed%s %s [%s]: %s\n", col(c, RED), col(c, RESET), f->id,
			dagrun_class_name(f->cls), f->error ? f->error : "");
		if (f->tail) {
			const char *p = f->tail;
			while (*p) {
				size_t n = strcspn(p, "\n");
				fprintf(c->out, "    | %.*s\n", (int)n, p);
				p += n + (p[n] ? 1 : 0);
			}
		}
	}
	if (c->more_fail)
		fprintf(c->out, "... and %zu more failures\n", c->more_fail);
	fflush(c->out);
}

void dagrun_console_event(void *ud, const dagrun_event *ev)
{
	dagrun_console *c = ud;
	switch (ev->type) {
	case DAGRUN_EV_RUN_START:
		c->total = ev->count;
		draw_line(c);
		break;
	case DAGRUN_EV_TASK_STATUS:
		on_status(c, ev);
		break;
	case DAGRUN_EV_ATTEMPT_END:
		flush_task_output(c, ev->task_index);
		note_slow(c, ev->task, ev->duration_ms);
		note_usage(c, ev);
		c->last_task = ev->task_index;
		c->last_ms = ev->duration_ms;
		break;
	case DAGRUN_EV_RETRY:
		if (!(c->flags & DAGRUN_CONSOLE_QUIET)) {
			char d[32];
			fmt_ms(ev->delay_ms, d, sizeof(d));
			clear_line(c);
			fprintf(c->out, "%sretrying%s  %s: attempt %u failed (%s: %s), next in %s\n",
				col(c, YELLOW), col(c, RESET), ev->task, ev->attempt,
				dagrun_class_name(ev->error_class), ev->error ? ev->error : "failed", d);
			draw_line(c);
		}
		break;
	case DAGRUN_EV_OUTPUT:
		on_output(c, ev);
		break;
	case DAGRUN_EV_LOG:
		if (ev->level >= DAGRUN_WARN || !(c->flags & DAGRUN_CONSOLE_QUIET)) {
			clear_line(c);
			fprintf(c->out, "dagrun: %s\n", ev->message);
			draw_line(c);
		}
		break;
	case DAGRUN_EV_RUN_END:
		print_summary(c, ev);
		break;
	default:
		break;
	}
}

void dagrun_console_free(dagrun_console *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->n_fail; i++) {
		free(c->fail[i].id);
		free(c->fail[i].error);
		free(c->fail[i].tail);
	}
	for (int i = 0; i < PARTIALS; i++)
		buf_free(&c->part[i].b);
	free(c->run_id);
	free(c);
}
