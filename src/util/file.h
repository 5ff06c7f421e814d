/* file.h: reading a small file that a workflow names, without ever
 * waiting on it.
 *
 * A path in a workflow may name a FIFO (open() would wait for a writer,
 * read() for data), a directory (fopen succeeds, read fails), a device or
 * a file of any size. file_read_regular opens with O_NONBLOCK (a FIFO
 * opens at once), reads only a regular file (fstat on the open
 * descriptor: no race with a rename) and only up to a cap, and says why
 * not in words the caller puts after the file's name.
 */
#ifndef DAGRUN_UTIL_FILE_H
#define DAGRUN_UTIL_FILE_H

#include <stddef.h>
#include <sys/types.h>

/* What a file of mode m is, for a message: "a directory", "a FIFO", "a
 * socket", "a character device", "a block device", "a regular file",
 * "a symbolic link", else "a special file". */
const char *file_kind(mode_t m);

/* Moves *fd to a descriptor >= 3 (close-on-exec), closing the old one, so
 * that a child's dup2 of it onto 0, 1 or 2 always clears close-on-exec.
 * Returns 0 or -errno (*fd unchanged). */
int file_lift_fd(int *fd);

/* path when it is absolute or dir is NULL, else dir/path; malloc'd (the
 * caller frees it), NULL on OOM. */
char *file_join(const char *dir, const char *path);

/* Reads the whole regular file at path into *data (malloc'd, with a NUL
 * after its *len bytes; the caller frees it), never blocking: opened
 * O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY, refused unless fstat says
 * it is a regular file, at most max bytes. Returns 0; -ENOMEM (*why NULL);
 * or another -errno with *why a malloc'd reason to follow the file's name
 * ("is a directory, not a regular file", "is larger than 1 MiB", "No such
 * file or directory"): open's or read's error, -EISDIR (a directory),
 * -EINVAL (another kind of file), -EFBIG (more than max bytes). */
int file_read_regular(const char *path, size_t max, char **data, size_t *len, char **why);

#endif
