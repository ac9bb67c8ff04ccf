//! What the drill asks the Redis nodes about their roles: a promotion seen
//! while it happens, a node linked again as a replica, the masters left at
//! the end, and `min-replicas-to-write`.

use redis_ha_resp::conn::query_auth;
use redis_ha_resp::{Access, Connection};
use redis_ha_topology::info::Role;
use redis_ha_topology::Addr;
use std::time::{Duration, Instant};

/// Polls ROLE on `nodes` every few ms; returns the first that is master.
pub(crate) async fn watch_promotion(
    nodes: Vec<Addr>,
    access: Access,
    start: Instant,
    deadline: Instant,
) -> Option<(Addr, f64)> {
    let mut conns: Vec<(Addr, Option<Connection>)> = nodes.into_iter().map(|a| (a, None)).collect();
    while Instant::now() < deadline {
        for (a, c) in conns.iter_mut() {
            if c.is_none() {
                *c = Connection::connect_auth(a, Some(&access), Duration::from_millis(200))
                    .await
                    .ok();
            }
            let Some(conn) = c.as_mut() else { continue };
            conn.timeout = Duration::from_millis(200);
            match conn.request(&["ROLE"]).await {
                Ok(f) => {
                    if let Some(Role::Master { .. }) = Role::from_frame(&f) {
                        return Some((a.clone(), start.elapsed().as_secs_f64() * 1000.0));
                    }
                }
                Err(_) => *c = None,
            }
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    None
}

/// The node's ROLE, if it answers within half a second.
async fn role(node: &str, pw: Option<&Access>) -> Option<Role> {
    let f = query_auth(node, pw, &["ROLE"], Duration::from_millis(500))
        .await
        .ok()?;
    Role::from_frame(&f)
}

/// Polls until `node` is a replica linked to its master; when it was.
pub(crate) async fn wait_replica(
    node: &str,
    pw: Option<&Access>,
    deadline: Instant,
) -> Option<Instant> {
    loop {
        if let Some(Role::Replica { state, .. }) = role(node, pw).await {
            if state == "connected" {
                return Some(Instant::now());
            }
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// How long a restarted old master may still say master: until Sentinel's
/// REPLICAOF reaches it (about a second; seen past the restore on Valkey 8).
const SETTLE: Duration = Duration::from_secs(10);

/// The masters once the topology settled: polled until at most one is left
/// or [`SETTLE`] passed, so a split brain is one that lasts.
pub(crate) async fn settled_masters(nodes: &[Addr], pw: Option<&Access>) -> Vec<Addr> {
    let deadline = Instant::now() + SETTLE;
    loop {
        let m = masters(nodes, pw).await;
        if m.len() <= 1 || Instant::now() >= deadline {
            return m;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The nodes that answer ROLE as master.
async fn masters(nodes: &[Addr], pw: Option<&Access>) -> Vec<Addr> {
    let roles = futures::future::join_all(nodes.iter().map(|n| role(n, pw))).await;
    nodes
        .iter()
        .zip(roles)
        .filter(|(_, r)| matches!(r, Some(Role::Master { .. })))
        .map(|(n, _)| n.clone())
        .collect()
}

/// `min-replicas-to-write` on `node` (`None`: it did not say).
pub(crate) async fn min_replicas_to_write(node: &str, pw: Option<&Access>) -> Option<u32> {
    let f = query_auth(
        node,
        pw,
        &["CONFIG", "GET", "min-replicas-to-write"],
        Duration::from_secs(1),
    )
    .await
    .ok()?;
    f.as_array()?.get(1)?.as_text()?.parse().ok()
}
