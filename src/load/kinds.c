/* kinds.c: what a task runs: command, script, api, webhook and ai keys.
 *
 * Invariant: each kind's struct is allocated in the arena on its first key
 * and holds only what the file says; defaults that depend on the runtime
 * (method GET, any 2xx, /bin/sh -e, base URL, OPENAI_API_KEY) stay NULL/0.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "load/loader.h"

/* ---- api and webhook ----------------------------------------------------------------- */

/* A URL must be http(s), unless a template builds it. */
static void check_url(struct loader *ld, const struct dr_text *u)
{
	if (strstr(u->s, "{{") || !strncmp(u->s, "http://", 7) ||
	    !strncmp(u->s, "https://", 8))
		return;
	load_error(ld, (struct pos){u->line, u->col},
		   "'%s' must start with http:// or https://, got '%.80s'", ld->key, u->s);
}

static void a_url(struct loader *ld, void *obj)
{
	struct dr_api *a = obj;
	if (read_nonempty(ld, &a->url))
		check_url(ld, &a->url);
}

static void a_method(struct loader *ld, void *obj)
{
	static const char *const names[] = {"GET", "POST", "PUT", "PATCH", "DELETE",
					    "HEAD", "OPTIONS"};
	struct dr_api *a = obj;
	if (!load_is(ld, YAML_SCALAR_EVENT)) {
		load_type_error(ld, "a string");
		return;
	}
	if (read_enum(ld, names, 7) >= 0)
		load_keep(ld, &a->method);
}

static void a_headers(struct loader *ld, void *obj)
{
	read_kvlist(ld, &((struct dr_api *)obj)->headers, NAME_HEADER);
}

static void a_body(struct loader *ld, void *obj)
{
	((struct dr_api *)obj)->body = read_value(ld, false);
}

static void a_expect(struct loader *ld, void *obj)
{
	struct dr_api *a = obj;
	size_t mark = ld->top;
	long n = read_int_list(ld, 100, 599, 1000);
	if (n > 0 && n <= 1000) {
		const int64_t *v = (const void *)(ld->stk + mark);
		uint16_t *e = arena_alloc(&ld->wf->arena, (size_t)n * sizeof(*e));
		if (!e)
			load_oom(ld);
		for (long i = 0; e && i < n; i++)
			e[i] = (uint16_t)v[i];
		a->expect = e;
		a->n_expect = (uint32_t)n;
	} else if (n == 0) {
		load_error(ld, ld->key_at, "'expectStatus' must not be empty");
	}
	ld->top = mark;
}

static void a_connect_timeout(struct loader *ld, void *obj)
{
	read_duration(ld, true, DR_MAX_TIMEOUT_MS,
		      &((struct dr_api *)obj)->connect_timeout_ms);
}

static void a_max_response(struct loader *ld, void *obj)
{
	int64_t v;
	if (read_int(ld, 1, (int64_t)1 << 30, &v))
		((struct dr_api *)obj)->max_response_bytes = (uint64_t)v;
}

static void a_insecure(struct loader *ld, void *obj)
{
	struct dr_api *a = obj;
	struct pos at = load_pos(ld);
	if (read_bool(ld, &a->insecure) && a->insecure)
		load_warn(ld, at, "TLS certificate verification is disabled for this request");
}

static const struct keydef api_keys[] = {
	KEY("url", a_url), KEY("method", a_method), KEY("headers", a_headers),
	KEY("body", a_body), KEY("expectStatus", a_expect),
	KEY("connectTimeout", a_connect_timeout),
	KEY("maxResponseBytes", a_max_response), KEY("insecure", a_insecure),
};
static const struct keytab api_tab = {"api", api_keys, 8, NULL};

static void w_url(struct loader *ld, void *obj)
{
	struct dr_webhook *w = obj;
	if (read_nonempty(ld, &w->url))
		check_url(ld, &w->url);
}

static void w_event(struct loader *ld, void *obj)
{
	read_nonempty(ld, &((struct dr_webhook *)obj)->event);
}

