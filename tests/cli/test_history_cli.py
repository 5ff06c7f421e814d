#!/usr/bin/env python3
"""End-to-end tests of the history commands: `dagrun runs`, `show`, `logs`
and `prune`, against state directories recorded through the store's API by
tests/store/mkstate (`dagrun run` does not record yet).

`mkstate DIR basic` records, in this order: three runs of `archive` started
40, 35 and 10 days ago; `build` completed (3m04s; attempts started in an
order other than the tasks' indexes); `build` failed (1.2s; `test` failed 3
attempts with output on both streams and escape sequences; `package`
skipped); `deploy` cancelled; a run whose workflow name and task ids carry
escape sequences and invalid UTF-8, and whose `big` task wrote past the
4096-byte log cap; and, last, `deploy` interrupted (its process exited
without ending it). `mkstate DIR live` holds a run while it lives and
records what it is told on stdin.

Margins are generous (a loaded 2-core machine); speed is measured in
bench/README.md, never asserted here.
"""
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import unittest

DAGRUN = os.path.abspath(os.environ.get("DAGRUN", "build/src/cli/dagrun"))
BUILDDIR = os.path.abspath(os.environ.get("BUILDDIR", "build"))
MKSTATE = os.path.join(BUILDDIR, "tests", "store", "mkstate")
TIMEOUT = 60

ESC = "\x1b"


def mkstate(state, *args):
    r = subprocess.run([MKSTATE, state, *args], capture_output=True, text=True,
                       timeout=TIMEOUT)
    if r.returncode != 0:
        raise AssertionError("mkstate failed: %s" % r.stderr)
    return r.stdout


def basic(state):
    return json.loads(mkstate(state, "basic"))


class Result:
    """A finished command: returncode, and stdout/stderr decoded (raw bytes
    that are not UTF-8 kept as surrogates, so a test can find them)."""

    def __init__(self, p):
        self.returncode = p.returncode
        self.stdout = p.stdout.decode("utf-8", "surrogateescape")
        self.stderr = p.stderr.decode("utf-8", "surrogateescape")


def dagrun(*args, state=None, env=None, cwd=None, timeout=TIMEOUT):
    e = dict(os.environ)
    e.pop("DAGRUN_STATE", None)
    e["NO_COLOR"] = "1"
    e["TZ"] = "UTC"
    e.update(env or {})
    cmd = [DAGRUN, *args]
    if state is not None:
        cmd += ["--state", state]
    return Result(subprocess.run(cmd, capture_output=True, timeout=timeout, env=e,
                                 cwd=cwd))


def table(text):
    """Rows of a text table (header first), split on runs of 2+ blanks."""
    import re
    return [re.split(r"  +", line.strip()) for line in text.splitlines() if line.strip()]


class Live:
    """`mkstate DIR live`: a run held by a live process."""

    def __init__(self, state):
        self.p = subprocess.Popen([MKSTATE, state, "live"], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True)
        self.id = self.p.stdout.readline().strip()
        if not self.id:
            raise AssertionError("mkstate live did not start")

    def say(self, line):
        self.p.stdin.write(line + "\n")
        self.p.stdin.flush()
        answer = self.p.stdout.readline().strip()
        if answer != "ok":
            raise AssertionError("mkstate live: %r answered %r" % (line, answer))

    def kill(self):
        self.p.kill()
        self.p.wait(timeout=TIMEOUT)   # reaped: its pid is gone

    def close(self):
        if self.p.poll() is None:
            self.kill()
        self.p.stdin.close()
        self.p.stdout.close()


class Base(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="dagrun-hist-")
        self.state = os.path.join(self.tmp, "state")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def assertNoEscape(self, r):
        self.assertNotIn(ESC, r.stdout)
        self.assertNotIn(ESC, r.stderr)


