/* convert_encode.c: Lua values as template text and as compact JSON; see
 * convert.c for the rules.
 *
 * Invariant: what is appended is JSON text (strings escaped as RFC 8259
 * asks, a non-finite number as null) or the call raises (a function or
 * userdata, a cycle or nesting past CONV_MAX_DEPTH, a buffer past its
 * cap); object keys are sorted, so the same value always encodes to the
 * same text.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "expr/internal.h"

/* The number at idx as templates print it, into tmp (64 bytes). */
static size_t number_text(lua_State *L, int idx, char *tmp)
{
	const size_t cap = 64;
	if (lua_isinteger(L, idx))
		return (size_t)snprintf(tmp, cap, LUA_INTEGER_FMT,
					(LUAI_UACINT)lua_tointeger(L, idx));
	double d = lua_tonumber(L, idx);
	if (isnan(d))
		return (size_t)snprintf(tmp, cap, "nan");
	if (isinf(d))
		return (size_t)snprintf(tmp, cap, d < 0 ? "-inf" : "inf");
	/* integral: all digits up to 1e21, as JavaScript does; -0 is 0 */
	if (d == floor(d) && fabs(d) < 1e21)
		return (size_t)snprintf(tmp, cap, "%.0f", d == 0 ? 0.0 : d);
	for (int prec = 14; prec <= 17; prec++) {  /* shortest that reads back */
		snprintf(tmp, cap, "%.*g", prec, d);
		if (strtod(tmp, NULL) == d)
			break;
	}
	return strlen(tmp);
}

void conv_number(lua_State *L, int idx, struct buf *out)
{
	char tmp[64];
	size_t n = number_text(L, idx, tmp);
	conv_add(L, out, tmp, n);
}

static void enc_string(lua_State *L, const char *s, size_t n,
			struct buf *out)
{
	static const char hex[] = "0123456789abcdef";
	if (n >= 64)
		expr_charge(L, "json", n / 8);
	conv_add(L, out, "\"", 1);
	size_t start = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c >= 0x20 && c != '"' && c != '\\')
			continue;
		conv_add(L, out, s + start, i - start);
		start = i + 1;
		char esc[7] = {'\\', 0};
		switch (c) {
		case '"': esc[1] = '"'; break;
		case '\\': esc[1] = '\\'; break;
		case '\n': esc[1] = 'n'; break;
		case '\r': esc[1] = 'r'; break;
		case '\t': esc[1] = 't'; break;
		case '\b': esc[1] = 'b'; break;
		case '\f': esc[1] = 'f'; break;
		default:
			memcpy(esc + 1, "u00", 3);
			esc[4] = hex[c >> 4];
			esc[5] = hex[c & 15];
		}
		conv_adds(L, out, esc);
	}
	conv_add(L, out, s + start, n - start);
	conv_add(L, out, "\"", 1);
}

static void json_value(lua_State *L, int idx, struct buf *out, int depth);

struct key {
	const char *s;
	size_t n;
	int slot;       /* index in the keys table */
};

static int key_cmp(const void *a, const void *b)
{
	const struct key *x = a, *y = b;
	size_t n = x->n < y->n ? x->n : y->n;
	int c = memcmp(x->s, y->s, n);
	return c ? c : (x->n > y->n) - (x->n < y->n);
}

/* An object with sorted keys: keys go to a table at `ks` (to anchor their
 * text forms), then sorted in a userdata array. */
