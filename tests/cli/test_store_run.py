#!/usr/bin/env python3
"""End-to-end tests of the state store wired into `dagrun run`, `resume` and
`rerun`: where the state directory is, what a run records (and that no
secret reaches the disk), a run that cannot be recorded does not start
(read-only, missing, corrupt, foreign, newer state.db, a full disk), a store
failing mid-run stops the run, resume after SIGKILL and after Ctrl-C (kept
results seen downstream, leftovers killed, a live owner refused), rerun
(default selection, --only, --from, --definition current, --dry-run), the
history-fed order of --dry-run, and the default retention."""
import json
import os
import re
import signal
import sqlite3
import subprocess
import tempfile
import textwrap
import time
import unittest

DAGRUN = os.environ.get("DAGRUN", "build/src/cli/dagrun")


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def wait_for(pred, timeout=30.0):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if pred():
            return True
        time.sleep(0.02)
    return False


class Base(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="dagrun-store-")
        self.dir = self.tmp.name
        self.state = os.path.join(self.dir, "state")
        self.procs = []

    def tearDown(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        self.tmp.cleanup()

    def write(self, text, name="wf.yaml"):
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write(textwrap.dedent(text))
        return path

    def env(self, extra=None):
        e = dict(os.environ)
        e["NO_COLOR"] = "1"
        e.pop("DAGRUN_STATE", None)
        e.update(extra or {})
        return e

    def dagrun(self, *args, timeout=120, env=None, cwd=None, state=True):
        argv = [DAGRUN, *args]
        if state:
            argv += ["--state", self.state]
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                              env=self.env(env), cwd=cwd or self.dir)

    def spawn(self, *args, state=True):
        argv = [DAGRUN, *args] + (["--state", self.state] if state else [])
        p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, env=self.env(), cwd=self.dir)
        self.procs.append(p)
        return p

    def db(self, state=None):
        path = os.path.join(state or self.state, "state.db")
        return sqlite3.connect("file:%s?mode=ro" % path, uri=True)

    def runs(self):
        with self.db() as c:
            return c.execute("SELECT id, run_id, run_attempt, status FROM runs ORDER BY id").fetchall()

    def statuses(self, key):
        """{task id: status name} of run key, as recorded."""
        names = ["pending", "running", "completed", "failed", "retrying", "skipped",
                 "cancelled", "interrupted"]
        with self.db() as c:
            ids = c.execute("SELECT task_ids FROM run_defs WHERE run=?", (key,)).fetchone()[0]
            ids = ids.decode().split("\0")[:-1] if isinstance(ids, bytes) else ids.split("\0")[:-1]
            st = b"".join(r[0] for r in c.execute(
                "SELECT statuses FROM task_status WHERE run=? ORDER BY chunk", (key,)))
        return {t: names[st[i]] if i < len(st) else "pending" for i, t in enumerate(ids)}

    def marks(self, name):
        path = os.path.join(self.dir, name)
        if not os.path.exists(path):
            return []
        with open(path) as f:
            return f.read().split()


