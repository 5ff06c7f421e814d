#!/usr/bin/env python3
"""End-to-end checks of the report module's outputs (suite 'report').

The renderers run through tests/report/render (REPORT_RENDER) on the run
documents of this folder (REPORT_FIXTURES) and a generated 10,000-task
one; `dagrun graph --format svg` through the CLI (DAGRUN). Checked:

- the trace against the trace-event schema: every event an X slice with
  dur >= 0, a metadata event or a counter; pids and tids named by metadata;
  no two slices overlap on one track; counters in increasing time; every
  attempt of the document is a slice; as many slots as attempts ever ran
  at once;
- the SVG parses as XML (xml.etree) and names every task, with its status;
- the HTML holds no URL (no http://, https:// or // at all outside the
  embedded data, no URL-bearing attribute anywhere), its CSP hashes match
  its script and style;
- in headless Chromium (Debian's `chromium`): every task and status is in
  the DOM, the injected HTML of task ids, errors and outputs is inert
  text (the page's title is not changed, no element made from it), with
  and without the page's CSP; a 10,000-task report keeps only the rows in
  view in the DOM; a screenshot is saved as BUILDDIR/report-screenshot.png.
  These skip, saying so, only when no chromium is installed.

Time limits are generous (a loaded 2-core machine, sanitizer builds);
nothing here asserts speed (bench/report_bench does).
"""
import base64
import hashlib
import html.parser
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import textwrap
import unittest
import urllib.parse
import xml.etree.ElementTree as ET

RENDER = os.environ.get("REPORT_RENDER", "build/tests/report/render")
FIXTURES = os.environ.get("REPORT_FIXTURES", os.path.dirname(os.path.abspath(__file__)))
DAGRUN = os.environ.get("DAGRUN", "build/src/cli/dagrun")
BUILDDIR = os.environ.get("BUILDDIR", "build")
SRCDIR = os.environ.get("SRCDIR", ".")
DOCS = ["mixed", "running", "cancelled", "inject"]
SVG_NS = "{http://www.w3.org/2000/svg}"
sys.path.insert(0, FIXTURES)
import gen_rundoc  # noqa: E402


def load(name):
    with open(os.path.join(FIXTURES, name + ".json"), encoding="utf-8") as f:
        return json.load(f)


def chromium():
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    return None


def visible(s):
    """A task id as the SVG shows it: control characters as U+FFFD."""
    return "".join("\ufffd" if ord(c) < 0x20 or ord(c) == 0x7f else c for c in s)


class Tmp(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="dagrun-report-")
        cls.dir = cls.tmp.name
        cls.big = os.path.join(cls.dir, "big10k.json")
        with open(cls.big, "w") as f:
            json.dump(gen_rundoc.generate(10000), f)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def path_of(self, name):
        return self.big if name == "big10k" else os.path.join(FIXTURES, name + ".json")

    def doc_of(self, name):
        if name == "big10k":
            with open(self.big) as f:
                return json.load(f)
        return load(name)

    def render(self, what, name, *extra, ok=True):
        out = os.path.join(self.dir, "%s.%s" % (name, what))
        p = subprocess.run([RENDER, what, self.path_of(name), out, *extra],
                           capture_output=True, text=True, timeout=300)
        if ok:
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertEqual(p.stderr, "")
        return out, p


# ---- the trace ------------------------------------------------------------