static void enc_object(lua_State *L, int t, lua_Integer count,
			struct buf *out, int depth)
{
	if (count > (lua_Integer)(SIZE_MAX / sizeof(struct key) / 2))
		luaL_error(L, "table too large");
	struct key *keys = lua_newuserdatauv(L, (size_t)count * sizeof(*keys), 0);
	lua_createtable(L, (int)count, 0);        /* original keys */
	int ks = lua_gettop(L);
	lua_createtable(L, (int)count, 0);        /* their text */
	int ts = ks + 1;
	int i = 0;
	lua_pushnil(L);
	while (lua_next(L, t)) {
		lua_pop(L, 1);
		int kt = lua_type(L, -1);
		if (kt != LUA_TSTRING && kt != LUA_TNUMBER)
			luaL_error(L, "cannot convert a table with %s keys to JSON",
				   lua_typename(L, kt));
		i++;
		lua_pushvalue(L, -1);
		lua_rawseti(L, ks, i);
		if (kt == LUA_TNUMBER) {
			char tmp[64];
			size_t n = number_text(L, -1, tmp);
			lua_pushlstring(L, tmp, n);
		} else {
			lua_pushvalue(L, -1);
		}
		lua_rawseti(L, ts, i);
	}
	for (int k = 1; k <= i; k++) {
		lua_rawgeti(L, ts, k);
		keys[k - 1].s = lua_tolstring(L, -1, &keys[k - 1].n);
		keys[k - 1].slot = k;
		lua_pop(L, 1);   /* still anchored in ts */
	}
	uint64_t log = 1;
	while (((uint64_t)1 << log) < (uint64_t)i)
		log++;
	expr_charge(L, "json", (uint64_t)i * log);
	qsort(keys, (size_t)i, sizeof(*keys), key_cmp);
	conv_add(L, out, "{", 1);
	for (int k = 0; k < i; k++) {
		if (k)
			conv_add(L, out, ",", 1);
		enc_string(L, keys[k].s, keys[k].n, out);
		conv_add(L, out, ":", 1);
		lua_rawgeti(L, ks, keys[k].slot);
		lua_rawget(L, t);
		json_value(L, -1, out, depth + 1);
		lua_pop(L, 1);
	}
	conv_add(L, out, "}", 1);
	lua_pop(L, 3);
}

static void json_table(lua_State *L, int idx, struct buf *out, int depth)
{
	conv_check_depth(L, depth);
	idx = lua_absindex(L, idx);
	int kind = lz_kind_of(L, idx);
	int t = idx;
	if (lz_materialize(L, idx))
		t = lua_gettop(L);
	lua_Integer count = 0, max = 0;
	bool seq = true;
	lua_pushnil(L);
	while (lua_next(L, t)) {
		lua_pop(L, 1);
		if ((++count & 63) == 0)
			expr_charge(L, "json", 64);
		if (seq && lua_isinteger(L, -1) && lua_tointeger(L, -1) >= 1) {
			lua_Integer k = lua_tointeger(L, -1);
			if (k > max)
				max = k;
		} else {
			seq = false;
		}
	}
	if (count == 0) {
		conv_adds(L, out, kind == LZ_ARRAY ? "[]" : "{}");
	} else if (seq && max == count) {
		conv_add(L, out, "[", 1);
		for (lua_Integer i = 1; i <= count; i++) {
			if (i > 1)
				conv_add(L, out, ",", 1);
			lua_rawgeti(L, t, i);
			json_value(L, -1, out, depth + 1);
			lua_pop(L, 1);
		}
		conv_add(L, out, "]", 1);
	} else {
		enc_object(L, t, count, out, depth);
	}
	if (t != idx)
		lua_pop(L, 1);
}

static void json_value(lua_State *L, int idx, struct buf *out, int depth)
{
	size_t n;
	const char *s;
	expr_charge(L, "json", 8);     /* a value: a call, a number's snprintf */
	switch (lua_type(L, idx)) {
	case LUA_TNIL:
		conv_adds(L, out, "null");
		return;
	case LUA_TBOOLEAN:
		conv_adds(L, out, lua_toboolean(L, idx) ? "true" : "false");
		return;
	case LUA_TNUMBER:
		if (!lua_isinteger(L, idx) && !isfinite(lua_tonumber(L, idx)))
			conv_adds(L, out, "null");
		else
			conv_number(L, idx, out);
		return;
	case LUA_TSTRING:
		s = lua_tolstring(L, idx, &n);
		enc_string(L, s, n, out);
		return;
	case LUA_TTABLE:
		json_table(L, idx, out, depth);
		return;
	}
	luaL_error(L, "cannot convert a %s to JSON", luaL_typename(L, idx));
}

void conv_to_json(lua_State *L, int idx, struct buf *out)
{
	json_value(L, lua_absindex(L, idx), out, 0);
}

void conv_to_text(lua_State *L, int idx, struct buf *out)
{
	size_t n;
	const char *s;
	idx = lua_absindex(L, idx);
	switch (lua_type(L, idx)) {
	case LUA_TNIL:
		return;
	case LUA_TBOOLEAN:
		conv_adds(L, out, lua_toboolean(L, idx) ? "true" : "false");
		return;
	case LUA_TNUMBER:
		conv_number(L, idx, out);
		return;
	case LUA_TSTRING:
		s = lua_tolstring(L, idx, &n);
		conv_add(L, out, s, n);
		return;
	case LUA_TTABLE:
		conv_to_json(L, idx, out);
		return;
	}
	luaL_error(L, "cannot convert a %s to text", luaL_typename(L, idx));
}
