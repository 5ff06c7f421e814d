/* rundoc_int.h: what the builder of a recorded run's document shares
 * between rundoc_store.c (the run, its tasks, ids, definition, history)
 * and rundoc_attempt.c (attempts and their output tails). */
#ifndef DAGRUN_REPORT_RUNDOC_INT_H
#define DAGRUN_REPORT_RUNDOC_INT_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "dagrun.h"
#include "report/rundoc.h"
#include "store/store.h"
#include "util/arena.h"
#include "util/buf.h"

#define TIME_MAX ((((uint64_t)1) << 53) - 1)
#define NONE UINT32_MAX


struct build {
	struct store *s;
	const struct store_run_info *ri;
	const struct report_rundoc_opts *o;
	struct arena mem;
	struct store_task_info *t;
	size_t nt;
	struct store_attempt_info *a;
	size_t na;
	bool interrupted;
	/* the recorded definition, loaded again (or NULL) */
	dagrun_workflow *wf;
	uint32_t *wf_of;           /* recorded index -> wf task, or NONE */
	uint32_t *rec_of;          /* wf task -> recorded index, or NONE */
	/* the ids written, one per recorded task */
	json_t **id;
	/* history by recorded index, or NULL */
	const struct store_task_stats **hist;
	size_t tail;
	char *rbuf;                /* tail bytes */
	uint32_t unread;           /* output files that could not be read */
	struct buf tmp, warn;
	char **err;
};

/* -ENOMEM, saying "out of memory" in *b->err unless something was said. */
int rd_oom(struct build *b);
/* A warning line for the document's warnings. */
void rd_warn(struct build *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* JSON values: text made valid UTF-8 (NULL on out of memory), times (ms,
 * null for 0), unsigned integers, an error class's name or null. */
json_t *rd_jtextn(struct build *b, const char *s, size_t n);
json_t *rd_jtext(struct build *b, const char *s);
json_t *rd_jtime(uint64_t ms);
json_t *rd_juint(uint64_t v);
json_t *rd_jclass(int c);
/* json_object_set_new(o, key, v): 0, or -1 (v NULL or not set). */
int rd_set(json_t *o, const char *key, json_t *v);

/* The document's object of attempt a: outcome, times, process, HTTP and AI
 * details, outputs, and the tails of its stdout and stderr. NULL on out
 * of memory. */
json_t *rd_attempt(struct build *b, const struct store_attempt_info *a);

#endif
