#!/usr/bin/env python3
"""End-to-end tests of issue 9, rule 2 (a secret never leaves, in any form,
in any channel) and of the $DAGRUN_OUTPUT reader (rules 1 and 3), through
`dagrun run` with real processes, files and HTTP on loopback.

Each test checks that the secret, in every variant dagrun masks, is absent
from dagrun's stdout and stderr (text with -v, and the JSON log at debug
level), and from what a downstream task or the HTTP test server received.
The server (tests/http/server.py --second) listens on two ports: two
origins for the redirect tests.
"""
import base64
import html
import json
import os
import shlex
import sys
import tempfile
import textwrap
import time
import unittest
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common"))
import harness  # noqa: E402

TOKEN = "pa/ss'w(o)rd*x!y~z"       # the example: escaped differently by each library


def variants(s):
    """Every encoding of s that dagrun masks (and that a task may print)."""
    b = s.encode()
    q = urllib.parse
    out = {
        "raw": s,
        "quote": q.quote(s),                                 # Python default: keeps /
        "encodeURIComponent": q.quote(s, safe="!'()*~"),
        "unreserved only": q.quote(s, safe=""),
        "encodeURI": q.quote(s, safe=";,/?:@&=+$#!'()*~"),
        "quote_plus": q.quote_plus(s),
        "lower hex": q.quote(s, safe="").lower(),
        "json": json.dumps(s)[1:-1],
        "json ascii slash": json.dumps(s).replace("/", "\\/")[1:-1],
        "json \\u0027": json.dumps(s)[1:-1].replace("'", "\\u0027"),
        "python repr": repr(s)[1:-1].replace("'", "\\x27"),
        "shlex": shlex.quote(s)[1:-1],
        "bash '\\''": s.replace("'", "'\\''"),
        "printf %q": "".join("\\" + c if c in "'()*!~/" else c for c in s),
        "html": html.escape(s),
        "html &#x27;": s.replace("'", "&#x27;"),
        "base64": base64.b64encode(b).decode(),
        "base64 unpadded": base64.b64encode(b).decode().rstrip("="),
        "base64url": base64.urlsafe_b64encode(b).decode(),
        "base64url unpadded": base64.urlsafe_b64encode(b).decode().rstrip("="),
    }
    return out


class Base(harness.ServerTest):
    second = False
    prefix = "dagrun-h9s-"

    @classmethod
    def setUpClass(cls):
        cls.server_args = ("--second",) if cls.second else ()
        super().setUpClass()
        ports = cls.srv.ports
        cls.other = "http://127.0.0.1:%s" % ports[-1]
        cls.port2 = int(ports[-1])

    def setUp(self):
        super().setUp()
        self.key = "%s-%d" % (self._testMethodName, time.monotonic_ns())

    def write(self, text, name="wf.yaml"):
        return super().write(text, name, replace={"BASE": self.base, "KEY": self.key})

    def read(self, name):
        with open(os.path.join(self.dir, name), errors="replace") as f:
            return f.read()

    def run_cli(self, *args, env=None, timeout=120):
        r = harness.dagrun_bounded(*args, env_extra=env, timeout=timeout, errors="replace")
        if r is None:
            self.fail("dagrun %s did not finish within %ds" % (" ".join(args), timeout))
        return r

    def both_modes(self, wf, *args, env=None, timeout=120):
        """Runs wf with -v text output, then with the JSON log at debug level;
        returns (text run, json run, json events)."""
        t = self.run_cli("run", "-v", wf, *args, env=env, timeout=timeout)
        j = self.run_cli("run", "--log-format", "json", "--log-level", "debug", wf, *args,
                         env=env, timeout=timeout)
        events = [json.loads(l) for l in j.stderr.splitlines() if l.startswith("{")]
        return t, j, events

    def requests(self, **q):
        q.setdefault("key", self.key)
        url = "%s/_requests?%s" % (self.base, urllib.parse.urlencode(q))
        with urllib.request.urlopen(url, timeout=10) as r:
            return json.loads(r.read())

    def assert_no_variant(self, text, secret=TOKEN, where=""):
        for name, v in variants(secret).items():
            if v in text:
                i = text.index(v)
                self.fail("%s: the %s form %r is in %s: ...%r..." %
                          (self._testMethodName, name, v, where or "the output",
                           text[max(0, i - 60):i + len(v) + 20]))

    def assert_no_piece(self, text, secret, n, where=""):
        """No piece of n bytes of secret (a cut left at an edge)."""
        for i in range(len(secret) - n + 1):
            piece = secret[i:i + n]
            if piece in text:
                j = text.index(piece)
                self.fail("%s: %r of the secret is in %s: ...%r..." %
                          (self._testMethodName, piece, where or "the output",
                           text[max(0, j - 40):j + 40]))


