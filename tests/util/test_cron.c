/* test_cron.c: five-field cron expressions and zones (src/util/cron.c,
 * tz.c) on a table: ranges, steps, lists, names, day-of-month with
 * day-of-week, month ends, leap days, DST changes both ways in a tz
 * database zone and a POSIX TZ string, expressions that never fire, and
 * expressions refused. The clock is injected: each row gives the time to
 * start from; nothing reads the wall clock. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "util/cron.h"

/* "2026-03-29T01:00:00Z" as seconds since the epoch. */
static int64_t utc(const char *s)
{
	struct tm tm = {0};
	if (!strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm))
		fail_msg("bad time in the table: %s", s);
	return (int64_t)timegm(&tm);
}

struct row {
	const char *expr, *zone, *after, *next; /* next NULL: never fires */
};

static const struct row rows[] = {
	/* steps, strictly after */
	{"*/15 * * * *", NULL, "2026-01-01T00:00:00Z", "2026-01-01T00:15:00Z"},
	{"*/15 * * * *", NULL, "2026-01-01T00:07:30Z", "2026-01-01T00:15:00Z"},
	{"*/15 * * * *", NULL, "2026-01-01T23:59:00Z", "2026-01-02T00:00:00Z"},
	/* a range with a step; a value with a step runs to the field's end */
	{"0 9-17/4 * * *", NULL, "2026-03-02T10:00:00Z", "2026-03-02T13:00:00Z"},
	{"0 9-17/4 * * *", NULL, "2026-03-02T17:00:00Z", "2026-03-03T09:00:00Z"},
	{"5/20 * * * *", NULL, "2026-03-02T10:46:00Z", "2026-03-02T11:05:00Z"},
	/* lists, month names */
	{"30 2 1,15 * *", NULL, "2026-01-15T02:30:00Z", "2026-02-01T02:30:00Z"},
	{"15,45 8 * jan,jul *", NULL, "2026-01-31T08:45:00Z", "2026-07-01T08:15:00Z"},
	/* month ends and leap days */
	{"0 0 31 * *", NULL, "2026-01-31T00:00:00Z", "2026-03-31T00:00:00Z"},
	{"0 0 29 2 *", NULL, "2026-01-01T00:00:00Z", "2028-02-29T00:00:00Z"},
	{"59 23 31 12 *", NULL, "2026-12-31T23:59:00Z", "2027-12-31T23:59:00Z"},
	/* day of week: 0 and 7 are Sunday; names */
	{"0 12 * * 0", NULL, "2026-01-01T00:00:00Z", "2026-01-04T12:00:00Z"},
	{"0 12 * * 7", NULL, "2026-01-01T00:00:00Z", "2026-01-04T12:00:00Z"},
	{"0 12 * * mon-fri", NULL, "2026-01-02T12:00:00Z", "2026-01-05T12:00:00Z"},
	/* both day fields restricted: either matches (2026-06-01 is a Monday) */
	{"0 0 1 * mon", NULL, "2026-06-01T00:00:00Z", "2026-06-08T00:00:00Z"},
	{"0 0 1 * mon", NULL, "2026-06-29T00:00:00Z", "2026-07-01T00:00:00Z"},
	/* day of month restricted, day of week `*`: the month day only */
	{"0 0 13 * *", NULL, "2026-01-01T00:00:00Z", "2026-01-13T00:00:00Z"},
	/* macros */
	{"@daily", NULL, "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z"},
	{"@hourly", NULL, "2026-01-01T00:30:00Z", "2026-01-01T01:00:00Z"},
	{"@weekly", NULL, "2026-01-01T00:00:00Z", "2026-01-04T00:00:00Z"},
	{"@monthly", NULL, "2026-01-15T00:00:00Z", "2026-02-01T00:00:00Z"},
	{"@yearly", NULL, "2026-01-15T00:00:00Z", "2027-01-01T00:00:00Z"},
	/* never */
	{"0 0 30 2 *", NULL, "2026-01-01T00:00:00Z", NULL},
	{"0 0 31 4,6,9,11 *", NULL, "2026-01-01T00:00:00Z", NULL},
	/* a zone: 09:00 in Berlin is 08:00 UTC in winter, 07:00 in summer */
	{"0 9 * * *", "Europe/Berlin", "2026-01-10T12:00:00Z", "2026-01-11T08:00:00Z"},
	{"0 9 * * *", "Europe/Berlin", "2026-07-10T12:00:00Z", "2026-07-11T07:00:00Z"},
	/* spring forward (2026-03-29, 02:00 CET -> 03:00 CEST at 01:00 UTC):
	 * 02:30 does not exist; it fires once, when the clock jumps */
	{"30 2 * * *", "Europe/Berlin", "2026-03-28T12:00:00Z", "2026-03-29T01:00:00Z"},
	{"30 2 * * *", "Europe/Berlin", "2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z"},
	{"*/30 * * * *", "Europe/Berlin", "2026-03-29T00:30:00Z", "2026-03-29T01:00:00Z"},
	/* fall back (2026-10-25, 03:00 CEST -> 02:00 CET at 01:00 UTC): 02:30
	 * exists twice; a fixed hour fires the first time only */
	{"30 2 * * *", "Europe/Berlin", "2026-10-24T12:00:00Z", "2026-10-25T00:30:00Z"},
	{"30 2 * * *", "Europe/Berlin", "2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"},
	/* ... an hour field `*` fires in both */
	{"30 * * * *", "Europe/Berlin", "2026-10-25T00:30:00Z", "2026-10-25T01:30:00Z"},
	{"*/30 * * * *", "Europe/Berlin", "2026-10-25T00:30:00Z", "2026-10-25T01:00:00Z"},
	/* the same rules from a POSIX TZ string (New York: 2026-03-08 02:00
	 * EST -> 03:00 EDT at 07:00 UTC) and from the tz database */
	{"30 2 * * *", "EST5EDT,M3.2.0,M11.1.0", "2026-03-07T12:00:00Z", "2026-03-08T07:00:00Z"},
	{"30 2 * * *", "America/New_York", "2026-03-07T12:00:00Z", "2026-03-08T07:00:00Z"},
	/* fall back in New York is 2026-11-01 at 06:00 UTC: 08:00 EST after it */
	{"0 8 * * *", "America/New_York", "2026-11-01T12:00:00Z", "2026-11-01T13:00:00Z"},
	{"0 8 * * *", "America/New_York", "2026-10-31T13:00:00Z", "2026-11-01T13:00:00Z"},
	{"0 0 * * *", "UTC", "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z"},
};

