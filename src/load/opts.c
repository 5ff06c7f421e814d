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
};
static const struct keytab defaults_tab = {"defaults", defaults_keys, 6, NULL, NULL};

void defaults_read(struct loader *ld)
{
	struct map_seen seen;
	if (!load_is(ld, YAML_MAPPING_START_EVENT)) {
		load_type_error(ld, "a map");
		return;
	}
	read_map(ld, &defaults_tab, &ld->defaults, &seen);
}

