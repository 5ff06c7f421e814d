/* cron.c: five-field cron expressions and their next fire time in a zone
 * (see cron.h for the rules).
 *
 * The search walks the zone's wall clock field by field (month, day,
 * hour, minute: each skips to its next allowed value), turns each
 * matching wall time into the instants it names (none in a DST gap: then
 * the jump; two in an overlap), and keeps the earliest instant after the
 * start. It starts at the earliest wall time an instant after the start
 * can show and stops once no later wall time can name an earlier instant,
 * so an hour repeated in autumn is never skipped. Invariant: nothing here
 * reads the clock or any global state.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util/cron.h"
#include "util/buf.h"

struct cron {
	uint64_t min;             /* bit i: minute i */
	uint32_t hour, dom;       /* hours 0-23; days 1-31 */
	uint16_t mon;             /* months 1-12 */
	uint8_t dow;              /* days of the week 0-6, Sunday 0 */
	bool dom_star, dow_star, hour_star;
};

void cron_free(struct cron *c)
{
	free(c);
}

/* ---- parsing ---------------------------------------------------------------- */

struct field {
	const char *name;
	int lo, hi;
	const char *const *names;  /* 3-letter names from lo, or NULL */
};

static const char *const months[] = {"jan", "feb", "mar", "apr", "may", "jun", "jul",
				     "aug", "sep", "oct", "nov", "dec", NULL};
