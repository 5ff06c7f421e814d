/* match.c: string.find, match, gmatch and gsub with Lua 5.4 pattern
 * semantics, written anew so that every step of the matcher is charged to
 * the evaluation's budget.
 *
 * Why: Lua's own matcher runs inside one C call, where the instruction
 * hook never fires, and backtracking patterns such as ("a"):rep(1e5) with
 * ("a*"):rep(10) .. "b", or (".-=.-;") over a hostile task output, take
 * hours. Here each attempt, expansion and backtrack costs one step from
 * engine->match_budget; when it is spent the evaluation stops with the same
 * "took too long" error as a runaway loop. Recursion is capped (MAX_DEPTH)
 * as in Lua ("pattern too complex").
 */
#include <ctype.h>
#include <string.h>

#include "expr/internal.h"

#define MAX_CAPTURES 32
#define MAX_DEPTH 200
#define CAP_UNFINISHED (-1)
#define CAP_POSITION (-2)
#define SPECIALS "^$*+?.([%-"

struct ms {
	const char *src_init, *src_end;
	const char *p_end;
	lua_State *L;
	struct expr_engine *e;
	const char *what;      /* "string.find", ... for the budget error */
	int depth;
	int level;
	struct {
		const char *init;
		ptrdiff_t len;
	} cap[MAX_CAPTURES];
};

static void out_of_steps(struct ms *ms)
{
	if (!ms->e->budget_hit)
		ms->e->why = ms->what;
	expr_raise_budget(ms->L);
}

static void step(struct ms *ms)
{
	if (ms->e->match_budget == 0)
		out_of_steps(ms);
	if ((--ms->e->match_budget & 0xffff) == 0)
		expr_check_deadline(ms->L, ms->what);
}

/* Charges n steps at once: work inside one step that grows with the
 * pattern or the subject (a long [set], a back-reference, a replacement
 * string), which would otherwise cost one step however long it is. */
static void steps(struct ms *ms, size_t n)
{
	if (n >= ms->e->match_budget)
		out_of_steps(ms);
	ms->e->match_budget -= n;
	if (n >= 0x1000)
		expr_check_deadline(ms->L, ms->what);
}

/* One step per SCAN bytes looked at, when there are many. */
#define SCAN 4
static void scanned(struct ms *ms, size_t bytes)
{
	if (bytes >= 4 * SCAN)
		steps(ms, bytes / SCAN);
}

static const char *match(struct ms *ms, const char *s, const char *p);

static const char *class_end(struct ms *ms, const char *p)
{
	char c = *p++;
	if (c == '%') {
		if (p >= ms->p_end)
			luaL_error(ms->L, "malformed pattern (ends with '%%')");
		return p + 1;
	}
	if (c == '[') {
		const char *start = p;
		if (*p == '^')
			p++;
		do {   /* the first character, even ']', belongs to the set */
			if (p >= ms->p_end)
				luaL_error(ms->L, "malformed pattern (missing ']')");
			c = *p++;
			if (c == '%' && p < ms->p_end)
				p++;
		} while (*p != ']');
		scanned(ms, (size_t)(p - start));
		return p + 1;
	}
	return p;
}

static bool match_class(int c, int cl)
{
	bool r;
	switch (tolower(cl)) {
	case 'a': r = isalpha(c); break;
	case 'c': r = iscntrl(c); break;
	case 'd': r = isdigit(c); break;
	case 'g': r = isgraph(c); break;
	case 'l': r = islower(c); break;
	case 'p': r = ispunct(c); break;
	case 's': r = isspace(c); break;
	case 'u': r = isupper(c); break;
	case 'w': r = isalnum(c); break;
	case 'x': r = isxdigit(c); break;
	default: return cl == c;
	}
	return isupper(cl) ? !r : r;
}

