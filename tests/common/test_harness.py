#!/usr/bin/env python3
"""Tests of tests/common/harness.py: a server is usable once started, and
stopping one stops that server only (its pid), whatever it does."""
import os
import signal
import socket
import sys
import tempfile
import textwrap
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

# A server that ignores its stdin closing and SIGTERM, with a child of its
# own in its process group: stop() must still end it, by its pid alone.
STUBBORN = textwrap.dedent("""\
    import os, signal, socket, sys, time
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    child = os.fork()
    if child == 0:
        time.sleep(120)
        os._exit(0)
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(8)
    with open(sys.argv[1], "w") as f:
        f.write(str(child))
    print(s.getsockname()[1], flush=True)
    while True:
        time.sleep(1)
    """)


class HarnessTest(unittest.TestCase):
    def test_both_servers_accept_at_once_and_stop(self):
        for start in (harness.start_http_server, harness.start_fake_openai):
            with start() as srv:
                socket.create_connection(("127.0.0.1", srv.port), timeout=5).close()
                pid = srv.proc.pid
            self.assertFalse(harness.alive(pid))

    def test_stop_kills_only_the_servers_own_pid(self):
        with tempfile.TemporaryDirectory(prefix="dagrun-harness-") as d:
            script = os.path.join(d, "stubborn.py")
            with open(script, "w") as f:
                f.write(STUBBORN)
            srv = harness.start_server(script, os.path.join(d, "child"))
            pid = srv.proc.pid
            with open(os.path.join(d, "child")) as f:
                child = int(f.read())
            try:
                t0 = time.monotonic()
                srv.stop()
                self.assertFalse(harness.alive(pid))
                self.assertLess(time.monotonic() - t0, 60)
                # its process group was not killed: the child lives on
                self.assertTrue(harness.alive(child))
            finally:
                try:
                    os.kill(child, signal.SIGKILL)
                except ProcessLookupError:
                    pass

    def test_a_server_that_prints_no_port_fails_fast(self):
        with tempfile.TemporaryDirectory(prefix="dagrun-harness-") as d:
            script = os.path.join(d, "mute.py")
            with open(script, "w") as f:
                f.write("import sys\nsys.exit(3)\n")
            with self.assertRaises(RuntimeError):
                harness.start_server(script, timeout=30)


if __name__ == "__main__":
    unittest.main()
