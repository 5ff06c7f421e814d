/* guard.c: the sandbox's library functions, wrapped so that their work
 * counts against the evaluation's budget.
 *
 * Lua's instruction hook fires between VM instructions, never inside a C
 * function: string.rep("", 1e12) loops in C for hours, and a loop calling
 * s:upper() on a 10 MB string does 10 MB of work per instruction. So every
 * library function an expression can reach is wrapped here (or, for the
 * pattern functions, written in match.c to charge as it goes). A wrapper
 * computes the work its function is about to do from the arguments, before
 * calling it whenever that work is not bounded by what already exists in
 * memory (a repetition count, an index range, a border of a sparse table),
 * and charges it with expr_charge, which stops the evaluation with an error
 * naming the function when the budget or the time is spent. Work that is
 * bounded by memory (scanning a string that exists) may be charged after
 * the call. Bytes allocated are charged by the allocator (expr.c).
 *
 * The audit, for Lua 5.4 (one step is worth about one VM instruction):
 *   string.rep        n repetitions even of "": "" is answered here; else
 *                     n/4 + a step per 8 bytes, unless the result cannot
 *                     fit in memory (then the allocation fails at once)
 *   string.byte       one step per value returned (range checked first)
 *   string.char, utf8.char, table.pack, select, assert
 *                     a step per argument or result
 *   string.upper, lower, reverse, format, pack, packsize, unpack
 *                     a step per 8 bytes scanned (format: its strings, and
 *                     with %q 8 steps per control byte, each escaped with a
 *                     snprintf; pack: also the result's bytes)
 *   string.sub, len   O(1) besides the copy (the allocator charges it)
 *   string.find, match, gmatch, gsub
 *                     match.c charges every step, class scan, back-
 *                     reference compare and replacement
 *   "10" + 1 etc.     the string metatable's arithmetic converts strings:
 *                     a step per 8 bytes of string operands
 *   table.concat, unpack, move, insert, remove
 *                     two steps per element read or moved; the range (or
 *                     #t, which a sparse table can make 2^50) is charged
 *                     before the loop starts
 *   table.sort        2 n log2 n steps before sorting (a comparator written
 *                     in Lua counts its own instructions besides)
 *   utf8.len, codepoint
 *                     a step per 4 bytes of the range (codepoint: per
 *                     byte, a value each), before
 *   utf8.offset, the iterator of utf8.codes
 *                     the bytes they moved over, after (bounded by #s)
 *   math.random, randomseed
 *                     as math.* below; the generator is reseeded before
 *                     the first call of each evaluation (nothing one
 *                     evaluation draws or seeds reaches another)
 *   tonumber, math.*, error's level, and every position argument
 *                     a number given as a string is converted in C: a step
 *                     per 8 bytes of each such string
 *   rawequal          comparing two long strings: a step per 64 bytes
 *   tostring, type, rawlen, next, pairs, ipairs, pcall, error, string.len,
 *   math.type         O(1), or bounded by a table that exists: not wrapped
 *   json, fromjson, contains, startswith, len and the lazy tables (env,
 *   secrets, variables, context, tasks)
 *                     charge in convert.c and scope.c
 * What no wrapper can see: a VM instruction comparing two long strings,
 * or converting one to a number in a `for`, does work bounded by the
 * memory limit; the hook reads the clock every few such instructions.
 */
#include <limits.h>
#include <string.h>

#include "expr/internal.h"

#define SCAN_BYTES 8           /* bytes a per-byte loop handles per step */
#define COMPARE_BYTES 64       /* bytes memcmp handles per step */
#define ELEMENT_STEPS 2        /* one element read and written via the API */

struct guard {
	const char *lib;       /* "string", "table", "utf8", "math", NULL: base,
				* "": the string metatable */
	const char *fn;
	const char *name;      /* for messages: "string.rep" */
	uint32_t numbers;      /* bit i: argument i + 1 is read as a number */
	lua_CFunction wrap;
};

#define ALL_NUMBERS 0xffffffffu

