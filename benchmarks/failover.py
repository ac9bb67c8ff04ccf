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
import socket
import subprocess
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402


def drill(topo, target, fault, writers):
    out = subprocess.run([h.BIN, "drill", "--json", "--state-dir", topo.dir, "--target", f"{h.HOST}:{target}",
                          "--fault", fault, "--writers", str(writers), "--before", "3s", "--after", "3s",
                          "--timeout", "20s"], capture_output=True, text=True, timeout=300)
    if not out.stdout.strip():
        raise RuntimeError(f"drill failed: {out.stderr.strip()[-500:]}")
    return json.loads(out.stdout)


def resp(sock_file, args):
    """Sends one command, returns its reply: int, str, list, or an Exception for an error."""
    sock, f = sock_file
    sock.sendall(b"".join([f"*{len(args)}\r\n".encode()] +
                          [f"${len(str(x).encode())}\r\n{x}\r\n".encode() for x in args]))
    return read_reply(f)


def read_reply(f):
    line = f.readline()
    if not line:
        raise ConnectionError("closed")
    t, body = line[:1], line[1:-2].decode()
    if t == b":":
        return int(body)
    if t in (b"+",):
        return body
    if t == b"-":
        return RuntimeError(body)
    if t == b"$":
        n = int(body)
        return None if n < 0 else f.read(n + 2)[:-2].decode()
    if t == b"*":
        return [read_reply(f) for _ in range(int(body))]
    raise ConnectionError(f"bad reply {line!r}")


def connect(port):
    s = socket.create_connection((h.HOST, port), timeout=20)
    return s, s.makefile("rb")


class PushProbe:
    """Writers doing RPUSH of unique values (one at a time each) through a
    path during a drill: a value applied twice shows in the list. Each reply
    is judged as a client must: acknowledged, an error saying it did not
    run, or unknown (an unknown-outcome error, or a dropped connection)."""

    def __init__(self, port, writers=4):
        self.port, self.stop = port, threading.Event()
        self.logs = [{"acked": [], "unknown": [], "not_run": 0} for _ in range(writers)]
        self.threads = [threading.Thread(target=self.run, args=(i,), daemon=True) for i in range(writers)]
        for t in self.threads:
            t.start()

    def run(self, i):
        log, c, seq = self.logs[i], None, 0
        while not self.stop.is_set():
            try:
                c = c or connect(self.port)
            except OSError:
                c = None
                self.stop.wait(0.02)
                continue
            seq += 1
            try:
                r = resp(c, ["RPUSH", f"probe:{i}", seq])
            except OSError:
                log["unknown"].append(seq)
                c = None
                continue
            if isinstance(r, int):
                log["acked"].append(seq)
            elif "unknown outcome" in str(r) or "twice" in str(r):
                log["unknown"].append(seq)
            else:
                log["not_run"] += 1

    def finish(self, master_port):
        self.stop.set()
        for t in self.threads:
            t.join(30)
        c = connect(master_port)
        out = {"acked": 0, "unknown": 0, "duplicates": 0, "lost": 0}
        for i, log in enumerate(self.logs):
            vals = [int(v) for v in resp(c, ["LRANGE", f"probe:{i}", 0, -1])]
            out["duplicates"] += len(vals) - len(set(vals))
            out["lost"] += len(set(log["acked"]) - set(vals))
            out["acked"] += len(log["acked"])
            out["unknown"] += len(log["unknown"])
        return out


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
            probe = PushProbe(path["write"])
            r = drill(topo, path["write"], fault, a.writers)
            r["path"] = name
            r["push_probe"] = probe.finish(topo.master_port())
            rows.append(r)
            h.log(f"  outage {r['write_outage_ms']:.0f} ms, errors {r['writes_failed']}, "
                  f"first ack after promotion {r['first_ack_after_promotion_ms']}, lost {r['lost_writes']}, "
                  f"RPUSH probe {r['push_probe']}")
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
             "RPUSH probe: 4 more connections pushing unique values through the same path during the drill, each",
             "reply judged as a client must (acknowledged; unknown = an unknown-outcome error or a dropped",
             "connection; a TRYAGAIN-like error = not run). Duplicates = values in the final list more than once",
             "(a write applied twice); lost = acknowledged values missing from the final master.", "",
             "| fault | path | write outage | client errors | new master accepts writes → first ack through path | lost acked writes | acked writes | RPUSH probe: acked / unknown / duplicates / lost |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        p = r["push_probe"]
        errs = ", ".join(f"{k}: {v}" for k, v in r["errors"].items()) or "none"
        lines.append(f"| {r['fault']} | {r['path']} | {r['write_outage_ms']:.0f} ms | {r['writes_failed']} ({errs}) | "
                     f"{ms(r['first_ack_after_promotion_ms'])} | {r['lost_writes']} | {r['writes_acked']} | "
                     f"{p['acked']} / {p['unknown']} / **{p['duplicates']}** / {p['lost']} |")
    lines += ["", "| machine | |", "|---|---|"] + [f"| {k} | {v} |" for k, v in m.items()] + [""]
    text = "\n".join(lines)
    open(a.out, "w").write(text)
    h.dump_json(os.path.splitext(a.out)[0] + ".json", {"machine": m, "drills": rows})
    print(text)


if __name__ == "__main__":
    main()
