#!/usr/bin/env python3
"""End-to-end tests of `dagrun replay` and `dagrun export` (README
"Replay and export").

A run with command, HTTP and AI tasks is recorded against the test servers
(tests/http/server.py, tests/ai/fake_openai.py); then, with both servers
STOPPED and neither the API key nor the secret in the environment:
  - it replays as all `same` (exit 0), and nothing is sent (the HTTP
    server counts its requests: still one);
  - an edited `when`, an edited prompt, an added and a removed task are
    each reported as their divergence (exit 1);
  - `dagrun export` then `dagrun replay FILE` in another state directory
    gives the same report;
  - the secret appears nowhere in the export, neither as it is nor in
    base64.
"""
import base64
import json
import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common"))
import harness  # noqa: E402

SECRET = "sk-replay-7f3a9c2e51d04b86"

WF = """\
    name: replay-demo
    tasks:
      - id: build
        command: "echo built; touch ran.marker; echo ver=1.2 >> $DAGRUN_OUTPUT"
      - id: fetch
        api:
          url: "HTTP/data?key=KEY&body=hello"
          headers:
            Authorization: "Bearer {{ secrets.TOKEN }}"
      - id: summarise
        dependencies: [build, fetch]
        model: m-replay
        baseUrl: BASE
        prompt: "Summarise version {{ tasks.build.outputs.ver }}: {{ tasks.fetch.output }}"
      - id: publish
        dependencies: [summarise]
        when: "tasks.build.outputs.ver == '1.2'"
        command: ["echo", "{{ tasks.summarise.output }}"]
      - id: old
        command: "echo old"
    """


