/* intern.c: open-addressing string table; see intern.h.
 *
 * A slot is (hash & ~mask) | (symbol + 1): the load factor keeps symbol + 1
 * at most half the slot count, so it fits under mask and the bits above
 * are free for the hash's high bits, which the slot index does not use.
 * A lookup in a large table thus costs one cache miss for the slots and
 * one for the matching entry, instead of one per entry probed.
 */
#include "intern.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define MIN_SLOTS 64
#define HUGE_PAGE ((uintptr_t)2 << 20)

/* Advises huge pages for a large block from malloc, which is then a
 * mapping of its own: a table of a million ids spares thousands of page
 * faults. Advice only. The whole mapping is advised, so that it is not
 * split and realloc can still move it without copying. */
static void advise_huge(void *p, size_t bytes)
{
#ifdef MADV_HUGEPAGE
	if (p && bytes >= 2 * HUGE_PAGE) {
		uintptr_t a = (uintptr_t)p & ~(uintptr_t)4095;
		uintptr_t b = ((uintptr_t)p + bytes + 4095) & ~(uintptr_t)4095;
		madvise((void *)a, b - a, MADV_HUGEPAGE);
	}
#else
	(void)p;
	(void)bytes;
#endif
}

static uint32_t hash_bytes(const char *s, size_t n)
{
	/* FNV-1a, then a final avalanche so that the low bits used as the slot
	 * index depend on every byte (ids like t1, t2, ... differ in one). */
	uint32_t h = 2166136261u;
	for (size_t i = 0; i < n; i++) {
		h ^= (unsigned char)s[i];
		h *= 16777619u;
	}
	h ^= h >> 16;
	h *= 0x7feb352du;
	h ^= h >> 15;
	h *= 0x846ca68bu;
	h ^= h >> 16;
	return h;
}

static int rehash(struct intern *t, uint32_t nslots)
{
	uint32_t *slots = calloc(nslots, sizeof(*slots));
	if (!slots)
		return -1;
	advise_huge(slots, (size_t)nslots * sizeof(*slots));
	uint32_t mask = nslots - 1;
	for (uint32_t sym = 0; sym < t->count; sym++) {
		uint32_t h = t->entries[sym].hash;
		uint32_t i = h & mask;
		while (slots[i])
			i = (i + 1) & mask;
		slots[i] = (h & ~mask) | (sym + 1);
	}
	free(t->slots);
	t->slots = slots;
	t->mask = mask;
	return 0;
}

/* The slot of s (hash h) if present, else the empty slot where it goes.
 * t->slots must exist. */
static uint32_t probe(const struct intern *t, const char *s, size_t n, uint32_t h)
{
	uint32_t mask = t->mask, tag = h & ~mask;
	for (uint32_t i = h & mask;; i = (i + 1) & mask) {
		uint32_t v = t->slots[i];
		if (!v)
			return i;
		if ((v & ~mask) != tag)
			continue;
		const struct intern_entry *e = &t->entries[(v & mask) - 1];
		if (e->hash == h && e->len == n && memcmp(e->s, s, n) == 0)
			return i;
	}
}

uint32_t intern_find(const struct intern *t, const char *s, size_t n)
{
	if (!t->slots)
		return INTERN_NONE;
	uint32_t v = t->slots[probe(t, s, n, hash_bytes(s, n))];
	return v ? (v & t->mask) - 1 : INTERN_NONE;
}

static int grow_entries(struct intern *t, uint32_t cap)
{
	struct intern_entry *e = realloc(t->entries, (size_t)cap * sizeof(*e));
	if (!e)
		return -1;
	advise_huge(e, (size_t)cap * sizeof(*e));
	t->entries = e;
	t->entries_cap = cap;
	return 0;
}

uint32_t intern_add(struct intern *t, const char *s, size_t n, int *added)
{
	if (added)
		*added = 0;
	if (n > UINT32_MAX || t->count >= INTERN_NONE - 1)
		return INTERN_NONE;
	if (!t->slots || (uint64_t)(t->count + 1) * 2 > (uint64_t)t->mask + 1) {
		uint32_t nslots = t->slots ? (t->mask + 1) * 2 : MIN_SLOTS;
		if (rehash(t, nslots) < 0)
			return INTERN_NONE;
	}
	uint32_t h = hash_bytes(s, n);
	uint32_t i = probe(t, s, n, h);
	if (t->slots[i])
		return (t->slots[i] & t->mask) - 1;
	if (t->count == t->entries_cap &&
	    grow_entries(t, t->entries_cap ? t->entries_cap * 2 : 64) < 0)
		return INTERN_NONE;
	char *copy = arena_strndup(&t->strings, s, n);
	if (!copy)
		return INTERN_NONE;
	uint32_t sym = t->count++;
	t->entries[sym] = (struct intern_entry){copy, (uint32_t)n, h};
	t->slots[i] = (h & ~t->mask) | (sym + 1);
	if (added)
		*added = 1;
	return sym;
}

int intern_reserve(struct intern *t, uint32_t n)
{
	uint64_t nslots = MIN_SLOTS;
	while (nslots < (uint64_t)n * 2)
		nslots *= 2;
	if (nslots > (uint64_t)1 << 31)
		return -1;
	if ((!t->slots || nslots > (uint64_t)t->mask + 1) && rehash(t, (uint32_t)nslots) < 0)
		return -1;
	if (n > t->entries_cap && grow_entries(t, n) < 0)
		return -1;
	return 0;
}

void intern_prefetch(const struct intern *t, const char *s, size_t n)
{
	if (t->slots)
		__builtin_prefetch(&t->slots[hash_bytes(s, n) & t->mask]);
}

size_t intern_memory(const struct intern *t)
{
	return t->strings.total + (size_t)t->entries_cap * sizeof(*t->entries) +
	       (t->slots ? ((size_t)t->mask + 1) * sizeof(*t->slots) : 0);
}

void intern_free(struct intern *t)
{
	if (!t)
		return;
	arena_free(&t->strings);
	free(t->entries);
	free(t->slots);
	memset(t, 0, sizeof(*t));
}
