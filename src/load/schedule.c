/* schedule.c: the top-level keys only `dagrun serve` reads: `schedule`
 * (five-field cron), `timezone`, `overlap` and `catchup` (docs/workflow.md,
 * "Schedules"), and `trigger` (incoming webhooks: README "Incoming
 * webhooks"). A run ignores them; they are checked here so that a
 * schedule that cannot be read, or a zone this machine does not know, is
 * an error at its FILE:LINE:COL in `dagrun validate` and on the server's
 * page, never a server that silently does not run the workflow.
 */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "load/loader.h"
#include "util/cron.h"

static struct dr_schedule *schedule_of(struct loader *ld)
{
	struct dagrun_workflow *wf = ld->wf;
	if (!wf->schedule) {
		struct dr_schedule *sv = arena_calloc(&wf->arena, sizeof(*sv));
		if (!sv) {
			load_oom(ld);
			return NULL;
		}
		wf->schedule = sv;
	}
	return (struct dr_schedule *)wf->schedule;
}

void load_key_schedule(struct loader *ld, void *obj)
{
	(void)obj;
	struct dr_schedule *sv = schedule_of(ld);
	if (!sv || !read_nonempty(ld, &sv->cron))
		return;
	struct cron *c = NULL;
	char *err = NULL;
	unsigned off = 0;
	int r = cron_parse(sv->cron.s, &c, &err, &off);
	if (r == -ENOMEM)
		load_oom(ld);
	else if (r < 0)
		load_error(ld, (struct pos){sv->cron.line, sv->cron.col + off},
			   "invalid schedule: %s", err ? err : "?");
	cron_free(c);
	free(err);
}

void load_key_timezone(struct loader *ld, void *obj)
{
	(void)obj;
	struct dr_schedule *sv = schedule_of(ld);
	if (!sv || !read_nonempty(ld, &sv->timezone))
		return;
	struct tz *z = NULL;
	char *err = NULL;
	int r = tz_load(sv->timezone.s, &z, &err);
	if (r == -ENOMEM)
		load_oom(ld);
	else if (r < 0)
		load_error(ld, (struct pos){sv->timezone.line, sv->timezone.col}, "%s",
			   err ? err : "unknown time zone");
	tz_free(z);
	free(err);
}

void load_key_overlap(struct loader *ld, void *obj)
{
	static const char *const names[] = {"skip", "queue", "allow"};
	(void)obj;
	struct dr_schedule *sv = schedule_of(ld);
	int v = sv ? read_enum(ld, names, 3) : -1;
	if (v >= 0)
		sv->overlap = (uint8_t)v;
}

void load_key_catchup(struct loader *ld, void *obj)
{
	(void)obj;
	struct dr_schedule *sv = schedule_of(ld);
	if (sv)
		read_bool(ld, &sv->catchup);
}

void load_schedule_check(struct loader *ld, const struct map_seen *seen, unsigned first)
{
	static const char *const keys[] = {"timezone", "overlap", "catchup"};
	if (ld->stop || (seen->mask >> first) & 1)
		return;
	for (unsigned k = 0; k < 3; k++)
		if ((seen->mask >> (first + 1 + k)) & 1)
			load_error(ld, seen->at[first + 1 + k],
				   "'%s' needs 'schedule': it says how scheduled runs behave",
				   keys[k]);
	/* without a schedule, the others mean nothing: none is kept */
	ld->wf->schedule = NULL;
}

/* ---- trigger ------------------------------------------------------------------ */

static void t_secret(struct loader *ld, void *obj)
{
	struct dr_trigger *t = obj;
	if (!read_nonempty(ld, &t->secret))
		return;
	/* Exactly `{{ secrets.NAME }}`: the server evaluates no expression,
	 * it looks NAME up. */
	const char *s = t->secret.s, *e = s + t->secret.len;
	while (s < e && isspace((unsigned char)*s))
		s++;
	while (e > s && isspace((unsigned char)e[-1]))
		e--;
	const char *n = NULL, *ne = NULL;
	if (e - s > 4 && !memcmp(s, "{{", 2) && !memcmp(e - 2, "}}", 2)) {
		const char *p = s + 2, *q = e - 2;
		while (p < q && isspace((unsigned char)*p))
			p++;
		while (q > p && isspace((unsigned char)q[-1]))
			q--;
		if (q - p > 8 && !memcmp(p, "secrets.", 8) &&
		    (isalpha((unsigned char)p[8]) || p[8] == '_')) {
			n = p + 8;
			for (ne = n; ne < q && (isalnum((unsigned char)*ne) || *ne == '_');)
				ne++;
			if (ne != q)
				n = NULL;
		}
	}
	if (!n) {
		load_error(ld, (struct pos){t->secret.line, t->secret.col},
			   "trigger secret: write it as \"{{ secrets.NAME }}\" (the server "
			   "looks NAME up in its environment and --secrets-file; a literal "
			   "secret in the file would be readable by anyone who reads the file)");
		return;
	}
	char *name = arena_strndup(&ld->wf->arena, n, (size_t)(ne - n));
	if (!name) {
		load_oom(ld);
		return;
	}
	t->secret_name = (struct dr_text){name, (uint32_t)(ne - n), t->secret.line,
					  t->secret.col};
}

static const struct keydef trigger_keys[] = {KEY("secret", t_secret)};
static const struct keytab trigger_tab = {"trigger", trigger_keys, 1, NULL, NULL};

void load_key_trigger(struct loader *ld, void *obj)
{
	(void)obj;
	struct pos at = load_pos(ld);
	struct dr_trigger *t = arena_calloc(&ld->wf->arena, sizeof(*t));
	struct map_seen seen;
	if (!t) {
		load_oom(ld);
		return;
	}
	if (!read_submap(ld, &trigger_tab, t, &seen))
		return;
	if (!seen_or_hinted(&seen, 0)) {
		load_error(ld, at, "missing required key 'secret' in trigger: incoming "
			   "webhooks are signed with it");
		return;
	}
	if (t->secret_name.s)
		ld->wf->trigger = t;
}