class RecordTest(Base):
    def test_state_dir_is_flag_then_env_then_dot_dagrun_and_no_state_records_nothing(self):
        wf = self.write("name: w\ntasks:\n  - {id: a, command: 'true'}\n")
        r = self.dagrun("run", wf, state=False)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(os.path.exists(os.path.join(self.dir, ".dagrun", "state.db")))
        envdir = os.path.join(self.dir, "from-env")
        r = self.dagrun("run", wf, state=False, env={"DAGRUN_STATE": envdir})
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(os.path.exists(os.path.join(envdir, "state.db")))
        flagdir = os.path.join(self.dir, "from-flag")
        r = self.dagrun("run", wf, "--state", flagdir, state=False,
                        env={"DAGRUN_STATE": envdir})
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(os.path.exists(os.path.join(flagdir, "state.db")))
        nodir = os.path.join(self.dir, "none")
        r = self.dagrun("run", wf, "--no-state", state=False, env={"DAGRUN_STATE": nodir})
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertFalse(os.path.exists(nodir))

    def test_a_run_records_its_tasks_attempts_processes_results_and_logs(self):
        wf = self.write("""\
            name: rec
            tasks:
              - id: a
                script: |
                  echo '{"n": 3}'; echo to-stderr >&2
              - id: b
                dependencies: [a]
                command: echo "n is {{ tasks.a.json.n }}"; exit 3
            """)
        r = self.dagrun("run", wf, "--durable")
        self.assertEqual(r.returncode, 1, r.stderr)
        (key, run_id, attempt, status), = self.runs()
        self.assertEqual((attempt, status), (1, 2))      # failed
        self.assertEqual(self.statuses(key), {"a": "completed", "b": "failed"})
        with self.db() as c:
            rows = c.execute("SELECT task, attempt, flags, pid, pgid, pid_start, exit_code, "
                             "out_logged, err_logged FROM attempts ORDER BY task").fetchall()
            res = c.execute("SELECT task, value FROM results").fetchall()
        self.assertEqual(len(rows), 2)
        for task, att, flags, pid, pgid, start, code, out, err in rows:
            self.assertGreater(pid, 1)
            self.assertEqual(pid, pgid)
            self.assertGreater(start, 0)
        self.assertEqual(rows[0][6], 0)
        self.assertEqual(rows[1][6], 3)
        self.assertEqual(rows[0][8], len("to-stderr\n"))
        # a's result is recorded (b reads it), with what b read.
        self.assertEqual(json.loads(dict(res)[0])["output"], '{"n": 3}\n')
        logs = os.path.join(self.state, "logs", "%s.1" % run_id)
        with open(os.path.join(logs, "1.1.out")) as f:
            self.assertEqual(f.read(), "n is 3\n")
        self.assertIn("run " + run_id, r.stderr)

    def test_no_secret_reaches_the_state_directory(self):
        secret = "s3cr3t-VALUE-4242"
        sf = os.path.join(self.dir, "secrets.env")
        with open(sf, "w") as f:
            f.write("TOKEN=%s\n" % secret)
        os.chmod(sf, 0o600)
        wf = self.write("""\
            name: secrets
            # the token is %s
            variables: {who: nobody}
            tasks:
              - id: leak
                command: echo "{{ secrets.TOKEN }}"; echo "{{ secrets.TOKEN }}" >&2; echo "x=%s" >> "$DAGRUN_OUTPUT"
              - id: read
                dependencies: [leak]
                command: echo "{{ tasks.leak.output }} {{ variables.who }}"; exit 1
            """ % (secret, secret))
        r = self.dagrun("run", wf, "--secrets-file", sf, "--var", "who=" + secret)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertNotIn(secret, r.stderr)
        found = []
        for root, _, files in os.walk(self.state):
            for name in files:
                with open(os.path.join(root, name), "rb") as f:
                    if secret.encode() in f.read():
                        found.append(name)
        self.assertEqual(found, [])
        with self.db() as c:
            vars_json, = c.execute("SELECT vars FROM run_defs").fetchone()
            definition, = c.execute("SELECT definition FROM run_defs").fetchone()
        self.assertEqual(json.loads(vars_json), {"who": "***"})
        self.assertIn(b"# the token is ***", definition)


