#!/usr/bin/env python3
"""End-to-end tests of `dagrun replay RUN --with FILE --live TASK` (README
"Replay and export").

A run with a command task (it appends a line to runs.log), an HTTP task
(tests/http/server.py, which counts its requests) and an AI task
(tests/ai/fake_openai.py, which records each request) is recorded; the
servers keep running. Then, with an edited prompt:
  - `--live summarize` sends exactly one new AI request, whose prompt
    holds the recorded upstream results; the HTTP server sees no request
    and the command does not run (runs.log does not grow);
  - the report says `live` with the new status and output for summarize,
    and its dependent, replayed, sees the live reply (inputs differ);
  - the live results are a new run in the state directory, marked as a
    replay of the recorded run (`runs`, `show`, JSON);
  - an unknown --live id is an error with a suggestion, and nothing runs;
  - a live replay of an exported file records into the current state
    directory;
  - a live task gets the real secret (--secrets-file), masked in what the
    report and the store keep;
  - a live task obeys its timeout and Ctrl-C (exit 130, its process gone);
  - a live replay run is not continued (rerun, resume): its replayed tasks
    would run for real.
"""
import json
import os
import sys
import unittest
import urllib.error
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common"))
import harness  # noqa: E402

SECRET = "sk-live-replay-5d2e8b71c4a93f06"

WF = """\
    name: live-demo
    tasks:
      - id: build
        command: "echo built >> runs.log; echo ver=1.2 >> $DAGRUN_OUTPUT"
      - id: fetch
        api:
          url: "HTTP/data?key=KEY&body=upstream-42"
          headers:
            Authorization: "Bearer {{ secrets.TOKEN }}"
      - id: summarize
        dependencies: [build, fetch]
        model: MODEL
        baseUrl: BASE
        prompt: "Summarise version {{ tasks.build.outputs.ver }}: {{ tasks.fetch.output }}"
      - id: publish
        dependencies: [summarize]
        command: ["echo", "published: {{ tasks.summarize.output }}"]
    """


