#!/usr/bin/env bash
# The main job, end to end on this machine: install what is missing, build,
# bring up the topology (3 redis-server, 3 redis-sentinel, proxy), show its
# status, write through :6379 and read through :6380, run the original's
# benchmark (write phase, then read phase), drill a kill -9 failover under load,
# and print the reports. Everything is stopped at the end unless KEEP=1.
#   scripts/demo.sh                 # ~1 minute
#   TEST_TIME=120 scripts/demo.sh   # the original's 2-minute phases
#   KEEP=1 scripts/demo.sh          # leave the topology running afterwards
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
echo "== building redis-ha (release)"
cargo build --release -q -p redis-ha
B="$PWD/target/release/redis-ha"
OUT="${OUT:-$PWD/out}"
mkdir -p "$OUT"
if [ -f .redis-ha/topology.json ]; then "$B" down >/dev/null 2>&1 || true; fi

echo "== redis-ha up --detach"
"$B" up --detach
[ "${KEEP:-0}" = 1 ] || trap '"$B" down' EXIT

echo "== redis-ha status"
"$B" status

echo "== a write through the write endpoint (:6379), a read through the read endpoint (:6380)"
redis-cli -p 6379 SET demo:hello "Hello Sentinel"
redis-cli -p 6379 WAIT 2 2000 >/dev/null   # let both replicas have it before reading
redis-cli -p 6380 GET demo:hello
echo "dashboard: http://127.0.0.1:8404/   metrics: http://127.0.0.1:8404/metrics"

echo "== redis-ha bench --scenario seed (the original's write phase, then read phase)"
"$B" bench --scenario seed --test-time "${TEST_TIME:-10}" \
  --json-out-file "$OUT/seed.json" --chart "$OUT/seed.svg"

echo "== redis-ha drill: kill -9 the master under load, through the proxy"
rc=0
"$B" drill --fault kill --chart "$OUT/drill-kill.svg" || rc=$?
echo "== redis-ha drill: planned switchover (writes paused, replica caught up, SENTINEL FAILOVER) under load"
"$B" drill --fault switchover --chart "$OUT/drill-switchover.svg" || rc=$?

echo "== redis-ha status after the drills (once Sentinel has demoted the old master; up to 60 s)"
for _ in $(seq 60); do "$B" status >/dev/null 2>&1 && break; sleep 1; done
"$B" status || true
echo "reports: $OUT/seed.json $OUT/seed.svg $OUT/drill-kill.svg $OUT/drill-switchover.svg"
exit $rc