class FaultTest(Base):
    WF = "name: f\ntasks:\n  - {id: a, command: 'touch ran'}\n"

    def assert_refused(self, r, path):
        self.assertEqual(r.returncode, 3, r.stdout + r.stderr)
        self.assertIn(path, r.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.dir, "ran")), "a task ran")

    def test_a_state_directory_that_cannot_be_created_refuses_the_run(self):
        blocker = os.path.join(self.dir, "file")
        open(blocker, "w").close()
        wf = self.write(self.WF)
        r = self.dagrun("run", wf, "--state", os.path.join(blocker, "st"), state=False)
        self.assert_refused(r, blocker)

    def test_a_read_only_state_directory_refuses_the_run(self):
        mnt = os.path.join(self.dir, "ro")
        os.mkdir(mnt)
        m = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", mnt],
                           capture_output=True, text=True)
        if m.returncode != 0:
            self.skipTest("cannot mount a read-only tmpfs (%s): not root?" % m.stderr.strip())
        try:
            wf = self.write(self.WF)
            r = self.dagrun("run", wf, "--state", mnt, state=False)
            self.assert_refused(r, mnt)
            self.assertIn("not writable", r.stderr)
        finally:
            subprocess.run(["umount", mnt])

    def test_a_corrupt_state_db_is_refused_and_left_untouched(self):
        os.mkdir(self.state)
        db = os.path.join(self.state, "state.db")
        junk = b"SQLite format 3\0" + os.urandom(8192)
        with open(db, "wb") as f:
            f.write(junk)
        r = self.dagrun("run", self.write(self.WF))
        self.assert_refused(r, db)
        with open(db, "rb") as f:
            self.assertEqual(f.read(), junk)

    def test_a_foreign_database_and_a_file_that_is_no_database_are_refused(self):
        os.mkdir(self.state)
        db = os.path.join(self.state, "state.db")
        with sqlite3.connect(db) as c:
            c.execute("CREATE TABLE invoices(id INTEGER)")
        r = self.dagrun("run", self.write(self.WF))
        self.assert_refused(r, db)
        self.assertIn("not a dagrun state database", r.stderr)
        with open(db, "w") as f:
            f.write("hello, not a database at all\n" * 100)
        r = self.dagrun("run", self.write(self.WF))
        self.assert_refused(r, db)

    def test_a_state_db_of_a_newer_dagrun_is_refused(self):
        r = self.dagrun("run", self.write("name: f\ntasks:\n  - {id: a, command: 'true'}\n"))
        self.assertEqual(r.returncode, 0, r.stderr)
        db = os.path.join(self.state, "state.db")
        with sqlite3.connect(db) as c:
            c.execute("PRAGMA user_version=999")
        r = self.dagrun("run", self.write(self.WF))
        self.assert_refused(r, db)
        self.assertIn("newer dagrun", r.stderr)

    def test_a_full_disk_mid_run_stops_the_tasks_and_exits_3(self):
        mnt = os.path.join(self.dir, "full")
        os.mkdir(mnt)
        m = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", mnt],
                           capture_output=True, text=True)
        if m.returncode != 0:
            self.skipTest("cannot mount a tmpfs (%s): not root?" % m.stderr.strip())
        try:
            wf = self.write("""\
                name: full
                tasks:
                  - id: spam
                    command: head -c 4000000 /dev/zero | tr '\\0' x
                  - id: after
                    dependencies: [spam]
                    command: touch after-ran
                  - id: slow
                    command: echo $$ > slow.pid; exec sleep 60
                """)
            t0 = time.monotonic()
            r = self.dagrun("run", wf, "--state", os.path.join(mnt, "st"), state=False,
                            timeout=60)
            self.assertEqual(r.returncode, 3, r.stderr)
            self.assertLess(time.monotonic() - t0, 30, "the tasks were not stopped")
            # Whichever write meets the full disk first says it: a log
            # file (ENOSPC) or SQLite (SQLITE_FULL).
            self.assertRegex(r.stderr, "No space left on device|database or disk is full")
            self.assertIn("cannot record the run", r.stderr)
            self.assertFalse(os.path.exists(os.path.join(self.dir, "after-ran")))
            if os.path.exists(os.path.join(self.dir, "slow.pid")):
                with open(os.path.join(self.dir, "slow.pid")) as f:
                    self.assertFalse(alive(int(f.read())))
        finally:
            subprocess.run(["umount", mnt])


