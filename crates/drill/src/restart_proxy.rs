//! The `restart-proxy` fault: `redis-ha node restart proxy` under load, as
//! an upgrade or a config change does it. The new proxy starts beside the
//! old one on the same ports, then the old one drains: no connection is
//! refused, and a writer's connection is closed only between requests, so
//! a write it got no reply for did not run (the drill's accounting of
//! unknown outcomes shows it: "applied? no"). No failover may happen.

use redis_ha_local::Topology;
use std::time::{Duration, Instant};

/// Restarts the topology's proxy; returns how long the restart took (the
/// new proxy up, the old one drained and gone).
pub async fn restart(t: &Topology) -> anyhow::Result<Duration> {
    let started = Instant::now();
    t.restart("proxy").await?;
    let took = started.elapsed();
    tracing::info!(
        ?took,
        "proxy restarted (new one first, the old one drained)"
    );
    Ok(took)
}
