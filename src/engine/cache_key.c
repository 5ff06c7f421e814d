/* cache_key.c: a cache key from its components, and why two sets of
 * components differ (README "Cache").
 *
 * Components are a flat JSON object of name to string: "version", "kind",
 * "inputs.<field>" (a short hash of each field of the attempt's canonical
 * inputs, secrets masked), "key" (the extra key strings, masked, hashed),
 * "secrets" (the names of the secrets the task uses: never a value),
 * "env:<NAME>", "file:<path>" and "upstream:<task>" (short hashes). The key
 * is the SHA-256 of their canonical text: equal components, equal keys.
 * Pure functions, no state: explain and the unit tests call them too.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "engine/cache.h"
#include "util/buf.h"

void cache_sha256_hex(const void *s, size_t n, char *hex, bool short_)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned len = 0;
	if (!EVP_Digest(s, n, md, &len, EVP_sha256(), NULL))
		len = 0;
	size_t want = short_ ? 8 : 32;
	for (size_t i = 0; i < want; i++)
		snprintf(hex + 2 * i, 3, "%02x", i < len ? md[i] : 0);
	hex[2 * want] = '\0';
}

int cache_key_of(const json_t *c, char hex[65])
{
	char *text = json_dumps(c, JSON_COMPACT | JSON_SORT_KEYS);
	if (!text)
		return -ENOMEM;
	cache_sha256_hex(text, strlen(text), hex, false);
	free(text);
	return 0;
}

static int rank(const char *name)
{
	/* an upstream result first: what it changes in the rendered inputs
	 * follows from it */
	static const char *const order[] = {"version", "kind", "upstream:", "inputs.", "key",
					    "secrets", "env:", "file:"};
	for (int i = 0; i < (int)(sizeof(order) / sizeof(order[0])); i++)
		if (!strncmp(name, order[i], strlen(order[i])))
			return i;
	return 8;
}

static int cmp_names(const void *a, const void *b)
{
	const char *x = *(const char *const *)a, *y = *(const char *const *)b;
	int d = rank(x) - rank(y);
	return d ? d : strcmp(x, y);
}

/* The names that differ, sorted by rank then name, in a malloc'd array of
 * borrowed strings (*n of them); NULL with *n 0 when none or on OOM
 * (*oom set). */
static const char **differing(const json_t *old, const json_t *now, size_t *n, bool *oom)
{
	size_t cap = json_object_size(old) + json_object_size(now), k = 0;
	*n = 0;
	*oom = false;
	const char **v = calloc(cap ? cap : 1, sizeof(*v));
	if (!v) {
		*oom = true;
		return NULL;
	}
	const char *name;
	json_t *val;
	json_object_foreach((json_t *)now, name, val) {
		const json_t *o = json_object_get(old, name);
		if (!o || !json_equal(o, val))
			v[k++] = name;
	}
	json_object_foreach((json_t *)old, name, val)
		if (!json_object_get(now, name))
			v[k++] = name;
	qsort(v, k, sizeof(*v), cmp_names);
	*n = k;
	return v;
}

json_t *cache_diff(const json_t *old, const json_t *now)
{
	size_t n;
	bool oom;
	const char **v = differing(old, now, &n, &oom);
	json_t *a = oom ? NULL : json_array();
	for (size_t i = 0; a && i < n; i++)
		if (json_array_append_new(a, json_string(v[i])) < 0) {
			json_decref(a);
			a = NULL;
		}
	free(v);
	return a;
}

char *cache_reason(const json_t *old, const json_t *now)
{
	size_t n;
	bool oom;
	const char **v = differing(old, now, &n, &oom);
	if (oom)
		return NULL;
	char *s = NULL;
	if (!n) {
		s = strdup("miss: key changed");
		free(v);
		return s;
	}
	const char *name = v[0];
	bool was = json_object_get(old, name) != NULL, is = json_object_get(now, name) != NULL;
	const char *what = !was ? "added" : !is ? "removed" : "changed";
	char *head;
	if (!strcmp(name, "version"))
		head = strdup("miss: cache format changed");
	else if (!strcmp(name, "kind"))
		head = strdup("miss: kind changed");
	else if (!strncmp(name, "inputs.", 7))
		head = buf_strf("miss: %s %s", name + 7, what);
	else if (!strcmp(name, "key"))
		head = buf_strf("miss: key %s", what);
	else if (!strcmp(name, "secrets"))
		head = strdup("miss: secrets used changed");
	else if (!strncmp(name, "env:", 4))
		head = buf_strf("miss: env %s: %s", what, name + 4);
	else if (!strncmp(name, "file:", 5))
		head = buf_strf("miss: input %s: %s", what, name + 5);
	else if (!strncmp(name, "upstream:", 9))
		head = buf_strf("miss: upstream %s: %s", was && is ? "result changed" : what,
				name + 9);
	else
		head = buf_strf("miss: %s %s", name, what);
	if (head && n > 1) {
		s = buf_strf("%s (and %zu more)", head, n - 1);
		free(head);
		head = s;
	}
	free(v);
	return head;
}
