"""Shared plumbing for the benchmark scripts: build redis-ha, bring up a local
topology on free ports, start HAProxy (configured like the original) and the
redis-ha proxy beside it, and tear everything down at exit."""

import atexit
import csv
import io
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Where cargo puts the release build: CARGO_TARGET_DIR when set (relative
# to the workspace root, as cargo reads it), else target/.
TARGET = os.path.join(ROOT, os.environ.get("CARGO_TARGET_DIR", "target"))
BIN = os.path.join(TARGET, "release", "redis-ha")
HOST = "127.0.0.1"
_children = []
_cleanups = []


def log(msg):
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def need(binary, package):
    if shutil.which(binary) is None:
        sys.exit(f"{binary} not found: install it (apt-get install -y {package}) or run scripts/install-deps.sh --bench")


def build():
    log("building redis-ha (release)")
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "redis-ha"], cwd=ROOT, check=True)


def free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind((HOST, 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def wait_until(what, fn, timeout=60.0):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        try:
            if fn():
                return
        except Exception as e:  # noqa: BLE001 - keep polling until the deadline
            last = e
        time.sleep(0.1)
    sys.exit(f"timed out waiting for {what} ({last})")


def redis_cli(port, *args, timeout=5, tls=()):
    out = subprocess.run(["redis-cli", "-h", HOST, "-p", str(port), *tls, *args],
                         capture_output=True, text=True, timeout=timeout)
    return out.stdout.strip()


def _cleanup():
    for fn in reversed(_cleanups):
        try:
            fn()
        except Exception:  # noqa: BLE001
            pass
    for p in _children:
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()


def stop_child(path):
    """Stops a process started by start_haproxy / start_proxy."""
    for p in _children:
        if p.pid == path["pid"] and p.poll() is None:
            p.terminate()
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()


atexit.register(_cleanup)
signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))