class EncodingsTest(Base):
    """Rule 2: every common encoding of a secret is masked, in every channel."""

    def test_every_encoding_of_a_secret_is_masked_in_every_channel(self):
        forms = variants(TOKEN)
        wf = self.write("""\
            name: encodings
            tasks:
              - id: enc
                interpreter: python3
                env: {T: "{{ secrets.TOKEN }}"}
                script: |
                  import base64, html, json, os, shlex, sys, urllib.parse as q
                  t = os.environ["T"]
                  forms = %s
                  for i, f in enumerate(forms):
                      print("form %%d: %%s" %% (i, f))
                      print("err %%d: %%s" %% (i, f), file=sys.stderr)
                  with open(os.environ["DAGRUN_OUTPUT"], "a") as o:
                      for i, f in enumerate(forms):
                          o.write("f%%d=%%s\\n" %% (i, f))
              - id: down
                dependencies: [enc]
                interpreter: python3
                env:
                  OUT: "{{ tasks.enc.output }}"
                  OUTS: "{{ tojson(tasks.enc.outputs) }}"
                script: |
                  import os
                  open("down.txt", "w").write(os.environ["OUT"] + "\\n" + os.environ["OUTS"])
              - id: post
                dependencies: [enc]
                api:
                  url: "BASE/sink?key=KEY"
                  method: POST
                  body: {output: "{{ tasks.enc.output }}", f1: "{{ tasks.enc.outputs.f1 }}"}
            """ % json.dumps(list(forms.values())))
        env = {"TOKEN": TOKEN}
        t, j, events = self.both_modes(wf, env=env)
        self.assertEqual(t.returncode, 0, t.stderr)
        self.assertEqual(j.returncode, 0, j.stderr)
        self.assertIn("***", t.stderr)
        self.assert_no_variant(t.stdout + t.stderr, where="the -v console")
        self.assert_no_variant(j.stdout + j.stderr, where="the JSON log")
        down = self.read("down.txt")
        self.assertIn("form 1: ***", down)
        self.assert_no_variant(down, where="what a downstream task read")
        bodies = "".join(r["body"] for r in self.requests())
        self.assertIn("***", bodies)
        self.assert_no_variant(bodies, where="the HTTP body a server received")
        # what is not a secret is left alone
        self.assertIn("form 0: ***", "".join(e.get("data", "") for e in events))


