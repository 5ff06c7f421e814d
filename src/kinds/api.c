/* api.c: the `api` kind: an HTTP request (url, method, headers, a JSON
 * body), successful on the expected statuses (default any 2xx). Its
 * executor, shared with `webhook`, is exec/http.c on exec/http_client.c;
 * its results carry DAGRUN_EXT_HTTP, whose encoder is here.
 *
 * Invariant: the spec (struct dr_api, exec/http.h) holds only what the
 * file says; what depends on the run (method GET, any 2xx) stays NULL/0.
 */
#include <errno.h>
#include <string.h>

#include "exec/http.h"
#include "kinds/kind.h"

static void a_url(struct loader *ld, void *obj)
{
	read_url(ld, &((struct dr_api *)obj)->url);
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
static const struct keytab api_tab = {"api", api_keys, 8, NULL, NULL};

/* `api:` a mapping of the keys above; url (key 0) is required. */
static void k_api(struct loader *ld, void *obj)
{
	struct map_seen seen;
	struct pos at = load_pos(ld);
	if (read_submap(ld, &api_tab, obj, &seen) && !seen_or_hinted(&seen, 0))
		load_error(ld, at, "missing required key 'url' in api");
}

static void mix_u64(struct dr_mix *m, uint64_t v)
{
	m->bytes(m, &v, sizeof(v));
}

/* Fingerprint: headers, body, expected statuses, limits, TLS. */
static void mix(const void *spec, struct dr_mix *m)
{
	const struct dr_api *a = spec;
	mix_u64(m, a->headers.n);
	for (uint32_t i = 0; i < a->headers.n; i++) {
		m->text(m, &a->headers.v[i].key);
		m->text(m, &a->headers.v[i].value);
	}
	m->value(m, a->body);
	mix_u64(m, a->n_expect);
	for (uint32_t i = 0; i < a->n_expect; i++)
		mix_u64(m, a->expect[i]);
	mix_u64(m, a->connect_timeout_ms);
	mix_u64(m, a->max_response_bytes);
	mix_u64(m, a->insecure);
}

static int each_text(const struct dagrun_workflow *wf, uint32_t t, dr_text_fn fn, void *ud)
{
	const struct dr_api *a = wf->tasks[t].spec;
	int r;
	if ((r = dr_each_text(t, &a->url, DR_USE_URL, fn, ud)) ||
	    (r = dr_each_text(t, &a->method, DR_USE_HEADER, fn, ud)) ||
	    (r = dr_each_kv(t, &a->headers, DR_USE_HEADER, fn, ud)))
		return r;
	return dr_each_value(t, a->body, fn, ud);
}

/* ---- the executor and the extension, shared with webhook and ai ------------ */

static int make_http(struct kind_env *env, struct executor **out)
{
	struct executor *h = http_executor_new(env->loop, NULL);
	if (!h)
		return -ENOMEM;
	http_executor_set_summary(h, env->summary, env->summary_ud);
	*out = h;
	return 0;
}

const struct exec_def kind_exec_http = {"http", make_http};

static int set_uint(json_t *o, const char *k, uint64_t v)
{
	return json_object_set_new(o, k, json_integer((json_int_t)v)) < 0 ? -ENOMEM : 0;
}

/* The JSON log's fields: httpStatus (when there was a response), timings
 * (when a transfer ran). */
static int http_json(const struct dagrun_ext *x, json_t *o)
{
	const struct dagrun_ext_http *h = (const struct dagrun_ext_http *)x;
	if (h->status && json_object_set_new(o, "httpStatus", json_integer(h->status)) < 0)
		return -ENOMEM;
	if (!h->total_us)
		return 0;
	json_t *t = json_object();
	if (!t || set_uint(t, "dnsUs", h->dns_us) || set_uint(t, "connectUs", h->connect_us) ||
	    set_uint(t, "tlsUs", h->tls_us) || set_uint(t, "firstByteUs", h->first_byte_us) ||
	    set_uint(t, "totalUs", h->total_us)) {
		json_decref(t);
		return -ENOMEM;
	}
	return json_object_set_new(o, "timings", t) < 0 ? -ENOMEM : 0;
}

const struct ext_def kind_ext_http = {DAGRUN_EXT_HTTP, http_json};

/* Canonical inputs: the request as sent (method, URL, headers, body). */
static int inputs(struct exec_attempt *a, json_t *o, char **err)
{
	const struct dr_api *p = a->wf->tasks[a->task].spec;
	int r;
	if (p->method.s)
		r = kind_inputs_text(a, o, "method", &p->method, EXEC_RENDER_HEADER, err);
	else
		r = json_object_set_new(o, "method", json_string("GET")) < 0 ? -ENOMEM : 0;
	if (r == 0)
		r = kind_inputs_text(a, o, "url", &p->url, EXEC_RENDER_URL, err);
	if (r == 0)
		r = kind_inputs_kvs(a, o, "headers", &p->headers, EXEC_RENDER_HEADER, err);
	if (r == 0)
		r = kind_inputs_value(a, o, "body", p->body, err);
	return r;
}

static const struct keydef keys[] = {KEY("api", k_api)};

const struct kind kind_api = {
	.load = {
		.model = {"api", HTTP_VARIANT_API, each_text, NULL, NULL, mix},
		.keys = keys, .n_keys = 1, .n_select = 1,
		.spec_size = sizeof(struct dr_api),
	},
	.exec = &kind_exec_http,
	.ext = {&kind_ext_http},
	.inputs = inputs,
};
