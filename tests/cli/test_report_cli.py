#!/usr/bin/env python3
"""End-to-end tests of what `dagrun` shows of recorded runs: `report`,
`trace`, `run --trace`, `stats`, `graph RUN --format svg` and
`show --timeline`, over runs made by `dagrun run` itself (not fixtures)
in a temporary state directory.

The mixed run (-j 1, so tasks wait for the one slot) has a completed
task, one that prints HTML meant to run (<script>, <img onerror>), one
retried once after a 1 s delay, a failed one and its dependent, one
skipped by its `when`, an HTTP task against tests/http/server.py and an
AI task against tests/ai/fake_openai.py. Checked:

- the HTML report in headless Chromium (--dump-dom): every task is a
  row, every status a badge, the AI and HTTP details are shown, the
  printed HTML is inert text; a screenshot is saved as
  BUILDDIR/report-cli-screenshot.png (a CI artefact). Skipped, saying so,
  only when no chromium is installed;
- `dagrun trace RUN` and `run --trace FILE` against the trace-event
  schema (tests/report's checker), the same events both ways, the
  ready-waits and the retry wait of the real run present;
- `graph RUN --format svg` parses as XML, names every task with its
  status class and colour;
- `show --timeline` prints a row per task;
- `stats` over five runs with known sleeps: p50 / p95 / max (lower bounds
  exact, upper bounds with seconds of margin), the failure and success
  rates, the cache-hit rate null for a task never run with `cache`.

Time bounds are generous (a loaded 2-core machine, sanitizer builds);
nothing asserts speed.
"""
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import textwrap
import unittest
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "common"))
sys.path.insert(0, os.path.join(HERE, "..", "report"))
import harness  # noqa: E402
from test_report_e2e import (SVG_NS, check_trace, chromium, parse_html,  # noqa: E402
                             run_chromium, svg_nodes)

BUILDDIR = os.path.abspath(os.environ.get("BUILDDIR", "build"))
TIMEOUT = 180
KEY = "sk-test-report-0123456789"
MODEL = "m-report"
# Fills of graph nodes by status (src/report/graphsvg.c, report.css).
FILL = {"completed": "#c8e6c9", "failed": "#ffcdd2", "skipped": "#eeeeee"}

MIXED = """\
    name: mixed
    tasks:
      - id: build
        command: sleep 1; echo built
      - id: inject
        command: ['printf', '%s\\n', '<script>document.body.appendChild(document.createElement("pwned"))</script>', '<img src=x onerror="document.body.setAttribute(''data-pwned'',1)">']
      - id: flaky
        command: if [ -e flaky.mark ]; then echo second; else touch flaky.mark; echo first >&2; exit 1; fi
        retry: {maxAttempts: 2, initialDelay: 1s, jitter: none, retryOn: [transient]}
      - id: broken
        command: echo 'cannot frobnicate' >&2; exit 3
      - id: after_broken
        dependencies: [broken]
        command: echo never
      - id: gated
        when: variables.env == "prod"
        command: echo never
      - id: fetch
        api: {url: "HTTP/items?key=report"}
      - id: summarize
        dependencies: [build]
        model: MODEL
        baseUrl: AI
        prompt: Summarize the build.
    variables: {env: dev}
    """
STATUS = {"build": "completed", "inject": "completed", "flaky": "completed",
          "broken": "failed", "after_broken": "failed", "gated": "skipped",
          "fetch": "completed", "summarize": "completed"}


def dagrun(*args, cwd=None, env=None, timeout=TIMEOUT):
    e = env or harness.loopback_env()
    e.pop("DAGRUN_STATE", None)
    e["TZ"] = "UTC"
    return harness.dagrun(*args, env_full=e, cwd=cwd, timeout=timeout)


