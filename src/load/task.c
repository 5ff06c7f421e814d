/* task.c: reading one task (and the `defaults` mapping, which shares the
 * option keys) from the event stream into the compact model.
 *
 * Invariant: a task costs only what it writes: its kind's struct and its
 * options are allocated in the arena on their first key, dependencies are
 * appended straight to wf->deps with their target as an interned symbol,
 * and the per-task state lives in one reused struct on the stack.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "load/loader.h"

/* "task 'x'" or "task" for messages. */
static const char *label(const struct loader *ld, const struct task_tmp *t,
			 char *buf, size_t size)
{
	if (t->sym == INTERN_NONE)
		return "task";
	snprintf(buf, size, "task '%.80s'", intern_str(&ld->wf->ids, t->sym));
	return buf;
}

static struct opts_tmp *task_opts(struct loader *ld, void *obj)
{
	struct task_tmp *t = obj;
	if (!t->opts) {
		t->opts = arena_calloc(&ld->wf->arena, sizeof(*t->opts));
		if (!t->opts)
			load_oom(ld);
	}
	return t->opts;
}

/* ---- the task mapping ------------------------------------------------------------------ */

static void t_id(struct loader *ld, void *obj)
{
	struct task_tmp *t = obj;
	t->id_at = load_pos(ld);
	t->sym = ids_read(ld, true);
}

static void t_type(struct loader *ld, void *obj)
{
	static const char *const names[] = {"standard", "ai"};
	int v = read_enum(ld, names, 2);
	if (v >= 0)
		((struct task_tmp *)obj)->type = (uint8_t)(v == 0 ? TYPE_STANDARD : TYPE_AI);
}

static void t_priority(struct loader *ld, void *obj)
{
	int64_t v;
	if (read_int(ld, INT32_MIN + 1, INT32_MAX, &v))
		((struct task_tmp *)obj)->priority = (int32_t)v;
}

/* Key order: the bit numbers below. The most frequent keys come first. */
enum {
	T_ID, T_COMMAND, T_DEPENDENCIES, T_TYPE, T_DESCRIPTION, T_PRIORITY,
	T_RESOURCES, T_TIMEOUT, T_KILL_GRACE, T_RETRY, T_ENV, T_WORKDIR, T_WHEN,
	T_SCRIPT, T_INTERPRETER, T_API, T_WEBHOOK, T_PROMPT, T_PROMPT_FILE,
	T_MODEL, T_SYSTEM, T_CONTEXT, T_TEMPERATURE, T_MAX_TOKENS,
	T_RESPONSE_FORMAT, T_STREAM, T_BASE_URL, T_API_KEY_ENV,
	T_MAX_CONTEXT_BYTES, T_COUNT
};

static const struct keydef task_keys[T_COUNT] = {
	[T_ID] = KEY("id", t_id),
	[T_COMMAND] = KEY("command", kind_command),
	[T_DEPENDENCIES] = KEY("dependencies", deps_read),
	[T_TYPE] = KEY("type", t_type),
	[T_DESCRIPTION] = KEY_OPT("description", opts_description),
	[T_PRIORITY] = KEY("priority", t_priority),
	[T_RESOURCES] = KEY_OPT("resources", opts_resources),
	[T_TIMEOUT] = KEY_OPT("timeout", opts_timeout),
	[T_KILL_GRACE] = KEY_OPT("killGrace", opts_kill_grace),
	[T_RETRY] = KEY_OPT("retry", opts_retry),
	[T_ENV] = KEY_OPT("env", opts_env),
	[T_WORKDIR] = KEY_OPT("workdir", opts_workdir),
	[T_WHEN] = KEY_OPT("when", opts_when),
	[T_SCRIPT] = KEY("script", kind_script),
	[T_INTERPRETER] = KEY("interpreter", kind_interpreter),
	[T_API] = KEY("api", kind_api),
	[T_WEBHOOK] = KEY("webhook", kind_webhook),
	[T_PROMPT] = KEY("prompt", kind_ai_prompt),
	[T_PROMPT_FILE] = KEY("promptFile", kind_ai_prompt_file),
	[T_MODEL] = KEY("model", kind_ai_model),
	[T_SYSTEM] = KEY("system", kind_ai_system),
	[T_CONTEXT] = KEY("context", kind_ai_context),
	[T_TEMPERATURE] = KEY("temperature", kind_ai_temperature),
	[T_MAX_TOKENS] = KEY("maxTokens", kind_ai_max_tokens),
	[T_RESPONSE_FORMAT] = KEY("responseFormat", kind_ai_response_format),
	[T_STREAM] = KEY("stream", kind_ai_stream),
	[T_BASE_URL] = KEY("baseUrl", kind_ai_base_url),
	[T_API_KEY_ENV] = KEY("apiKeyEnv", kind_ai_api_key_env),
	[T_MAX_CONTEXT_BYTES] = KEY("maxContextBytes", kind_ai_max_context),
};

