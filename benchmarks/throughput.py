#!/usr/bin/env python3
"""Throughput, side by side in one run: direct to Redis vs HAProxy (configured
like the original) vs twemproxy (nutcracker) vs redis-ha proxy (and, with
--ab-binary, an older redis-ha build), with redis-benchmark; plus redis-ha bench
vs redis-benchmark (and memtier_benchmark if installed) against direct Redis.

    benchmarks/throughput.py            # full run, writes benchmarks/RESULTS.md
    benchmarks/throughput.py --quick    # smaller counts, for a smoke run

Ratios compare paths measured in the same round, so machine noise mostly
cancels; two rounds are interleaved and both ratios are shown (min-max)."""

import argparse
import csv
import io
import json
import os
import resource
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402


def redis_benchmark(port, cmd, clients, pipeline, n, threads=None):
    args = ["redis-benchmark", "-h", h.HOST, "-p", str(port), "-c", str(clients), "-n", str(n),
            "-P", str(pipeline), "-d", "256", "-t", cmd, "-r", "100000", "--csv"]
    if threads:
        args += ["--threads", str(threads)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(args, capture_output=True, text=True, timeout=600)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    rows = [r for r in csv.reader(io.StringIO(out.stdout)) if r and r[0] != "test"]
    if not rows:
        raise RuntimeError(f"redis-benchmark printed no result: {out.stderr.strip()[:300]}")
    r = rows[0]
    return {"rps": float(r[1]), "avg_ms": float(r[2]), "p50_ms": float(r[4]), "p99_ms": float(r[6]),
            "cpu_s": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)}


def idle_conn_memory(pid, port, n=1000):
    """RSS growth per client connection: connected only, then after one PING each.

    The PINGs go one connection at a time, so the figure is what an idle
    connection keeps after use; 1000 PINGs in flight at once would measure
    the peak of 1000 busy connections instead (4-7 KiB, varying run to run)."""
    base = h.rss_kib(pid)
    socks = []
    for _ in range(n):
        s = socket.create_connection((h.HOST, port))
        socks.append(s)
    time.sleep(0.5)  # let the proxy accept them all; we measure, not synchronise
    connected = h.rss_kib(pid)
    for s in socks:
        s.sendall(b"PING\r\n")
        s.recv(64)
    pinged = h.rss_kib(pid)
    for s in socks:
        s.close()
    return {"connected_bytes": (connected - base) * 1024 / n, "after_ping_bytes": (pinged - base) * 1024 / n}


def bench_efficiency(master_port, seconds):
    """redis-ha bench vs redis-benchmark (and memtier if present), SET 256 B, 2 threads x 25 clients."""
    res = {}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out_json = os.path.join("/tmp", f"redis-ha-bench-{os.getpid()}.json")
    subprocess.run([h.BIN, "bench", "-s", h.HOST, "-p", str(master_port), "-t", "2", "-c", "25",
                    "--ratio", "1:0", "-d", "256", "--test-time", str(seconds), "--hide-histogram",
                    "--json-out-file", out_json], check=True, stdout=subprocess.DEVNULL, timeout=seconds + 120)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    rep = json.load(open(out_json))
    res["redis-ha bench"] = {"rps": find_ops(rep),
                             "cpu_s": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
                             "seconds": seconds}
    # redis-benchmark with the same shape: 50 connections, 2 threads, SET 256 B, ~same duration.
    n = int(res["redis-ha bench"]["rps"] * seconds) or 100000
    rb = redis_benchmark(master_port, "set", 50, 1, n, threads=2)
    rb["seconds"] = n / rb["rps"]
    res["redis-benchmark"] = rb
    if h.shutil.which("memtier_benchmark"):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        mj = f"/tmp/memtier-{os.getpid()}.json"
        subprocess.run(["memtier_benchmark", "-s", h.HOST, "-p", str(master_port), "-t", "2", "-c", "25",
                        "--ratio", "1:0", "-d", "256", "--test-time", str(seconds), "--hide-histogram",
                        "--json-out-file", mj], check=True, stdout=subprocess.DEVNULL, timeout=seconds + 120)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        m = json.load(open(mj))
        res["memtier_benchmark"] = {"rps": m["ALL STATS"]["Totals"]["Ops/sec"],
                                    "cpu_s": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
                                    "seconds": seconds}
    return res


