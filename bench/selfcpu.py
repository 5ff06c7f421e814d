#!/usr/bin/env python3
"""selfcpu.py CMD...: runs CMD (stdout to /dev/null) and prints
"WALL SELF CHILDREN" in seconds: SELF is CMD's own user + system time, all
its threads, read from /proc/PID/stat while it is a zombie (waitid with
WNOWAIT, before it is reaped); CHILDREN is what it waited for (its tasks).
A runner's scheduling overhead is SELF: the tasks' CPU time is CHILDREN,
which the machine's load inflates far more than SELF."""
import os
import subprocess
import sys
import time

t0 = time.monotonic()
p = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL)
os.waitid(os.P_PID, p.pid, os.WEXITED | os.WNOWAIT)
wall = time.monotonic() - t0
with open("/proc/%d/stat" % p.pid) as f:
    fields = f.read().rsplit(")", 1)[1].split()
hz = os.sysconf("SC_CLK_TCK")
ut, st, cut, cst = (int(x) for x in fields[11:15])
rc = p.wait()
print("%.3f %.3f %.3f" % (wall, (ut + st) / hz, (cut + cst) / hz))
sys.exit(rc)
