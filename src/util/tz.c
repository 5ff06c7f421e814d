/* tz.c: time zones without the C library's global state.
 *
 * localtime_r and mktime read one process-wide zone ($TZ, tzset); the
 * server needs a zone per workflow, on its own threads, so it reads the
 * tz database itself: a TZif file (RFC 8536, versions 1 to 4: the 64-bit
 * block when there is one) gives the transitions, and its footer, a POSIX
 * TZ string, the rule after the last one (slim files hold only that). A
 * POSIX TZ string may also be given alone.
 * Invariant: trans[] is increasing; types[idx[i]] holds from trans[i] on.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "util/cron.h"
#include "util/buf.h"
#include "util/file.h"

struct rule {                 /* one end of DST: a date rule and a time */
	char kind;                /* 'M', 'J' (1-365, no Feb 29) or 'n' (0-365) */
	int m, w, d, n;
	int32_t secs;             /* local time of day of the change */
};

struct tz {
	int64_t *trans;
	uint8_t *idx;
	size_t n;
	int32_t *off;             /* by type */
	size_t ntypes;
	int32_t first_off;        /* before the first transition */
	bool has_rule, has_dst;
	int32_t std_off, dst_off; /* of the footer (seconds east) */
	struct rule start, end;
};

void tz_free(struct tz *z)
{
	if (!z)
		return;
	free(z->trans);
	free(z->idx);
	free(z->off);
	free(z);
}

/* ---- calendar ------------------------------------------------------------- */

