/* read.c: typed readers over the event cursor: scalars of each type,
 * table-driven mappings, free-form maps and values of any shape.
 *
 * Invariant: collections are gathered on the loader's scratch stack and
 * copied into the workflow arena exactly sized when they end, popping the
 * stack back; nested collections push above their parent's items, so one
 * stack serves every depth and the arena never holds dead growth.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "load/duration.h"

#include "load/loader.h"
#include "util/suggest.h"
#include "util/url.h"

/* ---- big vectors ------------------------------------------------------------- */

#define HUGE_PAGE ((uintptr_t)2 << 20)

void *load_grow(void *p, size_t bytes)
{
	char *q = realloc(p, bytes);
#ifdef MADV_HUGEPAGE
	/* A million-task file fills hundreds of MB of vectors: huge pages
	 * spare most of the page faults and TLB misses. Advice only. */
	if (q && bytes >= 2 * HUGE_PAGE) {
		/* The whole mapping of the block, so that the advice does not
		 * split it: realloc could no longer mremap it without a copy. */
		uintptr_t a = (uintptr_t)q & ~(uintptr_t)4095;
		uintptr_t b = ((uintptr_t)q + bytes + 4095) & ~(uintptr_t)4095;
		madvise((void *)a, b - a, MADV_HUGEPAGE);
	}
#endif
	return q;
}

/* ---- scratch stack ----------------------------------------------------------- */

size_t load_push(struct loader *ld, const void *p, size_t n)
{
	size_t at = ld->top, need = (n + 7) & ~(size_t)7;
	if (ld->stk_cap - ld->top < need) {
		size_t cap = ld->stk_cap ? ld->stk_cap * 2 : 4096;
		while (cap - ld->top < need)
			cap *= 2;
		char *s = realloc(ld->stk, cap);
		if (!s) {
			load_oom(ld);
			return SIZE_MAX;
		}
		ld->stk = s;
		ld->stk_cap = cap;
	}
	memcpy(ld->stk + at, p, n);
	ld->top += need;
	return at;
}

void *load_pop(struct loader *ld, size_t mark)
{
	size_t n = ld->top - mark;
	void *p = NULL;
	if (n) {
		p = arena_alloc(&ld->wf->arena, n);
		if (!p)
			load_oom(ld);
		else
			memcpy(p, ld->stk + mark, n);
	}
	ld->top = mark;
	return p;
}

/* ---- scalars ------------------------------------------------------------------ */

/* The position of the first character of a block scalar's text (the line
 * after its `|` or `>` indicator, at its indentation), read from the input
 * at byte `index`, the indicator; `at` when it cannot be read. */
static struct pos block_start(const struct loader *ld, size_t index, struct pos at)
{
	char buf[512];
	ssize_t n;
	if (ld->stream) /* a pipe or a device cannot be read again */
		return at;
	if (ld->data)
		n = index < ld->len ? (ssize_t)(ld->len - index < sizeof(buf) ? ld->len - index
								       : sizeof(buf)) : 0;
	else
		n = pread(ld->fd, buf, sizeof(buf), (off_t)index);
	if (ld->data && n > 0)
		memcpy(buf, ld->data + index, (size_t)n);
	const char *nl = n > 0 ? memchr(buf, '\n', (size_t)n) : NULL;
	if (!nl)
		return at;
	size_t i = (size_t)(nl - buf) + 1, indent = 0;
	while (i + indent < (size_t)n && buf[i + indent] == ' ')
		indent++;
	return (struct pos){at.line + 1, (uint32_t)indent + 1};
}

bool load_keep(struct loader *ld, struct dr_text *out)
{
	struct pos at = load_pos(ld);
	char *s = arena_strndup(&ld->wf->arena, load_str(ld), load_len(ld));
	if (!s) {
		load_oom(ld);
		return false;
	}
	int style = ld->ev.data.scalar.style;
	if (style == YAML_SINGLE_QUOTED_SCALAR_STYLE ||
	    style == YAML_DOUBLE_QUOTED_SCALAR_STYLE)
		at.col++; /* the first character, not the quote */
	else if (style == YAML_LITERAL_SCALAR_STYLE || style == YAML_FOLDED_SCALAR_STYLE)
		at = block_start(ld, ld->ev.start_mark.index, at);
	*out = (struct dr_text){s, (uint32_t)load_len(ld), at.line, at.col};
	return true;
}

