/* opts.c: the options every task may set (timeout, retry, env, ...) and
 * the `defaults` mapping, which uses the same readers.
 *
 * Invariant: a reader sets its field and its bit in opts_tmp.set only when
 * the value is valid, so resolve can fill every clear bit from defaults.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "load/loader.h"

/* ---- options (shared by tasks and defaults) ---------------------------------------- */

void opts_description(struct loader *ld, void *obj)
{
	struct opts_tmp *o = obj;
	if ((o->o.description = read_string_p(ld)))
		o->set |= O_DESCRIPTION;
}

void opts_when(struct loader *ld, void *obj)
{
	struct opts_tmp *o = obj;
	if ((o->o.when = read_expr(ld)))
		o->set |= O_WHEN;
}

void opts_workdir(struct loader *ld, void *obj)
{
	struct opts_tmp *o = obj;
	if ((o->o.workdir = read_expr(ld)))
		o->set |= O_WORKDIR;
}

void opts_env(struct loader *ld, void *obj)
{
	struct opts_tmp *o = obj;
	read_kvlist(ld, &o->o.env, NAME_ENV);
	o->set |= O_ENV;
}

void opts_resources(struct loader *ld, void *obj)
{
	struct opts_tmp *o = obj;
	read_res(ld, &o->o.res, &o->o.n_res);
	o->set |= O_RES;
}

void opts_timeout(struct loader *ld, void *obj)
{
	struct opts_tmp *o = obj;
	if (read_duration(ld, true, DR_MAX_TIMEOUT_MS, &o->o.timeout_ms))
		o->set |= O_TIMEOUT;
}

void opts_kill_grace(struct loader *ld, void *obj)
{
	struct opts_tmp *o = obj;
	if (read_duration(ld, false, DR_MAX_DELAY_MS, &o->o.kill_grace_ms))
		o->set |= O_KILL_GRACE;
}

static void r_max_attempts(struct loader *ld, void *obj)
{
	struct opts_tmp *o = obj;
	int64_t v;
	if (read_int(ld, 1, DR_MAX_ATTEMPTS, &v)) {
		o->o.retry.max_attempts = (uint32_t)v;
		o->set |= O_R_ATTEMPTS;
	}
}

static void r_backoff(struct loader *ld, void *obj)
{
	struct opts_tmp *o = obj;
	if (read_number(ld, 1, 1000, &o->o.retry.backoff_factor))
		o->set |= O_R_BACKOFF;
}

static void r_initial(struct loader *ld, void *obj)
{
	struct opts_tmp *o = obj;
	if (read_duration(ld, false, DR_MAX_DELAY_MS, &o->o.retry.initial_delay_ms))
		o->set |= O_R_INITIAL;
}

static void r_max_delay(struct loader *ld, void *obj)
{
	struct opts_tmp *o = obj;
	if (read_duration(ld, false, DR_MAX_DELAY_MS, &o->o.retry.max_delay_ms))
		o->set |= O_R_MAX_DELAY;
}

static void r_jitter(struct loader *ld, void *obj)
{
	/* In enum dr_jitter order. */
	static const char *const names[] = {"full", "none", "equal", "decorrelated"};
	struct opts_tmp *o = obj;
	int v = read_enum(ld, names, 4);
	if (v >= 0) {
		o->o.retry.jitter = (uint8_t)v;
		o->set |= O_R_JITTER;
	}
}

/* One class name of retryOn as a bit, or 0 after an error. */
static uint8_t retry_class(struct loader *ld)
{
	static const char *const names[] = {"transient", "permanent", "resource"};
	static const uint8_t classes[] = {DR_CLASS_TRANSIENT, DR_CLASS_PERMANENT,
					  DR_CLASS_RESOURCE};
	if (load_is(ld, YAML_SCALAR_EVENT) && !strcmp(load_str(ld), "dependency")) {
		load_error(ld, load_pos(ld), "'dependency' failures are never retried "
			   "(the task does not run)");
		return 0;
	}
	int v = read_enum(ld, names, 3);
	return v < 0 ? 0 : (uint8_t)(1u << classes[v]);
}

