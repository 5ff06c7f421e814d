#!/usr/bin/env python3
"""End-to-end hardening tests of expressions (issue 9).

Rule 1: an expression that asks a library function for unbounded work (a
`when`, a dependency `condition`, a template) fails its task with an error
naming the function, while the engine goes on: another task's `timeout`
still fires and SIGTERM still stops the run. Before the fix the evaluation
spun forever inside C, so every test here runs dagrun under a timeout and
kills its process group when it expires: a regression fails, never hangs.

Rule 3: what the run would refuse, `dagrun validate` refuses (exit 2), with
FILE:LINE:COL.
"""
import os
import signal
import subprocess
import sys
import textwrap
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common"))
import harness  # noqa: E402
from harness import events  # noqa: E402

DAGRUN = os.path.abspath(harness.DAGRUN)

# Each asks one C function for ~10^15 steps of work.
HOSTILE = {
    "table.move": "table.move({}, 1, 1e15, 1) ~= nil",
    "table.insert": "(function() local t = {} for i = 50, 0, -1 do t[1 << i] = 1 end "
                    "table.insert(t, 1, 0) end)() == nil",
    "string.gsub": "('x'):rep(1e5):gsub('', ('%0'):rep(1e5)) ~= nil",
}


def run_bounded(args, cwd, timeout):
    """Runs dagrun in its own process group; on timeout kills the group
    (dagrun and its tasks) and returns None. Else (returncode, stdout,
    stderr, seconds)."""
    t0 = time.monotonic()
    r = harness.dagrun_bounded(*args, cwd=cwd, timeout=timeout)
    if r is None:
        return None
    return r.returncode, r.stdout, r.stderr, time.monotonic() - t0


def final_status(evs, task):
    st = [e for e in evs if e.get("event") == "task.status" and e.get("task") == task]
    return st[-1] if st else None