bool read_is_text(const struct loader *ld)
{
	struct scalar sc;
	if (!load_is(ld, YAML_SCALAR_EVENT))
		return false;
	if (ld->ev.data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return true;
	if (!ld->ev.data.scalar.tag) /* the common case, without classifying */
		return !load_plain_null(load_str(ld), load_len(ld));
	load_scalar(ld, &sc);
	return sc.kind != SK_NULL;
}

bool load_refuse_nul(struct loader *ld)
{
	/* Only the escapes of a double-quoted scalar (\0, \x00, \u0000) make
	 * one: libyaml refuses the raw byte. */
	if (ld->ev.data.scalar.style != YAML_DOUBLE_QUOTED_SCALAR_STYLE ||
	    !memchr(load_str(ld), '\0', load_len(ld)))
		return false;
	struct pos at = load_pos(ld);
	at.col++; /* the first character, not the quote */
	load_error(ld, at, "NUL character (\\0) in '%s': a process, a path, a URL "
		   "or a header cannot hold one (only values sent as JSON may)",
		   ld->key ? ld->key : "?");
	return true;
}

/* The current node is a non-null scalar; else a type error. A NUL in it is
 * reported unless nul_ok, but the text is still read: the load goes on to
 * find the other errors. */
static bool want_text(struct loader *ld, bool nul_ok)
{
	if (!read_is_text(ld)) {
		load_type_error(ld, "a string");
		return false;
	}
	if (!nul_ok)
		load_refuse_nul(ld);
	return true;
}

bool read_is_string(struct loader *ld)
{
	return want_text(ld, false) && !memchr(load_str(ld), '\0', load_len(ld));
}

bool read_string(struct loader *ld, struct dr_text *out)
{
	return want_text(ld, false) && load_keep(ld, out);
}

bool read_json_text(struct loader *ld, bool nonempty, struct dr_text *out)
{
	if (!want_text(ld, true))
		return false;
	if (nonempty && load_len(ld) == 0) {
		load_error(ld, load_pos(ld), "'%s' must not be empty", ld->key);
		return false;
	}
	return load_keep(ld, out);
}

const struct dr_text *read_string_p(struct loader *ld)
{
	struct dr_text *t;
	if (!want_text(ld, false))
		return NULL;
	t = arena_alloc(&ld->wf->arena, sizeof(*t));
	if (!t) {
		load_oom(ld);
		return NULL;
	}
	return load_keep(ld, t) ? t : NULL;
}

bool read_nonempty(struct loader *ld, struct dr_text *out)
{
	if (!want_text(ld, false))
		return false;
	if (load_len(ld) == 0) {
		load_error(ld, load_pos(ld), "'%s' must not be empty", ld->key);
		return false;
	}
	return load_keep(ld, out);
}

const struct dr_text *read_expr(struct loader *ld)
{
	struct dr_text t, *p;
	if (!read_nonempty(ld, &t))
		return NULL;
	p = arena_alloc(&ld->wf->arena, sizeof(*p));
	if (!p) {
		load_oom(ld);
		return NULL;
	}
	*p = t;
	return p;
}

static void range_error(struct loader *ld, struct pos at, int64_t lo,
			int64_t hi, int64_t v)
{
	if (v < lo && lo == 1)
		load_error(ld, at, "'%s' must be positive, got %" PRId64, ld->key, v);
	else if (v < lo && lo == 0)
		load_error(ld, at, "'%s' must not be negative, got %" PRId64, ld->key, v);
	else if (v < lo)
		load_error(ld, at, "'%s' must be at least %" PRId64 ", got %" PRId64,
			   ld->key, lo, v);
	else
		load_error(ld, at, "'%s' must be at most %" PRId64 ", got %" PRId64,
			   ld->key, hi, v);
}

bool read_int(struct loader *ld, int64_t lo, int64_t hi, int64_t *out)
{
	struct scalar sc;
	if (!load_is(ld, YAML_SCALAR_EVENT)) {
		load_type_error(ld, "an integer");
		return false;
	}
	load_scalar(ld, &sc);
	const char *digits = load_str(ld) + (*load_str(ld) == '-' || *load_str(ld) == '+');
	if (sc.kind == SK_REAL && *digits && strspn(digits, "0123456789") == strlen(digits)) {
		/* Digits only, yet not an int64: too large for any integer key. */
		load_error(ld, load_pos(ld), "'%s' is out of range", ld->key);
		return false;
	}
	if (sc.kind != SK_INT) {
		load_type_error(ld, "an integer");
		return false;
	}
	if (sc.i < lo || sc.i > hi) {
		range_error(ld, load_pos(ld), lo, hi, sc.i);
		return false;
	}
	*out = sc.i;
	return true;
}

bool read_number(struct loader *ld, double lo, double hi, double *out)
{
	struct scalar sc;
	if (!load_is(ld, YAML_SCALAR_EVENT)) {
		load_type_error(ld, "a number");
		return false;
	}
	load_scalar(ld, &sc);
	if (sc.kind == SK_INT)
		sc.d = (double)sc.i;
	else if (sc.kind != SK_REAL) {
		load_type_error(ld, "a number");
		return false;
	}
	if (!(sc.d >= lo && sc.d <= hi)) {
		load_error(ld, load_pos(ld), "'%s' must be between %g and %g, got %s",
			   ld->key, lo, hi, load_str(ld));
		return false;
	}
	*out = sc.d;
	return true;
}

bool read_bool(struct loader *ld, bool *out)
{
	static const char *const yes[] = {"yes", "Yes", "YES", "on", "On", "ON"};
	static const char *const no[] = {"no", "No", "NO", "off", "Off", "OFF"};
	struct scalar sc;
	if (!load_is(ld, YAML_SCALAR_EVENT)) {
		load_type_error(ld, "a boolean (true or false)");
		return false;
	}
	load_scalar(ld, &sc);
	if (sc.kind == SK_BOOL) {
		*out = sc.b;
		return true;
	}
	/* YAML 1.1 spellings, where a boolean is the only sensible reading. */
	if (ld->ev.data.scalar.style == YAML_PLAIN_SCALAR_STYLE && !ld->ev.data.scalar.tag) {
		for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
			if (!strcmp(load_str(ld), yes[i]) || !strcmp(load_str(ld), no[i])) {
				*out = !strcmp(load_str(ld), yes[i]);
				return true;
			}
		}
	}
	load_type_error(ld, "a boolean (true or false)");
	return false;
}

