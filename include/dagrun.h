/* dagrun.h: the public interface of libdagrun, a DAG task execution engine.
 *
 * Everything else under src/ is private. Functions return 0 or a negative
 * errno-style code; details of workflow errors travel in a dagrun_diags list
 * owned by the caller. The library never prints (except to a FILE* the
 * caller passes), never exits and never aborts.
 */
#ifndef DAGRUN_H
#define DAGRUN_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#define DAGRUN_VERSION "0.1.0"

const char *dagrun_version(void);

/* ---- diagnostics ------------------------------------------------------- */

enum dagrun_severity { DAGRUN_ERROR = 0, DAGRUN_WARNING = 1, DAGRUN_NOTE = 2 };

typedef struct dagrun_diag {
	const char *file;      /* may be NULL */
	unsigned line, column; /* 1-based; 0 when unknown */
	int severity;          /* enum dagrun_severity */
	const char *message;
} dagrun_diag;

typedef struct dagrun_diags dagrun_diags;

/* A new empty list keeping at most max entries (0: the default, 50).
 * Returns NULL on OOM. Free with dagrun_diags_free(). */
dagrun_diags *dagrun_diags_new(size_t max);
size_t dagrun_diags_count(const dagrun_diags *d);
/* Errors added (including those past the cap, which are not stored). */
size_t dagrun_diags_errors(const dagrun_diags *d);
const dagrun_diag *dagrun_diags_get(const dagrun_diags *d, size_t i);
/* Prints every entry as `FILE:LINE:COL: error: MESSAGE`, then the source
 * line and a caret (read from the file), then a count of dropped entries.
 * color: 0 or 1. Returns 0 or -errno from writing. */
int dagrun_diags_print(const dagrun_diags *d, FILE *out, int color);
void dagrun_diags_clear(dagrun_diags *d);
void dagrun_diags_free(dagrun_diags *d);

/* ---- workflows --------------------------------------------------------- */

typedef struct dagrun_workflow dagrun_workflow;

/* Limits on what a workflow file may hold (documented in README.md). */
#define DAGRUN_MAX_FILE_BYTES   ((size_t)512 << 20) /* 512 MiB */
#define DAGRUN_MAX_TASKS        4000000u
#define DAGRUN_MAX_DEPTH        64u                 /* YAML nesting */
#define DAGRUN_MAX_STRING_BYTES ((size_t)1 << 20)   /* one scalar: 1 MiB */
#define DAGRUN_MAX_DEPS         100000u             /* per task */

/* Loads and validates the workflow at path (YAML or JSON), including the
 * dependency graph (cycles, unknown ids). On success *out owns the workflow
 * (free with dagrun_workflow_free) and returns 0; warnings may still be
 * added to diags. On invalid input returns -EINVAL with the errors in diags;
 * on I/O failure -errno (also described in diags). */
int dagrun_workflow_load(const char *path, dagrun_workflow **out,
			 dagrun_diags *diags);

/* Same from a memory buffer; name is used in diagnostics (and for relative
 * paths: the workflow's directory is that of name). */
int dagrun_workflow_load_buffer(const char *name, const char *data, size_t len,
				dagrun_workflow **out, dagrun_diags *diags);

void dagrun_workflow_free(dagrun_workflow *wf);

const char *dagrun_workflow_name(const dagrun_workflow *wf);
size_t dagrun_workflow_task_count(const dagrun_workflow *wf);

enum dagrun_graph_format {
	DAGRUN_GRAPH_DOT,
	DAGRUN_GRAPH_MERMAID,
	DAGRUN_GRAPH_JSON,
};

/* Writes the dependency graph of wf to out. Returns 0 or -errno. */
int dagrun_graph_write(const dagrun_workflow *wf, enum dagrun_graph_format fmt,
		       FILE *out);

#ifdef __cplusplus
}
#endif
#endif
