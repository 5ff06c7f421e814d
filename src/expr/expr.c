/* expr.c: the engine's lua_State: limiting allocator, instruction budget,
 * compiling and evaluating. See expr.h.
 *
 * Every call into Lua that may raise (allocation included) runs under
 * lua_pcall, so an error or a memory limit never reaches Lua's panic
 * handler: the library never aborts. After each evaluation the stack is
 * emptied and the per-evaluation caches are dropped (scope_reset).
 *
 * The budget counts steps: VM instructions (the count hook), the work of C
 * functions (expr_charge, see guard.c and match.c) and bytes allocated
 * (the allocator). The clock is read at least every HOOK_EVERY
 * instructions and every CLOCK_EVERY charged steps; one VM instruction
 * does at most work proportional to the memory limit (a string compare or
 * coercion), so an evaluation stops within a few HOOK_EVERY such
 * instructions of its deadline.
 */
#include "expr/expr.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include <lualib.h>

#include "expr/internal.h"
#include "expr/lex.h"
#include "expr/redact.h"

#define CHUNK_PREFIX "return ("
#define CHUNK_SUFFIX "\n)"
#define CHUNK_NAME "=expr"
#define HOOK_EVERY 50         /* instructions between two clock checks */
#define CLOCK_EVERY 20000     /* steps charged between two clock checks */
#define ALLOC_BYTES_PER_STEP 64

int expr_fail(struct expr_error *err, int code, uint32_t offset,
	      const char *fmt, ...)
{
	if (!err)
		return code;
	err->code = code;
	err->offset = offset;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
	return code;
}

/* The coarse clock costs a few nanoseconds; its resolution (a few ms) is
 * plenty for limits of hundreds of ms. */
static uint64_t monotonic_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void budget_hook(lua_State *L, lua_Debug *ar);

/* From now on, the hook fires on every instruction and raises: the budget
 * or the time is spent. Safe anywhere, even inside the allocator (Lua lets
 * a signal handler call lua_sethook). */
static void stop_soon(struct expr_engine *e)
{
	e->budget_hit = true;
	lua_sethook(e->L, budget_hook, LUA_MASKCOUNT, 1);
}

/* Charges n bytes just allocated: copying or filling them is work that no
 * instruction counts. The allocator must not raise, so going over the
 * budget or the deadline only stops the evaluation at its next
 * instruction (or when it returns). */
static void charge_bytes(struct expr_engine *e, size_t n)
{
	e->alloc_bytes += n;
	if (e->alloc_bytes < ALLOC_BYTES_PER_STEP * 1024)
		return;
	uint64_t steps = e->alloc_bytes / ALLOC_BYTES_PER_STEP;
	e->alloc_bytes %= ALLOC_BYTES_PER_STEP;
	e->spent += steps;
	e->unclocked += steps;
	if (e->budget_hit)
		return;
	if (e->spent >= (uint64_t)e->budget) {
		stop_soon(e);
	} else if (e->unclocked >= CLOCK_EVERY) {
		e->unclocked = 0;
		if (monotonic_ns() > e->deadline) {
			e->late = true;
			stop_soon(e);
		}
	}
}

/* The allocator: per evaluation, at most eval_limit bytes above what was
 * held when it began; at any time at most total_limit. Shrinking never
 * fails, as Lua requires. */
static void *lalloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
	struct expr_engine *e = ud;
	size_t old = ptr ? osize : 0;
	if (nsize == 0) {
		free(ptr);
		e->used -= old;
		return NULL;
	}
	if (nsize > old) {
		size_t limit = e->total_limit;
		if (e->in_eval && e->eval_base + e->eval_limit < limit)
			limit = e->eval_base + e->eval_limit;
		if (e->used + (nsize - old) > limit) {
			e->mem_hit = true;
			return NULL;
		}
	}
	void *p = realloc(ptr, nsize);
	if (!p)
		return nsize <= old ? ptr : NULL;
	e->used = e->used - old + nsize;
	if (e->in_eval && nsize > old)
		charge_bytes(e, nsize - old);
	return p;
}

/* Fires every HOOK_EVERY instructions: counts them and checks the clock.
 * Once the budget is spent it re-arms itself to fire on every instruction,
 * so a pcall inside the expression cannot swallow the error and carry on. */
