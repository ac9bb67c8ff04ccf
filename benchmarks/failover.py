#!/usr/bin/env python3
"""Every drill fault as clients see it, through redis-ha and through HAProxy
set up like the original, in the same run of the same fault.

For each fault, on a fresh topology (3 Redis, 3 Sentinels, quorum 2; the
partition drill builds its own in a network namespace and needs root), it
runs `redis-ha drill --json --via haproxy`: N writers through `redis-ha
proxy` and N more through HAProxy (benchmarks/haproxy.cfg.in, started by the
drill on the same nodes) at the same time, each doing RPUSH of a unique value
and INCR of its own counter, one request at a time, plus a reader on each
path's read endpoint. Writes benchmarks/FAILOVER.md and FAILOVER.json.

    benchmarks/failover.py [--faults kill,failover,...] [--writers 4]
    benchmarks/failover.py --faults kill+write-ack,partition+write-ack --out benchmarks/FAILOVER-write-ack.md"""

import argparse
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

FAULTS = ["kill-replica", "failover", "switchover", "rolling-restart", "kill", "stop",
          "kill-sentinel", "kill-sentinels", "partition"]

# Built where cargo puts it (CARGO_TARGET_DIR, when set).
h.BIN = os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(h.ROOT, "target")), "release", "redis-ha")


def drill(args, via="haproxy"):
    cmd = [h.BIN, "drill", "--json", *(["--via", via] if via else []), *args]
    h.log("  " + " ".join(cmd[1:]))
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if not out.stdout.strip():
        raise RuntimeError(f"drill failed ({out.returncode}): {out.stderr.strip()[-800:]}")
    r = json.loads(out.stdout)
    r["exit_code"] = out.returncode
    return r