static void r_retry_on(struct loader *ld, void *obj)
{
	struct opts_tmp *o = obj;
	uint8_t bits = 0;
	if (load_is(ld, YAML_SCALAR_EVENT)) {
		bits = retry_class(ld);
	} else if (load_is(ld, YAML_SEQUENCE_START_EVENT)) {
		while (load_next(ld) && !load_is(ld, YAML_SEQUENCE_END_EVENT))
			bits |= retry_class(ld);
	} else {
		load_type_error(ld, "a list of error classes");
		return;
	}
	o->o.retry.retry_on = bits;
	o->set |= O_R_RETRY_ON;
}

static void r_codes(struct loader *ld, void *obj)
{
	struct opts_tmp *o = obj;
	size_t mark = ld->top;
	long n = read_int_list(ld, 0, 255, 255);
	if (n >= 0 && n <= 255) {
		const int64_t *v = (const void *)(ld->stk + mark);
		uint8_t *codes = n ? arena_alloc(&ld->wf->arena, (size_t)n) : NULL;
		if (n && !codes)
			load_oom(ld);
		for (long i = 0; codes && i < n; i++)
			codes[i] = (uint8_t)v[i];
		o->o.retry.permanent_codes = codes;
		o->o.retry.n_permanent = (uint8_t)n;
		o->set |= O_R_CODES;
	}
	ld->top = mark;
}

static const struct keydef retry_keys[] = {
	KEY("maxAttempts", r_max_attempts), KEY("backoffFactor", r_backoff),
	KEY("initialDelay", r_initial), KEY("maxDelay", r_max_delay),
	KEY("jitter", r_jitter), KEY("retryOn", r_retry_on),
	KEY("permanentExitCodes", r_codes),
};
static const struct keytab retry_tab = {"retry", retry_keys, 7, NULL, NULL};

void opts_retry(struct loader *ld, void *obj)
{
	struct opts_tmp *o = obj;
	struct map_seen seen;
	if (!load_is(ld, YAML_MAPPING_START_EVENT)) {
		load_type_error(ld, "a map");
		return;
	}
	uint32_t before = o->set;
	read_map(ld, &retry_tab, o, &seen);
	uint32_t both = O_R_INITIAL | O_R_MAX_DELAY;
	if ((o->set & ~before & both) == both &&
	    o->o.retry.initial_delay_ms > o->o.retry.max_delay_ms)
		load_error(ld, seen.at[2], "'initialDelay' is greater than 'maxDelay'");
}

/* ---- cache ------------------------------------------------------------------------- */

/* A list of strings (one string alone is a list of one) into the arena, at
 * most DR_CACHE_MAX_LIST; env: each an environment variable name. Returns
 * the count, or -1 after an error. */
static long cache_list(struct loader *ld, const void ***out, bool texts, bool env)
{
	bool one = load_is(ld, YAML_SCALAR_EVENT);
	size_t mark = ld->top;
	long n = 0;
	if (!one && !load_is(ld, YAML_SEQUENCE_START_EVENT)) {
		load_type_error(ld, "a string or a list of strings");
		return -1;
	}
	while (one || (load_next(ld) && !load_is(ld, YAML_SEQUENCE_END_EVENT))) {
		struct pos at = load_pos(ld);
		struct dr_text t;
		if (n == DR_CACHE_MAX_LIST) {
			load_error(ld, at, "'%s' has more than %d entries", ld->key,
				   DR_CACHE_MAX_LIST);
			load_skip(ld);
			n++;
		} else if (read_nonempty(ld, &t)) {
			const void *p = NULL;
			bool bad = false;
			for (uint32_t i = 0; env && i < t.len; i++)
				bad |= !(t.s[i] == '_' || (t.s[i] >= 'A' && t.s[i] <= 'Z') ||
					 (t.s[i] >= 'a' && t.s[i] <= 'z') ||
					 (i && t.s[i] >= '0' && t.s[i] <= '9'));
			if (bad)
				load_error(ld, at, "'%.*s' is not an environment variable name",
					   (int)(t.len > 80 ? 80 : t.len), t.s);
			else if (texts) {
				struct dr_text *c = arena_alloc(&ld->wf->arena, sizeof(*c));
				if (c)
					*c = t;
				p = c;
			} else {
				p = arena_strndup(&ld->wf->arena, t.s, t.len);
			}
			if (!bad && !p)
				load_oom(ld);
			if (p && load_push(ld, &p, sizeof(p)) == SIZE_MAX)
				return -1;
			n += p != NULL;
		}
		if (one)
			break;
	}
	if (ld->stop || n > DR_CACHE_MAX_LIST) {
		ld->top = mark;
		return -1;
	}
	const void **v = n ? arena_alloc(&ld->wf->arena, (size_t)n * sizeof(*v)) : NULL;
	if (n && !v) {
		load_oom(ld);
		ld->top = mark;
		return -1;
	}
	if (n)
		memcpy(v, ld->stk + mark, (size_t)n * sizeof(*v));
	ld->top = mark;
	*out = v;
	return n;
}

