#!/usr/bin/env python3
"""The installed library, as a user gets it (suite 'install').

  test_install.py CONSUMER.c

Environment (set by tests/install/meson.build): BUILDDIR, MESON, PKG_CONFIG,
CC (the project's compiler command), SANITIZE (the build's b_sanitize).

1. `meson install --destdir TMP` installs the build into a temporary tree.
2. The header, the pkg-config file and libdagrun.so.SOVERSION are there, and
   the library's SONAME is libdagrun.so.<major>.
3. `nm -D --defined-only` on the library: every exported symbol is dagrun_*,
   and the public functions are all there (none of buf_add, read_map, ...).
4. CONSUMER.c, which includes only <dagrun.h>, is compiled with the flags
   pkg-config gives for the installed dagrun.pc (PKG_CONFIG_PATH and
   PKG_CONFIG_SYSROOT_DIR point into TMP), linked by soname, and run on a
   workflow whose second task reads the first one's output.
"""
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import unittest

CONSUMER = os.path.abspath(sys.argv.pop(1)) if len(sys.argv) > 1 else None
BUILDDIR = os.environ.get("BUILDDIR", "")
TIMEOUT = 240

WORKFLOW = """\
name: installed
tasks:
  - id: first
    command: echo 'word=hello' >> "$DAGRUN_OUTPUT"
  - id: second
    dependencies: [first]
    command: echo "{{ tasks.first.outputs.word }} from the installed library" > out.txt
"""

# Functions include/dagrun.h declares that the program relies on.
PUBLIC = ["dagrun_version", "dagrun_diags_new", "dagrun_workflow_load",
          "dagrun_workflow_load_buffer", "dagrun_engine_new", "dagrun_engine_run",
          "dagrun_engine_observe", "dagrun_engine_free", "dagrun_console_new",
          "dagrun_jsonlog_new", "dagrun_graph_write"]


def run(args, **kw):
    """Runs args; returns the CompletedProcess, failing with its output."""
    kw.setdefault("timeout", TIMEOUT)
    p = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True, **kw)
    if p.returncode != 0:
        raise AssertionError("%s exited %d:\n%s" % (shlex.join(args), p.returncode,
                                                     p.stdout))
    return p


def tool(name):
    path = shutil.which(name)
    if not path:
        raise AssertionError("%s is not installed (binutils)" % name)
    return path


