/* convert_parse.c: JSON text straight into Lua values (fromjson, and a
 * task's output read as `json`); see convert.c for the conversions' rules.
 *
 * A recursive descent over RFC 8259, nesting capped at CONV_MAX_DEPTH.
 * Invariant: the text's size is charged to the evaluation's budget before
 * the parse starts; on an error the stack is left as it was plus one
 * message.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "expr/internal.h"

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
	conv_set_array_mt(L);
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
	if (depth > CONV_MAX_DEPTH)
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
