#!/usr/bin/env python3
"""Regenerates crates/proxy/src/data/table.rs from real servers' COMMAND INFO.

Usage: scripts/gen-commands.py [--server PATH ...] [--out FILE]
       scripts/gen-commands.py --server redis-server --server valkey-server

Starts each server (Redis or Valkey) throw-away on a free loopback port, asks
it for every command (and subcommand) with its arity, flags, key positions and
ACL categories, and writes one sorted Rust table the proxy looks commands up
in: the union over the servers. A command both know gets both servers' flags
and categories (a `write` anywhere is a write: never `readonly`), so no engine's
command is treated as safer than it is. Re-run it after moving to newer
servers and commit the result.
"""
import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time

FLAGS = [
    "write", "readonly", "denyoom", "admin", "pubsub", "noscript", "blocking",
    "loading", "stale", "fast", "no_auth", "may_replicate", "movablekeys",
    "no_multi", "allow_busy",
]
ACL = [
    "keyspace", "read", "write", "set", "sortedset", "list", "hash", "string",
    "bitmap", "hyperloglog", "geo", "stream", "pubsub", "admin", "fast", "slow",
    "blocking", "dangerous", "connection", "transaction", "scripting",
]


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Resp:
    def __init__(self, sock):
        self.f = sock.makefile("rb")
        self.sock = sock

    def send(self, *args):
        out = b"*%d\r\n" % len(args)
        for a in args:
            a = a.encode() if isinstance(a, str) else a
            out += b"$%d\r\n%s\r\n" % (len(a), a)
        self.sock.sendall(out)

    def read(self):
        line = self.f.readline()
        t, rest = line[:1], line[1:-2]
        if t in (b"+", b"-"):
            if t == b"-":
                raise RuntimeError(rest.decode())
            return rest.decode()
        if t == b":":
            return int(rest)
        if t == b"$":
            n = int(rest)
            if n < 0:
                return None
            data = self.f.read(n + 2)[:-2]
            return data.decode()
        if t in (b"*", b"~", b">"):
            n = int(rest)
            return None if n < 0 else [self.read() for _ in range(n)]
        if t == b"%":
            n = int(rest)
            return {self.read(): self.read() for _ in range(n)}
        raise RuntimeError("unexpected reply %r" % line)


def entries(info):
    for c in info:
        name, arity, flags, first, last, step, acl = c[:7]
        yield name.upper(), arity, flags, first, last, step, acl
        subs = c[9] if len(c) > 9 else []
        for s in subs or []:
            yield from entries([s])


def bits(names, table, what):
    b = 0
    for n in names:
        n = n.lstrip("@")
        if n in table:
            b |= 1 << table.index(n)
    return b


def ask(server):
    """(engine, version, COMMAND INFO) of one throw-away server."""
    port = free_port()
    with tempfile.TemporaryDirectory() as d:
        p = subprocess.Popen(
            [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", d],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.time() + 10
            while True:
                try:
                    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
                    break
                except OSError:
                    if time.time() > deadline or p.poll() is not None:
                        sys.exit("%s did not start" % server)
                    time.sleep(0.05)
            r = Resp(sock)
            r.send("INFO", "server")
            fields = dict(l.split(":", 1) for l in r.read().splitlines() if ":" in l)
            engine = fields.get("server_name", "redis").strip()
            version = fields.get("%s_version" % engine, fields.get("redis_version", "?")).strip()
            r.send("COMMAND", "INFO")
            info = [c for c in r.read() if c]
        finally:
            p.kill()
            p.wait()
    return engine.capitalize(), version, info


def merge(tables):
    """Union of the servers' rows by name; flags and categories combined."""
    rows = {}
    for info in tables:
        for n, ar, f, fk, lk, st, ac in entries(info):
            row = [ar, bits(f, FLAGS, "flag"), fk, lk, st, bits(ac, ACL, "acl")]
            if n in rows:
                rows[n][1] |= row[1]
                rows[n][5] |= row[5]
            else:
                rows[n] = row
    write, readonly = 1 << FLAGS.index("write"), 1 << FLAGS.index("readonly")
    for r in rows.values():
        if r[1] & write:
            r[1] &= ~readonly
    return sorted((n,) + tuple(r) for n, r in rows.items())


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--server", action="append", help="redis-server or valkey-server binary (repeatable)")
    ap.add_argument("--redis-server", help=argparse.SUPPRESS)  # the old name of --server
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--out", default=os.path.join(here, "..", "crates/proxy/src/data/table.rs"))
    a = ap.parse_args()
    servers = (a.server or []) + ([a.redis_server] if a.redis_server else []) or ["redis-server"]
    asked = [ask(s) for s in servers]
    rows = merge([info for _, _, info in asked])
    sources = ", ".join("%s %s" % (e, v) for e, v, _ in asked)
    redis = [v for e, v, _ in asked if e == "Redis"]
    out = []
    out.append("// @generated by scripts/gen-commands.py from the COMMAND INFO of %s." % sources)
    out.append("// Do not edit: re-run the script against newer servers instead.")
    out.append("")
    out.append("/// The servers (engine and version) the table was generated from.")
    out.append('pub const SOURCES: &str = "%s";' % sources)
    out.append("")
    out.append("/// The Redis version among them.")
    out.append('pub const REDIS_VERSION: &str = "%s";' % (redis[0] if redis else "none"))
    out.append("")
    out.append("/// Command flags (COMMAND INFO's second field).")
    out.append("pub mod flag {")
    for i, f in enumerate(FLAGS):
        out.append("    pub const %s: u32 = 1 << %d;" % (f.upper(), i))
    out.append("}")
    out.append("")
    out.append("/// ACL categories (COMMAND INFO's seventh field).")
    out.append("pub mod acl {")
    for i, f in enumerate(ACL):
        out.append("    pub const %s: u32 = 1 << %d;" % (f.upper(), i))
    out.append("}")
    out.append("")
    out.append("/// One command or `CONTAINER|SUBCOMMAND`, as Redis describes it.")
    out.append("#[derive(Debug, Clone, Copy, PartialEq, Eq)]")
    out.append("pub struct Spec {")
    out.append("    /// Upper case; subcommands as `CLIENT|SETNAME`.")
    out.append("    pub name: &'static str,")
    out.append("    /// Redis arity: N exact, -N at least N (the name included).")
    out.append("    pub arity: i32,")
    out.append("    pub flags: u32,")
    out.append("    pub first_key: i32,")
    out.append("    pub last_key: i32,")
    out.append("    pub step: i32,")
    out.append("    pub acl: u32,")
    out.append("}")
    out.append("")
    out.append("/// Sorted by name, for binary search.")
    out.append("pub static COMMANDS: &[Spec] = &[")
    for n, ar, f, fk, lk, st, ac in rows:
        out.append('    Spec { name: "%s", arity: %d, flags: %d, first_key: %d, last_key: %d, step: %d, acl: %d },'
                   % (n, ar, f, fk, lk, st, ac))
    out.append("];")
    with open(a.out, "w") as fh:
        fh.write("\n".join(out) + "\n")
    print("wrote %d commands from %s to %s" % (len(rows), sources, os.path.normpath(a.out)))


if __name__ == "__main__":
    main()