class MidRunFaultTest(Base):
    """A store that fails during the run stops it: the database locked
    beyond the busy timeout (10 s), the run's lease taken over."""

    WF = """\
        name: mid
        tasks:
          - id: first
            command: sleep 1
          - id: second
            dependencies: [first]
            command: touch second-ran
          - id: long
            command: echo $$ > long.pid; exec sleep 120
        """

    def test_a_database_locked_beyond_the_busy_timeout_stops_the_run(self):
        wf = self.write(self.WF)
        p = self.spawn("run", wf)
        db = os.path.join(self.state, "state.db")
        self.assertTrue(wait_for(lambda: os.path.exists(os.path.join(self.dir, "long.pid"))))
        c = sqlite3.connect(db, timeout=30, isolation_level=None)
        try:
            c.execute("BEGIN EXCLUSIVE")
            _, err = p.communicate(timeout=90)
        finally:
            c.execute("ROLLBACK")
            c.close()
        self.assertEqual(p.returncode, 3, err)
        self.assertIn("cannot record the run", err)
        self.assertIn(db, err)
        self.assertFalse(os.path.exists(os.path.join(self.dir, "second-ran")))
        with open(os.path.join(self.dir, "long.pid")) as f:
            self.assertTrue(wait_for(lambda: not alive(int(f.read() or 0)), 10))

    def test_a_lease_taken_over_stops_the_run(self):
        wf = self.write(self.WF.replace("sleep 1", "sleep 30"))
        p = self.spawn("run", wf)
        self.assertTrue(wait_for(lambda: os.path.exists(os.path.join(self.dir, "long.pid"))))
        with sqlite3.connect(os.path.join(self.state, "state.db"), timeout=30) as c:
            c.execute("UPDATE runs SET owner_host='elsewhere', owner_pid=4242")
        _, err = p.communicate(timeout=90)   # within a heartbeat (10 s)
        self.assertEqual(p.returncode, 3, err)
        self.assertIn("taken over", err)
        self.assertFalse(os.path.exists(os.path.join(self.dir, "second-ran")))