class HardenExprTest(harness.TempDirTest):
    prefix = "dagrun-harden-expr-"

    # ---- rule 1: the loop goes on ------------------------------------------

    def check_timeout_still_fires(self, bad_task, fn):
        """A task with `timeout: 1s` runs `sleep 30`; meanwhile `bad`,
        released by a short gate, evaluates a hostile expression."""
        wf = self.write("name: harden\ntasks:\n"
                        "  - {id: sleeper, command: \"sleep 30\", timeout: 1s, killGrace: 1s}\n"
                        "  - {id: gate, command: \"sleep 0.3\"}\n"
                        + textwrap.indent(textwrap.dedent(bad_task), "  "))
        r = run_bounded(["run", wf, "--log-format", "json"], self.dir, 60)
        self.assertIsNotNone(r, "dagrun did not finish within 60 s: the evaluation blocked the loop")
        rc, _out, err, secs = r
        self.assertEqual(rc, 1, err[-2000:])
        self.assertLess(secs, 25, "the run took %.1f s" % secs)
        evs = events(err)
        sleeper = final_status(evs, "sleeper")
        self.assertEqual(sleeper["status"], "failed")
        self.assertIn("timed out after 1s", sleeper["error"])
        bad = final_status(evs, "bad")
        self.assertEqual(bad["status"], "failed", bad)
        self.assertEqual(bad["errorClass"], "permanent")
        self.assertIn("expression took too long", bad["error"])
        self.assertIn(fn, bad["error"])
        self.assertRegex(bad["error"], r"wf\.yaml:\d+:\d+: ")

    def test_a_hostile_when_fails_its_task_and_other_timeouts_fire(self):
        for fn, expr in HOSTILE.items():
            with self.subTest(fn=fn):
                self.check_timeout_still_fires("""\
                    - id: bad
                      dependencies: [gate]
                      when: "%s"
                      command: "true"
                    """ % expr.replace('"', '\\"'), fn)

    def test_a_hostile_condition_fails_its_task_and_other_timeouts_fire(self):
        self.check_timeout_still_fires("""\
            - id: bad
              dependencies:
                - {taskId: gate, condition: "%s"}
              command: "true"
            """ % HOSTILE["table.move"], "table.move")

    def test_a_hostile_template_fails_its_task_and_other_timeouts_fire(self):
        self.check_timeout_still_fires("""\
            - id: bad
              dependencies: [gate]
              command: "echo {{ %s }}"
            """ % HOSTILE["table.insert"], "table.insert")

    def test_sigterm_stops_a_run_with_a_hostile_expression(self):
        wf = self.write("""\
            name: harden
            tasks:
              - {id: long, command: "sleep 60"}
              - {id: gate, command: "sleep 0.5"}
              - id: bad
                dependencies: [gate]
                when: "%s"
                command: "true"
              - {id: after, dependencies: [gate], command: "sleep 60"}
            """ % HOSTILE["table.move"])
        p = subprocess.Popen([DAGRUN, "run", wf, "--log-format", "json"], cwd=self.dir,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             start_new_session=True, env=dict(os.environ, NO_COLOR="1"))
        try:
            time.sleep(2.5)
            p.send_signal(signal.SIGTERM)
            t0 = time.monotonic()
            try:
                _out, err = p.communicate(timeout=20)
            except subprocess.TimeoutExpired:
                self.fail("dagrun ignored SIGTERM for 20 s")
            self.assertLess(time.monotonic() - t0, 15)
            self.assertEqual(p.returncode, 143, err[-2000:])
            evs = events(err)
            self.assertEqual(final_status(evs, "long")["status"], "cancelled")
            self.assertEqual(final_status(evs, "after")["status"], "cancelled")
            self.assertIn("table.move", final_status(evs, "bad")["error"])
            # no `sleep 60` of ours is left
            ps = subprocess.run(["ps", "-o", "pid=", "-g", str(p.pid)], capture_output=True,
                                text=True)
            self.assertEqual(ps.stdout.split(), [])
        finally:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.communicate()

    # ---- rule 3: validate refuses what the run refuses ----------------------

    def test_validate_refuses_what_the_run_refuses(self):
        # (the task's body, the text the error points at, the reason)
        cases = [
            ("command: 'echo `{{ variables.v }}`'", "{{", "inside `...`"),
            ("command: 'echo ${X:-{{ variables.v }}}'", "{{", "inside ${...}"),
            ("command: 'echo $(( {{ variables.v }} + 1 ))'", "{{", "arithmetic"),
            ("command: \"echo $'{{ variables.v }}'\"", "{{", "$'...'"),
            ("command: 'echo ${{ variables.v }}'", "{{", "right after '$'"),
            ("command: 'echo \\{{ variables.v }}'", "{{", "right after a backslash"),
            ("script: |\n      cat <<'EOF'\n      `{{ variables.v }}`\n      EOF\n      x=`{{ variables.v }}`",
             "x=`{{", "inside `...`"),
            ("command: 'true'\n    when: '_ENV.os == nil'", "os ==", "unknown name 'os'"),
            ("interpreter: '{{ variables.v }}'\n    script: echo hi", "{{",
             "'interpreter' is used as written"),
        ]
        for body, at, why in cases:
            with self.subTest(body=body):
                text = "name: x\nvariables: {v: 1}\ntasks:\n  - id: b\n    %s\n" % body
                wf = self.write(text)
                before = text[:text.index(at) + (3 if at.startswith("x=") else 0)]
                line = before.count("\n") + 1
                col = len(before) - (before.rfind("\n") + 1) + 1
                r = run_bounded(["validate", wf], self.dir, 60)
                self.assertIsNotNone(r)
                rc, out, err, _ = r
                self.assertEqual(rc, 2, out + err)
                self.assertIn("wf.yaml:%d:%d: error: " % (line, col), out + err)
                self.assertIn(why, out + err)
                self.assertIn(" 1 error", out + err)
                # and the run refuses it before starting anything
                r = run_bounded(["run", wf], self.dir, 60)
                self.assertIsNotNone(r)
                self.assertEqual(r[0], 2, r[1] + r[2])


if __name__ == "__main__":
    unittest.main(verbosity=2)
