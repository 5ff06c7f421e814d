/* ai.c: the `ai` kind: a chat completion request (OpenAI's API or one that
 * speaks it), selected by `prompt` or `promptFile` (or `type: ai`, or any
 * of its other keys alone). Its executor is exec/ai.c, which sends through
 * the HTTP executor's client; its results carry DAGRUN_EXT_HTTP then
 * DAGRUN_EXT_AI, whose encoder is here. The API key's variable (apiKeyEnv,
 * default OPENAI_API_KEY) is a secret of the run.
 *
 * Invariant: the spec (struct dr_ai, exec/ai.h) holds only what the file
 * says, but for maxContextBytes (64 KiB unless set); the base URL and the
 * key's variable are the executor's to default.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exec/ai.h"
#include "kinds/kind.h"

enum {
	K_PROMPT, K_PROMPT_FILE, K_MODEL, K_SYSTEM, K_CONTEXT, K_TEMPERATURE,
	K_MAX_TOKENS, K_RESPONSE_FORMAT, K_STREAM, K_BASE_URL, K_API_KEY_ENV,
	K_MAX_CONTEXT_BYTES, K_COUNT
};

static void init(void *spec)
{
	((struct dr_ai *)spec)->max_context_bytes = AI_DEFAULT_MAX_CONTEXT;
}

static void k_model(struct loader *ld, void *obj)
{
	read_json_text(ld, true, &((struct dr_ai *)obj)->model); /* sent as JSON: a NUL is fine */
}

static void k_system(struct loader *ld, void *obj)
{
	read_json_text(ld, false, &((struct dr_ai *)obj)->system);
}

static void k_prompt(struct loader *ld, void *obj)
{
	read_json_text(ld, true, &((struct dr_ai *)obj)->prompt);
}

static void k_prompt_file(struct loader *ld, void *obj)
{
	read_nonempty(ld, &((struct dr_ai *)obj)->prompt_file);
}

static void k_context(struct loader *ld, void *obj)
{
	((struct dr_ai *)obj)->context = read_value(ld, true);
}

static void k_temperature(struct loader *ld, void *obj)
{
	struct dr_ai *a = obj;
	if (read_number(ld, 0, 2, &a->temperature))
		a->has_temperature = true;
}

static void k_max_tokens(struct loader *ld, void *obj)
{
	int64_t v;
	if (read_int(ld, 1, 10000000, &v))
		((struct dr_ai *)obj)->max_tokens = (uint32_t)v;
}

static void k_response_format(struct loader *ld, void *obj)
{
	static const char *const names[] = {"text", "json"};
	int v = read_enum(ld, names, 2);
	if (v >= 0)
		((struct dr_ai *)obj)->response_format = (uint8_t)v;
}

static void k_stream(struct loader *ld, void *obj)
{
	read_bool(ld, &((struct dr_ai *)obj)->stream);
}

static void k_base_url(struct loader *ld, void *obj)
{
	read_url(ld, &((struct dr_ai *)obj)->base_url);
}

static void k_api_key_env(struct loader *ld, void *obj)
{
	struct dr_ai *a = obj;
	if (read_nonempty(ld, &a->api_key_env) &&
	    strspn(a->api_key_env.s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
				     "0123456789_") != a->api_key_env.len)
		load_error(ld, (struct pos){a->api_key_env.line, a->api_key_env.col},
			   "invalid environment variable name '%.80s' in 'apiKeyEnv'",
			   a->api_key_env.s);
}

static void k_max_context(struct loader *ld, void *obj)
{
	int64_t v;
	if (read_int(ld, 1, (int64_t)64 << 20, &v))
		((struct dr_ai *)obj)->max_context_bytes = (uint64_t)v;
}

static bool before(struct pos a, struct pos b)
{
	return a.line < b.line || (a.line == b.line && a.col < b.col);
}

/* model and a prompt (one of prompt and promptFile) are required. */
static void check(struct loader *ld, const struct kind_view *v)
{
	if (!kind_has_or_hinted(v, K_MODEL))
		load_error(ld, v->at, "missing required key 'model' in ai %s", v->name);
	if (!kind_has_or_hinted(v, K_PROMPT) && !kind_has_or_hinted(v, K_PROMPT_FILE))
		load_error(ld, v->at, "missing required key 'prompt' (or 'promptFile') in ai %s",
			   v->name);
	if (kind_has(v, K_PROMPT) && kind_has(v, K_PROMPT_FILE)) {
		bool p_first = before(kind_key_at(v, K_PROMPT), kind_key_at(v, K_PROMPT_FILE));
		load_error(ld, kind_key_at(v, p_first ? K_PROMPT_FILE : K_PROMPT),
			   "%s has both 'prompt' and 'promptFile'", v->name);
	}
}

/* Fingerprint: the promptFile's name, the key's variable, the context
 * and the request's settings. */
static void mix(const void *spec, struct dr_mix *m)
{
	const struct dr_ai *a = spec;
	m->text(m, &a->prompt_file);
	m->text(m, &a->api_key_env);
	m->value(m, a->context);
	uint64_t v[4] = {(uint64_t)a->has_temperature << 32 | a->max_tokens,
			 (uint64_t)a->response_format << 8 | a->stream, a->max_context_bytes, 0};
	memcpy(&v[3], &a->temperature, sizeof(v[3]));
	m->bytes(m, v, sizeof(v));
}

