/* scope.c: what an expression's names resolve to.
 *
 * Two environments live in the registry for the engine's lifetime: the base
 * one (templates, `when`) and the condition one, which also resolves the
 * fields of scope->self. Both hold the allowlisted globals as raw fields and
 * resolve everything else in C through __index, reading the scope of the
 * evaluation in progress (engine->scope). The proxies (variables, env,
 * secrets, run, context, tasks) are empty read-only tables whose __index
 * reads the scope, so they are built once and never go stale.
 * Invariant: anything built from a scope (a task's result table, a
 * dependency's json) lives in the scratch table, which is emptied after
 * every evaluation; the proxies, environments and libraries reject writes.
 * A task result's fields and key-value lists are made Lua values in
 * scope_fields.c.
 */
#include <errno.h>
#include <string.h>

#include "dagrun.h"
#include "expr/internal.h"
#include "expr/redact.h"
#include "model/model.h"
#include "util/env.h"

const char expr_kind_key = 0;

static const char *const field_names[F_COUNT] = {
	NULL, "status", "exitCode", "output", "json", "outputs", "error",
	"http", "usage", "attempts", "durationMs", "outputTruncated",
};

static const char *const kind_names[LZ_COUNT] = {
	NULL, "array", "task result", "variables", "context", "run", "env",
	"secrets", "tasks", "library", "environment", "trigger",
};

static int field_code(const char *k, size_t n)
{
	for (int i = 1; i < F_COUNT; i++)
		if (strlen(field_names[i]) == n && !memcmp(field_names[i], k, n))
			return i;
	return F_NONE;
}

/* ---- the scratch table --------------------------------------------------- */

static void push_scratch(lua_State *L, struct expr_engine *e)
{
	lua_rawgeti(L, LUA_REGISTRYINDEX, e->ref_scratch);
}

void scope_reset(struct expr_engine *e)
{
	lua_State *L = e->L;
	if (!e->scratch_used)
		return;
	lua_settop(L, 0);
	push_scratch(L, e);
	lua_pushnil(L);
	while (lua_next(L, 1)) {
		lua_pop(L, 1);
		lua_pushvalue(L, -1);
		lua_pushnil(L);
		lua_rawset(L, 1);
	}
	lua_settop(L, 0);
	e->scratch_used = false;
}

/* ---- environments -------------------------------------------------------- */

static int read_only(lua_State *L)
{
	if (lua_type(L, 2) == LUA_TSTRING)
		return luaL_error(L, "cannot assign to '%s': expressions cannot "
				  "change what they read", lua_tostring(L, 2));
	return luaL_error(L, "expressions cannot change what they read");
}

/* The key of an __index call (argument 2) when it is a string, else NULL
 * (a number is not converted). */
static const char *string_key(lua_State *L, size_t *n)
{
	return lua_type(L, 2) == LUA_TSTRING ? lua_tolstring(L, 2, n) : NULL;
}

static int env_index(lua_State *L)
{
	size_t n;
	const char *k = lua_tolstring(L, 2, &n);
	if (lua_type(L, 2) != LUA_TSTRING)
		return 0;
	if (field_code(k, n))
		return luaL_error(L, "'%s' is only available in a dependency's "
				  "condition (elsewhere: tasks.<id>.%s)", k, k);
	return luaL_error(L, "unknown name '%s'", k);
}

static int cond_index(lua_State *L)
{
	struct expr_engine *e = expr_engine_of(L);
	size_t n;
	const char *k = string_key(L, &n);
	if (!k)
		return 0;
	int f = field_code(k, n);
	if (!f)
		return luaL_error(L, "unknown name '%s'", k);
	push_scratch(L, e);
	if (lua_rawgetp(L, -1, &field_names[f]) != LUA_TNIL)
		return 1;
	lua_pop(L, 1);
	if (scope_push_field(L, e->scope->self, f)) {
		lua_pushvalue(L, -1);
		lua_rawsetp(L, -3, &field_names[f]);
		e->scratch_used = true;
	}
	return 1;
}

