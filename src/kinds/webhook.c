/* webhook.c: the `webhook` kind: a signed POST of a JSON payload (default:
 * the run's summary) to a url, with an idempotency key. Runs on the HTTP
 * executor (kinds/api.c, exec/http.c); its results carry DAGRUN_EXT_HTTP.
 */
#include "exec/http.h"
#include "kinds/kind.h"

static void w_url(struct loader *ld, void *obj)
{
	read_url(ld, &((struct dr_webhook *)obj)->url);
}

static void w_event(struct loader *ld, void *obj)
{
	read_nonempty(ld, &((struct dr_webhook *)obj)->event);
}

static void w_payload(struct loader *ld, void *obj)
{
	((struct dr_webhook *)obj)->payload = read_value(ld, false);
}

static void w_secret(struct loader *ld, void *obj)
{
	read_nonempty(ld, &((struct dr_webhook *)obj)->secret);
}

static void w_headers(struct loader *ld, void *obj)
{
	read_kvlist(ld, &((struct dr_webhook *)obj)->headers, NAME_HEADER);
}

static const struct keydef webhook_keys[] = {
	KEY("url", w_url), KEY("event", w_event), KEY("payload", w_payload),
	KEY("secret", w_secret), KEY("headers", w_headers),
};
static const struct keytab webhook_tab = {"webhook", webhook_keys, 5, NULL, NULL};

/* `webhook:` a mapping of the keys above; url (key 0) is required. */
static void k_webhook(struct loader *ld, void *obj)
{
	struct map_seen seen;
	struct pos at = load_pos(ld);
	if (read_submap(ld, &webhook_tab, obj, &seen) && !seen_or_hinted(&seen, 0))
		load_error(ld, at, "missing required key 'url' in webhook");
}

/* Fingerprint: headers and payload. */
static void mix(const void *spec, struct dr_mix *m)
{
	const struct dr_webhook *w = spec;
	uint64_t n = w->headers.n;
	m->bytes(m, &n, sizeof(n));
	for (uint32_t i = 0; i < w->headers.n; i++) {
		m->text(m, &w->headers.v[i].key);
		m->text(m, &w->headers.v[i].value);
	}
	m->value(m, w->payload);
}

static int each_text(const struct dagrun_workflow *wf, uint32_t t, dr_text_fn fn, void *ud)
{
	const struct dr_webhook *w = wf->tasks[t].spec;
	int r;
	if ((r = dr_each_text(t, &w->url, DR_USE_URL, fn, ud)) ||
	    (r = dr_each_text(t, &w->event, DR_USE_HEADER, fn, ud)) ||
	    (r = dr_each_text(t, &w->secret, DR_USE_PLAIN, fn, ud)) ||
	    (r = dr_each_kv(t, &w->headers, DR_USE_HEADER, fn, ud)))
		return r;
	return dr_each_value(t, w->payload, fn, ud);
}

/* Canonical inputs: URL, event, headers, payload (none: the run's
 * summary, made when sent). The signing secret is not an input: it is a
 * secret, and the signature follows from the rest. */
static int inputs(struct exec_attempt *a, json_t *o, char **err)
{
	const struct dr_webhook *w = a->wf->tasks[a->task].spec;
	int r = kind_inputs_text(a, o, "url", &w->url, EXEC_RENDER_URL, err);
	if (r == 0)
		r = kind_inputs_text(a, o, "event", &w->event, EXEC_RENDER_HEADER, err);
	if (r == 0)
		r = kind_inputs_kvs(a, o, "headers", &w->headers, EXEC_RENDER_HEADER, err);
	if (r == 0)
		r = kind_inputs_value(a, o, "payload", w->payload, err);
	return r;
}

static const struct keydef keys[] = {KEY("webhook", k_webhook)};

const struct kind kind_webhook = {
	.load = {
		.model = {"webhook", HTTP_VARIANT_WEBHOOK, each_text, NULL, NULL, mix},
		.keys = keys, .n_keys = 1, .n_select = 1,
		.spec_size = sizeof(struct dr_webhook),
	},
	.exec = &kind_exec_http,
	.ext = {&kind_ext_http},
	.inputs = inputs,
};