class CutsTest(Base):
    """Rule 2: a tail or a cap never leaves a piece of a secret at its edge."""

    SECRET = "secretXYZ123456"

    def test_stderr_tail_never_starts_inside_a_secret(self):
        wf = self.write("""\
            name: tail
            tasks:
              - id: fail
                interpreter: python3
                env: {T: "{{ secrets.TOKEN }}"}
                script: |
                  import os, sys
                  # the tail is the last 2048 bytes: it would start at "ecretXYZ..."
                  sys.stderr.write("A" * 5000 + os.environ["T"] + "B" * 2034)
                  sys.exit(1)
            """)
        t, j, events = self.both_modes(wf, env={"TOKEN": self.SECRET})
        self.assertEqual(t.returncode, 1)
        # the summary shows the tail of stderr: "    | ***BBBB..."
        tails = [l for l in t.stderr.splitlines() if l.startswith("    | ")]
        self.assertTrue(tails and tails[0].startswith("    | ***BBB"), t.stderr[-300:])
        self.assert_no_piece(t.stdout + t.stderr, self.SECRET, 4, "the console summary")
        self.assert_no_piece(j.stdout + j.stderr, self.SECRET, 4, "the JSON log")

    def test_output_cap_never_ends_inside_a_secret(self):
        # stdout is kept up to 1 MiB: here it ends with 8 bytes of the secret
        secret = "hunter2secretvalue"
        wf = self.write("""\
            name: cap
            tasks:
              - id: big
                interpreter: python3
                env: {T: "{{ secrets.TOKEN }}"}
                script: |
                  import os, sys
                  sys.stdout.write("x" * ((1 << 20) - 8) + os.environ["T"] + "\\n")
              - id: tail
                dependencies: [big]
                command: echo '{{ string.sub(tasks.big.output, -40) }}' > tail.txt
              - id: post
                dependencies: [big]
                api: {url: "BASE/sink?key=KEY", method: POST, body: "{{ tasks.big.output }}"}
            """)
        r = self.run_cli("run", wf, env={"TOKEN": secret})
        self.assertEqual(r.returncode, 0, r.stderr)
        tail = self.read("tail.txt")
        self.assertTrue(tail.endswith("x***\n"), tail)
        self.assert_no_piece(tail, secret, 3, "what a downstream task read")
        body = self.requests()[0]["body"]
        self.assertTrue(body.endswith("x***"), body[-40:])
        self.assert_no_piece(body[-100:], secret, 3, "the HTTP body a server received")

    def test_a_body_over_the_kept_output_is_masked_at_the_cut(self):
        # an api body of 1 MiB + 10: `output` keeps 1 MiB, cut inside the secret
        secret = "hunter2secretvalue"
        wf = self.write("""\
            name: body
            tasks:
              - id: fetch
                api: {url: "BASE/b?key=KEY&pad=%d&body={{ secrets.TOKEN }}"}
              - id: tail
                dependencies: [fetch]
                command: echo '{{ string.sub(tasks.fetch.output, -40) }}' > tail.txt
            """ % ((1 << 20) - 8))
        r = self.run_cli("run", wf, env={"TOKEN": secret})
        self.assertEqual(r.returncode, 0, r.stderr)
        tail = self.read("tail.txt")
        self.assertTrue(tail.endswith("x***\n"), tail)
        self.assert_no_piece(tail, secret, 3, "what a downstream task read")

    def test_an_error_quoting_a_body_is_masked_before_it_is_cut(self):
        # "HTTP 400: <200 bytes of body>...": the 200 end inside the secret
        secret = "hunter2secretvalue"
        wf = self.write("""\
            name: quote
            tasks:
              - id: bad
                retry: {maxAttempts: 1}
                api: {url: "BASE/b?key=KEY&status=400&pad=195&body={{ secrets.TOKEN }}"}
            """)
        t, j, events = self.both_modes(wf, env={"TOKEN": secret})
        self.assertEqual(t.returncode, 1)
        errors = [e.get("error", "") for e in events if e.get("error")]
        self.assertTrue(any(e.startswith("HTTP 400: xxx") for e in errors), errors)
        self.assert_no_piece(t.stdout + t.stderr, secret, 4, "the console")
        self.assert_no_piece(j.stdout + j.stderr, secret, 4, "the JSON log")


class AiErrorTest(unittest.TestCase):
    """Rule 2: an AI error quoting the reply body masks the run's secrets
    (not only the API key) before it cuts the quote."""

    def test_an_ai_error_quoting_a_body_is_masked_before_it_is_cut(self):
        with harness.start_fake_openai() as srv:
            port = srv.port
            secret, model = "hunter2secretvalue", "m-h9-%d" % time.monotonic_ns()
            req = urllib.request.Request(
                "http://127.0.0.1:%d/_script?key=%s" % (port, model), method="POST",
                data=json.dumps([{"status": 400, "body": "x" * 195 + secret}]).encode())
            urllib.request.urlopen(req, timeout=10).read()
            with tempfile.TemporaryDirectory(prefix="dagrun-h9s-") as d:
                path = os.path.join(d, "wf.yaml")
                with open(path, "w") as f:
                    f.write(textwrap.dedent("""\
                        name: ai
                        tasks:
                          - id: named
                            env: {T: "{{ secrets.TOKEN }}"}
                            command: "true"
                          - id: ask
                            model: %s
                            baseUrl: http://127.0.0.1:%d/v1
                            prompt: hello
                            retry: {maxAttempts: 1}
                        """ % (model, port)))
                env = harness.env(OPENAI_API_KEY="sk-test-key-0123456789", TOKEN=secret)
                env.pop("OPENAI_BASE_URL", None)
                r = harness.dagrun("run", path, env_full=env)
            self.assertEqual(r.returncode, 1, r.stderr)
            self.assertIn("HTTP 400: xxx", r.stderr)
            for i in range(len(secret) - 3):
                self.assertNotIn(secret[i:i + 4], r.stdout + r.stderr)


