//! Observation of a running topology: each node's role and replication,
//! each sentinel's view, quorum, and the split-brain verdict. Works on any
//! sentinel list; the CLI only renders the [`Report`].

use crate::info::{Replication, Role};
use crate::{addr, sentinel, Addr};
use redis_ha_resp::conn::query_auth;
use redis_ha_resp::Credentials;
use serde::Serialize;
use std::collections::BTreeSet;
use std::time::Duration;

#[derive(Clone, Debug, Serialize)]
pub struct NodeStatus {
    pub name: String,
    pub addr: Addr,
    /// `master`, `replica`, or `down`.
    pub role: String,
    pub offset: Option<i64>,
    /// For replicas: the master they follow and the link state.
    pub master: Option<Addr>,
    pub link: Option<String>,
    /// The master's `master_repl_offset` minus this replica's offset.
    pub lag_bytes: Option<i64>,
    /// Seconds since the master last heard from this replica (the master's
    /// `slaveN:...,lag=` field).
    pub lag_seconds: Option<i64>,
    /// Seconds since this replica last heard from its master
    /// (`master_last_io_seconds_ago`).
    pub last_io_seconds: Option<i64>,
    pub error: Option<String>,
    /// For a master: its connected replicas as (addr, lag seconds).
    #[serde(skip)]
    seen_replicas: Vec<(Addr, i64)>,
}

#[derive(Clone, Debug, Serialize)]
pub struct SentinelStatus {
    pub name: String,
    pub addr: Addr,
    pub role: String,
    /// The master this sentinel names, if reachable.
    pub master: Option<Addr>,
    pub master_flags: Option<String>,
    pub replicas: Option<usize>,
    pub other_sentinels: Option<usize>,
    pub ckquorum: Option<String>,
    pub quorum_ok: bool,
    /// In TILT mode: it watches but will not fail over (see [`sentinel::in_tilt`]).
    pub tilt: bool,
    pub error: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub master_name: String,
    pub master: Option<Addr>,
    pub nodes: Vec<NodeStatus>,
    pub sentinels: Vec<SentinelStatus>,
    /// The supervised proxy, for a local topology that runs one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proxy: Option<ProxyStatus>,
    pub sentinels_agree: bool,
    pub split_brain: bool,
    pub healthy: bool,
    /// Why it is not healthy, most important first.
    pub problems: Vec<String>,
}

/// The proxy's endpoints and whether its write endpoint answers PING.
#[derive(Clone, Debug, Serialize)]
pub struct ProxyStatus {
    pub name: String,
    /// The write endpoint (clients' master).
    pub addr: Addr,
    pub role: String,
    pub read_addr: Addr,
    pub admin_addr: Addr,
    pub error: Option<String>,
}

impl Report {
    /// Adds the proxy's status; a proxy that does not answer is a problem.
    /// It asks for a login when the nodes have a `password`.
    pub async fn add_proxy<L: Credentials + ?Sized + Sync>(
        &mut self,
        write: Addr,
        read: Addr,
        admin: Addr,
        password: Option<&L>,
        timeout: Duration,
    ) {
        let error = match query_auth(&write, password, &["PING"], timeout).await {
            Ok(f) if f.as_text().as_deref() == Some("PONG") => None,
            Ok(f) => Some(format!("PING answered {f:?}")),
            Err(e) => Some(e.to_string()),
        };
        if let Some(e) = &error {
            self.problems
                .push(format!("proxy ({write}) does not answer: {e}"));
            self.healthy = false;
        }
        self.proxy = Some(ProxyStatus {
            name: "proxy".into(),
            addr: write,
            role: "proxy".into(),
            read_addr: read,
            admin_addr: admin,
            error,
        });
    }
}

