/* intern.c: open-addressing string table; see intern.h. */
#include "intern.h"

#include <stdlib.h>
#include <string.h>

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
	uint32_t mask = nslots - 1;
	for (uint32_t sym = 0; sym < t->count; sym++) {
		uint32_t i = t->entries[sym].hash & mask;
		while (slots[i])
			i = (i + 1) & mask;
		slots[i] = sym + 1;
	}
	free(t->slots);
	t->slots = slots;
	t->mask = mask;
	return 0;
}

uint32_t intern_find(const struct intern *t, const char *s, size_t n)
{
	if (!t->slots)
		return INTERN_NONE;
	uint32_t h = hash_bytes(s, n);
	for (uint32_t i = h & t->mask;; i = (i + 1) & t->mask) {
		uint32_t v = t->slots[i];
		if (!v)
			return INTERN_NONE;
		const struct intern_entry *e = &t->entries[v - 1];
		if (e->hash == h && e->len == n && memcmp(e->s, s, n) == 0)
			return v - 1;
	}
}

uint32_t intern_add(struct intern *t, const char *s, size_t n, int *added)
{
	if (added)
		*added = 0;
	if (n > UINT32_MAX || t->count >= INTERN_NONE - 1)
		return INTERN_NONE;
	if (!t->slots || (uint64_t)(t->count + 1) * 2 > (uint64_t)t->mask + 1) {
		uint32_t nslots = t->slots ? (t->mask + 1) * 2 : 64;
		if (rehash(t, nslots) < 0)
			return INTERN_NONE;
	}
	uint32_t h = hash_bytes(s, n);
	uint32_t i = h & t->mask;
	for (;; i = (i + 1) & t->mask) {
		uint32_t v = t->slots[i];
		if (!v)
			break;
		const struct intern_entry *e = &t->entries[v - 1];
		if (e->hash == h && e->len == n && memcmp(e->s, s, n) == 0)
			return v - 1;
	}
	if (t->count == t->entries_cap) {
		uint32_t cap = t->entries_cap ? t->entries_cap * 2 : 64;
		struct intern_entry *e = realloc(t->entries, (size_t)cap * sizeof(*e));
		if (!e)
			return INTERN_NONE;
		t->entries = e;
		t->entries_cap = cap;
	}
	char *copy = arena_strndup(&t->strings, s, n);
	if (!copy)
		return INTERN_NONE;
	uint32_t sym = t->count++;
	t->entries[sym] = (struct intern_entry){copy, (uint32_t)n, h};
	t->slots[i] = sym + 1;
	if (added)
		*added = 1;
	return sym;
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