def wait_healthy(topo):
    h.wait_until("topology healthy",
                 lambda: subprocess.run([h.BIN, "status", "--state-dir", topo.dir],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0,
                 timeout=120)


WRITE_ACK = ["--write-ack", "replicas=1"]


def run_fault(name, a):
    # FAULT+write-ack: the same drill with redis-ha's proxy run with --write-ack replicas=1.
    fault, _, variant = name.partition("+")
    ack = WRITE_ACK if variant == "write-ack" else []
    common = ["--fault", fault, "--writers", str(a.writers), "--before", a.before, "--after", a.after,
              "--timeout", "20s", "--max-wait", "60s"]
    if fault == "partition":
        if os.geteuid() != 0:
            return {"fault": name, "skipped": "needs root (network namespace)"}
        return drill(common + ["--heal-after", a.heal_after] + ack)
    topo = h.Topology(down_after_ms=a.down_after_ms)
    proxy = h.start_proxy(topo, a.mode, extra=ack)
    try:
        wait_healthy(topo)
        w, r, adm = (f"{h.HOST}:{proxy[k]}" for k in ("write", "read", "admin"))
        return drill(common + ["--state-dir", topo.dir, "--target", w, "--read", r, "--admin", adm])
    finally:
        h.stop_child(proxy)
        topo.down()


def ms(v):
    return "-" if v is None else f"{v:.0f} ms"


def errors(e):
    return ", ".join(f"{k}: {v}" for k, v in sorted(e.items())) or "none"


def lost(n, window):
    if not n:
        return "0"
    return f"**{n}**" + (f" (acked T+{window[0] / 1000:.2f}..{window[1] / 1000:.2f} s)" if window else "")


def reads(x):
    return "-" if not x else f"{x['reads']} / {x['errors']} / {x['stale']}"


def rows_of(r):
    if "skipped" in r:
        return [f"| {r['fault']} | both | skipped: {r['skipped']} | | | | | | | |"]
    v = r["via"]
    verdict = "passed" if not r["failures"] else "FAILED (" + ", ".join(f["failure"] for f in r["failures"]) + ")"
    return [
        f"| {r['fault']} | redis-ha | {r['write_outage_ms']:.0f} ms | {r['writes_failed']} ({errors(r['errors'])}) | "
        f"{r['unknown_outcomes']} | {lost(r['lost_writes'], r.get('lost_acked_between_ms'))} | "
        f"{r['duplicated_writes']} | {ms(r['first_ack_after_promotion_ms'])} | {ms(r.get('proxy_switched_after_ms'))} | "
        f"{reads(r.get('reads'))} | {r['writes_acked']} | {verdict} |",
        f"| {r['fault']} | HAProxy | {'≥ ' if v.get('out_at_end') else ''}{v['write_outage_ms']:.0f} ms | {v['writes_failed']} ({errors(v['errors'])}) | "
        f"{v['unknown_outcomes']} | {lost(v['lost_writes'], v.get('lost_acked_between_ms'))} | "
        f"{v['duplicated_writes']} | {ms(v['first_ack_after_promotion_ms'])} | - | "
        f"{reads(v.get('reads'))} | {v['writes_acked']} | |",
    ]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--faults", default=",".join(FAULTS))
    ap.add_argument("--writers", type=int, default=4, help="writer connections per path")
    ap.add_argument("--down-after-ms", type=int, default=1000)
    ap.add_argument("--before", default="2s")
    ap.add_argument("--after", default="2s")
    ap.add_argument("--heal-after", default="6s")
    ap.add_argument("--mode", default="multiplex", help="redis-ha proxy connection mode")
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--out", default=os.path.join(h.ROOT, "benchmarks", "FAILOVER.md"))
    a = ap.parse_args()
    h.need("haproxy", "haproxy")
    if not a.no_build:
        h.build()
    drills = []
    for fault in a.faults.split(","):
        h.log(f"drill: {fault}")
        r = run_fault(fault, a)
        r["fault"] = fault
        drills.append(r)
        for line in rows_of(r):
            h.log("  " + line)
    m = h.machine()
    lines = [
        "# Failover results", "",
        "Produced by `benchmarks/failover.py` in one run. Every fault runs once, on a fresh topology (3 Redis,",
        f"3 Sentinels, quorum 2, down-after-milliseconds {a.down_after_ms}; the partition drill builds its own with",
        "down-after 2000 in a network namespace). During each drill the same load goes through both paths at the",
        f"same time: {a.writers} writer connections through `redis-ha proxy --mode {a.mode}` (defaults otherwise:",
        f"failover hold 10 s) and {a.writers} through HAProxy set up like the original (benchmarks/haproxy.cfg.in:",
        "tcp-check role:master / role:slave every 1 s), started by the drill on the same nodes. Each writer sends",
        "RPUSH of a unique value to its own list, then INCR of its own counter, one request at a time (client",
        f"timeout 20 s), {a.before} before the fault and {a.after} after writes resume; a reader per path GETs",
        "one writer's counter on the path's read endpoint.", "",
        "- **outage**: longest gap between acknowledged writes; ≥: the path was still out when the writers",
        "  stopped (the drill waits for writes to resume through redis-ha, not through HAProxy).",
        "- **client errors**: requests that got an error or no answer (READONLY, closed connection, timeout,",
        "  redis-ha's `unknown outcome`...); **unknown**: of those, the ones whose outcome a client cannot know.",
        "- **lost**: acknowledged, yet absent from the master the sentinels agree on afterwards (with when those",
        "  writes were acknowledged, since the fault); **dup**: applied twice (a value twice in a list, a counter",
        "  above acknowledged + unknown).",
        "- **first ack after promotion**: from the promoted replica answering ROLE master to the first write",
        "  acknowledged through the path; **proxy switched**: from the fault to redis-ha adopting the new master",
        "  (its /api/status).",
        "- **reads / errors / stale**: reads on the read endpoint, read errors, and reads older than the value",
        "  already acknowledged to the writer when the read was sent.",
        "- **verdict**: the drill's own, for the redis-ha path (the HAProxy path does not change it).", "",
        "| fault | path | outage | client errors | unknown | lost | dup | first ack after promotion | proxy switched | reads / errors / stale | acked | verdict |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in drills:
        lines += rows_of(r)
    lines += ["", "| machine | |", "|---|---|"] + [f"| {k} | {v} |" for k, v in m.items()] + [""]
    text = "\n".join(lines)
    open(a.out, "w").write(text)
    h.dump_json(os.path.splitext(a.out)[0] + ".json", {"machine": m, "drills": drills})
    print(text)


if __name__ == "__main__":
    main()
