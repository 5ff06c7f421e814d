/* test_match.c: the budgeted pattern matcher (src/expr/match.c) against
 * Lua's own string library: the same find/match/gmatch/gsub calls, on a
 * fixed corpus and on random patterns and subjects, must give the same
 * results (or both fail). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "expr/expr.h"

struct fx {
	struct expr_engine *e;
	lua_State *L;
	struct buf src, a, b;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	assert_int_equal(expr_new(&f->e, NULL), 0);
	f->L = luaL_newstate();
	luaL_openlibs(f->L);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	expr_free(f->e);
	lua_close(f->L);
	buf_free(&f->src);
	buf_free(&f->a);
	buf_free(&f->b);
	free(f);
	return 0;
}

/* Appends s as a Lua string literal with every byte escaped. */
static void literal(struct buf *b, const char *s, size_t n)
{
	buf_addc(b, '"');
	for (size_t i = 0; i < n; i++)
		buf_printf(b, "\\%u", (unsigned char)s[i]);
	buf_addc(b, '"');
}

#define PACK "(function(...) local o = {select('#', ...)} for i = 1, " \
	"select('#', ...) do o[#o + 1] = tostring((select(i, ...))) end " \
	"return table.concat(o, '|') end)"

/* Builds the expression for call kind k on subject s, pattern p. */
static void build(struct buf *b, int k, const char *s, size_t sn,
		  const char *p, size_t pn, int init)
{
	buf_reset(b);
	switch (k) {
	case 0: buf_adds(b, PACK "(string.find("); break;
	case 1: buf_adds(b, PACK "(string.match("); break;
	case 2: buf_adds(b, PACK "(string.gsub("); break;
	case 3: buf_adds(b, PACK "(string.gsub("); break;
	case 4: buf_adds(b, "(function(s, p) local o = {} for a, b in "
		       "string.gmatch(s, p) do o[#o + 1] = tostring(a) .. ',' "
		       ".. tostring(b) if #o > 50 then break end end return "
		       "table.concat(o, '|') end)("); break;
	case 5: buf_adds(b, PACK "(string.find("); break;
	}
	literal(b, s, sn);
	buf_addc(b, ',');
	literal(b, p, pn);
	switch (k) {
	case 0: case 1: buf_printf(b, ", %d", init); break;
	case 2: buf_adds(b, ", '<%0|%1>'"); break;
	case 3: buf_adds(b, ", function(...) return '<' .. table.concat({...}, "
		       "',') .. '>' end, 3"); break;
	case 5: buf_printf(b, ", %d, true", init); break;
	}
	buf_adds(b, k == 4 ? ")" : "))");
}

/* Runs src in the engine and in stock Lua; returns false when they
 * disagree (err_a/err_b say whether each failed). */
static bool agree(struct fx *f, const char *src, bool *failed)
{
	struct expr_error err;
	int id;
	buf_reset(&f->a);
	buf_reset(&f->b);
	int ra = expr_compile(f->e, src, strlen(src), &id, &err);
	if (ra)
		fail_msg("%s: %s", src, err.msg);
	ra = expr_eval_text(f->e, id, NULL, &f->a, &err);
	lua_settop(f->L, 0);
	buf_reset(&f->b);
	buf_adds(&f->b, "return ");
	buf_adds(&f->b, src);
	int rb = luaL_dostring(f->L, f->b.data);
	buf_reset(&f->b);
	if (rb == LUA_OK && lua_isstring(f->L, -1))
		buf_adds(&f->b, lua_tostring(f->L, -1));
	*failed = ra != 0;
	if ((ra != 0) != (rb != LUA_OK)) {
		fprintf(stderr, "%s\n  ours: %s\n  lua:  %s\n", src,
			ra ? err.msg : f->a.data,
			rb ? lua_tostring(f->L, -1) : f->b.data);
		return false;
	}
	if (ra == 0 && strcmp(f->a.data ? f->a.data : "", f->b.data ? f->b.data
							    : "")) {
		fprintf(stderr, "%s\n  ours: %s\n  lua:  %s\n", src, f->a.data,
			f->b.data);
		return false;
	}
	return true;
}