/* ---- task results -------------------------------------------------------- */

static const struct expr_result *result_of(lua_State *L, int t)
{
	struct expr_engine *e = expr_engine_of(L);
	push_scratch(L, e);
	lua_pushvalue(L, t);
	lua_rawget(L, -2);
	const struct expr_result *r = lua_touserdata(L, -1);
	lua_pop(L, 2);
	return r;
}

static int result_index(lua_State *L)
{
	size_t n;
	const char *k = string_key(L, &n);
	if (!k)
		return 0;
	int f = field_code(k, n);
	if (!f)
		return luaL_error(L, "a task result has no field '%s' (it has "
				  "status, exitCode, output, json, outputs, "
				  "error, http, usage, attempts, durationMs, "
				  "outputTruncated)", k);
	const struct expr_result *r = result_of(L, 1);
	if (!r)
		return 0;
	if (scope_push_field(L, r, f)) {
		lua_pushvalue(L, 2);
		lua_pushvalue(L, -2);
		lua_rawset(L, 1);
	}
	return 1;
}

/* Fills every field of the result table at idx. */
static void fill_result(lua_State *L, int idx)
{
	idx = lua_absindex(L, idx);
	const struct expr_result *r = result_of(L, idx);
	if (!r)
		return;
	for (int f = 1; f < F_COUNT; f++) {
		lua_pushstring(L, field_names[f]);
		if (lua_rawget(L, idx) != LUA_TNIL) {
			lua_pop(L, 1);
			continue;
		}
		lua_pop(L, 1);
		lua_pushstring(L, field_names[f]);
		scope_push_field(L, r, f);
		lua_rawset(L, idx);
	}
}

static int tasks_index(lua_State *L)
{
	struct expr_engine *e = expr_engine_of(L);
	const struct expr_scope *sc = e->scope;
	if (lua_type(L, 2) != LUA_TSTRING || !sc->lookup)
		return 0;
	push_scratch(L, e);                 /* 3 */
	lua_pushvalue(L, 2);
	if (lua_rawget(L, 3) == LUA_TTABLE)
		return 1;
	lua_pop(L, 1);
	expr_charge(L, "tasks", lua_rawlen(L, 2) / 8);
	const struct expr_result *r = sc->lookup(sc->lookup_ud, lua_tostring(L, 2));
	if (!r)
		return 0;
	lua_createtable(L, 0, 4);           /* 4 */
	lua_rawgeti(L, LUA_REGISTRYINDEX, e->ref_mt[LZ_RESULT]);
	lua_setmetatable(L, 4);
	lua_pushvalue(L, 4);
	lua_pushlightuserdata(L, (void *)r);
	lua_rawset(L, 3);
	lua_pushvalue(L, 2);
	lua_pushvalue(L, 4);
	lua_rawset(L, 3);
	e->scratch_used = true;
	return 1;
}

/* ---- variables, context, run, env, secrets ------------------------------- */

static const struct dr_value *map_get(lua_State *L, const struct dr_value *m,
				      const char *k, size_t n)
{
	if (!m || m->kind != DR_VAL_MAP)
		return NULL;
	expr_charge(L, "variables", m->count / 8);
	for (uint32_t i = 0; i < m->count; i++)
		if (m->keys[i].len == n && !memcmp(m->keys[i].s, k, n))
			return &m->items[i];
	return NULL;
}

static int variables_index(lua_State *L)
{
	size_t n;
	const char *k = string_key(L, &n);
	if (!k)
		return 0;
	const struct dr_value *v = map_get(L, expr_engine_of(L)->scope->variables,
					   k, n);
	if (!v)
		return 0;
	conv_push_dr_value(L, v, 0);
	return 1;
}

