#!/usr/bin/env python3
"""Failover as clients see it, side by side in one run on one machine:
HAProxy configured like the original (tcp-check role:master, check inter 1s)
vs redis-ha proxy, on the same topology (down-after-milliseconds 5000).

For each path and fault (kill -9 of the master, planned SENTINEL FAILOVER) it
runs `redis-ha drill` (steady writers, one SET at a time each) and reports:
write outage (longest gap between acknowledged writes), client errors, the lag
between the new master accepting writes and the first write acknowledged
through the path, and acknowledged writes lost. Writes benchmarks/FAILOVER.md.

    benchmarks/failover.py [--faults kill,failover] [--writers 8]"""

import argparse
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402


def drill(topo, target, fault, writers):
    out = subprocess.run([h.BIN, "drill", "--json", "--state-dir", topo.dir, "--target", f"{h.HOST}:{target}",
                          "--fault", fault, "--writers", str(writers), "--before", "3s", "--after", "3s",
                          "--timeout", "20s"], capture_output=True, text=True, timeout=300)
    if not out.stdout.strip():
        raise RuntimeError(f"drill failed: {out.stderr.strip()[-500:]}")
    return json.loads(out.stdout)


def wait_healthy(topo):
    h.wait_until("topology healthy again",
                 lambda: subprocess.run([h.BIN, "status", "--state-dir", topo.dir],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0,
                 timeout=120)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--faults", default="kill,failover")
    ap.add_argument("--writers", type=int, default=8)
    ap.add_argument("--down-after-ms", type=int, default=5000)
    ap.add_argument("--modes", default="multiplex,dedicated", help="redis-ha proxy modes to drill")
    ap.add_argument("--out", default=os.path.join(h.ROOT, "benchmarks", "FAILOVER.md"))
    a = ap.parse_args()
    h.need("haproxy", "haproxy")
    h.build()
    rows = []
    # A fresh topology for every drill: a failover through HAProxy can leave
    # the old master accepting writes for seconds (split brain), and the next
    # drill must not inherit that.
    for fault in a.faults.split(","):
        for name in ["haproxy"] + [f"redis-ha ({m})" for m in a.modes.split(",")]:
            topo = h.Topology(down_after_ms=a.down_after_ms)
            mode = name.split("(")[-1].rstrip(")")
            path = h.start_haproxy(topo) if name == "haproxy" else h.start_proxy(topo, mode)
            wait_healthy(topo)
            h.log(f"drill: {fault} through {name}")
            r = drill(topo, path["write"], fault, a.writers)
            r["path"] = name
            rows.append(r)
            h.log(f"  outage {r['write_outage_ms']:.0f} ms, errors {r['writes_failed']}, "
                  f"first ack after promotion {r['first_ack_after_promotion_ms']}, lost {r['lost_writes']}")
            h.stop_child(path)
            topo.down()
    m = h.machine()
    ms = lambda v: "never" if v is None else f"{v:.0f} ms"  # noqa: E731
    lines = ["# Failover results", "",
             f"Produced by `benchmarks/failover.py` in one run, a fresh topology per drill (3 Redis, 3 Sentinels, quorum 2,",
             f"down-after-milliseconds {a.down_after_ms}), {a.writers} writer connections doing one SET at a time",
             "(client timeout 20 s), the fault injected on the master after 3 s of steady writes.",
             "HAProxy: benchmarks/haproxy.cfg.in (the original's dual backend, tcp-check role:master, check inter 1s).",
             "redis-ha: `redis-ha proxy` with defaults (failover hold 10 s), in each connection mode.", "",
             "Lost acked writes: acknowledged to the client, absent from the master the sentinels agree on",
             "afterwards. After kill -9, a few writes the dead master acknowledged before replicating them can be",
             "lost whatever the path (Redis replicates asynchronously). After a planned failover, HAProxy's",
             "`role:master` check keeps the old master in the write backend until Sentinel demotes it, so writes",
             "acknowledged there in between are discarded when it resyncs from the new master.", "",
             "| fault | path | write outage | client errors | new master accepts writes → first ack through path | lost acked writes | acked writes |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        errs = ", ".join(f"{k}: {v}" for k, v in r["errors"].items()) or "none"
        lines.append(f"| {r['fault']} | {r['path']} | {r['write_outage_ms']:.0f} ms | {r['writes_failed']} ({errs}) | "
                     f"{ms(r['first_ack_after_promotion_ms'])} | {r['lost_writes']} | {r['writes_acked']} |")
    lines += ["", "| machine | |", "|---|---|"] + [f"| {k} | {v} |" for k, v in m.items()] + [""]
    text = "\n".join(lines)
    open(a.out, "w").write(text)
    h.dump_json(os.path.splitext(a.out)[0] + ".json", {"machine": m, "drills": rows})
    print(text)


if __name__ == "__main__":
    main()
