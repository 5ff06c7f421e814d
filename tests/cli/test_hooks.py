#!/usr/bin/env python3
"""End-to-end tests of incoming webhooks (`POST /hooks/NAME`, README
"Incoming webhooks"), of cancel through the API (recorded `cancelled`) and
of the dagrun_ready_tasks gauge: a real `dagrun serve` on loopback (the
fixture of test_serve.py), real `dagrun run` children, real HTTP.

Signatures are made here with Python's hmac, and once with the openssl
one-liner the README shows, so that the documented recipe is tested too.
Margins are generous (a loaded 2-core machine); speed is never asserted.
"""
import glob
import hashlib
import hmac
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import unittest

from test_serve import DAGRUN, TIMEOUT, Server, pid_alive, stop_servers

HOOK_KEY = "hook-Secret-4b7d9e1f2a"

HOOKED = """\
name: hooked
trigger:
  secret: "{{ secrets.HOOK_KEY }}"
tasks:
  - id: show
    command: echo "x={{ trigger.body.x }} n={{ trigger.body.n }}"
"""

# a hooked run that lasts (to look at its processes' command lines)
HOOKED_SLOW = """\
name: hooked_slow
trigger: { secret: "{{ secrets.HOOK_KEY }}" }
tasks:
  - id: wait
    command: sleep 120
"""

UNHOOKED = """\
name: unhooked
tasks:
  - id: a
    command: echo a
"""

# three independent tasks, one at a time: two wait for a slot
QUEUE = """\
name: queue
maxParallel: 1
tasks:
  - id: q1
    command: sleep 4
  - id: q2
    command: sleep 4
  - id: q3
    command: sleep 4
"""

SLOW = """\
name: slow
tasks:
  - id: wait
    command: sleep 120
  - id: after
    dependencies: [wait]
    command: echo after
"""

# a hooked workflow whose secret the server does not know
NOKEY = """\
name: nokey
trigger:
  secret: "{{ secrets.NOT_SET_ANYWHERE_XYZ }}"
tasks:
  - id: a
    command: echo a
"""


def sign(body, t=None, key=HOOK_KEY):
    t = int(time.time()) if t is None else t
    mac = hmac.new(key.encode(), b"%d." % t + body, hashlib.sha256).hexdigest()
    return "t=%d,v1=%s" % (t, mac)


