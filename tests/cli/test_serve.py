#!/usr/bin/env python3
"""End-to-end tests of `dagrun serve` (docs/api.md): a real server on
loopback, real `dagrun run` children recording into a real state
directory, real HTTP (urllib), the Server-Sent Events stream read as it
comes, /metrics checked by promtool.

Margins are generous (a loaded 2-core machine): waits poll up to many
seconds; speed is never asserted.
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest
import urllib.error
import urllib.request

DAGRUN = os.path.abspath(os.environ.get("DAGRUN", "build/src/cli/dagrun"))
TIMEOUT = 60
SECRET = "s3cr3t-Value-9f8e7d6c"

HELLO = """\
name: hello
variables:
  who: world
tasks:
  - id: a
    command: echo "hello {{ variables.who }}"
  - id: b
    dependencies: [a]
    command: echo b-done; echo to-stderr >&2
"""

SLOW = """\
name: slow
tasks:
  - id: wait
    command: sleep 120
"""

SECRETIVE = """\
name: secretive
tasks:
  - id: leak
    command: echo "the key is {{ secrets.API_KEY }}"
"""

GATE = """\
name: gate
tasks:
  - id: first
    command: echo first
  - id: gated
    dependencies: [first]
    command: "test -f {{ variables.marker }} && echo through"
  - id: waits
    dependencies: [first]
    command: "while [ ! -f {{ variables.marker }} ]; do sleep 0.2; done; echo waited"
variables:
  marker: /nonexistent
"""

BROKEN = """\
name: broken
tasks:
  - id: x
    comand: true
