#!/usr/bin/env python3
"""serve_load.py: `dagrun serve` under load (bench/README.md, "Serve: 50
clients polling, 20 streams following a 1,000-task run").

Starts `dagrun serve` on loopback with one generated workflow (a layered
DAG of --tasks tasks), starts a run of it through the API, then at once:
  - --pollers client threads (spread over --procs processes, so that
    Python's lock does not serialise them) poll GET /api/runs and GET
    /api/runs/{id} in turn, each on its own keep-alive connection, every
    --interval seconds, timing each request;
  - --streams Server-Sent Events streams follow /api/events?run=ID&since=0
    until the run's final `run` event (which the server sends after every
    task's last change).
At the end it checks that every stream received every task's final status
(the last `task` event of each task equals the status GET /api/runs/{id}
gives), with no `reset` and no stream cut, and prints the request
latencies (p50, p99, max) and the machine's load.

  bench/serve_load.py [--dagrun build/src/cli/dagrun] [--tasks 1000]
                      [--pollers 50] [--streams 20] [--interval 0.05]

Exit status 0 when no stream lost anything, 1 otherwise.
"""
import argparse
import http.client
import json
import multiprocessing
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

TERMINAL = ("completed", "failed", "cancelled", "interrupted")


def workflow(n, layers, deps, seed=1):
    """A layered DAG: each task of a layer depends on `deps` random tasks
    of the layer before; each prints one line."""
    rng = random.Random(seed)
    per = max(1, n // layers)
    lines = ["name: load", "maxParallel: 8", "tasks:"]
    prev, cur = [], []
    def layer(i):
        return min(i // per, layers - 1)
    for i in range(n):
        if i and layer(i) != layer(i - 1):
            prev, cur = cur, []
        lines.append("  - id: t%d" % i)
        if prev:
            ds = rng.sample(prev, min(deps, len(prev)))
            lines.append("    dependencies: [%s]" % ", ".join("t%d" % d for d in ds))
        lines.append("    command: echo t%d" % i)
        cur.append(i)
    return "\n".join(lines) + "\n"


def pct(v, p):
    """Nearest-rank percentile of sorted v."""
    if not v:
        return float("nan")
    k = max(0, min(len(v) - 1, int(-(-p * len(v) // 100)) - 1))
    return v[k]


# ---- the pollers ------------------------------------------------------------

def poller_proc(host, port, rid, threads, interval, stop_at, out):
    """One process of poller threads; sends back {path: [latency s]}."""
    lat = {"/api/runs": [], "/api/runs/{id}": []}
    errors = []
    lock = threading.Lock()
    done = threading.Event()

    def poll(k):
        conn = http.client.HTTPConnection(host, port, timeout=120)
        paths = [("/api/runs", "/api/runs"), ("/api/runs/{id}", "/api/runs/" + rid)]
        i = k
        while not done.is_set():
            name, path = paths[i % 2]
            i += 1
            t0 = time.perf_counter()
            try:
                conn.request("GET", path)
                r = conn.getresponse()
                body = r.read()
                dt = time.perf_counter() - t0
                if r.status != 200:
                    raise RuntimeError("%s: %d %s" % (path, r.status, body[:200]))
            except (OSError, http.client.HTTPException, RuntimeError) as e:
                with lock:
                    errors.append(str(e))
                conn.close()
                conn = http.client.HTTPConnection(host, port, timeout=120)
                continue
            with lock:
                lat[name].append(dt)
            if interval:
                time.sleep(interval)
        conn.close()

    ts = [threading.Thread(target=poll, args=(k,), daemon=True) for k in range(threads)]
    for t in ts:
        t.start()
    while time.time() < stop_at.value and not os.path.exists(stop_at.flag):
        time.sleep(0.1)
    done.set()
    for t in ts:
        t.join(timeout=150)
    out.send((lat, errors))
    out.close()


class StopAt:
    def __init__(self, value, flag):
        self.value = value
        self.flag = flag


# ---- the streams ------------------------------------------------------------

class Follower(threading.Thread):
    """One SSE stream of the run: the last status of each task seen."""

    def __init__(self, host, port, rid, deadline):
        super().__init__(daemon=True)
        self.host, self.port, self.rid, self.deadline = host, port, rid, deadline
        self.last = {}          # task index -> status
        self.events = 0
        self.by_type = {}
        self.reset = False
        self.final = None
        self.error = None

    def run(self):
        try:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
            conn.request("GET", "/api/events?since=0&run=" + self.rid,
                         headers={"Accept": "text/event-stream"})
            r = conn.getresponse()
            if r.status != 200:
                raise RuntimeError("status %d" % r.status)
            ev, data = None, []
            while time.time() < self.deadline:
                line = r.fp.readline()
                if not line:
                    raise RuntimeError("the stream ended before the run's end")
                line = line.decode("utf-8").rstrip("\r\n")
                if line.startswith("event:"):
                    ev = line[6:].strip()
                elif line.startswith("data:"):
                    data.append(line[5:].lstrip())
                elif line == "":
                    if ev and data:
                        self.frame(ev, json.loads("\n".join(data)))
                    ev, data = None, []
                    if self.final:
                        break
            conn.close()
        except Exception as e:   # reported, never swallowed
            self.error = "%s: %s" % (type(e).__name__, e)

    def frame(self, ev, d):
        self.events += 1
        self.by_type[ev] = self.by_type.get(ev, 0) + 1
        if ev == "reset":
            self.reset = True
        elif ev == "task":
            self.last[d["index"]] = d["status"]
        elif ev == "run" and d.get("id") == self.rid and d.get("status") in TERMINAL:
            self.final = d["status"]


# ---- main -------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dagrun", default=os.environ.get("DAGRUN", "build/src/cli/dagrun"))
    ap.add_argument("--tasks", type=int, default=1000)
    ap.add_argument("--layers", type=int, default=20)
    ap.add_argument("--deps", type=int, default=2)
    ap.add_argument("--pollers", type=int, default=50)
    ap.add_argument("--procs", type=int, default=5)
    ap.add_argument("--streams", type=int, default=20)
    ap.add_argument("--interval", type=float, default=0.05,
                    help="pause of a poller between requests (s)")
    ap.add_argument("--timeout", type=float, default=600)
    a = ap.parse_args()

    root = tempfile.mkdtemp(prefix="dagrun-serve-load-")
    os.mkdir(os.path.join(root, "wf"))
    with open(os.path.join(root, "wf", "load.yaml"), "w") as f:
        f.write(workflow(a.tasks, a.layers, a.deps))
    log = open(os.path.join(root, "serve.log"), "w+")
    srv = subprocess.Popen([os.path.abspath(a.dagrun), "serve", "--listen", "127.0.0.1:0",
                            "--dir", os.path.join(root, "wf"), "--state",
                            os.path.join(root, "state")],
                           stdout=subprocess.PIPE, stderr=log, text=True)
    ok = False
    try:
        url = srv.stdout.readline().strip()
        if not url.startswith("http://"):
            sys.exit("the server did not start: %r" % url)
        host, port = url[len("http://"):].rstrip("/").rsplit(":", 1)
        port = int(port)
        load0 = open("/proc/loadavg").read().split()[:3]
        conn = http.client.HTTPConnection(host, port, timeout=60)
        conn.request("POST", "/api/workflows/load/runs", body=b"{}",
                     headers={"Content-Type": "application/json"})
        r = conn.getresponse()
        o = json.loads(r.read())
        if r.status not in (201, 202):
            sys.exit("the run did not start: %d %s" % (r.status, o))
        rid = o["id"]
        t0 = time.time()
        deadline = t0 + a.timeout
        followers = [Follower(host, port, rid, deadline) for _ in range(a.streams)]
        for fl in followers:
            fl.start()
        flag = os.path.join(root, "stop")
        stop_at = StopAt(deadline, flag)
        procs, pipes = [], []
        per = [a.pollers // a.procs + (1 if k < a.pollers % a.procs else 0) for k in range(a.procs)]
        for k in range(a.procs):
            rd, wr = multiprocessing.Pipe(duplex=False)
            p = multiprocessing.Process(target=poller_proc,
                                        args=(host, port, rid, per[k], a.interval, stop_at, wr))
            p.start()
            procs.append(p)
            pipes.append(rd)
        for fl in followers:
            fl.join(timeout=max(1, deadline - time.time()))
        run_s = time.time() - t0
        load1 = open("/proc/loadavg").read().split()[:3]
        with open("/proc/%d/stat" % srv.pid) as f:
            ticks = f.read().rsplit(")", 1)[1].split()[11:13]
        srv_cpu = (int(ticks[0]) + int(ticks[1])) / os.sysconf("SC_CLK_TCK")
        open(flag, "w").close()
        lat = {"/api/runs": [], "/api/runs/{id}": []}
        errors = []
        for p, rd in zip(procs, pipes):
            l, e = rd.recv()
            p.join(timeout=150)
            for k in lat:
                lat[k] += l[k]
            errors += e
        conn.request("GET", "/api/runs/" + rid)
        r = conn.getresponse()
        final = json.loads(r.read())
        truth = {t["index"]: t["status"] for t in final["tasks"]}

        print("run %s: %d tasks, %s in %.1f s; %d pollers (%d processes, %.0f ms apart), "
              "%d streams" % (rid, len(truth), final["run"]["status"], run_s, a.pollers,
                              a.procs, a.interval * 1000, a.streams))
        lost_any = False
        for k, fl in enumerate(followers):
            missing = [i for i in truth if fl.last.get(i) != truth[i]]
            bad = fl.error or fl.reset or missing or fl.final != final["run"]["status"]
            lost_any = lost_any or bool(bad)
            if bad or k == 0:
                print("  stream %2d: %d events %s; final statuses right: %d of %d%s%s%s" % (
                    k, fl.events, json.dumps(fl.by_type, sort_keys=True),
                    len(truth) - len(missing), len(truth),
                    "; RESET" if fl.reset else "", "; error: " + fl.error if fl.error else "",
                    "; run end: %s" % fl.final))
        print("  streams: %d of %d got every task's final status and the run's end" % (
            sum(1 for fl in followers if not fl.error and not fl.reset and fl.final and
                all(fl.last.get(i) == truth[i] for i in truth)), len(followers)))
        allv = sorted(lat["/api/runs"] + lat["/api/runs/{id}"])
        for name, v in list(lat.items()) + [("all", allv)]:
            v = sorted(v)
            print("  GET %-15s %6d requests  p50 %7.1f ms  p99 %7.1f ms  max %7.1f ms" % (
                name, len(v), pct(v, 50) * 1000, pct(v, 99) * 1000,
                (v[-1] if v else float("nan")) * 1000))
        if errors:
            print("  request errors: %d (first: %s)" % (len(errors), errors[0]))
        print("  the server's CPU time (user + system) to the run's end: %.1f s" % srv_cpu)
        print("  load average before %s, at the run's end %s; %d CPUs" % (
            " ".join(load0), " ".join(load1), os.cpu_count()))
        ok = not lost_any and not errors
        dropped = [l for l in open(log.name) if "dropped" in l]
        if dropped:
            print("  server log: %s" % dropped[0].strip())
    finally:
        if srv.poll() is None:
            srv.send_signal(signal.SIGTERM)
            try:
                srv.wait(timeout=60)
            except subprocess.TimeoutExpired:
                srv.kill()
        log.close()
        # a sanitizer build (--dagrun build-asan/...) reports on stderr
        bad = [l for l in open(log.name) if "Sanitizer" in l or "runtime error" in l]
        if bad:
            print("  the server's log has sanitizer reports: %s" % bad[0].strip())
            ok = False
        if srv.returncode != 0:
            print("  the server exited with status %s" % srv.returncode)
            ok = False
        if ok:
            shutil.rmtree(root, ignore_errors=True)
        else:
            print("  kept for a look: %s" % root)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
