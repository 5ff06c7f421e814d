#!/usr/bin/env python3
"""End-to-end tests of `ai` tasks through `dagrun run`, against the fake
Chat Completions server tests/ai/fake_openai.py on a free loopback port.
Each test scripts the server per model name and checks what dagrun sent,
what it did with the answer, and that the API key never shows."""
import json
import os
import sys
import time
import unittest
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common"))
import harness  # noqa: E402

KEY = "sk-test-SECRET-key-0123456789"


class AiRunTest(harness.AiServerTest):
    prefix = "dagrun-ai-"

    def setUp(self):
        super().setUp()
        self.model = "m-%s-%d" % (self._testMethodName[-20:], time.monotonic_ns())

    def script(self, behaviours, model=None):
        req = urllib.request.Request(
            "http://127.0.0.1:%d/_script?key=%s" % (self.port, model or self.model),
            data=json.dumps(behaviours).encode(), method="POST")
        urllib.request.urlopen(req, timeout=10).read()

    def requests(self, model=None):
        url = "http://127.0.0.1:%d/_requests?key=%s" % (self.port, model or self.model)
        with urllib.request.urlopen(url, timeout=10) as r:
            return json.loads(r.read())

    def run_wf(self, text, *args):
        path = self.write(text, replace={"MODEL": self.model, "BASE": self.base})
        env = harness.env(OPENAI_API_KEY=KEY)
        env.pop("OPENAI_BASE_URL", None)
        return harness.dagrun("run", path, *args, env_full=env)

    def test_pipeline_context_json_reply_condition_and_request_fields(self):
        self.script([{"content": '{"risk": "high", "summary": "two fixes"}',
                      "usage": {"prompt_tokens": 30, "completion_tokens": 7}}])
        r = self.run_wf("""\
            name: ai
            tasks:
              - id: changes
                command: [printf, "fix: crash\\nfeat: json"]
              - id: triage
                dependencies: [changes]
                model: MODEL
                baseUrl: BASE
                system: You triage.
                prompt: Classify the changes.
                context: {changes: "{{ tasks.changes.output }}"}
                responseFormat: json
                temperature: 0.2
                maxTokens: 50
              - id: escalate
                dependencies:
                  - {taskId: triage, condition: 'json.risk == "high"'}
                command: echo "{{ tasks.triage.json.summary }}" > escalated.txt
              - id: relax
                dependencies:
                  - {taskId: triage, condition: 'json.risk == "low"'}
                command: touch relaxed.txt
            """, "--log-format", "json")
        # relax is skipped: the run still succeeds
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.read("escalated.txt"), "two fixes\n")
        self.assertFalse(os.path.exists(os.path.join(self.dir, "relaxed.txt")))
        req = self.requests()
        self.assertEqual(len(req), 1)
        body = req[0]["body"]
        self.assertEqual(body["model"], self.model)
        self.assertEqual(body["messages"][0], {"role": "system", "content": "You triage."})
        user = body["messages"][1]
        self.assertEqual(user["role"], "user")
        self.assertIn("Classify the changes.", user["content"])
        self.assertIn("Context:", user["content"])
        self.assertIn("fix: crash\nfeat: json", user["content"])
        self.assertEqual(body["temperature"], 0.2)
        self.assertEqual(body["max_tokens"], 50)
        self.assertEqual(body["response_format"], {"type": "json_object"})
        self.assertNotIn("stream", body)
        self.assertEqual(req[0]["headers"]["authorization"], "Bearer " + KEY)
        ends = [json.loads(l) for l in r.stderr.splitlines()
                if '"attempt.end"' in l and '"triage"' in l]
        self.assertEqual(ends[0]["usage"], {"promptTokens": 30, "completionTokens": 7})
        self.assertEqual(len(ends[0]["promptSha256"]), 64)

    def test_rate_limit_delays_are_honoured_and_quota_is_not_retried(self):
        self.script([{"status": 429, "headers": {"retry-after-ms": "1500"},
                      "error": {"message": "slow down", "type": "requests"}},
                     {"content": "fine"}])
        quota = self.model + "-q"
        self.script([{"status": 429, "error": {"message": "You exceeded your quota",
                                               "type": "insufficient_quota",
                                               "code": "insufficient_quota"}}], model=quota)
        r = self.run_wf("""\
            name: ai
            tasks:
              - id: a
                model: MODEL
                baseUrl: BASE
                prompt: hi
                retry: {maxAttempts: 3, initialDelay: 10ms}
              - id: q
                model: MODEL-q
                baseUrl: BASE
                prompt: hi
                retry: {maxAttempts: 3, initialDelay: 10ms}
            """, "--log-format", "json")
        self.assertEqual(r.returncode, 1)
        ev = [json.loads(l) for l in r.stderr.splitlines()]
        st = {e["task"]: e for e in ev if e["event"] == "task.status"
              and e["status"] in ("completed", "failed")}
        self.assertEqual(st["a"]["status"], "completed")
        self.assertEqual(st["q"]["errorClass"], "permanent")
        self.assertIn("quota", st["q"]["error"])
        times = [x["t"] for x in self.requests()]
        self.assertEqual(len(times), 2)
        self.assertGreaterEqual(times[1] - times[0], 1.4)
        self.assertEqual(len(self.requests(quota)), 1)

    def test_streaming_output_equals_non_streaming(self):
        text = "Line one.\nLine two with unicode: \u00e9\u00e8 \u2713 and more words."
        self.script([{"content": text}, {"content": text, "split": 3}])
        r = self.run_wf("""\
            name: ai
            tasks:
              - {id: plain, model: MODEL, baseUrl: BASE, prompt: p}
              - {id: streamed, model: MODEL, baseUrl: BASE, prompt: p, stream: true,
                 dependencies: [plain]}
              - id: compare
                dependencies: [plain, streamed]
                command: test "{{ tasks.plain.output }}" = "{{ tasks.streamed.output }}"
            """, "-v")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("streamed | Line one.", r.stderr)
        self.assertTrue(self.requests()[1]["body"]["stream"])
        self.assertEqual(self.requests()[1]["body"]["stream_options"], {"include_usage": True})
        self.assertIn("tokens: %s" % self.model, r.stderr)

    def test_the_api_key_never_appears(self):
        self.script([{"status": 401, "echo_key": True,
                      "error": {"message": "bad key", "type": "invalid_request_error"}}])
        r = self.run_wf("""\
            name: ai
            tasks:
              - {id: a, model: MODEL, baseUrl: BASE, prompt: p}
            """, "--log-format", "json", "--log-level", "debug")
        self.assertEqual(r.returncode, 1)
        self.assertNotIn(KEY, r.stdout + r.stderr)
        self.assertIn("permanent", r.stderr)
        r = self.run_wf("""\
            name: ai
            tasks:
              - {id: a, model: MODEL, baseUrl: BASE, prompt: p}
            """)
        self.assertNotIn(KEY, r.stdout + r.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
