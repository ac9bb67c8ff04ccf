#!/usr/bin/env python3
"""Profiles `redis-ha proxy` under redis-benchmark load with perf, and prints
where its CPU goes plus its CPU cost per request next to Redis's.

    benchmarks/profile.py                          # multiplex, GET P1, 50 connections
    benchmarks/profile.py --mode dedicated --cmd set --pipeline 16

perf must be allowed to sample the process (root, or kernel.perf_event_paranoid
<= 1). The raw profile is left in /tmp/redis-ha-perf.data for `perf report`."""

import argparse
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
from throughput import redis_benchmark  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mode", default="multiplex")
    ap.add_argument("--cmd", default="get", choices=["get", "set"])
    ap.add_argument("--pipeline", type=int, default=1)
    ap.add_argument("--conns", type=int, default=50)
    ap.add_argument("-n", type=int, default=400_000)
    ap.add_argument("--top", type=int, default=40)
    a = ap.parse_args()
    h.need("perf", "linux-perf")
    h.need("redis-benchmark", "redis-tools")
    h.build()
    topo = h.Topology()
    p = h.start_proxy(topo, a.mode)
    port = p["write"] if a.cmd == "set" else p["read"]
    redis_port = topo.master_port() if a.cmd == "set" else None
    data = "/tmp/redis-ha-perf.data"
    perf = subprocess.Popen(["perf", "record", "-F", "999", "-g", "-o", data, "-p", str(p["pid"])],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    cpu0 = h.cpu_seconds(p["pid"])
    r = redis_benchmark(port, a.cmd, a.conns, a.pipeline, a.n)
    cpu1 = h.cpu_seconds(p["pid"])
    perf.send_signal(2)
    perf.wait()
    print(f"{a.cmd.upper()} P{a.pipeline} c{a.conns} --mode {a.mode}: {r['rps']:.0f} ops/s, p99 {r['p99_ms']} ms; "
          f"proxy CPU {(cpu1 - cpu0) / a.n * 1e6:.2f} µs per request"
          + (f" (redis-server pid on :{redis_port})" if redis_port else ""))
    rep = subprocess.run(["perf", "report", "-i", data, "--no-children", "--stdio", "--percent-limit", "0.7",
                          "-g", "none", "--sort", "symbol"], capture_output=True, text=True)
    lines = [ln for ln in rep.stdout.splitlines() if ln.strip() and not ln.startswith("#")]
    print("\n".join(lines[: a.top]))


if __name__ == "__main__":
    main()