static void budget_hook(lua_State *L, lua_Debug *ar)
{
	struct expr_engine *e = expr_engine_of(L);
	(void)ar;
	if (e->budget_hit)
		expr_raise_budget(L);
	e->spent += e->budget < HOOK_EVERY ? e->budget : HOOK_EVERY;
	if (e->spent >= (uint64_t)e->budget)
		expr_raise_budget(L);
	expr_check_deadline(L, NULL);
}

void expr_check_deadline(lua_State *L, const char *what)
{
	struct expr_engine *e = expr_engine_of(L);
	if (monotonic_ns() > e->deadline) {
		if (!e->budget_hit)
			e->why = what;
		e->late = true;
		expr_raise_budget(L);
	}
}

void expr_charge(lua_State *L, const char *what, uint64_t steps)
{
	struct expr_engine *e = expr_engine_of(L);
	if (!e->in_eval)
		return;
	if (e->budget_hit || e->spent >= (uint64_t)e->budget
	    || steps >= (uint64_t)e->budget - e->spent) {
		if (!e->budget_hit) {
			e->why = what;
			e->why_steps = steps;
		}
		expr_raise_budget(L);
	}
	e->spent += steps;
	e->unclocked += steps;
	if (e->unclocked >= CLOCK_EVERY) {
		e->unclocked = 0;
		expr_check_deadline(L, what);
	}
}

int expr_raise_budget(lua_State *L)
{
	stop_soon(expr_engine_of(L));
	return luaL_error(L, "expression took too long");
}

int expr_raise_buf(lua_State *L, int rc)
{
	struct expr_engine *e = expr_engine_of(L);
	e->buf_rc = rc;
	if (rc == -E2BIG)
		return luaL_error(L, "expression result too large");
	return luaL_error(L, "out of memory");
}

static int open_libs(lua_State *L)
{
	static const luaL_Reg libs[] = {
		{"_G", luaopen_base}, {LUA_STRLIBNAME, luaopen_string},
		{LUA_TABLIBNAME, luaopen_table}, {LUA_MATHLIBNAME, luaopen_math},
		{LUA_UTF8LIBNAME, luaopen_utf8},
	};
	for (size_t i = 0; i < sizeof(libs) / sizeof(libs[0]); i++) {
		luaL_requiref(L, libs[i].name, libs[i].func, 1);
		lua_pop(L, 1);
	}
	return scope_setup(L);
}