static int context_index(lua_State *L)
{
	const struct expr_scope *sc = expr_engine_of(L)->scope;
	const char *k = lua_tostring(L, 2);
	if (lua_type(L, 2) != LUA_TSTRING)
		return 0;
	expr_charge(L, "context", sc->n_context / 8);
	for (size_t i = 0; i < sc->n_context; i++) {
		if (sc->context[i].key && !strcmp(sc->context[i].key, k)) {
			lua_pushlstring(L, sc->context[i].value
					? sc->context[i].value : "",
					sc->context[i].value_len);
			return 1;
		}
	}
	return 0;
}

static int run_index(lua_State *L)
{
	const struct expr_scope *sc = expr_engine_of(L)->scope;
	const char *k = lua_type(L, 2) == LUA_TSTRING ? lua_tostring(L, 2) : "";
	const char *v = !strcmp(k, "id") ? sc->run_id
			: !strcmp(k, "name") ? sc->run_name : NULL;
	if (!v)
		return 0;
	lua_pushstring(L, v);
	return 1;
}

/* trigger.body: the JSON body of the webhook that started the run, or nil
 * (a run started otherwise). */
static int trigger_index(lua_State *L)
{
	const struct expr_scope *sc = expr_engine_of(L)->scope;
	const char *k = lua_type(L, 2) == LUA_TSTRING ? lua_tostring(L, 2) : "";
	if (strcmp(k, "body") || !sc->trigger_body)
		return 0;
	conv_push_json(L, (const json_t *)sc->trigger_body, 0);
	return 1;
}

/* Looks k up in envp (NULL: environ), charging the scan to the budget. */
static const char *getenv_in(lua_State *L, char *const *envp, const char *k,
			     size_t n)
{
	expr_charge(L, "env", n / 8);
	size_t scanned;
	const char *v = env_lookup(envp, k, n, &scanned);
	expr_charge(L, "env", scanned / 8);
	return v;
}

static int env_var_index(lua_State *L)
{
	size_t n;
	const char *k = string_key(L, &n);
	if (!k)
		return 0;
	const char *v = getenv_in(L, expr_engine_of(L)->scope->environ, k, n);
	if (!v)
		return 0;
	lua_pushstring(L, v);
	return 1;
}

static int secrets_index(lua_State *L)
{
	struct expr_engine *e = expr_engine_of(L);
	size_t n;
	const char *k = string_key(L, &n);
	if (!k)
		return 0;
	const char *v = getenv_in(L, e->scope->environ, k, n);
	if (!v)
		return luaL_error(L, "secret '%s' is not set (no environment "
				  "variable %s)", k, k);
	/* Registered before the expression sees it: a secret that cannot be
	 * redacted is not handed out. */
	if (e->redactor && redact_add(e->redactor, v, strlen(v)) < 0)
		return luaL_error(L, "cannot register secret '%s' for redaction", k);
	lua_pushstring(L, v);
	return 1;
}

/* ---- materializing and iterating ----------------------------------------- */

int lz_kind_of(lua_State *L, int idx)
{
	if (lua_type(L, idx) != LUA_TTABLE || !lua_getmetatable(L, idx))
		return LZ_NONE;
	lua_rawgetp(L, -1, &expr_kind_key);
	int k = (int)lua_tointeger(L, -1);
	lua_pop(L, 2);
	return k;
}

