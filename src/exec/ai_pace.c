/* ai_pace.c: pacing: a reply that says a rate limit is spent holds every
 * later request to the same base URL until its reset; attempts started
 * meanwhile, and those that failed before sending, are parked on one timer
 * (ax->tick), armed for the earliest of their wake times.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "exec/ai_int.h"

/* ---- pacing ----------------------------------------------------------------- */

static void on_tick(uv_timer_t *t);

uint64_t ax_pace_get(const struct ai_executor *ax, const char *base)
{
	for (const struct pace *p = ax->paces; p; p = p->next)
		if (!strcmp(p->base, base))
			return p->not_before;
	return 0;
}

/* Holds requests to base until `until`; drops holds that have ended. On
 * OOM there is no hold (the server will answer 429 instead). */
void ax_pace_set(struct ai_executor *ax, const char *base, uint64_t until, uint64_t now)
{
	struct pace **pp = &ax->paces, *found = NULL;
	while (*pp) {
		struct pace *p = *pp;
		if (!strcmp(p->base, base)) {
			found = p;
		} else if (p->not_before <= now) {
			*pp = p->next;
			free(p->base);
			free(p);
			continue;
		}
		pp = &p->next;
	}
	if (!found) {
		if (!(found = calloc(1, sizeof(*found))) || !(found->base = strdup(base))) {
			free(found);
			return;
		}
		found->next = ax->paces;
		ax->paces = found;
	}
	if (until > found->not_before)
		found->not_before = until;
}

static uint64_t deadline(const struct ax_attempt *st)
{
	return st->timeout_ms ? st->started + st->timeout_ms : UINT64_MAX;
}

/* When st must be looked at again. */
static uint64_t wake(const struct ai_executor *ax, const struct ax_attempt *st)
{
	if (st->cancelled || st->park == PARK_FAILED)
		return 0;
	uint64_t nb = ax_pace_get(ax, st->base), d = deadline(st);
	return nb < d ? nb : d;
}

void ax_rearm(struct ai_executor *ax)
{
	if (!ax->parked) {
		uv_timer_stop(&ax->tick);
		return;
	}
	uint64_t at = UINT64_MAX, now = ax_now_ms(ax->loop);
	for (const struct ax_attempt *st = ax->parked; st; st = st->next) {
		uint64_t w = wake(ax, st);
		if (w < at)
			at = w;
	}
	uv_timer_start(&ax->tick, on_tick, at > now ? at - now : 0, 0);
}

void ax_park(struct ax_attempt *st, enum park how)
{
	struct ai_executor *ax = st->ax;
	struct ax_attempt **pp = &ax->parked;
	while (*pp)
		pp = &(*pp)->next;
	st->park = (uint8_t)how;
	st->next = NULL;
	*pp = st;
	ax_rearm(ax);
}

static void on_tick(uv_timer_t *t)
{
	struct ai_executor *ax = t->data;
	struct ax_attempt *list = ax->parked, *keep = NULL, **kt = &keep;
	ax->parked = NULL;
	uint64_t now = ax_now_ms(ax->loop);
	while (list) {
		struct ax_attempt *st = list;
		list = st->next;
		st->next = NULL;
		if (st->cancelled || st->park == PARK_FAILED) {
			ax_report(st);
			continue;
		}
		int r = now >= deadline(st) ? -ETIME : 0;
		if (r == 0 && now >= ax_pace_get(ax, st->base)) {
			st->park = PARK_NONE;
			if ((r = ax_send(st, now)) == 0)
				continue;
		}
		if (r < 0) {
			ax_send_failed(st, r);
			ax_report(st);
			continue;
		}
		*kt = st;
		kt = &st->next;
	}
	*kt = ax->parked;   /* attempts parked by the reports above */
	ax->parked = keep;
	ax_rearm(ax);
}
