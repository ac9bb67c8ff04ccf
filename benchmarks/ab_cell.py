#!/usr/bin/env python3
"""A/B of two redis-ha builds on one cell, round by round: each round runs the
cell direct, then through each build (multiplex), and prints each build's ratio
to direct and its CPU microseconds per request. Also counts system calls per
request of each build with `strace -c` (--syscalls). For cells the full
benchmarks/throughput.py run leaves in doubt.

    benchmarks/ab_cell.py --a OLD_BINARY [--b NEW_BINARY] --cmd set --conns 500 --rounds 4 [--syscalls]"""

import argparse
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
from throughput import redis_benchmark  # noqa: E402


def syscalls(topo, binary, cmd, conns, n):
    """System calls per request of one build, by name (the top few)."""
    p = h.start_proxy(topo, "multiplex", binary=binary)
    port = p["write"] if cmd == "set" else p["read"]
    redis_benchmark(port, cmd, conns, 1, 5000)
    out = f"/tmp/redis-ha-strace.{os.getpid()}"
    st = subprocess.Popen(["strace", "-c", "-f", "-o", out, "-p", str(p["pid"])], stderr=subprocess.DEVNULL)
    time.sleep(1)
    redis_benchmark(port, cmd, conns, 1, n)
    st.send_signal(2)
    st.wait()
    h.stop_child(p)
    rows = [ln.split() for ln in open(out) if re.match(r"\s*\d", ln)]
    calls = {r[-1]: int(r[3]) for r in rows if len(r) >= 5 and r[-1] != "total"}
    return sum(calls.values()) / n, sorted(calls.items(), key=lambda kv: -kv[1])[:4]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--a", required=True, help="baseline redis-ha binary")
    ap.add_argument("--b", default=h.BIN, help="the build under test (default: this checkout's release build)")
    ap.add_argument("--cmd", default="set", choices=["set", "get"])
    ap.add_argument("--conns", type=int, default=500)
    ap.add_argument("--pipeline", type=int, default=1)
    ap.add_argument("-n", type=int, default=150_000)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--syscalls", action="store_true", help="also count system calls per request (strace)")
    a = ap.parse_args()
    h.need("redis-benchmark", "redis-tools")
    h.build()
    topo = h.Topology()
    builds = {"a": a.a, "b": a.b}
    ps = {k: h.start_proxy(topo, "multiplex", binary=b) for k, b in builds.items()}
    direct = topo.master_port() if a.cmd == "set" else topo.replica_ports()[0]
    for rnd in range(a.rounds):
        d = redis_benchmark(direct, a.cmd, a.conns, a.pipeline, a.n)
        line = [f"round {rnd + 1}: direct {d['rps']:.0f} ops/s"]
        for k, p in ps.items():
            port = p["write"] if a.cmd == "set" else p["read"]
            c0 = h.cpu_seconds(p["pid"])
            r = redis_benchmark(port, a.cmd, a.conns, a.pipeline, a.n)
            cpu = (h.cpu_seconds(p["pid"]) - c0) / a.n * 1e6
            line.append(f"{k} {r['rps'] / d['rps']:.2f}x, {cpu:.2f} us CPU/request")
        print(" | ".join(line), flush=True)
    if a.syscalls:
        for k, b in builds.items():
            total, top = syscalls(topo, b, a.cmd, a.conns, 40_000)
            print(f"{k}: {total:.2f} system calls per request (" + ", ".join(f"{s} {c / 40_000:.2f}" for s, c in top) + ")")


if __name__ == "__main__":
    main()
