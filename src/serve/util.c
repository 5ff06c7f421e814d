/* util.c: what the server's handlers share: finding a run, strings as
 * secrets, names, the server's own directories in the state
 * directory, and the read-only store connections (a small pool: SQLite
 * queries on one connection are serialised, so each request takes its own
 * and a slow query holds up no other). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "serve/serve_int.h"
#include "util/dotenv.h"
#include "util/file.h"
#include "util/text.h"

bool serve_name_ok(const char *name)
{
	size_t n = strlen(name);
	if (!n || n > 256 || !strcmp(name, ".") || !strcmp(name, ".."))
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)name[i] < 0x20 || name[i] == '/' || name[i] == '\\')
			return false;
	return true;
}

char *serve_subdir(struct serve *s, const char *sub)
{
	char *base = buf_strf("%s/serve", s->state);
	char *p = base ? buf_strf("%s/%s", base, sub) : NULL;
	if (p && ((mkdir(base, 0700) < 0 && errno != EEXIST) ||
		  (mkdir(p, 0700) < 0 && errno != EEXIST))) {
		free(p);
		p = NULL;
	}
	free(base);
	return p;
}

/* NAME from the secrets file, read as the runs read it (util/dotenv.c):
 * refused when others may read it or a line is malformed (said in *why). */
static char *secret_from_file(const char *path, const char *name, char **why)
{
	char *data = NULL, *out = NULL;
	size_t len = 0;
	unsigned line = 0;
	struct stat sb;
	if (!path)
		return NULL;
	if (stat(path, &sb) == 0 && (sb.st_mode & 077)) {
		*why = buf_strf("--secrets-file %s: others may read it (mode %03o)", path,
				(unsigned)sb.st_mode & 0777);
		return NULL;
	}
	char *err = NULL;
	if (file_read_regular(path, 1u << 20, &data, &len, &err) < 0) {
		*why = buf_strf("--secrets-file %s: %s", path, err ? err : "unreadable");
		free(err);
		return NULL;
	}
	int r = memchr(data, 0, len) ? -EINVAL : dotenv_find(data, len, name, &out, &line);
	if (r < 0)
		*why = r == -ENOMEM ? NULL : buf_strf("--secrets-file %s line %u: not KEY=VALUE",
						      path, line);
	explicit_bzero(data, len);
	free(data);
	return r > 0 ? out : NULL;
}

char *serve_secret(struct serve *s, const char *name, char **why)
{
	/* As in a run: the process environment first, then the file. */
	const char *e = getenv(name);
	*why = NULL;
	if (e)
		return strdup(e);
	return secret_from_file(s->o.secrets_file, name, why);
}

struct store *find_run(struct serve *s, struct req *rq, const char *ref,
		       struct arena *mem, struct store_run_info *ri)
{
	if (strcmp(ref, "last") && !store_run_id_valid(ref)) {
		reply_error(rq, 404, "no run matches '%s'", ref);
		return NULL;
	}
	struct store *st = readers_get_or_503(s, rq);
	if (!st)
		return NULL;
	char *err = NULL;
	int r = st->ops->find_run(st, ref, NULL, mem, ri, &err);
	if (r == 0) {
		serve_run_settle(ri);
		free(err);
		return st;
	}
	readers_put(s, st);
	if (r == -ENOENT)
		reply_error(rq, 404, "no run matches '%s'", ref);
	else if (r == -EINVAL)
		reply_error(rq, 400, "%s", err ? err : "ambiguous run");
	else
		reply_error(rq, 500, "%s", err ? err : strerror(-r));
	free(err);
	return NULL;
}

/* ---- the readers ------------------------------------------------------------ */

struct store *readers_get(struct serve *s, char **err)
{
	struct readers *rd = &s->rd;
	*err = NULL;
	pthread_mutex_lock(&rd->mu);
	while (!rd->n_idle && rd->n_open >= SERVE_READERS)
		pthread_cond_wait(&rd->cv, &rd->mu);
	if (rd->n_idle) {
		struct store *st = rd->idle[--rd->n_idle];
		pthread_mutex_unlock(&rd->mu);
		return st;
	}
	rd->n_open++;
	pthread_mutex_unlock(&rd->mu);
	struct store_opts o = {.dir = s->state, .read_only = true};
	struct store *st = NULL;
	int r = store_open(&store_sqlite_ops, &o, &st, err);
	if (r < 0) {
		if (!*err)
			*err = strdup(strerror(-r));
		pthread_mutex_lock(&rd->mu);
		rd->n_open--;
		pthread_cond_signal(&rd->cv);
		pthread_mutex_unlock(&rd->mu);
		return NULL;
	}
	return st;
}

struct store *readers_get_or_503(struct serve *s, struct req *rq)
{
	char *err = NULL;
	struct store *st = readers_get(s, &err);
	if (!st)
		reply_error(rq, 503, "the store cannot be read: %s", err ? err : "?");
	free(err);
	return st;
}

void readers_put(struct serve *s, struct store *st)
{
	if (!st)
		return;
	pthread_mutex_lock(&s->rd.mu);
	s->rd.idle[s->rd.n_idle++] = st;
	pthread_cond_signal(&s->rd.cv);
	pthread_mutex_unlock(&s->rd.mu);
}

void readers_free(struct serve *s)
{
	for (size_t i = 0; i < s->rd.n_idle; i++)
		store_close(s->rd.idle[i]);
	s->rd.n_idle = 0;
}