static void w_payload(struct loader *ld, void *obj)
{
	((struct dr_webhook *)obj)->payload = read_value(ld, false);
}

static void w_secret(struct loader *ld, void *obj)
{
	read_nonempty(ld, &((struct dr_webhook *)obj)->secret);
}

static void w_headers(struct loader *ld, void *obj)
{
	read_kvlist(ld, &((struct dr_webhook *)obj)->headers, NAME_HEADER);
}

static const struct keydef webhook_keys[] = {
	KEY("url", w_url), KEY("event", w_event), KEY("payload", w_payload),
	KEY("secret", w_secret), KEY("headers", w_headers),
};
static const struct keytab webhook_tab = {"webhook", webhook_keys, 5, NULL};

/* Reads an api or webhook mapping into a new arena object of size n. */
static void *read_endpoint(struct loader *ld, const struct keytab *tab, size_t n)
{
	struct map_seen seen;
	struct pos at = load_pos(ld);
	if (!load_is(ld, YAML_MAPPING_START_EVENT)) {
		load_type_error(ld, "a map");
		return NULL;
	}
	void *p = arena_calloc(&ld->wf->arena, n);
	if (!p) {
		load_oom(ld);
		return NULL;
	}
	const char *key = ld->key;
	read_map(ld, tab, p, &seen);
	ld->key = key;
	if (!seen_or_hinted(&seen, 0) && !ld->stop) /* url is key 0 of both */
		load_error(ld, at, "missing required key 'url' in %s", tab->what);
	return p;
}

void kind_api(struct loader *ld, void *obj)
{
	((struct task_tmp *)obj)->api = read_endpoint(ld, &api_tab, sizeof(struct dr_api));
}

void kind_webhook(struct loader *ld, void *obj)
{
	((struct task_tmp *)obj)->webhook =
		read_endpoint(ld, &webhook_tab, sizeof(struct dr_webhook));
}

/* ---- command and script ---------------------------------------------------------------- */

void kind_command(struct loader *ld, void *obj)
{
	struct task_tmp *t = obj;
	struct dr_command *c = arena_alloc(&ld->wf->arena, sizeof(*c));
	if (!c) {
		load_oom(ld);
		return;
	}
	*c = (struct dr_command){{NULL, 0, 0, 0}, NULL, 0};
	t->command = c;
	if (load_is(ld, YAML_SCALAR_EVENT)) {
		read_nonempty(ld, &c->str);
		return;
	}
	if (!load_is(ld, YAML_SEQUENCE_START_EVENT)) {
		load_type_error(ld, "a string or a list of strings");
		return;
	}
	struct pos at = load_pos(ld);
	size_t mark = ld->top;
	uint32_t n = 0;
	while (load_next(ld) && !load_is(ld, YAML_SEQUENCE_END_EVENT)) {
		struct dr_text a;
		if (read_string(ld, &a) && load_push(ld, &a, sizeof(a)) != SIZE_MAX)
			n++;
	}
	if (ld->stop)
		return;
	if (!n)
		load_error(ld, at, "'command' must not be an empty list");
	c->argv = n ? arena_alloc(&ld->wf->arena, n * sizeof(*c->argv)) : NULL;
	if (n && !c->argv) {
		load_oom(ld);
		return;
	}
	if (n)
		memcpy(c->argv, ld->stk + mark, n * sizeof(*c->argv));
	c->argc = n;
	ld->top = mark;
}

static struct dr_script *script_of(struct loader *ld, struct task_tmp *t)
{
	if (!t->script && !(t->script = arena_calloc(&ld->wf->arena, sizeof(*t->script))))
		load_oom(ld);
	return t->script;
}

void kind_script(struct loader *ld, void *obj)
{
	struct dr_script *s = script_of(ld, obj);
	if (s)
		read_nonempty(ld, &s->body);
}

void kind_interpreter(struct loader *ld, void *obj)
{
	struct dr_script *s = script_of(ld, obj);
	if (s)
		read_nonempty(ld, &s->interpreter);
}


/* ---- ai -------------------------------------------------------------------------------- */

