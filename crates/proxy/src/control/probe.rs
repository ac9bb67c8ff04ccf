//! Looking at the nodes and sentinels: ROLE checks, sentinel views, the
//! master choice, replica health.

use super::events::Event;
use super::state::SentinelView;
use redis_ha_resp::conn::query_auth;
use redis_ha_resp::tls::HandshakeError;
use redis_ha_resp::Access;
use redis_ha_resp::{ConnError, Connection};
use redis_ha_topology::info::Role;
use redis_ha_topology::{sentinel, Addr};
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tokio::sync::mpsc::UnboundedSender;

/// What a node's `ROLE` check found. A busy or slow node is not a down one:
/// whether a master is gone is Sentinel's call (or a refused connection).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RoleProbe {
    Master,
    NotMaster,
    /// `-BUSY`: a script or function is running.
    Busy,
    /// No reply in time (a slow command such as `DEBUG SLEEP` or `KEYS`).
    NoReply,
    /// Nothing listens there.
    Refused,
    /// Any other failure (reset, protocol error, refused login).
    Failed(String),
}

impl RoleProbe {
    pub fn from_result(r: Result<redis_ha_resp::Frame, ConnError>) -> RoleProbe {
        match r {
            Ok(f) if matches!(Role::from_frame(&f), Some(Role::Master { .. })) => RoleProbe::Master,
            Ok(_) => RoleProbe::NotMaster,
            Err(ConnError::Server(m)) if m.starts_with("BUSY") => RoleProbe::Busy,
            Err(ConnError::Timeout(_)) => RoleProbe::NoReply,
            // A busy Redis accepts (the kernel does) but cannot run the
            // handshake until its command ends: slow, as a late ROLE reply.
            Err(ConnError::Tls(HandshakeError::Timeout(_))) => RoleProbe::NoReply,
            Err(ConnError::Connect { source, .. })
                if source.kind() == std::io::ErrorKind::ConnectionRefused =>
            {
                RoleProbe::Refused
            }
            Err(e) => RoleProbe::Failed(e.to_string()),
        }
    }
}

pub async fn probe_role(a: &str, access: &Access, timeout: Duration) -> RoleProbe {
    RoleProbe::from_result(query_auth(a, Some(access), &["ROLE"], timeout).await)
}

/// Polls the chosen replica's ROLE every few ms until it says master.
pub async fn watch_promotion(replica: Addr, access: Access, tx: UnboundedSender<Event>) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut conn: Option<Connection> = None;
    while Instant::now() < deadline && !tx.is_closed() {
        if conn.is_none() {
            let t = Duration::from_millis(300);
            conn = Connection::connect_auth(&replica, Some(&access), t)
                .await
                .ok();
        }
        if let Some(c) = conn.as_mut() {
            c.timeout = Duration::from_millis(300);
            match c.request(&["ROLE"]).await {
                Ok(f) if matches!(Role::from_frame(&f), Some(Role::Master { .. })) => {
                    let _ = tx.send(Event::Promoted(replica));
                    return;
                }
                Ok(_) => {}
                Err(_) => conn = None,
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let _ = tx.send(Event::PromotionGaveUp(replica));
}

/// Every sentinel's view of the master, asked concurrently.
pub async fn sentinel_views(
    sentinels: &[Addr],
    pw: &Access,
    name: &str,
    t: Duration,
) -> Vec<SentinelView> {
    let futs = sentinels.iter().map(|s| async move {
        let mut v = SentinelView {
            addr: s.clone(),
            ..SentinelView::default()
        };
        match sentinel::view(s, Some(pw), name, t).await {
            Ok(view) => {
                v.master = view.master_addr();
                v.flags = view.master.get("flags").cloned().unwrap_or_default();
                v.config_epoch = view.config_epoch();
                v.peers = view.peers.iter().filter_map(sentinel::entry_addr).collect();
                v.replicas = view.replicas;
            }
            Err(e) => v.error = Some(e.to_string()),
        }
        v
    });
    futures::future::join_all(futs).await
}

/// The master the sentinels back: a strict majority of the answering
/// sentinels, or a view whose config-epoch is higher than every other view's
/// (won by a majority vote; see the module comment).
pub fn choose_master(views: &[SentinelView]) -> Option<Addr> {
    let ok: Vec<&SentinelView> = views
        .iter()
        .filter(|v| v.error.is_none() && v.master.is_some())
        .collect();
    if ok.is_empty() {
        return None;
    }
    let mut by_addr: HashMap<&Addr, (usize, u64)> = HashMap::new();
    for v in &ok {
        let e = by_addr
            .entry(v.master.as_ref().expect("filtered"))
            .or_default();
        e.0 += 1;
        e.1 = e.1.max(v.config_epoch);
    }
    if let Some((a, _)) = by_addr.iter().find(|(_, (n, _))| *n * 2 > ok.len()) {
        let best_epoch = by_addr.values().map(|(_, e)| *e).max().unwrap_or(0);
        let (_, epoch) = by_addr[*a];
        if epoch >= best_epoch {
            return Some((*a).clone());
        }
    }
    let best = by_addr.values().map(|(_, e)| *e).max()?;
    let top: Vec<&&Addr> = by_addr
        .iter()
        .filter(|(_, (_, e))| *e == best)
        .map(|(a, _)| a)
        .collect();
    match top.as_slice() {
        [only] => Some((**only).clone()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use redis_ha_resp::Frame;

    #[test]
    fn role_replies_and_failures() {
        let master = Frame::Array(vec![
            Frame::bulk("master"),
            Frame::Integer(0),
            Frame::Array(vec![]),
        ]);
        assert_eq!(RoleProbe::from_result(Ok(master)), RoleProbe::Master);
        let busy = ConnError::Server("BUSY Redis is busy running a script.".into());
        assert_eq!(RoleProbe::from_result(Err(busy)), RoleProbe::Busy);
        let slow = ConnError::Timeout(Duration::from_secs(1));
        assert_eq!(RoleProbe::from_result(Err(slow)), RoleProbe::NoReply);
        let refused = ConnError::Connect {
            addr: "127.0.0.1:1".into(),
            source: std::io::ErrorKind::ConnectionRefused.into(),
        };
        assert_eq!(RoleProbe::from_result(Err(refused)), RoleProbe::Refused);
        let handshake = ConnError::Tls(HandshakeError::Timeout("no handshake in 1s".into()));
        assert_eq!(RoleProbe::from_result(Err(handshake)), RoleProbe::NoReply);
        let bad_ca = ConnError::Tls(HandshakeError::Refused("unknown CA".into()));
        assert!(matches!(
            RoleProbe::from_result(Err(bad_ca)),
            RoleProbe::Failed(_)
        ));
        assert!(matches!(
            RoleProbe::from_result(Err(ConnError::Closed)),
            RoleProbe::Failed(_)
        ));
    }
}
