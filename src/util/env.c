/* env.c: environment lookups; see env.h. Linear in the entries: an
 * environment has tens to hundreds of them, and each lookup is per task or
 * per expression, never per byte of output. */
#include "util/env.h"

#include <string.h>

extern char **environ;

const char *env_lookup(char *const *envp, const char *name, size_t len, size_t *scanned)
{
	size_t i = 0;
	const char *v = NULL;
	if (!envp)
		envp = environ;
	if (envp && len && !memchr(name, '=', len))
		for (; envp[i]; i++)
			if (!strncmp(envp[i], name, len) && envp[i][len] == '=') {
				v = envp[i] + len + 1;
				break;
			}
	if (scanned)
		*scanned = i;
	return v;
}

const char *env_get(char *const *envp, const char *name)
{
	return env_lookup(envp, name, strlen(name), NULL);
}
