#!/usr/bin/env python3
"""End-to-end tests of the engine's hardening (issue 9), with real processes.

- a task made final by `when` (skipped, or failed) releases its
  non-blocking dependents, in the main tasks and in hooks;
- more than 255 resource pools;
- SIGPIPE (the reader of our output went away) and SIGHUP;
- tasks die with the engine, even when it is SIGKILLed, and no watchdog
  process outlives a normal run.

Every task process carries a unique marker in its environment (workflow
`env`), so the tests find them, and only them, in /proc. Every wait has a
timeout, so a regression fails instead of hanging; margins are generous (a
loaded 2-core machine).
"""
import os
import signal
import subprocess
import sys
import textwrap
import unittest
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common"))
import harness  # noqa: E402
from harness import DAGRUN, alive, marked, wait_for  # noqa: E402


def proc_stat(pid):
    """(state, ppid, pgrp, session, comm) of pid, or None when gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            data = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    comm = data[data.index("(") + 1:data.rindex(")")]
    f = data[data.rindex(")") + 2:].split()
    return f[0], int(f[1]), int(f[2]), int(f[3]), comm


def children_named(ppid, comm):
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            st = proc_stat(int(name))
            if st and st[1] == ppid and st[4] == comm:
                out.append(int(name))
    return out


class HardenTest(harness.TempDirTest):
    prefix = "dagrun-h9-"

    def setUp(self):
        super().setUp()
        self.tmpdir = os.path.join(self.dir, "t")   # the engine's TMPDIR
        os.mkdir(self.tmpdir)
        self.mark = "HARDEN_MARK=" + uuid.uuid4().hex
        self.procs = []

    def tearDown(self):
        # A failed test must not leave sleep 300s behind.
        for pid in marked(self.mark):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait(timeout=30)
        super().tearDown()

    def env(self):
        return harness.env(TMPDIR=self.tmpdir)

    def run_wf(self, path, *args, timeout=60):
        return harness.dagrun("run", path, "--no-progress", *args, timeout=timeout,
                              env_full=self.env())

    def start(self, path, *args, **kw):
        p = subprocess.Popen([DAGRUN, "run", path, "--no-progress", *args],
                             env=self.env(), **kw)
        self.procs.append(p)
        return p

    def marker_env(self):
        name, value = self.mark.split("=", 1)
        return "env: {%s: %s}\n" % (name, value)

    def file(self, name):
        return os.path.join(self.dir, name)

    def assert_tmpdir_removed(self):
        left = [n for n in os.listdir(self.tmpdir) if n.startswith("dagrun-")]
        self.assertEqual(left, [], "the engine's temporary directory was left behind")

    def assert_none_survive(self, timeout=30):
        if wait_for(lambda: not marked(self.mark), timeout):
            return
        info = [(pid, proc_stat(pid)) for pid in marked(self.mark)]
        self.fail("task processes survived: %r" % info)

    # ---- when: a final task releases its non-blocking dependents ----------

    def test_when_false_releases_non_blocking_dependent(self):
        wf = self.write("""\
            name: whenskip
            tasks:
              - {id: a, command: 'true', when: 'false'}
              - id: b
                command: touch b.ran
                dependencies: [{taskId: a, type: non-blocking}]
            onExit:
              - {id: x, command: 'true', when: 'false'}
              - id: y
                command: touch y.ran
                dependencies: [{taskId: x, type: non-blocking}]
            """)
        r = self.run_wf(wf, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(os.path.exists(self.file("b.ran")))
        self.assertTrue(os.path.exists(self.file("y.ran")))

    def test_when_skip_failing_a_task_releases_its_non_blocking_dependent(self):
        wf = self.write("""\
            name: whenfail
            tasks:
              - {id: a, command: 'true', when: 'false'}
              - {id: b, command: 'true', dependencies: [a]}
              - id: c
                command: touch c.ran
                dependencies: [{taskId: b, type: non-blocking}]
              - {id: d, command: 'true', when: 'error("boom")'}
              - id: e
                command: touch e.ran
                dependencies: [{taskId: d, type: non-blocking}]
            """)
        r = self.run_wf(wf, timeout=60)
        self.assertEqual(r.returncode, 1, r.stderr)   # b and d failed
        self.assertTrue(os.path.exists(self.file("c.ran")))
        self.assertTrue(os.path.exists(self.file("e.ran")))
        self.assertIn("dependency", r.stderr)

    # ---- pools --------------------------------------------------------------

    def test_two_tasks_waiting_on_the_256th_pool(self):
        pools = "".join("  p%d: 1\n" % i for i in range(256))
        wf = self.write("name: pools\nresources:\n" + pools + "tasks:\n"
                        "  - {id: a, command: 'sleep 0.5; touch a.ran', resources: {p255: 1}}\n"
                        "  - {id: b, command: 'sleep 0.5; touch b.ran', resources: {p255: 1}}\n"
                        "  - {id: c, command: 'touch c.ran', resources: {p255: 1}}\n")
        r = self.run_wf(wf, "-j", "4", timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        for t in "abc":
            self.assertTrue(os.path.exists(self.file(t + ".ran")))

    # ---- SIGPIPE and SIGHUP -------------------------------------------------

    def test_reader_of_the_output_gone_the_run_goes_on_and_cleans_up(self):
        # As `dagrun run wf.yaml -v 2>&1 | head -n 2`: the reader leaves after
        # two lines, tasks are still running and more start afterwards.
        wf = self.write("name: pipe\n" + self.marker_env() + textwrap.dedent("""\
            tasks:
              - {id: a, command: 'sleep 1; echo a says hi'}
              - {id: b, command: 'sleep 2; echo b says hi'}
              - {id: c, command: 'sleep 1; touch c.ran; echo c says hi', dependencies: [a]}
            """))
        p = self.start(wf, "-v", "-j", "4", stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        got = [p.stdout.readline() for _ in range(2)]
        self.assertTrue(all(got), got)
        p.stdout.close()           # the reader is gone
        rc = p.wait(timeout=60)
        self.assertEqual(rc, 0)    # not 141: the run went on to its end
        self.assertTrue(os.path.exists(self.file("c.ran")))
        self.assert_none_survive()
        self.assert_tmpdir_removed()

    def test_sighup_stops_like_sigterm(self):
        wf = self.write("name: hup\n" + self.marker_env() + textwrap.dedent("""\
            tasks:
              - {id: a, command: 'sleep 300'}
              - {id: b, command: 'sleep 300'}
              - {id: c, command: 'touch c.ran', dependencies: [a]}
            """))
        p = self.start(wf, "-j", "4", stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                       text=True)
        self.assertTrue(wait_for(lambda: len(marked(self.mark)) >= 2, 30))
        p.send_signal(signal.SIGHUP)
        _, err = p.communicate(timeout=60)
        self.assertEqual(p.returncode, 129, err)
        self.assertIn("cancelled", err)
        self.assertFalse(os.path.exists(self.file("c.ran")))
        self.assert_none_survive()
        self.assert_tmpdir_removed()

    def test_tasks_get_the_default_sigpipe_back(self):
        # dagrun ignores SIGPIPE; its tasks must not inherit that: `yes`
        # dies of SIGPIPE quietly instead of failing with EPIPE.
        wf = self.write("""\
            name: taskpipe
            tasks:
              - id: t
                command: 'yes 2> yes.err | head -n 1 > head.out; grep SigIgn /proc/self/status > ign'
            """)
        r = self.run_wf(wf, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(self.file("head.out")) as f:
            self.assertEqual(f.read(), "y\n")
        with open(self.file("yes.err")) as f:
            self.assertEqual(f.read(), "")
        with open(self.file("ign")) as f:
            mask = int(f.read().split()[1], 16)
        self.assertEqual(mask & (1 << (signal.SIGPIPE - 1)), 0)

    # ---- tasks die with the engine -------------------------------------------

    SURVIVORS = """\
        tasks:
          - {id: t0, command: 'sleep 300'}
          - {id: t1, command: 'sleep 300'}
          - {id: t2, command: 'sleep 300'}
          - {id: t3, command: 'sleep 300'}
          - {id: t4, command: 'sleep 300'}
          - {id: t5, command: 'sleep 300'}
          - {id: t6, command: 'sleep 300'}
          - {id: t7, command: 'sleep 300'}
          - {id: t8, command: 'sleep 300'}
          - {id: t9, command: 'sleep 300'}
          - id: escapes
            command: 'setsid sleep 300 < /dev/null > /dev/null 2>&1 & sleep 300'
        """

    def start_survivors(self, **kw):
        wf = self.write("name: survive\n" + self.marker_env() + textwrap.dedent(self.SURVIVORS))
        p = self.start(wf, "-j", "20", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kw)
        # 10 sleeps, the escaping task's sleep and the one that left its
        # session: 12 sleeps.
        sleeps = lambda: [q for q in marked(self.mark) if proc_stat(q)[4] == "sleep"]
        self.assertTrue(wait_for(lambda: len(sleeps()) >= 12, 60), sleeps())
        escaped = [q for q in sleeps() if proc_stat(q)[3] == q and proc_stat(q)[1] != p.pid]
        self.assertEqual(len(escaped), 1, "the escaping sleep is in a session of its own")
        return p

    def test_sigkill_of_the_engine_kills_every_task(self):
        p = self.start_survivors()
        os.kill(p.pid, signal.SIGKILL)
        p.wait(timeout=30)
        self.assert_none_survive(timeout=30)

    def test_ctrl_c_then_sigkill_of_the_whole_group_kills_every_task(self):
        # dagrun leads its own process group, as a terminal's foreground
        # job does: Ctrl-C reaches the group, then it is SIGKILLed whole.
        # The watchdog is in a session of its own: it still does its job.
        p = self.start_survivors(start_new_session=True)
        wd = children_named(p.pid, "dagrun-watchdog")
        self.assertEqual(len(wd), 1)
        st = proc_stat(wd[0])
        self.assertEqual(st[3], wd[0], "the watchdog leads its own session")
        os.killpg(p.pid, signal.SIGINT)
        os.killpg(p.pid, signal.SIGKILL)
        p.wait(timeout=30)
        self.assert_none_survive(timeout=30)
        self.assertTrue(wait_for(lambda: not alive(wd[0]), 30), "the watchdog outlived its job")

    def test_normal_run_leaves_no_watchdog_behind(self):
        wf = self.write("name: normal\n" + self.marker_env() + textwrap.dedent("""\
            tasks:
              - {id: a, command: 'sleep 2'}
              - {id: b, command: 'setsid sleep 300 < /dev/null > /dev/null 2>&1 &'}
            """))
        p = self.start(wf, "-j", "4", stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                       text=True)
        wd = wait_for(lambda: children_named(p.pid, "dagrun-watchdog"), 30)
        self.assertTrue(wd, "a run with tasks has a watchdog")
        _, err = p.communicate(timeout=60)
        self.assertEqual(p.returncode, 0, err)
        # Reaped by dagrun before it exited: gone, not even a zombie.
        self.assertIsNone(proc_stat(wd[0]))
        self.assert_none_survive(timeout=5)
        self.assert_tmpdir_removed()

    def test_sigterm_stops_tasks_and_the_watchdog(self):
        p = self.start_survivors()
        wd = children_named(p.pid, "dagrun-watchdog")
        self.assertEqual(len(wd), 1)
        p.send_signal(signal.SIGTERM)
        self.assertEqual(p.wait(timeout=60), 143)
        self.assert_none_survive(timeout=5)
        self.assertIsNone(proc_stat(wd[0]))
        self.assert_tmpdir_removed()


if __name__ == "__main__":
    unittest.main(verbosity=2)