class HistoryTest(Base):
    """Commands that only read: one fixture for the class."""

    @classmethod
    def setUpClass(cls):
        cls.ctmp = tempfile.mkdtemp(prefix="dagrun-hist-basic-")
        cls.st = os.path.join(cls.ctmp, "state")
        cls.ids = basic(cls.st)
        i = cls.ids
        cls.order = [i["interrupted"], i["weird"], i["cancelled"], i["failed"],
                     i["completed"]] + list(reversed(i["archive"]))

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.ctmp, ignore_errors=True)

    # ---- runs ----------------------------------------------------------------

    def test_runs_lists_newest_first_with_status_duration_and_counts(self):
        r = dagrun("runs", state=self.st)
        self.assertEqual(r.returncode, 0, r.stderr)
        rows = table(r.stdout)
        self.assertEqual(rows[0], ["RUN", "WORKFLOW", "STATUS", "STARTED", "DURATION",
                                   "TASKS"])
        self.assertEqual([row[0] for row in rows[1:]], self.order)
        by_id = {row[0]: row for row in rows[1:]}
        done = by_id[self.ids["completed"]]
        self.assertEqual(done[1:3], ["build", "completed"])
        self.assertEqual(done[4:], ["3m04s", "4 completed"])
        failed = by_id[self.ids["failed"]]
        self.assertEqual(failed[2], "failed")
        self.assertEqual(failed[4:], ["1.2s", "1 completed, 1 failed, 1 skipped"])
        self.assertEqual(by_id[self.ids["cancelled"]][2], "cancelled")
        # its owner is gone: interrupted, not running, and so is its task
        intr = by_id[self.ids["interrupted"]]
        self.assertEqual(intr[2], "interrupted")
        self.assertEqual(intr[5], "1 interrupted, 1 pending")
        # start in local time (TZ=UTC here), 2 hours before the newest
        self.assertRegex(done[3], r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$")
        # a workflow name cannot drive the terminal
        self.assertEqual(by_id[self.ids["weird"]][1], "evil\\x1b[2Jname")
        self.assertNoEscape(r)

    def test_runs_json_is_complete_and_escaped_by_json(self):
        r = dagrun("runs", "--format", "json", state=self.st)
        self.assertEqual(r.returncode, 0, r.stderr)
        doc = json.loads(r.stdout)
        self.assertFalse(doc["more"])
        runs = doc["runs"]
        self.assertEqual([x["id"] for x in runs], self.order)
        by_id = {x["id"]: x for x in runs}
        done = by_id[self.ids["completed"]]
        self.assertEqual(done["workflow"], "build")
        self.assertEqual(done["status"], "completed")
        self.assertEqual(done["runAttempt"], 1)
        self.assertEqual(done["durationMs"], 184000)
        self.assertEqual(done["endMs"] - done["startMs"], 184000)
        self.assertRegex(done["start"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
        self.assertEqual(done["tasks"]["total"], 4)
        self.assertEqual(done["tasks"]["completed"], 4)
        self.assertIsNone(done["owner"])
        self.assertEqual(by_id[self.ids["failed"]]["error"], "1 task failed")
        intr = by_id[self.ids["interrupted"]]
        self.assertEqual(intr["status"], "interrupted")
        self.assertIsNone(intr["durationMs"])
        self.assertIsNone(intr["endMs"])
        self.assertFalse(intr["owner"]["alive"])
        self.assertEqual(intr["tasks"]["interrupted"], 1)
        self.assertEqual(intr["tasks"]["running"], 0)
        self.assertEqual(by_id[self.ids["weird"]]["workflow"], "evil\x1b[2Jname")
        self.assertNotIn(ESC, r.stdout)   # JSON escapes it as \u001b

    def test_runs_filters_by_workflow_and_status(self):
        r = dagrun("runs", "build", state=self.st)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual([row[0] for row in table(r.stdout)[1:]],
                         [self.ids["failed"], self.ids["completed"]])
        r = dagrun("runs", "--status", "failed", state=self.st)
        self.assertEqual([row[0] for row in table(r.stdout)[1:]],
                         [self.ids["failed"], self.ids["archive"][1]])
        r = dagrun("runs", "deploy", "--status", "interrupted", state=self.st)
        self.assertEqual([row[0] for row in table(r.stdout)[1:]], [self.ids["interrupted"]])
        r = dagrun("runs", "--status", "running", state=self.st)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, "")
        self.assertIn("no runs with status running", r.stderr)
        r = dagrun("runs", "nosuch", "--format", "json", state=self.st)
        self.assertEqual(json.loads(r.stdout)["runs"], [])

    def test_runs_limit_keeps_the_newest_and_says_there_are_more(self):
        r = dagrun("runs", "--limit", "2", state=self.st)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual([row[0] for row in table(r.stdout)[1:]], self.order[:2])
        self.assertIn("--limit 0", r.stderr)
        r = dagrun("runs", "-n", "0", state=self.st)
        self.assertEqual(len(table(r.stdout)) - 1, len(self.order))
        self.assertNotIn("--limit", r.stderr)
        r = dagrun("runs", "--limit", "3", "--format", "json", state=self.st)
        doc = json.loads(r.stdout)
        self.assertEqual([x["id"] for x in doc["runs"]], self.order[:3])
        self.assertTrue(doc["more"])
        r = dagrun("runs", "--limit", str(len(self.order)), "--format", "json", state=self.st)
        self.assertFalse(json.loads(r.stdout)["more"])

    def test_runs_bad_input_is_a_usage_error(self):
        for args, msg in [(["--status", "bogus"], "--status is running"),
                          (["--limit", "x"], "--limit takes"),
                          (["--limit", "-1"], "--limit takes"),
                          (["--format", "xml"], "--format is text or json"),
                          (["a", "b"], "usage: dagrun runs"),
                          (["--nope"], "usage: dagrun runs")]:
            r = dagrun("runs", *args, state=self.st)
            self.assertEqual(r.returncode, 2, args)
            self.assertIn(msg, r.stderr, args)
            self.assertEqual(r.stdout, "", args)

    # ---- show ----------------------------------------------------------------

    def test_show_prints_the_header_and_every_task(self):
        r = dagrun("show", self.ids["failed"], state=self.st)
        self.assertEqual(r.returncode, 0, r.stderr)
        head, _, rest = r.stdout.partition("\n\n")
        self.assertIn("run       %s (run attempt 1)" % self.ids["failed"], head)
        self.assertIn("workflow  build (wf.yaml)", head)
        self.assertIn("status    failed: 1 task failed", head)
        self.assertRegex(head, r"started   \d{4}-\d\d-\d\d \d\d:\d\d:\d\d, took 1\.2s")
        self.assertIn("tasks     3: 1 completed, 1 failed, 1 skipped", head)
        rows = table(rest)
        self.assertEqual(rows[0], ["TASK", "STATUS", "ATTEMPTS", "DURATION", "EXIT", "ERROR"])
        self.assertEqual(rows[1], ["compile", "completed", "1", "100ms", "0"])
        self.assertEqual(rows[2], ["test", "failed", "3", "250ms", "1",
                                   "permanent: tests failed: \\x1b[31m2 failures\\x1b[0m"])
        self.assertEqual(rows[3], ["package", "skipped", "0", "-", "-",
                                   "dependency: dependency 'test' failed"])
        self.assertNoEscape(r)

    def test_show_signal_cancelled_and_interrupted_runs(self):
        r = dagrun("show", self.ids["cancelled"], state=self.st)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("status    cancelled: interrupted by SIGINT", r.stdout)
        rows = {row[0]: row for row in table(r.stdout.partition("\n\n")[2])}
        self.assertEqual(rows["upload"][1:5], ["cancelled", "1", "7.0s", "SIGTERM"])
        self.assertEqual(rows["notify"][1:], ["cancelled", "0", "-", "-"])
        r = dagrun("show", "last", state=self.st)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(self.ids["interrupted"], r.stdout)
        self.assertRegex(r.stdout, r"status    interrupted \(its dagrun, pid \d+ on .*, is gone")
        rows = {row[0]: row for row in table(r.stdout.partition("\n\n")[2])}
        self.assertEqual(rows["migrate"][1], "interrupted")
        self.assertEqual(rows["verify"][1], "pending")

    def test_show_escapes_task_ids_from_the_store(self):
        r = dagrun("show", self.ids["weird"], state=self.st)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("workflow  evil\\x1b[2Jname (wf.yaml)", r.stdout)
        ids = [row[0] for row in table(r.stdout.partition("\n\n")[2])[1:]]
        self.assertEqual(ids, ["big", "bad\\x1b[31mid", "bin\\xff\\xfe"])
        self.assertNoEscape(r)

    def test_show_json_has_every_attempt(self):
        r = dagrun("show", self.ids["failed"], "--format", "json", state=self.st)
        self.assertEqual(r.returncode, 0, r.stderr)
        doc = json.loads(r.stdout)
        self.assertEqual(doc["run"]["id"], self.ids["failed"])
        self.assertEqual(doc["run"]["status"], "failed")
        tasks = doc["tasks"]
        self.assertEqual([t["id"] for t in tasks], ["compile", "test", "package"])
        test = tasks[1]
        self.assertEqual(test["status"], "failed")
        self.assertEqual(test["exitCode"], 1)
        self.assertEqual(test["errorClass"], "permanent")
        self.assertEqual(test["error"], "tests failed: \x1b[31m2 failures\x1b[0m")
        self.assertEqual(test["durationMs"], 250)
        self.assertIsNone(test["keptFrom"])
        atts = test["attempts"]
        self.assertEqual([a["attempt"] for a in atts], [1, 2, 3])
        self.assertEqual([a["outcome"] for a in atts], ["failed"] * 3)
        self.assertEqual([a["errorClass"] for a in atts], ["transient", "transient", "permanent"])
        self.assertEqual(atts[0]["stdoutLoggedBytes"], len("test attempt 1 out\n"))
        self.assertEqual(atts[0]["stderrLoggedBytes"], len("test attempt 1 err\n"))
        self.assertEqual(atts[0]["exitCode"], 1)
        self.assertLess(atts[0]["startMs"], atts[1]["startMs"])
        pkg = tasks[2]
        self.assertEqual(pkg["status"], "skipped")
        self.assertEqual(pkg["errorClass"], "dependency")
        self.assertEqual(pkg["attempts"], [])
        self.assertIsNone(pkg["durationMs"])
        # cancelled by a signal; interrupted
        doc = json.loads(dagrun("show", self.ids["cancelled"], "--format", "json",
                                state=self.st).stdout)
        up = doc["tasks"][0]["attempts"][0]
        self.assertEqual((up["outcome"], up["signal"], up["exitCode"]), ("cancelled", 15, None))
        doc = json.loads(dagrun("show", "last", "--format", "json", state=self.st).stdout)
        self.assertEqual(doc["run"]["status"], "interrupted")
        self.assertEqual(doc["tasks"][0]["status"], "interrupted")
        self.assertEqual(doc["tasks"][0]["attempts"][0]["outcome"], "interrupted")
        # invalid UTF-8 becomes U+FFFD, escape sequences stay JSON-escaped
        r = dagrun("show", self.ids["weird"], "--format", "json", state=self.st)
        doc = json.loads(r.stdout)
        self.assertEqual([t["id"] for t in doc["tasks"]],
                         ["big", "bad\x1b[31mid", "bin\ufffd\ufffd"])
        self.assertNotIn(ESC, r.stdout)

    def test_show_takes_last_a_unique_prefix_or_an_id(self):
        for ref, want in [("last", self.ids["interrupted"]),
                          (self.ids["failed"], self.ids["failed"]),
                          (self.ids["failed"][:-3], self.ids["failed"])]:
            r = dagrun("show", ref, "--format", "json", state=self.st)
            self.assertEqual(r.returncode, 0, (ref, r.stderr))
            self.assertEqual(json.loads(r.stdout)["run"]["id"], want)

    def test_show_ambiguous_unknown_and_malformed_references(self):
        # every id starts with the date: ambiguous, the candidates named
        prefix = os.path.commonprefix(self.order)
        self.assertTrue(prefix)
        r = dagrun("show", prefix, state=self.st)
        self.assertEqual(r.returncode, 2)
        self.assertIn("is ambiguous: it matches %d runs: " % len(self.order), r.stderr)
        named = [i for i in self.order if i in r.stderr]
        self.assertEqual(len(named), 5)
        self.assertIn("and %d more" % (len(self.order) - 5), r.stderr)
        a, b = self.ids["archive"][0], self.ids["archive"][1]
        two = os.path.commonprefix([a, b])
        if len([i for i in self.order if i.startswith(two)]) == 2:
            r = dagrun("show", two, state=self.st)
            self.assertEqual(r.returncode, 2)
            self.assertIn("matches 2 runs: ", r.stderr)
            self.assertIn(a, r.stderr)
            self.assertIn(b, r.stderr)
        r = dagrun("show", "zzz", state=self.st)
        self.assertEqual(r.returncode, 2)
        self.assertIn("no run matches 'zzz'", r.stderr)
        r = dagrun("show", "../etc\x1b[2J", state=self.st)
        self.assertEqual(r.returncode, 2)
        self.assertIn("is not a run id", r.stderr)
        self.assertNoEscape(r)
        for args in (["show"], ["show", "a", "b"], ["show", "last", "--format", "yaml"]):
            r = dagrun(*args, state=self.st)
            self.assertEqual(r.returncode, 2, args)

    # ---- logs ----------------------------------------------------------------

    def test_logs_of_a_task_label_every_attempt_and_stream(self):
        r = dagrun("logs", self.ids["failed"], "test", state=self.st)
        self.assertEqual(r.returncode, 0, r.stderr)
        want = ""
        for a in (1, 2, 3):
            extra = "\\x1b]0;pwned\\x07\\x1b[31mred\\x1b[0m\n" if a == 3 else ""
            want += ("%s==> test, attempt %d, stdout <==\ntest attempt %d out\n%s"
                     "\n==> test, attempt %d, stderr <==\ntest attempt %d err\n"
                     % ("" if a == 1 else "\n", a, a, extra, a, a))
        self.assertEqual(r.stdout, want)
        self.assertNoEscape(r)

    def test_logs_attempt_selects_one(self):
        r = dagrun("logs", self.ids["failed"], "test", "--attempt", "2", state=self.st)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, "==> test, attempt 2, stdout <==\ntest attempt 2 out\n"
                                   "\n==> test, attempt 2, stderr <==\ntest attempt 2 err\n")
        r = dagrun("logs", self.ids["failed"], "test", "--attempt", "4", state=self.st)
        self.assertEqual(r.returncode, 2)
        self.assertIn("has no attempt 4 (it has 3)", r.stderr)
        for bad in ("0", "x", "-1"):
            r = dagrun("logs", self.ids["failed"], "test", "--attempt", bad, state=self.st)
            self.assertEqual(r.returncode, 2, bad)

    def test_logs_of_a_run_come_in_the_order_attempts_started(self):
        # indexes: compile 0, test 1, package 2, lint 3; started compile,
        # lint, test, package (which wrote nothing)
        r = dagrun("logs", self.ids["completed"], state=self.st)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout,
                         "==> compile, attempt 1, stdout <==\ncompiling main.c\n"
                         "\n==> compile, attempt 1, stderr <==\nwarning: unused x\n"
                         "\n==> lint, attempt 1, stdout <==\nlint ok\n"
                         "\n==> test, attempt 1, stdout <==\ntest 1 ok\ntest 2 ok\n")
        # a task without output says so
        r = dagrun("logs", self.ids["completed"], "package", state=self.st)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, "==> package, attempt 1: no output <==\n")
        # --attempt without a task: that attempt of every task
        r = dagrun("logs", self.ids["failed"], "--attempt", "3", state=self.st)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertNotIn("compile", r.stdout)
        self.assertIn("==> test, attempt 3, stdout <==", r.stdout)

    def test_logs_say_what_the_cap_cut_and_escape_everything(self):
        r = dagrun("logs", self.ids["weird"], state=self.st)
        self.assertEqual(r.returncode, 0, r.stderr)
        body = r.stdout
        kept = [line for line in body.splitlines() if line and set(line) == {"x"}]
        # 40 lines of 100 bytes, 96 bytes of the next, and the newline added
        self.assertEqual(sum(len(line) + 1 for line in kept), 4096 + 1)
        self.assertIn("[dagrun: 904 B more of this stream was written but not kept: "
                      "over the log's cap]", body)
        self.assertIn("==> bad\\x1b[31mid, attempt 1, stdout <==\nhello\n", body)
        self.assertIn("==> bin\\xff\\xfe, attempt 1, stdout <==\n\\xff\\xfe\n", body)
        self.assertNoEscape(r)

    def test_logs_of_an_interrupted_run_print_what_was_kept(self):
        r = dagrun("logs", "last", state=self.st)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, "==> migrate, attempt 1, stdout <==\nmigrating\npartial line\n")
        self.assertIn("was interrupted", r.stderr)
        # -f on it ends at once, with the same message
        t0 = time.monotonic()
        r = dagrun("logs", "-f", "last", state=self.st, timeout=TIMEOUT)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertLess(time.monotonic() - t0, TIMEOUT / 2)
        self.assertIn("partial line\n", r.stdout)
        self.assertIn("was interrupted", r.stderr)
        # a task that never ran
        r = dagrun("logs", "last", "verify", state=self.st)
        self.assertEqual((r.returncode, r.stdout), (0, ""))
        self.assertIn("no output recorded for task verify", r.stderr)

    def test_logs_follow_of_an_ended_run_prints_and_returns(self):
        r = dagrun("logs", "--follow", self.ids["completed"], "lint", state=self.st)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, "==> lint, attempt 1, stdout <==\nlint ok\n")
        self.assertIn("ended: completed", r.stderr)

    def test_logs_unknown_task_or_run(self):
        r = dagrun("logs", self.ids["failed"], "nosuch", state=self.st)
        self.assertEqual(r.returncode, 2)
        self.assertIn("no task 'nosuch' in run %s (tasks: compile, test, package)"
                      % self.ids["failed"], r.stderr)
        r = dagrun("logs", "zzz", state=self.st)
        self.assertEqual(r.returncode, 2)
        self.assertIn("no run matches 'zzz'", r.stderr)
        r = dagrun("logs", state=self.st)
        self.assertEqual(r.returncode, 2)


