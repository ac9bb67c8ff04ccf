//! Node health, the control plane's second phase: which replicas the read
//! endpoint may use. Asks each replica (and the master, when it answers)
//! for `INFO replication`; the judgement is the pure [`judge`].

use super::state::{ReplicaView, SentinelView};
use crate::config::ProxyConfig;
use redis_ha_resp::conn::query_auth;
use redis_ha_topology::info::{ReplicaLine, Replication};
use redis_ha_topology::sentinel;
use std::time::Duration;

/// Health of every replica the sentinels know: reachable, linked to the
/// current master, not flagged, acking within `max_replica_lag` (judged from
/// the master's INFO only when `master_answers`: a busy master is not asked).
///
/// `last` is the previous round's verdicts: a replica's last known lag
/// counts toward its staleness once the master can no longer say.
pub async fn replica_health(
    views: &[SentinelView],
    master: Option<&str>,
    master_answers: bool,
    cfg: &ProxyConfig,
    last: &[ReplicaView],
) -> Vec<ReplicaView> {
    let Some(view) = views
        .iter()
        .find(|v| v.error.is_none() && v.master.as_deref() == master)
        .or_else(|| views.iter().find(|v| v.error.is_none()))
    else {
        return Vec::new();
    };
    let seen = match master.filter(|_| master_answers) {
        Some(m) => info(m, cfg).await.ok(),
        None => None,
    };
    let futs = view
        .replicas
        .iter()
        .filter_map(|e| Some((sentinel::entry_addr(e)?, e.get("flags").cloned())))
        .filter(|(a, _)| Some(a.as_str()) != master)
        .map(|(a, flags)| {
            let ack = seen.as_ref().and_then(|s| s.replica(&a)).cloned();
            let last_lag = last
                .iter()
                .find(|r| r.addr == a)
                .and_then(|r| r.lag_seconds);
            let master_offset = seen.as_ref().and_then(|s| s.master_repl_offset);
            async move {
                let own = match bad_flag(flags.as_deref().unwrap_or("")) {
                    Some(f) => Err(format!("sentinel flags it {f}")),
                    None => info(&a, cfg).await.map_err(|e| format!("unreachable: {e}")),
                };
                let lag = ack.as_ref().and_then(|x| x.lag).or(last_lag);
                let stale_seconds = own
                    .as_ref()
                    .ok()
                    .filter(|o| o.link.as_deref() != Some("up"))
                    .and_then(|o| staleness(o.link_down_since, lag));
                let reason = judge(own, ack.as_ref(), lag, master, cfg.max_replica_lag);
                ReplicaView {
                    healthy: reason.is_none(),
                    lag_seconds: lag,
                    stale_seconds,
                    lag_bytes: master_offset
                        .zip(ack.as_ref())
                        .map(|(m, x)| (m - x.offset).max(0)),
                    reason,
                    addr: a,
                }
            }
        });
    let mut out = futures::future::join_all(futs).await;
    out.sort_by(|a, b| a.addr.cmp(&b.addr));
    out
}

async fn info(a: &str, cfg: &ProxyConfig) -> Result<Replication, String> {
    let access = cfg.redis_access();
    let f = query_auth(
        a,
        Some(&access),
        &["INFO", "replication"],
        cfg.connect_timeout,
    )
    .await
    .map_err(|e| e.to_string())?;
    Ok(Replication::parse(&f.as_text().unwrap_or_default()))
}

/// A sentinel flag that takes a replica out of rotation.
fn bad_flag(flags: &str) -> Option<&str> {
    flags
        .split(',')
        .find(|f| ["s_down", "o_down", "disconnected"].contains(f))
}

/// Why a replica is out of the read rotation (`None`: healthy). `own` is its
/// own `INFO replication` (or why there is none); `ack` the master's line
/// for it, when the master was asked; `lag` its last known lag (seconds).
///
/// A replica whose link to the master went down (the master crashed) keeps
/// serving while what it has is at most `max_lag` old: the time since its
/// link went down plus the lag it had then. So reads go on through a
/// master's crash, as stale as `--max-replica-lag` allows and no more.
pub fn judge(
    own: Result<Replication, String>,
    ack: Option<&ReplicaLine>,
    lag: Option<i64>,
    master: Option<&str>,
    max_lag: Duration,
) -> Option<String> {
    let own = match own {
        Ok(o) => o,
        Err(why) => return Some(why),
    };
    let link = own.link.as_deref().unwrap_or("none");
    if !own.is_replica() {
        Some("not a replica".into())
    } else if link != "up" {
        match staleness(own.link_down_since, lag) {
            Some(s) if s <= max_lag.as_secs() => None,
            Some(s) => Some(format!("master link {link}, {s} s stale > {max_lag:?}")),
            None => Some(format!("master link {link}")),
        }
    } else if master.is_some() && own.master.as_deref() != master {
        Some(format!("follows {}", own.master.unwrap_or_default()))
    } else if let Some(lag) = ack
        .and_then(|x| x.lag)
        .filter(|l| *l as u64 > max_lag.as_secs())
    {
        Some(format!("lag {lag} s > {max_lag:?}"))
    } else if master.is_some() && ack.is_some_and(|x| x.state != "online") {
        Some(format!(
            "state {}",
            ack.map(|x| x.state.as_str()).unwrap_or_default()
        ))
    } else {
        None
    }
}

