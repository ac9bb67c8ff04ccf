#!/usr/bin/env python3
"""Redis beside Valkey, same script, same run: one throughput table and one
failover table, each engine on its own local topology (3 servers, 3
Sentinels), measured the same way.

Throughput: redis-benchmark (the same client for both engines) straight to
the engine (direct) and through `redis-ha proxy` (each --modes), the cells of
benchmarks/throughput.py at 50 connections; rounds interleave the engines
and the paths, and every ratio is to the same engine's direct figure in the
same round. Failover: `redis-ha drill` (its INCR and RPUSH writers count lost
and duplicated writes) through `redis-ha proxy`, a fresh topology per drill.
Writes benchmarks/VALKEY.md and VALKEY.json.

    benchmarks/engines.py                          # redis,valkey; ~4 minutes
    benchmarks/engines.py --engines valkey --rounds 1 --scale 0.1   # smoke run"""

import argparse
import os
import shlex
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import failover as fo  # noqa: E402
import harness as h  # noqa: E402
import throughput as tp  # noqa: E402

SERVER = {"redis": ("redis-server", "redis-server redis-sentinel"),
          "valkey": ("valkey-server", "valkey-server valkey-sentinel (scripts/install-deps.sh --valkey)")}


def measure_throughput(a, engines):
    topos, paths, procs = {}, {}, []
    for e in engines:
        topo = h.Topology(engine=e)
        topos[e] = topo
        master, replica = topo.master_port(), topo.replica_ports()[0]
        paths[e] = {"direct": (master, replica)}
        for mode in a.modes.split(","):
            p = h.start_proxy(topo, mode)
            procs.append(p)
            paths[e][f"redis-ha ({mode})"] = (p["write"], p["read"])
    cells = [(cmd, pipe) for cmd in ("set", "get") for pipe in (1, 16)]
    results = {}  # (engine, path, cmd, pipe) -> [runs]
    for rnd in range(a.rounds):
        for cmd, pipe in cells:
            n = int((200_000 if pipe == 1 else 1_500_000) * a.scale)
            for e in engines:
                for name, (wport, rport) in paths[e].items():
                    r = tp.redis_benchmark(wport if cmd == "set" else rport, cmd, a.conns, pipe, n)
                    results.setdefault((e, name, cmd, pipe), []).append(r)
                    h.log(f"round {rnd + 1} {e} {cmd.upper()} P{pipe} c{a.conns} {name}: "
                          f"{r['rps']:.0f} ops/s p99 {r['p99_ms']} ms")
    for p in procs:
        h.stop_child(p)
    for topo in topos.values():
        topo.down()
    return cells, list(paths[engines[0]]), results


def measure_failover(a, engines):
    rows = []
    for fault in a.faults.split(","):
        for e in engines:
            for mode in a.failover_modes.split(","):
                topo = h.Topology(down_after_ms=a.down_after_ms, engine=e)
                path = h.start_proxy(topo, mode)
                fo.wait_healthy(topo)
                h.log(f"drill: {fault} on {e} through redis-ha ({mode})")
                w = f"{h.HOST}:{path['write']}"
                r = fo.drill(["--fault", fault, "--writers", str(a.writers), "--before", "3s", "--after", "2s",
                              "--timeout", "20s", "--max-wait", "60s", "--state-dir", topo.dir, "--target", w],
                             via=None)
                r["engine"], r["path"] = e, f"redis-ha ({mode})"
                rows.append(r)
                h.log(f"  outage {r['write_outage_ms']:.0f} ms, errors {r['writes_failed']}, "
                      f"first ack after promotion {r['first_ack_after_promotion_ms']}, lost {r['lost_writes']}, "
                      f"duplicated {r['duplicated_writes']}")
                h.stop_child(path)
                topo.down()
    return rows


def throughput_table(lines, engines, names, cells, results):
    lines += ["| engine | path | " + " | ".join(f"{c.upper()} P{p}" for c, p in cells) + " |",
              "|---|---|" + "---|" * len(cells)]
    for e in engines:
        for name in names:
            row = []
            for cmd, pipe in cells:
                runs, direct = results[(e, name, cmd, pipe)], results[(e, "direct", cmd, pipe)]
                row.append(tp.cell(runs, direct, name == "direct"))
            lines.append(f"| {e} | {name} | " + " | ".join(row) + " |")
    if len(engines) > 1:
        base = engines[0]
        for e in engines[1:]:
            for name in names:
                row = []
                for cmd, pipe in cells:
                    ratios = [r["rps"] / b["rps"] for r, b in
                              zip(results[(e, name, cmd, pipe)], results[(base, name, cmd, pipe)])]
                    row.append(tp.fmt_ratio(ratios))
                lines.append(f"| {e} ÷ {base} | {name} | " + " | ".join(row) + " |")
    lines.append("")


