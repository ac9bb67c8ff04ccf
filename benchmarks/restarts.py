#!/usr/bin/env python3
"""Every restart drill of issue 27, on Redis and on Valkey: `redis-ha drill
--fault cold-restart` in every `--order`, with and without a stale replica
and with the sentinels' files kept or lost, plus `wipe-master`,
`wipe-replica` and `kill` (for comparison), each under the drill's 8
INCR/RPUSH writers through `up`'s own proxy. One `redis-ha up` per engine
(`--appendfsync always`: README, Restarts), drills one after another on it.
Writes benchmarks/RESTARTS.md and RESTARTS.json: writes' longest gap, lost,
duplicated, masters at the end, and the sentinels' aborted failovers (a
failover begun while the master was away that found no replica it could
promote: `-failover-abort-no-good-slave`, the replica guard at work).

    benchmarks/restarts.py [--engines redis,valkey] [--down-after-ms 2000] [--bin target/release/redis-ha]"""

import argparse
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

ORDERS = ["all-at-once", "sentinels-last", "stale-first", "sentinels-first", "proxy-first"]


def cases():
    for order in ORDERS:
        for stale in (False, True):
            for state in ("kept", "lost"):
                args = ["--fault", "cold-restart", "--order", order, "--sentinel-state", state]
                name = f"cold-restart {order}" + (" stale" if stale else "") + (" lost" if state == "lost" else "")
                yield name, args + (["--stale-replica"] if stale else [])
    for fault in ("wipe-master", "wipe-replica", "kill"):
        yield fault, ["--fault", fault]


def aborts(state_dir):
    n = 0
    for f in glob.glob(os.path.join(state_dir, "sentinel-*", "sentinel.log")):
        with open(f, errors="replace") as fh:
            n += fh.read().count("-failover-abort-no-good-slave")
    return n


def run_engine(engine, a):
    d = tempfile.mkdtemp(prefix=f"redis-ha-restarts-{engine}-")
    p = h.free_ports(10)
    up = [a.bin, "up", "--detach", "--state-dir", d, "--engine", engine,
          "--redis-ports", ",".join(map(str, p[:3])), "--sentinel-ports", ",".join(map(str, p[3:6])),
          "--proxy-port", str(p[6]), "--proxy-read-port", str(p[7]), "--admin-port", str(p[8]),
          "--down-after-ms", str(a.down_after_ms), "--appendfsync", "always"]
    h.log(" ".join(up[1:]))
    subprocess.run(up, check=True, stdout=subprocess.DEVNULL)
    rows = []
    try:
        for name, args in cases():
            before = aborts(d)
            cmd = [a.bin, "drill", "--json", "--state-dir", d, "--before", "1s", "--after", "1s", *args]
            h.log(f"{engine}: {name}")
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
            try:
                r = json.loads(out.stdout)
            except json.JSONDecodeError:
                rows.append({"engine": engine, "case": name, "exit": out.returncode,
                             "error": out.stderr.strip()[-400:]})
                continue
            rows.append({"engine": engine, "case": name, "exit": out.returncode,
                         "acked": r["writes_acked"], "gap_ms": r["write_outage_ms"],
                         "lost": r["lost_writes"], "duplicated": r["duplicated_writes"],
                         "unknown": r["unknown_outcomes"], "masters": len(r["masters_at_end"]),
                         "aborted_failovers": aborts(d) - before})
    finally:
        subprocess.run([a.bin, "down", "--state-dir", d], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shutil.rmtree(d, ignore_errors=True)
    return rows


def table(rows):
    out = ["| engine | case | exit | acked | longest write gap (ms) | lost | duplicated | unknown | masters | aborted failovers |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "error" in r:
            out.append(f"| {r['engine']} | {r['case']} | {r['exit']} | error: {r['error']} | | | | | | |")
            continue
        out.append(f"| {r['engine']} | {r['case']} | {r['exit']} | {r['acked']} | {r['gap_ms']:.0f} | {r['lost']} "
                   f"| {r['duplicated']} | {r['unknown']} | {r['masters']} | {r['aborted_failovers']} |")
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--engines", default="redis,valkey")
    ap.add_argument("--down-after-ms", type=int, default=2000)
    ap.add_argument("--bin", default=os.path.join(
        os.environ.get("CARGO_TARGET_DIR", os.path.join(h.ROOT, "target")), "release", "redis-ha"))
    ap.add_argument("--out", default=os.path.join(h.ROOT, "benchmarks", "RESTARTS.md"))
    a = ap.parse_args()
    rows = [r for e in a.engines.split(",") for r in run_engine(e, a)]
    bad = [r for r in rows if r.get("exit") != 0 or r.get("lost") or r.get("duplicated") or r.get("masters") != 1]
    m = ", ".join(f"{k}: {v}" for k, v in h.machine().items())
    md = (f"# Restart drills (benchmarks/restarts.py)\n\n{m}\n\n"
          f"`redis-ha up --appendfsync always --down-after-ms {a.down_after_ms}`, 8 writers through its proxy, "
          "`drill --before 1s --after 1s`; the stagger between groups of an `--order` is 2 s.\n\n"
          f"{table(rows)}\n\n{len(rows) - len(bad)} of {len(rows)} drills passed (exit 0, 0 lost, 0 duplicated, one master).\n")
    with open(a.out, "w") as f:
        f.write(md)
    h.dump_json(a.out.replace(".md", ".json"), rows)
    print(md)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
