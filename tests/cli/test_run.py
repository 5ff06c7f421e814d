#!/usr/bin/env python3
"""End-to-end tests of `dagrun run` with real processes.

Each test writes a workflow into a temporary directory, runs the CLI and
checks what the processes did (they append timestamped lines to a log),
the exit status and the output. Margins are generous: these must hold on a
loaded 2-core machine; speed is measured in bench/, never asserted here.
"""
import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common"))
import harness  # noqa: E402
from harness import DAGRUN, alive, read  # noqa: E402


class RunTest(harness.TempDirTest):
    prefix = "dagrun-test-"

    def setUp(self):
        super().setUp()
        self.log = os.path.join(self.dir, "log")

    def run_wf(self, path, *args, timeout=120, env=None):
        return harness.dagrun("run", path, *args, timeout=timeout, env_extra=env)

    def events(self):
        """(kind, task, time_ns) from the shared log, in file order."""
        out = []
        with open(self.log) as f:
            for line in f:
                kind, task, ns = line.split()
                out.append((kind, task, int(ns)))
        return out

    def stamp(self, kind):
        return 'echo "%s $DAGRUN_TASK_ID $(date +%%s%%N)" >> %s' % (kind, self.log)

    # ---- order and concurrency --------------------------------------------

    def test_random_dags_respect_every_edge_and_the_limit(self):
        for seed in range(3):
            rng = random.Random(seed)
            n, jobs = 40, rng.choice([2, 3, 5])
            deps = {}
            lines = ["name: rnd%d" % seed, "maxParallel: %d" % jobs, "tasks:"]
            for i in range(n):
                ds = sorted(set(rng.randrange(i) for _ in range(rng.randrange(3)))) if i else []
                deps["t%d" % i] = ["t%d" % d for d in ds]
                cmd = "%s; sleep 0.0%d; %s" % (self.stamp("S"), rng.randrange(1, 6), self.stamp("E"))
                lines.append("  - id: t%d" % i)
                lines.append("    command: %s" % json.dumps(cmd))
                if ds:
                    lines.append("    dependencies: [%s]" % ", ".join(deps["t%d" % i]))
            if os.path.exists(self.log):
                os.unlink(self.log)
            r = self.run_wf(self.write("\n".join(lines) + "\n"))
            self.assertEqual(r.returncode, 0, r.stderr)
            ev = self.events()
            start = {t: ns for k, t, ns in ev if k == "S"}
            end = {t: ns for k, t, ns in ev if k == "E"}
            self.assertEqual(len(start), n)
            for t, ds in deps.items():
                for d in ds:
                    self.assertLessEqual(end[d], start[t], "%s started before %s ended" % (t, d))
            # The log lines are in the order they happened (O_APPEND).
            running = peak = 0
            for k, _, _ in ev:
                running += 1 if k == "S" else -1
                peak = max(peak, running)
            self.assertLessEqual(peak, jobs)
            self.assertGreaterEqual(peak, 2)

    def test_jobs_flag_overrides_max_parallel(self):
        lines = ["name: wide", "maxParallel: 8", "tasks:"]
        for i in range(12):
            lines += ["  - id: t%d" % i,
                      "    command: %s" % json.dumps("%s; sleep 0.05; %s" % (self.stamp("S"), self.stamp("E")))]
        r = self.run_wf(self.write("\n".join(lines) + "\n"), "-j", "1")
        self.assertEqual(r.returncode, 0, r.stderr)
        running = peak = 0
        for k, _, _ in self.events():
            running += 1 if k == "S" else -1
            peak = max(peak, running)
        self.assertEqual(peak, 1)

    # ---- retries ----------------------------------------------------------

    def test_retries_make_the_right_attempts_with_delays_in_range(self):
        wf = self.write("""\
            name: retry
            tasks:
              - id: flaky
                command: %s; test "$DAGRUN_ATTEMPT" -ge 3
                retry: {maxAttempts: 5, initialDelay: 300ms, backoffFactor: 2, jitter: none}
            """ % self.stamp("S"))
        r = self.run_wf(wf)
        self.assertEqual(r.returncode, 0, r.stderr)
        starts = [ns for k, _, ns in self.events() if k == "S"]
        self.assertEqual(len(starts), 3)
        gap1 = (starts[1] - starts[0]) / 1e6
        gap2 = (starts[2] - starts[1]) / 1e6
        self.assertGreaterEqual(gap1, 300)
        self.assertGreaterEqual(gap2, 600)
        self.assertLess(gap1, 5000)
        self.assertLess(gap2, 5000)

    def test_failing_task_stops_after_max_attempts_and_exit_is_1(self):
        wf = self.write("""\
            name: fail
            tasks:
              - id: bad
                command: %s; echo "boom detail" >&2; exit 4
                retry: {maxAttempts: 3, initialDelay: 10ms}
              - id: never
                command: %s
                dependencies: [bad]
            """ % (self.stamp("S"), self.stamp("N")))
        r = self.run_wf(wf)
        self.assertEqual(r.returncode, 1)
        ev = self.events()
        self.assertEqual(sum(1 for k, _, _ in ev if k == "S"), 3)
        self.assertFalse(any(k == "N" for k, _, _ in ev))
        self.assertIn("bad", r.stderr)
        self.assertIn("transient", r.stderr)
        self.assertIn("boom detail", r.stderr)   # the stderr tail in the summary
        self.assertIn("dependency", r.stderr)

    def test_permanent_exit_codes_are_not_retried(self):
        for code, extra in ((3, "permanentExitCodes: [3]"), (127, ""), (126, "")):
            if os.path.exists(self.log):
                os.unlink(self.log)
            wf = self.write("""\
                name: perm
                tasks:
                  - id: p
                    command: %s; exit %d
                    retry: {maxAttempts: 4, initialDelay: 10ms%s}
                """ % (self.stamp("S"), code, (", " + extra) if extra else ""))
            r = self.run_wf(wf)
            self.assertEqual(r.returncode, 1)
            self.assertEqual(sum(1 for k, _, _ in self.events() if k == "S"), 1, code)
            self.assertIn("permanent", r.stderr)

    # ---- timeouts, signals, orphans --------------------------------------------

    def test_timeout_kills_a_grandchild_that_ignores_sigterm(self):
        pidfile = os.path.join(self.dir, "gc.pid")
        wf = self.write("""\
            name: timeout
            tasks:
              - id: slow
                timeout: 500ms
                killGrace: 300ms
                script: |
                  sh -c 'trap "" TERM; echo $$ > %s; exec sleep 1000' &
                  sleep 1000
            """ % pidfile)
        t0 = time.monotonic()
        r = self.run_wf(wf)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertLess(time.monotonic() - t0, 30)
        self.assertIn("timed out", r.stderr)
        pid = int(read(pidfile))
        for _ in range(50):
            if not alive(pid):
                break
            time.sleep(0.1)
        self.assertFalse(alive(pid), "the grandchild survived the timeout")

    def interrupt(self, sig, expect):
        pids = os.path.join(self.dir, "pids")
        wf = self.write("""\
            name: interrupt
            tasks:
              - id: a
                script: |
                  echo $$ >> %(p)s
                  sh -c 'trap "" TERM; echo $$ >> %(p)s; exec sleep 1000' &
                  setsid sh -c 'echo $$ >> %(p)s; exec sleep 1000' &
                  sleep 1000
              - id: b
                command: sh -c 'echo $$ >> %(p)s; exec sleep 1000'
              - id: later
                dependencies: [a]
                command: "true"
            """ % {"p": pids})
        e = dict(os.environ, NO_COLOR="1")
        p = subprocess.Popen([DAGRUN, "run", wf, "--log-format", "json"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=e)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if os.path.exists(pids) and len(read(pids).split()) >= 4:
                break
            time.sleep(0.05)
        time.sleep(0.2)
        p.send_signal(sig)
        try:
            out, err = p.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
            self.fail("dagrun did not stop after the signal")
        self.assertEqual(p.returncode, expect, err)
        events = [json.loads(l) for l in err.splitlines() if l.startswith("{")]
        cancelled = {e["task"] for e in events if e.get("event") == "task.status"
                     and e.get("status") == "cancelled"}
        self.assertEqual(cancelled, {"a", "b"})
        for pid in map(int, read(pids).split()):
            for _ in range(50):
                if not alive(pid):
                    break
                time.sleep(0.1)
            self.assertFalse(alive(pid), "process %d survived dagrun" % pid)

    def test_sigint_stops_every_task_and_leaves_no_process(self):
        self.interrupt(signal.SIGINT, 130)

    def test_sigterm_stops_every_task_and_exits_143(self):
        self.interrupt(signal.SIGTERM, 143)

    # ---- output -----------------------------------------------------------------

    def test_output_flood_neither_blocks_nor_exhausts_memory(self):
        wf = self.write("""\
            name: flood
            tasks:
              - id: flood
                command: head -c 100000000 /dev/zero
              - id: err
                command: sh -c 'head -c 50000000 /dev/zero >&2'
            """)
        r = subprocess.run(["/usr/bin/env", "python3", "-c", textwrap.dedent("""\
            import resource, subprocess, sys
            r = subprocess.run(sys.argv[1:], capture_output=True)
            print(r.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
            """), DAGRUN, "run", wf], capture_output=True, text=True, timeout=120)
        code, rss_kb = map(int, r.stdout.split())
        self.assertEqual(code, 0, r.stderr)
        self.assertLess(rss_kb, 64 * 1024, "dagrun kept the flood in memory")

    def test_task_that_closes_stdout_early_is_still_waited_for(self):
        marker = os.path.join(self.dir, "marker")
        wf = self.write("""\
            name: close
            tasks:
              - id: c
                script: |
                  exec >&- 2>&-
                  sleep 1
                  touch %s
              - id: after
                dependencies: [c]
                command: test -e %s
            """ % (marker, marker))
        r = self.run_wf(wf)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(os.path.exists(marker))

    def test_environment_workdir_and_dagrun_variables(self):
        sub = os.path.join(self.dir, "sub")
        os.mkdir(sub)
        out = os.path.join(self.dir, "env.out")
        wf = self.write("""\
            name: envs
            env: {WF_VAR: from-workflow, SHARED: workflow}
            tasks:
              - id: show
                workdir: %s
                env: {TASK_VAR: from-task, SHARED: task}
                script: |
                  {
                    echo "wf=$WF_VAR task=$TASK_VAR shared=$SHARED"
                    echo "id=$DAGRUN_TASK_ID attempt=$DAGRUN_ATTEMPT run=${DAGRUN_RUN_ID:+set} out=${DAGRUN_OUTPUT:+set}"
                    echo "pwd=$(pwd)"
                    read x && echo "stdin=$x" || echo "stdin=eof"
                  } > %s
            """ % (sub, out))
        r = self.run_wf(wf)
        self.assertEqual(r.returncode, 0, r.stderr)
        text = read(out)
        self.assertIn("wf=from-workflow task=from-task shared=task", text)
        self.assertIn("id=show attempt=1 run=set out=set", text)
        self.assertIn("pwd=%s" % sub, text)
        self.assertIn("stdin=eof", text)

    # ---- the command line -----------------------------------------------------

    def test_dry_run_prints_start_order_and_runs_nothing(self):
        wf = self.write("""\
            name: dry
            tasks:
              - {id: a, command: "%s"}
              - {id: b, command: "%s", dependencies: [a]}
              - {id: c, command: "%s", priority: 3}
            """ % ((self.stamp("S").replace('"', '\\"'),) * 3))
        r = self.run_wf(wf, "--dry-run")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.split(), ["c", "a", "b"])
        self.assertFalse(os.path.exists(self.log))

    def test_dry_run_plans_without_history_when_the_store_cannot_be_read(self):
        # A dry run opens the state store read-only for history; one it
        # cannot read (here not a database at all) costs it the history,
        # said in a comment line, not the plan; the file is left untouched.
        wf = self.write("""\
            name: dryhist
            tasks:
              - {id: a, command: "true"}
              - {id: b, command: "true", dependencies: [a]}
            """)
        state = os.path.join(os.path.dirname(wf), "foreign-state")
        os.makedirs(state, exist_ok=True)
        db = os.path.join(state, "state.db")
        with open(db, "wb") as f:
            f.write(b"not a database" * 100)
        r = self.run_wf(wf, "--dry-run", "--state", state)
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = r.stdout.splitlines()
        self.assertTrue(lines[0].startswith("# history not used"), r.stdout)
        self.assertEqual(lines[1:], ["a", "b"])
        with open(db, "rb") as f:
            self.assertEqual(f.read(), b"not a database" * 100)

    def test_json_log_has_one_object_per_event_with_the_fields(self):
        wf = self.write("""\
            name: json
            tasks:
              - {id: a, command: "echo hi"}
              - {id: b, command: "false", dependencies: [a]}
            """)
        r = self.run_wf(wf, "--log-format", "json")
        self.assertEqual(r.returncode, 1)
        events = [json.loads(l) for l in r.stderr.splitlines()]
        kinds = [e["event"] for e in events]
        self.assertEqual(kinds[0], "run.start")
        self.assertEqual(kinds[-1], "run.end")
        for e in events:
            for k in ("ts", "level", "event", "run"):
                self.assertIn(k, e)
            self.assertRegex(e["ts"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
        ends = [e for e in events if e["event"] == "attempt.end"]
        self.assertEqual([e["task"] for e in ends], ["a", "b"])
        for k in ("exitCode", "durationMs", "cpuUserMs", "cpuSysMs", "maxRssKb", "attempt"):
            self.assertIn(k, ends[0])
        self.assertEqual(ends[1]["exitCode"], 1)
        self.assertEqual(ends[1]["errorClass"], "transient")
        # --log-level error keeps only errors
        r = self.run_wf(wf, "--log-format", "json", "--log-level", "error")
        levels = {json.loads(l)["level"] for l in r.stderr.splitlines()}
        self.assertEqual(levels, {"error"})

    def test_invalid_workflow_exits_2_and_runs_nothing(self):
        wf = self.write("""\
            name: bad
            tasks:
              - {id: a, command: "%s", dependencies: [nope]}
            """ % self.stamp("S").replace('"', '\\"'))
        r = self.run_wf(wf)
        self.assertEqual(r.returncode, 2)
        self.assertIn("wf.yaml:3:", r.stderr)
        self.assertFalse(os.path.exists(self.log))

    def test_quickstart_runs(self):
        src = os.environ.get("SRCDIR", ".")
        r = self.run_wf(os.path.join(src, "examples", "quickstart.yaml"))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("flaky", r.stderr)
        self.assertIn("retrying", r.stderr)
        self.assertIn("6 completed", r.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
