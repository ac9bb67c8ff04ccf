#!/usr/bin/env python3
"""TLS toward Redis, side by side in one run: a TLS-only topology (`redis-ha up
--tls`: port 0, tls-port, client certificates required) reached by
redis-benchmark --tls directly vs through HAProxy (`ssl verify required` on its
server lines, the original's config otherwise) vs `redis-ha proxy --backend-tls`
in both connection modes (multiplex: shared connections through the TLS relay;
dedicated: one TLS stream per client). Clients speak plain TCP to both proxies,
so each path pays for one TLS hop, as direct does. twemproxy has no TLS.

    benchmarks/backend_tls.py           # writes benchmarks/BACKEND-TLS.md (+ .json)
    benchmarks/backend_tls.py --quick   # smaller counts, for a smoke run

Ratios are to direct TLS in the same round (rounds interleaved)."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
import tls  # noqa: E402


def start_haproxy_backend_tls(topo):
    """The benchmark HAProxy, its servers (and health checks) over TLS with the
    topology's node certificate as its client certificate."""
    f = topo.tls_files
    pem = os.path.join(topo.dir, "haproxy-client.pem")
    with open(pem, "w") as out:
        out.write(open(f["node_cert"]).read() + open(f["node_key"]).read())
    real = os.path.join(h.ROOT, "benchmarks", "haproxy.cfg.in")
    tmpl = os.path.join(topo.dir, "haproxy-backend-tls.cfg.in")
    open(tmpl, "w").write(open(real).read().replace("tcp-check connect", "tcp-check connect default"))
    return h.start_haproxy(topo, template=tmpl, server_opts=f"ssl verify required ca-file {f['ca']} crt {pem}")


def proxy_args(topo):
    f = topo.tls_files
    return ["--backend-tls", "--backend-cacert", f["ca"], "--backend-cert", f["node_cert"],
            "--backend-key", f["node_key"]]


def main():
    a = tls.parse_args(__doc__, "set:1,get:1,set:16,get:16", "BACKEND-TLS.md")
    for b, p in (("redis-benchmark", "redis-tools"), ("haproxy", "haproxy")):
        h.need(b, p)
    h.build()
    topo = h.Topology(tls=True)
    master, replica = topo.master_port(), topo.replica_ports()[0]
    hap = start_haproxy_backend_tls(topo)
    mux = h.start_proxy(topo, "multiplex", extra=proxy_args(topo))
    ded = h.start_proxy(topo, "dedicated", extra=proxy_args(topo))
    f = topo.tls_files
    paths = {
        "direct": ((master, replica), f, (f["cert"], f["key"])),
        "haproxy (TLS to Redis)": ((hap["write"], hap["read"]), None, None),
        "redis-ha (TLS to Redis, multiplex)": ((mux["write"], mux["read"]), None, None),
        "redis-ha (TLS to Redis, dedicated)": ((ded["write"], ded["read"]), None, None),
    }
    results = tls.measure(a, paths)
    setup = ["The topology is `redis-ha up --tls`: Redis and Sentinel on tls-port only, `tls-auth-clients yes`.",
             "direct = redis-benchmark --tls with the topology's client certificate to the master (SET) or a",
             "replica (GET). haproxy = the original's HAProxy config, plain binds, `ssl verify required ca-file",
             "crt` on its server lines (OpenSSL; health checks over TLS too). redis-ha = `redis-ha proxy",
             "--backend-tls` (rustls), plain binds; multiplex reaches TLS through one relay task per shared",
             "connection, dedicated opens one TLS stream per client. TLS 1.3, the topology's ECDSA P-256",
             f"certificates. 256-byte values, {a.conns} connections; ratio = ops/s ÷ direct TLS in the same",
             f"round ({a.rounds} rounds; median in bold, range)."]
    tls.report(a, "TLS toward Redis", "backend_tls.py", setup, results, list(paths))
    return results


if __name__ == "__main__":
    main()