class ReplayTest(harness.TempDirTest):
    prefix = "dagrun-replay-"

    def env(self, **extra):
        e = harness.loopback_env()
        for k in ("OPENAI_BASE_URL", "OPENAI_API_KEY", "DAGRUN_STATE", "TOKEN"):
            e.pop(k, None)
        e.update(extra)
        return e

    def setUp(self):
        super().setUp()
        self.state = os.path.join(self.dir, "state")
        self.key = "replay-%d" % os.getpid()
        with harness.start_http_server() as h, harness.start_fake_openai() as ai:
            self.http_base = h.base
            self.ai_base = ai.base + "/v1"
            self.wf = self.write(WF, replace=self.subs())
            r = harness.dagrun("run", self.wf, "--state", self.state,
                               env_full=self.env(TOKEN=SECRET), cwd=self.dir, timeout=120)
            self.assertEqual(r.returncode, 0, r.stdout[-2000:] + r.stderr[-3000:])
            import urllib.request
            with urllib.request.urlopen(h.base + "/_stats?key=" + self.key, timeout=30) as f:
                self.requests = json.load(f)["count"]
        os.unlink(os.path.join(self.dir, "ran.marker"))
        # both servers are stopped from here on

    def subs(self):
        return {"HTTP": self.http_base, "KEY": self.key, "BASE": self.ai_base}

    def replay(self, *args, state=None, fmt="json"):
        r = harness.dagrun("replay", *args, "--format", fmt, "--state", state or self.state,
                           env_full=self.env(), cwd=self.dir, timeout=120)
        self.assertIn(r.returncode, (0, 1), r.stdout[-2000:] + r.stderr[-3000:])
        return r, (json.loads(r.stdout) if fmt == "json" else r.stdout)

    def edited(self, old, new, name):
        text = harness.read(self.wf)
        self.assertIn(old, text)
        return harness.write(self.dir, text.replace(old, new), name=name, dedent=False)

    def verdicts(self, doc):
        return {t["id"]: t for t in doc["tasks"]}

    def test_recorded_run_replays_as_all_same_with_servers_stopped(self):
        self.assertEqual(self.requests, 1)
        r, doc = self.replay("last")
        self.assertEqual(r.returncode, 0, r.stdout)
        v = self.verdicts(doc)
        self.assertEqual(set(v), {"build", "fetch", "summarise", "publish", "old"})
        for t in v.values():
            self.assertEqual(t["verdict"], "same", t)
        r, text = self.replay("last", fmt="text")
        self.assertEqual(r.returncode, 0)
        self.assertIn("replay: 5 same, 0 diverge", text)
        # no process ran: the command that touches a file did not
        self.assertFalse(os.path.exists(os.path.join(self.dir, "ran.marker")))

    def test_an_edited_when_is_reported_as_would_be_skipped(self):
        wf = self.edited("== '1.2'", "== '9.9'", "when.yaml")
        r, doc = self.replay("last", "--with", wf)
        self.assertEqual(r.returncode, 1)
        v = self.verdicts(doc)
        self.assertEqual(v["publish"]["verdict"], "would-skip", v["publish"])
        self.assertEqual(v["summarise"]["verdict"], "same")
        self.assertEqual(doc["diverged"], 1)

    def test_an_edited_prompt_is_reported_with_a_diff_of_the_prompt(self):
        wf = self.edited("Summarise version", "Summarize release", "prompt.yaml")
        r, doc = self.replay("last", "--with", wf)
        self.assertEqual(r.returncode, 1)
        v = self.verdicts(doc)["summarise"]
        self.assertEqual(v["verdict"], "inputs", v)
        self.assertEqual([d["field"] for d in v["diff"]], ["prompt"])
        self.assertTrue(v["diff"][0]["recorded"].startswith("Summarise version 1.2: "))
        self.assertTrue(v["diff"][0]["now"].startswith("Summarize release 1.2: "))
        # the recorded reply still feeds publish: same
        self.assertEqual(self.verdicts(doc)["publish"]["verdict"], "same")

    def test_an_added_and_a_removed_task_are_reported(self):
        text = harness.read(self.wf).replace("  - id: old\n    command: \"echo old\"\n",
                                             "  - id: extra\n    command: \"echo extra\"\n")
        wf = harness.write(self.dir, text, name="addrm.yaml", dedent=False)
        r, doc = self.replay("last", "--with", wf)
        self.assertEqual(r.returncode, 1)
        v = self.verdicts(doc)
        self.assertEqual(v["extra"]["verdict"], "new")
        self.assertIn("would run", v["extra"]["detail"])
        self.assertEqual(v["old"]["verdict"], "removed")
        self.assertEqual(doc["diverged"], 2)

    def test_changed_dependencies_are_reported(self):
        wf = self.edited("dependencies: [summarise]", "dependencies: [summarise, old]", "deps.yaml")
        r, doc = self.replay("last", "--with", wf)
        self.assertEqual(r.returncode, 1)
        self.assertEqual(self.verdicts(doc)["publish"]["verdict"], "dependencies")

    def test_export_then_replay_in_another_state_directory_gives_the_same_report(self):
        out = os.path.join(self.dir, "run.json")
        r = harness.dagrun("export", "last", "-o", out, "--state", self.state,
                           env_full=self.env(), timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        other = os.path.join(self.dir, "elsewhere")
        os.mkdir(other)
        wf = self.edited("Summarise version", "Summarize release", "prompt2.yaml")
        for args in ((), ("--with", wf)):
            r1, a = self.replay("last", *args)
            r2, b = self.replay(out, *args, state=os.path.join(other, "state"))
            self.assertEqual(r1.returncode, r2.returncode)
            self.assertEqual(a, b)
            t1 = self.replay("last", *args, fmt="text")[1]
            t2 = self.replay(out, *args, state=os.path.join(other, "state"), fmt="text")[1]
            self.assertEqual(t1, t2)
        self.assertFalse(os.path.exists(os.path.join(other, "state")))

    def test_the_export_holds_inputs_and_results_and_never_the_secret(self):
        r = harness.dagrun("export", "last", "--state", self.state, env_full=self.env(),
                           timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        text = r.stdout
        self.assertNotIn(SECRET, text)
        for form in (base64.b64encode(SECRET.encode()).decode(),
                     base64.urlsafe_b64encode(SECRET.encode()).decode().rstrip("=")):
            self.assertNotIn(form, text)
        doc = json.loads(text)
        self.assertEqual(doc["dagrunExport"], 1)
        tasks = {t["id"]: t for t in doc["tasks"]}
        fetch = tasks["fetch"]["attempts"][0]
        self.assertEqual(fetch["inputs"]["method"], "GET")
        self.assertEqual(fetch["inputs"]["headers"]["Authorization"], "Bearer ***")
        self.assertEqual(fetch["httpStatus"], 200)
        self.assertEqual(fetch["stdout"], "hello")
        build = tasks["build"]["attempts"][0]
        self.assertEqual(build["results"]["outputs"], {"ver": "1.2"})
        self.assertEqual(build["inputs"]["kind"], "command")
        ai = tasks["summarise"]["attempts"][0]
        self.assertEqual(ai["inputs"]["model"], "m-replay")
        self.assertEqual(ai["inputs"]["prompt"], "Summarise version 1.2: hello")
        self.assertNotIn("baseUrl", ai["inputs"])
        self.assertEqual(ai["results"]["output"], "echo: Summarise version 1.2: hello")
        self.assertEqual(tasks["publish"]["dependencies"], ["summarise"])

    def test_a_sub_workflow_is_replayed_from_its_recorded_outputs(self):
        self.write("""\
            name: child
            tasks:
              - id: inner
                command: "touch MARK; echo v=42 >> $DAGRUN_OUTPUT"
            outputs: { v: "{{ tasks.inner.outputs.v }}" }
            """, name="child.yaml",
                   replace={"MARK": os.path.join(self.dir, "child.marker")})
        os.mkdir(os.path.join(self.dir, "w"))
        parent = self.write("""\
            name: parent
            tasks:
              - id: sub
                workflow: ../child.yaml
              - id: after
                dependencies: [sub]
                command: ["echo", "got {{ tasks.sub.outputs.v }}"]
            """, name="w/parent.yaml")
        st = os.path.join(self.dir, "sub-state")
        r = harness.dagrun("run", parent, "--state", st, env_full=self.env(),
                           cwd=os.path.join(self.dir, "w"), timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr[-3000:])
        os.unlink(os.path.join(self.dir, "child.marker"))
        r = harness.dagrun("replay", "last", "--format", "json", "--state", st,
                           env_full=self.env(), cwd=os.path.join(self.dir, "w"), timeout=120)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr[-3000:])
        doc = json.loads(r.stdout)
        self.assertEqual({t["id"]: t["verdict"] for t in doc["tasks"]},
                         {"sub": "same", "after": "same"})
        self.assertFalse(os.path.exists(os.path.join(self.dir, "child.marker")))

    def test_variables_given_with_var_are_those_of_the_replay(self):
        wf = self.write("""\
            name: vars
            variables: { greeting: hi, n: 3 }
            tasks:
              - id: say
                command: "echo {{ variables.greeting }} {{ variables.n }}"
            """, name="vars.yaml")
        st = os.path.join(self.dir, "vars-state")
        r = harness.dagrun("run", wf, "--var", "greeting=hello", "--state", st,
                           env_full=self.env(), cwd=self.dir, timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr[-3000:])
        r, doc = self.replay("last", state=st)
        self.assertEqual(r.returncode, 0, doc)
        # an edit of the default does not matter: the run overrode it
        edited = harness.write(self.dir, harness.read(wf).replace("greeting: hi", "greeting: hey"),
                               name="vars2.yaml", dedent=False)
        r, doc = self.replay("last", "--with", edited, state=st)
        self.assertEqual(r.returncode, 0, doc)

    def test_usage_errors_exit_2(self):
        r = harness.dagrun("replay", env_full=self.env(), timeout=60)
        self.assertEqual(r.returncode, 2)
        r = harness.dagrun("replay", "last", "--format", "xml", "--state", self.state,
                           env_full=self.env(), timeout=60)
        self.assertEqual(r.returncode, 2)
        r = harness.dagrun("replay", "nosuchrun", "--state", self.state,
                           env_full=self.env(), timeout=60)
        self.assertEqual(r.returncode, 2)


if __name__ == "__main__":
    unittest.main()
