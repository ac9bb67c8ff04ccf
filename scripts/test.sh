#!/usr/bin/env bash
# The test command: installs what the tests need, then runs lint, the whole suite
# (on Redis), and the engine matrix (the main real-process tests on Valkey).
# Tests run under cargo-nextest (.config/nextest.toml: several at once, each in its
# own process, a hung test killed after 5 min); it is installed if missing.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh --test
if ! cargo nextest --version >/dev/null 2>&1; then
  # --debug: half the compile time of a release build (about 2 minutes less on a
  # fresh 2-core machine); nextest only orchestrates, its speed does not show.
  echo "test.sh: installing cargo-nextest (cargo install --locked --debug)"
  cargo install cargo-nextest --locked --debug
fi
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
# Network partitions and the rolling restart are the tests most sensitive to a loaded
# machine, and the hostile-client suite (thousands of connections, slowloris, garbage) is the
# one that loads it most: they run afterwards, alone, so the 1 s down-after failover tests never
# share the cores with it.
alone='test(partition) | test(rolling_restart) | binary(hostile)'
cargo nextest run --workspace -E "not ($alone) & not binary(/^pods/)"
cargo nextest run --workspace -E "$alone" --test-threads 1
# The Kubernetes half in containers (crates/cli/tests/pods.rs, pods_restart.rs): the rendered pods in podman,
# one deployment at a time: podman's one DNS server (aardvark-dns) reloads whenever a container
# joins or leaves any network, and lookups stall meanwhile (run two at a time, a failover test
# then saw both replicas miss Sentinel's pings). The Debian base images are made once per
# machine first (scripts/pod-images.sh, a few minutes the first time; the tests call it too).
scripts/pod-images.sh
cargo nextest run --workspace -E 'binary(/^pods/)' --test-threads 1
# The engine matrix: the proxy, local-topology and drill tests once more on Valkey 8 (the
# rolling-restart drill, the longest, only on Redis, and the drills `via_` another path,
# which test the drill rather than the engine: CI time).
# --workspace with package() filters, not -p: the same feature set as the main pass,
# so nothing is compiled again (about 50 s per matrix on a fresh machine).
REDIS_HA_ENGINE=valkey cargo nextest run --workspace \
  -E '(package(redis-ha-proxy) | package(redis-ha-local) | package(redis-ha-drill)) & (binary(compat) | binary(failover) | binary(writes) | binary(write_ack) | binary(harness) | binary(drill) | binary(acl) | binary(tls)) & !test(rolling_restart) & !test(partition) & !test(via_)'
# The TLS matrix: the proxy's main suites once more on a TLS-only topology (what
# `up --tls` runs: tls-port only, TLS replication, client certificates required),
# the proxy speaking TLS to every node and sentinel.
REDIS_HA_TLS=1 cargo nextest run --workspace \
  -E 'package(redis-ha-proxy) & (binary(compat) | binary(failover) | binary(mux) | binary(auth) | binary(writes) | binary(busy) | binary(guard) | binary(errors) | binary(write_ack) | binary(min_replicas) | binary(backpressure))'
