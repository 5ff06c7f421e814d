#!/usr/bin/env python3
"""End-to-end tests of `api` and `webhook` tasks through `dagrun run`,
against tests/http/server.py on a free loopback port (started and stopped
by each test class). The server records every request, so the tests check
what dagrun really sent; the signature is verified by the server with
Python's hmac, independently of dagrun's OpenSSL code.
"""
import json
import os
import sys
import time
import unittest
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common"))
import harness  # noqa: E402


class HttpRunTest(harness.ServerTest):
    prefix = "dagrun-http-"

    def setUp(self):
        super().setUp()
        self.key = "%s-%d" % (self._testMethodName, time.monotonic_ns())

    def write(self, text):
        return super().write(text, replace={"BASE": self.base, "KEY": self.key})

    def run_wf(self, path, *args, timeout=120):
        return harness.dagrun("run", path, *args, timeout=timeout)

    def control(self, what, **q):
        q.setdefault("key", self.key)
        url = "%s/_%s?%s" % (self.base, what, "&".join("%s=%s" % kv for kv in q.items()))
        with urllib.request.urlopen(url, timeout=10) as r:
            return json.loads(r.read())

    def events(self, stderr):
        return [json.loads(l) for l in stderr.splitlines() if l.startswith("{")]

    def test_json_response_is_parsed_and_passed_downstream(self):
        wf = self.write("""\
            name: get
            tasks:
              - id: fetch
                api: {url: "BASE/items?key=KEY"}
              - id: use
                dependencies: [fetch]
                command: echo "{{ tasks.fetch.json.method }} {{ tasks.fetch.http.status }} {{ tasks.fetch.http.headers['content-type'] }}" > out.txt
            """)
        r = self.run_wf(wf)
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(os.path.join(self.dir, "out.txt")) as f:
            self.assertEqual(f.read(), "GET 200 application/json\n")

    def test_transient_statuses_are_retried_until_success(self):
        for status in (503, 429, 408):
            key = "%s-%d" % (self.key, status)
            wf = self.write("""\
                name: flaky
                tasks:
                  - id: call
                    api: {url: "BASE/x?key=%s&fail=2&fail_status=%d"}
                    retry: {maxAttempts: 3, initialDelay: 50ms, jitter: none}
                """ % (key, status))
            r = self.run_wf(wf)
            self.assertEqual(r.returncode, 0, "%d: %s" % (status, r.stderr))
            self.assertEqual(self.control("stats", key=key)["count"], 3)

    def test_permanent_statuses_are_not_retried(self):
        for status in (404, 400, 401):
            key = "%s-%d" % (self.key, status)
            wf = self.write("""\
                name: perm
                tasks:
                  - id: call
                    api: {url: "BASE/x?key=%s&status=%d"}
                    retry: {maxAttempts: 4, initialDelay: 10ms}
                """ % (key, status))
            r = self.run_wf(wf)
            self.assertEqual(r.returncode, 1)
            self.assertIn("permanent", r.stderr)
            self.assertEqual(self.control("stats", key=key)["count"], 1)

    def test_unexpected_status_is_permanent_and_expect_status_accepts(self):
        wf = self.write("""\
            name: expect
            tasks:
              - id: created
                api: {url: "BASE/x?key=KEY&status=201", expectStatus: [201]}
              - id: wrong
                api: {url: "BASE/x?key=KEY&status=200", expectStatus: 201}
                retry: {maxAttempts: 3, initialDelay: 10ms}
            """)
        r = self.run_wf(wf, "--log-format", "json")
        self.assertEqual(r.returncode, 1)
        st = {e["task"]: e for e in self.events(r.stderr) if e["event"] == "task.status"
              and e["status"] in ("completed", "failed")}
        self.assertEqual(st["created"]["status"], "completed")
        self.assertEqual(st["wrong"]["errorClass"], "permanent")
        self.assertEqual(self.control("stats")["count"], 2)

    def test_retry_after_sets_the_next_delay(self):
        wf = self.write("""\
            name: ra
            tasks:
              - id: call
                api: {url: "BASE/x?key=KEY&fail=1&fail_status=429&retry_after=2"}
                retry: {maxAttempts: 2, initialDelay: 10ms, jitter: none}
            """)
        r = self.run_wf(wf, "--log-format", "json")
        self.assertEqual(r.returncode, 0, r.stderr)
        ev = self.events(r.stderr)
        retry = [e for e in ev if e["event"] == "task.retry"]
        self.assertEqual(retry[0]["delayMs"], 2000)
        starts = [e["ts"] for e in ev if e["event"] == "attempt.start"]
        import datetime
        t = [datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ") for s in starts]
        gap = (t[1] - t[0]).total_seconds()
        self.assertGreaterEqual(gap, 1.95)
        self.assertLess(gap, 10)

    def test_timeout_and_response_cap(self):
        wf = self.write("""\
            name: limits
            tasks:
              - id: hang
                timeout: 500ms
                api: {url: "BASE/x?key=KEY&hang=1"}
              - id: huge
                api: {url: "BASE/x?key=KEY&size=3000000", maxResponseBytes: 1000000}
            """)
        t0 = time.monotonic()
        r = self.run_wf(wf, "--log-format", "json")
        self.assertEqual(r.returncode, 1)
        self.assertLess(time.monotonic() - t0, 30)
        st = {e["task"]: e for e in self.events(r.stderr) if e["event"] == "task.status"
              and e["status"] == "failed"}
        self.assertEqual(st["hang"]["errorClass"], "transient")
        self.assertIn("timed out", st["hang"]["error"].lower())
        self.assertEqual(st["huge"]["errorClass"], "permanent")
        self.assertIn("maxResponseBytes", st["huge"]["error"])

    def test_idempotency_key_is_stable_across_retries(self):
        wf = self.write("""\
            name: idem
            tasks:
              - id: create
                api:
                  url: "BASE/orders?key=KEY&fail=2"
                  method: POST
                  body: {item: "book", qty: 2}
                retry: {maxAttempts: 3, initialDelay: 10ms}
            """)
        r = self.run_wf(wf)
        self.assertEqual(r.returncode, 0, r.stderr)
        reqs = self.control("requests")
        self.assertEqual(len(reqs), 3)
        keys = {q["headers"].get("idempotency-key") for q in reqs}
        self.assertEqual(len(keys), 1)
        self.assertNotIn(None, keys)
        self.assertEqual(reqs[0]["headers"]["content-type"], "application/json")
        self.assertEqual(json.loads(reqs[0]["body"]), {"item": "book", "qty": 2})

    def test_templates_in_urls_are_encoded_and_header_injection_refused(self):
        wf = self.write("""\
            name: inject
            tasks:
              - id: src
                command: printf 'a b&c=d/e?'
              - id: q
                dependencies: [src]
                api: {url: "BASE/q?key=KEY&v={{ tasks.src.output }}"}
              - id: nl
                command: [printf, "x\\r\\nX-Injected: yes"]
              - id: h
                dependencies: [nl]
                api:
                  url: "BASE/h?key=KEY"
                  headers: {X-Value: "{{ tasks.nl.output }}"}
            """)
        r = self.run_wf(wf, "--log-format", "json")
        self.assertEqual(r.returncode, 1)
        reqs = self.control("requests")
        self.assertEqual([q["path"] for q in reqs], ["/q"])
        self.assertIn("v=a%20b%26c%3Dd%2Fe%3F", reqs[0]["query"])
        st = {e["task"]: e for e in self.events(r.stderr) if e["event"] == "task.status"
              and e["status"] == "failed"}
        self.assertEqual(st["h"]["errorClass"], "permanent")

    def test_webhook_is_signed_and_delivery_id_stable(self):
        wf = self.write("""\
            name: hook
            tasks:
              - id: notify
                webhook:
                  url: "BASE/hook?key=KEY&fail=1"
                  event: release.published
                  payload: {version: "1.2.3"}
                  secret: "{{ secrets.HOOK_SECRET }}"
                retry: {maxAttempts: 2, initialDelay: 10ms}
            """)
        r = harness.dagrun("run", wf, env_extra={"HOOK_SECRET": "whsec-test-123"},
                           timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        reqs = self.control("requests")
        self.assertEqual(len(reqs), 2)
        self.assertEqual(self.control("verify", secret="whsec-test-123"), [True, True])
        self.assertEqual(self.control("verify", secret="wrong"), [False, False])
        h = [q["headers"] for q in reqs]
        self.assertEqual(h[0]["x-dagrun-event"], "release.published")
        self.assertEqual(h[0]["x-dagrun-delivery"], h[1]["x-dagrun-delivery"])
        self.assertEqual(json.loads(reqs[0]["body"]), {"version": "1.2.3"})
        self.assertEqual(reqs[0]["method"], "POST")

    def test_on_failure_hook_posts_the_run_summary(self):
        wf = self.write("""\
            name: alerting
            tasks:
              - {id: ok, command: "true"}
              - {id: bad, command: "false"}
            onSuccess:
              - {id: yay, webhook: {url: "BASE/success?key=KEY"}}
            onFailure:
              - id: alert
                webhook: {url: "BASE/failure?key=KEY", event: run.failed}
            """)
        r = self.run_wf(wf)
        self.assertEqual(r.returncode, 1)
        reqs = self.control("requests")
        self.assertEqual([q["path"] for q in reqs], ["/failure"])
        body = json.loads(reqs[0]["body"])
        self.assertEqual(body["workflow"], "alerting")
        self.assertEqual(body["status"], "failed")
        tasks = {t["id"]: t for t in body["tasks"]}
        self.assertEqual(tasks["bad"]["status"], "failed")
        self.assertEqual(tasks["ok"]["status"], "completed")

    def test_two_hundred_requests_in_flight_at_once(self):
        lines = ["name: many", "maxParallel: 200", "tasks:"]
        for i in range(200):
            lines.append('  - {id: r%d, api: {url: "BASE/slow?key=KEY&delay=1.5"}}' % i)
        wf = self.write("\n".join(lines) + "\n")
        t0 = time.monotonic()
        r = self.run_wf(wf, "-q")
        took = time.monotonic() - t0
        self.assertEqual(r.returncode, 0, r.stderr)
        st = self.control("stats")
        self.assertEqual(st["count"], 200)
        # Sequential would take 300 s; in flight together they overlap.
        self.assertGreaterEqual(st["max_concurrent"], 100)
        self.assertLess(took, 60)


if __name__ == "__main__":
    unittest.main(verbosity=2)