class Topology:
    """`redis-ha up --detach --no-proxy` in a temp state dir, on free ports
    (`tls`: `up --tls`, every node and sentinel on TLS only)."""

    def __init__(self, down_after_ms=5000, engine="redis", tls=False):
        self.engine = engine
        self.dir = tempfile.mkdtemp(prefix=f"redis-ha-bench-{engine}-")
        ports = free_ports(6)
        self.redis_ports, self.sentinel_ports = ports[:3], ports[3:]
        cmd = [BIN, "up", "--detach", "--no-proxy", "--state-dir", self.dir,
               "--redis-ports", ",".join(map(str, self.redis_ports)),
               "--sentinel-ports", ",".join(map(str, self.sentinel_ports)),
               "--down-after-ms", str(down_after_ms), "--engine", engine] + (["--tls"] if tls else [])
        log("starting topology: " + " ".join(cmd[1:]))
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        _cleanups.append(self.down)
        self.sentinels = [f"{HOST}:{p}" for p in self.sentinel_ports]
        tls_dir = os.path.join(self.dir, "tls")
        # What redis-cli and redis-benchmark need to reach a node of a TLS topology.
        self.tls_files = {"ca": f"{tls_dir}/ca.crt", "cert": f"{tls_dir}/client.crt",
                          "key": f"{tls_dir}/client.key", "node_cert": f"{tls_dir}/node.crt",
                          "node_key": f"{tls_dir}/node.key"} if tls else None
        self.cli_tls = (["--tls", "--cacert", self.tls_files["ca"], "--cert", self.tls_files["cert"],
                         "--key", self.tls_files["key"]] if tls else [])

    def down(self):
        subprocess.run([BIN, "down", "--state-dir", self.dir], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        shutil.rmtree(self.dir, ignore_errors=True)

    def master_port(self):
        out = redis_cli(self.sentinel_ports[0], "SENTINEL", "GET-MASTER-ADDR-BY-NAME", "mymaster",
                        tls=self.cli_tls).split()
        return int(out[1])

    def replica_ports(self):
        m = self.master_port()
        return [p for p in self.redis_ports if p != m]

    def replicas_caught_up(self):
        """Every replica has applied the master's whole replication stream: a
        run of writes leaves the replicas busy for a moment, and the next
        path measured would share the cores with that catch-up."""
        info = redis_cli(self.master_port(), "INFO", "replication", tls=self.cli_tls)
        offset = int(info.split("master_repl_offset:")[1].split()[0])
        acked = [int(ln.split("offset=")[1].split(",")[0]) for ln in info.splitlines() if ln.startswith("slave")]
        return bool(acked) and all(o >= offset for o in acked)


def haproxy_up(stats_port):
    """Servers UP per backend, from HAProxy's stats CSV."""
    try:
        body = urllib.request.urlopen(f"http://{HOST}:{stats_port}/;csv", timeout=2).read().decode()
    except OSError:
        return {}
    up = {}
    for row in csv.reader(io.StringIO(body.lstrip("# "))):
        if len(row) > 17 and row[1] not in ("FRONTEND", "BACKEND", "svname"):
            up[row[0]] = up.get(row[0], 0) + (row[17] == "UP")
    return {k: v for k, v in up.items() if k != "stats"}


def start_haproxy(topo, template=None, server_opts=""):
    """HAProxy from benchmarks/haproxy.cfg.in (or `template`, a variant of it);
    `server_opts` is added to every server line (e.g. `ssl ...`)."""
    need("haproxy", "haproxy")
    write, read, stats = free_ports(3)
    servers = lambda: "\n".join(  # noqa: E731
        f"    server redis-{i} {HOST}:{p} check inter 1s {server_opts}".rstrip() for i, p in enumerate(topo.redis_ports))
    text = open(template or os.path.join(ROOT, "benchmarks", "haproxy.cfg.in")).read()
    text = (text.replace("@HOST@", HOST).replace("@WRITE_PORT@", str(write))
            .replace("@READ_PORT@", str(read)).replace("@STATS_PORT@", str(stats))
            .replace("@MASTER_SERVERS@", servers()).replace("@REPLICA_SERVERS@", servers()))
    cfg = os.path.join(topo.dir, "haproxy.cfg")
    open(cfg, "w").write(text)
    p = subprocess.Popen(["haproxy", "-db", "-f", cfg], stdout=subprocess.DEVNULL,
                         stderr=open(os.path.join(topo.dir, "haproxy.log"), "w"))
    _children.append(p)
    # Ready when HAProxy's own health checks agree: servers start UP before
    # their first check, so one lucky connection proves nothing.
    time.sleep(0.5)
    if p.poll() is not None:
        sys.exit("haproxy exited: " + open(os.path.join(topo.dir, "haproxy.log")).read()[-500:])
    wait_until("haproxy health checks (1 master, 2 replicas UP)",
               lambda: haproxy_up(stats) == {"master_backend": 1, "replica_backend": 2})
    return {"write": write, "read": read, "stats": stats, "pid": p.pid}


def start_twemproxy(topo):
    """twemproxy (Debian's nutcracker), the multiplexing proxy people use in
    front of Redis: one pool to the current master (writes), one to a
    replica (reads). It knows no Sentinel: on a failover it keeps sending to
    the old master, so it only stands in the throughput comparison."""
    need("nutcracker", "nutcracker")
    write, read, stats = free_ports(3)
    master, replica = topo.master_port(), topo.replica_ports()[0]
    pool = lambda name, port, server: (  # noqa: E731
        f"{name}:\n  listen: {HOST}:{port}\n  redis: true\n  hash: fnv1a_64\n  distribution: ketama\n"
        f"  preconnect: true\n  auto_eject_hosts: false\n  servers:\n   - {HOST}:{server}:1\n")
    cfg = os.path.join(topo.dir, "nutcracker.yml")
    open(cfg, "w").write(pool("write", write, master) + pool("read", read, replica))
    p = subprocess.Popen(["nutcracker", "-c", cfg, "-s", str(stats), "-a", HOST], stdout=subprocess.DEVNULL,
                         stderr=open(os.path.join(topo.dir, "nutcracker.log"), "w"))
    _children.append(p)
    wait_until("twemproxy write pool", lambda: redis_cli(write, "SET", "twemproxy:probe", "1").strip() == "OK")
    wait_until("twemproxy read pool", lambda: redis_cli(read, "GET", "twemproxy:probe").strip() in ("1", ""))
    return {"write": write, "read": read, "stats": stats, "pid": p.pid}


def start_proxy(topo, mode="dedicated", extra=(), binary=None):
    write, read, admin = free_ports(3)
    cmd = [binary or BIN, "proxy", "--bind", HOST, "--port", str(write), "--read-port", str(read),
           "--admin-port", str(admin), "--mode", mode, *extra]
    for s in topo.sentinels:
        cmd += ["--sentinel", s]
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL,
                         stderr=open(os.path.join(topo.dir, f"proxy-{mode}.log"), "w"))
    _children.append(p)
    wait_until("redis-ha proxy write endpoint", lambda: "role:master" in redis_cli(write, "INFO", "replication"))
    wait_until("redis-ha proxy read endpoint", lambda: "role:slave" in redis_cli(read, "INFO", "replication"))
    return {"write": write, "read": read, "admin": admin, "pid": p.pid, "proc": p}


def machine():
    cpu = "unknown"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ver = lambda cmd: (lambda o: (o.stdout + o.stderr).strip().splitlines()[0])(subprocess.run(cmd, capture_output=True, text=True))  # noqa: E731
    rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    return {
        "cores": os.cpu_count(),
        "cpu": cpu,
        "kernel": platform.release(),
        "redis": ver(["redis-server", "--version"]),
        "valkey": ver(["valkey-server", "--version"]) if shutil.which("valkey-server") else "absent",
        "haproxy": ver(["haproxy", "-v"]) if shutil.which("haproxy") else "absent",
        "twemproxy": ver(["nutcracker", "--version"]) if shutil.which("nutcracker") else "absent",
        "redis-ha": f"git {rev}",
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


def rss_kib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def cpu_seconds(pid):
    """user+sys CPU seconds of a running process."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def dump_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=2)
