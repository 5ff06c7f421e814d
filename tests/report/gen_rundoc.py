#!/usr/bin/env python3
"""gen_rundoc.py: a large synthetic run document (deterministic).

  gen_rundoc.py N OUT.json [SEED]

A layered DAG of N tasks (layers of 100, each task depending on 1 to 3
tasks of the layer before), scheduled on 8 slots: every task has a ready
time, one in 20 fails once and is retried after 500 ms, one in 100 of the
last 3% fails for good (its dependents then fail with class
"dependency", never starting), half of the tasks carry a history (p50, p95). Used by the
report tests (10,000 tasks) and bench/report_bench.
"""
import heapq
import json
import random
import sys

B = 1717243200000


def generate(n, seed=1, slots=8, layer=100):
    rng = random.Random(seed)
    free = [B] * slots
    tasks, end, failed = [], {}, set()
    for i in range(n):
        lay = i // layer
        deps = []
        if lay:
            prev = range((lay - 1) * layer, min(lay * layer, n))
            deps = sorted(rng.sample(list(prev), min(len(prev), rng.randint(1, 3))))
        t = {"id": "task-%05d" % i, "kind": "command",
             "dependencies": [{"taskId": "task-%05d" % d, "type": "blocking", "condition": None} for d in deps],
             "attempts": []}
        if any(d in failed for d in deps):
            t.update(status="failed", errorClass="dependency",
                     error="dependency '%s' failed" % next("task-%05d" % d for d in deps if d in failed))
            failed.add(i)
            tasks.append(t)
            continue
        ready = max([end[d] for d in deps], default=B)
        tries = 2 if rng.random() < 0.05 else 1
        fatal = i >= n * 0.97 and rng.random() < 0.01
        for k in range(1, tries + 1):
            slot_free = heapq.heappop(free)
            start = max(ready, slot_free)
            dur = rng.randint(50, 2000)
            stop = start + dur
            heapq.heappush(free, stop)
            ok = k == tries and not fatal
            a = {"attempt": k, "status": "completed" if ok else "failed", "readyMs": ready,
                 "startMs": start, "endMs": stop, "durationMs": dur,
                 "exitCode": 0 if ok else 1, "signal": None,
                 "cpuUserMs": dur // 2, "cpuSysMs": dur // 20, "maxRssKb": rng.randint(2000, 90000),
                 "stdout": {"tail": "task %d attempt %d: processed %d records\n" % (i, k, rng.randint(1, 99999)),
                            "bytes": 48, "truncated": False}}
            if not ok:
                a.update(errorClass="transient" if k < tries else "permanent", error="exit status 1",
                         stderr={"tail": "error: record %d is malformed\n" % rng.randint(1, 999), "bytes": 30, "truncated": False})
            t["attempts"].append(a)
            ready = stop + 500
        if fatal:
            t.update(status="failed", errorClass="permanent", error="exit status 1")
            failed.add(i)
        else:
            t["status"] = "completed"
        end[i] = t["attempts"][-1]["endMs"]
        if i % 2 == 0:
            p50 = rng.randint(50, 1500)
            t["history"] = {"runs": 30, "p50Ms": p50, "p95Ms": p50 + rng.randint(0, 800)}
        tasks.append(t)
    counts = {}
    for t in tasks:
        counts[t["status"]] = counts.get(t["status"], 0) + 1
    last = max([a["endMs"] for t in tasks for a in t["attempts"]], default=B)
    return {"dagrunRunDocument": 1, "generator": "gen_rundoc.py",
            "run": {"id": "20240601-120000-000-big%09d" % n, "runAttempt": 1, "workflow": "big-%d" % n,
                    "status": "failed" if failed else "completed", "startMs": B, "endMs": last + 10,
                    "counts": counts},
            "tasks": tasks}


def main():
    n, path = int(sys.argv[1]), sys.argv[2]
    seed = int(sys.argv[3]) if len(sys.argv) > 3 else 1
    with open(path, "w") as f:
        json.dump(generate(n, seed), f, separators=(",", ":"))


if __name__ == "__main__":
    main()
