/* cache_parts.c: the components of a cache key (README "Cache"): each
 * field of the attempt's canonical inputs, the extra key strings, the
 * names of the secrets the task uses, the `env` values, the upstream
 * results it can read (on the loop, cheap), and the files of its `inputs`
 * globs (cache_files_work: on libuv's thread pool, or a dry run's thread).
 *
 * Invariant: no component holds a secret's value: inputs and results are
 * masked before they get here, key strings and env values are masked
 * before they are hashed, secrets are named, and only short hashes of
 * values are kept.
 */
#include <errno.h>
#include <glob.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "engine/cache_int.h"
#include "expr/redact.h"
#include "sched/flow.h"

/* ---- the components --------------------------------------------------------------- */

static int set_str(json_t *o, const char *k, const char *v)
{
	return json_object_set_new(o, k, json_string(v)) < 0 ? -ENOMEM : 0;
}

static int set_hash(json_t *o, const char *k, const void *p, size_t n)
{
	char hex[17];
	cache_sha256_hex(p, n, hex, true);
	return set_str(o, k, hex);
}

/* Each field of the canonical inputs, hashed (secrets are masked there). */
static int add_inputs(json_t *c, const char *inputs)
{
	json_t *in = json_loads(inputs, 0, NULL);
	if (!json_is_object(in)) {
		json_decref(in);
		return -EINVAL;
	}
	const char *k;
	json_t *v;
	int r = 0;
	json_object_foreach(in, k, v) {
		if (!strcmp(k, "kind"))
			continue;
		char *text = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
		char *name = buf_strf("inputs.%s", k);
		r = text && name ? set_hash(c, name, text, strlen(text)) : -ENOMEM;
		free(text);
		free(name);
		if (r < 0)
			break;
	}
	json_decref(in);
	return r;
}

/* The extra key strings, rendered and masked, into one hash. */
static int add_key(json_t *c, struct exec_attempt *a, const struct dr_cache *cc, char **err)
{
	if (!cc->n_key)
		return 0;
	struct buf all = BUF_INIT, one = BUF_INIT, masked = BUF_INIT;
	int r = 0;
	for (uint32_t i = 0; i < cc->n_key && r == 0; i++) {
		buf_reset(&one);
		buf_reset(&masked);
		if ((r = exec_render(a, cc->key[i], EXEC_RENDER_PLAIN, &one, err)) < 0)
			break;
		r = a->redactor ? redact_text(a->redactor, one.data ? one.data : "", one.len, &masked)
				: buf_add(&masked, one.data ? one.data : "", one.len);
		char len[24];
		snprintf(len, sizeof(len), "%zu:", masked.len);
		if (r == 0 && (r = buf_adds(&all, len)) == 0)
			r = buf_add(&all, masked.data ? masked.data : "", masked.len);
	}
	if (r == 0)
		r = set_hash(c, "key", all.data ? all.data : "", all.len);
	buf_free(&all);
	buf_free(&one);
	buf_free(&masked);
	return r;
}

/* ---- the names of the secrets a task uses ---- */

struct names {
	char **v;
	size_t n, cap;
};

static int names_add(struct names *s, const char *p, size_t n)
{
	for (size_t i = 0; i < s->n; i++)
		if (strlen(s->v[i]) == n && !memcmp(s->v[i], p, n))
			return 0;
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 8;
		char **v = realloc(s->v, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		s->v = v;
		s->cap = cap;
	}
	return (s->v[s->n] = strndup(p, n)) ? (s->n++, 0) : -ENOMEM;
}

