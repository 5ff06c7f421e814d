/* arena.h: a bump allocator for data that lives as long as its owner.
 *
 * Invariant: memory handed out is never moved or freed individually; the
 * whole arena is released at once by arena_free(). Chunks grow geometrically
 * up to 1 MiB, so allocation is O(1) amortised and wastes at most one chunk
 * tail.
 */
#ifndef DAGRUN_ARENA_H
#define DAGRUN_ARENA_H

#include <stddef.h>

struct arena_chunk;

struct arena {
	struct arena_chunk *head;   /* current chunk, NULL before the first alloc */
	size_t used;                /* bytes used in head */
	size_t cap;                 /* capacity of head */
	size_t total;               /* bytes reserved from malloc, for statistics */
};

/* Zero-initialise with ARENA_INIT or memset. */
#define ARENA_INIT {0, 0, 0, 0}

/* Allocates n bytes aligned to 8. Returns NULL when malloc fails. */
void *arena_alloc(struct arena *a, size_t n);

/* Like arena_alloc, but zero-filled. */
void *arena_calloc(struct arena *a, size_t n);

/* Copies n bytes of s into the arena and appends a NUL. Returns NULL on OOM. */
char *arena_strndup(struct arena *a, const char *s, size_t n);

/* Copies a NUL-terminated string. Returns NULL on OOM. */
char *arena_strdup(struct arena *a, const char *s);

/* Releases every chunk. Accepts an arena that never allocated. */
void arena_free(struct arena *a);

#endif
