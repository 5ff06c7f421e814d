/* watchdog_int.h: what watchdog.c (our side) and watchdog_proc.c (the
 * watchdog process) share: the records on the pipe between them and the
 * process's entry points. */
#ifndef DAGRUN_EXEC_WATCHDOG_INT_H
#define DAGRUN_EXEC_WATCHDOG_INT_H

#include <stddef.h>
#include <stdint.h>

#define REC_WATCH 1
#define REC_UNWATCH 2

/* A record on the pipe: op REC_WATCH or REC_UNWATCH of process group pid. */
struct rec {
	int32_t op;
	int32_t pid;
};

/* The watchdog process, in the child after fork(): reads records from rfd,
 * keeps hold (or -1) open until it exits, and at EOF kills and sweeps for
 * needle (NAME=VALUE with its NUL, len bytes; NULL: groups only). */
__attribute__((noreturn)) void watchdog_main(int rfd, int hold, const char *needle,
					    size_t len);

/* Sweeps /proc for processes whose environment holds needle (len bytes
 * with its NUL), SIGKILLing them, again while a sweep finds some or finds
 * a process inside execve(). Returns how many were signalled. */
int watchdog_sweep_all(const char *needle, size_t len);

#endif