static int is_word(char c)
{
	return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static int scan_secrets(void *ud, uint32_t t, const struct dr_text *x, enum dr_text_use use)
{
	(void)t;
	(void)use;
	static const char pre[] = "secrets.";
	for (uint32_t i = 0; x->s && i + sizeof(pre) - 1 < x->len; i++) {
		if (memcmp(x->s + i, pre, sizeof(pre) - 1) || (i && is_word(x->s[i - 1])))
			continue;
		uint32_t s = i + sizeof(pre) - 1, e = s;
		while (e < x->len && is_word(x->s[e]))
			e++;
		if (e > s && names_add(ud, x->s + s, e - s) < 0)
			return -ENOMEM;
	}
	return 0;
}

static int secret_env(void *ud, const char *name)
{
	return names_add(ud, name, strlen(name));
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* "secrets": the sorted names (secrets.X in the task's strings, the
 * workflow's env, its key strings; the kind's secret variables). */
static int add_secrets(json_t *c, const struct dagrun_workflow *wf, uint32_t t,
		       const struct dr_cache *cc)
{
	struct names s = {0};
	int r = dr_task_each_text(wf, t, scan_secrets, &s);
	if (r == 0)
		r = dr_each_kv(t, &wf->env, DR_USE_PLAIN, scan_secrets, &s);
	for (uint32_t i = 0; r == 0 && i < cc->n_key; i++)
		r = scan_secrets(&s, t, cc->key[i], DR_USE_PLAIN);
	const struct dr_kind *k = wf_task_kind(wf, t);
	if (r == 0 && k->each_secret_env)
		r = k->each_secret_env(wf, t, secret_env, &s);
	struct buf b = BUF_INIT;
	if (r == 0 && s.n) {
		qsort(s.v, s.n, sizeof(*s.v), cmp_str);
		for (size_t i = 0; r == 0 && i < s.n; i++)
			if ((r = buf_adds(&b, i ? "," : "")) == 0)
				r = buf_adds(&b, s.v[i]);
		if (r == 0)
			r = buf_add(&b, "", 1) == 0 ? set_str(c, "secrets", b.data) : -ENOMEM;
	}
	for (size_t i = 0; i < s.n; i++)
		free(s.v[i]);
	free(s.v);
	buf_free(&b);
	return r < 0 ? -ENOMEM : 0;
}

/* "env:NAME": the value's hash (masked first when it holds a secret). */
static int add_env(json_t *c, const struct dr_cache *cc, const struct redactor *red)
{
	int r = 0;
	for (uint32_t i = 0; i < cc->n_env && r == 0; i++) {
		char *name = buf_strf("env:%s", cc->env[i]);
		const char *v = getenv(cc->env[i]);
		struct buf b = BUF_INIT;
		if (!name)
			r = -ENOMEM;
		else if (!v)
			r = set_str(c, name, "unset");
		else if ((r = red ? redact_text(red, v, strlen(v), &b) : buf_adds(&b, v)) == 0)
			r = set_hash(c, name, b.data ? b.data : "", b.len);
		buf_free(&b);
		free(name);
	}
	return r;
}

/* "upstream:ID": each dependency whose result can be read (flow keeps
 * it), without what changes from run to run (attempts, duration). */
static int add_upstream(json_t *c, const struct dagrun_workflow *wf, uint32_t t,
			const struct flow *f)
{
	const struct dr_task *k = &wf->tasks[t];
	int r = 0;
	struct buf b = BUF_INIT;
	for (uint32_t d = 0; f && d < k->dep_count && r == 0; d++) {
		uint32_t dep = wf->deps[k->dep_first + d].target;
		if (!flow_keeps(f, dep))
			continue;
		buf_reset(&b);
		if ((r = flow_result_json(f, dep, &b)) < 0)
			break;
		json_t *j = b.len ? json_loadb(b.data, b.len, 0, NULL) : json_object();
		if (!j) {
			r = -ENOMEM;
			break;
		}
		json_object_del(j, "attempts");
		json_object_del(j, "durationMs");
		char *text = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
		char *name = buf_strf("upstream:%s", wf_task_id(wf, dep));
		r = text && name ? set_hash(c, name, text, strlen(text)) : -ENOMEM;
		free(text);
		free(name);
		json_decref(j);
	}
	buf_free(&b);
	return r;
}

int cache_components(json_t *c, struct exec_attempt *a, const char *kind, const char *inputs,
		     const struct flow *f, char **err)
{
	const struct dr_cache *cc = a->wf->tasks[a->task].opts->cache;
	int r = set_str(c, "version", CACHE_FORMAT);
	if (r == 0)
		r = set_str(c, "kind", kind);
	if (r == 0 && inputs)
		r = add_inputs(c, inputs);
	if (r == 0)
		r = add_key(c, a, cc, err);
	if (r == 0)
		r = add_secrets(c, a->wf, a->task, cc);
	if (r == 0)
		r = add_env(c, cc, a->redactor);
	if (r == 0)
		r = add_upstream(c, a->wf, a->task, f);
	return r;
}

/* ---- files (on the thread pool) ---------------------------------------------------- */


/* The hex SHA-256 of a file's content, short; *bytes grows by its size. */
static int hash_file(const char *path, char hex[17], uint64_t *bytes)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	int r = ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) ? 0 : -ENOMEM;
	static const size_t chunk = 1 << 16;
	char *buf = r == 0 ? malloc(chunk) : NULL;
	if (r == 0 && !buf)
		r = -ENOMEM;
	ssize_t n;
	while (r == 0 && (n = read(fd, buf, chunk)) != 0) {
		if (n < 0) {
			if (errno != EINTR)
				r = -errno;
			continue;
		}
		*bytes += (uint64_t)n;
		if (*bytes > CACHE_MAX_BYTES)
			r = -EFBIG;
		else if (!EVP_DigestUpdate(ctx, buf, (size_t)n))
			r = -ENOMEM;
	}
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned len = 0;
	if (r == 0 && !EVP_DigestFinal_ex(ctx, md, &len))
		r = -ENOMEM;
	for (unsigned i = 0; r == 0 && i < 8; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
	free(buf);
	EVP_MD_CTX_free(ctx);
	close(fd);
	return r;
}

/* A directory a glob cannot read aborts it (then not cached, said); one
 * that does not exist matches nothing. */
static int glob_error(const char *path, int err)
{
	(void)path;
	return err != ENOENT && err != ENOTDIR;
}

void cache_files_work(uv_work_t *req)
{
	struct cache_files_job *j = container_of(req, struct cache_files_job, req);
	size_t dl = strlen(j->dir);
	uint64_t bytes = 0, files = 0;
	j->comp = json_object();
	j->stat = json_object();
	if (!j->comp || !j->stat) {
		j->r = -ENOMEM;
		return;
	}
	for (uint32_t g = 0; g < j->cc->n_inputs && j->r == 0; g++) {
		const char *pat = j->cc->inputs[g];
		char *full = pat[0] == '/' ? strdup(pat) : buf_strf("%s/%s", j->dir, pat);
		glob_t gl;
		memset(&gl, 0, sizeof(gl));
		int gr = full ? glob(full, 0, glob_error, &gl) : GLOB_NOSPACE;
		if (gr == GLOB_NOSPACE) {
			j->r = -ENOMEM;
		} else if (gr == GLOB_ABORTED) {
			j->err = buf_strf("cannot read the directories of input '%s'", pat);
			j->r = -EIO;
		}
		for (size_t i = 0; gr == 0 && j->r == 0 && i < gl.gl_pathc; i++) {
			const char *p = gl.gl_pathv[i];
			struct stat sb;
			if (stat(p, &sb) < 0 || !S_ISREG(sb.st_mode))
				continue;
			const char *rel = pat[0] != '/' && !strncmp(p, j->dir, dl) && p[dl] == '/'
					  ? p + dl + 1 : p;
			if (++files > CACHE_MAX_FILES) {
				j->err = buf_strf("its inputs match more than %d files", CACHE_MAX_FILES);
				j->r = -EFBIG;
				break;
			}
			char st[64], hex[17];
			snprintf(st, sizeof(st), "%lld:%lld.%09ld", (long long)sb.st_size,
				 (long long)sb.st_mtim.tv_sec, (long)sb.st_mtim.tv_nsec);
			char *name = buf_strf("file:%s", rel);
			if (!name) {
				j->r = -ENOMEM;
				break;
			}
			/* the fast path: same size and mtime as the newest entry's */
			const char *was = json_string_value(json_object_get(j->prev_s, rel));
			const char *wh = json_string_value(json_object_get(j->prev_c, name));
			int hr = 0;
			if (was && wh && !strcmp(was, st) && strlen(wh) == 16)
				memcpy(hex, wh, 17);
			else if ((hr = hash_file(p, hex, &bytes)) == -EFBIG)
				j->err = buf_strf("its inputs are more than %llu bytes to hash",
						  (unsigned long long)CACHE_MAX_BYTES);
			else if (hr < 0)
				j->err = buf_strf("cannot read input %s: %s", rel, strerror(-hr));
			if (hr < 0)
				j->r = hr == -ENOMEM ? hr : -EIO;
			else if (set_str(j->comp, name, hex) < 0 || set_str(j->stat, rel, st) < 0)
				j->r = -ENOMEM;
			free(name);
		}
		globfree(&gl);
		free(full);
	}
}