static const struct guard *guard_of(lua_State *L)
{
	return lua_touserdata(L, lua_upvalueindex(2));
}

/* Calls the original function with the arguments as they are. A library
 * function registered without upvalues is called directly, in this frame
 * (its argument errors still name the function as called); one with
 * upvalues (math.random) through lua_call. */
static int call_orig(lua_State *L)
{
	if (!lua_getupvalue(L, lua_upvalueindex(1), 1))
		return lua_tocfunction(L, lua_upvalueindex(1))(L);
	lua_pop(L, 1);
	int n = lua_gettop(L);
	lua_pushvalue(L, lua_upvalueindex(1));
	lua_insert(L, 1);
	lua_call(L, n, LUA_MULTRET);
	return lua_gettop(L);
}

static uint64_t sat_add(uint64_t a, uint64_t b)
{
	return a + b < a ? UINT64_MAX : a + b;
}

static uint64_t sat_mul(uint64_t a, uint64_t b)
{
	return b && a > UINT64_MAX / b ? UINT64_MAX : a * b;
}

static size_t str_len_at(lua_State *L, int i)
{
	return lua_type(L, i) == LUA_TSTRING ? lua_rawlen(L, i) : 0;
}

/* Converting a string to a number scans it. */
static void charge_numbers(lua_State *L, const struct guard *g)
{
	int top = lua_gettop(L);
	uint64_t bytes = 0;
	for (int i = 1; i <= top && i <= 32; i++)
		if (g->numbers & (1u << (i - 1)))
			bytes = sat_add(bytes, str_len_at(L, i));
	for (int i = 33; i <= top && g->numbers == ALL_NUMBERS; i++)
		bytes = sat_add(bytes, str_len_at(L, i));
	if (bytes >= SCAN_BYTES)
		expr_charge(L, g->name, bytes / SCAN_BYTES);
}

static void charge(lua_State *L, uint64_t steps)
{
	if (steps)
		expr_charge(L, guard_of(L)->name, steps);
}

/* ---- generic ------------------------------------------------------------- */

/* Functions whose only hidden work is converting their number arguments,
 * or one step per argument (string.char, math.max, table.pack). */
static int w_args(lua_State *L)
{
	charge_numbers(L, guard_of(L));
	charge(L, (uint64_t)lua_gettop(L) / 4);
	return call_orig(L);
}

static uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

/* math.random and math.randomseed: the generator is the Lua state's, so
 * what one evaluation drew or seeded would decide what the next draws.
 * Before the first of them in an evaluation, it is reseeded from the
 * engine's own stream (itself seeded from getrandom): each evaluation
 * starts from a fresh, unpredictable state, and a randomseed(n) holds only
 * for the rest of its own evaluation. */
static int w_random(lua_State *L)
{
	struct expr_engine *e = expr_engine_of(L);
	if (e->in_eval && e->rand_eval != e->evals) {
		e->rand_eval = e->evals;
		lua_rawgeti(L, LUA_REGISTRYINDEX, e->ref_randomseed);
		lua_pushinteger(L, (lua_Integer)splitmix64(&e->rand_seed));
		lua_pushinteger(L, (lua_Integer)splitmix64(&e->rand_seed));
		lua_call(L, 2, 0);
	}
	return w_args(L);
}

/* Control bytes in the string at i: %q writes each with a snprintf. */
static uint64_t control_bytes(lua_State *L, int i)
{
	size_t n;
	const unsigned char *s = (const unsigned char *)lua_tolstring(L, i, &n);
	uint64_t c = 0;
	for (size_t k = 0; k < n; k++)
		c += s[k] < 0x20 || s[k] == 0x7f;
	return c;
}

/* Functions that scan every string they are given (format, pack). A %q in
 * a format escapes byte by byte, with a snprintf per control byte. */
