#!/usr/bin/env python3
"""End-to-end tests of data flow between tasks: templates, conditions,
`when`, outputs, variables and secrets, with real processes.

The hostile-value tests put shell syntax into upstream outputs and check,
by running the commands for real, that every value arrives as literal text
and that no canary file is ever created.
"""
import json
import os
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common"))
import harness  # noqa: E402

HOSTILE = [
    "$(touch {canary})",
    "`touch {canary}`",
    "; touch {canary}",
    "a\ntouch {canary}",
    "it's \"quoted\" 'twice'",
    "${{IFS}}touch${{IFS}}{canary}",
    "\\\\ back\\slash \\n",
    "'\\'' ; touch {canary} ; echo '",
    "\" ; touch {canary} ; echo \"",
    "$HOME $$ $? $1 ${{HOME}}",
    "&& touch {canary} || touch {canary} | cat > {canary}",
    "* ? [a-z] ~ #not a comment",
]


class FlowTest(harness.TempDirTest):
    prefix = "dagrun-flow-"

    def setUp(self):
        super().setUp()
        self.canary = os.path.join(self.dir, "canary")

    def run_cli(self, *args, env=None, timeout=120):
        return harness.dagrun(*args, env_extra=env, timeout=timeout)

    # ---- passing data ---------------------------------------------------------

    def test_json_flows_from_a_script_to_a_command_to_a_condition(self):
        wf = self.write("""\
            name: pipeline
            variables: {threshold: 2}
            tasks:
              - id: measure
                interpreter: python3
                script: |
                  import json, os
                  print(json.dumps({"count": 3, "items": ["a", "b", "c"]}))
                  with open(os.environ["DAGRUN_OUTPUT"], "a") as f:
                      f.write("verdict=big\\nreport<<END\\nline one\\nline two\\nEND\\n")
              - id: show
                dependencies: [measure]
                command: echo "{{ tasks.measure.json.count }} {{ tasks.measure.json.items[2] }} {{ tasks.measure.outputs.verdict }}" > out.txt
              - id: big
                dependencies:
                  - taskId: measure
                    condition: json.count > variables.threshold and outputs.verdict == "big"
                command: [sh, -c, 'printf "%s" "$0" > big.txt', "{{ tasks.measure.outputs.report }}"]
              - id: small
                dependencies:
                  - taskId: measure
                    condition: json.count <= variables.threshold
                command: touch small.txt
              - id: after-small
                dependencies: [small]
                command: touch after-small.txt
            """)
        r = self.run_cli("run", wf)
        # a skipped task fails its blocking dependents (class dependency)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("after-small (dependency): dependency 'small' skipped", r.stderr)
        self.assertEqual(self.read("out.txt"), "3 b big\n")
        self.assertEqual(self.read("big.txt"), "line one\nline two")
        self.assertFalse(os.path.exists(os.path.join(self.dir, "small.txt")))
        self.assertFalse(os.path.exists(os.path.join(self.dir, "after-small.txt")))
        self.assertIn("skipped   small", r.stderr)

    def test_conditional_cleanup_runs_only_on_failure(self):
        wf = self.write("""\
            name: cleanup
            tasks:
              - id: work
                command: sh -c 'exit {{ variables.code }}'
              - id: on-fail
                dependencies:
                  - {taskId: work, type: non-blocking, condition: 'status == "failed"'}
                command: touch cleaned.txt
            variables: {code: "0"}
            """)
        r = self.run_cli("run", wf)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.dir, "cleaned.txt")))
        r = self.run_cli("run", wf, "--var", "code=3")
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertTrue(os.path.exists(os.path.join(self.dir, "cleaned.txt")))

    def test_when_false_skips_and_var_overrides(self):
        wf = self.write("""\
            name: when
            variables: {env: staging}
            tasks:
              - id: deploy
                when: variables.env == "prod"
                command: touch deployed.txt
            """)
        r = self.run_cli("run", wf)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("skipped", r.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.dir, "deployed.txt")))
        r = self.run_cli("run", wf, "--var", "env=prod")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(os.path.exists(os.path.join(self.dir, "deployed.txt")))
        r = self.run_cli("run", wf, "--var", "envv=prod")
        self.assertEqual(r.returncode, 2)
        self.assertIn("envv", r.stderr)

    def test_evaluation_error_fails_the_task_as_permanent_with_its_position(self):
        wf = self.write("""\
            name: bad-eval
            tasks:
              - id: a
                command: echo notjson
              - id: b
                dependencies:
                  - taskId: a
                    condition: json.x > 1
                command: touch ran.txt
            """)
        r = self.run_cli("run", wf)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("permanent", r.stderr)
        self.assertIn("wf.yaml:8:20: cannot evaluate", r.stderr)
        self.assertFalse(os.path.exists(os.path.join(self.dir, "ran.txt")))

    # ---- shell safety ------------------------------------------------------------

    def hostile_workflow(self, value):
        payload = json.dumps({"v": value})
        outs = os.path.join(self.dir, "outs")
        return self.write("""\
            name: hostile
            tasks:
              - id: src
                interpreter: python3
                script: |
                  import sys
                  sys.stdout.write(open(%(p)r).read())
              - id: bare
                dependencies: [src]
                command: printf '%%s' {{ tasks.src.json.v }} > %(o)s.bare
              - id: dq
                dependencies: [src]
                command: printf '%%s' "{{ tasks.src.json.v }}" > %(o)s.dq
              - id: sq
                dependencies: [src]
                command: printf '%%s' '{{ tasks.src.json.v }}' > %(o)s.sq
              - id: mixed
                dependencies: [src]
                command: printf '%%s' "x{{ tasks.src.json.v }}"y'{{ tasks.src.json.v }}'z{{ tasks.src.json.v }} > %(o)s.mixed
              - id: argv
                dependencies: [src]
                command: [sh, -c, 'printf "%%s" "$1" > "$2"', sh, "{{ tasks.src.json.v }}", "%(o)s.argv"]
              - id: script
                dependencies: [src]
                script: |
                  v={{ tasks.src.json.v }}
                  printf '%%s' "$v" > %(o)s.script
                  printf '%%s' "{{ tasks.src.json.v }}" > %(o)s.script-dq
                  cat > %(o)s.heredoc <<EOF
                  {{ tasks.src.json.v }}
                  EOF
              - id: env
                dependencies: [src]
                env: {V: "{{ tasks.src.json.v }}"}
                command: sh -c 'printf "%%s" "$V" > %(o)s.env'
            """ % {"p": self.payload_file(payload), "o": outs}), outs

    def payload_file(self, payload):
        p = os.path.join(self.dir, "payload.json")
        with open(p, "w") as f:
            f.write(payload)
        return p

    def test_hostile_upstream_output_is_always_literal_text(self):
        for template in HOSTILE:
            value = template.format(canary=self.canary)
            wf, outs = self.hostile_workflow(value)
            r = self.run_cli("run", wf)
            self.assertEqual(r.returncode, 0, "%r: %s" % (value, r.stderr))
            self.assertFalse(os.path.exists(self.canary), "canary created by %r" % value)
            for kind in ("bare", "dq", "sq", "argv", "script", "script-dq", "env"):
                with open("%s.%s" % (outs, kind)) as f:
                    self.assertEqual(f.read(), value, "%s: %r" % (kind, value))
            with open(outs + ".mixed") as f:
                self.assertEqual(f.read(), "x%sy%sz%s" % (value, value, value))
            with open(outs + ".heredoc") as f:
                self.assertEqual(f.read(), value + "\n")

    def test_non_shell_script_with_a_template_is_refused(self):
        wf = self.write("""\
            name: py
            tasks:
              - id: p
                interpreter: python3
                script: |
                  print("{{ variables.x }}")
            variables: {x: 1}
            """)
        r = self.run_cli("validate", wf)
        self.assertEqual(r.returncode, 2)
        self.assertIn("wf.yaml:6:", r.stderr)
        self.assertIn("env", r.stderr)

    # ---- secrets -------------------------------------------------------------------

    SECRET = "s3cr3t-Tok3n/with+chars"

    def secret_workflow(self):
        return self.write("""\
            name: secrets
            tasks:
              - id: leak
                env: {TOKEN: "{{ secrets.API_TOKEN }}"}
                script: |
                  echo "plain: $TOKEN"
                  printf 'split: %s' "$(printf '%s' "$TOKEN" | cut -c1-6)"
                  sleep 0.3
                  printf '%s\\n' "$(printf '%s' "$TOKEN" | cut -c7-)"
                  printf 'b64: %s\\n' "$(printf '%s' "$TOKEN" | base64)"
                  echo "err: $TOKEN" >&2
                  exit 3
              - id: reads
                dependencies: [{taskId: leak, type: non-blocking}]
                command: echo "upstream said {{ tasks.leak.output }}"
            """)

    def check_no_secret(self, text):
        import base64
        import urllib.parse
        self.assertNotIn(self.SECRET, text)
        self.assertNotIn(base64.b64encode(self.SECRET.encode()).decode(), text)
        self.assertNotIn(urllib.parse.quote(self.SECRET, safe=""), text)
        self.assertNotIn(self.SECRET[6:], text)  # the second half of the split

    def test_secrets_never_appear_in_console_json_log_or_results(self):
        wf = self.secret_workflow()
        env = {"API_TOKEN": self.SECRET}
        r = self.run_cli("run", "-v", wf, env=env)
        self.assertEqual(r.returncode, 1)
        self.assertIn("***", r.stderr)
        self.check_no_secret(r.stdout + r.stderr)
        r = self.run_cli("run", "--log-format", "json", "--log-level", "debug", wf, env=env)
        self.check_no_secret(r.stdout + r.stderr)
        events = [json.loads(l) for l in r.stderr.splitlines()]
        chunks = "".join(e.get("data", "") for e in events if e["event"] == "task.output"
                         and e["task"] == "leak")
        self.assertIn("plain: ***", chunks)
        self.assertIn("split: ***", chunks)
        reads = "".join(e.get("data", "") for e in events if e["event"] == "task.output"
                        and e["task"] == "reads")
        self.assertIn("upstream said", reads)

    def test_secrets_file_is_read_and_must_be_private(self):
        wf = self.write("""\
            name: sf
            tasks:
              - id: use
                command: sh -c 'echo "$T" > got.txt; echo "$T"'
                env: {T: "{{ secrets.FROM_FILE }}"}
            """)
        sf = os.path.join(self.dir, "secrets.env")
        with open(sf, "w") as f:
            f.write("# comment\nFROM_FILE=file-secret-value\n")
        os.chmod(sf, 0o644)
        r = self.run_cli("run", wf, "--secrets-file", sf)
        self.assertEqual(r.returncode, 2)
        self.assertIn("chmod 600", r.stderr)
        os.chmod(sf, 0o600)
        r = self.run_cli("run", "-v", wf, "--secrets-file", sf)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.read("got.txt"), "file-secret-value\n")
        self.assertNotIn("file-secret-value", r.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
