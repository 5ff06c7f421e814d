/* intern.h: string interning into dense symbol numbers 0..count-1.
 *
 * Invariant: equal strings get the same symbol; symbols are assigned in
 * first-seen order and never change; the text of a symbol stays valid until
 * intern_free(). Lookup and insertion are O(1) expected (open addressing,
 * load factor <= 1/2). A slot holds the symbol and the high bits of the
 * string's hash, so a probe reads a string's entry only when those match.
 */
#ifndef DAGRUN_INTERN_H
#define DAGRUN_INTERN_H

#include <stddef.h>
#include <stdint.h>

#include "arena.h"

#define INTERN_NONE UINT32_MAX

struct intern_entry {
	const char *s;      /* NUL-terminated, owned by the table's arena */
	uint32_t len;
	uint32_t hash;
};

struct intern {
	struct arena strings;
	struct intern_entry *entries;  /* indexed by symbol */
	uint32_t count, entries_cap;
	uint32_t *slots;               /* (hash & ~mask) | (symbol + 1), 0 = empty */
	uint32_t mask;                 /* slot count - 1, or 0 before first add */
};

/* Returns the symbol of s[0..n), adding it if new; *added tells which.
 * Returns INTERN_NONE when memory runs out. */
uint32_t intern_add(struct intern *t, const char *s, size_t n, int *added);

/* Returns the symbol of s[0..n) or INTERN_NONE if it was never added. */
uint32_t intern_find(const struct intern *t, const char *s, size_t n);

static inline const char *intern_str(const struct intern *t, uint32_t sym)
{
	return t->entries[sym].s;
}

/* Makes room for n strings in all, so that adding them does not grow the
 * table again. An optimisation only: returns 0, or -1 when memory runs out
 * (the table is then unchanged and still usable). */
int intern_reserve(struct intern *t, uint32_t n);

/* Starts loading the slot where s[0..n) would be looked up first, for a
 * lookup soon after; a hint, which changes nothing. */
void intern_prefetch(const struct intern *t, const char *s, size_t n);

/* Bytes held by the table, for statistics. */
size_t intern_memory(const struct intern *t);

/* Frees everything. Accepts a zeroed table. */
void intern_free(struct intern *t);

#endif
