#!/usr/bin/env python3
"""The chaos test of the state store: a run of more than 1,000 tasks (fan-in
and fan-out; each task appends `start ID` and `end ID` to one log file with
O_APPEND and takes a few ms) is killed with SIGKILL at 20 or more random
moments, each time followed by `dagrun resume`, until it completes. Then:
the store has every task completed by exactly one attempt; no task recorded
as completed ever started again; no task started before all its blocking
dependencies had ended; no process of the run is alive; and at every kill,
the store showed the write-ahead rule (a task recorded completed has its
dependencies recorded completed). Prints its counts.
CHAOS_SEED picks the random moments (default: random, printed)."""
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common"))
from harness import marked  # noqa: E402

DAGRUN = os.environ.get("DAGRUN", "build/src/cli/dagrun")
LAYERS, WIDTH = 26, 40          # 1,040 tasks, plus the joins
MIN_KILLS = 20                  # the floor
KILLS = 50                      # aimed at
JOBS = 3


def workflow(rng, log):
    """Layers of WIDTH tasks, each depending on 1 to 3 tasks of the layer
    before (fan-in), every 5th layer behind a join of the whole layer
    before (a fan-in of WIDTH) that the whole layer depends on (a fan-out of
    WIDTH)."""
    deps, lines = {}, ["name: chaos", "tasks:"]
    for layer in range(LAYERS):
        prev = ["t%d_%d" % (layer - 1, i) for i in range(WIDTH)] if layer else []
        join = None
        if layer and layer % 5 == 0:
            join = "join%d" % layer
            deps[join] = prev
        for i in range(WIDTH):
            t = "t%d_%d" % (layer, i)
            if join:
                deps[t] = [join]
            elif prev:
                deps[t] = sorted(set(rng.sample(prev, rng.randint(1, 3))))
            else:
                deps[t] = []
    for t, ds in deps.items():
        ms = random.Random(t).randint(5, 15)
        cmd = ('echo "start %s" >> %s; sleep 0.%03d; echo "end %s" >> %s'
               % (t, log, ms, t, log))
        lines.append("  - id: %s" % t)
        lines.append("    command: '%s'" % cmd)
        if ds:
            lines.append("    dependencies: [%s]" % ", ".join(ds))
    return "\n".join(lines) + "\n", deps


