/* cache_int.h: what the files of the cache share: cache.c (the executor,
 * the entries, the dry run) and cache_parts.c (the key's components). */
#ifndef DAGRUN_ENGINE_CACHE_INT_H
#define DAGRUN_ENGINE_CACHE_INT_H

#include <stddef.h>

#include "engine/cache.h"
#include "kinds/kind.h"

struct flow;
struct catt;

#define container_of(p, type, m) ((type *)(void *)((char *)(p) - offsetof(type, m)))

/* Adds to c the components known on the loop of attempt a of a task with
 * `cache` (kind: its kind's name; inputs: its canonical inputs, or NULL;
 * f: the run's flow, for the upstream results, or NULL): version, kind,
 * inputs.FIELD, key, secrets, env:NAME, upstream:TASK. Returns 0, -ENOMEM,
 * or -EINVAL with *err (malloc'd: a key template that fails). */
int cache_components(json_t *c, struct exec_attempt *a, const char *kind, const char *inputs,
		     const struct flow *f, char **err);

/* The files of cc's `inputs` globs, from dir: what cache_files_work does,
 * on the thread pool (or a dry run's thread: it may wait for the disk). */
struct cache_files_job {
	uv_work_t req;
	struct catt *ca;                 /* the executor's, or NULL */
	char *dir;
	const struct dr_cache *cc;       /* the model's: read only */
	json_t *prev_c, *prev_s;         /* the newest entry's components and
					  * file stats (the fast path), or
					  * NULL; read only (the executor's:
					  * copies it frees; a dry run's:
					  * borrowed) */
	json_t *comp, *stat;             /* made: file:PATH -> hash, PATH ->
					  * "size:mtime" */
	char *err;                       /* why nothing can be cached */
	int r;                           /* 0, -ENOMEM, -EIO, -EFBIG */
};

/* Expands, stats and hashes j's files into j->comp and j->stat (with the
 * caps CACHE_MAX_FILES, CACHE_MAX_BYTES), or sets j->r and j->err. Touches
 * nothing but j: safe on any thread. */
void cache_files_work(uv_work_t *req);

#endif
