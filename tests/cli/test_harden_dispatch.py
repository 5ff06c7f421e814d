#!/usr/bin/env python3
"""End-to-end: many expensive evaluations never hold the event loop (issue 9,
rule 1, leftovers).

Each evaluation is capped at 500 ms, but a dispatch pass used to evaluate
the `when` of every ready task, the condition of every dependent of a task
that ended, and the templates of every task it started, all in one loop
turn: 20 evaluations that each run into the time limit held timeouts and
signals for 10 s. Now a pass stops once its turn has spent its budget
(50 ms) and goes on next turn. Each test runs 20 such evaluations (about
10 s of them in all) beside a task with `timeout: 1s` running `sleep 60`,
started before them, and checks that its timeout killed it long before
the evaluations were over, or that SIGTERM stopped the run at once. Every
dagrun runs under a timeout in its own process group, killed if it
expires: a regression fails, never hangs.
"""
import calendar
import os
import signal
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common"))
from harness import events  # noqa: E402

DAGRUN = os.path.abspath(os.environ.get("DAGRUN", "build/src/cli/dagrun"))

# Compares two distinct 2 MB strings in a loop: no library function is
# called, few steps are spent, and the 500 ms time limit stops it.
SLOW = ("(function() local a, b = ('x'):rep(2e6), ('x'):rep(2e6) "
        "while true do if a == b then end end end)()")
N = 20          # evaluations of 0.5 s: 10 s if they run back to back
SOON = 6.0      # the sleeper's end, in seconds after the run's start, at most

SLEEPER = '  - {id: sleeper, command: "sleep 60", timeout: 1s, killGrace: 1s}\n'


def ts(ev):
    """Seconds since the epoch of an event's RFC 3339 `ts`."""
    t = time.strptime(ev["ts"][:19], "%Y-%m-%dT%H:%M:%S")
    return calendar.timegm(t) + float("0" + ev["ts"][19:-1])


def final_status(evs, task):
    st = [e for e in evs if e.get("event") == "task.status" and e.get("task") == task
          and e.get("status") not in ("running", "retrying")]
    return st[-1] if st else None


class HardenDispatchTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="dagrun-harden-dispatch-")
        self.dir = self.tmp.name

    def tearDown(self):
        self.tmp.cleanup()

    def write(self, text):
        path = os.path.join(self.dir, "wf.yaml")
        with open(path, "w") as f:
            f.write(text)
        return path

    def start(self, wf):
        return subprocess.Popen([DAGRUN, "run", wf, "--log-format", "json", "-j", "40"],
                                cwd=self.dir, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, start_new_session=True,
                                env=dict(os.environ, NO_COLOR="1"))

    def finish(self, p, timeout):
        try:
            _out, err = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.communicate()
            self.fail("dagrun did not finish within %d s" % timeout)
        return err

    def check_sleeper_dies_soon(self, wf, slow_tasks):
        p = self.start(wf)
        err = self.finish(p, 120)
        self.assertEqual(p.returncode, 1, err[-2000:])
        evs = events(err)
        t0 = ts([e for e in evs if e["event"] == "run.start"][0])
        sleeper = final_status(evs, "sleeper")
        self.assertEqual(sleeper["status"], "failed", sleeper)
        self.assertIn("timed out after 1s", sleeper["error"])
        self.assertLess(ts(sleeper) - t0, SOON,
                        "the sleeper's timeout waited for the evaluations")
        # every slow evaluation ran into its time limit and failed its task
        for t in slow_tasks:
            st = final_status(evs, t)
            self.assertEqual(st["status"], "failed", st)
            self.assertIn("time limit of 500 ms", st["error"])
        # and they did take their time: about N x 0.5 s after the start
        end = max(ts(final_status(evs, t)) for t in slow_tasks)
        self.assertGreater(end - t0, ts(sleeper) - t0)

    def test_slow_whens_do_not_hold_back_a_timeout(self):
        wf = self.write("name: d\ntasks:\n" + SLEEPER + "".join(
            '  - {id: w%d, when: "%s", command: "true"}\n' % (i, SLOW) for i in range(N)))
        self.check_sleeper_dies_soon(wf, ["w%d" % i for i in range(N)])

    def test_slow_conditions_do_not_hold_back_a_timeout(self):
        # gate ends after the sleeper started: its 20 dependents' conditions
        # are evaluated as it ends
        wf = self.write("name: d\ntasks:\n" + SLEEPER +
                        '  - {id: gate, command: "sleep 0.2"}\n' + "".join(
                            '  - {id: c%d, command: "true", dependencies: '
                            '[{taskId: gate, condition: "%s"}]}\n' % (i, SLOW)
                            for i in range(N)))
        self.check_sleeper_dies_soon(wf, ["c%d" % i for i in range(N)])

    def test_slow_templates_do_not_hold_back_a_timeout(self):
        wf = self.write("name: d\ntasks:\n" + SLEEPER + "".join(
            '  - {id: t%d, command: "echo {{ %s }}"}\n' % (i, SLOW) for i in range(N)))
        self.check_sleeper_dies_soon(wf, ["t%d" % i for i in range(N)])

    def test_sigterm_during_slow_whens_exits_143_at_once(self):
        wf = self.write("name: d\ntasks:\n" +
                        '  - {id: long, command: "sleep 60"}\n' + "".join(
                            '  - {id: w%d, when: "%s", command: "true"}\n' % (i, SLOW)
                            for i in range(2 * N)))
        p = self.start(wf)
        try:
            time.sleep(2)      # evaluations are under way (20 s of them)
            self.assertIsNone(p.poll())
            p.send_signal(signal.SIGTERM)
            t0 = time.monotonic()
            err = self.finish(p, 60)
            waited = time.monotonic() - t0
            self.assertEqual(p.returncode, 143, err[-2000:])
            self.assertLess(waited, 8, "SIGTERM waited for the evaluations")
            evs = events(err)
            self.assertEqual(final_status(evs, "long")["status"], "cancelled")
            # tasks whose `when` was not evaluated yet stay pending
            self.assertIsNone(final_status(evs, "w%d" % (2 * N - 1)))
        finally:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.communicate()


if __name__ == "__main__":
    unittest.main(verbosity=2)
