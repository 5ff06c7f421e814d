/* server.c: starting and stopping a test server; see server.h. */
#include "server.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The first line of fd, waiting at most TEST_SERVER_WAIT_MS in all. */
static int read_line(int fd, char *line, size_t cap)
{
	size_t n = 0;
	long long deadline = now_ms() + TEST_SERVER_WAIT_MS;
	while (n < cap - 1) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		long long left = deadline - now_ms();
		if (left <= 0 || poll(&p, 1, (int)left) <= 0)
			return -1;
		ssize_t k = read(fd, line + n, 1);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return -1;
		if (line[n] == '\n')
			break;
		n++;
	}
	line[n] = '\0';
	return 0;
}

int test_server_start(struct test_server *s, const char *script, const char *const *args)
{
	const char *src = getenv("SRCDIR");
	char path[4096];
	const char *argv[16] = {"python3", path};
	int argc = 2, in[2] = {-1, -1}, out[2] = {-1, -1};
	memset(s, 0, sizeof(*s));
	s->in = -1;
	snprintf(path, sizeof(path), "%s/%s", src ? src : ".", script);
	for (; args && *args && argc < 15; args++)
		argv[argc++] = *args;
	argv[argc] = NULL;
	if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0)
		goto fail;
	s->pid = fork();
	if (s->pid < 0) {
		s->pid = 0;
		goto fail;
	}
	if (s->pid == 0) {
		dup2(in[0], 0);
		dup2(out[1], 1);
		execvp("python3", (char *const *)argv);
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	in[0] = out[1] = -1;
	s->in = in[1];
	char line[128];
	int r = read_line(out[0], line, sizeof(line));
	close(out[0]);
	out[0] = -1;
	for (char *p = line, *end; r == 0 && s->n_ports < TEST_SERVER_MAX_PORTS; p = end) {
		long v = strtol(p, &end, 10);
		if (end == p)
			break;
		s->ports[s->n_ports++] = (int)v;
	}
	if (r < 0 || s->n_ports == 0 || s->ports[0] <= 0)
		goto fail;
	/* No proxy may stand between the tests and the loopback server. */
	setenv("no_proxy", "*", 1);
	unsetenv("http_proxy");
	unsetenv("HTTP_PROXY");
	return 0;
fail:
	for (int i = 0; i < 2; i++) {
		if (in[i] >= 0 && in[i] != s->in)
			close(in[i]);
		if (out[i] >= 0)
			close(out[i]);
	}
	test_server_stop(s);
	return -1;
}

void test_server_stop(struct test_server *s)
{
	if (s->in >= 0)
		close(s->in);
	s->in = -1;
	if (s->pid > 0) {
		kill(s->pid, SIGTERM);
		while (waitpid(s->pid, NULL, 0) < 0 && errno == EINTR)
			;
	}
	s->pid = 0;
}
