"""harness.py: what the end-to-end tests (tests/cli/test_*.py) share.

- The paths: DAGRUN (the binary under test), SRC, HTTP_SERVER and
  AI_SERVER (tests/http/server.py, tests/ai/fake_openai.py).
- Server: starts one of the test servers, waits until its ports accept
  connections, and stops it: it closes the server's stdin (the servers exit
  when it closes) and, if the server has not exited within 10 s, kills that
  server's own pid, never anything found by name.
- TempDirTest: a unittest.TestCase with a fresh temporary directory per
  test (self.dir), write() of a dedented workflow and read() of a file in it;
  ServerTest and AiServerTest add a test server for the whole class.
- dagrun(): runs the binary with NO_COLOR=1 over the environment, with a
  timeout, so that a hang fails the test instead of the suite.
- alive(pid): whether a process still runs (a zombie counts as gone).

Import it with:
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                    "..", "common"))
    import harness
"""
import json
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import unittest

DAGRUN = os.path.abspath(os.environ.get("DAGRUN", "build/src/cli/dagrun"))

# Runs record into a state directory of this test process, never into the
# current directory's .dagrun/ (a store left there by an earlier build would
# change what a dry run prints): set before any dagrun starts, inherited by
# every child. Tests of the default location remove it from their env.
if not os.environ.get("DAGRUN_STATE"):
    import atexit
    import shutil
    _state = tempfile.mkdtemp(prefix="dagrun-test-state-")
    os.environ["DAGRUN_STATE"] = _state
    atexit.register(shutil.rmtree, _state, True)
SRC = os.environ.get("SRCDIR", os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                            "..", ".."))
HTTP_SERVER = os.path.join(SRC, "tests", "http", "server.py")
AI_SERVER = os.path.join(SRC, "tests", "ai", "fake_openai.py")


def alive(pid):
    """Whether pid is a process that has not exited (a zombie has)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(")")[-1].split()[0] not in ("Z", "X")
    except (FileNotFoundError, ProcessLookupError):
        return False


def wait_for(pred, timeout, step=0.1):
    """pred()'s first true value within timeout seconds, else its last."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(step)
    return pred()


def marked(marker):
    """Live processes whose environment holds the entry `marker`."""
    want = marker.encode()
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/environ" % name, "rb") as f:
                env = f.read().split(b"\0")
        except OSError:
            continue
        if want in env and alive(int(name)):
            out.append(int(name))
    return out


def events(stderr):
    """The JSON log's events in stderr (other lines left out)."""
    evs = []
    for line in stderr.splitlines():
        try:
            evs.append(json.loads(line))
        except ValueError:
            pass
    return evs

def read(path, mode="r"):
    with open(path, mode) as f:
        return f.read()


def write(directory, text, name="wf.yaml", replace=None, dedent=True):
    """Writes text (dedented unless dedent is false), with each key of
    replace replaced by its value, to directory/name; returns the path."""
    if dedent:
        text = textwrap.dedent(text)
    for k, v in (replace or {}).items():
        text = text.replace(k, v)
    path = os.path.join(directory, name)
    with open(path, "w") as f:
        f.write(text)
    return path


def env(extra=None, **kw):
    """os.environ with NO_COLOR=1, then extra and kw."""
    e = dict(os.environ, NO_COLOR="1")
    e.update(extra or {})
    e.update(kw)
    return e


def loopback_env(extra=None, **kw):
    """env() for requests to the loopback servers: no proxy between."""
    e = env(extra, no_proxy="*", **kw)
    e.pop("http_proxy", None)
    e.pop("HTTP_PROXY", None)
    return e


def dagrun(*args, env_extra=None, timeout=120, text=True, cwd=None, env_full=None):
    """Runs DAGRUN with args; returns the CompletedProcess (stdout and
    stderr captured). env_full replaces the environment; else env_extra is
    added to env(). A run past timeout raises subprocess.TimeoutExpired."""
    e = env_full if env_full is not None else env(env_extra)
    return subprocess.run([DAGRUN, *args], capture_output=True, text=text,
                          timeout=timeout, env=e, cwd=cwd)


def dagrun_bounded(*args, env_full=None, env_extra=None, timeout=120, cwd=None,
                   text=True, errors=None):
    """Runs DAGRUN with args in a session of its own; past timeout, SIGKILLs
    that session's process group (dagrun and its tasks, nothing else) and
    returns None. Else the CompletedProcess (stdout and stderr captured)."""
    e = env_full if env_full is not None else env(env_extra)
    p = subprocess.Popen([DAGRUN, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=text, errors=errors, env=e, cwd=cwd, start_new_session=True)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.communicate()
        return None
    return subprocess.CompletedProcess(p.args, p.returncode, out, err)


class Server:
    """One test server process (see the module's docstring)."""

    def __init__(self, script, *args, timeout=30):
        self.proc = subprocess.Popen([sys.executable, script, *args], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE)
        try:
            self.ports = self._read_ports(timeout)
            self._wait_for_ports(timeout)
        except BaseException:
            self.stop()
            raise
        self.port = self.ports[0]
        self.base = "http://127.0.0.1:%d" % self.port

    def _read_ports(self, timeout):
        line = b""
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while not line.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise RuntimeError("the test server printed no port in %ds" % timeout)
            chunk = os.read(fd, 256)
            if not chunk:
                raise RuntimeError("the test server exited (status %s) before printing "
                                   "its port" % self.proc.poll())
            line += chunk
        return [int(p) for p in line.split()]

    def _wait_for_ports(self, timeout):
        deadline = time.monotonic() + timeout
        for port in self.ports:
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise RuntimeError("the test server's port %d never accepted "
                                           "a connection" % port)
                    time.sleep(0.05)

    def stop(self):
        """Stops this server (idempotent)."""
        if self.proc.stdin and not self.proc.stdin.closed:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()       # its own pid only
            self.proc.wait(timeout=10)
        if self.proc.stdout and not self.proc.stdout.closed:
            self.proc.stdout.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def start_server(script, *args, timeout=30):
    """Starts the test server script (a path) with args; see Server."""
    return Server(script, *args, timeout=timeout)


def start_http_server(*args):
    """tests/http/server.py with args (--second, --tls CERT KEY)."""
    return Server(HTTP_SERVER, *args)


def start_fake_openai():
    """tests/ai/fake_openai.py; its Chat Completions API is at base + /v1."""
    return Server(AI_SERVER)


class TempDirTest(unittest.TestCase):
    """A test case with a fresh temporary directory per test, self.dir."""

    prefix = "dagrun-test-"

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix=self.prefix)
        self.dir = self.tmp.name

    def tearDown(self):
        self.tmp.cleanup()

    def write(self, text, name="wf.yaml", replace=None, dedent=True):
        return write(self.dir, text, name, replace, dedent)

    def read(self, name, mode="r"):
        return read(os.path.join(self.dir, name), mode)


class ServerTest(TempDirTest):
    """TempDirTest with one test server for the whole class: cls.srv,
    cls.port and cls.base (its URL, plus base_path)."""

    server_script = HTTP_SERVER
    server_args = ()
    base_path = ""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.srv = start_server(cls.server_script, *cls.server_args)
        cls.port = cls.srv.port
        cls.base = cls.srv.base + cls.base_path

    @classmethod
    def tearDownClass(cls):
        cls.srv.stop()
        super().tearDownClass()


class AiServerTest(ServerTest):
    """ServerTest with the fake OpenAI server; cls.base is its API (/v1)."""

    server_script = AI_SERVER
    base_path = "/v1"
