#!/usr/bin/env bash
# Builds, once per machine, the local base images the pod tests run on (no image can be
# pulled here): Debian bookworm made with debootstrap and imported into podman.
#   docker.io/library/debian:bookworm-slim  minbase bookworm: what the Dockerfile's runtime stage starts FROM
#   localhost/redis-ha-pods/redis:7.2       + Debian's redis-server, redis-sentinel, redis-tools (7.0):
#                                           the stand-in for the official redis:7.2 image
#   localhost/redis-ha-pods/valkey:8        + valkey-server, valkey-sentinel, valkey-tools (8.x) from
#                                           bookworm-backports: the stand-in for valkey/valkey:8.0
# An image already there is kept (remove it with `podman rmi` to rebuild). Runs as root;
# concurrent calls wait for each other (flock). Prints nothing but what it builds.
#   scripts/pod-images.sh            # all three
#   scripts/pod-images.sh --check    # exit 1 (listing what is missing) instead of building
set -euo pipefail
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
path_env='ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
check=0
for a in "$@"; do
  case "$a" in
    --check) check=1 ;;
    *) echo "unknown option $a (use --check)" >&2; exit 2 ;;
  esac
done
command -v podman >/dev/null || { echo "podman is not installed: run scripts/install-deps.sh --pods" >&2; exit 1; }

missing() { ! podman image exists "$1"; }

# make NAME [PACKAGES...]: debootstrap a minbase bookworm (plus packages) and import it as NAME.
make() {
  local name=$1; shift
  local dir; dir=$(mktemp -d /var/tmp/pod-image.XXXXXX)
  # shellcheck disable=SC2064
  trap "rm -rf '$dir'" RETURN
  echo "pod-images: building $name (debootstrap, about a minute)" >&2
  local include=()
  [ $# -gt 0 ] && include=("--include=$(IFS=,; echo "$*")")
  debootstrap --variant=minbase "${include[@]}" bookworm "$dir" "$mirror" >/dev/null
  finish "$dir"
  tar -C "$dir" -c . | podman import --change "$path_env" - "$name" >/dev/null
}

# Slims a root like the -slim images: no apt lists, caches, docs or man pages.
finish() {
  local dir=$1
  rm -rf "$dir"/var/lib/apt/lists/* "$dir"/var/cache/apt/*.bin "$dir"/var/cache/apt/archives/*.deb \
    "$dir"/usr/share/doc/* "$dir"/usr/share/man/* "$dir"/usr/share/info/*
  # Debian's packages start their services on install in a real system; not here.
  rm -f "$dir"/etc/redis/*.conf.dpkg-* 2>/dev/null || true
}

# Valkey 8 is in bookworm-backports only: bootstrap, then install from there in a chroot.
make_valkey() {
  local name=$1
  local dir; dir=$(mktemp -d /var/tmp/pod-image.XXXXXX)
  # shellcheck disable=SC2064
  trap "rm -rf '$dir'" RETURN
  echo "pod-images: building $name (debootstrap and bookworm-backports, about a minute)" >&2
  debootstrap --variant=minbase bookworm "$dir" "$mirror" >/dev/null
  echo "deb $mirror bookworm-backports main" > "$dir/etc/apt/sources.list.d/backports.list"
  # policy-rc.d: keep the packages' services from starting inside the chroot.
  printf '#!/bin/sh\nexit 101\n' > "$dir/usr/sbin/policy-rc.d"; chmod +x "$dir/usr/sbin/policy-rc.d"
  chroot "$dir" apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive chroot "$dir" apt-get install -y -qq --no-install-recommends \
    -t bookworm-backports valkey-server valkey-sentinel valkey-tools >/dev/null
  rm -f "$dir/usr/sbin/policy-rc.d" "$dir/etc/apt/sources.list.d/backports.list"
  finish "$dir"
  tar -C "$dir" -c . | podman import --change "$path_env" - "$name" >/dev/null
}

base=docker.io/library/debian:bookworm-slim
redis=localhost/redis-ha-pods/redis:7.2
valkey=localhost/redis-ha-pods/valkey:8
if [ "$check" = 1 ]; then
  gone=()
  for i in $base $redis $valkey; do missing "$i" && gone+=("$i"); done
  [ ${#gone[@]} -eq 0 ] || { echo "missing: ${gone[*]} (run scripts/pod-images.sh)" >&2; exit 1; }
  exit 0
fi
command -v debootstrap >/dev/null || { echo "debootstrap is not installed: run scripts/install-deps.sh --pods" >&2; exit 1; }
exec 9>/var/lock/redis-ha-pod-images.lock
flock 9
if missing $base; then make $base; fi
if missing $redis; then make $redis redis-server redis-sentinel redis-tools; fi
if missing $valkey; then make_valkey $valkey; fi
