/* store.c: what every store backend shares: run ids (util/runid.h's, the
 * one generator of the project) and the names of statuses.
 */
#include <string.h>

#include "store/store.h"
#include "util/runid.h"

_Static_assert(STORE_RUN_ID_SIZE == RUNID_LEN + 1, "run ids: one format");

int store_run_id_make(char out[STORE_RUN_ID_SIZE], uint64_t now_ms)
{
	return runid_make(out, now_ms);
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
