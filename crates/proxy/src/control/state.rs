//! What the control plane knows, kept for the admin page and `/api/status`.

use crate::config::ProxyConfig;
use crate::route::Routes;
use redis_ha_topology::Addr;
use serde::Serialize;
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

#[derive(Clone, Debug, Default, Serialize)]
pub struct SentinelView {
    pub addr: Addr,
    /// The master this sentinel names.
    pub master: Option<Addr>,
    pub flags: String,
    pub config_epoch: u64,
    /// Other sentinels it knows.
    pub peers: Vec<Addr>,
    /// Whether our event subscription to it is live.
    pub subscribed: bool,
    pub error: Option<String>,
    #[serde(skip)]
    pub replicas: Vec<HashMap<String, String>>,
}

#[derive(Clone, Debug, Serialize)]
pub struct ReplicaView {
    pub addr: Addr,
    pub healthy: bool,
    pub lag_seconds: Option<i64>,
    pub lag_bytes: Option<i64>,
    /// With its link to the master down: how old its data may be (seconds
    /// since the link went down plus its last lag).
    pub stale_seconds: Option<u64>,
    /// Why it is out of the read rotation.
    pub reason: Option<String>,
}

/// One failover as the proxy saw it; times in ms from its start, the fault
/// first seen (the first `+sdown`/`+odown`/failover event, `trigger`).
#[derive(Clone, Debug, Serialize)]
pub struct FailoverRecord {
    /// Unix time (ms) of the start.
    pub at_unix_ms: u64,
    pub trigger: String,
    pub old_master: Option<Addr>,
    pub new_master: Option<Addr>,
    /// The first sentinel's `+odown` (the master objectively down); none in
    /// a planned failover.
    pub odown_ms: Option<f64>,
    /// The chosen replica answered ROLE as master (or a sentinel sent
    /// `+promoted-slave`), whichever came first.
    pub promoted_ms: Option<f64>,
    /// New master adopted by the proxy (writes flow again).
    pub adopted_ms: Option<f64>,
    pub switch_master_ms: Option<f64>,
    /// The first reply to a command on the write endpoint after the new
    /// master was adopted (seen within a few ms; none without traffic).
    pub first_write_ms: Option<f64>,
    pub ended_ms: Option<f64>,
    pub outcome: String,
    #[serde(skip)]
    pub started: Instant,
}

impl FailoverRecord {
    pub fn start(old_master: Option<Addr>, trigger: &str) -> FailoverRecord {
        FailoverRecord {
            at_unix_ms: unix_ms(),
            trigger: trigger.to_string(),
            old_master,
            new_master: None,
            odown_ms: None,
            promoted_ms: None,
            adopted_ms: None,
            switch_master_ms: None,
            first_write_ms: None,
            ended_ms: None,
            outcome: "in progress".into(),
            started: Instant::now(),
        }
    }
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[derive(Clone, Debug, Serialize)]
pub struct EventRecord {
    pub at_unix_ms: u64,
    pub channel: String,
    pub payload: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct StatusSnapshot {
    pub master_name: String,
    pub master: Option<Addr>,
    pub epoch: u64,
    pub closed: Option<String>,
    pub read_rotation: Vec<Addr>,
    pub replicas: Vec<ReplicaView>,
    pub sentinels: Vec<SentinelView>,
    pub failovers: Vec<FailoverRecord>,
    pub events: Vec<EventRecord>,
}

pub struct ControlState {
    master_name: String,
    inner: Mutex<Inner>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

#[derive(Default)]
struct Inner {
    routes: Routes,
    sentinels: Vec<SentinelView>,
    subscribed: HashMap<Addr, bool>,
    replicas: Vec<ReplicaView>,
    failovers: VecDeque<FailoverRecord>,
    current_failover: Option<FailoverRecord>,
    events: VecDeque<EventRecord>,
}

impl ControlState {
    pub fn new(cfg: &ProxyConfig) -> ControlState {
        ControlState {
            master_name: cfg.master_name.clone(),
            inner: Mutex::new(Inner::default()),
            task: Mutex::new(None),
        }
    }

    pub(crate) fn set_task(&self, t: tokio::task::JoinHandle<()>) {
        *self.task.lock().unwrap_or_else(|e| e.into_inner()) = Some(t);
    }

    /// Stops the control plane; sessions then see the routes channel close
    /// and end.
    pub fn stop(&self) {
        if let Some(t) = self.task.lock().unwrap_or_else(|e| e.into_inner()).take() {
            t.abort();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The replicas' last verdicts.
    pub fn replicas(&self) -> Vec<ReplicaView> {
        self.lock().replicas.clone()
    }

    pub fn snapshot(&self) -> StatusSnapshot {
        let i = self.lock();
        let mut sentinels = i.sentinels.clone();
        for s in &mut sentinels {
            s.subscribed = i.subscribed.get(&s.addr).copied().unwrap_or(false);
        }
        let mut failovers: Vec<FailoverRecord> = i.current_failover.iter().cloned().collect();
        failovers.extend(i.failovers.iter().rev().cloned());
        StatusSnapshot {
            master_name: self.master_name.clone(),
            master: i.routes.master.clone(),
            epoch: i.routes.epoch,
            closed: i.routes.closed.clone(),
            read_rotation: i.routes.replicas.clone(),
            replicas: i.replicas.clone(),
            sentinels,
            failovers,
            events: i.events.iter().rev().cloned().collect(),
        }
    }

    pub(crate) fn set_routes(&self, r: &Routes) {
        self.lock().routes = r.clone();
    }

    pub(crate) fn set_views(&self, s: Vec<SentinelView>, r: Vec<ReplicaView>) {
        let mut i = self.lock();
        i.sentinels = s;
        i.replicas = r;
    }

    pub(crate) fn set_sentinel_subscribed(&self, s: &str, up: bool) {
        self.lock().subscribed.insert(s.to_string(), up);
    }

    pub(crate) fn set_current_failover(&self, f: Option<FailoverRecord>) {
        self.lock().current_failover = f;
    }

    pub(crate) fn push_failover(&self, f: FailoverRecord) {
        let mut i = self.lock();
        i.current_failover = None;
        i.failovers.push_back(f);
        while i.failovers.len() > 20 {
            i.failovers.pop_front();
        }
    }

    /// Sets `first_write_ms` of a failover already in the history (found
    /// by its start), when writes were first served after it ended.
    /// True when it was not set before.
    pub(crate) fn set_first_write(&self, at_unix_ms: u64, ms: f64) -> bool {
        let mut i = self.lock();
        match i.failovers.iter_mut().find(|f| f.at_unix_ms == at_unix_ms) {
            Some(f) if f.first_write_ms.is_none() => {
                f.first_write_ms = Some(ms);
                true
            }
            _ => false,
        }
    }

    pub(crate) fn push_event(&self, channel: &str, payload: &str) {
        // Hello chatter is not an event worth showing.
        if channel.starts_with("__") {
            return;
        }
        let mut i = self.lock();
        i.events.push_back(EventRecord {
            at_unix_ms: unix_ms(),
            channel: channel.to_string(),
            payload: payload.to_string(),
        });
        while i.events.len() > 50 {
            i.events.pop_front();
        }
    }
}