class HooksTest(unittest.TestCase):
    def setUp(self):
        self.root = tempfile.mkdtemp(prefix="dagrun-hooks-")
        wf = os.path.join(self.root, "wf")
        os.mkdir(wf)
        for name, text in (("hooked", HOOKED), ("hooked_slow", HOOKED_SLOW),
                           ("unhooked", UNHOOKED), ("queue", QUEUE), ("slow", SLOW),
                           ("nokey", NOKEY)):
            with open(os.path.join(wf, name + ".yaml"), "w") as f:
                f.write(text)
        self.secrets = os.path.join(self.root, "secrets.env")
        with open(self.secrets, "w") as f:
            f.write("HOOK_KEY=%s\n" % HOOK_KEY)
        os.chmod(self.secrets, 0o600)
        self.servers = []
        self.answers = []   # every response body, checked for the secret

    def tearDown(self):
        for log in stop_servers(self, self.servers, headers=self.auth, wait=True):
            # the secret never reaches the server's log
            self.assertNotIn(HOOK_KEY, log)
            self.assertNotIn(HOOK_KEY[:10], log)
        for data in self.answers:
            self.assertNotIn(HOOK_KEY.encode(), data)
            self.assertNotIn(HOOK_KEY[:10].encode(), data)
        shutil.rmtree(self.root, ignore_errors=True)

    def serve(self, *args, **kw):
        s = Server(self.root, "--secrets-file", self.secrets, *args, **kw)
        s.token = None
        self.servers.append(s)
        return s

    def auth(self, s):
        return {"Authorization": "Bearer " + s.token} if s.token else {}

    def hook(self, s, name, body, sig=None, headers=None):
        h = {"Content-Type": "application/json"}
        if sig is not False:
            h["X-Dagrun-Signature"] = sig if sig is not None else sign(body)
        h.update(headers or {})
        st, data, _ = s.request("POST", "/hooks/" + name, raw=body, headers=h)
        self.answers.append(data)
        return st, json.loads(data) if data else None

    def get(self, s, path):
        st, data, _ = s.request("GET", path, headers=self.auth(s))
        self.answers.append(data)
        return st, data

    def owner_once_running(self, s, rid):
        """The pid of the dagrun driving run rid, once its first task runs."""
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            st, data = self.get(s, "/api/runs/" + rid)
            o = json.loads(data)
            if o["tasks"] and o["tasks"][0]["status"] == "running":
                return o["run"]["owner"]["pid"]
            time.sleep(0.2)
        self.fail("run %s: its first task never ran: %s" % (rid, o))

    def runs(self, s):
        st, data = self.get(s, "/api/runs")
        return json.loads(data)["runs"]

    # ---- hooks -----------------------------------------------------------

    def test_signed_hook_starts_a_run_that_reads_trigger_body(self):
        s = self.serve()
        body = json.dumps({"x": "hello-from-hook", "n": 42}).encode()
        st, o = self.hook(s, "hooked", body)
        self.assertEqual(st, 202, o)
        self.assertEqual(list(o), ["id"])
        rid = o["id"]
        o = s.wait_run(rid)
        self.assertEqual(o["run"]["status"], "completed", o)
        st, data = self.get(s, "/api/runs/%s/tasks/show/log" % rid)
        self.assertEqual(data, b"x=hello-from-hook n=42\n")
        self.assertIn("hook hooked: started run %s" % rid, s.errors())
        # the body is recorded with the run: export and rerun see it
        r = subprocess.run([DAGRUN, "export", "--state", s.state, rid], capture_output=True,
                           text=True, timeout=TIMEOUT)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout)["trigger"], {"body": {"x": "hello-from-hook",
                                                                     "n": 42}})
        st, o = s.json("POST", "/api/runs/%s/rerun" % rid, {"only": ["show"]})
        self.assertEqual(st, 201, o)
        o = s.wait_run(rid, ("completed", "failed"))
        self.assertEqual(o["run"]["runAttempt"], 2)
        st, data = self.get(s, "/api/runs/%s/tasks/show/log" % rid)
        self.assertEqual(data, b"x=hello-from-hook n=42\n")
        # the body's file is gone once the run is recorded
        self.assertEqual(glob.glob(os.path.join(s.state, "serve", "triggers", "*")), [])

    def test_readme_openssl_recipe_signs_a_valid_hook(self):
        s = self.serve()
        body = '{"x": "from-openssl", "n": 1}'
        # README "Incoming webhooks": the shell recipe, as written there
        script = ('t=$(date +%s); '
                  'sig=$(printf \'%s.%s\' "$t" "$BODY" | openssl dgst -sha256 -hmac "$KEY" '
                  '| sed \'s/^.* //\'); '
                  'printf \'t=%s,v1=%s\' "$t" "$sig"')
        r = subprocess.run(["sh", "-c", script], capture_output=True, text=True,
                           env=dict(os.environ, BODY=body, KEY=HOOK_KEY), timeout=TIMEOUT)
        self.assertEqual(r.returncode, 0, r.stderr)
        st, o = self.hook(s, "hooked", body.encode(), sig=r.stdout.strip())
        self.assertEqual(st, 202, o)
        s.wait_run(o["id"])
        st, data = self.get(s, "/api/runs/%s/tasks/show/log" % o["id"])
        self.assertEqual(data, b"x=from-openssl n=1\n")

    def test_bad_missing_and_malformed_signatures_are_401(self):
        s = self.serve()
        body = b'{"x": "no"}'
        good = sign(body)
        t, v1 = good.split(",")
        bad_mac = v1[:-1] + ("0" if v1[-1] != "0" else "1")
        for sig in (t + "," + bad_mac,                  # one hex digit off
                    sign(body, key="another-key-entirely"),
                    sign(body + b" "),                  # signed another body
                    v1,                                 # no t
                    t,                                  # no v1
                    "t=abc," + v1, t + ",v1=zz", "garbage", ""):
            st, o = self.hook(s, "hooked", body, sig=sig)
            self.assertEqual(st, 401, (sig, o))
        st, o = self.hook(s, "hooked", body, sig=False)
        self.assertEqual(st, 401, o)
        self.assertIn("X-Dagrun-Signature", o["error"])
        self.assertEqual(self.runs(s), [])
        self.assertIn("bad signature", s.errors())

    def test_stale_and_future_timestamps_are_401_stale(self):
        s = self.serve()
        body = b'{"x": "old"}'
        now = int(time.time())
        for t in (now - 301 - 30, now + 301 + 30, now - 86400):
            st, o = self.hook(s, "hooked", body, sig=sign(body, t=t))
            self.assertEqual(st, 401, o)
            self.assertIn("stale", o["error"])
        # within the tolerance, either way: accepted
        st, o = self.hook(s, "hooked", body, sig=sign(body, t=now - 200))
        self.assertEqual(st, 202, o)
        s.wait_run(o["id"])
        self.assertEqual(len(self.runs(s)), 1)

    def test_a_replayed_delivery_is_409_and_starts_nothing(self):
        s = self.serve()
        body = b'{"x": "once"}'
        now = int(time.time())
        sig = sign(body, t=now - 5)
        st, o = self.hook(s, "hooked", body, sig=sig)
        self.assertEqual(st, 202, o)
        first = o["id"]
        # the same request again, at once and after its run ended: refused
        for _ in range(2):
            st, o = self.hook(s, "hooked", body, sig=sig)
            self.assertEqual(st, 409, o)
            self.assertIn("received before", o["error"])
            s.wait_run(first)
        self.assertIn("a replay", s.errors())
        self.assertEqual([r["id"] for r in self.runs(s)], [first])
        # another timestamp, or another body, is another delivery
        st, o = self.hook(s, "hooked", body, sig=sign(body, t=now - 4))
        self.assertEqual(st, 202, o)
        s.wait_run(o["id"])
        other = b'{"x": "twice"}'
        st, o = self.hook(s, "hooked", other, sig=sign(other, t=now - 5))
        self.assertEqual(st, 202, o)
        s.wait_run(o["id"])
        # the same delivery to another workflow is not a replay of this one
        st, o = self.hook(s, "hooked_slow", body, sig=sig)
        self.assertEqual(st, 202, o)
        self.assertEqual(len(self.runs(s)), 4)

    def test_oversized_hook_body_is_413_and_a_large_one_fits(self):
        s = self.serve()
        big = b'{"x": "' + b"y" * (1 << 20) + b'"}'
        st, o = self.hook(s, "hooked", big)
        self.assertEqual(st, 413, o)
        # over the API's 64 KiB but under the hooks' 1 MiB: a hook takes it
        mid = json.dumps({"x": "big", "n": 7, "pad": "z" * (200 << 10)}).encode()
        st, o = self.hook(s, "hooked", mid)
        self.assertEqual(st, 202, o)
        rid = o["id"]
        o = s.wait_run(rid)
        self.assertEqual(o["run"]["status"], "completed", o)
        st, data = self.get(s, "/api/runs/%s/tasks/show/log" % rid)
        self.assertEqual(data, b"x=big n=7\n")

    def test_non_json_body_is_400(self):
        s = self.serve()
        for body in (b"{not json", b"", b'{"a": 1, "a": 2}'):
            st, o = self.hook(s, "hooked", body)
            self.assertEqual(st, 400, (body, o))
        self.assertEqual(self.runs(s), [])

    def test_unknown_unhooked_and_invalid_workflows_are_the_same_404(self):
        with open(os.path.join(self.root, "wf", "broken.yaml"), "w") as f:
            f.write("name: broken\ntrigger:\n  secret: \"{{ secrets.HOOK_KEY }}\"\n"
                    "tasks:\n  - id: x\n    comand: true\n")
        s = self.serve()
        body = b'{"x": 1}'
        errors = set()
        for name in ("nosuch", "unhooked", "broken", "..", "%2e%2e%2fwf%2fhooked"):
            st, o = self.hook(s, name, body)
            self.assertEqual(st, 404, (name, o))
            errors.add(o["error"].replace(name, "NAME"))
        # an unauthenticated caller cannot tell which workflows exist
        self.assertEqual(len(errors - {"not found"}), 1, errors)
        log = s.errors()
        self.assertIn("hook unhooked from 127.0.0.1", log)
        self.assertIn("has no `trigger:`", log)
        # other methods are no hook
        st, data, _ = s.request("GET", "/hooks/hooked")
        self.assertEqual(st, 404)
        self.assertEqual(self.runs(s), [])

    def test_trigger_bodies_left_behind_are_removed_at_start(self):
        trig = os.path.join(self.root, "state", "serve", "triggers")
        os.makedirs(trig)
        old, new = os.path.join(trig, "old.json"), os.path.join(trig, "new.json")
        for p in (old, new):
            with open(p, "w") as f:
                f.write('{"x": 1}')
        os.utime(old, (time.time() - 3600, time.time() - 3600))
        s = self.serve()
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline and os.path.exists(old):
            time.sleep(0.1)
        self.assertFalse(os.path.exists(old))
        self.assertTrue(os.path.exists(new))   # a child may be about to read it
        self.assertIn("removed 1 trigger body", s.errors())

    def test_hook_whose_secret_is_unknown_is_refused_and_logged(self):
        s = self.serve()
        st, o = self.hook(s, "nokey", b'{"x": 1}', sig=sign(b'{"x": 1}'))
        self.assertEqual(st, 503, o)
        self.assertIn("NOT_SET_ANYWHERE_XYZ", s.errors())
        self.assertEqual(self.runs(s), [])

    def test_secret_is_looked_up_as_the_runs_do_environment_first(self):
        # the runs read secrets.X from their environment first, then the
        # file: the hooks' check uses the same value
        s = self.serve(env={"HOOK_KEY": "env-Value-of-the-key-77"})
        body = b'{"x": "env", "n": 2}'
        st, o = self.hook(s, "hooked", body)          # signed with the file's
        self.assertEqual(st, 401, o)
        st, o = self.hook(s, "hooked", body, sig=sign(body, key="env-Value-of-the-key-77"))
        self.assertEqual(st, 202, o)
        s.wait_run(o["id"])
        self.assertNotIn("env-Value-of-the-key-77", s.errors())

    def test_trigger_secret_must_name_a_secret_at_its_line(self):
        path = os.path.join(self.root, "literal.yaml")
        with open(path, "w") as f:
            f.write("name: literal\ntrigger:\n  secret: plain-text-secret\n"
                    "tasks:\n  - id: a\n    command: echo a\n")
        r = subprocess.run([DAGRUN, "validate", path], capture_output=True, text=True,
                           timeout=TIMEOUT)
        self.assertEqual(r.returncode, 2)
        self.assertIn("literal.yaml:3:11: error: trigger secret", r.stderr)
        with open(path, "w") as f:
            f.write("name: literal\ntrigger: {}\ntasks:\n  - id: a\n    command: echo a\n")
        r = subprocess.run([DAGRUN, "validate", path], capture_output=True, text=True,
                           timeout=TIMEOUT)
        self.assertEqual(r.returncode, 2)
        self.assertIn("literal.yaml:2:10: error: missing required key 'secret'", r.stderr)
        # trigger is a root the validator knows; a run without a hook has
        # trigger.body null
        with open(path, "w") as f:
            f.write("name: literal\ntasks:\n  - id: a\n"
                    "    command: echo \"[{{ trigger.body == nil }}]\"\n")
        r = subprocess.run([DAGRUN, "run", "--no-state", "-v", path], capture_output=True,
                           text=True, timeout=TIMEOUT)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("[true]", r.stderr)

    def test_hooks_need_no_token_but_the_api_does(self):
        tok = os.path.join(self.root, "token")
        with open(tok, "w") as f:
            f.write("0123456789abcdef0123\n")
        os.chmod(tok, 0o600)
        s = self.serve("--token-file", tok)
        st, data, _ = s.request("GET", "/api/runs")
        self.assertEqual(st, 401)
        st, o = self.hook(s, "hooked", b'{"x": "tokenless", "n": 0}')
        self.assertEqual(st, 202, o)
        # ... and a token is no signature
        st, o2 = self.hook(s, "hooked", b'{"x": 1}', sig=False,
                           headers={"Authorization": "Bearer 0123456789abcdef0123"})
        self.assertEqual(st, 401, o2)
        s.token = "0123456789abcdef0123"
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            st, data = self.get(s, "/api/runs")
            runs = json.loads(data)["runs"]
            if runs and runs[0]["status"] == "completed":
                break
            time.sleep(0.2)
        self.assertEqual([r["status"] for r in runs], ["completed"])

    def test_body_never_on_a_command_line_and_secret_nowhere(self):
        s = self.serve()
        marker = "body-marker-7c1e"
        st, o = self.hook(s, "hooked_slow", json.dumps({"m": marker}).encode())
        self.assertEqual(st, 202, o)
        rid = o["id"]
        pid = self.owner_once_running(s, rid)
        # no process of ours shows the body or the secret in its arguments
        for p in glob.glob("/proc/[0-9]*/cmdline"):
            try:
                with open(p, "rb") as f:
                    cmd = f.read()
            except OSError:
                continue
            self.assertNotIn(marker.encode(), cmd, p)
            self.assertNotIn(HOOK_KEY.encode(), cmd, p)
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            self.assertIn(b"--trigger-file", f.read())
        st, data, _ = s.request("POST", "/api/runs/%s/cancel" % rid)
        self.assertEqual(st, 202)
        s.wait_run(rid, ("cancelled",))
        # nothing the server or its runs wrote holds the secret
        for path in glob.glob(os.path.join(self.root, "**", "*"), recursive=True):
            if os.path.isfile(path) and not path.endswith("secrets.env"):
                with open(path, "rb") as f:
                    self.assertNotIn(HOOK_KEY.encode(), f.read(), path)
        for path in ("/api/workflows", "/api/workflows/hooked", "/api/runs", "/metrics",
                     "/api/runs/" + rid):
            st, data = self.get(s, path)
            self.assertEqual(st, 200, path)
        st, data = self.get(s, "/api/workflows/hooked_slow")
        self.assertEqual(json.loads(data)["hook"], {"path": "/hooks/hooked_slow",
                                                    "secret": "HOOK_KEY"})
        st, data = self.get(s, "/api/workflows/unhooked")
        self.assertIsNone(json.loads(data)["hook"])

    # ---- cancel ----------------------------------------------------------

    def test_cancel_records_cancelled_in_the_api_and_the_cli(self):
        s = self.serve()
        st, o = s.json("POST", "/api/workflows/slow/runs", {})
        self.assertEqual(st, 201, o)
        rid = o["id"]
        pid = self.owner_once_running(s, rid)
        st, o = s.json("POST", "/api/runs/%s/cancel" % rid)
        self.assertEqual(st, 202, o)
        o = s.wait_run(rid, ("cancelled", "failed", "interrupted", "completed"))
        self.assertEqual(o["run"]["status"], "cancelled")
        t = {x["id"]: x["status"] for x in o["tasks"]}
        self.assertEqual(t, {"wait": "cancelled", "after": "pending"})
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline and pid_alive(pid):
            time.sleep(0.2)
        self.assertFalse(pid_alive(pid))
        # the CLI says the same
        r = subprocess.run([DAGRUN, "runs", "--state", s.state], capture_output=True,
                           text=True, timeout=TIMEOUT)
        self.assertRegex(r.stdout, r"%s\s+slow\s+cancelled" % re.escape(rid))
        r = subprocess.run([DAGRUN, "show", "--state", s.state, rid], capture_output=True,
                           text=True, timeout=TIMEOUT)
        self.assertRegex(r.stdout, r"status\s+cancelled")
        # a cancelled run is over: not resumed, but rerun
        st, o = s.json("POST", "/api/runs/%s/resume" % rid)
        self.assertEqual(st, 409, o)
        st, o = s.json("POST", "/api/runs/%s/cancel" % rid)
        self.assertEqual(st, 409, o)
        self.assertIn("cancel: SIGUSR1 to pid %d" % pid, s.errors())

    def test_sigusr1_cancels_a_cli_run_and_sigterm_interrupts_it(self):
        state = os.path.join(self.root, "clistate")
        path = os.path.join(self.root, "wf", "slow.yaml")
        got = {}
        for sig, name in ((signal.SIGUSR1, "cancelled"), (signal.SIGTERM, "interrupted")):
            p = subprocess.Popen([DAGRUN, "run", "--state", state, "--log-format", "json",
                                  path], stderr=subprocess.PIPE, text=True)
            try:
                # the run's first task has started: its dagrun handles signals
                for line in p.stderr:
                    if '"attempt.start"' in line:
                        break
                p.send_signal(sig)
                rest = p.stderr.read()
                rc = p.wait(timeout=TIMEOUT)
            finally:
                if p.poll() is None:
                    p.kill()
                    p.wait()
                p.stderr.close()
            end = json.loads(rest.strip().splitlines()[-1])
            self.assertEqual(end["event"], "run.end", rest)
            self.assertEqual(end["signal"], int(sig), rest)
            got[name] = rc
            r = subprocess.run([DAGRUN, "runs", "--state", state, "--format", "json"],
                               capture_output=True, text=True, timeout=TIMEOUT)
            self.assertEqual(json.loads(r.stdout)["runs"][0]["status"], name, r.stdout)
        self.assertEqual(got, {"cancelled": 138, "interrupted": 143})
        # the console says which
        p = subprocess.Popen([DAGRUN, "run", "--state", state, path],
                             stderr=subprocess.PIPE, text=True)
        try:
            for line in p.stderr:
                if "started" in line:
                    break
            p.send_signal(signal.SIGUSR1)
            rest = p.stderr.read()
            p.wait(timeout=TIMEOUT)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
            p.stderr.close()
        self.assertIn("cancelled: 0 completed", rest)
        # a cancelled run is over: resume refuses it
        r = subprocess.run([DAGRUN, "resume", "--state", state, "last"], capture_output=True,
                           text=True, timeout=TIMEOUT)
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("already ended (cancelled)", r.stderr)

    # ---- metrics ---------------------------------------------------------

    def test_gauges_add_up_over_the_running_runs_of_a_workflow(self):
        s = self.serve()
        rids = []
        for _ in range(2):
            st, o = s.json("POST", "/api/workflows/queue/runs", {})
            self.assertEqual(st, 201, o)
            rids.append(o["id"])
        pat = re.compile(r'^dagrun_(running|ready)_tasks\{workflow="queue"\} (\d+)$', re.M)
        seen = set()
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline and (2, 4) not in seen:
            st, data = self.get(s, "/metrics")
            g = dict(pat.findall(data.decode()))
            seen.add((int(g.get("running", -1)), int(g.get("ready", -1))))
            time.sleep(0.1)
        # both runs at once: one task running and two waiting in each
        self.assertIn((2, 4), seen)
        for rid in rids:
            s.wait_run(rid)

    def test_ready_tasks_gauge_counts_tasks_waiting_for_a_slot(self):
        s = self.serve()
        st, o = s.json("POST", "/api/workflows/queue/runs", {})
        self.assertEqual(st, 201, o)
        rid = o["id"]
        seen = []
        gauge = re.compile(r'^dagrun_ready_tasks\{workflow="queue"\} (\d+)$', re.M)
        running = re.compile(r'^dagrun_running_tasks\{workflow="queue"\} (\d+)$', re.M)
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            st, data = self.get(s, "/metrics")
            m, r = gauge.search(data.decode()), running.search(data.decode())
            if m and r:
                seen.append((int(r.group(1)), int(m.group(1))))
            st, o = s.json("GET", "/api/runs/" + rid)
            if o["run"]["status"] != "running":
                break
            time.sleep(0.2)
        self.assertEqual(o["run"]["status"], "completed", o)
        # at some point one ran while two waited for the one slot
        self.assertIn((1, 2), seen)
        # never more than the slot allows, never more than the run's three
        # (all three may be seen ready in the instant before one starts)
        self.assertTrue(all(rn <= 1 and rn + rd <= 3 for rn, rd in seen), seen)
        # once the run is over, nothing is ready
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            st, data = self.get(s, "/metrics")
            m = gauge.search(data.decode())
            if m and m.group(1) == "0":
                break
            time.sleep(0.2)
        self.assertEqual(m.group(1), "0")


if __name__ == "__main__":
    unittest.main(verbosity=2)
