#!/usr/bin/env python3
"""End-to-end tests of HTTP failures as curl sees them (issue 9, rule 4),
through `dagrun run` against tests/http/server.py on a free loopback port.

- A kept-alive connection that the server closes without saying so
  (server.py `drop=SECONDS`) must not fail requests: curl retries a request
  whose reused connection died before any byte of the reply, provided it is
  told the socket is ready rather than "select/poll returned error".
- A reply over one of curl's size limits (a header line over 100 KiB, all
  headers over curl's total) is a permanent error that says what was too
  large, not "Out of memory" retried three times.
"""
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
import unittest
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common"))
import harness  # noqa: E402

# The server closes each connection this long after its reply: shorter than
# the gap between two tasks of a chain is long (so the next request goes out
# on the connection before the close), and long enough for the tests to
# stay fast. The outcome must not depend on it.
DROP = "0.05"


class HardenHttpTest(harness.ServerTest):
    prefix = "dagrun-harden-http-"

    def setUp(self):
        super().setUp()
        self.key = "%s-%d" % (self._testMethodName, time.monotonic_ns())

    def write(self, text):
        return super().write(text, dedent=False)

    def run_wf(self, path, timeout=300):
        return harness.dagrun("run", path, "--log-format", "json", timeout=timeout,
                              env_full=harness.loopback_env())

    def events(self, stderr):
        return [json.loads(l) for l in stderr.splitlines() if l.startswith("{")]

    def failures(self, stderr):
        return ["%s: %s" % (e.get("task"), e.get("error")) for e in self.events(stderr)
                if e["event"] == "attempt.end" and e.get("error")]

    def count(self, key):
        url = "%s/_stats?key=%s" % (self.base, key)
        with urllib.request.urlopen(url, timeout=10) as r:
            return json.loads(r.read())["count"]

    def chain(self, tasks):
        """A workflow running `tasks` (id, api map) one after the other,
        each with a single attempt: a failure is not hidden by a retry."""
        lines = ["name: keepalive", "tasks:"]
        prev = None
        for tid, api in tasks:
            lines.append("  - id: %s" % tid)
            lines.append("    api: %s" % json.dumps(api))
            lines.append("    retry: {maxAttempts: 1}")
            if prev:
                lines.append("    dependencies: [%s]" % prev)
            prev = tid
        return self.write("\n".join(lines) + "\n")

    def test_forty_gets_on_connections_the_server_drops_all_succeed(self):
        url = "%s/g?drop=%s&key=%s" % (self.base, DROP, self.key)
        wf = self.chain([("g%d" % i, {"url": url}) for i in range(40)])
        r = self.run_wf(wf)
        self.assertEqual(r.returncode, 0, "\n".join(self.failures(r.stderr)) or r.stderr)
        self.assertEqual(self.failures(r.stderr), [])
        # Each request reached the server once: a request on a dead
        # connection was never read there, and was sent again.
        self.assertEqual(self.count(self.key), 40)

    def test_twenty_posts_and_puts_through_a_302_all_succeed(self):
        tasks = []
        for i in range(20):
            target = "/r%d?drop=%s&key=%s-to" % (i, DROP, self.key)
            url = "%s/p%d?drop=%s&key=%s&redirect=%s" % (
                self.base, i, DROP, self.key, urllib.request.quote(target, safe=""))
            tasks.append(("p%d" % i, {"url": url, "method": "POST" if i % 2 == 0 else "PUT",
                                      "body": {"n": i}}))
        wf = self.chain(tasks)
        r = self.run_wf(wf)
        self.assertEqual(r.returncode, 0, "\n".join(self.failures(r.stderr)) or r.stderr)
        self.assertEqual(self.failures(r.stderr), [])
        self.assertEqual(self.count(self.key), 20)
        self.assertEqual(self.count(self.key + "-to"), 20)

    @unittest.skipUnless(shutil.which("curl"), "curl is not installed")
    def test_curl_itself_succeeds_against_the_same_server_mode(self):
        # The control: the server mode is what curl's own client handles.
        urls = ["%s/c%d?drop=%s&key=%s" % (self.base, i, DROP, self.key) for i in range(10)]
        args = ["curl", "-sS", "--noproxy", "*", "-w", "%{http_code}\\n"]
        for u in urls:
            args += ["-o", "/dev/null", u]
        r = subprocess.run(args, capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.split(), ["200"] * 10)

    def test_a_header_over_curls_limit_is_permanent_and_says_so(self):
        wf = self.write(textwrap.dedent("""\
            name: big-headers
            tasks:
              - id: line
                api: {url: "%s/h?big_header=1000000&key=%s"}
                retry: {maxAttempts: 3, initialDelay: 10ms}
              - id: total
                api: {url: "%s/h?big_header=90000x4&key=%s-t"}
                retry: {maxAttempts: 3, initialDelay: 10ms}
            """ % (self.base, self.key, self.base, self.key)))
        r = self.run_wf(wf)
        self.assertEqual(r.returncode, 1, r.stderr)
        ends = [e for e in self.events(r.stderr) if e["event"] == "attempt.end"]
        by_task = {e["task"]: e for e in ends}
        self.assertEqual(len(ends), 2, "a size limit must not be retried: %s" % ends)
        self.assertEqual(by_task["line"]["errorClass"], "permanent")
        self.assertEqual(by_task["line"]["error"],
                         "a response header is larger than curl's limit of 100 KiB")
        self.assertEqual(by_task["total"]["errorClass"], "permanent")
        self.assertTrue(by_task["total"]["error"].startswith(
            "response headers larger than curl's limit"), by_task["total"]["error"])
        self.assertEqual(self.count(self.key), 1)

    def test_a_body_over_max_response_bytes_names_the_limit(self):
        wf = self.write(textwrap.dedent("""\
            name: big-body
            tasks:
              - id: sized
                api: {url: "%s/b?size=3000", maxResponseBytes: 1000}
              - id: chunked
                api: {url: "%s/b?size=3000&chunked=1", maxResponseBytes: 1000}
            """ % (self.base, self.base)))
        r = self.run_wf(wf)
        self.assertEqual(r.returncode, 1, r.stderr)
        ends = [e for e in self.events(r.stderr) if e["event"] == "attempt.end"]
        self.assertEqual(len(ends), 2)
        for e in ends:
            self.assertEqual(e["errorClass"], "permanent")
            self.assertIn("larger than the limit of 1000 bytes (maxResponseBytes", e["error"])


if __name__ == "__main__":
    unittest.main(verbosity=2)