/* p at '[', ec at the closing ']'. */
static bool match_bracket(int c, const char *p, const char *ec)
{
	bool yes = true;
	p++;
	if (*p == '^') {
		yes = false;
		p++;
	}
	while (p < ec) {
		if (*p == '%') {
			p++;
			if (match_class(c, (unsigned char)*p))
				return yes;
			p++;
		} else if (p[1] == '-' && p + 2 < ec) {
			if ((unsigned char)p[0] <= c && c <= (unsigned char)p[2])
				return yes;
			p += 3;
		} else {
			if ((unsigned char)*p == c)
				return yes;
			p++;
		}
	}
	return !yes;
}

static bool single_match(struct ms *ms, const char *s, const char *p,
			 const char *ep)
{
	if (s >= ms->src_end)
		return false;
	int c = (unsigned char)*s;
	switch (*p) {
	case '.': return true;
	case '%': return match_class(c, (unsigned char)p[1]);
	case '[':
		scanned(ms, (size_t)(ep - p));
		return match_bracket(c, p, ep - 1);
	default: return (unsigned char)*p == c;
	}
}

static const char *match_balance(struct ms *ms, const char *s, const char *p)
{
	if (p + 1 >= ms->p_end)
		luaL_error(ms->L, "malformed pattern (missing arguments to '%%b')");
	if (s >= ms->src_end || *s != *p)
		return NULL;
	char open = p[0], close = p[1];
	int depth = 1;
	while (++s < ms->src_end) {
		step(ms);
		if (*s == close) {
			if (--depth == 0)
				return s + 1;
		} else if (*s == open) {
			depth++;
		}
	}
	return NULL;
}

static const char *max_expand(struct ms *ms, const char *s, const char *p,
			      const char *ep)
{
	ptrdiff_t i = 0;
	while (single_match(ms, s + i, p, ep)) {
		step(ms);
		i++;
	}
	for (; i >= 0; i--) {
		step(ms);
		const char *r = match(ms, s + i, ep + 1);
		if (r)
			return r;
	}
	return NULL;
}

static const char *min_expand(struct ms *ms, const char *s, const char *p,
			      const char *ep)
{
	for (;;) {
		step(ms);
		const char *r = match(ms, s, ep + 1);
		if (r)
			return r;
		if (!single_match(ms, s, p, ep))
			return NULL;
		s++;
	}
}

static const char *start_capture(struct ms *ms, const char *s, const char *p,
				 ptrdiff_t what)
{
	if (ms->level >= MAX_CAPTURES)
		luaL_error(ms->L, "too many captures");
	ms->cap[ms->level].init = s;
	ms->cap[ms->level].len = what;
	ms->level++;
	const char *r = match(ms, s, p);
	if (!r)
		ms->level--;
	return r;
}

static const char *end_capture(struct ms *ms, const char *s, const char *p)
{
	int l = ms->level - 1;
	while (l >= 0 && ms->cap[l].len != CAP_UNFINISHED)
		l--;
	if (l < 0)
		luaL_error(ms->L, "invalid pattern capture");
	ms->cap[l].len = s - ms->cap[l].init;
	const char *r = match(ms, s, p);
	if (!r)
		ms->cap[l].len = CAP_UNFINISHED;
	return r;
}

static int check_capture(struct ms *ms, int c)
{
	int l = c - '1';
	if (l < 0 || l >= ms->level || ms->cap[l].len == CAP_UNFINISHED)
		luaL_error(ms->L, "invalid capture index %%%d", l + 1);
	return l;
}

static const char *match_capture(struct ms *ms, const char *s, int c)
{
	int l = check_capture(ms, c);
	size_t len = (size_t)ms->cap[l].len;
	if ((size_t)(ms->src_end - s) >= len)
		scanned(ms, len / 4);      /* memcmp: fast, but not free */
	if ((size_t)(ms->src_end - s) >= len && !memcmp(ms->cap[l].init, s, len))
		return s + len;
	return NULL;
}