/// Collects a report. `nodes` are (name, addr) of the Redis nodes; when empty
/// they are discovered from the sentinels (master + SENTINEL REPLICAS).
/// `password` is the nodes', `sentinel_pw` the sentinels' own.
pub async fn collect<L: Credentials + ?Sized + Sync, S: Credentials + ?Sized + Sync>(
    sentinels: &[(String, Addr)],
    nodes: &[(String, Addr)],
    master_name: &str,
    password: Option<&L>,
    sentinel_pw: Option<&S>,
    timeout: Duration,
) -> Report {
    let mut sstat = Vec::new();
    for (name, a) in sentinels {
        sstat.push(sentinel_status(name, a, sentinel_pw, master_name, timeout).await);
    }
    let views: Vec<Addr> = sstat.iter().filter_map(|s| s.master.clone()).collect();
    let distinct: BTreeSet<&Addr> = views.iter().collect();
    // The master most name, majority or not: the report shows any split.
    let named: Vec<Option<Addr>> = views.iter().cloned().map(Some).collect();
    let master = crate::role::agreement(&named).most_named().cloned();
    let mut node_list: Vec<(String, Addr)> = nodes.to_vec();
    if node_list.is_empty() {
        if let Some(m) = &master {
            node_list.push((m.clone(), m.clone()));
        }
        for (_, s) in sentinels {
            if let Ok(reps) = sentinel::replicas(s, sentinel_pw, master_name, timeout).await {
                for r in reps.iter().filter_map(sentinel::entry_addr) {
                    if !node_list.iter().any(|(_, a)| *a == r) {
                        node_list.push((r.clone(), r));
                    }
                }
                break;
            }
        }
    }
    let mut nstat = Vec::new();
    for (name, a) in &node_list {
        nstat.push(node_status(name, a, password, timeout).await);
    }
    // Lag against the master's offset and as the master sees each replica.
    let (master_offset, seen) = nstat
        .iter()
        .find(|n| n.role == "master" && Some(&n.addr) == master.as_ref())
        .map(|n| (n.offset, n.seen_replicas.clone()))
        .unwrap_or_default();
    for n in nstat.iter_mut().filter(|n| n.role == "replica") {
        // A replica still syncing reports offset -1: no meaningful lag yet.
        if let (Some(mo), Some(o)) = (master_offset, n.offset.filter(|o| *o >= 0)) {
            n.lag_bytes = Some((mo - o).max(0));
        }
        n.lag_seconds = seen.iter().find(|(a, _)| *a == n.addr).map(|(_, l)| *l);
    }
    let masters: Vec<&NodeStatus> = nstat.iter().filter(|n| n.role == "master").collect();
    let reachable_sentinels = sstat.iter().filter(|s| s.error.is_none()).count();
    let sentinels_agree = distinct.len() == 1 && views.len() == sentinels.len();
    let split_brain = masters.len() > 1 || distinct.len() > 1;
    let mut problems = Vec::new();
    if masters.len() > 1 {
        problems.push(format!(
            "SPLIT BRAIN: {} nodes claim to be master: {}",
            masters.len(),
            masters
                .iter()
                .map(|n| format!("{} ({})", n.name, n.addr))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if distinct.len() > 1 {
        problems.push(format!(
            "SPLIT BRAIN: sentinels disagree on the master: {}",
            distinct
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(" vs ")
        ));
    }
    match &master {
        None => problems.push("no sentinel knows a master".into()),
        Some(m) => {
            if !masters.iter().any(|n| &n.addr == m) {
                problems.push(format!(
                    "the sentinels' master {m} does not report role master"
                ));
            }
        }
    }
    for n in &nstat {
        if let Some(e) = &n.error {
            problems.push(format!("{} ({}) is down: {e}", n.name, n.addr));
        } else if n.role == "replica" {
            if n.link.as_deref() != Some("up") {
                problems.push(format!(
                    "{} replication link is {}",
                    n.name,
                    n.link.as_deref().unwrap_or("unknown")
                ));
            } else if n.master.is_some() && n.master != master {
                problems.push(format!(
                    "{} follows {} instead of {}",
                    n.name,
                    n.master.as_deref().unwrap_or("?"),
                    master.as_deref().unwrap_or("?")
                ));
            }
        }
    }
    for s in &sstat {
        if let Some(e) = &s.error {
            problems.push(format!("{} ({}) unreachable: {e}", s.name, s.addr));
        } else if s.tilt {
            problems.push(format!(
                "{} is in TILT mode (it was stalled or its clock jumped by more than 2 s): \
                 it will not fail over until 30 s pass normally",
                s.name
            ));
        } else if !s.quorum_ok {
            problems.push(format!(
                "{}: CKQUORUM fails: {}",
                s.name,
                s.ckquorum.as_deref().unwrap_or("?")
            ));
        } else if s.master_flags.as_deref().is_some_and(|f| f != "master") {
            problems.push(format!(
                "{} flags the master as {}",
                s.name,
                s.master_flags.as_deref().unwrap_or("?")
            ));
        }
    }
    if reachable_sentinels * 2 <= sentinels.len() {
        problems.push(format!(
            "only {reachable_sentinels} of {} sentinels reachable: no majority",
            sentinels.len()
        ));
    }
    Report {
        master_name: master_name.to_string(),
        master,
        proxy: None,
        healthy: problems.is_empty(),
        nodes: nstat,
        sentinels: sstat,
        sentinels_agree,
        split_brain,
        problems,
    }
}

async fn node_status<L: Credentials + ?Sized + Sync>(
    name: &str,
    a: &str,
    pw: Option<&L>,
    timeout: Duration,
) -> NodeStatus {
    let mut n = NodeStatus {
        name: name.to_string(),
        addr: a.to_string(),
        role: "down".into(),
        offset: None,
        master: None,
        link: None,
        lag_bytes: None,
        lag_seconds: None,
        last_io_seconds: None,
        error: None,
        seen_replicas: Vec::new(),
    };
    let role = match query_auth(a, pw, &["ROLE"], timeout).await {
        Ok(f) => Role::from_frame(&f),
        Err(e) => {
            n.error = Some(e.to_string());
            return n;
        }
    };
    let info = query_auth(a, pw, &["INFO", "replication"], timeout)
        .await
        .ok()
        .and_then(|f| f.as_text())
        .map(|t| Replication::parse(&t))
        .unwrap_or_default();
    match role {
        Some(Role::Master { offset, .. }) => {
            n.role = "master".into();
            n.offset = Some(offset);
            n.seen_replicas = info
                .replicas
                .iter()
                .filter_map(|r| Some((r.addr.clone(), r.lag?)))
                .collect();
        }
        Some(Role::Replica { master, offset, .. }) => {
            n.role = "replica".into();
            n.offset = Some(offset);
            n.master = Some(master);
            n.link = info.link;
            n.last_io_seconds = info.last_io_seconds;
        }
        other => n.error = Some(format!("unexpected ROLE reply {other:?}")),
    }
    n
}

async fn sentinel_status<L: Credentials + ?Sized + Sync>(
    name: &str,
    a: &str,
    pw: Option<&L>,
    master_name: &str,
    timeout: Duration,
) -> SentinelStatus {
    let mut s = SentinelStatus {
        name: name.to_string(),
        addr: a.to_string(),
        role: "sentinel".into(),
        master: None,
        master_flags: None,
        replicas: None,
        other_sentinels: None,
        ckquorum: None,
        quorum_ok: false,
        tilt: false,
        error: None,
    };
    match sentinel::master_info(a, pw, master_name, timeout).await {
        Ok(m) => {
            if let (Some(ip), Some(port)) =
                (m.get("ip"), m.get("port").and_then(|p| p.parse().ok()))
            {
                s.master = Some(addr(ip, port));
            }
            s.master_flags = m.get("flags").cloned();
            s.replicas = m.get("num-slaves").and_then(|v| v.parse().ok());
            s.other_sentinels = m.get("num-other-sentinels").and_then(|v| v.parse().ok());
        }
        Err(e) => {
            s.error = Some(e.to_string());
            return s;
        }
    }
    s.tilt = sentinel::in_tilt(a, pw, timeout).await.unwrap_or(false);
    match sentinel::ckquorum(a, pw, master_name, timeout).await {
        Ok(msg) => {
            s.quorum_ok = true;
            s.ckquorum = Some(msg);
        }
        Err(e) => s.ckquorum = Some(e.to_string()),
    }
    s
}