def ha_bench(port, cmd, pipe, secs):
    """redis-ha bench with redis-benchmark's shape: 50 connections, 256 B, keys over 100k."""
    out_json = os.path.join("/tmp", f"redis-ha-bench-cell-{os.getpid()}.json")
    subprocess.run([h.BIN, "bench", "-s", h.HOST, "-p", str(port), "-t", "2", "-c", "25",
                    "--ratio", "1:0" if cmd == "set" else "0:1", "-d", "256", "--pipeline", str(pipe),
                    "--key-maximum", "100000", "--test-time", str(secs), "--hide-histogram",
                    "--json-out-file", out_json], check=True, stdout=subprocess.DEVNULL, timeout=secs + 120)
    rep = json.load(open(out_json))
    tot = rep["ALL STATS"]["Totals"]
    return {"rps": find_ops(rep), "p99_ms": float(tot.get("Percentile Latencies", {}).get("p99.00", 0.0))}


def find_ops(rep):
    """Total ops/s from redis-ha bench's JSON (memtier-like layout)."""
    for path in (("ALL STATS", "Totals", "Ops/sec"), ("totals", "ops_per_sec"), ("ops_per_sec",)):
        cur = rep
        try:
            for k in path:
                cur = cur[k]
            return float(cur)
        except (KeyError, TypeError):
            continue
    raise RuntimeError("cannot find total ops/s in redis-ha bench JSON")


def fmt_ratio(vals):
    """The median ratio, then the range over the rounds."""
    lo, hi = min(vals), max(vals)
    med = sorted(vals)[len(vals) // 2]
    return f"{med:.2f}×" if abs(hi - lo) < 0.005 else f"**{med:.2f}×** ({lo:.2f}–{hi:.2f})"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small counts (smoke run, noisy numbers)")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--modes", default="dedicated,multiplex", help="redis-ha proxy modes to measure")
    ap.add_argument("--no-ha-bench", action="store_true",
                    help="skip the second load generator (redis-ha bench, 50 connections)")
    ap.add_argument("--conns", default="50,500")
    ap.add_argument("--cells", default="set:1,set:16,get:1,get:16", help="COMMAND:PIPELINE cells to measure")
    ap.add_argument("--proxy-args", default="", help="extra `redis-ha proxy` flags, e.g. '--mux-connections 1'")
    ap.add_argument("--ab-binary", help="also measure this redis-ha binary (an older build) in multiplex mode, "
                    "side by side: an A/B run of two versions of the proxy")
    ap.add_argument("--ab-name", default="old", help="the A/B binary's name in the tables")
    ap.add_argument("--no-twemproxy", action="store_true", help="skip twemproxy (nutcracker)")
    ap.add_argument("--variant", action="append", default=[], metavar="NAME=FLAGS",
                    help="also measure this build with extra proxy flags (multiplex), e.g. "
                         "'write-ack=--write-ack replicas=1'; repeatable")
    ap.add_argument("--out", default=os.path.join(h.ROOT, "benchmarks", "RESULTS.md"))
    a = ap.parse_args()
    for b, p in (("redis-benchmark", "redis-tools"), ("redis-server", "redis-server"), ("haproxy", "haproxy"),
                 ("nutcracker", "nutcracker")):
        h.need(b, p)
    h.build()
    scale = 0.25 if a.quick else 1.0
    topo = h.Topology()
    hap = h.start_haproxy(topo)
    proxies = {}
    for mode in a.modes.split(","):
        try:
            proxies[mode] = h.start_proxy(topo, mode, extra=a.proxy_args.split())
        except SystemExit as e:
            h.log(f"redis-ha proxy --mode {mode} did not start ({e}); skipped")
    master, replica = topo.master_port(), topo.replica_ports()[0]
    paths = {"direct": (master, replica), "haproxy": (hap["write"], hap["read"])}
    # The proxy process of each path, for its CPU per request.
    proxy_pid = {"direct": None, "haproxy": hap["pid"]}
    if not a.no_twemproxy:
        twem = h.start_twemproxy(topo)
        paths["twemproxy"] = (twem["write"], twem["read"])
        proxy_pid["twemproxy"] = twem["pid"]
    if a.ab_binary:
        old = h.start_proxy(topo, "multiplex", extra=a.proxy_args.split(), binary=a.ab_binary)
        paths[f"redis-ha {a.ab_name} (multiplex)"] = (old["write"], old["read"])
        proxy_pid[f"redis-ha {a.ab_name} (multiplex)"] = old["pid"]
    for mode, p in proxies.items():
        paths[f"redis-ha ({mode})"] = (p["write"], p["read"])
        proxy_pid[f"redis-ha ({mode})"] = p["pid"]
    for v in a.variant:
        vname, _, flags = v.partition("=")
        vp = h.start_proxy(topo, "multiplex", extra=a.proxy_args.split() + flags.split())
        paths[f"redis-ha {vname} (multiplex)"] = (vp["write"], vp["read"])
        proxy_pid[f"redis-ha {vname} (multiplex)"] = vp["pid"]
    redis_pids = [int(h.redis_cli(q, "INFO", "server").split("process_id:")[1].split()[0])
                  for q in topo.redis_ports]
    cells = []
    for conns in [int(c) for c in a.conns.split(",")]:
        for cell in a.cells.split(","):
            cmd, pipe = cell.split(":")[0], int(cell.split(":")[1])
            n = int((200_000 if pipe == 1 else 1_500_000) * scale)
            cells.append((cmd, pipe, conns, n))
    results = {}
    names = list(paths)
    for rnd in range(a.rounds):
        # Each round starts at a different path, so none is always measured
        # right after the same other one (or always last).
        order = names[rnd % len(names):] + names[:rnd % len(names)]
        for cmd, pipe, conns, n in cells:
            for name in order:
                wport, rport = paths[name]
                h.wait_until("replicas caught up", topo.replicas_caught_up)
                port = wport if cmd == "set" else rport
                pid = proxy_pid[name]
                before = (sum(map(h.cpu_seconds, redis_pids)), h.cpu_seconds(pid) if pid else 0.0)
                r = redis_benchmark(port, cmd, conns, pipe, n)
                after = (sum(map(h.cpu_seconds, redis_pids)), h.cpu_seconds(pid) if pid else 0.0)
                # CPU microseconds per request: the load generator, every
                # Redis node (replication included), the proxy in between.
                r["cpu_us"] = {"client": r["cpu_s"] / n * 1e6, "redis": (after[0] - before[0]) / n * 1e6,
                               "proxy": (after[1] - before[1]) / n * 1e6}
                results.setdefault((cmd, pipe, conns), {}).setdefault(name, []).append(r)
                h.log(f"round {rnd + 1} {cmd.upper()} P{pipe} c{conns} {name}: {r['rps']:.0f} ops/s p99 {r['p99_ms']} ms")
    # The same cells at 50 connections with redis-ha bench as the load
    # generator (2 threads x 25 clients), a check that the ranking does not
    # depend on redis-benchmark.
    ha_results = {}
    if not a.no_ha_bench:
        secs = 2 if a.quick else 4
        for rnd in range(a.rounds):
            for cmd in ("set", "get"):
                for pipe in (1, 16):
                    for name, (wport, rport) in paths.items():
                        port = wport if cmd == "set" else rport
                        r = ha_bench(port, cmd, pipe, secs)
                        ha_results.setdefault((cmd, pipe, 50), {}).setdefault(name, []).append(r)
                        h.log(f"round {rnd + 1} redis-ha bench {cmd.upper()} P{pipe} c50 {name}: "
                              f"{r['rps']:.0f} ops/s p99 {r['p99_ms']} ms")
    # Memory in fresh processes: after the runs, freed heap would absorb the
    # new connections and show nothing.
    mem = {}
    for mode in proxies:
        fresh = h.start_proxy(topo, mode, extra=a.proxy_args.split())
        mem[f"redis-ha ({mode})"] = idle_conn_memory(fresh["pid"], fresh["write"])
        h.stop_child(fresh)
    fresh = h.start_haproxy(topo)
    mem["haproxy (a server connection per client)"] = idle_conn_memory(fresh["pid"], fresh["write"])
    h.stop_child(fresh)
    eff = bench_efficiency(master, 3 if a.quick else 10)
    write_report(a, results, ha_results, paths, mem, eff)


