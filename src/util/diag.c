/* diag.c: diagnostics list and its rendering with source line and caret.
 *
 * Rendering reads each needed source line from the file once, in one pass,
 * so printing the capped list costs one read of the file at most. Messages
 * and source lines quote the workflow: they are printed escaped (text.h), so
 * a control byte in a workflow cannot drive the terminal.
 */
#include "diag.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "text.h"

#define DIAG_DEFAULT_MAX 50
#define LINE_SHOW_MAX 200   /* columns of a source line shown */

dagrun_diags *dagrun_diags_new(size_t max)
{
	struct dagrun_diags *d = calloc(1, sizeof(*d));
	if (d)
		d->max = max ? max : DIAG_DEFAULT_MAX;
	return d;
}

size_t dagrun_diags_count(const dagrun_diags *d)
{
	return d ? d->n : 0;
}

size_t dagrun_diags_errors(const dagrun_diags *d)
{
	return d ? d->errors : 0;
}

const dagrun_diag *dagrun_diags_get(const dagrun_diags *d, size_t i)
{
	return d && i < d->n ? &d->v[i] : NULL;
}

int diag_vadd(struct dagrun_diags *d, int severity, const char *file,
	      unsigned line, unsigned col, const char *fmt, va_list ap)
{
	if (!d)
		return 0;
	if (severity == DAGRUN_ERROR)
		d->errors++;
	if (d->n >= d->max) {
		d->dropped++;
		return 0;
	}
	if (d->n == d->cap) {
		size_t cap = d->cap ? d->cap * 2 : 8;
		struct dagrun_diag *v = realloc(d->v, cap * sizeof(*v));
		if (!v)
			goto oom;
		d->v = v;
		d->cap = cap;
	}
	struct buf b = BUF_INIT;
	b.max = 64 * 1024;
	if (buf_vprintf(&b, fmt, ap) < 0) {
		buf_free(&b);
		goto oom;
	}
	char *f = file ? strdup(file) : NULL;
	if (file && !f) {
		buf_free(&b);
		goto oom;
	}
	d->v[d->n++] = (struct dagrun_diag){f, line, col, severity, buf_steal(&b)};
	return 0;
oom:
	d->dropped++;
	return -ENOMEM;
}

int diag_add(struct dagrun_diags *d, int severity, const char *file,
	     unsigned line, unsigned col, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int r = diag_vadd(d, severity, file, line, col, fmt, ap);
	va_end(ap);
	return r;
}

/* Source lines needed by the diagnostics of one file. */
struct line_want {
	unsigned line;
	char *text;
};

static int cmp_want(const void *a, const void *b)
{
	const struct line_want *x = a, *y = b;
	return (x->line > y->line) - (x->line < y->line);
}

/* Fills text for each wanted line of file (sorted by line), keeping at most
 * LINE_SHOW_MAX bytes of each. Only a regular file is read again, and at
 * most DAGRUN_MAX_FILE_BYTES of it: a pipe, a FIFO or a device would give
 * other bytes than the loader saw (or block, or never end), so its
 * diagnostics show no source line. */
