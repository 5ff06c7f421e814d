#!/usr/bin/env python3
"""The web UI of `dagrun serve` (README "The web UI") in a real browser:
a real server on loopback, Debian's headless Chromium driven over its
DevTools pipe (--remote-debugging-pipe: JSON messages on fds 3 and 4, no
port, no extra package), in real time (a run's events come as they come).

- A run started from the page (#/workflow/NAME?start=1 clicks the page's
  own Start button) turns completed task by task through the event stream:
  every task of the page's live list is `completed` with data-live="true"
  (set only by an SSE `task` event, never by a fetch), the graph's nodes
  are coloured `st-completed`, the log panel followed the lines, the
  report's timeline drew every task; then a screenshot (a PNG of some
  size).
- With --token-file the page asks for the token when the API answers 401,
  then sends it as `Authorization: Bearer` to the API and to the event
  stream (read with fetch(): no token in any URL).
- The UI's files are served with a Content-Security-Policy and no inline
  script; text from workflows and logs is shown as text, never as markup.

Skips, saying so, only when no chromium is installed. Margins are
generous (a loaded 2-core machine); speed is never asserted.
"""
import base64
import fcntl
import json
import os
import re
import select
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_serve import Server, stop_servers  # noqa: E402

TIMEOUT = 90
TOKEN = "ui-token-7c1d9e0b5a"

HELLO = """\
name: hello
description: "says <i id=injected-desc>hello</i> & waits"
tasks:
  - id: a
    command: sleep 2; echo "hello from a"; echo "<b id=injected-log>bold?</b>"
  - id: b
    dependencies: [a]
    command: sleep 1; echo b-done; echo to-stderr >&2
  - id: c
    dependencies: [a]
    command: sleep 1; echo c-done
  - id: d
    dependencies: [b, c]
    command: echo d-done
"""
TASKS = ["a", "b", "c", "d"]

FLAKY = """\
name: flaky
tasks:
  - id: first
    command: echo first
  - id: gated
    dependencies: [first]
    command: "test -f '%s' && echo through"
"""

SLOW = """\
name: slow
tasks:
  - id: wait
    command: sleep 120
"""


def chromium():
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    return None