static int w_strings(lua_State *L)
{
	uint64_t bytes = 0, steps = 0;
	int top = lua_gettop(L);
	size_t lf = str_len_at(L, 1);
	bool quoting = lf && memchr(lua_tostring(L, 1), 'q', lf);
	for (int i = 1; i <= top; i++) {
		if (lua_type(L, i) != LUA_TSTRING)
			continue;
		bytes = sat_add(bytes, str_len_at(L, i));
		if (quoting && i > 1) {
			charge(L, str_len_at(L, i) / SCAN_BYTES);   /* the count */
			steps = sat_add(steps, sat_mul(control_bytes(L, i), 8));
		}
	}
	charge(L, sat_add(steps, bytes / SCAN_BYTES + (uint64_t)top / 4));
	int n = call_orig(L);
	if (n == 1)     /* pack's padding is written byte by byte */
		charge(L, str_len_at(L, -1) / SCAN_BYTES);
	return n;
}

/* Functions that return many values (select, assert): each is moved. */
static int w_results(lua_State *L)
{
	charge_numbers(L, guard_of(L));
	int n = call_orig(L);
	charge(L, (uint64_t)n / 8);
	return n;
}

/* ---- string -------------------------------------------------------------- */

/* upper, lower, reverse: a pass over the string. */
static int w_scan1(lua_State *L)
{
	charge(L, str_len_at(L, 1) / SCAN_BYTES);
	return call_orig(L);
}

static int w_rep(lua_State *L)
{
	size_t l, lsep;
	charge_numbers(L, guard_of(L));
	luaL_checklstring(L, 1, &l);
	lua_Integer n = luaL_checkinteger(L, 2);
	luaL_optlstring(L, 3, "", &lsep);
	if (n <= 0)
		return call_orig(L);
	if (l == 0 && lsep == 0) {  /* Lua would copy nothing n times */
		lua_pushliteral(L, "");
		return 1;
	}
	/* A result that cannot fit in memory fails at its allocation, before
	 * any copying: let Lua say so. */
	uint64_t total = sat_add(sat_mul((uint64_t)n, l),
				 sat_mul((uint64_t)n - 1, lsep));
	size_t room = expr_engine_of(L)->eval_limit;
	if (total <= room)
		charge(L, (uint64_t)n / 4 + total / SCAN_BYTES);
	return call_orig(L);
}

/* Lua's posrelatI and getendpos (lstrlib.c). */
size_t expr_str_start(lua_Integer pos, size_t len)
{
	if (pos > 0)
		return (size_t)pos;
	if (pos == 0 || pos < -(lua_Integer)len)
		return 1;
	return len + (size_t)pos + 1;
}

static size_t end_pos(lua_Integer pos, size_t len)
{
	if (pos > (lua_Integer)len)
		return len;
	if (pos >= 0)
		return (size_t)pos;
	if (pos < -(lua_Integer)len)
		return 0;
	return len + (size_t)pos + 1;
}

static int w_byte(lua_State *L)
{
	size_t l;
	charge_numbers(L, guard_of(L));
	luaL_checklstring(L, 1, &l);
	lua_Integer pi = luaL_optinteger(L, 2, 1);
	size_t posi = expr_str_start(pi, l);
	size_t pose = end_pos(luaL_optinteger(L, 3, pi), l);
	if (posi <= pose && pose - posi < (size_t)INT_MAX)
		charge(L, pose - posi + 1);
	return call_orig(L);
}

static int w_packsize(lua_State *L)
{
	charge(L, str_len_at(L, 1) / SCAN_BYTES);
	return call_orig(L);
}

static int w_unpack(lua_State *L)
{
	charge_numbers(L, guard_of(L));
	size_t ld = str_len_at(L, 2);
	lua_Integer from = luaL_optinteger(L, 3, 1);
	charge(L, str_len_at(L, 1) / SCAN_BYTES);
	int n = call_orig(L);
	/* the last result is the position after what was read */
	lua_Integer to = lua_tointeger(L, -1);
	size_t a = expr_str_start(from, ld);
	charge(L, (uint64_t)n / 8 + (to > (lua_Integer)a ? (uint64_t)(to - (lua_Integer)a)
				      / SCAN_BYTES : 0));
	return n;
}

