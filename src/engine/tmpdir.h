/* tmpdir.h: the run's private temporary directory (engine.c's). */
#ifndef DAGRUN_ENGINE_TMPDIR_H
#define DAGRUN_ENGINE_TMPDIR_H

#include <stddef.h>

/* Makes a new directory $TMPDIR/dagrun-XXXXXX (/tmp when TMPDIR is unset
 * or empty; at most 40 bytes of it), mode 0700, its path written into
 * path (size bytes). Returns 0, -ENAMETOOLONG or mkdtemp's -errno. */
int tmpdir_make(char *path, size_t size);

/* Removes the directory at path and whatever tasks left in it
 * ($DAGRUN_OUTPUT made a directory, a tree, links), never following a
 * symbolic link: a task that replaced it by a link gets its link removed,
 * not the target emptied. An empty path is nothing to do. Returns 0 (path
 * then emptied) or the first -errno (what failed is left, the rest
 * removed; -E2BIG: a tree deeper than 32 levels). */
int tmpdir_remove(char *path);

#endif
