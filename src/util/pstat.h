/* pstat.h: what /proc/PID/stat says of a process that dagrun needs to
 * recognise it later: its start time.
 *
 * A pid is reused once its process is reaped; (pid, start time) is not: the
 * start time (clock ticks since boot, field 22) tells a process from a later
 * one that got its pid, within one boot. The store records it with each
 * attempt and lease, so that resume and the lease check never take a
 * stranger for one of ours.
 */
#ifndef DAGRUN_UTIL_PSTAT_H
#define DAGRUN_UTIL_PSTAT_H

#include <stdbool.h>
#include <stdint.h>

/* The start time of process pid in clock ticks since boot, or 0 when there
 * is no such process (or /proc cannot tell). *zombie (may be NULL) is set
 * when the process has exited and waits to be reaped (state Z or X): its
 * start time is still given. Never blocks (one read of a small file). */
uint64_t pstat_start_time(int64_t pid, bool *zombie);

#endif