class LiveTest(Base):
    """A run held by a live process (mkstate live)."""

    def setUp(self):
        super().setUp()
        self.live = Live(self.state)

    def tearDown(self):
        self.live.close()
        super().tearDown()

    def test_a_live_run_shows_as_running_then_interrupted_when_its_owner_dies(self):
        r = dagrun("runs", "--format", "json", state=self.state)
        run = json.loads(r.stdout)["runs"][0]
        self.assertEqual((run["id"], run["status"]), (self.live.id, "running"))
        self.assertTrue(run["owner"]["alive"])
        self.assertEqual(run["owner"]["pid"], self.live.p.pid)
        r = dagrun("show", "last", state=self.state)
        self.assertIn("status    running (pid %d on " % self.live.p.pid, r.stdout)
        self.assertIn(", running for ", r.stdout)
        rows = {row[0]: row for row in table(r.stdout.partition("\n\n")[2])}
        self.assertEqual(rows["a"][1], "running")
        self.live.kill()
        r = dagrun("runs", state=self.state)
        self.assertEqual(table(r.stdout)[1][2], "interrupted")
        r = dagrun("show", "last", state=self.state)
        self.assertIn("status    interrupted", r.stdout)

    def test_logs_follow_prints_new_output_until_the_run_ends(self):
        f = subprocess.Popen([DAGRUN, "logs", "-f", self.live.id[:-2], "--state", self.state],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            # the follower has printed what was there before it started
            line = f.stdout.readline()
            self.assertEqual(line, b"==> a, attempt 1, stdout <==\n")
            self.assertEqual(f.stdout.readline(), b"a line 1\n")
            self.live.say("out second line")
            self.assertEqual(f.stdout.readline(), b"second line\n")
            self.live.say("partial half ")
            self.live.say("out and the rest")
            self.assertEqual(f.stdout.readline(), b"half and the rest\n")
            self.live.say("err on stderr \x1b[1m")
            self.live.say("end")   # a ends, b runs and writes, the run completes
            out, err = f.communicate(timeout=TIMEOUT)
        finally:
            if f.poll() is None:
                f.kill()
                f.wait()
        self.assertEqual(f.returncode, 0, err)
        self.assertEqual(out.decode(),
                         "\n==> a, attempt 1, stderr <==\non stderr \\x1b[1m\n"
                         "\n==> b, attempt 1, stdout <==\nb done\n")
        self.assertIn(b"ended: completed", err)

    def test_logs_follow_ends_when_the_owner_dies(self):
        f = subprocess.Popen([DAGRUN, "logs", "-f", "last", "a", "--state", self.state],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            self.assertEqual(f.stdout.readline(), b"==> a, attempt 1, stdout <==\n")
            self.assertEqual(f.stdout.readline(), b"a line 1\n")
            self.live.say("partial no newline")
            time.sleep(1)
            self.live.kill()   # SIGKILL: the run is never ended
            out, err = f.communicate(timeout=TIMEOUT)
        finally:
            if f.poll() is None:
                f.kill()
                f.wait()
        self.assertEqual(f.returncode, 0, err)
        self.assertEqual(out, b"no newline\n")
        self.assertIn(b"was interrupted", err)

    def test_prune_never_removes_a_live_run(self):
        r = dagrun("prune", "--keep", "0", "--older-than", "1ms", state=self.state)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("removed 0 runs", r.stdout)
        r = dagrun("runs", "--format", "json", state=self.state)
        self.assertEqual([x["id"] for x in json.loads(r.stdout)["runs"]], [self.live.id])


class PruneTest(Base):
    def setUp(self):
        super().setUp()
        self.ids = basic(self.state)

    def run_ids(self):
        r = dagrun("runs", "-n", "0", "--format", "json", state=self.state)
        self.assertEqual(r.returncode, 0, r.stderr)
        return [x["id"] for x in json.loads(r.stdout)["runs"]]

    def logdir(self, run_id):
        return os.path.join(self.state, "logs", run_id + ".1")

    def test_prune_dry_run_lists_then_prune_removes_runs_and_logs(self):
        old = self.ids["archive"][:2]
        before = self.run_ids()
        for i in old:
            self.assertTrue(os.path.isdir(self.logdir(i)))
        r = dagrun("prune", "--older-than", "30d", "--dry-run", state=self.state)
        self.assertEqual(r.returncode, 0, r.stderr)
        rows = table(r.stdout)
        self.assertEqual(sorted(row[1] for row in rows[:-1]), sorted(old))
        self.assertTrue(all(row[0] == "would remove" for row in rows[:-1]))
        self.assertEqual({row[2] for row in rows[:-1]}, {"archive"})
        self.assertIn("would remove 2 runs (16 B of logs); nothing removed (--dry-run)",
                      r.stdout)
        self.assertEqual(self.run_ids(), before)
        for i in old:
            self.assertTrue(os.path.isdir(self.logdir(i)))
        # JSON, still dry
        r = dagrun("prune", "--older-than", "30d", "-n", "--format", "json", state=self.state)
        doc = json.loads(r.stdout)
        self.assertTrue(doc["dryRun"])
        self.assertEqual(doc["olderThanMs"], 30 * 86400000)
        self.assertEqual(sorted(x["id"] for x in doc["removed"]), sorted(old))
        self.assertEqual(doc["logBytes"], 16)
        # for real
        r = dagrun("prune", "--older-than", "30d", state=self.state)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(sorted(row[1] for row in table(r.stdout)[:-1]), sorted(old))
        self.assertIn("removed 2 runs (16 B of logs)", r.stdout)
        self.assertEqual(self.run_ids(), [i for i in before if i not in old])
        for i in old:
            self.assertFalse(os.path.exists(self.logdir(i)))
        r = dagrun("show", old[0], state=self.state)
        self.assertEqual(r.returncode, 2)
        # nothing more to do
        r = dagrun("prune", "--older-than", "30d", state=self.state)
        self.assertIn("removed 0 runs", r.stdout)

    def test_prune_keep_per_workflow_and_of_one_workflow(self):
        r = dagrun("prune", "build", "--keep", "1", "--older-than", "0", state=self.state)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual([row[1] for row in table(r.stdout)[:-1]], [self.ids["completed"]])
        self.assertNotIn(self.ids["completed"], self.run_ids())
        self.assertIn(self.ids["archive"][0], self.run_ids())
        r = dagrun("prune", "--keep", "1", "--older-than", "0", state=self.state)
        self.assertEqual(r.returncode, 0, r.stderr)
        gone = {row[1] for row in table(r.stdout)[:-1]}
        # archive keeps its newest; deploy keeps the interrupted (newest)
        self.assertEqual(gone, {self.ids["archive"][0], self.ids["archive"][1],
                                self.ids["cancelled"]})
        left = self.run_ids()
        self.assertEqual(sorted(left), sorted([self.ids["interrupted"], self.ids["weird"],
                                               self.ids["failed"], self.ids["archive"][2]]))

    def test_prune_without_options_applies_the_default_policy(self):
        r = dagrun("prune", "--dry-run", state=self.state)
        self.assertEqual(r.returncode, 0, r.stderr)
        # 90 days: nothing here is that old, no workflow has 1000 runs
        self.assertIn("would remove 0 runs", r.stdout)
        r = dagrun("prune", "--older-than", "36d", state=self.state)
        self.assertEqual([row[1] for row in table(r.stdout)[:-1]], [self.ids["archive"][0]])

    def test_prune_bad_input_is_a_usage_error(self):
        for args, msg in [(["--older-than", "3x"], "invalid duration '3x' for --older-than: "
                                                   "unknown unit (use ms, s, m, h or d)"),
                          (["--older-than", "-5d"], "cannot be negative"),
                          (["--older-than", "5", "--dry-run"], None),
                          (["--keep", "x"], "--keep takes"),
                          (["--format", "csv"], "--format is text or json"),
                          (["a", "b"], "usage: dagrun prune")]:
            r = dagrun("prune", *args, state=self.state)
            if msg is None:   # bare digits are milliseconds: valid (dry: keeps all)
                self.assertEqual(r.returncode, 0, r.stderr)
                continue
            self.assertEqual(r.returncode, 2, args)
            self.assertIn(msg, r.stderr, args)
        self.assertEqual(len(self.run_ids()), 8)   # nothing removed


class StateDirTest(Base):
    def test_missing_state_directory_says_so_and_creates_nothing(self):
        for args, code in [(["runs"], 0), (["show", "last"], 2), (["logs", "last"], 2),
                           (["prune"], 0), (["prune", "--dry-run"], 0)]:
            r = dagrun(*args, state=self.state)
            self.assertEqual(r.returncode, code, (args, r.stderr))
            self.assertIn("no runs recorded in %s" % self.state, r.stderr)
            self.assertFalse(os.path.exists(self.state), args)
        r = dagrun("runs", "--format", "json", state=self.state)
        self.assertEqual(json.loads(r.stdout), {"runs": [], "more": False})

    def test_state_flag_then_environment_then_dot_dagrun(self):
        here = os.path.join(self.tmp, ".dagrun")
        ids = basic(here)
        other = os.path.join(self.tmp, "other")
        # default: .dagrun in the current directory
        r = dagrun("show", "last", "--format", "json", cwd=self.tmp)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout)["run"]["id"], ids["interrupted"])
        # $DAGRUN_STATE before it
        r = dagrun("runs", cwd=self.tmp, env={"DAGRUN_STATE": other})
        self.assertIn("no runs recorded in %s" % other, r.stderr)
        # --state before both
        r = dagrun("runs", "--format", "json", "--state", here, cwd="/",
                   env={"DAGRUN_STATE": other})
        self.assertEqual(len(json.loads(r.stdout)["runs"]), 8)
        r = dagrun("runs", "--state", "", cwd=self.tmp)
        self.assertEqual(r.returncode, 2)

    def test_a_foreign_state_database_is_a_store_error(self):
        os.makedirs(self.state)
        with open(os.path.join(self.state, "state.db"), "wb") as f:
            f.write(b"this is not a database at all" * 100)
        for args in (["runs"], ["show", "last"], ["logs", "last"], ["prune"],
                     ["prune", "--dry-run"]):
            r = dagrun(*args, state=self.state)
            self.assertEqual(r.returncode, 3, (args, r.stderr))
            self.assertIn(os.path.join(self.state, "state.db"), r.stderr)
        with open(os.path.join(self.state, "state.db"), "rb") as f:
            self.assertEqual(f.read(), b"this is not a database at all" * 100)


class HelpTest(unittest.TestCase):
    def test_every_history_command_has_help(self):
        for cmd in ("runs", "show", "logs", "prune"):
            for flag in ("--help", "-h"):
                r = dagrun(cmd, flag)
                self.assertEqual(r.returncode, 0, cmd)
                self.assertTrue(r.stdout.startswith("usage: dagrun %s" % cmd), cmd)
                self.assertIn("--state DIR", r.stdout, cmd)
        r = dagrun("--help")
        for cmd in ("runs", "show RUN", "logs RUN", "prune"):
            self.assertIn("  " + cmd, r.stdout)


if __name__ == "__main__":
    unittest.main(verbosity=2)