/* find, match, gmatch, gsub: match.c charges the matching; here only the
 * init/max argument, and a plain find's memmem (bounded by the string). */
static int w_match(lua_State *L)
{
	charge_numbers(L, guard_of(L));
	return call_orig(L);
}

/* __add, __sub, ...: the operands are converted from strings. */
static int w_arith(lua_State *L)
{
	charge(L, (str_len_at(L, 1) + str_len_at(L, 2)) / SCAN_BYTES);
	return call_orig(L);
}

/* ---- table --------------------------------------------------------------- */

/* #t of a table argument, as the table library reads it (no __len is
 * reachable from the sandbox; table.unpack also takes a string, read
 * through the string library); -1 for anything else (the library then
 * raises its own error). */
static lua_Integer border(lua_State *L, int i, bool strings)
{
	if (strings && lua_type(L, i) == LUA_TSTRING)
		return (lua_Integer)lua_rawlen(L, i);
	if (lua_type(L, i) != LUA_TTABLE)
		return -1;
	return luaL_len(L, i);
}

/* Steps to move the elements first .. last (none when last < first). */
static uint64_t range_steps(lua_Integer first, lua_Integer last)
{
	if (last < first)
		return 0;
	uint64_t n = (uint64_t)last - (uint64_t)first;
	return sat_mul(sat_add(n, 1), ELEMENT_STEPS);
}

static int w_concat(lua_State *L)
{
	charge_numbers(L, guard_of(L));
	lua_Integer e = border(L, 1, false);
	if (e >= 0) {
		lua_Integer i = luaL_optinteger(L, 3, 1);
		e = luaL_optinteger(L, 4, e);
		charge(L, range_steps(i, e));
	}
	return call_orig(L);
}

static int w_insert(lua_State *L)
{
	charge_numbers(L, guard_of(L));
	lua_Integer e = border(L, 1, false);
	if (e >= 0 && lua_gettop(L) == 3 && e < LUA_MAXINTEGER) {
		lua_Integer pos = luaL_checkinteger(L, 2);
		if (pos >= 1 && pos <= e + 1)
			charge(L, range_steps(pos, e));
	}
	return call_orig(L);
}

static int w_remove(lua_State *L)
{
	charge_numbers(L, guard_of(L));
	lua_Integer size = border(L, 1, false);
	if (size >= 0) {
		lua_Integer pos = luaL_optinteger(L, 2, size);
		if (pos >= 1)
			charge(L, range_steps(pos, size));
	}
	return call_orig(L);
}

static int w_move(lua_State *L)
{
	charge_numbers(L, guard_of(L));
	lua_Integer f = luaL_checkinteger(L, 2);
	lua_Integer e = luaL_checkinteger(L, 3);
	luaL_checkinteger(L, 4);
	if (f > 0 || e < LUA_MAXINTEGER + f)    /* else Lua refuses at once */
		charge(L, range_steps(f, e));
	return call_orig(L);
}

static int w_tunpack(lua_State *L)
{
	charge_numbers(L, guard_of(L));
	lua_Integer i = luaL_optinteger(L, 2, 1);
	lua_Integer e = lua_isnoneornil(L, 3) ? border(L, 1, true) : luaL_checkinteger(L, 3);
	/* beyond Lua's stack, table.unpack fails at once */
	if (e >= i && (uint64_t)e - (uint64_t)i < 1000000u)
		charge(L, range_steps(i, e));
	return call_orig(L);
}

static int w_sort(lua_State *L)
{
	lua_Integer n = border(L, 1, false);
	if (n > 1 && n < INT_MAX) {
		uint64_t log = 1;
		while (((uint64_t)1 << log) < (uint64_t)n)
			log++;
		charge(L, sat_mul(sat_mul((uint64_t)n, log), ELEMENT_STEPS));
	}
	return call_orig(L);
}

/* ---- utf8 ---------------------------------------------------------------- */

/* Lua's u_posrelat (lutf8lib.c). */
static lua_Integer u_pos(lua_Integer pos, size_t len)
{
	if (pos >= 0)
		return pos;
	if (0u - (size_t)pos > len)
		return 0;
	return (lua_Integer)len + pos + 1;
}