class Browser:
    """Headless Chromium on a DevTools pipe: one page, commands in order."""

    def __init__(self, chrome, tmpdir):
        self.profile = tempfile.mkdtemp(prefix="chromium-", dir=tmpdir)
        # Chromium reads commands on fd 3 and writes answers on fd 4: the
        # child's ends are first moved above them, so that neither dup2
        # below overwrites the other.
        def high(fd):
            h = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
            os.close(fd)
            return h
        to_chrome_r, self.to_chrome = map(high, os.pipe())
        self.from_chrome, from_chrome_w = map(high, os.pipe())

        def fds():
            os.dup2(to_chrome_r, 3)
            os.dup2(from_chrome_w, 4)
        self.p = subprocess.Popen(
            [chrome, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
             "--no-first-run", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", "--window-size=1280,1000", "--remote-debugging-pipe",
             "--user-data-dir=" + self.profile, "about:blank"],
            preexec_fn=fds, pass_fds=(3, 4),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            env=dict(os.environ, HOME=self.profile))
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self.buf = b""
        self.next_id = 0
        self.session = None
        self.console = []
        targets = self.call("Target.getTargets")["targetInfos"]
        page = next((t for t in targets if t["type"] == "page"), None)
        tid = page["targetId"] if page else self.call("Target.createTarget",
                                                      url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=tid,
                                 flatten=True)["sessionId"]
        self.call("Page.enable")
        self.call("Runtime.enable")
        # what the page's Content-Security-Policy blocked, if anything
        self.call("Page.addScriptToEvaluateOnNewDocument", source=(
            "window.__csp = []; document.addEventListener('securitypolicyviolation', "
            "function (e) { window.__csp.push(e.violatedDirective + ' ' + e.blockedURI); });"))

    def _read_msg(self, deadline):
        while b"\0" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("Chromium did not answer in time")
            r, _, _ = select.select([self.from_chrome], [], [], left)
            if not r:
                continue
            chunk = os.read(self.from_chrome, 1 << 20)
            if not chunk:
                raise AssertionError("Chromium closed its pipe (exit %s)" % self.p.poll())
            self.buf += chunk
        msg, self.buf = self.buf.split(b"\0", 1)
        return json.loads(msg)

    def call(self, method, timeout=TIMEOUT, **params):
        self.next_id += 1
        mid = self.next_id
        msg = {"id": mid, "method": method, "params": params}
        if self.session and not method.startswith(("Target.", "Browser.")):
            msg["sessionId"] = self.session
        os.write(self.to_chrome, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            m = self._read_msg(deadline)
            if m.get("method") == "Runtime.consoleAPICalled":
                self.console.append(" ".join(str(a.get("value", a.get("description", "")))
                                             for a in m["params"]["args"]))
            elif m.get("method") == "Runtime.exceptionThrown":
                self.console.append("exception: %s" % m["params"]["exceptionDetails"])
            if m.get("id") == mid:
                if "error" in m:
                    raise AssertionError("%s: %s" % (method, m["error"]))
                return m.get("result", {})

    def eval(self, expr):
        r = self.call("Runtime.evaluate", expression=expr, returnByValue=True)
        if "exceptionDetails" in r:
            raise AssertionError("%s: %s" % (expr, r["exceptionDetails"]))
        return r["result"].get("value")

    def goto(self, url):
        """Opens url and waits for the UI's script to have run."""
        self.call("Page.navigate", url=url)
        # (the fragment may change at once: #/workflow/NAME?start=1 does)
        self.wait("location.href.split('#')[0] === %s && document.body && "
                  "document.body.getAttribute('data-ui') === 'ready'" %
                  json.dumps(url.split("#")[0]), "the page " + url)

    def wait(self, expr, what, timeout=TIMEOUT):
        """Evaluates expr until it is true (an exception: not yet)."""
        deadline = time.monotonic() + timeout
        err = None
        while time.monotonic() < deadline:
            try:
                v = self.eval(expr)
                if v:
                    return v
            except AssertionError as e:
                err = e
            time.sleep(0.25)
        raise AssertionError("the page never showed %s; last error: %s; console: %s; page: %s" % (
            what, err, self.console[-10:],
            (self.eval("document.body ? document.body.innerText : ''") or "")[:2000]))

    def screenshot(self, path):
        data = self.call("Page.captureScreenshot", format="png")["data"]
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))

    def dom(self):
        return self.eval("document.documentElement.outerHTML")

    def close(self):
        try:
            os.write(self.to_chrome, json.dumps({"id": 0, "method": "Browser.close"}).encode()
                     + b"\0")
            self.p.wait(timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            self.p.kill()
            self.p.wait(timeout=30)
        os.close(self.to_chrome)
        os.close(self.from_chrome)


# What a page shows of its tasks: [task, status, live] of the live list.
LIVE = """JSON.stringify(Array.from(document.querySelectorAll('#live-tasks .live-task')).map(
  function (e) { return [e.getAttribute('data-task'), e.getAttribute('data-status'),
                         e.getAttribute('data-live') === 'true']; }))"""
ALL_DONE = """(function () {
  var v = Array.from(document.querySelectorAll('#live-tasks .live-task'));
  return v.length === %d && v.every(function (e) {
    return e.getAttribute('data-status') === 'completed' && e.getAttribute('data-live') === 'true';
  }) && (document.getElementById('run-status-live') || {}).textContent === 'completed';
})()""" % len(TASKS)


class ServeUiTest(unittest.TestCase):
    def setUp(self):
        self.chrome = chromium()
        if not self.chrome:
            self.skipTest("chromium is not installed (Debian: apt-get install chromium; "
                          "build.sh installs it): the web UI is not checked in a browser")
        self.root = tempfile.mkdtemp(prefix="dagrun-serve-ui-")
        os.mkdir(os.path.join(self.root, "wf"))
        self.marker = os.path.join(self.root, "marker")
        for name, text in (("hello", HELLO), ("flaky", FLAKY % self.marker), ("slow", SLOW)):
            with open(os.path.join(self.root, "wf", name + ".yaml"), "w") as f:
                f.write(text)
        self.servers, self.browsers = [], []

    def tearDown(self):
        for b in self.browsers:
            b.close()
        stop_servers(self, self.servers)
        shutil.rmtree(self.root, ignore_errors=True)

    def serve(self, *args):
        s = Server(self.root, *args)
        self.servers.append(s)
        return s

    def browser(self):
        b = Browser(self.chrome, self.root)
        self.browsers.append(b)
        return b

    def run_from_page(self, s, b):
        """Starts hello from its page; waits for every task to turn
        completed through the stream; returns the run id."""
        b.goto(s.url + "/#/workflow/hello?start=1")
        b.wait("/^#\\/run\\//.test(location.hash)", "the run's page after Start")
        b.wait(ALL_DONE, "every task completed through the event stream")
        return b.eval("decodeURIComponent(location.hash.split('/')[2])")

    def test_run_started_from_the_page_turns_completed_through_sse(self):
        s = self.serve()
        b = self.browser()
        b.goto(s.url + "/")
        b.wait("document.querySelector('tr.wf-row[data-workflow=\"hello\"] svg.spark') !== null",
               "the workflows list")
        rid = self.run_from_page(s, b)
        # the run the page started is the server's only run, completed
        st, o = s.json("GET", "/api/runs")
        self.assertEqual(st, 200)
        self.assertEqual([r["id"] for r in o["runs"]], [rid])
        self.assertEqual(o["runs"][0]["status"], "completed")
        # each task's status came by a `task` event (data-live), in order
        live = json.loads(b.eval(LIVE))
        self.assertEqual(live, [[t, "completed", True] for t in TASKS])
        # the graph: every node coloured completed by the page
        b.wait("document.querySelectorAll('#graph g.node.st-completed').length === %d" % len(TASKS),
               "the graph's nodes coloured completed")
        # the report's timeline drew each task, the logs followed
        b.wait("document.querySelectorAll('#r-timeline .tl-row').length === %d && "
               "document.querySelector('#r-timeline .tl-row[data-task=\"d\"] .badge')"
               ".textContent === 'completed'" % len(TASKS), "the timeline of the run")
        b.wait("Array.from(document.querySelectorAll('#logs .log-line')).some(function (e) {"
               " return e.textContent.indexOf('hello from a') >= 0; })", "the log lines")
        b.wait("Array.from(document.querySelectorAll('#logs .log-line.stderr')).some("
               "function (e) { return e.textContent.indexOf('to-stderr') >= 0; })",
               "the stderr lines")
        # text, never markup: the log's and the description's tags are text
        self.assertIsNone(b.eval("document.getElementById('injected-log') && 1"))
        self.assertTrue(b.eval("document.getElementById('logs').textContent"
                               ".indexOf('<b id=injected-log>bold?</b>') >= 0"))
        # nothing was blocked by the policy, no error shown
        self.assertEqual(b.eval("window.__csp"), [])
        self.assertTrue(b.eval("document.getElementById('error').hidden"),
                        b.eval("document.getElementById('error').textContent"))
        png = os.path.join(self.root, "run.png")
        b.screenshot(png)
        with open(png, "rb") as f:
            data = f.read()
        self.assertTrue(data.startswith(b"\x89PNG\r\n\x1a\n"))
        self.assertGreater(len(data), 20000, "the screenshot is nearly empty")
        shutil.copy(png, os.path.join(os.environ.get("BUILDDIR", "build"),
                                      "serve_ui_run.png"))
        # the task page: attempts, the attempt's output, history
        b.goto(s.url + "/#/run/%s/task/a" % rid)
        b.wait("(document.getElementById('task-status') || {}).textContent === 'completed' && "
               "document.querySelectorAll('#attempts .attempt-row').length === 1",
               "the task page's attempts")
        b.wait("(document.querySelector('pre.log[data-attempt=\"1\"]') || {}).textContent"
               " === 'hello from a\\n<b id=injected-log>bold?</b>\\n'", "the attempt's output")
        b.wait("/p50 .*p95 /.test(document.getElementById('task-history').textContent)",
               "the task's p50 and p95")
        # the workflow list: last status and a sparkline bar per run
        b.goto(s.url + "/#/")
        b.wait("document.querySelectorAll('tr.wf-row[data-workflow=\"hello\"] svg.spark "
               "rect.st-completed').length === 1", "the sparkline of the run")
        self.assertIsNone(b.eval("document.getElementById('injected-desc') && 1"))
        self.assertIn("says <i id=injected-desc>hello</i> & waits",
                      b.eval("document.getElementById('workflows').textContent"))
        self.assertEqual(b.eval("window.__csp"), [])

    def test_rerun_failed_and_cancel_buttons(self):
        s = self.serve()
        b = self.browser()
        b.goto(s.url + "/#/workflow/flaky?start=1")
        b.wait("/^#\\/run\\//.test(location.hash)", "the run's page after Start")
        b.wait("(document.getElementById('run-status-live') || {}).textContent === 'failed' && "
               "document.querySelector('.live-task[data-task=\"gated\"][data-live=\"true\"]"
               "[data-status=\"failed\"]') !== null", "the task failed through the stream")
        self.assertFalse(b.eval("document.getElementById('rerun-failed').disabled"))
        self.assertTrue(b.eval("document.getElementById('cancel').disabled"))
        rid = b.eval("decodeURIComponent(location.hash.split('/')[2])")
        open(self.marker, "w").close()
        b.eval("document.getElementById('rerun-failed').click(); 1")
        b.wait("(document.getElementById('run-status-live') || {}).textContent === 'completed' && "
               "document.querySelector('.live-task[data-task=\"gated\"]')"
               ".getAttribute('data-status') === 'completed'", "the rerun completed")
        st, o = s.json("GET", "/api/runs/" + rid)
        self.assertEqual((o["run"]["status"], o["run"]["runAttempt"]), ("completed", 2))
        # cancel: a run of a task that sleeps, stopped from its page
        b.goto(s.url + "/#/workflow/slow?start=1")
        b.wait("/^#\\/run\\//.test(location.hash) && document.querySelector("
               "'.live-task[data-task=\"wait\"][data-status=\"running\"]') !== null && "
               "!document.getElementById('cancel').disabled", "the slow task running")
        b.eval("document.getElementById('cancel').click(); 1")
        b.wait("['interrupted', 'cancelled'].indexOf((document.getElementById("
               "'run-status-live') || {}).textContent) >= 0", "the run stopped")
        rid = b.eval("decodeURIComponent(location.hash.split('/')[2])")
        deadline = time.monotonic() + TIMEOUT
        while True:   # its dagrun exits once the run is recorded stopped
            st, o = s.json("GET", "/api/runs/" + rid)
            self.assertIn(o["run"]["status"], ("interrupted", "cancelled"))
            if not (o["run"]["owner"] and o["run"]["owner"]["alive"]):
                break
            self.assertLess(time.monotonic(), deadline, o["run"])
            time.sleep(0.2)
        self.assertEqual(b.eval("window.__csp"), [])

    def test_token_is_asked_for_and_sent_in_a_header(self):
        tf = os.path.join(self.root, "token")
        with open(tf, "w") as f:
            f.write(TOKEN + "\n")
        os.chmod(tf, 0o600)
        s = self.serve("--token-file", tf)
        # the API refuses without it; the UI's files need none
        st, _ = s.json("GET", "/api/workflows")
        self.assertEqual(st, 401)
        for path in ("/", "/ui/ui.js", "/ui/report.js", "/ui/ui.css", "/ui/report.css"):
            st, _, _ = s.request("GET", path)
            self.assertEqual(st, 200, path)
        b = self.browser()
        b.goto(s.url + "/")
        b.wait("document.getElementById('auth').hidden === false", "the token prompt")
        self.assertIsNone(b.eval("document.querySelector('tr.wf-row')"))
        # a wrong token: asked again
        b.eval("document.getElementById('auth-token').value = 'wrong';"
               "document.getElementById('auth-form').requestSubmit(); 1")
        b.wait("document.getElementById('auth').hidden === false && "
               "/refused/.test(document.getElementById('auth-msg').textContent)",
               "the prompt again after a wrong token")
        b.eval("document.getElementById('auth-token').value = %s;"
               "document.getElementById('auth-form').requestSubmit(); 1" % json.dumps(TOKEN))
        b.wait("document.querySelector('tr.wf-row[data-workflow=\"hello\"]') !== null",
               "the workflows once the token is given")
        self.run_from_page(s, b)
        log = s.errors()
        self.assertIn("SSE client", log)
        # the token is in no URL the server saw, nor in the page's address
        self.assertNotIn(TOKEN, log)
        self.assertNotIn(TOKEN, b.eval("location.href"))

    def test_ui_files_carry_a_csp_and_no_inline_script(self):
        s = self.serve()
        st, body, h = s.request("GET", "/")
        self.assertEqual(st, 200)
        self.assertTrue(h["Content-Type"].startswith("text/html"))
        csp = h["Content-Security-Policy"]
        self.assertIn("default-src 'none'", csp)
        self.assertIn("script-src 'self'", csp)
        self.assertNotIn("unsafe", csp)
        self.assertIn("frame-ancestors 'none'", csp)
        html = body.decode()
        scripts = re.findall(r"<script([^>]*)>(.*?)</script>", html, re.S)
        self.assertEqual(len(scripts), 2)
        for attrs, text in scripts:
            self.assertIn("src=", attrs)
            self.assertEqual(text.strip(), "")
        self.assertNotIn("http", re.sub(r"<!--.*?-->", "", html))   # nothing from elsewhere
        for path, ctype in (("/ui/ui.js", "text/javascript"), ("/ui/report.js", "text/javascript"),
                            ("/ui/ui.css", "text/css"), ("/index.html", "text/html")):
            st, _, h = s.request("GET", path)
            self.assertEqual(st, 200, path)
            self.assertTrue(h["Content-Type"].startswith(ctype), path)
            self.assertEqual(h["Content-Security-Policy"], csp, path)
        for path in ("/ui/", "/ui/nope.js", "/ui/../index.html", "/ui/ui.js/x"):
            st, _, _ = s.request("GET", path)
            self.assertEqual(st, 404, path)
        st, _, _ = s.request("POST", "/", raw=b"")
        self.assertEqual(st, 404)


if __name__ == "__main__":
    unittest.main(verbosity=2)
