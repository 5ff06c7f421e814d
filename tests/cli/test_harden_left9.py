#!/usr/bin/env python3
"""End-to-end: leftovers of issue 9 (hardening) in the engine.

Rule 3 and 4: what a task leaves in the run's temporary directory goes with
it, without following a link out of it. Before the fix, a `$DAGRUN_OUTPUT`
turned into a non-empty directory (or any tree) made dagrun leave its
temporary directory behind, silently.

Rule 3: the stderr tail in the summary is the real end of stderr, even past
the 1 MiB capture cap, and a NUL in it does not cut it; a secret across
its cut is still masked.

Every dagrun runs under a timeout in its own process group.
"""
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common"))
from harness import events  # noqa: E402

DAGRUN = os.path.abspath(os.environ.get("DAGRUN", "build/src/cli/dagrun"))


class HardenLeft9Test(unittest.TestCase):
    def setUp(self):
        # short: dagrun keeps at most 40 bytes of TMPDIR
        self.tmp = tempfile.TemporaryDirectory(prefix="dg9-", dir="/tmp")
        self.dir = self.tmp.name
        self.tmpdir = os.path.join(self.dir, "t")
        os.mkdir(self.tmpdir)

    def tearDown(self):
        # a failed test may leave a tree without permissions
        subprocess.run(["chmod", "-R", "u+rwx", self.dir], capture_output=True)
        self.tmp.cleanup()

    def write(self, text, name="wf.yaml"):
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write(textwrap.dedent(text))
        return path

    def run_dagrun(self, args, env=None, timeout=60):
        p = subprocess.Popen([DAGRUN, *args], cwd=self.dir, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, start_new_session=True,
                             env=dict(os.environ, NO_COLOR="1", TMPDIR=self.tmpdir,
                                      **(env or {})))
        try:
            out, err = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.communicate()
            self.fail("dagrun did not finish within %d s" % timeout)
        return p.returncode, out, err

    def outside(self):
        """A directory outside the run's, with a file that must survive."""
        d = os.path.join(self.dir, "keep")
        os.mkdir(d)
        with open(os.path.join(d, "precious"), "w") as f:
            f.write("mine\n")
        return d

    def assert_outside_intact(self, d):
        self.assertEqual(os.listdir(d), ["precious"])
        with open(os.path.join(d, "precious")) as f:
            self.assertEqual(f.read(), "mine\n")

    # ---- the temporary directory ---------------------------------------------

    def test_a_tree_left_in_dagrun_output_is_removed_without_following_links(self):
        keep = self.outside()
        wf = self.write("""\
            name: tree
            tasks:
              - id: tree
                command: |
                  o="$DAGRUN_OUTPUT"
                  rm -f "$o"
                  mkdir -p "$o/a/b/c" "$o/.hidden/x"
                  echo 1 > "$o/a/b/c/f"; echo 2 > "$o/.hidden/x/.g"; echo 3 > "$o/a/f"
                  ln -s "%s" "$o/a/link-to-dir"
                  ln -s "%s/precious" "$o/a/b/link-to-file"
                  mkdir "$o/a/locked"; echo 4 > "$o/a/locked/f"; chmod 500 "$o/a/locked"
                  ln -s "%s" "$(dirname "$o")/beside"
                  mkdir "$(dirname "$o")/extra"; echo 5 > "$(dirname "$o")/extra/f"
              - id: retried
                retry: {maxAttempts: 2, initialDelay: 10ms}
                command: |
                  rm -f "$DAGRUN_OUTPUT"; mkdir -p "$DAGRUN_OUTPUT/d"
                  [ "$DAGRUN_ATTEMPT" = 2 ]
            """ % (keep, keep, keep))
        rc, _out, err = self.run_dagrun(["run", wf, "--log-format", "json"])
        self.assertEqual(rc, 0, err[-2000:])
        self.assertEqual(os.listdir(self.tmpdir), [], "the run's temporary directory stays")
        self.assert_outside_intact(keep)
        self.assertNotIn(b"temporary directory", err)

    def test_a_temporary_directory_replaced_by_a_link_is_not_followed(self):
        keep = self.outside()
        wf = self.write("""\
            name: swap
            tasks:
              - id: swap
                command: |
                  d="$(dirname "$DAGRUN_OUTPUT")"
                  rm -rf "$d" && ln -s "%s" "$d"
            """ % keep)
        rc, _out, err = self.run_dagrun(["run", wf, "--log-format", "json"])
        self.assertEqual(rc, 0, err[-2000:])
        self.assertEqual(os.listdir(self.tmpdir), [])   # the link is gone
        self.assert_outside_intact(keep)                # its target was not emptied

    def test_a_tree_too_deep_to_remove_is_warned_about(self):
        wf = self.write("""\
            name: deep
            tasks:
              - id: deep
                command: |
                  rm -f "$DAGRUN_OUTPUT"
                  mkdir -p "$DAGRUN_OUTPUT/$(printf 'd/%.0s' $(seq 100))"
            """)
        rc, _out, err = self.run_dagrun(["run", wf, "--log-format", "json"])
        self.assertEqual(rc, 0, err[-2000:])
        warn = [e for e in events(err.decode()) if e.get("event") == "log"
                and "temporary directory" in e.get("message", "")]
        self.assertEqual(len(warn), 1, err[-2000:])
        self.assertEqual(warn[0]["level"], "warn")
        self.assertIn("a task left a tree deeper than 32 levels", warn[0]["message"])
        left = os.listdir(self.tmpdir)
        self.assertEqual(len(left), 1)
        self.assertIn(os.path.join(self.tmpdir, left[0]), warn[0]["message"])

    # ---- the stderr tail in the summary ----------------------------------------

    def failed_with_stderr(self, tail_py, env=None):
        """Runs a task that writes 2 MiB of lines to stderr (past the 1 MiB
        capture cap), then what tail_py writes to e, and fails; returns
        the tail the summary shows (its `    | ` lines, joined)."""
        wf = self.write("""\
            name: tail
            tasks:
              - id: big
                env: {T: "{{ secrets.TOKEN }}"}
                interpreter: python3
                script: |
                  import os, sys
                  e = sys.stderr.buffer
                  for i in range(21000):
                      e.write(b"x" * 99 + b"\\n")
                  %s
                  sys.exit(1)
            """ % tail_py)
        rc, _out, err = self.run_dagrun(["run", wf], env=env)
        self.assertEqual(rc, 1, err[-2000:])
        text = err.decode("utf-8", "replace")
        summary = text[text.index("failed big"):]
        return "\n".join(l[6:] for l in summary.splitlines() if l.startswith("    | "))

    def test_the_stderr_tail_is_the_real_end_past_the_capture_cap(self):
        tail = self.failed_with_stderr(r'e.write(b"the real end\0after the nul\n")',
                                       env={"TOKEN": "unused-secret-1234"})
        # the last line, whole, its NUL shown escaped: not the end of the
        # first MiB, not cut at the NUL
        lines = tail.splitlines()
        self.assertEqual(lines[-1], r"the real end\x00after the nul")
        self.assertEqual(set(lines[:-1]), {"x" * 99})

    def test_a_secret_across_the_tail_cut_past_the_cap_is_masked(self):
        secret = "s3cr3t-TOKEN-value-42"
        # the last 2048 bytes start 10 bytes into the secret, no newline after
        tail = self.failed_with_stderr(
            r'e.write(b"A" * 100 + os.environ["T"].encode() + b"B" * (2048 - 11))',
            env={"TOKEN": secret})
        self.assertTrue(tail.endswith("B" * 2037), tail[:100])
        for k in range(0, len(secret) - 3):
            self.assertNotIn(secret[k:], tail)
        self.assertIn("***", tail)

    def test_a_nul_in_a_short_stderr_does_not_cut_the_tail(self):
        wf = self.write("""\
            name: nul
            tasks:
              - {id: nul, command: "printf 'before\\\\0after\\\\n' >&2; exit 3"}
            """)
        rc, _out, err = self.run_dagrun(["run", wf])
        self.assertEqual(rc, 1, err[-2000:])
        text = err.decode("utf-8", "replace")
        self.assertIn("    | before\\x00after", text[text.index("failed nul"):])


if __name__ == "__main__":
    unittest.main(verbosity=2)