class ReplayLiveTest(harness.TempDirTest):
    prefix = "dagrun-replay-live-"

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.http = harness.start_http_server()
        cls.ai = harness.start_fake_openai()

    @classmethod
    def tearDownClass(cls):
        cls.http.stop()
        cls.ai.stop()
        super().tearDownClass()

    def env(self, **extra):
        e = harness.loopback_env()
        for k in ("OPENAI_BASE_URL", "OPENAI_API_KEY", "DAGRUN_STATE", "TOKEN"):
            e.pop(k, None)
        e.update(extra)
        return e

    def setUp(self):
        super().setUp()
        self.state = os.path.join(self.dir, "state")
        self.key = "live-%d-%s" % (os.getpid(), self._testMethodName)
        self.model = "m-" + self.key
        self.wf = self.write(WF, replace={"HTTP": self.http.base, "KEY": self.key,
                                          "BASE": self.ai.base + "/v1", "MODEL": self.model})
        r = harness.dagrun("run", self.wf, "--state", self.state,
                           env_full=self.env(TOKEN=SECRET), cwd=self.dir, timeout=120)
        self.assertEqual(r.returncode, 0, r.stdout[-2000:] + r.stderr[-3000:])
        self.rec_id = self.runs()[0]["id"]
        self.assertEqual(self.http_count(), 1)
        self.assertEqual(len(self.ai_requests()), 1)
        self.assertEqual(self.runs_log(), 1)

    # ---- helpers ----------------------------------------------------------------

    def http_count(self):
        with urllib.request.urlopen(self.http.base + "/_stats?key=" + self.key,
                                    timeout=30) as f:
            return json.load(f)["count"]

    def ai_requests(self):
        with urllib.request.urlopen(self.ai.base + "/_requests?key=" + self.model,
                                    timeout=30) as f:
            return json.load(f)

    def runs_log(self):
        p = os.path.join(self.dir, "runs.log")
        return len(harness.read(p).splitlines()) if os.path.exists(p) else 0

    def runs(self, state=None):
        r = harness.dagrun("runs", "--format", "json", "--state", state or self.state,
                           env_full=self.env(), timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        return json.loads(r.stdout)["runs"]

    def edited(self, name="prompt.yaml"):
        text = harness.read(self.wf)
        self.assertIn("Summarise version", text)
        return harness.write(self.dir, text.replace("Summarise version", "Summarize release"),
                             name=name, dedent=False)

    def replay(self, *args, state=None, fmt="json", env=None, codes=(0, 1)):
        r = harness.dagrun("replay", *args, "--format", fmt, "--state", state or self.state,
                           env_full=env or self.env(), cwd=self.dir, timeout=120)
        self.assertIn(r.returncode, codes, r.stdout[-2000:] + r.stderr[-3000:])
        return r, (json.loads(r.stdout) if fmt == "json" and r.stdout else r.stdout)

    # ---- tests ------------------------------------------------------------------

    def test_live_runs_only_the_named_task_against_the_recorded_upstream_data(self):
        wf = self.edited()
        r, doc = self.replay(self.rec_id, "--with", wf, "--live", "summarize")
        # exactly one new AI request, with the recorded upstream results
        reqs = self.ai_requests()
        self.assertEqual(len(reqs), 2, reqs)
        user = [m["content"] for m in reqs[1]["body"]["messages"] if m["role"] == "user"]
        self.assertEqual(user, ["Summarize release 1.2: upstream-42"])
        # nothing else ran: no HTTP request, no process
        self.assertEqual(self.http_count(), 1)
        self.assertEqual(self.runs_log(), 1)
        v = {t["id"]: t for t in doc["tasks"]}
        self.assertEqual(v["summarize"]["verdict"], "live", v["summarize"])
        self.assertEqual(v["summarize"]["status"], "completed")
        self.assertEqual(v["summarize"]["output"], "echo: Summarize release 1.2: upstream-42")
        self.assertIn("live: completed", v["summarize"]["detail"])
        self.assertEqual([d["field"] for d in v["summarize"]["diff"]], ["prompt"])
        self.assertEqual(v["build"]["verdict"], "same")
        self.assertEqual(v["fetch"]["verdict"], "same")
        # the dependent is replayed, and its command renders the live reply
        self.assertEqual(v["publish"]["verdict"], "inputs", v["publish"])
        now = json.dumps(v["publish"]["diff"])
        self.assertIn("published: echo: Summarize release 1.2: upstream-42", now)
        self.assertEqual((doc["same"], doc["diverged"], doc["live"], doc["liveFailed"]),
                         (2, 1, 1, 0))
        self.assertEqual(r.returncode, 1)   # publish diverges
        # the live run is in the store, marked as a replay of the recorded one
        runs = self.runs()
        self.assertEqual(len(runs), 2)
        new = runs[0]
        self.assertEqual(new["id"], doc["liveRun"])
        self.assertEqual(new["replayOf"], self.rec_id)
        self.assertIsNone(runs[1]["replayOf"])
        self.assertEqual(new["status"], "completed")
        r = harness.dagrun("runs", "--state", self.state, env_full=self.env(), timeout=60)
        self.assertIn("%s (replay of %s)" % (new["id"], self.rec_id), r.stdout)
        r = harness.dagrun("show", new["id"], "--state", self.state, env_full=self.env(),
                           timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("replay of " + self.rec_id, r.stdout)
        # recorded like any run: the live attempt's inputs and output
        r = harness.dagrun("export", new["id"], "--state", self.state, env_full=self.env(),
                           timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        tasks = {t["id"]: t for t in json.loads(r.stdout)["tasks"]}
        att = tasks["summarize"]["attempts"][0]
        self.assertEqual(att["inputs"]["prompt"], "Summarize release 1.2: upstream-42")
        self.assertEqual(att["results"]["output"], "echo: Summarize release 1.2: upstream-42")
        # `show` tells replayed tasks from the live one
        r = harness.dagrun("show", new["id"], "--format", "json", "--state", self.state,
                           env_full=self.env(), timeout=60)
        shown = {t["id"]: t for t in json.loads(r.stdout)["tasks"]}
        self.assertTrue(shown["build"]["attempts"][0].get("replayed"))
        self.assertNotIn("replayed", shown["summarize"]["attempts"][0])
        # history and stats are the workflow's real runs: not this one
        r = harness.dagrun("stats", "--format", "json", "--state", self.state,
                           env_full=self.env(), timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout)["workflows"][0]["runs"], 1)

    def test_the_text_report_shows_the_live_task_and_its_output(self):
        r, text = self.replay(self.rec_id, "--with", self.edited(), "--live", "summarize",
                              fmt="text")
        self.assertEqual(r.returncode, 1)
        self.assertRegex(text, r"summarize\s+live: completed; inputs differ: prompt:")
        self.assertIn('output: "echo: Summarize release 1.2: upstream-42"', text)
        self.assertIn("; 1 live (0 did not complete) in run ", text)
        self.assertEqual(self.http_count(), 1)
        self.assertEqual(self.runs_log(), 1)

    def test_an_unknown_live_task_is_an_error_with_a_suggestion(self):
        r, _ = self.replay(self.rec_id, "--with", self.edited(), "--live", "summarise",
                           codes=(2,))
        self.assertIn("--live summarise: no such task", r.stderr)
        self.assertIn("did you mean 'summarize'?", r.stderr)
        r, _ = self.replay(self.rec_id, "--live", "build,nope", codes=(2,))
        self.assertIn("--live nope: no such task", r.stderr)
        # nothing ran, nothing was recorded
        self.assertEqual(len(self.ai_requests()), 1)
        self.assertEqual(self.runs_log(), 1)
        self.assertEqual(len(self.runs()), 1)

    def test_a_live_replay_of_an_exported_file_records_in_the_current_state_directory(self):
        out = os.path.join(self.dir, "run.json")
        r = harness.dagrun("export", self.rec_id, "-o", out, "--state", self.state,
                           env_full=self.env(), timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        other = os.path.join(self.dir, "elsewhere")
        r, doc = self.replay(out, "--with", self.edited(), "--live", "summarize", state=other)
        self.assertEqual(len(self.ai_requests()), 2)
        self.assertEqual(self.http_count(), 1)
        self.assertEqual(self.runs_log(), 1)
        runs = self.runs(state=other)
        self.assertEqual(len(runs), 1)
        self.assertEqual(runs[0]["replayOf"], self.rec_id)
        self.assertEqual(runs[0]["id"], doc["liveRun"])
        self.assertEqual(len(self.runs()), 1)   # the recording's store: untouched

    def test_a_live_command_gets_the_real_secret_and_keeps_it_masked(self):
        text = harness.read(self.wf).replace(
            '["echo", "published: {{ tasks.summarize.output }}"]',
            '"echo \'{{ secrets.TOKEN }}\' > token.txt; echo published with {{ secrets.TOKEN }}"')
        wf = harness.write(self.dir, text, name="secret.yaml", dedent=False)
        sf = os.path.join(self.dir, "secrets.env")
        with open(sf, "w") as f:
            f.write("TOKEN=%s\n" % SECRET)
        os.chmod(sf, 0o600)
        r, doc = self.replay(self.rec_id, "--with", wf, "--live", "publish",
                             "--secrets-file", sf)
        v = {t["id"]: t for t in doc["tasks"]}
        self.assertEqual(v["publish"]["status"], "completed", v["publish"])
        # the process got the real value; what dagrun shows and keeps, masked
        self.assertEqual(harness.read(os.path.join(self.dir, "token.txt")).strip(), SECRET)
        self.assertNotIn(SECRET, r.stdout + r.stderr)
        self.assertIn("published with ***", v["publish"]["output"])
        r = harness.dagrun("export", doc["liveRun"], "--state", self.state,
                           env_full=self.env(), timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertNotIn(SECRET, r.stdout)
        r = harness.dagrun("logs", doc["liveRun"], "publish", "--state", self.state,
                           env_full=self.env(), timeout=60)
        self.assertNotIn(SECRET, r.stdout + r.stderr)
        # the replayed upstream tasks did not run
        self.assertEqual(len(self.ai_requests()), 1)
        self.assertEqual(self.http_count(), 1)
        self.assertEqual(self.runs_log(), 1)

    def test_a_live_replay_run_cannot_be_rerun_or_resumed(self):
        r, doc = self.replay(self.rec_id, "--with", self.edited(), "--live", "summarize")
        for cmd in ("rerun", "resume"):
            r = harness.dagrun(cmd, doc["liveRun"], "--state", self.state, env_full=self.env(),
                               cwd=self.dir, timeout=120)
            self.assertEqual(r.returncode, 2, r.stderr)
            self.assertIn("is a live replay of %s: it cannot be continued" % self.rec_id,
                          r.stderr)
        # its replayed tasks did not run for real
        self.assertEqual(len(self.ai_requests()), 2)
        self.assertEqual(self.http_count(), 1)
        self.assertEqual(self.runs_log(), 1)

    def test_the_api_marks_a_live_replay_run_and_refuses_to_continue_it(self):
        import signal
        import subprocess
        r, doc = self.replay(self.rec_id, "--with", self.edited(), "--live", "summarize")
        wfdir = os.path.join(self.dir, "wfdir")
        os.mkdir(wfdir)
        log = open(os.path.join(self.dir, "serve.log"), "w+")
        p = subprocess.Popen([harness.DAGRUN, "serve", "--listen", "127.0.0.1:0", "--dir", wfdir,
                              "--state", self.state], stdout=subprocess.PIPE, stderr=log,
                             text=True, env=self.env())
        try:
            url = p.stdout.readline().strip().rstrip("/")
            self.assertTrue(url.startswith("http://"), url)

            def call(method, path):
                req = urllib.request.Request(url + path, method=method,
                                             data=b"{}" if method == "POST" else None)
                try:
                    with urllib.request.urlopen(req, timeout=60) as f:
                        return f.status, json.load(f)
                except urllib.error.HTTPError as e:
                    return e.code, json.loads(e.read())
            st, o = call("GET", "/api/runs/" + doc["liveRun"])
            self.assertEqual(st, 200, o)
            self.assertEqual(o["run"]["replayOf"], self.rec_id)
            st, o = call("GET", "/api/runs/" + self.rec_id)
            self.assertIsNone(o["run"]["replayOf"])
            for action in ("rerun", "resume"):
                st, o = call("POST", "/api/runs/%s/%s" % (doc["liveRun"], action))
                self.assertEqual(st, 409, o)
                self.assertIn("live replay of " + self.rec_id, json.dumps(o))
        finally:
            p.send_signal(signal.SIGTERM)
            p.wait(timeout=60)
            p.stdout.close()
            log.close()
        self.assertEqual(len(self.ai_requests()), 2)
        self.assertEqual(self.runs_log(), 1)

    def sleeper(self, extra=""):
        """The workflow with publish, edited, a live command that records
        its pid then sleeps."""
        text = harness.read(self.wf).replace(
            '["echo", "published: {{ tasks.summarize.output }}"]',
            '"echo $$ > pid.txt; sleep 300"' + extra)
        return harness.write(self.dir, text, name="sleep.yaml", dedent=False)

    def gone(self, pid, within=30):
        import time
        t0 = time.time()
        while time.time() - t0 < within:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return True
            time.sleep(0.2)
        return False

    def test_a_live_task_obeys_its_timeout(self):
        wf = self.sleeper("\n    timeout: 2s")
        r, doc = self.replay(self.rec_id, "--with", wf, "--live", "publish")
        self.assertEqual(r.returncode, 1)
        v = {t["id"]: t for t in doc["tasks"]}["publish"]
        self.assertEqual(v["status"], "failed", v)
        self.assertIn("live: failed", v["detail"])
        self.assertEqual(doc["liveFailed"], 1)
        self.assertTrue(self.gone(int(harness.read(os.path.join(self.dir, "pid.txt")))))

    def test_an_interrupted_live_replay_stops_its_task_and_exits_130(self):
        import signal
        import subprocess
        import time
        wf = self.sleeper()
        p = subprocess.Popen([harness.DAGRUN, "replay", self.rec_id, "--with", wf, "--live",
                              "publish", "--format", "json", "--state", self.state],
                             env=self.env(), cwd=self.dir, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        try:
            pidfile = os.path.join(self.dir, "pid.txt")
            t0 = time.time()
            while not (os.path.exists(pidfile) and harness.read(pidfile).strip()):
                self.assertLess(time.time() - t0, 60, "the live task never started")
                time.sleep(0.1)
            p.send_signal(signal.SIGINT)
            out, err = p.communicate(timeout=60)
        finally:
            if p.poll() is None:
                p.kill()
                p.communicate()
        self.assertEqual(p.returncode, 130, err[-3000:])
        v = {t["id"]: t for t in json.loads(out)["tasks"]}["publish"]
        self.assertEqual(v["status"], "cancelled", v)
        self.assertTrue(self.gone(int(harness.read(pidfile))))


if __name__ == "__main__":
    unittest.main()
