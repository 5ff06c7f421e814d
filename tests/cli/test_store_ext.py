#!/usr/bin/env python3
"""End-to-end test of what a task kind adds to an attempt (the event's
tagged extensions: dagrun_ext_http, dagrun_ext_ai) as the state store
records it: `dagrun show --format json` of a run with an api task and an
ai task gives the HTTP status and timings and the AI model and tokens; a
command task has neither. And a sub-workflow's tasks (events of depth > 0)
do not become rows of the run."""
import json
import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common"))
import harness  # noqa: E402

WF = """\
    name: ext
    tasks:
      - id: get
        api: {url: "HTTP/x?status=201&key=ext"}
      - id: ask
        model: m-ext
        baseUrl: BASE
        prompt: "Say hi"
      - id: plain
        command: "true"
      - id: sub
        workflow: child.yaml
    """

CHILD = """\
    name: child
    tasks:
      - id: inner
        command: "true"
    """


class StoreExtTest(harness.AiServerTest):
    prefix = "dagrun-store-ext-"

    def env(self):
        e = harness.loopback_env()
        for k in ("OPENAI_BASE_URL", "OPENAI_API_KEY", "DAGRUN_STATE"):
            e.pop(k, None)
        return e

    def test_http_and_ai_extensions_are_recorded(self):
        state = os.path.join(self.dir, "state")
        with harness.start_http_server() as h:
            self.write(CHILD, name="child.yaml")
            wf = self.write(WF, replace={"HTTP": h.base, "BASE": self.base})
            r = harness.dagrun("run", wf, "--state", state, env_full=self.env(),
                               cwd=self.dir, timeout=120)
            self.assertEqual(r.returncode, 0, r.stderr[-3000:])
        r = harness.dagrun("show", "last", "--format", "json", "--state", state,
                           env_full=self.env(), timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr[-3000:])
        doc = json.loads(r.stdout)
        tasks = {t["id"]: t for t in doc["tasks"]}
        self.assertEqual(sorted(tasks), ["ask", "get", "plain", "sub"])
        get = tasks["get"]["attempts"][-1]
        self.assertEqual(get["http"]["status"], 201)
        self.assertGreater(get["http"]["totalUs"], 0)
        self.assertNotIn("ai", get)
        ask = tasks["ask"]["attempts"][-1]
        self.assertEqual(ask["http"]["status"], 200)
        self.assertEqual(ask["ai"]["model"], "m-ext-0001")
        self.assertGreater(ask["ai"]["promptTokens"], 0)
        self.assertGreater(ask["ai"]["completionTokens"], 0)
        self.assertEqual(len(ask["ai"]["promptSha256"]), 64)
        plain = tasks["plain"]["attempts"][-1]
        self.assertNotIn("http", plain)
        self.assertNotIn("ai", plain)


if __name__ == "__main__":
    unittest.main()
