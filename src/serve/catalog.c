/* catalog.c: the workflows of DIR (`*.yaml`, `*.yml`, not in subfolders),
 * each loaded and validated, reloaded when its file changes.
 *
 * A workflow is reached by name only through this table: a name from a URL
 * is looked up here and never joined to a path, so no request can name a
 * file outside DIR. An invalid file stays in the table with its errors
 * (shown on the page), under its file name without the extension.
 * Entries are reference counted: a rescan replaces an entry while a
 * handler still uses the old one.
 */
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "model/model.h"
#include "serve/serve_int.h"
#include "util/cron.h"
#include "util/clock.h"

static void ent_free(struct wfent *e)
{
	if (!e)
		return;
	dagrun_workflow_free(e->wf);
	json_decref(e->errors);
	cron_free(e->cron);
	tz_free(e->tz);
	free(e->path);
	free(e->file);
	free(e->name);
	free(e);
}

static void unref(struct wfent *e)
{
	if (e && --e->refs == 0)
		ent_free(e);
}

static json_t *diags_json(const dagrun_diags *d)
{
	json_t *a = json_array();
	for (size_t i = 0; a && d && i < dagrun_diags_count(d); i++) {
		const dagrun_diag *g = dagrun_diags_get(d, i);
		json_array_append_new(a, json_pack("{s:i, s:i, s:s, s:o}", "line", (int)g->line,
						   "column", (int)g->column, "severity",
						   g->severity == DAGRUN_ERROR ? "error" :
						   g->severity == DAGRUN_WARNING ? "warning" : "note",
						   "message", jstr(g->message)));
	}
	return a;
}

static void add_error(struct wfent *e, const char *msg)
{
	if (!e->errors)
		e->errors = json_array();
	json_array_append_new(e->errors, json_pack("{s:i, s:i, s:s, s:o}", "line", 0, "column", 0,
						   "severity", "error", "message", jstr(msg)));
}

/* The schedule of a valid workflow: the loader checked it, so a failure
 * here is out of memory (or a zone file removed since). */
static void load_schedule(struct wfent *e)
{
	const struct dr_schedule *sv = e->wf->schedule;
	if (!sv || !sv->cron.s)
		return;
	char *err = NULL;
	if (cron_parse(sv->cron.s, &e->cron, &err, NULL) < 0 ||
	    tz_load(sv->timezone.s, &e->tz, &err) < 0) {
		add_error(e, err ? err : "cannot read the schedule");
		cron_free(e->cron);
		e->cron = NULL;
	}
	free(err);
}

static struct wfent *load(const char *dir, const char *file, const struct stat *sb)
{
	struct wfent *e = calloc(1, sizeof(*e));
	if (!e || !(e->path = buf_strf("%s/%s", dir, file)) || !(e->file = strdup(file))) {
		ent_free(e);
		return NULL;
	}
	e->refs = 1;
	e->dev = sb->st_dev;
	e->ino = sb->st_ino;
	e->size = sb->st_size;
	e->mtime_ns = (int64_t)sb->st_mtim.tv_sec * 1000000000 + sb->st_mtim.tv_nsec;
	dagrun_diags *d = dagrun_diags_new(0);
	int r = d ? dagrun_workflow_load(e->path, &e->wf, d) : -ENOMEM;
	e->errors = diags_json(d);
	dagrun_diags_free(d);
	if (r < 0 && !json_array_size(e->errors))
		add_error(e, strerror(-r));
	if (e->wf) {
		e->name = strdup(dagrun_workflow_name(e->wf));
		load_schedule(e);
	} else {
		size_t n = strlen(file);
		const char *dot = strrchr(file, '.');
		e->name = strndup(file, dot ? (size_t)(dot - file) : n);
	}
	if (!e->name) {
		ent_free(e);
		return NULL;
	}
	return e;
}

static bool wanted(const char *name)
{
	size_t n = strlen(name);
	if (name[0] == '.')
		return false;
	return (n > 5 && !strcmp(name + n - 5, ".yaml")) || (n > 4 && !strcmp(name + n - 4, ".yml"));
}

static int by_name(const void *a, const void *b)
{
	const struct wfent *x = *(struct wfent *const *)a, *y = *(struct wfent *const *)b;
	int c = strcmp(x->name, y->name);
	return c ? c : strcmp(x->file, y->file);
}

static struct wfent *find_file(struct catalog *c, const char *file)
{
	for (size_t i = 0; i < c->n; i++)
		if (!strcmp(c->v[i]->file, file))
			return c->v[i];
	return NULL;
}