def failover_table(lines, rows):
    ms = lambda v: "never" if v is None else f"{v:.0f} ms"  # noqa: E731
    lines += ["| fault | engine | path | write outage | drill client errors | new master accepts writes → "
              "first ack through path | lost acked writes | duplicated | unknown outcomes | acked writes |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        errs = ", ".join(f"{k}: {v}" for k, v in r["errors"].items()) or "none"
        lines.append(f"| {r['fault']} | {r['engine']} | {r['path']} | {r['write_outage_ms']:.0f} ms | "
                     f"{r['writes_failed']} ({errs}) | {ms(r['first_ack_after_promotion_ms'])} | "
                     f"{r['lost_writes']} | **{r['duplicated_writes']}** | {r['unknown_outcomes']} | "
                     f"{r['writes_acked']} |")
    lines.append("")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--engines", default="redis,valkey", help="engines to measure side by side, the first "
                    "is the base of the engine ratios")
    ap.add_argument("--modes", default="multiplex,dedicated", help="redis-ha proxy modes")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--scale", type=float, default=0.25, help="request counts relative to throughput.py's "
                    "(200k at pipeline 1, 1.5M at 16)")
    ap.add_argument("--conns", type=int, default=50)
    ap.add_argument("--faults", default="kill,failover")
    ap.add_argument("--failover-modes", default="multiplex", help="proxy modes the drills go through")
    ap.add_argument("--writers", type=int, default=8)
    ap.add_argument("--down-after-ms", type=int, default=5000)
    ap.add_argument("--no-failover", action="store_true")
    ap.add_argument("--note", default="", help="a sentence about the run's conditions, printed in the report")
    ap.add_argument("--out", default=os.path.join(h.ROOT, "benchmarks", "VALKEY.md"))
    a = ap.parse_args()
    engines = [e.strip() for e in a.engines.split(",") if e.strip()]
    h.need("redis-benchmark", "redis-tools")
    for e in engines:
        if e not in SERVER:
            sys.exit(f"unknown engine {e!r}: use redis or valkey")
        h.need(SERVER[e][0], SERVER[e][1])
    h.build()
    load = {"start": os.getloadavg()}
    cells, names, results = measure_throughput(a, engines)
    load["after throughput"] = os.getloadavg()
    rows = [] if a.no_failover else measure_failover(
        argparse.Namespace(**{**vars(a), "modes": a.failover_modes}), engines)
    load["end"] = os.getloadavg()
    m = h.machine()
    m["load average (1, 5, 15 min)"] = "; ".join(f"{k} {' '.join(f'{x:.1f}' for x in v)}" for k, v in load.items())
    cmd = "benchmarks/engines.py" + "".join(f" {shlex.quote(x)}" for x in sys.argv[1:])
    lines = ["# Redis and Valkey side by side", "",
             f"Produced by `{cmd}` in one run on one machine ({m['date']}, redis-ha {m['redis-ha']}).",
             "Each engine runs its own local topology (`redis-ha up --engine E`: 3 servers, 3 Sentinels, quorum",
             "2) with the same settings; the load generator, proxy binary and cells are the same for both.", ""]
    if a.note:
        lines += [a.note, ""]
    lines += ["## Throughput", "",
              f"redis-benchmark, {a.conns} connections, 256-byte values, random keys over 100k, "
              f"{int(200_000 * a.scale)} requests at pipeline 1 and {int(1_500_000 * a.scale)} at pipeline 16",
              "per cell. Direct = straight to the engine's master (SET) or a replica (GET); redis-ha = `redis-ha",
              "proxy` write and read endpoints in front of that engine. Ratio = ops/s ÷ the same engine's direct",
              f"ops/s in the same round ({a.rounds} rounds, the engines and paths interleaved; median in bold,",
              f"range over the rounds). `{engines[-1]} ÷ {engines[0]}` rows compare the same path across engines,",
              "round by round.", ""]
    throughput_table(lines, engines, names, cells, results)
    if rows:
        lines += ["## Failover", "",
                  f"`redis-ha drill` ({a.writers} writers, each an RPUSH of a unique value then an INCR of its "
                  "own counter, one at a time; fault after 3 s of steady writes) through `redis-ha proxy`,",
                  f"a fresh topology per drill (down-after-milliseconds {a.down_after_ms}); duplicated = a value "
                  "applied twice or a counter above acknowledged + unknown,",
                  "lost = acknowledged yet missing from the final master. See benchmarks/FAILOVER.md",
                  "for HAProxy on Redis in the same drills.", ""]
        failover_table(lines, rows)
    lines += ["| machine | |", "|---|---|"] + [f"| {k} | {v} |" for k, v in m.items()] + [""]
    text = "\n".join(lines)
    open(a.out, "w").write(text)
    h.dump_json(os.path.splitext(a.out)[0] + ".json",
                {"command": cmd, "machine": m, "note": a.note,
                 "throughput": {f"{e}|{n}|{c}-P{p}-c{a.conns}": v for (e, n, c, p), v in results.items()},
                 "failover": rows})
    print(text)


if __name__ == "__main__":
    main()
