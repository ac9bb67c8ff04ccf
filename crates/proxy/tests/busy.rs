//! Busy is not down: a 3 s Lua script through the proxy, or a master that
//! does not answer for 3 s (frozen, as DEBUG SLEEP 3 would), must not look
//! like a lost master. The script runs once
//! and is answered, concurrent INCRs are exact, no failover is counted, and
//! the routing table keeps the master throughout. Sentinels run at the
//! original's down-after-milliseconds 5000, longer than the busy spell.

#[macro_use]
mod common;

use common::*;
use redis_ha_local::Topology;
use redis_ha_proxy::config::{ConnMode, ProxyConfig};
use redis_ha_proxy::server::{start, ProxyHandle};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

const SCRIPT: &str = "redis.call('INCR', KEYS[1]) \
    local t = redis.call('TIME') local s = t[1] + t[2] / 1e6 \
    while true do local n = redis.call('TIME') \
    if n[1] + n[2] / 1e6 - s > 3 then break end end return 'done'";

async fn setup_slow_sentinels(mode: ConnMode) -> (Topology, ProxyHandle) {
    let t = Topology::start_test(5000).await.expect("topology");
    let mut cfg = ProxyConfig::for_test(t.sentinel_addrs(), &t.opts.spec.master_name);
    cfg.mode = mode;
    cfg.backend_tls = backend_tls(&t);
    let p = start(cfg).await.expect("proxy");
    p.wait_master(Duration::from_secs(10))
        .await
        .expect("master");
    (t, p)
}

/// INCR writers counting what was acknowledged; the master must not move.
fn writers(p: &ProxyHandle, stop: &Arc<AtomicBool>) -> Vec<tokio::task::JoinHandle<u64>> {
    (0..4)
        .map(|i| {
            let (addr, stop) = (p.write_addr(), stop.clone());
            tokio::spawn(async move {
                let mut c = conn(addr).await;
                let mut acked = 0;
                while !stop.load(Ordering::Relaxed) {
                    let r = cmd(&mut c, &["INCR", &format!("busy:{i}")]).await;
                    assert!(r.as_int().is_some(), "INCR through a busy master: {r:?}");
                    acked += 1;
                }
                acked
            })
        })
        .collect()
}

async fn check_exact(p: &ProxyHandle, tasks: Vec<tokio::task::JoinHandle<u64>>) {
    let mut c = conn(p.write_addr()).await;
    for (i, t) in tasks.into_iter().enumerate() {
        let acked = t.await.expect("writer");
        let v = cmd(&mut c, &["GET", &format!("busy:{i}")]).await;
        let (master, failovers) = (
            p.routes.current().master.clone(),
            p.metrics.failovers_total.get(),
        );
        assert_eq!(
            v.as_text(),
            Some(acked.to_string()),
            "writer {i} (master now {master:?}, failovers counted {failovers})"
        );
    }
}

async fn busy_master_is_not_a_lost_master(mode: ConnMode) {
    let (t, p) = setup_slow_sentinels(mode).await;
    let master = t.master().await.unwrap();
    let failovers = p.metrics.failovers_total.get();
    let stop = Arc::new(AtomicBool::new(false));
    let tasks = writers(&p, &stop);
    // A 3 s script through the proxy, while the table is watched.
    let addr = p.write_addr();
    let script = tokio::spawn(async move {
        let mut c = conn(addr).await;
        c.timeout = Duration::from_secs(20);
        cmd(&mut c, &["EVAL", SCRIPT, "1", "script:runs"]).await
    });
    while !script.is_finished() {
        assert_eq!(
            p.routes.current().master.as_deref(),
            Some(master.as_str()),
            "the master left the table"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(text(&script.await.unwrap()), "done");
    // No answer at all for 3 s (what DEBUG SLEEP 3 does; the local nodes
    // have DEBUG disabled): the master frozen, then resumed.
    // The script kept the master from answering the sentinels' PINGs too:
    // each sentinel must have heard from it again, or (on a loaded machine)
    // the two busy spells add up past down-after-milliseconds and Sentinel
    // fails over for real.
    sentinels_heard_from_master(&t).await;
    let name = t.name_of(&master).unwrap();
    t.stop(&name).unwrap();
    for _ in 0..60 {
        assert_eq!(
            p.routes.current().master.as_deref(),
            Some(master.as_str()),
            "the master left the table"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    t.cont(&name).unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    check_exact(&p, tasks).await;
    let runs = node_query(&t, &master, &["GET", "script:runs"])
        .await
        .unwrap();
    assert_eq!(text(&runs), "1", "the script ran more than once");
    assert_eq!(
        p.metrics.failovers_total.get(),
        failovers,
        "a busy master was counted as a failover"
    );
}

/// Every sentinel got a PING reply from the master within the last second.
async fn sentinels_heard_from_master(t: &Topology) {
    let args = ["SENTINEL", "MASTER", t.opts.spec.master_name.as_str()];
    poll(
        "every sentinel to hear from the master again",
        Duration::from_secs(10),
        || async {
            for s in t.sentinel_addrs() {
                let f = sentinel_query(t, &s, &args).await.ok()?;
                let pairs = f.into_pairs();
                let ms = pairs
                    .iter()
                    .find(|(k, _)| k == "last-ok-ping-reply")?
                    .1
                    .parse::<u64>()
                    .ok()?;
                (ms < 1000).then_some(())?;
            }
            Some(())
        },
    )
    .await;
}

in_both_modes!(busy_master_is_not_a_lost_master);