int expr_new(struct expr_engine **out, const struct expr_opts *opts)
{
	*out = NULL;
	struct expr_engine *e = calloc(1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	e->total_limit = opts && opts->total_memory ? opts->total_memory
			 : EXPR_DEFAULT_TOTAL_MEMORY;
	e->eval_limit = opts && opts->eval_memory ? opts->eval_memory
			: EXPR_DEFAULT_EVAL_MEMORY;
	uint64_t n = opts && opts->instructions ? opts->instructions
		     : EXPR_DEFAULT_INSTRUCTIONS;
	e->budget = n > INT_MAX ? INT_MAX : (int)n;
	e->redactor = opts ? opts->redactor : NULL;
	e->time_ns = (uint64_t)(opts && opts->time_ms ? opts->time_ms
				: EXPR_DEFAULT_TIME_MS) * 1000000u;
	/* math.random is reseeded per evaluation (guard.c) from this */
	if (getrandom(&e->rand_seed, sizeof(e->rand_seed), GRND_NONBLOCK) !=
	    (ssize_t)sizeof(e->rand_seed))
		e->rand_seed = monotonic_ns() ^ (uint64_t)(uintptr_t)e;
	e->L = lua_newstate(lalloc, e);
	if (!e->L)
		goto fail;
	*(struct expr_engine **)lua_getextraspace(e->L) = e;
	lua_pushcfunction(e->L, open_libs);
	if (lua_pcall(e->L, 0, 0, 0) != LUA_OK)
		goto fail;
	lua_settop(e->L, 0);
	*out = e;
	return 0;
fail:
	expr_free(e);
	return -ENOMEM;
}

void expr_free(struct expr_engine *e)
{
	if (!e)
		return;
	if (e->L)
		lua_close(e->L);
	buf_free(&e->tmp);
	free(e);
}

size_t expr_memory(const struct expr_engine *e)
{
	return e->used;
}

/* ---- error messages ------------------------------------------------------ */

/* Offset in src of the start of line `line` (1-based); len if past the end. */
static uint32_t line_offset(const char *src, size_t len, long line)
{
	size_t p = 0;
	for (long l = 1; l < line; l++) {
		const char *nl = memchr(src + p, '\n', len - p);
		if (!nl)
			return (uint32_t)len;
		p = (size_t)(nl - src) + 1;
	}
	return (uint32_t)p;
}

/* Removes Lua's "expr:LINE: " prefix from msg; returns LINE or 0. */
static long strip_position(char *msg)
{
	static const char pre[] = "expr:";
	if (strncmp(msg, pre, sizeof(pre) - 1))
		return 0;
	char *end;
	long line = strtol(msg + sizeof(pre) - 1, &end, 10);
	if (end == msg + sizeof(pre) - 1 || strncmp(end, ": ", 2))
		return 0;
	memmove(msg, end + 2, strlen(end + 2) + 1);
	return line;
}

/* Copies msg into err->msg, with the engine's secrets redacted. */
static void set_message(struct expr_engine *e, struct expr_error *err,
			const char *msg, size_t len)
{
	if (!err)
		return;
	struct buf b = BUF_INIT;
	if (e->redactor && redact_text(e->redactor, msg, len, &b) == 0) {
		msg = b.data;
		len = b.len;
	}
	if (len >= sizeof(err->msg))
		len = sizeof(err->msg) - 1;
	memcpy(err->msg, msg, len);
	err->msg[len] = '\0';
	buf_free(&b);
}

/* The position of a syntax error: Lua names the line and the token it
 * stopped at ("near 'x'"); find that token on that line. */
static uint32_t syntax_offset(const char *src, size_t len, long line,
			      const char *msg)
{
	uint32_t off = line_offset(src, len, line);
	if (strstr(msg, "near <eof>"))
		return (uint32_t)len;
	const char *near = strstr(msg, "near '");
	if (!near)
		return off;
	near += 6;
	const char *q = strrchr(near, '\'');
	if (!q || q == near)
		return off;
	size_t n = (size_t)(q - near);
	for (size_t p = off; p + n <= len; p++)
		if (!memcmp(src + p, near, n))
			return (uint32_t)p;
	return off;
}

/* Hints for habits from C, JavaScript and Jinja: `!=`, `&&`, `||`, `!`
 * outside string literals. Appends them to msg; returns the offset of the
 * first, or EXPR_NO_OFFSET. */
static uint32_t add_hints(const char *src, size_t len, char *msg, size_t cap)
{
	static const char *const hints[] = {
		"Lua writes 'not equal' as ~= (not !=)",
		"Lua writes && as 'and'",
		"Lua writes || as 'or'",
		"Lua writes ! as 'not'",
	};
	bool seen[4] = {false};
	uint32_t first = EXPR_NO_OFFSET;
	struct lex lx;
	struct lex_token t;
	lex_init(&lx, src, len);
	while (lex_next(&lx, &t) != LEX_EOF && t.kind != LEX_ERROR) {
		if (t.kind != LEX_OP)
			continue;
		char c = src[t.off], d = t.off + 1 < len ? src[t.off + 1] : 0;
		int h = c == '!' ? (d == '=' ? 0 : 3)
			: c == '&' && d == '&' ? 1
			: c == '|' && d == '|' ? 2 : -1;
		if (h < 0)
			continue;
		if (!seen[h]) {
			size_t n = strlen(msg);
			snprintf(msg + n, cap - n, "; hint: %s", hints[h]);
		}
		seen[h] = true;
		if (first == EXPR_NO_OFFSET)
			first = t.off;
		if (h != 3)
			lex_next(&lx, &t);   /* the second character */
	}
	return first;
}

/* ---- compiling ----------------------------------------------------------- */

struct compile_ctx {
	const char *chunk;
	size_t chunk_len;
	bool keep;
	int id;
	int status;          /* of luaL_loadbufferx */
};

static int protected_compile(lua_State *L)
{
	struct compile_ctx *c = lua_touserdata(L, 1);
	c->status = luaL_loadbufferx(L, c->chunk, c->chunk_len, CHUNK_NAME, "t");
	if (c->status != LUA_OK)
		return 1;    /* the message */
	if (c->keep)
		c->id = luaL_ref(L, LUA_REGISTRYINDEX);
	return 0;
}

static bool blank(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (s[i] != ' ' && s[i] != '\t' && s[i] != '\n' && s[i] != '\r')
			return false;
	return true;
}

static int compile(struct expr_engine *e, const char *src, size_t len,
		   bool keep, int *id, struct expr_error *err)
{
	lua_State *L = e->L;
	struct buf chunk = BUF_INIT;
	int r;
	if (len > EXPR_MAX_SOURCE)
		return expr_fail(err, -E2BIG, 0, "expression longer than %zu bytes",
				 EXPR_MAX_SOURCE);
	if (blank(src, len))
		return expr_fail(err, -EINVAL, 0, "empty expression");
	if (buf_adds(&chunk, CHUNK_PREFIX) || buf_add(&chunk, src, len)
	    || buf_adds(&chunk, CHUNK_SUFFIX)) {
		r = expr_fail(err, -ENOMEM, 0, "out of memory");
		goto out;
	}
	struct compile_ctx c = {chunk.data, chunk.len, keep, 0, LUA_OK};
	e->mem_hit = false;
	lua_settop(L, 0);
	lua_pushcfunction(L, protected_compile);
	lua_pushlightuserdata(L, &c);
	int st = lua_pcall(L, 1, 1, 0);
	if (st == LUA_OK && c.status == LUA_OK) {
		if (id)
			*id = c.id;
		r = 0;
		goto out;
	}
	if (st == LUA_ERRMEM || c.status == LUA_ERRMEM || e->mem_hit) {
		r = expr_fail(err, -ENOMEM, 0, "expression memory limit exceeded "
			      "(%zu MiB in all)", e->total_limit >> 20);
		goto out;
	}
	r = -EINVAL;
	if (err) {
		const char *m = lua_tostring(L, -1);
		snprintf(err->msg, sizeof(err->msg), "%s", m ? m : "syntax error");
		long line = strip_position(err->msg);
		err->code = r;
		err->offset = syntax_offset(src, len, line ? line : 1, err->msg);
		uint32_t h = add_hints(src, len, err->msg, sizeof(err->msg));
		if (h != EXPR_NO_OFFSET)
			err->offset = h;
		/* Lua quotes the source near the error, which may hold a
		 * secret's value */
		char quoted[sizeof(err->msg)];
		memcpy(quoted, err->msg, sizeof(quoted));
		set_message(e, err, quoted, strlen(quoted));
	}
out:
	lua_settop(L, 0);
	buf_free(&chunk);
	return r;
}

int expr_compile(struct expr_engine *e, const char *src, size_t len, int *id,
		 struct expr_error *err)
{
	return compile(e, src, len, true, id, err);
}

int expr_syntax_check(struct expr_engine *e, const char *src, size_t len,
		      struct expr_error *err)
{
	return compile(e, src, len, false, NULL, err);
}

/* ---- evaluating ---------------------------------------------------------- */

struct eval_ctx {
	int id;
	struct buf *text;    /* NULL: want a boolean */
	bool truth;
};

static int protected_eval(lua_State *L)
{
	struct eval_ctx *c = lua_touserdata(L, 1);
	struct expr_engine *e = expr_engine_of(L);
	if (lua_rawgeti(L, LUA_REGISTRYINDEX, c->id) != LUA_TFUNCTION)
		return luaL_error(L, "no compiled expression %d", c->id);
	lua_rawgeti(L, LUA_REGISTRYINDEX,
		    e->scope->self ? e->ref_cond_env : e->ref_env);
	lua_setupvalue(L, -2, 1);            /* its _ENV */
	lua_call(L, 0, 1);
	if (c->text)
		conv_to_text(L, -1, c->text);
	else
		c->truth = lua_toboolean(L, -1);
	return 0;
}

/* The "took too long" error, naming the library function that asked for
 * more work than was left, when one did. */
static int budget_error(const struct expr_engine *e, struct expr_error *err)
{
	unsigned long long ms = e->time_ns / 1000000u;
	if (e->late)
		return expr_fail(err, -ETIME, 0, "expression took too long (time "
				 "limit of %llu ms exceeded%s%s)", ms,
				 e->why ? " in " : "", e->why ? e->why : "");
	if (e->why && e->why_steps)
		return expr_fail(err, -ETIME, 0, "expression took too long: %s "
				 "would take %llu steps, more than is left of the "
				 "instruction budget of %d", e->why,
				 (unsigned long long)e->why_steps, e->budget);
	return expr_fail(err, -ETIME, 0, "expression took too long (instruction "
			 "budget of %d exceeded%s%s)", e->budget,
			 e->why ? " in " : "", e->why ? e->why : "");
}

static int eval(struct expr_engine *e, int id, const struct expr_scope *sc,
		struct eval_ctx *c, struct expr_error *err)
{
	static const struct expr_scope empty;
	lua_State *L = e->L;
	size_t len0 = c->text ? c->text->len : 0;
	c->id = id;
	e->scope = sc ? sc : &empty;
	e->evals++;
	e->in_eval = true;
	e->mem_hit = e->budget_hit = e->late = false;
	e->why = NULL;
	e->why_steps = 0;
	e->buf_rc = 0;
	e->eval_base = e->used;
	e->match_budget = (uint64_t)e->budget * 8;
	e->spent = e->unclocked = 0;
	e->alloc_bytes = 0;
	e->deadline = monotonic_ns() + e->time_ns;
	lua_settop(L, 0);
	lua_sethook(L, budget_hook, LUA_MASKCOUNT,
		    e->budget < HOOK_EVERY ? e->budget : HOOK_EVERY);
	size_t max0 = 0;
	if (c->text) {      /* cap this result at EXPR_MAX_TEXT */
		max0 = c->text->max;
		size_t cap = max0 ? max0 : BUF_DEFAULT_MAX;
		if (cap - len0 > EXPR_MAX_TEXT)
			c->text->max = len0 + EXPR_MAX_TEXT;
	}
	lua_pushcfunction(L, protected_eval);
	lua_pushlightuserdata(L, c);
	int st = lua_pcall(L, 1, 0, 0);
	if (c->text)
		c->text->max = max0;
	lua_sethook(L, NULL, 0, 0);
	e->in_eval = false;
	int r = 0;
	if (st != LUA_OK || e->budget_hit) {
		size_t n = 0;
		char num[64];
		const char *m = NULL;
		/* no lua_tolstring on a number here: it would allocate,
		 * outside protected mode */
		if (lua_type(L, -1) == LUA_TSTRING) {
			m = lua_tolstring(L, -1, &n);
		} else if (lua_isinteger(L, -1)) {
			n = (size_t)snprintf(num, sizeof(num), LUA_INTEGER_FMT,
					     (LUAI_UACINT)lua_tointeger(L, -1));
			m = num;
		} else if (lua_type(L, -1) == LUA_TNUMBER) {
			n = (size_t)snprintf(num, sizeof(num), "%.14g",
					     lua_tonumber(L, -1));
			m = num;
		}
		if (e->budget_hit) {
			r = budget_error(e, err);
		} else if (st == LUA_ERRMEM || (e->mem_hit && m
			   && !strcmp(m, "not enough memory"))) {
			r = expr_fail(err, -ENOMEM, 0, "expression memory limit "
				      "exceeded (%zu MiB)", e->eval_limit >> 20);
		} else if (e->buf_rc) {
			r = expr_fail(err, e->buf_rc, 0, "%s", m ? m : "error");
		} else if (!m) {
			r = expr_fail(err, -EINVAL, 0, "expression raised an error "
				      "value of type %s", luaL_typename(L, -1));
		} else {
			r = expr_fail(err, -EINVAL, 0, "error");
			set_message(e, err, m, n);
			if (err)
				strip_position(err->msg);
		}
		if (c->text) {
			c->text->len = len0;
			if (c->text->data)
				c->text->data[len0] = '\0';
		}
	}
	lua_settop(L, 0);
	e->scope = NULL;
	/* Drop the per-evaluation caches (this allocates nothing). After an
	 * evaluation that allocated a lot (a big JSON, or a failed one: a
	 * bomb), collect now rather than keep the garbage until the next
	 * allocations. */
	scope_reset(e);
	if (e->used > e->eval_base + (r < 0 ? ((size_t)1 << 20)
				      : e->eval_limit / 4))
		lua_gc(L, LUA_GCCOLLECT);
	if (e->tmp.alloc > ((size_t)1 << 20))
		buf_free(&e->tmp);
	return r;
}

int expr_eval_bool(struct expr_engine *e, int id, const struct expr_scope *sc,
		   bool *out, struct expr_error *err)
{
	struct eval_ctx c = {0, NULL, false};
	int r = eval(e, id, sc, &c, err);
	if (r == 0)
		*out = c.truth;
	return r;
}

int expr_eval_text(struct expr_engine *e, int id, const struct expr_scope *sc,
		   struct buf *out, struct expr_error *err)
{
	struct eval_ctx c = {0, out, false};
	return eval(e, id, sc, &c, err);
}
