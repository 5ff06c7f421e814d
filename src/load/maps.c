/* maps.c: free-form maps (env, headers, resources) and values of any
 * shape (variables, body, payload, context).
 *
 * Invariant: collections are gathered on the loader's scratch stack and
 * copied into the arena exactly sized when they end; a map's keys are
 * checked for duplicates before it is kept.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "load/loader.h"

/* ---- free maps ------------------------------------------------------------------- */

static int cmp_text_p(const void *a, const void *b)
{
	const struct dr_text *x = *(const struct dr_text *const *)a;
	const struct dr_text *y = *(const struct dr_text *const *)b;
	size_t n = x->len < y->len ? x->len : y->len;
	int c = memcmp(x->s, y->s, n);
	if (c || x->len != y->len)
		return c ? c : (x->len < y->len ? -1 : 1);
	if (x->line != y->line)
		return x->line < y->line ? -1 : 1;
	return (x->col > y->col) - (x->col < y->col);
}

static bool same_text(const struct dr_text *a, const struct dr_text *b)
{
	return a->len == b->len && !memcmp(a->s, b->s, a->len);
}

static void dup_error(struct loader *ld, const struct dr_text *dup,
		      const struct dr_text *first)
{
	load_error(ld, (struct pos){dup->line, dup->col},
		   "duplicate key '%s' (first at line %u)", dup->s, first->line);
}

bool check_dup_keys(struct loader *ld, const void *base, size_t stride, size_t n)
{
	const char *b = base;
	if (n <= 8) {
		for (size_t i = 1; i < n; i++)
			for (size_t j = 0; j < i; j++)
				if (same_text((const void *)(b + i * stride),
					      (const void *)(b + j * stride))) {
					dup_error(ld, (const void *)(b + i * stride),
						  (const void *)(b + j * stride));
					break;
				}
		return true;
	}
	const struct dr_text **v = malloc(n * sizeof(*v));
	if (!v) {
		load_oom(ld);
		return false;
	}
	for (size_t i = 0; i < n; i++)
		v[i] = (const void *)(b + i * stride);
	qsort(v, n, sizeof(*v), cmp_text_p);
	for (size_t i = 1, first = 0; i < n && !ld->stop; i++) {
		if (!same_text(v[i], v[first]))
			first = i;
		else
			dup_error(ld, v[i], v[first]);
	}
	free(v);
	return true;
}

/* Reads a free map's key (a scalar) as a dr_text; false when it is not
 * one: the key and its value are then skipped. */
static bool free_key(struct loader *ld, struct dr_text *key)
{
	if (!load_is(ld, YAML_SCALAR_EVENT)) {
		if (!load_is(ld, YAML_ALIAS_EVENT))
			load_error(ld, load_pos(ld), "keys must be strings, got %s",
				   load_type_name(ld));
		load_skip(ld);
		if (load_next(ld))
			load_skip(ld);
		return false;
	}
	return load_keep(ld, key);
}

/* Names are checked over their whole length: a NUL inside fails them. */
static bool env_name_ok(const struct dr_text *k)
{
	if (!k->len || (k->s[0] >= '0' && k->s[0] <= '9'))
		return false;
	return strspn(k->s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
			    "0123456789_") == k->len;
}

