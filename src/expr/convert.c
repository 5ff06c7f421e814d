/* convert.c: values between Lua, text and JSON, and the helper functions
 * json, fromjson, contains, startswith and len. JSON text to Lua is in
 * convert_parse.c, Lua to text and JSON in convert_encode.c; internal.h
 * declares what the three share.
 *
 * Text (docs/workflow.md): strings as they are, integral numbers without a
 * fraction, true/false, nil as nothing, tables as compact JSON with sorted
 * keys. JSON text is parsed straight into Lua values, so fromjson's memory
 * is charged to the evaluation's limit. Every function here may raise a Lua
 * error and must run in protected mode; recursion is capped (CONV_MAX_DEPTH)
 * so a cycle or a deep document is an error, not a C stack overflow. Work
 * that grows with the data (a value converted, bytes scanned or parsed, keys
 * sorted) is charged to the evaluation's budget (expr_charge).
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "expr/internal.h"
#include "model/model.h"

/* ---- shared by the three files ------------------------------------------ */

void conv_add(lua_State *L, struct buf *out, const void *p, size_t n)
{
	int r = buf_add(out, p, n);
	if (r < 0)
		expr_raise_buf(L, r);
}

void conv_adds(lua_State *L, struct buf *out, const char *s)
{
	conv_add(L, out, s, strlen(s));
}

void conv_set_array_mt(lua_State *L)
{
	lua_rawgeti(L, LUA_REGISTRYINDEX, expr_engine_of(L)->ref_mt[LZ_ARRAY]);
	lua_setmetatable(L, -2);
}

void conv_check_depth(lua_State *L, int depth)
{
	if (depth > CONV_MAX_DEPTH)
		luaL_error(L, "value nested more than %d levels deep (or it "
			   "contains itself)", CONV_MAX_DEPTH);
	luaL_checkstack(L, 8, "value nested too deeply");
}

/* ---- Lua values from YAML and jansson ------------------------------------ */

void conv_push_dr_value(lua_State *L, const struct dr_value *v, int depth)
{
	conv_check_depth(L, depth);
	expr_charge(L, "variables", 1);
	switch (v->kind) {
	case DR_VAL_BOOL:
		lua_pushboolean(L, v->as.b);
		return;
	case DR_VAL_INT:
		lua_pushinteger(L, (lua_Integer)v->as.i);
		return;
	case DR_VAL_REAL:
		lua_pushnumber(L, v->as.d);
		return;
	case DR_VAL_STRING:
		lua_pushlstring(L, v->text.s ? v->text.s : "", v->text.len);
		return;
	case DR_VAL_MAP:
		lua_createtable(L, 0, v->count > 256 ? 256 : (int)v->count);
		for (uint32_t i = 0; i < v->count; i++) {
			if (v->items[i].kind == DR_VAL_NULL)
				continue;
			lua_pushlstring(L, v->keys[i].s ? v->keys[i].s : "",
					v->keys[i].len);
			conv_push_dr_value(L, &v->items[i], depth + 1);
			lua_rawset(L, -3);
		}
		return;
	case DR_VAL_LIST:
		lua_createtable(L, v->count > 256 ? 256 : (int)v->count, 0);
		for (uint32_t i = 0; i < v->count; i++) {
			conv_push_dr_value(L, &v->items[i], depth + 1);
			lua_rawseti(L, -2, (lua_Integer)i + 1);
		}
		conv_set_array_mt(L);
		return;
	}
	lua_pushnil(L);
}

void conv_push_json(lua_State *L, const json_t *j, int depth)
{
	conv_check_depth(L, depth);
	expr_charge(L, "json", 1);
	switch (json_typeof(j)) {
	case JSON_OBJECT: {
		const char *k;
		json_t *v;
		lua_createtable(L, 0, (int)(json_object_size(j) > 256 ? 256
					    : json_object_size(j)));
		json_object_foreach((json_t *)j, k, v) {
			if (json_is_null(v))
				continue;
			lua_pushstring(L, k);
			conv_push_json(L, v, depth + 1);
			lua_rawset(L, -3);
		}
		return;
	}
	case JSON_ARRAY: {
		size_t n = json_array_size(j);
		lua_createtable(L, n > 256 ? 256 : (int)n, 0);
		for (size_t i = 0; i < n; i++) {
			conv_push_json(L, json_array_get(j, i), depth + 1);
			lua_rawseti(L, -2, (lua_Integer)i + 1);
		}
		conv_set_array_mt(L);
		return;
	}
	case JSON_STRING:
		lua_pushlstring(L, json_string_value(j), json_string_length(j));
		return;
	case JSON_INTEGER:
		lua_pushinteger(L, (lua_Integer)json_integer_value(j));
		return;
	case JSON_REAL:
		lua_pushnumber(L, json_real_value(j));
		return;
	case JSON_TRUE:
		lua_pushboolean(L, 1);
		return;
	case JSON_FALSE:
		lua_pushboolean(L, 0);
		return;
	case JSON_NULL:
		break;
	}
	lua_pushnil(L);
}