static void c_key(struct loader *ld, void *obj)
{
	struct dr_cache *c = obj;
	const void **v = NULL;
	long n = cache_list(ld, &v, true, false);
	if (n >= 0) {
		c->key = (const struct dr_text *const *)v;
		c->n_key = (uint32_t)n;
	}
}

static void c_inputs(struct loader *ld, void *obj)
{
	struct dr_cache *c = obj;
	const void **v = NULL;
	long n = cache_list(ld, &v, false, false);
	if (n >= 0) {
		c->inputs = (const char *const *)v;
		c->n_inputs = (uint32_t)n;
	}
}

static void c_env(struct loader *ld, void *obj)
{
	struct dr_cache *c = obj;
	const void **v = NULL;
	long n = cache_list(ld, &v, false, true);
	if (n >= 0) {
		c->env = (const char *const *)v;
		c->n_env = (uint32_t)n;
	}
}

static void c_ttl(struct loader *ld, void *obj)
{
	struct dr_cache *c = obj;
	read_duration(ld, true, DR_CACHE_MAX_TTL_MS, &c->ttl_ms);
}

static const struct keydef cache_keys[] = {
	KEY("key", c_key), KEY("inputs", c_inputs), KEY("env", c_env), KEY("ttl", c_ttl),
};
static const struct keytab cache_tab = {"cache", cache_keys, 4, NULL, NULL};

/* `cache: true | false | {key, inputs, env, ttl}` (README "Cache"). */
void opts_cache(struct loader *ld, void *obj)
{
	struct opts_tmp *o = obj;
	struct pos at = load_pos(ld);
	struct dr_cache *c = arena_calloc(&ld->wf->arena, sizeof(*c));
	if (!c) {
		load_oom(ld);
		return;
	}
	c->line = at.line;
	c->col = at.col;
	if (load_is(ld, YAML_MAPPING_START_EVENT)) {
		struct map_seen seen;
		c->on = true;
		read_map(ld, &cache_tab, c, &seen);
	} else if (!load_is(ld, YAML_SCALAR_EVENT)) {
		load_type_error(ld, "true, false or a map (key, inputs, env, ttl)");
		return;
	} else if (!read_bool(ld, &c->on)) {
		return;
	}
	o->o.cache = c;
	o->set |= O_CACHE;
}

/* ---- defaults ------------------------------------------------------------------------ */

static void d_priority(struct loader *ld, void *obj)
{
	int64_t v;
	(void)obj;
	if (read_int(ld, INT32_MIN + 1, INT32_MAX, &v))
		ld->default_priority = (int32_t)v;
}

static const struct keydef defaults_keys[] = {
	KEY("timeout", opts_timeout), KEY("killGrace", opts_kill_grace),
	KEY("retry", opts_retry), KEY("workdir", opts_workdir),
	KEY("priority", d_priority), KEY("resources", opts_resources),
	KEY("cache", opts_cache),
};
static const struct keytab defaults_tab = {"defaults", defaults_keys, 7, NULL, NULL};

void defaults_read(struct loader *ld)
{
	struct map_seen seen;
	if (!load_is(ld, YAML_MAPPING_START_EVENT)) {
		load_type_error(ld, "a map");
		return;
	}
	read_map(ld, &defaults_tab, &ld->defaults, &seen);
}

