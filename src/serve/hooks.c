/* hooks.c: incoming webhooks, `POST /hooks/NAME` (README "Incoming
 * webhooks"): a signed request starts a run of workflow NAME whose
 * `trigger.body` is the request's JSON body.
 *
 * Invariants:
 *  - The signature is the authentication (no bearer token is asked, even
 *    with --token-file): X-Dagrun-Signature, the scheme of the outgoing
 *    webhooks (util/sign.c, the same HMAC code), keyed with the secret the
 *    workflow's `trigger: { secret: "{{ secrets.NAME }}" }` names, looked
 *    up as the runs look it up (serve_secret). Compared in constant time;
 *    a timestamp more than SERVE_HOOK_TOLERANCE_S away from now is refused.
 *  - A delivery starts one run: the same workflow, timestamp and body
 *    again while the timestamp is within the tolerance (a replay, or the
 *    sender's retry of a request whose run started) gets 409 and starts
 *    nothing; after it, the timestamp is stale. A delivery whose run did
 *    not start is forgotten, so the sender can retry it. The last
 *    SERVE_HOOK_SEEN deliveries are remembered; one forgotten early to
 *    make room is said in the log.
 *  - An unknown workflow, an invalid one and one without `trigger:` get
 *    the same 404: an unauthenticated caller learns nothing of which
 *    workflows exist. The server's log says which it was.
 *  - The secret is wiped once used and never reaches a reply or the log;
 *    neither does the signature. The body reaches the child in a file of
 *    mode 0600 (runner.c), never on its command line.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>

#include "model/model.h"
#include "serve/serve_int.h"
#include "util/sign.h"

static void refuse(struct serve *s, struct req *rq, unsigned status, const char *name,
		   const char *why)
{
	char peer[80];
	req_peer(rq, peer, sizeof(peer));
	serve_log(s, "hook %s from %s refused (%u): %s", name, peer, status, why);
}

/* The delivery's fingerprint: SHA-256 of the workflow's name, the
 * signature's timestamp and the body. */
static int fingerprint(const char *name, long long t, const struct req *rq,
		       unsigned char d[32])
{
	char ts[32];
	int tl = snprintf(ts, sizeof(ts), "%lld", t);
	EVP_MD_CTX *c = EVP_MD_CTX_new();
	int ok = c && EVP_DigestInit_ex(c, EVP_sha256(), NULL) &&
		 EVP_DigestUpdate(c, name, strlen(name) + 1) &&
		 EVP_DigestUpdate(c, ts, (size_t)tl + 1) &&
		 EVP_DigestUpdate(c, rq->body.data ? rq->body.data : "", rq->body.len) &&
		 EVP_DigestFinal_ex(c, d, NULL);
	EVP_MD_CTX_free(c);
	return ok ? 0 : -ENOMEM;
}

/* Remembers delivery d until `until`; false when it is remembered
 * already (a replay). */
static bool first_delivery(struct serve *s, const unsigned char d[32], time_t until)
{
	struct hook_seen *h = &s->seen;
	time_t now = time(NULL);
	bool early = false, first = true;
	pthread_mutex_lock(&h->mu);
	for (size_t i = 0; i < SERVE_HOOK_SEEN && first; i++)
		first = !(h->v[i].until >= now && memcmp(h->v[i].d, d, 32) == 0);
	if (first) {
		early = h->v[h->next].until >= now;
		memcpy(h->v[h->next].d, d, 32);
		h->v[h->next].until = until;
		h->next = (h->next + 1) % SERVE_HOOK_SEEN;
	}
	pthread_mutex_unlock(&h->mu);
	if (early)
		serve_log(s, "hooks: more than %d deliveries within %d s: the oldest is "
			  "forgotten before its timestamp turns stale (a replay of it would "
			  "start a run)", SERVE_HOOK_SEEN, SERVE_HOOK_TOLERANCE_S);
	return first;
}

/* Forgets delivery d (its run did not start: the sender may retry). */
static void forget_delivery(struct serve *s, const unsigned char d[32])
{
	struct hook_seen *h = &s->seen;
	pthread_mutex_lock(&h->mu);
	for (size_t i = 0; i < SERVE_HOOK_SEEN; i++)
		if (memcmp(h->v[i].d, d, 32) == 0)
			h->v[i].until = 0;
	pthread_mutex_unlock(&h->mu);
}