def check_trace(t, doc):
    """Raises AssertionError naming the first violation of the schema."""
    assert isinstance(t, dict), "not a JSON object"
    events = t.get("traceEvents")
    assert isinstance(events, list), "no traceEvents array"
    names = {}          # (pid, tid) -> thread name; (pid, 0) -> process name
    slices = {}         # (pid, tid) -> [(ts, end)]
    counters = {}       # (pid, name) -> [(ts, values)]
    for i, e in enumerate(events):
        where = "event %d %r" % (i, e)
        assert isinstance(e, dict), where
        ph = e.get("ph")
        assert ph in ("X", "M", "C"), where + ": unexpected phase"
        assert isinstance(e.get("pid"), int) and e["pid"] > 0, where + ": pid"
        assert isinstance(e.get("tid"), int) and e["tid"] >= 0, where + ": tid"
        assert isinstance(e.get("name"), str), where + ": name"
        if ph == "M":
            assert e["name"] in ("process_name", "thread_name", "process_sort_index",
                                 "thread_sort_index"), where
            args = e.get("args")
            assert isinstance(args, dict), where
            if e["name"].endswith("_name"):
                assert isinstance(args.get("name"), str) and args["name"], where
                key = (e["pid"], 0 if e["name"] == "process_name" else e["tid"])
                assert key not in names, where + ": named twice"
                names[key] = args["name"]
            else:
                assert isinstance(args.get("sort_index"), int), where
        elif ph == "X":
            for k in ("ts", "dur"):
                assert isinstance(e.get(k), int) and e[k] >= 0, where + ": " + k
            assert e["tid"] > 0, where + ": a slice on tid 0"
            assert isinstance(e.get("args"), dict), where + ": args"
            slices.setdefault((e["pid"], e["tid"]), []).append((e["ts"], e["ts"] + e["dur"], e))
        else:
            assert isinstance(e.get("ts"), int) and e["ts"] >= 0, where + ": ts"
            args = e.get("args")
            assert isinstance(args, dict) and args, where + ": args"
            assert all(isinstance(v, int) and v >= 0 for v in args.values()), where
            counters.setdefault((e["pid"], e["name"]), []).append((e["ts"], args))
    for (pid, tid), lst in slices.items():
        assert (pid, 0) in names, "pid %d has no process_name" % pid
        assert (pid, tid) in names, "pid %d tid %d has no thread_name" % (pid, tid)
        lst.sort(key=lambda x: (x[0], x[1]))
        for a, b in zip(lst, lst[1:]):
            assert b[0] >= a[1], "slices overlap on pid %d tid %d: %r and %r" % (pid, tid, a[2], b[2])
    for (pid, name), lst in counters.items():
        assert (pid, 0) in names, "counter %r in unnamed pid %d" % (name, pid)
        ts = [x[0] for x in lst]
        assert ts == sorted(ts), "counter %r not in time order" % name
        assert len(set(ts)) == len(ts), "counter %r has two values at one time" % name
    for key in names:
        assert key[1] == 0 or key in slices, "a named thread with no slice: %r" % (key,)
    # every attempt is a slice of pid 1, named by its task
    want = sorted((t["id"], a["attempt"]) for t in doc["tasks"] for a in t["attempts"])
    got = sorted((e["name"], e["args"]["attempt"]) for lst in slices.values()
                 for _, _, e in lst if e["pid"] == 1)
    assert got == want, "attempt slices differ from the document's attempts"
    # greedy slots are exact for intervals: as many tracks as ever ran at once
    run = counters.get((1, "running tasks"), [])
    peak = max([v["running"] for _, v in run], default=0)
    tracks = len([k for k in slices if k[0] == 1])
    assert tracks == peak, "%d tracks for at most %d running" % (tracks, peak)
    if doc["run"].get("endMs") is not None and all(a.get("endMs") is not None
                                                   for t in doc["tasks"] for a in t["attempts"]):
        assert not run or run[-1][1]["running"] == 0, "running tasks do not end at 0"
    return len(events)


class DocumentTest(Tmp):
    def test_documented_example_is_a_valid_document(self):
        """docs/run-document.md's example renders with every renderer."""
        with open(os.path.join(SRCDIR, "docs", "run-document.md"), encoding="utf-8") as f:
            md = f.read()
        blocks = re.findall(r"```json\n(.*?)```", md, re.S)
        self.assertEqual(len(blocks), 1)
        doc = json.loads(blocks[0])
        path = os.path.join(self.dir, "example.json")
        with open(path, "w") as f:
            json.dump(doc, f)
        for what in ("html", "trace", "gantt", "svg"):
            p = subprocess.run([RENDER, what, path, os.devnull], capture_output=True,
                               text=True, timeout=120)
            self.assertEqual(p.returncode, 0, "%s: %s" % (what, p.stderr))

    def test_empty_run_renders(self):
        doc = {"dagrunRunDocument": 1, "run": {"id": "r", "runAttempt": 1, "workflow": "w",
               "status": "running", "startMs": 1000, "counts": {}}, "tasks": []}
        path = os.path.join(self.dir, "empty.json")
        with open(path, "w") as f:
            json.dump(doc, f)
        for what in ("html", "trace", "gantt", "svg"):
            p = subprocess.run([RENDER, what, path, os.devnull], capture_output=True,
                               text=True, timeout=120)
            self.assertEqual(p.returncode, 0, "%s: %s" % (what, p.stderr))

    def test_invalid_document_is_refused_naming_the_field(self):
        doc = load("mixed")
        doc["tasks"][4]["attempts"][0]["exitCode"] = "2"
        path = os.path.join(self.dir, "bad.json")
        with open(path, "w") as f:
            json.dump(doc, f)
        out = os.path.join(self.dir, "bad.html")
        p = subprocess.run([RENDER, "html", path, out], capture_output=True, text=True,
                           timeout=120)
        self.assertEqual(p.returncode, 1)
        self.assertIn("tasks[4].attempts[0].exitCode: expected an integer", p.stderr)
        self.assertEqual(os.path.getsize(out), 0)


