/* convert.c: values between Lua, text and JSON, and the helper functions
 * json, fromjson, contains, startswith and len.
 *
 * Text (docs/workflow.md): strings as they are, integral numbers without a
 * fraction, true/false, nil as nothing, tables as compact JSON with sorted
 * keys. JSON text is parsed straight into Lua values, so fromjson's memory
 * is charged to the evaluation's limit. Every function here may raise a Lua
 * error and must run in protected mode; recursion is capped (MAX_DEPTH) so a
 * cycle or a deep document is an error, not a C stack overflow. Work that
 * grows with the data (a value converted, bytes scanned or parsed, keys
 * sorted) is charged to the evaluation's budget (expr_charge).
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "expr/internal.h"
#include "model/model.h"

#define MAX_DEPTH 100

static void add(lua_State *L, struct buf *out, const void *p, size_t n)
{
	int r = buf_add(out, p, n);
	if (r < 0)
		expr_raise_buf(L, r);
}

static void adds(lua_State *L, struct buf *out, const char *s)
{
	add(L, out, s, strlen(s));
}

static void set_array_mt(lua_State *L)
{
	lua_rawgeti(L, LUA_REGISTRYINDEX, expr_engine_of(L)->ref_mt[LZ_ARRAY]);
	lua_setmetatable(L, -2);
}

static void check_depth(lua_State *L, int depth)
{
	if (depth > MAX_DEPTH)
		luaL_error(L, "value nested more than %d levels deep (or it "
			   "contains itself)", MAX_DEPTH);
	luaL_checkstack(L, 8, "value nested too deeply");
}

/* ---- Lua values from YAML and jansson ------------------------------------ */

void conv_push_dr_value(lua_State *L, const struct dr_value *v, int depth)
{
	check_depth(L, depth);
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
		set_array_mt(L);
		return;
	}
	lua_pushnil(L);
}

