/* url.h: which URLs dagrun sends requests to.
 *
 * One rule for the loader (a literal url or baseUrl) and the executors (the
 * URL a template rendered, after libcurl parsed it): http:// or https://,
 * the scheme in any case (RFC 3986 3.1: schemes are case-insensitive).
 * libcurl itself is limited to those two protocols, redirects included.
 */
#ifndef DAGRUN_UTIL_URL_H
#define DAGRUN_UTIL_URL_H

#include <stdbool.h>

/* The rule, to end a message: "... must start with http:// or https://". */
#define URL_HTTP_RULE "must start with http:// or https://"

/* Whether the NUL-terminated url starts with http:// or https://. */
bool url_is_http(const char *url);

#endif