static const struct keytab task_tab = {"task", task_keys, T_COUNT, task_opts};

#define BIT(k) (1ull << (k))
#define AI_ONLY (BIT(T_MODEL) | BIT(T_SYSTEM) | BIT(T_CONTEXT) | \
		 BIT(T_TEMPERATURE) | BIT(T_MAX_TOKENS) | BIT(T_RESPONSE_FORMAT) | \
		 BIT(T_STREAM) | BIT(T_BASE_URL) | BIT(T_API_KEY_ENV) | \
		 BIT(T_MAX_CONTEXT_BYTES))

#define KIND_KEYS (BIT(T_COMMAND) | BIT(T_SCRIPT) | BIT(T_API) | BIT(T_WEBHOOK) | \
		   BIT(T_PROMPT) | BIT(T_PROMPT_FILE))

static bool before(struct pos a, struct pos b)
{
	return a.line < b.line || (a.line == b.line && a.col < b.col);
}

/* The kind keys present, in file order. */
struct kind_key {
	unsigned key;
	uint8_t kind;
};

static unsigned kind_keys(const struct task_tmp *t, struct kind_key *out)
{
	static const struct kind_key all[] = {
		{T_COMMAND, DR_KIND_COMMAND}, {T_SCRIPT, DR_KIND_SCRIPT},
		{T_API, DR_KIND_API}, {T_WEBHOOK, DR_KIND_WEBHOOK},
		{T_PROMPT, DR_KIND_AI}, {T_PROMPT_FILE, DR_KIND_AI},
	};
	unsigned n = 0;
	bool ai = false;
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
		if (!(t->seen.mask & BIT(all[i].key)))
			continue;
		if (all[i].kind == DR_KIND_AI && ai)
			continue; /* prompt and promptFile: reported apart */
		ai = ai || all[i].kind == DR_KIND_AI;
		unsigned j = n++;
		for (; j > 0 && before(t->seen.at[all[i].key], t->seen.at[out[j - 1].key]); j--)
			out[j] = out[j - 1];
		out[j] = all[i];
	}
	return n;
}

/* Decides the task's kind, reporting conflicts; DR_KIND_COUNT if none. */
static uint8_t pick_kind(struct loader *ld, const struct task_tmp *t, const char *name)
{
	struct kind_key k[6];
	unsigned n = kind_keys(t, k);
	for (unsigned i = 0; i < n && t->type; i++) {
		bool ai = k[i].kind == DR_KIND_AI;
		if (ai != (t->type == TYPE_AI))
			load_error(ld, t->seen.at[k[i].key], "%s has both 'type: %s' and '%s'",
				   name, t->type == TYPE_AI ? "ai" : "standard",
				   task_keys[k[i].key].name);
	}
	if (n >= 2)
		load_error(ld, t->seen.at[k[1].key], "%s has both '%s' and '%s'", name,
			   task_keys[k[0].key].name, task_keys[k[1].key].name);
	if (t->type == TYPE_AI)
		return DR_KIND_AI;
	if (n)
		return k[0].kind;
	if (t->seen.mask & AI_ONLY)
		return DR_KIND_AI;
	return DR_KIND_COUNT;
}

static void check_ai(struct loader *ld, struct task_tmp *t, const char *name,
		     struct pos at)
{
	uint64_t m = t->seen.mask, mh = m | t->seen.hinted;
	if (!(mh & BIT(T_MODEL)))
		load_error(ld, at, "missing required key 'model' in ai %s", name);
	if (!(mh & (BIT(T_PROMPT) | BIT(T_PROMPT_FILE))))
		load_error(ld, at, "missing required key 'prompt' (or 'promptFile') in ai %s",
			   name);
	if ((m & BIT(T_PROMPT)) && (m & BIT(T_PROMPT_FILE))) {
		bool p_first = before(t->seen.at[T_PROMPT], t->seen.at[T_PROMPT_FILE]);
		load_error(ld, t->seen.at[p_first ? T_PROMPT_FILE : T_PROMPT],
			   "%s has both 'prompt' and 'promptFile'", name);
	}
}

static void check_keys_fit(struct loader *ld, struct task_tmp *t, uint8_t kind)
{
	uint64_t m = t->seen.mask;
	if ((m & BIT(T_INTERPRETER)) && !(m & BIT(T_SCRIPT)))
		load_error(ld, t->seen.at[T_INTERPRETER],
			   "'interpreter' is only valid with 'script'");
	if (kind == DR_KIND_AI)
		return;
	for (unsigned k = 0; k < T_COUNT; k++)
		if ((m & AI_ONLY & BIT(k)))
			load_error(ld, t->seen.at[k], "'%s' is only valid in an ai task",
				   task_keys[k].name);
}

