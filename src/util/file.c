/* file.c: small files read without blocking; see file.h. */
#include "util/file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/buf.h"

const char *file_kind(mode_t m)
{
	return S_ISREG(m) ? "a regular file" : S_ISDIR(m) ? "a directory" :
	       S_ISFIFO(m) ? "a FIFO" : S_ISSOCK(m) ? "a socket" :
	       S_ISCHR(m) ? "a character device" : S_ISBLK(m) ? "a block device" :
	       S_ISLNK(m) ? "a symbolic link" : "a special file";
}

int file_lift_fd(int *fd)
{
	if (*fd >= 3)
		return 0;
	int n = fcntl(*fd, F_DUPFD_CLOEXEC, 3);
	if (n < 0)
		return -errno;
	close(*fd);
	*fd = n;
	return 0;
}

char *file_join(const char *dir, const char *path)
{
	if (path[0] == '/' || !dir)
		return strdup(path);
	return buf_strf("%s/%s", dir, path);
}

/* A size as a message says it: "1 MiB", "64 KiB" or "1000 bytes". */
static char *size_text(size_t n)
{
	if (n && n % ((size_t)1 << 20) == 0)
		return buf_strf("%zu MiB", n >> 20);
	if (n && n % 1024 == 0)
		return buf_strf("%zu KiB", n >> 10);
	return buf_strf("%zu bytes", n);
}

static int too_large(size_t max, char **why)
{
	char *s = size_text(max);
	*why = s ? buf_strf("is larger than %s", s) : NULL;
	free(s);
	return *why ? -EFBIG : -ENOMEM;
}

static int failed(int err, char **why)
{
	*why = strdup(strerror(-err));
	return *why ? err : -ENOMEM;
}

int file_read_regular(const char *path, size_t max, char **data, size_t *len, char **why)
{
	struct stat st;
	char *d = NULL;
	size_t n = 0;
	int r = 0;
	*data = NULL;
	*len = 0;
	*why = NULL;
	int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	/* A socket cannot be opened (ENXIO): say what it is. */
	int e = fd < 0 || fstat(fd, &st) < 0 ? errno : 0;
	if (e && !(e == ENXIO && stat(path, &st) == 0 && !S_ISREG(st.st_mode))) {
		r = failed(-e, why);
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		*why = buf_strf("is %s, not a regular file", file_kind(st.st_mode));
		r = !*why ? -ENOMEM : S_ISDIR(st.st_mode) ? -EISDIR : -EINVAL;
		goto out;
	}
	if ((uint64_t)st.st_size > max) {
		r = too_large(max, why);
		goto out;
	}
	/* The size may change while we read: read to the end, up to the cap. */
	size_t cap = (size_t)st.st_size < max ? (size_t)st.st_size + 1 : max + 1;
	if (!(d = malloc(cap + 1))) {
		r = -ENOMEM;
		goto out;
	}
	for (;;) {
		if (n == cap) {
			if (n > max) {
				r = too_large(max, why);
				goto out;
			}
			size_t nc = cap * 2 < max + 1 ? cap * 2 : max + 1;
			char *g = realloc(d, nc + 1);
			if (!g) {
				r = -ENOMEM;
				goto out;
			}
			d = g;
			cap = nc;
		}
		ssize_t k = read(fd, d + n, cap - n);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0) {
			r = failed(-errno, why);
			goto out;
		}
		if (k == 0)
			break;
		n += (size_t)k;
	}
	if (n > max) {
		r = too_large(max, why);
		goto out;
	}
	d[n] = '\0';
	*data = d;
	*len = n;
	d = NULL;
out:
	if (fd >= 0)
		close(fd);
	free(d);
	return r;
}