def doc_of_report(path):
    """The run document embedded in an HTML report (what it draws)."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    start = text.index('<script type="application/json" id="dagrun-data">')
    start = text.index(">", start) + 1
    return json.loads(text[start:text.index("</script>", start)])


class MixedRunTest(unittest.TestCase):
    """One real run for the class, recorded in cls.state."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="dagrun-report-cli-")
        cls.dir = cls.tmp.name
        cls.state = os.path.join(cls.dir, "state")
        cls.http = harness.start_http_server()
        try:
            cls.ai = harness.start_fake_openai()
        except BaseException:
            cls.http.stop()
            raise
        try:
            req = urllib.request.Request(
                "%s/_script?key=%s" % (cls.ai.base, MODEL),
                data=json.dumps([{"content": "The build is fine.",
                                  "usage": {"prompt_tokens": 30,
                                            "completion_tokens": 7}}]).encode(),
                method="POST")
            urllib.request.urlopen(req, timeout=10).read()
            wf = harness.write(cls.dir, MIXED, replace={
                "HTTP": cls.http.base, "AI": cls.ai.base + "/v1", "MODEL": MODEL})
            cls.run_trace = os.path.join(cls.dir, "run-trace.json")
            env = harness.loopback_env(OPENAI_API_KEY=KEY)
            env.pop("OPENAI_BASE_URL", None)
            cls.ran = dagrun("run", "-j", "1", "--state", cls.state, "--trace",
                             cls.run_trace, wf, cwd=cls.dir, env=env)
        except BaseException:
            cls.http.stop()
            cls.ai.stop()
            raise
        cls.http.stop()
        cls.ai.stop()

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def cli(self, *args, **kw):
        return dagrun(*args, "--state", self.state, cwd=self.dir, **kw)

    def report(self):
        out = os.path.join(self.dir, "report.html")
        if not os.path.exists(out):
            r = self.cli("report", "last", "-o", out)
            self.assertEqual(r.returncode, 0, r.stderr)
        return out

    def test_run_failed_and_recorded_every_task(self):
        self.assertEqual(self.ran.returncode, 1, self.ran.stderr)
        r = self.cli("show", "last", "--format", "json")
        self.assertEqual(r.returncode, 0, r.stderr)
        shown = json.loads(r.stdout)
        self.assertEqual({t["id"]: t["status"] for t in shown["tasks"]}, STATUS)

    # ---- the trace ----------------------------------------------------------

    def trace(self):
        r = self.cli("trace", "last")
        self.assertEqual(r.returncode, 0, r.stderr)
        return json.loads(r.stdout)

    def test_trace_of_the_recorded_run_passes_the_schema(self):
        t = self.trace()
        doc = doc_of_report(self.report())
        check_trace(t, doc)
        slices = [e for e in t["traceEvents"] if e["ph"] == "X" and e["pid"] == 1]
        self.assertEqual(sorted({e["name"] for e in slices}),
                         sorted(k for k, v in STATUS.items() if v != "skipped" and
                                k != "after_broken"))
        # one slot: every attempt on one track
        self.assertEqual({e["tid"] for e in slices}, {1})

    def test_trace_shows_the_real_runs_ready_and_retry_waits(self):
        t = self.trace()
        waits = [e for e in t["traceEvents"] if e["ph"] == "X" and e["pid"] == 2]
        retry = [e for e in waits if e["cat"] == "retry-wait"]
        self.assertEqual([(e["name"], e["args"]["attempt"]) for e in retry],
                         [("retry: flaky", 2)])
        self.assertGreaterEqual(retry[0]["dur"], 900 * 1000)   # initialDelay 1s
        # with one slot, the tasks ready at the start waited for it: one
        # of them for build's sleep 1 at least
        ready = [e for e in waits if e["cat"] == "ready-wait"]
        self.assertGreaterEqual(len(ready), 3)
        self.assertGreaterEqual(max(e["dur"] for e in ready), 900 * 1000)
        self.assertTrue(any(e["ph"] == "C" and e["name"] == "ready tasks"
                            for e in t["traceEvents"]))

    def test_run_trace_writes_the_same_trace(self):
        self.assertEqual(self.ran.returncode, 1, self.ran.stderr)
        with open(self.run_trace, encoding="utf-8") as f:
            written = json.load(f)
        check_trace(written, doc_of_report(self.report()))
        self.assertEqual(written["traceEvents"], self.trace()["traceEvents"])

    def test_run_trace_is_refused_without_the_state_directory(self):
        wf = harness.write(self.dir, "name: t\ntasks: [{id: a, command: 'true'}]\n",
                           name="t.yaml")
        out = os.path.join(self.dir, "nostate.json")
        r = dagrun("run", "--no-state", "--trace", out, wf, cwd=self.dir)
        self.assertEqual(r.returncode, 2)
        self.assertIn("--trace reads the run from the state directory", r.stderr)
        self.assertFalse(os.path.exists(out))

    # ---- the graph and the timeline ---------------------------------------

    def test_graph_svg_names_every_task_with_its_status_colour(self):
        r = self.cli("graph", "last", "--format", "svg")
        self.assertEqual(r.returncode, 0, r.stderr)
        root = ET.fromstring(r.stdout)
        nodes = svg_nodes(r.stdout)
        self.assertEqual(sorted(nodes), sorted(STATUS))
        for g in root.iter(SVG_NS + "g"):
            if "node" not in g.get("class", "").split():
                continue
            task = g.find(SVG_NS + "title").text
            self.assertIn("st-" + STATUS[task], g.get("class").split())
            fills = {e.get("fill") for e in g.iter() if e.get("fill") not in (None, "none")}
            self.assertIn(FILL[STATUS[task]], fills, task)

    def test_show_timeline_prints_a_row_per_task(self):
        r = self.cli("show", "last", "--timeline", env=dict(harness.env(), COLUMNS="120"))
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = r.stdout.splitlines()
        self.assertTrue(all(len(l) <= 120 for l in lines), r.stdout)
        for task, status in STATUS.items():
            rows = [l for l in lines if l.startswith(task + " ") and "|" in l]
            self.assertEqual(len(rows), 1, "%s in\n%s" % (task, r.stdout))
            self.assertIn(status, rows[0])
        flaky = [l for l in lines if l.startswith("flaky ")][0]
        bar = flaky.split("|")[1]
        self.assertIn("-", bar)   # its retry delay
        self.assertIn("x", bar)   # its failed first attempt
        self.assertTrue(any("." in l.split("|")[1] for l in lines if l.count("|") == 2))

    # ---- the HTML report in a browser --------------------------------------

    def browse(self, page, *flags, fragment=""):
        chrome = chromium()
        if not chrome:
            self.skipTest("chromium is not installed (Debian: apt-get install chromium; "
                          "build.sh installs it): the report is not checked in a browser")
        p = run_chromium(chrome, page, self.dir, *flags, fragment=fragment)
        self.assertEqual(p.returncode, 0, p.stderr[-3000:])
        return p.stdout

    def dom(self, fragment=""):
        text = self.browse(self.report(), "--dump-dom", fragment=fragment)
        self.assertIn('data-rendered="true"', text, "the page's script did not run to its end")
        return text, parse_html(text)

    def test_report_shows_every_task_and_status(self):
        text, page = self.dom()
        rows = {a["data-task"] for tag, a in page.tags
                if "tl-row" in a.get("class", "").split()}
        self.assertEqual(sorted(rows), sorted(STATUS))
        badges = {c for tag, a in page.tags if "badge" in a.get("class", "").split()
                  for c in a.get("class", "").split() if c.startswith("st-")}
        for status in set(STATUS.values()):
            self.assertIn("st-" + status, badges)
        words = " ".join(page.texts)
        self.assertIn("5 completed", words)
        self.assertIn("2 failed", words)
        self.assertIn("1 skipped", words)
        # the first failed task is selected at load
        self.assertIn("cannot frobnicate", words)

    def test_report_shows_the_ai_http_and_retry_details(self):
        _, page = self.dom("#task=summarize")
        words = " ".join(page.texts)
        for want in (MODEL + "-0001", "30 prompt + 7 completion", "finish reason"):
            self.assertIn(want, words)
        _, page = self.dom("#task=fetch")
        words = " ".join(page.texts)
        self.assertIn("HTTP status", words)
        self.assertIn("200", words)
        _, page = self.dom("#task=flaky")
        words = " ".join(page.texts)
        for want in ("Attempt 1", "Attempt 2", "retry delay", "first", "second"):
            self.assertIn(want, words)

    def test_report_keeps_printed_html_inert(self):
        text, page = self.dom("#task=inject")
        tags = [tag for tag, _ in page.tags]
        for bad in ("img", "pwned", "iframe", "object", "embed"):
            self.assertNotIn(bad, tags, "an element <%s> was created" % bad)
        self.assertEqual(tags.count("script"), 2)   # the page's code and its data
        for _, attrs in page.tags:
            self.assertNotIn("data-pwned", attrs)
            for a in attrs:
                self.assertFalse(a.startswith("on"), "an event handler attribute %r" % a)
        words = "\n".join(page.texts)
        self.assertIn('<script>document.body.appendChild(document.createElement("pwned"))'
                      '</script>', words)
        self.assertIn("<img src=x onerror=", words)

    def test_report_screenshot_is_saved_in_the_build_directory(self):
        shot = os.path.join(BUILDDIR, "report-cli-screenshot.png")
        if os.path.exists(shot):
            os.unlink(shot)
        self.browse(self.report(), "--screenshot=" + shot, "--window-size=1000,700",
                    "--hide-scrollbars")
        with open(shot, "rb") as f:
            png = f.read()
        self.assertEqual(png[:8], b"\x89PNG\r\n\x1a\n")
        self.assertEqual(struct.unpack(">II", png[16:24]), (1000, 700))
        self.assertGreater(len(png), 10000)
        print("report screenshot: %s" % shot)


