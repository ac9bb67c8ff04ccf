//! Sentinel event subscriptions: one task per sentinel, `PSUBSCRIBE *`,
//! reconnecting with backoff, forwarding every event to the controller.

use redis_ha_resp::Access;
use redis_ha_resp::Connection;
use redis_ha_topology::{addr, Addr};
use std::time::Duration;
use tokio::sync::mpsc::UnboundedSender;

#[derive(Debug)]
pub enum Event {
    /// A subscription to this sentinel is (or is no longer) live.
    Connected(Addr, bool),
    /// `+switch-master`, `+sdown`... with its payload.
    Sentinel {
        from: Addr,
        channel: String,
        payload: String,
    },
    /// The replica chosen by a failover now answers ROLE as master.
    Promoted(Addr),
    /// The promotion watch gave up (failover aborted or too slow).
    PromotionGaveUp(Addr),
    /// The first reply on the write endpoint after the failover that started
    /// at `failover_at` (its `at_unix_ms`) adopted a new master, `ms` after
    /// its start.
    FirstWrite { failover_at: u64, ms: f64 },
}

/// Follows one sentinel's events; `pw` is the sentinel's own password.
pub async fn subscribe(sentinel: Addr, pw: Access, tx: UnboundedSender<Event>) {
    let mut backoff = Duration::from_millis(100);
    loop {
        if tx.is_closed() {
            return;
        }
        match listen(&sentinel, &pw, &tx).await {
            Ok(()) => return,
            Err(e) => {
                tracing::debug!(%sentinel, error = %e, "sentinel subscription lost");
                let _ = tx.send(Event::Connected(sentinel.clone(), false));
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(1));
    }
}

/// Returns Ok only when the controller is gone.
async fn listen(sentinel: &str, pw: &Access, tx: &UnboundedSender<Event>) -> anyhow::Result<()> {
    let mut c = Connection::connect_auth(sentinel, Some(pw), Duration::from_secs(1)).await?;
    c.send(&["PSUBSCRIBE", "*"]).await?;
    let first = tokio::time::timeout(Duration::from_secs(2), c.read_frame()).await??;
    anyhow::ensure!(
        !first.is_error(),
        "PSUBSCRIBE refused: {:?}",
        first.error_message()
    );
    if tx
        .send(Event::Connected(sentinel.to_string(), true))
        .is_err()
    {
        return Ok(());
    }
    loop {
        let f = c.read_frame().await?;
        let Some(v) = f.as_array() else { continue };
        // pmessage <pattern> <channel> <payload>
        if v.len() == 4 && v[0].as_text().as_deref() == Some("pmessage") {
            let ev = Event::Sentinel {
                from: sentinel.to_string(),
                channel: v[2].as_text().unwrap_or_default(),
                payload: v[3].as_text().unwrap_or_default(),
            };
            if tx.send(ev).is_err() {
                return Ok(());
            }
        }
    }
}

/// The instance an event is about, if it belongs to `master_name`.
/// Formats: `master <name> <ip> <port>` and
/// `<type> <name> <ip> <port> @ <master-name> <master-ip> <master-port>`.
pub fn instance_addr(payload: &str, master_name: &str) -> Option<Addr> {
    let w: Vec<&str> = payload.split_whitespace().collect();
    let port: u16 = w.get(3)?.parse().ok()?;
    let ours = if w[0] == "master" {
        w.get(1) == Some(&master_name)
    } else {
        w.get(4) == Some(&"@") && w.get(5) == Some(&master_name)
    };
    ours.then(|| addr(w[2], port))
}

/// A Sentinel event, as far as the control plane acts on it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SentinelEvent {
    /// A failover step naming the replica being promoted (`+selected-slave`,
    /// `+failover-state-send-slaveof-noone`, `+failover-state-wait-promotion`,
    /// `+promoted-slave`).
    Promoting { step: String, replica: Addr },
    /// `+switch-master` for our master: the failover's end, with the new one.
    SwitchMaster { new: Addr },
    /// `+sdown` / `+odown` about our master.
    MasterDown { flag: String },
    /// `-sdown` / `-odown` about our master: it came back.
    MasterBack,
    /// The failover ended or was aborted (the channel says how).
    FailoverEnded { outcome: String },
    /// Something changed in the topology: look again.
    Changed,
    /// Nothing to act on.
    Ignored,
}