static void read_lines(const char *file, struct line_want *w, size_t n)
{
	struct stat st;
	char chunk[16384], line[LINE_SHOW_MAX + 1];
	size_t len = 0, i = 0, total = 0;
	unsigned no = 1;
	int fd = open(file, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
		goto out;
	while (i < n && total < DAGRUN_MAX_FILE_BYTES) {
		ssize_t k = read(fd, chunk, sizeof(chunk));
		if (k < 0 && errno == EINTR)
			continue;
		/* At the end, a last line without a newline still counts. */
		for (ssize_t j = 0; j <= k && i < n; j++) {
			if (j < k && chunk[j] != '\n') {
				if (len < LINE_SHOW_MAX && w[i].line == no)
					line[len++] = chunk[j];
				continue;
			}
			if (j == k && k > 0)
				break;
			while (i < n && w[i].line < no)
				i++;
			line[len] = '\0';
			line[strcspn(line, "\r")] = '\0';
			for (; i < n && w[i].line == no; i++)
				w[i].text = strdup(line);
			no++;
			len = 0;
		}
		if (k <= 0)
			break;
		total += (size_t)k;
	}
out:
	close(fd);
}

static const char *sev_name(int s)
{
	return s == DAGRUN_ERROR ? "error" : s == DAGRUN_WARNING ? "warning" : "note";
}

static const char *sev_color(int s)
{
	return s == DAGRUN_ERROR ? "\033[1;31m" : s == DAGRUN_WARNING ? "\033[1;35m" : "\033[1;36m";
}

/* Prints s escaped (text.h); on OOM, nothing of it. */
static void put_escaped(FILE *out, const char *s, size_t n)
{
	struct buf b = BUF_INIT;
	if (text_escape(&b, s, n, TEXT_ESC_NEWLINE) == 0 && b.len)
		fwrite(b.data, 1, b.len, out);
	buf_free(&b);
}

static void print_caret(FILE *out, const char *text, unsigned col, int color)
{
	put_escaped(out, text, strlen(text));
	fputc('\n', out);
	/* Keep tabs, and the width of escapes, so the caret lines up under the
	 * same column. */
	size_t len = strlen(text), before = col > 1 ? col - 1 : 0;
	struct buf b = BUF_INIT;
	if (text_escape(&b, text, before < len ? before : len, 0) == 0)
		for (size_t c = 0; c < b.len && c < LINE_SHOW_MAX * 4; c++)
			fputc(b.data[c] == '\t' ? '\t' : ' ', out);
	buf_free(&b);
	fprintf(out, "%s^%s\n", color ? "\033[1;32m" : "", color ? "\033[0m" : "");
}

/* Reads, in one pass over file, the source line of every entry from index
 * `from` on that names file; stores copies in texts[] and marks done[]. */
static void load_texts(const dagrun_diags *d, size_t from, const char *file,
		       char **texts, char *done)
{
	size_t k = 0;
	struct line_want *w = calloc(d->n, sizeof(*w));
	if (!w)
		return;
	for (size_t j = from; j < d->n; j++)
		if (d->v[j].line && d->v[j].file && strcmp(d->v[j].file, file) == 0)
			w[k++].line = d->v[j].line;
	qsort(w, k, sizeof(*w), cmp_want);
	read_lines(file, w, k);
	for (size_t j = from; j < d->n; j++) {
		if (!d->v[j].line || !d->v[j].file || strcmp(d->v[j].file, file))
			continue;
		done[j] = 1;
		for (size_t m = 0; m < k; m++)
			if (w[m].line == d->v[j].line && w[m].text) {
				texts[j] = strdup(w[m].text);
				break;
			}
	}
	for (size_t m = 0; m < k; m++)
		free(w[m].text);
	free(w);
}

int dagrun_diags_print(const dagrun_diags *d, FILE *out, int color)
{
	if (!d)
		return 0;
	size_t n = d->n ? d->n : 1;
	char **texts = calloc(n, sizeof(*texts));
	char *done = calloc(n, 1);
	if (!texts || !done) {
		free(texts);
		free(done);
		return -ENOMEM;
	}
	const char *bold = color ? "\033[1m" : "", *reset = color ? "\033[0m" : "";
	for (size_t i = 0; i < d->n; i++) {
		const struct dagrun_diag *g = &d->v[i];
		const char *sc = color ? sev_color(g->severity) : "";
		if (g->line)
			fprintf(out, "%s%s:%u:%u:%s %s%s:%s ", bold,
				g->file ? g->file : "<input>", g->line, g->column,
				reset, sc, sev_name(g->severity), reset);
		else
			fprintf(out, "%s%s:%s %s%s:%s ", bold,
				g->file ? g->file : "dagrun", reset, sc,
				sev_name(g->severity), reset);
		put_escaped(out, g->message, strlen(g->message));
		fputc('\n', out);
		if (!g->line || !g->file)
			continue;
		if (!done[i])
			load_texts(d, i, g->file, texts, done);
		if (texts[i] && texts[i][0])
			print_caret(out, texts[i], g->column, color);
	}
	for (size_t i = 0; i < d->n; i++)
		free(texts[i]);
	free(texts);
	free(done);
	if (d->dropped)
		fprintf(out, "dagrun: %zu more error(s) not shown\n", d->dropped);
	return ferror(out) ? -EIO : 0;
}

void dagrun_diags_clear(dagrun_diags *d)
{
	if (!d)
		return;
	for (size_t i = 0; i < d->n; i++) {
		free((char *)d->v[i].file);
		free((char *)d->v[i].message);
	}
	d->n = d->errors = d->dropped = 0;
}

void dagrun_diags_free(dagrun_diags *d)
{
	if (!d)
		return;
	dagrun_diags_clear(d);
	free(d->v);
	free(d);
}
