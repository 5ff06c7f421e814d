/* sign.c: the X-Dagrun-Signature HMAC (see sign.h).
 *
 * Invariant: the HMAC is computed here only, for both directions, so that
 * what dagrun signs and what it accepts cannot drift apart; a received
 * signature is compared in constant time and never copied anywhere (no
 * log, no reply).
 */
#include <errno.h>
#include <stdint.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "util/sign.h"

#define SHA256_LEN 32

/* The HMAC-SHA256 of "<t>.<body>" into md (SHA256_LEN bytes). */
static int mac(const char *secret, size_t secret_len, long long t, const char *body,
	       size_t body_len, unsigned char md[EVP_MAX_MD_SIZE])
{
	char ts[32];
	int tl = snprintf(ts, sizeof(ts), "%lld.", t);
	if (secret_len > INT32_MAX)
		return -EINVAL;
	char *msg = malloc((size_t)tl + body_len + 1);
	if (!msg)
		return -ENOMEM;
	memcpy(msg, ts, (size_t)tl);
	if (body_len)
		memcpy(msg + tl, body, body_len);
	unsigned int mdlen = 0;
	int r = HMAC(EVP_sha256(), secret ? secret : "", (int)secret_len,
		     (const unsigned char *)msg, (size_t)tl + body_len, md, &mdlen) &&
			mdlen == SHA256_LEN ? 0 : -EIO;
	free(msg);
	return r;
}

int sign_webhook(const char *secret, size_t secret_len, time_t t, const char *body,
		 size_t body_len, char **out)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	*out = NULL;
	int r = mac(secret, secret_len, (long long)t, body, body_len, md);
	if (r < 0)
		return r;
	char *s = malloc(64 + 2 * SHA256_LEN);
	if (!s)
		return -ENOMEM;
	int n = snprintf(s, 40, "t=%lld,v1=", (long long)t);
	for (unsigned i = 0; i < SHA256_LEN; i++)
		n += snprintf(s + n, 3, "%02x", md[i]);
	*out = s;
	return 0;
}

int sign_webhook_verify(const char *secret, size_t secret_len, const char *header,
			const char *body, size_t body_len, time_t now, long tolerance_s,
			long long *skew_s)
{
	unsigned char want[EVP_MAX_MD_SIZE], got[SHA256_LEN];
	long long t = 0;
	bool have_t = false, have_v1 = false, match = false;
	*skew_s = 0;
	if (!header)
		return -EBADMSG;
	/* t first: the HMAC needs it. */
	for (const char *p = header; *p;) {
		while (*p == ' ' || *p == ',')
			p++;
		if (!strncmp(p, "t=", 2)) {
			char *end;
			errno = 0;
			t = strtoll(p + 2, &end, 10);
			if (end == p + 2 || errno || (*end && *end != ',' && *end != ' ') || have_t)
				return -EBADMSG;
			have_t = true;
		}
		p += strcspn(p, ",");
	}
	if (!have_t)
		return -EBADMSG;
	int r = mac(secret, secret_len, t, body, body_len, want);
	if (r < 0)
		return r;
	for (const char *p = header; *p;) {
		while (*p == ' ' || *p == ',')
			p++;
		size_t n = strcspn(p, ",");
		if (n > 3 && !strncmp(p, "v1=", 3)) {
			const char *h = p + 3;
			size_t hl = n - 3;
			while (hl && h[hl - 1] == ' ')
				hl--;
			if (hl != 2 * SHA256_LEN)
				return -EBADMSG;
			for (size_t i = 0; i < SHA256_LEN; i++) {
				int a = OPENSSL_hexchar2int((unsigned char)h[2 * i]),
				    b = OPENSSL_hexchar2int((unsigned char)h[2 * i + 1]);
				if (a < 0 || b < 0)
					return -EBADMSG;
				got[i] = (unsigned char)(a << 4 | b);
			}
			have_v1 = true;
			match |= CRYPTO_memcmp(got, want, SHA256_LEN) == 0;
		}
		p += n;
	}
	OPENSSL_cleanse(want, sizeof(want));
	if (!have_v1)
		return -EBADMSG;
	if (!match)
		return -EACCES;
	*skew_s = (long long)now - t;
	if (*skew_s > tolerance_s || *skew_s < -tolerance_s)
		return -ETIME;
	return 0;
}
