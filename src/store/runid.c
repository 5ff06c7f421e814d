/* runid.c: run ids (time plus randomness) and the names of statuses.
 *
 * An id is "YYYYMMDD-HHMMSS-mmm-rrrrrrrrrrrr": the UTC start time to the
 * millisecond, so ids sort by start time whatever the time zone, then 48
 * bits from getrandom(2), so two processes (or machines) starting a run in
 * the same millisecond collide with odds of 2^-48 (a thousand in one
 * millisecond: 2^-29); the store refuses a duplicate, and begin() then
 * makes another.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "store/store.h"

int store_run_id_make(char out[STORE_RUN_ID_SIZE], uint64_t now_ms)
{
	unsigned char rnd[6];
	size_t got = 0;
	while (got < sizeof(rnd)) {
		ssize_t n = getrandom(rnd + got, sizeof(rnd) - got, 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		got += (size_t)n;
	}
	time_t sec = (time_t)(now_ms / 1000);
	struct tm tm;
	if (!gmtime_r(&sec, &tm))
		return -EINVAL;
	unsigned long long r = 0;
	for (size_t i = 0; i < sizeof(rnd); i++)
		r = r << 8 | rnd[i];
	int w = snprintf(out, STORE_RUN_ID_SIZE, "%04d%02d%02d-%02d%02d%02d-%03u-%012llx",
			 (tm.tm_year + 1900) % 10000, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
			 tm.tm_min, tm.tm_sec, (unsigned)(now_ms % 1000), r);
	return w == STORE_RUN_ID_SIZE - 1 ? 0 : -EINVAL;
}

bool store_run_id_valid(const char *s)
{
	size_t n = s ? strlen(s) : 0;
	if (n == 0 || n > 64 || s[0] == '.')
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '.' || c == '-'))
			return false;
	}
	return true;
}

const char *store_task_status_name(int status)
{
	static const char *const names[STORE_TASK_NSTATUS] = {
		"pending", "running", "completed", "failed", "retrying", "skipped",
		"cancelled", "interrupted",
	};
	return status >= 0 && status < STORE_TASK_NSTATUS ? names[status] : "?";
}

const char *store_run_status_name(int status)
{
	static const char *const names[STORE_RUN_NSTATUS] = {
		"running", "completed", "failed", "cancelled", "interrupted",
	};
	return status >= 0 && status < STORE_RUN_NSTATUS ? names[status] : "?";
}