static void corpus_matches_lua(void **state)
{
	struct fx *f = *state;
	static const char *const subjects[] = {
		"", "hello world", "key=value; k2=v2", "  trim me  ",
		"THE (quick) [brown] fox", "aaa", "a,b,,c", "x = 'quoted' y",
		"2024-01-15T10:30:00Z", "f(a(b)c)d", "%%", "caf\xc3\xa9",
		"line1\nline2\n", "the cat sat on the mat",
	};
	static const char *const patterns[] = {
		"o", "l+", "l*", "l-", "l?", "^h", "d$", "^$", ".", ".-",
		"(%w+)=(%w+)", "%s*(.-)%s*$", "%b()", "%b[]", "%f[%a]%a+",
		"%f[%w]%w+%f[%W]", "()a()", "(a)(a)", "(a*(.)%w(%s*))",
		"([\"'])(.-)%1", "[%a_][%w_]*", "[^,]*", "[a-c]+", "[]]",
		"[^%s]+", "%d+%-%d+", "%u+", "%p", "%x+", "%c", "%g+",
		"[%]]", "a-b", "(%d%d%d%d)-(%d%d)-(%d%d)", "[\xc3\xa9]",
		"%", "(", "(()", "%1", "[a", "%b", "%f", "%z", "(.)%2", "x)",
		"[%a-z]", "[a-]", "[-a]", "%.", "a.-a", "(h)(e)(l)(l)(o)",
		"$", "^", "^(.-)$", "[^]]", "%w+$",
	};
	int inits[] = {1, 3, -4, 0, 100};
	size_t failures = 0, errors = 0;
	for (size_t s = 0; s < sizeof(subjects) / sizeof(subjects[0]); s++)
		for (size_t p = 0; p < sizeof(patterns) / sizeof(patterns[0]); p++)
			for (int k = 0; k < 6; k++) {
				int init = inits[(s + p + (size_t)k) % 5];
				build(&f->src, k, subjects[s], strlen(subjects[s]),
				      patterns[p], strlen(patterns[p]), init);
				bool failed;
				if (!agree(f, f->src.data, &failed))
					failures++;
				errors += failed;
			}
	assert_int_equal(failures, 0);
	assert_true(errors > 0);     /* the malformed patterns did fail */
}

static void random_patterns_match_lua(void **state)
{
	struct fx *f = *state;
	static const char *const atoms[] = {
		"a", "b", ".", "%a", "%d", "%s", "%W", "[ab]", "[^a]", "[a-c]",
		"(", ")", "()", "*", "+", "-", "?", "^", "$", "%b()", "%f[a]",
		"%1", "%2", "%", "[", "]", "x",
	};
	static const char alphabet[] = "aab b1(x)";
	char pat[64], subj[16];
	size_t failures = 0;
	unsigned seed = 12345;
	for (int iter = 0; iter < 4000 && failures < 5; iter++) {
		size_t pn = 0, sn = (size_t)(rand_r(&seed) % 12);
		int atoms_n = 1 + rand_r(&seed) % 6;
		for (int i = 0; i < atoms_n; i++) {
			const char *a = atoms[rand_r(&seed) % (sizeof(atoms)
							     / sizeof(atoms[0]))];
			memcpy(pat + pn, a, strlen(a));
			pn += strlen(a);
		}
		for (size_t i = 0; i < sn; i++)
			subj[i] = alphabet[rand_r(&seed) % (sizeof(alphabet) - 1)];
		int k = rand_r(&seed) % 5;
		build(&f->src, k, subj, sn, pat, pn, 1 + rand_r(&seed) % 3);
		bool failed;
		if (!agree(f, f->src.data, &failed))
			failures++;
	}
	assert_int_equal(failures, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(corpus_matches_lua, setup, teardown),
		cmocka_unit_test_setup_teardown(random_patterns_match_lua, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
