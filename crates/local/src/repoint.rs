//! After the Redis nodes chose their master by data (sentinels that lost
//! their state name the first boot's guess, redis-0, with no history), the
//! chosen node's `init-role` points every such sentinel at it: `SENTINEL
//! REMOVE`, `MONITOR` and `SET` of the settings it had (quorum, down-after,
//! failover-timeout, parallel-syncs, the nodes' password). Left alone, the
//! sentinels would watch a node that runs as a replica, see it as down, and
//! fail over to nothing. A sentinel with a history is never touched.

use redis_ha_resp::conn::query_auth;
use redis_ha_resp::Access;
use redis_ha_topology::{addr, split_addr};
use std::collections::HashMap;
use std::time::Duration;

/// Where the sentinels are and how to reach them.
pub struct Sentinels<'a> {
    pub addrs: &'a [String],
    pub access: &'a Access,
    pub master_name: &'a str,
    pub timeout: Duration,
}

/// What to do with one sentinel, from its `SENTINEL MASTER` fields.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// It names `me` already.
    Keep,
    /// It has a history (a config epoch or known replicas): not ours to
    /// change.
    HasHistory(String),
    /// Monitor `me` instead, with these `SENTINEL SET` pairs and quorum.
    Move {
        quorum: String,
        set: Vec<(String, String)>,
    },
}

/// The settings carried over to the new master entry.
const CARRIED: [&str; 3] = [
    "down-after-milliseconds",
    "failover-timeout",
    "parallel-syncs",
];

/// Pure: the step for a sentinel whose `SENTINEL MASTER` is `m`.
pub fn step(m: &HashMap<String, String>, me: &str) -> Step {
    let get = |k: &str| m.get(k).cloned().unwrap_or_default();
    let named = get("port")
        .parse()
        .map(|p| addr(&get("ip"), p))
        .unwrap_or_default();
    if named == me {
        return Step::Keep;
    }
    let epoch: u64 = get("config-epoch").parse().unwrap_or(0);
    let replicas: u64 = get("num-slaves").parse().unwrap_or(0);
    if epoch > 0 || replicas > 0 {
        return Step::HasHistory(named);
    }
    let set = CARRIED
        .iter()
        .filter(|k| m.contains_key(**k))
        .map(|k| (k.to_string(), get(k)))
        .collect();
    Step::Move {
        quorum: get("quorum"),
        set,
    }
}

/// Points every sentinel without a history at `me`; one line per sentinel
/// saying what it did (failures included: the node starts anyway, and the
/// sentinels' own init repeats this choice on their next start).
pub async fn monitor_here(s: &Sentinels<'_>, me: &str, password: Option<&str>) -> Vec<String> {
    let mut lines = Vec::new();
    for sentinel in s.addrs {
        let line = match one(s, sentinel, me, password).await {
            Ok(what) => format!("sentinel {sentinel}: {what}"),
            Err(e) => format!("sentinel {sentinel}: could not be pointed at {me}: {e}"),
        };
        lines.push(line);
    }
    lines
}

async fn one(
    s: &Sentinels<'_>,
    sentinel: &str,
    me: &str,
    password: Option<&str>,
) -> anyhow::Result<String> {
    let ask = |args: Vec<String>| async move {
        query_auth(sentinel, Some(s.access), &args, s.timeout).await
    };
    let w = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let m: HashMap<String, String> = ask(w(&["SENTINEL", "MASTER", s.master_name]))
        .await?
        .into_pairs()
        .into_iter()
        .collect();
    let (quorum, set) = match step(&m, me) {
        Step::Keep => return Ok("names this node already".into()),
        Step::HasHistory(m) => return Ok(format!("has a history (names {m}): left alone")),
        Step::Move { quorum, set } => (quorum, set),
    };
    let (host, port) = split_addr(me).ok_or_else(|| anyhow::anyhow!("{me} is not HOST:PORT"))?;
    let name = s.master_name;
    ask(w(&["SENTINEL", "REMOVE", name])).await?;
    let port = port.to_string();
    ask(w(&["SENTINEL", "MONITOR", name, &host, &port, &quorum])).await?;
    let mut args = w(&["SENTINEL", "SET", name]);
    for (k, v) in set {
        args.extend([k, v]);
    }
    if let Some(pw) = password {
        args.extend(["auth-pass".to_string(), pw.to_string()]);
    }
    if args.len() > 3 {
        ask(args).await?;
    }
    Ok(format!(
        "now monitors {me} (it named the first boot's guess, with no history)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn master(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn only_a_sentinel_without_history_naming_another_node_moves() {
        let base = [
            ("ip", "10.0.0.1"),
            ("port", "6379"),
            ("quorum", "2"),
            ("config-epoch", "0"),
            ("num-slaves", "0"),
            ("down-after-milliseconds", "5000"),
            ("failover-timeout", "180000"),
            ("parallel-syncs", "1"),
        ];
        assert_eq!(step(&master(&base), "10.0.0.1:6379"), Step::Keep);
        let Step::Move { quorum, set } = step(&master(&base), "10.0.0.3:6379") else {
            panic!("must move");
        };
        assert_eq!(quorum, "2");
        assert_eq!(
            set,
            [
                ("down-after-milliseconds".to_string(), "5000".to_string()),
                ("failover-timeout".into(), "180000".into()),
                ("parallel-syncs".into(), "1".into())
            ]
        );
        let mut epoch = master(&base);
        epoch.insert("config-epoch".into(), "3".into());
        assert_eq!(
            step(&epoch, "10.0.0.3:6379"),
            Step::HasHistory("10.0.0.1:6379".into())
        );
        let mut known = master(&base);
        known.insert("num-slaves".into(), "1".into());
        assert!(matches!(step(&known, "10.0.0.3:6379"), Step::HasHistory(_)));
    }
}