/* ---- helpers ------------------------------------------------------------- */

/* json(v): v as compact JSON text. */
static int h_json(lua_State *L)
{
	struct expr_engine *e = expr_engine_of(L);
	lua_settop(L, 1);
	buf_reset(&e->tmp);
	e->tmp.max = EXPR_MAX_TEXT;
	conv_to_json(L, 1, &e->tmp);
	lua_pushlstring(L, e->tmp.data ? e->tmp.data : "", e->tmp.len);
	return 1;
}

/* fromjson(s): the value of JSON text s (null is nil). */
static int h_fromjson(lua_State *L)
{
	size_t n;
	const char *s = luaL_checklstring(L, 1, &n);
	if (conv_parse_json(L, "fromjson", s, n) < 0)
		return luaL_error(L, "fromjson: %s", lua_tostring(L, -1));
	return 1;
}

/* contains(s, x): s is a string holding x, or a table with a value equal
 * to x. nil contains nothing. */
static int h_contains(lua_State *L)
{
	size_t n, m;
	switch (lua_type(L, 1)) {
	case LUA_TNIL:
		lua_pushboolean(L, 0);
		return 1;
	case LUA_TSTRING:
	case LUA_TNUMBER: {
		const char *s = lua_tolstring(L, 1, &n);
		const char *x = luaL_checklstring(L, 2, &m);
		expr_charge(L, "contains", (n + m) / 8);
		lua_pushboolean(L, m == 0 || (m <= n && memmem(s, n, x, m)));
		return 1;
	}
	case LUA_TTABLE: {
		luaL_checkany(L, 2);
		int t = 1;
		if (lz_materialize(L, 1))
			t = lua_gettop(L);
		lua_pushnil(L);
		while (lua_next(L, t)) {
			expr_charge(L, "contains", 1);
			if (lua_rawequal(L, -1, 2)) {
				lua_pushboolean(L, 1);
				return 1;
			}
			lua_pop(L, 1);
		}
		lua_pushboolean(L, 0);
		return 1;
	}
	}
	return luaL_error(L, "contains() expects a string or a table, not a %s",
			  luaL_typename(L, 1));
}

/* startswith(s, p): string s begins with p. nil begins with nothing. */
static int h_startswith(lua_State *L)
{
	size_t n, m;
	if (lua_isnil(L, 1)) {
		lua_pushboolean(L, 0);
		return 1;
	}
	const char *s = luaL_checklstring(L, 1, &n);
	const char *p = luaL_checklstring(L, 2, &m);
	expr_charge(L, "startswith", m / 64);
	lua_pushboolean(L, m <= n && !memcmp(s, p, m));
	return 1;
}

/* len(v): bytes in a string, elements in a table (its border, like #),
 * 0 for nil. */
static int h_len(lua_State *L)
{
	switch (lua_type(L, 1)) {
	case LUA_TNIL:
		lua_pushinteger(L, 0);
		return 1;
	case LUA_TSTRING:
		lua_pushinteger(L, (lua_Integer)lua_rawlen(L, 1));
		return 1;
	case LUA_TTABLE:
		if (lz_materialize(L, 1)) {
			lua_Integer n = 0;
			lua_pushnil(L);
			while (lua_next(L, -2)) {
				lua_pop(L, 1);
				n++;
			}
			expr_charge(L, "len", (uint64_t)n);
			lua_pushinteger(L, n);
			return 1;
		}
		lua_pushinteger(L, (lua_Integer)lua_rawlen(L, 1));
		return 1;
	}
	return luaL_error(L, "len() expects a string or a table, not a %s",
			  luaL_typename(L, 1));
}

void conv_register_helpers(lua_State *L, int idx)
{
	static const luaL_Reg helpers[] = {
		{"json", h_json}, {"tojson", h_json}, {"fromjson", h_fromjson},
		{"contains", h_contains}, {"startswith", h_startswith},
		{"len", h_len},
	};
	idx = lua_absindex(L, idx);
	for (size_t i = 0; i < sizeof(helpers) / sizeof(helpers[0]); i++) {
		lua_pushcfunction(L, helpers[i].func);
		lua_setfield(L, idx, helpers[i].name);
	}
}