static int each_text(const struct dagrun_workflow *wf, uint32_t t, dr_text_fn fn, void *ud)
{
	const struct dr_ai *a = wf->tasks[t].spec;
	int r;
	if ((r = dr_each_text(t, &a->model, DR_USE_PLAIN, fn, ud)) ||
	    (r = dr_each_text(t, &a->system, DR_USE_PLAIN, fn, ud)) ||
	    (r = dr_each_text(t, &a->prompt, DR_USE_PLAIN, fn, ud)) ||
	    (r = dr_each_text(t, &a->base_url, DR_USE_URL, fn, ud)))
		return r;
	return dr_each_value(t, a->context, fn, ud);
}

/* The API key's variable is a secret. */
static int each_secret_env(const struct dagrun_workflow *wf, uint32_t t,
			   int (*fn)(void *ud, const char *name), void *ud)
{
	return fn(ud, ai_api_key_env(wf->tasks[t].spec));
}

/* An AI task's promptFile must be a readable regular file (the run's
 * reader: ai_prompt_file_read), reported at the key as the run reports it,
 * and its templates pass the same checks, reported at their place in that
 * file. */
static int check_exprs(struct kind_checker *c, const struct dagrun_workflow *wf, uint32_t t)
{
	const struct dr_ai *ai = wf->tasks[t].spec;
	const struct dr_text *pf = &ai->prompt_file;
	if (!pf->s)
		return 0;
	char *path = NULL, *text = NULL, *err = NULL;
	size_t n = 0;
	int r = ai_prompt_file_read(wf, ai, &path, &text, &n, &err);
	if (r == -ENOMEM)
		return r;
	if (r < 0) {
		c->error(c, pf, UINT32_MAX, err);
	} else {
		struct dr_text x = {text, (uint32_t)n, 1, 1};
		c->template_in(c, t, &x, path);
	}
	free(err);
	free(text);
	free(path);
	return 0;
}

/* ---- the executor and the extension ---------------------------------------- */

/* Sends through the HTTP executor's client, to share its connections. */
static int make_ai(struct kind_env *env, struct executor **out)
{
	struct executor *h;
	int r = env->executor(env, &kind_exec_http, &h);
	if (r < 0)
		return r;
	return (*out = ai_executor_new(env->loop, http_executor_client(h))) ? 0 : -ENOMEM;
}

static const struct exec_def exec_ai = {"ai", make_ai};

static int set_str(json_t *o, const char *k, const char *v)
{
	return v && json_object_set_new(o, k, json_string(v)) < 0 ? -ENOMEM : 0;
}

/* The JSON log's fields: model, usage {promptTokens, completionTokens},
 * finishReason, promptSha256 with promptBytes and contextCutBytes. */
static int ai_json(const struct dagrun_ext *x, json_t *o)
{
	const struct dagrun_ext_ai *a = (const struct dagrun_ext_ai *)x;
	if (set_str(o, "model", a->model) < 0)
		return -ENOMEM;
	if (a->prompt_tokens >= 0) {
		json_t *u = json_object();
		if (!u || json_object_set_new(u, "promptTokens", json_integer(a->prompt_tokens)) ||
		    json_object_set_new(u, "completionTokens", json_integer(a->completion_tokens)) ||
		    json_object_set_new(o, "usage", u) < 0)
			return -ENOMEM;
	}
	if (set_str(o, "finishReason", a->finish_reason) < 0)
		return -ENOMEM;
	if (!a->prompt_sha256)
		return 0;
	if (set_str(o, "promptSha256", a->prompt_sha256) < 0 ||
	    json_object_set_new(o, "promptBytes", json_integer((json_int_t)a->prompt_bytes)) ||
	    json_object_set_new(o, "contextCutBytes",
				json_integer((json_int_t)a->context_cut_bytes)))
		return -ENOMEM;
	return 0;
}

static const struct ext_def ext_ai = {DAGRUN_EXT_AI, ai_json};

static const struct keydef keys[K_COUNT] = {
	[K_PROMPT] = KEY("prompt", k_prompt),
	[K_PROMPT_FILE] = KEY("promptFile", k_prompt_file),
	[K_MODEL] = KEY("model", k_model),
	[K_SYSTEM] = KEY("system", k_system),
	[K_CONTEXT] = KEY("context", k_context),
	[K_TEMPERATURE] = KEY("temperature", k_temperature),
	[K_MAX_TOKENS] = KEY("maxTokens", k_max_tokens),
	[K_RESPONSE_FORMAT] = KEY("responseFormat", k_response_format),
	[K_STREAM] = KEY("stream", k_stream),
	[K_BASE_URL] = KEY("baseUrl", k_base_url),
	[K_API_KEY_ENV] = KEY("apiKeyEnv", k_api_key_env),
	[K_MAX_CONTEXT_BYTES] = KEY("maxContextBytes", k_max_context),
};

/* Canonical inputs: what the executor builds (exec/ai_request.c). */
static int inputs(struct exec_attempt *a, json_t *o, char **err)
{
	return ai_inputs(a, o, err);
}

const struct kind kind_ai = {
	.load = {
		.model = {"ai", 0, each_text, each_secret_env, NULL, mix},
		.keys = keys, .n_keys = K_COUNT, .n_select = 2,
		.keys_select = true, .type = "ai", .only_in = "in an ai task",
		.spec_size = sizeof(struct dr_ai), .spec_init = init,
		.check = check,
	},
	.exec = &exec_ai,
	.ext = {&ext_ai, &kind_ext_http},
	.check = check_exprs,
	.inputs = inputs,
};
