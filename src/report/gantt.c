/* gantt.c: a Gantt chart for a terminal (`dagrun show RUN --timeline`).
 *
 * Invariant: every line is at most `width` columns (counting one column
 * per code point: task ids are ASCII in workflows; a wide character in a
 * document from elsewhere may overflow a line, never break one), and every
 * piece of document text goes through text_escape() (util/text.h) as the
 * console escapes task text, so no control sequence reaches the terminal.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "report/report_int.h"
#include "util/buf.h"
#include "util/text.h"

#define WIDTH_MIN 50u
#define ID_MAX 32u
#define TAIL 20u   /* " interrupted 12h03m." : status and duration */

/* Formats ms as 850ms, 12.3s, 4m05s or 2h03m into out. */
static void fmt_dur(char out[32], int64_t ms)
{
	if (ms < 0)
		ms = 0;
	if (ms < 1000)
		snprintf(out, 32, "%lldms", (long long)ms);
	else if (ms < 60000)
		snprintf(out, 32, "%lld.%llds", (long long)(ms / 1000),
			 (long long)(ms % 1000 / 100));
	else if (ms < 3600000)
		snprintf(out, 32, "%lldm%02llds", (long long)(ms / 60000),
			 (long long)(ms / 1000 % 60));
	else
		snprintf(out, 32, "%lldh%02lldm", (long long)(ms / 3600000),
			 (long long)(ms / 60000 % 60));
}

/* Code points in s[0 .. n) (valid UTF-8, as text_escape writes). */
static size_t columns(const char *s, size_t n)
{
	size_t c = 0;
	for (size_t i = 0; i < n; i++)
		c += ((unsigned char)s[i] & 0xc0) != 0x80;
	return c;
}

/* Writes s escaped, cut or padded to exactly w columns. */
static int put_cell(FILE *out, struct buf *tmp, const char *s, size_t n,
		    size_t w)
{
	buf_reset(tmp);
	int r = text_escape(tmp, s, n, 0);
	if (r < 0)
		return r;
	for (size_t i = 0; i < tmp->len; i++)
		if (tmp->data[i] == '\t')
			tmp->data[i] = ' ';
	size_t cols = columns(tmp->data ? tmp->data : "", tmp->len);
	if (cols <= w) {
		fwrite(tmp->data, 1, tmp->len, out);
		fprintf(out, "%*s", (int)(w - cols), "");
		return 0;
	}
	/* w - 1 code points, then an ellipsis */
	size_t i = 0, c = 0;
	while (i < tmp->len && c < w - 1) {
		i++;
		while (i < tmp->len && ((unsigned char)tmp->data[i] & 0xc0) == 0x80)
			i++;
		c++;
	}
	fwrite(tmp->data, 1, i, out);
	fputs("\xe2\x80\xa6", out);
	return 0;
}

struct chart {
	const struct report_doc *d;
	size_t bar;                /* columns of the bar */
	char *cells;               /* bar + 1 */
};

static size_t cell_of(const struct chart *c, int64_t t, bool end)
{
	int64_t span = c->d->t1 - c->d->t0;
	__int128 x = (__int128)(t - c->d->t0) * (__int128)c->bar;
	int64_t q = (int64_t)(x / span);
	if (end && x % span)
		q++;
	return q < 0 ? 0 : (size_t)q > c->bar ? c->bar : (size_t)q;
}

static void paint(struct chart *c, int64_t s, int64_t e, char ch)
{
	size_t a = cell_of(c, s, false), b = cell_of(c, e, true);
	if (b <= a)
		b = a + 1;
	if (a >= c->bar)
		a = c->bar - 1;
	for (size_t i = a; i < b && i < c->bar; i++)
		c->cells[i] = ch;
}

static char attempt_char(const struct report_attempt *a)
{
	if (!a->has_end && a->status == REPORT_ST_RUNNING)
		return '>';
	if (a->status == REPORT_ST_COMPLETED)
		return '=';
	if (a->status == REPORT_ST_CANCELLED || a->status == REPORT_ST_INTERRUPTED)
		return '!';
	if (a->status == REPORT_ST_RUNNING)
		return '>';
	return 'x';
}

static void draw_bar(struct chart *c, const struct report_task *t)
{
	memset(c->cells, ' ', c->bar);
	c->cells[c->bar] = '\0';
	for (uint32_t i = 0; i < t->n_att; i++) {
		const struct report_attempt *a = &t->att[i];
		if (a->has_ready && a->ready_ms < a->start_ms)
			paint(c, a->ready_ms, a->start_ms, '.');
		if (i + 1 < t->n_att && a->has_end) {
			const struct report_attempt *b = &t->att[i + 1];
			int64_t next = b->has_ready && b->ready_ms < b->start_ms ?
				       b->ready_ms : b->start_ms;
			if (next > a->end_ms)
				paint(c, a->end_ms, next, '-');
		}
	}
	for (uint32_t i = 0; i < t->n_att; i++) {
		const struct report_attempt *a = &t->att[i];
		paint(c, a->start_ms, report_attempt_end(c->d, a), attempt_char(a));
	}
}

/* Rows by first start; tasks that never started last, in document order. */
static int row_cmp(const void *x, const void *y, void *doc)
{
	const struct report_doc *d = doc;
	uint32_t a = *(const uint32_t *)x, b = *(const uint32_t *)y;
	const struct report_task *ta = &d->tasks[a], *tb = &d->tasks[b];
	if (ta->n_att && tb->n_att && ta->att[0].start_ms != tb->att[0].start_ms)
		return ta->att[0].start_ms < tb->att[0].start_ms ? -1 : 1;
	if (!ta->n_att != !tb->n_att)
		return ta->n_att ? -1 : 1;
	return (a > b) - (a < b);
}