def ratio_table(lines, results, names, conns):
    keys = sorted(k for k in results if k[2] == conns)
    lines += ["| path | " + " | ".join(f"{c.upper()} P{p}" for c, p, n in keys) + " |",
              "|---|" + "---|" * len(keys)]
    for name in names:
        row = []
        for k in keys:
            row.append(cell(results[k][name], results[k]["direct"], name == "direct"))
        lines.append(f"| {name} | " + " | ".join(row) + " |")
    lines.append("")


def cell(runs, direct, is_direct):
    """One table cell: direct's own rate, or a path's ratio to direct round by round."""
    ops = sum(r["rps"] for r in runs) / len(runs)
    p99 = max(r["p99_ms"] for r in runs)
    if is_direct:
        return f"{ops / 1000:.0f}k ops/s, p99 {p99:.2f} ms"
    ratios = [r["rps"] / d["rps"] for r, d in zip(runs, direct)]
    return f"{fmt_ratio(ratios)} ({ops / 1000:.0f}k, p99 {p99:.2f} ms)"


def cpu_table(lines, results, names):
    """Where the CPU goes at 50 connections: what a request costs each process."""
    keys = sorted(k for k in results if k[2] == 50 and all("cpu_us" in r for v in results[k].values() for r in v))
    if not keys:
        return
    lines += ["## CPU per request at 50 connections", "",
              "CPU microseconds per request (user + system, mean over the rounds) of the load generator, all",
              "three Redis nodes, and the proxy; `cores busy` = total CPU time ÷ wall time. The machine has "
              f"{os.cpu_count()} cores: a",
              "path can go no faster than its total CPU per request allows, and at pipeline 1 the proxy's own",
              "share is mostly kernel TCP (one recv and one send per request).", "",
              "| cell | path | client | Redis | proxy | total | cores busy |", "|---|---|---|---|---|---|---|"]
    for k in keys:
        for name in names:
            runs = results[k][name]
            c = {f: sum(r["cpu_us"][f] for r in runs) / len(runs) for f in ("client", "redis", "proxy")}
            total = sum(c.values())
            rps = sum(r["rps"] for r in runs) / len(runs)
            proxy = f"{c['proxy']:.1f}" if name != "direct" else "–"
            lines.append(f"| {k[0].upper()} P{k[1]} | {name} | {c['client']:.1f} | {c['redis']:.1f} | {proxy} | "
                         f"{total:.1f} | {total * rps / 1e6:.2f} |")
    lines.append("")