/* The default case: a single-character class, maybe with a quantifier. */
static const char *match_item(struct ms *ms, const char *s, const char *p,
			      const char **next_p)
{
	const char *ep = class_end(ms, p);
	*next_p = NULL;
	if (!single_match(ms, s, p, ep)) {
		if (*ep == '*' || *ep == '?' || *ep == '-') {
			*next_p = ep + 1;
			return s;
		}
		return NULL;
	}
	switch (*ep) {
	case '?': {
		const char *r = match(ms, s + 1, ep + 1);
		if (r) {
			*next_p = NULL;
			return r;
		}
		*next_p = ep + 1;
		return s;
	}
	case '+':
		*next_p = NULL;
		return max_expand(ms, s + 1, p, ep);
	case '*':
		*next_p = NULL;
		return max_expand(ms, s, p, ep);
	case '-':
		*next_p = NULL;
		return min_expand(ms, s, p, ep);
	}
	*next_p = ep;
	return s + 1;
}

/* Matches pattern p at s; returns the end of the match or NULL. When
 * match_item sets *next_p the loop goes on at (s, *next_p); when it sets
 * NULL, its return value is the final answer. */
static const char *match(struct ms *ms, const char *s, const char *p)
{
	if (ms->depth-- == 0)
		luaL_error(ms->L, "pattern too complex");
	while (s) {
		step(ms);
		if (p >= ms->p_end)
			break;
		const char *np;
		if (*p == '(') {
			s = p + 1 < ms->p_end && p[1] == ')'
			    ? start_capture(ms, s, p + 2, CAP_POSITION)
			    : start_capture(ms, s, p + 1, CAP_UNFINISHED);
			break;
		}
		if (*p == ')') {
			s = end_capture(ms, s, p + 1);
			break;
		}
		if (*p == '$' && p + 1 == ms->p_end) {
			s = s == ms->src_end ? s : NULL;
			break;
		}
		if (*p == '%' && p[1] == 'b') {
			s = match_balance(ms, s, p + 2);
			p += 4;
			continue;
		}
		if (*p == '%' && p[1] == 'f') {
			p += 2;
			if (*p != '[')
				luaL_error(ms->L, "missing '[' after '%%f' in pattern");
			const char *ep = class_end(ms, p);
			int prev = s == ms->src_init ? 0 : (unsigned char)s[-1];
			int cur = s < ms->src_end ? (unsigned char)*s : 0;
			scanned(ms, 2 * (size_t)(ep - p));
			if (match_bracket(prev, p, ep - 1)
			    || !match_bracket(cur, p, ep - 1))
				s = NULL;
			p = ep;
			continue;
		}
		if (*p == '%' && p[1] >= '0' && p[1] <= '9') {
			s = match_capture(ms, s, (unsigned char)p[1]);
			p += 2;
			continue;
		}
		s = match_item(ms, s, p, &np);
		if (!np)
			break;
		p = np;
	}
	ms->depth++;
	return s;
}

/* ---- captures ------------------------------------------------------------ */

static void push_capture(struct ms *ms, int i, const char *s, const char *e)
{
	if (i >= ms->level) {
		if (i != 0)
			luaL_error(ms->L, "invalid capture index %%%d", i + 1);
		lua_pushlstring(ms->L, s, (size_t)(e - s));
		return;
	}
	ptrdiff_t l = ms->cap[i].len;
	if (l == CAP_UNFINISHED)
		luaL_error(ms->L, "unfinished capture");
	if (l == CAP_POSITION)
		lua_pushinteger(ms->L, ms->cap[i].init - ms->src_init + 1);
	else
		lua_pushlstring(ms->L, ms->cap[i].init, (size_t)l);
}

/* Pushes the captures (or the whole match when there are none and s is
 * set); returns how many. */
static int push_captures(struct ms *ms, const char *s, const char *e)
{
	int n = ms->level == 0 && s ? 1 : ms->level;
	luaL_checkstack(ms->L, n, "too many captures");
	for (int i = 0; i < n; i++)
		push_capture(ms, i, s, e);
	return n;
}

