/* pstat.c: the start time of a process from /proc/PID/stat; see pstat.h.
 * The command name (field 2) may hold spaces and parentheses: fields are
 * counted from the last ')'. */
#include "util/pstat.h"

#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

uint64_t pstat_start_time(int64_t pid, bool *zombie)
{
	char path[64], buf[1024];
	if (zombie)
		*zombie = false;
	if (pid <= 0)
		return 0;
	snprintf(path, sizeof(path), "/proc/%" PRId64 "/stat", pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	char *p = strrchr(buf, ')');
	if (!p || p[1] != ' ' || !p[2])
		return 0;
	if (zombie)
		*zombie = p[2] == 'Z' || p[2] == 'X';
	p += 2;
	/* Field 3 is the state; the start time is field 22. */
	for (int field = 3; field < 22; field++) {
		p = strchr(p, ' ');
		if (!p)
			return 0;
		p++;
	}
	return strtoull(p, NULL, 10);
}
