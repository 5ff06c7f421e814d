/* console_summary.c: what the console remembers for the summary (the
 * slowest attempts, tokens per model, failures, cut outputs) and the
 * summary printed at the end of a run; see console.c.
 *
 * Invariant: what is remembered is bounded whatever the size of the run:
 * SLOWEST, MODELS (the last one sums the rest), FAILURES_KEPT and
 * CUTS_KEPT entries; past them, the rest is counted ("and N more").
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "obs/console_int.h"
#include "util/text.h"

/* ---- what the summary remembers --------------------------------------------- */

/* Keeps the SLOWEST longest attempts, one entry per task. */
void console_note_slow(dagrun_console *c, const char *task, uint64_t ms)
{
	char id[ID_SHOWN + 1];
	console_copy_id(id, task);
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

void console_note_usage(dagrun_console *c, const dagrun_event *ev)
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

void console_note_failure(dagrun_console *c, const dagrun_event *ev)
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

void console_note_cut(dagrun_console *c, const dagrun_event *ev)
{
	char id[ID_SHOWN + 1];
	console_copy_id(id, ev->task ? ev->task : "");
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

/* ---- the summary -------------------------------------------------------------- */

static void print_tail(dagrun_console *c, const char *p, size_t len)
{
	const char *end = p + len;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
		if (n && p[n - 1] == '\r')
			n--;
		console_put(c, "    | ");
		console_put_textn(c, p, n);
		console_put(c, "\n");
		p = nl ? nl + 1 : end;
	}
}

static void print_cuts(dagrun_console *c)
{
	if (!c->n_cut)
		return;
	console_put(c, "%struncated%s output (over 1 MiB per attempt): ", console_col(c, YELLOW),
		    console_col(c, RESET));
	for (size_t i = 0; i < c->n_cut; i++) {
		console_put(c, "%s", i ? ", " : "");
		console_put_text(c, c->cut[i].id);
		console_put(c, " (%s)", c->cut[i].out && c->cut[i].err ? "stdout, stderr"
			       : c->cut[i].out ? "stdout" : "stderr");
	}
	if (c->more_cut)
		console_put(c, " and %zu more", c->more_cut);
	console_put(c, "\n");
}

static void print_dropped(dagrun_console *c)
{
	uint64_t lines, bytes;
	obs_sink_dropped(c->sink, &lines, &bytes);
	if (!bytes)
		return;
	char sz[32];
	text_fmt_bytes(bytes, sz, sizeof(sz));
	console_put(c, "%sdropped%s %llu line%s (%s) of this display: the reader was too slow\n",
		    console_col(c, YELLOW), console_col(c, RESET), (unsigned long long)lines,
		    lines == 1 ? "" : "s", sz);
}

void console_print_summary(dagrun_console *c, const dagrun_event *ev)
{
	console_clear_line(c);
	char wall[32];
	console_fmt_ms(ev->count, wall, sizeof(wall));
	uint64_t not_run = c->total > c->done ? c->total - c->done : 0;
	console_put(c, "\n%s%s%s: %zu completed, %zu failed, %zu skipped, %zu cancelled",
	    console_col(c, BOLD), ev->status == DAGRUN_COMPLETED ? "done" :
	    ev->status != DAGRUN_CANCELLED ? "FAILED" :
	    ev->signal == SIGUSR1 ? "cancelled" : "interrupted", console_col(c, RESET),
	    c->counts[DAGRUN_COMPLETED], c->counts[DAGRUN_FAILED],
	    c->counts[DAGRUN_SKIPPED], c->counts[DAGRUN_CANCELLED]);
	if (not_run)
		console_put(c, ", %llu not run", (unsigned long long)not_run);
	console_put(c, " in %s (run ", wall);
	console_put_text(c, ev->run_id ? ev->run_id : "?");
	console_put(c, ")\n");
	if (c->cached)
		console_put(c, "cached: %llu task%s completed from the cache (nothing ran)\n",
			    (unsigned long long)c->cached, c->cached == 1 ? "" : "s");
	if (c->slow[0].id[0] && !(c->flags & DAGRUN_CONSOLE_QUIET)) {
		console_put(c, "slowest:");
		for (int i = 0; i < SLOWEST && c->slow[i].id[0]; i++) {
			char d[32];
			console_fmt_ms(c->slow[i].ms, d, sizeof(d));
			console_put(c, "%s ", i ? "," : "");
			console_put_text(c, c->slow[i].id);
			console_put(c, " %s", d);
		}
		console_put(c, "\n");
	}
	for (size_t i = 0; i < c->n_usage; i++) {
		console_put(c, "tokens: ");
		console_put_text(c, c->usage[i].model);
		console_put(c, ": %llu prompt + %llu completion in %llu call%s\n",
		    (unsigned long long)c->usage[i].prompt,
		    (unsigned long long)c->usage[i].completion,
		    (unsigned long long)c->usage[i].calls, c->usage[i].calls == 1 ? "" : "s");
	}
	print_cuts(c);
	print_dropped(c);
	for (size_t i = 0; i < c->n_fail; i++) {
		struct failure *f = &c->fail[i];
		console_put(c, "%sfailed%s ", console_col(c, RED), console_col(c, RESET));
		console_put_text(c, f->id);
		console_put(c, " [%s]: ", dagrun_class_name(f->cls));
		console_put_message(c, f->error ? f->error : "");
		console_put(c, "\n");
		if (f->tail)
			print_tail(c, f->tail, f->tail_len);
	}
	if (c->more_fail)
		console_put(c, "... and %zu more failures\n", c->more_fail);
}
