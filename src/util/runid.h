/* runid.h: run ids, unique across machines and sortable by start time.
 *
 * A run id is `YYYYMMDD-HHMMSS.mmm-xxxxxxxxxxxx`: the UTC wall clock to the
 * millisecond when it was made, then 48 random bits (getrandom) in
 * lower-case hex. RUNID_LEN (32) characters from [0-9a-f.-], so it is safe in file
 * names, URLs and environment values. Invariants: ids made at different
 * milliseconds sort (as byte strings) in the order they were made, as long
 * as the clock does not go back; ids made in the same millisecond differ
 * with probability 1 - 2^-48 per pair, whatever machine or process made
 * them (no pid, no counter that two machines could share).
 */
#ifndef DAGRUN_UTIL_RUNID_H
#define DAGRUN_UTIL_RUNID_H

#include <stdint.h>

#define RUNID_LEN 32

/* Writes a new run id and its NUL into out. Never blocks: when the kernel's
 * random pool is not ready yet (early boot) or getrandom is missing, the
 * random part comes from the monotonic clock, the pid, the thread and a
 * per-process counter mixed together (still distinct between processes
 * and calls of one machine). Returns 0, or -errno from the clock. */
int runid_new(char out[static RUNID_LEN + 1]);

/* The same for a run starting at now_ms (ms since the epoch, UTC), for a
 * caller that already read the clock. Returns 0, or -EOVERFLOW for a year
 * past 9999. */
int runid_make(char out[static RUNID_LEN + 1], uint64_t now_ms);

#endif
