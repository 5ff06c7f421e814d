/* schedule.c: the top-level keys only `dagrun serve` reads: `schedule`
 * (five-field cron), `timezone`, `overlap` and `catchup` (docs/workflow.md,
 * "Schedules"). A run ignores them; they are checked here so that a
 * schedule that cannot be read, or a zone this machine does not know, is
 * an error at its FILE:LINE:COL in `dagrun validate` and on the server's
 * page, never a server that silently does not run the workflow.
 */
#include <errno.h>
#include <stdlib.h>

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
