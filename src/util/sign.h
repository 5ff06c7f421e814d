/* sign.h: the X-Dagrun-Signature scheme, shared by the outgoing webhooks
 * (exec/http.c signs what a `webhook` task sends) and the incoming ones
 * (serve/hooks.c checks what `POST /hooks/NAME` receives): one HMAC, one
 * format, "t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">".
 */
#ifndef DAGRUN_UTIL_SIGN_H
#define DAGRUN_UTIL_SIGN_H

#include <stddef.h>
#include <time.h>

/* The X-Dagrun-Signature value for body at unix time t:
 * "t=<t>,v1=<hex HMAC-SHA256 of "<t>.<body>" keyed with secret>".
 * Returns 0 and *out (malloc'd), or -ENOMEM / -EIO / -EINVAL (a secret
 * over 2 GiB). */
int sign_webhook(const char *secret, size_t secret_len, time_t t, const char *body,
		 size_t body_len, char **out);

/* Checks header (an X-Dagrun-Signature value: "t=T" and one or more
 * "v1=HEX", comma-separated, in any order) against body and secret at
 * unix time now. The HMACs are compared in constant time (CRYPTO_memcmp),
 * and the time only once one matched. Returns 0 when a v1 matches and
 * |now - T| <= tolerance_s; -EBADMSG: the header is malformed (no t, no
 * v1, not numbers or hex); -EACCES: no v1 matches; -ETIME: it matches but
 * T is further than tolerance_s from now (*skew_s then says by how much,
 * positive: in the past); -ENOMEM, -EIO. */
int sign_webhook_verify(const char *secret, size_t secret_len, const char *header,
			const char *body, size_t body_len, time_t now, long tolerance_s,
			long long *skew_s);

#endif
