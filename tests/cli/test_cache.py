#!/usr/bin/env python3
"""End-to-end tests of the cache (README "Cache").

Every task appends its id to ran.log when it really runs, so a test sees
what ran and what did not; the JSON log gives each decision and its reason.
  - run twice: the second runs nothing, each task `hit (run R)`;
  - an input file changed: exactly that task and what reads its result
    run again, with `input changed: PATH` and `upstream result changed`;
  - ttl expiry; --no-cache; cache clear (all, one task);
  - a webhook is never cached; an api POST is not cached from defaults
    (a GET is), but is with `cache` on the task (the server counts);
  - explain prints the components and what differs;
  - a secret's value is in no component (only its name), and changing it
    is not a miss;
  - `cache:` errors are reported at FILE:LINE:COL.
"""
import json
import os
import sqlite3
import sys
import time
import unittest
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common"))
import harness  # noqa: E402

WF = """\
    name: cache-demo
    defaults:
      cache: true
    tasks:
      - id: build
        cache:
          inputs: ["src/*.c"]
        command: "echo build >> ran.log; cat src/a.c; echo ver=1 >> $DAGRUN_OUTPUT"
      - id: test
        dependencies: [build]
        command: "echo test >> ran.log; echo tested {{ tasks.build.output }} {{ tasks.build.outputs.ver }}"
      - id: lint
        cache:
          inputs: ["src/b.c"]
        command: "echo lint >> ran.log"
      - id: package
        dependencies: [test]
        command: "echo package >> ran.log; echo {{ tasks.test.output }}"
    """