class ResumeTest(Base):
    def chain(self, sleep="3"):
        return self.write("""\
            name: chain
            tasks:
              - id: a
                command: echo a >> a.marks; echo A-out
              - id: b
                dependencies: [a]
                command: echo $$ > b.pid; echo b >> b.marks; echo "got {{ tasks.a.output }}" > b.saw; sleep %s
              - id: c
                dependencies: [b]
                command: echo c >> c.marks
            """ % sleep)

    def kill_during_b(self, wf):
        p = self.spawn("run", wf)
        pidfile = os.path.join(self.dir, "b.pid")
        self.assertTrue(wait_for(lambda: os.path.exists(pidfile) and os.path.getsize(pidfile)))
        with open(pidfile) as f:
            bpid = int(f.read())
        # Killed once b's start is committed (a few ms later, under load more).
        def recorded():
            try:
                with self.db() as c:
                    return c.execute("SELECT count(*) FROM attempts WHERE task=1 AND pid=?",
                                     (bpid,)).fetchone()[0] == 1
            except sqlite3.Error:
                return False
        self.assertTrue(wait_for(recorded), "b's start was never recorded")
        return p, bpid

    def test_resume_after_sigkill_keeps_completed_tasks_and_reruns_the_interrupted(self):
        wf = self.chain()
        p, bpid = self.kill_during_b(wf)
        p.send_signal(signal.SIGKILL)
        p.wait()
        (key, run_id, _, _), = self.runs()
        r = self.dagrun("resume", "last", timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("resuming run " + run_id, r.stderr)
        self.assertEqual(self.marks("a.marks"), ["a"])          # never again
        self.assertEqual(self.marks("b.marks"), ["b", "b"])     # interrupted: again
        self.assertEqual(self.marks("c.marks"), ["c"])
        with open(os.path.join(self.dir, "b.saw")) as f:
            self.assertEqual(f.read(), "got A-out\n")           # a's kept result
        self.assertFalse(alive(bpid))
        self.assertEqual(self.statuses(key), {"a": "completed", "b": "completed",
                                              "c": "completed"})
        with self.db() as c:
            rows = c.execute("SELECT attempt, flags, error FROM attempts WHERE task=1 "
                             "ORDER BY attempt").fetchall()
        self.assertEqual([a for a, _, _ in rows], [1, 2])
        self.assertEqual(rows[0][1], 8)                          # interrupted
        self.assertIn("interrupted", rows[0][2])
        self.assertEqual([s for _, _, _, s in self.runs()], [1])  # completed
        r = self.dagrun("resume", run_id)
        self.assertEqual(r.returncode, 2)
        self.assertIn("already ended", r.stderr)

    def test_resume_kills_what_is_left_of_an_attempt_whose_watchdog_died_too(self):
        wf = self.chain(sleep="120")
        p, bpid = self.kill_during_b(wf)
        ps = subprocess.run(["ps", "-o", "pid=,comm=", "--ppid", str(p.pid)],
                            capture_output=True, text=True).stdout.split("\n")
        wd = [int(l.split()[0]) for l in ps if l.split()[1:] == ["dagrun-watchdog"]]
        self.assertEqual(len(wd), 1, ps)
        # dagrun is stopped first: it starts another watchdog when its own
        # dies, which would then sweep b once dagrun is killed.
        os.kill(p.pid, signal.SIGSTOP)
        for pid in wd + [p.pid]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        p.wait()
        time.sleep(0.3)
        self.assertTrue(alive(bpid), "the task should outlive its dagrun and watchdog here")
        # Let it finish quickly once resumed: the second attempt does not sleep long.
        with open(wf) as f:
            text = f.read()
        r = subprocess.Popen([DAGRUN, "resume", "last", "--state", self.state],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env=self.env(), cwd=self.dir)
        self.procs.append(r)
        self.assertTrue(wait_for(lambda: not alive(bpid), 30), "the leftover was not killed")
        self.assertTrue(wait_for(lambda: len(self.marks("b.marks")) == 2, 30))
        r.send_signal(signal.SIGINT)
        _, err = r.communicate(timeout=60)
        self.assertIn("leftover", err)
        self.assertNotIn("0 leftover", err)
        del text

    def test_resume_waits_for_the_dead_runs_watchdog_before_starting_anything(self):
        # The watchdog of a SIGKILLed dagrun sweeps every process carrying
        # the run's id, which a resumed run's tasks carry too: resume must
        # not start one before that watchdog is gone. Here it is held
        # stopped (SIGSTOP) across the kill.
        wf = self.chain(sleep="1")
        p, bpid = self.kill_during_b(wf)
        ps = subprocess.run(["ps", "-o", "pid=,comm=", "--ppid", str(p.pid)],
                            capture_output=True, text=True).stdout.split("\n")
        wd = [int(l.split()[0]) for l in ps if l.split()[1:] == ["dagrun-watchdog"]]
        self.assertEqual(len(wd), 1, ps)
        os.kill(wd[0], signal.SIGSTOP)
        try:
            p.send_signal(signal.SIGKILL)
            p.wait()
            r = subprocess.Popen([DAGRUN, "resume", "last", "--state", self.state],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                 env=self.env(), cwd=self.dir)
            self.procs.append(r)
            time.sleep(2)
            self.assertIsNone(r.poll())
            self.assertEqual(self.marks("b.marks"), ["b"], "resume started a task while "
                             "the dead run's watchdog was still there")
        finally:
            os.kill(wd[0], signal.SIGCONT)
        _, err = r.communicate(timeout=60)
        self.assertEqual(r.returncode, 0, err)
        self.assertEqual(self.marks("b.marks"), ["b", "b"])
        self.assertEqual(self.marks("c.marks"), ["c"])
        self.assertFalse(alive(bpid))

    def test_resume_refuses_a_run_whose_dagrun_lives(self):
        wf = self.chain(sleep="30")
        p, _ = self.kill_during_b(wf)
        r = self.dagrun("resume", "last")
        self.assertEqual(r.returncode, 3, r.stderr)
        self.assertIn("pid %d" % p.pid, r.stderr)
        p.send_signal(signal.SIGINT)
        p.communicate(timeout=60)

    def test_resume_after_ctrl_c_runs_the_cancelled_and_pending_tasks(self):
        wf = self.chain(sleep="30")
        p, _ = self.kill_during_b(wf)
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=60)
        self.assertEqual(p.returncode, 130, err)
        (key, _, _, _), = self.runs()
        self.assertEqual(self.statuses(key)["b"], "cancelled")
        # The second attempt is quick.
        with open(wf) as f:
            text = f.read()
        with open(wf, "w") as f:
            f.write(text.replace("sleep 30", "sleep 0"))   # not read: the snapshot is
        r = subprocess.Popen([DAGRUN, "resume", "last", "--state", self.state],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env=self.env(), cwd=self.dir)
        self.procs.append(r)
        self.assertTrue(wait_for(lambda: len(self.marks("b.marks")) == 2, 30))
        time.sleep(0.5)
        self.assertEqual(self.marks("c.marks"), [])      # the recorded sleep 30 runs
        r.send_signal(signal.SIGINT)
        r.communicate(timeout=60)
        self.assertEqual(self.marks("a.marks"), ["a"])

    def test_resume_of_an_unknown_run_says_so(self):
        self.dagrun("run", self.write("name: x\ntasks:\n  - {id: a, command: 'true'}\n"))
        r = self.dagrun("resume", "nosuchrun")
        self.assertEqual(r.returncode, 2)
        self.assertIn("nosuchrun", r.stderr)


