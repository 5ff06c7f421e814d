#!/usr/bin/env python3
"""End-to-end tests of the `workflow` task kind: a task that runs another
workflow file as a sub-run, with real processes.

- `with` values (templates of the parent) become the child's variables;
  the child's `outputs` come back as tasks.ID.outputs and tasks.ID.json;
- a failing child fails the task (and its dependents), naming the cause;
- cycles between files, nesting too deep, a missing or invalid child and
  an undeclared `with` variable are validation errors at FILE:LINE:COL;
- the task's timeout covers the child run, Ctrl-C stops it, and no process
  of a sub-run outlives the run;
- secrets: the parent's (passed through `with`) and the child's own are
  masked in everything the run shows.

Every process of a run carries a unique marker in its environment (set on
the dagrun process: sub-runs inherit it), so the tests find them, and only
them, in /proc. Every wait has a timeout; margins are generous.
"""
import json
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import unittest
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common"))
from harness import alive, marked, wait_for  # noqa: E402

DAGRUN = os.environ.get("DAGRUN", "build/src/cli/dagrun")


class SubWorkflowTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="dagrun-sub-")
        self.dir = self.tmp.name
        self.tmpdir = os.path.join(self.dir, "t")
        os.mkdir(self.tmpdir)
        self.mark = "SUBRUN_MARK=" + uuid.uuid4().hex
        self.procs = []

    def tearDown(self):
        for pid in marked(self.mark):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait(timeout=30)
        self.tmp.cleanup()

    def write(self, name, text):
        path = os.path.join(self.dir, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(textwrap.dedent(text))
        return path

    def read(self, name):
        with open(os.path.join(self.dir, name)) as f:
            return f.read()

    def env(self, extra=None):
        e = dict(os.environ, NO_COLOR="1", TMPDIR=self.tmpdir)
        k, v = self.mark.split("=", 1)
        e[k] = v
        e.update(extra or {})
        return e

    def cli(self, *args, extra=None, timeout=120):
        return subprocess.run([DAGRUN, *args], capture_output=True, text=True,
                              timeout=timeout, env=self.env(extra), cwd=self.dir)

    def start(self, *args):
        p = subprocess.Popen([DAGRUN, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, env=self.env(), cwd=self.dir)
        self.procs.append(p)
        return p

    def assert_none_survive(self, timeout=30):
        if wait_for(lambda: not marked(self.mark), timeout):
            return
        self.fail("sub-run processes survived: %r" % marked(self.mark))

    def assert_tmpdir_removed(self):
        left = [n for n in os.listdir(self.tmpdir) if n.startswith("dagrun-")]
        self.assertEqual(left, [], "the engine's temporary directory was left behind")

    # ---- data in and out ---------------------------------------------------------

    def test_outputs_flow_to_the_parent(self):
        self.write("lib/child.yaml", """\
            name: child
            variables: {who: nobody, count: 1}
            tasks:
              - id: greet
                command: ["echo", "hello {{ variables.who }}"]
              - id: double
                interpreter: python3
                script: |
                  import os
                  print(int(os.environ["COUNT"]) * 2)
                env: {COUNT: "{{ variables.count }}"}
                dependencies: [greet]
            outputs:
              message: "{{ tasks.greet.output }}"
              doubled: "{{ tasks.double.output }}"
            """)
        self.write("parent.yaml", """\
            name: parent
            tasks:
              - id: name
                command: echo world
              - id: sub
                workflow: lib/child.yaml
                with: {who: "{{ tasks.name.output }}", count: 21}
                dependencies: [name]
              - id: use
                command: 'echo "{{ tasks.sub.outputs.message }}|{{ tasks.sub.json.doubled }}" > got.txt'
                dependencies: [sub]
            """)
        r = self.cli("run", "--no-progress", "--log-format", "json", "parent.yaml")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.read("got.txt"), "hello world|42\n")
        events = [json.loads(l) for l in r.stderr.splitlines() if l.startswith("{")]
        ends = {e["task"]: e for e in events if e["event"] == "attempt.end"}
        self.assertEqual(ends["sub.greet"]["depth"], 1)
        self.assertEqual(ends["sub.double"]["depth"], 1)
        self.assertNotIn("depth", ends["sub"])
        self.assertEqual(ends["sub"]["subRun"]["workflow"], "child")
        self.assertEqual(ends["sub"]["subRun"]["completed"], 2)
        # the child's tasks ran in the child's directory by default
        self.assertEqual(ends["sub.greet"]["status"], "completed")
        end = [e for e in events if e["event"] == "run.end"][0]
        self.assertEqual(end["status"], "completed")

    def test_a_failing_child_fails_the_task(self):
        self.write("child.yaml", """\
            name: child
            tasks:
              - id: broken
                command: "sh -c 'echo broken-on-purpose >&2; exit 3'"
              - id: never
                command: "true"
                dependencies: [broken]
            """)
        self.write("parent.yaml", """\
            name: parent
            tasks:
              - id: sub
                workflow: child.yaml
              - id: after
                command: touch after.txt
                dependencies: [sub]
            """)
        r = self.cli("run", "--no-progress", "parent.yaml")
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("failed: task 'broken' failed: exit code 3", r.stderr)
        self.assertIn("FAILED    sub.broken (transient): exit code 3", r.stderr)
        self.assertIn("FAILED    after (dependency): dependency 'sub' failed", r.stderr)
        self.assertIn("broken-on-purpose", r.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.dir, "after.txt")))
        # the summary counts the run's own tasks
        self.assertIn("0 completed, 2 failed", r.stderr)

    # ---- validation -----------------------------------------------------------

    def test_a_cycle_between_files_is_rejected_with_its_chain(self):
        self.write("a.yaml", """\
            name: a
            tasks:
              - id: to-b
                workflow: b.yaml
            """)
        self.write("b.yaml", """\
            name: b
            tasks:
              - {id: first, command: "true"}
              - id: back
                workflow: a.yaml
            """)
        r = self.cli("validate", "a.yaml")
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("./b.yaml:5:15: error: workflow 'a.yaml' runs itself: "
                      "a.yaml -> ./b.yaml -> ./a.yaml", r.stderr)
        self.assertIn("a.yaml:4:15: error: workflow 'b.yaml' is invalid", r.stderr)
        # a file that runs itself
        self.write("self.yaml", """\
            name: self
            tasks:
              - {id: me, workflow: self.yaml}
            """)
        r = self.cli("validate", "self.yaml")
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("self.yaml:3:24: error: workflow 'self.yaml' runs itself: "
                      "self.yaml -> ./self.yaml", r.stderr)

    def chain(self, levels):
        """l0.yaml runs l1.yaml ... runs l<levels>.yaml, which touches leaf.txt."""
        for i in range(levels):
            self.write("l%d.yaml" % i, """\
                name: l%d
                tasks:
                  - id: down
                    workflow: l%d.yaml
                """ % (i, i + 1))
        self.write("l%d.yaml" % levels, """\
            name: leaf
            tasks:
              - {id: leaf, command: touch leaf.txt}
            """)

    def test_nesting_is_capped_at_eight(self):
        self.chain(8)
        r = self.cli("run", "--no-progress", "l0.yaml")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(os.path.exists(os.path.join(self.dir, "leaf.txt")))
        self.assertIn("ok        down.down.down.down.down.down.down.down.leaf", r.stderr)
        self.chain(9)
        r = self.cli("validate", "l0.yaml")
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("./l8.yaml:4:15: error: workflow 'l9.yaml': sub-workflows nested "
                      "deeper than 8: l0.yaml -> ./l1.yaml", r.stderr)
        self.assertIn("l0.yaml:4:15: error: workflow 'l1.yaml' is invalid", r.stderr)

    def test_a_missing_or_invalid_child_is_a_validation_error(self):
        self.write("bad.yaml", """\
            name: bad
            tasks:
              - id: x
                comand: true
            """)
        self.write("child.yaml", """\
            name: child
            variables: {known: 1}
            tasks:
              - {id: c, command: "true"}
            """)
        self.write("parent.yaml", """\
            name: parent
            tasks:
              - {id: gone, workflow: nowhere.yaml}
              - {id: broken, workflow: bad.yaml}
              - id: typo
                workflow: child.yaml
                with: {knwon: 2}
              - {id: templ, workflow: "{{ variables.x }}.yaml"}
            """)
        r = self.cli("validate", "parent.yaml")
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("parent.yaml:3:26: error: workflow 'nowhere.yaml': cannot read "
                      "./nowhere.yaml: No such file or directory", r.stderr)
        self.assertIn("./bad.yaml:4:5: error: unknown key 'comand' in task; did you mean "
                      "'command'?", r.stderr)
        self.assertIn("parent.yaml:4:28: error: workflow 'bad.yaml' is invalid", r.stderr)
        self.assertIn("parent.yaml:7:12: error: 'with': 'knwon' is not a variable of the "
                      "workflow ./child.yaml", r.stderr)
        self.assertIn("parent.yaml:8:28: error: workflow '{{ variables.x }}.yaml': cannot "
                      "read", r.stderr)
        self.assertIn("parent.yaml:8:28: error: 'workflow' is used as written, it is not a "
                      "template", r.stderr)
        # a run validates first: nothing runs
        r = self.cli("run", "--no-progress", "parent.yaml")
        self.assertEqual(r.returncode, 2, r.stderr)

    # ---- stopping: timeouts, Ctrl-C ----------------------------------------------

    SLOW = """\
        name: slow
        tasks:
          - {id: s1, command: "sleep 300"}
          - {id: s2, command: ["sh", "-c", "sleep 301 & sleep 302"]}
          - {id: deeper, workflow: slower.yaml}
        """
    SLOWER = """\
        name: slower
        tasks:
          - id: s3
            command: 'setsid sleep 303 < /dev/null > /dev/null 2>&1 & sleep 304'
        """

    def sleeps(self):
        out = []
        for p in marked(self.mark):
            try:
                with open("/proc/%d/comm" % p) as f:
                    if f.read().strip() == "sleep":
                        out.append(p)
            except OSError:
                pass
        return out

    def test_the_tasks_timeout_covers_the_child_run(self):
        self.write("slow.yaml", self.SLOW)
        self.write("slower.yaml", self.SLOWER)
        self.write("parent.yaml", """\
            name: parent
            tasks:
              - id: sub
                workflow: slow.yaml
                timeout: 3s
                killGrace: 2s
            """)
        t0 = time.monotonic()
        r = self.cli("run", "--no-progress", "-j", "8", "parent.yaml", timeout=120)
        took = time.monotonic() - t0
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("FAILED    sub (transient): timed out after 3s", r.stderr)
        self.assertIn("cancelled sub.s1", r.stderr)
        self.assertIn("cancelled sub.deeper.s3", r.stderr)
        self.assertLess(took, 100)
        self.assert_none_survive(timeout=30)
        self.assert_tmpdir_removed()

    def test_ctrl_c_stops_the_child_and_leaves_nothing_behind(self):
        self.write("slow.yaml", self.SLOW)
        self.write("slower.yaml", self.SLOWER)
        self.write("parent.yaml", """\
            name: parent
            tasks:
              - {id: own, command: "sleep 305"}
              - {id: sub, workflow: slow.yaml}
            """)
        p = self.start("run", "--no-progress", "-j", "8", "parent.yaml")
        # own, s1, s2's two, s3's two (one escaped its session)
        self.assertTrue(wait_for(lambda: len(self.sleeps()) >= 6, 60), self.sleeps())
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=60)
        self.assertEqual(p.returncode, 130, err)
        self.assertIn("cancelled sub.s1", err)
        self.assertIn("cancelled sub.deeper.s3", err)
        self.assertIn("cancelled sub\n", err)
        self.assert_none_survive(timeout=30)
        self.assert_tmpdir_removed()

    # ---- secrets ------------------------------------------------------------------

    def test_secrets_of_parent_and_child_are_masked(self):
        self.write("child.yaml", """\
            name: child
            variables: {token: none}
            tasks:
              - id: leak
                command: 'echo "from-parent={{ variables.token }} own={{ secrets.CHILD_SECRET }}"'
            outputs:
              echoed: "{{ tasks.leak.output }}"
            """)
        self.write("parent.yaml", """\
            name: parent
            tasks:
              - id: sub
                workflow: child.yaml
                with: {token: "{{ secrets.PARENT_SECRET }}"}
              - id: show
                command: 'echo "{{ tasks.sub.outputs.echoed }}"'
                dependencies: [sub]
            """)
        extra = {"PARENT_SECRET": "p-very-secret-value-1", "CHILD_SECRET": "c-very-secret-value-2"}
        r = self.cli("run", "--no-progress", "-v", "parent.yaml", extra=extra)
        self.assertEqual(r.returncode, 0, r.stderr)
        for s in extra.values():
            self.assertNotIn(s, r.stdout + r.stderr)
        self.assertIn("from-parent=***", r.stderr)
        self.assertIn("own=***", r.stderr)


if __name__ == "__main__":
    unittest.main()
