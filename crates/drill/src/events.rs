//! Sentinel events as the drill records them: every sentinel's pub/sub
//! (`PSUBSCRIBE *`), subscribed before the fault, each message timed.

use redis_ha_resp::{Access, Connection, Frame};
use redis_ha_topology::Addr;
use serde::Serialize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The events the timeline is made of; the rest are kept as `Other`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// `+sdown`: this sentinel sees the instance down.
    Sdown,
    /// `-sdown`: it sees it up again.
    SdownCleared,
    /// `+odown`: a quorum sees the master down.
    Odown,
    TryFailover,
    ElectedLeader,
    SelectedSlave,
    PromotedSlave,
    SwitchMaster,
    SlaveReconfDone,
    ConvertToSlave,
    /// `+tilt`: the sentinel stops acting for 30 s (a stall or clock jump).
    Tilt,
    /// `-failover-abort-*`: a failover attempt given up (the channel says why).
    FailoverAborted,
    Other,
}

impl Kind {
    /// The kind of a Sentinel pub/sub channel (`+sdown`, `+switch-master`...).
    pub fn of_channel(channel: &str) -> Kind {
        match channel {
            "+sdown" => Kind::Sdown,
            "-sdown" => Kind::SdownCleared,
            "+odown" => Kind::Odown,
            "+try-failover" => Kind::TryFailover,
            "+elected-leader" => Kind::ElectedLeader,
            "+selected-slave" => Kind::SelectedSlave,
            "+promoted-slave" => Kind::PromotedSlave,
            "+switch-master" => Kind::SwitchMaster,
            "+slave-reconf-done" => Kind::SlaveReconfDone,
            "+convert-to-slave" => Kind::ConvertToSlave,
            "+tilt" => Kind::Tilt,
            c if c.starts_with("-failover-abort-") => Kind::FailoverAborted,
            _ => Kind::Other,
        }
    }
}

/// The instance an event is about (the payload's first word).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Instance {
    Master,
    Slave,
    Sentinel,
    /// `+switch-master` and the like name the master by its name first.
    Unnamed,
}

impl Instance {
    pub fn of_payload(payload: &str) -> Instance {
        match payload.split_whitespace().next() {
            Some("master") => Instance::Master,
            Some("slave") => Instance::Slave,
            Some("sentinel") => Instance::Sentinel,
            _ => Instance::Unnamed,
        }
    }
}

/// One message from one sentinel.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Event {
    /// Milliseconds since the fault (negative: before it).
    pub at_ms: f64,
    pub sentinel: Addr,
    pub channel: String,
    pub payload: String,
    pub kind: Kind,
    pub instance: Instance,
}

impl Event {
    /// The instance's `ip port` as the payload gives it (`slave
    /// 127.0.0.1:6381 127.0.0.1 6381 @ mymaster ...`: the second and third
    /// words), as `ip:port`.
    pub fn instance_addr(&self) -> Option<Addr> {
        let w: Vec<&str> = self.payload.split_whitespace().collect();
        match (self.instance, w.as_slice()) {
            (Instance::Unnamed, _) => None,
            (_, [_, _, ip, port, ..]) => Some(format!("{ip}:{port}")),
            _ => None,
        }
    }
}

/// A raw message with the instant it arrived.
#[derive(Clone, Debug)]
struct Raw {
    at: Instant,
    sentinel: Addr,
    channel: String,
    payload: String,
}

/// Subscriptions to every sentinel, collecting until dropped.
pub struct Recorder {
    log: Arc<Mutex<Vec<Raw>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// Sentinels whose subscription was confirmed.
    pub subscribed: usize,
}

/// `["pmessage", pattern, channel, payload]` as (channel, payload).
fn pmessage(f: &Frame) -> Option<(String, String)> {
    let v = f.as_array()?;
    match v {
        [kind, _, channel, payload] if kind.as_text().as_deref() == Some("pmessage") => {
            Some((channel.as_text()?, payload.as_text()?))
        }
        _ => None,
    }
}

async fn subscribe(s: &Addr, pw: Option<&Access>) -> Option<Connection> {
    let mut c = Connection::connect_auth(s, pw, Duration::from_secs(2))
        .await
        .ok()?;
    c.send(&["PSUBSCRIBE", "*"]).await.ok()?;
    let ack = tokio::time::timeout(Duration::from_secs(2), c.read_frame())
        .await
        .ok()?
        .ok()?;
    let first = ack.as_array()?.first()?.as_text()?;
    (first == "psubscribe").then_some(c)
}

