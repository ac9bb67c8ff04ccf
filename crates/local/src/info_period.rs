//! Sentinel's INFO period, shortened while the topology waits on the
//! sentinels.
//!
//! Sentinel learns a master's replicas, their roles and their
//! replica-priority from INFO, which it sends each node every 10 s. A wait
//! for the sentinels to see a change (the replicas of a topology just
//! started, a restarted replica made promotable again) would take up to
//! that long: a fresh topology's sentinels usually send their first INFO
//! before the replicas have connected. `SENTINEL DEBUG info-period`
//! (Redis 7.0+, Valkey) shortens it for the wait and sets it back to
//! Sentinel's default after, so what runs afterwards is Sentinel as users
//! run it. Failure detection is untouched (it follows the PINGs).

use redis_ha_resp::conn::query_auth;
use redis_ha_resp::Access;
use redis_ha_topology::Addr;
use std::future::Future;
use std::time::Duration;

/// INFO period while waiting.
pub const FAST_MS: u64 = 1_000;
/// Sentinel's own default, restored after the wait.
pub const DEFAULT_MS: u64 = 10_000;

const IO_TIMEOUT: Duration = Duration::from_millis(1000);

/// Runs `wait` with every sentinel's INFO period at [`FAST_MS`], then sets
/// it back to [`DEFAULT_MS`]. Best effort: a sentinel that is down, too
/// old or refuses the command (an ACL) keeps its period, and the wait is
/// only slower. If `wait` is dropped unfinished the period stays short
/// until that sentinel restarts: more INFO traffic, nothing else.
pub async fn while_waiting<T>(
    sentinels: &[Addr],
    access: &Access,
    wait: impl Future<Output = T>,
) -> T {
    set(sentinels, access, FAST_MS).await;
    let out = wait.await;
    set(sentinels, access, DEFAULT_MS).await;
    out
}

/// Sets every reachable sentinel's INFO period to `ms`.
pub async fn set(sentinels: &[Addr], access: &Access, ms: u64) {
    let ms = ms.to_string();
    let args = ["SENTINEL", "DEBUG", "info-period", ms.as_str()];
    let sets = sentinels
        .iter()
        .map(|s| query_auth(s, Some(access), &args, IO_TIMEOUT));
    for (s, r) in sentinels.iter().zip(futures::future::join_all(sets).await) {
        match r {
            Ok(f) if f.is_error() => {
                tracing::debug!(sentinel = %s, reply = ?f, "info-period not set")
            }
            Err(e) => tracing::debug!(sentinel = %s, error = %e, "info-period not set"),
            Ok(_) => {}
        }
    }
}