int lz_materialize(lua_State *L, int idx)
{
	const struct expr_scope *sc = expr_engine_of(L)->scope;
	idx = lua_absindex(L, idx);
	int kind = lz_kind_of(L, idx);
	switch (kind) {
	case LZ_NONE:
	case LZ_ARRAY:
		return 0;
	case LZ_RESULT:
		fill_result(L, idx);
		lua_pushvalue(L, idx);
		return 1;
	case LZ_VARIABLES:
		if (sc->variables)
			conv_push_dr_value(L, sc->variables, 0);
		else
			lua_newtable(L);
		return 1;
	case LZ_CONTEXT:
		scope_push_kv_table(L, sc->context, sc->n_context, false);
		return 1;
	case LZ_TRIGGER:
		lua_createtable(L, 0, 1);
		if (sc->trigger_body) {
			conv_push_json(L, (const json_t *)sc->trigger_body, 0);
			lua_setfield(L, -2, "body");
		}
		return 1;
	case LZ_RUN:
		lua_createtable(L, 0, 2);
		scope_set_str_or_nil(L, "id", sc->run_id);
		scope_set_str_or_nil(L, "name", sc->run_name);
		return 1;
	}
	return luaL_error(L, "cannot list or convert %s", kind_names[kind]);
}

/* __pairs: iterates over the materialized content; upvalue 1 is `next`. */
static int lz_pairs(lua_State *L)
{
	if (!lz_materialize(L, 1))
		lua_pushvalue(L, 1);
	lua_pushvalue(L, lua_upvalueindex(1));
	lua_insert(L, -2);
	lua_pushnil(L);
	return 3;
}

/* ---- setup --------------------------------------------------------------- */

/* Pushes a new metatable of kind `kind` with __index `index` (a function,
 * or the table at index `index_table` when index is NULL). */
static void push_metatable(lua_State *L, int kind, lua_CFunction index,
			   int index_table)
{
	index_table = index_table ? lua_absindex(L, index_table) : 0;
	lua_createtable(L, 0, 5);
	if (index)
		lua_pushcfunction(L, index);
	else
		lua_pushvalue(L, index_table);
	lua_setfield(L, -2, "__index");
	lua_pushcfunction(L, read_only);
	lua_setfield(L, -2, "__newindex");
	lua_getglobal(L, "next");
	lua_pushcclosure(L, lz_pairs, 1);
	lua_setfield(L, -2, "__pairs");
	lua_pushboolean(L, 0);
	lua_setfield(L, -2, "__metatable");
	lua_pushinteger(L, kind);
	lua_rawsetp(L, -2, &expr_kind_key);
}

static void save_metatable(lua_State *L, struct expr_engine *e, int kind,
			   lua_CFunction index)
{
	push_metatable(L, kind, index, 0);
	e->ref_mt[kind] = luaL_ref(L, LUA_REGISTRYINDEX);
}

/* Sets env[name] to a new empty table with the metatable of kind. */
static void add_proxy(lua_State *L, int env, struct expr_engine *e,
		      const char *name, int kind)
{
	lua_newtable(L);
	lua_rawgeti(L, LUA_REGISTRYINDEX, e->ref_mt[kind]);
	lua_setmetatable(L, -2);
	lua_setfield(L, env, name);
}

/* Sets env[name] to a read-only view of the library table global `name`. */
static void add_library(lua_State *L, int env, const char *name)
{
	lua_getglobal(L, name);
	lua_newtable(L);
	push_metatable(L, LZ_LIBRARY, NULL, -2);
	lua_setmetatable(L, -2);
	lua_setfield(L, env, name);
	lua_pop(L, 1);
}

static void prepare_string_library(lua_State *L)
{
	lua_getglobal(L, "string");
	lua_pushnil(L);
	lua_setfield(L, -2, "dump");
	match_register(L, -1);
	/* "abc":upper() goes through the string metatable: point it at the
	 * same (now sandboxed) table. The metatable stays unreachable. */
	lua_pushliteral(L, "");
	lua_getmetatable(L, -1);
	lua_pushvalue(L, -3);
	lua_setfield(L, -2, "__index");
	lua_pop(L, 3);
}