/* len(s, i, j) and codepoint(s, i, j): they decode bytes i .. j. */
static int w_utf8_range(lua_State *L)
{
	size_t len;
	charge_numbers(L, guard_of(L));
	luaL_checklstring(L, 1, &len);
	bool is_len = !strcmp(guard_of(L)->fn, "len");
	lua_Integer i = u_pos(luaL_optinteger(L, 2, 1), len);
	lua_Integer j = u_pos(luaL_optinteger(L, 3, is_len ? -1 : i), len);
	/* len decodes; codepoint also pushes a value per character */
	if (i >= 1 && j >= i && j <= (lua_Integer)len)
		charge(L, ((uint64_t)(j - i) + 1) / (is_len ? 4 : 1));
	return call_orig(L);
}

static int w_offset(lua_State *L)
{
	size_t len;
	charge_numbers(L, guard_of(L));
	luaL_checklstring(L, 1, &len);
	lua_Integer n = luaL_checkinteger(L, 2);
	lua_Integer from = u_pos(luaL_optinteger(L, 3, n >= 0 ? 1 : (lua_Integer)len + 1),
				 len);
	int r = call_orig(L);
	/* it moved from `from` to the result, or to an end of s */
	lua_Integer to = lua_isinteger(L, -1) ? lua_tointeger(L, -1)
			 : n >= 0 ? (lua_Integer)len + 1 : 1;
	lua_Integer d = to > from ? to - from : from - to;
	charge(L, (uint64_t)d / SCAN_BYTES);
	return r;
}

/* The iterator utf8.codes returns: it skips continuation bytes first. */
static int w_codes_step(lua_State *L)
{
	size_t len = str_len_at(L, 1);
	lua_Unsigned from = (lua_Unsigned)lua_tointeger(L, 2);
	int r = call_orig(L);
	lua_Unsigned to = r == 2 ? (lua_Unsigned)lua_tointeger(L, -2) : len;
	if (from < len && to > from)
		charge(L, (to - from) / SCAN_BYTES);
	return r;
}

static int w_codes(lua_State *L)
{
	int r = call_orig(L);
	if (r >= 1 && lua_iscfunction(L, -r)) {   /* wrap the iterator */
		lua_pushvalue(L, -r);
		lua_pushvalue(L, lua_upvalueindex(2));
		lua_pushcclosure(L, w_codes_step, 2);
		lua_replace(L, -r - 1);
	}
	return r;
}

/* ---- base ---------------------------------------------------------------- */

static int w_rawequal(lua_State *L)
{
	if (lua_type(L, 1) == LUA_TSTRING && lua_type(L, 2) == LUA_TSTRING
	    && lua_rawlen(L, 1) == lua_rawlen(L, 2))
		charge(L, lua_rawlen(L, 1) / COMPARE_BYTES);
	return call_orig(L);
}

/* ---- registration -------------------------------------------------------- */

#define N(i) (1u << ((i) - 1))

