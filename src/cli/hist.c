/* hist.c: what the history commands share (see hist.h).
 *
 * Invariant: every string that came from the store reaches a text output
 * through text_escape and a JSON output through text_utf8_clean; only
 * strings this file formats itself (numbers, times) are printed as they
 * are.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cli.h"
#include "cli/hist.h"
#include "util/text.h"

int hist_parse_format(const char *cmd, const char *arg, struct hist_common *c)
{
	if (!strcmp(arg, "text") || !strcmp(arg, "json")) {
		c->json = !strcmp(arg, "json");
		return 0;
	}
	fprintf(stderr, "dagrun %s: --format is text or json\n", cmd);
	return -1;
}

int hist_esc(struct buf *out, const char *s)
{
	return s ? text_escape(out, s, strlen(s), 0) : 0;
}

void hist_say(const char *cmd, const char *msg)
{
	struct buf b = BUF_INIT;
	if (hist_esc(&b, msg) == 0)
		fprintf(stderr, "dagrun %s: %s\n", cmd, b.data ? b.data : "");
	else
		fprintf(stderr, "dagrun %s: out of memory\n", cmd);
	buf_free(&b);
}

void hist_none(const char *cmd, const char *dir)
{
	char *msg = NULL;
	if (asprintf(&msg, "no runs recorded in %s", dir) < 0)
		msg = NULL;
	hist_say(cmd, msg ? msg : "no runs recorded");
	free(msg);
}

int hist_open(const char *cmd, const char *dir, bool write, struct store **out)
{
	*out = NULL;
	if (write) {
		/* Opening for writing would create the directory: a missing one
		 * has nothing to prune. */
		char *db = NULL;
		struct stat sb;
		if (asprintf(&db, "%s/state.db", dir) < 0)
			return -ENOMEM;
		int missing = stat(db, &sb) < 0 && errno == ENOENT;
		free(db);
		if (missing)
			return -ENOENT;
	}
	struct store_opts o = {.dir = dir, .read_only = !write};
	char *err = NULL;
	int r = store_open(&store_sqlite_ops, &o, out, &err);
	if (r == -ENOENT && !write) {
		free(err);
		return r;
	}
	if (r < 0)
		hist_say(cmd, err ? err : strerror(-r));
	free(err);
	return r;
}

int hist_find(const char *cmd, struct store *s, const char *ref, struct arena *mem,
	      struct store_run_info *ri)
{
	char *err = NULL;
	int r = s->ops->find_run(s, ref, NULL, mem, ri, &err);
	if (r == 0)
		hist_run_settle(ri);
	if (r < 0)
		hist_say(cmd, err ? err : strerror(-r));
	free(err);
	if (r == -ENOENT || r == -EINVAL)
		return EXIT_USAGE;
	return r < 0 ? EXIT_INTERNAL : EXIT_OK;
}

uint64_t hist_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void hist_fmt_ms(uint64_t ms, char *buf, size_t n)
{
	unsigned long long v = ms;
	if (v < 1000)
		snprintf(buf, n, "%llums", v);
	else if (v < 60000)
		snprintf(buf, n, "%llu.%llus", v / 1000, v / 100 % 10);
	else if (v < 3600000)
		snprintf(buf, n, "%llum%02llus", v / 60000, v / 1000 % 60);
	else if (v < 86400000)
		snprintf(buf, n, "%lluh%02llum", v / 3600000, v / 60000 % 60);
	else
		snprintf(buf, n, "%llud%02lluh", v / 86400000, v / 3600000 % 24);
}

void hist_fmt_time(uint64_t ms, char *buf, size_t n)
{
	time_t sec = (time_t)(ms / 1000);
	struct tm tm;
	if (!ms || !localtime_r(&sec, &tm) || !strftime(buf, n, "%Y-%m-%d %H:%M:%S", &tm))
		snprintf(buf, n, "-");
}

void hist_fmt_signal(int sig, char *buf, size_t n)
{
	const char *abbrev = sig > 0 ? sigabbrev_np(sig) : NULL;
	if (abbrev)
		snprintf(buf, n, "SIG%s", abbrev);
	else
		snprintf(buf, n, "signal %d", sig);
}

int hist_counts(struct buf *out, const uint32_t counts[STORE_TASK_NSTATUS])
{
	/* Final states first, then what is still going on. */
	static const int order[] = {
		STORE_TASK_COMPLETED, STORE_TASK_FAILED, STORE_TASK_CANCELLED,
		STORE_TASK_SKIPPED, STORE_TASK_INTERRUPTED, STORE_TASK_RUNNING,
		STORE_TASK_RETRYING, STORE_TASK_PENDING,
	};
	bool first = true;
	int r = 0;
	for (size_t i = 0; r == 0 && i < sizeof(order) / sizeof(order[0]); i++) {
		uint32_t c = counts[order[i]];
		if (!c)
			continue;
		r = buf_printf(out, "%s%u %s", first ? "" : ", ", c,
			       store_task_status_name(order[i]));
		first = false;
	}
	if (r == 0 && first)
		r = buf_adds(out, "no tasks");
	return r;
}

/* ---- JSON -------------------------------------------------------------------- */