bool read_duration(struct loader *ld, bool positive, uint64_t max, uint64_t *out)
{
	struct scalar sc;
	uint64_t ms;
	char a[32], b[32];
	if (!load_is(ld, YAML_SCALAR_EVENT)) {
		load_type_error(ld, "a duration (e.g. 30s, 5m, 1m30s)");
		return false;
	}
	load_scalar(ld, &sc);
	if (sc.kind == SK_INT) {
		if (sc.i < 0) {
			load_error(ld, load_pos(ld), "'%s' must not be negative, got %" PRId64,
				   ld->key, sc.i);
			return false;
		}
		ms = (uint64_t)sc.i;
	} else if (sc.kind == SK_STRING) {
		const char *why;
		if (duration_parse(load_str(ld), load_len(ld), &ms, &why) < 0) {
			load_error(ld, load_pos(ld), "invalid duration '%s' for '%s': %s",
				   load_str(ld), ld->key, why);
			return false;
		}
	} else {
		load_type_error(ld, "a duration (e.g. 30s, 5m, 1m30s)");
		return false;
	}
	if (positive && ms == 0) {
		load_error(ld, load_pos(ld), "'%s' must be positive, got %s", ld->key,
			   load_str(ld));
		return false;
	}
	if (ms > max) {
		load_error(ld, load_pos(ld), "'%s' is %s, more than the limit of %s",
			   ld->key, duration_format(ms, a, sizeof(a)),
			   duration_format(max, b, sizeof(b)));
		return false;
	}
	*out = ms;
	return true;
}

int read_enum(struct loader *ld, const char *const *names, unsigned n)
{
	char list[256];
	size_t len = 0;
	if (!want_text(ld, false))
		return -1;
	for (unsigned i = 0; i < n; i++)
		if (!strcmp(load_str(ld), names[i]))
			return (int)i;
	struct suggest s;
	suggest_init(&s, load_str(ld), load_len(ld));
	list[0] = '\0';
	for (unsigned i = 0; i < n; i++) {
		suggest_offer(&s, names[i]);
		int w = snprintf(list + len, sizeof(list) - len, "%s%s",
				 i ? (i + 1 == n ? " or " : ", ") : "", names[i]);
		if (w > 0 && (size_t)w < sizeof(list) - len)
			len += (size_t)w;
	}
	if (s.best)
		load_error(ld, load_pos(ld), "invalid '%s' value '%s' (expected %s); did you mean '%s'?",
			   ld->key, load_str(ld), list, s.best);
	else
		load_error(ld, load_pos(ld), "invalid '%s' value '%s' (expected %s)",
			   ld->key, load_str(ld), list);
	return -1;
}

/* Reads an integer or a list of integers in [lo, hi] onto the scratch
 * stack as int64_t; returns the count, or -1 after an error. */