static const void *spec_of(const struct task_tmp *t, uint8_t kind)
{
	switch (kind) {
	case DR_KIND_COMMAND: return t->command;
	case DR_KIND_SCRIPT: return t->script;
	case DR_KIND_API: return t->api;
	case DR_KIND_WEBHOOK: return t->webhook;
	case DR_KIND_AI: return t->ai;
	default: return NULL;
	}
}

/* Declares the id; reports a duplicate. */
static void declare(struct loader *ld, const struct task_tmp *t, unsigned g,
		    uint32_t idx)
{
	uint32_t *slot = &ld->wf->sym_task[t->sym];
	if (*slot == UINT32_MAX) {
		*slot = (g << 28) | idx;
		return;
	}
	const struct dr_task *first = &ld->groups[*slot >> 28].v[*slot & 0x0FFFFFFF];
	load_error(ld, t->id_at, "duplicate task id '%.80s' (first defined at line %u)",
		   intern_str(&ld->wf->ids, t->sym), first->line);
}

static bool append(struct loader *ld, unsigned g, const struct dr_task *task)
{
	struct task_vec *v = &ld->groups[g];
	if (v->n == v->cap) {
		uint32_t cap = v->cap ? v->cap * 2 : (g == GROUP_MAIN ? 1024 : 8);
		struct dr_task *p = load_grow(v->v, (size_t)cap * sizeof(*p));
		if (!p) {
			load_oom(ld);
			return false;
		}
		v->v = p;
		v->cap = cap;
	}
	v->v[v->n++] = *task;
	ld->n_tasks++;
	return true;
}

/* The checks of a task as a whole; returns its kind. */
static uint8_t check_task(struct loader *ld, struct task_tmp *t, struct pos at)
{
	char buf[100];
	const char *name = label(ld, t, buf, sizeof(buf));
	if (!seen_or_hinted(&t->seen, T_ID))
		load_error(ld, t->start, "missing required key 'id' in task");
	uint8_t kind = pick_kind(ld, t, name);
	if (kind == DR_KIND_COUNT && !(t->seen.hinted & KIND_KEYS))
		load_error(ld, at, "%s has nothing to run: add 'command', 'script', "
			   "'api', 'webhook' or 'prompt'", name);
	else if (kind == DR_KIND_AI)
		check_ai(ld, t, name, at);
	check_keys_fit(ld, t, kind);
	if (kind == DR_KIND_SCRIPT)
		kind_check_script(ld, t->script);
	return kind;
}

static void finish(struct loader *ld, struct task_tmp *t, unsigned g)
{
	struct pos at = t->sym != INTERN_NONE ? t->id_at : t->start;
	uint8_t kind;
	/* The common case, an id and one command, needs no further check. */
	if (t->seen.mask == (BIT(T_ID) | BIT(T_COMMAND)) ||
	    t->seen.mask == (BIT(T_ID) | BIT(T_COMMAND) | BIT(T_DEPENDENCIES)))
		kind = DR_KIND_COMMAND;
	else
		kind = check_task(ld, t, at);
	struct dr_task task = {
		.sym = t->sym, .line = at.line, .col = at.col,
		.dep_first = t->dep_first, .dep_count = t->dep_count,
		.priority = t->priority, .kind = kind == DR_KIND_COUNT ? 0 : kind,
		.hook = (uint8_t)g, .opts = t->opts ? &t->opts->o : NULL,
	};
	task.spec.any = spec_of(t, kind);
	if (t->sym != INTERN_NONE)
		declare(ld, t, g, ld->groups[g].n);
	append(ld, g, &task);
}

void task_read(struct loader *ld, unsigned g)
{
	struct task_tmp t;
	if (ld->n_tasks >= DAGRUN_MAX_TASKS) {
		load_error(ld, load_pos(ld), "too many tasks (the limit is %u)",
			   DAGRUN_MAX_TASKS);
		ld->stop = true;
		return;
	}
	t.start = load_pos(ld);
	t.sym = INTERN_NONE;
	t.id_at = t.start;
	t.priority = PRIORITY_UNSET;
	t.type = TYPE_UNSET;
	t.deps_capped = false;
	t.dep_first = (uint32_t)ld->wf->n_deps;
	t.dep_count = 0;
	t.opts = NULL;
	t.command = NULL;
	t.script = NULL;
	t.api = NULL;
	t.webhook = NULL;
	t.ai = NULL;
	read_map(ld, &task_tab, &t, &t.seen);
	if (!ld->stop)
		finish(ld, &t, g);
}