int catalog_scan(struct serve *s, uint64_t max_age_ms)
{
	struct catalog *c = &s->cat;
	pthread_mutex_lock(&c->mu);
	uint64_t now = clock_mono_ms();
	if (c->scanned_ms && now - c->scanned_ms < max_age_ms) {
		pthread_mutex_unlock(&c->mu);
		return 0;
	}
	DIR *d = opendir(s->dir);
	if (!d) {
		int r = -errno;
		pthread_mutex_unlock(&c->mu);
		serve_log(s, "cannot read %s: %s", s->dir, strerror(-r));
		return r;
	}
	struct wfent **nv = NULL;
	size_t n = 0, cap = 0;
	int r = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		struct stat sb;
		if (!wanted(de->d_name) || fstatat(dirfd(d), de->d_name, &sb, 0) < 0 ||
		    !S_ISREG(sb.st_mode))
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			struct wfent **t = realloc(nv, cap * sizeof(*t));
			if (!t) {
				r = -ENOMEM;
				break;
			}
			nv = t;
		}
		struct wfent *old = find_file(c, de->d_name);
		int64_t mt = (int64_t)sb.st_mtim.tv_sec * 1000000000 + sb.st_mtim.tv_nsec;
		if (old && old->dev == sb.st_dev && old->ino == sb.st_ino &&
		    old->size == sb.st_size && old->mtime_ns == mt) {
			old->refs++;
			nv[n++] = old;
			continue;
		}
		struct wfent *e = load(s->dir, de->d_name, &sb);
		if (!e) {
			r = -ENOMEM;
			break;
		}
		serve_log(s, "%s %s: %s", old ? "reloaded" : "loaded", e->file,
			  e->wf ? "valid" : "invalid");
		nv[n++] = e;
	}
	closedir(d);
	if (r < 0) {
		for (size_t i = 0; i < n; i++)
			unref(nv[i]);
		free(nv);
		pthread_mutex_unlock(&c->mu);
		return r;
	}
	if (n)
		qsort(nv, n, sizeof(*nv), by_name);
	for (size_t i = 0; i < n; i++)
		nv[i]->dup = (i > 0 && !strcmp(nv[i - 1]->name, nv[i]->name)) ||
			     (i + 1 < n && !strcmp(nv[i + 1]->name, nv[i]->name));
	for (size_t i = 0; i < c->n; i++)
		unref(c->v[i]);
	free(c->v);
	c->v = nv;
	c->n = n;
	c->scanned_ms = now;
	pthread_mutex_unlock(&c->mu);
	return 0;
}

struct wfent *catalog_get(struct serve *s, const char *name)
{
	if (!serve_name_ok(name))
		return NULL;
	catalog_scan(s, 1000);
	struct catalog *c = &s->cat;
	struct wfent *e = NULL;
	pthread_mutex_lock(&c->mu);
	for (size_t i = 0; i < c->n && !e; i++)
		if (!strcmp(c->v[i]->name, name)) {
			e = c->v[i];
			e->refs++;
		}
	pthread_mutex_unlock(&c->mu);
	return e;
}

struct wfent **catalog_all(struct serve *s, size_t *n)
{
	catalog_scan(s, 1000);
	struct catalog *c = &s->cat;
	pthread_mutex_lock(&c->mu);
	struct wfent **v = malloc((c->n ? c->n : 1) * sizeof(*v));
	*n = 0;
	for (size_t i = 0; v && i < c->n; i++) {
		v[i] = c->v[i];
		v[i]->refs++;
	}
	if (v)
		*n = c->n;
	pthread_mutex_unlock(&c->mu);
	return v;
}

void catalog_put(struct serve *s, struct wfent *e)
{
	pthread_mutex_lock(&s->cat.mu);
	unref(e);
	pthread_mutex_unlock(&s->cat.mu);
}

void catalog_put_all(struct serve *s, struct wfent **v, size_t n)
{
	pthread_mutex_lock(&s->cat.mu);
	for (size_t i = 0; i < n; i++)
		unref(v[i]);
	pthread_mutex_unlock(&s->cat.mu);
	free(v);
}

void catalog_free(struct serve *s)
{
	for (size_t i = 0; i < s->cat.n; i++)
		unref(s->cat.v[i]);
	free(s->cat.v);
	s->cat.v = NULL;
	s->cat.n = 0;
}
