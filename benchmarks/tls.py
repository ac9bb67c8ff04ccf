#!/usr/bin/env python3
"""TLS toward clients, side by side in one run: redis-benchmark --tls straight
to Redis's own TLS port vs HAProxy terminating TLS (the original's config with
`ssl crt` on its binds) vs `redis-ha proxy --tls-port/--tls-read-port`; the
backends are plain TCP behind both proxies. Plain direct is shown too, as the
cost of TLS itself. twemproxy has no TLS.

    benchmarks/tls.py                 # writes benchmarks/TLS.md (+ TLS.json)
    benchmarks/tls.py --quick         # smaller counts, for a smoke run

Ratios are to direct TLS in the same round (rounds interleaved)."""

import argparse
import csv
import io
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
import throughput as tp  # noqa: E402


def pki(d):
    """A CA and a server certificate for 127.0.0.1 (openssl), plus HAProxy's combined PEM."""
    def run(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True)
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=redis-ha bench CA",
        "-keyout", f"{d}/ca.key", "-out", f"{d}/ca.pem")
    run("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", f"{d}/server.key",
        "-out", f"{d}/server.csr")
    open(f"{d}/san.ext", "w").write("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    run("x509", "-req", "-in", f"{d}/server.csr", "-CA", f"{d}/ca.pem", "-CAkey", f"{d}/ca.key",
        "-CAcreateserial", "-days", "2", "-extfile", f"{d}/san.ext", "-out", f"{d}/server.pem")
    with open(f"{d}/haproxy.pem", "w") as f:
        f.write(open(f"{d}/server.pem").read() + open(f"{d}/server.key").read())
    return {"ca": f"{d}/ca.pem", "cert": f"{d}/server.pem", "key": f"{d}/server.key",
            "combined": f"{d}/haproxy.pem"}


def redis_tls_port(port, certs):
    """Turns on a TLS port on a running Redis node (CONFIG SET, no restart)."""
    tls_port = h.free_ports(1)[0]
    h.redis_cli(port, "CONFIG", "SET", "tls-cert-file", certs["cert"], "tls-key-file", certs["key"],
                "tls-ca-cert-file", certs["ca"], "tls-auth-clients", "no")
    out = h.redis_cli(port, "CONFIG", "SET", "tls-port", str(tls_port))
    if "OK" not in out:
        sys.exit(f"redis-server did not open a TLS port ({out.strip()}): is it built with TLS?")
    return tls_port


def start_haproxy_tls(topo, certs):
    """The benchmark HAProxy, its client-facing binds with `ssl crt`."""
    real = os.path.join(h.ROOT, "benchmarks", "haproxy.cfg.in")
    text = open(real).read().replace("bind @HOST@:@WRITE_PORT@", f"bind @HOST@:@WRITE_PORT@ ssl crt {certs['combined']}")
    text = text.replace("bind @HOST@:@READ_PORT@", f"bind @HOST@:@READ_PORT@ ssl crt {certs['combined']}")
    tmpl = os.path.join(topo.dir, "haproxy-tls.cfg.in")
    open(tmpl, "w").write(text)
    return h.start_haproxy(topo, template=tmpl)


def bench(port, cmd, clients, pipe, n, certs, client=None):
    """One redis-benchmark cell; `certs` (its `ca`) makes it TLS, `client`
    (certificate, key) adds a client certificate."""
    args = ["redis-benchmark", "-h", h.HOST, "-p", str(port), "-c", str(clients), "-n", str(n), "-P", str(pipe),
            "-d", "256", "-t", cmd, "-r", "100000", "--csv"]
    if certs:
        args += ["--tls", "--cacert", certs["ca"]]
        if client:
            args += ["--cert", client[0], "--key", client[1]]
    out = subprocess.run(args, capture_output=True, text=True, timeout=600)
    rows = [r for r in csv.reader(io.StringIO(out.stdout)) if r and r[0] != "test"]
    if not rows:
        raise RuntimeError(f"redis-benchmark printed no result: {out.stderr.strip()[:300]}")
    return {"rps": float(rows[0][1]), "p99_ms": float(rows[0][6])}


