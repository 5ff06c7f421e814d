/* serve.c: `dagrun serve`: the options, then serve_main (src/serve/). */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "serve/serve.h"
#include "util/file.h"

static const char usage[] =
	"usage: dagrun serve [--listen HOST:PORT] [--dir DIR] [--state DIR] [--token-file F]\n"
	"                    [--secrets-file F]\n"
	"\n"
	"Serves the workflows of DIR (*.yaml, *.yml) and the runs of the state directory:\n"
	"a REST API under /api/ (docs/api.md), Server-Sent Events at /api/events,\n"
	"Prometheus metrics at /metrics, and the workflows' schedules. Each run is a\n"
	"`dagrun run` process of its own.\n"
	"\n"
	"      --listen HOST:PORT   address to listen on (default 127.0.0.1:8080; [::1]:8080;\n"
	"                           port 0: any free port, printed)\n"
	"      --dir DIR            the workflows (default: the current directory)\n"
	"      --state DIR          the state directory (default: $DAGRUN_STATE, else .dagrun)\n"
	"      --token-file F       require `Authorization: Bearer <the file's first line>`\n"
	"                           (needed to listen on anything but a loopback address)\n"
	"      --secrets-file F     KEY=VALUE lines: secrets of the runs and of the hooks\n"
	"\n"
	"Stops on SIGINT, SIGTERM or SIGHUP; runs it started go on (see README).\n"
	"Exit status: 0 stopped, 2 usage error, 3 cannot listen or read the state.\n";

/* "HOST:PORT", "[V6]:PORT" or "PORT". */
static int parse_listen(const char *s, char *host, size_t n, uint16_t *port)
{
	const char *colon = strrchr(s, ':');
	const char *h = s, *p = colon ? colon + 1 : s;
	size_t hl = colon ? (size_t)(colon - s) : 0;
	if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') {
		h++;
		hl -= 2;
	}
	char *end;
	unsigned long v = strtoul(p, &end, 10);
	if (!*p || *end || v > 65535 || hl >= n)
		return -1;
	if (colon) {
		memcpy(host, h, hl);
		host[hl] = 0;
	} else {
		snprintf(host, n, "127.0.0.1");
	}
	*port = (uint16_t)v;
	return 0;
}

/* The token: the file's first line, which only its owner may read. */
static char *read_token(const char *path)
{
	char *data = NULL, *why = NULL;
	size_t len = 0;
	struct stat sb;
	if (stat(path, &sb) == 0 && (sb.st_mode & 077)) {
		fprintf(stderr, "dagrun serve: --token-file %s may be read by others (mode %03o): "
			"chmod 600 it\n", path, (unsigned)(sb.st_mode & 0777));
		return NULL;
	}
	if (file_read_regular(path, 4096, &data, &len, &why) < 0) {
		fprintf(stderr, "dagrun serve: --token-file %s: %s\n", path, why ? why : "unreadable");
		free(why);
		return NULL;
	}
	data[strcspn(data, "\r\n")] = 0;
	if (strlen(data) < 16) {
		fprintf(stderr, "dagrun serve: --token-file %s: the token must have at least 16 "
			"characters\n", path);
		free(data);
		return NULL;
	}
	return data;
}

/* A test hook from the environment: 0 (unset) or a number in (0, max],
 * said on stderr; -1 after saying why it is refused. */
static int test_knob(const char *name, double max, double *out)
{
	const char *v = getenv(name);
	char *end = NULL;
	*out = 0;
	if (!v || !*v)
		return 0;
	double d = strtod(v, &end);
	if (*end || !(d > 0) || d > max) {
		fprintf(stderr, "dagrun serve: %s=%s: a number above 0 and at most %g "
			"(a test hook: docs/api.md)\n", name, v, max);
		return -1;
	}
	fprintf(stderr, "dagrun serve: %s=%g in effect (a test hook: docs/api.md)\n", name, d);
	*out = d;
	return 0;
}

int cli_serve(int argc, char **argv)
{
	static const struct option opts[] = {
		{"help", no_argument, NULL, 'h'},
		{"listen", required_argument, NULL, 'l'},
		{"dir", required_argument, NULL, 'd'},
		{"state", required_argument, NULL, 's'},
		{"token-file", required_argument, NULL, 't'},
		{"secrets-file", required_argument, NULL, 'S'},
		{0, 0, 0, 0},
	};
	char host[256] = "127.0.0.1", exe[PATH_MAX];
	uint16_t port = 8080;
	const char *dir = ".", *state = NULL, *token_file = NULL, *secrets = NULL;
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'h': fputs(usage, stdout); return EXIT_OK;
		case 'l':
			if (parse_listen(optarg, host, sizeof(host), &port) < 0) {
				fprintf(stderr, "dagrun serve: --listen takes HOST:PORT, [IPV6]:PORT "
					"or PORT\n");
				return EXIT_USAGE;
			}
			break;
		case 'd': dir = optarg; break;
		case 's': state = optarg; break;
		case 't': token_file = optarg; break;
		case 'S': secrets = optarg; break;
		default: fputs(usage, stderr); return EXIT_USAGE;
		}
	}
	if (optind != argc) {
		fputs(usage, stderr);
		return EXIT_USAGE;
	}
	char *token = NULL;
	if (token_file && !(token = read_token(token_file)))
		return EXIT_USAGE;
	/* The runs are started with this very binary (a test may name another
	 * build of dagrun: DAGRUN_SERVE_EXE). */
	const char *ex = getenv("DAGRUN_SERVE_EXE");
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0) {
		fprintf(stderr, "dagrun serve: cannot find its own binary: %s\n", strerror(errno));
		free(token);
		return EXIT_INTERNAL;
	}
	exe[n] = 0;
	/* Test hooks (docs/api.md "Testing hooks of the server"): the store's
	 * poll period, and a schedules' clock that runs N times faster (so a
	 * five-field schedule fires within seconds). A value that is not one
	 * is refused, and one in effect is said: neither acts unseen. */
	double speed = 0, poll = 0;
	if (test_knob("DAGRUN_SERVE_TEST_CLOCK", 1e6, &speed) < 0 ||
	    test_knob("DAGRUN_SERVE_POLL_MS", 60000, &poll) < 0) {
		free(token);
		return EXIT_USAGE;
	}
	struct serve_opts o = {
		.host = host, .port = port, .dir = dir, .state = cli_state_dir(state),
		.token = token, .secrets_file = secrets, .exe = ex && *ex ? ex : exe,
		.log = stderr, .ready = stdout, .clock_speed = speed, .poll_ms = (unsigned)poll,
	};
	if (secrets) {
		char *real = realpath(secrets, NULL);
		if (!real) {
			fprintf(stderr, "dagrun serve: --secrets-file %s: %s\n", secrets, strerror(errno));
			free(token);
			return EXIT_USAGE;
		}
		o.secrets_file = real;
	}
	int r = serve_main(&o);
	if (o.secrets_file != secrets)
		free((char *)o.secrets_file);
	if (token) {
		explicit_bzero(token, strlen(token));
		free(token);
	}
	return r == 0 ? EXIT_OK : r == -EINVAL || r == -EPERM ? EXIT_USAGE : EXIT_INTERNAL;
}
