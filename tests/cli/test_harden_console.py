#!/usr/bin/env python3
"""End-to-end tests of what `dagrun run` shows (issue 9, rules 1 and 3).

A slow or vanished reader of the console never stalls the engine, and what
it could not take is counted, not lost silently; output cut at the 1 MiB
per-attempt cap is reported in the console, the JSON log and the result;
escape sequences from ids, output and errors never reach the terminal; the
JSON log keeps the valid text of output that is not UTF-8, and its exact
bytes. Real processes, real pipes; margins hold on a loaded 2-core machine.
"""
import base64
import json
import os
import re
import signal
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common"))
import harness  # noqa: E402
from harness import DAGRUN, alive  # noqa: E402

NOTICE = re.compile(rb"\[dagrun: (\d+) lines \(([^)]*)\) of output dropped: "
                    rb"the reader is too slow\]")


class HardenConsoleTest(harness.TempDirTest):
    prefix = "dagrun-console-"

    def setUp(self):
        super().setUp()
        self.env = harness.env(DAGRUN=DAGRUN)

    def run_wf(self, path, *args, timeout=120):
        return harness.dagrun("run", path, *args, timeout=timeout, text=False,
                              env_full=self.env)

    def json_lines(self, stderr):
        out = []
        for line in stderr.decode("ascii").splitlines():
            out.append(json.loads(line))   # every line is one JSON object
        return out

    # ---- rule 1: a slow reader -------------------------------------------

    def slow_reader_run(self, args, reader_sleep):
        """Runs the issue's pipeline: a task with timeout: 1s beside a task
        writing 20 MB, the console read by a reader that sleeps first.
        Checks that the timed-out task is dead well before the reader
        wakes; returns what the reader got."""
        pidfile = os.path.join(self.dir, "pid")
        self.write("""\
            name: slow-reader
            tasks:
              - id: hang
                timeout: 1s
                command: echo $$ > pid; exec sleep 60
              - id: spam
                command: sleep 0.5; yes spam-line-of-output | head -c 20000000
            """)
        sh = ('( "$DAGRUN" run wf.yaml -j 4 %s 2>&1 >/dev/null; echo "exit=$?" ) | (sleep %d; cat)'
              % (args, reader_sleep))
        p = subprocess.Popen(["sh", "-c", sh], cwd=self.dir, env=self.env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            t0 = time.monotonic()
            while not os.path.exists(pidfile) and time.monotonic() - t0 < reader_sleep - 4:
                time.sleep(0.05)
            with open(pidfile) as f:
                pid = int(f.read())
            # timeout: 1s must kill it long before the reader wakes.
            while alive(pid) and time.monotonic() - t0 < reader_sleep - 3:
                time.sleep(0.1)
            self.assertFalse(alive(pid), "the task with timeout: 1s is still alive at "
                             "%.1fs: the engine is stalled by the console"
                             % (time.monotonic() - t0))
            out, _ = p.communicate(timeout=120)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        self.assertTrue(out.endswith(b"exit=1\n"), out[-300:])   # hang timed out
        return out[:-len(b"exit=1\n")]

    def test_slow_console_reader_does_not_stall_a_timeout(self):
        out = self.slow_reader_run("-v", 12)
        self.assertIn(b"FAILED    hang (transient): timed out after 1s\n", out)
        notices = NOTICE.findall(out)
        self.assertTrue(notices, "no drop notice in the output")
        dropped = sum(int(n) for n, _ in notices)
        self.assertGreater(dropped, 0)
        m = re.search(rb"dropped (\d+) lines \([^)]*\) of this display: the reader was too slow\n",
                      out)
        self.assertIsNotNone(m, "the summary does not count the dropped lines")
        self.assertEqual(int(m.group(1)), dropped)
        # What was not dropped is whole lines: each spam line is intact.
        spam = [l for l in out.split(b"\n") if l.startswith(b"spam |")]
        self.assertTrue(spam)
        self.assertTrue(all(l == b"spam | spam-line-of-output" for l in spam))
        # Lines shown + lines dropped = every line written (20 MB of
        # 20-byte lines), plus a few status lines among the dropped.
        self.assertGreaterEqual(len(spam) + dropped, 1000000)

    def test_slow_json_log_reader_does_not_stall_a_timeout(self):
        out = self.slow_reader_run("--log-format json --log-level debug", 10)
        events = self.json_lines(out)   # every line whole, every line JSON
        notices = [e for e in events if e["event"] == "log" and "droppedLines" in e]
        self.assertTrue(notices, "no drop notice in the log")
        self.assertTrue(all(e["level"] == "warn" and e["run"] for e in notices))
        end = events[-1]
        self.assertEqual(end["event"], "run.end")
        self.assertEqual(end["droppedLines"], sum(e["droppedLines"] for e in notices))
        self.assertEqual(end["droppedBytes"], sum(e["droppedBytes"] for e in notices))
        hang = [e for e in events if e.get("task") == "hang" and e["event"] == "attempt.end"]
        self.assertEqual(len(hang), 1)
        self.assertIs(hang[0]["timedOut"], True)

    def test_console_reader_that_goes_away_does_not_stop_the_run(self):
        wf = self.write("""\
            name: gone-reader
            tasks:
              - id: talk
                command: sleep 1; yes talking | head -n 200000
              - id: after
                dependencies: [talk]
                command: touch done
            """)
        p = subprocess.Popen([DAGRUN, "run", wf, "-v"], cwd=self.dir, env=self.env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            p.stderr.readline()
            p.stderr.close()          # the reader is gone: writes get EPIPE
            rc = p.wait(timeout=120)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        self.assertEqual(rc, 0)
        self.assertTrue(os.path.exists(os.path.join(self.dir, "done")))

    def test_reader_that_never_reads_holds_no_task_and_yields_to_sigterm(self):
        wf = self.write("""\
            name: stuck-reader
            tasks:
              - id: talk
                command: yes talking | head -n 1000000
              - id: after
                dependencies: [talk]
                command: touch done
            """)
        r, w = os.pipe()   # nobody ever reads r
        p = subprocess.Popen([DAGRUN, "run", wf, "-v"], cwd=self.dir, env=self.env,
                             stdout=subprocess.DEVNULL, stderr=w)
        os.close(w)
        try:
            done = os.path.join(self.dir, "done")
            t0 = time.monotonic()
            while not os.path.exists(done) and time.monotonic() - t0 < 30:
                time.sleep(0.1)
            # The run went on while the display waited...
            self.assertTrue(os.path.exists(done), "the run stalled behind the display")
            # ...and once it is over, waiting for the reader to take the
            # rest does not make dagrun deaf to SIGTERM.
            time.sleep(1)
            p.send_signal(signal.SIGTERM)
            rc = p.wait(timeout=30)
            self.assertIn(rc, (-signal.SIGTERM, 143))
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
            os.close(r)

    # ---- rule 3: output cut at the cap -------------------------------------

    def test_output_over_the_cap_is_reported_everywhere(self):
        wf = self.write("""\
            name: caps
            tasks:
              - id: big
                command: head -c 3000000 /dev/zero | tr '\\0' x; head -c 1500000 /dev/zero | tr '\\0' e >&2
              - id: small
                command: echo fine
              - id: check
                dependencies: [big, small]
                command: >-
                  echo "{{ tasks.big.outputTruncated }} {{ len(tasks.big.output) }}
                  {{ tasks.small.outputTruncated }}" > seen
            """)
        r = self.run_wf(wf)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(b"truncated big: stdout kept its first 1.0 MiB of 2.9 MiB (1.9 MiB dropped), "
                      b"stderr kept its first 1.0 MiB of 1.4 MiB (440.8 KiB dropped)\n", r.stderr)
        self.assertIn(b"truncated output (over 1 MiB per attempt): big (stdout, stderr)\n", r.stderr)
        self.assertNotIn(b"truncated small", r.stderr)
        with open(os.path.join(self.dir, "seen")) as f:
            self.assertEqual(f.read().split(), ["true", str(1 << 20), "false"])

        r = self.run_wf(wf, "--log-format", "json")
        self.assertEqual(r.returncode, 0, r.stderr)
        ends = {e["task"]: e for e in self.json_lines(r.stderr) if e["event"] == "attempt.end"}
        big = ends["big"]
        self.assertIs(big["outputTruncated"], True)
        self.assertEqual(big["outputBytes"], 3000000)
        self.assertEqual(big["outputDroppedBytes"], 3000000 - (1 << 20))
        self.assertIs(big["stderrTruncated"], True)
        self.assertEqual(big["stderrBytes"], 1500000)
        self.assertEqual(big["stderrDroppedBytes"], 1500000 - (1 << 20))
        self.assertNotIn("outputTruncated", ends["small"])

    def test_http_body_over_the_cap_is_reported_too(self):
        with harness.start_http_server() as srv:
            port = srv.port
            wf = self.write("""\
                name: http-cap
                tasks:
                  - id: get
                    api: {url: "http://127.0.0.1:%d/big?size=3000000&ct=text/plain"}
                  - id: check
                    dependencies: [get]
                    command: echo "{{ tasks.get.outputTruncated }} {{ len(tasks.get.output) }}" > seen
                """ % port)
            r = self.run_wf(wf)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn(b"truncated get: stdout kept its first 1.0 MiB of 2.9 MiB "
                          b"(1.9 MiB dropped)\n", r.stderr)
            with open(os.path.join(self.dir, "seen")) as f:
                self.assertEqual(f.read().split(), ["true", str(1 << 20)])

    # ---- rule 3: terminal safety ---------------------------------------------

    def test_escape_sequences_from_ids_output_and_errors_are_neutralised(self):
        raw = (b"\x1b", b"\x07", b"\x00", b"\x9b")
        # An id is only letters, digits, '_' and '-': the hostile one is
        # refused, and the message quoting it is escaped too.
        wf = self.write("""\
            name: hostile-id
            tasks:
              - id: "a\\e]0;PWNED\\a\\e[2J"
                command: "true"
            """)
        for cmd in ("validate", "run"):
            r = harness.dagrun(cmd, wf, timeout=60, text=False, env_full=self.env)
            self.assertEqual(r.returncode, 2, r.stderr)
            for bad in raw:
                self.assertNotIn(bad, r.stderr, "a raw control byte reached the console")
            self.assertIn(b"invalid task id 'a\\x1b]0;PWNED\\x07\\x1b[2J'", r.stderr)
            self.assertIn(b'  - id: "a\\e]0;PWNED\\a\\e[2J"\n', r.stderr)   # the source line
        # At run time: an error message carrying escapes (from an
        # expression), a task's output and its stderr tail.
        wf = self.write("""\
            name: hostile
            tasks:
              - id: boom
                when: 'error("\\27]0;PWNED\\7\\27[2J")'
                command: "true"
              - id: out
                command: >-
                  printf 'x\\033[2Jy\\000z\\n';
                  printf 'err \\033]0;PWNED\\007\\233c\\n' >&2; exit 3
            """)
        for args in ((), ("-v",), ("-q",)):
            r = self.run_wf(wf, *args)
            self.assertEqual(r.returncode, 1, r.stderr)
            err = r.stderr
            for bad in raw:
                self.assertNotIn(bad, err, "a raw control byte reached the console (%r)" % (args,))
            self.assertIn(b"FAILED    boom (permanent): ", err)
            self.assertIn(b"cannot evaluate: \\x1b]0;PWNED\\x07\\x1b[2J\n", err)
            self.assertIn(b"FAILED    out (transient): exit code 3\n", err)
            self.assertIn(b"    | err \\x1b]0;PWNED\\x07\\x9bc\n", err)   # the stderr tail
            if "-v" in args:
                # the whole line, past its NUL
                self.assertIn(b"out | x\\x1b[2Jy\\x00z\n", err)

    # ---- rule 3: lossless JSON logs -------------------------------------------

    def test_json_log_keeps_valid_text_and_exact_bytes_of_invalid_utf8(self):
        wf = self.write("""\
            name: bytes
            tasks:
              - id: mixed
                command: printf 'caf\\303\\251 \\377 ok\\n'
              - id: split
                command: printf 'split \\342\\202'; sleep 1; printf '\\254 end\\n'
              - id: bad
                when: 'error("bad \\255 byte")'
                command: "true"
            """)
        r = self.run_wf(wf, "--log-format", "json", "--log-level", "debug")
        self.assertEqual(r.returncode, 1, r.stderr)
        out, errors = {}, []
        for e in self.json_lines(r.stderr):
            if e["event"] == "task.output":
                out.setdefault(e["task"], []).append(e)
            if e.get("task") == "bad" and e.get("status") == "failed":
                errors.append(e.get("error"))
        # An error message that is not UTF-8 keeps its text, not vanishes.
        self.assertEqual(len(errors), 1)
        self.assertIsNotNone(errors[0])
        self.assertTrue(errors[0].endswith("bad \ufffd byte"), errors[0])
        mixed = out["mixed"]
        self.assertEqual(len(mixed), 1)
        self.assertEqual(mixed[0]["data"], "caf\u00e9 \ufffd ok\n")
        self.assertEqual(base64.b64decode(mixed[0]["dataBase64"]), b"caf\xc3\xa9 \xff ok\n")
        # A character split between two chunks arrives whole, never as U+FFFD.
        split = out["split"]
        self.assertEqual("".join(e["data"] for e in split), "split \u20ac end\n")
        self.assertTrue(all("dataBase64" not in e for e in split))


if __name__ == "__main__":
    unittest.main(verbosity=2)