void api_hook(struct serve *s, struct req *rq, const char *name)
{
	unsigned char fp[32];
	bool remembered = false;
	struct wfent *e = serve_name_ok(name) ? catalog_get(s, name) : NULL;
	char *secret = NULL, *why = NULL;
	json_t *body = NULL;
	if (!e || !e->wf || e->dup || !e->wf->trigger) {
		refuse(s, rq, 404, name, !e ? "no such workflow" : !e->wf || e->dup ?
		       "the workflow is invalid" : "the workflow has no `trigger:`");
		reply_error(rq, 404, "no workflow named '%s' takes webhooks", name);
		goto out;
	}
	const struct dr_text *key = &e->wf->trigger->secret_name;
	if (!(secret = serve_secret(s, key->s, &why))) {
		char *msg = buf_strf("its secret %s is not set in the server's environment or "
				     "--secrets-file%s%s", key->s, why ? ": " : "", why ? why : "");
		refuse(s, rq, 503, name, msg ? msg : "its secret is not set");
		free(msg);
		reply_error(rq, 503, "the server cannot check this hook's signature (see its log)");
		goto out;
	}
	long long skew = 0;
	time_t now = time(NULL);
	int r = sign_webhook_verify(secret, strlen(secret), req_header(rq, "X-Dagrun-Signature"),
				    rq->body.data ? rq->body.data : "", rq->body.len, now,
				    SERVE_HOOK_TOLERANCE_S, &skew);
	if (r == -EBADMSG || r == -EACCES) {
		refuse(s, rq, 401, name, r == -EBADMSG ? "no or malformed X-Dagrun-Signature"
			      : "bad signature");
		reply_error(rq, 401, r == -EBADMSG ? "X-Dagrun-Signature: t=UNIXTIME,v1=HEX "
			    "required" : "bad signature");
		goto out;
	}
	if (r == -ETIME) {
		char msg[160];
		snprintf(msg, sizeof(msg), "stale signature: its timestamp is %lld s %s now "
			 "(tolerance %d s)", skew < 0 ? -skew : skew, skew < 0 ? "ahead of" : "before",
			 SERVE_HOOK_TOLERANCE_S);
		refuse(s, rq, 401, name, msg);
		reply_error(rq, 401, "%s", msg);
		goto out;
	}
	if (r < 0) {
		reply_error(rq, 500, "cannot check the signature: %s", strerror(-r));
		goto out;
	}
	json_error_t je;
	body = rq->body.len ? json_loadb(rq->body.data, rq->body.len,
					 JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &je) : NULL;
	if (!body) {
		refuse(s, rq, 400, name, "the body is not JSON");
		if (rq->body.len)
			reply_error(rq, 400, "the body is not JSON: %s (line %d, column %d)", je.text,
				    je.line, je.column);
		else
			reply_error(rq, 400, "the body is empty: a hook takes a JSON body");
		goto out;
	}
	if (memchr(rq->body.data, 0, rq->body.len)) {
		reply_error(rq, 400, "the body holds a NUL byte");
		goto out;
	}
	/* skew is now - t; the timestamp turns stale at t + tolerance. */
	if (fingerprint(name, (long long)now - skew, rq, fp) < 0) {
		reply_error(rq, 500, "cannot check the signature: %s", strerror(ENOMEM));
		goto out;
	}
	if (!first_delivery(s, fp, now - (time_t)skew + SERVE_HOOK_TOLERANCE_S)) {
		refuse(s, rq, 409, name, "a replay: this delivery (timestamp and body) was "
		       "received before");
		reply_error(rq, 409, "this delivery was received before (the same signature "
			    "timestamp and body): it started a run already");
		goto out;
	}
	remembered = true;
	struct start_req sr = {.kind = CHILD_RUN, .file = e->path, .workflow = e->name,
			       .trigger = rq->body.data, .trigger_len = rq->body.len};
	unsigned status = 500;
	json_t *o = runner_start_and_wait(s, &sr, &status);
	const char *id = json_string_value(json_object_get(o, "id"));
	if (status / 100 == 2 && id) {
		serve_log(s, "hook %s: started run %s", name, id);
		reply_json(rq, 202, json_pack("{s:s}", "id", id));
	} else {
		if (remembered)
			forget_delivery(s, fp);
		serve_log(s, "hook %s: its run did not start (%u): %s", name, status,
			  json_string_value(json_object_get(o, "error")) ?: "?");
		reply_json(rq, status / 100 == 2 ? 500 : status,
			   json_pack("{s:o, s:s}", "id", jstr(id), "error",
				     "the run did not start (the server's log says why)"));
	}
	json_decref(o);
out:
	if (secret) {
		explicit_bzero(secret, strlen(secret));
		free(secret);
	}
	free(why);
	json_decref(body);
	catalog_put(s, e);
}
