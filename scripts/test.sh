#!/usr/bin/env bash
# The test command: installs what the tests need, then runs lint, the whole suite
# (on Redis), and the engine matrix (the main real-process tests on Valkey).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh --test
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
cargo test --workspace
# The engine matrix: the proxy, local-topology and drill tests once more on Valkey 8 (the
# rolling-restart drill, the longest, only on Redis: CI time).
REDIS_HA_ENGINE=valkey cargo test -p redis-ha-proxy -p redis-ha-local -p redis-ha-drill \
  --test compat --test failover --test writes --test harness --test drill -- --skip rolling_restart