STATS_WF = """\
    name: timed
    variables: {d: "0.1", fail: "0"}
    tasks:
      - id: nap
        command: sleep {{ variables.d }}
      - id: coin
        command: test "{{ variables.fail }}" = 0
    """
# nap's sleeps and whether coin fails, run by run
SLEEPS = [0.3, 0.6, 0.9, 1.2, 2.4]
FAILS = [0, 1, 0, 1, 0]
MARGIN_MS = 1500


class StatsTest(harness.TempDirTest):
    prefix = "dagrun-stats-cli-"

    def test_stats_percentiles_and_rates_over_real_runs(self):
        state = os.path.join(self.dir, "state")
        wf = self.write(STATS_WF)
        for d, fail in zip(SLEEPS, FAILS):
            r = dagrun("run", "--state", state, "--var", "d=%s" % d, "--var",
                       "fail=%d" % fail, wf, cwd=self.dir)
            self.assertEqual(r.returncode, fail, r.stderr)
        r = dagrun("stats", "--state", state, "--format", "json", cwd=self.dir)
        self.assertEqual(r.returncode, 0, r.stderr)
        st = json.loads(r.stdout)
        [w] = st["workflows"]
        self.assertEqual(w["workflow"], "timed")
        self.assertEqual(w["runs"], 5)
        self.assertEqual(w["byStatus"]["completed"], 3)
        self.assertEqual(w["byStatus"]["failed"], 2)
        self.assertAlmostEqual(w["successRate"], 0.6)
        tasks = {t["task"]: t for t in w["tasks"]}
        nap, coin = tasks["nap"], tasks["coin"]
        # nearest rank over 5: p50 the 3rd, p95 the 5th. Every duration is
        # at least its sleep, so the lower bounds are exact.
        dur = nap["duration"]
        self.assertEqual(dur["attempts"], 5)
        self.assertGreaterEqual(dur["p50Ms"], 900)
        self.assertLess(dur["p50Ms"], 900 + MARGIN_MS)
        self.assertGreaterEqual(dur["p95Ms"], 2400)
        self.assertLess(dur["p95Ms"], 2400 + MARGIN_MS)
        self.assertEqual(dur["maxMs"], dur["p95Ms"])
        self.assertEqual(nap["failureRate"], 0.0)
        self.assertAlmostEqual(coin["failureRate"], 0.4)
        self.assertEqual(coin["failedRuns"], 2)
        self.assertEqual(coin["retriesPerRun"], 0.0)
        # sorted by p95, highest first
        self.assertEqual([t["task"] for t in w["tasks"]], ["nap", "coin"])
        # never run with `cache`: not available, never a made-up 0
        self.assertIsNone(nap["cacheHitRate"])
        # the text table shows the same
        r = dagrun("stats", "--state", state, cwd=self.dir)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("60.0%", r.stdout)
        self.assertIn("40.0%", r.stdout)
        rows = [l.split() for l in r.stdout.splitlines()]
        self.assertIn("nap", [row[0] for row in rows if row])


if __name__ == "__main__":
    unittest.main(verbosity=2)
