/* tmpdir.c: the run's private temporary directory ($DAGRUN_OUTPUT files,
 * scripts): made with mkdtemp under $TMPDIR, removed as a tree at the end.
 *
 * Invariant: removal never follows a symbolic link, at any level (a task
 * may have put one anywhere, even in place of the directory itself), and
 * goes at most TMPDIR_DEPTH_MAX levels down.
 */
#include "engine/tmpdir.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

int tmpdir_make(char *path, size_t size)
{
	const char *base = getenv("TMPDIR");
	if (!base || !*base)
		base = "/tmp";
	if (snprintf(path, size, "%.40s/dagrun-XXXXXX", base) >= (int)size)
		return -ENAMETOOLONG;
	if (!mkdtemp(path))
		return -errno;
	return 0;
}

#define TMPDIR_DEPTH_MAX 32   /* levels of a tree a task left that we remove;
				* the warning below says 32 */

static int empty_dir(int fd, int depth);

/* Removes the directory name in parent (depth levels below the top) and
 * what it holds. It is opened relative to its parent without following a
 * symbolic link (O_NOFOLLOW | O_DIRECTORY: a link a task put there, even in
 * place of a directory, is never followed) and made writable (a task may
 * have made it read-only). Returns 0 or -errno (-E2BIG: too deep, a code
 * none of the calls here returns). */
static int remove_subdir(int parent, const char *name, int depth)
{
	if (depth >= TMPDIR_DEPTH_MAX)
		return -E2BIG;
	int fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	(void)fchmod(fd, S_IRWXU);
	int r = empty_dir(fd, depth + 1);
	if (r == 0 && unlinkat(parent, name, AT_REMOVEDIR) < 0)
		r = -errno;
	return r;
}

/* Removes every entry of the directory open as fd (closed here): unlinked
 * (a link itself, never its target), or, when unlink says EISDIR, removed
 * as a directory. Returns 0, or the first -errno (what failed is left, the
 * rest removed). */
static int empty_dir(int fd, int depth)
{
	DIR *d = fdopendir(fd);
	if (!d) {
		int e = -errno;
		close(fd);
		return e;
	}
	int r = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		const char *n = de->d_name;
		if (n[0] == '.' && (!n[1] || (n[1] == '.' && !n[2])))
			continue;
		int e = unlinkat(dirfd(d), n, 0) == 0 ? 0 : -errno;
		if (e == -EISDIR)
			e = remove_subdir(dirfd(d), n, depth);
		if (e < 0 && !r)
			r = e;
	}
	closedir(d);
	return r;
}

int tmpdir_remove(char *path)
{
	if (!path[0])
		return 0;
	int r = 0, fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		r = errno == ENOENT ? 0 : unlink(path) == 0 ? 0 : -errno;
	} else {
		r = empty_dir(fd, 0);
		if (rmdir(path) < 0 && !r)
			r = -errno;
	}
	if (r == 0)
		path[0] = '\0';
	return r;
}