class TraceTest(Tmp):
    def test_trace_passes_the_schema_check_for_every_document(self):
        for name in DOCS + ["big10k"]:
            with self.subTest(doc=name):
                out, _ = self.render("trace", name)
                with open(out, encoding="utf-8") as f:
                    t = json.load(f)
                check_trace(t, self.doc_of(name))

    def test_trace_shows_ready_and_retry_waits(self):
        out, _ = self.render("trace", "mixed")
        with open(out) as f:
            t = json.load(f)
        waits = {}
        for e in t["traceEvents"]:
            if e["ph"] == "X" and e["pid"] == 2:
                waits.setdefault((e["name"], e["cat"]), []).append((e["args"]["attempt"], e["dur"]))
        # build: ready 1005, started 1010; failed at 2010, ready again at
        # 3010 (the retry delay), started at 3500 (no free slot)
        self.assertEqual(waits[("retry: build", "retry-wait")], [(2, 1000 * 1000)])
        self.assertEqual(sorted(waits[("ready: build", "ready-wait")]), [(1, 5000), (2, 490 * 1000)])
        self.assertEqual(waits[("ready: lint", "ready-wait")], [(1, 100 * 1000)])
        ready = [e for e in t["traceEvents"] if e["ph"] == "C" and e["name"] == "ready tasks"]
        self.assertTrue(ready)
        procs = {e["pid"]: e["args"]["name"] for e in t["traceEvents"]
                 if e["ph"] == "M" and e["name"] == "process_name"}
        self.assertEqual(procs[1], "run 20240601-120000-000-a1b2c3d4e5f6 (mixed)")

    def test_schema_checker_catches_violations(self):
        """The checker is a test too: broken traces must fail it."""
        out, _ = self.render("trace", "mixed")
        with open(out) as f:
            good = json.load(f)
        doc = load("mixed")
        check_trace(good, doc)

        def broken(fn):
            t = json.loads(json.dumps(good))
            fn(t["traceEvents"])
            with self.assertRaises(AssertionError):
                check_trace(t, doc)

        xs = [i for i, e in enumerate(good["traceEvents"]) if e["ph"] == "X" and e["pid"] == 1]
        cs = [i for i, e in enumerate(good["traceEvents"]) if e["ph"] == "C"]
        broken(lambda ev: ev[xs[0]].update(dur=-1))
        broken(lambda ev: ev[xs[0]].update(tid=99))
        broken(lambda ev: ev[xs[1]].update(tid=ev[xs[0]]["tid"], ts=ev[xs[0]]["ts"]))
        broken(lambda ev: ev[cs[1]].update(ts=ev[cs[-1]]["ts"] + 1))
        broken(lambda ev: ev.__delitem__(xs[0]))
        broken(lambda ev: ev[xs[0]].update(ph="B"))


# ---- the SVG --------------------------------------------------------------

def svg_nodes(text):
    """{title: class} of the node groups of an SVG document."""
    root = ET.fromstring(text)
    nodes = {}
    for g in root.iter(SVG_NS + "g"):
        if "node" in g.get("class", "").split():
            title = g.find(SVG_NS + "title")
            nodes[title.text if title is not None else None] = g.get("class")
    return nodes


