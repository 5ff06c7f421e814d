/* url.c: the http(s) rule; see url.h. */
#include "util/url.h"

#include <strings.h>

bool url_is_http(const char *url)
{
	return !strncasecmp(url, "http://", 7) || !strncasecmp(url, "https://", 8);
}