static const char *const days[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat", NULL};

static const struct field fields[5] = {
	{"minute", 0, 59, NULL}, {"hour", 0, 23, NULL}, {"day of month", 1, 31, NULL},
	{"month", 1, 12, months}, {"day of week", 0, 7, days},
};

/* A value of field f at *p: a number or a name. */
static bool value(const struct field *f, const char **p, int *out)
{
	const char *s = *p;
	if (*s >= '0' && *s <= '9') {
		char *e;
		long v = strtol(s, &e, 10);
		if (e - s > 4 || v < f->lo || v > f->hi)
			return false;
		*out = (int)v;
		*p = e;
		return true;
	}
	for (int i = 0; f->names && f->names[i]; i++)
		if (!strncasecmp(s, f->names[i], 3) &&
		    !((s[3] >= 'a' && s[3] <= 'z') || (s[3] >= 'A' && s[3] <= 'Z'))) {
			*out = f->lo + i;
			*p = s + 3;
			return true;
		}
	return false;
}

/* One field's text [s, e) into the bit set *bits. */
static int field_parse(const struct field *f, const char *s, const char *e, uint64_t *bits,
		       char **err)
{
	*bits = 0;
	char item[64];
	while (s < e) {
		const char *c = memchr(s, ',', (size_t)(e - s));
		const char *ie = c ? c : e;
		if (ie == s || (size_t)(ie - s) >= sizeof(item))
			goto bad;
		memcpy(item, s, (size_t)(ie - s));
		item[ie - s] = 0;
		const char *p = item;
		int a = f->lo, b = f->hi, step = 1;
		if (*p == '*') {
			p++;
		} else {
			if (!value(f, &p, &a))
				goto bad;
			b = a;
			if (*p == '-') {
				p++;
				if (!value(f, &p, &b) || b < a)
					goto bad;
			}
		}
		if (*p == '/') {
			p++;
			char *pe;
			long v = strtol(p, &pe, 10);
			if (pe == p || v < 1 || v > f->hi)
				goto bad;
			step = (int)v;
			p = pe;
			if (item[0] != '*' && !strchr(item, '-'))
				b = f->hi;   /* a/n: from a to the end */
		}
		if (*p)
			goto bad;
		for (int v = a; v <= b; v += step)
			*bits |= 1ull << v;
		s = c ? c + 1 : e;
		if (c && s == e)
			goto bad;
	}
	return 0;
bad:
	*err = buf_strf("invalid %s field '%.*s': use *, N, N-M, */S, N-M/S or lists of them "
			"(%d-%d%s)", f->name, (int)(e - s), s, f->lo, f->hi,
			f->names == months ? " or jan-dec" : f->names == days ?
			" or sun-sat, 0 and 7 are Sunday" : "");
	return *err ? -EINVAL : -ENOMEM;
}

static const char *macro(const char *expr)
{
	static const char *const m[][2] = {
		{"@yearly", "0 0 1 1 *"}, {"@annually", "0 0 1 1 *"}, {"@monthly", "0 0 1 * *"},
		{"@weekly", "0 0 * * 0"}, {"@daily", "0 0 * * *"}, {"@midnight", "0 0 * * *"},
		{"@hourly", "0 * * * *"},
	};
	for (size_t i = 0; i < sizeof(m) / sizeof(m[0]); i++)
		if (!strcmp(expr, m[i][0]))
			return m[i][1];
	return NULL;
}

int cron_parse(const char *expr, struct cron **out, char **err, unsigned *err_off)
{
	*out = NULL;
	*err = NULL;
	if (err_off)
		*err_off = 0;
	const char *src = expr;
	while (*src == ' ' || *src == '\t')
		src++;
	const char *m = macro(src);
	if (src[0] == '@' && !m) {
		*err = buf_strf("unknown schedule '%.40s': use five fields or @yearly, "
				"@monthly, @weekly, @daily or @hourly", src);
		return *err ? -EINVAL : -ENOMEM;
	}
	const char *p = m ? m : src;
	struct cron *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	uint64_t bits[5];
	int i = 0, r = 0;
	for (; i < 5; i++) {
		while (*p == ' ' || *p == '\t')
			p++;
		if (!*p)
			break;
		const char *e = p;
		while (*e && *e != ' ' && *e != '\t')
			e++;
		if (err_off && !m)
			*err_off = (unsigned)(p - expr);
		if ((r = field_parse(&fields[i], p, e, &bits[i], err)) < 0)
			goto fail;
		if (i == 1)
			c->hour_star = *p == '*';
		if (i == 2)
			c->dom_star = *p == '*';
		if (i == 4)
			c->dow_star = *p == '*';
		p = e;
	}
	while (*p == ' ' || *p == '\t')
		p++;
	if (i < 5 || *p) {
		if (err_off)
			*err_off = 0;
		*err = buf_strf("a schedule has five fields (minute hour day-of-month month "
				"day-of-week), got %s: '%.80s'", i < 5 ? "fewer" : "more", expr);
		r = *err ? -EINVAL : -ENOMEM;
		goto fail;
	}
	c->min = bits[0];
	c->hour = (uint32_t)bits[1];
	c->dom = (uint32_t)bits[2];
	c->mon = (uint16_t)bits[3];
	c->dow = (uint8_t)((bits[4] | bits[4] >> 7) & 0x7f);
	*out = c;
	return 0;
fail:
	free(c);
	return r;
}

/* ---- the search --------------------------------------------------------------- */

struct wall {
	int64_t y;
	int mo, d, h, mi;
};

static int mdays(int64_t y, int m)
{
	static const int d[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
	return m == 2 && leap ? 29 : d[m - 1];
}

static int64_t wall_secs(const struct wall *w)
{
	return tz_days_from_civil(w->y, w->mo, w->d) * 86400 + w->h * 3600 + w->mi * 60;
}

static void wall_of(int64_t secs, struct wall *w)
{
	int64_t days = (secs >= 0 ? secs : secs - 86399) / 86400;
	int64_t rem = secs - days * 86400;
	tz_civil_from_days(days, &w->y, &w->mo, &w->d);
	w->h = (int)(rem / 3600);
	w->mi = (int)(rem % 3600 / 60);
}

static bool day_ok(const struct cron *c, const struct wall *w)
{
	int wd = (int)(((tz_days_from_civil(w->y, w->mo, w->d) % 7) + 11) % 7);
	bool dom = c->dom >> w->d & 1, dow = c->dow >> wd & 1;
	if (c->dom_star || c->dow_star)
		return dom && dow;
	return dom || dow;
}

/* Level 0 month, 1 day, 2 hour, 3 minute: moves w to the start of the
 * next unit at that level. */
static void bump(struct wall *w, int level)
{
	switch (level) {
	case 3:
		if (++w->mi < 60)
			return;
		/* fall through */
	case 2:
		w->mi = 0;
		if (++w->h < 24)
			return;
		/* fall through */
	case 1:
		w->mi = w->h = 0;
		if (++w->d <= mdays(w->y, w->mo))
			return;
		/* fall through */
	default:
		w->mi = w->h = 0;
		w->d = 1;
		if (++w->mo > 12) {
			w->mo = 1;
			w->y++;
		}
	}
}

/* Moves w to the first wall time at or after it that c matches. */
static bool next_wall(const struct cron *c, struct wall *w, int64_t ylimit)
{
	while (w->y <= ylimit) {
		if (!(c->mon >> w->mo & 1))
			bump(w, 0);
		else if (!day_ok(c, w))
			bump(w, 1);
		else if (!(c->hour >> w->h & 1))
			bump(w, 2);
		else if (!(c->min >> w->mi & 1))
			bump(w, 3);
		else
			return true;
	}
	return false;
}

/* The instants wall time L names in z: up to two, in *u (increasing);
 * in a gap, the moment of the jump. lo, hi: the zone's offset range. */
static int instants(const struct tz *z, int64_t L, int32_t lo, int32_t hi, int64_t u[2])
{
	int32_t o1 = tz_offset(z, L - hi), o2 = tz_offset(z, L - lo);
	int n = 0;
	if (tz_offset(z, L - o1) == o1)
		u[n++] = L - o1;
	if (o2 != o1 && tz_offset(z, L - o2) == o2) {
		u[n++] = L - o2;
		if (n == 2 && u[1] < u[0]) {
			int64_t t = u[0];
			u[0] = u[1];
			u[1] = t;
		}
	}
	if (n)
		return n;
	/* A gap: the first instant with the later offset. */
	int64_t a = L - hi, b = L - lo;
	while (b - a > 1) {
		int64_t m = a + (b - a) / 2;
		if (tz_offset(z, m) == o2)
			b = m;
		else
			a = m;
	}
	u[0] = b;
	return 1;
}

int cron_next(const struct cron *c, const struct tz *z, int64_t after, int64_t *next)
{
	/* The zone's offset range near `after` (real zones stay within
	 * 26 hours of UTC; sampled around the time, it is tight). */
	int32_t lo = tz_offset(z, after), hi = lo;
	for (int64_t d = -2; d <= 2; d++)
		for (int64_t t = after + d * 86400 * 91; t <= after + d * 86400 * 91 + 1; t++) {
			int32_t o = tz_offset(z, t);
			lo = o < lo ? o : lo;
			hi = o > hi ? o : hi;
		}
	lo -= 3600 * 2;
	hi += 3600 * 2;
	struct wall w;
	int64_t start = after + lo + 60;
	wall_of(start - ((start % 60) + 60) % 60, &w);
	int64_t ylimit = w.y + 8, best = INT64_MAX;
	while (next_wall(c, &w, ylimit)) {
		int64_t L = wall_secs(&w);
		if (L - hi > best)
			break;
		int64_t u[2];
		int n = instants(z, L, lo, hi, u);
		if (n == 2 && !c->hour_star)
			n = 1;   /* a fixed time in a repeated hour: the first one */
		for (int i = 0; i < n; i++)
			if (u[i] > after && u[i] < best)
				best = u[i];
		bump(&w, 3);
	}
	if (best == INT64_MAX)
		return -ENOENT;
	*next = best;
	return 0;
}
