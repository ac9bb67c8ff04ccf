#!/usr/bin/env python3
"""User-space instructions per request of `redis-ha proxy`, counted by callgrind:
an A/B of two builds that does not depend on what else the machine is doing
(callgrind counts instructions, not time). Kernel work (the sockets) is not
counted: it is the same for both builds unless they make different syscalls.

    benchmarks/instructions.py --a OLD_BINARY --b NEW_BINARY [--b-args '--write-ack replicas=1']
        [--conns 500 --pipeline 1 --cmds set --out FILE]

Each build runs under `valgrind --tool=callgrind` in multiplex mode in front of
the same topology; redis-benchmark sends the same requests to each (50
connections, pipeline 1, 256 B, unless --conns/--pipeline say otherwise).
Writes benchmarks/INSTRUCTIONS.md."""

import argparse
import glob
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402


def measure(topo, binary, extra, cmd, n, outdir, tag, conns=50, pipeline=1):
    out = os.path.join(outdir, f"callgrind.{tag}.{cmd}")
    write, read, admin = h.free_ports(3)
    args = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", binary, "proxy", "--bind", h.HOST,
            "--port", str(write), "--read-port", str(read), "--admin-port", str(admin), "--mode", "multiplex",
            *extra]
    for s in topo.sentinels:
        args += ["--sentinel", s]
    p = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    port = write if cmd == "set" else read
    role = "role:master" if cmd == "set" else "role:slave"
    h.wait_until(f"{tag} proxy", lambda: role in h.redis_cli(port, "INFO", "replication"), timeout=120)
    # Warm-up outside the count would need callgrind's toggles; instead the
    # same fixed start-up cost is in both builds' totals, and we subtract an
    # idle run's instructions (start-up, control plane) measured the same way.
    subprocess.run(["redis-benchmark", "-h", h.HOST, "-p", str(port), "-c", str(conns), "-n", str(n), "-P", str(pipeline),
                    "-d", "256", "-t", cmd, "-r", "100000", "-q"], check=True, capture_output=True, timeout=900)
    p.terminate()
    p.wait(timeout=60)
    text = open(out).read()
    m = re.search(r"^summary:\s+(\d+)", text, re.M) or re.search(r"^totals:\s+(\d+)", text, re.M)
    return int(m.group(1))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--a", required=True, help="baseline redis-ha binary")
    ap.add_argument("--a-name", default="before")
    ap.add_argument("--b", default=h.BIN, help="the build under test (default: this checkout's release build)")
    ap.add_argument("--b-name", default="after")
    ap.add_argument("--b-args", action="append", default=[], metavar="NAME=FLAGS",
                    help="also measure --b with extra flags, e.g. 'write-ack=--write-ack replicas=1'")
    ap.add_argument("-n", type=int, default=20000, help="requests per measured run")
    ap.add_argument("--conns", type=int, default=50)
    ap.add_argument("--pipeline", type=int, default=1)
    ap.add_argument("--cmds", default="set,get", help="commands to measure")
    ap.add_argument("--out", default=os.path.join(h.ROOT, "benchmarks", "INSTRUCTIONS.md"))
    a = ap.parse_args()
    h.need("valgrind", "valgrind")
    topo = h.Topology()
    outdir = topo.dir
    builds = [(a.a_name, a.a, []), (a.b_name, a.b, [])]
    builds += [(v.partition("=")[0], a.b, v.partition("=")[2].split()) for v in a.b_args]
    rows = []
    for cmd in a.cmds.split(","):
        for name, binary, extra in builds:
            shape = {"conns": a.conns, "pipeline": a.pipeline}
            idle = measure(topo, binary, extra, cmd, 1, outdir, f"{name}-idle", **shape)
            busy = measure(topo, binary, extra, cmd, a.n, outdir, name, **shape)
            per = (busy - idle) / a.n
            h.log(f"{cmd.upper()} {name}: {per:.0f} instructions per request ({busy} - {idle} idle)")
            rows.append((cmd, name, per))
    base = {cmd: per for cmd, name, per in rows if name == a.a_name}
    lines = ["# User-space instructions per request (callgrind)", "",
             f"`benchmarks/instructions.py` at {h.machine()['redis-ha']}; "
             f"{a.n} requests, redis-benchmark -c {a.conns} -P {a.pipeline} -d 256, multiplex mode, one topology. "
             "An idle run's count (start-up, control plane) is subtracted. Kernel work is not counted.", "",
             f"`{a.a_name}` = {a.a}; `{a.b_name}` = {a.b}.", "",
             "| command | build | instructions per request | vs " + a.a_name + " |", "|---|---|---|---|"]
    for cmd, name, per in rows:
        lines.append(f"| {cmd.upper()} | {name} | {per:.0f} | {per / base[cmd]:.3f}× |")
    lines.append("")
    open(a.out, "w").write("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