static void next_times_match_the_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(*rows); i++) {
		const struct row *r = &rows[i];
		struct cron *c = NULL;
		struct tz *z = NULL;
		char *err = NULL;
		if (cron_parse(r->expr, &c, &err, NULL) < 0)
			fail_msg("row %zu: '%s' refused: %s", i, r->expr, err ? err : "?");
		if (r->zone && tz_load(r->zone, &z, &err) < 0)
			fail_msg("row %zu: zone %s: %s", i, r->zone, err ? err : "?");
		int64_t next = 0;
		int rc = cron_next(c, z, utc(r->after), &next);
		if (!r->next) {
			if (rc != -ENOENT)
				fail_msg("row %zu: '%s' fires at %lld, expected never", i, r->expr,
					 (long long)next);
		} else if (rc < 0 || next != utc(r->next)) {
			time_t t = (time_t)next;
			char got[32];
			strftime(got, sizeof(got), "%Y-%m-%dT%H:%M:%SZ", gmtime(&t));
			fail_msg("row %zu: '%s' in %s after %s: got %s (rc %d), expected %s", i,
				 r->expr, r->zone ? r->zone : "UTC", r->after, rc < 0 ? "-" : got, rc,
				 r->next);
		}
		cron_free(c);
		tz_free(z);
	}
}

static void bad_expressions_are_refused_naming_the_field(void **state)
{
	(void)state;
	static const struct {
		const char *expr;
		unsigned off;          /* the field at fault */
	} bad[] = {
		{"60 * * * *", 0}, {"* 24 * * *", 2}, {"* * 0 * *", 4}, {"* * 32 * *", 4},
		{"* * * 13 *", 6}, {"* * * * 8", 8}, {"*/0 * * * *", 0}, {"5-1 * * * *", 0},
		{"* * * foo *", 6}, {"* * *", 0}, {"* * * * * *", 0}, {"", 0}, {"@often", 0},
		{"1,,2 * * * *", 0}, {"* * * * mon-", 8},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		struct cron *c = NULL;
		char *err = NULL;
		unsigned off = 99;
		int rc = cron_parse(bad[i].expr, &c, &err, &off);
		if (rc != -EINVAL || !err || !*err)
			fail_msg("'%s': rc %d, err %s: expected -EINVAL with a message", bad[i].expr,
				 rc, err ? err : "NULL");
		if (off != bad[i].off)
			fail_msg("'%s': the fault is said at byte %u, expected %u (%s)", bad[i].expr,
				 off, bad[i].off, err);
		free(err);
		cron_free(c);
	}
}

static void unknown_zones_are_refused(void **state)
{
	(void)state;
	static const char *const bad[] = {"Mars/Olympus", "../../etc/passwd", "Europe/../../x"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		struct tz *z = NULL;
		char *err = NULL;
		int rc = tz_load(bad[i], &z, &err);
		if (rc >= 0 || !err)
			fail_msg("zone '%s' accepted", bad[i]);
		free(err);
		tz_free(z);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(next_times_match_the_table),
		cmocka_unit_test(bad_expressions_are_refused_naming_the_field),
		cmocka_unit_test(unknown_zones_are_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