/// Reads one event for `master_name` from its channel and payload.
pub fn parse_event(channel: &str, payload: &str, master_name: &str) -> SentinelEvent {
    let ours = instance_addr(payload, master_name);
    let about_master = payload.starts_with("master ");
    match channel {
        "+selected-slave"
        | "+failover-state-send-slaveof-noone"
        | "+failover-state-wait-promotion"
        | "+promoted-slave" => match ours {
            Some(replica) => SentinelEvent::Promoting {
                step: channel.to_string(),
                replica,
            },
            None => SentinelEvent::Ignored,
        },
        "+switch-master" => match switch_master_target(payload, master_name) {
            Some(new) => SentinelEvent::SwitchMaster { new },
            None => SentinelEvent::Changed,
        },
        "+sdown" | "+odown" if about_master && ours.is_some() => SentinelEvent::MasterDown {
            flag: channel.to_string(),
        },
        "-sdown" | "-odown" if about_master && ours.is_some() => SentinelEvent::MasterBack,
        "+failover-end"
        | "-failover-abort-not-elected"
        | "+failover-end-for-timeout"
        | "-failover-abort-no-good-slave"
        | "-failover-abort-slave-timeout" => SentinelEvent::FailoverEnded {
            outcome: channel.to_string(),
        },
        "+sdown" | "-sdown" | "+odown" | "-odown" | "+slave" | "+convert-to-slave" | "+reboot"
        | "+slave-reconf-done" | "+sentinel" | "-dup-sentinel" => SentinelEvent::Changed,
        _ => SentinelEvent::Ignored,
    }
}

/// The new master in `<name> <old-ip> <old-port> <new-ip> <new-port>`, if
/// the event is about `master_name`.
fn switch_master_target(payload: &str, master_name: &str) -> Option<Addr> {
    let w: Vec<&str> = payload.split_whitespace().collect();
    if w.len() < 5 || w[0] != master_name {
        return None;
    }
    Some(addr(w[3], w[4].parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads() {
        assert_eq!(
            instance_addr(
                "slave 127.0.0.1:7001 127.0.0.1 7001 @ mymaster 127.0.0.1 7000",
                "mymaster"
            ),
            Some("127.0.0.1:7001".into())
        );
        assert_eq!(
            instance_addr("master mymaster 127.0.0.1 7000", "mymaster"),
            Some("127.0.0.1:7000".into())
        );
        assert_eq!(
            instance_addr("master other 127.0.0.1 7000", "mymaster"),
            None
        );
        assert_eq!(
            instance_addr("slave redis-1.redis-headless:6379 redis-1.redis-headless 6379 @ mymaster redis-0.redis-headless 6379", "mymaster"),
            Some("redis-1.redis-headless:6379".into())
        );
        assert_eq!(instance_addr("garbage", "mymaster"), None);
    }

    #[test]
    fn events() {
        use SentinelEvent::*;
        let m = "mymaster";
        assert_eq!(
            parse_event(
                "+switch-master",
                "mymaster 127.0.0.1 7000 127.0.0.1 7001",
                m
            ),
            SwitchMaster {
                new: "127.0.0.1:7001".into()
            }
        );
        assert_eq!(parse_event("+switch-master", "other 1 2 3 4", m), Changed);
        assert_eq!(
            parse_event("+sdown", "master mymaster 127.0.0.1 7000", m),
            MasterDown {
                flag: "+sdown".into()
            }
        );
        assert_eq!(
            parse_event("+sdown", "slave a:1 a 1 @ mymaster b 2", m),
            Changed
        );
        assert_eq!(
            parse_event("-odown", "master mymaster 127.0.0.1 7000", m),
            MasterBack
        );
        assert_eq!(
            parse_event("-odown", "master other 127.0.0.1 7000", m),
            Changed
        );
        assert_eq!(
            parse_event(
                "+selected-slave",
                "slave 127.0.0.1:7001 127.0.0.1 7001 @ mymaster 127.0.0.1 7000",
                m
            ),
            Promoting {
                step: "+selected-slave".into(),
                replica: "127.0.0.1:7001".into()
            }
        );
        assert_eq!(
            parse_event("+promoted-slave", "slave x:1 x 1 @ other y 2", m),
            Ignored
        );
        assert_eq!(
            parse_event(
                "-failover-abort-not-elected",
                "master mymaster 127.0.0.1 7000",
                m
            ),
            FailoverEnded {
                outcome: "-failover-abort-not-elected".into()
            }
        );
        assert_eq!(parse_event("__sentinel__:hello", "x", m), Ignored);
    }
}