int64_t tz_days_from_civil(int64_t y, int m, int d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	int64_t yoe = y - era * 400;
	int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

void tz_civil_from_days(int64_t days, int64_t *y, int *m, int *d)
{
	int64_t z = days + 719468;
	int64_t era = (z >= 0 ? z : z - 146096) / 146097;
	int64_t doe = z - era * 146097;
	int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	int64_t mp = (5 * doy + 2) / 153;
	*d = (int)(doy - (153 * mp + 2) / 5 + 1);
	*m = (int)(mp < 10 ? mp + 3 : mp - 9);
	*y = yoe + era * 400 + (*m <= 2);
}

static int64_t year_of(int64_t t)
{
	int64_t y;
	int m, d;
	tz_civil_from_days((t >= 0 ? t : t - 86399) / 86400, &y, &m, &d);
	return y;
}

static bool leap(int64_t y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int mdays(int64_t y, int m)
{
	static const int d[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	return m == 2 && leap(y) ? 29 : d[m - 1];
}

/* The local time (seconds from the year's wall-clock epoch days) at which
 * rule r changes in year y. */
static int64_t rule_time(const struct rule *r, int64_t y)
{
	int64_t day;
	if (r->kind == 'J') {
		day = tz_days_from_civil(y, 1, 1) + r->n - 1 + (leap(y) && r->n >= 60);
	} else if (r->kind == 'n') {
		day = tz_days_from_civil(y, 1, 1) + r->n;
	} else {
		int64_t first = tz_days_from_civil(y, r->m, 1);
		int wd = (int)(((first % 7) + 11) % 7); /* 1970-01-01 was a Thursday (4) */
		int d = 1 + (r->d - wd + 7) % 7 + (r->w - 1) * 7;
		while (d > mdays(y, r->m))
			d -= 7;
		day = first + d - 1;
	}
	return day * 86400 + r->secs;
}

static int32_t rule_offset(const struct tz *z, int64_t t)
{
	if (!z->has_dst)
		return z->std_off;
	int64_t y = year_of(t + z->std_off);
	int64_t start = rule_time(&z->start, y) - z->std_off;
	int64_t end = rule_time(&z->end, y) - z->dst_off;
	bool dst = start < end ? (t >= start && t < end) : (t < end || t >= start);
	return dst ? z->dst_off : z->std_off;
}

int32_t tz_offset(const struct tz *z, int64_t t)
{
	if (!z)
		return 0;
	if (!z->n || t < z->trans[0])
		return z->n || !z->has_rule ? z->first_off : rule_offset(z, t);
	if (t >= z->trans[z->n - 1] && z->has_rule)
		return rule_offset(z, t);
	size_t lo = 0, hi = z->n; /* last i with trans[i] <= t */
	while (hi - lo > 1) {
		size_t mid = (lo + hi) / 2;
		if (z->trans[mid] <= t)
			lo = mid;
		else
			hi = mid;
	}
	return z->off[z->idx[lo]];
}

/* ---- POSIX TZ strings --------------------------------------------------------- */

static bool p_name(const char **p)
{
	const char *s = *p;
	if (*s == '<') {
		const char *e = strchr(s, '>');
		if (!e || e - s < 4)
			return false;
		*p = e + 1;
		return true;
	}
	size_t n = 0;
	while ((s[n] >= 'A' && s[n] <= 'Z') || (s[n] >= 'a' && s[n] <= 'z'))
		n++;
	if (n < 3)
		return false;
	*p = s + n;
	return true;
}

/* [+-]hh[:mm[:ss]] as seconds; false when absent or malformed. */
static bool p_hms(const char **p, int32_t *out, int max_h)
{
	const char *s = *p;
	int sign = 1;
	if (*s == '+' || *s == '-')
		sign = *s++ == '-' ? -1 : 1;
	if (*s < '0' || *s > '9')
		return false;
	long v[3] = {0, 0, 0};
	for (int i = 0; i < 3; i++) {
		if (i && *s != ':')
			break;
		if (i)
			s++;
		if (*s < '0' || *s > '9')
			return false;
		char *e;
		v[i] = strtol(s, &e, 10);
		if (e - s > 3)
			return false;
		s = e;
	}
	if (v[0] > max_h || v[1] > 59 || v[2] > 59)
		return false;
	*out = sign * (int32_t)(v[0] * 3600 + v[1] * 60 + v[2]);
	*p = s;
	return true;
}

static bool p_num(const char **p, int lo, int hi, int *out)
{
	char *e;
	if (**p < '0' || **p > '9')
		return false;
	long v = strtol(*p, &e, 10);
	if (v < lo || v > hi)
		return false;
	*out = (int)v;
	*p = e;
	return true;
}

static bool p_rule(const char **p, struct rule *r)
{
	const char *s = *p;
	if (*s == 'M') {
		s++;
		r->kind = 'M';
		if (!p_num(&s, 1, 12, &r->m) || *s++ != '.' || !p_num(&s, 1, 5, &r->w) ||
		    *s++ != '.' || !p_num(&s, 0, 6, &r->d))
			return false;
	} else if (*s == 'J') {
		s++;
		r->kind = 'J';
		if (!p_num(&s, 1, 365, &r->n))
			return false;
	} else {
		r->kind = 'n';
		if (!p_num(&s, 0, 365, &r->n))
			return false;
	}
	r->secs = 7200;
	if (*s == '/') {
		s++;
		if (!p_hms(&s, &r->secs, 167))
			return false;
	}
	*p = s;
	return true;
}

/* Parses a POSIX TZ string into z's rule. */
static bool parse_posix(const char *s, struct tz *z)
{
	int32_t off;
	if (!p_name(&s) || !p_hms(&s, &off, 24))
		return false;
	z->std_off = z->dst_off = -off;
	z->has_rule = true;
	if (!*s)
		return true;
	if (!p_name(&s))
		return false;
	z->has_dst = true;
	z->dst_off = z->std_off + 3600;
	if (*s && *s != ',') {
		if (!p_hms(&s, &off, 24))
			return false;
		z->dst_off = -off;
	}
	if (!*s) {   /* no rule given: the US rule, as glibc assumes */
		z->start = (struct rule){'M', 3, 2, 0, 0, 7200};
		z->end = (struct rule){'M', 11, 1, 0, 0, 7200};
		return true;
	}
	if (*s++ != ',' || !p_rule(&s, &z->start) || *s++ != ',' || !p_rule(&s, &z->end))
		return false;
	return *s == 0;
}

/* ---- TZif ----------------------------------------------------------------------- */

static uint32_t be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int64_t be64(const unsigned char *p)
{
	return (int64_t)((uint64_t)be32(p) << 32 | be32(p + 4));
}

static bool parse_tzif(const unsigned char *d, size_t len, struct tz *z)
{
	if (len < 44 || memcmp(d, "TZif", 4))
		return false;
	int ver = d[4];
	const unsigned char *h = d;
	size_t tsize = 4;
	for (int pass = 0; pass < 2; pass++) {
		uint32_t isut = be32(h + 20), isstd = be32(h + 24), leapc = be32(h + 28);
		uint32_t timec = be32(h + 32), typec = be32(h + 36), charc = be32(h + 40);
		size_t body = timec * tsize + timec + typec * 6 + charc + leapc * (tsize + 4) +
			      isstd + isut;
		if (timec > 1000000 || typec == 0 || typec > 256 ||
		    (size_t)(h - d) + 44 + body > len)
			return false;
		if (pass == 0 && ver >= '2') {
			h += 44 + body;   /* the 64-bit block follows */
			tsize = 8;
			if ((size_t)(h - d) + 44 > len || memcmp(h, "TZif", 4))
				return false;
			continue;
		}
		const unsigned char *p = h + 44;
		z->n = timec;
		z->ntypes = typec;
		z->trans = malloc((timec ? timec : 1) * sizeof(*z->trans));
		z->idx = malloc(timec ? timec : 1);
		z->off = malloc(typec * sizeof(*z->off));
		if (!z->trans || !z->idx || !z->off)
			return false;
		for (uint32_t i = 0; i < timec; i++, p += tsize)
			z->trans[i] = tsize == 8 ? be64(p) : (int32_t)be32(p);
		for (uint32_t i = 0; i < timec; i++) {
			z->idx[i] = *p++;
			if (z->idx[i] >= typec)
				return false;
		}
		int first = -1;
		for (uint32_t i = 0; i < typec; i++, p += 6) {
			z->off[i] = (int32_t)be32(p);
			if (first < 0 && !p[4])
				first = (int)i;
		}
		z->first_off = z->off[first < 0 ? 0 : first];
		for (uint32_t i = 1; i < timec; i++)
			if (z->trans[i] <= z->trans[i - 1])
				return false;
		if (tsize == 8) {
			const unsigned char *f = h + 44 + body, *end = d + len;
			if (f < end && *f == '\n') {
				const unsigned char *nl = memchr(f + 1, '\n', (size_t)(end - f - 1));
				if (nl && nl > f + 1) {
					char rule[128];
					size_t n = (size_t)(nl - f - 1);
					if (n < sizeof(rule)) {
						memcpy(rule, f + 1, n);
						rule[n] = 0;
						struct tz r = {0};
						if (parse_posix(rule, &r)) {
							z->has_rule = true;
							z->has_dst = r.has_dst;
							z->std_off = r.std_off;
							z->dst_off = r.dst_off;
							z->start = r.start;
							z->end = r.end;
						}
					}
				}
			}
		}
		return true;
	}
	return false;
}

static bool name_ok(const char *name)
{
	if (name[0] == '/' || strstr(name, ".."))
		return false;
	for (const char *p = name; *p; p++)
		if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
		      (*p >= '0' && *p <= '9') || strchr("/_+-", *p)))
			return false;
	return *name != 0;
}

static int load_file(const char *path, struct tz *z)
{
	char *data = NULL, *why = NULL;
	size_t len = 0;
	int r = file_read_regular(path, 1u << 20, &data, &len, &why);
	free(why);
	if (r < 0)
		return r;
	r = parse_tzif((const unsigned char *)data, len, z) ? 0 : -EINVAL;
	free(data);
	return r;
}

int tz_load(const char *name, struct tz **out, char **err)
{
	*out = NULL;
	*err = NULL;
	struct tz *z = calloc(1, sizeof(*z));
	if (!z)
		return -ENOMEM;
	const char *dir = getenv("TZDIR");
	if (!dir || !*dir)
		dir = "/usr/share/zoneinfo";
	int r = 0;
	char *path = NULL;
	bool local = !name || !*name;
	if (local) {
		const char *env = getenv("TZ");
		if (env && *env == ':')
			env++;
		if (env && *env && env[0] != '/' && name_ok(env)) {
			name = env;
		} else {
			r = load_file(env && env[0] == '/' ? env : "/etc/localtime", z);
			if (r < 0) {     /* no local zone: UTC */
				tz_free(z);
				z = calloc(1, sizeof(*z));
				r = z ? 0 : -ENOMEM;
			}
			goto out;
		}
	}
	if (name_ok(name)) {
		if (!(path = buf_strf("%s/%s", dir, name))) {
			r = -ENOMEM;
			goto out;
		}
		r = load_file(path, z);
		if (r == 0 || r == -ENOMEM)
			goto out;
	}
	tz_free(z);
	z = calloc(1, sizeof(*z));
	if (!z) {
		r = -ENOMEM;
		goto out;
	}
	if (!strcmp(name, "UTC") || parse_posix(name, z)) {
		r = 0;
		goto out;
	}
	r = -ENOENT;
	*err = buf_strf("unknown time zone '%.80s': not in %s, and not a POSIX TZ string "
			"(EST5EDT,M3.2.0,M11.1.0)", name, dir);
out:
	free(path);
	if (r < 0) {
		tz_free(z);
		z = NULL;
	}
	*out = z;
	return r;
}