static struct dr_ai *ai_of(struct loader *ld, struct task_tmp *t)
{
	if (!t->ai) {
		t->ai = arena_calloc(&ld->wf->arena, sizeof(*t->ai));
		if (!t->ai)
			load_oom(ld);
		else
			t->ai->max_context_bytes = 64 * 1024;
	}
	return t->ai;
}

void kind_ai_model(struct loader *ld, void *obj)
{
	struct dr_ai *a = ai_of(ld, obj);
	if (a)
		read_json_text(ld, true, &a->model); /* sent as JSON: a NUL is fine */
}

void kind_ai_system(struct loader *ld, void *obj)
{
	struct dr_ai *a = ai_of(ld, obj);
	if (a)
		read_json_text(ld, false, &a->system); /* sent as JSON: a NUL is fine */
}

void kind_ai_prompt(struct loader *ld, void *obj)
{
	struct dr_ai *a = ai_of(ld, obj);
	if (a)
		read_json_text(ld, true, &a->prompt); /* sent as JSON: a NUL is fine */
}

void kind_ai_prompt_file(struct loader *ld, void *obj)
{
	struct dr_ai *a = ai_of(ld, obj);
	if (a)
		read_nonempty(ld, &a->prompt_file);
}

void kind_ai_context(struct loader *ld, void *obj)
{
	struct dr_ai *a = ai_of(ld, obj);
	if (a)
		a->context = read_value(ld, true);
}

void kind_ai_temperature(struct loader *ld, void *obj)
{
	struct dr_ai *a = ai_of(ld, obj);
	if (a && read_number(ld, 0, 2, &a->temperature))
		a->has_temperature = true;
}

void kind_ai_max_tokens(struct loader *ld, void *obj)
{
	struct dr_ai *a = ai_of(ld, obj);
	int64_t v;
	if (a && read_int(ld, 1, 10000000, &v))
		a->max_tokens = (uint32_t)v;
}

void kind_ai_response_format(struct loader *ld, void *obj)
{
	static const char *const names[] = {"text", "json"};
	struct dr_ai *a = ai_of(ld, obj);
	int v = a ? read_enum(ld, names, 2) : -1;
	if (v >= 0)
		a->response_format = (uint8_t)v;
}

void kind_ai_stream(struct loader *ld, void *obj)
{
	struct dr_ai *a = ai_of(ld, obj);
	if (a)
		read_bool(ld, &a->stream);
}

void kind_ai_base_url(struct loader *ld, void *obj)
{
	struct dr_ai *a = ai_of(ld, obj);
	if (a && read_nonempty(ld, &a->base_url))
		check_url(ld, &a->base_url);
}

void kind_ai_api_key_env(struct loader *ld, void *obj)
{
	struct dr_ai *a = ai_of(ld, obj);
	if (a && read_nonempty(ld, &a->api_key_env) &&
	    strspn(a->api_key_env.s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
				     "0123456789_") != a->api_key_env.len)
		load_error(ld, (struct pos){a->api_key_env.line, a->api_key_env.col},
			   "invalid environment variable name '%.80s' in 'apiKeyEnv'",
			   a->api_key_env.s);
}

void kind_ai_max_context(struct loader *ld, void *obj)
{
	struct dr_ai *a = ai_of(ld, obj);
	int64_t v;
	if (a && read_int(ld, 1, (int64_t)64 << 20, &v))
		a->max_context_bytes = (uint64_t)v;
}

/* ---- checks ------------------------------------------------------------------------- */

void kind_check_script(struct loader *ld, struct dr_script *s)
{
	if (!s)
		return;
	s->posix_shell = !s->interpreter.s || !ld->opts || !ld->opts->posix_shell ||
			 ld->opts->posix_shell(s->interpreter.s, s->interpreter.len);
	if (!s->body.s || s->posix_shell || !strstr(s->body.s, "{{"))
		return;
	load_error(ld, (struct pos){s->body.line, s->body.col},
		   "templates are not allowed in a script run by '%.40s' (only POSIX shell "
		   "scripts are escaped safely); pass values through 'env'",
		   s->interpreter.s);
}