static int to_buf(const char *p, size_t n, void *ud)
{
	return buf_add(ud, p, n) < 0 ? -1 : 0;
}

int hist_json_item(json_t *j, unsigned depth, struct buf *tmp, struct buf *out)
{
	if (!j)
		return -1;
	static const char spaces[] = "                                ";
	size_t pad = depth * 2 < sizeof(spaces) - 1 ? depth * 2 : sizeof(spaces) - 1;
	buf_reset(tmp);
	int r = json_dump_callback(j, to_buf, tmp, JSON_INDENT(2) | JSON_ENSURE_ASCII |
				   JSON_PRESERVE_ORDER);
	json_decref(j);
	/* Nested `depth` levels down: every line after the first indented. */
	for (size_t i = 0, from = 0; r == 0 && i <= tmp->len; i++) {
		if (i < tmp->len && tmp->data[i] != '\n')
			continue;
		if (from && buf_add(out, spaces, pad) < 0)
			r = -1;
		if (r == 0 && buf_add(out, tmp->data + from, i - from) < 0)
			r = -1;
		if (r == 0 && i < tmp->len && buf_addc(out, '\n') < 0)
			r = -1;
		from = i + 1;
	}
	return r < 0 ? -1 : 0;
}

int hist_json_print(json_t *j, FILE *f)
{
	if (!j)
		return -1;
	/* Into memory, then one write: json_dumpf writes token by token. */
	struct buf b = BUF_INIT;
	int r = json_dump_callback(j, to_buf, &b, JSON_INDENT(2) | JSON_ENSURE_ASCII |
				   JSON_PRESERVE_ORDER);
	json_decref(j);
	if (r == 0 && buf_addc(&b, '\n') < 0)
		r = -1;
	if (r == 0 && fwrite(b.data, 1, b.len, f) != b.len)
		r = -1;
	buf_free(&b);
	return r < 0 ? -1 : 0;
}

/* ---- text tables ---------------------------------------------------------------- */

void hist_table_init(struct hist_table *t, size_t ncol)
{
	memset(t, 0, sizeof(*t));
	t->ncol = ncol;
}

static void put_cell(struct hist_table *t, char *s)
{
	if (!s) {
		t->err = -ENOMEM;
		return;
	}
	if (t->ncell == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 64;
		char **nc = realloc(t->cell, cap * sizeof(*nc));
		if (!nc) {
			free(s);
			t->err = -ENOMEM;
			return;
		}
		t->cell = nc;
		t->cap = cap;
	}
	t->cell[t->ncell++] = s;
}

void hist_table_add(struct hist_table *t, const char *s)
{
	struct buf b = BUF_INIT;
	if (t->err)
		return;
	if (hist_esc(&b, s ? s : "") < 0) {
		buf_free(&b);
		t->err = -ENOMEM;
		return;
	}
	put_cell(t, buf_steal(&b));
}

void hist_table_add_raw(struct hist_table *t, const char *s)
{
	if (!t->err)
		put_cell(t, strdup(s ? s : ""));
}

/* Characters on screen: UTF-8 lead bytes (escaped text is valid UTF-8). */
static size_t width(const char *s)
{
	size_t w = 0;
	for (; *s; s++)
		w += ((unsigned char)*s & 0xc0) != 0x80;
	return w;
}

int hist_table_print(struct hist_table *t, FILE *f)
{
	if (t->err || !t->ncol)
		return t->err;
	size_t *w = calloc(t->ncol, sizeof(*w));
	if (!w)
		return -ENOMEM;
	for (size_t i = 0; i < t->ncell; i++) {
		size_t c = i % t->ncol, n = width(t->cell[i]);
		if (n > w[c])
			w[c] = n;
	}
	for (size_t i = 0; i < t->ncell; i++) {
		size_t c = i % t->ncol;
		bool last = c == t->ncol - 1 || i == t->ncell - 1;
		fputs(t->cell[i], f);
		if (last) {
			fputc('\n', f);
			continue;
		}
		/* No trailing blanks when the rest of the row is empty. */
		bool rest_empty = true;
		for (size_t j = i + 1; j < t->ncell && j % t->ncol; j++)
			rest_empty &= !t->cell[j][0];
		if (rest_empty) {
			fputc('\n', f);
			i += t->ncol - 1 - c;
			continue;
		}
		for (size_t k = width(t->cell[i]); k < w[c] + 2; k++)
			fputc(' ', f);
	}
	free(w);
	return 0;
}

void hist_table_free(struct hist_table *t)
{
	for (size_t i = 0; i < t->ncell; i++)
		free(t->cell[i]);
	free(t->cell);
	memset(t, 0, sizeof(*t));
}

int hist_operands(const char *cmd, int argc, char **argv, const char *usage,
		  const struct hist_common *c, const char **workflow)
{
	if (argc - optind > 1) {
		fputs(usage, stderr);
		return -1;
	}
	if (optind < argc)
		*workflow = argv[optind];
	if (c->state && !*c->state) {
		fprintf(stderr, "dagrun %s: --state takes a directory\n", cmd);
		return -1;
	}
	return 0;
}