async fn collect(mut c: Connection, s: Addr, log: Arc<Mutex<Vec<Raw>>>) {
    while let Ok(f) = c.read_frame().await {
        let Some((channel, payload)) = pmessage(&f) else {
            continue;
        };
        let raw = Raw {
            at: Instant::now(),
            sentinel: s.clone(),
            channel,
            payload,
        };
        log.lock().expect("event log").push(raw);
    }
}

impl Recorder {
    /// Subscribes to every sentinel (those that do not answer are left out)
    /// and returns once each subscription is confirmed or has failed.
    pub async fn start(sentinels: &[Addr], pw: Option<&Access>) -> Recorder {
        let log = Arc::new(Mutex::new(Vec::new()));
        let subs = futures::future::join_all(sentinels.iter().map(|s| subscribe(s, pw))).await;
        let mut tasks = Vec::new();
        for (s, c) in sentinels.iter().zip(subs) {
            if let Some(c) = c {
                tasks.push(tokio::spawn(collect(c, s.clone(), log.clone())));
            }
        }
        let subscribed = tasks.len();
        Recorder {
            log,
            tasks,
            subscribed,
        }
    }

    /// Everything so far, timed from `fault`, in arrival order.
    pub fn events(&self, fault: Instant) -> Vec<Event> {
        let log = self.log.lock().expect("event log");
        log.iter().map(|r| timed(r, fault)).collect()
    }

    /// Has any sentinel published an event matching `f` yet?
    pub fn seen(&self, fault: Instant, f: impl Fn(&Event) -> bool) -> bool {
        self.events(fault).iter().any(f)
    }
}

fn timed(r: &Raw, fault: Instant) -> Event {
    let at_ms = match r.at.checked_duration_since(fault) {
        Some(d) => d.as_secs_f64() * 1000.0,
        None => -(fault.duration_since(r.at).as_secs_f64() * 1000.0),
    };
    Event {
        at_ms,
        sentinel: r.sentinel.clone(),
        kind: Kind::of_channel(&r.channel),
        instance: Instance::of_payload(&r.payload),
        channel: r.channel.clone(),
        payload: r.payload.clone(),
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> Frame {
        Frame::bulk(s.to_string())
    }

    #[test]
    fn pmessages_are_parsed_and_classified() {
        let f = Frame::Array(vec![
            text("pmessage"),
            text("*"),
            text("+sdown"),
            text("master mymaster 127.0.0.1 6381"),
        ]);
        let (ch, payload) = pmessage(&f).unwrap();
        assert_eq!(Kind::of_channel(&ch), Kind::Sdown);
        assert_eq!(Instance::of_payload(&payload), Instance::Master);
        let ack = Frame::Array(vec![text("psubscribe"), text("*"), Frame::Integer(1)]);
        assert_eq!(pmessage(&ack), None);
        assert_eq!(Kind::of_channel("+new-epoch"), Kind::Other);
        assert_eq!(Kind::of_channel("+tilt"), Kind::Tilt);
        assert_eq!(
            Kind::of_channel("-failover-abort-no-good-slave"),
            Kind::FailoverAborted
        );
    }

    #[test]
    fn an_events_instance_address_comes_from_its_payload() {
        let e = Event {
            at_ms: 1.0,
            sentinel: "127.0.0.1:26380".into(),
            channel: "-sdown".into(),
            payload: "slave 127.0.0.1:6381 127.0.0.1 6381 @ mymaster 127.0.0.1 6382".into(),
            kind: Kind::SdownCleared,
            instance: Instance::Slave,
        };
        assert_eq!(e.instance_addr().as_deref(), Some("127.0.0.1:6381"));
        let m = Event {
            payload: "master mymaster 127.0.0.1 6381".into(),
            instance: Instance::Master,
            ..e.clone()
        };
        assert_eq!(m.instance_addr().as_deref(), Some("127.0.0.1:6381"));
        let sw = Event {
            payload: "mymaster 127.0.0.1 6381 127.0.0.1 6382".into(),
            instance: Instance::Unnamed,
            ..e
        };
        assert_eq!(sw.instance_addr(), None);
    }
}
