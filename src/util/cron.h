/* cron.h: five-field cron expressions and time zones, for the schedules
 * of `dagrun serve` (checked by the loader, fired by src/serve/schedule.c).
 *
 * A schedule is `MIN HOUR DAY-OF-MONTH MONTH DAY-OF-WEEK` (minute 0-59,
 * hour 0-23, day 1-31, month 1-12 or jan-dec, day of week 0-7 or sun-sat,
 * 0 and 7 both Sunday), each field `*`, a value, a range `a-b`, a step
 * `*\/n` or `a-b/n` or `a/n` (from a to the field's end), or a list of
 * those separated by commas; or one of @yearly (@annually), @monthly,
 * @weekly, @daily (@midnight), @hourly. When both day fields are
 * restricted (neither starts with `*`), a day matches when EITHER matches
 * (the classic cron rule: `0 0 1 * mon` is the 1st and every Monday).
 *
 * Times are evaluated on the wall clock of a zone (tz_load). Across a DST
 * change: a wall time that does not exist (the hour skipped in spring)
 * fires once, at the moment the clock jumps; a wall time that exists twice
 * (the hour repeated in autumn) fires once, the first time, unless the
 * hour field is `*` (a job of every hour, or every few minutes), which
 * fires in both.
 *
 * Nothing here reads the clock: cron_next takes the time to start from,
 * so the tests (and the server's sped-up test clock) inject it.
 */
#ifndef DAGRUN_UTIL_CRON_H
#define DAGRUN_UTIL_CRON_H

#include <stdint.h>

struct cron;
struct tz;

/* Parses expr. Returns 0 and *out (cron_free it), -EINVAL with *err (a
 * malloc'd message) and *err_off (the byte offset in expr of the field at
 * fault; err_off may be NULL), or -ENOMEM. */
int cron_parse(const char *expr, struct cron **out, char **err, unsigned *err_off);
void cron_free(struct cron *c);

/* The first time strictly after `after` (seconds since the epoch) that c
 * fires in zone z (NULL: UTC). Returns 0 and *next, or -ENOENT when c
 * never fires in the 8 years after (`0 0 30 2 *`). */
int cron_next(const struct cron *c, const struct tz *z, int64_t after, int64_t *next);

/* Loads zone `name`: a name of the tz database (Europe/Berlin, UTC, read
 * from $TZDIR or /usr/share/zoneinfo), or a POSIX TZ string
 * (EST5EDT,M3.2.0,M11.1.0); NULL or "" is the local zone ($TZ, else
 * /etc/localtime, else UTC). Returns 0 and *out, -ENOENT (unknown zone)
 * or -EINVAL (a name that cannot be one) with *err, or -ENOMEM. */
int tz_load(const char *name, struct tz **out, char **err);
void tz_free(struct tz *z);

/* Seconds east of UTC in zone z (NULL: UTC) at time t. */
int32_t tz_offset(const struct tz *z, int64_t t);

/* Calendar helpers shared by cron.c and tz.c: days since 1970-01-01 of a
 * proleptic Gregorian date, and back. */
int64_t tz_days_from_civil(int64_t y, int m, int d);
void tz_civil_from_days(int64_t days, int64_t *y, int *m, int *d);

#endif