static void prepare(struct ms *ms, lua_State *L, const char *what,
		    const char *s, size_t ls, const char *p, size_t lp)
{
	ms->L = L;
	ms->e = expr_engine_of(L);
	ms->what = what;
	ms->src_init = s;
	ms->src_end = s + ls;
	ms->p_end = p + lp;
}

static void restart(struct ms *ms)
{
	ms->level = 0;
	ms->depth = MAX_DEPTH;
}

/* ---- the library functions ----------------------------------------------- */

static bool no_specials(const char *p, size_t lp)
{
	for (const char *c = SPECIALS; *c; c++)
		if (memchr(p, *c, lp))
			return false;
	return true;
}

static int find_aux(lua_State *L, bool find)
{
	size_t ls, lp;
	const char *s = luaL_checklstring(L, 1, &ls);
	const char *p = luaL_checklstring(L, 2, &lp);
	size_t init = expr_str_start(luaL_optinteger(L, 3, 1), ls) - 1;
	if (init > ls) {
		lua_pushnil(L);
		return 1;
	}
	struct ms ms;
	prepare(&ms, L, find ? "string.find" : "string.match", s, ls, p, lp);
	scanned(&ms, lp);
	if (find && (lua_toboolean(L, 4) || no_specials(p, lp))) {
		const char *hit = lp ? memmem(s + init, ls - init, p, lp) : s + init;
		scanned(&ms, (size_t)((hit ? hit : s + ls) - (s + init)) / 4);
		if (!hit) {
			lua_pushnil(L);
			return 1;
		}
		lua_pushinteger(L, hit - s + 1);
		lua_pushinteger(L, (lua_Integer)(hit - s + (ptrdiff_t)lp));
		return 2;
	}
	bool anchor = lp && *p == '^';
	if (anchor)
		p++, lp--;
	prepare(&ms, L, find ? "string.find" : "string.match", s, ls, p, lp);
	const char *s1 = s + init;
	do {
		restart(&ms);
		step(&ms);
		const char *e = match(&ms, s1, p);
		if (e) {
			if (!find)
				return push_captures(&ms, s1, e);
			lua_pushinteger(L, s1 - s + 1);
			lua_pushinteger(L, e - s);
			return push_captures(&ms, NULL, NULL) + 2;
		}
	} while (s1++ < ms.src_end && !anchor);
	lua_pushnil(L);
	return 1;
}

static int str_find(lua_State *L)
{
	return find_aux(L, true);
}

static int str_match(lua_State *L)
{
	return find_aux(L, false);
}

struct gmatch_state {
	size_t pos;          /* where the next search starts */
	size_t last;         /* end of the last match, or SIZE_MAX */
};

static int gmatch_next(lua_State *L)
{
	size_t ls, lp;
	const char *s = lua_tolstring(L, lua_upvalueindex(1), &ls);
	const char *p = lua_tolstring(L, lua_upvalueindex(2), &lp);
	struct gmatch_state *gm = lua_touserdata(L, lua_upvalueindex(3));
	struct ms ms;
	prepare(&ms, L, "string.gmatch", s, ls, p, lp);
	for (size_t i = gm->pos; i <= ls; i++) {
		restart(&ms);
		step(&ms);
		const char *e = match(&ms, s + i, p);
		if (e && (size_t)(e - s) != gm->last) {
			gm->pos = gm->last = (size_t)(e - s);
			return push_captures(&ms, s + i, e);
		}
	}
	gm->pos = ls + 1;
	return 0;
}

static int str_gmatch(lua_State *L)
{
	size_t ls;
	luaL_checklstring(L, 1, &ls);
	luaL_checkstring(L, 2);
	size_t init = expr_str_start(luaL_optinteger(L, 3, 1), ls) - 1;
	lua_settop(L, 2);
	struct gmatch_state *gm = lua_newuserdatauv(L, sizeof(*gm), 0);
	gm->pos = init > ls ? ls + 1 : init;
	gm->last = SIZE_MAX;
	lua_pushcclosure(L, gmatch_next, 3);
	return 1;
}