class ChaosTest(unittest.TestCase):
    def test_sigkill_at_random_moments_then_resume_until_complete(self):
        seed = int(os.environ.get("CHAOS_SEED", random.randrange(1 << 30)))
        rng = random.Random(seed)
        print("chaos seed %d" % seed, file=sys.stderr)
        with tempfile.TemporaryDirectory(prefix="dagrun-chaos-") as d:
            self.chaos(d, rng)

    def db(self, state):
        return sqlite3.connect("file:%s/state.db?mode=ro" % state, uri=True, timeout=30)

    def completed(self, state, key):
        """Task indexes recorded completed in run key."""
        with self.db(state) as c:
            st = b"".join(r[0] for r in c.execute(
                "SELECT statuses FROM task_status WHERE run=? ORDER BY chunk", (key,)))
        return {i for i, s in enumerate(st) if s == 2}

    def log_lines(self, log):
        try:
            with open(log) as f:
                return f.read().splitlines()
        except FileNotFoundError:
            return []

    def chaos(self, d, rng):
        log = os.path.join(d, "log")
        state = os.path.join(d, "state")
        text, deps = workflow(rng, log)
        wf = os.path.join(d, "wf.yaml")
        with open(wf, "w") as f:
            f.write(text)
        env = dict(os.environ, NO_COLOR="1")
        env.pop("DAGRUN_STATE", None)
        t0 = time.monotonic()
        kills, starts, key, run_id = 0, 0, None, None
        done_at = []           # (log position, completed set) at each kill
        while True:
            argv = ([DAGRUN, "run", wf] if key is None else [DAGRUN, "resume", run_id])
            argv += ["--state", state, "-q", "--no-progress", "-j", str(JOBS)]
            p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                 env=env, cwd=d)
            starts += 1
            # The first run is let go long enough to record itself.
            wait = 1.0 if key is None else rng.uniform(0.02, 0.15)
            if kills >= KILLS:
                wait = 600
            try:
                _, err = p.communicate(timeout=wait)
                err = err.decode(errors="replace")
                self.assertEqual(p.returncode, 0, err)
                break
            except subprocess.TimeoutExpired:
                p.send_signal(signal.SIGKILL)
                p.communicate()
                kills += 1
            if key is None:
                with self.db(state) as c:
                    rows = c.execute("SELECT id, run_id FROM runs").fetchall()
                self.assertEqual(len(rows), 1, "the first run did not record itself")
                key, run_id = rows[0]
            done_at.append((len(self.log_lines(log)), self.completed(state, key)))
            self.assertLess(time.monotonic() - t0, 600, "the chaos loop takes too long")
        elapsed = time.monotonic() - t0
        self.assertGreaterEqual(kills, MIN_KILLS, "the run completed before %d kills: "
                                "make it longer" % MIN_KILLS)
        lines = self.log_lines(log)
        with self.db(state) as c:
            ids = c.execute("SELECT task_ids FROM run_defs WHERE run=?", (key,)).fetchone()[0]
            ids = (ids.decode() if isinstance(ids, bytes) else ids).split("\0")[:-1]
            ok = dict(c.execute("SELECT task, count(*) FROM attempts WHERE run=? AND "
                                "flags & 1 GROUP BY task", (key,)).fetchall())
            interrupted, = c.execute("SELECT count(*) FROM attempts WHERE run=? AND "
                                     "flags & 8", (key,)).fetchone()
            attempts, = c.execute("SELECT count(*) FROM attempts WHERE run=?",
                                  (key,)).fetchone()
            status, = c.execute("SELECT status FROM runs WHERE id=?", (key,)).fetchone()
        n = len(deps)
        self.assertEqual(len(ids), n)
        self.assertEqual(status, 1, "the run is not recorded completed")
        # Every task completed, by exactly one attempt.
        self.assertEqual(self.completed(state, key), set(range(n)))
        self.assertEqual(sorted(ok), list(range(n)))
        self.assertEqual(set(ok.values()), {1})
        # The write-ahead rule, as the store shows it at every kill: a task
        # recorded completed has its dependencies recorded completed.
        index = {t: i for i, t in enumerate(ids)}
        for _, done in done_at:
            for t in done:
                missing = [x for x in deps[ids[t]] if index[x] not in done]
                self.assertEqual(missing, [], "%s was recorded completed before its "
                                 "dependencies %s were" % (ids[t], missing))
        # No task recorded completed at a kill started again after it.
        for pos, done in done_at:
            for line in lines[pos:]:
                kind, t = line.split()
                self.assertFalse(kind == "start" and index[t] in done,
                                 "%s was recorded completed, then started again" % t)
        # No start before every blocking dependency had ended, for good: a
        # dependency's last end (the attempt that completed it) comes before
        # every start of its dependents. (Were a dependent started before its
        # dependency's completion was durable, a kill would run the
        # dependency again, after that start.)
        last_end = {}
        for pos, line in enumerate(lines):
            kind, t = line.split()
            if kind == "end":
                last_end[t] = pos
        for pos, line in enumerate(lines):
            kind, t = line.split()
            if kind == "start":
                late = [x for x in deps[t] if last_end.get(x, len(lines)) > pos]
                self.assertEqual(late, [], "%s started (log line %d) before %s ended for "
                                 "good" % (t, pos + 1, late))
        # Nothing of the run is alive.
        self.assertEqual(marked("DAGRUN_RUN_ID=" + run_id), [])
        before = len(lines)
        time.sleep(0.5)
        self.assertEqual(len(self.log_lines(log)), before, "something still writes the log")
        started = sum(1 for l in lines if l.startswith("start"))
        print("chaos: %d tasks, %d kills (SIGKILL), %d dagrun processes, %d attempts "
              "recorded, %d interrupted attempts run again, %d task starts in the log "
              "(%d more than tasks), %.1f s" % (n, kills, starts, attempts, interrupted,
                                                started, started - n, elapsed),
              file=sys.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
