//! The read endpoint beyond plain reads: a PUBLISH sent there goes to the
//! master, so subscribers on every node (through either endpoint) get it;
//! and through a master's crash the replicas keep serving reads while
//! their data is within `--max-replica-lag` (link down time plus last
//! lag), then leave the rotation.

#[macro_use]
mod common;

use common::*;
use redis_ha_local::Topology;
use redis_ha_proxy::config::{ConnMode, ProxyConfig};
use redis_ha_proxy::server::start;
use redis_ha_resp::Frame;
use std::time::Duration;

/// Subscribes a connection to `ch` through `addr`.
async fn subscriber(addr: std::net::SocketAddr, ch: &str) -> redis_ha_resp::Connection {
    let mut c = conn(addr).await;
    let f = cmd(&mut c, &["SUBSCRIBE", ch]).await;
    assert!(text(&f).contains("subscribe"), "{f:?}");
    c
}

/// The next pub/sub message's payload.
async fn message(c: &mut redis_ha_resp::Connection) -> String {
    let f = tokio::time::timeout(Duration::from_secs(10), c.read_frame())
        .await
        .expect("a message within 10 s")
        .expect("a frame");
    match f {
        Frame::Array(items) | Frame::Push(items) if items.len() == 3 => text(&items[2]),
        other => panic!("not a message: {other:?}"),
    }
}

async fn publish_on_the_read_endpoint_reaches_every_subscriber(mode: ConnMode) {
    let (_t, p) = setup(|c| c.mode = mode).await;
    // Several subscribers on the read endpoint land on both replicas.
    let mut on_read = Vec::new();
    for _ in 0..4 {
        on_read.push(subscriber(p.read_addr(), "news").await);
    }
    let mut on_write = subscriber(p.write_addr(), "news").await;
    let mut publisher = conn(p.read_addr()).await;
    for i in 0..3 {
        // Reads around it still go to a replica on the same connection.
        cmd(&mut publisher, &["GET", "x"]).await;
        let n = cmd(&mut publisher, &["PUBLISH", "news", &format!("m{i}")]).await;
        // Redis counts the receiving node's own subscribers: the master's one.
        assert_eq!(n.as_int(), Some(1), "published on the master: {n:?}");
        assert_eq!(message(&mut on_write).await, format!("m{i}"));
        for s in on_read.iter_mut() {
            assert_eq!(message(s).await, format!("m{i}"));
        }
    }
    let role = cmd(&mut publisher, &["ROLE"]).await;
    assert!(
        text(&role).contains("slave"),
        "reads stay on a replica: {role:?}"
    );
}

in_both_modes!(publish_on_the_read_endpoint_reaches_every_subscriber);

/// The master is killed with no failover to follow (a long down-after):
/// the replicas, cut from it, stay in the read rotation and answer at
/// once while their staleness is within --max-replica-lag, then leave it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_serve_reads_through_a_master_crash_while_fresh_enough() {
    let t = Topology::start_test(60_000).await.expect("topology");
    let mut cfg = ProxyConfig::for_test(t.sentinel_addrs(), &t.opts.spec.master_name);
    cfg.backend_tls = backend_tls(&t);
    cfg.max_replica_lag = Duration::from_secs(3);
    cfg.poll_interval = Duration::from_millis(200);
    let p = start(cfg).await.expect("proxy");
    p.wait_master(Duration::from_secs(10)).await.unwrap();
    poll("replicas in rotation", Duration::from_secs(10), || async {
        (p.routes.current().replicas.len() == 2).then_some(())
    })
    .await;
    let mut w = conn(p.write_addr()).await;
    cmd(&mut w, &["SET", "k", "v1"]).await;
    let read = p.read_addr();
    poll(
        "the write replicated",
        Duration::from_secs(10),
        || async move {
            let mut r = conn(read).await;
            (text(&cmd(&mut r, &["GET", "k"]).await) == "v1").then_some(())
        },
    )
    .await;
    let mut r = conn(read).await;

    let master = t.master().await.unwrap();
    t.kill(&t.name_of(&master).unwrap()).unwrap();
    // The control plane sees both links down and keeps the replicas.
    poll(
        "replicas judged stale but fresh enough",
        Duration::from_secs(5),
        || async {
            let reps = p.control.replicas();
            (reps.len() == 2 && reps.iter().all(|x| x.healthy && x.stale_seconds.is_some()))
                .then_some(())
        },
    )
    .await;
    assert_eq!(p.routes.current().replicas.len(), 2);
    r.timeout = Duration::from_secs(1); // a held read would not answer in time
    for _ in 0..20 {
        assert_eq!(text(&cmd(&mut r, &["GET", "k"]).await), "v1");
    }
    // Past --max-replica-lag they leave the rotation, saying why.
    poll(
        "stale replicas out of rotation",
        Duration::from_secs(15),
        || async {
            let reps = p.control.replicas();
            let out = reps
                .iter()
                .all(|x| !x.healthy && x.reason.as_deref().is_some_and(|r| r.contains("stale")));
            (out && p.routes.current().replicas.is_empty()).then_some(())
        },
    )
    .await;
}
