/* intern.h: string interning into dense symbol numbers 0..count-1.
 *
 * Invariant: equal strings get the same symbol; symbols are assigned in
 * first-seen order and never change; the text of a symbol stays valid until
 * intern_free(). Lookup and insertion are O(1) expected (open addressing,
 * load factor <= 1/2).
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
	uint32_t *slots;               /* symbol + 1, 0 = empty */
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

/* Bytes held by the table, for statistics. */
size_t intern_memory(const struct intern *t);

/* Frees everything. Accepts a zeroed table. */
void intern_free(struct intern *t);

#endif