class ResultsTest(Base):
    """Rule 2: everything another task reads of a result is masked."""

    SECRET = "s3cr3t-Tok3n-value"

    def test_outputs_headers_and_error_messages_are_masked(self):
        wf = self.write("""\
            name: results
            tasks:
              - id: out
                env: {T: "{{ secrets.TOKEN }}"}
                script: |
                  printf 'tok=%s\\nsafe=plain\\nmulti<<EOF\\nline one\\nsays %s\\nEOF\\n' "$T" "$T" >> "$DAGRUN_OUTPUT"
              - id: hdr
                api: {url: "BASE/h?key=KEY&h=X-Echo:{{ secrets.TOKEN }}"}
              - id: bad
                retry: {maxAttempts: 1}
                api: {url: "BASE/e?key=KEY&status=400&body=denied+for+{{ secrets.TOKEN }}"}
              - id: down
                dependencies: [out, hdr, {taskId: bad, type: non-blocking}]
                interpreter: python3
                env:
                  TOK: "{{ tasks.out.outputs.tok }}"
                  SAFE: "{{ tasks.out.outputs.safe }}"
                  MULTI: "{{ tasks.out.outputs.multi }}"
                  ECHO: "{{ tasks.hdr.http.headers['x-echo'] }}"
                  ERR: "{{ tasks.bad.error.message }}"
                script: |
                  import json, os
                  keys = ["TOK", "SAFE", "MULTI", "ECHO", "ERR"]
                  json.dump({k: os.environ[k] for k in keys}, open("down.json", "w"))
            """)
        t, j, events = self.both_modes(wf, env={"TOKEN": self.SECRET})
        self.assertEqual(t.returncode, 1, t.stderr)   # `bad` failed
        down = json.loads(self.read("down.json"))
        self.assertEqual(down["TOK"], "***")
        self.assertEqual(down["SAFE"], "plain")
        self.assertEqual(down["MULTI"], "line one\nsays ***")
        self.assertEqual(down["ECHO"], "***")
        self.assertTrue(down["ERR"].startswith("HTTP 400: denied for ***"), down["ERR"])
        self.assert_no_variant(json.dumps(down), self.SECRET, "what a downstream task read")
        self.assert_no_variant(t.stdout + t.stderr, self.SECRET, "the console")
        self.assert_no_variant(j.stdout + j.stderr, self.SECRET, "the JSON log")