class RerunTest(Base):
    def flaky(self):
        return self.write("""\
            name: flaky
            tasks:
              - id: ok
                command: echo ok >> ok.marks; echo OK-RESULT
              - id: bad
                dependencies: [ok]
                command: echo bad >> bad.marks; test -e fixed
              - id: after
                dependencies: [bad]
                command: echo "after {{ tasks.ok.output }}" >> after.marks
              - id: side
                command: echo side >> side.marks
            onFailure:
              - {id: alert, command: echo alert >> alert.marks}
            """)

    def test_rerun_runs_the_failed_and_their_downstream_and_keeps_the_rest(self):
        wf = self.flaky()
        r = self.dagrun("run", wf)
        self.assertEqual(r.returncode, 1, r.stderr)
        (key, run_id, _, _), = self.runs()
        d = self.dagrun("rerun", run_id[:12], "--dry-run")
        self.assertEqual(d.returncode, 0, d.stderr)
        self.assertRegex(d.stdout, r"would run again: 3 tasks\n  bad +failed\n"
                                   r"  after +dependency failed\n  alert +a hook")
        self.assertRegex(d.stdout, r"would keep .*: 2 tasks\n(  \S+ +completed\n){2}")
        self.assertEqual(len(self.runs()), 1)            # a dry run records nothing
        open(os.path.join(self.dir, "fixed"), "w").close()
        r = self.dagrun("rerun", "last")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.marks("ok.marks"), ["ok"])
        self.assertEqual(self.marks("side.marks"), ["side"])
        self.assertEqual(self.marks("bad.marks"), ["bad", "bad"])
        self.assertEqual(self.marks("after.marks"), ["after", "OK-RESULT"])
        runs = self.runs()
        self.assertEqual([(rid, a, s) for _, rid, a, s in runs], [(run_id, 1, 2), (run_id, 2, 1)])
        self.assertEqual(self.statuses(runs[1][0]),
                         {"ok": "completed", "bad": "completed", "after": "completed",
                          "side": "completed", "alert": "pending"})

    def test_rerun_only_and_from_select_what_runs(self):
        wf = self.flaky()
        open(os.path.join(self.dir, "fixed"), "w").close()
        r = self.dagrun("run", wf)
        self.assertEqual(r.returncode, 0, r.stderr)
        r = self.dagrun("rerun", "last", "--only", "ok")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.marks("ok.marks"), ["ok", "ok"])
        self.assertEqual(self.marks("bad.marks"), ["bad"])
        r = self.dagrun("rerun", "last", "--only", "ok", "--downstream")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(len(self.marks("bad.marks")), 2)
        self.assertEqual(len(self.marks("side.marks")), 1)
        r = self.dagrun("rerun", "last", "--from", "bad")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(len(self.marks("ok.marks")), 3)
        self.assertEqual(len(self.marks("bad.marks")), 3)
        self.assertEqual(len(self.marks("side.marks")), 1)
        self.assertEqual([a for _, _, a, _ in self.runs()], [1, 2, 3, 4])
        r = self.dagrun("rerun", "last", "--only", "nope")
        self.assertEqual(r.returncode, 2)
        self.assertIn("nope", r.stderr)

    def test_rerun_with_the_current_definition_lists_and_runs_what_changed(self):
        wf = self.flaky()
        open(os.path.join(self.dir, "fixed"), "w").close()
        self.assertEqual(self.dagrun("run", wf).returncode, 0)
        with open(wf) as f:
            text = f.read()
        text = text.replace("echo side >> side.marks", "echo side2 >> side.marks")
        text = text.replace("onFailure:", "  - {id: new, command: echo new >> new.marks}\n"
                                          "onFailure:")
        with open(wf, "w") as f:
            f.write(text)
        d = self.dagrun("rerun", "last", "--definition", "current", "--dry-run")
        self.assertEqual(d.returncode, 0, d.stderr)
        self.assertIn("added (1): new", d.stdout)
        self.assertIn("changed (1): side", d.stdout)
        self.assertIn("removed (0):", d.stdout)
        r = self.dagrun("rerun", "last", "--definition", "current")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.marks("side.marks"), ["side", "side2"])
        self.assertEqual(self.marks("new.marks"), ["new"])
        self.assertEqual(self.marks("ok.marks"), ["ok"])


