//! A master refusing writes under `min-replicas-to-write` (a new master whose
//! replicas still resync, or one cut off from them) answers `-NOREPLICAS`:
//! the write did not run, so the proxy holds it and sends it again, a pause
//! rather than an error, up to `--failover-hold`; after that the client gets
//! Redis's refusal. The counter shows each INCR applied once.

#[macro_use]
mod common;

use common::*;
use redis_ha_local::Topology;
use std::time::{Duration, Instant};

/// A request straight to a node, error replies included.
async fn direct(t: &Topology, node: &str, args: &[&str]) -> redis_ha_resp::Frame {
    cmd(&mut node_conn(t, node).await, args).await
}

async fn refusing(t: &Topology, master: &str) {
    poll(
        "the master refuses writes",
        Duration::from_secs(15),
        || async {
            let r = direct(t, master, &["INCR", "direct"]).await;
            r.error_message()?.starts_with("NOREPLICAS").then_some(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn noreplicas_is_a_pause_up_to_the_failover_hold() {
    let (t, p) = setup(|c| c.failover_hold = Duration::from_secs(3)).await;
    let master = t.master().await.unwrap();
    let q = |args: &'static [&'static str]| {
        let (t, m) = (&t, master.clone());
        async move { node_query(t, &m, args).await.unwrap() }
    };
    assert_eq!(
        text(&q(&["CONFIG", "SET", "min-replicas-max-lag", "1"]).await),
        "OK"
    );
    let replicas = replica_names(&t, &master);
    let mut c = conn(p.write_addr()).await;
    assert_eq!(cmd(&mut c, &["INCR", "n"]).await.as_int(), Some(1));

    // Refused, then the replicas come back within the hold: one pause.
    for r in &replicas {
        t.stop(r).unwrap();
    }
    refusing(&t, &master).await;
    let writer = tokio::spawn(async move {
        let started = Instant::now();
        let r = cmd(&mut c, &["INCR", "n"]).await;
        (r, started.elapsed(), c)
    });
    tokio::time::sleep(Duration::from_millis(800)).await;
    for r in &replicas {
        t.cont(r).unwrap();
    }
    let (r, waited, mut c) = writer.await.unwrap();
    assert_eq!(r.as_int(), Some(2), "held, then run once: {r:?}");
    assert!(waited >= Duration::from_millis(700), "it waited {waited:?}");

    // Refused for longer than --failover-hold: Redis's own error, once.
    poll("replicas good again", Duration::from_secs(15), || async {
        direct(&t, &master, &["INCR", "direct"])
            .await
            .as_int()
            .map(|_| ())
    })
    .await;
    for r in &replicas {
        t.stop(r).unwrap();
    }
    refusing(&t, &master).await;
    let started = Instant::now();
    let r = cmd(&mut c, &["INCR", "n"]).await;
    let e = r.error_message().unwrap_or_default();
    assert!(e.starts_with("NOREPLICAS"), "{r:?}");
    assert!(
        started.elapsed() >= Duration::from_millis(2500),
        "{:?}",
        started.elapsed()
    );
    for r in &replicas {
        t.cont(r).unwrap();
    }
    let v = node_query(&t, &master, &["GET", "n"]).await.unwrap();
    assert_eq!(
        v.as_text().as_deref(),
        Some("2"),
        "no INCR applied twice or lost"
    );
}