static const struct guard guards[] = {
	{"string", "rep", "string.rep", N(2), w_rep},
	{"string", "byte", "string.byte", N(2) | N(3), w_byte},
	{"string", "char", "string.char", ALL_NUMBERS, w_args},
	{"string", "sub", "string.sub", N(2) | N(3), w_args},
	{"string", "upper", "string.upper", 0, w_scan1},
	{"string", "lower", "string.lower", 0, w_scan1},
	{"string", "reverse", "string.reverse", 0, w_scan1},
	{"string", "format", "string.format", 0, w_strings},
	{"string", "pack", "string.pack", 0, w_strings},
	{"string", "packsize", "string.packsize", 0, w_packsize},
	{"string", "unpack", "string.unpack", N(3), w_unpack},
	{"string", "find", "string.find", N(3), w_match},
	{"string", "match", "string.match", N(3), w_match},
	{"string", "gmatch", "string.gmatch", N(3), w_match},
	{"string", "gsub", "string.gsub", N(4), w_match},
	{"", "__add", "arithmetic on a string", 0, w_arith},
	{"", "__sub", "arithmetic on a string", 0, w_arith},
	{"", "__mul", "arithmetic on a string", 0, w_arith},
	{"", "__mod", "arithmetic on a string", 0, w_arith},
	{"", "__pow", "arithmetic on a string", 0, w_arith},
	{"", "__div", "arithmetic on a string", 0, w_arith},
	{"", "__idiv", "arithmetic on a string", 0, w_arith},
	{"", "__unm", "arithmetic on a string", 0, w_arith},
	{"table", "concat", "table.concat", N(3) | N(4), w_concat},
	{"table", "insert", "table.insert", N(2), w_insert},
	{"table", "remove", "table.remove", N(2), w_remove},
	{"table", "move", "table.move", N(2) | N(3) | N(4), w_move},
	{"table", "unpack", "table.unpack", N(2) | N(3), w_tunpack},
	{"table", "pack", "table.pack", 0, w_args},
	{"table", "sort", "table.sort", 0, w_sort},
	{"utf8", "char", "utf8.char", ALL_NUMBERS, w_args},
	{"utf8", "len", "utf8.len", N(2) | N(3), w_utf8_range},
	{"utf8", "codepoint", "utf8.codepoint", N(2) | N(3), w_utf8_range},
	{"utf8", "offset", "utf8.offset", N(2) | N(3), w_offset},
	{"utf8", "codes", "utf8.codes", 0, w_codes},
	{NULL, "select", "select", N(1), w_results},
	{NULL, "assert", "assert", 0, w_results},
	{NULL, "tonumber", "tonumber", N(1) | N(2), w_args},
	{NULL, "error", "error", N(2), w_args},
	{NULL, "rawequal", "rawequal", 0, w_rawequal},
	/* every function of the math library takes numbers only */
#define MATH(f) {"math", #f, "math." #f, ALL_NUMBERS, w_args}
	MATH(abs), MATH(acos), MATH(asin), MATH(atan), MATH(ceil), MATH(cos),
	MATH(deg), MATH(exp), MATH(tointeger), MATH(floor), MATH(fmod),
	MATH(ult), MATH(log), MATH(max), MATH(min), MATH(modf), MATH(rad),
	MATH(sin), MATH(sqrt), MATH(tan),
	{"math", "random", "math.random", ALL_NUMBERS, w_random},
	{"math", "randomseed", "math.randomseed", ALL_NUMBERS, w_random},
	MATH(atan2), MATH(cosh), MATH(sinh), MATH(tanh), MATH(pow), MATH(frexp),
	MATH(ldexp), MATH(log10),
#undef MATH
};

/* Replaces t[g->fn] (t at idx) by its wrapper, if it is a C function. */
static void wrap(lua_State *L, int idx, const struct guard *g)
{
	if (lua_getfield(L, idx, g->fn) != LUA_TFUNCTION || !lua_iscfunction(L, -1)) {
		lua_pop(L, 1);
		return;
	}
	lua_pushlightuserdata(L, (void *)g);
	lua_pushcclosure(L, g->wrap, 2);
	lua_setfield(L, idx, g->fn);
}

static void push_lib(lua_State *L, const char *lib)
{
	if (!lib)
		lua_pushglobaltable(L);
	else if (!*lib) {
		lua_pushliteral(L, "");
		lua_getmetatable(L, -1);
		lua_remove(L, -2);
	} else {
		lua_getglobal(L, lib);
	}
}

void guard_register(lua_State *L)
{
	lua_getglobal(L, "math");
	lua_getfield(L, -1, "randomseed");
	expr_engine_of(L)->ref_randomseed = luaL_ref(L, LUA_REGISTRYINDEX);
	lua_pop(L, 1);
	for (size_t i = 0; i < sizeof(guards) / sizeof(guards[0]); i++) {
		push_lib(L, guards[i].lib);
		wrap(L, lua_gettop(L), &guards[i]);
		lua_pop(L, 1);
	}
}
