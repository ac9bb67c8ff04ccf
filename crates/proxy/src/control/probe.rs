//! Looking at the nodes and sentinels: ROLE checks, sentinel views, the
//! master choice, replica health.

use super::events::Event;
use super::state::{ReplicaView, SentinelView};
use crate::config::ProxyConfig;
use redis_ha_resp::conn::query_auth;
use redis_ha_resp::{ConnError, Connection};
use redis_ha_topology::info::{parse_info, Role};
use redis_ha_topology::{addr, sentinel, Addr};
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
            Err(ConnError::Connect { source, .. })
                if source.kind() == std::io::ErrorKind::ConnectionRefused =>
            {
                RoleProbe::Refused
            }
            Err(e) => RoleProbe::Failed(e.to_string()),
        }
    }
}

pub async fn probe_role(a: &str, password: Option<&str>, timeout: Duration) -> RoleProbe {
    RoleProbe::from_result(query_auth(a, password, &["ROLE"], timeout).await)
}

/// Polls the chosen replica's ROLE every few ms until it says master.
pub async fn watch_promotion(replica: Addr, password: Option<String>, tx: UnboundedSender<Event>) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut conn: Option<Connection> = None;
    while Instant::now() < deadline && !tx.is_closed() {
        if conn.is_none() {
            let t = Duration::from_millis(300);
            conn = Connection::connect_auth(&replica, password.as_deref(), t)
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
    pw: Option<&str>,
    name: &str,
    t: Duration,
) -> Vec<SentinelView> {
    let futs = sentinels.iter().map(|s| async move {
        let mut v = SentinelView {
            addr: s.clone(),
            ..SentinelView::default()
        };
        let r: anyhow::Result<()> = async {
            let mut c = Connection::connect_auth(s, pw, t).await?;
            c.timeout = t;
            let m: HashMap<String, String> = c
                .request_ok(&["SENTINEL", "MASTER", name])
                .await?
                .into_pairs()
                .into_iter()
                .collect();
            v.master = Some(addr(
                m.get("ip").map(String::as_str).unwrap_or(""),
                m.get("port").and_then(|p| p.parse().ok()).unwrap_or(0),
            ));
            v.flags = m.get("flags").cloned().unwrap_or_default();
            v.config_epoch = m
                .get("config-epoch")
                .and_then(|e| e.parse().ok())
                .unwrap_or(0);
            let reps = c.request_ok(&["SENTINEL", "REPLICAS", name]).await?;
            v.replicas = reps
                .into_array()
                .unwrap_or_default()
                .into_iter()
                .map(|e| e.into_pairs().into_iter().collect())
                .collect();
            let peers = c.request_ok(&["SENTINEL", "SENTINELS", name]).await?;
            v.peers = peers
                .into_array()
                .unwrap_or_default()
                .into_iter()
                .filter_map(|e| sentinel::entry_addr(&e.into_pairs().into_iter().collect()))
                .collect();
            Ok(())
        }
        .await;
        if let Err(e) = r {
            v.error = Some(e.to_string());
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

/// Health of every replica the sentinels know: reachable, linked to the
/// current master, not flagged, acking within `max_replica_lag` (judged from
/// the master's INFO only when `master_answers`: a busy master is not asked).
pub async fn replica_health(
    views: &[SentinelView],
    master: Option<&str>,
    master_answers: bool,
    cfg: &ProxyConfig,
) -> Vec<ReplicaView> {
    let t = cfg.connect_timeout;
    let pw = cfg.password.as_deref();
    let Some(view) = views
        .iter()
        .find(|v| v.error.is_none() && v.master.as_deref() == master)
        .or_else(|| views.iter().find(|v| v.error.is_none()))
    else {
        return Vec::new();
    };
    // The master's own view: per replica `state`, `offset`, `lag` (seconds
    // since its last REPLCONF ACK, sent every second).
    let mut acks: HashMap<Addr, (String, i64, i64)> = HashMap::new();
    let mut master_offset = None;
    if let Some(m) = master.filter(|_| master_answers) {
        if let Ok(f) = query_auth(m, pw, &["INFO", "replication"], t).await {
            let info = parse_info(&f.as_text().unwrap_or_default());
            master_offset = info
                .get("master_repl_offset")
                .and_then(|o| o.parse::<i64>().ok());
            for (k, v) in &info {
                if !k.starts_with("slave") || !v.contains("ip=") {
                    continue;
                }
                let kv: HashMap<&str, &str> =
                    v.split(',').filter_map(|p| p.split_once('=')).collect();
                if let (Some(ip), Some(port)) =
                    (kv.get("ip"), kv.get("port").and_then(|p| p.parse().ok()))
                {
                    acks.insert(
                        addr(ip, port),
                        (
                            kv.get("state").unwrap_or(&"").to_string(),
                            kv.get("offset").and_then(|o| o.parse().ok()).unwrap_or(0),
                            kv.get("lag")
                                .and_then(|o| o.parse().ok())
                                .unwrap_or(i64::MAX),
                        ),
                    );
                }
            }
        }
    }
    let futs = view
        .replicas
        .iter()
        .filter_map(sentinel::entry_addr)
        .filter(|a| Some(a.as_str()) != master)
        .map(|a| {
            let flags = view
                .replicas
                .iter()
                .find(|e| sentinel::entry_addr(e).as_ref() == Some(&a))
                .and_then(|e| e.get("flags").cloned())
                .unwrap_or_default();
            let ack = acks.get(&a).cloned();
            async move {
                let mut r = ReplicaView {
                    addr: a.clone(),
                    healthy: false,
                    lag_seconds: ack.as_ref().map(|x| x.2).filter(|l| *l != i64::MAX),
                    lag_bytes: match (master_offset, ack.as_ref()) {
                        (Some(m), Some(x)) => Some((m - x.1).max(0)),
                        _ => None,
                    },
                    reason: None,
                };
                let bad_flag = flags
                    .split(',')
                    .find(|f| ["s_down", "o_down", "disconnected"].contains(f));
                r.reason = if let Some(f) = bad_flag {
                    Some(format!("sentinel flags it {f}"))
                } else {
                    match query_auth(&a, pw, &["INFO", "replication"], t).await {
                        Err(e) => Some(format!("unreachable: {e}")),
                        Ok(f) => {
                            let info = parse_info(&f.as_text().unwrap_or_default());
                            let link = info
                                .get("master_link_status")
                                .map(String::as_str)
                                .unwrap_or("none");
                            let follows = match (
                                info.get("master_host"),
                                info.get("master_port").and_then(|p| p.parse().ok()),
                            ) {
                                (Some(h), Some(p)) => Some(addr(h, p)),
                                _ => None,
                            };
                            if info.get("role").map(String::as_str) != Some("slave") {
                                Some("not a replica".into())
                            } else if link != "up" {
                                Some(format!("master link {link}"))
                            } else if master.is_some() && follows.as_deref() != master {
                                Some(format!("follows {}", follows.unwrap_or_default()))
                            } else if let Some(lag) = r
                                .lag_seconds
                                .filter(|l| *l as u64 > cfg.max_replica_lag.as_secs())
                            {
                                Some(format!("lag {lag} s > {:?}", cfg.max_replica_lag))
                            } else if master.is_some()
                                && ack.as_ref().is_some_and(|x| x.0 != "online")
                            {
                                Some(format!("state {}", ack.map(|x| x.0).unwrap_or_default()))
                            } else {
                                None
                            }
                        }
                    }
                };
                r.healthy = r.reason.is_none();
                r
            }
        });
    let mut out = futures::future::join_all(futs).await;
    out.sort_by(|a, b| a.addr.cmp(&b.addr));
    out
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
        assert!(matches!(
            RoleProbe::from_result(Err(ConnError::Closed)),
            RoleProbe::Failed(_)
        ));
    }
}