static bool header_name_ok(const struct dr_text *k)
{
	return k->len && strspn(k->s, "!#$%&'*+-.^_`|~0123456789"
				      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz") ==
			 k->len;
}

/* An output's name, as $DAGRUN_OUTPUT takes them. */
static bool output_name_ok(const struct dr_text *k)
{
	return k->len && k->len <= LOAD_MAX_OUTPUT_NAME &&
	       strspn(k->s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
			    "0123456789_-") == k->len;
}

static void check_name(struct loader *ld, const struct dr_text *k, int names)
{
	struct pos at = {k->line, k->col};
	if (names != NAME_ANY && memchr(k->s, '\0', k->len))
		load_error(ld, at, "NUL character (\\0) in a name in '%s'", ld->key);
	else if (names == NAME_ENV && !env_name_ok(k))
		load_error(ld, at, "invalid environment variable name '%s' "
			   "(use letters, digits and '_', not starting with a digit)", k->s);
	else if (names == NAME_HEADER && !header_name_ok(k))
		load_error(ld, at, "invalid HTTP header name '%s'", k->s);
	else if (names == NAME_OUTPUT && !output_name_ok(k))
		load_error(ld, at, "invalid output name '%.80s' (use letters, digits, '_' and "
			   "'-', at most %d bytes)", k->s, LOAD_MAX_OUTPUT_NAME);
}

void read_kvlist(struct loader *ld, struct dr_kvlist *out, int names)
{
	const char *what = ld->key;
	if (!load_is(ld, YAML_MAPPING_START_EVENT)) {
		load_type_error(ld, "a map");
		return;
	}
	size_t mark = ld->top;
	uint32_t n = 0;
	while (load_next(ld) && !load_is(ld, YAML_MAPPING_END_EVENT)) {
		struct dr_kv kv;
		if (!free_key(ld, &kv.key) || !load_next(ld))
			continue;
		check_name(ld, &kv.key, names);
		if (!read_is_text(ld)) {
			if (!load_is(ld, YAML_ALIAS_EVENT))
				load_error(ld, load_pos(ld), "'%s.%s' must be a string, got %s",
					   what, kv.key.s, load_type_name(ld));
			load_skip(ld);
			continue;
		}
		load_refuse_nul(ld);
		if (!load_keep(ld, &kv.value) || load_push(ld, &kv, sizeof(kv)) == SIZE_MAX)
			return;
		n++;
	}
	if (ld->stop)
		return;
	if (!check_dup_keys(ld, ld->stk + mark, sizeof(struct dr_kv), n))
		return;
	out->v = load_pop(ld, mark);
	out->n = n;
}

/* ---- values of any shape ---------------------------------------------------------- */

static bool read_any(struct loader *ld, struct dr_value *v);

static void set_scalar(struct loader *ld, struct dr_value *v)
{
	static const uint8_t kinds[] = {DR_VAL_NULL, DR_VAL_BOOL, DR_VAL_INT,
					DR_VAL_REAL, DR_VAL_STRING};
	struct scalar sc;
	load_scalar(ld, &sc);
	v->kind = kinds[sc.kind];
	v->quoted = ld->ev.data.scalar.style != YAML_PLAIN_SCALAR_STYLE;
	if (sc.kind == SK_BOOL)
		v->as.b = sc.b;
	else if (sc.kind == SK_INT)
		v->as.i = sc.i;
	else if (sc.kind == SK_REAL)
		v->as.d = sc.d;
}

static bool read_list_items(struct loader *ld, struct dr_value *v)
{
	size_t mark = ld->top;
	uint32_t n = 0;
	while (load_next(ld) && !load_is(ld, YAML_SEQUENCE_END_EVENT)) {
		struct dr_value item;
		if (!read_any(ld, &item))
			continue;
		if (load_push(ld, &item, sizeof(item)) == SIZE_MAX)
			return false;
		n++;
	}
	if (ld->stop)
		return false;
	v->count = n;
	v->items = load_pop(ld, mark);
	return !ld->stop;
}

/* A map entry on the scratch stack: the key first, for check_dup_keys. */
struct entry {
	struct dr_text key;
	struct dr_value value;
};

static bool read_map_items(struct loader *ld, struct dr_value *v)
{
	size_t mark = ld->top;
	uint32_t n = 0;
	while (load_next(ld) && !load_is(ld, YAML_MAPPING_END_EVENT)) {
		struct entry e;
		if (!free_key(ld, &e.key) || !load_next(ld))
			continue;
		if (!read_any(ld, &e.value))
			continue;
		if (load_push(ld, &e, sizeof(e)) == SIZE_MAX)
			return false;
		n++;
	}
	if (ld->stop || !check_dup_keys(ld, ld->stk + mark, sizeof(struct entry), n))
		return false;
	v->count = n;
	if (!n) {
		ld->top = mark;
		return true;
	}
	v->keys = arena_alloc(&ld->wf->arena, n * sizeof(*v->keys));
	v->items = arena_alloc(&ld->wf->arena, n * sizeof(*v->items));
	if (!v->keys || !v->items) {
		load_oom(ld);
		return false;
	}
	const struct entry *e = (const void *)(ld->stk + mark);
	for (uint32_t i = 0; i < n; i++) {
		v->keys[i] = e[i].key;
		v->items[i] = e[i].value;
	}
	ld->top = mark;
	return true;
}

/* Reads the current node into *v; false when it was an alias or on stop. */
static bool read_any(struct loader *ld, struct dr_value *v)
{
	memset(v, 0, sizeof(*v));
	v->text.line = load_pos(ld).line;
	v->text.col = load_pos(ld).col;
	switch (ld->ev.type) {
	case YAML_SCALAR_EVENT:
		set_scalar(ld, v);
		return load_keep(ld, &v->text);
	case YAML_SEQUENCE_START_EVENT:
		v->kind = DR_VAL_LIST;
		return read_list_items(ld, v);
	case YAML_MAPPING_START_EVENT:
		v->kind = DR_VAL_MAP;
		return read_map_items(ld, v);
	default:
		return false; /* an alias, already reported */
	}
}

const struct dr_value *read_value(struct loader *ld, bool want_map)
{
	if (want_map && !load_is(ld, YAML_MAPPING_START_EVENT)) {
		load_type_error(ld, "a map");
		return NULL;
	}
	struct dr_value *v = arena_alloc(&ld->wf->arena, sizeof(*v));
	if (!v) {
		load_oom(ld);
		return NULL;
	}
	return read_any(ld, v) ? v : NULL;
}

/* ---- resources ---------------------------------------------------------------------- */

uint32_t load_pool(struct loader *ld, const char *name, size_t n)
{
	int added;
	uint32_t sym = intern_add(&ld->pools, name, n, &added);
	if (sym == INTERN_NONE) {
		load_oom(ld);
		return sym;
	}
	if (sym >= ld->pool_cap) {
		uint32_t cap = ld->pool_cap ? ld->pool_cap * 2 : 16;
		struct pool_info *p = realloc(ld->pool_v, cap * sizeof(*p));
		if (!p) {
			load_oom(ld);
			return INTERN_NONE;
		}
		ld->pool_v = p;
		ld->pool_cap = cap;
	}
	if (added)
		ld->pool_v[sym] = (struct pool_info){0, {0, 0}};
	return sym;
}

struct res_entry {
	struct dr_text key;
	struct dr_res res;
};

void read_res(struct loader *ld, struct dr_res **out, uint32_t *n_out)
{
	const char *what = ld->key;
	if (!load_is(ld, YAML_MAPPING_START_EVENT)) {
		load_type_error(ld, "a map of pool names to units");
		return;
	}
	size_t mark = ld->top;
	uint32_t n = 0;
	while (load_next(ld) && !load_is(ld, YAML_MAPPING_END_EVENT)) {
		struct res_entry e;
		int64_t units;
		if (!free_key(ld, &e.key))
			continue;
		if (memchr(e.key.s, '\0', e.key.len))
			load_error(ld, (struct pos){e.key.line, e.key.col},
				   "NUL character (\\0) in a pool name in '%s'", what);
		if (!load_next(ld))
			continue;
		ld->key = e.key.s;
		if (!read_int(ld, 1, DR_MAX_POOL, &units))
			continue;
		if (ld->pools.count >= DR_MAX_POOLS &&
		    intern_find(&ld->pools, e.key.s, e.key.len) == INTERN_NONE) {
			load_error(ld, (struct pos){e.key.line, e.key.col},
				   "too many resource pools: a workflow has at most %u resource pools",
				   DR_MAX_POOLS);
			continue;
		}
		e.res = (struct dr_res){load_pool(ld, e.key.s, e.key.len),
					(uint32_t)units, e.key.line, e.key.col};
		if (e.res.pool == INTERN_NONE || load_push(ld, &e, sizeof(e)) == SIZE_MAX)
			return;
		n++;
	}
	ld->key = what;
	if (ld->stop || !check_dup_keys(ld, ld->stk + mark, sizeof(struct res_entry), n))
		return;
	struct dr_res *r = n ? arena_alloc(&ld->wf->arena, n * sizeof(*r)) : NULL;
	if (n && !r) {
		load_oom(ld);
		return;
	}
	const struct res_entry *e = (const void *)(ld->stk + mark);
	for (uint32_t i = 0; i < n; i++)
		r[i] = e[i].res;
	ld->top = mark;
	*out = r;
	*n_out = n;
}