void conv_push_json(lua_State *L, const json_t *j, int depth)
{
	check_depth(L, depth);
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
		set_array_mt(L);
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

/* ---- JSON text to Lua ---------------------------------------------------- */

struct jp {
	lua_State *L;
	const char *s;
	size_t len, pos;
	const char *err;     /* set on the first error */
};

static bool jp_fail(struct jp *p, const char *what)
{
	if (!p->err)
		p->err = what;
	return false;
}

static void jp_space(struct jp *p)
{
	while (p->pos < p->len && (p->s[p->pos] == ' ' || p->s[p->pos] == '\t'
				   || p->s[p->pos] == '\n' || p->s[p->pos] == '\r'))
		p->pos++;
}

static bool jp_lit(struct jp *p, const char *w)
{
	size_t n = strlen(w);
	if (p->len - p->pos < n || memcmp(p->s + p->pos, w, n))
		return jp_fail(p, "invalid literal");
	p->pos += n;
	return true;
}

static int hex4(const char *s)
{
	int v = 0;
	for (int i = 0; i < 4; i++) {
		char c = s[i];
		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= c - '0';
		else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f')
			v |= (c | 0x20) - 'a' + 10;
		else
			return -1;
	}
	return v;
}

static void add_utf8(luaL_Buffer *b, unsigned long cp)
{
	char u[4];
	int n;
	if (cp < 0x80) {
		u[0] = (char)cp;
		n = 1;
	} else if (cp < 0x800) {
		u[0] = (char)(0xc0 | (cp >> 6));
		u[1] = (char)(0x80 | (cp & 0x3f));
		n = 2;
	} else if (cp < 0x10000) {
		u[0] = (char)(0xe0 | (cp >> 12));
		u[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		u[2] = (char)(0x80 | (cp & 0x3f));
		n = 3;
	} else {
		u[0] = (char)(0xf0 | (cp >> 18));
		u[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
		u[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
		u[3] = (char)(0x80 | (cp & 0x3f));
		n = 4;
	}
	luaL_addlstring(b, u, (size_t)n);
}

/* A \uXXXX escape at p->pos (past the backslash and 'u'). */
static bool jp_unicode(struct jp *p, luaL_Buffer *b)
{
	if (p->len - p->pos < 4)
		return jp_fail(p, "bad \\u escape");
	long cp = hex4(p->s + p->pos);
	if (cp < 0)
		return jp_fail(p, "bad \\u escape");
	p->pos += 4;
	if (cp >= 0xd800 && cp < 0xdc00 && p->len - p->pos >= 6
	    && p->s[p->pos] == '\\' && p->s[p->pos + 1] == 'u') {
		long lo = hex4(p->s + p->pos + 2);
		if (lo >= 0xdc00 && lo < 0xe000) {
			cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
			p->pos += 6;
		}
	}
	if (cp >= 0xd800 && cp < 0xe000)
		cp = 0xfffd;    /* a lone surrogate */
	add_utf8(b, (unsigned long)cp);
	return true;
}

static bool jp_string(struct jp *p)
{
	luaL_Buffer b;
	luaL_buffinit(p->L, &b);
	p->pos++;
	for (;;) {
		size_t start = p->pos;
		while (p->pos < p->len && p->s[p->pos] != '"' && p->s[p->pos] != '\\'
		       && (unsigned char)p->s[p->pos] >= 0x20)
			p->pos++;
		luaL_addlstring(&b, p->s + start, p->pos - start);
		if (p->pos >= p->len)
			return jp_fail(p, "unterminated string");
		char c = p->s[p->pos++];
		if (c == '"')
			break;
		if (c != '\\')
			return jp_fail(p, "control character in string");
		if (p->pos >= p->len)
			return jp_fail(p, "unterminated string");
		c = p->s[p->pos++];
		switch (c) {
		case '"': case '\\': case '/': luaL_addchar(&b, c); break;
		case 'b': luaL_addchar(&b, '\b'); break;
		case 'f': luaL_addchar(&b, '\f'); break;
		case 'n': luaL_addchar(&b, '\n'); break;
		case 'r': luaL_addchar(&b, '\r'); break;
		case 't': luaL_addchar(&b, '\t'); break;
		case 'u':
			if (!jp_unicode(p, &b))
				return false;
			break;
		default:
			return jp_fail(p, "bad escape in string");
		}
	}
	luaL_pushresult(&b);
	return true;
}

static size_t digits(struct jp *p)
{
	size_t n = 0;
	while (p->pos < p->len && p->s[p->pos] >= '0' && p->s[p->pos] <= '9')
		p->pos++, n++;
	return n;
}

static bool jp_number(struct jp *p)
{
	size_t start = p->pos;
	bool integral = true;
	if (p->s[p->pos] == '-')
		p->pos++;
	if (p->pos < p->len && p->s[p->pos] == '0')
		p->pos++;
	else if (!digits(p))
		return jp_fail(p, "invalid number");
	if (p->pos < p->len && p->s[p->pos] == '.') {
		p->pos++;
		integral = false;
		if (!digits(p))
			return jp_fail(p, "invalid number");
	}
	if (p->pos < p->len && (p->s[p->pos] == 'e' || p->s[p->pos] == 'E')) {
		p->pos++;
		integral = false;
		if (p->pos < p->len && (p->s[p->pos] == '+' || p->s[p->pos] == '-'))
			p->pos++;
		if (!digits(p))
			return jp_fail(p, "invalid number");
	}
	char num[400];
	size_t n = p->pos - start;
	if (n >= sizeof(num))
		return jp_fail(p, "number too long");
	memcpy(num, p->s + start, n);
	num[n] = '\0';
	if (integral) {
		errno = 0;
		char *end;
		long long v = strtoll(num, &end, 10);
		if (!errno) {
			lua_pushinteger(p->L, (lua_Integer)v);
			return true;
		}
	}
	lua_pushnumber(p->L, strtod(num, NULL));
	return true;
}

static bool jp_value(struct jp *p, int depth);

static bool jp_array(struct jp *p, int depth)
{
	lua_State *L = p->L;
	lua_Integer i = 0;
	lua_newtable(L);
	set_array_mt(L);
	p->pos++;
	jp_space(p);
	if (p->pos < p->len && p->s[p->pos] == ']') {
		p->pos++;
		return true;
	}
	for (;;) {
		if (!jp_value(p, depth + 1))
			return false;
		i++;
		if (lua_isnil(L, -1))
			lua_pop(L, 1);
		else
			lua_rawseti(L, -2, i);
		jp_space(p);
		if (p->pos >= p->len)
			return jp_fail(p, "unterminated array");
		char c = p->s[p->pos++];
		if (c == ']')
			return true;
		if (c != ',')
			return jp_fail(p, "expected ',' or ']'");
	}
}

static bool jp_object(struct jp *p, int depth)
{
	lua_State *L = p->L;
	lua_newtable(L);
	p->pos++;
	jp_space(p);
	if (p->pos < p->len && p->s[p->pos] == '}') {
		p->pos++;
		return true;
	}
	for (;;) {
		jp_space(p);
		if (p->pos >= p->len || p->s[p->pos] != '"')
			return jp_fail(p, "expected a string key");
		if (!jp_string(p))
			return false;
		jp_space(p);
		if (p->pos >= p->len || p->s[p->pos] != ':')
			return jp_fail(p, "expected ':'");
		p->pos++;
		if (!jp_value(p, depth + 1))
			return false;
		if (lua_isnil(L, -1))
			lua_pop(L, 2);
		else
			lua_rawset(L, -3);
		jp_space(p);
		if (p->pos >= p->len)
			return jp_fail(p, "unterminated object");
		char c = p->s[p->pos++];
		if (c == '}')
			return true;
		if (c != ',')
			return jp_fail(p, "expected ',' or '}'");
	}
}

static bool jp_value(struct jp *p, int depth)
{
	if (depth > MAX_DEPTH)
		return jp_fail(p, "nested too deeply");
	luaL_checkstack(p->L, 4, "JSON nested too deeply");
	jp_space(p);
	if (p->pos >= p->len)
		return jp_fail(p, "unexpected end");
	char c = p->s[p->pos];
	switch (c) {
	case '{': return jp_object(p, depth);
	case '[': return jp_array(p, depth);
	case '"': return jp_string(p);
	case 't':
		if (!jp_lit(p, "true"))
			return false;
		lua_pushboolean(p->L, 1);
		return true;
	case 'f':
		if (!jp_lit(p, "false"))
			return false;
		lua_pushboolean(p->L, 0);
		return true;
	case 'n':
		if (!jp_lit(p, "null"))
			return false;
		lua_pushnil(p->L);
		return true;
	}
	if (c == '-' || (c >= '0' && c <= '9'))
		return jp_number(p);
	return jp_fail(p, "unexpected character");
}

int conv_parse_json(lua_State *L, const char *what, const char *s, size_t len)
{
	struct jp p = {L, s, len, 0, NULL};
	expr_charge(L, what, len / 4);
	int top = lua_gettop(L);
	if (jp_value(&p, 0)) {
		jp_space(&p);
		if (p.pos == p.len)
			return 0;
		jp_fail(&p, "unexpected text after the value");
	}
	lua_settop(L, top);
	lua_pushfstring(L, "invalid JSON at byte %d: %s", (int)p.pos, p.err);
	return -1;
}

/* ---- Lua values to text and JSON ----------------------------------------- */

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
	add(L, out, tmp, n);
}

static void enc_string(lua_State *L, const char *s, size_t n,
			struct buf *out)
{
	static const char hex[] = "0123456789abcdef";
	if (n >= 64)
		expr_charge(L, "json", n / 8);
	add(L, out, "\"", 1);
	size_t start = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c >= 0x20 && c != '"' && c != '\\')
			continue;
		add(L, out, s + start, i - start);
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
		adds(L, out, esc);
	}
	add(L, out, s + start, n - start);
	add(L, out, "\"", 1);
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
	add(L, out, "{", 1);
	for (int k = 0; k < i; k++) {
		if (k)
			add(L, out, ",", 1);
		enc_string(L, keys[k].s, keys[k].n, out);
		add(L, out, ":", 1);
		lua_rawgeti(L, ks, keys[k].slot);
		lua_rawget(L, t);
		json_value(L, -1, out, depth + 1);
		lua_pop(L, 1);
	}
	add(L, out, "}", 1);
	lua_pop(L, 3);
}

static void json_table(lua_State *L, int idx, struct buf *out, int depth)
{
	check_depth(L, depth);
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
		adds(L, out, kind == LZ_ARRAY ? "[]" : "{}");
	} else if (seq && max == count) {
		add(L, out, "[", 1);
		for (lua_Integer i = 1; i <= count; i++) {
			if (i > 1)
				add(L, out, ",", 1);
			lua_rawgeti(L, t, i);
			json_value(L, -1, out, depth + 1);
			lua_pop(L, 1);
		}
		add(L, out, "]", 1);
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
		adds(L, out, "null");
		return;
	case LUA_TBOOLEAN:
		adds(L, out, lua_toboolean(L, idx) ? "true" : "false");
		return;
	case LUA_TNUMBER:
		if (!lua_isinteger(L, idx) && !isfinite(lua_tonumber(L, idx)))
			adds(L, out, "null");
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
		adds(L, out, lua_toboolean(L, idx) ? "true" : "false");
		return;
	case LUA_TNUMBER:
		conv_number(L, idx, out);
		return;
	case LUA_TSTRING:
		s = lua_tolstring(L, idx, &n);
		add(L, out, s, n);
		return;
	case LUA_TTABLE:
		conv_to_json(L, idx, out);
		return;
	}
	luaL_error(L, "cannot convert a %s to text", luaL_typename(L, idx));
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
