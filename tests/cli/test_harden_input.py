#!/usr/bin/env python3
"""End-to-end tests of hostile inputs (issue 9): workflow files that are
not regular files (rule 1: bounded, never waited for in vain), and NUL
characters (rule 3: refused where they cannot be passed on, with the place;
kept where they can, in JSON).

Endless inputs are written by a thread into dagrun's stdin until dagrun
closes it (EPIPE), up to a safety cap; the tests assert the bytes written,
never the time. Every subprocess has a timeout, so a hang fails the test.
"""
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common"))
import harness  # noqa: E402
from harness import DAGRUN  # noqa: E402

MiB = 1 << 20
env = harness.loopback_env


def validate_endless(unit, cap):
    """Runs `dagrun validate /dev/stdin` with `unit` written to its stdin
    over and over, until dagrun closes it or `cap` bytes; returns the
    completed process and the bytes written."""
    err = tempfile.TemporaryFile()
    p = subprocess.Popen([DAGRUN, "validate", "/dev/stdin"], stdin=subprocess.PIPE,
                         stdout=subprocess.DEVNULL, stderr=err, env=env())
    written = [0]
    chunk = unit * (65536 // len(unit))

    def feed():
        try:
            while written[0] < cap:
                p.stdin.write(chunk)
                written[0] += len(chunk)
        except OSError:
            pass              # EPIPE: dagrun closed its input
        try:
            p.stdin.close()
        except OSError:
            pass

    t = threading.Thread(target=feed, daemon=True)
    t.start()
    try:
        p.wait(timeout=300)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
        raise
    t.join(timeout=60)
    err.seek(0)
    text = err.read().decode("utf-8", "replace")
    err.close()
    return p.returncode, text, written[0]


class InputTest(harness.TempDirTest):
    """Rule 1: every input is bounded; nothing waits for a writer in vain."""

    prefix = "dagrun-harden-input-"

    def test_validate_dev_zero_fails_at_byte_0_and_reads_no_more(self):
        # It used to read 2.1 GB in 23 s to print one source line.
        r = subprocess.run([DAGRUN, "validate", "/dev/zero"], capture_output=True,
                           text=True, timeout=60, env=env())
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("/dev/zero:1:1: error: control characters are not allowed "
                      "(byte 0x00 at offset 0)", r.stderr)
        self.assertLess(len(r.stderr), 4096)

    def test_endless_nul_bytes_on_stdin_are_not_read_on(self):
        code, err, written = validate_endless(b"\0", 256 * MiB)
        self.assertEqual(code, 2, err)
        self.assertIn("control characters are not allowed", err)
        self.assertLess(written, 8 * MiB)

    def test_yes_into_validate_stops_long_before_the_file_limit(self):
        # `yes | dagrun validate /dev/stdin`: one endless string.
        code, err, written = validate_endless(b"y\n", 1024 * MiB)
        self.assertEqual(code, 2, err)
        self.assertIn("more than 64 MiB of input without a complete YAML value", err)
        self.assertLess(written, 80 * MiB)

    def test_a_fifo_without_a_writer_is_an_error_not_a_hang(self):
        path = os.path.join(self.dir, "wf.yaml")
        os.mkfifo(path)
        r = subprocess.run([DAGRUN, "validate", path], capture_output=True, text=True,
                           timeout=60, env=env())
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("no input: %s gave no bytes" % path, r.stderr)

    def test_a_pipe_with_a_slow_writer_is_waited_for(self):
        wf = "name: piped\ntasks:\n  - {id: a, command: x}\n"
        r = subprocess.run(["sh", "-c", 'sleep 0.5; printf "%s" "$WF"'], env=dict(env(), WF=wf),
                           stdout=subprocess.PIPE, timeout=60)
        self.assertEqual(r.returncode, 0)
        p = subprocess.run("(sleep 0.5; printf '%s' \"$WF\") | \"$DAGRUN\" validate /dev/stdin",
                           shell=True, capture_output=True, text=True, timeout=60,
                           env=dict(env(), WF=wf, DAGRUN=DAGRUN))
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("ok: workflow 'piped', 1 task", p.stdout + p.stderr)

    def test_a_directory_is_refused(self):
        r = subprocess.run([DAGRUN, "validate", self.dir], capture_output=True, text=True,
                           timeout=60, env=env())
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("cannot read %s: Is a directory" % self.dir, r.stderr)


NUL_MSG = ("NUL character (\\0) in '%s': a process, a path, a URL or a header cannot "
           "hold one (only values sent as JSON may)")


class NulTest(harness.TempDirTest):
    """Rule 3: a NUL is refused where it cannot be passed on, kept in JSON."""

    prefix = "dagrun-harden-nul-"

    @classmethod
    def setUpClass(cls):
        cls.srv = harness.start_http_server()
        cls.base = cls.srv.base
        cls.ai = harness.start_fake_openai()
        cls.ai_base = cls.ai.base + "/v1"

    @classmethod
    def tearDownClass(cls):
        for s in (cls.srv, cls.ai):
            s.stop()

    def setUp(self):
        super().setUp()
        self.key = "%s-%d" % (self._testMethodName, time.monotonic_ns())

    def write(self, text):
        return super().write(text, replace={"BASE": self.base, "AIURL": self.ai_base,
                                            "KEY": self.key})

    def dagrun(self, *args):
        return harness.dagrun(*args, env_full=env(), cwd=self.dir)

    def test_validate_refuses_a_nul_with_its_place(self):
        wf = self.write(r'''
            name: t
            env: {X: "a\0b"}
            tasks:
              - id: a
                command: "echo a\0b"
                workdir: "/tmp\x00"
              - id: b
                command: [printf, "%s", "x\u0000y"]
              - id: c
                interpreter: "sh\0"
                script: "echo \0"
              - id: d
                api: {url: "http://x/\0", headers: {H: "v\0"}}
            ''')
        r = self.dagrun("validate", wf)
        self.assertEqual(r.returncode, 2, r.stderr)
        for where, key in (("3:11", "env"), ("6:15", "command"), ("7:15", "workdir"),
                           ("9:30", "command"), ("11:19", "interpreter"), ("12:14", "script"),
                           ("14:17", "url"), ("14:45", "headers")):
            self.assertIn("%s:%s: error: %s" % (wf, where, NUL_MSG % key), r.stderr)
        self.assertIn("8 errors", r.stderr)

    def test_a_template_rendering_a_nul_fails_the_task_and_names_the_field(self):
        wf = self.write('''\
            name: t
            variables: {v: "a\\0b", u: "BASE/x\\0y"}
            tasks:
              - {id: env, env: {X: "{{ variables.v }}"}, command: 'printf "%s" "$X"'}
              - {id: wd, workdir: "/tmp{{ variables.v }}", command: pwd}
              - {id: arg, command: [printf, "%s", "{{ variables.v }}"]}
              - {id: sh, command: 'printf %s {{ variables.v }}'}
              - id: url
                api: {url: "{{ variables.u }}"}
              - id: hdr
                api: {url: "BASE/h?key=KEY", headers: {X: "{{ variables.v }}"}}
            ''')
        r = self.dagrun("run", wf, "--log-format", "json")
        self.assertEqual(r.returncode, 1, r.stderr)
        ends = {e["task"]: e for e in map(json.loads, filter(lambda l: l.startswith("{"),
                                                                r.stderr.splitlines()))
                if e["event"] == "attempt.end"}
        for task, want in (
                ("env", "wf.yaml:4:25: env 'X' of task 'env' holds a NUL character (\\0)"),
                ("wd", "wf.yaml:5:24: the workdir of task 'wd' holds a NUL character (\\0)"),
                ("arg", "the value contains a NUL byte"),
                ("sh", "the value contains a NUL byte"),
                ("url", "url: %s/wf.yaml:9:17: the rendered text holds a NUL character (\\0), "
                        "which a URL cannot hold" % self.dir),
                ("hdr", "a header value may not contain CR, LF or NUL")):
            self.assertEqual(ends[task]["status"], "failed", ends[task])
            self.assertEqual(ends[task]["errorClass"], "permanent", ends[task])
            self.assertIn(want, ends[task]["error"])
        # Nothing went out with a cut value.
        with urllib.request.urlopen("%s/_stats?key=%s" % (self.base, self.key), timeout=10) as f:
            self.assertEqual(json.loads(f.read())["count"], 0)

    def test_a_nul_in_a_json_body_or_a_prompt_is_sent(self):
        model = "nul-" + self.key
        wf = self.write('''\
            name: t
            variables: {v: "a\\0b"}
            tasks:
              - id: post
                api:
                  url: "BASE/p?key=KEY"
                  method: POST
                  body: {lit: "x\\0y", tpl: "{{ variables.v }}"}
              - id: ask
                model: MODEL
                baseUrl: AIURL
                prompt: "p\\0 {{ variables.v }}"
            '''.replace("MODEL", model))
        # A fixed reply: an echo of the prompt would hold the NUL too.
        ai_root = self.ai_base.rsplit("/v1", 1)[0]
        rq = urllib.request.Request("%s/_script?key=%s" % (ai_root, model),
                                    data=b'[{"content": "ok"}]', method="POST")
        urllib.request.urlopen(rq, timeout=10).close()
        r = self.dagrun("run", wf)
        self.assertEqual(r.returncode, 0, r.stderr)
        with urllib.request.urlopen("%s/_requests?key=%s" % (self.base, self.key),
                                    timeout=10) as f:
            body = json.loads(json.loads(f.read())[0]["body"])
        self.assertEqual(body, {"lit": "x\0y", "tpl": "a\0b"})
        with urllib.request.urlopen("%s/_requests?key=%s" % (ai_root, model),
                                    timeout=10) as f:
            sent = json.loads(f.read())[0]["body"]["messages"][-1]["content"]
        self.assertEqual(sent, "p\0 a\0b")


if __name__ == "__main__":
    unittest.main(verbosity=2)