static void fill_base_env(lua_State *L, int env, struct expr_engine *e)
{
	static const char *const globals[] = {
		"assert", "error", "ipairs", "next", "pairs", "pcall", "select",
		"tonumber", "tostring", "type", "rawequal", "rawlen",
	};
	static const char *const libraries[] = {"string", "math", "table", "utf8"};
	static const struct { const char *name; int kind; } proxies[] = {
		{"variables", LZ_VARIABLES}, {"context", LZ_CONTEXT},
		{"run", LZ_RUN}, {"env", LZ_ENV}, {"secrets", LZ_SECRETS},
		{"tasks", LZ_TASKS}, {"trigger", LZ_TRIGGER},
	};
	for (size_t i = 0; i < sizeof(globals) / sizeof(globals[0]); i++) {
		lua_getglobal(L, globals[i]);
		lua_setfield(L, env, globals[i]);
	}
	for (size_t i = 0; i < sizeof(libraries) / sizeof(libraries[0]); i++)
		add_library(L, env, libraries[i]);
	for (size_t i = 0; i < sizeof(proxies) / sizeof(proxies[0]); i++)
		add_proxy(L, env, e, proxies[i].name, proxies[i].kind);
	conv_register_helpers(L, env);
}

/* Gives the globals table at idx a metatable resolving other names. */
static void set_resolver(lua_State *L, int idx, lua_CFunction index)
{
	lua_createtable(L, 0, 2);
	lua_pushcfunction(L, index);
	lua_setfield(L, -2, "__index");
	lua_pushboolean(L, 0);
	lua_setfield(L, -2, "__metatable");
	lua_setmetatable(L, idx);
}

/* Pushes an empty read-only table reading through to the table at idx. */
static void push_front(lua_State *L, int idx)
{
	lua_newtable(L);
	push_metatable(L, LZ_ENVIRONMENT, NULL, idx);
	lua_setmetatable(L, -2);
}

int scope_setup(lua_State *L)
{
	struct expr_engine *e = expr_engine_of(L);
	static const struct { int kind; lua_CFunction index; } mts[] = {
		{LZ_RESULT, result_index}, {LZ_VARIABLES, variables_index},
		{LZ_CONTEXT, context_index}, {LZ_RUN, run_index},
		{LZ_ENV, env_var_index}, {LZ_SECRETS, secrets_index},
		{LZ_TASKS, tasks_index}, {LZ_TRIGGER, trigger_index},
	};
	for (size_t i = 0; i < sizeof(mts) / sizeof(mts[0]); i++)
		save_metatable(L, e, mts[i].kind, mts[i].index);
	/* arrays: only a marker, so that an empty one prints as [] */
	lua_createtable(L, 0, 2);
	lua_pushboolean(L, 0);
	lua_setfield(L, -2, "__metatable");
	lua_pushinteger(L, LZ_ARRAY);
	lua_rawsetp(L, -2, &expr_kind_key);
	e->ref_mt[LZ_ARRAY] = luaL_ref(L, LUA_REGISTRYINDEX);

	lua_newtable(L);
	e->ref_scratch = luaL_ref(L, LUA_REGISTRYINDEX);
	prepare_string_library(L);
	guard_register(L);

	lua_newtable(L);                       /* globals of the base env */
	int env = lua_gettop(L);
	fill_base_env(L, env, e);
	lua_newtable(L);                       /* ... of the condition env */
	int cond = lua_gettop(L);
	lua_pushnil(L);
	while (lua_next(L, env)) {
		lua_pushvalue(L, -2);
		lua_insert(L, -2);
		lua_rawset(L, cond);
	}
	lua_pushnil(L);
	lua_setfield(L, cond, "error");
	lua_pushnil(L);
	lua_setfield(L, cond, "json");
	set_resolver(L, env, env_index);
	set_resolver(L, cond, cond_index);
	/* Each _ENV is an empty front table: every assignment, even to a
	 * name that exists, reaches __newindex and is refused. */
	push_front(L, env);
	push_front(L, cond);
	e->ref_cond_env = luaL_ref(L, LUA_REGISTRYINDEX);
	e->ref_env = luaL_ref(L, LUA_REGISTRYINDEX);
	return 0;
}