static void add_template(struct ms *ms, luaL_Buffer *b, const char *s,
			 const char *e)
{
	size_t l;
	lua_State *L = ms->L;
	const char *r = lua_tolstring(L, 3, &l);
	const char *end = r + l;
	scanned(ms, l);
	for (const char *q; (q = memchr(r, '%', (size_t)(end - r))); r = q + 2) {
		steps(ms, 16);     /* a capture pushed, converted and added */
		luaL_addlstring(b, r, (size_t)(q - r));
		if (q + 1 >= end || !(q[1] == '%' || (q[1] >= '0' && q[1] <= '9')))
			luaL_error(L, "invalid use of '%%' in replacement string");
		if (q[1] == '%') {
			luaL_addchar(b, '%');
			continue;
		}
		if (q[1] == '0')
			lua_pushlstring(L, s, (size_t)(e - s));
		else
			push_capture(ms, q[1] - '1', s, e);
		luaL_tolstring(L, -1, NULL);
		lua_remove(L, -2);
		luaL_addvalue(b);
	}
	luaL_addlstring(b, r, (size_t)(end - r));
}

static void add_value(struct ms *ms, luaL_Buffer *b, const char *s,
		      const char *e, int tr)
{
	lua_State *L = ms->L;
	if (tr == LUA_TFUNCTION) {
		lua_pushvalue(L, 3);
		int n = push_captures(ms, s, e);
		lua_call(L, n, 1);
	} else if (tr == LUA_TTABLE) {
		push_capture(ms, 0, s, e);
		lua_gettable(L, 3);
	} else {
		add_template(ms, b, s, e);
		return;
	}
	if (!lua_toboolean(L, -1)) {
		lua_pop(L, 1);
		luaL_addlstring(b, s, (size_t)(e - s));
	} else if (!lua_isstring(L, -1)) {
		luaL_error(L, "invalid replacement value (a %s)",
			   luaL_typename(L, -1));
	} else {
		luaL_addvalue(b);
	}
}

static int str_gsub(lua_State *L)
{
	size_t ls, lp;
	const char *src = luaL_checklstring(L, 1, &ls);
	const char *p = luaL_checklstring(L, 2, &lp);
	int tr = lua_type(L, 3);
	lua_Integer max = luaL_optinteger(L, 4, (lua_Integer)ls + 1);
	luaL_argexpected(L, tr == LUA_TNUMBER || tr == LUA_TSTRING
			 || tr == LUA_TFUNCTION || tr == LUA_TTABLE, 3,
			 "string/function/table");
	const char *last = NULL;
	lua_Integer n = 0;
	bool anchor = lp && *p == '^';
	if (anchor)
		p++, lp--;
	struct ms ms;
	luaL_Buffer b;
	luaL_buffinit(L, &b);
	prepare(&ms, L, "string.gsub", src, ls, p, lp);
	while (n < max) {
		restart(&ms);
		step(&ms);
		const char *e = match(&ms, src, p);
		if (e && e != last) {
			n++;
			add_value(&ms, &b, src, e, tr);
			src = last = e;
		} else if (src < ms.src_end) {
			luaL_addchar(&b, *src++);
		} else {
			break;
		}
		if (anchor)
			break;
	}
	luaL_addlstring(&b, src, (size_t)(ms.src_end - src));
	luaL_pushresult(&b);
	lua_pushinteger(L, n);
	return 2;
}

void match_register(lua_State *L, int idx)
{
	static const luaL_Reg fns[] = {
		{"find", str_find}, {"match", str_match},
		{"gmatch", str_gmatch}, {"gsub", str_gsub},
	};
	idx = lua_absindex(L, idx);
	for (size_t i = 0; i < sizeof(fns) / sizeof(fns[0]); i++) {
		lua_pushcfunction(L, fns[i].func);
		lua_setfield(L, idx, fns[i].name);
	}
}