/* The run in one line, cut to width. */
static int header(FILE *out, struct buf *tmp, struct buf *line,
		  const struct report_doc *d, size_t width)
{
	char dur[32];
	fmt_dur(dur, (d->has_end ? d->end_ms : d->t1) - d->start_ms);
	buf_reset(tmp);
	buf_adds(tmp, "run ");
	text_escape(tmp, d->run_id.s, d->run_id.len, 0);
	if (d->run_attempt > 1)
		buf_printf(tmp, " (attempt %u)", d->run_attempt);
	buf_adds(tmp, " of ");
	text_escape(tmp, d->workflow.s, d->workflow.len, 0);
	buf_adds(tmp, ": ");
	text_escape(tmp, d->run_status.s, d->run_status.len, 0);
	buf_printf(tmp, "%s %s, %u task%s", d->has_end ? " in" : " for", dur,
		   d->n_tasks, d->n_tasks == 1 ? "" : "s");
	const char *sep = ": ";
	for (int s = 0; s < REPORT_ST_N; s++)
		if (d->counts[s]) {
			buf_printf(tmp, "%s%u %s", sep, d->counts[s], report_status_name(s));
			sep = ", ";
		}
	/* already escaped: put_cell escapes nothing more in it but tabs */
	int r = put_cell(out, line, tmp->data ? tmp->data : "", tmp->len, width);
	if (r == 0)
		fputc('\n', out);
	return r;
}

/* The legend, wrapped at width. */
static void legend(FILE *out, size_t width)
{
	static const char *const items[] = {
		"'.' waited while ready", "'-' retry wait", "'=' completed",
		"'x' failed or timed out", "'!' cancelled or interrupted",
		"'>' running",
	};
	size_t col = 0;
	for (size_t i = 0; i < sizeof(items) / sizeof(*items); i++) {
		size_t n = strlen(items[i]);
		if (col && col + 2 + n > width) {
			fputc('\n', out);
			col = 0;
		}
		fprintf(out, "%s%s", col ? "  " : "", items[i]);
		col += (col ? 2 : 0) + n;
	}
	fputc('\n', out);
}

static int rows(FILE *out, struct buf *tmp, struct chart *c, size_t idw)
{
	const struct report_doc *d = c->d;
	uint32_t *order = malloc((d->n_tasks ? d->n_tasks : 1) * sizeof(*order));
	if (!order)
		return -ENOMEM;
	for (uint32_t i = 0; i < d->n_tasks; i++)
		order[i] = i;
	qsort_r(order, d->n_tasks, sizeof(*order), row_cmp, (void *)d);
	int r = 0;
	for (uint32_t k = 0; k < d->n_tasks && r == 0 && !ferror(out); k++) {
		const struct report_task *t = &d->tasks[order[k]];
		if ((r = put_cell(out, tmp, t->id.s, t->id.len, idw)) < 0)
			break;
		draw_bar(c, t);
		fprintf(out, " |%s| ", c->cells);
		char dur[32] = "";
		if (t->n_att)
			fmt_dur(dur, report_attempt_end(d, &t->att[t->n_att - 1]) -
				t->att[0].start_ms);
		if ((r = put_cell(out, tmp, t->status_name.s, t->status_name.len,
				  TAIL - 9)) < 0)
			break;
		fprintf(out, " %s\n", dur);
	}
	free(order);
	return r;
}

static int gantt(FILE *out, const struct report_doc *d, unsigned width)
{
	struct buf tmp = BUF_INIT, line = BUF_INIT;
	size_t idw = 4;
	for (uint32_t i = 0; i < d->n_tasks; i++) {
		buf_reset(&tmp);
		if (text_escape(&tmp, d->tasks[i].id.s, d->tasks[i].id.len, 0) < 0)
			break;
		size_t w = columns(tmp.data ? tmp.data : "", tmp.len);
		if (w > idw)
			idw = w;
	}
	if (idw > ID_MAX)
		idw = ID_MAX;
	if (idw > width / 4)
		idw = width / 4;
	struct chart c = {d, width - idw - 4 - TAIL, NULL};
	int r = -ENOMEM;
	if (!(c.cells = malloc(c.bar + 1)))
		goto out;
	if ((r = header(out, &tmp, &line, d, width)) < 0)
		goto out;
	char total[32];
	fmt_dur(total, d->t1 - d->t0);
	fprintf(out, "%-*s |0s%*s| %-*s duration\n", (int)idw, "task",
		(int)(c.bar - 2), total, (int)(TAIL - 9), "status");
	if ((r = rows(out, &tmp, &c, idw)) == 0)
		legend(out, width);
out:
	free(c.cells);
	buf_free(&tmp);
	buf_free(&line);
	return r;
}

int report_gantt_text(const json_t *doc, unsigned width, FILE *out,
		      char **err)
{
	struct arena mem = ARENA_INIT;
	struct report_doc d;
	int r = report_doc_parse(doc, 0, &mem, &d, err);
	if (r < 0)
		goto out;
	errno = 0;
	r = gantt(out, &d, width < WIDTH_MIN ? WIDTH_MIN : width);
	if (r < 0)
		report_fail(err, r, "out of memory");
	else if ((r = report_stream_status(out)) < 0)
		report_fail(err, r, "writing the timeline: %s", strerror(-r));
out:
	arena_free(&mem);
	return r;
}