class CacheTest(harness.TempDirTest):
    prefix = "dagrun-cache-"

    def setUp(self):
        super().setUp()
        self.state = os.path.join(self.dir, "state")
        os.mkdir(os.path.join(self.dir, "src"))
        self.put("src/a.c", "int a;\n")
        self.put("src/b.c", "int b;\n")

    def put(self, name, text):
        with open(os.path.join(self.dir, name), "w") as f:
            f.write(text)

    def ran(self):
        """Task ids appended to ran.log since the last call."""
        path = os.path.join(self.dir, "ran.log")
        if not os.path.exists(path):
            return []
        with open(path) as f:
            lines = f.read().split()
        os.unlink(path)
        return sorted(lines)

    def run_wf(self, wf, *args, env=None, code=0):
        r = harness.dagrun("run", wf, "--state", self.state, "--log-format", "json", *args,
                           cwd=self.dir, env_extra=env, timeout=120)
        self.assertEqual(r.returncode, code, r.stdout[-2000:] + r.stderr[-3000:])
        events = [json.loads(l) for l in r.stderr.splitlines() if l.startswith("{")]
        ends = {e["task"]: e for e in events if e.get("event") == "attempt.end"}
        run = next(e["run"] for e in events if e.get("event") == "run.start")
        return run, ends, r

    def reasons(self, ends):
        return {t: e.get("cache") for t, e in ends.items()}

    def test_a_second_run_runs_nothing_and_says_hit(self):
        wf = self.write(WF)
        run1, ends, _ = self.run_wf(wf)
        self.assertEqual(self.ran(), ["build", "lint", "package", "test"])
        for t, e in ends.items():
            self.assertIs(e["cached"], False, e)
            self.assertEqual(e["cache"], "miss: no earlier run", e)
        run2, ends, _ = self.run_wf(wf)
        self.assertEqual(self.ran(), [])
        self.assertEqual(set(ends), {"build", "test", "lint", "package"})
        for t, e in ends.items():
            self.assertIs(e["cached"], True, e)
            self.assertEqual(e["status"], "completed")
            self.assertEqual(e["cache"], "hit (run %s)" % run1, e)
        # the recorded results fed the dependents: the same rendered command
        # (package reads test's output, which read build's)
        # show, stats: the hit is marked, the rate is real (1 hit in 2 runs)
        r = harness.dagrun("show", run2, "--format", "json", "--state", self.state,
                           cwd=self.dir, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        for t in json.loads(r.stdout)["tasks"]:
            self.assertIs(t["attempts"][-1]["cached"], True, t)
        r = harness.dagrun("show", run2, "--state", self.state, cwd=self.dir, timeout=60)
        self.assertRegex(r.stdout, r"build\s+completed\s+1\s+cached")
        r = harness.dagrun("stats", "--format", "json", "--state", self.state,
                           cwd=self.dir, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        tasks = {t["task"]: t for t in json.loads(r.stdout)["workflows"][0]["tasks"]}
        self.assertEqual(tasks["build"]["cacheHitRate"], 0.5)
        # a cached attempt is no duration sample
        self.assertEqual(tasks["build"]["duration"]["attempts"], 1)
        # the console says it too
        r = harness.dagrun("run", wf, "--state", self.state, "-v", cwd=self.dir, timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("ok        build (cached)", r.stderr)
        self.assertIn("cache     lint: hit (run ", r.stderr)
        self.assertIn("cached: 4 tasks completed from the cache", r.stderr)
        self.assertEqual(self.ran(), [])

    def test_hits_read_their_results_on_the_pool_beyond_the_load_budget(self):
        wf = self.write(WF)
        run1, _, _ = self.run_wf(wf)
        self.ran()
        # no result read with the entries: every hit reads its own
        _, ends, _ = self.run_wf(wf, env={"DAGRUN_TEST_CACHE_LOAD_BYTES": "0"})
        self.assertEqual(self.ran(), [])
        for e in ends.values():
            self.assertEqual(e["cache"], "hit (run %s)" % run1, e)
        # the results fed the dependents (the same rendered commands: hits)
        self.assertEqual(set(ends), {"build", "test", "lint", "package"})

    def test_a_changed_input_reruns_that_task_and_what_reads_it(self):
        wf = self.write(WF)
        self.run_wf(wf)
        self.ran()
        self.put("src/a.c", "int a = 2;\n")
        _, ends, _ = self.run_wf(wf)
        self.assertEqual(self.ran(), ["build", "package", "test"])
        why = self.reasons(ends)
        self.assertEqual(why["build"], "miss: input changed: src/a.c")
        self.assertTrue(why["test"].startswith("miss: upstream result changed: build"), why)
        self.assertTrue(why["package"].startswith("miss: upstream result changed: test"), why)
        self.assertTrue(why["lint"].startswith("hit (run "), why)
        # src/b.c: lint only (build's output does not change: its
        # dependents hit)
        self.put("src/b.c", "int b = 3;\n")
        _, ends, _ = self.run_wf(wf)
        self.assertEqual(self.ran(), ["build", "lint"])
        why = self.reasons(ends)
        self.assertEqual(why["lint"], "miss: input changed: src/b.c")
        self.assertEqual(why["build"], "miss: input changed: src/b.c")
        self.assertTrue(why["test"].startswith("hit"), why)
        # an edited command
        wf2 = self.write(WF.replace("echo lint >>", "echo lint; echo lint >>"), name="wf2.yaml")
        _, ends, _ = self.run_wf(wf2)
        self.assertEqual(self.ran(), ["lint"])
        self.assertEqual(self.reasons(ends)["lint"], "miss: command changed")

    def test_dry_run_says_what_the_cache_would_decide_and_runs_nothing(self):
        wf = self.write(WF)
        r = harness.dagrun("run", wf, "--dry-run", "--state", self.state, cwd=self.dir,
                           timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("build\n# cache: miss: no earlier run\n", r.stdout)
        run1, _, _ = self.run_wf(wf)
        self.ran()
        self.put("src/b.c", "int b = 9;\n")
        r = harness.dagrun("run", wf, "--dry-run", "--state", self.state, cwd=self.dir,
                           timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("lint\n# cache: miss: input changed: src/b.c\n", r.stdout)
        self.assertIn("test\n# cache: decided when it runs (it reads the result of 'build')",
                      r.stdout)
        self.put("src/b.c", "int b;\n")
        r = harness.dagrun("run", wf, "--dry-run", "--state", self.state, cwd=self.dir,
                           timeout=60)
        self.assertIn("lint\n# cache: hit (run %s)\n" % run1, r.stdout)
        self.assertEqual(self.ran(), [])

    def test_an_entry_older_than_its_ttl_is_a_miss(self):
        wf = self.write("""\
            name: cache-ttl
            tasks:
              - id: t
                cache: {ttl: 1s}
                command: "echo t >> ran.log"
            """)
        self.run_wf(wf)
        time.sleep(3)
        _, ends, _ = self.run_wf(wf)
        self.assertEqual(self.ran(), ["t", "t"])
        self.assertEqual(self.reasons(ends)["t"], "miss: expired")

    def test_no_cache_runs_everything_and_still_writes_entries(self):
        wf = self.write(WF)
        self.run_wf(wf)
        self.ran()
        _, ends, _ = self.run_wf(wf, "--no-cache")
        self.assertEqual(self.ran(), ["build", "lint", "package", "test"])
        for e in ends.values():
            self.assertEqual(e["cache"], "miss: --no-cache")
        _, ends, _ = self.run_wf(wf)
        self.assertEqual(self.ran(), [])

    def test_cache_clear_of_one_task_then_of_the_workflow(self):
        wf = self.write(WF)
        self.run_wf(wf)
        self.ran()
        r = harness.dagrun("cache", "clear", "cache-demo", "lint", "--state", self.state,
                           cwd=self.dir, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("cleared 1 cache entry", r.stdout)
        _, ends, _ = self.run_wf(wf)
        self.assertEqual(self.ran(), ["lint"])
        self.assertEqual(self.reasons(ends)["lint"], "miss: no earlier run")
        r = harness.dagrun("cache", "clear", "cache-demo", "--state", self.state,
                           cwd=self.dir, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("cleared 4 cache entries", r.stdout)
        self.run_wf(wf)
        self.assertEqual(self.ran(), ["build", "lint", "package", "test"])

    def test_explain_prints_the_components_and_what_changed(self):
        wf = self.write(WF)
        self.run_wf(wf)
        self.put("src/a.c", "int a = 5;\n")
        run2, _, _ = self.run_wf(wf)
        r = harness.dagrun("explain", "build", "--state", self.state, cwd=self.dir, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("written by run " + run2, r.stdout)
        lines = r.stdout.splitlines()
        self.assertTrue(any(l.startswith("*") and "file:src/a.c" in l for l in lines), r.stdout)
        self.assertTrue(any(l.startswith(" ") and "file:src/b.c" in l for l in lines), r.stdout)
        self.assertIn("miss: input changed: src/a.c", r.stdout)
        r = harness.dagrun("explain", "test", "--run", run2, "-f", wf, "--format", "json",
                           "--state", self.state, cwd=self.dir, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        doc = json.loads(r.stdout)
        self.assertEqual(doc["run"], run2)
        self.assertIn("upstream:build", doc["components"])
        self.assertIn("upstream:build", doc["changed"])
        r = harness.dagrun("explain", "nosuch", "--state", self.state, cwd=self.dir,
                           timeout=60)
        self.assertEqual(r.returncode, 2)
        self.assertIn("no cache entry for task 'nosuch'", r.stderr)

    def test_a_secret_value_is_in_no_component_and_its_change_is_no_miss(self):
        secret = "s3cr3t-value-91c2f"
        wf = self.write("""\
            name: cache-secret
            tasks:
              - id: call
                cache: {key: ["v1 {{ secrets.TOKEN }}"], env: [CACHE_TEST_ENV]}
                command: "echo call >> ran.log; echo token={{ secrets.TOKEN }} > /dev/null"
            """)
        sf = os.path.join(self.dir, "secrets.env")
        with open(sf, "w") as f:
            f.write("TOKEN=%s\n" % secret)
        os.chmod(sf, 0o600)
        self.run_wf(wf, "--secrets-file", sf, env={"CACHE_TEST_ENV": "one"})
        with open(sf, "w") as f:
            f.write("TOKEN=another-secret-77aa\n")
        _, ends, _ = self.run_wf(wf, "--secrets-file", sf, env={"CACHE_TEST_ENV": "one"})
        self.assertTrue(self.reasons(ends)["call"].startswith("hit"), ends)
        _, ends, _ = self.run_wf(wf, "--secrets-file", sf, env={"CACHE_TEST_ENV": "two"})
        self.assertEqual(self.reasons(ends)["call"], "miss: env changed: CACHE_TEST_ENV")
        self.assertEqual(self.ran(), ["call", "call"])
        r = harness.dagrun("explain", "call", "--format", "json", "--state", self.state,
                           cwd=self.dir, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        doc = json.loads(r.stdout)
        self.assertEqual(doc["components"]["secrets"], "TOKEN")
        self.assertNotIn(secret, r.stdout)
        db = sqlite3.connect(os.path.join(self.state, "state.db"))
        try:
            parts = [row[0] for row in db.execute("SELECT parts FROM cache")]
        finally:
            db.close()
        self.assertTrue(parts)
        for p in parts:
            self.assertNotIn(secret, p)
            self.assertNotIn("another-secret", p)

    def test_a_cache_entry_that_cannot_be_written_fails_the_run_and_says_so(self):
        wf = self.write(WF)
        self.run_wf(wf)
        self.ran()
        db = sqlite3.connect(os.path.join(self.state, "state.db"))
        try:
            db.execute("CREATE TRIGGER refuse BEFORE INSERT ON cache BEGIN"
                       " SELECT RAISE(ABORT, 'injected: no room'); END")
            db.commit()
        finally:
            db.close()
        self.put("src/b.c", "int b = 4;\n")
        r = harness.dagrun("run", wf, "--state", self.state, cwd=self.dir, timeout=120)
        self.assertEqual(r.returncode, 3, r.stdout + r.stderr)
        self.assertIn("cannot write the cache entry of task", r.stderr)
        self.assertIn("injected: no room", r.stderr)

    def test_a_sub_workflow_is_never_cached_and_no_state_says_nothing_is(self):
        self.write("""\
            name: child
            tasks:
              - id: c
                cache: true
                command: "echo child >> ran.log"
            """, name="child.yaml")
        wf = self.write("""\
            name: cache-parent
            defaults:
              cache: true
            tasks:
              - id: sub
                cache: true
                workflow: child.yaml
            onSuccess:
              - id: notify
                command: "echo notify >> ran.log"
            """)
        for _ in range(2):
            _, ends, r = self.run_wf(wf)
        self.assertEqual(self.ran(), ["child", "child", "notify", "notify"])
        self.assertEqual(ends["sub"]["cache"], "not cached: its kind has no canonical inputs")
        self.assertEqual(ends["sub.c"]["cache"],
                         "not cached: a task of a sub-workflow is never cached")
        self.assertEqual(ends["notify"]["cache"],
                         "not cached: a hook takes `cache` from the task itself only")
        self.assertIn("task 'sub': cache: a task of this kind is never cached", r.stderr)
        r = harness.dagrun("run", self.write(WF, name="plain.yaml"), "--no-state",
                           cwd=self.dir, timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("the run is not recorded (no state directory): tasks with `cache` run, "
                      "and nothing is cached", r.stderr)

    def test_a_template_that_fails_fails_the_task_with_its_message(self):
        wf = self.write("""\
            name: cache-bad-template
            tasks:
              - id: a
                command: "echo '{\\"x\\": 1}'"
              - id: b
                dependencies: [a]
                cache: true
                command: "echo {{ tasks.a.json.x.y.z }}"
            """)
        _, ends, r = self.run_wf(wf, code=1)
        self.assertEqual(ends["b"]["cache"], "not cached: its inputs cannot be rendered")
        self.assertIn("wf.yaml:8:", ends["b"]["error"])
        self.assertIn("template error", ends["b"]["error"])

    def test_cache_errors_are_reported_at_their_place(self):
        wf = self.write("""\
            name: cache-bad
            tasks:
              - id: a
                cache: {inputs: 3, ttl: -1s, nope: 1}
                command: "true"
              - id: b
                cache: {env: ["not a name"]}
                command: "true"
            """)
        r = harness.dagrun("validate", wf, cwd=self.dir, timeout=60)
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        out = r.stdout + r.stderr
        self.assertIn("wf.yaml:4:", out)
        self.assertIn("nope", out)
        self.assertIn("wf.yaml:7:", out)
        self.assertIn("'not a name' is not an environment variable name", out)


class SideEffectTest(harness.TempDirTest):
    prefix = "dagrun-cache-http-"

    def count(self, base, key):
        with urllib.request.urlopen(base + "/_stats?key=" + key, timeout=30) as f:
            return json.load(f)["count"]

    def test_webhooks_and_posts_from_defaults_are_never_cached(self):
        state = os.path.join(self.dir, "state")
        with harness.start_http_server() as h:
            wf = self.write("""\
                name: cache-http
                defaults:
                  cache: true
                tasks:
                  - id: get
                    api: {url: "BASE/x?key=get"}
                  - id: post
                    api: {url: "BASE/x?key=post", method: POST, body: {a: 1}}
                  - id: post_own
                    cache: true
                    api: {url: "BASE/x?key=postown", method: POST, body: {a: 1}}
                  - id: hook
                    cache: true
                    webhook: {url: "BASE/x?key=hook"}
                """, replace={"BASE": h.base})
            results = []
            for _ in range(2):
                r = harness.dagrun("run", wf, "--state", state, "--log-format", "json",
                                   env_full=harness.loopback_env(), cwd=self.dir, timeout=120)
                self.assertEqual(r.returncode, 0, r.stderr[-3000:])
                results.append(r.stderr)
            self.assertEqual(self.count(h.base, "get"), 1)
            self.assertEqual(self.count(h.base, "postown"), 1)
            self.assertEqual(self.count(h.base, "post"), 2)
            self.assertEqual(self.count(h.base, "hook"), 2)
        ends = {}
        for l in results[1].splitlines():
            if l.startswith("{"):
                e = json.loads(l)
                if e.get("event") == "attempt.end":
                    ends[e["task"]] = e
        self.assertTrue(ends["get"]["cached"])
        self.assertEqual(ends["hook"]["cache"], "not cached: webhooks are never cached")
        self.assertIs(ends["hook"]["cached"], False)
        self.assertIn("takes `cache` from the task itself only", ends["post"]["cache"])
        # both said with a warning, naming the task
        self.assertIn("task 'hook': cache: webhooks are never cached", results[0])
        self.assertIn("task 'post': cache: an api request other than GET or HEAD", results[0])


if __name__ == "__main__":
    unittest.main()
