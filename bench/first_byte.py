#!/usr/bin/python3
"""first_byte.py — run a command N times; time from start to its first stdout byte and to exit.

    first_byte.py N CMD [ARGS...]     prints one JSON line: first-byte and total ms, median/p90/max
"""
import json
import os
import statistics
import subprocess
import sys
import time

n = int(sys.argv[1])
cmd = sys.argv[2:]
first, total = [], []
for _ in range(n):
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    b = os.read(p.stdout.fileno(), 65536)
    t1 = time.perf_counter()
    while b:
        b = os.read(p.stdout.fileno(), 65536)
    p.wait(timeout=60)
    t2 = time.perf_counter()
    if p.returncode != 0:
        sys.exit(f"{cmd[0]} exited {p.returncode}")
    first.append((t1 - t0) * 1000)
    total.append((t2 - t0) * 1000)


def pct(v, q):
    v = sorted(v)
    return v[min(len(v) - 1, int(q * len(v)))]


print(json.dumps({"n": n, "first_ms_p50": statistics.median(first), "first_ms_p90": pct(first, 0.9),
                  "total_ms_p50": statistics.median(total), "total_ms_p90": pct(total, 0.9)}))
