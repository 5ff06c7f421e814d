/* cache.h: the cache (README "Cache"): the executor that skips a task whose
 * key matches an earlier completed attempt and the entries it decides
 * from (cache.c; the key's components: cache_parts.c), and the key's pure
 * parts (cache_key.c), which explain and the unit tests use too.
 */
#ifndef DAGRUN_ENGINE_CACHE_H
#define DAGRUN_ENGINE_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <uv.h>

#include "exec/executor.h"
#include "store/store.h"
#include "util/arena.h"

struct kind;
struct kind_env;

/* The version of what a key covers: a key made by another version never
 * matches ("miss: cache format changed"). */
#define CACHE_FORMAT "1"
/* Caps on what `inputs` globs may bring into one key. */
#define CACHE_MAX_FILES 10000
#define CACHE_MAX_BYTES ((uint64_t)1 << 30)   /* hashed per attempt */
/* Bytes of recorded results read with the entries when a run starts;
 * the hits beyond read theirs on the thread pool. */
#define CACHE_LOAD_BYTES ((uint64_t)64 << 20)

/* The entries of the run's workflow, read once when the run starts, by
 * task (newest first). */
struct cache_tab {
	struct arena mem;
	struct store_cache_entry *v;
	size_t n;
	uint32_t *first;             /* per task of wf: its newest entry, or
				      * UINT32_MAX */
	uint32_t *next;              /* per entry: the next of its task */
	bool no_cache;               /* --no-cache */
	struct store *st;            /* where a hit's result is read (on the
				      * pool); the run's, borrowed */
};

/* Reads the entries of wf's workflow from st into tab (zeroed by the
 * caller; free with cache_tab_free), not their results (tab->st, set by
 * the caller for a run, is where a hit reads its own). Returns 0 or < 0
 * with *err. */
int cache_tab_load(struct cache_tab *tab, struct store *st, const struct dagrun_workflow *wf,
		   char **err);
void cache_tab_free(struct cache_tab *tab);

/* An executor for the tasks of kind k that runs them on inner (borrowed:
 * destroy this one first) unless their cache key matches an entry of tab
 * (borrowed, filled before the first attempt): then the attempt ends,
 * from the loop, with the entry's recorded result. Every attempt of a task
 * with `cache` carries DAGRUN_EXT_CACHE. env: the engine's (its flow, for
 * upstream results). NULL on OOM. */
struct executor *cache_executor_new(uv_loop_t *loop, const struct kind *k, struct executor *inner,
				    struct cache_tab *tab, struct kind_env *env);

/* The dry run's word on task t (its key computed now, files hashed on
 * this thread: a dry run may wait): "hit (run R)", "miss: ...", "not
 * cached: ...", or "decided when it runs" for a task that reads an
 * upstream result (none yet); NULL: t has no `cache` (or OOM). malloc'd. */
char *cache_plan(struct kind_env *env, struct cache_tab *tab, uint32_t t);

/* ---- the key (cache_key.c) ------------------------------------------------- */

/* The hex SHA-256 of s[0 .. n) into hex (65 bytes); with short_ (17
 * bytes) only its first 16 digits. */
void cache_sha256_hex(const void *s, size_t n, char *hex, bool short_);

/* The key of the components c (a JSON object of name to string): the hex
 * SHA-256 of their canonical text (keys sorted, compact) into hex. Returns
 * 0 or -ENOMEM. */
int cache_key_of(const json_t *c, char hex[65]);

/* Why components now differ from old (an entry's): "miss: command
 * changed", "miss: input changed: src/a.c", "miss: upstream result
 * changed: build"..., the first difference in a fixed order (format, kind,
 * upstream, inputs, key, secrets, env, files), with "(and N more)". malloc'd, or
 * NULL on OOM. */
char *cache_reason(const json_t *old, const json_t *now);

/* The names of the components that differ between old and now (added,
 * removed or changed), in that order, into a new JSON array. NULL on OOM. */
json_t *cache_diff(const json_t *old, const json_t *now);

#endif
