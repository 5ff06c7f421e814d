/* server.h: the test servers (tests/http/server.py, tests/ai/fake_openai.py)
 * for the C tests, as tests/common/harness.py starts them for the Python
 * ones.
 *
 * test_server_start runs `python3 SRCDIR/SCRIPT ARGS...` with its stdin
 * and stdout on pipes, reads the ports it prints on its first line (at most
 * TEST_SERVER_WAIT_MS), and sets the environment so that no proxy stands
 * between the tests and the loopback. test_server_stop closes the server's
 * stdin (the servers exit when it closes), then SIGTERMs that one pid (never
 * a group, never by name) and reaps it.
 */
#ifndef DAGRUN_TESTS_COMMON_SERVER_H
#define DAGRUN_TESTS_COMMON_SERVER_H

#include <sys/types.h>

#define TEST_SERVER_MAX_PORTS 4
#define TEST_SERVER_WAIT_MS 30000

struct test_server {
	pid_t pid;                          /* 0: not started */
	int in;                             /* its stdin; -1: closed */
	int ports[TEST_SERVER_MAX_PORTS];   /* as printed */
	int n_ports;
};

/* Starts script (a path under $SRCDIR, e.g. "tests/http/server.py") with
 * args (NULL-terminated; may be NULL). Returns 0 with s filled, or -1 (the
 * server, if it started, is stopped again). */
int test_server_start(struct test_server *s, const char *script, const char *const *args);

/* Stops s; a no-op when it is not running. */
void test_server_stop(struct test_server *s);

#endif