class SvgTest(Tmp):
    def test_svg_parses_and_names_every_task_with_its_status(self):
        for name in DOCS:
            with self.subTest(doc=name):
                out, _ = self.render("svg", name)
                with open(out, encoding="utf-8") as f:
                    text = f.read()
                nodes = svg_nodes(text)
                doc = load(name)
                self.assertEqual(len(nodes), len(doc["tasks"]))
                for t in doc["tasks"]:
                    cls = nodes.get(visible(t["id"]))
                    self.assertIsNotNone(cls, "no node titled %r" % t["id"])
                    known = t["status"] in ("pending", "running", "completed", "failed",
                                            "retrying", "skipped", "cancelled", "interrupted")
                    self.assertIn("st-" + (t["status"] if known else "other"), cls.split())
                # the labels show the ids too
                texts = "\n".join(e.text or "" for e in ET.fromstring(text).iter(SVG_NS + "text"))
                for t in doc["tasks"]:
                    self.assertIn(visible(t["id"]), texts)

    def test_cli_graph_svg_through_libgvc(self):
        wf = os.path.join(SRCDIR, "examples", "quickstart.yaml")
        p = subprocess.run([DAGRUN, "graph", "--format", "json", wf], capture_output=True,
                           text=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        ids = [t["id"] for t in json.loads(p.stdout)["tasks"]]
        out = os.path.join(self.dir, "quick.svg")
        # no `dot` program needed: an empty PATH
        p = subprocess.run([os.path.abspath(DAGRUN), "graph", "--format", "svg", "-o", out, wf],
                           capture_output=True, text=True, timeout=60, env={"PATH": ""})
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stderr, "")
        with open(out, encoding="utf-8") as f:
            nodes = svg_nodes(f.read())
        self.assertEqual(sorted(nodes), sorted(ids))
        self.assertTrue(all("st-none" in c.split() for c in nodes.values()))
        # to stdout as well
        p = subprocess.run([DAGRUN, "graph", "-f", "svg", wf], capture_output=True,
                           text=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(sorted(svg_nodes(p.stdout)), sorted(ids))

    def test_cli_graph_svg_refuses_a_graph_too_large_to_lay_out(self):
        wf = os.path.join(self.dir, "huge.yaml")
        with open(wf, "w") as f:
            f.write("name: huge\ntasks:\n")
            for i in range(5001):
                f.write("  - {id: t%d, command: 'true'}\n" % i)
        p = subprocess.run([DAGRUN, "graph", "--format", "svg", wf], capture_output=True,
                           text=True, timeout=120)
        self.assertEqual(p.returncode, 2)
        self.assertIn("5001 tasks", p.stderr)
        self.assertEqual(p.stdout, "")

    def test_cli_graph_names_svg_among_the_formats(self):
        wf = os.path.join(SRCDIR, "examples", "quickstart.yaml")
        p = subprocess.run([DAGRUN, "graph", "--format", "png", wf], capture_output=True,
                           text=True, timeout=60)
        self.assertEqual(p.returncode, 2)
        self.assertIn("svg", p.stderr)


# ---- the HTML without a browser ---------------------------------------------

URL_ATTRS = {"src", "href", "xlink:href", "action", "formaction", "data", "poster",
             "srcset", "background", "manifest", "ping", "cite", "longdesc", "codebase"}


class Elements(html.parser.HTMLParser):
    """Every start tag (name, attrs), the text of every element by tag, and
    the raw content of <script> and <style> elements."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags, self.texts, self.raw, self.stack = [], [], [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self.stack.append(tag)

    def handle_endtag(self, tag):
        while self.stack and self.stack.pop() != tag:
            pass

    def handle_data(self, data):
        top = self.stack[-1] if self.stack else ""
        if top in ("script", "style"):
            self.raw.append((top, dict(self.tags[-1][1]) if self.tags else {}, data))
        else:
            self.texts.append(data)


def parse_html(text):
    p = Elements()
    p.feed(text)
    p.close()
    return p


def csp_of(text):
    m = re.search(r'<meta http-equiv="Content-Security-Policy" content="([^"]*)">', text)
    return m.group(1) if m else None


class HtmlTest(Tmp):
    def html(self, name):
        out, _ = self.render("html", name)
        with open(out, encoding="utf-8") as f:
            return out, f.read()

    def test_html_names_no_url(self):
        for name in DOCS + ["big10k"]:
            with self.subTest(doc=name):
                _, text = self.html(name)
                start = text.index('<script type="application/json" id="dagrun-data">')
                end = text.index("</script>", start)
                frame = text[:start] + text[end:]
                for bad in ("http://", "https://", "//", "url(", "@import"):
                    self.assertFalse(bad in frame, "%r in the page" % bad)
                if name != "inject":   # the only document with URLs in its text
                    for bad in ("http://", "https://", "//"):
                        self.assertFalse(bad in text, "%r in the page" % bad)
                page = parse_html(text)
                for tag, attrs in page.tags:
                    for a, v in attrs.items():
                        self.assertNotIn(a.lower(), URL_ATTRS, "<%s %s=%r>" % (tag, a, v))
                        self.assertFalse(a.lower().startswith("on"), "<%s %s=%r>" % (tag, a, v))

    def test_html_csp_allows_exactly_its_script_and_style(self):
        _, text = self.html("mixed")
        csp = csp_of(text)
        self.assertTrue(csp.startswith("default-src 'none'; "), csp)
        page = parse_html(text)
        scripts = [d for tag, attrs, d in page.raw if tag == "script" and "type" not in attrs]
        styles = [d for tag, _, d in page.raw if tag == "style"]
        self.assertEqual(len(scripts), 1)
        self.assertEqual(len(styles), 1)
        for kind, body in (("script-src", scripts[0]), ("style-src", styles[0])):
            digest = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
            self.assertIn("%s 'sha256-%s'" % (kind, digest), csp)
        self.assertNotIn("unsafe", csp)

    def test_html_embeds_the_document_unchanged(self):
        for name in ("mixed", "inject"):
            _, text = self.html(name)
            start = text.index('<script type="application/json" id="dagrun-data">')
            start = text.index(">", start) + 1
            end = text.index("</script>", start)
            self.assertEqual(json.loads(text[start:end]), load(name))

    def test_large_run_leaves_out_the_graph_with_a_notice(self):
        _, text = self.html("big10k")
        self.assertIn('id="graph-omitted"', text)
        self.assertIn("this run has 10000 tasks", text)
        self.assertNotIn("<svg", text)


# ---- the HTML in a browser ----------------------------------------------------

class BrowserTest(Tmp):
    def setUp(self):
        self.chrome = chromium()
        if not self.chrome:
            self.skipTest("chromium is not installed (Debian: apt-get install chromium; "
                          "build.sh installs it): the report is not checked in a browser")

    def browse(self, page, *flags, fragment="", timeout=180):
        profile = tempfile.mkdtemp(prefix="chromium-", dir=self.dir)
        url = "file://" + urllib.parse.quote(os.path.abspath(page)) + fragment
        args = [self.chrome, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--user-data-dir=" + profile, *flags, url]
        p = subprocess.run(args, capture_output=True, text=True, timeout=timeout,
                           env=dict(os.environ, HOME=profile))
        self.assertEqual(p.returncode, 0, p.stderr[-3000:])
        return p.stdout

    def dom(self, page, fragment=""):
        text = self.browse(page, "--dump-dom", fragment=fragment)
        self.assertIn('data-rendered="true"', text, "the page's script did not run to its end")
        return text, parse_html(text)

    def test_every_task_and_status_is_in_the_page(self):
        for name in ("mixed", "running", "cancelled"):
            with self.subTest(doc=name):
                out, _ = self.render("html", name)
                text, page = self.dom(out)
                doc = load(name)
                rows = {a["data-task"]: a for tag, a in page.tags
                        if "tl-row" in a.get("class", "").split()}
                self.assertEqual(sorted(rows), sorted(t["id"] for t in doc["tasks"]))
                badges = [c for tag, a in page.tags for c in a.get("class", "").split()
                          if "badge" in a.get("class", "").split() and c.startswith("st-")]
                for t in doc["tasks"]:
                    self.assertIn("st-" + t["status"], badges)
                nodes = [a for tag, a in page.tags if tag == "g" and "node" in a.get("class", "").split()]
                self.assertEqual(len(nodes), len(doc["tasks"]))
                self.assertIn('id="run-status"', text)
                # the counts as the summary shows them
                for status, n in doc["run"]["counts"].items():
                    self.assertIn("%d %s" % (n, status), " ".join(page.texts))

    def test_failed_task_details_show_attempts_http_ai_and_outputs(self):
        out, _ = self.render("html", "mixed")
        _, page = self.dom(out)   # the first failed task is selected at load
        text = " ".join(page.texts)
        self.assertIn("FAIL test_parse: expected 3, got 4", text)
        self.assertIn("exit status 2", text)
        _, page = self.dom(out, "#task=summarize")
        text = " ".join(page.texts)
        for want in ("gpt-4o-mini", "1200 prompt + 300 completion", "HTTP status", "200",
                     "The build looks fine"):
            self.assertIn(want, text)
        _, page = self.dom(out, "#task=build")
        text = " ".join(page.texts)
        for want in ("Attempt 1", "Attempt 2", "retry delay", "waited while ready",
                     "cc: internal compiler error"):
            self.assertIn(want, text)

    def check_inert(self, text, page, doc, selected):
        title = "dagrun: %s run %s (%s)" % (doc["run"]["workflow"], doc["run"]["id"],
                                           doc["run"]["status"])
        titles = [d for d in page.texts if "PWNED" in d and d.startswith("dagrun: ")]
        self.assertEqual(titles, [title], "the document's title changed")
        tags = [tag for tag, _ in page.tags]
        self.assertEqual(tags.count("script"), 2)
        for bad in ("img", "pwned", "iframe", "object", "embed", "a"):
            self.assertNotIn(bad, tags, "an element <%s> was created" % bad)
        self.assertEqual(tags.count("svg"), 1)
        for _, attrs in page.tags:
            self.assertNotIn("data-pwned", attrs)
            for a in attrs:
                self.assertFalse(a.startswith("on"), "an event handler attribute %r" % a)
        all_text = "\n".join(page.texts)
        # the injected markup is there, as text
        self.assertIn("<script>document.body.appendChild(document.createElement('pwned'))</script>",
                      all_text)
        self.assertIn(doc["tasks"][0]["id"], all_text)
        self.assertIn(doc["tasks"][1]["id"], all_text)
        if selected:
            self.assertIn("<script>alert(1)</script>", all_text)
            self.assertIn("<img src=x onerror=", all_text)

    def test_injected_html_is_inert_text(self):
        out, _ = self.render("html", "inject")
        doc = load("inject")
        frag = "#task=" + urllib.parse.quote(doc["tasks"][0]["id"], safe="")
        text, page = self.dom(out, frag)
        self.check_inert(text, page, doc, True)
        # the same without the page's Content-Security-Policy: the escaping,
        # not the CSP, keeps the text inert
        with open(out, encoding="utf-8") as f:
            page_text = f.read()
        csp = csp_of(page_text)
        self.assertIsNotNone(csp)
        bare = os.path.join(self.dir, "inject-no-csp.html")
        with open(bare, "w", encoding="utf-8") as f:
            f.write(page_text.replace(
                '<meta http-equiv="Content-Security-Policy" content="%s">' % csp, ""))
        text, page = self.dom(bare, frag)
        self.assertIsNone(csp_of(text))
        self.check_inert(text, page, doc, True)
        # and every task of it is a row, whatever its id
        rows = [a["data-task"] for tag, a in page.tags if "tl-row" in a.get("class", "").split()]
        self.assertEqual(sorted(rows), sorted(t["id"] for t in doc["tasks"]))

    def test_ten_thousand_tasks_keep_few_rows_in_the_dom(self):
        out, _ = self.render("html", "big10k")
        text, page = self.dom(out)
        rows = [a for tag, a in page.tags if "tl-row" in a.get("class", "").split()]
        self.assertGreater(len(rows), 0)
        self.assertLess(len(rows), 200, "the timeline is not virtualised")
        self.assertIn("10000 tasks", " ".join(page.texts))
        self.assertIn('id="graph-omitted"', text)

    def test_screenshot_is_saved_in_the_build_directory(self):
        out, _ = self.render("html", "mixed")
        shot = os.path.join(os.path.abspath(BUILDDIR), "report-screenshot.png")
        if os.path.exists(shot):
            os.unlink(shot)
        self.browse(out, "--screenshot=" + shot, "--window-size=1400,900")
        with open(shot, "rb") as f:
            png = f.read()
        self.assertEqual(png[:8], b"\x89PNG\r\n\x1a\n")
        width, height = struct.unpack(">II", png[16:24])
        self.assertEqual((width, height), (1400, 900))
        self.assertGreater(len(png), 20000)
        print("report screenshot: %s" % shot)


if __name__ == "__main__":
    unittest.main(verbosity=2)
