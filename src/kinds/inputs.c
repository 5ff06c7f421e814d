/* inputs.c: the canonical inputs of an attempt (kind.inputs), one JSON
 * object per attempt that the store records, replay compares and a cache
 * key can hash.
 *
 * Invariant: the object holds what the executor is given, rendered by the
 * same callback (exec_attempt.render) with the same escaping, and every
 * string in it is masked with the run's redactor before it leaves this
 * file (a secret is recorded, and compared, as its mask). Keys are sorted
 * and the text compact, so equal inputs are equal bytes.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "expr/redact.h"
#include "kinds/kind.h"
#include "util/buf.h"

json_t *kinds_json_string(const char *s, size_t n)
{
	json_t *j = json_stringn(s, n);
	if (j)
		return j;
	struct buf b = BUF_INIT;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		int r = c < 0x80 ? buf_add(&b, s + i, 1) : buf_adds(&b, "\xef\xbf\xbd");
		if (r < 0) {
			buf_free(&b);
			return NULL;
		}
	}
	/* multi-byte characters became U+FFFD each byte: lossy, but valid */
	j = json_stringn(b.data ? b.data : "", b.len);
	buf_free(&b);
	return j;
}

static int set(json_t *o, const char *key, json_t *v)
{
	return v && json_object_set_new(o, key, v) == 0 ? 0 : -ENOMEM;
}

int kind_inputs_text(struct exec_attempt *a, json_t *o, const char *key,
		     const struct dr_text *t, int mode, char **err)
{
	if (!t || !t->s)
		return 0;
	struct buf b = BUF_INIT;
	int r = exec_render(a, t, mode, &b, err);
	if (r == 0)
		r = set(o, key, kinds_json_string(b.data ? b.data : "", b.len));
	else if (r != -ENOMEM)
		r = -EINVAL;
	buf_free(&b);
	return r;
}

int kind_inputs_kvs(struct exec_attempt *a, json_t *o, const char *key,
		    const struct dr_kvlist *l, int mode, char **err)
{
	if (!l->n)
		return 0;
	json_t *m = json_object();
	int r = m ? 0 : -ENOMEM;
	for (uint32_t i = 0; i < l->n && r == 0; i++) {
		char *name = strndup(l->v[i].key.s ? l->v[i].key.s : "", l->v[i].key.len);
		r = name ? kind_inputs_text(a, m, name, &l->v[i].value, mode, err) : -ENOMEM;
		free(name);
	}
	if (r == 0)
		return set(o, key, m);
	json_decref(m);
	return r;
}

int kind_inputs_value(struct exec_attempt *a, json_t *o, const char *key,
		      const struct dr_value *v, char **err)
{
	if (!v)
		return 0;
	json_t *j = NULL;
	int r = exec_value_json(a, v, &j, err);
	if (r < 0)
		return r;
	return set(o, key, j);
}

int kind_inputs_process(struct exec_attempt *a, json_t *o, char **err)
{
	const struct dr_task *t = &a->wf->tasks[a->task];
	int r = 0;
	if (t->opts && t->opts->workdir)
		r = kind_inputs_text(a, o, "workdir", t->opts->workdir, EXEC_RENDER_PLAIN, err);
	if (r < 0 || (!a->wf->env.n && !(t->opts && t->opts->env.n)))
		return r;
	json_t *env = json_object();
	if (!env)
		return -ENOMEM;
	/* the workflow's, then the task's over it (as the process gets them) */
	if ((r = kind_inputs_kvs(a, env, "w", &a->wf->env, EXEC_RENDER_PLAIN, err)) == 0 && t->opts)
		r = kind_inputs_kvs(a, env, "t", &t->opts->env, EXEC_RENDER_PLAIN, err);
	json_t *merged = r == 0 ? json_object() : NULL;
	if (r == 0 && (!merged || (json_object_get(env, "w") &&
				   json_object_update(merged, json_object_get(env, "w")) < 0) ||
		       (json_object_get(env, "t") &&
			json_object_update(merged, json_object_get(env, "t")) < 0)))
		r = -ENOMEM;
	json_decref(env);
	if (r < 0) {
		json_decref(merged);
		return r;
	}
	return set(o, "env", merged);
}

int kinds_mask_json(const struct redactor *red, json_t *j)
{
	if (!red || !j)
		return 0;
	if (json_is_string(j)) {
		const char *s = json_string_value(j);
		size_t n = json_string_length(j);
		if (!redact_contains(red, s, n))
			return 0;
		struct buf b = BUF_INIT;
		int r = redact_text(red, s, n, &b);
		if (r == 0 && json_string_setn(j, b.data ? b.data : "", b.len) < 0)
			r = -ENOMEM;
		buf_free(&b);
		return r;
	}
	if (json_is_array(j)) {
		for (size_t i = 0; i < json_array_size(j); i++) {
			int r = kinds_mask_json(red, json_array_get(j, i));
			if (r < 0)
				return r;
		}
		return 0;
	}
	if (json_is_object(j)) {
		const char *k;
		json_t *v;
		json_object_foreach(j, k, v) {
			int r = kinds_mask_json(red, v);
			if (r < 0)
				return r;
		}
	}
	return 0;
}

int kinds_inputs(const struct kind *k, struct exec_attempt *a, char **out, char **err)
{
	*out = NULL;
	*err = NULL;
	if (!k->inputs)
		return 0;
	json_t *o = json_object();
	int r = o ? set(o, "kind", json_string(k->load.model.name)) : -ENOMEM;
	if (r == 0)
		r = k->inputs(a, o, err);
	if (r == 0)
		r = kinds_mask_json(a->redactor, o);
	if (r == 0 && !(*out = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS |
					  JSON_REAL_PRECISION(17))))
		r = -ENOMEM;
	json_decref(o);
	if (r == -EINVAL && *err) {
		/* the message may quote a rendered value */
		struct buf b = BUF_INIT;
		if (redact_text(a->redactor, *err, strlen(*err), &b) == 0 && b.data) {
			free(*err);
			*err = buf_steal(&b);
		}
		buf_free(&b);
	}
	return r;
}
