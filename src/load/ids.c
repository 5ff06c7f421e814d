/* ids.c: task ids and dependencies as they are read: interning through a
 * cache of recent ids, and appending dependencies to wf->deps.
 *
 * Invariant: every symbol in wf->ids has a wf->sym_task slot (UINT32_MAX
 * until a task declares it); a dependency's target is a symbol until
 * resolve turns it into a task index.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "load/loader.h"

/* ---- symbols and dependencies ----------------------------------------------------- */

/* Interns an id; keeps wf->sym_task as long as the symbol table. */
static uint32_t intern_slow(struct loader *ld, const char *s, size_t n)
{
	struct dagrun_workflow *wf = ld->wf;
	int added;
	uint32_t sym = intern_add(&wf->ids, s, n, &added);
	if (sym == INTERN_NONE) {
		load_oom(ld);
		return sym;
	}
	if (sym >= ld->sym_cap) {
		uint32_t cap = ld->sym_cap ? ld->sym_cap * 2 : 1024;
		uint32_t *v = load_grow(wf->sym_task, (size_t)cap * sizeof(*v));
		if (!v) {
			load_oom(ld);
			return INTERN_NONE;
		}
		wf->sym_task = v;
		ld->sym_cap = cap;
	}
	if (added)
		wf->sym_task[sym] = UINT32_MAX;
	return sym;
}

static uint32_t idc_hash(const char *s, size_t n)
{
	uint32_t h = 2166136261u;
	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)s[i]) * 16777619u;
	return (h ^ (h >> 15)) & ((1u << IDC_BITS) - 1);
}

/* memcmp(a, b, n) == 0 for the few bytes of a cached id, inline: a call
 * to memcmp() per id read costs more than the comparison. */
static inline bool same(const char *a, const char *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (a[i] != b[i])
			return false;
	return true;
}

/* intern_slow() behind the cache of recent ids. */
static uint32_t intern_id(struct loader *ld, const char *s, size_t n)
{
	if (n > IDC_LEN)
		return intern_slow(ld, s, n);
	if (!ld->idc && !(ld->idc = calloc((size_t)1 << IDC_BITS, sizeof(*ld->idc)))) {
		load_oom(ld);
		return INTERN_NONE;
	}
	struct idc_entry *e = &ld->idc[idc_hash(s, n)];
	if (e->len == n && same(e->s, s, n))
		return e->sym;
	uint32_t sym = intern_slow(ld, s, n);
	if (sym != INTERN_NONE) {
		e->sym = sym;
		e->len = (uint8_t)n;
		memcpy(e->s, s, n);
	}
	return sym;
}

static bool id_char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c == '_' || c == '-';
}

static bool valid_id(const char *s, size_t n)
{
	if (!n)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!id_char((unsigned char)s[i]))
			return false;
	return true;
}

/* The current scalar as a task id symbol, or INTERN_NONE after an error. */
uint32_t ids_read(struct loader *ld, bool declaring)
{
	if (!read_is_string(ld))
		return INTERN_NONE;
	if (!load_len(ld)) {
		load_error(ld, load_pos(ld), "'%s' must not be empty", ld->key);
		return INTERN_NONE;
	}
	if (declaring && !valid_id(load_str(ld), load_len(ld)))
		load_error(ld, load_pos(ld),
			   "invalid task id '%.80s': use only letters, digits, '_' and '-'",
			   load_str(ld));
	return intern_id(ld, load_str(ld), load_len(ld));
}

static bool push_dep(struct loader *ld, const struct dr_dep *d)
{
	struct dagrun_workflow *wf = ld->wf;
	if (wf->n_deps == ld->deps_cap) {
		uint64_t cap = ld->deps_cap ? ld->deps_cap * 2 : 1024;
		struct dr_dep *v = load_grow(wf->deps, cap * sizeof(*v));
		if (!v) {
			load_oom(ld);
			return false;
		}
		wf->deps = v;
		ld->deps_cap = cap;
	}
	wf->deps[wf->n_deps++] = *d;
	return true;
}

struct dep_tmp {
	struct dr_dep d;
	bool has_id;
};

static void dep_task_id(struct loader *ld, void *obj)
{
	struct dep_tmp *t = obj;
	struct pos at = load_pos(ld);
	uint32_t sym = ids_read(ld, false);
	if (sym == INTERN_NONE)
		return;
	t->d.target = sym;
	t->d.line = at.line;
	t->d.col = at.col;
	t->has_id = true;
}

static void dep_type(struct loader *ld, void *obj)
{
	static const char *const names[] = {"blocking", "non-blocking"};
	int v = read_enum(ld, names, 2);
	if (v >= 0)
		((struct dep_tmp *)obj)->d.type = (uint8_t)v;
}

static void dep_condition(struct loader *ld, void *obj)
{
	((struct dep_tmp *)obj)->d.condition = read_expr(ld);
}

static const struct keydef dep_keys[] = {
	KEY("taskId", dep_task_id), KEY("type", dep_type),
	KEY("condition", dep_condition),
};
static const struct keytab dep_tab = {"dependency", dep_keys, 3, NULL, NULL};

/* Reads one item of `dependencies`; false when it yields nothing. */
static bool read_dep(struct loader *ld, struct dr_dep *out)
{
	struct pos at = load_pos(ld);
	if (load_is(ld, YAML_SCALAR_EVENT)) {
		uint32_t sym = ids_read(ld, false);
		*out = (struct dr_dep){sym, at.line, at.col, DR_DEP_BLOCKING, NULL};
		return sym != INTERN_NONE;
	}
	if (!load_is(ld, YAML_MAPPING_START_EVENT)) {
		load_type_error(ld, "a task id or a map {taskId, type, condition}");
		return false;
	}
	struct dep_tmp t = {{0, at.line, at.col, DR_DEP_BLOCKING, NULL}, false};
	struct map_seen seen;
	const char *key = ld->key;
	read_map(ld, &dep_tab, &t, &seen);
	ld->key = key;
	if (!t.has_id && !seen_or_hinted(&seen, 0) && !ld->stop)
		load_error(ld, at, "missing required key 'taskId' in dependency");
	*out = t.d;
	return t.has_id;
}

void deps_read(struct loader *ld, void *obj)
{
	struct task_tmp *t = obj;
	if (!load_is(ld, YAML_SEQUENCE_START_EVENT)) {
		load_type_error(ld, "a list of task ids");
		return;
	}
	while (load_next(ld) && !load_is(ld, YAML_SEQUENCE_END_EVENT)) {
		struct dr_dep d;
		if (t->dep_count >= DAGRUN_MAX_DEPS) {
			if (!t->deps_capped)
				load_error(ld, load_pos(ld),
					   "too many dependencies (the limit is %u per task)",
					   DAGRUN_MAX_DEPS);
			t->deps_capped = true;
			load_skip(ld);
			continue;
		}
		if (read_dep(ld, &d) && push_dep(ld, &d))
			t->dep_count++;
	}
}

