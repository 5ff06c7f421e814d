#!/usr/bin/env python3
"""End-to-end tests of the one promptFile reader (issue 10): `dagrun
validate` and `dagrun run` read an AI task's promptFile the same way
(dr_prompt_file_read) and say the same thing about it.

A FIFO (validate used to wait for a writer forever: rule 1), a directory
(validate used to accept it), a missing file and a file over 1 MiB give,
at the promptFile key, the same message from validate as from the run. For
the run to reach its own reader the file must pass validation first: an
upstream task turns the regular file into the bad one, then `validate` is
asked about the result. Template positions in the file are the file's own
lines, in both. Every dagrun has a timeout, so a hang fails.
"""
import json
import os
import sys
import unittest
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common"))
import harness  # noqa: E402

MUTATIONS = {
    "fifo": ("rm p.md && mkfifo p.md", "is a FIFO, not a regular file"),
    "directory": ("rm p.md && mkdir p.md", "is a directory, not a regular file"),
    "missing": ("rm p.md", "No such file or directory"),
    "oversized": ("head -c 1048577 /dev/zero | tr '\\\\0' a > p.md", "is larger than 1 MiB"),
}

WF = """\
    name: prompt-file
    tasks:
      - id: mutate
        command: "MUTATE"
      - id: ask
        dependencies: [mutate]
        model: MODEL
        baseUrl: BASE
        promptFile: p.md
        retry: {maxAttempts: 1}
    """


class PromptFileTest(harness.AiServerTest):
    prefix = "dagrun-prompt-file-"

    def env(self):
        e = harness.loopback_env()
        e.pop("OPENAI_BASE_URL", None)
        e.pop("OPENAI_API_KEY", None)
        return e

    def workflow(self, mutate, model):
        # what an earlier case left (opening a FIFO to write would block)
        p = os.path.join(self.dir, "p.md")
        if os.path.isdir(p) and not os.path.islink(p):
            os.rmdir(p)
        elif os.path.lexists(p):
            os.unlink(p)
        with open(p, "w") as f:
            f.write("Say hello to {{ run.name }}\n")
        return self.write(WF, replace={"MUTATE": mutate, "MODEL": model, "BASE": self.base})

    def requests(self, model):
        url = "%s/_requests?key=%s" % (self.srv.base, model)
        with urllib.request.urlopen(url, timeout=10) as r:
            return json.loads(r.read())

    def run_error(self, wf):
        """The run's error for task ask (the run must fail)."""
        r = harness.dagrun("run", wf, "--log-format", "json", env_full=self.env(),
                           cwd=self.dir, timeout=120)
        self.assertEqual(r.returncode, 1, r.stderr[-3000:])
        ends = [json.loads(l) for l in r.stderr.splitlines() if l.startswith("{")]
        ends = [e for e in ends if e.get("event") == "attempt.end" and e.get("task") == "ask"]
        self.assertEqual(len(ends), 1, r.stderr[-3000:])
        return ends[0]["error"]

    def validate_error(self, wf):
        """validate's one error line, without "error: "."""
        r = harness.dagrun("validate", wf, env_full=self.env(), cwd=self.dir, timeout=60)
        self.assertEqual(r.returncode, 2, r.stderr)
        first = r.stderr.splitlines()[0]
        loc, _, msg = first.partition(": error: ")
        self.assertTrue(msg, first)
        return loc, msg

    def test_a_readable_prompt_file_is_sent(self):
        wf = self.workflow("true", "m-ok")
        r = harness.dagrun("run", wf, env_full=self.env(), cwd=self.dir, timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr)
        reqs = self.requests("m-ok")
        self.assertEqual(len(reqs), 1)
        self.assertEqual(reqs[0]["body"]["messages"][-1]["content"],
                         "Say hello to prompt-file\n")

    def test_validate_and_run_refuse_the_same_files_with_the_same_words(self):
        for kind, (mutate, why) in MUTATIONS.items():
            with self.subTest(kind=kind):
                wf = self.workflow(mutate, "m-" + kind)
                run = self.run_error(wf)
                loc, msg = self.validate_error(wf)
                self.assertEqual(msg, "promptFile 'p.md': " + why)
                self.assertTrue(loc.startswith(wf + ":"), loc)
                # the run: the same place, the same words
                self.assertEqual(run, "%s: %s" % (loc, msg))

    def test_template_positions_in_the_file_are_its_own_lines(self):
        path = os.path.join(self.dir, "p.md")
        wf = self.workflow("true", "m-pos")
        # a runtime error, at line 2 of the file
        with open(path, "w") as f:
            f.write("Hello\nthen {{ error('boom') }}\n")
        run = self.run_error(wf)
        self.assertIn("promptFile 'p.md': %s:2:6: " % path, run)
        self.assertIn("boom", run)
        # a static error, at line 2 of the file, from validate
        with open(path, "w") as f:
            f.write("Hello\nthen {{ nope }}\n")
        loc, msg = self.validate_error(wf)
        self.assertEqual(loc, "%s:2:9" % path)
        self.assertIn("unknown name 'nope'", msg)


if __name__ == "__main__":
    unittest.main()