/// How old a replica's data may be once its link is down: seconds since
/// the link went down plus its last lag; `None` when unknown (never linked).
pub fn staleness(link_down_since: Option<i64>, lag: Option<i64>) -> Option<u64> {
    let down = link_down_since.filter(|s| *s >= 0)?;
    Some((down + lag.unwrap_or(0).max(0)) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LAG: Duration = Duration::from_secs(10);

    fn replica_of(m: &str) -> Replication {
        Replication::parse(&format!(
            "role:slave\r\nmaster_host:{}\r\nmaster_port:{}\r\nmaster_link_status:up\r\n",
            m.split(':').next().unwrap(),
            m.split(':').nth(1).unwrap()
        ))
    }

    fn line(state: &str, lag: i64) -> ReplicaLine {
        ReplicaLine {
            addr: "h:2".into(),
            state: state.into(),
            offset: 0,
            lag: Some(lag),
        }
    }

    #[test]
    fn a_linked_replica_of_the_master_is_healthy() {
        let m = Some("h:1");
        assert_eq!(
            judge(
                Ok(replica_of("h:1")),
                Some(&line("online", 0)),
                Some(0),
                m,
                LAG
            ),
            None
        );
        // Without the master's view (busy master), its own view decides.
        assert_eq!(judge(Ok(replica_of("h:1")), None, None, m, LAG), None);
    }

    #[test]
    fn reasons_for_leaving_the_rotation() {
        let m = Some("h:1");
        let j = |own, ack: Option<ReplicaLine>| {
            let lag = ack.as_ref().and_then(|x| x.lag);
            judge(own, ack.as_ref(), lag, m, LAG).unwrap()
        };
        assert_eq!(
            j(Err("unreachable: refused".into()), None),
            "unreachable: refused"
        );
        assert_eq!(
            j(Ok(Replication::parse("role:master\r\n")), None),
            "not a replica"
        );
        let mut down = replica_of("h:1");
        down.link = Some("down".into());
        assert_eq!(j(Ok(down), None), "master link down", "never linked");
        assert_eq!(j(Ok(replica_of("h:9")), None), "follows h:9");
        assert_eq!(
            j(Ok(replica_of("h:1")), Some(line("online", 11))),
            "lag 11 s > 10s"
        );
        assert_eq!(
            j(Ok(replica_of("h:1")), Some(line("wait_bgsave", 0))),
            "state wait_bgsave"
        );
    }

    #[test]
    fn a_replica_cut_from_its_master_serves_while_fresh_enough() {
        let m = Some("h:1");
        let mut down = replica_of("h:1");
        down.link = Some("down".into());
        down.link_down_since = Some(2);
        assert_eq!(judge(Ok(down.clone()), None, Some(1), m, LAG), None);
        assert_eq!(judge(Ok(down.clone()), None, None, m, LAG), None);
        down.link_down_since = Some(9);
        assert_eq!(
            judge(Ok(down.clone()), None, Some(2), m, LAG).unwrap(),
            "master link down, 11 s stale > 10s"
        );
        // Still following the crashed master once another is promoted:
        // what it has is as old as its link's loss, no older.
        down.link_down_since = Some(3);
        assert_eq!(judge(Ok(down), None, Some(0), Some("h:2"), LAG), None);
        assert_eq!(staleness(Some(-1), Some(0)), None, "never linked");
        assert_eq!(staleness(Some(4), Some(-1)), Some(4));
    }

    #[test]
    fn flags_that_take_a_replica_out() {
        assert_eq!(bad_flag("slave,s_down"), Some("s_down"));
        assert_eq!(bad_flag("slave,disconnected"), Some("disconnected"));
        assert_eq!(bad_flag("slave"), None);
    }
}
