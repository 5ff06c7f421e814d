/* env.h: looking a name up in an environment block (an envp array of
 * "NAME=VALUE" strings, as execve takes and environ is).
 *
 * The one lookup every module uses, so that the engine's own environment,
 * a task's and the one extended by --secrets-file are read by the same
 * rule: the first entry whose name is exactly the one asked wins (as
 * getenv), and a name that is empty or holds '=' is never found.
 */
#ifndef DAGRUN_UTIL_ENV_H
#define DAGRUN_UTIL_ENV_H

#include <stddef.h>

/* The value of the variable name[0 .. len) in envp (NULL: the process's
 * environ), or NULL when it is not set. The value points into envp (valid
 * while envp is). *scanned (may be NULL) gets the number of entries looked
 * at, for a caller that charges the work. */
const char *env_lookup(char *const *envp, const char *name, size_t len, size_t *scanned);

/* env_lookup with a NUL-terminated name. */
const char *env_get(char *const *envp, const char *name);

#endif