class RedirectTest(Base):
    """Rule 2: a header holding a secret is never sent to another origin."""
    second = True

    def wf(self, start_url, method="GET", body=None, headers=None):
        headers = headers or {"X-Api-Key": "{{ secrets.TOKEN }}", "X-Plain": "hello"}
        spec = {"url": start_url, "method": method, "headers": headers}
        if body is not None:
            spec["body"] = body
        return self.write(json.dumps({"name": "redirect", "tasks": [
            {"id": "call", "retry": {"maxAttempts": 1}, "api": spec}]}), "wf.json")

    def redirect(self, base, to, status=302):
        return "%s/r?key=%s&redirect_status=%d&redirect=%s" % (
            base, self.key, status, urllib.parse.quote(to, safe=""))

    def land(self, base):
        return "%s/land?key=%s" % (base, self.key)

    def test_a_secret_header_is_dropped_on_a_redirect_to_another_origin(self):
        wf = self.wf(self.redirect(self.base, self.land(self.other)),
                     headers={"X-Api-Key": "{{ secrets.TOKEN }}", "X-Plain": "hello",
                              "Authorization": "Bearer {{ secrets.TOKEN }}"})
        r = self.run_cli("run", wf, env={"TOKEN": "k3y-secret-value"})
        self.assertEqual(r.returncode, 0, r.stderr)
        reqs = self.requests()
        self.assertEqual([(q["port"], q["path"]) for q in reqs],
                         [(self.port, "/r"), (self.port2, "/land")])
        self.assertEqual(reqs[0]["headers"].get("x-api-key"), "k3y-secret-value")
        self.assertNotIn("x-api-key", reqs[1]["headers"])
        self.assertNotIn("authorization", reqs[1]["headers"])
        self.assertEqual(reqs[1]["headers"].get("x-plain"), "hello")
        self.assertNotIn("k3y-secret-value", json.dumps(reqs[1]))

    def test_a_secret_header_stays_on_the_same_origin_and_comes_back(self):
        # same origin: kept; A -> B -> A: not sent to B, sent again to A
        back = self.redirect(self.other, self.land(self.base), 307)
        wf = self.wf(self.redirect(self.base, self.redirect(self.base, back, 301)))
        r = self.run_cli("run", wf, env={"TOKEN": "k3y-secret-value"})
        self.assertEqual(r.returncode, 0, r.stderr)
        reqs = self.requests()
        self.assertEqual([q["port"] for q in reqs], [self.port, self.port, self.port2, self.port])
        has = [q["headers"].get("x-api-key") == "k3y-secret-value" for q in reqs]
        self.assertEqual(has, [True, True, False, True])

    def test_redirects_followed_here_keep_curls_method_rules_and_limit(self):
        env = {"TOKEN": "k3y-secret-value"}
        # 303 after a POST: a GET without a body; 307: the POST again, with it
        for status, method, body in ((303, "GET", ""), (302, "GET", ""),
                                     (307, "POST", '{"a":1}'), (308, "POST", '{"a":1}')):
            self.key = "%s-%d" % (self._testMethodName, status)
            wf = self.wf(self.redirect(self.base, self.land(self.other), status), "POST",
                         {"a": 1})
            r = self.run_cli("run", wf, env=env)
            self.assertEqual(r.returncode, 0, r.stderr)
            reqs = self.requests()
            self.assertEqual([(q["method"], q["body"]) for q in reqs],
                             [("POST", '{"a":1}'), (method, body)], status)
            self.assertNotIn("x-api-key", reqs[1]["headers"])
        # at most 5 redirects, as curl
        self.key = self._testMethodName + "-loop"
        url = self.land(self.base)
        for _ in range(6):
            url = self.redirect(self.base, url)
        r = self.run_cli("run", "--log-format", "json", self.wf(url), env=env)
        self.assertEqual(r.returncode, 1)
        self.assertIn("too many redirects", r.stderr)
        self.assertEqual(len(self.requests()), 6)

    def test_a_body_holding_a_secret_is_not_resent_to_another_origin(self):
        env = {"TOKEN": "k3y-secret-value"}
        wf = self.wf(self.redirect(self.base, self.land(self.other), 307), "POST",
                     {"token": "{{ secrets.TOKEN }}"}, headers={"X-Plain": "hello"})
        r = self.run_cli("run", wf, env=env)
        self.assertEqual(r.returncode, 1)
        self.assertIn("redirect to another origin not followed", r.stderr)
        self.assertEqual([q["port"] for q in self.requests()], [self.port])
        # a 303 drops the body: followed
        self.key += "-303"
        wf = self.wf(self.redirect(self.base, self.land(self.other), 303), "POST",
                     {"token": "{{ secrets.TOKEN }}"}, headers={"X-Plain": "hello"})
        r = self.run_cli("run", wf, env=env)
        self.assertEqual(r.returncode, 0, r.stderr)
        reqs = self.requests()
        self.assertEqual([(q["port"], q["method"]) for q in reqs],
                         [(self.port, "POST"), (self.port2, "GET")])
        self.assertNotIn("k3y-secret-value", json.dumps(reqs[1]))


