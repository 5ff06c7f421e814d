/* arena.c: bump allocation in chunks; see arena.h for the invariant. */
#include "arena.h"

#include <stdlib.h>
#include <string.h>

struct arena_chunk {
	struct arena_chunk *next;
	size_t cap;
	/* data follows, 8-aligned because the header is 16 bytes */
};

#define CHUNK_MIN ((size_t)4096)
#define CHUNK_MAX ((size_t)1 << 20)

static size_t align8(size_t n)
{
	return (n + 7) & ~(size_t)7;
}

void *arena_alloc(struct arena *a, size_t n)
{
	n = align8(n ? n : 1);
	if (!a->head || a->cap - a->used < n) {
		size_t cap = a->head ? a->head->cap * 2 : CHUNK_MIN;
		if (cap > CHUNK_MAX)
			cap = CHUNK_MAX;
		if (cap < n)
			cap = n;
		struct arena_chunk *c = malloc(sizeof(*c) + cap);
		if (!c)
			return NULL;
		c->cap = cap;
		c->next = a->head;
		a->head = c;
		a->used = 0;
		a->cap = cap;
		a->total += cap + sizeof(*c);
	}
	void *p = (char *)(a->head + 1) + a->used;
	a->used += n;
	return p;
}

void *arena_calloc(struct arena *a, size_t n)
{
	void *p = arena_alloc(a, n);
	if (p)
		memset(p, 0, n);
	return p;
}

char *arena_strndup(struct arena *a, const char *s, size_t n)
{
	char *p = arena_alloc(a, n + 1);
	if (!p)
		return NULL;
	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

char *arena_strdup(struct arena *a, const char *s)
{
	return arena_strndup(a, s, strlen(s));
}

void arena_free(struct arena *a)
{
	if (!a)
		return;
	struct arena_chunk *c = a->head;
	while (c) {
		struct arena_chunk *next = c->next;
		free(c);
		c = next;
	}
	a->head = NULL;
	a->used = a->cap = a->total = 0;
}
