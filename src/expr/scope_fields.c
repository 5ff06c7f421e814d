/* scope_fields.c: the C data of a scope as Lua values: a task result's
 * fields, for the names that read them (tasks.<id>.<field>, and a
 * dependency's fields in a condition), and key-value lists; see scope.c.
 *
 * Invariant: a field is made from the struct expr_result alone, the same
 * every time it is read in one evaluation: output without its final
 * newline (CRLF too), exitCode nil when there is none, json the result's
 * parsed value or the output parsed as JSON (nil when it is not), header
 * names lower-cased.
 */
#include <string.h>

#include "dagrun.h"
#include "expr/internal.h"

static void set_int_or_nil(lua_State *L, const char *k, int64_t v, bool has)
{
	if (has)
		lua_pushinteger(L, (lua_Integer)v);
	else
		lua_pushnil(L);
	lua_setfield(L, -2, k);
}

void scope_set_str_or_nil(lua_State *L, const char *k, const char *v)
{
	if (v)
		lua_pushstring(L, v);
	else
		lua_pushnil(L);
	lua_setfield(L, -2, k);
}

void scope_push_kv_table(lua_State *L, const struct expr_kv *kv, size_t n,
			  bool lower)
{
	lua_createtable(L, 0, n > 64 ? 64 : (int)n);
	for (size_t i = 0; i < n; i++) {
		if (!kv[i].key)
			continue;
		if (lower) {
			luaL_Buffer b;
			const char *k = kv[i].key;
			luaL_buffinit(L, &b);
			for (; *k; k++)
				luaL_addchar(&b, (char)(*k >= 'A' && *k <= 'Z'
						       ? *k + 32 : *k));
			luaL_pushresult(&b);
		} else {
			lua_pushstring(L, kv[i].key);
		}
		lua_pushlstring(L, kv[i].value ? kv[i].value : "", kv[i].value_len);
		lua_rawset(L, -3);
	}
}

static size_t trimmed_len(const char *s, size_t n)
{
	if (n && s[n - 1] == '\n') {
		n--;
		if (n && s[n - 1] == '\r')
			n--;
	}
	return n;
}

/* Pushes field f of r. Returns true when the value is a table (worth
 * caching for the rest of the evaluation). */
bool scope_push_field(lua_State *L, const struct expr_result *r, int f)
{
	const char *out = r->output ? r->output : "";
	size_t out_len = r->output ? trimmed_len(r->output, r->output_len) : 0;
	switch (f) {
	case F_STATUS:
		lua_pushstring(L, dagrun_status_name(r->status));
		return false;
	case F_EXIT_CODE:
		if (r->exit_code < 0)
			lua_pushnil(L);
		else
			lua_pushinteger(L, r->exit_code);
		return false;
	case F_OUTPUT:
		lua_pushlstring(L, out, out_len);
		return false;
	case F_JSON:
		if (r->json)
			conv_push_json(L, r->json, 0);
		else if (!out_len || conv_parse_json(L, "json", out, out_len) < 0) {
			if (out_len)
				lua_pop(L, 1);   /* not JSON: nil */
			lua_pushnil(L);
		}
		return lua_type(L, -1) == LUA_TTABLE;
	case F_OUTPUTS:
		scope_push_kv_table(L, r->outputs, r->n_outputs, false);
		return true;
	case F_ERROR:
		lua_createtable(L, 0, 2);
		scope_set_str_or_nil(L, "class", r->error_class);
		scope_set_str_or_nil(L, "message", r->error_message);
		return true;
	case F_HTTP:
		lua_createtable(L, 0, 2);
		set_int_or_nil(L, "status", r->http_status, r->http_status > 0);
		scope_push_kv_table(L, r->headers, r->n_headers, true);
		lua_setfield(L, -2, "headers");
		return true;
	case F_USAGE:
		lua_createtable(L, 0, 2);
		set_int_or_nil(L, "promptTokens", r->prompt_tokens,
			       r->prompt_tokens >= 0);
		set_int_or_nil(L, "completionTokens", r->completion_tokens,
			       r->completion_tokens >= 0);
		return true;
	case F_ATTEMPTS:
		lua_pushinteger(L, (lua_Integer)r->attempts);
		return false;
	case F_DURATION:
		lua_pushinteger(L, (lua_Integer)r->duration_ms);
		return false;
	case F_OUTPUT_TRUNCATED:
		lua_pushboolean(L, r->output_truncated);
		return false;
	}
	lua_pushnil(L);
	return false;
}