class HistoryTest(Base):
    def test_dry_run_orders_by_measured_durations_once_there_is_history(self):
        wf = self.write("""\
            name: hist
            tasks:
              - id: quick1
                command: sleep 0.01
              - id: quick2
                dependencies: [quick1]
                command: sleep 0.01
              - id: long
                command: sleep 1
            """)
        d = self.dagrun("run", wf, "--dry-run")
        self.assertEqual(d.returncode, 0, d.stderr)
        self.assertEqual(d.stdout.split(), ["quick1", "quick2", "long"])   # by count
        self.assertEqual(self.dagrun("run", wf).returncode, 0)
        d = self.dagrun("run", wf, "--dry-run")
        self.assertEqual(d.stdout.split(), ["long", "quick1", "quick2"])   # by time
        d = self.dagrun("run", wf, "--dry-run", "--no-state")
        self.assertEqual(d.stdout.split(), ["quick1", "quick2", "long"])


class RetentionTest(Base):
    def test_runs_older_than_90_days_are_pruned_when_a_run_starts(self):
        wf = self.write("name: keep\ntasks:\n  - {id: a, command: 'true'}\n")
        self.assertEqual(self.dagrun("run", wf).returncode, 0)
        self.assertEqual(self.dagrun("run", wf).returncode, 0)
        day = 24 * 3600 * 1000
        now = int(time.time() * 1000)
        with sqlite3.connect(os.path.join(self.state, "state.db")) as c:
            c.execute("UPDATE runs SET start_ms=?, end_ms=? WHERE id=1",
                      (now - 91 * day, now - 91 * day + 5))
            c.execute("UPDATE runs SET start_ms=?, end_ms=? WHERE id=2",
                      (now - 89 * day, now - 89 * day + 5))
        self.assertEqual(self.dagrun("run", wf).returncode, 0)
        self.assertEqual([k for k, _, _, _ in self.runs()], [2, 3])


if __name__ == "__main__":
    unittest.main(verbosity=2)