class SecretsFileTest(Base):
    """Rule 2: the secrets file reads as dotenv does; short secrets warn."""

    def test_secrets_file_accepts_export_quotes_and_comments(self):
        sf = os.path.join(self.dir, "secrets.env")
        with open(sf, "w") as f:
            f.write(textwrap.dedent("""\
                # a comment
                export EXPORTED=exported-value-1
                QUOTED="double # not a comment"
                SINGLE='single $literal \\n'
                MULTI="line1
                line2\\tend"
                PLAIN=plain-value   # a comment
                SPACED = spaced-value
                HASH=pa#ss
                """))
        os.chmod(sf, 0o600)
        names = ["EXPORTED", "QUOTED", "SINGLE", "MULTI", "PLAIN", "SPACED", "HASH"]
        wf = self.write("""\
            name: sf
            tasks:
              - id: use
                interpreter: python3
                env: {%s}
                script: |
                  import json, os
                  names = %s
                  json.dump({n: os.environ[n] for n in names}, open("got.json", "w"))
                  for n in names:
                      print(os.environ[n])
            """ % (", ".join('%s: "{{ secrets.%s }}"' % (n, n) for n in names),
                   json.dumps(names)))
        r = self.run_cli("run", "-v", wf, "--secrets-file", sf)
        self.assertEqual(r.returncode, 0, r.stderr)
        got = json.loads(self.read("got.json"))
        self.assertEqual(got, {"EXPORTED": "exported-value-1", "QUOTED": "double # not a comment",
                               "SINGLE": "single $literal \\n", "MULTI": "line1\nline2\tend",
                               "PLAIN": "plain-value", "SPACED": "spaced-value",
                               "HASH": "pa#ss"})
        for v in got.values():
            self.assertNotIn(v, r.stdout + r.stderr)

    def test_secrets_file_errors_name_the_line(self):
        sf = os.path.join(self.dir, "secrets.env")
        with open(sf, "w") as f:
            f.write('OK=1\nnot a pair\nOPEN="never closed\n')
        os.chmod(sf, 0o600)
        wf = self.write("""\
            name: sf
            tasks: [{id: a, command: "true"}]
            """)
        r = self.run_cli("run", wf, "--secrets-file", sf)
        self.assertEqual(r.returncode, 2)
        self.assertIn("secrets.env:2:", r.stderr)
        self.assertIn("secrets.env:3:", r.stderr)
        self.assertIn("no closing", r.stderr)

    def test_a_secret_too_short_to_mask_is_warned_about(self):
        sf = os.path.join(self.dir, "secrets.env")
        with open(sf, "w") as f:
            f.write("PIN=123\nLONG=long-enough-secret\n")
        os.chmod(sf, 0o600)
        wf = self.write("""\
            name: short
            tasks:
              - id: use
                env: {A: "{{ secrets.ONE }}", P: "{{ secrets.PIN }}", L: "{{ secrets.LONG }}"}
                command: echo "$A $L"
            """)
        env = {"ONE": "x"}
        t, j, events = self.both_modes(wf, "--secrets-file", sf, env=env)
        self.assertEqual(t.returncode, 0, t.stderr)
        self.assertIn("secret 'ONE' is shorter than 4 bytes: it cannot be masked", t.stderr)
        self.assertIn("line 1: the secret 'PIN' is shorter than 4 bytes", t.stderr)
        warns = [e["message"] for e in events if e["event"] == "log" and e["level"] == "warn"]
        self.assertTrue(any("'ONE' is shorter than 4 bytes" in m for m in warns), warns)
        self.assertTrue(any("'PIN' is shorter than 4 bytes" in m for m in warns), warns)
        self.assertNotIn("long-enough-secret", t.stderr + j.stderr)