def parse_args(doc, cells, out):
    """The flags both TLS scripts take."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--conns", type=int, default=50)
    ap.add_argument("--cells", default=cells)
    ap.add_argument("--out", default=os.path.join(h.ROOT, "benchmarks", out))
    return ap.parse_args()


def measure(a, paths):
    """Every cell through every path, rounds interleaved. `paths`: name ->
    ((write port, read port), certs or None, client (cert, key) or None)."""
    scale = 0.25 if a.quick else 1.0
    results = {}
    for rnd in range(a.rounds):
        for cell in a.cells.split(","):
            cmd, pipe = cell.split(":")[0], int(cell.split(":")[1])
            n = int((200_000 if pipe == 1 else 1_500_000) * scale)
            for name, ((w, r), c, client) in paths.items():
                res = bench(w if cmd == "set" else r, cmd, a.conns, pipe, n, c, client)
                results.setdefault((cmd, pipe, a.conns), {}).setdefault(name, []).append(res)
                h.log(f"round {rnd + 1} {cmd.upper()} P{pipe} {name}: {res['rps']:.0f} ops/s p99 {res['p99_ms']} ms")
    return results


def report(a, title, script, setup, results, names):
    """The machine table, the setup text and the ratio table, to a.out (+ .json)."""
    m = h.machine()
    lines = [f"# {title}", "", f"Produced by `benchmarks/{script}{' --quick' if a.quick else ''}` in one run.", "",
             "| machine | |", "|---|---|"] + [f"| {k} | {v} |" for k, v in m.items()]
    lines += [""] + setup + [""]
    tp.ratio_table(lines, results, names, a.conns)
    open(a.out, "w").write("\n".join(lines) + "\n")
    h.dump_json(a.out.replace(".md", ".json"), {"machine": m, "results": {f"{k[0]}:{k[1]}:{k[2]}": v
                                                                           for k, v in results.items()}})
    h.log(f"wrote {a.out}")


def main():
    a = parse_args(__doc__, "set:1,get:1,get:16", "TLS.md")
    for b, p in (("redis-benchmark", "redis-tools"), ("haproxy", "haproxy"), ("openssl", "openssl")):
        h.need(b, p)
    h.build()
    topo = h.Topology()
    certs = pki(topo.dir)
    master, replica = topo.master_port(), topo.replica_ports()[0]
    hap = start_haproxy_tls(topo, certs)
    tls_write, tls_read = h.free_ports(2)
    h.start_proxy(topo, "multiplex", extra=["--tls-cert-file", certs["cert"], "--tls-key-file", certs["key"],
                                            "--tls-auth-clients", "no", "--tls-port", str(tls_write),
                                            "--tls-read-port", str(tls_read)])
    paths = {
        "direct": ((redis_tls_port(master, certs), redis_tls_port(replica, certs)), certs, None),
        "direct, plain TCP": ((master, replica), None, None),
        "haproxy (TLS)": ((hap["write"], hap["read"]), certs, None),
        "redis-ha (TLS, multiplex)": ((tls_write, tls_read), certs, None),
    }
    results = measure(a, paths)
    setup = ["direct = redis-benchmark --tls to Redis's own TLS port (master for SET, a replica for GET).",
             "haproxy (TLS) = the original's HAProxy config with `ssl crt` on its two binds (OpenSSL), plain to",
             "Redis. redis-ha (TLS) = `redis-ha proxy --tls-port/--tls-read-port` (rustls), plain to Redis.",
             "TLS 1.3 (both proxies' default), RSA 2048 certificate, no client certificates. 256-byte values,",
             f"{a.conns} connections; ratio = ops/s ÷ direct TLS in the same round ({a.rounds} rounds; median",
             "in bold, range)."]
    report(a, "TLS toward clients", "tls.py", setup, results, list(paths))


if __name__ == "__main__":
    main()