long read_int_list(struct loader *ld, int64_t lo, int64_t hi, size_t max)
{
	long n = 0;
	int64_t v;
	bool one = load_is(ld, YAML_SCALAR_EVENT);
	if (!one && !load_is(ld, YAML_SEQUENCE_START_EVENT)) {
		load_type_error(ld, "an integer or a list of integers");
		return -1;
	}
	while (one || (load_next(ld) && !load_is(ld, YAML_SEQUENCE_END_EVENT))) {
		if ((size_t)n == max) {
			load_error(ld, load_pos(ld), "'%s' has more than %zu entries",
				   ld->key, max);
			load_skip(ld);
			n++;
		} else if (read_int(ld, lo, hi, &v)) {
			if (load_push(ld, &v, sizeof(v)) == SIZE_MAX)
				return -1;
			n++;
		}
		if (one)
			break;
	}
	return ld->stop ? -1 : n;
}

/* ---- keyed maps ----------------------------------------------------------------- */

void keytab_offer(const struct keytab *tab, struct suggest *s)
{
	for (unsigned i = 0; i < tab->n; i++)
		suggest_offer(s, tab->keys[i].name);
}

static int find_key(const struct keytab *tab, const char *s, size_t n)
{
	for (unsigned i = 0; i < tab->n; i++) {
		const struct keydef *k = &tab->keys[i];
		if (k->len == n && k->name[0] == s[0] && !memcmp(k->name, s, n))
			return (int)i;
	}
	return -1;
}

static void unknown_key(struct loader *ld, const struct keytab *tab,
			struct map_seen *seen)
{
	struct suggest s;
	suggest_init(&s, load_str(ld), load_len(ld));
	keytab_offer(tab, &s);
	for (unsigned i = 0; i < tab->n; i++)
		if (s.best == tab->keys[i].name)
			seen->hinted |= 1ull << i;
	if (s.best)
		load_error(ld, load_pos(ld), "unknown key '%s' in %s; did you mean '%s'?",
			   load_str(ld), tab->what, s.best);
	else
		load_error(ld, load_pos(ld), "unknown key '%s' in %s", load_str(ld),
			   tab->what);
}

/* Reads one key of a keyed map; returns its index or -1 (value skipped). */
static int map_key(struct loader *ld, const struct keytab *tab,
		   struct map_seen *seen)
{
	if (!load_is(ld, YAML_SCALAR_EVENT)) {
		if (!load_is(ld, YAML_ALIAS_EVENT))
			load_error(ld, load_pos(ld), "keys must be strings, got %s",
				   load_type_name(ld));
		load_skip(ld);
		return -1;
	}
	int k = find_key(tab, load_str(ld), load_len(ld));
	if (k < 0 && memchr(load_str(ld), '\0', load_len(ld))) {
		load_error(ld, load_pos(ld), "NUL character (\\0) in a key of %s", tab->what);
		return -1;
	}
	if (k < 0) {
		unknown_key(ld, tab, seen);
		return -1;
	}
	struct pos at = load_pos(ld);
	if (seen->mask & (1ull << k)) {
		load_error(ld, at, "duplicate key '%s' (first at line %u)",
			   tab->keys[k].name, seen->at[k].line);
		return -1;
	}
	seen->mask |= 1ull << k;
	seen->at[k] = at;
	return k;
}

void read_map(struct loader *ld, const struct keytab *tab, void *obj,
	      struct map_seen *seen)
{
	seen->mask = seen->hinted = 0;
	while (load_next(ld) && !load_is(ld, YAML_MAPPING_END_EVENT)) {
		int k = map_key(ld, tab, seen);
		if (!load_next(ld))
			return;
		if (k < 0) {
			load_skip(ld);
			continue;
		}
		const struct keydef *d = &tab->keys[k];
		ld->key = d->name;
		ld->key_at = seen->at[k];
		void *target = obj;
		if (d->opt && tab->opts && !(target = tab->opts(ld, obj)))
			return;
		if (d->kind && tab->spec && !(target = tab->spec(ld, obj, d->kind - 1u)))
			return;
		d->fn(ld, target);
	}
}

bool read_submap(struct loader *ld, const struct keytab *tab, void *obj, struct map_seen *seen)
{
	if (!load_is(ld, YAML_MAPPING_START_EVENT)) {
		load_type_error(ld, "a map");
		return false;
	}
	const char *key = ld->key;
	read_map(ld, tab, obj, seen);
	ld->key = key;
	return !ld->stop;
}

/* ---- URLs ---------------------------------------------------------------------- */

bool read_url(struct loader *ld, struct dr_text *out)
{
	if (!read_nonempty(ld, out))
		return false;
	/* http(s) (the executors' rule), unless a template builds it: then
	 * they check what it renders */
	if (strstr(out->s, "{{") || url_is_http(out->s))
		return true;
	load_error(ld, (struct pos){out->line, out->col},
		   "'%s' " URL_HTTP_RULE ", got '%.80s'", ld->key, out->s);
	return false;
}