"""


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is not alive
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


class Server:
    """A `dagrun serve` process on 127.0.0.1, any free port."""

    def __init__(self, root, *args, listen="127.0.0.1:0", state=None, env=None, wf="wf"):
        self.root = root
        self.state = state or os.path.join(root, "state")
        self.log = open(os.path.join(root, "serve.%d.log" % time.monotonic_ns()), "w+")
        self.log_closed = False
        self.p = subprocess.Popen(
            [DAGRUN, "serve", "--listen", listen, "--dir", os.path.join(root, wf),
             "--state", self.state, *args],
            stdout=subprocess.PIPE, stderr=self.log, text=True,
            env=dict(os.environ, **(env or {})))
        line = self.p.stdout.readline()
        if not line.startswith("http://"):
            self.stop()
            raise AssertionError("server did not start: %r %s" % (line, self.errors()))
        self.url = line.strip().rstrip("/")

    def errors(self):
        self.log.flush()
        self.log.seek(0)
        return self.log.read()

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            self.p.wait(timeout=TIMEOUT)
        self.p.stdout.close()
        return self.p.returncode

    def close(self):
        self.stop()
        self.log.close()

    def request(self, method, path, body=None, headers=None, raw=None):
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=TIMEOUT) as r:
                return r.status, r.read(), r.headers
        except urllib.error.HTTPError as e:
            return e.code, e.read(), e.headers

    def json(self, method, path, body=None, headers=None):
        st, data, _ = self.request(method, path, body, headers)
        return st, json.loads(data)

    def wait_run(self, rid, statuses=("completed", "failed", "cancelled"), timeout=TIMEOUT):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            st, o = self.json("GET", "/api/runs/" + rid)
            if st == 200 and o["run"]["status"] in statuses:
                return o
            time.sleep(0.2)
        raise AssertionError("run %s did not reach %s: %s" % (rid, statuses, o))


def stop_servers(tc, servers, headers=None, wait=False):
    """A test's end: cancels what still runs on each server (no run
    outlives the test; with wait, until each run has stopped), stops the
    servers and checks each exited 0 with nothing from a sanitizer in its
    log. headers(s): what a request to s carries. Returns the logs."""
    for s in servers:
        if s.p.poll() is not None:
            continue
        h = headers(s) if headers else None
        try:
            st, o = s.json("GET", "/api/runs?status=running", headers=h)
            for r in o.get("runs", []) if st == 200 else []:
                s.json("POST", "/api/runs/%s/cancel" % r["id"], headers=h)
                if wait:
                    s.wait_run(r["id"], ("cancelled", "failed", "completed", "interrupted"))
        except (OSError, ValueError, AssertionError):
            pass
    logs = []
    for s in servers:
        rc = s.stop()
        log = s.errors()
        s.close()
        tc.assertEqual(rc, 0, log[-3000:])
        tc.assertNotIn("Sanitizer", log)
        tc.assertNotIn("runtime error", log)
        logs.append(log)
    return logs


class ServeTest(unittest.TestCase):
    def setUp(self):
        self.root = tempfile.mkdtemp(prefix="dagrun-serve-")
        wf = os.path.join(self.root, "wf")
        os.mkdir(wf)
        for name, text in (("gate", GATE), ("hello", HELLO), ("slow", SLOW), ("secretive", SECRETIVE),
                           ("broken", BROKEN)):
            with open(os.path.join(wf, name + ".yaml"), "w") as f:
                f.write(text)
        self.secrets = os.path.join(self.root, "secrets.env")
        with open(self.secrets, "w") as f:
            f.write("API_KEY=%s\n" % SECRET)
        os.chmod(self.secrets, 0o600)
        self.servers = []
        self.pids = []

    def tearDown(self):
        for pid in self.pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        stop_servers(self, self.servers)
        shutil.rmtree(self.root, ignore_errors=True)

    def serve(self, *args, **kw):
        s = Server(self.root, *args, **kw)
        self.servers.append(s)
        return s

    def start(self, s, name, body=None):
        st, o = s.json("POST", "/api/workflows/%s/runs" % name, body or {})
        self.assertIn(st, (201, 202), o)
        return o["id"]

    # ---- workflows -----------------------------------------------------

    def test_workflows_listed_with_validation_and_last_run(self):
        s = self.serve()
        st, o = s.json("GET", "/api/workflows")
        self.assertEqual(st, 200)
        by = {w["name"]: w for w in o["workflows"]}
        self.assertEqual(sorted(by), ["broken", "gate", "hello", "secretive", "slow"])
        self.assertTrue(by["hello"]["valid"])
        self.assertFalse(by["broken"]["valid"])
        self.assertIsNone(by["hello"]["lastRun"])
        st, o = s.json("GET", "/api/workflows/broken")
        self.assertEqual(st, 200)
        self.assertIn("comand", json.dumps(o["errors"]))
        self.assertEqual(o["errors"][0]["line"], 4)
        st, o = s.json("GET", "/api/workflows/hello")
        self.assertEqual(o["taskIds"], ["a", "b"])
        self.assertEqual(o["variables"], {"who": "world"})
        st, data, h = s.request("GET", "/api/workflows/hello/graph.svg")
        self.assertEqual(st, 200)
        self.assertIn(b"<svg", data)
        st, o = s.json("POST", "/api/workflows/broken/runs", {})
        self.assertEqual(st, 422)
        st, o = s.json("GET", "/api/workflows/nope")
        self.assertEqual(st, 404)

    # ---- runs ----------------------------------------------------------

    def test_run_started_completes_with_logs_report_and_listing(self):
        s = self.serve()
        rid = self.start(s, "hello", {"variables": {"who": "api"}})
        o = s.wait_run(rid)
        self.assertEqual(o["run"]["status"], "completed")
        self.assertEqual([(t["id"], t["status"]) for t in o["tasks"]],
                         [("a", "completed"), ("b", "completed")])
        self.assertEqual(o["tasks"][0]["attempts"][0]["outcome"], "ok")
        st, data, h = s.request("GET", "/api/runs/%s/tasks/a/log" % rid)
        self.assertEqual((st, data), (200, b"hello api\n"))
        self.assertEqual(h["X-Dagrun-Next-Offset"], "10")
        st, data, h = s.request("GET", "/api/runs/%s/tasks/a/log?offset=6" % rid)
        self.assertEqual(data, b"api\n")
        st, data, h = s.request("GET", "/api/runs/%s/tasks/b/log?stream=stderr" % rid)
        self.assertEqual(data, b"to-stderr\n")
        st, o = s.json("GET", "/api/runs/%s/tasks/zz/log" % rid)
        self.assertEqual(st, 404)
        for bad in ("offset=abc", "offset=-1", "attempt=x", "attempt=", "stream=both"):
            st, o = s.json("GET", "/api/runs/%s/tasks/a/log?%s" % (rid, bad))
            self.assertEqual(st, 400, bad)
        st, o = s.json("GET", "/api/runs/%s/tasks/a/log?attempt=2" % rid)
        self.assertEqual(st, 404)
        st, data, h = s.request("GET", "/api/runs/%s/report" % rid)
        self.assertEqual(st, 200)
        self.assertTrue(h["Content-Type"].startswith("text/html"))
        self.assertIn(rid.encode(), data)
        st, o = s.json("GET", "/api/runs?workflow=hello&status=completed&limit=5")
        self.assertEqual([r["id"] for r in o["runs"]], [rid])
        st, o = s.json("GET", "/api/runs?status=failed")
        self.assertEqual(o["runs"], [])
        st, o = s.json("GET", "/api/runs?status=bogus")
        self.assertEqual(st, 400)
        st, o = s.json("GET", "/api/workflows")
        last = {w["name"]: w["lastRun"] for w in o["workflows"]}["hello"]
        self.assertEqual((last["id"], last["status"]), (rid, "completed"))
        # the CLI sees the same run in the same store
        r = subprocess.run([DAGRUN, "runs", "--state", s.state, "--format", "json"],
                           capture_output=True, text=True, timeout=TIMEOUT)
        self.assertIn(rid, r.stdout)

    def test_rerun_failed_and_resume_interrupted(self):
        s = self.serve()
        marker = os.path.join(self.root, "marker")
        rid = self.start(s, "gate", {"variables": {"marker": marker}})
        # gated fails at once; waits waits for the marker: cancel the run
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            st, o = s.json("GET", "/api/runs/" + rid)
            t = {x["id"]: x["status"] for x in o["tasks"]}
            if t.get("gated") == "failed" and t.get("waits") == "running":
                break
            time.sleep(0.2)
        self.assertEqual(t, {"first": "completed", "gated": "failed", "waits": "running"})
        st, o = s.json("POST", "/api/runs/%s/rerun" % rid, {"failed": True})
        self.assertEqual(st, 409, o)   # still running
        # interrupt its dagrun as `kill -TERM` does (a cancel would end the
        # run: cancelled, not resumable)
        st, o = s.json("GET", "/api/runs/" + rid)
        os.kill(o["run"]["owner"]["pid"], signal.SIGTERM)
        s.wait_run(rid, ("interrupted",))
        st, o = s.json("POST", "/api/runs/%s/rerun" % rid, {"bogus": True})
        self.assertEqual(st, 400, o)
        with open(marker, "w"):
            pass
        st, o = s.json("POST", "/api/runs/%s/resume" % rid)
        self.assertIn(st, (201, 202), o)
        o = s.wait_run(rid, ("completed", "failed"))
        t = {x["id"]: x["status"] for x in o["tasks"]}
        # resume keeps the failed task failed and runs what was interrupted
        self.assertEqual(t, {"first": "completed", "gated": "failed", "waits": "completed"})
        self.assertEqual(o["run"]["status"], "failed")
        st, o = s.json("POST", "/api/runs/%s/resume" % rid)
        self.assertEqual(st, 409, o)
        st, o = s.json("POST", "/api/runs/%s/rerun" % rid, {"failed": True})
        self.assertEqual(st, 201, o)
        self.assertEqual(o["runAttempt"], 2)
        o = s.wait_run(rid, ("completed", "failed"))
        self.assertEqual(o["run"]["runAttempt"], 2)
        self.assertEqual(o["run"]["status"], "completed")
        st, data, _ = s.request("GET", "/api/runs/%s/tasks/gated/log" % rid)
        self.assertEqual(data, b"through\n")
        st, data, _ = s.request("GET", "/api/runs/%s/tasks/first/log" % rid)
        self.assertEqual(data, b"first\n")   # kept from run attempt 1
        st, o = s.json("GET", "/api/stats?workflow=gate")
        self.assertEqual(st, 200, o)
        self.assertEqual(o["workflow"], "gate")

    def test_start_refused_says_why(self):
        s = self.serve()
        st, o = s.json("POST", "/api/workflows/hello/runs", {"variables": {"nope": "1"}})
        self.assertEqual(st, 422, o)
        self.assertIn("nope", o["error"])
        st, o = s.json("POST", "/api/workflows/hello/runs", {"bogus": 1})
        self.assertEqual(st, 400)
        st, data, _ = s.request("POST", "/api/workflows/hello/runs", raw=b"{not json")
        self.assertEqual(st, 400)

    def test_cancel_stops_the_run_and_its_processes(self):
        s = self.serve()
        rid = self.start(s, "slow")
        pid = None
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline and pid is None:
            st, o = s.json("GET", "/api/runs/" + rid)
            if o["tasks"] and o["tasks"][0]["status"] == "running":
                pid = o["run"]["owner"]["pid"]
            time.sleep(0.2)
        self.assertIsNotNone(pid)
        st, o = s.json("POST", "/api/runs/%s/cancel" % rid)
        self.assertEqual(st, 202, o)
        # cancel stops the run as Ctrl-C does, its running task cancelled,
        # and the run is recorded cancelled (over: rerun, not resume)
        o = s.wait_run(rid, ("cancelled", "failed", "interrupted"))
        self.assertEqual(o["run"]["status"], "cancelled")
        self.assertEqual(o["tasks"][0]["status"], "cancelled")
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline and pid_alive(pid):
            time.sleep(0.2)
        self.assertFalse(pid_alive(pid))
        st, o = s.json("POST", "/api/runs/%s/cancel" % rid)
        self.assertEqual(st, 409)

    def test_server_stop_leaves_its_runs_going_and_a_new_server_follows_them(self):
        s = self.serve()
        rid = self.start(s, "slow")
        deadline = time.monotonic() + TIMEOUT
        owner = None
        while time.monotonic() < deadline and not owner:
            st, o = s.json("GET", "/api/runs/" + rid)
            owner = o["run"].get("owner")
            time.sleep(0.2)
        pid = owner["pid"]
        self.pids.append(pid)
        self.assertEqual(s.stop(), 0)
        self.assertIn("leaving run %s" % rid, s.errors())
        time.sleep(1)
        self.assertTrue(pid_alive(pid), "the run's dagrun died with the server")
        s2 = self.serve()
        st, o = s2.json("GET", "/api/runs/" + rid)
        self.assertEqual(o["run"]["status"], "running")
        st, o = s2.json("POST", "/api/runs/%s/cancel" % rid)
        self.assertEqual(st, 202, o)
        o = s2.wait_run(rid, ("cancelled",))
        self.assertEqual(o["tasks"][0]["status"], "cancelled")

    def test_secret_never_in_any_answer(self):
        s = self.serve("--secrets-file", self.secrets)
        rid = self.start(s, "secretive")
        o = s.wait_run(rid)
        self.assertEqual(o["run"]["status"], "completed")
        seen = []
        for path in ("/api/runs/" + rid, "/api/runs/%s/tasks/leak/log" % rid,
                     "/api/runs/%s/report" % rid, "/api/runs", "/api/workflows",
                     "/api/workflows/secretive", "/metrics"):
            st, data, _ = s.request("GET", path)
            self.assertEqual(st, 200, path)
            seen.append(data)
            self.assertNotIn(SECRET.encode(), data, path)
            self.assertNotIn(SECRET[:10].encode(), data, path)
        self.assertIn(b"the key is ", seen[1])
        self.assertNotIn(SECRET, s.errors())

    # ---- live events ---------------------------------------------------

    def test_sse_stream_carries_run_and_task_status_changes(self):
        s = self.serve()
        sock = socket.create_connection((s.url.split("//")[1].split(":")[0],
                                         int(s.url.rsplit(":", 1)[1])), timeout=TIMEOUT)
        sock.sendall(b"GET /api/events HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n")
        buf = b""
        while b"event: hello" not in buf:
            buf += sock.recv(65536)
        self.assertIn(b"text/event-stream", buf)
        rid = self.start(s, "hello")
        events = []
        deadline = time.monotonic() + TIMEOUT
        done = False
        while not done and time.monotonic() < deadline:
            chunk = sock.recv(65536)
            if not chunk:
                break
            buf += chunk
            while b"\n\n" in buf:
                frame, buf = buf.split(b"\n\n", 1)
                ev = {}
                for line in frame.decode().split("\n"):
                    k, _, v = line.partition(": ")
                    ev[k] = v
                if "data" in ev and ev.get("event") in ("run", "task"):
                    d = json.loads(ev["data"])
                    events.append((ev["event"], d))
                    if ev["event"] == "run" and d["id"] == rid and d["status"] == "completed":
                        done = True
        sock.close()
        self.assertTrue(done, events)
        tasks = {(d["task"], d["status"]) for e, d in events if e == "task" and d["run"] == rid}
        self.assertIn(("a", "completed"), tasks)
        self.assertIn(("b", "completed"), tasks)
        st, o = s.json("GET", "/api/events?run=../../x")
        self.assertEqual(st, 400)

    def test_sse_stream_of_one_run_carries_its_log_lines(self):
        s = self.serve()
        marker = os.path.join(self.root, "go")
        rid = self.start(s, "gate", {"variables": {"marker": marker}})
        host, port = s.url.split("//")[1].rsplit(":", 1)
        sock = socket.create_connection((host, int(port)), timeout=TIMEOUT)
        # since=0: the server is new, its ring holds every event of the run,
        # so gated's failure is seen even if it came before the connection
        sock.sendall(("GET /api/events?run=%s&since=0 HTTP/1.1\r\nHost: x\r\n\r\n"
                      % rid).encode())
        buf = b""
        logs, runs = [], []
        marked = False
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline and not any(r["status"] != "running" for r in runs):
            chunk = sock.recv(65536)
            if not chunk:
                break
            buf += chunk
            while b"\n\n" in buf:
                frame, buf = buf.split(b"\n\n", 1)
                ev = dict(l.partition(": ")[::2] for l in frame.decode().split("\n"))
                if ev.get("event") == "log":
                    logs.append(json.loads(ev["data"]))
                elif ev.get("event") == "run":
                    runs.append(json.loads(ev["data"]))
                elif ev.get("event") in ("task", "attempt"):
                    d = json.loads(ev["data"])
                    self.assertEqual(d["run"], rid)
                    # the marker comes only once gated has failed without it:
                    # on a slow machine (TSan) "first" may still be running
                    # when the stream says hello
                    if (ev["event"] == "task" and d.get("task") == "gated"
                            and d.get("status") == "failed" and not marked):
                        with open(marker, "w"):
                            pass
                        marked = True
        sock.close()
        self.assertTrue(marked, "gated never reported failed on the stream")
        self.assertEqual(runs[-1]["status"], "failed")   # gated failed before the marker
        self.assertIn(("waits", "stdout", "waited\n"),
                      [(l["task"], l["stream"], l["text"]) for l in logs])

    # ---- metrics -------------------------------------------------------

    def test_metrics_pass_promtool(self):
        s = self.serve()
        rid = self.start(s, "hello")
        s.wait_run(rid)
        time.sleep(1)   # a poll or two: the attempts are counted
        st, data, h = s.request("GET", "/metrics")
        self.assertEqual(st, 200)
        self.assertIn(b'dagrun_runs{workflow="hello",status="completed"} 1', data)
        self.assertIn(b'dagrun_task_duration_seconds_count{workflow="hello"} 2', data)
        promtool = shutil.which("promtool")
        if not promtool:
            self.skipTest("promtool not installed (Debian: prometheus; ./build.sh deps test)")
        r = subprocess.run([promtool, "check", "metrics"], input=data, capture_output=True,
                           timeout=TIMEOUT)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    # ---- schedules -----------------------------------------------------

    def test_schedule_fires_on_a_sped_up_clock_and_overlap_skip_skips(self):
        wf = os.path.join(self.root, "sched")
        os.mkdir(wf)
        with open(os.path.join(wf, "tick.yaml"), "w") as f:
            f.write('name: tick\nschedule: "* * * * *"\ntimezone: Europe/Berlin\n'
                    'tasks:\n  - id: t\n    command: echo tick\n')
        # every minute, and each run takes 8 s (8 minutes of the test clock)
        with open(os.path.join(wf, "long.yaml"), "w") as f:
            f.write('name: long\nschedule: "*/1 * * * *"\noverlap: skip\n'
                    'tasks:\n  - id: t\n    command: sleep 8\n')
        with open(os.path.join(wf, "bad.yaml"), "w") as f:
            f.write('name: bad\nschedule: "61 * * * *"\ntasks:\n  - id: t\n'
                    '    command: "true"\n')
        # the schedules' clock runs 60 times faster: a minute is a second
        s = self.serve(wf="sched", env={"DAGRUN_SERVE_TEST_CLOCK": "60"})
        st, o = s.json("GET", "/api/workflows/tick")
        sch = o["schedule"]
        self.assertEqual((sch["cron"], sch["timezone"], sch["overlap"], sch["catchup"]),
                         ("* * * * *", "Europe/Berlin", "skip", False))
        self.assertEqual(len(sch["next"]), 5)
        self.assertEqual([t["ms"] % 60000 for t in sch["next"]], [0] * 5)
        self.assertEqual(sch["next"][1]["ms"] - sch["next"][0]["ms"], 60000)
        st, o = s.json("GET", "/api/workflows/bad")
        self.assertFalse(o["valid"])
        self.assertIn("invalid schedule", o["errors"][0]["message"])
        self.assertEqual((o["errors"][0]["line"], o["errors"][0]["column"]), (2, 12))
        deadline = time.monotonic() + TIMEOUT
        runs = []
        while time.monotonic() < deadline:
            st, o = s.json("GET", "/api/runs?workflow=tick&status=completed")
            runs = o["runs"]
            if len(runs) >= 3:
                break
            time.sleep(0.5)
        self.assertGreaterEqual(len(runs), 3, s.errors())
        # long: one run at a time; the times due meanwhile are skipped
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline and "overlap: skip" not in s.errors():
            time.sleep(0.5)
        self.assertIn("schedule of long: the run due at", s.errors())
        st, o = s.json("GET", "/api/runs?workflow=long&status=running")
        self.assertLessEqual(len(o["runs"]), 1)
        st, data, _ = s.request("GET", "/metrics")
        self.assertIn(b'dagrun_schedule_lag_seconds{workflow="tick"}', data)
        for r in s.json("GET", "/api/runs?workflow=long&status=running")[1]["runs"]:
            s.json("POST", "/api/runs/%s/cancel" % r["id"])

    def test_validate_checks_the_schedule_keys(self):
        bad = os.path.join(self.root, "bad.yaml")
        with open(bad, "w") as f:
            f.write('name: bad\ntimezone: Mars/Base\noverlap: sometimes\ncatchup: 3\n'
                    'tasks:\n  - id: t\n    command: "true"\n')
        r = subprocess.run([DAGRUN, "validate", bad], capture_output=True, text=True,
                           timeout=TIMEOUT)
        self.assertEqual(r.returncode, 2)
        for what in ("bad.yaml:2:1: error: 'timezone' needs 'schedule'",
                     "bad.yaml:2:11: error: unknown time zone 'Mars/Base'",
                     "bad.yaml:3:10: error: invalid 'overlap' value 'sometimes'",
                     "bad.yaml:4:1: error: 'catchup' needs 'schedule'"):
            self.assertIn(what, r.stderr)
        good = os.path.join(self.root, "good.yaml")
        with open(good, "w") as f:
            f.write('name: good\nschedule: "0 9 * * mon-fri"\ntimezone: America/New_York\n'
                    'overlap: queue\ncatchup: true\ntasks:\n  - id: t\n    command: "true"\n')
        r = subprocess.run([DAGRUN, "validate", good], capture_output=True, text=True,
                           timeout=TIMEOUT)
        self.assertEqual(r.returncode, 0, r.stderr)
        # a run ignores the schedule keys
        r = subprocess.run([DAGRUN, "run", "--no-state", "-q", good], capture_output=True,
                           text=True, timeout=TIMEOUT)
        self.assertEqual(r.returncode, 0, r.stderr)

    # ---- security ------------------------------------------------------

    def test_listening_beyond_loopback_needs_a_token(self):
        r = subprocess.run([DAGRUN, "serve", "--listen", "0.0.0.0:0", "--dir", self.root,
                            "--state", os.path.join(self.root, "st")],
                           capture_output=True, text=True, timeout=TIMEOUT)
        self.assertEqual(r.returncode, 2)
        self.assertIn("--token-file", r.stderr)
        tok = os.path.join(self.root, "token")
        with open(tok, "w") as f:
            f.write("0123456789abcdef0123\n")
        os.chmod(tok, 0o644)
        r = subprocess.run([DAGRUN, "serve", "--listen", "127.0.0.1:0", "--token-file", tok,
                            "--dir", self.root], capture_output=True, text=True,
                           timeout=TIMEOUT)
        self.assertEqual(r.returncode, 2)
        self.assertIn("chmod 600", r.stderr)

    def test_token_required_on_every_endpoint_but_metrics(self):
        tok = os.path.join(self.root, "token")
        with open(tok, "w") as f:
            f.write("0123456789abcdef0123\n")
        os.chmod(tok, 0o600)
        s = self.serve("--token-file", tok)
        for m, path in (("GET", "/api/workflows"), ("GET", "/api/runs"),
                        ("POST", "/api/workflows/hello/runs"), ("GET", "/api/events"),
                        ("GET", "/api/runs/last")):
            st, data, h = s.request(m, path, body={} if m == "POST" else None)
            self.assertEqual(st, 401, path)
            st, data, h = s.request(m, path, headers={"Authorization": "Bearer wrong-token-xyz"},
                                    body={} if m == "POST" else None)
            self.assertEqual(st, 401, path)
        good = {"Authorization": "Bearer 0123456789abcdef0123"}
        st, o = s.json("GET", "/api/workflows", headers=good)
        self.assertEqual(st, 200)
        st, data, h = s.request("GET", "/metrics")
        self.assertEqual(st, 200)
        self.assertIsNone(h.get("Set-Cookie"))

    def test_path_traversal_reaches_nothing(self):
        outside = os.path.join(self.root, "outside.yaml")
        with open(outside, "w") as f:
            f.write(HELLO.replace("hello", "outside"))
        s = self.serve()
        for path in ("/api/workflows/..%2Foutside", "/api/workflows/../outside.yaml",
                     "/api/workflows/%2e%2e%2foutside", "/api/workflows/..",
                     "/api/workflows/outside", "/api/runs/..%2F..%2Fstate.db",
                     "/api/runs/../../etc/passwd", "/api/workflows/hello.yaml"):
            st, data, _ = s.request("GET", path)
            self.assertEqual(st, 404, path)
            st, data, _ = s.request("POST", path + "/runs", body={})
            self.assertIn(st, (404,), path)
        self.assertNotIn("outside", s.errors())

    def test_oversized_body_refused(self):
        s = self.serve()
        big = b'{"variables": {"who": "' + b"x" * (70 << 10) + b'"}}'
        st, data, _ = s.request("POST", "/api/workflows/hello/runs", raw=big)
        self.assertEqual(st, 413)
        st, o = s.json("GET", "/api/runs")
        self.assertEqual(o["runs"], [])


if __name__ == "__main__":
    unittest.main(verbosity=2)
