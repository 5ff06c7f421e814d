/* sqlite_map.c: a hash map from two 64-bit integers to a pointer, for the
 * writer (an attempt's start within a batch, a task's last status within a
 * batch, an attempt's open log files).
 *
 * Open addressing with linear probing, at most half full. An entry is live
 * when its generation is the map's, so clearing a map between batches is
 * O(1); deletion shifts the following entries of the cluster back, so no
 * tombstones build up.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "store/sqlite_int.h"

static uint32_t hash(uint64_t a, uint64_t b)
{
	uint64_t h = a * 0x9e3779b97f4a7c15ull ^ (b + 0x632be59bd9b4e019ull) * 0xbf58476d1ce4e5b9ull;
	h ^= h >> 31;
	return (uint32_t)(h ^ (h >> 29));
}

static bool live(const struct sq_map *m, const struct sq_map_ent *e)
{
	return e->gen == m->gen;
}

void *sq_map_get(const struct sq_map *m, uint64_t a, uint64_t b)
{
	if (!m->e)
		return NULL;
	for (uint32_t i = hash(a, b) & m->mask;; i = (i + 1) & m->mask) {
		const struct sq_map_ent *e = &m->e[i];
		if (!live(m, e))
			return NULL;
		if (e->a == a && e->b == b)
			return e->v;
	}
}

static int grow(struct sq_map *m)
{
	uint32_t cap = m->e ? (m->mask + 1) * 2 : 64;
	struct sq_map_ent *ne = calloc(cap, sizeof(*ne));
	if (!ne)
		return -ENOMEM;
	struct sq_map old = *m;
	m->e = ne;
	m->mask = cap - 1;
	m->n = 0;
	m->gen = 1;
	if (old.e) {
		for (uint32_t i = 0; i <= old.mask; i++)
			if (live(&old, &old.e[i]))
				sq_map_put(m, old.e[i].a, old.e[i].b, old.e[i].v);
		free(old.e);
	}
	return 0;
}

int sq_map_put(struct sq_map *m, uint64_t a, uint64_t b, void *v)
{
	if ((!m->e || (m->n + 1) * 2 > m->mask + 1) && grow(m) < 0)
		return -ENOMEM;
	for (uint32_t i = hash(a, b) & m->mask;; i = (i + 1) & m->mask) {
		struct sq_map_ent *e = &m->e[i];
		if (!live(m, e)) {
			*e = (struct sq_map_ent){a, b, v, m->gen};
			m->n++;
			return 0;
		}
		if (e->a == a && e->b == b) {
			e->v = v;
			return 0;
		}
	}
}

void sq_map_del(struct sq_map *m, uint64_t a, uint64_t b)
{
	if (!m->e)
		return;
	uint32_t i = hash(a, b) & m->mask;
	for (;; i = (i + 1) & m->mask) {
		struct sq_map_ent *e = &m->e[i];
		if (!live(m, e))
			return;
		if (e->a == a && e->b == b)
			break;
	}
	/* Shift back the entries after i that would no longer be found. */
	uint32_t j = i;
	for (;;) {
		m->e[i].gen = m->gen - 1;
		for (;;) {
			j = (j + 1) & m->mask;
			if (!live(m, &m->e[j]))
				goto done;
			uint32_t home = hash(m->e[j].a, m->e[j].b) & m->mask;
			/* j's entry may stay unless its home lies cyclically in (i, j]. */
			bool stays = i <= j ? (i < home && home <= j) : (i < home || home <= j);
			if (!stays)
				break;
		}
		m->e[i] = m->e[j];
		i = j;
	}
done:
	m->n--;
}

void sq_map_clear(struct sq_map *m)
{
	if (!m->e)
		return;
	m->n = 0;
	if (++m->gen == 0) {   /* wrapped: old entries could look live */
		memset(m->e, 0, (size_t)(m->mask + 1) * sizeof(*m->e));
		m->gen = 1;
	}
}

void sq_map_free(struct sq_map *m)
{
	free(m->e);
	memset(m, 0, sizeof(*m));
}