class Installed(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="dagrun-install-")
        cls.dest = os.path.join(cls.tmp, "dest")
        run([os.environ["MESON"], "install", "-C", BUILDDIR, "--no-rebuild",
             "--quiet", "--destdir", cls.dest])
        cls.files = {}
        for root, _, names in os.walk(cls.dest):
            for n in names:
                cls.files.setdefault(n, os.path.join(root, n))

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def installed(self, name):
        self.assertIn(name, self.files, "not installed: %s (installed: %s)"
                      % (name, sorted(self.files)))
        return self.files[name]

    def library(self):
        """The real file of the shared library: libdagrun.so.X.Y.Z."""
        real = [p for n, p in self.files.items()
                if re.fullmatch(r"libdagrun\.so\.\d+\.\d+\.\d+", n)]
        self.assertEqual(len(real), 1, "libdagrun.so.X.Y.Z: %s" % sorted(self.files))
        return real[0]

    def test_installs_header_pkgconfig_and_versioned_library(self):
        self.installed("dagrun.h")
        pc = open(self.installed("dagrun.pc")).read()
        self.assertRegex(pc, r"(?m)^Libs: .*-ldagrun")
        self.assertRegex(pc, r"(?m)^Cflags: -I")
        lib = self.library()
        self.assertTrue(os.path.islink(self.installed("libdagrun.so")))
        dyn = run([tool("readelf"), "-d", lib]).stdout
        soname = re.search(r"\(SONAME\)\s+Library soname: \[([^\]]+)\]", dyn)
        self.assertIsNotNone(soname, dyn)
        self.assertRegex(soname.group(1), r"^libdagrun\.so\.\d+$")
        self.assertTrue(os.path.islink(self.installed(soname.group(1))))
        # The CLI is installed too, and runs.
        out = run([self.installed("dagrun"), "--version"]).stdout
        self.assertIn("0.", out)

    def test_exports_only_dagrun_symbols(self):
        lib = os.path.realpath(self.installed("libdagrun.so"))
        out = run([tool("nm"), "-D", "--defined-only", lib]).stdout
        names = [line.split()[-1].split("@")[0] for line in out.splitlines()
                 if line.strip()]
        self.assertGreater(len(names), 20, out)
        leaked = sorted(n for n in names if not n.startswith("dagrun_"))
        self.assertEqual(leaked, [], "%d exported names are not dagrun_*" % len(leaked))
        for f in PUBLIC:
            self.assertIn(f, names)
        # Every function the installed header declares is exported (one
        # defined in a file that does not include dagrun.h would be hidden).
        with open(self.installed("dagrun.h")) as f:
            header = re.sub(r"/\*.*?\*/", " ", f.read(), flags=re.S)
        declared = set(re.findall(r"(?<!\w)(dagrun_\w+)\s*\(", header))
        self.assertGreater(len(declared), 25)
        self.assertEqual(sorted(declared - set(names)), [],
                         "declared in dagrun.h but not exported")

    def test_program_builds_against_installed_library_and_runs_a_workflow(self):
        pc = os.path.dirname(self.installed("dagrun.pc"))
        env = dict(os.environ, PKG_CONFIG_PATH=pc, PKG_CONFIG_SYSROOT_DIR=self.dest)
        pkg = os.environ["PKG_CONFIG"]
        cflags = shlex.split(run([pkg, "--cflags", "dagrun"], env=env).stdout)
        libs = shlex.split(run([pkg, "--libs", "dagrun"], env=env).stdout)
        incdir = os.path.dirname(self.installed("dagrun.h"))
        self.assertIn("-I" + incdir, cflags)
        self.assertIn("-ldagrun", libs)
        extra = []
        if os.environ.get("SANITIZE", "none") not in ("", "none"):
            # A sanitized library needs its runtime loaded first.
            extra = ["-fsanitize=" + os.environ["SANITIZE"]]
        work = os.path.join(self.tmp, "work")
        os.makedirs(work)
        exe = os.path.join(work, "consumer")
        cc = shlex.split(os.environ.get("CC") or "cc")
        run(cc + ["-std=c11", "-Wall", "-Wextra", "-Wpedantic", "-Werror"] + extra +
            cflags + [CONSUMER, "-o", exe] + libs, env=env)
        needed = run([tool("readelf"), "-d", exe]).stdout
        self.assertRegex(needed, r"\(NEEDED\)\s+Shared library: \[libdagrun\.so\.\d+\]")

        wf = os.path.join(work, "wf.yaml")
        with open(wf, "w") as f:
            f.write(WORKFLOW)
        libdir = os.path.dirname(self.library())
        renv = dict(os.environ, LD_LIBRARY_PATH=libdir)
        # The program loads the installed library, not the build tree's.
        ldd = run(["ldd", exe], env=renv).stdout
        self.assertRegex(ldd, r"libdagrun\.so\.\d+ => %s/" % re.escape(libdir))
        p = run([exe, wf], env=renv, cwd=work)
        self.assertIn("2 tasks, 2 completed, 2 completed events, 1 run.end", p.stdout)
        with open(os.path.join(work, "out.txt")) as f:
            self.assertEqual(f.read(), "hello from the installed library\n")


if __name__ == "__main__":
    if not CONSUMER or not BUILDDIR:
        sys.exit("usage: BUILDDIR=... MESON=... PKG_CONFIG=... test_install.py CONSUMER.c")
    unittest.main(verbosity=2)