def write_report(a, results, ha_results, paths, mem, eff):
    m = h.machine()
    lines = ["# Benchmark results", "",
             f"Produced by `benchmarks/throughput.py{' --quick' if a.quick else ''}` in one run on one machine.", "",
             "| machine | |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in m.items()]
    lines += ["", "Direct = redis-benchmark straight to the master (SET) or a replica (GET). HAProxy = Debian's",
              "haproxy with the original's dual-backend config (benchmarks/haproxy.cfg.in: tcp-check role:master /",
              "role:slave, check inter 1s). twemproxy = Debian's nutcracker, one pool to the master (SET), one",
              "to a replica (GET); it knows no Sentinel, so it is a data-path peer only. redis-ha = `redis-ha",
              "proxy` write (SET) and read (GET) endpoints" + (f"; `redis-ha {a.ab_name}` = {a.ab_binary}, the A/B"
                                                              " baseline, in the same run" if a.ab_binary else "") + ".",
              "redis-benchmark, 256-byte values, random keys over 100k. Ratio = ops/s ÷ direct ops/s in the same",
              f"round ({a.rounds} rounds interleaved, each starting at the next path, after the replicas have caught up; "
              "median in bold, range over the rounds).", ""]
    names = list(paths)
    for conns in sorted({k[2] for k in results}):
        lines += [f"## {conns} connections", ""]
        ratio_table(lines, results, names, conns)
    cpu_table(lines, results, names)
    if ha_results:
        lines += ["## 50 connections, redis-ha bench as the load generator", "",
                  "`redis-ha bench -t 2 -c 25 --ratio 1:0 / 0:1 -d 256 --pipeline P --key-maximum 100000`, "
                  "same paths, same ratios.", ""]
        ratio_table(lines, ha_results, names, 50)
    if mem:
        lines += ["## Memory per client connection (RSS growth of a fresh process, 1000 connections)", "",
                  "| proxy | connected, idle | after one PING |", "|---|---|---|"]
        for mode, v in mem.items():
            lines.append(f"| {mode} | {v['connected_bytes'] / 1024:.1f} KiB | {v['after_ping_bytes'] / 1024:.1f} KiB |")
        lines.append("")
    lines += ["## Load generator efficiency (direct to the master, SET 256 B, 2 threads × 25 clients)", "",
              "| tool | ops/s | CPU seconds per 100k ops | ratio to redis-benchmark |", "|---|---|---|---|"]
    base = eff["redis-benchmark"]["rps"]
    for tool, v in eff.items():
        per = v["cpu_s"] / max(v["rps"] * v["seconds"], 1) * 100_000
        lines.append(f"| {tool} | {v['rps']:.0f} | {per:.2f} | {v['rps'] / base:.2f}× |")
    lines.append("")
    text = "\n".join(lines)
    open(a.out, "w").write(text)
    h.dump_json(os.path.splitext(a.out)[0] + ".json",
                {"machine": m, "results": {f"{c}-P{p}-c{n}": v for (c, p, n), v in results.items()},
                 "results_redis_ha_bench": {f"{c}-P{p}-c{n}": v for (c, p, n), v in ha_results.items()},
                 "memory": mem, "bench_efficiency": eff})
    print(text)


if __name__ == "__main__":
    main()