class OutputFileTest(Base):
    """Rules 1 and 3: $DAGRUN_OUTPUT never blocks the engine, and what it
    skips is said with the task, the line and the reason."""

    def test_a_fifo_or_a_link_as_output_file_does_not_freeze_the_engine(self):
        wf = self.write("""\
            name: fifo
            tasks:
              - id: fifo
                command: sh -c 'rm -f "$DAGRUN_OUTPUT"; mkfifo "$DAGRUN_OUTPUT"'
              - id: zero
                command: sh -c 'rm -f "$DAGRUN_OUTPUT"; ln -s /dev/zero "$DAGRUN_OUTPUT"'
              - id: dir
                command: sh -c 'rm -f "$DAGRUN_OUTPUT"; mkdir "$DAGRUN_OUTPUT"'
              - id: slow
                timeout: 2s
                command: sleep 60
              - id: use
                dependencies: [fifo, zero, dir, {taskId: slow, type: non-blocking}]
                command: echo "[{{ tasks.fifo.outputs.x }}{{ tasks.zero.outputs.x }}{{ tasks.dir.outputs.x }}]" > use.txt
            """)
        start = time.monotonic()
        r = self.run_cli("run", "--log-format", "json", wf, timeout=60,
                         env={"TMPDIR": self.dir})   # whatever is left stays here
        self.assertEqual(r.returncode, 1, r.stderr)   # `slow` timed out: the loop ran
        self.assertLess(time.monotonic() - start, 50)
        self.assertEqual(self.read("use.txt"), "[]\n")
        events = [json.loads(l) for l in r.stderr.splitlines() if l.startswith("{")]
        warns = {e.get("task"): e["message"] for e in events
                 if e["event"] == "log" and e["level"] == "warn"}
        self.assertIn("task 'fifo': $DAGRUN_OUTPUT is a FIFO", warns.get("fifo", ""))
        self.assertIn("task 'zero': $DAGRUN_OUTPUT is a symbolic link", warns.get("zero", ""))
        self.assertIn("task 'dir': $DAGRUN_OUTPUT is a directory", warns.get("dir", ""))

    def test_a_malformed_output_file_keeps_valid_outputs_and_warns(self):
        wf = self.write("""\
            name: malformed
            tasks:
              - id: a
                interpreter: python3
                script: |
                  import os
                  with open(os.environ["DAGRUN_OUTPUT"], "w") as f:
                      f.write("good=1\\njunk line\\nalso=2\\n")
                      for i in range(1005):
                          f.write("k%d=%d\\n" % (i, i))
                      f.write("m<<EOF\\nnever closed\\n")
              - id: b
                dependencies: [a]
                command: echo "[{{ tasks.a.outputs.good }} {{ tasks.a.outputs.also }} {{ tasks.a.outputs.k997 }} {{ tasks.a.outputs.k998 }}]" > b.txt
            """)
        t, j, events = self.both_modes(wf)
        self.assertEqual(t.returncode, 0, t.stderr)
        # good, also and k0..k997: 1000 keys; k998.. are past the cap
        self.assertEqual(self.read("b.txt"), "[1 2 997 ]\n")
        self.assertIn("task 'a': $DAGRUN_OUTPUT line 2: expected key=value", t.stderr)
        self.assertIn("line 1002: more than 1000 keys; 7 new keys", t.stderr)
        self.assertIn("line 1009: no line 'EOF' closes the value of the key 'm'", t.stderr)
        warns = [e for e in events if e["event"] == "log" and e["level"] == "warn"]
        self.assertEqual(len(warns), 3, warns)
        self.assertTrue(all(e.get("task") == "a" for e in warns), warns)
        self.assertIn("line 2:", warns[0]["message"])

    def test_an_output_file_over_the_cap_keeps_its_first_mebibyte(self):
        wf = self.write("""\
            name: big
            tasks:
              - id: a
                interpreter: python3
                script: |
                  import os
                  with open(os.environ["DAGRUN_OUTPUT"], "w") as f:
                      f.write("first=1\\n" + "pad=" + "x" * (1 << 20) + "\\nlast=2\\n")
              - id: b
                dependencies: [a]
                command: echo "[{{ tasks.a.outputs.first }}|{{ tasks.a.outputs.last }}]" > b.txt
            """)
        r = self.run_cli("run", wf)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.read("b.txt"), "[1|]\n")
        self.assertIn("task 'a': $DAGRUN_OUTPUT line 1: the file is larger than 1048576 bytes",
                      r.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
